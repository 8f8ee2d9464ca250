//! Installing packages without running anything (issue 13): each `.deb`'s
//! `data.tar` unpacked over the view below as dpkg would, in the lock's
//! order, and the dpkg database written the standard way, merged with the
//! one below. What the stemcells' packages would need their maintainer
//! scripts for is done natively ([`native`](super::native)); every
//! package whose scripts were skipped is reported.
//!
//! The result is a list of layer entries: the packages' files with their
//! modes and owners as shipped (times are the build's), their content
//! staged in a directory the caller keeps until the layer is written.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use md5::{Digest as _, Md5};

use super::archive::PackagePin;
use super::deb::{Deb, FileList, Package, Script};
use super::index::Stanzas;
use super::native;
use crate::error::DebError;
use crate::layer::{Content, Entry, EntryKind};
use crate::rootfs::meta::ImagePath;
use crate::rootfs::{NodeKind, View};
use crate::store::file::{self, Links};

/// dpkg's database, where dpkg-query and scanners read it.
pub const STATUS: &str = "var/lib/dpkg/status";
pub const INFO: &str = "var/lib/dpkg/info";

/// What installing a package set made.
#[derive(Debug, Default)]
pub struct Installed {
    /// The layer's entries, by path.
    pub entries: Vec<Entry>,
    /// The packages unpacked, in order, with the scripts not run.
    pub packages: Vec<Unpacked>,
    /// Packages the view below already has at the pinned version: not
    /// unpacked again.
    pub present: Vec<String>,
    /// Files whose setuid or setgid bit was cleared.
    pub dropped_setuid: Vec<String>,
    /// What was done natively in place of maintainer scripts, one line each.
    pub native: Vec<String>,
}

/// One package unpacked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Its maintainer scripts (and triggers), none of which ran.
    pub skipped: Vec<Script>,
}

/// How a package set is installed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Clear setuid and setgid bits on every file installed.
    pub drop_setuid: bool,
}

/// Why a package set could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Deb(#[from] DebError),
    /// The `.deb` is not the package its pin names.
    #[error("{deb}: the lock pins {expected}, but the package says it is {found}")]
    NotPinned {
        deb: String,
        expected: String,
        found: String,
    },
    #[error("{0}")]
    Refused(String),
    #[error("staging package content in {dir}: {source}")]
    Staging {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The pins of `pins` the view below does not already hold at the pinned
/// version (by dpkg's `status`): those to fetch and unpack.
pub fn missing<'p>(below: &View, pins: &'p [PackagePin]) -> Vec<&'p PackagePin> {
    let status = Status::read(below.content(&status_path()).unwrap_or_default());
    pins.iter()
        .filter(|p| !status.has(&p.name, &p.architecture, &p.version))
        .collect()
}

/// Unpacks `debs` (each with the pin it was fetched for, in the lock's
/// order) over `below`, staging file contents under `staging`, and writes
/// the dpkg database. Packages `below` already holds at the pinned version
/// are skipped: pass every pin of the set, and the `.deb` of each that
/// [`missing`] named.
pub fn install(
    below: &View,
    pins: &[PackagePin],
    debs: &HashMap<String, PathBuf>,
    staging: &Path,
    options: Options,
) -> Result<Installed, InstallError> {
    let mut status = Status::read(below.content(&status_path()).unwrap_or_default());
    let mut work = below.clone();
    let mut stage = Stage::new(staging);
    let mut touched = BTreeSet::new();
    let mut installed = Installed::default();
    let mut records = Vec::new();
    for pin in pins {
        if status.has(&pin.name, &pin.architecture, &pin.version) {
            installed
                .present
                .push(format!("{} {}", pin.name, pin.version));
            continue;
        }
        let path = debs.get(&pin.name).ok_or_else(|| {
            InstallError::Refused(format!("no .deb was fetched for {}", pin.name))
        })?;
        let file_name = pin.path.rsplit('/').next().unwrap_or(&pin.path);
        let deb = Deb::open_as(path, file_name.to_string())?;
        check_pin(&deb, pin)?;
        let package = deb.package().clone();
        let data = deb.read_data(&work, &mut |p, r| stage.put(p, r))?;
        if let Some(e) = stage.failed.take() {
            return Err(e);
        }
        for change in &data.changes {
            if let crate::rootfs::Change::Put(p, ..) = change {
                touched.insert(p.clone());
            }
        }
        work.apply(data.changes);
        installed.packages.push(Unpacked {
            name: package.control.package.clone(),
            version: package.control.version.clone(),
            architecture: package.control.architecture.clone(),
            skipped: package.scripts(),
        });
        records.push((package, data.files));
    }
    let mut entries = BTreeMap::new();
    for path in &touched {
        let Some(node) = work.get(path) else { continue };
        let kind = match &node.kind {
            NodeKind::Dir => EntryKind::Dir,
            NodeKind::Symlink { target } => EntryKind::Symlink {
                target: target.clone(),
            },
            NodeKind::File { .. } => EntryKind::File(stage.content(path)?),
            // A layer has no hardlinks of ingot's making: the file is
            // written again, which costs bytes, not meaning.
            NodeKind::Hardlink { target } => EntryKind::File(stage.content(target)?),
            NodeKind::Special => {
                return Err(InstallError::Refused(format!(
                    "{path}: a package installs a device or fifo, which an image does not carry"
                )));
            }
        };
        let mut mode = node.mode;
        if options.drop_setuid && matches!(kind, EntryKind::File(_)) && mode & 0o6000 != 0 {
            mode &= !0o6000;
            installed.dropped_setuid.push(format!("/{path}"));
        }
        let entry = Entry {
            path: path.as_rel().into(),
            kind,
            mode,
            uid: node.uid,
            gid: node.gid,
        };
        entries.insert(path.clone(), entry);
    }
    let mut database = Database::default();
    for (package, files) in &records {
        database.add(package, files);
        status.put(package, &database.conffiles(package, &stage)?);
    }
    database.status = Some(status.to_text());
    for entry in database.entries(&work) {
        entries.insert(ImagePath::from_rel(&entry.path).unwrap_or_default(), entry);
    }
    let names: BTreeSet<&str> = records
        .iter()
        .map(|(p, _)| p.control.package.as_str())
        .collect();
    let done = native::apply(&names, &work, &stage, &mut entries).map_err(InstallError::Refused)?;
    installed.native = done;
    installed.entries = entries.into_values().collect();
    Ok(installed)
}

fn status_path() -> ImagePath {
    ImagePath::from_rel(STATUS).unwrap_or_default()
}

/// The `.deb` must be the package, version and architecture the lock pins.
fn check_pin<R: Read>(deb: &Deb<R>, pin: &PackagePin) -> Result<(), InstallError> {
    let c = &deb.package().control;
    if (&c.package, &c.version, &c.architecture) != (&pin.name, &pin.version, &pin.architecture) {
        return Err(InstallError::NotPinned {
            deb: deb.name().to_string(),
            expected: format!("{} {} {}", pin.name, pin.version, pin.architecture),
            found: format!("{} {} {}", c.package, c.version, c.architecture),
        });
    }
    Ok(())
}

/// File contents of the packages, staged one file each; the last package
/// to write a path wins, as with dpkg.
pub struct Stage {
    dir: PathBuf,
    files: HashMap<ImagePath, (PathBuf, u64)>,
    next: u64,
    failed: Option<InstallError>,
}

impl Stage {
    fn new(dir: &Path) -> Stage {
        Stage {
            dir: dir.to_path_buf(),
            files: HashMap::new(),
            next: 0,
            failed: None,
        }
    }

    fn put(&mut self, path: &ImagePath, data: &mut dyn Read) -> io::Result<()> {
        let file = self.dir.join(self.next.to_string());
        self.next += 1;
        let written = std::fs::File::create(&file).and_then(|mut out| {
            let n = io::copy(data, &mut out)?;
            out.flush()?;
            Ok(n)
        });
        match written {
            Ok(size) => {
                self.files.insert(path.clone(), (file, size));
                Ok(())
            }
            Err(e) => {
                // Keep the cause: the reader reports only that it stopped.
                let err = io::Error::new(e.kind(), e.to_string());
                self.failed = Some(InstallError::Staging {
                    dir: self.dir.clone(),
                    source: e,
                });
                Err(err)
            }
        }
    }

    /// The content a package gave `path`.
    pub fn content(&self, path: &ImagePath) -> Result<Content, InstallError> {
        let (file, size) = self.files.get(path).ok_or_else(|| {
            InstallError::Refused(format!(
                "{path}: a hardlink to a file no package of this step installs"
            ))
        })?;
        Ok(Content::Path {
            path: file.clone(),
            size: *size,
        })
    }

    /// The bytes a package gave `path`, if one did, up to `limit`.
    pub fn read(&self, path: &ImagePath, limit: u64) -> Result<Option<Vec<u8>>, String> {
        let Some((staged, size)) = self.files.get(path) else {
            return Ok(None);
        };
        if *size > limit {
            return Err(format!("/{path} is larger than {limit} bytes"));
        }
        file::read_regular(staged, Links::Refuse, limit)
            .map(Some)
            .map_err(|e| format!("reading staged /{path}: {e}"))
    }

    /// Every staged path below `dir`, in path order.
    pub fn below(&self, dir: &ImagePath) -> Vec<ImagePath> {
        let mut out: Vec<ImagePath> = self
            .files
            .keys()
            .filter(|p| p.starts_with(dir) && *p != dir)
            .cloned()
            .collect();
        out.sort();
        out
    }
}

/// dpkg's `status`: one stanza per package, kept as written, by name and
/// architecture.
#[derive(Debug, Default)]
struct Status {
    stanzas: BTreeMap<(String, String), StatusEntry>,
}

#[derive(Debug)]
struct StatusEntry {
    version: String,
    installed: bool,
    text: String,
}

impl Status {
    /// Reads a `status` file. Stanzas that do not parse are kept as they
    /// are, under a name that sorts them first: dpkg's file is not ours to
    /// clean.
    fn read(bytes: &[u8]) -> Status {
        let text = String::from_utf8_lossy(bytes);
        let mut status = Status::default();
        let mut kept = 0usize;
        for raw in text.split("\n\n").map(|s| s.trim_matches('\n')) {
            if raw.trim().is_empty() {
                continue;
            }
            let stanza = Stanzas::new(raw.as_bytes()).next().and_then(Result::ok);
            let field = |name: &str| {
                stanza
                    .as_ref()
                    .and_then(|s| s.get(name))
                    .map(|f| f.value.clone())
            };
            let key = match (field("Package"), field("Architecture")) {
                (Some(p), Some(a)) => (p, a),
                _ => {
                    kept += 1;
                    (String::new(), format!("{kept:08}"))
                }
            };
            let installed = field("Status").is_some_and(|s| s.ends_with(" installed"));
            status.stanzas.insert(
                key,
                StatusEntry {
                    version: field("Version").unwrap_or_default(),
                    installed,
                    text: format!("{raw}\n"),
                },
            );
        }
        status
    }

    fn has(&self, name: &str, arch: &str, version: &str) -> bool {
        self.stanzas
            .get(&(name.to_string(), arch.to_string()))
            .is_some_and(|e| e.installed && e.version == version)
    }

    /// Records `package` installed: its control stanza with `Status`
    /// after `Package`, as dpkg writes it, and its conffiles' hashes.
    fn put(&mut self, package: &Package, conffiles: &[(String, String)]) {
        let c = &package.control;
        let mut text = String::new();
        for line in c.stanza.lines() {
            text.push_str(line);
            text.push('\n');
            if line.starts_with("Package:") {
                text.push_str("Status: install ok installed\n");
            }
        }
        if !conffiles.is_empty() {
            text.push_str("Conffiles:\n");
            for (path, md5) in conffiles {
                text.push_str(&format!(" {path} {md5}\n"));
            }
        }
        self.stanzas.insert(
            (c.package.clone(), c.architecture.clone()),
            StatusEntry {
                version: c.version.clone(),
                installed: true,
                text,
            },
        );
    }

    /// The file: stanzas by name, then architecture, a blank line after
    /// each.
    fn to_text(&self) -> Vec<u8> {
        let mut out = String::new();
        for entry in self.stanzas.values() {
            out.push_str(&entry.text);
            out.push('\n');
        }
        out.into_bytes()
    }
}

/// The files dpkg keeps under `info/` for the packages installed.
#[derive(Debug, Default)]
struct Database {
    /// `info/` files by name.
    info: BTreeMap<String, (Vec<u8>, u32)>,
    status: Option<Vec<u8>>,
}

impl Database {
    /// `info/NAME.list` and every control file but `control` as
    /// `info/NAME.FILE` (dpkg keeps the maintainer scripts there too, so
    /// a dpkg run later in the image's life finds what it expects).
    fn add(&mut self, package: &Package, files: &FileList) {
        let name = package.control.info_name();
        self.info
            .insert(format!("{name}.list"), (files.to_dpkg_list(), 0o644));
        for (file, bytes) in &package.files {
            if file == "control" {
                continue;
            }
            let executable = Script::ALL
                .iter()
                .any(|s| s.name() == file && *s != Script::Triggers);
            let mode = if executable { 0o755 } else { 0o644 };
            self.info
                .insert(format!("{name}.{file}"), (bytes.clone(), mode));
        }
    }

    /// Each conffile with the MD5 of its content as installed, as the
    /// `Conffiles` field of `status` lists them.
    fn conffiles(
        &self,
        package: &Package,
        stage: &Stage,
    ) -> Result<Vec<(String, String)>, InstallError> {
        let mut out = Vec::new();
        for conffile in &package.conffiles {
            let bytes = stage
                .read(&conffile.path, 64 << 20)
                .map_err(InstallError::Refused)?;
            let md5 = match bytes {
                Some(b) => hex::encode(Md5::digest(&b)),
                // A conffile the package lists but does not ship is
                // recorded as dpkg records a missing one.
                None => "newconffile".to_string(),
            };
            let mut path = format!("/{}", conffile.path);
            if conffile.remove_on_upgrade {
                path.push_str(" remove-on-upgrade");
            }
            out.push((path, md5));
        }
        Ok(out)
    }

    /// The database as layer entries, with the directories it needs that
    /// `view` lacks.
    fn entries(self, view: &View) -> Vec<Entry> {
        let mut out = Vec::new();
        for dir in ["var", "var/lib", "var/lib/dpkg", INFO] {
            let path = ImagePath::from_rel(dir).unwrap_or_default();
            if view.get(&path).is_none_or(|n| !n.is_dir()) {
                out.push(entry(dir.to_string(), EntryKind::Dir, 0o755));
            }
        }
        if let Some(status) = self.status {
            out.push(file(STATUS.to_string(), status, 0o644));
        }
        for (name, (bytes, mode)) in self.info {
            out.push(file(format!("{INFO}/{name}"), bytes, mode));
        }
        out
    }
}

fn entry(path: String, kind: EntryKind, mode: u32) -> Entry {
    Entry {
        path: path.into(),
        kind,
        mode,
        uid: 0,
        gid: 0,
    }
}

/// A root-owned file entry.
pub fn file(path: String, bytes: Vec<u8>, mode: u32) -> Entry {
    entry(path, EntryKind::File(Content::Bytes(bytes)), mode)
}
