//! `ingot export`: an image, from a layout, a docker-archive or a
//! registry ([`source::open`]), written as a `docker save` tarball, the classic layout `docker load`, `podman load` and skopeo's
//! `docker-archive:` read. It is the mirror image of
//! `base::docker_archive`, which reads the format.
//!
//! The archive holds, in this order:
//! - `manifest.json`: `[{"Config","RepoTags","Layers"}]`;
//! - `repositories`: `{"NAME":{"TAG":"<top layer id>"}}`, only with a
//!   RepoTag (the pre-manifest.json format, which older tools still read);
//! - `<config hex>.json`: the config blob's bytes unchanged, so its name is
//!   still its digest and the loaded image keeps its ID;
//! - for each distinct layer, `<diff_id hex>/` and `<diff_id hex>/layer.tar`:
//!   the layer uncompressed, since the format has no way to say a layer is
//!   compressed and a loader checks the tar's sha256 against the diff_id.
//!
//! The per-layer `VERSION` and `json` files of Docker's v1 format are left
//! out: only a loader that finds no `manifest.json` (Docker < 1.10) needs
//! them.
//!
//! The bytes are a function of the image and the RepoTags alone: entries
//! in the order above, ustar headers, mtime 0, uid and gid 0, no user or
//! group names, modes 0644 and 0755, and a PAX header only for a layer over
//! 8 GiB, whose size ustar cannot hold.
//!
//! Nothing read is trusted: every blob goes through the verified reader. A
//! tar header carries its size before the data, so each layer is read
//! twice, streaming, with bounded memory: first to check it against its
//! blob digest and diff_id and learn its size, then while it is written,
//! checked again. The archive is written to a temp file beside the output
//! and renamed over it only when complete.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::str::FromStr;

use oci_spec::image::Descriptor;

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, ExportError, LayerError, Result, Within};
use crate::image::config::diff_ids;
use crate::image::reference::{ImageRef, split_host, valid_host, valid_repository, valid_tag};
use crate::image::{PlatformChoice, annotation};
use crate::layer::read::{self as layer_read, LayerReader};
use crate::registry::{Access, Progress};
use crate::store::BlobStore;
use crate::store::layout::replace_file_with;

use super::source::{self, Source};

/// A `RepoTags` entry: the Docker reference `NAME:TAG` a loader tags the
/// image with, checked against the distribution reference grammar because
/// `docker load` refuses the whole archive over one bad name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoTag {
    name: String,
    tag: String,
}

impl FromStr for RepoTag {
    type Err = String;

    fn from_str(s: &str) -> Result<RepoTag, String> {
        let bad = |why: &str| format!("{s:?} is not a NAME:TAG image reference: {why}");
        // The tag follows the last ':' unless that ':' is a registry port.
        let (name, tag) = s
            .rsplit_once(':')
            .filter(|(_, t)| !t.contains('/'))
            .ok_or_else(|| bad("the tag is missing"))?;
        if !valid_tag(tag) {
            return Err(bad(&format!("{tag:?} is not a valid tag")));
        }
        valid_name(name).map_err(|e| bad(&e))?;
        Ok(RepoTag {
            name: name.to_string(),
            tag: tag.to_string(),
        })
    }
}

impl fmt::Display for RepoTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.tag)
    }
}

/// The distribution reference grammar for a repository name: an optional
/// registry host, told apart as Docker does ([`split_host`]), then
/// lowercase path components. At most 255 characters.
fn valid_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 {
        return Err("the name must have 1 to 255 characters".into());
    }
    let (host, path) = split_host(name);
    if let Some(host) = host.filter(|h| !valid_host(h)) {
        return Err(format!("{host:?} is not a valid registry host"));
    }
    if !valid_repository(path) {
        return Err(format!(
            "{path:?} is not lowercase letters and digits joined by '.', '_', '__' or '-', in '/'-separated components"
        ));
    }
    Ok(())
}

/// The RepoTag an image names itself by when none is given: its
/// `org.opencontainers.image.title` and the tag it has in the layout.
/// `Ok(None)` when it has no title or no tag; an error says why a title
/// and tag that are there make no valid reference.
pub fn default_repo_tag(
    title: Option<&str>,
    tag: Option<&str>,
) -> std::result::Result<Option<RepoTag>, String> {
    match (title, tag) {
        (Some(title), Some(tag)) => format!("{title}:{tag}").parse().map(Some),
        _ => Ok(None),
    }
}

/// What `ingot export` writes, and where.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub image: &'a ImageRef,
    pub platform: &'a PlatformChoice,
    /// How to reach a registry, for a `docker://` image.
    pub access: &'a Access,
    pub progress: &'a Progress,
    /// Overrides the RepoTag the image names itself by.
    pub repo_tag: Option<RepoTag>,
    pub output: &'a Path,
}

/// The `--json` report: the file written and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub file: String,
    pub size: u64,
    /// The archive's sha256, in hex, as `sha256sum` prints it.
    pub sha256: String,
    pub repo_tags: Vec<String>,
}

/// The crate error of a failed export: a write error names the file,
/// others the image.
fn export_error(e: ExportError, image: &ImageRef, output: &Path) -> Error {
    match e {
        ExportError::Write(source) => Error::Io {
            context: if output == Path::new("-") {
                "writing to stdout".to_string()
            } else {
                format!("writing {}", output.display())
            },
            source,
        },
        other => Error::Export {
            image: image.to_string(),
            source: Box::new(other),
        },
    }
}

/// Exports `request.image` as a docker-archive at `request.output`.
/// `log` gets one line per layer checked and one for the file written.
pub fn export(request: &Request, log: &mut dyn FnMut(&str)) -> Result<Report> {
    let (image, output) = (request.image, request.output);
    check_output(output)?;
    let prepared = prepare(request, log)?;
    let blobs = &prepared.source.blobs;
    let (digest, size) = replace_file_with(output, |out| {
        let mut out = HashingWriter::new(out);
        write_archive(&prepared.entries, &prepared.layers, blobs, &mut out)
            .map_err(|e| export_error(e, image, output))?;
        let (digest, size, _) = out.finish();
        Ok((digest, size))
    })?;
    log(&format!(
        "wrote {} ({size} bytes, {digest})",
        output.display()
    ));
    Ok(prepared.report(output.display().to_string(), size, digest))
}

/// Exports `request.image` as a docker-archive streamed to `out` (stdout,
/// for `-o -`); `request.output` names it in messages. Every layer is
/// checked before the first byte is written, and again as it streams: a
/// layout that changes meanwhile stops the stream short of the tar's end,
/// so a loader refuses it.
pub fn export_to(
    request: &Request,
    out: &mut dyn Write,
    log: &mut dyn FnMut(&str),
) -> Result<Report> {
    let (image, output) = (request.image, request.output);
    let prepared = prepare(request, log)?;
    let mut out = HashingWriter::new(out);
    write_archive(
        &prepared.entries,
        &prepared.layers,
        &prepared.source.blobs,
        &mut out,
    )
    .and_then(|()| out.flush().map_err(ExportError::Write))
    .map_err(|e| export_error(e, image, output))?;
    let (digest, size, _) = out.finish();
    log(&format!(
        "wrote the archive to stdout ({size} bytes, {digest})"
    ));
    Ok(prepared.report(output.display().to_string(), size, digest))
}

/// An export checked and planned, ready to write.
struct Prepared {
    entries: Vec<Entry>,
    layers: Vec<Layer>,
    repo_tags: Vec<RepoTag>,
    /// The image, whose blobs the layers are (its temp store, for a
    /// docker-archive or a registry, lives as long as it).
    source: Source,
}

impl Prepared {
    fn report(&self, file: String, size: u64, digest: Digest) -> Report {
        Report {
            file,
            size,
            sha256: digest.hex(),
            repo_tags: self.repo_tags.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Opens the image, checks every layer and plans the archive's entries.
fn prepare(request: &Request, log: &mut dyn FnMut(&str)) -> Result<Prepared> {
    let (image, output) = (request.image, request.output);
    let source = source::open(image, request.platform, request.access, request.progress)?;
    let repo_tags = match &request.repo_tag {
        Some(t) => vec![t.clone()],
        None => own_repo_tag(&source, log),
    };
    let config_blob = source.config_blob;
    let config = source
        .blobs
        .read(&config_blob)
        .within(|| format!("{image}: reading the config"))?;
    let ids = diff_ids(&source.config).map_err(|m| Error::Failed(format!("{image}: {m}")))?;
    let layers = measure_layers(&source, ids, log).map_err(|e| export_error(e, image, output))?;
    let entries = entries(&config, &config_blob.digest, &layers, &repo_tags)?;
    Ok(Prepared {
        entries,
        layers,
        repo_tags,
        source,
    })
}

/// Refuses an output that cannot be written before any layer is read,
/// which may take a while.
fn check_output(output: &Path) -> Result<()> {
    if output.is_dir() {
        return Err(Error::Usage(format!(
            "{} is a directory; -o names the archive file to write",
            output.display()
        )));
    }
    match output.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) if !dir.is_dir() => Err(Error::Usage(format!(
            "{}: no such directory for the archive",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// The RepoTags an image names itself by ([`default_repo_tag`]): none,
/// with a note on stderr, when its title and tag make no reference.
fn own_repo_tag(source: &Source, log: &mut dyn FnMut(&str)) -> Vec<RepoTag> {
    let title = source.annotations().and_then(|a| a.get(annotation::TITLE));
    match default_repo_tag(title.map(String::as_str), source.tag.as_deref()) {
        Ok(tag) => tag.into_iter().collect(),
        Err(e) => {
            log(&format!("no RepoTags (name one with --tag): {e}"));
            Vec::new()
        }
    }
}

/// The first pass: every layer read through and checked, and its
/// uncompressed size learnt, before the output is created.
fn measure_layers(
    source: &Source,
    ids: Vec<Digest>,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<Layer>, ExportError> {
    let total = ids.len();
    let blobs = &source.blobs;
    // source::open checked that the layers and the config's diff_ids
    // count the same.
    let pairs = source.layers.iter().zip(ids);
    let mut layers = Vec::with_capacity(total);
    for (i, (desc, diff_id)) in pairs.enumerate() {
        let size = measure(blobs, desc, &diff_id)?;
        log(&format!(
            "layer {}/{total}: {diff_id}, {size} bytes uncompressed",
            i + 1
        ));
        layers.push(Layer {
            desc: desc.clone(),
            diff_id,
            size,
        });
    }
    Ok(layers)
}

/// A layer as the archive holds it: the blob it comes from, its diff_id
/// (its name in the archive) and its uncompressed size.
#[derive(Debug, Clone)]
struct Layer {
    desc: Descriptor,
    diff_id: Digest,
    size: u64,
}

/// Reads layer `desc` through, checking its blob digest and size and its
/// diff_id; returns its uncompressed size.
fn measure(blobs: &BlobStore, desc: &Descriptor, diff_id: &Digest) -> Result<u64, LayerError> {
    let mut tar = layer_read::open(blobs, desc)?;
    let size = match io::copy(&mut tar, &mut io::sink()) {
        Ok(n) => n,
        Err(e) => return Err(broken(tar, e)),
    };
    tar.finish(diff_id)?;
    Ok(size)
}

/// Why a layer stream broke, from the reader, which drains the blob to
/// its end and checks it: a flipped bit in a compressed blob usually shows
/// first as a decoding error, and the blob's digest mismatch says more
/// plainly what is wrong.
fn broken(tar: LayerReader, e: io::Error) -> LayerError {
    let layer = tar.digest();
    match tar.diff_id() {
        Err(cause) => cause,
        // The reader keeps every error it gave; were one to slip by, the
        // stream still did not decode.
        Ok(_) => LayerError::Decode { layer, source: e },
    }
}

/// Why a copy stopped: the source's fault or the destination's.
#[derive(Debug)]
enum Pump {
    Read(io::Error),
    Write(io::Error),
}

/// Read and write granularity of layer streaming.
const CHUNK: usize = 64 * 1024;

/// Copies at most `limit` bytes of `from` into `to`, returning how many.
fn pump(from: &mut impl Read, to: &mut impl Write, limit: u64) -> Result<u64, Pump> {
    let mut buf = vec![0u8; CHUNK];
    let mut copied = 0u64;
    while copied < limit {
        let want = usize::try_from(limit - copied).map_or(CHUNK, |l| l.min(CHUNK));
        let n = match from.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Pump::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(Pump::Write)?;
        copied += n as u64;
    }
    Ok(copied)
}

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir(String),
    File(String, Vec<u8>),
    /// `layers[index]`, streamed from its blob.
    Layer {
        name: String,
        index: usize,
    },
}

/// The archive's entries, in order: a pure function of the config, the
/// layers and the RepoTags.
fn entries(
    config: &[u8],
    config_digest: &Digest,
    layers: &[Layer],
    repo_tags: &[RepoTag],
) -> Result<Vec<Entry>> {
    let config_name = format!("{}.json", config_digest.hex());
    let layer_path = |l: &Layer| format!("{}/layer.tar", l.diff_id.hex());
    let manifest = manifest_json(
        &config_name,
        repo_tags,
        &layers.iter().map(layer_path).collect::<Vec<_>>(),
    )?;
    let mut out = vec![Entry::File("manifest.json".into(), manifest)];
    if let Some(top) = layers.last()
        && let Some(repositories) = repositories_json(repo_tags, &top.diff_id.hex())?
    {
        out.push(Entry::File("repositories".into(), repositories));
    }
    out.push(Entry::File(config_name, config.to_vec()));
    // A layer listed twice (two identical layers) is stored once: the
    // manifest names the same file twice, and a name appearing twice in a
    // tar is ambiguous.
    let mut seen = std::collections::BTreeSet::new();
    for (index, layer) in layers.iter().enumerate() {
        if seen.insert(layer.diff_id) {
            out.push(Entry::Dir(format!("{}/", layer.diff_id.hex())));
            out.push(Entry::Layer {
                name: layer_path(layer),
                index,
            });
        }
    }
    Ok(out)
}

/// `manifest.json`, with Docker's field names and order.
fn manifest_json(config: &str, repo_tags: &[RepoTag], layers: &[String]) -> Result<Vec<u8>> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Item<'a> {
        config: &'a str,
        repo_tags: Vec<String>,
        layers: &'a [String],
    }
    let item = Item {
        config,
        repo_tags: repo_tags.iter().map(ToString::to_string).collect(),
        layers,
    };
    serde_json::to_vec(&[item]).map_err(|e| Error::Failed(format!("encoding manifest.json: {e}")))
}

/// `repositories`: each RepoTag's name and tag mapping to the top layer's
/// id, in sorted order; none without a RepoTag.
fn repositories_json(repo_tags: &[RepoTag], top: &str) -> Result<Option<Vec<u8>>> {
    if repo_tags.is_empty() {
        return Ok(None);
    }
    let mut repos: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for t in repo_tags {
        repos.entry(&t.name).or_default().insert(&t.tag, top);
    }
    serde_json::to_vec(&repos)
        .map(Some)
        .map_err(|e| Error::Failed(format!("encoding repositories: {e}")))
}

/// Writes `entries` as a tar to `out`, streaming layers from `blobs` and
/// checking each against its size and diff_id again as it goes.
fn write_archive(
    entries: &[Entry],
    layers: &[Layer],
    blobs: &BlobStore,
    out: &mut impl Write,
) -> Result<(), ExportError> {
    for entry in entries {
        match entry {
            Entry::Dir(name) => out
                .write_all(&header(name, tar::EntryType::Directory, 0))
                .map_err(ExportError::Write)?,
            Entry::File(name, bytes) => {
                let size = bytes.len() as u64;
                out.write_all(&header(name, tar::EntryType::Regular, size))
                    .and_then(|()| out.write_all(bytes))
                    .and_then(|()| out.write_all(padding(size)))
                    .map_err(ExportError::Write)?;
            }
            Entry::Layer { name, index } => {
                let layer = &layers[*index];
                out.write_all(&header(name, tar::EntryType::Regular, layer.size))
                    .map_err(ExportError::Write)?;
                stream_layer(layer, blobs, out)?;
                out.write_all(padding(layer.size))
                    .map_err(ExportError::Write)?;
            }
        }
    }
    // The end of an archive: two zero blocks.
    out.write_all(&[0; 2 * BLOCK]).map_err(ExportError::Write)
}

/// Writes exactly `layer.size` bytes of the layer's tar to `out` and checks
/// the whole stream against the blob and the diff_id once more: the first
/// pass vouched for what the file held then, not now.
fn stream_layer(layer: &Layer, blobs: &BlobStore, out: &mut impl Write) -> Result<(), ExportError> {
    let mut tar = layer_read::open(blobs, &layer.desc)?;
    let copied = match pump(&mut tar, out, layer.size) {
        Ok(n) => n,
        Err(Pump::Read(e)) => return Err(broken(tar, e).into()),
        Err(Pump::Write(e)) => return Err(ExportError::Write(e)),
    };
    // What is left must be nothing; the header already promised the size.
    let rest = match io::copy(&mut tar, &mut io::sink()) {
        Ok(n) => n,
        Err(e) => return Err(broken(tar, e).into()),
    };
    if copied + rest != layer.size {
        return Err(ExportError::Changed {
            diff_id: layer.diff_id,
            expected: layer.size,
            found: copied + rest,
        });
    }
    Ok(tar.finish(&layer.diff_id)?)
}

const BLOCK: usize = 512;

/// The largest size ustar's 11 octal digits hold (8 GiB - 1).
const USTAR_MAX_SIZE: u64 = 0o77_777_777_777;

/// The zeros that pad `size` bytes of data to a whole block.
fn padding(size: u64) -> &'static [u8] {
    const ZEROS: [u8; BLOCK] = [0; BLOCK];
    let rest = (size % BLOCK as u64) as usize;
    &ZEROS[..(BLOCK - rest) % BLOCK]
}

/// The header block(s) for an entry: one ustar block, preceded by a PAX
/// extended header carrying the size when ustar cannot.
///
/// `name` is always one of this module's names (a hex digest and a short
/// suffix, under 100 bytes), so it fits ustar's name field.
fn header(name: &str, kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 * BLOCK);
    let ustar_size = if size > USTAR_MAX_SIZE {
        let record = pax_record("size", &size.to_string());
        let pax_name = match name.rsplit_once('/') {
            Some((dir, file)) => format!("{dir}/PaxHeaders.0/{file}"),
            None => format!("PaxHeaders.0/{name}"),
        };
        let len = record.len() as u64;
        out.extend_from_slice(&ustar_block(&pax_name, tar::EntryType::XHeader, len));
        out.extend_from_slice(record.as_bytes());
        out.extend_from_slice(padding(len));
        // Readers take the size from the PAX record; ustar's field is
        // left at 0, as Go's archive/tar does.
        0
    } else {
        size
    };
    out.extend_from_slice(&ustar_block(name, kind, ustar_size));
    out
}

/// One ustar header block with the fixed metadata every entry gets.
fn ustar_block(name: &str, kind: tar::EntryType, size: u64) -> [u8; BLOCK] {
    let mut h = tar::Header::new_ustar();
    let field = &mut h.as_old_mut().name;
    assert!(name.len() <= field.len(), "archive name {name} too long");
    field[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    h.set_uid(0);
    h.set_gid(0);
    // The archive's own times say nothing about the image (its config has
    // `created`); 0 keeps the bytes a function of the content alone, with
    // no optional, free-form field to parse.
    h.set_mtime(0);
    h.set_size(size);
    h.set_cksum();
    *h.as_bytes()
}

/// A PAX extended header record, `"<len> <key>=<value>\n"`, whose length
/// counts its own digits (POSIX pax, "pax Extended Header").
fn pax_record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len();
    loop {
        let total = len.to_string().len() + body.len();
        if total == len {
            return format!("{len}{body}");
        }
        len = total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::BlobError;
    use crate::layer::{self, Content, EntryKind};
    use oci_spec::image::MediaType;

    fn tag(s: &str) -> RepoTag {
        s.parse().unwrap()
    }

    #[test]
    fn repo_tags_follow_the_reference_grammar() {
        for ok in [
            "hello:1.2.0",
            "library/hello:latest",
            "localhost/hello:1",
            "localhost:5000/team/hello:1",
            "registry.example.com/a.b/c__d-e--f:_x",
            "[::1]:5000/x:1",
            "[::1]/x:1",
        ] {
            assert_eq!(tag(ok).to_string(), ok);
        }
        for (bad, says) in [
            ("hello", "the tag is missing"),
            ("localhost:5000/hello", "the tag is missing"),
            ("Hello:1", "is not lowercase"),
            ("hello:.1", "not a valid tag"),
            ("a..b:1", "is not lowercase"),
            ("a___b:1", "is not lowercase"),
            ("-a:1", "is not lowercase"),
            ("a//b:1", "is not lowercase"),
            ("bad_host.com:x/a:1", "not a valid registry host"),
            ("host:99999/x:1", "not a valid registry host"),
            ("host:0/x:1", "not a valid registry host"),
            ("[::1/x:1", "not a valid registry host"),
            (":1", "1 to 255"),
            ("hello@sha256:1", "is not lowercase"),
        ] {
            let err = bad.parse::<RepoTag>().unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        let long = format!("{}:1", "a".repeat(256));
        assert!(long.parse::<RepoTag>().is_err());
    }

    #[test]
    fn the_default_repo_tag_is_title_and_tag() {
        assert_eq!(
            default_repo_tag(Some("hello"), Some("1.2.0")),
            Ok(Some(tag("hello:1.2.0")))
        );
        assert_eq!(default_repo_tag(Some("hello"), None), Ok(None));
        assert_eq!(default_repo_tag(None, Some("1")), Ok(None));
        assert!(default_repo_tag(Some("Hello World"), Some("1")).is_err());
    }

    #[test]
    fn pax_records_count_their_own_length() {
        assert_eq!(pax_record("size", "1"), "9 size=1\n");
        // 8 + 1 digit is 9, but "10" takes two: the length grows to 11.
        let r = pax_record("size", "12345678901");
        assert_eq!(r, "20 size=12345678901\n");
        assert_eq!(r.len(), 20);
        let r = pax_record("k", &"v".repeat(95));
        assert_eq!(r.len().to_string(), r.split(' ').next().unwrap());
    }

    #[test]
    fn padding_fills_the_last_block() {
        assert_eq!(padding(0).len(), 0);
        assert_eq!(padding(1).len(), 511);
        assert_eq!(padding(512).len(), 0);
        assert_eq!(padding(513).len(), 511);
    }

    #[test]
    fn headers_are_plain_ustar_with_fixed_metadata() {
        let bytes = header("abc/layer.tar", tar::EntryType::Regular, 1000);
        assert_eq!(bytes.len(), BLOCK);
        let h = tar::Header::from_byte_slice(&bytes);
        assert!(h.as_ustar().is_some());
        assert_eq!(h.path_bytes().as_ref(), b"abc/layer.tar");
        assert_eq!(h.size().unwrap(), 1000);
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        assert_eq!(h.mtime().unwrap(), 0);
        assert_eq!(h.username_bytes(), Some(&b""[..]));
        assert_eq!(h.groupname_bytes(), Some(&b""[..]));
        assert_eq!(h.cksum().unwrap(), {
            let mut c = h.clone();
            c.set_cksum();
            c.cksum().unwrap()
        });
        let dir = header("abc/", tar::EntryType::Directory, 0);
        let d = tar::Header::from_byte_slice(&dir);
        assert_eq!(
            (d.mode().unwrap(), d.entry_type()),
            (0o755, tar::EntryType::Directory)
        );
    }

    #[test]
    fn a_size_ustar_cannot_hold_goes_in_a_pax_record() {
        let size = USTAR_MAX_SIZE + 1;
        let mut bytes = header("abc/layer.tar", tar::EntryType::Regular, size);
        assert_eq!(bytes.len(), 3 * BLOCK);
        // A tar reader sees one entry of that size (its data is not there,
        // so only the header is read).
        bytes.extend_from_slice(&[0; BLOCK]);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut entries = archive.entries().unwrap();
        let entry = entries.next().unwrap().unwrap();
        assert_eq!(entry.path_bytes().as_ref(), b"abc/layer.tar");
        assert_eq!(entry.size(), size);
        assert_eq!(entry.header().size().unwrap(), 0);
        // At the limit, no PAX.
        assert_eq!(
            header("x", tar::EntryType::Regular, USTAR_MAX_SIZE).len(),
            BLOCK
        );
    }

    /// A blob store with one gzip layer per file list; returns the layers
    /// and their tars.
    fn store(blobs: &BlobStore, files: &[&[(&str, &[u8])]]) -> (Vec<Layer>, Vec<Vec<u8>>) {
        let mut layers = Vec::new();
        let mut tars = Vec::new();
        for files in files {
            let entries = files
                .iter()
                .map(|(path, data)| layer::Entry {
                    path: (*path).into(),
                    kind: EntryKind::File(Content::Bytes(data.to_vec())),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                })
                .collect();
            let mut w = blobs.writer().unwrap();
            let l = layer::write(entries, 0, &mut w).unwrap();
            w.commit().unwrap();
            let desc = Descriptor::new(MediaType::ImageLayerGzip, l.size, l.digest.to_oci());
            let tar = layer_tar(blobs, &desc);
            assert_eq!(Digest::of(&tar), l.diff_id);
            let size = measure(blobs, &desc, &l.diff_id).unwrap();
            assert_eq!(size, tar.len() as u64);
            layers.push(Layer {
                desc,
                diff_id: l.diff_id,
                size,
            });
            tars.push(tar);
        }
        (layers, tars)
    }

    fn layer_tar(blobs: &BlobStore, desc: &Descriptor) -> Vec<u8> {
        let mut r = layer_read::open(blobs, desc).unwrap();
        let mut tar = Vec::new();
        r.read_to_end(&mut tar).unwrap();
        tar
    }

    fn archive(
        blobs: &BlobStore,
        layers: &[Layer],
        config: &[u8],
        tags: &[RepoTag],
    ) -> Result<Vec<u8>, ExportError> {
        let entries = entries(config, &Digest::of(config), layers, tags).unwrap();
        let mut out = Vec::new();
        write_archive(&entries, layers, blobs, &mut out).map(|()| out)
    }

    /// Every entry of a tar: name, type, mode and data.
    fn read_back(bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, Vec<u8>)> {
        let mut a = tar::Archive::new(bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
                let (kind, mode) = (e.header().entry_type(), e.header().mode().unwrap());
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (name, kind, mode, data)
            })
            .collect()
    }

    #[test]
    fn writes_docker_saves_classic_layout() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let (layers, tars) = store(&blobs, &[&[("a", b"one")], &[("b", b"two")]]);
        let config = br#"{"rootfs":{"type":"layers"}}"#;
        let bytes = archive(&blobs, &layers, config, &[tag("hello:1.2.0")]).unwrap();
        assert_eq!(bytes.len() % BLOCK, 0);
        assert!(bytes.ends_with(&[0; 2 * BLOCK]));

        let (a, b) = (layers[0].diff_id.hex(), layers[1].diff_id.hex());
        let c = Digest::of(config).hex();
        let got = read_back(&bytes);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        let (a_dir, a_tar) = (format!("{a}/"), format!("{a}/layer.tar"));
        let (b_dir, b_tar) = (format!("{b}/"), format!("{b}/layer.tar"));
        let config_name = format!("{c}.json");
        assert_eq!(
            names,
            [
                "manifest.json",
                "repositories",
                &config_name,
                &a_dir,
                &a_tar,
                &b_dir,
                &b_tar
            ]
        );
        let manifest: serde_json::Value = serde_json::from_slice(&got[0].3).unwrap();
        assert_eq!(
            manifest,
            serde_json::json!([{
                "Config": config_name,
                "RepoTags": ["hello:1.2.0"],
                "Layers": [a_tar, b_tar],
            }])
        );
        assert_eq!(
            String::from_utf8(got[1].3.clone()).unwrap(),
            format!(r#"{{"hello":{{"1.2.0":"{b}"}}}}"#)
        );
        assert_eq!(got[2].3, config);
        assert_eq!((got[3].1, got[3].2), (tar::EntryType::Directory, 0o755));
        assert_eq!((got[4].1, got[4].2), (tar::EntryType::Regular, 0o644));
        assert_eq!(got[4].3, tars[0]);
        assert_eq!(got[6].3, tars[1]);
    }

    #[test]
    fn without_repo_tags_there_is_no_repositories_file() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let (layers, _) = store(&blobs, &[&[("a", b"one")]]);
        let got = read_back(&archive(&blobs, &layers, b"{}", &[]).unwrap());
        assert!(got.iter().all(|e| e.0 != "repositories"));
        let manifest: serde_json::Value = serde_json::from_slice(&got[0].3).unwrap();
        assert_eq!(manifest[0]["RepoTags"], serde_json::json!([]));
    }

    #[test]
    fn a_layer_listed_twice_is_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let (mut layers, _) = store(&blobs, &[&[("a", b"one")]]);
        layers.push(layers[0].clone());
        let got = read_back(&archive(&blobs, &layers, b"{}", &[]).unwrap());
        let manifest: serde_json::Value = serde_json::from_slice(&got[0].3).unwrap();
        let layer = format!("{}/layer.tar", layers[0].diff_id.hex());
        assert_eq!(manifest[0]["Layers"], serde_json::json!([layer, layer]));
        assert_eq!(got.iter().filter(|e| e.0 == layer).count(), 1);
    }

    #[test]
    fn the_same_image_gives_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let (layers, _) = store(&blobs, &[&[("a", b"one")], &[("b", b"two")]]);
        let tags = [tag("hello:1")];
        let first = archive(&blobs, &layers, b"{}", &tags).unwrap();
        assert_eq!(first, archive(&blobs, &layers, b"{}", &tags).unwrap());
    }

    #[test]
    fn a_corrupt_layer_blob_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let (layers, _) = store(&blobs, &[&[("a", &[7; 4096])]]);
        let path = blobs.path(&Digest::try_from(layers[0].desc.digest()).unwrap());
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();

        let found = Digest::of(&std::fs::read(&path).unwrap());
        let digest_mismatch = |e: &LayerError| matches!(e, LayerError::Blob(BlobError::DigestMismatch { found: f, .. }) if *f == found);
        let err = measure(&blobs, &layers[0].desc, &layers[0].diff_id).unwrap_err();
        assert!(digest_mismatch(&err), "{err}");
        let Err(err) = archive(&blobs, &layers, b"{}", &[]) else {
            panic!("a corrupt layer was written");
        };
        assert!(
            matches!(&err, ExportError::Layer(e) if digest_mismatch(e)),
            "{err}"
        );
    }

    #[test]
    fn an_intact_blob_that_does_not_decompress_is_said_so() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let junk = blobs
            .put(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff])
            .unwrap();
        let desc = Descriptor::new(MediaType::ImageLayerGzip, junk.size, junk.digest.to_oci());
        let err = measure(&blobs, &desc, &Digest::of(b"")).unwrap_err();
        assert!(
            matches!(&err, LayerError::Decode { layer, .. } if *layer == junk.digest),
            "{err}"
        );
        assert!(
            err.to_string().contains("the blob itself is intact"),
            "{err}"
        );
    }

    #[test]
    fn a_layer_that_changed_after_it_was_measured_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let (mut layers, _) = store(&blobs, &[&[("a", b"one")]]);
        let size = layers[0].size;
        for measured in [size + 1, size - 1] {
            layers[0].size = measured;
            let Err(err) = archive(&blobs, &layers, b"{}", &[]) else {
                panic!("measured {measured} of {size} bytes: written anyway");
            };
            let says = format!("{measured} bytes when checked, {size} when written");
            assert!(err.to_string().contains(&says), "{err}");
        }
    }

    #[test]
    fn a_write_error_is_the_outputs() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::other("disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let (layers, _) = store(&blobs, &[&[("a", b"one")]]);
        let entries = entries(b"{}", &Digest::of(b"{}"), &layers, &[]).unwrap();
        let err = write_archive(&entries, &layers, &blobs, &mut Full).unwrap_err();
        assert!(matches!(err, ExportError::Write(_)), "{err}");
    }
}
