//! Artifacts about images in an OCI layout: SBOMs, provenance and
//! signatures kept beside the image they describe (image-spec 1.1
//! `subject`), so they travel with it through `push` and `pull`.
//!
//! index.json lists each artifact manifest untagged, with its
//! `artifactType` (as image-spec 1.1 lets a descriptor carry it), after
//! the images; selecting "the only image" of a layout passes over them.
//! Which image an artifact is about is its manifest's `subject`, read
//! when asked.

use oci_spec::image::{Descriptor, ImageManifest, MediaType};

use std::path::Path;

use super::layout::{Entry, Layout, Staging, commit_referrers, is_artifact};
use super::{BlobRef, BlobStore};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::artifact::{self, Artifact};
use crate::image::reference::Selector;
use crate::image::{MAX_MANIFEST_SIZE, canonical_json};

/// An artifact manifest in a blob store, ready to be listed in a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    pub manifest: BlobRef,
    pub artifact_type: String,
}

impl Referrer {
    /// Its untagged index.json entry.
    pub fn entry(&self) -> Entry<'_> {
        Entry {
            recipe: None,
            tag: None,
            manifest: self.manifest,
            media_type: MediaType::ImageManifest,
            platform: None,
            artifact_type: Some(&self.artifact_type),
        }
    }
}

/// Writes `artifact` about `subject` into `store`: the empty config, the
/// document, and the manifest tying them to the subject.
pub fn put(store: &BlobStore, artifact: &Artifact, subject: &Descriptor) -> Result<Referrer> {
    let write = |bytes: &[u8], what: &str| {
        store
            .put(bytes)
            .context(|| format!("writing the {what} of a {}", artifact.artifact_type))
    };
    write(artifact::EMPTY_JSON, "empty config")?;
    let document = write(&artifact.document, "document")?;
    let layer = Descriptor::new(
        MediaType::from(artifact.media_type.as_str()),
        document.size,
        document.digest.to_oci(),
    );
    let manifest = artifact::manifest(artifact, layer, subject);
    let json = canonical_json(&manifest)
        .map_err(|e| Error::Failed(format!("encoding an artifact manifest: {e}")))?;
    Ok(Referrer {
        manifest: write(&json, "manifest")?,
        artifact_type: artifact.artifact_type.clone(),
    })
}

/// Attaches `artifact` to the manifest or index `subject` of the layout
/// at `dir`: its blobs written and its manifest listed, atomically (a
/// failure leaves the layout as it was). Attaching it again changes
/// nothing.
pub fn attach(dir: &Path, subject: &Digest, artifact: &Artifact) -> Result<Referrer> {
    let about = Layout::open(dir)?.find(&Selector::Digest(*subject))?;
    let staging = Staging::new(dir)?;
    let referrer = put(&staging.blobs, artifact, &about)?;
    commit_referrers(staging, std::slice::from_ref(&referrer))?;
    Ok(referrer)
}

/// The artifacts `layout` lists about `subject`, as index.json lists them
/// (each with its `artifactType`), in its order.
pub fn of(layout: &Layout, subject: &Digest) -> Result<Vec<Descriptor>> {
    let index = layout.index()?;
    let mut found = Vec::new();
    for desc in index.manifests().iter().filter(|d| is_artifact(d)) {
        let manifest: ImageManifest = layout.read_json(desc, MAX_MANIFEST_SIZE)?;
        let about = manifest
            .subject()
            .as_ref()
            .and_then(|s| Digest::try_from(s.digest()).ok());
        if about == Some(*subject) {
            found.push(desc.clone());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::store::layout::{Tagged, commit};

    fn sbom(text: &str) -> Artifact {
        Artifact {
            artifact_type: "application/spdx+json".into(),
            media_type: "application/spdx+json".into(),
            document: text.as_bytes().to_vec(),
            annotations: HashMap::new(),
        }
    }

    /// A layout at `dir` with a stand-in image manifest tagged `1`, and
    /// `documents` about it; the image's descriptor.
    fn layout_with(dir: &std::path::Path, documents: &[&str]) -> Descriptor {
        let staging = Staging::new(dir).unwrap();
        let image = staging.blobs.put(b"{\"schemaVersion\":2}").unwrap();
        let subject = Descriptor::new(MediaType::ImageManifest, image.size, image.digest.to_oci());
        let referrers: Vec<Referrer> = documents
            .iter()
            .map(|d| put(&staging.blobs, &sbom(d), &subject).unwrap())
            .collect();
        commit(
            staging,
            &Tagged {
                recipe: "r",
                tags: &["1".to_string()],
                manifest: image,
                media_type: MediaType::ImageManifest,
                platform: None,
                replace: false,
                referrers: &referrers,
            },
        )
        .unwrap();
        subject
    }

    #[test]
    fn artifacts_are_listed_after_the_image_and_found_by_subject() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let subject = layout_with(&out, &["b", "a"]);
        let layout = Layout::open(&out).unwrap();
        let index = layout.index().unwrap();
        let listed = index.manifests();
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[0].digest(), subject.digest(), "the image first");
        assert!(listed[1..].iter().all(is_artifact));
        // The only image is still the only image.
        let only = layout
            .find(&crate::image::reference::Selector::Only)
            .unwrap();
        assert_eq!(only.digest(), subject.digest());
        let digest = Digest::try_from(subject.digest()).unwrap();
        let found = of(&layout, &digest).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].artifact_type().as_ref().map(|t| t.to_string()),
            Some("application/spdx+json".to_string())
        );
        assert!(of(&layout, &Digest::of(b"other")).unwrap().is_empty());
    }
}
