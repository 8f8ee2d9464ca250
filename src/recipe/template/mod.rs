//! Templates: tera with a closed context (design.md, "A recipe").
//!
//! A template sees `recipe` (name, version), `vars` and `base` (name,
//! digest), nothing else. Functions that read the environment, the clock or
//! randomness are replaced by ones that fail, so a template cannot make two
//! builds differ.

use serde_json::json;

/// Values a template may read.
pub struct Context<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub vars: &'a std::collections::BTreeMap<String, serde_json::Value>,
    pub base_name: &'a str,
    pub base_digest: &'a str,
}

/// Renders `source` (the template text) named `file` for messages. The error
/// is one line: the engine's chain, with the line where tera gives one.
pub fn render(file: &str, source: &str, ctx: &Context) -> Result<String, String> {
    let mut tera = tera::Tera::default();
    for name in ["get_env", "now", "get_random"] {
        tera.register_function(name, disabled(name));
    }
    tera.add_raw_template(file, source)
        .map_err(|e| one_line(&e))?;
    let context = tera::Context::from_serialize(json!({
        "recipe": { "name": ctx.name, "version": ctx.version },
        "vars": ctx.vars,
        "base": { "name": ctx.base_name, "digest": ctx.base_digest },
    }))
    .map_err(|e| one_line(&e))?;
    tera.render(file, &context).map_err(|e| one_line(&e))
}

fn disabled(name: &'static str) -> impl tera::Function {
    move |_: &std::collections::HashMap<String, tera::Value>| -> tera::Result<tera::Value> {
        Err(tera::Error::msg(format!(
            "`{name}` is not available: templates see only recipe, vars and base, so builds stay reproducible"
        )))
    }
}

/// Flattens tera's error chain, whose parse errors span several lines (a
/// `--> LINE:COL` marker and a source excerpt), into one line.
fn one_line(err: &tera::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    let text = parts.join(": ");
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        let excerpt = line
            .split_once('|')
            .is_some_and(|(before, _)| before.trim().chars().all(|c| c.is_ascii_digit()));
        if line.is_empty() || excerpt {
            continue;
        }
        let line = line.trim_start_matches("= ");
        out.push(match line.split_once("--> ") {
            Some((head, pos)) => {
                let (l, c) = pos.split_once(':').unwrap_or((pos, "?"));
                format!("{head}line {l}, column {c}:")
            }
            None => line.to_string(),
        });
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(vars: &std::collections::BTreeMap<String, serde_json::Value>) -> Context<'_> {
        Context {
            name: "hello",
            version: "1.0",
            vars,
            base_name: "scratch",
            base_digest: "",
        }
    }

    #[test]
    fn renders_recipe_vars_and_base() {
        let vars = [("greeting".to_string(), json!("hi"))].into();
        let out = render(
            "t",
            "{{ vars.greeting }} {{ recipe.name }}@{{ recipe.version }} on {{ base.name }}",
            &ctx(&vars),
        )
        .unwrap();
        assert_eq!(out, "hi hello@1.0 on scratch");
    }

    #[test]
    fn environment_clock_and_randomness_are_refused() {
        let vars = Default::default();
        for src in [
            "{{ get_env(name='HOME') }}",
            "{{ now() }}",
            "{{ get_random(end=9) }}",
        ] {
            let err = render("t", src, &ctx(&vars)).unwrap_err();
            assert!(err.contains("not available"), "{src}: {err}");
        }
    }

    #[test]
    fn errors_are_one_line_with_the_line_number() {
        let vars = Default::default();
        let err = render("files/x.tera", "ok\n{{ oops( }}\nmore\n", &ctx(&vars)).unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("line 2"), "{err}");
        let err = render("files/x.tera", "{{ vars.missing }}", &ctx(&vars)).unwrap_err();
        assert!(err.contains("missing"), "{err}");
    }
}
