//! The sigstore "simple signing" payload: what a signature vouches for
//! (containers/image signature/internal/sigstore_payload.go; cosign's
//! `payload.SimpleContainerImage`):
//!
//! `{"critical":{"identity":{"docker-reference":REF},"image":{"docker-manifest-digest":DIGEST},"type":"cosign container image signature"},"optional":null}`
//!
//! ingot writes exactly these bytes (Go's key order, `optional` null as
//! cosign writes it: no timestamp, so the same key and image give the same
//! signature). It reads as containers/image does: `critical` and its three
//! members exactly, nothing more; `optional` present, anything in it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::SignError;
use crate::digest::Digest;
use crate::image::reference::RegistryRef;

/// `critical.type`.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// Where an image lives, as a signature names it: `HOST[:PORT]/REPO`
/// (no tag, no digest), as cosign writes `docker-reference`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    host: String,
    repository: String,
}

impl Identity {
    /// The repository of a registry image.
    pub fn of(reference: &RegistryRef) -> Identity {
        Identity {
            host: reference.host.clone(),
            repository: reference.repository.clone(),
        }
    }
}

impl FromStr for Identity {
    type Err = String;

    /// `HOST[:PORT]/REPO`; a tag or digest is refused, as a signature
    /// names a repository.
    fn from_str(s: &str) -> Result<Identity, String> {
        let r: RegistryRef = format!("docker://{s}")
            .parse()
            .map_err(|_| format!("{s:?} is not HOST[:PORT]/REPO"))?;
        if r.tag.is_some() || r.digest.is_some() {
            return Err(format!(
                "{s:?}: an identity is HOST[:PORT]/REPO, without a tag or digest"
            ));
        }
        Ok(Identity::of(&r))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.host, self.repository)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    critical: Critical,
    // Required, as containers/image requires it; null or any object.
    optional: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    identity: IdentityField,
    image: ImageField,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityField {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageField {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The payload that says `digest` is the image at `identity`.
pub fn payload(identity: &Identity, digest: &Digest) -> Vec<u8> {
    let p = Payload {
        critical: Critical {
            identity: IdentityField {
                docker_reference: identity.to_string(),
            },
            image: ImageField {
                docker_manifest_digest: digest.to_string(),
            },
            kind: SIGNATURE_TYPE.into(),
        },
        optional: serde_json::Value::Null,
    };
    // Plain structs and strings: serializing cannot fail.
    serde_json::to_vec(&p).unwrap_or_default()
}

/// What a payload claims; untrusted until its signature is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `docker-reference` as written (cosign: `HOST/REPO`; skopeo:
    /// `HOST/REPO:TAG`).
    pub docker_reference: String,
    pub digest: Digest,
}

impl Claims {
    /// Parses a payload as containers/image does.
    pub fn parse(bytes: &[u8]) -> Result<Claims, SignError> {
        let p: Payload = serde_json::from_slice(bytes)
            .map_err(|e| SignError::Format(format!("not a simple-signing payload: {e}")))?;
        if p.critical.kind != SIGNATURE_TYPE {
            return Err(SignError::Format(format!(
                "payload type {:?} is not {SIGNATURE_TYPE:?}",
                p.critical.kind
            )));
        }
        let digest = p
            .critical
            .image
            .docker_manifest_digest
            .parse::<Digest>()
            .map_err(|e| SignError::Format(format!("payload docker-manifest-digest: {e}")))?;
        Ok(Claims {
            docker_reference: p.critical.identity.docker_reference,
            digest,
        })
    }

    /// Whether the signed reference names `identity`'s repository. A tag
    /// or digest in it is ignored, as cosign ignores it (skopeo signs
    /// `HOST/REPO:TAG`; that repository is what is compared).
    pub fn names(&self, identity: &Identity) -> bool {
        format!("docker://{}", self.docker_reference)
            .parse::<RegistryRef>()
            .is_ok_and(|r| Identity::of(&r) == *identity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_is_cosigns_bytes() {
        let digest = Digest::of(b"manifest");
        let id: Identity = "127.0.0.1:5000/team/hello".parse().unwrap();
        let bytes = payload(&id, &digest);
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            format!(
                "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"127.0.0.1:5000/team/hello\"}},\
                 \"image\":{{\"docker-manifest-digest\":\"{digest}\"}},\
                 \"type\":\"cosign container image signature\"}},\"optional\":null}}"
            )
        );
        let claims = Claims::parse(&bytes).unwrap();
        assert_eq!(claims.digest, digest);
        assert!(claims.names(&id));
        assert!(!claims.names(&"127.0.0.1:5000/team/other".parse().unwrap()));
        assert!(!claims.names(&"127.0.0.1:5001/team/hello".parse().unwrap()));
    }

    #[test]
    fn skopeos_payload_with_a_tag_and_optional_fields_is_read() {
        let digest = Digest::of(b"m");
        let text = format!(
            "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"reg.lan:5000/app:1\"}},\
             \"image\":{{\"docker-manifest-digest\":\"{digest}\"}},\"type\":\"{SIGNATURE_TYPE}\"}},\
             \"optional\":{{\"creator\":\"containers/image 5.23.1\",\"timestamp\":1700000000}}}}"
        );
        let claims = Claims::parse(text.as_bytes()).unwrap();
        assert!(claims.names(&"reg.lan:5000/app".parse().unwrap()));
    }

    #[test]
    fn extra_or_missing_critical_fields_and_other_types_are_refused() {
        let digest = Digest::of(b"m");
        let good = String::from_utf8(payload(&"h/r".parse().unwrap(), &digest)).unwrap();
        for bad in [
            good.replace("\"type\"", "\"extra\":1,\"type\""),
            good.replace(",\"optional\":null", ""),
            good.replace(
                "cosign container image signature",
                "atomic container signature",
            ),
            good.replace(&digest.to_string(), "sha256:nothex"),
        ] {
            assert!(Claims::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn identities_have_no_tag() {
        assert!("h:5000/a/b".parse::<Identity>().is_ok());
        assert!("h/a:1".parse::<Identity>().is_err());
        assert!("nohost".parse::<Identity>().is_err());
    }
}
