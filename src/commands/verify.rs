//! `ingot verify`: an fsck of an OCI image layout (image-spec "OCI Image
//! Layout", "Image Index", "Image Manifest", "Image Configuration").
//!
//! This module owns the walk from `oci-layout` and `index.json` down through
//! nested indexes, manifests, configs and layers, and the [`Report`] it
//! produces. Every blob's size and digest is checked as it streams past
//! ([`BlobStore::open_blob`]) and every layer is decompressed to check its
//! diff_id ([`crate::layer::read`]). It collects every problem rather than
//! stopping at the first, because whoever repairs a layout wants the whole
//! list; and it reads each blob once however many manifests share it, and
//! once however it is found wrong: the typed error of that read
//! ([`BlobError`], [`LayerError`]) says how.
//!
//! A layout that is broken is a [`Report`] with problems, not an `Err`: only
//! a path that is no layout at all, or an unknown tag, is an error (usage).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

use oci_spec::image::{
    Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType, OciLayout,
};
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{BlobError, Error, LayerError, Result};
use crate::image::reference::{OciRef, Selector, is_signature_tag};
use crate::image::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, media};
use crate::layer::read::{self as layer_read, LayerReader};
use crate::store::file::{self, Links};
use crate::store::layout::{Layout, MAX_LAYOUT_MARKER, is_artifact, tag_of};
use crate::store::{BlobRef, BlobStore, VerifiedReader};

/// The layout version this verifier knows (image-spec, "oci-layout file").
const LAYOUT_VERSION: &str = "1.0.0";

/// What kind of thing is wrong. Serialized (and printed) in kebab-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// `oci-layout` is missing, unreadable or names another version.
    Layout,
    /// `index.json` is missing or not an image index.
    Index,
    /// A descriptor names a digest this store cannot hold (not sha256).
    Descriptor,
    /// A descriptor names a blob that is not in `blobs/sha256`.
    MissingBlob,
    /// A blob's length differs from its descriptor's size.
    SizeMismatch,
    /// A blob's content does not hash to its name.
    DigestMismatch,
    /// A blob could not be read (permissions, I/O).
    Unreadable,
    /// A manifest, index or config blob is not the JSON document it should be.
    BadJson,
    /// A descriptor's media type is not one its place allows.
    MediaType,
    /// A layer's uncompressed content does not hash to the config's diff_id.
    DiffIdMismatch,
    /// A manifest's layers and its config's `rootfs.diff_ids` differ in number.
    LayerCountMismatch,
    /// A layer blob is intact but does not decompress.
    CorruptLayer,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Layout => "layout",
            ProblemKind::Index => "index",
            ProblemKind::Descriptor => "descriptor",
            ProblemKind::MissingBlob => "missing-blob",
            ProblemKind::SizeMismatch => "size-mismatch",
            ProblemKind::DigestMismatch => "digest-mismatch",
            ProblemKind::Unreadable => "unreadable",
            ProblemKind::BadJson => "bad-json",
            ProblemKind::MediaType => "media-type",
            ProblemKind::DiffIdMismatch => "diff-id-mismatch",
            ProblemKind::LayerCountMismatch => "layer-count-mismatch",
            ProblemKind::CorruptLayer => "corrupt-layer",
        }
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong with a layout. `blob` is the digest of the blob at fault
/// (as its descriptor spells it), or None for `oci-layout` and `index.json`;
/// `message` says where the blob was referenced from and what was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub blob: Option<String>,
    pub message: String,
}

/// What a verification looked at and what it found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The image reference, as given (`oci:PATH[:TAG|@DIGEST]`).
    pub image: String,
    /// The layout directory, as given.
    pub layout: String,
    /// The tag verified, or None for every image in the layout.
    pub tag: Option<String>,
    /// The manifest or index verified, when the walk started from one
    /// (a tag, a digest, or a layout holding one image).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Each manifest or index the walk started from, with its tag: what
    /// the report vouches for, by digest.
    pub checked: Vec<Checked>,
    /// Artifacts index.json lists about the images (SBOMs, provenance,
    /// signatures), checked too.
    pub artifacts: u64,
    /// Distinct manifests checked.
    pub manifests: u64,
    /// Distinct nested indexes checked (index.json itself not counted).
    pub indexes: u64,
    /// Distinct blobs read.
    pub blobs: u64,
    /// Total size of the blobs found intact.
    pub bytes: u64,
    /// Every problem, in the order the walk met them.
    pub problems: Vec<Problem>,
}

/// A manifest or index a verification started from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// Its digest, as the descriptor that names it spells it.
    pub digest: String,
    /// `manifest`, `index`, or the media type of anything else.
    pub kind: String,
    /// Its tag in index.json, if it has one.
    pub tag: Option<String>,
}

impl Checked {
    fn of(desc: &Descriptor) -> Checked {
        let mt = desc.media_type().to_string();
        let kind = if media::is_manifest(&mt) {
            "manifest".to_string()
        } else if media::is_index(&mt) {
            "index".to_string()
        } else {
            mt
        };
        Checked {
            digest: desc.digest().to_string(),
            kind,
            tag: tag_of(desc).map(str::to_string),
        }
    }
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.digest)?;
        if let Some(tag) = &self.tag {
            write!(f, " (tag {tag})")?;
        }
        Ok(())
    }
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the layout at `layout_dir`: every image in it
/// ([`Selector::Only`]), only the descriptors in `index.json` with a tag,
/// or what a manifest or index reaches, given by digest (listed in
/// `index.json` or not). With `expected` (`--digest`), the image must be
/// that manifest or index: a tag or digest that names another is
/// [`Error::Unverified`], naming both, and a whole layout is narrowed to
/// the entry of index.json with that digest.
pub fn verify(layout_dir: &Path, selector: &Selector, expected: Option<&Digest>) -> Result<Report> {
    let image = OciRef {
        path: layout_dir.to_path_buf(),
        selector: selector.clone(),
    }
    .to_string();
    if !layout_dir.is_dir() {
        return Err(Error::Usage(format!(
            "{}: not a directory",
            layout_dir.display()
        )));
    }
    let marker = layout_dir.join("oci-layout");
    let index_path = layout_dir.join("index.json");
    if fs::symlink_metadata(&marker).is_err() && fs::symlink_metadata(&index_path).is_err() {
        return Err(Error::Usage(format!(
            "{} is not an OCI image layout (no oci-layout or index.json)",
            layout_dir.display()
        )));
    }

    let tag = match selector {
        Selector::Tag(t) => Some(t.as_str()),
        Selector::Only | Selector::Digest(_) => None,
    };
    let mut walk = Walk::new(layout_dir, tag);
    walk.report.image = image;
    walk.check_marker(&marker);
    let index = walk.read_index_json(&index_path);
    let selector = match expected {
        Some(expected) => expect(&walk.report.image, index.as_ref(), selector, expected)?,
        None => selector.clone(),
    };
    if let Selector::Digest(digest) = &selector {
        let (desc, at) = described(layout_dir, index.as_ref(), digest)?;
        walk.start(&desc, &at);
        return Ok(walk.finish());
    }
    let Some(index) = index else {
        return Ok(walk.finish());
    };
    let selected: Vec<(usize, &Descriptor)> = index
        .manifests()
        .iter()
        .enumerate()
        .filter(|(_, d)| tag.is_none() || tag_of(d) == tag)
        .collect();
    if let (Some(t), []) = (tag, selected.as_slice()) {
        let tags: Vec<&str> = index.manifests().iter().filter_map(tag_of).collect();
        return Err(Error::Usage(format!(
            "{}: no image tagged {t:?}; tags: {}",
            layout_dir.display(),
            if tags.is_empty() {
                "none".to_string()
            } else {
                tags.join(", ")
            }
        )));
    }
    let about: Vec<String> = selected
        .iter()
        .map(|(_, d)| d.digest().to_string())
        .collect();
    for (n, desc) in selected {
        let at = match tag_of(desc) {
            Some(t) => format!("index.json manifests[{n}] (tag {t})"),
            None => format!("index.json manifests[{n}]"),
        };
        if is_artifact(desc) || tag_of(desc).is_some_and(is_signature_tag) {
            walk.artifact(desc, &at);
        } else {
            walk.start(desc, &at);
        }
    }
    // A tag's image comes with the artifacts about it (its SBOM and
    // provenance): what an auditor of the tag is handed too.
    if tag.is_some() {
        for (n, desc) in index.manifests().iter().enumerate() {
            if is_artifact(desc) && subject_of(layout_dir, desc).is_some_and(|s| about.contains(&s))
            {
                walk.artifact(desc, &format!("index.json manifests[{n}]"));
            }
        }
    }
    Ok(walk.finish())
}

/// The subject an artifact's manifest names, when it reads; one that does
/// not is left to a walk of the whole layout to report.
fn subject_of(layout_dir: &Path, desc: &Descriptor) -> Option<String> {
    let digest = Digest::try_from(desc.digest()).ok()?;
    let path = layout_dir.join("blobs").join("sha256").join(digest.hex());
    let bytes = file::read_regular(&path, Links::Refuse, MAX_MANIFEST_SIZE).ok()?;
    if Digest::of(&bytes) != digest {
        return None;
    }
    let manifest: ImageManifest = serde_json::from_slice(&bytes).ok()?;
    Some(manifest.subject().as_ref()?.digest().to_string())
}

/// `--digest`: what `selector` names must be `expected`. A tag or digest
/// naming another image fails, naming both; a whole layout is narrowed
/// to its index.json entry of that digest, or fails naming what it holds.
/// A tag the layout lacks is left to the walk, which says so.
fn expect(
    image: &str,
    index: Option<&ImageIndex>,
    selector: &Selector,
    expected: &Digest,
) -> Result<Selector> {
    let listed: Vec<&Descriptor> = index
        .map(|i| i.manifests().iter().filter(|d| !is_artifact(d)).collect())
        .unwrap_or_default();
    let is = |d: &Descriptor| Digest::try_from(d.digest()).ok() == Some(*expected);
    let not_it = |found: &dyn std::fmt::Display| {
        Error::Unverified(format!("{image} is {found}, not {expected} (--digest)"))
    };
    match selector {
        Selector::Digest(d) if d != expected => Err(not_it(d)),
        Selector::Digest(_) => Ok(selector.clone()),
        Selector::Tag(t) => match listed.iter().find(|d| tag_of(d) == Some(t.as_str())) {
            Some(d) if !is(d) => Err(not_it(&d.digest())),
            _ => Ok(selector.clone()),
        },
        Selector::Only if listed.iter().any(|d| is(d)) => Ok(Selector::Digest(*expected)),
        Selector::Only => {
            let held: Vec<String> = listed.iter().map(|d| Checked::of(d).to_string()).collect();
            Err(Error::Unverified(format!(
                "{image} does not hold {expected} (--digest); it holds {}",
                if held.is_empty() {
                    "no image".to_string()
                } else {
                    held.join(", ")
                }
            )))
        }
    }
}

/// The descriptor of the manifest or index `digest` names, and where it
/// was found: index.json's entry for it, or else one made from the blob
/// (its length, and the media type it declares, a manifest's when it
/// declares none a verifier knows), so that a blob only reachable by
/// digest is checked too. A digest with no blob is a usage error, as an
/// unknown tag is.
fn described(
    layout_dir: &Path,
    index: Option<&ImageIndex>,
    digest: &Digest,
) -> Result<(Descriptor, String)> {
    let listed = index
        .into_iter()
        .flat_map(|i| i.manifests().iter().enumerate());
    for (n, desc) in listed {
        if Digest::try_from(desc.digest()).ok() == Some(*digest) {
            let at = match tag_of(desc) {
                Some(t) => format!("index.json manifests[{n}] (tag {t})"),
                None => format!("index.json manifests[{n}]"),
            };
            return Ok((desc.clone(), at));
        }
    }
    let path = layout_dir.join("blobs").join("sha256").join(digest.hex());
    let no_blob = || {
        Error::Usage(format!(
            "{}: no manifest or index {digest}",
            layout_dir.display()
        ))
    };
    let size = fs::symlink_metadata(&path).map_err(|_| no_blob())?.len();
    // A blob bigger than a manifest may be is not read here, and one that
    // cannot be read (or is no regular file) is taken for a manifest: the
    // walk reports either.
    let head = file::read_regular(&path, Links::Refuse, MAX_MANIFEST_SIZE).unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    let media_type = serde_json::from_slice::<Head>(&head)
        .ok()
        .and_then(|h| h.media_type)
        .filter(|m| media::is_index(m) || media::is_manifest(m))
        .map_or(MediaType::ImageManifest, |m| MediaType::from(m.as_str()));
    let desc = Descriptor::new(media_type, size, digest.to_oci());
    Ok((desc, format!("{digest} (by digest)")))
}

/// What a manifest's config says about its layers: one expected diff_id per
/// layer (None where the config's entry is not a digest), or nothing when
/// the config itself could not be read.
type DiffIds = Option<Vec<Option<Digest>>>;

/// The state of one verification. Memos are keyed by digest *and* declared
/// size: two descriptors that agree share one read; one that disagrees is
/// checked (and reported) on its own.
struct Walk {
    /// None when the layout has no `blobs/sha256` directory: every blob is
    /// then missing. (Opening a store creates the directory; verify only
    /// reads.)
    store: Option<BlobStore>,
    report: Report,
    /// Whether each blob read was intact.
    raw: BTreeMap<(Digest, u64), bool>,
    /// Manifests and indexes whose contents were walked.
    walked: BTreeSet<(Digest, u64)>,
    /// Configs read, with what they say about layers.
    configs: BTreeMap<(Digest, u64), DiffIds>,
    /// Layers decompressed, by blob and media type, with their actual
    /// diff_id (None when the blob was bad or did not decompress).
    layers: BTreeMap<(Digest, u64, String), Option<Digest>>,
}

impl Walk {
    fn new(layout_dir: &Path, tag: Option<&str>) -> Walk {
        let store = match Layout::open(layout_dir) {
            Ok(layout) => Some(layout.blobs),
            // No marker: reach the blobs anyway, without creating them.
            Err(_) if layout_dir.join("blobs").join("sha256").is_dir() => {
                BlobStore::open(layout_dir).ok()
            }
            Err(_) => None,
        };
        Walk {
            store,
            report: Report {
                layout: layout_dir.display().to_string(),
                tag: tag.map(str::to_string),
                ..Report::default()
            },
            raw: BTreeMap::new(),
            walked: BTreeSet::new(),
            configs: BTreeMap::new(),
            layers: BTreeMap::new(),
        }
    }

    /// Walks from a descriptor of index.json (or one a digest named),
    /// noting it as checked.
    fn start(&mut self, desc: &Descriptor, at: &str) {
        self.report.checked.push(Checked::of(desc));
        self.check_child(desc, at, tag_of(desc));
    }

    /// Walks from an artifact index.json lists about an image (an SBOM,
    /// a provenance, signatures): checked as thoroughly, counted apart
    /// from the images the report vouches for.
    fn artifact(&mut self, desc: &Descriptor, at: &str) {
        self.report.artifacts += 1;
        self.check_child(desc, at, tag_of(desc));
    }

    /// The report, naming the one image checked when there was one.
    fn finish(mut self) -> Report {
        if let [one] = self.report.checked.as_slice() {
            self.report.digest = Some(one.digest.clone());
        }
        self.report
    }

    fn problem(&mut self, kind: ProblemKind, blob: Option<String>, message: String) {
        self.report.problems.push(Problem {
            kind,
            blob,
            message,
        });
    }

    fn blob_problem(&mut self, kind: ProblemKind, blob: &BlobRef, message: String) {
        self.problem(kind, Some(blob.digest.to_string()), message);
    }

    /// image-spec, "oci-layout file": `{"imageLayoutVersion": "1.0.0"}`.
    fn check_marker(&mut self, marker: &Path) {
        let bytes = match file::read_regular(marker, Links::Refuse, MAX_LAYOUT_MARKER) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let msg = "oci-layout is missing".to_string();
                return self.problem(ProblemKind::Layout, None, msg);
            }
            Err(e) => {
                let msg = format!("reading oci-layout: {e}");
                return self.problem(ProblemKind::Layout, None, msg);
            }
        };
        match serde_json::from_slice::<OciLayout>(&bytes) {
            Err(e) => {
                let msg = format!("oci-layout is not a layout header: {e}");
                self.problem(ProblemKind::Layout, None, msg);
            }
            Ok(l) if l.image_layout_version() != LAYOUT_VERSION => {
                let msg = format!(
                    "oci-layout: imageLayoutVersion is {:?}, expected {LAYOUT_VERSION:?}",
                    l.image_layout_version()
                );
                self.problem(ProblemKind::Layout, None, msg);
            }
            Ok(_) => {}
        }
    }

    /// image-spec, "index.json file": an image index, schema version 2, in
    /// a regular file of at most [`MAX_MANIFEST_SIZE`] bytes.
    fn read_index_json(&mut self, path: &Path) -> Option<ImageIndex> {
        let bytes = match file::read_regular(path, Links::Refuse, MAX_MANIFEST_SIZE) {
            Ok(b) => b,
            Err(e) => {
                let msg = if e.kind() == io::ErrorKind::NotFound {
                    "index.json is missing".to_string()
                } else {
                    format!("reading index.json: {e}")
                };
                self.problem(ProblemKind::Index, None, msg);
                return None;
            }
        };
        let index: ImageIndex = match serde_json::from_slice(&bytes) {
            Ok(i) => i,
            Err(e) => {
                let msg = format!("index.json is not an image index: {e}");
                self.problem(ProblemKind::Index, None, msg);
                return None;
            }
        };
        if index.schema_version() != 2 {
            let msg = format!(
                "index.json: schemaVersion is {}, expected 2",
                index.schema_version()
            );
            self.problem(ProblemKind::Index, None, msg);
        }
        if let Some(mt) = index
            .media_type()
            .as_ref()
            .filter(|m| !media::is_index(m.as_ref()))
        {
            let msg = format!(
                "index.json: mediaType is {mt}, expected {}",
                MediaType::ImageIndex
            );
            self.problem(ProblemKind::MediaType, None, msg);
        }
        // Still walk what it lists: the more found, the better.
        Some(index)
    }

    /// The digest and size `desc` promises, or a problem when its digest is
    /// not one a `blobs/sha256` store can hold.
    fn blob_ref(&mut self, desc: &Descriptor, at: &str) -> Option<BlobRef> {
        match Digest::try_from(desc.digest()) {
            Ok(digest) => Some(BlobRef {
                digest,
                size: desc.size(),
            }),
            Err(e) => {
                let blob = Some(desc.digest().to_string());
                self.problem(ProblemKind::Descriptor, blob, format!("{at}: {e}"));
                None
            }
        }
    }

    /// A descriptor in an index: a manifest or a nested index. `tag` is the
    /// one index.json gives the tree this is in, to name it in messages.
    fn check_child(&mut self, desc: &Descriptor, at: &str, tag: Option<&str>) {
        let mt = desc.media_type();
        if media::is_manifest(mt.as_ref()) {
            self.check_manifest(desc, at, tag);
        } else if media::is_index(mt.as_ref()) {
            self.check_index(desc, at, tag);
        } else if let Some(blob) = self.blob_ref(desc, at) {
            let msg = format!("{at}: media type {mt} is neither an image manifest nor an index");
            self.blob_problem(ProblemKind::MediaType, &blob, msg);
            self.check_blob(&blob, at);
        }
    }

    /// A nested index: parses, then each of its descriptors in turn.
    fn check_index(&mut self, desc: &Descriptor, at: &str, tag: Option<&str>) {
        let Some(blob) = self.blob_ref(desc, at) else {
            return;
        };
        if !self.walked.insert((blob.digest, blob.size)) {
            return;
        }
        self.report.indexes += 1;
        let Some(index) =
            self.read_json::<ImageIndex>(&blob, MAX_MANIFEST_SIZE, at, "an image index")
        else {
            return;
        };
        self.check_schema(index.schema_version(), &blob, at);
        self.check_own_media_type(index.media_type().as_ref(), desc, &blob, at);
        let here = named("index", &blob, tag);
        for (n, child) in index.manifests().iter().enumerate() {
            self.check_child(child, &format!("manifests[{n}] of {here}"), tag);
        }
    }

    /// A manifest: its config, then each layer against the config's diff_ids.
    fn check_manifest(&mut self, desc: &Descriptor, at: &str, tag: Option<&str>) {
        let Some(blob) = self.blob_ref(desc, at) else {
            return;
        };
        if !self.walked.insert((blob.digest, blob.size)) {
            return;
        }
        self.report.manifests += 1;
        let Some(manifest) =
            self.read_json::<ImageManifest>(&blob, MAX_MANIFEST_SIZE, at, "an image manifest")
        else {
            return;
        };
        self.check_schema(manifest.schema_version(), &blob, at);
        self.check_own_media_type(manifest.media_type().as_ref(), desc, &blob, at);

        let here = named("manifest", &blob, tag);
        let config = manifest.config();
        let config_at = format!("config of {here}");
        // A manifest whose config is not an image config is an artifact
        // (image-spec 1.1, "Guidelines for Artifact Usage"): its blobs are
        // checked, but there is no rootfs to check its layers against.
        // So is an image's `.sig` manifest: an image config, but its
        // layers are signature payloads, not tars (crate::sign::attachment).
        let signatures = !manifest.layers().is_empty()
            && manifest
                .layers()
                .iter()
                .all(|l| l.media_type().to_string() == media::SIMPLE_SIGNING);
        let image = media::is_config(config.media_type().as_ref()) && !signatures;
        let diff_ids = if image {
            self.check_config(config, &config_at)
        } else {
            if let Some(b) = self.blob_ref(config, &config_at) {
                self.check_blob(&b, &config_at);
            }
            None
        };

        let layers = manifest.layers();
        if let Some(ids) = &diff_ids
            && ids.len() != layers.len()
        {
            let msg = format!(
                "{at}: the manifest lists {} layers but its config {} lists {} diff_ids",
                layers.len(),
                config.digest(),
                ids.len()
            );
            self.blob_problem(ProblemKind::LayerCountMismatch, &blob, msg);
        }
        for (n, layer) in layers.iter().enumerate() {
            let layer_at = format!("layers[{n}] of {here}");
            if image {
                let expected = diff_ids
                    .as_ref()
                    .and_then(|ids| ids.get(n).copied().flatten());
                self.check_layer(layer, expected, &layer_at);
            } else if let Some(b) = self.blob_ref(layer, &layer_at) {
                self.check_blob(&b, &layer_at);
            }
        }
    }

    /// An image config: parses, and says what diff_id each layer must have.
    fn check_config(&mut self, desc: &Descriptor, at: &str) -> DiffIds {
        let blob = self.blob_ref(desc, at)?;
        if let Some(known) = self.configs.get(&(blob.digest, blob.size)) {
            return known.clone();
        }
        let diff_ids = self.read_config(&blob, at);
        self.configs
            .insert((blob.digest, blob.size), diff_ids.clone());
        diff_ids
    }

    fn read_config(&mut self, blob: &BlobRef, at: &str) -> DiffIds {
        let config =
            self.read_json::<ImageConfiguration>(blob, MAX_CONFIG_SIZE, at, "an image config")?;
        let rootfs = config.rootfs();
        if rootfs.typ() != "layers" {
            let msg = format!(
                "{at}: rootfs.type is {:?}, expected \"layers\"",
                rootfs.typ()
            );
            self.blob_problem(ProblemKind::BadJson, blob, msg);
        }
        let mut ids = Vec::new();
        for (n, id) in rootfs.diff_ids().iter().enumerate() {
            match id.parse::<Digest>() {
                Ok(d) => ids.push(Some(d)),
                Err(e) => {
                    let msg = format!("{at}: rootfs.diff_ids[{n}]: {e}");
                    self.blob_problem(ProblemKind::BadJson, blob, msg);
                    ids.push(None);
                }
            }
        }
        Some(ids)
    }

    /// A layer: decompressed in one pass that checks the blob's size and
    /// digest and learns the content's diff_id, which is then checked
    /// against each config that lists the layer.
    fn check_layer(&mut self, desc: &Descriptor, diff_id: Option<Digest>, at: &str) {
        let Some(blob) = self.blob_ref(desc, at) else {
            return;
        };
        let key = (blob.digest, blob.size, desc.media_type().to_string());
        // Read already, perhaps for another config: only this reference's
        // diff_id is new.
        let found = match self.layers.get(&key) {
            Some(known) => *known,
            None => {
                let found = self.decompress(desc, &blob, at);
                self.layers.insert(key, found);
                found
            }
        };
        if let (Some(found), Some(expected)) = (found, diff_id) {
            self.check_diff_id(&blob, expected, found, at);
        }
    }

    /// Returns the layer's actual diff_id when the blob is intact and
    /// decompresses. When it is not, the error of that one pass says
    /// which it was: a damaged blob, or an intact one that does not
    /// decompress.
    fn decompress(&mut self, desc: &Descriptor, blob: &BlobRef, at: &str) -> Option<Digest> {
        // Found wrong already, read as another kind of blob: reported.
        if self.raw.get(&(blob.digest, blob.size)) == Some(&false) {
            return None;
        }
        let read = self
            .store(blob)
            .map_err(LayerError::from)
            .and_then(|store| layer_read::open(store, desc))
            .and_then(LayerReader::diff_id);
        let e = match read {
            Ok(found) => {
                self.record(blob, true);
                return Some(found);
            }
            Err(e) => e,
        };
        match e {
            LayerError::Blob(e) => {
                self.settle(blob, at, Err::<(), _>(e));
            }
            LayerError::MediaType { media_type, .. } => {
                let msg = format!("{at}: unsupported layer media type {media_type}");
                self.blob_problem(ProblemKind::MediaType, blob, msg);
                self.check_blob(blob, at);
            }
            LayerError::Decode { source, .. } => {
                self.record(blob, true);
                let msg = format!("{at}: the blob is intact but does not decompress: {source}");
                self.blob_problem(ProblemKind::CorruptLayer, blob, msg);
            }
            // Reading a layer through checks neither its diff_id nor what
            // its tar holds, and blob_ref parsed the digest; were they to
            // come, each has its kind.
            LayerError::DiffIdMismatch {
                expected, found, ..
            } => {
                self.record(blob, true);
                self.check_diff_id(blob, expected, found, at);
            }
            LayerError::Refused { reason, .. } => {
                self.record(blob, true);
                self.blob_problem(ProblemKind::CorruptLayer, blob, format!("{at}: {reason}"));
            }
            LayerError::Digest(e) => {
                self.blob_problem(ProblemKind::Descriptor, blob, format!("{at}: {e}"));
            }
        }
        None
    }

    fn check_diff_id(&mut self, blob: &BlobRef, expected: Digest, found: Digest, at: &str) {
        if expected != found {
            let msg = format!(
                "{at}: uncompressed content hashes to {found}, but the config's diff_id is {expected}"
            );
            self.blob_problem(ProblemKind::DiffIdMismatch, blob, msg);
        }
    }

    /// Reads and parses a JSON blob of at most `limit` bytes; None (with
    /// the problem noted) when it is bad.
    fn read_json<T: serde::de::DeserializeOwned>(
        &mut self,
        blob: &BlobRef,
        limit: u64,
        at: &str,
        what: &str,
    ) -> Option<T> {
        let bytes = self.read_blob(blob, limit, at)?;
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = format!("{at}: not {what}: {e}");
                self.blob_problem(ProblemKind::BadJson, blob, msg);
                None
            }
        }
    }

    fn check_schema(&mut self, version: u32, blob: &BlobRef, at: &str) {
        if version != 2 {
            let msg = format!("{at}: schemaVersion is {version}, expected 2");
            self.blob_problem(ProblemKind::BadJson, blob, msg);
        }
    }

    /// A manifest's or index's own `mediaType`, when set, must be the one
    /// its descriptor gives (image-spec, "Image Manifest Property
    /// Descriptions"): otherwise a client may read it as something else.
    fn check_own_media_type(
        &mut self,
        own: Option<&MediaType>,
        desc: &Descriptor,
        blob: &BlobRef,
        at: &str,
    ) {
        if let Some(own) = own.filter(|m| *m != desc.media_type()) {
            let msg = format!(
                "{at}: the blob's mediaType is {own}, its descriptor's {}",
                desc.media_type()
            );
            self.blob_problem(ProblemKind::MediaType, blob, msg);
        }
    }

    /// Reads a blob whole, checking its size and digest; its descriptor
    /// may claim at most `limit` bytes.
    fn read_blob(&mut self, blob: &BlobRef, limit: u64, at: &str) -> Option<Vec<u8>> {
        if self.raw.get(&(blob.digest, blob.size)) == Some(&false) {
            return None;
        }
        if blob.size > limit {
            let msg = format!(
                "{at}: descriptor says {} bytes, larger than the limit of {}",
                blob.size,
                file::human_size(limit)
            );
            self.blob_problem(ProblemKind::BadJson, blob, msg);
            self.check_blob(blob, at);
            return None;
        }
        let read = self.store(blob).and_then(|s| s.read(blob));
        self.settle(blob, at, read)
    }

    /// Streams a blob, checking its size and digest, once per digest and
    /// size; true when it is intact.
    fn check_blob(&mut self, blob: &BlobRef, at: &str) -> bool {
        if let Some(&intact) = self.raw.get(&(blob.digest, blob.size)) {
            return intact;
        }
        let read = self
            .store(blob)
            .and_then(|s| s.open_blob(blob))
            .and_then(VerifiedReader::finish);
        self.settle(blob, at, read).is_some()
    }

    /// The store to read `blob` from; without one, every blob is missing.
    fn store(&self, blob: &BlobRef) -> std::result::Result<&BlobStore, BlobError> {
        self.store.as_ref().ok_or(BlobError::Missing {
            digest: blob.digest,
        })
    }

    /// Records whether a read found `blob` intact, and the problem when
    /// it did not.
    fn settle<T>(
        &mut self,
        blob: &BlobRef,
        at: &str,
        read: std::result::Result<T, BlobError>,
    ) -> Option<T> {
        let read = read.map_err(|e| self.blob_fault(blob, at, &e)).ok();
        self.record(blob, read.is_some());
        read
    }

    /// The problem a blob error is. The error says all there is to say
    /// (a size mismatch brings the blob's real size and what it hashes
    /// to), so a blob found wrong is not read again to explain it.
    fn blob_fault(&mut self, blob: &BlobRef, at: &str, e: &BlobError) {
        let file = format!("blobs/sha256/{}", blob.digest.hex());
        let (kind, msg) = match e {
            BlobError::Missing { .. } => {
                (ProblemKind::MissingBlob, format!("{at}: {file} is missing"))
            }
            BlobError::NotRegular { kind, .. } => (
                ProblemKind::Unreadable,
                format!("{at}: {file} is not a regular file ({kind})"),
            ),
            BlobError::SizeMismatch {
                digest,
                expected,
                found,
                content,
            } => (
                ProblemKind::SizeMismatch,
                format!(
                    "{at}: descriptor says {expected} bytes, the blob has {found}{}",
                    if content == digest {
                        " (its content matches the digest: the descriptor is wrong)"
                    } else {
                        " (and its content does not match the digest)"
                    }
                ),
            ),
            BlobError::DigestMismatch { found, .. } => (
                ProblemKind::DigestMismatch,
                format!("{at}: the content hashes to {found}"),
            ),
            BlobError::Io { source, .. } => (ProblemKind::Unreadable, format!("{at}: {source}")),
        };
        self.blob_problem(kind, blob, msg);
    }

    fn record(&mut self, blob: &BlobRef, intact: bool) {
        if self.raw.insert((blob.digest, blob.size), intact).is_none() {
            self.report.blobs += 1;
            if intact {
                self.report.bytes += blob.size;
            }
        }
    }
}

/// "manifest sha256:… (tag 1.2.0)": where a config or layer was referenced.
fn named(what: &str, blob: &BlobRef, tag: Option<&str>) -> String {
    match tag {
        Some(t) => format!("{what} {} (tag {t})", blob.digest),
        None => format!("{what} {}", blob.digest),
    }
}

/// The report in words: one line per problem, then a summary line.
pub fn render(report: &Report) -> String {
    let mut out = format!("image: {}\n", report.image);
    for checked in &report.checked {
        let _ = writeln!(out, "checked: {checked}");
    }
    if report.artifacts > 0 {
        let n = counted(report.artifacts, "artifact", "artifacts");
        let _ = writeln!(
            out,
            "checked: {n} about them (SBOM, provenance, signatures)"
        );
    }
    for p in &report.problems {
        match &p.blob {
            Some(blob) => {
                let _ = writeln!(out, "problem: {}: {blob}: {}", p.kind, p.message);
            }
            None => {
                let _ = writeln!(out, "problem: {}: {}", p.kind, p.message);
            }
        }
    }
    if report.is_ok() {
        let mut parts = Vec::new();
        if report.indexes > 0 {
            parts.push(counted(report.indexes, "index", "indexes"));
        }
        parts.push(counted(report.manifests, "manifest", "manifests"));
        parts.push(counted(report.blobs, "blob", "blobs"));
        parts.push(counted(report.bytes, "byte", "bytes"));
        let _ = writeln!(out, "ok: {} verified", parts.join(", "));
    } else {
        let n = report.problems.len() as u64;
        let _ = writeln!(out, "FAILED: {}", counted(n, "problem", "problems"));
    }
    out
}

fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::image::canonical_json;
    use crate::layer::{self, Content, Entry, EntryKind};

    /// A hand-made layout: blobs put one by one, index.json written last.
    struct Fixture {
        dir: tempfile::TempDir,
        store: BlobStore,
    }

    /// One image's blobs.
    #[derive(Clone, Copy)]
    struct Image {
        manifest: BlobRef,
        config: BlobRef,
        layer: BlobRef,
    }

    fn desc(media_type: &MediaType, blob: &BlobRef) -> Value {
        json!({"mediaType": media_type.to_string(), "digest": blob.digest.to_string(), "size": blob.size})
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let store = BlobStore::open(dir.path()).unwrap();
            fs::write(
                dir.path().join("oci-layout"),
                r#"{"imageLayoutVersion":"1.0.0"}"#,
            )
            .unwrap();
            Fixture { dir, store }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        fn put(&self, value: &Value) -> BlobRef {
            self.store.put(&canonical_json(value).unwrap()).unwrap()
        }

        fn layer(&self, content: &str) -> (BlobRef, Digest) {
            let entries = vec![Entry {
                path: "f".into(),
                kind: EntryKind::File(Content::Bytes(content.as_bytes().to_vec())),
                mode: 0o644,
                uid: 0,
                gid: 0,
            }];
            let mut w = self.store.writer().unwrap();
            let l = layer::write(entries, 0, &mut w).unwrap();
            let blob = w.commit().unwrap();
            (blob, l.diff_id)
        }

        fn config(&self, diff_ids: &[Digest]) -> BlobRef {
            let ids: Vec<String> = diff_ids.iter().map(Digest::to_string).collect();
            self.put(&json!({
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": ids},
            }))
        }

        fn manifest(&self, config: &BlobRef, layers: &[BlobRef], note: &str) -> BlobRef {
            let layers: Vec<Value> = layers
                .iter()
                .map(|l| desc(&MediaType::ImageLayerGzip, l))
                .collect();
            self.put(&json!({
                "schemaVersion": 2,
                "mediaType": MediaType::ImageManifest.to_string(),
                "config": desc(&MediaType::ImageConfig, config),
                "layers": layers,
                "annotations": {"note": note},
            }))
        }

        /// A one-layer image whose file holds `content`.
        fn image(&self, content: &str) -> Image {
            let (layer, diff_id) = self.layer(content);
            let config = self.config(&[diff_id]);
            let manifest = self.manifest(&config, &[layer], content);
            Image {
                manifest,
                config,
                layer,
            }
        }

        /// Writes index.json listing `entries` as (descriptor, tag).
        fn index(&self, entries: &[(Value, &str)]) {
            let manifests: Vec<Value> = entries
                .iter()
                .map(|(d, tag)| {
                    let mut d = d.clone();
                    d["annotations"] = json!({ crate::image::annotation::REF_NAME: tag });
                    d
                })
                .collect();
            let index = json!({
                "schemaVersion": 2,
                "mediaType": MediaType::ImageIndex.to_string(),
                "manifests": manifests,
            });
            fs::write(
                self.path().join("index.json"),
                canonical_json(&index).unwrap(),
            )
            .unwrap();
        }

        fn tag(&self, images: &[(&Image, &str)]) {
            let entries: Vec<(Value, &str)> = images
                .iter()
                .map(|(i, t)| (desc(&MediaType::ImageManifest, &i.manifest), *t))
                .collect();
            self.index(&entries);
        }

        fn flip_byte(&self, blob: &BlobRef) {
            let path = self.store.path(&blob.digest);
            let mut bytes = fs::read(&path).unwrap();
            let n = bytes.len() / 2;
            bytes[n] ^= 0x01;
            fs::write(&path, bytes).unwrap();
        }

        fn verify(&self, tag: Option<&str>) -> Report {
            let selector = tag.map_or(Selector::Only, |t| Selector::Tag(t.into()));
            verify(self.path(), &selector, None).unwrap()
        }
    }

    fn kinds(report: &Report) -> Vec<ProblemKind> {
        report.problems.iter().map(|p| p.kind).collect()
    }

    fn names(report: &Report, blob: &BlobRef) -> bool {
        report
            .problems
            .iter()
            .any(|p| p.blob.as_deref() == Some(blob.digest.to_string().as_str()))
    }

    #[test]
    fn a_clean_layout_verifies() {
        let f = Fixture::new();
        let img = f.image("one");
        f.tag(&[(&img, "1")]);
        let report = f.verify(None);
        assert!(report.is_ok(), "{report:#?}");
        assert_eq!((report.manifests, report.blobs), (1, 3));
        assert_eq!(
            report.bytes,
            img.manifest.size + img.config.size + img.layer.size
        );
        assert_eq!(
            render(&report),
            format!(
                "image: oci:{}\nchecked: manifest {} (tag 1)\nok: 1 manifest, 3 blobs, {} bytes verified\n",
                f.path().display(),
                img.manifest.digest,
                report.bytes
            )
        );
        assert_eq!(report.digest, Some(img.manifest.digest.to_string()));
    }

    /// However a blob is wrong, the one read that checks it says how:
    /// nothing is read again to explain a problem.
    #[test]
    fn a_corrupt_layer_blob_is_read_once_and_reported_from_its_error() {
        use crate::store::tests::opened;
        let f = Fixture::new();
        let img = f.image("one");
        f.tag(&[(&img, "1")]);
        f.flip_byte(&img.layer);
        let found = Digest::of(&fs::read(f.store.path(&img.layer.digest)).unwrap());
        let blobs = [img.manifest, img.config, img.layer];
        let before = blobs.map(|b| opened(&b.digest));

        let report = f.verify(None);
        let reads = blobs.map(|b| opened(&b.digest));
        let reads: Vec<usize> = reads.iter().zip(before).map(|(n, b)| n - b).collect();
        assert_eq!(
            reads,
            [1, 1, 1],
            "manifest, config and layer each read once"
        );
        assert_eq!(kinds(&report), [ProblemKind::DigestMismatch], "{report:#?}");
        let problem = &report.problems[0];
        assert_eq!(problem.blob, Some(img.layer.digest.to_string()));
        assert!(
            problem
                .message
                .ends_with(&format!("the content hashes to {found}")),
            "{}",
            problem.message
        );

        // Cut short: one read too, which learns the blob's real size.
        let bytes = fs::read(f.store.path(&img.layer.digest)).unwrap();
        fs::write(f.store.path(&img.layer.digest), &bytes[..bytes.len() / 2]).unwrap();
        let before = opened(&img.layer.digest);
        let report = f.verify(None);
        assert_eq!(opened(&img.layer.digest), before + 1);
        assert_eq!(kinds(&report), [ProblemKind::SizeMismatch], "{report:#?}");
        let says = format!("the blob has {}", bytes.len() / 2);
        assert!(report.problems[0].message.contains(&says), "{report:#?}");
    }

    #[test]
    fn a_flipped_byte_in_each_kind_of_blob_is_a_digest_mismatch() {
        for target in ["manifest", "config", "layer"] {
            let f = Fixture::new();
            let img = f.image("one");
            f.tag(&[(&img, "1")]);
            let blob = match target {
                "manifest" => img.manifest,
                "config" => img.config,
                _ => img.layer,
            };
            f.flip_byte(&blob);
            let report = f.verify(None);
            assert_eq!(
                kinds(&report),
                [ProblemKind::DigestMismatch],
                "{target}: {report:#?}"
            );
            assert!(names(&report, &blob), "{target}: {report:#?}");
        }
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let f = Fixture::new();
        let a = f.image("a");
        let b = f.image("b");
        f.tag(&[(&a, "a"), (&b, "b")]);
        f.flip_byte(&a.layer);
        fs::remove_file(f.store.path(&b.config.digest)).unwrap();
        let report = f.verify(None);
        assert_eq!(
            kinds(&report),
            [ProblemKind::DigestMismatch, ProblemKind::MissingBlob],
            "{report:#?}"
        );
        assert!(names(&report, &a.layer) && names(&report, &b.config));
        // b's layer is still decompressed, though there is no diff_id to
        // check it against.
        assert_eq!(report.blobs, 6);
        assert_eq!(render(&report).lines().last(), Some("FAILED: 2 problems"));
    }

    #[test]
    fn a_tag_limits_the_walk_and_an_unknown_tag_is_a_usage_error() {
        let f = Fixture::new();
        let a = f.image("a");
        let b = f.image("b");
        f.tag(&[(&a, "a"), (&b, "b")]);
        f.flip_byte(&b.layer);
        assert!(f.verify(Some("a")).is_ok());
        assert!(!f.verify(Some("b")).is_ok());
        let err = verify(f.path(), &Selector::Tag("c".into()), None).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("tags: a, b"), "{err}");
    }

    #[test]
    fn a_digest_limits_the_walk_to_what_it_reaches_listed_or_not() {
        let f = Fixture::new();
        let a = f.image("a");
        let b = f.image("b");
        // b is in the store but not in index.json.
        f.tag(&[(&a, "a")]);
        let by = |image: &Image| verify(f.path(), &Selector::Digest(image.manifest.digest), None);
        let report = by(&a).unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!(report.manifests, 1);
        assert_eq!(report.digest, Some(a.manifest.digest.to_string()));
        f.flip_byte(&b.layer);
        let report = by(&b).unwrap();
        assert_eq!(kinds(&report), [ProblemKind::DigestMismatch]);
        assert!(by(&a).unwrap().is_ok(), "a shares nothing with b");

        let err = verify(f.path(), &Selector::Digest(Digest::of(b"none")), None).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("no manifest or index"), "{err}");
    }

    #[test]
    fn a_wrong_size_in_a_descriptor_is_a_size_mismatch() {
        let f = Fixture::new();
        let img = f.image("one");
        let mut d = desc(&MediaType::ImageManifest, &img.manifest);
        d["size"] = json!(img.manifest.size + 1);
        f.index(&[(d, "1")]);
        let report = f.verify(None);
        assert_eq!(kinds(&report), [ProblemKind::SizeMismatch], "{report:#?}");
        let msg = &report.problems[0].message;
        assert!(msg.contains("the descriptor is wrong"), "{msg}");
    }

    #[test]
    fn a_truncated_blob_is_a_size_mismatch_too() {
        let f = Fixture::new();
        let img = f.image("one");
        f.tag(&[(&img, "1")]);
        let path = f.store.path(&img.layer.digest);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let report = f.verify(None);
        assert_eq!(kinds(&report), [ProblemKind::SizeMismatch], "{report:#?}");
        let msg = &report.problems[0].message;
        assert!(msg.contains("does not match the digest"), "{msg}");
    }

    #[test]
    fn a_wrong_diff_id_is_a_diff_id_mismatch_only() {
        let f = Fixture::new();
        let (layer, _) = f.layer("one");
        let config = f.config(&[Digest::of(b"something else")]);
        let manifest = f.manifest(&config, &[layer], "x");
        f.index(&[(desc(&MediaType::ImageManifest, &manifest), "1")]);
        let report = f.verify(None);
        assert_eq!(kinds(&report), [ProblemKind::DiffIdMismatch], "{report:#?}");
        assert!(names(&report, &layer));
    }

    #[test]
    fn layers_and_diff_ids_must_agree_in_number() {
        let f = Fixture::new();
        let (layer, diff_id) = f.layer("one");
        let config = f.config(&[diff_id, diff_id]);
        let manifest = f.manifest(&config, &[layer], "x");
        f.index(&[(desc(&MediaType::ImageManifest, &manifest), "1")]);
        let report = f.verify(None);
        assert_eq!(
            kinds(&report),
            [ProblemKind::LayerCountMismatch],
            "{report:#?}"
        );
        assert!(names(&report, &manifest));
    }

    #[test]
    fn an_intact_blob_that_does_not_decompress_is_a_corrupt_layer() {
        let f = Fixture::new();
        let junk = f.store.put(b"this is not gzip").unwrap();
        let config = f.config(&[Digest::of(b"")]);
        let manifest = f.manifest(&config, &[junk], "x");
        f.index(&[(desc(&MediaType::ImageManifest, &manifest), "1")]);
        let before = crate::store::tests::opened(&junk.digest);
        let report = f.verify(None);
        assert_eq!(kinds(&report), [ProblemKind::CorruptLayer], "{report:#?}");
        assert!(names(&report, &junk));
        assert_eq!(crate::store::tests::opened(&junk.digest), before + 1);
    }

    #[test]
    fn shared_blobs_are_read_once() {
        let f = Fixture::new();
        let (layer, diff_id) = f.layer("shared");
        let config = f.config(&[diff_id]);
        let m1 = f.manifest(&config, &[layer], "1");
        let m2 = f.manifest(&config, &[layer], "2");
        let mt = MediaType::ImageManifest;
        // Two tags for m1, one for m2.
        f.index(&[
            (desc(&mt, &m1), "1"),
            (desc(&mt, &m1), "1b"),
            (desc(&mt, &m2), "2"),
        ]);
        let report = f.verify(None);
        assert!(report.is_ok(), "{report:#?}");
        assert_eq!((report.manifests, report.blobs), (2, 4));
    }

    #[test]
    fn a_shared_layer_is_checked_against_each_config_without_a_second_read() {
        let f = Fixture::new();
        let (layer, diff_id) = f.layer("shared");
        let good = f.manifest(&f.config(&[diff_id]), &[layer], "good");
        let bad_config = f.config(&[Digest::of(b"wrong")]);
        let bad = f.manifest(&bad_config, &[layer], "bad");
        let mt = MediaType::ImageManifest;
        f.index(&[(desc(&mt, &good), "good"), (desc(&mt, &bad), "bad")]);
        let report = f.verify(None);
        assert_eq!(kinds(&report), [ProblemKind::DiffIdMismatch], "{report:#?}");
        assert!(report.problems[0].message.contains("(tag bad)"));
        assert_eq!(report.blobs, 5, "two manifests, two configs, one layer");
    }

    #[test]
    fn nested_indexes_are_walked() {
        let f = Fixture::new();
        let img = f.image("one");
        let nested = f.put(&json!({
            "schemaVersion": 2,
            "mediaType": MediaType::ImageIndex.to_string(),
            "manifests": [desc(&MediaType::ImageManifest, &img.manifest)],
        }));
        f.index(&[(desc(&MediaType::ImageIndex, &nested), "1")]);
        let report = f.verify(None);
        assert!(report.is_ok(), "{report:#?}");
        assert_eq!((report.indexes, report.manifests, report.blobs), (1, 1, 4));

        f.flip_byte(&img.config);
        let report = f.verify(None);
        assert_eq!(kinds(&report), [ProblemKind::DigestMismatch]);
        let msg = &report.problems[0].message;
        assert!(msg.starts_with("config of manifest sha256:"), "{msg}");
        assert!(msg.contains("(tag 1)"), "{msg}");
    }

    #[test]
    fn bad_json_and_wrong_media_types_are_reported() {
        let f = Fixture::new();
        let img = f.image("one");
        let junk = f.store.put(b"{not json").unwrap();
        f.index(&[
            (desc(&MediaType::ImageManifest, &junk), "junk"),
            (desc(&MediaType::ImageConfig, &img.config), "cfg"),
        ]);
        let report = f.verify(None);
        assert_eq!(
            kinds(&report),
            [ProblemKind::BadJson, ProblemKind::MediaType],
            "{report:#?}"
        );
        assert!(names(&report, &junk) && names(&report, &img.config));
    }

    #[test]
    fn the_layout_header_and_index_are_checked() {
        let f = Fixture::new();
        let img = f.image("one");
        f.tag(&[(&img, "1")]);
        let marker = f.path().join("oci-layout");

        fs::write(&marker, r#"{"imageLayoutVersion":"2.0.0"}"#).unwrap();
        let report = f.verify(None);
        assert_eq!(kinds(&report), [ProblemKind::Layout], "{report:#?}");
        assert!(report.problems[0].blob.is_none());

        fs::remove_file(&marker).unwrap();
        let report = f.verify(None);
        assert_eq!(kinds(&report), [ProblemKind::Layout], "{report:#?}");
        assert_eq!(report.blobs, 3, "the blobs are still checked");

        fs::write(
            f.path().join("index.json"),
            r#"{"schemaVersion":1,"manifests":[]}"#,
        )
        .unwrap();
        let report = f.verify(None);
        assert_eq!(
            kinds(&report),
            [ProblemKind::Layout, ProblemKind::Index],
            "{report:#?}"
        );

        fs::remove_file(f.path().join("index.json")).unwrap();
        let err = verify(f.path(), &Selector::Only, None).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        let err = verify(&f.path().join("nope"), &Selector::Only, None).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
    }

    #[test]
    fn a_missing_blob_store_means_missing_blobs_and_is_not_created() {
        let f = Fixture::new();
        let img = f.image("one");
        f.tag(&[(&img, "1")]);
        fs::remove_file(f.path().join("oci-layout")).unwrap();
        fs::remove_dir_all(f.path().join("blobs")).unwrap();
        let report = f.verify(None);
        assert_eq!(
            kinds(&report),
            [ProblemKind::Layout, ProblemKind::MissingBlob],
            "{report:#?}"
        );
        assert!(!f.path().join("blobs").exists());
    }

    #[test]
    fn a_whole_layout_names_each_image_it_checked() {
        let f = Fixture::new();
        let a = f.image("a");
        let b = f.image("b");
        f.tag(&[(&a, "a"), (&b, "b")]);
        let report = f.verify(None);
        let checked: Vec<String> = report.checked.iter().map(ToString::to_string).collect();
        assert_eq!(
            checked,
            [
                format!("manifest {} (tag a)", a.manifest.digest),
                format!("manifest {} (tag b)", b.manifest.digest)
            ]
        );
        assert_eq!(report.digest, None, "two images: no one digest");
        let text = render(&report);
        assert!(text.contains(&format!(
            "checked: manifest {} (tag b)\n",
            b.manifest.digest
        )));
    }

    #[test]
    fn an_expected_digest_must_be_the_image_named() {
        let f = Fixture::new();
        let a = f.image("a");
        let b = f.image("b");
        f.tag(&[(&a, "a"), (&b, "b")]);
        let (da, db) = (a.manifest.digest, b.manifest.digest);
        let expecting =
            |selector: &Selector, digest: &Digest| verify(f.path(), selector, Some(digest));

        let report = expecting(&Selector::Tag("a".into()), &da).unwrap();
        assert!(report.is_ok() && report.digest == Some(da.to_string()));
        let err = expecting(&Selector::Tag("a".into()), &db).unwrap_err();
        assert_eq!((err.kind(), err.exit_code()), ("unverified", 1));
        let msg = err.to_string();
        assert!(msg.contains(&format!("is {da}, not {db}")), "{msg}");

        let err = expecting(&Selector::Digest(da), &db).unwrap_err();
        assert!(
            err.to_string().contains(&format!("is {da}, not {db}")),
            "{err}"
        );

        // A whole layout: the entry of that digest, and only it.
        let report = expecting(&Selector::Only, &db).unwrap();
        assert_eq!(
            (report.manifests, report.digest.clone()),
            (1, Some(db.to_string()))
        );
        let none = Digest::of(b"none");
        let err = expecting(&Selector::Only, &none).unwrap_err();
        assert_eq!(err.exit_code(), 1);
        let msg = err.to_string();
        assert!(msg.contains(&format!("does not hold {none}")), "{msg}");
        assert!(msg.contains(&format!("manifest {da} (tag a)")), "{msg}");

        // An unknown tag is still the usage error it is without --digest.
        let err = expecting(&Selector::Tag("c".into()), &da).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
    }

    #[test]
    fn problems_render_one_per_line() {
        let report = Report {
            problems: vec![
                Problem {
                    kind: ProblemKind::Layout,
                    blob: None,
                    message: "oci-layout is missing".into(),
                },
                Problem {
                    kind: ProblemKind::MissingBlob,
                    blob: Some("sha256:ab".into()),
                    message: "gone".into(),
                },
            ],
            ..Report::default()
        };
        assert_eq!(
            render(&report),
            "image: \n\
             problem: layout: oci-layout is missing\n\
             problem: missing-blob: sha256:ab: gone\n\
             FAILED: 2 problems\n"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["problems"][1]["kind"], "missing-blob");
    }
}
