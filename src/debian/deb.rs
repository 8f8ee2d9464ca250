//! Reading a `.deb` (deb(5)) as untrusted input: its `ar` archive, what
//! `control.tar` says about the package, and `data.tar` streamed through
//! the very reading and refusals image layers go through
//! ([`View::read_tar_with`]), never held whole, and landing as dpkg
//! unpacks it ([`Unpacking::Dpkg`]).
//!
//! What dpkg accepts decides what is read: `debian-binary` first (format
//! 2.x), then `control.tar{,.gz,.xz,.zst}`, then `data.tar{,.gz,.xz,.zst}`,
//! with members whose names begin with `_` skipped wherever they come
//! before `data.tar`, and nothing after `data.tar` read at all
//! (dpkg-deb's `extracthalf`). Everything is read within [`LIMITS`];
//! whatever goes past them is refused, naming the `.deb` and the member.
//!
//! The `ar` reader is written here rather than taken from a crate: it is
//! sixty-byte headers and a pad byte, read forward once, and the rules
//! that matter (names, order, what dpkg skips) are dpkg's, which no
//! general `ar` reader knows.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use crate::error::DebError;
use crate::layer::{WHITEOUT_PREFIX, bounds};
use crate::rootfs::meta::{self, ImagePath};
use crate::rootfs::{Change, FileVisitor, Unpacking, View};
use crate::store::file::{self, Links};

/// How much of a `.deb` ingot reads, at most. Debian's own packages stay
/// well inside each bound; anything past one is refused, not truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `ar` members up to and including `data.tar`: `debian-binary`,
    /// `control.tar`, `data.tar` and the `_` members deb(5) lets a later
    /// format add.
    pub members: usize,
    /// Size of `debian-binary` ("2.0\n" is 4 bytes).
    pub debian_binary: u64,
    /// Size of the `control.tar` member as stored (compressed).
    pub control_member: u64,
    /// `control.tar` decompressed, which is held in memory whole. The
    /// largest part is `md5sums`, about 100 bytes a file.
    pub control_tar: u64,
    /// Entries in `control.tar` (dpkg knows about twenty control files).
    pub control_entries: usize,
    /// `data.tar` decompressed, counted as it streams.
    pub data_tar: u64,
    /// Entries in `data.tar`: the view and the file list keep one each.
    pub data_entries: usize,
}

/// The bounds every `.deb` is read within.
pub const LIMITS: Limits = Limits {
    members: 16,
    debian_binary: 1 << 10,
    control_member: 16 << 20,
    control_tar: 64 << 20,
    control_entries: 64,
    data_tar: 4 << 30,
    data_entries: 1 << 20,
};

/// Longest data entry name in bytes, and longest component: Linux's
/// `PATH_MAX` (less the NUL) and `NAME_MAX`. dpkg could not create a
/// longer one, and a hostile name should not cost more.
const PATH_MAX: usize = 4095;
const NAME_MAX: usize = 255;

/// Memory the xz decoder may take: `xz -9` needs 65 MiB to decode, and
/// no legitimate package asks for more.
const XZ_MEMORY: u64 = 128 << 20;
/// Largest zstd window accepted (2^27 bytes, zstd's default maximum):
/// a larger one is refused rather than allocated.
const ZSTD_WINDOW_LOG: u32 = 27;

/// The magic string of an `ar` archive, and the size of a member header.
const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
const AR_HEADER: usize = 60;

/// How a `control.tar` or `data.tar` member is compressed, by the suffix
/// of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

/// The compression a member's name suffix says. dpkg also reads bzip2
/// and lzma in `data.tar`, which Debian's archive does not use; ingot
/// keeps its decoders to those it already has.
fn compression(suffix: &str) -> Result<Compression, String> {
    match suffix {
        "" => Ok(Compression::None),
        ".gz" => Ok(Compression::Gzip),
        ".xz" => Ok(Compression::Xz),
        ".zst" => Ok(Compression::Zstd),
        ".bz2" => Err("bzip2 compression is not supported (only gzip, xz and zstd)".into()),
        ".lzma" => Err("lzma compression is not supported (only gzip, xz and zstd)".into()),
        other => Err(format!("unknown compression {other:?}")),
    }
}

/// An `ar` member: its name and the size of its data.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    name: String,
    size: u64,
}

impl Member {
    /// The data and the pad byte that keeps the next header even.
    fn stored(&self) -> u64 {
        self.size + (self.size & 1)
    }
}

/// Parses an `ar` member header: name (16 bytes), mtime, uid, gid, mode,
/// size (10 decimal bytes), then the two magic bytes. The name loses its
/// space padding and the `/` GNU ar ends it with, as dpkg's
/// `dpkg_ar_normalize_name` does.
fn parse_header(raw: &[u8; AR_HEADER]) -> Result<Member, String> {
    if &raw[58..60] != b"`\n" {
        return Err("an ar member header without its magic (not an ar archive, or damaged)".into());
    }
    let field = &raw[..16];
    let padded = field.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    let name = &field[..padded];
    let name = name.strip_suffix(b"/").unwrap_or(name);
    if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "an ar member name that is not printable ASCII: {:?}",
            String::from_utf8_lossy(field)
        ));
    }
    let name = String::from_utf8_lossy(name).into_owned();
    let size = raw[48..58].trim_ascii();
    if size.is_empty() || !size.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "ar member {name:?} has a malformed size {:?}",
            String::from_utf8_lossy(&raw[48..58])
        ));
    }
    // Ten decimal digits fit a u64 with room to spare.
    let size = size.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Ok(Member { name, size })
}

/// Checks `debian-binary`: its first line is the format version, which
/// must be 2.x; later lines, which a later minor version may add, are
/// ignored (deb(5)).
fn check_format(content: &[u8]) -> Result<(), String> {
    let Some(line) = content
        .split(|&b| b == b'\n')
        .next()
        .filter(|_| content.contains(&b'\n'))
    else {
        return Err("debian-binary has no newline".into());
    };
    let minor = line.strip_prefix(b"2.").unwrap_or_default();
    if minor.is_empty() || !minor.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "debian-binary says format {:?}; only 2.x is read",
            String::from_utf8_lossy(line)
        ));
    }
    Ok(())
}

/// What a package's `control.tar` says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// Which `control.tar` member it came from (`control.tar.xz`).
    pub member: String,
    /// `./control`.
    pub control: Control,
    /// `./conffiles`, in its order (empty when there is none).
    pub conffiles: Vec<Conffile>,
    /// `./md5sums`, when the package has one.
    pub md5sums: Option<Md5Sums>,
    /// Every file of `control.tar` by name (`control`, `postinst`,
    /// `shlibs`...), as shipped: dpkg copies them into `info/`.
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Package {
    /// The maintainer scripts (and trigger declarations) the package
    /// ships, none of which ingot runs.
    pub fn scripts(&self) -> Vec<Script> {
        Script::ALL
            .into_iter()
            .filter(|s| self.files.contains_key(s.name()))
            .collect()
    }
}

/// A control file that makes dpkg run something: the maintainer scripts
/// and `config` (debconf), and `triggers`, which asks for other packages'
/// scripts to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Script {
    Preinst,
    Postinst,
    Prerm,
    Postrm,
    Config,
    Triggers,
}

impl Script {
    pub const ALL: [Script; 6] = [
        Script::Preinst,
        Script::Postinst,
        Script::Prerm,
        Script::Postrm,
        Script::Config,
        Script::Triggers,
    ];

    /// Its name in `control.tar`.
    pub fn name(self) -> &'static str {
        match self {
            Script::Preinst => "preinst",
            Script::Postinst => "postinst",
            Script::Prerm => "prerm",
            Script::Postrm => "postrm",
            Script::Config => "config",
            Script::Triggers => "triggers",
        }
    }
}

/// A package's `./control` stanza: the fields ingot acts on, parsed, and
/// all of them as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub multi_arch: MultiArch,
    pub essential: bool,
    /// Relationship fields, continuation lines joined with a space; the
    /// resolver parses them.
    pub depends: Option<String>,
    pub pre_depends: Option<String>,
    pub provides: Option<String>,
    /// Every field in order: its name as written, and its value as
    /// `dpkg-deb -f` prints it (continuation lines kept).
    pub fields: Vec<(String, String)>,
    /// The stanza as the package wrote it, ending in one newline: dpkg's
    /// `status` entry is written from it.
    pub stanza: String,
}

impl Control {
    /// The value of field `name` (matched without regard to case), as
    /// written.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The name dpkg files the package under in `info/`: `libc6:amd64`
    /// for a `Multi-Arch: same` package, which may be installed for
    /// several architectures at once, the bare name otherwise.
    pub fn info_name(&self) -> String {
        match self.multi_arch {
            MultiArch::Same => format!("{}:{}", self.package, self.architecture),
            _ => self.package.clone(),
        }
    }
}

/// The `Multi-Arch` field (no field is `No`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MultiArch {
    #[default]
    No,
    Same,
    Foreign,
    Allowed,
}

/// One line of `conffiles` (deb-conffiles(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conffile {
    pub path: ImagePath,
    /// The `remove-on-upgrade` flag: the file is dropped on upgrade.
    pub remove_on_upgrade: bool,
}

/// A package's `md5sums` (deb-md5sums(5)): the text as shipped, which
/// dpkg copies to `info/PKG.md5sums`, and its lines parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Md5Sums {
    pub text: Vec<u8>,
    pub files: Vec<Md5Sum>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Md5Sum {
    pub path: ImagePath,
    pub md5: [u8; 16],
}

/// The paths a package's `data.tar` lists, in its order, as dpkg records
/// them: not resolved through the symlinks of what it is unpacked over.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileList(Vec<ImagePath>);

impl FileList {
    pub fn paths(&self) -> &[ImagePath] {
        &self.0
    }

    /// `info/PKG.list`: one path a line, the root as `/.`, names in their
    /// raw bytes.
    pub fn to_dpkg_list(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for path in &self.0 {
            out.extend_from_slice(&dpkg_name(path));
            out.push(b'\n');
        }
        out
    }
}

/// A path as dpkg's file lists write it: `/usr/bin`, and `/.` for the
/// root (dpkg keeps the `./` the archive names it by, less its slash).
pub fn dpkg_name(path: &ImagePath) -> Vec<u8> {
    if path.is_root() {
        return b"/.".to_vec();
    }
    let mut out = b"/".to_vec();
    out.extend_from_slice(&meta::encode_name(path.as_rel()));
    out
}

/// What a package's `data.tar` does as the next layer over a view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// The changes, for [`View::apply`].
    pub changes: Vec<Change>,
    /// Its paths, for `info/PKG.list`.
    pub files: FileList,
}

/// A `.deb` read up to its `data.tar`: its control information parsed,
/// its data not yet read.
pub struct Deb<R> {
    ar: Ar<R>,
    limits: Limits,
    package: Package,
    data: Member,
    compression: Compression,
}

impl Deb<BufReader<File>> {
    /// Opens the `.deb` at `path` (a symlink is followed) and reads it up
    /// to its data.
    pub fn open(path: &Path) -> Result<Self, DebError> {
        Deb::open_with(path, path.display().to_string(), Links::Follow)
    }

    /// [`Deb::open`] of a `.deb` in a content store, which is better known
    /// by its archive file name, `name`, in errors; a symlink there is
    /// refused.
    pub fn open_as(path: &Path, name: String) -> Result<Self, DebError> {
        Deb::open_with(path, name, Links::Refuse)
    }

    /// Opens a `.deb` only if it is a regular file, never blocking on a
    /// FIFO (see [`crate::store::file`]).
    fn open_with(path: &Path, name: String, links: Links) -> Result<Self, DebError> {
        let file = match file::open_regular(path, links) {
            Ok(f) => f,
            Err(e) => {
                return Err(match file::refusal(&e) {
                    Some(refused) => DebError::Malformed {
                        deb: name,
                        reason: refused.to_string(),
                    },
                    None => DebError::Io {
                        deb: name,
                        source: e,
                    },
                });
            }
        };
        let len = file
            .metadata()
            .map_err(|source| DebError::Io {
                deb: name.clone(),
                source,
            })?
            .len();
        Deb::read(name, BufReader::new(file), len)
    }
}

impl<R: Read> Deb<R> {
    /// Reads a `.deb` of `len` bytes from `reader` up to its data; `name`
    /// names it in errors. Knowing the length, a member that claims more
    /// than is left is refused before any of it is read.
    pub fn read(name: impl Into<String>, reader: R, len: u64) -> Result<Self, DebError> {
        Deb::read_within(name.into(), reader, len, LIMITS)
    }

    /// [`Deb::read`] within other bounds, so tests need not build
    /// gigabytes to reach them.
    #[cfg(test)]
    pub(crate) fn with_limits(
        name: &str,
        reader: R,
        len: u64,
        limits: Limits,
    ) -> Result<Self, DebError> {
        Deb::read_within(name.to_string(), reader, len, limits)
    }

    fn read_within(name: String, reader: R, len: u64, limits: Limits) -> Result<Self, DebError> {
        let mut ar = Ar {
            name,
            inner: reader,
            pos: 0,
            len,
            members: 0,
            limit: limits.members,
        };
        let mut magic = [0; AR_MAGIC.len()];
        ar.read_exact(&mut magic, "the archive's magic")?;
        if &magic != AR_MAGIC {
            return Err(ar.malformed("not an ar archive".into()));
        }

        let first = ar.header()?;
        if first.name != "debian-binary" {
            return Err(ar.malformed(format!(
                "its first member is {:?}, not debian-binary",
                first.name
            )));
        }
        if first.size > limits.debian_binary {
            return Err(ar.limit(&first, "its size", limits.debian_binary));
        }
        let mut format = vec![0; first.stored() as usize];
        ar.read_exact(&mut format, "debian-binary")?;
        format.truncate(first.size as usize);
        check_format(&format).map_err(|reason| ar.malformed(reason))?;

        let mut package = None;
        let (data, compression) = loop {
            let member = ar.header()?;
            if member.name.starts_with('_') {
                // deb(5): members a later format adds, which readers that
                // do not know them skip.
                ar.skip(member.stored())?;
                continue;
            }
            if let Some(suffix) = member.name.strip_prefix("control.tar") {
                if package.is_some() {
                    return Err(ar.malformed("it has two control.tar members".into()));
                }
                let compression = match compression(suffix) {
                    Ok(c) => c,
                    Err(reason) => return Err(ar.refused(&member, reason)),
                };
                package = Some(read_control(&mut ar, &member, compression, &limits)?);
                continue;
            }
            let expected = if package.is_none() {
                "control.tar"
            } else {
                "data.tar"
            };
            if package.is_none() || !member.name.starts_with("data.tar") {
                return Err(ar.malformed(format!(
                    "member {:?} comes where deb(5) puts {expected}",
                    member.name
                )));
            }
            let compression = compression(&member.name["data.tar".len()..])
                .map_err(|reason| ar.refused(&member, reason))?;
            if member.size == 0 {
                return Err(ar.refused(&member, "an empty member".into()));
            }
            break (member, compression);
        };
        Ok(Deb {
            ar,
            limits,
            package: package.expect("data.tar comes after control.tar"),
            data,
            compression,
        })
    }

    /// The name errors give the `.deb`.
    pub fn name(&self) -> &str {
        &self.ar.name
    }

    /// What `control.tar` says.
    pub fn package(&self) -> &Package {
        &self.package
    }

    /// The data member's name (`data.tar.xz`) and compression.
    pub fn data_member(&self) -> (&str, Compression) {
        (&self.data.name, self.compression)
    }

    /// `data.tar`, decompressed as it is read, within the bound on its
    /// size. Errors name the `.deb` and the member. Read it to its end:
    /// the compressed stream's own check comes last.
    pub fn into_data<'r>(self) -> Result<DataTar<'r>, DebError>
    where
        R: 'r,
    {
        let (deb, member) = (self.ar.name.clone(), self.data.name.clone());
        let (reader, faults) = self.open_data()?;
        Ok(DataTar {
            reader,
            faults,
            deb,
            member,
        })
    }

    /// Reads `data.tar` into the changes it makes as the next layer over
    /// `below`, through [`View::read_tar_with`], the reader every layer
    /// goes through: the same refusals of names that escape the root,
    /// hardlinks to nothing, ambiguous headers... Entries land as dpkg
    /// unpacks them: a directory that exists, or a symlink to one, stays
    /// (merged /usr). Each regular file is shown to `on_file`. Names a
    /// layer could not carry (OCI whiteouts) or dpkg could not create are
    /// refused too.
    pub fn read_data(self, below: &View, on_file: FileVisitor) -> Result<Data, DebError> {
        let (deb, member, limits) = (self.ar.name.clone(), self.data.name.clone(), self.limits);
        let (mut reader, faults) = self.open_data()?;
        let mut files = Vec::new();
        let mut seen = BTreeSet::new();
        let mut too_many = false;
        let read = {
            let mut on_name = |path: &ImagePath| {
                if files.len() >= limits.data_entries {
                    too_many = true;
                    return Err(format!("more than {} entries", limits.data_entries));
                }
                data_name(path)?;
                if !seen.insert(path.clone()) {
                    return Err(format!("data.tar lists {path} twice"));
                }
                files.push(path.clone());
                Ok(())
            };
            below.read_tar_with(&mut reader, Unpacking::Dpkg, &mut on_name, on_file)
        };
        // Read to the end: the compressed stream's own check comes last,
        // and what follows the tar still counts towards the bound.
        let rest = match &read {
            Ok(_) => io::copy(&mut reader, &mut io::sink()).map(drop),
            Err(_) => Ok(()),
        };
        if let Some(err) = faults.error(&deb, &member, "data.tar decompressed") {
            return Err(err);
        }
        if too_many {
            return Err(DebError::Limit {
                deb,
                member,
                what: "the number of entries".into(),
                limit: limits.data_entries as u64,
            });
        }
        let changes = read.map_err(|reason| DebError::Refused {
            deb: deb.clone(),
            member: member.clone(),
            reason,
        })?;
        rest.map_err(|source| DebError::Decode {
            deb,
            member,
            source,
        })?;
        Ok(Data {
            changes,
            files: FileList(files),
        })
    }

    /// [`Deb::read_data`], then applies the changes to `view` as its next
    /// layer; returns the package's file list. A package refused leaves
    /// the view as it was.
    pub fn apply_data(self, view: &mut View, on_file: FileVisitor) -> Result<FileList, DebError> {
        let Data { changes, files } = self.read_data(view, on_file)?;
        view.apply(changes);
        Ok(files)
    }

    fn open_data<'r>(self) -> Result<(Unpacked<'r>, Faults), DebError>
    where
        R: 'r,
    {
        let Deb {
            ar,
            limits,
            data,
            compression,
            ..
        } = self;
        let faults = Faults::default();
        let stored = Stored {
            inner: ar.inner.take(data.size),
            faults: faults.clone(),
        };
        let decoder = decoder(compression, stored).map_err(|source| DebError::Decode {
            deb: ar.name,
            member: data.name,
            source,
        })?;
        let reader = Unpacked {
            decoder,
            read: 0,
            limit: limits.data_tar,
            faults: faults.clone(),
        };
        Ok((reader, faults))
    }
}

/// Refuses a data entry name an image layer could not carry, or dpkg
/// could not create.
fn data_name(path: &ImagePath) -> Result<(), String> {
    if let Some(c) = path.components().find(|c| c.starts_with(WHITEOUT_PREFIX)) {
        return Err(format!(
            "data.tar entry {path}: {c:?} begins with {WHITEOUT_PREFIX:?}, which an image \
             layer reads as a whiteout; refused"
        ));
    }
    let raw = meta::encode_name(path.as_rel());
    if raw.len() > PATH_MAX {
        return Err(format!(
            "data.tar entry {path}: a name of {} bytes, more than {PATH_MAX}",
            raw.len()
        ));
    }
    if path
        .components()
        .any(|c| meta::encode_name(c).len() > NAME_MAX)
    {
        return Err(format!(
            "data.tar entry {path}: a component longer than {NAME_MAX} bytes"
        ));
    }
    Ok(())
}

/// `data.tar`, decompressed as it streams: a reader a caller can hand on.
pub struct DataTar<'r> {
    reader: Unpacked<'r>,
    faults: Faults,
    deb: String,
    member: String,
}

impl DataTar<'_> {
    /// The typed error behind an I/O error this reader returned: the
    /// file's, the bound's or the compression's.
    pub fn error(&self) -> Option<DebError> {
        self.faults
            .error(&self.deb, &self.member, "data.tar decompressed")
    }
}

impl Read for DataTar<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {}: {e}", self.deb, self.member)))
    }
}

/// The archive as it is read, front to back. `len` is the file's size:
/// a member claiming more than is left is refused before it is read.
struct Ar<R> {
    name: String,
    inner: R,
    pos: u64,
    len: u64,
    /// Members met so far, and how many may be.
    members: usize,
    limit: usize,
}

impl<R: Read> Ar<R> {
    fn malformed(&self, reason: String) -> DebError {
        DebError::Malformed {
            deb: self.name.clone(),
            reason,
        }
    }

    fn refused(&self, member: &Member, reason: String) -> DebError {
        DebError::Refused {
            deb: self.name.clone(),
            member: member.name.clone(),
            reason,
        }
    }

    fn limit(&self, member: &Member, what: &str, limit: u64) -> DebError {
        DebError::Limit {
            deb: self.name.clone(),
            member: member.name.clone(),
            what: format!("{what} ({} bytes)", member.size),
            limit,
        }
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), DebError> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.pos += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.malformed(format!("truncated: the file ends inside {what}")))
            }
            Err(source) => Err(DebError::Io {
                deb: self.name.clone(),
                source,
            }),
        }
    }

    /// The next member's header, checked against what is left of the
    /// file.
    fn header(&mut self) -> Result<Member, DebError> {
        if self.pos >= self.len {
            return Err(self.malformed("it ends before its data.tar member".into()));
        }
        self.members += 1;
        if self.members > self.limit {
            return Err(self.malformed(format!("more than {} members before data.tar", self.limit)));
        }
        let mut raw = [0; AR_HEADER];
        self.read_exact(&mut raw, "a member header")?;
        let member = parse_header(&raw).map_err(|reason| self.malformed(reason))?;
        let left = self.len - self.pos;
        if member.stored() > left {
            return Err(self.malformed(format!(
                "truncated: member {:?} claims {} bytes, and {left} are left",
                member.name,
                member.stored()
            )));
        }
        Ok(member)
    }

    fn skip(&mut self, n: u64) -> Result<(), DebError> {
        let skipped =
            io::copy(&mut (&mut self.inner).take(n), &mut io::sink()).map_err(|source| {
                DebError::Io {
                    deb: self.name.clone(),
                    source,
                }
            })?;
        self.pos += skipped;
        if skipped < n {
            return Err(self.malformed("truncated: the file ends inside a member".into()));
        }
        Ok(())
    }
}

/// Reads and parses the `control.tar` member `member`.
fn read_control<R: Read>(
    ar: &mut Ar<R>,
    member: &Member,
    compression: Compression,
    limits: &Limits,
) -> Result<Package, DebError> {
    if member.size == 0 {
        return Err(ar.refused(member, "an empty member".into()));
    }
    if member.size > limits.control_member {
        return Err(ar.limit(member, "its size", limits.control_member));
    }
    let faults = Faults::default();
    let tar = {
        let stored = Stored {
            inner: (&mut ar.inner).take(member.size),
            faults: faults.clone(),
        };
        let mut tar = Vec::new();
        decoder(compression, stored)
            .map(|decoder| Unpacked {
                decoder,
                read: 0,
                limit: limits.control_tar,
                faults: faults.clone(),
            })
            .and_then(|mut r| r.read_to_end(&mut tar))
            .map(|_| tar)
    };
    if let Some(err) = faults.error(&ar.name, &member.name, "control.tar decompressed") {
        return Err(err);
    }
    let tar = tar.map_err(|source| DebError::Decode {
        deb: ar.name.clone(),
        member: member.name.clone(),
        source,
    })?;
    ar.pos += member.size;
    ar.skip(member.stored() - member.size)?;
    let files =
        control_files(&tar, limits.control_entries).map_err(|reason| ar.refused(member, reason))?;
    let control = files
        .get("control")
        .ok_or_else(|| ar.refused(member, "no ./control file".into()))?;
    let control =
        parse_control(control).map_err(|e| ar.refused(member, format!("./control: {e}")))?;
    let conffiles = match files.get("conffiles") {
        Some(text) => {
            parse_conffiles(text).map_err(|e| ar.refused(member, format!("./conffiles: {e}")))?
        }
        None => Vec::new(),
    };
    let md5sums = match files.get("md5sums") {
        Some(text) => Some(Md5Sums {
            files: parse_md5sums(text)
                .map_err(|e| ar.refused(member, format!("./md5sums: {e}")))?,
            text: text.clone(),
        }),
        None => None,
    };
    Ok(Package {
        member: member.name.clone(),
        control,
        conffiles,
        md5sums,
        files,
    })
}

/// The files of a `control.tar`, by name. It holds the root and plain
/// files at the top, nothing else: dpkg reads each by name, and a symlink
/// or a directory there is no control file.
fn control_files(tar: &[u8], max_entries: usize) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let mut files = BTreeMap::new();
    let corrupt = |e: io::Error| match bounds::exceeded(&e) {
        Some(exceeded) => exceeded.to_string(),
        None => format!("corrupt tar: {e}"),
    };
    let mut archive = tar::Archive::new(bounds::Guard::new(tar));
    let entries = archive.entries().map_err(corrupt)?;
    for (n, entry) in entries.enumerate() {
        let mut entry = entry.map_err(corrupt)?;
        if n >= max_entries {
            return Err(format!("more than {max_entries} entries"));
        }
        bounds::names(&entry).map_err(|e| e.to_string())?;
        let raw = entry.path_bytes().into_owned();
        let name = meta::decode_name(&raw);
        let kind = entry.header().entry_type();
        let path = ImagePath::from_rel(&name)
            .filter(|_| !name.starts_with('/'))
            .ok_or_else(|| format!("entry {name:?} is not a plain name"))?;
        if path.is_root() && kind.is_dir() {
            continue;
        }
        if path.is_root() || path.as_rel().contains('/') {
            return Err(format!("entry {name:?} is not at the top of the archive"));
        }
        if !kind.is_file() {
            return Err(format!(
                "entry {name:?} is not a regular file (tar type {:?})",
                kind.as_byte() as char
            ));
        }
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .map_err(|e| format!("corrupt tar: reading {name:?}: {e}"))?;
        if files.insert(path.as_rel().to_string(), content).is_some() {
            return Err(format!("{name:?} appears twice"));
        }
    }
    Ok(files)
}

/// Parses a binary package's `control` file: one deb822 stanza
/// (deb822(5)), UTF-8, as Debian policy requires of control files.
fn parse_control(text: &[u8]) -> Result<Control, String> {
    let text = std::str::from_utf8(text).map_err(|e| format!("not UTF-8: {e}"))?;
    // Blank lines may come before and after the stanza, not within it.
    let body = text.trim_start_matches(['\n']).trim_end_matches(['\n']);
    if body.is_empty() {
        return Err("no fields".into());
    }
    let mut fields: Vec<(String, String)> = Vec::new();
    for (n, line) in body.split('\n').enumerate() {
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = fields.last_mut() else {
                return Err(format!(
                    "line {}: a continuation line before any field",
                    n + 1
                ));
            };
            if line.trim().is_empty() {
                return Err(format!("line {}: a blank continuation line", n + 1));
            }
            value.push('\n');
            value.push_str(line.trim_end());
            continue;
        }
        if line.trim().is_empty() {
            return Err(format!(
                "line {}: a blank line inside the stanza (a control file is one stanza)",
                n + 1
            ));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("line {}: {line:?} is not a field", n + 1));
        };
        let valid_name = !name.is_empty()
            && !name.starts_with(['-', '#'])
            && name.bytes().all(|b| b.is_ascii_graphic());
        if !valid_name {
            return Err(format!("line {}: {name:?} is not a field name", n + 1));
        }
        if fields.iter().any(|(f, _)| f.eq_ignore_ascii_case(name)) {
            return Err(format!("field {name} appears twice"));
        }
        fields.push((name.to_string(), value.trim().to_string()));
    }
    let get = |name: &str| {
        fields
            .iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    // The fields ingot acts on are one line each.
    let simple = |name: &str| -> Result<Option<&str>, String> {
        match get(name) {
            Some(v) if v.contains('\n') => Err(format!("field {name} spans several lines")),
            Some("") => Err(format!("field {name} is empty")),
            v => Ok(v),
        }
    };
    let required = |name: &str| simple(name)?.ok_or_else(|| format!("no {name} field"));
    let package = required("Package")?;
    let version = required("Version")?;
    let architecture = required("Architecture")?;
    check_package_name(package)?;
    check_version(version)?;
    if !architecture
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(format!(
            "Architecture {architecture:?} is not an architecture name"
        ));
    }
    let multi_arch = match simple("Multi-Arch")? {
        None | Some("no") => MultiArch::No,
        Some("same") => MultiArch::Same,
        Some("foreign") => MultiArch::Foreign,
        Some("allowed") => MultiArch::Allowed,
        Some(other) => {
            return Err(format!(
                "Multi-Arch {other:?} is none of no, same, foreign, allowed"
            ));
        }
    };
    let essential = match simple("Essential")? {
        None | Some("no") => false,
        Some("yes") => true,
        Some(other) => return Err(format!("Essential {other:?} is neither yes nor no")),
    };
    let relation =
        |name: &str| get(name).map(|v| v.split('\n').map(str::trim).collect::<Vec<_>>().join(" "));
    let mut stanza = body.to_string();
    stanza.push('\n');
    Ok(Control {
        package: package.to_string(),
        version: version.to_string(),
        architecture: architecture.to_string(),
        multi_arch,
        essential,
        depends: relation("Depends"),
        pre_depends: relation("Pre-Depends"),
        provides: relation("Provides"),
        stanza,
        fields,
    })
}

/// A package name as Debian policy (5.6.1) has it: lowercase letters,
/// digits, `+`, `-` and `.`, two at least, starting alphanumeric. Names
/// make paths (`info/NAME.list`), so nothing else may pass.
fn check_package_name(name: &str) -> Result<(), String> {
    let ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("Package {name:?} is not a valid package name"))
    }
}

/// A version's characters as Debian policy (5.6.12) and dpkg allow them,
/// with the epoch, when there is one, a number. (Comparing versions is
/// the resolver's.)
fn check_version(version: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("Version {version:?} {why}"));
    let rest = match version.split_once(':') {
        Some((epoch, rest)) if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) => {
            rest
        }
        Some(_) => return bad("has an epoch that is not a number"),
        None => version,
    };
    // dpkg only warns of a version that does not start with a digit.
    if rest.is_empty() {
        return bad("is empty after its epoch");
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".+~-:".contains(&b))
    {
        return bad("has characters a version may not");
    }
    Ok(())
}

/// Parses `conffiles` (deb-conffiles(5)): an absolute path a line, with
/// flags before it; blank lines are skipped, as dpkg skips them.
fn parse_conffiles(text: &[u8]) -> Result<Vec<Conffile>, String> {
    let mut out = Vec::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let mut remove_on_upgrade = false;
        let mut rest = line;
        while !rest.starts_with(b"/") {
            let (flag, after) = rest
                .split_once_byte(b' ')
                .ok_or_else(|| format!("line {}: no absolute path", n + 1))?;
            match flag {
                b"remove-on-upgrade" => remove_on_upgrade = true,
                other => {
                    return Err(format!(
                        "line {}: unknown flag {:?}",
                        n + 1,
                        String::from_utf8_lossy(other)
                    ));
                }
            }
            rest = after.trim_ascii_start();
        }
        let path = absolute(rest).ok_or_else(|| format!("line {}: not a plain path", n + 1))?;
        out.push(Conffile {
            path,
            remove_on_upgrade,
        });
    }
    Ok(out)
}

/// Parses `md5sums` (deb-md5sums(5)): 32 hex digits, two spaces and a
/// path relative to the root, a line; as dpkg reads it.
fn parse_md5sums(text: &[u8]) -> Result<Vec<Md5Sum>, String> {
    let mut out = Vec::new();
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = || format!("line {}: not \"MD5  PATH\"", n + 1);
        let (hex, path) = line.split_at_checked(32).ok_or_else(bad)?;
        let path = path.strip_prefix(b"  ").ok_or_else(bad)?;
        let mut md5 = [0; 16];
        hex::decode_to_slice(hex, &mut md5).map_err(|_| bad())?;
        let mut full = b"/".to_vec();
        full.extend_from_slice(path);
        let path = absolute(&full).ok_or_else(bad)?;
        out.push(Md5Sum { path, md5 });
    }
    Ok(out)
}

/// An absolute path in raw bytes, if it is one an image may hold.
fn absolute(raw: &[u8]) -> Option<ImagePath> {
    let name = meta::decode_name(raw.strip_prefix(b"/")?);
    ImagePath::from_rel(&name).filter(|p| !p.is_root() && !name.starts_with('/'))
}

/// Splits a byte string once at a byte.
trait SplitOnce {
    fn split_once_byte(&self, at: u8) -> Option<(&[u8], &[u8])>;
}

impl SplitOnce for [u8] {
    fn split_once_byte(&self, at: u8) -> Option<(&[u8], &[u8])> {
        let i = self.iter().position(|&b| b == at)?;
        Some((&self[..i], &self[i + 1..]))
    }
}

/// What went wrong reading a member, kept where the tar reader above,
/// which sees only an `io::Error`, cannot lose it: the file's own failure,
/// the bound, or the compressed stream.
#[derive(Clone, Default)]
struct Faults(Rc<RefCell<Fault>>);

#[derive(Default)]
enum Fault {
    #[default]
    None,
    Source(io::Error),
    Truncated,
    Limit(u64),
    Decode(io::Error),
}

impl Faults {
    fn set(&self, fault: Fault) {
        let mut cell = self.0.borrow_mut();
        if matches!(*cell, Fault::None) {
            *cell = fault;
        }
    }

    /// The typed error a member's failed read stands for, if the failure
    /// was not in what the member holds.
    fn error(&self, deb: &str, member: &str, what: &str) -> Option<DebError> {
        let (deb, member) = (deb.to_string(), member.to_string());
        match &*self.0.borrow() {
            Fault::None => None,
            Fault::Source(e) => Some(DebError::Io {
                deb,
                source: io::Error::new(e.kind(), e.to_string()),
            }),
            Fault::Truncated => Some(DebError::Malformed {
                deb,
                reason: format!("truncated: the file ends inside member {member:?}"),
            }),
            Fault::Limit(limit) => Some(DebError::Limit {
                deb,
                member,
                what: what.to_string(),
                limit: *limit,
            }),
            Fault::Decode(e) => Some(DebError::Decode {
                deb,
                member,
                source: io::Error::new(e.kind(), e.to_string()),
            }),
        }
    }
}

/// A member's bytes as stored in the file, noting the file's failures.
struct Stored<R> {
    inner: io::Take<R>,
    faults: Faults,
}

impl<R: Read> Read for Stored<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() && self.inner.limit() > 0 => {
                // The header's claim was checked against the file's length:
                // the file shrank, or its reader lied about it.
                self.faults.set(Fault::Truncated);
                Err(io::ErrorKind::UnexpectedEof.into())
            }
            Ok(n) => Ok(n),
            Err(e) => {
                self.faults
                    .set(Fault::Source(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }
}

/// A member decompressed, counted against its bound; an error of the
/// decoder that is not the file's is the compressed stream's.
struct Unpacked<'r> {
    decoder: Box<dyn Read + 'r>,
    read: u64,
    limit: u64,
    faults: Faults,
}

impl Read for Unpacked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.decoder.read(buf) {
            Ok(n) => {
                self.read += n as u64;
                if self.read > self.limit {
                    self.faults.set(Fault::Limit(self.limit));
                    return Err(io::Error::other(format!(
                        "more than {} bytes decompressed",
                        self.limit
                    )));
                }
                Ok(n)
            }
            Err(e) => {
                self.faults
                    .set(Fault::Decode(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }
}

/// A decoder for `compression` over a member's stored bytes. Concatenated
/// streams are read whole, as dpkg's decompressors read them; xz's memory
/// and zstd's window are bounded. (Recipes' `extract` archives use it too.)
pub fn decoder<'r>(
    compression: Compression,
    stored: impl Read + 'r,
) -> io::Result<Box<dyn Read + 'r>> {
    Ok(match compression {
        Compression::None => Box::new(stored),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(stored)),
        Compression::Xz => {
            let stream = liblzma::stream::Stream::new_stream_decoder(
                XZ_MEMORY,
                liblzma::stream::CONCATENATED,
            )
            .map_err(io::Error::from)?;
            Box::new(liblzma::read::XzDecoder::new_stream(stored, stream))
        }
        Compression::Zstd => {
            let mut decoder = zstd::stream::read::Decoder::new(stored)?;
            decoder.window_log_max(ZSTD_WINDOW_LOG)?;
            Box::new(decoder)
        }
    })
}

#[cfg(test)]
mod tests;
