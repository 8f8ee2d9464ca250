//! Recipes: loading, validating and locating them (design.md, "A recipe").
//!
//! [`Recipe::load`] is the only way in: it parses strictly, checks what can
//! be checked before building (names, `src` paths staying inside the recipe
//! directory), and keeps a [`Locator`] so that errors found later, during the
//! build, still name the file, line and column.

pub mod locate;
pub mod platforms;
pub mod schema;
pub mod shape;
pub mod template;
pub mod worktree;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::store::file::{self as store_file, Links};

pub use crate::error::{Pos, RecipeError};
pub use locate::Locator;
pub use schema::{ParamSpec, RecipeSpec, Step};

/// A parsed, validated recipe and where it came from.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub spec: RecipeSpec,
    /// The recipe file, as the user named it (for messages).
    pub file: PathBuf,
    /// The recipe's directory, canonical: `src` paths resolve inside it.
    pub dir: PathBuf,
    /// The recipe file, canonical; None for recipes embedded in the binary.
    pub path: Option<PathBuf>,
    locator: Locator,
    /// The platform it is being built for, and who asked.
    target: platforms::Target,
}

/// The most bytes a recipe file may have, read as such: the shape check
/// ([`shape::MAX_RECIPE_BYTES`]) refuses anything longer anyway.
pub const MAX_RECIPE_SIZE: u64 = shape::MAX_RECIPE_BYTES as u64;

/// The most bytes a template file may have, read as such; see
/// [`template::MAX_TEMPLATE_BYTES`].
pub const MAX_TEMPLATE_SIZE: u64 = template::MAX_TEMPLATE_BYTES as u64;

impl Recipe {
    /// Reads, parses and validates the recipe at `file`: a regular file
    /// (or a symlink to one) of at most [`MAX_RECIPE_SIZE`] bytes.
    pub fn load(file: &Path) -> Result<Recipe, RecipeError> {
        // About the file as a whole: no position in it.
        let whole = |message: String| RecipeError::in_file(file, message);
        let text = store_file::read_regular_string(file, Links::Follow, MAX_RECIPE_SIZE)
            .map_err(|e| whole(format!("cannot read recipe: {e}")))?;
        let dir = file
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .canonicalize()
            .map_err(|e| whole(format!("cannot resolve the recipe's directory: {e}")))?;
        let mut recipe = Recipe::parse(&text, file, dir)?;
        recipe.path = file.canonicalize().ok();
        Ok(recipe)
    }

    /// The recipe file's path within the git work tree holding it
    /// (`apps/web/recipe.yaml`), from its canonical directory; None for a
    /// recipe embedded in the binary or outside any work tree.
    pub fn path_in_work_tree(&self) -> Option<String> {
        self.path.as_ref()?;
        let name = self.file.file_name()?.to_string_lossy();
        worktree::path_in_work_tree(&self.dir, &name)
    }

    /// Parses recipe text; `file` is used for messages, `dir` resolves `src`.
    /// Its size and nesting are checked first, in linear time: the YAML
    /// parser is quadratic in nesting depth.
    pub fn parse(text: &str, file: &Path, dir: PathBuf) -> Result<Recipe, RecipeError> {
        shape::check_shape(text).map_err(|e| RecipeError {
            file: file.to_path_buf(),
            pos: Some(Pos {
                line: e.line,
                col: e.col,
            }),
            message: e.message,
        })?;
        let spec: RecipeSpec = serde_yaml::from_str(text).map_err(|e| {
            let pos = e.location().map(|l| Pos {
                line: l.line(),
                col: l.column(),
            });
            RecipeError {
                file: file.to_path_buf(),
                pos,
                message: strip_location(&e.to_string()),
            }
        })?;
        let recipe = Recipe {
            spec,
            file: file.to_path_buf(),
            dir,
            path: None,
            locator: Locator::new(text),
            target: platforms::Target::Own,
        };
        recipe.validate()?;
        Ok(recipe)
    }

    /// An error at the node `path` (`["layers", "0", "name"]`).
    pub fn error_at<S: AsRef<str>>(&self, path: &[S], message: impl Into<String>) -> RecipeError {
        RecipeError {
            file: self.file.clone(),
            pos: self.locator.find(path),
            message: message.into(),
        }
    }

    /// An error about step `step` of layer `layer`, optionally at one field.
    pub fn step_error(
        &self,
        layer: usize,
        step: usize,
        field: Option<&str>,
        message: impl fmt::Display,
    ) -> RecipeError {
        let s = &self.spec.layers[layer].steps[step];
        let (l, i) = (layer.to_string(), step.to_string());
        let mut path = vec!["layers", &l, "steps", &i, s.kind()];
        path.extend(field);
        self.error_at(
            &path,
            format!(
                "layer {:?}, step {} ({}): {message}",
                self.spec.layers[layer].name,
                step + 1,
                s.kind()
            ),
        )
    }

    /// Resolves a `src` path inside the recipe directory. Refuses absolute
    /// paths and anything that resolves outside the directory, including
    /// through symlinks.
    pub fn resolve_src(&self, src: &str) -> Result<PathBuf, String> {
        let rel = Path::new(src);
        if rel.is_absolute() {
            return Err(format!(
                "src {src:?} must be relative to the recipe's directory"
            ));
        }
        let full = self.dir.join(rel);
        let canonical = full.canonicalize().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("src {src:?} does not exist"),
            _ => format!("src {src:?}: {e}"),
        })?;
        if !canonical.starts_with(&self.dir) {
            return Err(format!(
                "src {src:?} resolves to {}, outside the recipe's directory",
                canonical.display()
            ));
        }
        Ok(canonical)
    }

    /// Checks that need more than one field, or the filesystem.
    fn validate(&self) -> Result<(), RecipeError> {
        let spec = &self.spec;
        if !valid_name(&spec.name) {
            return Err(self.error_at(
                &["name"],
                format!(
                    "name {:?} must be lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
                    spec.name
                ),
            ));
        }
        if !crate::image::reference::valid_tag(&spec.version) {
            return Err(self.error_at(
                &["version"],
                format!(
                    "version {:?} must be a valid tag: letters, digits, '.', '_', '-', at most 128 characters",
                    spec.version
                ),
            ));
        }
        self.validate_platforms()?;
        for (i, layer) in spec.layers.iter().enumerate() {
            let at =
                |field: &str, msg: String| self.error_at(&["layers", &i.to_string(), field], msg);
            if layer.name.is_empty() {
                return Err(at("name", "a layer name must not be empty".into()));
            }
            if spec.layers[..i].iter().any(|l| l.name == layer.name) {
                return Err(at("name", format!("duplicate layer name {:?}", layer.name)));
            }
            for (j, step) in layer.steps.iter().enumerate() {
                self.validate_step(i, j, step)?;
            }
        }
        for (i, archive) in spec.archives.iter().enumerate() {
            self.validate_archive(i, archive)?;
        }
        for key in spec.config.env.keys() {
            if key.is_empty() || key.contains('=') {
                return Err(self.error_at(
                    &["config", "env", key.as_str(), "<key>"],
                    format!("env name {key:?} must be non-empty and contain no '='"),
                ));
            }
        }
        for (i, volume) in spec.config.volumes.iter().enumerate() {
            if volume.parse::<crate::rootfs::meta::ImagePath>().is_err() || volume == "/" {
                return Err(self.error_at(
                    &["config", "volumes", &i.to_string()],
                    format!("volume {volume:?} must be an absolute path below /, without `..`"),
                ));
            }
        }
        for key in spec.annotations.keys() {
            let at = |msg: String| self.error_at(&["annotations", key.as_str(), "<key>"], msg);
            if key.is_empty() {
                return Err(at("an annotation key must not be empty".into()));
            }
            if crate::image::annotation::is_ingots(key) {
                return Err(at(format!(
                    "annotation {key:?} is ingot's own (it writes dev.ingot.* and the image's created, title, version, revision, source, base and ref.name keys); use another key"
                )));
            }
        }
        for (i, allow) in spec.seal.allow.iter().enumerate() {
            if crate::seal::rule(&allow.rule).is_none() {
                let ids: Vec<&str> = crate::seal::RULES.iter().map(|r| r.id).collect();
                return Err(self.error_at(
                    &["seal", "allow", &i.to_string(), "rule"],
                    format!(
                        "unknown seal rule {:?}; rules: {}",
                        allow.rule,
                        ids.join(", ")
                    ),
                ));
            }
            if allow.reason.trim().is_empty() {
                return Err(self.error_at(
                    &["seal", "allow", &i.to_string(), "reason"],
                    "a seal exception needs a reason",
                ));
            }
        }
        for (name, param) in &spec.params {
            self.validate_param(name, param)?;
            if spec.config.env.contains_key(name) {
                return Err(self.error_at(
                    &["params", name.as_str(), "<key>"],
                    format!("param {name:?} collides with config.env {name:?}; a value is either built in or bound at deploy time"),
                ));
            }
        }
        Ok(())
    }

    /// A param must be bindable: a portable environment name, a pattern
    /// that compiles and that its default meets, and no literal secret.
    fn validate_param(&self, name: &str, p: &ParamSpec) -> Result<(), RecipeError> {
        let at = |field: &str, msg: String| self.error_at(&["params", name, field], msg);
        if !crate::params::valid_name(name) {
            return Err(at(
                "<key>",
                format!(
                    "param name {name:?} must be a portable environment name: [A-Za-z_][A-Za-z0-9_]*"
                ),
            ));
        }
        let pattern = match &p.pattern {
            Some(text) => Some(
                crate::params::compile_pattern(text)
                    .map_err(|e| at("pattern", format!("param {name}: {e}")))?,
            ),
            None => None,
        };
        if let Some(default) = &p.default {
            if p.secret {
                return Err(at(
                    "default",
                    format!(
                        "param {name} is secret, so it cannot have a default: the value would be in the image"
                    ),
                ));
            }
            if p.required {
                return Err(at(
                    "required",
                    format!("param {name} has a default, so it is never missing: drop `required`"),
                ));
            }
            if let Some(re) = &pattern
                && !re.is_match(default)
            {
                return Err(at(
                    "default",
                    format!(
                        "param {name}: default {default:?} does not match its pattern {:?}",
                        re.as_str()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// An archive needs an http(s) URL, suites and components that are
    /// plain path segments, and a keyring file inside the recipe directory.
    fn validate_archive(&self, i: usize, a: &schema::ArchiveSpec) -> Result<(), RecipeError> {
        let at =
            |field: &str, msg: String| self.error_at(&["archives", &i.to_string(), field], msg);
        let scheme_ok = ["http://", "https://"]
            .iter()
            .any(|p| a.url.strip_prefix(p).is_some_and(|rest| !rest.is_empty()));
        if !scheme_ok || a.url.ends_with('/') || a.url.contains(char::is_whitespace) {
            return Err(at(
                "url",
                format!(
                    "archive url {:?} must be http:// or https://, with no trailing '/'",
                    a.url
                ),
            ));
        }
        for (field, names) in [("suites", &a.suites), ("components", &a.components)] {
            if names.is_empty() {
                return Err(at(
                    field,
                    format!("an archive needs at least one of {field}"),
                ));
            }
            if let Some(bad) = names.iter().find(|n| !valid_dist_name(n)) {
                return Err(at(
                    field,
                    format!("{bad:?} must be letters, digits, '.', '_', '-' or '/' between them"),
                ));
            }
        }
        let keyring = self.resolve_src(&a.keyring).map_err(|m| at("keyring", m))?;
        if !keyring.is_file() {
            return Err(at(
                "keyring",
                format!("keyring {:?} is not a regular file", a.keyring),
            ));
        }
        Ok(())
    }

    fn validate_step(&self, layer: usize, step: usize, s: &Step) -> Result<(), RecipeError> {
        let err = |field: &str, msg: String| self.step_error(layer, step, Some(field), msg);
        match s {
            // Packages unpack against the layers below, as dpkg would; a
            // step before them in the same layer would be invisible to it.
            Step::Packages(_) if step > 0 => {
                return Err(self.step_error(
                    layer,
                    step,
                    None,
                    "a packages step must be the first step of its layer: put the steps before it in a layer below",
                ));
            }
            Step::Packages(p) => {
                if p.install.is_empty() {
                    return Err(err("install", "install lists no package".into()));
                }
                for (field, names) in [("install", &p.install), ("exclude", &p.exclude)] {
                    if let Some(bad) = names.iter().find(|n| !valid_package_name(n)) {
                        return Err(err(
                            field,
                            format!(
                                "{bad:?} is not a Debian package name (lowercase letters, digits, '+', '-', '.')"
                            ),
                        ));
                    }
                }
            }
            Step::Copy(c) => {
                self.src_paths(&c.src).map_err(|m| err("src", m))?;
                if c.keep_modes && c.mode.is_some() {
                    return Err(err(
                        "keep_modes",
                        "keep_modes keeps the source's modes and mode sets one: choose one".into(),
                    ));
                }
            }
            Step::Extract(e) => {
                let path = self.resolve_src(&e.src).map_err(|m| err("src", m))?;
                if !path.is_file() {
                    return Err(err(
                        "src",
                        format!("archive {:?} is not a regular file", e.src),
                    ));
                }
            }
            Step::Template(t) => {
                for path in self.src_paths(&t.src).map_err(|m| err("src", m))? {
                    if !path.is_file() {
                        return Err(err(
                            "src",
                            format!("template src {:?} is not a regular file", t.src),
                        ));
                    }
                }
                file_dest(&t.dest).map_err(|m| err("dest", m))?;
            }
            Step::File(f) => file_dest(&f.dest).map_err(|m| err("dest", m))?,
            Step::Mkdir(m) if m.path.is_root() => {
                return Err(err("path", "the root directory always exists".into()));
            }
            Step::Symlink(l)
                if l.path.is_root() || l.target.is_empty() || l.target.contains('\0') =>
            {
                return Err(err(
                    "path",
                    "a symlink needs a non-root path and a non-empty target".into(),
                ));
            }
            Step::Attrs(a) if a.mode.is_none() && a.owner.is_none() => {
                return Err(err("path", "attrs needs a mode, an owner or both".into()));
            }
            Step::Attrs(a) if a.path.is_root() && !a.recursive => {
                return Err(err(
                    "path",
                    "the root directory's own mode and owner are the runtime's; use recursive: true for what is below it".into(),
                ));
            }
            Step::Remove(r) if r.path.is_root() => {
                return Err(err("path", "the root directory cannot be removed".into()));
            }
            Step::User(u) => {
                if !valid_account_name(&u.name) {
                    return Err(err(
                        "name",
                        format!("user name {:?} is not a valid account name", u.name),
                    ));
                }
                for (field, value) in [("shell", &u.shell), ("gecos", &u.gecos)] {
                    if value.as_deref().is_some_and(|v| v.contains([':', '\n'])) {
                        return Err(err(
                            field,
                            format!("{field} must not contain ':' or a newline"),
                        ));
                    }
                }
            }
            Step::Group(g) => {
                if let Some(bad) = std::iter::once(&g.name)
                    .chain(&g.members)
                    .find(|n| !valid_account_name(n))
                {
                    return Err(err("name", format!("{bad:?} is not a valid account name")));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// A `dest` naming the one file a `file` or `template` step writes: not the
/// root, and not a directory (written ending in `/`), which would
/// otherwise become a file named after it.
fn file_dest(dest: &schema::Dest) -> Result<(), String> {
    if dest.path.is_root() {
        return Err("dest must not be the root directory".into());
    }
    if dest.dir {
        return Err(format!(
            "dest {dest} ends in '/', a directory: this step writes one file, so name it ({dest}NAME)"
        ));
    }
    Ok(())
}

/// serde_yaml appends " at line L column C" to messages; the position is
/// printed in front instead.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn valid_name(s: &str) -> bool {
    s.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// Debian policy 5.6.1: at least two characters, lowercase letters,
/// digits, `+`, `-` and `.`, starting with a letter or digit.
fn valid_package_name(s: &str) -> bool {
    s.len() >= 2
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// A suite or component: path segments an archive URL can carry.
fn valid_dist_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
}

/// Accounts as useradd(8) accepts them by default, so every tool reading
/// /etc/passwd can too.
fn valid_account_name(s: &str) -> bool {
    s.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Recipe, RecipeError> {
        Recipe::parse(text, Path::new("r.yaml"), std::env::temp_dir())
    }

    #[test]
    fn unknown_field_names_line_and_column() {
        let err = parse("name: a\nversion: '1'\nbase: scratch\nbogus: 1\n").unwrap_err();
        assert_eq!(err.pos.map(|p| p.line), Some(4), "{err}");
        assert!(err.to_string().starts_with("r.yaml:4:"), "{err}");
        assert!(err.message.contains("bogus"), "{err}");
    }

    #[test]
    fn bad_values_are_reported_at_the_value() {
        let text = "name: a\nversion: '1'\nbase: scratch\nlayers:\n  - name: l\n    steps:\n      - mkdir: { path: /x, mode: '0999' }\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.pos.map(|p| p.line), Some(7), "{err}");
        assert!(err.message.contains("octal"), "{err}");
    }

    #[test]
    fn semantic_errors_point_at_the_field() {
        let text = "name: a\nversion: '1'\nbase: scratch\nlayers:\n  - name: l\n    steps:\n      - copy: { src: /etc/passwd, dest: /x }\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.pos, Some(Pos { line: 7, col: 22 }), "{err}");
        assert!(err.message.contains("relative"), "{err}");
    }

    #[test]
    fn params_may_not_shadow_env() {
        let text =
            "name: a\nversion: '1'\nbase: scratch\nparams:\n  X: {}\nconfig:\n  env: { X: '1' }\n";
        let err = parse(text).unwrap_err();
        assert_eq!(err.pos.map(|p| p.line), Some(5), "{err}");
    }

    #[test]
    fn names_and_tags_are_checked() {
        assert!(valid_name("hello") && !valid_name("Hello") && !valid_name("-x"));
        assert!(valid_account_name("nonroot") && !valid_account_name("a:b"));
    }
}
