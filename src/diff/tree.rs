//! One image's files as `diff` compares them: each layer's entries as the
//! layer lists them (whiteouts included), and the merged filesystem, read
//! as streams through the view (every check a base's layers get), each
//! file's content hashed as it passes. Nothing is unpacked; metadata of
//! every entry is held in memory, content never, but for the package
//! databases (bounded by [`MAX_DATABASE`]).

use std::collections::BTreeMap;
use std::io::{self, Read};

use serde::Serialize;

use super::Side;
use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::layer::{OPAQUE_WHITEOUT, WHITEOUT_PREFIX};
use crate::progress::Progress;
use crate::rootfs::meta::ImagePath;
use crate::rootfs::packages::{self, Database};
use crate::rootfs::{Change, EntryExtras, Node, NodeKind, View};

/// Largest package database `diff` reads: dpkg's status for a full
/// desktop is a few MiB.
pub const MAX_DATABASE: u64 = 64 << 20;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Dir,
    File,
    Symlink,
    Hardlink,
    /// A device or a fifo.
    Special,
    /// A whiteout, keyed by its tar name (`etc/.wh.motd`): it hides what a
    /// lower layer has at `etc/motd`.
    Whiteout,
    /// An opaque whiteout, keyed `DIR/.wh..wh..opq`.
    Opaque,
}

/// What `diff` compares of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileMeta {
    pub kind: Kind,
    /// A file's size (a hardlink's in the merged filesystem: its file's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The sha256 of a file's content.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Permission bits, with setuid, setgid and sticky.
    #[serde(serialize_with = "octal")]
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    /// A symlink's or a hardlink's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Extended attributes, each value in hex.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub xattrs: BTreeMap<String, String>,
}

fn octal<S: serde::Serializer>(mode: &u32, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{mode:04o}"))
}

/// Entries by path.
pub type Tree = BTreeMap<ImagePath, FileMeta>;

/// One image's files.
#[derive(Debug, Default)]
pub struct Files {
    /// Each layer's entries, bottom first.
    pub layers: Vec<Tree>,
    /// The merged filesystem: what a runtime unpacks.
    pub merged: Tree,
    /// The package databases of the merged filesystem, with their content.
    pub databases: BTreeMap<ImagePath, (Database, Vec<u8>)>,
}

/// Reads both images' files. The layers the two share from the bottom up
/// (equal diff_ids) are read once, from `a`: the same diff_id is the same
/// tar, and a view of the same tars is the same view.
pub fn read_pair(
    (a, a_ids): (&Side, &[Digest]),
    (b, b_ids): (&Side, &[Digest]),
    progress: &Progress,
) -> Result<(Files, Files)> {
    let shared = a_ids.iter().zip(b_ids).take_while(|(x, y)| x == y).count();
    let mut reader_a = Reader::default();
    for (i, diff_id) in a_ids.iter().enumerate().take(shared) {
        reader_a.layer(a, i, diff_id, progress)?;
    }
    let mut reader_b = reader_a.clone();
    for (i, diff_id) in a_ids.iter().enumerate().skip(shared) {
        reader_a.layer(a, i, diff_id, progress)?;
    }
    for (i, diff_id) in b_ids.iter().enumerate().skip(shared) {
        reader_b.layer(b, i, diff_id, progress)?;
    }
    Ok((reader_a.finish(), reader_b.finish()))
}

/// What an SBOM needs of an image's files.
pub struct Owned {
    /// The regular files of the merged filesystem that a layer at or
    /// above the first own one wrote, by path, with their content hashes.
    pub files: Vec<OwnFile>,
    /// The package databases of the merged filesystem, with their content.
    pub databases: BTreeMap<ImagePath, (Database, Vec<u8>)>,
}

/// A regular file an own layer wrote, with its content's hashes.
#[derive(Clone)]
pub struct OwnFile {
    pub path: ImagePath,
    pub sha256: Digest,
    pub sha1: [u8; 20],
    /// Its place among the writes read: of a path's, the last counts.
    written: u32,
}

impl OwnFile {
    pub fn new(path: ImagePath, sha256: Digest, sha1: [u8; 20]) -> OwnFile {
        OwnFile {
            path,
            sha256,
            sha1,
            written: 0,
        }
    }
}

/// Reads what an SBOM needs of `side`, and no more: the view, and the
/// hashes of the files the layers from `own_from` up write. Unlike
/// [`read_pair`], no layer's entries are kept, so an image of 300,000
/// files costs its view and a hash per own file (issue 19).
pub fn owned(
    side: &Side,
    diff_ids: &[Digest],
    own_from: usize,
    progress: &Progress,
) -> Result<Owned> {
    let mut view = View::new();
    // Every own file's hashes as its layer writes it, in the order they
    // come: a list (its paths shared with the view's), not a map, sorted
    // in place once read, the last write of a path kept.
    let mut files: Vec<OwnFile> = Vec::new();
    let mut layer_databases = Vec::with_capacity(diff_ids.len());
    for (i, diff_id) in diff_ids.iter().enumerate() {
        let own = i >= own_from;
        let mut databases = BTreeMap::new();
        progress.start(&format!("reading {} layer {i}", side.reference), 0);
        view.apply_layer(side.blobs, &side.layers[i], diff_id, &mut |path, data| {
            if !own && packages::database_of(path).is_none() {
                return Ok(());
            }
            let (content, database) = hash(path, data, own)?;
            progress.advance(content.size);
            progress.advance_file();
            if let Some(bytes) = database {
                databases.insert(path.clone(), bytes);
            }
            if let (true, Some(sha1)) = (own, content.sha1) {
                let written = u32::try_from(files.len())
                    .map_err(|_| io::Error::other("more files than an SBOM lists"))?;
                files.push(OwnFile {
                    path: path.clone(),
                    sha256: content.digest,
                    sha1,
                    written,
                });
            }
            Ok(())
        })
        .map_err(|e| Error::from(e).within(side.reference))?;
        progress.finish();
        layer_databases.push(databases);
    }
    let mut databases = BTreeMap::new();
    for (path, node) in view.iter() {
        if let Some(found) = database_at(&view, path, node, &layer_databases) {
            databases.insert(path.clone(), found);
        }
    }
    Ok(Owned {
        files: surviving(files, &view, own_from),
        databases,
    })
}

/// Of `files`, in the order their layers wrote them, those the merged
/// filesystem `view` has: the last write of each path, if it is a regular
/// file an own layer (from `own_from` up) wrote; in the order written,
/// as a build that writes the layers lists them (`attest::files`).
fn surviving(mut files: Vec<OwnFile>, view: &View, own_from: usize) -> Vec<OwnFile> {
    // Of a path's writes, the last sorts first, and stays.
    files.sort_unstable_by(|a, b| a.path.cmp(&b.path).then(b.written.cmp(&a.written)));
    files.dedup_by(|later, first| later.path == first.path);
    files.retain(|f| {
        view.get(&f.path)
            .is_some_and(|n| matches!(n.kind, NodeKind::File { .. }) && n.layer >= own_from)
    });
    files.sort_unstable_by_key(|f| f.written);
    files.shrink_to_fit();
    files
}

/// An image's layers read so far.
#[derive(Debug, Clone, Default)]
struct Reader {
    view: View,
    layers: Vec<Tree>,
    /// The package databases each layer wrote.
    databases: Vec<BTreeMap<ImagePath, Vec<u8>>>,
}

impl Reader {
    /// Streams layer `i` of `side` into the view.
    fn layer(
        &mut self,
        side: &Side,
        i: usize,
        diff_id: &Digest,
        progress: &Progress,
    ) -> Result<()> {
        let desc = &side.layers[i];
        let mut extras: BTreeMap<ImagePath, EntryExtras> = BTreeMap::new();
        let mut contents: BTreeMap<ImagePath, Content> = BTreeMap::new();
        let mut databases = BTreeMap::new();
        progress.start(&format!("reading {} layer {i}", side.reference), 0);
        let changes = self
            .view
            .apply_layer_seeing(
                side.blobs,
                desc,
                diff_id,
                &mut |path: &ImagePath, _: &Node, e: &EntryExtras| {
                    extras.insert(path.clone(), e.clone());
                },
                &mut |path, data| {
                    let (content, database) = hash(path, data, false)?;
                    progress.advance(content.size);
                    progress.advance_file();
                    contents.insert(path.clone(), content);
                    if let Some(bytes) = database {
                        databases.insert(path.clone(), bytes);
                    }
                    Ok(())
                },
            )
            .map_err(|e| Error::from(e).within(side.reference))?;
        progress.finish();
        self.layers.push(layer_tree(changes, &extras, &contents));
        self.databases.push(databases);
        Ok(())
    }

    /// The merged filesystem, from the view and the layers that wrote
    /// each of its paths.
    fn finish(self) -> Files {
        let mut merged = Tree::new();
        let mut databases = BTreeMap::new();
        for (path, node) in self.view.iter() {
            let Some(meta) = self.layers.get(node.layer).and_then(|l| l.get(path)) else {
                continue;
            };
            merged.insert(path.clone(), meta.clone());
            if let Some(found) = database_at(&self.view, path, node, &self.databases) {
                databases.insert(path.clone(), found);
            }
        }
        fill_hardlinks(&mut merged, &self.view);
        Files {
            layers: self.layers,
            merged,
            databases,
        }
    }
}

/// The package database at `path` of the merged filesystem `view`, if it
/// is one: its content as the layer that wrote it kept it (`kept`, by
/// layer). A database that is a hardlink is its file's content.
fn database_at(
    view: &View,
    path: &ImagePath,
    node: &Node,
    kept: &[BTreeMap<ImagePath, Vec<u8>>],
) -> Option<(Database, Vec<u8>)> {
    let database = packages::database_of(path)?;
    let file = match &node.kind {
        NodeKind::Hardlink { target } => target,
        _ => path,
    };
    let layer = view.get(file).map_or(node.layer, |n| n.layer);
    let bytes = kept.get(layer)?.get(file)?;
    Some((database, bytes.clone()))
}

/// A file's content as hashed.
#[derive(Debug, Clone)]
pub struct Content {
    pub digest: Digest,
    pub size: u64,
    /// Where it was asked for.
    pub sha1: Option<[u8; 20]>,
}

/// Writes into a SHA-1 as it passes bytes on.
struct Sha1Writer<W> {
    inner: W,
    sha1: sha1::Sha1,
}

impl<W: io::Write> io::Write for Sha1Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        sha1::Digest::update(&mut self.sha1, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes a file's content as it streams (with SHA-1 too when `sha1`);
/// keeps it whole only when it is a package database, within
/// [`MAX_DATABASE`].
fn hash(
    path: &ImagePath,
    data: &mut dyn Read,
    sha1: bool,
) -> io::Result<(Content, Option<Vec<u8>>)> {
    if packages::database_of(path).is_none() {
        let mut hasher = Sha1Writer {
            inner: HashingWriter::new(io::sink()),
            sha1: sha1::Sha1::default(),
        };
        io::copy(data, &mut hasher)?;
        let (digest, size, _) = hasher.inner.finish();
        let sha1 = sha1.then(|| sha1::Digest::finalize(hasher.sha1).into());
        return Ok((Content { digest, size, sha1 }, None));
    }
    let mut bytes = Vec::new();
    data.take(MAX_DATABASE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DATABASE {
        return Err(io::Error::other(format!(
            "a package database larger than {MAX_DATABASE} bytes"
        )));
    }
    let content = Content {
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
        sha1: sha1.then(|| <sha1::Sha1 as sha1::Digest>::digest(&bytes).into()),
    };
    Ok((content, Some(bytes)))
}

/// A layer's entries as it lists them, from the changes it made.
fn layer_tree(
    changes: Vec<Change>,
    extras: &BTreeMap<ImagePath, EntryExtras>,
    contents: &BTreeMap<ImagePath, Content>,
) -> Tree {
    let mut tree = Tree::new();
    for change in changes {
        match change {
            Change::Put(path, node, _) => {
                let meta = file_meta(&node, extras.get(&path), contents.get(&path));
                tree.insert(path, meta);
            }
            Change::Whiteout(path) => {
                let name = format!("{WHITEOUT_PREFIX}{}", path.file_name());
                let key = path.parent().unwrap_or_default().join(&name);
                tree.insert(key, marker(Kind::Whiteout));
            }
            Change::Opaque(dir) => {
                tree.insert(dir.join(OPAQUE_WHITEOUT), marker(Kind::Opaque));
            }
        }
    }
    tree
}

fn marker(kind: Kind) -> FileMeta {
    FileMeta {
        kind,
        size: None,
        digest: None,
        mode: 0,
        uid: 0,
        gid: 0,
        mtime: 0,
        link: None,
        xattrs: BTreeMap::new(),
    }
}

fn file_meta(node: &Node, extras: Option<&EntryExtras>, content: Option<&Content>) -> FileMeta {
    let (kind, link) = match &node.kind {
        NodeKind::Dir => (Kind::Dir, None),
        NodeKind::File { .. } => (Kind::File, None),
        NodeKind::Symlink { target } => (Kind::Symlink, Some(target.clone())),
        NodeKind::Hardlink { target } => (Kind::Hardlink, Some(target.to_string())),
        NodeKind::Special => (Kind::Special, None),
    };
    let size = match node.kind {
        NodeKind::File { size } => Some(size),
        _ => None,
    };
    FileMeta {
        kind,
        size,
        digest: content.map(|c| c.digest),
        mode: node.mode,
        uid: node.uid,
        gid: node.gid,
        mtime: extras.map_or(0, |e| e.mtime),
        link,
        xattrs: extras
            .map(|e| {
                e.xattrs
                    .iter()
                    .map(|(k, v)| (k.clone(), hex::encode(v)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// In the merged filesystem a hardlink is its file: it takes the file's
/// size and content digest.
fn fill_hardlinks(merged: &mut Tree, view: &View) {
    for (path, node) in view.iter() {
        let NodeKind::Hardlink { target } = &node.kind else {
            continue;
        };
        let Some((size, digest)) = merged.get(target).map(|t| (t.size, t.digest)) else {
            continue;
        };
        if let Some(link) = merged.get_mut(path) {
            link.size = size;
            link.digest = digest;
        }
    }
}
