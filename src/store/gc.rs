//! `ingot gc`: removes the blobs of a layout that nothing references any
//! more (old versions' manifests, replaced layers), under the layout's lock
//! so that a concurrent build's blobs are never taken.
//!
//! Nothing is removed from a layout that is broken: every blob index.json
//! reaches must first be there, a regular file of its descriptor's size,
//! and the manifests, indexes and image configs (read whole anyway, to
//! find what they reference) must hash to their digests. A blob that is
//! missing or damaged means the layout is not what its index says, and
//! what it would have referenced is unknown; the collection stops, naming
//! every such blob, and the user runs `ingot verify`.
//!
//! `--dry-run` writes nothing, not even the lock file: it shares the lock
//! when the layout has one, and works on a layout it cannot write.
//!
//! gc also removes, and reports, what killed builds and pulls left: staging
//! directories beside the layout whose owner is dead (see
//! [`super::workdir`]) and temp files in its root.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Serialize;

use super::BlobRef;
use super::layout::{
    Layout, STAGING_PREFIX, blob_ref, check_json_size, lock, lock_shared, stray_temp_files,
    sweep_temp_files,
};
use super::workdir;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, media};

/// Nested indexes followed at most; deeper is a hostile layout.
const MAX_DEPTH: usize = 8;

/// What a collection removed (or would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Collected {
    pub kept: usize,
    pub removed: Vec<Digest>,
    pub bytes: u64,
    /// What killed builds left: staging directories beside the layout
    /// whose owner is dead, temp files in its root.
    pub litter: Vec<PathBuf>,
}

/// Removes unreferenced blobs from the layout at `dir`; with `dry_run`,
/// only reports them. A layout with a referenced blob missing or damaged
/// is an error, and nothing is removed.
pub fn collect(dir: &Path, dry_run: bool) -> Result<Collected> {
    let layout = Layout::open(dir)?;
    let _lock = if dry_run {
        lock_shared(dir)?
    } else {
        Some(lock(dir)?)
    };
    let index = layout.index()?;
    let mut walk = Walk {
        layout: &layout,
        live: BTreeSet::new(),
        problems: Vec::new(),
    };
    for (n, desc) in index.manifests().iter().enumerate() {
        walk.child(desc, &format!("index.json manifests[{n}]"), 0)?;
    }
    if !walk.problems.is_empty() {
        let n = walk.problems.len();
        return Err(Error::Failed(format!(
            "{}: {n} referenced {} missing or damaged; nothing removed (run ingot verify): {}",
            dir.display(),
            if n == 1 { "blob is" } else { "blobs are" },
            walk.problems.join("; ")
        )));
    }
    let mut collected = sweep(&layout, &walk.live, dry_run)?;
    collected.litter = litter(dir, dry_run);
    Ok(collected)
}

/// Removes (or, in a dry run, lists) what killed builds and pulls left in
/// and beside the layout at `dir`; the layout's lock is held.
fn litter(dir: &Path, dry_run: bool) -> Vec<PathBuf> {
    let parent = std::path::absolute(dir)
        .ok()
        .and_then(|d| d.parent().map(Path::to_path_buf));
    let staging = parent.iter().flat_map(|p| {
        if dry_run {
            workdir::dead(p, STAGING_PREFIX)
        } else {
            workdir::sweep(p, STAGING_PREFIX)
        }
    });
    let temp = if dry_run {
        stray_temp_files(dir)
    } else {
        sweep_temp_files(dir)
    };
    staging.chain(temp).collect()
}

/// Removes (or, in a dry run, lists) every blob not in `live`.
fn sweep(layout: &Layout, live: &BTreeSet<Digest>, dry_run: bool) -> Result<Collected> {
    let blobs_dir = layout.blobs.dir();
    let mut out = Collected::default();
    for entry in
        std::fs::read_dir(blobs_dir).context(|| format!("reading {}", blobs_dir.display()))?
    {
        let entry = entry.context(|| format!("reading {}", blobs_dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Temp files belong to builds in progress.
        let Ok(digest) = format!("sha256:{name}").parse::<Digest>() else {
            continue;
        };
        if live.contains(&digest) {
            out.kept += 1;
            continue;
        }
        // No blob ingot or any tool writes: left for a person to look at.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        out.bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
        if !dry_run {
            std::fs::remove_file(entry.path())
                .context(|| format!("removing {}", entry.path().display()))?;
        }
        out.removed.push(digest);
    }
    Ok(out)
}

/// The walk from index.json: what is live, and what is wrong.
struct Walk<'a> {
    layout: &'a Layout,
    live: BTreeSet<Digest>,
    /// One line per blob found missing or damaged, saying where it was
    /// referenced.
    problems: Vec<String>,
}

impl Walk<'_> {
    /// Marks `desc` (a manifest, an index, or anything else an index
    /// lists) and everything it references as live, `at` saying where it
    /// is referenced.
    fn child(&mut self, desc: &Descriptor, at: &str, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::Failed(format!(
                "{}: indexes nest too deep",
                self.layout.dir.display()
            )));
        }
        let blob = blob_ref(desc)?;
        if !self.live.insert(blob.digest) {
            return Ok(());
        }
        let media = desc.media_type().to_string();
        if media::is_index(&media) {
            let Some(index) = self.read_json::<ImageIndex>(&blob, MAX_MANIFEST_SIZE, at) else {
                return Ok(());
            };
            for (n, child) in index.manifests().iter().enumerate() {
                let at = format!("manifests[{n}] of index {}", blob.digest);
                self.child(child, &at, depth + 1)?;
            }
        } else if media::is_manifest(&media) {
            let Some(manifest) = self.read_json::<ImageManifest>(&blob, MAX_MANIFEST_SIZE, at)
            else {
                return Ok(());
            };
            self.manifest(&blob, &manifest, depth)?;
        } else {
            self.present(&blob, at);
        }
        Ok(())
    }

    /// A manifest's config, layers and subject.
    fn manifest(&mut self, blob: &BlobRef, manifest: &ImageManifest, depth: usize) -> Result<()> {
        let here = format!("manifest {}", blob.digest);
        let config = manifest.config();
        let config_blob = blob_ref(config)?;
        if self.live.insert(config_blob.digest) {
            let at = format!("config of {here}");
            // An artifact's config may be anything: only an image config
            // is read (and so checked to its digest).
            if media::is_config(config.media_type().as_ref()) {
                self.read_json::<serde_json::Value>(&config_blob, MAX_CONFIG_SIZE, &at);
            } else {
                self.present(&config_blob, &at);
            }
        }
        for (n, layer) in manifest.layers().iter().enumerate() {
            let layer = blob_ref(layer)?;
            if self.live.insert(layer.digest) {
                self.present(&layer, &format!("layers[{n}] of {here}"));
            }
        }
        // A referrer's subject need not be in the layout; when it is, it
        // and what it references stay.
        if let Some(subject) = manifest.subject() {
            let digest = blob_ref(subject)?.digest;
            if self.layout.blobs.present(&digest).is_ok() {
                self.child(subject, &format!("subject of {here}"), depth + 1)?;
            } else {
                self.live.insert(digest);
            }
        }
        Ok(())
    }

    /// Reads a JSON blob whole (within `limit`), checked to its size and
    /// digest; None, with the problem noted, when it is not sound.
    fn read_json<T: serde::de::DeserializeOwned>(
        &mut self,
        blob: &BlobRef,
        limit: u64,
        at: &str,
    ) -> Option<T> {
        if let Err(e) = check_json_size(blob, limit) {
            self.problems.push(format!("{e} ({at})"));
            return None;
        }
        let parsed = match self.layout.blobs.read(blob) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("blob {}: invalid JSON: {e}", blob.digest)),
            Err(e) => Err(e.to_string()),
        };
        parsed
            .map_err(|e| self.problems.push(format!("{e} ({at})")))
            .ok()
    }

    /// Checks that a blob not read here is a regular file of its
    /// descriptor's size.
    fn present(&mut self, blob: &BlobRef, at: &str) {
        let problem = match self.layout.blobs.present(&blob.digest) {
            Ok(m) if m.len() == blob.size => return,
            Ok(m) => format!(
                "blob {}: size mismatch: expected {} bytes, found {}",
                blob.digest,
                blob.size,
                m.len()
            ),
            Err(e) => e.to_string(),
        };
        self.problems.push(format!("{problem} ({at})"));
    }
}
