//! `ingot validate`: a recipe and its lock checked without building and
//! without the network, fast enough for an editor or a pre-commit hook.
//!
//! What is checked is what a build would refuse before it writes a layer,
//! as far as it can be known offline:
//! - the recipe: its schema, values and paths ([`Recipe::load`]), and
//!   those of the `recipe:` bases it builds on (a cycle included);
//! - its templates: each renders with the recipe's vars (`base.digest`,
//!   which only a build knows, is a placeholder), for each platform the
//!   recipe names (linux/amd64 standing in for its base's when it names
//!   none), so a syntax error, a missing var or a limit shows;
//! - `ingot.lock` beside it: that it parses, that it pins every external
//!   base the recipes name and nothing they no longer name, that what it
//!   pins for a stemcell or a base named by digest is what the recipe
//!   names, and that it holds a closure for every `packages` step as the
//!   step is written; for a multi-platform recipe, for every platform. What a tag or a layout resolves to now needs the
//!   base itself, so that is left to `ingot build --locked`.
//!
//! Every problem names a file, and a line and column where it has one (a
//! lock that cannot be read has none); a recipe that does not
//! parse has only that one.

use std::path::{Path, PathBuf};

use crate::base::BaseRef;
use crate::base::stemcell;
use crate::error::{Error, RecipeError};
use crate::image::Platform;
use crate::image::reference::{ImageRef, Selector};
use crate::lock::{self, LockFile};
use crate::pipeline::{packages, pathdiff};
use crate::recipe::schema::Step;
use crate::recipe::{Recipe, template};
use crate::store::file::{self, Links};

/// One problem, where it is: a file, and a line and column where there
/// is one (a lock that cannot be read has none).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl From<RecipeError> for Problem {
    fn from(e: RecipeError) -> Problem {
        Problem {
            file: e.file,
            line: e.pos.map(|p| p.line),
            column: e.pos.map(|p| p.col),
            message: e.message,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(
                f,
                "{}:{line}:{column}: {}",
                self.file.display(),
                self.message
            ),
            _ => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// What `ingot validate` found in one recipe.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The recipe file, as named (a directory's `recipe.yaml`).
    pub path: PathBuf,
    pub ok: bool,
    pub errors: Vec<Problem>,
}

/// How strict to be.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// A missing `ingot.lock` is a problem, as for `ingot build --locked`.
    pub locked: bool,
}

/// Checks the recipe at `file` and its lock.
pub fn validate(file: &Path, options: Options) -> Report {
    let errors = match Recipe::load(file) {
        Ok(root) => check(&root, options),
        Err(e) => vec![e.into()],
    };
    Report {
        path: file.to_path_buf(),
        ok: errors.is_empty(),
        errors,
    }
}

fn check(root: &Recipe, options: Options) -> Vec<Problem> {
    let mut problems = Vec::new();
    let chain = chain(root, &mut problems);
    let platforms = Platforms::of(root);
    for recipe in &chain {
        templates(recipe, &platforms, &mut problems);
    }
    let lock_path = lock::path_for(&root.file);
    match read_lock(&lock_path) {
        Ok(Some((text, lock))) => {
            let lock = Lock {
                lock: &lock,
                path: &lock_path,
                text: &text,
            };
            agreement(root, &chain, &lock, &platforms, &mut problems);
        }
        Ok(None) if options.locked => problems.push(Problem {
            file: root.file.clone(),
            line: None,
            column: None,
            message: format!(
                "--locked: {} does not exist; run `ingot lock {}`",
                lock_path.display(),
                root.file.display()
            ),
        }),
        Ok(None) => {}
        Err(problem) => problems.push(problem),
    }
    problems
}

/// The platforms a recipe is checked for.
struct Platforms {
    list: Vec<Platform>,
    /// Whether the recipe names them (`platform` or `platforms`); else
    /// linux/amd64 stands in for its base's, which only a build knows.
    named: bool,
}

impl Platforms {
    fn of(root: &Recipe) -> Platforms {
        match (root.platforms(), root.wanted_platform()) {
            (Some(list), _) => Platforms {
                list: list.to_vec(),
                named: true,
            },
            (None, Some(p)) => Platforms {
                list: vec![p.clone()],
                named: true,
            },
            (None, None) => Platforms {
                list: vec![Platform::linux_amd64()],
                named: false,
            },
        }
    }
}

/// Adds `problem` unless it is there already (one per platform would
/// say the same).
fn push(problems: &mut Vec<Problem>, problem: Problem) {
    if !problems.contains(&problem) {
        problems.push(problem);
    }
}

/// The recipe and the `recipe:` bases below it, outermost first. A base
/// recipe that does not load, or a cycle, is a problem and ends the chain.
fn chain(root: &Recipe, problems: &mut Vec<Problem>) -> Vec<Recipe> {
    let mut stack: Vec<PathBuf> = root.path.iter().cloned().collect();
    let mut chain = vec![root.clone()];
    while let Some(BaseRef::Recipe(path)) = chain.last().map(|r| r.spec.base.clone()) {
        let Some(recipe) = chain.last() else { break };
        let canonical = match recipe.dir.join(&path).canonicalize() {
            Ok(c) => c,
            Err(e) => {
                let message = format!("base recipe {}: {e}", path.display());
                problems.push(recipe.error_at(&["base"], message).into());
                break;
            }
        };
        if let Some(i) = stack.iter().position(|p| *p == canonical) {
            let cycle: Vec<String> = stack[i..]
                .iter()
                .chain(std::iter::once(&canonical))
                .map(|p| p.display().to_string())
                .collect();
            let message = format!("recipe cycle: {}", cycle.join(" -> "));
            problems.push(recipe.error_at(&["base"], message).into());
            break;
        }
        match Recipe::load(&canonical) {
            Ok(inner) => {
                stack.push(canonical);
                chain.push(inner);
            }
            Err(e) => {
                problems.push(e.into());
                break;
            }
        }
    }
    chain
}

/// What the template sees as `base.name`, as far as it is known offline.
fn base_name(recipe: &Recipe) -> String {
    match &recipe.spec.base {
        BaseRef::Stemcell { name, version } => stemcell::unpack(name, version.as_deref())
            .map(|s| format!("stemcell:{}@{}", s.recipe.spec.name, s.recipe.spec.version))
            .unwrap_or_else(|_| recipe.spec.base.to_string()),
        other => other.to_string(),
    }
}

/// Renders every template of `recipe` with its vars and a placeholder
/// base digest, for each platform: its `src` placeholders filled in for
/// a platform the recipe names (one left to the base is left out).
fn templates(recipe: &Recipe, platforms: &Platforms, problems: &mut Vec<Problem>) {
    for platform in &platforms.list {
        let one = if platforms.named {
            recipe
                .clone()
                .as_base_for(Some(platform))
                .and_then(|r| Ok(r.with_platform_srcs(platform)?.unwrap_or(r)))
        } else {
            Ok(recipe.clone())
        };
        match one {
            Ok(one) => templates_for(&one, platform, problems),
            Err(e) => push(problems, e.into()),
        }
    }
}

fn templates_for(recipe: &Recipe, platform: &Platform, problems: &mut Vec<Problem>) {
    let base_name = base_name(recipe);
    let placeholder = format!("sha256:{}", "0".repeat(64));
    let ctx = template::Context {
        name: &recipe.spec.name,
        version: &recipe.spec.version,
        vars: &recipe.spec.vars,
        base_name: &base_name,
        base_digest: &placeholder,
        platform,
    };
    for (i, layer) in recipe.spec.layers.iter().enumerate() {
        for (j, step) in layer.steps.iter().enumerate() {
            let Step::Template(t) = step else { continue };
            if t.src.contains("{{") {
                // Its platform is the base's, known to a build only.
                continue;
            }
            let at_step = |message: String| -> Problem {
                recipe.step_error(i, j, Some("src"), message).into()
            };
            // Recipe::load resolved `src` inside the recipe's directory.
            let text = recipe.resolve_src(&t.src).and_then(|path| {
                file::read_regular_string(&path, Links::Follow, crate::recipe::MAX_TEMPLATE_SIZE)
                    .map_err(|e| format!("reading template {}: {e}", t.src))
            });
            let text = match text {
                Ok(text) => text,
                Err(message) => {
                    push(problems, at_step(message));
                    continue;
                }
            };
            if let Err(message) = template::render(&t.src, &text, &ctx) {
                // A position in the template points there; anything else
                // at the step that names it.
                push(
                    problems,
                    match template_position(&message) {
                        Some((line, column)) => Problem {
                            file: recipe.file.parent().unwrap_or(Path::new("")).join(&t.src),
                            line: Some(line),
                            column: Some(column),
                            message: format!("template {}: {message}", t.src),
                        },
                        None => at_step(format!("template {}: {message}", t.src)),
                    },
                );
            }
        }
    }
}

/// The first `line L, column C` of a template error.
fn template_position(message: &str) -> Option<(usize, usize)> {
    let rest = &message[message.find("line ")? + 5..];
    let (line, rest) = rest.split_once(", column ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

/// The lock's text and content; None when there is none.
fn read_lock(path: &Path) -> Result<Option<(String, LockFile)>, Problem> {
    let at_start = |message: String| Problem {
        file: path.to_path_buf(),
        line: None,
        column: None,
        message,
    };
    let bytes = match file::read_regular(path, Links::Follow, lock::MAX_LOCK_SIZE) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(at_start(format!("reading the lock: {e}"))),
    };
    let lock = lock::parse(&bytes).map_err(|e| Problem {
        file: path.to_path_buf(),
        line: Some(e.line),
        column: Some(e.column),
        message: strip_location(&e.message),
    })?;
    Ok(Some((String::from_utf8_lossy(&bytes).into_owned(), lock)))
}

/// serde_json appends " at line L column C"; the position is given apart.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// A lock as read: its content, path and text.
struct Lock<'a> {
    lock: &'a LockFile,
    path: &'a Path,
    text: &'a str,
}

/// Whether `lock` pins what the recipes of `chain` name, and only that,
/// for each of `platforms` the recipe names.
fn agreement(
    root: &Recipe,
    chain: &[Recipe],
    read: &Lock,
    platforms: &Platforms,
    problems: &mut Vec<Problem>,
) {
    let (lock, lock_path, text) = (read.lock, read.path, read.text);
    let relock = format!("run `ingot lock {}`", root.file.display());
    let mut used = vec![false; lock.pins.len()];
    for recipe in chain {
        let from = from(recipe, root);
        let external = matches!(
            recipe.spec.base,
            BaseRef::Stemcell { .. } | BaseRef::Image(_)
        );
        if external {
            let reference = recipe.spec.base.to_string();
            // One pin for every platform, or one per platform.
            let found: Vec<usize> = (0..lock.pins.len())
                .filter(|&i| lock.pins[i].from == from && lock.pins[i].reference == reference)
                .collect();
            let unpinned = platforms
                .list
                .iter()
                .map(ToString::to_string)
                .find(|p| !found.iter().any(|&i| lock.pins[i].holds_for(p)));
            match (found.first(), unpinned) {
                (None, _) => problems.push(
                    recipe
                        .error_at(
                            &["base"],
                            format!(
                                "{} pins no base {reference} for {from}; {relock}",
                                lock_path.display()
                            ),
                        )
                        .into(),
                ),
                (Some(_), Some(platform)) if platforms.named => problems.push(
                    recipe
                        .error_at(
                            &["base"],
                            format!(
                                "{} pins no base {reference} for {from} on {platform}; {relock}",
                                lock_path.display()
                            ),
                        )
                        .into(),
                ),
                (Some(_), _) => {
                    for &i in &found {
                        used[i] = true;
                        if let Some(message) = pin_disagrees(recipe, &lock.pins[i]) {
                            let message = format!("{}: {message}; {relock}", lock_path.display());
                            push(problems, recipe.error_at(&["base"], message).into());
                        }
                    }
                }
            }
        }
        // Each named platform's Debian architecture needs its closure; a
        // platform left to the base, any.
        let archs: Vec<Option<&str>> = if platforms.named {
            platforms
                .list
                .iter()
                .filter_map(|p| packages::debian_arch(p).ok())
                .map(Some)
                .collect()
        } else {
            vec![None]
        };
        match packages::requests(recipe, &from, lock) {
            Ok(requests) => {
                for (index, request) in requests {
                    for arch in &archs {
                        let answered = lock.packages.iter().any(|set| {
                            set.from == from
                                && set.layer == request.layer
                                && set.answers(&request)
                                && arch.is_none_or(|a| set.is_for(a))
                        });
                        if !answered {
                            let on = arch.map(|a| format!(" for {a}")).unwrap_or_default();
                            let message = format!(
                                "{} pins no closure{on} for this step as it is written; {relock}",
                                lock_path.display(),
                            );
                            problems.push(recipe.step_error(index, 0, None, message).into());
                        }
                    }
                }
            }
            Err(Error::Recipe(e)) => problems.push(e.into()),
            Err(other) => problems.push(Problem {
                file: recipe.file.clone(),
                line: None,
                column: None,
                message: other.to_string(),
            }),
        }
    }
    for (pin, _) in lock.pins.iter().zip(&used).filter(|(_, used)| !**used) {
        let (line, column) = position_of(text, &pin.reference);
        problems.push(Problem {
            file: lock_path.to_path_buf(),
            line: Some(line),
            column: Some(column),
            message: format!(
                "pins {} for {}, which no longer names it; {relock}",
                pin.reference, pin.from
            ),
        });
    }
}

/// Why a pin does not answer what `recipe` names, where that is known
/// offline: the stemcell version it resolves to, the digest it names.
fn pin_disagrees(recipe: &Recipe, pin: &lock::Pin) -> Option<String> {
    match &recipe.spec.base {
        // An unversioned stemcell builds on the version its pin names, as
        // a tag does: a newer one in this binary makes the pin outdated
        // (`ingot outdated`), not wrong; a version it lacks makes it wrong.
        BaseRef::Stemcell { name, version } => {
            let embedded = |v: &str| {
                stemcell::available()
                    .iter()
                    .any(|(n, e)| n == name && e == v)
            };
            let pinned = stemcell::pinned(&pin.resolved)
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v);
            let fits = match (version, pinned) {
                (Some(wanted), Some(v)) => wanted == v,
                (None, Some(v)) => embedded(v),
                (_, None) => false,
            };
            (!fits).then(|| match version {
                Some(v) => format!(
                    "pins {} for {}, which now resolves to stemcell:{name}@{v}",
                    pin.resolved, pin.reference
                ),
                None => format!(
                    "pins {} for {}, a version this ingot does not embed",
                    pin.resolved, pin.reference
                ),
            })
        }
        BaseRef::Image(image) => {
            let named = match image {
                ImageRef::Docker(r) => r.digest,
                ImageRef::Oci(r) => match &r.selector {
                    Selector::Digest(d) => Some(*d),
                    _ => None,
                },
                ImageRef::DockerArchive(_) => None,
            }?;
            (pin.manifest != Some(named)).then(|| {
                let pinned = pin
                    .manifest
                    .map_or_else(|| "no manifest".to_string(), |d| d.to_string());
                format!(
                    "pins manifest {pinned} for {}, which names {named}",
                    pin.reference
                )
            })
        }
        _ => None,
    }
}

/// `recipe`'s path as the root recipe's lock names it.
fn from(recipe: &Recipe, root: &Recipe) -> String {
    match &recipe.path {
        Some(p) => pathdiff(p, &root.dir),
        None => recipe.file.display().to_string(),
    }
}

/// The 1-based line and column of `"reference": "<reference>"` in the
/// lock's text, else of the reference anywhere, else 1:1.
fn position_of(text: &str, reference: &str) -> (usize, usize) {
    let quoted = serde_json::to_string(reference).unwrap_or_default();
    let offset = text
        .find(&format!("\"reference\": {quoted}"))
        .or_else(|| text.find(&quoted));
    let Some(offset) = offset else {
        return (1, 1);
    };
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_positions_are_read_from_messages() {
        assert_eq!(
            template_position("Failed to parse 'x': line 2, column 8: expected"),
            Some((2, 8))
        );
        assert_eq!(template_position("Variable `vars.x` not found"), None);
    }

    #[test]
    fn pins_are_found_in_the_lock_text() {
        let text = "{\n  \"pins\": [\n    {\n      \"reference\": \"stemcell:static\"\n";
        assert_eq!(position_of(text, "stemcell:static"), (4, 7));
        assert_eq!(position_of(text, "oci:x"), (1, 1));
    }
}
