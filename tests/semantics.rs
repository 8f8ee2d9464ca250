//! How steps become layers, checked on the unpacked result (umoci) and on
//! the manifest: symlinked directories, empty layers, base dependence,
//! hardlinks and modes from sources.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{build, ingot, require, run, stderr};

fn recipe(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("recipe.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn manifest(layout: &Path) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let hex = digest.strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

fn layer_annotation(m: &serde_json::Value, name: &str, key: &str) -> String {
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["annotations"]["dev.ingot.layer.name"] == name)
        .unwrap_or_else(|| panic!("no layer {name}"))["annotations"][key]
        .as_str()
        .unwrap()
        .to_string()
}

fn unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    require("umoci");
    let out = run(std::process::Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(bundle));
    assert!(out.status.success(), "umoci unpack: {}", stderr(&out));
    bundle.join("rootfs")
}

/// A `dest` under a directory that a lower layer made a symlink is written
/// through the symlink (merged /usr). Crossing the recipe's own symlink does
/// not make a layer base-dependent; editing the base's accounts does.
#[test]
fn dest_under_a_symlinked_directory_is_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let r = recipe(
        dir.path(),
        "name: merged\nversion: '1'\nbase: stemcell:static\nlayers:\n\
         - name: usrmerge\n  steps:\n\
         \x20   - mkdir: { path: /usr/bin }\n\
         \x20   - symlink: { path: /bin, target: usr/bin }\n\
         - name: tools\n  steps:\n\
         \x20   - file: { dest: /bin/hello, content: hi, mode: '0755' }\n\
         - name: accounts\n  steps:\n\
         \x20   - user: { name: app, uid: 1000 }\n",
    );
    let layout = dir.path().join("layout");
    build(&r, &layout);
    let m = manifest(&layout);
    let dependent = |layer| layer_annotation(&m, layer, "dev.ingot.layer.base-dependent");
    assert_eq!(dependent("usrmerge"), "false");
    assert_eq!(dependent("tools"), "false");
    assert_eq!(dependent("accounts"), "true");

    let rootfs = unpack(&layout, "1", &dir.path().join("bundle"));
    let bin = std::fs::symlink_metadata(rootfs.join("bin")).unwrap();
    assert!(bin.file_type().is_symlink(), "/bin must stay a symlink");
    let file = rootfs.join("usr/bin/hello");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "hi");
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o7777, 0o755);
}

/// A layer whose steps change nothing is not emitted, and has no history.
#[test]
fn a_layer_with_no_changes_is_not_emitted() {
    let dir = tempfile::tempdir().unwrap();
    let r = recipe(
        dir.path(),
        "name: empty\nversion: '1'\nbase: stemcell:static\nlayers:\n\
         - name: nothing\n  steps:\n\
         \x20   - mkdir: { path: /tmp }\n\
         - name: something\n  steps:\n\
         \x20   - file: { dest: /x, content: x }\n",
    );
    let layout = dir.path().join("layout");
    let out = common::try_build(&r, &layout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("layer nothing: no changes"),
        "{}",
        stderr(&out)
    );
    let m = manifest(&layout);
    let names: Vec<String> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| {
            l["annotations"]["dev.ingot.layer.name"]
                .as_str()
                .map(String::from)
        })
        .collect();
    // The stemcell's own layer, then ours.
    assert_eq!(names, ["root", "something"]);
}

/// Hardlinked sources become two regular files; an owner-executable source
/// gets 0755, others 0644, whatever their host modes and the umask.
#[test]
fn hardlinks_become_files_and_modes_come_from_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("files");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), "same").unwrap();
    std::fs::hard_link(src.join("a"), src.join("b")).unwrap();
    std::fs::write(src.join("run"), "#!").unwrap();
    let set_mode = |p: &Path, m: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    set_mode(&src.join("a"), 0o600);
    set_mode(&src.join("run"), 0o700);
    let r = recipe(
        dir.path(),
        "name: links\nversion: '1'\nbase: scratch\nlayers:\n\
         - name: l\n  steps:\n\
         \x20   - copy: { src: files, dest: /data }\n",
    );
    let layout = dir.path().join("layout");
    build(&r, &layout);
    let rootfs = unpack(&layout, "1", &dir.path().join("bundle"));
    let a = std::fs::metadata(rootfs.join("data/a")).unwrap();
    let b = std::fs::metadata(rootfs.join("data/b")).unwrap();
    assert_eq!(a.nlink(), 1, "hardlinks are not kept");
    assert_ne!(a.ino(), b.ino());
    assert_eq!(std::fs::read(rootfs.join("data/b")).unwrap(), b"same");
    assert_eq!(a.mode() & 0o7777, 0o644);
    let run_meta = std::fs::metadata(rootfs.join("data/run")).unwrap();
    assert_eq!(run_meta.mode() & 0o7777, 0o755);
    assert_eq!((run_meta.uid(), run_meta.gid()), (0, 0));
}

/// A copy source with a name that is not UTF-8 is refused, naming it.
#[test]
fn non_utf8_names_are_refused() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("files");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), "x").unwrap();
    let r = recipe(
        dir.path(),
        "name: names\nversion: '1'\nbase: scratch\nlayers:\n\
         - name: l\n  steps:\n\
         \x20   - copy: { src: files, dest: /data }\n",
    );
    let out = common::try_build(&r, dir.path().join("layout"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("non-UTF-8"), "{}", stderr(&out));
    assert!(stderr(&out).contains("recipe.yaml:7:"), "{}", stderr(&out));
    assert!(!dir.path().join("layout").exists());
}

/// Config merges onto the stemcell's: env by name, labels merged, and the
/// declared params recorded as a label.
#[test]
fn config_is_inherited_from_the_base() {
    let dir = tempfile::tempdir().unwrap();
    let r = recipe(
        dir.path(),
        "name: cfg\nversion: '1'\nbase: stemcell:static\n\
         params: { LEVEL: { default: info } }\n\
         config:\n  env: { PATH: /opt/bin, EXTRA: '1' }\n  labels: { team: infra }\n",
    );
    let layout = dir.path().join("layout");
    build(&r, &layout);
    let out = run(ingot()
        .arg("inspect")
        .arg("--json")
        .arg(format!("oci:{}", layout.display())));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cfg = &json["config"]["config"];
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        [
            "PATH=/opt/bin",
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            "EXTRA=1"
        ]
    );
    assert_eq!(cfg["Labels"]["team"], "infra");
    assert_eq!(cfg["Labels"]["dev.ingot.stemcell"], "static");
    assert_eq!(
        cfg["Labels"]["dev.ingot.params"],
        r#"{"LEVEL":{"default":"info"}}"#
    );
    // No layers of its own: the stemcell's layer and history only.
    assert_eq!(json["manifest"]["layers"].as_array().unwrap().len(), 1);
}

/// A platform that differs from the base's is a recipe error, naming the
/// base; a stemcell is built for the platform the recipe asks for.
#[test]
fn platform_must_match_the_base() {
    let dir = tempfile::tempdir().unwrap();
    let amd64 = dir.path().join("amd64");
    build(
        &recipe(dir.path(), "name: amd\nversion: '1'\nbase: scratch\n"),
        &amd64,
    );
    let r = recipe(
        dir.path(),
        "name: arm\nversion: '1'\nbase: oci:amd64:1\nplatform: linux/arm64\n",
    );
    let out = common::try_build(&r, dir.path().join("layout"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("recipe.yaml:4:"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("base oci:amd64:1"),
        "{}",
        stderr(&out)
    );

    let r = recipe(
        dir.path(),
        "name: arm\nversion: '1'\nbase: stemcell:static\nplatform: linux/arm64\n",
    );
    build(&r, &dir.path().join("on-static"));

    // On scratch the recipe chooses.
    let r = recipe(
        dir.path(),
        "name: arm\nversion: '1'\nbase: scratch\nplatform: linux/arm64\n",
    );
    let layout = dir.path().join("layout2");
    build(&r, &layout);
    let out = run(ingot()
        .arg("inspect")
        .arg(format!("oci:{}", layout.display())));
    assert!(common::stdout(&out).contains("linux/arm64"));
}
