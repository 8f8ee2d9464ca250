//! `ingot verify IMAGE --rebuild RECIPE` against the real binary: a clean
//! rebuild passes (also from a fresh clone, with another cache), the
//! settings a build records are the ones a rebuild takes, and each kind of
//! mismatch fails with exit 1 and says why; a tampered layout is reported
//! by the fsck, and nothing is rebuilt.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use common::{blob_path, copy_tree, ingot, read_json, run, stderr, stdout};

/// A copy of recipes/hello at `dir/hello`, for a test to change.
fn hello_copy(dir: &Path) -> PathBuf {
    let to = dir.join("hello");
    copy_tree(&common::repo().join("recipes/hello"), &to);
    to
}

/// `ingot build` of `recipe` into `out` with `args` and `env`: the digest.
fn build_with(recipe: &Path, out: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = ingot();
    cmd.arg("build")
        .arg("-q")
        .arg(recipe)
        .arg("-o")
        .arg(out)
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = run(&mut cmd);
    assert!(output.status.success(), "build: {}", stderr(&output));
    stdout(&output).trim().to_string()
}

/// `ingot verify oci:OUT --rebuild RECIPE --json` and more `args`.
fn rebuild(out: &Path, recipe: &Path, args: &[&str]) -> (Output, Value) {
    let output = run(ingot()
        .arg("verify")
        .arg(format!("oci:{}", out.display()))
        .arg("--rebuild")
        .arg(recipe)
        .arg("--json")
        .args(args));
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&output), stderr(&output)));
    (output, json)
}

fn assert_equal(output: &Output, json: &Value) {
    assert!(
        output.status.success(),
        "{}\n{}",
        serde_json::to_string_pretty(json).unwrap(),
        stderr(output)
    );
    assert_eq!(json["equal"], true);
    assert_eq!(json["rebuilt"], true);
    assert_eq!(json["rebuilt_digest"], json["digest"]);
}

/// Exit 1, not equal, and the reason (JSON and stderr) says `why`.
fn assert_differs(output: &Output, json: &Value, why: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    assert_eq!(json["equal"], false);
    let reason = json["explanation"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(why), "{why:?} not in {reason:?}");
    assert!(stderr(output).contains(why), "{}", stderr(output));
}

/// The annotations of the image `out` is tagged with.
fn annotations(out: &Path) -> Value {
    let index = read_json(&out.join("index.json"));
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    read_json(&blob_path(out, digest))["annotations"].clone()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = run(Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .arg("-C")
        .arg(dir)
        .args(args));
    assert!(output.status.success(), "git {args:?}: {}", stderr(&output));
    stdout(&output).trim().to_string()
}

#[test]
fn a_clean_rebuild_passes_in_words_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = hello_copy(tmp.path());
    let out = tmp.path().join("out");
    let digest = build_with(&recipe, &out, &[], &[]);

    let (output, json) = rebuild(&out, &recipe, &[]);
    assert_equal(&output, &json);
    assert_eq!(json["digest"], digest.as_str());
    assert_eq!(json["image"], format!("oci:{}", out.display()));
    assert_eq!(json["settings"]["epoch"], 0);
    assert_eq!(json["settings"]["compression"], "gzip");
    assert_eq!(json["settings"]["platforms"]["image"], "linux/amd64");
    assert!(json["explanation"].is_null());
    let err = stderr(&output);
    assert!(
        err.contains("rebuilding ") && err.contains(&format!("rebuilt {digest}")),
        "{err}"
    );

    let text = run(ingot()
        .arg("verify")
        .arg(format!("oci:{}:1.2.0", out.display()))
        .arg("--rebuild")
        .arg(&recipe)
        .args(["--no-cache", "--digest", &digest]));
    assert!(text.status.success(), "{}", stderr(&text));
    let words = stdout(&text);
    assert!(
        words.contains("settings: SOURCE_DATE_EPOCH=0, compression gzip"),
        "{words}"
    );
    assert!(
        words.contains(&format!("rebuilt: {digest}: the same image")),
        "{words}"
    );
}

/// A build at a revision records the recipe's path in the repository; a
/// fresh clone elsewhere, with another cache, rebuilds the same image.
#[test]
fn a_fresh_clone_rebuilds_the_same_image() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("images")).unwrap();
    let recipe = hello_copy(&repo.join("images"));
    git(&repo, &["init", "-q"]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "hello"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let out = tmp.path().join("out");
    let cache = tmp.path().join("cache");
    let args = ["--revision", &head, "--source", "https://example.com/repo"];
    let mut with_cache = args.to_vec();
    with_cache.extend(["--cache", cache.to_str().unwrap()]);
    build_with(
        &recipe,
        &out,
        &with_cache,
        &[("SOURCE_DATE_EPOCH", "1700000000")],
    );
    let recorded = annotations(&out);
    assert_eq!(
        recorded["dev.ingot.recipe.path"],
        "images/hello/recipe.yaml"
    );
    assert_eq!(recorded["org.opencontainers.image.revision"], head.as_str());

    let clone = tmp.path().join("elsewhere/clone");
    std::fs::create_dir_all(clone.parent().unwrap()).unwrap();
    git(
        tmp.path(),
        &[
            "clone",
            "-q",
            repo.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let other = tmp.path().join("other-cache");
    let (output, json) = rebuild(
        &out,
        &clone.join("images/hello"),
        &["--cache", other.to_str().unwrap()],
    );
    assert_equal(&output, &json);
    assert_eq!(json["settings"]["recipe_path"], "images/hello/recipe.yaml");
    assert_eq!(json["settings"]["revision"], head.as_str());
    assert_eq!(json["settings"]["epoch"], 1_700_000_000u64);

    // A copy outside any work tree is not where the image came from.
    let copy = hello_copy(&tmp.path().join("loose"));
    let (output, json) = rebuild(&out, &copy, &[]);
    assert_differs(
        &output,
        &json,
        "built from images/hello/recipe.yaml in its repository",
    );
    assert_eq!(json["rebuilt"], false);
}

/// `--revision` for a recipe in no work tree: a warning, and no path.
#[test]
fn a_revision_outside_a_work_tree_records_no_path_and_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = hello_copy(tmp.path());
    let out = tmp.path().join("out");
    let output = run(ingot()
        .arg("build")
        .arg(&recipe)
        .arg("-o")
        .arg(&out)
        .args(["--revision", "abc"]));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is in no git work tree"),
        "{}",
        stderr(&output)
    );
    let recorded = annotations(&out);
    assert!(
        recorded.get("dev.ingot.recipe.path").is_none(),
        "{recorded}"
    );
    assert_eq!(recorded["org.opencontainers.image.revision"], "abc");
    let (output, json) = rebuild(&out, &recipe, &[]);
    assert_equal(&output, &json);
}

#[test]
fn an_input_file_changed_after_the_build_is_named_by_its_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = hello_copy(tmp.path());
    let out = tmp.path().join("out");
    build_with(&recipe, &out, &[], &[]);
    std::fs::write(recipe.join("files/site/index.html"), "changed\n").unwrap();
    let (output, json) = rebuild(&out, &recipe, &[]);
    // Named by its layer and by the one file in it that differs.
    assert_differs(
        &output,
        &json,
        "layer 2 (app) first differs: /srv/hello/index.html (content, size)",
    );
    let layers = &json["explanation"]["images"][0]["diff"]["layers"];
    assert_eq!(layers["first_differing"], 1, "{layers}");
    assert_eq!(layers["shared"][0]["index"], 0, "the stemcell's layer");
    let files = layers["differing"][0]["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0]["path"], "/srv/hello/index.html");
    assert_ne!(json["rebuilt_digest"], json["digest"]);
}

#[test]
fn a_template_var_changed_after_the_build_differs() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = hello_copy(tmp.path());
    let out = tmp.path().join("out");
    build_with(&recipe, &out, &[], &[]);
    let file = recipe.join("recipe.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("greeting: hello", "greeting: howdy")).unwrap();
    let (output, json) = rebuild(&out, &recipe, &[]);
    assert_differs(
        &output,
        &json,
        "layer 2 (app) first differs: /etc/hello/hello.conf (content)",
    );
}

/// The rebuild takes the epoch the image records, whatever the caller's;
/// an epoch tampered with in the manifest (digests fixed up, so the fsck
/// passes) rebuilds as another image.
#[test]
fn the_recorded_epoch_is_the_one_rebuilt_and_a_tampered_one_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = hello_copy(tmp.path());
    let out = tmp.path().join("out");
    build_with(&recipe, &out, &[], &[("SOURCE_DATE_EPOCH", "5")]);
    let output = run(ingot()
        .env("SOURCE_DATE_EPOCH", "9")
        .arg("verify")
        .arg(format!("oci:{}", out.display()))
        .arg("--rebuild")
        .arg(&recipe)
        .arg("--json"));
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_equal(&output, &json);
    assert_eq!(json["settings"]["epoch"], 5);

    // Rewrite the recorded time, as someone passing off another build
    // would, keeping the layout consistent.
    let tampered = set_annotation(
        &out,
        "org.opencontainers.image.created",
        "1970-01-01T00:00:06Z",
    );

    let (output, json) = rebuild(&out, &recipe, &[]);
    assert_eq!(
        json["fsck"]["problems"],
        serde_json::json!([]),
        "the layout is consistent"
    );
    assert_eq!(json["settings"]["epoch"], 6);
    assert_differs(&output, &json, "first differs");
    // The other time is named: the config's `created`, the files' mtimes.
    let diff = &json["explanation"]["images"][0]["diff"];
    let fields: Vec<&str> = diff["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"created"), "{fields:?}");
    assert!(stderr(&output).contains("(mtime)"), "{}", stderr(&output));
    assert_eq!(json["digest"], tampered.as_str());
}

/// Sets the manifest annotation `key` of the image `out` is tagged with to
/// `value`, and writes the layout consistent again (the new manifest blob,
/// index.json pointing at it): what someone passing off another build
/// would do. Returns the new manifest's digest.
fn set_annotation(out: &Path, key: &str, value: &str) -> String {
    let index_path = out.join("index.json");
    let mut index = read_json(&index_path);
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let mut manifest = read_json(&blob_path(out, &digest));
    manifest["annotations"][key] = value.into();
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let tampered = ingot::digest::Digest::of(&bytes).to_string();
    std::fs::write(blob_path(out, &tampered), &bytes).unwrap();
    index["manifests"][0]["digest"] = tampered.clone().into();
    index["manifests"][0]["size"] = bytes.len().into();
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    tampered
}

/// An image claiming another compression than its layers have rebuilds
/// with the one it claims: the same tars, encoded otherwise, named so.
#[test]
fn another_compression_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = hello_copy(tmp.path());
    let out = tmp.path().join("out");
    build_with(&recipe, &out, &[], &[]);
    set_annotation(&out, "dev.ingot.build.compression", "zstd");
    let (output, json) = rebuild(&out, &recipe, &[]);
    assert_eq!(json["settings"]["compression"], "zstd");
    assert_differs(
        &output,
        &json,
        "the layers hold the same tars, encoded otherwise (another compression): layer 2 (app)",
    );
    let layers = &json["explanation"]["images"][0]["diff"]["layers"];
    assert_eq!(layers["differing"], serde_json::json!([]), "{layers}");
    assert!(
        layers["shared"][1]["other_digest"].is_string(),
        "the app layer's tar, encoded otherwise: {layers}"
    );
}

#[test]
fn a_zstd_image_rebuilds_with_zstd() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = hello_copy(tmp.path());
    let out = tmp.path().join("out");
    build_with(&recipe, &out, &["--compression", "zstd"], &[]);
    let (output, json) = rebuild(&out, &recipe, &[]);
    assert_equal(&output, &json);
    assert_eq!(json["settings"]["compression"], "zstd");
}

/// A tampered blob is the fsck's to report: exit 1, and no rebuild.
#[test]
fn a_tampered_layout_is_reported_before_anything_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = hello_copy(tmp.path());
    let out = tmp.path().join("out");
    build_with(&recipe, &out, &[], &[]);
    let index = read_json(&out.join("index.json"));
    let manifest = read_json(&blob_path(
        &out,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let layer = manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = blob_path(&out, &layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len() / 2;
    bytes[n] ^= 1;
    std::fs::write(&path, bytes).unwrap();

    let (output, json) = rebuild(&out, &recipe, &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(json["rebuilt"], false);
    assert!(json["settings"].is_null(), "{json}");
    assert_eq!(json["fsck"]["problems"][0]["kind"], "digest-mismatch");
    assert_eq!(json["fsck"]["problems"][0]["blob"], layer.as_str());
    let err = stderr(&output);
    assert!(!err.contains("rebuilding"), "{err}");
    assert!(err.contains("verification failed"), "{err}");
}

/// An image built at a revision records the lock's digest; a lock changed
/// after the build is named, with both digests, and nothing is rebuilt.
#[test]
fn a_lock_changed_after_the_build_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = hello_copy(tmp.path());
    let locked = run(ingot().arg("lock").arg(&recipe));
    assert!(locked.status.success(), "{}", stderr(&locked));
    let lock = recipe.join("ingot.lock");
    let lock_digest = ingot::digest::Digest::of(&std::fs::read(&lock).unwrap()).to_string();
    let out = tmp.path().join("out");
    build_with(&recipe, &out, &["--locked", "--revision", "abc"], &[]);
    assert_eq!(
        annotations(&out)["dev.ingot.lock.digest"],
        lock_digest.as_str()
    );

    let (output, json) = rebuild(&out, &recipe, &[]);
    assert_equal(&output, &json);
    assert_eq!(json["settings"]["lock_digest"], lock_digest.as_str());

    let mut text = std::fs::read_to_string(&lock).unwrap();
    text.push('\n');
    std::fs::write(&lock, &text).unwrap();
    let now = ingot::digest::Digest::of(text.as_bytes()).to_string();
    let (output, json) = rebuild(&out, &recipe, &[]);
    assert_differs(
        &output,
        &json,
        "the recipe's ingot.lock is not the one the image was built with",
    );
    let reason = json["explanation"]["reason"].as_str().unwrap();
    assert!(
        reason.contains(&lock_digest) && reason.contains(&now),
        "{reason}"
    );
    assert_eq!(json["rebuilt"], false);
}

/// Without a revision an image depends on its content alone: a lock that
/// pins what the build resolves anyway is not recorded and changes no
/// digest.
#[test]
fn without_a_revision_a_lock_changes_no_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = hello_copy(tmp.path());
    std::fs::remove_file(recipe.join("ingot.lock")).ok();
    let unlocked = build_with(&recipe, &tmp.path().join("a"), &[], &[]);
    let locked = run(ingot().arg("lock").arg(&recipe));
    assert!(locked.status.success(), "{}", stderr(&locked));
    let out = tmp.path().join("b");
    assert_eq!(build_with(&recipe, &out, &["--locked"], &[]), unlocked);
    assert!(
        annotations(&out).get("dev.ingot.lock.digest").is_none(),
        "{}",
        annotations(&out)
    );
}

/// A multi-platform image rebuilds platform by platform; an index whose
/// own annotations were edited (each platform's image untouched) is named
/// by the annotation.
#[test]
fn a_multi_platform_index_rebuilds_and_its_own_fields_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tmp.path().join("multi");
    std::fs::create_dir_all(&recipe).unwrap();
    std::fs::write(
        recipe.join("recipe.yaml"),
        "name: multi\nversion: '1'\nbase: scratch\nplatforms: [linux/amd64, linux/arm64]\n\
         layers:\n  - name: app\n    steps:\n      - file: { dest: /srv/a, content: hi }\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    build_with(&recipe, &out, &[], &[]);
    let (output, json) = rebuild(&out, &recipe, &[]);
    assert_equal(&output, &json);
    assert_eq!(
        json["settings"]["platforms"]["index"],
        serde_json::json!(["linux/amd64", "linux/arm64"])
    );

    set_annotation(&out, "org.example.note", "added later");
    let (output, json) = rebuild(&out, &recipe, &[]);
    assert_differs(
        &output,
        &json,
        "the index differs, though each platform's image is the same: annotations org.example.note",
    );
    let explanation = &json["explanation"];
    assert_eq!(explanation["images"], serde_json::json!([]));
    assert_eq!(
        explanation["index"]["annotations"],
        serde_json::json!([{"key": "org.example.note", "old": "added later", "new": null}])
    );
}
