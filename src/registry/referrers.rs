//! Artifacts that refer to an image: SBOMs, signatures, attestations
//! (image-spec 1.1 `subject`; distribution-spec 1.1 "Listing Referrers"
//! and "Referrers Tag Schema").
//!
//! An artifact is an image manifest with a `subject` descriptor. A
//! registry with the referrers API indexes it when the manifest is put;
//! one without (Debian's registry 2.8) needs the client to keep an index
//! of referrers under the tag `sha256-<hex of the subject>`.
//!
//! Whether the registry indexed the artifact is not read from the put's
//! `OCI-Subject` header; instead we ask for the subject's referrers after
//! the put ([`Remote::referrers`] tries the API, then the fallback tag)
//! and update the fallback tag only when the artifact is not listed. On a
//! registry with the API that listing comes from the API, so the tag is
//! left alone.

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use serde::Serialize;

use super::push::{PushOptions, PushReport, Tally, push_blobs};
use super::{RegistryError, Remote};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result, Within};
use crate::image::reference::RegistryRef;
use crate::image::{MAX_MANIFEST_SIZE, canonical_json, media};
use crate::store::layout::blob_ref;
use crate::store::referrers::Referrer;
use crate::store::{BlobRef, BlobStore};

/// The most artifacts a pull brings back about one image: a registry
/// listing more is refused, not followed without end.
pub const MAX_REFERRERS: usize = 64;

/// The most bytes of blobs one artifact may hold: an SBOM lists about
/// 500 bytes per file, so an image of 300,000 files has one of 150 MB.
pub const MAX_ARTIFACT_SIZE: u64 = 256 << 20;

/// What pushing a referrer did.
#[derive(Debug, Clone, Serialize)]
pub struct ReferrerReport {
    /// The artifact manifest's digest.
    pub digest: Digest,
    /// What it is, as its manifest says (`artifactType`).
    pub artifact_type: Option<String>,
    /// The image it refers to.
    pub subject: Digest,
    /// The fallback tag updated to list the artifact, or None when the
    /// registry already listed it (its referrers API).
    pub fallback_tag: Option<String>,
    pub uploaded: Tally,
}

/// The tag-schema fallback tag for a subject: `sha256-<hex>`.
pub fn fallback_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// Pushes the artifact manifest `manifest` from `store` (with its config
/// and layers, which must be there too) to `repo`, then makes sure it is
/// listed among its subject's referrers: by the registry's API, or else
/// in the `sha256-<hex>` fallback index, which this updates.
pub fn push_referrer(
    remote: &Remote,
    repo: &RegistryRef,
    store: &BlobStore,
    manifest: &BlobRef,
) -> Result<ReferrerReport> {
    let bytes = store.read(manifest).within(|| "artifact".into())?;
    let parsed: ImageManifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Failed(format!("artifact {}: invalid JSON: {e}", manifest.digest)))?;
    let subject = parsed.subject().as_ref().ok_or_else(|| {
        Error::Failed(format!(
            "artifact {}: no subject; it refers to nothing",
            manifest.digest
        ))
    })?;
    let subject_ref = blob_ref(subject)?;
    let repo = repo.with_tag(None);

    let mut blobs = vec![blob_ref(parsed.config())?];
    for layer in parsed.layers() {
        blobs.push(blob_ref(layer)?);
    }
    let mut pushed = PushReport::new(
        repo.with_digest(manifest.digest).to_string(),
        manifest.digest,
        media::MANIFEST,
    );
    let origin = format!("artifact {}", manifest.digest);
    push_blobs(
        remote,
        &repo,
        store,
        &blobs,
        &[],
        &PushOptions::default(),
        &origin,
        &mut pushed,
    )?;
    remote.put_manifest(&repo, &bytes, media::MANIFEST)?;

    let listed = referrers(remote, &repo.with_digest(subject_ref.digest), None)?;
    let mut report = ReferrerReport {
        digest: manifest.digest,
        artifact_type: parsed.artifact_type().as_ref().map(|t| t.to_string()),
        subject: subject_ref.digest,
        fallback_tag: None,
        uploaded: pushed.uploaded,
    };
    if listed
        .iter()
        .any(|d| d.digest().to_string() == manifest.digest.to_string())
    {
        return Ok(report);
    }

    // The tag schema: read the index (none yet is an empty one), add the
    // artifact, put it back. Two clients doing this at once can lose an
    // entry; the spec accepts that for registries without the API.
    let tag = fallback_tag(&subject_ref.digest);
    let at = repo.with_tag(Some(&tag));
    let mut index = match remote.get_manifest(&at) {
        Ok(raw) => serde_json::from_slice::<ImageIndex>(&raw.bytes).map_err(|e| {
            RegistryError::Protocol {
                what: at.to_string(),
                message: format!("the referrers fallback tag is not an image index: {e}"),
            }
        })?,
        Err(Error::Registry(RegistryError::NotFound { .. })) => {
            let mut i = ImageIndex::default();
            i.set_media_type(Some(MediaType::ImageIndex));
            i
        }
        Err(e) => return Err(e),
    };
    let mut entry = Descriptor::new(
        MediaType::ImageManifest,
        manifest.size,
        manifest.digest.to_oci(),
    );
    entry.set_artifact_type(
        parsed
            .artifact_type()
            .clone()
            .or_else(|| Some(parsed.config().media_type().clone())),
    );
    entry.set_annotations(parsed.annotations().clone());
    let mut manifests = index.manifests().clone();
    manifests.retain(|d| d.digest() != entry.digest());
    manifests.push(entry);
    index.set_manifests(manifests);
    let json = canonical_json(&index)
        .map_err(|e| Error::Failed(format!("encoding the referrers index: {e}")))?;
    remote.put_manifest(&at, &json, media::INDEX)?;
    report.fallback_tag = Some(tag);
    Ok(report)
}

/// The artifacts that refer to `subject` (a reference with a digest),
/// optionally of one artifact type: the registry's referrers API, or the
/// fallback tag's index.
pub fn referrers(
    remote: &Remote,
    subject: &RegistryRef,
    artifact_type: Option<&str>,
) -> Result<Vec<Descriptor>> {
    if subject.digest.is_none() {
        return Err(Error::Usage(format!(
            "{subject}: referrers are listed for a digest: docker://HOST/REPO@sha256:…"
        )));
    }
    Ok(remote
        .referrers(subject, artifact_type)?
        .manifests()
        .clone())
}

/// Fetches the artifacts `subject` (a reference with a digest) has into
/// `store`: each manifest checked to name that subject (a listing is not
/// trusted), its blobs verified as they stream. At most
/// [`MAX_REFERRERS`] artifacts of at most [`MAX_ARTIFACT_SIZE`] each.
pub fn fetch_referrers(
    remote: &Remote,
    subject: &RegistryRef,
    store: &BlobStore,
) -> Result<Vec<Referrer>> {
    let listed = referrers(remote, subject, None)?;
    let what = format!("referrers of {subject}");
    if listed.len() > MAX_REFERRERS {
        return Err(RegistryError::Protocol {
            what,
            message: format!(
                "lists {} artifacts; refusing more than {MAX_REFERRERS}",
                listed.len()
            ),
        }
        .into());
    }
    let expected = subject.digest.map(|d| d.to_string());
    let repo = subject.with_tag(None);
    let mut fetched = Vec::new();
    for desc in &listed {
        let blob = blob_ref(desc)?;
        let at = repo.with_digest(blob.digest);
        let protocol = |message: String| -> Error {
            RegistryError::Protocol {
                what: at.to_string(),
                message,
            }
            .into()
        };
        if blob.size > MAX_MANIFEST_SIZE {
            return Err(protocol(format!(
                "an artifact manifest of {} bytes; refusing more than {MAX_MANIFEST_SIZE}",
                blob.size
            )));
        }
        let raw = remote.get_manifest(&at)?;
        if raw.digest != blob.digest {
            return Err(RegistryError::DigestMismatch {
                what: at.to_string(),
                expected: blob.digest,
                found: raw.digest,
            }
            .into());
        }
        let manifest: ImageManifest = serde_json::from_slice(&raw.bytes)
            .map_err(|e| protocol(format!("not an artifact manifest: {e}")))?;
        let about = manifest.subject().as_ref().map(|s| s.digest().to_string());
        if about != expected {
            return Err(protocol(format!(
                "listed among the referrers of {subject}, but its subject is {}",
                about.as_deref().unwrap_or("none")
            )));
        }
        let blobs = std::iter::once(manifest.config())
            .chain(manifest.layers())
            .map(blob_ref)
            .collect::<Result<Vec<_>>>()?;
        let total: u64 = blobs.iter().map(|b| b.size).sum();
        if total > MAX_ARTIFACT_SIZE {
            return Err(protocol(format!(
                "an artifact of {total} bytes; refusing more than {MAX_ARTIFACT_SIZE}"
            )));
        }
        for b in &blobs {
            remote.fetch_blob(&repo, b, store, &format!("blob {} of {at}", b.digest))?;
        }
        let stored = store.put(&raw.bytes).context(|| format!("storing {at}"))?;
        let artifact_type = manifest
            .artifact_type()
            .clone()
            .unwrap_or_else(|| manifest.config().media_type().clone());
        fetched.push(Referrer {
            manifest: stored,
            artifact_type: artifact_type.to_string(),
        });
    }
    Ok(fetched)
}
