//! The seal against Debian's real remote-login servers and clients, not
//! stand-ins: the binaries come from Debian's archive (`apt-get download`,
//! as apt is configured; fetched once into `CARGO_TARGET_TMPDIR` and kept),
//! so the content scan's signatures are checked against what the packages
//! really ship, whatever versions the archive holds.
//!
//! Servers renamed to innocent paths, and packed in gzip, xz, zstd, tar and
//! zip (nested), must be found by content both in an image umoci made
//! (`ingot audit`) and in one a recipe builds (`ingot build` fails); each
//! planting is confirmed against `umoci unpack`, as a runtime would see it.
//! The same suites' clients must pass, and busybox's telnetd applet counts
//! only when something starts it.

mod common;

use std::io::{Cursor, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use common::{ingot, require, run, stderr, stdout};

// ---------------------------------------------------------------------------
// Debian's packages

/// What the tests take from Debian's archive: remote-login servers and
/// clients, and a userland whose libraries name key formats and carry
/// self-test keys (libssl, libgnutls), which must pass.
const PACKAGES: [&str; 29] = [
    "openssh-server",
    "openssh-client",
    "dropbear-bin",
    "tinysshd",
    "inetutils-telnetd",
    "busybox",
    "busybox-static",
    "mosh",
    "xrdp",
    "libc6",
    "libssl3",
    "openssl",
    "libgnutls30",
    "ca-certificates",
    "coreutils",
    "bash",
    "dpkg",
    "perl-base",
    "gpgv",
    "apt",
    "libapt-pkg6.0",
    "libsystemd0",
    "libgcrypt20",
    "libnettle8",
    "libhogweed6",
    "libp11-kit0",
    "zlib1g",
    "python3.11-minimal",
    "libpython3.11-minimal",
];

/// The userland among [`PACKAGES`].
const USERLAND: std::ops::RangeFrom<usize> = 9..;

/// The packages, each unpacked (`dpkg-deb -x`) into `ROOT/PACKAGE`.
/// Downloaded and unpacked on first use, once per cache, one thread at a
/// time; a tree is renamed into place only once whole, so an interrupted
/// run leaves nothing a later one would take for a package.
fn debian() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        require("dpkg-deb");
        let trees = common::debian::cache().join("x");
        std::fs::create_dir_all(&trees).unwrap();
        let missing: Vec<&str> = PACKAGES
            .into_iter()
            .filter(|p| !trees.join(p).is_dir())
            .collect();
        for (package, deb) in missing.iter().zip(common::debian::debs(&missing)) {
            let partial = common::debian::scratch();
            let tree = partial.path().join("tree");
            let out = run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tree));
            assert!(
                out.status.success(),
                "dpkg-deb -x {}: {}",
                deb.display(),
                stderr(&out)
            );
            std::fs::rename(&tree, trees.join(package)).unwrap();
        }
        trees
    })
}

/// A file of a Debian package, as the package ships it.
fn debian_file(package: &str, path: &str) -> Vec<u8> {
    let file = debian().join(package).join(path);
    std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// A remote-login server a Debian package ships.
#[derive(Clone, Copy)]
struct Server {
    package: &'static str,
    path: &'static str,
    /// The server as the seal names it.
    name: &'static str,
}

impl Server {
    fn bytes(self) -> Vec<u8> {
        debian_file(self.package, self.path)
    }
}

const SSHD: Server = Server {
    package: "openssh-server",
    path: "usr/sbin/sshd",
    name: "OpenSSH sshd",
};
const DROPBEAR: Server = Server {
    package: "dropbear-bin",
    path: "usr/sbin/dropbear",
    name: "dropbear",
};
const TINYSSHD: Server = Server {
    package: "tinysshd",
    path: "usr/sbin/tinysshd",
    name: "tinysshd",
};
const TELNETD: Server = Server {
    package: "inetutils-telnetd",
    path: "usr/sbin/telnetd",
    name: "telnetd",
};
const MOSH_SERVER: Server = Server {
    package: "mosh",
    path: "usr/bin/mosh-server",
    name: "mosh-server",
};
const XRDP: Server = Server {
    package: "xrdp",
    path: "usr/sbin/xrdp",
    name: "xrdp",
};

/// Each server under a name the seal does not know (`SSHD` is not `sshd`).
const RENAMED: [(&str, Server); 6] = [
    ("/usr/local/bin/app-helper", SSHD),
    ("/opt/SSHD", DROPBEAR),
    ("/usr/lib/x/agent", TINYSSHD),
    ("/srv/t", TELNETD),
    ("/srv/m", MOSH_SERVER),
    ("/srv/r", XRDP),
];

/// Debian's clients of the same suites: (package, path in it, image path).
const CLIENTS: [(&str, &str, &str); 9] = [
    ("openssh-client", "usr/bin/ssh", "/usr/bin/ssh"),
    ("openssh-client", "usr/bin/scp", "/usr/bin/scp"),
    ("openssh-client", "usr/bin/sftp", "/usr/bin/sftp"),
    (
        "openssh-client",
        "usr/bin/ssh-keygen",
        "/usr/bin/ssh-keygen",
    ),
    ("openssh-client", "usr/bin/ssh-agent", "/usr/bin/ssh-agent"),
    ("dropbear-bin", "usr/bin/dbclient", "/usr/bin/dbclient"),
    (
        "dropbear-bin",
        "usr/bin/dropbearkey",
        "/usr/bin/dropbearkey",
    ),
    ("mosh", "usr/bin/mosh-client", "/usr/bin/mosh-client"),
    ("busybox", "bin/busybox", "/bin/busybox"),
];

// ---------------------------------------------------------------------------
// Archives, made here

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(data).unwrap();
    xz.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

/// A tar of `members`, each a file of mode 0755.
fn tar(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in members {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        tar.append_data(&mut header, path, *data).unwrap();
    }
    tar.into_inner().unwrap()
}

/// A zip of `members`, each deflated.
fn zip(members: &[(&str, &[u8])]) -> Vec<u8> {
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (path, data) in members {
        zip.start_file(*path, options).unwrap();
        zip.write_all(data).unwrap();
    }
    let bytes = zip.finish().unwrap().into_inner();
    // What the test claims: the members really are deflated.
    let mut archive = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
    assert_eq!(archive.len(), members.len());
    for (i, (_, data)) in members.iter().enumerate() {
        let mut member = archive.by_index(i).unwrap();
        assert_eq!(member.compression(), zip::CompressionMethod::Deflated);
        let mut back = Vec::new();
        member.read_to_end(&mut back).unwrap();
        assert!(back == *data, "zip member {i} reads back other bytes");
    }
    bytes
}

/// A server packed in an archive at an innocent path.
struct Packed {
    path: &'static str,
    bytes: Vec<u8>,
    server: Server,
    /// The server's member path inside it (`!/` between levels); None for
    /// a bare compressed stream, which has no members.
    member: Option<&'static str>,
}

/// The servers packed every way the scan opens, made once.
fn packed() -> &'static [Packed] {
    static PACKED: OnceLock<Vec<Packed>> = OnceLock::new();
    PACKED.get_or_init(|| {
        let sshd = SSHD.bytes();
        let mosh_tgz = gzip(&tar(&[("usr/bin/mosh-server", &MOSH_SERVER.bytes())]));
        vec![
            Packed {
                path: "/usr/share/doc/app/x.gz",
                bytes: gzip(&sshd),
                server: SSHD,
                member: None,
            },
            Packed {
                path: "/var/cache/app/data.xz",
                bytes: xz(&DROPBEAR.bytes()),
                server: DROPBEAR,
                member: None,
            },
            Packed {
                path: "/var/lib/app/blob.zst",
                bytes: zstd(&TINYSSHD.bytes()),
                server: TINYSSHD,
                member: None,
            },
            Packed {
                path: "/opt/app/assets.tar",
                bytes: tar(&[("README", b"assets\n"), ("bin/daemon", &TELNETD.bytes())]),
                server: TELNETD,
                member: Some("bin/daemon"),
            },
            Packed {
                path: "/opt/app/bundle.tar.gz",
                bytes: gzip(&tar(&[("usr/sbin/sshd", &sshd)])),
                server: SSHD,
                member: Some("usr/sbin/sshd"),
            },
            Packed {
                path: "/srv/app/plugins.zip",
                bytes: zip(&[("notes.txt", b"plugins\n"), ("tools.tar.gz", &mosh_tgz)]),
                server: MOSH_SERVER,
                member: Some("tools.tar.gz!/usr/bin/mosh-server"),
            },
        ]
    })
}

// ---------------------------------------------------------------------------
// Images and what is said of them

/// Runs `cmd`, which must succeed.
fn ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {} {}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// An OCI layout at `dir/NAME`, tag `v1`, made by umoci with one layer
/// holding `files` (path, bytes, mode), then `umoci config CONFIG` if any.
fn umoci_image(dir: &Path, name: &str, files: &[(&str, &[u8], u32)], config: &[&str]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    require("umoci");
    let layout = dir.join(name);
    let image = format!("{}:v1", layout.display());
    ok(Command::new("umoci")
        .args(["init", "--layout"])
        .arg(&layout));
    ok(Command::new("umoci").args(["new", "--image", &image]));
    let root = tempfile::tempdir_in(dir).unwrap();
    // The layer's `/` entry takes this directory's mode.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (path, bytes, mode) in files {
        let file = root.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, bytes).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    ok(Command::new("umoci")
        .args(["insert", "--image", &image])
        .arg(root.path())
        .arg("/"));
    if !config.is_empty() {
        ok(Command::new("umoci")
            .args(["config", "--image", &image])
            .args(config));
    }
    layout
}

/// The layer digests of the layout's image tagged `tag`, bottom first.
fn layers(layout: &Path, tag: &str) -> Vec<String> {
    let index = common::read_json(&layout.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no tag {tag} in {index}"));
    let manifest = common::read_json(&common::blob_path(
        layout,
        entry["digest"].as_str().unwrap(),
    ));
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect()
}

/// The root filesystem `umoci unpack` (Go's archive/tar, as runtimes read
/// layers) makes of the layout's image tagged `tag`.
fn unpack(layout: &Path, tag: &str) -> PathBuf {
    require("umoci");
    let bundle = layout.with_extension("bundle");
    ok(Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&bundle));
    bundle.join("rootfs")
}

/// Asserts the runtime's root filesystem holds `bytes` at `path`, with
/// `mode`.
fn assert_unpacked(rootfs: &Path, path: &str, bytes: &[u8], mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    let file = rootfs.join(path.trim_start_matches('/'));
    let got = std::fs::read(&file).unwrap_or_else(|e| panic!("{path} not unpacked: {e}"));
    assert!(got == bytes, "{path} unpacked with other bytes");
    let got_mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
    assert_eq!(got_mode, mode, "{path}");
}

/// One violation: rule, path ("" for the image config), layer name and
/// digest ("" for none), detail.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Violation {
    rule: String,
    path: String,
    layer: String,
    digest: String,
    detail: String,
}

/// `ingot audit --json IMAGE`: its exit code and violations, by path.
fn audit(image: &str) -> (Option<i32>, Vec<Violation>) {
    let out = run(ingot().args(["audit", "--json", image]));
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("audit {image}: {e}: {} {}", stdout(&out), stderr(&out)));
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut violations: Vec<Violation> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| Violation {
            rule: text(&v["rule"]),
            path: text(&v["path"]),
            layer: text(&v["layer"]["name"]),
            digest: text(&v["layer"]["digest"]),
            detail: text(&v["detail"]),
        })
        .collect();
    violations.sort();
    match out.status.code() {
        Some(0) => assert!(violations.is_empty(), "{report}"),
        _ => assert!(
            stderr(&out).contains("is not sealed"),
            "audit {image}: {}",
            stderr(&out)
        ),
    }
    (out.status.code(), violations)
}

/// A `no-remote-login` violation at `path` of layer `#1`.
fn remote_login(path: &str, digest: &str, detail: String) -> Violation {
    Violation {
        rule: "no-remote-login".into(),
        path: path.into(),
        layer: "#1".into(),
        digest: digest.into(),
        detail,
    }
}

/// What the seal says of a server found by its content in a file.
fn by_content(server: Server) -> String {
    format!("the {} server, by its content", server.name)
}

/// The detail of a server found in an archive: the member's path, or for
/// a bare compressed stream, which has no member, that it was decompressed.
fn packed_detail(p: &Packed) -> String {
    match p.member {
        Some(member) => format!("{}, inside it at {member}", by_content(p.server)),
        None => format!("{}, once decompressed", by_content(p.server)),
    }
}

/// A recipe named `app`, version `1`, on the static stemcell, with one
/// layer `app` of `steps` (one YAML flow map each), then `tail`.
fn recipe(steps: &[String], tail: &str) -> String {
    let mut text =
        "name: app\nversion: '1'\nbase: stemcell:static\nlayers:\n  - name: app\n    steps:\n"
            .to_string();
    for step in steps {
        text.push_str(&format!("      - {step}\n"));
    }
    text.push_str(tail);
    text
}

/// A `copy` of `files/NAME` to `dest`, mode 0755.
fn copy(name: &str, dest: &str) -> String {
    format!(r#"copy: {{ src: files/{name}, dest: {dest}, mode: "0755" }}"#)
}

/// A recipe in a temp dir: `app/recipe.yaml`, its files in `app/files/`,
/// built into `out/app`.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            tmp: tempfile::Builder::new()
                .prefix("ingot-seal-real-")
                .tempdir()
                .unwrap(),
        }
    }

    /// Writes `bytes` at `app/files/NAME`.
    fn file(&self, name: &str, bytes: &[u8]) {
        let path = self.tmp.path().join("app/files").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    fn out(&self) -> PathBuf {
        self.tmp.path().join("out/app")
    }

    /// Writes the recipe and builds it, in place of any earlier build.
    fn build(&self, recipe: &str) -> Output {
        if self.out().exists() {
            std::fs::remove_dir_all(self.out()).unwrap();
        }
        let path = self.tmp.path().join("app/recipe.yaml");
        std::fs::write(&path, recipe).unwrap();
        common::try_build(&path, self.out())
    }

    /// Builds `recipe`, which must pass the seal, and audits the image.
    fn sealed(&self, recipe: &str) {
        let out = self.build(recipe);
        assert!(
            out.status.success(),
            "the build should pass the seal: {}",
            stderr(&out)
        );
        let (code, violations) = audit(&format!("oci:{}:1", self.out().display()));
        assert_eq!((code, violations), (Some(0), vec![]));
    }

    /// Builds `recipe`, which must fail the seal with exit 1 and write
    /// nothing; returns the violation lines, sorted.
    fn unsealed(&self, recipe: &str) -> Vec<String> {
        let out = self.build(recipe);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "stderr: {err}");
        assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
        assert!(!self.out().exists(), "an unsealed image was written");
        let mut lines: Vec<String> = err
            .lines()
            .skip_while(|l| !l.contains("the image is not sealed"))
            .skip(1)
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        assert!(
            err.contains(&format!(
                "the image is not sealed ({} violations;",
                lines.len()
            )),
            "{err}"
        );
        lines.sort();
        lines
    }
}

/// Asserts `lines` has one `no-remote-login` line at `path`, in layer
/// `app`, ending in `detail`.
fn assert_line(lines: &[String], path: &str, detail: &str) {
    let prefix = format!("no-remote-login: {path} (layer app sha256:");
    let suffix = format!("): {detail}");
    let matching: Vec<&String> = lines.iter().filter(|l| l.starts_with(&prefix)).collect();
    assert!(
        matching.len() == 1 && matching[0].ends_with(&suffix),
        "expected one {prefix}…{suffix} among {lines:#?}"
    );
}

// ---------------------------------------------------------------------------
// Servers, by content

/// Debian's sshd, dropbear, tinysshd, inetutils telnetd, mosh-server and
/// xrdp, each renamed to a path and name the seal does not know (an image
/// umoci made, one layer, all 0755), are each found by their content:
/// `ingot audit` reports exactly one `no-remote-login` violation per file,
/// naming the server, and nothing else. umoci unpacks each file byte for
/// byte, so the runtime would have the server to run.
#[test]
fn real_servers_renamed_are_found_by_content() {
    let tmp = tempfile::tempdir().unwrap();
    let servers: Vec<(&str, Vec<u8>, Server)> = RENAMED
        .iter()
        .map(|(path, server)| (*path, server.bytes(), *server))
        .collect();
    let files: Vec<(&str, &[u8], u32)> = servers
        .iter()
        .map(|(path, bytes, _)| (*path, bytes.as_slice(), 0o755))
        .collect();
    let layout = umoci_image(tmp.path(), "img", &files, &[]);
    let layer = &layers(&layout, "v1")[0];

    let rootfs = unpack(&layout, "v1");
    for (path, bytes, _) in &servers {
        assert_unpacked(&rootfs, path, bytes, 0o755);
    }

    let (code, violations) = audit(&format!("oci:{}:v1", layout.display()));
    assert_eq!(code, Some(1));
    let mut expected: Vec<Violation> = servers
        .iter()
        .map(|(path, _, server)| remote_login(path, layer, by_content(*server)))
        .collect();
    expected.sort();
    assert_eq!(violations, expected);
}

/// The same servers packed at innocent paths, mode 0644 (what cannot be
/// run as it is still holds a server): sshd gzipped, dropbear in xz,
/// tinysshd in zstd, telnetd in a plain tar, sshd in a .tar.gz, and
/// mosh-server in a .tar.gz inside a deflated zip. `ingot audit` reports
/// each archive, naming the server and, where the archive has members, the
/// member's path inside it. umoci unpacks each archive byte for byte.
#[test]
fn real_servers_in_archives_are_found_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<(&str, &[u8], u32)> = packed()
        .iter()
        .map(|p| (p.path, p.bytes.as_slice(), 0o644))
        .collect();
    let layout = umoci_image(tmp.path(), "img", &files, &[]);
    let layer = &layers(&layout, "v1")[0];

    let rootfs = unpack(&layout, "v1");
    for p in packed() {
        assert_unpacked(&rootfs, p.path, &p.bytes, 0o644);
    }

    let (code, violations) = audit(&format!("oci:{}:v1", layout.display()));
    assert_eq!(code, Some(1));
    let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
    let mut expected: Vec<&str> = packed().iter().map(|p| p.path).collect();
    expected.sort();
    assert_eq!(paths, expected, "{violations:#?}");
    for p in packed() {
        let v = violations.iter().find(|v| v.path == p.path).unwrap();
        assert_eq!(
            (v.rule.as_str(), v.layer.as_str(), v.digest.as_str()),
            ("no-remote-login", "#1", layer.as_str()),
            "{v:?}"
        );
        assert_eq!(v.detail, packed_detail(p), "{v:?}");
    }
}

/// A recipe that copies the renamed servers and the archives into an image
/// on the static stemcell (`copy`, mode 0755) fails the build with exit 1,
/// writes nothing, and names each of the twelve violations on stderr with
/// its path, its layer and the server found.
#[test]
fn real_servers_renamed_and_packed_fail_the_build() {
    let f = Fixture::new();
    let mut steps = Vec::new();
    for (i, (path, server)) in RENAMED.iter().enumerate() {
        let name = format!("server{i}");
        f.file(&name, &server.bytes());
        steps.push(copy(&name, path));
    }
    for (i, p) in packed().iter().enumerate() {
        let name = format!("archive{i}");
        f.file(&name, &p.bytes);
        steps.push(copy(&name, p.path));
    }
    let lines = f.unsealed(&recipe(&steps, ""));
    for (path, server) in RENAMED {
        assert_line(&lines, path, &by_content(server));
    }
    for p in packed() {
        assert_line(&lines, p.path, &packed_detail(p));
    }
    assert_eq!(lines.len(), RENAMED.len() + packed().len(), "{lines:#?}");
}

// ---------------------------------------------------------------------------
// Clients and busybox

/// Debian's clients of the same suites (OpenSSH's ssh, scp, sftp,
/// ssh-keygen and ssh-agent; dropbear's dbclient and dropbearkey;
/// mosh-client; Debian's dynamically linked busybox), where Debian installs
/// them and again packed in a .tar.gz, carry no server's strings: the
/// image builds sealed, and `ingot audit` finds it sealed.
#[test]
fn real_clients_pass() {
    let f = Fixture::new();
    let mut steps = Vec::new();
    let mut members = Vec::new();
    for (i, (package, path, dest)) in CLIENTS.iter().enumerate() {
        let bytes = debian_file(package, path);
        let name = format!("client{i}");
        f.file(&name, &bytes);
        steps.push(copy(&name, dest));
        members.push((dest.trim_start_matches('/'), bytes));
    }
    let members: Vec<(&str, &[u8])> = members.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    f.file("clients.tar.gz", &gzip(&tar(&members)));
    steps.push(copy("clients.tar.gz", "/opt/app/clients.tar.gz"));
    f.sealed(&recipe(&steps, ""));
}

/// The inittab line that starts busybox's telnetd applet.
const INITTAB: &str =
    "::sysinit:/bin/busybox mount -a\n::respawn:/bin/busybox telnetd -F -l /bin/sh\n";

/// Debian's busybox-static has a telnetd applet, but no daemon's strings:
/// as /bin/busybox alone the image is sealed. Started by /etc/inittab, or
/// by the image's Entrypoint (from a recipe's `config`, or `umoci config`
/// on an image ingot did not build), the applet is a telnet server and the
/// seal fails: at /etc/inittab naming the line, and in the image config.
#[test]
fn busybox_telnetd_fails_only_when_started() {
    let busybox = debian_file("busybox-static", "bin/busybox");
    let f = Fixture::new();
    f.file("busybox", &busybox);
    f.file("inittab", INITTAB.as_bytes());
    let step = copy("busybox", "/bin/busybox");
    f.sealed(&recipe(std::slice::from_ref(&step), ""));

    let lines = f.unsealed(&recipe(
        &[
            step.clone(),
            r#"copy: { src: files/inittab, dest: /etc/inittab }"#.into(),
        ],
        "",
    ));
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_line(&lines, "/etc/inittab", "starts telnetd (line 2)");

    let config = "config:\n  entrypoint: [\"/bin/busybox\", \"telnetd\", \"-F\"]\n";
    let lines = f.unsealed(&recipe(std::slice::from_ref(&step), config));
    assert_eq!(
        lines,
        ["no-remote-login: image config: the image's Entrypoint and Cmd start telnetd"]
    );

    // The same, in images umoci made.
    let tmp = tempfile::tempdir().unwrap();
    let files = [("/bin/busybox", busybox.as_slice(), 0o755)];
    let layout = umoci_image(tmp.path(), "plain", &files, &[]);
    assert_unpacked(&unpack(&layout, "v1"), "/bin/busybox", &busybox, 0o755);
    assert_eq!(
        audit(&format!("oci:{}:v1", layout.display())),
        (Some(0), vec![])
    );
    let layout = umoci_image(
        tmp.path(),
        "started",
        &files,
        &[
            "--config.entrypoint=/bin/busybox",
            "--config.entrypoint=telnetd",
            "--config.entrypoint=-F",
        ],
    );
    let (code, violations) = audit(&format!("oci:{}:v1", layout.display()));
    assert_eq!(code, Some(1));
    assert_eq!(
        violations,
        [Violation {
            rule: "no-remote-login".into(),
            path: String::new(),
            layer: String::new(),
            digest: String::new(),
            detail: "the image's Entrypoint and Cmd start telnetd".into(),
        }]
    );
}

// ---------------------------------------------------------------------------
// A Debian userland

/// A Debian userland (libc, OpenSSL, GnuTLS with its self-test keys, CA
/// certificates, coreutils, bash, dpkg, apt, perl, python) holds no way in:
/// built into an image on the static stemcell, it is sealed. Setuid bits,
/// which the seal asks to allow by name, are cleared first, as a recipe
/// would allow them.
#[test]
fn a_debian_userland_is_sealed() {
    use std::os::unix::fs::PermissionsExt as _;
    let f = Fixture::new();
    let rootfs = f.tmp.path().join("app/files/rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    for package in &PACKAGES[USERLAND] {
        let out = run(Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", debian().join(package).display()))
            .arg(&rootfs));
        assert!(out.status.success(), "cp {package}: {}", stderr(&out));
    }
    let mut files = 0;
    for entry in walkdir::WalkDir::new(&rootfs) {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        if meta.is_file() {
            files += 1;
            let mode = meta.permissions().mode();
            if mode & 0o6000 != 0 {
                std::fs::set_permissions(
                    entry.path(),
                    std::fs::Permissions::from_mode(mode & 0o1777),
                )
                .unwrap();
            }
        }
    }
    assert!(files > 1000, "{files} files");
    f.sealed(&recipe(
        &["copy: { src: files/rootfs, dest: /debian }".to_string()],
        "",
    ));
}
