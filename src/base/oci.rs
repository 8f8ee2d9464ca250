//! Bases from OCI image layouts on disk (`oci:PATH[:TAG]`,
//! `oci:PATH@sha256:…`), read without trusting them: every blob is checked
//! against the digest and size its parent promised before it is used.

use std::io;
use std::path::Path;

use oci_spec::image::Descriptor;

use super::BaseImage;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result, Within};
use crate::image::Platform;
use crate::image::config::platform_of;
use crate::image::reference::OciRef;
use crate::store::cache::{Cache, FileStat, StatIndex};
use crate::store::layout::{Layout, blob_ref, open_image};
use crate::store::{BlobStore, copy_file};

/// Loads the image `reference` names as a base: [`open_image`], then its layer
/// blobs copied, checked, into `blobs`.
pub fn load(
    reference: &OciRef,
    dir: &Path,
    platform: &Platform,
    blobs: &BlobStore,
    cache: Option<&Cache>,
) -> Result<BaseImage> {
    let found = open_image(reference, dir, platform)?;
    // Blobs read whole once, and unchanged since (by their stat, as
    // sources are), need not be read again.
    let dir = found.layout.blobs.dir();
    let mut verified = cache.map(|c| c.stat_index(dir));
    for layer in found.manifest.layers() {
        copy_blob(&found.layout, layer, blobs, verified.as_mut())
            .within(|| reference.to_string())?;
    }
    if let (Some(cache), Some(index)) = (cache, &verified) {
        // An index that cannot be saved only costs the next build a read.
        let _ = cache.save_stat_index(dir, index);
    }
    let config_digest = digest_of(found.manifest.config())?;
    Ok(BaseImage {
        name: reference.to_string(),
        manifest_digest: Some(found.manifest_digest),
        config_digest: Some(config_digest),
        platform: platform_of(&found.config),
        layers: found.manifest.layers().clone(),
        config: found.config,
    })
}

fn digest_of(desc: &Descriptor) -> Result<Digest> {
    Digest::try_from(desc.digest()).map_err(|e| Error::Failed(e.to_string()))
}

/// Copies one blob into `blobs`, checking it on the way. One the stat
/// index `verified` saw read whole to its digest, with the same stat since,
/// is copied without being read through a hash again (not linked: a link
/// changes the source's ctime, and with it the stat the index knows).
fn copy_blob(
    layout: &Layout,
    desc: &Descriptor,
    blobs: &BlobStore,
    verified: Option<&mut StatIndex>,
) -> Result<()> {
    let blob = blob_ref(desc)?;
    if blobs.contains(&blob.digest) {
        return Ok(());
    }
    let source = layout.blobs.path(&blob.digest);
    let stat = std::fs::symlink_metadata(&source)
        .ok()
        .filter(|m| m.is_file() && m.len() == blob.size)
        .map(|m| FileStat::of(&m));
    if let (Some(index), Some(stat)) = (verified.as_deref(), &stat)
        && index.known(&source, stat) == Some(blob.digest)
    {
        return copy_file(&source, &blobs.path(&blob.digest))
            .context(|| format!("storing blob {}", blob.digest));
    }
    let mut reader = layout.blobs.open_blob(&blob)?;
    let mut writer = blobs
        .writer()
        .context(|| "creating a blob in the build's store".into())?;
    if let Err(e) = io::copy(&mut reader, &mut writer) {
        // The blob's fault if the reader found one (it keeps it), else the
        // store's.
        return Err(match reader.finish() {
            Err(fault) => fault.into(),
            Ok(()) => Error::Io {
                context: format!("copying blob {}", blob.digest),
                source: e,
            },
        });
    }
    reader.finish()?;
    writer
        .commit()
        .context(|| format!("storing blob {}", blob.digest))?;
    if let (Some(index), Some(stat)) = (verified, stat) {
        index.record(&source, stat, blob.digest);
    }
    Ok(())
}
