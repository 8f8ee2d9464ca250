//! Stemcells: standardized base images shipped inside the binary
//! (design.md, "Base references"). Each is a recipe on `scratch` under
//! `base-images/NAME/VERSION/`, so it is built the same way as any recipe,
//! with a fixed timestamp, and so has one digest per version on every
//! machine. A released version's directory is never edited: a change is a
//! new version beside it, and every version stays buildable.

use std::path::Path;

use include_dir::{Dir, include_dir};

use crate::recipe::{Recipe, RecipeError};

static BASE_IMAGES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/base-images");

/// Stemcells are built at this SOURCE_DATE_EPOCH whatever the build's own,
/// so that a stemcell version has exactly one identity.
pub const STEMCELL_EPOCH: u64 = 0;

/// What a stemcell's recipe.yaml says of itself, read without building.
#[derive(serde::Deserialize)]
struct Head {
    name: String,
    version: String,
    base: String,
    layers: Vec<serde_yaml::Value>,
}

/// Every embedded stemcell version: its directory
/// (`base-images/NAME/VERSION/`) and what its recipe says.
fn embedded() -> impl Iterator<Item = (&'static Dir<'static>, Head)> {
    BASE_IMAGES
        .dirs()
        .flat_map(|stemcell| stemcell.dirs())
        .filter_map(|dir| {
            let text = dir
                .get_file(dir.path().join("recipe.yaml"))?
                .contents_utf8()?;
            Some((dir, serde_yaml::from_str::<Head>(text).ok()?))
        })
}

/// Name and version of every embedded stemcell.
pub fn available() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = embedded().map(|(_, h)| (h.name, h.version)).collect();
    out.sort();
    out
}

/// The newest embedded version of stemcell `name`.
pub fn newest(name: &str) -> Option<String> {
    available()
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v)
        .max_by(|a, b| version_key(a).cmp(&version_key(b)))
}

/// The name and version a fully pinned stemcell reference names
/// (`stemcell:static@1.0.0`), as images and locks record it.
pub fn pinned(reference: &str) -> Option<(&str, &str)> {
    reference.strip_prefix("stemcell:")?.split_once('@')
}

/// How many layers the image of stemcell `name` at `version` has, its
/// own and its base stemcell's: what an SBOM counts as the base of an
/// image built on it. None when this binary embeds no such version, or
/// when its base is neither scratch nor a stemcell.
pub fn layer_count(name: &str, version: &str) -> Option<usize> {
    let mut count = 0;
    let (mut name, mut version) = (name.to_string(), version.to_string());
    // Stemcells build on scratch or on one another: a few levels at most.
    for _ in 0..8 {
        let (_, head) = embedded().find(|(_, h)| h.name == name && h.version == version)?;
        count += head.layers.len();
        if head.base == "scratch" {
            return Some(count);
        }
        let (n, v) = pinned(&head.base)?;
        (name, version) = (n.to_string(), v.to_string());
    }
    None
}

/// A stemcell recipe unpacked to a temp directory, ready to build.
#[derive(Debug)]
pub struct Unpacked {
    pub recipe: Recipe,
    _dir: tempfile::TempDir,
}

/// Finds stemcell `name` at `version` (the newest when None) and unpacks its
/// files. The error is a plain message; the caller places it in the recipe.
pub fn unpack(name: &str, version: Option<&str>) -> Result<Unpacked, String> {
    let Some(version) = version.map(str::to_string).or_else(|| newest(name)) else {
        return Err(unknown(name));
    };
    let Some((src, _)) = embedded().find(|(_, h)| h.name == name && h.version == version) else {
        return Err(unknown(&format!("{name}@{version}")));
    };
    let failed = |e: std::io::Error| format!("unpacking stemcell {name}@{version}: {e}");
    let tmp = tempfile::tempdir().map_err(failed)?;
    // include_dir's paths are relative to base-images/, so the tree lands
    // under tmp/NAME/VERSION as in the source tree; extract makes the
    // directories below that one, not that one.
    let root = tmp.path().join(src.path());
    std::fs::create_dir_all(&root).map_err(failed)?;
    src.extract(tmp.path()).map_err(failed)?;
    let text = src
        .get_file(src.path().join("recipe.yaml"))
        .and_then(|f| f.contents_utf8())
        .ok_or_else(|| format!("stemcell {name}@{version} has no recipe.yaml"))?;
    let display = Path::new("base-images")
        .join(src.path())
        .join("recipe.yaml");
    let dir = root.canonicalize().map_err(failed)?;
    let recipe = Recipe::parse(text, &display, dir).map_err(|e: RecipeError| e.to_string())?;
    Ok(Unpacked { recipe, _dir: tmp })
}

/// The error for a stemcell (`NAME` or `NAME@VERSION`) this binary lacks.
fn unknown(what: &str) -> String {
    let list = available()
        .iter()
        .map(|(n, v)| format!("{n}@{v}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("unknown stemcell {what:?}; available: {list}")
}

/// Orders versions numerically where they are numbers (1.10 > 1.9).
fn version_key(v: &str) -> Vec<(u64, String)> {
    v.split(['.', '-'])
        .map(|p| (p.parse().unwrap_or(0), p.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_counts_follow_the_stemcell_chain() {
        let own = |n: &str| layer_count(n, "1.0.0").unwrap();
        assert!(own("static") >= 1);
        assert!(own("debian12-debug") > own("debian12"));
        assert_eq!(layer_count("static", "0.0.0-none"), None);
    }

    #[test]
    fn static_stemcell_is_embedded_and_parses() {
        assert!(available().iter().any(|(n, _)| n == "static"));
        let unpacked = unpack("static", None).unwrap();
        assert_eq!(unpacked.recipe.spec.name, "static");
        assert!(unpack("nope", None).unwrap_err().contains("available: "));
        assert!(unpack("static", Some("0.0.0-nope")).is_err());
    }

    #[test]
    fn each_version_lives_in_its_own_directory() {
        for (dir, head) in embedded() {
            let path = dir.path();
            assert_eq!(path.file_name().unwrap(), head.version.as_str(), "{path:?}");
            assert_eq!(path.parent().unwrap(), Path::new(&head.name), "{path:?}");
        }
        assert!(available().len() >= 3);
    }

    #[test]
    fn versions_order_numerically() {
        assert!(version_key("1.10.0") > version_key("1.9.0"));
    }
}
