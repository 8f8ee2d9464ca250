//! The seal (issue 4): every rule has a fixture that fails and one that
//! passes, each built here at test time (keys generated, bases made with
//! umoci or written raw by `common::layout`), through `ingot build` and,
//! for images ingot did not build, `ingot audit`.
//!
//! A failed build must exit 1 and name, per violation, the rule, the path
//! and the layer (`rule: PATH (layer NAME sha256:…): detail`); an audit
//! must report the same in `--json`, with the digest of the layer that
//! introduced each finding.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use common::layout::{self, EntryType, Lies, Raw};
use common::{ingot, require, run, stderr, stdout};

/// The seal policy sealed images must carry.
const POLICY: &str = ingot::seal::POLICY_VERSION;

// ---------------------------------------------------------------------------
// Fixtures

/// Runs `script` with `sh -e` in `dir`.
fn sh(dir: &Path, script: &str) {
    let out = run(Command::new("sh").arg("-ec").arg(script).current_dir(dir));
    assert!(out.status.success(), "{script}: {}", stderr(&out));
}

/// A recipe named `app`, version `1`, on `base`, with `layers` (name and
/// steps, each step one YAML flow map), then `tail` (top-level YAML).
fn recipe(base: &str, layers: &[(&str, &[&str])], tail: &str) -> String {
    let mut text = format!("name: app\nversion: '1'\nbase: {base}\n");
    if !layers.is_empty() {
        text.push_str("layers:\n");
    }
    for (name, steps) in layers {
        text.push_str(&format!("  - name: {name}\n    steps:\n"));
        for step in *steps {
            text.push_str(&format!("      - {step}\n"));
        }
    }
    text.push_str(tail);
    text
}

/// A recipe on the static stemcell with one layer, `app`.
fn on_stemcell(steps: &[&str]) -> String {
    recipe("stemcell:static", &[("app", steps)], "")
}

/// One temp dir: the recipe at `app/recipe.yaml` (its files beside it),
/// bases and images beside `app/`, the build's layout at `out/app`.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            tmp: tempfile::Builder::new()
                .prefix("ingot-seal-")
                .tempdir()
                .unwrap(),
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes `bytes` at `rel` under the recipe's directory.
    fn file(&self, rel: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir().join("app").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Writes the recipe; returns its path.
    fn recipe(&self, text: &str) -> PathBuf {
        self.file("recipe.yaml", text)
    }

    fn recipe_file(&self) -> PathBuf {
        self.dir().join("app/recipe.yaml")
    }

    fn out(&self) -> PathBuf {
        self.dir().join("out/app")
    }

    fn build(&self) -> Output {
        common::try_build(self.recipe_file(), self.out())
    }

    /// Builds the recipe, which must pass the seal; returns the manifest,
    /// which must carry the policy it passed.
    fn sealed(&self) -> Value {
        let out = self.build();
        assert!(
            out.status.success(),
            "the build should pass the seal: {}",
            stderr(&out)
        );
        let manifest = manifest_of(&self.out(), "1");
        assert_eq!(
            manifest["annotations"]["dev.ingot.seal.policy"], POLICY,
            "{manifest}"
        );
        manifest
    }

    /// Builds the recipe, which must fail the seal with exit 1 and write
    /// nothing; returns the violation lines.
    fn unsealed(&self) -> Vec<String> {
        let out = self.build();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "stderr: {err}");
        assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
        assert!(err.contains("the image is not sealed"), "{err}");
        assert!(!self.out().exists(), "an unsealed image was written");
        let lines: Vec<String> = err
            .lines()
            .skip_while(|l| !l.contains("the image is not sealed"))
            .skip(1)
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        let count = format!("({} violations;", lines.len());
        assert!(err.contains(&count), "expected {count} in: {err}");
        lines
    }

    /// Builds the recipe, which must fail as a recipe error (exit 2);
    /// returns the one error line.
    fn recipe_error(&self) -> String {
        let out = self.build();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "stderr: {err}");
        assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
        assert!(!self.out().exists(), "an image was written");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "one error line expected: {err}");
        lines[0].to_string()
    }
}

/// The violation line of `rule` at `path` in layer `layer`; returns the
/// layer digest it names.
fn violation(lines: &[String], rule: &str, path: &str, layer: &str) -> String {
    let prefix = format!("{rule}: {path} (layer {layer} ");
    let line = lines
        .iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} among the violations: {lines:#?}"));
    let digest = line[prefix.len()..].split(')').next().unwrap();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{line}"
    );
    digest.to_string()
}

/// The JSON of a blob of the layout at `dir`.
fn blob(dir: &Path, digest: &Value) -> Value {
    let hex = digest.as_str().unwrap().strip_prefix("sha256:").unwrap();
    serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap()).unwrap()
}

/// The manifest tagged `tag` in the layout at `dir`.
fn manifest_of(dir: &Path, tag: &str) -> Value {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {index}"));
    blob(dir, &entry["digest"])
}

/// The layer digests of the image tagged `tag`, bottom first.
fn layers_of(dir: &Path, tag: &str) -> Vec<String> {
    manifest_of(dir, tag)["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// Every image manifest among the blobs of the layout at `dir`.
fn manifests_in(dir: &Path) -> Vec<Value> {
    std::fs::read_dir(dir.join("blobs/sha256"))
        .unwrap()
        .filter_map(|e| {
            serde_json::from_slice::<Value>(&std::fs::read(e.unwrap().path()).ok()?).ok()
        })
        .filter(|v| v["mediaType"] == "application/vnd.oci.image.manifest.v1+json")
        // Not the SBOM's and provenance's.
        .filter(|v| v.get("artifactType").is_none())
        .collect()
}

/// An OCI layout at `dir/name` made by umoci, tag `v1`: one `umoci insert`
/// (so one layer) per script, each run in a fresh root directory, then
/// `umoci config ARGS` if `config` is not empty.
fn umoci_image(dir: &Path, name: &str, layers: &[&str], config: &str) -> PathBuf {
    require("umoci");
    sh(
        dir,
        &format!("rm -rf {name}; umoci init --layout {name}; umoci new --image {name}:v1"),
    );
    for script in layers {
        sh(dir, "rm -rf rfs; mkdir rfs");
        sh(&dir.join("rfs"), script);
        sh(
            dir,
            &format!("umoci insert --image {name}:v1 rfs /; rm -rf rfs"),
        );
    }
    if !config.is_empty() {
        sh(dir, &format!("umoci config --image {name}:v1 {config}"));
    }
    dir.join(name)
}

/// What `ingot audit --json` said, and how it exited.
struct Audit {
    code: Option<i32>,
    report: Value,
    stderr: String,
}

fn audit(image: &str) -> Audit {
    audit_with(image, &[])
}

/// `ingot audit --json IMAGE` with `args` besides.
fn audit_with(image: &str, args: &[&str]) -> Audit {
    let out = run(ingot().arg("audit").arg("--json").arg(image).args(args));
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("audit {image}: {e}: {} {}", stdout(&out), stderr(&out)));
    Audit {
        code: out.status.code(),
        report,
        stderr: stderr(&out),
    }
}

/// One finding of an audit report.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    rule: String,
    path: String,
    layer: String,
    digest: String,
}

impl Audit {
    /// The violations, as (rule, path, layer name, layer digest); "" where
    /// the report has none (the image config).
    fn violations(&self) -> Vec<Found> {
        found(&self.report["violations"])
    }

    /// The allowed findings, each with its reason.
    fn allowed(&self) -> Vec<(Found, String)> {
        self.report["allowed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                let one = found(&Value::Array(vec![pair[0].clone()]));
                (one[0].clone(), pair[1].as_str().unwrap().to_string())
            })
            .collect()
    }

    fn assert_sealed(&self, what: &str) {
        assert_eq!(
            self.code,
            Some(0),
            "{what}: {} {}",
            self.report,
            self.stderr
        );
        assert_eq!(self.violations(), [], "{what}");
    }

    fn assert_unsealed(&self, what: &str) {
        assert_eq!(
            self.code,
            Some(1),
            "{what}: {} {}",
            self.report,
            self.stderr
        );
        assert!(self.stderr.contains("is not sealed"), "{}", self.stderr);
    }
}

fn found(list: &Value) -> Vec<Found> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| Found {
            rule: text(&v["rule"]),
            path: text(&v["path"]),
            layer: text(&v["layer"]["name"]),
            digest: text(&v["layer"]["digest"]),
        })
        .collect()
}

fn finding(rule: &str, path: &str, layer: &str, digest: &str) -> Found {
    Found {
        rule: rule.into(),
        path: path.into(),
        layer: layer.into(),
        digest: digest.into(),
    }
}

// ---------------------------------------------------------------------------
// no-remote-login

#[test]
fn ssh_server_binaries_fail_the_build() {
    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"file: { dest: /usr/sbin/sshd, content: "ELF", mode: "0755" }"#,
        r#"file: { dest: /usr/bin/dropbearmulti, content: "ELF", mode: "0755" }"#,
        r#"file: { dest: /usr/lib/openssh/sshd-session, content: "ELF", mode: "0755" }"#,
        r#"file: { dest: /opt/bin/tinysshd, content: "ELF", mode: "0755" }"#,
    ]));
    let lines = f.unsealed();
    for path in [
        "/usr/sbin/sshd",
        "/usr/bin/dropbearmulti",
        "/usr/lib/openssh/sshd-session",
        "/opt/bin/tinysshd",
    ] {
        violation(&lines, "no-remote-login", path, "app");
    }
    assert_eq!(lines.len(), 4, "{lines:#?}");
}

/// Other remote logins than SSH fail too: telnet, rsh/rlogin, mosh, RDP
/// and VNC servers by name, and their packages in dpkg's database whatever
/// the case of its field names.
#[test]
fn other_remote_login_servers_fail_the_build() {
    let servers = [
        "/usr/sbin/in.telnetd",
        "/usr/sbin/in.rlogind",
        "/usr/bin/mosh-server",
        "/usr/sbin/xrdp",
        "/usr/bin/Xvnc",
    ];
    let steps: Vec<String> = servers
        .iter()
        .map(|p| format!(r#"file: {{ dest: {p}, content: "ELF", mode: "0755" }}"#))
        .collect();
    let f = Fixture::new();
    f.recipe(&on_stemcell(
        &steps.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let lines = f.unsealed();
    for path in servers {
        violation(&lines, "no-remote-login", path, "app");
    }
    assert_eq!(lines.len(), servers.len(), "{lines:#?}");

    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"file: { dest: /var/lib/dpkg/status, content: "package: inetutils-telnetd\nSTATUS: install ok installed\n" }"#,
    ]));
    let lines = f.unsealed();
    violation(&lines, "no-remote-login", "/var/lib/dpkg/status", "app");
    assert!(lines[0].contains("inetutils-telnetd"), "{lines:#?}");
}

const DPKG_SERVER: &str = "Package: openssh-client
Status: install ok installed
Version: 1:9.2p1-2

Package: openssh-server
Status: install ok installed
Priority: optional
Version: 1:9.2p1-2
Description: secure shell (SSH) server
 Package: not-a-field
";

const DPKG_CLIENT_ONLY: &str = "Package: openssh-client
Status: install ok installed
Version: 1:9.2p1-2

Package: openssh-server
Status: deinstall ok config-files
Version: 1:9.2p1-2

Package: dropbear
Status: purge ok not-installed
";

const APK_SERVER: &str = "C:Q1abc=
P:musl
V:1.2.4-r2

C:Q1def=
P:openssh-server
V:9.3_p2-r0
";

const APK_CLIENT: &str = "C:Q1abc=
P:musl
V:1.2.4-r2

C:Q1ghi=
P:openssh-client-default
V:9.3_p2-r0
";

#[test]
fn ssh_server_packages_fail_the_build() {
    let f = Fixture::new();
    f.file("files/status", DPKG_SERVER);
    f.file("files/dropbear", "Package: dropbear\nVersion: 2022.83-1\n");
    f.file(
        "files/openssh-server",
        "Package: openssh-server\nVersion: 1:9.2p1-2\n",
    );
    f.file("files/installed", APK_SERVER);
    f.recipe(&on_stemcell(&[
        "copy: { src: files/status, dest: /var/lib/dpkg/status }",
        "copy: { src: files/dropbear, dest: /var/lib/dpkg/status.d/dropbear }",
        "copy: { src: files/openssh-server, dest: /var/lib/dpkg/status.d/openssh-server }",
        "copy: { src: files/installed, dest: /lib/apk/db/installed }",
    ]));
    let lines = f.unsealed();
    for (path, package) in [
        ("/var/lib/dpkg/status", "openssh-server"),
        ("/var/lib/dpkg/status.d/dropbear", "dropbear"),
        ("/var/lib/dpkg/status.d/openssh-server", "openssh-server"),
        ("/lib/apk/db/installed", "openssh-server"),
    ] {
        violation(&lines, "no-remote-login", path, "app");
        let detail = format!("): package {package} is installed");
        assert!(
            lines.iter().any(
                |l| l.starts_with(&format!("no-remote-login: {path} ")) && l.ends_with(&detail)
            ),
            "{path}: {lines:#?}"
        );
    }
    // status.d/dropbear is named like the server, but cannot be run: only
    // the package it records counts.
    assert_eq!(lines.len(), 4, "{lines:#?}");
}

/// Clients, removed servers, a directory named sshd and the same words
/// outside a package database are not SSH servers.
#[test]
fn ssh_clients_and_removed_servers_pass() {
    let f = Fixture::new();
    f.file("files/status", DPKG_CLIENT_ONLY);
    f.file(
        "files/openssh-client",
        "Package: openssh-client\nVersion: 1:9.2p1-2\n",
    );
    f.file("files/installed", APK_CLIENT);
    f.file("files/notes", DPKG_SERVER);
    f.recipe(&on_stemcell(&[
        "copy: { src: files/status, dest: /var/lib/dpkg/status }",
        "copy: { src: files/openssh-client, dest: /var/lib/dpkg/status.d/openssh-client }",
        "copy: { src: files/installed, dest: /lib/apk/db/installed }",
        "copy: { src: files/notes, dest: /srv/docs/status }",
        "mkdir: { path: /usr/lib/sshd }",
        "mkdir: { path: /etc/dropbear }",
        r#"file: { dest: /usr/bin/ssh, content: "ELF", mode: "0755" }"#,
        r#"file: { dest: /usr/share/doc/sshd.txt, content: "sshd(8)" }"#,
    ]));
    f.sealed();
}

/// dpkg keeps a package's files on disk in every state after `unpacked`
/// (unpacked, half-configured, triggers-awaited, triggers-pending): an SSH
/// server in any of them is installed, though not configured.
#[test]
fn ssh_server_unpacked_but_not_configured_fails() {
    for state in [
        "unpacked",
        "half-configured",
        "triggers-awaited",
        "triggers-pending",
    ] {
        let f = Fixture::new();
        f.file(
            "files/status",
            format!("Package: openssh-server\nStatus: install ok {state}\nVersion: 1:9.2p1-2\n"),
        );
        f.recipe(&on_stemcell(&[
            "copy: { src: files/status, dest: /var/lib/dpkg/status }",
        ]));
        let lines = f.unsealed();
        violation(&lines, "no-remote-login", "/var/lib/dpkg/status", "app");
    }
}

/// The package databases of an image ingot did not build, one per layer.
#[test]
fn audit_reads_third_party_package_databases() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_image(
        tmp.path(),
        "img",
        &[
            &format!("mkdir -p var/lib/dpkg; printf '%s' '{DPKG_SERVER}' > var/lib/dpkg/status"),
            "mkdir -p var/lib/dpkg/status.d; printf 'Package: openssh-server\\nVersion: 1\\n' > var/lib/dpkg/status.d/openssh-server",
            &format!("mkdir -p lib/apk/db; printf '%s' '{APK_SERVER}' > lib/apk/db/installed"),
        ],
        "",
    );
    let layers = layers_of(&layout, "v1");
    let a = audit(&format!("oci:{}:v1", layout.display()));
    a.assert_unsealed("three databases");
    let mut got = a.violations();
    got.sort_by(|x, y| x.layer.cmp(&y.layer));
    assert_eq!(
        got,
        [
            finding("no-remote-login", "/var/lib/dpkg/status", "#1", &layers[0]),
            finding(
                "no-remote-login",
                "/var/lib/dpkg/status.d/openssh-server",
                "#2",
                &layers[1]
            ),
            finding("no-remote-login", "/lib/apk/db/installed", "#3", &layers[2]),
        ]
    );

    let clean = umoci_image(
        tmp.path(),
        "clean",
        &[&format!(
            "mkdir -p var/lib/dpkg lib/apk/db usr/lib/sshd
             printf '%s' '{DPKG_CLIENT_ONLY}' > var/lib/dpkg/status
             printf '%s' '{APK_CLIENT}' > lib/apk/db/installed"
        )],
        "",
    );
    audit(&format!("oci:{}:v1", clean.display())).assert_sealed("clients only");
}

// ---------------------------------------------------------------------------
// no-ssh-host-keys

#[test]
fn ssh_host_keys_fail_the_build() {
    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"file: { dest: /etc/ssh/ssh_host_ed25519_key, content: "not really a key", mode: "0600" }"#,
        r#"file: { dest: /etc/ssh/ssh_host_ed25519_key.pub, content: "ssh-ed25519 AAAA" }"#,
        r#"file: { dest: /etc/dropbear/dropbear_rsa_host_key, content: "binary", mode: "0600" }"#,
    ]));
    let lines = f.unsealed();
    for path in [
        "/etc/ssh/ssh_host_ed25519_key",
        "/etc/dropbear/dropbear_rsa_host_key",
    ] {
        violation(&lines, "no-ssh-host-keys", path, "app");
    }
    // The public half is no secret.
    assert_eq!(lines.len(), 2, "{lines:#?}");
}

#[test]
fn ssh_client_config_passes() {
    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"file: { dest: /etc/ssh/ssh_config, content: "Host *\n  HashKnownHosts yes\n" }"#,
        r#"file: { dest: /etc/ssh/ssh_known_hosts, content: "example.com ssh-ed25519 AAAA\n" }"#,
        r#"file: { dest: /srv/ssh_host_rsa_key.md, content: "how host keys work\n" }"#,
    ]));
    f.sealed();
}

// ---------------------------------------------------------------------------
// no-authorized-keys

#[test]
fn authorized_keys_fail_the_build() {
    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"file: { dest: /root/.ssh/authorized_keys, content: "ssh-ed25519 AAAA admin\n" }"#,
        r#"file: { dest: /home/app/.ssh/authorized_keys2, content: "ssh-ed25519 AAAA app\n" }"#,
    ]));
    let lines = f.unsealed();
    violation(
        &lines,
        "no-authorized-keys",
        "/root/.ssh/authorized_keys",
        "app",
    );
    violation(
        &lines,
        "no-authorized-keys",
        "/home/app/.ssh/authorized_keys2",
        "app",
    );
    assert_eq!(lines.len(), 2, "{lines:#?}");
}

const SSHD_CONFIG: &str = r#"file: { dest: /etc/ssh/sshd_config, content: "PasswordAuthentication no\nAuthorizedKeysFile /etc/ssh/keys/%u\n" }"#;

/// A file an sshd_config names by `AuthorizedKeysFile` (with `%u` for
/// root, whom the stemcell's passwd has) is found by what the config says,
/// in the layer that added it, not the config's.
#[test]
fn authorized_keys_file_targets_fail_the_build() {
    let f = Fixture::new();
    f.recipe(&recipe(
        "stemcell:static",
        &[
            ("config", &[SSHD_CONFIG]),
            (
                "keys",
                &[r#"file: { dest: /etc/ssh/keys/root, content: "ssh-ed25519 AAAA\n" }"#],
            ),
        ],
        "",
    ));
    let lines = f.unsealed();
    violation(&lines, "no-authorized-keys", "/etc/ssh/keys/root", "keys");
    assert!(lines[0].contains("/etc/ssh/sshd_config"), "{lines:#?}");
    assert_eq!(lines.len(), 1, "{lines:#?}");

    // sshd_config.d snippets count too, and %h is the user's home.
    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"file: { dest: /etc/ssh/sshd_config.d/10-keys.conf, content: "AuthorizedKeysFile %h/.ssh/fleet\n" }"#,
        r#"file: { dest: /root/.ssh/fleet, content: "ssh-ed25519 AAAA\n" }"#,
    ]));
    let lines = f.unsealed();
    violation(&lines, "no-authorized-keys", "/root/.ssh/fleet", "app");
    assert_eq!(lines.len(), 1, "{lines:#?}");
}

/// sshd reads what its config `Include`s, globs expanded, relative paths
/// under /etc/ssh, and includes of includes: a keys file named there is
/// as much a way in. The same file named by a config nobody includes is
/// not read by sshd, and passes.
#[test]
fn authorized_keys_file_named_in_an_included_config_fails_the_build() {
    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"file: { dest: /etc/ssh/sshd_config, content: "Port 2200\nInclude extra/*.conf\n" }"#,
        r#"file: { dest: /etc/ssh/extra/10-more.conf, content: "include /opt/ssh/last.conf\n" }"#,
        r#"file: { dest: /opt/ssh/last.conf, content: "  authorizedkeysfile=/srv/keys/%u\n" }"#,
        r#"file: { dest: /srv/keys/root, content: "ssh-ed25519 AAAA\n" }"#,
    ]));
    let lines = f.unsealed();
    violation(&lines, "no-authorized-keys", "/srv/keys/root", "app");
    assert!(
        lines[0].ends_with("named by AuthorizedKeysFile in /opt/ssh/last.conf"),
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 1, "{lines:#?}");

    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"file: { dest: /etc/ssh/sshd_config, content: "Port 2200\nInclude extra/*.conf\n" }"#,
        r#"file: { dest: /opt/ssh/last.conf, content: "AuthorizedKeysFile /srv/keys/%u\n" }"#,
        r#"file: { dest: /srv/keys/root, content: "ssh-ed25519 AAAA\n" }"#,
    ]));
    f.sealed();
}

#[test]
fn authorized_keys_file_without_targets_passes() {
    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        SSHD_CONFIG,
        "mkdir: { path: /etc/ssh/keys }",
        r#"file: { dest: /etc/ssh/keys/README, content: "keys go here\n" }"#,
    ]));
    f.sealed();
}

/// An absolute `AuthorizedKeysFile` without tokens names one file whoever
/// logs in: it is a target even in an image with no /etc/passwd.
#[test]
fn authorized_keys_file_target_without_passwd_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_image(
        tmp.path(),
        "img",
        &["mkdir -p etc/ssh
           echo 'AuthorizedKeysFile /etc/ssh/admin_keys' > etc/ssh/sshd_config
           echo 'ssh-ed25519 AAAA admin' > etc/ssh/admin_keys"],
        "",
    );
    let layers = layers_of(&layout, "v1");
    let a = audit(&format!("oci:{}:v1", layout.display()));
    a.assert_unsealed("admin_keys");
    assert_eq!(
        a.violations(),
        [finding(
            "no-authorized-keys",
            "/etc/ssh/admin_keys",
            "#1",
            &layers[0]
        )]
    );
}

// ---------------------------------------------------------------------------
// no-ssh-port

#[test]
fn ssh_port_fails_the_build() {
    let f = Fixture::new();
    f.recipe(&recipe(
        "stemcell:static",
        &[],
        "config:\n  ports: [\"8080/tcp\", \"22/tcp\"]\n",
    ));
    let lines = f.unsealed();
    assert_eq!(
        lines,
        ["no-ssh-port: image config: port 22/tcp is exposed"],
        "no layer: the port is in the config"
    );
}

#[test]
fn other_ports_pass() {
    let f = Fixture::new();
    f.recipe(&recipe(
        "stemcell:static",
        &[],
        "config:\n  ports: [\"2222/tcp\", \"22/udp\", \"220/tcp\"]\n",
    ));
    f.sealed();
}

/// A base's exposed port 22 is the image's too.
#[test]
fn ssh_port_of_a_third_party_image_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_image(
        tmp.path(),
        "img",
        &["mkdir etc; echo hi > etc/motd"],
        "--config.exposedports 22/tcp",
    );
    let a = audit(&format!("oci:{}:v1", layout.display()));
    a.assert_unsealed("port 22");
    assert_eq!(a.violations(), [finding("no-ssh-port", "", "", "")]);
}

/// Port 22 written as runtimes also read it (another case, leading zeros,
/// a range) is found too; other ports pass.
#[test]
fn ssh_port_however_written_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    for (i, port) in ["22/TCP", "022/tcp", "20-30/tcp"].iter().enumerate() {
        let layout = umoci_image(
            tmp.path(),
            &format!("img{i}"),
            &["mkdir etc; echo hi > etc/motd"],
            &format!("--config.exposedports {port}"),
        );
        let a = audit(&format!("oci:{}:v1", layout.display()));
        a.assert_unsealed(port);
        assert_eq!(
            a.violations(),
            [finding("no-ssh-port", "", "", "")],
            "{port}"
        );
    }
    let layout = umoci_image(
        tmp.path(),
        "other",
        &["mkdir etc; echo hi > etc/motd"],
        "--config.exposedports 23-30/tcp --config.exposedports 22/udp",
    );
    audit(&format!("oci:{}:v1", layout.display())).assert_sealed("other ports");
}

/// An account with an empty password, in /etc/shadow or /etc/passwd, is a
/// way in without a key: it fails the build, named in its file.
#[test]
fn empty_passwords_fail_the_build() {
    for (file, text) in [
        ("/etc/shadow", "root::19000:0:99999:7:::\\n"),
        (
            "/etc/passwd",
            "root:x:0:0:root:/root:/sbin/nologin\\nguest::1000:1000::/:/bin/sh\\n",
        ),
    ] {
        let f = Fixture::new();
        f.recipe(&on_stemcell(&[&format!(
            "file: {{ dest: {file}, content: \"{text}\", mode: \"0600\" }}"
        )]));
        let lines = f.unsealed();
        violation(&lines, "no-empty-password", file, "app");
        assert_eq!(lines.len(), 1, "{lines:#?}");
    }
}

// ---------------------------------------------------------------------------
// no-private-keys

/// Keys generated here, into `dir/keys`: `openssh` (and `.pub`), `pem-rsa`,
/// `pkcs8`, `pkcs8-encrypted`, `ec` (after its EC PARAMETERS block),
/// `putty`, and a self-signed `cert.pem`. Returns the directory.
fn generate_keys(dir: &Path) -> PathBuf {
    require("ssh-keygen");
    require("openssl");
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    sh(
        &keys,
        "ssh-keygen -q -t ed25519 -N '' -C seal-test -f openssh
         ssh-keygen -q -m PEM -t rsa -b 1024 -N '' -C seal-test -f pem-rsa
         openssl genpkey -algorithm ed25519 -out pkcs8 2>/dev/null
         openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:x -in pkcs8 -out pkcs8-encrypted
         openssl ecparam -genkey -name prime256v1 -out ec
         openssl req -x509 -newkey ed25519 -nodes -keyout cert-key -subj /CN=seal-test -days 1 -out cert.pem 2>/dev/null",
    );
    // No puttygen here: a PuTTY v3 file as it writes one.
    std::fs::write(
        keys.join("putty"),
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: seal-test\n\
         Public-Lines: 2\nAAAAC3NzaC1lZDI1NTE5AAAAIGzYIbMXkQhNclCFqkbmqMxB2ufoqFh5n3F6ek0d\nMhkq\n\
         Private-Lines: 1\nAAAAIHxDd1p2nJ0vdbC2H+KbfgwHZJ3WXFXbk0m1WkU6ksbZ\n\
         Private-MAC: 7f3c0a1d2e9b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5\n",
    )
    .unwrap();
    keys
}

/// Private keys under innocent names, each found by what it holds.
#[test]
fn private_keys_fail_the_build() {
    let f = Fixture::new();
    let keys = generate_keys(f.dir());
    let planted = [
        ("openssh", "/srv/data/notes.txt", "OPENSSH PRIVATE KEY"),
        ("pem-rsa", "/srv/data/report.csv", "RSA PRIVATE KEY"),
        ("pkcs8", "/usr/share/doc/app/changelog", "PRIVATE KEY"),
        (
            "pkcs8-encrypted",
            "/var/lib/app/blob.bin",
            "ENCRYPTED PRIVATE KEY",
        ),
        ("ec", "/etc/app/params.pem", "EC PRIVATE KEY"),
        ("putty", "/home/app/README", "PuTTY private key"),
    ];
    let mut steps = Vec::new();
    for (key, dest, _) in planted {
        f.file(key, std::fs::read(keys.join(key)).unwrap());
        steps.push(format!(
            "copy: {{ src: {key}, dest: {dest}, mode: \"0644\" }}"
        ));
    }
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    f.recipe(&on_stemcell(&steps));
    let lines = f.unsealed();
    for (key, dest, format) in planted {
        violation(&lines, "no-private-keys", dest, "app");
        let line = lines.iter().find(|l| l.contains(dest)).unwrap();
        assert!(
            line.ends_with(&format!("holds a {format}")),
            "{key}: {line}"
        );
    }
    assert_eq!(lines.len(), planted.len(), "{lines:#?}");
}

/// Public keys, certificates and text that names key formats are not keys.
/// (The stemcell's CA bundle is in every image on it.)
#[test]
fn public_keys_and_certificates_pass() {
    let f = Fixture::new();
    let keys = generate_keys(f.dir());
    for (key, name) in [("openssh.pub", "id.pub"), ("cert.pem", "cert.pem")] {
        f.file(name, std::fs::read(keys.join(key)).unwrap());
    }
    f.file(
        "docs.md",
        "Paste the key, which starts with -----BEGIN OPENSSH PRIVATE KEY-----,\n\
         into the vault. A PEM key looks like:\n\n    -----BEGIN RSA PRIVATE KEY-----\n    ...\n\n\
         PuTTY files start PuTTY-User-Key-File-N.\n",
    );
    f.recipe(&on_stemcell(&[
        "copy: { src: id.pub, dest: /srv/data/id.pub }",
        "copy: { src: cert.pem, dest: /etc/ssl/certs/app.pem }",
        "copy: { src: docs.md, dest: /usr/share/doc/app/keys.md }",
    ]));
    f.sealed();
}

/// A key planted in an image ingot did not build, found in its layer.
#[test]
fn private_key_in_a_third_party_image_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = generate_keys(tmp.path());
    let layout = umoci_image(
        tmp.path(),
        "img",
        &[
            "mkdir -p srv/data; echo hello > srv/data/hello.txt",
            &format!(
                "mkdir -p srv/data; cp {}/openssh srv/data/notes.txt; cp {}/cert.pem srv/data/cert.pem",
                keys.display(),
                keys.display()
            ),
        ],
        "",
    );
    let layers = layers_of(&layout, "v1");
    let a = audit(&format!("oci:{}:v1", layout.display()));
    a.assert_unsealed("key");
    assert_eq!(
        a.violations(),
        [finding(
            "no-private-keys",
            "/srv/data/notes.txt",
            "#2",
            &layers[1]
        )]
    );
}

/// Keys are often kept in config files: indented in a YAML block scalar,
/// or in a JSON string with `\n` escapes (a cloud service-account file).
/// The material is the same PEM block and must be found.
#[test]
fn private_keys_embedded_in_config_files_fail_the_build() {
    let f = Fixture::new();
    let keys = generate_keys(f.dir());
    let rsa = std::fs::read_to_string(keys.join("pem-rsa")).unwrap();
    let pkcs8 = std::fs::read_to_string(keys.join("pkcs8")).unwrap();
    let indented: String = rsa.lines().map(|l| format!("    {l}\n")).collect();
    f.file("config.yaml", format!("tls:\n  key: |\n{indented}"));
    f.file(
        "service-account.json",
        serde_json::json!({ "type": "service_account", "private_key": pkcs8 }).to_string(),
    );
    f.recipe(&on_stemcell(&[
        "copy: { src: config.yaml, dest: /etc/app/config.yaml }",
        "copy: { src: service-account.json, dest: /etc/app/service-account.json }",
    ]));
    let lines = f.unsealed();
    violation(&lines, "no-private-keys", "/etc/app/config.yaml", "app");
    violation(
        &lines,
        "no-private-keys",
        "/etc/app/service-account.json",
        "app",
    );
}

/// Keys in the encodings tools write besides PEM, and inside archives:
/// DER files, a DER key in base64 on one line, a JWK with its private
/// member, a dropbear key file, and a PEM key in a tar (after the tar's
/// NUL padding), a .gz and a .zip. Public halves of the same keys pass.
#[test]
fn private_keys_in_every_encoding_fail_the_build() {
    use std::io::Write as _;
    let f = Fixture::new();
    let keys = generate_keys(f.dir());
    sh(
        &keys,
        "openssl pkey -in pem-rsa -outform DER -out rsa.der
         openssl pkey -in ec -outform DER -out ec.der
         openssl pkey -in pem-rsa -pubout -outform DER -out rsa.pub.der
         openssl pkey -in pkcs8 -pubout -out pkcs8.pub",
    );
    let der = std::fs::read(keys.join("ec.der")).unwrap();
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let b64url = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    };
    f.file("der", std::fs::read(keys.join("rsa.der")).unwrap());
    f.file("env", format!("APP_KEY={}\n", b64(&der)));
    f.file(
        "jwk",
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(&[1; 32]), "d": b64url(&[2; 32])}).to_string(),
    );
    // dropbear's own format: SSH wire strings, name then private fields.
    let string = |b: &[u8]| [&(b.len() as u32).to_be_bytes()[..], b].concat();
    f.file(
        "dropbear",
        [string(b"ssh-ed25519"), string(&[3; 64])].concat(),
    );
    let pem = std::fs::read(keys.join("pem-rsa")).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(pem.len() as u64);
    header.set_mode(0o600);
    tar.append_data(&mut header, "etc/app/key", &pem[..])
        .unwrap();
    f.file("tar", tar.into_inner().unwrap());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&pem).unwrap();
    f.file("gz", gz.finish().unwrap());
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("conf/key.pem", zip::write::SimpleFileOptions::default())
        .unwrap();
    zip.write_all(&pem).unwrap();
    f.file("zip", zip.finish().unwrap().into_inner());
    // The public halves.
    f.file(
        "rsa.pub.der",
        std::fs::read(keys.join("rsa.pub.der")).unwrap(),
    );
    f.file("pkcs8.pub", std::fs::read(keys.join("pkcs8.pub")).unwrap());
    f.file(
        "jwk.pub",
        serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": b64url(&[1; 32])}).to_string(),
    );
    let planted = [
        ("der", "/srv/data/blob.bin", "holds a RSA PRIVATE KEY (DER)"),
        ("env", "/etc/app/env", "holds a EC PRIVATE KEY (base64 DER)"),
        ("jwk", "/etc/app/signing.json", "holds a JWK private key"),
        ("dropbear", "/opt/hostkey", "holds a dropbear private key"),
        ("tar", "/var/backups/etc.tar", "holds a RSA PRIVATE KEY"),
        (
            "gz",
            "/var/backups/key.gz",
            "holds a RSA PRIVATE KEY once decompressed",
        ),
        (
            "zip",
            "/opt/app/conf.zip",
            "holds a RSA PRIVATE KEY inside it at conf/key.pem",
        ),
    ];
    let mut steps: Vec<String> = planted
        .iter()
        .map(|(src, dest, _)| format!("copy: {{ src: {src}, dest: {dest} }}"))
        .collect();
    for (src, dest) in [
        ("rsa.pub.der", "/etc/app/rsa.pub.der"),
        ("pkcs8.pub", "/etc/app/pkcs8.pub"),
        ("jwk.pub", "/etc/app/jwks.json"),
    ] {
        steps.push(format!("copy: {{ src: {src}, dest: {dest} }}"));
    }
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    f.recipe(&on_stemcell(&steps));
    let lines = f.unsealed();
    for (_, dest, detail) in planted {
        violation(&lines, "no-private-keys", dest, "app");
        let line = lines.iter().find(|l| l.contains(dest)).unwrap();
        assert!(line.contains(detail), "{line}");
    }
    assert_eq!(lines.len(), planted.len(), "{lines:#?}");

    // The same files in an image umoci made: the runtime's unpacking holds
    // each byte for byte, and the audit finds each.
    let script: Vec<String> = planted
        .iter()
        .map(|(src, dest, _)| {
            let source = f.dir().join("app").join(src);
            format!(
                "mkdir -p .$(dirname {dest}); cp {} .{dest}",
                source.display()
            )
        })
        .collect();
    let layout = umoci_image(f.dir(), "img", &[&script.join("\n")], "");
    sh(f.dir(), "umoci tag --image img:v1 t");
    let a = audit(&format!("oci:{}:v1", layout.display()));
    a.assert_unsealed("keys");
    let paths: Vec<String> = a.violations().into_iter().map(|v| v.path).collect();
    let mut expected: Vec<String> = planted.iter().map(|p| p.1.to_string()).collect();
    expected.sort();
    assert_eq!(paths, expected);
    unpacked(&layout, planted[0].1.trim_start_matches('/'));
    let rootfs = layout.with_extension("bundle").join("rootfs");
    for (src, dest, _) in planted {
        assert_eq!(
            std::fs::read(rootfs.join(dest.trim_start_matches('/'))).unwrap(),
            std::fs::read(f.dir().join("app").join(src)).unwrap(),
            "{dest}"
        );
    }
}

/// What the scan's bounds keep it from reading is a violation, never a
/// pass: gzip nested five deep is one level more than it opens. Four deep
/// is read to the bottom, and passes when nothing is there.
#[test]
fn archives_beyond_the_scan_bounds_fail_the_build() {
    use std::io::Write as _;
    let nest = |levels: usize| {
        let mut bytes = b"just text\n".to_vec();
        for _ in 0..levels {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&bytes).unwrap();
            bytes = gz.finish().unwrap();
        }
        bytes
    };
    let f = Fixture::new();
    f.file("deep", nest(5));
    f.recipe(&on_stemcell(&["copy: { src: deep, dest: /srv/deep.gz }"]));
    let lines = f.unsealed();
    violation(&lines, "scanned-archives", "/srv/deep.gz", "app");
    assert!(
        lines[0].ends_with("archives nested more than 4 deep"),
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 1, "{lines:#?}");

    let f = Fixture::new();
    f.file("deep", nest(4));
    f.recipe(&on_stemcell(&["copy: { src: deep, dest: /srv/deep.gz }"]));
    f.sealed();
}

// ---------------------------------------------------------------------------
// no-world-writable

#[test]
fn world_writable_files_and_directories_fail_the_build() {
    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"file: { dest: /srv/shared.log, content: "", mode: "0666" }"#,
        r#"mkdir: { path: /srv/drop, mode: "0777" }"#,
        r#"mkdir: { path: /srv/other, mode: "0703" }"#,
    ]));
    let lines = f.unsealed();
    violation(&lines, "no-world-writable", "/srv/shared.log", "app");
    violation(&lines, "no-world-writable", "/srv/drop", "app");
    violation(&lines, "no-world-writable", "/srv/other", "app");
    assert_eq!(lines.len(), 3, "{lines:#?}");
}

/// Sticky directories (like the stemcell's /tmp) and symlinks (whose mode
/// is always 0777) are not checked.
#[test]
fn sticky_directories_and_symlinks_pass() {
    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"mkdir: { path: /srv/spool, mode: "1777" }"#,
        r#"file: { dest: /srv/data.txt, content: "x" }"#,
        "symlink: { path: /srv/link, target: data.txt }",
    ]));
    let manifest = f.sealed();
    // The symlink really is 0777 in the layer, so the rule had a choice.
    let layer = manifest["layers"].as_array().unwrap().last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let blob = std::fs::File::open(f.out().join("blobs/sha256").join(layer)).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob));
    let link = archive
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_str() == Some("srv/link"))
        .unwrap();
    assert_eq!(link.header().mode().unwrap() & 0o7777, 0o777);
}

/// World-writable device nodes and fifos in a base are violations (design:
/// "A world-writable device node is a violation"), found in the base's
/// layer; closed ones pass. A world-writable base file is found too.
#[test]
fn world_writable_devices_in_a_base_fail() {
    let node = |name: &str, kind: EntryType, mode: u32| Raw {
        mode: Some(mode),
        device: Some((1, 3)),
        ..layout::raw(name, kind)
    };
    let base = |f: &Fixture, mode: u32| {
        layout::write_layout(
            &f.dir().join("base"),
            &[layout::tar(&[
                layout::dir("dev"),
                node("dev/null", EntryType::Char, mode),
                node("dev/loop0", EntryType::Block, mode),
                Raw {
                    mode: Some(mode),
                    ..layout::raw("dev/initctl", EntryType::Fifo)
                },
            ])],
            Lies::default(),
        );
        f.recipe(&recipe(
            "oci:../base:t",
            &[("app", &[r#"file: { dest: /etc/motd, content: "hi" }"#])],
            "",
        ));
    };
    let f = Fixture::new();
    base(&f, 0o666);
    let lines = f.unsealed();
    for path in ["/dev/null", "/dev/loop0", "/dev/initctl"] {
        violation(&lines, "no-world-writable", path, "base");
    }
    assert_eq!(lines.len(), 3, "{lines:#?}");

    let f = Fixture::new();
    base(&f, 0o600);
    f.sealed();

    let f = Fixture::new();
    layout::write_layout(
        &f.dir().join("base"),
        &[layout::tar(&[
            layout::dir("srv"),
            Raw {
                mode: Some(0o666),
                ..layout::file("srv/open", b"x")
            },
        ])],
        Lies::default(),
    );
    let layer = layers_of(&f.dir().join("base"), "t")[0].clone();
    f.recipe(&recipe("oci:../base:t", &[], ""));
    let lines = f.unsealed();
    assert_eq!(
        violation(&lines, "no-world-writable", "/srv/open", "base"),
        layer
    );
}

// ---------------------------------------------------------------------------
// setuid

const SETUID: &str = r#"file: { dest: /usr/bin/ping, content: "ELF", mode: "4755" }"#;
const PING_ALLOWED: &str = "seal:
  allow:
    - { rule: setuid, path: /usr/bin/ping, reason: \"raw sockets for health checks\" }
";

/// A setuid file fails; allowed by name it passes, the image records the
/// exception, and `ingot audit` lists it with its reason.
#[test]
fn setuid_fails_unless_allowed() {
    let f = Fixture::new();
    f.recipe(&on_stemcell(&[SETUID]));
    let lines = f.unsealed();
    let digest = violation(&lines, "setuid", "/usr/bin/ping", "app");
    assert!(lines[0].contains("4755"), "{lines:#?}");
    assert_eq!(lines.len(), 1, "{lines:#?}");

    let f = Fixture::new();
    f.recipe(&format!("{}{PING_ALLOWED}", on_stemcell(&[SETUID])));
    let manifest = f.sealed();
    // The failed build named the very layer the allowed one wrote.
    assert_eq!(manifest["layers"][1]["digest"], digest.as_str());
    assert_eq!(
        manifest["annotations"]["dev.ingot.seal.allow"],
        r#"[{"path":"/usr/bin/ping","reason":"raw sockets for health checks","rule":"setuid"}]"#
    );

    // An auditor sees the image's own exception, and honours it only when
    // told to.
    let image = format!("oci:{}:1", f.out().display());
    let a = audit(&image);
    a.assert_unsealed("a declared exception is not proof");
    assert_eq!(
        a.report["declared"],
        serde_json::json!([{
            "rule": "setuid",
            "path": "/usr/bin/ping",
            "reason": "raw sockets for health checks",
            "accepted": false
        }])
    );
    let a = audit_with(&image, &["--accept-declared"]);
    a.assert_sealed("allowed setuid");
    assert_eq!(a.report["declared"][0]["accepted"], true);
    assert_eq!(
        a.allowed(),
        [(
            finding("setuid", "/usr/bin/ping", "app", &digest),
            "raw sockets for health checks".to_string()
        )]
    );
    let out = run(ingot().arg("audit").arg("--accept-declared").arg(&image));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("allowed: setuid: /usr/bin/ping")
                && l.ends_with("[raw sockets for health checks]")),
        "{text}"
    );
    assert!(
        text.contains("declared by the image: setuid: /usr/bin/ping [raw sockets for health checks] (accepted)"),
        "{text}"
    );
    assert!(text.contains(&format!("sealed: policy {POLICY}")), "{text}");
}

/// `audit` does not take an image's word for itself: an image that
/// declares its own SSH server allowed is not sealed until the auditor
/// accepts the exception, by flag or in an allow file of their own, which
/// may bind it to one image's digest.
#[test]
fn audit_honours_declared_exceptions_only_when_the_auditor_accepts_them() {
    let f = Fixture::new();
    let sshd = r#"file: { dest: /usr/sbin/sshd, content: "ELF", mode: "0755" }"#;
    f.recipe(&format!(
        "{}seal:\n  allow:\n    - {{ rule: no-remote-login, path: /usr/sbin/sshd, reason: \"trust me\" }}\n",
        on_stemcell(&[sshd])
    ));
    f.sealed();
    let image = format!("oci:{}:1", f.out().display());

    let a = audit(&image);
    a.assert_unsealed("a self-declared sshd");
    let digest = a.report["digest"].as_str().unwrap().to_string();
    assert_eq!(a.violations()[0].rule, "no-remote-login");
    assert_eq!(a.report["declared"][0]["accepted"], false);
    let text = stdout(&run(ingot().arg("audit").arg(&image)));
    assert!(
        text.contains(
            "declared by the image: no-remote-login: /usr/sbin/sshd [trust me] (not accepted"
        ),
        "{text}"
    );
    audit_with(&image, &["--accept-declared"]).assert_sealed("accepted");

    let allow = f.dir().join("allow.yaml");
    let write = |text: &str| std::fs::write(&allow, text).unwrap();
    let with_file = || audit_with(&image, &["--allow", allow.to_str().unwrap()]);
    write("- { rule: no-remote-login, path: /usr/sbin/sshd, reason: reviewed }\n");
    let a = with_file();
    a.assert_sealed("the auditor's own exception");
    assert_eq!(a.allowed()[0].1, "reviewed");
    write(&format!(
        "- {{ rule: no-remote-login, path: /usr/sbin/sshd, reason: reviewed, digest: \"{digest}\" }}\n"
    ));
    with_file().assert_sealed("bound to this image");
    let other = format!("sha256:{}", "0".repeat(64));
    write(&format!(
        "- {{ rule: no-remote-login, path: /usr/sbin/sshd, reason: reviewed, digest: \"{other}\" }}\n"
    ));
    with_file().assert_unsealed("bound to another image");

    for (bad, says) in [
        (
            "- { rule: no-such-rule, path: /x, reason: r }\n",
            "unknown rule",
        ),
        (
            "- { rule: setuid, path: /x, reason: r, extra: 1 }\n",
            "extra",
        ),
        (
            "- { rule: setuid, path: relative, reason: r }\n",
            "relative",
        ),
    ] {
        write(bad);
        let out = run(ingot().args(["audit", "--allow"]).arg(&allow).arg(&image));
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(allow.to_str().unwrap()) && stderr(&out).contains(says),
            "{bad}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn setgid_files_fail_setgid_directories_pass() {
    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"file: { dest: /usr/bin/wall, content: "ELF", mode: "2755" }"#,
        r#"file: { dest: /usr/bin/both, content: "ELF", mode: "6755" }"#,
    ]));
    let lines = f.unsealed();
    violation(&lines, "setuid", "/usr/bin/wall", "app");
    violation(&lines, "setuid", "/usr/bin/both", "app");
    assert_eq!(lines.len(), 2, "{lines:#?}");

    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"mkdir: { path: /var/mail, mode: "2775" }"#,
        r#"mkdir: { path: /srv/team, mode: "3775" }"#,
        r#"file: { dest: /usr/bin/tool, content: "ELF", mode: "0755" }"#,
    ]));
    f.sealed();
}

/// vfs_cap_data v2 granting cap_net_bind_service, as
/// `setcap cap_net_bind_service+ep` writes it.
const NET_BIND_SERVICE: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, // VFS_CAP_REVISION_2 | effective
    0x00, 0x04, 0x00, 0x00, // permitted: bit 10
    0x00, 0x00, 0x00, 0x00, // inheritable
    0x00, 0x00, 0x00, 0x00, // permitted, high word
    0x00, 0x00, 0x00, 0x00, // inheritable, high word
];

/// A base file with the `security.capability` xattr (a PAX record, as GNU
/// tar and Docker write it) grants privilege like setuid.
#[test]
fn file_capabilities_in_a_base_fail_unless_allowed() {
    let f = Fixture::new();
    let base = f.dir().join("base");
    layout::write_layout(
        &base,
        &[layout::tar(&[
            layout::dir("usr"),
            layout::dir("usr/bin"),
            layout::pax("SCHILY.xattr.security.capability", NET_BIND_SERVICE),
            Raw {
                mode: Some(0o755),
                ..layout::file("usr/bin/server", b"ELF")
            },
            Raw {
                mode: Some(0o755),
                ..layout::file("usr/bin/plain", b"ELF")
            },
        ])],
        Lies::default(),
    );
    let layer = layers_of(&base, "t")[0].clone();
    f.recipe(&recipe("oci:../base:t", &[], ""));
    let lines = f.unsealed();
    assert_eq!(
        violation(&lines, "setuid", "/usr/bin/server", "base"),
        layer
    );
    assert!(lines[0].contains("capabilities"), "{lines:#?}");
    assert_eq!(lines.len(), 1, "{lines:#?}");

    // The same, audited as a third-party image.
    let a = audit(&format!("oci:{}:t", base.display()));
    a.assert_unsealed("capabilities");
    assert_eq!(
        a.violations(),
        [finding("setuid", "/usr/bin/server", "#1", &layer)]
    );

    f.recipe(&recipe(
        "oci:../base:t",
        &[],
        "seal:\n  allow:\n    - { rule: setuid, path: /usr/bin/server, reason: binds port 80 }\n",
    ));
    f.sealed();
}

/// Modes and names in an image ingot did not build, as `chmod` and `ln`
/// leave them and umoci records them.
#[test]
fn modes_and_names_in_a_third_party_image_are_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_image(
        tmp.path(),
        "img",
        &[
            "mkdir -p usr/bin tmp var/mail srv/drop etc/ssh
             echo ELF > usr/bin/su; chmod 4755 usr/bin/su
             echo ELF > usr/bin/true; chmod 0755 usr/bin/true
             chmod 1777 tmp; chmod 2775 var/mail; chmod 0777 srv/drop
             echo log > srv/app.log; chmod 0666 srv/app.log
             ln -s ../usr/bin/true srv/link
             echo 'Host *' > etc/ssh/ssh_config",
            "mkdir -p etc/ssh; echo key > etc/ssh/ssh_host_rsa_key",
        ],
        "",
    );
    let layers = layers_of(&layout, "v1");
    let a = audit(&format!("oci:{}:v1", layout.display()));
    a.assert_unsealed("modes");
    assert_eq!(
        a.violations(),
        [
            finding(
                "no-ssh-host-keys",
                "/etc/ssh/ssh_host_rsa_key",
                "#2",
                &layers[1]
            ),
            finding("no-world-writable", "/srv/app.log", "#1", &layers[0]),
            finding("no-world-writable", "/srv/drop", "#1", &layers[0]),
            finding("setuid", "/usr/bin/su", "#1", &layers[0]),
        ]
    );
}

// ---------------------------------------------------------------------------
// Exceptions

/// An exception that matches nothing is an error at its own position, so
/// stale exceptions cannot rot.
#[test]
fn stale_exception_is_a_recipe_error_at_its_position() {
    // The first exception is used; the second, below it, is stale.
    let f = Fixture::new();
    let text = format!(
        "{}{PING_ALLOWED}    - {{ rule: setuid, path: /usr/bin/gone, reason: \"removed in 2.0\" }}\n",
        on_stemcell(&[SETUID])
    );
    f.recipe(&text);
    let err = f.recipe_error();
    let want = position(&f, &text, "{ rule: setuid, path: /usr/bin/gone");
    assert!(err.starts_with(&want), "expected {want:?}: {err}");
    assert!(
        err.contains("matches nothing") && err.contains("/usr/bin/gone"),
        "{err}"
    );

    // An exception for a path another rule flags matches nothing too.
    let f = Fixture::new();
    let text = format!(
        "{}seal:\n  allow:\n    - {{ rule: no-world-writable, path: /usr/bin/ping, reason: \"wrong rule\" }}\n",
        on_stemcell(&[SETUID])
    );
    f.recipe(&text);
    let err = f.recipe_error();
    let want = position(&f, &text, "{ rule: no-world-writable");
    assert!(err.starts_with(&want), "expected {want:?}: {err}");
}

/// `error: FILE:LINE:COL:` for where `needle` starts in the recipe `text`.
fn position(f: &Fixture, text: &str, needle: &str) -> String {
    let (line, col) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find(needle).map(|c| (i + 1, c + 1)))
        .unwrap_or_else(|| panic!("{needle:?} not in {text}"));
    format!("error: {}:{line}:{col}: ", f.recipe_file().display())
}

/// An unknown rule is refused when the recipe loads, before any build.
#[test]
fn exception_with_an_unknown_rule_is_a_recipe_error_at_load() {
    let f = Fixture::new();
    let text = format!(
        "{}seal:\n  allow:\n    - {{ rule: no-telnet, path: /usr/bin/ping, reason: \"legacy\" }}\n",
        on_stemcell(&[SETUID])
    );
    f.recipe(&text);
    let out = f.build();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let want = position(&f, &text, "no-telnet");
    assert!(err.starts_with(&want), "expected {want:?}: {err}");
    assert!(err.contains("no-telnet") && err.contains("setuid"), "{err}");
    assert!(!err.contains("building"), "refused before building: {err}");
    assert!(!f.out().exists());

    // Nor without a reason.
    f.recipe(&format!(
        "{}seal:\n  allow:\n    - {{ rule: setuid, path: /usr/bin/ping, reason: \" \" }}\n",
        on_stemcell(&[SETUID])
    ));
    let err = f.recipe_error();
    assert!(err.contains("reason"), "{err}");
}

// ---------------------------------------------------------------------------
// Whiteouts: the rules see the merged filesystem

/// An umoci base at `dir/base:v1` with /usr/sbin/sshd and a dpkg database
/// listing openssh-server; returns its one layer's digest.
fn base_with_sshd(dir: &Path) -> String {
    let base = umoci_image(
        dir,
        "base",
        &[&format!(
            "mkdir -p usr/sbin usr/bin var/lib/dpkg
             echo ELF > usr/sbin/sshd; chmod 755 usr/sbin/sshd
             echo ELF > usr/bin/tool
             printf '%s' '{DPKG_SERVER}' > var/lib/dpkg/status"
        )],
        "",
    );
    layers_of(&base, "v1")[0].clone()
}

#[test]
fn ssh_server_in_a_base_fails_unless_removed() {
    let f = Fixture::new();
    let base_layer = base_with_sshd(f.dir());
    f.recipe(&recipe(
        "oci:../base:v1",
        &[("app", &[r#"file: { dest: /etc/motd, content: "hi" }"#])],
        "",
    ));
    let lines = f.unsealed();
    for path in ["/usr/sbin/sshd", "/var/lib/dpkg/status"] {
        assert_eq!(
            violation(&lines, "no-remote-login", path, "base"),
            base_layer
        );
    }
    assert_eq!(lines.len(), 2, "{lines:#?}");

    // Removed, and the database rewritten by the recipe: sealed.
    f.file("files/status", DPKG_CLIENT_ONLY);
    f.recipe(&recipe(
        "oci:../base:v1",
        &[(
            "prune",
            &[
                "remove: { path: /usr/sbin/sshd }",
                "copy: { src: files/status, dest: /var/lib/dpkg/status }",
            ],
        )],
        "",
    ));
    f.sealed();

    // The whole directory replaced (an opaque whiteout): sealed.
    std::fs::remove_dir_all(f.out()).unwrap();
    f.recipe(&recipe(
        "oci:../base:v1",
        &[(
            "prune",
            &[
                "remove: { path: /usr/sbin }",
                "mkdir: { path: /usr/sbin }",
                r#"file: { dest: /usr/sbin/app, content: "ELF", mode: "0755" }"#,
                "remove: { path: /var/lib/dpkg }",
            ],
        )],
        "",
    ));
    f.sealed();
}

/// A server removed in one layer and added again in a later one is found
/// in the later layer; so is a database the recipe rewrites with one.
#[test]
fn ssh_server_added_again_fails_in_the_later_layer() {
    let f = Fixture::new();
    let base_layer = base_with_sshd(f.dir());
    f.file("files/status", DPKG_SERVER);
    f.recipe(&recipe(
        "oci:../base:v1",
        &[
            (
                "prune",
                &[
                    "remove: { path: /usr/sbin/sshd }",
                    "remove: { path: /var/lib/dpkg/status }",
                ],
            ),
            (
                "readd",
                &[
                    r#"file: { dest: /usr/sbin/sshd, content: "ELF2", mode: "0755" }"#,
                    "copy: { src: files/status, dest: /var/lib/dpkg/status }",
                ],
            ),
        ],
        "",
    ));
    let lines = f.unsealed();
    for path in ["/usr/sbin/sshd", "/var/lib/dpkg/status"] {
        let digest = violation(&lines, "no-remote-login", path, "readd");
        assert_ne!(digest, base_layer);
    }
    assert_eq!(lines.len(), 2, "{lines:#?}");
}

// ---------------------------------------------------------------------------
// Audit of third-party images

/// An umoci image with an SSH server in one layer and authorized_keys in
/// the next; returns the layout.
fn planted_image(dir: &Path) -> PathBuf {
    umoci_image(
        dir,
        "img",
        &[
            "mkdir -p usr/sbin etc; echo ELF > usr/sbin/sshd; chmod 755 usr/sbin/sshd; echo hi > etc/motd",
            "mkdir -p root/.ssh; echo 'ssh-ed25519 AAAA intruder' > root/.ssh/authorized_keys",
        ],
        "--config.cmd /usr/sbin/sshd",
    )
}

#[test]
fn audit_finds_planted_sshd_and_authorized_keys_with_their_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = planted_image(tmp.path());
    let layers = layers_of(&layout, "v1");
    assert_eq!(layers.len(), 2);
    let image = format!("oci:{}:v1", layout.display());
    let a = audit(&image);
    a.assert_unsealed("planted");
    assert_eq!(
        a.violations(),
        [
            // The config's Cmd starts it.
            finding("no-remote-login", "", "", ""),
            finding("no-remote-login", "/usr/sbin/sshd", "#1", &layers[0]),
            finding(
                "no-authorized-keys",
                "/root/.ssh/authorized_keys",
                "#2",
                &layers[1]
            ),
        ]
    );
    assert_eq!(a.report["policy"], POLICY);
    assert_eq!(a.report["rules"].as_array().unwrap().len(), 9);

    // The text report says the same, one line each, and the verdict.
    let out = run(ingot().arg("audit").arg(&image));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        format!(
            "violation: no-remote-login: /usr/sbin/sshd (layer #1 {})",
            layers[0]
        ),
        format!(
            "violation: no-authorized-keys: /root/.ssh/authorized_keys (layer #2 {})",
            layers[1]
        ),
        "NOT SEALED".to_string(),
    ] {
        assert!(text.contains(&needle), "{needle:?} not in: {text}");
    }
}

/// `dir/img.tar`: the planted image exported by skopeo.
fn export(layout: &Path) -> PathBuf {
    require("skopeo");
    let archive = layout.with_extension("tar");
    let out = run(Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:v1", layout.display()))
        .arg(format!("docker-archive:{}:img:v1", archive.display())));
    assert!(out.status.success(), "skopeo copy: {}", stderr(&out));
    archive
}

#[test]
fn audit_of_a_docker_archive_finds_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = planted_image(tmp.path());
    let archive = export(&layout);
    let from_layout = audit(&format!("oci:{}:v1", layout.display()));
    let a = audit(&format!("docker-archive:{}", archive.display()));
    a.assert_unsealed("archive");
    let strip = |v: Vec<Found>| -> Vec<(String, String, String)> {
        v.into_iter().map(|f| (f.rule, f.path, f.layer)).collect()
    };
    assert_eq!(strip(a.violations()), strip(from_layout.violations()));
    assert_eq!(a.violations().len(), 3);
}

/// An auditor must find the layer a finding names in the archive audited.
/// The archive holds each layer as an uncompressed tar, so its identity
/// there is the diff_id (skopeo names the file by it); a digest of ingot's
/// own re-compression exists nowhere.
#[test]
fn audit_of_a_docker_archive_names_layers_the_archive_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = planted_image(tmp.path());
    let archive = export(&layout);
    let manifest = manifest_of(&layout, "v1");
    let config = blob(&layout, &manifest["config"]["digest"]);
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    let a = audit(&format!("docker-archive:{}", archive.display()));
    let digests: Vec<String> = a
        .violations()
        .into_iter()
        .map(|f| f.digest)
        .filter(|d| !d.is_empty())
        .collect();
    assert_eq!(digests, diff_ids);
}

// ---------------------------------------------------------------------------
// No false positives; the policy recorded

/// Builds `recipe` into `out`, audits the result: sealed, nothing allowed.
fn build_and_audit(recipe: &Path, out: &Path) {
    common::build(recipe, out);
    let a = audit(&format!("oci:{}", out.display()));
    a.assert_sealed(&recipe.display().to_string());
    assert_eq!(a.allowed(), [], "{}", recipe.display());
}

/// An audit's report names the image as given and the manifest digest it
/// read, in words and in JSON.
#[test]
fn audit_names_the_image_and_digest_it_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("hello");
    let digest = common::build(&common::example("hello"), &out);
    let image = format!("oci:{}:1.2.0", out.display());
    let text = stdout(&run(ingot().arg("audit").arg(&image)));
    assert!(
        text.starts_with(&format!("image: {image}\nmanifest: {digest}\n")),
        "{text}"
    );
    let json: Value =
        serde_json::from_slice(&run(ingot().args(["audit", "--json"]).arg(&image)).stdout).unwrap();
    assert_eq!(
        (json["image"].as_str(), json["digest"].as_str()),
        (Some(image.as_str()), Some(digest.as_str()))
    );
    assert_eq!(json["digest_of"], "manifest");
}

#[test]
fn every_example_recipe_and_the_stemcell_audit_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let mut recipes: Vec<PathBuf> = std::fs::read_dir(common::repo().join("recipes"))
        .unwrap()
        .map(|e| e.unwrap().path().join("recipe.yaml"))
        .filter(|p| p.is_file())
        // A recipe on a Debian stemcell fetches its packages from Debian's
        // snapshot archive: tests/readme.rs builds it on a local archive.
        .filter(|p| {
            !std::fs::read_to_string(p)
                .unwrap()
                .contains("base: stemcell:debian")
        })
        .collect();
    recipes.sort();
    assert!(recipes.len() >= 2, "{recipes:?}");
    for (i, recipe) in recipes.iter().enumerate() {
        build_and_audit(recipe, &tmp.path().join(format!("out{i}")));
    }
    let stemcell = tmp.path().join("stemcell/recipe.yaml");
    std::fs::create_dir_all(stemcell.parent().unwrap()).unwrap();
    std::fs::write(
        &stemcell,
        "name: stemcell\nversion: '1'\nbase: stemcell:static\n",
    )
    .unwrap();
    build_and_audit(&stemcell, &tmp.path().join("stemcell-out"));
}

/// Every manifest ingot writes records the policy it passed: the image's,
/// and those of the stemcell and `recipe:` bases below it.
#[test]
fn every_built_manifest_carries_the_seal_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = tmp.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    };
    write(
        "lower/recipe.yaml",
        &on_stemcell(&[r#"file: { dest: /etc/lower, content: "x" }"#]),
    );
    let upper = write(
        "upper/recipe.yaml",
        &recipe(
            "recipe:../lower/recipe.yaml",
            &[("u", &[SETUID])],
            PING_ALLOWED,
        ),
    );
    // Bases are built too, but their manifests stay out of the image's
    // layout: build the lower recipe and the stemcell on their own.
    let mut built = vec![
        (upper, tmp.path().join("o-upper")),
        (
            tmp.path().join("lower/recipe.yaml"),
            tmp.path().join("o-lower"),
        ),
        (
            common::repo().join("base-images/static/1.0.0/recipe.yaml"),
            tmp.path().join("o-static"),
        ),
    ];
    for name in ["hello", "everything"] {
        built.push((
            common::repo()
                .join("recipes")
                .join(name)
                .join("recipe.yaml"),
            tmp.path().join(format!("o-{name}")),
        ));
    }
    for (recipe, out) in &built {
        common::build(recipe, out);
        let manifests = manifests_in(out);
        assert_eq!(manifests.len(), 1, "{}", out.display());
        for m in manifests {
            assert_eq!(
                m["annotations"]["dev.ingot.seal.policy"],
                POLICY,
                "{}: {m}",
                recipe.display()
            );
        }
    }
    // Only the image that declared exceptions records them.
    let upper = manifest_of(&built[0].1, "1");
    assert!(upper["annotations"]["dev.ingot.seal.allow"].is_string());
    let hello = manifest_of(&built[3].1, "1.2.0");
    assert!(hello["annotations"].get("dev.ingot.seal.allow").is_none());
}

/// `audit --list-rules` and `audit --help` come from the rule table: the
/// JSON lists every rule the reports name, and the help shows each one's
/// id and whole description.
#[test]
fn audit_lists_its_rules_from_the_table() {
    let o = run(ingot().args(["audit", "--list-rules", "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let listed: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rules = listed["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "no-remote-login",
            "no-ssh-host-keys",
            "no-authorized-keys",
            "no-empty-password",
            "no-ssh-port",
            "no-private-keys",
            "scanned-archives",
            "no-world-writable",
            "setuid"
        ]
    );
    assert_eq!(listed["policy"], POLICY);
    assert!(listed["scanner"].is_string());

    let text = stdout(&run(ingot().args(["audit", "--list-rules"])));
    let help = stdout(&run(ingot().args(["audit", "--help"])));
    for shown in [&text, &help] {
        for rule in rules {
            let id = rule["id"].as_str().unwrap();
            // The rule's line starts with its id; its description runs on.
            let from = shown
                .lines()
                .position(|l| l.split_whitespace().next() == Some(id))
                .unwrap_or_else(|| panic!("{id} is not shown:\n{shown}"));
            let rest = shown.lines().skip(from).collect::<Vec<_>>().join(" ");
            let words: Vec<&str> = rest.split_whitespace().collect();
            let at = 0;
            let description: Vec<&str> = rule["description"]
                .as_str()
                .unwrap()
                .split_whitespace()
                .collect();
            assert_eq!(
                words[at + 1..at + 1 + description.len()],
                description[..],
                "{id}'s description is not shown whole:\n{shown}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// hardlinks: one file, several names

const KEY: &[u8] = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----\n";

/// A two-layer image at `dir/img`, tag `t`: `first`, then a layer that
/// removes `removed` (whiteout), as a base would ship it.
fn linked_image(dir: &Path, first: &[Raw], removed: &str) -> PathBuf {
    let (parent, name) = removed.rsplit_once('/').unwrap();
    let layout_dir = dir.join("img");
    layout::write_layout(
        &layout_dir,
        &[
            layout::tar(first),
            layout::tar(&[layout::file(format!("{parent}/.wh.{name}"), b"")]),
        ],
        Lies::default(),
    );
    layout_dir
}

/// What `umoci unpack` (Go's archive/tar, as runtimes read layers) leaves
/// at `path`: its bytes and mode.
fn unpacked(layout_dir: &Path, path: &str) -> (Vec<u8>, u32) {
    use std::os::unix::fs::PermissionsExt as _;
    require("umoci");
    let bundle = layout_dir.with_extension("bundle");
    let out = run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:t", layout_dir.display()))
        .arg(&bundle));
    assert!(out.status.success(), "umoci unpack: {}", stderr(&out));
    let file = bundle.join("rootfs").join(path);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    (std::fs::read(&file).unwrap(), mode)
}

/// A hardlink made to a file holds the file's bytes and bits under its own
/// name, and keeps them when an upper layer removes the file's first name:
/// a key, an SSH server and a setuid bit each stay in the image the runtime
/// unpacks (checked with umoci), and each is found at the link.
#[test]
fn hardlinks_carry_their_file_past_a_whiteout() {
    let tmp = tempfile::tempdir().unwrap();
    let link = |name: &str, target: &str, mode: u32| Raw {
        mode: Some(mode),
        ..layout::hardlink(name, target)
    };

    let dir = tmp.path().join("key");
    let image = linked_image(
        &dir,
        &[
            layout::dir("etc"),
            layout::file("etc/key", KEY),
            layout::dir("srv"),
            link("srv/notes", "etc/key", 0o644),
        ],
        "etc/key",
    );
    assert_eq!(unpacked(&image, "srv/notes").0, KEY);
    let a = audit(&format!("oci:{}:t", image.display()));
    a.assert_unsealed("a key behind a hardlink");
    let rules: Vec<(String, String)> = a
        .violations()
        .into_iter()
        .map(|f| (f.rule, f.path))
        .collect();
    assert_eq!(rules, [("no-private-keys".into(), "/srv/notes".into())]);

    let dir = tmp.path().join("sshd");
    let image = linked_image(
        &dir,
        &[
            layout::dir("usr"),
            layout::dir("usr/sbin"),
            layout::file("usr/sbin/sshd", b"\x7fELF OpenSSH"),
            layout::dir("usr/share"),
            link("usr/share/readme", "usr/sbin/sshd", 0o644),
        ],
        "usr/sbin/sshd",
    );
    assert_eq!(unpacked(&image, "usr/share/readme").0, b"\x7fELF OpenSSH");
    let a = audit(&format!("oci:{}:t", image.display()));
    a.assert_unsealed("an SSH server behind a hardlink");
    assert_eq!(a.violations()[0].rule, "no-remote-login");
    assert_eq!(a.violations()[0].path, "/usr/share/readme");

    let dir = tmp.path().join("setuid");
    let image = linked_image(
        &dir,
        &[
            layout::dir("usr"),
            layout::dir("usr/bin"),
            Raw {
                mode: Some(0o4755),
                ..layout::file("usr/bin/tool", b"ELF")
            },
            link("usr/bin/other", "usr/bin/tool", 0o755),
        ],
        "usr/bin/tool",
    );
    // umoci keeps the file's mode; containerd would apply the link's. The
    // seal counts the setuid bit either way.
    assert_eq!(unpacked(&image, "usr/bin/other").1 & 0o4000, 0o4000);
    let a = audit(&format!("oci:{}:t", image.display()));
    a.assert_unsealed("a setuid file behind a hardlink");
    assert_eq!(a.violations()[0].rule, "setuid");
    assert_eq!(a.violations()[0].path, "/usr/bin/other");
}

/// A whiteout through a symlinked directory (`/sbin/.wh.sshd` with `/sbin
/// -> usr/sbin`) removes the file the symlink leads to, as runtimes
/// resolve it (checked with umoci): what it removed is not reported.
#[test]
fn whiteouts_through_symlinked_directories_remove_what_runtimes_remove() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("img");
    layout::write_layout(
        &image,
        &[
            layout::tar(&[
                layout::dir("usr"),
                layout::dir("usr/sbin"),
                layout::file("usr/sbin/sshd", b"ELF"),
                Raw {
                    link: b"usr/sbin".to_vec(),
                    ..layout::raw("sbin", EntryType::Symlink)
                },
            ]),
            layout::tar(&[layout::file("sbin/.wh.sshd", b"")]),
        ],
        Lies::default(),
    );
    require("umoci");
    let bundle = tmp.path().join("bundle");
    let out = run(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:t", image.display()))
        .arg(&bundle));
    assert!(out.status.success(), "umoci unpack: {}", stderr(&out));
    assert!(
        !bundle.join("rootfs/usr/sbin/sshd").exists(),
        "the runtime keeps sshd; the whiteout test tests nothing"
    );
    audit(&format!("oci:{}:t", image.display())).assert_sealed("sshd removed through /sbin");
}

/// An sshd_config that hands sshd keys from a command at login is a way in
/// as much as a keys file is.
#[test]
fn authorized_keys_command_fails_the_build() {
    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"file: { dest: /etc/ssh/sshd_config, content: "AuthorizedKeysCommand=/usr/bin/fetch-keys %u\n" }"#,
    ]));
    let lines = f.unsealed();
    violation(&lines, "no-authorized-keys", "/etc/ssh/sshd_config", "app");
    assert!(lines[0].contains("AuthorizedKeysCommand"), "{lines:#?}");
    assert_eq!(lines.len(), 1, "{lines:#?}");

    let f = Fixture::new();
    f.recipe(&on_stemcell(&[
        r#"file: { dest: /etc/ssh/sshd_config, content: "AuthorizedKeysCommand none\n" }"#,
    ]));
    f.sealed();
}
