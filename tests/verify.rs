//! `ingot verify` against real layouts: a clean build passes; each kind of
//! tampering is caught with exit 1 and the blob named; several problems are
//! all reported; layouts made by umoci and by concurrent builds pass.

mod common;

use common::{blob_path, read_json};

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use common::{build, ingot, repo, require, run, stderr, stdout};

fn hello() -> PathBuf {
    repo().join("recipes/hello/recipe.yaml")
}

/// A fresh build of recipes/hello in a temp dir: (dir, layout).
fn hello_layout() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("h");
    build(&hello(), &layout);
    (dir, layout)
}

fn verify(image: &str, json: bool) -> Output {
    let mut cmd = ingot();
    cmd.arg("verify").arg(image);
    if json {
        cmd.arg("--json");
    }
    run(&mut cmd)
}

fn oci(layout: &Path) -> String {
    format!("oci:{}", layout.display())
}

/// Runs `ingot verify --json` on the layout, expecting exit `code`.
fn report(layout: &Path, code: i32) -> Value {
    let out = verify(&oci(layout), true);
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The (kind, blob) of every problem in a report.
fn problems(report: &Value) -> Vec<(String, String)> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap().to_string(),
                p["blob"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect()
}

/// Asserts the text output fails with exactly one problem of `kind` naming
/// `blob`.
fn assert_one_problem(layout: &Path, kind: &str, blob: &str) {
    let out = verify(&oci(layout), false);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    // After the lines naming the image and what was checked.
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| l.starts_with("image: ") || l.starts_with("checked: "))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with(&format!("problem: {kind}: {blob}: ")),
        "{text}"
    );
    assert_eq!(lines[1], "FAILED: 1 problem");
    assert!(
        stderr(&out).contains("verification failed"),
        "{}",
        stderr(&out)
    );
}

fn sha256(bytes: &[u8]) -> String {
    ingot::digest::Digest::of(bytes).to_string()
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec(value).unwrap()).unwrap();
}

/// Stores `value` as a blob, as a tool fixing up a layout would: the file
/// named by its digest. Returns (digest, size).
fn put_json(layout: &Path, value: &Value) -> (String, u64) {
    let bytes = serde_json::to_vec(value).unwrap();
    let digest = sha256(&bytes);
    std::fs::write(blob_path(layout, &digest), &bytes).unwrap();
    (digest, bytes.len() as u64)
}

fn index(layout: &Path) -> Value {
    read_json(&layout.join("index.json"))
}

/// The first image's manifest digest, manifest, config digest and layer
/// digests.
struct Image {
    manifest_digest: String,
    manifest: Value,
    config_digest: String,
    layers: Vec<String>,
}

fn image(layout: &Path) -> Image {
    let manifest_digest = index(layout)["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = read_json(&blob_path(layout, &manifest_digest));
    let config_digest = manifest["config"]["digest"].as_str().unwrap().to_string();
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    Image {
        manifest_digest,
        manifest,
        config_digest,
        layers,
    }
}

/// Replaces the first image's manifest with `manifest`, pointing index.json
/// at it, so that only what was changed inside the manifest is wrong.
fn replace_manifest(layout: &Path, manifest: &Value) -> String {
    let (digest, size) = put_json(layout, manifest);
    let mut idx = index(layout);
    idx["manifests"][0]["digest"] = json!(digest);
    idx["manifests"][0]["size"] = json!(size);
    write_json(&layout.join("index.json"), &idx);
    digest
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = at.min(bytes.len() - 1);
    bytes[n] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

fn flip_middle_byte(path: &Path) {
    let n = std::fs::metadata(path).unwrap().len() as usize / 2;
    flip_byte(path, n);
}

#[test]
fn a_clean_build_verifies() {
    let (_dir, layout) = hello_layout();
    let out = verify(&format!("{}:1.2.0", oci(&layout)), false);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let digest = image(&layout).manifest_digest;
    // The tag's image, and the SBOM and provenance about it: two
    // manifests, the empty config they share and two documents more.
    let named = format!(
        "image: {}:1.2.0\nchecked: manifest {digest} (tag 1.2.0)\n\
         checked: 2 artifacts about them (SBOM, provenance, signatures)\n",
        oci(&layout)
    );
    assert!(
        text.starts_with(&format!("{named}ok: 3 manifests, 9 blobs, "))
            && text.ends_with(" bytes verified\n"),
        "{text}"
    );
    assert!(out.stderr.is_empty(), "{}", stderr(&out));

    // The whole layout: the image, and its SBOM and provenance (two
    // manifests, the empty config they share, two documents).
    let json = report(&layout, 0);
    assert_eq!(json["problems"], json!([]));
    assert_eq!(json["manifests"], 3);
    assert_eq!(json["artifacts"], 2);
    assert_eq!(json["blobs"], 4 + 5);
    assert_eq!(json["image"], oci(&layout));
    assert_eq!(json["digest"], digest);
    assert_eq!(
        json["checked"],
        json!([{"digest": digest, "kind": "manifest", "tag": "1.2.0"}])
    );
}

/// `--digest`: the image must be that manifest; a wrong one fails (exit 1)
/// naming both, in words and in JSON; a malformed one is a usage error.
#[test]
fn an_expected_digest_passes_only_for_that_image() {
    let (_dir, layout) = hello_layout();
    let digest = image(&layout).manifest_digest;
    let tagged = format!("{}:1.2.0", oci(&layout));
    let with = |image: &str, expected: &str, json: bool| {
        let mut cmd = ingot();
        cmd.args(["verify", image, "--digest", expected]);
        if json {
            cmd.arg("--json");
        }
        run(&mut cmd)
    };
    for image in [
        tagged.clone(),
        oci(&layout),
        format!("{}@{digest}", oci(&layout)),
    ] {
        let out = with(&image, &digest, false);
        assert!(
            out.status.success(),
            "{image}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains(&format!("checked: manifest {digest}")));
    }

    let wrong = sha256(b"another image");
    let out = with(&tagged, &wrong, false);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{tagged} is {digest}, not {wrong}")),
        "{err}"
    );
    let out = with(&tagged, &wrong, true);
    assert_eq!(out.status.code(), Some(1));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["kind"], "unverified");
    let msg = json["error"]["message"].as_str().unwrap();
    assert!(msg.contains(&digest) && msg.contains(&wrong), "{msg}");

    // A whole layout that lacks it says what it holds.
    let out = with(&oci(&layout), &wrong, false);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("does not hold {wrong}")) && err.contains(&digest),
        "{err}"
    );

    for malformed in ["sha256:abc", "md5:00", &digest.to_uppercase()] {
        let out = with(&tagged, malformed, true);
        assert_eq!(out.status.code(), Some(2), "{malformed}: {}", stderr(&out));
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["error"]["kind"], "usage");
    }
}

/// In a layout of several images, `--digest` without a tag verifies the
/// one of that digest, and the report names each image it checked.
#[test]
fn a_digest_picks_one_image_of_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("tiny");
    let one = build(&tiny_recipe(dir.path(), "1"), &layout);
    let two = build(&tiny_recipe(dir.path(), "2"), &layout);
    let json = report(&layout, 0);
    let checked: Vec<&str> = json["checked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["digest"].as_str().unwrap())
        .collect();
    assert_eq!(checked.len(), 2);
    assert!(checked.contains(&one.as_str()) && checked.contains(&two.as_str()));
    assert!(json.get("digest").is_none(), "{json}");

    let out = run(ingot()
        .args(["verify", "--json", "--digest", &two])
        .arg(oci(&layout)));
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (json["digest"].as_str(), json["manifests"].as_u64()),
        (Some(two.as_str()), Some(1))
    );
    assert_eq!(json["checked"][0]["tag"], "2");
}

#[test]
fn a_flipped_byte_in_a_layer_is_caught() {
    let (_dir, layout) = hello_layout();
    let img = image(&layout);
    // The big base layer: a byte in its deflate stream, where it breaks
    // inflate or the gzip CRC before the blob's digest is checked.
    flip_middle_byte(&blob_path(&layout, &img.layers[0]));
    assert_one_problem(&layout, "digest-mismatch", &img.layers[0]);
}

#[test]
fn a_flipped_byte_in_a_gzip_header_is_caught() {
    let (_dir, layout) = hello_layout();
    let img = image(&layout);
    // The header's mtime: gzip decodes the same tar, so only the blob's
    // digest can tell.
    flip_byte(&blob_path(&layout, &img.layers[1]), 5);
    assert_one_problem(&layout, "digest-mismatch", &img.layers[1]);
}

#[test]
fn a_flipped_byte_in_the_config_is_caught() {
    let (_dir, layout) = hello_layout();
    let img = image(&layout);
    flip_middle_byte(&blob_path(&layout, &img.config_digest));
    assert_one_problem(&layout, "digest-mismatch", &img.config_digest);
}

#[test]
fn a_flipped_byte_in_the_manifest_is_caught() {
    let (_dir, layout) = hello_layout();
    let img = image(&layout);
    flip_middle_byte(&blob_path(&layout, &img.manifest_digest));
    assert_one_problem(&layout, "digest-mismatch", &img.manifest_digest);
}

#[test]
fn a_missing_blob_is_caught() {
    let (_dir, layout) = hello_layout();
    let img = image(&layout);
    std::fs::remove_file(blob_path(&layout, &img.layers[1])).unwrap();
    assert_one_problem(&layout, "missing-blob", &img.layers[1]);
}

#[test]
fn a_wrong_size_in_index_json_is_caught() {
    let (_dir, layout) = hello_layout();
    let img = image(&layout);
    let mut idx = index(&layout);
    let size = idx["manifests"][0]["size"].as_u64().unwrap();
    idx["manifests"][0]["size"] = json!(size - 1);
    write_json(&layout.join("index.json"), &idx);
    assert_one_problem(&layout, "size-mismatch", &img.manifest_digest);
    let out = verify(&oci(&layout), false);
    assert!(
        stdout(&out).contains("the descriptor is wrong"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_wrong_layer_size_in_a_manifest_is_caught() {
    let (_dir, layout) = hello_layout();
    let img = image(&layout);
    let mut manifest = img.manifest.clone();
    let size = manifest["layers"][1]["size"].as_u64().unwrap();
    manifest["layers"][1]["size"] = json!(size + 10);
    replace_manifest(&layout, &manifest);
    assert_one_problem(&layout, "size-mismatch", &img.layers[1]);
}

#[test]
fn a_diff_id_mismatch_is_caught() {
    let (_dir, layout) = hello_layout();
    let img = image(&layout);
    // Change the app layer's diff_id, then fix the digests up the chain
    // (config → manifest → index.json) so that only the diff_id is wrong.
    let mut config = read_json(&blob_path(&layout, &img.config_digest));
    config["rootfs"]["diff_ids"][1] = json!(sha256(b"not the layer"));
    let (config_digest, config_size) = put_json(&layout, &config);
    let mut manifest = img.manifest.clone();
    manifest["config"]["digest"] = json!(config_digest);
    manifest["config"]["size"] = json!(config_size);
    replace_manifest(&layout, &manifest);

    assert_one_problem(&layout, "diff-id-mismatch", &img.layers[1]);
}

#[test]
fn a_missing_or_wrong_oci_layout_is_caught() {
    let (_dir, layout) = hello_layout();
    let marker = layout.join("oci-layout");

    std::fs::write(&marker, r#"{"imageLayoutVersion":"9.9.9"}"#).unwrap();
    let json = report(&layout, 1);
    assert_eq!(problems(&json), [("layout".to_string(), "-".to_string())]);
    assert!(
        json["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("9.9.9")
    );

    std::fs::write(&marker, "not json").unwrap();
    assert_eq!(problems(&report(&layout, 1)).len(), 1);

    std::fs::remove_file(&marker).unwrap();
    let json = report(&layout, 1);
    assert_eq!(problems(&json), [("layout".to_string(), "-".to_string())]);
    // The blobs are checked all the same (the image's, and its SBOM's and
    // provenance's).
    assert_eq!(json["blobs"], 4 + 5);
}

#[test]
fn several_problems_are_all_reported() {
    let (_dir, layout) = hello_layout();
    let img = image(&layout);
    flip_middle_byte(&blob_path(&layout, &img.layers[0]));
    flip_middle_byte(&blob_path(&layout, &img.config_digest));
    std::fs::remove_file(blob_path(&layout, &img.layers[1])).unwrap();
    let json = report(&layout, 1);
    let found = problems(&json);
    for expected in [
        ("digest-mismatch", &img.config_digest),
        ("digest-mismatch", &img.layers[0]),
        ("missing-blob", &img.layers[1]),
    ] {
        assert!(
            found.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{expected:?} not in {found:?}"
        );
    }
    assert_eq!(found.len(), 3, "{found:?}");
    let out = verify(&oci(&layout), false);
    assert!(stdout(&out).ends_with("FAILED: 3 problems\n"));
}

#[test]
fn not_a_layout_or_an_unknown_tag_is_a_usage_error() {
    let (dir, layout) = hello_layout();
    let out = verify(&format!("{}:9.9.9", oci(&layout)), false);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("1.2.0"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    let out = verify(&oci(dir.path()), false);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not an OCI image layout"),
        "{}",
        stderr(&out)
    );
    let out = verify(&oci(&dir.path().join("nope")), false);
    assert_eq!(out.status.code(), Some(2));
    let out = verify("docker://x", false);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_umoci_image_verifies() {
    require("umoci");
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("u");
    let umoci = |args: &[&str]| {
        let out = run(std::process::Command::new("umoci").args(args));
        assert!(out.status.success(), "umoci {args:?}: {}", stderr(&out));
    };
    let image = format!("{}:t", layout.display());
    umoci(&["init", "--layout", layout.to_str().unwrap()]);
    umoci(&["new", "--image", &image]);
    let out = verify(&format!("{}:t", oci(&layout)), false);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let file = dir.path().join("f");
    std::fs::write(&file, "from umoci\n").unwrap();
    umoci(&[
        "insert",
        "--image",
        &image,
        file.to_str().unwrap(),
        "/etc/f",
    ]);
    let json = report(&layout, 0);
    assert_eq!(json["blobs"], 3, "{json}");
}

/// A one-layer recipe at `version`, written under `dir`.
fn tiny_recipe(dir: &Path, version: &str) -> PathBuf {
    let d = dir.join(format!("tiny-{version}"));
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("recipe.yaml");
    std::fs::write(
        &path,
        format!(
            "name: tiny\nversion: '{version}'\nbase: stemcell:static\nlayers:\n  - name: l\n    steps:\n      - file: {{ dest: /v, content: '{version}' }}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_layout_built_concurrently_verifies_for_every_tag() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("tiny");
    let children: Vec<_> = (1..=4)
        .map(|v| {
            ingot()
                .arg("build")
                .arg("-q")
                .arg(tiny_recipe(dir.path(), &v.to_string()))
                .arg("-o")
                .arg(&layout)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for v in 1..=4 {
        let out = verify(&format!("{}:{v}", oci(&layout)), false);
        assert!(
            out.status.success(),
            "tag {v}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(stdout(&out).contains("\nok: 3 manifests, "));
    }
    let json = report(&layout, 0);
    assert_eq!(
        json["manifests"],
        4 + 4 * 2,
        "each image with its SBOM and provenance"
    );
    // The stemcell layer is shared: read once, not four times; so is the
    // artifacts' empty config.
    assert_eq!(json["blobs"], 4 * 3 + 1 + 4 * 4 + 1, "{json}");
}

#[test]
/// `oci:PATH@DIGEST` verifies what that manifest or index reaches, whether
/// index.json lists it or not; a digest the layout has no blob for is a
/// usage error.
fn a_digest_verifies_what_it_reaches() {
    let (_dir, layout) = hello_layout();
    let img = image(&layout);
    // index.json now lists an index of the image and a missing arm64 one,
    // so the manifest is reachable only by digest.
    let nested = common::nest_in_index(&layout, "1.2.0");
    let by = |digest: &str| verify(&format!("{}@{digest}", oci(&layout)), true);

    let out = by(&img.manifest_digest);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["digest"], img.manifest_digest.as_str());
    assert_eq!(
        (json["manifests"].clone(), json["blobs"].clone()),
        (json!(1), json!(4))
    );

    let out = by(&nested);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let missing = format!("sha256:{}", "0".repeat(64));
    assert_eq!(problems(&json), [("missing-blob".to_string(), missing)]);

    flip_middle_byte(&blob_path(&layout, &img.layers[0]));
    let out = by(&img.manifest_digest);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        problems(&json),
        [("digest-mismatch".to_string(), img.layers[0].clone())]
    );

    let out = by(&sha256(b"nothing"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no manifest or index"),
        "{}",
        stderr(&out)
    );
}

/// Verifying a tag checks the artifacts about its image too: a damaged
/// SBOM fails `verify oci:DIR:TAG`, naming its blob.
#[test]
fn a_tags_sbom_is_checked_with_its_image() {
    let (_dir, layout) = hello_layout();
    let index = read_json(&layout.join("index.json"));
    let sbom = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["artifactType"] == "application/spdx+json")
        .unwrap();
    let manifest = read_json(&blob_path(&layout, sbom["digest"].as_str().unwrap()));
    let document = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = blob_path(&layout, &document);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&path, bytes).unwrap();

    let out = verify(&format!("{}:1.2.0", oci(&layout)), true);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["artifacts"], 2);
    assert_eq!(json["problems"][0]["blob"], document.as_str(), "{json}");
}
