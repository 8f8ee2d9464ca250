//! Image references, one grammar for recipes and commands alike, with
//! transport names as skopeo spells them:
//! - `oci:PATH`, `oci:PATH:TAG` or `oci:PATH@sha256:…` (the digest form is
//!   ingot's addition): an image in an OCI layout on disk;
//! - `docker-archive:PATH`: a `docker save` tarball;
//! - `docker://HOST[:PORT]/REPO[:TAG][@sha256:…]`: an image in a registry.
//!   The host is always explicit (no implied docker.io, no `library/`
//!   prefix): a reference names one place.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

use crate::digest::Digest;

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
    /// `docker://HOST[:PORT]/REPO[:TAG|@sha256:…]`, an image in a registry.
    Docker(RegistryRef),
}

impl ImageRef {
    /// Whether `s` names one of the transports an [`ImageRef`] reads (it
    /// may still be malformed).
    pub fn is_reference(s: &str) -> bool {
        ["oci:", "docker-archive:", "docker://"]
            .iter()
            .any(|t| s.starts_with(t))
    }
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

/// Whether `tag` names the signatures of an image, as cosign and
/// containers/image tag them (`sha256-<64 hex>.sig`), not an image.
pub fn is_signature_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-")
        .and_then(|t| t.strip_suffix(".sig"))
        .is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// An image, or a repository, in an OCI registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// The registry's authority as written: `host`, `host:port`,
    /// `[v6addr]:port`. It keys credentials and `--insecure`.
    pub host: String,
    /// `name/space/repo` (distribution-spec "name" grammar).
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl RegistryRef {
    /// The host without port or IPv6 brackets.
    pub fn hostname(&self) -> &str {
        hostname(&self.host)
    }

    /// Whether the registry is on this machine (127.0.0.0/8, ::1,
    /// localhost): the only hosts spoken to in plain HTTP by default.
    pub fn is_loopback(&self) -> bool {
        let name = self.hostname();
        name.eq_ignore_ascii_case("localhost")
            || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: Option<&str>) -> RegistryRef {
        RegistryRef {
            tag: tag.map(str::to_string),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository, by digest (the tag is kept for display only).
    pub fn with_digest(&self, digest: Digest) -> RegistryRef {
        RegistryRef {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// Another repository on the same registry.
    pub fn in_repository(&self, repository: &str) -> RegistryRef {
        RegistryRef {
            host: self.host.clone(),
            repository: repository.to_string(),
            tag: None,
            digest: None,
        }
    }
}

fn hostname(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// The host part of `--insecure HOST[:PORT]` or a reference: a DNS name or
/// IPv4 address with an optional port, or a bracketed IPv6 address.
pub fn valid_host(s: &str) -> bool {
    let (name, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((addr, tail)) = rest.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match (tail, tail.strip_prefix(':')) {
            ("", _) => (None, None),
            (_, Some(port)) => (None, Some(port)),
            _ => return false,
        }
    } else {
        match s.split_once(':') {
            Some((n, p)) => (Some(n), Some(p)),
            None => (Some(s), None),
        }
    };
    let name_ok = name.is_none_or(|n| {
        !n.is_empty()
            && n.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    name_ok && port_ok
}

/// A registry's authority as `--insecure` names it: `HOST[:PORT]` or
/// `[V6ADDR][:PORT]`, checked by [`valid_host`] when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host(String);

impl Host {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Host {
    type Err = String;

    fn from_str(s: &str) -> Result<Host, String> {
        if valid_host(s) {
            Ok(Host(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not a registry host: expected HOST or HOST:PORT, like reg.lan:5000"
            ))
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits a Docker-style name, `[HOST[:PORT]/]PATH`, where Docker does:
/// the first `/`-separated component is a registry host only when it has
/// a `.` or a `:` or is `localhost`, and something follows it. Neither
/// part is checked; see [`valid_host`] and [`valid_repository`].
pub fn split_host(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
            (Some(first), path)
        }
        _ => (None, name),
    }
}

/// A repository name: `/`-separated components of the distribution-spec
/// grammar.
pub fn valid_repository(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.split('/').all(valid_component)
}

/// A repository name on some registry (`team/app`), checked by
/// [`valid_repository`] when parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository(String);

impl Repository {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Repository {
    type Err = String;

    fn from_str(s: &str) -> Result<Repository, String> {
        if valid_repository(s) {
            Ok(Repository(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not a repository name (lowercase letters, digits and . _ - separators)"
            ))
        }
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// distribution-spec: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` per component.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or any number of "-".
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

impl FromStr for RegistryRef {
    type Err = String;

    /// Parses a whole `docker://…` reference.
    fn from_str(s: &str) -> Result<RegistryRef, String> {
        let usage = |why: &str| {
            format!(
                "{s:?}: {why}; expected docker://HOST[:PORT]/REPO[:TAG] or docker://HOST[:PORT]/REPO@sha256:…"
            )
        };
        let rest = s
            .strip_prefix("docker://")
            .ok_or_else(|| usage("not a docker:// reference"))?;
        let (rest, digest) = match rest.split_once('@') {
            Some((r, d)) => (
                r,
                Some(d.parse::<Digest>().map_err(|e| usage(&e.to_string()))?),
            ),
            None => (rest, None),
        };
        let (host, path) = rest
            .split_once('/')
            .ok_or_else(|| usage("no repository after the host"))?;
        if !valid_host(host) {
            return Err(usage(&format!("{host:?} is not a registry host")));
        }
        // A tag follows the last ':' after the last '/'.
        let last = path.rsplit('/').next().unwrap_or(path);
        let (repository, tag) = match last.rsplit_once(':') {
            Some((_, t)) => (&path[..path.len() - t.len() - 1], Some(t.to_string())),
            None => (path, None),
        };
        if let Some(t) = &tag
            && !valid_tag(t)
        {
            return Err(usage(&format!("{t:?} is not a valid tag")));
        }
        let repository = repository.parse::<Repository>().map_err(|e| usage(&e))?.0;
        if repository.len() + host.len() + 1 > 255 {
            return Err(usage("the name is longer than 255 characters"));
        }
        Ok(RegistryRef {
            host: host.to_string(),
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "docker://{}/{}", self.host, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
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

    #[test]
    fn parses_tags_digests_and_ports() {
        let r: RegistryRef = "docker://127.0.0.1:5000/team/hello:1.2.0".parse().unwrap();
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/hello");
        assert_eq!(r.tag.as_deref(), Some("1.2.0"));
        assert_eq!(r.digest, None);
        assert_eq!(r.to_string(), "docker://127.0.0.1:5000/team/hello:1.2.0");
        assert!(r.is_loopback());

        let d = Digest::of(b"x");
        let r: RegistryRef = format!("docker://registry.example.com/a/b@{d}")
            .parse()
            .unwrap();
        assert_eq!((r.tag.as_deref(), r.digest), (None, Some(d)));
        assert_eq!(r.hostname(), "registry.example.com");

        let r: RegistryRef = format!("docker://[::1]:5000/x:t@{d}").parse().unwrap();
        assert_eq!(r.hostname(), "::1");
        assert!(r.is_loopback());
        assert_eq!(r.tag.as_deref(), Some("t"));

        let r: RegistryRef = "docker://localhost/x".parse().unwrap();
        assert!(r.is_loopback() && r.tag.is_none());
        let r: RegistryRef = "docker://127.1.2.3:1/x".parse().unwrap();
        assert!(r.is_loopback());
        let r: RegistryRef = "docker://ghcr.io/o/x".parse().unwrap();
        assert!(!r.is_loopback());
    }

    #[test]
    fn refuses_what_is_not_a_reference() {
        for bad in [
            "docker://",
            "docker://alpine",
            "docker://host/",
            "docker://host/Upper",
            "docker://host/a//b",
            "docker://host/a:",
            "docker://host/a:.bad",
            "docker://host/a@sha256:nothex",
            "docker://ho st/a",
            "docker://host:port/a",
            "docker://host:0/a",
            "docker://[zz]:1/a",
            "docker://host/a--b_",
            "oci:x",
        ] {
            assert!(bad.parse::<RegistryRef>().is_err(), "{bad} parsed");
        }
        for good in ["docker://h/a--b", "docker://h/a__b", "docker://h/a.b/c_d"] {
            assert!(good.parse::<RegistryRef>().is_ok(), "{good} refused");
        }
    }

    #[test]
    fn a_host_is_told_apart_as_docker_does() {
        assert_eq!(split_host("team/app"), (None, "team/app"));
        assert_eq!(split_host("app"), (None, "app"));
        assert_eq!(split_host("localhost/app"), (Some("localhost"), "app"));
        assert_eq!(split_host("localhost"), (None, "localhost"));
        assert_eq!(split_host("reg.io/a/b"), (Some("reg.io"), "a/b"));
        assert_eq!(split_host("h:5000/a"), (Some("h:5000"), "a"));
        assert_eq!(split_host("[::1]:5000/x"), (Some("[::1]:5000"), "x"));
    }

    #[test]
    fn hosts() {
        for good in ["h", "h:1", "a.b-c.d:65535", "[::1]:5000", "[::1]"] {
            assert!(valid_host(good), "{good}");
        }
        for bad in [
            "", ":1", "h:", "h:x", "-h", "[::1", "[x]:1", "h/x", "h:99999", "h:65536",
        ] {
            assert!(!valid_host(bad), "{bad}");
        }
    }

    #[test]
    fn hosts_and_repositories_parse_only_when_valid() {
        let host: Host = "[::1]:5000".parse().unwrap();
        assert_eq!(host.as_str(), "[::1]:5000");
        let err = "h:port".parse::<Host>().unwrap_err();
        assert!(
            err.contains("\"h:port\"") && err.contains("HOST:PORT"),
            "{err}"
        );

        let repo: Repository = "team/app".parse().unwrap();
        assert_eq!(repo.to_string(), "team/app");
        for bad in ["", "UP", "a//b", "/a", "a:1"] {
            let err = bad.parse::<Repository>().unwrap_err();
            assert!(err.contains("not a repository name"), "{bad}: {err}");
        }
    }
}
