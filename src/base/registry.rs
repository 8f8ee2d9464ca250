//! Bases from registries (`docker://HOST/REPO:TAG` or `@sha256:…`): a tag
//! is resolved once and pinned in ingot.lock; blobs are verified as they
//! stream, and kept in the build cache for later builds.

use oci_spec::image::{ImageConfiguration, ImageManifest};

use super::{BaseImage, Resolver, base_error};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::Platform;
use crate::image::config::platform_of;
use crate::image::media::Compression;
use crate::image::reference::RegistryRef;
use crate::image::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use crate::recipe::Recipe;
use crate::registry;
use crate::store::layout;
use crate::store::{BlobRef, BlobStore};

/// Resolves a `docker://` base. A tag is resolved once and pinned in
/// ingot.lock: with a pin, the pinned manifest is used whatever the tag
/// says now. Blobs go to the cache (shared by later builds) when there is
/// one, and are linked into the build's store; an image pinned by digest
/// whose blobs the cache holds is used without contacting the registry.
pub fn resolve(
    recipe: &Recipe,
    from: &str,
    reference: &RegistryRef,
    platform: &Platform,
    resolver: &Resolver,
) -> Result<BaseImage> {
    let pinned = match reference.digest {
        Some(_) => reference.clone(),
        None if resolver.repin => reference.clone(),
        None => match super::locked_pin(resolver.lock, recipe, from, platform)
            .and_then(|p| p.manifest)
        {
            Some(manifest) => reference.with_digest(manifest),
            None => reference.clone(),
        },
    };
    let store = resolver.cache.map_or(resolver.blobs, |c| &c.blobs);
    let local = pinned.digest.and_then(|d| cached_image(store, &d));
    let (manifest_digest, manifest, config) = match local {
        Some(found) => found,
        None => {
            let remote =
                registry::Remote::connect(&pinned, resolver.registry, resolver.progress.clone())
                    .map_err(|e| base_error(recipe, e))?;
            let fetched = registry::fetch_image(&remote, &pinned, platform, store, None)
                .map_err(|e| base_error(recipe, e))?;
            (
                fetched.manifest_ref.digest,
                fetched.manifest,
                fetched.config,
            )
        }
    };
    let failed = |m: String| base_error(recipe, Error::Failed(format!("{reference}: {m}")));
    if config.rootfs().diff_ids().len() != manifest.layers().len() {
        return Err(failed(
            "the manifest's layers and the config's diff_ids differ in number".into(),
        ));
    }
    for layer in manifest.layers() {
        Compression::of(layer.media_type()).map_err(failed)?;
        let blob = layout::blob_ref(layer)?;
        if let Some(cache) = resolver.cache {
            cache.copy_blob_to(&blob.digest, resolver.blobs)?;
        }
    }
    let config_digest =
        Digest::try_from(manifest.config().digest()).map_err(|e| failed(e.to_string()))?;
    Ok(BaseImage {
        name: reference.to_string(),
        manifest_digest: Some(manifest_digest),
        config_digest: Some(config_digest),
        platform: platform_of(&config),
        layers: manifest.layers().clone(),
        config,
    })
}

/// An image manifest and its config from `store`, when both are there and
/// check out. Layers are verified as they are read later.
fn cached_image(
    store: &BlobStore,
    manifest: &Digest,
) -> Option<(Digest, ImageManifest, ImageConfiguration)> {
    // Held to the sizes a fetch accepts: a blob in the cache is not
    // trusted with memory either.
    let path = store.path(manifest);
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() || meta.len() > MAX_MANIFEST_SIZE {
        return None;
    }
    let manifest_ref = BlobRef {
        digest: *manifest,
        size: meta.len(),
    };
    let parsed: ImageManifest = serde_json::from_slice(&store.read(&manifest_ref).ok()?).ok()?;
    let config_ref = layout::blob_ref(parsed.config()).ok()?;
    if config_ref.size > MAX_CONFIG_SIZE {
        return None;
    }
    let config: ImageConfiguration = serde_json::from_slice(&store.read(&config_ref).ok()?).ok()?;
    let present = parsed.layers().iter().all(|l| {
        layout::blob_ref(l).is_ok_and(|b| {
            std::fs::metadata(store.path(&b.digest)).is_ok_and(|m| m.len() == b.size)
        })
    });
    present.then_some((*manifest, parsed, config))
}
