//! The build pipeline: recipe → base → layers → config and manifest → a
//! tagged image in an OCI layout (design.md, "Output").
//!
//! - [`base`](crate::base) resolves the recipe's base (calling back here,
//!   through [`RecipeBuilder`], for stemcells and `recipe:` bases);
//! - [`layers`] serves or writes the recipe's layers, in order;
//! - [`checks`] reads the runtime config against the image, as runtimes
//!   will;
//! - the seal checks the merged filesystem;
//! - [`assemble`](crate::image::assemble) makes the config and manifest;
//! - [`layout`] commits them to the output.
//!
//! Everything that varies between hosts is passed in ([`Settings`],
//! [`Sources`], [`Emit`]); the pipeline reads no clock, environment or
//! host identity.

mod attach;
pub mod checks;
pub mod copyup;
pub mod deferred;
pub mod extract;
pub mod key;
pub mod layers;
pub mod packages;
mod params;
pub mod plan;
pub mod platforms;
pub mod rebase;
mod record;
pub mod summary;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::{Config, Descriptor, ImageConfiguration};

use crate::attest::files::{self, AsBuilt, List};
use crate::attest::sbom;
use crate::base::{self, BaseImage, BaseRef, RecipeBuilder, Resolver, base_error, stemcell};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::assemble::{Assembled, Lower, NewLayer, assemble};
use crate::image::media::LayerCompression;
use crate::image::{self, Platform, annotation, canonical_json, config as image_config};
use crate::lock::{self, LockFile, Pin};
use crate::progress::Progress;
use crate::recipe::Recipe;
use crate::registry;
use crate::registry::cache::{Pushed, RemoteCache};
use crate::rootfs::View;
use crate::seal::{self, LayerLabel, Scan};
use crate::store::cache::Cache;
use crate::store::layout::{self, Staging, Tagged};
use crate::store::workdir::WorkDir;
use crate::store::{BlobRef, BlobStore};
use deferred::Deferred;
use layers::{FinishedLayer, Layers, Setup};
use summary::BaseSummary;

/// What shapes the image's bytes and annotations: the same recipe, inputs
/// and settings give the same digest.
#[derive(Debug, Clone)]
pub struct Settings {
    /// SOURCE_DATE_EPOCH: the one timestamp of the image.
    pub epoch: u64,
    /// How the recipe's own layers are compressed.
    pub compression: LayerCompression,
    /// VCS revision of the recipe, recorded as an annotation.
    pub revision: Option<String>,
    /// Where the recipe's source lives, recorded as an annotation.
    pub source: Option<String>,
}

impl Settings {
    /// Stemcells have one identity per version: a fixed timestamp, gzip,
    /// and none of the caller's annotations.
    fn stemcell() -> Settings {
        Settings {
            epoch: stemcell::STEMCELL_EPOCH,
            compression: LayerCompression::Gzip,
            revision: None,
            source: None,
        }
    }
}

/// Where bases and earlier work come from; none of it changes the image.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The build cache directory; None builds everything afresh.
    pub cache: Option<PathBuf>,
    /// How to reach registries, for `docker://` bases.
    pub registry: registry::Access,
    /// Other copies of Debian archives to download from: `--mirror` specs
    /// (`MIRROR`, or `URL=MIRROR`), read against each recipe's archives.
    pub mirrors: Vec<String>,
    /// How long a Debian archive may take to answer (registries' are in
    /// `registry`).
    pub network: crate::net::Timeouts,
    /// `--cache-from` and `--cache-to`: the build cache shared through
    /// registries, one for every build of the run. Used only with a local
    /// cache, which fetched entries go into.
    pub remote_cache: Option<Arc<RemoteCache>>,
}

/// Where a build's image goes, and what must hold before it lands.
#[derive(Debug, Clone)]
pub struct Emit {
    /// The OCI layout to write.
    pub output: PathBuf,
    /// Fail unless every external reference resolves as `ingot.lock` says.
    pub locked: bool,
    /// Tags besides the version for the same manifest (a commit id),
    /// each a valid OCI tag.
    pub tags: Vec<String>,
    /// Move a tag (the version's included) the layout has for another
    /// manifest; without it that is refused.
    pub replace: bool,
    /// Attach an SBOM and a provenance to the image as OCI referrers
    /// (`attach`).
    pub attest: bool,
}

impl Emit {
    /// The version, then the further tags, each once.
    pub fn all_tags(&self, version: &str) -> Vec<String> {
        let mut tags = vec![version.to_string()];
        for tag in &self.tags {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        tags
    }
}

/// What a finished build reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub name: String,
    pub version: String,
    /// The manifest's digest; a multi-platform build's, the index's.
    pub digest: Digest,
    /// The config's digest; None for a multi-platform build (see
    /// `platforms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<Digest>,
    pub layout: PathBuf,
    /// Every tag the image has in the layout: the version first.
    pub tags: Vec<String>,
    /// The layout already held the image at every tag: nothing changed.
    pub unchanged: bool,
    pub base: String,
    pub layers: Vec<LayerReport>,
    /// Each platform's image, for a multi-platform build.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<platforms::PlatformReport>,
    /// Every external reference resolved, as `ingot.lock` records them.
    pub pins: Vec<Pin>,
    /// The packages installed, by layer, as `ingot.lock` records them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<lock::PackageSet>,
    /// Layers built, served from the cache and fetched from cache
    /// registries; what was pushed to them.
    pub cache: CacheReport,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct LayerReport {
    pub name: String,
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub entries: usize,
    /// Served from the build cache rather than built.
    pub cached: bool,
    /// Fetched from a `--cache-from` registry (and so `cached` too).
    pub remote: bool,
    /// Kept from the image `ingot rebase --recipe` rebases (and so
    /// `cached` too).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
    /// What a `packages` step installed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packages: Option<packages::Report>,
}

/// What the build cache did for a build: of the recipe's own layers (every
/// platform's), how many were built, served from the cache (`cached`, the
/// fetched ones included) and fetched from a `--cache-from` registry
/// (`remote`); and what came from and went to cache registries for every
/// layer of the build, its stemcell's and `recipe:` bases' included.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheReport {
    pub built: usize,
    pub cached: usize,
    pub remote: usize,
    pub fetched: FetchedTally,
    pub pushed: Pushed,
}

/// Layers fetched from cache registries, and the bytes downloaded for
/// them (entries and summaries included; blobs the cache had are not).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FetchedTally {
    pub layers: u64,
    pub bytes: u64,
}

impl CacheReport {
    /// Adds what `other` moved to and from registries.
    fn add(&mut self, other: &CacheReport) {
        self.fetched.layers += other.fetched.layers;
        self.fetched.bytes += other.fetched.bytes;
        self.pushed.add(other.pushed);
    }
}

/// Progress and log lines go here; the CLI sends them to stderr.
pub type Log<'a> = &'a mut dyn FnMut(&str);

/// Builds `recipe` into the layout `emit.output`, reporting long work on
/// `progress`. Nothing is written there unless the whole build succeeds
/// (and, with `emit.locked`, every base resolved as the lock says).
pub fn build(
    recipe: &Recipe,
    settings: &Settings,
    sources: &Sources,
    emit: &Emit,
    progress: &Progress,
    log: Log,
) -> Result<Report> {
    build_with(recipe, settings, sources, emit, None, progress, log)
}

/// [`build`], the layers of `donor` that may be kept served from it
/// ([`rebase::build_reusing`]).
fn build_with(
    recipe: &Recipe,
    settings: &Settings,
    sources: &Sources,
    emit: &Emit,
    donor: Option<&rebase::Donor>,
    progress: &Progress,
    log: Log,
) -> Result<Report> {
    if emit.locked {
        check_lock_up_front(recipe)?;
    }
    let staging = Staging::new(&emit.output)?;
    let mut ctx = Context::new(&staging.blobs, settings, sources, progress, recipe, log)?;
    if emit.locked {
        ctx.resolve = packages::Resolve::Locked;
    }
    ctx.donor = donor;
    ctx.attesting = emit.attest.then(|| recipe.file.clone());
    let built = platforms::build(recipe, &mut ctx)?;
    ctx.save_stats();
    keep_only_referenced(&staging.blobs, &built)?;
    // A retried build pins its bases again: LockFile sorts and dedups.
    let resolved = LockFile::new(std::mem::take(&mut ctx.pins))
        .with_packages(std::mem::take(&mut ctx.package_sets));
    let (pins, packages) = (resolved.pins, resolved.packages);
    if emit.locked {
        check_lock(recipe, &pins, ctx.lock_digest)?;
    }
    let referrers = if emit.attest {
        let referrers = attach::referrers(recipe, &built, &mut ctx, &pins, &packages)?;
        // What the SBOM's cached blob was checked as, for the next build.
        if let Some(cache) = &ctx.cache {
            let _ = cache.save_checked();
        }
        referrers
    } else {
        Vec::new()
    };
    let moved = ctx.remote_moved;
    if ctx.remote.is_some() {
        let (fetched, pushed) = (moved.fetched, moved.pushed);
        (ctx.log)(&format!(
            "cache registries: {} layers fetched ({}); {} entries pushed ({} blobs, {}), {} already there",
            fetched.layers,
            crate::progress::bytes(fetched.bytes),
            pushed.entries,
            pushed.uploaded.blobs,
            crate::progress::bytes(pushed.uploaded.bytes),
            pushed.present
        ));
    }
    let tags = emit.all_tags(&recipe.spec.version);
    let entry = built.entry(recipe)?;
    let committed = layout::commit(
        staging,
        &Tagged {
            recipe: &recipe.spec.name,
            tags: &tags,
            manifest: entry.manifest,
            media_type: entry.media_type,
            platform: entry.platform,
            replace: emit.replace,
            referrers: &referrers,
        },
    )?;
    let mut report = built.report(recipe, emit, pins, packages)?;
    report.cache = moved;
    for layer in report
        .layers
        .iter()
        .chain(report.platforms.iter().flat_map(|p| &p.layers))
    {
        if !layer.cached {
            report.cache.built += 1;
        } else {
            report.cache.cached += 1;
            report.cache.remote += usize::from(layer.remote);
        }
    }
    report.tags = tags;
    report.unchanged = committed == layout::Committed::Unchanged;
    Ok(report)
}

/// What [`predict`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prediction {
    /// Every layer (of the recipe, its `recipe:` bases and its stemcell)
    /// is in the cache: this is the digest a build would give.
    Digest(Digest),
    /// This layer (`RECIPE layer NAME`) is not in the cache: only building
    /// would tell.
    NotCached(String),
}

/// The digest [`build`] would give `recipe` with these settings, found
/// from the build cache alone: the image is assembled as a build assembles
/// it, every layer served from the cache, into a temp store that is then
/// removed. Nothing is written, committed or fetched beyond what a warm
/// build reads; a layer the cache lacks stops it at once. Packages come
/// from the lock only (as with `--locked`), never resolved anew.
pub fn predict(recipe: &Recipe, settings: &Settings, sources: &Sources) -> Result<Prediction> {
    if sources.cache.is_none() {
        return Ok(Prediction::NotCached("no build cache".into()));
    }
    let scratch = WorkDir::new_in(&std::env::temp_dir(), ".ingot-predict-", 0o700)
        .context(|| "creating a temp directory".into())?;
    let blobs = BlobStore::open(scratch.path()).context(|| "creating a temp store".into())?;
    let quiet = Progress::quiet();
    let mut silent = |_: &str| {};
    let mut ctx = Context::new(&blobs, settings, sources, &quiet, recipe, &mut silent)?;
    if ctx.cache.is_none() {
        return Ok(Prediction::NotCached("no build cache".into()));
    }
    ctx.cache_only = true;
    ctx.resolve = packages::Resolve::Locked;
    let built = platforms::build(recipe, &mut ctx);
    if let Some(missed) = ctx.missed.take() {
        return Ok(Prediction::NotCached(missed));
    }
    let built = built?;
    ctx.save_stats();
    Ok(Prediction::Digest(built.entry(recipe)?.manifest.digest))
}

/// Resolves every external reference of `recipe` (through `recipe:` bases)
/// without building its layers, and writes `ingot.lock` beside it.
/// Registry tags are resolved afresh, whatever the old lock pinned.
pub fn lock(recipe: &Recipe, sources: &Sources, log: Log) -> Result<LockFile> {
    let lock = resolve_lock(recipe, sources, log)?;
    lock::write(&lock::path_for(&recipe.file), &lock)?;
    Ok(lock)
}

/// The lock [`lock`] would write for `recipe` now, without writing it:
/// every base and package request resolved afresh.
pub fn resolve_lock(recipe: &Recipe, sources: &Sources, log: Log) -> Result<LockFile> {
    let scratch = WorkDir::new_in(&std::env::temp_dir(), ".ingot-lock-", 0o700)
        .context(|| "creating a temp directory".into())?;
    let blobs = BlobStore::open(scratch.path()).context(|| "creating a temp store".into())?;
    // Nothing of the recipe's own is built: the settings only fill the
    // context, and stemcell bases are built at their own.
    let settings = Settings::stemcell();
    let quiet = Progress::quiet();
    let mut ctx = Context::new(&blobs, &settings, sources, &quiet, recipe, log)?;
    ctx.repin = true;
    ctx.resolve = packages::Resolve::Relock;
    collect_pins(recipe, &mut ctx)?;
    Ok(LockFile::new(std::mem::take(&mut ctx.pins))
        .with_packages(std::mem::take(&mut ctx.package_sets)))
}

fn collect_pins(recipe: &Recipe, ctx: &mut Context) -> Result<()> {
    if platforms::collect(recipe, ctx)? {
        return Ok(());
    }
    if let BaseRef::Recipe(path) = &recipe.spec.base {
        let inner = ctx.enter(recipe, path)?;
        collect_pins(&inner, ctx)?;
        ctx.leave();
    }
    let base = ctx.resolve_base(recipe)?;
    if packages::installs(recipe) {
        let platform = platform_for(recipe, &base)?;
        ctx.closures(recipe, &platform)?;
    }
    Ok(())
}

/// `--locked`, before anything is built or written: the lock is there and
/// reads, pins every external base the recipe and its `recipe:` bases name
/// (and nothing else), and answers every `packages` step as it is written.
/// What the bases resolve to can only be known by resolving them: that is
/// [`check_lock`]'s, once the build is done.
fn check_lock_up_front(recipe: &Recipe) -> Result<()> {
    let (path, locked, _) = read_lock(recipe)?;
    let mut wanted = BTreeSet::new();
    let mut stack: Vec<PathBuf> = recipe.path.iter().cloned().collect();
    let lock = (path.as_path(), &locked);
    locked_inputs(recipe, &recipe.dir, &mut stack, lock, &mut wanted)?;
    let pinned: BTreeSet<(String, String)> = locked
        .pins
        .iter()
        .map(|p| (p.from.clone(), p.reference.clone()))
        .collect();
    let mut lines: Vec<String> = wanted
        .difference(&pinned)
        .map(|(from, reference)| format!("+ {reference} (in {from}): not locked"))
        .collect();
    lines.extend(
        pinned.difference(&wanted).map(|(from, reference)| {
            format!("- {reference} (in {from}): locked but no longer used")
        }),
    );
    if lines.is_empty() {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "--locked: {} does not pin the bases the recipe names (run `ingot lock {}` to accept): {}",
        path.display(),
        recipe.file.display(),
        lines.join("; ")
    )))
}

/// The external bases `recipe` and its `recipe:` bases name, as
/// (`from`, reference) the way the lock keys its pins; and every
/// `packages` step checked against the lock (its path, and what it holds).
fn locked_inputs(
    recipe: &Recipe,
    root_dir: &Path,
    stack: &mut Vec<PathBuf>,
    lock: (&Path, &LockFile),
    wanted: &mut BTreeSet<(String, String)>,
) -> Result<()> {
    let from = from_root(recipe, root_dir);
    match &recipe.spec.base {
        BaseRef::Scratch => {}
        BaseRef::Recipe(path) => {
            let inner = enter(stack, recipe, path)?;
            let checked = locked_inputs(&inner, root_dir, stack, lock, wanted);
            stack.pop();
            checked?;
        }
        external => {
            wanted.insert((from.clone(), external.to_string()));
        }
    }
    packages::check_locked(recipe, &from, lock.1, lock.0)
}

/// `recipe`'s `ingot.lock`, its path and the digest of its bytes;
/// `--locked` without one fails.
fn read_lock(recipe: &Recipe) -> Result<(PathBuf, LockFile, Digest)> {
    let path = lock::path_for(&recipe.file);
    let (locked, digest) = lock::read_digested(&path)?.ok_or_else(|| {
        Error::Failed(format!(
            "--locked: {} does not exist; run `ingot lock {}`",
            path.display(),
            recipe.file.display()
        ))
    })?;
    Ok((path, locked, digest))
}

/// Compares what this build resolved with `ingot.lock`, which must still
/// be the lock the build read (`read`, its digest), and the image records.
fn check_lock(recipe: &Recipe, pins: &[Pin], read: Option<Digest>) -> Result<()> {
    let (path, locked, digest) = read_lock(recipe)?;
    if read != Some(digest) {
        return Err(Error::Failed(format!(
            "--locked: {} changed while the image was being built (it is now {digest}); build again",
            path.display()
        )));
    }
    let lines = lock::diff(&locked, &LockFile::new(pins.to_vec()));
    if lines.is_empty() {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "--locked: bases resolve differently from {} (run `ingot lock {}` to accept): {}",
        path.display(),
        recipe.file.display(),
        lines.join("; ")
    )))
}

/// What a build carries down through nested bases.
struct Context<'a> {
    blobs: &'a BlobStore,
    settings: &'a Settings,
    sources: &'a Sources,
    progress: &'a Progress,
    log: Log<'a>,
    /// Resolve registry tags afresh instead of as ingot.lock pins them.
    repin: bool,
    /// Canonical paths of the recipes being built, outermost first, to
    /// refuse `recipe:` cycles.
    stack: Vec<PathBuf>,
    /// The directory `Pin::from` paths are relative to.
    root_dir: PathBuf,
    pins: Vec<Pin>,
    cache: Option<Cache>,
    /// The root recipe's lock, which pins the packages of every recipe
    /// of the build.
    lock: Option<LockFile>,
    /// The digest of the lock's bytes as read, which the image records.
    lock_digest: Option<Digest>,
    /// Recipe directories already warned to be in no git work tree.
    warned_outside: BTreeSet<PathBuf>,
    resolve: packages::Resolve,
    /// The closures of the `packages` steps resolved so far.
    package_sets: Vec<lock::PackageSet>,
    /// Where `.deb`s are kept: the cache's store, else a build's own.
    debs: BlobStore,
    _debs_dir: Option<WorkDir>,
    /// Serve every layer from the cache and build none ([`predict`]).
    cache_only: bool,
    /// The first layer [`predict`] found missing from the cache.
    missed: Option<String>,
    /// `--cache-from` and `--cache-to`, with a local cache only.
    remote: Option<Arc<RemoteCache>>,
    /// What came from and went to cache registries.
    remote_moved: CacheReport,
    /// The image `rebase --recipe` keeps layers of, for the root recipe's
    /// layers only.
    donor: Option<&'a rebase::Donor>,
    /// The root recipe's file, when the build attaches an SBOM: every
    /// layer the build writes hashes its files for it as it goes (a
    /// `recipe:` base's are the image's own too).
    attesting: Option<PathBuf>,
}

impl<'a> Context<'a> {
    fn new(
        blobs: &'a BlobStore,
        settings: &'a Settings,
        sources: &'a Sources,
        progress: &'a Progress,
        recipe: &Recipe,
        log: Log<'a>,
    ) -> Result<Self> {
        // A cache that cannot be opened only makes the build slower.
        let cache = sources
            .cache
            .as_deref()
            .and_then(|root| Cache::open(root).ok());
        let (debs, debs_dir) = match &cache {
            Some(cache) => (cache.blobs.clone(), None),
            None => {
                let dir = WorkDir::new_in(&std::env::temp_dir(), ".ingot-debs-", 0o700)
                    .context(|| "creating a package store".into())?;
                let store =
                    BlobStore::open(dir.path()).context(|| "creating a package store".into())?;
                (store, Some(dir))
            }
        };
        let (lock, lock_digest) = match lock::read_digested(&recipe.dir.join(lock::FILE_NAME))? {
            Some((lock, digest)) => (Some(lock), Some(digest)),
            None => (None, None),
        };
        Ok(Context {
            blobs,
            settings,
            sources,
            progress,
            log,
            repin: false,
            stack: recipe.path.iter().cloned().collect(),
            root_dir: recipe.dir.clone(),
            pins: Vec::new(),
            lock,
            lock_digest,
            warned_outside: BTreeSet::new(),
            resolve: packages::Resolve::Build,
            package_sets: Vec::new(),
            debs,
            _debs_dir: debs_dir,
            cache_only: false,
            missed: None,
            remote: sources.remote_cache.clone().filter(|_| cache.is_some()),
            remote_moved: CacheReport::default(),
            donor: None,
            attesting: None,
            cache,
        })
    }

    /// The closures of `recipe`'s `packages` steps, as the lock pins them
    /// (or resolved, as `resolve` allows), recorded for the lock.
    fn closures(&mut self, recipe: &Recipe, platform: &Platform) -> Result<packages::Closures> {
        let from = self.from(recipe);
        let ctx = packages::Context {
            from: &from,
            lock: self.lock.as_ref(),
            resolve: self.resolve,
            platform,
            mirrors: &self.sources.mirrors,
            timeouts: self.sources.network,
        };
        let closures = packages::closures(recipe, &ctx, self.log)?;
        self.package_sets.extend(closures.values().cloned());
        Ok(closures)
    }

    /// Saves what the cache's index of its own blobs learnt. (A source
    /// directory's is saved as it learns, by the key that read files.)
    fn save_stats(&self) {
        if let Some(cache) = &self.cache {
            let _ = cache.save_checked();
        }
    }

    /// Resolves the recipe's base into this build's store, and pins it
    /// when it is an external reference.
    fn resolve_base(&mut self, recipe: &Recipe) -> Result<BaseImage> {
        let from = self.from(recipe);
        let cache = self.cache.clone();
        let lock = self.lock.clone();
        let resolver = Resolver {
            blobs: self.blobs,
            cache: cache.as_ref(),
            registry: &self.sources.registry,
            lock: lock.as_ref(),
            repin: self.repin,
            progress: self.progress,
        };
        let resolved = base::resolve(recipe, &from, &resolver, self)?;
        if let Some(pin) = resolved.pin {
            (self.log)(&format!("base {}: config {}", pin.resolved, pin.config));
            self.pins.push(pin);
        }
        Ok(resolved.base)
    }

    /// What `recipe`'s image records of where it came from; a revision
    /// given for a recipe in no git work tree is warned about, once.
    fn recorded(&mut self, recipe: &Recipe) -> Result<record::Recorded> {
        let root = record::RootLock {
            dir: &self.root_dir,
            digest: self.lock_digest,
        };
        let recorded = record::recorded(recipe, self.settings, &root)?;
        if recorded.outside_work_tree && self.warned_outside.insert(recipe.dir.clone()) {
            (self.log)(&format!(
                "warning: {} is in no git work tree (no .git above it): the image records --revision but not the recipe's path in a repository",
                recipe.file.display()
            ));
        }
        Ok(recorded)
    }

    /// Loads the `recipe:` base `path` of `recipe`, refusing cycles.
    fn enter(&mut self, recipe: &Recipe, path: &Path) -> Result<Recipe> {
        enter(&mut self.stack, recipe, path)
    }

    fn leave(&mut self) {
        self.stack.pop();
    }

    /// `recipe`'s path relative to the locked recipe's directory.
    fn from(&self, recipe: &Recipe) -> String {
        from_root(recipe, &self.root_dir)
    }
}

/// Loads the `recipe:` base `path` of `recipe` onto `stack` (the canonical
/// paths of the recipes being built, outermost first), refusing cycles.
fn enter(stack: &mut Vec<PathBuf>, recipe: &Recipe, path: &Path) -> Result<Recipe> {
    let full = recipe.dir.join(path);
    let canonical = full
        .canonicalize()
        .map_err(|e| recipe.error_at(&["base"], format!("base recipe {}: {e}", path.display())))?;
    if let Some(i) = stack.iter().position(|p| *p == canonical) {
        let cycle: Vec<String> = stack[i..]
            .iter()
            .chain(std::iter::once(&canonical))
            .map(|p| p.display().to_string())
            .collect();
        return Err(recipe
            .error_at(&["base"], format!("recipe cycle: {}", cycle.join(" -> ")))
            .into());
    }
    // Built for the platform the recipe on it wants.
    let inner = Recipe::load(&canonical)?.as_base_for(recipe.wanted_platform())?;
    stack.push(canonical);
    Ok(inner)
}

/// `recipe`'s path relative to the locked recipe's directory `root_dir`,
/// as `ingot.lock` names it. An embedded recipe (a stemcell) is the root
/// of its own build, so it is named as `ingot lock` beside it names it: by
/// its file name.
fn from_root(recipe: &Recipe, root_dir: &Path) -> String {
    match &recipe.path {
        Some(p) => pathdiff(p, root_dir),
        None => recipe
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| recipe.file.display().to_string()),
    }
}

impl RecipeBuilder for Context<'_> {
    fn recipe_base(&mut self, recipe: &Recipe, path: &Path) -> Result<BaseImage> {
        let inner = self.enter(recipe, path)?;
        let built = build_image(&inner, self);
        self.leave();
        let mut base = built?.into_base();
        // What the base is, as a reference to its image would name it (the
        // tag is the version); its manifest digest is base.digest. The path
        // it was found at is local to this checkout.
        base.name = format!("{}:{}", inner.spec.name, inner.spec.version);
        Ok(base)
    }

    fn stemcell_base(&mut self, stemcell: &Recipe) -> Result<BaseImage> {
        let settings = Settings::stemcell();
        let quiet = Progress::quiet();
        // Silent but for its warnings (a cache registry down, an entry
        // refused), which are the outer build's too.
        let mut warnings = Vec::new();
        let mut warn = |line: &str| {
            if line.starts_with("warning: ") {
                warnings.push(line.to_string());
            }
        };
        let mut inner = Context::new(
            self.blobs,
            &settings,
            self.sources,
            &quiet,
            stemcell,
            &mut warn,
        )?;
        // A stemcell version is what its own lock pins, never resolved anew.
        inner.resolve = packages::Resolve::Locked;
        // One cache, so that what the stemcell's build learns about its
        // blobs is saved with the outer build's.
        inner.cache = self.cache.clone();
        inner.cache_only = self.cache_only;
        let built = build_image(stemcell, &mut inner);
        inner.save_stats();
        self.remote_moved.add(&inner.remote_moved);
        let missed = inner.missed.take();
        drop(inner);
        for line in &warnings {
            (self.log)(line);
        }
        if missed.is_some() {
            self.missed = missed;
        }
        Ok(built?.into_base())
    }
}

/// `path` relative to the directory `base`, both canonical:
/// `../lower/recipe.yaml`.
pub fn pathdiff(path: &Path, base: &Path) -> String {
    let (path, base): (Vec<_>, Vec<_>) = (path.components().collect(), base.components().collect());
    let common = path.iter().zip(&base).take_while(|(a, b)| a == b).count();
    let ups = std::iter::repeat_n("..".to_string(), base.len() - common);
    let downs = path[common..]
        .iter()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    ups.chain(downs).collect::<Vec<_>>().join("/")
}

/// An image built into a blob store.
struct Built {
    manifest: BlobRef,
    config_blob: BlobRef,
    config: ImageConfiguration,
    layers: Vec<Descriptor>,
    platform: Platform,
    base_name: String,
    reports: Vec<LayerReport>,
    /// Its SBOM in the staging store, made as the build finished it
    /// when the build attests.
    sbom: Option<BlobRef>,
}

impl Built {
    /// The image as a base for another (its name is the base's to give).
    fn into_base(self) -> BaseImage {
        BaseImage {
            name: String::new(),
            manifest_digest: Some(self.manifest.digest),
            config_digest: Some(self.config_blob.digest),
            config: self.config,
            layers: self.layers,
            platform: self.platform,
        }
    }
}

/// Bases leave their own manifests and configs in the staging store (a
/// stemcell or `recipe:` base is built there): the layout gets only what
/// its images reference.
fn keep_only_referenced(blobs: &BlobStore, built: &platforms::Output) -> Result<()> {
    // A digest this store cannot name is kept, with everything else.
    let Some(referenced) = built.referenced() else {
        return Ok(());
    };
    blobs
        .retain(&referenced)
        .context(|| "dropping the bases' own manifests from the staging store".into())
}

fn build_image(recipe: &Recipe, ctx: &mut Context) -> Result<Built> {
    // A cache entry found corrupt is dropped, so the next attempt builds
    // that layer afresh; a third attempt would mean the cache is being
    // corrupted as we go.
    for _ in 0..3 {
        if let Some(built) = build_image_once(recipe, ctx)? {
            return Ok(built);
        }
    }
    Err(Error::Failed(
        "the build cache keeps serving corrupt layers; run ingot cache prune".into(),
    ))
}

/// Builds the image, or returns None when a cached layer it used turned
/// out corrupt (its entry is then dropped).
fn build_image_once(recipe: &Recipe, ctx: &mut Context) -> Result<Option<Built>> {
    let spec = &recipe.spec;
    let base = ctx.resolve_base(recipe)?;
    let platform = platform_for(recipe, &base)?;
    let filled = recipe.with_platform_srcs(&platform)?;
    let recipe = filled.as_ref().unwrap_or(recipe);
    let declared = params::merged(recipe, &base)?;
    let closures = if packages::installs(recipe) {
        ctx.closures(recipe, &platform)?
    } else {
        packages::Closures::new()
    };
    (ctx.log)(&format!(
        "building {} {} on {}",
        spec.name, spec.version, base.name
    ));
    let wrap = |e| base_error(recipe, e);
    let mut lower = read_base(&base, ctx.blobs, ctx.cache.as_ref(), ctx.progress, &wrap)?;
    if !base.layers.is_empty() {
        let how = if lower.cached { "cached" } else { "read" };
        (ctx.log)(&format!("base layers: {how}, {}", base.layers.len()));
    }
    let Some(finished) = build_layers(recipe, &base, &mut lower, &closures, ctx)? else {
        return Ok(None);
    };
    share_layers(&finished, ctx);
    let empty: Vec<&str> = spec
        .layers
        .iter()
        .map(|l| l.name.as_str())
        .filter(|name| !finished.iter().any(|f| f.name == *name))
        .collect();
    let created = image::rfc3339(ctx.settings.epoch);
    let mut new_layers = Vec::with_capacity(finished.len());
    let mut reports = Vec::with_capacity(finished.len());
    let mut hashed = BTreeMap::new();
    for mut layer in finished {
        if let Some(files) = layer.files.take() {
            hashed.insert(layer.layer_index, files);
        }
        lower.scan.extend(layer.findings.clone(), layer.layer_index);
        lower.labels.push(LayerLabel {
            digest: layer.layer.digest.to_string(),
            name: layer.name.clone(),
        });
        let (new, report) = new_layer(layer, ctx.settings.compression, &created);
        new_layers.push(new);
        reports.push(report);
    }
    let runtime = runtime_config(recipe, &base, &declared)?;
    let allow = &recipe.spec.seal.allow;
    let verdict = ctx
        .cache
        .as_ref()
        .and_then(|cache| Some((cache, verdict_key(&lower.labels, &runtime, allow)?)));
    if verdict.is_some_and(|(cache, key)| cache.verdict(&key)) {
        (ctx.log)("checks and seal: passed on these layers before (cached)");
    } else {
        let view = lower.view.view()?;
        checks::check(&checks::Inputs {
            recipe,
            view,
            scan: &lower.scan,
            config: &runtime,
        })?;
        seal_check(recipe, view, &lower.scan, &lower.labels, &runtime)?;
        if let Some((cache, key)) = verdict {
            // A verdict not filed only costs the next build the checks.
            let _ = cache.put_verdict(&key);
        }
    }
    let recorded = ctx.recorded(recipe)?;
    let mut annotations = annotations(recipe, &base, &platform, ctx.settings, &created, &recorded)?;
    if !empty.is_empty() {
        annotations.insert(annotation::LAYERS_EMPTY.to_string(), empty.join(","));
    }
    let assembled = assemble(
        Lower {
            config: &base.config,
            layers: &base.layers,
        },
        new_layers,
        &platform,
        runtime,
        &created,
        annotations,
    )
    .map_err(Error::Failed)?;
    let own_from = sbom::own_layers_of(
        assembled.layers(),
        assembled.manifest.annotations().as_ref(),
    );
    let mut built = store(assembled, ctx.blobs, platform, base.name, reports)?;
    // The SBOM is made now, while the build holds its view of the image.
    if ctx.attesting.as_ref() == Some(&recipe.file) {
        let view = &mut lower.view;
        let own = |cache: Option<&Cache>| own_as_built(&built, own_from, hashed, view, cache);
        built.sbom = Some(attach::image_sbom(recipe, &built, ctx, own)?);
    }
    Ok(Some(built))
}

/// The own files of `image` as its build has them, for its SBOM: the
/// lists of every own layer (from `own_from` up), as written now
/// (`hashed`) or filed in the cache when they were, read through the
/// build's `view`. None sends the SBOM to read the image back.
fn own_as_built<'v>(
    image: &Built,
    own_from: usize,
    mut hashed: BTreeMap<usize, List>,
    view: &'v mut Deferred,
    cache: Option<&Cache>,
) -> Result<Option<AsBuilt<'v>>> {
    let view = view.view()?;
    let count = image.layers.len();
    if view.layer_count() != count {
        return Ok(None);
    }
    let diff_ids = image.config.rootfs().diff_ids();
    let mut layers = Vec::with_capacity(count.saturating_sub(own_from));
    for i in own_from..count {
        let list = match hashed.remove(&i) {
            Some(list) => list,
            None => {
                let diff_id = diff_ids.get(i).and_then(|d| d.parse::<Digest>().ok());
                match cache.zip(diff_id).and_then(|(c, d)| files::filed(c, &d)) {
                    Some(list) => list,
                    None => return Ok(None),
                }
            }
        };
        layers.push((i, list));
    }
    // A list that does not read (a temporary file gone bad) costs the
    // SBOM a read of the image.
    Ok(AsBuilt::new(view, layers).ok())
}

/// The platform the recipe builds for: its base's, which must be the one
/// it wants, if it wants one (a variant it leaves out is the base's).
fn platform_for(recipe: &Recipe, base: &BaseImage) -> Result<Platform> {
    match recipe.wanted_platform() {
        Some(p) if !p.accepts(&base.platform) => Err(recipe
            .platform_error(format!(
                "platform {p} does not match the base's platform {} (base {})",
                base.platform, base.name
            ))
            .into()),
        _ => Ok(base.platform.clone()),
    }
}

/// The filesystem below the recipe's layers, and what the seal learnt
/// reading it.
struct Below {
    view: Deferred,
    scan: Scan,
    /// One label per layer of the view, bottom first.
    labels: Vec<LayerLabel>,
    diff_ids: Vec<Digest>,
    /// Whether the cache served what reading the base layers would teach.
    cached: bool,
}

/// The cache key of a build's verdict: the checks and the seal passed on
/// these layers (each named by its blob's digest: the content its view
/// and scan came from), this runtime config and these exceptions, under
/// this layer reading, seal policy, scanner and checks. Only a pass is
/// filed: a failure is reported anew each time.
fn verdict_key(
    labels: &[LayerLabel],
    runtime: &Config,
    allow: &[seal::SealAllow],
) -> Option<Digest> {
    let allow: Vec<(&str, &str)> = allow
        .iter()
        .map(|a| (a.rule.as_str(), a.path.as_rel()))
        .collect();
    let inputs = serde_json::json!({
        "verdict": 1,
        "reading": summary::LayerSummary::version(),
        "checks": checks::VERSION,
        "layers": labels,
        "config": runtime,
        "allow": allow,
    });
    canonical_json(&inputs).ok().map(|bytes| Digest::of(&bytes))
}

/// The cache key of a base: each layer's blob digest and diff_id, in
/// order. The blobs are checked against their digests as the build takes
/// them; the entry (a [`BaseSummary`]) says what those bytes were found to
/// hold.
fn base_key(layers: &[Descriptor], diff_ids: &[Digest]) -> Digest {
    let mut text = String::from("base layers\n");
    for (desc, diff_id) in layers.iter().zip(diff_ids) {
        text.push_str(&format!("{} {diff_id}\n", desc.digest()));
    }
    Digest::of(text.as_bytes())
}

/// Reads every base layer into a view and the seal's content scan, each
/// blob verified (digest, size, diff_id) as it streams; or, when the cache
/// holds what an earlier build learnt from the same layers under the same
/// reading, seal policy and scanner, takes that instead.
fn read_base(
    base: &BaseImage,
    blobs: &BlobStore,
    cache: Option<&Cache>,
    progress: &Progress,
    wrap: &dyn Fn(Error) -> Error,
) -> Result<Below> {
    let diff_ids = image_config::diff_ids(&base.config).map_err(Error::Failed)?;
    if diff_ids.len() != base.layers.len() {
        return Err(Error::Failed(format!(
            "base {}: {} layers but {} diff_ids",
            base.name,
            base.layers.len(),
            diff_ids.len()
        )));
    }
    let key = base_key(&base.layers, &diff_ids);
    let mut below = Below {
        view: Deferred::default(),
        scan: Scan::default(),
        labels: base
            .layers
            .iter()
            .map(|desc| LayerLabel {
                digest: desc.digest().to_string(),
                name: "base".into(),
            })
            .collect(),
        diff_ids,
        cached: false,
    };
    let cache = cache.filter(|_| !base.layers.is_empty());
    let count = base.layers.len();
    let cached = cache
        .and_then(|cache| cache.base(&key))
        .and_then(|summary| {
            let found = summary::check_base(&summary, count)?;
            Some((summary, found))
        });
    if let Some((summary, found)) = cached {
        for (layer, findings) in found.into_iter().enumerate() {
            below.scan.extend(findings, layer);
        }
        below.view.defer_base(summary, count);
        below.cached = true;
        return Ok(below);
    }
    // A summary that cannot be written only costs the next build a read.
    let mut summary = cache
        .and_then(|cache| cache.base_draft(&summary::base_version()).ok())
        .map(|draft| BaseSummary::new(base.layers.len(), draft));
    progress.start(&format!("reading base {}", base.name), 0);
    let view = below.view.view()?;
    for (desc, diff_id) in base.layers.iter().zip(&below.diff_ids) {
        let layer = view.layer_count();
        let scan = &mut below.scan;
        let mark = scan.mark();
        let changes = view
            .read_layer(blobs, desc, diff_id, &mut |path, data| {
                let mut counted = CountingRead {
                    inner: data,
                    progress,
                };
                let seen = scan.visit(path, layer, &mut counted);
                progress.advance_file();
                seen
            })
            .map_err(|e| wrap(e.into()))?;
        if let Some(summary) = &mut summary {
            summary.add(&changes, &below.scan.since(mark));
        }
        view.apply(changes);
    }
    progress.finish();
    if let (Some(cache), Some(summary)) = (cache, summary.and_then(BaseSummary::finish)) {
        let _ = cache.put_base(&key, summary);
    }
    Ok(below)
}

/// Files the cache entries of `finished` in the `--cache-to` registries
/// (what they lack of them), and counts what came from `--cache-from`.
/// A registry that fails costs only speed.
fn share_layers(finished: &[FinishedLayer], ctx: &mut Context) {
    for layer in finished {
        if let Some(bytes) = layer.fetched {
            ctx.remote_moved.fetched.layers += 1;
            ctx.remote_moved.fetched.bytes += bytes;
        }
    }
    let (Some(remote), Some(cache)) = (&ctx.remote, &ctx.cache) else {
        return;
    };
    if ctx.cache_only || !remote.pushes() {
        return;
    }
    let version = layers::remote_version();
    let media = ctx.settings.compression.media_type();
    for layer in finished {
        if let Some(key) = &layer.key {
            let pushed = remote.push(key, &version, media.as_ref(), cache, ctx.log);
            ctx.remote_moved.pushed.add(pushed);
        }
    }
}

/// Serves or writes every recipe layer onto `below.view`; None when a
/// cached layer turned out corrupt.
fn build_layers(
    recipe: &Recipe,
    base: &BaseImage,
    below: &mut Below,
    closures: &packages::Closures,
    ctx: &mut Context,
) -> Result<Option<Vec<FinishedLayer>>> {
    let Context {
        blobs,
        settings,
        sources,
        progress,
        log,
        cache,
        debs,
        cache_only,
        missed,
        remote,
        donor,
        attesting,
        ..
    } = ctx;
    let setup = Setup {
        blobs,
        cache: cache.as_ref(),
        remote: remote.as_deref().filter(|_| !*cache_only),
        epoch: settings.epoch,
        compression: settings.compression,
        progress,
        closures,
        debs: packages::Debs {
            store: debs,
            mirrors: &sources.mirrors,
            timeouts: sources.network,
        },
        // Only the root recipe's: a `recipe:` base's layers are its own.
        donor: donor.filter(|d| d.recipe == recipe.file),
        hash_files: attesting.is_some(),
    };
    let mut layers = Layers::new(recipe, base, &below.diff_ids, setup);
    progress.start(&format!("building {}", recipe.spec.name), 0);
    let dir = &recipe.dir;
    let count = recipe.spec.layers.len();
    for index in 0..count {
        let stats = cache.as_ref().map(|cache| cache.stat_index(dir));
        let keyed = layers.key(index, stats.as_ref());
        if !*cache_only {
            layers.add(index, keyed, &mut below.view, *log)?;
        } else if !layers.add_cached(index, keyed, &mut below.view, *log)? {
            let layer = &recipe.spec.layers[index].name;
            *missed = Some(format!("{} layer {layer}", recipe.spec.name));
            return Err(Error::Failed(format!(
                "{}: layer {layer} is not in the build cache",
                recipe.file.display()
            )));
        }
    }
    let finished = layers.finish(*log);
    progress.finish();
    finished
}

/// A reader that counts what is read through it as progress.
struct CountingRead<'a> {
    inner: &'a mut dyn std::io::Read,
    progress: &'a Progress,
}

impl std::io::Read for CountingRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// A finished layer as the image and the report name it.
fn new_layer(
    layer: FinishedLayer,
    compression: LayerCompression,
    created: &str,
) -> (NewLayer, LayerReport) {
    let built = layer.layer;
    let mut descriptor =
        Descriptor::new(compression.media_type(), built.size, built.digest.to_oci());
    descriptor.set_annotations(Some(HashMap::from([
        (annotation::LAYER_NAME.to_string(), layer.name.clone()),
        (
            annotation::LAYER_BASE_DEPENDENT.to_string(),
            built.base_dependent.to_string(),
        ),
    ])));
    let history = image_config::history_entry(
        created,
        format!("ingot layer {} ({} steps)", layer.name, layer.steps),
        None,
    );
    let report = LayerReport {
        name: layer.name,
        digest: built.digest,
        diff_id: built.diff_id,
        size: built.size,
        entries: built.entries,
        cached: layer.cached,
        remote: layer.fetched.is_some(),
        reused: layer.reused,
        packages: layer.packages,
    };
    let new = NewLayer {
        descriptor,
        diff_id: built.diff_id,
        history,
    };
    (new, report)
}

/// The recipe's runtime config merged onto the base's, with the declared
/// params (the base's and the recipe's) recorded as a label.
fn runtime_config(
    recipe: &Recipe,
    base: &BaseImage,
    declared: &crate::params::Params,
) -> Result<Config> {
    let spec = &recipe.spec;
    let mut merged = image_config::merge(base.config.config().as_ref(), &spec.config);
    if !declared.is_empty() {
        let params =
            canonical_json(declared).map_err(|e| Error::Failed(format!("encoding params: {e}")))?;
        let mut labels = merged.labels().clone().unwrap_or_default();
        labels.insert(
            annotation::PARAMS.to_string(),
            String::from_utf8_lossy(&params).into_owned(),
        );
        merged.set_labels(Some(labels));
    }
    Ok(merged)
}

/// Runs the seal on the merged filesystem and the runtime config, with the
/// recipe's exceptions; a stale exception is the recipe's error.
fn seal_check(
    recipe: &Recipe,
    view: &View,
    scan: &Scan,
    labels: &[LayerLabel],
    runtime: &Config,
) -> Result<()> {
    let allow = &recipe.spec.seal.allow;
    let inputs = seal::Inputs {
        view,
        config: (*runtime != Config::default()).then_some(runtime),
        scan,
    };
    let sealed = seal::check(&inputs, allow, labels);
    if let Some(&i) = sealed.unused_allows.first() {
        let a = &allow[i];
        return Err(recipe
            .error_at(
                &["seal", "allow", &i.to_string()],
                format!(
                    "seal.allow {{ rule: {}, path: {} }} matches nothing; remove the stale exception",
                    a.rule, a.path
                ),
            )
            .into());
    }
    if !sealed.is_sealed() {
        return Err(Error::Unsealed(
            sealed.violations.iter().map(ToString::to_string).collect(),
        ));
    }
    Ok(())
}

/// The manifest's annotations: what the image is, what it was built on
/// and how, and the seal it passed.
fn annotations(
    recipe: &Recipe,
    base: &BaseImage,
    platform: &Platform,
    settings: &Settings,
    created: &str,
    recorded: &record::Recorded,
) -> Result<HashMap<String, String>> {
    let spec = &recipe.spec;
    let mut annotations = record::annotations(settings, created, recorded);
    annotations.extend([
        (annotation::TITLE.to_string(), spec.name.clone()),
        (annotation::VERSION.to_string(), spec.version.clone()),
        (annotation::PLATFORM.to_string(), platform.to_string()),
        (
            annotation::SEAL_POLICY.to_string(),
            seal::POLICY_VERSION.to_string(),
        ),
    ]);
    if base.name != "scratch" {
        annotations.insert(annotation::BASE_NAME.to_string(), base.name.clone());
    }
    if !spec.seal.allow.is_empty() {
        let allowed = seal::allow_annotation(&spec.seal.allow)
            .map_err(|e| Error::Failed(format!("encoding seal.allow: {e}")))?;
        annotations.insert(annotation::SEAL_ALLOW.to_string(), allowed);
    }
    if let Some(digest) = base.manifest_digest {
        annotations.insert(annotation::BASE_DIGEST.to_string(), digest.to_string());
    }
    // The recipe's own: none is ingot's (Recipe::load refused those).
    for (key, value) in &spec.annotations {
        annotations
            .entry(key.clone())
            .or_insert_with(|| value.clone());
    }
    Ok(annotations)
}

/// Stores the assembled config and manifest beside the layers.
fn store(
    assembled: Assembled,
    blobs: &BlobStore,
    platform: Platform,
    base_name: String,
    reports: Vec<LayerReport>,
) -> Result<Built> {
    let config_blob = blobs
        .put(&assembled.config_json)
        .context(|| "storing the image config".into())?;
    let manifest = blobs
        .put(&assembled.manifest_json)
        .context(|| "storing the image manifest".into())?;
    Ok(Built {
        manifest,
        config_blob,
        layers: assembled.layers().to_vec(),
        config: assembled.config,
        platform,
        base_name,
        reports,
        sbom: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pathdiff_walks_up_and_down() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            pathdiff(&p("/r/app/recipe.yaml"), &p("/r/app")),
            "recipe.yaml"
        );
        assert_eq!(
            pathdiff(&p("/r/lower/recipe.yaml"), &p("/r/app")),
            "../lower/recipe.yaml"
        );
        assert_eq!(
            pathdiff(&p("/x/y/recipe.yaml"), &p("/r/app")),
            "../../x/y/recipe.yaml"
        );
    }
}
