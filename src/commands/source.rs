//! The image a command reads, from any transport: one opener for
//! `inspect`, `audit`, `export` and `bind`.
//!
//! - `oci:` is read in place, from the layout ([`open_image`]);
//! - `docker-archive:` goes through the verified reader
//!   ([`docker_archive::load_keeping_config`]), which checks the config
//!   against its name and each layer against its diff_id while re-encoding
//!   the layers into a temp store;
//! - `docker://` is fetched from the registry into a temp store
//!   ([`fetch_image`]), following indexes to the platform, each blob
//!   checked (size and digest) as it streams. Nothing needs pulling first.
//!
//! Whichever it was, a command gets the same [`Source`]: a config, layer
//! descriptors and a store in which every blob they name is what they
//! say. A temp store lives as long as the `Source`: it is removed when the
//! `Source` drops, on success and on every error alike.

use std::collections::HashMap;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};

use crate::base::docker_archive;
use crate::error::{Error, IoContext, Result};
use crate::image::config::platform_of;
pub use crate::image::identity::{DigestOf, Identity};
use crate::image::reference::{ImageRef, OciRef, RegistryRef};
use crate::image::{IndexSummary, PlatformChoice, annotation};
use crate::registry::{Access, Progress, Remote, fetch_image};
use crate::seal::LayerLabel;
use crate::store::layout::{blob_ref, check_image, open_image};
use crate::store::workdir::WorkDir;
use crate::store::{BlobRef, BlobStore};

/// An image opened for reading, its blobs at hand and verified as read.
#[derive(Debug)]
pub struct Source {
    /// The reference as given.
    pub reference: ImageRef,
    pub identity: Identity,
    /// The image's manifest; None for a docker-archive, which has none.
    pub manifest: Option<ImageManifest>,
    pub config: ImageConfiguration,
    /// Where the config's bytes are in `blobs`.
    pub config_blob: BlobRef,
    /// The layers, bottom first, as `blobs` holds them. For a
    /// docker-archive these are ingot's re-encodings, which exist only in
    /// the temp store: reports name those layers by `labels`.
    pub layers: Vec<Descriptor>,
    /// A name for each layer in reports: its recipe name where ingot
    /// recorded one, else its position; its blob digest, or for a
    /// docker-archive its diff_id (what the archive holds).
    pub labels: Vec<LayerLabel>,
    /// The image's tag where it came from: its tag in the layout, or the
    /// reference's tag in the registry; None for a docker-archive.
    pub tag: Option<String>,
    /// The image index the reference named (a multi-platform image), from
    /// which `platform` was taken.
    pub index: Option<IndexSummary>,
    /// Where the config and layer blobs are.
    pub blobs: BlobStore,
    /// The registry a `docker://` image came from, connected (its
    /// credentials and token at hand), for what else a command asks it.
    pub remote: Option<Remote>,
    /// The temp store of a docker-archive or registry image, removed on
    /// drop.
    _scratch: Option<WorkDir>,
}

impl Source {
    /// The manifest's annotations (a docker-archive has none).
    pub fn annotations(&self) -> Option<&HashMap<String, String>> {
        self.manifest
            .as_ref()
            .and_then(|m| m.annotations().as_ref())
    }
}

/// Opens `image`, choosing `platform` from an index (a single-platform
/// image must be of it when the user named it); a `docker://` image is
/// fetched as `access` allows, its transfer reported to `progress`.
/// The config is read and checked; layers are in `blobs`, to be verified
/// again as they are read (for a layout, they have not been read yet).
pub fn open(
    image: &ImageRef,
    platform: &PlatformChoice,
    access: &Access,
    progress: &Progress,
) -> Result<Source> {
    match image {
        ImageRef::Oci(reference) => open_layout(reference, platform),
        ImageRef::DockerArchive(path) => {
            let source = open_archive(image, path, progress)?;
            check_platform(image, platform, &source.config)?;
            Ok(source)
        }
        ImageRef::Docker(reference) => open_registry(reference, platform, access, progress),
    }
}

/// A single-platform image against the platform the user named.
fn check_platform(
    image: &dyn std::fmt::Display,
    platform: &PlatformChoice,
    config: &ImageConfiguration,
) -> Result<()> {
    platform
        .check_single(&platform_of(config))
        .map_err(|m| Error::Usage(format!("{image}: {m}")))
}

fn open_layout(reference: &OciRef, platform: &PlatformChoice) -> Result<Source> {
    let found = open_image(reference, &reference.path, &platform.platform)?;
    if found.index.is_none() {
        check_platform(reference, platform, &found.config)?;
    }
    let labels = manifest_labels(&found.manifest);
    Ok(Source {
        reference: ImageRef::Oci(reference.clone()),
        identity: Identity::Manifest(found.manifest_digest),
        config_blob: blob_ref(found.manifest.config())?,
        layers: found.manifest.layers().clone(),
        manifest: Some(found.manifest),
        config: found.config,
        labels,
        tag: found.tag,
        index: found.index,
        blobs: found.layout.blobs,
        remote: None,
        _scratch: None,
    })
}

fn open_archive(image: &ImageRef, path: &std::path::Path, progress: &Progress) -> Result<Source> {
    // As for a layout that is not there: the reference is wrong. (A path
    // that is there but no regular file is refused when it is opened.)
    if std::fs::metadata(path).is_err() {
        return Err(Error::Usage(format!("{image}: no such file")));
    }
    let (scratch, blobs) = scratch_store()?;
    let (base, config_blob) = docker_archive::load_keeping_config(path, &blobs, progress)?;
    let diff_ids = crate::image::config::diff_ids(&base.config)
        .map_err(|m| Error::Failed(format!("{image}: {m}")))?;
    let labels = diff_ids
        .iter()
        .enumerate()
        .map(|(i, d)| LayerLabel {
            digest: d.to_string(),
            name: format!("#{}", i + 1),
        })
        .collect();
    Ok(Source {
        reference: image.clone(),
        identity: Identity::Config(config_blob.digest),
        manifest: None,
        config: base.config,
        config_blob,
        layers: base.layers,
        labels,
        tag: None,
        index: None,
        blobs,
        remote: None,
        _scratch: Some(scratch),
    })
}

fn open_registry(
    reference: &RegistryRef,
    platform: &PlatformChoice,
    access: &Access,
    progress: &Progress,
) -> Result<Source> {
    let remote = Remote::connect(reference, access, progress.clone())?;
    let (scratch, blobs) = scratch_store()?;
    let fetched = fetch_image(&remote, reference, &platform.platform, &blobs, None)?;
    if fetched.index_digest.is_none() {
        check_platform(reference, platform, &fetched.config)?;
    }
    check_image(&fetched.manifest, &fetched.config)
        .map_err(|m| Error::Failed(format!("{reference}: {m}")))?;
    Ok(Source {
        reference: ImageRef::Docker(reference.clone()),
        identity: Identity::Manifest(fetched.manifest_ref.digest),
        config_blob: blob_ref(fetched.manifest.config())?,
        layers: fetched.manifest.layers().clone(),
        labels: manifest_labels(&fetched.manifest),
        manifest: Some(fetched.manifest),
        config: fetched.config,
        tag: reference.tag.clone(),
        index: fetched.index,
        blobs,
        remote: Some(remote),
        _scratch: Some(scratch),
    })
}

/// A store in a new temp directory, removed when the directory drops.
fn scratch_store() -> Result<(WorkDir, BlobStore)> {
    let dir = WorkDir::new_in(&std::env::temp_dir(), ".ingot-image-", 0o700)
        .context(|| "creating a temp directory for the image's blobs".into())?;
    let blobs = BlobStore::open(dir.path())
        .context(|| format!("creating a blob store in {}", dir.path().display()))?;
    Ok((dir, blobs))
}

/// Each layer by its recipe name where ingot recorded one, else its
/// position, and its blob digest.
fn manifest_labels(manifest: &ImageManifest) -> Vec<LayerLabel> {
    manifest
        .layers()
        .iter()
        .enumerate()
        .map(|(i, desc)| LayerLabel {
            digest: desc.digest().to_string(),
            name: desc
                .annotations()
                .as_ref()
                .and_then(|a| a.get(annotation::LAYER_NAME))
                .cloned()
                .unwrap_or_else(|| format!("#{}", i + 1)),
        })
        .collect()
}
