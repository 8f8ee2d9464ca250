//! Recipes on `docker://` bases: pulled into the cache, verified, pinned by
//! ingot.lock when named by tag, and usable offline once cached.

mod common;

use std::path::{Path, PathBuf};

use common::registry::Registry;
use common::{ingot, run, stderr, stdout};

/// Builds `recipe` with its own cache; returns the digest.
fn build(recipe: &Path, cache: &Path, out: &Path) -> String {
    let o = run(ingot()
        .args(["build", "-q", "--cache"])
        .arg(cache)
        .arg(recipe)
        .arg("-o")
        .arg(out));
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().to_string()
}

/// Pushes `layout` (tag `tag`) to `reference`; returns the pushed digest.
fn push(layout: &Path, tag: &str, reference: &str) -> String {
    let o = run(ingot()
        .args(["push", "-q"])
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(reference));
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o).trim().to_string()
}

fn recipe(dir: &Path, base: &str) -> PathBuf {
    let d = dir.join("app");
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("recipe.yaml");
    std::fs::write(
        &path,
        format!(
            "name: app\nversion: '1'\nbase: {base}\nlayers:\n  - name: l\n    steps:\n      - file: {{ dest: /etc/app, content: app }}\n"
        ),
    )
    .unwrap();
    path
}

/// A base image `name` pushed to `registry` as `REPO:1`, with /etc/marker.
fn push_base(dir: &Path, registry: &Registry, marker: &str) -> String {
    let d = dir.join(format!("base-{marker}"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("recipe.yaml"),
        format!(
            "name: base\nversion: '1'\nbase: stemcell:static\nlayers:\n  - name: b\n    steps:\n      - file: {{ dest: /etc/marker, content: {marker} }}\n"
        ),
    )
    .unwrap();
    let layout = dir.join(format!("base-layout-{marker}"));
    common::build(&d.join("recipe.yaml"), &layout);
    push(&layout, "1", &format!("{}:1", registry.reference("base")))
}

#[test]
fn a_base_by_digest_builds_reproducibly_and_offline_once_cached() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let digest = push_base(dir.path(), &registry, "one");
    let base = format!("{}@{digest}", registry.reference("base"));
    let recipe = recipe(dir.path(), &base);

    let first = build(&recipe, &dir.path().join("cache"), &dir.path().join("a"));
    // A cold cache elsewhere gives the same image.
    let again = build(&recipe, &dir.path().join("cache2"), &dir.path().join("b"));
    assert_eq!(first, again);

    // The image holds the base's layers, and names the base.
    let o = run(ingot()
        .arg("inspect")
        .arg("--json")
        .arg(format!("oci:{}", dir.path().join("a").display())));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["manifest"]["layers"].as_array().unwrap().len(), 3);
    assert_eq!(
        json["manifest"]["annotations"]["org.opencontainers.image.base.digest"],
        digest.as_str()
    );
    let o = run(ingot()
        .arg("verify")
        .arg(format!("oci:{}", dir.path().join("a").display())));
    assert!(o.status.success(), "{}", stdout(&o));

    // With the registry gone, the cached, digest-pinned base still builds.
    drop(registry);
    let offline = build(&recipe, &dir.path().join("cache"), &dir.path().join("c"));
    assert_eq!(offline, first);
    // Without the cache it cannot, and says so in one line.
    let o = run(ingot()
        .args(["build", "-q", "--cache"])
        .arg(dir.path().join("empty-cache"))
        .arg(&recipe)
        .arg("-o")
        .arg(dir.path().join("d")));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot reach"), "{}", stderr(&o));
    assert!(!dir.path().join("d").exists());
}

#[test]
fn a_tag_is_resolved_once_and_pinned_in_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let one = push_base(dir.path(), &registry, "one");
    let recipe = recipe(dir.path(), &format!("{}:1", registry.reference("base")));

    let o = run(ingot().arg("lock").arg("--json").arg(&recipe));
    assert!(o.status.success(), "{}", stderr(&o));
    let lock: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(lock["pins"][0]["manifest"], one.as_str());
    let cache = dir.path().join("cache");
    let first = build(&recipe, &cache, &dir.path().join("a"));

    // The tag moves; the pinned build does not.
    let two = push_base(dir.path(), &registry, "two");
    assert_ne!(one, two);
    assert_eq!(
        build(&recipe, &dir.path().join("cache-b"), &dir.path().join("b")),
        first
    );
    let o = run(ingot()
        .args(["build", "-q", "--locked"])
        .arg(&recipe)
        .arg("-o")
        .arg(dir.path().join("c")));
    assert!(o.status.success(), "pinned: {}", stderr(&o));

    // Re-locking follows the tag, and the image changes with it.
    let o = run(ingot().arg("lock").arg("--json").arg(&recipe));
    let lock: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(lock["pins"][0]["manifest"], two.as_str());
    let moved = build(&recipe, &cache, &dir.path().join("d"));
    assert_ne!(moved, first);
}

#[test]
fn a_registry_serving_corrupt_blobs_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let digest = push_base(dir.path(), &registry, "one");
    let proxy = common::registry::CorruptingProxy::start(registry.port);
    let base = format!("docker://127.0.0.1:{}/base@{digest}", proxy.port);
    let recipe = recipe(dir.path(), &base);
    let cache = dir.path().join("cache");
    let o = run(ingot()
        .args(["build", "-q", "--cache"])
        .arg(&cache)
        .arg(&recipe)
        .arg("-o")
        .arg(dir.path().join("a")));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("digest mismatch") && err.contains("recipe.yaml:3:"),
        "{err}"
    );
    assert!(!dir.path().join("a").exists());
    // Only the manifest (checked against the pinned digest) reached the
    // store; no corrupt blob did.
    let stored: Vec<String> = std::fs::read_dir(cache.join("blobs/sha256"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(stored.len() <= 1, "{stored:?}");
    assert!(
        stored.iter().all(|s| digest.ends_with(s.as_str())),
        "{stored:?}"
    );
}
