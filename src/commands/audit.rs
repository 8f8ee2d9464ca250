//! `ingot audit`: the seal's rules run on any image, built by ingot or not,
//! from a layout, a docker-archive or a registry, reading each layer once
//! as a stream.

use oci_spec::image::{Descriptor, ImageConfiguration};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::reference::ImageRef;
use crate::image::{Platform, annotation};
use crate::registry::{Access, Progress};
use crate::rootfs::View;
use crate::seal::SealAllow;
use crate::seal::{self, LayerLabel, Report, Scan};
use crate::store::BlobStore;

use super::source::{self, DigestOf};

/// The seal's report on one image, naming the image.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub image: String,
    pub digest: String,
    /// What `digest` is the digest of: the manifest, or for a
    /// docker-archive (which has none) the config.
    pub digest_of: DigestOf,
    #[serde(flatten)]
    pub report: Report,
}

/// Audits `image`, choosing `platform` from an index; a registry is
/// reached as `access` allows. The exceptions an ingot image declares
/// (annotation `dev.ingot.seal.allow`) are honoured and listed, so the
/// auditor sees each with its reason.
pub fn audit(
    image: &ImageRef,
    platform: &Platform,
    access: &Access,
    progress: &Progress,
) -> Result<Audit> {
    let source = source::open(image, platform, access, progress)?;
    let allow = declared_exceptions(source.annotations())?;
    let report = run(
        &source.config,
        &source.layers,
        &source.blobs,
        &allow,
        &source.labels,
    )?;
    Ok(Audit {
        image: image.to_string(),
        digest: source.identity.digest().to_string(),
        digest_of: source.identity.digest_of(),
        report,
    })
}

/// Streams every layer into a view and the content scan, then checks.
fn run(
    config: &ImageConfiguration,
    layers: &[Descriptor],
    blobs: &BlobStore,
    allow: &[SealAllow],
    labels: &[LayerLabel],
) -> Result<Report> {
    let diff_ids = crate::image::config::diff_ids(config).map_err(Error::Failed)?;
    let mut view = View::new();
    let mut scan = Scan::default();
    for (i, (desc, diff_id)) in layers.iter().zip(&diff_ids).enumerate() {
        view.apply_layer(blobs, desc, diff_id, &mut |path, data| {
            scan.visit(path, i, data)
        })?;
    }
    let inputs = seal::Inputs {
        view: &view,
        config: config.config().as_ref(),
        scan: &scan,
    };
    Ok(seal::check(&inputs, allow, labels))
}

/// The exceptions an image was sealed with, from its annotation.
fn declared_exceptions(
    annotations: Option<&std::collections::HashMap<String, String>>,
) -> Result<Vec<SealAllow>> {
    let Some(text) = annotations.and_then(|a| a.get(annotation::SEAL_ALLOW)) else {
        return Ok(Vec::new());
    };
    serde_json::from_str(text)
        .map_err(|e| Error::Failed(format!("annotation {}: {e}", annotation::SEAL_ALLOW)))
}
