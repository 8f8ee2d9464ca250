//! The SBOM and provenance a build attaches to what it made, as OCI 1.1
//! referrers listed in the layout beside it (issue 17).
//!
//! - a single-platform build: both are about the image manifest;
//! - a multi-platform build: an SBOM about each platform's manifest (what
//!   a platform holds is that manifest's; `ingot sbom --platform` of the
//!   index gives the same bytes), and one provenance about the index,
//!   which is what the build made from one recipe and one set of inputs.
//!
//! The SBOM says what `ingot sbom` says of the staged image: made from
//! the image's files as the build hashed them writing its layers (or as
//! the cache filed them when a build wrote them), else from the image read
//! back; the provenance from the build's inputs. Both are deterministic,
//! so an unchanged build attaches the same artifacts and leaves the layout
//! unchanged.

use std::collections::{BTreeMap, HashMap};

use oci_spec::image::{Descriptor, ImageManifest, MediaType};

use super::platforms::Output;
use super::{Built, Context};
use crate::attest::files::AsBuilt;
use crate::attest::{provenance, sbom};
use crate::diff::Side;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::artifact::Artifact;
use crate::image::identity::Identity;
use crate::image::provenance::platforms_value;
use crate::lock::{PackageSet, Pin};
use crate::recipe::{MAX_RECIPE_SIZE, Recipe};
use crate::store::BlobRef;
use crate::store::cache::{Cache, Summary};
use crate::store::file::{self, Links};
use crate::store::referrers::{self, Referrer};

/// The referrers of `built`, their blobs written to the staging store.
pub(super) fn referrers(
    recipe: &Recipe,
    built: &Output,
    ctx: &mut Context,
    pins: &[Pin],
    packages: &[PackageSet],
) -> Result<Vec<Referrer>> {
    let mut out = Vec::new();
    for image in built.images() {
        let document = match image.sbom {
            Some(made) => made,
            None => image_sbom(recipe, image, ctx, |_| Ok(None))?,
        };
        let subject = descriptor(image.manifest, MediaType::ImageManifest);
        // The document is in the staging store already.
        out.push(referrers::put_stored(
            ctx.blobs,
            &artifact(sbom::MEDIA_TYPE, Vec::new()),
            document,
            &subject,
        )?);
    }
    let (subject, media_type) = match built.index() {
        Some(index) => (index, MediaType::ImageIndex),
        None => match built.images() {
            [one] => (one.manifest, MediaType::ImageManifest),
            _ => return Err(Error::Failed("no image was built".into())),
        },
    };
    let statement = statement(recipe, built, ctx, subject, pins, packages)?;
    out.push(referrers::put(
        ctx.blobs,
        &artifact(provenance::MEDIA_TYPE, statement),
        &descriptor(subject, media_type),
    )?);
    Ok(out)
}

fn artifact(media_type: &str, document: Vec<u8>) -> Artifact {
    Artifact {
        artifact_type: media_type.into(),
        media_type: media_type.into(),
        document,
        annotations: HashMap::new(),
    }
}

fn descriptor(blob: BlobRef, media_type: MediaType) -> Descriptor {
    Descriptor::new(media_type, blob.size, blob.digest.to_oci())
}

/// The SBOM of one staged image, written into the staging store: made
/// from its files as `own` gives them (see [`write_sbom`]), or as the
/// cache kept it for the same image: an SBOM depends on the image's
/// content (its manifest digest), its name and this ingot alone, so a warm
/// build that makes the same image neither reads its layers again nor
/// asks `own`. Never held in memory whole.
pub(super) fn image_sbom<'v>(
    recipe: &Recipe,
    image: &Built,
    ctx: &mut Context,
    own: impl FnOnce(Option<&Cache>) -> Result<Option<AsBuilt<'v>>>,
) -> Result<BlobRef> {
    let reference = format!("{}:{}", recipe.spec.name, recipe.spec.version);
    let key = Digest::of(format!("sbom\n{}\n{reference}", image.manifest.digest).as_bytes());
    // "2": files listed layer by layer, as each holds them.
    let version = format!("sbom 2, ingot {}", crate::attest::VERSION);
    // The entry names the document's blob in the cache's store, which is
    // read to its digest unless it is unchanged since it last was.
    if let Some(cache) = &ctx.cache {
        let kept = cache
            .attestation(&key)
            .and_then(|s| s.decode::<(Digest, u64)>(&version));
        let blob = kept.map(|(digest, size)| BlobRef { digest, size });
        if let Some(blob) = blob.filter(|blob| kept_intact(cache, blob))
            && cache.copy_blob_to(&blob.digest, ctx.blobs).is_ok()
        {
            return Ok(blob);
        }
    }
    let mut writer = ctx
        .blobs
        .writer()
        .map_err(|e| Error::Failed(format!("{reference}: writing the SBOM: {e}")))?;
    let own = own(ctx.cache.as_ref())?;
    write_sbom(&reference, image, ctx, own, &mut writer)?;
    let document = writer
        .commit()
        .map_err(|e| Error::Failed(format!("{reference}: writing the SBOM: {e}")))?;
    if let Some(cache) = &ctx.cache {
        // A cache that cannot take it costs the next build time only.
        let kept = cache.keep_blob(&document.digest, ctx.blobs).is_ok();
        if let Some(summary) = Summary::encode(version, &(document.digest, document.size))
            && kept
        {
            if let Some(stat) = cache.blob_stat(&document.digest) {
                cache.record_checked(&document.digest, stat);
            }
            let _ = cache.put_attestation(&key, &summary);
        }
    }
    Ok(document)
}

/// Whether the cache's blob `blob` is what it was filed as: unchanged
/// since it was last read to its digest, or read to it now.
fn kept_intact(cache: &crate::store::cache::Cache, blob: &BlobRef) -> bool {
    let Some(stat) = cache.blob_stat(&blob.digest) else {
        return false;
    };
    if cache.blob_checked(&blob.digest, &stat) {
        return true;
    }
    let intact = cache
        .blobs
        .open_blob(blob)
        .and_then(|mut r| match std::io::copy(&mut r, &mut std::io::sink()) {
            Ok(_) => r.finish(),
            Err(e) => Err(r.cause(e)),
        })
        .is_ok();
    if intact {
        cache.record_checked(&blob.digest, stat);
    }
    intact
}

/// The SBOM of one staged image into `out`: from its files as the build
/// that made it has them (`own`: when it has every own layer's list),
/// else read back as any image is. Either way the same bytes (`ingot
/// sbom` of the image gives them).
fn write_sbom(
    reference: &str,
    image: &Built,
    ctx: &mut Context,
    own: Option<AsBuilt>,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let bytes = ctx
        .blobs
        .read(&image.manifest)
        .map_err(|e| Error::Failed(format!("reading the staged manifest: {e}")))?;
    let manifest: ImageManifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Failed(format!("reading the staged manifest: {e}")))?;
    let side = Side {
        reference,
        identity: Identity::Manifest(image.manifest.digest),
        annotations: manifest.annotations().as_ref(),
        config: &image.config,
        layers: &image.layers,
        labels: &[],
        index: None,
        blobs: ctx.blobs,
    };
    match own {
        Some(own) => {
            (ctx.log)(&format!("sbom {reference}: files as hashed when written"));
            let databases = own.databases();
            sbom::sbom_of(&side, &sbom::OwnFiles::AsBuilt(own), &databases, out)
        }
        None => {
            (ctx.log)(&format!(
                "sbom {reference}: reading the image back (an own layer's files were not hashed as it was written)"
            ));
            sbom::sbom_to(&side, ctx.progress, out)
        }
    }
}

/// The provenance of the build, about `subject`.
fn statement(
    recipe: &Recipe,
    built: &Output,
    ctx: &Context,
    subject: BlobRef,
    pins: &[Pin],
    packages: &[PackageSet],
) -> Result<Vec<u8>> {
    let bytes = file::read_regular(&recipe.file, Links::Follow, MAX_RECIPE_SIZE)
        .map_err(|e| Error::Failed(format!("{}: {e}", recipe.file.display())))?;
    // Where the recipe is: in its work tree, else its file name (where a
    // checkout is on the builder's disk is no parameter of the build).
    let recipe_name = recipe.path_in_work_tree().unwrap_or_else(|| {
        recipe
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let platforms: Vec<_> = built.images().iter().map(|b| b.platform.clone()).collect();
    let settings = ctx.settings;
    let build = provenance::Build {
        subject_name: format!("{}:{}", recipe.spec.name, recipe.spec.version),
        subject: subject.digest,
        parameters: provenance::Parameters {
            recipe: recipe_name,
            epoch: settings.epoch,
            compression: settings.compression.name().to_string(),
            platforms: platforms_value(&platforms)
                .split(',')
                .map(str::to_string)
                .collect(),
            revision: settings.revision.clone(),
            source: settings.source.clone(),
        },
        recipe_digest: crate::digest::Digest::of(&bytes),
        lock_digest: ctx.lock_digest,
        pins,
        packages,
    };
    let internal = BTreeMap::from([
        ("layerEncoding", crate::layer::ENCODING_VERSION.to_string()),
        ("sealPolicy", crate::seal::POLICY_VERSION.to_string()),
    ]);
    provenance::statement(&build, internal)
}
