//! Stemcells: standardized base images shipped inside the binary
//! (design.md, "Base references"). Each is a recipe on `scratch` under
//! `base-images/NAME/`, so it is built the same way as any recipe, with a
//! fixed timestamp, and so has one digest per version on every machine.

use std::path::Path;

use include_dir::{Dir, include_dir};

use crate::recipe::{Recipe, RecipeError};

static BASE_IMAGES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/base-images");

/// Stemcells are built at this SOURCE_DATE_EPOCH whatever the build's own,
/// so that a stemcell version has exactly one identity.
pub const STEMCELL_EPOCH: u64 = 0;

/// Name and version of every embedded stemcell.
pub fn available() -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Head {
        name: String,
        version: String,
    }
    let mut out: Vec<(String, String)> = BASE_IMAGES
        .dirs()
        .filter_map(|d| d.get_file(d.path().join("recipe.yaml")))
        .filter_map(|f| f.contents_utf8())
        .filter_map(|t| serde_yaml::from_str::<Head>(t).ok())
        .map(|h| (h.name, h.version))
        .collect();
    out.sort();
    out
}

/// How many layers the image of stemcell `name` at `version` has, its
/// own and its base stemcell's: what an SBOM counts as the base of an
/// image built on it. None when this binary embeds no such version, or
/// when its base is neither scratch nor a stemcell.
pub fn layer_count(name: &str, version: &str) -> Option<usize> {
    #[derive(serde::Deserialize)]
    struct Head {
        name: String,
        version: String,
        base: String,
        layers: Vec<serde_yaml::Value>,
    }
    let mut count = 0;
    let (mut name, mut version) = (name.to_string(), version.to_string());
    // Stemcells build on scratch or on one another: a few levels at most.
    for _ in 0..8 {
        let head = BASE_IMAGES
            .dirs()
            .filter_map(|d| d.get_file(d.path().join("recipe.yaml")))
            .filter_map(|f| f.contents_utf8())
            .filter_map(|t| serde_yaml::from_str::<Head>(t).ok())
            .find(|h| h.name == name && h.version == version)?;
        count += head.layers.len();
        if head.base == "scratch" {
            return Some(count);
        }
        let (n, v) = head.base.strip_prefix("stemcell:")?.split_once('@')?;
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
    let list = || {
        available()
            .iter()
            .map(|(n, v)| format!("{n}@{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = available()
        .into_iter()
        .filter(|(n, v)| n == name && version.is_none_or(|want| want == v))
        .max_by(|a, b| version_key(&a.1).cmp(&version_key(&b.1)));
    if found.is_none() {
        let what = match version {
            Some(v) => format!("{name}@{v}"),
            None => name.to_string(),
        };
        return Err(format!("unknown stemcell {what:?}; available: {}", list()));
    }
    let src = BASE_IMAGES
        .get_dir(name)
        .ok_or_else(|| format!("stemcell {name:?} has no directory"))?;
    let tmp = tempfile::tempdir().map_err(|e| format!("unpacking stemcell {name}: {e}"))?;
    let root = tmp.path().join(name);
    std::fs::create_dir_all(&root).map_err(|e| format!("unpacking stemcell {name}: {e}"))?;
    // include_dir's paths are relative to base-images/, so the tree lands
    // under tmp/NAME as in the source tree.
    src.extract(tmp.path())
        .map_err(|e| format!("unpacking stemcell {name}: {e}"))?;
    let text = src
        .get_file(src.path().join("recipe.yaml"))
        .and_then(|f| f.contents_utf8())
        .ok_or_else(|| format!("stemcell {name} has no recipe.yaml"))?;
    let display = Path::new("base-images").join(name).join("recipe.yaml");
    let dir = root
        .canonicalize()
        .map_err(|e| format!("unpacking stemcell {name}: {e}"))?;
    let recipe = Recipe::parse(text, &display, dir).map_err(|e: RecipeError| e.to_string())?;
    Ok(Unpacked { recipe, _dir: tmp })
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
    fn versions_order_numerically() {
        assert!(version_key("1.10.0") > version_key("1.9.0"));
    }
}
