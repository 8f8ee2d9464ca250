//! `ingot push` and `ingot pull` against a registry with token auth, the
//! scheme Docker Hub, GHCR and most hosted registries use: Debian's
//! docker-registry sends clients to a token server, here a small one in
//! the test that checks HTTP Basic credentials and issues RS256 JWTs signed
//! (by the `openssl` CLI) with a key whose self-signed certificate the
//! registry trusts.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;

use common::registry::{Registry, TokenAuth, http_get};
use common::{build, ingot, repo, require, run, stderr, stdout};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret";
const SERVICE: &str = "test-registry";
const ISSUER: &str = "test-issuer";

/// A token server: `GET /token?service=…&scope=repository:NAME:ACTIONS`
/// with `USER`/`PASSWORD` as HTTP Basic gets a JWT granting ACTIONS on
/// NAME; anything else gets a 401 (anonymous too: nothing is public).
struct TokenServer {
    port: u16,
    /// Tokens issued.
    granted: Arc<AtomicUsize>,
    /// Requests refused for their credentials (or their absence).
    refused: Arc<AtomicUsize>,
    /// The scopes of the tokens issued, in order.
    scopes: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

/// The signing key and the certificate the registry checks tokens with.
struct Signer {
    key: PathBuf,
    /// The certificate, DER, base64: the JWT header's `x5c`.
    x5c: String,
    next_id: AtomicUsize,
}

impl TokenServer {
    fn start(signer: Signer) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut server = TokenServer {
            port,
            granted: Arc::default(),
            refused: Arc::default(),
            scopes: Arc::default(),
            stop: Arc::default(),
            thread: None,
        };
        let signer = Arc::new(signer);
        let (granted, refused, scopes, stop) = (
            Arc::clone(&server.granted),
            Arc::clone(&server.refused),
            Arc::clone(&server.scopes),
            Arc::clone(&server.stop),
        );
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (signer, granted, refused, scopes) = (
                    Arc::clone(&signer),
                    Arc::clone(&granted),
                    Arc::clone(&refused),
                    Arc::clone(&scopes),
                );
                thread::spawn(move || {
                    let _ = serve(conn, &signer, &granted, &refused, &scopes);
                });
            }
        });
        server.thread = Some(thread);
        server
    }

    fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    fn granted(&self) -> usize {
        self.granted.load(Ordering::SeqCst)
    }

    fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    fn scopes(&self) -> Vec<String> {
        self.scopes.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answers one request, then closes the connection.
fn serve(
    mut conn: TcpStream,
    signer: &Signer,
    granted: &AtomicUsize,
    refused: &AtomicUsize,
    scopes: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let (method, target) = (
        request_line.next().unwrap_or(""),
        request_line.next().unwrap_or(""),
    );
    let authorization = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("authorization")
            .then(|| v.trim().to_string())
    });
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params: Vec<(String, String)> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    let (status, body) = if method != "GET" || path != "/token" {
        ("404 Not Found", json!({"details": "no such endpoint"}))
    } else if param("service") != Some(SERVICE) {
        ("400 Bad Request", json!({"details": "unknown service"}))
    } else if authorization.as_deref()
        != Some(&format!(
            "Basic {}",
            STANDARD.encode(format!("{USER}:{PASSWORD}"))
        ))
    {
        refused.fetch_add(1, Ordering::SeqCst);
        (
            "401 Unauthorized",
            json!({"details": "invalid credentials"}),
        )
    } else {
        let scope = param("scope").unwrap_or("");
        // repository:NAME:ACTION[,ACTION…]
        let access = match scope.split_once(':').and_then(|(kind, rest)| {
            let (name, actions) = rest.rsplit_once(':')?;
            Some((kind, name, actions))
        }) {
            Some((kind, name, actions)) => json!([{
                "type": kind,
                "name": name,
                "actions": actions.split(',').collect::<Vec<_>>(),
            }]),
            None => json!([]),
        };
        let token = signer.token(access);
        granted.fetch_add(1, Ordering::SeqCst);
        scopes.lock().unwrap().push(scope.to_string());
        (
            "200 OK",
            json!({"token": token, "access_token": token, "expires_in": 300}),
        )
    };
    let body = body.to_string();
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("401") {
        response.push_str("WWW-Authenticate: Basic realm=\"test-token-server\"\r\n");
    }
    response.push_str("\r\n");
    response.push_str(&body);
    conn.write_all(response.as_bytes())?;
    let _ = conn.shutdown(Shutdown::Both);
    Ok(())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Signer {
    /// A fresh RSA key and its self-signed certificate for `ISSUER`, in
    /// `dir`: returns the signer and the certificate's path (PEM).
    fn generate(dir: &Path) -> (Signer, PathBuf) {
        require("openssl");
        let key = dir.join("key.pem");
        let cert = dir.join("cert.pem");
        let out = run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-days", "1", "-subj", &format!("/CN={ISSUER}")]));
        assert!(out.status.success(), "openssl req: {}", stderr(&out));
        let der = run(Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert));
        assert!(der.status.success(), "openssl x509: {}", stderr(&der));
        let signer = Signer {
            key,
            x5c: STANDARD.encode(&der.stdout),
            next_id: AtomicUsize::new(0),
        };
        (signer, cert)
    }

    /// A JWT for `USER` granting `access`, valid for five minutes.
    /// (Tests may read the clock.)
    #[allow(clippy::disallowed_methods)]
    fn token(&self, access: serde_json::Value) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({"alg": "RS256", "typ": "JWT", "x5c": [self.x5c]});
        let claims = json!({
            "iss": ISSUER,
            "sub": USER,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": format!("token-{}", self.next_id.fetch_add(1, Ordering::SeqCst)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut openssl = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running openssl dgst");
        openssl
            .stdin
            .take()
            .unwrap()
            .write_all(signing_input.as_bytes())
            .unwrap();
        let out = openssl.wait_with_output().unwrap();
        assert!(out.status.success(), "openssl dgst: {}", stderr(&out));
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&out.stdout))
    }
}

/// Exit 1 with one clear error line containing each of `needles`.
fn fails_with(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(stdout(out).is_empty(), "stdout: {}", stdout(out));
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "not one error line: {err}");
    for n in needles {
        assert!(errors[0].contains(n), "{n:?} not in {:?}", errors[0]);
    }
    errors[0].to_string()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\nstdout: {}",
        stderr(out),
        stdout(out)
    );
    stdout(out)
}

#[test]
/// Token auth: no credentials and a wrong password fail with one line and
/// exit 1; the right ones from REGISTRY_AUTH_FILE get tokens from the
/// token server, and the image is pushed and pulled back.
fn push_and_pull_with_bearer_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let layout = path("hello");
    let digest = build(&repo().join("recipes/hello/recipe.yaml"), &layout);
    let oci = format!("oci:{}", layout.display());
    for d in ["home", "run"] {
        std::fs::create_dir(path(d)).unwrap();
    }

    let (signer, cert) = Signer::generate(dir.path());
    let tokens = TokenServer::start(signer);
    let realm = tokens.realm();
    let registry = Registry::with_token_auth(&TokenAuth {
        realm: &realm,
        service: SERVICE,
        issuer: ISSUER,
        rootcertbundle: &cert,
    });
    let to = registry.reference("hello");

    // ingot with credentials only where the test puts them.
    let ingot_with = |auth_file: Option<&Path>| {
        let mut cmd = ingot();
        cmd.env("HOME", path("home"))
            .env("XDG_RUNTIME_DIR", path("run"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG");
        if let Some(file) = auth_file {
            cmd.env("REGISTRY_AUTH_FILE", file);
        }
        cmd
    };
    let auth_file = |name: &str, password: &str| {
        let file = path(name);
        let encoded = STANDARD.encode(format!("{USER}:{password}"));
        std::fs::write(
            &file,
            json!({"auths": {registry.host(): {"auth": encoded}}}).to_string(),
        )
        .unwrap();
        file
    };

    // No credentials.
    let out = run(ingot_with(None).arg("push").arg(&oci).arg(&to));
    fails_with(
        &out,
        &[&registry.host(), "authentication failed", "none were found"],
    );
    assert_eq!(tokens.granted(), 0);

    // A wrong password: the token server refuses it.
    let wrong = auth_file("wrong.json", "guess");
    let refused = tokens.refused();
    let out = run(ingot_with(Some(&wrong)).arg("push").arg(&oci).arg(&to));
    fails_with(
        &out,
        &[
            &registry.host(),
            "authentication failed",
            &format!("{USER:?}"),
            "wrong.json",
        ],
    );
    assert_eq!(tokens.granted(), 0);
    assert!(tokens.refused() > refused, "the token server was not asked");

    // The right password: tokens, and the push goes through.
    let good = auth_file("good.json", PASSWORD);
    let out = run(ingot_with(Some(&good)).arg("push").arg(&oci).arg(&to));
    assert_eq!(ok(&out).trim(), digest, "stdout is the digest alone");
    assert!(tokens.granted() >= 1, "no token was issued");
    assert!(
        tokens
            .scopes()
            .iter()
            .any(|s| s == "repository:hello:pull,push"),
        "no push token: {:?}",
        tokens.scopes()
    );
    let manifest_puts = registry
        .requests_since(0)
        .into_iter()
        .filter(|r| r.starts_with("PUT /v2/hello/manifests/"))
        .count();
    assert!(manifest_puts >= 1, "{}", registry.log());

    // The registry checks the tokens' signatures: one from the token
    // server lists the tags, the same with its claims changed does not.
    let basic = format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")));
    let (status, _, body) = http_get(
        tokens.port,
        &format!("/token?service={SERVICE}&scope=repository%3Ahello%3Apull"),
        &[("Authorization", &basic)],
    )
    .expect("the token server answers");
    assert_eq!(status, 200);
    let token: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let token = token["token"].as_str().unwrap();
    let tags = |token: &str| {
        http_get(
            registry.port,
            "/v2/hello/tags/list",
            &[("Authorization", &format!("Bearer {token}"))],
        )
        .expect("the registry answers")
        .0
    };
    assert_eq!(tags(token), 200);
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = json!("mallory");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    assert_eq!(tags(&forged), 401);

    // A pull with the credentials gives the same image back.
    let granted = tokens.granted();
    let pulled = path("pulled");
    let out = run(ingot_with(Some(&good))
        .args(["pull", &format!("{to}:1.2.0"), "-o"])
        .arg(&pulled));
    assert_eq!(ok(&out).trim(), digest);
    assert!(tokens.granted() > granted, "the pull used no token");
    ok(&run(ingot()
        .arg("verify")
        .arg(format!("oci:{}:1.2.0", pulled.display()))));

    // And without them the pull is refused, and writes nothing.
    let refused_pull = path("refused");
    let out = run(ingot_with(None)
        .args(["pull", &format!("{to}:1.2.0"), "-o"])
        .arg(&refused_pull));
    fails_with(&out, &[&registry.host(), "authentication failed"]);
    assert!(!refused_pull.exists());
}
