//! `ingot gc`: removes the blobs of a layout that nothing references any
//! more (old versions' manifests, replaced layers), under the layout's lock
//! so that a concurrent build's blobs are never taken.

use std::collections::BTreeSet;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Serialize;

use super::layout::{Layout, blob_ref, lock};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::media;

/// Nested indexes followed at most; deeper is a hostile layout.
const MAX_DEPTH: usize = 8;

/// What a collection removed (or would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Collected {
    pub kept: usize,
    pub removed: Vec<Digest>,
    pub bytes: u64,
}

/// Removes unreferenced blobs from the layout at `dir`; with `dry_run`,
/// only reports them.
pub fn collect(dir: &Path, dry_run: bool) -> Result<Collected> {
    let layout = Layout::open(dir)?;
    let _lock = lock(dir)?;
    let index = layout.index()?;
    let mut live = BTreeSet::new();
    for desc in index.manifests() {
        mark(&layout, desc, &mut live, 0)?;
    }
    let blobs_dir = dir.join("blobs").join("sha256");
    let mut out = Collected::default();
    for entry in
        std::fs::read_dir(&blobs_dir).context(|| format!("reading {}", blobs_dir.display()))?
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
        out.bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
        if !dry_run {
            std::fs::remove_file(entry.path())
                .context(|| format!("removing {}", entry.path().display()))?;
        }
        out.removed.push(digest);
    }
    Ok(out)
}

/// Marks `desc` and everything it references as live.
fn mark(
    layout: &Layout,
    desc: &Descriptor,
    live: &mut BTreeSet<Digest>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::Failed(format!(
            "{}: indexes nest too deep",
            layout.dir.display()
        )));
    }
    let blob = blob_ref(desc)?;
    if !live.insert(blob.digest) {
        return Ok(());
    }
    // Only JSON blobs reference others; a missing or unreadable one keeps
    // what it would reference unknown, so nothing is removed on its say.
    let Ok(bytes) = layout.blobs.read(&blob) else {
        return Err(Error::Failed(format!(
            "{}: blob {} is missing or corrupt; run ingot verify before collecting",
            layout.dir.display(),
            blob.digest
        )));
    };
    let media = desc.media_type().to_string();
    if media::is_index(&media) {
        let index: ImageIndex = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Failed(format!("index {}: {e}", blob.digest)))?;
        for child in index.manifests() {
            mark(layout, child, live, depth + 1)?;
        }
    } else if media::is_manifest(&media) {
        let manifest: ImageManifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Failed(format!("manifest {}: {e}", blob.digest)))?;
        live.insert(blob_ref(manifest.config())?.digest);
        for layer in manifest.layers() {
            live.insert(blob_ref(layer)?.digest);
        }
        if let Some(subject) = manifest.subject() {
            live.insert(blob_ref(subject)?.digest);
        }
    }
    Ok(())
}
