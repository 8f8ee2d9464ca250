//! The HTTP edge that ingot's two network clients share, the registry
//! client (src/registry/transport.rs) and the Debian archive client
//! (src/debian/fetch.rs): a reqwest client on a current-thread tokio
//! runtime created here, so the rest of ingot stays synchronous, and
//! requests bounded in time and in size, so that no server can make ingot
//! wait, or grow, without end.
//!
//! Three limits ([`Timeouts`]), checked by one [`Clock`] per request:
//! - **connect**: to open a connection (TCP and TLS), reqwest's own limit;
//! - **stall**: between two signs of life: the request and its response
//!   head (opening the connection is part of that wait, so a stall limit
//!   below the connect limit bounds connections too), two pieces of the
//!   response body, two pieces of a request body being uploaded
//!   ([`Activity`]);
//! - **total**: for the whole exchange, body included. A caller that moves
//!   a large body gives it [`Timeouts::total_for`] its size.
//!
//! A body is read a piece at a time ([`Response::chunk`]), and refused as
//! soon as its `Content-Length` or its bytes pass the caller's limit
//! ([`Response::limit`]): memory stays bounded whatever the server sends.
//! [`excerpt`] turns the first bytes of an error body into text fit for
//! one line of an error message.
//!
//! Errors are [`Failure`]s, which say what happened without saying to
//! whom: each client names its server (a URL, a registry and a request)
//! in its own error type.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

/// The slowest transfer rate [`Timeouts::total_for`] allows a large body:
/// 64 KiB/s (512 kbit/s).
pub const FLOOR_RATE: u64 = 64 << 10;

/// How long the network may take; see the module header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open a connection (TCP and TLS).
    pub connect: Duration,
    /// Between two signs of life of an exchange, the response head
    /// included: a server that accepts and then says nothing fails after
    /// this.
    pub stall: Duration,
    /// For one request, from sending it to the last byte of its answer.
    pub total: Duration,
}

impl Timeouts {
    pub const DEFAULT: Timeouts = Timeouts {
        connect: Duration::from_secs(30),
        stall: Duration::from_secs(60),
        total: Duration::from_secs(5 * 60),
    };

    /// The total limit for an exchange that moves a body of `size` bytes:
    /// [`total`](Self::total), plus one second per [`FLOOR_RATE`] bytes. A
    /// large blob on a slow but live link is not cut off; one that trickles
    /// in slower than that still ends.
    pub fn total_for(&self, size: u64) -> Duration {
        self.total
            .saturating_add(Duration::from_secs(size / FLOOR_RATE))
    }
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts::DEFAULT
    }
}

/// Which limit elapsed, and what it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elapsed {
    /// No connection within the connect limit.
    Connect(Duration),
    /// No response head within the stall limit.
    Answer(Duration),
    /// The response body, or the request body on its way out, stopped
    /// moving for the stall limit.
    Stall(Duration),
    /// The exchange was not over within its total limit.
    Total(Duration),
}

impl Elapsed {
    /// What the user can change this limit with, for messages.
    pub fn setting(&self) -> &'static str {
        match self {
            Elapsed::Connect(_) => "--connect-timeout",
            Elapsed::Answer(_) | Elapsed::Stall(_) => "--timeout",
            Elapsed::Total(_) => "the limit for one request",
        }
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: &Duration| humantime::format_duration(*d).to_string();
        match self {
            Elapsed::Connect(t) => write!(f, "no connection within {}", d(t)),
            Elapsed::Answer(t) => write!(f, "no answer within {}", d(t)),
            Elapsed::Stall(t) => write!(f, "no data for {}", d(t)),
            Elapsed::Total(t) => write!(f, "not complete after {}", d(t)),
        }
    }
}

/// Why an exchange failed, without the name of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection: refused, unreachable, no such host, a failed TLS
    /// handshake. Nothing of the request was sent.
    Connect(String),
    Timeout(Elapsed),
    /// The body is longer than the caller's limit (by its
    /// `Content-Length`, or by the bytes that arrived).
    TooLarge {
        limit: u64,
    },
    /// The connection broke, or the server did not speak HTTP, after it
    /// was opened.
    Broken(String),
    /// More redirects than the client follows.
    Redirects(usize),
    /// The request could not be made (a URL reqwest refuses).
    Request(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(reason) | Failure::Broken(reason) | Failure::Request(reason) => {
                f.write_str(reason)
            }
            Failure::Timeout(elapsed) => write!(f, "{elapsed} ({})", elapsed.setting()),
            Failure::TooLarge { limit } => write!(f, "more than the limit of {limit} bytes"),
            Failure::Redirects(n) => write!(f, "more than {n} redirects"),
        }
    }
}

/// When a request body last moved: an upload marks it as each piece
/// leaves, and [`Http::send`] waits the stall limit from there.
#[derive(Debug, Clone, Default)]
pub struct Activity(Arc<Mutex<Option<Instant>>>);

impl Activity {
    pub fn mark(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }

    fn last(&self) -> Option<Instant> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A reqwest client on its own runtime. One per thread: a client's
/// connections belong to the runtime that opened them.
pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    timeouts: Timeouts,
    max_redirects: usize,
}

impl Http {
    /// A client that follows at most `max_redirects` redirects (dropping
    /// credentials when one leaves the host, as reqwest does).
    pub fn new(timeouts: Timeouts, max_redirects: usize) -> Result<Http, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("starting the network runtime: {e}"))?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("ingot/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(timeouts.connect)
            .redirect(reqwest::redirect::Policy::limited(max_redirects))
            .build()
            .map_err(|e| format!("setting up the HTTP client: {}", innermost(&e)))?;
        Ok(Http {
            rt,
            client,
            timeouts,
            max_redirects,
        })
    }

    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// The client, to build requests with.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Sends `request` and waits for the response head: within the stall
    /// limit (or, while `activity` shows the request body moving, the stall
    /// limit after its last piece), the whole exchange within `total`. The
    /// response's body is read within the same limits.
    pub fn send(
        &self,
        request: reqwest::RequestBuilder,
        total: Duration,
        activity: Option<&Activity>,
    ) -> Result<Response<'_>, Failure> {
        let request = request
            .build()
            .map_err(|e| Failure::Request(innermost(&e)))?;
        let clock = Clock::start(self.timeouts, total);
        let sent = self.rt.block_on(clock.watch(
            self.client.execute(request),
            self.timeouts.stall,
            activity,
        ));
        match sent {
            Err(elapsed) => Err(Failure::Timeout(elapsed)),
            Ok(Err(e)) => Err(self.failure(&e)),
            Ok(Ok(inner)) => Ok(Response {
                http: self,
                inner,
                clock,
                received: 0,
                limit: u64::MAX,
            }),
        }
    }

    /// Runs a future on the runtime (an upload's stream is polled there).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A reqwest error, by what happened. reqwest's only timeout here is
    /// the connect limit: the others are the [`Clock`]'s.
    fn failure(&self, e: &reqwest::Error) -> Failure {
        if e.is_timeout() {
            Failure::Timeout(Elapsed::Connect(self.timeouts.connect))
        } else if e.is_redirect() {
            Failure::Redirects(self.max_redirects)
        } else if e.is_connect() {
            Failure::Connect(innermost(e))
        } else if e.is_builder() {
            Failure::Request(innermost(e))
        } else {
            Failure::Broken(innermost(e))
        }
    }
}

/// When an exchange must be over by, and how long it may stall.
#[derive(Debug, Clone, Copy)]
struct Clock {
    deadline: Instant,
    total: Duration,
    timeouts: Timeouts,
}

impl Clock {
    fn start(timeouts: Timeouts, total: Duration) -> Clock {
        Clock {
            deadline: Instant::now() + total,
            total,
            timeouts,
        }
    }

    /// Runs `fut` to its end, unless `first` passes before it does (or,
    /// once `activity` moves, the stall limit after its last move), or
    /// the deadline.
    async fn watch<F: std::future::Future>(
        &self,
        fut: F,
        first: Duration,
        activity: Option<&Activity>,
    ) -> Result<F::Output, Elapsed> {
        let mut fut = std::pin::pin!(fut);
        let started = Instant::now();
        loop {
            let moved = activity.and_then(Activity::last).filter(|t| *t > started);
            let until = match moved {
                Some(t) => t + self.timeouts.stall,
                None => started + first,
            };
            match tokio::time::timeout_at(until.min(self.deadline), fut.as_mut()).await {
                Ok(out) => return Ok(out),
                Err(_) if Instant::now() >= self.deadline => {
                    return Err(Elapsed::Total(self.total));
                }
                Err(_) => {
                    let again = activity.and_then(Activity::last).filter(|t| *t > started);
                    if again != moved {
                        continue;
                    }
                    return Err(match moved {
                        Some(_) => Elapsed::Stall(self.timeouts.stall),
                        None => Elapsed::Answer(first),
                    });
                }
            }
        }
    }
}

/// A response whose body is read a piece at a time, each piece within the
/// stall limit, the whole within the request's total, at most
/// [`limit`](Self::limit) bytes.
pub struct Response<'h> {
    http: &'h Http,
    inner: reqwest::Response,
    clock: Clock,
    received: u64,
    limit: u64,
}

impl Response<'_> {
    pub fn status(&self) -> u16 {
        self.inner.status().as_u16()
    }

    pub fn headers(&self) -> &reqwest::header::HeaderMap {
        self.inner.headers()
    }

    /// A header's value, if it is there and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers().get(name)?.to_str().ok()
    }

    /// The URL that answered (after redirects).
    pub fn url(&self) -> &reqwest::Url {
        self.inner.url()
    }

    pub fn content_length(&self) -> Option<u64> {
        self.inner.content_length()
    }

    /// Holds the body to at most `limit` bytes: refused now if its
    /// `Content-Length` says more, else as soon as more arrive.
    pub fn limit(mut self, limit: u64) -> Result<Self, Failure> {
        if self.content_length().is_some_and(|n| n > limit) {
            return Err(Failure::TooLarge { limit });
        }
        self.limit = limit;
        Ok(self)
    }

    /// The next piece of the body; `None` at its end.
    pub fn chunk(&mut self) -> Result<Option<Bytes>, Failure> {
        let clock = self.clock;
        let got =
            self.http
                .rt
                .block_on(clock.watch(self.inner.chunk(), clock.timeouts.stall, None));
        match got {
            // The first wait of a body is a stall, not an unanswered request.
            Err(Elapsed::Answer(t)) => Err(Failure::Timeout(Elapsed::Stall(t))),
            Err(elapsed) => Err(Failure::Timeout(elapsed)),
            Ok(Err(e)) => Err(self.http.failure(&e)),
            Ok(Ok(None)) => Ok(None),
            Ok(Ok(Some(bytes))) => {
                self.received += bytes.len() as u64;
                // Over the limit is over, however much of it was read.
                if self.received > self.limit {
                    return Err(Failure::TooLarge { limit: self.limit });
                }
                Ok(Some(bytes))
            }
        }
    }

    /// The whole body, in memory: for bodies with a small limit.
    pub fn read_all(mut self) -> Result<Vec<u8>, Failure> {
        let mut out = Vec::new();
        while let Some(bytes) = self.chunk()? {
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    /// At most the first `max` bytes of the body, for an error message:
    /// whatever arrived before the body ended, broke or stalled.
    pub fn excerpt(mut self, max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.chunk() {
                Ok(Some(bytes)) => {
                    let room = max - out.len();
                    out.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        out
    }
}

/// At most `max_chars` of `bytes` as one line of text, for an error
/// message: invalid UTF-8 replaced, control characters (escape sequences
/// included) and runs of whitespace made single spaces, cut with `…`.
pub fn excerpt(bytes: &[u8], max_chars: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    let mut chars = 0;
    let mut space = false;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
            continue;
        }
        if chars == max_chars {
            out.push('…');
            return out;
        }
        if space {
            out.push(' ');
            chars += 1;
            space = false;
        }
        out.push(c);
        chars += 1;
    }
    out
}

/// The last error of a chain: reqwest's outer ones only say "error
/// sending request", the innermost why ("Connection refused").
pub fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_one_clean_line() {
        assert_eq!(excerpt(b"  not\r\n found\t ", 100), "not found");
        assert_eq!(excerpt(b"\x1b[31mred\x1b[0m", 100), "[31mred [0m");
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
        assert_eq!(excerpt(&[0xff, b'a'], 10), "\u{fffd}a");
        assert_eq!(excerpt(b"", 10), "");
    }

    #[test]
    fn large_bodies_get_more_time() {
        let t = Timeouts::DEFAULT;
        assert_eq!(t.total_for(0), t.total);
        assert_eq!(t.total_for(1 << 30), t.total + Duration::from_secs(16384));
        assert_eq!(
            t.total_for(u64::MAX),
            t.total + Duration::from_secs(u64::MAX >> 16)
        );
    }

    #[test]
    fn elapsed_limits_name_their_setting() {
        let two = Duration::from_secs(2);
        let f = Failure::Timeout(Elapsed::Answer(two));
        assert_eq!(f.to_string(), "no answer within 2s (--timeout)");
        let f = Failure::Timeout(Elapsed::Connect(two));
        assert_eq!(f.to_string(), "no connection within 2s (--connect-timeout)");
        assert_eq!(Elapsed::Stall(two).to_string(), "no data for 2s");
        assert_eq!(
            Elapsed::Total(Duration::from_secs(300)).to_string(),
            "not complete after 5m"
        );
    }
}
