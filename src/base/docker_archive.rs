//! `docker-archive:PATH` bases: a `docker save` tarball, read without
//! trusting it and without extracting it (design.md, "Base references").
//!
//! This module owns reading that format, in both of its layouts:
//! - classic: `manifest.json` names `<hex>.json` as the config and
//!   `<id>/layer.tar` or `<hex>.tar` as layers (skopeo's docker-archive
//!   writes the latter, with `<id>/layer.tar` symlinks beside them);
//! - OCI-style (Docker ≥ 25): the same `manifest.json`, naming
//!   `blobs/sha256/<hex>` files, beside an `index.json` we do not need.
//!
//! The format has no manifest digest and no blob sizes, so trust comes
//! through the config: its sha256 must be the hex its file is named after,
//! and each layer's uncompressed sha256 must be the config's diff_id at the
//! same position. Layers may be plain, gzip or zstd tars (told apart by
//! magic bytes, since nothing declares it); each is streamed once through
//! decompression, the diff_id hash and ingot's block gzip into the blob
//! store, so the stored blob depends only on the tar bytes (rule 8) and the
//! base keeps its identity, the config digest, whatever the archive's
//! compression was.
//!
//! The I/O edge is thin: one pass over the tar headers builds an index of
//! names to byte ranges (the archive lists entries in any order), then the
//! JSON files and layers are read from their ranges. Everything else is a
//! pure function of bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use oci_spec::image::{Descriptor, ImageConfiguration, MediaType};

use super::BaseImage;
use crate::digest::{Digest, HashingReader};
use crate::error::{BlobError, Error, IoContext, Within, tar_message};
use crate::image::config::{diff_ids, platform_of};
use crate::image::media::Compression;
use crate::image::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use crate::layer::bounds;
use crate::layer::gzip::BlockGzWriter;
use crate::layer::read::decoder;
use crate::progress::Progress;
use crate::store::file::{self, Links, human_size};
use crate::store::{BlobRef, BlobStore, BlobWriter};

/// Symlinks followed from a name to its file, at most: `docker save` and
/// skopeo use one level.
const MAX_LINKS: usize = 8;

/// Loads the image in the `docker save` tarball `archive`, verifying its
/// config against its name and every layer against the config's diff_ids,
/// and stores its layers, re-encoded with ingot's block gzip, in `blobs`.
///
/// Nothing is committed to `blobs` unless every layer verified. Errors
/// start with the base's name and count layers from 1, bottom first. The
/// layers' bytes read are reported to `progress`.
pub fn load(
    archive: &Path,
    blobs: &BlobStore,
    progress: &Progress,
) -> crate::error::Result<BaseImage> {
    base_image(archive, blobs, progress).map(|(base, _)| base)
}

/// [`load`], with the config's bytes stored in `blobs` as well, for readers
/// that pass the image on (an export keeps the config byte for byte, so
/// the image keeps its ID). Returns where the config is.
pub fn load_keeping_config(
    archive: &Path,
    blobs: &BlobStore,
    progress: &Progress,
) -> crate::error::Result<(BaseImage, BlobRef)> {
    let (base, config_bytes) = base_image(archive, blobs, progress)?;
    let config_blob = blobs
        .put(&config_bytes)
        .context(|| format!("{}: storing the config", base.name))?;
    Ok((base, config_blob))
}

/// The base, and its config's bytes.
fn base_image(
    archive: &Path,
    blobs: &BlobStore,
    progress: &Progress,
) -> crate::error::Result<(BaseImage, Vec<u8>)> {
    let name = format!("docker-archive:{}", archive.display());
    progress.start(&format!("reading {name}"), 0);
    let loaded = load_verified(archive, blobs, progress).within(|| name.clone());
    progress.finish();
    let (config, config_bytes, layers) = loaded?;
    let base = BaseImage {
        name,
        manifest_digest: None,
        config_digest: Some(Digest::of(&config_bytes)),
        platform: platform_of(&config),
        config,
        layers,
    };
    Ok((base, config_bytes))
}

/// The config, its bytes as the archive holds them, and the layers as
/// stored in `blobs`.
fn load_verified(
    archive: &Path,
    blobs: &BlobStore,
    progress: &Progress,
) -> crate::error::Result<(ImageConfiguration, Vec<u8>, Vec<Descriptor>)> {
    // A regular file (a symlink to one is followed): a FIFO or a device
    // is refused at once, never waited on or read without end. A path
    // that names no archive it can open is the user's to fix (exit 2), as
    // a layout that is not there is.
    let file = file::open_regular(archive, Links::Follow)
        .map_err(|e| Error::Usage(format!("opening: {e}")))?;
    let index = scan(&file).map_err(Error::Failed)?;

    // Both are read whole into memory: `manifest.json` within a
    // manifest's bound, the config within a config's.
    let manifest =
        read_json_file(&file, &index, "manifest.json", MAX_MANIFEST_SIZE).map_err(Error::Failed)?;
    let image =
        parse_manifest(&manifest).map_err(|e| Error::Failed(format!("manifest.json: {e}")))?;

    let config_bytes =
        read_json_file(&file, &index, &image.config, MAX_CONFIG_SIZE).map_err(Error::Failed)?;
    let config = verify_config(&image.config, &config_bytes)?;
    let layers =
        load_layers(&file, &index, &image, &config, blobs, progress).map_err(Error::Failed)?;
    Ok((config, config_bytes, layers))
}

/// The layers `image` lists, each checked against the config's diff_id at
/// its position and stored re-encoded; nothing is stored unless all are.
fn load_layers(
    file: &File,
    index: &Index,
    image: &ArchivedImage,
    config: &ImageConfiguration,
    blobs: &BlobStore,
    progress: &Progress,
) -> Result<Vec<Descriptor>, String> {
    let expected = diff_ids(config).map_err(|e| format!("config {}: {e}", image.config))?;
    if expected.len() != image.layers.len() {
        return Err(format!(
            "manifest.json lists {} layers but config {} has {} diff_ids",
            image.layers.len(),
            image.config,
            expected.len()
        ));
    }

    // Every layer is found before any is read: a missing one fails fast.
    let spans = image
        .layers
        .iter()
        .enumerate()
        .map(|(i, path)| {
            index
                .resolve(path)
                .map_err(|e| format!("layer {} ({path}): {e}", i + 1))
        })
        .collect::<Result<Vec<_>, _>>()?;

    progress.add_total(spans.iter().map(|s| s.size).sum());
    // Blobs stay uncommitted until all layers verified, so a bad layer
    // leaves nothing in the store (a dropped BlobWriter removes its file).
    // The cost is one open temp file per layer until then.
    let mut written = Vec::with_capacity(spans.len());
    for (i, (span, diff_id)) in spans.iter().zip(&expected).enumerate() {
        let path = &image.layers[i];
        let raw = section(file, *span).map_err(|e| format!("reading {path}: {e}"))?;
        let counted = Counted {
            inner: raw,
            progress,
        };
        let writer = reencode(BufReader::with_capacity(CHUNK, counted), diff_id, blobs)
            .map_err(|e| format!("layer {} ({path}): {e}", i + 1))?;
        written.push(writer);
    }
    written
        .into_iter()
        .map(|w| {
            let blob = w
                .commit()
                .map_err(|e| format!("storing a layer blob: {e}"))?;
            Ok(Descriptor::new(
                MediaType::ImageLayerGzip,
                blob.size,
                blob.digest.to_oci(),
            ))
        })
        .collect()
}

/// A layer's bytes as they are read, counted as progress: re-encoding a
/// large archive takes long enough to need it.
struct Counted<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Where a regular file's bytes lie in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    offset: u64,
    size: u64,
}

/// What a name in the archive is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    File(Span),
    /// A symlink or hard link, its target already a normalized name.
    Link(String),
    /// A directory or anything else: never a file we read.
    Other,
}

/// The archive's names, normalized, and what each is.
#[derive(Debug, Default)]
struct Index {
    entries: BTreeMap<String, Kind>,
}

impl Index {
    /// Records `name`; a name listed twice is refused, since which copy a
    /// reader sees would depend on the reader.
    fn insert(&mut self, name: String, kind: Kind) -> Result<(), String> {
        if self.entries.contains_key(&name) {
            return Err(format!("{name} appears twice in the archive"));
        }
        self.entries.insert(name, kind);
        Ok(())
    }

    /// The byte range of the regular file `name` names, following links.
    /// The error does not repeat `name`: the caller says what it was.
    fn resolve(&self, name: &str) -> Result<Span, String> {
        let mut current = name;
        for _ in 0..=MAX_LINKS {
            let via = |what: &str| {
                if current == name {
                    what.to_string()
                } else {
                    format!("links to {current}, which is {what}")
                }
            };
            match self.entries.get(current) {
                Some(Kind::File(span)) => return Ok(*span),
                Some(Kind::Link(target)) => current = target,
                Some(Kind::Other) => return Err(via("not a regular file")),
                None => return Err(via("not in the archive")),
            }
        }
        Err(format!("more than {MAX_LINKS} levels of links"))
    }
}

/// The one pass over the whole archive: reads every header (seeking over
/// the data) and indexes names to byte ranges.
fn scan(file: &File) -> Result<Index, String> {
    let len = file
        .metadata()
        .map_err(|e| format!("reading metadata: {e}"))?
        .len();
    // The guard follows the seeks over each file's data, and refuses
    // extension headers and entry counts past their bounds.
    let mut archive = tar::Archive::new(bounds::Guard::new(file));
    let mut index = Index::default();
    let entries = archive
        .entries_with_seek()
        .map_err(|e| format!("reading the archive: {}", tar_message(&e)))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading the archive: {}", tar_message(&e)))?;
        bounds::names(&entry).map_err(|e| format!("reading the archive: {e}"))?;
        let name = archive_name(&entry.path_bytes())?;
        let kind = match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let span = Span {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                };
                // A truncated archive ends early without an error from the
                // tar reader: the last file's range runs past the end.
                if span
                    .offset
                    .checked_add(span.size)
                    .is_none_or(|end| end > len)
                {
                    return Err(format!("{name}: the archive is truncated"));
                }
                Kind::File(span)
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default();
                Kind::Link(symlink_target(&name, &target)?)
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default();
                Kind::Link(archive_name(&target).map_err(|e| format!("{name}: hard link to {e}"))?)
            }
            _ => Kind::Other,
        };
        // `./` names the archive's root; some tars list it.
        if name.is_empty() {
            continue;
        }
        index.insert(name, kind)?;
    }
    Ok(index)
}

/// An archive entry's name, normalized: relative, `/`-separated, without
/// `.` components or a trailing `/`. `..` and absolute names are refused:
/// the archive is not trusted, and names like these are how an archive
/// reaches outside itself.
fn archive_name(raw: &[u8]) -> Result<String, String> {
    let shown = String::from_utf8_lossy(raw);
    let name =
        std::str::from_utf8(raw).map_err(|_| format!("entry name {shown:?} is not UTF-8"))?;
    if name.starts_with('/') {
        return Err(format!("entry name {name:?} is absolute"));
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("entry name {name:?} contains \"..\"")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Where the symlink `link` (a normalized name) points, as a normalized
/// name: resolved against the link's directory, as skopeo's
/// `<id>/layer.tar -> ../<hex>.tar` is, and never outside the archive.
fn symlink_target(link: &str, target: &[u8]) -> Result<String, String> {
    let shown = String::from_utf8_lossy(target);
    let target = std::str::from_utf8(target)
        .map_err(|_| format!("{link}: link target {shown:?} is not UTF-8"))?;
    if target.starts_with('/') {
        return Err(format!("{link}: link target {target:?} is absolute"));
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!(
                        "{link}: link target {target:?} points outside the archive"
                    ));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The one image a docker-archive base holds, its paths normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ArchivedImage {
    config: String,
    layers: Vec<String>,
}

/// Parses `manifest.json`, which must list exactly one image: a base is one
/// image, and picking one of several by position would be a guess.
fn parse_manifest(bytes: &[u8]) -> Result<ArchivedImage, String> {
    // Docker's fields; others (RepoTags, LayerSources, Parent) are ignored.
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Item {
        config: String,
        #[serde(default)]
        layers: Vec<String>,
    }
    let items: Vec<Item> = serde_json::from_slice(bytes).map_err(|e| format!("invalid: {e}"))?;
    let [item] = <[Item; 1]>::try_from(items).map_err(|items| {
        format!(
            "lists {} images; a docker-archive base must hold exactly one",
            items.len()
        )
    })?;
    Ok(ArchivedImage {
        config: archive_name(item.config.as_bytes())?,
        layers: item
            .layers
            .iter()
            .map(|l| archive_name(l.as_bytes()))
            .collect::<Result<_, _>>()?,
    })
}

/// The digest a config's file name claims: `<hex>.json` (classic) or
/// `blobs/sha256/<hex>` (OCI-style). A name without one cannot be verified,
/// so it is refused.
fn named_digest(path: &str) -> Result<Digest, String> {
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    let hex = match file.strip_suffix(".json") {
        Some(hex) => hex,
        None if dir == "sha256" || dir.ends_with("/sha256") => file,
        None => "",
    };
    format!("sha256:{hex}").parse().map_err(|_| {
        format!("config {path}: its name does not carry a sha256 digest (<hex>.json or blobs/sha256/<hex>)")
    })
}

/// Checks the config's bytes against the digest its name claims, then
/// parses it. The config is content-addressed like a blob, and a mismatch
/// is a blob's digest mismatch.
fn verify_config(path: &str, bytes: &[u8]) -> crate::error::Result<ImageConfiguration> {
    let expected = named_digest(path).map_err(Error::Failed)?;
    let found = Digest::of(bytes);
    if found != expected {
        return Err(Error::Blob(BlobError::DigestMismatch { expected, found })
            .within(format!("config {path}")));
    }
    serde_json::from_slice(bytes).map_err(|e| Error::Failed(format!("config {path}: invalid: {e}")))
}

/// The compression a layer's first bytes announce; anything without a
/// gzip or zstd magic number is taken as a plain tar, which the diff_id
/// check then vouches for.
fn sniff(magic: &[u8]) -> Compression {
    match magic {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    }
}

fn describe(c: Compression) -> &'static str {
    match c {
        Compression::None => "tar",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

/// Read and write granularity of layer streaming.
const CHUNK: usize = 64 * 1024;

/// Streams one archived layer through decompression, the diff_id hash and
/// ingot's block gzip into a new blob, and checks the diff_id. The blob is
/// returned uncommitted: the caller commits it once the whole image
/// verified, or drops it.
fn reencode(
    mut raw: impl Read,
    expected: &Digest,
    blobs: &BlobStore,
) -> Result<BlobWriter, String> {
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut raw, &mut magic).map_err(|e| format!("reading: {e}"))?;
    let compression = sniff(&magic[..n]);
    let what = describe(compression);
    let head = io::Cursor::new(magic).take(n as u64);
    let decoder = decoder(compression, head.chain(raw))
        .map_err(|e| format!("opening the {what} stream: {e}"))?;
    let mut tar = HashingReader::new(decoder);

    let blob = blobs
        .writer()
        .map_err(|e| format!("creating a layer blob: {e}"))?;
    let mut gz = BlockGzWriter::new(blob);
    let mut buf = vec![0u8; CHUNK];
    loop {
        // Read and write errors are told apart: one is the archive's
        // fault, the other the store's.
        let n = match tar.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("corrupt or truncated {what} stream: {e}")),
        };
        gz.write_all(&buf[..n])
            .map_err(|e| format!("writing a layer blob: {e}"))?;
    }
    let blob = gz
        .finish()
        .map_err(|e| format!("writing a layer blob: {e}"))?;
    let (found, _) = tar.finish();
    if found != *expected {
        return Err(format!(
            "diff_id mismatch: expected {expected}, found {found}"
        ));
    }
    Ok(blob)
}

/// Fills `buf` as far as the stream allows; fewer bytes only at its end.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The bytes of the archived file `span` covers.
fn section(file: &File, span: Span) -> io::Result<io::Take<&File>> {
    let mut f = file;
    f.seek(SeekFrom::Start(span.offset))?;
    Ok(f.take(span.size))
}

/// Reads the small JSON file `name` whole, refusing one over `limit` bytes
/// before reading it.
fn read_json_file(file: &File, index: &Index, name: &str, limit: u64) -> Result<Vec<u8>, String> {
    let span = index.resolve(name).map_err(|e| format!("{name}: {e}"))?;
    if span.size > limit {
        return Err(format!(
            "{name} is {} bytes, larger than the limit of {}",
            span.size,
            human_size(limit)
        ));
    }
    // The size is at most `limit`, so it fits in memory and in a usize.
    let mut bytes = Vec::with_capacity(span.size as usize);
    section(file, span)
        .and_then(|mut r| r.read_to_end(&mut bytes))
        .map_err(|e| format!("reading {name}: {e}"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A small layer tar: what a layer's diff_id is the digest of.
    fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// gzip as another tool writes it: not ingot's block gzip.
    fn foreign_gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn zstd(bytes: &[u8]) -> Vec<u8> {
        zstd::encode_all(bytes, 3).unwrap()
    }

    /// What ingot stores for a layer whose tar is `tar`.
    fn block_gzip(tar: &[u8]) -> Vec<u8> {
        let mut w = BlockGzWriter::new(Vec::new());
        w.write_all(tar).unwrap();
        w.finish().unwrap()
    }

    /// One entry of a test archive.
    #[derive(Clone)]
    enum Item {
        File(String, Vec<u8>),
        Symlink(String, String),
        /// A regular file whose name is written as is, unchecked.
        Raw(Vec<u8>, Vec<u8>),
    }

    fn file(name: &str, data: impl Into<Vec<u8>>) -> Item {
        Item::File(name.to_string(), data.into())
    }

    fn tar_of(items: &[Item]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for item in items {
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_mtime(0);
            match item {
                Item::File(name, data) => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, name, &data[..]).unwrap();
                }
                Item::Symlink(name, target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, name, target).unwrap();
                }
                Item::Raw(name, data) => {
                    // The tar crate refuses `..` and absolute names; a
                    // hostile archive is not written with it.
                    let mut h = tar::Header::new_old();
                    h.as_old_mut().name[..name.len()].copy_from_slice(name);
                    h.set_size(data.len() as u64);
                    h.set_mode(0o644);
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_cksum();
                    b.append(&h, &data[..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[derive(Clone, Copy)]
    enum Style {
        Classic,
        Oci,
    }

    fn config_json(diff_ids: &[Digest]) -> Vec<u8> {
        let ids: Vec<String> = diff_ids.iter().map(|d| d.to_string()).collect();
        serde_json::to_vec(&json!({
            "architecture": "arm64",
            "variant": "v8",
            "os": "linux",
            "config": { "Env": ["PATH=/bin"], "ExposedPorts": { "80/tcp": {} } },
            "rootfs": { "type": "layers", "diff_ids": ids },
            "docker_version": "28.2.2",
        }))
        .unwrap()
    }

    /// The entries `docker save` writes for an image whose layers are
    /// stored as `stored` and whose config declares `diff_ids`, with
    /// manifest.json first (Docker writes it last: order must not matter).
    fn saved(style: Style, stored: &[Vec<u8>], diff_ids: &[Digest]) -> Vec<Item> {
        let config = config_json(diff_ids);
        saved_with_config(style, stored, config)
    }

    fn saved_with_config(style: Style, stored: &[Vec<u8>], config: Vec<u8>) -> Vec<Item> {
        let hex = Digest::of(&config).hex();
        let (config_name, layer_names): (String, Vec<String>) = match style {
            Style::Classic => (
                format!("{hex}.json"),
                (0..stored.len())
                    .map(|i| format!("{}/layer.tar", Digest::of(&[i as u8]).hex()))
                    .collect(),
            ),
            Style::Oci => (
                format!("blobs/sha256/{hex}"),
                stored
                    .iter()
                    .map(|l| format!("blobs/sha256/{}", Digest::of(l).hex()))
                    .collect(),
            ),
        };
        let manifest = json!([{
            "Config": config_name,
            "RepoTags": ["example:1"],
            "Layers": layer_names,
        }]);
        let mut items = vec![
            file("manifest.json", serde_json::to_vec(&manifest).unwrap()),
            file(&config_name, config),
        ];
        items.extend(
            layer_names
                .iter()
                .zip(stored)
                .map(|(name, data)| file(name, data.clone())),
        );
        if let Style::Oci = style {
            items.push(file("oci-layout", r#"{"imageLayoutVersion":"1.0.0"}"#));
            items.push(file("index.json", r#"{"schemaVersion":2,"manifests":[]}"#));
        }
        items
    }

    /// Writes `items` as an archive and loads it into a fresh store.
    struct Loaded {
        result: Result<BaseImage, String>,
        /// The error, typed, when the load failed.
        typed: Option<Error>,
        blobs: BlobStore,
        dir: tempfile::TempDir,
    }

    fn load_bytes(archive: &[u8]) -> Loaded {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image.tar");
        std::fs::write(&path, archive).unwrap();
        let blobs = BlobStore::open(&dir.path().join("layout")).unwrap();
        let (result, typed) = match load(&path, &blobs, &Progress::quiet()) {
            Ok(base) => (Ok(base), None),
            Err(e) => (Err(e.to_string()), Some(e)),
        };
        Loaded {
            result,
            typed,
            blobs,
            dir,
        }
    }

    fn load_items(items: &[Item]) -> Loaded {
        load_bytes(&tar_of(items))
    }

    impl Loaded {
        fn blob_count(&self) -> usize {
            std::fs::read_dir(self.dir.path().join("layout/blobs/sha256"))
                .unwrap()
                .count()
        }

        fn error(self) -> String {
            let count = self.blob_count();
            let err = self.result.expect_err("the archive was accepted");
            assert_eq!(count, 0, "a failed load left blobs behind: {err}");
            err
        }
    }

    fn two_layers() -> (Vec<u8>, Vec<u8>, Vec<Digest>) {
        let a = layer_tar(&[("etc/a", b"one")]);
        let b = layer_tar(&[("etc/b", b"two"), ("srv/c", b"three")]);
        let ids = vec![Digest::of(&a), Digest::of(&b)];
        (a, b, ids)
    }

    /// Checks a loaded base against the layer tars it was made from.
    fn assert_loaded(loaded: &Loaded, tars: &[&[u8]]) -> BaseImage {
        let base = loaded.result.clone().unwrap();
        assert!(base.name.starts_with("docker-archive:"), "{}", base.name);
        assert!(base.name.ends_with("image.tar"), "{}", base.name);
        assert_eq!(base.manifest_digest, None);
        assert_eq!(base.platform.to_string(), "linux/arm64/v8");
        assert_eq!(
            base.config.config().as_ref().unwrap().env().as_deref(),
            Some(&["PATH=/bin".to_string()][..])
        );
        assert_eq!(base.layers.len(), tars.len());
        for (desc, tar) in base.layers.iter().zip(tars) {
            assert_eq!(desc.media_type(), &MediaType::ImageLayerGzip);
            assert_eq!(
                desc.media_type().to_string(),
                "application/vnd.oci.image.layer.v1.tar+gzip"
            );
            let expected = block_gzip(tar);
            assert_eq!(desc.digest(), &Digest::of(&expected).to_oci());
            assert_eq!(desc.size(), expected.len() as u64);
            let digest = Digest::try_from(desc.digest()).unwrap();
            assert_eq!(std::fs::read(loaded.blobs.path(&digest)).unwrap(), expected);
        }
        assert_eq!(
            loaded.blob_count(),
            tars.len(),
            "only the layers are stored"
        );
        base
    }

    #[test]
    fn loads_a_classic_archive_with_plain_and_gzip_layers() {
        let (a, b, ids) = two_layers();
        let loaded = load_items(&saved(Style::Classic, &[a.clone(), foreign_gzip(&b)], &ids));
        assert_loaded(&loaded, &[&a, &b]);
    }

    #[test]
    fn loads_an_oci_style_archive_with_zstd_and_plain_layers() {
        let (a, b, ids) = two_layers();
        let loaded = load_items(&saved(Style::Oci, &[zstd(&a), b.clone()], &ids));
        assert_loaded(&loaded, &[&a, &b]);
    }

    #[test]
    fn follows_skopeo_style_layer_symlinks() {
        // skopeo writes `<hex>.tar` and a `<id>/layer.tar` symlink to it.
        let (a, b, ids) = two_layers();
        let mut items = saved(Style::Classic, &[a.clone(), b.clone()], &ids);
        for item in &mut items {
            let link = match item {
                Item::File(name, _) => name
                    .strip_suffix("/layer.tar")
                    .map(|id| Item::Symlink(name.clone(), format!("../{id}.tar"))),
                _ => None,
            };
            if let Some(link) = link {
                *item = link;
            }
        }
        for (i, data) in [&a, &b].iter().enumerate() {
            let id = Digest::of(&[i as u8]).hex();
            items.push(file(&format!("{id}.tar"), (*data).clone()));
        }
        assert_loaded(&load_items(&items), &[&a, &b]);
    }

    #[test]
    fn the_stored_blob_depends_only_on_the_tar_bytes() {
        let (a, _, _) = two_layers();
        let ids = [Digest::of(&a)];
        let digests: Vec<_> = [a.clone(), foreign_gzip(&a), zstd(&a)]
            .into_iter()
            .map(|stored| {
                let loaded = load_items(&saved(Style::Classic, &[stored], &ids));
                loaded.result.unwrap().layers[0].digest().clone()
            })
            .collect();
        assert_eq!(digests[0], digests[1]);
        assert_eq!(digests[0], digests[2]);
    }

    #[test]
    fn refuses_a_config_that_is_not_what_its_name_says() {
        let (a, b, ids) = two_layers();
        let mut items = saved(Style::Classic, &[a, b], &ids);
        let Item::File(name, data) = &mut items[1] else {
            unreachable!()
        };
        let named = Digest::of(data);
        data.push(b' ');
        let (name, found) = (name.clone(), Digest::of(data));
        let mut loaded = load_items(&items);
        let typed = loaded.typed.take();
        let err = loaded.error();
        assert!(
            err.contains(&format!(
                "config {name}: blob {named}: digest mismatch: the content hashes to {found}"
            )),
            "{err}"
        );
        // The mismatch stays a blob error under the names it is met on.
        let mut typed = typed.as_ref();
        while let Some(Error::Within { source, .. }) = typed {
            typed = Some(source);
        }
        assert!(
            matches!(typed, Some(Error::Blob(BlobError::DigestMismatch { expected, found: f }))
                if *expected == named && *f == found),
            "{typed:?}"
        );
    }

    #[test]
    fn refuses_a_layer_whose_diff_id_differs_from_the_config() {
        let (a, b, mut ids) = two_layers();
        let other = Digest::of(b"not this layer");
        ids[1] = other;
        let items = saved(Style::Oci, &[a, foreign_gzip(&b)], &ids);
        let err = load_items(&items).error();
        let name = format!("blobs/sha256/{}", Digest::of(&foreign_gzip(&b)).hex());
        assert!(
            err.contains(&format!(
                "layer 2 ({name}): diff_id mismatch: expected {other}, found {}",
                Digest::of(&b)
            )),
            "{err}"
        );
        // The first layer verified, but the image did not: nothing stored
        // (checked by `error`).
    }

    #[test]
    fn refuses_a_layer_count_that_differs_from_the_config() {
        let (a, b, ids) = two_layers();
        let err = load_items(&saved(Style::Classic, &[a, b], &ids[..1])).error();
        assert!(
            err.contains("manifest.json lists 2 layers but config") && err.contains("1 diff_ids"),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_missing_layer_file() {
        let (a, b, ids) = two_layers();
        let mut items = saved(Style::Classic, &[a, b], &ids);
        let Some(Item::File(name, _)) = items.pop() else {
            unreachable!()
        };
        let err = load_items(&items).error();
        assert!(
            err.contains(&format!("layer 2 ({name}): not in the archive")),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_dangling_layer_symlink() {
        let (a, b, ids) = two_layers();
        let mut items = saved(Style::Classic, &[a, b], &ids);
        let Some(Item::File(name, _)) = items.pop() else {
            unreachable!()
        };
        items.push(Item::Symlink(name.clone(), "../gone.tar".into()));
        let err = load_items(&items).error();
        assert!(
            err.contains(&format!(
                "layer 2 ({name}): links to gone.tar, which is not in the archive"
            )),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_missing_manifest() {
        let (a, b, ids) = two_layers();
        let items = saved(Style::Classic, &[a, b], &ids);
        let err = load_items(&items[1..]).error();
        assert!(err.contains("manifest.json: not in the archive"), "{err}");
    }

    #[test]
    fn refuses_entry_names_that_leave_the_archive() {
        let (a, b, ids) = two_layers();
        for (bad, says) in [
            (&b"../evil"[..], "contains \"..\""),
            (b"x/../../evil", "contains \"..\""),
            (b"/etc/passwd", "is absolute"),
        ] {
            let mut items = saved(Style::Classic, &[a.clone(), b.clone()], &ids);
            items.push(Item::Raw(bad.to_vec(), b"x".to_vec()));
            let err = load_items(&items).error();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn refuses_a_symlink_out_of_the_archive() {
        let (a, b, ids) = two_layers();
        let mut items = saved(Style::Classic, &[a, b], &ids);
        items.push(Item::Symlink(
            "x/layer.tar".into(),
            "../../etc/passwd".into(),
        ));
        let err = load_items(&items).error();
        assert!(err.contains("points outside the archive"), "{err}");
    }

    #[test]
    fn refuses_a_name_listed_twice() {
        let (a, b, ids) = two_layers();
        let mut items = saved(Style::Classic, &[a, b], &ids);
        items.push(file("./manifest.json", "[]"));
        let err = load_items(&items).error();
        assert!(err.contains("manifest.json appears twice"), "{err}");
    }

    #[test]
    fn refuses_anything_but_exactly_one_image() {
        let (a, b, ids) = two_layers();
        let mut items = saved(Style::Classic, &[a, b], &ids);
        let Item::File(_, manifest) = &items[0] else {
            unreachable!()
        };
        let mut list: Vec<serde_json::Value> = serde_json::from_slice(manifest).unwrap();
        list.push(list[0].clone());
        for (images, n) in [(list.clone(), 2), (vec![], 0)] {
            items[0] = file("manifest.json", serde_json::to_vec(&images).unwrap());
            let err = load_items(&items).error();
            assert!(
                err.contains(&format!(
                    "manifest.json: lists {n} images; a docker-archive base must hold exactly one"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn refuses_a_truncated_compressed_layer() {
        let (a, b, ids) = two_layers();
        for (stored, what) in [(foreign_gzip(&b), "gzip"), (zstd(&b), "zstd")] {
            let cut = stored[..stored.len() / 2].to_vec();
            let err = load_items(&saved(Style::Classic, &[a.clone(), cut], &ids)).error();
            assert!(
                err.contains("layer 2 (")
                    && err.contains(&format!("corrupt or truncated {what} stream")),
                "{err}"
            );
        }
    }

    #[test]
    fn refuses_a_truncated_archive() {
        let (a, b, ids) = two_layers();
        let archive = tar_of(&saved(Style::Classic, &[a, b.clone()], &ids));
        // Cut inside the last layer's data (the archive ends with two zero
        // blocks after it).
        let cut = &archive[..archive.len() - 1024 - b.len() / 2];
        let err = load_bytes(cut).error();
        assert!(err.contains("the archive is truncated"), "{err}");
    }

    /// Issue 14: a long name claiming gigabytes is refused at its header,
    /// before the tar reader takes it in; a long name within the bounds
    /// still names a file.
    #[test]
    fn refuses_a_long_name_past_its_bound() {
        let (a, b, ids) = two_layers();
        let mut archive = tar_of(&saved(Style::Classic, &[a, b], &ids));
        archive.truncate(archive.len() - 1024);
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(3 << 30);
        h.set_cksum();
        archive.extend_from_slice(h.as_bytes());
        archive.extend(vec![b'a'; 1 << 16]);
        let err = load_bytes(&archive).error();
        assert!(
            err.ends_with(
                "reading the archive: a GNU long name of 3221225472 bytes (limit 1048576)"
            ),
            "{err}"
        );
    }

    #[test]
    fn refuses_json_over_the_size_cap() {
        let (a, b, ids) = two_layers();
        let mut items = saved(Style::Classic, &[a, b], &ids);
        items[0] = file("manifest.json", vec![b' '; MAX_MANIFEST_SIZE as usize + 1]);
        let err = load_items(&items).error();
        assert!(
            err.contains(&format!(
                "manifest.json is {} bytes, larger than the limit of 4 MiB",
                MAX_MANIFEST_SIZE + 1
            )),
            "{err}"
        );
    }

    #[test]
    fn refuses_a_config_name_without_a_digest() {
        let (a, _, _) = two_layers();
        let ids = [Digest::of(&a)];
        let config = config_json(&ids);
        let manifest = json!([{ "Config": "config.json", "Layers": ["l.tar"] }]);
        let items = [
            file("manifest.json", serde_json::to_vec(&manifest).unwrap()),
            file("config.json", config),
            file("l.tar", a),
        ];
        let err = load_items(&items).error();
        assert!(
            err.contains("config config.json: its name does not carry"),
            "{err}"
        );
    }

    #[test]
    fn names_are_normalized_or_refused() {
        assert_eq!(archive_name(b"./a//b/").unwrap(), "a/b");
        assert_eq!(archive_name(b"./").unwrap(), "");
        assert!(archive_name(b"a/../b").is_err());
        assert!(archive_name(b"/a").is_err());
        assert!(archive_name(b"\xff").is_err());
        assert_eq!(
            symlink_target("id/layer.tar", b"../x.tar").unwrap(),
            "x.tar"
        );
        assert_eq!(symlink_target("a/b/c", b"./d").unwrap(), "a/b/d");
        assert!(symlink_target("id/layer.tar", b"../../x").is_err());
        assert!(symlink_target("id/layer.tar", b"/x").is_err());
    }

    #[test]
    fn config_names_carry_their_digest() {
        let d = Digest::of(b"c");
        assert_eq!(named_digest(&format!("{}.json", d.hex())), Ok(d));
        assert_eq!(named_digest(&format!("blobs/sha256/{}", d.hex())), Ok(d));
        for bad in [
            d.hex(),
            format!("blobs/sha512/{}", d.hex()),
            format!("{}.json", d.hex().to_uppercase()),
            "config.json".to_string(),
        ] {
            assert!(named_digest(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compression_is_told_by_magic_bytes() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(sniff(b"etc/"), Compression::None);
        assert_eq!(sniff(&[0x1f]), Compression::None);
        assert_eq!(sniff(&[]), Compression::None);
    }
}
