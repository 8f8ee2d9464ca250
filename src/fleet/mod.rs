//! Fleets: every recipe under some directories taken as one graph (README,
//! "Fleets: a tree of recipes"). This module owns finding the recipes
//! ([`discover`]), the graph their `recipe:` bases make ([`Fleet`]: who
//! depends on whom, waves, one order), building them in that order with
//! independent recipes in parallel ([`build`]), and describing the graph
//! without building, for CI engines ([`plan`]).
//!
//! A `recipe:` base is still built inside its dependent's build, as for a
//! single recipe, so the order changes no digest: it lets a dependent find
//! its base's layers in the shared cache instead of building them a second
//! time at once, and lets a failed base skip what stands on it.

pub mod build;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::base::BaseRef;
use crate::error::{Error, IoContext, Result};
use crate::recipe::Recipe;

/// The file a directory names as its recipe.
pub const RECIPE_FILE: &str = "recipe.yaml";

/// How deep below a directory given on the command line recipes are
/// looked for: deep enough for `recipes/TEAM/APP/recipe.yaml` and more,
/// shallow enough that pointing at `/` is not a crawl.
pub const MAX_DEPTH: usize = 6;

/// Directories never searched: what builds write (`out/` layouts, cargo's
/// `target/`) and vendored trees. Hidden directories (`.git`) are skipped
/// too, and any OCI layout (a directory holding `oci-layout`).
const SKIPPED: [&str; 3] = ["out", "target", "node_modules"];

/// The recipe files `paths` name, each once, in path order: a file is a
/// recipe; a directory holding `recipe.yaml` is that recipe (its
/// subdirectories are its sources, not searched); any other directory is
/// searched to [`MAX_DEPTH`] for directories holding `recipe.yaml`, without
/// following symlinks and skipping hidden directories, `out`, `target`,
/// `node_modules` and OCI layouts.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut found: BTreeMap<PathBuf, PathBuf> = BTreeMap::new();
    for path in paths {
        let mut here = Vec::new();
        if !path.is_dir() {
            here.push(path.clone());
        } else if path.join(RECIPE_FILE).is_file() {
            here.push(path.join(RECIPE_FILE));
        } else {
            search(path, &mut here)?;
        }
        if here.is_empty() {
            return Err(Error::Usage(format!(
                "{}: no {RECIPE_FILE} in it or below it (to depth {MAX_DEPTH})",
                path.display()
            )));
        }
        for file in here {
            // The same recipe named twice (`recipes recipes/app`) is one.
            let key = file.canonicalize().unwrap_or_else(|_| file.clone());
            found.entry(key).or_insert(file);
        }
    }
    let mut files: Vec<PathBuf> = found.into_values().collect();
    files.sort();
    Ok(files)
}

/// Every directory below `dir` holding a recipe, not below another.
fn search(dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
    let mut walk = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .max_depth(MAX_DEPTH)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry
            .map_err(std::io::Error::other)
            .context(|| format!("searching {} for recipes", dir.display()))?;
        if !entry.file_type().is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        let path = entry.path();
        if name.starts_with('.')
            || SKIPPED.contains(&name.as_ref())
            || path.join("oci-layout").exists()
        {
            walk.skip_current_dir();
            continue;
        }
        if path.join(RECIPE_FILE).is_file() {
            found.push(path.join(RECIPE_FILE));
            walk.skip_current_dir();
        }
    }
    Ok(())
}

/// One recipe of a fleet.
#[derive(Debug, Clone)]
pub struct Member {
    /// The recipe file, as found (relative when the path given was).
    pub file: PathBuf,
    /// Its `name`; for a recipe that does not load, its directory's name.
    pub name: String,
    /// Its `version`; None when it does not load.
    pub version: Option<String>,
    /// Its `base`, as written; None when it does not load.
    pub base: Option<String>,
    /// The OCI layout it is built into: `OUT/NAME`.
    pub output: PathBuf,
    /// The member it builds on: the first down its chain of `recipe:`
    /// bases (a base that is no member is followed through); empty when
    /// it builds on none. (A list, so that the JSON can grow to several.)
    pub depends_on: Vec<usize>,
    /// 0 for a recipe on no other member, else one more than its deepest
    /// dependency's; None in (or above) a `recipe:` cycle.
    pub wave: Option<usize>,
}

/// The recipes found and the graph their `recipe:` bases make.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub members: Vec<Member>,
    /// Indexes of members: by wave, then name; cycles last.
    pub order: Vec<usize>,
}

/// The most `recipe:` bases followed from one recipe before giving up (a
/// cycle through recipes outside the fleet, which its build reports).
const MAX_CHAIN: usize = 64;

impl Fleet {
    /// The fleet of the recipe files `files`, each built into
    /// `output_root/NAME`. Two recipes of one name are refused: they would
    /// share a layout.
    pub fn new(files: Vec<PathBuf>, output_root: &Path) -> Result<Fleet> {
        let canonical: Vec<Option<PathBuf>> = files.iter().map(|f| f.canonicalize().ok()).collect();
        let index: BTreeMap<&Path, usize> = canonical
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Some((c.as_deref()?, i)))
            .collect();
        let mut members = Vec::with_capacity(files.len());
        for file in &files {
            let loaded = Recipe::load(file).ok();
            let name = match &loaded {
                Some(r) => r.spec.name.clone(),
                None => dir_name(file),
            };
            let depends_on = match &loaded {
                Some(r) => first_member(r, &index).into_iter().collect(),
                None => Vec::new(),
            };
            members.push(Member {
                file: file.clone(),
                output: output_root.join(&name),
                version: loaded.as_ref().map(|r| r.spec.version.clone()),
                base: loaded.as_ref().map(|r| r.spec.base.to_string()),
                name,
                depends_on,
                wave: None,
            });
        }
        let mut by_name: BTreeMap<&str, &Path> = BTreeMap::new();
        for m in &members {
            if let Some(other) = by_name.insert(&m.name, &m.file) {
                return Err(Error::Usage(format!(
                    "{} and {} are both named {}: they would share the output {}",
                    other.display(),
                    m.file.display(),
                    m.name,
                    m.output.display()
                )));
            }
        }
        let waves = waves(&members);
        for (m, wave) in members.iter_mut().zip(waves) {
            m.wave = wave;
        }
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&i| {
            (
                members[i].wave.unwrap_or(usize::MAX),
                members[i].name.clone(),
            )
        });
        Ok(Fleet { members, order })
    }

    /// The members' names, by wave (cycles left out).
    pub fn waves(&self) -> Vec<Vec<String>> {
        let mut waves: Vec<Vec<String>> = Vec::new();
        for &i in &self.order {
            let Some(wave) = self.members[i].wave else {
                continue;
            };
            if waves.len() <= wave {
                waves.resize(wave + 1, Vec::new());
            }
            waves[wave].push(self.members[i].name.clone());
        }
        waves
    }

    /// The names of the members `member` depends on.
    pub fn names(&self, member: &Member) -> Vec<String> {
        member
            .depends_on
            .iter()
            .map(|&d| self.members[d].name.clone())
            .collect()
    }
}

/// The recipe's directory's name, for a recipe that does not load.
fn dir_name(file: &Path) -> String {
    file.parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| file.display().to_string())
}

/// The first member down `recipe`'s chain of `recipe:` bases.
fn first_member(recipe: &Recipe, members: &BTreeMap<&Path, usize>) -> Option<usize> {
    let mut seen = BTreeSet::new();
    let mut current = next_base(recipe)?;
    for _ in 0..MAX_CHAIN {
        if let Some(&i) = members.get(current.as_path()) {
            return Some(i);
        }
        if !seen.insert(current.clone()) {
            return None;
        }
        let loaded = Recipe::load(&current).ok()?;
        current = next_base(&loaded)?;
    }
    None
}

/// The canonical recipe file of `recipe`'s `recipe:` base, if it has one
/// that exists.
fn next_base(recipe: &Recipe) -> Option<PathBuf> {
    let BaseRef::Recipe(path) = &recipe.spec.base else {
        return None;
    };
    let full = recipe.dir.join(path);
    let file = if full.is_dir() {
        full.join(RECIPE_FILE)
    } else {
        full
    };
    file.canonicalize().ok()
}

/// Each member's wave; None for members in or above a cycle.
fn waves(members: &[Member]) -> Vec<Option<usize>> {
    let mut waves: Vec<Option<usize>> = vec![None; members.len()];
    // Each pass settles every member whose dependencies are settled; a
    // pass that settles none leaves only cycles.
    loop {
        let mut settled = false;
        for (i, m) in members.iter().enumerate() {
            if waves[i].is_some() {
                continue;
            }
            let deps: Option<Vec<usize>> = m.depends_on.iter().map(|&d| waves[d]).collect();
            if let Some(deps) = deps {
                waves[i] = Some(deps.into_iter().max().map_or(0, |w| w + 1));
                settled = true;
            }
        }
        if !settled {
            return waves;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, base: &str) {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(RECIPE_FILE),
            format!("name: {name}\nversion: '1'\nbase: {base}\n"),
        )
        .unwrap();
    }

    #[test]
    fn discovery_skips_outputs_and_hidden_dirs_and_stops_at_a_recipe() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "a", "scratch");
        write(&root.join("a"), "inner", "scratch");
        write(&root.join("team"), "b", "scratch");
        write(&root.join("out"), "c", "scratch");
        write(&root.join(".hidden"), "d", "scratch");
        std::fs::create_dir_all(root.join("layout")).unwrap();
        std::fs::write(root.join("layout/oci-layout"), "{}").unwrap();
        write(&root.join("layout"), "e", "scratch");
        let found = discover(&[root.to_path_buf()]).unwrap();
        let rel: Vec<_> = found
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            rel,
            [
                PathBuf::from("a/recipe.yaml"),
                PathBuf::from("team/b/recipe.yaml")
            ]
        );
        // Named twice, found once; an empty directory is an error.
        let twice = discover(&[root.to_path_buf(), root.join("a")]).unwrap();
        assert_eq!(twice.len(), 2);
        std::fs::create_dir_all(root.join("empty")).unwrap();
        assert!(discover(&[root.join("empty")]).is_err());
    }

    #[test]
    fn waves_follow_recipe_bases_through_non_members() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write(root, "base", "scratch");
        write(root, "mid", "recipe:../base/recipe.yaml");
        write(root, "app", "recipe:../mid");
        write(root, "solo", "scratch");
        write(root, "x", "recipe:../y/recipe.yaml");
        write(root, "y", "recipe:../x/recipe.yaml");
        // `mid` is left out: `app` still follows it down to `base`.
        let files = ["app", "base", "solo", "x", "y"]
            .iter()
            .map(|n| root.join(n).join(RECIPE_FILE))
            .collect();
        let fleet = Fleet::new(files, Path::new("out")).unwrap();
        assert_eq!(fleet.waves(), [vec!["base", "solo"], vec!["app"]]);
        let app = &fleet.members[0];
        assert_eq!(fleet.names(app), ["base"]);
        assert_eq!(app.output, Path::new("out/app"));
        let order: Vec<_> = fleet
            .order
            .iter()
            .map(|&i| &fleet.members[i].name)
            .collect();
        assert_eq!(order, ["base", "solo", "app", "x", "y"]);
    }

    #[test]
    fn two_recipes_of_one_name_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "a", "scratch");
        write(&tmp.path().join("other"), "a", "scratch");
        let files = discover(&[tmp.path().to_path_buf()]).unwrap();
        let err = Fleet::new(files, Path::new("out")).unwrap_err();
        assert!(err.to_string().contains("both named a"), "{err}");
    }
}
