//! What a Debian archive signed, checked: the OpenPGP signature on its
//! `InRelease` file against a keyring, and each index file it lists
//! against the `SHA256:` list of its `Release`.
//!
//! An `InRelease` is a clearsigned message (RFC 9580 §7, the Cleartext
//! Signature Framework). The framework is parsed here, strictly, so that
//! the bytes handed back are exactly the bytes the signature covers:
//! nothing before the `BEGIN PGP SIGNED MESSAGE` line but blank lines,
//! nothing after the signature but blank lines, every body line starting
//! with `-` dash-escaped, no carriage return outside a CRLF. apt has had
//! bugs where a parser read text the signature did not cover; refusing
//! all of that, and returning only the signed text, rules the class out.
//! The OpenPGP packets and the cryptography are rPGP's (the `pgp` crate).
//!
//! A signature counts when it is a text signature (type 0x01) with a
//! SHA-2 or SHA-3 digest, made by a key in the keyring that was valid when
//! it signed: bound by a self-signature made by then, not expired by
//! then, not revoked (a revocation for compromise or without a reason
//! counts whenever it was made; "superseded" or "retired" from its date),
//! and allowed to sign (a subkey also needs its back-signature). The time
//! is the signature's own creation time, not the clock, so a check gives
//! the same answer on every machine and on any day; a caller that holds a
//! clock compares it with [`Signer::key_expires`]. Freshness
//! (`Valid-Until`) is the caller's policy, not this module's.
//!
//! Signatures by keys not in the keyring are skipped (Debian signs each
//! `InRelease` with two or three keys, and a keyring may hold only one);
//! every signature by a key in the keyring must count, and at least one
//! must.

use std::fmt;
use std::io::{self, BufReader, Read};

use pgp::armor::{BlockType, Dearmor};
use pgp::composed::{Deserializable, SignedPublicKey, SignedPublicSubKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{
    Packet, PacketParser, PacketTrait, RevocationCode, Signature, SignatureType, SubpacketData,
};
use pgp::types::{KeyDetails, Tag};

use crate::debian::index::{Release, ReleaseFile};
use crate::digest::{Digest, HashingReader};

/// The largest `InRelease` read. Debian 12's is 151 KB; the `Release` of a
/// big archive with every index listed stays well under 16 MiB.
pub const MAX_INRELEASE_BYTES: usize = 16 << 20;
/// The largest keyring read. Debian's `debian-archive-keyring.gpg`, every
/// current archive key with its certifications, is 56 KB.
pub const MAX_KEYRING_BYTES: usize = 4 << 20;
/// The most signatures one `InRelease` may carry (Debian uses two or three).
pub const MAX_SIGNATURES: usize = 16;

const BEGIN_MESSAGE: &[u8] = b"-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &[u8] = b"-----BEGIN PGP SIGNATURE-----";
const END_SIGNATURE: &[u8] = b"-----END PGP SIGNATURE-----";

/// An OpenPGP key fingerprint, printed as uppercase hex as `gpg` does.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fingerprint(Vec<u8>);

impl Fingerprint {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode_upper(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<&pgp::types::Fingerprint> for Fingerprint {
    fn from(fp: &pgp::types::Fingerprint) -> Fingerprint {
        Fingerprint(fp.as_bytes().to_vec())
    }
}

/// One signature that counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The key that made the signature: a signing subkey, or the primary.
    pub key: Fingerprint,
    /// The primary key it belongs to: the fingerprint a keyring lists.
    pub certificate: Fingerprint,
    /// When the signature says it was made, in seconds since the epoch.
    pub signed_at: u64,
    /// When the key (or its primary) expires, in seconds since the epoch,
    /// as its bindings in force at `signed_at` say; `None` if never.
    pub key_expires: Option<u64>,
}

/// A checked `InRelease`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Exactly the bytes the signatures cover (RFC 9580 §7.2): the body
    /// dash-unescaped, trailing spaces and tabs removed from each line,
    /// lines joined by CRLF, and no line ending after the last line.
    /// [`read_release`](crate::debian::index::read_release) reads it as is.
    pub text: Vec<u8>,
    /// Every signature that counted, in the order written; never empty.
    pub signers: Vec<Signer>,
}

/// Why an `InRelease` is not accepted. Lines are 1-based lines of the
/// `InRelease`; the caller says which file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("{what} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("not signed: no '-----BEGIN PGP SIGNED MESSAGE-----' line")]
    NotClearsigned,
    /// Text the signature does not cover, where a reader might take it
    /// for part of the file.
    #[error("line {line}: text {place} the signed message")]
    Outside { line: usize, place: Place },
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("the signature block: {0}")]
    Unreadable(String),
    #[error("the keyring: {0}")]
    Keyring(String),
    #[error("no signature")]
    NoSignature,
    #[error("signed only by keys not in the keyring: {}", .issuers.join(", "))]
    UnknownSigner { issuers: Vec<String> },
    #[error("the signature by {key} uses {hash}; only SHA-2 and SHA-3 digests are accepted")]
    WeakDigest { key: String, hash: String },
    #[error("bad signature by {key}: {reason}")]
    Bad { key: String, reason: String },
    #[error(
        "key {key} had expired when it signed (at {expired_at}, signature made at {signed_at})"
    )]
    KeyExpired {
        key: Fingerprint,
        expired_at: u64,
        signed_at: u64,
    },
    #[error("key {key} is revoked: {reason}")]
    KeyRevoked { key: Fingerprint, reason: String },
    #[error("key {key} could not sign: {reason}")]
    KeyUnusable { key: Fingerprint, reason: String },
}

/// Where text outside the signed message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Before,
    After,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Place::Before => "before",
            Place::After => "after",
        })
    }
}

/// Checks the clearsigned `inrelease` against `keyring` (a binary keyring
/// as in `/usr/share/keyrings/*.gpg`, or ASCII-armored keys) and returns
/// what was signed and by whom. See the module header for what counts.
pub fn verify_inrelease(inrelease: &[u8], keyring: &[u8]) -> Result<Verified, SignatureError> {
    if inrelease.len() > MAX_INRELEASE_BYTES {
        return Err(SignatureError::TooLarge {
            what: "the InRelease file",
            size: inrelease.len(),
            limit: MAX_INRELEASE_BYTES,
        });
    }
    let message = Clearsigned::parse(inrelease)?;
    let signatures = read_signatures(&message.signature_block)?;
    let keys = read_keyring(keyring)?;
    let mut signers = Vec::new();
    let mut unknown = Vec::new();
    for signature in &signatures {
        match check_signature(signature, &message, &keys)? {
            Some(signer) => signers.push(signer),
            None => unknown.push(issuer_of(signature)),
        }
    }
    if signers.is_empty() {
        return Err(if unknown.is_empty() {
            SignatureError::NoSignature
        } else {
            SignatureError::UnknownSigner { issuers: unknown }
        });
    }
    Ok(Verified {
        text: message.text,
        signers,
    })
}

/// A clearsigned message, split.
struct Clearsigned {
    /// The `Hash:` armor header's algorithms; `None` without one.
    hashes: Option<Vec<HashAlgorithm>>,
    /// The signed text, as [`Verified::text`] says.
    text: Vec<u8>,
    /// From the `BEGIN PGP SIGNATURE` line to the `END` line.
    signature_block: Vec<u8>,
}

impl Clearsigned {
    fn parse(input: &[u8]) -> Result<Clearsigned, SignatureError> {
        let mut lines = Lines::new(input);
        // Blank lines may come first; then the BEGIN line.
        let first = loop {
            let Some((line, text)) = lines.next().transpose()? else {
                return Err(SignatureError::NotClearsigned);
            };
            if !is_blank(text) {
                break (line, text);
            }
        };
        if trim_end(first.1) != BEGIN_MESSAGE {
            let begins =
                Lines::new(input).any(|l| l.is_ok_and(|(_, t)| trim_end(t) == BEGIN_MESSAGE));
            return Err(if begins {
                SignatureError::Outside {
                    line: first.0,
                    place: Place::Before,
                }
            } else {
                SignatureError::NotClearsigned
            });
        }

        let mut hashes: Option<Vec<HashAlgorithm>> = None;
        loop {
            let Some((line, text)) = lines.next().transpose()? else {
                return Err(SignatureError::NoSignature);
            };
            if is_blank(text) {
                break;
            }
            let malformed = |reason: String| SignatureError::Malformed { line, reason };
            let text = String::from_utf8_lossy(trim_end(text));
            let Some(names) = text.strip_prefix("Hash:") else {
                return Err(malformed(format!(
                    "unexpected armor header {text:?}: a signed message has only Hash headers"
                )));
            };
            for name in names.split(',').map(str::trim) {
                let hash = name.parse().map_err(|()| {
                    malformed(format!("unknown digest {name:?} in the Hash header"))
                })?;
                hashes.get_or_insert_with(Vec::new).push(hash);
            }
        }

        let mut text = Vec::new();
        let body_start = lines.line + 1;
        let begin = loop {
            let Some((line, content)) = lines.next().transpose()? else {
                return Err(SignatureError::NoSignature);
            };
            let content = match content {
                [b'-', b' ', rest @ ..] => rest,
                [b'-', ..] if trim_end(content) == BEGIN_SIGNATURE => break content,
                [b'-', ..] => {
                    return Err(SignatureError::Malformed {
                        line,
                        reason: "a line starts with '-' but is not dash-escaped".into(),
                    });
                }
                _ => content,
            };
            // Lines are joined, not terminated: the line ending before
            // the BEGIN PGP SIGNATURE line is not signed.
            if line > body_start {
                text.extend_from_slice(b"\r\n");
            }
            text.extend_from_slice(trim_end(content));
        };

        let mut signature_block = begin.to_vec();
        signature_block.push(b'\n');
        loop {
            let Some((_, content)) = lines.next().transpose()? else {
                return Err(SignatureError::Malformed {
                    line: lines.line,
                    reason: "the signature has no '-----END PGP SIGNATURE-----' line".into(),
                });
            };
            signature_block.extend_from_slice(content);
            signature_block.push(b'\n');
            if trim_end(content) == END_SIGNATURE {
                break;
            }
        }
        for next in lines {
            let (line, content) = next?;
            if !is_blank(content) {
                return Err(SignatureError::Outside {
                    line,
                    place: Place::After,
                });
            }
        }
        Ok(Clearsigned {
            hashes,
            text,
            signature_block,
        })
    }
}

/// The lines of a text, numbered from 1, each without its LF or CRLF. A
/// carriage return anywhere else is refused: a signature over text lines
/// treats a lone CR as a line break, so two texts that read differently
/// would verify alike.
struct Lines<'a> {
    rest: &'a [u8],
    /// The number of the last line given.
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a [u8]) -> Lines<'a> {
        Lines {
            rest: text,
            line: 0,
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = Result<(usize, &'a [u8]), SignatureError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let (mut line, rest) = match memchr::memchr(b'\n', self.rest) {
            Some(at) => (&self.rest[..at], &self.rest[at + 1..]),
            None => (self.rest, &[][..]),
        };
        self.rest = rest;
        self.line += 1;
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        if memchr::memchr(b'\r', line).is_some() {
            self.rest = &[];
            return Some(Err(SignatureError::Malformed {
                line: self.line,
                reason: "a carriage return that does not end the line".into(),
            }));
        }
        Some(Ok((self.line, line)))
    }
}

/// The line without the spaces and tabs that end it.
fn trim_end(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(0, |at| at + 1);
    &line[..end]
}

fn is_blank(line: &[u8]) -> bool {
    trim_end(line).is_empty()
}

/// The signature packets of an armored `PGP SIGNATURE` block.
fn read_signatures(block: &[u8]) -> Result<Vec<Signature>, SignatureError> {
    let unreadable = |e: pgp::errors::Error| SignatureError::Unreadable(e.to_string());
    let mut dearmor = Dearmor::new(block);
    dearmor.read_header().map_err(unreadable)?;
    if dearmor.typ != Some(BlockType::Signature) {
        return Err(SignatureError::Unreadable(
            "not a PGP SIGNATURE block".into(),
        ));
    }
    let mut signatures = Vec::new();
    for packet in PacketParser::new(BufReader::new(&mut dearmor)) {
        match packet.map_err(unreadable)? {
            Packet::Signature(signature) => signatures.push(signature),
            other => {
                return Err(SignatureError::Unreadable(format!(
                    "a {:?} packet where only signatures belong",
                    other.tag()
                )));
            }
        }
        if signatures.len() > MAX_SIGNATURES {
            return Err(SignatureError::Unreadable(format!(
                "more than {MAX_SIGNATURES} signatures"
            )));
        }
    }
    if signatures.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    Ok(signatures)
}

/// The public keys of a keyring: binary packets, or one or more
/// ASCII-armored `PUBLIC KEY BLOCK`s.
fn read_keyring(keyring: &[u8]) -> Result<Vec<SignedPublicKey>, SignatureError> {
    if keyring.len() > MAX_KEYRING_BYTES {
        return Err(SignatureError::TooLarge {
            what: "the keyring",
            size: keyring.len(),
            limit: MAX_KEYRING_BYTES,
        });
    }
    let bad = |e: pgp::errors::Error| SignatureError::Keyring(e.to_string());
    let mut keys = Vec::new();
    let binary = keyring.first().is_some_and(|b| b & 0x80 != 0);
    if binary {
        for key in SignedPublicKey::from_bytes_many(keyring).map_err(bad)? {
            keys.push(key.map_err(bad)?);
        }
    } else {
        const END: &[u8] = b"-----END PGP PUBLIC KEY BLOCK-----";
        let mut rest = keyring;
        while let Some(at) = memchr::memmem::find(rest, END) {
            let (block, after) = rest.split_at(at + END.len());
            let (blocks, _) = SignedPublicKey::from_armor_many(block).map_err(bad)?;
            for key in blocks {
                keys.push(key.map_err(bad)?);
            }
            rest = after;
        }
    }
    if keys.is_empty() {
        return Err(SignatureError::Keyring("no public key in it".into()));
    }
    Ok(keys)
}

/// A key of the keyring that may have made a signature.
enum Candidate<'k> {
    Primary(&'k SignedPublicKey),
    Subkey(&'k SignedPublicKey, &'k SignedPublicSubKey),
}

impl Candidate<'_> {
    fn fingerprint(&self) -> Fingerprint {
        match self {
            Candidate::Primary(cert) => (&cert.primary_key.fingerprint()).into(),
            Candidate::Subkey(_, sub) => (&sub.key.fingerprint()).into(),
        }
    }

    fn verify(&self, signature: &Signature, text: &[u8]) -> pgp::errors::Result<()> {
        match self {
            Candidate::Primary(cert) => signature.verify(&cert.primary_key, text),
            Candidate::Subkey(_, sub) => signature.verify(&sub.key, text),
        }
    }
}

/// The signer, if the signature counts; `None` if no key of the keyring
/// could have made it; an error if it is by a key of the keyring and does
/// not count.
fn check_signature(
    signature: &Signature,
    message: &Clearsigned,
    keys: &[SignedPublicKey],
) -> Result<Option<Signer>, SignatureError> {
    let mut candidates = Vec::new();
    for cert in keys {
        if issued_by(signature, &cert.primary_key) {
            candidates.push(Candidate::Primary(cert));
        }
        for sub in &cert.public_subkeys {
            if issued_by(signature, &sub.key) {
                candidates.push(Candidate::Subkey(cert, sub));
            }
        }
    }
    let Some(first) = candidates.first() else {
        return Ok(None);
    };
    let key = first.fingerprint().to_string();
    let bad = |reason: String| SignatureError::Bad {
        key: key.clone(),
        reason,
    };
    if signature.typ() != Some(SignatureType::Text) {
        let typ = signature
            .typ()
            .map_or("an unknown".into(), |t| format!("a {t:?}"));
        return Err(bad(format!(
            "{typ} signature, where a clearsigned text needs a text signature"
        )));
    }
    let Some(hash) = signature.hash_alg() else {
        return Err(bad("no digest algorithm".into()));
    };
    if !strong(hash) {
        return Err(SignatureError::WeakDigest {
            key,
            hash: hash.to_string(),
        });
    }
    if let Some(listed) = &message.hashes
        && !listed.contains(&hash)
    {
        return Err(bad(format!(
            "it uses {hash}, which the Hash header does not list"
        )));
    }
    let Some(signed_at) = signature.created().map(|t| t.as_secs()) else {
        return Err(bad("no creation time".into()));
    };
    let mut failure = None;
    for candidate in &candidates {
        match candidate.verify(signature, &message.text) {
            Ok(()) => {
                let certificate: Fingerprint = match candidate {
                    Candidate::Primary(cert) | Candidate::Subkey(cert, _) => {
                        (&cert.primary_key.fingerprint()).into()
                    }
                };
                let key = candidate.fingerprint();
                let key_expires = validity(candidate, signed_at)
                    .map_err(|problem| problem.into_error(key.clone(), u64::from(signed_at)))?;
                return Ok(Some(Signer {
                    key,
                    certificate,
                    signed_at: signed_at.into(),
                    key_expires,
                }));
            }
            Err(e) => failure = Some((candidate.fingerprint(), e)),
        }
    }
    let (key, e) = failure.expect("at least one candidate was tried");
    Err(SignatureError::Bad {
        key: key.to_string(),
        reason: e.to_string(),
    })
}

/// Could `key` have issued `signature`? Yes if an issuer subpacket names
/// it, or if there is none. (A hint only: the cryptography decides.)
fn issued_by(signature: &Signature, key: &impl KeyDetails) -> bool {
    let ids = signature.issuer_key_id();
    let fingerprints = signature.issuer_fingerprint();
    (ids.is_empty() && fingerprints.is_empty())
        || ids.iter().any(|id| **id == key.legacy_key_id())
        || fingerprints.iter().any(|fp| **fp == key.fingerprint())
}

/// What names a signature's issuer in a message: its fingerprint, or its
/// key ID.
fn issuer_of(signature: &Signature) -> String {
    if let Some(fp) = signature.issuer_fingerprint().first() {
        return Fingerprint::from(*fp).to_string();
    }
    match signature.issuer_key_id().first() {
        Some(id) => hex::encode_upper(id.as_ref()),
        None => "an unnamed key".into(),
    }
}

/// SHA-2 and SHA-3. SHA-1, MD5 and RIPEMD-160 are refused, as apt
/// refuses them.
fn strong(hash: HashAlgorithm) -> bool {
    matches!(
        hash,
        HashAlgorithm::Sha224
            | HashAlgorithm::Sha256
            | HashAlgorithm::Sha384
            | HashAlgorithm::Sha512
            | HashAlgorithm::Sha3_256
            | HashAlgorithm::Sha3_512
    )
}

/// Why a key that made a good signature was not fit to make it.
enum Problem {
    Expired(u64),
    Revoked(String),
    Unusable(String),
}

impl Problem {
    fn into_error(self, key: Fingerprint, signed_at: u64) -> SignatureError {
        match self {
            Problem::Expired(expired_at) => SignatureError::KeyExpired {
                key,
                expired_at,
                signed_at,
            },
            Problem::Revoked(reason) => SignatureError::KeyRevoked { key, reason },
            Problem::Unusable(reason) => SignatureError::KeyUnusable { key, reason },
        }
    }
}

/// Whether the candidate was a valid signing key at time `at`, and when
/// it expires.
fn validity(candidate: &Candidate, at: u32) -> Result<Option<u64>, Problem> {
    match candidate {
        Candidate::Primary(cert) => {
            let primary = primary_validity(cert, at)?;
            if !primary.can_sign {
                return Err(Problem::Unusable(
                    "its key flags do not allow signing".into(),
                ));
            }
            Ok(primary.expires)
        }
        Candidate::Subkey(cert, sub) => {
            let primary = primary_validity(cert, at)?;
            let expires = subkey_validity(cert, sub, at)?;
            Ok(earliest(primary.expires, expires))
        }
    }
}

struct PrimaryValidity {
    expires: Option<u64>,
    can_sign: bool,
}

/// RFC 9580 §5.2.3.10: a primary key's properties are those of its newest
/// direct-key signature and of its newest user ID self-certification,
/// both at time `at`. Certifications by other keys are not looked at.
fn primary_validity(cert: &SignedPublicKey, at: u32) -> Result<PrimaryValidity, Problem> {
    let primary = &cert.primary_key;
    let created = primary.created_at().as_secs();
    if created > at {
        return Err(Problem::Unusable(
            "the signature is older than the key".into(),
        ));
    }
    for revocation in &cert.details.revocation_signatures {
        if revocation.typ() == Some(SignatureType::KeyRevocation)
            && issued_by(revocation, primary)
            && revocation.verify_key(primary).is_ok()
            && revoked_at(revocation, at)
        {
            return Err(Problem::Revoked(revocation_reason(revocation)));
        }
    }
    let direct = newest(cert.details.direct_signatures.iter().filter(|s| {
        s.typ() == Some(SignatureType::Key)
            && in_force(s, at)
            && issued_by(s, primary)
            && s.verify_key(primary).is_ok()
    }));
    let certification = newest(cert.details.users.iter().flat_map(|user| {
        user.signatures.iter().filter(move |s| {
            s.is_certification()
                && s.typ() != Some(SignatureType::CertRevocation)
                && in_force(s, at)
                && issued_by(s, primary)
                && s.verify_certification(primary, Tag::UserId, &user.id)
                    .is_ok()
        })
    }));
    if direct.is_none() && certification.is_none() {
        return Err(Problem::Unusable(
            "no valid self-signature binds it at the time of signing".into(),
        ));
    }
    let mut expires = None;
    let mut can_sign = true;
    for binding in direct.into_iter().chain(certification) {
        expires = earliest(expires, expiry(created, binding));
        if has_key_flags(binding) && !binding.key_flags().sign() {
            can_sign = false;
        }
    }
    match expires {
        Some(e) if e <= u64::from(at) => Err(Problem::Expired(e)),
        _ => Ok(PrimaryValidity { expires, can_sign }),
    }
}

/// A signing subkey: its newest binding at time `at` allows signing, is
/// backed by the subkey's own signature over the primary (so no one can
/// claim another's subkey), and has not expired; no revocation applies.
fn subkey_validity(
    cert: &SignedPublicKey,
    sub: &SignedPublicSubKey,
    at: u32,
) -> Result<Option<u64>, Problem> {
    let primary = &cert.primary_key;
    let created = sub.key.created_at().as_secs();
    if created > at {
        return Err(Problem::Unusable(
            "the signature is older than the key".into(),
        ));
    }
    for revocation in &sub.signatures {
        if revocation.typ() == Some(SignatureType::SubkeyRevocation)
            && issued_by(revocation, primary)
            && revocation.verify_subkey_binding(primary, &sub.key).is_ok()
            && revoked_at(revocation, at)
        {
            return Err(Problem::Revoked(revocation_reason(revocation)));
        }
    }
    let Some(binding) = newest(sub.signatures.iter().filter(|s| {
        s.typ() == Some(SignatureType::SubkeyBinding)
            && in_force(s, at)
            && issued_by(s, primary)
            && s.verify_subkey_binding(primary, &sub.key).is_ok()
    })) else {
        return Err(Problem::Unusable(
            "no valid binding to its primary key at the time of signing".into(),
        ));
    };
    if !binding.key_flags().sign() {
        return Err(Problem::Unusable(
            "its binding does not allow signing".into(),
        ));
    }
    let backed = binding.embedded_signature().is_some_and(|back| {
        back.hash_alg().is_some_and(strong)
            && back.verify_primary_key_binding(&sub.key, primary).is_ok()
    });
    if !backed {
        return Err(Problem::Unusable(
            "no valid back-signature binds it to its primary key".into(),
        ));
    }
    match expiry(created, binding) {
        Some(e) if e <= u64::from(at) => Err(Problem::Expired(e)),
        expires => Ok(expires),
    }
}

/// A self-signature counts at `at` if it was made by then with a strong
/// digest, and had not itself expired.
fn in_force(signature: &Signature, at: u32) -> bool {
    let Some(created) = signature.created().map(|t| t.as_secs()) else {
        return false;
    };
    let expired = signature
        .signature_expiration_time()
        .map(|d| d.as_secs())
        .is_some_and(|d| d > 0 && u64::from(created) + u64::from(d) <= u64::from(at));
    created <= at && !expired && signature.hash_alg().is_some_and(strong)
}

/// The newest signature by creation time; the first written on a tie.
fn newest<'s>(signatures: impl Iterator<Item = &'s Signature>) -> Option<&'s Signature> {
    signatures.fold(None, |best: Option<&Signature>, s| match best {
        Some(b) if b.created() >= s.created() => Some(b),
        _ => Some(s),
    })
}

/// When a key created at `created` expires, as `binding` says.
fn expiry(created: u32, binding: &Signature) -> Option<u64> {
    binding
        .key_expiration_time()
        .map(|d| d.as_secs())
        .filter(|&d| d > 0)
        .map(|d| u64::from(created) + u64::from(d))
}

fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn has_key_flags(signature: &Signature) -> bool {
    signature.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    })
}

/// Does a (verified) revocation apply at `at`? One for a superseded or
/// retired key applies from its date; any other (compromise, no reason)
/// whenever it was made, as the key may have been stolen before.
fn revoked_at(revocation: &Signature, at: u32) -> bool {
    match revocation.revocation_reason_code() {
        Some(RevocationCode::KeySuperseded | RevocationCode::KeyRetired) => {
            revocation.created().is_some_and(|t| t.as_secs() <= at)
        }
        _ => true,
    }
}

fn revocation_reason(revocation: &Signature) -> String {
    let code = match revocation.revocation_reason_code() {
        None | Some(RevocationCode::NoReason) => "no reason given".to_string(),
        Some(RevocationCode::KeySuperseded) => "superseded".to_string(),
        Some(RevocationCode::KeyCompromised) => "compromised".to_string(),
        Some(RevocationCode::KeyRetired) => "retired".to_string(),
        Some(other) => format!("reason {other:?}"),
    };
    match revocation.revocation_reason_string() {
        Some(text) if !text.is_empty() => {
            format!("{code} ({})", String::from_utf8_lossy(text))
        }
        _ => code,
    }
}

/// Why a fetched index file is not the one the `Release` lists. Each names
/// the index by its path in the `Release`.
#[derive(Debug, thiserror::Error)]
pub enum IndexCheckError {
    #[error("{path}: not listed in the Release file")]
    Unlisted { path: String },
    #[error("{path}: {found} bytes, where the Release file says {expected}")]
    TooShort {
        path: String,
        expected: u64,
        found: u64,
    },
    #[error("{path}: longer than the {expected} bytes the Release file says")]
    TooLong { path: String, expected: u64 },
    #[error("{path}: content is {found}, where the Release file says {expected}")]
    DigestMismatch {
        path: String,
        expected: Digest,
        found: Digest,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Streams an index file and checks, at its end, its size and SHA-256
/// against the `Release`'s entry for it: `Read` gives the end (`Ok(0)`)
/// only once both matched, and never a byte past the listed size; a
/// mismatch is an `InvalidData` error whose typed cause
/// [`finish`](Self::finish) returns. What a caller parsed from the bytes
/// read counts only once `finish` is `Ok`: a decompressor may stop before
/// the end of its input, and `finish` reads (and checks) the rest.
pub struct IndexReader<R> {
    expected: ReleaseFile,
    state: IndexState<R>,
}

enum IndexState<R> {
    Reading { inner: HashingReader<R>, given: u64 },
    Intact,
    Failed(IndexCheckError),
}

impl<R: Read> IndexReader<R> {
    /// A reader of the file the `Release` lists at `path`
    /// (`main/binary-amd64/Packages.xz`); refused if it lists none.
    pub fn new(release: &Release, path: &str, inner: R) -> Result<IndexReader<R>, IndexCheckError> {
        let expected = release
            .file(path)
            .ok_or_else(|| IndexCheckError::Unlisted { path: path.into() })?
            .clone();
        Ok(IndexReader {
            expected,
            state: IndexState::Reading {
                inner: HashingReader::new(inner),
                given: 0,
            },
        })
    }

    /// Reads what is left and checks size and SHA-256; or says why an
    /// earlier read failed.
    pub fn finish(mut self) -> Result<(), IndexCheckError> {
        let mut buf = [0; 8192];
        loop {
            match self.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(match self.state {
                        IndexState::Failed(fault) => fault,
                        _ => IndexCheckError::Io {
                            path: self.expected.path,
                            source: e,
                        },
                    });
                }
            }
        }
    }

    fn fail(&mut self, fault: IndexCheckError) -> io::Error {
        let e = match &fault {
            IndexCheckError::Io { source, .. } => io::Error::new(source.kind(), fault.to_string()),
            _ => io::Error::new(io::ErrorKind::InvalidData, fault.to_string()),
        };
        self.state = IndexState::Failed(fault);
        e
    }

    /// At the listed size, or at an early end: the file must end here and
    /// hash to the listed digest.
    fn settle(&mut self) -> io::Result<usize> {
        let path = self.expected.path.clone();
        let IndexState::Reading { inner, given } = &mut self.state else {
            return Ok(0);
        };
        let given = *given;
        if given < self.expected.size {
            return Err(self.fail(IndexCheckError::TooShort {
                path,
                expected: self.expected.size,
                found: given,
            }));
        }
        // One byte more would be too many; the rest is not read.
        let mut probe = [0; 1];
        let more = loop {
            match inner.read(&mut probe) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other,
            }
        };
        let fault = match more {
            Err(source) => IndexCheckError::Io { path, source },
            Ok(n) if n > 0 => IndexCheckError::TooLong {
                path,
                expected: self.expected.size,
            },
            Ok(_) => {
                let IndexState::Reading { inner, .. } =
                    std::mem::replace(&mut self.state, IndexState::Intact)
                else {
                    unreachable!("the state was Reading above");
                };
                let (found, _) = inner.finish();
                if found == self.expected.sha256 {
                    return Ok(0);
                }
                IndexCheckError::DigestMismatch {
                    path,
                    expected: self.expected.sha256,
                    found,
                }
            }
        };
        Err(self.fail(fault))
    }
}

impl<R: Read> Read for IndexReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let IndexState::Reading { inner, given } = &mut self.state else {
            return match &self.state {
                IndexState::Failed(fault) => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    fault.to_string(),
                )),
                _ => Ok(0),
            };
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let left = self.expected.size - *given;
        if left > 0 {
            let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
            match inner.read(&mut buf[..want]) {
                Ok(0) => {}
                Ok(n) => {
                    *given += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
                Err(source) => {
                    let path = self.expected.path.clone();
                    return Err(self.fail(IndexCheckError::Io { path, source }));
                }
            }
        }
        self.settle()
    }
}

/// Streams the index file at `path` (`main/binary-amd64/Packages.xz`)
/// through SHA-256 and refuses it unless it is the size and digest
/// `release` lists for that path.
pub fn check_index(
    release: &Release,
    path: &str,
    reader: impl Read,
) -> Result<(), IndexCheckError> {
    IndexReader::new(release, path, reader)?.finish()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::sync::OnceLock;

    use super::*;
    use crate::debian::index::read_release;

    const RELEASE: &str = "Origin: ingot test\nLabel: ingot test\nSuite: stable\n\
        Codename: test\nArchitectures: amd64\nComponents: main\n\
        Description: trailing spaces here   \nSHA256:\n \
        e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 main/binary-amd64/Packages\n";

    /// Text that needs dash-escaping, and an armor line in the body.
    const DASHES: &str = "- one\n-----BEGIN PGP SIGNATURE-----\n--\nplain\t \n\nlast\n";

    /// A throwaway GnuPG home, and the agent it starts stopped on drop.
    /// (Other modules' tests sign with it too.)
    pub(crate) struct Gpg {
        home: tempfile::TempDir,
    }

    impl Gpg {
        pub(crate) fn new() -> Gpg {
            Gpg {
                home: tempfile::Builder::new().prefix("gpg").tempdir().unwrap(),
            }
        }

        /// Runs gpg, at the faked time `at` if given; its stdout.
        pub(crate) fn run(&self, at: Option<u64>, args: &[&str]) -> Vec<u8> {
            let mut cmd = Command::new("gpg");
            cmd.arg("--homedir").arg(self.home.path()).args([
                "--batch",
                "--yes",
                "--quiet",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ]);
            if let Some(at) = at {
                cmd.args(["--faked-system-time", &format!("{at}!")]);
            }
            let out = cmd
                .args(args)
                .output()
                .expect("gpg runs (install the gpg package)");
            assert!(
                out.status.success(),
                "gpg {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }

        /// A new key; its fingerprints, primary first.
        pub(crate) fn key(&self, at: Option<u64>, uid: &str, usage: &str) -> Vec<String> {
            self.run(at, &["--quick-gen-key", uid, "ed25519", usage, "never"]);
            self.fingerprints(uid)
        }

        pub(crate) fn fingerprints(&self, uid: &str) -> Vec<String> {
            let out = self.run(None, &["--with-colons", "--list-keys", uid]);
            String::from_utf8(out)
                .unwrap()
                .lines()
                .filter_map(|l| l.strip_prefix("fpr:"))
                .map(|l| l.trim_matches(':').to_string())
                .collect()
        }

        pub(crate) fn export(&self, fpr: &str, armor: bool) -> Vec<u8> {
            let mut args = vec!["--export"];
            if armor {
                args.insert(0, "--armor");
            }
            args.push(fpr);
            self.run(None, &args)
        }

        pub(crate) fn clearsign(
            &self,
            at: Option<u64>,
            signers: &[&str],
            digest: &str,
            text: &str,
        ) -> Vec<u8> {
            let input = self.home.path().join("input");
            std::fs::write(&input, text).unwrap();
            let mut args = vec!["--clearsign", "--digest-algo", digest];
            for s in signers {
                args.extend(["-u", s]);
            }
            args.push("--output");
            args.push("-");
            let input = input.to_str().unwrap().to_string();
            args.push(&input);
            self.run(at, &args)
        }

        pub(crate) fn path(&self) -> &Path {
            self.home.path()
        }
    }

    impl Drop for Gpg {
        fn drop(&mut self) {
            let _ = Command::new("gpgconf")
                .arg("--homedir")
                .arg(self.home.path())
                .args(["--kill", "gpg-agent"])
                .status();
        }
    }

    /// Keys made and messages signed once, shared by the tests.
    struct Fixture {
        a: String,
        keyring_a: Vec<u8>,
        keyring_a_armored: Vec<u8>,
        keyring_a_revoked: Vec<u8>,
        signed_a: Vec<u8>,
        signed_a_sha1: Vec<u8>,
        signed_a_dashes: Vec<u8>,
        signed_b: Vec<u8>,
        signed_a_and_b: Vec<u8>,
        /// Key C signs with a subkey: primary, subkey.
        c: Vec<String>,
        keyring_c: Vec<u8>,
        signed_c: Vec<u8>,
        /// Key E had expired when it signed.
        e: String,
        keyring_e: Vec<u8>,
        signed_e: Vec<u8>,
    }

    fn fixture() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let gpg = Gpg::new();
            let a = gpg.key(None, "ingot test a", "sign").remove(0);
            let b = gpg.key(None, "ingot test b", "sign").remove(0);
            let c = gpg.key(None, "ingot test c", "cert");
            gpg.run(
                None,
                &["--quick-add-key", &c[0], "ed25519", "sign", "never"],
            );
            let c = gpg.fingerprints("ingot test c");
            assert_eq!(c.len(), 2, "key C has a signing subkey");

            // E: made in 2023 (a faked clock) without an expiry, signs two days later,
            // then is given one of a day from its creation.
            let t0 = 1_700_000_000;
            let e = gpg.key(Some(t0), "ingot test e", "sign").remove(0);
            let signed_e = gpg.clearsign(Some(t0 + 2 * 86400), &[&e], "SHA256", RELEASE);
            gpg.run(Some(t0 + 1), &["--quick-set-expire", &e, "1d"]);

            let mut f = Fixture {
                keyring_a: gpg.export(&a, false),
                keyring_a_armored: gpg.export(&a, true),
                keyring_a_revoked: Vec::new(),
                signed_a: gpg.clearsign(None, &[&a], "SHA256", RELEASE),
                signed_a_sha1: gpg.clearsign(None, &[&a], "SHA1", RELEASE),
                signed_a_dashes: gpg.clearsign(None, &[&a], "SHA512", DASHES),
                signed_b: gpg.clearsign(None, &[&b], "SHA256", RELEASE),
                signed_a_and_b: gpg.clearsign(None, &[&b, &a], "SHA256", RELEASE),
                keyring_c: gpg.export(&c[0], false),
                signed_c: gpg.clearsign(None, &[&c[0]], "SHA256", RELEASE),
                keyring_e: gpg.export(&e, false),
                signed_e,
                a,
                c,
                e,
            };

            // Last, as it revokes A in this home: the revocation gpg made
            // with the key, its guard colon taken off.
            let rev = gpg.path().join(format!("openpgp-revocs.d/{}.rev", f.a));
            let rev = std::fs::read_to_string(rev)
                .unwrap()
                .replace(":-----BEGIN", "-----BEGIN");
            let rev_path = gpg.path().join("a.rev");
            std::fs::write(&rev_path, rev).unwrap();
            gpg.run(None, &["--import", rev_path.to_str().unwrap()]);
            f.keyring_a_revoked = gpg.export(&f.a, false);
            f
        })
    }

    /// What the framework signs of `text`: trailing blanks off each line,
    /// CRLF between lines, none after the last.
    fn signed_form(text: &str) -> Vec<u8> {
        let lines: Vec<&str> = text
            .strip_suffix('\n')
            .unwrap_or(text)
            .split('\n')
            .map(|l| l.trim_end_matches([' ', '\t']))
            .collect();
        lines.join("\r\n").into_bytes()
    }

    fn replace(haystack: &[u8], from: &str, to: &str) -> Vec<u8> {
        let text = String::from_utf8(haystack.to_vec()).unwrap();
        assert!(text.contains(from), "{from:?} in the message");
        text.replacen(from, to, 1).into_bytes()
    }

    #[test]
    fn a_good_signature_gives_the_signed_text_and_the_signer() {
        let f = fixture();
        for keyring in [&f.keyring_a, &f.keyring_a_armored] {
            let verified = verify_inrelease(&f.signed_a, keyring).unwrap();
            assert_eq!(verified.text, signed_form(RELEASE));
            assert_eq!(verified.signers.len(), 1);
            let signer = &verified.signers[0];
            assert_eq!(signer.key.to_string(), f.a);
            assert_eq!(signer.certificate.to_string(), f.a);
            assert_eq!(signer.key_expires, None);
            // What ingot reads next.
            let release = read_release(&verified.text[..]).unwrap();
            assert_eq!(release.codename.as_deref(), Some("test"));
            assert_eq!(release.files.len(), 1);
        }
    }

    #[test]
    fn dash_escaped_lines_come_back_unescaped() {
        let f = fixture();
        let message = String::from_utf8(f.signed_a_dashes.clone()).unwrap();
        assert!(message.contains("\n- - one\n- -----BEGIN PGP SIGNATURE-----\n- --\n"));
        let verified = verify_inrelease(&f.signed_a_dashes, &f.keyring_a).unwrap();
        assert_eq!(verified.text, signed_form(DASHES));
    }

    #[test]
    fn a_changed_byte_in_the_signed_text_is_a_bad_signature() {
        let f = fixture();
        let changed = replace(&f.signed_a, "Codename: test", "Codename: tesT");
        let err = verify_inrelease(&changed, &f.keyring_a).unwrap_err();
        assert!(
            matches!(err, SignatureError::Bad { ref key, .. } if *key == f.a),
            "{err}"
        );
    }

    #[test]
    fn a_signature_by_a_key_outside_the_keyring_is_refused() {
        let f = fixture();
        let err = verify_inrelease(&f.signed_b, &f.keyring_a).unwrap_err();
        assert!(matches!(err, SignatureError::UnknownSigner { .. }), "{err}");
        assert!(err.to_string().contains("not in the keyring"), "{err}");
    }

    #[test]
    fn a_second_signature_by_an_unknown_key_is_skipped() {
        let f = fixture();
        let verified = verify_inrelease(&f.signed_a_and_b, &f.keyring_a).unwrap();
        assert_eq!(verified.text, signed_form(RELEASE));
        let keys: Vec<String> = verified.signers.iter().map(|s| s.key.to_string()).collect();
        assert_eq!(keys, std::slice::from_ref(&f.a));
    }

    #[test]
    fn an_unsigned_release_is_refused() {
        let f = fixture();
        let err = verify_inrelease(RELEASE.as_bytes(), &f.keyring_a).unwrap_err();
        assert_eq!(err, SignatureError::NotClearsigned);
    }

    #[test]
    fn a_sha1_signature_is_refused() {
        let f = fixture();
        let message = String::from_utf8(f.signed_a_sha1.clone()).unwrap();
        assert!(message.contains("Hash: SHA1\n"), "{message}");
        let err = verify_inrelease(&f.signed_a_sha1, &f.keyring_a).unwrap_err();
        assert!(
            matches!(err, SignatureError::WeakDigest { ref hash, .. } if hash == "SHA1"),
            "{err}"
        );
    }

    #[test]
    fn text_outside_the_signed_message_is_refused() {
        let f = fixture();
        let mut after = f.signed_a.clone();
        after.extend_from_slice(b"Codename: evil\n");
        let err = verify_inrelease(&after, &f.keyring_a).unwrap_err();
        assert!(
            matches!(
                err,
                SignatureError::Outside {
                    place: Place::After,
                    ..
                }
            ),
            "{err}"
        );

        let mut before = b"Codename: evil\n".to_vec();
        before.extend_from_slice(&f.signed_a);
        let err = verify_inrelease(&before, &f.keyring_a).unwrap_err();
        assert_eq!(
            err,
            SignatureError::Outside {
                line: 1,
                place: Place::Before
            }
        );

        // Blank lines around the message are not text.
        let mut blank = b"\n \t\r\n".to_vec();
        blank.extend_from_slice(&f.signed_a);
        blank.extend_from_slice(b"\n\n  \n");
        verify_inrelease(&blank, &f.keyring_a).unwrap();
    }

    #[test]
    fn a_second_message_after_the_first_is_refused() {
        let f = fixture();
        let mut twice = f.signed_a.clone();
        twice.extend_from_slice(&f.signed_b);
        let err = verify_inrelease(&twice, &f.keyring_a).unwrap_err();
        assert!(
            matches!(
                err,
                SignatureError::Outside {
                    place: Place::After,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn framework_breaches_are_refused() {
        let f = fixture();
        // An unescaped '-' line in the body.
        let unescaped = replace(&f.signed_a, "Suite: stable\n", "Suite: stable\n-x\n");
        let err = verify_inrelease(&unescaped, &f.keyring_a).unwrap_err();
        assert!(
            matches!(err, SignatureError::Malformed { line: 7, .. }),
            "{err}"
        );
        // A lone carriage return would read as a line break to the signature.
        let lone_cr = replace(
            &f.signed_a,
            "Suite: stable\nCodename",
            "Suite: stable\rCodename",
        );
        let err = verify_inrelease(&lone_cr, &f.keyring_a).unwrap_err();
        assert!(
            matches!(err, SignatureError::Malformed { line: 6, .. }),
            "{err}"
        );
        // A header other than Hash.
        let header = replace(&f.signed_a, "Hash: SHA256\n", "Hash: SHA256\nComment: hi\n");
        let err = verify_inrelease(&header, &f.keyring_a).unwrap_err();
        assert!(
            matches!(err, SignatureError::Malformed { line: 3, .. }),
            "{err}"
        );
        // A Hash header that does not name the signature's digest.
        let hash = replace(&f.signed_a, "Hash: SHA256\n", "Hash: SHA512\n");
        let err = verify_inrelease(&hash, &f.keyring_a).unwrap_err();
        assert!(matches!(err, SignatureError::Bad { .. }), "{err}");
        // No signature block.
        let cut = String::from_utf8(f.signed_a.clone()).unwrap();
        let cut = &cut[..cut.find("-----BEGIN PGP SIGNATURE").unwrap()];
        let err = verify_inrelease(cut.as_bytes(), &f.keyring_a).unwrap_err();
        assert_eq!(err, SignatureError::NoSignature);
    }

    #[test]
    fn crlf_line_endings_verify_alike() {
        let f = fixture();
        let crlf = String::from_utf8(f.signed_a.clone())
            .unwrap()
            .replace('\n', "\r\n");
        let verified = verify_inrelease(crlf.as_bytes(), &f.keyring_a).unwrap();
        assert_eq!(verified.text, signed_form(RELEASE));
    }

    #[test]
    fn a_signing_subkey_is_named_with_its_primary() {
        let f = fixture();
        let verified = verify_inrelease(&f.signed_c, &f.keyring_c).unwrap();
        assert_eq!(verified.signers[0].key.to_string(), f.c[1]);
        assert_eq!(verified.signers[0].certificate.to_string(), f.c[0]);
    }

    #[test]
    fn a_revoked_key_is_refused() {
        let f = fixture();
        let err = verify_inrelease(&f.signed_a, &f.keyring_a_revoked).unwrap_err();
        assert!(
            matches!(err, SignatureError::KeyRevoked { ref key, .. } if key.to_string() == f.a),
            "{err}"
        );
    }

    #[test]
    fn a_key_expired_when_it_signed_is_refused() {
        let f = fixture();
        let err = verify_inrelease(&f.signed_e, &f.keyring_e).unwrap_err();
        assert!(
            matches!(err, SignatureError::KeyExpired { ref key, .. } if key.to_string() == f.e),
            "{err}"
        );
    }

    #[test]
    fn sizes_over_the_limits_are_refused() {
        let f = fixture();
        let big = vec![b'\n'; MAX_INRELEASE_BYTES + 1];
        let err = verify_inrelease(&big, &f.keyring_a).unwrap_err();
        assert!(matches!(err, SignatureError::TooLarge { .. }), "{err}");
        let mut keyring = f.keyring_a.clone();
        keyring.resize(MAX_KEYRING_BYTES + 1, 0);
        let err = verify_inrelease(&f.signed_a, &keyring).unwrap_err();
        assert!(matches!(err, SignatureError::TooLarge { .. }), "{err}");
        let err = verify_inrelease(&f.signed_a, b"").unwrap_err();
        assert!(matches!(err, SignatureError::Keyring(_)), "{err}");
    }

    /// The machine's own Debian lists, as apt fetched them, against
    /// Debian's keyring; and each plain or lz4 `Packages` beside them
    /// against the verified Release.
    #[test]
    fn the_machines_debian_inrelease_files_verify() {
        let keyring = Path::new("/usr/share/keyrings/debian-archive-keyring.gpg");
        let lists = Path::new("/var/lib/apt/lists");
        let mut inreleases: Vec<PathBuf> = std::fs::read_dir(lists)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.to_string_lossy().ends_with("_InRelease"))
            .filter(|p| {
                std::fs::read(p)
                    .is_ok_and(|b| memchr::memmem::find(&b, b"\nOrigin: Debian\n").is_some())
            })
            .collect();
        inreleases.sort();
        if !keyring.exists() || inreleases.is_empty() {
            eprintln!(
                "skipped: no Debian InRelease in {} or no {} (run apt-get update)",
                lists.display(),
                keyring.display()
            );
            return;
        }
        let keyring = std::fs::read(keyring).unwrap();
        let mut indexes = 0;
        for path in &inreleases {
            let inrelease = std::fs::read(path).unwrap();
            let verified = verify_inrelease(&inrelease, &keyring)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!verified.signers.is_empty());
            let release = read_release(&verified.text[..]).unwrap();

            let tampered = replace(&inrelease, "Origin: Debian", "Origin: Debiam");
            let err = verify_inrelease(&tampered, &keyring).unwrap_err();
            assert!(matches!(err, SignatureError::Bad { .. }), "{err}");

            let prefix = path
                .to_string_lossy()
                .strip_suffix("InRelease")
                .unwrap()
                .to_string();
            for entry in std::fs::read_dir(lists).unwrap() {
                let file = entry.unwrap().path();
                let name = file.to_string_lossy().to_string();
                let Some(rest) = name.strip_prefix(&prefix) else {
                    continue;
                };
                let (listed, lz4) = match rest.strip_suffix(".lz4") {
                    Some(r) => (r.replace('_', "/"), true),
                    None => (rest.replace('_', "/"), false),
                };
                if !listed.ends_with("/Packages") {
                    continue;
                }
                let content = if lz4 {
                    match Command::new("lz4").arg("-dc").arg(&file).output() {
                        Ok(out) if out.status.success() => out.stdout,
                        _ => {
                            eprintln!("skipped {name}: no lz4 to decompress it");
                            continue;
                        }
                    }
                } else {
                    std::fs::read(&file).unwrap()
                };
                check_index(&release, &listed, &content[..])
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                indexes += 1;
            }
        }
        if indexes == 0 {
            eprintln!(
                "no Packages index beside the InRelease files: check_index not tried on them"
            );
        }
    }

    fn release_listing(content: &[u8], path: &str) -> Release {
        let text = format!(
            "Codename: test\nSHA256:\n {} {} {path}\n",
            Digest::of(content).hex(),
            content.len()
        );
        read_release(text.as_bytes()).unwrap()
    }

    const PACKAGES: &[u8] = b"Package: a\nVersion: 1\nArchitecture: all\n";
    const PATH: &str = "main/binary-amd64/Packages";

    #[test]
    fn a_listed_index_passes_through_unchanged() {
        let release = release_listing(PACKAGES, PATH);
        check_index(&release, PATH, PACKAGES).unwrap();
        let mut reader = IndexReader::new(&release, PATH, PACKAGES).unwrap();
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, PACKAGES);
        reader.finish().unwrap();
    }

    #[test]
    fn a_changed_byte_fails_naming_the_path() {
        let release = release_listing(PACKAGES, PATH);
        let mut changed = PACKAGES.to_vec();
        changed[9] ^= 1;
        let err = check_index(&release, PATH, &changed[..]).unwrap_err();
        assert!(
            matches!(err, IndexCheckError::DigestMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().starts_with(PATH), "{err}");
        // The reader's own end is an error too, not Ok(0).
        let mut reader = IndexReader::new(&release, PATH, &changed[..]).unwrap();
        let e = reader.read_to_end(&mut Vec::new()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(
            reader.finish(),
            Err(IndexCheckError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn a_size_mismatch_fails() {
        let release = release_listing(PACKAGES, PATH);
        let short = &PACKAGES[..PACKAGES.len() - 1];
        let err = check_index(&release, PATH, short).unwrap_err();
        assert!(
            matches!(err, IndexCheckError::TooShort { found, .. } if found == short.len() as u64),
            "{err}"
        );

        let mut long = PACKAGES.to_vec();
        long.push(b'\n');
        let mut reader = IndexReader::new(&release, PATH, &long[..]).unwrap();
        let mut out = Vec::new();
        assert!(reader.read_to_end(&mut out).is_err());
        assert_eq!(out, PACKAGES, "never a byte past the listed size");
        assert!(matches!(
            reader.finish(),
            Err(IndexCheckError::TooLong { .. })
        ));
    }

    #[test]
    fn an_unlisted_path_fails() {
        let release = release_listing(PACKAGES, PATH);
        let err = check_index(&release, "main/binary-arm64/Packages", PACKAGES).unwrap_err();
        assert!(matches!(err, IndexCheckError::Unlisted { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "main/binary-arm64/Packages: not listed in the Release file"
        );
    }
}
