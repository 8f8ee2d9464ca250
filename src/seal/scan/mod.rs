//! What the seal learns from file content, streamed once per layer in
//! constant memory: private keys in any file, remote-login servers by
//! what their binaries carry, and both inside archives
//! ([`content`], [`keys`], [`nested`]); installed packages and the
//! services init systems start ([`records`]); sshd directives wherever
//! they are, for the rules to follow from the configs sshd reads.
//!
//! Findings are recorded per (path, layer); the rules later keep only those
//! whose file is still the one in the final filesystem.

mod content;
mod keys;
mod nested;
mod records;

use std::io::{self, Read};

use crate::rootfs::interp;
use crate::rootfs::meta::ImagePath;

pub use content::Directive;
pub use records::{REMOTE_LOGIN_PACKAGES, REMOTE_LOGIN_SERVERS, starts_server};

/// Read size when the scan reads a file itself.
const CHUNK: usize = 64 * 1024;

/// The scanner's version: what it looks for (the tables of [`content`],
/// [`keys`], [`records`] and the bounds of [`nested`]) and how. Findings
/// cached under another version are never trusted, so bump this with any
/// change to them; [`tests::the_scanner_version_covers_its_tables`] fails
/// until you do.
///
/// 3: keys judged by parsing what follows a marker (PEM bodies decoded to
///    their ASN.1 shape or magic, DER files, base64 of DER keys, JWKs with
///    a private member); servers by their binaries' strings and by the
///    service definitions that start them; archives opened; sshd
///    directives read from any file, for `Include`.
/// 4: the interpreters ELF programs (`PT_INTERP`) and scripts (`#!`)
///    name, from their first [`interp::HEAD`] bytes, for the build's
///    runtime checks.
pub const SCANNER_VERSION: &str = "4";

/// One thing the scan found in a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Found {
    /// Private key material, in the file or in an archive member.
    Key {
        format: String,
        inside: Option<String>,
    },
    /// A remote-login package a package database lists as installed.
    Package(String),
    /// A remote-login server's binary, told by its content.
    Server {
        server: String,
        inside: Option<String>,
    },
    /// A service definition's line that starts a remote-login server.
    Starts { server: String, line: usize },
    /// An sshd directive at the start of a line.
    Directive(Directive),
    /// Part of an archive the scan's bounds kept it from reading.
    Unscanned { inside: String, reason: String },
    /// The interpreter an ELF program (`PT_INTERP`) or a script (`#!`)
    /// names: not the seal's, but for the build's check that what the
    /// image runs can start.
    Interpreter(String),
}

/// What the content scan found: `(path, layer, what)`.
#[derive(Debug, Default)]
pub struct Scan {
    pub found: Vec<(ImagePath, usize, Found)>,
    /// The read buffer, kept between files.
    buf: Vec<u8>,
}

/// What a scan found in one layer, without its position: kept with a
/// cached layer so that serving it needs no second read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Findings {
    pub found: Vec<(ImagePath, Found)>,
}

/// How far a [`Scan`] had got, to go back to.
#[derive(Debug, Clone, Copy)]
pub struct Mark(usize);

impl Scan {
    /// A scan that found `found`.
    pub fn of(found: Vec<(ImagePath, usize, Found)>) -> Scan {
        Scan {
            found,
            buf: Vec::new(),
        }
    }

    pub fn mark(&self) -> Mark {
        Mark(self.found.len())
    }

    /// What was found since `mark`.
    pub fn since(&self, mark: Mark) -> Findings {
        Findings {
            found: self.found[mark.0..]
                .iter()
                .map(|(p, _, f)| (p.clone(), f.clone()))
                .collect(),
        }
    }

    /// Adds findings of layer `layer`, as [`since`](Self::since) gave them.
    pub fn extend(&mut self, findings: Findings, layer: usize) {
        self.found
            .extend(findings.found.into_iter().map(|(p, f)| (p, layer, f)));
    }

    /// Forgets what was found since `mark`: the layer read was not used.
    pub fn rollback(&mut self, mark: Mark) {
        self.found.truncate(mark.0);
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

    /// Every finding of one kind, with its path and layer.
    pub fn each<'a, T>(
        &'a self,
        pick: impl Fn(&'a Found) -> Option<T> + 'a,
    ) -> impl Iterator<Item = (&'a ImagePath, usize, T)> + 'a {
        self.found
            .iter()
            .filter_map(move |(p, layer, f)| pick(f).map(|t| (p, *layer, t)))
    }
}

/// Whether sshd reads `path` as a config of its own: `sshd_config` in any
/// directory (`sshd -f` takes any path), or a file in `sshd_config.d`.
pub fn is_sshd_config(path: &ImagePath) -> bool {
    let dir = path.parent_rel();
    path.file_name() == "sshd_config" || dir.rsplit('/').next() == Some("sshd_config.d")
}

/// One file being scanned, fed in chunks: by [`Scan::visit`] from a reader,
/// or by the layer writer as it streams a file into a new layer, so a fresh
/// layer is scanned without being read back.
pub struct FileScan {
    path: ImagePath,
    layer: usize,
    kind: Option<records::Kind>,
    content: content::Content,
    archive: nested::Spool,
    lines: records::Lines,
    records: records::Records,
    interp: interp::Head,
}

impl FileScan {
    pub fn new(path: ImagePath, layer: usize) -> FileScan {
        let kind = records::kind_of(&path);
        FileScan {
            path,
            layer,
            kind,
            content: content::Content::new(true),
            archive: nested::Spool::default(),
            lines: records::Lines::default(),
            records: records::Records::new(kind),
            interp: interp::Head::default(),
        }
    }

    pub fn feed(&mut self, chunk: &[u8]) {
        self.content.feed(chunk);
        self.archive.feed(chunk);
        self.interp.feed(chunk);
        if self.kind.is_some() {
            let records = &mut self.records;
            self.lines.feed(chunk, &mut |line| records.line(line));
        }
    }

    /// Ends the file and records what it held in `scan`.
    pub fn finish(mut self, scan: &mut Scan) {
        let records = &mut self.records;
        self.lines.finish(&mut |line| records.line(line));
        self.records.end();
        let content = self.content.finish();
        let mut found = Vec::new();
        if let Some(format) = content.key {
            found.push(Found::Key {
                format,
                inside: None,
            });
        }
        found.extend(content.servers.into_iter().map(|server| Found::Server {
            server: server.to_string(),
            inside: None,
        }));
        found.extend(content.directives.into_iter().map(Found::Directive));
        found.extend(self.records.packages.into_iter().map(Found::Package));
        found.extend(
            self.records
                .started
                .into_iter()
                .map(|(server, line)| Found::Starts {
                    server: server.to_string(),
                    line,
                }),
        );
        found.extend(self.interp.interpreter().map(Found::Interpreter));
        let key_found = found.iter().any(|f| matches!(f, Found::Key { .. }));
        for (inside, what) in self.archive.finish() {
            found.push(match what {
                // The file's own key is the finding; one inside adds none.
                nested::Inner::Key(_) if key_found => continue,
                nested::Inner::Key(format) => Found::Key {
                    format,
                    inside: Some(inside),
                },
                nested::Inner::Server(server) => Found::Server {
                    server: server.to_string(),
                    inside: Some(inside),
                },
                nested::Inner::Unscanned(reason) => Found::Unscanned { inside, reason },
            });
        }
        scan.found.extend(
            found
                .into_iter()
                .map(|f| (self.path.clone(), self.layer, f)),
        );
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
    fn begin(&mut self, path: &std::sync::Arc<str>) {
        self.current = ImagePath::from_shared(std::sync::Arc::clone(path))
            .map(|p| FileScan::new(p, self.layer));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins the scanner's tables to its version: changing a marker, a
    /// signature, a package or server name, a watched file or a bound
    /// without bumping [`SCANNER_VERSION`] would let stale cached findings
    /// through.
    #[test]
    fn the_scanner_version_covers_its_tables() {
        let probes = [
            "var/lib/dpkg/status",
            "var/lib/dpkg/status.d/x",
            "lib/apk/db/installed",
            "etc/inittab",
            "etc/systemd/system/x.service",
            "etc/sv/x/run",
        ];
        let kinds: Vec<String> = probes
            .iter()
            .map(|p| {
                format!(
                    "{p}={:?}",
                    records::kind_of(&ImagePath::from_rel(p).unwrap())
                )
            })
            .collect();
        let tables = format!(
            "{:?}|{}|{}|{:?}|{:?}|{:?}|{REMOTE_LOGIN_PACKAGES:?}|{REMOTE_LOGIN_SERVERS:?}|{}|{}|{}|{}|{}|{}|{kinds:?}",
            keys::BLOCKS,
            content::PUTTY_MARKER,
            content::BASE64_PEM_MARKER,
            content::BASE64_DER_STARTS,
            content::SERVER_SIGNATURES,
            content::DIRECTIVES,
            content::LOOKAHEAD,
            records::MAX_LINE,
            nested::MAX_DEPTH,
            nested::MAX_BYTES,
            nested::MAX_MEMBERS,
            interp::HEAD,
        );
        let fingerprint = crate::digest::Digest::of(tables.as_bytes()).to_string();
        assert_eq!(
            (SCANNER_VERSION, fingerprint.as_str()),
            (
                "4",
                "sha256:9e5e1cc49b67580b8a6cc9e1248153c3cd2785b6a837f107bb93d0a4e65fab55"
            ),
            "the scanner's tables changed: bump SCANNER_VERSION, then pin the new fingerprint"
        );
    }

    /// Hands out bytes a few at a time, as a decompressor may.
    struct Dribble<'a>(&'a [u8], usize);

    impl Read for Dribble<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(self.1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn scan(path: &str, content: &[u8]) -> Scan {
        let mut s = Scan::default();
        s.visit(&path.parse().unwrap(), 0, &mut &content[..])
            .unwrap();
        s
    }

    fn key_in(content: &[u8]) -> Option<String> {
        scan("/some/file", content)
            .each(|f| match f {
                Found::Key { format, .. } => Some(format.clone()),
                _ => None,
            })
            .next()
            .map(|k| k.2)
    }

    /// Real keys, small: RSA 512 (PKCS#1), P-256 (SEC1), ed25519 (PKCS#8).
    const RSA: &str = "-----BEGIN RSA PRIVATE KEY-----
MIIBPAIBAAJBAMQWh8rxVnAttpQGhVDD8E+WMAWv9LZphCBjNxlahIsT7KKJlXHT
K8Rri5TkXi1LaHBn1ZsHdACaCU/mxGY0QysCAwEAAQJBALZ/jaSo1t0S/qFoLD3O
DuPTkSBJ8kSvkcQe8xIKt99DapZCIknckxFvk4H8ELWOjGo04tkLmv7/3P2uUlxz
pEECIQDyhTejd4iH+itrn5ziO3BacIonGlqPP5YIxdrpRDOwiwIhAM78onA+AwRl
5nAfuMS4IM9eIXoDsXju2jUwa73xdGvhAiEAotZX+WZ1Qffz15ugVzbZxZ/y4zaK
v8xODS3sQtwMaOkCIQC0/m6gTWlgACbnpqVvxz5RdhM52V7ny5ydZBDij+9ooQIg
JxSC6IAULT3qKDAfc3pSV8B2i+4/XiOdqquC7AgZ2jc=
-----END RSA PRIVATE KEY-----
";
    const EC: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIM9LRqz68qtS6GXJBYcmTN6vwcQmZoy+qzm1S5wzuco/oAoGCCqGSM49
AwEHoUQDQgAEXMLEi2A6LqSJPfPDtCQuG6V7Cqyqm0K/yGx79vgsZ6DRbSnR/BvH
++Yh7md1H4HcMbNFIaBgEcPBaFF3YjzLUA==
-----END EC PRIVATE KEY-----
";
    const ED25519_DER_BASE64: &str =
        "MC4CAQAwBQYDK2VwBCIEIJmCA40oRQBHTU+qzEOz9QoFmyHEXkisBZJ/nkT9nrxg";

    fn base64(bytes: impl AsRef<[u8]>) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn finds_keys_by_what_their_bodies_decode_to() {
        assert_eq!(key_in(RSA.as_bytes()).as_deref(), Some("RSA PRIVATE KEY"));
        assert_eq!(key_in(EC.as_bytes()).as_deref(), Some("EC PRIVATE KEY"));
        let pkcs8 = format!(
            "-----BEGIN PRIVATE KEY-----\n{ED25519_DER_BASE64}\n-----END PRIVATE KEY-----\n"
        );
        assert_eq!(key_in(pkcs8.as_bytes()).as_deref(), Some("PRIVATE KEY"));
        let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n";
        assert_eq!(
            key_in(encrypted.as_bytes()).as_deref(),
            Some("RSA PRIVATE KEY")
        );
        let openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n";
        assert_eq!(
            key_in(openssh.as_bytes()).as_deref(),
            Some("OPENSSH PRIVATE KEY")
        );
        let putty = "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n";
        assert_eq!(
            key_in(putty.as_bytes()).as_deref(),
            Some("PuTTY private key")
        );
        // A PGP secret key packet (tag 5, old format) after armor headers.
        let pgp = format!(
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: x\n\n{}\n=abcd\n-----END PGP PRIVATE KEY BLOCK-----\n",
            base64([0x95, 0x01, 0xd8, 0x04, 0, 0, 0, 0, 22])
        );
        assert_eq!(
            key_in(pgp.as_bytes()).as_deref(),
            Some("PGP PRIVATE KEY BLOCK")
        );
    }

    #[test]
    fn finds_keys_however_they_are_written() {
        let variants = [
            // OpenSSL reads these as the same key.
            RSA.replacen("-----\n", "----- \n", 1),
            RSA.replace('\n', "\r\n").replacen("-----\r\n", "-----\r\n\r\n", 1),
            // Embedded: a YAML block, a JSON string, a .env value.
            format!("tls:\n  key: |\n    {}", EC.replace('\n', "\n    ")),
            format!("{{\"key\": \"{}\"}}", EC.replace('\n', "\\n")),
            format!("TLS_KEY=\"{}\"\n", EC.replace('\n', "\\n")),
            // After NUL padding, as in a tar's member.
            format!("{}{RSA}", "\0".repeat(300)),
            // A whole PEM in base64 (kubeconfig's client-key-data).
            format!("users:\n- user:\n    client-key-data: {}\n", base64(RSA)),
            // A DER key in base64 on one line.
            format!("PRIVATE_KEY={ED25519_DER_BASE64}\n"),
            // A JWK with its private member.
            "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\",\"d\":\"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A\"}".to_string(),
        ];
        for text in &variants {
            assert!(key_in(text.as_bytes()).is_some(), "{text:?}");
        }
        // A DER key file.
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend([9; 32]);
        assert_eq!(key_in(&der).as_deref(), Some("PRIVATE KEY (DER)"));
    }

    #[test]
    fn names_of_formats_and_examples_are_not_keys() {
        let texts: [&[u8]; 9] = [
            // As libcrypto carries them.
            b"\0-----BEGIN RSA PRIVATE KEY-----\0-----END",
            b"-----BEGIN PRIVATE KEY-----\nsee RFC 5208\n",
            b"the -----BEGIN PRIVATE KEY----- marker\nAAAAAAAAAAAAAAAAAAAA",
            b"-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkq\n",
            b"PuTTY-User-Key-File-%d: %s",
            // Documentation: prose after a marker, a truncated example.
            b"-----BEGIN RSA PRIVATE KEY-----\nThisIsWhereYourKeyGoesPasteItHere\n-----END RSA PRIVATE KEY-----\n",
            b"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA...\n-----END RSA PRIVATE KEY-----\n",
            // A public JWK.
            b"{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}",
            b"MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
        ];
        for text in texts {
            assert_eq!(key_in(text), None, "{}", String::from_utf8_lossy(text));
        }
        // libgnutls's self-test keys, C strings in an ELF library.
        let mut elf = b"\x7fELF\x02\x01\x01\0\0\0".to_vec();
        elf.extend_from_slice(RSA.as_bytes());
        elf[10..].iter_mut().take(0).for_each(|_| ());
        let mut library = b"\x7fELF\x02\x01\x01\0".to_vec();
        library.push(0);
        library.extend_from_slice(RSA.as_bytes());
        assert_eq!(key_in(&library), None);
    }

    #[test]
    fn finds_a_key_split_across_reads_in_a_large_file() {
        let mut content = vec![b'x'; CHUNK - 10];
        content.push(b'\n');
        content.extend_from_slice(EC.as_bytes());
        content.extend(std::iter::repeat_n(b'y', 3 * CHUNK));
        let mut s = Scan::default();
        s.visit(&"/big".parse().unwrap(), 3, &mut Dribble(&content, 7919))
            .unwrap();
        assert_eq!(s.found.len(), 1, "{:?}", s.found);
        assert_eq!(s.found[0].1, 3);
    }

    /// The strings servers carry, in ELF files only.
    #[test]
    fn finds_servers_by_content() {
        let mut sshd = b"\x7fELF\x02\x01\x01\0".to_vec();
        sshd.extend_from_slice(b"\0usage: sshd [-46DdeiqTtV]\0");
        let s = scan("/opt/x", &sshd);
        assert!(
            matches!(&s.found[..], [(_, 0, Found::Server { server, inside: None })] if server == "OpenSSH sshd"),
            "{:?}",
            s.found
        );
        // The same words in a text file are documentation.
        assert!(
            scan("/usr/share/doc/x", b"usage: sshd [-46DdeiqTtV]\n")
                .found
                .is_empty()
        );
    }

    #[test]
    fn looks_inside_archives() {
        use std::io::Write as _;
        let mut sshd = b"\x7fELF\x02\x01\x01\0".to_vec();
        sshd.extend_from_slice(b"\0Dropbear server v%s\0");
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(sshd.len() as u64);
        header.set_mode(0o755);
        tar.append_data(&mut header, "usr/sbin/x", &sshd[..])
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_size(EC.len() as u64);
        tar.append_data(&mut header, "etc/k", EC.as_bytes())
            .unwrap();
        let tar = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        zip.start_file("tools.tar.gz", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(&gz).unwrap();
        let zip = zip.finish().unwrap().into_inner();
        let s = scan("/opt/bundle.zip", &zip);
        let found: Vec<&Found> = s.found.iter().map(|f| &f.2).collect();
        assert!(
            found.contains(&&Found::Server {
                server: "dropbear".into(),
                inside: Some("tools.tar.gz!/usr/sbin/x".into())
            }),
            "{found:?}"
        );
        assert!(
            found.contains(&&Found::Key {
                format: "EC PRIVATE KEY".into(),
                inside: Some("tools.tar.gz!/etc/k".into())
            }),
            "{found:?}"
        );
        // Nested deeper than the bound: reported, not passed.
        let mut deep = gz.clone();
        for _ in 0..4 {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&deep).unwrap();
            deep = gz.finish().unwrap();
        }
        let s = scan("/opt/deep.gz", &deep);
        assert!(
            s.found.iter().any(
                |f| matches!(&f.2, Found::Unscanned { reason, .. } if reason.contains("nested"))
            ),
            "{:?}",
            s.found
        );
    }

    #[test]
    fn reads_package_databases() {
        let packages = |s: Scan| -> Vec<String> {
            s.each(|f| match f {
                Found::Package(p) => Some(p.clone()),
                _ => None,
            })
            .map(|p| p.2)
            .collect()
        };
        let dpkg = b"Package: openssh-client\nStatus: install ok installed\n\nPackage: openssh-server\nStatus: install ok installed\nVersion: 1\n\nPackage: dropbear\nStatus: deinstall ok config-files\n";
        assert_eq!(
            packages(scan("/var/lib/dpkg/status", dpkg)),
            ["openssh-server"]
        );
        assert_eq!(
            packages(scan(
                "/var/lib/dpkg/status.d/dropbear",
                b"Package: dropbear\nVersion: 2022\n"
            )),
            ["dropbear"]
        );
        assert_eq!(
            packages(scan(
                "/lib/apk/db/installed",
                b"C:Q1\nP:musl\nV:1\n\nC:Q2\nP:tinyssh\nV:2"
            )),
            ["tinyssh"]
        );
        // The same text elsewhere is not a package database.
        assert!(packages(scan("/srv/status", dpkg)).is_empty());
        // deb822 field names are case-insensitive; other remote logins.
        let s = scan(
            "/var/lib/dpkg/status",
            b"package: telnetd\nSTATUS: install ok installed\n\nPackage: xrdp\nStatus: install ok unpacked\n\nPackage: mosh\nStatus: install ok installed\n",
        );
        assert_eq!(packages(s), ["telnetd", "xrdp", "mosh"]);
    }

    #[test]
    fn reads_sshd_directives_from_any_file() {
        let directives = |path: &str, text: &[u8]| -> Vec<Directive> {
            scan(path, text)
                .each(|f| match f {
                    Found::Directive(d) => Some(d.clone()),
                    _ => None,
                })
                .map(|d| d.2)
                .collect()
        };
        let cfg = b"# AuthorizedKeysFile ignored\nauthorizedkeysfile .ssh/authorized_keys /etc/ssh/keys/%u\nPort 22\n";
        assert_eq!(
            directives("/etc/ssh/sshd_config", cfg),
            [Directive::AuthorizedKeysFile(vec![
                ".ssh/authorized_keys".into(),
                "/etc/ssh/keys/%u".into()
            ])]
        );
        for line in [
            "AuthorizedKeysFile=/k/%u\n",
            "  authorizedkeysfile = \"/k/%u\" # comment\n",
        ] {
            assert_eq!(
                directives("/opt/any.conf", line.as_bytes()),
                [Directive::AuthorizedKeysFile(vec!["/k/%u".into()])],
                "{line}"
            );
        }
        assert_eq!(
            directives("/etc/ssh/sshd_config", b"Include /etc/ssh/extra/*.conf other.conf\nAuthorizedKeysCommand /usr/bin/fetch-keys %u\nAuthorizedKeysCommandUser nobody\nAuthorizedKeysCommand none\n"),
            [
                Directive::Include(vec!["/etc/ssh/extra/*.conf".into(), "other.conf".into()]),
                Directive::AuthorizedKeysCommand("/usr/bin/fetch-keys %u".into()),
            ]
        );
        assert!(directives("/x.c", b"#include <stdio.h>\n").is_empty());
        // Read a few bytes at a time, each line is read once, and whole.
        let mut text = "# padding\n".repeat(7000);
        text.push_str("  AuthorizedKeysFile /k/%u\nInclude /etc/x/*.conf\n");
        text.push_str(&"\n".repeat(5000));
        for step in [1, 7, 4096, 65536] {
            let mut s = Scan::default();
            s.visit(
                &"/etc/ssh/sshd_config".parse().unwrap(),
                0,
                &mut Dribble(text.as_bytes(), step),
            )
            .unwrap();
            let found: Vec<&Found> = s.found.iter().map(|f| &f.2).collect();
            assert_eq!(
                found,
                [
                    &Found::Directive(Directive::AuthorizedKeysFile(vec!["/k/%u".into()])),
                    &Found::Directive(Directive::Include(vec!["/etc/x/*.conf".into()])),
                ],
                "{step}"
            );
        }
    }

    #[test]
    fn reads_service_definitions() {
        let s = scan(
            "/etc/inittab",
            b"::sysinit:/etc/init.d/rcS\n::respawn:/bin/busybox telnetd -F\n",
        );
        assert!(
            matches!(&s.found[..], [(_, _, Found::Starts { server, line: 2 })] if server == "telnetd"),
            "{:?}",
            s.found
        );
    }
}
