//! Runtime params (design.md, principle 2): the values an image declares
//! and leaves to be bound per environment at deploy time. A recipe
//! declares them, the image records them (config label `dev.ingot.params`),
//! and `ingot bind` binds them: all three read the rules here.

use std::collections::BTreeMap;

use oci_spec::image::ImageConfiguration;
use regex::Regex;
use serde::Deserialize;

use crate::image::annotation;

/// A runtime parameter. Recorded in the image (label
/// `dev.ingot.params`) so binding needs only the image.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub secret: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// An image's declared params, by name.
pub type Params = BTreeMap<String, ParamSpec>;

/// Whether `name` is a portable environment variable name, which every
/// output format can carry.
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A param's pattern, which must match the whole value: `[a-z]+` means
/// `^(?:[a-z]+)$`, so a pattern cannot be passed by a value that merely
/// contains a match.
pub fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        // The regex crate's message spans lines, drawing the pattern.
        let detail = e.to_string();
        let last = detail.lines().last().unwrap_or("invalid").trim();
        format!("pattern {pattern:?} is not a valid regex: {last}")
    })
}

/// The params `config` declares (label `dev.ingot.params`); none when the
/// image was not built by ingot or declares none.
pub fn declared(config: &ImageConfiguration) -> Result<Params, String> {
    let text = config
        .config()
        .as_ref()
        .and_then(|c| c.labels().as_ref())
        .and_then(|l| l.get(annotation::PARAMS));
    match text {
        None => Ok(Params::new()),
        Some(text) => {
            serde_json::from_str(text).map_err(|e| format!("label {}: {e}", annotation::PARAMS))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_values() {
        let re = compile_pattern("[a-z]+").unwrap();
        assert!(re.is_match("abc"));
        assert!(!re.is_match("abc1"));
        let err = compile_pattern("(").unwrap_err();
        assert!(
            err.starts_with("pattern \"(\" is not a valid regex"),
            "{err}"
        );
    }

    #[test]
    fn names_are_portable_env_names() {
        for ok in ["A", "_x", "LOG_LEVEL2"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A.B", "É"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
