//! The command line's contract: stdout carries only the result, logs go to
//! stderr, exit codes mean what design.md says, and layouts hold versions of
//! one recipe, safely under concurrent builds.

mod common;

use std::path::Path;

use common::{build, ingot, repo, run, stderr, stdout};

fn hello() -> std::path::PathBuf {
    repo().join("recipes/hello/recipe.yaml")
}

/// A one-layer recipe named `name` at `version`, written under `dir`.
fn tiny_recipe(dir: &Path, name: &str, version: &str) -> std::path::PathBuf {
    let d = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(&d).unwrap();
    let path = d.join("recipe.yaml");
    std::fs::write(
        &path,
        format!(
            "name: {name}\nversion: '{version}'\nbase: stemcell:static\nlayers:\n  - name: l\n    steps:\n      - file: {{ dest: /v, content: '{version}' }}\n"
        ),
    )
    .unwrap();
    path
}

fn index(layout: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap()
}

fn tags(layout: &Path) -> Vec<String> {
    index(layout)["manifests"]
        .as_array()
        .unwrap()
        .iter()
        // The images' SBOMs and provenance are listed untagged.
        .filter(|m| m.get("artifactType").is_none())
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn build_prints_only_the_digest_and_logs_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::try_build(hello(), dir.path().join("h"));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("sha256:"));
    assert!(
        stderr(&out).contains("building hello 1.2.0"),
        "{}",
        stderr(&out)
    );

    let quiet = run(ingot()
        .arg("build")
        .arg(hello())
        .arg("-q")
        .arg("-o")
        .arg(dir.path().join("h")));
    assert!(quiet.stderr.is_empty(), "{}", stderr(&quiet));
    assert_eq!(stdout(&quiet), text, "a rebuild gives the same digest");
}

#[test]
fn build_json_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(ingot()
        .arg("build")
        .arg(hello())
        .arg("--json")
        .arg("-o")
        .arg(dir.path().join("h")));
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["name"], "hello");
    assert_eq!(report["version"], "1.2.0");
    assert_eq!(report["base"], "stemcell:static@1.0.0");
    assert!(report["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(report["layers"][0]["name"], "app");
}

#[test]
fn default_output_is_out_slash_name_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(ingot().current_dir(dir.path()).arg("build").arg(hello()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("out/hello/index.json").is_file());
}

#[test]
fn inspect_shows_layers_config_and_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("h");
    let digest = build(&hello(), &layout);
    let out = run(ingot()
        .arg("inspect")
        .arg(format!("oci:{}:1.2.0", layout.display())));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        digest.as_str(),
        "platform  linux/amd64",
        "org.opencontainers.image.title = hello",
        "org.opencontainers.image.base.name = stemcell:static@1.0.0",
        "dev.ingot.layer.encoding = 3",
        "HELLO_CONFIG=/etc/hello/hello.conf",
        "app",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }

    let out = run(ingot()
        .arg("inspect")
        .arg("--json")
        .arg(format!("oci:{}", layout.display())));
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["digest"], digest.as_str());
    assert_eq!(json["config"]["config"]["User"], "10001:10001");
    assert_eq!(json["manifest"]["layers"].as_array().unwrap().len(), 2);
}

/// inspect's output, in words and in JSON, is the same bytes on every run:
/// the manifest's annotations, the config's labels and the layers'
/// annotations are maps whose order would otherwise follow a per-process
/// hash seed.
#[test]
fn inspect_output_is_byte_identical_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("h");
    build(&hello(), &layout);
    let image = format!("oci:{}:1.2.0", layout.display());
    for json in [false, true] {
        let once = || {
            let mut cmd = ingot();
            cmd.arg("inspect").arg(&image);
            if json {
                cmd.arg("--json");
            }
            let out = run(&mut cmd);
            assert!(out.status.success(), "{}", stderr(&out));
            out.stdout
        };
        let first = once();
        // Seven more processes, each with its own hash seed.
        for _ in 0..7 {
            assert_eq!(
                String::from_utf8_lossy(&once()),
                String::from_utf8_lossy(&first),
                "json: {json}"
            );
        }
    }
}

#[test]
fn inspect_of_a_missing_tag_or_layout_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("h");
    build(&hello(), &layout);
    let out = run(ingot()
        .arg("inspect")
        .arg(format!("oci:{}:9.9", layout.display())));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("1.2.0"),
        "lists the tags: {}",
        stderr(&out)
    );
    let out = run(ingot()
        .arg("inspect")
        .arg(format!("oci:{}", dir.path().join("nope").display())));
    assert_eq!(out.status.code(), Some(2));
    // A reference without a transport, or a malformed one.
    for bad in ["hello.tar", "docker://x"] {
        let out = run(ingot().arg("inspect").arg(bad));
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
}

#[test]
fn revision_and_source_are_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("h");
    let out = run(ingot()
        .args([
            "build",
            "--revision",
            "0123abc",
            "--source",
            "https://example.com/r.git",
        ])
        .arg(hello())
        .arg("-o")
        .arg(&layout));
    assert!(out.status.success(), "{}", stderr(&out));
    let inspect = run(ingot()
        .arg("inspect")
        .arg(format!("oci:{}", layout.display())));
    let text = stdout(&inspect);
    assert!(
        text.contains("org.opencontainers.image.revision = 0123abc"),
        "{text}"
    );
    assert!(
        text.contains("org.opencontainers.image.source = https://example.com/r.git"),
        "{text}"
    );
}

#[test]
fn bad_source_date_epoch_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(ingot()
        .env("SOURCE_DATE_EPOCH", "yesterday")
        .arg("build")
        .arg(hello())
        .arg("-o")
        .arg(dir.path().join("h")));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("SOURCE_DATE_EPOCH"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("h").exists());
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(ingot().arg("frobnicate")).status.code(), Some(2));
    assert_eq!(run(ingot().arg("build")).status.code(), Some(2));
}

#[test]
fn help_teaches_with_examples() {
    for cmd in ["build", "inspect"] {
        let out = run(ingot().args([cmd, "--help"]));
        assert!(out.status.success());
        let text = stdout(&out);
        assert!(
            text.contains("Examples:") && text.contains(&format!("ingot {cmd}")),
            "{text}"
        );
    }
    // Each command says which transports it reads, with an example.
    for cmd in ["inspect", "audit", "export", "bind"] {
        let text = stdout(&run(ingot().args([cmd, "--help"])));
        for transport in ["oci:", "docker-archive:", "docker://"] {
            assert!(
                text.contains(&format!("ingot {cmd} {transport}")),
                "{cmd}: no {transport} example: {text}"
            );
        }
    }
    let text = stdout(&run(ingot().args(["verify", "--help"])));
    for example in [
        "ingot verify oci:out/hello@sha256:",
        "ingot verify oci:out/hello:1.2.0 --digest sha256:",
        "ingot verify oci:out/hello:1.2.0 --rebuild recipes/hello",
    ] {
        assert!(text.contains(example), "{example}: {text}");
    }
}

#[test]
fn a_layout_keeps_every_version_and_refuses_other_recipes() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let d1 = build(&tiny_recipe(dir.path(), "app", "1"), &layout);
    let d2 = build(&tiny_recipe(dir.path(), "app", "2"), &layout);
    assert_ne!(d1, d2);
    assert_eq!(tags(&layout), ["1", "2"]);
    // Rebuilding a version replaces its entry.
    assert_eq!(build(&tiny_recipe(dir.path(), "app", "1"), &layout), d1);
    assert_eq!(tags(&layout), ["1", "2"]);

    let other = tiny_recipe(dir.path(), "other", "1");
    let out = common::try_build(&other, &layout);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("\"app\""), "{}", stderr(&out));
    assert_eq!(tags(&layout), ["1", "2"]);
}

#[test]
fn concurrent_builds_into_one_layout_keep_every_tag() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let versions: Vec<String> = (1..=6).map(|v| v.to_string()).collect();
    let children: Vec<_> = versions
        .iter()
        .map(|v| {
            ingot()
                .arg("build")
                .arg("-q")
                .arg(tiny_recipe(dir.path(), "app", v))
                .arg("-o")
                .arg(&layout)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_eq!(tags(&layout), versions);
    for v in &versions {
        let out = run(ingot()
            .arg("inspect")
            .arg(format!("oci:{}:{v}", layout.display())));
        assert!(out.status.success(), "{v}: {}", stderr(&out));
    }
}

#[test]
fn an_empty_output_directory_becomes_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("empty");
    std::fs::create_dir(&layout).unwrap();
    build(&hello(), &layout);
    assert!(layout.join("oci-layout").is_file());

    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("notes.txt"), "mine").unwrap();
    let out = common::try_build(hello(), &full);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not an OCI image layout"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read_dir(&full).unwrap().count(),
        1,
        "nothing written into it"
    );
}

/// Layouts are published with the usual modes under the caller's umask, so
/// other users' tools (skopeo, umoci) can read what a build wrote.
#[test]
fn layout_files_follow_the_umask_not_temp_file_modes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("h");
    let out = run(std::process::Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_ingot"))
        .arg("build")
        .arg(hello())
        .arg("-o")
        .arg(&layout));
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&layout), 0o755);
    assert_eq!(mode(&layout.join("blobs/sha256")), 0o755);
    assert_eq!(mode(&layout.join("index.json")), 0o644);
    assert_eq!(mode(&layout.join("oci-layout")), 0o644);
    for blob in std::fs::read_dir(layout.join("blobs/sha256")).unwrap() {
        assert_eq!(mode(&blob.unwrap().path()), 0o644);
    }
}

/// Long layers show a progress line (files, bytes, rate) on a terminal,
/// and nothing when stderr is a pipe or with --quiet.
#[test]
fn progress_is_one_line_on_a_terminal() {
    common::require("script");
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("r/files");
    std::fs::create_dir_all(&files).unwrap();
    // Incompressible data: more than a second of deflate in a test build.
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..4 {
        let data: Vec<u8> = (0..(6 << 20))
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        std::fs::write(files.join(format!("blob{i}")), data).unwrap();
    }
    let recipe = dir.path().join("r/recipe.yaml");
    std::fs::write(
        &recipe,
        "name: big\nversion: '1'\nbase: scratch\nlayers:\n  - name: data\n    steps:\n      - copy: { src: files, dest: /data }\n",
    )
    .unwrap();
    let command = format!(
        "{} build --no-cache {} -o {}",
        env!("CARGO_BIN_EXE_ingot"),
        recipe.display(),
        dir.path().join("tty").display()
    );
    let out = run(std::process::Command::new("script").args(["-qec", &command, "/dev/null"]));
    assert!(out.status.success(), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("layer data: ") && text.contains("files, ") && text.contains("/s)"),
        "{text}"
    );
    // One line redrawn in place: the updates share a terminal line (two
    // when a log line goes above it meanwhile), then a closing line.
    let lines = text
        .split('\n')
        .filter(|l| l.contains("building big: ") && l.contains(" of "))
        .count();
    let updates = text.matches("building big: ").count();
    assert!(lines <= 3 && updates > 2 * lines, "{text:?}");
    assert!(
        text.contains("building big: 4 files, 24.0 MiB in "),
        "{text:?}"
    );

    // Piped, the same progress is plain lines; --progress none shows none.
    let piped = run(ingot()
        .arg("build")
        .arg("--no-cache")
        .arg(&recipe)
        .arg("-o")
        .arg(dir.path().join("pipe")));
    assert!(piped.status.success());
    assert!(!stderr(&piped).contains('\r'), "{}", stderr(&piped));
    let none = run(ingot()
        .args(["build", "--no-cache", "--progress", "none"])
        .arg(&recipe)
        .arg("-o")
        .arg(dir.path().join("none")));
    assert!(none.status.success());
    assert!(!stderr(&none).contains("files, "), "{}", stderr(&none));
}

/// A fresh layout holds what its image references and nothing else: the
/// stemcell's own manifest and config stay out.
#[test]
fn a_fresh_layout_holds_only_what_its_image_references() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    build(&tiny_recipe(dir.path(), "app", "1"), &layout);
    let dry = run(ingot()
        .args(["gc", "--dry-run", "--json"])
        .arg(format!("oci:{}", layout.display())));
    assert!(dry.status.success(), "{}", stderr(&dry));
    let report: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(report["removed"], serde_json::json!([]), "{report}");
    assert!(report["kept"].as_u64().unwrap() >= 3, "{report}");
}

/// `ingot gc` removes what rebuilding a version left behind, and nothing a
/// tag still reaches.
#[test]
fn gc_removes_unreferenced_blobs_only() {
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let recipe = tiny_recipe(dir.path(), "app", "1");
    build(&recipe, &layout);
    build(&tiny_recipe(dir.path(), "app", "2"), &layout);
    // Version 1 again, with other content: its old manifest, config and
    // layer become garbage.
    std::fs::write(
        &recipe,
        "name: app\nversion: '1'\nbase: stemcell:static\nlayers:\n  - name: l\n    steps:\n      - file: { dest: /v, content: 'changed' }\n",
    )
    .unwrap();
    let replaced = run(ingot()
        .arg("build")
        .arg(&recipe)
        .arg("-o")
        .arg(&layout)
        .arg("--replace"));
    assert!(replaced.status.success(), "{}", stderr(&replaced));
    let count = || {
        std::fs::read_dir(layout.join("blobs/sha256"))
            .unwrap()
            .count()
    };
    let before = count();

    let dry = run(ingot()
        .args(["gc", "--dry-run", "--json"])
        .arg(format!("oci:{}", layout.display())));
    assert!(dry.status.success(), "{}", stderr(&dry));
    let report: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    let garbage = report["removed"].as_array().unwrap().len();
    assert!(garbage >= 3, "{report}");
    assert_eq!(count(), before, "a dry run removes nothing");

    let out = run(ingot().arg("gc").arg(format!("oci:{}", layout.display())));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(), before - garbage);
    let verify = run(ingot()
        .arg("verify")
        .arg(format!("oci:{}", layout.display())));
    assert!(verify.status.success(), "{}", stdout(&verify));
    assert_eq!(tags(&layout), ["1", "2"]);
}
