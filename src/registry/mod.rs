//! The client for OCI registries (distribution-spec v1.1): fetching an
//! image, pushing blobs and manifests, referrer artifacts. `ingot push`
//! and `ingot pull`, which move images between registries and layouts,
//! sit above it in [`crate::commands`].
//!
//! The protocol is ingot's own, on reqwest through [`crate::net`] (a
//! current-thread runtime per connection, limits in time and size shared
//! with the Debian archive client): everything outside `transport.rs`
//! and `remote.rs` is synchronous.
//! Every blob is verified (size and digest) as it streams, both ways: a
//! push reads the layout through [`crate::store::VerifiedReader`] and stops
//! before a bad blob's last byte leaves; a pull hashes into a
//! [`crate::store::BlobWriter`] that lands only if the bytes are what the
//! manifest promised.
//!
//! - [`auth`]: credentials from auth.json / config.json and their helpers.
//! - [`token`]: auth challenges, bearer tokens and their cache.
//! - [`transport`]: every request: authenticated, bounded, retried, and
//!   its failure in one line.
//! - [`remote`]: the distribution-spec operations over one registry.
//! - [`push`]: blobs to a registry, skipped, mounted or uploaded.
//! - [`fetch`]: an image's manifest, config and layers into a `BlobStore`
//!   (what `ingot pull`, registry bases and the commands that read
//!   `docker://` images use).
//! - [`referrers`]: artifacts that refer to an image (SBOMs, signatures).
//! - [`cache`]: the build cache shared through registries (`--cache-from`,
//!   `--cache-to`): layer entries as artifacts tagged with their keys.
//! - progress on stderr: [`crate::progress`].

pub mod auth;
pub mod cache;
pub mod fetch;
pub mod push;
pub mod referrers;
pub mod remote;
pub mod token;
pub mod transport;

pub use crate::error::RegistryError;
use crate::image::reference::{Host, RegistryRef};
use crate::net::Timeouts;
pub use crate::progress::Progress;
pub use auth::{Credential, CredentialSources};
pub use fetch::{Fetched, fetch_image};
pub use push::{PushOptions, PushReport, Tally, push_blobs};
pub use referrers::{ReferrerReport, fetch_referrers, push_referrer, referrers};
pub use remote::Remote;

/// How to reach registries: which may be spoken to in plain HTTP, where
/// credentials are, and how long the network may take.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `HOST[:PORT]`s given with `--insecure`: plain HTTP. Loopback
    /// registries are plain HTTP without being listed.
    pub insecure: Vec<Host>,
    pub credentials: CredentialSources,
    pub timeouts: Timeouts,
}

impl Access {
    /// Plain HTTP only for loopback hosts and those named with `--insecure`
    /// (as the host alone or with the reference's port).
    pub fn plain_http(&self, reference: &RegistryRef) -> bool {
        reference.is_loopback()
            || self
                .insecure
                .iter()
                .map(Host::as_str)
                .any(|h| h == reference.host || h == reference.hostname())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_and_named_hosts() {
        let access = Access {
            insecure: vec![
                "reg.lan:5000".parse().unwrap(),
                "other.lan".parse().unwrap(),
            ],
            ..Access::default()
        };
        let plain = |r: &str| access.plain_http(&r.parse().unwrap());
        assert!(plain("docker://127.0.0.1:5000/x"));
        assert!(plain("docker://localhost/x"));
        assert!(plain("docker://[::1]:1/x"));
        assert!(plain("docker://reg.lan:5000/x"));
        assert!(!plain("docker://reg.lan:5001/x"));
        assert!(plain("docker://other.lan:443/x"));
        assert!(!plain("docker://ghcr.io/x"));
        assert!(!plain("docker://128.0.0.1/x"));
    }
}
