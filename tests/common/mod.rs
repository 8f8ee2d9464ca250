//! Shared helpers for the integration tests: they run the real `ingot`
//! binary in temp directories.
#![allow(dead_code)]

pub mod archive;
pub mod debian;
pub mod layout;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root, where `recipes/` lives.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command running the built `ingot` binary with a clean, fixed
/// environment: no SOURCE_DATE_EPOCH unless a test sets one, and a build
/// cache of its own (tests about the cache pass `--cache`), so no test sees
/// another's cached layers or the user's.
pub fn ingot() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ingot"));
    cmd.env_remove("SOURCE_DATE_EPOCH");
    cmd.env("XDG_CACHE_HOME", fresh_cache_dir());
    cmd
}

/// [`ingot`] run by `wrapper`, a command that runs the rest of its
/// arguments (`prlimit --as=N --`).
pub fn ingot_via(wrapper: &[&str]) -> Command {
    let mut cmd = Command::new(wrapper[0]);
    cmd.args(&wrapper[1..]).arg(env!("CARGO_BIN_EXE_ingot"));
    cmd.env_remove("SOURCE_DATE_EPOCH");
    cmd.env("XDG_CACHE_HOME", fresh_cache_dir());
    cmd
}

/// A new, empty directory under one temp dir per test binary.
fn fresh_cache_dir() -> PathBuf {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let root = ROOT.get_or_init(|| tempfile::tempdir().expect("a temp dir for caches"));
    root.path()
        .join(NEXT.fetch_add(1, Ordering::Relaxed).to_string())
}

/// Runs `cmd`, returning its output whatever the exit status.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("running a command")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ingot build RECIPE -o OUT`, whatever its outcome.
pub fn try_build(recipe: impl AsRef<Path>, out: impl AsRef<Path>) -> Output {
    run(ingot()
        .arg("build")
        .arg(recipe.as_ref())
        .arg("-o")
        .arg(out.as_ref()))
}

/// Builds `recipe` into `out` and returns the manifest digest, failing the
/// test with ingot's stderr when the build fails.
pub fn build(recipe: &Path, out: &Path) -> String {
    build_with(recipe, out, &[])
}

/// The image alone, without the SBOM and provenance every build attaches:
/// for tests of what a layout or a push holds of the image itself.
pub fn build_bare(recipe: &Path, out: &Path) -> String {
    build_with(recipe, out, &["--no-attest"])
}

/// [`build`] with more arguments.
pub fn build_with(recipe: &Path, out: &Path, args: &[&str]) -> String {
    let output = run(ingot()
        .arg("build")
        .arg(recipe)
        .arg("-o")
        .arg(out)
        .args(args));
    assert!(
        output.status.success(),
        "ingot build {} failed: {}",
        recipe.display(),
        stderr(&output)
    );
    let digest = stdout(&output).trim().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "stdout was {digest:?}"
    );
    digest
}

/// Whether a third-party tool is on PATH. Interop tests require it: CI
/// installs every tool, so a missing one fails rather than skips.
pub fn require(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{tool} is not installed; run ./scripts/test, which installs it"
    );
}

/// Copies a directory tree (files, dirs, symlinks), as `cp -a` would but
/// without keeping times, so tests can rearrange inputs.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let ft = entry.file_type().unwrap();
        let dest = to.join(entry.file_name());
        if ft.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &dest).unwrap();
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

pub mod hostile;
pub mod registry;

/// The recipe file of the example `recipes/NAME`.
pub fn example(name: &str) -> PathBuf {
    repo().join("recipes").join(name).join("recipe.yaml")
}

/// A JSON file, parsed; the test fails naming the file otherwise.
pub fn read_json(path: &Path) -> serde_json::Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Where a layout keeps the blob `sha256:HEX`.
pub fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    layout.join("blobs").join("sha256").join(hex)
}

/// Rewrites a one-image layout as a multi-platform one: index.json names an
/// image index (tagged `tag`) that lists the image for linux/amd64 and a
/// missing linux/arm64 one, as `skopeo copy --all` of a registry image
/// leaves it. Returns the image index's digest.
pub fn nest_in_index(layout: &Path, tag: &str) -> String {
    let index_path = layout.join("index.json");
    let index = read_json(&index_path);
    let mut amd64 = index["manifests"][0].clone();
    amd64
        .as_object_mut()
        .expect("a descriptor")
        .remove("annotations");
    amd64["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
    let mut arm64 = amd64.clone();
    arm64["platform"] = serde_json::json!({"os": "linux", "architecture": "arm64"});
    arm64["digest"] = serde_json::json!(format!("sha256:{}", "0".repeat(64)));
    let nested = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [arm64, amd64],
    });
    let bytes = serde_json::to_vec(&nested).expect("JSON");
    let digest = ingot::digest::Digest::of(&bytes).to_string();
    std::fs::write(blob_path(layout, &digest), &bytes).expect("writing the index blob");
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest,
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(&index_path, serde_json::to_vec(&top).expect("JSON")).expect("index.json");
    digest
}

/// A 64-byte ELF64 header (with no program headers: nothing to run) for `machine` (0x3E x86-64, 0xB7 AArch64): all
/// `file` needs to name the architecture.
pub fn elf_header(machine: u16) -> Vec<u8> {
    let mut h = Vec::with_capacity(64);
    h.extend_from_slice(b"\x7fELF");
    h.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, version 1, SysV
    h.extend_from_slice(&[0; 8]);
    h.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    h.extend_from_slice(&machine.to_le_bytes());
    h.extend_from_slice(&1u32.to_le_bytes()); // e_version
    h.extend_from_slice(&0x40_0000u64.to_le_bytes()); // e_entry
    h.extend_from_slice(&0u64.to_le_bytes()); // e_phoff
    h.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    h.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    h.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    h.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    h.extend_from_slice(&0u16.to_le_bytes()); // e_phnum
    h.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    h.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    h.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    assert_eq!(h.len(), 64);
    h
}

pub const X86_64: u16 = 0x3E;
pub const AARCH64: u16 = 0xB7;
