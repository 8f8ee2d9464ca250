//! Artifacts about an image (OCI 1.1 referrers: SBOMs, provenance) travel
//! with it: listed in the layout's index.json after the image, sent by
//! `ingot push` through the registry's referrers API or the `sha256-<hex>`
//! tag fallback (the test registry, distribution 2.8, has no API), brought
//! back by `ingot pull`, listed by `ingot inspect`. skopeo reads the
//! fallback tag and still reads the image in a layout holding artifacts.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ingot::digest::Digest;
use ingot::image::artifact::Artifact;
use serde_json::Value;

use common::registry::Registry;
use common::{blob_path, ingot, read_json, require, run, stderr, stdout};

const SPDX: &str = "application/spdx+json";
const DOCUMENT: &str = r#"{"spdxVersion":"SPDX-2.3","name":"hello"}"#;

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", stderr(out));
    stdout(out)
}

/// recipes/hello built into `dir/out`, and an SPDX document attached to
/// it through the library; the image's digest.
fn hello_with_sbom(dir: &Path) -> (PathBuf, String) {
    let out = dir.join("out");
    let digest = common::build_bare(&common::example("hello"), &out);
    let artifact = Artifact {
        artifact_type: SPDX.into(),
        media_type: SPDX.into(),
        document: DOCUMENT.as_bytes().to_vec(),
        annotations: HashMap::new(),
    };
    let subject: Digest = digest.parse().unwrap();
    ingot::store::referrers::attach(&out, &subject, &artifact).unwrap();
    // Again: nothing changes.
    let before = std::fs::read(out.join("index.json")).unwrap();
    ingot::store::referrers::attach(&out, &subject, &artifact).unwrap();
    assert_eq!(std::fs::read(out.join("index.json")).unwrap(), before);
    (out, digest)
}

fn inspect_json(image: &str) -> Value {
    let out = run(ingot()
        .args(["inspect", "--json", "--insecure", "127.0.0.1"])
        .arg(image));
    serde_json::from_str(&ok(&out, "ingot inspect")).unwrap()
}

/// The referrers inspect lists: (artifactType, digest).
fn listed(inspection: &Value) -> Vec<(String, String)> {
    inspection["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["artifact_type"].as_str().unwrap().to_string(),
                r["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The one artifact `layout`'s index.json lists: its entry and manifest.
fn artifact_in(layout: &Path) -> (Value, Value) {
    let index = read_json(&layout.join("index.json"));
    let artifacts: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d.get("artifactType").is_some())
        .collect();
    assert_eq!(artifacts.len(), 1, "{index}");
    let entry = artifacts[0].clone();
    let manifest = read_json(&blob_path(layout, entry["digest"].as_str().unwrap()));
    (entry, manifest)
}

#[test]
fn a_layout_lists_its_artifacts_after_the_image_and_tools_still_read_it() {
    require("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let (out, digest) = hello_with_sbom(tmp.path());

    let index = read_json(&out.join("index.json"));
    assert_eq!(
        index["manifests"][0]["digest"],
        digest.as_str(),
        "image first"
    );
    let (entry, manifest) = artifact_in(&out);
    assert_eq!(entry["artifactType"], SPDX);
    assert!(entry["annotations"].is_null(), "untagged: {entry}");
    assert_eq!(manifest["subject"]["digest"], digest.as_str());
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.empty.v1+json"
    );
    let document = std::fs::read(blob_path(
        &out,
        manifest["layers"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(document, DOCUMENT.as_bytes());

    // The only image is still the image; the fsck checks the artifact.
    let image = format!("oci:{}", out.display());
    let inspection = inspect_json(&image);
    assert_eq!(inspection["digest"], digest.as_str());
    assert_eq!(
        listed(&inspection),
        [(
            SPDX.to_string(),
            entry["digest"].as_str().unwrap().to_string()
        )]
    );
    let text = ok(&run(ingot().arg("inspect").arg(&image)), "inspect");
    assert!(
        text.contains(&format!("referrers:\n  {SPDX}  sha256:")),
        "{text}"
    );
    let verify = run(ingot().args(["verify", "--json"]).arg(&image));
    let report: Value = serde_json::from_str(&ok(&verify, "verify")).unwrap();
    assert_eq!(report["problems"], serde_json::json!([]), "{report}");

    let skopeo = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:1.2.0", out.display())));
    let seen: Value = serde_json::from_str(&ok(&skopeo, "skopeo inspect")).unwrap();
    assert_eq!(seen["Digest"], digest.as_str());
}

#[test]
fn push_sends_the_artifacts_under_the_fallback_tag_and_pull_brings_them_back() {
    require("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let (out, digest) = hello_with_sbom(tmp.path());
    let (entry, _) = artifact_in(&out);
    let registry = Registry::start();
    let target = registry.reference("team/hello:1.2.0");

    let push = run(ingot()
        .args(["push", "--json", "--insecure", "127.0.0.1"])
        .arg(format!("oci:{}:1.2.0", out.display()))
        .arg(&target));
    let report: Value = serde_json::from_str(&ok(&push, "push")).unwrap();
    let fallback = format!("sha256-{}", digest.trim_start_matches("sha256:"));
    assert_eq!(report["referrers"][0]["digest"], entry["digest"]);
    assert_eq!(report["referrers"][0]["fallback_tag"], fallback.as_str());
    assert!(
        stderr(&push).contains(&format!("listed under tag {fallback}")),
        "{}",
        stderr(&push)
    );

    // skopeo sees the fallback tag: an index listing the artifact.
    let raw = run(Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(registry.reference(&format!("team/hello:{fallback}"))));
    let index: Value = serde_json::from_str(&ok(&raw, "skopeo inspect --raw")).unwrap();
    assert_eq!(index["manifests"][0]["digest"], entry["digest"]);
    assert_eq!(index["manifests"][0]["artifactType"], SPDX);

    assert_eq!(
        listed(&inspect_json(&target)),
        [(
            SPDX.to_string(),
            entry["digest"].as_str().unwrap().to_string()
        )]
    );

    // Pushing again sends nothing new and lists the artifact once.
    let again = run(ingot()
        .args(["push", "--json", "--insecure", "127.0.0.1"])
        .arg(format!("oci:{}:1.2.0", out.display()))
        .arg(&target));
    let again: Value = serde_json::from_str(&ok(&again, "push again")).unwrap();
    assert!(again["referrers"][0]["fallback_tag"].is_null(), "{again}");

    let pulled = tmp.path().join("pulled");
    let pull = run(ingot()
        .args(["pull", "--json", "--insecure", "127.0.0.1"])
        .arg(&target)
        .arg("-o")
        .arg(&pulled));
    let report: Value = serde_json::from_str(&ok(&pull, "pull")).unwrap();
    assert_eq!(report["referrers"][0]["digest"], entry["digest"]);
    assert_eq!(report["referrers"][0]["artifact_type"], SPDX);
    let (pulled_entry, manifest) = artifact_in(&pulled);
    assert_eq!(pulled_entry["digest"], entry["digest"]);
    let document = std::fs::read(blob_path(
        &pulled,
        manifest["layers"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    assert_eq!(document, DOCUMENT.as_bytes());
    let verify = run(ingot()
        .args(["verify", "--digest", &digest])
        .arg(format!("oci:{}:1.2.0", pulled.display())));
    ok(&verify, "verify the pulled image");
}

/// A registry listing, among an image's referrers, an artifact about
/// another image: the pull is refused, naming both, and leaves nothing.
#[test]
fn a_referrer_about_another_image_is_refused_by_pull() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, digest) = hello_with_sbom(tmp.path());
    let (entry, _) = artifact_in(&out);
    let registry = Registry::start();
    let target = registry.reference("team/hello:1.2.0");
    ok(
        &run(ingot()
            .args(["push", "--insecure", "127.0.0.1"])
            .arg(format!("oci:{}:1.2.0", out.display()))
            .arg(&target)),
        "push",
    );

    // Another image, whose fallback tag lists hello's artifact.
    let other_dir = tmp.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    std::fs::write(
        other_dir.join("recipe.yaml"),
        "name: other\nversion: '1'\nbase: scratch\nlayers:\n  - name: f\n    steps:\n      \
         - file: { dest: /x, content: \"x\\n\" }\n",
    )
    .unwrap();
    let other_out = tmp.path().join("other-out");
    let other = common::build(&other_dir.join("recipe.yaml"), &other_out);
    let other_target = registry.reference("team/hello:other");
    ok(
        &run(ingot()
            .args(["push", "--insecure", "127.0.0.1"])
            .arg(format!("oci:{}:1", other_out.display()))
            .arg(&other_target)),
        "push other",
    );
    let hello_tag = format!("sha256-{}", digest.trim_start_matches("sha256:"));
    let other_tag = format!("sha256-{}", other.trim_start_matches("sha256:"));
    let (status, _, listing) = common::registry::http_get(
        registry.port,
        &format!("/v2/team/hello/manifests/{hello_tag}"),
        &[("Accept", "application/vnd.oci.image.index.v1+json")],
    )
    .unwrap();
    assert_eq!(status, 200);
    let at: ingot::image::reference::RegistryRef = registry
        .reference(&format!("team/hello:{other_tag}"))
        .parse()
        .unwrap();
    let remote = ingot::registry::Remote::connect(
        &at,
        &ingot::registry::Access::default(),
        ingot::registry::Progress::quiet(),
    )
    .unwrap();
    remote
        .put_manifest(&at, &listing, "application/vnd.oci.image.index.v1+json")
        .unwrap();

    let pulled = tmp.path().join("pulled");
    let pull = run(ingot()
        .args(["pull", "--insecure", "127.0.0.1"])
        .arg(&other_target)
        .arg("-o")
        .arg(&pulled));
    assert_eq!(pull.status.code(), Some(1), "{}", stderr(&pull));
    let err = stderr(&pull);
    assert!(
        err.contains(entry["digest"].as_str().unwrap()) && err.contains(&digest),
        "{err}"
    );
    assert!(!pulled.exists(), "nothing left behind");
}
