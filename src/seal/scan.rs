//! What the seal learns from file content, streamed once per layer in
//! constant memory: private key material in any file, SSH servers in
//! package databases, and `AuthorizedKeysFile` lines in sshd configs.
//!
//! Findings are recorded per (path, layer); the rules later keep only those
//! whose file is still the one in the final filesystem.

use std::io::{self, Read};

use aho_corasick::AhoCorasick;

use crate::rootfs::meta::ImagePath;

/// Block markers of private key formats. PEM (PKCS#1, SEC1, PKCS#8, plain
/// and encrypted), OpenSSH, SSH2, PGP, and cosign/sigstore's encrypted keys.
const PEM_MARKERS: [&str; 10] = [
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----BEGIN DSA PRIVATE KEY-----",
    "-----BEGIN EC PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----",
    "-----BEGIN ENCRYPTED PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----",
    "-----BEGIN PGP PRIVATE KEY BLOCK-----",
    "-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----",
    "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----",
];

/// PuTTY's key files start `PuTTY-User-Key-File-2: ssh-rsa` (or `-3`).
const PUTTY_MARKER: &str = "PuTTY-User-Key-File-";

/// `-----BEGIN` in base64, as a whole PEM file encodes (kubeconfig's
/// `client-key-data`, Kubernetes secrets): the run after it is decoded and
/// judged like a PEM marker.
const BASE64_PEM_MARKER: &str = "LS0tLS1CRUdJTi";

/// Bytes after a marker needed to tell a key from a string that names the
/// format (libcrypto carries every PEM marker as a C string).
const LOOKAHEAD: usize = 80;

/// Read size; with the carried tail this bounds the scanner's memory.
const CHUNK: usize = 64 * 1024;

/// Longest line kept when reading package databases and sshd configs;
/// longer lines are cut (they are not what these files hold).
const MAX_LINE: usize = 64 * 1024;

/// Packages that install a remote-login server (SSH, telnet, rsh/rlogin,
/// mosh, VNC, RDP), in dpkg and apk databases.
pub const REMOTE_LOGIN_PACKAGES: [&str; 22] = [
    "openssh-server",
    "openssh-server-pam",
    "openssh",
    "dropbear",
    "dropbear-bin",
    "dropbear-run",
    "tinyssh",
    "tinysshd",
    "telnetd",
    "telnetd-ssl",
    "inetutils-telnetd",
    "busybox-extras",
    "rsh-server",
    "rsh-redone-server",
    "mosh",
    "xrdp",
    "tigervnc-standalone-server",
    "tigervnc-scraping-server",
    "tightvncserver",
    "x11vnc",
    "vnc4server",
    "xvnc",
];

/// The scanner's version: what it looks for (the markers and package names
/// above, the files [`kind_of`] reads, the lookahead) and how. Findings
/// cached under another version are never trusted, so bump this with any
/// change to them; [`tests::the_scanner_version_covers_its_tables`] fails
/// until you do.
pub const SCANNER_VERSION: &str = "2";

/// The key markers' automaton, built once: building it per file would
/// cost more than scanning.
static MATCHER: std::sync::LazyLock<AhoCorasick> = std::sync::LazyLock::new(|| {
    let patterns = PEM_MARKERS
        .iter()
        .copied()
        .chain([PUTTY_MARKER, BASE64_PEM_MARKER]);
    // The patterns are fixed and valid: building cannot fail.
    AhoCorasick::new(patterns).expect("fixed key markers build")
});

/// What the content scan found.
#[derive(Debug, Default, Clone)]
pub struct Scan {
    /// Files holding private key material, with the format found.
    pub keys: Vec<(ImagePath, usize, String)>,
    /// SSH server packages a package database lists as installed.
    pub packages: Vec<(ImagePath, usize, String)>,
    /// `AuthorizedKeysFile` patterns of each sshd config file.
    pub authorized_keys_files: Vec<(ImagePath, usize, Vec<String>)>,
    /// `AuthorizedKeysCommand` of each sshd config file that sets one.
    pub key_commands: Vec<(ImagePath, usize, String)>,
    /// The read buffer, kept between files.
    buf: Vec<u8>,
}

/// Which line-oriented file a path is, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dpkg,
    DpkgStatusD,
    Apk,
    SshdConfig,
}

fn kind_of(path: &ImagePath) -> Option<Kind> {
    let rel = path.as_rel();
    let parent = path.parent().unwrap_or_default();
    match rel {
        "var/lib/dpkg/status" => Some(Kind::Dpkg),
        "lib/apk/db/installed" => Some(Kind::Apk),
        _ if parent.as_rel() == "var/lib/dpkg/status.d" => Some(Kind::DpkgStatusD),
        _ if path.file_name() == "sshd_config" => Some(Kind::SshdConfig),
        _ if parent.file_name() == "sshd_config.d" => Some(Kind::SshdConfig),
        _ => None,
    }
}

/// What a scan found in one layer, without its position: kept with a
/// cached layer so that serving it needs no second read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Findings {
    pub keys: Vec<(ImagePath, String)>,
    pub packages: Vec<(ImagePath, String)>,
    pub authorized_keys_files: Vec<(ImagePath, Vec<String>)>,
    #[serde(default)]
    pub key_commands: Vec<(ImagePath, String)>,
}

/// How far a [`Scan`] had got, to go back to.
#[derive(Debug, Clone, Copy)]
pub struct Mark(usize, usize, usize, usize);

impl Scan {
    pub fn mark(&self) -> Mark {
        Mark(
            self.keys.len(),
            self.packages.len(),
            self.authorized_keys_files.len(),
            self.key_commands.len(),
        )
    }

    /// What was found since `mark`.
    pub fn since(&self, mark: Mark) -> Findings {
        Findings {
            keys: self.keys[mark.0..]
                .iter()
                .map(|(p, _, f)| (p.clone(), f.clone()))
                .collect(),
            packages: self.packages[mark.1..]
                .iter()
                .map(|(p, _, f)| (p.clone(), f.clone()))
                .collect(),
            authorized_keys_files: self.authorized_keys_files[mark.2..]
                .iter()
                .map(|(p, _, f)| (p.clone(), f.clone()))
                .collect(),
            key_commands: self.key_commands[mark.3..]
                .iter()
                .map(|(p, _, f)| (p.clone(), f.clone()))
                .collect(),
        }
    }

    /// Adds findings of layer `layer`, as [`since`](Self::since) gave them.
    pub fn extend(&mut self, findings: Findings, layer: usize) {
        self.keys
            .extend(findings.keys.into_iter().map(|(p, f)| (p, layer, f)));
        self.packages
            .extend(findings.packages.into_iter().map(|(p, f)| (p, layer, f)));
        self.authorized_keys_files.extend(
            findings
                .authorized_keys_files
                .into_iter()
                .map(|(p, f)| (p, layer, f)),
        );
        self.key_commands.extend(
            findings
                .key_commands
                .into_iter()
                .map(|(p, f)| (p, layer, f)),
        );
    }

    /// Forgets what was found since `mark`: the layer read was not used.
    pub fn rollback(&mut self, mark: Mark) {
        self.keys.truncate(mark.0);
        self.packages.truncate(mark.1);
        self.authorized_keys_files.truncate(mark.2);
        self.key_commands.truncate(mark.3);
    }

    /// Scans one regular file of layer `layer`.
    pub fn visit(&mut self, path: &ImagePath, layer: usize, data: &mut dyn Read) -> io::Result<()> {
        let mut file = FileScan::new(path.clone(), layer);
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(CHUNK, 0);
        let read = loop {
            match data.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => file.feed(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        self.buf = buf;
        read?;
        file.finish(self);
        Ok(())
    }
}

/// One file being scanned, fed in chunks: by [`Scan::visit`] from a reader,
/// or by the layer writer as it streams a file into a new layer, so a fresh
/// layer is scanned without being read back.
pub struct FileScan {
    path: ImagePath,
    layer: usize,
    kind: Option<Kind>,
    keys: KeyScanner,
    lines: Lines,
    records: Records,
}

impl FileScan {
    pub fn new(path: ImagePath, layer: usize) -> FileScan {
        let kind = kind_of(&path);
        FileScan {
            path,
            layer,
            kind,
            keys: KeyScanner::new(),
            lines: Lines::default(),
            records: Records::new(kind),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        if self.keys.found.is_none() {
            self.keys.feed(chunk, false);
        }
        if self.kind.is_some() {
            let records = &mut self.records;
            self.lines.feed(chunk, &mut |line| records.line(line));
        }
    }

    /// Ends the file and records what it held in `scan`.
    pub fn finish(mut self, scan: &mut Scan) {
        if self.keys.found.is_none() {
            self.keys.feed(&[], true);
        }
        let records = &mut self.records;
        self.lines.finish(&mut |line| records.line(line));
        self.records.end();
        let (path, layer) = (self.path, self.layer);
        if let Some(format) = self.keys.found {
            scan.keys.push((path.clone(), layer, format.to_string()));
        }
        for package in self.records.servers {
            scan.packages.push((path.clone(), layer, package));
        }
        if let Some(command) = self.records.key_command {
            scan.key_commands.push((path.clone(), layer, command));
        }
        if !self.records.authorized_keys_files.is_empty() {
            scan.authorized_keys_files
                .push((path, layer, self.records.authorized_keys_files));
        }
    }
}

/// Feeds the files of a layer being written into a [`Scan`].
pub struct LayerScan<'a> {
    scan: &'a mut Scan,
    layer: usize,
    current: Option<FileScan>,
}

impl<'a> LayerScan<'a> {
    pub fn new(scan: &'a mut Scan, layer: usize) -> LayerScan<'a> {
        LayerScan {
            scan,
            layer,
            current: None,
        }
    }
}

impl crate::layer::ContentSink for LayerScan<'_> {
    fn begin(&mut self, path: &str) {
        self.current = ImagePath::from_rel(path).map(|p| FileScan::new(p, self.layer));
    }

    fn data(&mut self, chunk: &[u8]) {
        if let Some(file) = &mut self.current {
            file.feed(chunk);
        }
    }

    fn end(&mut self) {
        if let Some(file) = self.current.take() {
            file.finish(self.scan);
        }
    }
}

/// Finds private key markers in a stream, carrying a short tail between
/// chunks so a marker split across reads is still seen.
struct KeyScanner {
    matcher: &'static AhoCorasick,
    tail: Vec<u8>,
    /// The byte just before `tail` (None at the start of the file), to tell
    /// whether a marker at the tail's start begins a line.
    before: Option<u8>,
    found: Option<&'static str>,
}

impl KeyScanner {
    fn new() -> KeyScanner {
        KeyScanner {
            matcher: &MATCHER,
            tail: Vec::new(),
            before: None,
            found: None,
        }
    }

    fn feed(&mut self, chunk: &[u8], eof: bool) {
        let mut window = std::mem::take(&mut self.tail);
        let before = self.before;
        window.extend_from_slice(chunk);
        // Matches too close to the end to judge wait for more bytes.
        let mut keep_from = window.len().saturating_sub(longest_marker() + LOOKAHEAD);
        for m in self.matcher.find_overlapping_iter(&window) {
            let after = &window[m.end()..];
            if after.len() < LOOKAHEAD && !eof {
                keep_from = keep_from.min(m.start());
                break;
            }
            let prev = match m.start() {
                0 => before,
                i => Some(window[i - 1]),
            };
            // A marker starts a line, possibly indented, quoted (YAML,
            // JSON) or assigned (`KEY=` in a .env). After a NUL it is a C
            // string in a binary: libgnutls carries its self-test keys so,
            // and every Debian image with it would fail.
            let at_line_start = prev
                .is_none_or(|b| matches!(b, b'\n' | b'\r' | b' ' | b'\t' | b'"' | b'\'' | b'='));
            let pattern = m.pattern().as_usize();
            let format = if pattern < PEM_MARKERS.len() {
                (at_line_start && pem_body_follows(after)).then_some(PEM_MARKERS[pattern])
            } else if pattern == PEM_MARKERS.len() {
                (at_line_start && putty_header_follows(after)).then_some("PuTTY private key")
            } else {
                base64_pem(&window[m.start()..])
            };
            if let Some(format) = format {
                self.found = Some(format_name(format));
                return;
            }
        }
        if !eof {
            self.before = match keep_from {
                0 => before,
                i => Some(window[i - 1]),
            };
            self.tail = window[keep_from..].to_vec();
        }
    }
}

fn longest_marker() -> usize {
    PEM_MARKERS
        .iter()
        .chain([&PUTTY_MARKER])
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// The format a marker names, for the report.
fn format_name(marker: &'static str) -> &'static str {
    marker
        .trim_matches(|c| c == '-' || c == ' ')
        .strip_prefix("BEGIN ")
        .unwrap_or(marker)
}

/// After a PEM BEGIN line: encryption headers, or a line of base64. The
/// line may end in a real newline or an escaped one (`\n` inside a JSON
/// string), and the next may be indented (a YAML block).
fn pem_body_follows(after: &[u8]) -> bool {
    fn line_end_of(text: &[u8]) -> Option<&[u8]> {
        const LINE_END: [&[u8]; 4] = [b"\r\n", b"\n", b"\\r\\n", b"\\n"];
        LINE_END.iter().find_map(|end| text.strip_prefix(*end))
    }
    // OpenSSL reads a BEGIN line with trailing blanks, and blank lines
    // before the body, as the same key.
    let after = &after[after
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count()..];
    let Some(mut body) = line_end_of(after) else {
        return false;
    };
    for _ in 0..2 {
        match line_end_of(body) {
            Some(rest) => body = rest,
            None => break,
        }
    }
    let indent = body
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    let body = &body[indent..];
    const HEADERS: [&[u8]; 4] = [b"Proc-Type:", b"Version:", b"Comment:", b"Subject:"];
    if HEADERS.iter().any(|h| body.starts_with(h)) || body.starts_with(b"\n") {
        return true;
    }
    let base64 = body
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .count();
    base64 >= 16
}

/// `PuTTY-User-Key-File-2: ssh-rsa`: a version digit, then `: `.
/// The PEM marker a base64 run starting at `text` decodes to, when the
/// decoded text is a private key's BEGIN line with a body after it.
fn base64_pem(text: &[u8]) -> Option<&'static str> {
    use base64::Engine as _;
    let run = text
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/'))
        .count();
    let run = &text[..run - run % 4];
    let decoded = base64::engine::general_purpose::STANDARD.decode(run).ok()?;
    PEM_MARKERS.iter().copied().find(|marker| {
        decoded
            .strip_prefix(marker.as_bytes())
            .is_some_and(pem_body_follows)
    })
}

fn putty_header_follows(after: &[u8]) -> bool {
    after.len() >= 3 && after[0].is_ascii_digit() && after[1] == b':' && after[2] == b' '
}

/// Splits a stream into lines, cutting any longer than [`MAX_LINE`].
#[derive(Default)]
struct Lines {
    line: Vec<u8>,
}

impl Lines {
    fn feed(&mut self, chunk: &[u8], out: &mut dyn FnMut(&str)) {
        for part in chunk.split_inclusive(|b| *b == b'\n') {
            let room = MAX_LINE.saturating_sub(self.line.len());
            self.line.extend_from_slice(&part[..part.len().min(room)]);
            if part.ends_with(b"\n") {
                out(String::from_utf8_lossy(&self.line).trim_end());
                self.line.clear();
            }
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(&str)) {
        if !self.line.is_empty() {
            out(String::from_utf8_lossy(&self.line).trim_end());
            self.line.clear();
        }
    }
}

/// Reads package database stanzas and sshd config lines.
struct Records {
    kind: Option<Kind>,
    package: Option<String>,
    installed: Option<bool>,
    servers: Vec<String>,
    authorized_keys_files: Vec<String>,
    key_command: Option<String>,
}

impl Records {
    fn new(kind: Option<Kind>) -> Records {
        Records {
            kind,
            package: None,
            installed: None,
            servers: Vec::new(),
            authorized_keys_files: Vec::new(),
            key_command: None,
        }
    }

    fn line(&mut self, line: &str) {
        match self.kind {
            Some(Kind::Dpkg | Kind::DpkgStatusD) => {
                // deb822 field names are case-insensitive.
                let field = |name: &str| {
                    line.split_once(':')
                        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
                        .map(|(_, value)| value)
                };
                if line.is_empty() {
                    self.end();
                } else if let Some(name) = field("Package") {
                    self.package = Some(name.trim().to_string());
                } else if let Some(status) = field("Status") {
                    // The last word is the package's state. Only
                    // not-installed and config-files (conffiles alone) leave
                    // no program on disk; unpacked, half-configured and the
                    // triggers states have the files in place.
                    let state = status.split_whitespace().last().unwrap_or("");
                    self.installed = Some(!matches!(state, "not-installed" | "config-files"));
                }
            }
            Some(Kind::Apk) => {
                if line.is_empty() {
                    self.end();
                } else if let Some(name) = line.strip_prefix("P:") {
                    self.package = Some(name.trim().to_string());
                    self.installed = Some(true);
                }
            }
            Some(Kind::SshdConfig) => {
                // sshd_config(5): `Keyword value` or `Keyword=value`, the
                // keyword in any case.
                let line = line.trim();
                let (keyword, value) = line
                    .split_once(|c: char| c == '=' || c.is_whitespace())
                    .unwrap_or((line, ""));
                let value = value.trim_start_matches(|c: char| c == '=' || c.is_whitespace());
                // A command that hands sshd keys at login is a way in as
                // much as a keys file is.
                if keyword.eq_ignore_ascii_case("AuthorizedKeysCommand")
                    && !value.trim().eq_ignore_ascii_case("none")
                    && !value.trim().is_empty()
                {
                    self.key_command = Some(value.trim().to_string());
                }
                if keyword.eq_ignore_ascii_case("AuthorizedKeysFile") {
                    self.authorized_keys_files.extend(
                        value
                            .split_whitespace()
                            .map(|w| w.trim_matches('"').to_string()),
                    );
                }
            }
            None => {}
        }
    }

    /// Ends a stanza. A distroless `status.d` file without a Status field
    /// is an installed package.
    fn end(&mut self) {
        let installed = self
            .installed
            .unwrap_or(self.kind == Some(Kind::DpkgStatusD));
        if let Some(package) = self
            .package
            .take()
            .filter(|p| installed && REMOTE_LOGIN_PACKAGES.contains(&p.as_str()))
        {
            self.servers.push(package);
        }
        self.installed = None;
    }
}

#[cfg(test)]
mod tests {

    /// Pins the scanner's tables to its version: changing a marker, a
    /// package name, a watched file or a bound without bumping
    /// [`SCANNER_VERSION`] would let stale cached findings through.
    #[test]
    fn the_scanner_version_covers_its_tables() {
        let probes = [
            "var/lib/dpkg/status",
            "var/lib/dpkg/status.d/x",
            "lib/apk/db/installed",
            "etc/ssh/sshd_config",
            "etc/ssh/sshd_config.d/x.conf",
        ];
        let kinds: Vec<String> = probes
            .iter()
            .map(|p| format!("{p}={:?}", kind_of(&ImagePath::from_rel(p).unwrap())))
            .collect();
        let tables = format!(
            "{PEM_MARKERS:?}|{PUTTY_MARKER}|{BASE64_PEM_MARKER}|{REMOTE_LOGIN_PACKAGES:?}|{LOOKAHEAD}|{MAX_LINE}|{kinds:?}"
        );
        let fingerprint = crate::digest::Digest::of(tables.as_bytes()).to_string();
        assert_eq!(
            (SCANNER_VERSION, fingerprint.as_str()),
            (
                "2",
                "sha256:4fcf2008c4e99f78035538ad6ecbba08b1effd194d00b787db6448752fa8ebeb"
            ),
            "the scanner's tables changed: bump SCANNER_VERSION, then pin the new fingerprint"
        );
    }

    use super::*;

    fn scan(path: &str, content: &[u8]) -> Scan {
        let mut s = Scan::default();
        s.visit(&path.parse().unwrap(), 0, &mut &content[..])
            .unwrap();
        s
    }

    fn key_in(content: &[u8]) -> Option<String> {
        scan("/some/file", content)
            .keys
            .first()
            .map(|k| k.2.clone())
    }

    const BODY: &str = "MIIEpAIBAAKCAQEA7yn3bRHQ5FHMQkEZHbNcBxnYDV1m\n";

    #[test]
    fn finds_every_key_format() {
        for marker in PEM_MARKERS {
            let text = format!("{marker}\n{BODY}-----END-----\n");
            assert!(key_in(text.as_bytes()).is_some(), "{marker}");
        }
        let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n";
        assert_eq!(
            key_in(encrypted.as_bytes()).as_deref(),
            Some("RSA PRIVATE KEY")
        );
        let putty = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n";
        assert_eq!(
            key_in(putty.as_bytes()).as_deref(),
            Some("PuTTY private key")
        );
        let windows = format!("-----BEGIN OPENSSH PRIVATE KEY-----\r\n{BODY}");
        assert_eq!(
            key_in(windows.as_bytes()).as_deref(),
            Some("OPENSSH PRIVATE KEY")
        );
        // A whole PEM in base64 (kubeconfig's client-key-data), and a PEM
        // assigned in a .env with escaped newlines.
        use base64::Engine as _;
        let pem =
            format!("-----BEGIN RSA PRIVATE KEY-----\n{BODY}{BODY}-----END RSA PRIVATE KEY-----\n");
        let kubeconfig = format!(
            "users:\n- user:\n    client-key-data: {}\n",
            base64::engine::general_purpose::STANDARD.encode(&pem)
        );
        assert_eq!(
            key_in(kubeconfig.as_bytes()).as_deref(),
            Some("RSA PRIVATE KEY")
        );
        let cert = base64::engine::general_purpose::STANDARD
            .encode(format!("-----BEGIN CERTIFICATE-----\n{BODY}"));
        assert!(key_in(cert.as_bytes()).is_none(), "a certificate is no key");
        let env = format!("TLS_KEY=-----BEGIN PRIVATE KEY-----\\n{}\\n", BODY.trim());
        assert_eq!(key_in(env.as_bytes()).as_deref(), Some("PRIVATE KEY"));
        // What OpenSSL also reads as a key: blanks after the BEGIN line, a
        // blank line before the body.
        for text in [
            format!("-----BEGIN PRIVATE KEY----- \n{BODY}"),
            format!("-----BEGIN PRIVATE KEY-----\t\r\n\r\n{BODY}"),
            format!("-----BEGIN RSA PRIVATE KEY-----\n\n{BODY}"),
        ] {
            assert!(key_in(text.as_bytes()).is_some(), "{text:?}");
        }
    }

    #[test]
    fn finds_keys_embedded_in_yaml_and_json() {
        let yaml = format!("tls:\n  key: |\n    -----BEGIN EC PRIVATE KEY-----\n    {BODY}");
        assert!(key_in(yaml.as_bytes()).is_some());
        let json = format!(
            "{{\"key\": \"-----BEGIN PRIVATE KEY-----\\n{}\"}}",
            BODY.trim()
        );
        assert!(key_in(json.as_bytes()).is_some(), "{json}");
    }

    #[test]
    fn names_of_formats_are_not_keys() {
        // As libcrypto and documentation carry them.
        assert_eq!(key_in(b"\0-----BEGIN RSA PRIVATE KEY-----\0-----END"), None);
        assert_eq!(key_in(b"-----BEGIN PRIVATE KEY-----\nsee RFC 5208\n"), None);
        assert_eq!(
            key_in(b"the -----BEGIN PRIVATE KEY----- marker\nAAAAAAAAAAAAAAAAAAAA"),
            None
        );
        assert_eq!(
            key_in(b"-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkq\n"),
            None
        );
        assert_eq!(key_in(b"PuTTY-User-Key-File-%d: %s"), None);
        // libgnutls's self-test keys, as C strings in the library.
        let c_string = b"\0\0-----BEGIN PRIVATE KEY-----\nMGoCAQAwIQYIKoUDBwEBAQIwFQYJKoUDBwECAQIBBggqhQMHAQEC\0";
        assert_eq!(key_in(c_string), None);
    }

    #[test]
    fn finds_a_marker_split_across_reads_in_a_large_file() {
        let mut content = vec![b'x'; CHUNK - 10];
        content.push(b'\n');
        content.extend_from_slice(format!("-----BEGIN EC PRIVATE KEY-----\n{BODY}").as_bytes());
        content.extend(std::iter::repeat_n(b'y', 3 * CHUNK));
        /// Hands out bytes a few at a time, as a decompressor may.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(7919);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut s = Scan::default();
        s.visit(&"/big".parse().unwrap(), 3, &mut Dribble(&content))
            .unwrap();
        assert_eq!(s.keys.len(), 1);
        assert_eq!(s.keys[0].1, 3);
        // A key at the very end, with its body cut short, is still judged.
        assert!(
            key_in(format!("-----BEGIN OPENSSH PRIVATE KEY-----\n{}", &BODY[..20]).as_bytes())
                .is_some()
        );
    }

    #[test]
    fn reads_package_databases() {
        let dpkg = b"Package: openssh-client\nStatus: install ok installed\n\nPackage: openssh-server\nStatus: install ok installed\nVersion: 1\n\nPackage: dropbear\nStatus: deinstall ok config-files\n";
        let s = scan("/var/lib/dpkg/status", dpkg);
        assert_eq!(
            s.packages.iter().map(|p| p.2.as_str()).collect::<Vec<_>>(),
            ["openssh-server"]
        );
        let s = scan(
            "/var/lib/dpkg/status.d/dropbear",
            b"Package: dropbear\nVersion: 2022\n",
        );
        assert_eq!(s.packages.len(), 1);
        let s = scan(
            "/lib/apk/db/installed",
            b"C:Q1\nP:musl\nV:1\n\nC:Q2\nP:tinyssh\nV:2",
        );
        assert_eq!(s.packages[0].2, "tinyssh");
        // The same text elsewhere is not a package database.
        assert!(scan("/srv/status", dpkg).packages.is_empty());
        // deb822 field names are case-insensitive; other remote logins.
        let s = scan(
            "/var/lib/dpkg/status",
            b"package: telnetd
STATUS: install ok installed

Package: xrdp
Status: install ok unpacked

Package: mosh
Status: install ok installed
",
        );
        assert_eq!(
            s.packages.iter().map(|p| p.2.as_str()).collect::<Vec<_>>(),
            ["telnetd", "xrdp", "mosh"]
        );
        let s = scan(
            "/lib/apk/db/installed",
            b"P:openssh
V:9
",
        );
        assert_eq!(s.packages[0].2, "openssh");
    }

    #[test]
    fn reads_authorized_keys_file_lines() {
        let cfg = b"# AuthorizedKeysFile ignored\nauthorizedkeysfile .ssh/authorized_keys /etc/ssh/keys/%u\nPort 22\n";
        let s = scan("/etc/ssh/sshd_config", cfg);
        assert_eq!(
            s.authorized_keys_files[0].2,
            [".ssh/authorized_keys", "/etc/ssh/keys/%u"]
        );
        let s = scan(
            "/etc/ssh/sshd_config.d/10-keys.conf",
            b"AuthorizedKeysFile \"/k/%h\"\n",
        );
        assert_eq!(s.authorized_keys_files[0].2, ["/k/%h"]);
        // `Keyword=value` is the same line to sshd.
        for line in ["AuthorizedKeysFile=/k/%u\n", "authorizedkeysfile = /k/%u\n"] {
            let s = scan("/etc/ssh/sshd_config", line.as_bytes());
            assert_eq!(s.authorized_keys_files[0].2, ["/k/%u"], "{line}");
        }
        let s = scan(
            "/etc/ssh/sshd_config",
            b"AuthorizedKeysCommand /usr/bin/fetch-keys %u\nAuthorizedKeysCommandUser nobody\n",
        );
        assert_eq!(s.key_commands[0].2, "/usr/bin/fetch-keys %u");
        let s = scan("/etc/ssh/sshd_config", b"AuthorizedKeysCommand none\n");
        assert!(s.key_commands.is_empty());
    }
}
