//! The test archive (tests/common/archive.rs) checked against real apt,
//! run as an unprivileged user would run it: every file apt reads or
//! writes in a temp dir, trusting only the archive's keyring.
//!
//! - apt accepts the signed archive, with the keyring binary or armored,
//!   and downloads from it the very bytes of the pool.
//! - apt refuses it unsigned, signed by a key the keyring lacks, with a
//!   `Packages` changed after signing, and with a `.deb` swapped.
//! - The server: 404 for a missing file, `..` refused, HEAD, clients that
//!   ask for keep-alive, every request recorded, a mirror serving the
//!   same bytes.
//!
//! The packages come from Debian's archive (`apt-get download`, as apt is
//! configured) and are cached; ./scripts/test makes apt know them.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::archive::{Archive, ArchiveOptions, Signing};
use common::{require, run, stderr, stdout};

/// A dependency chain, kept small: libgcc-s1 needs gcc-12-base and libc6,
/// libc6 needs libgcc-s1. Keep in step with `debs` in scripts/test.
const PACKAGES: [&str; 4] = ["base-files", "libc6", "libgcc-s1", "gcc-12-base"];

fn debs() -> Vec<PathBuf> {
    common::debian::debs(&PACKAGES)
}

fn archive(sign: Signing) -> Archive {
    Archive::new(
        &debs(),
        ArchiveOptions {
            sign,
            ..ArchiveOptions::default()
        },
    )
}

/// apt with its configuration, sources, state, caches and logs in a temp
/// dir: nothing of the host's apt is read (not even /etc/apt/apt.conf.d,
/// whose proxies or index targets would change what apt asks for) or
/// written, and no lock is taken, so it runs as any user.
struct Apt {
    dir: tempfile::TempDir,
}

impl Apt {
    /// apt knowing one source, `deb [signed-by=KEYRING] URL stable main`.
    fn new(archive: &Archive, keyring: &Path) -> Apt {
        require("apt-get");
        let apt = Apt {
            dir: tempfile::tempdir().expect("a temp dir for apt"),
        };
        for dir in [
            "etc/apt.conf.d",
            "etc/preferences.d",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
            "download",
        ] {
            std::fs::create_dir_all(apt.path(dir)).expect("making apt's directories");
        }
        std::fs::write(
            apt.path("etc/sources.list"),
            format!(
                "deb [signed-by={}] {} stable main\n",
                keyring.display(),
                archive.url()
            ),
        )
        .expect("writing sources.list");
        std::fs::write(apt.path("status"), "").expect("writing an empty dpkg status");
        std::fs::write(apt.path("apt.conf"), apt.config()).expect("writing apt.conf");
        apt
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Read first (APT_CONFIG), so the parts directory apt reads next is
    /// our empty one, and /etc/apt/apt.conf is not read at all.
    fn config(&self) -> String {
        let p = |relative| self.path(relative).display().to_string();
        [
            ("Dir::Etc", p("etc/")),
            ("Dir::Etc::Parts", p("etc/apt.conf.d")),
            ("Dir::Etc::Main", "/dev/null".into()),
            ("Dir::Etc::SourceList", p("etc/sources.list")),
            ("Dir::Etc::SourceParts", "/dev/null".into()),
            ("Dir::Etc::Trusted", "/dev/null".into()),
            ("Dir::Etc::TrustedParts", "/dev/null".into()),
            ("Dir::State", p("state/")),
            ("Dir::State::status", p("status")),
            ("Dir::Cache", p("cache/")),
            ("Dir::Log", p("log/")),
            ("Debug::NoLocking", "true".into()),
            // As root apt would fetch as `_apt`, who cannot enter our temp dirs.
            ("APT::Sandbox::User", "root".into()),
            ("Acquire::Languages", "none".into()),
            ("Acquire::Retries", "0".into()),
        ]
        .iter()
        .map(|(key, value)| format!("{key} \"{value}\";\n"))
        .collect()
    }

    /// `apt-get ARGS` in the download directory, messages in English.
    fn apt_get(&self, args: &[&str]) -> Output {
        run(Command::new("apt-get")
            .args(args)
            .env("APT_CONFIG", self.path("apt.conf"))
            .env("LC_ALL", "C")
            .current_dir(self.path("download")))
    }

    fn update(&self) -> Output {
        self.apt_get(&["update"])
    }

    /// Runs `apt-get update` and fails the test unless it succeeded
    /// without an error or a warning.
    fn update_cleanly(&self) {
        assert_clean(&self.update(), "apt-get update");
    }

    /// The `.deb` files in the download directory.
    fn downloaded(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.path("download"))
            .expect("reading the download directory")
            .map(|e| e.expect("a directory entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        found.sort();
        found
    }
}

/// Both messages in one, for assertions that do not care which stream.
fn messages(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// Fails the test unless apt succeeded without a warning (`W:`) or an
/// error (`E:`), as it can warn and still exit 0.
fn assert_clean(out: &Output, what: &str) {
    let messages = messages(out);
    let flagged = messages
        .lines()
        .any(|l| l.starts_with("W:") || l.starts_with("E:"));
    assert!(out.status.success() && !flagged, "{what}: {messages}");
}

fn sha256(path: &Path) -> String {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn apt_accepts_the_signed_archive_and_downloads_the_pool_bytes() {
    let archive = archive(Signing::Signed);
    let apt = Apt::new(&archive, archive.keyring());
    apt.update_cleanly();

    assert_clean(
        &apt.apt_get(&["download", "base-files"]),
        "apt-get download",
    );
    let downloaded = apt.downloaded();
    assert_eq!(downloaded.len(), 1, "one .deb downloaded: {downloaded:?}");
    let pool = archive.root().join(archive.pool_path("base-files"));
    assert_eq!(sha256(&downloaded[0]), sha256(&pool));

    let requests = archive.requests();
    assert_eq!(
        requests.first().map(String::as_str),
        Some("dists/stable/InRelease"),
        "{requests:?}"
    );
    assert_eq!(
        requests.last(),
        Some(&archive.pool_path("base-files")),
        "{requests:?}"
    );
}

/// apt resolves the dependency chain from the archive's Packages: what
/// `apt-get install` would fetch is all four packages, from the pool.
#[test]
fn apt_resolves_dependencies_from_the_archive() {
    let archive = archive(Signing::Signed);
    let apt = Apt::new(&archive, archive.keyring());
    apt.update_cleanly();
    let out = apt.apt_get(&["install", "--print-uris", "-qq", "libgcc-s1"]);
    assert_clean(&out, "apt-get install --print-uris");
    let uris = stdout(&out);
    for package in ["libgcc-s1", "libc6", "gcc-12-base"] {
        let url = format!("'{}/{}'", archive.url(), archive.pool_path(package));
        assert!(uris.replace("%2b", "+").contains(&url), "{url} in: {uris}");
    }
    assert!(!uris.contains("base-files"), "{uris}");
}

#[test]
fn apt_accepts_the_armored_keyring() {
    let archive = archive(Signing::Signed);
    Apt::new(&archive, archive.armored_keyring()).update_cleanly();
}

#[test]
fn apt_refuses_an_unsigned_archive() {
    let archive = archive(Signing::Unsigned);
    let out = Apt::new(&archive, archive.keyring()).update();
    let messages = messages(&out);
    assert!(!out.status.success(), "{messages}");
    assert!(
        messages.contains(&format!(
            "E: The repository '{} stable Release' is not signed.",
            archive.url()
        )),
        "{messages}"
    );
    let requests = archive.requests();
    for path in ["InRelease", "Release", "Release.gpg"] {
        assert!(
            requests.contains(&format!("dists/stable/{path}")),
            "{path} asked for: {requests:?}"
        );
    }
}

#[test]
fn apt_refuses_an_archive_signed_by_another_key() {
    let archive = archive(Signing::WrongKey);
    let out = Apt::new(&archive, archive.keyring()).update();
    let messages = messages(&out);
    assert!(!out.status.success(), "{messages}");
    assert!(messages.contains("NO_PUBKEY"), "{messages}");
    assert!(
        messages.contains(&format!(
            "E: The repository '{} stable InRelease' is not signed.",
            archive.url()
        )),
        "{messages}"
    );
}

#[test]
fn apt_refuses_packages_changed_after_signing() {
    let archive = archive(Signing::Signed);
    archive.tamper_packages();
    let out = Apt::new(&archive, archive.keyring()).update();
    let messages = messages(&out);
    assert!(!out.status.success(), "{messages}");
    assert!(
        messages.contains("Hash Sum mismatch") || messages.contains("File has unexpected size"),
        "{messages}"
    );
    assert!(
        messages.contains("dists/stable/main/binary-amd64/Packages"),
        "{messages}"
    );
}

#[test]
fn apt_refuses_a_swapped_deb() {
    let archive = archive(Signing::Signed);
    let apt = Apt::new(&archive, archive.keyring());
    apt.update_cleanly();
    let other = &debs()[PACKAGES.iter().position(|p| *p == "gcc-12-base").unwrap()];
    archive.replace_deb("base-files", other);
    let out = apt.apt_get(&["download", "base-files"]);
    let messages = messages(&out);
    assert!(!out.status.success(), "{messages}");
    assert!(
        messages.contains("Hash Sum mismatch") || messages.contains("File has unexpected size"),
        "{messages}"
    );
    assert!(apt.downloaded().is_empty(), "{:?}", apt.downloaded());
}

/// One raw request to 127.0.0.1:`port`; the whole response, read until
/// the server closes the connection.
fn request(port: u16, head: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    stream
        .write_all(head.as_bytes())
        .expect("sending a request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("the server answers and closes");
    response
}

/// The status and the body of a GET.
fn get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let response = request(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"),
    );
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    (status, response[split + 4..].to_vec())
}

#[test]
fn the_server_serves_files_and_refuses_the_rest() {
    let archive = archive(Signing::Signed);
    let port = archive.port();
    let release = std::fs::read(archive.root().join("dists/stable/Release")).expect("Release");

    // A keep-alive client gets its answer and the connection closed.
    assert_eq!(get(port, "/dists/stable/Release"), (200, release.clone()));
    assert_eq!(get(port, "/dists/stable/Missing").0, 404);
    assert_eq!(get(port, "/dists").0, 404, "a directory is no file");
    assert_eq!(get(port, "/../archive/dists/stable/Release").0, 403);
    assert_eq!(
        get(port, "/dists/%2e%2e/%2E%2E/dists/stable/Release").0,
        403
    );
    let pool = archive.pool_path("base-files");
    let deb = std::fs::read(archive.root().join(&pool)).expect("the pool file");
    let (status, body) = get(port, &format!("/{}", pool.replace('+', "%2b")));
    assert_eq!((status, body == deb), (200, true));

    let head = request(
        port,
        "HEAD /dists/stable/Release HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    let head = String::from_utf8(head).expect("a text head");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nContent-Length: {}\r\n", release.len())),
        "{head}"
    );
    assert!(head.ends_with("\r\n\r\n"), "no body after HEAD: {head}");

    assert_eq!(
        archive.requests(),
        [
            "dists/stable/Release",
            "dists/stable/Missing",
            "dists",
            "../archive/dists/stable/Release",
            "dists/../../dists/stable/Release",
            pool.as_str(),
            "dists/stable/Release",
        ]
    );
}

#[test]
fn another_server_serves_the_same_root() {
    let archive = archive(Signing::Signed);
    let mirror = archive.serve_another();
    assert_ne!(mirror.port(), archive.port());
    assert_eq!(mirror.url(), format!("http://127.0.0.1:{}", mirror.port()));
    let path = format!("/{}", archive.pool_path("libc6").replace('+', "%2b"));
    let (status, body) = get(mirror.port(), &path);
    assert_eq!(status, 200);
    assert_eq!(get(archive.port(), &path), (200, body));
    assert_eq!(mirror.requests(), [archive.pool_path("libc6")]);
    assert_eq!(archive.requests(), [archive.pool_path("libc6")]);
}

/// The archive is laid out as Debian's: pool paths by source, indexes
/// where Release says they are, with the sizes and hashes it says.
#[test]
fn the_layout_is_debians() {
    let archive = archive(Signing::Signed);
    assert!(
        archive
            .pool_path("libc6")
            .starts_with("pool/main/g/glibc/libc6_"),
        "{}",
        archive.pool_path("libc6")
    );
    assert!(
        archive
            .pool_path("libgcc-s1")
            .starts_with("pool/main/g/gcc-12/libgcc-s1_"),
        "{}",
        archive.pool_path("libgcc-s1")
    );
    assert!(
        archive
            .pool_path("base-files")
            .starts_with("pool/main/b/base-files/base-files_"),
        "{}",
        archive.pool_path("base-files")
    );
    let suite = archive.root().join("dists/stable");
    let packages =
        std::fs::read_to_string(suite.join("main/binary-amd64/Packages")).expect("Packages");
    let stanzas: Vec<&str> = packages.split("\n\n").filter(|s| !s.is_empty()).collect();
    let mut names: Vec<&str> = PACKAGES.to_vec();
    names.sort();
    for (stanza, name) in stanzas.iter().zip(&names) {
        let pool = archive.pool_path(name);
        for line in [
            format!("Package: {name}"),
            format!("Filename: {pool}"),
            format!("SHA256: {}", sha256(&archive.root().join(&pool))),
        ] {
            assert!(stanza.lines().any(|l| l == line), "{line} in {stanza}");
        }
    }
    assert_eq!(
        stanzas.len(),
        names.len(),
        "one stanza each, by name: {packages}"
    );

    let release = std::fs::read_to_string(suite.join("Release")).expect("Release");
    let sha256_list = release.split_once("SHA256:\n").expect("a SHA256 list").1;
    let mut listed = 0;
    for line in sha256_list.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [hash, size, path] = fields[..] else {
            panic!("a Release line of three fields: {line:?}")
        };
        let file = suite.join(path);
        let len = std::fs::metadata(&file).expect("a listed index").len();
        assert_eq!(
            (size, hash),
            (len.to_string().as_str(), sha256(&file).as_str())
        );
        listed += 1;
    }
    assert_eq!(listed, 2, "Packages and one compressed copy: {release}");
    for signature in ["InRelease", "Release.gpg"] {
        assert!(suite.join(signature).is_file(), "{signature}");
    }
}

#[test]
fn an_unsigned_archive_has_a_release_and_no_signature() {
    let archive = archive(Signing::Unsigned);
    let suite = archive.root().join("dists/stable");
    assert!(suite.join("Release").is_file());
    for signature in ["InRelease", "Release.gpg"] {
        assert!(!suite.join(signature).exists(), "{signature}");
    }
}
