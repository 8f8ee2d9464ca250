//! The commands that read an image (inspect, audit, export, bind) on every
//! transport: a `docker://` image read straight from a registry (Debian's
//! docker-registry on 127.0.0.1, started per test as in tests/registry.rs)
//! and a `docker-archive:` made by `ingot export`, each checked against
//! the same image read from its layout. Also: a registry serving corrupt
//! blobs, credentials, and the usage errors of transports a command does
//! not read. Every run's temp store must be gone afterwards.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use common::registry::{CorruptingProxy, Registry, free_port};
use common::{build, ingot, require, run, stderr, stdout};

/// recipes/hello built into `DIR/hello`, in a temp dir that is also the
/// commands' home and TMPDIR, so no credentials of the machine's leak in
/// and every temp file a command makes can be seen.
struct Fixture {
    dir: tempfile::TempDir,
    layout: PathBuf,
    digest: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("hello");
        let digest = build(&common::example("hello"), &layout);
        for d in ["home", "run", "tmp"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        Fixture {
            dir,
            layout,
            digest,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn oci(&self) -> String {
        format!("oci:{}:1.2.0", self.layout.display())
    }

    fn ingot(&self) -> Command {
        let mut cmd = ingot();
        cmd.env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env("TMPDIR", self.path("tmp"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG");
        cmd
    }

    /// `ingot ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = run(self.ingot().args(args));
        assert!(
            out.status.success(),
            "ingot {args:?}: {}\nstdout: {}",
            stderr(&out),
            stdout(&out)
        );
        stdout(&out)
    }

    fn json(&self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    /// The image pushed to `registry` as team/hello:1.2.0; its reference.
    fn push(&self, registry: &Registry) -> String {
        let to = registry.reference("team/hello");
        let pushed = self.ok(&["push", &self.oci(), &to]);
        assert_eq!(pushed.trim(), self.digest);
        format!("{to}:1.2.0")
    }

    /// The image exported to `DIR/hello.tar`; its reference.
    fn archive(&self) -> String {
        let file = self.path("hello.tar");
        self.ok(&[
            "export",
            &self.oci(),
            "--format",
            "docker-archive",
            "-o",
            &file.display().to_string(),
        ]);
        format!("docker-archive:{}", file.display())
    }

    /// The image's manifest and config, as the layout holds them.
    fn manifest(&self) -> Value {
        common::read_json(&common::blob_path(&self.layout, &self.digest))
    }

    fn config(&self) -> Value {
        let manifest = self.manifest();
        let digest = manifest["config"]["digest"].as_str().unwrap();
        common::read_json(&common::blob_path(&self.layout, digest))
    }

    fn config_digest(&self) -> String {
        self.manifest()["config"]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Nothing left in the commands' TMPDIR.
    fn no_temp_left(&self) {
        let left: Vec<_> = std::fs::read_dir(self.path("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "left in TMPDIR: {left:?}");
    }
}

/// Exit `code` with one error line, containing each of `needles`, and
/// nothing on stdout.
fn fails_with(out: &Output, code: i32, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(stdout(out).is_empty(), "stdout: {}", stdout(out));
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in {:?}", lines[0]);
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

// ---------------------------------------------------------------------------
// inspect

#[test]
/// A registry image inspects as its layout does: the same manifest digest,
/// manifest, config and params, named by the reference given.
fn inspect_reads_a_registry_image() {
    let f = Fixture::new();
    let registry = Registry::start();
    let image = f.push(&registry);
    let local = f.json(&["inspect", "--json", &f.oci()]);
    let remote = f.json(&["inspect", "--json", &image]);
    assert_eq!(remote["reference"], image.as_str());
    assert_eq!(remote["digest"], f.digest.as_str());
    assert_eq!(remote["digest_of"], "manifest");
    assert_eq!(local["digest_of"], "manifest");
    for field in ["manifest", "config", "params"] {
        assert_eq!(remote[field], local[field], "{field}");
    }
    // By digest too, with no tag.
    let by_digest = format!("{}@{}", registry.reference("team/hello"), f.digest);
    assert_eq!(
        f.json(&["inspect", "--json", &by_digest])["digest"],
        f.digest.as_str()
    );
    f.no_temp_left();
}

#[test]
/// A docker-archive has no manifest: it is named by its config digest and
/// says so, and its config and params are the layout's.
fn inspect_reads_a_docker_archive() {
    let f = Fixture::new();
    let archive = f.archive();
    let inspected = f.json(&["inspect", "--json", &archive]);
    assert_eq!(inspected["reference"], archive.as_str());
    assert_eq!(inspected["digest"], f.config_digest().as_str());
    assert_eq!(inspected["digest_of"], "config");
    assert!(inspected.get("manifest").is_none(), "{inspected}");
    assert_eq!(inspected["config"], f.config());
    let local = f.json(&["inspect", "--json", &f.oci()]);
    assert_eq!(inspected["params"], local["params"]);

    let text = f.ok(&["inspect", &archive]);
    assert!(
        text.contains(&format!(
            "digest    {} (of the config: no manifest)",
            f.config_digest()
        )),
        "{text}"
    );
    for diff_id in f.config()["rootfs"]["diff_ids"].as_array().unwrap() {
        assert!(text.contains(diff_id.as_str().unwrap()), "{text}");
    }
    f.no_temp_left();
}

// ---------------------------------------------------------------------------
// audit

/// A setuid file the recipe allows: sealed where the image carries its
/// exceptions (in the manifest's annotations), not sealed where it cannot.
fn build_ping(f: &Fixture) -> (PathBuf, String) {
    let dir = f.path("ping");
    std::fs::create_dir(&dir).unwrap();
    let recipe = dir.join("recipe.yaml");
    std::fs::write(
        &recipe,
        "name: ping\nversion: '1'\nbase: scratch\n\
         layers:\n  - name: tools\n    steps:\n      \
         - file: { dest: /usr/bin/ping, content: ELF, mode: \"4755\" }\n\
         seal:\n  allow:\n    - { rule: setuid, path: /usr/bin/ping, reason: raw sockets }\n",
    )
    .unwrap();
    let layout = f.path("ping-image");
    let digest = build(&recipe, &layout);
    (layout, digest)
}

#[test]
/// A registry image is audited straight from the registry: the exception
/// its manifest records is honoured once the auditor accepts it, the
/// report names the image and its digest, and layers are named by the
/// registry's blob digests.
fn audit_reads_a_registry_image() {
    let f = Fixture::new();
    let (layout, digest) = build_ping(&f);
    let registry = Registry::start();
    let image = format!("{}:1", registry.reference("ping"));
    f.ok(&["push", &format!("oci:{}:1", layout.display()), &image]);

    let local = f.json(&[
        "audit",
        "--json",
        "--accept-declared",
        &format!("oci:{}:1", layout.display()),
    ]);
    let remote = f.json(&["audit", "--json", "--accept-declared", &image]);
    assert_eq!(remote["image"], image.as_str());
    assert_eq!(remote["digest"], digest.as_str());
    assert_eq!(remote["digest_of"], "manifest");
    assert_eq!(remote["violations"], json!([]));
    assert_eq!(remote["allowed"], local["allowed"]);
    assert_eq!(remote["allowed"][0][1], "raw sockets");
    let text = f.ok(&["audit", "--accept-declared", &image]);
    assert!(text.contains("sealed: policy"), "{text}");
    f.no_temp_left();
}

#[test]
/// A docker-archive carries no manifest, so no recorded exception: the
/// same image is not sealed (exit 1), its finding naming the layer by the
/// diff_id the archive holds, the report naming the image by its config.
fn audit_reads_a_docker_archive() {
    let f = Fixture::new();
    let (layout, digest) = build_ping(&f);
    let file = f.path("ping.tar");
    f.ok(&[
        "export",
        &format!("oci:{}:1", layout.display()),
        "--format",
        "docker-archive",
        "-o",
        &path_str(&file),
    ]);
    let archive = format!("docker-archive:{}", file.display());
    let out = run(f.ingot().args(["audit", "--json", &archive]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["image"], archive.as_str());
    assert_eq!(report["digest_of"], "config");
    let manifest = common::read_json(&common::blob_path(&layout, &digest));
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    assert_eq!(report["digest"], config_digest);
    let config = common::read_json(&common::blob_path(&layout, config_digest));
    let diff_id = &config["rootfs"]["diff_ids"][0];
    let violations = report["violations"].as_array().unwrap();
    assert_eq!(violations.len(), 1, "{report}");
    assert_eq!(violations[0]["rule"], "setuid");
    assert_eq!(violations[0]["path"], "/usr/bin/ping");
    assert_eq!(violations[0]["layer"]["digest"], *diff_id);
    assert!(stderr(&out).contains("is not sealed"), "{}", stderr(&out));
    f.no_temp_left();
}

// ---------------------------------------------------------------------------
// export

#[test]
/// Exported from the registry, the archive is byte for byte the one the
/// layout exports (tagged by title and the reference's tag), and skopeo
/// reads it.
fn export_reads_a_registry_image() {
    require("skopeo");
    let f = Fixture::new();
    let registry = Registry::start();
    let image = f.push(&registry);
    let export = |image: &str, file: &str| {
        let file = f.path(file);
        let args = [
            "export",
            image,
            "--format",
            "docker-archive",
            "--json",
            "-o",
            &path_str(&file),
        ];
        (f.json(&args), file)
    };
    let (local, _) = export(&f.oci(), "local.tar");
    let (remote, file) = export(&image, "remote.tar");
    assert_eq!(remote["sha256"], local["sha256"]);
    assert_eq!(remote["repo_tags"], json!(["hello:1.2.0"]));

    let out = run(Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("docker-archive:{}", file.display())));
    assert!(out.status.success(), "skopeo: {}", stderr(&out));
    let config: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(config["rootfs"], f.config()["rootfs"]);
    f.no_temp_left();
}

#[test]
/// A docker-archive exported again, with the tag it had, comes back byte
/// for byte: its config bytes and its layers' tars are kept.
fn export_reads_a_docker_archive() {
    let f = Fixture::new();
    let archive = f.archive();
    let again = f.path("again.tar");
    let report = f.json(&[
        "export",
        &archive,
        "--format",
        "docker-archive",
        "--tag",
        "hello:1.2.0",
        "--json",
        "-o",
        &path_str(&again),
    ]);
    assert_eq!(
        std::fs::read(&again).unwrap(),
        std::fs::read(f.path("hello.tar")).unwrap()
    );
    assert_eq!(report["repo_tags"], json!(["hello:1.2.0"]));
    // Without --tag: an archive has no title or tag of its own to go by.
    let untagged = f.json(&[
        "export",
        &archive,
        "--format",
        "docker-archive",
        "--json",
        "-o",
        &path_str(&f.path("untagged.tar")),
    ]);
    assert_eq!(untagged["repo_tags"], json!([]));
    f.no_temp_left();
}

// ---------------------------------------------------------------------------
// bind

const VALUES: &str = "LOG_LEVEL: debug\nDATABASE_URL: { env: DB_URL }\n";

/// `ingot bind IMAGE --format env`: the file's text, and the --json report.
fn bind_env(f: &Fixture, image: &str, name: &str) -> (String, Value) {
    let values = f.path("values.yaml");
    std::fs::write(&values, VALUES).unwrap();
    let out = f.path(name);
    let mut cmd = f.ingot();
    cmd.env("DB_URL", "postgres://db/app").args([
        "bind",
        image,
        "--values",
        &path_str(&values),
        "--format",
        "env",
        "--json",
        "-o",
        &path_str(&out),
    ]);
    let result = run(&mut cmd);
    assert!(result.status.success(), "bind {image}: {}", stderr(&result));
    let report = serde_json::from_str(&stdout(&result)).unwrap();
    (std::fs::read_to_string(out).unwrap(), report)
}

/// The values lines of a dotenv file.
fn values_of(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
/// Bound from the registry: the same values as from the layout, the image
/// named by the reference given and its manifest digest, and a Deployment
/// naming the pushed image by that digest.
fn bind_reads_a_registry_image() {
    let f = Fixture::new();
    let registry = Registry::start();
    let image = f.push(&registry);
    let (local, _) = bind_env(&f, &f.oci(), "local.env");
    let (remote, report) = bind_env(&f, &image, "remote.env");
    assert_eq!(
        values_of(&remote),
        ["DATABASE_URL=\"postgres://db/app\"", "LOG_LEVEL=\"debug\""]
    );
    assert_eq!(values_of(&remote), values_of(&local));
    assert!(remote.contains(&format!("# image: {image}\n")), "{remote}");
    assert!(
        remote.contains(&format!("# digest: {}\n", f.digest)),
        "{remote}"
    );
    assert_eq!(report["image"], image.as_str());
    assert_eq!(report["digest"], f.digest.as_str());
    assert_eq!(report["digest_of"], "manifest");

    let deploy = f.path("deploy.yaml");
    let repo = format!("{}/team/hello", registry.host());
    let values = f.path("k8s.yaml");
    std::fs::write(&values, "DATABASE_URL: { secretRef: db/url }\n").unwrap();
    f.ok(&[
        "bind",
        &image,
        "--values",
        &path_str(&values),
        "--format",
        "kubernetes",
        "--repo",
        &repo,
        "-o",
        &path_str(&deploy),
    ]);
    let text = std::fs::read_to_string(&deploy).unwrap();
    assert!(text.contains(&format!("{repo}@{}", f.digest)), "{text}");
    f.no_temp_left();
}

#[test]
/// Bound from a docker-archive: the same values, the file naming the
/// image by its config digest, as such. A Deployment, which names an image
/// by manifest digest, cannot be made from an archive: a usage error.
fn bind_reads_a_docker_archive() {
    let f = Fixture::new();
    let archive = f.archive();
    let (local, _) = bind_env(&f, &f.oci(), "local.env");
    let (text, report) = bind_env(&f, &archive, "archive.env");
    assert_eq!(values_of(&text), values_of(&local));
    assert!(
        text.contains(&format!("# config digest: {}\n", f.config_digest())),
        "{text}"
    );
    assert_eq!(report["digest"], f.config_digest().as_str());
    assert_eq!(report["digest_of"], "config");

    let deploy = f.path("deploy.yaml");
    let out = run(f.ingot().args([
        "bind",
        &archive,
        "--format",
        "kubernetes",
        "--repo",
        "registry.example.com/hello",
        "-o",
        &path_str(&deploy),
    ]));
    fails_with(&out, 2, &["manifest digest", "docker://", "oci:"]);
    assert!(!deploy.exists());
    f.no_temp_left();
}

// ---------------------------------------------------------------------------
// faults

#[test]
/// A registry serving blobs that are not what their digests say: every
/// command refuses the image with one line naming the blob, writes nothing,
/// and leaves no temp store behind. A registry that is down is one line too.
fn corrupt_registry_blobs_are_refused_by_every_command() {
    let f = Fixture::new();
    let registry = Registry::start();
    f.push(&registry);
    let proxy = CorruptingProxy::start(registry.port);
    let through = format!("docker://127.0.0.1:{}/team/hello:1.2.0", proxy.port);
    let through = through.as_str();
    let config = f.config_digest();
    let needles = ["digest mismatch", &format!("config {config}")];
    let output = f.path("out");
    for args in [
        vec!["inspect", through],
        vec!["audit", through],
        vec!["export", through, "--format", "docker-archive", "-o"],
        vec!["bind", through, "--format", "oci-bundle", "-o"],
    ] {
        let mut cmd = f.ingot();
        cmd.args(&args);
        if args.last() == Some(&"-o") {
            cmd.arg(&output);
        }
        fails_with(&run(&mut cmd), 1, &needles);
        assert!(!output.exists(), "{args:?} wrote {}", output.display());
        f.no_temp_left();
    }
    assert!(proxy.corrupted.load(std::sync::atomic::Ordering::SeqCst) >= 4);

    let down = format!("docker://127.0.0.1:{}/hello:1", free_port());
    let out = run(f.ingot().args(["inspect", &down]));
    fails_with(&out, 1, &["cannot reach the registry"]);
    f.no_temp_left();
}

#[test]
/// A registry that wants credentials gets them from where push finds them:
/// REGISTRY_AUTH_FILE here.
fn registry_credentials_come_from_the_environment() {
    let f = Fixture::new();
    let registry = Registry::with_htpasswd("alice", "s3cret");
    let auth = f.path("auth.json");
    let encoded = base64_of("alice:s3cret");
    std::fs::write(
        &auth,
        json!({"auths": {registry.host(): {"auth": encoded}}}).to_string(),
    )
    .unwrap();
    let to = registry.reference("hello");
    let image = format!("{to}:1.2.0");
    let with_auth = |args: &[&str]| run(f.ingot().env("REGISTRY_AUTH_FILE", &auth).args(args));
    assert!(with_auth(&["push", &f.oci(), &to]).status.success());

    fails_with(
        &run(f.ingot().args(["inspect", &image])),
        1,
        &["authentication failed"],
    );
    let out = with_auth(&["inspect", "--json", &image]);
    assert!(out.status.success(), "{}", stderr(&out));
    let inspected: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(inspected["digest"], f.digest.as_str());
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
/// What a command cannot read is a usage error (exit 2), one line listing
/// what it takes, before anything is read or sent.
fn transports_a_command_does_not_read_are_usage_errors() {
    let unreachable = "docker://127.0.0.1:1/hello:1";
    for (args, says) in [
        (
            vec!["verify", unreachable],
            vec!["oci:PATH", "oci:PATH:TAG", "oci:PATH@sha256:", unreachable],
        ),
        (
            vec!["verify", "docker-archive:hello.tar"],
            vec!["oci:PATH@sha256:", "docker-archive:hello.tar"],
        ),
        (vec!["gc", unreachable], vec!["oci:PATH"]),
        (
            vec!["inspect", "hello.tar"],
            vec!["oci:PATH", "docker-archive:PATH", "docker://HOST"],
        ),
        (
            vec!["inspect", unreachable, "--insecure", "h:port"],
            vec!["--insecure"],
        ),
        (
            vec!["audit", "docker-archive:no-such.tar"],
            vec!["docker-archive:no-such.tar: no such file"],
        ),
    ] {
        fails_with(&run(ingot().args(&args)), 2, &says);
    }
}

/// An image named on the command line that is not there, or that names
/// something no image can be read from, is the same mistake on every
/// transport and for every command that opens one: exit 2, one line
/// naming it. (A registry that answers is there: what it lacks is the
/// user's reference, not a failure of the image.)
#[test]
fn a_missing_image_is_a_usage_error_on_every_transport() {
    let f = Fixture::new();
    let registry = Registry::start();
    f.push(&registry);
    let dir = f.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let fifo = f.path("fifo.tar");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let missing = [
        format!("oci:{}", f.path("no-such-layout").display()),
        format!("oci:{}:1.2.0", f.path("hello.tar").display()),
        format!("oci:{}:9.9.9", f.layout.display()),
        format!("docker-archive:{}", f.path("no-such.tar").display()),
        format!("docker-archive:{}", dir.display()),
        format!("docker-archive:{}", fifo.display()),
        format!("{}:1.2.0", registry.reference("team/no-such-repo")),
        format!("{}:9.9.9", registry.reference("team/hello")),
    ];
    std::fs::write(f.path("hello.tar"), "not a layout").unwrap();
    let out = path_str(&f.path("out"));
    for image in &missing {
        // A layout's errors name its directory; the others, the reference.
        let named = match image.strip_prefix("oci:") {
            Some(rest) => rest.trim_end_matches(":1.2.0").trim_end_matches(":9.9.9"),
            None => image.as_str(),
        };
        let commands: [Vec<&str>; 4] = [
            vec!["audit", image],
            vec!["inspect", image],
            vec!["export", image, "--format", "docker-archive", "-o", &out],
            vec!["bind", image, "--format", "env", "-o", &out],
        ];
        for args in commands {
            let ran = run(f.ingot().args(&args));
            fails_with(&ran, 2, &[named]);
            assert!(!f.path("out").exists(), "{args:?}");
        }
    }
    // pull and push open images too; verify reads only layouts.
    let pulled = path_str(&f.path("pulled"));
    let ran = run(f.ingot().args(["pull", &missing[6], "-o", &pulled]));
    fails_with(&ran, 2, &[missing[6].as_str()]);
    let to = registry.reference("team/copy");
    for image in &missing[..3] {
        fails_with(&run(f.ingot().args(["push", image, &to])), 2, &[]);
        fails_with(&run(f.ingot().args(["verify", image])), 2, &[]);
    }
    f.no_temp_left();
}

/// `--platform` names what the user wants: a single-platform image of
/// another platform is an error naming both (exit 2), in a layout and in
/// a registry, for inspect and pull alike; nothing is pulled. Without
/// `--platform`, or with the image's own, it is read as it is.
#[test]
fn a_platform_a_single_image_is_not_is_refused() {
    let f = Fixture::new();
    let registry = Registry::start();
    let remote = f.push(&registry);
    let both = ["linux/amd64", "linux/arm64"];
    for image in [f.oci(), remote.clone()] {
        let ran = run(f
            .ingot()
            .args(["inspect", &image, "--platform", "linux/arm64"]));
        fails_with(&ran, 2, &both);
        for platform in [&[][..], &["--platform", "linux/amd64"][..]] {
            let json = f.json(&[&["inspect", "--json", &image][..], platform].concat());
            assert_eq!(json["digest"], f.digest.as_str(), "{image} {platform:?}");
        }
    }
    let pulled = f.path("pulled");
    let ran = run(f
        .ingot()
        .args(["pull", &remote, "--platform", "linux/arm64", "-o"])
        .arg(&pulled));
    fails_with(&ran, 2, &[&remote, both[0], both[1]]);
    assert!(!pulled.exists());
    let out = f.ok(&[
        "pull",
        &remote,
        "--platform",
        "linux/amd64",
        "-o",
        &path_str(&pulled),
    ]);
    assert_eq!(out.trim(), f.digest);
    f.no_temp_left();
}
