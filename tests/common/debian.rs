//! Real Debian packages for the tests, from Debian's archive as apt is
//! configured (`apt-get download`), whatever versions it holds today.
//! Fetched once into `CARGO_TARGET_TMPDIR/debian-packages` and kept.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use super::{require, run, stderr};

/// Python's closure (`python3-minimal` and what it needs, but `dpkg`),
/// base-passwd's accounts and the CA bundle (but `openssl` and `debconf`):
/// enough for a Debian root that runs `python3`.
pub const PYTHON_ARCHIVE: &[&str] = &[
    "python3-minimal",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libc6",
    "libgcc-s1",
    "gcc-12-base",
    "zlib1g",
    "libexpat1",
    "libssl3",
    "base-passwd",
    "libdebconfclient0",
    "libselinux1",
    "libpcre2-8-0",
    "ca-certificates",
];

/// The `.deb` of each of `packages`, in order. Missing ones are
/// downloaded, one caller at a time, into a directory of their own first
/// and renamed into the cache once whole: an interrupted download leaves
/// no `.deb` a later run would take for a package.
pub fn debs(packages: &[&str]) -> Vec<PathBuf> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    require("apt-get");
    let cache = cache().join("debs");
    std::fs::create_dir_all(&cache).unwrap();
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| find(&cache, p).is_none())
        .collect();
    if !missing.is_empty() {
        let partial = scratch();
        let out = run(Command::new("apt-get")
            .arg("download")
            .args(&missing)
            .current_dir(partial.path()));
        assert!(
            out.status.success(),
            "apt-get download {missing:?} (run apt-get update, or ./scripts/test): {}",
            stderr(&out)
        );
        for entry in std::fs::read_dir(partial.path()).unwrap() {
            let entry = entry.unwrap();
            std::fs::rename(entry.path(), cache.join(entry.file_name())).unwrap();
        }
    }
    packages
        .iter()
        .map(|p| find(&cache, p).unwrap_or_else(|| panic!("apt-get download gave no .deb of {p}")))
        .collect()
}

/// The cache directory.
pub fn cache() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("debian-packages")
}

/// A temporary directory in the cache, removed however the test ends.
pub fn scratch() -> tempfile::TempDir {
    let cache = cache();
    std::fs::create_dir_all(&cache).unwrap();
    tempfile::Builder::new()
        .prefix(".partial-")
        .tempdir_in(cache)
        .unwrap()
}

/// The cached `.deb` of `package` (`PACKAGE_VERSION_ARCH.deb`), if any.
fn find(dir: &Path, package: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.ends_with(".deb") && name.split('_').next() == Some(package)
        })
        .collect();
    found.sort();
    found.pop()
}

/// `deb` rebuilt in `dir` as the next version of itself: the same files
/// and control fields, its version followed by `+SUFFIX`, as a point
/// release makes one. Returns the new `.deb` and its version.
pub fn next_version(deb: &Path, suffix: &str, dir: &Path) -> (PathBuf, String) {
    require("dpkg-deb");
    let tree = dir.join("tree");
    let out = run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree));
    assert!(out.status.success(), "dpkg-deb -R: {}", stderr(&out));
    let control = tree.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).unwrap();
    let old = text
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .unwrap_or_else(|| panic!("{}: no Version", deb.display()))
        .to_string();
    let version = format!("{old}+{suffix}");
    std::fs::write(
        &control,
        text.replace(
            &format!("Version: {old}\n"),
            &format!("Version: {version}\n"),
        ),
    )
    .unwrap();
    let built = dir.join("next.deb");
    let out = run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-b"])
        .arg(&tree)
        .arg(&built));
    assert!(out.status.success(), "dpkg-deb -b: {}", stderr(&out));
    (built, version)
}
