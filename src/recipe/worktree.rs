//! Where a recipe sits in its git work tree: the path a build records
//! (`dev.ingot.recipe.path`) so that a rebuild from a clone of the
//! repository at the recorded revision knows which recipe to take.
//!
//! Only the file system is read: a work tree's root is the nearest
//! ancestor holding a `.git` entry (a directory, or the file a worktree or
//! submodule has), as git itself finds it. No git is run and nothing of
//! the repository is read.

use std::path::{Component, Path};

/// The path of `file_name` in `dir` relative to the root of the work tree
/// holding `dir` (canonical), `/`-separated; None when no ancestor of
/// `dir` holds `.git`.
pub fn path_in_work_tree(dir: &Path, file_name: &str) -> Option<String> {
    let root = dir
        .ancestors()
        .find(|a| std::fs::symlink_metadata(a.join(".git")).is_ok())?;
    let below = dir.strip_prefix(root).ok()?;
    let mut parts: Vec<String> = below
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    parts.push(file_name.to_string());
    Some(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_work_tree_root_names_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let deep = root.join("repo/apps/web");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(path_in_work_tree(&deep, "recipe.yaml"), None);

        std::fs::create_dir(root.join("repo/.git")).unwrap();
        assert_eq!(
            path_in_work_tree(&deep, "recipe.yaml").as_deref(),
            Some("apps/web/recipe.yaml")
        );
        assert_eq!(
            path_in_work_tree(&root.join("repo"), "r.yaml").as_deref(),
            Some("r.yaml")
        );
        // A submodule or worktree has a .git file: the nearer root wins.
        std::fs::write(
            root.join("repo/apps/.git"),
            "gitdir: ../.git/modules/apps\n",
        )
        .unwrap();
        assert_eq!(
            path_in_work_tree(&deep, "recipe.yaml").as_deref(),
            Some("web/recipe.yaml")
        );
    }
}
