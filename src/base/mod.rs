//! Base references and their resolution into a verified base image
//! (design.md, "Base references").
//!
//! Every kind of base resolves to the same thing, a [`BaseImage`]: a config,
//! the layer blobs (already in the output's blob store) and an identity.
//! New kinds slot in as a `BaseRef` variant plus a resolver module.

pub mod docker_archive;
pub mod oci;
pub mod stemcell;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::digest::Digest;
use crate::image::Platform;
use crate::image::reference::OciRef;
use crate::rootfs::meta::deserialize_from_str;

/// Where a recipe's base comes from. Transport names follow skopeo's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseRef {
    /// The empty image.
    Scratch,
    /// A stemcell embedded in the binary; `None` means the newest version.
    Stemcell {
        name: String,
        version: Option<String>,
    },
    /// An image in an OCI layout; a relative path is from the recipe's
    /// directory.
    Oci(OciRef),
    /// A `docker save` tarball.
    DockerArchive(PathBuf),
    /// Another recipe, built first.
    Recipe(PathBuf),
    /// An image in a registry, by tag (pinned in ingot.lock) or digest.
    Registry(crate::registry::RegistryRef),
}

impl FromStr for BaseRef {
    type Err = String;

    fn from_str(s: &str) -> Result<BaseRef, String> {
        if s == "scratch" {
            return Ok(BaseRef::Scratch);
        }
        if let Some(rest) = s.strip_prefix("stemcell:") {
            let (name, version) = match rest.split_once('@') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (rest, None),
            };
            let valid = |x: &str| {
                !x.is_empty()
                    && x.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            };
            if !valid(name) || version.as_deref().is_some_and(|v| !valid(v)) {
                return Err(format!(
                    "base {s:?}: expected stemcell:NAME or stemcell:NAME@VERSION"
                ));
            }
            return Ok(BaseRef::Stemcell {
                name: name.to_string(),
                version,
            });
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            return rest.parse().map(BaseRef::Oci);
        }
        let path = |rest: &str| {
            if rest.is_empty() {
                Err(format!("base {s:?}: the path is empty"))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            return path(rest).map(BaseRef::DockerArchive);
        }
        if let Some(rest) = s.strip_prefix("recipe:") {
            return path(rest).map(BaseRef::Recipe);
        }
        if s.starts_with("docker://") {
            return s.parse().map(BaseRef::Registry);
        }
        Err(format!(
            "base {s:?}: expected scratch, stemcell:NAME[@VERSION], recipe:PATH, \
             oci:PATH[:TAG], docker-archive:PATH or docker://HOST/REPO"
        ))
    }
}

deserialize_from_str!(BaseRef);

impl fmt::Display for BaseRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaseRef::Scratch => f.write_str("scratch"),
            BaseRef::Stemcell {
                name,
                version: Some(v),
            } => write!(f, "stemcell:{name}@{v}"),
            BaseRef::Stemcell {
                name,
                version: None,
            } => write!(f, "stemcell:{name}"),
            BaseRef::Oci(r) => write!(f, "{r}"),
            BaseRef::DockerArchive(p) => write!(f, "docker-archive:{}", p.display()),
            BaseRef::Recipe(p) => write!(f, "recipe:{}", p.display()),
            BaseRef::Registry(r) => write!(f, "{r}"),
        }
    }
}

/// A resolved base: what a recipe builds on.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The fully pinned reference (`stemcell:static@1.0.0`), for annotations.
    pub name: String,
    /// Manifest digest, where the base has a manifest.
    pub manifest_digest: Option<Digest>,
    /// Config digest: the base's identity (it covers every diff_id). None
    /// for scratch.
    pub config_digest: Option<Digest>,
    /// The base's config, from which the recipe inherits.
    pub config: oci_spec::image::ImageConfiguration,
    /// Layer descriptors, bottom first; their blobs are in the build's store.
    pub layers: Vec<oci_spec::image::Descriptor>,
    pub platform: Platform,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_base_references() {
        assert_eq!("scratch".parse(), Ok(BaseRef::Scratch));
        assert_eq!(
            "stemcell:static@1.0.0".parse(),
            Ok(BaseRef::Stemcell {
                name: "static".into(),
                version: Some("1.0.0".into())
            })
        );
        assert_eq!(
            "stemcell:static".parse::<BaseRef>().unwrap().to_string(),
            "stemcell:static"
        );
        for written in [
            "oci:./x:1",
            "docker-archive:a.tar",
            "recipe:../b/recipe.yaml",
        ] {
            assert_eq!(written.parse::<BaseRef>().unwrap().to_string(), written);
        }
        assert!(matches!(
            "docker://r.example/x:1".parse::<BaseRef>(),
            Ok(BaseRef::Registry(_))
        ));
        for bad in [
            "",
            "ubuntu",
            "stemcell:",
            "stemcell:a@",
            "stemcell:a/b",
            "oci:",
            "recipe:",
        ] {
            assert!(bad.parse::<BaseRef>().is_err(), "{bad}");
        }
    }
}
