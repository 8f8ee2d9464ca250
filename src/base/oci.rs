//! Bases from OCI image layouts on disk (`oci:PATH[:TAG]`,
//! `oci:PATH@sha256:…`), read without trusting them: every blob is checked
//! against the digest and size its parent promised before it is used.

use std::io;
use std::path::Path;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use super::BaseImage;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::config::platform_of;
use crate::image::media::{self, Compression};
use crate::image::reference::OciRef;
use crate::image::{Platform, select_platform};
use crate::store::BlobStore;
use crate::store::layout::{Layout, blob_ref};

/// How deep indexes may nest before the layout is called hostile.
const MAX_INDEX_DEPTH: usize = 4;

/// An image found in a layout: its manifest and config, read and checked.
pub struct Found {
    pub layout: Layout,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
}

/// Finds the image `reference` names in the layout at `dir`, choosing
/// `platform` from an index. The manifest and config are verified; layer
/// blobs are not read yet.
///
/// A layout or tag that is not there is a usage error; a layout whose
/// blobs are not what its descriptors say is a failure.
pub fn open(reference: &OciRef, dir: &Path, platform: &Platform) -> Result<Found> {
    let failed = |m: String| Error::Failed(format!("{reference}: {m}"));
    let layout = Layout::open(dir)?;
    let mut desc = layout.find(&reference.selector)?;
    for _ in 0..MAX_INDEX_DEPTH {
        if !media::is_index(desc.media_type().as_ref()) {
            break;
        }
        let index: ImageIndex = layout.read_json(&desc)?;
        desc = select_platform(&index, platform)
            .map_err(|m| Error::Usage(format!("{reference}: {m}")))?
            .clone();
    }
    if !media::is_manifest(desc.media_type().as_ref()) {
        return Err(failed(format!(
            "{} is a {}, not an image manifest",
            desc.digest(),
            desc.media_type()
        )));
    }
    let manifest_digest = digest_of(&desc)?;
    let manifest: ImageManifest = layout.read_json(&desc)?;
    let config: ImageConfiguration = layout.read_json(manifest.config())?;
    let diff_ids = config.rootfs().diff_ids().len();
    if diff_ids != manifest.layers().len() {
        return Err(failed(format!(
            "the manifest lists {} layers but the config {diff_ids} diff_ids",
            manifest.layers().len()
        )));
    }
    for layer in manifest.layers() {
        Compression::of(layer.media_type()).map_err(failed)?;
    }
    Ok(Found {
        layout,
        manifest_digest,
        manifest,
        config,
    })
}

/// Loads the image `reference` names as a base: [`open`], then its layer
/// blobs copied, checked, into `blobs`.
pub fn load(
    reference: &OciRef,
    dir: &Path,
    platform: &Platform,
    blobs: &BlobStore,
) -> Result<BaseImage> {
    let found = open(reference, dir, platform)?;
    for layer in found.manifest.layers() {
        copy_blob(&found.layout, layer, blobs)
            .map_err(|m| Error::Failed(format!("{reference}: {m}")))?;
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

/// Copies one blob into `blobs`, checking it on the way.
fn copy_blob(
    layout: &Layout,
    desc: &Descriptor,
    blobs: &BlobStore,
) -> std::result::Result<(), String> {
    let blob = blob_ref(desc).map_err(|e| e.to_string())?;
    if blobs.contains(&blob.digest) {
        return Ok(());
    }
    let mut reader = layout.blobs.open_blob(&blob).map_err(|e| e.to_string())?;
    let mut writer = blobs.writer().map_err(|e| e.to_string())?;
    io::copy(&mut reader, &mut writer).map_err(|e| format!("copying blob {}: {e}", blob.digest))?;
    reader.finish().map_err(|e| e.to_string())?;
    writer.commit().map_err(|e| e.to_string())?;
    Ok(())
}
