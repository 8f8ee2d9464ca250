//! Bases are never trusted (design.md, "Base references"): each test writes
//! an OCI layout that lies or carries hostile layer entries, builds a recipe
//! on it with `base: oci:../base:t`, and checks the failure contract: exit
//! 1 (2 only when the reference does not resolve), one `error:` line at the
//! recipe's `base` position saying what is wrong, no output, no staging
//! directory, and nothing created outside the temp dir.
//!
//! The layouts are generated here, byte by byte: tar headers are written raw
//! so the tar crate's own path checks cannot tidy up a hostile name.

mod common;

use std::io::Write as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flate2::write::GzEncoder;
use ingot::digest::Digest;
use serde_json::json;
use tar::EntryType;

use common::{ingot, require, run, stderr, stdout};

// ---------------------------------------------------------------------------
// Raw tar entries

/// One tar entry, header bytes written as a hostile layer would.
struct Raw {
    name: Vec<u8>,
    /// The ustar `prefix` field, which readers put before `name`.
    prefix: Vec<u8>,
    kind: EntryType,
    link: Vec<u8>,
    data: Vec<u8>,
    /// The size the header claims, when it is not `data.len()`.
    claimed_size: Option<u64>,
    device: Option<(u32, u32)>,
}

fn raw(name: impl AsRef<[u8]>, kind: EntryType) -> Raw {
    Raw {
        name: name.as_ref().to_vec(),
        prefix: Vec::new(),
        kind,
        link: Vec::new(),
        data: Vec::new(),
        claimed_size: None,
        device: None,
    }
}

fn dir(name: &str) -> Raw {
    raw(name, EntryType::Directory)
}

fn file(name: impl AsRef<[u8]>, data: &[u8]) -> Raw {
    Raw {
        data: data.to_vec(),
        ..raw(name, EntryType::Regular)
    }
}

fn hardlink(name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Raw {
    Raw {
        link: target.as_ref().to_vec(),
        ..raw(name, EntryType::Link)
    }
}

/// A PAX extended header: its records apply to the next entry.
fn pax(key: &str, value: &str) -> Raw {
    let record = |len: usize| format!("{len} {key}={value}\n");
    // The length counts its own digits.
    let mut len = record(0).len();
    while record(len).len() != len {
        len = record(len).len();
    }
    Raw {
        data: record(len).into_bytes(),
        ..raw("PaxHeaders/x", EntryType::XHeader)
    }
}

/// A GNU long name (`GNULongName`) or link name (`GNULongLink`) entry: its
/// data replaces the next entry's name or link target.
fn gnu_long(kind: EntryType, name: &str) -> Raw {
    let mut data = name.as_bytes().to_vec();
    data.push(0);
    Raw {
        data,
        ..raw("././@LongLink", kind)
    }
}

/// An uncompressed layer tar: the entries, then the two zero blocks.
fn tar(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..e.name.len()].copy_from_slice(&e.name);
        h.as_old_mut().linkname[..e.link.len()].copy_from_slice(&e.link);
        h.as_ustar_mut().unwrap().prefix[..e.prefix.len()].copy_from_slice(&e.prefix);
        h.set_entry_type(e.kind);
        h.set_mode(if e.kind.is_dir() { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(e.claimed_size.unwrap_or(e.data.len() as u64));
        if let Some((major, minor)) = e.device {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Bytes that do not compress, so a layer's gzip stream is mostly its
/// content and a cut or a flipped byte lands in the middle of it.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------
// OCI layouts that lie

/// What a generated layout gets wrong. Every lie is about the first layer;
/// the default is an honest layout.
#[derive(Default, Clone, Copy)]
struct Lies {
    /// Rewrites each compressed layer blob; descriptors follow the result,
    /// so only the stream itself is broken.
    mangle: Option<fn(Vec<u8>) -> Vec<u8>>,
    /// Added to the layer descriptor's size.
    layer_size: i64,
    /// The layer descriptor names another digest; the blob is stored under
    /// that name all the same.
    layer_digest: bool,
    /// The config lists another diff_id.
    diff_id: bool,
    /// The manifest's config descriptor names another digest.
    config_digest: bool,
    /// index.json names another digest for the manifest.
    manifest_digest: bool,
}

/// A digest no blob here has.
fn other_digest(what: &str) -> Digest {
    Digest::of(format!("not the real {what}").as_bytes())
}

/// Writes an OCI layout at `dir` with one image tagged `t` made of `layers`
/// (uncompressed tars, bottom first); returns the manifest digest
/// index.json lists.
fn write_layout(dir: &Path, layers: &[Vec<u8>], lies: Lies) -> Digest {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |name: &Digest, bytes: &[u8]| std::fs::write(blobs.join(name.hex()), bytes).unwrap();
    // A blob stored under `claimed` (a lie) or its own digest; its descriptor.
    let store = |media_type: &str, bytes: &[u8], lie: bool, what: &str, size_delta: i64| {
        let name = if lie {
            other_digest(what)
        } else {
            Digest::of(bytes)
        };
        put(&name, bytes);
        json!({
            "mediaType": media_type,
            "digest": name.to_string(),
            "size": bytes.len() as i64 + size_delta,
        })
    };

    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let first = i == 0;
        let mut blob = gzip(layer);
        if let Some(mangle) = lies.mangle {
            blob = mangle(blob);
        }
        descriptors.push(store(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            &blob,
            first && lies.layer_digest,
            "layer",
            if first { lies.layer_size } else { 0 },
        ));
        let diff_id = if first && lies.diff_id {
            other_digest("tar")
        } else {
            Digest::of(layer)
        };
        diff_ids.push(diff_id.to_string());
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config = store(
        "application/vnd.oci.image.config.v1+json",
        &serde_json::to_vec(&config).unwrap(),
        lies.config_digest,
        "config",
        0,
    );
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": descriptors,
    });
    let mut manifest = store(
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
        lies.manifest_digest,
        "manifest",
        0,
    );
    let digest: Digest = manifest["digest"].as_str().unwrap().parse().unwrap();
    manifest["annotations"] = json!({ "org.opencontainers.image.ref.name": "t" });
    manifest["platform"] = json!({ "architecture": "amd64", "os": "linux" });
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest],
    });
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    digest
}

// ---------------------------------------------------------------------------
// The victim recipe and the failure contract

/// A temp dir holding `base/` (the layout), `recipe/recipe.yaml` on it, and
/// room for `out/victim`. Its random name marks planted escape targets.
struct Case {
    tmp: tempfile::TempDir,
}

/// Line of `base:` in the victim recipe.
const BASE_LINE: usize = 3;

impl Case {
    fn new() -> Case {
        let tmp = tempfile::Builder::new()
            .prefix("ingot-hostile-")
            .tempdir()
            .unwrap();
        let case = Case { tmp };
        case.recipe("oci:../base:t");
        case
    }

    /// A case whose base layout is `layers` with `lies`.
    fn with(layers: &[Vec<u8>], lies: Lies) -> Case {
        let case = Case::new();
        case.layout(layers, lies);
        case
    }

    fn layout(&self, layers: &[Vec<u8>], lies: Lies) -> Digest {
        write_layout(&self.base(), layers, lies)
    }

    fn recipe(&self, base: &str) {
        let dir = self.tmp.path().join("recipe");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("recipe.yaml"),
            format!(
                "name: victim\nversion: '1'\nbase: {base}\nlayers:\n  - name: app\n    steps:\n\
                 \x20     - file: {{ dest: /victim, content: \"built\\n\" }}\n"
            ),
        )
        .unwrap();
    }

    fn base(&self) -> PathBuf {
        self.tmp.path().join("base")
    }

    fn recipe_file(&self) -> PathBuf {
        self.tmp.path().join("recipe/recipe.yaml")
    }

    fn out(&self) -> PathBuf {
        self.tmp.path().join("out/victim")
    }

    /// A name unique to this case, for files a hostile layer would create.
    fn marker(&self) -> String {
        let name = self.tmp.path().file_name().unwrap().to_string_lossy();
        format!("escaped-{}", name.trim_start_matches("ingot-hostile-"))
    }

    fn build(&self) -> Output {
        run(ingot()
            .arg("build")
            .arg(self.recipe_file())
            .arg("-o")
            .arg(self.out()))
    }

    /// Builds, checks the failure contract with exit `code`, and returns the
    /// message after the `error: FILE:LINE:COL: ` prefix.
    fn fails(&self, code: i32) -> String {
        let output = self.build();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "stderr: {err}");
        assert!(output.stdout.is_empty(), "stdout: {}", stdout(&output));
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
        let prefix = format!("error: {}:{BASE_LINE}:", self.recipe_file().display());
        let rest = lines[0]
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("error should start with {prefix:?}: {}", lines[0]));
        let (col, message) = rest
            .split_once(": ")
            .unwrap_or_else(|| panic!("no column in {}", lines[0]));
        assert!(
            !col.is_empty() && col.bytes().all(|b| b.is_ascii_digit()),
            "no column in {}",
            lines[0]
        );
        assert!(!self.out().exists(), "output was created");
        assert!(
            !self.tmp.path().join("out").exists(),
            "output parent was created"
        );
        self.assert_no_staging();
        self.assert_nothing_escaped();
        message.to_string()
    }

    /// No staging directory survives a failed build.
    fn assert_no_staging(&self) {
        for entry in walkdir::WalkDir::new(self.tmp.path()) {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy();
            assert!(
                !name.starts_with(".ingot-staging"),
                "left behind: {}",
                entry.path().display()
            );
        }
    }

    /// No file named with this case's marker exists in the temp dir, above
    /// it, in /tmp, /, /etc or where the tests run. ingot never unpacks a
    /// base; this proves it for the names the hostile layers plant.
    fn assert_nothing_escaped(&self) {
        let marker = self.marker();
        for entry in walkdir::WalkDir::new(self.tmp.path()) {
            let entry = entry.unwrap();
            assert!(
                !entry.file_name().to_string_lossy().contains(&marker),
                "created: {}",
                entry.path().display()
            );
        }
        let mut dirs: Vec<PathBuf> = self.tmp.path().ancestors().map(Path::to_path_buf).collect();
        dirs.extend(["/tmp", "/", "/etc"].map(PathBuf::from));
        dirs.push(common::repo());
        if let Some(parent) = common::repo().parent() {
            dirs.push(parent.to_path_buf());
        }
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let entry = entry.unwrap();
                assert!(
                    !entry.file_name().to_string_lossy().contains(&marker),
                    "created outside the temp dir: {}",
                    entry.path().display()
                );
            }
        }
    }
}

/// A harmless start, so hostile entries come in the middle of a layer.
fn prelude() -> Vec<Raw> {
    vec![dir("etc"), file("etc/hostname", b"victim\n")]
}

/// A case whose one base layer is `prelude()` then `hostile(marker)`.
fn hostile_layer(hostile: impl Fn(&str) -> Vec<Raw>) -> Case {
    let case = Case::new();
    let mut entries = prelude();
    entries.extend(hostile(&case.marker()));
    case.layout(&[tar(&entries)], Lies::default());
    case
}

fn assert_mentions(message: &str, needles: &[&str]) {
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in: {message}");
    }
}

// ---------------------------------------------------------------------------
// 1-4: entries that would escape or mislead

#[test]
fn entries_with_dot_dot_are_refused() {
    for name in ["../{m}", "../../{m}", "a/../../{m}", "etc/../../../{m}"] {
        let case = hostile_layer(|m| vec![file(name.replace("{m}", m), b"owned\n")]);
        let message = case.fails(1);
        assert_mentions(&message, &["escapes", &case.marker()]);
    }
}

/// Readers assemble names from more than the header's `name` field: the
/// ustar prefix, PAX `path`/`linkpath` records, GNU long names and links.
/// A `..` hidden in any of them is caught too.
#[test]
fn dot_dot_hidden_in_prefix_pax_or_long_names_is_refused() {
    let cases: [fn(&str) -> Vec<Raw>; 5] = [
        |m| {
            vec![Raw {
                prefix: b"../..".to_vec(),
                ..file(m, b"owned\n")
            }]
        },
        |m| {
            vec![
                pax("path", &format!("../../{m}")),
                file("innocent", b"owned\n"),
            ]
        },
        |m| {
            vec![
                gnu_long(EntryType::GNULongName, &format!("../../{m}")),
                file("innocent", b"owned\n"),
            ]
        },
        |m| {
            vec![
                pax("linkpath", "../../etc/shadow"),
                hardlink(m, "etc/hostname"),
            ]
        },
        |m| {
            vec![
                gnu_long(EntryType::GNULongLink, "../../etc/shadow"),
                hardlink(m, "etc/hostname"),
            ]
        },
    ];
    for hostile in cases {
        let case = hostile_layer(hostile);
        let message = case.fails(1);
        assert_mentions(&message, &["escapes", &case.marker()]);
    }
}

#[test]
fn absolute_entries_are_refused() {
    for name in ["/etc/{m}", "/{m}", "/tmp/{m}"] {
        let case = hostile_layer(|m| vec![file(name.replace("{m}", m), b"owned\n")]);
        let message = case.fails(1);
        assert_mentions(&message, &["absolute", &case.marker()]);
    }
}

#[test]
fn hardlink_out_of_the_image_is_refused() {
    let links_before = std::fs::symlink_metadata("/etc/shadow").map(|m| m.nlink());
    let case = hostile_layer(|m| vec![hardlink(m, "../../etc/shadow")]);
    let message = case.fails(1);
    assert_mentions(&message, &["hardlink", "escapes", "../../etc/shadow"]);
    let links_after = std::fs::symlink_metadata("/etc/shadow").map(|m| m.nlink());
    assert_eq!(
        links_before.ok(),
        links_after.ok(),
        "/etc/shadow gained a link"
    );
}

#[test]
fn hardlink_to_a_missing_target_is_refused() {
    let case = hostile_layer(|m| vec![hardlink(m, "etc/missing")]);
    let message = case.fails(1);
    assert_mentions(&message, &["hardlink", "etc/missing", "does not have"]);
}

#[test]
fn whiteout_of_dot_dot_is_refused() {
    for name in ["etc/.wh...", ".wh...", "./etc/.wh..", "etc/.wh."] {
        let case = hostile_layer(|_| vec![file(name, b"")]);
        let message = case.fails(1);
        assert_mentions(&message, &["whiteout", name]);
    }
}

// ---------------------------------------------------------------------------
// 5-7: layer streams that are not what the config says

#[test]
fn diff_id_mismatch_is_refused() {
    let case = Case::with(
        &[tar(&prelude())],
        Lies {
            diff_id: true,
            ..Lies::default()
        },
    );
    let message = case.fails(1);
    assert_mentions(
        &message,
        &["diff_id mismatch", &other_digest("tar").to_string()],
    );
}

/// A layer whose gzip stream is big enough that a cut or a flipped byte
/// falls inside a file's content.
fn bulky_layer() -> Vec<u8> {
    let mut entries = prelude();
    entries.push(file("etc/noise", &noise(256 << 10)));
    entries.push(file("etc/after", b"after\n"));
    tar(&entries)
}

#[test]
fn truncated_gzip_layer_is_refused() {
    let case = Case::with(
        &[bulky_layer()],
        Lies {
            mangle: Some(|mut blob| {
                blob.truncate(blob.len() / 2);
                blob
            }),
            ..Lies::default()
        },
    );
    let message = case.fails(1);
    assert_mentions(&message, &["corrupt"]);
    assert!(
        ["truncated", "incomplete", "unexpected end"]
            .iter()
            .any(|w| message.contains(w)),
        "should say the stream is cut short: {message}"
    );
}

#[test]
fn corrupt_gzip_stream_is_refused() {
    let case = Case::with(
        &[bulky_layer()],
        Lies {
            mangle: Some(|mut blob| {
                let middle = blob.len() / 2;
                blob[middle] ^= 0x55;
                blob
            }),
            ..Lies::default()
        },
    );
    let message = case.fails(1);
    // The flipped byte is in stored (incompressible) data: only the gzip
    // trailer's CRC can tell.
    assert_mentions(&message, &["corrupt", "checksum"]);
}

#[test]
fn absurd_entry_size_is_refused() {
    let case = hostile_layer(|m| {
        vec![Raw {
            claimed_size: Some(1 << 50),
            ..file(m, b"")
        }]
    });
    let message = case.fails(1);
    assert_mentions(&message, &["claims", &(1u64 << 50).to_string()]);
}

// ---------------------------------------------------------------------------
// 8-9: descriptors that lie

#[test]
fn layer_size_that_lies_is_refused() {
    for delta in [-1, 1, 4096] {
        let case = Case::with(
            &[tar(&prelude())],
            Lies {
                layer_size: delta,
                ..Lies::default()
            },
        );
        let message = case.fails(1);
        assert_mentions(&message, &["size mismatch"]);
    }
}

#[test]
fn layer_digest_that_lies_is_refused() {
    let case = Case::with(
        &[tar(&prelude())],
        Lies {
            layer_digest: true,
            ..Lies::default()
        },
    );
    let message = case.fails(1);
    assert_mentions(
        &message,
        &["digest mismatch", &other_digest("layer").to_string()],
    );
}

#[test]
fn config_digest_that_lies_is_refused() {
    let case = Case::with(
        &[tar(&prelude())],
        Lies {
            config_digest: true,
            ..Lies::default()
        },
    );
    let message = case.fails(1);
    assert_mentions(
        &message,
        &["digest mismatch", &other_digest("config").to_string()],
    );
}

#[test]
fn manifest_digest_that_lies_in_the_index_is_refused() {
    let case = Case::with(
        &[tar(&prelude())],
        Lies {
            manifest_digest: true,
            ..Lies::default()
        },
    );
    let message = case.fails(1);
    assert_mentions(
        &message,
        &["digest mismatch", &other_digest("manifest").to_string()],
    );
}

/// A hostile entry in an upper base layer is caught as well as in the first.
#[test]
fn hostile_entry_in_an_upper_layer_is_refused() {
    let case = Case::new();
    let marker = case.marker();
    case.layout(
        &[
            tar(&prelude()),
            tar(&[file(format!("../../{marker}"), b"owned\n")]),
        ],
        Lies::default(),
    );
    let message = case.fails(1);
    assert_mentions(&message, &["escapes", &marker]);
}

// ---------------------------------------------------------------------------
// 10: special files in a base are kept

fn is_root() -> bool {
    let probe = tempfile::NamedTempFile::new().unwrap();
    probe.as_file().metadata().unwrap().uid() == 0
}

#[test]
fn devices_and_fifos_in_a_base_are_kept() {
    let case = Case::new();
    case.layout(
        &[tar(&[
            dir("dev"),
            Raw {
                device: Some((1, 3)),
                ..raw("dev/null", EntryType::Char)
            },
            raw("dev/initctl", EntryType::Fifo),
        ])],
        Lies::default(),
    );
    let digest = common::build(&case.recipe_file(), &case.out());
    assert!(digest.starts_with("sha256:"));
    case.assert_no_staging();
    if !is_root() {
        // Only root can make device nodes; the build itself is the point.
        return;
    }
    require("umoci");
    let bundle = case.tmp.path().join("bundle");
    let out = run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:1", case.out().display()))
        .arg(&bundle));
    assert!(out.status.success(), "umoci unpack: {}", stderr(&out));
    let root = bundle.join("rootfs");
    let null = std::fs::symlink_metadata(root.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device(), "{null:?}");
    assert_eq!(null.rdev(), libc_makedev(1, 3));
    let fifo = std::fs::symlink_metadata(root.join("dev/initctl")).unwrap();
    assert!(fifo.file_type().is_fifo(), "{fifo:?}");
    assert_eq!(
        std::fs::read_to_string(root.join("victim")).unwrap(),
        "built\n"
    );
}

/// Linux's `makedev` for small numbers, as `st_rdev` encodes them.
fn libc_makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfff) << 8) | (minor & 0xff) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
}

// ---------------------------------------------------------------------------
// 11: references that do not resolve

#[test]
fn base_by_digest_builds() {
    let case = Case::new();
    let manifest = case.layout(&[tar(&prelude())], Lies::default());
    case.recipe(&format!("oci:../base@{manifest}"));
    common::build(&case.recipe_file(), &case.out());
}

#[test]
fn base_by_digest_of_a_missing_blob_is_a_recipe_error() {
    let case = Case::new();
    case.layout(&[tar(&prelude())], Lies::default());
    let missing = other_digest("anything");
    case.recipe(&format!("oci:../base@{missing}"));
    let message = case.fails(2);
    assert_mentions(&message, &[&missing.to_string()]);
}

/// The digest form reaches blobs index.json does not list; such a blob is
/// checked against the digest that names it.
#[test]
fn base_by_digest_of_a_blob_that_lies_is_refused() {
    let case = Case::new();
    let manifest = case.layout(&[tar(&prelude())], Lies::default());
    let claimed = other_digest("unlisted manifest");
    let blobs = case.base().join("blobs/sha256");
    std::fs::copy(blobs.join(manifest.hex()), blobs.join(claimed.hex())).unwrap();
    case.recipe(&format!("oci:../base@{claimed}"));
    let message = case.fails(1);
    assert_mentions(&message, &["digest mismatch", &claimed.to_string()]);
}

#[test]
fn missing_tag_is_a_recipe_error() {
    let case = Case::new();
    case.layout(&[tar(&prelude())], Lies::default());
    case.recipe("oci:../base:nope");
    let message = case.fails(2);
    assert_mentions(&message, &["nope"]);
}

#[test]
fn missing_layout_is_a_recipe_error() {
    let case = Case::new();
    let message = case.fails(2);
    assert_mentions(&message, &["not an OCI image layout"]);
}

// ---------------------------------------------------------------------------
// Odd but harmless entries

/// The config of the image tagged `tag` in the layout at `dir`.
fn config_of(dir: &Path, tag: &str) -> serde_json::Value {
    let read = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
    };
    let blob = |d: &serde_json::Value| {
        let hex = d.as_str().unwrap().strip_prefix("sha256:").unwrap();
        dir.join("blobs/sha256").join(hex)
    };
    let index = read(dir.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let manifest = read(blob(&entry["digest"]));
    read(blob(&manifest["config"]["digest"]))
}

/// design.md rule 6: "Bases keep their entries as they are (raw bytes
/// included)". A Latin-1 name cannot escape anything; the base layer is
/// carried into the image unchanged.
#[test]

fn non_utf8_names_in_a_base_are_kept() {
    let case = Case::new();
    let layer = tar(&[
        dir("etc"),
        file(b"etc/caf\xe9", b"latin-1\n"),
        hardlink(b"etc/caf\xe9-link", b"etc/caf\xe9"),
    ]);
    case.layout(std::slice::from_ref(&layer), Lies::default());
    common::build(&case.recipe_file(), &case.out());
    let config = config_of(&case.out(), "1");
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        Digest::of(&layer).to_string()
    );
}
