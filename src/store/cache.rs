//! The build cache (design.md, principle 5): a content-addressed store that
//! makes unchanged work free.
//!
//! ```text
//! ROOT/blobs/sha256/<hex>        blobs, as in any layout
//! ROOT/layers/<key-hex>.json     a layer's inputs' digest -> the finished layer
//! ROOT/layers/<key-hex>.summary  what writing that layer taught the build
//! ROOT/stat/<dir-hex>.index      file stats -> content digests, per source root
//! ROOT/stat/blobs.index          the stats of blobs last read whole to their digest
//! ROOT/bases/<key-hex>.summary   a base's layers' digests -> what reading them taught a build
//! ```
//!
//! A layer's key digests everything its bytes depend on; a hit is checked
//! against its blob before it is served, and a corrupt entry is dropped and
//! rebuilt, never used. A blob is read whole to its digest when it enters
//! the store, and again whenever its stat shows a write since (see
//! [`Cache::blob_checked`]); an unchanged blob is not read again. Source files are recognised without re-reading them
//! when their (size, mtime, ctime, inode) are unchanged, as git's index does,
//! including its "racy clean" rule: a file modified no earlier than the
//! index was written is hashed again, since a change within the same clock
//! tick would not show in its stat.
//!
//! Builds share a cache safely, as threads of one process (`ingot build
//! DIR…`) or as processes: every file is written to a temp file and renamed
//! into place, so a reader sees an entry whole or not at all; two builds
//! filing the same key file the same bytes; and what one build's stat
//! indexes miss of another's only costs a read, never a wrong answer.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use super::file::{self, Links};
use super::layout::{replace_file, replace_file_with};
use super::{BlobStore, link_or_copy};
use crate::digest::{Digest, HashingReader};
use crate::error::{IoContext, Result};

/// The most bytes a layer entry (`layers/<key>.json`, a few hundred) may
/// have. The cache's own files are read only when they are regular files
/// within their bound (see [`super::file`]); anything else is a miss.
pub const MAX_LAYER_ENTRY: u64 = 1 << 20;

/// The most bytes a summary or a stat index may have: far more than real
/// ones (a few MiB for a Debian base), only a bound against a sparse or
/// hostile file.
pub const MAX_CACHE_FILE: u64 = 1 << 30;

/// A file's identity as git's index records it: a file whose stat is
/// unchanged is taken to have unchanged content (with git's racy-clean
/// exception, which the cache applies).
///
/// Times are nanoseconds since the epoch in an `i64`, which holds every
/// time from 1677 to 2262: 40 bytes a file, for indexes of 300k files.
/// A time outside that range saturates to its end rather than wrapping;
/// at worst two such times compare equal, and a saturated mtime is never
/// earlier than an index, so the racy-clean rule re-reads the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub dev: u64,
}

impl FileStat {
    /// The stat of a file ingot hard-links into outputs, such as a blob of
    /// the store: without the ctime, which every link and unlink moves. A
    /// write still moves the mtime (and a rewrite the inode).
    pub fn of_linked(meta: &std::fs::Metadata) -> FileStat {
        FileStat {
            ctime_ns: 0,
            ..FileStat::of(meta)
        }
    }

    pub fn of(meta: &std::fs::Metadata) -> FileStat {
        use std::os::unix::fs::MetadataExt;
        FileStat {
            size: meta.len(),
            mtime_ns: epoch_ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: epoch_ns(meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// `secs` seconds and `nanos` nanoseconds since the epoch, in nanoseconds,
/// saturating at the ends of `i64` (see [`FileStat`]).
fn epoch_ns(secs: i64, nanos: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// A cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    pub blobs: BlobStore,
    /// Blobs of the store read whole to their digest, by file name, with
    /// the stat they had: loaded on first use, shared by clones.
    checked: Arc<OnceLock<Mutex<StatIndex>>>,
}

/// What a layer cache entry records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub entries: usize,
    pub base_dependent: bool,
    /// What the build learnt about the layer while writing it, so that a
    /// hit needs no decompression; absent, the layer is read back. Kept
    /// beside the entry, in `<key-hex>.summary`.
    #[serde(skip)]
    pub summary: Option<Summary>,
}

/// A layer's effect as the code that wrote it understood it, stamped with
/// the writer's version: it is handed back only to a reader of the same
/// version, so a summary made under an older seal policy or scanner is
/// never taken for a current one. The body is postcard, not JSON: reading
/// summaries is most of what a warm build does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub version: String,
    pub body: Vec<u8>,
}

impl Summary {
    /// `value` encoded under `version`; None if it cannot be encoded.
    pub fn encode(version: String, value: &impl Serialize) -> Option<Summary> {
        let body = postcard::to_stdvec(value).ok()?;
        Some(Summary { version, body })
    }

    /// The body decoded, if it was written under `version` and decodes.
    pub fn decode<T: serde::de::DeserializeOwned>(&self, version: &str) -> Option<T> {
        (self.version == version)
            .then(|| postcard::from_bytes(&self.body).ok())
            .flatten()
    }

    /// Saves the summary at `path` in its file's form, not copied whole
    /// first (a large layer's is megabytes).
    fn save(&self, path: &Path) -> Result<()> {
        replace_file_with(path, |w| {
            self.write_to(w)
                .context(|| format!("writing {}", path.display()))
        })
    }

    /// The file's form: the version on the first line, then the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.version.len() + 1 + self.body.len());
        // Writing to a vector does not fail.
        let _ = self.write_to(&mut bytes);
        bytes
    }

    fn write_to(&self, w: &mut dyn Write) -> io::Result<()> {
        w.write_all(self.version.as_bytes())?;
        w.write_all(b"\n")?;
        w.write_all(&self.body)
    }

    /// A summary in its file's form; None unless it has a version line
    /// in UTF-8.
    pub fn from_bytes(mut bytes: Vec<u8>) -> Option<Summary> {
        let newline = bytes.iter().position(|&b| b == b'\n')?;
        let version = String::from_utf8(bytes[..newline].to_vec()).ok()?;
        // In place: a summary of a large layer is megabytes, not copied.
        bytes.drain(..=newline);
        Some(Summary {
            version,
            body: bytes,
        })
    }

    /// The summary at `path`, if it is a regular file of the right form.
    fn read(path: &Path) -> Option<Summary> {
        Summary::from_bytes(file::read_regular(path, Links::Refuse, MAX_CACHE_FILE).ok()?)
    }
}

impl Cache {
    /// Opens (creating) the cache at `root`.
    pub fn open(root: &Path) -> Result<Cache> {
        for dir in ["layers", "stat", "bases", "attestations"] {
            std::fs::create_dir_all(root.join(dir))
                .context(|| format!("creating cache directory {}", root.join(dir).display()))?;
        }
        let blobs =
            BlobStore::open(root).context(|| format!("opening cache {}", root.display()))?;
        Ok(Cache {
            root: root.to_path_buf(),
            blobs,
            checked: Arc::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn layer_path(&self, key: &Digest) -> PathBuf {
        self.root.join("layers").join(format!("{}.json", key.hex()))
    }

    fn layer_summary_path(&self, key: &Digest) -> PathBuf {
        self.root
            .join("layers")
            .join(format!("{}.summary", key.hex()))
    }

    /// The layer cached under `key`, with its summary if it has one, if
    /// its entry parses and its blob is present with the recorded size.
    /// Anything else is removed so that the layer is rebuilt. The blob's
    /// content is not re-hashed here: see [`blob_checked`](Self::blob_checked).
    pub fn layer(&self, key: &Digest) -> Option<CachedLayer> {
        let path = self.layer_path(key);
        let bytes = file::read_regular(&path, Links::Refuse, MAX_LAYER_ENTRY).ok();
        let entry: Option<CachedLayer> = bytes.and_then(|b| serde_json::from_slice(&b).ok());
        let present = entry.as_ref().is_some_and(|e| {
            self.blobs
                .present(&e.digest)
                .is_ok_and(|m| m.len() == e.size)
        });
        if !present {
            self.drop_layer(key, entry.as_ref());
            return None;
        }
        entry.map(|e| CachedLayer {
            summary: Summary::read(&self.layer_summary_path(key)),
            ..e
        })
    }

    /// Forgets a cache entry and its blob: it did not hold what it said.
    pub fn drop_layer(&self, key: &Digest, entry: Option<&CachedLayer>) {
        let _ = std::fs::remove_file(self.layer_path(key));
        let _ = std::fs::remove_file(self.layer_summary_path(key));
        if let Some(e) = entry {
            let _ = std::fs::remove_file(self.blobs.path(&e.digest));
        }
    }

    /// Records `layer` under `key`, its blob (checked as it was written in
    /// `from`) kept as [`keep_blob`](Self::keep_blob) does. Its summary is
    /// written before the entry: an entry never stands beside another
    /// layer's summary.
    pub fn put_layer(&self, key: &Digest, layer: &CachedLayer, from: &BlobStore) -> Result<()> {
        self.keep_blob(&layer.digest, from)?;
        let summary = self.layer_summary_path(key);
        match &layer.summary {
            Some(s) => s.save(&summary)?,
            None => {
                let _ = std::fs::remove_file(&summary);
            }
        }
        let json = serde_json::to_vec(layer)
            .map_err(io::Error::other)
            .context(|| "encoding a cache entry".into())?;
        replace_file(&self.layer_path(key), &json)
    }

    /// Keeps the blob `digest` of `from` (checked as it was written there)
    /// in the cache's store, linked where the filesystem allows, in place of
    /// any copy the store had: one that was not known good.
    pub fn keep_blob(&self, digest: &Digest, from: &BlobStore) -> Result<()> {
        let to = self.blobs.path(digest);
        replace_with_link(&from.path(digest), &to).context(|| format!("caching blob {digest}"))
    }

    /// Puts the cached blob of `layer` into `to` (a build's staging).
    pub fn copy_layer_to(&self, layer: &CachedLayer, to: &BlobStore) -> Result<()> {
        self.copy_blob_to(&layer.digest, to)
    }

    /// Puts a cached blob into `to`, linked where the filesystem allows.
    pub fn copy_blob_to(&self, digest: &Digest, to: &BlobStore) -> Result<()> {
        let from = self.blobs.path(digest);
        // A cache written before blobs were kept at BLOB_MODE may hold one
        // at the mode of the umask it was built under.
        readable(&from).context(|| format!("copying cached blob {digest}"))?;
        link_or_copy(&from, &to.path(digest)).context(|| format!("copying cached blob {digest}"))
    }

    /// The stat of the store's blob `digest` as [`blob_checked`](Self::blob_checked)
    /// compares it; None unless it is a regular file.
    pub fn blob_stat(&self, digest: &Digest) -> Option<FileStat> {
        std::fs::symlink_metadata(self.blobs.path(digest))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| FileStat::of_linked(&m))
    }

    /// Whether the store's blob `digest`, whose stat is now `stat`, was
    /// read whole to its digest with that same stat, and not written as
    /// late as the record of it (git's racy-clean rule). Blobs enter the
    /// store through a hash, so this holds unless something wrote to one
    /// since; a blob for which it does not hold is read again.
    pub fn blob_checked(&self, digest: &Digest, stat: &FileStat) -> bool {
        self.with_checked(|index| index.known(Path::new(&digest.hex()), stat) == Some(*digest))
    }

    /// Records that the store's blob `digest`, with stat `stat` (taken
    /// before it was read), was read whole to its digest.
    pub fn record_checked(&self, digest: &Digest, stat: FileStat) {
        self.with_checked(|index| index.record(Path::new(&digest.hex()), stat, *digest));
    }

    /// Saves what [`record_checked`](Self::record_checked) learnt. A record
    /// that cannot be saved only costs the next build a read.
    pub fn save_checked(&self) -> Result<()> {
        match self.checked.get() {
            Some(index) => {
                let index = index.lock().unwrap_or_else(|e| e.into_inner());
                self.save_index(&self.checked_path(), &index)
            }
            None => Ok(()),
        }
    }

    fn with_checked<T>(&self, f: impl FnOnce(&mut StatIndex) -> T) -> T {
        let index = self
            .checked
            .get_or_init(|| Mutex::new(self.load_index(&self.checked_path())));
        f(&mut index.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn checked_path(&self) -> PathBuf {
        self.root.join("stat").join("blobs.index")
    }

    /// The stat index of the source root `dir`.
    pub fn stat_index(&self, dir: &Path) -> StatIndex {
        StatIndex {
            base: dir.as_os_str().as_bytes().into(),
            ..self.load_index(&self.stat_path(dir))
        }
    }

    /// The index filed at `path`, streamed from it; an empty one (every
    /// file is read again) unless it is a regular file of at most
    /// [`MAX_CACHE_FILE`] bytes in the form [`read_index`] takes.
    fn load_index(&self, path: &Path) -> StatIndex {
        let Ok(file) = file::open_regular(path, Links::Refuse) else {
            return StatIndex::default();
        };
        // The racy-clean line is the mtime of the file read, not of
        // whatever is at its path by now.
        let Ok(meta) = file.metadata() else {
            return StatIndex::default();
        };
        let sorted = Some(meta.len())
            .filter(|&len| len <= MAX_CACHE_FILE)
            .and_then(|len| {
                let input = io::BufReader::with_capacity(1 << 16, file.take(len));
                read_index(input, len)
            })
            .unwrap_or_default();
        StatIndex {
            written_ns: Some(FileStat::of(&meta).mtime_ns),
            bytes: sorted.encoded_len(),
            sorted,
            ..StatIndex::default()
        }
    }

    /// Saves `index` if it learnt anything.
    pub fn save_stat_index(&self, dir: &Path, index: &StatIndex) -> Result<()> {
        let path = self.stat_path(dir);
        // The JSON form an older ingot filed beside it, never read again.
        let _ = std::fs::remove_file(path.with_extension("json"));
        self.save_index(&path, index)
    }

    /// Saves `index` to `path`, streamed, if it learnt anything.
    fn save_index(&self, path: &Path, index: &StatIndex) -> Result<()> {
        if !index.changed {
            return Ok(());
        }
        replace_file_with(path, |out| {
            write_index(out, || index.entries()).context(|| format!("writing {}", path.display()))
        })
    }

    /// Where the stat index of `dir` is filed. (Indexes in JSON, filed as
    /// `.json` by earlier versions, are left to `cache prune`.)
    fn stat_path(&self, dir: &Path) -> PathBuf {
        let key = Digest::of(dir.as_os_str().as_encoded_bytes());
        self.root.join("stat").join(format!("{}.index", key.hex()))
    }

    /// The summary filed under `key` in the cache directory `dir`. An
    /// entry that is not a summary is removed, so that what it would have
    /// said is learnt again.
    fn summary(&self, dir: &str, key: &Digest) -> Option<Summary> {
        let path = self.summary_path(dir, key);
        let summary = Summary::read(&path);
        if summary.is_none() {
            let _ = std::fs::remove_file(&path);
        }
        summary
    }

    fn put_summary(&self, dir: &str, key: &Digest, summary: &Summary) -> Result<()> {
        summary.save(&self.summary_path(dir, key))
    }

    fn summary_path(&self, dir: &str, key: &Digest) -> PathBuf {
        self.root.join(dir).join(format!("{}.summary", key.hex()))
    }

    /// What reading the base layers `key` names taught a build.
    pub fn base(&self, key: &Digest) -> Option<Summary> {
        self.summary("bases", key)
    }

    /// Records what reading the base layers `key` names taught a build.
    pub fn put_base(&self, key: &Digest, summary: &Summary) -> Result<()> {
        self.put_summary("bases", key, summary)
    }

    /// A document made about an image before (its SBOM), by `key`, which
    /// names the image by digest.
    pub fn attestation(&self, key: &Digest) -> Option<Summary> {
        self.summary("attestations", key)
    }

    /// Records a document made about an image, by `key`.
    pub fn put_attestation(&self, key: &Digest, summary: &Summary) -> Result<()> {
        self.put_summary("attestations", key, summary)
    }

    /// Bytes and files the cache holds.
    pub fn usage(&self) -> Result<Usage> {
        let mut usage = Usage::default();
        for entry in walkdir::WalkDir::new(&self.root) {
            let entry = entry
                .map_err(io::Error::other)
                .context(|| format!("reading {}", self.root.display()))?;
            if entry.file_type().is_file() {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                usage.bytes += len;
                if entry.path().starts_with(self.root.join("blobs")) {
                    usage.blobs += 1;
                } else if entry.path().starts_with(self.root.join("layers")) {
                    usage.layers += 1;
                }
            }
        }
        Ok(usage)
    }

    /// Empties the cache: every entry and blob. Builds refill what they
    /// use.
    pub fn prune(&self) -> Result<Usage> {
        let before = self.usage()?;
        for dir in ["blobs", "layers", "stat", "bases", "attestations"] {
            let path = self.root.join(dir);
            if path.exists() {
                std::fs::remove_dir_all(&path)
                    .context(|| format!("removing {}", path.display()))?;
            }
        }
        Cache::open(&self.root)?;
        Ok(before)
    }
}

/// The mode of every blob in the cache's store. A blob is linked into
/// every layout built from it, so it cannot keep the mode of the umask of
/// the build that first wrote it: one run under `umask 077` would publish
/// unreadable blobs into every later layout. Blobs are public content; the
/// cache's and each layout's directories keep their owner's umask.
const BLOB_MODE: u32 = 0o644;

/// Sets the cached blob at `path` to [`BLOB_MODE`] unless it has it.
fn readable(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let file = file::open_regular(path, Links::Refuse)?;
    if file.metadata()?.permissions().mode() & 0o7777 != BLOB_MODE {
        file.set_permissions(std::fs::Permissions::from_mode(BLOB_MODE))?;
    }
    Ok(())
}

/// Puts `from` at `to` (linked where the filesystem allows, else copied),
/// replacing what was there in one rename: a build reading `to` meanwhile
/// sees the old file or the new one, never none. Its mtime is set to the
/// epoch and its mode to [`BLOB_MODE`].
fn replace_with_link(from: &Path, to: &Path) -> io::Result<()> {
    let dir = to.parent().unwrap_or(Path::new("."));
    let staged = tempfile::Builder::new()
        .prefix(".tmp-keep")
        .make_in(dir, |path| match std::fs::hard_link(from, path) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => copy_new(from, path),
            linked => linked,
        })?;
    staged.persist(to).map_err(|e| e.error)?;
    readable(to)?;
    // Any later write moves the mtime off the epoch: a record of this
    // stat is never racy, however soon it is made.
    file::open_regular(to, Links::Refuse)?.set_modified(std::time::UNIX_EPOCH)
}

/// Copies `from` to the new file `to`, removed again if the copy fails.
fn copy_new(from: &Path, to: &Path) -> io::Result<()> {
    let mut out = std::fs::File::create_new(to)?;
    io::copy(&mut file::open_regular(from, Links::Refuse)?, &mut out)
        .map(drop)
        .inspect_err(|_| {
            let _ = std::fs::remove_file(to);
        })
}

/// What `ingot cache du` reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub bytes: u64,
    pub blobs: u64,
    pub layers: u64,
}

/// Content digests of a source tree's files, keyed by path and stat.
///
/// Compact, for trees of 300k files: no allocation per file. What was
/// loaded is one buffer of paths back to back and a vector of fixed-size
/// records sorted by path bytes, found by binary search. What a build
/// records goes to a side map, merged in (in place) once it holds
/// 1/[`MERGE_SHARE`] as many files as the rest (or [`MERGE_AT`]): a
/// lookup stays O(log n), and the side map, whose entries cost thrice a
/// record, stays small. A merge moves only the records that sort after
/// the first one merged in; a walk records files nearly in path order, so
/// a cold build's merges move little, and at worst (files recorded in
/// reverse order) recording n files moves each record MERGE_SHARE times.
#[derive(Debug, Default)]
pub struct StatIndex {
    /// When the index was last written (its file's mtime, in nanoseconds
    /// since the epoch): the racy-clean line.
    written_ns: Option<i64>,
    sorted: Sorted,
    /// Recorded since the last merge; it replaces `sorted`'s entry for the
    /// same path.
    recorded: BTreeMap<Box<[u8]>, (FileStat, Digest)>,
    /// The bytes the index's file would have, at most (a path recorded
    /// again counts twice until merged): recording stops short of
    /// [`MAX_CACHE_FILE`], so that every index saved can be loaded.
    bytes: u64,
    changed: bool,
    /// The directory whose files are filed by their path below it (most
    /// of each path's bytes, in a recipe's index); empty: whole paths.
    base: Box<[u8]>,
}

/// The fewest recorded files merged into a [`StatIndex`]'s sorted part.
const MERGE_AT: usize = 1024;

/// A [`StatIndex`] merges what it recorded once that is this fraction of
/// what it holds sorted.
const MERGE_SHARE: usize = 32;

/// The longest path a stat index holds, in bytes: Linux's PATH_MAX. A
/// longer one is not recorded (it is read again each build) and makes an
/// index file that holds one unreadable.
pub const MAX_INDEX_PATH: usize = 4096;

/// The first bytes of a stat index file; the number changes with the form.
const INDEX_MAGIC: &[u8] = b"ingot stat index 2\n";

/// The magic line, then the number of records and of path bytes (u64s).
const INDEX_HEADER: u64 = INDEX_MAGIC.len() as u64 + 16;

/// The bytes of a record besides its path: its length (u32), the stat's
/// five fields (u64, i64, i64, u64, u64) and the digest.
const RECORD_FIXED: u64 = 4 + 40 + 32;

/// An index entry: a path's bytes, its stat, its digest.
type Entry<'a> = (&'a [u8], FileStat, Digest);

/// The entries of an index as loaded or merged: paths back to back in
/// `paths`, records in strictly increasing order of their path's bytes.
#[derive(Debug, Default)]
struct Sorted {
    paths: Vec<u8>,
    records: Vec<Record>,
}

/// One entry of [`Sorted`]; its path is `paths[start..start + len]`.
#[derive(Debug, Clone, Copy)]
struct Record {
    start: u32,
    len: u32,
    stat: FileStat,
    digest: Digest,
}

impl Sorted {
    fn with_capacity(records: usize, paths: usize) -> Sorted {
        Sorted {
            paths: Vec::with_capacity(paths),
            records: Vec::with_capacity(records),
        }
    }

    fn path(&self, record: &Record) -> &[u8] {
        let start = record.start as usize;
        &self.paths[start..start + record.len as usize]
    }

    /// Appends an entry, which the caller puts after every other; false
    /// (nothing appended) when the buffer's offsets would not fit a u32.
    fn push(&mut self, path: &[u8], stat: FileStat, digest: Digest) -> bool {
        let Some((start, len)) = self.store_path(path) else {
            return false;
        };
        self.records.push(Record {
            start,
            len,
            stat,
            digest,
        });
        true
    }

    /// Appends `path` to the path buffer and returns where it is (start,
    /// length), for a record to name it; None (nothing appended) when the
    /// buffer's offsets would not fit a u32.
    fn store_path(&mut self, path: &[u8]) -> Option<(u32, u32)> {
        let start = u32::try_from(self.paths.len()).ok()?;
        let len = u32::try_from(path.len()).ok()?;
        start.checked_add(len)?;
        self.paths.extend_from_slice(path);
        Some((start, len))
    }

    /// The record of `path`, trying the record at `*near` first and leaving
    /// `near` just past what was found: files asked for in path order (as
    /// a walk nearly lists them) are each found in one comparison, not a
    /// binary search's eighteen, each a cache miss at 300,000 records.
    fn get_near(&self, path: &[u8], near: &mut usize) -> Option<usize> {
        let at = match self.records.get(*near) {
            Some(r) if self.path(r) == path => *near,
            _ => self
                .records
                .binary_search_by(|r| self.path(r).cmp(path))
                .ok()?,
        };
        *near = at + 1;
        Some(at)
    }

    fn iter(&self) -> impl Iterator<Item = Entry<'_>> {
        self.records
            .iter()
            .map(|r| (self.path(r), r.stat, r.digest))
    }

    /// The bytes of its file.
    fn encoded_len(&self) -> u64 {
        INDEX_HEADER + RECORD_FIXED * self.records.len() as u64 + self.paths.len() as u64
    }
}

impl StatIndex {
    /// The digest recorded for `path` when its stat is still `stat`, and it
    /// was not modified as late as the index was written (git's racy-clean
    /// rule).
    pub fn known(&self, path: &Path, stat: &FileStat) -> Option<Digest> {
        self.known_near(path, stat, &mut 0)
    }

    /// [`StatIndex::known`], looking near the last file found first (see
    /// [`Sorted::get_near`]).
    fn known_near(&self, path: &Path, stat: &FileStat, near: &mut usize) -> Option<Digest> {
        match self.find_near(path, stat, near)? {
            Found::Sorted(at) => Some(self.sorted.records[at].digest),
            Found::Recorded(digest) => Some(digest),
        }
    }

    /// Where [`StatIndex::known_near`] finds the digest of `path`.
    fn find_near(&self, path: &Path, stat: &FileStat, near: &mut usize) -> Option<Found> {
        let racy = self.written_ns.is_none_or(|w| stat.mtime_ns >= w);
        if racy {
            return None;
        }
        let key = self.key(path);
        if let Some(&(seen, digest)) = self.recorded.get(key) {
            return (seen == *stat).then_some(Found::Recorded(digest));
        }
        let at = self.sorted.get_near(key, near)?;
        (self.sorted.records[at].stat == *stat).then_some(Found::Sorted(at))
    }

    /// Records that `path`, with stat `stat`, was read whole and hashed to
    /// `digest`. A path longer than [`MAX_INDEX_PATH`], or one that would
    /// take the index's file past [`MAX_CACHE_FILE`], is not recorded: it
    /// only costs reading the file again.
    pub fn record(&mut self, path: &Path, stat: FileStat, digest: Digest) {
        let key = self.key(path);
        let bytes = self.bytes.max(INDEX_HEADER) + RECORD_FIXED + key.len() as u64;
        if key.len() > MAX_INDEX_PATH || bytes > MAX_CACHE_FILE {
            return;
        }
        self.recorded.insert(key.into(), (stat, digest));
        self.bytes = bytes;
        self.changed = true;
        if self.recorded.len() >= MERGE_AT.max(self.sorted.records.len() / MERGE_SHARE) {
            self.merge();
        }
    }

    /// What `path` is filed under: its path below the base, or the whole
    /// path (which starts with `/`, unlike any path below it).
    fn key<'p>(&self, path: &'p Path) -> &'p [u8] {
        let whole = path.as_os_str().as_bytes();
        match whole.strip_prefix(&*self.base) {
            Some([b'/', below @ ..]) if !self.base.is_empty() && !below.is_empty() => below,
            _ => whole,
        }
    }

    /// Every entry, in order of path bytes: what was recorded in place of
    /// what was loaded.
    fn entries(&self) -> impl Iterator<Item = Entry<'_>> {
        let mut loaded = self.sorted.iter().peekable();
        let mut recorded = self
            .recorded
            .iter()
            .map(|(path, &(stat, digest))| (&**path, stat, digest))
            .peekable();
        std::iter::from_fn(move || {
            let order = match (loaded.peek(), recorded.peek()) {
                (Some(l), Some(r)) => l.0.cmp(r.0),
                (Some(_), None) => Ordering::Less,
                (None, _) => Ordering::Greater,
            };
            match order {
                Ordering::Less => loaded.next(),
                Ordering::Greater => recorded.next(),
                Ordering::Equal => {
                    loaded.next();
                    recorded.next()
                }
            }
        })
    }

    /// Merges what was recorded into the sorted part, in place: an entry
    /// already filed takes its new stat and digest where it is, the others'
    /// paths go to the end of the path buffer (records name their path by
    /// offset, in any order) and their records are merged in from the back
    /// of the grown record array. Never a second copy of the index: merging
    /// into a new one held both (24 MB at 100,000 files where the index is
    /// 13 MB).
    fn merge(&mut self) {
        let recorded = std::mem::take(&mut self.recorded);
        let sorted = &mut self.sorted;
        let mut added: Vec<Record> = Vec::new();
        for (path, (stat, digest)) in recorded {
            match sorted
                .records
                .binary_search_by(|r| sorted.path(r).cmp(&path))
            {
                Ok(i) => {
                    sorted.records[i].stat = stat;
                    sorted.records[i].digest = digest;
                }
                // Past a u32 never (`record` keeps the whole under
                // MAX_CACHE_FILE); left out if it were.
                Err(_) => {
                    if let Some((start, len)) = sorted.store_path(&path) {
                        added.push(Record {
                            start,
                            len,
                            stat,
                            digest,
                        });
                    }
                }
            }
        }
        // Both runs are in path order (`recorded` is a sorted map): fill
        // the grown array from its end with the greater of their lasts.
        let mut old = sorted.records.len();
        let Some(&filler) = added.first() else {
            self.bytes = sorted.encoded_len();
            return;
        };
        sorted.records.resize(old + added.len(), filler);
        for slot in (0..sorted.records.len()).rev() {
            let Some(&last_added) = added.last() else {
                break;
            };
            let take_old =
                old > 0 && sorted.path(&sorted.records[old - 1]) > sorted.path(&last_added);
            sorted.records[slot] = if take_old {
                old -= 1;
                sorted.records[old]
            } else {
                added.pop();
                last_added
            };
        }
        self.bytes = sorted.encoded_len();
    }

    /// The content digests of `files` (each with the stat its walk saw), in
    /// order. A file whose stat is what the index recorded, and that was not
    /// modified as late as the index was written (git's racy-clean rule),
    /// keeps its recorded digest; the others are read, on every core, and
    /// are the index's to record ([`StatIndex::record_read`]) once the
    /// digests are used.
    ///
    /// The files are asked for by position, `file(i, path)` for `i` below
    /// `count` setting `path` to the file's host path and returning its
    /// stat, so that no list of 300,000 host paths is held at once, nor
    /// one made per file.
    pub fn digests(
        &mut self,
        count: usize,
        file: &(impl Fn(usize, &mut PathBuf) -> FileStat + Sync),
    ) -> io::Result<Digests<'_>> {
        // Every digest known is then in the sorted part, named by its
        // place there.
        if !self.recorded.is_empty() {
            self.merge();
        }
        let too_many = || io::Error::other("more than 2^32 - 1 source files");
        let mut slots = Vec::with_capacity(count);
        let mut unknown: Vec<u32> = Vec::new();
        let mut path = PathBuf::new();
        let mut near = 0;
        for i in 0..count {
            let stat = file(i, &mut path);
            let slot = match self.find_near(&path, &stat, &mut near) {
                Some(Found::Sorted(at)) => u32::try_from(at).ok().filter(|&at| at != READ),
                _ => None,
            };
            slots.push(match slot {
                Some(at) => at,
                None => {
                    unknown.push(u32::try_from(i).map_err(|_| too_many())?);
                    READ
                }
            });
        }
        let mut read = vec![Digest::from_bytes([0; 32]); unknown.len()];
        hash_files(&unknown, file, &mut read)?;
        Ok(Digests {
            index: self,
            slots,
            unknown,
            read,
        })
    }

    /// Records the files [`StatIndex::digests`] read (`read`, from
    /// [`Digests::into_read`]), each asked for again by its position.
    pub fn record_read(&mut self, read: ReadFiles, file: impl Fn(usize, &mut PathBuf) -> FileStat) {
        let mut path = PathBuf::new();
        for (i, digest) in read.files.into_iter().zip(read.digests) {
            let stat = file(i as usize, &mut path);
            self.record(&path, stat, digest);
        }
    }
}

/// Where a stat index found a file's digest: in its sorted part, by
/// place, or among what it recorded since.
enum Found {
    Sorted(usize),
    Recorded(Digest),
}

/// The files [`StatIndex::digests`] read, by position, in order, and
/// their digests.
pub struct ReadFiles {
    pub files: Vec<u32>,
    pub digests: Vec<Digest>,
}

/// A [`Digests`] slot of a file that was read.
const READ: u32 = u32::MAX;

/// The content digests of a key's source files (see
/// [`StatIndex::digests`]): each known one by its place in the index (4
/// bytes a file where its digest is 32: a warm build of 300,000 files held
/// 9.6 MB of digests beside the index that has them), the others as read.
pub struct Digests<'a> {
    index: &'a StatIndex,
    /// Per file: its record in the index's sorted part, or [`READ`].
    slots: Vec<u32>,
    /// The files read, by position, in order, and their digests.
    unknown: Vec<u32>,
    read: Vec<Digest>,
}

impl Digests<'_> {
    /// Every file's digest, in order.
    pub fn iter(&self) -> impl Iterator<Item = Digest> + '_ {
        let mut read = self.read.iter();
        self.slots.iter().map(move |&slot| match slot {
            READ => read.next().copied().unwrap_or(Digest::from_bytes([0; 32])),
            at => self.index.sorted.records[at as usize].digest,
        })
    }

    /// The files read, by position, with their digests: what the index
    /// is to record.
    pub fn into_read(self) -> ReadFiles {
        ReadFiles {
            files: self.unknown,
            digests: self.read,
        }
    }
}

/// Writes a stat index file of the entries `entries` gives (twice: once
/// to count them for the header), which must come in strictly increasing
/// order of path bytes, each path at most [`MAX_INDEX_PATH`] bytes:
///
/// ```text
/// ingot stat index 2\n            INDEX_MAGIC
/// u64 records, u64 path bytes     the header, sizing the reader's buffers
/// per record, sorted by path:
///   u32 path length, path bytes
///   u64 size, i64 mtime_ns, i64 ctime_ns, u64 inode, u64 dev
///   32 bytes of sha256
/// ```
///
/// Every number is little-endian.
fn write_index<'a, I>(out: &mut dyn Write, entries: impl Fn() -> I) -> io::Result<()>
where
    I: Iterator<Item = Entry<'a>>,
{
    let (records, path_bytes) = entries().fold((0u64, 0u64), |(n, bytes), (path, ..)| {
        (n + 1, bytes + path.len() as u64)
    });
    out.write_all(INDEX_MAGIC)?;
    out.write_all(&records.to_le_bytes())?;
    out.write_all(&path_bytes.to_le_bytes())?;
    for (path, stat, digest) in entries() {
        let len = u32::try_from(path.len()).map_err(io::Error::other)?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(path)?;
        out.write_all(&stat.size.to_le_bytes())?;
        out.write_all(&stat.mtime_ns.to_le_bytes())?;
        out.write_all(&stat.ctime_ns.to_le_bytes())?;
        out.write_all(&stat.inode.to_le_bytes())?;
        out.write_all(&stat.dev.to_le_bytes())?;
        out.write_all(digest.as_bytes())?;
    }
    Ok(())
}

/// Reads a stat index file of `len` bytes in the form [`write_index`]
/// writes, streamed from `input`. None, for an index treated as empty,
/// unless it is that form exactly: the magic line, a header whose counts
/// add up to `len` (they size the buffers, so at most `len` bytes are
/// allocated), paths of at most [`MAX_INDEX_PATH`] bytes in strictly
/// increasing order, nothing after the last record. An old index in JSON
/// is not of the form, and is read as empty.
fn read_index(mut input: impl Read, len: u64) -> Option<Sorted> {
    let mut magic = [0u8; INDEX_MAGIC.len()];
    input.read_exact(&mut magic).ok()?;
    if magic != INDEX_MAGIC {
        return None;
    }
    let records = read_u64(&mut input)?;
    let path_bytes = read_u64(&mut input)?;
    let expected = records
        .checked_mul(RECORD_FIXED)
        .and_then(|n| n.checked_add(path_bytes))
        .and_then(|n| n.checked_add(INDEX_HEADER));
    if expected != Some(len) {
        return None;
    }
    let mut sorted = Sorted::with_capacity(
        usize::try_from(records).ok()?,
        usize::try_from(path_bytes).ok()?,
    );
    let mut path = Vec::with_capacity(MAX_INDEX_PATH);
    for _ in 0..records {
        let path_len = usize::try_from(read_u32(&mut input)?).ok()?;
        if path_len > MAX_INDEX_PATH {
            return None;
        }
        path.resize(path_len, 0);
        input.read_exact(&mut path).ok()?;
        let stat = FileStat {
            size: read_u64(&mut input)?,
            mtime_ns: read_u64(&mut input)?.cast_signed(),
            ctime_ns: read_u64(&mut input)?.cast_signed(),
            inode: read_u64(&mut input)?,
            dev: read_u64(&mut input)?,
        };
        let mut digest = [0u8; 32];
        input.read_exact(&mut digest).ok()?;
        let in_order = sorted
            .records
            .last()
            .is_none_or(|last| sorted.path(last) < path.as_slice());
        if !in_order || !sorted.push(&path, stat, Digest::from_bytes(digest)) {
            return None;
        }
    }
    // Nothing left over: the paths' lengths add up to the header's count.
    (input.read(&mut [0u8]).ok()? == 0).then_some(sorted)
}

fn read_u64(input: &mut impl Read) -> Option<u64> {
    let mut bytes = [0u8; 8];
    input.read_exact(&mut bytes).ok()?;
    Some(u64::from_le_bytes(bytes))
}

fn read_u32(input: &mut impl Read) -> Option<u32> {
    let mut bytes = [0u8; 4];
    input.read_exact(&mut bytes).ok()?;
    Some(u32::from_le_bytes(bytes))
}

/// The SHA-256 of each file `which` names, into `out` at the same place,
/// read on as many threads as there are cores (a cold build or a fresh
/// checkout reads every source once here). A file whose size is not what
/// its stat said changed while it was read.
fn hash_files(
    which: &[u32],
    file: &(impl Fn(usize, &mut PathBuf) -> FileStat + Sync),
    out: &mut [Digest],
) -> io::Result<()> {
    let hash = |i: usize| -> io::Result<Digest> {
        let mut path = PathBuf::new();
        let stat = file(i, &mut path);
        let path = path.as_path();
        // A source file: a symlink the walk found is followed, but a FIFO
        // or a device swapped in since is refused, never waited on.
        let file = file::open_regular(path, Links::Follow)?;
        let mut reader = HashingReader::new(io::BufReader::with_capacity(super::COPY_BUFFER, file));
        io::copy(&mut reader, &mut io::sink())?;
        let (digest, len) = reader.finish();
        if len != stat.size {
            return Err(io::Error::other(format!(
                "{} changed while it was read",
                path.display()
            )));
        }
        Ok(digest)
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(which.len());
    if threads <= 1 {
        for (slot, &i) in out.iter_mut().zip(which) {
            *slot = hash(i as usize)?;
        }
        return Ok(());
    }
    // Workers take files in turn from a shared counter: sizes vary too much
    // for fixed shares to balance. Each digest goes to its slot as it is
    // made; the first error stops them all.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots = std::sync::Mutex::new(out);
    let failed = std::sync::Mutex::new(None::<io::Error>);
    let panicked = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&i) = which.get(k) else { break };
                        match hash(i as usize) {
                            Ok(digest) => match slots.lock() {
                                Ok(mut slots) => slots[k] = digest,
                                Err(_) => break,
                            },
                            Err(e) => {
                                if let Ok(mut failed) = failed.lock() {
                                    failed.get_or_insert(e);
                                }
                                next.store(which.len(), std::sync::atomic::Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().any(|w| w.join().is_err())
    });
    if let Some(e) = failed.into_inner().ok().flatten() {
        return Err(e);
    }
    if panicked {
        return Err(io::Error::other("a hashing thread failed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_round_trip_and_corrupt_entries_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        let staging = BlobStore::open(&dir.path().join("staging")).unwrap();
        let blob = staging.put(b"layer bytes").unwrap();
        let layer = CachedLayer {
            digest: blob.digest,
            size: blob.size,
            diff_id: Digest::of(b"tar"),
            entries: 3,
            base_dependent: false,
            summary: None,
        };
        let key = Digest::of(b"key");
        assert_eq!(cache.layer(&key), None);
        cache.put_layer(&key, &layer, &staging).unwrap();
        assert_eq!(cache.layer(&key), Some(layer.clone()));

        // A truncated blob: the entry is not served, and is gone.
        let path = cache.blobs.path(&blob.digest);
        std::fs::remove_file(&path).unwrap(); // break the hard link first
        std::fs::write(&path, b"layer").unwrap();
        assert_eq!(cache.layer(&key), None);
        assert!(!cache.layer_path(&key).exists());
        assert!(staging.read(&blob).is_ok(), "the staging copy is untouched");
    }

    #[test]
    fn file_stats_are_compact_and_odd_times_saturate() {
        assert_eq!(std::mem::size_of::<FileStat>(), 40);
        assert_eq!(epoch_ns(1_700_000_000, 5), 1_700_000_000_000_000_005);
        assert_eq!(epoch_ns(-1, 999_999_999), -1);
        assert_eq!(epoch_ns(i64::MAX / 1000, 0), i64::MAX);
        assert_eq!(epoch_ns(i64::MIN / 1000, 0), i64::MIN);
        assert_eq!(epoch_ns(i64::MAX, i64::MAX), i64::MAX);
    }

    /// A recipe's index files its sources by their path below the
    /// recipe's directory, and anything else by its whole path; both are
    /// found again after a save and a load.
    #[test]
    fn stat_index_files_paths_below_its_directory_relative() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        let recipe = dir.path().join("recipe");
        let stat = FileStat {
            size: 3,
            mtime_ns: 1,
            ctime_ns: 2,
            inode: 4,
            dev: 5,
        };
        let below = recipe.join("files/a.txt");
        let outside = dir.path().join("recipe-other/b.txt");
        let mut index = cache.stat_index(&recipe);
        index.record(&below, stat, Digest::of(b"a"));
        index.record(&outside, stat, Digest::of(b"b"));
        cache.save_stat_index(&recipe, &index).unwrap();

        let saved = std::fs::read(cache.stat_path(&recipe)).unwrap();
        let holds = |s: &str| saved.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(holds("files/a.txt") && !holds(&below.display().to_string()));
        assert!(holds(&outside.display().to_string()));

        let index = cache.stat_index(&recipe);
        assert_eq!(index.known(&below, &stat), Some(Digest::of(b"a")));
        assert_eq!(index.known(&outside, &stat), Some(Digest::of(b"b")));
        assert_eq!(index.known(&recipe.join("files/c.txt"), &stat), None);
    }

    #[test]
    fn stat_index_rehashes_changed_and_racy_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(&dir.path().join("cache")).unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let files: Vec<PathBuf> = (0..5).map(|i| src.join(format!("f{i}"))).collect();
        for (i, f) in files.iter().enumerate() {
            std::fs::write(f, format!("content {i}")).unwrap();
        }
        let stats = |files: &[PathBuf]| -> Vec<FileStat> {
            files
                .iter()
                .map(|f| FileStat::of(&std::fs::metadata(f).unwrap()))
                .collect()
        };
        // Every file's digest, and which files were read (and recorded).
        let digests = |index: &mut StatIndex, files: &[PathBuf]| -> (Vec<Digest>, Vec<u32>) {
            let stats = stats(files);
            let file = |i: usize, path: &mut PathBuf| {
                path.clone_from(&files[i]);
                stats[i]
            };
            let found = index.digests(files.len(), &file).unwrap();
            let all = found.iter().collect();
            let read = found.into_read();
            let positions = read.files.clone();
            index.record_read(read, file);
            (all, positions)
        };

        // Hashed on several threads, returned in order.
        let mut index = cache.stat_index(&src);
        let want: Vec<Digest> = (0..5)
            .map(|i| Digest::of(format!("content {i}").as_bytes()))
            .collect();
        assert_eq!(
            digests(&mut index, &files),
            (want.clone(), vec![0, 1, 2, 3, 4])
        );
        cache.save_stat_index(&src, &index).unwrap();

        // Same size, new content, and the file is no older than the index:
        // the racy-clean rule re-hashes it even if its stat looked equal.
        std::fs::write(&files[2], "content X").unwrap();
        let mut index = cache.stat_index(&src);
        let (got, read) = digests(&mut index, &files);
        assert_eq!(got[2], Digest::of(b"content X"));
        assert_eq!(got[4], want[4]);
        // Only the file the index cannot vouch for is read, unless a
        // clock tick did not pass since the index was written (then every
        // file is racy, and read again).
        assert!(read == [2] || read == [0, 1, 2, 3, 4], "{read:?}");
        // What it read is recorded (merged into the sorted part before
        // the next lookups), and gives the same digests.
        assert_eq!(digests(&mut index, &files).0, got);

        // A file that changes size between the walk and the read is refused.
        // (A fresh index reads it: one loaded from disk could serve the
        // recorded digest when a clock tick passed since it was written.)
        let seen = stats(&files[..1]);
        std::fs::write(&files[0], "longer content now").unwrap();
        let mut fresh = StatIndex::default();
        let Err(err) = fresh.digests(1, &|_, path: &mut PathBuf| {
            path.clone_from(&files[0]);
            seen[0]
        }) else {
            panic!("a file that changed while it was read was taken");
        };
        assert!(
            err.to_string().contains("changed while it was read"),
            "{err}"
        );
    }

    /// A lookup near the last one finds what a binary search finds, in
    /// path order, out of it, past the end and for what is absent.
    #[test]
    fn sorted_lookups_near_the_last_find_the_same() {
        let mut sorted = Sorted::default();
        let paths = ["a/1", "a/2", "a/3", "b", "c/x"];
        for (i, p) in paths.iter().enumerate() {
            assert!(sorted.push(p.as_bytes(), old_stat(i), Digest::of(p.as_bytes())));
        }
        let mut near = 0;
        for asked in ["a/1", "a/2", "c/x", "a/3", "b", "a/1", "zz", "a/0", "c/x"] {
            let found = sorted.get_near(asked.as_bytes(), &mut near);
            assert_eq!(
                found.map(|at| sorted.records[at].digest),
                paths.contains(&asked).then(|| Digest::of(asked.as_bytes())),
                "{asked}"
            );
            if let Some(i) = paths.iter().position(|p| *p == asked) {
                assert_eq!(near, i + 1, "{asked}");
            }
        }
    }

    /// A stat far older than any index file written by a test.
    fn old_stat(i: usize) -> FileStat {
        FileStat {
            size: i as u64,
            mtime_ns: 1_000 + i as i64,
            ctime_ns: -5,
            inode: i as u64 * 7,
            dev: 1,
        }
    }

    fn digest_of(path: &Path) -> Digest {
        Digest::of(path.as_os_str().as_bytes())
    }

    /// Paths of varied lengths and depths, in no order.
    fn many_paths(n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| {
                let name = format!("{}{i}", "x".repeat(i % 50));
                Path::new("/src").join(format!("d{}", i % 37)).join(name)
            })
            .collect()
    }

    /// An index written long after `paths` were recorded in it, each with
    /// its [`old_stat`] and [`digest_of`] it.
    fn recorded(paths: &[PathBuf]) -> StatIndex {
        let mut index = StatIndex {
            written_ns: Some(i64::MAX),
            ..StatIndex::default()
        };
        for (i, path) in paths.iter().enumerate() {
            index.record(path, old_stat(i), digest_of(path));
        }
        index
    }

    #[test]
    fn stat_index_lookups_find_every_entry_and_miss_absent_ones() {
        let paths = many_paths(3000);
        let mut index = recorded(&paths);
        // Merged as it grew, and found in either part.
        assert!(index.sorted.records.len() >= MERGE_AT);
        assert!(!index.recorded.is_empty());
        for (i, path) in paths.iter().enumerate() {
            assert_eq!(index.known(path, &old_stat(i)), Some(digest_of(path)));
            assert_eq!(index.known(path, &old_stat(i + 1)), None, "stat changed");
        }
        for absent in ["/", "/src/d0", "/src/d0/x", "/src/d9/~", "/zz"] {
            assert_eq!(index.known(Path::new(absent), &old_stat(0)), None);
        }
        // A path recorded again replaces its entry.
        index.record(&paths[7], old_stat(1), Digest::of(b"new"));
        index.merge();
        assert_eq!(index.sorted.records.len(), paths.len());
        assert_eq!(
            index.known(&paths[7], &old_stat(1)),
            Some(Digest::of(b"new"))
        );
        assert_eq!(index.bytes, index.sorted.encoded_len());
        // Merged in place: every path once, in order, and no bytes of the
        // path buffer left over from a replaced entry.
        let filed: Vec<&[u8]> = index.sorted.iter().map(|(p, _, _)| p).collect();
        let mut keys: Vec<&[u8]> = paths.iter().map(|p| index.key(p)).collect();
        keys.sort();
        assert_eq!(filed, keys);
        let key_bytes: usize = keys.iter().map(|k| k.len()).sum();
        assert_eq!(index.sorted.paths.len(), key_bytes);
    }

    /// Files the index knows, in its sorted part or recorded since, are
    /// served by it, never read (these do not exist); only the others are
    /// read, returned for the index to record, and in their places.
    #[test]
    fn known_files_are_served_without_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let paths = many_paths(3000);
        let mut index = recorded(&paths);
        assert!(!index.recorded.is_empty(), "some are recorded, not merged");
        let fresh = dir.path().join("fresh");
        std::fs::write(&fresh, "fresh content").unwrap();
        let fresh_stat = FileStat::of(&std::fs::metadata(&fresh).unwrap());
        // Every other file asked for is the fresh one on the host.
        let file = |i: usize, path: &mut PathBuf| {
            if i.is_multiple_of(2) {
                path.clone_from(&paths[i]);
                old_stat(i)
            } else {
                path.clone_from(&fresh);
                fresh_stat
            }
        };
        let found = index.digests(paths.len(), &file).unwrap();
        let got: Vec<Digest> = found.iter().collect();
        for (i, digest) in got.iter().enumerate() {
            let want = match i % 2 {
                0 => digest_of(&paths[i]),
                _ => Digest::of(b"fresh content"),
            };
            assert_eq!(*digest, want, "file {i}");
        }
        let read = found.into_read();
        let odd: Vec<u32> = (0..paths.len() as u32).filter(|i| i % 2 == 1).collect();
        assert_eq!(read.files, odd);
        index.record_read(read, file);
        assert_eq!(
            index.known(&fresh, &fresh_stat),
            Some(Digest::of(b"fresh content"))
        );
    }

    #[test]
    fn stat_indexes_round_trip_through_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let src = Path::new("/src");
        let paths = many_paths(5000);
        let mut index = cache.stat_index(src);
        for (i, path) in paths.iter().enumerate().rev() {
            index.record(path, old_stat(i), digest_of(path));
        }
        cache.save_stat_index(src, &index).unwrap();
        let file = cache.stat_path(src);
        assert!(file.ends_with(format!("{}.index", Digest::of(b"/src").hex())));

        let loaded = cache.stat_index(src);
        assert!(loaded.recorded.is_empty());
        assert_eq!(loaded.sorted.records.len(), paths.len());
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            loaded.sorted.encoded_len()
        );
        for (i, path) in paths.iter().enumerate() {
            assert_eq!(loaded.known(path, &old_stat(i)), Some(digest_of(path)));
        }
        assert_eq!(loaded.known(Path::new("/src/absent"), &old_stat(0)), None);

        // Recording after loading, then saving, keeps old and new entries.
        let mut index = loaded;
        let added = many_paths(6000).split_off(5000);
        for (i, path) in added.iter().enumerate() {
            index.record(path, old_stat(i), digest_of(path));
        }
        index.record(&paths[3], old_stat(99), Digest::of(b"changed"));
        cache.save_stat_index(src, &index).unwrap();
        let loaded = cache.stat_index(src);
        assert_eq!(loaded.sorted.records.len(), 6000);
        for (i, path) in added.iter().enumerate() {
            assert_eq!(loaded.known(path, &old_stat(i)), Some(digest_of(path)));
        }
        assert_eq!(
            loaded.known(&paths[4], &old_stat(4)),
            Some(digest_of(&paths[4]))
        );
        assert_eq!(loaded.known(&paths[3], &old_stat(3)), None);
        assert_eq!(
            loaded.known(&paths[3], &old_stat(99)),
            Some(Digest::of(b"changed"))
        );

        // The cache's index of its own blobs, the same way.
        let blob = Digest::of(b"blob");
        cache.record_checked(&blob, old_stat(1));
        cache.save_checked().unwrap();
        let reopened = Cache::open(dir.path()).unwrap();
        assert!(reopened.blob_checked(&blob, &old_stat(1)));
        assert!(!reopened.blob_checked(&blob, &old_stat(2)));
        assert!(dir.path().join("stat/blobs.index").is_file());
    }

    #[test]
    fn stat_indexes_not_of_their_form_load_empty() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let src = Path::new("/src");
        let file = cache.stat_path(src);
        // Filed below the index's directory, as a recipe's are.
        let entries = [
            (&b"a"[..], old_stat(1), Digest::of(b"a")),
            (&b"b"[..], old_stat(2), Digest::of(b"b")),
        ];
        let encode = |entries: &[Entry]| {
            let mut out = Vec::new();
            write_index(&mut out, || entries.iter().copied()).unwrap();
            out
        };
        let good = encode(&entries);
        let loads = |bytes: &[u8]| {
            std::fs::write(&file, bytes).unwrap();
            let index = cache.stat_index(src);
            let known = index.known(Path::new("/src/a"), &old_stat(1));
            assert_eq!(known.is_some(), !index.sorted.records.is_empty());
            index.sorted.records.len()
        };
        assert_eq!(loads(&good), 2);

        let last_record = good.len() - (RECORD_FIXED as usize + 1);
        let mut bad_magic = good.clone();
        bad_magic[0] = b'J';
        let mut trailing = good.clone();
        trailing.push(0);
        let mut huge_count = good.clone();
        huge_count[INDEX_MAGIC.len()..][..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let reversed = encode(&[entries[1], entries[0]]);
        let repeated = encode(&[entries[0], entries[0]]);
        let long = vec![b'a'; MAX_INDEX_PATH + 1];
        let too_long = encode(&[(&long, old_stat(1), Digest::of(b"a"))]);
        let json = br#"{"/src/a":[{"size":1,"mtime_ns":1001,"ctime_ns":-5,"inode":7,"dev":1},"sha256:00"]}"#;
        for (what, bytes) in [
            ("truncated in a record", &good[..good.len() - 1]),
            ("truncated at a record", &good[..last_record]),
            ("truncated in the header", &good[..INDEX_MAGIC.len() + 3]),
            ("empty", &[][..]),
            ("bad magic", &bad_magic),
            ("a byte after the end", &trailing),
            ("a count past the end", &huge_count),
            ("out of order", &reversed),
            ("a path twice", &repeated),
            ("a path too long", &too_long),
            ("old JSON", &json[..]),
        ] {
            assert_eq!(loads(bytes), 0, "{what}");
        }

        // Not a regular file: refused, never waited on.
        std::fs::remove_file(&file).unwrap();
        let fifo = std::ffi::CString::new(file.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(cache.stat_index(src).sorted.records.is_empty());
        std::fs::remove_file(&file).unwrap();
        let real = dir.path().join("real.index");
        std::fs::write(&real, &good).unwrap();
        std::os::unix::fs::symlink(&real, &file).unwrap();
        assert!(cache.stat_index(src).sorted.records.is_empty());
    }

    #[test]
    fn stat_indexes_refuse_what_they_could_not_load() {
        let mut index = StatIndex::default();
        let long = PathBuf::from("/".repeat(MAX_INDEX_PATH + 1));
        index.record(&long, old_stat(1), Digest::of(b"a"));
        index.bytes = MAX_CACHE_FILE - RECORD_FIXED;
        index.record(Path::new("/a"), old_stat(1), Digest::of(b"a"));
        assert!(index.recorded.is_empty() && !index.changed);
        index.bytes = 0;
        index.record(Path::new("/a"), old_stat(1), Digest::of(b"a"));
        assert_eq!(index.recorded.len(), 1);
    }
}
