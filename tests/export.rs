//! `ingot export --format docker-archive` against the tools that read the
//! format: skopeo (inspect, and copy back to an OCI layout), podman (load),
//! and ingot's own docker-archive base reader. Plus determinism, the
//! report, and a corrupt layout writing nothing (issue 5).
//!
//! CI installs skopeo and podman; a missing one fails the test
//! (`common::require`). podman runs with the vfs driver and its root,
//! runroot and tmpdir in a temp directory, so it touches no system store.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ingot::digest::Digest;
use ingot::image::config::diff_ids;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

/// The hello recipe built into `dir/hello`.
fn build_hello(dir: &Path) -> PathBuf {
    let layout = dir.join("hello");
    common::build(&common::repo().join("recipes/hello/recipe.yaml"), &layout);
    layout
}

fn export(image: &str, file: &Path, extra: &[&str]) -> Output {
    common::run(
        common::ingot()
            .args(["export", image, "--format", "docker-archive", "-o"])
            .arg(file)
            .args(extra),
    )
}

/// Exports `image` to `file`, failing the test with ingot's stderr when the
/// export fails; returns stdout.
fn export_ok(image: &str, file: &Path, extra: &[&str]) -> String {
    let out = export(image, file, extra);
    assert!(
        out.status.success(),
        "ingot export {image}: {}",
        common::stderr(&out)
    );
    common::stdout(&out)
}

/// Runs a tool, failing the test with its stderr when it fails; returns
/// stdout.
fn run_ok(cmd: &mut Command) -> String {
    let out = common::run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        common::stderr(&out)
    );
    common::stdout(&out)
}

fn blob(layout: &Path, digest: &oci_spec::image::Digest) -> PathBuf {
    let d = Digest::try_from(digest).unwrap();
    layout.join("blobs/sha256").join(d.hex())
}

/// The manifest and config of the one image in `layout`.
fn image(layout: &Path) -> (ImageManifest, ImageConfiguration) {
    let index = ImageIndex::from_file(layout.join("index.json")).unwrap();
    let manifest = ImageManifest::from_file(blob(layout, index.manifests()[0].digest())).unwrap();
    let config = ImageConfiguration::from_file(blob(layout, manifest.config().digest())).unwrap();
    (manifest, config)
}

fn hello_archive(dir: &Path) -> (PathBuf, PathBuf) {
    let layout = build_hello(dir);
    let file = dir.join("hello.tar");
    let stdout = export_ok(&format!("oci:{}:1.2.0", layout.display()), &file, &[]);
    assert_eq!(
        stdout, "",
        "stdout carries only the result, and there is none"
    );
    (layout, file)
}

#[test]
/// skopeo reads the archive, and its layers are the config's diff_ids.
fn skopeo_inspects_the_archive() {
    common::require("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let (layout, file) = hello_archive(tmp.path());
    let (_, config) = image(&layout);

    let reference = format!("docker-archive:{}", file.display());
    let inspected: serde_json::Value = serde_json::from_str(&run_ok(
        Command::new("skopeo").args(["inspect", &reference]),
    ))
    .unwrap();
    let expected: Vec<String> = diff_ids(&config)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(inspected["Layers"], serde_json::json!(expected));
    assert_eq!(inspected["Architecture"], "amd64");
}

#[test]
/// skopeo copies the archive back to an OCI layout with the very config
/// ingot built: the image's identity survives the round trip.
///
/// `--preserve-digests` keeps the config's bytes: without it skopeo
/// converts the archive's Docker schema 2 manifest to OCI and re-encodes
/// the config on the way (it does so for archives it wrote itself too),
/// so only its content, not its digest, survives that copy.
fn skopeo_copies_it_back_to_the_same_config() {
    common::require("skopeo");
    let tmp = tempfile::tempdir().unwrap();
    let (layout, file) = hello_archive(tmp.path());
    let (manifest, config) = image(&layout);
    let archive = format!("docker-archive:{}", file.display());
    let copy = |dir: &Path, flags: &[&str]| {
        run_ok(
            Command::new("skopeo")
                .args(["copy", "-q"])
                .args(flags)
                .arg(&archive)
                .arg(format!("oci:{}:t", dir.display())),
        );
        image(dir)
    };

    let (copied, _) = copy(&tmp.path().join("kept"), &["--preserve-digests"]);
    assert_eq!(copied.config().digest(), manifest.config().digest());

    let (_, converted) = copy(&tmp.path().join("converted"), &[]);
    assert_eq!(converted, config);
}

#[test]
/// The same image exported twice, to two files, gives the same bytes; the
/// --json report describes the file.
fn exporting_twice_gives_identical_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, first) = hello_archive(tmp.path());
    let second = tmp.path().join("again.tar");
    let report = export_ok(
        &format!("oci:{}:1.2.0", layout.display()),
        &second,
        &["--json"],
    );
    let bytes = std::fs::read(&first).unwrap();
    assert!(
        bytes == std::fs::read(&second).unwrap(),
        "the archives differ"
    );

    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        report,
        serde_json::json!({
            "file": second.display().to_string(),
            "size": bytes.len(),
            "sha256": Digest::of(&bytes).hex(),
            "repo_tags": ["hello:1.2.0"],
        })
    );
}

#[test]
/// --tag names the image; without a tag in the reference, the layout's only
/// image is exported under its own tag.
fn the_tag_comes_from_the_flag_or_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = build_hello(tmp.path());
    let file = tmp.path().join("h.tar");
    let image = format!("oci:{}", layout.display());
    let tags = |stdout: String| {
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        report["repo_tags"].clone()
    };
    assert_eq!(
        tags(export_ok(&image, &file, &["--json"])),
        serde_json::json!(["hello:1.2.0"])
    );
    let tag = "localhost:5000/team/hello:ci";
    assert_eq!(
        tags(export_ok(&image, &file, &["--json", "--tag", tag])),
        serde_json::json!([tag])
    );

    let out = export(&image, &file, &["--tag", "Hello:1"]);
    assert_eq!(out.status.code(), Some(2), "{}", common::stderr(&out));
}

#[test]
/// podman loads the archive: the image it stores has the config's digest as
/// its ID and the tag ingot wrote.
fn podman_loads_the_archive() {
    common::require("podman");
    let tmp = tempfile::tempdir().unwrap();
    let (layout, file) = hello_archive(tmp.path());
    let podman = |args: &[&str]| {
        let mut cmd = Command::new("podman");
        cmd.arg("--storage-driver=vfs")
            .arg("--root")
            .arg(tmp.path().join("root"))
            .arg("--runroot")
            .arg(tmp.path().join("runroot"))
            .arg("--tmpdir")
            .arg(tmp.path().join("tmp"))
            .args(["--cgroup-manager=cgroupfs", "--events-backend=file"])
            .args(args);
        cmd
    };
    let loaded = run_ok(&mut podman(&["load", "-i", &file.display().to_string()]));
    assert!(
        loaded.contains("hello:1.2.0"),
        "podman load said {loaded:?}"
    );

    let listed = run_ok(&mut podman(&[
        "images",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Repository}}:{{.Tag}}",
    ]));
    let (manifest, _) = image(&layout);
    let id = manifest.config().digest().to_string();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&id) && l.ends_with("hello:1.2.0")),
        "podman images: {listed:?}, expected {id}"
    );
}

#[test]
/// ingot's own docker-archive reader, the format's other half, loads the
/// export back to the image's config and layer blobs.
fn ingot_reads_its_own_export() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, file) = hello_archive(tmp.path());
    let (manifest, config) = image(&layout);
    let blobs = ingot::store::BlobStore::open(&tmp.path().join("store")).unwrap();
    let base =
        ingot::base::docker_archive::load(&file, &blobs, &ingot::progress::Progress::quiet())
            .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(base.config, config);
    let digests = |layers: &[oci_spec::image::Descriptor]| {
        layers
            .iter()
            .map(|d| d.digest().clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(&base.layers), digests(manifest.layers()));
}

/// Flips a byte in the middle of a file.
fn flip_middle_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let n = bytes.len() / 2;
    bytes[n] ^= 0xff;
    std::fs::write(path, bytes).unwrap();
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
/// A corrupt layer blob: exit 1, one error line naming the blob, and no
/// archive, not even a temp file.
fn a_corrupt_layer_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = build_hello(tmp.path());
    let (manifest, _) = image(&layout);
    let layer = manifest.layers().last().unwrap().digest().clone();
    flip_middle_byte(&blob(&layout, &layer));

    let out_dir = tmp.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let file = out_dir.join("hello.tar");
    let out = export(&format!("oci:{}:1.2.0", layout.display()), &file, &["-q"]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    let stderr = common::stderr(&out);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].starts_with("error: ")
            && lines[0].contains(&format!("blob {layer}: digest mismatch")),
        "{stderr}"
    );
    assert_eq!(common::stdout(&out), "");
    assert!(names(&out_dir).is_empty(), "{:?}", names(&out_dir));
}

#[test]
/// A failed export leaves an existing archive as it was.
fn a_failed_export_keeps_the_old_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, file) = hello_archive(tmp.path());
    let before = std::fs::read(&file).unwrap();
    let (manifest, _) = image(&layout);
    flip_middle_byte(&blob(&layout, &manifest.layers()[0].digest().clone()));
    let out = export(&format!("oci:{}:1.2.0", layout.display()), &file, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", common::stderr(&out));
    assert!(
        std::fs::read(&file).unwrap() == before,
        "the archive changed"
    );
    assert_eq!(names(tmp.path()), ["hello", "hello.tar"]);
}

#[test]
/// Usage errors exit 2 and write nothing.
fn usage_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = build_hello(tmp.path());
    let image = format!("oci:{}", layout.display());
    let file = tmp.path().join("x.tar");
    for (args, says) in [
        (vec![format!("{image}:9")], "no image tagged"),
        (
            vec!["docker-archive:x.tar".to_string()],
            "docker-archive:x.tar: no such file",
        ),
        (
            vec![image.clone(), "--platform".into(), "linux".into()],
            "expected OS/ARCH",
        ),
    ] {
        let out = common::run(
            common::ingot()
                .arg("export")
                .args(&args)
                .args(["--format", "docker-archive", "-o"])
                .arg(&file),
        );
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            common::stderr(&out).contains(says),
            "{}",
            common::stderr(&out)
        );
    }
    let out = export(&image, &layout, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("is a directory"));
    let out = export(&image, &tmp.path().join("no/such/x.tar"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(common::stderr(&out).contains("no such directory"));
    assert_eq!(names(tmp.path()), ["hello"]);
}
