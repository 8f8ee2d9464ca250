//! Replays what the fuzz harness keeps (examples/fuzz.rs, scripts/fuzz):
//! every input in `fuzz/regressions/<target>/` (inputs that once made a
//! parser panic, hang or abort) and in the saved corpus `fuzz/corpus/<target>/`
//! must come back, accepted or refused, without a panic and in time. The
//! seeds built in `src/fuzz.rs` must be accepted: a seed refused at the
//! first check would leave the fuzzer nothing deep to mutate.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use ingot::fuzz::{TARGETS, Target};

/// Generous for a debug build on a busy machine; the engine's own limit,
/// in release, is 5 s.
const LIMIT: Duration = Duration::from_secs(60);

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files under `fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = root().join("fuzz").join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `input` through `target` on its own thread; the outcome, or a
/// message naming what went wrong.
fn run(target: &'static Target, input: Vec<u8>) -> Result<Result<(), String>, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(|| (target.run)(&input));
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(_)) => Err("panicked".into()),
        Err(_) => Err(format!("did not return within {} s", LIMIT.as_secs())),
    }
}

#[test]
fn saved_inputs_return_without_panicking() {
    let mut failures = Vec::new();
    let mut count = 0;
    for target in TARGETS {
        for kind in ["regressions", "corpus"] {
            for file in inputs(kind, target.name) {
                count += 1;
                let input = std::fs::read(&file).unwrap();
                if let Err(e) = run(target, input) {
                    failures.push(format!("{} ({}): {e}", file.display(), target.name));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(count > 0, "no saved inputs under fuzz/");
}

#[test]
fn every_seed_built_in_code_is_accepted() {
    for target in TARGETS {
        for (n, seed) in (target.seeds)().unwrap().into_iter().enumerate() {
            let outcome = run(target, seed).unwrap();
            assert_eq!(outcome, Ok(()), "{} seed {n}", target.name);
        }
    }
}

/// A directory named after no target would be skipped without a word.
#[test]
fn saved_inputs_are_filed_under_a_target() {
    for kind in ["regressions", "corpus"] {
        let dir = root().join("fuzz").join(kind);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                path.is_dir() && ingot::fuzz::target(&name).is_some(),
                "{}: expected a directory named after a target ({})",
                path.display(),
                TARGETS
                    .iter()
                    .map(|t| t.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
}

/// `--target NAME` and the directories under `fuzz/` find a target by its
/// name: names are unique.
#[test]
fn targets_are_named_once() {
    let names: std::collections::BTreeSet<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names.len(), TARGETS.len(), "{names:?}");
}
