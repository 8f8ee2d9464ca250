//! The files of an image's own layers as the build that wrote them knows
//! them, for its SBOM, with nothing read back:
//!
//! - each regular file hashed, SHA-256 and SHA-1, as the layer's writer
//!   streams it ([`Hashing`]);
//! - the list filed in the build cache by the layer's diff_id ([`file`]),
//!   so that a build serving the layer from the cache has it too
//!   ([`filed`]);
//! - the lists of every own layer settled against the build's view of the
//!   image ([`owned_as_built`]): what `diff::tree::owned` reads back from
//!   the image, and so the same SBOM.
//!
//! A filed list is its count, then each file: its path front-coded on the
//! one before (the bytes it shares with it, and the rest), its SHA-256 and
//! its SHA-1 (postcard). It depends on the layer's tar alone, which its
//! diff_id names.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::diff::tree::{self, OwnFile, Owned};
use crate::digest::Digest;
use crate::layer::ContentSink;
use crate::rootfs::meta::{ImagePath, shared_prefix};
use crate::rootfs::packages;
use crate::rootfs::{NodeKind, View};
use crate::store::cache::Cache;

/// What a filed list's meaning depends on: its shape.
const FILED_VERSION: &str = "layer files 1";

/// Hashes each regular file of a layer being written as its writer
/// streams it: the layer's own files for [`owned_as_built`], no byte read
/// twice.
#[derive(Default)]
pub struct Hashing {
    files: Vec<OwnFile>,
    current: Option<(ImagePath, sha2::Sha256, sha1::Sha1)>,
    /// More files than an SBOM lists (u32): the list is no use.
    overflowed: bool,
}

impl Hashing {
    /// For a layer of `entries` entries: its list is made at its size
    /// (a list grown by doubling would hold up to twice its room).
    pub fn with_capacity(entries: usize) -> Hashing {
        Hashing {
            files: Vec::with_capacity(entries),
            ..Hashing::default()
        }
    }

    /// The files hashed, in the order written; None when there were more
    /// than an SBOM lists.
    pub fn into_files(self) -> Option<Vec<OwnFile>> {
        (!self.overflowed).then_some(self.files)
    }
}

impl ContentSink for Hashing {
    fn begin(&mut self, path: &Arc<str>) {
        self.current = ImagePath::from_shared(Arc::clone(path))
            .map(|p| (p, sha2::Sha256::default(), sha1::Sha1::default()));
    }

    fn data(&mut self, chunk: &[u8]) {
        if let Some((_, sha256, sha1)) = &mut self.current {
            sha2::Digest::update(sha256, chunk);
            sha1::Digest::update(sha1, chunk);
        }
    }

    fn end(&mut self) {
        let Some((path, sha256, sha1)) = self.current.take() else {
            return;
        };
        if self.files.len() >= u32::MAX as usize {
            self.overflowed = true;
            return;
        }
        let sha256 = Digest::from_bytes(sha2::Digest::finalize(sha256).into());
        self.files.push(OwnFile::new(
            path,
            sha256,
            sha1::Digest::finalize(sha1).into(),
        ));
    }
}

/// What the SBOM needs of an image's files, from the build that made it:
/// `view`, its merged filesystem as the build has it (which keeps the
/// content of every package database, see [`View::is_watched`]), and the
/// files of each own layer (from `own_from` up), bottom first.
pub fn owned_as_built(view: &View, own_from: usize, layers: Vec<Vec<OwnFile>>) -> Owned {
    let mut databases = BTreeMap::new();
    for (path, node) in view.iter() {
        let Some(database) = packages::database_of(path) else {
            continue;
        };
        // A database that is a hardlink is its file's content, as the
        // image read back has it: a file that is a database itself.
        let file = match &node.kind {
            NodeKind::Hardlink { target } => target,
            _ => path,
        };
        if let (Some(_), Some(bytes)) = (packages::database_of(file), view.content(file)) {
            databases.insert(path.clone(), (database, bytes.to_vec()));
        }
    }
    let mut files = Vec::new();
    for layer in layers {
        if files.is_empty() {
            files = layer;
        } else {
            files.extend(layer);
        }
    }
    Owned {
        files: tree::surviving(files, view, own_from),
        databases,
    }
}

fn filed_key(diff_id: &Digest) -> Digest {
    Digest::of(format!("layer files\n{diff_id}").as_bytes())
}

/// A file as a filed list holds it.
#[derive(Serialize, Deserialize)]
struct Filed<'a> {
    shared: usize,
    rest: &'a str,
    sha256: [u8; 32],
    sha1: [u8; 20],
}

/// Files `files`, the regular files of the layer `diff_id` in the order
/// written, in `cache`. A list not filed costs a later build a read of
/// the image, not the build.
pub fn file(cache: &Cache, diff_id: &Digest, files: &[OwnFile]) {
    let Ok(draft) = cache.layer_files_draft(FILED_VERSION) else {
        return;
    };
    let mut out = std::io::BufWriter::with_capacity(64 << 10, draft);
    let mut last = "";
    let mut encoded = postcard::to_io(&files.len(), &mut out).is_ok();
    for file in files {
        let text = file.path.as_rel();
        let shared = shared_prefix(last, text);
        let filed = Filed {
            shared,
            rest: &text[shared..],
            sha256: *file.sha256.as_bytes(),
            sha1: file.sha1,
        };
        encoded = encoded && postcard::to_io(&filed, &mut out).is_ok();
        last = text;
    }
    if let (true, Ok(draft)) = (encoded, out.into_inner()) {
        let _ = cache.put_layer_files(&filed_key(diff_id), draft);
    }
}

/// The files of layer `layer` of `view` filed for its diff_id, those of
/// them the view still has from that layer (the others are not listed),
/// each named by the view's own path; None when none are filed, or the
/// list does not decode whole.
pub fn filed(cache: &Cache, diff_id: &Digest, view: &View, layer: usize) -> Option<Vec<OwnFile>> {
    let summary = cache.layer_files(&filed_key(diff_id))?;
    if summary.version != FILED_VERSION {
        return None;
    }
    let (count, mut rest): (usize, &[u8]) = postcard::take_from_bytes(&summary.body).ok()?;
    let mut files = Vec::new();
    let mut last = String::new();
    for _ in 0..count {
        let (filed, after) = postcard::take_from_bytes::<Filed>(rest).ok()?;
        rest = after;
        if !last.is_char_boundary(filed.shared) {
            return None;
        }
        last.truncate(filed.shared);
        last.push_str(filed.rest);
        let path = ImagePath::from_stored(&last)?;
        if let Some((path, node)) = view.get_key_value(&path)
            && node.layer == layer
            && matches!(node.kind, NodeKind::File { .. })
        {
            let sha256 = Digest::from_bytes(filed.sha256);
            files.push(OwnFile::new(path.clone(), sha256, filed.sha1));
        }
    }
    rest.is_empty().then_some(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::{Change, Node};

    fn hashed(files: &[(&str, &[&[u8]])]) -> Vec<OwnFile> {
        let mut hashing = Hashing::default();
        for (path, chunks) in files {
            hashing.begin(&Arc::from(*path));
            for chunk in *chunks {
                hashing.data(chunk);
            }
            hashing.end();
        }
        hashing.into_files().unwrap()
    }

    #[test]
    fn a_file_is_hashed_whole_across_the_chunks_it_streams_in() {
        let files = hashed(&[("srv/a", &[b"hel", b"", b"lo"]), ("srv/empty", &[])]);
        let sha1 = |b: &[u8]| -> [u8; 20] { <sha1::Sha1 as sha1::Digest>::digest(b).into() };
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_rel()).collect();
        assert_eq!(paths, ["srv/a", "srv/empty"]);
        assert_eq!(files[0].sha256, Digest::of(b"hello"));
        assert_eq!(files[0].sha1, sha1(b"hello"));
        assert_eq!(files[1].sha256, Digest::of(b""));
        assert_eq!(files[1].sha1, sha1(b""));
    }

    fn put(path: &str, kind: NodeKind, layer: usize) -> Change {
        let node = Node {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            layer,
            capability: false,
        };
        Change::Put(ImagePath::from_rel(path).unwrap(), node, None)
    }

    #[test]
    fn a_filed_list_reads_back_as_what_the_view_still_has_of_its_layer() {
        let files = hashed(&[
            ("srv/a", &[b"a"]),
            ("srv/ab", &[b"ab"]),
            ("srv/b/c", &[b"c"]),
            ("srv/gone", &[b"g"]),
            ("srv/\u{e9}t\u{e9}", &[b"e"]),
        ]);
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(tmp.path()).unwrap();
        let diff_id = Digest::of(b"the layer");
        file(&cache, &diff_id, &files);

        let file_node = NodeKind::File { size: 1 };
        let mut view = View::new();
        view.apply(vec![
            put("srv", NodeKind::Dir, 0),
            put("srv/a", file_node.clone(), 0),
            put("srv/ab", file_node.clone(), 0),
            put("srv/b", NodeKind::Dir, 0),
            put("srv/b/c", file_node.clone(), 0),
            put("srv/gone", file_node.clone(), 0),
            put("srv/\u{e9}t\u{e9}", file_node.clone(), 0),
        ]);
        // A layer above writes srv/ab again and removes srv/gone.
        view.apply(vec![
            Change::Whiteout(ImagePath::from_rel("srv/gone").unwrap()),
            put("srv/ab", file_node, 1),
        ]);
        let read = filed(&cache, &diff_id, &view, 0).unwrap();
        let listed: Vec<(&str, Digest)> =
            read.iter().map(|f| (f.path.as_rel(), f.sha256)).collect();
        assert_eq!(
            listed,
            [
                ("srv/a", Digest::of(b"a")),
                ("srv/b/c", Digest::of(b"c")),
                ("srv/\u{e9}t\u{e9}", Digest::of(b"e")),
            ]
        );
        assert_eq!(read[0].sha1, files[0].sha1);
        // Another layer's diff_id has no list; a damaged list is none.
        assert!(filed(&cache, &Digest::of(b"other"), &view, 0).is_none());
        let path = tmp
            .path()
            .join("files")
            .join(format!("{}.summary", filed_key(&diff_id).hex()));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, bytes).unwrap();
        assert!(filed(&cache, &diff_id, &view, 0).is_none());
    }
}
