//! Work directories that a killed process cannot leave behind for good.
//!
//! Everything ingot writes before publishing it (a build's or a pull's
//! staging beside its output, a bundle being unpacked, a package layer's
//! contents) goes into a [`WorkDir`]: a temp directory `<prefix><random>`
//! holding a lock file that its process keeps locked (`flock`, exclusive)
//! for as long as it lives. A clean exit, an error or a panic removes the
//! directory as it drops. A `kill -9`, an abort or a stack overflow cannot,
//! but the kernel drops the lock whatever way the process dies: the next
//! work directory made in the same place first [`sweep`]s its siblings, and
//! removes each one whose lock it can take, since nobody holds it.
//!
//! A work directory takes its name only once it holds its lock file, itself
//! locked under a temp name and renamed in, so a directory is never taken
//! for dead while its owner starts. One without a lock file is a start cut
//! short (still under its `.ingot-new-` name), one being published (the
//! file is removed just before the rename into place), or one an older
//! ingot made: it is left alone unless untouched for [`ORPHAN_AGE`].

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::file::{Links, open_regular};

/// The lock file in a work directory.
pub const OWNER_FILE: &str = ".ingot-owner";

/// How long a work directory without a lock file must be untouched before
/// a sweep takes it for an orphan.
pub const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// Where a work directory is made, before it takes its name: a directory
/// under its final name always holds its lock file.
const NEW_PREFIX: &str = ".ingot-new-";

/// A temp directory owned by this process; removed when dropped.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
    /// Held locked while the directory lives; None once kept.
    owner: Option<File>,
}

impl WorkDir {
    /// Creates `parent/<prefix><random>` (mode `mode`), after sweeping the
    /// dead work directories of the same prefix out of `parent`.
    pub fn new_in(parent: &Path, prefix: &str, mode: u32) -> io::Result<WorkDir> {
        use std::os::unix::fs::PermissionsExt;
        sweep(parent, prefix);
        sweep(parent, NEW_PREFIX);
        let fresh = tempfile::Builder::new()
            .prefix(NEW_PREFIX)
            .permissions(std::fs::Permissions::from_mode(mode))
            .tempdir_in(parent)?;
        let pending = tempfile::Builder::new()
            .prefix(".ingot-owner-")
            .tempfile_in(fresh.path())?;
        pending.as_file().lock()?;
        let owner = pending
            .persist(fresh.path().join(OWNER_FILE))
            .map_err(|e| e.error)?;
        let random = fresh
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().replacen(NEW_PREFIX, "", 1))
            .unwrap_or_default();
        let path = parent.join(format!("{prefix}{random}"));
        std::fs::rename(fresh.path(), &path)?;
        let _ = fresh.keep();
        Ok(WorkDir {
            path,
            owner: Some(owner),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the directory up, to be renamed into place: its lock file is
    /// removed (it must not be published) and the lock released. The
    /// caller removes the directory if the rename fails.
    pub fn keep(mut self) -> io::Result<PathBuf> {
        std::fs::remove_file(self.path.join(OWNER_FILE))?;
        self.owner = None;
        Ok(self.path.clone())
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.owner.is_some() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Removes the work directories of `prefix` in `parent` that no live
/// process owns; returns them. Errors only cost the litter its removal.
pub fn sweep(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    dead(parent, prefix)
        .into_iter()
        .filter(|dir| std::fs::remove_dir_all(dir).is_ok())
        .collect()
}

/// The work directories of `prefix` in `parent` that no live process owns.
pub fn dead(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|dir| is_dead(dir))
        .collect();
    found.sort();
    found
}

/// Whether the work directory `dir` has no live owner: its lock can be
/// taken, or it has no lock file and is old. (A lock taken here is let go
/// at once: no process takes a dead directory's lock to use it.)
fn is_dead(dir: &Path) -> bool {
    // Not blocking on a FIFO, not following a symlink: the directory is
    // anybody's who can write its parent.
    match open_regular(&dir.join(OWNER_FILE), Links::Refuse) {
        Ok(owner) => owner.try_lock().is_ok(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => untouched_for(dir, ORPHAN_AGE),
        Err(_) => false,
    }
}

// Housekeeping only: the clock decides what litter goes, never what an
// image holds.
#[allow(clippy::disallowed_methods)]
fn untouched_for(dir: &Path, age: Duration) -> bool {
    std::fs::symlink_metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|d| d >= age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_work_dir_is_kept_and_a_dead_one_swept() {
        let parent = tempfile::tempdir().unwrap();
        let live = WorkDir::new_in(parent.path(), ".w-", 0o700).unwrap();
        std::fs::write(live.path().join("blob"), b"x").unwrap();
        assert_eq!(sweep(parent.path(), ".w-"), Vec::<PathBuf>::new());
        assert!(live.path().join("blob").exists());

        // What a killed process leaves: the directory and an unlocked
        // lock file.
        let dead = parent.path().join(".w-dead");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(OWNER_FILE), b"").unwrap();
        std::fs::write(dead.join("blob"), b"x").unwrap();
        // Starting (no lock file yet) and recent: left alone.
        let starting = parent.path().join(".w-starting");
        std::fs::create_dir(&starting).unwrap();
        // Another prefix: none of this sweep's business.
        let other = parent.path().join(".v-dead");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join(OWNER_FILE), b"").unwrap();

        assert_eq!(sweep(parent.path(), ".w-"), vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(starting.exists() && other.exists());
        assert!(live.path().exists());
    }

    #[test]
    fn a_kept_work_dir_has_no_lock_file_and_a_dropped_one_is_gone() {
        let parent = tempfile::tempdir().unwrap();
        let work = WorkDir::new_in(parent.path(), ".w-", 0o700).unwrap();
        let path = work.path().to_path_buf();
        drop(work);
        assert!(!path.exists());

        let work = WorkDir::new_in(parent.path(), ".w-", 0o700).unwrap();
        let kept = work.keep().unwrap();
        assert!(kept.is_dir());
        assert!(!kept.join(OWNER_FILE).exists());
    }

    #[test]
    fn a_panic_removes_the_work_dir_it_unwinds_through() {
        let parent = tempfile::tempdir().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let unwound = std::panic::catch_unwind(move || {
            let work = WorkDir::new_in(parent.path(), ".w-", 0o700).unwrap();
            std::fs::write(work.path().join("blob"), b"x").unwrap();
            tx.send((parent, work.path().to_path_buf())).unwrap();
            panic!("mid-build");
        });
        assert!(unwound.is_err());
        let (parent, path) = rx.recv().unwrap();
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(parent.path()).unwrap().count(), 0);
    }

    #[test]
    #[allow(clippy::disallowed_methods)]
    fn an_orphan_without_a_lock_file_goes_once_old() {
        let parent = tempfile::tempdir().unwrap();
        let orphan = parent.path().join(".w-old");
        std::fs::create_dir(&orphan).unwrap();
        let old = SystemTime::now() - ORPHAN_AGE - Duration::from_secs(60);
        File::open(&orphan).unwrap().set_modified(old).unwrap();
        assert_eq!(sweep(parent.path(), ".w-"), vec![orphan]);
    }
}
