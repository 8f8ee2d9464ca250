//! Content-addressed blob storage and the OCI layout writer.
//!
//! A blob is hashed while it is written to a temp file, then renamed to its
//! digest: a blob file under its name is always complete and correct.
//! Reading verifies size and digest before a byte is trusted.

pub mod cache;
pub mod gc;
pub mod layout;

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader, HashingWriter};

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

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
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
    pub fn read(&self, blob: &BlobRef) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        let mut r = self.open_blob(blob)?;
        r.read_to_end(&mut buf)?;
        r.finish()?;
        Ok(buf)
    }

    /// Opens a blob for streaming; [`VerifiedReader::finish`] checks it.
    pub fn open_blob(&self, blob: &BlobRef) -> io::Result<VerifiedReader> {
        let file = File::open(self.path(&blob.digest))
            .map_err(|e| io::Error::new(e.kind(), format!("blob {}: {e}", blob.digest)))?;
        Ok(VerifiedReader {
            inner: HashingReader::new(
                io::BufReader::with_capacity(COPY_BUFFER, file).take(blob.size + 1),
            ),
            expected: *blob,
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

/// Hard-links `from` to `to` (same filesystem, no copy), else copies; an
/// existing `to` is kept: blobs are named by their content.
pub(crate) fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    if to.exists() {
        return Ok(());
    }
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let dir = to.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::copy(from, tmp.path())?;
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

/// Streams a blob and checks, at the end, that it was what its descriptor
/// said. Reading past the declared size is an error too.
pub struct VerifiedReader {
    inner: HashingReader<io::Take<io::BufReader<File>>>,
    expected: BlobRef,
}

impl VerifiedReader {
    /// Drains what is left and checks size and digest.
    pub fn finish(mut self) -> io::Result<()> {
        io::copy(&mut self.inner, &mut io::sink())?;
        let (digest, size) = self.inner.finish();
        if size != self.expected.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob {}: size mismatch: expected {} bytes, found {}",
                    self.expected.digest,
                    self.expected.size,
                    if size > self.expected.size {
                        "more".to_string()
                    } else {
                        size.to_string()
                    }
                ),
            ));
        }
        if digest != self.expected.digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "blob digest mismatch: expected {}, found {digest}",
                    self.expected.digest
                ),
            ));
        }
        Ok(())
    }
}

impl Read for VerifiedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let err = store.read(&blob).unwrap_err().to_string();
        assert!(err.contains("expected") && err.contains("found"), "{err}");
        std::fs::write(store.path(&blob.digest), b"hello!").unwrap();
        assert!(store.read(&blob).unwrap_err().to_string().contains("size"));
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
