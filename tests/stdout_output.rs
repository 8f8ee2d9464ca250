//! `-o -` writes `export`'s archive and `bind`'s env file or Deployment to
//! stdout, the same bytes as to a file; what is a directory (an
//! oci-bundle) or would share stdout with `--json` is a usage error.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{ingot, run, stderr, stdout};

/// The hello example built into `dir/h`, as `oci:dir/h:1.2.0`.
fn hello(dir: &Path) -> String {
    let layout = dir.join("h");
    common::build(&common::example("hello"), &layout);
    format!("oci:{}:1.2.0", layout.display())
}

fn values(dir: &Path) -> PathBuf {
    let file = dir.join("values.yaml");
    std::fs::write(
        &file,
        "LOG_LEVEL: warn\nDATABASE_URL: { secretRef: hello-db/url }\n",
    )
    .unwrap();
    file
}

#[test]
fn export_to_stdout_is_the_file_and_podman_loads_it() {
    common::require("podman");
    let tmp = tempfile::tempdir().unwrap();
    let image = hello(tmp.path());
    let file = tmp.path().join("hello.tar");
    let to_file = run(ingot()
        .args(["export", &image, "--format", "docker-archive", "-o"])
        .arg(&file));
    assert!(to_file.status.success(), "{}", stderr(&to_file));
    let to_stdout = run(ingot().args(["export", &image, "--format", "docker-archive", "-o", "-"]));
    assert!(to_stdout.status.success(), "{}", stderr(&to_stdout));
    assert_eq!(to_stdout.stdout, std::fs::read(&file).unwrap());
    assert!(
        stderr(&to_stdout).contains("wrote the archive to stdout"),
        "{}",
        stderr(&to_stdout)
    );

    // ingot export … -o - | podman load
    let mut export = ingot()
        .args([
            "export",
            &image,
            "--format",
            "docker-archive",
            "-o",
            "-",
            "-q",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let load = Command::new("podman")
        .arg("--storage-driver=vfs")
        .arg("--root")
        .arg(tmp.path().join("root"))
        .arg("--runroot")
        .arg(tmp.path().join("runroot"))
        .arg("--tmpdir")
        .arg(tmp.path().join("tmp"))
        .args(["--cgroup-manager=cgroupfs", "--events-backend=file", "load"])
        .stdin(export.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(export.wait().unwrap().success());
    assert!(load.status.success(), "{}", stderr(&load));
    assert!(
        stdout(&load).contains("hello:1.2.0"),
        "podman load said {}",
        stdout(&load)
    );
}

#[test]
fn bind_to_stdout_is_what_bind_writes_to_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let image = hello(tmp.path());
    let k8s_values = values(tmp.path());
    for (format, extra) in [
        (
            "kubernetes",
            &["--repo", "registry.example.com/team/hello"][..],
        ),
        ("env", &[][..]),
    ] {
        // env refuses a secretRef: give it a literal-free values file.
        let values = if format == "env" {
            let file = tmp.path().join("env-values.yaml");
            std::fs::write(&file, "LOG_LEVEL: warn\nDATABASE_URL: { env: DB }\n").unwrap();
            file
        } else {
            k8s_values.clone()
        };
        let file = tmp.path().join(format!("out.{format}"));
        let bind = |output: &Path| {
            run(ingot()
                .env("DB", "postgres://db")
                .args(["bind", &image, "--format", format, "--values"])
                .arg(&values)
                .args(extra)
                .arg("-o")
                .arg(output))
        };
        let to_file = bind(&file);
        assert!(to_file.status.success(), "{format}: {}", stderr(&to_file));
        let to_stdout = bind(Path::new("-"));
        assert!(
            to_stdout.status.success(),
            "{format}: {}",
            stderr(&to_stdout)
        );
        assert_eq!(
            stdout(&to_stdout),
            std::fs::read_to_string(&file).unwrap(),
            "{format}"
        );
        assert!(!tmp.path().join("-").exists());
        assert!(
            stderr(&to_stdout).contains("into stdout"),
            "{}",
            stderr(&to_stdout)
        );
    }
}

#[test]
fn directories_and_json_cannot_go_to_stdout() {
    let tmp = tempfile::tempdir().unwrap();
    let image = hello(tmp.path());
    let out = run(ingot().args(["bind", &image, "--format", "oci-bundle", "-o", "-"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("oci-bundle is a directory"),
        "{}",
        stderr(&out)
    );
    assert!(!tmp.path().join("-").exists());

    for command in [
        vec![
            "export",
            &image,
            "--format",
            "docker-archive",
            "-o",
            "-",
            "--json",
        ],
        vec!["bind", &image, "--format", "env", "-o", "-", "--json"],
    ] {
        let out = run(ingot().args(&command));
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        assert!(stderr(&out).contains("drop one"), "{}", stderr(&out));
        let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(error["error"]["kind"], "usage");
    }
}

#[test]
fn export_refuses_to_write_an_archive_to_a_terminal() {
    common::require("script");
    let tmp = tempfile::tempdir().unwrap();
    let image = hello(tmp.path());
    let command = format!(
        "{} export {image} --format docker-archive -o -",
        env!("CARGO_BIN_EXE_ingot")
    );
    let out = run(Command::new("script").args(["-qec", &command, "/dev/null"]));
    let text = stdout(&out);
    assert!(
        text.contains("refusing to write a tar archive to a terminal"),
        "{text}"
    );
    assert!(!text.contains("manifest.json"), "{text}");
}
