//! ECDSA P-256 key pairs in cosign's files, which containers/image reads
//! too (sigstore/sigstore pkg/cryptoutils, containers/image
//! signature/sigstore/copied.go):
//!
//! - the private key: a PEM block `ENCRYPTED COSIGN PRIVATE KEY` (or
//!   `ENCRYPTED SIGSTORE PRIVATE KEY`, cosign's newer name, read too)
//!   whose body is go-securesystemslib's `encrypted` JSON:
//!   `{"kdf":{"name":"scrypt","params":{"N":…,"r":8,"p":1},"salt":B64},
//!   "cipher":{"name":"nacl/secretbox","nonce":B64},"ciphertext":B64}`,
//!   the key scrypt(passphrase, salt) of 32 bytes, the plaintext the PKCS#8
//!   DER of the key, sealed by XSalsa20-Poly1305 (tag first, as NaCl);
//! - the public key: a PEM block `PUBLIC KEY` (PKIX SubjectPublicKeyInfo).
//!
//! Signatures are ECDSA over SHA-256 with RFC 6979 nonces, ASN.1 DER.
//!
//! ingot writes the older `COSIGN` label: skopeo before 1.13
//! (containers/image before 5.25) reads no other, every cosign reads both,
//! and containers/image's own key generator writes it for that reason.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{DerSignature, SigningKey as EcSigningKey, VerifyingKey};
use p256::pkcs8::der::pem::{self, LineEnding};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};

use super::SignError;

/// The label ingot writes (see the module header).
pub const PRIVATE_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// cosign's newer label, read as well.
pub const SIGSTORE_PRIVATE_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
pub const PUBLIC_LABEL: &str = "PUBLIC KEY";

/// scrypt's cost as ingot writes it: N = 2^15, r = 8, p = 1, the
/// parameters every containers/image and cosign accepts.
const WRITE_LOG_N: u8 = 15;
/// The parameter sets go-securesystemslib accepts (N = 2^15, 2^16, 2^17;
/// r = 8, p = 1); any other is refused before scrypt runs, so a key file
/// cannot ask for unbounded memory or time.
const READ_LOG_N: [u8; 3] = [15, 16, 17];
const SALT_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// A key file larger than this is not a key.
pub const MAX_KEY_FILE: u64 = 64 << 10;

/// An ECDSA P-256 private key.
pub struct SigningKey(EcSigningKey);

/// An ECDSA P-256 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    name: String,
    params: KdfParams,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cipher {
    name: String,
    nonce: String,
}

impl SigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> SigningKey {
        SigningKey(EcSigningKey::random(&mut OsRng))
    }

    /// The key of a known scalar (big-endian): for test vectors.
    #[cfg(test)]
    pub(crate) fn from_scalar_bytes(bytes: &[u8; 32]) -> Result<SigningKey, SignError> {
        EcSigningKey::from_slice(bytes)
            .map(SigningKey)
            .map_err(|e| SignError::Key(format!("not a P-256 scalar: {e}")))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(*self.0.verifying_key())
    }

    /// ECDSA-SHA256 of `message`, ASN.1 DER.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: DerSignature = self.0.sign(message);
        signature.as_bytes().to_vec()
    }

    /// The private key file: PKCS#8 sealed under `passphrase`, with a
    /// fresh salt and nonce.
    pub fn to_encrypted_pem(&self, passphrase: &[u8]) -> Result<String, SignError> {
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut salt);
        OsRng.fill_bytes(&mut nonce);
        self.seal(passphrase, &salt, &nonce)
    }

    fn seal(&self, passphrase: &[u8], salt: &[u8], nonce: &[u8]) -> Result<String, SignError> {
        let der = self
            .0
            .to_pkcs8_der()
            .map_err(|e| SignError::Key(format!("encoding the private key: {e}")))?;
        let key = derive(passphrase, salt, WRITE_LOG_N)?;
        let ciphertext = XSalsa20Poly1305::new(&key)
            .encrypt(Nonce::from_slice(nonce), der.as_bytes())
            .map_err(|_| SignError::Key("sealing the private key".into()))?;
        let sealed = Sealed {
            kdf: Kdf {
                name: "scrypt".into(),
                params: KdfParams {
                    n: 1 << WRITE_LOG_N,
                    r: 8,
                    p: 1,
                },
                salt: STANDARD.encode(salt),
            },
            cipher: Cipher {
                name: "nacl/secretbox".into(),
                nonce: STANDARD.encode(nonce),
            },
            ciphertext: STANDARD.encode(ciphertext),
        };
        let json = serde_json::to_vec(&sealed)
            .map_err(|e| SignError::Key(format!("encoding the sealed key: {e}")))?;
        pem::encode_string(PRIVATE_LABEL, LineEnding::LF, &json)
            .map_err(|e| SignError::Key(format!("encoding the key as PEM: {e}")))
    }

    /// Opens a private key file (either label) with `passphrase`.
    pub fn from_encrypted_pem(text: &[u8], passphrase: &[u8]) -> Result<SigningKey, SignError> {
        let (label, body) = pem::decode_vec(text)
            .map_err(|e| SignError::Key(format!("not a PEM private key: {e}")))?;
        if label != PRIVATE_LABEL && label != SIGSTORE_PRIVATE_LABEL {
            return Err(SignError::Key(format!(
                "a PEM {label:?} block, not an {SIGSTORE_PRIVATE_LABEL:?} (or {PRIVATE_LABEL:?}) one"
            )));
        }
        let bad = |what: &str| SignError::Key(format!("the encrypted key's {what}"));
        let sealed: Sealed = serde_json::from_slice(&body).map_err(|e| {
            SignError::Key(format!("the encrypted key is not sigstore's JSON: {e}"))
        })?;
        if sealed.kdf.name != "scrypt" {
            return Err(bad(&format!("kdf {:?} is not scrypt", sealed.kdf.name)));
        }
        if sealed.cipher.name != "nacl/secretbox" {
            return Err(bad(&format!(
                "cipher {:?} is not nacl/secretbox",
                sealed.cipher.name
            )));
        }
        let KdfParams { n, r, p } = sealed.kdf.params;
        let log_n = READ_LOG_N
            .into_iter()
            .find(|l| 1u64 << l == n && r == 8 && p == 1)
            .ok_or_else(|| {
                bad(&format!(
                    "scrypt parameters N={n} r={r} p={p} are not accepted"
                ))
            })?;
        let salt = STANDARD
            .decode(&sealed.kdf.salt)
            .map_err(|_| bad("salt is not base64"))?;
        let nonce = STANDARD
            .decode(&sealed.cipher.nonce)
            .map_err(|_| bad("nonce is not base64"))?;
        if nonce.len() != NONCE_LEN {
            return Err(bad(&format!(
                "nonce has {} bytes, not {NONCE_LEN}",
                nonce.len()
            )));
        }
        let ciphertext = STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|_| bad("ciphertext is not base64"))?;
        let key = derive(passphrase, &salt, log_n)?;
        let der = XSalsa20Poly1305::new(&key)
            .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
            .map_err(|_| SignError::WrongPassphrase)?;
        let key = EcSigningKey::from_pkcs8_der(&der).map_err(|e| {
            SignError::Key(format!(
                "the decrypted key is not an ECDSA P-256 PKCS#8 key: {e}"
            ))
        })?;
        Ok(SigningKey(key))
    }
}

/// scrypt(passphrase, salt) → the 32-byte secretbox key.
fn derive(passphrase: &[u8], salt: &[u8], log_n: u8) -> Result<Key, SignError> {
    let params = scrypt::Params::new(log_n, 8, 1, 32)
        .map_err(|e| SignError::Key(format!("scrypt parameters: {e}")))?;
    let mut key = Key::default();
    scrypt::scrypt(passphrase, salt, &params, &mut key)
        .map_err(|e| SignError::Key(format!("scrypt: {e}")))?;
    Ok(key)
}

impl PublicKey {
    /// Reads a `PUBLIC KEY` PEM file (an ECDSA P-256 PKIX key).
    pub fn from_pem(text: &[u8]) -> Result<PublicKey, SignError> {
        let (label, der) = pem::decode_vec(text)
            .map_err(|e| SignError::Key(format!("not a PEM public key: {e}")))?;
        if label != PUBLIC_LABEL {
            return Err(SignError::Key(format!(
                "a PEM {label:?} block, not a {PUBLIC_LABEL:?} one"
            )));
        }
        VerifyingKey::from_public_key_der(&der)
            .map(PublicKey)
            .map_err(|e| SignError::Key(format!("not an ECDSA P-256 public key: {e}")))
    }

    pub fn to_pem(&self) -> Result<String, SignError> {
        self.0
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| SignError::Key(format!("encoding the public key: {e}")))
    }

    /// Checks an ECDSA-SHA256 signature (ASN.1 DER) of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignError> {
        let signature = DerSignature::from_bytes(signature).map_err(|_| SignError::BadSignature)?;
        self.0
            .verify(message, &signature)
            .map_err(|_| SignError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_its_files() {
        let key = SigningKey::generate();
        let pem = key.to_encrypted_pem(b"correct horse").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n"));
        let back = SigningKey::from_encrypted_pem(pem.as_bytes(), b"correct horse").unwrap();
        assert_eq!(back.public(), key.public());

        let public = key.public().to_pem().unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(
            PublicKey::from_pem(public.as_bytes()).unwrap(),
            key.public()
        );

        let signature = back.sign(b"payload");
        key.public().verify(b"payload", &signature).unwrap();
        assert_eq!(
            key.public().verify(b"payloaD", &signature),
            Err(SignError::BadSignature)
        );
        let other = SigningKey::generate();
        assert_eq!(
            other.public().verify(b"payload", &signature),
            Err(SignError::BadSignature)
        );
    }

    #[test]
    fn the_sealed_body_is_sigstores_json() {
        let key = SigningKey::generate();
        let pem = key.seal(b"pw", &[7; SALT_LEN], &[9; NONCE_LEN]).unwrap();
        let (label, body) = pem::decode_vec(pem.as_bytes()).unwrap();
        assert_eq!(label, PRIVATE_LABEL);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["kdf"]["name"], "scrypt");
        assert_eq!(
            v["kdf"]["params"],
            serde_json::json!({"N": 32768, "r": 8, "p": 1})
        );
        assert_eq!(v["kdf"]["salt"], STANDARD.encode([7; SALT_LEN]));
        assert_eq!(v["cipher"]["name"], "nacl/secretbox");
        assert_eq!(v["cipher"]["nonce"], STANDARD.encode([9; NONCE_LEN]));
        // PKCS#8 of a P-256 key (138 bytes with its public key) plus the
        // 16-byte Poly1305 tag.
        let ct = STANDARD.decode(v["ciphertext"].as_str().unwrap()).unwrap();
        assert_eq!(
            ct.len(),
            key.0.to_pkcs8_der().unwrap().as_bytes().len() + 16
        );
    }

    #[test]
    fn the_sigstore_label_is_read_too() {
        let key = SigningKey::generate();
        let pem = key.to_encrypted_pem(b"pw").unwrap();
        let renamed = pem.replace("COSIGN", "SIGSTORE");
        let back = SigningKey::from_encrypted_pem(renamed.as_bytes(), b"pw").unwrap();
        assert_eq!(back.public(), key.public());
    }

    #[test]
    fn a_wrong_passphrase_and_other_files_are_named() {
        let key = SigningKey::generate();
        let pem = key.to_encrypted_pem(b"right").unwrap();
        assert_eq!(
            SigningKey::from_encrypted_pem(pem.as_bytes(), b"wrong").err(),
            Some(SignError::WrongPassphrase)
        );
        let public = key.public().to_pem().unwrap();
        let err = SigningKey::from_encrypted_pem(public.as_bytes(), b"right").err();
        assert!(
            matches!(&err, Some(SignError::Key(m)) if m.contains("\"PUBLIC KEY\"")),
            "{err:?}"
        );
        assert!(PublicKey::from_pem(pem.as_bytes()).is_err());
        assert!(PublicKey::from_pem(b"junk").is_err());
    }

    #[test]
    fn costly_scrypt_parameters_are_refused_before_running() {
        let key = SigningKey::generate();
        let pem = key.seal(b"pw", &[1; SALT_LEN], &[2; NONCE_LEN]).unwrap();
        let (_, body) = pem::decode_vec(pem.as_bytes()).unwrap();
        let text = String::from_utf8(body)
            .unwrap()
            .replace("\"N\":32768", "\"N\":1073741824");
        let pem = pem::encode_string(PRIVATE_LABEL, LineEnding::LF, text.as_bytes()).unwrap();
        let err = SigningKey::from_encrypted_pem(pem.as_bytes(), b"pw").err();
        assert!(
            matches!(&err, Some(SignError::Key(m)) if m.contains("N=1073741824")),
            "{err:?}"
        );
    }
}
