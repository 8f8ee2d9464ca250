//! Key-value comparisons: manifest annotations, the image config's fields
//! (flattened to dotted paths such as `config.Env` or `rootfs.diff_ids`),
//! and the manifests an image index lists per platform.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::image::IndexSummary;

/// One key whose value differs: added (no `old`), removed (no `new`) or
/// changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange<T> {
    pub key: String,
    pub old: Option<T>,
    pub new: Option<T>,
}

/// The keys of `a` and `b` whose values differ, in key order.
pub fn compare_maps<T: Clone + PartialEq>(
    a: &BTreeMap<String, T>,
    b: &BTreeMap<String, T>,
) -> Vec<FieldChange<T>> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| FieldChange {
            key: k.clone(),
            old: a.get(k).cloned(),
            new: b.get(k).cloned(),
        })
        .collect()
}

/// Two manifests' annotations compared.
pub fn annotations(
    a: Option<&HashMap<String, String>>,
    b: Option<&HashMap<String, String>>,
) -> Vec<FieldChange<String>> {
    let sorted = |m: Option<&HashMap<String, String>>| -> BTreeMap<String, String> {
        m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    compare_maps(&sorted(a), &sorted(b))
}

/// The config field whose entries are summarised: each build step's
/// record, long and rarely what a reader of a diff wants whole.
const HISTORY: &str = "history";

/// Two image configs (as JSON) compared field by field. Objects are
/// walked into dotted paths; arrays are values (`config.Env` is one
/// field). `history` differs as its number of entries.
pub fn config(a: &Value, b: &Value) -> Vec<FieldChange<Value>> {
    compare_maps(&flatten(a), &flatten(b))
}

/// The leaves of a config, by dotted path.
pub fn flatten(config: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    walk(config, String::new(), &mut out);
    if let Some(history) = config.get(HISTORY) {
        out.remove(HISTORY);
        let summary = match history {
            Value::Array(entries) => Value::String(format!(
                "{} entries, sha256 {}",
                entries.len(),
                crate::digest::Digest::of(history.to_string().as_bytes()).hex()
            )),
            other => other.clone(),
        };
        out.insert(HISTORY.to_string(), summary);
    }
    out
}

fn walk(value: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) if !map.is_empty() && path != HISTORY => {
            for (key, inner) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                walk(inner, path, out);
            }
        }
        // An absent field and a null one read alike.
        Value::Null => {}
        leaf => {
            out.insert(path, leaf.clone());
        }
    }
}

/// Two image indexes compared: platforms one lists and the other not,
/// each platform's manifest digest where it differs, and the indexes' own
/// annotations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexDiff {
    pub old: String,
    pub new: String,
    /// Platforms only the second index lists.
    pub added: Vec<String>,
    /// Platforms only the first index lists.
    pub removed: Vec<String>,
    /// Platforms both list, with other manifests.
    pub changed: Vec<FieldChange<String>>,
    pub annotations: Vec<FieldChange<String>>,
}

impl IndexDiff {
    pub fn is_empty(&self) -> bool {
        self.old == self.new
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.annotations.is_empty()
    }
}

pub fn index(a: &IndexSummary, b: &IndexSummary) -> IndexDiff {
    let by_platform =
        |s: &IndexSummary| -> BTreeMap<String, String> { s.manifests.iter().cloned().collect() };
    let changes = compare_maps(&by_platform(a), &by_platform(b));
    let only = |side_has: fn(&FieldChange<String>) -> bool| -> Vec<String> {
        changes
            .iter()
            .filter(|c| side_has(c))
            .map(|c| c.key.clone())
            .collect()
    };
    IndexDiff {
        old: a.digest.to_string(),
        new: b.digest.to_string(),
        added: only(|c| c.old.is_none()),
        removed: only(|c| c.new.is_none()),
        changed: changes
            .iter()
            .filter(|c| c.old.is_some() && c.new.is_some())
            .cloned()
            .collect(),
        annotations: compare_maps(&a.annotations, &b.annotations),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_fields_by_dotted_path() {
        let a = json!({
            "architecture": "amd64",
            "config": {"Env": ["A=1"], "User": "0"},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:1"]},
            "history": [{"created_by": "x"}],
        });
        let b = json!({
            "architecture": "amd64",
            "config": {"Env": ["A=2"], "WorkingDir": "/srv"},
            "rootfs": {"type": "layers", "diff_ids": ["sha256:1"]},
            "history": [{"created_by": "x"}, {"created_by": "y"}],
        });
        let changes = config(&a, &b);
        let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(
            keys,
            ["config.Env", "config.User", "config.WorkingDir", "history"]
        );
        assert_eq!(changes[0].new, Some(json!(["A=2"])));
        assert_eq!(changes[1].new, None);
        assert!(
            changes[3]
                .new
                .as_ref()
                .unwrap()
                .as_str()
                .unwrap()
                .starts_with("2 entries"),
            "{changes:?}"
        );
        assert!(config(&a, &a).is_empty());
    }

    #[test]
    fn annotations_added_removed_changed() {
        let a: HashMap<String, String> = [("k".into(), "1".into()), ("gone".into(), "x".into())]
            .into_iter()
            .collect();
        let b: HashMap<String, String> = [("k".into(), "2".into()), ("new".into(), "y".into())]
            .into_iter()
            .collect();
        let changes = annotations(Some(&a), Some(&b));
        let summary: Vec<(&str, Option<&str>, Option<&str>)> = changes
            .iter()
            .map(|c| (c.key.as_str(), c.old.as_deref(), c.new.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("gone", Some("x"), None),
                ("k", Some("1"), Some("2")),
                ("new", None, Some("y"))
            ]
        );
    }
}
