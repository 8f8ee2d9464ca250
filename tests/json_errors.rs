//! With `--json`, a failure is one JSON object on stdout,
//! `{"error": {"kind", "message", "file", "line", "column"}}`, and the exit
//! code is the error's; the one-line error still goes to stderr.

mod common;

use common::registry::Registry;
use common::{ingot, run, stderr, stdout};

/// stdout parsed as one JSON document, and its `error` object.
fn error_of(out: &std::process::Output) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", stdout(out)));
    doc["error"].clone()
}

#[test]
fn a_malformed_recipe_is_a_recipe_error_at_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("recipe.yaml");
    std::fs::write(&recipe, "name: x\nversion: '1'\nbase: scratch\nlayers: 3\n").unwrap();
    let out = run(ingot()
        .arg("build")
        .arg(&recipe)
        .arg("--json")
        .arg("-o")
        .arg(dir.path().join("o")));
    assert_eq!(out.status.code(), Some(2));
    let error = error_of(&out);
    assert_eq!(error["kind"], "recipe", "{error}");
    assert_eq!(error["file"].as_str(), recipe.to_str());
    assert_eq!(error["line"], 4, "{error}");
    assert!(error["column"].as_u64().is_some(), "{error}");
    assert!(!error["message"].as_str().unwrap().is_empty());
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));

    // Without --json, stdout stays empty.
    let out = run(ingot()
        .arg("build")
        .arg(&recipe)
        .arg("-o")
        .arg(dir.path().join("o")));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}

#[test]
fn auditing_a_missing_image_says_so_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    for image in [
        format!("oci:{}:1", missing.display()),
        format!("docker-archive:{}.tar", missing.display()),
    ] {
        let out = run(ingot().args(["audit", &image, "--json"]));
        assert_eq!(out.status.code(), Some(2), "{image}: {}", stderr(&out));
        let error = error_of(&out);
        assert_eq!(error["kind"], "usage", "{image}: {error}");
        assert!(
            error["message"].as_str().unwrap().contains("nothing-here"),
            "{error}"
        );
        assert_eq!(error["file"], serde_json::Value::Null);
        assert_eq!(error["line"], serde_json::Value::Null);
    }

    // An image a registry does not have is the same mistake: usage, exit 2.
    let registry = Registry::start();
    let image = format!("docker://{}/absent:1", registry.host());
    let out = run(ingot().args(["audit", &image, "--json"]));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let error = error_of(&out);
    assert_eq!(error["kind"], "usage", "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("not found"),
        "{error}"
    );
}

#[test]
fn a_refused_command_line_is_a_usage_error_in_json() {
    let out = run(ingot().args(["inspect", "not-a-transport", "--json"]));
    assert_eq!(out.status.code(), Some(2));
    let error = error_of(&out);
    assert_eq!(error["kind"], "usage", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("not-a-transport"),
        "{error}"
    );
    // Help is no failure, and a refusal without --json prints no JSON.
    let out = run(ingot().args(["inspect", "--help"]));
    assert!(out.status.success());
    let out = run(ingot().args(["inspect", "not-a-transport"]));
    assert!(out.stdout.is_empty());
}

#[test]
fn a_failure_with_a_report_prints_only_the_report() {
    // verify's report is its result: one JSON document, not two.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("h");
    common::build(&common::example("hello"), &layout);
    let index = common::read_json(&layout.join("index.json"));
    let manifest = index["manifests"][0]["digest"].as_str().unwrap();
    std::fs::write(common::blob_path(&layout, manifest), b"{}").unwrap();
    let out = run(ingot()
        .arg("verify")
        .arg(format!("oci:{}", layout.display()))
        .arg("--json"));
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc.get("error").is_none(), "{doc}");
    assert!(!doc["problems"].as_array().unwrap().is_empty(), "{doc}");
}
