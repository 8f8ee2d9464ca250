//! The build cache shared through registries (issue 18, "Shared cache in
//! a registry"): `--cache-to` files each layer's cache entry in a
//! repository as an OCI artifact tagged with its key; `--cache-from` looks
//! up there a key the local cache lacks and brings the entry into the
//! local cache, every blob checked by size and digest as it streams.
//!
//! An entry is an image manifest (image-spec 1.1 artifact) tagged
//! `key-<hex>`, of `artifactType` [`LAYER_ARTIFACT`], its config the empty
//! descriptor, its layers in this order:
//!
//! 1. the entry the local cache keeps as `layers/<key>.json`
//!    ([`ENTRY_MEDIA`]: digest, size, diff_id, entries of the layer);
//! 2. its summary, `layers/<key>.summary` ([`SUMMARY_MEDIA`]);
//! 3. the layer blob, under its layer media type;
//!
//! and the annotations [`KEY_ANNOTATION`] and [`VERSION_ANNOTATION`] (the
//! key's, the layer encoding's, the layer reader's, the seal policy's and
//! the scanner's versions, as the pipeline spells them).
//!
//! What is trusted: nothing the registry says until it is checked. An
//! entry of another version is not used. The manifest is bounded as every
//! manifest is, the entry and summary as the local cache bounds its files;
//! the blobs are verified by size and digest as they stream, and the
//! layer's descriptor must be what the entry records. Before the layer is
//! served, the pipeline reads it back (its diff_id checked) and compares
//! what it finds with the summary: the seal's findings about a layer come
//! from its bytes on this machine, never from a registry.
//!
//! A cache registry costs only speed: one that cannot be reached or
//! misbehaves is reported once, in a line naming it and why, and left
//! alone for the rest of the run; a corrupt entry is refused and the layer
//! built.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use oci_spec::image::{Descriptor, ImageManifest, ImageManifestBuilder, MediaType};
use serde::Serialize;

use super::push::{PushOptions, PushReport, Tally, push_blobs};
use super::{Access, RegistryError, Remote};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::artifact::{EMPTY_JSON, empty_config};
use crate::image::media;
use crate::image::reference::RegistryRef;
use crate::progress::Progress;
use crate::store::cache::{Cache, CachedLayer, MAX_CACHE_FILE, MAX_LAYER_ENTRY, Summary};
use crate::store::layout::blob_ref;
use crate::store::workdir::WorkDir;
use crate::store::{BlobRef, BlobStore};

/// The `artifactType` of a layer's cache entry.
pub const LAYER_ARTIFACT: &str = "application/vnd.ingot.cache.layer.v1+json";
/// The entry (`layers/<key>.json`), as a blob of the artifact.
pub const ENTRY_MEDIA: &str = "application/vnd.ingot.cache.entry.v1+json";
/// The summary (`layers/<key>.summary`), as a blob of the artifact.
pub const SUMMARY_MEDIA: &str = "application/vnd.ingot.cache.summary.v1";
/// The cache key the entry is filed under (`sha256:…`).
pub const KEY_ANNOTATION: &str = "dev.ingot.cache.key";
/// What the entry's meaning depends on: an entry of another is not used.
pub const VERSION_ANNOTATION: &str = "dev.ingot.cache.version";

/// The tag a key's entry is filed at: `key-<hex>`, within the tag grammar
/// (`[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`).
pub fn tag_for(key: &Digest) -> String {
    format!("key-{}", key.hex())
}

/// The `--cache-from` and `--cache-to` repositories of a run, shared by
/// every build of it (a fleet's threads included).
#[derive(Debug)]
pub struct RemoteCache {
    from: Vec<RegistryRef>,
    to: Vec<RegistryRef>,
    access: Access,
    /// Connections, by repository; made on first use.
    remotes: Mutex<HashMap<String, std::sync::Arc<Remote>>>,
    /// Hosts that failed, with why: left alone for the rest of the run.
    down: Mutex<BTreeMap<String, String>>,
}

/// An entry brought into the local cache.
#[derive(Debug)]
pub struct Fetched {
    /// The entry as it is now in the local cache.
    pub layer: CachedLayer,
    /// The summary the registry holds for it, to compare with what
    /// reading the layer gives.
    pub summary: Summary,
    /// `docker://HOST/REPO` it came from.
    pub from: String,
    /// Bytes downloaded (blobs the local store already had are not).
    pub bytes: u64,
}

/// What putting entries in the `--cache-to` repositories did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pushed {
    /// Entries put (a manifest each, per repository).
    pub entries: u64,
    /// Entries the repository already had.
    pub present: u64,
    /// Blobs and bytes uploaded; blobs the registry had are not.
    pub uploaded: Tally,
}

impl Pushed {
    pub fn add(&mut self, other: Pushed) {
        self.entries += other.entries;
        self.present += other.present;
        self.uploaded.blobs += other.uploaded.blobs;
        self.uploaded.bytes += other.uploaded.bytes;
    }
}

/// Why one repository's entry was not used.
enum Failure {
    /// The registry failed us: the host is left alone from now on.
    Down(String),
    /// The entry is corrupt or of another version: refused.
    Refused(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        match e {
            // What the registry sent is not what it promised: the entry,
            // not the registry, is at fault.
            Error::Registry(
                RegistryError::DigestMismatch { .. }
                | RegistryError::SizeMismatch { .. }
                | RegistryError::NotFound { .. },
            ) => Failure::Refused(e.to_string()),
            other => Failure::Down(other.to_string()),
        }
    }
}

impl RemoteCache {
    /// The cache in `from` (looked up in order) and `to` (each filled),
    /// reached as `access` says. Nothing is sent yet.
    pub fn new(from: Vec<RegistryRef>, to: Vec<RegistryRef>, access: Access) -> RemoteCache {
        let bare = |r: Vec<RegistryRef>| r.into_iter().map(|r| r.with_tag(None)).collect();
        RemoteCache {
            from: bare(from),
            to: bare(to),
            access,
            remotes: Mutex::default(),
            down: Mutex::default(),
        }
    }

    pub fn pulls(&self) -> bool {
        !self.from.is_empty()
    }

    pub fn pushes(&self) -> bool {
        !self.to.is_empty()
    }

    /// Looks `key` up in each `--cache-from` repository in turn; the first
    /// usable entry is checked, blob by blob, into `cache`. `version` is
    /// what the entry must have been made under; `layer_media` the layer
    /// media type its key implies. A repository that fails or holds a
    /// corrupt entry is reported on `log` and passed over. The entry goes
    /// into the local cache without its summary: the pipeline reads the
    /// layer back and compares.
    pub fn fetch(
        &self,
        key: &Digest,
        version: &str,
        layer_media: &str,
        cache: &Cache,
        log: &mut dyn FnMut(&str),
    ) -> Option<Fetched> {
        for repo in &self.from {
            if self.is_down(repo) {
                continue;
            }
            match self.fetch_from(repo, key, version, layer_media, cache) {
                Ok(Some(fetched)) => return Some(fetched),
                Ok(None) => {}
                Err(Failure::Refused(why)) => log(&format!(
                    "warning: cache entry {} in {repo} refused: {why}",
                    tag_for(key)
                )),
                Err(Failure::Down(why)) => self.mark_down(repo, &why, log),
            }
        }
        None
    }

    /// Files the local cache's entry for `key` in every `--cache-to`
    /// repository that lacks it (blobs it has are not sent again).
    /// `layer_media` is the layer blob's media type.
    pub fn push(
        &self,
        key: &Digest,
        version: &str,
        layer_media: &str,
        cache: &Cache,
        log: &mut dyn FnMut(&str),
    ) -> Pushed {
        let mut pushed = Pushed::default();
        if self.to.is_empty() {
            return pushed;
        }
        // The entry as the local cache has it, summary included; one
        // without a summary is not worth sharing.
        let Some(layer) = cache.layer(key) else {
            return pushed;
        };
        let Some(summary) = layer.summary.as_ref() else {
            return pushed;
        };
        for repo in &self.to {
            if self.is_down(repo) {
                continue;
            }
            let entry = Entry {
                key,
                version,
                layer_media,
                layer: &layer,
                summary,
            };
            match self.push_to(repo, &entry, cache) {
                Ok(p) => pushed.add(p),
                Err(e) => self.mark_down(repo, &e.to_string(), log),
            }
        }
        pushed
    }

    fn is_down(&self, repo: &RegistryRef) -> bool {
        lock(&self.down).contains_key(&repo.host)
    }

    /// Leaves `repo`'s host alone from now on, saying why, once.
    fn mark_down(&self, repo: &RegistryRef, why: &str, log: &mut dyn FnMut(&str)) {
        let first = lock(&self.down)
            .insert(repo.host.clone(), why.to_string())
            .is_none();
        if first {
            log(&format!(
                "warning: cache registry {repo}: {why}; building on without it"
            ));
        }
    }

    /// The connection to `repo`, made once.
    fn remote(&self, repo: &RegistryRef) -> Result<std::sync::Arc<Remote>> {
        let name = repo.to_string();
        if let Some(r) = lock(&self.remotes).get(&name) {
            return Ok(r.clone());
        }
        let remote = std::sync::Arc::new(Remote::connect(repo, &self.access, Progress::quiet())?);
        lock(&self.remotes).insert(name, remote.clone());
        Ok(remote)
    }

    fn fetch_from(
        &self,
        repo: &RegistryRef,
        key: &Digest,
        version: &str,
        layer_media: &str,
        cache: &Cache,
    ) -> std::result::Result<Option<Fetched>, Failure> {
        let remote = self.remote(repo)?;
        let at = repo.with_tag(Some(&tag_for(key)));
        let raw = match remote.get_manifest(&at) {
            Ok(raw) => raw,
            Err(Error::Registry(RegistryError::NotFound { .. })) => return Ok(None),
            Err(e) => return Err(Failure::Down(e.to_string())),
        };
        let refused = |why: String| Failure::Refused(why);
        if !media::is_manifest(&raw.media_type) {
            return Err(refused(format!("a {}, not a manifest", raw.media_type)));
        }
        let manifest: ImageManifest = serde_json::from_slice(&raw.bytes)
            .map_err(|e| refused(format!("not an image manifest: {e}")))?;
        let parts = Parts::of(&manifest, key, version, layer_media).map_err(refused)?;

        // Small blobs go to a scratch store beside the cache (so that the
        // layer is linked, not copied, into it), removed on every path.
        let scratch = WorkDir::new_in(cache.root(), ".ingot-remote-", 0o700)
            .map_err(|e| Failure::Down(format!("a scratch directory in the cache: {e}")))?;
        let store = BlobStore::open(scratch.path())
            .map_err(|e| Failure::Down(format!("a scratch store in the cache: {e}")))?;
        let mut bytes = 0;
        let mut get = |blob: &BlobRef, kind: &str| -> std::result::Result<(), Failure> {
            let what = format!("cache {kind} {} of {at}", blob.digest);
            if remote.fetch_blob(repo, blob, &store, &what)? {
                bytes += blob.size;
            }
            Ok(())
        };
        get(&parts.entry, "entry")?;
        get(&parts.summary, "summary")?;
        let read = |blob: &BlobRef| {
            store
                .read(blob)
                .map_err(|e| Failure::Down(format!("reading back {}: {e}", blob.digest)))
        };
        let layer: CachedLayer = serde_json::from_slice(&read(&parts.entry)?)
            .map_err(|e| refused(format!("the entry does not parse: {e}")))?;
        let summary = Summary::from_bytes(read(&parts.summary)?)
            .ok_or_else(|| refused("the summary has no version line".into()))?;
        if summary.version != parts.summary_version {
            return Err(refused(format!(
                "its summary was made under {:?}, not {:?}",
                summary.version, parts.summary_version
            )));
        }
        if layer.digest != parts.layer.digest || layer.size != parts.layer.size {
            return Err(refused(format!(
                "the entry records layer {} ({} bytes) but the manifest names {} ({} bytes)",
                layer.digest, layer.size, parts.layer.digest, parts.layer.size
            )));
        }
        // The layer: straight from the cache's store if it has it, else
        // downloaded through a digest check.
        if cache.blobs.contains(&layer.digest) {
            cache
                .copy_blob_to(&layer.digest, &store)
                .map_err(|e| Failure::Down(e.to_string()))?;
        } else {
            get(&parts.layer, "layer")?;
        }
        let layer = CachedLayer {
            summary: None,
            ..layer
        };
        cache
            .put_layer(key, &layer, None, &store)
            .map_err(|e| Failure::Down(format!("filing the entry in the local cache: {e}")))?;
        Ok(Some(Fetched {
            layer,
            summary,
            from: repo.to_string(),
            bytes,
        }))
    }

    fn push_to(&self, repo: &RegistryRef, entry: &Entry, cache: &Cache) -> Result<Pushed> {
        let remote = self.remote(repo)?;
        let at = repo.with_tag(Some(&tag_for(entry.key)));
        let mut pushed = Pushed::default();
        // An entry already there, of this version, is left as it is.
        match remote.get_manifest(&at) {
            Ok(raw) => {
                let current = serde_json::from_slice::<ImageManifest>(&raw.bytes)
                    .ok()
                    .is_some_and(|m| {
                        Parts::of(&m, entry.key, entry.version, entry.layer_media).is_ok()
                    });
                if current {
                    pushed.present += 1;
                    return Ok(pushed);
                }
            }
            Err(Error::Registry(RegistryError::NotFound { .. })) => {}
            Err(e) => return Err(e),
        }
        let scratch = WorkDir::new_in(cache.root(), ".ingot-remote-", 0o700)
            .map_err(|e| Error::Failed(format!("a scratch directory in the cache: {e}")))?;
        let store = BlobStore::open(scratch.path())
            .map_err(|e| Error::Failed(format!("a scratch store in the cache: {e}")))?;
        let put = |bytes: &[u8]| {
            store
                .put(bytes)
                .map_err(|e| Error::Failed(format!("staging a cache entry: {e}")))
        };
        let entry_json = serde_json::to_vec(entry.layer)
            .map_err(|e| Error::Failed(format!("encoding a cache entry: {e}")))?;
        let entry_blob = put(&entry_json)?;
        let summary_blob = put(&entry.summary.to_bytes())?;
        let config_blob = put(EMPTY_JSON)?;
        cache.copy_blob_to(&entry.layer.digest, &store)?;
        let layer_blob = BlobRef {
            digest: entry.layer.digest,
            size: entry.layer.size,
        };
        let manifest = entry.manifest(entry_blob, summary_blob, layer_blob);
        let bytes = serde_json::to_vec(&manifest)
            .map_err(|e| Error::Failed(format!("encoding a cache manifest: {e}")))?;
        let mut report = PushReport::new(at.to_string(), Digest::of(&bytes), media::MANIFEST);
        let blobs = [config_blob, entry_blob, summary_blob, layer_blob];
        let origin = format!("cache entry {}", tag_for(entry.key));
        let options = PushOptions::default();
        push_blobs(
            &remote,
            repo,
            &store,
            &blobs,
            &[],
            &options,
            &origin,
            &mut report,
        )?;
        remote.put_manifest(&at, &bytes, media::MANIFEST)?;
        pushed.entries += 1;
        pushed.uploaded = report.uploaded;
        Ok(pushed)
    }
}

/// What a pushed entry is made of.
struct Entry<'a> {
    key: &'a Digest,
    version: &'a str,
    layer_media: &'a str,
    layer: &'a CachedLayer,
    summary: &'a Summary,
}

impl Entry<'_> {
    fn manifest(&self, entry: BlobRef, summary: BlobRef, layer: BlobRef) -> ImageManifest {
        let desc = |media: &str, blob: BlobRef| {
            Descriptor::new(MediaType::from(media), blob.size, blob.digest.to_oci())
        };
        let mut manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageManifest)
            .artifact_type(MediaType::from(LAYER_ARTIFACT))
            .config(empty_config())
            .layers(vec![
                desc(ENTRY_MEDIA, entry),
                desc(SUMMARY_MEDIA, summary),
                desc(self.layer_media, layer),
            ])
            .build()
            .expect("every required field of a manifest is set");
        manifest.set_annotations(Some(HashMap::from([
            (KEY_ANNOTATION.to_string(), self.key.to_string()),
            (VERSION_ANNOTATION.to_string(), self.version.to_string()),
        ])));
        manifest
    }
}

/// An entry's manifest, checked: ours, of this version and key, its blobs
/// within the local cache's bounds.
struct Parts {
    entry: BlobRef,
    summary: BlobRef,
    layer: BlobRef,
    /// The version a summary of this entry must carry.
    summary_version: String,
}

impl Parts {
    fn of(
        manifest: &ImageManifest,
        key: &Digest,
        version: &str,
        layer_media: &str,
    ) -> std::result::Result<Parts, String> {
        let artifact = manifest.artifact_type().as_ref().map(|t| t.to_string());
        if artifact.as_deref() != Some(LAYER_ARTIFACT) {
            return Err(format!(
                "not an ingot cache entry (artifactType {})",
                artifact.as_deref().unwrap_or("none")
            ));
        }
        let annotation = |name: &str| {
            manifest
                .annotations()
                .as_ref()
                .and_then(|a| a.get(name))
                .cloned()
                .unwrap_or_default()
        };
        if annotation(KEY_ANNOTATION) != key.to_string() {
            return Err(format!("filed for key {:?}", annotation(KEY_ANNOTATION)));
        }
        let made = annotation(VERSION_ANNOTATION);
        if made != version {
            return Err(format!(
                "made under {made:?}, not this ingot's {version:?}: not trusted"
            ));
        }
        let [entry, summary, layer] = manifest.layers().as_slice() else {
            return Err(format!(
                "{} blobs, not an entry, a summary and a layer",
                manifest.layers().len()
            ));
        };
        let typed = |desc: &Descriptor, want: &str, max: u64| {
            if desc.media_type().to_string() != want {
                return Err(format!("a blob of {}, not {want}", desc.media_type()));
            }
            let blob = blob_ref(desc).map_err(|e| e.to_string())?;
            if blob.size > max {
                return Err(format!(
                    "its {want} claims {} bytes, more than the {max} a cache file may have",
                    blob.size
                ));
            }
            Ok(blob)
        };
        Ok(Parts {
            entry: typed(entry, ENTRY_MEDIA, MAX_LAYER_ENTRY)?,
            summary: typed(summary, SUMMARY_MEDIA, MAX_CACHE_FILE)?,
            layer: typed(layer, layer_media, u64::MAX)?,
            summary_version: summary_version(version),
        })
    }
}

/// The summary's own version within an entry's: what follows the last
/// `; ` (the pipeline joins them so), or the whole.
fn summary_version(version: &str) -> String {
    version
        .rsplit_once("; ")
        .map_or(version, |(_, s)| s)
        .to_string()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

    fn entry_manifest(version: &str) -> ImageManifest {
        let key = Digest::of(b"key");
        let layer = CachedLayer {
            digest: Digest::of(b"layer"),
            size: 5,
            diff_id: Digest::of(b"tar"),
            entries: 1,
            base_dependent: false,
            summary: None,
        };
        let summary = Summary {
            version: "s 1".into(),
            body: vec![1],
        };
        let entry = Entry {
            key: &key,
            version,
            layer_media: GZIP,
            layer: &layer,
            summary: &summary,
        };
        let blob = |b: &[u8]| BlobRef {
            digest: Digest::of(b),
            size: b.len() as u64,
        };
        entry.manifest(blob(b"entry"), blob(b"summary"), blob(b"layer"))
    }

    #[test]
    fn a_key_is_a_valid_tag() {
        let tag = tag_for(&Digest::of(b"key"));
        assert!(tag.len() <= 128 && tag.starts_with("key-"));
        assert!(tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }

    #[test]
    fn entries_of_another_version_or_key_are_refused() {
        let key = Digest::of(b"key");
        let ours = "key 2; s 1";
        let m = entry_manifest(ours);
        let parts = Parts::of(&m, &key, ours, GZIP).unwrap();
        assert_eq!(parts.summary_version, "s 1");
        assert_eq!(parts.layer.digest, Digest::of(b"layer"));
        let err = Parts::of(&m, &key, "key 3; s 1", GZIP).err();
        assert!(err.unwrap().contains("not trusted"));
        assert!(Parts::of(&m, &Digest::of(b"other"), ours, GZIP).is_err());
        assert!(Parts::of(&m, &key, ours, ZSTD).is_err());
    }
}
