//! Walking copy sources on the host (design.md, rules 5 and 6).
//!
//! Only regular files, directories and symlinks are accepted; hardlinks
//! become regular files; xattrs, host owners and times are never read; names
//! must be UTF-8. Directory listings are sorted so creation order is moot.
//!
//! A walk is held compactly, as a tree of 300,000 files has to be (issue
//! 19): every relative path and symlink target in one string, one
//! fixed-size record per entry, and no host path kept: a file's is its
//! root joined with its relative path, made when it is read.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use crate::store::cache::FileStat;

/// A walked copy source: its entries, parents before children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    root: PathBuf,
    /// Each entry's relative path, a symlink's target right after it.
    text: String,
    records: Vec<Record>,
}

/// One entry of a [`Walk`]: where its path (and target) lie in the text,
/// and what the walk saw of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    start: u32,
    rel_len: u32,
    target_len: u32,
    kind: Kind,
    /// The permission bits on the host (`0o7777`).
    mode: u16,
    /// For a file, what its stat said; zero for the others.
    stat: FileStat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
}

/// One host entry under a copy source, as a [`Walk`] hands it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceEntry<'a> {
    /// Path relative to the source root, `/`-separated; "" for the root.
    pub rel: &'a str,
    pub kind: SourceKind<'a>,
    /// The permission bits on the host (`0o7777`): read only by a copy
    /// that keeps them, which the cache key then records.
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind<'a> {
    Dir,
    /// A regular file; `executable` when the owner may execute it.
    File {
        size: u64,
        executable: bool,
        /// What the walk saw, so a file's cached digest is found without
        /// another stat.
        stat: FileStat,
    },
    Symlink {
        target: &'a str,
    },
}

/// Walks of copy sources, by the root they were walked from.
pub type Walks = std::collections::HashMap<PathBuf, Walk>;

impl Walk {
    /// The root the walk started from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The entries, in walk order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = SourceEntry<'_>> + '_ {
        self.records.iter().map(|r| self.entry(r))
    }

    /// The first entry: the root itself.
    pub fn first(&self) -> Option<SourceEntry<'_>> {
        self.records.first().map(|r| self.entry(r))
    }

    /// Where the entry at `rel` is on the host.
    pub fn host_path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(rel)
        }
    }

    fn entry(&self, r: &Record) -> SourceEntry<'_> {
        let start = r.start as usize;
        let rel_end = start + r.rel_len as usize;
        let rel = &self.text[start..rel_end];
        let kind = match r.kind {
            Kind::Dir => SourceKind::Dir,
            Kind::File => SourceKind::File {
                size: r.stat.size,
                executable: r.mode & 0o100 != 0,
                stat: r.stat,
            },
            Kind::Symlink => SourceKind::Symlink {
                target: &self.text[rel_end..rel_end + r.target_len as usize],
            },
        };
        SourceEntry {
            rel,
            kind,
            mode: u32::from(r.mode),
        }
    }

    /// Adds an entry; its texts must keep the walk's text within the u32
    /// offsets its records use.
    fn push(
        &mut self,
        rel: &str,
        target: &str,
        kind: Kind,
        mode: u32,
        stat: FileStat,
    ) -> Result<(), String> {
        let too_long = || {
            format!(
                "copy source {} has more than 4 GiB of names",
                self.root.display()
            )
        };
        let start = u32::try_from(self.text.len()).map_err(|_| too_long())?;
        let rel_len = u32::try_from(rel.len()).map_err(|_| too_long())?;
        let target_len = u32::try_from(target.len()).map_err(|_| too_long())?;
        if self.text.len() + rel.len() + target.len() > u32::MAX as usize {
            return Err(too_long());
        }
        self.text.push_str(rel);
        self.text.push_str(target);
        self.records.push(Record {
            start,
            rel_len,
            target_len,
            kind,
            // Masked to 0o7777, so it fits.
            mode: (mode & 0o7777) as u16,
            stat,
        });
        Ok(())
    }
}

/// Lists `root` (a file or a directory tree), parents before children.
/// The error names the offending host path.
pub fn walk(root: &Path) -> Result<Walk, String> {
    let mut out = Walk {
        root: root.to_path_buf(),
        text: String::new(),
        records: Vec::new(),
    };
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by(|a, b| {
            a.file_name()
                .as_encoded_bytes()
                .cmp(b.file_name().as_encoded_bytes())
        });
    for item in walker {
        let item = item.map_err(|e| {
            let path = e
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            format!("reading copy source {path}: {e}")
        })?;
        let path = item.path();
        let rel = path
            .strip_prefix(root)
            .map_err(|_| format!("{} is outside {}", path.display(), root.display()))?;
        let rel = rel
            .to_str()
            .ok_or_else(|| format!("copy source {} has a non-UTF-8 name", path.display()))?;
        // The kind comes with the directory listing; only regular files
        // need a stat (size, mode, and the identity the cache keys on).
        let ft = item.file_type();
        let mut mode = 0o777;
        let mut stat = FileStat::default();
        let mut target = String::new();
        let kind = if ft.is_dir() {
            let meta = item
                .metadata()
                .map_err(|e| format!("reading copy source {}: {e}", path.display()))?;
            mode = meta.permissions().mode() & 0o7777;
            Kind::Dir
        } else if ft.is_file() {
            let meta = item
                .metadata()
                .map_err(|e| format!("reading copy source {}: {e}", path.display()))?;
            // Checked again: the file may have been replaced since listing.
            if !meta.is_file() {
                return Err(format!(
                    "copy source {} changed while it was read",
                    path.display()
                ));
            }
            mode = meta.permissions().mode() & 0o7777;
            stat = FileStat::of(&meta);
            Kind::File
        } else if ft.is_symlink() {
            let link = std::fs::read_link(path)
                .map_err(|e| format!("reading symlink {}: {e}", path.display()))?;
            target = link
                .into_os_string()
                .into_string()
                .map_err(|_| format!("symlink {} has a non-UTF-8 target", path.display()))?;
            Kind::Symlink
        } else {
            let what = if ft.is_block_device() || ft.is_char_device() {
                "a device node"
            } else if ft.is_socket() {
                "a socket"
            } else if ft.is_fifo() {
                "a fifo"
            } else {
                "not a regular file, directory or symlink"
            };
            return Err(format!(
                "copy source {} is {what}; only regular files, directories and symlinks can be copied",
                path.display()
            ));
        };
        out.push(rel, &target, kind, mode, stat)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sorted_and_refuses_sockets() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::fs::write(dir.path().join("b/z"), "z").unwrap();
        std::fs::write(dir.path().join("a"), "a").unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("c")).unwrap();
        let rels: Vec<String> = walk(dir.path())
            .unwrap()
            .iter()
            .map(|e| e.rel.to_string())
            .collect();
        assert_eq!(rels, ["", "a", "b", "b/z", "c"]);

        let _sock = std::os::unix::net::UnixListener::bind(dir.path().join("s")).unwrap();
        let err = walk(dir.path()).unwrap_err();
        assert!(err.contains("socket") && err.contains("/s"), "{err}");
    }
}
