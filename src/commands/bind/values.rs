//! Values files: one environment's values for an image's params.
//!
//! ```yaml
//! LOG_LEVEL: debug                              # a literal, taken as written
//! DATABASE_URL: { secretRef: app-db/url }       # a Kubernetes secret's key
//! API_TOKEN: { env: CI_API_TOKEN }              # read when binding
//! ```
//!
//! Scalars are read as their literal text, so `PORT: 0750` is the string
//! "0750", not a number YAML reinterpreted. The file is read with
//! yaml-rust2's marked events rather than serde: every entry keeps its
//! position for the problems binding reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use yaml_rust2::parser::Event;
use yaml_rust2::scanner::{Marker, TScalarStyle};

pub use crate::recipe::Pos;
use crate::recipe::RecipeError;

/// What a values file gives for one param.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Given {
    Literal(String),
    /// A key of a Kubernetes secret: `{ secretRef: NAME/KEY }`.
    SecretRef {
        name: String,
        key: String,
    },
    /// An environment variable of the `ingot bind` process: `{ env: VAR }`.
    Env(String),
}

/// One entry of a values file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub given: Given,
    pub pos: Pos,
}

/// A parsed values file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    pub file: PathBuf,
    pub entries: BTreeMap<String, Entry>,
}

impl Values {
    /// `FILE:LINE:COL: message`, for a problem with one entry.
    pub fn at(&self, pos: Pos, message: &str) -> String {
        format!(
            "{}:{}:{}: {message}",
            self.file.display(),
            pos.line,
            pos.col
        )
    }
}

/// Parses a values file's text. Structure errors stop at the first, with
/// its position; what the entries mean is judged later, all at once.
pub fn parse(file: &Path, text: &str) -> Result<Values, RecipeError> {
    let events = crate::recipe::locate::marked_events(text)
        .map_err(|e| error(file, pos(e.marker()), e.info().to_string()))?;
    let mut values = Values {
        file: file.to_path_buf(),
        entries: BTreeMap::new(),
    };
    let mut it = events.into_iter().peekable();
    // StreamStart, then DocumentStart unless the file is empty.
    while let Some((Event::StreamStart | Event::DocumentStart, _)) = it.peek() {
        it.next();
    }
    match it.next() {
        None | Some((Event::StreamEnd, _)) => return Ok(values),
        Some((Event::MappingStart(..), _)) => {}
        Some((_, mark)) => {
            return Err(error(
                file,
                pos(&mark),
                "a values file is a mapping of param names to values".into(),
            ));
        }
    }
    loop {
        let (name, key_mark) = match it.next() {
            Some((Event::MappingEnd, _)) | None => break,
            Some((Event::Scalar(name, ..), mark)) => (name, mark),
            Some((_, mark)) => {
                return Err(error(
                    file,
                    pos(&mark),
                    "a param name must be a string".into(),
                ));
            }
        };
        if values.entries.contains_key(&name) {
            return Err(error(
                file,
                pos(&key_mark),
                format!("{name} is given twice"),
            ));
        }
        let given = match it.next() {
            Some((Event::Scalar(text, style, _, tag), _)) => {
                if style == TScalarStyle::Plain && tag.is_none() && is_null(&text) {
                    return Err(error(
                        file,
                        pos(&key_mark),
                        format!("{name} has no value; write \"\" for an empty string"),
                    ));
                }
                Given::Literal(text)
            }
            Some((Event::MappingStart(..), mark)) => reference(file, &name, &mark, &mut it)?,
            Some((_, mark)) => {
                return Err(error(
                    file,
                    pos(&mark),
                    format!(
                        "{name}: expected a string, {{ secretRef: NAME/KEY }} or {{ env: VAR }}"
                    ),
                ));
            }
            None => break,
        };
        values.entries.insert(
            name,
            Entry {
                given,
                pos: pos(&key_mark),
            },
        );
    }
    Ok(values)
}

/// Reads `{ secretRef: NAME/KEY }` or `{ env: VAR }` after its
/// MappingStart.
fn reference(
    file: &Path,
    name: &str,
    start: &Marker,
    it: &mut impl Iterator<Item = (Event, Marker)>,
) -> Result<Given, RecipeError> {
    let shape = || {
        error(
            file,
            pos(start),
            format!("{name}: a reference is {{ secretRef: NAME/KEY }} or {{ env: VAR }}"),
        )
    };
    let (Some((Event::Scalar(kind, ..), _)), Some((Event::Scalar(target, ..), mark))) =
        (it.next(), it.next())
    else {
        return Err(shape());
    };
    if !matches!(it.next(), Some((Event::MappingEnd, _))) {
        return Err(shape());
    }
    match kind.as_str() {
        "secretRef" => match target.split_once('/') {
            Some((secret, key)) if valid_secret_name(secret) && valid_secret_key(key) => {
                Ok(Given::SecretRef {
                    name: secret.to_string(),
                    key: key.to_string(),
                })
            }
            _ => Err(error(
                file,
                pos(&mark),
                format!(
                    "{name}: secretRef {target:?} must be NAME/KEY: a secret's DNS subdomain name, then a key of [-._a-zA-Z0-9]"
                ),
            )),
        },
        "env" if crate::params::valid_name(&target) => Ok(Given::Env(target)),
        "env" => Err(error(
            file,
            pos(&mark),
            format!("{name}: env {target:?} is not an environment variable name"),
        )),
        _ => Err(shape()),
    }
}

/// Kubernetes object names (RFC 1123 DNS subdomain).
fn valid_secret_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Kubernetes secret data keys.
fn valid_secret_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
}

fn is_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn pos(mark: &Marker) -> Pos {
    Pos {
        line: mark.line(),
        col: mark.col() + 1,
    }
}

fn error(file: &Path, pos: Pos, message: String) -> RecipeError {
    RecipeError {
        file: file.to_path_buf(),
        pos: Some(pos),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Values, String> {
        parse(Path::new("v.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn reads_literals_as_written_and_references() {
        let v = parse_str(
            "PORT: 0750\nON: yes\nEMPTY: \"\"\nDB: { secretRef: app-db/url }\nTOKEN:\n  env: CI_TOKEN\n",
        )
        .unwrap();
        let given = |n: &str| v.entries[n].given.clone();
        assert_eq!(given("PORT"), Given::Literal("0750".into()));
        assert_eq!(given("ON"), Given::Literal("yes".into()));
        assert_eq!(given("EMPTY"), Given::Literal(String::new()));
        assert_eq!(
            given("DB"),
            Given::SecretRef {
                name: "app-db".into(),
                key: "url".into()
            }
        );
        assert_eq!(given("TOKEN"), Given::Env("CI_TOKEN".into()));
        assert_eq!(v.entries["DB"].pos, Pos { line: 4, col: 1 });
    }

    #[test]
    fn an_empty_file_gives_nothing() {
        assert!(parse_str("").unwrap().entries.is_empty());
        assert!(parse_str("# only a comment\n").unwrap().entries.is_empty());
    }

    #[test]
    fn structure_errors_name_their_position() {
        for (text, want) in [
            ("- a\n", "v.yaml:1:1: a values file is a mapping"),
            ("A: 1\nA: 2\n", "v.yaml:2:1: A is given twice"),
            ("A:\n", "v.yaml:1:1: A has no value"),
            ("A: [1]\n", "v.yaml:1:4: A: expected a string"),
            ("A: { secret: x }\n", "v.yaml:1:4: A: a reference is"),
            (
                "A: { secretRef: x }\n",
                "v.yaml:1:17: A: secretRef \"x\" must be NAME/KEY",
            ),
            ("A: { secretRef: Bad_Name/k }\n", "must be NAME/KEY"),
            ("A: { env: 1X }\n", "v.yaml:1:11: A: env \"1X\" is not"),
            ("A: { env: X, secretRef: a/b }\n", "A: a reference is"),
            ("A: \"open\n", "v.yaml:"),
        ] {
            let err = parse_str(text).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }
}
