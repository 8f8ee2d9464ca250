//! Registry credentials in the standard formats: containers `auth.json`
//! (containers-auth.json(5)) and Docker's `config.json`, with their
//! `credHelpers` and `credsStore` helpers
//! (github.com/docker/docker-credential-helpers protocol).
//!
//! The files to read are handed in, in order, by `cli.rs` (the only reader
//! of the environment; see `credential_sources` there): the containers
//! files in containers-auth.json(5)'s order, then Docker's `config.json`.
//! The first file that knows the registry wins. A helper runs bounded in
//! time ([`HELPER_TIMEOUT`]) and output ([`MAX_HELPER_OUTPUT`]).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use super::RegistryError;
use crate::store::file::{self, Links};

/// Where credentials are looked up, in order.
#[derive(Debug, Clone, Default)]
pub struct CredentialSources {
    pub files: Vec<PathBuf>,
}

/// A user name and secret for one registry, and where they came from.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub secret: String,
    /// The file or helper that gave them, for error messages.
    pub source: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// The parts of auth.json and config.json that name credentials; other
/// fields (proxies, plugins…) are none of ours.
#[derive(Debug, Default, Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// The credentials for `host` (and, for per-repository auth.json keys,
/// `repository`), or None for anonymous access.
pub fn lookup(
    sources: &CredentialSources,
    host: &str,
    repository: &str,
) -> Result<Option<Credential>, RegistryError> {
    for path in &sources.files {
        let Some(file) = read_file(path)? else {
            continue;
        };
        if let Some(found) = lookup_in(&file, path, host, repository, run_helper)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// The most bytes a credentials file may have: a few hundred registries'
/// entries fit in a fraction of it.
pub const MAX_AUTH_FILE: u64 = 1 << 20;

/// A credentials file (a regular file, or a symlink to one, of at most
/// [`MAX_AUTH_FILE`] bytes); None when there is none.
fn read_file(path: &Path) -> Result<Option<AuthFile>, RegistryError> {
    let bad = |message: String| RegistryError::Credentials {
        origin: path.display().to_string(),
        message,
    };
    let bytes = match file::read_regular(path, Links::Follow, MAX_AUTH_FILE) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(e.to_string())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| bad(format!("not a credentials file: {e}")))
}

/// Looks `host` up in one file: its `credHelpers` entry, then `credsStore`,
/// then `auths` (most specific key first), as Docker and containers/image
/// do. `helper(name, host)` runs a credential helper: credentials, or None
/// when it knows nothing of the server.
fn lookup_in(
    file: &AuthFile,
    path: &Path,
    host: &str,
    repository: &str,
    helper: impl Fn(&str, &str) -> Result<Option<Credential>, RegistryError>,
) -> Result<Option<Credential>, RegistryError> {
    if let Some(name) = file
        .cred_helpers
        .iter()
        .find(|(k, _)| normalize(k) == normalize(host))
        .map(|(_, v)| v)
    {
        return helper(name, host);
    }
    if let Some(store) = &file.creds_store
        && let Some(found) = helper(store, host)?
    {
        return Ok(Some(found));
    }
    // containers-auth.json allows `host/namespace/repo` keys: the longest
    // matching one wins.
    let wanted = format!("{}/{repository}", normalize(host));
    let best = file
        .auths
        .iter()
        .filter(|(k, _)| {
            let k = normalize(k);
            wanted == k || wanted.starts_with(&format!("{k}/"))
        })
        .max_by_key(|(k, _)| normalize(k).len());
    let Some((key, entry)) = best else {
        return Ok(None);
    };
    entry_credential(entry, key, path)
        .map(Some)
        .or_else(|e| match e {
            // An empty `{}` entry (what `docker login` leaves beside a
            // credsStore) says nothing.
            EntryError::Empty => Ok(None),
            EntryError::Bad(message) => Err(RegistryError::Credentials {
                origin: path.display().to_string(),
                message: format!("auths[{key:?}]: {message}"),
            }),
        })
}

enum EntryError {
    Empty,
    Bad(String),
}

fn entry_credential(entry: &AuthEntry, key: &str, path: &Path) -> Result<Credential, EntryError> {
    let source = format!("{} (auths {key:?})", path.display());
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| EntryError::Bad(format!("auth is not base64: {e}")))?;
        let text =
            String::from_utf8(decoded).map_err(|_| EntryError::Bad("auth is not UTF-8".into()))?;
        let (user, secret) = text
            .split_once(':')
            .ok_or_else(|| EntryError::Bad("auth is not base64 of user:password".into()))?;
        return Ok(Credential {
            username: user.to_string(),
            secret: secret.to_string(),
            source,
        });
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Credential {
            username: u.clone(),
            secret: p.clone(),
            source,
        }),
        _ if entry.identitytoken.is_some() => Err(EntryError::Bad(
            "identity (OAuth refresh) tokens are not supported; log in with a password or token"
                .into(),
        )),
        _ => Err(EntryError::Empty),
    }
}

/// `https://host:5000/v1/` → `host:5000`; Docker Hub's aliases → `docker.io`.
fn normalize(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    let key = key
        .strip_suffix("/v1")
        .or_else(|| key.strip_suffix("/v2"))
        .unwrap_or(key);
    let (host, rest) = match key.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (key, None),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        h => h,
    };
    match rest {
        Some(r) => format!("{host}/{r}"),
        None => host.to_string(),
    }
}

/// How long a credential helper may take to answer: long enough for one
/// that asks a keychain, short enough that a hung one does not hang ingot.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// The most a credential helper may print, on stdout or stderr: one
/// credential is a few KiB.
pub const MAX_HELPER_OUTPUT: u64 = 1 << 20;

/// Runs `docker-credential-NAME get` with the server on stdin.
fn run_helper(name: &str, host: &str) -> Result<Option<Credential>, RegistryError> {
    // Docker Hub's credentials live under its historical URL.
    let server = if normalize(host) == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        host
    };
    let program = format!("docker-credential-{name}");
    run_helper_program(&program, server, HELPER_TIMEOUT)
}

/// Runs `program get` with `server` on stdin, reading at most
/// [`MAX_HELPER_OUTPUT`] of what it prints and waiting at most `timeout`
/// for it to finish; a helper still running then is killed.
fn run_helper_program(
    program: &str,
    server: &str,
    timeout: Duration,
) -> Result<Option<Credential>, RegistryError> {
    let failed = |message: String| RegistryError::Credentials {
        origin: program.to_string(),
        message,
    };
    let mut child = Command::new(program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            failed(if e.kind() == std::io::ErrorKind::NotFound {
                "not found on PATH".into()
            } else {
                format!("cannot run it: {e}")
            })
        })?;
    let deadline = Instant::now() + timeout;
    // Each pipe is read on its own thread, so a helper that fills one
    // while ingot waits on the other cannot stall either.
    let (sender, receiver) = mpsc::channel();
    for (index, pipe) in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .enumerate()
    {
        let sender = sender.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let read = match pipe {
                Some(p) => p.take(MAX_HELPER_OUTPUT + 1).read_to_end(&mut bytes),
                None => Ok(0),
            };
            let _ = sender.send((index, read.map(|_| bytes)));
        });
    }
    drop(sender);
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may exit without reading its stdin: its answer says more.
        match stdin.write_all(server.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!("writing to it: {e}")));
            }
            _ => {}
        }
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "`get` gave no answer within {} s",
                    timeout.as_secs_f64()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(failed(format!("waiting for it: {e}"))),
        }
    };
    let mut outputs = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        // A process the helper left behind may hold its pipes open.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let (index, read) = receiver
            .recv_timeout(left)
            .map_err(|_| failed("`get` exited, but its output stayed open".into()))?;
        let bytes = read.map_err(|e| failed(format!("reading its output: {e}")))?;
        if bytes.len() as u64 > MAX_HELPER_OUTPUT {
            return Err(failed(format!(
                "`get` printed more than {} MiB",
                MAX_HELPER_OUTPUT >> 20
            )));
        }
        outputs[index] = bytes;
    }
    parse_helper_output(program, status.success(), &outputs[0], &outputs[1])
}

fn parse_helper_output(
    program: &str,
    success: bool,
    stdout: &[u8],
    stderr: &[u8],
) -> Result<Option<Credential>, RegistryError> {
    let failed = |message: String| RegistryError::Credentials {
        origin: program.to_string(),
        message,
    };
    if !success {
        let said = String::from_utf8_lossy(if stdout.is_empty() { stderr } else { stdout });
        let said = said.trim();
        // The protocol's "not found" answer, on stdout.
        if said.contains("credentials not found") {
            return Ok(None);
        }
        return Err(failed(format!("get failed: {said}")));
    }
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: Answer = serde_json::from_slice(stdout)
        .map_err(|e| failed(format!("get printed no credentials JSON: {e}")))?;
    if answer.username == "<token>" {
        return Err(failed(
            "gave an identity (OAuth refresh) token, which ingot does not support".into(),
        ));
    }
    Ok(Some(Credential {
        username: answer.username,
        secret: answer.secret,
        source: program.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> AuthFile {
        serde_json::from_str(json).unwrap()
    }

    fn no_helper(_: &str, _: &str) -> Result<Option<Credential>, RegistryError> {
        panic!("no helper expected")
    }

    fn find(file: &AuthFile, host: &str, repo: &str) -> Option<(String, String)> {
        lookup_in(file, Path::new("auth.json"), host, repo, no_helper)
            .unwrap()
            .map(|c| (c.username, c.secret))
    }

    #[test]
    fn auths_base64_and_plain_fields() {
        let file = parse(
            r#"{"auths": {
                "127.0.0.1:5000": {"auth": "dXNlcjpwYTpzcw=="},
                "https://reg.example.com/v1/": {"username": "u", "password": "p"},
                "reg.example.com/team/app": {"auth": "dGVhbTpzZWNyZXQ="},
                "docker.io": {"auth": "aHViOmh1Yg=="},
                "empty.example.com": {}
            }, "proxies": {"ignored": true}}"#,
        );
        assert_eq!(
            find(&file, "127.0.0.1:5000", "x"),
            Some(("user".into(), "pa:ss".into()))
        );
        assert_eq!(
            find(&file, "reg.example.com", "other"),
            Some(("u".into(), "p".into()))
        );
        // The most specific key wins.
        assert_eq!(
            find(&file, "reg.example.com", "team/app"),
            Some(("team".into(), "secret".into()))
        );
        assert_eq!(
            find(&file, "index.docker.io", "library/x"),
            Some(("hub".into(), "hub".into()))
        );
        assert_eq!(find(&file, "127.0.0.1:5001", "x"), None);
        assert_eq!(find(&file, "empty.example.com", "x"), None);
    }

    #[test]
    fn helpers_come_first() {
        let file = parse(
            r#"{"auths": {"a.example.com": {"auth": "dTpw"}, "b.example.com": {"auth": "dTpw"}},
                "credHelpers": {"a.example.com": "special"},
                "credsStore": "desktop"}"#,
        );
        let helper = |name: &str, host: &str| -> Result<Option<Credential>, RegistryError> {
            Ok(match (name, host) {
                ("special", "a.example.com") => Some(Credential {
                    username: "from-special".into(),
                    secret: "s".into(),
                    source: name.into(),
                }),
                // The store knows nothing: auths is next.
                ("desktop", _) => None,
                other => panic!("unexpected helper call {other:?}"),
            })
        };
        let got = lookup_in(&file, Path::new("c"), "a.example.com", "r", helper)
            .unwrap()
            .unwrap();
        assert_eq!(got.username, "from-special");
        let got = lookup_in(&file, Path::new("c"), "b.example.com", "r", helper)
            .unwrap()
            .unwrap();
        assert_eq!((got.username.as_str(), got.secret.as_str()), ("u", "p"));
    }

    #[test]
    fn bad_entries_are_errors_naming_the_file() {
        let file = parse(r#"{"auths": {"h": {"auth": "!!!"}}}"#);
        let err = lookup_in(&file, Path::new("/x/auth.json"), "h", "r", no_helper).unwrap_err();
        assert!(err.to_string().contains("/x/auth.json"), "{err}");
        let file = parse(r#"{"auths": {"h": {"identitytoken": "t"}}}"#);
        assert!(lookup_in(&file, Path::new("a"), "h", "r", no_helper).is_err());
    }

    #[test]
    fn helper_protocol() {
        let ok = parse_helper_output(
            "docker-credential-x",
            true,
            br#"{"ServerURL":"h","Username":"u","Secret":"s"}"#,
            b"",
        )
        .unwrap()
        .unwrap();
        assert_eq!((ok.username.as_str(), ok.secret.as_str()), ("u", "s"));
        assert_eq!(
            parse_helper_output(
                "p",
                false,
                b"credentials not found in native keychain\n",
                b""
            )
            .unwrap(),
            None
        );
        assert!(parse_helper_output("p", false, b"", b"boom").is_err());
        assert!(parse_helper_output("p", true, b"nonsense", b"").is_err());
        assert!(
            parse_helper_output("p", true, br#"{"Username":"<token>","Secret":"t"}"#, b"").is_err()
        );
    }

    #[test]
    fn helpers_are_bounded_in_time_and_output() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path.display().to_string()
        };
        let slow = script("slow", "exec sleep 10\n");
        let started = Instant::now();
        let err = run_helper_program(&slow, "h", Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("no answer within 0.3 s"), "{err}");
        assert!(err.to_string().contains("slow"), "{err}");

        let chatty = script("chatty", "head -c 3000000 /dev/zero | tr '\\0' x\n");
        let err = run_helper_program(&chatty, "h", HELPER_TIMEOUT).unwrap_err();
        assert!(err.to_string().contains("more than 1 MiB"), "{err}");

        let good = script(
            "good",
            "read -r s; echo \"{\\\"Username\\\":\\\"u\\\",\\\"Secret\\\":\\\"$s\\\"}\"\n",
        );
        let got = run_helper_program(&good, "reg:5000", HELPER_TIMEOUT)
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.username.as_str(), got.secret.as_str()),
            ("u", "reg:5000")
        );
    }

    #[test]
    fn missing_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("config.json");
        std::fs::write(&good, r#"{"auths": {"h:1": {"auth": "dTpw"}}}"#).unwrap();
        let sources = CredentialSources {
            files: vec![dir.path().join("nope.json"), good],
        };
        let got = lookup(&sources, "h:1", "r").unwrap().unwrap();
        assert_eq!(got.username, "u");
        assert!(got.source.contains("config.json"));
        std::fs::write(dir.path().join("bad.json"), "{").unwrap();
        let sources = CredentialSources {
            files: vec![dir.path().join("bad.json")],
        };
        assert!(lookup(&sources, "h:1", "r").is_err());
    }
}
