//! Registry credentials are found where podman, skopeo and docker keep
//! them, in containers-auth.json(5)'s order then Docker's, against a real
//! registry that wants basic auth: every file location, the first file
//! that knows the registry winning, and Docker credential helpers
//! (`credHelpers`, `credsStore`), bounded and named when they fail.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;

use common::registry::{Registry, path_with, script};
use common::{ingot, run, stderr, stdout};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret";

/// A registry wanting basic auth, holding the hello example as
/// `hello:1.2.0`, and a temp dir for homes and files.
struct Fixture {
    dir: tempfile::TempDir,
    registry: Registry,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("hello");
        common::build(&common::example("hello"), &layout);
        let registry = Registry::with_htpasswd(USER, PASSWORD);
        let f = Fixture { dir, registry };
        let auth = f.auth_file(&f.path("push/auth.json"), PASSWORD);
        let pushed = run(f
            .ingot()
            .env("REGISTRY_AUTH_FILE", auth)
            .arg("push")
            .arg(format!("oci:{}:1.2.0", layout.display()))
            .arg(f.image()));
        assert!(pushed.status.success(), "{}", stderr(&pushed));
        f
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn image(&self) -> String {
        self.registry.reference("hello:1.2.0")
    }

    /// `ingot` with no credential variable set but a HOME of its own.
    fn ingot(&self) -> Command {
        let mut cmd = ingot();
        cmd.env("HOME", self.path("home"));
        for var in [
            "REGISTRY_AUTH_FILE",
            "XDG_RUNTIME_DIR",
            "XDG_CONFIG_HOME",
            "DOCKER_CONFIG",
        ] {
            cmd.env_remove(var);
        }
        // /run/containers/UID is looked for under an empty root.
        cmd.env("INGOT_ROOT_FOR_IMPLICIT_PATHS", self.path("root"));
        cmd
    }

    /// `ingot inspect` of the pushed image, with `env` set.
    fn inspect(&self, env: &[(&str, &Path)]) -> Output {
        let mut cmd = self.ingot();
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(cmd.arg("inspect").arg(self.image()))
    }

    /// An auth.json (or config.json) at `path` with `password` for the
    /// registry.
    fn auth_file(&self, path: &Path, password: &str) -> PathBuf {
        use base64::Engine as _;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{password}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            path,
            json!({"auths": {self.registry.host(): {"auth": auth}}}).to_string(),
        )
        .unwrap();
        path.to_path_buf()
    }
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed: {}\nstdout: {}",
        stderr(out),
        stdout(out)
    );
}

fn refused(out: &Output, needles: &[&str]) {
    assert_eq!(out.status.code(), Some(1), "{}", stderr(out));
    for n in needles {
        assert!(stderr(out).contains(n), "{n:?} not in {}", stderr(out));
    }
}

/// Variables a case sets.
type Env<'a> = Vec<(&'a str, &'a Path)>;

/// This process's uid, as the one a file it makes gets.
fn uid(dir: &Path) -> u32 {
    let probe = dir.join("uid-probe");
    std::fs::write(&probe, b"").unwrap();
    std::fs::metadata(&probe).unwrap().uid()
}

#[test]
fn every_file_location_is_read() {
    let f = Fixture::new();
    // None at all: refused.
    refused(&f.inspect(&[]), &["authentication failed"]);

    let home = f.path("home");
    let runtime = f.path("runtime");
    let cases: Vec<(&str, PathBuf, Env)> = vec![
        ("REGISTRY_AUTH_FILE", f.path("explicit.json"), vec![]),
        (
            "XDG_RUNTIME_DIR",
            runtime.join("containers/auth.json"),
            vec![("XDG_RUNTIME_DIR", runtime.as_path())],
        ),
        (
            "/run/containers/UID",
            f.path(&format!(
                "root/run/containers/{}/auth.json",
                uid(f.dir.path())
            )),
            vec![],
        ),
        (
            "~/.config",
            home.join(".config/containers/auth.json"),
            vec![],
        ),
        (
            "XDG_CONFIG_HOME",
            f.path("config/containers/auth.json"),
            vec![],
        ),
        ("~/.docker", home.join(".docker/config.json"), vec![]),
        ("DOCKER_CONFIG", f.path("docker/config.json"), vec![]),
    ];
    for (what, file, mut env) in cases {
        f.auth_file(&file, PASSWORD);
        let explicit = f.path("explicit.json");
        let config = f.path("config");
        let docker = f.path("docker");
        match what {
            "REGISTRY_AUTH_FILE" => env.push(("REGISTRY_AUTH_FILE", &explicit)),
            "XDG_CONFIG_HOME" => env.push(("XDG_CONFIG_HOME", &config)),
            "DOCKER_CONFIG" => env.push(("DOCKER_CONFIG", &docker)),
            _ => {}
        }
        let out = f.inspect(&env);
        assert!(
            out.status.success(),
            "{what} ({}): {}",
            file.display(),
            stderr(&out)
        );
        std::fs::remove_file(&file).unwrap();
    }
}

#[test]
fn the_first_file_that_knows_the_registry_wins() {
    let f = Fixture::new();
    let runtime = f.path("runtime");
    let primary = runtime.join("containers/auth.json");
    let docker = f.path("home/.docker/config.json");
    f.auth_file(&docker, PASSWORD);
    f.auth_file(&primary, "wrong");
    // The containers file comes first, and is wrong.
    refused(
        &f.inspect(&[("XDG_RUNTIME_DIR", &runtime)]),
        &["authentication failed", "auth.json"],
    );
    // A file that knows other registries only is passed over.
    std::fs::write(
        &primary,
        json!({"auths": {"elsewhere.example.com": {"auth": "dTpw"}}}).to_string(),
    )
    .unwrap();
    ok(&f.inspect(&[("XDG_RUNTIME_DIR", &runtime)]));
    // REGISTRY_AUTH_FILE stands in for the primary file.
    f.auth_file(&primary, PASSWORD);
    let wrong = f.auth_file(&f.path("wrong.json"), "wrong");
    refused(
        &f.inspect(&[
            ("XDG_RUNTIME_DIR", &runtime),
            ("REGISTRY_AUTH_FILE", &wrong),
        ]),
        &["wrong.json"],
    );
}

#[test]
fn docker_credential_helpers_are_run() {
    let f = Fixture::new();
    let bin = f.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = f.path("calls");
    script(
        &bin.join("docker-credential-test"),
        &format!(
            "[ \"$1\" = get ] || exit 2\n\
             read -r server\n\
             echo \"$server\" >> {calls}\n\
             if [ \"$server\" = \"{host}\" ]; then\n  \
               echo '{{\"ServerURL\":\"{host}\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}'\n\
             else\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
            calls = calls.display(),
            host = f.registry.host()
        ),
    );
    script(
        &bin.join("docker-credential-chatty"),
        "head -c 3000000 /dev/zero | tr '\\0' x\n",
    );
    let docker = f.path("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let with_config = |config: serde_json::Value| {
        std::fs::write(docker.join("config.json"), config.to_string()).unwrap();
        run(f
            .ingot()
            .env("DOCKER_CONFIG", &docker)
            .env("PATH", path_with(&bin))
            .arg("inspect")
            .arg(f.image()))
    };

    // credHelpers, per registry.
    ok(&with_config(
        json!({"credHelpers": {f.registry.host(): "test"}}),
    ));
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        format!("{}\n", f.registry.host())
    );
    // credsStore, the default for every registry.
    ok(&with_config(json!({"credsStore": "test"})));
    // A store that knows nothing of the registry leaves auths to answer.
    script(
        &bin.join("docker-credential-empty"),
        "echo 'credentials not found in native keychain'; exit 1\n",
    );
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    ok(&with_config(json!({
        "credsStore": "empty",
        "auths": {f.registry.host(): {"auth": auth}}
    })));

    // Failures name the helper.
    refused(
        &with_config(json!({"credHelpers": {f.registry.host(): "absent"}})),
        &["docker-credential-absent", "not found on PATH"],
    );
    refused(
        &with_config(json!({"credHelpers": {f.registry.host(): "chatty"}})),
        &["docker-credential-chatty", "more than 1 MiB"],
    );
}
