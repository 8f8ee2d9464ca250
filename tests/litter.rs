//! Nothing a build writes outlives it: a killed build's staging directory
//! is removed by the next build in the same place, a live one is left
//! alone, and the temp files a killed writer left in a layout root go the
//! next time the layout is written under its lock.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ingot, stderr, try_build};

/// The staging directories in `dir`.
fn staging_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".ingot-staging-"))
        })
        .collect();
    found.sort();
    found
}

/// A recipe in `dir` whose one layer copies a 1 GiB sparse file: long
/// enough to be killed mid-build, cheap on disk.
fn slow_recipe(dir: &Path) -> PathBuf {
    let big = std::fs::File::create(dir.join("big.bin")).unwrap();
    big.set_len(1 << 30).unwrap();
    let recipe = dir.join("recipe.yaml");
    std::fs::write(
        &recipe,
        "name: slow\nversion: '1'\nbase: scratch\nlayers:\n  - name: big\n    steps:\n      \
         - copy: { src: big.bin, dest: /srv/big.bin }\n",
    )
    .unwrap();
    recipe
}

#[test]
fn a_killed_build_leaves_staging_that_the_next_build_removes() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = slow_recipe(dir.path());
    let out = dir.path().join("out");
    let mut child = ingot()
        .args(["build", "-q", "--no-cache"])
        .arg(&recipe)
        .arg("-o")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while staging_dirs(dir.path()).is_empty() {
        assert!(Instant::now() < deadline, "no staging directory appeared");
        assert!(child.try_wait().unwrap().is_none(), "the build ended first");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL: nothing of ingot runs after it
    child.wait().unwrap();
    assert_eq!(staging_dirs(dir.path()).len(), 1, "the kill left it");
    assert!(!out.exists());

    // Any build staging in the same directory sweeps it.
    let again = try_build(common::repo().join("recipes/hello/recipe.yaml"), &out);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(staging_dirs(dir.path()), Vec::<PathBuf>::new());
    assert!(out.join("index.json").exists());
}

/// A staging directory whose owner lives (its lock held, here by
/// `flock(1)`, which takes the same kind of lock) is not touched; a dead
/// one (its lock free) is removed; stray temp files in the layout root go.
#[test]
fn only_dead_staging_and_stray_temp_files_are_removed() {
    common::require("flock");
    let dir = tempfile::tempdir().unwrap();
    let recipe = common::repo().join("recipes/hello/recipe.yaml");
    let out = dir.path().join("out");
    let first = try_build(&recipe, &out);
    assert!(first.status.success(), "{}", stderr(&first));

    let live = dir.path().join(".ingot-staging-live");
    let dead = dir.path().join(".ingot-staging-dead");
    for d in [&live, &dead] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join(".ingot-owner"), b"").unwrap();
        std::fs::write(d.join("partial-blob"), b"half").unwrap();
    }
    let mut holder = Command::new("flock")
        .arg(live.join(".ingot-owner"))
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    // flock(1) has the lock once a second flock(1) cannot take it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new("flock")
        .args(["-n"])
        .arg(live.join(".ingot-owner"))
        .arg("true")
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "flock(1) never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    let strays = [out.join(".tmpAbC123"), out.join(".ingot-tmp-XyZ")];
    for stray in &strays {
        std::fs::write(stray, b"{\"half\":").unwrap();
    }

    let again = try_build(&recipe, &out);
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(staging_dirs(dir.path()), vec![live.clone()]);
    assert!(live.join("partial-blob").exists());
    for stray in &strays {
        assert!(!stray.exists(), "{} is still there", stray.display());
    }
}

/// `gc` reports what killed builds left beside and in the layout, lists it
/// in a dry run, and removes it otherwise; a live build's staging stays.
#[test]
fn gc_removes_and_reports_what_killed_builds_left() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let built = try_build(common::repo().join("recipes/hello/recipe.yaml"), &out);
    assert!(built.status.success(), "{}", stderr(&built));
    let dead = dir.path().join(".ingot-staging-dead");
    std::fs::create_dir(&dead).unwrap();
    std::fs::write(dead.join(".ingot-owner"), b"").unwrap();
    let stray = out.join(".tmpHalfIndex");
    std::fs::write(&stray, b"{").unwrap();
    let gc = |args: &[&str]| {
        let o = common::run(
            ingot()
                .arg("gc")
                .args(args)
                .arg("--json")
                .arg(format!("oci:{}", out.display())),
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        json["litter"].clone()
    };
    let listed = serde_json::json!([dead.display().to_string(), stray.display().to_string()]);
    assert_eq!(gc(&["--dry-run"]), listed);
    assert!(dead.exists() && stray.exists());
    assert_eq!(gc(&[]), listed);
    assert!(!dead.exists() && !stray.exists());
    assert_eq!(gc(&[]), serde_json::json!([]));
}
