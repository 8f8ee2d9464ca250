//! Comparing two images (issue 16): what differs between them, and where,
//! as a [`Diff`] a report is made of (`ingot diff`, and `verify --rebuild`
//! explaining a mismatch).
//!
//! Compared, from the top: the image indexes the references named (their
//! platforms and each platform's manifest), the manifests' annotations,
//! the configs field by field, the layers position by position (shared
//! when their diff_ids are equal; the files of each that differs), the
//! merged filesystems (whiteouts applied, as a runtime unpacks them), and
//! the packages their dpkg and apk databases list.
//!
//! Layers are streamed through the view's reader, with every check a base
//! gets, each file hashed as it passes: nothing is unpacked. The engine
//! takes images already opened ([`Side`]), so it does not care which
//! transport they came from.

pub mod fields;
pub mod files;
pub mod packages;
pub mod render;
pub mod tree;

use std::collections::HashMap;

use oci_spec::image::{Descriptor, ImageConfiguration};
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::IndexSummary;
use crate::image::identity::{DigestOf, Identity};
use crate::progress::Progress;
use crate::seal::LayerLabel;
use crate::store::BlobStore;

pub use fields::{FieldChange, IndexDiff};
pub use files::{FileChange, Status};
pub use packages::PackageDiff;
pub use render::render;

/// One image to compare, opened: its blobs at hand, verified as read.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    /// The reference as given, for reports.
    pub reference: &'a str,
    pub identity: Identity,
    /// The manifest's annotations; None for an image without a manifest
    /// (a docker-archive).
    pub annotations: Option<&'a HashMap<String, String>>,
    pub config: &'a ImageConfiguration,
    /// Layer descriptors, bottom first, as `blobs` holds them.
    pub layers: &'a [Descriptor],
    /// A name for each layer.
    pub labels: &'a [LayerLabel],
    /// The index the image was taken from, if the reference named one.
    pub index: Option<&'a IndexSummary>,
    pub blobs: &'a BlobStore,
}

impl Side<'_> {
    /// The config's diff_ids, one for each layer.
    pub fn diff_ids(&self) -> Result<Vec<Digest>> {
        let ids = crate::image::config::diff_ids(self.config)
            .map_err(|m| Error::Failed(format!("{}: {m}", self.reference)))?;
        if ids.len() != self.layers.len() {
            return Err(Error::Failed(format!(
                "{}: the config lists {} diff_ids for {} layers",
                self.reference,
                ids.len(),
                self.layers.len()
            )));
        }
        Ok(ids)
    }

    fn has_manifest(&self) -> bool {
        self.identity.digest_of() == DigestOf::Manifest
    }
}

/// An image as a report names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Named {
    pub image: String,
    pub digest: Digest,
    /// What `digest` is the digest of: the manifest, or for a
    /// docker-archive (which has none) the config.
    pub digest_of: DigestOf,
}

/// A layer as a report names it: its name (ingot's recipe layer name
/// where the manifest records one, else `#N`), its blob digest (a
/// docker-archive's: its diff_id) and its diff_id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerRef {
    pub name: String,
    pub digest: String,
    pub diff_id: Digest,
}

/// A position both images have the same tar at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SharedLayer {
    /// The position, from 0 at the bottom.
    pub index: usize,
    pub layer: LayerRef,
    /// The second image's blob, when it encodes the same tar otherwise
    /// (another compression); both images have manifests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_digest: Option<String>,
}

/// A position the images hold different tars at, or that only one has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DifferingLayer {
    /// The position, from 0 at the bottom.
    pub index: usize,
    pub old: Option<LayerRef>,
    pub new: Option<LayerRef>,
    /// The layer's own entries that differ, whiteouts included (by their
    /// tar names, `DIR/.wh.NAME`).
    pub files: Vec<FileChange>,
}

/// The layers compared position by position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LayerDiff {
    pub shared: Vec<SharedLayer>,
    /// The lowest position whose layers differ, if any.
    pub first_differing: Option<usize>,
    pub differing: Vec<DifferingLayer>,
}

/// What differs between two images, `old` and `new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub old: Named,
    pub new: Named,
    /// When both references named an image index.
    pub index: Option<IndexDiff>,
    /// None when either image has no manifest (a docker-archive).
    pub annotations: Option<Vec<FieldChange<String>>>,
    pub config: Vec<FieldChange<serde_json::Value>>,
    pub layers: LayerDiff,
    /// The merged filesystems: what a runtime unpacks.
    pub filesystem: Vec<FileChange>,
    /// None when neither filesystem has a package database.
    pub packages: Option<PackageDiff>,
}

impl Diff {
    /// Whether the images are the same: nothing compared differs, and
    /// where both are named by the same kind of digest, the digests are
    /// equal (an image and its docker-archive export, named by manifest
    /// and by config, are the same when all else is).
    pub fn is_empty(&self) -> bool {
        !self.digests_differ()
            && self.index.as_ref().is_none_or(IndexDiff::is_empty)
            && self.annotations.as_ref().is_none_or(Vec::is_empty)
            && self.config.is_empty()
            && self.layers.differing.is_empty()
            && self.layers.shared.iter().all(|l| l.other_digest.is_none())
            && self.filesystem.is_empty()
            && self.packages.as_ref().is_none_or(PackageDiff::is_empty)
    }

    /// Whether the images' digests, of the same kind, differ.
    pub fn digests_differ(&self) -> bool {
        self.old.digest_of == self.new.digest_of && self.old.digest != self.new.digest
    }
}

/// Compares image `a` (old) with `b` (new), reading the layers each
/// needs; the work is reported to `progress`.
pub fn compare(a: &Side, b: &Side, progress: &Progress) -> Result<Diff> {
    let (ids_a, ids_b) = (a.diff_ids()?, b.diff_ids()?);
    let (files_a, files_b) = tree::read_pair((a, &ids_a), (b, &ids_b), progress)?;
    let config = fields::config(&config_json(a)?, &config_json(b)?);
    let index = match (a.index, b.index) {
        (Some(x), Some(y)) => Some(fields::index(x, y)),
        _ => None,
    };
    let annotations = (a.has_manifest() && b.has_manifest())
        .then(|| fields::annotations(a.annotations, b.annotations));
    let packages = (!files_a.databases.is_empty() || !files_b.databases.is_empty()).then(|| {
        packages::compare(
            &packages::installed(&files_a.databases),
            &packages::installed(&files_b.databases),
        )
    });
    Ok(Diff {
        old: named(a),
        new: named(b),
        index,
        annotations,
        config,
        layers: layers((a, &ids_a, &files_a), (b, &ids_b, &files_b)),
        filesystem: files::compare(&files_a.merged, &files_b.merged),
        packages,
    })
}

fn named(side: &Side) -> Named {
    Named {
        image: side.reference.to_string(),
        digest: side.identity.digest(),
        digest_of: side.identity.digest_of(),
    }
}

fn config_json(side: &Side) -> Result<serde_json::Value> {
    serde_json::to_value(side.config)
        .map_err(|e| Error::Failed(format!("{}: encoding the config: {e}", side.reference)))
}

fn layer_ref(side: &Side, i: usize, diff_id: Digest) -> LayerRef {
    let label = side.labels.get(i);
    LayerRef {
        name: label.map_or_else(|| format!("#{}", i + 1), |l| l.name.clone()),
        digest: label.map_or_else(|| side.layers[i].digest().to_string(), |l| l.digest.clone()),
        diff_id,
    }
}

/// The layers compared position by position.
fn layers(
    (a, ids_a, files_a): (&Side, &[Digest], &tree::Files),
    (b, ids_b, files_b): (&Side, &[Digest], &tree::Files),
) -> LayerDiff {
    let mut diff = LayerDiff::default();
    for i in 0..ids_a.len().max(ids_b.len()) {
        let old = ids_a.get(i).map(|d| layer_ref(a, i, *d));
        let new = ids_b.get(i).map(|d| layer_ref(b, i, *d));
        match (&old, &new) {
            (Some(x), Some(y)) if x.diff_id == y.diff_id => {
                // A docker-archive's layers are ingot's re-encodings:
                // their blobs say nothing of the image's.
                let recompressed = a.has_manifest() && b.has_manifest() && x.digest != y.digest;
                diff.shared.push(SharedLayer {
                    index: i,
                    layer: x.clone(),
                    other_digest: recompressed.then(|| y.digest.clone()),
                });
                continue;
            }
            _ => {}
        }
        let files = match (files_a.layers.get(i), files_b.layers.get(i)) {
            (Some(x), Some(y)) => files::compare(x, y),
            (Some(x), None) => files::all(x, Status::Removed),
            (None, Some(y)) => files::all(y, Status::Added),
            (None, None) => Vec::new(),
        };
        diff.first_differing.get_or_insert(i);
        diff.differing.push(DifferingLayer {
            index: i,
            old,
            new,
            files,
        });
    }
    diff
}
