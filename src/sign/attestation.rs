//! Signed provenance: the in-toto statement a build attaches to its image
//! (an OCI referrer of artifactType [`IN_TOTO`]), signed as a DSSE
//! envelope ([`super::dsse`]) and attached beside it as another referrer
//! of the same image, of artifactType and layer media type [`ENVELOPE`].
//!
//! The envelope is what cosign's `attest` writes (pkg/types
//! `DssePayloadType`, `IntotoPayloadType`; sigstore's `dsse.WrapSigner`):
//! payloadType [`IN_TOTO`], the statement's bytes as the payload, one
//! signature with an empty `keyid`. Its layer media type is the one
//! cosign's attestation spec (specs/ATTESTATION_SPEC.md) gives a DSSE
//! layer. The manifest's `artifactType` is that media type too, not the
//! in-toto one cosign's unused `WriteAttestationsReferrer` would give it:
//! the unsigned statement already has that type, and a reader that asks a
//! registry for `application/vnd.in-toto+json` expects a statement, not
//! an envelope. A `predicateType` annotation says what the statement is,
//! as cosign annotates its attestations.
//!
//! Checking ([`check`]): every envelope must verify under the key, carry
//! one of the statements attached to the image byte for byte, and that
//! statement must name the image among its subjects. An image without
//! envelopes is reported as such, not refused.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::SignError;
use super::dsse::{self, Envelope};
use super::keys::{PublicKey, SigningKey};
use crate::digest::Digest;
use crate::image::artifact::Artifact;
use crate::image::canonical_json;

/// The statement's media type, its referrer's `artifactType` and the
/// envelope's `payloadType`.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
/// A DSSE envelope: the `artifactType` and layer media type of a signed
/// statement's referrer.
pub const ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The annotation that names the statement's predicate, as cosign's.
pub const PREDICATE_TYPE_ANNOTATION: &str = "predicateType";
/// The largest statement or envelope read (a provenance lists every
/// package; a few MiB at most).
pub const MAX_DOCUMENT: u64 = 16 << 20;

/// The referrer that signs `statement` with `key`.
pub fn envelope_artifact(key: &SigningKey, statement: &[u8]) -> Result<Artifact, SignError> {
    // cosign writes an empty keyid: the key is the verifier's to choose.
    let envelope = dsse::sign(key, "", IN_TOTO, statement);
    let document = canonical_json(&envelope)
        .map_err(|e| SignError::Format(format!("encoding the DSSE envelope: {e}")))?;
    let mut annotations = HashMap::new();
    if let Some(predicate) = Claims::parse(statement).ok().and_then(|c| c.predicate_type) {
        annotations.insert(PREDICATE_TYPE_ANNOTATION.to_string(), predicate);
    }
    Ok(Artifact {
        artifact_type: ENVELOPE.into(),
        media_type: ENVELOPE.into(),
        document,
        annotations,
    })
}

/// One attached document: its referrer's manifest digest and its bytes.
#[derive(Debug, Clone)]
pub struct Document {
    pub manifest: Digest,
    pub bytes: Vec<u8>,
}

/// What [`check`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProvenanceReport {
    /// In-toto statements attached to the image.
    pub statements: usize,
    /// DSSE envelopes attached, every one verified.
    pub envelopes: usize,
    /// Statements that an envelope signs.
    pub signed: usize,
}

/// The statement fields a check reads: the subjects' SHA-256 digests and
/// the predicate type.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: Option<String>,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: HashMap<String, String>,
}

impl Claims {
    fn parse(statement: &[u8]) -> Result<Claims, SignError> {
        serde_json::from_slice(statement)
            .map_err(|e| SignError::Format(format!("the statement is not in-toto JSON: {e}")))
    }

    fn names(&self, image: &Digest) -> bool {
        self.subject
            .iter()
            .any(|s| s.digest.get("sha256").is_some_and(|h| *h == image.hex()))
    }
}

/// Checks the `envelopes` attached to `image` against its `statements`
/// under `key`: each must verify, sign one of the statements, and that
/// statement must name `image`. The reason is one line naming the
/// envelope's referrer.
pub fn check(
    image: &Digest,
    statements: &[Document],
    envelopes: &[Document],
    key: &PublicKey,
) -> Result<ProvenanceReport, String> {
    let mut signed = vec![false; statements.len()];
    for env in envelopes {
        let fail = |why: String| format!("provenance envelope {}: {why}", env.manifest);
        let envelope: Envelope = serde_json::from_slice(&env.bytes)
            .map_err(|e| fail(format!("not a DSSE envelope: {e}")))?;
        let payload = dsse::verify(&envelope, key, IN_TOTO).map_err(|e| fail(e.to_string()))?;
        let Some(n) = statements.iter().position(|s| s.bytes == payload) else {
            return Err(fail(format!(
                "it signs a statement (sha256:{}) that is not the provenance attached to the image",
                Digest::of(&payload).hex()
            )));
        };
        let claims = Claims::parse(&payload).map_err(|e| fail(e.to_string()))?;
        if !claims.names(image) {
            return Err(fail(format!("the statement it signs is not about {image}")));
        }
        signed[n] = true;
    }
    Ok(ProvenanceReport {
        statements: statements.len(),
        envelopes: envelopes.len(),
        signed: signed.iter().filter(|s| **s).count(),
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    fn statement(image: &Digest) -> Vec<u8> {
        format!(
            r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"hello:1","digest":{{"sha256":"{}"}}}}],"predicateType":"https://slsa.dev/provenance/v1","predicate":{{}}}}"#,
            image.hex()
        )
        .into_bytes()
    }

    fn doc(bytes: Vec<u8>) -> Document {
        Document {
            manifest: Digest::of(&bytes),
            bytes,
        }
    }

    #[test]
    fn an_envelope_is_cosigns_shape_and_checks() {
        let image = Digest::of(b"image");
        let key = SigningKey::generate();
        let s = statement(&image);
        let a = envelope_artifact(&key, &s).unwrap();
        assert_eq!(
            (a.artifact_type.as_str(), a.media_type.as_str()),
            (ENVELOPE, ENVELOPE)
        );
        assert_eq!(
            a.annotations[PREDICATE_TYPE_ANNOTATION],
            "https://slsa.dev/provenance/v1"
        );
        let v: serde_json::Value = serde_json::from_slice(&a.document).unwrap();
        assert_eq!(v["payloadType"], IN_TOTO);
        assert_eq!(v["signatures"][0]["keyid"], "");
        assert_eq!(STANDARD.decode(v["payload"].as_str().unwrap()).unwrap(), s);
        // RFC 6979: the same key and statement, the same envelope.
        assert_eq!(envelope_artifact(&key, &s).unwrap(), a);

        let report = check(
            &image,
            &[doc(s.clone())],
            &[doc(a.document.clone())],
            &key.public(),
        );
        assert_eq!(
            report,
            Ok(ProvenanceReport {
                statements: 1,
                envelopes: 1,
                signed: 1
            })
        );
        // None attached: reported, not refused.
        assert_eq!(
            check(&image, &[doc(s)], &[], &key.public()).unwrap().signed,
            0
        );
    }

    #[test]
    fn another_key_statement_or_subject_is_refused() {
        let image = Digest::of(b"image");
        let key = SigningKey::generate();
        let s = statement(&image);
        let env = doc(envelope_artifact(&key, &s).unwrap().document);

        let other = SigningKey::generate().public();
        let err = check(
            &image,
            &[doc(s.clone())],
            std::slice::from_ref(&env),
            &other,
        )
        .unwrap_err();
        assert!(
            err.contains("does not verify under the public key"),
            "{err}"
        );
        assert!(err.contains(&env.manifest.to_string()), "{err}");

        let replaced = statement(&Digest::of(b"another image"));
        let err = check(
            &image,
            &[doc(replaced)],
            std::slice::from_ref(&env),
            &key.public(),
        )
        .unwrap_err();
        assert!(err.contains("not the provenance attached"), "{err}");

        let elsewhere = Digest::of(b"elsewhere");
        let err = check(&elsewhere, &[doc(s)], &[env], &key.public()).unwrap_err();
        assert!(err.contains(&format!("not about {elsewhere}")), "{err}");

        let err = check(&image, &[], &[doc(b"{}".to_vec())], &key.public()).unwrap_err();
        assert!(err.contains("not a DSSE envelope"), "{err}");
    }
}
