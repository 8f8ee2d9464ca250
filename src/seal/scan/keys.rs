//! Telling a private key from text that only looks like one, by parsing
//! what follows a marker: a PEM block's headers and body, the body's
//! base64, and the structure it decodes to (PKCS#1, DSA, SEC1, PKCS#8 and
//! encrypted PKCS#8 by their ASN.1 shape; OpenSSH, SSH2, PGP and cosign by
//! their magic). Pure functions over bytes; the scanner hands them what a
//! marker is followed by, and says whether that reaches the end of the file.

use base64::Engine as _;

/// A private key block, by its BEGIN line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    Rsa,
    Dsa,
    Ec,
    Pkcs8,
    EncryptedPkcs8,
    OpenSsh,
    Ssh2,
    Pgp,
    Cosign,
    Sigstore,
}

/// The BEGIN lines of private key blocks: PEM (PKCS#1, DSA, SEC1, PKCS#8
/// plain and encrypted), OpenSSH, SSH2, PGP, and cosign/sigstore's
/// encrypted keys.
pub const BLOCKS: [(&str, Block); 10] = [
    ("-----BEGIN RSA PRIVATE KEY-----", Block::Rsa),
    ("-----BEGIN DSA PRIVATE KEY-----", Block::Dsa),
    ("-----BEGIN EC PRIVATE KEY-----", Block::Ec),
    ("-----BEGIN PRIVATE KEY-----", Block::Pkcs8),
    (
        "-----BEGIN ENCRYPTED PRIVATE KEY-----",
        Block::EncryptedPkcs8,
    ),
    ("-----BEGIN OPENSSH PRIVATE KEY-----", Block::OpenSsh),
    ("---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----", Block::Ssh2),
    ("-----BEGIN PGP PRIVATE KEY BLOCK-----", Block::Pgp),
    (
        "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----",
        Block::Cosign,
    ),
    (
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----",
        Block::Sigstore,
    ),
];

impl Block {
    /// The format's name, as reports give it: the BEGIN line's words.
    pub fn name(self) -> &'static str {
        let marker = BLOCKS
            .iter()
            .find(|(_, b)| *b == self)
            .map_or("PRIVATE KEY", |(m, _)| m);
        marker
            .trim_matches(|c| c == '-' || c == ' ')
            .strip_prefix("BEGIN ")
            .unwrap_or(marker)
    }

    /// Whether `body`, a block's decoded base64, is this format's key.
    /// `complete` is false when the body was cut short: then what is there
    /// must begin like a key.
    fn holds(self, body: &[u8], complete: bool) -> bool {
        let begins = |magic: &[u8]| {
            body.starts_with(magic) || (!complete && !body.is_empty() && magic.starts_with(body))
        };
        match self {
            // OpenSSL reads any of the ASN.1 structures under these lines
            // only when it is the one named; counting any of them errs on
            // the side of a finding.
            Block::Rsa | Block::Dsa | Block::Ec | Block::Pkcs8 | Block::EncryptedPkcs8 => {
                der_key(body, complete).is_some()
            }
            Block::OpenSsh => begins(b"openssh-key-v1\0"),
            Block::Ssh2 => begins(&[0x3f, 0x6f, 0xf9, 0xeb]),
            Block::Pgp => pgp_secret_key(body),
            Block::Cosign | Block::Sigstore => begins(b"{\"kdf\""),
        }
    }
}

/// Whether a PEM block's BEGIN line, followed by `after`, opens a key.
/// `complete`: `after` runs to the end of the file.
pub fn pem_key(block: Block, after: &[u8], complete: bool) -> bool {
    let Some(body) = pem_body(after, complete) else {
        return false;
    };
    if body.encrypted {
        // RFC 1421's encrypted PEM: the body is ciphertext, the headers
        // say what it is.
        return true;
    }
    match decode(&body.base64, body.cut) {
        Some(decoded) if decoded.len() >= 8 => block.holds(&decoded, !body.cut),
        _ => false,
    }
}

/// PuTTY's key file after `PuTTY-User-Key-File-`: a version digit, `: `,
/// an algorithm name, and the `Encryption:` line.
pub fn putty_key(after: &[u8]) -> bool {
    let Some(rest) = after
        .strip_prefix(&[b'2'][..])
        .or_else(|| after.strip_prefix(&[b'3'][..]))
        .and_then(|r| r.strip_prefix(b": "))
    else {
        return false;
    };
    let algorithm = rest
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'@' | b'.'))
        .count();
    algorithm > 0
        && line_end(&rest[algorithm..])
            .map(skip_blanks)
            .is_some_and(|next| next.starts_with(b"Encryption: "))
}

/// A base64 run starting at `text` that decodes to a whole PEM key block
/// (kubeconfig's `client-key-data`, a Kubernetes secret): the block found.
pub fn base64_pem(text: &[u8], complete: bool) -> Option<Block> {
    let (run, cut) = base64_run(text, complete);
    let decoded = decode(run, cut)?;
    BLOCKS.iter().find_map(|(marker, block)| {
        let after = decoded.strip_prefix(marker.as_bytes())?;
        pem_key(*block, after, !cut).then_some(*block)
    })
}

/// A base64 run starting at `text` that decodes to a DER private key: the
/// structure found.
pub fn base64_der(text: &[u8], complete: bool) -> Option<&'static str> {
    let (run, cut) = base64_run(text, complete);
    if run.len() < 32 {
        return None;
    }
    der_key(&decode(run, cut)?, !cut)
}

/// After `"d"` in JSON: `: "` and a base64url value, as a JWK's private
/// exponent or key is written.
pub fn jwk_private_member(after: &[u8]) -> bool {
    let after = skip_blanks(after);
    let Some(after) = after.strip_prefix(b":") else {
        return false;
    };
    let Some(value) = skip_blanks(after).strip_prefix(b"\"") else {
        return false;
    };
    let length = value
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
        .count();
    length >= 16 && value.get(length) == Some(&b'"')
}

/// The base64 characters of a PEM block after its BEGIN line, and whether
/// its headers say it is encrypted.
struct PemBody {
    encrypted: bool,
    base64: Vec<u8>,
    /// The bytes ran out before the body ended.
    cut: bool,
}

/// Reads a PEM block's headers and body as OpenSSL does, and as the block
/// appears embedded: blanks after the BEGIN line, blank lines, CRLF,
/// escaped newlines (`\n` inside a JSON string or a .env value), and
/// indentation (a YAML block).
fn pem_body(after: &[u8], complete: bool) -> Option<PemBody> {
    let mut rest = line_end(skip_blanks(after))?;
    let mut body = PemBody {
        encrypted: false,
        base64: Vec::new(),
        cut: false,
    };
    // Headers (`Proc-Type:`, `DEK-Info:`, PGP's `Version:`, SSH2's
    // `Comment:`) and blank lines, up to the body.
    for _ in 0..16 {
        let line = skip_blanks(rest);
        if let Some(next) = line_end(line) {
            rest = next;
        } else if let Some(value) = header_value(line) {
            body.encrypted |= line.starts_with(b"Proc-Type:") && contains(value, b"ENCRYPTED");
            let end = value
                .iter()
                .position(|b| matches!(b, b'\n' | b'\r' | b'\\'))
                .unwrap_or(value.len());
            match line_end(&value[end..]) {
                Some(next) => rest = next,
                None => break,
            }
        } else {
            break;
        }
    }
    // The body: base64 lines until the END line, PGP's `=` checksum line,
    // or anything that is not base64.
    let mut at = skip_blanks(rest);
    loop {
        let run = at
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
            .count();
        body.base64.extend_from_slice(&at[..run]);
        at = &at[run..];
        match line_end(at) {
            Some(next) => {
                at = skip_blanks(next);
                if at.starts_with(b"=") {
                    break;
                }
            }
            None => {
                body.cut = at.is_empty() && !complete;
                break;
            }
        }
    }
    Some(body)
}

/// A header line's value: `Name: value`.
fn header_value(line: &[u8]) -> Option<&[u8]> {
    let name = line
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
        .count();
    (name > 0)
        .then(|| line[name..].strip_prefix(b":"))
        .flatten()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// After a line end, real or escaped: the rest.
fn line_end(text: &[u8]) -> Option<&[u8]> {
    const ENDS: [&[u8]; 4] = [b"\r\n", b"\n", b"\\r\\n", b"\\n"];
    ENDS.iter().find_map(|end| text.strip_prefix(*end))
}

fn skip_blanks(text: &[u8]) -> &[u8] {
    let n = text
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    &text[n..]
}

/// The base64 run at the start of `text`, and whether it was cut short by
/// the end of `text` before the file's end.
fn base64_run(text: &[u8], complete: bool) -> (&[u8], bool) {
    let n = text
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .count();
    (&text[..n], n == text.len() && !complete)
}

/// Decodes base64, padded or not; of a run cut short, the whole quads.
fn decode(run: &[u8], cut: bool) -> Option<Vec<u8>> {
    const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let run = if cut {
        let data = run.iter().take_while(|b| **b != b'=').count();
        &run[..data - data % 4]
    } else {
        run
    };
    LENIENT.decode(run).ok()
}

const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;

/// One DER element: its tag, its content, what follows, and whether its
/// content was cut short (allowed only when `partial`).
fn element(bytes: &[u8], partial: bool) -> Option<(u8, &[u8], &[u8], bool)> {
    let (&tag, rest) = bytes.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let length = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (length, &rest[n..])
    };
    if length <= rest.len() {
        Some((tag, &rest[..length], &rest[length..], false))
    } else if partial {
        Some((tag, rest, &[], true))
    } else {
        None
    }
}

/// The tags and contents of a SEQUENCE's elements (at most 12); with
/// `partial`, up to where the bytes end.
fn elements(mut content: &[u8], partial: bool) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    while !content.is_empty() && out.len() < 12 {
        let (tag, value, rest, cut) = element(content, partial)?;
        out.push((tag, value));
        if cut {
            break;
        }
        content = rest;
    }
    Some(out)
}

/// The private key structure DER `bytes` hold, by shape. `complete`: the
/// bytes are the whole encoding; otherwise they are its start, and the
/// elements present must begin a key's shape.
pub fn der_key(bytes: &[u8], complete: bool) -> Option<&'static str> {
    let (tag, content, rest, cut) = element(bytes, !complete)?;
    if tag != SEQUENCE || (complete && !rest.is_empty()) {
        return None;
    }
    let e = elements(content, cut)?;
    let whole = !cut;
    let tag = |i: usize| e.get(i).map(|x| x.0);
    let is = |i: usize, want: u8| tag(i) == Some(want) || (!whole && i >= e.len());
    let version = |v: &[u8]| e.first().is_some_and(|x| x.0 == INTEGER && x.1 == v);
    let all_integers = e.iter().all(|x| x.0 == INTEGER);
    // At least two elements must be there to judge a shape by.
    if e.len() < 2 {
        return None;
    }
    if (version(&[0]) || version(&[1])) && all_integers && (e.len() >= 9 || !whole) {
        // RSAPrivateKey (PKCS#1): version, n, e, d, p, q, dp, dq, qinv.
        return Some("RSA PRIVATE KEY");
    }
    if version(&[0]) && all_integers && e.len() == 6 {
        // DSA: version, p, q, g, y, x.
        return Some("DSA PRIVATE KEY");
    }
    if version(&[1]) && is(1, OCTET_STRING) && e.iter().skip(2).all(|x| matches!(x.0, 0xa0 | 0xa1))
    {
        // ECPrivateKey (SEC1): version 1, the key, [0] parameters, [1] public.
        return Some("EC PRIVATE KEY");
    }
    let algorithm = |i: usize| {
        e.get(i).is_some_and(|x| {
            x.0 == SEQUENCE
                && elements(x.1, true).is_some_and(|a| a.first().map(|f| f.0) == Some(OID))
        })
    };
    if (version(&[0]) || version(&[1])) && algorithm(1) && is(2, OCTET_STRING) {
        // PrivateKeyInfo / OneAsymmetricKey (PKCS#8).
        return Some("PRIVATE KEY");
    }
    if algorithm(0) && tag(1) == Some(OCTET_STRING) && (e.len() == 2 || !whole) {
        // EncryptedPrivateKeyInfo (PKCS#8).
        return Some("ENCRYPTED PRIVATE KEY");
    }
    None
}

/// A whole file that is a private key in a binary format: DER, a PGP
/// secret key packet (`gpg --export-secret-keys` without armor), or a
/// dropbear key file.
pub fn binary_key(bytes: &[u8]) -> Option<String> {
    if let Some(format) = der_key(bytes, true) {
        return Some(format!("{format} (DER)"));
    }
    if pgp_secret_key_packet(bytes) {
        return Some("PGP secret key".into());
    }
    dropbear_key(bytes).then(|| "dropbear private key".into())
}

/// Whether a file that can be a binary key starts like one: what the
/// scanner keeps a file's head for.
pub fn may_be_binary_key(first: u8) -> bool {
    first == 0x30 || first == 0 || pgp_secret_key(&[first])
}

/// RFC 9580: a secret key packet's header, a version (3 to 6), and for
/// versions 4 and up a creation time and a public-key algorithm it names.
fn pgp_secret_key_packet(bytes: &[u8]) -> bool {
    let Some(&first) = bytes.first() else {
        return false;
    };
    if !pgp_secret_key(bytes) {
        return false;
    }
    let (length, body) = if first & 0x40 != 0 {
        match bytes.get(1) {
            Some(&l) if l < 192 => (usize::from(l), &bytes[2..]),
            Some(&l) if l < 224 => match bytes.get(2) {
                Some(&m) => (
                    ((usize::from(l) - 192) << 8) + usize::from(m) + 192,
                    &bytes[3..],
                ),
                None => return false,
            },
            Some(255) if bytes.len() >= 6 => (
                bytes[2..6]
                    .iter()
                    .fold(0usize, |a, b| (a << 8) | usize::from(*b)),
                &bytes[6..],
            ),
            _ => return false,
        }
    } else {
        let n = match first & 3 {
            0 => 1,
            1 => 2,
            2 => 4,
            _ => return false,
        };
        if bytes.len() < 1 + n {
            return false;
        }
        let length = bytes[1..1 + n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (length, &bytes[1 + n..])
    };
    const ALGORITHMS: [u8; 12] = [1, 2, 3, 16, 17, 18, 19, 22, 25, 26, 27, 28];
    length <= body.len()
        && match body.first() {
            Some(3) => true,
            Some(4..=6) => body.get(5).is_some_and(|a| ALGORITHMS.contains(a)),
            _ => false,
        }
}

/// dropbear's key files: SSH wire strings, the algorithm's name and then
/// the private key's fields, to the end of the file. A public key blob has
/// the same start and fewer (or shorter) fields.
fn dropbear_key(bytes: &[u8]) -> bool {
    let mut fields = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() && fields.len() < 8 {
        let Some(length) = rest
            .get(..4)
            .map(|l| l.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b)))
        else {
            return false;
        };
        let Some(field) = rest.get(4..4 + length) else {
            return false;
        };
        fields.push(field);
        rest = &rest[4 + length..];
    }
    if !rest.is_empty() {
        return false;
    }
    match fields.split_first() {
        Some((&name, values)) => match name {
            b"ssh-rsa" => values.len() == 5,
            b"ssh-dss" => values.len() == 5,
            b"ssh-ed25519" => values.len() == 1 && values[0].len() == 64,
            b"ecdsa-sha2-nistp256" | b"ecdsa-sha2-nistp384" | b"ecdsa-sha2-nistp521" => {
                values.len() == 3
            }
            _ => false,
        },
        None => false,
    }
}

/// Whether a PGP body starts with a secret key or secret subkey packet.
fn pgp_secret_key(body: &[u8]) -> bool {
    let Some(&first) = body.first() else {
        return false;
    };
    if first & 0x80 == 0 {
        return false;
    }
    let tag = if first & 0x40 != 0 {
        first & 0x3f
    } else {
        (first >> 2) & 0x0f
    };
    matches!(tag, 5 | 7)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RSA key's DER start, as every PKCS#1 key of 2048 bits has it.
    const RSA_START: &str = "MIIEpAIBAAKCAQEA7yn3bRHQ5FHMQkEZHbNcBxnYDV1m";

    #[test]
    fn der_shapes() {
        // A whole SEC1 key: version 1, a 32-byte key, [0] curve OID.
        let mut sec1 = vec![0x30, 0x2f, 0x02, 0x01, 0x01, 0x04, 0x20];
        sec1.extend([7; 32]);
        sec1.extend([
            0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ]);
        sec1[1] = (sec1.len() - 2) as u8;
        assert_eq!(der_key(&sec1, true), Some("EC PRIVATE KEY"));
        // Trailing bytes, or a length past the end, are not a whole key.
        let mut trailing = sec1.clone();
        trailing.push(0);
        assert_eq!(der_key(&trailing, true), None);
        assert_eq!(der_key(&sec1[..20], true), None);
        assert_eq!(der_key(&sec1[..20], false), Some("EC PRIVATE KEY"));
        // ed25519 in PKCS#8.
        let pkcs8 = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
            22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
        ];
        assert_eq!(der_key(&pkcs8, true), Some("PRIVATE KEY"));
        // A certificate: SEQUENCE { SEQUENCE, SEQUENCE, BIT STRING }.
        let cert = [0x30, 0x08, 0x30, 0x00, 0x30, 0x00, 0x03, 0x02, 0x00, 0x00];
        assert_eq!(der_key(&cert, true), None);
        // Text that happens to start with '0'.
        assert_eq!(der_key(b"0.1.0\n", true), None);
    }

    #[test]
    fn pem_bodies_are_decoded_and_judged() {
        let start = format!("\n{RSA_START}\n");
        // Cut short by the scanner's lookahead: judged by how it begins.
        assert!(pem_key(Block::Rsa, start.as_bytes(), false));
        // The same start, then the file or the block ends: a truncated
        // example in documentation, not a key.
        assert!(!pem_key(Block::Rsa, start.as_bytes(), true));
        let doc = format!("\n{}...\n-----END RSA PRIVATE KEY-----\n", &RSA_START[..16]);
        assert!(!pem_key(Block::Rsa, doc.as_bytes(), false));
        // Prose after a marker line.
        assert!(!pem_key(
            Block::Rsa,
            b"\nThisIsWhereYourKeyGoesPasteItHere\n-----END RSA PRIVATE KEY-----\n",
            false
        ));
        // Encrypted traditional PEM: the headers say so.
        assert!(pem_key(
            Block::Rsa,
            b"\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END",
            true
        ));
        // OpenSSH's magic, as the body's first bytes.
        assert!(pem_key(
            Block::OpenSsh,
            b"\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n",
            true
        ));
        assert!(!pem_key(
            Block::OpenSsh,
            b"\nc2VlIHRoZSBtYW51YWwgZm9yIGRldGFpbHM=\n-----END",
            true
        ));
    }

    #[test]
    fn pgp_and_jwk() {
        assert!(pgp_secret_key(&[0x95, 0x01]));
        assert!(pgp_secret_key(&[0xc5, 0x01]));
        // A public key packet (tag 6).
        assert!(!pgp_secret_key(&[0x99, 0x01]));
        assert!(jwk_private_member(
            b" : \"MIIEpAIBAAKCAQEA7yn3bRHQ5FHMQk\","
        ));
        assert!(!jwk_private_member(b": \"short\""));
        assert!(!jwk_private_member(b": 12"));
    }

    #[test]
    fn binary_keys() {
        let string = |b: &[u8]| [&(b.len() as u32).to_be_bytes()[..], b].concat();
        let private = [string(b"ssh-ed25519"), string(&[7; 64])].concat();
        let public = [string(b"ssh-ed25519"), string(&[7; 32])].concat();
        assert_eq!(
            binary_key(&private).as_deref(),
            Some("dropbear private key")
        );
        assert_eq!(binary_key(&public), None);
        // A v4 EdDSA secret key packet, new format.
        let mut pgp = vec![0xc5, 10, 4, 0, 0, 0, 0, 22, 1, 2, 3, 4];
        assert_eq!(binary_key(&pgp).as_deref(), Some("PGP secret key"));
        pgp[7] = 99;
        assert_eq!(binary_key(&pgp), None);
        // A public key packet.
        assert_eq!(binary_key(&[0xc6, 10, 4, 0, 0, 0, 0, 22, 1, 2, 3, 4]), None);
    }

    #[test]
    fn putty_headers() {
        assert!(putty_key(b"3: ssh-ed25519\nEncryption: none\n"));
        assert!(putty_key(b"2: ssh-rsa\r\nEncryption: aes256-cbc\r\n"));
        assert!(!putty_key(b"%d: %s"));
        assert!(!putty_key(b"3: ssh-ed25519 is the format\n"));
    }
}
