//! Layers: a set of filesystem entries turned into one deterministic,
//! compressed tar blob (design.md, "Reproducibility rules" 2–8).
//!
//! The caller decides *what* goes in a layer; this module alone decides the
//! bytes: entry order, tar headers and the block-gzip stream. Any change to
//! those bytes must bump [`ENCODING_VERSION`].

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use zstd::stream::raw::CParameter;

use crate::digest::{Digest, HashingWriter};
use crate::image::media::LayerCompression;
pub use crate::store::COPY_BUFFER;

pub mod bounds;
pub mod gzip;
pub mod order;
pub mod read;

mod tarball;
#[cfg(test)]
mod tests;

/// Version of the byte encoding of layers (tar + compression), recorded in
/// every image. Changing the bytes for the same entries means a new version.
pub const ENCODING_VERSION: &str = "3";

/// Name prefix of a whiteout file (image-spec, "Whiteouts").
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the opaque whiteout that hides a directory's lower contents.
pub const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// One entry of a layer tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the image, relative (no leading `/`), UTF-8, no `.` or
    /// `..` components, no trailing `/`. Whiteouts carry their final tar
    /// name (`etc/.wh.motd`, `srv/.wh..wh..opq`). Shared: the view names
    /// the path with the same text.
    pub path: Arc<str>,
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`0o7777` mask).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File(Content),
    Symlink {
        target: String,
    },
    /// Another name of the file at `target`, a path of this layer (same
    /// form as [`Entry::path`]) that sorts before this one, so readers
    /// meet the file first.
    Hardlink {
        target: String,
    },
}

/// Where a regular file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Bytes(Vec<u8>),
    /// A host file, read while the layer is written. `size` is what the
    /// caller saw when planning; a file that changed since is an error.
    Path {
        path: PathBuf,
        size: u64,
    },
    /// A host file of a tree laid out below the entry's directory as on
    /// the host: `root` joined with the entry's path from byte `from` on.
    /// A tree of many files names its root once instead of holding a host
    /// path per file. Read, and checked, as [`Content::Path`] is.
    Tree {
        root: Arc<Path>,
        from: u32,
        size: u64,
    },
}

impl EntryKind {
    /// The path a hardlink names; None for the other kinds.
    pub fn hardlink_target(&self) -> Option<&str> {
        match self {
            EntryKind::Hardlink { target } => Some(target),
            _ => None,
        }
    }
}

impl Content {
    /// The number of bytes the content is, or was planned as.
    pub fn size(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Path { size, .. } | Content::Tree { size, .. } => *size,
        }
    }

    /// The host file the content of the entry at `path` is read from;
    /// None for bytes held, or when `path` cannot be this entry's (it does
    /// not reach byte `from`).
    pub fn host_path(&self, path: &str) -> Option<Cow<'_, Path>> {
        match self {
            Content::Bytes(_) => None,
            Content::Path { path, .. } => Some(Cow::Borrowed(path)),
            Content::Tree { root, from, .. } => {
                let rel = path.get(usize::try_from(*from).ok()?..)?;
                (!rel.is_empty()).then(|| Cow::Owned(root.join(rel)))
            }
        }
    }

    /// The content of the host file `rel` below `root` (`root` itself when
    /// `rel` is empty) for the entry at `path`: a [`Content::Tree`] when
    /// `path` ends in `/` and `rel`, else a [`Content::Path`].
    pub fn below(root: &Arc<Path>, rel: &str, path: &str, size: u64) -> Content {
        let from = path.len() - rel.len().min(path.len());
        match u32::try_from(from) {
            Ok(at) if !rel.is_empty() && path.ends_with(rel) && path[..from].ends_with('/') => {
                Content::Tree {
                    root: Arc::clone(root),
                    from: at,
                    size,
                }
            }
            _ if rel.is_empty() => Content::Path {
                path: root.to_path_buf(),
                size,
            },
            _ => Content::Path {
                path: root.join(rel),
                size,
            },
        }
    }
}

impl Entry {
    /// A whiteout hiding `name` inside directory `parent` ("" for the root).
    pub fn whiteout(parent: &str, name: &str) -> Entry {
        Entry::marker(join(parent, &format!("{WHITEOUT_PREFIX}{name}")))
    }

    /// An opaque whiteout hiding everything below `dir` in lower layers.
    pub fn opaque_whiteout(dir: &str) -> Entry {
        Entry::marker(join(dir, OPAQUE_WHITEOUT))
    }

    fn marker(path: String) -> Entry {
        Entry {
            path: path.into(),
            kind: EntryKind::File(Content::Bytes(Vec::new())),
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Sees the content of each regular file as it is written into a layer.
pub trait ContentSink {
    /// A file begins: its entry's path, shared, so that a sink keeping
    /// it need not copy it.
    fn begin(&mut self, path: &Arc<str>);
    fn data(&mut self, chunk: &[u8]);
    fn end(&mut self);
}

/// A finished layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// Digest of the compressed blob.
    pub digest: Digest,
    /// Size of the compressed blob in bytes.
    pub size: u64,
    /// Digest of the uncompressed tar: the content's identity.
    pub diff_id: Digest,
}

/// Sorts `entries` in the canonical order and writes them as a block-gzip
/// tar to `out`, hashing both streams on the way.
///
/// `mtime` is the build's one timestamp (`SOURCE_DATE_EPOCH`, rule 1),
/// given to every entry. Everything streams: memory is bounded by one gzip
/// block, not by the layer. On error, what was written to `out` is not a
/// valid layer and must be discarded.
pub fn write(entries: Vec<Entry>, mtime: u64, out: impl Write) -> io::Result<Layer> {
    write_compressed(entries, mtime, LayerCompression::Gzip, out, None)
}

/// [`write`], with the compression chosen: ingot's block gzip, or zstd in
/// libzstd's multi-threaded mode, whose bytes do not depend on the number
/// of workers (unlike its single-threaded mode), so any core count gives
/// the same blob.
pub fn write_compressed(
    mut entries: Vec<Entry>,
    mtime: u64,
    compression: LayerCompression,
    out: impl Write,
    sink: Option<&mut dyn ContentSink>,
) -> io::Result<Layer> {
    order::sort(&mut entries);
    check(&entries)?;
    let whole = std::iter::once(Ok(Run(entries)));
    write_runs(whole, mtime, compression, out, sink)
}

/// Writes a layer from the runs of one [`RunMaker`], in order, as
/// [`write_compressed`] writes it: the same entries give the same bytes
/// however they are split. Each run is freed once written, so a caller
/// handing runs over as it goes holds only those not yet written. A run
/// that fails to come (`Err`) fails the layer.
pub fn write_runs(
    runs: impl Iterator<Item = io::Result<Run>>,
    mtime: u64,
    compression: LayerCompression,
    out: impl Write,
    sink: Option<&mut dyn ContentSink>,
) -> io::Result<Layer> {
    let compressed = HashingWriter::new(out);
    let (diff_id, compressed) = match compression {
        LayerCompression::Gzip => {
            let tar = HashingWriter::new(gzip::BlockGzWriter::new(compressed));
            let (diff_id, _, gz) = write_tar(runs, mtime, tar, sink)?.finish();
            (diff_id, gz.finish()?)
        }
        LayerCompression::Zstd => {
            let z = zstd_encoder(compressed, zstd_workers())?;
            let tar = HashingWriter::new(z);
            let (diff_id, _, z) = write_tar(runs, mtime, tar, sink)?.finish();
            (diff_id, z.finish()?)
        }
    };
    let (digest, size, _) = compressed.finish();
    Ok(Layer {
        digest,
        size,
        diff_id,
    })
}

/// A run of consecutive entries of a layer, in the canonical order and
/// checked (see [`RunMaker`]).
#[derive(Debug)]
pub struct Run(Vec<Entry>);

impl Run {
    pub fn entries(&self) -> &[Entry] {
        &self.0
    }

    pub fn into_entries(self) -> Vec<Entry> {
        self.0
    }
}

/// The tar stream through a large buffer: `io::copy` then reads each
/// file straight into it, a quarter MiB per read rather than 8 KiB, and
/// the hash, the scan and the compressor see large chunks.
fn write_tar<W: Write>(
    runs: impl Iterator<Item = io::Result<Run>>,
    mtime: u64,
    out: W,
    mut sink: Option<&mut dyn ContentSink>,
) -> io::Result<W> {
    let buffered = io::BufWriter::with_capacity(COPY_BUFFER, out);
    let mut tar = tarball::Writer::new(buffered, mtime);
    for run in runs {
        // Owned: each entry, then the run's room, goes once written.
        for entry in run?.0 {
            match sink {
                Some(ref mut s) => tar.append(&entry, Some(&mut **s))?,
                None => tar.append(&entry, None)?,
            }
        }
    }
    tar.finish()?
        .into_inner()
        .map_err(io::IntoInnerError::into_error)
}

/// zstd level of every zstd layer.
const ZSTD_LEVEL: i32 = 3;

/// Input per libzstd worker job. Pinned rather than left to libzstd's
/// default (4 windows, 8 MiB at level 3), which a libzstd release could
/// change, and which costs memory: measured with bench/run on the Debian
/// corpus, 8 MiB jobs peaked at 75 MiB RSS, 2 MiB at 36 MiB, for a layer
/// 1.2% larger (1 MiB: 29 MiB, 4% larger). Encoding version 3.
const ZSTD_JOB_SIZE: u32 = 2 << 20;

/// How much of the previous job each job sees, as libzstd's overlap log:
/// 6, its default for level 3's strategy, pinned for the same reason.
const ZSTD_OVERLAP_LOG: u32 = 6;

/// A zstd encoder with every parameter that decides the bytes pinned;
/// `workers` (at least 1) decides only the speed.
fn zstd_encoder<W: Write>(
    out: W,
    workers: u32,
) -> io::Result<zstd::stream::write::Encoder<'static, W>> {
    let mut z = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)?;
    z.include_checksum(true)?;
    z.multithread(workers.max(1))?;
    z.set_parameter(CParameter::JobSize(ZSTD_JOB_SIZE))?;
    z.set_parameter(CParameter::OverlapSizeLog(ZSTD_OVERLAP_LOG))?;
    Ok(z)
}

/// Workers for zstd: at least one, so libzstd is always in its
/// multi-threaded (and thread-count-independent) mode.
fn zstd_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// Refuses, before any byte is written, entries that cannot be encoded,
/// duplicate paths (whose order the comparator cannot decide, so the bytes
/// would depend on the caller's order) and hardlinks to no file before
/// them.
fn check(sorted: &[Entry]) -> io::Result<()> {
    let mut checker = Checker::new(sorted.iter().filter_map(|e| e.kind.hardlink_target()));
    sorted.iter().try_for_each(|e| checker.check(e))
}

/// Checks a layer's entries one by one, in the order they are written:
/// each can be encoded, comes after the one before in the canonical order
/// (so no path comes twice), and, a hardlink, names a file already
/// written. Only the files hardlinks name are remembered: a layer of
/// 300,000 files and no hardlinks holds no set of 300,000 paths.
pub struct Checker {
    named: HashSet<String>,
    written: HashSet<String>,
    last: Option<Arc<str>>,
}

impl Checker {
    /// A checker for a layer whose hardlinks name `targets`.
    pub fn new<'a>(targets: impl IntoIterator<Item = &'a str>) -> Checker {
        Checker {
            named: targets.into_iter().map(str::to_string).collect(),
            written: HashSet::new(),
            last: None,
        }
    }

    pub fn check(&mut self, entry: &Entry) -> io::Result<()> {
        tarball::check(entry)?;
        let refuse = |why: String| io::Error::new(io::ErrorKind::InvalidInput, why);
        if let Some(last) = &self.last {
            match order::compare(last, &entry.path) {
                std::cmp::Ordering::Less => {}
                std::cmp::Ordering::Equal => {
                    return Err(refuse(format!(
                        "layer entry {:?} appears twice",
                        entry.path
                    )));
                }
                std::cmp::Ordering::Greater => {
                    return Err(refuse(format!(
                        "layer entry {:?} comes after {last:?}, out of order",
                        entry.path
                    )));
                }
            }
        }
        match &entry.kind {
            EntryKind::File(_) if self.named.contains(&*entry.path) => {
                self.written.insert(entry.path.to_string());
            }
            EntryKind::Hardlink { target } if !self.written.contains(target) => {
                return Err(refuse(format!(
                    "layer entry {:?} is a hardlink to {target:?}, which is no file before it in the layer",
                    entry.path
                )));
            }
            _ => {}
        }
        self.last = Some(Arc::clone(&entry.path));
        Ok(())
    }
}

/// Makes [`Run`]s from entries given one by one in the canonical order,
/// checking each as it comes: what a caller that never holds a layer's
/// entries all at once writes them with.
pub struct RunMaker {
    checker: Checker,
    len: usize,
    run: Vec<Entry>,
}

impl RunMaker {
    /// Runs of at most `len` (at least one) entries, checked by `checker`.
    pub fn new(len: usize, checker: Checker) -> RunMaker {
        RunMaker {
            checker,
            len: len.max(1),
            run: Vec::new(),
        }
    }

    /// Takes the next entry; a run once it is full.
    pub fn push(&mut self, entry: Entry) -> io::Result<Option<Run>> {
        self.checker.check(&entry)?;
        if self.run.is_empty() {
            self.run.reserve_exact(self.len.min(RUN_RESERVE));
        }
        self.run.push(entry);
        Ok((self.run.len() >= self.len).then(|| Run(std::mem::take(&mut self.run))))
    }

    /// The last run, if any entry is left.
    pub fn finish(self) -> Option<Run> {
        (!self.run.is_empty()).then_some(Run(self.run))
    }
}

/// Room a run is made with at first: a run of a layer's every entry grows
/// from there.
const RUN_RESERVE: usize = 4096;
