//! design.md's "Reproducibility rules", proven by building under different
//! conditions and comparing digests, and by reading the output with
//! independent tools (Python's gzip, zlib and tarfile; skopeo).

mod common;

use std::cmp::Ordering;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const EPOCH: &str = "1700000000";
const EPOCH_RFC3339: &str = "2023-11-14T22:13:20Z";

use common::{blob_path, example as recipe, read_json};

fn blob_json(layout: &Path, digest: &Value) -> Value {
    read_json(&blob_path(layout, digest.as_str().unwrap()))
}

/// Runs `cmd` (an `ingot build`), returning the digest it printed.
fn digest_of(cmd: &mut Command) -> String {
    let out = common::run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        common::stderr(&out)
    );
    let digest = common::stdout(&out).trim().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest:?}"
    );
    digest
}

/// Builds with SOURCE_DATE_EPOCH set to `epoch`.
fn build_at(epoch: &str, recipe: &Path, out: &Path) -> String {
    digest_of(
        common::ingot()
            .env("SOURCE_DATE_EPOCH", epoch)
            .arg("build")
            .arg(recipe)
            .arg("-o")
            .arg(out),
    )
}

/// Copies `from` to `to` like `common::copy_tree`, but creating entries in
/// reverse name order, so directory order on disk differs from a checkout's.
fn copy_reversed(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.file_name()));
    for entry in entries {
        let ft = entry.file_type().unwrap();
        let dest = to.join(entry.file_name());
        if ft.is_dir() {
            copy_reversed(&entry.path(), &dest);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// Every path under `root` (itself included), deepest first.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if std::fs::symlink_metadata(root).unwrap().is_dir() {
        for entry in std::fs::read_dir(root).unwrap() {
            out.extend(walk(&entry.unwrap().path()));
        }
    }
    out.push(root.to_path_buf());
    out
}

/// Gives every input odd host metadata that must not reach the image: the
/// modes a `umask 077` checkout has (and group/other bits that differ from
/// the owner's), an xattr, an extra hard link (so a link count of 2), a
/// foreign owner when running as root, and scattered mtimes (set last,
/// deepest first, so nothing disturbs them afterwards).
fn scramble_metadata(root: &Path) {
    std::fs::hard_link(root.join("files/tree/top.txt"), root.join("top-link")).unwrap();
    // /proc/self is owned by the effective uid.
    let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let times = [
        "@1",
        "1999-12-31 23:59:59",
        "2038-01-19 03:14:08",
        "@4102444799",
        "2004-02-29 12:00:00",
        "@1234567890",
    ];
    for (i, path) in walk(root).iter().enumerate() {
        let meta = std::fs::symlink_metadata(path).unwrap();
        if !meta.file_type().is_symlink() {
            // Only the owner's execute bit may count (rule 5): vary the rest.
            let exec = meta.permissions().mode() & 0o100 != 0;
            let mode = match (meta.is_dir(), exec, i % 2) {
                (true, _, _) => 0o700,
                (false, true, 0) => 0o700,
                (false, true, _) => 0o500,
                (false, false, 0) => 0o600,
                (false, false, _) => 0o677,
            };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        if meta.is_file() {
            // xattrs are dropped (rule 6). Best effort: not every
            // filesystem takes user xattrs.
            let _ = Command::new("python3")
                .arg("-c")
                .arg("import os, sys; os.setxattr(sys.argv[1], 'user.ingot.test', b'host')")
                .arg(path)
                .output();
        }
        if as_root {
            std::os::unix::fs::lchown(path, Some(4242 + i as u32), Some(777)).unwrap();
        }
        let status = Command::new("touch")
            .arg("-h")
            .arg("-d")
            .arg(times[i % times.len()])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "touch {}", path.display());
    }
}

#[test]
/// Compression threads, zstd workers and layers written at once all follow
/// the core count: one core (taskset) gives the image all cores give.
fn the_core_count_does_not_change_the_digest() {
    common::require("taskset");
    let tmp = tempfile::tempdir().unwrap();
    for compression in ["gzip", "zstd"] {
        let build = |cores: Option<&str>, out: &str| {
            let bin = env!("CARGO_BIN_EXE_ingot");
            let mut cmd = match cores {
                Some(list) => {
                    let mut c = Command::new("taskset");
                    c.args(["-c", list, bin]);
                    c
                }
                None => Command::new(bin),
            };
            cmd.env_remove("SOURCE_DATE_EPOCH")
                .args(["build", "--no-cache", "--compression", compression])
                .arg(recipe("everything"))
                .arg("-o")
                .arg(tmp.path().join(out));
            digest_of(&mut cmd)
        };
        let one = build(Some("0"), &format!("one-{compression}"));
        let all = build(None, &format!("all-{compression}"));
        assert_eq!(one, all, "{compression}");
    }
}

#[test]
/// Rules 5, 6 and 10, and the closing paragraph: the digest depends on the
/// recipe and its inputs only, not on where the recipe lives, the input
/// files' creation order, mtimes, modes beyond owner-executable, owners or
/// link counts, nor on the builder's umask, TZ, locale, current directory
/// or output path. Changing one input's content does change it.
fn host_conditions_do_not_change_the_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let normal = common::build(&recipe("everything"), &tmp.path().join("a/everything"));

    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("some/other-name");
    copy_reversed(&common::repo().join("recipes/everything"), &copy);
    scramble_metadata(&copy);

    let odd_build = |out: &str| {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(r#"umask 077; exec "$@""#)
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_ingot"))
            .arg("build")
            .arg("recipe.yaml")
            .arg("-o")
            .arg(out)
            .current_dir(&copy)
            .env_remove("SOURCE_DATE_EPOCH")
            .env("TZ", "Pacific/Chatham")
            .env("LANG", "tr_TR.UTF-8")
            .env("LC_ALL", "tr_TR.UTF-8");
        digest_of(&mut cmd)
    };
    assert_eq!(odd_build("../../out/x"), normal);

    // The test can fail: one changed input byte is a different image.
    std::fs::write(copy.join("files/tree/top.txt"), "TOP\n").unwrap();
    assert_ne!(odd_build("../../out/y"), normal);
}

#[test]
/// Rule 1: SOURCE_DATE_EPOCH is the image's one timestamp: the same epoch
/// gives the same digest, another epoch another digest, and skopeo reads
/// it back as the image's creation time.
fn source_date_epoch_sets_the_timestamp() {
    common::require("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let hello = recipe("hello");
    let first = build_at(EPOCH, &hello, &tmp.path().join("one"));
    let second = build_at(EPOCH, &hello, &tmp.path().join("two"));
    assert_eq!(first, second);
    let other = build_at("1700000001", &hello, &tmp.path().join("three"));
    assert_ne!(other, first);

    let out = common::run(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:1.2.0", tmp.path().join("one").display())),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let inspect: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(inspect["Created"], EPOCH_RFC3339);
    assert_eq!(inspect["Digest"], first.as_str());
}

/// Dumps every member of a gzip'd tar layer as JSON: name, type, mtime,
/// ids, user and group names, PAX record keys, and the text of the members
/// named in the remaining arguments. Also reports whether the blob is one
/// gzip member and its header fields.
const DUMP: &str = r#"
import gzip, json, sys, tarfile, zlib
path, wanted = sys.argv[1], set(sys.argv[2:])
raw = open(path, "rb").read()
d = zlib.decompressobj(wbits=31)
d.decompress(raw)
members, texts = [], {}
with gzip.open(path, "rb") as gz:
    with tarfile.open(fileobj=gz, mode="r|") as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isfile() else b""
            if m.name in wanted:
                texts[m.name] = data.decode()
            members.append({
                "name": m.name, "type": m.type.decode(), "mtime": m.mtime,
                "uid": m.uid, "gid": m.gid, "uname": m.uname, "gname": m.gname,
                "pax": sorted(m.pax_headers),
            })
json.dump({
    "members": members, "texts": texts,
    "one_member": d.eof and d.unused_data == b"",
    "flags": raw[3], "mtime": list(raw[4:8]),
}, sys.stdout)
"#;

fn dump(blob: &Path, wanted: &[&str]) -> Value {
    let out = common::run(
        Command::new("python3")
            .arg("-c")
            .arg(DUMP)
            .arg(blob)
            .args(wanted),
    );
    assert!(out.status.success(), "python3: {}", common::stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The manifest of the one image in `layout` (beside its SBOM and
/// provenance, which are artifacts).
fn only_manifest(layout: &Path) -> Value {
    let index = read_json(&layout.join("index.json"));
    let manifests: Vec<&Value> = (index["manifests"].as_array().unwrap().iter())
        .filter(|m| m.get("artifactType").is_none())
        .collect();
    assert_eq!(manifests.len(), 1, "{index}");
    blob_json(layout, &manifests[0]["digest"])
}

#[test]
/// Rule 1, in detail: with SOURCE_DATE_EPOCH set, every timestamp the
/// recipe's layers produce uses it: tar mtimes, config `created`, history
/// `created`, the `created` annotation and /etc/shadow's last-change day.
/// The stemcell below stays as pinned (built at its own epoch).
fn epoch_reaches_every_timestamp() {
    common::require("python3");
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("everything");
    build_at(EPOCH, &recipe("everything"), &layout);
    let manifest = only_manifest(&layout);
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.created"],
        EPOCH_RFC3339
    );
    let config = blob_json(&layout, &manifest["config"]["digest"]);
    assert_eq!(config["created"], EPOCH_RFC3339);
    let history = config["history"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(history.len(), layers.len(), "{history:?}");
    for entry in &history[1..] {
        assert_eq!(entry["created"], EPOCH_RFC3339, "{entry}");
    }

    // The stemcell's layer is the same whatever the caller's epoch.
    let plain = tmp.path().join("plain");
    common::build(&recipe("everything"), &plain);
    assert_eq!(only_manifest(&plain)["layers"][0], layers[0]);

    let epoch: u64 = EPOCH.parse().unwrap();
    let mut shadow = None;
    for desc in &layers[1..] {
        let seen = dump(
            &blob_path(&layout, desc["digest"].as_str().unwrap()),
            &["etc/shadow"],
        );
        for m in seen["members"].as_array().unwrap() {
            assert_eq!(m["mtime"], epoch, "{m}");
        }
        if let Some(text) = seen["texts"]["etc/shadow"].as_str() {
            shadow = Some(text.to_string());
        }
    }
    let shadow = shadow.expect("a layer writes /etc/shadow");
    let app = shadow
        .lines()
        .find(|l| l.starts_with("app:"))
        .unwrap_or_else(|| panic!("{shadow}"));
    let days = (epoch / 86_400).to_string();
    assert_eq!(app.split(':').nth(2), Some(days.as_str()), "{app}");
}

#[test]
/// Rules 4, 7 and 8: tar headers carry numeric ids with empty user and
/// group names and PAX records only for what ustar cannot hold (never
/// atime or ctime); each blob is one gzip member whose header has no file
/// name, comment or mtime.
fn layer_headers_hold_no_host_data() {
    common::require("python3");
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("everything");
    common::build(&recipe("everything"), &layout);
    let manifest = only_manifest(&layout);
    let allowed_pax = ["gid", "linkpath", "mtime", "path", "size", "uid"];
    for desc in manifest["layers"].as_array().unwrap() {
        let seen = dump(&blob_path(&layout, desc["digest"].as_str().unwrap()), &[]);
        assert_eq!(seen["one_member"], true, "{desc}");
        let flags = seen["flags"].as_u64().unwrap();
        assert_eq!(flags & 0x18, 0, "FNAME/FCOMMENT set in {desc}");
        assert_eq!(seen["mtime"], serde_json::json!([0, 0, 0, 0]), "{desc}");
        for m in seen["members"].as_array().unwrap() {
            assert_eq!((&m["uname"], &m["gname"]), (&"".into(), &"".into()), "{m}");
            for key in m["pax"].as_array().unwrap() {
                assert!(
                    allowed_pax.contains(&key.as_str().unwrap()),
                    "PAX record {key} in {m}"
                );
            }
        }
    }
}

/// Design.md's rule 2, restated independently: compare component by
/// component; an ancestor comes first; within a directory the opaque
/// whiteout, then whiteouts, then other names, each by raw bytes.
fn canonical(a: &str, b: &str) -> Ordering {
    let rank = |n: &str| match n {
        ".wh..wh..opq" => 0,
        n if n.starts_with(".wh.") => 1,
        _ => 2,
    };
    let (mut x, mut y) = (a.split('/'), b.split('/'));
    loop {
        match (x.next(), y.next()) {
            (Some(p), Some(q)) => match (rank(p), p.as_bytes()).cmp(&(rank(q), q.as_bytes())) {
                Ordering::Equal => {}
                o => return o,
            },
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (None, None) => return Ordering::Equal,
        }
    }
}

#[test]
/// Rule 2: every layer lists its entries depth-first, whiteouts first,
/// names by raw bytes, each path once, as Python's tarfile reads them.
fn layers_list_entries_in_canonical_order() {
    common::require("python3");
    let tmp = tempfile::tempdir().unwrap();
    for name in ["hello", "everything"] {
        let layout = tmp.path().join(name);
        common::build(&recipe(name), &layout);
        let manifest = only_manifest(&layout);
        for desc in manifest["layers"].as_array().unwrap() {
            let seen = dump(&blob_path(&layout, desc["digest"].as_str().unwrap()), &[]);
            let names: Vec<&str> = seen["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["name"].as_str().unwrap())
                .collect();
            for pair in names.windows(2) {
                assert_eq!(
                    canonical(pair[0], pair[1]),
                    Ordering::Less,
                    "{name} layer {}: {:?} before {:?}",
                    desc["annotations"],
                    pair[0],
                    pair[1]
                );
            }
        }
    }
}

#[test]
/// The golden digest: recipes/hello built with SOURCE_DATE_EPOCH unset has
/// the digest recorded in tests/golden/hello.digest. A change to any byte
/// ingot writes (tar, gzip, JSON, stemcell) shows here; when it is on
/// purpose, run scripts/regen-golden and say why in the commit.
fn hello_matches_the_golden_digest() {
    let golden = std::fs::read_to_string(common::repo().join("tests/golden/hello.digest"))
        .expect("tests/golden/hello.digest; run scripts/regen-golden");
    let tmp = tempfile::tempdir().unwrap();
    let digest = common::build(&recipe("hello"), &tmp.path().join("hello"));
    assert_eq!(
        digest,
        golden.trim(),
        "hello's digest changed; if on purpose, run scripts/regen-golden"
    );
}

/// The descriptors index.json lists for `tag`.
fn tagged(layout: &Path, tag: &str) -> Vec<Value> {
    let index = read_json(&layout.join("index.json"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .cloned()
        .collect()
}

#[test]
/// Output: rebuilding a version into the same layout gives the same digest
/// and leaves exactly one manifest for its tag; a rebuild that changes the
/// image (with --replace: versions are immutable, tests/versions.rs)
/// replaces the tag's entry rather than adding one.
fn rebuild_into_the_same_layout_keeps_one_manifest_per_tag() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("hello");
    let first = common::build(&recipe("hello"), &layout);
    let again = common::build(&recipe("hello"), &layout);
    assert_eq!(first, again);
    let entries = tagged(&layout, "1.2.0");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["digest"], first.as_str());

    let changed = digest_of(
        common::ingot()
            .env("SOURCE_DATE_EPOCH", EPOCH)
            .arg("build")
            .arg(recipe("hello"))
            .arg("-o")
            .arg(&layout)
            .arg("--replace"),
    );
    assert_ne!(changed, first);
    let entries = tagged(&layout, "1.2.0");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["digest"], changed.as_str());
    // The replaced image's SBOM and provenance went with it: the layout
    // lists the new image and its two, no more.
    let index = read_json(&layout.join("index.json"));
    let listed = index["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{index}");
    for artifact in &listed[1..] {
        let manifest = read_json(&blob_path(&layout, artifact["digest"].as_str().unwrap()));
        assert_eq!(manifest["subject"]["digest"], changed.as_str(), "{index}");
    }

    // No staging directories or temp blobs are left behind.
    let stray: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .chain(std::fs::read_dir(layout.join("blobs/sha256")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

/// Writes a one-layer recipe on scratch copying `files/d` to /d.
fn links_recipe(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("files/d")).unwrap();
    let recipe = dir.join("recipe.yaml");
    std::fs::write(
        &recipe,
        "name: links\nversion: 1.0.0\nbase: scratch\nlayers:\n  - name: data\n    steps:\n      - copy: { src: files/d, dest: /d }\n",
    )
    .unwrap();
    recipe
}

#[test]
/// Rule 6: hard-linked sources become regular files, each with its own
/// content: the image is the same as from two separate files, and no tar
/// member is a hard link.
fn hardlinks_become_regular_files() {
    common::require("python3");
    let tmp = tempfile::tempdir().unwrap();
    let linked = links_recipe(&tmp.path().join("linked"));
    let d = tmp.path().join("linked/files/d");
    std::fs::write(d.join("a"), "same\n").unwrap();
    std::fs::hard_link(d.join("a"), d.join("b")).unwrap();
    let separate = links_recipe(&tmp.path().join("separate"));
    let d = tmp.path().join("separate/files/d");
    std::fs::write(d.join("a"), "same\n").unwrap();
    std::fs::write(d.join("b"), "same\n").unwrap();

    let layout = tmp.path().join("out-linked");
    let digest = common::build(&linked, &layout);
    assert_eq!(
        common::build(&separate, &tmp.path().join("out-separate")),
        digest
    );
    let manifest = only_manifest(&layout);
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let seen = dump(
        &blob_path(&layout, layers[0]["digest"].as_str().unwrap()),
        &["d/a", "d/b"],
    );
    for m in seen["members"].as_array().unwrap() {
        assert_ne!(m["type"], "1", "a hard link member: {m}");
    }
    assert_eq!(seen["texts"]["d/a"], "same\n");
    assert_eq!(seen["texts"]["d/b"], "same\n");
}

/// Exits non-zero unless every file named is canonical JSON: keys sorted,
/// no insignificant whitespace, no trailing newline.
const CANONICAL_JSON: &str = r#"
import json, sys
for path in sys.argv[1:]:
    raw = open(path, "rb").read()
    again = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"),
                       ensure_ascii=False).encode()
    if raw != again:
        sys.exit("%s is not canonical:\n%s\n%s" % (path, raw, again))
"#;

#[test]
/// Rule 9: the manifest, the config and index.json are canonical JSON, as
/// Python re-encodes it with sorted keys and no whitespace.
fn json_is_canonical() {
    common::require("python3");
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("everything");
    let digest = common::build(&recipe("everything"), &layout);
    let manifest = only_manifest(&layout);
    let out = common::run(
        Command::new("python3")
            .arg("-c")
            .arg(CANONICAL_JSON)
            .arg(blob_path(&layout, &digest))
            .arg(blob_path(
                &layout,
                manifest["config"]["digest"].as_str().unwrap(),
            ))
            .arg(layout.join("index.json")),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
}

#[test]
/// Rule 10: no host data in the image: neither the recipe's path, the
/// output path, nor ingot's own version appear in any blob (layers read
/// uncompressed).
fn no_host_paths_or_builder_version_in_the_image() {
    use std::io::Read as _;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("recipe-dir-marker-q7z");
    common::copy_tree(&common::repo().join("recipes/hello"), &src);
    let layout = tmp.path().join("output-marker-k3x");
    common::build(&src.join("recipe.yaml"), &layout);

    let needles = [
        "recipe-dir-marker-q7z".to_string(),
        "output-marker-k3x".to_string(),
        tmp.path().display().to_string(),
        common::repo().display().to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    ];
    assert_ne!(env!("CARGO_PKG_VERSION"), "1.2.0", "hello's own version");
    // The SBOM and provenance beside the image name ingot and its version
    // as their creator and builder, as SPDX and SLSA ask; no host path.
    let index = read_json(&layout.join("index.json"));
    let mut documents = Vec::new();
    for entry in index["manifests"].as_array().unwrap() {
        if entry.get("artifactType").is_some() {
            let manifest = blob_json(&layout, &entry["digest"]);
            documents.push(entry["digest"].as_str().unwrap().to_string());
            documents.push(
                manifest["layers"][0]["digest"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
    }
    assert_eq!(documents.len(), 4, "{index}");
    let mut checked = 0;
    for entry in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        let path = entry.unwrap().path();
        let name = format!("sha256:{}", path.file_name().unwrap().to_string_lossy());
        let needles = if documents.contains(&name) {
            &needles[..needles.len() - 1]
        } else {
            &needles[..]
        };
        let mut bytes = std::fs::read(&path).unwrap();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut plain)
                .unwrap();
            bytes = plain;
        }
        let text = String::from_utf8_lossy(&bytes);
        for needle in needles {
            assert!(
                !text.contains(needle.as_str()),
                "{needle:?} in blob {}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 4, "only {checked} blobs");
}

/// Another user builds the same recipe to the same digest: the builder's
/// uid and gid never reach the image (rule 4). Needs root to switch users;
/// CI runs as root.
#[test]
fn another_user_builds_the_same_digest() {
    let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !as_root {
        eprintln!("skipped: switching users needs root");
        return;
    }
    let mine = tempfile::tempdir().unwrap();
    let expected = common::build(&recipe("everything"), &mine.path().join("layout"));

    let theirs = tempfile::tempdir().unwrap();
    let copy = theirs.path().join("recipe");
    common::copy_tree(recipe("everything").parent().unwrap(), &copy);
    for path in walk(theirs.path()) {
        std::os::unix::fs::lchown(&path, Some(65534), Some(65534)).unwrap();
    }
    let got = digest_of(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_ingot"))
            .env_remove("SOURCE_DATE_EPOCH")
            .arg("build")
            .arg(copy.join("recipe.yaml"))
            .arg("-o")
            .arg(theirs.path().join("layout")),
    );
    assert_eq!(got, expected);
}

/// An archive `extract` unpacks, written by a builder with other habits:
/// entries in another order, other mtimes, user and group names,
/// compression. Each is a tar of the same tree: `/opt/x` with a file, its
/// hardlink, a symlink and owned directories.
fn vendor_archive(reversed: bool, mtime: u64, names: &str, compress: &str) -> Vec<u8> {
    // (name, type, data, mode, uid and gid, link target)
    type Row<'a> = (&'a str, tar::EntryType, &'a [u8], u32, u64, &'a str);
    let mut entries: Vec<Row> = vec![
        ("opt/", tar::EntryType::Directory, b"", 0o755, 0, ""),
        ("opt/x/", tar::EntryType::Directory, b"", 0o750, 42, ""),
        (
            "opt/x/file",
            tar::EntryType::Regular,
            b"content\n",
            0o640,
            42,
            "",
        ),
        ("opt/x/link", tar::EntryType::Symlink, b"", 0o777, 0, "file"),
        (
            "opt/x/zz",
            tar::EntryType::Link,
            b"",
            0o640,
            42,
            "opt/x/file",
        ),
    ];
    if reversed {
        // Directories and the linked file still come first, as tar
        // writers list them.
        entries.swap(3, 4);
    }
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, mode, id, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(id);
        h.set_gid(id);
        h.set_mtime(mtime);
        h.set_username(names).unwrap();
        h.set_groupname(names).unwrap();
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        h.set_cksum();
        b.append_data(&mut h, name, data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(compress)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(&tar)?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "{compress}");
    out.stdout
}

#[test]
/// Rules 1, 2 and 4 for `extract`: the archive's mtimes, user and group
/// names, entry order and compression do not reach the image; its modes,
/// owners and content do.
fn an_extracted_archive_gives_one_digest_however_it_was_written() {
    let tmp = tempfile::tempdir().unwrap();
    let build_with = |name: &str, archive: Vec<u8>| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(dir.join("files")).unwrap();
        std::fs::write(dir.join("files/vendor.tar"), archive).unwrap();
        let recipe = dir.join("recipe.yaml");
        std::fs::write(
            &recipe,
            "name: x\nversion: '1'\nbase: stemcell:static\nlayers:\n  - name: l\n    steps:\n\
             \x20     - extract: { src: files/vendor.tar }\n",
        )
        .unwrap();
        common::build(&recipe, &dir.join("out"))
    };
    let first = build_with("a", vendor_archive(false, 1, "alice", "cat"));
    for (name, archive) in [
        ("b", vendor_archive(true, 2_000_000_000, "bob", "gzip -9")),
        ("c", vendor_archive(false, 0, "", "xz")),
        ("d", vendor_archive(true, 77, "root", "zstd -q")),
    ] {
        assert_eq!(build_with(name, archive), first, "{name}");
    }
    // The test can fail: another content is another image.
    let mut other = vendor_archive(false, 1, "alice", "cat");
    let at = other.windows(8).position(|w| w == b"content\n").unwrap();
    other[at] = b'C';
    assert_ne!(build_with("e", other), first);
}
