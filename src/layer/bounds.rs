//! The bounds an untrusted tar stream is read within, kept *before* the
//! tar crate allocates.
//!
//! tar 0.4.46 reads the data of every GNU long name (`L`), GNU long link
//! (`K`) and PAX extended header (`x`) whole into memory, however large its
//! header says it is: a 3 MB gzip layer claiming a 3 GB long name costs
//! 3 GB. [`Guard`] sits between the decompressed stream and
//! `tar::Archive`, hands the bytes on unchanged, and follows the framing
//! exactly as tar 0.4.46 does (`Archive::next_entry_raw`, `next_entry`,
//! `parse_sparse_header`): 512-byte headers, the size field (octal or GNU
//! base-256), a PAX `size` record overriding the next entry's size, GNU
//! sparse extension blocks, the all-zero block that ends the archive and
//! padding to 512. Each header is read ahead and checked before any of it
//! is handed on, so a header past a bound never reaches the tar crate.
//!
//! The bounds:
//! - an extension entry (`L`, `K`, `x`, `g`) carries at most
//!   [`MAX_EXTENSION`] bytes, Go's `archive/tar` `maxSpecialFileSize`,
//!   which containerd, Docker and every Go runtime read layers with;
//! - a tar holds at most [`Limits::entries`] entries (default
//!   [`DEFAULT_MAX_ENTRIES`]; `--max-layer-entries` or
//!   `INGOT_MAX_LAYER_ENTRIES` raises it, read once by `cli.rs` and set
//!   with [`set_max_entries`]);
//! - a name or link name, once long names and PAX records are applied,
//!   has at most [`MAX_NAME`] bytes ([`names`], called by each reader on
//!   the entries it takes).
//!
//! A bound exceeded is an `io::Error` of kind `InvalidData` whose inner
//! error is an [`Exceeded`] ([`exceeded`] finds it): readers say it as it
//! is, not as a corrupt tar.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of data an extension entry may carry: Go's `archive/tar`
/// `maxSpecialFileSize`. No layer a Go runtime unpacks needs more.
pub const MAX_EXTENSION: u64 = 1 << 20;

/// Entries one tar may hold unless raised: each costs the readers memory
/// (the view keeps a node per path). Debian's largest packages hold tens of
/// thousands; a whole distribution's root file system well under a million.
pub const DEFAULT_MAX_ENTRIES: u64 = 4_194_304;

/// The environment variable that raises [`DEFAULT_MAX_ENTRIES`] (read by
/// `cli.rs`, the one place the environment enters).
pub const MAX_ENTRIES_VAR: &str = "INGOT_MAX_LAYER_ENTRIES";

/// Longest name or link name, in bytes: Linux's `PATH_MAX`. No runtime can
/// create a longer path.
pub const MAX_NAME: usize = 4096;

/// The tar block: headers, sparse extension blocks and padding.
const BLOCK: usize = 512;

/// The process's bound on entries, set once at the edge.
static MAX_ENTRIES: AtomicU64 = AtomicU64::new(DEFAULT_MAX_ENTRIES);

/// Sets the bound on entries every [`Guard::new`] keeps to from now on
/// (`cli.rs` calls it with `INGOT_MAX_LAYER_ENTRIES`).
pub fn set_max_entries(limit: u64) {
    MAX_ENTRIES.store(limit, Ordering::Relaxed);
}

/// The bounds a [`Guard`] keeps to, beyond the fixed [`MAX_EXTENSION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries the tar may hold (extension entries count with the entry
    /// they describe, not apart).
    pub entries: u64,
}

impl Limits {
    /// The bounds this process reads with: [`DEFAULT_MAX_ENTRIES`] unless
    /// [`set_max_entries`] raised it.
    pub fn current() -> Limits {
        Limits {
            entries: MAX_ENTRIES.load(Ordering::Relaxed),
        }
    }
}

/// What went past a bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    /// An extension entry's header claims more data than [`MAX_EXTENSION`].
    #[error("{} of {size} bytes (limit {limit})", extension_name(*.typeflag))]
    Extension { typeflag: u8, size: u64, limit: u64 },
    /// The tar holds more entries than [`Limits::entries`].
    #[error("more than {limit} entries (limit {limit}; --max-layer-entries raises it)")]
    Entries { limit: u64 },
    /// A name or link name longer than [`MAX_NAME`]; `start` is its
    /// beginning, to find it by.
    #[error("{what} of {len} bytes starting {start:?} (limit {limit}, PATH_MAX)")]
    Name {
        what: &'static str,
        len: usize,
        start: String,
        limit: usize,
    },
}

fn extension_name(typeflag: u8) -> &'static str {
    match typeflag {
        b'L' => "a GNU long name",
        b'K' => "a GNU long link name",
        b'x' => "a PAX extended header",
        _ => "a PAX global header",
    }
}

/// The bound `e` reports, if it is a [`Guard`]'s refusal.
pub fn exceeded(e: &io::Error) -> Option<&Exceeded> {
    e.get_ref()?.downcast_ref::<Exceeded>()
}

/// Refuses an entry whose name or link name, as the tar crate resolves
/// them (GNU long names, PAX `path` and `linkpath`), is longer than
/// [`MAX_NAME`].
pub fn names<R: Read>(entry: &tar::Entry<R>) -> Result<(), Exceeded> {
    let check = |what: &'static str, name: &[u8]| {
        if name.len() <= MAX_NAME {
            return Ok(());
        }
        let start: String = String::from_utf8_lossy(&name[..64]).into_owned();
        Err(Exceeded::Name {
            what,
            len: name.len(),
            start: format!("{start}…"),
            limit: MAX_NAME,
        })
    };
    check("a name", &entry.path_bytes())?;
    match entry.link_name_bytes() {
        Some(link) => check("a link name", &link),
        None => Ok(()),
    }
}

/// Where the guard is in the stream.
#[derive(Debug)]
enum State {
    /// At a header: the next block is read ahead and checked.
    Header,
    /// At a GNU sparse extension block of an entry whose data, `size`
    /// bytes and `pad`, follows the last such block.
    SparseExt { size: u64, pad: u64 },
    /// Inside an entry: `data` bytes of data, then `pad` bytes to the next
    /// block. A PAX extended header's data is kept, to learn its `size`.
    Data {
        data: u64,
        pad: u64,
        pax: Option<Vec<u8>>,
    },
    /// Past the end of the archive, where the tar crate reads no more
    /// headers: the rest passes through.
    Through,
    /// At a header the tar crate refuses too (a bad checksum or size):
    /// it reads nothing after it, and nothing more is handed on.
    Lost,
    /// A bound was exceeded: every read says so.
    Refused(Exceeded),
}

/// What the extension entries read so far say about the entry they
/// describe (tar 0.4.46's `next_entry` loop).
#[derive(Debug, Default)]
struct Group {
    /// The data of the PAX extended header, whose `size` record replaces
    /// the entry's header size.
    pax: Option<Vec<u8>>,
}

/// A reader that hands on a tar stream unchanged while following its
/// framing as tar 0.4.46 does, refusing what goes past [`Limits`] before
/// the tar crate reads it. Wrap the decompressed stream in it and give it
/// to `tar::Archive::new`.
pub struct Guard<R> {
    inner: R,
    limits: Limits,
    state: State,
    /// The block being read ahead (`filled` bytes of it), then handed on
    /// (`given` bytes of `ready`).
    block: [u8; BLOCK],
    filled: usize,
    ready: usize,
    given: usize,
    group: Group,
    entries: u64,
    /// Bytes handed on.
    pos: u64,
    /// Where each entry the tar crate yields has its header, for tests.
    #[cfg(test)]
    starts: Vec<u64>,
}

impl<R: Read> Guard<R> {
    /// Guards `inner` within the process's [`Limits::current`].
    pub fn new(inner: R) -> Guard<R> {
        Guard::with_limits(inner, Limits::current())
    }

    pub fn with_limits(inner: R, limits: Limits) -> Guard<R> {
        Guard {
            inner,
            limits,
            state: State::Header,
            block: [0; BLOCK],
            filled: 0,
            ready: 0,
            given: 0,
            group: Group::default(),
            entries: 0,
            pos: 0,
            #[cfg(test)]
            starts: Vec::new(),
        }
    }

    /// Reads the next block ahead into `block`; false when the stream ended
    /// first (what there was of the block is then ready to hand on).
    fn fill_block(&mut self) -> io::Result<bool> {
        while self.filled < BLOCK {
            let n = self.inner.read(&mut self.block[self.filled..])?;
            if n == 0 {
                self.ready = std::mem::take(&mut self.filled);
                self.given = 0;
                return Ok(false);
            }
            self.filled += n;
        }
        self.filled = 0;
        self.ready = BLOCK;
        self.given = 0;
        Ok(true)
    }

    /// The state after the header in `block`, or the bound it exceeds.
    fn after_header(&mut self) -> Result<State, Exceeded> {
        if self.block.iter().all(|b| *b == 0) {
            // The end of the archive (tar's `ignore_zeros` is off).
            return Ok(State::Through);
        }
        let header = tar::Header::from_byte_slice(&self.block);
        let sum = self.block[..148]
            .iter()
            .chain(&self.block[156..])
            .fold(8 * 32u32, |a, b| a + u32::from(*b));
        let Ok(mut size) = header.entry_size() else {
            return Ok(State::Lost);
        };
        if header.cksum().ok() != Some(sum) {
            return Ok(State::Lost);
        }
        let typeflag = header.as_old().linkflag[0];
        let kind = header.entry_type();
        let extension = kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_local_extensions()
            || kind.is_pax_global_extensions();
        if extension && size > MAX_EXTENSION {
            return Err(Exceeded::Extension {
                typeflag,
                size,
                limit: MAX_EXTENSION,
            });
        }
        if !extension && let Some(pax_size) = self.group.pax.as_deref().and_then(pax_size) {
            size = pax_size;
        }
        let Some(pad) = padding(size) else {
            // tar: "size overflow".
            return Ok(State::Lost);
        };
        // The tar crate takes these in, as part of the entry that follows,
        // only from a ustar or GNU header; others it yields as entries.
        let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
        if recognized
            && (kind.is_gnu_longname() || kind.is_gnu_longlink() || kind.is_pax_local_extensions())
        {
            let pax = kind.is_pax_local_extensions().then(Vec::new);
            return Ok(State::Data {
                data: size,
                pad,
                pax,
            });
        }
        self.group = Group::default();
        self.entries += 1;
        if self.entries > self.limits.entries {
            return Err(Exceeded::Entries {
                limit: self.limits.entries,
            });
        }
        #[cfg(test)]
        self.starts.push(self.pos);
        if kind.is_gnu_sparse() {
            return Ok(match header.as_gnu() {
                Some(gnu) if gnu.is_extended() => State::SparseExt { size, pad },
                Some(_) => State::Data {
                    data: size,
                    pad,
                    pax: None,
                },
                // tar: "sparse entry type listed but not GNU header".
                None => State::Lost,
            });
        }
        Ok(State::Data {
            data: size,
            pad,
            pax: None,
        })
    }

    /// The state after the sparse extension block in `block`: another
    /// one, or the entry's data.
    fn after_sparse_ext(&self, size: u64, pad: u64) -> State {
        let mut ext = tar::GnuExtSparseHeader::new();
        ext.as_mut_bytes().copy_from_slice(&self.block);
        if ext.is_extended() {
            return State::SparseExt { size, pad };
        }
        State::Data {
            data: size,
            pad,
            pax: None,
        }
    }

    /// Moves past an entry whose data and padding are all read.
    fn settle(&mut self) {
        if let State::Data { data: 0, pad, pax } = &mut self.state {
            if let Some(pax) = pax.take() {
                self.group.pax = Some(pax);
            }
            if *pad == 0 {
                self.state = State::Header;
            }
        }
    }

    /// Hands on what is ready of the block read ahead.
    fn give(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.ready - self.given);
        buf[..n].copy_from_slice(&self.block[self.given..self.given + n]);
        self.given += n;
        n
    }
}

/// The bytes from the end of `size` bytes of data to the next block; None
/// where tar 0.4.46 fails ("size overflow").
fn padding(size: u64) -> Option<u64> {
    let end = size.checked_add(BLOCK as u64 - 1)? / BLOCK as u64 * BLOCK as u64;
    Some(end - size)
}

/// The `size` record of PAX extended header data, as tar 0.4.46 reads it
/// (`pax_extensions_value`): the first record with that key, and none at
/// all when a record before it is malformed or its value is no number.
fn pax_size(data: &[u8]) -> Option<u64> {
    for record in tar::PaxExtensions::new(data) {
        let record = record.ok()?;
        if record.key() != Ok("size") {
            continue;
        }
        return record.value().ok()?.parse().ok();
    }
    None
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.given == self.ready {
            match &mut self.state {
                State::Through => {
                    let n = self.inner.read(buf)?;
                    self.pos += n as u64;
                    return Ok(n);
                }
                State::Lost => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("the tar stream cannot be followed past byte {}", self.pos),
                    ));
                }
                State::Refused(exceeded) => {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, exceeded.clone()));
                }
                State::Data { data, pad, pax } => {
                    let left = if *data > 0 { *data } else { *pad };
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = self.inner.read(&mut buf[..want])?;
                    if *data > 0 {
                        *data -= n as u64;
                        if let Some(pax) = pax {
                            pax.extend_from_slice(&buf[..n]);
                        }
                    } else {
                        *pad -= n as u64;
                    }
                    self.pos += n as u64;
                    self.settle();
                    return Ok(n);
                }
                State::Header | State::SparseExt { .. } => self.next_block()?,
            }
        }
        let n = self.give(buf);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read> Guard<R> {
    /// Reads the next header or sparse extension block ahead and moves
    /// past it, unless it goes past a bound.
    fn next_block(&mut self) -> io::Result<()> {
        if !self.fill_block()? {
            // Cut short: the tar crate fails on it, or has ended.
            self.state = State::Through;
            return Ok(());
        }
        let next = match self.state {
            State::SparseExt { size, pad } => Ok(self.after_sparse_ext(size, pad)),
            _ => self.after_header(),
        };
        match next {
            Ok(next) => {
                self.state = next;
                self.settle();
                Ok(())
            }
            Err(exceeded) => {
                // Nothing of the header is handed on.
                self.ready = 0;
                self.given = 0;
                self.state = State::Refused(exceeded.clone());
                Err(io::Error::new(io::ErrorKind::InvalidData, exceeded))
            }
        }
    }
}

/// tar's `entries_with_seek` skips an entry's data by seeking forward
/// over it (and seeks by 0 at every header, taking the position it
/// returns as its own): the guard follows those seeks, and refuses any
/// other, which tar never makes.
impl<R: Read + Seek> Seek for Guard<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let unsupported =
            || io::Error::other("a guarded tar stream only seeks forward over entry data");
        let ahead = (self.ready - self.given) as u64 + self.filled as u64;
        let SeekFrom::Current(delta) = to else {
            return Err(unsupported());
        };
        if delta == 0 {
            return Ok(self.inner.stream_position()? - ahead);
        }
        let delta = u64::try_from(delta).map_err(|_| unsupported())?;
        let State::Data {
            data,
            pad,
            pax: None,
        } = &mut self.state
        else {
            return Err(unsupported());
        };
        if ahead != 0 || delta > *data + *pad {
            return Err(unsupported());
        }
        let skip_data = delta.min(*data);
        *data -= skip_data;
        *pad -= delta - skip_data;
        let at = self.inner.seek(SeekFrom::Current(delta as i64))?;
        self.pos += delta;
        self.settle();
        Ok(at)
    }
}

#[cfg(test)]
mod tests;
