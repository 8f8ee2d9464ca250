//! Pushing blobs to a registry (distribution-spec "Pushing blobs"): each
//! is checked with a HEAD and skipped if present; else mounted from
//! another repository of the same registry when one is known; else
//! uploaded, in one PUT or, above [`PushOptions::chunked_above`], in
//! chunks. `ingot push` ([`crate::commands::push`]) and referrer artifacts
//! push through here.

use serde::Serialize;

use super::Remote;
use crate::digest::Digest;
use crate::error::{Result, Within};
use crate::image::reference::{RegistryRef, Repository};
use crate::progress::bytes;
use crate::store::{BlobRef, BlobStore};

#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Repositories on the destination registry to mount missing blobs
    /// from before uploading them.
    pub from_repositories: Vec<Repository>,
    /// Blobs larger than this are uploaded in chunks (4 MiB PATCHes);
    /// smaller ones in one streamed PUT.
    pub chunked_above: u64,
    /// Further tags to put the image at, besides the destination's.
    pub also_tags: Vec<String>,
    /// Refuse, before anything is sent, when the registry has one of the
    /// tags for another manifest: a version never moves silently.
    pub keep_tags: bool,
}

impl Default for PushOptions {
    fn default() -> PushOptions {
        PushOptions {
            from_repositories: Vec::new(),
            chunked_above: 8 << 20,
            also_tags: Vec::new(),
            keep_tags: false,
        }
    }
}

/// Blobs and their total size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub blobs: u64,
    pub bytes: u64,
}

impl Tally {
    pub fn add(&mut self, blob: &BlobRef) {
        self.blobs += 1;
        self.bytes += blob.size;
    }
}

/// What a push did; `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// Where the image went: `docker://HOST/REPO:TAG`, or `@DIGEST`.
    pub reference: String,
    /// The digest of the manifest (or index) pushed.
    pub digest: Digest,
    pub media_type: String,
    /// Manifests and indexes put (an index counts its children).
    pub manifests: u64,
    pub uploaded: Tally,
    pub mounted: Tally,
    /// Blobs the registry already had.
    pub skipped: Tally,
    /// The artifacts about the image (SBOMs, provenance) pushed with it.
    pub referrers: Vec<super::ReferrerReport>,
    /// The tag the image's signatures went to (`sha256-<hex>.sig`), when
    /// the layout held signatures of it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signatures: Option<String>,
}

impl PushReport {
    /// A report of nothing sent yet, for the manifest `digest` going to
    /// `reference`.
    pub fn new(reference: String, digest: Digest, media_type: &str) -> PushReport {
        PushReport {
            reference,
            digest,
            media_type: media_type.to_string(),
            manifests: 0,
            uploaded: Tally::default(),
            mounted: Tally::default(),
            skipped: Tally::default(),
            referrers: Vec::new(),
            signatures: None,
        }
    }
}

/// Makes sure `repo` has every blob: skipped if there, mounted from one of
/// `sources` if it will, else uploaded from `store` (verified as read).
#[allow(clippy::too_many_arguments)]
pub fn push_blobs(
    remote: &Remote,
    repo: &RegistryRef,
    store: &BlobStore,
    blobs: &[BlobRef],
    sources: &[String],
    options: &PushOptions,
    origin: &str,
    report: &mut PushReport,
) -> Result<()> {
    let mut missing = Vec::new();
    for blob in blobs {
        if remote.blob_exists(repo, &blob.digest)? {
            report.skipped.add(blob);
            continue;
        }
        let mut mounted = false;
        for from in sources {
            if remote.mount_blob(repo, from, &blob.digest)? {
                mounted = true;
                break;
            }
        }
        if mounted {
            report.mounted.add(blob);
        } else {
            missing.push(*blob);
        }
    }
    let progress = remote.progress();
    let total: u64 = missing.iter().map(|b| b.size).sum();
    progress.start(&format!("pushing {repo}"), total);
    for blob in &missing {
        let what = format!("blob {} of {origin}", blob.digest);
        let reader = store
            .open_blob(blob)
            .within(|| format!("reading {origin}"))?;
        remote.upload_blob(repo, blob, reader, blob.size > options.chunked_above, &what)?;
        report.uploaded.add(blob);
    }
    progress.finish();
    if !missing.is_empty() || report.mounted.blobs > 0 {
        progress.log(&format!(
            "{repo}: uploaded {} blobs ({}), mounted {}, skipped {}",
            report.uploaded.blobs,
            bytes(report.uploaded.bytes),
            report.mounted.blobs,
            report.skipped.blobs
        ));
    }
    Ok(())
}
