//! Walking copy sources on the host (design.md, rules 5 and 6).
//!
//! Only regular files, directories and symlinks are accepted; hardlinks
//! become regular files; xattrs, host owners and times are never read; names
//! must be UTF-8. Directory listings are sorted so creation order is moot.
//!
//! A walk is held compactly, as a tree of 300,000 files has to be (issue
//! 19): relative paths and symlink targets back to back in a string per
//! [`CHUNK`] entries, one fixed-size record per entry, and no host path
//! kept: a file's is its root joined with its relative path, made when it
//! is read. Planning takes a walk chunk by chunk ([`Walk::drain`]), so
//! the walk shrinks as the plan grows.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub use crate::store::cache::FileStat;

/// A walked copy source: its entries, parents before children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    root: PathBuf,
    /// The entries, [`CHUNK`] a chunk.
    chunks: Vec<Chunk>,
    len: usize,
    /// Each entry's stat identity, by position, until
    /// [`Walk::forget_identities`]: the cache key needs it, planning not.
    ids: Vec<Identity>,
}

impl Identity {
    fn of(stat: &FileStat) -> Identity {
        Identity {
            mtime_ns: stat.mtime_ns,
            ctime_ns: stat.ctime_ns,
            inode: stat.inode,
            dev: stat.dev,
        }
    }
}

/// Entries a [`Walk`] chunk holds: the last may hold fewer.
const CHUNK: usize = 4096;

/// [`CHUNK`] entries of a [`Walk`]: each entry's relative path, a
/// symlink's target right after it, and its record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Chunk {
    text: String,
    records: Vec<Record>,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            text: String::new(),
            records: Vec::with_capacity(CHUNK),
        }
    }

    fn entry(&self, r: &Record, id: Option<&Identity>) -> SourceEntry<'_> {
        let start = r.start as usize;
        let rel_end = start + r.rel_len as usize;
        let rel = &self.text[start..rel_end];
        let kind = match r.kind {
            Kind::Dir => SourceKind::Dir,
            Kind::File => SourceKind::File {
                size: r.size,
                executable: r.mode & 0o100 != 0,
                stat: id.map(|id| FileStat {
                    size: r.size,
                    mtime_ns: id.mtime_ns,
                    ctime_ns: id.ctime_ns,
                    inode: id.inode,
                    dev: id.dev,
                }),
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
}

/// One entry of a [`Walk`]: where its path (and target) lie in its chunk's
/// text, and what the walk saw of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    start: u32,
    rel_len: u32,
    target_len: u32,
    kind: Kind,
    /// The permission bits on the host (`0o7777`).
    mode: u16,
    /// For a file, its size; zero for the others.
    size: u64,
}

/// What a file's stat said besides its size, for the stat index to know
/// it by; zero for the others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Identity {
    mtime_ns: i64,
    ctime_ns: i64,
    inode: u64,
    dev: u64,
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
        /// another stat; None once the walk forgot it.
        stat: Option<FileStat>,
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
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries, in walk order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = SourceEntry<'_>> + '_ {
        (0..self.len).map(|i| self.get(i))
    }

    /// The entry at position `i` of the walk; `i` must be below its length.
    pub fn get(&self, i: usize) -> SourceEntry<'_> {
        let chunk = &self.chunks[i / CHUNK];
        chunk.entry(&chunk.records[i % CHUNK], self.ids.get(i))
    }

    /// The first entry: the root itself.
    pub fn first(&self) -> Option<SourceEntry<'_>> {
        (!self.is_empty()).then(|| self.get(0))
    }

    /// Hands each entry to `each`, in walk order, freeing each chunk of
    /// the walk once its entries are passed; stops at the first error.
    pub fn drain<E>(self, mut each: impl FnMut(SourceEntry) -> Result<(), E>) -> Result<(), E> {
        let mut ids = self.ids.iter();
        for chunk in self.chunks {
            for r in &chunk.records {
                each(chunk.entry(r, ids.next()))?;
            }
        }
        Ok(())
    }

    /// Drops what the walk holds of each file's stat beyond its size (32
    /// of the 56 bytes an entry took): once the layer's key is made,
    /// planning needs only the size, and a tree of 300,000 files is
    /// planned with its walk held (issue 19).
    pub fn forget_identities(&mut self) {
        self.ids = Vec::new();
    }

    /// Where the entry at `rel` is on the host.
    pub fn host_path(&self, rel: &str) -> PathBuf {
        let mut path = PathBuf::new();
        self.host_path_into(rel, &mut path);
        path
    }

    /// [`Walk::host_path`], made in `path` (its old value cleared): one
    /// buffer for a lookup per file rather than an allocation each.
    pub fn host_path_into(&self, rel: &str, path: &mut PathBuf) {
        path.clone_from(&self.root);
        if !rel.is_empty() {
            path.push(rel);
        }
    }

    /// Adds the entry at host `path`, `rel` below the root, reading a
    /// symlink's target.
    fn push_entry(&mut self, path: &Path, rel: &str, seen: Seen) -> Result<(), String> {
        let target = match seen.kind {
            Kind::Symlink => std::fs::read_link(path)
                .map_err(|e| format!("reading symlink {}: {e}", path.display()))?
                .into_os_string()
                .into_string()
                .map_err(|_| format!("symlink {} has a non-UTF-8 target", path.display()))?,
            _ => String::new(),
        };
        self.push(rel, &target, seen.kind, seen.mode, seen.stat)
    }

    /// Fills in the mode and stat of record `index`, which the walk
    /// recorded before its stat came back.
    fn fill(&mut self, index: usize, seen: Seen) {
        let record = self
            .chunks
            .get_mut(index / CHUNK)
            .and_then(|c| c.records.get_mut(index % CHUNK));
        if let (Some(record), Some(id)) = (record, self.ids.get_mut(index)) {
            record.mode = (seen.mode & 0o7777) as u16;
            record.size = seen.stat.size;
            *id = Identity::of(&seen.stat);
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
        if self.len.is_multiple_of(CHUNK) {
            // The chunk before is whole: no room kept beyond its text.
            if let Some(full) = self.chunks.last_mut() {
                full.text.shrink_to_fit();
            }
            self.chunks.push(Chunk::new());
        }
        let Some(chunk) = self.chunks.last_mut() else {
            return Err(too_long());
        };
        let start = u32::try_from(chunk.text.len()).map_err(|_| too_long())?;
        let rel_len = u32::try_from(rel.len()).map_err(|_| too_long())?;
        let target_len = u32::try_from(target.len()).map_err(|_| too_long())?;
        if chunk.text.len() + rel.len() + target.len() > u32::MAX as usize {
            return Err(too_long());
        }
        chunk.text.push_str(rel);
        chunk.text.push_str(target);
        self.len += 1;
        chunk.records.push(Record {
            start,
            rel_len,
            target_len,
            kind,
            // Masked to 0o7777, so it fits.
            mode: (mode & 0o7777) as u16,
            size: stat.size,
        });
        self.ids.push(Identity::of(&stat));
        Ok(())
    }
}

/// Lists `root` (a file or a directory tree), parents before children,
/// each directory's entries in byte order of their names. The error names
/// the offending host path.
///
/// Written on `read_dir` rather than walkdir: each entry is stat'ed
/// relative to its open directory (walkdir stats every full path again),
/// names are compared as bytes without parsing paths, and a directory is
/// read whole before its subdirectories are.
///
/// The stats, most of a walk's time (a path lookup in the kernel each),
/// are taken on other threads: this one lists directories and records
/// each entry as the listing's type says it is, and the workers' stats
/// fill the records in (see [`Stats`]). A warm build is mostly this walk
/// (issue 19).
pub fn walk(root: &Path) -> Result<Walk, String> {
    let mut out = Walk {
        root: root.to_path_buf(),
        chunks: Vec::new(),
        len: 0,
        ids: Vec::new(),
    };
    // The root is followed if it is a symlink, as a path named in a recipe.
    let meta = std::fs::metadata(root).map_err(|e| reading(root, e))?;
    let kind = classify(root, meta.file_type(), Some(&meta))?;
    out.push_entry(root, "", kind)?;
    if kind.kind != Kind::Dir {
        return Ok(out);
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (jobs, taken) = std::sync::mpsc::sync_channel::<Vec<Job>>(JOBS_IN_FLIGHT);
    let (done, results) = std::sync::mpsc::channel::<Done>();
    let taken = std::sync::Mutex::new(taken);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done = done.clone();
            let taken = &taken;
            scope.spawn(move || stat_jobs(taken, &done));
        }
        drop(done);
        let mut stats = Stats {
            jobs: Some(jobs),
            results,
            tickets: 0,
            batch: Vec::new(),
            batch_dirs: 0,
            pushed: std::collections::HashMap::new(),
            arrived: std::collections::HashMap::new(),
        };
        // Either way the job channel closes and the workers stop: after
        // the last stat, or (the walk failed, `stats` dropped) at their
        // next batch.
        list_tree(root, &mut out, &mut stats).and_then(|()| stats.finish(&mut out))
    })?;
    Ok(out)
}

/// The walk proper: directories listed depth first, each one's entries
/// recorded in order, their stats asked of `stats`.
fn list_tree(root: &Path, out: &mut Walk, stats: &mut Stats) -> Result<(), String> {
    // Directories being listed: each one's path and its entries not yet
    // visited, in reverse order so the next is at the end.
    let mut stack = vec![(String::new(), list(root, stats)?)];
    // Each entry's path is made here, not allocated: most are files.
    let mut rel = String::new();
    while let Some((parent, children)) = stack.last_mut() {
        let Some(child) = children.pop() else {
            stack.pop();
            continue;
        };
        let name = child.name.to_str().ok_or_else(|| {
            format!(
                "copy source {} has a non-UTF-8 name",
                root.join(parent.as_str()).join(&child.name).display()
            )
        })?;
        rel.clear();
        rel.push_str(parent);
        if !parent.is_empty() {
            rel.push('/');
        }
        rel.push_str(name);
        match child.kind {
            // The mode and stat come when the stat does.
            Kind::File | Kind::Dir => out.push(&rel, "", child.kind, 0, FileStat::default())?,
            Kind::Symlink => {
                let seen = Seen {
                    kind: Kind::Symlink,
                    mode: 0o777,
                    stat: FileStat::default(),
                };
                out.push_entry(&root.join(&rel), &rel, seen)?;
            }
        }
        if let Some(ticket) = child.ticket {
            stats.recorded(ticket, out.len() - 1, out)?;
        }
        if child.kind == Kind::Dir {
            let entries = list(&root.join(&rel), stats)?;
            stack.push((rel.clone(), entries));
        }
    }
    Ok(())
}

/// How many batches of stats may wait for a worker. An entry holds its
/// directory open (and libc's 32 KiB buffer for reading it) until it is
/// stat'ed and handed back, so this bounds the descriptors a walk holds,
/// with [`BATCH_DIRS`]: a tree 1,000 deep walks within the usual limit
/// of 1,024, and 16 directories a batch, four batches waiting, held 4 MB
/// more at the peak of a warm build than this does.
const JOBS_IN_FLIGHT: usize = 2;

/// A batch goes to the workers at this many entries, or entries of this
/// many directories: a wake-up per directory (15 files each, in a
/// `node_modules`) cost more than the stats.
const BATCH_ENTRIES: usize = 512;
const BATCH_DIRS: usize = 8;

/// An entry to stat: its ticket and the type its listing gave.
type Job = (u32, (std::fs::DirEntry, std::fs::FileType));

/// A result of [`Job`]: a stat, or why the walk fails.
type Stated = (u32, Result<Seen, String>);

/// A batch of jobs done: the entries, and what their stats said.
type Done = (Vec<Job>, Vec<Stated>);

const STAT_THREAD_FAILED: &str = "a stat thread of the source walk failed";

/// The stats a walk asked for, by ticket (the order entries were listed
/// in), and where they go: the record each entry got, by ticket, once
/// the walk recorded it (depth first, so not in listing order).
struct Stats {
    jobs: Option<std::sync::mpsc::SyncSender<Vec<Job>>>,
    results: std::sync::mpsc::Receiver<Done>,
    tickets: u32,
    /// Asked for, not yet sent, and of how many directories.
    batch: Vec<Job>,
    batch_dirs: usize,
    /// Recorded entries whose stat has not come back yet.
    pushed: std::collections::HashMap<u32, usize>,
    /// Stats that came back before their entry was recorded.
    arrived: std::collections::HashMap<u32, Seen>,
}

impl Stats {
    /// Asks for the stats of `entries`; they get tickets in order from the
    /// one returned.
    fn ask(&mut self, entries: Vec<(std::fs::DirEntry, std::fs::FileType)>) -> Result<u32, String> {
        let first = self.tickets;
        if entries.is_empty() {
            return Ok(first);
        }
        let count = u32::try_from(entries.len()).ok();
        self.tickets = count
            .and_then(|n| first.checked_add(n))
            .ok_or("a copy source has more than 2^32 entries")?;
        self.batch.extend((first..).zip(entries));
        self.batch_dirs += 1;
        if self.batch.len() >= BATCH_ENTRIES || self.batch_dirs >= BATCH_DIRS {
            self.send()?;
        }
        Ok(first)
    }

    /// Hands the batch to the workers.
    fn send(&mut self) -> Result<(), String> {
        self.batch_dirs = 0;
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return Ok(());
        }
        match &self.jobs {
            Some(jobs) if jobs.send(batch).is_ok() => Ok(()),
            _ => Err(STAT_THREAD_FAILED.to_string()),
        }
    }

    /// Notes that the entry of `ticket` is record `index` of `out`, filling
    /// it in if its stat is back, and takes in whatever else came back.
    fn recorded(&mut self, ticket: u32, index: usize, out: &mut Walk) -> Result<(), String> {
        match self.arrived.remove(&ticket) {
            Some(seen) => out.fill(index, seen),
            None => {
                self.pushed.insert(ticket, index);
            }
        }
        while let Ok(batch) = self.results.try_recv() {
            self.take(batch, out)?;
        }
        Ok(())
    }

    fn take(&mut self, (job, stated): Done, out: &mut Walk) -> Result<(), String> {
        drop(job);
        for (ticket, seen) in stated {
            let seen = seen?;
            match self.pushed.remove(&ticket) {
                Some(index) => out.fill(index, seen),
                None => {
                    self.arrived.insert(ticket, seen);
                }
            }
        }
        Ok(())
    }

    /// Waits for the stats still out (the job channel closed) and fills
    /// them in; every recorded entry has its stat then.
    fn finish(mut self, out: &mut Walk) -> Result<(), String> {
        self.send()?;
        self.jobs = None;
        while let Ok(batch) = self.results.recv() {
            self.take(batch, out)?;
        }
        if self.pushed.is_empty() {
            Ok(())
        } else {
            Err(STAT_THREAD_FAILED.to_string())
        }
    }
}

/// A worker: stats the entries of each job, relative to their open
/// directory, until the jobs run out or the walk stops listening.
fn stat_jobs(
    jobs: &std::sync::Mutex<std::sync::mpsc::Receiver<Vec<Job>>>,
    done: &std::sync::mpsc::Sender<Done>,
) {
    loop {
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let results = job
            .iter()
            .map(|(ticket, (entry, ft))| {
                let seen = entry
                    .metadata()
                    .map_err(|e| reading(&entry.path(), e))
                    .and_then(|meta| classify(&entry.path(), *ft, Some(&meta)));
                (*ticket, seen)
            })
            .collect();
        // The entries go back to be freed by the thread that made them:
        // freeing them here took the allocator's lock of that thread on
        // every entry, and the two threads waited on it most of the walk.
        if done.send((job, results)).is_err() {
            return;
        }
    }
}

/// An entry of a directory being walked, as its listing saw it; a
/// directory or a file has a ticket for its stat.
struct Child {
    name: std::ffi::OsString,
    kind: Kind,
    ticket: Option<u32>,
}

/// What the walk keeps of an entry's stat.
#[derive(Debug, Clone, Copy)]
struct Seen {
    kind: Kind,
    mode: u32,
    stat: FileStat,
}

/// The entries of directory `dir` in reverse byte order of their names
/// (they are popped from the end), the stats of its directories and files
/// asked of `stats`. Anything else but a symlink is refused.
fn list(dir: &Path, stats: &mut Stats) -> Result<Vec<Child>, String> {
    let mut listed = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| reading(dir, e))? {
        let entry = entry.map_err(|e| reading(dir, e))?;
        let ft = entry.file_type().map_err(|e| reading(&entry.path(), e))?;
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else {
            classify(&entry.path(), ft, None)?.kind
        };
        listed.push((entry.file_name(), kind, (entry, ft)));
    }
    listed.sort_unstable_by(|a, b| b.0.as_encoded_bytes().cmp(a.0.as_encoded_bytes()));
    let mut to_stat = Vec::new();
    let mut children = Vec::with_capacity(listed.len());
    for (name, kind, entry) in listed {
        let ticket = (kind != Kind::Symlink).then(|| {
            to_stat.push(entry);
            to_stat.len() - 1
        });
        children.push((name, kind, ticket));
    }
    let first = stats.ask(to_stat)?;
    Ok(children
        .into_iter()
        .map(|(name, kind, i)| Child {
            name,
            kind,
            // Below the ticket count `ask` checked.
            ticket: i.map(|i| first + i as u32),
        })
        .collect())
}

/// The kind, mode and stat of the entry at `path` of type `ft`, refusing
/// what a copy cannot take. `meta` is its stat, for a directory or a file.
fn classify(
    path: &Path,
    ft: std::fs::FileType,
    meta: Option<&std::fs::Metadata>,
) -> Result<Seen, String> {
    let stat_of = || meta.ok_or_else(|| format!("reading copy source {}: no stat", path.display()));
    if ft.is_dir() {
        let meta = stat_of()?;
        Ok(Seen {
            kind: Kind::Dir,
            mode: meta.permissions().mode() & 0o7777,
            stat: FileStat::default(),
        })
    } else if ft.is_file() {
        let meta = stat_of()?;
        // Checked again: the file may have been replaced since listing.
        if !meta.is_file() {
            return Err(format!(
                "copy source {} changed while it was read",
                path.display()
            ));
        }
        Ok(Seen {
            kind: Kind::File,
            mode: meta.permissions().mode() & 0o7777,
            stat: FileStat::of(meta),
        })
    } else if ft.is_symlink() {
        Ok(Seen {
            kind: Kind::Symlink,
            mode: 0o777,
            stat: FileStat::default(),
        })
    } else {
        Err(format!(
            "copy source {} is {}; only regular files, directories and symlinks can be copied",
            path.display(),
            crate::store::file::kind_of(ft)
        ))
    }
}

fn reading(path: &Path, e: std::io::Error) -> String {
    format!("reading copy source {}: {e}", path.display())
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

    /// Parents come before children, and a directory's whole subtree
    /// before its next sibling, whatever the names' bytes: `a-c` sorts
    /// before `a/b` as a string, but after `a`'s subtree in the walk.
    #[test]
    fn walks_each_subtree_before_the_next_sibling() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), "f").unwrap();
        std::fs::write(root.join("a-c"), "x").unwrap();
        std::fs::write(root.join("a.d"), "y").unwrap();
        std::fs::write(root.join("B"), "z").unwrap();
        let rels: Vec<String> = walk(root)
            .unwrap()
            .iter()
            .map(|e| e.rel.to_string())
            .collect();
        assert_eq!(rels, ["", "B", "a", "a/b", "a/b/f", "a-c", "a.d"]);
    }

    /// A walk of more entries than a chunk holds lists them the same
    /// however it is read: by position, iterated, or drained.
    #[test]
    fn walks_of_many_chunks_drain_as_they_iterate() {
        let dir = tempfile::tempdir().unwrap();
        for d in 0..3 {
            let sub = dir.path().join(format!("d{d}"));
            std::fs::create_dir(&sub).unwrap();
            for f in 0..(CHUNK * 2 / 3) {
                std::fs::write(sub.join(format!("f{f}")), "x").unwrap();
            }
            std::os::unix::fs::symlink("f0", sub.join("link")).unwrap();
        }
        let walk = walk(dir.path()).unwrap();
        assert!(walk.len() > 2 * CHUNK && walk.chunks.len() == 3);
        let listed: Vec<String> = walk.iter().map(|e| format!("{e:?}")).collect();
        let by_position: Vec<String> = (0..walk.len())
            .map(|i| format!("{:?}", walk.get(i)))
            .collect();
        assert_eq!(listed, by_position);
        assert!(
            listed[CHUNK].contains("File") && listed.iter().any(|e| e.contains("target: \"f0\""))
        );
        let mut drained = Vec::new();
        walk.drain(|e| {
            drained.push(format!("{e:?}"));
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(drained, listed);
    }

    /// What a copy needs of each kind: a file's size, stat and executable
    /// bit, a directory's mode, a symlink's target; its host path from the
    /// root.
    #[test]
    fn keeps_what_a_copy_needs_of_each_entry() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::set_permissions(root.join("d"), std::fs::Permissions::from_mode(0o2750)).unwrap();
        std::fs::write(root.join("d/run"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(root.join("d/run"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("../elsewhere/x", root.join("d/link")).unwrap();
        let walk = walk(root).unwrap();
        let entries: Vec<SourceEntry> = walk.iter().collect();
        assert_eq!(entries.len(), 4);
        assert_eq!(
            (entries[1].rel, entries[1].kind, entries[1].mode),
            ("d", SourceKind::Dir, 0o2750)
        );
        assert_eq!(
            entries[2].kind,
            SourceKind::Symlink {
                target: "../elsewhere/x"
            }
        );
        let meta = std::fs::metadata(root.join("d/run")).unwrap();
        assert_eq!(
            entries[3].kind,
            SourceKind::File {
                size: 10,
                executable: true,
                stat: Some(FileStat::of(&meta)),
            }
        );
        assert_eq!(walk.host_path(entries[3].rel), root.join("d/run"));
        assert_eq!(walk.host_path(""), root);

        // Planning's walk: the stat identity gone, all else kept.
        let mut planned = walk.clone();
        planned.forget_identities();
        let kept: Vec<SourceEntry> = planned.iter().collect();
        assert_eq!(kept[..3], entries[..3]);
        assert_eq!(
            (kept[3].rel, kept[3].mode, kept[3].kind),
            (
                "d/run",
                0o755,
                SourceKind::File {
                    size: 10,
                    executable: true,
                    stat: None
                }
            )
        );
    }

    /// Stats taken on other threads land on their own entries: every
    /// file of a tree of many directories (more than a batch of them, and
    /// of entries) has its own size, stat and mode.
    #[test]
    fn every_entry_gets_its_own_stat() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in 0..40 {
            let sub = root.join(format!("d{d:02}/e"));
            std::fs::create_dir_all(&sub).unwrap();
            for f in 0..30 {
                let file = sub.join(format!("f{f:02}"));
                std::fs::write(&file, "x".repeat(d * 30 + f)).unwrap();
                let mode = if f % 3 == 0 { 0o755 } else { 0o640 };
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            }
        }
        let walk = walk(root).unwrap();
        assert_eq!(walk.len(), 1 + 40 * 32);
        for entry in walk.iter().skip(1) {
            let meta = std::fs::symlink_metadata(root.join(entry.rel)).unwrap();
            assert_eq!(
                entry.mode,
                meta.permissions().mode() & 0o7777,
                "{}",
                entry.rel
            );
            if let SourceKind::File { size, stat, .. } = entry.kind {
                assert_eq!(
                    (size, stat),
                    (meta.len(), Some(FileStat::of(&meta))),
                    "{}",
                    entry.rel
                );
            } else {
                assert_eq!(entry.kind, SourceKind::Dir, "{}", entry.rel);
            }
        }
    }

    /// A single file is a walk of one entry; a tree deeper than the
    /// descriptors a process may hold walks all the same (one directory
    /// is open at a time); a FIFO is refused, never opened.
    #[test]
    fn walks_a_file_a_deep_tree_and_refuses_fifos() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("one"), "1").unwrap();
        let single = walk(&root.join("one")).unwrap();
        assert_eq!(single.len(), 1);
        assert!(matches!(
            single.first().unwrap().kind,
            SourceKind::File { size: 1, .. }
        ));

        let mut deep = root.join("deep");
        for _ in 0..1100 {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(walk(&root.join("deep")).unwrap().len(), 1101);

        let fifo =
            std::ffi::CString::new(root.join("deep/p").into_os_string().into_encoded_bytes())
                .unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        let err = walk(&root.join("deep")).unwrap_err();
        assert!(err.contains("a FIFO") && err.contains("deep/p"), "{err}");
    }
}
