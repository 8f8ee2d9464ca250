//! The tar encoding of a layer's entries (design.md, rules 1, 4, 5 and 7).
//!
//! This module owns every tar byte: header fields, when a PAX extended
//! header is written and what it holds, and how file content is streamed.
//! Headers are ustar; a PAX header is added only for a value ustar cannot
//! hold (a long path or link target, a size of 8 GiB or more, a large id or
//! time), so ordinary layers are plain ustar. Nothing comes from the host:
//! the mtime is the caller's single timestamp, ids are numeric with empty
//! user and group names, and there is no atime or ctime anywhere.
//!
//! Entries arrive already in canonical order ([`super::order`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use tar::{Builder, EntryType, Header, UstarHeader};

use super::{Content, ContentSink, Entry, EntryKind};
use crate::store::file::{self, Links};

/// Size of the ustar `name` and `linkname` fields.
const NAME_LEN: usize = 100;
/// Size of the ustar `prefix` field.
const PREFIX_LEN: usize = 155;
/// Largest value of an 8-byte octal field (mode, uid, gid): 7 digits + NUL.
const MAX_OCTAL_8: u64 = (1 << 21) - 1;
/// Largest value of a 12-byte octal field (size, mtime): 11 digits + NUL.
const MAX_OCTAL_12: u64 = (1 << 33) - 1;

/// A tar stream of entries given in canonical order; [`Writer::finish`]
/// ends it with the two zero blocks.
pub(crate) struct Writer<W: Write> {
    builder: Builder<W>,
    mtime: u64,
}

impl<W: Write> Writer<W> {
    pub(crate) fn new(out: W, mtime: u64) -> Writer<W> {
        Writer {
            builder: Builder::new(out),
            mtime,
        }
    }

    /// Appends `entry`; a regular file's content also goes to `sink` as
    /// it streams past.
    pub(crate) fn append(
        &mut self,
        entry: &Entry,
        sink: Option<&mut dyn ContentSink>,
    ) -> io::Result<()> {
        append(&mut self.builder, entry, self.mtime, sink)
    }

    pub(crate) fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }
}

/// A reader that shows what passes through it to a [`ContentSink`].
struct Tee<'a, R> {
    inner: R,
    sink: &'a mut dyn ContentSink,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.data(&buf[..n]);
        Ok(n)
    }
}

/// Checks that `entry` can be encoded, before any byte is written.
pub(crate) fn check(entry: &Entry) -> io::Result<()> {
    check_path(&entry.path)?;
    if let EntryKind::Symlink { target } = &entry.kind
        && (target.is_empty() || target.contains('\0'))
    {
        return Err(invalid(
            &entry.path,
            "symlink target is empty or holds a NUL byte",
        ));
    }
    if let EntryKind::Hardlink { target } = &entry.kind {
        check_path(target)?;
    }
    Ok(())
}

/// A layer path must be the one spelling of its name: relative, with no
/// empty, `.` or `..` component. Anything else would either not round-trip
/// or let two spellings of one path give two different layers.
fn check_path(path: &str) -> io::Result<()> {
    let bad_component = path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..");
    if bad_component || path.contains('\0') {
        return Err(invalid(
            path,
            "not a canonical relative path (empty, `.` or `..` component, \
             leading or trailing `/`, or a NUL byte)",
        ));
    }
    Ok(())
}

fn invalid(path: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("layer entry {path:?}: {why}"),
    )
}

fn append<W: Write>(
    builder: &mut Builder<W>,
    entry: &Entry,
    mtime: u64,
    sink: Option<&mut dyn ContentSink>,
) -> io::Result<()> {
    let (header, pax) = encode(entry, mtime)?;
    if !pax.is_empty() {
        builder.append_pax_extensions(pax.iter().map(|(k, v)| (*k, v.as_slice())))?;
    }
    let content: Box<dyn Read> = match &entry.kind {
        EntryKind::File(Content::Bytes(bytes)) => Box::new(bytes.as_slice()),
        EntryKind::File(content @ (Content::Path { size, .. } | Content::Tree { size, .. })) => {
            let host = content
                .host_path(&entry.path)
                .ok_or_else(|| invalid(&entry.path, "names no host file"))?;
            Box::new(open_exact(host, *size)?)
        }
        EntryKind::Dir | EntryKind::Symlink { .. } | EntryKind::Hardlink { .. } => {
            return builder.append(&header, io::empty());
        }
    };
    match sink {
        Some(sink) => {
            sink.begin(&entry.path);
            builder.append(
                &header,
                Tee {
                    inner: content,
                    sink: &mut *sink,
                },
            )?;
            sink.end();
            Ok(())
        }
        None => builder.append(&header, content),
    }
}

/// PAX records for one entry, keyed (and so written) in sorted order.
type Pax = BTreeMap<&'static str, Vec<u8>>;

/// The ustar header of `entry` and the PAX records it needs (none for most
/// entries). Pure: the same entry and mtime always give the same bytes.
fn encode(entry: &Entry, mtime: u64) -> io::Result<(Header, Pax)> {
    check(entry)?;
    let mut header = Header::new_ustar();
    let mut pax = Pax::new();

    let (entry_type, size, link) = match &entry.kind {
        EntryKind::Dir => (EntryType::Directory, 0, None),
        EntryKind::File(Content::Bytes(bytes)) => (EntryType::Regular, bytes.len() as u64, None),
        EntryKind::File(content @ (Content::Path { .. } | Content::Tree { .. })) => {
            (EntryType::Regular, content.size(), None)
        }
        EntryKind::Symlink { target } => (EntryType::Symlink, 0, Some(target.as_str())),
        EntryKind::Hardlink { target } => (EntryType::Link, 0, Some(target.as_str())),
    };
    header.set_entry_type(entry_type);

    let name = tar_name(entry);
    let fields = ustar(&mut header)?;
    match split_ustar(&name) {
        Some((prefix, rest)) => {
            copy_field(&mut fields.prefix, prefix);
            copy_field(&mut fields.name, rest);
        }
        None => {
            pax.insert("path", name.as_bytes().to_vec());
            copy_field(&mut fields.name, truncate(&name, NAME_LEN));
        }
    }
    if let Some(target) = link {
        if target.len() > NAME_LEN {
            pax.insert("linkpath", target.as_bytes().to_vec());
        }
        copy_field(&mut fields.linkname, truncate(target, NAME_LEN));
    }

    header.set_mode(entry.mode & 0o7777);
    header.set_uid(numeric(&mut pax, "uid", entry.uid, MAX_OCTAL_8));
    header.set_gid(numeric(&mut pax, "gid", entry.gid, MAX_OCTAL_8));
    header.set_size(numeric(&mut pax, "size", size, MAX_OCTAL_12));
    header.set_mtime(numeric(&mut pax, "mtime", mtime, MAX_OCTAL_12));
    // uname/gname stay empty (rule 4); device numbers are written as octal
    // zeros, as GNU tar, Go and Python do for non-device entries.
    header.set_device_major(0)?;
    header.set_device_minor(0)?;
    header.set_cksum();
    Ok((header, pax))
}

/// The entry's name in the tar: directories carry a trailing `/`.
fn tar_name(entry: &Entry) -> Cow<'_, str> {
    match entry.kind {
        EntryKind::Dir => Cow::Owned(format!("{}/", entry.path)),
        _ => Cow::Borrowed(&entry.path),
    }
}

/// Splits `name` into ustar (prefix, name) fields, or `None` if it cannot
/// fit. The prefix is the longest run of whole leading components that fits,
/// as GNU tar and Go choose, which leaves the shortest remainder.
fn split_ustar(name: &str) -> Option<(&str, &str)> {
    if name.len() <= NAME_LEN {
        return Some(("", name));
    }
    // The trailing `/` of a directory cannot be the split point.
    let body = name.strip_suffix('/').unwrap_or(name);
    let window = &body.as_bytes()[..body.len().min(PREFIX_LEN + 1)];
    let cut = window.iter().rposition(|&b| b == b'/')?;
    let (prefix, rest) = (&name[..cut], &name[cut + 1..]);
    (cut > 0 && rest.len() <= NAME_LEN).then_some((prefix, rest))
}

/// The value for a ustar numeric field: `value` itself if it fits the
/// field's octal digits, else 0 with the real value in a PAX record, as
/// POSIX pax prescribes (no GNU base-256 extension).
fn numeric(pax: &mut Pax, key: &'static str, value: u64, max: u64) -> u64 {
    if value <= max {
        value
    } else {
        pax.insert(key, value.to_string().into_bytes());
        0
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char
/// boundary: the stand-in name when PAX carries the real one, kept valid
/// UTF-8 for readers that ignore PAX.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Copies `value` into a NUL-padded header field that it is known to fit.
fn copy_field(field: &mut [u8], value: &str) {
    field.fill(0);
    field[..value.len()].copy_from_slice(value.as_bytes());
}

fn ustar(header: &mut Header) -> io::Result<&mut UstarHeader> {
    header
        .as_ustar_mut()
        .ok_or_else(|| io::Error::other("tar header is not ustar"))
}

/// Opens a host file whose length must be `size`, as a reader that fails
/// if the file turns out longer or shorter while it is streamed.
fn open_exact(path: Cow<'_, Path>, size: u64) -> io::Result<ExactReader<'_, File>> {
    // Never blocks on a FIFO swapped in since the plan; refused below.
    let file = file::open_regular(&path, Links::Follow)
        .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path.display())))?;
    if !meta.is_file() || meta.len() != size {
        return Err(changed(&path, size));
    }
    Ok(ExactReader {
        inner: file,
        remaining: size,
        size,
        path,
    })
}

fn changed(path: &Path, size: u64) -> io::Error {
    io::Error::other(format!(
        "{}: changed while building (planned as a {size}-byte regular file)",
        path.display()
    ))
}

/// Yields exactly `remaining` bytes from `inner`, and fails if `inner`
/// ends early or has more: the header already promised the size.
struct ExactReader<'a, R> {
    inner: R,
    remaining: u64,
    size: u64,
    path: Cow<'a, Path>,
}

impl<R: Read> Read for ExactReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let size_err = || changed(&self.path, self.size);
        if self.remaining == 0 {
            // The end the header promised: the file must end here too.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(size_err()),
            };
        }
        let max = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(size_err());
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: path.into(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
        }
    }

    fn file(path: &str, size: u64) -> Entry {
        entry(
            path,
            EntryKind::File(Content::Path {
                path: "/nonexistent".into(),
                size,
            }),
        )
    }

    fn keys(pax: &Pax) -> Vec<&str> {
        pax.keys().copied().collect()
    }

    fn name_fields(h: &Header) -> (String, String) {
        let u = h.as_ustar().unwrap();
        let s = |f: &[u8]| {
            let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
            String::from_utf8(f[..end].to_vec()).unwrap()
        };
        (s(&u.prefix), s(&u.name))
    }

    #[test]
    fn plain_entry_has_plain_ustar_header() {
        let mut e = entry("etc/motd", EntryKind::File(Content::Bytes(b"hi".to_vec())));
        e.mode = 0o104755; // S_IFREG bits above 0o7777 are dropped
        e.uid = 10001;
        e.gid = 10002;
        let (h, pax) = encode(&e, 1234).unwrap();
        assert!(pax.is_empty());
        let b = h.as_bytes();
        assert_eq!(&b[257..265], b"ustar\x0000");
        assert_eq!(name_fields(&h), (String::new(), "etc/motd".into()));
        assert_eq!(h.mode().unwrap(), 0o4755);
        assert_eq!(&h.as_old().mode, b"0004755\0");
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (10001, 10002));
        assert_eq!((h.size().unwrap(), h.mtime().unwrap()), (2, 1234));
        assert_eq!(h.entry_type(), EntryType::Regular);
        // Empty user/group names, octal-zero device numbers.
        assert!(b[265..329].iter().all(|&x| x == 0));
        assert_eq!(&b[329..345], b"0000000\x000000000\x00");
    }

    #[test]
    fn directories_get_a_trailing_slash() {
        let (h, pax) = encode(&entry("a/b", EntryKind::Dir), 0).unwrap();
        assert!(pax.is_empty());
        assert_eq!(name_fields(&h).1, "a/b/");
        assert_eq!(h.entry_type(), EntryType::Directory);
    }

    #[test]
    fn long_paths_split_into_prefix_before_resorting_to_pax() {
        let dir = "d".repeat(150);
        let path = format!("{dir}/{}", "f".repeat(100));
        let (h, pax) = encode(&file(&path, 0), 0).unwrap();
        assert!(pax.is_empty());
        assert_eq!(name_fields(&h), (dir.clone(), "f".repeat(100)));

        // The longest prefix that fits is chosen.
        let path = format!("{}/{}/{}", "a".repeat(60), "b".repeat(60), "c".repeat(60));
        let (h, pax) = encode(&file(&path, 0), 0).unwrap();
        assert!(pax.is_empty());
        assert_eq!(name_fields(&h).1, "c".repeat(60));
    }

    #[test]
    fn unsplittable_paths_go_to_pax_with_a_truncated_stand_in() {
        // One name of 101 bytes, whose 2-byte last char straddles byte 100.
        let path = format!("{}é", "n".repeat(99));
        let (h, pax) = encode(&file(&path, 0), 0).unwrap();
        assert_eq!(keys(&pax), ["path"]);
        assert_eq!(pax["path"], path.as_bytes());
        assert_eq!(name_fields(&h), (String::new(), "n".repeat(99)));

        // A split whose remainder is still over 100 bytes.
        let path = format!("x/{}", "n".repeat(101));
        let (_, pax) = encode(&file(&path, 0), 0).unwrap();
        assert_eq!(keys(&pax), ["path"]);

        // Over 255 bytes in total.
        let path = vec!["p".repeat(50); 6].join("/");
        let (_, pax) = encode(&entry(&path, EntryKind::Dir), 0).unwrap();
        assert_eq!(pax["path"], format!("{path}/").as_bytes());
    }

    #[test]
    fn a_directory_slash_is_not_a_split_point() {
        // 101 bytes with the slash, and the only `/` is the trailing one.
        let path = "q".repeat(100);
        let (_, pax) = encode(&entry(&path, EntryKind::Dir), 0).unwrap();
        assert_eq!(keys(&pax), ["path"]);
        // Exactly 100 bytes with the slash fits the name field.
        let (h, pax) = encode(&entry(&"q".repeat(99), EntryKind::Dir), 0).unwrap();
        assert!(pax.is_empty());
        assert_eq!(name_fields(&h).1, format!("{}/", "q".repeat(99)));
    }

    #[test]
    fn long_link_targets_go_to_pax() {
        let link = |t: &str| {
            entry(
                "l",
                EntryKind::Symlink {
                    target: t.to_string(),
                },
            )
        };
        let (h, pax) = encode(&link(&"t".repeat(100)), 0).unwrap();
        assert!(pax.is_empty());
        assert_eq!(h.link_name_bytes().unwrap().len(), 100);
        let target = format!("/{}", "t".repeat(100));
        let (h, pax) = encode(&link(&target), 0).unwrap();
        assert_eq!(keys(&pax), ["linkpath"]);
        assert_eq!(pax["linkpath"], target.as_bytes());
        assert_eq!(h.link_name_bytes().unwrap().len(), 100);
        assert_eq!(h.entry_type(), EntryType::Symlink);
    }

    #[test]
    fn numbers_beyond_octal_fields_go_to_pax_as_decimal() {
        let mut e = file("big", 1 << 33);
        e.uid = 1 << 21;
        e.gid = (1 << 21) - 1;
        let (h, pax) = encode(&e, 1 << 33).unwrap();
        assert_eq!(keys(&pax), ["mtime", "size", "uid"]);
        assert_eq!(pax["size"], b"8589934592");
        assert_eq!(pax["uid"], b"2097152");
        assert_eq!(pax["mtime"], b"8589934592");
        // The ustar fields hold 0, never GNU base-256.
        assert_eq!(&h.as_old().size, b"00000000000\0");
        assert_eq!(&h.as_old().uid, b"0000000\0");
        assert_eq!(&h.as_old().gid, b"7777777\0");

        let (h, pax) = encode(&file("edge", (1 << 33) - 1), (1 << 33) - 1).unwrap();
        assert!(pax.is_empty());
        assert_eq!(&h.as_old().size, b"77777777777\0");
    }

    #[test]
    fn non_canonical_paths_are_refused() {
        for bad in ["", "/a", "a/", "a//b", "./a", "a/./b", "a/..", "..", "a\0b"] {
            let err = encode(&entry(bad, EntryKind::Dir), 0).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        for bad in ["", "a\0"] {
            let e = entry(
                "l",
                EntryKind::Symlink {
                    target: bad.to_string(),
                },
            );
            assert!(encode(&e, 0).is_err());
        }
    }

    #[test]
    fn exact_reader_refuses_short_and_long_sources() {
        let read = |data: &[u8], size: u64| {
            let mut r = ExactReader {
                inner: data,
                remaining: size,
                size,
                path: Cow::Borrowed(Path::new("/src/f")),
            };
            let mut out = Vec::new();
            r.read_to_end(&mut out).map(|_| out)
        };
        assert_eq!(read(b"abc", 3).unwrap(), b"abc");
        for size in [2, 4] {
            let err = read(b"abc", size).unwrap_err();
            assert!(err.to_string().contains("/src/f: changed while building"));
        }
    }
}
