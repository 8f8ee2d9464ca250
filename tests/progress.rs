//! `--progress auto|plain|none`: off a terminal, long work prints plain
//! progress lines (auto and plain); none prints no progress but keeps the
//! log; `--quiet` prints nothing. (The terminal's line redrawn in place is
//! tested in tests/cli.rs under `script`.)

mod common;

use std::path::{Path, PathBuf};

use common::{ingot, run, stderr};

/// A recipe copying 24 MiB of incompressible data: more than a second of
/// deflate in a test build.
fn big_recipe(dir: &Path) -> PathBuf {
    let files = dir.join("r/files");
    std::fs::create_dir_all(&files).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
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
    let recipe = dir.join("r/recipe.yaml");
    std::fs::write(
        &recipe,
        "name: big\nversion: '1'\nbase: scratch\nlayers:\n  - name: data\n    steps:\n      - copy: { src: files, dest: /data }\n",
    )
    .unwrap();
    recipe
}

fn build(recipe: &Path, out: &Path, flags: &[&str]) -> String {
    let output = run(ingot()
        .args(["build", "--no-cache"])
        .args(flags)
        .arg(recipe)
        .arg("-o")
        .arg(out));
    assert!(output.status.success(), "{}", stderr(&output));
    stderr(&output)
}

/// The progress lines in `text`: updates and the closing line.
fn progress_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("building big: "))
        .collect()
}

#[test]
fn plain_lines_off_a_terminal_none_with_none() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = big_recipe(dir.path());

    for flags in [&[][..], &["--progress", "plain"][..]] {
        let text = build(&recipe, &dir.path().join("o"), flags);
        let lines = progress_lines(&text);
        assert!(lines.len() >= 2, "{flags:?}: {text}");
        assert!(!text.contains('\r') && !text.contains('\u{1b}'), "{text:?}");
        // Updates name bytes of the total and a rate; the last line closes.
        assert!(
            lines[0].contains(" of 24.0 MiB (") && lines[0].ends_with("/s)"),
            "{text}"
        );
        let last = lines[lines.len() - 1];
        assert!(last.contains("4 files, 24.0 MiB in "), "{text}");
        assert!(text.contains("building big 1 on scratch"), "{text}");
    }

    let text = build(&recipe, &dir.path().join("o"), &["--progress", "none"]);
    assert!(progress_lines(&text).is_empty(), "{text}");
    assert!(
        text.contains("building big 1 on scratch"),
        "the log stays: {text}"
    );

    let text = build(
        &recipe,
        &dir.path().join("o"),
        &["--quiet", "--progress", "plain"],
    );
    assert_eq!(text, "", "--quiet wins");
}

#[test]
fn progress_takes_only_its_three_values() {
    let out = run(ingot().args(["inspect", "oci:x", "--progress", "bar"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("auto, plain, none"),
        "{}",
        stderr(&out)
    );
}

/// Reading a docker-archive re-encodes its layers, which takes as long as
/// a build: its bytes are reported as progress too.
#[test]
fn a_docker_archive_read_shows_its_progress() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = big_recipe(dir.path());
    let layout = dir.path().join("o");
    build(&recipe, &layout, &["--quiet"]);
    let archive = dir.path().join("big.tar");
    let exported = run(ingot()
        .arg("export")
        .arg(format!("oci:{}:1", layout.display()))
        .args(["--format", "docker-archive", "-o"])
        .arg(&archive));
    assert!(exported.status.success(), "{}", stderr(&exported));
    // Every update shown, so the test does not depend on the machine
    // taking a second to re-encode the archive.
    let read = run(ingot()
        .env("INGOT_PROGRESS_INTERVAL_MS", "0")
        .args(["inspect", "--progress", "plain"])
        .arg(format!("docker-archive:{}", archive.display())));
    assert!(read.status.success(), "{}", stderr(&read));
    let text = stderr(&read);
    let name = format!("reading docker-archive:{}: ", archive.display());
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(&name)).collect();
    assert!(!lines.is_empty(), "{text}");
    assert!(lines.iter().any(|l| l.contains(" MiB")), "{text}");
}
