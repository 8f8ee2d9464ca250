//! Registries that misbehave on the network (issue 14): one that accepts
//! and never answers, one whose manifest never ends, one that fails for a
//! while, one that stalls in the middle of a blob, and token and error
//! bodies without end. Each is a server in the test on 127.0.0.1
//! (tests/common/hostile.rs), serving a real image built by ingot where it
//! behaves. Every run must end within its limits, say in one line which
//! host and request and which limit, exit 1 (not die by a signal), and
//! leave nothing behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::hostile::{Hostile, Layout, Reply};
use common::{ingot, require, stderr, stdout};

/// Small limits, so that a hang shows in seconds.
const QUICK: [&str; 4] = ["--timeout", "2", "--connect-timeout", "2"];
/// Past this a command is taken to hang: killed, and the test fails.
const HARD: Duration = Duration::from_secs(60);
/// What a command with QUICK limits must fail within.
const PROMPT: Duration = Duration::from_secs(15);

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for d in ["home", "run", "tmp"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        Fixture { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// ingot with this fixture's home, no credentials, and its own TMPDIR
    /// so that a temp file left behind shows.
    fn ingot(&self) -> Command {
        let mut cmd = ingot();
        self.env(&mut cmd);
        cmd
    }

    fn env(&self, cmd: &mut Command) {
        cmd.env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("TMPDIR", self.path("tmp"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG");
    }

    /// recipes/hello built into `DIR/hello`.
    fn image(&self) -> (PathBuf, String) {
        let layout = self.path("hello");
        let digest = common::build(&common::example("hello"), &layout);
        (layout, digest)
    }

    /// A recipe on `base`, in `DIR/app`.
    fn recipe(&self, base: &str) -> PathBuf {
        let d = self.path("app");
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("recipe.yaml");
        std::fs::write(
            &path,
            format!(
                "name: app\nversion: '1'\nbase: {base}\nlayers:\n  - name: l\n    steps:\n      - file: {{ dest: /etc/app, content: app }}\n"
            ),
        )
        .unwrap();
        path
    }

    /// Nothing left in TMPDIR, and no staging directory beside outputs.
    fn nothing_left(&self, out: &Path) {
        assert!(!out.exists(), "{} was written", out.display());
        let tmp: Vec<_> = std::fs::read_dir(self.path("tmp")).unwrap().collect();
        assert!(tmp.is_empty(), "left in TMPDIR: {tmp:?}");
        let parent = out.parent().unwrap();
        for entry in std::fs::read_dir(parent).unwrap() {
            let name = entry.unwrap().file_name();
            assert!(
                !name.to_string_lossy().starts_with(".ingot-"),
                "left in {}: {name:?}",
                parent.display()
            );
        }
    }
}

/// Runs `cmd`; kills it and fails the test if it is not done within
/// [`HARD`]. Its output, and how long it took.
fn run_within(cmd: &mut Command) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting ingot");
    loop {
        if child.try_wait().unwrap().is_some() {
            let took = started.elapsed();
            return (child.wait_with_output().unwrap(), took);
        }
        if started.elapsed() > HARD {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} still running after {HARD:?}; stderr: {}",
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Exit 1 (not a signal), nothing on stdout, one error line with each of
/// `needles`; the line.
fn fails_with(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "status {:?}: {err}", out.status);
    assert!(stdout(out).is_empty(), "stdout: {}", stdout(out));
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "not one error line: {err}");
    for n in needles {
        assert!(errors[0].contains(n), "{n:?} not in {:?}", errors[0]);
    }
    errors[0].to_string()
}

fn json_error(code: &str) -> Vec<u8> {
    format!(r#"{{"errors":[{{"code":"{code}","message":"as the test says"}}]}}"#).into_bytes()
}

#[test]
/// A registry that accepts the connection and never answers: pull and a
/// build on it fail after the stall limit, naming the host, the request
/// and the limit, and leave nothing.
fn a_registry_that_never_answers_fails_within_the_limit() {
    let f = Fixture::new();
    let server = Hostile::start(|_| Reply::Silent);
    let out_dir = f.path("pulled");
    let (out, took) = run_within(
        f.ingot()
            .args(["pull", &server.reference("x:t"), "-o"])
            .arg(&out_dir)
            .args(QUICK),
    );
    let line = fails_with(
        &out,
        &[
            &format!("registry {}", server.host()),
            "no answer to GET /v2/",
            "within 2s",
            "--timeout",
        ],
    );
    assert!(took < PROMPT, "{took:?}: {line}");
    // A timeout is not retried: one request.
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
    f.nothing_left(&out_dir);

    // A build on that base: the same, with --timeout alone (the wait for
    // an answer is not stretched to the default connect limit).
    let recipe = f.recipe(&server.reference("x:t"));
    let built = f.path("built");
    let (out, took) = run_within(
        f.ingot()
            .args(["build", "-q"])
            .arg(&recipe)
            .arg("-o")
            .arg(&built)
            .args(["--timeout", "2"]),
    );
    let line = fails_with(
        &out,
        &[&server.host(), "no answer", "within 2s", "--timeout"],
    );
    assert!(took < PROMPT, "{took:?}: {line}");
    f.nothing_left(&built);
}

#[test]
/// A manifest without end (chunked, no Content-Length) is refused once
/// 4 MiB have arrived, in bounded memory: under a 512 MiB address-space
/// limit ingot exits 1 with one line, rather than being killed. One that
/// claims more than 4 MiB is refused before its body.
fn an_endless_manifest_is_refused_at_4_mib_in_bounded_memory() {
    require("prlimit");
    let f = Fixture::new();
    let server = Hostile::start(|r| match r.path() {
        "/v2/" => Reply::ok("application/json", b"{}".to_vec()),
        "/v2/x/manifests/claims" => Reply::Partial {
            length: 1 << 30,
            body: Vec::new(),
        },
        _ => Reply::Endless {
            status: 200,
            headers: vec!["Content-Type: application/vnd.oci.image.manifest.v1+json".into()],
        },
    });
    for tag in ["t", "claims"] {
        let out_dir = f.path(&format!("pulled-{tag}"));
        let mut cmd = Command::new("prlimit");
        cmd.args(["--as=536870912", "--"])
            .arg(env!("CARGO_BIN_EXE_ingot"))
            .env_remove("SOURCE_DATE_EPOCH")
            .env("XDG_CACHE_HOME", f.path("cache"));
        f.env(&mut cmd);
        cmd.args(["pull", &server.reference(&format!("x:{tag}")), "-o"])
            .arg(&out_dir)
            .args(QUICK);
        let (out, took) = run_within(&mut cmd);
        let line = fails_with(
            &out,
            &[
                &format!("registry {}", server.host()),
                &format!("GET /v2/x/manifests/{tag}"),
                "more than 4 MiB, the most a manifest may have",
            ],
        );
        assert!(took < PROMPT, "{took:?}: {line}");
        f.nothing_left(&out_dir);
    }
}

#[test]
/// 503 and 502 are tried again (after the Retry-After asked for, then
/// the backoff) and the pull succeeds; a 404 is not tried again, nor a 429
/// that asks for a longer wait than ingot gives.
fn transient_failures_are_retried_and_others_are_not() {
    let f = Fixture::new();
    let (layout, digest) = f.image();
    let image = Arc::new(Layout::open(&layout));
    let served = Arc::clone(&image);
    let server = Hostile::start(move |r| match (r.path(), r.seen) {
        ("/v2/x/manifests/t", 0) => Reply::Full {
            status: 503,
            headers: vec!["Retry-After: 1".into()],
            body: b"busy".to_vec(),
        },
        ("/v2/x/manifests/t", 1) => Reply::status(502),
        ("/v2/x/manifests/gone", _) => Reply::Full {
            status: 404,
            headers: vec!["Content-Type: application/json".into()],
            body: json_error("MANIFEST_UNKNOWN"),
        },
        ("/v2/x/manifests/later", _) => Reply::Full {
            status: 429,
            headers: vec!["Retry-After: 120".into()],
            body: json_error("TOOMANYREQUESTS"),
        },
        _ => served.reply(r),
    });

    let pulled = f.path("pulled");
    let (out, took) = run_within(
        f.ingot()
            .args(["pull", &server.reference("x:t"), "-o"])
            .arg(&pulled)
            .args(QUICK),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), digest);
    assert_eq!(server.count("GET", "/v2/x/manifests/t"), 3);
    let err = stderr(&out);
    assert!(
        err.contains("GET /v2/x/manifests/t: HTTP 503; trying again in 1s (2 of 4)"),
        "{err}"
    );
    assert!(
        err.contains("HTTP 502; trying again in 1s (3 of 4)"),
        "{err}"
    );
    assert!(took >= Duration::from_secs(2), "{took:?}");
    let o = common::run(
        ingot()
            .arg("verify")
            .arg(format!("oci:{}:t", pulled.display())),
    );
    assert!(o.status.success(), "{}", stdout(&o));

    let gone = f.path("gone");
    let (out, _) = run_within(
        f.ingot()
            .args(["pull", &server.reference("x:gone"), "-o"])
            .arg(&gone),
    );
    // A 404 is an answer, not tried again; a reference naming nothing is
    // the user's mistake (exit 2), as a missing layout is.
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("manifest") && err.contains("x:gone") && err.contains("not found"),
        "{err}"
    );
    assert_eq!(server.count("GET", "/v2/x/manifests/gone"), 1);
    f.nothing_left(&gone);

    let later = f.path("later");
    let (out, took) = run_within(
        f.ingot()
            .args(["pull", &server.reference("x:later"), "-o"])
            .arg(&later),
    );
    fails_with(
        &out,
        &["HTTP 429", "TOOMANYREQUESTS", "retry after 2m", "30s"],
    );
    assert_eq!(server.count("GET", "/v2/x/manifests/later"), 1);
    assert!(took < PROMPT, "{took:?}");
    f.nothing_left(&later);
}

#[test]
/// A layer that stops arriving halfway: the pull fails after the stall
/// limit naming the blob's request and the limit, and leaves no layout,
/// staging directory or temp file.
fn a_blob_that_stalls_midway_fails_naming_the_stall_limit() {
    let f = Fixture::new();
    let (layout, _) = f.image();
    let image = Arc::new(Layout::open(&layout));
    let layer = image.blobs()[1].clone();
    let served = Arc::clone(&image);
    let stalled = layer.clone();
    let server = Hostile::start(move |r| {
        if r.path().ends_with(&stalled) {
            let blob = served.blob(&stalled).unwrap();
            Reply::Partial {
                length: blob.len() as u64,
                body: blob[..blob.len() / 2].to_vec(),
            }
        } else {
            served.reply(r)
        }
    });
    let out_dir = f.path("pulled");
    let (out, took) = run_within(
        f.ingot()
            .args(["pull", &server.reference("x:t"), "-o"])
            .arg(&out_dir)
            .args(QUICK),
    );
    let line = fails_with(
        &out,
        &[
            &format!("registry {}", server.host()),
            &format!("GET /v2/x/blobs/{layer} stalled"),
            "nothing moved for 2s",
            "--timeout",
        ],
    );
    assert!(took < PROMPT, "{took:?}: {line}");
    f.nothing_left(&out_dir);

    // A build on that base: the same, and no partial blob in the cache.
    let recipe = f.recipe(&server.reference("x:t"));
    let (cache, built) = (f.path("cache"), f.path("built"));
    let (out, took) = run_within(
        f.ingot()
            .args(["build", "-q", "--cache"])
            .arg(&cache)
            .arg(&recipe)
            .arg("-o")
            .arg(&built)
            .args(QUICK),
    );
    let line = fails_with(&out, &[&format!("GET /v2/x/blobs/{layer} stalled")]);
    assert!(took < PROMPT, "{took:?}: {line}");
    f.nothing_left(&built);
    for entry in walkdir::WalkDir::new(&cache) {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy();
        assert!(
            !name.starts_with(".tmp"),
            "left in the cache: {}",
            entry.path().display()
        );
        assert!(
            !name.ends_with(&layer[7..]),
            "a partial layer landed: {}",
            entry.path().display()
        );
    }
}

#[test]
/// A registry that takes a blob upload and never answers it: the push
/// fails after the stall limit, naming the upload request.
fn an_upload_without_an_answer_fails_naming_the_stall_limit() {
    let f = Fixture::new();
    let (layout, _) = f.image();
    let server = Hostile::start(|r| match (r.method.as_str(), r.path()) {
        (_, "/v2/") => Reply::ok("application/json", b"{}".to_vec()),
        ("HEAD", _) => Reply::status(404),
        ("POST", "/v2/x/blobs/uploads/") => Reply::Full {
            status: 202,
            headers: vec!["Location: /v2/x/blobs/uploads/u1?_state=secret".into()],
            body: Vec::new(),
        },
        _ => Reply::Silent,
    });
    let (out, took) = run_within(
        f.ingot()
            .arg("push")
            .arg(format!("oci:{}:1.2.0", layout.display()))
            .arg(server.reference("x"))
            .args(QUICK),
    );
    let line = fails_with(
        &out,
        &[
            &format!("registry {}", server.host()),
            "PUT /v2/x/blobs/uploads/u1",
            "--timeout",
        ],
    );
    assert!(!line.contains("secret"), "the upload state shows: {line}");
    assert!(took < PROMPT, "{took:?}: {line}");
    // Not tried again: its body was read as it was sent.
    assert_eq!(server.count("PUT", "/v2/x/blobs/uploads/u1"), 1);
}

#[test]
/// A token server whose answer never ends, and an error whose body never
/// ends: each read within its bound (1 MiB; a few KiB shown as a short,
/// clean excerpt), each failing promptly in one line.
fn token_and_error_bodies_are_bounded() {
    let f = Fixture::new();
    let tokens = Hostile::start(|_| Reply::Endless {
        status: 200,
        headers: vec!["Content-Type: application/json".into()],
    });
    let realm = format!("http://{}/token", tokens.host());
    let registry = Hostile::start(move |r| match r.path() {
        "/v2/" => Reply::Full {
            status: 401,
            headers: vec![format!(
                "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"test\""
            )],
            body: Vec::new(),
        },
        _ => Reply::status(401),
    });
    let out_dir = f.path("pulled");
    let (out, took) = run_within(
        f.ingot()
            .args(["pull", &registry.reference("x:t"), "-o"])
            .arg(&out_dir)
            .args(QUICK),
    );
    let line = fails_with(
        &out,
        &[
            &format!("GET http://{}/token", tokens.host()),
            "more than 1 MiB, the most a token response may have",
        ],
    );
    assert!(took < PROMPT, "{took:?}: {line}");
    let asked = &tokens.requests()[0].target;
    assert!(
        asked.contains("scope=repository%3Ax%3Apull") && asked.contains("service=test"),
        "{asked}"
    );

    let broken = Hostile::start(|r| match r.path() {
        "/v2/" => Reply::ok("application/json", b"{}".to_vec()),
        _ => Reply::Endless {
            status: 500,
            headers: Vec::new(),
        },
    });
    let (out, took) = run_within(
        f.ingot()
            .args(["pull", &broken.reference("x:t"), "-o"])
            .arg(&out_dir)
            .args(QUICK),
    );
    let line = fails_with(&out, &["GET /v2/x/manifests/t", "HTTP 500", "xxxx…"]);
    assert!(line.len() < 400, "{line}");
    assert!(took < PROMPT, "{took:?}: {line}");
    // 500 is not among the statuses tried again.
    assert_eq!(broken.count("GET", "/v2/x/manifests/t"), 1);
    f.nothing_left(&out_dir);
}
