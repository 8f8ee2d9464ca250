//! Images from a registry into a content-addressed [`BlobStore`]:
//! [`fetch_image`] resolves the manifest (an index to one platform), then
//! fetches the config and layers, each verified before it lands.

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use super::push::Tally;
use super::remote::RawManifest;
use super::{RegistryError, Remote};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result, Within};
use crate::image::reference::RegistryRef;
use crate::image::{IndexSummary, MAX_CONFIG_SIZE, Platform, media, select_platform};
use crate::store::layout::blob_ref;
use crate::store::{BlobRef, BlobStore};

/// How deep indexes may nest before the registry is called hostile.
const MAX_INDEX_DEPTH: usize = 4;

/// An image fetched into a store: every blob it names is there, checked.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The platform manifest, as stored.
    pub manifest_ref: BlobRef,
    pub media_type: String,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// The index the reference named, when it named one.
    pub index_digest: Option<Digest>,
    /// That index's digest and platforms.
    pub index: Option<IndexSummary>,
    /// Blobs downloaded (not already in the store).
    pub downloaded: Tally,
}

/// Fetches the image `reference` names (by digest, or by tag) into
/// `store`, choosing `platform` from an index. The manifest is checked
/// against the reference's digest (or, from an index, the descriptor's),
/// and every blob against its descriptor's size and digest before it
/// lands. Blobs the store already has, or that `seed` has and that check
/// out, are not fetched.
///
/// This is what a `docker://` base needs: the manifest, config and layers
/// in the build's (or cache's) store, and both digests for the lock.
pub fn fetch_image(
    remote: &Remote,
    reference: &RegistryRef,
    platform: &Platform,
    store: &BlobStore,
    seed: Option<&BlobStore>,
) -> Result<Fetched> {
    let (raw, index) = resolve_manifest(remote, reference, platform)?;
    let manifest: ImageManifest = parse(&raw, reference)?;
    let manifest_ref = store
        .put(&raw.bytes)
        .context(|| format!("storing manifest {}", raw.digest))?;

    let (config, downloaded) = fetch_blobs(remote, reference, &manifest, store, seed)?;
    Ok(Fetched {
        manifest_ref,
        media_type: raw.media_type,
        manifest,
        config,
        index_digest: index.as_ref().map(|i| i.digest),
        index,
        downloaded,
    })
}

/// A reference the registry has no manifest for names no image: the user's
/// mistake (exit 2), as a layout path or an archive that is not there is.
/// What an image that is there lacks (a platform's manifest, a blob) stays
/// a failure of the image.
fn no_such_image(err: Error) -> Error {
    match err {
        Error::Registry(RegistryError::NotFound { what }) => {
            Error::Usage(format!("{what}: not found"))
        }
        other => other,
    }
}

/// The image manifest `reference` names, following indexes (at most
/// [`MAX_INDEX_DEPTH`] deep) to `platform`; with the first index when
/// there was one.
fn resolve_manifest(
    remote: &Remote,
    reference: &RegistryRef,
    platform: &Platform,
) -> Result<(RawManifest, Option<IndexSummary>)> {
    let mut raw = remote.get_manifest(reference).map_err(no_such_image)?;
    let mut named = None;
    for _ in 0..MAX_INDEX_DEPTH {
        if !media::is_index(&raw.media_type) {
            break;
        }
        let index: ImageIndex = parse(&raw, reference)?;
        if named.is_none() {
            named = Some(IndexSummary::of(raw.digest, &index));
        }
        let child = select_platform(&index, platform)
            .map_err(|m| Error::Usage(format!("{reference}: {m}")))?;
        let child_ref = blob_ref(child)?;
        let at = reference.with_digest(child_ref.digest);
        raw = remote.get_manifest(&at)?;
        if raw.bytes.len() as u64 != child_ref.size {
            return Err(RegistryError::SizeMismatch {
                what: format!("manifest {at}"),
                expected: child_ref.size,
                found: raw.bytes.len().to_string(),
            }
            .into());
        }
    }
    if !media::is_manifest(&raw.media_type) {
        return Err(RegistryError::Protocol {
            what: reference.with_digest(raw.digest).to_string(),
            message: format!("a {}, not an image manifest", raw.media_type),
        }
        .into());
    }
    Ok((raw, named))
}

/// Fetches `manifest`'s config and layers into `store` (those `seed` or
/// the store hold are not downloaded), each verified as it streams;
/// returns the parsed config and what was downloaded.
fn fetch_blobs(
    remote: &Remote,
    reference: &RegistryRef,
    manifest: &ImageManifest,
    store: &BlobStore,
    seed: Option<&BlobStore>,
) -> Result<(ImageConfiguration, Tally)> {
    let repo = reference.with_tag(None);
    let mut downloaded = Tally::default();
    let config_ref = blob_ref(manifest.config())?;
    if config_ref.size > MAX_CONFIG_SIZE {
        return Err(RegistryError::Protocol {
            what: format!("config {} of {reference}", config_ref.digest),
            message: format!(
                "claims {} bytes; refusing more than {MAX_CONFIG_SIZE}",
                config_ref.size
            ),
        }
        .into());
    }
    let layers = manifest
        .layers()
        .iter()
        .map(blob_ref)
        .collect::<Result<Vec<_>>>()?;
    if let Some(seed) = seed {
        for blob in std::iter::once(&config_ref).chain(&layers) {
            store.adopt(seed, blob);
        }
    }
    let progress = remote.progress();
    let total = std::iter::once(&config_ref)
        .chain(&layers)
        .filter(|b| !store.contains(&b.digest))
        .map(|b| b.size)
        .sum();
    progress.start(&format!("pulling {reference}"), total);

    let what = |blob: &BlobRef, kind: &str| format!("{kind} {} of {repo}", blob.digest);
    if remote.fetch_blob(&repo, &config_ref, store, &what(&config_ref, "config"))? {
        downloaded.blobs += 1;
        downloaded.bytes += config_ref.size;
    }
    let config_bytes = store
        .read(&config_ref)
        .within(|| format!("config of {reference}"))?;
    let config: ImageConfiguration =
        serde_json::from_slice(&config_bytes).map_err(|e| RegistryError::Protocol {
            what: what(&config_ref, "config"),
            message: format!("not an image config: {e}"),
        })?;

    for layer in &layers {
        if remote.fetch_blob(&repo, layer, store, &what(layer, "layer"))? {
            downloaded.blobs += 1;
            downloaded.bytes += layer.size;
        }
    }
    progress.finish();
    Ok((config, downloaded))
}

fn parse<T: serde::de::DeserializeOwned>(raw: &RawManifest, reference: &RegistryRef) -> Result<T> {
    serde_json::from_slice(&raw.bytes).map_err(|e| {
        RegistryError::Protocol {
            what: reference.with_digest(raw.digest).to_string(),
            message: format!("invalid {}: {e}", raw.media_type),
        }
        .into()
    })
}
