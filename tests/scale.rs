//! Scale (issue 19): a tree of 100,000 entries, the size of a large
//! `node_modules` or `site-packages`, copied into one layer on `scratch`.
//! Two builds with empty caches in different directories give the same
//! digest, and a warm rebuild serves every layer from the cache.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::{ingot, run, stderr};

/// Top-level packages, subdirectories in each, and entries in each
/// subdirectory (files, of which every tenth is a symlink).
const PACKAGES: usize = 100;
const SUBDIRS: usize = 9;
const ENTRIES: usize = 110;
/// Every entry under the copied tree: directories, files and symlinks.
const TOTAL: usize = PACKAGES + PACKAGES * SUBDIRS + PACKAGES * SUBDIRS * ENTRIES;

/// Writes the tree under `root`: a fixed structure of small files (a few
/// dozen to a few hundred bytes each, contents varying with their place)
/// and relative symlinks to a sibling file.
fn make_tree(root: &Path) {
    for p in 0..PACKAGES {
        for s in 0..SUBDIRS {
            let dir = root.join(format!("pkg{p:03}")).join(format!("mod{s}"));
            fs::create_dir_all(&dir).unwrap();
            for e in 0..ENTRIES {
                if e % 10 == 9 {
                    symlink(format!("f{:03}.js", e - 1), dir.join(format!("l{e:03}.js"))).unwrap();
                } else {
                    let line = format!("module.exports = {{ pkg: {p}, mod: {s}, entry: {e} }};\n");
                    fs::write(
                        dir.join(format!("f{e:03}.js")),
                        line.repeat(1 + (p + s + e) % 8),
                    )
                    .unwrap();
                }
            }
        }
    }
}

/// `ingot build --json --no-attest` with its own cache; returns the
/// digest and, per layer, whether it was served from the cache and how
/// many entries it has.
fn build(recipe: &Path, cache: &Path, out: &Path) -> (String, Vec<(bool, u64)>) {
    let o = run(ingot()
        .args(["build", "--json", "--no-attest", "--progress", "none"])
        .arg("--cache")
        .arg(cache)
        .arg(recipe)
        .arg("-o")
        .arg(out)
        .env("SOURCE_DATE_EPOCH", "1700000000"));
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let layers = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["cached"].as_bool().unwrap(),
                l["entries"].as_u64().unwrap(),
            )
        })
        .collect();
    (report["digest"].as_str().unwrap().to_string(), layers)
}

#[test]
fn a_tree_of_100k_entries_builds_reproducibly_and_a_warm_rebuild_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_tree(&src.join("tree"));
    assert_eq!(TOTAL, 100_000);
    let recipe = src.join("recipe.yaml");
    fs::write(
        &recipe,
        "name: scale\nversion: '1'\nbase: scratch\nlayers:\n  - name: tree\n    steps:\n      - copy: { src: tree, dest: /srv/tree }\n",
    )
    .unwrap();

    // Every entry of the tree, and `srv` and `srv/tree` above it.
    let entries = TOTAL as u64 + 2;
    let one = dir.path().join("one");
    let two = dir.path().join("two");
    let (first, layers) = build(&recipe, &one.join("cache"), &one.join("out"));
    assert_eq!(layers, [(false, entries)]);
    let (second, layers) = build(&recipe, &two.join("cache"), &two.join("out"));
    assert_eq!(layers, [(false, entries)]);
    assert_eq!(first, second, "two cold builds of the same tree differ");

    let (warm, layers) = build(&recipe, &one.join("cache"), &one.join("again"));
    assert_eq!(
        layers,
        [(true, entries)],
        "the warm rebuild built a layer again"
    );
    assert_eq!(warm, first);
}
