//! The `attrs` step: modes and owners of paths that exist changed in
//! place, lower files copied up with their content, checked on what umoci
//! unpacks and on what the seal then says.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::layout::{Lies, dir, file, symlink, tar, write_layout};
use common::{ingot, require, run, stderr, stdout};

/// A base image in an OCI layout beside the recipe (`base/`, tag `t`): a
/// merged-/usr root whose first layer has setuid `passwd` and setgid
/// `newgrp`, and whose second adds setuid `chsh`.
fn base(recipe_dir: &Path) {
    let lower = tar(&[
        dir("etc"),
        file("etc/passwd", b"root:x:0:0:root:/root:/sbin/nologin\n"),
        file("etc/group", b"root:x:0:\n"),
        dir("usr"),
        dir("usr/bin"),
        file("usr/bin/passwd", b"the passwd program").with_mode(0o4755),
        file("usr/bin/newgrp", b"the newgrp program").with_mode(0o2755),
        file("usr/bin/plain", b"plain").with_mode(0o755),
        symlink("bin", "usr/bin"),
        dir("srv"),
        dir("srv/data").with_owner(7, 7),
        file("srv/data/a", b"a").with_owner(7, 7),
        symlink("srv/data/link", "a").with_owner(7, 7),
    ]);
    let upper = tar(&[file("usr/bin/chsh", b"the chsh program").with_mode(0o4711)]);
    write_layout(&recipe_dir.join("base"), &[lower, upper], Lies::default());
}

fn recipe(dir: &Path, steps: &str) -> PathBuf {
    let path = dir.join("recipe.yaml");
    let text = format!("name: app\nversion: '1'\nbase: oci:base:t\nlayers:\n{steps}");
    std::fs::write(&path, text).unwrap();
    path
}

fn build_json(recipe: &Path, out: &Path, cache: &Path) -> serde_json::Value {
    let output = run(ingot()
        .arg("build")
        .arg("--json")
        .arg("--cache")
        .arg(cache)
        .arg(recipe)
        .arg("-o")
        .arg(out));
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_str(&stdout(&output)).unwrap()
}

fn unpack(layout: &Path, bundle: &Path) -> PathBuf {
    require("umoci");
    let out = run(std::process::Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:1", layout.display()))
        .arg(bundle));
    assert!(out.status.success(), "umoci unpack: {}", stderr(&out));
    bundle.join("rootfs")
}

fn meta(path: &Path) -> (u32, u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid())
}

/// The seal's own message names the step; the step drops the bits of the
/// base's binaries (through the base's /bin symlink, and recursively),
/// and the image is then sealed without any exception. Only what changed
/// is written again, content and all.
#[test]
fn dropping_a_base_binarys_setuid_bit_seals_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    base(tmp.path());
    let cache = tmp.path().join("cache");

    let r = recipe(
        tmp.path(),
        "  - name: noop\n    steps:\n      - file: { dest: /etc/motd, content: hi }\n",
    );
    let out = common::try_build(&r, tmp.path().join("unsealed"));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "setuid (4755); allow it by name in seal.allow, or drop the bits with an attrs step ({ path: /usr/bin/passwd, mode: \"u-s,g-s\" })"
        ),
        "{}",
        stderr(&out)
    );

    let r = recipe(
        tmp.path(),
        "  - name: drop\n    steps:\n\
         \x20     - attrs: { path: /bin/passwd, mode: \"u-s\" }\n\
         \x20     - attrs: { path: /usr/bin, mode: \"u-s,g-s\", recursive: true }\n",
    );
    let layout = tmp.path().join("sealed");
    let report = build_json(&r, &layout, &cache);
    // passwd, newgrp and chsh: no directory, no unchanged file.
    assert_eq!(report["layers"][0]["entries"], 3, "{report}");
    let rootfs = unpack(&layout, &tmp.path().join("bundle"));
    let bin = rootfs.join("usr/bin");
    for (name, mode, content) in [
        ("passwd", 0o755, "the passwd program"),
        ("newgrp", 0o755, "the newgrp program"),
        ("chsh", 0o711, "the chsh program"),
        ("plain", 0o755, "plain"),
    ] {
        assert_eq!(meta(&bin.join(name)), (mode, 0, 0), "{name}");
        assert_eq!(
            std::fs::read_to_string(bin.join(name)).unwrap(),
            content,
            "{name}"
        );
    }
    assert!(
        std::fs::symlink_metadata(rootfs.join("bin"))
            .unwrap()
            .is_symlink()
    );

    // Built again on a warm cache (the base's reading served from it),
    // the same image.
    let again = build_json(&r, &tmp.path().join("again"), &cache);
    assert_eq!(again["digest"], report["digest"]);
    let cold = build_json(
        &r,
        &tmp.path().join("cold"),
        &tmp.path().join("other-cache"),
    );
    assert_eq!(cold["digest"], report["digest"]);
}

/// Owners change recursively (a symlink's too, not its mode), from the
/// root down too; a file an earlier recipe layer wrote is copied up from
/// that layer, and a step of the same layer is changed in place.
#[test]
fn owners_and_modes_change_on_base_and_recipe_layers() {
    let tmp = tempfile::tempdir().unwrap();
    base(tmp.path());
    let r = recipe(
        tmp.path(),
        "  - name: first\n    steps:\n\
         \x20     - attrs: { path: /, mode: \"-s\", recursive: true }\n\
         \x20     - file: { dest: /opt/app/conf, content: conf, mode: \"0666\" }\n\
         \x20 - name: second\n    steps:\n\
         \x20     - attrs: { path: /srv/data, owner: \"10:20\", mode: \"go-rwx\", recursive: true }\n\
         \x20     - attrs: { path: /opt/app/conf, mode: \"0640\", owner: \"0:20\" }\n\
         \x20     - file: { dest: /opt/app/new, content: new }\n\
         \x20     - attrs: { path: /opt/app/new, mode: \"a+x\" }\n",
    );
    let layout = tmp.path().join("img");
    build_json(&r, &layout, &tmp.path().join("cache"));
    let rootfs = unpack(&layout, &tmp.path().join("bundle"));
    assert_eq!(meta(&rootfs.join("srv/data")), (0o700, 10, 20));
    assert_eq!(meta(&rootfs.join("srv/data/a")), (0o600, 10, 20));
    let link = std::fs::symlink_metadata(rootfs.join("srv/data/link")).unwrap();
    assert!(link.is_symlink());
    assert_eq!((link.uid(), link.gid()), (10, 20));
    assert_eq!(meta(&rootfs.join("opt/app/conf")), (0o640, 0, 20));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("opt/app/conf")).unwrap(),
        "conf"
    );
    assert_eq!(meta(&rootfs.join("opt/app/new")), (0o755, 0, 0));
    assert_eq!(meta(&rootfs.join("usr/bin/chsh")), (0o711, 0, 0));
}

/// A path that exists nowhere, or a step that changes nothing, is the
/// recipe's error at its line; so is a mode chmod would not take.
#[test]
fn attrs_errors_name_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    base(tmp.path());
    for (steps, line, needle) in [
        (
            "      - attrs: { path: /usr/bin/nope, mode: \"u-s\" }\n",
            7,
            "/usr/bin/nope does not exist",
        ),
        (
            "      - attrs: { path: /usr/bin/passwd }\n",
            7,
            "needs a mode, an owner or both",
        ),
        (
            "      - attrs: { path: /usr/bin/passwd, mode: \"u+q\" }\n",
            7,
            "is not one of r, w, x, X, s, t",
        ),
        (
            "      - attrs: { path: /usr/bin/passwd, mode: \"u-s\", recursve: true }\n",
            7,
            "recursve",
        ),
    ] {
        let r = recipe(tmp.path(), &format!("  - name: l\n    steps:\n{steps}"));
        let out = common::try_build(&r, tmp.path().join("out"));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("recipe.yaml:{line}:")) && err.contains(needle),
            "{needle}: {err}"
        );
    }
}
