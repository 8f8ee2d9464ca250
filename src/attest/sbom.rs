//! An image's SBOM: an SPDX 2.3 JSON document
//! (<https://spdx.github.io/spdx-spec/v2.3/>) of what the image is and
//! holds, read from the image alone, so that a build and `ingot sbom`
//! of the image it made write the same bytes.
//!
//! - the image is the root package (DOCUMENT DESCRIBES it), named by its
//!   annotations (else its reference), its digest its checksum and purl;
//! - its base, as its annotations record it (`image.base.name`,
//!   `image.base.digest`): the image is DESCENDANT_OF it;
//! - every package the merged filesystem's databases list as installed
//!   (dpkg's `status` and `status.d/`, apk's `installed`), with version,
//!   architecture, license where the database has one, and a purl: the
//!   image CONTAINS them;
//! - the recipe's own files: every regular file of the merged filesystem
//!   that the image's own layers (not its base's, see [`own_layers`])
//!   hold, with the SHA-256 and the SHA-1 SPDX requires.
//!
//! Layers are streamed through the view's reader ([`tree::owned`]), each
//! blob verified as it is read; nothing is unpacked. A build lists the
//! files as it wrote them instead ([`OwnFiles::AsBuilt`]), to the same
//! bytes. Files are listed layer by layer, bottom first, each in the order
//! its layer holds them (ingot's canonical order); every other list is
//! sorted, and every SPDX id derived from what it names, so the document
//! depends on the image's content alone: `documentNamespace` on its
//! digest, `created` on the time it records (SOURCE_DATE_EPOCH).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde::ser::SerializeSeq;

use super::{URI_BASE, VERSION};
use super::{files, verification};
use crate::base::stemcell;
use crate::diff::Side;
use crate::diff::tree::{self, OwnFile};
use crate::digest::{Digest, hex_in};
use crate::error::{Error, Result};
use crate::image::identity::DigestOf;
use crate::image::{annotation, epoch_of, rfc3339};
use crate::progress::Progress;
use crate::rootfs::meta::ImagePath;
use crate::rootfs::packages::{self, Database};

/// The media type of the document, and the `artifactType` of its referrer.
pub const MEDIA_TYPE: &str = "application/spdx+json";

/// SPDX's value for "the creator of this document makes no assertion".
const NOASSERTION: &str = "NOASSERTION";

/// The SBOM of the image `side`, as canonical JSON; the layers it reads
/// are reported to `progress`.
pub fn sbom(side: &Side, progress: &Progress) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    sbom_to(side, progress, &mut out)?;
    Ok(out)
}

/// The SBOM of the image `side`, written to `out` as it is encoded: the
/// document of a 300,000-file image is hundreds of MB, not to be held.
pub fn sbom_to(side: &Side, progress: &Progress, out: &mut dyn std::io::Write) -> Result<()> {
    let diff_ids = side.diff_ids()?;
    let own_from = own_layers(side);
    let owned = tree::owned(side, &diff_ids, own_from, progress)?;
    sbom_of(side, &OwnFiles::Read(owned.files), &owned.databases, out)
}

/// An image's own files as its SBOM lists them, in the order it lists
/// them: layer by layer, bottom first, each file as the layer that last
/// wrote it holds it.
pub enum OwnFiles<'a> {
    /// Read back from the image ([`tree::owned`]), held.
    Read(Vec<OwnFile>),
    /// As the build that made the image hashed them, read from its lists
    /// as often as the document needs them.
    AsBuilt(files::AsBuilt<'a>),
}

impl OwnFiles<'_> {
    /// Hands each file listed to `each`, in order: its path, SHA-256 and
    /// SHA-1. Stops at the first error.
    fn each(&self, each: &mut files::EachFile) -> std::result::Result<(), String> {
        match self {
            OwnFiles::Read(files) => files
                .iter()
                .try_for_each(|f| each(f.path.as_rel(), f.sha256.as_bytes(), &f.sha1)),
            OwnFiles::AsBuilt(files) => files.each(each),
        }
    }
}

/// The SBOM of the image `side`, whose own files are `own` and whose
/// package databases are `databases`, written to `out`.
pub fn sbom_of(
    side: &Side,
    own: &OwnFiles,
    databases: &BTreeMap<ImagePath, (Database, Vec<u8>)>,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    // A first pass for the verification code, which SPDX puts in the
    // image's package, of every file listed.
    let mut code = verification::Code::default();
    let mut listed = 0;
    let read = own.each(&mut |_, _, sha1| {
        listed += 1;
        code.push(*sha1).map_err(|e| format!("sorting SHA-1s: {e}"))
    });
    let code = read
        .and_then(|()| code.finish().map_err(|e| format!("sorting SHA-1s: {e}")))
        .map_err(|e| Error::Failed(format!("{}: listing its files: {e}", side.reference)))?;
    let verification_code = code.map(|value| VerificationCode {
        package_verification_code_value: value,
    });
    let installed = installed(databases);
    let document = document(side, &installed, own, listed, verification_code);
    let mut out = std::io::BufWriter::new(out);
    serde_json::to_writer(&mut out, &document)
        .map_err(|e| Error::Failed(format!("{}: encoding the SBOM: {e}", side.reference)))?;
    std::io::Write::flush(&mut out)
        .map_err(|e| Error::Failed(format!("{}: writing the SBOM: {e}", side.reference)))
}

/// The position of the image's lowest own layer: those above it are the
/// recipe's. ingot marks each layer a recipe writes (`dev.ingot.layer.name`),
/// and an image built on a stemcell keeps the stemcell's marked layers too:
/// their number is known from the stemcell this binary embeds. Otherwise
/// the image's own layers are the marked ones at the top, so an image on
/// a `recipe:` base counts that base's layers as its own; a foreign image
/// has none.
pub fn own_layers(side: &Side) -> usize {
    own_layers_of(side.layers, side.annotations)
}

/// [`own_layers`] of an image by its manifest's `layers` and
/// `annotations`.
pub fn own_layers_of(
    layers: &[oci_spec::image::Descriptor],
    annotations: Option<&std::collections::HashMap<String, String>>,
) -> usize {
    let marked = layers
        .iter()
        .rev()
        .take_while(|d| {
            d.annotations()
                .as_ref()
                .is_some_and(|a| a.contains_key(annotation::LAYER_NAME))
        })
        .count();
    let top = layers.len() - marked;
    let stemcell = annotations
        .and_then(|a| a.get(annotation::BASE_NAME))
        .and_then(|name| stemcell::pinned(name))
        .and_then(|(name, version)| stemcell::layer_count(name, version));
    match stemcell {
        Some(below) if below <= layers.len() => below.max(top),
        _ => top,
    }
}

/// A package a database lists as installed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Installed {
    kind: Kind,
    name: String,
    version: String,
    architecture: String,
    license: Option<String>,
}

/// Which package format, as purls name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Deb,
    Apk,
}

impl Kind {
    fn purl_type(self) -> &'static str {
        match self {
            Kind::Deb => "deb/debian",
            Kind::Apk => "apk/alpine",
        }
    }
}

/// Every installed package of the databases, each once, sorted.
fn installed(databases: &BTreeMap<ImagePath, (Database, Vec<u8>)>) -> BTreeSet<Installed> {
    let mut out = BTreeSet::new();
    for (database, bytes) in databases.values() {
        let kind = match database {
            Database::Dpkg | Database::DpkgStatusD => Kind::Deb,
            Database::Apk => Kind::Apk,
        };
        let text = String::from_utf8_lossy(bytes);
        for p in packages::read(*database, &text) {
            if !p.installed {
                continue;
            }
            out.insert(Installed {
                kind,
                name: p.name,
                version: p.version,
                architecture: p.architecture,
                license: p.license,
            });
        }
    }
    out
}

/// Writes the id of the own file at `path` into `id`, replacing what it
/// held: the document names each file twice, 600,000 ids at 300,000 files,
/// made in one buffer.
fn file_id_in(id: &mut String, path: &str) {
    spdx_id_in(id, ["File-", path], path);
}

/// Serializes into `seq` the entry of an own file: its path, SHA-256 and
/// SHA-1; `id` is scratch space.
fn file_entry<Q: SerializeSeq>(
    seq: &mut Q,
    id: &mut String,
    (path, sha256, sha1): (&str, &[u8; 32], &[u8; 20]),
) -> std::result::Result<(), Q::Error> {
    file_id_in(id, path);
    let (mut sha1_hex, mut sha256_hex) = ([0; 40], [0; 64]);
    seq.serialize_element(&File {
        spdx_id: id,
        checksums: [
            Checksum {
                algorithm: "SHA1",
                checksum_value: Cow::Borrowed(hex_in(sha1, &mut sha1_hex)),
            },
            Checksum {
                algorithm: "SHA256",
                checksum_value: Cow::Borrowed(hex_in(sha256, &mut sha256_hex)),
            },
        ],
        copyright_text: NOASSERTION,
        file_name: FileName(path),
        license_concluded: NOASSERTION,
    })
}

/// The document's files: each one's entry made as it is written, never
/// all held (an image of 300,000 files lists hundreds of MB of them).
struct Files<'a> {
    own: &'a OwnFiles<'a>,
    /// How many there are.
    listed: usize,
}

impl Files<'_> {
    fn is_empty(&self) -> bool {
        self.listed == 0
    }
}

impl Serialize for Files<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.listed))?;
        let mut id = String::new();
        each_element(&mut seq, self.own, |seq, file| {
            file_entry(seq, &mut id, file)
        })?;
        seq.end()
    }
}

/// The document's relationships: the image's and its packages', then the
/// image CONTAINS each own file, made as it is written, as [`Files`] are.
struct Relationships<'a> {
    listed: Vec<Relationship<'static>>,
    files: &'a OwnFiles<'a>,
}

impl Serialize for Relationships<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for relationship in &self.listed {
            seq.serialize_element(relationship)?;
        }
        let mut id = String::new();
        each_element(&mut seq, self.files, |seq, (path, _, _)| {
            file_id_in(&mut id, path);
            seq.serialize_element(&Relationship {
                related_spdx_element: Cow::Borrowed(&id),
                relationship_type: "CONTAINS",
                spdx_element_id: Cow::Borrowed(IMAGE_ID),
            })
        })?;
        seq.end()
    }
}

/// An own file as [`OwnFiles::each`] hands it over: its path, SHA-256 and
/// SHA-1.
type Listed<'f> = (&'f str, &'f [u8; 32], &'f [u8; 20]);

/// Has `element` serialize into `seq` each own file, in order; the first
/// error, the serializer's or one reading the files, ends it.
fn each_element<Q: SerializeSeq>(
    seq: &mut Q,
    own: &OwnFiles,
    mut element: impl FnMut(&mut Q, Listed) -> std::result::Result<(), Q::Error>,
) -> std::result::Result<(), Q::Error> {
    let mut failed = None;
    let each = own.each(&mut |path, sha256, sha1| {
        element(seq, (path, sha256, sha1)).map_err(|e| failed.insert(e).to_string())
    });
    match failed {
        Some(e) => Err(e),
        None => each.map_err(serde::ser::Error::custom),
    }
}

// SPDX 2.3 JSON, the fields ingot writes (spec clauses 6, 7, 8, 11).
// Each struct's fields are in the order of their JSON names, so that
// serde_json writes the canonical form (keys sorted) straight away: going
// through a `serde_json::Value` would cost kilobytes per file listed
// (issue 19). `fields_are_in_canonical_order` holds them to it.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    #[serde(rename = "SPDXID")]
    spdx_id: &'static str,
    creation_info: CreationInfo,
    data_license: &'static str,
    document_namespace: String,
    #[serde(skip_serializing_if = "Files::is_empty")]
    files: Files<'a>,
    name: String,
    packages: Vec<Package>,
    relationships: Relationships<'a>,
    spdx_version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CreationInfo {
    created: String,
    creators: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Package {
    #[serde(rename = "SPDXID")]
    spdx_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    checksums: Vec<Checksum<'static>>,
    copyright_text: &'static str,
    download_location: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_refs: Vec<ExternalRef>,
    files_analyzed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    license_comments: Option<String>,
    license_concluded: &'static str,
    license_declared: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    package_verification_code: Option<VerificationCode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_package_purpose: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_info: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VerificationCode {
    package_verification_code_value: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct File<'a> {
    #[serde(rename = "SPDXID")]
    spdx_id: &'a str,
    checksums: [Checksum<'a>; 2],
    copyright_text: &'static str,
    file_name: FileName<'a>,
    license_concluded: &'static str,
}

/// A file's name as SPDX wants it (7.1), relative to the root: `./path`,
/// written without being made.
struct FileName<'a>(&'a str);

impl Serialize for FileName<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("./{}", self.0))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum<'a> {
    algorithm: &'static str,
    checksum_value: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalRef {
    reference_category: &'static str,
    reference_locator: String,
    reference_type: &'static str,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Relationship<'a> {
    related_spdx_element: Cow<'a, str>,
    relationship_type: &'static str,
    spdx_element_id: Cow<'a, str>,
}

const IMAGE_ID: &str = "SPDXRef-Image";
const BASE_ID: &str = "SPDXRef-Base";

fn document<'a>(
    side: &Side,
    installed: &BTreeSet<Installed>,
    own: &'a OwnFiles<'a>,
    listed: usize,
    verification_code: Option<VerificationCode>,
) -> Document<'a> {
    let annotations = side.annotations;
    let get = |key: &str| annotations.and_then(|a| a.get(key)).cloned();
    let identity = side.identity.digest();
    let name = get(annotation::TITLE).unwrap_or_else(|| side.reference.to_string());
    let version = get(annotation::VERSION);
    let digest_of = match side.identity.digest_of() {
        DigestOf::Manifest => "manifest",
        DigestOf::Config => "config",
    };
    let mut packages = vec![Package {
        spdx_id: IMAGE_ID.into(),
        name: name.clone(),
        version_info: version.clone(),
        download_location: NOASSERTION,
        // The image CONTAINS the files listed, so it is analyzed: SPDX
        // then wants the verification code of those files (7.9).
        files_analyzed: listed > 0,
        package_verification_code: verification_code,
        primary_package_purpose: Some("CONTAINER"),
        checksums: vec![sha256(&identity)],
        license_concluded: NOASSERTION,
        license_declared: NOASSERTION.into(),
        license_comments: None,
        copyright_text: NOASSERTION,
        external_refs: vec![purl(oci_purl(&name, &identity, version.as_deref()))],
    }];
    let mut relationships = vec![relationship("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE_ID)];
    if let Some(base) = get(annotation::BASE_NAME) {
        let digest = get(annotation::BASE_DIGEST).and_then(|d| d.parse::<Digest>().ok());
        packages.push(Package {
            spdx_id: BASE_ID.into(),
            name: base.clone(),
            version_info: None,
            download_location: NOASSERTION,
            files_analyzed: false,
            package_verification_code: None,
            primary_package_purpose: Some("CONTAINER"),
            checksums: digest.iter().map(sha256).collect(),
            license_concluded: NOASSERTION,
            license_declared: NOASSERTION.into(),
            license_comments: None,
            copyright_text: NOASSERTION,
            external_refs: digest
                .iter()
                .map(|d| purl(oci_purl(&base, d, None)))
                .collect(),
        });
        relationships.push(relationship(IMAGE_ID, "DESCENDANT_OF", BASE_ID));
    }
    for p in installed {
        let key = [p.kind.purl_type(), &p.name, &p.version, &p.architecture].join("\0");
        let id = spdx_id(&format!("Package-{}", p.name), &key);
        relationships.push(relationship(IMAGE_ID, "CONTAINS", &id));
        let (declared, comments) = license(p.license.as_deref());
        packages.push(Package {
            spdx_id: id,
            name: p.name.clone(),
            version_info: Some(p.version.clone()).filter(|v| !v.is_empty()),
            download_location: NOASSERTION,
            files_analyzed: false,
            package_verification_code: None,
            primary_package_purpose: None,
            checksums: Vec::new(),
            license_concluded: NOASSERTION,
            license_declared: declared,
            license_comments: comments,
            copyright_text: NOASSERTION,
            external_refs: vec![purl(package_purl(p))],
        });
    }
    Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        spdx_id: "SPDXRef-DOCUMENT",
        name: match &version {
            Some(v) => format!("{name}:{v}"),
            None => name.clone(),
        },
        document_namespace: format!("{URI_BASE}/spdx/{digest_of}/sha256-{}", identity.hex()),
        creation_info: CreationInfo {
            created: created(side),
            creators: vec![format!("Tool: ingot-{VERSION}")],
        },
        packages,
        files: Files { own, listed },
        relationships: Relationships {
            listed: relationships,
            files: own,
        },
    }
}

/// When the image was made, as SPDX writes times (`YYYY-MM-DDThh:mm:ssZ`):
/// what ingot recorded (SOURCE_DATE_EPOCH), else the config's `created`,
/// else the epoch.
fn created(side: &Side) -> String {
    let recorded = side
        .annotations
        .and_then(|a| a.get(annotation::CREATED))
        .cloned()
        .or_else(|| side.config.created().clone());
    recorded
        .and_then(|t| match epoch_of(&t) {
            Ok(epoch) => Some(rfc3339(epoch)),
            // A foreign config's time with fractions or an offset: its
            // seconds, if it has the shape.
            Err(_) => humantime::parse_rfc3339_weak(&t)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| rfc3339(d.as_secs())),
        })
        .unwrap_or_else(|| rfc3339(0))
}

fn sha256(digest: &Digest) -> Checksum<'static> {
    Checksum {
        algorithm: "SHA256",
        checksum_value: Cow::Owned(digest.hex()),
    }
}

fn purl(locator: String) -> ExternalRef {
    ExternalRef {
        reference_category: "PACKAGE-MANAGER",
        reference_type: "purl",
        reference_locator: locator,
    }
}

fn relationship(from: &str, kind: &'static str, to: &str) -> Relationship<'static> {
    Relationship {
        spdx_element_id: Cow::Owned(from.into()),
        relationship_type: kind,
        related_spdx_element: Cow::Owned(to.into()),
    }
}

/// `SPDXRef-` and `readable` in the characters an SPDX idstring allows
/// (`[A-Za-z0-9.-]`, spec 3.2), made unique by the start of the sha256 of
/// `key`, what the element exactly is: the same element always gets the
/// same id, whatever else the document holds.
fn spdx_id(readable: &str, key: &str) -> String {
    let mut id = String::new();
    spdx_id_in(&mut id, [readable, ""], key);
    id
}

/// [`spdx_id`] of `readable`'s two parts one after the other, written into
/// `id`, replacing what it held.
fn spdx_id_in(id: &mut String, readable: [&str; 2], key: &str) {
    id.clear();
    id.push_str("SPDXRef-");
    let mut room = 96;
    'parts: for part in readable {
        for c in part.chars() {
            if room == 0 {
                break 'parts;
            }
            room -= 1;
            id.push(match c {
                'A'..='Z' | 'a'..='z' | '0'..='9' | '.' | '-' => c,
                _ => '-',
            });
        }
    }
    id.push('-');
    let mut hash = [0; 64];
    id.push_str(&hex_in(Digest::of(key.as_bytes()).as_bytes(), &mut hash)[..12]);
}

/// The purl of an OCI image (purl-spec, "oci"): the last part of its
/// repository, lowercase, at its digest; the tag as a qualifier.
fn oci_purl(name: &str, digest: &Digest, tag: Option<&str>) -> String {
    // `docker://host/a/b:tag@sha256:…`, `stemcell:static@1.0.0`,
    // `oci:dir/app:1.0`: the repository's last part, without transport,
    // tag or digest.
    let repo = name.rsplit_once("://").map_or(name, |(_, r)| r);
    let repo = ["stemcell:", "oci:", "docker-archive:"]
        .iter()
        .find_map(|p| repo.strip_prefix(p))
        .unwrap_or(repo);
    let repo = repo.split('@').next().unwrap_or(repo);
    let last = repo.rsplit('/').next().unwrap_or(repo);
    let last = last
        .split(':')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("image");
    let mut out = format!(
        "pkg:oci/{}@{}",
        encode(&last.to_ascii_lowercase()),
        encode(&digest.to_string())
    );
    if let Some(tag) = tag {
        out.push_str(&format!("?tag={}", encode(tag)));
    }
    out
}

/// `pkg:deb/debian/NAME@VERSION?arch=ARCH`, `pkg:apk/alpine/…`.
fn package_purl(p: &Installed) -> String {
    let mut out = format!("pkg:{}/{}", p.kind.purl_type(), encode(&p.name));
    if !p.version.is_empty() {
        out.push_str(&format!("@{}", encode(&p.version)));
    }
    if !p.architecture.is_empty() {
        out.push_str(&format!("?arch={}", encode(&p.architecture)));
    }
    out
}

/// Percent-encodes what purl-spec does not allow bare in a component
/// (`:` of an epoch, `+` of a Debian revision, …).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An apk `L:` value as a declared license: an SPDX expression when it is
/// written as one (ids joined by AND/OR/WITH, or several ids apk lists
/// with spaces, taken as all applying), the value kept as a comment;
/// NOASSERTION when there is none or it is no expression.
fn license(value: Option<&str>) -> (String, Option<String>) {
    let Some(value) = value else {
        return (NOASSERTION.into(), None);
    };
    let words: Vec<&str> = value.split_whitespace().collect();
    let is_id = |w: &str| {
        !w.is_empty()
            && w.trim_end_matches('+')
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
            && w.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
    };
    let operators = ["AND", "OR", "WITH"];
    let expression = if words.iter().any(|w| operators.contains(w)) {
        let alternating = words.iter().enumerate().all(|(i, w)| {
            if i % 2 == 0 {
                is_id(w) && !operators.contains(w)
            } else {
                operators.contains(w)
            }
        });
        (alternating && words.len() % 2 == 1).then(|| words.join(" "))
    } else if !words.is_empty() && words.iter().all(|w| is_id(w)) {
        Some(words.join(" AND "))
    } else {
        None
    };
    (
        expression.unwrap_or_else(|| NOASSERTION.into()),
        Some(format!("as the package database writes it: {value}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_in_canonical_order() {
        let full = Package {
            spdx_id: "SPDXRef-P".into(),
            checksums: vec![sha256(&Digest::of(b"p"))],
            copyright_text: NOASSERTION,
            download_location: NOASSERTION,
            external_refs: vec![purl("pkg:deb/debian/p@1".into())],
            files_analyzed: true,
            license_comments: Some("c".into()),
            license_concluded: NOASSERTION,
            license_declared: "MIT".into(),
            name: "p".into(),
            package_verification_code: Some(VerificationCode {
                package_verification_code_value: "0".into(),
            }),
            primary_package_purpose: Some("CONTAINER"),
            version_info: Some("1".into()),
        };
        let own = OwnFiles::Read(vec![OwnFile::new(
            ImagePath::from_rel("f").unwrap(),
            Digest::of(b"f"),
            [1; 20],
        )]);
        let document = Document {
            spdx_id: "SPDXRef-DOCUMENT",
            creation_info: CreationInfo {
                created: rfc3339(0),
                creators: vec!["Tool: ingot".into()],
            },
            data_license: "CC0-1.0",
            document_namespace: "ns".into(),
            files: Files {
                own: &own,
                listed: 1,
            },
            name: "d".into(),
            packages: vec![full],
            relationships: Relationships {
                listed: vec![relationship("a", "CONTAINS", "b")],
                files: &own,
            },
            spdx_version: "SPDX-2.3",
        };
        assert_eq!(
            String::from_utf8(serde_json::to_vec(&document).unwrap()).unwrap(),
            String::from_utf8(crate::image::canonical_json(&document).unwrap()).unwrap()
        );
    }

    #[test]
    fn ids_are_idstrings_and_stable() {
        let id = spdx_id("Package-libstdc++6", "deb/libstdc++6/1:12.2-1/amd64");
        assert!(id.starts_with("SPDXRef-Package-libstdc--6-"), "{id}");
        assert!(
            id["SPDXRef-".len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'),
            "{id}"
        );
        assert_eq!(
            id,
            spdx_id("Package-libstdc++6", "deb/libstdc++6/1:12.2-1/amd64")
        );
        // Names that clean alike stay apart.
        assert_ne!(spdx_id("File-a b", "a b"), spdx_id("File-a_b", "a_b"));
    }

    proptest::proptest! {
        /// A file's id, made in its buffer, is what the id of its readable
        /// name is: the first 96 characters cleaned, the key's hash after.
        #[test]
        fn file_ids_made_in_place_are_ids(path in "[a-z/.é +]{0,120}") {
            let readable: String = format!("File-{path}")
                .chars()
                .take(96)
                .map(|c| if c.is_ascii_alphanumeric() || ".-".contains(c) { c } else { '-' })
                .collect();
            let hash = Digest::of(path.as_bytes()).hex();
            let mut id = String::from("left over");
            file_id_in(&mut id, &path);
            proptest::prop_assert_eq!(id, format!("SPDXRef-{readable}-{}", &hash[..12]));
        }
    }

    #[test]
    fn purls() {
        let p = Installed {
            kind: Kind::Deb,
            name: "libc6".into(),
            version: "2.36-9+deb12u4".into(),
            architecture: "amd64".into(),
            license: None,
        };
        assert_eq!(
            package_purl(&p),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"
        );
        let d = Digest::of(b"x");
        assert_eq!(
            oci_purl("docker://127.0.0.1:5000/team/Web:1.0", &d, Some("1.0")),
            format!("pkg:oci/web@sha256%3A{}?tag=1.0", d.hex())
        );
        assert_eq!(
            oci_purl("stemcell:static@1.0.0", &d, None),
            format!("pkg:oci/static@sha256%3A{}", d.hex())
        );
    }

    #[test]
    fn apk_licenses() {
        assert_eq!(license(None).0, NOASSERTION);
        assert_eq!(license(Some("MIT")).0, "MIT");
        assert_eq!(license(Some("MIT BSD-2-Clause")).0, "MIT AND BSD-2-Clause");
        assert_eq!(
            license(Some("GPL-2.0-only OR MIT")).0,
            "GPL-2.0-only OR MIT"
        );
        assert_eq!(license(Some("custom:foo")).0, NOASSERTION);
        assert_eq!(license(Some("MIT AND")).0, NOASSERTION);
    }
}
