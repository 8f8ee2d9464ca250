//! The merged filesystem view: base layers plus recipe layers, whiteouts
//! applied in order (image-spec, "Applying Changesets").
//!
//! The view holds metadata for every path and the content of a few watched
//! files (the account databases that `user`/`group` steps edit). It is fed by
//! streaming layer tars, never by unpacking to disk.

pub mod accounts;
pub mod meta;
pub mod source;
pub mod unpack;

use std::collections::BTreeMap;
use std::io::{self, Read};

use meta::ImagePath;

use oci_spec::image::Descriptor;

use crate::digest::Digest;
use crate::error::LayerError;
use crate::layer::{self, OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
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

/// The account databases whose content the view keeps.
pub const WATCHED: [&str; 4] = ["etc/passwd", "etc/group", "etc/shadow", "etc/gshadow"];

/// Largest watched file kept in memory; a larger one is refused, not read.
const WATCHED_MAX: u64 = 16 << 20;

/// No single file in a base is a terabyte: a header saying so is hostile.
const MAX_ENTRY_SIZE: u64 = 1 << 40;

/// Removes what lies below `path` in a map keyed by path (and `path`
/// itself when `inclusive`). Keys sharing `path`'s text as a prefix sort
/// together, so this touches only them, not the whole map.
pub fn remove_below<V>(map: &mut BTreeMap<ImagePath, V>, path: &ImagePath, inclusive: bool) {
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

/// Sees each regular file's path and content stream.
pub type FileVisitor<'a> = &'a mut dyn FnMut(&ImagePath, &mut dyn Read) -> io::Result<()>;

/// The PAX record that carries file capabilities.
const CAPABILITY_XATTR: &[u8] = b"SCHILY.xattr.security.capability";

/// Counts what is read through it.
struct Counted<'a, R> {
    inner: &'a mut R,
    read: u64,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
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
    ImagePath::from_rel(name).ok_or_else(|| format!("layer entry {name:?} escapes the image root"))
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
        if values.iter().any(|v| *v != values[0]) {
            return refuse(format!(
                "{} PAX {key} records that differ (runtimes take the last)",
                values.len()
            ));
        }
    }
    Ok(())
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
    let read = if watched {
        let n = entry.read_to_end(&mut buf).map(|n| n as u64);
        n.and_then(|n| on_file(path, &mut &buf[..]).map(|()| n))
    } else if matches!(node.kind, NodeKind::File { .. }) {
        let mut counted = Counted {
            inner: entry,
            read: 0,
        };
        on_file(path, &mut counted)
            .and_then(|()| io::copy(&mut counted, &mut io::sink()))
            .map(|_| counted.read)
    } else {
        io::copy(entry, &mut io::sink())
    }
    .map_err(|e| format!("corrupt layer tar: reading {path}: {e}"))?;
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

/// Metadata of every path, plus the content of the watched files.
#[derive(Debug, Clone, Default)]
pub struct View {
    nodes: BTreeMap<ImagePath, Node>,
    contents: BTreeMap<ImagePath, Vec<u8>>,
    layers: usize,
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

    /// The content of a watched file, if the image has it.
    pub fn content(&self, path: &ImagePath) -> Option<&[u8]> {
        self.contents.get(path).map(Vec::as_slice)
    }

    pub fn is_watched(path: &ImagePath) -> bool {
        WATCHED.contains(&path.as_rel())
    }

    /// Every path and node, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&ImagePath, &Node)> {
        self.nodes.iter()
    }

    /// Applies one layer's changes. Whiteouts hide only what lower layers
    /// hold, so they are applied before any entry of the same layer.
    pub fn apply(&mut self, changes: Vec<Change>) {
        for change in &changes {
            match change {
                Change::Whiteout(path) => self.remove_tree(path, true),
                Change::Opaque(dir) => self.remove_tree(dir, false),
                Change::Put(..) => {}
            }
        }
        for change in changes {
            if let Change::Put(path, node, content) = change {
                if !node.is_dir() {
                    // A non-directory replaces a whole subtree.
                    self.remove_tree(&path, true);
                }
                self.contents.remove(&path);
                if let Some(content) = content {
                    self.contents.insert(path.clone(), content);
                }
                self.nodes.insert(path, node);
            }
        }
        self.layers += 1;
    }

    /// Reads an uncompressed layer tar and applies it, refusing what a
    /// hostile layer could use to escape or mislead: `..` or absolute
    /// names, whiteouts of `..`, hardlinks to nothing, absurd sizes.
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
        let mut reader = layer::read::open(blobs, desc)?;
        match self.read_tar(&mut reader, on_file) {
            Ok(changes) => {
                reader.finish(diff_id)?;
                self.apply(changes);
                Ok(())
            }
            Err(reason) => {
                let layer = reader.digest();
                // What a damaged blob seems to hold says nothing, and a
                // stream that broke is no refusal of its content: the
                // blob's own check, read to its end, comes first.
                reader.diff_id()?;
                Err(LayerError::Refused { layer, reason })
            }
        }
    }

    /// Reads a layer tar into the changes it would make as the next layer,
    /// leaving the view as it is: a caller that still has to verify the
    /// stream applies them only once it checks out.
    pub fn read_tar(&self, tar: impl Read, on_file: FileVisitor) -> Result<Vec<Change>, String> {
        let layer = self.layers;
        let watch = std::rc::Rc::new(std::cell::Cell::new(Progress::default()));
        let mut archive = tar::Archive::new(EofWatch {
            inner: tar,
            progress: watch.clone(),
        });
        // Where the last entry's data ended in the stream.
        let mut data_end = 0u64;
        let mut changes = Vec::new();
        // Paths this layer has put so far, with whether each is a directory:
        // hardlinks may point at them.
        let mut seen: BTreeMap<ImagePath, Linkable> = BTreeMap::new();
        let mut entries = archive
            .entries()
            .map_err(|e| format!("reading layer tar: {e}"))?;
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
                Some(Err(e)) => return Err(format!("corrupt layer tar: {e}")),
            };
            // A global PAX header is no file: Go hands it to its caller,
            // and containerd and umoci skip it.
            if entry.header().entry_type().is_pax_global_extensions() {
                data_end = entry.raw_file_position() + entry.size();
                continue;
            }
            let name = meta::decode_name(&entry.path_bytes());
            unambiguous(&mut entry, &name)?;
            let path = entry_path(&name)?;
            if path.is_root() && entry.header().entry_type().is_dir() {
                continue;
            }
            let file_name = path.file_name();
            if file_name == OPAQUE_WHITEOUT {
                let dir = self.through_symlinks(&path).parent().unwrap_or_default();
                changes.push(Change::Opaque(dir));
                continue;
            }
            if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
                if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(format!("layer entry {name:?} is a whiteout of {hidden:?}"));
                }
                let parent = path.parent().unwrap_or_default();
                changes.push(Change::Whiteout(
                    self.through_symlinks(&parent.join(hidden)),
                ));
                continue;
            }
            let node = self.entry_node(&mut entry, &name, layer, &seen)?;
            let size = entry.size();
            let watched = View::is_watched(&path) && matches!(node.kind, NodeKind::File { .. });
            if watched && size > WATCHED_MAX {
                return Err(format!("{path} is larger than {WATCHED_MAX} bytes"));
            }
            let content = read_data(&mut entry, size, &path, &node, watched, on_file)?;
            data_end = entry.raw_file_position() + size;
            seen.insert(path.clone(), Linkable::of(&node));
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
        seen: &BTreeMap<ImagePath, Linkable>,
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
            t if t.is_dir() => NodeKind::Dir,
            t if t.is_file() => NodeKind::File { size },
            t if t.is_symlink() => NodeKind::Symlink {
                target: link().unwrap_or_default(),
            },
            t if t.is_hard_link() => {
                let target = link().ok_or_else(|| format!("hardlink {name:?} has no target"))?;
                let (kind, file) = self.hardlink(name, &target, seen)?;
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

    /// A hardlink `name` to `target`, which must be a file this layer put
    /// (`seen`) or a lower one holds; with what the link takes of it.
    fn hardlink(
        &self,
        name: &str,
        target: &str,
        seen: &BTreeMap<ImagePath, Linkable>,
    ) -> Result<(NodeKind, Linkable), String> {
        let target = entry_path(target).map_err(|m| format!("hardlink {name:?}: target {m}"))?;
        let file = seen
            .get(&target)
            .copied()
            .or_else(|| self.nodes.get(&target).map(Linkable::of));
        match file {
            None => Err(format!(
                "hardlink {name:?} points at {target}, which the image does not have"
            )),
            Some(file) if file.dir => Err(format!(
                "hardlink {name:?} points at the directory {target}"
            )),
            Some(file) => Ok((NodeKind::Hardlink { target }, file)),
        }
    }

    /// `path` with its directories resolved through the symlinks of the
    /// layers below, as runtimes resolve a whiteout's directory before
    /// removing (containerd: `fs.RootPath`): `/sbin/.wh.sshd` with `/sbin ->
    /// usr/sbin` removes `/usr/sbin/sshd`. A path that does not resolve is
    /// taken as written.
    fn through_symlinks(&self, path: &ImagePath) -> ImagePath {
        self.resolve_parent(path)
            .map(|(resolved, _)| resolved)
            .unwrap_or_else(|_| path.clone())
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
}

impl Default for ImagePath {
    fn default() -> ImagePath {
        ImagePath::root()
    }
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
}
