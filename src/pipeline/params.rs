//! The params an image declares: the recipe's own merged onto its base's
//! (design.md, principle 2). A base declares its params in its config's
//! `dev.ingot.params` label, whatever built it, so a `recipe:` base, a
//! stemcell and an image built elsewhere by ingot are read alike.
//!
//! Checked before any layer is built: a param the recipe redefines must be
//! the base's exactly (a derived image cannot relax a base's required
//! secret), and no name may be both a param and a `config.env` entry, on
//! either side of the base.

use crate::base::BaseImage;
use crate::error::{Error, Result};
use crate::params::{self, ParamSpec, Params};
use crate::recipe::Recipe;

/// The params the image built from `recipe` on `base` declares.
pub fn merged(recipe: &Recipe, base: &BaseImage) -> Result<Params> {
    let mut merged = params::declared(&base.config)
        .map_err(|m| Error::Failed(format!("base {}: {m}", base.name)))?;
    let base_env = base_env_names(base);
    for (name, own) in &recipe.spec.params {
        if let Some(theirs) = merged.get(name)
            && theirs != own
        {
            return Err(recipe
                .error_at(
                    &["params", name.as_str(), "<key>"],
                    format!(
                        "param {name} redefines base {}'s param {name} differently ({} here, {} in the base); a redefinition must be identical",
                        base.name,
                        spec_json(own),
                        spec_json(theirs)
                    ),
                )
                .into());
        }
        if base_env.iter().any(|e| e == name) {
            return Err(recipe
                .error_at(
                    &["params", name.as_str(), "<key>"],
                    format!(
                        "param {name:?} collides with {name:?} in base {}'s env; a value is either built in or bound at deploy time",
                        base.name
                    ),
                )
                .into());
        }
        merged.insert(name.clone(), own.clone());
    }
    for key in recipe.spec.config.env.keys() {
        if !recipe.spec.params.contains_key(key) && merged.contains_key(key) {
            return Err(recipe
                .error_at(
                    &["config", "env", key.as_str(), "<key>"],
                    format!(
                        "config.env {key:?} collides with param {key:?} of base {}; a value is either built in or bound at deploy time",
                        base.name
                    ),
                )
                .into());
        }
    }
    Ok(merged)
}

/// The names the base's config sets in its env.
fn base_env_names(base: &BaseImage) -> Vec<String> {
    base.config
        .config()
        .as_ref()
        .and_then(|c| c.env().as_ref())
        .map(|env| {
            env.iter()
                .map(|line| line.split_once('=').map_or(line.as_str(), |(k, _)| k))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// A param as the label records it, for messages.
fn spec_json(spec: &ParamSpec) -> String {
    serde_json::to_string(spec).unwrap_or_else(|_| format!("{spec:?}"))
}
