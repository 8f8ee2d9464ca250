//! A real, signed Debian archive for the tests, made at test time from
//! real `.deb` files and served over HTTP on 127.0.0.1.
//!
//! The layout is Debian's (https://wiki.debian.org/DebianRepository/Format):
//! `pool/COMPONENT/PREFIX/SOURCE/*.deb`, one `Packages` index (plain, and
//! xz or gzip) and `dists/SUITE/Release` listing the indexes' sizes and
//! hashes, signed as `InRelease` (clearsigned) and `Release.gpg`
//! (detached) by a throwaway key made once per test process.
//!
//! Refusal tests get an archive that is wrong in one way: unsigned, signed
//! by a key the keyring lacks ([`Signing`]), or edited after signing
//! ([`Archive::tamper_packages`], [`Archive::replace_deb`]).
//! tests/debian_archive.rs proves with real apt that the archive is one
//! apt accepts and that each hostile variant is one apt refuses.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::{require, run, stderr};

/// The Release's date: fixed, so the same `.deb` files always make the
/// same archive (only the signatures differ), and in the past, so apt
/// does not call the Release "not valid yet".
const DATE: &str = "Sat, 01 Jun 2024 00:00:00 UTC";

/// The signing key's user id.
const ARCHIVE_UID: &str = "ingot test archive <test@ingot.invalid>";
/// The user id of the key [`Signing::WrongKey`] signs with.
const STRANGER_UID: &str = "ingot test stranger <stranger@ingot.invalid>";

/// A recipe's `archives:` naming the archive at `url` (its keyring copied
/// beside the recipe as `archive.gpg`), and its first layer, `usr`: merged
/// /usr, as Debian's packages expect it.
pub fn archive_and_merged_usr(url: &str) -> String {
    format!(
        "archives:\n  - url: {url}\n    suites: [stable]\n    components: [main]\n    keyring: archive.gpg\n\
         layers:\n  - name: usr\n    steps:\n\
         \x20     - mkdir: {{ path: /usr/bin }}\n\
         \x20     - mkdir: {{ path: /usr/lib }}\n\
         \x20     - mkdir: {{ path: /usr/lib64 }}\n\
         \x20     - symlink: {{ path: /bin, target: usr/bin }}\n\
         \x20     - symlink: {{ path: /lib, target: usr/lib }}\n\
         \x20     - symlink: {{ path: /lib64, target: usr/lib64 }}\n"
    )
}

pub struct ArchiveOptions {
    pub suite: String,
    pub component: String,
    pub arch: String,
    pub sign: Signing,
}

impl Default for ArchiveOptions {
    /// `stable`, `main`, `amd64`, signed.
    fn default() -> ArchiveOptions {
        ArchiveOptions {
            suite: "stable".into(),
            component: "main".into(),
            arch: "amd64".into(),
            sign: Signing::Signed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// `InRelease` and `Release.gpg`, by the key [`Archive::keyring`] holds.
    Signed,
    /// `Release` only: no `InRelease`, no `Release.gpg`.
    Unsigned,
    /// `InRelease` and `Release.gpg` by another key than the keyring's.
    WrongKey,
}

/// An archive in a temp dir and the server serving it; both go on drop.
pub struct Archive {
    // Declared first, so it stops before the directory goes.
    server: Server,
    _dir: tempfile::TempDir,
    root: PathBuf,
    keyring: PathBuf,
    armored_keyring: PathBuf,
    options: ArchiveOptions,
    /// Each package's `Filename:`.
    pool: BTreeMap<String, String>,
}

impl Archive {
    /// Lays out pool/ + dists/ from the given .deb files and signs it.
    pub fn new(debs: &[PathBuf], options: ArchiveOptions) -> Archive {
        for tool in ["dpkg-deb", "md5sum", "gpg", "gpgconf"] {
            require(tool);
        }
        let dir = tempfile::tempdir().expect("a temp dir for the archive");
        let root = dir.path().join("archive");
        let stanzas = fill_pool(debs, &root, &options.component);
        let mut archive = Archive {
            server: Server::start(&root),
            keyring: dir.path().join("keyring.gpg"),
            armored_keyring: dir.path().join("keyring.asc"),
            _dir: dir,
            root,
            options,
            pool: BTreeMap::new(),
        };
        archive.write_indexes(&stanzas);
        archive.write_keyrings();
        archive
    }

    /// Replaces what the archive holds with `debs`, at the same address
    /// and signed by the same key: the archive after a point release.
    pub fn publish(&mut self, debs: &[PathBuf]) {
        for dir in ["pool", "dists"] {
            std::fs::remove_dir_all(self.root.join(dir)).expect("emptying the archive");
        }
        let stanzas = fill_pool(debs, &self.root, &self.options.component);
        self.write_indexes(&stanzas);
    }

    /// `Packages` of `stanzas`, the Release listing it, its signatures.
    fn write_indexes(&mut self, stanzas: &[Stanza]) {
        self.pool = stanzas
            .iter()
            .map(|s| (s.package.clone(), s.filename.clone()))
            .collect();
        let packages: String = stanzas.iter().map(|s| s.text.as_str()).collect();
        let indexes = self.write_packages(packages.as_bytes());
        self.write_release(&indexes);
    }

    /// `http://127.0.0.1:PORT`, the archive root, without a trailing `/`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// The signing key's public key, binary (`gpg --export`), named `*.gpg`.
    pub fn keyring(&self) -> &Path {
        &self.keyring
    }

    /// The same key ASCII-armored, in a file named `*.asc`: apt's
    /// `signed-by` takes an armored keyring only under that extension.
    pub fn armored_keyring(&self) -> &Path {
        &self.armored_keyring
    }

    /// The directory served: `pool/` and `dists/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The paths requested so far, oldest first, percent-decoded and
    /// without the leading `/` (`dists/stable/InRelease`), as
    /// [`pool_path`](Self::pool_path) names files.
    pub fn requests(&self) -> Vec<String> {
        self.server.requests()
    }

    /// A second server over the same root, on another port: a mirror.
    pub fn serve_another(&self) -> Server {
        Server::start(&self.root)
    }

    /// Changes one byte of `Packages` (the case of the first letter of
    /// the first `Description:`), and rewrites its compressed copy from
    /// it: a well-formed index that no longer matches the signed Release.
    pub fn tamper_packages(&self) {
        let path = self.root.join(self.index_dir()).join("Packages");
        let mut packages = std::fs::read(&path).expect("reading Packages");
        let at = find(&packages, b"\nDescription: ").expect("a Description in Packages") + 14;
        assert!(
            packages[at].is_ascii_alphabetic(),
            "Packages has a letter after Description: to change"
        );
        packages[at] ^= 0x20;
        self.write_packages(&packages);
    }

    /// Overwrites `package`'s pool file with the bytes of `with`.
    pub fn replace_deb(&self, package: &str, with: &Path) {
        let target = self.root.join(self.pool_path(package));
        std::fs::copy(with, &target).unwrap_or_else(|e| {
            panic!("copying {} over {}: {e}", with.display(), target.display())
        });
    }

    /// `package`'s file in the archive (its `Filename:`):
    /// `pool/main/g/glibc/libc6_2.36-9+deb12u9_amd64.deb`.
    pub fn pool_path(&self, package: &str) -> String {
        self.pool
            .get(package)
            .unwrap_or_else(|| panic!("no package {package} in the archive"))
            .clone()
    }

    fn suite_dir(&self) -> PathBuf {
        self.root.join("dists").join(&self.options.suite)
    }

    /// `COMPONENT/binary-ARCH` under the suite's directory.
    fn index_relative(&self) -> String {
        format!("{}/binary-{}", self.options.component, self.options.arch)
    }

    /// `dists/SUITE/COMPONENT/binary-ARCH`.
    fn index_dir(&self) -> String {
        format!("dists/{}/{}", self.options.suite, self.index_relative())
    }

    /// Writes `Packages` and its compressed copy; each one's path relative
    /// to the suite's directory, and its bytes, for the Release.
    fn write_packages(&self, packages: &[u8]) -> Vec<(String, Vec<u8>)> {
        let dir = self.root.join(self.index_dir());
        std::fs::create_dir_all(&dir).expect("making the index directory");
        let (extension, compressor) = compressor();
        let indexes = [
            ("Packages".to_string(), packages.to_vec()),
            (format!("Packages.{extension}"), pipe(compressor, packages)),
        ];
        indexes
            .into_iter()
            .map(|(name, bytes)| {
                std::fs::write(dir.join(&name), &bytes).expect("writing an index");
                (format!("{}/{name}", self.index_relative()), bytes)
            })
            .collect()
    }

    /// Writes `Release`, and signs it as [`ArchiveOptions::sign`] says.
    fn write_release(&self, indexes: &[(String, Vec<u8>)]) {
        let suite_dir = self.suite_dir();
        std::fs::write(suite_dir.join("Release"), self.release(indexes)).expect("writing Release");
        match self.options.sign {
            Signing::Signed => sign(&keys().archive, &suite_dir),
            Signing::WrongKey => sign(&keys().stranger, &suite_dir),
            Signing::Unsigned => {}
        }
    }

    /// The archive key's public half, whatever key signed.
    fn write_keyrings(&self) {
        let key = &keys().archive;
        std::fs::write(&self.keyring, &key.public).expect("writing the keyring");
        std::fs::write(&self.armored_keyring, &key.armored).expect("writing the armored keyring");
    }

    /// The Release text: fields as Debian's, then each index's MD5 and
    /// SHA-256, its size right-aligned to the widest, and its path.
    fn release(&self, indexes: &[(String, Vec<u8>)]) -> String {
        let o = &self.options;
        let mut text = format!(
            "Origin: ingot test\nLabel: ingot test\nSuite: {suite}\nCodename: {suite}\n\
             Date: {DATE}\nArchitectures: {arch}\nComponents: {component}\n\
             Description: ingot test archive\n",
            suite = o.suite,
            arch = o.arch,
            component = o.component
        );
        let width = indexes
            .iter()
            .map(|(_, bytes)| bytes.len().to_string().len())
            .max()
            .unwrap_or(1);
        for (field, hash) in [("MD5Sum", md5 as fn(&[u8]) -> String), ("SHA256", sha256)] {
            text.push_str(&format!("{field}:\n"));
            for (path, bytes) in indexes {
                text.push_str(&format!(
                    " {} {:>width$} {path}\n",
                    hash(bytes),
                    bytes.len()
                ));
            }
        }
        text
    }
}

/// Copies each `.deb` into the pool; their stanzas, sorted by package
/// name (stable: packages of one name stay in the given order).
fn fill_pool(debs: &[PathBuf], root: &Path, component: &str) -> Vec<Stanza> {
    let mut stanzas: Vec<Stanza> = debs
        .iter()
        .map(|deb| Stanza::add_to_pool(deb, root, component))
        .collect();
    stanzas.sort_by(|a, b| a.package.cmp(&b.package));
    stanzas
}

/// One package's stanza in `Packages`.
struct Stanza {
    package: String,
    /// Its `Filename:`, relative to the archive root.
    filename: String,
    /// The control fields, then `Filename`, `Size`, `MD5sum`, `SHA256`,
    /// and the blank line that ends a stanza.
    text: String,
}

impl Stanza {
    /// Copies `deb` into the pool where Debian would keep it, named
    /// `PACKAGE_VERSION_ARCH.deb` (the version without its epoch, as in
    /// Debian's pool), and makes its stanza.
    fn add_to_pool(deb: &Path, root: &Path, component: &str) -> Stanza {
        let control = control(deb);
        let field = |name: &str| {
            control_field(&control, name)
                .unwrap_or_else(|| panic!("{}: no {name} field", deb.display()))
        };
        let (package, version, arch) = (field("Package"), field("Version"), field("Architecture"));
        // `Source: gcc-12 (12.2.0-14)` names the source and its version.
        let source = control_field(&control, "Source")
            .and_then(|s| s.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| package.clone());
        let version = version.split_once(':').map_or(&*version, |(_, v)| v);
        let filename = format!(
            "pool/{component}/{}/{source}/{package}_{version}_{arch}.deb",
            pool_prefix(&source)
        );
        let bytes = std::fs::read(deb).unwrap_or_else(|e| panic!("{}: {e}", deb.display()));
        let target = root.join(&filename);
        std::fs::create_dir_all(target.parent().expect("a pool directory"))
            .expect("making a pool directory");
        std::fs::write(&target, &bytes).expect("writing a pool file");
        let text = format!(
            "{}\nFilename: {filename}\nSize: {}\nMD5sum: {}\nSHA256: {}\n\n",
            control.trim_end(),
            bytes.len(),
            md5(&bytes),
            sha256(&bytes)
        );
        Stanza {
            package,
            filename,
            text,
        }
    }
}

/// The control stanza of a `.deb` (`dpkg-deb --field`, no field named).
fn control(deb: &Path) -> String {
    let out = run(Command::new("dpkg-deb").arg("--field").arg(deb));
    assert!(
        out.status.success(),
        "dpkg-deb --field {}: {}",
        deb.display(),
        stderr(&out)
    );
    String::from_utf8(out.stdout).expect("a UTF-8 control stanza")
}

/// A one-line field of a control stanza.
fn control_field(control: &str, name: &str) -> Option<String> {
    control.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// The pool's directory for a source: its first letter, or the first four
/// for `lib*` (`libx`), so no directory holds too many sources.
fn pool_prefix(source: &str) -> &str {
    let n = if source.starts_with("lib") && source.len() > 3 {
        4
    } else {
        1
    };
    &source[..n]
}

/// The compressed index's extension and the command making it: xz as
/// Debian's archive has it, else gzip (`-n`: no name or time in it).
fn compressor() -> (&'static str, &'static [&'static str]) {
    if on_path("xz") {
        ("xz", &["xz", "-c"])
    } else {
        require("gzip");
        ("gz", &["gzip", "-9", "-n", "-c"])
    }
}

fn on_path(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `command` with `input` on stdin; its stdout. The input is written
/// from another thread, so a command writing as it reads cannot block.
fn pipe(command: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(command[0])
        .args(&command[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", command[0]));
    let mut stdin = child.stdin.take().expect("a stdin pipe");
    let out = thread::scope(|s| {
        s.spawn(move || stdin.write_all(input));
        child.wait_with_output().expect("waiting for a command")
    });
    assert!(out.status.success(), "{command:?}: {}", stderr(&out));
    out.stdout
}

fn md5(bytes: &[u8]) -> String {
    let out = String::from_utf8(pipe(&["md5sum"], bytes)).expect("md5sum prints hex");
    out.split_whitespace()
        .next()
        .expect("md5sum prints a hash")
        .to_string()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A key as exported: secret (to sign in a GnuPG home of its own) and
/// public, binary and armored.
struct Key {
    fingerprint: String,
    secret: Vec<u8>,
    public: Vec<u8>,
    armored: Vec<u8>,
}

struct Keys {
    /// The archive's key: signs [`Signing::Signed`], is in the keyring.
    archive: Key,
    /// Signs [`Signing::WrongKey`]; in no keyring.
    stranger: Key,
}

/// The two keys, made once per test process (making keys is slow). Only
/// their bytes are kept: the home they were made in is removed and its
/// agent stopped at once, as a static is never dropped.
fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let home = GnupgHome::new();
        Keys {
            archive: home.generate(ARCHIVE_UID),
            stranger: home.generate(STRANGER_UID),
        }
    })
}

/// Writes `InRelease` (Release clearsigned) and `Release.gpg` (detached,
/// armored) in `suite_dir`, signed by `key`.
fn sign(key: &Key, suite_dir: &Path) {
    let home = GnupgHome::new();
    let secret = home.0.path().join("secret.gpg");
    std::fs::write(&secret, &key.secret).expect("writing the secret key");
    home.gpg(&["--import", utf8(&secret)]);
    let release = suite_dir.join("Release");
    for (mode, output) in [
        (&["--clearsign"][..], "InRelease"),
        (&["--armor", "--detach-sign"][..], "Release.gpg"),
    ] {
        let output = suite_dir.join(output);
        let mut args = vec!["--local-user", &key.fingerprint, "--digest-algo", "SHA512"];
        args.extend(mode);
        args.extend(["--output", utf8(&output), utf8(&release)]);
        home.gpg(&args);
    }
}

fn utf8(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("{} is not UTF-8", path.display()))
}

/// A throwaway GnuPG home; the agent gpg starts in it is stopped on drop.
struct GnupgHome(tempfile::TempDir);

impl GnupgHome {
    fn new() -> GnupgHome {
        // Short (under /tmp): the agent's socket path must fit in 108 bytes.
        GnupgHome(
            tempfile::Builder::new()
                .prefix("gpg")
                .tempdir()
                .expect("a temp dir for GnuPG"),
        )
    }

    /// Runs gpg in this home, without a passphrase or a prompt; its stdout.
    fn gpg(&self, args: &[&str]) -> Vec<u8> {
        let out = run(Command::new("gpg")
            .arg("--homedir")
            .arg(self.0.path())
            .args(["--batch", "--yes", "--quiet", "--pinentry-mode", "loopback"])
            .args(["--passphrase", ""])
            .args(args));
        assert!(out.status.success(), "gpg {args:?}: {}", stderr(&out));
        out.stdout
    }

    /// A new signing-only ed25519 key without expiry, exported.
    fn generate(&self, uid: &str) -> Key {
        self.gpg(&["--quick-gen-key", uid, "ed25519", "sign", "never"]);
        let exact = format!("={uid}");
        let listing = String::from_utf8(self.gpg(&["--with-colons", "--list-keys", &exact]))
            .expect("gpg lists keys in UTF-8");
        let fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_string())
            .unwrap_or_else(|| panic!("gpg listed no fingerprint for {uid}: {listing}"));
        Key {
            secret: self.gpg(&["--export-secret-keys", &fingerprint]),
            public: self.gpg(&["--export", &fingerprint]),
            armored: self.gpg(&["--armor", "--export", &fingerprint]),
            fingerprint,
        }
    }
}

impl Drop for GnupgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.0.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

/// A static HTTP/1.1 server of one directory on 127.0.0.1: GET and HEAD of
/// its files, one request per connection (`Connection: close`), every
/// requested path recorded. Stopped on drop.
pub struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(root: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = listener.local_addr().expect("a bound address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (root, requests, stop) = (root.to_path_buf(), requests.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    // A thread each, so a client that stalls stalls no other.
                    let (root, requests) = (root.clone(), requests.clone());
                    thread::spawn(move || {
                        let _ = serve(conn, &root, &requests);
                    });
                }
            })
        };
        Server {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, without a trailing `/`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// As [`Archive::requests`].
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request on `conn`, then closes it.
fn serve(mut conn: TcpStream, root: &Path, requests: &Mutex<Vec<String>>) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.set_write_timeout(Some(Duration::from_secs(60)))?;
    // None: closed before a whole head, as the stop wake-up does.
    let Some(head) = read_head(&mut conn)? else {
        return Ok(());
    };
    let mut words = head.lines().next().unwrap_or("").split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = percent_decode(target.split('?').next().unwrap_or(""));
    let path = path.strip_prefix('/').unwrap_or(&path).to_string();
    requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(path.clone());
    let found = match method {
        "GET" | "HEAD" => open(root, &path),
        _ => Err((405, "Method Not Allowed")),
    };
    match found {
        Ok((mut file, len)) => {
            conn.write_all(response_head(200, "OK", len).as_bytes())?;
            if method == "GET" {
                io::copy(&mut file, &mut conn)?;
            }
        }
        Err((status, reason)) => {
            let body = format!("{status} {reason}\n");
            conn.write_all(response_head(status, reason, body.len() as u64).as_bytes())?;
            if method != "HEAD" {
                conn.write_all(body.as_bytes())?;
            }
        }
    }
    conn.flush()?;
    finish(conn)
}

/// Ends a connection so the response survives: closing a socket that
/// still holds unread bytes (a keep-alive client's next, pipelined
/// request) resets it, and a reset can discard the response in flight.
/// So: shut the sending side, then read whatever comes until the client,
/// told `Connection: close`, closes its side.
fn finish(mut conn: TcpStream) -> io::Result<()> {
    conn.shutdown(Shutdown::Write)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 4096];
    while conn.read(&mut buf)? > 0 {}
    Ok(())
}

/// The request head, through its blank line; None if the client closed
/// first. Bounded: a head longer than 64 KiB is an error.
fn read_head(conn: &mut TcpStream) -> io::Result<Option<String>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while find(&head, b"\r\n\r\n").is_none() && find(&head, b"\n\n").is_none() {
        if head.len() > 64 * 1024 {
            return Err(io::Error::other("request head too long"));
        }
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

fn response_head(status: u16, reason: &str, len: u64) -> String {
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Length: {len}\r\n\
         Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    )
}

/// The file at `path` under `root` and its length; an HTTP status and
/// reason if there is none, or if the path would leave `root`.
fn open(root: &Path, path: &str) -> Result<(std::fs::File, u64), (u16, &'static str)> {
    let mut full = root.to_path_buf();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            // Refused, not resolved: `..` is never in an archive's paths.
            ".." => return Err((403, "Forbidden")),
            _ => full.push(segment),
        }
    }
    let not_found = (404, "Not Found");
    let file = std::fs::File::open(&full).map_err(|_| not_found)?;
    let meta = file.metadata().map_err(|_| not_found)?;
    if !meta.is_file() {
        return Err(not_found);
    }
    Ok((file, meta.len()))
}

/// `%XX` escapes decoded (apt writes `+` in file names as `%2b`); a
/// malformed escape is kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
