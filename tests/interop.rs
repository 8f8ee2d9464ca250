//! Third-party tools read ingot's output: skopeo, umoci and Python's
//! `gzip` + `tarfile`. An image only ingot can read would not be an image.
//! CI installs every tool; a missing one fails the test (`common::require`).

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use common::{blob_path, example as recipe, read_json};

/// The manifest index.json points at for `tag`.
fn manifest(layout: &Path, tag: &str) -> Value {
    let index = read_json(&layout.join("index.json"));
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no manifest tagged {tag} in {index}"));
    read_json(&blob_path(layout, desc["digest"].as_str().unwrap()))
}

/// Runs a tool, failing the test with its stderr when it fails.
fn run_ok(cmd: &mut Command) -> String {
    let out = common::run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        common::stderr(&out)
    );
    common::stdout(&out)
}

#[test]
/// skopeo reads the layout, sees the digest ingot printed, and can convert
/// the image to a docker-archive that it reads back.
fn skopeo_inspects_and_copies_hello() {
    common::require("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("hello");
    let digest = common::build(&recipe("hello"), &layout);
    let reference = format!("oci:{}:1.2.0", layout.display());

    let inspect: Value = serde_json::from_str(&run_ok(
        Command::new("skopeo").arg("inspect").arg(&reference),
    ))
    .unwrap();
    assert_eq!(inspect["Digest"], digest.as_str());
    assert_eq!(inspect["Os"], "linux");
    assert_eq!(inspect["Architecture"], "amd64");

    let archive = tmp.path().join("hello.tar");
    run_ok(
        Command::new("skopeo")
            .arg("copy")
            .arg(&reference)
            .arg(format!("docker-archive:{}:hello:1.2.0", archive.display())),
    );
    let from_archive: Value = serde_json::from_str(&run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("docker-archive:{}", archive.display())),
    ))
    .unwrap();
    // A docker-archive holds uncompressed layers: skopeo lists the diff_ids.
    let config = read_json(&blob_path(
        &layout,
        manifest(&layout, "1.2.0")["config"]["digest"]
            .as_str()
            .unwrap(),
    ));
    assert_eq!(from_archive["Layers"], config["rootfs"]["diff_ids"]);
    assert_eq!(from_archive["Created"], inspect["Created"]);
}

/// Mode (permission and special bits), uid and gid of `path`, not
/// following a final symlink.
fn meta(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
/// umoci unpacks recipes/everything and the root filesystem is what the
/// recipe asked for: contents, modes, owners, symlinks, accounts, every
/// whiteout applied, and a base directory (/tmp) keeping its mode.
fn umoci_unpacks_everything_as_the_recipe_says() {
    common::require("umoci");
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("everything");
    common::build(&recipe("everything"), &layout);
    let bundle = tmp.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:0.1.0", layout.display()))
            .arg(&bundle),
    );
    let root = bundle.join("rootfs");
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let files = common::repo().join("recipes/everything/files");

    // Copied files: content, and mode from the source's executable bit or
    // the step.
    let tool = std::fs::read(files.join("tool.sh")).unwrap();
    assert_eq!(std::fs::read(at("/usr/local/bin/tool")).unwrap(), tool);
    assert_eq!(meta(&at("/usr/local/bin/tool")), (0o755, 0, 0));
    assert_eq!(
        std::fs::read(at("/usr/local/bin/tool-private")).unwrap(),
        tool
    );
    assert_eq!(
        meta(&at("/usr/local/bin/tool-private")),
        (0o700, 10001, 10001)
    );
    assert_eq!(
        text(&at("/opt/tree/top.txt")),
        text(&files.join("tree/top.txt"))
    );
    assert_eq!(meta(&at("/opt/tree/top.txt")), (0o644, 0, 0));
    assert_eq!(meta(&at("/opt/tree")), (0o755, 0, 0));
    assert_eq!(text(&at("/etc/motd")), "welcome\n");

    // The template, rendered with vars and the base.
    let conf = text(&at("/etc/app/app.conf"));
    assert!(conf.contains("motd = \"built by ingot\""), "{conf}");
    assert!(conf.contains("image = \"everything:0.1.0\""), "{conf}");
    assert!(conf.contains("stemcell:static@1.0.0"), "{conf}");
    assert!(!conf.contains("{{"), "{conf}");
    assert_eq!(meta(&at("/etc/app/app.conf")), (0o640, 0, 2000));
    assert_eq!(meta(&at("/var/lib/app")), (0o750, 10001, 10001));
    assert!(at("/var/lib/app").is_dir());

    // Symlinks, as written and as copied.
    assert_eq!(
        std::fs::read_link(at("/etc/app/current")).unwrap(),
        Path::new("../../opt/tree")
    );
    assert_eq!(
        std::fs::read_link(at("/opt/tree/link-to-top")).unwrap(),
        Path::new("top.txt")
    );
    assert_eq!(text(&at("/etc/app/current/top.txt")), "top\n");

    // Accounts.
    let passwd = text(&at("/etc/passwd"));
    assert!(
        passwd
            .lines()
            .any(|l| l == "app:x:10001:10001:the app:/home/app:/sbin/nologin"),
        "{passwd}"
    );
    assert!(
        passwd.lines().any(|l| l.starts_with("root:x:0:0:")),
        "{passwd}"
    );
    let group: Vec<String> = text(&at("/etc/group")).lines().map(String::from).collect();
    for line in ["staff:x:50:", "readers:x:2000:app", "app:x:10001:"] {
        assert!(group.iter().any(|l| l == line), "{line} in {group:?}");
    }
    assert!(
        text(&at("/etc/shadow"))
            .lines()
            .any(|l| l.starts_with("app:"))
    );
    assert_eq!(meta(&at("/etc/shadow")).0, 0o600);
    assert_eq!(meta(&at("/home/app")), (0o750, 10001, 10001));

    // Whiteouts: a removed base file added again, a removed base
    // directory, an opaque directory.
    assert_eq!(text(&at("/etc/nsswitch.conf")), "hosts: files\n");
    assert!(std::fs::symlink_metadata(at("/var/tmp")).is_err());
    assert!(at("/var/lib").is_dir());
    let mut sub: Vec<String> = std::fs::read_dir(at("/opt/tree/sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    sub.sort();
    assert_eq!(sub, ["new.txt"]);
    assert_eq!(text(&at("/opt/tree/sub/new.txt")), "replaced\n");

    // extract: the archive's modes, owners, symlink and hardlink.
    assert_eq!(meta(&at("/opt/vendor/bin/vendor-tool")), (0o755, 0, 0));
    assert_eq!(meta(&at("/opt/vendor/share")), (0o750, 10001, 10001));
    assert_eq!(meta(&at("/opt/vendor/share/NOTICE")), (0o640, 10001, 10001));
    assert_eq!(
        std::fs::read_link(at("/opt/vendor/current")).unwrap(),
        Path::new("bin")
    );
    {
        use std::os::unix::fs::MetadataExt;
        let tool = std::fs::metadata(at("/opt/vendor/bin/vendor-tool")).unwrap();
        let alias = std::fs::metadata(at("/opt/vendor/bin/vt")).unwrap();
        assert_eq!((tool.ino(), tool.nlink()), (alias.ino(), 2));
    }

    // attrs: a base file copied up with its new mode, a tree re-owned.
    assert_eq!(meta(&at("/etc/os-release")), (0o444, 0, 0));
    assert!(text(&at("/etc/os-release")).contains("static"));
    assert_eq!(meta(&at("/opt/tree/sub")), (0o775, 10001, 10001));
    assert_eq!(meta(&at("/opt/tree/sub/new.txt")), (0o664, 10001, 10001));

    // /tmp exists in the base: writing under it must not re-emit it.
    assert_eq!(meta(&at("/tmp")), (0o1777, 0, 0));
    assert_eq!(text(&at("/tmp/scratch-note")), "written under /tmp\n");

    // No whiteout markers survive unpacking.
    let leftovers = Command::new("find")
        .arg(&root)
        .arg("-name")
        .arg(".wh.*")
        .output()
        .unwrap();
    assert_eq!(common::stdout(&leftovers), "");
}

/// Reads a layer blob with Python: every member whole, the gzip stream to
/// its end (CRC32 and ISIZE checked), and prints names, types and the
/// uncompressed sha256 (the diff_id) as JSON.
const READER: &str = r#"
import gzip, hashlib, json, sys, tarfile
members = []
with gzip.open(sys.argv[1], "rb") as gz:
    with tarfile.open(fileobj=gz, mode="r|") as tar:
        for m in tar:
            data = tar.extractfile(m).read() if m.isfile() else b""
            assert len(data) == m.size, m.name
            members.append({"name": m.name, "type": m.type.decode(), "size": m.size})
    gz.read()
with open(sys.argv[1], "rb") as f:
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(f.read())).hexdigest()
json.dump({"members": members, "diff_id": diff_id}, sys.stdout)
"#;

/// Runs [`READER`] on one blob.
fn python_read(blob: &Path) -> Value {
    let out = run_ok(Command::new("python3").arg("-c").arg(READER).arg(blob));
    serde_json::from_str(&out).unwrap()
}

/// Every layer of the image tagged `tag`, read by Python, with its
/// manifest descriptor; diff_ids are checked against the config.
fn python_layers(layout: &Path, tag: &str) -> Vec<(Value, Value)> {
    let manifest = manifest(layout, tag);
    let config = read_json(&blob_path(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), diff_ids.len());
    assert!(!layers.is_empty());
    layers
        .iter()
        .zip(diff_ids)
        .map(|(desc, diff_id)| {
            assert_eq!(
                desc["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+gzip"
            );
            let seen = python_read(&blob_path(layout, desc["digest"].as_str().unwrap()));
            assert_eq!(&seen["diff_id"], diff_id, "layer {}", desc["digest"]);
            assert!(!seen["members"].as_array().unwrap().is_empty());
            (desc.clone(), seen)
        })
        .collect()
}

#[test]
/// Python's gzip and tarfile read every layer blob of hello and everything
/// whole, and the uncompressed bytes hash to the config's diff_ids.
fn python_reads_every_layer_blob() {
    common::require("python3");
    let tmp = tempfile::tempdir().unwrap();
    for (name, tag) in [("hello", "1.2.0"), ("everything", "0.1.0")] {
        let layout = tmp.path().join(name);
        common::build(&recipe(name), &layout);
        let layers = python_layers(&layout, tag);
        // The stemcell's layer, then one per recipe layer.
        let expected = if name == "hello" { 2 } else { 4 };
        assert_eq!(layers.len(), expected, "{name}");
    }
}

#[test]
/// The `prune` layer (named by its `dev.ingot.layer.name` annotation)
/// carries the whiteouts its `remove` steps ask for, as Python sees them:
/// `var/.wh.tmp` for a removed base directory, an opaque whiteout for a
/// directory removed and made again. /etc/nsswitch.conf, removed and then
/// written again in the same layer, needs no whiteout (the new file
/// replaces the base's; ingot since 12ee2c1 emits none); if one is there,
/// it must come before the file.
fn python_sees_whiteouts_in_the_prune_layer() {
    common::require("python3");
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("everything");
    common::build(&recipe("everything"), &layout);
    let layers = python_layers(&layout, "0.1.0");
    let names: Vec<&str> = layers
        .iter()
        .map(|(d, _)| {
            d["annotations"]["dev.ingot.layer.name"]
                .as_str()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(&names[1..], ["accounts", "files", "prune"], "{names:?}");

    let (_, prune) = layers.last().unwrap();
    let members = prune["members"].as_array().unwrap();
    let find = |name: &str| members.iter().position(|m| m["name"] == name);
    let position = |name: &str| {
        find(name).unwrap_or_else(|| panic!("no {name} in the prune layer: {members:?}"))
    };
    for whiteout in ["var/.wh.tmp", "opt/tree/sub/.wh..wh..opq"] {
        let m = &members[position(whiteout)];
        assert_eq!(m["type"], "0", "{whiteout} is a regular file");
        assert_eq!(m["size"], 0, "{whiteout} is empty");
    }
    // Whiteouts come before what the layer adds beside them (rule 2).
    assert!(position("opt/tree/sub/.wh..wh..opq") < position("opt/tree/sub/new.txt"));
    let nsswitch = position("etc/nsswitch.conf");
    assert_eq!(members[nsswitch]["size"], "hosts: files\n".len());
    if let Some(wh) = find("etc/.wh.nsswitch.conf") {
        assert!(wh < nsswitch, "{members:?}");
    }

    // Only the prune layer removes anything.
    for (desc, seen) in &layers[..layers.len() - 1] {
        let wh = seen["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["name"].as_str().unwrap().contains(".wh."))
            .count();
        assert_eq!(wh, 0, "layer {}", desc["annotations"]);
    }
}

#[test]
/// The layout's `oci-layout` file says imageLayoutVersion 1.0.0, and the
/// index.json descriptor carries the tag as org.opencontainers.image.ref.name.
fn layout_files_follow_the_image_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("hello");
    let digest = common::build(&recipe("hello"), &layout);

    let oci_layout = read_json(&layout.join("oci-layout"));
    assert_eq!(
        oci_layout,
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );

    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    // The image, then its SBOM and provenance (tests/supply_chain.rs).
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 3, "{index}");
    assert!(manifests[1..].iter().all(|m| m["artifactType"].is_string()));
    let desc = &manifests[0];
    assert_eq!(desc["digest"], digest.as_str());
    assert_eq!(
        desc["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        desc["annotations"]["org.opencontainers.image.ref.name"],
        "1.2.0"
    );
    let size = std::fs::metadata(blob_path(&layout, &digest))
        .unwrap()
        .len();
    assert_eq!(desc["size"], size);
}
