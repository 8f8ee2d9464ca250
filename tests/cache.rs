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

fn build_uncached(recipe: &Path, out: &Path) -> std::process::Output {
    run(ingot()
        .arg("build")
        .arg("--no-cache")
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

/// Flips the middle byte of `path` where it lies: the same inode and size.
fn flip_byte_in_place(path: &Path) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mid = file.metadata().unwrap().len() / 2;
    let mut byte = [0u8];
    file.seek(SeekFrom::Start(mid)).unwrap();
    file.read_exact(&mut byte).unwrap();
    file.seek(SeekFrom::Start(mid)).unwrap();
    file.write_all(&[byte[0] ^ 0xff]).unwrap();
}

#[test]
fn a_corrupt_cache_entry_is_rebuilt_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = everything(dir.path());
    let cache = dir.path().join("cache");
    let (first, _) = build(&recipe, &cache, &dir.path().join("a"));

    // Corrupt every cached layer blob in place: the same inode and size,
    // as a stray write leaves it (the outputs linked to it share the harm).
    let blobs = cache.join("blobs/sha256");
    for entry in std::fs::read_dir(cache.join("layers")).unwrap() {
        let entry = entry.unwrap().path();
        if entry.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry).unwrap()).unwrap();
        flip_byte_in_place(&blobs.join(&json["digest"].as_str().unwrap()[7..]));
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

/// A build whose every layer the cache serves takes the checks' and the
/// seal's pass from the cache too, without replaying its layers; but only
/// for the same layers, runtime config and exceptions: each changed here,
/// the layers still served, to what would fail, and fails.
#[test]
fn a_cached_verdict_counts_only_for_the_same_layers_config_and_exceptions() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("r");
    std::fs::create_dir_all(&d).unwrap();
    let recipe = d.join("recipe.yaml");
    let write = |content: &str, extra: &str| {
        std::fs::write(
            &recipe,
            format!(
                "name: verdict\nversion: '1'\nbase: scratch\nlayers:\n  - name: data\n    steps:\n      \
                 - file: {{ dest: /srv/notes.txt, content: {content:?} }}\n{extra}"
            ),
        )
        .unwrap();
    };
    let cache = dir.path().join("cache");
    let attempt = || try_build_cached(&recipe, &cache, &dir.path().join("out"));
    const CACHED: &str = "checks and seal: passed on these layers before (cached)";

    write("hello\n", "");
    let cold = attempt();
    assert!(cold.status.success(), "{}", stderr(&cold));
    assert!(!stderr(&cold).contains(CACHED), "{}", stderr(&cold));
    let warm = attempt();
    assert!(warm.status.success(), "{}", stderr(&warm));
    assert!(
        stderr(&warm).contains("layer data: cached"),
        "{}",
        stderr(&warm)
    );
    assert!(stderr(&warm).contains(CACHED), "{}", stderr(&warm));
    assert_eq!(stdout(&warm), stdout(&cold));

    // Another runtime config: the checks run, and refuse it.
    write("hello\n", "config:\n  entrypoint: [/srv/missing]\n");
    let other = attempt();
    // Both are the recipe's errors (exit 2).
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
    assert!(
        stderr(&other).contains("layer data: cached"),
        "{}",
        stderr(&other)
    );
    assert!(
        stderr(&other).contains("config.entrypoint: /srv/missing does not exist"),
        "{}",
        stderr(&other)
    );

    // Another exception: the seal runs, and finds it stale.
    write(
        "hello\n",
        "seal:\n  allow:\n    - { rule: no-ssh-host-keys, path: /nowhere, reason: none }\n",
    );
    let other = attempt();
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
    assert!(
        stderr(&other).contains("layer data: cached"),
        "{}",
        stderr(&other)
    );
    assert!(
        stderr(&other).contains("matches nothing"),
        "{}",
        stderr(&other)
    );

    // Another layer: the seal runs on it.
    write(KEY, "");
    let other = attempt();
    assert_eq!(other.status.code(), Some(1), "{}", stderr(&other));
    assert!(
        stderr(&other).contains("no-private-keys: /srv/notes.txt"),
        "{}",
        stderr(&other)
    );
}

/// The summary files in `dir` (`*.summary`), sorted.
fn summaries(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "summary"))
        .collect();
    found.sort();
    found
}

/// A summary file split into its version line and its body.
fn split_summary(path: &Path) -> (String, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let newline = bytes.iter().position(|&b| b == b'\n').unwrap();
    (
        String::from_utf8(bytes[..newline].to_vec()).unwrap(),
        bytes[newline + 1..].to_vec(),
    )
}

/// The body of the one summary in `dir` other than `entry`.
fn other_body(dir: &Path, entry: &Path) -> Vec<u8> {
    let other = summaries(dir).into_iter().find(|p| p != entry).unwrap();
    split_summary(&other).1
}

/// Writes a summary file of `version` and `body` at `path`.
fn plant_summary(path: &Path, version: &str, body: &[u8]) {
    let mut bytes = format!("{version}\n").into_bytes();
    bytes.extend_from_slice(body);
    std::fs::write(path, bytes).unwrap();
}

/// A recipe in `dir` of one layer holding `/srv/notes.txt` with `content`.
fn notes_recipe(dir: &Path, content: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let recipe = dir.join("recipe.yaml");
    std::fs::write(
        &recipe,
        format!(
            "name: stale\nversion: '1'\nbase: scratch\nlayers:\n  - name: data\n    steps:\n      \
             - file: {{ dest: /srv/notes.txt, content: {content:?} }}\n"
        ),
    )
    .unwrap();
    recipe
}

const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n";

/// A summary made under another seal policy or scanner is never served:
/// the layer is read back and scanned again. Planted here as what an older
/// ingot, whose scanner did not know the key format, would have cached: the
/// summary of a file of the same size without the key (the same changes, no
/// findings). With the current version stamped on the same summary it would
/// be served as it stands (the last build shows that), so the version is
/// what keeps the key out.
#[test]
fn a_summary_from_another_seal_version_is_rescanned_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let recipe = notes_recipe(&dir.path().join("r"), KEY);
    let attempt = || try_build_cached(&recipe, &cache, &dir.path().join("out"));
    let first = attempt();
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    let [entry] = &summaries(&cache.join("layers"))[..] else {
        panic!("one summary expected");
    };
    let (version, keyed) = split_summary(entry);
    assert!(
        version.contains("seal policy") && version.contains("scanner"),
        "{version}"
    );

    let innocent = notes_recipe(&dir.path().join("i"), &"x".repeat(KEY.len()));
    let o = try_build_cached(&innocent, &cache, &dir.path().join("innocent"));
    assert!(o.status.success(), "{}", stderr(&o));
    let clean = other_body(&cache.join("layers"), entry);
    assert_ne!(clean, keyed, "the findings differ");

    plant_summary(entry, "summary 1, seal policy 0, scanner 0", &clean);
    let stale = attempt();
    assert_eq!(stale.status.code(), Some(1), "{}", stderr(&stale));
    assert!(
        stderr(&stale).contains("no-private-keys: /srv/notes.txt (layer data"),
        "{}",
        stderr(&stale)
    );
    // The rescan made the summary anew, under the current version.
    assert_eq!(split_summary(entry), (version.clone(), keyed));

    plant_summary(entry, &version, &clean);
    let trusted = attempt();
    assert!(trusted.status.success(), "{}", stderr(&trusted));
    for file in std::fs::read_dir(cache.join("layers")).unwrap() {
        let path = file.unwrap().path();
        let filed = path
            .extension()
            .is_some_and(|e| e == "json" || e == "summary");
        assert!(filed, "left in the cache: {}", path.display());
    }
}

/// A layer's summary is written into the cache as the layer is: a build
/// that fails in the layer above leaves no part of it behind.
#[test]
fn a_build_failing_above_a_written_layer_leaves_no_summary_part() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("recipe.yaml");
    std::fs::write(
        &recipe,
        "name: t\nversion: '1'\nbase: scratch\nlayers:\n  - name: one\n    steps:\n      \
         - file: { dest: /srv/a, content: x }\n  - name: two\n    steps:\n      \
         - file: { dest: /srv/a/b, content: y }\n",
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let o = try_build_cached(&recipe, &cache, &dir.path().join("out"));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/srv/a is not a directory"),
        "{}",
        stderr(&o)
    );
    let left: Vec<_> = std::fs::read_dir(cache.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
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
    let uncached = build_uncached(&recipe, &dir.path().join("c"));
    assert!(uncached.status.success(), "{}", stderr(&uncached));
    assert_eq!(stdout(&uncached), stdout(&warm));
}

/// What the cache says of a base is trusted only from the same reading,
/// seal policy and scanner: an entry of another version, or one that does
/// not decode, is read again, and the key the base holds fails the build
/// again. (Stamped with the current version, the same planted entry, the
/// summary of a base with a file of the same size and no key, would be
/// taken: the version is what keeps the key out.)
#[test]
fn a_base_summary_from_another_version_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let notes = |text: &str| format!("mkdir -p srv && printf -- {text:?} > srv/notes.txt");
    let recipe = on_umoci_base(dir.path(), &[&notes(KEY)]);
    let cache = dir.path().join("cache");
    let attempt = || try_build_cached(&recipe, &cache, &dir.path().join("out"));
    let first = attempt();
    assert_eq!(first.status.code(), Some(1), "{}", stderr(&first));
    assert!(stderr(&first).contains("no-private-keys: /srv/notes.txt (layer base"));
    let [entry] = &summaries(&cache.join("bases"))[..] else {
        panic!("one base summary expected");
    };
    let (version, keyed) = split_summary(entry);
    assert!(
        version.contains("seal policy") && version.contains("layer reading"),
        "{version}"
    );

    let other = dir.path().join("innocent");
    std::fs::create_dir_all(&other).unwrap();
    let innocent = on_umoci_base(&other, &[&notes(&"x".repeat(KEY.len()))]);
    let o = try_build_cached(&innocent, &cache, &other.join("out"));
    assert!(o.status.success(), "{}", stderr(&o));
    let clean = other_body(&cache.join("bases"), entry);

    for (stale, body) in [
        (
            "base summary 1, layer reading 0, seal policy 0, scanner 0",
            &clean[..],
        ),
        (version.as_str(), b"not a summary"),
    ] {
        plant_summary(entry, stale, body);
        let again = attempt();
        assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
        assert!(
            stderr(&again).contains("base layers: read, 1"),
            "{}",
            stderr(&again)
        );
        assert!(stderr(&again).contains("no-private-keys: /srv/notes.txt"));
        assert_eq!(split_summary(entry), (version.clone(), keyed.clone()));
    }
    plant_summary(entry, &version, &clean);
    let trusted = attempt();
    assert!(
        stderr(&trusted).contains("base layers: cached, 1"),
        "{}",
        stderr(&trusted)
    );
    assert!(trusted.status.success(), "{}", stderr(&trusted));
}

/// A base blob changed in place after builds that read it never reaches an
/// image: a warm build takes the layer, by its digest, from the cache's
/// checked copy and gives the same image, which verifies; without the cache
/// the blob is read and refused. A cached copy changed in place is not used
/// either: its stat shows the write, and the base's blob is read again.
#[test]
fn a_base_blob_changed_in_place_never_reaches_an_image() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = on_umoci_base(dir.path(), &["mkdir -p usr/bin && echo one > usr/bin/tool"]);
    let cache = dir.path().join("cache");
    let attempt = |out: &str| try_build_cached(&recipe, &cache, &dir.path().join(out));
    let first = attempt("a");
    assert!(first.status.success(), "{}", stderr(&first));
    let manifest = common::read_json(&common::blob_path(
        &dir.path().join("base"),
        common::read_json(&dir.path().join("base/index.json"))["manifests"][0]["digest"]
            .as_str()
            .unwrap(),
    ));
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    flip_byte_in_place(&common::blob_path(&dir.path().join("base"), layer));

    let warm = attempt("b");
    assert!(warm.status.success(), "{}", stderr(&warm));
    assert_eq!(stdout(&warm), stdout(&first));
    let verify = run(ingot()
        .arg("verify")
        .arg(format!("oci:{}", dir.path().join("b").display())));
    assert!(verify.status.success(), "{}", stderr(&verify));

    let uncached = build_uncached(&recipe, &dir.path().join("c"));
    assert_eq!(uncached.status.code(), Some(1), "{}", stderr(&uncached));
    assert!(stderr(&uncached).contains(layer), "{}", stderr(&uncached));
    assert!(!dir.path().join("c").exists());

    // The cache's own copy changed in place: the build falls back to the
    // base's blob, which is corrupt too, and refuses it.
    flip_byte_in_place(&common::blob_path(&cache, layer));
    let caught = attempt("d");
    assert_eq!(caught.status.code(), Some(1), "{}", stderr(&caught));
    assert!(stderr(&caught).contains(layer), "{}", stderr(&caught));
    assert!(!dir.path().join("d").exists());

    // Into another cache, the corrupt base is refused, and leaves no
    // summary of it there.
    let other = dir.path().join("other-cache");
    let refused = try_build_cached(&recipe, &other, &dir.path().join("e"));
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let left: Vec<_> = std::fs::read_dir(other.join("bases")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A blob served from the cache is linked into the layout: it must not
/// carry the umask of the build that first wrote it, or one build under
/// `umask 077` would publish unreadable blobs into every later layout.
#[test]
fn cached_blobs_do_not_carry_the_umask_of_the_build_that_wrote_them() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let recipe = everything(dir.path());
    let cache = dir.path().join("cache");
    let under = |umask: &str, out: &Path| {
        let o = run(std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask}; exec \"$@\""))
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_ingot"))
            .args(["build", "--cache"])
            .arg(&cache)
            .arg(&recipe)
            .arg("-o")
            .arg(out)
            .env_remove("SOURCE_DATE_EPOCH"));
        assert!(o.status.success(), "{}", stderr(&o));
    };
    under("077", &dir.path().join("private"));
    let public = dir.path().join("public");
    under("022", &public);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for blob in std::fs::read_dir(public.join("blobs/sha256")).unwrap() {
        let blob = blob.unwrap().path();
        assert_eq!(mode(&blob), 0o644, "{}", blob.display());
    }
    // The private layout's own directories keep their umask.
    assert_eq!(mode(&dir.path().join("private")), 0o700);
}
