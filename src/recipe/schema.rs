//! The recipe file format, v1 (design.md, "A recipe"), as serde types.
//!
//! Unknown fields are errors everywhere. Values with a grammar (paths, modes,
//! owners, ports, base references, platforms) are parsed into their types
//! during deserialization, so a bad one is reported at its own position.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;

use crate::image::Platform;
pub use crate::image::config::ConfigSpec;
use crate::image::reference::ImageRef;
pub use crate::params::ParamSpec;
use crate::rootfs::meta::{ImagePath, Mode, ModeChange, Owner};
pub use crate::seal::SealAllow;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeSpec {
    pub name: String,
    pub version: String,
    pub base: BaseRef,
    #[serde(default)]
    pub platform: Option<Platform>,
    /// One image per platform under an image index, instead of `platform`.
    #[serde(default)]
    pub platforms: Option<Vec<Platform>>,
    /// Build-time values for templates, the same in every environment.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Runtime values, bound per environment at deploy time.
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    /// Debian archives `packages` steps install from; when empty, those of
    /// the base's recipe (a Debian stemcell's, or a `recipe:` base's).
    #[serde(default)]
    pub archives: Vec<ArchiveSpec>,
    #[serde(default)]
    pub layers: Vec<LayerSpec>,
    #[serde(default)]
    pub config: ConfigSpec,
    /// The image manifest's annotations, beside ingot's own.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub seal: SealSpec,
}

/// Where a recipe's base comes from (design.md, "Base references"): the
/// empty image, a stemcell, another recipe, or an image by any transport
/// [`ImageRef`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseRef {
    /// The empty image.
    Scratch,
    /// A stemcell embedded in the binary; `None` means the newest version.
    Stemcell {
        name: String,
        version: Option<String>,
    },
    /// Another recipe, built first; a relative path is from the recipe's
    /// directory.
    Recipe(PathBuf),
    /// An image: `oci:`, `docker-archive:` (a relative path is from the
    /// recipe's directory) or `docker://` (a tag is pinned in ingot.lock).
    Image(ImageRef),
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
        if let Some(rest) = s.strip_prefix("recipe:") {
            if rest.is_empty() {
                return Err(format!("base {s:?}: the path is empty"));
            }
            return Ok(BaseRef::Recipe(PathBuf::from(rest)));
        }
        if ImageRef::is_reference(s) {
            return s.parse().map(BaseRef::Image);
        }
        Err(format!(
            "base {s:?}: expected scratch, stemcell:NAME[@VERSION], recipe:PATH, \
             oci:PATH[:TAG], oci:PATH@sha256:…, docker-archive:PATH or docker://HOST/REPO[:TAG]"
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
            BaseRef::Recipe(p) => write!(f, "recipe:{}", p.display()),
            BaseRef::Image(r) => write!(f, "{r}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSpec {
    pub name: String,
    #[serde(with = "serde_yaml::with::singleton_map_recursive")]
    pub steps: Vec<Step>,
}

/// One change to the filesystem. Written in YAML as a one-key map:
/// `- copy: { src: files/site, dest: /srv/site }`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Step {
    Copy(CopyStep),
    File(FileStep),
    Template(TemplateStep),
    Mkdir(MkdirStep),
    Symlink(SymlinkStep),
    Remove(RemoveStep),
    User(UserStep),
    Group(GroupStep),
    Packages(PackagesStep),
    Attrs(AttrsStep),
    Extract(ExtractStep),
}

impl Step {
    /// The step's kind as written in recipes.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Copy(_) => "copy",
            Step::File(_) => "file",
            Step::Template(_) => "template",
            Step::Mkdir(_) => "mkdir",
            Step::Symlink(_) => "symlink",
            Step::Remove(_) => "remove",
            Step::User(_) => "user",
            Step::Group(_) => "group",
            Step::Packages(_) => "packages",
            Step::Attrs(_) => "attrs",
            Step::Extract(_) => "extract",
        }
    }
}

/// A step's `dest`: an image path, and whether it was written ending in
/// `/`, naming a directory to copy into (as `cp` and Dockerfile `COPY`
/// read it) rather than the file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    pub path: ImagePath,
    /// Written with a trailing `/` (the root `/` is one).
    pub dir: bool,
}

impl FromStr for Dest {
    type Err = String;

    fn from_str(s: &str) -> Result<Dest, String> {
        Ok(Dest {
            path: s.parse()?,
            dir: s.ends_with('/'),
        })
    }
}

deserialize_from_str!(Dest);

impl fmt::Display for Dest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dir && !self.path.is_root() {
            write!(f, "{}/", self.path)
        } else {
            write!(f, "{}", self.path)
        }
    }
}

/// As written (the cache key tells `/srv` from `/srv/`).
impl serde::Serialize for Dest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CopyStep {
    /// Relative to the recipe's directory; a file or a directory tree.
    pub src: String,
    /// A file source lands at `dest`, or inside it when `dest` ends in
    /// `/`; a directory's contents land in `dest` either way.
    pub dest: Dest,
    #[serde(default)]
    pub owner: Option<Owner>,
    /// Mode of every regular file copied; directories stay 0755.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Keep each file's and new directory's permission bits as the source
    /// has them, instead of 0644/0755 by the owner's execute bit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_modes: bool,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileStep {
    pub dest: Dest,
    pub content: String,
    #[serde(default)]
    pub owner: Option<Owner>,
    #[serde(default)]
    pub mode: Option<Mode>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateStep {
    pub src: String,
    pub dest: Dest,
    #[serde(default)]
    pub owner: Option<Owner>,
    #[serde(default)]
    pub mode: Option<Mode>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MkdirStep {
    pub path: ImagePath,
    #[serde(default)]
    pub owner: Option<Owner>,
    #[serde(default)]
    pub mode: Option<Mode>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SymlinkStep {
    pub path: ImagePath,
    /// Written as given: absolute or relative to the link's directory.
    pub target: String,
    #[serde(default)]
    pub owner: Option<Owner>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveStep {
    pub path: ImagePath,
}

/// Changes the mode and owner of paths that exist (below, or earlier in
/// the layer): `path` is followed if it is a symlink, as chmod and chown
/// follow one they are given; with `recursive`, everything below it too,
/// symlinks not followed (chmod -R), the root's own attributes aside.
/// Only what changes is written again: a file's content is carried into
/// the layer with its new attributes, as overlay filesystems copy up.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct AttrsStep {
    pub path: ImagePath,
    /// Octal (`"0755"`) or chmod's symbolic form (`"u-s,g-s"`); symlinks
    /// have no mode of their own and keep theirs.
    #[serde(default)]
    pub mode: Option<ModeChange>,
    #[serde(default)]
    pub owner: Option<Owner>,
    #[serde(default)]
    pub recursive: bool,
}

/// Unpacks a tar archive from the recipe's directory (plain, gzip, xz or
/// zstd, told by its first bytes) into the image at `dest`, keeping its
/// modes, owners, symlinks and hardlinks; read as a base layer is, every
/// check applied, with the archive as its own root.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractStep {
    pub src: String,
    #[serde(default = "ImagePath::root")]
    pub dest: ImagePath,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserStep {
    pub name: String,
    pub uid: u32,
    /// Primary group id; defaults to `uid`. A group of the user's name is
    /// created when no group has this id.
    #[serde(default)]
    pub gid: Option<u32>,
    /// Defaults to `/home/NAME`; created (0750, owned by the user) when
    /// absent, except `/nonexistent`, the convention for no home.
    #[serde(default)]
    pub home: Option<ImagePath>,
    #[serde(default)]
    pub shell: Option<String>,
    #[serde(default)]
    pub gecos: Option<String>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupStep {
    pub name: String,
    pub gid: u32,
    #[serde(default)]
    pub members: Vec<String>,
}

/// Installs Debian packages and their dependencies, as `ingot.lock` pins
/// them, without running their maintainer scripts.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PackagesStep {
    pub install: Vec<String>,
    /// Packages left out of the closure even though something depends on
    /// them (the lock says what wanted each).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Clears the setuid and setgid bits of every file the packages
    /// install, which the seal refuses otherwise.
    #[serde(default)]
    pub drop_setuid: bool,
}

/// A Debian archive: `url` holds `dists/` and `pool/`; `InRelease` of each
/// suite must be signed by a key of `keyring` (a file in the recipe's
/// directory, binary or armored).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveSpec {
    pub url: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub keyring: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealSpec {
    #[serde(default)]
    pub allow: Vec<SealAllow>,
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
            "docker://r.example/x:1",
        ] {
            assert_eq!(written.parse::<BaseRef>().unwrap().to_string(), written);
        }
        assert!(matches!(
            "docker://r.example/x:1".parse::<BaseRef>(),
            Ok(BaseRef::Image(ImageRef::Docker(_)))
        ));
        for bad in [
            "",
            "ubuntu",
            "stemcell:",
            "stemcell:a@",
            "stemcell:a/b",
            "oci:",
            "recipe:",
            "docker-archive:",
            "docker://[::1]:99999/x",
        ] {
            assert!(bad.parse::<BaseRef>().is_err(), "{bad}");
        }
    }
}
