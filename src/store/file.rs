//! Files read without trusting what lies at their path: opened only when
//! they are regular files, and read whole only within a bound.
//!
//! A path in a layout, a lock or a user's directory may name a FIFO (whose
//! open(2) waits for a writer forever), a device (`/dev/zero` never ends)
//! or a directory. [`open_regular`] opens with `O_NONBLOCK`, so that no
//! open blocks, and then asks the open descriptor (fstat) what it is:
//! anything but a regular file is refused, named ("a FIFO"). A path is
//! also looked at before it is opened, so that a device is refused without
//! being opened at all; the fstat is what closes the race. Files that
//! ingot itself writes (in a layout or the cache) are opened with
//! `O_NOFOLLOW` as well: a symlink there is refused, not followed.
//!
//! [`read_regular`] reads such a file whole, up to a limit the caller
//! names: larger is refused, by the size fstat gives and again while
//! reading, since a file can grow after its stat.
//!
//! Errors are `io::Error`s whose payload is a [`FileError`] for the two
//! refusals (see [`refusal`]), so callers keep their usual context
//! ("reading PATH: not a regular file (a FIFO)").

use std::fs::{File, FileType, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Whether a symlink at the path itself is followed. Directories above it
/// are resolved as usual either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// A path a user chose (a recipe, its lock, a values file): it may be
    /// a symlink, but what it leads to must be a regular file.
    Follow,
    /// A file ingot writes, in a layout or the cache: a symlink there is
    /// not what was written, and is refused.
    Refuse,
}

/// Why a file was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The path names something else than a regular file: `kind` says
    /// what ("a FIFO", "a directory", "a symlink", …).
    #[error("not a regular file ({kind})")]
    NotRegular { kind: &'static str },
    /// The file holds more than the reader allows.
    #[error("larger than the limit of {}", human_size(*.limit))]
    TooLarge { limit: u64 },
}

impl From<FileError> for io::Error {
    fn from(e: FileError) -> io::Error {
        let kind = match e {
            FileError::NotRegular { .. } => io::ErrorKind::InvalidInput,
            FileError::TooLarge { .. } => io::ErrorKind::FileTooLarge,
        };
        io::Error::new(kind, e)
    }
}

/// The refusal behind `e`, when it is one of this module's.
pub fn refusal(e: &io::Error) -> Option<&FileError> {
    e.get_ref().and_then(|inner| inner.downcast_ref())
}

/// What a file type is, in words, for errors: "a FIFO", "a directory"…
pub fn kind_of(t: FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symlink"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Refuses `meta` unless it is a regular file.
fn check_regular(meta: &Metadata) -> Result<(), FileError> {
    if meta.file_type().is_file() {
        Ok(())
    } else {
        Err(FileError::NotRegular {
            kind: kind_of(meta.file_type()),
        })
    }
}

/// Opens `path` for reading if it is a regular file; see the module's
/// header. `NotFound` stays `NotFound`, for callers to whom a missing file
/// means something.
pub fn open_regular(path: &Path, links: Links) -> io::Result<File> {
    open_checked(path, links).map(|(file, _)| file)
}

/// [`open_regular`], with the open file's metadata.
fn open_checked(path: &Path, links: Links) -> io::Result<(File, Metadata)> {
    // Refused before it is opened: opening a device may do something.
    let before = match links {
        Links::Follow => std::fs::metadata(path),
        Links::Refuse => std::fs::symlink_metadata(path),
    }?;
    check_regular(&before)?;
    // O_NONBLOCK: were it swapped for a FIFO since, the open still
    // returns. It changes nothing when reading a regular file.
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match File::options().read(true).custom_flags(flags).open(path) {
        Ok(f) => f,
        // O_NOFOLLOW on a symlink: swapped for one since the stat.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) && links == Links::Refuse => {
            return Err(FileError::NotRegular { kind: "a symlink" }.into());
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    check_regular(&meta)?;
    Ok((file, meta))
}

/// Reads the regular file at `path` whole, refusing one of more than
/// `limit` bytes.
pub fn read_regular(path: &Path, links: Links, limit: u64) -> io::Result<Vec<u8>> {
    let (file, meta) = open_checked(path, links)?;
    read_within(file, meta.len(), limit)
}

/// [`read_regular`], as UTF-8 text.
pub fn read_regular_string(path: &Path, links: Links, limit: u64) -> io::Result<String> {
    String::from_utf8(read_regular(path, links, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Reads `file`, which its stat says is `len` bytes long, to its end,
/// refusing more than `limit` bytes whatever the stat said.
fn read_within(file: File, len: u64, limit: u64) -> io::Result<Vec<u8>> {
    if len > limit {
        return Err(FileError::TooLarge { limit }.into());
    }
    // `len` is at most `limit`, which callers keep to what fits in memory.
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge { limit }.into());
    }
    Ok(bytes)
}

/// A size in words: "4 MiB", "4 KiB", or bytes.
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn mkfifo(path: &Path) {
        let status = Command::new("mkfifo").arg(path).status().unwrap();
        assert!(status.success());
    }

    fn refused(r: io::Result<Vec<u8>>) -> FileError {
        let e = r.unwrap_err();
        refusal(&e).cloned().unwrap_or_else(|| panic!("{e}"))
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"hello").unwrap();
        assert_eq!(read_regular(&file, Links::Refuse, 5).unwrap(), b"hello");

        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        for (path, links, kind) in [
            (&fifo, Links::Follow, "a FIFO"),
            (&fifo, Links::Refuse, "a FIFO"),
            (&link, Links::Refuse, "a symlink"),
            (&zero, Links::Refuse, "a symlink"),
            (&zero, Links::Follow, "a character device"),
            (&dir.path().to_path_buf(), Links::Follow, "a directory"),
        ] {
            let e = refused(read_regular(path, links, 1 << 20));
            assert_eq!(e, FileError::NotRegular { kind }, "{}", path.display());
            assert_eq!(e.to_string(), format!("not a regular file ({kind})"));
        }
        // A symlink a user made is followed to its regular file.
        assert_eq!(read_regular(&link, Links::Follow, 5).unwrap(), b"hello");

        let missing = dir.path().join("missing");
        let e = read_regular(&missing, Links::Refuse, 5).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(refusal(&e).is_none());
    }

    #[test]
    fn a_file_over_the_limit_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, vec![b' '; 4097]).unwrap();
        let e = read_regular(&file, Links::Refuse, 4096).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "larger than the limit of 4 KiB");
        assert_eq!(
            read_regular(&file, Links::Refuse, 4097).unwrap().len(),
            4097
        );
        assert_eq!(
            FileError::TooLarge { limit: 4 << 20 }.to_string(),
            "larger than the limit of 4 MiB"
        );
        assert_eq!(
            FileError::TooLarge { limit: 100 }.to_string(),
            "larger than the limit of 100 bytes"
        );
    }

    #[test]
    fn a_file_that_grows_after_its_stat_is_still_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, b"12345").unwrap();
        let (file, meta) = open_checked(&path, Links::Refuse).unwrap();
        std::fs::write(&path, b"1234567890").unwrap();
        let e = read_within(file, meta.len(), 8).unwrap_err();
        assert_eq!(refusal(&e), Some(&FileError::TooLarge { limit: 8 }));
    }
}
