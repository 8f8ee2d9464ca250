//! The build pipeline: recipe → base → layers → config and manifest → a
//! tagged image in an OCI layout (design.md, "Output").
//!
//! Everything that varies between hosts is passed in as [`Options`]; the
//! pipeline reads no clock, environment or host identity.

pub mod key;
pub mod plan;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifestBuilder, MediaType};

use crate::base::{BaseImage, BaseRef, docker_archive, oci, stemcell};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::media::{Compression, LayerCompression};
use crate::image::reference::ImageRef;
use crate::image::{self, Platform, annotation, canonical_json, config as image_config};
use crate::layer;
use crate::lock::{self, LockFile, Pin};
use crate::recipe::Recipe;
use crate::registry;
use crate::rootfs::{Change, Node, View};
use crate::seal::scan::Findings;
use crate::seal::{self, LayerLabel, Scan};
use crate::store::cache::{Cache, CachedLayer, StatIndex, Summary};
use crate::store::layout::{self, Staging, Tagged};
use crate::store::{BlobRef, BlobStore};

/// Build inputs that come from the command line, not the recipe.
#[derive(Debug, Clone)]
pub struct Options {
    /// SOURCE_DATE_EPOCH: the one timestamp of the image.
    pub epoch: u64,
    /// VCS revision of the recipe, recorded as an annotation.
    pub revision: Option<String>,
    /// Where the recipe's source lives, recorded as an annotation.
    pub source: Option<String>,
    /// The OCI layout to write.
    pub output: PathBuf,
    /// Fail unless every external reference resolves as `ingot.lock` says.
    pub locked: bool,
    /// How the recipe's own layers are compressed.
    pub compression: LayerCompression,
    /// The build cache directory; None builds everything afresh.
    pub cache: Option<PathBuf>,
    /// How to reach registries, for `docker://` bases.
    pub registry: registry::Access,
    /// Resolve registry tags afresh instead of using ingot.lock's pins
    /// (what `ingot lock` does).
    pub repin: bool,
    /// Where progress on long layers goes (quiet by default).
    pub progress: crate::progress::Progress,
}

/// What a finished build reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub name: String,
    pub version: String,
    pub digest: Digest,
    pub config: Digest,
    pub layout: PathBuf,
    pub base: String,
    pub layers: Vec<LayerReport>,
    /// Every external reference resolved, as `ingot.lock` records them.
    pub pins: Vec<Pin>,
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
}

/// Progress and log lines go here; the CLI sends them to stderr.
pub type Log<'a> = &'a mut dyn FnMut(&str);

/// Builds `recipe` into the layout at `options.output`. Nothing is written
/// there unless the whole build succeeds (and, with `locked`, every base
/// resolved as the lock says).
pub fn build(recipe: &Recipe, options: &Options, log: Log) -> Result<Report> {
    let staging = Staging::new(&options.output)?;
    let mut ctx = Context::new(&staging.blobs, options, recipe, log);
    let built = build_image(recipe, &mut ctx)?;
    ctx.save_stats();
    keep_only_referenced(&staging.blobs, &built)?;
    // A retried build pins its bases again: LockFile sorts and dedups.
    let pins = LockFile::new(std::mem::take(&mut ctx.pins)).pins;
    if options.locked {
        check_lock(recipe, &pins)?;
    }
    layout::commit(
        staging,
        &Tagged {
            recipe: &recipe.spec.name,
            tag: &recipe.spec.version,
            manifest: built.manifest,
            platform: &built.platform,
        },
    )?;
    Ok(Report {
        name: recipe.spec.name.clone(),
        version: recipe.spec.version.clone(),
        digest: built.manifest.digest,
        config: built.config_blob.digest,
        layout: options.output.clone(),
        base: built.base_name,
        layers: built.reports,
        pins,
    })
}

/// Resolves every external reference of `recipe` (through `recipe:` bases)
/// without building its layers, and writes `ingot.lock` beside it.
/// Registry tags are resolved afresh, whatever the old lock pinned; the
/// cache and registry settings of `options` apply.
pub fn lock(recipe: &Recipe, options: &Options, log: Log) -> Result<LockFile> {
    let scratch = tempfile::tempdir().context(|| "creating a temp directory".into())?;
    let blobs = BlobStore::open(scratch.path()).context(|| "creating a temp store".into())?;
    let options = Options {
        repin: true,
        ..options.clone()
    };
    let mut ctx = Context::new(&blobs, &options, recipe, log);
    collect_pins(recipe, &mut ctx)?;
    let lock = LockFile::new(std::mem::take(&mut ctx.pins));
    lock::write(&lock::path_for(&recipe.file), &lock)?;
    Ok(lock)
}

fn collect_pins(recipe: &Recipe, ctx: &mut Context) -> Result<()> {
    if let BaseRef::Recipe(path) = &recipe.spec.base {
        let inner = ctx.enter(recipe, path)?;
        collect_pins(&inner, ctx)?;
        ctx.leave();
        return Ok(());
    }
    resolve_base(recipe, ctx).map(drop)
}

/// Compares what this build resolved with `ingot.lock`.
fn check_lock(recipe: &Recipe, pins: &[Pin]) -> Result<()> {
    let path = lock::path_for(&recipe.file);
    let locked = lock::read(&path)?.ok_or_else(|| {
        Error::Failed(format!(
            "--locked: {} does not exist; run `ingot lock {}`",
            path.display(),
            recipe.file.display()
        ))
    })?;
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
    options: &'a Options,
    log: Log<'a>,
    /// Canonical paths of the recipes being built, outermost first, to
    /// refuse `recipe:` cycles.
    stack: Vec<PathBuf>,
    /// The directory `Pin::from` paths are relative to.
    root_dir: PathBuf,
    pins: Vec<Pin>,
    cache: Option<Cache>,
    /// Stat indexes of source directories, saved when the build ends.
    stats: BTreeMap<PathBuf, StatIndex>,
}

impl<'a> Context<'a> {
    fn new(blobs: &'a BlobStore, options: &'a Options, recipe: &Recipe, log: Log<'a>) -> Self {
        Context {
            blobs,
            options,
            log,
            stack: recipe.path.iter().cloned().collect(),
            root_dir: recipe.dir.clone(),
            pins: Vec::new(),
            // A cache that cannot be opened only makes the build slower.
            cache: options
                .cache
                .as_deref()
                .and_then(|root| Cache::open(root).ok()),
            stats: BTreeMap::new(),
        }
    }

    /// The cache key of a layer, learning file digests on the way; None
    /// without a cache.
    fn layer_key(
        &mut self,
        key_ctx: &key::KeyContext,
        index: usize,
    ) -> Option<(Digest, crate::rootfs::source::Walks)> {
        let cache = self.cache.as_ref()?;
        let dir = key_ctx.recipe.dir.clone();
        let stats = self
            .stats
            .entry(dir.clone())
            .or_insert_with(|| cache.stat_index(&dir));
        key::layer_key(key_ctx, index, stats)
    }

    /// Saves what the stat indexes learnt.
    fn save_stats(&self) {
        if let Some(cache) = &self.cache {
            for (dir, index) in &self.stats {
                let _ = cache.save_stat_index(dir, index);
            }
        }
    }

    /// Loads the `recipe:` base `path` of `recipe`, refusing cycles.
    fn enter(&mut self, recipe: &Recipe, path: &Path) -> Result<Recipe> {
        let full = recipe.dir.join(path);
        let canonical = full.canonicalize().map_err(|e| {
            recipe.error_at(&["base"], format!("base recipe {}: {e}", path.display()))
        })?;
        if let Some(i) = self.stack.iter().position(|p| *p == canonical) {
            let cycle: Vec<String> = self.stack[i..]
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|p| p.display().to_string())
                .collect();
            return Err(recipe
                .error_at(&["base"], format!("recipe cycle: {}", cycle.join(" -> ")))
                .into());
        }
        let inner = Recipe::load(&canonical)?;
        self.stack.push(canonical);
        Ok(inner)
    }

    fn leave(&mut self) {
        self.stack.pop();
    }

    /// `recipe`'s path relative to the locked recipe's directory.
    fn from(&self, recipe: &Recipe) -> String {
        match &recipe.path {
            Some(p) => pathdiff(p, &self.root_dir),
            None => recipe.file.display().to_string(),
        }
    }
}

/// `path` relative to the directory `base`, both canonical:
/// `../lower/recipe.yaml`.
fn pathdiff(path: &Path, base: &Path) -> String {
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
}

/// Bases leave their own manifests and configs in the staging store (a
/// stemcell or `recipe:` base is built there): the layout gets only what
/// its image references.
fn keep_only_referenced(blobs: &BlobStore, built: &Built) -> Result<()> {
    let layers: Option<Vec<Digest>> = built
        .layers
        .iter()
        .map(|d| Digest::try_from(d.digest()).ok())
        .collect();
    // A digest this store cannot name is kept, with everything else.
    let Some(layers) = layers else {
        return Ok(());
    };
    let referenced: std::collections::HashSet<Digest> =
        [built.manifest.digest, built.config_blob.digest]
            .into_iter()
            .chain(layers)
            .collect();
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

/// A cached layer served on the strength of its summary, its blob's digest
/// being checked on another thread meanwhile.
struct Unchecked {
    key: Digest,
    hit: CachedLayer,
    name: String,
    intact: std::thread::JoinHandle<bool>,
}

/// Builds the image, or returns None when a cached layer it used turned
/// out corrupt (its entry is then dropped).
fn build_image_once(recipe: &Recipe, ctx: &mut Context) -> Result<Option<Built>> {
    let spec = &recipe.spec;
    let base = resolve_base(recipe, ctx)?;
    let (blobs, options) = (ctx.blobs, ctx.options);
    let platform = match &spec.platform {
        Some(p) if *p != base.platform => {
            return Err(recipe
                .error_at(
                    &["platform"],
                    format!(
                        "platform {p} does not match the base's platform {}",
                        base.platform
                    ),
                )
                .into());
        }
        Some(p) => p.clone(),
        None => base.platform.clone(),
    };
    (ctx.log)(&format!(
        "building {} {} on {}",
        spec.name, spec.version, base.name
    ));

    let mut view = View::new();
    let base_diff_ids = image_config::diff_ids(&base.config).map_err(Error::Failed)?;
    if base_diff_ids.len() != base.layers.len() {
        return Err(Error::Failed(format!(
            "base {}: {} layers but {} diff_ids",
            base.name,
            base.layers.len(),
            base_diff_ids.len()
        )));
    }
    // Every layer, the base's and the recipe's, is read back through the
    // same stream that feeds the view and the seal's content scan.
    let mut scan = Scan::default();
    let mut labels = Vec::new();
    for (desc, diff_id) in base.layers.iter().zip(&base_diff_ids) {
        apply_blob(&mut view, &mut scan, blobs, desc, diff_id)
            .map_err(|e| base_error(recipe, e))?;
        labels.push(LayerLabel {
            digest: desc.digest().to_string(),
            name: "base".into(),
        });
    }

    let created = image::rfc3339(options.epoch);
    // Each recipe layer is keyed on the identities of the layers below it:
    // the base's diff_ids, then the keys of the recipe layers, which fix
    // their bytes as well as a diff_id would. So no key waits for a layer
    // below to be written, and layers are written on worker threads while
    // the next ones are planned.
    let mut lower: Vec<Digest> = base_diff_ids.clone();
    let mut keyed = ctx.cache.is_some();
    let mut slots: Vec<Slot> = Vec::new();
    let mut unchecked: Vec<Unchecked> = Vec::new();
    let max_writers = std::thread::available_parallelism().map_or(1, |n| n.get());
    options
        .progress
        .start(&format!("building {}", spec.name), 0);
    for (i, layer_spec) in spec.layers.iter().enumerate() {
        let key_ctx = key::KeyContext {
            recipe,
            base: &base,
            lower: &lower,
            epoch: options.epoch,
            compression: options.compression.name(),
        };
        let (key, walks) = match keyed.then(|| ctx.layer_key(&key_ctx, i)).flatten() {
            Some((k, walks)) => {
                lower.push(k);
                (Some(k), walks)
            }
            None => {
                // A layer without a key leaves the ones above without one.
                keyed = false;
                (None, Default::default())
            }
        };
        let layer_index = view.layer_count();
        if let (Some(cache), Some(key)) = (&ctx.cache, &key)
            && let Some(hit) = cache.layer(key)
        {
            let media = options.compression.media_type();
            if let Some(served) = serve(&mut view, cache, blobs, key, &hit, media) {
                if let Some(intact) = served.check {
                    unchecked.push(Unchecked {
                        key: *key,
                        hit: hit.clone(),
                        name: layer_spec.name.clone(),
                        intact,
                    });
                }
                let findings = served.findings;
                slots.push(Slot {
                    name: layer_spec.name.clone(),
                    steps: layer_spec.steps.len(),
                    key: None,
                    layer_index,
                    state: SlotState::Cached(hit, findings),
                });
                continue;
            }
            cache.drop_layer(key, Some(&hit));
            let _ = std::fs::remove_file(blobs.path(&hit.digest));
            (ctx.log)(&format!(
                "layer {}: cache entry corrupt, rebuilding",
                layer_spec.name
            ));
        }
        let inputs = plan::Inputs {
            recipe,
            base: &base,
            view: &view,
            base_layers: base.layers.len(),
            epoch: options.epoch,
            walks: &walks,
        };
        let plan = plan::plan_layer(&inputs, i)?;
        if plan.is_empty() {
            (ctx.log)(&format!(
                "layer {}: no changes, not emitted",
                layer_spec.name
            ));
            continue;
        }
        let base_dependent = plan.base_dependent;
        let entries = plan.into_entries();
        // The view learns the layer from its entries, and the seal sees
        // each file's content as it is written: a fresh layer is not read
        // back.
        let changes = plan::changes(&entries, layer_index)
            .map_err(|m| recipe.error_at(&["layers", &i.to_string()], m))?;
        view.apply(changes.clone());
        // Bounded concurrency: at most one writer per core in flight.
        while slots.iter().filter(|s| s.writing()).count() >= max_writers {
            if let Some(oldest) = slots.iter_mut().find(|s| s.writing()) {
                oldest.wait();
            }
        }
        options
            .progress
            .add_total(entries.iter().map(content_size).sum());
        let writer = blobs.writer().context(|| "creating a layer blob".into())?;
        let job = WriteJob {
            entries,
            epoch: options.epoch,
            compression: options.compression,
            progress: options.progress.clone(),
            layer_index,
        };
        let count = job.entries.len();
        slots.push(Slot {
            name: layer_spec.name.clone(),
            steps: layer_spec.steps.len(),
            key,
            layer_index,
            state: SlotState::Writing {
                count,
                base_dependent,
                changes,
                handle: std::thread::spawn(move || job.run(writer)),
            },
        });
    }

    let mut layers = base.layers.clone();
    let mut diff_ids = base_diff_ids;
    let mut history = base.config.history().clone().unwrap_or_default();
    let mut reports = Vec::new();
    for slot in slots {
        let (built, findings, hit) = match slot.state.finish() {
            Finished::Cached(hit, findings) => {
                (ctx.log)(&format!(
                    "layer {}: cached, {} entries, {} bytes, {}",
                    slot.name, hit.entries, hit.size, hit.digest
                ));
                (hit, findings, true)
            }
            Finished::Written(result) => {
                let done = result.context(|| format!("writing layer {:?}", slot.name))?;
                (ctx.log)(&format!(
                    "layer {}: {} entries, {} bytes, {}",
                    slot.name, done.built.entries, done.built.size, done.built.digest
                ));
                if let (Some(cache), Some(key)) = (&ctx.cache, &slot.key) {
                    // A cache that cannot be written costs speed, not the
                    // build.
                    if let Err(e) = cache.put_layer(key, &done.built, blobs) {
                        (ctx.log)(&format!("warning: not cached: {e}"));
                    }
                }
                (done.built, done.findings, false)
            }
        };
        scan.extend(findings, slot.layer_index);
        let mut desc = Descriptor::new(
            options.compression.media_type(),
            built.size,
            built.digest.to_oci(),
        );
        desc.set_annotations(Some(HashMap::from([
            (annotation::LAYER_NAME.to_string(), slot.name.clone()),
            (
                annotation::LAYER_BASE_DEPENDENT.to_string(),
                built.base_dependent.to_string(),
            ),
        ])));
        labels.push(LayerLabel {
            digest: built.digest.to_string(),
            name: slot.name.clone(),
        });
        layers.push(desc);
        diff_ids.push(built.diff_id);
        history.push(image_config::history_entry(
            &created,
            format!("ingot layer {} ({} steps)", slot.name, slot.steps),
            None,
        ));
        reports.push(LayerReport {
            name: slot.name,
            digest: built.digest,
            diff_id: built.diff_id,
            size: built.size,
            entries: built.entries,
            cached: hit,
        });
    }
    options.progress.finish();

    let mut corrupt = false;
    for u in unchecked {
        if !u.intact.join().unwrap_or(false) {
            if let Some(cache) = &ctx.cache {
                cache.drop_layer(&u.key, Some(&u.hit));
            }
            let _ = std::fs::remove_file(blobs.path(&u.hit.digest));
            (ctx.log)(&format!(
                "layer {}: cache entry corrupt, rebuilding",
                u.name
            ));
            corrupt = true;
        }
    }
    if corrupt {
        return Ok(None);
    }

    let mut merged = image_config::merge(base.config.config().as_ref(), &spec.config);
    if !spec.params.is_empty() {
        let params = canonical_json(&spec.params)
            .map_err(|e| Error::Failed(format!("encoding params: {e}")))?;
        let mut labels = merged.labels().clone().unwrap_or_default();
        labels.insert(
            annotation::PARAMS.to_string(),
            String::from_utf8_lossy(&params).into_owned(),
        );
        merged.set_labels(Some(labels));
    }
    let config = image_config::image_config(&platform, &created, merged, &diff_ids, history);
    let inputs = seal::Inputs {
        view: &view,
        config: config.config().as_ref(),
        scan: &scan,
    };
    let sealed = seal::check(&inputs, &spec.seal.allow, &labels);
    if let Some(&i) = sealed.unused_allows.first() {
        let a = &spec.seal.allow[i];
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
    let config_blob = put_json(blobs, &config)?;

    let mut annotations = HashMap::from([
        (annotation::CREATED.to_string(), created.clone()),
        (annotation::TITLE.to_string(), spec.name.clone()),
        (annotation::VERSION.to_string(), spec.version.clone()),
        (
            annotation::LAYER_ENCODING.to_string(),
            layer::ENCODING_VERSION.to_string(),
        ),
        (
            annotation::COMPRESSION.to_string(),
            options.compression.name().to_string(),
        ),
        (annotation::PLATFORM.to_string(), platform.to_string()),
    ]);
    if base.name != "scratch" {
        annotations.insert(annotation::BASE_NAME.to_string(), base.name.clone());
    }
    annotations.insert(
        annotation::SEAL_POLICY.to_string(),
        seal::POLICY_VERSION.to_string(),
    );
    if !spec.seal.allow.is_empty() {
        let allowed = seal::allow_annotation(&spec.seal.allow)
            .map_err(|e| Error::Failed(format!("encoding seal.allow: {e}")))?;
        annotations.insert(annotation::SEAL_ALLOW.to_string(), allowed);
    }
    if let Some(d) = base.manifest_digest {
        annotations.insert(annotation::BASE_DIGEST.to_string(), d.to_string());
    }
    if let Some(r) = &options.revision {
        annotations.insert(annotation::REVISION.to_string(), r.clone());
    }
    if let Some(s) = &options.source {
        annotations.insert(annotation::SOURCE.to_string(), s.clone());
    }
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_blob.size,
            config_blob.digest.to_oci(),
        ))
        .layers(layers.clone())
        .annotations(annotations)
        .build()
        .map_err(|e| Error::Failed(format!("assembling the manifest: {e}")))?;
    let manifest_blob = put_json(blobs, &manifest)?;

    Ok(Some(Built {
        manifest: manifest_blob,
        config_blob,
        config,
        layers,
        platform,
        base_name: base.name,
        reports,
    }))
}

/// Resolves the recipe's base into blobs in the context's store, and pins
/// it when it is an external reference.
fn resolve_base(recipe: &Recipe, ctx: &mut Context) -> Result<BaseImage> {
    let at_base = |m: String| Error::from(recipe.error_at(&["base"], m));
    let wanted = recipe
        .spec
        .platform
        .clone()
        .unwrap_or_else(Platform::linux_amd64);
    let base = match &recipe.spec.base {
        BaseRef::Scratch => {
            let config = image_config::image_config(&wanted, "", Default::default(), &[], vec![]);
            return Ok(BaseImage {
                name: "scratch".into(),
                manifest_digest: None,
                config_digest: None,
                config,
                layers: vec![],
                platform: wanted,
            });
        }
        BaseRef::Recipe(path) => {
            let inner = ctx.enter(recipe, path)?;
            let built = build_image(&inner, ctx);
            ctx.leave();
            let built = built?;
            return Ok(BaseImage {
                name: recipe.spec.base.to_string(),
                manifest_digest: Some(built.manifest.digest),
                config_digest: Some(built.config_blob.digest),
                config: built.config,
                layers: built.layers,
                platform: built.platform,
            });
        }
        BaseRef::Stemcell { name, version } => {
            let unpacked = stemcell::unpack(name, version.as_deref()).map_err(at_base)?;
            let stem = &unpacked.recipe;
            // Stemcells have one identity per version: a fixed timestamp and
            // none of the caller's annotations.
            let options = Options {
                epoch: stemcell::STEMCELL_EPOCH,
                revision: None,
                source: None,
                output: PathBuf::new(),
                locked: false,
                compression: LayerCompression::Gzip,
                cache: ctx.options.cache.clone(),
                registry: ctx.options.registry.clone(),
                repin: false,
                progress: crate::progress::Progress::quiet(),
            };
            let mut quiet = |_: &str| {};
            let mut inner = Context::new(ctx.blobs, &options, stem, &mut quiet);
            let built = build_image(stem, &mut inner)?;
            BaseImage {
                name: format!("stemcell:{}@{}", stem.spec.name, stem.spec.version),
                manifest_digest: Some(built.manifest.digest),
                config_digest: Some(built.config_blob.digest),
                config: built.config,
                layers: built.layers,
                platform: built.platform,
            }
        }
        BaseRef::Image(ImageRef::Oci(reference)) => {
            let dir = recipe.dir.join(&reference.path);
            oci::load(reference, &dir, &wanted, ctx.blobs).map_err(|e| base_error(recipe, e))?
        }
        BaseRef::Image(ImageRef::DockerArchive(path)) => {
            let file = recipe.dir.join(path);
            if !file.is_file() {
                return Err(at_base(format!("{}: no such file", recipe.spec.base)));
            }
            let mut base =
                docker_archive::load(&file, ctx.blobs).map_err(|e| base_error(recipe, e))?;
            base.name = recipe.spec.base.to_string();
            base
        }
        BaseRef::Image(ImageRef::Docker(reference)) => {
            resolve_registry(recipe, reference, &wanted, ctx)?
        }
    };
    if let Some(config) = base.config_digest {
        (ctx.log)(&format!("base {}: config {config}", base.name));
        let from = ctx.from(recipe);
        ctx.pins.push(Pin {
            from,
            reference: recipe.spec.base.to_string(),
            resolved: base.name.clone(),
            config,
            manifest: base.manifest_digest,
        });
    }
    Ok(base)
}

/// Resolves a `docker://` base. A tag is resolved once and pinned in
/// ingot.lock: with a pin, the pinned manifest is used whatever the tag
/// says now. Blobs go to the cache (shared by later builds) when there is
/// one, and are linked into the build's store; an image pinned by digest
/// whose blobs the cache holds is used without contacting the registry.
fn resolve_registry(
    recipe: &Recipe,
    reference: &crate::image::reference::RegistryRef,
    platform: &Platform,
    ctx: &mut Context,
) -> Result<BaseImage> {
    let pinned = match reference.digest {
        Some(_) => reference.clone(),
        None if ctx.options.repin => reference.clone(),
        None => match lock_pin(recipe, &ctx.from(recipe), &recipe.spec.base.to_string())? {
            Some(manifest) => reference.with_digest(manifest),
            None => reference.clone(),
        },
    };
    let store = ctx.cache.as_ref().map_or(ctx.blobs, |c| &c.blobs);
    let local = pinned.digest.and_then(|d| cached_image(store, &d));
    let (manifest_digest, manifest, config) = match local {
        Some(found) => found,
        None => {
            let remote = registry::Remote::connect(
                &pinned,
                &ctx.options.registry,
                registry::Progress::quiet(),
            )
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
        if let Some(cache) = &ctx.cache {
            cache.copy_blob_to(&blob.digest, ctx.blobs)?;
        }
    }
    let config_digest =
        Digest::try_from(manifest.config().digest()).map_err(|e| failed(e.to_string()))?;
    Ok(BaseImage {
        name: reference.to_string(),
        manifest_digest: Some(manifest_digest),
        config_digest: Some(config_digest),
        platform: image_config::platform_of(&config),
        layers: manifest.layers().clone(),
        config,
    })
}

/// The manifest the lock pins `reference` (as written in `from`) to.
fn lock_pin(recipe: &Recipe, from: &str, reference: &str) -> Result<Option<Digest>> {
    let Some(lock) = lock::read(&lock::path_for(&recipe.file))? else {
        return Ok(None);
    };
    Ok(lock
        .pins
        .iter()
        .find(|p| p.from == from && p.reference == reference)
        .and_then(|p| p.manifest))
}

/// An image manifest and its config from `store`, when both are there and
/// check out. Layers are verified as they are read later.
fn cached_image(
    store: &BlobStore,
    manifest: &Digest,
) -> Option<(Digest, oci_spec::image::ImageManifest, ImageConfiguration)> {
    let bytes = std::fs::read(store.path(manifest)).ok()?;
    if Digest::of(&bytes) != *manifest {
        return None;
    }
    let parsed: oci_spec::image::ImageManifest = serde_json::from_slice(&bytes).ok()?;
    let config_ref = layout::blob_ref(parsed.config()).ok()?;
    let config: ImageConfiguration = serde_json::from_slice(&store.read(&config_ref).ok()?).ok()?;
    let present = parsed.layers().iter().all(|l| {
        layout::blob_ref(l).is_ok_and(|b| {
            std::fs::metadata(store.path(&b.digest)).is_ok_and(|m| m.len() == b.size)
        })
    });
    present.then_some((*manifest, parsed, config))
}

/// Places a base resolution error at the recipe's `base`: a reference that
/// does not resolve is the recipe's error (exit 2); a base that does not
/// verify is a failure (exit 1), still named by position, and still of its
/// type (a blob or layer error stays one).
fn base_error(recipe: &Recipe, err: Error) -> Error {
    match err {
        Error::Usage(m) => recipe.error_at(&["base"], m).into(),
        Error::Recipe(e) => e.into(),
        other => {
            let at = recipe.error_at(&["base"], "");
            other.within(format!(
                "{}:{}:{}",
                at.file.display(),
                at.pos.line,
                at.pos.col
            ))
        }
    }
}

/// Streams a layer into the view and the seal's scan, verifying the blob's
/// digest and size and the uncompressed diff_id before the view changes.
fn apply_blob(
    view: &mut View,
    scan: &mut Scan,
    blobs: &BlobStore,
    desc: &Descriptor,
    diff_id: &Digest,
) -> Result<()> {
    let layer = view.layer_count();
    view.apply_layer(blobs, desc, diff_id, &mut |path, data| {
        scan.visit(path, layer, data)
    })
    .map_err(Error::Layer)
}

/// A change placed in layer `index` of the view.
fn at_layer(change: Change, index: usize) -> Change {
    match change {
        Change::Put(path, node, content) => Change::Put(
            path,
            Node {
                layer: index,
                ..node
            },
            content,
        ),
        other => other,
    }
}

/// Bytes of file content an entry brings.
/// One recipe layer on its way into the image, in recipe order.
struct Slot {
    name: String,
    steps: usize,
    /// The cache key to file a freshly written layer under.
    key: Option<Digest>,
    layer_index: usize,
    state: SlotState,
}

enum SlotState {
    /// Served from the cache, with the seal's findings from its summary.
    Cached(CachedLayer, Findings),
    /// Being written on a worker thread.
    Writing {
        count: usize,
        base_dependent: bool,
        changes: Vec<Change>,
        handle: std::thread::JoinHandle<std::io::Result<(layer::Layer, Findings)>>,
    },
    Done(std::io::Result<Written>),
}

/// A layer written by a worker.
struct Written {
    built: CachedLayer,
    findings: Findings,
}

impl Slot {
    fn writing(&self) -> bool {
        matches!(self.state, SlotState::Writing { .. })
    }

    /// Waits for the worker, if there is one, keeping its result.
    fn wait(&mut self) {
        let state = std::mem::replace(
            &mut self.state,
            SlotState::Done(Err(std::io::Error::other("unset"))),
        );
        self.state = match state.finish() {
            Finished::Cached(hit, findings) => SlotState::Cached(hit, findings),
            Finished::Written(result) => SlotState::Done(result),
        };
    }
}

/// A slot's layer once no worker is left on it.
enum Finished {
    Cached(CachedLayer, Findings),
    Written(std::io::Result<Written>),
}

impl SlotState {
    /// Waits for the worker, if there is one.
    fn finish(self) -> Finished {
        match self {
            SlotState::Cached(hit, findings) => Finished::Cached(hit, findings),
            SlotState::Done(result) => Finished::Written(result),
            SlotState::Writing {
                count,
                base_dependent,
                changes,
                handle,
            } => {
                let result = handle
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("the layer writer panicked")));
                Finished::Written(result.map(|(written, findings)| {
                    Written {
                        built: CachedLayer {
                            digest: written.digest,
                            size: written.size,
                            diff_id: written.diff_id,
                            entries: count,
                            base_dependent,
                            summary: LayerSummary {
                                changes,
                                findings: findings.clone(),
                            }
                            .stamped(),
                        },
                        findings,
                    }
                }))
            }
        }
    }
}

/// What a worker needs to write one layer.
struct WriteJob {
    entries: Vec<layer::Entry>,
    epoch: u64,
    compression: LayerCompression,
    progress: crate::progress::Progress,
    layer_index: usize,
}

impl WriteJob {
    /// Writes and stores the layer blob, scanning its content for the seal.
    fn run(
        self,
        mut writer: crate::store::BlobWriter,
    ) -> std::io::Result<(layer::Layer, Findings)> {
        let mut scan = Scan::default();
        let mark = scan.mark();
        let mut scan_sink = seal::scan::LayerScan::new(&mut scan, self.layer_index);
        let mut sink = Counting {
            inner: &mut scan_sink,
            progress: &self.progress,
        };
        let written = layer::write_compressed(
            self.entries,
            self.epoch,
            self.compression,
            &mut writer,
            Some(&mut sink),
        )?;
        writer.commit()?;
        Ok((written, scan.since(mark)))
    }
}

/// A cache hit in the view: its seal findings, and the check of its blob
/// still running, if any.
struct Served {
    findings: Findings,
    check: Option<std::thread::JoinHandle<bool>>,
}

/// Serves a cache hit into the view; returns its seal findings, or None
/// when the entry cannot be used (its blob is not where it should be, or
/// reads back wrong). A current summary stands for the content: its blob's
/// digest is checked on another thread while the build goes on, and every
/// check is in before the image is assembled. An entry without one, or
/// with one made under another seal policy or scanner, is read back like a
/// base layer, and its summary made anew.
fn serve(
    view: &mut View,
    cache: &Cache,
    blobs: &BlobStore,
    key: &Digest,
    hit: &CachedLayer,
    media: MediaType,
) -> Option<Served> {
    cache.copy_layer_to(hit, blobs).ok()?;
    let layer_index = view.layer_count();
    if let Some(summary) = LayerSummary::current(hit) {
        let store = blobs.clone();
        let blob = BlobRef {
            digest: hit.digest,
            size: hit.size,
        };
        let check =
            std::thread::spawn(move || store.open_blob(&blob).and_then(|r| r.finish()).is_ok());
        let changes = summary
            .changes
            .into_iter()
            .map(|c| at_layer(c, layer_index))
            .collect();
        view.apply(changes);
        return Some(Served {
            findings: summary.findings,
            check: Some(check),
        });
    }
    let desc = Descriptor::new(media, hit.size, hit.digest.to_oci());
    let mut scan = Scan::default();
    let mark = scan.mark();
    let mut reader = layer::read::open(blobs, &desc).ok()?;
    let changes = view
        .read_tar(&mut reader, &mut |path, data| {
            scan.visit(path, layer_index, data)
        })
        .ok()?;
    reader.finish(&hit.diff_id).ok()?;
    let findings = scan.since(mark);
    let refreshed = CachedLayer {
        summary: LayerSummary {
            changes: changes.clone(),
            findings: findings.clone(),
        }
        .stamped(),
        ..hit.clone()
    };
    view.apply(changes);
    // A summary that cannot be saved only costs the next build a read.
    let _ = cache.put_layer(key, &refreshed, blobs);
    Some(Served {
        findings,
        check: None,
    })
}

/// What a build learns about a layer while writing it, cached with the
/// layer so that a hit needs no decompression: its effect on the view and
/// what the seal's content scan found in it.
#[derive(serde::Serialize, serde::Deserialize)]
struct LayerSummary {
    changes: Vec<Change>,
    findings: Findings,
}

impl LayerSummary {
    /// What a summary's meaning depends on: its own shape and the seal
    /// policy and scanner that made its findings. A summary from another
    /// version is read back, never trusted.
    fn version() -> String {
        format!(
            "summary 1, seal policy {}, scanner {}",
            seal::POLICY_VERSION,
            seal::scan::SCANNER_VERSION
        )
    }

    /// The summary for the cache, stamped with this version.
    fn stamped(&self) -> Option<Summary> {
        let body = serde_json::to_value(self).ok()?;
        Some(Summary {
            version: Self::version(),
            body,
        })
    }

    /// The summary of `hit`, if it was made by this version.
    fn current(hit: &CachedLayer) -> Option<LayerSummary> {
        serde_json::from_value(hit.summary(&Self::version())?.clone()).ok()
    }
}

fn content_size(entry: &layer::Entry) -> u64 {
    match &entry.kind {
        layer::EntryKind::File(layer::Content::Bytes(b)) => b.len() as u64,
        layer::EntryKind::File(layer::Content::Path { size, .. }) => *size,
        _ => 0,
    }
}

/// Passes content on, counting files and bytes for the progress line.
struct Counting<'a> {
    inner: &'a mut dyn layer::ContentSink,
    progress: &'a crate::progress::Progress,
}

impl layer::ContentSink for Counting<'_> {
    fn begin(&mut self, path: &str) {
        self.inner.begin(path);
    }

    fn data(&mut self, chunk: &[u8]) {
        self.progress.advance(chunk.len() as u64);
        self.inner.data(chunk);
    }

    fn end(&mut self) {
        self.progress.advance_file();
        self.inner.end();
    }
}

fn put_json<T: serde::Serialize>(blobs: &BlobStore, value: &T) -> Result<BlobRef> {
    let json = canonical_json(value).map_err(|e| Error::Failed(format!("encoding JSON: {e}")))?;
    blobs.put(&json).context(|| "storing a JSON blob".into())
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
