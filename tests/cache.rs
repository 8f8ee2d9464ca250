//! The build cache: unchanged work is served, changed inputs are rebuilt,
//! a corrupt entry is never served, and hits give the same bytes.

mod common;

use std::path::{Path, PathBuf};

use common::{ingot, repo, run, stderr, stdout};

/// A copy of `recipes/everything` in `dir`, so tests can change its files.
fn everything(dir: &Path) -> PathBuf {
    let copy = dir.join("recipe");
    common::copy_tree(&repo().join("recipes/everything"), &copy);
    copy.join("recipe.yaml")
}

/// Builds with `--cache cache --json`; returns the digest and, per layer,
/// whether it was served from the cache.
fn build(recipe: &Path, cache: &Path, out: &Path) -> (String, Vec<bool>) {
    let o = run(ingot()
        .arg("build")
        .arg("--json")
        .arg("--cache")
        .arg(cache)
        .arg(recipe)
        .arg("-o")
        .arg(out));
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cached = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["cached"].as_bool().unwrap())
        .collect();
    (report["digest"].as_str().unwrap().to_string(), cached)
}

/// A build with `--cache cache` that may fail.
fn try_build_cached(recipe: &Path, cache: &Path, out: &Path) -> std::process::Output {
    run(ingot()
        .arg("build")
        .arg("--cache")
        .arg(cache)
        .arg(recipe)
        .arg("-o")
        .arg(out))
}

#[test]
fn a_warm_rebuild_serves_every_layer_and_gives_the_same_digest() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = everything(dir.path());
    let cache = dir.path().join("cache");
    let (cold, cached) = build(&recipe, &cache, &dir.path().join("a"));
    assert_eq!(cached, [false, false, false]);
    let (warm, cached) = build(&recipe, &cache, &dir.path().join("b"));
    assert_eq!(cached, [true, true, true]);
    assert_eq!(warm, cold);
    // And the same as a build that never saw a cache.
    let o = run(ingot()
        .args(["build", "-q", "--no-cache"])
        .arg(&recipe)
        .arg("-o")
        .arg(dir.path().join("c")));
    assert_eq!(stdout(&o).trim(), cold);
    let verify = run(ingot()
        .arg("verify")
        .arg(format!("oci:{}", dir.path().join("b").display())));
    assert!(verify.status.success(), "{}", stdout(&verify));
}

#[test]
fn a_changed_file_rebuilds_its_layer_and_what_is_above_only() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = everything(dir.path());
    let cache = dir.path().join("cache");
    let (first, _) = build(&recipe, &cache, &dir.path().join("a"));

    // Same size, new content, old mtime: only the content tells.
    let file = recipe.parent().unwrap().join("files/tree/top.txt");
    let before = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::write(&file, "TOP\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(before)
        .unwrap();

    let (changed, cached) = build(&recipe, &cache, &dir.path().join("b"));
    assert_ne!(changed, first);
    // accounts is below the copy and unchanged; files and prune are rebuilt
    // (prune sits on a changed layer).
    assert_eq!(cached, [true, false, false]);

    std::fs::write(&file, "top\n").unwrap();
    let (back, cached) = build(&recipe, &cache, &dir.path().join("c"));
    assert_eq!(back, first, "the original inputs give the original image");
    assert_eq!(cached, [true, true, true]);
}

#[test]
fn a_corrupt_cache_entry_is_rebuilt_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = everything(dir.path());
    let cache = dir.path().join("cache");
    let (first, _) = build(&recipe, &cache, &dir.path().join("a"));

    // Corrupt every cached layer blob in place (break hard links first).
    let blobs = cache.join("blobs/sha256");
    for entry in std::fs::read_dir(cache.join("layers")).unwrap() {
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        let path = blobs.join(&json["digest"].as_str().unwrap()[7..]);
        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    let (again, cached) = build(&recipe, &cache, &dir.path().join("b"));
    assert_eq!(cached, [false, false, false]);
    assert_eq!(again, first);
    let (_, cached) = build(&recipe, &cache, &dir.path().join("c"));
    assert_eq!(
        cached,
        [true, true, true],
        "rebuilt entries are cached again"
    );
}

#[test]
fn cache_du_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = everything(dir.path());
    let cache = dir.path().join("cache");
    build(&recipe, &cache, &dir.path().join("a"));
    let du = |args: &[&str]| {
        let o = run(ingot()
            .arg("cache")
            .args(args)
            .arg("--json")
            .arg("--cache")
            .arg(&cache));
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let usage = du(&["du"]);
    assert!(usage["layers"].as_u64().unwrap() >= 3, "{usage}");
    assert!(usage["bytes"].as_u64().unwrap() > 0);
    du(&["prune"]);
    let usage = du(&["du"]);
    assert_eq!(
        (usage["layers"].as_u64(), usage["blobs"].as_u64()),
        (Some(0), Some(0))
    );
    let (_, cached) = build(&recipe, &cache, &dir.path().join("b"));
    assert_eq!(cached, [false, false, false]);
}

#[test]
fn no_cache_writes_no_cache() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("xdg");
    let o = run(ingot()
        .env("XDG_CACHE_HOME", &home)
        .args(["build", "-q", "--no-cache"])
        .arg(repo().join("recipes/hello/recipe.yaml"))
        .arg("-o")
        .arg(dir.path().join("a")));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!home.exists());
    let o = run(ingot()
        .env("XDG_CACHE_HOME", &home)
        .args(["build", "-q"])
        .arg(repo().join("recipes/hello/recipe.yaml"))
        .arg("-o")
        .arg(dir.path().join("b")));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        home.join("ingot/layers").is_dir(),
        "the default cache is XDG_CACHE_HOME/ingot"
    );
}

/// A layer served from the cache is sealed like a fresh one: a key in it
/// fails the rebuild too, naming the same layer.
#[test]
fn cached_layers_are_sealed_too() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("r");
    std::fs::create_dir_all(d.join("files")).unwrap();
    std::fs::write(
        d.join("files/notes.txt"),
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n",
    )
    .unwrap();
    std::fs::write(
        d.join("recipe.yaml"),
        "name: leaky\nversion: '1'\nbase: stemcell:static\nlayers:\n  - name: data\n    steps:\n      - copy: { src: files, dest: /srv }\n",
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let attempt = || try_build_cached(&d.join("recipe.yaml"), &cache, &dir.path().join("out"));
    let first = attempt();
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    assert!(stderr(&first).contains("no-private-keys: /srv/notes.txt (layer data"));
    let second = attempt();
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("layer data: cached"),
        "{}",
        stderr(&second)
    );
    assert!(
        stderr(&second).contains("no-private-keys: /srv/notes.txt (layer data"),
        "{}",
        stderr(&second)
    );
}

/// The cache entry of the one recipe layer in `cache`, parsed, with its path.
fn only_entry(cache: &Path) -> (PathBuf, serde_json::Value) {
    let entries: Vec<PathBuf> = std::fs::read_dir(cache.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let json = serde_json::from_slice(&std::fs::read(&entries[0]).unwrap()).unwrap();
    (entries[0].clone(), json)
}

/// A summary made under another seal policy or scanner is never served:
/// the layer is read back and scanned again. Planted here as what an older
/// ingot, whose scanner did not know the key format, would have cached:
/// no findings. With the current version stamped on the same summary it
/// would be served as it stands (the last build shows that), so the
/// version is what keeps the key out.
#[test]
fn a_summary_from_another_seal_version_is_rescanned_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("r");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("recipe.yaml"),
        "name: stale\nversion: '1'\nbase: scratch\nlayers:\n  - name: data\n    steps:\n      \
         - file: { dest: /srv/notes.txt, content: \"-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\\n-----END OPENSSH PRIVATE KEY-----\\n\" }\n",
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let attempt = || try_build_cached(&d.join("recipe.yaml"), &cache, &dir.path().join("out"));
    let first = attempt();
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    let (entry, mut json) = only_entry(&cache);
    let version = json["summary"]["version"].as_str().unwrap().to_string();
    assert!(
        version.contains("seal policy") && version.contains("scanner"),
        "{version}"
    );
    assert_eq!(
        json["summary"]["body"]["findings"]["found"][0],
        serde_json::json!(["/srv/notes.txt", {"key": {"format": "OPENSSH PRIVATE KEY", "inside": null}}])
    );

    let plant = |json: &mut serde_json::Value, version: &str| {
        json["summary"]["body"]["findings"]["found"] = serde_json::json!([]);
        json["summary"]["version"] = serde_json::json!(version);
        std::fs::write(&entry, serde_json::to_vec(json).unwrap()).unwrap();
    };
    plant(&mut json, "summary 1, seal policy 0, scanner 0");
    let stale = attempt();
    assert_eq!(stale.status.code(), Some(1), "{}", stderr(&stale));
    assert!(
        stderr(&stale).contains("no-private-keys: /srv/notes.txt (layer data"),
        "{}",
        stderr(&stale)
    );
    // The rescan made the summary anew, under the current version.
    let (_, refreshed) = only_entry(&cache);
    assert_eq!(refreshed["summary"]["version"], version.as_str());
    assert_eq!(
        refreshed["summary"]["body"]["findings"]["found"][0][0],
        "/srv/notes.txt"
    );

    let (_, mut json) = only_entry(&cache);
    plant(&mut json, &version);
    let trusted = attempt();
    assert!(trusted.status.success(), "{}", stderr(&trusted));
}

// ---------------------------------------------------------------------------
// Real bases

/// A recipe in `dir/app` on an OCI base umoci made at `dir/base` (tag `t`,
/// one layer per script, each run in a fresh root), with one layer of its own.
fn on_umoci_base(dir: &Path, layers: &[&str]) -> PathBuf {
    common::require("umoci");
    let sh = |script: &str| {
        let out = run(std::process::Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(dir));
        assert!(out.status.success(), "{script}: {}", stderr(&out));
    };
    sh("umoci init --layout base && umoci new --image base:t");
    for script in layers {
        sh(&format!(
            "rm -rf rfs && mkdir rfs && (cd rfs && {script}) && umoci insert --image base:t rfs / && rm -rf rfs"
        ));
    }
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(
        app.join("recipe.yaml"),
        "name: app\nversion: '1'\nbase: oci:../base:t\nlayers:\n  - name: app\n    steps:\n      \
         - copy: { src: hello.txt, dest: /srv/hello.txt }\n",
    )
    .unwrap();
    app.join("recipe.yaml")
}

/// What a build learns reading a real base is cached: a warm build reads
/// no base layer, and gives the digest a build without the cache gives.
#[test]
fn a_warm_build_on_a_real_base_reads_no_base_layer() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = on_umoci_base(
        dir.path(),
        &[
            "mkdir -p usr/bin etc && echo one > usr/bin/tool && echo root:x:0:0::/root:/bin/sh > etc/passwd",
            "mkdir -p usr/share && echo two > usr/share/data && ln -s usr/bin bin",
        ],
    );
    let cache = dir.path().join("cache");
    let attempt = |out: &str| try_build_cached(&recipe, &cache, &dir.path().join(out));
    let cold = attempt("a");
    assert!(cold.status.success(), "{}", stderr(&cold));
    assert!(
        stderr(&cold).contains("base layers: read, 2"),
        "{}",
        stderr(&cold)
    );
    let warm = attempt("b");
    assert!(warm.status.success(), "{}", stderr(&warm));
    assert!(
        stderr(&warm).contains("base layers: cached, 2"),
        "{}",
        stderr(&warm)
    );
    assert_eq!(stdout(&cold), stdout(&warm));
    let uncached = run(ingot()
        .arg("build")
        .arg("--no-cache")
        .arg(&recipe)
        .arg("-o")
        .arg(dir.path().join("c")));
    assert!(uncached.status.success(), "{}", stderr(&uncached));
    assert_eq!(stdout(&uncached), stdout(&warm));
}

/// What the cache says of a base is trusted only from the same reading,
/// seal policy and scanner: an entry of another version, or one that does
/// not parse, is read again, and the key the base holds fails the build
/// again. (Stamped with the current version, the same planted entry would
/// be taken: the version is what keeps the key out.)
#[test]
fn a_base_summary_from_another_version_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = on_umoci_base(
        dir.path(),
        &[
            "mkdir -p srv && printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\\n-----END OPENSSH PRIVATE KEY-----\\n' > srv/notes.txt",
        ],
    );
    let cache = dir.path().join("cache");
    let attempt = || try_build_cached(&recipe, &cache, &dir.path().join("out"));
    let first = attempt();
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    assert!(stderr(&first).contains("no-private-keys: /srv/notes.txt (layer base"));
    let entries: Vec<PathBuf> = std::fs::read_dir(cache.join("bases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(entry).unwrap()).unwrap();
    let version = json["version"].as_str().unwrap().to_string();
    assert!(
        version.contains("seal policy") && version.contains("layer reading"),
        "{version}"
    );
    let plant = |version: &str| {
        let mut json = json.clone();
        json["body"]["layers"][0][1]["found"] = serde_json::json!([]);
        json["version"] = serde_json::json!(version);
        std::fs::write(entry, serde_json::to_vec(&json).unwrap()).unwrap();
    };
    for stale in [
        "base summary 1, layer reading 0, seal policy 0, scanner 0",
        "not json",
    ] {
        if stale == "not json" {
            std::fs::write(entry, "{ not json").unwrap();
        } else {
            plant(stale);
        }
        let again = attempt();
        assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
        assert!(
            stderr(&again).contains("base layers: read, 1"),
            "{}",
            stderr(&again)
        );
        assert!(stderr(&again).contains("no-private-keys: /srv/notes.txt"));
    }
    plant(&version);
    let trusted = attempt();
    assert!(
        stderr(&trusted).contains("base layers: cached, 1"),
        "{}",
        stderr(&trusted)
    );
    assert!(trusted.status.success(), "{}", stderr(&trusted));
}

/// A base blob changed in place after builds that read it is caught by the
/// next build, however warm: the blob is read through its digest again once
/// its stat changed.
#[test]
fn a_base_blob_changed_in_place_is_caught_on_a_warm_build() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = on_umoci_base(dir.path(), &["mkdir -p usr/bin && echo one > usr/bin/tool"]);
    let cache = dir.path().join("cache");
    let attempt = |out: &str| try_build_cached(&recipe, &cache, &dir.path().join(out));
    for out in ["a", "b"] {
        let o = attempt(out);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let manifest = common::read_json(&common::blob_path(
        &dir.path().join("base"),
        common::read_json(&dir.path().join("base/index.json"))["manifests"][0]["digest"]
            .as_str()
            .unwrap(),
    ));
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = common::blob_path(&dir.path().join("base"), layer);
    let mut bytes = std::fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let caught = attempt("c");
    assert_eq!(caught.status.code(), Some(1), "{}", stderr(&caught));
    assert!(stderr(&caught).contains(layer), "{}", stderr(&caught));
    assert!(!dir.path().join("c").exists());
}
