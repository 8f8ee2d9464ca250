//! The files of an image's own layers as the build that wrote them knows
//! them, for its SBOM, with nothing read back and nothing held:
//!
//! - each regular file hashed, SHA-256 and SHA-1, as the layer's writer
//!   streams it, and put on the layer's list, a temporary file
//!   ([`Hashing`], [`List`]);
//! - the list filed in the build cache by the layer's diff_id ([`file`]),
//!   so that a build serving the layer from the cache has it too
//!   ([`filed`]);
//! - the lists of every own layer read through the build's view of the
//!   image ([`AsBuilt`]), as often as the SBOM needs them: each file the
//!   merged filesystem has from the layer that listed it, in the order
//!   listed, which is what `diff::tree::owned` reads back from the image.
//!
//! A list is a record per file: the bytes its path shares with the one
//! before (u32, little-endian), the length of the rest (u32) and the rest,
//! its SHA-256 and its SHA-1; then an end record, `u32::MAX` and the count
//! (u64). It depends on the layer's tar alone, which its diff_id names.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::digest::Digest;
use crate::layer::ContentSink;
use crate::rootfs::meta::{ImagePath, shared_prefix};
use crate::rootfs::packages::{self, Database};
use crate::rootfs::{NodeKind, View};
use crate::store::cache::Cache;

/// What a filed list's meaning depends on: its shape.
const FILED_VERSION: &str = "layer files 2";

/// Marks the end of a list, where a record's shared length would be.
const END: u32 = u32::MAX;

/// The longest path a list holds: a longer one is a damaged list (a tar
/// path is at most a few KiB).
const MAX_PATH: usize = 1 << 20;

/// Buffer of a list's reader and writer.
const BUFFER: usize = 64 << 10;

/// Writes a list's records.
struct ListWriter<W> {
    out: W,
    last: String,
    count: u64,
}

impl<W: Write> ListWriter<W> {
    fn new(out: W) -> ListWriter<W> {
        ListWriter {
            out,
            last: String::new(),
            count: 0,
        }
    }

    fn push(&mut self, path: &str, sha256: &[u8; 32], sha1: &[u8; 20]) -> io::Result<()> {
        let shared = shared_prefix(&self.last, path);
        let rest = &path[shared..];
        let (Ok(shared_len), Ok(rest_len)) = (u32::try_from(shared), u32::try_from(rest.len()))
        else {
            return Err(io::Error::other("a path longer than a list holds"));
        };
        self.out.write_all(&shared_len.to_le_bytes())?;
        self.out.write_all(&rest_len.to_le_bytes())?;
        self.out.write_all(rest.as_bytes())?;
        self.out.write_all(sha256)?;
        self.out.write_all(sha1)?;
        self.last.truncate(shared);
        self.last.push_str(rest);
        self.count += 1;
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&END.to_le_bytes())?;
        self.out.write_all(&self.count.to_le_bytes())?;
        Ok(self.out)
    }
}

/// A file as a list records it: its path, its SHA-256 and its SHA-1.
type Record = (ImagePath, [u8; 32], [u8; 20]);

/// What takes each file an SBOM lists, in order: its path, SHA-256 and
/// SHA-1; an error stops the listing.
pub type EachFile<'f> = dyn FnMut(&str, &[u8; 32], &[u8; 20]) -> Result<(), String> + 'f;

/// Reads a list's records, checking each.
struct Records<R> {
    input: R,
    last: String,
    count: u64,
}

fn damaged(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("a damaged list of files: {why}"),
    )
}

impl<R: Read> Records<R> {
    fn new(input: R) -> Records<R> {
        Records {
            input,
            last: String::new(),
            count: 0,
        }
    }

    fn u32(&mut self) -> io::Result<u32> {
        let mut bytes = [0; 4];
        self.input.read_exact(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    /// The next file: its path, canonical, and its hashes; None after the
    /// last, once the count checks out.
    fn next(&mut self) -> io::Result<Option<Record>> {
        let Some((sha256, sha1)) = self.advance()? else {
            return Ok(None);
        };
        let path =
            ImagePath::from_stored(&self.last).ok_or_else(|| damaged("a path is not canonical"))?;
        Ok(Some((path, sha256, sha1)))
    }

    /// The next file's hashes, its path left in `last` (not checked
    /// canonical: [`Records::next`] has checked it, on an earlier pass);
    /// None after the last, once the count checks out.
    fn advance(&mut self) -> io::Result<Option<([u8; 32], [u8; 20])>> {
        let shared = self.u32()?;
        if shared == END {
            let mut count = [0; 8];
            self.input.read_exact(&mut count)?;
            return match u64::from_le_bytes(count) == self.count {
                true => Ok(None),
                false => Err(damaged("its count is not its length")),
            };
        }
        let shared = shared as usize;
        let rest = self.u32()? as usize;
        if !self.last.is_char_boundary(shared) || shared + rest > MAX_PATH {
            return Err(damaged("a path does not follow from the one before"));
        }
        // The rest read onto the path in place, then checked.
        let mut bytes = std::mem::take(&mut self.last).into_bytes();
        bytes.truncate(shared);
        bytes.resize(shared + rest, 0);
        self.input.read_exact(&mut bytes[shared..])?;
        self.last = String::from_utf8(bytes).map_err(|_| damaged("a path is not UTF-8"))?;
        let mut sha256 = [0; 32];
        let mut sha1 = [0; 20];
        self.input.read_exact(&mut sha256)?;
        self.input.read_exact(&mut sha1)?;
        self.count += 1;
        Ok(Some((sha256, sha1)))
    }
}

/// A layer's list, in a file of its own from `start` on: read as often as
/// it is needed, never held.
pub struct List {
    file: File,
    start: u64,
}

impl List {
    /// The list's bytes from the start, on their own cursor.
    fn bytes(&self) -> BufReader<At<'_>> {
        BufReader::with_capacity(
            BUFFER,
            At {
                file: &self.file,
                offset: self.start,
            },
        )
    }

    fn records(&self) -> Records<BufReader<At<'_>>> {
        Records::new(self.bytes())
    }

    /// Whether the list reads to its end, every record checked.
    fn is_whole(&self) -> bool {
        let mut records = self.records();
        loop {
            match records.next() {
                Ok(Some(_)) => {}
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }
}

/// A file read from `offset` on, by position: lists share no cursor.
struct At<'a> {
    file: &'a File,
    offset: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Hashes each regular file of a layer being written as its writer
/// streams it, each put on the layer's [`List`] as it ends: nothing held
/// per file. A list that could not be written is none: the SBOM then
/// reads the image back.
pub struct Hashing {
    list: Option<ListWriter<BufWriter<File>>>,
    current: Option<(Arc<str>, sha2::Sha256, sha1::Sha1)>,
}

impl Default for Hashing {
    /// A list in a temporary file that goes when it is dropped, on every
    /// path.
    fn default() -> Hashing {
        Hashing {
            list: tempfile::tempfile()
                .ok()
                .map(|f| ListWriter::new(BufWriter::with_capacity(BUFFER, f))),
            current: None,
        }
    }
}

impl Hashing {
    /// The layer's list, once its last file has ended.
    pub fn finish(self) -> Option<List> {
        let out = self.list?.finish().ok()?;
        let file = out.into_inner().ok()?;
        Some(List { file, start: 0 })
    }
}

impl ContentSink for Hashing {
    fn begin(&mut self, path: &Arc<str>) {
        self.current = Some((
            Arc::clone(path),
            sha2::Sha256::default(),
            sha1::Sha1::default(),
        ));
    }

    fn data(&mut self, chunk: &[u8]) {
        if let Some((_, sha256, sha1)) = &mut self.current {
            sha2::Digest::update(sha256, chunk);
            sha1::Digest::update(sha1, chunk);
        }
    }

    fn end(&mut self) {
        let (Some((path, sha256, sha1)), Some(list)) = (self.current.take(), &mut self.list) else {
            return;
        };
        let sha256: [u8; 32] = sha2::Digest::finalize(sha256).into();
        let sha1: [u8; 20] = sha1::Digest::finalize(sha1).into();
        if list.push(&path, &sha256, &sha1).is_err() {
            self.list = None;
        }
    }
}

fn filed_key(diff_id: &Digest) -> Digest {
    Digest::of(format!("layer files\n{diff_id}").as_bytes())
}

/// Files `list`, that of the layer `diff_id`, in `cache`. A list not
/// filed costs a later build a read of the image, not this one.
pub fn file(cache: &Cache, diff_id: &Digest, list: &List) {
    let Ok(mut draft) = cache.layer_files_draft(FILED_VERSION) else {
        return;
    };
    if io::copy(&mut list.bytes(), &mut draft).is_ok() {
        let _ = cache.put_layer_files(&filed_key(diff_id), draft);
    }
}

/// The list filed for the layer `diff_id`, if there is one, whole and of
/// this version.
pub fn filed(cache: &Cache, diff_id: &Digest) -> Option<List> {
    let (file, start) = cache.layer_files(&filed_key(diff_id), FILED_VERSION)?;
    let list = List { file, start };
    list.is_whole().then_some(list)
}

/// The own files of an image a build made, as its SBOM lists them: each
/// own layer's list, bottom first, of each the files the merged
/// filesystem has from that layer (as the build's view says), in the
/// order listed. Which those are is learnt once, a flag per file; the
/// lists are then read as often as the document needs, with no lookup and
/// no allocation per file.
pub struct AsBuilt<'a> {
    view: &'a View,
    /// Each own layer's list, with a flag per file: whether it is listed.
    layers: Vec<(List, Vec<bool>)>,
}

impl<'a> AsBuilt<'a> {
    /// The files of `layers`, each own layer's list by its index in the
    /// image, as `view` has them; an error is one reading a list.
    pub fn new(view: &'a View, layers: Vec<(usize, List)>) -> io::Result<AsBuilt<'a>> {
        let mut flagged = Vec::with_capacity(layers.len());
        for (layer, list) in layers {
            let mut listed = Vec::new();
            let mut records = list.records();
            while let Some((path, _, _)) = records.next()? {
                listed.push(view.get(&path).is_some_and(|node| {
                    node.layer == layer && matches!(node.kind, NodeKind::File { .. })
                }));
            }
            flagged.push((list, listed));
        }
        Ok(AsBuilt {
            view,
            layers: flagged,
        })
    }

    /// Hands each file listed to `each`, in order: its path, SHA-256 and
    /// SHA-1. Stops at the first error, `each`'s or one reading a list.
    pub fn each(&self, each: &mut EachFile) -> Result<(), String> {
        for (list, listed) in &self.layers {
            let mut records = list.records();
            for &listed in listed {
                let (sha256, sha1) = records
                    .advance()
                    .map_err(|e| e.to_string())?
                    .ok_or("a list of files ended early")?;
                if listed {
                    each(&records.last, &sha256, &sha1)?;
                }
            }
        }
        Ok(())
    }

    /// The package databases of the merged filesystem, with their
    /// content: the view keeps every one's (see [`View::is_watched`]).
    pub fn databases(&self) -> BTreeMap<ImagePath, (Database, Vec<u8>)> {
        let mut databases = BTreeMap::new();
        for (path, node) in self.view.iter() {
            let Some(database) = packages::database_of(path) else {
                continue;
            };
            // A database that is a hardlink is its file's content, as the
            // image read back has it: a file that is a database itself.
            let file = match &node.kind {
                NodeKind::Hardlink { target } => target,
                _ => path,
            };
            if let (Some(_), Some(bytes)) = (packages::database_of(file), self.view.content(file)) {
                databases.insert(path.clone(), (database, bytes.to_vec()));
            }
        }
        databases
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::{Change, Node};

    fn hashed(files: &[(&str, &[&[u8]])]) -> List {
        let mut hashing = Hashing::default();
        for (path, chunks) in files {
            hashing.begin(&Arc::from(*path));
            for chunk in *chunks {
                hashing.data(chunk);
            }
            hashing.end();
        }
        hashing.finish().unwrap()
    }

    fn sha1(b: &[u8]) -> [u8; 20] {
        <sha1::Sha1 as sha1::Digest>::digest(b).into()
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

    fn listed(files: &AsBuilt) -> Vec<(String, Digest, [u8; 20])> {
        let mut listed = Vec::new();
        files
            .each(&mut |path, sha256, sha1| {
                listed.push((path.to_string(), Digest::from_bytes(*sha256), *sha1));
                Ok(())
            })
            .unwrap();
        listed
    }

    #[test]
    fn a_file_is_hashed_whole_across_the_chunks_it_streams_in() {
        let list = hashed(&[("srv/a", &[b"hel", b"", b"lo"]), ("srv/empty", &[])]);
        let mut records = list.records();
        let (path, sha256, sha1_sum) = records.next().unwrap().unwrap();
        assert_eq!(path.as_rel(), "srv/a");
        assert_eq!(Digest::from_bytes(sha256), Digest::of(b"hello"));
        assert_eq!(sha1_sum, sha1(b"hello"));
        let (path, sha256, sha1_sum) = records.next().unwrap().unwrap();
        assert_eq!(path.as_rel(), "srv/empty");
        assert_eq!(Digest::from_bytes(sha256), Digest::of(b""));
        assert_eq!(sha1_sum, sha1(b""));
        assert!(records.next().unwrap().is_none());
    }

    /// Layer 0 lists five files; layer 1 writes one again and removes
    /// another: the SBOM lists layer 0's others in its order, then layer
    /// 1's, from the lists as filed in the cache as from the lists made.
    #[test]
    fn lists_read_through_the_view_give_what_the_image_has_of_each_layer() {
        let lower = hashed(&[
            ("srv/a", &[b"a"]),
            ("srv/ab", &[b"ab"]),
            ("srv/b/c", &[b"c"]),
            ("srv/gone", &[b"g"]),
            ("srv/\u{e9}t\u{e9}", &[b"e"]),
        ]);
        let upper = hashed(&[("srv/ab", &[b"AB"])]);
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
        view.apply(vec![
            Change::Whiteout(ImagePath::from_rel("srv/gone").unwrap()),
            put("srv/ab", file_node, 1),
        ]);
        let expected: Vec<(String, Digest, [u8; 20])> = [
            ("srv/a", &b"a"[..]),
            ("srv/b/c", b"c"),
            ("srv/\u{e9}t\u{e9}", b"e"),
            ("srv/ab", b"AB"),
        ]
        .iter()
        .map(|(p, c)| (p.to_string(), Digest::of(c), sha1(c)))
        .collect();

        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(tmp.path()).unwrap();
        let (lower_id, upper_id) = (Digest::of(b"lower"), Digest::of(b"upper"));
        file(&cache, &lower_id, &lower);
        file(&cache, &upper_id, &upper);
        let made = AsBuilt::new(&view, vec![(0, lower), (1, upper)]).unwrap();
        assert_eq!(listed(&made), expected);
        // Read twice, the same.
        assert_eq!(listed(&made), expected);
        let lists = vec![
            (0, filed(&cache, &lower_id).unwrap()),
            (1, filed(&cache, &upper_id).unwrap()),
        ];
        assert_eq!(listed(&AsBuilt::new(&view, lists).unwrap()), expected);

        // Another layer's diff_id has no list; a damaged list is none.
        assert!(filed(&cache, &Digest::of(b"other")).is_none());
        let path = tmp
            .path()
            .join("files")
            .join(format!("{}.summary", filed_key(&lower_id).hex()));
        let whole = std::fs::read(&path).unwrap();
        for cut in [1, 9, 40] {
            std::fs::write(&path, &whole[..whole.len() - cut]).unwrap();
            assert!(filed(&cache, &lower_id).is_none(), "{cut} bytes cut");
        }
        let mut wrong_count = whole.clone();
        let last = wrong_count.len() - 8;
        wrong_count[last] ^= 1;
        std::fs::write(&path, &wrong_count).unwrap();
        assert!(filed(&cache, &lower_id).is_none());
    }
}
