//! `ingot outdated` and `ingot lock --update`: each recipe's `ingot.lock`
//! against what its bases and package requests resolve to now (a
//! stemcell's newest version, a registry tag that moved, a package the
//! archive has a newer version of), as the list of pins that would move.
//! `--update` moves them and says exactly what moved; nothing is built.

use std::path::Path;

use serde::Serialize;

use crate::lock::{self, Change};
use crate::pipeline::{self, Log, Sources};
use crate::recipe::Recipe;

/// What a recipe's lock is, against what it would be now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LockState {
    /// Every pin is what resolving now gives.
    Current,
    /// Some pin would move ([`Staleness::changes`]).
    Outdated,
    /// There is no `ingot.lock`.
    Missing,
    /// The recipe, its lock or a resolution failed ([`Staleness::error`]).
    Failed,
}

/// One recipe's lock, checked.
#[derive(Debug, Clone, Serialize)]
pub struct Staleness {
    /// The recipe file, as found.
    pub recipe: String,
    /// Its name, once it loads.
    pub name: Option<String>,
    pub lock: LockState,
    /// Every pin that moves (all of them for a missing lock).
    pub changes: Vec<Change>,
    /// Whether `ingot.lock` was written (`--update`).
    pub written: bool,
    pub error: Option<String>,
}

/// Checks the lock of the recipe at `file` against a fresh resolution,
/// and with `update` writes the fresh one when it differs or is missing.
/// A failure is the report's, not an `Err`: the other recipes go on.
pub fn check(file: &Path, sources: &Sources, update: bool, log: Log) -> Staleness {
    let mut out = Staleness {
        recipe: file.display().to_string(),
        name: None,
        lock: LockState::Failed,
        changes: Vec::new(),
        written: false,
        error: None,
    };
    if let Err(e) = check_into(&mut out, file, sources, update, log) {
        out.lock = LockState::Failed;
        out.error = Some(e.to_string());
    }
    out
}

fn check_into(
    out: &mut Staleness,
    file: &Path,
    sources: &Sources,
    update: bool,
    log: Log,
) -> crate::error::Result<()> {
    let recipe = Recipe::load(file)?;
    out.name = Some(recipe.spec.name.clone());
    let path = lock::path_for(&recipe.file);
    let old = lock::read(&path)?;
    let new = pipeline::resolve_lock(&recipe, sources, log)?;
    out.changes = lock::changes(old.as_ref(), &new);
    out.lock = match (&old, out.changes.is_empty()) {
        (None, _) => LockState::Missing,
        (Some(_), true) => LockState::Current,
        (Some(_), false) => LockState::Outdated,
    };
    if update && out.lock != LockState::Current {
        lock::write(&path, &new)?;
        out.written = true;
    }
    Ok(())
}

/// The reports in words: a line per recipe, then each change indented.
pub fn render(reports: &[Staleness]) -> String {
    let mut text = String::new();
    for r in reports {
        let state = match r.lock {
            LockState::Current => "current",
            LockState::Outdated => "outdated",
            LockState::Missing => "no lock",
            LockState::Failed => "failed",
        };
        let written = if r.written {
            ", ingot.lock written"
        } else {
            ""
        };
        text.push_str(&format!("{state:<8} {}{written}\n", r.recipe));
        if let Some(e) = &r.error {
            text.push_str(&format!("  {e}\n"));
        }
        for c in &r.changes {
            text.push_str(&format!("  {c}\n"));
        }
    }
    text
}
