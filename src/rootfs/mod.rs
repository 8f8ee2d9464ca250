//! The merged filesystem view: base layers plus recipe layers, whiteouts
//! applied in order (image-spec, "Applying Changesets").
//!
//! The view holds metadata for every path and the content of a few watched
//! files (the account databases that `user`/`group` steps edit). It is fed by
//! streaming layer tars, never by unpacking to disk.

pub mod accounts;
pub mod apk_version;
pub mod changes;
pub mod interp;
pub mod meta;
pub mod packages;
pub mod source;
pub mod unpack;

use std::collections::BTreeMap;
use std::io::{self, Read};

use changes::Changes;
use meta::ImagePath;

use oci_spec::image::Descriptor;

use crate::digest::Digest;
use crate::error::{LayerError, tar_message};
use crate::layer::{self, OPAQUE_WHITEOUT, WHITEOUT_PREFIX, bounds};
use crate::store::BlobStore;

/// What kind of entry a path holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NodeKind {
    Dir,
    File {
        size: u64,
    },
    Symlink {
        target: String,
    },
    /// A hardlink to another path of the image.
    Hardlink {
        target: ImagePath,
    },
    /// Devices, fifos and other special entries a base may hold.
    Special,
}

/// One path of the merged view.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Index of the layer that last wrote this path, bottom layer 0.
    pub layer: usize,
    /// Whether the entry carries file capabilities (the
    /// `security.capability` xattr), which grant privilege like setuid.
    pub capability: bool,
}

impl Node {
    pub fn is_dir(&self) -> bool {
        self.kind == NodeKind::Dir
    }
}

/// One change a layer makes, in the order the layer lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    Put(ImagePath, Node, Option<Vec<u8>>),
    Whiteout(ImagePath),
    Opaque(ImagePath),
}

/// Sees each entry the view reads (not whiteouts), at the path it lands
/// on, with what the view does not keep of it.
pub type EntryVisitor<'a> = &'a mut dyn FnMut(&ImagePath, &Node, &EntryExtras);

/// What a layer entry carries that the view does not keep: for a reader
/// that compares entries (`diff`), not for one that unpacks them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryExtras {
    /// The header's modification time, in seconds.
    pub mtime: u64,
    /// Extended attributes (PAX `SCHILY.xattr.` records), by name, in
    /// name order.
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// The PAX record prefix of an extended attribute.
const XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// How layers are read into the view. What a build learnt reading a base
/// is cached under this version with the seal's, so bump it with any change
/// to what [`View::read_tar`] accepts, refuses or makes of an entry: a
/// summary made by another reading is never trusted.
pub const READER_VERSION: &str = "4";

/// The files whose content the view keeps, besides every package
/// database (see [`View::is_watched`]): the account databases, which
/// user steps and the seal read, and dpkg's `status`, which a `packages`
/// step merges its own packages into.
pub const WATCHED: [&str; 5] = [
    "etc/passwd",
    "etc/group",
    "etc/shadow",
    "etc/gshadow",
    "var/lib/dpkg/status",
];

/// Largest watched file kept in memory; a larger one is refused, not read.
const WATCHED_MAX: u64 = 16 << 20;

/// No single file in a base is a terabyte: a header saying so is hostile.
const MAX_ENTRY_SIZE: u64 = 1 << 40;

/// Removes what lies below `path` in a map keyed by path (and `path`
/// itself when `inclusive`). Keys sharing `path`'s text as a prefix sort
/// together, so this touches only them, not the whole map.
fn remove_below<V>(map: &mut BTreeMap<ImagePath, V>, path: &ImagePath, inclusive: bool) {
    let doomed: Vec<ImagePath> = map
        .range(path.clone()..)
        .map(|(p, _)| p)
        .take_while(|p| p.as_rel().starts_with(path.as_rel()))
        .filter(|p| p.starts_with(path) && (inclusive || *p != path))
        .cloned()
        .collect();
    for p in doomed {
        map.remove(&p);
    }
}

/// The smallest map [`repack_grown`] bothers with.
const REPACK_MIN: usize = 4096;

/// The length at which a map of `len` entries, full, is next repacked.
fn next_repack(len: usize) -> usize {
    len + len / 8
}

/// Rebuilds `map` with full nodes once it holds `at` entries or more, and
/// sets `at` an eighth past its length. Keys mostly arrive in order (a
/// layer's entries are sorted, a walk's too), and a B-tree filled in order
/// splits its nodes in half and leaves them so: ~55% full. A map merged
/// from two sorted runs is built full, each old node freed as it is
/// passed. Repacked each time it grows by an eighth, at most that eighth
/// of a map is in half-full nodes, and what a repack frees is soon taken
/// again. Repacked only once it doubled, a map held up to half its
/// entries in half-full nodes, then freed them all at once (a cold build
/// of 300,000 files peaked at 97 MB, against 89 now). Called after each
/// insert: about nine moves per entry in all.
pub fn repack_grown<K: Ord, V>(map: &mut BTreeMap<K, V>, at: &mut usize) {
    if map.len() < (*at).max(REPACK_MIN) {
        return;
    }
    let mut rest = std::mem::take(map);
    if let Some(first) = rest.pop_first() {
        *map = BTreeMap::from([first]);
        map.append(&mut rest);
    }
    *at = next_repack(map.len());
}

/// Sees each regular file's path and content stream.
pub type FileVisitor<'a> = &'a mut dyn FnMut(&ImagePath, &mut dyn Read) -> io::Result<()>;

/// Sees each entry's name, checked but not yet resolved through symlinks,
/// in the order the tar lists them (the root too, and whiteouts); an error
/// refuses the layer with that reason.
pub type NameVisitor<'a> = &'a mut dyn FnMut(&ImagePath) -> Result<(), String>;

/// How a tar's entries land on what the view already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpacking {
    /// As an image layer (image-spec, "Applying Changesets"): an entry
    /// replaces what its path holds.
    Layer,
    /// As dpkg unpacks a package (`tarobject`, its "existingdir" case): a
    /// directory entry where a directory is, or a symlink to one, and a
    /// symlink entry where a directory is, or a symlink to the same one,
    /// leave it as it is. So `./bin/` in a package keeps a merged-/usr
    /// `/bin -> usr/bin`, and the files below it land in `/usr/bin`.
    /// (`.wh.` names are still read as whiteouts: a package reader
    /// refuses them, through its `on_name`.)
    Dpkg,
}

/// The PAX record that carries file capabilities.
const CAPABILITY_XATTR: &[u8] = b"SCHILY.xattr.security.capability";

/// Counts what is read through it.
struct Counted<'a, R> {
    inner: &'a mut R,
    read: u64,
    /// Whether reading failed: an error the visitor passes on is then the
    /// layer's, not its own (a full disk is no corrupt tar).
    failed: bool,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|_| self.failed = true)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// How far a reader got, and whether its source ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Progress {
    read: u64,
    eof: bool,
}

/// A reader that reports its [`Progress`] to whoever holds the cell.
struct EofWatch<R> {
    inner: R,
    progress: std::rc::Rc<std::cell::Cell<Progress>>,
}

impl<R: Read> Read for EofWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut p = self.progress.get();
        p.read += n as u64;
        p.eof |= n == 0 && !buf.is_empty();
        self.progress.set(p);
        Ok(n)
    }
}

/// The image path a layer entry names. `./` prefixes are fine, and so is
/// the root itself as `/` (umoci writes it); other absolute names and `..`
/// are not.
fn entry_path(name: &str) -> Result<ImagePath, String> {
    if name.trim_end_matches('/').is_empty() && !name.is_empty() {
        return Ok(ImagePath::root());
    }
    if name.starts_with('/') {
        return Err(format!("layer entry {name:?} is an absolute path"));
    }
    ImagePath::from_rel(name).ok_or_else(|| {
        if name.split('/').any(|c| c == "..") {
            format!("layer entry {name:?} escapes the image root")
        } else {
            format!(
                "layer entry {name:?} has an empty or '.' component (runtimes clean such \
                 names, each its own way); refused as ambiguous"
            )
        }
    })
}

/// Refuses an entry whose name or link target readers disagree on. Go's
/// `archive/tar`, which containerd, Docker, Podman and umoci unpack with,
/// takes the last of repeated PAX records where the tar crate takes the
/// first (both let a GNU long name override a PAX `path`); Go also renames
/// a PAX sparse file to its `GNU.sparse.name` and reads its data through a
/// sparse map. The seal must look at the file
/// the runtime writes, so where the readers could differ the layer is
/// refused, naming the entry, rather than read one way and run another.
fn unambiguous<R: Read>(entry: &mut tar::Entry<R>, name: &str) -> Result<(), String> {
    let refuse = |why: String| Err(format!("layer entry {name:?}: {why}; refused as ambiguous"));
    let Some(records) = entry
        .pax_extensions()
        .map_err(|e| format!("layer entry {name:?}: unreadable PAX header: {e}"))?
    else {
        return Ok(());
    };
    let (mut paths, mut links, mut sparse) = (Vec::new(), Vec::new(), None);
    for record in records {
        let record =
            record.map_err(|e| format!("layer entry {name:?}: malformed PAX record: {e}"))?;
        match record.key_bytes() {
            b"path" => paths.push(record.value_bytes().to_vec()),
            b"linkpath" => links.push(record.value_bytes().to_vec()),
            key if key.starts_with(b"GNU.sparse.") => {
                sparse.get_or_insert_with(|| String::from_utf8_lossy(key).into_owned());
            }
            _ => {}
        }
    }
    if let Some(key) = sparse {
        return refuse(format!(
            "a PAX sparse file ({key}), which runtimes rename and fill from a sparse map"
        ));
    }
    for (key, values) in [("path", &paths), ("linkpath", &links)] {
        // Go drops a key whose record is empty, so the header's own name
        // stands; the tar crate takes the empty name.
        if values.iter().any(Vec::is_empty) {
            return refuse(format!(
                "an empty PAX {key} record (runtimes drop it and use the header's)"
            ));
        }
        if values.iter().any(|v| *v != values[0]) {
            return refuse(format!(
                "{} PAX {key} records that differ (runtimes take the last)",
                values.len()
            ));
        }
    }
    Ok(())
}

/// What an entry carries beyond its node: its mtime and xattrs.
fn extras<R: Read>(entry: &mut tar::Entry<R>, name: &str) -> Result<EntryExtras, String> {
    let mtime = entry
        .header()
        .mtime()
        .map_err(|e| format!("layer entry {name:?}: {e}"))?;
    let mut xattrs = BTreeMap::new();
    // The records were read (and bounded) when the name was checked.
    if let Ok(Some(records)) = entry.pax_extensions() {
        for record in records.flatten() {
            if let Some(key) = record.key_bytes().strip_prefix(XATTR_PREFIX) {
                let key = String::from_utf8_lossy(key).into_owned();
                xattrs.insert(key, record.value_bytes().to_vec());
            }
        }
    }
    Ok(EntryExtras { mtime, xattrs })
}

/// A tar type flag's name, for messages.
fn type_name(t: tar::EntryType) -> &'static str {
    match t {
        tar::EntryType::Continuous => "contiguous file",
        tar::EntryType::GNUSparse => "GNU sparse file",
        tar::EntryType::GNULongName | tar::EntryType::GNULongLink => "a stray GNU long name",
        tar::EntryType::XHeader => "a stray PAX header",
        _ => "unknown type",
    }
}

/// Whether an entry named `name` is a directory. Go's archive/tar also
/// takes a pre-POSIX regular file (type flag NUL) whose name ends in `/`
/// for one.
fn is_dir_entry(header: &tar::Header, name: &str) -> bool {
    header.entry_type().is_dir() || (header.as_old().linkflag[0] == 0 && name.ends_with('/'))
}

/// A node kind's name, for messages.
fn kind_name(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::Dir => "directory",
        NodeKind::File { .. } => "file",
        NodeKind::Symlink { .. } => "symlink",
        NodeKind::Hardlink { .. } => "hardlink",
        NodeKind::Special => "device or fifo",
    }
}

/// Reads an entry's `size` bytes of data whole, showing a regular file to
/// `on_file`, so a stream cut inside it is told apart from one that only
/// lacks its end blocks. Returns the content of a watched file.
fn read_data(
    entry: &mut impl Read,
    size: u64,
    path: &ImagePath,
    node: &Node,
    watched: bool,
    on_file: FileVisitor,
) -> Result<Option<Vec<u8>>, String> {
    let mut buf = Vec::new();
    let corrupt = |e: io::Error| format!("corrupt layer tar: reading {path}: {}", tar_message(&e));
    let read = if watched {
        let n = entry.read_to_end(&mut buf).map_err(corrupt)? as u64;
        on_file(path, &mut &buf[..]).map_err(|e| format!("{path}: {e}"))?;
        n
    } else if matches!(node.kind, NodeKind::File { .. }) {
        let mut counted = Counted {
            inner: entry,
            read: 0,
            failed: false,
        };
        match on_file(path, &mut counted) {
            Err(e) if counted.failed => return Err(corrupt(e)),
            Err(e) => return Err(format!("{path}: {e}")),
            Ok(()) => {}
        }
        io::copy(&mut counted, &mut io::sink()).map_err(corrupt)?;
        counted.read
    } else {
        io::copy(entry, &mut io::sink()).map_err(corrupt)?
    };
    if read != size {
        return Err(format!(
            "corrupt layer tar: {path} is truncated ({read} of {size} bytes)"
        ));
    }
    Ok(watched.then_some(buf))
}

/// What a hardlink made later in a layer takes from an entry: whether it
/// is a directory (no link may name one), its setuid, setgid and
/// world-writable bits, and its capabilities. Kept per entry while a layer
/// is read, so small by design.
#[derive(Debug, Clone, Copy)]
struct Linkable {
    dir: bool,
    bits: u32,
    capability: bool,
}

impl Linkable {
    fn of(node: &Node) -> Linkable {
        Linkable {
            dir: node.is_dir(),
            bits: node.mode & 0o6002,
            capability: node.capability,
        }
    }
}

/// A layer as it is read, over the view below: what it has put so far
/// and what its whiteouts have hidden. Runtimes unpack a layer entry by
/// entry and resolve each entry's directory, and a hardlink's target, on
/// the disk as it is then (containerd: `fs.RootPath`, umoci:
/// `SecureJoin`): through the symlinks lower layers and this one made, and
/// never through what this layer's whiteouts removed. So names are
/// resolved here against the same state.
struct Reading<'a> {
    below: &'a View,
    /// Paths put so far: repacked as it grows ([`repack_grown`]), as a
    /// layer's paths mostly come in order and it holds one per entry.
    seen: BTreeMap<ImagePath, Put>,
    seen_repack_at: usize,
    /// The targets of the symlinks among them.
    symlinks: BTreeMap<ImagePath, String>,
    /// Lower paths removed, with everything below them.
    gone: std::collections::BTreeSet<ImagePath>,
    /// Lower directories whose contents only are removed: opaque ones.
    emptied: std::collections::BTreeSet<ImagePath>,
    /// The paths this layer's hardlinks have named so far.
    linked: std::collections::BTreeSet<ImagePath>,
    /// The last entry directory resolved, as named and as resolved, and
    /// the paths its resolution looked at: entries come directory by
    /// directory, and a directory resolves the same until one of those
    /// paths changes.
    last_dir: Option<(ImagePath, ImagePath, Vec<ImagePath>)>,
    /// Directories entries went into that this layer did not put: `seen`
    /// may hold paths below them that it does not hold themselves.
    implied: std::collections::BTreeSet<ImagePath>,
}

/// A path a layer has put, as it stands.
#[derive(Debug, Clone, Copy)]
struct Put {
    /// What a later hardlink takes from it.
    link: Linkable,
    /// Whether a non-directory was put there, which removed what lower
    /// layers held below the path (a directory put later does not bring
    /// it back).
    cleared: bool,
}

impl<'a> Reading<'a> {
    fn new(below: &'a View) -> Reading<'a> {
        Reading {
            below,
            seen: BTreeMap::new(),
            seen_repack_at: 0,
            symlinks: BTreeMap::new(),
            gone: Default::default(),
            emptied: Default::default(),
            linked: Default::default(),
            last_dir: None,
            implied: Default::default(),
        }
    }

    /// Notes that what `path` holds changed: a directory whose resolution
    /// looked at it may resolve elsewhere now. (The paths a resolution
    /// looks at include each one's parent but the root, so a change below
    /// another path never matters to one that did not look at that path.)
    fn changed(&mut self, path: &ImagePath) {
        if path.is_root()
            || self
                .last_dir
                .as_ref()
                .is_some_and(|(_, _, looked)| looked.contains(path))
        {
            self.last_dir = None;
        }
    }

    /// Where an entry at `path` lands: [`Reading::resolve`], remembering
    /// the directory for the entries after it.
    fn resolve_entry(&mut self, path: ImagePath) -> Result<ImagePath, String> {
        if let Some((named, resolved, _)) = &self.last_dir
            && is_child(&path, named)
        {
            return Ok(if resolved == named {
                path
            } else {
                resolved.join(path.file_name())
            });
        }
        let looked = std::cell::RefCell::new(Vec::new());
        let resolved = resolve_parent_with(&path, |p| {
            looked.borrow_mut().push(p.clone());
            self.kind(p)
        })?
        .0;
        let dir = path.parent().unwrap_or_default();
        let resolved_dir = resolved.parent().unwrap_or_default();
        if !resolved_dir.is_root() && !self.seen.get(&resolved_dir).is_some_and(|p| p.link.dir) {
            self.implied.insert(resolved_dir.clone());
        }
        self.last_dir = Some((dir, resolved_dir, looked.into_inner()));
        Ok(resolved)
    }

    /// Whether this layer has removed the lower `path`.
    fn hidden(&self, path: &ImagePath) -> bool {
        if self.gone.contains(path) {
            return true;
        }
        let mut up = path.parent();
        while let Some(p) = up {
            if self.gone.contains(&p)
                || self.emptied.contains(&p)
                || self.seen.get(&p).is_some_and(|put| put.cleared)
            {
                return true;
            }
            up = p.parent();
        }
        false
    }

    /// What `path` holds now, as far as resolving names needs it (any
    /// other non-directory is `Special`).
    fn kind(&self, path: &ImagePath) -> Option<NodeKind> {
        if let Some(put) = self.seen.get(path) {
            return Some(match self.symlinks.get(path) {
                Some(target) => NodeKind::Symlink {
                    target: target.clone(),
                },
                None if put.link.dir => NodeKind::Dir,
                None => NodeKind::Special,
            });
        }
        if self.hidden(path) {
            return None;
        }
        self.below.get(path).map(|n| n.kind.clone())
    }

    /// What a hardlink to `path` would take from it, if anything is there.
    fn linkable(&self, path: &ImagePath) -> Option<Linkable> {
        match self.seen.get(path) {
            Some(put) => Some(put.link),
            None if self.hidden(path) => None,
            None => self.below.get(path).map(Linkable::of),
        }
    }

    /// `path` with its directories resolved through symlinks, now.
    fn resolve(&self, path: &ImagePath) -> Result<ImagePath, String> {
        resolve_parent_with(path, |p| self.kind(p)).map(|(resolved, _)| resolved)
    }

    /// Whether dpkg leaves what `path` (its directory resolved) holds as
    /// it is rather than unpack `node` there: see [`Unpacking::Dpkg`].
    fn keeps_existing(&self, path: &ImagePath, node: &Node) -> bool {
        // The directory `path` leads to, following every symlink (stat(2)),
        // if it exists.
        let dir_through = |lookup: &dyn Fn(&ImagePath) -> Option<NodeKind>| {
            let (probe, _) = resolve_parent_with(&path.join("probe"), lookup).ok()?;
            let dir = probe.parent().unwrap_or_default();
            (dir.is_root() || self.kind(&dir) == Some(NodeKind::Dir)).then_some(dir)
        };
        let existing = || dir_through(&|p| self.kind(p));
        match (&node.kind, self.kind(path)) {
            (NodeKind::Dir, _) => existing().is_some(),
            (NodeKind::Symlink { .. }, Some(NodeKind::Dir)) => true,
            (NodeKind::Symlink { target }, Some(NodeKind::Symlink { .. })) => {
                let new = dir_through(&|p| {
                    if p == path {
                        Some(NodeKind::Symlink {
                            target: target.clone(),
                        })
                    } else {
                        self.kind(p)
                    }
                });
                new.is_some() && new == existing()
            }
            _ => false,
        }
    }

    /// Where a whiteout of `path` removes: `path` resolved now. One whose
    /// directory is a file removes nothing (runtimes find nothing there),
    /// and is kept as written; one caught in a symlink loop is refused, as
    /// runtimes fail on it.
    fn resolve_whiteout(&self, path: &ImagePath) -> Result<ImagePath, String> {
        // Whether the last component looked up is a file.
        let file = std::cell::Cell::new(false);
        resolve_parent_with(path, |p| {
            let kind = self.kind(p);
            let is_file =
                matches!(&kind, Some(k) if !matches!(k, NodeKind::Dir | NodeKind::Symlink { .. }));
            file.set(is_file);
            kind
        })
        .map(|(resolved, _)| resolved)
        .or_else(|e| if file.get() { Ok(path.clone()) } else { Err(e) })
    }

    /// Notes `node` put at `path`. A non-directory replaces what was
    /// there, and all below it.
    ///
    /// A hardlink keeps the file it was made to when another takes that
    /// file's path, but the view names a link's file by its path alone:
    /// within one layer it cannot tell the first file from the second, so
    /// replacing a file a hardlink of this layer has named is refused.
    fn put(&mut self, path: &ImagePath, node: &Node) -> Result<(), String> {
        self.changed(path);
        let replaced = at_or_below(&self.linked, path)
            .find(|t| *t == path || (!node.is_dir() && t.starts_with(path)));
        if let Some(target) = replaced {
            return Err(format!(
                "layer entry {path} replaces {target} after a hardlink of the same layer \
                 named it (the link keeps the first file); refused as ambiguous"
            ));
        }
        if let NodeKind::Hardlink { target } = &node.kind {
            self.linked.insert(target.clone());
        }
        let dir = node.is_dir();
        // A directory put where this layer put a non-directory does not
        // bring back what that one cleared.
        let was_cleared = self.seen.get(path).is_some_and(|b| b.cleared);
        let put = Put {
            link: Linkable::of(node),
            cleared: !dir || was_cleared,
        };
        let before = self.seen.insert(path.clone(), put);
        repack_grown(&mut self.seen, &mut self.seen_repack_at);
        // What this layer put below a non-directory is gone too: below
        // the directory it put there, or one it left implied.
        if !dir
            && (before.is_some_and(|b| b.link.dir)
                || at_or_below(&self.implied, path).next().is_some())
        {
            remove_below(&mut self.seen, path, false);
            remove_below(&mut self.symlinks, path, false);
        }
        if !self.symlinks.is_empty() {
            self.symlinks.remove(path);
        }
        if let NodeKind::Symlink { target } = &node.kind {
            self.symlinks.insert(path.clone(), target.clone());
        }
        Ok(())
    }
}

/// Metadata of every path, plus the content of the watched files.
#[derive(Debug, Clone, Default)]
pub struct View {
    nodes: BTreeMap<ImagePath, Node>,
    contents: BTreeMap<ImagePath, Vec<u8>>,
    layers: usize,
    /// The number of nodes at which the map is next repacked.
    repack_at: usize,
}

impl View {
    pub fn new() -> View {
        View::default()
    }

    /// Number of layers applied so far.
    pub fn layer_count(&self) -> usize {
        self.layers
    }

    pub fn get(&self, path: &ImagePath) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// The view's own path for `path` (shared: a copy costs no text),
    /// with its node.
    pub fn get_key_value(&self, path: &ImagePath) -> Option<(&ImagePath, &Node)> {
        self.nodes.get_key_value(path)
    }

    /// The content of a watched file, if the image has it.
    pub fn content(&self, path: &ImagePath) -> Option<&[u8]> {
        self.contents.get(path).map(Vec::as_slice)
    }

    /// Whether the view keeps the content of a file at `path`: the
    /// [`WATCHED`] files, and every package database, which the SBOM of
    /// an image lists the packages of (see `diff::tree::owned_as_built`).
    pub fn is_watched(path: &ImagePath) -> bool {
        WATCHED.contains(&path.as_rel()) || packages::database_of(path).is_some()
    }

    /// Every path and node, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&ImagePath, &Node)> {
        self.nodes.iter()
    }

    /// Applies one layer's changes. Whiteouts hide only what lower layers
    /// hold, so they are applied before any entry of the same layer.
    pub fn apply(&mut self, changes: impl Into<Changes>) {
        let changes = changes.into();
        for change in changes.iter() {
            self.hide(change);
        }
        for change in changes {
            self.put(change);
        }
        self.end_layer();
    }

    /// Applies one change of the layer being added, in order: right only
    /// when every whiteout of the layer comes before its first entry (as
    /// [`View::apply`] would take them). [`View::end_layer`] ends it.
    pub fn apply_one(&mut self, change: Change) {
        self.hide(&change);
        self.put(change);
    }

    /// Counts the layer whose changes [`View::apply_one`] applied.
    pub fn end_layer(&mut self) {
        self.layers += 1;
    }

    /// Applies a whiteout or an opaque whiteout; not an entry.
    fn hide(&mut self, change: &Change) {
        match change {
            Change::Whiteout(path) => self.remove_tree(path, true),
            Change::Opaque(dir) => self.remove_tree(dir, false),
            Change::Put(..) => {}
        }
    }

    /// Applies an entry; not a whiteout.
    fn put(&mut self, change: Change) {
        if let Change::Put(path, node, content) = change {
            // Past every path held (as a layer's entries mostly come, on a
            // view that did not have them), nothing lies at or below it.
            let past_end = self
                .nodes
                .last_key_value()
                .is_none_or(|(last, _)| *last < path);
            if !node.is_dir() && !past_end {
                // A non-directory replaces a whole subtree.
                self.remove_tree(&path, true);
            }
            self.contents.remove(&path);
            if let Some(content) = content {
                self.contents.insert(path.clone(), content);
            }
            self.nodes.insert(path, node);
            repack_grown(&mut self.nodes, &mut self.repack_at);
        }
    }

    /// Reads an uncompressed layer tar and applies it, refusing what a
    /// hostile layer could use to escape or mislead: `..` or absolute
    /// names, whiteouts of `..`, hardlinks to nothing, absurd sizes, names
    /// and data readers disagree on.
    /// (Layers from blobs go through [`View::apply_layer`], which
    /// also checks them and shows their files to the seal.)
    pub fn apply_tar(&mut self, tar: impl Read) -> Result<(), String> {
        let changes = self.read_tar(tar, &mut |_, _| Ok(()))?;
        self.apply(changes);
        Ok(())
    }

    /// Streams the layer `desc` from `blobs` in as the next layer, showing
    /// each regular file to `on_file`. The blob's size and digest and the
    /// tar's diff_id are checked before the view changes: a layer that
    /// fails leaves the view as it was.
    pub fn apply_layer(
        &mut self,
        blobs: &BlobStore,
        desc: &Descriptor,
        diff_id: &Digest,
        on_file: FileVisitor,
    ) -> Result<(), LayerError> {
        let changes = self.read_layer(blobs, desc, diff_id, on_file)?;
        self.apply(changes);
        Ok(())
    }

    /// [`View::apply_layer`], returning the changes it made too, for
    /// callers that need them.
    pub fn apply_layer_keeping(
        &mut self,
        blobs: &BlobStore,
        desc: &Descriptor,
        diff_id: &Digest,
        on_file: FileVisitor,
    ) -> Result<Vec<Change>, LayerError> {
        let changes = self.read_layer(blobs, desc, diff_id, on_file)?;
        Ok(self.apply_keeping(changes))
    }

    /// [`View::apply_layer`], each entry also shown to `on_entry` with
    /// its [`EntryExtras`].
    pub fn apply_layer_seeing(
        &mut self,
        blobs: &BlobStore,
        desc: &Descriptor,
        diff_id: &Digest,
        on_entry: EntryVisitor,
        on_file: FileVisitor,
    ) -> Result<Vec<Change>, LayerError> {
        let changes = self.read_layer_seeing(blobs, desc, diff_id, Some(on_entry), on_file)?;
        Ok(self.apply_keeping(changes))
    }

    /// [`View::apply`], keeping the changes: each is copied as the view
    /// takes it, so that they are never held twice over.
    fn apply_keeping(&mut self, changes: Changes) -> Vec<Change> {
        let changes = changes.into_vec();
        for change in &changes {
            self.hide(change);
        }
        for change in &changes {
            self.put(change.clone());
        }
        self.end_layer();
        changes
    }

    /// Reads the layer `desc` from `blobs` into the changes it makes as
    /// the next layer, showing each regular file to `on_file`, once the
    /// blob and the diff_id check out; or says why it was refused. The
    /// view is left as it is.
    pub fn read_layer(
        &self,
        blobs: &BlobStore,
        desc: &Descriptor,
        diff_id: &Digest,
        on_file: FileVisitor,
    ) -> Result<Changes, LayerError> {
        self.read_layer_seeing(blobs, desc, diff_id, None, on_file)
    }

    /// [`View::read_layer`], each entry also shown to `on_entry` if given.
    fn read_layer_seeing(
        &self,
        blobs: &BlobStore,
        desc: &Descriptor,
        diff_id: &Digest,
        on_entry: Option<EntryVisitor>,
        on_file: FileVisitor,
    ) -> Result<Changes, LayerError> {
        let mut reader = layer::read::open(blobs, desc)?;
        let read = self.read_entries(
            &mut reader,
            Unpacking::Layer,
            &mut |_| Ok(()),
            on_entry,
            on_file,
        );
        match read {
            Ok(changes) => {
                reader.finish(diff_id)?;
                Ok(changes)
            }
            Err(reason) => {
                let layer = reader.digest();
                // What a damaged blob seems to hold says nothing, and a
                // stream that broke is no refusal of its content: the
                // blob's own check, read to its end, comes first. The
                // rest is not decoded: a refused layer may be a bomb.
                reader.check_blob()?;
                Err(LayerError::Refused { layer, reason })
            }
        }
    }

    /// Reads a layer tar into the changes it would make as the next layer,
    /// leaving the view as it is: a caller that still has to verify the
    /// stream applies them only once it checks out.
    pub fn read_tar(&self, tar: impl Read, on_file: FileVisitor) -> Result<Vec<Change>, String> {
        self.read_tar_with(tar, Unpacking::Layer, &mut |_| Ok(()), on_file)
    }

    /// [`View::read_tar`], the entries landing as `unpacking` says, and
    /// each entry's name shown to `on_name` as the tar gives it: a Debian
    /// package's file list records the names a package lists, not where
    /// they land through a base's symlinks. The checks are the same.
    pub fn read_tar_with(
        &self,
        tar: impl Read,
        unpacking: Unpacking,
        on_name: NameVisitor,
        on_file: FileVisitor,
    ) -> Result<Vec<Change>, String> {
        self.read_entries(tar, unpacking, on_name, None, on_file)
            .map(Changes::into_vec)
    }

    /// [`View::read_tar_with`], each entry also shown to `on_entry` if
    /// given. (Only then are its [`EntryExtras`] read: a reader that does
    /// not ask for them refuses nothing more.)
    fn read_entries(
        &self,
        tar: impl Read,
        unpacking: Unpacking,
        on_name: NameVisitor,
        mut on_entry: Option<EntryVisitor>,
        on_file: FileVisitor,
    ) -> Result<Changes, String> {
        let layer = self.layers;
        let watch = std::rc::Rc::new(std::cell::Cell::new(Progress::default()));
        // The guard refuses extension headers and entry counts past
        // their bounds before the tar crate reads them; the watch sees
        // what the tar crate takes.
        let mut archive = tar::Archive::new(EofWatch {
            inner: bounds::Guard::new(tar),
            progress: watch.clone(),
        });
        // Where the last entry's data ended in the stream.
        let mut data_end = 0u64;
        let mut changes = Changes::default();
        let mut reading = Reading::new(self);
        let mut entries = archive
            .entries()
            .map_err(|e| format!("reading layer tar: {}", tar_message(&e)))?;
        loop {
            let mut entry = match entries.next() {
                None => break,
                Some(Ok(entry)) => entry,
                // Go's archive/tar reads a stream that ends right after the
                // last entry's data, with no padding or end blocks, as
                // complete, and umoci 0.4 writes such layers. Anything else
                // cut short is corrupt.
                Some(Err(_))
                    if watch.get()
                        == (Progress {
                            read: data_end,
                            eof: true,
                        }) =>
                {
                    break;
                }
                Some(Err(e)) if bounds::exceeded(&e).is_some() => return Err(e.to_string()),
                Some(Err(e)) => return Err(format!("corrupt layer tar: {}", tar_message(&e))),
            };
            // A global PAX header is no file: Go hands it to its caller,
            // and containerd and Docker skip it (umoci 0.4 fails on it,
            // "unknown typeflag"). Its records apply to no entry.
            if entry.header().entry_type().is_pax_global_extensions() {
                data_end = entry.raw_file_position() + entry.size();
                continue;
            }
            bounds::names(&entry).map_err(|e| format!("layer entry: {e}"))?;
            let name = meta::decode_name(&entry.path_bytes());
            unambiguous(&mut entry, &name)?;
            let path = entry_path(&name)?;
            on_name(&path)?;
            if path.is_root() {
                if is_dir_entry(entry.header(), &name) {
                    continue;
                }
                // A file there would replace the whole tree; runtimes
                // refuse to change the root's type.
                return Err(format!(
                    "layer entry {name:?} names the root directory but is no directory"
                ));
            }
            let file_name = path.file_name();
            let whiteout = |p: &ImagePath| {
                reading
                    .resolve_whiteout(p)
                    .map_err(|e| format!("layer entry {name:?}: {e}"))
            };
            if file_name == OPAQUE_WHITEOUT {
                let dir = whiteout(&path)?.parent().unwrap_or_default();
                reading.changed(&dir);
                reading.emptied.insert(dir.clone());
                changes.push(Change::Opaque(dir));
                continue;
            }
            if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
                if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(format!("layer entry {name:?} is a whiteout of {hidden:?}"));
                }
                let gone = whiteout(&path.parent().unwrap_or_default().join(hidden))?;
                reading.changed(&gone);
                reading.gone.insert(gone.clone());
                changes.push(Change::Whiteout(gone));
                continue;
            }
            // Runtimes write an entry where its directory resolves to: one
            // below a symlink lands where the symlink points.
            let path = reading
                .resolve_entry(path)
                .map_err(|e| format!("layer entry {name:?}: {e}"))?;
            let node = self.entry_node(&mut entry, &name, layer, &reading)?;
            if unpacking == Unpacking::Dpkg && reading.keeps_existing(&path, &node) {
                // A directory or a symlink: entry_node refused any that
                // claims data.
                data_end = entry.raw_file_position();
                continue;
            }
            if let Some(on_entry) = on_entry.as_mut() {
                on_entry(&path, &node, &extras(&mut entry, &name)?);
            }
            let size = entry.size();
            let watched = View::is_watched(&path) && matches!(node.kind, NodeKind::File { .. });
            if watched && size > WATCHED_MAX {
                return Err(format!("{path} is larger than {WATCHED_MAX} bytes"));
            }
            let content = read_data(&mut entry, size, &path, &node, watched, on_file)?;
            data_end = entry.raw_file_position() + size;
            reading.put(&path, &node)?;
            changes.push(Change::Put(path, node, content));
        }
        Ok(changes)
    }

    /// The node a tar entry makes: its kind (a hardlink must point at a
    /// file this layer or a lower one has), mode, owner and whether it
    /// carries file capabilities.
    fn entry_node<R: Read>(
        &self,
        entry: &mut tar::Entry<R>,
        name: &str,
        layer: usize,
        reading: &Reading,
    ) -> Result<Node, String> {
        let capability = entry
            .pax_extensions()
            .ok()
            .flatten()
            .is_some_and(|mut exts| {
                exts.any(|e| e.is_ok_and(|e| e.key_bytes() == CAPABILITY_XATTR))
            });
        let size = entry.size();
        if size > MAX_ENTRY_SIZE {
            return Err(format!(
                "layer entry {name:?} claims {size} bytes, more than {MAX_ENTRY_SIZE}"
            ));
        }
        let link = || entry.link_name_bytes().map(|t| meta::decode_name(&t));
        // The file a hardlink names: one inode, two names.
        let mut linked = None;
        let kind = match entry.header().entry_type() {
            _ if is_dir_entry(entry.header(), name) => NodeKind::Dir,
            t if t.is_file() => NodeKind::File { size },
            t if t.is_symlink() => NodeKind::Symlink {
                target: link().unwrap_or_default(),
            },
            t if t.is_hard_link() => {
                let target = link().ok_or_else(|| format!("hardlink {name:?} has no target"))?;
                let (kind, file) = hardlink(name, &target, reading)?;
                linked = Some(file);
                kind
            }
            t if t.is_character_special() || t.is_block_special() || t.is_fifo() => {
                NodeKind::Special
            }
            // Contiguous files, GNU sparse files and volume headers are
            // read differently by different readers, or refused by
            // runtimes (containerd: "unhandled tar header type").
            t => {
                return Err(format!(
                    "layer entry {name:?} has tar type {:?} ({}), which runtimes do not unpack as a file; refused",
                    t.as_byte() as char,
                    type_name(t)
                ));
            }
        };
        // Go's archive/tar reads no data for a directory, link, device or
        // fifo, whatever size its header claims: the next header follows
        // at once. The tar crate skips the claimed bytes instead, so
        // entries hidden in them would reach runtimes and not the seal.
        if size > 0 && !matches!(kind, NodeKind::File { .. }) {
            return Err(format!(
                "layer entry {name:?} is a {} whose header claims {size} bytes of data; \
                 runtimes read no data for such a header-only entry, but the next \
                 header right after it; refused as ambiguous",
                kind_name(&kind)
            ));
        }
        let header = entry.header();
        let mut node = Node {
            kind,
            mode: header.mode().map_err(|e| format!("{name}: {e}"))? & 0o7777,
            uid: header.uid().map_err(|e| format!("{name}: {e}"))?,
            gid: header.gid().map_err(|e| format!("{name}: {e}"))?,
            layer,
            capability,
        };
        // A hardlink is the file it names. Runtimes differ on whose mode
        // the inode ends with (containerd applies the link header's, umoci
        // keeps the file's), so the seal sees both: the file's setuid,
        // setgid and world-writable bits and its capabilities carry over.
        if let Some(file) = linked {
            node.mode |= file.bits;
            node.capability |= file.capability;
        }
        Ok(node)
    }

    /// Removes `path` (when `inclusive`) and everything below it.
    fn remove_tree(&mut self, path: &ImagePath, inclusive: bool) {
        remove_below(&mut self.nodes, path, inclusive);
        remove_below(&mut self.contents, path, inclusive);
    }

    /// Resolves every directory component of `path` through symlinks (the
    /// last component is not followed: a write replaces it). Returns the
    /// resolved path and whether any symlink was crossed.
    pub fn resolve_parent(&self, path: &ImagePath) -> Result<(ImagePath, bool), String> {
        resolve_parent_with(path, |p| self.get(p).map(|n| n.kind.clone()))
    }

    /// What the view held of layers below `layer` that no later layer
    /// replaced: the view as layer `layer` was read against, short of the
    /// paths later layers changed. Good for finding where that layer's
    /// entries landed.
    pub fn below(&self, layer: usize) -> View {
        let nodes: BTreeMap<ImagePath, Node> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.layer < layer)
            .map(|(p, n)| (p.clone(), n.clone()))
            .collect();
        let contents = self
            .contents
            .iter()
            .filter(|(p, _)| nodes.contains_key(*p))
            .map(|(p, c)| (p.clone(), c.clone()))
            .collect();
        View {
            // Collected from a sorted run: full nodes already.
            repack_at: next_repack(nodes.len()),
            nodes,
            contents,
            layers: layer,
        }
    }

    /// Resolves `path` through symlinks in every component, the last one
    /// too: where opening it in the image lands. See [`resolve_with`].
    pub fn resolve(&self, path: &ImagePath) -> Result<ImagePath, String> {
        resolve_with(path, |p| self.get(p).map(|n| n.kind.clone()))
    }
}

/// The paths of `set` that are `path` or lie below it.
fn at_or_below<'s>(
    set: &'s std::collections::BTreeSet<ImagePath>,
    path: &'s ImagePath,
) -> impl Iterator<Item = &'s ImagePath> {
    // They sort together, from `path` on, among those its text begins.
    set.range::<ImagePath, _>((std::ops::Bound::Included(path), std::ops::Bound::Unbounded))
        .take_while(|p| p.as_rel().starts_with(path.as_rel()))
        .filter(|p| p.starts_with(path))
}

/// Whether `path` is directly inside `dir`.
fn is_child(path: &ImagePath, dir: &ImagePath) -> bool {
    let (path, dir) = (path.as_rel(), dir.as_rel());
    let name = if dir.is_empty() {
        Some(path)
    } else {
        path.strip_prefix(dir)
            .and_then(|rest| rest.strip_prefix('/'))
    };
    name.is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

/// A hardlink `name` to `target`, which must be a file this layer put or
/// a lower one holds, its directory resolved through symlinks as runtimes
/// resolve it (`/sbin/sshd` with `/sbin -> usr/sbin` is `/usr/sbin/sshd`);
/// with what the link takes of it.
fn hardlink(name: &str, target: &str, reading: &Reading) -> Result<(NodeKind, Linkable), String> {
    let target = entry_path(target)
        .and_then(|t| reading.resolve(&t))
        .map_err(|m| format!("hardlink {name:?}: target {m}"))?;
    match reading.linkable(&target) {
        None => Err(format!(
            "hardlink {name:?} points at {target}, which the image does not have"
        )),
        Some(file) if file.dir => Err(format!(
            "hardlink {name:?} points at the directory {target}"
        )),
        Some(file) => Ok((NodeKind::Hardlink { target }, file)),
    }
}

impl Default for ImagePath {
    fn default() -> ImagePath {
        ImagePath::root()
    }
}

/// Resolves every component of `path` through symlinks, the last one too,
/// as the kernel does opening a file (`..` stops at the root, as in a
/// chroot). The path returned holds no symlink; it may not exist.
pub fn resolve_with(
    path: &ImagePath,
    lookup: impl Fn(&ImagePath) -> Option<NodeKind>,
) -> Result<ImagePath, String> {
    const MAX_HOPS: usize = 40;
    let mut hops = 0;
    let mut pending: Vec<String> = path.components().map(str::to_string).collect();
    pending.reverse();
    let mut cur = ImagePath::root();
    while let Some(component) = pending.pop() {
        match component.as_str() {
            "." => continue,
            ".." => {
                cur = cur.parent().unwrap_or_default();
                continue;
            }
            _ => {}
        }
        let next = cur.join(&component);
        match lookup(&next) {
            Some(NodeKind::Symlink { target }) => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(format!("too many levels of symlinks resolving {path}"));
                }
                if target.starts_with('/') {
                    cur = ImagePath::root();
                }
                for c in target.split('/').rev().filter(|c| !c.is_empty()) {
                    pending.push(c.to_string());
                }
            }
            Some(NodeKind::Dir) | None => cur = next,
            Some(_) if pending.is_empty() => cur = next,
            Some(_) => return Err(format!("{next} is not a directory")),
        }
    }
    Ok(cur)
}

/// Symlink resolution over any lookup, so a layer being planned can resolve
/// through its own entries and the view below. Relative targets resolve
/// from the link's directory; `..` stops at the root, as in a chroot.
pub fn resolve_parent_with(
    path: &ImagePath,
    lookup: impl Fn(&ImagePath) -> Option<NodeKind>,
) -> Result<(ImagePath, bool), String> {
    const MAX_HOPS: usize = 40;
    let mut hops = 0;
    let mut crossed = false;
    let mut pending: Vec<String> = path.components().map(str::to_string).collect();
    pending.reverse();
    let mut cur = ImagePath::root();
    while let Some(component) = pending.pop() {
        if pending.is_empty() {
            return Ok((cur.join(&component), crossed));
        }
        let next = cur.join(&component);
        match lookup(&next) {
            Some(NodeKind::Symlink { target }) => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(format!("too many levels of symlinks resolving {path}"));
                }
                crossed = true;
                if target.starts_with('/') {
                    cur = ImagePath::root();
                }
                for c in target.split('/').rev().filter(|c| !c.is_empty()) {
                    pending.push(c.to_string());
                }
            }
            Some(NodeKind::Dir) | None => cur = next,
            Some(_) => return Err(format!("{next} is not a directory")),
        }
        // `.` and `..` only arrive from symlink targets.
        while let Some(top) = pending.last() {
            match top.as_str() {
                "." => {
                    pending.pop();
                }
                ".." if pending.len() > 1 => {
                    pending.pop();
                    cur = cur.parent().unwrap_or_default();
                }
                _ => break,
            }
        }
    }
    Ok((cur, crossed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImagePath {
        s.parse().unwrap()
    }

    fn dir(layer: usize) -> Node {
        Node {
            capability: false,
            kind: NodeKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            layer,
        }
    }

    fn file(layer: usize) -> Node {
        Node {
            capability: false,
            kind: NodeKind::File { size: 1 },
            mode: 0o644,
            uid: 0,
            gid: 0,
            layer,
        }
    }

    #[test]
    fn whiteouts_hide_lower_entries_only() {
        let mut v = View::new();
        v.apply(vec![
            Change::Put(p("/a"), dir(0), None),
            Change::Put(p("/a/x"), file(0), None),
            Change::Put(p("/b"), dir(0), None),
            Change::Put(p("/b/y"), file(0), None),
        ]);
        // A later layer re-adds /a/z after hiding /a, and hides /b's content.
        v.apply(vec![
            Change::Put(p("/a/z"), file(1), None),
            Change::Whiteout(p("/a")),
            Change::Put(p("/a"), dir(1), None),
            Change::Opaque(p("/b")),
        ]);
        let paths: Vec<String> = v.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(paths, ["/a", "/a/z", "/b"]);
    }

    /// Repacking, as the map grows past its thresholds, keeps every path,
    /// in order, and what is removed stays removed.
    #[test]
    fn a_view_repacked_as_it_grows_keeps_every_path() {
        let mut v = View::new();
        let name = |i: usize| p(&format!("/d{}/f{i:05}", i % 7));
        let mut changes: Vec<Change> = (0..7)
            .map(|d| Change::Put(p(&format!("/d{d}")), dir(0), None))
            .collect();
        changes.extend((0..3 * REPACK_MIN).map(|i| Change::Put(name(i), file(0), None)));
        v.apply(changes);
        assert!(v.repack_at >= 2 * REPACK_MIN, "repacked at {}", v.repack_at);
        v.apply(vec![
            Change::Whiteout(p("/d3")),
            Change::Put(name(3 * REPACK_MIN), file(1), None),
        ]);
        let paths: Vec<ImagePath> = v.iter().map(|(p, _)| p.clone()).collect();
        let mut expected: Vec<ImagePath> = (0..7)
            .filter(|d| *d != 3)
            .map(|d| p(&format!("/d{d}")))
            .collect();
        expected.extend(
            (0..=3 * REPACK_MIN)
                .filter(|i| i % 7 != 3 || *i == 3 * REPACK_MIN)
                .map(name),
        );
        expected.sort();
        assert_eq!(paths, expected);
        assert_eq!(v.get(&name(5)).map(|n| n.layer), Some(0));
        assert_eq!(v.get(&name(3 * REPACK_MIN)).map(|n| n.layer), Some(1));
    }

    #[test]
    fn resolves_parents_through_symlinks() {
        let mut v = View::new();
        v.apply(vec![
            Change::Put(p("/usr"), dir(0), None),
            Change::Put(p("/usr/bin"), dir(0), None),
            Change::Put(
                p("/bin"),
                Node {
                    kind: NodeKind::Symlink {
                        target: "usr/bin".into(),
                    },
                    ..file(0)
                },
                None,
            ),
            Change::Put(
                p("/usr/lib64"),
                Node {
                    kind: NodeKind::Symlink {
                        target: "../../../lib".into(),
                    },
                    ..file(0)
                },
                None,
            ),
        ]);
        assert_eq!(
            v.resolve_parent(&p("/bin/sh")).unwrap(),
            (p("/usr/bin/sh"), true)
        );
        assert_eq!(
            v.resolve_parent(&p("/usr/lib64/x")).unwrap(),
            (p("/lib/x"), true)
        );
        assert_eq!(
            v.resolve_parent(&p("/etc/x")).unwrap(),
            (p("/etc/x"), false)
        );
        assert_eq!(v.resolve_parent(&p("/bin")).unwrap(), (p("/bin"), false));
    }

    #[test]
    fn symlink_loops_are_refused() {
        let mut v = View::new();
        v.apply(vec![Change::Put(
            p("/loop"),
            Node {
                kind: NodeKind::Symlink {
                    target: "/loop".into(),
                },
                ..file(0)
            },
            None,
        )]);
        assert!(v.resolve_parent(&p("/loop/x")).is_err());
    }

    /// A tar whose names are written raw, bypassing the tar crate's own
    /// checks, as a hostile layer would be.
    /// (name, type, link target, content)
    type RawEntry<'a> = (&'a str, tar::EntryType, &'a str, &'a [u8]);

    fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, kind, link, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(data.len() as u64);
            h.set_cksum();
            out.extend_from_slice(h.as_bytes());
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    fn apply(entries: &[RawEntry]) -> Result<View, String> {
        let mut v = View::new();
        v.apply_tar(&raw_tar(entries)[..]).map(|()| v)
    }

    #[test]
    fn hostile_entries_are_refused() {
        use tar::EntryType::{Link, Regular};
        let cases: [(&[RawEntry], &str); 6] = [
            (&[("../etc/passwd", Regular, "", b"x")], "escapes"),
            (&[("a/../../x", Regular, "", b"x")], "escapes"),
            (&[("/etc/passwd", Regular, "", b"x")], "absolute"),
            (&[("etc/.wh...", Regular, "", b"")], "whiteout"),
            (&[("x", Link, "../../etc/shadow", b"")], "escapes"),
            (&[("x", Link, "nope", b"")], "does not have"),
        ];
        for (entries, needle) in cases {
            let err = apply(entries).unwrap_err();
            assert!(err.contains(needle), "{entries:?}: {err}");
        }
    }

    #[test]
    fn a_refused_tar_is_told_apart_from_a_damaged_blob() {
        use crate::error::BlobError;
        use oci_spec::image::MediaType;
        let dir = tempfile::tempdir().unwrap();
        let blobs = BlobStore::open(dir.path()).unwrap();
        let tar = raw_tar(&[("../escape", tar::EntryType::Regular, "", b"x")]);
        let blob = blobs.put(&tar).unwrap();
        let desc = Descriptor::new(MediaType::ImageLayer, blob.size, blob.digest.to_oci());
        let mut v = View::new();
        let apply =
            |v: &mut View| v.apply_layer(&blobs, &desc, &Digest::of(&tar), &mut |_, _| Ok(()));

        let err = apply(&mut v).unwrap_err();
        assert!(
            matches!(&err, LayerError::Refused { layer, reason }
                if *layer == blob.digest && reason.contains("escapes")),
            "{err}"
        );
        // The same entry read from a blob that is not what its digest
        // says is the blob's fault, not a refusal of what it holds.
        let mut damaged = tar.clone();
        damaged[600] ^= 1;
        std::fs::write(blobs.path(&blob.digest), &damaged).unwrap();
        let err = apply(&mut v).unwrap_err();
        assert!(
            matches!(&err, LayerError::Blob(BlobError::DigestMismatch { found, .. })
                if *found == Digest::of(&damaged)),
            "{err}"
        );
        assert_eq!(
            v.layer_count(),
            0,
            "a failed layer leaves the view as it was"
        );
    }

    #[test]
    fn hardlinks_to_earlier_files_and_devices_are_kept() {
        use tar::EntryType::{Char, Link, Regular};
        let v = apply(&[
            ("a", Regular, "", b"x"),
            ("b", Link, "a", b""),
            ("./dev-null", Char, "", b""),
        ])
        .unwrap();
        assert_eq!(
            v.get(&p("/b")).unwrap().kind,
            NodeKind::Hardlink { target: p("/a") }
        );
        assert_eq!(v.get(&p("/dev-null")).unwrap().kind, NodeKind::Special);
    }

    #[test]
    fn absurd_sizes_are_refused() {
        let mut bytes = raw_tar(&[("big", tar::EntryType::Regular, "", b"")]);
        // 77777777777 octal: 8 GiB is fine, so claim it in base-256 instead.
        let mut h = tar::Header::new_ustar();
        h.as_old_mut().name[..3].copy_from_slice(b"big");
        h.set_mode(0o644);
        h.set_size(1 << 50);
        h.set_cksum();
        bytes[..512].copy_from_slice(h.as_bytes());
        let err = View::new().apply_tar(&bytes[..]).unwrap_err();
        assert!(err.contains("claims"), "{err}");
    }

    /// Issue 14: the tar crate reads a long name, long link or PAX header
    /// whole, whatever size it claims; the guard refuses it at its header,
    /// and the error says which bound.
    #[test]
    fn extension_headers_past_their_bound_are_refused_at_the_header() {
        for (typeflag, what) in [
            (tar::EntryType::GNULongName, "a GNU long name"),
            (tar::EntryType::GNULongLink, "a GNU long link name"),
            (tar::EntryType::XHeader, "a PAX extended header"),
            (tar::EntryType::XGlobalHeader, "a PAX global header"),
        ] {
            let mut bytes = raw_tar(&[("a", tar::EntryType::Regular, "", b"x")]);
            bytes.truncate(1024);
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            h.set_entry_type(typeflag);
            h.set_size((3 << 30) + 1);
            h.set_cksum();
            bytes.extend_from_slice(h.as_bytes());
            bytes.extend(vec![b'a'; 1 << 16]);
            let err = View::new().apply_tar(&bytes[..]).unwrap_err();
            assert_eq!(err, format!("{what} of 3221225473 bytes (limit 1048576)"));
        }
    }

    #[test]
    fn names_longer_than_path_max_are_refused() {
        let long = |name: &str, link: &str| {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            b.append_link(&mut h, name, link).unwrap();
            View::new().apply_tar(&b.into_inner().unwrap()[..])
        };
        let name = |n: usize| format!("{}/x", "d".repeat(n - 2));
        long(&name(4096), "t").unwrap();
        let err = long(&name(4097), "t").unwrap_err();
        assert!(
            err.starts_with("layer entry: a name of 4097 bytes starting \"ddd")
                && err.ends_with("(limit 4096, PATH_MAX)"),
            "{err}"
        );
        let err = long("l", &"t".repeat(4097)).unwrap_err();
        assert!(
            err.starts_with("layer entry: a link name of 4097 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_stream_ending_right_after_the_last_data_is_complete() {
        use tar::EntryType::Regular;
        let full = raw_tar(&[("a", Regular, "", b"aa"), ("b", Regular, "", b"hello")]);
        // Header a, data a (padded), header b, then exactly 5 data bytes.
        let cut = &full[..512 * 3 + 5];
        let mut v = View::new();
        v.apply_tar(cut).unwrap();
        assert!(v.get(&p("/b")).is_some());

        for bad in [512 * 3 + 4, 512 * 2 + 100, 512 * 3 + 5 + 10] {
            let mut bytes = full[..bad.min(full.len())].to_vec();
            if bad > 512 * 3 + 5 {
                // Padding, then half a header of garbage.
                bytes.truncate(512 * 4);
                bytes.extend_from_slice(&[b'x'; 10]);
            }
            let err = View::new().apply_tar(&bytes[..]).unwrap_err();
            assert!(
                err.contains("corrupt") || err.contains("truncated"),
                "{bad}: {err}"
            );
        }
    }

    /// Go's archive/tar reads the next header right after a directory,
    /// link, device or fifo, whatever size it claims; the tar crate skips
    /// the claimed data, which could hide entries from the seal.
    #[test]
    fn header_only_entries_claiming_data_are_refused() {
        use tar::EntryType::{Directory, Link, Regular, Symlink};
        let hidden = raw_tar(&[("usr/sbin/sshd", Regular, "", b"OpenSSH server\n")]);
        let hidden = &hidden[..hidden.len() - 1024];
        let cases: [&[RawEntry]; 3] = [
            &[("usr", Directory, "", hidden)],
            &[("link", Symlink, "usr", hidden)],
            &[("a", Regular, "", b"a"), ("b", Link, "a", hidden)],
        ];
        for entries in cases {
            let err = apply(entries).unwrap_err();
            assert!(err.contains("header-only"), "{err}");
        }
    }

    /// A pre-POSIX regular file (type flag NUL) named with a trailing `/`
    /// is a directory to Go's archive/tar; without the slash it is a file.
    #[test]
    fn old_style_entries_with_a_trailing_slash_are_directories() {
        let mut bytes = Vec::new();
        for name in ["opt/", "etc"] {
            let mut h = tar::Header::new_ustar();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.as_old_mut().linkflag = [0];
            h.set_mode(0o755);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(0);
            h.set_cksum();
            bytes.extend_from_slice(h.as_bytes());
        }
        bytes.resize(bytes.len() + 1024, 0);
        let mut v = View::new();
        v.apply_tar(&bytes[..]).unwrap();
        assert_eq!(v.get(&p("/opt")).unwrap().kind, NodeKind::Dir);
        assert_eq!(v.get(&p("/etc")).unwrap().kind, NodeKind::File { size: 0 });
    }

    /// Go drops an empty PAX record, so the header's name stands; the tar
    /// crate takes the empty name, the root. Neither reading is kept.
    #[test]
    fn empty_pax_names_and_files_at_the_root_are_refused() {
        use tar::EntryType::{Regular, Symlink, XHeader};
        let cases: [(&[RawEntry], &str); 3] = [
            (
                &[("x", XHeader, "", b"8 path=\n"), ("etc", Regular, "", b"")],
                "empty PAX path record",
            ),
            (
                &[
                    ("x", XHeader, "", b"13 linkpath=\n"),
                    ("l", Symlink, "etc", b""),
                ],
                "empty PAX linkpath record",
            ),
            (&[("./", Regular, "", b"")], "names the root directory"),
        ];
        for (entries, needle) in cases {
            let err = apply(entries).unwrap_err();
            assert!(err.contains(needle), "{entries:?}: {err}");
        }
    }

    /// What a comparing reader asks for beyond the node: mtime and
    /// xattrs, which only it reads.
    #[test]
    fn entry_extras_carry_the_mtime_and_xattrs() {
        use tar::EntryType::{Regular, XHeader};
        let mut tar = raw_tar(&[
            ("x", XHeader, "", b"27 SCHILY.xattr.user.k=val\n"),
            ("f", Regular, "", b"hi"),
        ]);
        // The file's header (the second block) gets mtime 5.
        let mut header = tar::Header::new_ustar();
        header.as_mut_bytes().copy_from_slice(&tar[1024..1536]);
        header.set_mtime(5);
        header.set_cksum();
        tar[1024..1536].copy_from_slice(header.as_bytes());
        let mut seen = Vec::new();
        View::new()
            .read_entries(
                &tar[..],
                Unpacking::Layer,
                &mut |_| Ok(()),
                Some(&mut |path: &ImagePath, _: &Node, extras: &EntryExtras| {
                    seen.push((path.to_string(), extras.clone()));
                }),
                &mut |_, _| Ok(()),
            )
            .unwrap();
        let xattrs = [("user.k".to_string(), b"val".to_vec())]
            .into_iter()
            .collect();
        assert_eq!(seen, [("/f".to_string(), EntryExtras { mtime: 5, xattrs })]);
    }

    fn layers(layers: &[&[RawEntry]]) -> Result<View, String> {
        let mut v = View::new();
        for entries in layers {
            v.apply_tar(&raw_tar(entries)[..])?;
        }
        Ok(v)
    }

    /// Runtimes resolve each entry's directory, and a hardlink's target's,
    /// through the symlinks on disk when the entry is unpacked: those of
    /// lower layers and those its own layer made so far, not those its
    /// whiteouts removed.
    #[test]
    fn names_resolve_through_symlinks_as_runtimes_resolve_them() {
        use tar::EntryType::{Directory, Link, Regular, Symlink};
        let lower: &[RawEntry] = &[
            ("usr", Directory, "", b""),
            ("usr/sbin", Directory, "", b""),
            ("sbin", Symlink, "usr/sbin", b""),
        ];
        let v = layers(&[
            lower,
            &[
                ("sbin/x", Regular, "", b"x"),
                ("opt/h", Link, "sbin/x", b""),
                ("y", Symlink, "/usr/sbin", b""),
                ("y/z", Regular, "", b"z"),
            ],
            // The whiteout removes the symlink, not what was written
            // through it.
            &[(".wh.sbin", Regular, "", b"")],
        ])
        .unwrap();
        let paths: Vec<String> = v.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(
            paths,
            [
                "/opt/h",
                "/usr",
                "/usr/sbin",
                "/usr/sbin/x",
                "/usr/sbin/z",
                "/y"
            ]
        );
        assert_eq!(
            v.get(&p("/opt/h")).unwrap().kind,
            NodeKind::Hardlink {
                target: p("/usr/sbin/x")
            }
        );

        // Once a whiteout removed the symlink, its name is a directory.
        let v = layers(&[
            lower,
            &[
                ("sbin/before", Regular, "", b"b"),
                (".wh.sbin", Regular, "", b""),
                ("sbin/after", Regular, "", b"a"),
            ],
        ])
        .unwrap();
        assert!(v.get(&p("/sbin/after")).is_some() && v.get(&p("/sbin")).is_none());
        assert!(v.get(&p("/usr/sbin/before")).is_some());
        assert!(v.get(&p("/usr/sbin/after")).is_none());

        // An entry that changes where its own directory resolves: those
        // after it follow (s -> t/name/.. is t, then /elsewhere/.., the
        // root).
        let v = layers(&[
            &[("t", Directory, "", b""), ("s", Symlink, "t/name/..", b"")],
            &[
                ("s/name", Symlink, "/elsewhere", b""),
                ("s/z", Regular, "", b"z"),
            ],
        ])
        .unwrap();
        assert!(v.get(&p("/t/name")).is_some());
        assert!(v.get(&p("/z")).is_some() && v.get(&p("/t/z")).is_none());

        // Entries below a file or a symlink loop reach nothing a runtime
        // would write; a whiteout below a file removes nothing.
        let looping: &[RawEntry] = &[("a", Symlink, "b", b""), ("b", Symlink, "a", b"")];
        let file: &[RawEntry] = &[("f", Regular, "", b"f")];
        for (entries, needle) in [
            ([looping, &[("a/x", Regular, "", b"x")]], "too many levels"),
            (
                [looping, &[("a/.wh.x", Regular, "", b"")]],
                "too many levels",
            ),
            ([file, &[("f/x", Regular, "", b"x")]], "not a directory"),
        ] {
            let err = layers(&entries).unwrap_err();
            assert!(err.contains(needle), "{entries:?}: {err}");
        }
        assert!(layers(&[file, &[("f/.wh.x", Regular, "", b"")]]).is_ok());
    }

    /// Unpacked as dpkg unpacks, a directory, or a symlink, where a
    /// directory or a symlink to one already is leaves it be; the names
    /// are seen as the tar gives them.
    #[test]
    fn dpkg_unpacking_keeps_directories_and_their_symlinks() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let below = layers(&[&[
            ("usr/", Directory, "", b""),
            ("usr/bin/", Directory, "", b""),
            ("usr/sbin/", Directory, "", b""),
            ("bin", Symlink, "usr/bin", b""),
            ("sbin", Symlink, "usr/sbin", b""),
        ]])
        .unwrap();
        let tar = raw_tar(&[
            ("./bin/", Directory, "", b""),
            ("./bin/sh", Regular, "", b"sh"),
            ("./usr/", Directory, "", b""),
            ("./usr/bin", Symlink, "elsewhere", b""),
            ("./sbin", Symlink, "usr/bin", b""),
        ]);
        let mut names = Vec::new();
        let changes = below
            .read_tar_with(
                &tar[..],
                Unpacking::Dpkg,
                &mut |p| {
                    names.push(p.to_string());
                    Ok(())
                },
                &mut |_, _| Ok(()),
            )
            .unwrap();
        assert_eq!(names, ["/bin", "/bin/sh", "/usr", "/usr/bin", "/sbin"]);
        let put: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Put(p, n, _) => format!("{p} {}", kind_name(&n.kind)),
                other => panic!("{other:?}"),
            })
            .collect();
        // The symlink to another directory replaces the one there.
        assert_eq!(put, ["/usr/bin/sh file", "/sbin symlink"]);
        // As a layer, the same tar replaces them all.
        let changes = below.read_tar(&tar[..], &mut |_, _| Ok(())).unwrap();
        assert_eq!(changes.len(), 5);
    }

    /// A hardlink keeps the file it was made to when another file takes
    /// that path; the view, naming a link's file by path, could not tell
    /// which within one layer.
    #[test]
    fn replacing_a_file_a_hardlink_of_the_layer_named_is_refused() {
        use tar::EntryType::{Directory, Link, Regular};
        for entries in [
            &[
                ("a", Regular, "", b"1" as &[u8]),
                ("b", Link, "a", b""),
                ("a", Regular, "", b"2"),
            ][..],
            &[
                ("d", Directory, "", b""),
                ("d/a", Regular, "", b"1"),
                ("b", Link, "d/a", b""),
                ("d", Regular, "", b"2"),
            ],
        ] {
            let err = apply(entries).unwrap_err();
            assert!(err.contains("after a hardlink"), "{entries:?}: {err}");
        }
        // A file over a directory the layer left implied takes what the
        // layer put in it too.
        let err = apply(&[
            ("opt/x", Regular, "", b"x"),
            ("opt", Regular, "", b"file"),
            ("opt", Directory, "", b""),
            ("b", Link, "opt/x", b""),
        ])
        .unwrap_err();
        assert!(err.contains("does not have"), "{err}");
        // A directory entry repeated over a linked file's directory, or a
        // link made after the replacement, is fine.
        apply(&[
            ("d", Directory, "", b""),
            ("d/a", Regular, "", b"1"),
            ("b", Link, "d/a", b""),
            ("d", Directory, "", b""),
            ("a", Regular, "", b"1"),
            ("a", Regular, "", b"2"),
            ("c", Link, "a", b""),
        ])
        .unwrap();
    }
}
