//! `ingot diff A B`: two images from any transport, each opened through
//! the one opener, compared by the engine in [`crate::diff`]. Also the
//! entry point for a caller holding two opened images (`verify
//! --rebuild`): [`compare`].

use crate::diff::{self, Diff, Side};
use crate::error::{Error, Result};
use crate::image::PlatformChoice;
use crate::image::reference::ImageRef;
use crate::registry::{Access, Progress};

use super::source::{self, Source};

pub use crate::diff::render;

/// Opens `a` and `b` (each narrowed to `platform` when it names an index)
/// and compares them. Any failure to open or read either is
/// [`Error::Trouble`]: exit 2, as diff(1) exits on trouble, since exit 1
/// means the images differ.
pub fn diff(
    a: &ImageRef,
    b: &ImageRef,
    platform: &PlatformChoice,
    access: &Access,
    progress: &Progress,
) -> Result<Diff> {
    let run = || {
        let a = source::open(a, platform, access, progress)?;
        let b = source::open(b, platform, access, progress)?;
        compare(&a, &b, progress)
    };
    run().map_err(|e| match e {
        Error::Trouble(_) => e,
        other => Error::Trouble(Box::new(other)),
    })
}

/// Compares two opened images, `a` the old and `b` the new.
pub fn compare(a: &Source, b: &Source, progress: &Progress) -> Result<Diff> {
    let (ra, rb) = (a.reference.to_string(), b.reference.to_string());
    diff::compare(&side(a, &ra), &side(b, &rb), progress)
}

/// What the engine reads of an opened image.
fn side<'a>(source: &'a Source, reference: &'a str) -> Side<'a> {
    Side {
        reference,
        identity: source.identity,
        annotations: source.annotations(),
        config: &source.config,
        layers: &source.layers,
        labels: &source.labels,
        index: source.index.as_ref(),
        blobs: &source.blobs,
    }
}
