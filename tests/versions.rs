//! Versions are immutable (design.md): a version (tag) a layout holds never
//! moves to another image unless `--replace` says so; rebuilding the same
//! image is a no-op. `--tag` adds tags under the same rule, and
//! `build --push` puts the image and every tag in a registry only once
//! every check has passed, checked with skopeo.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use common::registry::Registry;
use common::{ingot, require, run, stderr, stdout};

/// A recipe directory whose one layer writes `content`, version `version`.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the recipe: version `version`, /etc/app holding `content`;
    /// `extra` goes into the layer's steps.
    fn recipe(&self, version: &str, content: &str, extra: &str) -> PathBuf {
        let recipe = self.path("app/recipe.yaml");
        std::fs::create_dir_all(recipe.parent().unwrap()).unwrap();
        std::fs::write(
            &recipe,
            format!(
                "name: app\nversion: '{version}'\nbase: stemcell:static\nlayers:\n  - name: app\n    steps:\n      - file: {{ dest: /etc/app, content: {content} }}\n{extra}"
            ),
        )
        .unwrap();
        recipe
    }

    /// `ingot build RECIPE -o LAYOUT ARGS`.
    fn build(&self, layout: &Path, args: &[&str]) -> Output {
        run(ingot()
            .arg("build")
            .arg(self.path("app/recipe.yaml"))
            .arg("-o")
            .arg(layout)
            .args(args))
    }
}

/// Succeeded; the digest it printed.
fn digest_of(out: &Output) -> String {
    assert!(out.status.success(), "{}", stderr(out));
    let digest = stdout(out).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    digest
}

/// Every file of a layout with its bytes and mtime, but the lock file a
/// commit takes (which holds nothing).
fn snapshot(layout: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    walkdir::WalkDir::new(layout)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && e.file_name() != "index.json.lock")
        .map(|e| {
            let meta = e.metadata().unwrap();
            (
                e.path().to_path_buf(),
                (std::fs::read(e.path()).unwrap(), meta.modified().unwrap()),
            )
        })
        .collect()
}

/// The digest each tag of the layout names.
fn tags(layout: &Path) -> BTreeMap<String, String> {
    let index = common::read_json(&layout.join("index.json"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        // The images' SBOMs and provenance are listed untagged.
        .filter(|d| d.get("artifactType").is_none())
        .map(|d| {
            (
                d["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                d["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `skopeo inspect` of a registry image: its digest, or None when it is
/// not there.
fn skopeo_digest(reference: &str) -> Option<String> {
    let out = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false"])
        .arg(reference));
    if !out.status.success() {
        return None;
    }
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    json["Digest"].as_str().map(str::to_string)
}

#[test]
fn a_version_never_moves_without_replace() {
    let f = Fixture::new();
    let layout = f.path("out");
    f.recipe("1", "a", "");
    let first = digest_of(&f.build(&layout, &[]));
    f.recipe("1", "b", "");
    let second = digest_of(&f.build(&f.path("elsewhere"), &[]));
    assert_ne!(first, second);

    let before = snapshot(&layout);
    let out = f.build(&layout, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("tag 1 is {first}, this image {second}"))
            && err.contains("--replace"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
    assert_eq!(snapshot(&layout), before, "the layout changed");

    assert_eq!(digest_of(&f.build(&layout, &["--replace"])), second);
    assert_eq!(tags(&layout), [("1".to_string(), second)].into());
}

#[test]
fn rebuilding_the_same_image_is_a_no_op() {
    let f = Fixture::new();
    let layout = f.path("out");
    f.recipe("1", "a", "");
    let first = digest_of(&f.build(&layout, &["--tag", "abc123"]));
    let before = snapshot(&layout);
    for args in [&[][..], &["--tag", "abc123"], &["--replace"]] {
        let out = f.build(&layout, args);
        assert_eq!(digest_of(&out), first, "{args:?}");
        if args.is_empty() || args[0] == "--tag" {
            assert!(stderr(&out).contains("nothing changed"), "{}", stderr(&out));
            assert_eq!(snapshot(&layout), before, "{args:?} changed the layout");
        }
    }
}

#[test]
fn tags_name_the_same_image_and_never_move_either() {
    require("skopeo");
    let f = Fixture::new();
    let layout = f.path("out");
    f.recipe("1", "a", "");
    let first = digest_of(&f.build(&layout, &["--tag", "abc123", "--tag", "latest"]));
    let all = tags(&layout);
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.values().all(|d| *d == first), "{all:?}");
    let out = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:abc123", layout.display())));
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["Digest"], first.as_str());

    // A new version that takes a tag another image holds is refused too.
    f.recipe("2", "b", "");
    let before = snapshot(&layout);
    let out = f.build(&layout, &["--tag", "abc123"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("tag abc123 is {first}, this image sha256:")),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&layout), before, "the layout changed");

    // A tag is an OCI tag, refused before anything is built.
    for bad in ["-x", "a/b", ".x", &"x".repeat(129)] {
        let out = f.build(&layout, &[&format!("--tag={bad}")]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("not a valid tag"), "{}", stderr(&out));
    }
    assert_eq!(snapshot(&layout), before);
}

#[test]
fn build_push_puts_the_image_at_every_tag() {
    require("skopeo");
    let f = Fixture::new();
    let registry = Registry::start();
    let repo = registry.reference("team/app");
    f.recipe("1", "a", "");
    let out = f.build(&f.path("out"), &["--push", &repo, "--tag", "abc123"]);
    let digest = digest_of(&out);
    for tag in ["1", "abc123"] {
        assert_eq!(
            skopeo_digest(&format!("{repo}:{tag}")).as_deref(),
            Some(digest.as_str()),
            "{tag}"
        );
    }

    // The registry's version never moves either: a changed image built
    // afresh elsewhere is refused before anything is sent.
    f.recipe("1", "b", "");
    let elsewhere = f.path("elsewhere");
    let out = f.build(&elsewhere, &["--push", &repo]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{repo}:1 is {digest}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(skopeo_digest(&format!("{repo}:1")), Some(digest.clone()));
    let out = f.build(&elsewhere, &["--push", &repo, "--replace"]);
    let moved = digest_of(&out);
    assert_eq!(skopeo_digest(&format!("{repo}:1")), Some(moved));

    // A tag or digest in --push is a usage error: the tags are the build's.
    let out = f.build(&f.path("o3"), &["--push", &format!("{repo}:x")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!f.path("o3").exists());
}

#[test]
fn build_push_pushes_nothing_when_a_check_fails() {
    require("skopeo");
    let f = Fixture::new();
    let registry = Registry::start();
    let repo = registry.reference("team/app");
    // The seal fails: a world-writable file.
    f.recipe(
        "1",
        "a",
        "      - file: { dest: /etc/open, content: x, mode: '0666' }\n",
    );
    let out = f.build(&f.path("out"), &["--push", &repo]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not sealed"), "{}", stderr(&out));
    assert_eq!(skopeo_digest(&format!("{repo}:1")), None);

    // --locked without a lock.
    f.recipe("1", "a", "");
    let out = f.build(&f.path("out"), &["--push", &repo, "--locked"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(skopeo_digest(&format!("{repo}:1")), None);

    // The layout holds version 1 as another image.
    let layout = f.path("held");
    digest_of(&f.build(&layout, &[]));
    f.recipe("1", "b", "");
    let out = f.build(&layout, &["--push", &repo]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(skopeo_digest(&format!("{repo}:1")), None);
    assert!(!f.path("out").exists());
}
