//! A real OCI registry for the tests: Debian's `docker-registry` (the CNCF
//! distribution registry 2.8) on 127.0.0.1 with a free port and a temp
//! storage directory, without auth or with htpasswd basic auth. Its access
//! log goes to a file, so tests can count the requests a command made.
//! Stopped (killed, by its own pid) on drop.
//!
//! Also: a minimal HTTP/1.0 GET for checking what the registry holds, and
//! a fault-injecting proxy that corrupts blob bodies.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub const REGISTRY: &str = "/usr/bin/docker-registry";

pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Registry {
    /// A registry anyone may push to.
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// A registry that wants basic auth as `user`/`password`.
    pub fn with_htpasswd(user: &str, password: &str) -> Registry {
        Registry::launch(Some((user, password)))
    }

    fn launch(auth: Option<(&str, &str)>) -> Registry {
        let htpasswd = auth.map(|(user, password)| {
            super::require("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("running htpasswd");
            assert!(out.status.success(), "htpasswd failed");
            out.stdout
        });
        let auth_section = |dir: &Path| match &htpasswd {
            Some(entry) => {
                let file = dir.join("htpasswd");
                std::fs::write(&file, entry).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: ingot-test\n    path: {}\n",
                    file.display()
                )
            }
            None => String::new(),
        };
        // Up means /v2/ answers: 200, or 401 with auth.
        Registry::launch_with(auth_section, |status, _| status == 200 || status == 401)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `docker://127.0.0.1:PORT/REPO`.
    pub fn reference(&self, repo: &str) -> String {
        format!("docker://{}/{repo}", self.host())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where the log is now: pass it to [`requests_since`](Self::requests_since).
    pub fn mark(&self) -> usize {
        self.log().len()
    }

    /// The requests the access log recorded since `mark`, as
    /// `METHOD /path?query`.
    pub fn requests_since(&self, mark: usize) -> Vec<String> {
        let log = self.log();
        log.get(mark..)
            .unwrap_or("")
            .lines()
            .filter_map(|line| {
                // 127.0.0.1 - - [date] "PUT /v2/x/blobs/uploads/… HTTP/1.1" 201 …
                let start = line.find("] \"")? + 3;
                let request = &line[start..];
                let end = request.find(" HTTP/")?;
                Some(request[..end].to_string())
            })
            .collect()
    }

    /// Requests that send blob bytes: the upload session's PATCHes and
    /// PUTs, and the POSTs that open one.
    pub fn blob_uploads_since(&self, mark: usize) -> Vec<String> {
        self.requests_since(mark)
            .into_iter()
            .filter(|r| r.contains("/blobs/uploads/"))
            .filter(|r| r.starts_with("PUT ") || r.starts_with("PATCH "))
            .collect()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP/1.0 GET on 127.0.0.1: (status, head, body), or None if
/// nothing answered.
pub fn http_get(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let split = find(&response, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, head, response[split + 4..].to_vec()))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// An HTTP proxy in front of a registry that flips one byte of every blob
/// body it serves on GET: a registry that serves a blob with the wrong
/// digest. Each request is forwarded on its own connection with
/// `Connection: close`, so a response ends where the stream does.
pub struct CorruptingProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// How many blob bodies were corrupted.
    pub corrupted: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl CorruptingProxy {
    pub fn start(upstream: u16) -> CorruptingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let corrupted = Arc::new(AtomicUsize::new(0));
        let thread = {
            let stop = Arc::clone(&stop);
            let corrupted = Arc::clone(&corrupted);
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let corrupted = Arc::clone(&corrupted);
                    thread::spawn(move || {
                        let _ = forward(conn, upstream, &corrupted);
                    });
                }
            })
        };
        CorruptingProxy {
            port,
            stop,
            corrupted,
            thread: Some(thread),
        }
    }
}

impl Drop for CorruptingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn forward(mut client: TcpStream, upstream: u16, corrupted: &AtomicUsize) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    // The request head, then its body by Content-Length.
    let mut request = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = client.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(i) = find(&request, b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_string();
    let mut length = 0usize;
    let mut kept = vec![request_line.clone()];
    for line in lines {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        kept.push(line.to_string());
    }
    kept.push("Connection: close".into());
    let mut body = request[head_end + 4..].to_vec();
    while body.len() < length {
        let n = client.read(&mut buf)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }

    let mut server = TcpStream::connect(("127.0.0.1", upstream))?;
    server.write_all(format!("{}\r\n\r\n", kept.join("\r\n")).as_bytes())?;
    server.write_all(&body)?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;

    let mut parts = request_line.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "GET"
        && path.contains("/blobs/sha256:")
        && response.starts_with(b"HTTP/1.1 200")
        && let Some(split) = find(&response, b"\r\n\r\n")
    {
        let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
        // Only a Content-Length body can be changed in place.
        if head.contains("content-length:")
            && !head.contains("transfer-encoding")
            && response.len() > split + 4
        {
            let last = response.len() - 1;
            response[last] ^= 0xff;
            corrupted.fetch_add(1, Ordering::SeqCst);
        }
    }
    client.write_all(&response)?;
    let _ = client.shutdown(Shutdown::Both);
    Ok(())
}

/// Writes an executable shell script.
pub fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// PATH with `dir` first. (Tests may read the environment they run in.)
#[allow(clippy::disallowed_methods)]
pub fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![PathBuf::from(dir)];
    if let Some(path) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&path));
    }
    std::env::join_paths(paths).unwrap()
}

/// What a registry with token auth (the distribution token spec) is told:
/// where clients get tokens (`realm`), the name it goes by in them
/// (`service`, the `aud` it accepts), whose signatures it trusts (`issuer`)
/// and the certificates those are checked against (`rootcertbundle`).
pub struct TokenAuth<'a> {
    pub realm: &'a str,
    pub service: &'a str,
    pub issuer: &'a str,
    pub rootcertbundle: &'a Path,
}

impl Registry {
    /// A registry that wants a bearer token from `auth.realm`.
    pub fn with_token_auth(auth: &TokenAuth) -> Registry {
        let section = format!(
            "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            auth.realm,
            auth.service,
            auth.issuer,
            auth.rootcertbundle.display()
        );
        // Up means: /v2/ answers 401 and sends clients to the token realm.
        let realm = format!("bearer realm=\"{}\"", auth.realm.to_ascii_lowercase());
        Registry::launch_with(
            |_| section.clone(),
            |status, head| {
                status == 401
                    && head.lines().any(|line| {
                        let line = line.to_ascii_lowercase();
                        line.strip_prefix("www-authenticate:")
                            .is_some_and(|v| v.trim_start().starts_with(&realm))
                    })
            },
        )
    }

    /// Starts a registry with the `auth_section` (made in its directory) in
    /// its config, up once `ready(status, head)` holds for a GET of `/v2/`.
    /// A port that was free a moment ago may be taken by the time the
    /// registry binds it: a few are tried.
    fn launch_with(
        auth_section: impl Fn(&Path) -> String,
        ready: impl Fn(u16, &str) -> bool,
    ) -> Registry {
        super::require("docker-registry");
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let auth_section = auth_section(dir.path());
            let port = free_port();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\n\
                     log:\n  level: info\n  accesslog:\n    disabled: false\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                     http:\n  addr: 127.0.0.1:{port}\n  secret: ingot-tests\n\
                     {auth_section}",
                    dir.path().join("data").display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new(REGISTRY)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("starting docker-registry");
            let mut registry = Registry { child, dir, port };
            if registry.wait_ready_for(&ready) {
                return registry;
            }
        }
        panic!("docker-registry did not start");
    }

    fn wait_ready_for(&mut self, ready: &impl Fn(u16, &str) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Some((status, head, _)) = http_get(self.port, "/v2/", &[])
                && ready(status, &head)
            {
                return true;
            }
            thread::sleep(Duration::from_millis(50));
        }
        false
    }
}
