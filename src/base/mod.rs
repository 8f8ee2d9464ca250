//! Base references and their resolution into a verified base image
//! (design.md, "Base references").
//!
//! Every kind of base resolves to the same thing, a [`BaseImage`]: a config,
//! the layer blobs (already in the output's blob store) and an identity.
//! New kinds slot in as a `BaseRef` variant plus a resolver module.

pub mod docker_archive;
pub mod oci;
pub mod stemcell;

use crate::digest::Digest;
use crate::image::Platform;
pub use crate::recipe::schema::BaseRef;

/// A resolved base: what a recipe builds on.
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// The fully pinned reference (`stemcell:static@1.0.0`), for annotations.
    pub name: String,
    /// Manifest digest, where the base has a manifest.
    pub manifest_digest: Option<Digest>,
    /// Config digest: the base's identity (it covers every diff_id). None
    /// for scratch.
    pub config_digest: Option<Digest>,
    /// The base's config, from which the recipe inherits.
    pub config: oci_spec::image::ImageConfiguration,
    /// Layer descriptors, bottom first; their blobs are in the build's store.
    pub layers: Vec<oci_spec::image::Descriptor>,
    pub platform: Platform,
}
