//! Stat indexes: what a file's stat said when it was last read whole, and
//! its content digest then (the cache's `stat/*.index` files).
//!
//! A file whose stat is unchanged is taken to have unchanged content, as
//! git's index does, with git's "racy clean" exception: a file modified
//! no earlier than the index was written is read again, since a change
//! within the same clock tick would not show in its stat.
//!
//! Two readers of the one file form:
//! - [`SourceIndex`], the index of a recipe's source files, is never held:
//!   a key's files are looked up by streaming the file once against them,
//!   sorted as it is, and what was read is saved by streaming it again
//!   into its replacement. A tree of 300,000 files held its index (44 MB)
//!   beside its walk; now it holds a digest a file (issue 19).
//! - [`StatIndex`], held in memory and merged as it records: the index of
//!   the cache's own blobs, a record per blob.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::cache::{FileStat, MAX_CACHE_FILE};
use super::file::{self, Links};
use super::layout::replace_file_with;
use crate::digest::{Digest, HashingReader};
use crate::error::{IoContext, Result};

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

/// The bytes of an index file of `records` records whose paths have
/// `path_bytes` bytes in all.
fn encoded_len(records: u64, path_bytes: u64) -> u64 {
    INDEX_HEADER + RECORD_FIXED * records + path_bytes
}

/// An index file, opened for reading: its records, and when it was written
/// (its mtime: the racy-clean line).
struct IndexFile {
    file: File,
    len: u64,
    written_ns: i64,
}

impl IndexFile {
    /// The index at `path`, if it is a regular file of at most
    /// [`MAX_CACHE_FILE`] bytes (not yet read: see [`Records`]).
    fn open(path: &Path) -> Option<IndexFile> {
        let file = file::open_regular(path, Links::Refuse).ok()?;
        // The racy-clean line is the mtime of the file read, not of
        // whatever is at its path by now.
        let meta = file.metadata().ok()?;
        (meta.len() <= MAX_CACHE_FILE).then(|| IndexFile {
            len: meta.len(),
            written_ns: FileStat::of(&meta).mtime_ns,
            file,
        })
    }

    /// Its records, streamed from its start; None unless its header is of
    /// the form [`write_header`] writes and sizes it exactly.
    fn records(&self) -> Option<Records<impl Read + '_>> {
        let mut file = &self.file;
        file.rewind().ok()?;
        Records::open(
            io::BufReader::with_capacity(1 << 16, file.take(self.len)),
            self.len,
        )
    }
}

/// The records of an index file, streamed in order, each checked as it
/// comes: the form is the magic line, a header whose counts add up to the
/// file's length, paths of at most [`MAX_INDEX_PATH`] bytes in strictly
/// increasing order, nothing after the last record. An old index in JSON
/// is not of the form.
struct Records<R> {
    input: R,
    count: u64,
    path_bytes: u64,
    left: u64,
    path: Vec<u8>,
    last: Vec<u8>,
}

/// A stat index file not of its form: it is taken as empty.
#[derive(Debug)]
struct Malformed;

impl<R: Read> Records<R> {
    fn open(mut input: R, len: u64) -> Option<Records<R>> {
        let mut magic = [0u8; INDEX_MAGIC.len()];
        input.read_exact(&mut magic).ok()?;
        if magic != INDEX_MAGIC {
            return None;
        }
        let count = read_u64(&mut input)?;
        let path_bytes = read_u64(&mut input)?;
        let expected = count
            .checked_mul(RECORD_FIXED)
            .and_then(|n| n.checked_add(path_bytes))
            .and_then(|n| n.checked_add(INDEX_HEADER));
        (expected == Some(len)).then(|| Records {
            input,
            count,
            path_bytes,
            left: count,
            path: Vec::with_capacity(MAX_INDEX_PATH),
            last: Vec::new(),
        })
    }

    /// The next record; None after the last, which must end the file.
    fn next(&mut self) -> std::result::Result<Option<Entry<'_>>, Malformed> {
        if self.left == 0 {
            // Nothing left over: the paths' lengths add up to the header's.
            return match self.input.read(&mut [0u8]) {
                Ok(0) => Ok(None),
                _ => Err(Malformed),
            };
        }
        self.left -= 1;
        std::mem::swap(&mut self.path, &mut self.last);
        let input = &mut self.input;
        let path_len = read_u32(input).ok_or(Malformed)? as usize;
        if path_len > MAX_INDEX_PATH {
            return Err(Malformed);
        }
        self.path.resize(path_len, 0);
        input.read_exact(&mut self.path).map_err(|_| Malformed)?;
        let stat = FileStat {
            size: read_u64(input).ok_or(Malformed)?,
            mtime_ns: read_u64(input).ok_or(Malformed)?.cast_signed(),
            ctime_ns: read_u64(input).ok_or(Malformed)?.cast_signed(),
            inode: read_u64(input).ok_or(Malformed)?,
            dev: read_u64(input).ok_or(Malformed)?,
        };
        let mut digest = [0u8; 32];
        input.read_exact(&mut digest).map_err(|_| Malformed)?;
        let first = self.left + 1 == self.count;
        if !first && self.last >= self.path {
            return Err(Malformed);
        }
        Ok(Some((&self.path, stat, Digest::from_bytes(digest))))
    }
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

/// Writes the head of a stat index file of `records` records whose paths
/// have `path_bytes` bytes in all; [`write_record`] writes each, in strictly
/// increasing order of path bytes, each path at most [`MAX_INDEX_PATH`]:
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
fn write_header(out: &mut dyn Write, records: u64, path_bytes: u64) -> io::Result<()> {
    out.write_all(INDEX_MAGIC)?;
    out.write_all(&records.to_le_bytes())?;
    out.write_all(&path_bytes.to_le_bytes())
}

/// Writes one record (see [`write_header`]).
fn write_record(out: &mut dyn Write, (path, stat, digest): Entry) -> io::Result<()> {
    let len = u32::try_from(path.len()).map_err(io::Error::other)?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(path)?;
    out.write_all(&stat.size.to_le_bytes())?;
    out.write_all(&stat.mtime_ns.to_le_bytes())?;
    out.write_all(&stat.ctime_ns.to_le_bytes())?;
    out.write_all(&stat.inode.to_le_bytes())?;
    out.write_all(&stat.dev.to_le_bytes())?;
    out.write_all(digest.as_bytes())
}

/// A file of a [`SourceIndex`] lookup: the path it is filed under, the
/// concatenation of its root's ([`SourceIndex::root_key`]) and its path
/// below that root, joined by `/` when both are there. Held as the two
/// parts, which a walk has, not as one string a file. Keys compare (and
/// are equal) as the paths they join to: `a` and `b/c` is `a/b` and `c`.
#[derive(Debug, Clone, Copy)]
pub struct Key<'a> {
    pub root: &'a [u8],
    pub rel: &'a str,
}

impl Key<'_> {
    /// The parts whose concatenation the key is.
    fn parts(&self) -> [&[u8]; 3] {
        let joined = !self.root.is_empty() && !self.rel.is_empty() && !self.root.ends_with(b"/");
        [
            self.root,
            if joined { b"/" } else { b"" },
            self.rel.as_bytes(),
        ]
    }

    fn len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }

    fn cmp_bytes(&self, other: &[u8]) -> Ordering {
        cmp_joined(self.parts(), [other, b"", b""])
    }

    fn write_into(&self, out: &mut Vec<u8>) {
        out.clear();
        for part in self.parts() {
            out.extend_from_slice(part);
        }
    }
}

impl Ord for Key<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.root == other.root && !self.rel.is_empty() && !other.rel.is_empty() {
            return self.rel.cmp(other.rel);
        }
        cmp_joined(self.parts(), other.parts())
    }
}

impl PartialEq for Key<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key<'_> {}

impl PartialOrd for Key<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Compares the concatenations of `a`'s and `b`'s parts, byte by byte.
fn cmp_joined(a: [&[u8]; 3], b: [&[u8]; 3]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    let (mut x, mut y) = (a[0], b[0]);
    loop {
        while x.is_empty() && i + 1 < a.len() {
            i += 1;
            x = a[i];
        }
        while y.is_empty() && j + 1 < b.len() {
            j += 1;
            y = b[j];
        }
        if x.is_empty() || y.is_empty() {
            // The one that ran out first is a prefix of the other.
            return y.is_empty().cmp(&x.is_empty());
        }
        let n = x.len().min(y.len());
        match x[..n].cmp(&y[..n]) {
            Ordering::Equal => (x, y) = (&x[n..], &y[n..]),
            decided => return decided,
        }
    }
}

/// The files a [`SourceIndex`] is asked about, by position.
pub trait SourceFiles: Sync {
    fn count(&self) -> usize;
    /// The path file `i` is filed under.
    fn key(&self, i: usize) -> Key<'_>;
    /// The stat the walk saw of file `i`.
    fn stat(&self, i: usize) -> FileStat;
    /// Sets `path` to file `i`'s path on the host.
    fn host_path(&self, i: usize, path: &mut PathBuf);
}

/// The stat index of a source directory, filed at `file`: never held, each
/// lookup streams it (see the module's doc).
#[derive(Debug, Clone)]
pub struct SourceIndex {
    file: PathBuf,
    /// The directory whose files are filed by their path below it (most of
    /// each path's bytes, in a recipe's index); others by their whole path.
    base: PathBuf,
}

impl SourceIndex {
    pub fn new(file: PathBuf, base: &Path) -> SourceIndex {
        SourceIndex {
            file,
            base: base.to_path_buf(),
        }
    }

    /// What the files below `root` are filed under ([`Key::root`]): its
    /// path below the index's directory (empty for the directory itself),
    /// or its whole path, which starts with `/`, unlike any path below.
    pub fn root_key(&self, root: &Path) -> Vec<u8> {
        let whole = root.as_os_str().as_bytes();
        match root.strip_prefix(&self.base) {
            Ok(below) if !self.base.as_os_str().is_empty() => below.as_os_str().as_bytes().to_vec(),
            _ => whole.to_vec(),
        }
    }

    /// The content digest of each of `files`, in order. A file whose stat
    /// is what the index recorded, and that was not modified as late as
    /// the index was written (the racy-clean rule), has its recorded
    /// digest; the others are read, on every core, and then recorded:
    /// the index file is replaced by one with their records in. (A record
    /// that cannot be saved only costs a read next time.)
    ///
    /// The files are sorted by key (a `u32` each) and joined against the
    /// index's records as they stream by: a digest a file is all that is
    /// held, not the index.
    pub fn digests(&self, files: &impl SourceFiles) -> io::Result<Vec<Digest>> {
        let count = files.count();
        let too_many = || io::Error::other("more than 2^32 - 1 source files");
        let mut order: Vec<u32> = (0..u32::try_from(count).map_err(|_| too_many())?).collect();
        // Stable and adaptive: a walk lists files nearly in key order.
        order.sort_by(|&a, &b| files.key(a as usize).cmp(&files.key(b as usize)));
        let mut digests = vec![Digest::from_bytes([0; 32]); count];
        let mut known = vec![false; count];
        let index = IndexFile::open(&self.file);
        let filed = index
            .as_ref()
            .and_then(|index| join(index, &order, files, &mut digests, &mut known));
        if filed.is_none() {
            known.fill(false);
        }
        let unknown: Vec<u32> = (0..count as u32).filter(|&i| !known[i as usize]).collect();
        if unknown.is_empty() {
            return Ok(digests);
        }
        let mut read = vec![Digest::from_bytes([0; 32]); unknown.len()];
        hash_files(
            &unknown,
            &|i, path| {
                files.host_path(i, path);
                files.stat(i)
            },
            &mut read,
        )?;
        for (&i, digest) in unknown.iter().zip(read) {
            digests[i as usize] = digest;
        }
        let old = index.zip(filed);
        let _ = self.save(old, &order, files, &digests);
        Ok(digests)
    }

    /// Replaces the index file with the records of `old` (its file and what
    /// [`join`] found of the files in it) and of `files`, in place of any
    /// record of the same path, merged as both stream by.
    fn save(
        &self,
        old: Option<(IndexFile, Filed)>,
        order: &[u32],
        files: &impl SourceFiles,
        digests: &[Digest],
    ) -> Result<()> {
        // The JSON form an older ingot filed beside it, never read again.
        let _ = std::fs::remove_file(self.file.with_extension("json"));
        let new = distinct(order, files).filter(|&i| files.key(i).len() <= MAX_INDEX_PATH);
        let (mut records, mut path_bytes) = new.fold((0u64, 0u64), |(n, bytes), i| {
            (n + 1, bytes + files.key(i).len() as u64)
        });
        let (old_records, filed) = match &old {
            Some((index, filed)) => (index.records(), *filed),
            None => (None, Filed::default()),
        };
        if let Some(old) = &old_records {
            records += old.count - filed.records;
            path_bytes += old.path_bytes - filed.path_bytes;
        }
        if encoded_len(records, path_bytes) > MAX_CACHE_FILE {
            return Ok(());
        }
        replace_file_with(&self.file, |out| {
            write_merged(
                out,
                (records, path_bytes),
                old_records,
                order,
                files,
                digests,
            )
            .context(|| format!("writing {}", self.file.display()))
        })
    }
}

/// How many distinct paths of the files looked up an index file had
/// records of, and their bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Filed {
    records: u64,
    path_bytes: u64,
}

/// The files of `order` (positions sorted by key), each once: the first of
/// any with the same key.
fn distinct<'a>(order: &'a [u32], files: &'a impl SourceFiles) -> impl Iterator<Item = usize> + 'a {
    order.iter().enumerate().filter_map(move |(k, &i)| {
        let repeat = k > 0 && files.key(order[k - 1] as usize) == files.key(i as usize);
        (!repeat).then_some(i as usize)
    })
}

/// Streams `index` against `files` (positions in key order): each file
/// whose record has its stat, and that was not modified as late as the
/// index was written, gets the record's digest and is `known`. Returns
/// what of the files the index has records of; None for an index not of
/// its form (what it served is then not to be trusted either).
fn join(
    index: &IndexFile,
    order: &[u32],
    files: &impl SourceFiles,
    digests: &mut [Digest],
    known: &mut [bool],
) -> Option<Filed> {
    let mut records = index.records()?;
    let mut filed = Filed::default();
    let mut at = 0;
    while let Some((path, stat, digest)) = records.next().ok()? {
        while order
            .get(at)
            .is_some_and(|&i| files.key(i as usize).cmp_bytes(path) == Ordering::Less)
        {
            at += 1;
        }
        let mut matched = false;
        while let Some(&i) = order.get(at) {
            let i = i as usize;
            if files.key(i).cmp_bytes(path) != Ordering::Equal {
                break;
            }
            matched = true;
            let seen = files.stat(i);
            if seen == stat && seen.mtime_ns < index.written_ns {
                digests[i] = digest;
                known[i] = true;
            }
            at += 1;
        }
        if matched {
            filed.records += 1;
            filed.path_bytes += path.len() as u64;
        }
    }
    Some(filed)
}

/// Writes an index file of `counts` (records, path bytes): the records of
/// `old` merged with those of `files` (positions in key order; a file's
/// stat as its walk saw it, its digest from `digests`), which replace any
/// of `old` with the same path. Fails, writing nothing in place, unless
/// the records written are what `counts` says.
fn write_merged<R: Read>(
    out: &mut dyn Write,
    counts: (u64, u64),
    mut old: Option<Records<R>>,
    order: &[u32],
    files: &impl SourceFiles,
    digests: &[Digest],
) -> io::Result<()> {
    let malformed = || io::Error::other("the index changed while it was merged");
    write_header(out, counts.0, counts.1)?;
    let mut written = (0u64, 0u64);
    let mut new = distinct(order, files)
        .filter(|&i| files.key(i).len() <= MAX_INDEX_PATH)
        .peekable();
    let mut key = Vec::with_capacity(MAX_INDEX_PATH);
    let mut emit = |out: &mut dyn Write, entry: Entry| {
        written = (written.0 + 1, written.1 + entry.0.len() as u64);
        write_record(out, entry)
    };
    while let Some(records) = old.as_mut() {
        let Some(entry) = records.next().map_err(|_| malformed())? else {
            break;
        };
        // The new records before this one, and one of its path, which
        // replaces it.
        let mut replaced = false;
        while let Some(&i) = new.peek() {
            let order = files.key(i).cmp_bytes(entry.0);
            if order == Ordering::Greater {
                break;
            }
            files.key(i).write_into(&mut key);
            emit(out, (&key, files.stat(i), digests[i]))?;
            new.next();
            if order == Ordering::Equal {
                replaced = true;
                break;
            }
        }
        if !replaced {
            emit(out, entry)?;
        }
    }
    for i in new {
        files.key(i).write_into(&mut key);
        emit(out, (&key, files.stat(i), digests[i]))?;
    }
    if written != counts {
        return Err(malformed());
    }
    Ok(())
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

/// A stat index held in memory: what was loaded, sorted, and what was
/// recorded since, which a lookup sees in its place. What was recorded is
/// merged into the sorted part once it is 1/[`MERGE_SHARE`] as many files
/// as the rest (or [`MERGE_AT`]): a lookup stays O(log n), and the side
/// map stays small.
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
}

/// The fewest recorded files merged into a [`StatIndex`]'s sorted part.
const MERGE_AT: usize = 1024;

/// A [`StatIndex`] merges what it recorded once that is this fraction of
/// what it holds sorted.
const MERGE_SHARE: usize = 32;

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
    fn path(&self, record: &Record) -> &[u8] {
        let start = record.start as usize;
        &self.paths[start..start + record.len as usize]
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

    fn get(&self, path: &[u8]) -> Option<&Record> {
        let at = self
            .records
            .binary_search_by(|r| self.path(r).cmp(path))
            .ok()?;
        self.records.get(at)
    }

    fn iter(&self) -> impl Iterator<Item = Entry<'_>> {
        self.records
            .iter()
            .map(|r| (self.path(r), r.stat, r.digest))
    }

    /// The bytes of its file.
    fn encoded_len(&self) -> u64 {
        encoded_len(self.records.len() as u64, self.paths.len() as u64)
    }
}

impl StatIndex {
    /// The index filed at `path`, streamed from it; an empty one (every
    /// file is read again) unless it is a regular file of at most
    /// [`MAX_CACHE_FILE`] bytes of its form.
    pub fn load(path: &Path) -> StatIndex {
        let Some(file) = IndexFile::open(path) else {
            return StatIndex::default();
        };
        let sorted = read_sorted(&file).unwrap_or_default();
        StatIndex {
            written_ns: Some(file.written_ns),
            bytes: sorted.encoded_len(),
            sorted,
            ..StatIndex::default()
        }
    }

    /// Saves the index to `path`, streamed, if it learnt anything.
    pub fn save(&self, path: &Path) -> Result<()> {
        if !self.changed {
            return Ok(());
        }
        let (records, path_bytes) = self.entries().fold((0u64, 0u64), |(n, bytes), (path, ..)| {
            (n + 1, bytes + path.len() as u64)
        });
        replace_file_with(path, |out| {
            write_header(out, records, path_bytes)
                .and_then(|()| {
                    self.entries()
                        .try_for_each(|entry| write_record(out, entry))
                })
                .context(|| format!("writing {}", path.display()))
        })
    }

    /// The digest recorded for `path` when its stat is still `stat`, and it
    /// was not modified as late as the index was written (git's racy-clean
    /// rule).
    pub fn known(&self, path: &Path, stat: &FileStat) -> Option<Digest> {
        let racy = self.written_ns.is_none_or(|w| stat.mtime_ns >= w);
        if racy {
            return None;
        }
        let key = path.as_os_str().as_bytes();
        let (seen, digest) = match self.recorded.get(key) {
            Some(&recorded) => recorded,
            None => self.sorted.get(key).map(|r| (r.stat, r.digest))?,
        };
        (seen == *stat).then_some(digest)
    }

    /// Records that `path`, with stat `stat`, was read whole and hashed to
    /// `digest`. A path longer than [`MAX_INDEX_PATH`], or one that would
    /// take the index's file past [`MAX_CACHE_FILE`], is not recorded: it
    /// only costs reading the file again.
    pub fn record(&mut self, path: &Path, stat: FileStat, digest: Digest) {
        let key = path.as_os_str().as_bytes();
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
    /// of the grown record array. Never a second copy of the index.
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
}

/// An index file's records, all, in memory; None for a file not of its
/// form. The header's counts size the buffers: at most the file's length
/// is allocated.
fn read_sorted(file: &IndexFile) -> Option<Sorted> {
    let mut records = file.records()?;
    let mut sorted = Sorted {
        paths: Vec::with_capacity(usize::try_from(records.path_bytes).ok()?),
        records: Vec::with_capacity(usize::try_from(records.count).ok()?),
    };
    while let Some((path, stat, digest)) = records.next().ok()? {
        let (start, len) = sorted.store_path(path)?;
        sorted.records.push(Record {
            start,
            len,
            stat,
            digest,
        });
    }
    Some(sorted)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files listed outright: each's root key, path below it, stat and
    /// host path.
    #[derive(Default)]
    struct Listed(Vec<(Vec<u8>, String, FileStat, PathBuf)>);

    impl Listed {
        fn add(&mut self, root: &[u8], rel: &str, stat: FileStat, host: &Path) {
            self.0
                .push((root.to_vec(), rel.to_string(), stat, host.to_path_buf()));
        }
    }

    impl SourceFiles for Listed {
        fn count(&self) -> usize {
            self.0.len()
        }
        fn key(&self, i: usize) -> Key<'_> {
            Key {
                root: &self.0[i].0,
                rel: &self.0[i].1,
            }
        }
        fn stat(&self, i: usize) -> FileStat {
            self.0[i].2
        }
        fn host_path(&self, i: usize, path: &mut PathBuf) {
            path.clone_from(&self.0[i].3);
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

    fn stat_of(path: &Path) -> FileStat {
        FileStat::of(&std::fs::metadata(path).unwrap())
    }

    /// Paths of varied lengths and depths, in no order.
    fn many_paths(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("d{}/{}{i}", i % 37, "x".repeat(i % 50)))
            .collect()
    }

    /// An index file at `path` of `entries` (sorted here), written as an
    /// index's file is.
    fn write_file(path: &Path, entries: &[(Vec<u8>, FileStat, Digest)]) {
        let mut entries: Vec<_> = entries
            .iter()
            .map(|(p, s, d)| (p.as_slice(), *s, *d))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        std::fs::write(path, encode(&entries)).unwrap();
    }

    fn encode(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        let bytes = entries.iter().map(|e| e.0.len() as u64).sum();
        write_header(&mut out, entries.len() as u64, bytes).unwrap();
        for &entry in entries {
            write_record(&mut out, entry).unwrap();
        }
        out
    }

    /// Every record of the index file at `path`; None if it is not of
    /// its form.
    fn records_of(path: &Path) -> Option<Vec<(Vec<u8>, FileStat, Digest)>> {
        let sorted = read_sorted(&IndexFile::open(path)?)?;
        Some(sorted.iter().map(|(p, s, d)| (p.to_vec(), s, d)).collect())
    }

    #[test]
    fn keys_compare_as_their_joined_bytes() {
        let roots: [&[u8]; 6] = [b"", b"a", b"a.b", b"a/b", b"/abs", b"/"];
        let rels = ["", "a", "a.txt", "a/x", "b", "a-b", "é"];
        let keys: Vec<Key> = roots
            .iter()
            .flat_map(|&root| rels.iter().map(move |&rel| Key { root, rel }))
            .collect();
        let joined = |k: &Key| {
            let mut out = Vec::new();
            k.write_into(&mut out);
            out
        };
        assert_eq!(
            joined(&Key {
                root: b"a",
                rel: "x"
            }),
            b"a/x"
        );
        assert_eq!(
            joined(&Key {
                root: b"/",
                rel: "x"
            }),
            b"/x"
        );
        assert_eq!(
            joined(&Key {
                root: b"",
                rel: "x"
            }),
            b"x"
        );
        assert_eq!(
            joined(&Key {
                root: b"a",
                rel: ""
            }),
            b"a"
        );
        for a in &keys {
            assert_eq!(a.len(), joined(a).len());
            for b in &keys {
                let want = joined(a).cmp(&joined(b));
                assert_eq!(a.cmp(b), want, "{a:?} {b:?}");
                assert_eq!(a == b, want == Ordering::Equal, "{a:?} {b:?}");
                assert_eq!(a.cmp_bytes(&joined(b)), want, "{a:?} {b:?}");
            }
        }
    }

    /// A recipe's index files its sources by their path below the
    /// recipe's directory, and anything else by its whole path; both are
    /// found again by the next lookup, which reads nothing.
    #[test]
    fn source_indexes_file_paths_below_their_directory_relative() {
        let dir = tempfile::tempdir().unwrap();
        let recipe = dir.path().join("recipe");
        let other = dir.path().join("recipe-other");
        std::fs::create_dir_all(recipe.join("files")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(recipe.join("files/a.txt"), "a").unwrap();
        std::fs::write(other.join("b.txt"), "b").unwrap();
        // Older than the index by a clock tick, so not racy once it is
        // written.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let file = dir.path().join("recipe.index");
        let index = SourceIndex::new(file.clone(), &recipe);
        let below = index.root_key(&recipe.join("files"));
        let outside = index.root_key(&other);
        assert_eq!(below, b"files");
        assert_eq!(outside, other.as_os_str().as_bytes());
        assert_eq!(index.root_key(&recipe), b"");

        let mut files = Listed::default();
        for (root, host, rel) in [
            (&below, &recipe.join("files"), "a.txt"),
            (&outside, &other, "b.txt"),
        ] {
            let host = host.join(rel);
            files.add(root, rel, stat_of(&host), &host);
        }
        let want = vec![Digest::of(b"a"), Digest::of(b"b")];
        assert_eq!(index.digests(&files).unwrap(), want);
        let filed: Vec<Vec<u8>> = records_of(&file)
            .unwrap()
            .into_iter()
            .map(|r| r.0)
            .collect();
        let outside_file = other.join("b.txt").as_os_str().as_bytes().to_vec();
        assert_eq!(filed, [outside_file, b"files/a.txt".to_vec()]);

        // Known now: the files need not even exist to be served.
        std::fs::remove_file(recipe.join("files/a.txt")).unwrap();
        std::fs::remove_file(other.join("b.txt")).unwrap();
        assert_eq!(index.digests(&files).unwrap(), want);
    }

    #[test]
    fn source_indexes_rehash_changed_and_racy_files() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let names: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            std::fs::write(src.join(name), format!("content {i}")).unwrap();
        }
        let listed = || {
            let mut files = Listed::default();
            for name in &names {
                let host = src.join(name);
                files.add(b"", name, stat_of(&host), &host);
            }
            files
        };
        let index = SourceIndex::new(dir.path().join("src.index"), &src);
        let want: Vec<Digest> = (0..5)
            .map(|i| Digest::of(format!("content {i}").as_bytes()))
            .collect();
        assert_eq!(index.digests(&listed()).unwrap(), want);

        // Same size, new content, and the file is no older than the index:
        // the racy-clean rule re-hashes it even if its stat looked equal.
        std::fs::write(src.join("f2"), "content X").unwrap();
        let got = index.digests(&listed()).unwrap();
        assert_eq!(got[2], Digest::of(b"content X"));
        assert_eq!(got[4], want[4]);
        // What it read replaced its record.
        let filed = records_of(&dir.path().join("src.index")).unwrap();
        assert_eq!(filed.len(), 5);
        assert_eq!(filed[2].2, Digest::of(b"content X"));

        // A file that changes size between the walk and the read is refused.
        let files = listed();
        std::fs::write(src.join("f0"), "longer content now").unwrap();
        let fresh = SourceIndex::new(dir.path().join("fresh.index"), &src);
        let err = fresh.digests(&files).unwrap_err();
        assert!(
            err.to_string().contains("changed while it was read"),
            "{err}"
        );
        assert!(
            !dir.path().join("fresh.index").exists(),
            "nothing learnt, nothing filed"
        );
    }

    /// Files the index knows are served by it, never read (these do not
    /// exist); only the others are read, and the index file then holds
    /// every record it held and theirs, the files' in place of any with
    /// their path, in order.
    #[test]
    fn known_files_are_served_without_a_read_and_the_rest_merged_in() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("src.index");
        let paths = many_paths(3000);
        let entries: Vec<_> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_bytes().to_vec(), old_stat(i), Digest::of(p.as_bytes())))
            .collect();
        write_file(&file, &entries);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let fresh = dir.path().join("fresh");
        std::fs::write(&fresh, "fresh content").unwrap();
        let fresh_stat = stat_of(&fresh);

        // Every other path known; the rest changed (the fresh file on the
        // host); new paths; and one path asked for twice.
        let mut files = Listed::default();
        for (i, path) in paths.iter().enumerate() {
            match i % 2 {
                0 => files.add(b"", path, old_stat(i), Path::new("/nonexistent")),
                _ => files.add(b"", path, fresh_stat, &fresh),
            }
        }
        files.add(b"new", "file", fresh_stat, &fresh);
        files.add(b"", &paths[1], fresh_stat, &fresh);
        // The same file again, through a root below the first (a source
        // and a directory in it, both copied): filed once.
        let (dir, name) = paths[1].split_once('/').unwrap();
        files.add(dir.as_bytes(), name, fresh_stat, &fresh);
        let index = SourceIndex::new(file.clone(), Path::new("/src"));
        let got = index.digests(&files).unwrap();
        for (i, digest) in got.iter().enumerate() {
            let want = match i {
                i if i < paths.len() && i % 2 == 0 => Digest::of(paths[i].as_bytes()),
                _ => Digest::of(b"fresh content"),
            };
            assert_eq!(*digest, want, "file {i}");
        }

        let filed = records_of(&file).unwrap();
        assert_eq!(filed.len(), paths.len() + 1);
        for (i, path) in paths.iter().enumerate() {
            let at = filed
                .binary_search_by(|r| r.0.as_slice().cmp(path.as_bytes()))
                .unwrap();
            let want = match i % 2 {
                0 => (old_stat(i), Digest::of(path.as_bytes())),
                _ => (fresh_stat, Digest::of(b"fresh content")),
            };
            assert_eq!((filed[at].1, filed[at].2), want, "{path}");
        }
        assert!(filed.iter().any(|r| r.0 == b"new/file"));

        // Nothing read, nothing written.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let written = std::fs::metadata(&file).unwrap().modified().unwrap();
        let mut known = Listed::default();
        known.add(b"", &paths[0], old_stat(0), Path::new("/nonexistent"));
        assert_eq!(
            index.digests(&known).unwrap(),
            [Digest::of(paths[0].as_bytes())]
        );
        assert_eq!(
            std::fs::metadata(&file).unwrap().modified().unwrap(),
            written
        );
    }

    #[test]
    fn index_files_not_of_their_form_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("src.index");
        let host = dir.path().join("a");
        std::fs::write(&host, "a").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let entries = [
            (&b"a"[..], stat_of(&host), Digest::of(b"not a")),
            (&b"b"[..], old_stat(2), Digest::of(b"b")),
        ];
        let good = encode(&entries);
        // What a lookup of "a" serves, and what the in-memory index loads.
        let serves = |bytes: &[u8]| {
            std::fs::write(&file, bytes).unwrap();
            let loaded = StatIndex::load(&file).sorted.records.len();
            let mut files = Listed::default();
            files.add(b"", "a", stat_of(&host), &host);
            let index = SourceIndex::new(file.clone(), Path::new("/src"));
            (index.digests(&files).unwrap()[0], loaded)
        };
        assert_eq!(serves(&good), (Digest::of(b"not a"), 2));

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
        let too_long = encode(&[entries[0], (&long, old_stat(1), Digest::of(b"a"))]);
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
            assert_eq!(serves(bytes), (Digest::of(b"a"), 0), "{what}");
            // ...and replaced by one of what was read.
            let filed = records_of(&file).unwrap();
            assert_eq!(filed.len(), 1, "{what}");
        }

        // Not a regular file: refused, never waited on.
        std::fs::remove_file(&file).unwrap();
        let fifo = std::ffi::CString::new(file.as_os_str().as_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert!(StatIndex::load(&file).sorted.records.is_empty());
        assert!(IndexFile::open(&file).is_none());
        std::fs::remove_file(&file).unwrap();
        let real = dir.path().join("real.index");
        std::fs::write(&real, &good).unwrap();
        std::os::unix::fs::symlink(&real, &file).unwrap();
        assert!(IndexFile::open(&file).is_none());
    }

    #[test]
    fn stat_index_lookups_find_every_entry_and_miss_absent_ones() {
        let paths: Vec<PathBuf> = many_paths(3000)
            .iter()
            .map(|p| Path::new("/src").join(p))
            .collect();
        let digest_of = |p: &Path| Digest::of(p.as_os_str().as_bytes());
        let mut index = StatIndex {
            written_ns: Some(i64::MAX),
            ..StatIndex::default()
        };
        for (i, path) in paths.iter().enumerate() {
            index.record(path, old_stat(i), digest_of(path));
        }
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
        let mut keys: Vec<&[u8]> = paths.iter().map(|p| p.as_os_str().as_bytes()).collect();
        keys.sort();
        assert_eq!(filed, keys);
        let key_bytes: usize = keys.iter().map(|k| k.len()).sum();
        assert_eq!(index.sorted.paths.len(), key_bytes);

        // Saved and loaded: the same.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("blobs.index");
        index.save(&file).unwrap();
        let loaded = StatIndex::load(&file);
        assert!(loaded.recorded.is_empty());
        assert_eq!(
            std::fs::metadata(&file).unwrap().len(),
            loaded.sorted.encoded_len()
        );
        for (i, path) in paths.iter().enumerate().skip(8) {
            assert_eq!(loaded.known(path, &old_stat(i)), Some(digest_of(path)));
        }
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
