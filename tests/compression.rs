//! `--compression zstd`: recipe layers as `tar+zstd`, read back by the zstd
//! command line tool and skopeo, reproducibly.

mod common;

use std::process::Command;

use common::{ingot, repo, require, run, stderr};

fn manifest(layout: &std::path::Path) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let hex = index["manifests"][0]["digest"].as_str().unwrap()[7..].to_string();
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

fn build_zstd(out: &std::path::Path) -> String {
    let o = run(ingot()
        .args(["build", "-q", "--compression", "zstd"])
        .arg(repo().join("recipes/everything/recipe.yaml"))
        .arg("-o")
        .arg(out));
    assert!(o.status.success(), "{}", stderr(&o));
    common::stdout(&o).trim().to_string()
}

#[test]
fn zstd_layers_are_readable_and_reproducible() {
    require("zstd");
    require("skopeo");
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("z");
    let digest = build_zstd(&layout);
    assert_eq!(build_zstd(&dir.path().join("again")), digest);

    let m = manifest(&layout);
    assert_eq!(m["annotations"]["dev.ingot.build.compression"], "zstd");
    let layers = m["layers"].as_array().unwrap();
    // The stemcell's layer stays as it is; the recipe's three are zstd.
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    for layer in &layers[1..] {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        let blob = layout
            .join("blobs/sha256")
            .join(&layer["digest"].as_str().unwrap()[7..]);
        let listing = run(Command::new("sh")
            .arg("-c")
            .arg("zstd -dc \"$1\" | tar -tf -")
            .arg("sh")
            .arg(&blob));
        assert!(listing.status.success(), "{}", stderr(&listing));
        assert!(!listing.stdout.is_empty());
    }

    let out = run(ingot()
        .arg("verify")
        .arg(format!("oci:{}", layout.display())));
    assert!(out.status.success(), "{}", common::stdout(&out));
    let out = run(Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:0.1.0", layout.display())));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(common::stdout(&out).contains(&digest));

    // The same recipe in gzip has the same content: equal diff_ids.
    let gz = dir.path().join("gz");
    common::build(&repo().join("recipes/everything/recipe.yaml"), &gz);
    let diff_ids = |layout: &std::path::Path| {
        let m = manifest(layout);
        let hex = m["config"]["digest"].as_str().unwrap()[7..].to_string();
        let c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap())
                .unwrap();
        c["rootfs"]["diff_ids"].clone()
    };
    assert_eq!(diff_ids(&layout), diff_ids(&gz));
}
