//! `ingot rebase IMAGE --onto NEWBASE [--recipe DIR]`: an image's own
//! layers put on another base, safely (issue 18). The old base is the one
//! the image's annotations name, checked by digest; a layer is kept only
//! when [`crate::rebase`] shows a build on the new base would write it
//! byte for byte, so the result is the digest a rebuild gives.
//!
//! - Without a recipe, a layer that cannot be kept refuses the rebase,
//!   naming it and the paths at fault ([`pipeline::rebase::rebase_image`]).
//! - With one, the recipe is built on the new base and such layers are
//!   built; the others are served from the image
//!   ([`pipeline::rebase::build_reusing`]).

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::source;
use crate::base::BaseRef;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::reference::ImageRef;
use crate::image::{PlatformChoice, annotation};
use crate::pipeline::rebase::{self, Donor, Image, Onto};
use crate::pipeline::{self, Emit, Log, Sources};
use crate::progress::Progress;
use crate::recipe::Recipe;
use crate::store::BlobStore;
use crate::store::layout::Staging;
use crate::store::workdir::WorkDir;

/// What `rebase` is asked to do.
pub struct Request<'a> {
    pub image: &'a ImageRef,
    /// As a recipe's `base:` says it, and as the result records it.
    pub onto: &'a BaseRef,
    /// `--recipe`: rebuild the layers that cannot be kept.
    pub recipe: Option<&'a Recipe>,
    /// The layout to write, its tags, and (with a recipe) attestations.
    pub emit: &'a Emit,
    pub sources: &'a Sources,
    pub progress: &'a Progress,
}

/// What a rebase did.
#[derive(Debug, Clone, Serialize)]
pub struct Rebased {
    pub image: String,
    pub old_digest: Digest,
    pub new_digest: Digest,
    pub old_base: String,
    pub new_base: String,
    pub layout: PathBuf,
    pub tags: Vec<String>,
    /// The image's own layers kept byte for byte, by name.
    pub reused: Vec<String>,
    /// The layers built anew (with `--recipe` only).
    pub rebuilt: Vec<String>,
}

/// Rebases the image as `req` says, logging what it decides.
pub fn rebase(req: &Request, log: Log) -> Result<Rebased> {
    let opened = source::open(
        req.image,
        &PlatformChoice::from_flag(None),
        &req.sources.registry,
        req.progress,
    )?;
    let Some(manifest) = &opened.manifest else {
        return Err(Error::Usage(format!(
            "{}: a docker-archive records no base to rebase from; use oci: or docker://",
            req.image
        )));
    };
    let image = Image {
        name: req.image.to_string(),
        manifest,
        config: &opened.config,
        blobs: &opened.blobs,
    };
    // References resolve as the recipe's `base:` would, from its
    // directory; without one, from the working directory.
    let dir = req.recipe.map_or(Path::new("."), |r| r.dir.as_path());
    match req.recipe {
        None => {
            let staging = Staging::new(&req.emit.output)?;
            rebase_image(req, &image, dir, staging, opened.identity.digest(), log)
        }
        Some(recipe) => {
            let scratch = WorkDir::new_in(&std::env::temp_dir(), ".ingot-rebase-", 0o700)
                .context(|| "creating a temp directory for the old base".into())?;
            let blobs = BlobStore::open(scratch.path())
                .context(|| "creating a temp store for the old base".into())?;
            rebuild_on(req, &image, recipe, &blobs, opened.identity.digest(), log)
        }
    }
}

fn rebase_image(
    req: &Request,
    image: &Image,
    dir: &Path,
    staging: Staging,
    old_digest: Digest,
    log: Log,
) -> Result<Rebased> {
    let (sources, progress) = (req.sources, req.progress);
    let (old, settings) = rebase::old_base(image, dir, &staging.blobs, sources, progress, log)?;
    let own = rebase::own_layers(image, &old, &staging.blobs, progress)?;
    rebase::check_encoding(image, &settings, &own)?;
    let platform = crate::image::config::platform_of(image.config);
    let new = rebase::resolve_base(
        req.onto,
        dir,
        &platform,
        &staging.blobs,
        sources,
        progress,
        log,
    )?;
    let annotations = image.manifest.annotations().clone().unwrap_or_default();
    let recorded = |key: &str| {
        annotations
            .get(key)
            .cloned()
            .ok_or_else(|| Error::Failed(format!("{}: records no {key} to tag it by", image.name)))
    };
    let (name, version) = (recorded(annotation::TITLE)?, recorded(annotation::VERSION)?);
    log(&format!(
        "rebasing {} from {} onto {}",
        image.name, old.name, new.name
    ));
    let done = rebase::rebase_image(
        image,
        &Onto {
            old: &old,
            new: &new,
            settings: &settings,
            own: &own,
            emit: req.emit,
            name: &name,
            version: &version,
        },
        staging,
        progress,
    )?;
    Ok(Rebased {
        image: image.name.clone(),
        old_digest,
        new_digest: done.digest,
        old_base: old.name,
        new_base: new.name,
        layout: req.emit.output.clone(),
        tags: done.tags,
        reused: own.into_iter().map(|l| l.name).collect(),
        rebuilt: Vec::new(),
    })
}

fn rebuild_on(
    req: &Request,
    image: &Image,
    recipe: &Recipe,
    blobs: &BlobStore,
    old_digest: Digest,
    log: Log,
) -> Result<Rebased> {
    let (sources, progress) = (req.sources, req.progress);
    let (old, settings) = rebase::old_base(image, &recipe.dir, blobs, sources, progress, log)?;
    let annotations = image.manifest.annotations().clone().unwrap_or_default();
    let made = (
        annotations.get(annotation::TITLE),
        annotations.get(annotation::VERSION),
    );
    if made != (Some(&recipe.spec.name), Some(&recipe.spec.version)) {
        return Err(Error::Failed(format!(
            "{} is not an image of {} {} (it records {} {})",
            image.name,
            recipe.spec.name,
            recipe.spec.version,
            made.0.map_or("no name", String::as_str),
            made.1.map_or("no version", String::as_str)
        )));
    }
    let own = rebase::own_layers(image, &old, blobs, progress)?;
    rebase::check_encoding(image, &settings, &own)?;
    let mut on_new = recipe.clone();
    on_new.spec.base = req.onto.clone();
    // The settings the image was built with, as `verify --rebuild` takes
    // them: the result is what a build with them on the new base gives.
    let build = pipeline::Settings {
        epoch: settings.epoch,
        compression: settings.compression,
        revision: settings.revision.clone(),
        source: settings.source.clone(),
    };
    let donor = Donor {
        recipe: on_new.file.clone(),
        blobs: image.blobs.clone(),
        layers: own,
    };
    let report = rebase::build_reusing(&on_new, &build, sources, req.emit, &donor, progress, log)?;
    let (reused, rebuilt): (Vec<_>, Vec<_>) = report.layers.iter().partition(|l| l.reused);
    Ok(Rebased {
        image: image.name.clone(),
        old_digest,
        new_digest: report.digest,
        old_base: old.name,
        new_base: report.base.clone(),
        layout: report.layout.clone(),
        tags: report.tags.clone(),
        reused: reused.iter().map(|l| l.name.clone()).collect(),
        rebuilt: rebuilt.iter().map(|l| l.name.clone()).collect(),
    })
}
