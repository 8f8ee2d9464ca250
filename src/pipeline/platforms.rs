//! What a build puts in the layout: one image, or for a recipe with
//! `platforms`, one image per platform under an image index (README,
//! "Multi-platform builds").
//!
//! Each platform is built as its own recipe ([`Recipe::for_platform`]), on
//! that platform of the base, with the pins it resolved recorded for that
//! platform ([`lock::per_platform`]). The index lists the manifests in the
//! recipe's order, each descriptor with its platform, and is what the
//! layout tags with the recipe's version. A recipe with one platform
//! builds as it always has: one manifest, tagged.

use std::collections::{HashMap, HashSet};

use oci_spec::image::MediaType;

use super::{Built, Context, Emit, LayerReport, Report, build_image, collect_pins, record};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::assemble::{self, IndexEntry};
use crate::image::{annotation, provenance};
use crate::lock::{self, PackageSet, Pin};
use crate::recipe::Recipe;
use crate::store::BlobRef;
use crate::store::layout::Entry;

/// The images a build made and, for a multi-platform recipe, the index
/// that lists them.
pub(super) struct Output {
    images: Vec<Built>,
    index: Option<BlobRef>,
}

/// One platform's image in the report of a multi-platform build.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlatformReport {
    pub platform: String,
    pub digest: Digest,
    pub config: Digest,
    pub base: String,
    pub layers: Vec<LayerReport>,
}

/// Builds `recipe`: once, or once per platform of its `platforms`, then
/// their index.
pub(super) fn build(recipe: &Recipe, ctx: &mut Context) -> Result<Output> {
    let Some(count) = recipe.platforms().map(<[_]>::len) else {
        return Ok(Output {
            images: vec![build_image(recipe, ctx)?],
            index: None,
        });
    };
    let mut images = Vec::with_capacity(count);
    let pins = each_platform(recipe, count, ctx, |one, ctx| {
        images.push(build_image(one, ctx)?);
        Ok(())
    })?;
    ctx.pins.extend(pins);
    let entries: Vec<IndexEntry> = images
        .iter()
        .map(|b| IndexEntry {
            digest: b.manifest.digest,
            size: b.manifest.size,
            platform: &b.platform,
        })
        .collect();
    let annotations = index_annotations(recipe, &images, ctx)?;
    let json = assemble::index(&entries, annotations).map_err(Error::Failed)?;
    let index = ctx
        .blobs
        .put(&json)
        .context(|| "storing the image index".into())?;
    Ok(Output {
        images,
        index: Some(index),
    })
}

/// The index's annotations: what a rebuild of the whole index reads
/// (`image::provenance`), the same as each image records, with the
/// platforms in order in place of one platform.
fn index_annotations(
    recipe: &Recipe,
    images: &[Built],
    ctx: &mut Context,
) -> Result<HashMap<String, String>> {
    let recorded = ctx.recorded(recipe)?;
    let created = crate::image::rfc3339(ctx.settings.epoch);
    let platforms: Vec<_> = images.iter().map(|b| b.platform.clone()).collect();
    let mut annotations = record::annotations(ctx.settings, &created, &recorded);
    annotations.insert(
        annotation::PLATFORMS.to_string(),
        provenance::platforms_value(&platforms),
    );
    Ok(annotations)
}

/// Resolves the pins of `recipe` (see [`collect_pins`]), once per platform
/// of a multi-platform recipe.
pub(super) fn collect(recipe: &Recipe, ctx: &mut Context) -> Result<bool> {
    let Some(count) = recipe.platforms().map(<[_]>::len) else {
        return Ok(false);
    };
    let pins = each_platform(recipe, count, ctx, collect_pins)?;
    ctx.pins.extend(pins);
    Ok(true)
}

/// Runs `work` on the recipe for each of its `count` platforms, and
/// returns the pins they resolved, per platform where they differ.
fn each_platform(
    recipe: &Recipe,
    count: usize,
    ctx: &mut Context,
    mut work: impl FnMut(&Recipe, &mut Context) -> Result<()>,
) -> Result<Vec<Pin>> {
    let mut resolved = Vec::with_capacity(count);
    for index in 0..count {
        let one = recipe.for_platform(index)?;
        let platform = one
            .wanted_platform()
            .map(ToString::to_string)
            .unwrap_or_default();
        (ctx.log)(&format!("platform {platform}"));
        let mark = ctx.pins.len();
        work(&one, ctx)?;
        resolved.push((platform, ctx.pins.split_off(mark)));
    }
    Ok(lock::per_platform(resolved))
}

impl Output {
    /// The images built, one per platform.
    pub(super) fn images(&self) -> &[Built] {
        &self.images
    }

    /// The index of a multi-platform build.
    pub(super) fn index(&self) -> Option<BlobRef> {
        self.index
    }
    /// Every blob the layout needs: the images' manifests, configs and
    /// layers, and the index. None when a layer's digest cannot be read
    /// (then everything is kept).
    pub(super) fn referenced(&self) -> Option<HashSet<Digest>> {
        let mut out: HashSet<Digest> = self.index.iter().map(|i| i.digest).collect();
        for built in &self.images {
            out.extend([built.manifest.digest, built.config_blob.digest]);
            // Made as the image was: the referrers point at it.
            out.extend(built.sbom.map(|sbom| sbom.digest));
            for layer in &built.layers {
                out.insert(Digest::try_from(layer.digest()).ok()?);
            }
        }
        Some(out)
    }

    /// The layout entry that tags the build: the index, or the one image's
    /// manifest with its platform.
    pub(super) fn entry<'a>(&'a self, recipe: &'a Recipe) -> Result<Entry<'a>> {
        let (manifest, media_type, platform) = match (&self.index, self.images.as_slice()) {
            (Some(index), _) => (*index, MediaType::ImageIndex, None),
            (None, [one]) => (one.manifest, MediaType::ImageManifest, Some(&one.platform)),
            (None, _) => return Err(Error::Failed("no image was built".into())),
        };
        Ok(Entry {
            recipe: Some(&recipe.spec.name),
            tag: Some(&recipe.spec.version),
            manifest,
            media_type,
            platform,
            artifact_type: None,
        })
    }

    /// The build's report: the image's, or the index's with one entry per
    /// platform.
    pub(super) fn report(
        self,
        recipe: &Recipe,
        emit: &Emit,
        pins: Vec<Pin>,
        packages: Vec<PackageSet>,
    ) -> Result<Report> {
        let report = |digest, config, base, layers, platforms| Report {
            name: recipe.spec.name.clone(),
            version: recipe.spec.version.clone(),
            digest,
            config,
            layout: emit.output.clone(),
            base,
            layers,
            platforms,
            pins,
            packages,
            // The commit fills these in.
            tags: Vec::new(),
            unchanged: false,
            cache: super::CacheReport::default(),
        };
        let Some(index) = self.index else {
            let one = self
                .images
                .into_iter()
                .next()
                .ok_or_else(|| Error::Failed("no image was built".into()))?;
            return Ok(report(
                one.manifest.digest,
                Some(one.config_blob.digest),
                one.base_name,
                one.reports,
                Vec::new(),
            ));
        };
        let platforms: Vec<PlatformReport> = self
            .images
            .into_iter()
            .map(|one| PlatformReport {
                platform: one.platform.to_string(),
                digest: one.manifest.digest,
                config: one.config_blob.digest,
                base: one.base_name,
                layers: one.reports,
            })
            .collect();
        let base = platforms
            .first()
            .map(|p| p.base.clone())
            .unwrap_or_default();
        Ok(report(index.digest, None, base, Vec::new(), platforms))
    }
}
