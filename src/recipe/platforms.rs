//! The platforms a recipe builds for, and the `src` placeholders that name
//! a platform's files (README, "Multi-platform builds").
//!
//! A recipe builds for its `platform` (else its base's), for each of its
//! `platforms` (one image each, under an image index), or, as the base of
//! another recipe, for the platform that recipe wants. A multi-platform
//! recipe is built as one recipe per platform ([`Recipe::for_platform`]):
//! the same spec with its [`Target`] set and its `src` placeholders filled
//! in and checked again, so bases, cache keys and planning only ever see a
//! recipe for one platform.
//!
//! `src` is not a template: it may hold `{{ platform.os }}`,
//! `{{ platform.arch }}` and `{{ platform.variant }}` and nothing else, so
//! what a build reads is known from the recipe and the platform alone.

use std::path::PathBuf;

use super::{Recipe, RecipeError, Step};
use crate::image::Platform;

/// The platform a recipe is being built for, and who asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Target {
    /// Its own `platform`, else its base's; a multi-platform recipe not
    /// yet split.
    #[default]
    Own,
    /// Entry `n` of its `platforms`.
    Listed(usize),
    /// The platform of the recipe built on it (a `recipe:` base or a
    /// stemcell).
    Imposed(Platform),
}

impl Recipe {
    /// The platforms of a multi-platform recipe, before it is split into
    /// one recipe per platform.
    pub fn platforms(&self) -> Option<&[Platform]> {
        match self.target {
            Target::Own => self.spec.platforms.as_deref(),
            _ => None,
        }
    }

    /// The platform this recipe is built for; None when that is its
    /// base's.
    pub fn wanted_platform(&self) -> Option<&Platform> {
        match &self.target {
            Target::Own => self.spec.platform.as_ref(),
            Target::Listed(i) => self.spec.platforms.as_ref().and_then(|l| l.get(*i)),
            Target::Imposed(p) => Some(p),
        }
    }

    /// An error about the platform this recipe is built for, placed where
    /// that platform was said: at `platform`, at its entry of
    /// `platforms`, or (imposed by the recipe built on it) at `base`.
    pub fn platform_error(&self, message: impl Into<String>) -> RecipeError {
        let message = message.into();
        match &self.target {
            Target::Own => self.error_at(&["platform"], message),
            Target::Listed(i) => self.error_at(&["platforms", &i.to_string()], message),
            Target::Imposed(p) => self.error_at(
                &["base"],
                format!(
                    "{message} (building for {p}, the platform of the recipe built on this one)"
                ),
            ),
        }
    }

    /// The recipe for entry `index` of its `platforms`, its `src`
    /// placeholders filled in and checked.
    pub fn for_platform(&self, index: usize) -> Result<Recipe, RecipeError> {
        let platform = self
            .spec
            .platforms
            .as_ref()
            .and_then(|l| l.get(index))
            .cloned()
            .ok_or_else(|| self.error_at(&["platforms"], format!("no platform #{index}")))?;
        let mut one = self.clone();
        one.target = Target::Listed(index);
        one.fill_srcs(&platform)?;
        Ok(one)
    }

    /// This recipe as the base of one that wants `wanted` (None: the
    /// base's platform). A recipe that names no platform is built for the
    /// wanted one; a multi-platform recipe for its entry that matches it
    /// (linux/amd64 when nothing is wanted); a recipe with its own
    /// `platform` as it is (a mismatch is reported by the recipe above).
    pub fn as_base_for(self, wanted: Option<&Platform>) -> Result<Recipe, RecipeError> {
        if let Some(list) = self.platforms() {
            let want = wanted.cloned().unwrap_or_else(Platform::linux_amd64);
            let found = list
                .iter()
                .position(|p| *p == want)
                .or_else(|| list.iter().position(|p| want.accepts(p)));
            let Some(index) = found else {
                let listed: Vec<String> = list.iter().map(ToString::to_string).collect();
                let how = if wanted.is_some() {
                    "the platform of the recipe built on it"
                } else {
                    "the default for a recipe built on it that names no platform"
                };
                return Err(self.error_at(
                    &["platforms"],
                    format!(
                        "this recipe builds for {}, not for {want} ({how})",
                        listed.join(", ")
                    ),
                ));
            };
            return self.for_platform(index);
        }
        match wanted {
            Some(p) if self.spec.platform.is_none() && self.target == Target::Own => {
                let mut one = self;
                one.target = Target::Imposed(p.clone());
                one.fill_srcs(p)?;
                Ok(one)
            }
            _ => Ok(self),
        }
    }

    /// This recipe with its `src` placeholders filled in for `platform`,
    /// when it has any (a recipe that leaves its platform to its base
    /// learns it only once the base is resolved).
    pub fn with_platform_srcs(&self, platform: &Platform) -> Result<Option<Recipe>, RecipeError> {
        if !self.srcs().any(has_placeholder) {
            return Ok(None);
        }
        let mut one = self.clone();
        one.fill_srcs(platform)?;
        Ok(Some(one))
    }

    /// Fills in every `src` placeholder for `platform`, then checks the
    /// recipe again, so a file missing for one platform is reported at its
    /// `src`, naming the platform.
    fn fill_srcs(&mut self, platform: &Platform) -> Result<(), RecipeError> {
        for (i, layer) in self.spec.layers.clone().iter().enumerate() {
            for (j, step) in layer.steps.iter().enumerate() {
                let Some(src) = src_of(step).filter(|s| has_placeholder(s)) else {
                    continue;
                };
                let filled =
                    render_src(src, platform).map_err(|m| self.step_error(i, j, Some("src"), m))?;
                match &mut self.spec.layers[i].steps[j] {
                    Step::Copy(c) => c.src = filled,
                    Step::Template(t) => t.src = filled,
                    _ => {}
                }
            }
        }
        self.validate().map_err(|mut e| {
            e.message = format!("{} (building for {platform})", e.message);
            e
        })
    }

    fn srcs(&self) -> impl Iterator<Item = &str> {
        self.spec
            .layers
            .iter()
            .flat_map(|l| &l.steps)
            .filter_map(src_of)
    }

    /// `platform` and `platforms` exclude each other; `platforms` lists
    /// at least one platform, each once.
    pub(super) fn validate_platforms(&self) -> Result<(), RecipeError> {
        let Some(list) = &self.spec.platforms else {
            return Ok(());
        };
        if self.spec.platform.is_some() {
            return Err(self.error_at(
                &["platforms"],
                "a recipe sets `platform` (one image) or `platforms` (an image index), not both",
            ));
        }
        if list.is_empty() {
            return Err(self.error_at(&["platforms"], "platforms lists no platform"));
        }
        for (i, p) in list.iter().enumerate() {
            if list[..i].contains(p) {
                return Err(self.error_at(
                    &["platforms", &i.to_string()],
                    format!("platform {p} is listed twice"),
                ));
            }
        }
        Ok(())
    }

    /// The paths a `src` resolves to: itself, or with placeholders, one
    /// per platform the recipe names (none when it leaves the platform to
    /// its base: those are checked once the base is resolved).
    pub(super) fn src_paths(&self, src: &str) -> Result<Vec<PathBuf>, String> {
        if !has_placeholder(src) {
            return Ok(vec![self.resolve_src(src)?]);
        }
        // The grammar is checked whatever the platforms.
        let any = Platform {
            variant: Some("v8".into()),
            ..Platform::linux_amd64()
        };
        render_src(src, &any)?;
        let known: Vec<&Platform> = match (self.platforms(), self.wanted_platform()) {
            (Some(list), _) => list.iter().collect(),
            (None, Some(p)) => vec![p],
            (None, None) => Vec::new(),
        };
        known
            .into_iter()
            .map(|p| {
                let filled = render_src(src, p)?;
                self.resolve_src(&filled)
                    .map_err(|m| format!("{m} (for {p})"))
            })
            .collect()
    }
}

fn src_of(step: &Step) -> Option<&str> {
    match step {
        Step::Copy(c) => Some(&c.src),
        Step::Template(t) => Some(&t.src),
        _ => None,
    }
}

const OPEN: &str = "{{";
const CLOSE: &str = "}}";

fn has_placeholder(src: &str) -> bool {
    src.contains(OPEN)
}

/// `src` with each `{{ platform.os }}`, `{{ platform.arch }}` and
/// `{{ platform.variant }}` replaced by `platform`'s. Anything else in
/// braces is refused, as is a variant the platform lacks. The values are
/// plain names (letters, digits, `_`), so a filled `src` goes no further
/// than the one written.
pub fn render_src(src: &str, platform: &Platform) -> Result<String, String> {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let end = after
            .find(CLOSE)
            .ok_or_else(|| format!("src {src:?}: `{{{{` is not closed by `}}}}`"))?;
        let value = match after[..end].trim() {
            "platform.os" => &platform.os,
            "platform.arch" => &platform.arch,
            "platform.variant" => platform.variant.as_ref().ok_or_else(|| {
                format!(
                    "src {src:?}: platform {platform} has no variant for {{{{ platform.variant }}}}"
                )
            })?,
            other => {
                return Err(format!(
                    "src {src:?}: `{{{{ {other} }}}}` is not a placeholder src takes; \
                     it takes {{{{ platform.os }}}}, {{{{ platform.arch }}}} and {{{{ platform.variant }}}}"
                ));
            }
        };
        out.push_str(value);
        rest = &after[end + CLOSE.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn platform(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn placeholders_fill_in_the_platform() {
        let arm = platform("linux/arm/v7");
        assert_eq!(
            render_src(
                "bin/{{ platform.os }}-{{platform.arch}}{{  platform.variant }}/app",
                &arm
            )
            .unwrap(),
            "bin/linux-armv7/app"
        );
        assert_eq!(render_src("plain/path", &arm).unwrap(), "plain/path");
    }

    #[test]
    fn other_placeholders_and_missing_variants_are_refused() {
        let amd = platform("linux/amd64");
        for (src, says) in [
            ("bin/{{ platform.variant }}/app", "no variant"),
            ("bin/{{ vars.x }}/app", "not a placeholder"),
            ("bin/{{ platform.arch /app", "not closed"),
            ("bin/{{}}/app", "not a placeholder"),
        ] {
            let err = render_src(src, &amd).unwrap_err();
            assert!(err.contains(says), "{src}: {err}");
        }
    }

    fn parse(text: &str, dir: &Path) -> Result<Recipe, RecipeError> {
        Recipe::parse(text, Path::new("r.yaml"), dir.to_path_buf())
    }

    #[test]
    fn platform_and_platforms_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let both = "name: a\nversion: '1'\nbase: scratch\nplatform: linux/amd64\nplatforms: [linux/amd64]\n";
        let err = parse(both, dir.path()).unwrap_err();
        let pos = err.pos.unwrap();
        assert_eq!((pos.line, pos.col), (5, 12), "{err}");
        assert!(err.message.contains("not both"), "{err}");
        let twice =
            "name: a\nversion: '1'\nbase: scratch\nplatforms:\n  - linux/amd64\n  - linux/amd64\n";
        let err = parse(twice, dir.path()).unwrap_err();
        assert_eq!(err.pos.unwrap().line, 6, "{err}");
        let none = "name: a\nversion: '1'\nbase: scratch\nplatforms: []\n";
        assert!(
            parse(none, dir.path())
                .unwrap_err()
                .message
                .contains("no platform")
        );
    }

    #[test]
    fn srcs_are_checked_for_every_listed_platform() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin/amd64")).unwrap();
        std::fs::write(dir.path().join("bin/amd64/app"), b"x").unwrap();
        let text = |platforms: &str| {
            format!(
                "name: a\nversion: '1'\nbase: scratch\n{platforms}layers:\n  - name: l\n    steps:\n      \
                 - copy: {{ src: 'bin/{{{{ platform.arch }}}}/app', dest: /app }}\n"
            )
        };
        // Named platforms are checked as the recipe is read.
        let err = parse(&text("platforms: [linux/amd64, linux/arm64]\n"), dir.path()).unwrap_err();
        assert!(
            err.message.contains("bin/arm64/app") && err.message.contains("linux/arm64"),
            "{err}"
        );
        assert_eq!(err.pos.unwrap().line, 8, "{err}");
        // Left to the base, they are checked once it is known.
        let recipe = parse(&text(""), dir.path()).unwrap();
        let filled = recipe
            .with_platform_srcs(&platform("linux/amd64"))
            .unwrap()
            .unwrap();
        assert!(
            matches!(&filled.spec.layers[0].steps[0], Step::Copy(c) if c.src == "bin/amd64/app")
        );
        let err = recipe
            .with_platform_srcs(&platform("linux/arm64"))
            .unwrap_err();
        assert!(err.message.contains("building for linux/arm64"), "{err}");

        std::fs::create_dir_all(dir.path().join("bin/arm64")).unwrap();
        std::fs::write(dir.path().join("bin/arm64/app"), b"y").unwrap();
        let multi = parse(&text("platforms: [linux/amd64, linux/arm64]\n"), dir.path()).unwrap();
        assert_eq!(multi.platforms().map(<[_]>::len), Some(2));
        let arm = multi.for_platform(1).unwrap();
        assert_eq!(arm.platforms(), None);
        assert_eq!(arm.wanted_platform(), Some(&platform("linux/arm64")));
        assert!(matches!(&arm.spec.layers[0].steps[0], Step::Copy(c) if c.src == "bin/arm64/app"));
        assert_eq!(arm.platform_error("x").pos.unwrap().line, 4);
    }

    #[test]
    fn a_base_recipe_builds_for_the_platform_wanted_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let plain = parse("name: a\nversion: '1'\nbase: scratch\n", dir.path()).unwrap();
        let arm = platform("linux/arm64");
        let imposed = plain.clone().as_base_for(Some(&arm)).unwrap();
        assert_eq!(imposed.wanted_platform(), Some(&arm));
        assert_eq!(
            plain.clone().as_base_for(None).unwrap().wanted_platform(),
            None
        );

        let multi = parse(
            "name: a\nversion: '1'\nbase: scratch\nplatforms: [linux/arm64/v8, linux/amd64]\n",
            dir.path(),
        )
        .unwrap();
        let picked = multi.clone().as_base_for(Some(&arm)).unwrap();
        assert_eq!(picked.wanted_platform(), Some(&platform("linux/arm64/v8")));
        let default = multi.clone().as_base_for(None).unwrap();
        assert_eq!(default.wanted_platform(), Some(&Platform::linux_amd64()));
        let err = multi
            .as_base_for(Some(&platform("linux/s390x")))
            .unwrap_err();
        assert!(err.message.contains("not for linux/s390x"), "{err}");
    }
}
