//! `ingot --version` names the versions images record, `ingot cache du`
//! reads in human sizes (exact bytes in --json), and `ingot completions
//! SHELL` prints a completion script each shell accepts.

mod common;

use std::process::Command;

use common::{ingot, run, stderr, stdout};

#[test]
fn version_names_the_encoding_policy_and_scanner() {
    let out = run(ingot().arg("--version"));
    assert!(out.status.success());
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("ingot {}", env!("CARGO_PKG_VERSION")));
    for (what, annotation) in [
        ("layer encoding ", "dev.ingot.layer.encoding"),
        ("seal policy ", "dev.ingot.seal.policy"),
    ] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("no {what:?} in {text}"));
        assert!(line.ends_with(&format!("({annotation})")), "{line}");
    }
    assert!(
        lines.iter().any(|l| l.starts_with("seal scanner ")),
        "{text}"
    );

    // What --version says is what a built image records.
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("h");
    common::build(&common::example("hello"), &layout);
    let inspected = stdout(&run(ingot()
        .arg("inspect")
        .arg(format!("oci:{}:1.2.0", layout.display()))
        .arg("--json")));
    let encoding = lines[1]
        .strip_prefix("layer encoding ")
        .and_then(|r| r.split(' ').next())
        .unwrap();
    assert!(
        inspected.contains(&format!("\"dev.ingot.layer.encoding\": \"{encoding}\"")),
        "{inspected}"
    );

    // -V stays one line.
    assert_eq!(stdout(&run(ingot().arg("-V"))).lines().count(), 1);
}

#[test]
fn cache_du_prints_human_sizes_and_json_keeps_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let built = run(ingot()
        .args(["build", "-q", "--cache"])
        .arg(&cache)
        .arg(common::example("hello"))
        .arg("-o")
        .arg(dir.path().join("h")));
    assert!(built.status.success(), "{}", stderr(&built));
    let du = |json: bool| {
        let mut cmd = ingot();
        cmd.args(["cache", "du", "--cache"]).arg(&cache);
        if json {
            cmd.arg("--json");
        }
        let out = run(&mut cmd);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let report: serde_json::Value = serde_json::from_str(&du(true)).unwrap();
    let bytes = report["bytes"].as_u64().unwrap();
    assert!(bytes > 1024, "{report}");
    let text = du(false);
    // `… holds 12.3 KiB (12597 bytes): N blobs, M cached layers`
    let human = text
        .split(" holds ")
        .nth(1)
        .and_then(|rest| rest.split(" (").next())
        .unwrap_or_default();
    assert!(human.ends_with(" KiB") || human.ends_with(" MiB"), "{text}");
    assert!(text.contains(&format!("({bytes} bytes)")), "{text}");

    let empty = dir.path().join("empty");
    let out = run(ingot().args(["cache", "du", "--cache"]).arg(&empty));
    assert!(
        stdout(&out).contains(" holds 0 bytes: 0 blobs"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn completions_are_scripts_each_shell_reads() {
    for (shell, check) in [("bash", "bash"), ("zsh", "zsh"), ("fish", "fish")] {
        let out = run(ingot().args(["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in ["validate", "export", "progress"] {
            assert!(script.contains(word), "{shell}: no {word}");
        }
        // The shell parses it, where it is installed.
        let installed = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {check}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if installed {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("ingot.completion");
            std::fs::write(&file, &script).unwrap();
            let flag = if shell == "fish" {
                "--no-execute"
            } else {
                "-n"
            };
            let parsed = run(Command::new(check).arg(flag).arg(&file));
            assert!(parsed.status.success(), "{shell}: {}", stderr(&parsed));
        }
    }
    common::require("bash");
    let out = run(ingot().args(["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2));
    let help = stdout(&run(ingot().args(["completions", "--help"])));
    assert!(
        help.contains("Examples:") && help.contains("ingot completions bash"),
        "{help}"
    );
}
