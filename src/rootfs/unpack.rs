//! Writes a view's merged tree to disk: the root filesystem of a runtime
//! bundle.
//!
//! Whiteouts never reach the disk. The finished [`View`] already says what
//! the image holds and which layer last wrote each file, so the tree is
//! laid out from it (directories and symlinks first), and each file's
//! content is copied from the one layer whose version survives. Nothing is
//! written through a symlink: an entry below a symlink is refused, and
//! every directory on disk is one this module created.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use super::meta::{ImagePath, encode_name};
use super::{NodeKind, View};

/// What an unpack wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Unpacked {
    pub files: u64,
    pub bytes: u64,
    /// Devices, fifos and sockets are not created: a runtime supplies /dev.
    pub skipped_special: u64,
    /// Whether owners were set (only root may).
    pub owners: bool,
}

/// An unpack in progress: [`start`](Unpack::start), then one
/// [`layer`](Unpack::layer) call per layer in order, then
/// [`finish`](Unpack::finish).
pub struct Unpack<'a> {
    view: &'a View,
    dest: PathBuf,
    replay: View,
    done: Unpacked,
}

/// A file being written, whose errors say so: a full disk is told apart
/// from a layer that cannot be read.
struct Writing(fs::File);

impl io::Write for Writing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .write(buf)
            .map_err(|e| io::Error::new(e.kind(), format!("writing: {e}")))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> Unpack<'a> {
    /// Creates every directory and symlink of `view` under `dest`, an
    /// existing empty directory.
    pub fn start(view: &'a View, dest: &Path) -> Result<Unpack<'a>, String> {
        let mut done = Unpacked::default();
        for (path, node) in view.iter() {
            if path.is_root() {
                continue;
            }
            ensure_parents(view, dest, path)?;
            let at = on_disk(dest, path);
            let made = match &node.kind {
                NodeKind::Dir => fs::create_dir(&at),
                NodeKind::Symlink { target } => {
                    symlink(OsStr::from_bytes(&encode_name(target)), &at)
                }
                NodeKind::Special => {
                    done.skipped_special += 1;
                    Ok(())
                }
                NodeKind::File { .. } | NodeKind::Hardlink { .. } => Ok(()),
            };
            made.map_err(|e| format!("creating {path}: {e}"))?;
        }
        Ok(Unpack {
            view,
            dest: dest.to_path_buf(),
            replay: View::new(),
            done,
        })
    }

    /// Reads the next layer's tar, writing the files whose surviving
    /// version it holds.
    pub fn layer(&mut self, tar: impl Read) -> Result<(), String> {
        let index = self.replay.layer_count();
        let (view, dest, done) = (self.view, &self.dest, &mut self.done);
        let changes = self.replay.read_tar(tar, &mut |path, data| {
            let survives = view
                .get(path)
                .is_some_and(|n| n.layer == index && matches!(n.kind, NodeKind::File { .. }));
            if !survives {
                return Ok(());
            }
            let file = fs::File::create(on_disk(dest, path))
                .map_err(|e| io::Error::new(e.kind(), format!("creating the file: {e}")))?;
            done.bytes += io::copy(data, &mut Writing(file))?;
            done.files += 1;
            Ok(())
        })?;
        self.replay.apply(changes);
        Ok(())
    }

    /// Creates the hardlinks, then sets owners and modes, deepest paths
    /// first so that a read-only directory is closed only once filled.
    pub fn finish(mut self) -> Result<Unpacked, String> {
        let mut pending: Vec<(&ImagePath, &ImagePath)> = self
            .view
            .iter()
            .filter_map(|(p, n)| match &n.kind {
                NodeKind::Hardlink { target } => Some((p, target)),
                _ => None,
            })
            .collect();
        // A link may name another link that sorts after it.
        while !pending.is_empty() {
            let before = pending.len();
            let mut left = Vec::new();
            for (path, target) in pending {
                let from = on_disk(&self.dest, target);
                if fs::symlink_metadata(&from).is_ok_and(|m| m.is_file()) {
                    fs::hard_link(&from, on_disk(&self.dest, path))
                        .map_err(|e| format!("linking {path} to {target}: {e}"))?;
                    self.done.files += 1;
                } else {
                    left.push((path, target));
                }
            }
            if left.len() == before {
                let (path, target) = left[0];
                return Err(format!(
                    "hardlink {path} points at {target}, which the image does not have as a file"
                ));
            }
            pending = left;
        }
        self.done.owners = true;
        let nodes: Vec<_> = self.view.iter().collect();
        for (path, node) in nodes.into_iter().rev() {
            if matches!(node.kind, NodeKind::Special) {
                continue;
            }
            let at = on_disk(&self.dest, path);
            if self.done.owners {
                let (uid, gid) = (ids(node.uid, path)?, ids(node.gid, path)?);
                match std::os::unix::fs::lchown(&at, Some(uid), Some(gid)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                        self.done.owners = false;
                    }
                    Err(e) => return Err(format!("setting the owner of {path}: {e}")),
                }
            }
            if !matches!(node.kind, NodeKind::Symlink { .. }) {
                // After chown, which clears setuid bits.
                fs::set_permissions(&at, fs::Permissions::from_mode(node.mode))
                    .map_err(|e| format!("setting the mode of {path}: {e}"))?;
            }
        }
        Ok(self.done)
    }
}

fn ids(id: u64, path: &ImagePath) -> Result<u32, String> {
    u32::try_from(id).map_err(|_| format!("{path}: owner id {id} is out of range"))
}

/// `path` under `dest`, its escaped bytes restored.
fn on_disk(dest: &Path, path: &ImagePath) -> PathBuf {
    dest.join(OsStr::from_bytes(&encode_name(path.as_rel())))
}

/// Makes sure every ancestor of `path` is a directory on disk: one the
/// view has (already created, as paths come in order) or one the layers
/// left implicit (created now, root's, 0755). An ancestor that is a
/// symlink or a file makes the entry unreachable without following it.
fn ensure_parents(view: &View, dest: &Path, path: &ImagePath) -> Result<(), String> {
    for ancestor in path.ancestors() {
        match view.get(&ancestor).map(|n| &n.kind) {
            Some(NodeKind::Dir) => {}
            None => {
                let at = on_disk(dest, &ancestor);
                match fs::symlink_metadata(&at) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => return Err(format!("{ancestor} is not a directory on disk")),
                    Err(_) => {
                        fs::create_dir(&at).map_err(|e| format!("creating {ancestor}: {e}"))?;
                        fs::set_permissions(&at, fs::Permissions::from_mode(0o755))
                            .map_err(|e| format!("creating {ancestor}: {e}"))?;
                    }
                }
            }
            Some(_) => {
                return Err(format!(
                    "{path} lies below {ancestor}, which is not a directory in the image"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::{Change, Node};

    /// A tar with `entries` of (name, kind, data/target).
    fn tar(entries: &[(&str, char, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_mode(if *kind == 'd' { 0o755 } else { 0o644 });
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(0);
            match kind {
                'd' => h.set_entry_type(tar::EntryType::Directory),
                'l' => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_link_name(data).unwrap();
                }
                'h' => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_link_name(data).unwrap();
                }
                _ => h.set_size(data.len() as u64),
            }
            let body: &[u8] = if *kind == 'f' { data.as_bytes() } else { b"" };
            b.append_data(&mut h, name, body).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn a_full_disk_is_not_called_a_corrupt_layer() {
        let layer = tar(&[("srv", 'd', ""), ("srv/data", 'f', "some bytes")]);
        let full = View::new()
            .read_tar(&layer[..], &mut |_, data| {
                io::copy(data, &mut Writing(fs::File::create("/dev/full")?)).map(drop)
            })
            .unwrap_err();
        assert!(!full.contains("corrupt"), "{full}");
        assert!(full.contains("/srv/data: writing: No space left"), "{full}");

        // Cut inside the file's data: that one is the layer's fault.
        let cut = &layer[..512 * 2 + 4];
        let corrupt = View::new()
            .read_tar(cut, &mut |_, data| {
                io::copy(data, &mut io::sink()).map(drop)
            })
            .unwrap_err();
        assert!(corrupt.starts_with("corrupt layer tar"), "{corrupt}");
    }

    fn unpack(layers: &[Vec<u8>]) -> Result<tempfile::TempDir, String> {
        let mut view = View::new();
        for l in layers {
            view.apply_tar(&l[..])?;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut u = Unpack::start(&view, dir.path())?;
        for l in layers {
            u.layer(&l[..])?;
        }
        u.finish()?;
        Ok(dir)
    }

    #[test]
    fn lays_out_the_merged_tree() {
        let lower = tar(&[
            ("etc", 'd', ""),
            ("etc/a", 'f', "lower a"),
            ("etc/b", 'f', "lower b"),
            ("gone", 'd', ""),
            ("gone/x", 'f', "x"),
            ("implied/deep/file", 'f', "deep"),
        ]);
        let upper = tar(&[
            ("etc/a", 'f', "upper a"),
            ("etc/.wh.b", 'f', ""),
            ("gone/.wh..wh..opq", 'f', ""),
            ("gone/y", 'f', "y"),
            ("link", 'l', "etc/a"),
            ("hard", 'h', "etc/a"),
        ]);
        let dir = unpack(&[lower, upper]).unwrap();
        let read = |p: &str| fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(read("etc/a"), "upper a");
        assert!(!dir.path().join("etc/b").exists());
        assert!(!dir.path().join("gone/x").exists());
        assert_eq!(read("gone/y"), "y");
        assert_eq!(read("implied/deep/file"), "deep");
        assert_eq!(
            fs::read_link(dir.path().join("link")).unwrap(),
            Path::new("etc/a")
        );
        assert_eq!(read("hard"), "upper a");
    }

    #[test]
    fn never_writes_through_a_symlink() {
        // A layer whose entry lies below a symlink to the host's /tmp is
        // read as runtimes read it: the entry lands in the image's /tmp.
        let layer = tar(&[("out", 'l', "/tmp"), ("out/evil", 'f', "x")]);
        let dir = unpack(&[layer]).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("tmp/evil")).unwrap(),
            "x"
        );
        assert!(
            fs::symlink_metadata(dir.path().join("out"))
                .unwrap()
                .is_symlink()
        );

        // A view holding a path below a symlink is refused.
        let node = |kind| Node {
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            layer: 0,
            capability: false,
        };
        let mut view = View::new();
        view.apply(vec![
            Change::Put(
                "/out".parse().unwrap(),
                node(NodeKind::Symlink {
                    target: "/tmp".into(),
                }),
                None,
            ),
            Change::Put("/out/sub".parse().unwrap(), node(NodeKind::Dir), None),
        ]);
        let dest = tempfile::tempdir().unwrap();
        let err = Unpack::start(&view, dest.path()).err().unwrap();
        assert!(err.contains("/out/sub lies below /out"), "{err}");
    }
}
