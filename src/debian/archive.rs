//! Debian archives as a recipe names them, and the packages a lock pins
//! from them (issue 13, "Recipe"): [`lock`] resolves a package request
//! against archives' signed indexes into pins, [`fetch_debs`] brings the
//! pinned `.deb`s into the content store. The HTTP side is
//! [`fetch`](crate::debian::fetch)'s.
//!
//! A pin records content, not hosts: the archive is named by the URL the
//! recipe (or its stemcell) gives, and the package by its path in that
//! archive, its size and its SHA-256. A mirror of the same archive serves
//! the same paths, so it never changes what is pinned.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use crate::debian::fetch::{
    CopyError, Fetcher, MAX_INDEX, MAX_INDEX_COMPRESSED, MAX_INRELEASE, Mirrors, Settings, fault,
    join,
};
use crate::debian::index::{IndexError, Limits, Package, Release, Stanzas, read_release};
use crate::debian::resolve::{Index, Resolution, ResolveError, resolve};
use crate::debian::signed::{IndexCheckError, IndexReader, SignatureError, verify_inrelease};
use crate::digest::Digest;
use crate::store::{BlobRef, BlobStore};

/// One package of a resolved closure, as `ingot.lock` records it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackagePin {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// The archive's URL as the recipe writes it (no trailing `/`).
    pub archive: String,
    /// The `.deb`'s path in the archive (`Filename:` in `Packages`).
    pub path: String,
    pub size: u64,
    pub sha256: Digest,
}

/// An archive to resolve packages from: where it is, which suites and
/// components, and the OpenPGP keys its `InRelease` must be signed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSource {
    /// The URL as written (no trailing `/`); pins name the archive by it.
    pub url: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    /// The keyring's bytes (binary or armored OpenPGP public keys).
    pub keyring: Vec<u8>,
    /// Where the keyring came from, for messages.
    pub keyring_name: String,
}

/// What a lock resolved: the closure's pins, sorted by name and
/// architecture, and the excluded packages something wanted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locked {
    pub packages: Vec<PackagePin>,
    pub excluded: Vec<Excluded>,
}

/// A package the recipe excludes, and the packages of the closure whose
/// dependencies it would have satisfied (sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded {
    pub name: String,
    pub wanted_by: Vec<String>,
}

/// Why a lock or a download failed. Each names the URL (and the package,
/// where there is one), so one line says what to look at.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The server could not be reached, or the transfer broke.
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{url}: the server answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: more than the limit of {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: timed out: {reason}")]
    Timeout { url: String, reason: String },
    #[error(
        "{url}: not found: an archive without a signed InRelease is refused \
         (a Release with a detached Release.gpg is not supported)"
    )]
    Unsigned { url: String },
    #[error("{url}: not signed as {keyring} requires: {source}")]
    Signature {
        url: String,
        keyring: String,
        #[source]
        source: SignatureError,
    },
    /// A correctly signed Release of another suite: served in place of
    /// the one asked for, it would pin what that suite holds.
    #[error("{url}: the Release is for suite {found}, not {suite}")]
    WrongSuite {
        url: String,
        suite: String,
        found: String,
    },
    /// The Release lists no `Packages` index for a component.
    #[error("{url}: the Release lists no {dir}/Packages (.xz, .gz or plain)")]
    NoIndex { url: String, dir: String },
    /// An index file is not the one the Release lists.
    #[error("{url}: {source}")]
    Index {
        url: String,
        #[source]
        source: IndexCheckError,
    },
    /// A Release or a `Packages` index, as signed or listed, does not read.
    #[error("{url}: {source}")]
    Malformed {
        url: String,
        #[source]
        source: IndexError,
    },
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// (Boxed: two digests would make every `Result` large.)
    #[error(transparent)]
    Mismatch(Box<Mismatch>),
    #[error("mirror {spec:?}: {reason}")]
    Mirror { spec: String, reason: String },
    #[error("storing {url}: {source}")]
    Store {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{reason}")]
    Client { reason: String },
}

/// A downloaded `.deb` that is not the pinned one.
#[derive(Debug, thiserror::Error)]
#[error(
    "{package}: {url} is {actual} ({actual_size} bytes), where the lock says {expected} ({expected_size} bytes)"
)]
pub struct Mismatch {
    /// `name version (architecture)`.
    pub package: String,
    pub url: String,
    pub expected: Digest,
    pub expected_size: u64,
    pub actual: Digest,
    pub actual_size: u64,
}

impl ArchiveError {
    /// 2 when the recipe or the command line must change (a package that
    /// does not exist or cannot be installed as asked, a bad mirror); 1
    /// for what failed on the way (network, signature, hashes).
    pub fn exit_code(&self) -> i32 {
        match self {
            ArchiveError::Resolve(ResolveError::Inconsistent(_)) => 1,
            ArchiveError::Resolve(_) | ArchiveError::Mirror { .. } => 2,
            _ => 1,
        }
    }
}

impl From<ArchiveError> for crate::error::Error {
    fn from(e: ArchiveError) -> crate::error::Error {
        crate::error::Error::Archive {
            exit_code: e.exit_code(),
            error: Box::new(e),
        }
    }
}

/// Resolves `install` (less `exclude`) for `arch` from `sources`, with
/// [`Settings::DEFAULT`]; see [`lock_with`].
pub fn lock(
    sources: &[ArchiveSource],
    arch: &str,
    install: &[String],
    exclude: &[String],
    mirrors: &Mirrors,
    log: &mut dyn FnMut(&str),
) -> Result<Locked, ArchiveError> {
    lock_with(
        &Settings::DEFAULT,
        sources,
        arch,
        install,
        exclude,
        mirrors,
        log,
    )
}

/// Resolves `install` (less `exclude`) for `arch` from `sources` and pins
/// the closure. For each source and suite: `dists/SUITE/InRelease`, its
/// signature checked against the source's keyring; then for each
/// component the `Packages` index of `arch` (and of `all` where the
/// Release keeps those apart), checked against the Release's SHA-256 and
/// size as it streams in. Files come from each archive's mirror; pins name
/// the archive by its own URL.
///
/// Not done: a `Release` with a detached `Release.gpg` (an archive
/// without `InRelease` is refused as unsigned), and `Valid-Until`. A lock
/// is made once, from what the archive signs; a build from the lock
/// checks each `.deb` by its pinned SHA-256, and must give the same
/// result on any day, so no date is compared anywhere.
pub fn lock_with(
    settings: &Settings,
    sources: &[ArchiveSource],
    arch: &str,
    install: &[String],
    exclude: &[String],
    mirrors: &Mirrors,
    log: &mut dyn FnMut(&str),
) -> Result<Locked, ArchiveError> {
    let fetcher = Fetcher::new(*settings)?;
    let mut index = Index::new(arch);
    // The origin label of each index, to the URL of its archive.
    let mut archive_of: BTreeMap<String, String> = BTreeMap::new();
    for source in sources {
        let base = mirrors.locate(&source.url);
        for suite in &source.suites {
            let release = fetch_release(&fetcher, base, source, suite, log)?;
            for component in &source.components {
                let origin = format!("{} {suite}/{component}", source.url);
                for index_arch in index_arches(&release, arch) {
                    let dir = format!("{component}/binary-{index_arch}");
                    let packages = fetch_packages(&fetcher, base, suite, &release, &dir, log)?;
                    index.add(&origin, packages);
                }
                archive_of.insert(origin, source.url.clone());
            }
        }
    }
    let resolution = resolve(&index, install, exclude)?;
    Ok(pin(resolution, &archive_of))
}

/// `dists/SUITE/InRelease`, verified, and the Release it signs.
fn fetch_release(
    fetcher: &Fetcher,
    base: &str,
    source: &ArchiveSource,
    suite: &str,
    log: &mut dyn FnMut(&str),
) -> Result<Release, ArchiveError> {
    let url = join(base, &format!("dists/{suite}/InRelease"));
    log(&format!("fetching {url}"));
    let inrelease = match fetcher.get(&url, MAX_INRELEASE) {
        Err(ArchiveError::Status { status: 404, .. }) => {
            return Err(ArchiveError::Unsigned { url });
        }
        got => got?.read_all()?,
    };
    let verified =
        verify_inrelease(&inrelease, &source.keyring).map_err(|e| ArchiveError::Signature {
            url: url.clone(),
            keyring: source.keyring_name.clone(),
            source: e,
        })?;
    let release = read_release(&verified.text[..]).map_err(|e| ArchiveError::Malformed {
        url: url.clone(),
        source: e,
    })?;
    check_suite(&release, suite).map_err(|found| ArchiveError::WrongSuite {
        url,
        suite: suite.to_string(),
        found,
    })?;
    Ok(release)
}

/// A Release answers for `suite` if its `Suite` or its `Codename` is
/// that name (`stable` or `bookworm`); else what it says it is.
fn check_suite(release: &Release, suite: &str) -> Result<(), String> {
    let names = [&release.suite, &release.codename];
    if names.iter().any(|n| n.as_deref() == Some(suite)) {
        return Ok(());
    }
    let found: Vec<&str> = names.iter().filter_map(|n| n.as_deref()).collect();
    Err(if found.is_empty() {
        "unnamed (no Suite or Codename)".into()
    } else {
        found.join("/")
    })
}

/// The architectures whose indexes hold `arch`'s packages: `arch`, and
/// `all` when the Release says `all` packages are only in their own.
fn index_arches<'a>(release: &Release, arch: &'a str) -> Vec<&'a str> {
    if release.arch_all_separate && arch != "all" {
        vec![arch, "all"]
    } else {
        vec![arch]
    }
}

/// How an index file is compressed, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Xz,
    Gzip,
    None,
}

/// The `Packages` file of `dir` to fetch, preferring the smallest form
/// the Release lists.
fn choose_index(release: &Release, dir: &str) -> Option<(String, Compression)> {
    [
        ("Packages.xz", Compression::Xz),
        ("Packages.gz", Compression::Gzip),
        ("Packages", Compression::None),
    ]
    .into_iter()
    .map(|(name, c)| (format!("{dir}/{name}"), c))
    .find(|(path, _)| release.file(path).is_some())
}

/// Memory the xz decoder may take for an index (`xz -9` needs 65 MiB).
const XZ_MEMORY: u64 = 128 << 20;

fn decoder<'r>(compression: Compression, read: impl Read + 'r) -> io::Result<Box<dyn Read + 'r>> {
    Ok(match compression {
        Compression::None => Box::new(read),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(read)),
        Compression::Xz => {
            let stream = liblzma::stream::Stream::new_stream_decoder(
                XZ_MEMORY,
                liblzma::stream::CONCATENATED,
            )
            .map_err(io::Error::from)?;
            Box::new(liblzma::read::XzDecoder::new_stream(read, stream))
        }
    })
}

/// The packages of `dir`'s index (`main/binary-amd64`), streamed from the
/// network through the Release's check, the decompressor and the parser.
fn fetch_packages(
    fetcher: &Fetcher,
    base: &str,
    suite: &str,
    release: &Release,
    dir: &str,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<Package>, ArchiveError> {
    let (path, compression) = choose_index(release, dir).ok_or_else(|| ArchiveError::NoIndex {
        url: join(base, &format!("dists/{suite}/InRelease")),
        dir: dir.to_string(),
    })?;
    let url = join(base, &format!("dists/{suite}/{path}"));
    let limit = match compression {
        Compression::None => MAX_INDEX,
        _ => MAX_INDEX_COMPRESSED,
    };
    let listed = release.file(&path).map_or(0, |f| f.size);
    if listed > limit {
        return Err(ArchiveError::TooLarge { url, limit });
    }
    log(&format!("fetching {url}"));
    let body = fetcher.get(&url, limit)?;
    let index_error = |source| ArchiveError::Index {
        url: url.clone(),
        source,
    };
    let mut checked = IndexReader::new(release, &path, body).map_err(index_error)?;
    let parsed: Result<Vec<Package>, IndexError> = match decoder(compression, &mut checked) {
        Ok(decoded) => Stanzas::with_limits(io::BufReader::new(decoded), Limits::DEFAULT)
            .packages()
            .collect(),
        Err(source) => Err(IndexError::Io { line: 0, source }),
    };
    // The transfer's fault first, then the check's: a parse error of a
    // file that is not the listed one says nothing about the archive.
    match checked.finish() {
        Ok(()) => {}
        Err(IndexCheckError::Io { path, source }) => {
            return Err(match fault(source) {
                Ok(transfer) => transfer,
                Err(source) => index_error(IndexCheckError::Io { path, source }),
            });
        }
        Err(e) => return Err(index_error(e)),
    }
    parsed.map_err(|source| ArchiveError::Malformed {
        url: url.clone(),
        source,
    })
}

/// The pins of a resolution: each chosen package at its archive's URL.
fn pin(resolution: Resolution, archive_of: &BTreeMap<String, String>) -> Locked {
    let mut packages: Vec<PackagePin> = resolution
        .packages
        .into_iter()
        .map(|c| PackagePin {
            archive: archive_of
                .get(&c.origin)
                .expect("every index was added under a labelled origin")
                .clone(),
            name: c.name,
            version: c.version.to_string(),
            architecture: c.architecture,
            path: c.filename,
            size: c.size,
            sha256: c.sha256,
        })
        .collect();
    packages.sort_by(|a, b| (&a.name, &a.architecture).cmp(&(&b.name, &b.architecture)));
    let mut excluded: Vec<Excluded> = Vec::new();
    // `excluded` is sorted: each name's wanters are together.
    for (name, by) in resolution.excluded {
        match excluded.last_mut() {
            Some(last) if last.name == name => last.wanted_by.push(by),
            _ => excluded.push(Excluded {
                name,
                wanted_by: vec![by],
            }),
        }
    }
    Locked { packages, excluded }
}

/// Downloads the `.deb` of each pin the store lacks, with
/// [`Settings::DEFAULT`]; see [`fetch_debs_with`].
pub fn fetch_debs(
    pins: &[PackagePin],
    mirrors: &Mirrors,
    store: &BlobStore,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<PathBuf>, ArchiveError> {
    fetch_debs_with(&Settings::DEFAULT, pins, mirrors, store, log)
}

/// Downloads the `.deb` of each pin the store lacks (by its SHA-256),
/// from the archive's mirror, into `store`: hashed as it is written, never
/// more than the pinned size read, committed only if size and SHA-256 are
/// the pin's. Up to [`Settings::parallel`] at once. The blobs' paths, in
/// the pins' order; on failures, the first failing pin's error.
pub fn fetch_debs_with(
    settings: &Settings,
    pins: &[PackagePin],
    mirrors: &Mirrors,
    store: &BlobStore,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<PathBuf>, ArchiveError> {
    let mut seen = BTreeSet::new();
    let wanted: Vec<&PackagePin> = pins
        .iter()
        .filter(|p| !store.contains(&p.sha256) && seen.insert(p.sha256))
        .collect();
    if !wanted.is_empty() {
        let workers = settings.parallel.clamp(1, wanted.len());
        let fetchers = (0..workers)
            .map(|_| Fetcher::new(*settings))
            .collect::<Result<Vec<_>, _>>()?;
        let mut results: Vec<Option<Result<(), ArchiveError>>> =
            (0..wanted.len()).map(|_| None).collect();
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|scope| {
            for fetcher in fetchers {
                let tx = tx.clone();
                let (wanted, next, stop) = (&wanted, &next, &stop);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(pin) = wanted.get(i) else { break };
                        let url = join(mirrors.locate(&pin.archive), &pin.path);
                        let _ = tx.send(Event::Started(url.clone()));
                        let result = fetch_deb(&fetcher, pin, &url, store);
                        if result.is_err() {
                            // Downloads under way finish; no new one starts.
                            stop.store(true, Ordering::Relaxed);
                        }
                        let _ = tx.send(Event::Done(i, result));
                    }
                });
            }
            drop(tx);
            // The log is the caller's, and not Send: lines go through here.
            for event in rx {
                match event {
                    Event::Started(url) => log(&format!("fetching {url}")),
                    Event::Done(i, result) => results[i] = Some(result),
                }
            }
        });
        if let Some(e) = results.into_iter().flatten().find_map(Result::err) {
            return Err(e);
        }
    }
    Ok(pins.iter().map(|p| store.path(&p.sha256)).collect())
}

enum Event {
    Started(String),
    Done(usize, Result<(), ArchiveError>),
}

/// One `.deb` into the store, checked against its pin.
fn fetch_deb(
    fetcher: &Fetcher,
    pin: &PackagePin,
    url: &str,
    store: &BlobStore,
) -> Result<(), ArchiveError> {
    let stored = |source| ArchiveError::Store {
        url: url.to_string(),
        source,
    };
    let mut body = fetcher.get(url, pin.size)?;
    let mut writer = store.writer().map_err(stored)?;
    body.copy_to(&mut writer).map_err(|e| match e {
        CopyError::Fetch(e) => e,
        CopyError::Write(e) => stored(e),
    })?;
    let expected = BlobRef {
        digest: pin.sha256,
        size: pin.size,
    };
    match writer.commit_verified(&expected).map_err(stored)? {
        Ok(_) => Ok(()),
        Err(found) => Err(ArchiveError::Mismatch(Box::new(Mismatch {
            package: format!("{} {} ({})", pin.name, pin.version, pin.architecture),
            url: url.to_string(),
            expected: pin.sha256,
            expected_size: pin.size,
            actual: found.digest,
            actual_size: found.size,
        }))),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::debian::fetch::test_server::{Reply, Server};
    use crate::debian::signed::tests::Gpg;

    /// One signing key for every test; gpg works in its home, so one
    /// signature at a time.
    struct Signer {
        gpg: Mutex<Gpg>,
        key: String,
        keyring: Vec<u8>,
    }

    fn signer() -> &'static Signer {
        static SIGNER: OnceLock<Signer> = OnceLock::new();
        SIGNER.get_or_init(|| {
            let gpg = Gpg::new();
            let key = gpg.key(None, "ingot archive test", "sign").remove(0);
            Signer {
                keyring: gpg.export(&key, false),
                gpg: Mutex::new(gpg),
                key,
            }
        })
    }

    fn sign(text: &str) -> Vec<u8> {
        let s = signer();
        let gpg = s.gpg.lock().unwrap_or_else(|e| e.into_inner());
        gpg.clearsign(None, &[&s.key], "SHA256", text)
    }

    /// A `.deb` of the test archive: its name, version and bytes (the
    /// bytes are not a real package: nothing here reads them).
    struct Deb {
        name: &'static str,
        version: &'static str,
        depends: &'static str,
    }

    const DEBS: [Deb; 3] = [
        Deb {
            name: "hello",
            version: "1.0-1",
            depends: "libgreet (>= 1.0), greet-data",
        },
        Deb {
            name: "libgreet",
            version: "1.2-1",
            depends: "",
        },
        Deb {
            name: "greet-data",
            version: "1",
            depends: "",
        },
    ];

    impl Deb {
        fn path(&self) -> String {
            format!(
                "pool/main/{}/{}_{}_amd64.deb",
                &self.name[..1],
                self.name,
                self.version
            )
        }

        fn bytes(&self) -> Vec<u8> {
            format!("the {} package, version {}\n", self.name, self.version).into_bytes()
        }

        fn stanza(&self) -> String {
            let bytes = self.bytes();
            let depends = if self.depends.is_empty() {
                String::new()
            } else {
                format!("Depends: {}\n", self.depends)
            };
            format!(
                "Package: {}\nVersion: {}\nArchitecture: amd64\n{depends}Filename: {}\nSize: {}\nSHA256: {}\n",
                self.name,
                self.version,
                self.path(),
                bytes.len(),
                Digest::of(&bytes).hex()
            )
        }
    }

    fn packages() -> String {
        DEBS.iter().map(Deb::stanza).collect::<Vec<_>>().join("\n")
    }

    fn xz(bytes: &[u8]) -> Vec<u8> {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// A Release for suite `stable` (codename `test`) listing `files`
    /// under `main/binary-amd64/`.
    fn release(files: &[(&str, &[u8])]) -> String {
        let mut text = "Origin: ingot test\nSuite: stable\nCodename: test\n\
            Architectures: amd64\nComponents: main\nSHA256:\n"
            .to_string();
        for (name, bytes) in files {
            text.push_str(&format!(
                " {} {} main/binary-amd64/{name}\n",
                Digest::of(bytes).hex(),
                bytes.len()
            ));
        }
        text
    }

    /// Serves a signed archive at `server`'s root: suite `stable`, its
    /// `Packages` as xz and plain, and the `.deb`s.
    fn publish(server: &Server) {
        let plain = packages().into_bytes();
        let packed = xz(&plain);
        let inrelease = sign(&release(&[("Packages.xz", &packed), ("Packages", &plain)]));
        server.route("/dists/stable/InRelease", Reply::Bytes(inrelease));
        server.route(
            "/dists/stable/main/binary-amd64/Packages.xz",
            Reply::Bytes(packed),
        );
        server.route(
            "/dists/stable/main/binary-amd64/Packages",
            Reply::Bytes(plain),
        );
        for deb in &DEBS {
            server.route(&format!("/{}", deb.path()), Reply::Bytes(deb.bytes()));
        }
    }

    fn source(url: &str) -> ArchiveSource {
        ArchiveSource {
            url: url.to_string(),
            suites: vec!["stable".into()],
            components: vec!["main".into()],
            keyring: signer().keyring.clone(),
            keyring_name: "test.gpg".into(),
        }
    }

    fn quick() -> Settings {
        Settings {
            timeouts: crate::net::Timeouts {
                connect: Duration::from_secs(1),
                stall: Duration::from_secs(1),
                total: Duration::from_secs(5),
            },
            parallel: 2,
        }
    }

    fn lock_at(
        sources: &[ArchiveSource],
        install: &[&str],
        exclude: &[&str],
        mirrors: &Mirrors,
    ) -> Result<Locked, ArchiveError> {
        let strings = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        lock_with(
            &quick(),
            sources,
            "amd64",
            &strings(install),
            &strings(exclude),
            mirrors,
            &mut |_| {},
        )
    }

    fn pin_of(deb: &Deb, archive: &str) -> PackagePin {
        let bytes = deb.bytes();
        PackagePin {
            name: deb.name.into(),
            version: deb.version.into(),
            architecture: "amd64".into(),
            archive: archive.into(),
            path: deb.path(),
            size: bytes.len() as u64,
            sha256: Digest::of(&bytes),
        }
    }

    #[test]
    fn a_lock_pins_the_closure_from_the_signed_index() {
        let server = Server::start();
        publish(&server);
        let mut lines = Vec::new();
        let locked = lock_with(
            &quick(),
            &[source(&server.url)],
            "amd64",
            &["hello".to_string()],
            &["greet-data".to_string()],
            &Mirrors::none(),
            &mut |l| lines.push(l.to_string()),
        )
        .unwrap();
        assert_eq!(
            locked.packages,
            [pin_of(&DEBS[0], &server.url), pin_of(&DEBS[1], &server.url)]
        );
        assert_eq!(
            locked.excluded,
            [Excluded {
                name: "greet-data".into(),
                wanted_by: vec!["hello".into()],
            }]
        );
        // The xz index, not the plain one beside it; no .deb yet.
        assert_eq!(
            server.requests(),
            [
                "/dists/stable/InRelease",
                "/dists/stable/main/binary-amd64/Packages.xz"
            ]
        );
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].ends_with("/dists/stable/InRelease"), "{lines:?}");
    }

    #[test]
    fn the_gzip_index_is_fetched_when_no_xz_is_listed() {
        let server = Server::start();
        let packed = gz(packages().as_bytes());
        let inrelease = sign(&release(&[("Packages.gz", &packed)]));
        server.route("/dists/stable/InRelease", Reply::Bytes(inrelease));
        server.route(
            "/dists/stable/main/binary-amd64/Packages.gz",
            Reply::Bytes(packed),
        );
        let locked = lock_at(&[source(&server.url)], &["libgreet"], &[], &Mirrors::none()).unwrap();
        assert_eq!(locked.packages, [pin_of(&DEBS[1], &server.url)]);
        assert!(locked.excluded.is_empty());
    }

    #[test]
    fn an_archive_without_inrelease_is_unsigned() {
        let server = Server::start();
        let err = lock_at(&[source(&server.url)], &["hello"], &[], &Mirrors::none()).unwrap_err();
        let url = format!("{}/dists/stable/InRelease", server.url);
        assert!(
            matches!(err, ArchiveError::Unsigned { url: ref u } if *u == url),
            "{err}"
        );
        assert!(err.to_string().starts_with(&url), "{err}");
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn a_changed_inrelease_is_refused_naming_the_keyring() {
        let server = Server::start();
        publish(&server);
        let inrelease = sign(&release(&[("Packages", b"")]));
        let changed = String::from_utf8(inrelease)
            .unwrap()
            .replace("Origin: ingot test", "Origin: ingot tesT");
        server.route("/dists/stable/InRelease", Reply::Bytes(changed.into()));
        let err = lock_at(&[source(&server.url)], &["hello"], &[], &Mirrors::none()).unwrap_err();
        assert!(
            matches!(
                err,
                ArchiveError::Signature {
                    source: SignatureError::Bad { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("test.gpg"), "{err}");
    }

    #[test]
    fn a_release_of_another_suite_is_refused() {
        let server = Server::start();
        publish(&server);
        let mut other = source(&server.url);
        other.suites = vec!["oldstable".into()];
        let inrelease = sign(&release(&[]).replace(
            "SHA256:\n",
            "SHA256:\n e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0 x\n",
        ));
        server.route("/dists/oldstable/InRelease", Reply::Bytes(inrelease));
        let err = lock_at(&[other], &["hello"], &[], &Mirrors::none()).unwrap_err();
        assert!(matches!(err, ArchiveError::WrongSuite { .. }), "{err}");
        assert!(
            err.to_string().contains("stable/test, not oldstable"),
            "{err}"
        );
    }

    #[test]
    fn an_index_that_is_not_the_listed_one_is_refused_naming_it() {
        let server = Server::start();
        publish(&server);
        let tampered = packages().replace("Version: 1.2-1", "Version: 9.9-1");
        server.route(
            "/dists/stable/main/binary-amd64/Packages.xz",
            Reply::Bytes(xz(tampered.as_bytes())),
        );
        let err = lock_at(&[source(&server.url)], &["hello"], &[], &Mirrors::none()).unwrap_err();
        let ArchiveError::Index {
            ref url,
            ref source,
        } = err
        else {
            panic!("{err}");
        };
        assert!(url.ends_with("/dists/stable/main/binary-amd64/Packages.xz"));
        assert!(
            matches!(
                source,
                IndexCheckError::DigestMismatch { .. }
                    | IndexCheckError::TooShort { .. }
                    | IndexCheckError::TooLong { .. }
            ),
            "{err}"
        );
        assert!(
            err.to_string().contains("main/binary-amd64/Packages.xz"),
            "{err}"
        );
    }

    #[test]
    fn a_component_the_release_does_not_list_is_named() {
        let server = Server::start();
        publish(&server);
        let mut src = source(&server.url);
        src.components.push("contrib".into());
        let err = lock_at(&[src], &["hello"], &[], &Mirrors::none()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::NoIndex { ref dir, .. } if dir == "contrib/binary-amd64"),
            "{err}"
        );
    }

    #[test]
    fn an_endless_inrelease_stops_at_its_limit() {
        let server = Server::start();
        server.route("/dists/stable/InRelease", Reply::Endless);
        let started = Instant::now();
        let err = lock_at(&[source(&server.url)], &["hello"], &[], &Mirrors::none()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::TooLarge { limit, .. } if limit == MAX_INRELEASE),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn an_endless_index_stops_at_its_listed_size() {
        let server = Server::start();
        publish(&server);
        server.route(
            "/dists/stable/main/binary-amd64/Packages.xz",
            Reply::Endless,
        );
        let err = lock_at(&[source(&server.url)], &["hello"], &[], &Mirrors::none()).unwrap_err();
        // Not xz: the decoder fails, then the check finds it too long.
        assert!(
            matches!(
                err,
                ArchiveError::Index {
                    source: IndexCheckError::TooLong { .. }
                        | IndexCheckError::DigestMismatch { .. },
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_server_that_never_answers_times_out() {
        let server = Server::start();
        server.route("/dists/stable/InRelease", Reply::Silent);
        let started = Instant::now();
        let err = lock_at(&[source(&server.url)], &["hello"], &[], &Mirrors::none()).unwrap_err();
        assert!(matches!(err, ArchiveError::Timeout { .. }), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn an_unknown_package_is_the_recipes_to_fix() {
        let server = Server::start();
        publish(&server);
        let err =
            lock_at(&[source(&server.url)], &["nonesuch"], &[], &Mirrors::none()).unwrap_err();
        assert!(
            matches!(err, ArchiveError::Resolve(ResolveError::Unknown { .. })),
            "{err}"
        );
        assert_eq!(err.exit_code(), 2);
        let err = crate::error::Error::from(err);
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("nonesuch"), "{err}");
    }

    #[test]
    fn a_mirror_serves_the_bytes_and_the_pins_keep_the_archive() {
        let mirror = Server::start();
        publish(&mirror);
        // Never contacted: the .invalid domain does not resolve.
        let archive = "http://archive.invalid/debian";
        let mirrors = Mirrors::parse(&[mirror.url.as_str()], &[archive]).unwrap();
        let locked = lock_at(&[source(archive)], &["hello"], &["greet-data"], &mirrors).unwrap();
        assert_eq!(
            locked.packages,
            [pin_of(&DEBS[0], archive), pin_of(&DEBS[1], archive)]
        );

        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        fetch_debs_with(&quick(), &locked.packages, &mirrors, &store, &mut |_| {}).unwrap();
        let mut requests = mirror.requests();
        requests.sort();
        assert_eq!(
            requests,
            [
                "/dists/stable/InRelease",
                "/dists/stable/main/binary-amd64/Packages.xz",
                "/pool/main/h/hello_1.0-1_amd64.deb",
                "/pool/main/l/libgreet_1.2-1_amd64.deb",
            ]
        );
    }

    #[test]
    fn debs_land_in_the_store_in_pin_order() {
        let server = Server::start();
        publish(&server);
        let pins: Vec<PackagePin> = DEBS.iter().map(|d| pin_of(d, &server.url)).collect();
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let mut lines = Vec::new();
        let paths = fetch_debs_with(&quick(), &pins, &Mirrors::none(), &store, &mut |l| {
            lines.push(l.to_string())
        })
        .unwrap();
        for ((pin, path), deb) in pins.iter().zip(&paths).zip(&DEBS) {
            assert_eq!(*path, store.path(&pin.sha256));
            assert_eq!(std::fs::read(path).unwrap(), deb.bytes());
        }
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(server.requests().len(), 3);

        // All in the store now: nothing is asked again.
        let again =
            fetch_debs_with(&quick(), &pins, &Mirrors::none(), &store, &mut |_| {}).unwrap();
        assert_eq!(again, paths);
        assert_eq!(server.requests().len(), 3);
    }

    #[test]
    fn a_deb_in_the_store_is_not_fetched() {
        let server = Server::start();
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        store.put(&DEBS[0].bytes()).unwrap();
        let pins = [pin_of(&DEBS[0], &server.url)];
        let paths =
            fetch_debs_with(&quick(), &pins, &Mirrors::none(), &store, &mut |_| {}).unwrap();
        assert_eq!(paths, [store.path(&pins[0].sha256)]);
        assert!(server.requests().is_empty());
    }

    fn store_names(store: &BlobStore) -> Vec<String> {
        std::fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_deb_that_is_not_the_pinned_one_leaves_nothing() {
        let server = Server::start();
        publish(&server);
        let pin = pin_of(&DEBS[1], &server.url);
        let mut other = DEBS[1].bytes();
        other[0] ^= 1;
        server.route(&format!("/{}", pin.path), Reply::Bytes(other.clone()));
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let err = fetch_debs_with(
            &quick(),
            std::slice::from_ref(&pin),
            &Mirrors::none(),
            &store,
            &mut |_| {},
        )
        .unwrap_err();
        let ArchiveError::Mismatch(ref m) = err else {
            panic!("{err}");
        };
        let (expected, actual) = (m.expected, m.actual);
        assert_eq!(m.package, "libgreet 1.2-1 (amd64)");
        assert_eq!(expected, pin.sha256);
        assert_eq!(actual, Digest::of(&other));
        let text = err.to_string();
        assert!(text.contains(&expected.to_string()) && text.contains(&actual.to_string()));
        assert!(store_names(&store).is_empty(), "{:?}", store_names(&store));
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn a_deb_longer_than_its_pin_is_cut_off() {
        let server = Server::start();
        let pin = pin_of(&DEBS[0], &server.url);
        server.route(&format!("/{}", pin.path), Reply::Endless);
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let started = Instant::now();
        let err = fetch_debs_with(
            &quick(),
            std::slice::from_ref(&pin),
            &Mirrors::none(),
            &store,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(
            matches!(err, ArchiveError::TooLarge { limit, .. } if limit == pin.size),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(store_names(&store).is_empty());
    }

    #[test]
    fn the_first_failing_pin_is_the_one_reported() {
        let server = Server::start();
        publish(&server);
        let mut pins: Vec<PackagePin> = DEBS.iter().map(|d| pin_of(d, &server.url)).collect();
        pins[1].path = "pool/missing.deb".into();
        pins[2].path = "pool/missing-too.deb".into();
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let err =
            fetch_debs_with(&quick(), &pins, &Mirrors::none(), &store, &mut |_| {}).unwrap_err();
        assert!(
            matches!(err, ArchiveError::Status { status: 404, ref url } if url.ends_with("/pool/missing.deb")),
            "{err}"
        );
    }
}
