//! `ingot plan DIR…`: a fleet's graph as data, without building, for a CI
//! engine to fan out one job per recipe: each recipe's base and the
//! members it depends on, waves, its lock's state, and whether its layout
//! already holds what a build would make.
//!
//! "Up to date" is decided from the build cache alone
//! ([`pipeline::predict`]): the image is assembled as a build would
//! assemble it, every layer (the recipe's, and those of its `recipe:` and
//! stemcell bases) served from the cache, nothing written; it is up to date
//! when that digest is the one the layout tags with the recipe's version.
//! When the cache lacks a layer, only a build could tell: the recipe is
//! not up to date, and `reason` names the layer.

use std::path::PathBuf;

use super::{Fleet, Member};
use crate::commands::validate;
use crate::digest::Digest;
use crate::image::reference::Selector;
use crate::lock;
use crate::pipeline::{self, Prediction, Settings, Sources};
use crate::recipe::Recipe;
use crate::store::layout::Layout;

/// The state of a recipe's `ingot.lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LockState {
    /// No `ingot.lock` beside the recipe (`build --locked` fails).
    Missing,
    /// Present, and `ingot validate --locked` finds nothing wrong.
    Locked,
    /// Present, and `ingot validate --locked` finds it out of step with
    /// the recipe (its problems are listed).
    Stale,
}

/// One recipe of the plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    pub name: String,
    pub version: Option<String>,
    /// The recipe file, and its directory: what `ingot build` takes.
    pub recipe: PathBuf,
    pub dir: PathBuf,
    pub output: PathBuf,
    /// Its `base`, as written.
    pub base: Option<String>,
    /// The recipes of the fleet it builds on.
    pub depends_on: Vec<String>,
    /// Its wave: 0 on no other recipe of the fleet; null in a cycle.
    pub wave: Option<usize>,
    pub lock: LockState,
    /// Whether `ingot validate` finds the recipe itself sound.
    pub valid: bool,
    /// What `ingot validate --locked` reports, one line each.
    pub problems: Vec<String>,
    /// The digest its layout tags with its version, if it has one.
    pub built: Option<Digest>,
    /// The digest a build would give, known from the cache alone.
    pub would_build: Option<Digest>,
    /// `built` is `would_build`: building it again would change nothing.
    pub up_to_date: bool,
    /// Why it is not up to date.
    pub reason: Option<String>,
}

/// `ingot plan --json`: the recipes in order, and the waves of names.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    pub recipes: Vec<Entry>,
    /// Names by wave: every recipe of a wave can build at once, once the
    /// waves before it have.
    pub waves: Vec<Vec<String>>,
}

/// Plans `fleet`: what a build with `settings` and `sources` would do.
pub fn plan(fleet: &Fleet, settings: &Settings, sources: &Sources) -> Plan {
    let recipes = fleet
        .order
        .iter()
        .map(|&i| entry(fleet, &fleet.members[i], settings, sources))
        .collect();
    Plan {
        recipes,
        waves: fleet.waves(),
    }
}

fn entry(fleet: &Fleet, member: &Member, settings: &Settings, sources: &Sources) -> Entry {
    let report = validate::validate(&member.file, validate::Options { locked: false });
    let lock_path = lock::path_for(&member.file);
    let about_lock =
        |p: &validate::Problem| p.file == lock_path || p.message.contains("ingot lock");
    let lock = if !lock_path.exists() {
        LockState::Missing
    } else if report.errors.iter().any(about_lock) {
        LockState::Stale
    } else {
        LockState::Locked
    };
    let valid = !report.errors.iter().any(|p| !about_lock(p));
    let built = member
        .version
        .as_deref()
        .and_then(|version| tagged(member, version));
    let (would_build, reason) = if valid {
        match Recipe::load(&member.file)
            .map_err(crate::Error::from)
            .and_then(|r| pipeline::predict(&r, settings, sources))
        {
            Ok(Prediction::Digest(d)) => (Some(d), None),
            Ok(Prediction::NotCached(what)) => {
                (None, Some(format!("{what} is not in the build cache")))
            }
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, Some("the recipe is not valid".to_string()))
    };
    let up_to_date = built.is_some() && built == would_build;
    let reason = match (built, would_build) {
        _ if up_to_date => None,
        (None, _) => Some(match reason {
            Some(r) => format!("not built ({r})"),
            None => "not built".to_string(),
        }),
        (Some(b), Some(w)) => Some(format!(
            "{} holds {b}; a build would give {w}",
            member.output.display()
        )),
        (Some(_), None) => reason,
    };
    Entry {
        name: member.name.clone(),
        version: member.version.clone(),
        dir: member.file.parent().map(PathBuf::from).unwrap_or_default(),
        recipe: member.file.clone(),
        output: member.output.clone(),
        base: member.base.clone(),
        depends_on: fleet.names(member),
        wave: member.wave,
        lock,
        valid,
        problems: report.errors.iter().map(ToString::to_string).collect(),
        built,
        would_build,
        up_to_date,
        reason,
    }
}

/// The digest the member's layout tags with `version`, if any.
fn tagged(member: &Member, version: &str) -> Option<Digest> {
    let layout = Layout::open(&member.output).ok()?;
    let desc = layout.find(&Selector::Tag(version.to_string())).ok()?;
    Digest::try_from(desc.digest()).ok()
}

/// `ingot plan`'s words for people: the waves, then one line per recipe.
pub fn render(plan: &Plan) -> String {
    let mut text = String::new();
    for (i, wave) in plan.waves.iter().enumerate() {
        text.push_str(&format!("wave {i}: {}\n", wave.join(" ")));
    }
    for e in &plan.recipes {
        let version = e.version.as_deref().unwrap_or("?");
        let after = if e.depends_on.is_empty() {
            String::new()
        } else {
            format!(" on {}", e.depends_on.join(", "))
        };
        let wave = e.wave.map_or("cycle".to_string(), |w| format!("wave {w}"));
        let lock = match e.lock {
            LockState::Missing => "no lock",
            LockState::Locked => "locked",
            LockState::Stale => "lock stale",
        };
        let state = match (&e.reason, e.built) {
            (None, Some(d)) => format!("up to date ({d})"),
            (Some(r), _) => format!("to build: {r}"),
            (None, None) => "to build".to_string(),
        };
        text.push_str(&format!(
            "{} {version} ({}): {wave}{after}, {lock}, {state}\n",
            e.name,
            e.recipe.display()
        ));
        for p in &e.problems {
            text.push_str(&format!("  {p}\n"));
        }
    }
    text
}
