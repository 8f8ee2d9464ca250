//! Signatures in the formats skopeo, podman, CRI-O (containers/image) and
//! cosign read: this module owns the key files, the "simple signing"
//! payload, the `sha256-<hex>.sig` manifest that carries signatures beside
//! an image, and DSSE envelopes. It does no I/O: `ingot keygen`, `sign`
//! and `verify --key` ([`crate::commands::sign`]) read and write files and
//! registries around it.
//!
//! - [`keys`]: ECDSA P-256 key pairs in cosign's files (an scrypt and
//!   NaCl-secretbox sealed PKCS#8 key; a PKIX public key).
//! - [`payload`]: the simple-signing payload, the claim a signature makes:
//!   this manifest digest is the image named this.
//! - [`attachment`]: the `.sig` manifest, one layer per signature.
//! - [`dsse`]: DSSE envelopes (for provenance), signed with the same keys.
//! - [`attestation`]: provenance signed: a DSSE envelope of the in-toto
//!   statement, as a referrer beside it, and the check of those envelopes.

pub mod attachment;
pub mod attestation;
pub mod dsse;
pub mod keys;
pub mod payload;

pub use attachment::{Attachment, SignatureLayer};
pub use keys::{PublicKey, SigningKey};
pub use payload::{Claims, Identity};

/// What can be wrong with a key, a payload or a signature. Each says what
/// was found; the caller names the file or image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    /// A key file is not one ingot (or cosign) reads.
    #[error("{0}")]
    Key(String),
    /// The passphrase does not open the private key.
    #[error(
        "the passphrase does not decrypt the private key (wrong passphrase, or a damaged key file)"
    )]
    WrongPassphrase,
    /// A signature does not verify under the key: another key made it, or
    /// the payload or the signature was altered.
    #[error(
        "the signature does not verify under the public key (another key signed it, or the payload was altered)"
    )]
    BadSignature,
    /// A payload or an attachment is not what the format says.
    #[error("{0}")]
    Format(String),
}

impl From<SignError> for crate::error::Error {
    fn from(e: SignError) -> crate::error::Error {
        match e {
            SignError::BadSignature => crate::error::Error::Unverified(e.to_string()),
            _ => crate::error::Error::Failed(e.to_string()),
        }
    }
}
