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

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use super::file::{self, Links};
use super::layout::{Replacement, file_mode, replace_file, replace_file_with};
use super::stat_index::{SourceIndex, StatIndex};
use super::{BlobStore, link_or_copy};
use crate::digest::Digest;
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
    /// beside the entry, in `<key-hex>.summary`; read with the entry, and
    /// written as a [`SummaryDraft`].
    #[serde(skip)]
    pub summary: Option<Summary>,
}

/// A layer's summary being written in its file's form, into a temp file
/// among the cache's summaries, as the build makes it: a large layer's is
/// megabytes, never held. Filed with its layer by [`Cache::put_layer`];
/// gone if dropped unfiled.
pub struct SummaryDraft(Replacement);

impl Write for SummaryDraft {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
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

/// What a verdict's file says: the key says on what.
const VERDICT: &str = "passed";

/// The cache's directories of entries, beside its store's `blobs`.
const DIRS: [&str; 6] = [
    "layers",
    "stat",
    "bases",
    "attestations",
    "files",
    "verdicts",
];

impl Cache {
    /// Opens (creating) the cache at `root`.
    pub fn open(root: &Path) -> Result<Cache> {
        for dir in DIRS {
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

    /// A summary to be made under `version` and filed with a layer.
    pub fn summary_draft(&self, version: &str) -> io::Result<SummaryDraft> {
        self.draft_in("layers", version)
    }

    /// A summary to be made under `version` in the cache directory `dir`.
    fn draft_in(&self, dir: &str, version: &str) -> io::Result<SummaryDraft> {
        let mut draft = Replacement::in_dir(&self.root.join(dir), file_mode())?;
        draft.write_all(version.as_bytes())?;
        draft.write_all(b"\n")?;
        Ok(SummaryDraft(draft))
    }

    /// Records `layer` under `key`, its blob (checked as it was written in
    /// `from`) kept as [`keep_blob`](Self::keep_blob) does, with `summary`,
    /// or none. The summary is filed before the entry: an entry never
    /// stands beside another layer's summary.
    pub fn put_layer(
        &self,
        key: &Digest,
        layer: &CachedLayer,
        summary: Option<SummaryDraft>,
        from: &BlobStore,
    ) -> Result<()> {
        self.keep_blob(&layer.digest, from)?;
        let path = self.layer_summary_path(key);
        match summary {
            Some(draft) => draft.0.put(&path)?,
            None => {
                let _ = std::fs::remove_file(&path);
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
                index.save(&self.checked_path())
            }
            None => Ok(()),
        }
    }

    fn with_checked<T>(&self, f: impl FnOnce(&mut StatIndex) -> T) -> T {
        let index = self
            .checked
            .get_or_init(|| Mutex::new(StatIndex::load(&self.checked_path())));
        f(&mut index.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn checked_path(&self) -> PathBuf {
        self.root.join("stat").join("blobs.index")
    }

    /// The stat index of the source root `dir`.
    pub fn stat_index(&self, dir: &Path) -> SourceIndex {
        SourceIndex::new(self.stat_path(dir), dir)
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

    /// A summary of base layers to be made under `version`.
    pub fn base_draft(&self, version: &str) -> io::Result<SummaryDraft> {
        self.draft_in("bases", version)
    }

    /// Records what reading the base layers `key` names taught a build.
    pub fn put_base(&self, key: &Digest, summary: SummaryDraft) -> Result<()> {
        summary.0.put(&self.summary_path("bases", key))
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

    /// The list of a layer's files filed by `key` under `version` (see
    /// `attest::files`), open, with the offset its body starts at: read
    /// as it is used, never whole (a layer of 300,000 files lists 18 MB).
    pub fn layer_files(&self, key: &Digest, version: &str) -> Option<(File, u64)> {
        let mut file = file::open_regular(&self.summary_path("files", key), Links::Refuse).ok()?;
        let mut head = vec![0; version.len() + 1];
        io::Read::read_exact(&mut file, &mut head).ok()?;
        (head[..version.len()] == *version.as_bytes() && head[version.len()] == b'\n')
            .then_some((file, head.len() as u64))
    }

    /// A list of a layer's files to be made under `version`, written as
    /// it is encoded (a layer of 300,000 files lists 18 MB).
    pub fn layer_files_draft(&self, version: &str) -> io::Result<SummaryDraft> {
        self.draft_in("files", version)
    }

    /// Files the list `draft` holds by `key`.
    pub fn put_layer_files(&self, key: &Digest, draft: SummaryDraft) -> Result<()> {
        draft.0.put(&self.summary_path("files", key))
    }

    /// Whether a build passed its checks and seal on what `key` names
    /// (see `pipeline::verdict_key`).
    pub fn verdict(&self, key: &Digest) -> bool {
        self.summary("verdicts", key)
            .is_some_and(|s| s.version == VERDICT && s.body.is_empty())
    }

    /// Records that a build passed its checks and seal on what `key` names.
    pub fn put_verdict(&self, key: &Digest) -> Result<()> {
        let passed = Summary {
            version: VERDICT.into(),
            body: Vec::new(),
        };
        self.put_summary("verdicts", key, &passed)
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
        for dir in std::iter::once("blobs").chain(DIRS) {
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
        cache.put_layer(&key, &layer, None, &staging).unwrap();
        assert_eq!(cache.layer(&key), Some(layer.clone()));

        // With a summary written as a draft: read back with the entry; a
        // draft dropped unfiled leaves nothing; filed again without one,
        // the entry has none.
        let mut draft = cache.summary_draft("v 1").unwrap();
        draft.write_all(b"body\nbytes").unwrap();
        drop(cache.summary_draft("v 1").unwrap());
        cache
            .put_layer(&key, &layer, Some(draft), &staging)
            .unwrap();
        let summary = Summary {
            version: "v 1".into(),
            body: b"body\nbytes".to_vec(),
        };
        assert_eq!(cache.layer(&key).unwrap().summary, Some(summary));
        let mut files: Vec<_> = std::fs::read_dir(cache.root().join("layers"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        let names = [
            format!("{}.json", key.hex()),
            format!("{}.summary", key.hex()),
        ];
        assert_eq!(files, names);
        cache.put_layer(&key, &layer, None, &staging).unwrap();
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
}
