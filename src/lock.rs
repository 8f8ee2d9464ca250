//! `ingot.lock`: the resolved identity of every external reference a recipe
//! builds on (design.md, "Base references"), so CI can insist that nothing
//! moved underneath it (`ingot build --locked`).
//!
//! A base's identity is its config digest, which covers every layer's
//! diff_id and so survives recompression; the manifest digest is recorded
//! too where there is one. Files in the recipe's directory are not locked:
//! they are versioned with the recipe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::debian::archive::PackagePin;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::store::file::{self, Links};

/// The lock file's name, beside the recipe.
pub const FILE_NAME: &str = "ingot.lock";
const VERSION: u32 = 1;

/// One resolved external reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The recipe that names the reference, relative to the locked
    /// recipe's directory (`recipe.yaml`, or `../base/recipe.yaml` for a
    /// `recipe:` base).
    pub from: String,
    /// The reference as the recipe writes it (`stemcell:static`).
    pub reference: String,
    /// What it resolved to (`stemcell:static@1.0.0`).
    pub resolved: String,
    pub config: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Digest>,
    /// The platform (`linux/arm64`) this pin is for, in a multi-platform
    /// build whose platforms resolve the reference differently; None when
    /// it holds for every platform the recipe builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

impl Pin {
    /// What identifies the reference a pin answers.
    fn key(&self) -> (&str, &str, Option<&str>) {
        (&self.from, &self.reference, self.platform.as_deref())
    }

    /// Whether this pin answers a build for `platform`.
    pub fn holds_for(&self, platform: &str) -> bool {
        self.platform.as_deref().is_none_or(|p| p == platform)
    }
}

/// The pins of a multi-platform build, given by platform: a reference
/// every platform resolved alike is pinned once, for all of them; one
/// they resolved differently (an index base, a stemcell, whose config
/// names its architecture) is pinned once per platform, naming it.
pub fn per_platform(resolved: Vec<(String, Vec<Pin>)>) -> Vec<Pin> {
    let platforms = resolved.len();
    let mut by_reference: BTreeMap<(String, String), Vec<(String, Pin)>> = BTreeMap::new();
    for (platform, pins) in resolved {
        for pin in LockFile::new(pins).pins {
            by_reference
                .entry((pin.from.clone(), pin.reference.clone()))
                .or_default()
                .push((platform.clone(), pin));
        }
    }
    let mut out = Vec::new();
    for (_, mut found) in by_reference {
        let alike = found.len() == platforms && found.windows(2).all(|w| w[0].1 == w[1].1);
        if alike {
            found.truncate(1);
            out.extend(found.into_iter().map(|(_, pin)| pin));
            continue;
        }
        out.extend(found.into_iter().map(|(platform, mut pin)| {
            pin.platform = Some(platform);
            pin
        }));
    }
    out
}

/// The closure one `packages` step resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSet {
    /// The recipe, as in [`Pin::from`].
    pub from: String,
    /// The layer whose `packages` step this is (one per layer).
    pub layer: String,
    /// The request, as the step wrote it, sorted.
    pub install: Vec<String>,
    pub exclude: Vec<String>,
    /// The archives it was resolved from, by URL.
    pub archives: Vec<String>,
    /// Every package of the closure, by name.
    pub packages: Vec<PackagePin>,
}

impl PackageSet {
    /// The Debian architecture this closure was resolved for: that of its
    /// packages that are not `all` (a lock records no more).
    pub fn architecture(&self) -> &str {
        self.packages
            .iter()
            .map(|p| p.architecture.as_str())
            .find(|a| *a != "all")
            .unwrap_or("all")
    }

    /// Whether this closure installs on the Debian architecture `arch`:
    /// every package is built for it, or for all.
    pub fn is_for(&self, arch: &str) -> bool {
        self.packages
            .iter()
            .all(|p| p.architecture == arch || p.architecture == "all")
    }

    /// Whether this set answers the request `other` makes.
    pub fn answers(&self, other: &PackageSet) -> bool {
        (
            &self.from,
            &self.layer,
            &self.install,
            &self.exclude,
            &self.archives,
        ) == (
            &other.from,
            &other.layer,
            &other.install,
            &other.exclude,
            &other.archives,
        )
    }
}

/// What a pin is about: an external base, or a Debian package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pinned {
    Base,
    Package,
}

/// One pin that differs between two locks: added (no `old`), removed (no
/// `new`) or moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: Pinned,
    /// The recipe that names it, as in [`Pin::from`].
    pub from: String,
    /// The base as the recipe writes it (`stemcell:static`,
    /// `docker://HOST/REPO:TAG`), or the package (`zlib1g:amd64`, in layer
    /// `runtime`).
    pub name: String,
    /// What it resolved to: a base's `resolved` and digest, a package's
    /// version.
    pub old: Option<String>,
    pub new: Option<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Pinned::Base => "base",
            Pinned::Package => "package",
        };
        let none = "(none)";
        write!(
            f,
            "{kind} {}: {} -> {}",
            self.name,
            self.old.as_deref().unwrap_or(none),
            self.new.as_deref().unwrap_or(none)
        )?;
        if self.from != "recipe.yaml" {
            write!(f, " (in {})", self.from)?;
        }
        Ok(())
    }
}

/// What moved from lock `old` (None: there was none) to lock `new`: bases
/// by the reference each recipe writes, packages by layer, name and
/// architecture; in that order, each sorted.
pub fn changes(old: Option<&LockFile>, new: &LockFile) -> Vec<Change> {
    type Pins = BTreeMap<(Pinned, String, String), String>;
    let flatten = |lock: &LockFile| -> Pins {
        let mut out = Pins::new();
        for pin in &lock.pins {
            let name = match &pin.platform {
                Some(p) => format!("{} for {p}", pin.reference),
                None => pin.reference.clone(),
            };
            let digest = pin.manifest.unwrap_or(pin.config);
            out.insert(
                (Pinned::Base, pin.from.clone(), name),
                format!("{} {digest}", pin.resolved),
            );
        }
        for set in &lock.packages {
            for p in &set.packages {
                let name = format!("{}:{} in layer {}", p.name, p.architecture, set.layer);
                out.insert((Pinned::Package, set.from.clone(), name), p.version.clone());
            }
        }
        out
    };
    let (a, b) = (old.map(flatten).unwrap_or_default(), flatten(new));
    let keys: std::collections::BTreeSet<&(Pinned, String, String)> =
        a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|(kind, from, name)| {
            let key = (*kind, from.clone(), name.clone());
            Change {
                kind: *kind,
                from: from.clone(),
                name: name.clone(),
                old: a.get(&key).cloned(),
                new: b.get(&key).cloned(),
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    pub version: u32,
    pub pins: Vec<Pin>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<PackageSet>,
}

impl LockFile {
    /// A lock of `pins`, in a stable order whatever the resolution order.
    pub fn new(mut pins: Vec<Pin>) -> LockFile {
        pins.sort_by(|a, b| a.key().cmp(&b.key()));
        pins.dedup();
        LockFile {
            version: VERSION,
            pins,
            packages: Vec::new(),
        }
    }

    /// This lock with `sets`, in a stable order.
    pub fn with_packages(mut self, mut sets: Vec<PackageSet>) -> LockFile {
        for set in &mut sets {
            set.packages.sort();
        }
        sets.sort_by(|a, b| {
            (&a.from, &a.layer, a.architecture()).cmp(&(&b.from, &b.layer, b.architecture()))
        });
        sets.dedup();
        self.packages = sets;
        self
    }

    /// The locked closure of the `packages` step in layer `layer` of the
    /// recipe `from`.
    pub fn package_set(&self, from: &str, layer: &str) -> Option<&PackageSet> {
        self.packages
            .iter()
            .find(|s| s.from == from && s.layer == layer)
    }
}

/// The most bytes `ingot.lock` may have. A lock pinning a few hundred
/// packages is some 100 KiB; this bounds what a hostile one costs.
pub const MAX_LOCK_SIZE: u64 = 16 << 20;

/// Where the lock of the recipe at `recipe_file` lives.
pub fn path_for(recipe_file: &Path) -> PathBuf {
    recipe_file
        .parent()
        .unwrap_or(Path::new("."))
        .join(FILE_NAME)
}

/// Reads a lock file (a regular file, or a symlink to one, of at most
/// [`MAX_LOCK_SIZE`] bytes); `None` when there is none.
pub fn read(path: &Path) -> Result<Option<LockFile>> {
    Ok(read_digested(path)?.map(|(lock, _)| lock))
}

/// [`read`], with the sha256 of the bytes read: what an image records as
/// the lock it was built with (`dev.ingot.lock.digest`), taken from the
/// very bytes parsed, so that a lock rewritten meanwhile cannot be named
/// for another.
pub fn read_digested(path: &Path) -> Result<Option<(LockFile, Digest)>> {
    let Some(bytes) = read_bytes(path)? else {
        return Ok(None);
    };
    let lock =
        parse(&bytes).map_err(|e| Error::Usage(format!("{}: {}", path.display(), e.message)))?;
    Ok(Some((lock, Digest::of(&bytes))))
}

/// The sha256 of a lock file's bytes, unparsed; `None` when there is none.
pub fn digest(path: &Path) -> Result<Option<Digest>> {
    Ok(read_bytes(path)?.map(|bytes| Digest::of(&bytes)))
}

fn read_bytes(path: &Path) -> Result<Option<Vec<u8>>> {
    match file::read_regular(path, Links::Follow, MAX_LOCK_SIZE) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context(|| format!("reading {}", path.display())),
    }
}

/// Why a lock file's bytes are no lock, and where (1-based; 1:1 for what
/// concerns the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses a lock file's bytes: JSON of this version, every package path
/// plain.
pub fn parse(bytes: &[u8]) -> std::result::Result<LockFile, ParseError> {
    let whole = |message: String| ParseError {
        line: 1,
        column: 1,
        message,
    };
    let lock: LockFile = serde_json::from_slice(bytes).map_err(|e| ParseError {
        line: e.line().max(1),
        column: e.column().max(1),
        message: e.to_string(),
    })?;
    if lock.version != VERSION {
        return Err(whole(format!(
            "lock version {} is not supported (expected {VERSION})",
            lock.version
        )));
    }
    // A pin's path is joined to an archive's (or a mirror's) URL: it must
    // stay inside it.
    for pin in lock.packages.iter().flat_map(|s| &s.packages) {
        let plain = !pin.path.is_empty()
            && !pin.path.starts_with('/')
            && pin
                .path
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..");
        if !plain {
            return Err(whole(format!(
                "package {} has the path {:?}, which is not a plain path in its archive",
                pin.name, pin.path
            )));
        }
    }
    Ok(lock)
}

/// Writes `lock` as indented JSON (it is reviewed in diffs), atomically.
pub fn write(path: &Path, lock: &LockFile) -> Result<()> {
    let mut text = serde_json::to_string_pretty(lock)
        .map_err(|e| Error::Failed(format!("encoding {}: {e}", path.display())))?;
    text.push('\n');
    crate::store::layout::replace_file(path, text.as_bytes())
}

/// What differs between a lock and a fresh resolution, one line per
/// reference; empty when they agree.
pub fn diff(locked: &LockFile, resolved: &LockFile) -> Vec<String> {
    let old: BTreeMap<_, _> = locked.pins.iter().map(|p| (p.key(), p)).collect();
    let new: BTreeMap<_, _> = resolved.pins.iter().map(|p| (p.key(), p)).collect();
    // `reference (in from[, for platform])`
    let at = |k: &(&str, &str, Option<&str>)| match k.2 {
        Some(platform) => format!("{} (in {}, for {platform})", k.1, k.0),
        None => format!("{} (in {})", k.1, k.0),
    };
    let mut out = Vec::new();
    for (k, o) in &old {
        match new.get(k) {
            None => out.push(format!("- {}: locked but no longer used", at(k))),
            Some(n) if n != o => out.push(format!(
                "~ {}: locked {} config {}{}, now {} config {}{}",
                at(k),
                o.resolved,
                o.config,
                manifest_note(&o.manifest),
                n.resolved,
                n.config,
                manifest_note(&n.manifest),
            )),
            Some(_) => {}
        }
    }
    for (k, n) in &new {
        if !old.contains_key(k) {
            out.push(format!(
                "+ {}: not locked; resolves to {} config {}",
                at(k),
                n.resolved,
                n.config
            ));
        }
    }
    out
}

fn manifest_note(m: &Option<Digest>) -> String {
    m.map(|d| format!(" manifest {d}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(reference: &str, config: &[u8]) -> Pin {
        Pin {
            from: "recipe.yaml".into(),
            reference: reference.into(),
            resolved: format!("{reference}@1"),
            config: Digest::of(config),
            manifest: None,
            platform: None,
        }
    }

    #[test]
    fn multi_platform_pins_are_per_platform_only_where_they_differ() {
        let amd = vec![pin("stemcell:static", b"amd"), pin("oci:x", b"same")];
        let arm = vec![pin("stemcell:static", b"arm"), pin("oci:x", b"same")];
        let pins = LockFile::new(per_platform(vec![
            ("linux/amd64".into(), amd),
            ("linux/arm64".into(), arm),
        ]))
        .pins;
        let listed: Vec<(&str, Option<&str>)> = pins
            .iter()
            .map(|p| (p.reference.as_str(), p.platform.as_deref()))
            .collect();
        assert_eq!(
            listed,
            [
                ("oci:x", None),
                ("stemcell:static", Some("linux/amd64")),
                ("stemcell:static", Some("linux/arm64")),
            ]
        );
        assert!(pins[0].holds_for("linux/arm64") && !pins[1].holds_for("linux/arm64"));
        // A lock of another platform's pins reads as a difference for it.
        let mut moved = pins.clone();
        moved[2].config = Digest::of(b"other");
        let lines = diff(&LockFile::new(pins), &LockFile::new(moved));
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("for linux/arm64"), "{lines:?}");
    }

    #[test]
    fn a_lock_without_platforms_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let digest = Digest::of(b"c");
        let text = format!(
            r#"{{"version":1,"pins":[{{"from":"recipe.yaml","reference":"stemcell:static","resolved":"stemcell:static@1.0.0","config":"{digest}"}}]}}"#
        );
        std::fs::write(&path, text).unwrap();
        let lock = read(&path).unwrap().unwrap();
        assert_eq!(lock.pins[0].platform, None);
        assert!(lock.pins[0].holds_for("linux/arm64"));
    }

    #[test]
    fn diff_names_changed_added_and_removed_references() {
        let locked = LockFile::new(vec![pin("a", b"1"), pin("b", b"1")]);
        assert!(diff(&locked, &locked).is_empty());
        let now = LockFile::new(vec![pin("a", b"2"), pin("c", b"1")]);
        let lines = diff(&locked, &now);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].starts_with("~ a") && lines[0].contains(&Digest::of(b"2").to_string()));
        assert!(lines[1].starts_with("- b"));
        assert!(lines[2].starts_with("+ c"));
    }

    #[test]
    fn a_package_path_leaving_its_archive_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let pin = |p: &str| PackagePin {
            name: "x".into(),
            version: "1".into(),
            architecture: "all".into(),
            archive: "http://a.invalid/debian".into(),
            path: p.into(),
            size: 1,
            sha256: Digest::of(b"x"),
        };
        for (p, ok) in [
            ("pool/main/x/x_1_all.deb", true),
            ("pool/../../x.deb", false),
            ("/etc/x.deb", false),
            ("", false),
        ] {
            let lock = LockFile::new(Vec::new()).with_packages(vec![PackageSet {
                from: "recipe.yaml".into(),
                layer: "l".into(),
                install: vec!["x".into()],
                exclude: Vec::new(),
                archives: vec!["http://a.invalid/debian".into()],
                packages: vec![pin(p)],
            }]);
            write(&path, &lock).unwrap();
            assert_eq!(read(&path).is_ok(), ok, "{p:?}");
        }
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert_eq!(read(&path).unwrap(), None);
        let lock = LockFile::new(vec![pin("b", b"1"), pin("a", b"1")]);
        write(&path, &lock).unwrap();
        assert_eq!(read(&path).unwrap(), Some(lock.clone()));
        assert_eq!(lock.pins[0].reference, "a", "sorted");
    }
}
