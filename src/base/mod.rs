//! Base references and their resolution into a verified base image
//! (design.md, "Base references").
//!
//! Every kind of base resolves to the same thing, a [`BaseImage`]: a config,
//! the layer blobs (already in the build's blob store) and an identity.
//! New kinds slot in as a [`BaseRef`] variant plus a resolver module.
//! Stemcells and `recipe:` bases are recipes, built by the pipeline above:
//! resolution calls back into it through [`RecipeBuilder`], nothing more.

pub mod docker_archive;
pub mod oci;
pub mod registry;
pub mod stemcell;

use std::path::Path;

use oci_spec::image::{Descriptor, ImageConfiguration};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::Platform;
use crate::image::config::image_config;
use crate::image::reference::ImageRef;
use crate::lock::{LockFile, Pin};
use crate::recipe::Recipe;
pub use crate::recipe::schema::BaseRef;
use crate::store::BlobStore;
use crate::store::cache::Cache;

/// A resolved base: what a recipe builds on.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The fully pinned reference (`stemcell:static@1.0.0`; a `recipe:` base
    /// is `NAME:VERSION`), for annotations.
    pub name: String,
    /// Manifest digest, where the base has a manifest.
    pub manifest_digest: Option<Digest>,
    /// Config digest: the base's identity (it covers every diff_id). None
    /// for scratch.
    pub config_digest: Option<Digest>,
    /// The base's config, from which the recipe inherits.
    pub config: ImageConfiguration,
    /// Layer descriptors, bottom first; their blobs are in the build's store.
    pub layers: Vec<Descriptor>,
    pub platform: Platform,
}

/// Builds the recipes some bases are: resolution's one call back into the
/// pipeline above it.
pub trait RecipeBuilder {
    /// The `recipe:` base at `path` (from `recipe`'s directory), built and
    /// named `NAME:VERSION` after its recipe.
    fn recipe_base(&mut self, recipe: &Recipe, path: &Path) -> Result<BaseImage>;
    /// An embedded stemcell's recipe, built at the stemcell settings.
    fn stemcell_base(&mut self, stemcell: &Recipe) -> Result<BaseImage>;
}

/// Where resolution puts what it reads, and how it reaches registries.
pub struct Resolver<'a> {
    /// The build's store: every base layer ends up here.
    pub blobs: &'a BlobStore,
    /// The build cache: registry blobs are kept there for later builds.
    pub cache: Option<&'a Cache>,
    pub registry: &'a crate::registry::Access,
    /// The lock of the recipe being built (the root of the build), whose
    /// pins answer tags and unversioned stemcells.
    pub lock: Option<&'a LockFile>,
    /// Resolve registry tags and stemcells afresh instead of as ingot.lock
    /// pins them (what `ingot lock` does).
    pub repin: bool,
    /// Where downloads report their progress.
    pub progress: &'a crate::progress::Progress,
}

/// A resolved base and, when it came from outside the recipe tree, the
/// pin ingot.lock records for it.
pub struct Resolved {
    pub base: BaseImage,
    pub pin: Option<Pin>,
}

/// Resolves `recipe`'s base into blobs in `resolver.blobs`. `from` is the
/// recipe's path as ingot.lock names it.
pub fn resolve(
    recipe: &Recipe,
    from: &str,
    resolver: &Resolver,
    builder: &mut dyn RecipeBuilder,
) -> Result<Resolved> {
    let wanted = recipe
        .wanted_platform()
        .cloned()
        .unwrap_or_else(Platform::linux_amd64);
    let base = match &recipe.spec.base {
        BaseRef::Scratch => return Ok(unpinned(scratch(wanted))),
        // Named by the builder, for what it is (`NAME:VERSION`), not by
        // the path it was found at.
        BaseRef::Recipe(path) => return Ok(unpinned(builder.recipe_base(recipe, path)?)),
        BaseRef::Stemcell { name, version } => {
            let lock = resolver.lock.filter(|_| !resolver.repin);
            let version = stemcell_version(recipe, from, name, version.as_deref(), lock);
            let unpacked = stemcell::unpack(name, version.as_deref())
                .map_err(|m| recipe.error_at(&["base"], m))?;
            let stem = &unpacked
                .recipe
                .clone()
                .as_base_for(recipe.wanted_platform())?;
            let mut base = builder.stemcell_base(stem)?;
            base.name = format!("stemcell:{}@{}", stem.spec.name, stem.spec.version);
            base
        }
        BaseRef::Image(image) => resolve_image(recipe, from, image, &wanted, resolver)?,
    };
    let pin = base.config_digest.map(|config| Pin {
        from: from.to_string(),
        reference: recipe.spec.base.to_string(),
        resolved: base.name.clone(),
        config,
        manifest: base.manifest_digest,
        platform: None,
    });
    Ok(Resolved { base, pin })
}

/// The version of stemcell `name` that `recipe`'s base (named in `from`)
/// builds on: the one the recipe names; else the one `lock` pins, as a
/// tag is pinned, so that a new stemcell in the binary moves no image
/// until `ingot lock --update` says so; else None, the newest.
pub fn stemcell_version(
    recipe: &Recipe,
    from: &str,
    name: &str,
    version: Option<&str>,
    lock: Option<&LockFile>,
) -> Option<String> {
    if let Some(version) = version {
        return Some(version.to_string());
    }
    let reference = recipe.spec.base.to_string();
    let pin = lock?
        .pins
        .iter()
        .find(|p| p.from == from && p.reference == reference)?;
    let (pinned, version) = stemcell::pinned(&pin.resolved)?;
    (pinned == name).then(|| version.to_string())
}

/// The pin `lock` holds for `recipe`'s base as named in `from`, on
/// `platform`.
pub fn locked_pin<'l>(
    lock: Option<&'l LockFile>,
    recipe: &Recipe,
    from: &str,
    platform: &Platform,
) -> Option<&'l Pin> {
    let reference = recipe.spec.base.to_string();
    let platform = platform.to_string();
    lock?
        .pins
        .iter()
        .find(|p| p.from == from && p.reference == reference && p.holds_for(&platform))
}

fn unpinned(base: BaseImage) -> Resolved {
    Resolved { base, pin: None }
}

/// The empty image, on the platform the recipe asks for.
fn scratch(platform: Platform) -> BaseImage {
    BaseImage {
        name: "scratch".into(),
        manifest_digest: None,
        config_digest: None,
        config: image_config(&platform, "", Default::default(), &[], vec![]),
        layers: vec![],
        platform,
    }
}

/// An image base by any transport; a relative path is from the recipe's
/// directory.
fn resolve_image(
    recipe: &Recipe,
    from: &str,
    image: &ImageRef,
    platform: &Platform,
    resolver: &Resolver,
) -> Result<BaseImage> {
    match image {
        ImageRef::Oci(reference) => {
            let dir = recipe.dir.join(&reference.path);
            oci::load(reference, &dir, platform, resolver.blobs, resolver.cache)
                .map_err(|e| base_error(recipe, e))
        }
        ImageRef::DockerArchive(path) => {
            let file = recipe.dir.join(path);
            // There but no regular file (a FIFO): refused as it is opened.
            if std::fs::metadata(&file).is_err() {
                let message = format!("{}: no such file", recipe.spec.base);
                return Err(recipe.error_at(&["base"], message).into());
            }
            let mut base = docker_archive::load(&file, resolver.blobs, resolver.progress)
                .map_err(|e| base_error(recipe, e))?;
            base.name = recipe.spec.base.to_string();
            Ok(base)
        }
        ImageRef::Docker(reference) => {
            registry::resolve(recipe, from, reference, platform, resolver)
        }
    }
}

/// Places a base resolution error at the recipe's `base`: a reference that
/// does not resolve is the recipe's error (exit 2); a base that does not
/// verify is a failure (exit 1), still named by position, and still of its
/// type (a blob or layer error stays one).
pub fn base_error(recipe: &Recipe, err: Error) -> Error {
    match err {
        Error::Usage(m) => recipe.error_at(&["base"], m).into(),
        Error::Recipe(e) => e.into(),
        other => {
            let at = recipe.error_at(&["base"], "");
            other.within(at.location())
        }
    }
}
