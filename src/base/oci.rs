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
use crate::store::BlobStore;
use crate::store::cache::Cache;
use crate::store::layout::{Layout, blob_ref, open_image};

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
    for layer in found.manifest.layers() {
        copy_blob(&found.layout, layer, blobs, cache).within(|| reference.to_string())?;
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

/// Copies one blob into `blobs`, checking it on the way. Blobs are named
/// by their content, so one the cache holds, unchanged since it was checked,
/// is taken from there (linked, as cached layers are) and the layout's copy
/// is not read at all; one read from the layout is kept in the cache.
fn copy_blob(
    layout: &Layout,
    desc: &Descriptor,
    blobs: &BlobStore,
    cache: Option<&Cache>,
) -> Result<()> {
    let blob = blob_ref(desc)?;
    if blobs.contains(&blob.digest) {
        return Ok(());
    }
    if let Some(cache) = cache
        && let Some(stat) = cache.blob_stat(&blob.digest)
        && stat.size == blob.size
        && cache.blob_checked(&blob.digest, &stat)
    {
        return cache.copy_blob_to(&blob.digest, blobs);
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
    if let Some(cache) = cache {
        // A blob the cache cannot keep only costs the next build a read.
        if cache.keep_blob(&blob.digest, blobs).is_ok()
            && let Some(stat) = cache.blob_stat(&blob.digest)
        {
            cache.record_checked(&blob.digest, stat);
        }
    }
    Ok(())
}
