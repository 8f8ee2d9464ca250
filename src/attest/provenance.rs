//! How a build made an image: an in-toto Statement v1
//! (<https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md>)
//! whose predicate is SLSA Provenance v1
//! (<https://slsa.dev/spec/v1.1/provenance>).
//!
//! Only a build can say this: it takes the build's inputs, not an image.
//! Everything in it is an input the build was given or resolved (the
//! recipe's and lock's digests, the bases' digests, every `.deb` by its
//! SHA-256) and the settings that shape the bytes; no clock, no host, no
//! invocation id, so the same build gives the same bytes. The types are
//! the few fields ingot writes, by hand: the in-toto crate has no SLSA v1.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{URI_BASE, VERSION};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::canonical_json;
use crate::lock::{PackageSet, Pin};

/// The media type of the statement, and the `artifactType` of its referrer.
pub const MEDIA_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";

/// The build type: an ingot recipe built into an OCI image, whose
/// `externalParameters` are those of [`Parameters`].
pub fn build_type() -> String {
    format!("{URI_BASE}/attestation/recipe-build/v1")
}

/// The builder: ingot, by its own name (run anywhere, it vouches for no
/// platform).
pub fn builder_id() -> String {
    format!("{URI_BASE}/builder/ingot")
}

/// What the build was, as the statement records it.
#[derive(Debug, Clone)]
pub struct Build<'a> {
    /// The image as named: `NAME:VERSION`.
    pub subject_name: String,
    /// The manifest's digest, or a multi-platform build's index's.
    pub subject: Digest,
    pub parameters: Parameters,
    /// The recipe file's digest, of the bytes the build read.
    pub recipe_digest: Digest,
    /// The digest of the `ingot.lock` the build read, if any.
    pub lock_digest: Option<Digest>,
    /// Every base resolved, as `ingot.lock` pins them.
    pub pins: &'a [Pin],
    /// Every `packages` closure installed, as `ingot.lock` records them.
    pub packages: &'a [PackageSet],
}

/// The settings a build was given that shape its image: the build type's
/// `externalParameters`.
#[derive(Debug, Clone, Serialize)]
pub struct Parameters {
    /// The recipe file: its path within its git work tree, else its name.
    pub recipe: String,
    /// SOURCE_DATE_EPOCH.
    pub epoch: u64,
    pub compression: String,
    /// The platform, or each platform of a multi-platform build, in order.
    pub platforms: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

// The statement and predicate, as the specs name the fields.

#[derive(Serialize)]
struct Statement {
    #[serde(rename = "_type")]
    kind: &'static str,
    subject: Vec<ResourceDescriptor>,
    #[serde(rename = "predicateType")]
    predicate_type: &'static str,
    predicate: Provenance,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Provenance {
    build_definition: BuildDefinition,
    run_details: RunDetails,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildDefinition {
    build_type: String,
    external_parameters: Parameters,
    internal_parameters: BTreeMap<&'static str, String>,
    resolved_dependencies: Vec<ResourceDescriptor>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunDetails {
    builder: Builder,
}

#[derive(Serialize)]
struct Builder {
    id: String,
    version: BTreeMap<&'static str, &'static str>,
}

/// in-toto's ResourceDescriptor: at least one of `uri` and `digest`.
#[derive(Serialize, Default)]
struct ResourceDescriptor {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
    digest: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'static str, String>,
}

fn sha256(digest: &Digest) -> BTreeMap<&'static str, String> {
    BTreeMap::from([("sha256", digest.hex().to_string())])
}

/// The statement of `build`, as canonical JSON.
pub fn statement(build: &Build, internal: BTreeMap<&'static str, String>) -> Result<Vec<u8>> {
    let statement = Statement {
        kind: STATEMENT_TYPE,
        subject: vec![ResourceDescriptor {
            name: Some(build.subject_name.clone()),
            digest: sha256(&build.subject),
            ..Default::default()
        }],
        predicate_type: PREDICATE_TYPE,
        predicate: Provenance {
            build_definition: BuildDefinition {
                build_type: build_type(),
                external_parameters: build.parameters.clone(),
                internal_parameters: internal,
                resolved_dependencies: materials(build),
            },
            run_details: RunDetails {
                builder: Builder {
                    id: builder_id(),
                    version: BTreeMap::from([("ingot", VERSION)]),
                },
            },
        },
    };
    canonical_json(&statement).map_err(|e| Error::Failed(format!("encoding the provenance: {e}")))
}

/// Every resolved material: the recipe, its lock, the bases, the `.deb`s,
/// in that order, each list as the lock orders it, each `.deb` once.
fn materials(build: &Build) -> Vec<ResourceDescriptor> {
    let mut out = vec![ResourceDescriptor {
        name: Some(build.parameters.recipe.clone()),
        digest: sha256(&build.recipe_digest),
        annotations: BTreeMap::from([("kind", "recipe".to_string())]),
        ..Default::default()
    }];
    if let Some(lock) = &build.lock_digest {
        out.push(ResourceDescriptor {
            name: Some(crate::lock::FILE_NAME.into()),
            digest: sha256(lock),
            annotations: BTreeMap::from([("kind", "lock".to_string())]),
            ..Default::default()
        });
    }
    for pin in build.pins {
        let mut annotations = BTreeMap::from([
            ("kind", "base".to_string()),
            ("reference", pin.reference.clone()),
            ("recipe", pin.from.clone()),
            ("config", pin.config.to_string()),
        ]);
        if let Some(platform) = &pin.platform {
            annotations.insert("platform", platform.clone());
        }
        // An image is named by its manifest; a docker-archive base, which
        // has none, by its config.
        let digest = pin.manifest.unwrap_or(pin.config);
        out.push(ResourceDescriptor {
            name: Some(pin.resolved.clone()),
            uri: registry_uri(&pin.resolved, &digest),
            digest: sha256(&digest),
            annotations,
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for set in build.packages {
        for p in &set.packages {
            let uri = format!("{}/{}", p.archive, p.path);
            if !seen.insert((uri.clone(), p.sha256)) {
                continue;
            }
            out.push(ResourceDescriptor {
                name: Some(format!("{}_{}_{}.deb", p.name, p.version, p.architecture)),
                uri: Some(uri),
                digest: sha256(&p.sha256),
                annotations: BTreeMap::from([
                    ("kind", "deb".to_string()),
                    ("package", p.name.clone()),
                    ("version", p.version.clone()),
                    ("architecture", p.architecture.clone()),
                ]),
            });
        }
    }
    out
}

/// A registry base as a URI: `docker://HOST/REPO@sha256:…`; other bases
/// (stemcells, layouts, archives) are local and named by digest alone.
fn registry_uri(resolved: &str, digest: &Digest) -> Option<String> {
    let rest = resolved.strip_prefix("docker://")?;
    let repo = rest.split('@').next().unwrap_or(rest);
    Some(format!("docker://{repo}@{digest}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::archive::PackagePin;

    fn build<'a>(pins: &'a [Pin], packages: &'a [PackageSet]) -> Build<'a> {
        Build {
            subject_name: "web:1.0".into(),
            subject: Digest::of(b"manifest"),
            parameters: Parameters {
                recipe: "apps/web/recipe.yaml".into(),
                epoch: 5,
                compression: "zstd".into(),
                platforms: vec!["linux/amd64".into()],
                revision: Some("abc".into()),
                source: None,
            },
            recipe_digest: Digest::of(b"recipe"),
            lock_digest: Some(Digest::of(b"lock")),
            pins,
            packages,
        }
    }

    #[test]
    fn every_material_is_listed_once_with_its_digest() {
        let deb = PackagePin {
            name: "zlib1g".into(),
            version: "1:1.2.13.dfsg-1".into(),
            architecture: "amd64".into(),
            archive: "http://deb.example/debian".into(),
            path: "pool/main/z/zlib/zlib1g.deb".into(),
            size: 10,
            sha256: Digest::of(b"deb"),
        };
        let set = PackageSet {
            from: "recipe.yaml".into(),
            layer: "libs".into(),
            install: vec!["zlib1g".into()],
            exclude: vec![],
            archives: vec![deb.archive.clone()],
            packages: vec![deb.clone()],
        };
        let pins = [Pin {
            from: "recipe.yaml".into(),
            reference: "docker://r.example/base:1".into(),
            resolved: "docker://r.example/base:1@sha256:00".into(),
            config: Digest::of(b"config"),
            manifest: Some(Digest::of(b"base")),
            platform: None,
        }];
        let sets = [set.clone(), set];
        let json = statement(&build(&pins, &sets), BTreeMap::new()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["_type"], STATEMENT_TYPE);
        assert_eq!(
            v["subject"][0]["digest"]["sha256"],
            Digest::of(b"manifest").hex()
        );
        let deps = v["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap();
        let kinds: Vec<&str> = deps
            .iter()
            .map(|d| d["annotations"]["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["recipe", "lock", "base", "deb"]);
        assert_eq!(
            deps[2]["uri"],
            format!("docker://r.example/base:1@{}", Digest::of(b"base"))
        );
        assert_eq!(deps[3]["digest"]["sha256"], Digest::of(b"deb").hex());
        // Deterministic: the same build, the same bytes.
        assert_eq!(
            json,
            statement(&build(&pins, &sets), BTreeMap::new()).unwrap()
        );
    }
}
