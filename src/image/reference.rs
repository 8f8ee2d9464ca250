//! References to images in OCI layouts: `PATH`, `PATH:TAG` or
//! `PATH@sha256:…` (the digest form is ingot's addition to skopeo's `oci:`
//! transport), and the [`ImageRef`] a command line names: a layout, a
//! docker-archive or a registry image. Used by bases and by the commands
//! that read images.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::digest::Digest;
use crate::registry::RegistryRef;

/// Which image of a layout a reference means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The layout's only image.
    Only,
    /// The image whose `org.opencontainers.image.ref.name` is this tag.
    Tag(String),
    /// The manifest or index with this digest.
    Digest(Digest),
}

/// An image in an OCI layout on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OciRef {
    pub path: PathBuf,
    pub selector: Selector,
}

impl FromStr for OciRef {
    type Err = String;

    /// Parses what follows `oci:`.
    fn from_str(s: &str) -> Result<OciRef, String> {
        let (path, selector) = if let Some((path, digest)) = s.rsplit_once('@') {
            let digest = digest
                .parse::<Digest>()
                .map_err(|e| format!("oci:{s}: {e}"))?;
            (path, Selector::Digest(digest))
        } else {
            // A tag never contains '/', so `oci:./a:b/c` is a path.
            match s.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') && !p.is_empty() => {
                    if !valid_tag(t) {
                        return Err(format!("oci:{s}: {t:?} is not a valid tag"));
                    }
                    (p, Selector::Tag(t.to_string()))
                }
                _ => (s, Selector::Only),
            }
        };
        if path.is_empty() {
            return Err(format!("oci:{s}: the layout path is empty"));
        }
        Ok(OciRef {
            path: PathBuf::from(path),
            selector,
        })
    }
}

impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "oci:{}", self.path.display())?;
        match &self.selector {
            Selector::Only => Ok(()),
            Selector::Tag(t) => write!(f, ":{t}"),
            Selector::Digest(d) => write!(f, "@{d}"),
        }
    }
}

/// An image reference on the command line. Transport names follow skopeo's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// `oci:PATH[:TAG]` or `oci:PATH@sha256:…`
    Oci(OciRef),
    /// `docker-archive:PATH`, a `docker save` tarball.
    DockerArchive(PathBuf),
    /// `docker://HOST[:PORT]/REPO[:TAG|@sha256:…]`, an image in a registry
    /// (push and pull; other commands read local images only).
    Docker(RegistryRef),
}

impl FromStr for ImageRef {
    type Err = String;

    fn from_str(s: &str) -> Result<ImageRef, String> {
        if let Some(rest) = s.strip_prefix("oci:") {
            return rest.parse().map(ImageRef::Oci);
        }
        if s.starts_with("docker://") {
            return s.parse().map(ImageRef::Docker);
        }
        match s.strip_prefix("docker-archive:") {
            Some(path) if !path.is_empty() => Ok(ImageRef::DockerArchive(PathBuf::from(path))),
            _ => Err(format!(
                "image {s:?}: expected oci:PATH[:TAG], oci:PATH@DIGEST, docker-archive:PATH \
                 or docker://HOST/REPO[:TAG]"
            )),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Oci(r) => write!(f, "{r}"),
            ImageRef::DockerArchive(p) => write!(f, "docker-archive:{}", p.display()),
            ImageRef::Docker(r) => write!(f, "{r}"),
        }
    }
}

/// The OCI distribution-spec tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
pub fn valid_tag(s: &str) -> bool {
    s.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tags_digests_and_bare_paths() {
        let r: OciRef = "out/hello:1.2.0".parse().unwrap();
        assert_eq!(r.path, PathBuf::from("out/hello"));
        assert_eq!(r.selector, Selector::Tag("1.2.0".into()));
        assert_eq!(r.to_string(), "oci:out/hello:1.2.0");

        let d = Digest::of(b"x");
        let r: OciRef = format!("../base@{d}").parse().unwrap();
        assert_eq!(r.selector, Selector::Digest(d));

        let r: OciRef = "./a:b/c".parse().unwrap();
        assert_eq!(
            (r.path, r.selector),
            (PathBuf::from("./a:b/c"), Selector::Only)
        );

        assert!("".parse::<OciRef>().is_err());
        assert!("x@sha256:nothex".parse::<OciRef>().is_err());
        assert!("x:.bad".parse::<OciRef>().is_err());
    }

    #[test]
    fn parses_image_references() {
        let r: ImageRef = "oci:out/hello:1.2.0".parse().unwrap();
        assert_eq!(r, ImageRef::Oci("out/hello:1.2.0".parse().unwrap()));
        let r: ImageRef = "docker-archive:a.tar".parse().unwrap();
        assert_eq!(r.to_string(), "docker-archive:a.tar");
        assert!("docker://x".parse::<ImageRef>().is_err());
        let r: ImageRef = "docker://127.0.0.1:5000/hello:1".parse().unwrap();
        assert!(matches!(&r, ImageRef::Docker(d) if d.repository == "hello"));
        assert_eq!(r.to_string(), "docker://127.0.0.1:5000/hello:1");
        assert!("oci:".parse::<ImageRef>().is_err());
        assert!("docker-archive:".parse::<ImageRef>().is_err());
    }

    #[test]
    fn tags_follow_the_distribution_grammar() {
        assert!(valid_tag("1.2.0") && valid_tag("_x") && !valid_tag(".x") && !valid_tag("a/b"));
    }
}
