//! The network side of a Debian archive: a small blocking HTTP(S) client
//! that fetches `InRelease`, `Packages` indexes and `.deb`s, each response
//! bounded in size and in time and streamed to its reader; and the mirror
//! table that says where an archive's bytes come from.
//!
//! The HTTP edge is [`crate::net`]'s, shared with the registry client: a
//! reqwest client on a current-thread runtime, and a clock per request. A
//! [`Body`] is a plain `Read` over it that fetches one piece at a time:
//! the checks of src/debian/signed.rs and the decompressors read from the
//! socket, and nothing is held whole that need not be.
//!
//! Bounds (design.md, "Limits"), each a constant below or a [`Settings`]
//! field: a response larger than its kind's limit is refused as soon as
//! its `Content-Length` or its bytes say so, without reading the rest; a
//! connection is given [`Timeouts::connect`], a response
//! [`Timeouts::stall`] between two pieces of data and [`Timeouts::total`]
//! in all. Redirects are followed at most [`MAX_REDIRECTS`] times.
//!
//! Only `http://` and `https://`. Plain HTTP is as safe as HTTPS here:
//! what is fetched counts only once the `InRelease` signature, the
//! `Release` hashes or a pinned SHA-256 vouch for it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};

use bytes::{Buf, Bytes};

use crate::debian::archive::ArchiveError;
use crate::debian::signed::MAX_INRELEASE_BYTES;
use crate::net::{self, Elapsed, Failure, Http, Timeouts};

/// The largest `InRelease` fetched: the bound `verify_inrelease` reads.
pub const MAX_INRELEASE: u64 = MAX_INRELEASE_BYTES as u64;
/// The largest compressed `Packages` index fetched. Debian 12's main
/// `Packages.xz` for amd64 is 9 MB.
pub const MAX_INDEX_COMPRESSED: u64 = 128 << 20;
/// The largest `Packages` index once decompressed, or fetched plain:
/// `index::Limits::DEFAULT.total_bytes` (Debian 12's main for amd64 is
/// 50 MB).
pub const MAX_INDEX: u64 = crate::debian::index::Limits::DEFAULT.total_bytes;
/// Redirects followed for one request (a mirror redirector, then an
/// HTTPS upgrade, is two).
pub const MAX_REDIRECTS: usize = 5;

/// How long the network may take, and how many downloads run at once. A
/// `.deb` has no other size bound than the one its pin gives
/// ([`Fetcher::get`]'s `limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Connect, stall and, for one file, total.
    pub timeouts: Timeouts,
    /// `.deb` downloads at once.
    pub parallel: usize,
}

impl Settings {
    pub const DEFAULT: Settings = Settings {
        timeouts: Timeouts::DEFAULT,
        parallel: 3,
    };

    /// The default parallelism, with `timeouts`.
    pub fn with_timeouts(timeouts: Timeouts) -> Settings {
        Settings {
            timeouts,
            ..Settings::DEFAULT
        }
    }
}

/// An HTTP client on its own runtime. One per thread: a reqwest client's
/// connections belong to the runtime that opened them.
pub struct Fetcher {
    http: Http,
}

impl Fetcher {
    pub fn new(settings: Settings) -> Result<Fetcher, ArchiveError> {
        let http = Http::new(settings.timeouts, MAX_REDIRECTS)
            .map_err(|reason| ArchiveError::Client { reason })?;
        Ok(Fetcher { http })
    }

    /// GETs `url`, whose body may be at most `limit` bytes. Any status but
    /// 200 is an error ([`ArchiveError::Status`]); so is a
    /// `Content-Length` over `limit`, before a byte of the body is read.
    pub fn get(&self, url: &str, limit: u64) -> Result<Body<'_>, ArchiveError> {
        let parsed = parse_url(url).map_err(|reason| ArchiveError::Http {
            url: url.to_string(),
            reason,
        })?;
        let total = self.http.timeouts().total;
        let response = self
            .http
            .send(self.http.client().get(parsed), total, None)
            .map_err(|f| archive_error(url, f))?;
        if response.status() != 200 {
            return Err(ArchiveError::Status {
                url: url.to_string(),
                status: response.status(),
            });
        }
        let response = response.limit(limit).map_err(|f| archive_error(url, f))?;
        Ok(Body {
            url: url.to_string(),
            response,
            chunk: Bytes::new(),
            state: BodyState::Open,
        })
    }
}

/// A network failure on `url`, as the archive client says it.
fn archive_error(url: &str, failure: Failure) -> ArchiveError {
    let url = url.to_string();
    match failure {
        Failure::Timeout(elapsed) => {
            let reason = match elapsed {
                Elapsed::Connect(t) => format!("no connection after {}", duration(t)),
                // To a reader of files, no answer and no data are one.
                Elapsed::Answer(t) | Elapsed::Stall(t) => format!("no data for {}", duration(t)),
                Elapsed::Total(t) => format!("not complete after {}", duration(t)),
            };
            ArchiveError::Timeout {
                url,
                reason: format!("{reason} ({})", elapsed.setting()),
            }
        }
        Failure::TooLarge { limit } => ArchiveError::TooLarge { url, limit },
        other => ArchiveError::Http {
            url,
            reason: other.to_string(),
        },
    }
}

fn duration(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A response body being read: at most its limit, each piece within the
/// stall time, the whole within the file time. A failed read is an
/// `io::Error` carrying the [`ArchiveError`]; [`fault`] takes it back out.
pub struct Body<'f> {
    url: String,
    response: net::Response<'f>,
    /// What was received and not yet read.
    chunk: Bytes,
    state: BodyState,
}

enum BodyState {
    Open,
    Ended,
    /// The error's text, for reads after the one that failed.
    Failed(String),
}

impl Body<'_> {
    /// The URL asked for (before redirects).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Copies the rest of the body to `out`; bytes copied.
    pub fn copy_to(&mut self, out: &mut impl Write) -> Result<u64, CopyError> {
        let mut copied = 0;
        let mut buf = vec![0; 64 << 10];
        loop {
            let n = match self.read(&mut buf) {
                Ok(0) => return Ok(copied),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(CopyError::Fetch(fault(e).unwrap_or_else(|e| {
                        ArchiveError::Http {
                            url: self.url.clone(),
                            reason: e.to_string(),
                        }
                    })));
                }
            };
            out.write_all(&buf[..n]).map_err(CopyError::Write)?;
            copied += n as u64;
        }
    }

    /// The whole body, in memory: for bodies with a small limit.
    pub fn read_all(mut self) -> Result<Vec<u8>, ArchiveError> {
        let mut out = Vec::new();
        match self.copy_to(&mut out) {
            Ok(_) => Ok(out),
            Err(CopyError::Fetch(e)) => Err(e),
            // A Vec takes every write.
            Err(CopyError::Write(e)) => Err(ArchiveError::Http {
                url: self.url,
                reason: e.to_string(),
            }),
        }
    }
}

impl Read for Body<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match &self.state {
                BodyState::Ended => return Ok(0),
                BodyState::Failed(text) => return Err(io::Error::other(text.clone())),
                BodyState::Open => {}
            }
            match self.response.chunk() {
                Ok(Some(bytes)) => self.chunk = bytes,
                Ok(None) => self.state = BodyState::Ended,
                Err(failure) => {
                    let e = archive_error(&self.url, failure);
                    self.state = BodyState::Failed(e.to_string());
                    let kind = match e {
                        ArchiveError::Timeout { .. } => io::ErrorKind::TimedOut,
                        ArchiveError::TooLarge { .. } => io::ErrorKind::InvalidData,
                        _ => io::ErrorKind::Other,
                    };
                    return Err(io::Error::new(kind, e));
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// Why [`Body::copy_to`] stopped: the body or the destination.
#[derive(Debug)]
pub enum CopyError {
    Fetch(ArchiveError),
    Write(io::Error),
}

/// The fetch error a [`Body`]'s read carried, through any reader that
/// passed its `io::Error` on; or the error itself, if it is another.
pub fn fault(e: io::Error) -> Result<ArchiveError, io::Error> {
    if !e.get_ref().is_some_and(|inner| inner.is::<ArchiveError>()) {
        return Err(e);
    }
    let inner = e
        .into_inner()
        .expect("the error has an inner error (checked above)");
    Ok(*inner
        .downcast::<ArchiveError>()
        .expect("the inner error is an ArchiveError (checked above)"))
}

/// `url` if it is an absolute `http://` or `https://` URL.
fn parse_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
    match parsed.scheme() {
        "http" | "https" if parsed.host_str().is_some() => Ok(parsed),
        "http" | "https" => Err("no host in the URL".into()),
        other => Err(format!(
            "the scheme {other}: is not supported (http:// and https:// are)"
        )),
    }
}

/// Where each archive's bytes come from (`--mirror`). A mirror serves the
/// same paths as the archive it copies, so it changes where bytes are
/// fetched from, never what is pinned: pins keep the archive's own URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirrors {
    /// Archive URL to mirror URL, both without a trailing `/`.
    by_archive: BTreeMap<String, String>,
}

impl Mirrors {
    /// No mirror: every archive is fetched from its own URL.
    pub fn none() -> Mirrors {
        Mirrors::default()
    }

    /// Reads mirror specs against the archives in use (their URLs as the
    /// recipe writes them). A spec is `ORIGINAL=MIRROR`, or a bare
    /// `MIRROR` when there is only one archive to mirror. An `ORIGINAL`
    /// that names none of `archives` is refused, as a typo would
    /// otherwise go unnoticed; so is an archive given two mirrors.
    /// [`Mirrors::parse`] of the specs that concern `archives`: in a build
    /// of several recipes (a stemcell or `recipe:` base under an app), an
    /// `ORIGINAL=MIRROR` for another recipe's archive is that recipe's.
    pub fn for_archives<S: AsRef<str>>(
        specs: &[S],
        archives: &[&str],
    ) -> Result<Mirrors, ArchiveError> {
        let ours: BTreeSet<&str> = archives.iter().map(|a| trim_url(a)).collect();
        let relevant: Vec<&str> = specs
            .iter()
            .map(AsRef::as_ref)
            .filter(|spec| split_spec(spec).is_none_or(|(o, _)| ours.contains(trim_url(o))))
            .collect();
        Mirrors::parse(&relevant, archives)
    }

    pub fn parse<S: AsRef<str>>(specs: &[S], archives: &[&str]) -> Result<Mirrors, ArchiveError> {
        let archives: BTreeSet<&str> = archives.iter().map(|a| trim_url(a)).collect();
        let mut by_archive = BTreeMap::new();
        for spec in specs {
            let spec = spec.as_ref();
            let bad = |reason: String| ArchiveError::Mirror {
                spec: spec.to_string(),
                reason,
            };
            let (original, mirror) = match split_spec(spec) {
                Some((original, mirror)) => {
                    parse_url(original).map_err(|r| bad(format!("{original}: {r}")))?;
                    let original = trim_url(original);
                    if !archives.contains(original) {
                        return Err(bad(format!(
                            "no archive {original} to mirror (the archives: {})",
                            list(&archives)
                        )));
                    }
                    (original, mirror)
                }
                None => match archives.iter().collect::<Vec<_>>()[..] {
                    [only] => (*only, spec),
                    [] => return Err(bad("there is no archive to mirror".into())),
                    _ => {
                        return Err(bad(format!(
                            "several archives are in use ({}): say which with ORIGINAL=MIRROR",
                            list(&archives)
                        )));
                    }
                },
            };
            parse_url(mirror).map_err(|r| bad(format!("{mirror}: {r}")))?;
            if by_archive
                .insert(original.to_string(), trim_url(mirror).to_string())
                .is_some()
            {
                return Err(bad(format!("{original} is given a mirror twice")));
            }
        }
        Ok(Mirrors { by_archive })
    }

    /// Where to fetch `archive_url`'s files from: its mirror, or itself.
    pub fn locate<'a>(&'a self, archive_url: &'a str) -> &'a str {
        self.by_archive
            .get(trim_url(archive_url))
            .map_or(archive_url, String::as_str)
    }
}

/// `ORIGINAL=MIRROR` split at the `=` that starts the mirror's URL, as
/// either URL may hold a `=` of its own in a query.
fn split_spec(spec: &str) -> Option<(&str, &str)> {
    ["=http://", "=https://"]
        .iter()
        .filter_map(|sep| spec.find(sep))
        .min()
        .map(|at| (&spec[..at], &spec[at + 1..]))
}

fn trim_url(url: &str) -> &str {
    url.trim_end_matches('/')
}

fn list(archives: &BTreeSet<&str>) -> String {
    if archives.is_empty() {
        "none".into()
    } else {
        archives.iter().copied().collect::<Vec<_>>().join(", ")
    }
}

/// `path` (plain names, as an index gives it) under the archive at `base`.
pub fn join(base: &str, path: &str) -> String {
    format!("{}/{path}", trim_url(base))
}

/// A throwaway HTTP/1.1 server for tests: a thread on 127.0.0.1 serving
/// a table of paths, recording every request it is sent.
#[cfg(test)]
pub(crate) mod test_server {
    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    /// What the server answers for a path; a path not in the table is 404.
    #[derive(Clone)]
    pub(crate) enum Reply {
        Bytes(Vec<u8>),
        Status(u16),
        /// 200 and bytes without end, without a `Content-Length`.
        Endless,
        /// 200 with a `Content-Length` of this, and no body.
        Claims(u64),
        /// Reads the request and never answers.
        Silent,
        /// 200 and a byte every 200 ms, without end.
        Drip,
        Redirect(String),
    }

    pub(crate) struct Server {
        pub(crate) url: String,
        routes: Arc<Mutex<BTreeMap<String, Reply>>>,
        requests: Arc<Mutex<Vec<String>>>,
        stop: Arc<AtomicBool>,
        addr: std::net::SocketAddr,
    }

    impl Server {
        pub(crate) fn start() -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let routes = Arc::new(Mutex::new(BTreeMap::new()));
            let requests = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let (r, q, s) = (routes.clone(), requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if s.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (r, q) = (r.clone(), q.clone());
                    std::thread::spawn(move || serve(conn, &r, &q));
                }
            });
            Server {
                url: format!("http://{addr}"),
                routes,
                requests,
                stop,
                addr,
            }
        }

        pub(crate) fn route(&self, path: &str, reply: Reply) {
            self.routes.lock().unwrap().insert(path.to_string(), reply);
        }

        /// The paths requested so far, in order.
        pub(crate) fn requests(&self) -> Vec<String> {
            self.requests.lock().unwrap().clone()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            // Wakes the accept loop so that it sees the flag.
            let _ = TcpStream::connect(self.addr);
        }
    }

    /// One request per connection (`Connection: close`).
    fn serve(
        conn: TcpStream,
        routes: &Mutex<BTreeMap<String, Reply>>,
        requests: &Mutex<Vec<String>>,
    ) {
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut head = String::new();
        if reader.read_line(&mut head).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
        }
        let path = head.split(' ').nth(1).unwrap_or("").to_string();
        requests.lock().unwrap().push(path.clone());
        let reply = routes.lock().unwrap().get(&path).cloned();
        let mut conn = conn;
        let head = |status: &str, extra: &str| {
            format!("HTTP/1.1 {status}\r\nConnection: close\r\n{extra}\r\n").into_bytes()
        };
        let _ = match reply {
            None => conn.write_all(&head("404 Not Found", "Content-Length: 0\r\n")),
            Some(Reply::Status(code)) => {
                conn.write_all(&head(&format!("{code} Status"), "Content-Length: 0\r\n"))
            }
            Some(Reply::Bytes(bytes)) => conn
                .write_all(&head(
                    "200 OK",
                    &format!("Content-Length: {}\r\n", bytes.len()),
                ))
                .and_then(|()| conn.write_all(&bytes)),
            Some(Reply::Claims(n)) => {
                conn.write_all(&head("200 OK", &format!("Content-Length: {n}\r\n")))
            }
            Some(Reply::Redirect(to)) => conn.write_all(&head(
                "302 Found",
                &format!("Location: {to}\r\nContent-Length: 0\r\n"),
            )),
            Some(Reply::Endless) => {
                let block = vec![b'x'; 64 << 10];
                conn.write_all(&head("200 OK", "")).and_then(|()| {
                    loop {
                        conn.write_all(&block)?;
                    }
                })
            }
            Some(Reply::Drip) => conn.write_all(&head("200 OK", "")).and_then(|()| {
                loop {
                    conn.write_all(b"x")?;
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            }),
            Some(Reply::Silent) => {
                // Until the client gives up and closes.
                let _ = reader.read_to_end(&mut Vec::new());
                Ok(())
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::test_server::{Reply, Server};
    use super::*;

    fn quick() -> Settings {
        Settings {
            timeouts: Timeouts {
                connect: Duration::from_secs(1),
                stall: Duration::from_secs(1),
                total: Duration::from_secs(3),
            },
            parallel: 2,
        }
    }

    #[test]
    fn a_body_is_read_as_served() {
        let server = Server::start();
        server.route("/a", Reply::Bytes(b"hello".to_vec()));
        let fetcher = Fetcher::new(quick()).unwrap();
        let body = fetcher.get(&format!("{}/a", server.url), 5).unwrap();
        assert_eq!(body.read_all().unwrap(), b"hello");
        assert_eq!(server.requests(), ["/a"]);
    }

    #[test]
    fn a_status_other_than_200_names_the_url_and_the_status() {
        let server = Server::start();
        server.route("/gone", Reply::Status(410));
        let fetcher = Fetcher::new(quick()).unwrap();
        for (path, status) in [("/gone", 410), ("/missing", 404)] {
            let url = format!("{}{path}", server.url);
            let err = fetcher.get(&url, 5).err().unwrap();
            assert!(
                matches!(err, ArchiveError::Status { status: s, url: ref u } if s == status && *u == url),
                "{err}"
            );
            assert!(err.to_string().contains(&url), "{err}");
        }
    }

    #[test]
    fn an_endless_body_stops_at_the_limit() {
        let server = Server::start();
        server.route("/endless", Reply::Endless);
        let fetcher = Fetcher::new(quick()).unwrap();
        let url = format!("{}/endless", server.url);
        let started = std::time::Instant::now();
        let err = fetcher.get(&url, 1 << 20).unwrap().read_all().unwrap_err();
        assert!(
            matches!(err, ArchiveError::TooLarge { limit, .. } if limit == 1 << 20),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_content_length_over_the_limit_is_refused_before_the_body() {
        let server = Server::start();
        server.route("/big", Reply::Claims(1 << 40));
        let fetcher = Fetcher::new(quick()).unwrap();
        let err = fetcher
            .get(&format!("{}/big", server.url), MAX_INRELEASE)
            .err()
            .unwrap();
        assert!(matches!(err, ArchiveError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn a_silent_server_times_out() {
        let server = Server::start();
        server.route("/silent", Reply::Silent);
        let fetcher = Fetcher::new(quick()).unwrap();
        let started = std::time::Instant::now();
        let err = fetcher
            .get(&format!("{}/silent", server.url), 10)
            .err()
            .unwrap();
        assert!(matches!(err, ArchiveError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("no data for 1s"), "{err}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[test]
    fn a_file_that_takes_too_long_times_out_though_it_never_stalls() {
        let server = Server::start();
        server.route("/drip", Reply::Drip);
        let fetcher = Fetcher::new(quick()).unwrap();
        let started = std::time::Instant::now();
        let err = fetcher
            .get(&format!("{}/drip", server.url), 1000)
            .unwrap()
            .read_all()
            .unwrap_err();
        assert!(matches!(err, ArchiveError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("not complete after 3s"), "{err}");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(2900) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }

    #[test]
    fn redirects_are_followed_a_bounded_number_of_times() {
        let server = Server::start();
        server.route("/file", Reply::Bytes(b"content".to_vec()));
        server.route("/hop1", Reply::Redirect("/file".into()));
        for n in 0..=MAX_REDIRECTS {
            server.route(
                &format!("/loop{n}"),
                Reply::Redirect(format!("/loop{}", n + 1)),
            );
        }
        let fetcher = Fetcher::new(quick()).unwrap();
        let body = fetcher.get(&format!("{}/hop1", server.url), 100).unwrap();
        assert_eq!(body.read_all().unwrap(), b"content");
        let err = fetcher
            .get(&format!("{}/loop0", server.url), 100)
            .err()
            .unwrap();
        assert!(err.to_string().contains("redirects"), "{err}");
    }

    #[test]
    fn only_http_and_https_are_fetched() {
        let fetcher = Fetcher::new(quick()).unwrap();
        for url in ["file:///etc/passwd", "ftp://example.org/x", "not a url"] {
            let err = fetcher.get(url, 10).err().unwrap();
            assert!(matches!(err, ArchiveError::Http { .. }), "{url}: {err}");
        }
    }

    #[test]
    fn a_read_error_carries_its_fetch_error_through_other_readers() {
        let server = Server::start();
        server.route("/endless", Reply::Endless);
        let fetcher = Fetcher::new(quick()).unwrap();
        let body = fetcher
            .get(&format!("{}/endless", server.url), 1000)
            .unwrap();
        let e = io::BufReader::new(body)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(matches!(fault(e), Ok(ArchiveError::TooLarge { .. })));
        assert!(fault(io::Error::other("other")).is_err());
    }

    const DEBIAN: &str = "http://deb.debian.org/debian";
    const SECURITY: &str = "http://security.debian.org/debian-security";

    #[test]
    fn a_bare_mirror_replaces_the_only_archive() {
        let mirrors = Mirrors::parse(&["http://mirror.example/debian/"], &[DEBIAN]).unwrap();
        assert_eq!(mirrors.locate(DEBIAN), "http://mirror.example/debian");
        assert_eq!(mirrors.locate(SECURITY), SECURITY);
        assert_eq!(Mirrors::none().locate(DEBIAN), DEBIAN);
        // One archive named twice is one archive.
        Mirrors::parse(&["http://m.example/d"], &[DEBIAN, &format!("{DEBIAN}/")]).unwrap();
    }

    #[test]
    fn a_bare_mirror_with_several_archives_is_refused() {
        let err = Mirrors::parse(&["http://m.example/d"], &[DEBIAN, SECURITY]).unwrap_err();
        assert!(err.to_string().contains("ORIGINAL=MIRROR"), "{err}");
        assert_eq!(err.exit_code(), 2);
        let err = Mirrors::parse(&["http://m.example/d"], &[]).unwrap_err();
        assert!(err.to_string().contains("no archive"), "{err}");
    }

    #[test]
    fn original_equals_mirror_names_the_archive() {
        let spec = format!("{SECURITY}=https://m.example/sec?a=b");
        let mirrors = Mirrors::parse(&[spec], &[DEBIAN, SECURITY]).unwrap();
        assert_eq!(mirrors.locate(SECURITY), "https://m.example/sec?a=b");
        assert_eq!(mirrors.locate(DEBIAN), DEBIAN);
    }

    #[test]
    fn bad_mirror_specs_are_refused() {
        let cases = [
            // An original that is none of the archives.
            vec!["http://elsewhere.example/x=http://m.example/x".to_string()],
            // Not HTTP.
            vec!["ftp://m.example/debian".to_string()],
            vec![format!("{DEBIAN}=http://")],
            // One archive, two mirrors.
            vec![
                format!("{DEBIAN}=http://m1.example"),
                format!("{DEBIAN}=http://m2.example"),
            ],
        ];
        for specs in cases {
            let err = Mirrors::parse(&specs, &[DEBIAN]).unwrap_err();
            assert!(
                matches!(err, ArchiveError::Mirror { .. }),
                "{specs:?}: {err}"
            );
        }
    }

    #[test]
    fn paths_join_under_the_archive() {
        assert_eq!(join("http://a/b/", "dists/x"), "http://a/b/dists/x");
        assert_eq!(join("http://a/b", "pool/p.deb"), "http://a/b/pool/p.deb");
    }
}
