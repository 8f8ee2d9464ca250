//! What an image says about itself to the supply chain (issue 17): an
//! SPDX 2.3 SBOM of what it holds ([`sbom`]), made from any opened image,
//! and an in-toto statement of SLSA provenance of how a build made it
//! ([`provenance`]), made from the build's own inputs. Both are canonical
//! JSON with nothing of the host or the clock in them, so the same image
//! (the same build) always gives the same bytes; the pipeline attaches
//! them to the image as OCI referrers.

pub mod files;
pub mod provenance;
pub mod sbom;
pub mod verification;

/// The URI under which ingot names what it defines: the SBOM namespaces,
/// the build type and the builder. Identifiers, not addresses: nothing
/// needs to be served there.
pub const URI_BASE: &str = "https://ingot.dev";

/// ingot's version, as the builder and the SBOM's creator name it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
