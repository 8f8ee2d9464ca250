//! What names an image in reports: its manifest's digest, or for an
//! image without a manifest (a docker-archive) its config's.

use serde::Serialize;

use crate::digest::Digest;

/// What identifies an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// Its manifest's digest, what layouts and registries name it by.
    Manifest(Digest),
    /// Its config's digest: a docker-archive has no manifest, and the
    /// config covers every layer through its diff_ids (it is the image ID
    /// `docker load` gives it).
    Config(Digest),
}

impl Identity {
    pub fn digest(&self) -> Digest {
        match self {
            Identity::Manifest(d) | Identity::Config(d) => *d,
        }
    }

    /// What the digest is the digest of, for reports: `manifest` or `config`.
    pub fn digest_of(&self) -> DigestOf {
        match self {
            Identity::Manifest(_) => DigestOf::Manifest,
            Identity::Config(_) => DigestOf::Config,
        }
    }
}

/// What a report's `digest` is the digest of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DigestOf {
    Manifest,
    Config,
}
