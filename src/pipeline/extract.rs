//! Reading a recipe's `extract` archives: a tar (plain, gzip, xz or zstd,
//! told by its magic) read as a base layer is read, through
//! [`View::read_tar_with`] and so every hostile-input check of
//! `src/layer/bounds.rs` and the layer reading (names escaping with `..`
//! or absolute, hardlinks to nothing, absurd sizes, names readers
//! disagree on, entry and header bounds), with the archive as its own
//! root. On top of those, an archive may not write through a symlink (one
//! of its own entries, planted to lead elsewhere: bsdtar refuses the same)
//! and holds no whiteouts. Device nodes and fifos are read and checked as
//! a base's are, then left out: an image carries none (a runtime supplies
//! `/dev`). File content is staged until the layer is written.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;

use crate::debian::deb::{self, Compression};
use crate::layer::{Content, WHITEOUT_PREFIX};
use crate::recipe::Recipe;
use crate::rootfs::meta::ImagePath;
use crate::rootfs::{Change, Node, NodeKind, Unpacking, View};
use crate::store::file::{self, Links};
use crate::store::workdir::WorkDir;

/// The most file content one archive may unpack (a bomb stops here).
pub const MAX_BYTES: u64 = 16 << 30;

/// One archive, read.
pub struct Archive {
    /// What it puts, in its order: paths relative to the archive's root,
    /// with each file's staged content.
    pub entries: Vec<(ImagePath, Node, Option<Content>)>,
    /// Device nodes and fifos left out.
    pub skipped: Vec<ImagePath>,
    /// Keeps the staged content until the layer is written.
    pub dir: WorkDir,
}

/// How an archive is compressed, by its first bytes.
fn compression(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Reads the archive `src` of `recipe`; an error names the archive and,
/// where there is one, the entry.
pub fn read(recipe: &Recipe, src: &str) -> Result<Archive, String> {
    let path = recipe.resolve_src(src)?;
    let fail = |m: String| format!("archive {src}: {m}");
    let opened = file::open_regular(&path, Links::Follow).map_err(|e| fail(e.to_string()))?;
    let mut buffered = BufReader::new(opened);
    let head = buffered.fill_buf().map_err(|e| fail(e.to_string()))?;
    let how = compression(head);
    let tar = deb::decoder(how, buffered).map_err(|e| fail(e.to_string()))?;

    let dir = WorkDir::new_in(&std::env::temp_dir(), ".ingot-extract-", 0o700)
        .map_err(|e| fail(format!("creating a staging directory: {e}")))?;
    let mut staged: HashMap<ImagePath, (PathBuf, u64)> = HashMap::new();
    let mut names = Vec::new();
    let (mut next, mut total) = (0u64, 0u64);
    let mut on_name = |name: &ImagePath| -> Result<(), String> {
        if name.components().any(|c| c.starts_with(WHITEOUT_PREFIX)) {
            return Err(format!(
                "entry {name} is a whiteout ({WHITEOUT_PREFIX}), which an archive to extract may not hold"
            ));
        }
        if name.as_rel().contains('\0') {
            return Err(format!("entry {name} has a name that is not UTF-8"));
        }
        if !name.is_root() {
            names.push(name.clone());
        }
        Ok(())
    };
    let mut on_file = |at: &ImagePath, data: &mut dyn Read| -> io::Result<()> {
        let file = dir.path().join(next.to_string());
        next += 1;
        let mut out = std::fs::File::create(&file)?;
        let room = MAX_BYTES - total;
        let size = io::copy(&mut data.take(room + 1), &mut out)?;
        if size > room {
            return Err(io::Error::other(format!(
                "the archive unpacks to more than {MAX_BYTES} bytes of files (the extract limit)"
            )));
        }
        out.flush()?;
        total += size;
        staged.insert(at.clone(), (file, size));
        Ok(())
    };
    let changes = View::new()
        .read_tar_with(tar, Unpacking::Layer, &mut on_name, &mut on_file)
        .map_err(|reason| fail(reason.replace("layer entry", "entry")))?;

    let mut entries = Vec::with_capacity(changes.len());
    let mut skipped = Vec::new();
    // Every entry but the root is one change, in order.
    for (name, change) in names.iter().zip(changes) {
        let Change::Put(at, node, _) = change else {
            return Err(fail(format!("entry {name} is a whiteout")));
        };
        if at != *name {
            return Err(fail(format!(
                "entry {name} is written through a symlink (to {at}); refused"
            )));
        }
        let content = match &node.kind {
            NodeKind::File { .. } => {
                let (file, size) = staged
                    .get(&at)
                    .ok_or_else(|| fail(format!("entry {name}: its content was not read")))?;
                Some(Content::Path {
                    path: file.clone(),
                    size: *size,
                })
            }
            NodeKind::Special => {
                skipped.push(at);
                continue;
            }
            _ => None,
        };
        entries.push((at, node, content));
    }
    Ok(Archive {
        entries,
        skipped,
        dir,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_told_by_magic() {
        assert!(matches!(compression(b"\x1f\x8b\x08"), Compression::Gzip));
        assert!(matches!(compression(b"\xfd7zXZ\0\0"), Compression::Xz));
        assert!(matches!(
            compression(b"\x28\xb5\x2f\xfd"),
            Compression::Zstd
        ));
        assert!(matches!(compression(b"etc/\0\0"), Compression::None));
        assert!(matches!(compression(b""), Compression::None));
    }
}
