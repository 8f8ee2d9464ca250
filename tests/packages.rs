//! `packages` steps against a real, signed Debian archive made at test
//! time from real `.deb`s and served on 127.0.0.1: lock, build, a
//! `--locked` rebuild from the content store alone, a build elsewhere,
//! the image run under runc and read by dpkg-query, and every refusal.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::archive::{Archive, ArchiveOptions, Signing};
use common::{ingot, require, run, stderr, stdout};

/// What the test image installs, and the archive it comes from: Python's
/// closure, base-passwd's accounts and the CA bundle. `dpkg` (which
/// python3-minimal wants for its byte-compiling scripts), `openssl` and
/// `debconf` (wanted by ca-certificates' scripts) are excluded.
const INSTALL: &[&str] = &["python3-minimal", "base-passwd", "ca-certificates"];
const EXCLUDE: &[&str] = &["dpkg", "openssl", "debconf"];
use common::debian::PYTHON_ARCHIVE as ARCHIVE;

fn archive(sign: Signing) -> Archive {
    let debs = common::debian::debs(ARCHIVE);
    Archive::new(
        &debs,
        ArchiveOptions {
            suite: "stable".into(),
            component: "main".into(),
            arch: "amd64".into(),
            sign,
        },
    )
}

/// A recipe directory installing `install` from `archive` on merged /usr.
fn recipe(dir: &Path, archive: &Archive, install: &[&str]) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    fs::copy(archive.keyring(), dir.join("archive.gpg")).unwrap();
    let list = |names: &[&str]| names.join(", ");
    let text = format!(
        "name: py\nversion: 1.0.0\nbase: scratch\n\
         {}\x20 - name: runtime\n    steps:\n\
         \x20     - packages: {{ install: [{}], exclude: [{}], drop_setuid: true }}\n{}",
        common::archive::archive_and_merged_usr(&archive.url()),
        list(install),
        list(EXCLUDE),
        // The build checks that the program is there to run.
        if install.contains(&"python3-minimal") {
            "config:\n  cmd: [/usr/bin/python3, -c, \"import ssl, sys; print('hello from', sys.version.split()[0])\"]\n"
        } else {
            ""
        },
    );
    let path = dir.join("recipe.yaml");
    fs::write(&path, text).unwrap();
    path
}

fn lock(recipe: &Path, cache: &Path) -> Output {
    run(ingot().arg("lock").arg(recipe).arg("--cache").arg(cache))
}

fn build(recipe: &Path, out: &Path, cache: &Path, extra: &[&str]) -> Output {
    run(ingot()
        .arg("build")
        .arg(recipe)
        .arg("-o")
        .arg(out)
        .arg("--cache")
        .arg(cache)
        .args(extra))
}

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", stderr(out));
    stdout(out).trim().to_string()
}

/// `ingot bind`'s runtime bundle of the image in `layout`, at `to`.
fn bundle(layout: &Path, to: &Path) -> PathBuf {
    ok(
        &run(ingot()
            .args(["bind", "--format", "oci-bundle", "-o"])
            .arg(to)
            .arg(format!("oci:{}", layout.display()))),
        "ingot bind",
    );
    to.to_path_buf()
}

/// `dpkg-query` on the dpkg database under `rootfs`.
fn dpkg_query(rootfs: &Path, args: &[&str]) -> String {
    let out = run(Command::new("dpkg-query")
        .arg(format!(
            "--admindir={}",
            rootfs.join("var/lib/dpkg").display()
        ))
        .args(args));
    ok(&out, &format!("dpkg-query {}", args.join(" ")))
}

fn lock_json(recipe: &Path) -> serde_json::Value {
    common::read_json(&recipe.parent().unwrap().join("ingot.lock"))
}

#[test]
fn lock_then_build_from_the_store_alone_and_elsewhere_gives_one_digest() {
    let archive = archive(Signing::Signed);
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(&dir.path().join("a"), &archive, INSTALL);
    let cache = dir.path().join("cache");
    ok(&lock(&recipe, &cache), "ingot lock");

    let lock = lock_json(&recipe);
    let set = &lock["packages"][0];
    assert_eq!(set["layer"], "runtime");
    let pins = set["packages"].as_array().unwrap();
    let names: Vec<&str> = pins.iter().map(|p| p["name"].as_str().unwrap()).collect();
    for want in [
        "python3-minimal",
        "python3.11-minimal",
        "libc6",
        "libssl3",
        "base-passwd",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    for excluded in EXCLUDE {
        assert!(!names.contains(excluded), "{excluded} was excluded");
    }
    for pin in pins {
        let name = pin["name"].as_str().unwrap();
        let pool = archive.root().join(pin["path"].as_str().unwrap());
        let bytes = fs::read(&pool).unwrap_or_else(|e| panic!("{name}: {}: {e}", pool.display()));
        assert_eq!(pin["size"], bytes.len() as u64, "{name}");
        assert_eq!(pin["sha256"], sha256(&bytes), "{name}");
        assert_eq!(pin["archive"], archive.url().as_str(), "{name}");
    }

    let first = ok(
        &build(&recipe, &dir.path().join("img1"), &cache, &["--locked"]),
        "build",
    );
    // From the store alone: with the layer cache gone, the layers are
    // built again from the .debs in the store; no index and no .deb is
    // asked for.
    let before = archive.requests().len();
    fs::remove_dir_all(cache.join("layers")).unwrap();
    let again = ok(
        &build(&recipe, &dir.path().join("img2"), &cache, &["--locked"]),
        "rebuild",
    );
    assert_eq!(first, again);
    assert_eq!(
        archive.requests()[before..],
        [] as [String; 0],
        "a locked rebuild fetched"
    );

    // Another directory, another cache: the same digest, fetched afresh.
    let other = recipe_copy(&recipe, &dir.path().join("elsewhere"));
    let elsewhere = ok(
        &build(
            &other,
            &dir.path().join("img3"),
            &dir.path().join("cache2"),
            &["--locked"],
        ),
        "build elsewhere",
    );
    assert_eq!(first, elsewhere);
}

fn recipe_copy(recipe: &Path, to: &Path) -> PathBuf {
    common::copy_tree(recipe.parent().unwrap(), to);
    to.join("recipe.yaml")
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

#[test]
fn the_image_runs_under_runc_and_dpkg_query_lists_its_packages() {
    require("runc");
    require("dpkg-query");
    let archive = archive(Signing::Signed);
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(&dir.path().join("r"), &archive, INSTALL);
    let cache = dir.path().join("cache");
    ok(&lock(&recipe, &cache), "ingot lock");
    let layout = dir.path().join("img");
    let built = build(&recipe, &layout, &cache, &["--json"]);
    let report: serde_json::Value = serde_json::from_str(&ok(&built, "build")).unwrap();
    let runtime = &report["layers"][1];
    assert_eq!(runtime["name"], "runtime");
    let installed = runtime["packages"]["installed"].as_array().unwrap();
    let libc = installed.iter().find(|p| p["name"] == "libc6").unwrap();
    assert!(
        libc["scripts_not_run"]
            .as_array()
            .unwrap()
            .contains(&"postinst".into()),
        "{libc}"
    );
    // The log names each package whose scripts were skipped.
    assert!(
        stderr(&built).contains("libc6 ")
            && stderr(&built).contains("maintainer scripts not run: "),
        "{}",
        stderr(&built)
    );

    let bundle = bundle(&layout, &dir.path().join("bundle"));
    let rootfs = bundle.join("rootfs");
    let listed = dpkg_query(
        &rootfs,
        &["-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\n"],
    );
    let lock = lock_json(&recipe);
    for pin in lock["packages"][0]["packages"].as_array().unwrap() {
        let line = format!(
            "{} {} ii",
            pin["name"].as_str().unwrap(),
            pin["version"].as_str().unwrap()
        );
        assert!(
            listed.lines().any(|l| l.trim_end() == line),
            "{line:?} not in:\n{listed}"
        );
    }
    let files = dpkg_query(&rootfs, &["-L", "python3.11-minimal"]);
    assert!(files.lines().any(|l| l == "/usr/bin/python3.11"), "{files}");
    // base-passwd's accounts and the CA bundle, made without its scripts.
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap();
    assert!(passwd.starts_with("root:*:0:0:root:/root:"), "{passwd}");
    let bundle_crt = fs::read(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(bundle_crt.starts_with(b"-----BEGIN CERTIFICATE-----"));
    same_certificates_as_update_ca_certificates(&rootfs);

    let id = format!("ingot-packages-{}", std::process::id());
    let ran = run(Command::new("runc")
        .arg("--root")
        .arg(dir.path().join("runc-state"))
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id));
    let text = ok(&ran, "runc run");
    assert!(text.starts_with("hello from 3."), "{text}");
}

/// `ingot lock` of the test recipe on `archive`, which must fail with
/// `code`, naming `names` on stderr; no lock is written.
fn refused_lock(archive: &Archive, install: &[&str], code: i32, names: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(&dir.path().join("r"), archive, install);
    let out = lock(&recipe, &dir.path().join("cache"));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    for name in names {
        assert!(err.contains(name), "{name:?} not in {err}");
    }
    assert!(!recipe.parent().unwrap().join("ingot.lock").exists());
    assert_eq!(
        err.trim()
            .lines()
            .filter(|l| l.starts_with("error"))
            .count(),
        1,
        "{err}"
    );
}

#[test]
fn lock_refuses_unsigned_wrongly_signed_and_tampered_archives() {
    refused_lock(
        &archive(Signing::Unsigned),
        INSTALL,
        1,
        &["dists/stable/InRelease"],
    );
    refused_lock(
        &archive(Signing::WrongKey),
        INSTALL,
        1,
        &["InRelease", "archive.gpg"],
    );
    let tampered = archive(Signing::Signed);
    tampered.tamper_packages();
    refused_lock(&tampered, INSTALL, 1, &["binary-amd64/Packages"]);
}

#[test]
fn lock_refuses_unknown_and_unsatisfiable_packages() {
    let archive = archive(Signing::Signed);
    refused_lock(&archive, &["no-such-package"], 2, &["no-such-package"]);
    // libssl3 is in no archive of this one: python's closure cannot close.
    let debs: Vec<PathBuf> = common::debian::debs(ARCHIVE)
        .into_iter()
        .filter(|p| {
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("libssl3_")
        })
        .collect();
    let partial = Archive::new(&debs, ArchiveOptions::default());
    refused_lock(&partial, &["python3-minimal"], 2, &["libssl3"]);
}

#[test]
fn a_deb_unlike_its_pin_is_refused_and_nothing_is_written() {
    let archive = archive(Signing::Signed);
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(&dir.path().join("r"), &archive, INSTALL);
    ok(&lock(&recipe, &dir.path().join("cache")), "ingot lock");
    let other = common::debian::debs(&["libexpat1"]).remove(0);
    archive.replace_deb("zlib1g", &other);
    let layout = dir.path().join("img");
    let out = build(
        &recipe,
        &layout,
        &dir.path().join("fresh-cache"),
        &["--locked"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("zlib1g"), "{err}");
    assert!(
        !layout.exists(),
        "a refused build wrote {}",
        layout.display()
    );
    let store = dir.path().join("fresh-cache/blobs/sha256");
    let lock = lock_json(&recipe);
    let zlib = lock["packages"][0]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "zlib1g")
        .unwrap()
        .clone();
    let hex = zlib["sha256"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    assert!(!store.join(hex).exists(), "the mismatching .deb was stored");
}

#[test]
fn a_deb_with_an_escaping_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let evil = dir.path().join("evil_1.0_all.deb");
    fs::write(&evil, deb_with_entry("evil", "./../../etc/evil")).unwrap();
    let archive = Archive::new(&[evil], ArchiveOptions::default());
    let recipe = recipe(&dir.path().join("r"), &archive, &["evil"]);
    ok(&lock(&recipe, &dir.path().join("cache")), "ingot lock");
    let layout = dir.path().join("img");
    let out = build(&recipe, &layout, &dir.path().join("cache"), &["--locked"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("evil_1.0_all.deb") || err.contains("evil"),
        "{err}"
    );
    assert!(err.contains("../../etc/evil"), "{err}");
    assert!(!layout.exists());
}

#[test]
fn a_mirror_serves_the_same_pins_and_image() {
    let archive = archive(Signing::Signed);
    let mirror = archive.serve_another();
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(&dir.path().join("r"), &archive, INSTALL);
    let direct = dir.path().join("direct");
    ok(&lock(&recipe, &direct), "ingot lock");
    let pinned = fs::read(recipe.parent().unwrap().join("ingot.lock")).unwrap();
    let first = ok(
        &build(&recipe, &dir.path().join("a"), &direct, &["--locked"]),
        "build",
    );

    let before = archive.requests().len();
    let via = dir.path().join("via-mirror");
    let locked = run(ingot()
        .arg("lock")
        .arg(&recipe)
        .arg("--cache")
        .arg(&via)
        .env("INGOT_MIRROR", mirror.url()));
    ok(&locked, "ingot lock via INGOT_MIRROR");
    assert_eq!(
        fs::read(recipe.parent().unwrap().join("ingot.lock")).unwrap(),
        pinned
    );
    let second = ok(
        &build(
            &recipe,
            &dir.path().join("b"),
            &via,
            &["--locked", "--mirror", &mirror.url()],
        ),
        "build via --mirror",
    );
    assert_eq!(first, second);
    assert_eq!(
        archive.requests().len(),
        before,
        "the archive itself was asked"
    );
    assert!(mirror.requests().iter().any(|r| r.ends_with(".deb")));
}

/// A minimal `.deb` (deb(5)): `debian-binary`, a `control.tar` and a
/// `data.tar` holding one file under the raw name `entry`, which the tar
/// crate's checked setters would refuse.
fn deb_with_entry(package: &str, entry: &str) -> Vec<u8> {
    deb_with_file(package, entry, 0o644)
}

/// [`deb_with_entry`] with the file's `mode`.
fn deb_with_file(package: &str, entry: &str, mode: u32) -> Vec<u8> {
    let control = format!(
        "Package: {package}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.invalid>\nDescription: test\n"
    );
    let control_tar = tar_of(&[("./control", control.as_bytes(), 0o644)]);
    let data_tar = tar_of(&[(entry, b"owned\n".as_slice(), mode)]);
    let mut ar = b"!<arch>\n".to_vec();
    for (name, body) in [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar", control_tar),
        ("data.tar", data_tar),
    ] {
        let header = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            0,
            0,
            0,
            "100644",
            body.len()
        );
        ar.extend_from_slice(header.as_bytes());
        ar.extend_from_slice(&body);
        if body.len() % 2 == 1 {
            ar.push(b'\n');
        }
    }
    ar
}

fn tar_of(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    for (name, body, mode) in files {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(body.len() as u64);
        header.set_mode(*mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        out.append(&header, *body).unwrap();
    }
    out.into_inner().unwrap()
}

#[test]
fn a_recipe_on_a_recipe_inherits_its_archives_and_merges_its_database() {
    require("dpkg-query");
    let archive = archive(Signing::Signed);
    let dir = tempfile::tempdir().unwrap();
    // The base recipe, which the app names by path.
    recipe(
        &dir.path().join("base"),
        &archive,
        &["libc6", "base-passwd"],
    );
    let app_dir = dir.path().join("app");
    fs::create_dir_all(&app_dir).unwrap();
    let app = app_dir.join("recipe.yaml");
    fs::write(
        &app,
        format!(
            "name: app\nversion: 1.0.0\nbase: recipe:../base/recipe.yaml\n\
             layers:\n  - name: python\n    steps:\n\
             \x20     - packages: {{ install: [python3-minimal], exclude: [{}] }}\n\
             config:\n  cmd: [/usr/bin/python3, -c, \"print('hello')\"]\n",
            EXCLUDE.join(", ")
        ),
    )
    .unwrap();
    let cache = dir.path().join("cache");
    ok(&lock(&app, &cache), "ingot lock");
    let lock = lock_json(&app);
    let sets = lock["packages"].as_array().unwrap();
    let froms: Vec<&str> = sets.iter().map(|s| s["from"].as_str().unwrap()).collect();
    assert_eq!(froms, ["../base/recipe.yaml", "recipe.yaml"]);
    assert_eq!(sets[1]["archives"][0], archive.url().as_str(), "inherited");

    let layout = dir.path().join("img");
    let built = build(&app, &layout, &cache, &["--locked", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&ok(&built, "build")).unwrap();
    let python = report["layers"].as_array().unwrap().last().unwrap().clone();
    let installed: Vec<&str> = python["packages"]["installed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(installed.contains(&"python3.11-minimal"), "{installed:?}");
    assert!(
        !installed.contains(&"libc6"),
        "libc6 is the base's: {installed:?}"
    );
    assert!(stderr(&built).contains("libc6 "), "{}", stderr(&built));

    let bundle = bundle(&layout, &dir.path().join("bundle"));
    let listed = dpkg_query(&bundle.join("rootfs"), &["-W", "-f", "${Package}\n"]);
    for name in ["libc6", "base-passwd", "python3-minimal"] {
        assert!(
            listed.lines().any(|l| l == name),
            "{name} not in:\n{listed}"
        );
    }
}

/// The image's CA bundle and `.pem` links are what Debian's own
/// `update-ca-certificates` (this machine's) makes of the image's
/// certificates and `/etc/ca-certificates.conf`.
fn same_certificates_as_update_ca_certificates(rootfs: &Path) {
    require("update-ca-certificates");
    let dir = tempfile::tempdir().unwrap();
    let (etc, empty) = (dir.path().join("etc"), dir.path().join("empty"));
    fs::create_dir_all(&etc).unwrap();
    fs::create_dir_all(&empty).unwrap();
    let certs = rootfs.join("usr/share/ca-certificates");
    let made = run(Command::new("update-ca-certificates")
        .arg("--certsconf")
        .arg(rootfs.join("etc/ca-certificates.conf"))
        .arg("--certsdir")
        .arg(&certs)
        .arg("--localcertsdir")
        .arg(&empty)
        .arg("--etccertsdir")
        .arg(&etc)
        .arg("--hooksdir")
        .arg(&empty));
    ok(&made, "update-ca-certificates");
    let ours = fs::read(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert!(
        fs::read(etc.join("ca-certificates.crt")).unwrap() == ours,
        "the bundle differs from update-ca-certificates'"
    );
    let mut links = 0;
    for entry in fs::read_dir(&etc).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "pem") {
            continue;
        }
        // Its links point into the directory it was given; the image's,
        // into the image.
        let theirs = fs::read_link(&path).unwrap();
        let want =
            Path::new("/usr/share/ca-certificates").join(theirs.strip_prefix(&certs).unwrap());
        let image_link = rootfs.join("etc/ssl/certs").join(path.file_name().unwrap());
        assert_eq!(
            fs::read_link(&image_link).unwrap(),
            want,
            "{}",
            image_link.display()
        );
        links += 1;
    }
    assert!(links > 100, "{links} .pem links");
}

#[test]
fn a_setuid_file_fails_the_seal_unless_the_step_drops_the_bit() {
    let dir = tempfile::tempdir().unwrap();
    let deb = dir.path().join("suid_1.0_all.deb");
    fs::write(&deb, deb_with_file("suid", "./usr/bin/suid", 0o4755)).unwrap();
    let archive = Archive::new(&[deb], ArchiveOptions::default());
    let recipe = recipe(&dir.path().join("r"), &archive, &["suid"]);
    // `bind` needs a program, and the build checks it is there.
    let text = fs::read_to_string(&recipe).unwrap();
    fs::write(&recipe, format!("{text}config:\n  cmd: [/usr/bin/suid]\n")).unwrap();
    let cache = dir.path().join("cache");
    ok(&lock(&recipe, &cache), "ingot lock");
    let layout = dir.path().join("img");
    ok(
        &build(&recipe, &layout, &cache, &["--locked"]),
        "build, bit dropped",
    );
    let rootfs = bundle(&layout, &dir.path().join("bundle")).join("rootfs");
    let mode = fs::metadata(rootfs.join("usr/bin/suid"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);

    let text = fs::read_to_string(&recipe).unwrap();
    fs::write(&recipe, text.replace(", drop_setuid: true", "")).unwrap();
    let kept = build(&recipe, &dir.path().join("img2"), &cache, &[]);
    let err = stderr(&kept);
    assert_eq!(kept.status.code(), Some(1), "{err}");
    assert!(
        err.contains("setuid") && err.contains("/usr/bin/suid"),
        "{err}"
    );
    assert!(!dir.path().join("img2").exists());
}

#[test]
fn a_changed_request_is_not_built_from_the_old_lock() {
    let archive = archive(Signing::Signed);
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe(&dir.path().join("r"), &archive, &["libc6"]);
    let cache = dir.path().join("cache");
    ok(&lock(&recipe, &cache), "ingot lock");
    let text = fs::read_to_string(&recipe).unwrap();
    fs::write(
        &recipe,
        text.replace("install: [libc6]", "install: [libc6, zlib1g]"),
    )
    .unwrap();
    let locked = build(&recipe, &dir.path().join("img"), &cache, &["--locked"]);
    let err = stderr(&locked);
    assert_eq!(locked.status.code(), Some(2), "{err}");
    assert!(
        err.contains("\"runtime\"") && err.contains("ingot lock"),
        "{err}"
    );
    assert!(!dir.path().join("img").exists());
    // Without --locked, the build resolves afresh and says so.
    let unlocked = build(&recipe, &dir.path().join("img"), &cache, &["--json"]);
    let report: serde_json::Value = serde_json::from_str(&ok(&unlocked, "build")).unwrap();
    assert!(
        stderr(&unlocked).contains("not locked"),
        "{}",
        stderr(&unlocked)
    );
    let names: Vec<&str> = report["packages"][0]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"zlib1g"), "{names:?}");
}
