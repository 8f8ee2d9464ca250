//! `ingot diff A B`: two images compared from any transport, run on the
//! real binary. Each test builds small recipes that differ in one thing
//! and checks that the diff names that thing, in text and JSON, with
//! diff(1)'s exit codes (0 same, 1 different, 2 trouble).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{build, ingot, run, stderr, stdout};
use serde_json::Value;

/// Writes `DIR/recipe.yaml` (version 1) with `body` after the name and
/// version, and the files `files` beside it; returns the recipe's path.
fn recipe(dir: &Path, body: &str, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    let path = dir.join("recipe.yaml");
    std::fs::write(&path, format!("name: app\nversion: '1'\n{body}")).unwrap();
    path
}

/// Builds `body` in `tmp/NAME` into the layout `tmp/NAME.out`; returns
/// its image reference.
fn image(tmp: &Path, name: &str, body: &str, files: &[(&str, &str)]) -> String {
    let r = recipe(&tmp.join(name), body, files);
    let out = tmp.join(format!("{name}.out"));
    build(&r, &out);
    format!("oci:{}:1", out.display())
}

fn diff(a: &str, b: &str, extra: &[&str]) -> Output {
    run(ingot().arg("diff").arg(a).arg(b).args(extra))
}

/// The JSON diff of `a` and `b`, which must exit `code`.
fn diff_json(a: &str, b: &str, code: i32) -> Value {
    let out = diff(a, b, &["--json"]);
    assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// The text diff of `a` and `b`, which must exit `code`.
fn diff_text(a: &str, b: &str, code: i32) -> String {
    let out = diff(a, b, &[]);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The paths of a list of file changes.
fn paths(changes: &Value) -> Vec<String> {
    changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap().to_string())
        .collect()
}

const STATIC: &str = "base: stemcell:static\n";

/// An image whose layer `app` holds the one file `/srv/a`, of `content`.
fn one_file(tmp: &Path, name: &str, content: &str) -> String {
    let steps = format!("      - file: {{ dest: /srv/a, content: {content} }}\n");
    image(tmp, name, &app_layer(&steps), &[])
}

fn app_layer(steps: &str) -> String {
    format!("{STATIC}layers:\n  - name: app\n    steps:\n{steps}")
}

#[test]
fn two_builds_differing_in_one_file_name_exactly_that_file() {
    let tmp = tempfile::tempdir().unwrap();
    let steps = "      - copy: { src: files/a.txt, dest: /srv/a.txt }\n\
                 \x20     - copy: { src: files/b.txt, dest: /srv/b.txt }\n";
    let a = image(
        tmp.path(),
        "a",
        &app_layer(steps),
        &[("files/a.txt", "one\n"), ("files/b.txt", "same\n")],
    );
    let b = image(
        tmp.path(),
        "b",
        &app_layer(steps),
        &[("files/a.txt", "two, longer\n"), ("files/b.txt", "same\n")],
    );

    let text = diff_text(&a, &b, 1);
    assert!(text.starts_with(&format!("--- {a} sha256:")), "{text}");
    assert!(text.contains(&format!("+++ {b} sha256:")), "{text}");
    assert!(
        text.contains("layers: 1 shared, first differing 1"),
        "{text}"
    );
    assert!(
        text.contains("filesystem: 1 changed\n  ~ /srv/a.txt (content, size): 4 -> 12 bytes\n"),
        "{text}"
    );
    assert!(!text.contains("/srv/b.txt"), "{text}");

    let json = diff_json(&a, &b, 1);
    assert_eq!(json["old"]["image"], a.as_str());
    assert_eq!(json["new"]["digest_of"], "manifest");
    assert_eq!(paths(&json["filesystem"]), ["/srv/a.txt"]);
    let change = &json["filesystem"][0];
    assert_eq!(change["status"], "changed");
    assert_eq!(change["attributes"], serde_json::json!(["content", "size"]));
    assert_eq!(change["old"]["size"], 4);
    assert_eq!(change["new"]["size"], 12);
    let layers = &json["layers"];
    assert_eq!(layers["first_differing"], 1);
    assert_eq!(layers["shared"][0]["index"], 0);
    assert_eq!(layers["differing"][0]["old"]["name"], "app");
    assert_eq!(paths(&layers["differing"][0]["files"]), ["/srv/a.txt"]);
    assert!(json["packages"].is_null(), "{json}");
}

#[test]
fn an_image_is_identical_to_itself_and_to_its_docker_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let a = one_file(tmp.path(), "a", "hi");
    let text = diff_text(&a, &a, 0);
    assert!(text.ends_with("\nidentical\n"), "{text}");
    let json = diff_json(&a, &a, 0);
    assert_eq!(json["filesystem"], serde_json::json!([]));
    assert_eq!(json["layers"]["differing"], serde_json::json!([]));
    assert_eq!(json["layers"]["shared"].as_array().unwrap().len(), 2);

    let archive = tmp.path().join("a.tar");
    let out = run(ingot()
        .args(["export", &a, "--format", "docker-archive", "-o"])
        .arg(&archive));
    assert!(out.status.success(), "{}", stderr(&out));
    let archive = format!("docker-archive:{}", archive.display());
    let json = diff_json(&a, &archive, 0);
    assert_eq!(json["new"]["digest_of"], "config");
    assert!(json["annotations"].is_null(), "{json}");
    assert_eq!(json["config"], serde_json::json!([]));
    assert_eq!(json["filesystem"], serde_json::json!([]));
    assert_eq!(json["layers"]["differing"], serde_json::json!([]));
    let text = diff_text(&archive, &a, 0);
    assert!(text.contains("(config)\n+++ "), "{text}");
}

#[test]
fn a_template_var_a_config_field_and_an_annotation_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let files = [("files/conf.tera", "greeting={{ vars.greeting }}\n")];
    let body = |greeting: &str, user: &str, env: &str, note: &str| {
        format!(
            "{STATIC}vars: {{ greeting: {greeting} }}\nlayers:\n  - name: app\n    steps:\n\
             \x20     - template: {{ src: files/conf.tera, dest: /etc/app.conf }}\n\
             config:\n  user: \"{user}\"\n  env: {{ MODE: {env} }}\n\
             annotations:\n  org.opencontainers.image.description: {note}\n"
        )
    };
    let a = image(
        tmp.path(),
        "a",
        &body("hello", "1000", "fast", "one"),
        &files,
    );

    let var = image(
        tmp.path(),
        "var",
        &body("howdy", "1000", "fast", "one"),
        &files,
    );
    let json = diff_json(&a, &var, 1);
    assert_eq!(paths(&json["filesystem"]), ["/etc/app.conf"]);
    assert_eq!(json["config"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["config"][0]["key"], "rootfs.diff_ids");

    let user = image(
        tmp.path(),
        "user",
        &body("hello", "2000", "slow", "one"),
        &files,
    );
    let json = diff_json(&a, &user, 1);
    let keys: Vec<&str> = json["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["config.Env", "config.User"], "{json}");
    assert_eq!(json["config"][1]["old"], "1000");
    assert_eq!(json["config"][1]["new"], "2000");
    assert_eq!(json["filesystem"], serde_json::json!([]));
    let text = diff_text(&a, &user, 1);
    assert!(
        text.contains("  ~ config.Env: - \"MODE=fast\"; + \"MODE=slow\"\n"),
        "{text}"
    );
    assert!(
        text.contains("  ~ config.User: \"1000\" -> \"2000\"\n"),
        "{text}"
    );

    let note = image(
        tmp.path(),
        "note",
        &body("hello", "1000", "fast", "two"),
        &files,
    );
    let json = diff_json(&a, &note, 1);
    assert_eq!(
        json["annotations"],
        serde_json::json!([{
            "key": "org.opencontainers.image.description",
            "old": "one",
            "new": "two",
        }])
    );
    assert_eq!(json["config"], serde_json::json!([]));
    let text = diff_text(&a, &note, 1);
    assert!(
        text.contains(
            "annotations\n  ~ org.opencontainers.image.description: \"one\" -> \"two\"\n"
        ),
        "{text}"
    );
}

#[test]
fn a_file_an_upper_layer_removes_is_removed_from_the_filesystem() {
    let tmp = tempfile::tempdir().unwrap();
    let kept = "  - name: app\n    steps:\n      - file: { dest: /srv/a, content: hi }\n";
    let a = image(tmp.path(), "a", &format!("{STATIC}layers:\n{kept}"), &[]);
    let b = image(
        tmp.path(),
        "b",
        &format!(
            "{STATIC}layers:\n{kept}  - name: trim\n    steps:\n\
             \x20     - remove: {{ path: /srv/a }}\n"
        ),
        &[],
    );
    let json = diff_json(&a, &b, 1);
    assert_eq!(paths(&json["filesystem"]), ["/srv/a"]);
    assert_eq!(json["filesystem"][0]["status"], "removed");
    let layer = &json["layers"]["differing"][0];
    assert_eq!(layer["index"], 2);
    assert!(layer["old"].is_null());
    assert_eq!(layer["new"]["name"], "trim");
    assert_eq!(paths(&layer["files"]), ["/srv/.wh.a"]);
    assert_eq!(layer["files"][0]["status"], "added");
    assert_eq!(layer["files"][0]["new"]["kind"], "whiteout");
    let text = diff_text(&a, &b, 1);
    assert!(
        text.contains("filesystem: 1 removed\n  - /srv/a (2 bytes)\n"),
        "{text}"
    );
    assert!(text.contains("      + /srv/.wh.a (whiteout)\n"), "{text}");
}

#[test]
fn a_mode_and_owner_change_alone_is_no_content_change() {
    let tmp = tempfile::tempdir().unwrap();
    let app = "  - name: app\n    steps:\n      - file: { dest: /srv/a, content: hi }\n";
    let a = image(tmp.path(), "a", &format!("{STATIC}layers:\n{app}"), &[]);
    let b = image(
        tmp.path(),
        "b",
        &format!(
            "{STATIC}layers:\n{app}  - name: perms\n    steps:\n\
             \x20     - attrs: {{ path: /srv/a, mode: \"0600\", owner: \"7:7\" }}\n"
        ),
        &[],
    );
    let json = diff_json(&a, &b, 1);
    assert_eq!(paths(&json["filesystem"]), ["/srv/a"]);
    let change = &json["filesystem"][0];
    assert_eq!(change["attributes"], serde_json::json!(["mode", "owner"]));
    assert_eq!(change["old"]["mode"], "0644");
    assert_eq!(change["new"]["mode"], "0600");
    assert_eq!(change["old"]["digest"], change["new"]["digest"]);
    let text = diff_text(&a, &b, 1);
    assert!(
        text.contains("  ~ /srv/a (mode, owner): mode 0644 -> 0600; owner 0:0 -> 7:7\n"),
        "{text}"
    );
}

/// A recipe writing package databases (`(dest, content)`) with `file`
/// steps.
fn packages_body(files: &[(String, String)]) -> String {
    let steps: String = files
        .iter()
        .map(|(dest, content)| format!("      - file: {{ dest: {dest}, content: {content:?} }}\n"))
        .collect();
    format!("base: scratch\nlayers:\n  - name: db\n    steps:\n{steps}")
}

/// Builds an image of each set of package databases and diffs them
/// (exit 1); returns the diff's packages as `+manager name version`,
/// `-manager name version` and `~manager name old new direction` lines,
/// and its text.
fn packages_diff(
    tmp: &Path,
    old: &[(String, String)],
    new: &[(String, String)],
) -> (Vec<String>, String) {
    let a = image(tmp, "old", &packages_body(old), &[]);
    let b = image(tmp, "new", &packages_body(new), &[]);
    let json = diff_json(&a, &b, 1);
    let p = &json["packages"];
    let field = |v: &Value, k: &str| v[k].as_str().unwrap().to_string();
    let mut lines = Vec::new();
    for (mark, list) in [("+", &p["added"]), ("-", &p["removed"])] {
        for pkg in list.as_array().unwrap() {
            let words = ["manager", "name", "version"].map(|k| field(pkg, k));
            lines.push(format!("{mark}{}", words.join(" ")));
        }
    }
    for c in p["changed"].as_array().unwrap() {
        let words = ["manager", "name", "old", "new", "direction"].map(|k| field(c, k));
        lines.push(format!("~{}", words.join(" ")));
    }
    (lines, diff_text(&a, &b, 1))
}

/// A dpkg stanza, with an installed Status when `status`.
fn stanza(name: &str, version: &str, status: bool) -> String {
    let status = if status {
        "Status: install ok installed\n"
    } else {
        ""
    };
    format!("Package: {name}\n{status}Architecture: amd64\nVersion: {version}\n")
}

/// dpkg's status file listing `packages`.
fn dpkg_status(packages: &[(&str, &str)]) -> Vec<(String, String)> {
    let stanzas: Vec<String> = packages.iter().map(|(n, v)| stanza(n, v, true)).collect();
    vec![("/var/lib/dpkg/status".into(), stanzas.join("\n"))]
}

/// Distroless's status.d: a file a package, without Status.
fn status_d(packages: &[(&str, &str)]) -> Vec<(String, String)> {
    packages
        .iter()
        .map(|(n, v)| (format!("/var/lib/dpkg/status.d/{n}"), stanza(n, v, false)))
        .collect()
}

/// apk's installed database listing `packages`.
fn apk_installed(packages: &[(&str, &str)]) -> Vec<(String, String)> {
    let stanzas: Vec<String> = packages
        .iter()
        .map(|(n, v)| format!("C:Q1abc=\nP:{n}\nV:{v}\nA:x86_64\n"))
        .collect();
    vec![("/lib/apk/db/installed".into(), stanzas.join("\n"))]
}

#[test]
fn dpkg_packages_added_removed_and_upgraded() {
    let tmp = tempfile::tempdir().unwrap();
    let (lines, text) = packages_diff(
        tmp.path(),
        &dpkg_status(&[("foo", "1.0-1"), ("baz", "2.1")]),
        &dpkg_status(&[("bar", "0.9"), ("foo", "1.2-1")]),
    );
    assert_eq!(
        lines,
        [
            "+dpkg bar 0.9",
            "-dpkg baz 2.1",
            "~dpkg foo 1.0-1 1.2-1 upgraded"
        ]
    );
    assert!(
        text.contains(
            "packages: 1 added, 1 removed, 1 upgraded\n  + dpkg bar 0.9\n  - dpkg baz 2.1\n  \
             ~ dpkg foo 1.0-1 -> 1.2-1 (upgraded)\n"
        ),
        "{text}"
    );
}

#[test]
fn distroless_status_d_packages_and_a_downgrade_by_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let (lines, _) = packages_diff(
        tmp.path(),
        &status_d(&[("foo", "1:0.1"), ("bar", "0.9")]),
        &status_d(&[("foo", "1.0-1"), ("baz", "2.1")]),
    );
    // An epoch outweighs any upstream version.
    assert_eq!(
        lines,
        [
            "+dpkg baz 2.1",
            "-dpkg bar 0.9",
            "~dpkg foo 1:0.1 1.0-1 downgraded"
        ]
    );
}

/// apk's versions ordered as apk orders them: a pre-release suffix is
/// older than the release, a revision newer.
#[test]
fn apk_packages_added_removed_upgraded_and_downgraded() {
    let tmp = tempfile::tempdir().unwrap();
    let (lines, _) = packages_diff(
        tmp.path(),
        &apk_installed(&[
            ("musl", "1.2.4-r2"),
            ("zlib", "1.3-r0"),
            ("curl", "8.5.0-r0"),
            ("odd", "1.0"),
        ]),
        &apk_installed(&[
            ("musl", "1.2.5-r0"),
            ("busybox", "1.36.1-r5"),
            ("curl", "8.5.0_rc1-r0"),
            ("odd", "1.0-x"),
        ]),
    );
    assert_eq!(
        lines,
        [
            "+apk busybox 1.36.1-r5",
            "-apk zlib 1.3-r0",
            "~apk curl 8.5.0-r0 8.5.0_rc1-r0 downgraded",
            "~apk musl 1.2.4-r2 1.2.5-r0 upgraded",
            "~apk odd 1.0 1.0-x changed"
        ]
    );
}

#[test]
fn two_indexes_differ_in_their_platforms() {
    let tmp = tempfile::tempdir().unwrap();
    let body = |platforms: &str| {
        format!(
            "base: scratch\nplatforms: [{platforms}]\nlayers:\n  - name: app\n    steps:\n\
             \x20     - file: {{ dest: /srv/a, content: hi }}\n"
        )
    };
    let a = image(tmp.path(), "a", &body("linux/amd64, linux/arm64"), &[]);
    let b = image(
        tmp.path(),
        "b",
        &body("linux/amd64, linux/arm64, linux/s390x"),
        &[],
    );
    let json = diff_json(&a, &b, 1);
    let index = &json["index"];
    assert_eq!(index["added"], serde_json::json!(["linux/s390x"]));
    assert_eq!(index["removed"], serde_json::json!([]));
    // Each platform's image is what a build for it alone makes.
    assert_eq!(index["changed"], serde_json::json!([]));
    assert_eq!(json["filesystem"], serde_json::json!([]));
    let text = diff_text(&a, &b, 1);
    assert!(text.contains("\n  + linux/s390x\n"), "{text}");

    // --platform picks the image compared below the index.
    let json = diff_json(&a, &b, 1);
    assert_eq!(json["old"]["digest"], json["new"]["digest"]);
    let out = diff(&a, &b, &["--platform", "linux/arm64", "--json"]);
    let arm: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_ne!(arm["old"]["digest"], json["old"]["digest"]);
}

#[test]
fn a_missing_image_or_a_bad_reference_is_trouble() {
    let tmp = tempfile::tempdir().unwrap();
    let a = one_file(tmp.path(), "a", "hi");
    let missing = format!("oci:{}:1", tmp.path().join("nowhere").display());
    for (x, y) in [(&a, &missing), (&missing, &a)] {
        let out = diff(x, y, &[]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(stderr(&out).contains("nowhere"), "{}", stderr(&out));
        assert_eq!(stdout(&out), "");
    }
    let out = diff(&a, &missing, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["error"]["kind"], "usage");

    let out = diff(&a, "nope.tar", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // A damaged layer is trouble too, not a difference.
    let layout = tmp.path().join("a.out");
    let index = common::read_json(&layout.join("index.json"));
    let manifest = common::read_json(&common::blob_path(
        &layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ));
    let blob = common::blob_path(&layout, manifest["layers"][1]["digest"].as_str().unwrap());
    let mut bytes = std::fs::read(&blob).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let b = one_file(tmp.path(), "b", "ho");
    let out = diff(&a, &b, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("digest"), "{}", stderr(&out));
}

/// Builds the recipe `dir/recipe.yaml` into `out` with `args` and
/// SOURCE_DATE_EPOCH `epoch`; returns its image reference.
fn build_with(dir: &Path, out: &Path, args: &[&str], epoch: &str) -> String {
    let output = run(ingot()
        .env("SOURCE_DATE_EPOCH", epoch)
        .arg("build")
        .arg(dir.join("recipe.yaml"))
        .arg("-o")
        .arg(out)
        .args(args));
    assert!(output.status.success(), "{}", stderr(&output));
    format!("oci:{}:1", out.display())
}

#[test]
fn another_compression_is_the_same_tars_encoded_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    recipe(
        &dir,
        &app_layer("      - file: { dest: /srv/a, content: hi }\n"),
        &[],
    );
    let gzip = build_with(&dir, &tmp.path().join("gz"), &[], "0");
    let zstd = build_with(
        &dir,
        &tmp.path().join("zst"),
        &["--compression", "zstd"],
        "0",
    );
    let json = diff_json(&gzip, &zstd, 1);
    assert_eq!(json["layers"]["differing"], serde_json::json!([]));
    assert_eq!(json["filesystem"], serde_json::json!([]));
    // The base's layer is the stemcell's, as it is; the recipe's layer is
    // written in the compression asked for.
    let shared = &json["layers"]["shared"];
    assert!(shared[0]["other_digest"].is_null(), "{json}");
    assert!(shared[1]["other_digest"].is_string(), "{json}");
    assert_eq!(json["annotations"][0]["key"], "dev.ingot.build.compression");
    let text = diff_text(&gzip, &zstd, 1);
    assert!(text.contains("(the same tar, encoded otherwise)"), "{text}");
}

#[test]
fn another_source_date_epoch_is_named_in_the_config_and_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("r");
    recipe(
        &dir,
        &app_layer("      - file: { dest: /srv/a, content: hi }\n"),
        &[],
    );
    let a = build_with(&dir, &tmp.path().join("a"), &[], "0");
    let b = build_with(&dir, &tmp.path().join("b"), &[], "86400");
    let json = diff_json(&a, &b, 1);
    let keys: Vec<&str> = json["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"created"), "{keys:?}");
    let srv = json["filesystem"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == "/srv/a")
        .expect("/srv/a differs");
    assert_eq!(srv["attributes"], serde_json::json!(["mtime"]));
    assert_eq!(srv["new"]["mtime"], 86400);
}

#[test]
fn an_image_is_identical_to_its_copy_in_a_registry() {
    let registry = common::registry::Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let a = one_file(tmp.path(), "a", "hi");
    let remote = format!("docker://127.0.0.1:{}/app:1", registry.port);
    let out = run(ingot().args(["push", &a, &remote]));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = diff_text(&a, &remote, 0);
    assert!(text.ends_with("\nidentical\n"), "{text}");

    let b = one_file(tmp.path(), "b", "ho");
    let json = diff_json(&remote, &b, 1);
    assert_eq!(paths(&json["filesystem"]), ["/srv/a"]);
}
