//! Debian archives as a recipe names them, and the packages a lock pins
//! from them (issue 13, "Recipe").
//!
//! A pin records content, not hosts: the archive is named by the URL the
//! recipe (or its stemcell) gives, and the package by its path in that
//! archive, its size and its SHA-256. A mirror of the same archive serves
//! the same paths, so it never changes what is pinned.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// One package of a resolved closure, as `ingot.lock` records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagePin {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The archive's URL as the recipe writes it (no trailing `/`).
    pub archive: String,
    /// The `.deb`'s path in the archive (`Filename:` in `Packages`).
    pub path: String,
    pub size: u64,
    pub sha256: Digest,
}

/// An archive to resolve packages from: where it is, which suites and
/// components, and the OpenPGP keys its `InRelease` must be signed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSource {
    /// The URL as written (no trailing `/`); pins name the archive by it.
    pub url: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// The keyring's bytes (binary or armored OpenPGP public keys).
    pub keyring: Vec<u8>,
    /// Where the keyring came from, for messages.
    pub keyring_name: String,
}
