//! ingot's reading of real Debian packages (`debian::deb`), checked
//! against dpkg itself: the packages come from Debian's archive (`apt-get
//! download`, as apt is configured; fetched once into
//! `CARGO_TARGET_TMPDIR` and kept), whatever versions it holds today.
//!
//! - What `dpkg-deb -f`, `-e`, `-c` and `-x` say of each package: the
//!   control stanza and fields, the control files, the file list with
//!   types and modes, and every file's content, owner and link.
//! - What `dpkg --unpack` does with the same packages, their maintainer
//!   scripts taken out and repacked by `dpkg-deb -b` in gzip, zstd and
//!   none, over a merged-/usr root: the tree it leaves, and the
//!   `info/PKG.list` and `info/PKG.md5sums` it writes.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ingot::debian::deb::{Deb, MultiArch};
use ingot::digest::Digest;
use ingot::rootfs::meta::ImagePath;
use ingot::rootfs::{NodeKind, View};

use common::{require, run, stderr};

/// What the tests take from Debian's archive: data in xz, an `all`
/// package, a `Multi-Arch: same` one, an essential one with conffiles, a
/// static binary, and hardlinks and symlinks (bzip2).
const PACKAGES: [&str; 5] = [
    "base-files",
    "libc6",
    "ca-certificates",
    "busybox-static",
    "bzip2",
];

/// The downloaded `.deb` of each package.
fn debs() -> &'static BTreeMap<&'static str, PathBuf> {
    static DEBS: OnceLock<BTreeMap<&'static str, PathBuf>> = OnceLock::new();
    DEBS.get_or_init(|| {
        require("dpkg-deb");
        PACKAGES
            .into_iter()
            .zip(common::debian::debs(&PACKAGES))
            .collect()
    })
}

/// Runs a command that must succeed; its stdout.
fn output(cmd: &mut Command) -> Vec<u8> {
    let out = run(cmd.env("LC_ALL", "C.UTF-8"));
    assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
    out.stdout
}

fn dpkg_deb(args: &[&str], deb: &Path) -> Vec<u8> {
    output(Command::new("dpkg-deb").args(args).arg(deb))
}

/// What ingot makes of a package's data over `view`: its file list, and
/// the content digest of each regular file by where it lands.
fn unpack(deb: &Path, view: &mut View) -> (Vec<u8>, BTreeMap<ImagePath, Digest>) {
    let mut contents = BTreeMap::new();
    let files = Deb::open(deb)
        .unwrap()
        .apply_data(view, &mut |path, r| {
            let mut bytes = Vec::new();
            r.read_to_end(&mut bytes)?;
            contents.insert(path.clone(), Digest::of(&bytes));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    (files.to_dpkg_list(), contents)
}

/// Undoes GNU tar's escapes in a listed name (`\\`, `\ooo`, `\n`...).
fn unescape(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let next = bytes[i + 1];
        if next.is_ascii_digit() {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap();
            out.push(u8::from_str_radix(octal, 8).unwrap());
            i += 4;
            continue;
        }
        out.push(match next {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'v' => 11,
            other => other,
        });
        i += 2;
    }
    out
}

/// One line of `dpkg-deb -c` (`tar -tv`): the type and permission
/// column, and the name as dpkg's file lists write it.
fn listing(line: &str) -> (String, Vec<u8>) {
    let mut rest = line;
    let mut columns = Vec::new();
    for _ in 0..5 {
        rest = rest.trim_start();
        let end = rest.find(' ').unwrap();
        columns.push(&rest[..end]);
        rest = &rest[end..];
    }
    let mut name = rest.trim_start();
    let perms = columns[0].to_string();
    let link = match perms.as_bytes()[0] {
        b'l' => " -> ",
        b'h' => " link to ",
        _ => "",
    };
    if !link.is_empty() {
        name = &name[..name.find(link).unwrap()];
    }
    let name = unescape(name);
    let name = name.strip_prefix(b".").unwrap_or(&name);
    let mut listed = name.strip_suffix(b"/").unwrap_or(name).to_vec();
    if listed.is_empty() {
        listed = b"/.".to_vec();
    }
    (perms, listed)
}

/// `ls -l`'s type and permission column for a node, as `tar -tv` prints
/// it (`h` for a hardlink).
fn perms(kind: &NodeKind, mode: u32) -> String {
    let mut out = String::from(match kind {
        NodeKind::Dir => 'd',
        NodeKind::File { .. } => '-',
        NodeKind::Symlink { .. } => 'l',
        NodeKind::Hardlink { .. } => 'h',
        NodeKind::Special => '?',
    });
    for (shift, special, set, unset) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 7;
        out.push(if bits & 4 != 0 { 'r' } else { '-' });
        out.push(if bits & 2 != 0 { 'w' } else { '-' });
        out.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => set,
            (false, true) => unset,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    out
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// A path of an unpacked tree as an image path.
fn image_path(root: &Path, path: &Path) -> ImagePath {
    let rel = path.strip_prefix(root).unwrap();
    format!("/{}", rel.to_str().unwrap()).parse().unwrap()
}

#[test]
fn packages_read_as_dpkg_deb_reads_them() {
    for (package, deb_path) in debs() {
        let deb = Deb::open(deb_path).unwrap_or_else(|e| panic!("{e}"));
        let info = deb.package().clone();
        let control = &info.control;
        assert_eq!(&control.package, package);

        // The stanza, and each field as dpkg-deb prints it (dpkg says "no"
        // for a Multi-Arch or Essential field that is not there).
        let stanza = dpkg_deb(&["-f"], deb_path);
        assert_eq!(control.stanza.as_bytes(), stanza, "{package}");
        let field = |name: &str| {
            let out = output(Command::new("dpkg-deb").arg("-f").arg(deb_path).arg(name));
            String::from_utf8(out).unwrap().trim_end().to_string()
        };
        for (name, value) in &control.fields {
            assert_eq!(&field(name), value, "{package}: {name}");
        }
        assert_eq!(field("Package"), control.package);
        assert_eq!(field("Version"), control.version);
        assert_eq!(field("Architecture"), control.architecture);
        let multi_arch = match control.multi_arch {
            MultiArch::No => "no",
            MultiArch::Same => "same",
            MultiArch::Foreign => "foreign",
            MultiArch::Allowed => "allowed",
        };
        assert_eq!(field("Multi-Arch"), multi_arch, "{package}");
        assert_eq!(
            field("Essential"),
            if control.essential { "yes" } else { "no" }
        );
        for (name, ours) in [
            ("Depends", &control.depends),
            ("Pre-Depends", &control.pre_depends),
            ("Provides", &control.provides),
        ] {
            let theirs = field(name)
                .split('\n')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            assert_eq!(
                ours.clone().unwrap_or_default(),
                theirs,
                "{package}: {name}"
            );
        }

        // The control files, as `dpkg-deb -e` extracts them.
        let dir = tempfile::tempdir().unwrap();
        let control_dir = dir.path().join("DEBIAN");
        output(
            Command::new("dpkg-deb")
                .arg("-e")
                .arg(deb_path)
                .arg(&control_dir),
        );
        let mut extracted = BTreeMap::new();
        for entry in std::fs::read_dir(&control_dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            extracted.insert(name, std::fs::read(entry.path()).unwrap());
        }
        assert_eq!(info.files, extracted, "{package}");
        if let Some(text) = extracted.get("conffiles") {
            let listed: Vec<String> = String::from_utf8(text.clone())
                .unwrap()
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            let ours: Vec<String> = info.conffiles.iter().map(|c| c.path.to_string()).collect();
            assert_eq!(ours, listed, "{package}");
        }
        let md5sums = info
            .md5sums
            .as_ref()
            .expect("Debian's packages have md5sums");
        assert_eq!(
            md5sums.files.len(),
            md5sums.text.iter().filter(|&&b| b == b'\n').count()
        );
        for script in info.scripts() {
            assert!(extracted.contains_key(script.name()));
        }

        // The data: the file list, types and modes as `dpkg-deb -c` lists
        // them, in its order.
        let mut view = View::new();
        let (list, contents) = unpack(deb_path, &mut view);
        let listed = String::from_utf8(dpkg_deb(&["-c"], deb_path)).unwrap();
        let (perm_column, names): (Vec<String>, Vec<Vec<u8>>) = listed.lines().map(listing).unzip();
        let expected: Vec<u8> = names
            .iter()
            .flat_map(|n| [n.as_slice(), b"\n"].concat())
            .collect();
        assert_eq!(
            String::from_utf8_lossy(&list),
            String::from_utf8_lossy(&expected),
            "{package}"
        );
        let paths: Vec<ImagePath> = String::from_utf8(list)
            .unwrap()
            .lines()
            .map(|l| {
                if l == "/." {
                    ImagePath::root()
                } else {
                    l.parse().unwrap()
                }
            })
            .collect();
        for (path, column) in paths.iter().zip(&perm_column).skip(1) {
            let node = view
                .get(path)
                .unwrap_or_else(|| panic!("{package}: {path}"));
            assert_eq!(&perms(&node.kind, node.mode), column, "{package}: {path}");
        }

        // Every file's content, link and owner, as `dpkg-deb -x` unpacks
        // them.
        let tree = dir.path().join("tree");
        output(Command::new("dpkg-deb").arg("-x").arg(deb_path).arg(&tree));
        let mut on_disk = 0;
        for entry in walkdir::WalkDir::new(&tree).min_depth(1) {
            let entry = entry.unwrap();
            let path = image_path(&tree, entry.path());
            let node = view
                .get(&path)
                .unwrap_or_else(|| panic!("{package}: {path} not read"));
            let meta = entry.path().symlink_metadata().unwrap();
            on_disk += 1;
            if is_root() {
                assert_eq!(
                    (node.uid, node.gid),
                    (u64::from(meta.uid()), u64::from(meta.gid())),
                    "{package}: {path}"
                );
            }
            match &node.kind {
                NodeKind::Dir => assert!(meta.is_dir(), "{package}: {path}"),
                NodeKind::File { size } => {
                    assert_eq!(*size, meta.len());
                    let digest = Digest::of(&std::fs::read(entry.path()).unwrap());
                    assert_eq!(contents[&path], digest, "{package}: {path}");
                }
                NodeKind::Symlink { target } => {
                    let on_disk = std::fs::read_link(entry.path()).unwrap();
                    assert_eq!(Path::new(target), on_disk, "{package}: {path}");
                }
                NodeKind::Hardlink { target } => {
                    let linked = tree.join(target.as_rel()).metadata().unwrap();
                    assert_eq!(meta.ino(), linked.ino(), "{package}: {path}");
                    assert_eq!(
                        contents[target],
                        Digest::of(&std::fs::read(entry.path()).unwrap())
                    );
                }
                NodeKind::Special => panic!("{package}: {path} is a device"),
            }
        }
        assert_eq!(on_disk, view.iter().count(), "{package}");
    }
}

/// A tree as the tests compare them: each path's type, mode, owner (when
/// this runs as root, so that dpkg could set them) and content or link.
type Tree = BTreeMap<ImagePath, String>;

fn owner(uid: u64, gid: u64) -> String {
    if is_root() {
        format!("{uid}:{gid}")
    } else {
        String::new()
    }
}

/// The tree under `root`, but dpkg's database.
fn tree_on_disk(root: &Path) -> Tree {
    let mut tree = Tree::new();
    let admin = root.join("var/lib/dpkg");
    for entry in walkdir::WalkDir::new(root).min_depth(1) {
        let entry = entry.unwrap();
        if entry.path().starts_with(&admin) {
            continue;
        }
        let meta = entry.path().symlink_metadata().unwrap();
        let (mode, who) = (
            meta.mode() & 0o7777,
            owner(meta.uid().into(), meta.gid().into()),
        );
        let desc = if meta.is_dir() {
            format!("dir {mode:o} {who}")
        } else if meta.is_symlink() {
            format!(
                "symlink to {}",
                std::fs::read_link(entry.path()).unwrap().display()
            )
        } else {
            let digest = Digest::of(&std::fs::read(entry.path()).unwrap());
            format!("file {mode:o} {who} {digest}")
        };
        tree.insert(image_path(root, entry.path()), desc);
    }
    tree
}

/// The same of a view, its files' contents given.
fn tree_of_view(view: &View, contents: &BTreeMap<ImagePath, Digest>) -> Tree {
    let admin: ImagePath = "/var/lib/dpkg".parse().unwrap();
    let mut tree = Tree::new();
    for (path, node) in view.iter() {
        if path.starts_with(&admin) {
            continue;
        }
        let (mode, who) = (node.mode, owner(node.uid, node.gid));
        let desc = match &node.kind {
            NodeKind::Dir => format!("dir {mode:o} {who}"),
            NodeKind::Symlink { target } => format!("symlink to {target}"),
            NodeKind::File { .. } => format!("file {mode:o} {who} {}", contents[path]),
            NodeKind::Hardlink { target } => format!("file {mode:o} {who} {}", contents[target]),
            NodeKind::Special => panic!("{path} is a device"),
        };
        tree.insert(path.clone(), desc);
    }
    tree
}

/// dpkg unpacks a package through the directory symlinks of a merged-/usr
/// root, keeps directories that exist, and records the names the package
/// lists: ingot's view of the same packages over the same root must be
/// the tree dpkg leaves, and its file lists dpkg's.
#[test]
fn unpacking_agrees_with_dpkg_over_a_merged_usr_root() {
    require("dpkg");
    require("tar");
    let debs = debs();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for d in [
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    // A directory the packages ship too, with other permissions: dpkg
    // leaves a directory that exists as it is.
    std::fs::create_dir(root.join("usr/share")).unwrap();
    std::fs::set_permissions(
        root.join("usr/share"),
        std::os::unix::fs::PermissionsExt::from_mode(0o750),
    )
    .unwrap();
    for file in ["status", "available"] {
        std::fs::write(root.join("var/lib/dpkg").join(file), "").unwrap();
    }
    // Relative links only: dpkg --root does not chroot, and an absolute
    // symlink on the way to a file would lead it out of the root.
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        std::os::unix::fs::symlink(target, root.join(link)).unwrap();
    }
    let base = output(
        Command::new("tar")
            .args(["--numeric-owner", "--exclude=./var/lib/dpkg", "-C"])
            .arg(&root)
            .args(["-cf", "-", "."]),
    );
    let mut view = View::new();
    view.apply_tar(&base[..]).unwrap();

    let mut contents = BTreeMap::new();
    for (package, compression) in [("base-files", "gzip"), ("bzip2", "none"), ("libc6", "zstd")] {
        // Without maintainer scripts, which dpkg would run on this host,
        // and conffiles, which it leaves as .dpkg-new until configured.
        let unpacked = dir.path().join(package);
        output(
            Command::new("dpkg-deb")
                .arg("-R")
                .arg(&debs[package])
                .arg(&unpacked),
        );
        for name in [
            "preinst",
            "postinst",
            "prerm",
            "postrm",
            "config",
            "triggers",
            "conffiles",
        ] {
            let _ = std::fs::remove_file(unpacked.join("DEBIAN").join(name));
        }
        let repacked = dir.path().join(format!("{package}.deb"));
        output(
            Command::new("dpkg-deb")
                .arg(format!("-Z{compression}"))
                .arg("-b")
                .arg(&unpacked)
                .arg(&repacked),
        );
        output(
            Command::new("dpkg")
                .arg(format!("--root={}", root.display()))
                .args([
                    "--force-script-chrootless",
                    "--force-not-root",
                    "--force-depends",
                    "--unpack",
                ])
                .arg(&repacked),
        );

        let deb = Deb::open(&repacked).unwrap();
        let info = deb.package().clone();
        let (list, files) = unpack(&repacked, &mut view);
        contents.extend(files);
        let admin = root.join("var/lib/dpkg/info");
        let name = info.control.info_name();
        let theirs = std::fs::read(admin.join(format!("{name}.list"))).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&list),
            String::from_utf8_lossy(&theirs),
            "{package}"
        );
        let theirs = std::fs::read(admin.join(format!("{name}.md5sums"))).unwrap();
        assert_eq!(info.md5sums.unwrap().text, theirs, "{package}");
    }
    let (ours, theirs) = (tree_of_view(&view, &contents), tree_on_disk(&root));
    let differ: Vec<_> = ours
        .keys()
        .chain(theirs.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|p| ours.get(*p) != theirs.get(*p))
        .map(|p| format!("{p}: ingot {:?}, dpkg {:?}", ours.get(p), theirs.get(p)))
        .collect();
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    // The merged /usr held, and so did /usr/share's permissions.
    for link in ["/bin", "/sbin", "/lib", "/lib64"] {
        assert!(matches!(
            view.get(&link.parse().unwrap()).unwrap().kind,
            NodeKind::Symlink { .. }
        ));
    }
    assert_eq!(
        view.get(&"/usr/share".parse().unwrap()).unwrap().mode,
        0o750
    );
}
