//! A recipe's layers on their way into the image, in recipe order: each is
//! served from the build cache when its key hits, or planned against the
//! view below and written on a worker thread while the next one is
//! planned. [`Layers::finish`] yields them finished, bottom first.
//!
//! Each layer is keyed on the identities of the layers below it: the
//! base's diff_ids, then the keys of the recipe layers, which fix their
//! bytes as well as a diff_id would. So no key waits for a layer below to
//! be written.

use std::io;
use std::sync::mpsc;
use std::thread::JoinHandle;

use oci_spec::image::Descriptor;

use super::deferred::Deferred;
use super::rebase::Donor;
use super::summary::{EncodedChanges, LayerSummary, at_layer, hiding_first};
use super::{Log, copyup, extract, key, packages, plan};
use crate::attest;
use crate::attest::files::{Hashing, List};
use crate::base::BaseImage;
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::media::LayerCompression;
use crate::layer;
use crate::progress::Progress;
use crate::recipe::Recipe;
use crate::registry::cache::RemoteCache;
use crate::rootfs::View;
use crate::rootfs::source::Walks;
use crate::seal;
use crate::seal::scan::{Findings, Scan};
use crate::store::cache::{Cache, CachedLayer, FileStat, SummaryDraft};
use crate::store::stat_index::SourceIndex;
use crate::store::workdir::WorkDir;
use crate::store::{BlobRef, BlobStore, BlobWriter};

/// A recipe layer, finished: written now or served from the cache.
pub struct FinishedLayer {
    pub name: String,
    pub steps: usize,
    /// Its index in the view (base layers first).
    pub layer_index: usize,
    pub layer: CachedLayer,
    /// What the seal's content scan found in it.
    pub findings: Findings,
    pub cached: bool,
    /// Bytes downloaded when it came from a `--cache-from` registry
    /// (it is `cached` then too).
    pub fetched: Option<u64>,
    /// Its cache key, when it has one: what `--cache-to` files it under.
    pub key: Option<Digest>,
    /// Kept from the image being rebased (it is `cached` then too).
    pub reused: bool,
    /// What its `packages` step installed.
    pub packages: Option<packages::Report>,
    /// The list of its regular files, hashed as they were written, when
    /// the build hashes them for its SBOM and wrote the layer (not when it
    /// was served).
    pub files: Option<List>,
}

/// The layers of one recipe, in flight.
pub struct Layers<'a> {
    recipe: &'a Recipe,
    base: &'a BaseImage,
    blobs: &'a BlobStore,
    cache: Option<&'a Cache>,
    remote: Option<&'a RemoteCache>,
    epoch: u64,
    compression: LayerCompression,
    progress: &'a Progress,
    /// The identities below the next layer: the base's diff_ids, then the
    /// keys of the recipe's layers so far.
    lower: Vec<Digest>,
    /// A layer without a key leaves the ones above without one.
    keyed: bool,
    slots: Vec<Slot>,
    unchecked: Vec<Unchecked>,
    max_writers: usize,
    closures: &'a packages::Closures,
    debs: packages::Debs<'a>,
    donor: Option<&'a Donor>,
    hash_files: bool,
}

/// What the layers are built with.
pub struct Setup<'a> {
    pub blobs: &'a BlobStore,
    pub cache: Option<&'a Cache>,
    /// The `--cache-from` registries to ask for what the cache lacks.
    pub remote: Option<&'a RemoteCache>,
    pub epoch: u64,
    pub compression: LayerCompression,
    pub progress: &'a Progress,
    /// The locked closure of each layer that installs packages.
    pub closures: &'a packages::Closures,
    pub debs: packages::Debs<'a>,
    /// The image `rebase --recipe` keeps the layers of that it may.
    pub donor: Option<&'a Donor>,
    /// Hash each file a layer written holds, for the SBOM
    /// ([`FinishedLayer::files`]).
    pub hash_files: bool,
}

impl<'a> Layers<'a> {
    /// The layers of `recipe` on `base`, whose diff_ids are `base_diff_ids`.
    pub fn new(
        recipe: &'a Recipe,
        base: &'a BaseImage,
        base_diff_ids: &[Digest],
        setup: Setup<'a>,
    ) -> Layers<'a> {
        Layers {
            recipe,
            base,
            blobs: setup.blobs,
            cache: setup.cache,
            remote: setup.remote,
            epoch: setup.epoch,
            compression: setup.compression,
            progress: setup.progress,
            lower: base_diff_ids.to_vec(),
            keyed: setup.cache.is_some(),
            slots: Vec::new(),
            unchecked: Vec::new(),
            max_writers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            closures: setup.closures,
            debs: setup.debs,
            donor: setup.donor,
            hash_files: setup.hash_files,
        }
    }

    /// Adds layer `index`, keyed by [`Layers::key`]: served from the
    /// cache, or planned against `view` and set writing, or left out when
    /// it changes nothing. `view` takes the layer on either way.
    pub fn add(
        &mut self,
        index: usize,
        keyed: Keyed,
        lower: &mut Deferred,
        log: Log,
    ) -> Result<()> {
        if self.donor.is_some() && self.reuse(index, lower.view()?, log)? {
            return Ok(());
        }
        let Keyed { key, mut walks } = keyed;
        if let Some(key) = key
            && self.serve(index, key, &mut walks, lower, log)?
        {
            return Ok(());
        }
        self.write(index, key, walks, lower.view()?, log)
    }

    /// Serves layer `index` from the donor image when it may be kept: it
    /// does not depend on the base, and `view` looks, wherever the layer
    /// looked, as the old base did (see [`crate::rebase`]). Its blob is
    /// read back, checked against its diff_id and scanned for the seal;
    /// false, with the reason logged, when it is to be built.
    fn reuse(&mut self, index: usize, view: &mut View, log: Log) -> Result<bool> {
        let Some(donor) = self.donor else {
            return Ok(false);
        };
        let spec = &self.recipe.spec.layers[index];
        let Some(own) = donor.layer(&spec.name) else {
            log(&format!("layer {}: not in the image, built", spec.name));
            return Ok(false);
        };
        let why = if own.dependent {
            Some(format!("base-dependent, {}", own.dependence()))
        } else if *own.descriptor.media_type() != self.compression.media_type() {
            Some(format!(
                "the image has it as {}",
                own.descriptor.media_type()
            ))
        } else {
            let differ = crate::rebase::mismatches(&own.lookups, view);
            (!differ.is_empty())
                .then(|| format!("planned differently on the new base: {}", differ.join("; ")))
        };
        if let Some(why) = why {
            log(&format!("layer {}: rebuilt: {why}", spec.name));
            return Ok(false);
        }
        let mut scan = Scan::default();
        let mark = scan.mark();
        let changes = super::rebase::read_back(donor, own, self.blobs, view, &mut scan)?;
        let layer_index = view.layer_count();
        let entries = changes.len();
        view.apply(changes);
        let report = self.report(index, view, layer_index, log);
        let hit = CachedLayer {
            digest: crate::store::layout::blob_ref(&own.descriptor)?.digest,
            size: own.descriptor.size(),
            diff_id: own.diff_id,
            entries,
            base_dependent: false,
            summary: None,
        };
        self.slots.push(Slot {
            name: spec.name.clone(),
            steps: spec.steps.len(),
            key: None,
            layer_index,
            state: SlotState::Cached(hit, scan.since(mark)),
            fetched: None,
            reused: true,
            packages: report,
        });
        Ok(true)
    }

    /// Adds layer `index`, keyed by [`Layers::key`], only if the cache
    /// serves it; false, with nothing written, when it would have to be
    /// built (see [`super::predict`]).
    pub fn add_cached(
        &mut self,
        index: usize,
        keyed: Keyed,
        lower: &mut Deferred,
        log: Log,
    ) -> Result<bool> {
        match keyed.key {
            Some(key) => self.serve(index, key, &mut Walks::default(), lower, log),
            None => Ok(false),
        }
    }

    /// Layer `index`'s cache key, made from its inputs (`stats` recognises
    /// unchanged source files), with the source walks it was made from.
    /// Keys are made in layer order, each on those below it.
    pub fn key(&mut self, index: usize, stats: Option<&SourceIndex>) -> Keyed {
        let keyed = match stats {
            Some(stats) if self.keyed => {
                let inputs = key::KeyContext {
                    recipe: self.recipe,
                    base: self.base,
                    lower: &self.lower,
                    epoch: self.epoch,
                    compression: self.compression.name(),
                    packages: self.closures.get(&index).map(|s| s.packages.as_slice()),
                };
                key::layer_key(&inputs, index, stats)
            }
            _ => None,
        };
        match keyed {
            Some((key, walks)) => {
                self.lower.push(key);
                Keyed {
                    key: Some(key),
                    walks,
                }
            }
            None => {
                self.keyed = false;
                Keyed {
                    key: None,
                    walks: Walks::default(),
                }
            }
        }
    }

    /// Serves the layer from the cache when `key` hits and the entry is
    /// usable, or, when the cache lacks it, from a `--cache-from`
    /// registry; a corrupt entry is dropped and false returned. A hit
    /// needs no source walk: `walks` is emptied before the layer fills the
    /// view (planning walks again should the entry turn out corrupt).
    fn serve(
        &mut self,
        index: usize,
        key: Digest,
        walks: &mut Walks,
        lower: &mut Deferred,
        log: Log,
    ) -> Result<bool> {
        let Some(cache) = self.cache else {
            return Ok(false);
        };
        let spec = &self.recipe.spec.layers[index];
        let media = self.compression.media_type();
        let (mut hit, fetched) = match cache.layer(&key) {
            Some(hit) => (hit, None),
            None => match self.fetch(cache, &key, log) {
                Some((hit, expected, from, bytes)) => (hit, Some((expected, from, bytes))),
                None => return Ok(false),
            },
        };
        *walks = Walks::default();
        let layer_index = lower.layer_count();
        let expected = fetched.as_ref().map(|(e, _, _)| e);
        let Some(served) = serve(lower, cache, self.blobs, &key, &mut hit, media, expected) else {
            cache.drop_layer(&key, Some(&hit));
            let _ = std::fs::remove_file(self.blobs.path(&hit.digest));
            match &fetched {
                Some((_, from, _)) => log(&format!(
                    "warning: layer {}: cache entry from {from} refused (its layer does not read back as its entry and summary say), rebuilding",
                    spec.name
                )),
                None => log(&format!(
                    "layer {}: cache entry corrupt, rebuilding",
                    spec.name
                )),
            }
            return Ok(false);
        };
        if let Some((_, from, bytes)) = &fetched {
            log(&format!(
                "layer {}: fetched from {from}, {}",
                spec.name,
                crate::progress::bytes(*bytes)
            ));
        }
        // The view has the summary, or will: a large layer's is megabytes.
        let hit = CachedLayer {
            summary: None,
            ..hit
        };
        if let Some(check) = served.check {
            self.unchecked.push(Unchecked {
                key,
                hit: hit.clone(),
                name: spec.name.clone(),
                check,
            });
        }
        // Only a layer of packages has a report, made from the view.
        let report = match self.closures.contains_key(&index) {
            true => self.report(index, lower.view()?, layer_index, log),
            false => None,
        };
        self.slots.push(Slot {
            name: spec.name.clone(),
            steps: spec.steps.len(),
            key: Some(key),
            layer_index,
            state: SlotState::Cached(hit, served.findings),
            fetched: fetched.map(|(_, _, bytes)| bytes),
            reused: false,
            packages: report,
        });
        Ok(true)
    }

    /// The entry for `key` from the first `--cache-from` registry that has
    /// one, filed in the local cache without its summary (so that it is
    /// read back), with the summary the registry gave, to be compared; the
    /// registry, and bytes downloaded.
    fn fetch(
        &self,
        cache: &Cache,
        key: &Digest,
        log: Log,
    ) -> Option<(CachedLayer, LayerSummary, String, u64)> {
        let remote = self.remote.filter(|r| r.pulls())?;
        let media = self.compression.media_type();
        let fetched = remote.fetch(key, &remote_version(), media.as_ref(), cache, log)?;
        let Some(expected) = LayerSummary::decode(&fetched.summary) else {
            cache.drop_layer(key, Some(&fetched.layer));
            log(&format!(
                "warning: cache entry {} from {} refused: its summary does not decode; rebuilding",
                crate::registry::cache::tag_for(key),
                fetched.from
            ));
            return None;
        };
        Some((fetched.layer, expected, fetched.from, fetched.bytes))
    }

    /// Plans the layer and starts writing it on a worker thread; at most
    /// one writer per core is in flight.
    fn write(
        &mut self,
        index: usize,
        key: Option<Digest>,
        walks: Walks,
        view: &mut View,
        log: Log,
    ) -> Result<()> {
        let spec = &self.recipe.spec.layers[index];
        let (installed, staging) = match (self.closures.get(&index), spec.steps.first()) {
            (Some(set), Some(crate::recipe::Step::Packages(step))) => {
                let (installed, staging) = packages::install_set(view, set, step, &self.debs, log)?;
                for line in installed
                    .present
                    .iter()
                    .map(|p| format!("{p}: already installed below"))
                    .chain(installed.native.iter().cloned())
                    .chain(
                        installed
                            .dropped_setuid
                            .iter()
                            .map(|p| format!("{p}: setuid/setgid bits dropped")),
                    )
                {
                    log(&format!("layer {}: {line}", spec.name));
                }
                (Some(installed), Some(staging))
            }
            _ => (None, None),
        };
        let copied_up = self.copy_up(index, view)?;
        let mut extracted = std::collections::BTreeMap::new();
        for (j, step) in spec.steps.iter().enumerate() {
            if let crate::recipe::Step::Extract(e) = step {
                let archive = extract::read(self.recipe, &e.src)
                    .map_err(|m| self.recipe.step_error(index, j, Some("src"), m))?;
                for path in &archive.skipped {
                    log(&format!(
                        "layer {}: {}: {path} is a device node or fifo, left out (a runtime supplies /dev)",
                        spec.name, e.src
                    ));
                }
                extracted.insert(j, archive);
            }
        }
        let walks = std::cell::RefCell::new(walks);
        let inputs = plan::Inputs {
            recipe: self.recipe,
            base: self.base,
            view,
            base_layers: self.base.layers.len(),
            epoch: self.epoch,
            walks: &walks,
            installed: installed.as_ref(),
            copied_up: copied_up.as_ref(),
            extracted: &extracted,
        };
        let plan = plan::plan_layer(&inputs, index)?;
        // A walk of a large tree is most of what a build holds: gone before
        // the layer is written (one its last copy step took went as its
        // entries were planned).
        drop(walks);
        drop(installed);
        if plan.is_empty() {
            log(&format!("layer {}: no changes, not emitted", spec.name));
            return Ok(());
        }
        let layer_index = view.layer_count();
        let base_dependent = plan.base_dependent;
        let mut runs = plan.into_runs(RUN_ENTRIES);
        let count = runs.entry_count();
        while self.slots.iter().filter(|s| s.writing()).count() >= self.max_writers {
            if let Some(oldest) = self.slots.iter_mut().find(|s| s.writing()) {
                oldest.wait();
            }
        }
        self.progress.add_total(runs.content_size());
        let writer = self
            .blobs
            .writer()
            .context(|| "creating a layer blob".into())?;
        // A layer below another is handed to its writer as fast as its runs
        // are made, so that the next is planned while it is written. The
        // last one has no next: its runs go over as its writer takes them,
        // and its entries are never all held beside the whole view.
        let last = index + 1 == self.recipe.spec.layers.len();
        let (feed, fed) = if last {
            mpsc::sync_channel(RUNS_IN_FLIGHT)
        } else {
            mpsc::sync_channel(count.div_ceil(RUN_ENTRIES) + 1)
        };
        let job = WriteJob {
            runs: fed,
            count,
            epoch: self.epoch,
            compression: self.compression,
            progress: self.progress.clone(),
            layer_index,
            hash_files: self.hash_files,
            staging: staging
                .into_iter()
                .chain(copied_up.map(|c| c.dir))
                .chain(extracted.into_values().map(|a| a.dir))
                .collect(),
        };
        let handle = std::thread::spawn(move || job.run(writer));
        // The view learns the layer from its entries, and the seal sees
        // each file's content as it is written: a fresh layer is not read
        // back. Each change goes into the view and, encoded, into the
        // summary the writer's findings complete (a file in the cache, when
        // there is one to file the layer in), as it is made: the hiding
        // ones first, as the view takes a layer. A failure fails the build,
        // view and all, once the writer has stopped and removed its staging.
        let draft = match (self.cache, &key) {
            (Some(cache), Some(_)) => cache.summary_draft(&LayerSummary::version()).ok(),
            _ => None,
        };
        let mut encoded = draft.map(|d| EncodedChanges::new(count, d));
        let mut take = |change: crate::rootfs::Change| {
            if let Some(encoded) = &mut encoded {
                encoded.push(&change);
            }
            view.apply_one(change);
        };
        let recipe = self.recipe;
        let at_layer = |m: String| Error::from(recipe.error_at(&["layers", &index.to_string()], m));
        let mut fed = || -> Result<()> {
            plan::each_change(runs.markers(), layer_index, true, &mut take).map_err(at_layer)?;
            let mut writing = true;
            for run in &mut runs {
                let run = run.context(|| format!("writing layer {:?}", spec.name))?;
                plan::each_change(run.entries().iter(), layer_index, false, &mut take)
                    .map_err(at_layer)?;
                // A writer gone has failed, and `finish` reports why; the
                // view still takes the whole layer, so that a layer above
                // is planned as it would have been.
                writing = writing && feed.send(Some(run)).is_ok();
            }
            let _ = feed.send(None);
            Ok(())
        };
        if let Err(e) = fed() {
            drop(feed);
            let _ = handle.join();
            return Err(e);
        }
        view.end_layer();
        let report = self.report(index, view, layer_index, log);
        self.slots.push(Slot {
            name: spec.name.clone(),
            steps: spec.steps.len(),
            key,
            layer_index,
            fetched: None,
            reused: false,
            state: SlotState::Writing {
                base_dependent,
                summary: encoded.and_then(EncodedChanges::finish),
                handle,
            },
            packages: report,
        });
        Ok(())
    }

    /// The lower files the `attrs` steps of layer `index` change, read
    /// back from the layers that hold them; None when there are none.
    fn copy_up(&mut self, index: usize, view: &View) -> Result<Option<copyup::CopyUp>> {
        let steps = &self.recipe.spec.layers[index].steps;
        let wanted = copyup::wanted(steps, view)
            .map_err(|m| self.recipe.error_at(&["layers", &index.to_string()], m))?;
        if wanted.is_empty() {
            return Ok(None);
        }
        let base_layers = self.base.layers.len();
        let (base, lower, slots) = (self.base, &self.lower, &mut self.slots);
        let compression = self.compression;
        let staged = copyup::stage(view, wanted, self.blobs, |layer| {
            if layer < base_layers {
                return Ok(copyup::Lower {
                    desc: base.layers[layer].clone(),
                    diff_id: lower[layer],
                });
            }
            let slot = slots
                .iter_mut()
                .find(|s| s.layer_index == layer)
                .ok_or_else(|| Error::Failed(format!("no layer {layer} to copy files up from")))?;
            slot.wait();
            let (digest, size, diff_id) = match &slot.state {
                SlotState::Cached(hit, _) => (hit.digest, hit.size, hit.diff_id),
                SlotState::Done(Ok(w)) => (w.built.digest, w.built.size, w.built.diff_id),
                _ => {
                    return Err(Error::Failed(format!(
                        "layer {} failed to write, so its files cannot be copied up",
                        slot.name
                    )));
                }
            };
            Ok(copyup::Lower {
                desc: Descriptor::new(compression.media_type(), size, digest.to_oci()),
                diff_id,
            })
        })?;
        Ok(Some(staged))
    }

    /// The report of layer `index`, now in `view` at `layer_index`, when
    /// it installs packages; logged.
    fn report(
        &self,
        index: usize,
        view: &View,
        layer_index: usize,
        log: Log,
    ) -> Option<packages::Report> {
        let set = self.closures.get(&index)?;
        let report = packages::report(view, set, layer_index);
        packages::log_report(&self.recipe.spec.layers[index].name, &report, log);
        Some(report)
    }

    /// Waits for every layer, in order, filing fresh ones in the cache, then
    /// for the checks of the layers served from it. None when a served
    /// entry turned out corrupt: its entry is dropped, and the image must
    /// be built again.
    pub fn finish(self, log: Log) -> Result<Option<Vec<FinishedLayer>>> {
        let mut finished = Vec::with_capacity(self.slots.len());
        for slot in self.slots {
            finished.push(finish_slot(slot, self.cache, self.blobs, log)?);
        }
        let mut corrupt = false;
        for u in self.unchecked {
            let intact = u.check.intact.join().unwrap_or(false);
            if let Some(cache) = self.cache {
                if intact {
                    cache.record_checked(&u.hit.digest, u.check.stat);
                } else {
                    cache.drop_layer(&u.key, Some(&u.hit));
                }
            }
            if !intact {
                let _ = std::fs::remove_file(self.blobs.path(&u.hit.digest));
                log(&format!(
                    "layer {}: cache entry corrupt, rebuilding",
                    u.name
                ));
                corrupt = true;
            }
        }
        Ok((!corrupt).then_some(finished))
    }
}

/// Waits for a slot's layer, logs it and, when it is fresh, files it in
/// the cache (which, failing, costs speed, not the build).
fn finish_slot(
    slot: Slot,
    cache: Option<&Cache>,
    blobs: &BlobStore,
    log: Log,
) -> Result<FinishedLayer> {
    let key = slot.key;
    let (layer, findings, cached, files) = match slot.state.finish() {
        Outcome::Cached(hit, findings) => {
            let how = if slot.reused { "reused" } else { "cached" };
            log(&format!(
                "layer {}: {how}, {} entries, {} bytes, {}",
                slot.name, hit.entries, hit.size, hit.digest
            ));
            (hit, findings, true, None)
        }
        Outcome::Written(result) => {
            let done = result.context(|| format!("writing layer {:?}", slot.name))?;
            log(&format!(
                "layer {}: {} entries, {} bytes, {}",
                slot.name, done.built.entries, done.built.size, done.built.digest
            ));
            if let (Some(cache), Some(files)) = (cache, &done.files) {
                attest::files::file(cache, &done.built.diff_id, files);
            }
            if let (Some(cache), Some(key)) = (cache, &slot.key) {
                match cache.put_layer(key, &done.built, done.summary, blobs) {
                    // Written through a hash a moment ago.
                    Ok(()) => {
                        if let Some(stat) = cache.blob_stat(&done.built.digest) {
                            cache.record_checked(&done.built.digest, stat);
                        }
                    }
                    Err(e) => log(&format!("warning: not cached: {e}")),
                }
            }
            (done.built, done.findings, false, done.files)
        }
    };
    Ok(FinishedLayer {
        name: slot.name,
        steps: slot.steps,
        layer_index: slot.layer_index,
        layer,
        findings,
        cached,
        fetched: slot.fetched,
        key,
        reused: slot.reused,
        packages: slot.packages,
        files,
    })
}

/// A cached layer served on the strength of its summary, its blob's digest
/// being checked on another thread meanwhile.
struct Unchecked {
    key: Digest,
    hit: CachedLayer,
    name: String,
    check: Check,
}

/// One recipe layer on its way into the image.
struct Slot {
    name: String,
    steps: usize,
    /// The cache key to file a freshly written layer under.
    key: Option<Digest>,
    layer_index: usize,
    state: SlotState,
    /// Bytes downloaded, when served from a `--cache-from` registry.
    fetched: Option<u64>,
    /// Kept from the image being rebased.
    reused: bool,
    packages: Option<packages::Report>,
}

enum SlotState {
    /// Served from the cache, with the seal's findings from its summary.
    Cached(CachedLayer, Findings),
    /// Being written on a worker thread.
    Writing {
        base_dependent: bool,
        /// The layer's summary, its changes part written (None without a
        /// cache, or if they could not be: the layer is then cached
        /// without one).
        summary: Option<SummaryDraft>,
        handle: JoinHandle<io::Result<WriteDone>>,
    },
    Done(io::Result<Written>),
}

/// A layer written by a worker.
struct Written {
    built: CachedLayer,
    /// Its summary, to be filed with it.
    summary: Option<SummaryDraft>,
    findings: Findings,
    files: Option<List>,
}

impl Slot {
    fn writing(&self) -> bool {
        matches!(self.state, SlotState::Writing { .. })
    }

    /// Waits for the worker, if there is one, keeping its result.
    fn wait(&mut self) {
        let state = std::mem::replace(
            &mut self.state,
            SlotState::Done(Err(io::Error::other("unset"))),
        );
        self.state = match state.finish() {
            Outcome::Cached(hit, findings) => SlotState::Cached(hit, findings),
            Outcome::Written(result) => SlotState::Done(result),
        };
    }
}

/// A slot's layer once no worker is left on it.
enum Outcome {
    Cached(CachedLayer, Findings),
    Written(io::Result<Written>),
}

impl SlotState {
    /// Waits for the worker, if there is one.
    fn finish(self) -> Outcome {
        match self {
            SlotState::Cached(hit, findings) => Outcome::Cached(hit, findings),
            SlotState::Done(result) => Outcome::Written(result),
            SlotState::Writing {
                base_dependent,
                summary,
                handle,
            } => {
                let result = handle
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("the layer writer panicked")));
                Outcome::Written(result.map(|done| Written {
                    built: CachedLayer {
                        digest: done.layer.digest,
                        size: done.layer.size,
                        diff_id: done.layer.diff_id,
                        entries: done.entries,
                        base_dependent,
                        summary: None,
                    },
                    summary: summary.and_then(|s| LayerSummary::end_with(s, &done.findings)),
                    findings: done.findings,
                    files: done.files,
                }))
            }
        }
    }
}

/// What a worker needs to write one layer.
struct WriteJob {
    /// The layer's runs as they come; None after the last.
    runs: mpsc::Receiver<Option<layer::Run>>,
    count: usize,
    epoch: u64,
    compression: LayerCompression,
    progress: Progress,
    layer_index: usize,
    hash_files: bool,
    /// Package and copied-up contents the entries point into, removed
    /// once written.
    staging: Vec<WorkDir>,
}

/// What a layer's writer made: the layer, the seal's findings in it, its
/// entry count and, when asked for, its files' hashes.
struct WriteDone {
    layer: layer::Layer,
    findings: Findings,
    entries: usize,
    files: Option<List>,
}

impl WriteJob {
    /// Writes and stores the layer blob, scanning its content for the seal
    /// (and hashing each file, when asked).
    fn run(self, mut writer: BlobWriter) -> io::Result<WriteDone> {
        let mut scan = Scan::default();
        let mark = scan.mark();
        let mut scan_sink = seal::scan::LayerScan::new(&mut scan, self.layer_index);
        let mut hashing = self.hash_files.then(Hashing::default);
        let mut sink = Counting {
            inner: &mut scan_sink,
            hashing: hashing.as_mut(),
            progress: &self.progress,
        };
        let fed = &self.runs;
        let runs = std::iter::from_fn(|| match fed.recv() {
            Ok(Some(run)) => Some(Ok(run)),
            Ok(None) => None,
            Err(_) => Some(Err(io::Error::other(
                "the layer's entries stopped coming before its last",
            ))),
        });
        let written = layer::write_runs(
            runs,
            self.epoch,
            self.compression,
            &mut writer,
            Some(&mut sink),
        )?;
        writer.commit()?;
        drop(self.staging);
        Ok(WriteDone {
            layer: written,
            findings: scan.since(mark),
            entries: self.count,
            files: hashing.and_then(Hashing::finish),
        })
    }
}

/// A cache hit in the view: its seal findings, and the check of its blob
/// still running, if any.
struct Served {
    findings: Findings,
    check: Option<Check>,
}

/// A cached blob being read back to its digest, and its stat before.
struct Check {
    stat: FileStat,
    intact: JoinHandle<bool>,
}

/// Serves a cache hit into the view; returns its seal findings, or None
/// when the entry cannot be used (its blob is not where it should be, or
/// reads back wrong). A current summary stands for the content: unless the
/// blob is unchanged since it was last read to its digest, it is read again
/// on another thread while the build goes on, and every check is in before
/// the image is assembled. An entry without one, or
/// with one made under another seal policy or scanner, is read back like a
/// base layer, and its summary made anew. An entry from a registry has
/// none: it is read back, and what it does and what the seal finds in it
/// must be what the registry's summary (`expected`) says.
fn serve(
    lower: &mut Deferred,
    cache: &Cache,
    blobs: &BlobStore,
    key: &Digest,
    hit: &mut CachedLayer,
    media: oci_spec::image::MediaType,
    expected: Option<&LayerSummary>,
) -> Option<Served> {
    let stat = cache.blob_stat(&hit.digest)?;
    cache.copy_layer_to(hit, blobs).ok()?;
    let layer_index = lower.layer_count();
    // The summary goes to the view, or, made under another version, is
    // of no more use: the layer is read back below and summarised anew.
    let checked = hit
        .summary
        .take()
        .and_then(|s| Some((LayerSummary::check_current(&s)?, s)));
    if let Some((findings, summary)) = checked {
        lower.defer_layer(summary);
        let check = (!cache.blob_checked(&hit.digest, &stat)).then(|| {
            let store = blobs.clone();
            let blob = BlobRef {
                digest: hit.digest,
                size: hit.size,
            };
            let check =
                std::thread::spawn(move || store.open_blob(&blob).and_then(|r| r.finish()).is_ok());
            Check {
                stat,
                intact: check,
            }
        });
        return Some(Served { findings, check });
    }
    let view = lower.view().ok()?;
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
    if let Some(expected) = expected {
        let placed = hiding_first(&expected.changes).map(|c| at_layer(c.clone(), layer_index));
        if expected.findings != findings || !placed.eq(hiding_first(&changes).cloned()) {
            return None;
        }
    }
    cache.record_checked(&hit.digest, stat);
    let summary = cache
        .summary_draft(&LayerSummary::version())
        .ok()
        .and_then(|draft| LayerSummary::encode(&changes, &findings, draft));
    view.apply(changes);
    // A summary that cannot be saved only costs the next build a read.
    let _ = cache.put_layer(key, hit, summary, blobs);
    Some(Served {
        findings,
        check: None,
    })
}

/// Entries a layer's writer is handed at a time.
const RUN_ENTRIES: usize = 4096;

/// Runs of the last layer handed over and not yet written, at most: enough
/// that its writer never waits for the view.
const RUNS_IN_FLIGHT: usize = 2;

/// A layer's cache key (none when the cache is off or an input cannot be
/// keyed) and the source walks it was made from, which planning reuses.
pub struct Keyed {
    key: Option<Digest>,
    walks: Walks,
}

/// What a registry's cache entry must have been made under to be used:
/// the key's meaning, the layer encoding, and (after `; `, as
/// [`crate::registry::cache`] reads it) the summary's version.
pub fn remote_version() -> String {
    format!(
        "layer key {}, encoding {}; {}",
        key::KEY_VERSION,
        layer::ENCODING_VERSION,
        LayerSummary::version()
    )
}

/// Passes content on to the seal's scan and, when the build hashes its
/// files, to their hashing, counting files and bytes for the progress
/// line.
struct Counting<'a> {
    inner: &'a mut dyn layer::ContentSink,
    hashing: Option<&'a mut Hashing>,
    progress: &'a Progress,
}

impl layer::ContentSink for Counting<'_> {
    fn begin(&mut self, path: &std::sync::Arc<str>) {
        self.inner.begin(path);
        if let Some(hashing) = &mut self.hashing {
            hashing.begin(path);
        }
    }

    fn data(&mut self, chunk: &[u8]) {
        self.progress.advance(chunk.len() as u64);
        self.inner.data(chunk);
        if let Some(hashing) = &mut self.hashing {
            hashing.data(chunk);
        }
    }

    fn end(&mut self) {
        self.progress.advance_file();
        self.inner.end();
        if let Some(hashing) = &mut self.hashing {
            hashing.end();
        }
    }
}
