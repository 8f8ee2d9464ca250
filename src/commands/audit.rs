//! `ingot audit`: the seal's rules run on any image, built by ingot or not,
//! reading each layer once as a stream.

use oci_spec::image::{Descriptor, ImageConfiguration};

use crate::base::docker_archive;
use crate::error::{Error, Result};
use crate::image::reference::ImageRef;
use crate::image::{Platform, annotation};
use crate::rootfs::View;
use crate::seal::SealAllow;
use crate::seal::{self, LayerLabel, Report, Scan};
use crate::store::BlobStore;
use crate::store::layout::open_image;

/// Audits `image`, choosing `platform` from an index. The exceptions an
/// ingot image declares (annotation `dev.ingot.seal.allow`) are honoured
/// and listed, so the auditor sees each with its reason.
pub fn audit(image: &ImageRef, platform: &Platform) -> Result<Report> {
    match image {
        ImageRef::Oci(reference) => {
            let found = open_image(reference, &reference.path, platform)?;
            let allow = declared_exceptions(found.manifest.annotations().as_ref())?;
            let labels: Vec<LayerLabel> = found
                .manifest
                .layers()
                .iter()
                .enumerate()
                .map(|(i, d)| label(i, d))
                .collect();
            run(
                &found.config,
                found.manifest.layers(),
                &found.layout.blobs,
                &allow,
                &labels,
            )
        }
        ImageRef::DockerArchive(path) => {
            // The archive's layers are checked and re-encoded into a
            // throwaway store, then read like any other.
            let scratch = tempfile::tempdir().map_err(|e| Error::Io {
                context: "creating a temp directory".into(),
                source: e,
            })?;
            let blobs = BlobStore::open(scratch.path()).map_err(|e| Error::Io {
                context: "creating a temp store".into(),
                source: e,
            })?;
            let base = docker_archive::load(path, &blobs)?;
            // The re-encoded blobs exist only here: name layers by what the
            // archive holds, their uncompressed digests.
            let diff_ids = crate::image::config::diff_ids(&base.config).map_err(Error::Failed)?;
            let labels: Vec<LayerLabel> = diff_ids
                .iter()
                .enumerate()
                .map(|(i, d)| LayerLabel {
                    digest: d.to_string(),
                    name: format!("#{}", i + 1),
                })
                .collect();
            run(&base.config, &base.layers, &blobs, &[], &labels)
        }
        ImageRef::Docker(r) => Err(Error::Usage(format!(
            "audit reads local images; pull {r} first: ingot pull {r} -o DIR"
        ))),
    }
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

/// A layer's recipe name where ingot recorded one, else its position.
fn label(index: usize, desc: &Descriptor) -> LayerLabel {
    let name = desc
        .annotations()
        .as_ref()
        .and_then(|a| a.get(annotation::LAYER_NAME))
        .cloned()
        .unwrap_or_else(|| format!("#{}", index + 1));
    LayerLabel {
        digest: desc.digest().to_string(),
        name,
    }
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
