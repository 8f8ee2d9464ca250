//! Files inside files: a server or a key packed in a gzip, xz or zstd
//! stream, a tar or a zip in the image is as much in the image as a plain
//! one. Archives are recognised by their magic, not their names, and read
//! recursively within bounds: [`MAX_DEPTH`] levels, [`MAX_BYTES`] read in
//! all and [`MAX_MEMBERS`] members per file in the image. What a bound
//! stops is reported as unscanned, never passed: an auditor allows it by
//! path, or the image drops it.
//!
//! A file that is not a well-formed archive of its kind is scanned as far
//! as it reads; a runtime's unpacking would stop at the same place.

use std::io::{self, Read, Seek, Write};

use tempfile::SpooledTempFile;

use super::content::Content;
use crate::layer::bounds;

/// Archives within archives, the outermost counting as one.
pub const MAX_DEPTH: usize = 4;
/// Bytes read from inside one file's archives, decompressed.
pub const MAX_BYTES: u64 = 1 << 30;
/// Members of one file's archives, at every level.
pub const MAX_MEMBERS: u64 = 100_000;

/// The bounds a scan of one file keeps to.
#[derive(Debug, Clone, Copy)]
struct Limits {
    depth: usize,
    bytes: u64,
    members: u64,
}

const LIMITS: Limits = Limits {
    depth: MAX_DEPTH,
    bytes: MAX_BYTES,
    members: MAX_MEMBERS,
};
/// Memory an xz stream may ask for (xz -9 needs 65 MiB).
const XZ_MEMORY: u64 = 128 << 20;
/// Largest zstd window accepted (the format's default maximum, 128 MiB).
const ZSTD_WINDOW_LOG: u32 = 27;
/// A zip is read from its central directory, so it is spooled: in memory
/// up to this size, then in an anonymous temporary file that vanishes
/// with the scan however it ends.
const SPOOL_MEMORY: usize = 4 << 20;
/// Bytes needed to recognise every format (ustar's magic ends at 262).
const MAGIC: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Gzip,
    Xz,
    Zstd,
    Zip,
    Tar,
}

fn format_of(head: &[u8]) -> Option<Format> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Format::Gzip)
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some(Format::Xz)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Format::Zstd)
    } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        Some(Format::Zip)
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Some(Format::Tar)
    } else {
        None
    }
}

/// What was found inside an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inner {
    Key(String),
    Server(&'static str),
    Unscanned(String),
}

/// `(member, what)`: the member's path inside the file, `!/` between
/// levels, as `jar:` URLs write it.
pub type InnerFindings = Vec<(String, Inner)>;

/// Collects a file in the image while it streams past, when it is an
/// archive, to read inside it once it has ended.
pub struct Spool {
    head: Vec<u8>,
    state: State,
    limits: Limits,
}

impl Default for Spool {
    fn default() -> Spool {
        Spool {
            head: Vec::new(),
            state: State::Deciding,
            limits: LIMITS,
        }
    }
}

enum State {
    Deciding,
    Plain,
    Archive(Format, SpooledTempFile, u64),
    Failed(String),
}

impl Spool {
    pub fn feed(&mut self, chunk: &[u8]) {
        match &mut self.state {
            State::Deciding => {
                let take = chunk.len().min(MAGIC - self.head.len());
                self.head.extend_from_slice(&chunk[..take]);
                if self.head.len() == MAGIC {
                    self.decide();
                    self.feed(&chunk[take..]);
                }
            }
            State::Archive(_, spool, written) => {
                *written += chunk.len() as u64;
                if *written > self.limits.bytes {
                    self.state = State::Failed(format!("larger than {}", mib(self.limits.bytes)));
                } else if let Err(e) = spool.write_all(chunk) {
                    self.state = State::Failed(format!("could not be spooled: {e}"));
                }
            }
            State::Plain | State::Failed(_) => {}
        }
    }

    fn decide(&mut self) {
        let head = std::mem::take(&mut self.head);
        self.state = match format_of(&head) {
            None => State::Plain,
            Some(format) => {
                let mut spool = SpooledTempFile::new(SPOOL_MEMORY);
                match spool.write_all(&head) {
                    Ok(()) => State::Archive(format, spool, head.len() as u64),
                    Err(e) => State::Failed(format!("could not be spooled: {e}")),
                }
            }
        };
    }

    /// Reads inside the file, if it was an archive.
    pub fn finish(mut self) -> InnerFindings {
        if matches!(self.state, State::Deciding) {
            self.decide();
        }
        let mut out = Vec::new();
        match self.state {
            State::Plain | State::Deciding => {}
            State::Failed(reason) => out.push((String::new(), Inner::Unscanned(reason))),
            State::Archive(format, mut spool, written) => {
                let mut budget = Budget {
                    bytes: self.limits.bytes - written,
                    limits: self.limits,
                    members: self.limits.members,
                    exhausted: false,
                };
                match spool.rewind() {
                    Ok(()) if format == Format::Zip => {
                        zip_members(spool, "", 1, &mut budget, &mut out)
                    }
                    Ok(()) => open(format, spool, "", 1, &mut budget, &mut out),
                    Err(e) => out.push((
                        String::new(),
                        Inner::Unscanned(format!("could not be spooled: {e}")),
                    )),
                }
            }
        }
        out
    }
}

/// What is left to read inside one file in the image.
struct Budget {
    limits: Limits,
    bytes: u64,
    members: u64,
    exhausted: bool,
}

impl Budget {
    /// Takes `n` bytes; false, once, when they are more than are left.
    fn take(&mut self, n: u64, at: &str, out: &mut InnerFindings) -> bool {
        if self.exhausted {
            return false;
        }
        match self.bytes.checked_sub(n) {
            Some(left) => {
                self.bytes = left;
                true
            }
            None => {
                let reason = format!("more than {} inside", mib(self.limits.bytes));
                self.exhaust(at, reason, out);
                false
            }
        }
    }

    fn member(&mut self, at: &str, out: &mut InnerFindings) -> bool {
        if self.exhausted {
            return false;
        }
        if self.members == 0 {
            let reason = format!("more than {} members inside", self.limits.members);
            self.exhaust(at, reason, out);
            return false;
        }
        self.members -= 1;
        true
    }

    fn exhaust(&mut self, at: &str, reason: String, out: &mut InnerFindings) {
        self.exhausted = true;
        out.push((at.to_string(), Inner::Unscanned(reason)));
    }
}

fn mib(bytes: u64) -> String {
    match bytes >> 20 {
        0 => format!("{bytes} bytes"),
        n => format!("{n} MiB"),
    }
}

fn join(outer: &str, member: &str) -> String {
    let member = member.trim_start_matches("./");
    if outer.is_empty() {
        member.to_string()
    } else {
        format!("{outer}!/{member}")
    }
}

/// Scans a stream found inside an archive: another archive is opened,
/// anything else is scanned for keys and servers.
fn scan(
    reader: &mut dyn Read,
    name: &str,
    depth: usize,
    budget: &mut Budget,
    out: &mut InnerFindings,
) {
    let mut head = Vec::with_capacity(MAGIC);
    if reader.take(MAGIC as u64).read_to_end(&mut head).is_err() {
        return;
    }
    let mut whole = head.as_slice().chain(reader);
    match format_of(&head) {
        Some(_) if depth >= budget.limits.depth => out.push((
            name.to_string(),
            Inner::Unscanned(format!(
                "archives nested more than {} deep",
                budget.limits.depth
            )),
        )),
        Some(format) => open(format, whole, name, depth + 1, budget, out),
        None => leaf(&mut whole, name, budget, out),
    }
}

/// Reads inside an archive of `format` at `depth`.
fn open(
    format: Format,
    reader: impl Read,
    name: &str,
    depth: usize,
    budget: &mut Budget,
    out: &mut InnerFindings,
) {
    match format {
        Format::Gzip => scan(
            &mut flate2::read::MultiGzDecoder::new(reader),
            name,
            depth,
            budget,
            out,
        ),
        Format::Xz => match liblzma::stream::Stream::new_stream_decoder(XZ_MEMORY, 0) {
            Ok(stream) => scan(
                &mut liblzma::read::XzDecoder::new_stream(io::BufReader::new(reader), stream),
                name,
                depth,
                budget,
                out,
            ),
            Err(e) => out.push((name.to_string(), Inner::Unscanned(format!("xz: {e}")))),
        },
        Format::Zstd => match zstd::stream::read::Decoder::new(reader) {
            Ok(mut decoder) => {
                if decoder.window_log_max(ZSTD_WINDOW_LOG).is_ok() {
                    scan(&mut decoder, name, depth, budget, out);
                }
            }
            Err(e) => out.push((name.to_string(), Inner::Unscanned(format!("zstd: {e}")))),
        },
        Format::Tar => tar_members(reader, name, depth, budget, out),
        Format::Zip => {
            let mut spool = SpooledTempFile::new(SPOOL_MEMORY);
            let limit = budget.bytes.saturating_add(1);
            match io::copy(&mut reader.take(limit), &mut spool) {
                Ok(n) if budget.take(n, name, out) && spool.rewind().is_ok() => {
                    zip_members(spool, name, depth, budget, out);
                }
                _ => {}
            }
        }
    }
}

fn tar_members(
    reader: impl Read,
    name: &str,
    depth: usize,
    budget: &mut Budget,
    out: &mut InnerFindings,
) {
    let mut archive = tar::Archive::new(bounds::Guard::new(reader));
    let Ok(entries) = archive.entries() else {
        return;
    };
    for entry in entries {
        // A malformed entry ends the reading, as it ends any unpacking;
        // what goes past a bound of the tar reader is unscanned.
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                if let Some(exceeded) = bounds::exceeded(&e) {
                    out.push((name.to_string(), Inner::Unscanned(exceeded.to_string())));
                }
                return;
            }
        };
        if let Err(exceeded) = bounds::names(&entry) {
            out.push((name.to_string(), Inner::Unscanned(exceeded.to_string())));
            return;
        }
        let member = join(name, &String::from_utf8_lossy(&entry.path_bytes()));
        if !budget.member(&member, out) {
            return;
        }
        if entry.header().entry_type().is_file() {
            scan(&mut entry, &member, depth, budget, out);
        }
    }
}

fn zip_members<R: Read + Seek>(
    reader: R,
    name: &str,
    depth: usize,
    budget: &mut Budget,
    out: &mut InnerFindings,
) {
    // The central directory is what unzip and the JVM read.
    let Ok(mut archive) = zip::ZipArchive::new(reader) else {
        return;
    };
    for index in 0..archive.len() {
        let file = archive.by_index(index);
        let member = match &file {
            Ok(f) => join(name, &f.name_raw().escape_ascii().to_string()),
            Err(_) => join(name, &format!("#{index}")),
        };
        if !budget.member(&member, out) {
            return;
        }
        match file {
            Ok(mut f) if f.is_file() => scan(&mut f, &member, depth, budget, out),
            Ok(_) => {}
            // An encrypted member, or a compression method not read here:
            // what it holds cannot be told.
            Err(e) => out.push((member, Inner::Unscanned(e.to_string()))),
        }
    }
}

/// Scans a stream that is no archive, within the budget.
fn leaf(reader: &mut dyn Read, name: &str, budget: &mut Budget, out: &mut InnerFindings) {
    let mut content = Content::new(false);
    let mut buf = vec![0; 16 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !budget.take(n as u64, name, out) {
                    break;
                }
                content.feed(&buf[..n]);
            }
        }
    }
    let found = content.finish();
    if let Some(key) = found.key {
        out.push((name.to_string(), Inner::Key(key)));
    }
    for server in found.servers {
        out.push((name.to_string(), Inner::Server(server)));
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn inside(bytes: &[u8], limits: Limits) -> InnerFindings {
        let mut spool = Spool {
            limits,
            ..Spool::default()
        };
        for chunk in bytes.chunks(1000) {
            spool.feed(chunk);
        }
        spool.finish()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).unwrap();
        gz.finish().unwrap()
    }

    fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in members {
            let mut header = tar::Header::new_ustar();
            header.set_size(data.len() as u64);
            tar.append_data(&mut header, name, *data).unwrap();
        }
        tar.into_inner().unwrap()
    }

    const SSHD: &[u8] = b"\x7fELF\x02\x01\x01\0\0usage: sshd [-46]\0";

    #[test]
    fn what_a_bound_stops_is_reported_and_what_came_before_is_found() {
        let unscanned = |found: &InnerFindings| {
            found
                .iter()
                .filter_map(|(at, what)| match what {
                    Inner::Unscanned(reason) => Some(format!("{at}: {reason}")),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        // Bytes: the server comes first, then more than the bound allows.
        let padding = vec![0u8; 8192];
        let archive = gzip(&tar(&[("a/sshd", SSHD), ("b/padding", &padding)]));
        let small = Limits {
            bytes: 4096,
            ..LIMITS
        };
        let found = inside(&archive, small);
        assert!(
            found.contains(&("a/sshd".into(), Inner::Server("OpenSSH sshd"))),
            "{found:?}"
        );
        assert_eq!(
            unscanned(&found),
            ["b/padding: more than 4096 bytes inside"]
        );
        // Members.
        let many = tar(&[("1", b""), ("2", b""), ("3", SSHD)]);
        let found = inside(
            &many,
            Limits {
                members: 2,
                ..LIMITS
            },
        );
        assert_eq!(unscanned(&found), ["3: more than 2 members inside"]);
        // Depth: gzip in gzip in gzip, one level too many.
        let deep = gzip(&gzip(&gzip(SSHD)));
        let found = inside(&deep, Limits { depth: 2, ..LIMITS });
        assert_eq!(unscanned(&found), [": archives nested more than 2 deep"]);
        let found = inside(&deep, Limits { depth: 3, ..LIMITS });
        assert_eq!(found, [(String::new(), Inner::Server("OpenSSH sshd"))]);
    }

    /// Issue 14: the tar crate reads a long name whole, however long its
    /// header says it is; the guard refuses it first, and says so.
    #[test]
    fn a_tar_header_past_a_bound_is_unscanned_not_read() {
        let mut bytes = tar(&[("a/sshd", SSHD)]);
        bytes.truncate(bytes.len() - 1024);
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(3 << 30);
        h.set_cksum();
        bytes.extend_from_slice(h.as_bytes());
        bytes.extend(vec![b'a'; 1 << 16]);
        let found = inside(&gzip(&bytes), LIMITS);
        assert_eq!(
            found,
            [
                ("a/sshd".into(), Inner::Server("OpenSSH sshd")),
                (
                    String::new(),
                    Inner::Unscanned("a GNU long name of 3221225472 bytes (limit 1048576)".into())
                )
            ]
        );
    }

    #[test]
    fn a_file_that_only_starts_like_an_archive_is_scanned_as_far_as_it_reads() {
        let mut broken = gzip(SSHD);
        broken.truncate(broken.len() - 12);
        broken.extend_from_slice(b"garbage");
        assert!(
            inside(&broken, LIMITS)
                .iter()
                .all(|(_, what)| !matches!(what, Inner::Unscanned(_)))
        );
        assert!(inside(b"PK\x03\x04 not a zip", LIMITS).is_empty());
    }
}
