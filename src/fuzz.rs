//! The fuzz harness's targets: one entry point per parser that reads
//! untrusted bytes, each driving the real reader through the library's
//! public API, plus well-formed seed inputs built here.
//!
//! A target returns `Ok` when the input was accepted and `Err` with the
//! error's message when it was refused: both are fine. Only a panic, a
//! hang or an abort is a finding. The engine that mutates inputs is
//! `examples/fuzz.rs`; `scripts/fuzz` runs it; the inputs that once broke
//! a target are replayed by `tests/fuzz_regressions.rs`.
//!
//! Targets that read files (a layout, a docker archive) write the input
//! into a temporary directory that is removed when the target returns or
//! unwinds; messages name it `<dir>`, so that the same refusal reads the
//! same on every run.

use std::io::{self, Cursor, Read, Write};
use std::path::Path;

use crate::base::docker_archive;
use crate::debian::deb::Deb;
use crate::debian::{index, signed};
use crate::digest::Digest;
use crate::image::Platform;
use crate::image::media::{self, Compression};
use crate::image::reference::{OciRef, Selector};
use crate::layer::read::decoder;
use crate::recipe::Recipe;
use crate::rootfs::View;
use crate::store::cache::FileStat;
use crate::store::stat_index::{Key, SourceFiles, SourceIndex, StatIndex};
use crate::store::{BlobStore, layout};

/// One parser under test.
pub struct Target {
    pub name: &'static str,
    /// Feeds one input to the parser.
    pub run: fn(&[u8]) -> Result<(), String>,
    /// Well-formed inputs, each accepted by `run`. Recipes are seeded
    /// from the repository's own files by the engine instead.
    pub seeds: fn() -> io::Result<Vec<Vec<u8>>>,
}

/// Every target, by name.
pub static TARGETS: &[Target] = &[
    Target {
        name: "recipe",
        run: recipe,
        seeds: recipe_seeds,
    },
    Target {
        name: "layer",
        run: layer,
        seeds: layer_seeds,
    },
    Target {
        name: "layer-gzip",
        run: layer_gzip,
        seeds: layer_gzip_seeds,
    },
    Target {
        name: "docker-archive",
        run: docker_archive_target,
        seeds: docker_archive_seeds,
    },
    Target {
        name: "index",
        run: index_json,
        seeds: index_seeds,
    },
    Target {
        name: "manifest",
        run: manifest,
        seeds: manifest_seeds,
    },
    Target {
        name: "deb",
        run: deb,
        seeds: deb_seeds,
    },
    Target {
        name: "packages-index",
        run: packages_index,
        seeds: packages_seeds,
    },
    Target {
        name: "release",
        run: release,
        seeds: release_seeds,
    },
    Target {
        name: "inrelease",
        run: inrelease,
        seeds: inrelease_seeds,
    },
    Target {
        name: "stat-index",
        run: stat_index,
        seeds: stat_index_seeds,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// A temporary directory; messages that name it are rewritten to `<dir>`.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Result<Scratch, String> {
        tempfile::Builder::new()
            .prefix("ingot-fuzz-")
            .tempdir()
            .map(Scratch)
            .map_err(|e| format!("harness: making a temporary directory: {e}"))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn write(&self, rel: &str, bytes: &[u8]) -> Result<(), String> {
        let path = self.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("harness: {e}"))?;
        }
        std::fs::write(&path, bytes).map_err(|e| format!("harness: writing {rel}: {e}"))
    }

    fn message(&self, e: impl std::fmt::Display) -> String {
        e.to_string()
            .replace(&self.path().display().to_string(), "<dir>")
    }
}

/// Reads all of a file's data, as the real readers' visitors do.
fn drain(_: &crate::rootfs::meta::ImagePath, data: &mut dyn Read) -> io::Result<()> {
    io::copy(data, &mut io::sink()).map(drop)
}

// --- the targets --------------------------------------------------------

/// `Recipe::parse` on the input read as (lossy) UTF-8, in an empty
/// directory.
pub fn recipe(input: &[u8]) -> Result<(), String> {
    let dir = Scratch::new()?;
    let text = String::from_utf8_lossy(input);
    Recipe::parse(&text, Path::new("recipe.yaml"), dir.path().to_path_buf())
        .map(drop)
        .map_err(|e| dir.message(e))
}

/// An uncompressed layer, read into a fresh view and applied to it.
pub fn layer(input: &[u8]) -> Result<(), String> {
    read_layer(input)
}

/// A gzip layer, through the decoder layers are read with.
pub fn layer_gzip(input: &[u8]) -> Result<(), String> {
    let tar = decoder(Compression::Gzip, input).map_err(|e| e.to_string())?;
    read_layer(tar)
}

fn read_layer(tar: impl Read) -> Result<(), String> {
    let mut view = View::new();
    let changes = view.read_tar(tar, &mut drain)?;
    view.apply(changes);
    Ok(())
}

/// A `docker save` tarball, loaded into a blob store.
pub fn docker_archive_target(input: &[u8]) -> Result<(), String> {
    let dir = Scratch::new()?;
    dir.write("archive.tar", input)?;
    let blobs = BlobStore::open(&dir.path().join("store"))
        .map_err(|e| format!("harness: opening the store: {e}"))?;
    docker_archive::load(
        &dir.path().join("archive.tar"),
        &blobs,
        &crate::progress::Progress::quiet(),
    )
    .map(drop)
    .map_err(|e| dir.message(format!("{e:#}")))
}

/// The input as `index.json` of a layout that holds a valid image (and an
/// index of it), opened as its only image.
pub fn index_json(input: &[u8]) -> Result<(), String> {
    let image = Fixture::get();
    let dir = Scratch::new()?;
    image.write_blobs(&dir)?;
    dir.write("index.json", input)?;
    open_layout(&dir)
}

/// The input as the manifest blob of a layout, listed in `index.json` by
/// its real digest and size, beside a valid config.
pub fn manifest(input: &[u8]) -> Result<(), String> {
    let image = Fixture::get();
    let dir = Scratch::new()?;
    image.write_blobs(&dir)?;
    let digest = Digest::of(input);
    dir.write(&format!("blobs/sha256/{}", digest.hex()), input)?;
    dir.write(
        "index.json",
        index_of(media::MANIFEST, &digest, input.len(), None).as_bytes(),
    )?;
    open_layout(&dir)
}

fn open_layout(dir: &Scratch) -> Result<(), String> {
    let reference = OciRef {
        path: dir.path().to_path_buf(),
        selector: Selector::Only,
    };
    layout::open_image(&reference, dir.path(), &Platform::linux_amd64())
        .map(drop)
        .map_err(|e| dir.message(format!("{e:#}")))
}

/// A `.deb`: its control, then its data read over an empty view.
pub fn deb(input: &[u8]) -> Result<(), String> {
    let deb =
        Deb::read("fuzz.deb", Cursor::new(input), input.len() as u64).map_err(|e| e.to_string())?;
    let mut view = View::new();
    let data = deb
        .read_data(&view, &mut drain)
        .map_err(|e| e.to_string())?;
    view.apply(data.changes);
    Ok(())
}

/// A `Packages` index.
pub fn packages_index(input: &[u8]) -> Result<(), String> {
    index::read_packages(Cursor::new(input))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A Release file's text, as it stands inside an InRelease once the
/// signature checks: fuzzed apart, since a mutated InRelease never gets
/// past its signature.
pub fn release(input: &[u8]) -> Result<(), String> {
    index::read_release(Cursor::new(input))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Debian's archive keyring, as the debian12 stemcell pins it.
const DEBIAN_KEYRING: &[u8] =
    include_bytes!("../base-images/debian12/1.0.0/debian-archive-keyring.gpg");

/// An `InRelease`, checked against Debian's keyring; what it signed is
/// read as a `Release` file.
pub fn inrelease(input: &[u8]) -> Result<(), String> {
    let verified = signed::verify_inrelease(input, DEBIAN_KEYRING).map_err(|e| e.to_string())?;
    index::read_release(Cursor::new(&verified.text))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The input as a source directory's stat index file, asked for the
/// digest of its file `a`, seen with [`INDEX_STAT`]: accepted when the
/// index served it, refused when the file was read again. Either way the
/// index file must then load and know `a` (a finding, as a panic, if not).
pub fn stat_index(input: &[u8]) -> Result<(), String> {
    let dir = Scratch::new()?;
    dir.write("a", b"a")?;
    dir.write("src.index", input)?;
    let files = NamedFile("a", dir.path().join("a"));
    let index = SourceIndex::new(dir.path().join("src.index"), dir.path());
    let digests = index
        .digests(&files)
        .map_err(|e| format!("harness: {}", dir.message(e)))?;
    let filed = StatIndex::load(&dir.path().join("src.index")).known(Path::new("a"), &INDEX_STAT);
    let Some(filed) = filed else {
        panic!("the stat index does not know the file it was just asked about");
    };
    if digests != [filed] {
        panic!("the stat index served {digests:?} but files {filed}");
    }
    match filed == Digest::of(b"a") {
        true => Err("read again (or filed with its own digest)".into()),
        false => Ok(()),
    }
}

/// What the `stat-index` target's file `a` is seen as: older than any
/// index file, so never racy.
const INDEX_STAT: FileStat = FileStat {
    size: 1,
    mtime_ns: 1,
    ctime_ns: 1,
    inode: 1,
    dev: 1,
};

// --- fixtures and seeds -------------------------------------------------

/// The blobs of a small valid image: config, manifest, and an index of
/// the manifest for two platforms.
struct Fixture {
    blobs: Vec<(Digest, String)>,
    manifest: String,
    manifest_digest: Digest,
    nested_index: String,
    nested_digest: Digest,
}

impl Fixture {
    fn get() -> &'static Fixture {
        static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
        FIXTURE.get_or_init(Fixture::build)
    }

    fn build() -> Fixture {
        let layer = Digest::of(b"a layer");
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Env":["PATH=/usr/bin"]}},"rootfs":{{"type":"layers","diff_ids":["{}"]}},"history":[{{"created_by":"fuzz"}}]}}"#,
            Digest::of(b"a layer's tar")
        );
        let config_digest = Digest::of(config.as_bytes());
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer}","size":7}}],"annotations":{{"org.opencontainers.image.title":"fuzz"}}}}"#,
            media::MANIFEST,
            media::CONFIG,
            config.len(),
        );
        let manifest_digest = Digest::of(manifest.as_bytes());
        let nested_index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{index}","manifests":[{{"mediaType":"{m}","digest":"{manifest_digest}","size":{n},"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},{{"mediaType":"{m}","digest":"{manifest_digest}","size":{n},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            index = media::INDEX,
            m = media::MANIFEST,
            n = manifest.len(),
        );
        let nested_digest = Digest::of(nested_index.as_bytes());
        Fixture {
            blobs: vec![
                (config_digest, config),
                (manifest_digest, manifest.clone()),
                (nested_digest, nested_index.clone()),
            ],
            manifest,
            manifest_digest,
            nested_index,
            nested_digest,
        }
    }

    fn write_blobs(&self, dir: &Scratch) -> Result<(), String> {
        dir.write("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        for (digest, bytes) in &self.blobs {
            dir.write(&format!("blobs/sha256/{}", digest.hex()), bytes.as_bytes())?;
        }
        Ok(())
    }
}

/// An `index.json` listing one blob, optionally tagged.
fn index_of(media_type: &str, digest: &Digest, size: usize, tag: Option<&str>) -> String {
    let annotations = tag
        .map(|t| format!(r#","annotations":{{"org.opencontainers.image.ref.name":"{t}"}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{media_type}","digest":"{digest}","size":{size}{annotations}}}]}}"#,
        media::INDEX
    )
}

fn recipe_seeds() -> io::Result<Vec<Vec<u8>>> {
    Ok(vec![
        b"name: fuzz\nversion: 1.0.0\nbase: scratch\nlayers:\n  - name: one\n    steps:\n      \
- file: { dest: /etc/x, content: \"x\\n\", mode: \"0644\" }\n      \
- mkdir: { path: /var/lib/x, owner: \"10:10\", mode: \"0750\" }\n      \
- symlink: { path: /etc/y, target: x }\n      \
- user: { name: x, uid: 10, home: /var/lib/x }\n\
config:\n  entrypoint: [/bin/x]\n  env: { A: b }\n"
            .to_vec(),
    ])
}

/// `len key=value\n` records of a PAX extended header (POSIX pax, "pax
/// Header Block"), the length counting itself.
fn pax_records(records: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let body = format!(" {key}={value}\n");
        let mut len = body.len() + 1;
        while body.len() + len.to_string().len() != len {
            len = body.len() + len.to_string().len();
        }
        out.extend_from_slice(format!("{len}{body}").as_bytes());
    }
    out
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// A small layer: a directory, a file, a symlink, a hardlink, long names
/// (GNU `L` and `K` entries), PAX records, a whiteout and an opaque
/// directory.
pub fn layer_tar() -> io::Result<Vec<u8>> {
    use tar::EntryType::{Directory, Link, Regular, Symlink, XHeader};
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header(Directory, 0o755, 0), "etc/", io::empty())?;
    b.append_data(&mut header(Regular, 0o644, 6), "etc/hello", &b"hello\n"[..])?;
    b.append_link(&mut header(Symlink, 0o777, 0), "etc/link", "hello")?;
    b.append_link(&mut header(Link, 0o644, 0), "etc/hard", "etc/hello")?;
    let long = format!("etc/{}", "l".repeat(120));
    b.append_data(&mut header(Regular, 0o600, 5), &long, &b"long\n"[..])?;
    b.append_link(&mut header(Symlink, 0o777, 0), "etc/far", &long)?;
    let pax = pax_records(&[("path", "etc/named-by-pax"), ("mtime", "0"), ("uid", "7")]);
    b.append_data(
        &mut header(XHeader, 0o644, pax.len() as u64),
        "etc/PaxHeaders/x",
        &pax[..],
    )?;
    b.append_data(&mut header(Regular, 0o644, 4), "etc/short", &b"pax\n"[..])?;
    b.append_data(&mut header(Directory, 0o755, 0), "var/", io::empty())?;
    b.append_data(
        &mut header(Regular, 0o644, 0),
        "var/.wh..wh..opq",
        io::empty(),
    )?;
    b.append_data(&mut header(Regular, 0o644, 0), "etc/.wh.gone", io::empty())?;
    b.into_inner()
}

fn gzip(bytes: &[u8]) -> io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes)?;
    e.finish()
}

fn layer_seeds() -> io::Result<Vec<Vec<u8>>> {
    Ok(vec![layer_tar()?])
}

fn layer_gzip_seeds() -> io::Result<Vec<Vec<u8>>> {
    Ok(vec![gzip(&layer_tar()?)?])
}

/// `docker save` tarballs of one layer: the classic layout, and skopeo's
/// (`<hex>.tar` with an `<id>/layer.tar` symlink to it), gzip inside.
fn docker_archive_seeds() -> io::Result<Vec<Vec<u8>>> {
    let layer = layer_tar()?;
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        Digest::of(&layer)
    );
    let config_name = format!("{}.json", Digest::of(config.as_bytes()).hex());
    let archive = |layer_name: &str, files: &[(&str, &[u8])], link: Option<(&str, &str)>| {
        let manifest = format!(
            r#"[{{"Config":"{config_name}","RepoTags":["fuzz:1"],"Layers":["{layer_name}"]}}]"#
        );
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(
            &mut header(tar::EntryType::Regular, 0o644, manifest.len() as u64),
            "manifest.json",
            manifest.as_bytes(),
        )?;
        b.append_data(
            &mut header(tar::EntryType::Regular, 0o644, config.len() as u64),
            &config_name,
            config.as_bytes(),
        )?;
        for (name, data) in files {
            let kind = if name.ends_with('/') {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            };
            b.append_data(&mut header(kind, 0o644, data.len() as u64), name, *data)?;
        }
        if let Some((name, target)) = link {
            b.append_link(&mut header(tar::EntryType::Symlink, 0o777, 0), name, target)?;
        }
        b.into_inner()
    };
    let gz = gzip(&layer)?;
    let hex = Digest::of(&gz).hex();
    Ok(vec![
        archive(
            "0123/layer.tar",
            &[("0123/", b""), ("0123/layer.tar", &layer)],
            None,
        )?,
        archive(
            "0123/layer.tar",
            &[(&format!("{hex}.tar"), &gz)],
            Some(("0123/layer.tar", &format!("../{hex}.tar"))),
        )?,
    ])
}

fn index_seeds() -> io::Result<Vec<Vec<u8>>> {
    let image = Fixture::get();
    Ok(vec![
        index_of(
            media::MANIFEST,
            &image.manifest_digest,
            image.manifest.len(),
            Some("1.0.0"),
        )
        .into_bytes(),
        index_of(
            media::INDEX,
            &image.nested_digest,
            image.nested_index.len(),
            None,
        )
        .into_bytes(),
    ])
}

fn manifest_seeds() -> io::Result<Vec<Vec<u8>>> {
    Ok(vec![Fixture::get().manifest.clone().into_bytes()])
}

/// A tar of `(name, content)` files, names written raw as dpkg-deb writes
/// them (`./usr/bin/x`), a name ending in `/` a directory, `->` a symlink.
fn raw_tar(entries: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for (name, data) in entries {
        let (name, link) = name.split_once(" -> ").unwrap_or((name, ""));
        let kind = match () {
            _ if name.ends_with('/') => tar::EntryType::Directory,
            _ if !link.is_empty() => tar::EntryType::Symlink,
            _ => tar::EntryType::Regular,
        };
        let mut h = header(kind, 0o755, data.len() as u64);
        let too_long = || io::Error::other(format!("{name}: too long for a raw tar name"));
        h.as_old_mut()
            .name
            .get_mut(..name.len())
            .ok_or_else(too_long)?
            .copy_from_slice(name.as_bytes());
        h.as_old_mut()
            .linkname
            .get_mut(..link.len())
            .ok_or_else(too_long)?
            .copy_from_slice(link.as_bytes());
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    Ok(out)
}

/// An `ar` archive (deb(5)'s container) of `(name, content)` members.
fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = b"!<arch>\n".to_vec();
    for (name, data) in members {
        let header = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            0,
            0,
            0,
            100644,
            data.len()
        );
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

/// `.deb`s with plain and gzip members.
fn deb_seeds() -> io::Result<Vec<Vec<u8>>> {
    let control = raw_tar(&[
        ("./", b""),
        (
            "./control",
            b"Package: hello\nVersion: 1:2.10-3+b1\nArchitecture: amd64\n\
Multi-Arch: same\nDepends: libc6 (>= 2.34), libfoo | libbar\nDescription: greets\n Hello.\n .\n More.\n",
        ),
        ("./conffiles", b"/etc/hello.conf\n"),
        (
            "./md5sums",
            b"d41d8cd98f00b204e9800998ecf8427e  etc/hello.conf\n",
        ),
    ])?;
    let data = raw_tar(&[
        ("./", b""),
        ("./etc/", b""),
        ("./etc/hello.conf", b""),
        ("./usr/", b""),
        ("./usr/bin/", b""),
        ("./usr/bin/hello", b"#!/bin/sh\necho hello\n"),
        ("./usr/bin/hi -> hello", b""),
    ])?;
    Ok(vec![
        ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar", &control),
            ("data.tar", &data),
        ]),
        ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", &gzip(&control)?),
            ("_extra", b"skipped"),
            ("data.tar.gz", &gzip(&data)?),
        ]),
    ])
}

fn packages_seeds() -> io::Result<Vec<Vec<u8>>> {
    Ok(vec![
        b"Package: libc6\nSource: glibc\nVersion: 2.36-9+deb12u14\nInstalled-Size: 12993\n\
Architecture: amd64\nMulti-Arch: same\nDepends: libgcc-s1, libcrypt1 (>= 1:4.4.10-10~)\n\
Pre-Depends: dpkg (>= 1.17.0)\nProvides: libc6-x32 (= 2.36), libc-dev\n\
Description: GNU C Library: Shared libraries\n Contains the standard libraries.\n .\n More.\n\
Priority: optional\nFilename: pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb\nSize: 2759320\n\
SHA256: ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf\n\n\
Package: base-files\nVersion: 12.4+deb12u12\nArchitecture: amd64\nEssential: yes\n\
Filename: pool/main/b/base-files/base-files_12.4+deb12u12_amd64.deb\nSize: 70000\n\
SHA256: cb4784740daa9b3b0eaea2b444bbefa686794afbbf3d678d238c1fd9875f2efd\n"
            .to_vec(),
    ])
}

/// Valid `InRelease` files need Debian's key to sign them: the saved
/// corpus holds those.
fn release_seeds() -> io::Result<Vec<Vec<u8>>> {
    let empty = Digest::of(b"");
    let text = format!(
        "Origin: Debian\nSuite: stable\nCodename: bookworm\nDate: Sat, 01 Jan 2000 00:00:00 UTC\n\
         Architectures: amd64 arm64\nComponents: main contrib\nNo-Support-for-Architecture-all: Packages\n\
         Description: Debian 12\nSHA256:\n {hex} 0 main/binary-amd64/Packages\n \
         {hex} 20 main/binary-amd64/Packages.gz\n {hex} 0 contrib/binary-all/Packages\n",
        hex = empty.hex()
    );
    Ok(vec![text.into_bytes()])
}

fn inrelease_seeds() -> io::Result<Vec<Vec<u8>>> {
    Ok(Vec::new())
}

/// An index that serves `a` (with a digest not its content's, so that a
/// read shows), and records around it; written by the index itself.
fn stat_index_seeds() -> io::Result<Vec<Vec<u8>>> {
    let dir = tempfile::tempdir()?;
    let mut seeds = Vec::new();
    for names in [&["a"][..], &["0", "a", "a.b", "a/b", "b"]] {
        let file = dir.path().join("seed.index");
        let _ = std::fs::remove_file(&file);
        let index = SourceIndex::new(file.clone(), dir.path());
        for name in names {
            // Each read and filed with the target's stat, holding "x".
            let host = dir.path().join("host");
            std::fs::write(&host, "x")?;
            index.digests(&NamedFile(name, host))?;
        }
        seeds.push(std::fs::read(&file)?);
    }
    Ok(seeds)
}

/// One file filed as `name`, read from `host`, seen with [`INDEX_STAT`].
struct NamedFile<'a>(&'a str, std::path::PathBuf);

impl SourceFiles for NamedFile<'_> {
    fn count(&self) -> usize {
        1
    }
    fn key(&self, _: usize) -> Key<'_> {
        Key {
            root: b"",
            rel: self.0,
        }
    }
    fn stat(&self, _: usize) -> FileStat {
        INDEX_STAT
    }
    fn host_path(&self, _: usize, path: &mut std::path::PathBuf) {
        path.clone_from(&self.1);
    }
}
