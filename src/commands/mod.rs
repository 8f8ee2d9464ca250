//! What the commands that read images do, above the library they use: each
//! module owns one command's work and its report, and the CLI only parses
//! and prints.
//!
//! - [`audit`]: the seal's rules run on any image.
//! - [`bind`]: an image's params bound to one environment's values.
//! - [`diff`]: two images compared, from any transports.
//! - [`export`]: an image as a `docker save` tarball.
//! - [`inspect`]: an image's manifest, config and params.
//! - [`outdated`]: each recipe's lock against what resolving gives now;
//!   `lock --update` moves it.
//! - [`pull`] and [`push`]: an image between a registry and a layout.
//! - [`rebuild`]: `verify --rebuild`, an image rebuilt from its recipe
//!   with the settings it records, and compared.
//! - [`sbom`]: an image's SPDX SBOM, from any transport.
//! - [`sign`]: `keygen`, `sign` and `verify --key`: signatures that
//!   skopeo, podman and cosign read, in registries and layouts.
//! - [`source`]: the one opener of an image, from a layout, a
//!   docker-archive or a registry, for the four above.
//! - [`validate`]: recipes and their locks checked offline, without
//!   building.
//! - [`verify`]: an fsck of an OCI layout.

pub mod audit;
pub mod bind;
pub mod diff;
pub mod export;
pub mod inspect;
pub mod outdated;
pub mod pull;
pub mod push;
pub mod rebase;
pub mod rebuild;
pub mod sbom;
pub mod sign;
pub mod source;
pub mod validate;
pub mod verify;
