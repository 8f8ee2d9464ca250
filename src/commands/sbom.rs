//! `ingot sbom IMAGE`: the SPDX 2.3 SBOM of any image, from any transport,
//! opened through the one opener and made by [`crate::attest::sbom`]: the
//! same bytes a build attaches to the image it makes.

use crate::attest;
use crate::diff::Side;
use crate::error::Result;
use crate::image::PlatformChoice;
use crate::image::reference::ImageRef;
use crate::registry::{Access, Progress};

use super::source;

/// The SBOM of `image` (narrowed to `platform` when it names an index),
/// as canonical JSON, written to `out` once the image is read: a failure
/// to read it writes nothing.
pub fn sbom(
    image: &ImageRef,
    platform: &PlatformChoice,
    access: &Access,
    progress: &Progress,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let opened = source::open(image, platform, access, progress)?;
    let reference = opened.reference.to_string();
    let side = Side {
        reference: &reference,
        identity: opened.identity,
        annotations: opened.annotations(),
        config: &opened.config,
        layers: &opened.layers,
        labels: &opened.labels,
        index: opened.index.as_ref(),
        blobs: &opened.blobs,
    };
    attest::sbom::sbom_to(&side, progress, out)
}
