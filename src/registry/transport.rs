//! One registry on the wire. Every request ingot sends a registry (and its
//! token server) goes through [`Transport::send`], which:
//! - authenticates it: the `/v2/` challenge is asked once, then requests
//!   carry Basic credentials or a bearer token for their [`Scope`]
//!   ([`super::token`]); never to another host (an upload `Location` or a
//!   redirect elsewhere gets no credentials: distribution-spec, and
//!   CVE-2020-15157);
//! - bounds it in time and in size ([`crate::net`]: connect, stall and
//!   total limits; a body over its caller's limit is refused as it
//!   arrives; an error body is read for at most [`MAX_ERROR_BODY`]
//!   bytes and shown only as a sanitized excerpt);
//! - retries what is transient, at most [`ATTEMPTS`] times in all, after
//!   [`FIRST_BACKOFF`], doubling, or the `Retry-After` the registry asks
//!   for (up to [`MAX_RETRY_AFTER`]): a refused or failed connection
//!   (nothing was sent), and for requests that may be sent twice
//!   ([`Replay`]) a connection that broke before the answer, 429, 502,
//!   503 and 504. Never another 4xx, never a timeout (the limit the user
//!   set is the answer), never a request whose streamed body was read;
//! - and turns what went wrong into one [`RegistryError`] line naming the
//!   registry and the request.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use reqwest::header::{
    AUTHORIZATION, CONTENT_LENGTH, HeaderMap, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, Url};

use super::RegistryError;
use super::auth::Credential;
use super::token::{Challenge, MAX_TOKEN_RESPONSE, Tokens, parse_answer};
use crate::net::{self, Activity, Elapsed, Failure, Http, Response, Timeouts};
use crate::progress::Progress;

/// Tries of one request, the first included.
pub const ATTEMPTS: u32 = 4;
/// The wait before the second try; each later one doubles it.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest `Retry-After` waited for; a registry that asks for more
/// is reported, not waited on.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The most of an error response's body read, for its message.
pub const MAX_ERROR_BODY: usize = 4 << 10;
/// The most of it shown, in characters.
const ERROR_EXCERPT: usize = 200;
/// Redirects followed (blob downloads are often sent to a CDN).
const MAX_REDIRECTS: usize = 5;

/// The access a request needs, as the token spec scopes it:
/// `repository:NAME:pull` or `…:pull,push`, several separated by spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope(String);

impl Scope {
    pub fn pull(repository: &str) -> Scope {
        Scope(format!("repository:{repository}:pull"))
    }

    pub fn push(repository: &str) -> Scope {
        Scope(format!("repository:{repository}:pull,push"))
    }

    /// Pushing to `repository` what is read from `from` (a mount).
    pub fn mount(repository: &str, from: &str) -> Scope {
        Scope(format!(
            "repository:{repository}:pull,push repository:{from}:pull"
        ))
    }
}

/// Whether a request may be sent again after a try that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// GET, HEAD, and requests with no body or one held whole whose
    /// repetition does no harm (a manifest PUT): after a failed or broken
    /// connection, 429, 502, 503 or 504.
    Idempotent,
    /// Only when the connection could not be opened (nothing was sent):
    /// an upload chunk, which moves the session on.
    ConnectOnly,
    /// Never: a streamed body, read as it was sent.
    Never,
}

/// A request's body.
pub enum Payload {
    Empty,
    /// Held whole, so it can be sent again; sent in pieces, each a sign of
    /// life for the stall limit.
    Bytes(Bytes),
    /// Sent once, as it is read; `Activity` is marked as pieces leave.
    Stream(Option<reqwest::Body>, Activity),
}

/// One request, as [`Transport::send`] takes it.
pub struct Call<'a> {
    pub method: Method,
    pub url: Url,
    pub scope: &'a Scope,
    pub headers: HeaderMap,
    pub payload: Payload,
    pub replay: Replay,
    /// The total limit (a large body gets [`Timeouts::total_for`] it).
    pub total: Duration,
    /// Statuses other than 2xx returned to the caller rather than made
    /// errors (404 for a HEAD, say).
    pub accept: &'a [u16],
    /// What is asked for, for messages ("manifest docker://…").
    pub what: &'a str,
}

/// A connection to one registry: its client, credentials and tokens.
pub struct Transport {
    http: Http,
    /// The registry as the reference writes it: messages and credentials.
    host: String,
    /// `scheme://host/`, as requests go.
    base: Url,
    credential: Option<Credential>,
    /// The credential files looked in, for "none were found" messages.
    searched: Vec<PathBuf>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<Tokens>,
    progress: Progress,
}

impl Transport {
    pub fn new(
        host: &str,
        plain_http: bool,
        timeouts: Timeouts,
        credential: Option<Credential>,
        searched: Vec<PathBuf>,
        progress: Progress,
    ) -> Result<Transport, RegistryError> {
        let scheme = if plain_http { "http" } else { "https" };
        // Docker Hub answers the distribution API under another name.
        let authority = if host == "docker.io" {
            "index.docker.io"
        } else {
            host
        };
        let base = Url::parse(&format!("{scheme}://{authority}/")).map_err(|e| {
            RegistryError::Protocol {
                what: host.to_string(),
                message: format!("not a registry address: {e}"),
            }
        })?;
        let http =
            Http::new(timeouts, MAX_REDIRECTS).map_err(|message| RegistryError::Protocol {
                what: host.to_string(),
                message,
            })?;
        Ok(Transport {
            http,
            host: host.to_string(),
            base,
            credential,
            searched,
            challenge: Mutex::new(None),
            tokens: Mutex::new(Tokens::default()),
            progress,
        })
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    pub fn timeouts(&self) -> &Timeouts {
        self.http.timeouts()
    }

    pub fn http(&self) -> &Http {
        &self.http
    }

    /// `path` (absolute, `/v2/…`) on this registry.
    pub fn url(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url
    }

    /// Sends `call`: authenticated, bounded, retried as the module header
    /// says. A 2xx or an `accept`ed status is the caller's response; any
    /// other is an error.
    pub fn send(&self, call: Call) -> Result<Response<'_>, RegistryError> {
        self.exchange(call, true)
    }

    fn exchange(&self, mut call: Call, authorize: bool) -> Result<Response<'_>, RegistryError> {
        let request = self.request_line(&call.method, &call.url);
        let ours = authorize && self.is_ours(&call.url);
        let mut renewed = false;
        let mut attempt = 1;
        loop {
            let authorization = if ours {
                self.authorization(call.scope)?
            } else {
                None
            };
            let mut headers = call.headers.clone();
            if let Some(value) = authorization.clone() {
                headers.insert(AUTHORIZATION, value);
            }
            if let Payload::Bytes(bytes) = &call.payload {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
            }
            let mut builder = self
                .http
                .client()
                .request(call.method.clone(), call.url.clone())
                .headers(headers);
            let mut activity = None;
            builder = match &mut call.payload {
                Payload::Empty => builder,
                Payload::Bytes(bytes) => {
                    // In pieces, so that a slow upload is seen moving.
                    let moved = Activity::default();
                    activity = Some(moved.clone());
                    builder.body(reqwest::Body::wrap_stream(pieces(bytes.clone(), moved)))
                }
                Payload::Stream(body, moved) => {
                    activity = Some(moved.clone());
                    match body.take() {
                        Some(body) => builder.body(body),
                        None => {
                            return Err(RegistryError::Protocol {
                                what: call.what.to_string(),
                                message: format!("{request}: a streamed body cannot be sent twice"),
                            });
                        }
                    }
                }
            };
            let last = attempt >= ATTEMPTS;
            let wait = match self.http.send(builder, call.total, activity.as_ref()) {
                Err(Failure::Connect(reason)) if !last && call.replay != Replay::Never => {
                    self.note_retry(&request, &reason, attempt, None)
                }
                Err(Failure::Broken(reason)) if !last && call.replay == Replay::Idempotent => {
                    self.note_retry(&request, &reason, attempt, None)
                }
                Err(failure) => return Err(self.network_error(&request, failure, call.what)),
                Ok(response) => {
                    let status = response.status();
                    if status == 401
                        && !renewed
                        && ours
                        && call.replay != Replay::Never
                        && self.renew(&response, call.scope, authorization.is_some())
                    {
                        renewed = true;
                        continue;
                    }
                    if (200..300).contains(&status) || call.accept.contains(&status) {
                        return Ok(response);
                    }
                    let transient = matches!(status, 429 | 502 | 503 | 504);
                    if !transient || last || call.replay != Replay::Idempotent {
                        return Err(self.status_error(response, call.what, &request));
                    }
                    let asked = response.header(RETRY_AFTER.as_str()).and_then(retry_after);
                    if let Some(asked) = asked.filter(|a| *a > MAX_RETRY_AFTER) {
                        let mut e = self.status_error(response, call.what, &request);
                        if let RegistryError::Protocol { message, .. } = &mut e {
                            message.push_str(&format!(
                                " (it asks to retry after {}, longer than ingot waits: {})",
                                humantime::format_duration(asked),
                                humantime::format_duration(MAX_RETRY_AFTER)
                            ));
                        }
                        return Err(e);
                    }
                    self.note_retry(&request, &format!("HTTP {status}"), attempt, asked)
                }
            };
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    /// Says that `request` failed for `why` and will be tried again;
    /// returns how long to wait first.
    fn note_retry(
        &self,
        request: &str,
        why: &str,
        attempt: u32,
        asked: Option<Duration>,
    ) -> Duration {
        let wait = asked.unwrap_or(FIRST_BACKOFF * 2u32.pow(attempt - 1));
        self.progress.log(&format!(
            "registry {}: {request}: {}; trying again in {} ({} of {ATTEMPTS})",
            self.host,
            net::excerpt(why.as_bytes(), ERROR_EXCERPT),
            humantime::format_duration(wait),
            attempt + 1
        ));
        wait
    }

    /// Whether `url` is this registry (same scheme, host and port): only
    /// then does a request carry credentials.
    fn is_ours(&self, url: &Url) -> bool {
        url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    /// `GET /v2/x/manifests/t` for this registry; the scheme and host too
    /// for another (a token server, an upload location elsewhere). Never
    /// the query, which may hold upload state.
    fn request_line(&self, method: &Method, url: &Url) -> String {
        if self.is_ours(url) {
            format!("{method} {}", url.path())
        } else {
            let mut bare = url.clone();
            bare.set_query(None);
            bare.set_fragment(None);
            format!("{method} {bare}")
        }
    }

    /// The `Authorization` a request of `scope` carries, if any: asks the
    /// registry's challenge first, and a token for the scope when it wants
    /// bearer tokens.
    fn authorization(&self, scope: &Scope) -> Result<Option<HeaderValue>, RegistryError> {
        match self.challenge()? {
            Challenge::Open => Ok(None),
            Challenge::Basic => Ok(self.basic()),
            Challenge::Bearer { realm, service } => {
                self.token(&realm, service.as_deref(), scope).map(Some)
            }
        }
    }

    /// The registry's challenge, asked once (`GET /v2/`).
    fn challenge(&self) -> Result<Challenge, RegistryError> {
        if let Some(known) = self.lock_challenge().clone() {
            return Ok(known);
        }
        let url = self.url("/v2/");
        let response = self.exchange(
            Call {
                method: Method::GET,
                url,
                scope: &Scope(String::new()),
                headers: HeaderMap::new(),
                payload: Payload::Empty,
                replay: Replay::Idempotent,
                total: self.timeouts().total,
                accept: &[401, 403, 404],
                what: &format!("the registry at {}", self.host),
            },
            false,
        )?;
        let challenge = match response.status() {
            401 => {
                Challenge::parse(challenge_values(response.headers())).unwrap_or(Challenge::Basic)
            }
            _ => Challenge::Open,
        };
        *self.lock_challenge() = Some(challenge.clone());
        Ok(challenge)
    }

    /// After a 401: whether the request is worth one more try, with a new
    /// challenge from the answer, or a new token.
    fn renew(&self, response: &Response, scope: &Scope, authorized: bool) -> bool {
        let offered = Challenge::parse(challenge_values(response.headers()));
        let mut known = self.lock_challenge();
        let changed = offered.is_some() && *known != offered;
        if changed {
            *known = offered;
        }
        drop(known);
        let bearer = matches!(*self.lock_challenge(), Some(Challenge::Bearer { .. }));
        if bearer && authorized {
            self.lock_tokens().forget(&scope.0);
        }
        changed || (bearer && authorized)
    }

    fn basic(&self) -> Option<HeaderValue> {
        let c = self.credential.as_ref()?;
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", c.username, c.secret));
        let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
        value.set_sensitive(true);
        Some(value)
    }

    /// A bearer token for `scope` from the token server at `realm`,
    /// asked for with the credentials (if any) as Basic.
    fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &Scope,
    ) -> Result<HeaderValue, RegistryError> {
        if let Some(token) = self.lock_tokens().get(&scope.0) {
            return bearer(token, &self.host);
        }
        let mut url = Url::parse(realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| RegistryError::Protocol {
                what: self.host.clone(),
                message: format!(
                    "the registry sends clients for tokens to {:?}, which is not an HTTP URL",
                    net::excerpt(realm.as_bytes(), ERROR_EXCERPT)
                ),
            })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            for s in scope.0.split(' ').filter(|s| !s.is_empty()) {
                query.append_pair("scope", s);
            }
        }
        let mut headers = HeaderMap::new();
        if let Some(basic) = self.basic() {
            headers.insert(AUTHORIZATION, basic);
        }
        let what = format!("a token from {}", url.host_str().unwrap_or(realm));
        let request = self.request_line(&Method::GET, &url);
        let response = self.exchange(
            Call {
                method: Method::GET,
                url,
                scope,
                headers,
                payload: Payload::Empty,
                replay: Replay::Idempotent,
                total: self.timeouts().total,
                accept: &[401, 403],
                what: &what,
            },
            false,
        )?;
        if response.status() != 200 && response.status() / 100 == 2 {
            return Err(RegistryError::Protocol {
                what,
                message: format!("the token server answered HTTP {}", response.status()),
            });
        }
        if matches!(response.status(), 401 | 403) {
            let said = net::excerpt(&response.excerpt(MAX_ERROR_BODY), ERROR_EXCERPT);
            return Err(self.unauthorized(Some(&said)));
        }
        let body = response
            .limit(MAX_TOKEN_RESPONSE)
            .and_then(Response::read_all)
            .map_err(|f| self.network_error(&request, f, "a token response"))?;
        let (token, lifetime) = parse_answer(&body).map_err(|message| RegistryError::Protocol {
            what: what.clone(),
            message,
        })?;
        let value = bearer(&token, &self.host)?;
        self.lock_tokens().insert(&scope.0, token, lifetime);
        Ok(value)
    }

    fn lock_challenge(&self) -> std::sync::MutexGuard<'_, Option<Challenge>> {
        self.challenge.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A network failure of `request`, in one line.
    pub fn network_error(&self, request: &str, failure: Failure, what: &str) -> RegistryError {
        let host = self.host.clone();
        match failure {
            Failure::Connect(mut reason) => {
                if self.base.scheme() == "https" && !reason.contains("refused") {
                    reason.push_str(
                        "; if the registry speaks plain HTTP, name it with --insecure HOST[:PORT]",
                    );
                }
                RegistryError::Unreachable { host, reason }
            }
            Failure::Timeout(elapsed) => {
                let limit = humantime::format_duration(match elapsed {
                    Elapsed::Connect(t)
                    | Elapsed::Answer(t)
                    | Elapsed::Stall(t)
                    | Elapsed::Total(t) => t,
                });
                let setting = elapsed.setting();
                let message = match elapsed {
                    Elapsed::Connect(_) => {
                        format!("no connection for {request} within {limit} ({setting})")
                    }
                    Elapsed::Answer(_) => {
                        format!("no answer to {request} within {limit} ({setting})")
                    }
                    Elapsed::Stall(_) => {
                        format!("{request} stalled: nothing moved for {limit} ({setting})")
                    }
                    Elapsed::Total(_) => {
                        format!("{request} not complete after {limit} ({setting})")
                    }
                };
                RegistryError::Timeout { host, message }
            }
            Failure::TooLarge { limit } => RegistryError::TooLarge {
                host,
                request: request.to_string(),
                what: what.to_string(),
                limit,
            },
            other => RegistryError::Protocol {
                what: what.to_string(),
                message: format!("{request}: {other}"),
            },
        }
    }

    /// An answer that is not what `request` wanted, by kind: credentials,
    /// access, absence, or what the registry said (from at most
    /// [`MAX_ERROR_BODY`] bytes of its body, shown sanitized).
    fn status_error(&self, response: Response, what: &str, request: &str) -> RegistryError {
        let code = response.status();
        let body = response.excerpt(MAX_ERROR_BODY);
        let envelope: Vec<(String, String)> = serde_json::from_slice::<Envelope>(&body)
            .map(|e| e.errors.into_iter().map(|e| (e.code, e.message)).collect())
            .unwrap_or_default();
        let has = |codes: &[&str]| envelope.iter().any(|(c, _)| codes.contains(&c.as_str()));
        if code == 401 || has(&["UNAUTHORIZED"]) {
            return self.unauthorized(None);
        }
        if code == 403 || has(&["DENIED"]) {
            return RegistryError::Denied {
                host: self.host.clone(),
                what: what.to_string(),
            };
        }
        if code == 404
            || has(&[
                "BLOB_UNKNOWN",
                "MANIFEST_UNKNOWN",
                "NAME_UNKNOWN",
                "NOT_FOUND",
            ])
        {
            return RegistryError::NotFound {
                what: what.to_string(),
            };
        }
        let said = if envelope.is_empty() {
            net::excerpt(&body, ERROR_EXCERPT)
        } else {
            let joined = envelope
                .iter()
                .map(|(c, m)| format!("{c}: {m}"))
                .collect::<Vec<_>>()
                .join("; ");
            net::excerpt(joined.as_bytes(), ERROR_EXCERPT)
        };
        RegistryError::Protocol {
            what: what.to_string(),
            message: if said.is_empty() {
                format!("{request}: the registry answered HTTP {code}")
            } else {
                format!("{request}: the registry answered HTTP {code}: {said}")
            },
        }
    }

    pub fn unauthorized(&self, said: Option<&str>) -> RegistryError {
        let mut detail = match &self.credential {
            Some(c) => format!(
                "the registry refused the credentials of user {:?} from {}",
                c.username, c.source
            ),
            None => format!(
                "the registry wants credentials and none were found for {} (looked in {})",
                self.host,
                if self.searched.is_empty() {
                    "no credential files".to_string()
                } else {
                    self.searched
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
        };
        if let Some(said) = said.map(str::trim).filter(|s| !s.is_empty()) {
            detail.push_str(&format!(" ({said})"));
        }
        RegistryError::Unauthorized {
            host: self.host.clone(),
            detail,
        }
    }
}

/// The distribution-spec error body: `{"errors": [{"code", "message"}]}`.
#[derive(serde::Deserialize)]
struct Envelope {
    errors: Vec<EnvelopeError>,
}

#[derive(serde::Deserialize)]
struct EnvelopeError {
    code: String,
    #[serde(default)]
    message: String,
}

fn challenge_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
}

fn bearer(token: &str, host: &str) -> Result<HeaderValue, RegistryError> {
    let mut value =
        HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| RegistryError::Protocol {
            what: host.to_string(),
            message: "the token server sent a token that is not a valid header value".into(),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// `bytes` as a stream of 64 KiB pieces, marking `moved` as each leaves.
fn pieces(
    bytes: Bytes,
    moved: Activity,
) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    const PIECE: usize = 64 << 10;
    let count = bytes.len().div_ceil(PIECE);
    futures_util::stream::iter((0..count).map(move |i| {
        moved.mark();
        Ok(bytes.slice(i * PIECE..((i + 1) * PIECE).min(bytes.len())))
    }))
}

/// `Retry-After` in seconds (RFC 9110 §10.2.3). The HTTP-date form would
/// need the clock; it gets the usual backoff instead.
fn retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(host: &str, plain: bool) -> Transport {
        Transport::new(
            host,
            plain,
            Timeouts::DEFAULT,
            None,
            Vec::new(),
            Progress::quiet(),
        )
        .unwrap()
    }

    #[test]
    fn credentials_go_only_to_the_registry() {
        let t = transport("reg.example:5000", false);
        let ours = |u: &str| t.is_ours(&Url::parse(u).unwrap());
        assert!(ours(
            "https://reg.example:5000/v2/x/blobs/uploads/1?_state=s"
        ));
        assert!(!ours("http://reg.example:5000/v2/"));
        assert!(!ours("https://reg.example/v2/"));
        assert!(!ours("https://storage.example/upload"));
        let hub = transport("docker.io", false);
        assert!(hub.is_ours(&Url::parse("https://index.docker.io/v2/").unwrap()));
        assert!(
            transport("127.0.0.1:5000", true)
                .is_ours(&Url::parse("http://127.0.0.1:5000/v2/").unwrap())
        );
    }

    #[test]
    fn request_lines_never_show_a_query() {
        let t = transport("reg.example", false);
        let line = |u: &str| t.request_line(&Method::PUT, &Url::parse(u).unwrap());
        assert_eq!(
            line("https://reg.example/v2/x/blobs/uploads/1?_state=secret&digest=d"),
            "PUT /v2/x/blobs/uploads/1"
        );
        assert_eq!(
            line("https://auth.example/token?scope=x"),
            "PUT https://auth.example/token"
        );
    }

    #[test]
    fn retry_after_in_seconds_only() {
        assert_eq!(retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(retry_after("-1"), None);
    }

    #[test]
    fn scopes_as_the_token_spec_writes_them() {
        assert_eq!(Scope::pull("a/b").0, "repository:a/b:pull");
        assert_eq!(Scope::push("a").0, "repository:a:pull,push");
        assert_eq!(
            Scope::mount("a", "b").0,
            "repository:a:pull,push repository:b:pull"
        );
    }
}
