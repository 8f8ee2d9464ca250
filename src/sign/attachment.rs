//! The signatures of an image, as cosign and containers/image keep them
//! (containers/image docker/docker_image_dest.go
//! `putSignaturesToSigstoreAttachments`, internal/signature/sigstore.go):
//! an OCI image manifest tagged `sha256-<hex of the image's manifest
//! digest>.sig` in the image's repository, one layer per signature. A
//! signature layer is the payload blob, of media type
//! [`SIMPLE_SIGNING`], with the base64 signature in its annotation
//! [`SIGNATURE_ANNOTATION`]; the config is an image config whose
//! `rootfs.diff_ids` are the layers' digests (the payloads are their own
//! uncompressed content).
//!
//! Signing again adds a layer, as containers/image does; a layer equal to
//! one there (media type, digest, size, annotations) is not added twice.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use oci_spec::image::{Descriptor, ImageManifest, MediaType};
use serde_json::json;

use super::SignError;
use crate::digest::Digest;
use crate::image::{canonical_json, media};
use crate::store::BlobRef;

/// cosign's `types.SimpleSigningMediaType`.
pub use crate::image::media::SIMPLE_SIGNING;
/// In a layout, a tag that names signatures, not an image.
pub use crate::image::reference::is_signature_tag;
/// cosign's `static.SignatureAnnotationKey`.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// A payload is a few hundred bytes; one claiming more than this is not
/// read.
pub const MAX_PAYLOAD: u64 = 64 << 10;
/// Signatures read from one attachment at most.
pub const MAX_SIGNATURES: usize = 64;

/// The tag of `digest`'s signatures: `sha256-<hex>.sig`.
pub fn tag_for(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// One signature as a layer: its payload's descriptor, annotated.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureLayer {
    pub payload: BlobRef,
    /// The signature, base64 as stored.
    pub signature: String,
}

impl SignatureLayer {
    /// The layer of `signature` (DER) over `payload`.
    pub fn new(payload: &[u8], signature: &[u8]) -> SignatureLayer {
        SignatureLayer {
            payload: BlobRef {
                digest: Digest::of(payload),
                size: payload.len() as u64,
            },
            signature: STANDARD.encode(signature),
        }
    }

    /// The signature's bytes.
    pub fn signature_bytes(&self) -> Result<Vec<u8>, SignError> {
        STANDARD
            .decode(self.signature.trim())
            .map_err(|_| SignError::Format("the signature annotation is not base64".into()))
    }

    fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(
            MediaType::Other(SIMPLE_SIGNING.into()),
            self.payload.size,
            self.payload.digest.to_oci(),
        );
        d.set_annotations(Some(
            [(SIGNATURE_ANNOTATION.to_string(), self.signature.clone())].into(),
        ));
        d
    }
}

/// The `.sig` manifest's layers (signatures, and whatever else another
/// tool put there, kept as it is).
#[derive(Debug, Clone, Default)]
pub struct Attachment {
    layers: Vec<Descriptor>,
}

impl Attachment {
    /// Parses a `.sig` manifest (at most a manifest's size: the caller
    /// read it bounded).
    pub fn parse(bytes: &[u8]) -> Result<Attachment, SignError> {
        let manifest: ImageManifest = serde_json::from_slice(bytes).map_err(|e| {
            SignError::Format(format!(
                "the signature manifest is not an image manifest: {e}"
            ))
        })?;
        Ok(Attachment {
            layers: manifest.layers().clone(),
        })
    }

    /// Every layer, signatures or not: what a copy must carry.
    pub fn layers(&self) -> &[Descriptor] {
        &self.layers
    }

    /// The signature layers, at most [`MAX_SIGNATURES`]: those of media
    /// type [`SIMPLE_SIGNING`] with a signature annotation and a sha256
    /// digest. Others (certificates, bundles of other tools) are skipped.
    pub fn signatures(&self) -> Vec<SignatureLayer> {
        self.layers
            .iter()
            .filter(|d| d.media_type().to_string() == SIMPLE_SIGNING)
            .filter_map(|d| {
                let signature = d.annotations().as_ref()?.get(SIGNATURE_ANNOTATION)?.clone();
                let digest = Digest::try_from(d.digest()).ok()?;
                Some(SignatureLayer {
                    payload: BlobRef {
                        digest,
                        size: d.size(),
                    },
                    signature,
                })
            })
            .take(MAX_SIGNATURES)
            .collect()
    }

    /// Adds a layer unless an equal one is there; whether it was added.
    pub fn add(&mut self, layer: &SignatureLayer) -> bool {
        self.add_descriptor(layer.descriptor())
    }

    /// Adds another attachment's layers that this one lacks; how many.
    pub fn merge(&mut self, other: &Attachment) -> usize {
        other
            .layers
            .iter()
            .filter(|d| self.add_descriptor((*d).clone()))
            .count()
    }

    fn add_descriptor(&mut self, d: Descriptor) -> bool {
        let same = |a: &Descriptor| {
            a.media_type() == d.media_type()
                && a.digest() == d.digest()
                && a.size() == d.size()
                && a.annotations().as_ref().unwrap_or(&Default::default())
                    == d.annotations().as_ref().unwrap_or(&Default::default())
        };
        if self.layers.iter().any(same) {
            return false;
        }
        self.layers.push(d);
        true
    }

    /// The config: an image config whose diff_ids are the layers'
    /// digests, as containers/image writes it.
    pub fn config(&self) -> Vec<u8> {
        let diff_ids: Vec<String> = self.layers.iter().map(|d| d.digest().to_string()).collect();
        let config = json!({
            "architecture": "",
            "os": "",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        canonical_json(&config).unwrap_or_default()
    }

    /// The manifest, with `config` (the blob of [`Attachment::config`]).
    pub fn manifest(&self, config: &BlobRef) -> Result<Vec<u8>, SignError> {
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": media::MANIFEST,
            "config": {
                "mediaType": media::CONFIG,
                "digest": config.digest.to_string(),
                "size": config.size,
            },
            "layers": self.layers,
        });
        canonical_json(&manifest)
            .map_err(|e| SignError::Format(format!("encoding the signature manifest: {e}")))
    }

    /// The config and manifest bytes, ready to store.
    pub fn encode(&self) -> Result<Encoded, SignError> {
        let config = self.config();
        let config_ref = BlobRef {
            digest: Digest::of(&config),
            size: config.len() as u64,
        };
        let manifest = self.manifest(&config_ref)?;
        Ok(Encoded { config, manifest })
    }
}

/// An attachment's two documents.
pub struct Encoded {
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_layers_added_once() {
        let one = SignatureLayer::new(b"payload one", b"sig1");
        let two = SignatureLayer::new(b"payload two", b"sig2");
        let mut a = Attachment::default();
        assert!(a.add(&one));
        assert!(!a.add(&one));
        assert!(a.add(&two));
        let encoded = a.encode().unwrap();
        let back = Attachment::parse(&encoded.manifest).unwrap();
        assert_eq!(back.signatures(), vec![one.clone(), two]);
        assert_eq!(back.signatures()[0].signature_bytes().unwrap(), b"sig1");

        let m: serde_json::Value = serde_json::from_slice(&encoded.manifest).unwrap();
        assert_eq!(m["mediaType"], media::MANIFEST);
        assert_eq!(m["config"]["mediaType"], media::CONFIG);
        assert_eq!(m["layers"][0]["mediaType"], SIMPLE_SIGNING);
        assert_eq!(
            m["layers"][0]["annotations"][SIGNATURE_ANNOTATION],
            STANDARD.encode(b"sig1")
        );
        let c: serde_json::Value = serde_json::from_slice(&encoded.config).unwrap();
        assert_eq!(c["rootfs"]["diff_ids"][0], one.payload.digest.to_string());
        assert_eq!(c["rootfs"]["type"], "layers");
    }

    #[test]
    fn merging_keeps_both_sides() {
        let mut ours = Attachment::default();
        ours.add(&SignatureLayer::new(b"a", b"1"));
        let mut theirs = Attachment::default();
        theirs.add(&SignatureLayer::new(b"a", b"1"));
        theirs.add(&SignatureLayer::new(b"b", b"2"));
        assert_eq!(ours.merge(&theirs), 1);
        assert_eq!(ours.signatures().len(), 2);
    }

    #[test]
    fn signature_tags() {
        let d = Digest::of(b"x");
        assert!(is_signature_tag(&tag_for(&d)));
        assert!(!is_signature_tag("1.2.0"));
        assert!(!is_signature_tag(&format!("sha256-{}", d.hex())));
    }
}
