//! The build cache shared through a registry (`--cache-from`,
//! `--cache-to`; issue 18): two runners with empty local caches and one
//! real registry (Debian's docker-registry), runner A filling it, runner B
//! building from it; corrupt and foreign entries refused and rebuilt; and
//! cache registries that are down or failing costing only time.
//!
//! The tree: recipes/hello (on `stemcell:static`), `multi` (three layers
//! on `stemcell:static`) and `onbase` (two layers on `recipe:` multi).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::hostile::{Hostile, Reply};
use common::registry::{Registry, free_port, http_get};
use common::{ingot, repo, run, stderr, stdout};
use serde_json::Value;

const EPOCH: &str = "1700000000";

fn recipe(tree: &Path, name: &str, base: &str, layers: &[(&str, &str)]) -> PathBuf {
    let dir = tree.join(name);
    fs::create_dir_all(&dir).unwrap();
    let mut text = format!("name: {name}\nversion: 1.0.0\nbase: {base}\nlayers:\n");
    for (layer, step) in layers {
        text.push_str(&format!("  - name: {layer}\n    steps:\n      - {step}\n"));
    }
    fs::write(dir.join("recipe.yaml"), text).unwrap();
    dir
}

/// The recipes of the tree, hello's from the repository.
fn tree(root: &Path) -> Vec<PathBuf> {
    let tree = root.join("tree");
    let multi = recipe(
        &tree,
        "multi",
        "stemcell:static",
        &[
            ("etc", "file: { dest: /etc/multi, content: \"multi\\n\" }"),
            ("data", "copy: { src: data, dest: /srv/data }"),
            ("more", "file: { dest: /srv/more, content: more }"),
        ],
    );
    // `a` sorts before `a.txt` and `a.txt` before `a/x` as text, not as
    // the layer lists them: what a fetched entry says it does must be
    // compared in the layer's order.
    let data = multi.join("data");
    fs::create_dir_all(data.join("a")).unwrap();
    fs::write(data.join("a/x"), "x").unwrap();
    fs::write(data.join("a.txt"), "a").unwrap();
    let text: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    fs::write(data.join("data.txt"), text).unwrap();
    let onbase = recipe(
        &tree,
        "onbase",
        "recipe:../multi/recipe.yaml",
        &[
            ("one", "file: { dest: /etc/one, content: one }"),
            ("two", "file: { dest: /etc/two, content: two }"),
        ],
    );
    vec![repo().join("recipes/hello"), multi, onbase]
}

/// `ingot build PATHS --json` in `root` with the local cache `cache`,
/// outputs under `out`, and further `args`.
fn build(root: &Path, paths: &[PathBuf], cache: &str, out: &str, args: &[&str]) -> Output {
    run(ingot()
        .current_dir(root)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .arg("build")
        .args(paths)
        .args(["--json", "--progress", "none", "-j", "2"])
        .arg("--cache")
        .arg(root.join(cache))
        .arg("-o")
        .arg(root.join(out))
        .args(args))
}

fn ok(out: &Output) -> &Output {
    assert!(out.status.success(), "failed: {}", stderr(out));
    out
}

/// A fleet build's JSON lines, by recipe name.
fn lines(out: &Output) -> BTreeMap<String, Value> {
    stdout(out)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (v["name"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

/// A single build's JSON report.
fn report(out: &Output) -> Value {
    serde_json::from_str(&stdout(out)).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The cache entries in `repo` of the registry, by the digest of the
/// layer each holds: (tag, manifest).
fn entries(registry: &Registry, repo: &str) -> BTreeMap<String, (String, Value)> {
    let (status, _, body) = http_get(registry.port, &format!("/v2/{repo}/tags/list"), &[]).unwrap();
    assert_eq!(status, 200);
    let tags: Value = serde_json::from_slice(&body).unwrap();
    let mut out = BTreeMap::new();
    for tag in tags["tags"].as_array().unwrap() {
        let tag = tag.as_str().unwrap();
        assert!(tag.starts_with("key-"), "{tag}");
        let path = format!("/v2/{repo}/manifests/{tag}");
        let (status, _, body) = http_get(registry.port, &path, &[("Accept", MANIFEST)]).unwrap();
        assert_eq!(status, 200);
        let manifest: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            manifest["artifactType"],
            "application/vnd.ingot.cache.layer.v1+json"
        );
        let layer = manifest["layers"][2]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        out.insert(layer, (tag.to_string(), manifest));
    }
    out
}

/// PUTs `manifest` at `repo:tag`.
fn put_manifest(registry: &Registry, repo: &str, tag: &str, manifest: &Value) {
    let body = serde_json::to_vec(manifest).unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", registry.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "PUT /v2/{repo}/manifests/{tag} HTTP/1.0\r\nHost: {}\r\nContent-Type: {MANIFEST}\r\nContent-Length: {}\r\n\r\n",
        registry.host(),
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.split(' ').nth(1) == Some("201"), "{response}");
}

/// The digests of a single build's layers, in order.
fn layer_digests(report: &Value) -> Vec<String> {
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn runner_b_builds_what_runner_a_shared_without_building_a_layer() {
    let registry = Registry::start();
    let root = tempfile::tempdir().unwrap();
    let paths = tree(root.path());
    let cache = registry.reference("ingot-cache");

    let a = build(
        root.path(),
        &paths,
        "cache-a",
        "out-a",
        &["--cache-to", &cache],
    );
    let a = lines(ok(&a));
    assert_eq!(a.len(), 3);
    let own: BTreeMap<&str, u64> = [("hello", 1), ("multi", 3), ("onbase", 2)].into();
    for (name, layers) in &own {
        assert_eq!(a[*name]["layers"]["built"], *layers, "{name}");
    }
    // Every layer is an entry: the recipes' own and the stemcell's.
    let filed = entries(&registry, "ingot-cache");
    assert!(filed.len() >= 6, "{} entries", filed.len());

    let b = build(
        root.path(),
        &paths,
        "cache-b",
        "out-b",
        &["--cache-from", &cache],
    );
    let err = stderr(&b);
    let b = lines(ok(&b));
    for (name, layers) in &own {
        let v = &b[*name];
        assert_eq!(v["digest"], a[*name]["digest"], "{name}");
        assert_eq!(
            v["layers"],
            serde_json::json!({"built": 0, "cached": layers, "remote": layers}),
            "{name}: {err}"
        );
    }
    assert!(err.contains("fetched from docker://"), "{err}");
    assert!(
        !err.contains("refused") && !err.contains("warning"),
        "{err}"
    );

    // A warm runner A pushes nothing again: every entry is there.
    let mark = registry.mark();
    let again = build(
        root.path(),
        &paths[1..2],
        "cache-a",
        "out-a2",
        &["--cache-to", &cache],
    );
    let again = report(ok(&again));
    assert_eq!(again["cache"]["pushed"]["entries"], 0);
    assert_eq!(again["cache"]["pushed"]["present"], 4, "{again}");
    assert!(registry.blob_uploads_since(mark).is_empty());
}

#[test]
fn corrupt_entries_are_refused_and_their_layers_rebuilt() {
    let registry = Registry::start();
    let root = tempfile::tempdir().unwrap();
    let multi = &tree(root.path())[1..2];
    let cache = registry.reference("ingot-cache");
    let a = build(
        root.path(),
        multi,
        "cache-a",
        "out-a",
        &["--cache-to", &cache],
    );
    let a = report(ok(&a));
    let layers = layer_digests(&a);
    let filed = entries(&registry, "ingot-cache");

    // The first entry names another layer's blob as its own.
    let (tag, mut manifest) = filed[&layers[0]].clone();
    manifest["layers"][2] = filed[&layers[1]].1["layers"][2].clone();
    put_manifest(&registry, "ingot-cache", &tag, &manifest);
    // The second carries the third's summary: a summary that parses, of
    // this version, but says what another layer does.
    let (tag, mut manifest) = filed[&layers[1]].clone();
    manifest["layers"][1] = filed[&layers[2]].1["layers"][1].clone();
    put_manifest(&registry, "ingot-cache", &tag, &manifest);
    // The third's blob is damaged in the registry's storage: it is served
    // with the wrong digest.
    let hex = layers[2].trim_start_matches("sha256:");
    let data = registry
        .dir()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs::write(&data, bytes).unwrap();

    let b = build(
        root.path(),
        multi,
        "cache-b",
        "out-b",
        &["--cache-from", &cache],
    );
    let err = stderr(&b);
    let b = report(ok(&b));
    assert_eq!(b["digest"], a["digest"], "{err}");
    assert_eq!(b["cache"]["built"], 3, "{err}");
    assert_eq!(b["cache"]["remote"], 0, "{err}");
    assert_eq!(err.matches("refused").count(), 3, "{err}");
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(
        !err.contains("warning: cache registry"),
        "a corrupt entry is not a failed registry: {err}"
    );
}

#[test]
fn entries_of_another_version_are_not_trusted() {
    let registry = Registry::start();
    let root = tempfile::tempdir().unwrap();
    let multi = &tree(root.path())[1..2];
    let cache = registry.reference("ingot-cache");
    let a = build(
        root.path(),
        multi,
        "cache-a",
        "out-a",
        &["--cache-to", &cache],
    );
    let a = report(ok(&a));
    let layers = layer_digests(&a);
    let filed = entries(&registry, "ingot-cache");

    // An entry recorded as made under another seal policy.
    let (tag, mut manifest) = filed[&layers[1]].clone();
    let version = manifest["annotations"]["dev.ingot.cache.version"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(version.contains("seal policy "), "{version}");
    let older = version.replace("seal policy ", "seal policy 0");
    manifest["annotations"]["dev.ingot.cache.version"] = Value::from(older);
    put_manifest(&registry, "ingot-cache", &tag, &manifest);

    let b = build(
        root.path(),
        multi,
        "cache-b",
        "out-b",
        &["--cache-from", &cache],
    );
    let err = stderr(&b);
    let b = report(ok(&b));
    assert_eq!(b["digest"], a["digest"]);
    assert_eq!(b["cache"]["built"], 1, "{err}");
    assert_eq!(b["cache"]["remote"], 2, "{err}");
    let refusal = err
        .lines()
        .find(|l| l.contains("not trusted"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(refusal.contains(&tag), "{refusal}");
    let built: Vec<bool> = b["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["remote"].as_bool().unwrap())
        .collect();
    assert_eq!(built, [true, false, true]);
}

#[test]
fn cache_registries_down_or_failing_cost_only_time() {
    let root = tempfile::tempdir().unwrap();
    let hello = &tree(root.path())[0..1];
    let plain = build(root.path(), hello, "cache-plain", "out-plain", &[]);
    let plain = report(ok(&plain));

    let failing = Hostile::start(|_| Reply::status(500));
    let closed = format!("docker://127.0.0.1:{}/cache", free_port());
    let broken = failing.reference("cache");
    let started = Instant::now();
    let out = build(
        root.path(),
        hello,
        "cache",
        "out",
        &[
            "--cache-from",
            &closed,
            "--cache-from",
            &broken,
            "--cache-to",
            &broken,
            "--timeout",
            "2",
            "--connect-timeout",
            "2",
        ],
    );
    let took = started.elapsed();
    let err = stderr(&out);
    let got = report(ok(&out));
    assert_eq!(got["digest"], plain["digest"]);
    assert_eq!(got["cache"]["remote"], 0);
    // One line for each registry, naming it, however many layers asked.
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("warning: cache registry"))
        .collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(warnings.iter().any(|w| w.contains(&closed)), "{err}");
    assert!(warnings.iter().any(|w| w.contains(&broken)), "{err}");
    // A refused connection is tried 4 times (0.5 + 1 + 2 s of backoff),
    // once for the run; a 500 is not tried again.
    assert!(took < Duration::from_secs(20), "{took:?}");
}
