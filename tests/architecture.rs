//! The house's layers, checked: every top-level module of `src/` may use
//! only the modules below it in [`LAYERS`], never one above. The order is
//! written here once; a back-import fails this test with the file and line
//! that made it.

use std::collections::BTreeMap;
use std::path::Path;

/// The modules of `src/`, lowest first, each with what it owns.
const LAYERS: [(&str, &str); 24] = [
    ("digest", "the Digest newtype; hashing readers and writers"),
    ("error", "typed library errors, shared by every layer"),
    ("progress", "progress lines on long work"),
    (
        "net",
        "the HTTP edge: requests bounded in time and size, for registries and archives",
    ),
    (
        "image",
        "references, media types, platforms, config, canonical JSON, assembly",
    ),
    (
        "store",
        "content-addressed blobs, OCI layouts, the build cache",
    ),
    (
        "layer",
        "deterministic tar and compression; reading layers back",
    ),
    (
        "rootfs",
        "the merged filesystem view, source walks, accounts",
    ),
    (
        "debian",
        "Debian archives: versions, indexes, dependencies, .deb files",
    ),
    ("seal", "the seal's rule table and content scan"),
    (
        "diff",
        "two opened images compared: index, annotations, config, layers, files, packages",
    ),
    (
        "params",
        "runtime params: names, patterns, what an image declares",
    ),
    (
        "rebase",
        "what a rebase may keep: a layer's lookups on the old base against the new, an image's own config",
    ),
    ("recipe", "the recipe format: schema, templates, positions"),
    ("lock", "ingot.lock: the pins of external references"),
    (
        "sign",
        "signatures: cosign keys, simple-signing payloads, .sig manifests, DSSE",
    ),
    (
        "registry",
        "the distribution client: fetching images, pushing blobs",
    ),
    ("base", "resolution of every kind of base"),
    (
        "attest",
        "an image's SPDX SBOM, a build's in-toto SLSA provenance",
    ),
    ("pipeline", "the build: recipe and base to a tagged image"),
    (
        "commands",
        "audit, bind, diff, export, inspect, pull, push, sign, verify: above the library",
    ),
    (
        "fleet",
        "trees of recipes: discovery, the graph of recipe: bases, parallel builds, plans",
    ),
    ("cli", "clap definitions; the only reader of env and cwd"),
    (
        "fuzz",
        "the fuzz harness's targets: bytes into each parser (examples/fuzz.rs)",
    ),
];

/// The top-level module a source file belongs to: `seal/scan.rs` and
/// `seal/mod.rs` are `seal`, `cli.rs` is `cli`; `lib.rs` and `main.rs`
/// sit outside the layers.
fn module_of(rel: &str) -> Option<&str> {
    let first = rel.split('/').next()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then_some(name)
}

/// Every `crate::NAME` in the code (comments aside) of one file.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::{a, b}` lists: every name in the braces.
            if name.is_empty() && after.starts_with('{') {
                let inner = after[1..].split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let item: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !item.is_empty() {
                        out.push((n + 1, item));
                    }
                }
            } else if !name.is_empty() {
                out.push((n + 1, name));
            }
            rest = after;
        }
    }
    out
}

/// Checks `files` (path relative to `src/`, text) against `layers`.
/// A module unknown to the table is an error too: a new module must take
/// its place in the order.
fn check(files: &BTreeMap<String, String>, layers: &[&str]) -> Result<(), Vec<String>> {
    let rank = |m: &str| layers.iter().position(|l| *l == m);
    let mut problems = Vec::new();
    for (rel, text) in files {
        let Some(from) = module_of(rel) else { continue };
        let Some(from_rank) = rank(from) else {
            problems.push(format!("src/{rel}: module {from} has no place in LAYERS"));
            continue;
        };
        for (line, to) in crate_paths(text) {
            // Re-exports at the crate root (`crate::Result`) are the error
            // module's.
            let to = match to.as_str() {
                "Error" | "Result" => "error".to_string(),
                _ => to,
            };
            if to == from {
                continue;
            }
            match rank(&to) {
                Some(to_rank) if to_rank < from_rank => {}
                Some(_) => problems.push(format!(
                    "src/{rel}:{line}: {from} uses {to}, which is above it",
                )),
                None => problems.push(format!(
                    "src/{rel}:{line}: {from} uses crate::{to}, which is not in LAYERS"
                )),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn read_tree(src: &Path) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap().display().to_string();
                files.insert(rel, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    files
}

fn names() -> Vec<&'static str> {
    LAYERS.iter().map(|(m, _)| *m).collect()
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_tree(&src);
    if let Err(problems) = check(&files, &names()) {
        panic!(
            "{} back-imports (the order is LAYERS in tests/architecture.rs):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }
    // Every layer in the table exists: the order describes the tree.
    for module in names() {
        assert!(
            src.join(format!("{module}.rs")).is_file() || src.join(module).is_dir(),
            "LAYERS names {module}, which src/ does not have"
        );
    }
}

#[test]
fn a_planted_back_import_is_caught() {
    let tree = |files: &[(&str, &str)]| -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    };
    let layers = names();
    let clean = tree(&[
        ("image/mod.rs", "use crate::digest::Digest;\n"),
        (
            "seal/mod.rs",
            "use crate::rootfs::{View, meta};\nuse crate::Result;\n",
        ),
        ("cli.rs", "use crate::{pipeline, seal};\n"),
    ]);
    assert_eq!(check(&clean, &layers), Ok(()));

    let planted = tree(&[
        (
            "image/config.rs",
            "use crate::digest::Digest;\n// crate::recipe in a comment is fine\nuse crate::recipe::schema::ConfigSpec;\n",
        ),
        (
            "store/cache.rs",
            "fn f(x: crate::seal::scan::Findings) {}\n",
        ),
        ("layer/read.rs", "use crate::{digest, rootfs};\n"),
        ("newthing.rs", "use crate::digest::Digest;\n"),
    ]);
    let problems = check(&planted, &layers).unwrap_err();
    assert_eq!(
        problems,
        [
            "src/image/config.rs:3: image uses recipe, which is above it",
            "src/layer/read.rs:1: layer uses rootfs, which is above it",
            "src/newthing.rs: module newthing has no place in LAYERS",
            "src/store/cache.rs:1: store uses seal, which is above it",
        ]
    );
}
