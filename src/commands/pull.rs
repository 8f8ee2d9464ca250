//! `ingot pull`: an image from a registry into an OCI layout, every blob
//! verified as it streams ([`registry::fetch_image`]), the layout written
//! only when all arrived intact.

use std::path::Path;

use oci_spec::image::MediaType;
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::PlatformChoice;
use crate::image::config::platform_of;
use crate::image::reference::RegistryRef;
use crate::registry::{Access, Progress, Remote, Tally, fetch_image, fetch_referrers};
use crate::store::layout::{self, Entry, Staging};

/// What a pull did; `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub reference: String,
    /// The manifest now in the layout.
    pub digest: Digest,
    pub media_type: String,
    /// The index the reference named, if it named one.
    pub index_digest: Option<Digest>,
    pub layout: String,
    /// The tag in the layout, or None (by digest only).
    pub tag: Option<String>,
    pub downloaded: Tally,
    /// The artifacts about the image brought with it: each manifest's
    /// digest and type.
    pub referrers: Vec<PulledReferrer>,
    /// The tag its signatures came under (`sha256-<hex>.sig`), if signed.
    pub signatures: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PulledReferrer {
    pub digest: Digest,
    pub artifact_type: String,
}

/// `ingot pull`: fetches `source` into a staging directory beside `out`
/// and commits it as a layout tagged with the reference's tag (or by
/// digest only). Blobs `out` already holds are reused once checked. A
/// failure leaves `out` as it was.
pub fn pull(
    source: &RegistryRef,
    out: &Path,
    platform: &PlatformChoice,
    access: &Access,
    progress: Progress,
) -> Result<PullReport> {
    let remote = Remote::connect(source, access, progress)?;
    let staging = Staging::new(out)?;
    // Pulling into a layout that already holds some of the image: what it
    // holds is checked and reused, not downloaded again.
    let existing = layout::Layout::open(out).ok();
    let seed = existing.as_ref().map(|l| &l.blobs);
    let fetched = fetch_image(&remote, source, &platform.platform, &staging.blobs, seed)?;
    let image_platform = platform_of(&fetched.config);
    // A single-platform image is not the platform named: nothing lands.
    if fetched.index_digest.is_none() {
        platform
            .check_single(&image_platform)
            .map_err(|m| Error::Usage(format!("{source}: {m}")))?;
    }
    // The artifacts about the image (SBOMs, provenance) come along; those
    // about an index it was picked from stay, with the index, behind.
    let subject = source.with_digest(fetched.manifest_ref.digest);
    let referrers = fetch_referrers(&remote, &subject, &staging.blobs)?;
    // And its signatures, under the tag `verify --key` reads them at.
    let signatures = super::sign::fetch_signatures(
        &remote,
        source,
        &fetched.manifest_ref.digest,
        &staging.blobs,
    )?;
    let mut entries = vec![Entry {
        recipe: None,
        tag: source.tag.as_deref(),
        manifest: fetched.manifest_ref,
        media_type: MediaType::from(fetched.media_type.as_str()),
        platform: Some(&image_platform),
        artifact_type: None,
    }];
    if let Some((manifest, tag)) = &signatures {
        entries.push(Entry {
            recipe: None,
            tag: Some(tag),
            manifest: *manifest,
            media_type: MediaType::ImageManifest,
            platform: None,
            artifact_type: None,
        });
    }
    layout::commit_entries_with(staging, entries, &referrers)?;
    Ok(PullReport {
        reference: source.to_string(),
        digest: fetched.manifest_ref.digest,
        media_type: fetched.media_type,
        index_digest: fetched.index_digest,
        layout: out.display().to_string(),
        tag: source.tag.clone(),
        downloaded: fetched.downloaded,
        signatures: signatures.map(|(_, tag)| tag),
        referrers: referrers
            .into_iter()
            .map(|r| PulledReferrer {
                digest: r.manifest.digest,
                artifact_type: r.artifact_type,
            })
            .collect(),
    })
}
