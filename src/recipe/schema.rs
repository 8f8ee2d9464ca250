//! The recipe file format, v1 (design.md, "A recipe"), as serde types.
//!
//! Unknown fields are errors everywhere. Values with a grammar (paths, modes,
//! owners, ports, base references, platforms) are parsed into their types
//! during deserialization, so a bad one is reported at its own position.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::base::BaseRef;
use crate::image::{Platform, Port};
use crate::rootfs::meta::{ImagePath, Mode, Owner};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeSpec {
    pub name: String,
    pub version: String,
    pub base: BaseRef,
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Build-time values for templates, the same in every environment.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
    /// Runtime values, bound per environment at deploy time.
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
    #[serde(default)]
    pub layers: Vec<LayerSpec>,
    #[serde(default)]
    pub config: ConfigSpec,
    #[serde(default)]
    pub seal: SealSpec,
}

/// A runtime parameter. Recorded in the image (label
/// `dev.ingot.params`) so binding needs only the image.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !b
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
        }
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CopyStep {
    /// Relative to the recipe's directory; a file or a directory tree.
    pub src: String,
    pub dest: ImagePath,
    #[serde(default)]
    pub owner: Option<Owner>,
    /// Mode of every regular file copied; directories stay 0755.
    #[serde(default)]
    pub mode: Option<Mode>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileStep {
    pub dest: ImagePath,
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
    pub dest: ImagePath,
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

/// Image config set by the recipe; unset fields are inherited from the base.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealSpec {
    #[serde(default)]
    pub allow: Vec<SealAllow>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SealAllow {
    pub rule: String,
    pub path: ImagePath,
    pub reason: String,
}
