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

/// A `dest` ending in `/` names a directory: a file is copied into it under
/// its own name (as `cp` and Dockerfile `COPY` do), where it used to become
/// a file named after the directory; a directory's contents land in it as
/// without the slash. The cache tells the two spellings apart, and `file`
/// and `template`, which write one file, refuse it.
#[test]
fn a_dest_ending_in_a_slash_copies_into_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("files");
    std::fs::create_dir_all(src.join("tree/sub")).unwrap();
    std::fs::write(src.join("app.conf"), "conf").unwrap();
    std::fs::write(src.join("tree/sub/x"), "x").unwrap();
    let text = |dest: &str| {
        format!(
            "name: slash\nversion: '1'\nbase: stemcell:static\nlayers:\n\
             - name: l\n  steps:\n\
             \x20   - copy: {{ src: files/app.conf, dest: {dest} }}\n\
             \x20   - copy: {{ src: files/tree, dest: /opt/tree/ }}\n\
             \x20   - copy: {{ src: files/app.conf, dest: /etc/ }}\n"
        )
    };
    let cache = dir.path().join("cache");
    let build_cached = |layout: &Path| {
        let out = run(ingot()
            .arg("build")
            .arg(dir.path().join("recipe.yaml"))
            .arg("-o")
            .arg(layout)
            .arg("--cache")
            .arg(&cache));
        assert!(out.status.success(), "{}", stderr(&out));
    };
    recipe(dir.path(), &text("/srv/app"));
    build_cached(&dir.path().join("plain"));
    recipe(dir.path(), &text("/srv/app/"));
    build_cached(&dir.path().join("slash"));

    let plain = unpack(&dir.path().join("plain"), "1", &dir.path().join("b1"));
    assert_eq!(std::fs::read(plain.join("srv/app")).unwrap(), b"conf");
    let rootfs = unpack(&dir.path().join("slash"), "1", &dir.path().join("b2"));
    assert!(rootfs.join("srv/app").is_dir());
    assert_eq!(
        std::fs::read(rootfs.join("srv/app/app.conf")).unwrap(),
        b"conf"
    );
    assert_eq!(std::fs::read(rootfs.join("opt/tree/sub/x")).unwrap(), b"x");
    assert_eq!(std::fs::read(rootfs.join("etc/app.conf")).unwrap(), b"conf");
    // The base's /etc is still a directory with its files.
    assert!(rootfs.join("etc/os-release").is_file());

    for step in [
        "file: { dest: /etc/app/, content: x }",
        "template: { src: files/app.conf, dest: /etc/app/ }",
    ] {
        let r = recipe(
            dir.path(),
            &format!(
                "name: slash\nversion: '1'\nbase: stemcell:static\nlayers:\n\
                 - name: l\n  steps:\n\
                 \x20   - {step}\n"
            ),
        );
        let out = common::try_build(&r, dir.path().join("bad"));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("recipe.yaml:7:") && err.contains("ends in '/'"),
            "{err}"
        );
    }
}

/// `keep_modes: true` keeps each copied file's and new directory's
/// permission bits as the source has them (owners still come from the
/// step; directories the image has keep theirs), and the cache key holds
/// them: a changed source mode is a new layer, not a cache hit.
#[test]
fn copy_keeps_the_sources_modes_when_asked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("files/tree");
    std::fs::create_dir_all(src.join("private")).unwrap();
    std::fs::create_dir_all(src.join("tmp")).unwrap();
    std::fs::write(src.join("private/key.conf"), "k").unwrap();
    std::fs::write(src.join("run"), "#!").unwrap();
    std::fs::write(src.join("tmp/note"), "n").unwrap();
    let set = |p: &str, m: u32| {
        std::fs::set_permissions(src.join(p), std::fs::Permissions::from_mode(m)).unwrap()
    };
    set("private", 0o750);
    set("private/key.conf", 0o640);
    set("run", 0o750);
    set("tmp", 0o755);
    set("tmp/note", 0o604);
    let r = recipe(
        dir.path(),
        "name: keep\nversion: '1'\nbase: stemcell:static\nlayers:\n\
         - name: l\n  steps:\n\
         \x20   - copy: { src: files/tree, dest: /opt/app, keep_modes: true, owner: '10:20' }\n\
         \x20   - copy: { src: files/tree, dest: /opt/plain }\n\
         \x20   - copy: { src: files/tree/tmp, dest: /tmp, keep_modes: true }\n",
    );
    let cache = dir.path().join("cache");
    let build_cached = |layout: &Path| {
        let out = run(ingot()
            .arg("build")
            .arg(&r)
            .arg("-o")
            .arg(layout)
            .arg("--cache")
            .arg(&cache));
        assert!(out.status.success(), "{}", stderr(&out));
        common::stdout(&out).trim().to_string()
    };
    let first = build_cached(&dir.path().join("a"));
    let rootfs = unpack(&dir.path().join("a"), "1", &dir.path().join("b1"));
    let meta = |p: &str| {
        let m = std::fs::symlink_metadata(rootfs.join(p)).unwrap();
        (m.mode() & 0o7777, m.uid(), m.gid())
    };
    assert_eq!(meta("opt/app/private"), (0o750, 10, 20));
    assert_eq!(meta("opt/app/private/key.conf"), (0o640, 10, 20));
    assert_eq!(meta("opt/app/run"), (0o750, 10, 20));
    assert_eq!(meta("opt/plain/private"), (0o755, 0, 0));
    assert_eq!(meta("opt/plain/private/key.conf"), (0o644, 0, 0));
    assert_eq!(meta("opt/plain/run"), (0o755, 0, 0));
    // /tmp is the base's: it keeps its 1777.
    assert_eq!(meta("tmp"), (0o1777, 0, 0));
    assert_eq!(meta("tmp/note"), (0o604, 0, 0));

    set("private/key.conf", 0o600);
    let second = build_cached(&dir.path().join("c"));
    assert_ne!(second, first, "the source's mode is an input");
    let rootfs = unpack(&dir.path().join("c"), "1", &dir.path().join("b2"));
    let m = std::fs::metadata(rootfs.join("opt/app/private/key.conf")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600);

    // keep_modes and mode together say two things.
    let r = recipe(
        dir.path(),
        "name: keep\nversion: '1'\nbase: stemcell:static\nlayers:\n\
         - name: l\n  steps:\n\
         \x20   - copy: { src: files/tree, dest: /opt/app, keep_modes: true, mode: '0644' }\n",
    );
    let out = common::try_build(&r, dir.path().join("bad"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("recipe.yaml:7:"), "{}", stderr(&out));
}

/// `copy` can target `/`: a tree's contents fill the root (the root keeps
/// its own attributes, the base's directories theirs) and a file lands
/// at the top under its name.
#[test]
fn copy_can_target_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("files/rootfs");
    std::fs::create_dir_all(src.join("etc/app")).unwrap();
    std::fs::create_dir_all(src.join("srv")).unwrap();
    std::fs::write(src.join("etc/app/app.conf"), "conf").unwrap();
    std::fs::write(src.join("srv/index.html"), "<p>").unwrap();
    std::fs::write(dir.path().join("files/VERSION"), "1\n").unwrap();
    let r = recipe(
        dir.path(),
        "name: root\nversion: '1'\nbase: stemcell:static\nlayers:\n\
         - name: l\n  steps:\n\
         \x20   - copy: { src: files/rootfs, dest: / }\n\
         \x20   - copy: { src: files/VERSION, dest: / }\n",
    );
    let layout = dir.path().join("layout");
    build(&r, &layout);
    let rootfs = unpack(&layout, "1", &dir.path().join("bundle"));
    assert_eq!(
        std::fs::read(rootfs.join("etc/app/app.conf")).unwrap(),
        b"conf"
    );
    assert_eq!(
        std::fs::read(rootfs.join("srv/index.html")).unwrap(),
        b"<p>"
    );
    assert_eq!(std::fs::read(rootfs.join("VERSION")).unwrap(), b"1\n");
    assert!(
        rootfs.join("etc/os-release").is_file(),
        "the base's /etc stays"
    );
    let m = manifest(&layout);
    assert_eq!(m["layers"].as_array().unwrap().len(), 2);
}

/// `config.volumes` reach the image config (added to the base's) and
/// `annotations` the manifest, as skopeo reads them; ingot's own keys stay
/// its own, and a volume on a file fails the build.
#[test]
fn volumes_and_annotations_reach_the_image() {
    require("skopeo");
    let dir = tempfile::tempdir().unwrap();
    let r = recipe(
        dir.path(),
        "name: vol\nversion: '1'\nbase: stemcell:static\n\
         annotations:\n  org.opencontainers.image.description: a test image\n  com.example.team: infra\n\
         config:\n  volumes: [/var/lib/data, /srv/cache]\n",
    );
    let layout = dir.path().join("layout");
    build(&r, &layout);
    let image = format!("oci:{}:1", layout.display());
    let skopeo = |args: &[&str]| -> serde_json::Value {
        let out = run(std::process::Command::new("skopeo")
            .arg("inspect")
            .args(args)
            .arg(&image));
        assert!(out.status.success(), "skopeo: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let raw = skopeo(&["--raw"]);
    let annotations = &raw["annotations"];
    assert_eq!(
        annotations["org.opencontainers.image.description"],
        "a test image"
    );
    assert_eq!(annotations["com.example.team"], "infra");
    assert_eq!(annotations["org.opencontainers.image.title"], "vol");
    let config = skopeo(&["--config"]);
    let volumes = config["config"]["Volumes"].as_object().unwrap();
    let names: Vec<&String> = volumes.keys().collect();
    assert_eq!(names, ["/srv/cache", "/var/lib/data"]);

    for (text, line, needle) in [
        (
            "annotations:\n  org.opencontainers.image.version: '2'\n",
            5,
            "\"org.opencontainers.image.version\" is ingot's own",
        ),
        (
            "annotations:\n  dev.ingot.seal.policy: '0'\n",
            5,
            "\"dev.ingot.seal.policy\" is ingot's own",
        ),
        ("config:\n  volumes: [data]\n", 5, "absolute"),
        (
            "config:\n  volumes: [/etc/os-release]\n",
            5,
            "config.volumes: \"/etc/os-release\" is a file in the image",
        ),
    ] {
        let r = recipe(
            dir.path(),
            &format!("name: vol\nversion: '1'\nbase: stemcell:static\n{text}"),
        );
        let out = common::try_build(&r, dir.path().join("bad"));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("recipe.yaml:{line}:")) && err.contains(needle),
            "{needle}: {err}"
        );
    }
}

/// A source copied by two steps of one layer (and again by the next
/// layer) lands whole at each `dest`: the last copy of a source in a layer
/// takes its walk, the others share it.
#[test]
fn a_source_copied_twice_in_a_layer_lands_at_both() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a.txt"), "a").unwrap();
    std::fs::write(tree.join("sub/b.txt"), "b").unwrap();
    let r = recipe(
        dir.path(),
        "name: twice\nversion: '1'\nbase: stemcell:static\nlayers:\n\
         - name: both\n  steps:\n\
         \x20   - copy: { src: tree, dest: /one }\n\
         \x20   - copy: { src: ./tree, dest: /two }\n\
         - name: again\n  steps:\n\
         \x20   - copy: { src: tree, dest: /three }\n",
    );
    let out = dir.path().join("out");
    build(&r, &out);
    let rootfs = unpack(&out, "1", &dir.path().join("bundle"));
    for dest in ["one", "two", "three"] {
        assert_eq!(
            std::fs::read_to_string(rootfs.join(dest).join("a.txt")).unwrap(),
            "a",
            "{dest}"
        );
        assert_eq!(
            std::fs::read_to_string(rootfs.join(dest).join("sub/b.txt")).unwrap(),
            "b",
            "{dest}"
        );
    }
}

/// A copied tree lands as a full resolution of each path would put it,
/// however many of its entries a copy plans without one: through a lower
/// symlink on the way to `dest`, and over one the tree has a directory
/// for, whose contents then stay in that directory.
#[test]
fn a_copied_tree_meets_lower_symlinks_as_each_path_resolved_would() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    for (path, content) in [
        ("a.txt", "a"),
        ("cfg/x.conf", "x"),
        ("cfg/deep/y", "y"),
        ("sub/z", "z"),
        ("zz", "zz"),
    ] {
        let file = tree.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    let r = recipe(
        dir.path(),
        "name: links\nversion: '1'\nbase: scratch\nlayers:\n\
         - name: links\n  steps:\n\
         \x20   - mkdir: { path: /srv/real }\n\
         \x20   - mkdir: { path: /srv/elsewhere }\n\
         \x20   - symlink: { path: /srv/app, target: real }\n\
         \x20   - symlink: { path: /srv/real/cfg, target: ../elsewhere }\n\
         - name: tree\n  steps:\n\
         \x20   - copy: { src: tree, dest: /srv/real }\n\
         \x20   - copy: { src: tree/sub, dest: /srv/app/more }\n",
    );
    let layout = dir.path().join("layout");
    build(&r, &layout);
    let rootfs = unpack(&layout, "1", &dir.path().join("bundle"));
    let read = |path: &str| std::fs::read_to_string(rootfs.join(path)).unwrap();
    let kind = |path: &str| {
        std::fs::symlink_metadata(rootfs.join(path))
            .unwrap()
            .file_type()
    };
    assert!(kind("srv/app").is_symlink(), "/srv/app stays a symlink");
    assert!(
        kind("srv/real/cfg").is_dir(),
        "the tree's cfg replaces the link"
    );
    assert_eq!(read("srv/real/cfg/x.conf"), "x");
    assert_eq!(read("srv/real/cfg/deep/y"), "y");
    assert_eq!(read("srv/real/a.txt"), "a");
    assert_eq!(read("srv/real/sub/z"), "z");
    assert_eq!(read("srv/real/zz"), "zz");
    assert_eq!(read("srv/real/more/z"), "z", "copied through /srv/app");
    let elsewhere: Vec<_> = std::fs::read_dir(rootfs.join("srv/elsewhere"))
        .unwrap()
        .collect();
    assert!(
        elsewhere.is_empty(),
        "nothing went through the replaced link"
    );
}
