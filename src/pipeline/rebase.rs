//! The build pipeline's part of `ingot rebase` (see [`crate::rebase`] for
//! why a kept layer is what a rebuild would write): bases resolved and read
//! as a build resolves and reads them, the image's own layers read on the
//! old base, and the rebased image assembled, sealed and committed by the
//! build's own code. With a recipe, [`build_reusing`] is a build in which
//! the image's layers that may be kept are served like cache entries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use oci_spec::image::{Config, Descriptor, ImageConfiguration, ImageManifest, MediaType};

use super::{Emit, Log, Report, Settings, Sources, build_with, read_base};
use crate::base::{BaseImage, BaseRef};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::assemble::{Lower, NewLayer, assemble};
use crate::image::config::{diff_ids, merge, platform_of};
use crate::image::provenance::RebuildSettings;
use crate::image::{Platform, annotation};
use crate::layer;
use crate::progress::Progress;
use crate::rebase::{self, Lookup};
use crate::recipe::Recipe;
use crate::rootfs::meta::ImagePath;
use crate::rootfs::{Change, View};
use crate::seal::{self, LayerLabel, SealAllow};
use crate::store::layout::{self, Staging, Tagged, blob_ref};
use crate::store::{BlobRef, BlobStore};

/// The image being rebased, opened: its manifest, config and blobs.
pub struct Image<'a> {
    /// How the user named it, for messages.
    pub name: String,
    pub manifest: &'a ImageManifest,
    pub config: &'a ImageConfiguration,
    pub blobs: &'a BlobStore,
}

impl Image<'_> {
    fn annotations(&self) -> HashMap<String, String> {
        self.manifest.annotations().clone().unwrap_or_default()
    }
}

/// One of the image's own layers, read on its old base.
#[derive(Debug, Clone)]
pub struct OwnLayer {
    pub name: String,
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    /// Its `dev.ingot.layer.base-dependent`.
    pub dependent: bool,
    /// What the view below it had where it looked (see [`rebase::lookups`]).
    pub lookups: BTreeMap<ImagePath, Lookup>,
    /// The paths it names that the old base has.
    pub taken: Vec<ImagePath>,
}

impl OwnLayer {
    /// Why it cannot be kept as it is: it depends on the base.
    pub fn dependence(&self) -> String {
        if self.taken.is_empty() {
            "its steps read the base (a template naming base, a path through a base symlink)".into()
        } else {
            let paths: Vec<String> = self.taken.iter().map(ToString::to_string).collect();
            format!("it takes {} from the old base", paths.join(", "))
        }
    }
}

/// The layers one build may take from the image rather than build:
/// `Layers::add` serves one when the view below it looks, where it looked,
/// as it did on the old base.
pub struct Donor {
    /// The recipe file whose layers these are (`Recipe::file`).
    pub recipe: std::path::PathBuf,
    pub blobs: BlobStore,
    pub layers: Vec<OwnLayer>,
}

impl Donor {
    pub(super) fn layer(&self, name: &str) -> Option<&OwnLayer> {
        self.layers.iter().find(|l| l.name == name)
    }
}

/// A base reference resolved as a recipe in `dir` with `base: reference`
/// would resolve it (a stemcell is built, into `blobs`, through the cache),
/// for `platform`.
pub fn resolve_base(
    reference: &BaseRef,
    dir: &Path,
    platform: &Platform,
    blobs: &BlobStore,
    sources: &Sources,
    progress: &Progress,
    log: Log,
) -> Result<BaseImage> {
    let file = dir.join("(rebase)");
    let mut recipe = Recipe::parse(
        "name: rebase\nversion: 0.0.0\nbase: scratch\n",
        &file,
        dir.into(),
    )
    .map_err(|e| Error::Failed(format!("resolving {reference}: {e}")))?;
    recipe.spec.base = reference.clone();
    recipe.spec.platform = Some(platform.clone());
    let settings = Settings::stemcell();
    let mut ctx = super::Context::new(blobs, &settings, sources, progress, &recipe, log)?;
    // Nothing is locked: the reference is resolved as it reads now.
    ctx.lock = None;
    ctx.resolve_base(&recipe)
}

/// The image's old base, named by its annotations, resolved from `dir`
/// and checked against the digest the image records; and the settings the
/// image records.
pub fn old_base(
    image: &Image,
    dir: &Path,
    blobs: &BlobStore,
    sources: &Sources,
    progress: &Progress,
    log: Log,
) -> Result<(BaseImage, RebuildSettings)> {
    let annotations = image.annotations();
    let settings = RebuildSettings::from_annotations(&annotations).map_err(|e| Error::Within {
        context: image.name.clone(),
        source: Box::new(e),
    })?;
    let (Some(name), Some(recorded)) = (
        annotations.get(annotation::BASE_NAME),
        annotations.get(annotation::BASE_DIGEST),
    ) else {
        return Err(Error::Failed(format!(
            "{}: records no base ({} and {}): it was built on scratch, or not by ingot",
            image.name,
            annotation::BASE_NAME,
            annotation::BASE_DIGEST
        )));
    };
    let reference: BaseRef = name.parse().map_err(|e| {
        Error::Failed(format!(
            "{}: its {}: {e}",
            image.name,
            annotation::BASE_NAME
        ))
    })?;
    let platform = platform_of(image.config);
    let base = resolve_base(&reference, dir, &platform, blobs, sources, progress, log)?;
    let found = base
        .manifest_digest
        .map(|d| d.to_string())
        .unwrap_or_default();
    if found != *recorded {
        return Err(Error::Failed(format!(
            "{}: its base {name} is recorded as {recorded}, but resolves now to {}",
            image.name,
            if found.is_empty() {
                "an image without a manifest"
            } else {
                &found
            }
        )));
    }
    Ok((base, settings))
}

/// The image's own layers (those above the old base's), each read on the
/// old base: what it looked at there and what it took from it. The old
/// base's diff_ids must begin the image's.
pub fn own_layers(
    image: &Image,
    old: &BaseImage,
    base_blobs: &BlobStore,
    progress: &Progress,
) -> Result<Vec<OwnLayer>> {
    let image_ids = diff_ids(image.config).map_err(Error::Failed)?;
    let base_ids = diff_ids(&old.config).map_err(Error::Failed)?;
    let layers = image.manifest.layers();
    if !image_ids.starts_with(&base_ids) || layers.len() != image_ids.len() {
        return Err(Error::Failed(format!(
            "{}: its layers do not begin with those of its base {}",
            image.name, old.name
        )));
    }
    let below = read_base(old, base_blobs, None, progress, &|e| e)?;
    let mut view = below.view.into_view()?;
    let base_view = view.clone();
    let mut own = Vec::new();
    for (desc, diff_id) in layers.iter().zip(&image_ids).skip(base_ids.len()) {
        let ann = desc.annotations().clone().unwrap_or_default();
        let name = ann
            .get(annotation::LAYER_NAME)
            .cloned()
            .unwrap_or_else(|| format!("#{}", view.layer_count() + 1));
        let dependent = ann
            .get(annotation::LAYER_BASE_DEPENDENT)
            .map(String::as_str)
            != Some("false");
        let before = view.clone();
        let changes = view.apply_layer_keeping(image.blobs, desc, diff_id, &mut |_, _| Ok(()))?;
        own.push(OwnLayer {
            lookups: rebase::lookups(&changes, &before),
            taken: rebase::taken_from_base(&changes, &base_view),
            name,
            descriptor: desc.clone(),
            diff_id: *diff_id,
            dependent,
        });
    }
    Ok(own)
}

/// Refuses an image whose layers this ingot would not write byte for byte:
/// another layer encoding, or layers not in its recorded compression.
pub fn check_encoding(image: &Image, settings: &RebuildSettings, own: &[OwnLayer]) -> Result<()> {
    if settings.encoding != layer::ENCODING_VERSION {
        return Err(Error::Failed(format!(
            "{}: its layers are in encoding {} ({}), this ingot writes {}: rebuild it instead",
            image.name,
            settings.encoding,
            annotation::LAYER_ENCODING,
            layer::ENCODING_VERSION
        )));
    }
    let media = settings.compression.media_type();
    if let Some(l) = own.iter().find(|l| *l.descriptor.media_type() != media) {
        return Err(Error::Failed(format!(
            "{}: layer {} is {}, not the {} its {} says",
            image.name,
            l.name,
            l.descriptor.media_type(),
            settings.compression,
            annotation::COMPRESSION
        )));
    }
    Ok(())
}

/// What [`rebase_image`] made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rebased {
    pub digest: Digest,
    pub tags: Vec<String>,
    pub unchanged: bool,
}

/// What a rebase without a recipe is asked for.
pub struct Onto<'a> {
    pub old: &'a BaseImage,
    pub new: &'a BaseImage,
    pub settings: &'a RebuildSettings,
    pub own: &'a [OwnLayer],
    pub emit: &'a Emit,
    /// The version tag, from the image's title and version annotations.
    pub name: &'a str,
    pub version: &'a str,
}

/// Puts the image's own layers on the new base: refused, one line per
/// layer, when one depends on the base or would be planned differently on
/// the new one; else assembled as a build assembles an image (config,
/// history, annotations), sealed on the new merged filesystem and committed
/// to `emit.output`. `staging` holds both bases' blobs.
pub fn rebase_image(
    image: &Image,
    onto: &Onto,
    staging: Staging,
    progress: &Progress,
) -> Result<Rebased> {
    let (old, new) = (onto.old, onto.new);
    let platform = platform_of(image.config);
    if new.platform != platform {
        return Err(Error::Failed(format!(
            "{} is {}, the image {platform}",
            new.name, new.platform
        )));
    }
    let mut below = read_base(new, &staging.blobs, None, progress, &|e| e)?;
    let mut view = std::mem::take(&mut below.view).into_view()?;
    let mut refusals = Vec::new();
    if let Some(empty) = image.annotations().get(annotation::LAYERS_EMPTY) {
        refusals.push(format!(
            "layers {empty}: changed nothing on the old base, so the image does not hold them, and a build on another base may write them; rebase with --recipe to build them"
        ));
    }
    for l in onto.own {
        if l.dependent {
            refusals.push(format!(
                "layer {}: base-dependent, {}; rebase with --recipe to rebuild it",
                l.name,
                l.dependence()
            ));
        } else {
            let differ = rebase::mismatches(&l.lookups, &view);
            if !differ.is_empty() {
                refusals.push(format!(
                    "layer {}: would be planned differently on {}: {}",
                    l.name,
                    new.name,
                    differ.join("; ")
                ));
            }
        }
        let layer = view.layer_count();
        let scan = &mut below.scan;
        view.apply_layer(image.blobs, &l.descriptor, &l.diff_id, &mut |path, data| {
            scan.visit(path, layer, data)
        })?;
        below.labels.push(LayerLabel {
            digest: l.descriptor.digest().to_string(),
            name: l.name.clone(),
        });
    }
    if !refusals.is_empty() {
        return Err(Error::Failed(format!(
            "{} cannot be rebased onto {} as it is:\n  {}",
            image.name,
            new.name,
            refusals.join("\n  ")
        )));
    }
    let runtime = runtime_on(image, old, new)?;
    let annotations = image.annotations();
    seal_rebased(&view, &below.scan, &below.labels, &runtime, &annotations)?;
    let created = image.config.created().clone().unwrap_or_default();
    let history = image.config.history().clone().unwrap_or_default();
    let old_history = old.config.history().as_ref().map_or(0, Vec::len);
    let own_history = history.into_iter().skip(old_history);
    let layers: Vec<NewLayer> = onto
        .own
        .iter()
        .zip(own_history)
        .map(|(l, history)| NewLayer {
            descriptor: l.descriptor.clone(),
            diff_id: l.diff_id,
            history,
        })
        .collect();
    if layers.len() != onto.own.len() {
        return Err(Error::Failed(format!(
            "{}: its config has fewer history entries than layers",
            image.name
        )));
    }
    let assembled = assemble(
        Lower {
            config: &new.config,
            layers: &new.layers,
        },
        layers,
        &platform,
        runtime,
        &created,
        rebased_annotations(annotations, new),
    )
    .map_err(Error::Failed)?;
    for l in onto.own {
        let blob = blob_ref(&l.descriptor)?;
        if !staging.blobs.adopt(image.blobs, &blob) {
            return Err(Error::Failed(format!(
                "{}: layer {} ({}) is missing or damaged",
                image.name, l.name, blob.digest
            )));
        }
    }
    let config = staging
        .blobs
        .put(&assembled.config_json)
        .context(|| "storing the image config".into())?;
    let manifest = staging
        .blobs
        .put(&assembled.manifest_json)
        .context(|| "storing the image manifest".into())?;
    let mut keep: HashSet<Digest> = [manifest.digest, config.digest].into();
    for desc in assembled.layers() {
        keep.insert(blob_ref(desc)?.digest);
    }
    staging
        .blobs
        .retain(&keep)
        .context(|| "dropping the old base's blobs from the staging store".into())?;
    let tags = onto.emit.all_tags(onto.version);
    let committed = layout::commit(
        staging,
        &Tagged {
            recipe: onto.name,
            tags: &tags,
            manifest: BlobRef {
                digest: manifest.digest,
                size: manifest.size,
            },
            media_type: MediaType::ImageManifest,
            platform: Some(&platform),
            replace: onto.emit.replace,
            referrers: &[],
        },
    )?;
    Ok(Rebased {
        digest: manifest.digest,
        tags,
        unchanged: committed == layout::Committed::Unchanged,
    })
}

/// The image's own runtime config on the new base's: what differs from the
/// old base's, merged as a recipe's `config` is. Declared params are the
/// base's and the image's together, so they carry over only when both
/// bases declare the same.
fn runtime_on(image: &Image, old: &BaseImage, new: &BaseImage) -> Result<Config> {
    let refuse = |m: String| Error::Failed(format!("{}: {m}; rebase with --recipe", image.name));
    let config_of = |c: &ImageConfiguration| c.config().clone();
    let (image_cfg, old_cfg, new_cfg) = (
        config_of(image.config),
        config_of(&old.config),
        config_of(&new.config),
    );
    let params = |c: &Option<Config>| {
        c.as_ref()
            .and_then(|c| c.labels().as_ref())
            .and_then(|l| l.get(annotation::PARAMS).cloned())
    };
    if params(&old_cfg) != params(&new_cfg) && params(&image_cfg) != params(&old_cfg) {
        return Err(refuse(format!(
            "the new base declares other params than the old ({})",
            annotation::PARAMS
        )));
    }
    let own = rebase::own_config(image_cfg.as_ref(), old_cfg.as_ref()).map_err(refuse)?;
    Ok(merge(new_cfg.as_ref(), &own))
}

/// The seal a build runs, on the rebased image's merged filesystem and
/// config, with the exceptions the image was sealed with.
fn seal_rebased(
    view: &View,
    scan: &seal::Scan,
    labels: &[LayerLabel],
    runtime: &Config,
    annotations: &HashMap<String, String>,
) -> Result<()> {
    let allow: Vec<SealAllow> = match annotations.get(annotation::SEAL_ALLOW) {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Error::Failed(format!("annotation {}: {e}", annotation::SEAL_ALLOW)))?,
        None => Vec::new(),
    };
    let inputs = seal::Inputs {
        view,
        config: (*runtime != Config::default()).then_some(runtime),
        scan,
    };
    let sealed = seal::check(&inputs, &allow, labels);
    if let Some(&i) = sealed.unused_allows.first() {
        let a = &allow[i];
        return Err(Error::Failed(format!(
            "the image's seal exception {{ rule: {}, path: {} }} matches nothing on the new base; rebase with --recipe without it",
            a.rule, a.path
        )));
    }
    if !sealed.is_sealed() {
        return Err(Error::Unsealed(
            sealed.violations.iter().map(ToString::to_string).collect(),
        ));
    }
    Ok(())
}

/// The image's annotations with the new base's name and digest, and the
/// seal policy it was just sealed under.
fn rebased_annotations(
    mut annotations: HashMap<String, String>,
    new: &BaseImage,
) -> HashMap<String, String> {
    annotations.remove(annotation::BASE_NAME);
    annotations.remove(annotation::BASE_DIGEST);
    if new.name != "scratch" {
        annotations.insert(annotation::BASE_NAME.into(), new.name.clone());
    }
    if let Some(digest) = new.manifest_digest {
        annotations.insert(annotation::BASE_DIGEST.into(), digest.to_string());
    }
    annotations.insert(
        annotation::SEAL_POLICY.into(),
        seal::POLICY_VERSION.to_string(),
    );
    annotations
}

/// A build of `recipe` (its base already replaced) in which each of the
/// donor's layers that may be kept is served from the image rather than
/// built: read back, checked against its diff_id and scanned for the seal
/// as a `--cache-from` entry is. Everything else is the build's own.
pub fn build_reusing(
    recipe: &Recipe,
    settings: &Settings,
    sources: &Sources,
    emit: &Emit,
    donor: &Donor,
    progress: &Progress,
    log: Log,
) -> Result<Report> {
    build_with(recipe, settings, sources, emit, Some(donor), progress, log)
}

/// The changes a kept layer makes, read back from its blob onto `view`.
pub(super) fn read_back(
    donor: &Donor,
    layer: &OwnLayer,
    into: &BlobStore,
    view: &View,
    scan: &mut seal::Scan,
) -> Result<Vec<Change>> {
    let blob = blob_ref(&layer.descriptor)?;
    if !into.adopt(&donor.blobs, &blob) {
        return Err(Error::Failed(format!(
            "layer {} ({}) is missing or damaged",
            layer.name, blob.digest
        )));
    }
    let index = view.layer_count();
    let mut reader = layer::read::open(into, &layer.descriptor)?;
    let changes = view
        .read_tar(&mut reader, &mut |path, data| scan.visit(path, index, data))
        .map_err(|reason| Error::Failed(format!("layer {}: {reason}", layer.name)))?;
    reader.finish(&layer.diff_id)?;
    Ok(changes)
}
