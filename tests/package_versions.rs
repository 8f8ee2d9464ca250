//! A package's version moving between two states of a real, signed
//! archive (a point release), as an auditor meets it: `ingot diff` of the
//! images of the two lock states names the upgrade, and `verify
//! --rebuild` of the old image against the relocked recipe says the
//! rebuild differs because of it. The packages are real `.deb`s; the
//! newer one is a real one rebuilt under the next version by dpkg-deb.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use common::archive::{Archive, ArchiveOptions};
use common::{ingot, run, stderr, stdout};

/// zlib1g and what it needs.
const CLOSURE: &[&str] = &["zlib1g", "libc6", "libgcc-s1", "gcc-12-base"];

/// A recipe installing zlib1g from `archive` on merged /usr.
fn recipe(dir: &Path, archive: &Archive) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(archive.keyring(), dir.join("archive.gpg")).unwrap();
    let text = format!(
        "name: z\nversion: 1.0.0\nbase: scratch\n{}\
         \x20 - name: runtime\n    steps:\n\
         \x20     - packages: {{ install: [zlib1g] }}\n",
        common::archive::archive_and_merged_usr(&archive.url()),
    );
    let path = dir.join("recipe.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", stderr(out));
    stdout(out).trim().to_string()
}

/// `ingot lock`, then `ingot build` into `out`: the image's reference.
fn lock_and_build(recipe: &Path, cache: &Path, out: &Path) -> String {
    ok(
        &run(ingot().arg("lock").arg(recipe).arg("--cache").arg(cache)),
        "ingot lock",
    );
    ok(
        &run(ingot()
            .args(["build", "-q"])
            .arg(recipe)
            .arg("-o")
            .arg(out)
            .arg("--cache")
            .arg(cache)),
        "ingot build",
    );
    format!("oci:{}", out.display())
}

fn version_of(deb: &Path) -> String {
    ok(
        &run(Command::new("dpkg-deb").arg("-f").arg(deb).arg("Version")),
        "dpkg-deb -f",
    )
}

#[test]
fn an_upgraded_package_is_named_by_diff_and_by_a_rebuild() {
    let debs = common::debian::debs(CLOSURE);
    let mut archive = Archive::new(&debs, ArchiveOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = recipe(&tmp.path().join("z"), &archive);
    let cache = tmp.path().join("cache");
    let old = lock_and_build(&recipe, &cache, &tmp.path().join("old"));
    let old_version = version_of(&debs[0]);

    // The point release: zlib1g at its next version, the rest as it was.
    let (next, new_version) = common::debian::next_version(&debs[0], "point1", tmp.path());
    let mut published = vec![next];
    published.extend_from_slice(&debs[1..]);
    archive.publish(&published);
    let new = lock_and_build(&recipe, &cache, &tmp.path().join("new"));

    let upgrade = json!([{
        "manager": "dpkg",
        "name": "zlib1g",
        "old": old_version,
        "new": new_version,
        "direction": "upgraded",
    }]);

    // diff of the two lock states: the upgrade, and nothing else.
    let out = run(ingot().arg("diff").arg(&old).arg(&new).arg("--json"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let diff: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diff["packages"]["changed"], upgrade, "{diff}");
    assert_eq!(diff["packages"]["added"], json!([]));
    assert_eq!(diff["packages"]["removed"], json!([]));
    assert_eq!(diff["layers"]["shared"][0]["layer"]["name"], "usr");
    assert_eq!(diff["layers"]["first_differing"], 1);
    let changed: Vec<&str> = diff["filesystem"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(changed.contains(&"/var/lib/dpkg/status"), "{changed:?}");
    let text = run(ingot().arg("diff").arg(&old).arg(&new));
    let line = format!("~ dpkg zlib1g {old_version} -> {new_version} (upgraded)");
    assert!(stdout(&text).contains(&line), "{}", stdout(&text));

    // The old image against the relocked recipe: the upgrade is the reason.
    let out = run(ingot()
        .arg("verify")
        .arg(&old)
        .arg("--rebuild")
        .arg(&recipe)
        .arg("--cache")
        .arg(&cache)
        .arg("--json"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = report["explanation"]["reason"].as_str().unwrap();
    let named = format!(
        "layer 2 (runtime) first differs: packages zlib1g {old_version} -> {new_version} (upgraded); files "
    );
    assert!(reason.starts_with(&named), "{reason}");
    assert!(stderr(&out).contains(&named), "{}", stderr(&out));
    assert_eq!(
        report["explanation"]["images"][0]["diff"]["packages"]["changed"],
        upgrade
    );
    let new_digest = run(ingot().arg("verify").arg(&new).arg("--json"));
    let new_digest: Value = serde_json::from_slice(&new_digest.stdout).unwrap();
    assert_eq!(report["rebuilt_digest"], new_digest["digest"]);

    // And the new image is what the recipe makes now.
    let out = run(ingot()
        .arg("verify")
        .arg(&new)
        .arg("--rebuild")
        .arg(&recipe)
        .arg("--cache")
        .arg(&cache));
    ok(&out, "verify --rebuild of the new image");
}
