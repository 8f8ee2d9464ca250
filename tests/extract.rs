//! The `extract` step: a rootfs tarball (plain, gzip, xz or zstd) lands in
//! the image with its modes, owners, symlinks and hardlinks, as umoci
//! unpacks it; a hostile archive is refused naming the archive and entry.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::layout::{EntryType, dir, file, hardlink, raw, symlink, tar};
use common::{require, run, stderr};

/// What a tree holds, path by path: kind, mode, owner, and content or
/// link target; and which paths share an inode.
#[derive(Debug, PartialEq, Eq)]
struct Tree {
    entries: BTreeMap<String, (char, u32, u32, u32, Vec<u8>)>,
    links: Vec<Vec<String>>,
}

fn tree(root: &Path, skip: &[&str]) -> Tree {
    let mut entries = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .display()
            .to_string();
        if skip
            .iter()
            .any(|s| rel == *s || rel.starts_with(&format!("{s}/")))
        {
            continue;
        }
        let m = entry.path().symlink_metadata().unwrap();
        let (kind, data) = if m.is_symlink() {
            let target = std::fs::read_link(entry.path()).unwrap();
            ('l', target.display().to_string().into_bytes())
        } else if m.is_dir() {
            ('d', Vec::new())
        } else {
            if m.nlink() > 1 {
                inodes.entry(m.ino()).or_default().push(rel.clone());
            }
            ('f', std::fs::read(entry.path()).unwrap())
        };
        let mode = if kind == 'l' { 0 } else { m.mode() & 0o7777 };
        entries.insert(rel, (kind, mode, m.uid(), m.gid(), data));
    }
    Tree {
        entries,
        links: inodes.into_values().collect(),
    }
}

/// A root filesystem on disk: owners, modes, symlinks (absolute and
/// relative), and a hardlink pair whose link name sorts before its file.
fn rootfs(at: &Path) {
    let mk = |p: &str| std::fs::create_dir_all(at.join(p)).unwrap();
    let put = |p: &str, data: &str, mode: u32, owner: (u32, u32)| {
        let path = at.join(p);
        std::fs::write(&path, data).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(&path, Some(owner.0), Some(owner.1)).unwrap();
    };
    mk("etc/app");
    mk("usr/bin");
    mk("var/lib/app");
    mk("srv");
    put("etc/app/app.conf", "conf\n", 0o640, (0, 2000));
    put("usr/bin/zz-tool", "#!/bin/false\n", 0o755, (0, 0));
    std::fs::hard_link(at.join("usr/bin/zz-tool"), at.join("usr/bin/aa-tool")).unwrap();
    std::fs::hard_link(at.join("usr/bin/zz-tool"), at.join("srv/tool")).unwrap();
    put("var/lib/app/state", "state\n", 0o600, (10001, 10001));
    std::os::unix::fs::chown(at.join("var/lib/app"), Some(10001), Some(10001)).unwrap();
    std::fs::set_permissions(
        at.join("var/lib/app"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/app/app.conf", at.join("srv/conf")).unwrap();
    std::os::unix::fs::symlink("../usr/bin", at.join("srv/bin")).unwrap();
    std::fs::set_permissions(at.join("srv"), std::fs::Permissions::from_mode(0o711)).unwrap();
}

fn recipe(dir: &Path, steps: &str) -> PathBuf {
    let path = dir.join("recipe.yaml");
    std::fs::write(
        &path,
        format!("name: x\nversion: '1'\nbase: scratch\nlayers:\n  - name: l\n    steps:\n{steps}"),
    )
    .unwrap();
    path
}

fn unpack(layout: &Path, bundle: &Path) -> PathBuf {
    require("umoci");
    let out = run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:1", layout.display()))
        .arg(bundle));
    assert!(out.status.success(), "umoci unpack: {}", stderr(&out));
    bundle.join("rootfs")
}

/// The tarball, in every compression, unpacks (umoci) to the tree it was
/// made from: kinds, modes, owners, contents, symlink targets, hardlinks.
/// Below another `dest`, the same tree lands there.
#[test]
fn a_rootfs_tarball_lands_as_it_was() {
    require("tar");
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    rootfs(&source);
    let want = tree(&source, &[]);
    assert_eq!(want.links.len(), 1, "{want:?}");
    let files = tmp.path().join("r/files");
    std::fs::create_dir_all(&files).unwrap();
    for (name, flag) in [
        ("rootfs.tar", "-cf"),
        ("rootfs.tar.gz", "-czf"),
        ("rootfs.tar.xz", "-cJf"),
        ("rootfs.tar.zst", "--zstd -cf"),
    ] {
        let archive = files.join(name);
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("tar --numeric-owner {flag} \"$1\" -C \"$2\" .",))
            .arg("sh")
            .arg(&archive)
            .arg(&source)
            .status()
            .unwrap();
        assert!(status.success(), "tar {flag}");
        let r = recipe(
            &tmp.path().join("r"),
            &format!("      - extract: {{ src: files/{name} }}\n"),
        );
        let layout = tmp.path().join(format!("out-{name}"));
        common::build(&r, &layout);
        let got = tree(&unpack(&layout, &tmp.path().join(format!("b-{name}"))), &[]);
        assert_eq!(got, want, "{name}");
    }

    let r = recipe(
        &tmp.path().join("r"),
        "      - extract: { src: files/rootfs.tar.gz, dest: /opt/root }\n",
    );
    let layout = tmp.path().join("out-dest");
    common::build(&r, &layout);
    let got = tree(
        &unpack(&layout, &tmp.path().join("b-dest")).join("opt/root"),
        &[],
    );
    assert_eq!(got, want);
}

/// Each archive is refused with one line naming the recipe's line, the
/// archive and the entry; nothing is written.
#[test]
fn a_hostile_archive_is_refused_naming_the_archive_and_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("r");
    std::fs::create_dir_all(r.join("files")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "dotdot.tar",
            tar(&[dir("etc"), file("etc/../../evil", b"x")]),
            "entry \"etc/../../evil\" escapes the image root",
        ),
        (
            "through.tar",
            tar(&[
                symlink("evil", "/etc"),
                file("evil/passwd", b"root::0:0::/:/bin/sh\n"),
            ]),
            "entry /evil/passwd is written through a symlink (to /etc/passwd)",
        ),
        (
            "whiteout.tar",
            tar(&[dir("etc"), file("etc/.wh.passwd", b"")]),
            "entry /etc/.wh.passwd is a whiteout",
        ),
        (
            "nolink.tar",
            tar(&[hardlink("bin/sh", "bin/busybox")]),
            "hardlink \"bin/sh\" points at /bin/busybox, which the image does not have",
        ),
    ];
    for (name, bytes, needle) in cases {
        std::fs::write(r.join("files").join(name), bytes).unwrap();
        let recipe = recipe(&r, &format!("      - extract: {{ src: files/{name} }}\n"));
        let out_dir = tmp.path().join("out");
        let out = common::try_build(&recipe, &out_dir);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(
            lines[0].contains("recipe.yaml:7:")
                && lines[0].contains(&format!("archive files/{name}: "))
                && lines[0].contains(needle),
            "{name}: {}",
            lines[0]
        );
        assert!(!out_dir.exists());
    }
}

/// Device nodes and fifos are read and checked as a base's are, then left
/// out, with a line saying so: a runtime supplies /dev.
#[test]
fn device_nodes_are_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("r");
    std::fs::create_dir_all(r.join("files")).unwrap();
    let mut null = raw("dev/null", EntryType::Char);
    null.device = Some((1, 3));
    std::fs::write(
        r.join("files/dev.tar"),
        tar(&[dir("dev"), null, file("etc/hostname", b"box\n")]),
    )
    .unwrap();
    let recipe = recipe(&r, "      - extract: { src: files/dev.tar }\n");
    let layout = tmp.path().join("out");
    let out = common::try_build(&recipe, &layout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("files/dev.tar: /dev/null is a device node or fifo, left out"),
        "{}",
        stderr(&out)
    );
    let rootfs = unpack(&layout, &tmp.path().join("b"));
    assert!(rootfs.join("dev").is_dir());
    assert!(!rootfs.join("dev/null").exists());
    assert_eq!(
        std::fs::read(rootfs.join("etc/hostname")).unwrap(),
        b"box\n"
    );
}

/// The seal sees what an archive brings: a setuid file and a private key
/// (found in the content as the layer is written), by path and layer.
#[test]
fn the_seal_sees_what_an_archive_brings() {
    const EC: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIM9LRqz68qtS6GXJBYcmTN6vwcQmZoy+qzm1S5wzuco/oAoGCCqGSM49
AwEHoUQDQgAEXMLEi2A6LqSJPfPDtCQuG6V7Cqyqm0K/yGx79vgsZ6DRbSnR/BvH
++Yh7md1H4HcMbNFIaBgEcPBaFF3YjzLUA==
-----END EC PRIVATE KEY-----
";
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("r");
    std::fs::create_dir_all(r.join("files")).unwrap();
    std::fs::write(
        r.join("files/app.tar"),
        tar(&[
            file("usr/bin/su", b"su").with_mode(0o4755),
            file("etc/app/tls.key", EC.as_bytes()),
        ]),
    )
    .unwrap();
    let recipe = recipe(&r, "      - extract: { src: files/app.tar }\n");
    let out = common::try_build(&recipe, tmp.path().join("out"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for needle in ["setuid: /usr/bin/su", "no-private-keys: /etc/app/tls.key"] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

/// A layer that fails on its way to its writer (a hardlink left naming a
/// file a later step removed) fails the build naming the layer, and
/// leaves no image, staging directory or temp file behind.
#[test]
fn a_layer_failing_on_its_way_to_its_writer_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let r = tmp.path().join("r");
    std::fs::create_dir_all(r.join("files")).unwrap();
    std::fs::write(
        r.join("files/l.tar"),
        tar(&[
            dir("bin"),
            file("bin/busybox", b"abc"),
            hardlink("bin/sh", "bin/busybox"),
        ]),
    )
    .unwrap();
    let recipe = recipe(
        &r,
        "      - extract: { src: files/l.tar }\n      - remove: { path: /bin/busybox }\n",
    );
    let (out_dir, cache) = (tmp.path().join("out"), tmp.path().join("cache"));
    let out = run(common::ingot()
        .arg("build")
        .arg(&recipe)
        .arg("--cache")
        .arg(&cache)
        .arg("-o")
        .arg(&out_dir));
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("writing layer \"l\"")
            && err.contains("\"bin/sh\" is a hardlink to \"bin/busybox\""),
        "{err}"
    );
    assert!(!out_dir.exists());
    let left: Vec<String> = walkdir::WalkDir::new(tmp.path())
        .min_depth(1)
        .into_iter()
        .map(|e| {
            e.unwrap()
                .path()
                .strip_prefix(tmp.path())
                .unwrap()
                .display()
                .to_string()
        })
        .filter(|p| !p.starts_with("r"))
        .collect();
    // The cache's directories and the stat index of the recipe's files,
    // no blob, no temp file.
    assert!(
        left.iter().all(|p| p.starts_with("cache")
            && !p.starts_with("cache/blobs/sha256/")
            && !p.contains(".tmp")),
        "{left:#?}"
    );
}
