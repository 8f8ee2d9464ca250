//! `ingot build DIR…`: every recipe of a fleet built in dependency order,
//! independent recipes in parallel on threads of this process (one shared
//! build cache, which its atomic renames make safe), going on past a
//! failure: what stands on a failed recipe is skipped, everything else is
//! built, and each outcome is reported.

use std::sync::{Condvar, Mutex, MutexGuard};

use super::{Fleet, Member};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::pipeline::{self, Emit, Settings, Sources};
use crate::progress::Progress;
use crate::recipe::Recipe;

/// What every build of the fleet shares.
pub struct Options<'a> {
    pub settings: &'a Settings,
    pub sources: &'a Sources,
    /// `--locked`, `--tag`, `--replace`: the output is each member's own.
    pub emit: &'a Emit,
    /// How many recipes build at once (at least 1).
    pub jobs: usize,
}

/// Where time and words come from and go: handed in by the CLI, so this
/// module reads no clock and writes nowhere itself.
pub struct Hooks<'a> {
    /// Seconds since the run began.
    pub clock: &'a (dyn Fn() -> f64 + Sync),
    /// A progress display for the build of the recipe named.
    pub progress: &'a (dyn Fn(&str) -> Progress + Sync),
    /// A log line of the recipe named.
    pub log: &'a (dyn Fn(&str, &str) + Sync),
}

/// How one recipe of the fleet ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Built, and its layout now holds it.
    Built,
    /// Built to the image its layout already held: nothing changed.
    Unchanged,
    Failed,
    /// Not built: a recipe it builds on failed or was skipped.
    Skipped,
}

impl Status {
    /// As `--json` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Built => "built",
            Status::Unchanged => "unchanged",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
    }
}

/// Layers of the recipe's own (every platform's, for a multi-platform
/// recipe): written by this build, or served from the cache (`cached`),
/// of which `remote` were fetched from a `--cache-from` registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LayerCounts {
    pub built: usize,
    pub cached: usize,
    pub remote: usize,
}

/// One recipe's line of `ingot build DIR… --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub name: String,
    pub version: Option<String>,
    pub recipe: std::path::PathBuf,
    pub output: std::path::PathBuf,
    pub status: Status,
    /// The manifest's (or index's) digest; None unless built.
    pub digest: Option<Digest>,
    /// The error, naming the recipe file; or why it was skipped.
    pub error: Option<String>,
    pub depends_on: Vec<String>,
    pub layers: LayerCounts,
    /// When its build started and finished, in seconds since the run
    /// began; None when skipped.
    pub started: Option<f64>,
    pub finished: Option<f64>,
    pub seconds: Option<f64>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        matches!(self.status, Status::Built | Status::Unchanged)
    }
}

/// Where a member is in the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done,
    /// Failed or skipped: members on it are skipped.
    Broken,
}

struct Board {
    states: Vec<State>,
    outcomes: Vec<Option<Outcome>>,
}

/// Builds every member of `fleet`, each once its dependencies are built,
/// at most `options.jobs` at a time; returns the outcomes in the fleet's
/// order. A failure stops only what stands on it.
pub fn run(fleet: &Fleet, options: &Options, hooks: &Hooks) -> Vec<Outcome> {
    let count = fleet.members.len();
    let board = Mutex::new(Board {
        states: vec![State::Pending; count],
        outcomes: vec![None; count],
    });
    let changed = Condvar::new();
    let workers = options.jobs.clamp(1, count.max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| work(fleet, options, hooks, &board, &changed));
        }
    });
    let board = board.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut outcomes = board.outcomes;
    fleet
        .order
        .iter()
        .filter_map(|&i| outcomes[i].take())
        .collect()
}

/// One worker: takes the next member that can be built, until none is
/// left.
fn work(fleet: &Fleet, options: &Options, hooks: &Hooks, board: &Mutex<Board>, changed: &Condvar) {
    loop {
        let next = {
            let mut b = lock(board);
            loop {
                match pick(fleet, &mut b) {
                    Pick::Build(i) => break Some(i),
                    Pick::Done => break None,
                    Pick::Wait => b = changed.wait(b).unwrap_or_else(|e| e.into_inner()),
                }
            }
        };
        let Some(i) = next else {
            changed.notify_all();
            return;
        };
        let outcome = build_one(fleet, &fleet.members[i], options, hooks);
        let mut b = lock(board);
        b.states[i] = if outcome.ok() {
            State::Done
        } else {
            State::Broken
        };
        b.outcomes[i] = Some(outcome);
        drop(b);
        changed.notify_all();
    }
}

fn lock(board: &Mutex<Board>) -> MutexGuard<'_, Board> {
    board.lock().unwrap_or_else(|e| e.into_inner())
}

enum Pick {
    Build(usize),
    Wait,
    Done,
}

/// The first pending member, in the fleet's order, whose dependencies are
/// built; members on a broken one are skipped on the way. A member in a
/// `recipe:` cycle is built at once: its build reports the cycle.
fn pick(fleet: &Fleet, board: &mut Board) -> Pick {
    let mut waiting = false;
    for &i in &fleet.order {
        if board.states[i] != State::Pending {
            waiting |= board.states[i] == State::Running;
            continue;
        }
        let member = &fleet.members[i];
        let broken = member
            .depends_on
            .iter()
            .find(|&&d| board.states[d] == State::Broken);
        if let Some(&d) = broken {
            board.states[i] = State::Broken;
            board.outcomes[i] = Some(skipped(fleet, member, &fleet.members[d]));
            continue;
        }
        let ready = member.wave.is_none()
            || member
                .depends_on
                .iter()
                .all(|&d| board.states[d] == State::Done);
        if ready {
            board.states[i] = State::Running;
            return Pick::Build(i);
        }
        waiting = true;
    }
    if waiting { Pick::Wait } else { Pick::Done }
}

fn skipped(fleet: &Fleet, member: &Member, on: &Member) -> Outcome {
    Outcome {
        name: member.name.clone(),
        version: member.version.clone(),
        recipe: member.file.clone(),
        output: member.output.clone(),
        status: Status::Skipped,
        digest: None,
        error: Some(format!(
            "{}: not built: its base recipe {} ({}) did not build",
            member.file.display(),
            on.name,
            on.file.display()
        )),
        depends_on: fleet.names(member),
        layers: LayerCounts::default(),
        started: None,
        finished: None,
        seconds: None,
    }
}

/// Builds one member as `ingot build RECIPE -o OUTPUT` would.
fn build_one(fleet: &Fleet, member: &Member, options: &Options, hooks: &Hooks) -> Outcome {
    let name = member.name.as_str();
    let started = (hooks.clock)();
    (hooks.log)(name, &format!("building {}", member.file.display()));
    let progress = (hooks.progress)(name);
    let mut log = |line: &str| (hooks.log)(name, line);
    let emit = Emit {
        output: member.output.clone(),
        ..options.emit.clone()
    };
    let result = Recipe::load(&member.file)
        .map_err(Error::from)
        .and_then(|recipe| {
            pipeline::build(
                &recipe,
                options.settings,
                options.sources,
                &emit,
                &progress,
                &mut log,
            )
        });
    let finished = (hooks.clock)();
    let mut outcome = Outcome {
        name: member.name.clone(),
        version: member.version.clone(),
        recipe: member.file.clone(),
        output: member.output.clone(),
        status: Status::Failed,
        digest: None,
        error: None,
        depends_on: fleet.names(member),
        layers: LayerCounts::default(),
        started: Some(started),
        finished: Some(finished),
        seconds: Some(finished - started),
    };
    match result {
        Ok(report) => {
            outcome.status = if report.unchanged {
                Status::Unchanged
            } else {
                Status::Built
            };
            outcome.version = Some(report.version.clone());
            outcome.digest = Some(report.digest);
            outcome.layers = LayerCounts {
                built: report.cache.built,
                cached: report.cache.cached,
                remote: report.cache.remote,
            };
            let what = if report.unchanged {
                "unchanged"
            } else {
                "built"
            };
            (hooks.log)(
                name,
                &format!(
                    "{what} {} ({} layers built, {} from the cache, {} of them fetched)",
                    report.digest,
                    outcome.layers.built,
                    outcome.layers.cached,
                    outcome.layers.remote
                ),
            );
        }
        Err(err) => {
            let message = naming_file(&err, member);
            (hooks.log)(name, &format!("error: {message}"));
            outcome.error = Some(message);
        }
    }
    outcome
}

/// The error as one line that names the recipe file.
fn naming_file(err: &Error, member: &Member) -> String {
    let text = err.to_string();
    let file = member.file.display().to_string();
    if text.contains(&file) {
        text
    } else {
        format!("{file}: {text}")
    }
}

/// The run's result: Ok when every recipe built, else a failure naming
/// those that failed and those skipped.
pub fn verdict(outcomes: &[Outcome]) -> Result<()> {
    let names = |status: Status| -> Vec<&str> {
        outcomes
            .iter()
            .filter(|o| o.status == status)
            .map(|o| o.name.as_str())
            .collect()
    };
    let (failed, skipped) = (names(Status::Failed), names(Status::Skipped));
    if failed.is_empty() && skipped.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "{} of {} recipes failed ({})",
        failed.len(),
        outcomes.len(),
        failed.join(", ")
    );
    if !skipped.is_empty() {
        message.push_str(&format!(
            ", {} skipped ({})",
            skipped.len(),
            skipped.join(", ")
        ));
    }
    Err(Error::Failed(message))
}
