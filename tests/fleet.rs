//! `ingot build DIR…` and `ingot plan DIR…`: a tree of recipes built in
//! dependency order, independent ones at once, past a failure; and the
//! same graph described without building.
//!
//! The tree: `base` → `mid` → `app` (chains of `recipe:` bases on
//! `stemcell:static`, its newest version), `big-a` on it and `big-b` on
//! `stemcell:static@1.0.0`, the version before, with a few MiB to
//! compress each (so that two builds overlap measurably),
//! `solo` on `scratch`, `broken` (a `copy` whose source is missing) and
//! `on-broken` on it; and a decoy recipe under `out/`, which is skipped.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{ingot, run, stderr, stdout};
use serde_json::Value;

fn recipe(tree: &Path, name: &str, base: &str, step: &str) {
    let dir = tree.join(name);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("recipe.yaml"),
        format!("name: {name}\nversion: 1.0.0\nbase: {base}\nlayers:\n  - name: main\n    steps:\n      - {step}\n"),
    )
    .unwrap();
}

/// The tree under `root/tree`; the outputs go to `root/out`.
fn tree(root: &Path) -> PathBuf {
    let tree = root.join("tree");
    recipe(
        &tree,
        "base",
        "stemcell:static",
        "file: { dest: /etc/base, content: base }",
    );
    recipe(
        &tree,
        "mid",
        "recipe:../base/recipe.yaml",
        "file: { dest: /etc/mid, content: mid }",
    );
    recipe(
        &tree,
        "app",
        "recipe:../mid/recipe.yaml",
        "file: { dest: /etc/app, content: app }",
    );
    recipe(
        &tree,
        "solo",
        "scratch",
        "file: { dest: /etc/solo, content: solo }",
    );
    for (big, stemcell) in [
        ("big-a", "stemcell:static"),
        ("big-b", "stemcell:static@1.0.0"),
    ] {
        recipe(
            &tree,
            big,
            stemcell,
            "copy: { src: big.txt, dest: /data/big.txt }",
        );
        let text: String = (0..120_000)
            .map(|i| format!("{big}: line {i} of a file that takes a while to compress\n"))
            .collect();
        fs::write(tree.join(big).join("big.txt"), text).unwrap();
    }
    recipe(
        &tree,
        "broken",
        "stemcell:static",
        "copy: { src: missing.txt, dest: /etc/missing }",
    );
    recipe(
        &tree,
        "on-broken",
        "recipe:../broken/recipe.yaml",
        "file: { dest: /etc/x, content: x }",
    );
    // Outputs and hidden directories are not searched.
    recipe(
        &tree.join("out"),
        "decoy",
        "scratch",
        "file: { dest: /d, content: d }",
    );
    recipe(
        &tree.join(".hidden"),
        "decoy",
        "scratch",
        "file: { dest: /d, content: d }",
    );
    tree
}

/// `ingot ARGS` in `root`, with the cache `root/cache`.
fn ingot_in(root: &Path, args: &[&str]) -> Output {
    run(ingot()
        .current_dir(root)
        .args(args)
        .arg("--cache")
        .arg(root.join("cache")))
}

/// The JSON lines of a fleet build, by recipe name.
fn outcomes(out: &Output) -> BTreeMap<String, Value> {
    stdout(out)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            (v["name"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

fn secs(v: &Value, field: &str) -> f64 {
    v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

#[test]
fn a_tree_builds_in_dependency_order_in_parallel_and_past_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    tree(root);
    let o = ingot_in(
        root,
        &["build", "tree", "-j", "2", "--json", "--progress", "plain"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let all = outcomes(&o);
    let names: Vec<&str> = all.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "app",
            "base",
            "big-a",
            "big-b",
            "broken",
            "mid",
            "on-broken",
            "solo"
        ]
    );

    // The summary: every field, for a built, a failed and a skipped recipe.
    let app = &all["app"];
    assert_eq!(app["status"], "built");
    assert_eq!(app["version"], "1.0.0");
    assert_eq!(app["recipe"], "tree/app/recipe.yaml");
    assert_eq!(app["output"], "out/app");
    assert_eq!(app["depends_on"], serde_json::json!(["mid"]));
    assert_eq!(
        app["layers"],
        serde_json::json!({"built": 1, "cached": 0, "remote": 0})
    );
    assert!(app["error"].is_null());
    assert!(secs(app, "seconds") >= 0.0);
    let broken = &all["broken"];
    assert_eq!(
        (&broken["status"], &broken["digest"]),
        (&Value::from("failed"), &Value::Null)
    );
    let error = broken["error"].as_str().unwrap();
    assert!(
        error.contains("tree/broken/recipe.yaml") && error.contains("missing.txt"),
        "{error}"
    );
    let skipped = &all["on-broken"];
    assert_eq!(skipped["status"], "skipped");
    assert!(skipped["started"].is_null());
    let why = skipped["error"].as_str().unwrap();
    assert!(
        why.contains("tree/on-broken/recipe.yaml") && why.contains("broken"),
        "{why}"
    );
    // Keep going: everything not on the failure was built.
    for name in ["app", "base", "big-a", "big-b", "mid", "solo"] {
        assert_eq!(all[name]["status"], "built", "{name}");
        assert!(
            root.join("out").join(name).join("index.json").is_file(),
            "{name}"
        );
    }
    assert!(!root.join("out/decoy").exists() && !root.join("out/on-broken").exists());
    // Two stemcell versions in one tree, each image on the one it names.
    for (name, base) in [
        ("app", "mid:1.0.0"),
        ("base", "stemcell:static@1.1.0"),
        ("big-a", "stemcell:static@1.1.0"),
        ("big-b", "stemcell:static@1.0.0"),
    ] {
        let layout = root.join("out").join(name);
        let index = common::read_json(&layout.join("index.json"));
        let digest = index["manifests"][0]["digest"].as_str().unwrap();
        let manifest = common::read_json(&common::blob_path(&layout, digest));
        let named = &manifest["annotations"]["org.opencontainers.image.base.name"];
        assert_eq!(named, base, "{name}");
    }
    // The failure and the skip are named on stderr, lines by recipe.
    let err = stderr(&o);
    assert!(
        err.contains("1 of 8 recipes failed (broken), 1 skipped (on-broken)"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("broken: ") && l.contains("missing.txt")),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with("big-a: building big-a")),
        "{err}"
    );

    // Dependency order: a recipe starts after its base finished.
    for (later, first) in [("mid", "base"), ("app", "mid")] {
        assert!(
            secs(&all[later], "started") >= secs(&all[first], "finished"),
            "{later} started before {first} finished: {all:?}"
        );
    }
    // Parallelism: the two big recipes, both in wave 0 with 2 workers,
    // overlap (each takes more than a second to compress).
    let (a, b) = (&all["big-a"], &all["big-b"]);
    assert!(
        secs(a, "started") < secs(b, "finished") && secs(b, "started") < secs(a, "finished"),
        "big-a and big-b did not overlap: {a} {b}"
    );

    // Again, one at a time: nothing changes, every layer from the cache,
    // and no two builds overlap.
    let again = ingot_in(root, &["build", "tree", "-j", "1", "--json", "-q"]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    let second = outcomes(&again);
    for name in ["app", "base", "big-a", "big-b", "mid", "solo"] {
        let v = &second[name];
        assert_eq!(v["status"], "unchanged", "{name}");
        assert_eq!(v["digest"], all[name]["digest"], "{name}");
        assert_eq!(
            v["layers"],
            serde_json::json!({"built": 0, "cached": 1, "remote": 0}),
            "{name}"
        );
    }
    let mut spans: Vec<(f64, f64)> = second
        .values()
        .filter(|v| !v["started"].is_null())
        .map(|v| (secs(v, "started"), secs(v, "finished")))
        .collect();
    spans.sort_by(|x, y| x.0.total_cmp(&y.0));
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "{spans:?}");

    // Each digest is the one a single `ingot build` of the recipe gives.
    for name in ["app", "big-a", "solo"] {
        let single = ingot_in(
            root,
            &[
                "build",
                &format!("tree/{name}"),
                "-o",
                &format!("single/{name}"),
                "-q",
            ],
        );
        assert!(single.status.success(), "{}", stderr(&single));
        assert_eq!(stdout(&single).trim(), all[name]["digest"], "{name}");
    }
}

#[test]
fn several_paths_and_output_dirs_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let tree = root.join("tree");
    recipe(
        &tree,
        "base",
        "scratch",
        "file: { dest: /etc/base, content: base }",
    );
    recipe(
        &tree,
        "app",
        "recipe:../base/recipe.yaml",
        "file: { dest: /etc/app, content: app }",
    );
    // Two paths: a fleet, outputs under -o; text lines on stdout.
    let o = ingot_in(
        root,
        &["build", "tree/app", "tree/base", "-o", "images", "-q"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("built base 1.0.0 sha256:"),
        "{lines:?}"
    );
    assert!(lines[1].starts_with("built app 1.0.0 sha256:"), "{lines:?}");
    assert!(root.join("images/app/index.json").is_file());
    // One recipe directory is still a single build: the digest alone.
    let one = ingot_in(root, &["build", "tree/app", "-o", "one", "-q"]);
    assert!(one.status.success(), "{}", stderr(&one));
    assert_eq!(stdout(&one).trim(), lines[1].rsplit(' ').next().unwrap());
    // --push names one repository: refused for a fleet, before building.
    let push = ingot_in(
        root,
        &["build", "tree", "--push", "docker://reg.lan:5000/team/app"],
    );
    assert_eq!(push.status.code(), Some(2), "{}", stderr(&push));
    assert!(stderr(&push).contains("--push"), "{}", stderr(&push));
    // Two recipes of one name would share a layout.
    recipe(
        &tree.join("other"),
        "app",
        "scratch",
        "file: { dest: /x, content: x }",
    );
    let twice = ingot_in(root, &["build", "tree"]);
    assert_eq!(twice.status.code(), Some(2), "{}", stderr(&twice));
    assert!(
        stderr(&twice).contains("both named app"),
        "{}",
        stderr(&twice)
    );
}

#[test]
fn plan_describes_the_graph_locks_and_what_is_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    tree(root);
    let plan = |root: &Path| -> Value {
        let o = ingot_in(root, &["plan", "tree", "--json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let by_name = |plan: &Value| -> BTreeMap<String, Value> {
        plan["recipes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["name"].as_str().unwrap().to_string(), r.clone()))
            .collect()
    };
    let before = plan(root);
    assert_eq!(
        before["waves"],
        serde_json::json!([
            ["base", "big-a", "big-b", "broken", "solo"],
            ["mid", "on-broken"],
            ["app"]
        ])
    );
    let order: Vec<&str> = before["recipes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "base",
            "big-a",
            "big-b",
            "broken",
            "solo",
            "mid",
            "on-broken",
            "app"
        ]
    );
    let r = by_name(&before);
    assert_eq!(r["app"]["depends_on"], serde_json::json!(["mid"]));
    assert_eq!(r["app"]["base"], "recipe:../mid/recipe.yaml");
    assert_eq!(r["app"]["wave"], 2);
    assert_eq!(r["app"]["dir"], "tree/app");
    assert_eq!(r["app"]["output"], "out/app");
    assert_eq!(r["on-broken"]["depends_on"], serde_json::json!(["broken"]));
    assert_eq!(r["solo"]["depends_on"], serde_json::json!([]));
    for (name, entry) in &r {
        assert_eq!(entry["lock"], "missing", "{name}");
        assert_eq!(entry["up_to_date"], false, "{name}");
        assert!(entry["built"].is_null(), "{name}");
    }
    assert_eq!(r["broken"]["valid"], false);
    assert!(
        r["broken"]["problems"][0]
            .as_str()
            .unwrap()
            .contains("missing.txt")
    );
    assert_eq!(r["solo"]["valid"], true);

    // Lock states: `ingot lock` of mid; a lock that pins what solo does
    // not use is stale.
    let lock = ingot_in(root, &["lock", "tree/mid", "-q"]);
    assert!(lock.status.success(), "{}", stderr(&lock));
    fs::copy(
        root.join("tree/mid/ingot.lock"),
        root.join("tree/solo/ingot.lock"),
    )
    .unwrap();

    // Up to date after a build, each for the digest the build made.
    let built = ingot_in(root, &["build", "tree", "--json", "-q"]);
    let outcomes = outcomes(&built);
    let after = by_name(&plan(root));
    assert_eq!(after["mid"]["lock"], "locked");
    assert_eq!(after["solo"]["lock"], "stale");
    assert!(
        after["solo"]["problems"][0]
            .as_str()
            .unwrap()
            .contains("ingot.lock")
    );
    assert_eq!(after["app"]["lock"], "missing");
    for name in ["app", "base", "big-a", "big-b", "mid", "solo"] {
        let e = &after[name];
        assert_eq!(e["up_to_date"], true, "{name}: {e}");
        assert_eq!(e["built"], outcomes[name]["digest"], "{name}");
        assert_eq!(e["would_build"], outcomes[name]["digest"], "{name}");
    }
    assert_eq!(after["on-broken"]["up_to_date"], false);

    // A changed source: that recipe, and only it, is no longer up to date,
    // and the plan says which layer it would build.
    fs::write(root.join("tree/big-a/big.txt"), "changed\n").unwrap();
    let changed = by_name(&plan(root));
    assert_eq!(changed["big-a"]["up_to_date"], false);
    let reason = changed["big-a"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("big-a layer main is not in the build cache"),
        "{reason}"
    );
    for name in ["app", "base", "big-b", "mid", "solo"] {
        assert_eq!(changed[name]["up_to_date"], true, "{name}");
    }

    // For people: waves and a line per recipe.
    let text = ingot_in(root, &["plan", "tree"]);
    let text = stdout(&text);
    assert!(
        text.starts_with("wave 0: base big-a big-b broken solo\n"),
        "{text}"
    );
    assert!(
        text.contains("app 1.0.0 (tree/app/recipe.yaml): wave 2 on mid, no lock, up to date"),
        "{text}"
    );
}
