//! Artifacts about images in an OCI layout: SBOMs, provenance and
//! signatures kept beside the image they describe (image-spec 1.1
//! `subject`), so they travel with it through `push` and `pull`.
//!
//! index.json lists each artifact manifest untagged, with its
//! `artifactType` (as image-spec 1.1 lets a descriptor carry it), after
//! the images; selecting "the only image" of a layout passes over them.
//! Which image an artifact is about is its manifest's `subject`, read
//! when asked.

use std::collections::HashSet;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};

use std::path::Path;

use super::layout::{
    Entry, Layout, Staging, blob_ref, check_json_size, commit_referrers, is_artifact,
};
use super::{BlobRef, BlobStore};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result, Within};
use crate::image::artifact::{self, Artifact};
use crate::image::reference::Selector;
use crate::image::{MAX_MANIFEST_SIZE, canonical_json, media};

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
    let document = write(&artifact.document, "document")?;
    put_stored(store, artifact, document, subject)
}

/// Like [`put`], for an artifact whose document is in `store` already as
/// `document` (its `document` bytes are not used): one too large to hold.
pub fn put_stored(
    store: &BlobStore,
    artifact: &Artifact,
    document: BlobRef,
    subject: &Descriptor,
) -> Result<Referrer> {
    let write = |bytes: &[u8], what: &str| {
        store
            .put(bytes)
            .context(|| format!("writing the {what} of a {}", artifact.artifact_type))
    };
    write(artifact::EMPTY_JSON, "empty config")?;
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
/// at `dir`, which must list it or an index holding it: its blobs written
/// and its manifest listed, atomically (a failure leaves the layout as it
/// was). Attaching it again changes nothing.
pub fn attach(dir: &Path, subject: &Digest, artifact: &Artifact) -> Result<Referrer> {
    let layout = Layout::open(dir)?;
    if !reachable(&layout.blobs, &layout.index()?)?.contains(subject) {
        return Err(Error::Usage(format!(
            "{}: lists no image {subject} to attach a {} to",
            dir.display(),
            artifact.artifact_type
        )));
    }
    let about = layout.find(&Selector::Digest(*subject))?;
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

/// How deep [`reachable`] follows indexes in indexes.
const MAX_INDEX_DEPTH: usize = 4;

/// The manifests and indexes `index` lists that are not artifacts, and
/// every manifest of those that are indexes, followed through `blobs`.
fn reachable(blobs: &BlobStore, index: &ImageIndex) -> Result<HashSet<Digest>> {
    let mut found = HashSet::new();
    let mut level: Vec<Descriptor> = (index.manifests().iter())
        .filter(|d| !is_artifact(d))
        .cloned()
        .collect();
    for _ in 0..=MAX_INDEX_DEPTH {
        let mut next = Vec::new();
        for desc in &level {
            let blob = blob_ref(desc)?;
            if !found.insert(blob.digest) || !media::is_index(desc.media_type().as_ref()) {
                continue;
            }
            check_json_size(&blob, MAX_MANIFEST_SIZE)?;
            let bytes = blobs
                .read(&blob)
                .within(|| format!("index {}", blob.digest))?;
            let inner: ImageIndex = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Failed(format!("index {}: invalid JSON: {e}", blob.digest)))?;
            next.extend(inner.manifests().iter().cloned());
        }
        level = next;
    }
    Ok(found)
}

/// `index` without the artifacts about nothing it lists: kept are those
/// whose subject is an image it lists (or a manifest of an index it
/// lists), or another kept artifact. A build that moves a tag leaves no
/// SBOM of the image it replaced to keep that image from `gc`.
pub(crate) fn prune(blobs: &BlobStore, mut index: ImageIndex) -> Result<ImageIndex> {
    let mut kept = reachable(blobs, &index)?;
    let mut subjects = Vec::new();
    for desc in index.manifests().iter().filter(|d| is_artifact(d)) {
        let blob = blob_ref(desc)?;
        check_json_size(&blob, MAX_MANIFEST_SIZE)?;
        let bytes = blobs
            .read(&blob)
            .within(|| format!("artifact {}", blob.digest))?;
        let manifest: ImageManifest = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Failed(format!("artifact {}: invalid JSON: {e}", blob.digest)))?;
        let subject = manifest
            .subject()
            .as_ref()
            .and_then(|s| Digest::try_from(s.digest()).ok());
        subjects.push((blob.digest, subject));
    }
    // Artifacts about artifacts (a signature of a provenance) follow theirs.
    loop {
        let before = kept.len();
        for (digest, subject) in &subjects {
            if subject.is_some_and(|s| kept.contains(&s)) {
                kept.insert(*digest);
            }
        }
        if kept.len() == before {
            break;
        }
    }
    let manifests = (index.manifests().iter())
        .filter(|d| {
            !is_artifact(d) || Digest::try_from(d.digest()).is_ok_and(|d| kept.contains(&d))
        })
        .cloned()
        .collect();
    index.set_manifests(manifests);
    Ok(index)
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

    /// Commits the stand-in image manifest `json`, tagged `1` (moving the
    /// tag), to the layout at `dir` with `documents` about it; the image's
    /// descriptor.
    fn commit_image(dir: &std::path::Path, json: &[u8], documents: &[&str]) -> Descriptor {
        let staging = Staging::new(dir).unwrap();
        let image = staging.blobs.put(json).unwrap();
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
                replace: true,
                referrers: &referrers,
            },
        )
        .unwrap();
        subject
    }

    fn layout_with(dir: &std::path::Path, documents: &[&str]) -> Descriptor {
        commit_image(dir, b"{\"schemaVersion\":2}", documents)
    }

    /// A build moving the tag to another image takes the old image's
    /// artifacts out of index.json with it; attaching to an image the
    /// layout does not list is refused.
    #[test]
    fn artifacts_go_with_their_image() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        layout_with(&out, &["old sbom"]);
        let new = commit_image(&out, b"{\"schemaVersion\":2,\"new\":1}", &[]);
        let image = Digest::try_from(new.digest()).unwrap();
        let layout = Layout::open(&out).unwrap();
        let listed = layout.index().unwrap().manifests().clone();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(Digest::try_from(listed[0].digest()).unwrap(), image);

        let err = attach(&out, &Digest::of(b"elsewhere"), &sbom("x")).unwrap_err();
        assert!(err.to_string().contains("lists no image"), "{err}");
        assert!(attach(&out, &image, &sbom("x")).is_ok());
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
