//! The byte-pattern pass over a file's content, streamed in constant
//! memory: one automaton finds every marker the scan knows (key blocks,
//! base64 of keys, JWK members, remote-login servers' identifying strings,
//! sshd directives) and each hit is judged by what surrounds it.

use std::collections::BTreeSet;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};

use super::keys::{self, BLOCKS, Block};

/// Bytes after a marker a judge may look at: a PEM key's whole body up to
/// 16384-bit RSA fits, and a longer one is judged by how it begins.
pub const LOOKAHEAD: usize = 32 * 1024;

/// A file's first bytes kept to judge it whole: binary keys are far smaller.
const HEAD: usize = 16 * 1024;

/// Strings only remote-login servers carry, each with the server it names:
/// usage lines, banners and messages of the daemon itself, absent from the
/// clients of the same suites (checked against Debian's openssh-client,
/// dbclient, telnet, rsh-client, mosh-client, vncviewer and xfreerdp).
pub const SERVER_SIGNATURES: [(&str, &str); 12] = [
    ("usage: sshd [", "OpenSSH sshd"),
    (
        "sshd re-exec requires execution with an absolute path",
        "OpenSSH sshd",
    ),
    ("sshd version %s, %s", "OpenSSH sshd"),
    ("Dropbear server v", "dropbear"),
    ("usage: tinysshd ", "tinysshd"),
    ("DARPA telnet protocol server", "telnetd"),
    ("Connection from %s on illegal port", "rshd/rlogind"),
    ("usage: rshd [", "rshd"),
    ("[mosh-server is exiting.]", "mosh-server"),
    ("Usage: xrdp [options]", "xrdp"),
    ("Xvnc %s - built %s", "Xvnc"),
    ("rfbListenOnTCPPort", "a VNC server (libvncserver)"),
];

/// Starts of base64 runs that may be a DER private key: `MII`, `MIG` and
/// `MIH` begin every key of 128 bytes or more; the others are the short
/// keys' whole first bytes (ed25519, x25519, ed448, x448 in PKCS#8; P-256
/// in SEC1).
pub const BASE64_DER_STARTS: [&str; 9] = [
    "MII", "MIG", "MIH", "MC4CAQAw", "MFECAQEw", "MEcCAQAw", "MEYCAQAw", "MHcCAQEE", "MFMCAQEw",
];

/// `-----BEGIN` in base64, as a whole PEM file encodes.
pub const BASE64_PEM_MARKER: &str = "LS0tLS1CRUdJTi";

/// PuTTY's key files start `PuTTY-User-Key-File-2: ssh-rsa` (or `-3`).
pub const PUTTY_MARKER: &str = "PuTTY-User-Key-File-";

/// The sshd directives the seal reads, in any case (sshd_config(5)).
pub const DIRECTIVES: [&str; 3] = ["AuthorizedKeysFile", "AuthorizedKeysCommand", "Include"];

/// What a pattern of the automaton means.
#[derive(Debug, Clone, Copy)]
enum Meaning {
    Pem(Block),
    Putty,
    Base64Pem,
    Base64Der,
    JwkKeyType,
    JwkPrivate,
    Server(&'static str),
}

impl Meaning {
    fn needs_lookahead(self) -> bool {
        !matches!(self, Meaning::Server(_) | Meaning::JwkKeyType)
    }
}

fn patterns() -> Vec<(&'static str, Meaning)> {
    let mut out: Vec<(&str, Meaning)> =
        BLOCKS.iter().map(|(m, b)| (*m, Meaning::Pem(*b))).collect();
    out.push((PUTTY_MARKER, Meaning::Putty));
    out.push((BASE64_PEM_MARKER, Meaning::Base64Pem));
    out.extend(BASE64_DER_STARTS.iter().map(|s| (*s, Meaning::Base64Der)));
    out.push(("\"kty\"", Meaning::JwkKeyType));
    out.push(("\"d\"", Meaning::JwkPrivate));
    out.extend(
        SERVER_SIGNATURES
            .iter()
            .map(|(s, n)| (*s, Meaning::Server(n))),
    );
    out
}

struct Automaton {
    matcher: AhoCorasick,
    meanings: Vec<(&'static str, Meaning)>,
    longest: usize,
}

/// Built once: building it per file would cost more than scanning. A
/// leftmost automaton, which its SIMD prefilter makes fast over binaries.
static AUTOMATON: std::sync::LazyLock<Automaton> = std::sync::LazyLock::new(|| {
    let meanings = patterns();
    let matcher = AhoCorasickBuilder::new()
        .match_kind(aho_corasick::MatchKind::LeftmostFirst)
        .build(meanings.iter().map(|(p, _)| p))
        // The patterns are fixed and valid: building cannot fail.
        .expect("fixed patterns build");
    let longest = meanings.iter().map(|(p, _)| p.len()).max().unwrap_or(1);
    Automaton {
        matcher,
        meanings,
        longest,
    }
});

/// An sshd directive found at the start of a line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Directive {
    AuthorizedKeysFile(Vec<String>),
    AuthorizedKeysCommand(String),
    Include(Vec<String>),
}

/// What one file's content held.
#[derive(Debug, Default)]
pub struct Found {
    pub key: Option<String>,
    pub servers: BTreeSet<&'static str>,
    pub directives: Vec<Directive>,
}

/// The pass over one file, fed in chunks.
pub struct Content {
    tail: Vec<u8>,
    /// The byte just before `tail` (None at the start of the file).
    before: Option<u8>,
    head: Vec<u8>,
    fed: u64,
    elf: Option<bool>,
    /// Whether sshd directives are collected (not inside archives: sshd
    /// reads no config from there).
    directives: bool,
    /// Lines that start before this byte have been read for directives.
    lines_done: u64,
    jwk_key_type: bool,
    jwk_private: bool,
    found: Found,
}

impl Content {
    pub fn new(directives: bool) -> Content {
        Content {
            tail: Vec::new(),
            before: None,
            head: Vec::new(),
            fed: 0,
            elf: None,
            directives,
            lines_done: 0,
            jwk_key_type: false,
            jwk_private: false,
            found: Found::default(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.take(chunk, false);
    }

    pub fn finish(mut self) -> Found {
        self.take(&[], true);
        if self.found.key.is_none() && self.fed <= HEAD as u64 && !self.head.is_empty() {
            // A whole file in a binary key format: key.der, a PGP secret
            // key exported without armor, a dropbear host key.
            self.found.key = keys::binary_key(&self.head);
        }
        if self.found.key.is_none() && self.jwk_key_type && self.jwk_private {
            self.found.key = Some("JWK private key".into());
        }
        self.found
    }

    fn take(&mut self, chunk: &[u8], eof: bool) {
        // Only a small file that starts as a binary key keeps its head.
        let first = self
            .head
            .first()
            .or(chunk.first().filter(|_| self.fed == 0));
        let keep = first.is_some_and(|b| keys::may_be_binary_key(*b));
        self.fed += chunk.len() as u64;
        if keep && self.head.len() < HEAD {
            let room = HEAD - self.head.len();
            self.head.extend_from_slice(&chunk[..chunk.len().min(room)]);
        }
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(chunk);
        if self.elf.is_none() {
            if window.len() < 4 && !eof {
                self.tail = window;
                return;
            }
            self.elf = Some(window.starts_with(b"\x7fELF"));
        }
        let window_at = self.fed - window.len() as u64;
        let mut keep_from = self.pass(&window, eof);
        if self.directives && self.elf == Some(false) {
            keep_from = keep_from.min(self.lines(&window, window_at, eof));
        }
        if !eof {
            self.before = match keep_from {
                0 => self.before,
                i => Some(window[i - 1]),
            };
            window.drain(..keep_from);
            self.tail = window;
        }
    }

    /// Runs the automaton over `window` and judges its hits; returns where
    /// the tail to carry into the next chunk starts.
    fn pass(&mut self, window: &[u8], eof: bool) -> usize {
        let automaton = &*AUTOMATON;
        let mut keep_from = window.len().saturating_sub(automaton.longest - 1);
        for m in automaton.matcher.find_iter(window) {
            let (_, meaning) = automaton.meanings[m.pattern().as_usize()];
            let available = window.len() - m.end();
            if meaning.needs_lookahead() && available < LOOKAHEAD && !eof {
                // Too close to the end to judge: wait for more bytes.
                keep_from = keep_from.min(m.start());
                break;
            }
            let prev = match m.start() {
                0 => self.before,
                i => Some(window[i - 1]),
            };
            let end = (m.end() + LOOKAHEAD).min(window.len());
            let complete = eof && available <= LOOKAHEAD;
            self.judge(meaning, prev, &window[m.start()..end], m.len(), complete);
        }
        keep_from
    }

    /// Reads the sshd directives that start lines of `window`, which
    /// starts at byte `window_at` of the file; returns where the tail to
    /// carry starts. Each line is read once, however often the tail
    /// carries it. Keywords are matched in any case, as sshd matches them,
    /// at line starts only: a search for them anywhere would cost more than
    /// the rest of the scan.
    fn lines(&mut self, window: &[u8], window_at: u64, eof: bool) -> usize {
        let first = self.before.is_none_or(|b| b == b'\n');
        let starts = first
            .then_some(0)
            .into_iter()
            .chain(memchr::memchr_iter(b'\n', window).map(|i| i + 1));
        for start in starts {
            if window_at + (start as u64) < self.lines_done {
                continue;
            }
            let line = &window[start..];
            let text = &line[line
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count()..];
            let ended = memchr::memchr(b'\n', line).is_some() || eof || line.len() >= LOOKAHEAD;
            let may_be_keyword = text.first().is_none_or(|b| matches!(b | 0x20, b'a' | b'i'));
            if !ended && may_be_keyword {
                // The line's keyword, or its value, is still to come.
                return start;
            }
            if let Some(directive) = DIRECTIVES.iter().find_map(|keyword| {
                let rest = text.get(keyword.len()..)?;
                text[..keyword.len()]
                    .eq_ignore_ascii_case(keyword.as_bytes())
                    .then(|| directive(keyword, rest))
                    .flatten()
            }) {
                self.found.directives.push(directive);
            }
            self.lines_done = window_at + start as u64 + 1;
        }
        window.len()
    }

    /// Judges a hit: `text` starts at the pattern, `len` long, and runs up
    /// to [`LOOKAHEAD`] bytes past it.
    fn judge(
        &mut self,
        meaning: Meaning,
        prev: Option<u8>,
        text: &[u8],
        len: usize,
        complete: bool,
    ) {
        let elf = self.elf == Some(true);
        let after = &text[len..];
        match meaning {
            Meaning::Pem(block)
                if self.found.key.is_none()
                    && starts_value(prev, elf)
                    && keys::pem_key(block, after, complete) =>
            {
                self.found.key = Some(block.name().into());
            }
            Meaning::Putty
                if self.found.key.is_none()
                    && starts_value(prev, elf)
                    && keys::putty_key(after) =>
            {
                self.found.key = Some("PuTTY private key".into());
            }
            // In an ELF binary only a PEM block on its own counts: libraries
            // carry self-test keys as C strings (libgnutls's, in every
            // Debian image with it), and their bodies as base64 runs.
            Meaning::Base64Pem | Meaning::Base64Der | Meaning::JwkPrivate if elf => {}
            Meaning::Base64Pem if self.found.key.is_none() && starts_run(prev) => {
                self.found.key = keys::base64_pem(text, complete).map(|b| b.name().into());
            }
            Meaning::Base64Der if self.found.key.is_none() && starts_run(prev) => {
                self.found.key =
                    keys::base64_der(text, complete).map(|format| format!("{format} (base64 DER)"));
            }
            Meaning::JwkKeyType => self.jwk_key_type = true,
            Meaning::JwkPrivate => self.jwk_private |= keys::jwk_private_member(after),
            Meaning::Server(name) if elf => {
                self.found.servers.insert(name);
            }
            _ => {}
        }
    }
}

/// A key block starts a line, possibly indented, quoted (YAML, JSON) or
/// assigned (`KEY=` in a .env), or follows NUL padding (a tar's header).
/// In an ELF binary a marker after a NUL is a C string: libgnutls carries
/// its self-test keys so, and every Debian image with it would fail.
fn starts_value(prev: Option<u8>, elf: bool) -> bool {
    match prev {
        None => true,
        Some(0) => !elf,
        Some(b) => matches!(b, b'\n' | b'\r' | b' ' | b'\t' | b'"' | b'\'' | b'='),
    }
}

/// A base64 run starts after anything but base64 (padding `=` ends one:
/// `KEY=MII…` starts a run).
fn starts_run(prev: Option<u8>) -> bool {
    !prev.is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
}

/// sshd_config(5): `Keyword value` or `Keyword=value`; values are words,
/// possibly quoted; `#` starts a comment.
fn directive(keyword: &'static str, after: &[u8]) -> Option<Directive> {
    if !after
        .first()
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'='))
    {
        return None;
    }
    let end = after
        .iter()
        .position(|b| matches!(b, b'\n' | b'\r'))
        .unwrap_or(after.len());
    let line = String::from_utf8_lossy(&after[..end]);
    let value = line.trim_start_matches(|c: char| c == '=' || c.is_whitespace());
    let words: Vec<String> = value
        .split_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .map(|w| w.trim_matches('"').to_string())
        .collect();
    match keyword {
        "AuthorizedKeysFile" => Some(Directive::AuthorizedKeysFile(words)),
        "AuthorizedKeysCommand" => {
            let command = words.join(" ");
            (!command.is_empty() && !command.eq_ignore_ascii_case("none"))
                .then_some(Directive::AuthorizedKeysCommand(command))
        }
        _ => (!words.is_empty()).then_some(Directive::Include(words)),
    }
}
