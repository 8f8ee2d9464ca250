//! Content-addressed blob storage and the OCI layout writer.
//!
//! A blob is hashed while it is written to a temp file, then renamed to its
//! digest: a blob file under its name is always complete and correct.
//! Reading verifies size and digest before a byte is trusted, and opens
//! only a regular file ([`file`], which every reader of small files and
//! blobs goes through): a FIFO or a device under a blob's name is refused
//! at once, never waited on or read without end.

pub mod cache;
pub mod file;
pub mod gc;
pub mod layout;
pub mod referrers;
pub mod stat_index;
pub mod workdir;

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::error::BlobError;
use file::Links;

/// Bytes per read when streaming files and blobs.
pub const COPY_BUFFER: usize = 256 * 1024;

/// A `blobs/sha256` directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// A blob's identity, as a descriptor needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRef {
    pub digest: Digest,
    pub size: u64,
}

impl BlobStore {
    /// The store under `layout_dir/blobs/sha256`, created if missing.
    pub fn open(layout_dir: &Path) -> io::Result<BlobStore> {
        let root = layout_dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&root)?;
        Ok(BlobStore { root })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.hex())
    }

    /// The directory the blobs are files of.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    /// Whether the store has the blob `digest`, as a regular file (not
    /// read: see [`open_blob`](Self::open_blob)).
    pub fn contains(&self, digest: &Digest) -> bool {
        self.present(digest).is_ok()
    }

    /// The blob `digest`'s file, if it is a regular one; else why not
    /// (missing, or what it is instead). Its content is not read.
    pub fn present(&self, digest: &Digest) -> Result<std::fs::Metadata, BlobError> {
        let digest = *digest;
        match std::fs::symlink_metadata(self.path(&digest)) {
            Ok(m) if m.is_file() => Ok(m),
            Ok(m) => Err(BlobError::NotRegular {
                digest,
                kind: file::kind_of(m.file_type()),
            }),
            Err(e) => Err(blob_error(digest, e)),
        }
    }

    /// Starts a blob whose digest is learnt as it is written.
    pub fn writer(&self) -> io::Result<BlobWriter> {
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(layout::file_mode())
            .tempfile_in(&self.root)?;
        Ok(BlobWriter {
            inner: HashingWriter::new(BufWriter::new(tmp)),
            root: self.root.clone(),
        })
    }

    pub fn put(&self, bytes: &[u8]) -> io::Result<BlobRef> {
        let mut w = self.writer()?;
        w.write_all(bytes)?;
        w.commit()
    }

    /// Reads a whole blob, checking its size and digest.
    pub fn read(&self, blob: &BlobRef) -> Result<Vec<u8>, BlobError> {
        let mut buf = Vec::new();
        let mut r = self.open_blob(blob)?;
        if let Err(e) = r.read_to_end(&mut buf) {
            return Err(r.cause(e));
        }
        r.finish()?;
        Ok(buf)
    }

    /// Opens a blob for streaming; [`VerifiedReader::finish`] checks it.
    pub fn open_blob(&self, blob: &BlobRef) -> Result<VerifiedReader, BlobError> {
        #[cfg(test)]
        tests::count_open(&blob.digest);
        let digest = blob.digest;
        let file = file::open_regular(&self.path(&digest), Links::Refuse)
            .map_err(|e| blob_error(digest, e))?;
        Ok(VerifiedReader {
            expected: *blob,
            state: State::Reading {
                file: HashingReader::new(io::BufReader::with_capacity(COPY_BUFFER, file)),
                given: 0,
            },
        })
    }

    /// Takes `blob` from `from`, linked where the filesystem allows, else
    /// copied, when `from` has it and it checks out (size and digest);
    /// returns whether it was taken. A blob that fails the check is not.
    pub fn adopt(&self, from: &BlobStore, blob: &BlobRef) -> bool {
        if self.contains(&blob.digest) {
            return true;
        }
        if !from.contains(&blob.digest)
            || link_or_copy(&from.path(&blob.digest), &self.path(&blob.digest)).is_err()
        {
            return false;
        }
        let sound = self
            .open_blob(blob)
            .and_then(VerifiedReader::finish)
            .is_ok();
        if !sound {
            let _ = std::fs::remove_file(self.path(&blob.digest));
        }
        sound
    }

    /// Removes every blob but those in `keep`.
    pub fn retain(&self, keep: &std::collections::HashSet<Digest>) -> io::Result<()> {
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            let name = entry.file_name();
            let kept = name
                .to_str()
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok())
                .is_some_and(|d| keep.contains(&d));
            if !kept && !name.to_string_lossy().starts_with('.') {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    /// Moves every blob of `self` into `other`, replacing a blob `other`
    /// has under the same name: the staged one was checked as it came,
    /// the old one may have rotted since. Both must be on one filesystem.
    pub fn move_into(&self, other: &BlobStore) -> io::Result<()> {
        for entry in std::fs::read_dir(&self.root)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            std::fs::rename(entry.path(), other.root.join(&name))?;
        }
        Ok(())
    }
}

/// The blob error an I/O error on the blob `digest`'s file is.
pub(crate) fn blob_error(digest: Digest, e: io::Error) -> BlobError {
    if e.kind() == io::ErrorKind::NotFound {
        return BlobError::Missing { digest };
    }
    match file::refusal(&e) {
        Some(&file::FileError::NotRegular { kind }) => BlobError::NotRegular { digest, kind },
        _ => BlobError::Io { digest, source: e },
    }
}

/// Hard-links `from` to `to` (same filesystem, no copy), else copies; an
/// existing `to` is kept: blobs are named by their content.
pub(crate) fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    if to.exists() {
        return Ok(());
    }
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    copy_file(from, to)
}

/// Copies `from` to `to` whole, through a temporary file beside it. Unlike
/// a link, it leaves `from`'s inode (and its ctime) alone.
pub(crate) fn copy_file(from: &Path, to: &Path) -> io::Result<()> {
    if to.exists() {
        return Ok(());
    }
    let dir = to.parent().unwrap_or(Path::new("."));
    let mut source = file::open_regular(from, Links::Refuse)?;
    // Published with the modes every blob gets (not the temp file's 0600).
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(layout::file_mode())
        .tempfile_in(dir)?;
    io::copy(&mut source, &mut tmp)?;
    tmp.persist(to).map_err(|e| e.error)?;
    Ok(())
}

/// A blob being written; dropped without [`commit`](Self::commit), it leaves
/// nothing behind.
pub struct BlobWriter {
    inner: HashingWriter<BufWriter<tempfile::NamedTempFile>>,
    root: PathBuf,
}

impl BlobWriter {
    /// Flushes, syncs and renames the blob to its digest.
    pub fn commit(self) -> io::Result<BlobRef> {
        let (digest, size, buf) = self.inner.finish();
        let tmp = buf.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.root.join(digest.hex()))
            .map_err(|e| e.error)?;
        Ok(BlobRef { digest, size })
    }

    /// Commits only if the bytes written are `expected`; otherwise drops
    /// them and returns what was found (`Ok(Err(found))`), so an
    /// untrusted source never lands a blob it did not promise.
    pub fn commit_verified(self, expected: &BlobRef) -> io::Result<Result<BlobRef, BlobRef>> {
        let (digest, size, buf) = self.inner.finish();
        let found = BlobRef { digest, size };
        if found != *expected {
            return Ok(Err(found));
        }
        let tmp = buf.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.root.join(digest.hex()))
            .map_err(|e| e.error)?;
        Ok(Ok(found))
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams a blob and checks, at its end, that it was what its descriptor
/// said: `Read` gives the end of the blob (`Ok(0)`) only once its size and
/// digest matched, and never a byte past the declared size. Each failure
/// is a [`BlobError`]; `Read` can only say `io::Error`, so the reader keeps
/// the typed cause and [`finish`](Self::finish) returns it.
pub struct VerifiedReader {
    expected: BlobRef,
    state: State,
}

enum State {
    /// `given` bytes handed out so far, never more than the declared size.
    Reading {
        file: HashingReader<io::BufReader<File>>,
        given: u64,
    },
    /// Read to its end; size and digest matched.
    Intact,
    Failed(BlobError),
}

impl VerifiedReader {
    /// Drains what is left and checks size and digest; or says why an
    /// earlier read failed.
    pub fn finish(mut self) -> Result<(), BlobError> {
        self.settle();
        match self.state {
            State::Failed(e) => Err(e),
            _ => Ok(()),
        }
    }

    /// The blob's fault behind `e`, an error this reader's `Read` returned.
    pub fn cause(self, e: io::Error) -> BlobError {
        match self.state {
            State::Failed(fault) => fault,
            State::Reading { .. } | State::Intact => BlobError::Io {
                digest: self.expected.digest,
                source: e,
            },
        }
    }

    /// Reads the rest of the file, past the declared size too, so that a
    /// mismatch says how long the blob really is and what it hashes to, in
    /// the same read.
    fn settle(&mut self) {
        let expected = self.expected;
        let digest = expected.digest;
        self.state = match std::mem::replace(&mut self.state, State::Intact) {
            State::Reading { mut file, .. } => match io::copy(&mut file, &mut io::sink()) {
                Err(source) => State::Failed(BlobError::Io { digest, source }),
                Ok(_) => match file.finish() {
                    (content, found) if found != expected.size => {
                        State::Failed(BlobError::SizeMismatch {
                            digest,
                            expected: expected.size,
                            found,
                            content,
                        })
                    }
                    (found, _) if found != digest => State::Failed(BlobError::DigestMismatch {
                        expected: digest,
                        found,
                    }),
                    _ => State::Intact,
                },
            },
            done => done,
        };
    }

    /// What `Read` says of a failure: its text, the typed cause staying in
    /// the reader.
    fn io_error(&self) -> io::Error {
        match &self.state {
            State::Failed(e @ BlobError::Io { source, .. }) => {
                io::Error::new(source.kind(), e.to_string())
            }
            State::Failed(e) => io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
            State::Intact | State::Reading { .. } => io::Error::other("no failure"),
        }
    }
}

impl Read for VerifiedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let State::Reading { file, given } = &mut self.state else {
            return match self.state {
                State::Intact => Ok(0),
                _ => Err(self.io_error()),
            };
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let left = self.expected.size - *given;
        if left > 0 {
            let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
            match file.read(&mut buf[..want]) {
                // Shorter than declared: settled below.
                Ok(0) => {}
                Ok(n) => {
                    *given += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
                Err(source) => {
                    let digest = self.expected.digest;
                    self.state = State::Failed(BlobError::Io { digest, source });
                    return Err(self.io_error());
                }
            }
        }
        // At the declared size, or the file ended before it: the blob must
        // end here and hash to its name.
        self.settle();
        match self.state {
            State::Failed(_) => Err(self.io_error()),
            State::Intact | State::Reading { .. } => Ok(0),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    thread_local! {
        /// Blobs opened on this thread, so that a test can count reads
        /// (each test runs on a thread of its own).
        static OPENED: std::cell::RefCell<Vec<Digest>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    pub(super) fn count_open(digest: &Digest) {
        OPENED.with(|o| o.borrow_mut().push(*digest));
    }

    /// How many times this thread opened the blob `digest`.
    pub(crate) fn opened(digest: &Digest) -> usize {
        OPENED.with(|o| o.borrow().iter().filter(|d| *d == digest).count())
    }

    #[test]
    fn put_then_read_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let blob = store.put(b"hello").unwrap();
        assert_eq!(
            blob,
            BlobRef {
                digest: Digest::of(b"hello"),
                size: 5
            }
        );
        assert_eq!(store.read(&blob).unwrap(), b"hello");
        // Only the blob itself is left: no temp files.
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            1
        );

        std::fs::write(store.path(&blob.digest), b"jello").unwrap();
        let err = store.read(&blob).unwrap_err();
        assert!(
            matches!(err, BlobError::DigestMismatch { expected, found }
                if expected == blob.digest && found == Digest::of(b"jello")),
            "{err}"
        );
        std::fs::write(store.path(&blob.digest), b"hello!").unwrap();
        let err = store.read(&blob).unwrap_err();
        assert!(
            matches!(err, BlobError::SizeMismatch { expected: 5, found: 6, content, .. }
                if content == Digest::of(b"hello!")),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "blob {}: size mismatch: expected 5 bytes, found 6",
                blob.digest
            )
        );
    }

    #[test]
    fn the_reader_ends_only_once_the_blob_checks_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let blob = store.put(b"hello").unwrap();
        let path = store.path(&blob.digest);

        // Longer than declared: never a byte past the size, and the error
        // comes where the end would have.
        std::fs::write(&path, b"hello, world").unwrap();
        let mut r = store.open_blob(&blob).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(r.read(&mut buf).unwrap(), 5);
        let err = r.read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            r.cause(err),
            BlobError::SizeMismatch { found: 12, .. }
        ));

        // A descriptor whose size is wrong, over an intact blob, is told
        // apart from a damaged blob without reading it again.
        std::fs::write(&path, b"hello").unwrap();
        let longer = BlobRef { size: 6, ..blob };
        let err = store.open_blob(&longer).unwrap().finish().unwrap_err();
        assert!(err.to_string().contains("the descriptor is wrong"), "{err}");

        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            store.open_blob(&blob),
            Err(BlobError::Missing { .. })
        ));
        std::fs::create_dir(&path).unwrap();
        assert!(matches!(
            store.open_blob(&blob),
            Err(BlobError::NotRegular {
                kind: "a directory",
                ..
            })
        ));
    }

    /// A FIFO under a blob's name would block its open and never end; a
    /// symlink is not what the store wrote. Neither is opened, and each
    /// is named.
    #[test]
    fn a_blob_that_is_no_regular_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let blob = store.put(b"hello").unwrap();
        let path = store.path(&blob.digest);
        let elsewhere = dir.path().join("hello");
        std::fs::rename(&path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        let err = store.open_blob(&blob).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!("blob {}: not a regular file (a symlink)", blob.digest)
        );
        assert!(!store.contains(&blob.digest));

        std::fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap();
        assert!(made.success());
        let err = store.read(&blob).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("blob {}: not a regular file (a FIFO)", blob.digest)
        );
        assert!(matches!(
            store.present(&blob.digest),
            Err(BlobError::NotRegular { kind: "a FIFO", .. })
        ));
    }

    #[test]
    fn commit_verified_lands_only_what_was_promised() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let promised = BlobRef {
            digest: Digest::of(b"hello"),
            size: 5,
        };
        let mut w = store.writer().unwrap();
        w.write_all(b"jello").unwrap();
        let found = w.commit_verified(&promised).unwrap().unwrap_err();
        assert_eq!(found.digest, Digest::of(b"jello"));
        assert!(!store.contains(&promised.digest) && !store.contains(&found.digest));
        // Nothing left behind, not even a temp file.
        assert_eq!(
            std::fs::read_dir(dir.path().join("blobs/sha256"))
                .unwrap()
                .count(),
            0
        );
        let mut w = store.writer().unwrap();
        w.write_all(b"hello").unwrap();
        assert_eq!(w.commit_verified(&promised).unwrap().unwrap(), promised);
        assert!(store.contains(&promised.digest));
    }
}
