//! DSSE envelopes (secure-systems-lab/dsse, protocol.md and envelope.md),
//! signed with the keys of [`super::keys`]: how provenance is signed.
//!
//! The signature is over PAE(payloadType, payload) =
//! `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, lengths in ASCII
//! decimal; ECDSA-SHA256, ASN.1 DER as sigstore writes it. The envelope
//! is `{"payload": B64, "payloadType": TYPE, "signatures": [{"keyid", "sig"}]}`;
//! standard base64 is written, and standard or URL-safe read, as the
//! protocol requires.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use serde::{Deserialize, Serialize};

use super::SignError;
use super::keys::{PublicKey, SigningKey};

/// The pre-authentication encoding of `payload_type` and `payload`.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// A DSSE envelope, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// base64 of the serialized body.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// An unauthenticated hint; never used to decide anything.
    #[serde(default)]
    pub keyid: String,
    /// base64 of the signature.
    pub sig: String,
}

/// Signs `payload` of type `payload_type` with `key`; `keyid` is the hint
/// stored beside the signature (may be empty).
pub fn sign(key: &SigningKey, keyid: &str, payload_type: &str, payload: &[u8]) -> Envelope {
    let sig = key.sign(&pae(payload_type, payload));
    Envelope {
        payload: STANDARD.encode(payload),
        payload_type: payload_type.to_string(),
        signatures: vec![EnvelopeSignature {
            keyid: keyid.to_string(),
            sig: STANDARD.encode(sig),
        }],
    }
}

fn decode(what: &str, s: &str) -> Result<Vec<u8>, SignError> {
    STANDARD
        .decode(s)
        .or_else(|_| URL_SAFE.decode(s))
        .map_err(|_| SignError::Format(format!("the envelope's {what} is not base64")))
}

/// Checks that one of the envelope's signatures verifies under `key`, and
/// that its type is `payload_type`; returns the payload's bytes.
pub fn verify(
    envelope: &Envelope,
    key: &PublicKey,
    payload_type: &str,
) -> Result<Vec<u8>, SignError> {
    let payload = decode("payload", &envelope.payload)?;
    let message = pae(&envelope.payload_type, &payload);
    let mut verified = false;
    for s in &envelope.signatures {
        if let Ok(sig) = decode("signature", &s.sig)
            && key.verify(&message, &sig).is_ok()
        {
            verified = true;
            break;
        }
    }
    if !verified {
        return Err(SignError::BadSignature);
    }
    if envelope.payload_type != payload_type {
        return Err(SignError::Format(format!(
            "the envelope's payload type is {:?}, not {payload_type:?}",
            envelope.payload_type
        )));
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// protocol.md, "Test Vectors".
    #[test]
    fn pae_is_the_specs_example() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    /// The spec's key and signature: ECDSA P-256, SHA-256, RFC 6979, the
    /// signature as raw r || s. Our DER signature of the same PAE is that
    /// signature, re-encoded.
    #[test]
    fn signing_the_specs_example_gives_the_specs_signature() {
        use p256::ecdsa::Signature;
        let d_dec = "97358161215184420915383655311931858321456579547487070936769975997791359926199";
        let d_bytes = decimal_to_be32(d_dec);
        let key = SigningKey::from_scalar_bytes(&d_bytes).unwrap();
        let envelope = sign(&key, "", "http://example.com/HelloWorld", b"hello world");
        assert_eq!(envelope.payload, "aGVsbG8gd29ybGQ=");
        let der = STANDARD.decode(&envelope.signatures[0].sig).unwrap();
        let raw = Signature::from_der(&der).unwrap();
        assert_eq!(
            STANDARD.encode(raw.to_bytes()),
            "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="
        );
        assert_eq!(
            verify(&envelope, &key.public(), "http://example.com/HelloWorld").unwrap(),
            b"hello world"
        );
    }

    #[test]
    fn a_changed_type_payload_or_key_is_refused() {
        let key = SigningKey::generate();
        let env = sign(&key, "k1", "application/vnd.in-toto+json", b"{}");
        let t = "application/vnd.in-toto+json";
        assert!(verify(&env, &key.public(), t).is_ok());

        let mut retyped = env.clone();
        retyped.payload_type = "application/json".into();
        assert_eq!(
            verify(&retyped, &key.public(), t),
            Err(SignError::BadSignature)
        );

        let mut altered = env.clone();
        altered.payload = STANDARD.encode(b"{ }");
        assert_eq!(
            verify(&altered, &key.public(), t),
            Err(SignError::BadSignature)
        );

        let other = SigningKey::generate();
        assert_eq!(
            verify(&env, &other.public(), t),
            Err(SignError::BadSignature)
        );

        // Signed as another type: verified, then refused for its type.
        let env2 = sign(&key, "", "text/plain", b"x");
        assert!(matches!(
            verify(&env2, &key.public(), t),
            Err(SignError::Format(_))
        ));

        let json = serde_json::to_string(&env).unwrap();
        assert!(json.contains("\"payloadType\":\"application/vnd.in-toto+json\""));
        assert!(json.contains("\"keyid\":\"k1\""));
    }

    /// A decimal number below 2^256 as 32 big-endian bytes.
    fn decimal_to_be32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for c in s.bytes() {
            let mut carry = u32::from(c - b'0');
            for b in out.iter_mut().rev() {
                let v = u32::from(*b) * 10 + carry;
                *b = (v & 0xff) as u8;
                carry = v >> 8;
            }
            assert_eq!(carry, 0);
        }
        out
    }
}
