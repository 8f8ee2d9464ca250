//! A registry that misbehaves on purpose: an HTTP/1.1 server on 127.0.0.1
//! whose answer to each request a test decides ([`Reply`]), from a
//! handler that sees the method, the path (with its query) and how many
//! times that request was made before. It records every request, and can
//! serve a real image from an OCI layout ([`serve_layout`]), so the
//! well-behaved part of an exchange needs no real registry.
//! Stopped on drop (its connections end with their threads).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// With the query, as sent.
    pub target: String,
    /// How many times this method and target came before this one.
    pub seen: usize,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A status, headers (`Name: value` lines) and a body, with its
    /// Content-Length.
    Full {
        status: u16,
        headers: Vec<String>,
        body: Vec<u8>,
    },
    /// Reads the request and never answers.
    Silent,
    /// The status, the headers, then `x`s in chunked encoding without
    /// end.
    Endless { status: u16, headers: Vec<String> },
    /// 200 with a Content-Length of `length`, then `body` (shorter), then
    /// nothing, the connection held open.
    Partial { length: u64, body: Vec<u8> },
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply::Full {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn ok(content_type: &str, body: Vec<u8>) -> Reply {
        Reply::Full {
            status: 200,
            headers: vec![format!("Content-Type: {content_type}")],
            body,
        }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

pub struct Hostile {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Hostile {
    pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (q, s) = (Arc::clone(&requests), Arc::clone(&stop));
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (q, h, s) = (Arc::clone(&q), Arc::clone(&handler), Arc::clone(&s));
                thread::spawn(move || {
                    let _ = serve(conn, &*h, &q, &s);
                });
            }
        });
        Hostile {
            port,
            requests,
            stop,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `docker://127.0.0.1:PORT/REST`.
    pub fn reference(&self, rest: &str) -> String {
        format!("docker://{}/{rest}", self.host())
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// How many requests had this method and path (query ignored).
    pub fn count(&self, method: &str, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method == method && r.path() == path)
            .count()
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Answers requests on one connection until it closes (keep-alive).
fn serve(
    conn: TcpStream,
    handler: &Handler,
    requests: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    loop {
        let mut head = String::new();
        if reader.read_line(&mut head)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        // The body, read and dropped.
        std::io::copy(&mut (&mut reader).take(length as u64), &mut std::io::sink())?;
        let mut parts = head.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_string(),
            parts.next().unwrap_or("").to_string(),
        );
        let request = {
            let mut all = requests.lock().unwrap();
            let seen = all
                .iter()
                .filter(|r| r.method == method && r.target == target)
                .count();
            let request = Request {
                method,
                target,
                seen,
            };
            all.push(request.clone());
            request
        };
        let head_of = |status: u16, headers: &[String], extra: &str| {
            let mut h = format!("HTTP/1.1 {status} {}\r\n", reason(status));
            for line in headers {
                h.push_str(line);
                h.push_str("\r\n");
            }
            h.push_str(extra);
            h.push_str("\r\n");
            h.into_bytes()
        };
        match handler(&request) {
            Reply::Full {
                status,
                headers,
                body,
            } => {
                let extra = format!("Content-Length: {}\r\n", body.len());
                conn.write_all(&head_of(status, &headers, &extra))?;
                if request.method != "HEAD" {
                    conn.write_all(&body)?;
                }
            }
            Reply::Silent => {
                // Until the client gives up and closes, or the test ends.
                let mut buf = [0u8; 1024];
                loop {
                    match reader.read(&mut buf) {
                        Ok(0) | Err(_) => return Ok(()),
                        Ok(_) if stop.load(Ordering::SeqCst) => return Ok(()),
                        Ok(_) => {}
                    }
                }
            }
            Reply::Endless { status, headers } => {
                conn.write_all(&head_of(status, &headers, "Transfer-Encoding: chunked\r\n"))?;
                let block = vec![b'x'; 64 << 10];
                let mut chunk = format!("{:x}\r\n", block.len()).into_bytes();
                chunk.extend_from_slice(&block);
                chunk.extend_from_slice(b"\r\n");
                while !stop.load(Ordering::SeqCst) {
                    conn.write_all(&chunk)?;
                }
                return Ok(());
            }
            Reply::Partial { length, body } => {
                let extra = format!("Content-Length: {length}\r\n");
                conn.write_all(&head_of(200, &[], &extra))?;
                conn.write_all(&body)?;
                conn.flush()?;
                while !stop.load(Ordering::SeqCst) {
                    // Held open, saying nothing, until the client leaves.
                    let mut buf = [0u8; 1];
                    conn.set_read_timeout(Some(Duration::from_millis(200)))?;
                    match conn.read(&mut buf) {
                        Ok(0) => return Ok(()),
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return Ok(()),
                    }
                }
                let _ = conn.shutdown(Shutdown::Both);
                return Ok(());
            }
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// An image in an OCI layout, served as a registry serves it: `/v2/` is
/// open, `/v2/NAME/manifests/TAG` (any tag) and `…/manifests/DIGEST` give
/// the layout's only manifest, `/v2/NAME/blobs/DIGEST` its blobs; other
/// paths are a 404 with a distribution-spec error body.
pub struct Layout {
    dir: PathBuf,
    pub manifest: Vec<u8>,
    pub manifest_type: String,
}

impl Layout {
    pub fn open(layout: &Path) -> Layout {
        let index = super::read_json(&layout.join("index.json"));
        let entry = &index["manifests"][0];
        let digest = entry["digest"].as_str().unwrap();
        let manifest = std::fs::read(super::blob_path(layout, digest)).unwrap();
        Layout {
            dir: layout.to_path_buf(),
            manifest,
            manifest_type: entry["mediaType"].as_str().unwrap().to_string(),
        }
    }

    /// A blob by digest, if the layout has it.
    pub fn blob(&self, digest: &str) -> Option<Vec<u8>> {
        digest.strip_prefix("sha256:")?;
        std::fs::read(super::blob_path(&self.dir, digest)).ok()
    }

    /// The digests of the manifest's config and layers, in that order.
    pub fn blobs(&self) -> Vec<String> {
        let m: serde_json::Value = serde_json::from_slice(&self.manifest).unwrap();
        std::iter::once(&m["config"])
            .chain(m["layers"].as_array().unwrap())
            .map(|d| d["digest"].as_str().unwrap().to_string())
            .collect()
    }

    /// The answer a well-behaved registry gives.
    pub fn reply(&self, request: &Request) -> Reply {
        let path = request.path();
        if path == "/v2/" {
            return Reply::ok("application/json", b"{}".to_vec());
        }
        // Any tag or digest names the one image, but the referrers
        // fallback tag (`sha256-<hex>`), which no one pushed.
        if path.contains("/manifests/") && !path.contains("/manifests/sha256-") {
            return Reply::ok(&self.manifest_type, self.manifest.clone());
        }
        if let Some((_, digest)) = path.split_once("/blobs/")
            && let Some(blob) = self.blob(digest)
        {
            return Reply::ok("application/octet-stream", blob);
        }
        Reply::Full {
            status: 404,
            headers: vec!["Content-Type: application/json".into()],
            body: br#"{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}"#.to_vec(),
        }
    }
}

/// A handler serving `layout` well, for a server that misbehaves only
/// where the test says.
pub fn serve_layout(layout: &Path) -> Arc<Layout> {
    Arc::new(Layout::open(layout))
}
