//! Walking copy sources on the host (design.md, rules 5 and 6).
//!
//! Only regular files, directories and symlinks are accepted; hardlinks
//! become regular files; xattrs, host owners and times are never read; names
//! must be UTF-8. Directory listings are sorted so creation order is moot.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub use crate::store::cache::FileStat;

/// One host entry under a copy source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    /// Path relative to the source root, `/`-separated; "" for the root.
    pub rel: String,
    pub kind: SourceKind,
    /// The permission bits on the host (`0o7777`): read only by a copy
    /// that keeps them, which the cache key then records.
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    Dir,
    /// A regular file; `executable` when the owner may execute it.
    File {
        path: PathBuf,
        size: u64,
        executable: bool,
        /// What the walk saw, so a file's cached digest is found without
        /// another stat.
        stat: FileStat,
    },
    Symlink {
        target: String,
    },
}

/// Walks of copy sources, by the root they were walked from.
pub type Walks = std::collections::HashMap<PathBuf, Vec<SourceEntry>>;

/// Lists `root` (a file or a directory tree), parents before children.
/// The error names the offending host path.
pub fn walk(root: &Path) -> Result<Vec<SourceEntry>, String> {
    let mut out = Vec::new();
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
            .ok_or_else(|| format!("copy source {} has a non-UTF-8 name", path.display()))?
            .to_string();
        // The kind comes with the directory listing; only regular files
        // need a stat (size, mode, and the identity the cache keys on).
        let ft = item.file_type();
        let mut mode = 0o777;
        let kind = if ft.is_dir() {
            let meta = item
                .metadata()
                .map_err(|e| format!("reading copy source {}: {e}", path.display()))?;
            mode = meta.permissions().mode() & 0o7777;
            SourceKind::Dir
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
            SourceKind::File {
                path: path.to_path_buf(),
                size: meta.len(),
                executable: meta.permissions().mode() & 0o100 != 0,
                stat: FileStat::of(&meta),
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(path)
                .map_err(|e| format!("reading symlink {}: {e}", path.display()))?;
            let target = target
                .to_str()
                .ok_or_else(|| format!("symlink {} has a non-UTF-8 target", path.display()))?
                .to_string();
            SourceKind::Symlink { target }
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
        out.push(SourceEntry { rel, kind, mode });
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
            .into_iter()
            .map(|e| e.rel)
            .collect();
        assert_eq!(rels, ["", "a", "b", "b/z", "c"]);

        let _sock = std::os::unix::net::UnixListener::bind(dir.path().join("s")).unwrap();
        let err = walk(dir.path()).unwrap_err();
        assert!(err.contains("socket") && err.contains("/s"), "{err}");
    }
}
