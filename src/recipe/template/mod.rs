//! Templates: tera with a closed context and bounded work (design.md, "A
//! recipe"; issue 14).
//!
//! A template sees `recipe` (name, version), `vars`, `base` (name,
//! digest) and `platform` (os, arch, variant), nothing else. Functions that read the environment, the clock or
//! randomness are replaced by ones that fail, so a template cannot make two
//! builds differ. A template is one file, and what it may do is bounded
//! before it renders, on its text ([`shape`]) and its AST ([`walk`]), and
//! while it renders ([`meter`]): a template that hits a limit fails with
//! an error that names the limit, never by exhausting memory or the stack.

mod meter;
mod shape;
mod walk;

use std::sync::Arc;

use serde_json::json;

/// A template larger than this is refused.
pub const MAX_TEMPLATE_BYTES: usize = 1 << 20;
/// Nesting of tags, brackets and operators, and of the AST counted through
/// the macros called; also of any value a template builds.
pub const MAX_DEPTH: usize = 128;
/// Elements `range` may yield.
pub const MAX_RANGE: usize = 100_000;
/// Bytes any one value may hold.
pub const MAX_VALUE_BYTES: usize = 16 << 20;
/// Bytes one call of a builtin filter may allocate for its work (tera's
/// `truncate` indexes every grapheme, 24 bytes each) or its result.
pub const MAX_FILTER_BYTES: usize = 64 << 20;
/// Bytes a template may render.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;
/// Work a render may do: bytes built or read, loop iterations weighted by
/// the static size of their body (`walk::cost_of`).
pub const MAX_STEPS: u64 = 64 << 20;

/// Values a template may read.
pub struct Context<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub vars: &'a std::collections::BTreeMap<String, serde_json::Value>,
    pub base_name: &'a str,
    pub base_digest: &'a str,
    /// The platform the image is built for.
    pub platform: &'a crate::image::Platform,
}

/// The stack tera renders on, whatever thread calls [`render`]: the limits
/// on nesting keep it to a fraction of this.
const STACK_BYTES: usize = 16 << 20;

/// Renders `source` (the template text) named `file` for messages. The error
/// is one line: the engine's chain, with the line where tera gives one, or
/// the limit the template hit.
pub fn render(file: &str, source: &str, ctx: &Context) -> Result<String, String> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("template".to_string())
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, || render_here(file, source, ctx))
            .map_err(|e| format!("cannot start a thread to render the template: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("the template engine failed (tera panicked)".to_string()))
    })
}

fn render_here(file: &str, source: &str, ctx: &Context) -> Result<String, String> {
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "the template is {} bytes, more than the limit of {MAX_TEMPLATE_BYTES} (1 MiB)",
            source.len()
        ));
    }
    shape::check(source)
        .map_err(|(line, col, message)| format!("line {line}, column {col}: {message}"))?;
    let mut template = tera::Template::new(file, None, source)
        .map_err(|e| one_line(&tera::Error::chain(format!("Failed to parse '{file}'"), e)))?;
    let macros = walk::check(&template)?;
    meter::rewrite(&mut template, &macros);

    let meter = Arc::new(meter::Meter::default());
    let mut tera = tera::Tera::default();
    meter::install(&mut tera, &meter);
    for name in ["get_env", "now", "get_random"] {
        tera.register_function(name, disabled(name));
    }
    // What `add_raw_template` does, with the template checked and rewritten.
    tera.templates.insert(file.to_string(), template);
    tera.build_inheritance_chains().map_err(|e| one_line(&e))?;
    tera.check_macro_files().map_err(|e| one_line(&e))?;
    let context = tera::Context::from_serialize(json!({
        "recipe": { "name": ctx.name, "version": ctx.version },
        "vars": ctx.vars,
        "base": { "name": ctx.base_name, "digest": ctx.base_digest },
        "platform": {
            "os": ctx.platform.os,
            "arch": ctx.platform.arch,
            "variant": ctx.platform.variant.as_deref().unwrap_or_default(),
        },
    }))
    .map_err(|e| one_line(&e))?;
    let mut out = meter::Output::new(&meter);
    let rendered = tera.render_to(file, &context, &mut out);
    if let Some(limit) = meter.hit() {
        return Err(limit);
    }
    rendered.map_err(|e| one_line(&e))?;
    String::from_utf8(out.into_bytes())
        .map_err(|e| format!("the template rendered invalid UTF-8: {e}"))
}

fn disabled(name: &'static str) -> impl tera::Function {
    move |_: &std::collections::HashMap<String, tera::Value>| -> tera::Result<tera::Value> {
        Err(tera::Error::msg(format!(
            "`{name}` is not available: templates see only recipe, vars, base and platform, so builds stay reproducible"
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
    parts.retain(|p| !meter::is_internal(p));
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
            platform: &PLATFORM,
        }
    }

    static PLATFORM: std::sync::LazyLock<crate::image::Platform> =
        std::sync::LazyLock::new(|| "linux/arm/v7".parse().unwrap());

    #[test]
    fn renders_the_platform() {
        let vars = Default::default();
        let out = render(
            "t",
            "{{ platform.os }}/{{ platform.arch }}/{{ platform.variant }}",
            &ctx(&vars),
        )
        .unwrap();
        assert_eq!(out, "linux/arm/v7");
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

    fn render_plain(file: &str, source: &str) -> Result<String, String> {
        render(file, source, &ctx(&Default::default()))
    }

    fn refused(source: &str) -> String {
        match render_plain("t", source) {
            Err(e) => {
                assert!(!e.contains('\n') && !e.contains("__ingot"), "{e}");
                e
            }
            Ok(out) => panic!("rendered {} bytes: {source}", out.len()),
        }
    }

    #[test]
    fn self_reference_is_refused() {
        assert!(refused("{% include \"t\" %}").contains("include"));
        assert!(
            refused("{% macro m() %}{{ self::m() }}{% endmacro %}{{ self::m() }}")
                .contains("calls itself")
        );
        assert!(refused("{% import \"t\" as m %}").contains("import"));
        assert!(refused("{% extends \"t\" %}").contains("extends"));
    }

    #[test]
    fn range_is_bounded() {
        let out = render_plain(
            "t",
            "{% for i in range(start=1, end=10, step_by=3) %}{{ i }}{% endfor %}",
        );
        assert_eq!(out.unwrap(), "147");
        assert_eq!(
            render_plain("t", "{{ range(end=100000) | length }}").unwrap(),
            "100000"
        );
        let e = refused("{% for i in range(end=2000000000) %}{% endfor %}");
        assert!(
            e.contains("2000000000 elements") && e.contains("limit of 100000"),
            "{e}"
        );
        assert!(refused("{{ range(end=5, step_by=0) }}").contains("never ends"));
    }

    #[test]
    fn growing_a_value_hits_a_limit() {
        for source in [
            // set_global persists across iterations.
            "{% set_global s = 'ab' %}{% for i in range(end=100) %}{% set_global s = s ~ s %}{% endfor %}{{ s | length }}",
            // A chain of sets, no loop.
            &format!(
                "{{% set s = 'abcdefgh' %}}{}",
                "{% set s = s ~ s ~ s ~ s %}".repeat(40)
            ),
            // A chain of filters.
            &format!(
                "{{{{ 'aaaaaaaa' {} }}}}",
                "| replace(from='a', to='aaaa') ".repeat(40)
            ),
            // Arrays.
            "{% set_global a = [1] %}{% for i in range(end=100) %}{% set_global a = a | concat(with=a) %}{% endfor %}",
            "{% set_global a = [1, 2] %}{% for i in range(end=100) %}{% set_global a = [a, a] %}{% endfor %}",
        ] {
            let e = refused(source);
            let limit = ["16 MiB", "nested deeper", "steps"]
                .iter()
                .any(|l| e.contains(l));
            assert!(limit, "{source:.60}: {e}");
        }
        // One step that would multiply a value is refused before it runs:
        // `s` is 1 MiB, 512Ki lines.
        let big = "{% set_global s = 'x\n' %}{% for i in range(end=19) %}{% set_global s = s ~ s %}{% endfor %}";
        for filter in [
            "s | replace(from='x', to=s)",
            "s | replace(from='', to=s)",
            "s | indent(prefix=s)",
            "s | split(pat='') | length",
            "s | split(pat='\\n') | length",
            "s ~ s ~ s | truncate(length=5)",
        ] {
            let e = refused(&format!("{big}{{{{ {filter} }}}}"));
            let limit = e.contains("would allocate about") || e.contains("larger than 16 MiB");
            assert!(limit, "{filter}: {e}");
        }
        // Within the limits, the same filters work.
        let out = render_plain("t", &format!("{big}{{{{ s | truncate(length=3) }}}}"));
        assert_eq!(out.unwrap(), "x\nx…");
    }

    #[test]
    fn nested_values_are_bounded() {
        let e = refused(
            "{% set_global a = 1 %}{% for i in range(end=500) %}{% set_global a = [a] %}{% endfor %}",
        );
        assert!(e.contains("nested deeper than 128"), "{e}");
    }

    #[test]
    fn output_and_work_are_bounded() {
        let e = refused(
            "{% for i in range(end=100000) %}{% for j in range(end=1000) %}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx{% endfor %}{% endfor %}",
        );
        assert!(e.contains("steps") || e.contains("output"), "{e}");
        // Output alone: within the work limit, over the output limit.
        let line = "x".repeat(1000);
        let e = refused(&format!(
            "{{% for i in range(end=20000) %}}{line}{{% endfor %}}"
        ));
        assert!(e.contains("16 MiB, the limit for its output"), "{e}");
        // Loops that write nothing still count.
        let e = refused(&format!(
            "{}{}",
            "{% for i in range(end=100000) %}".repeat(3),
            "{% endfor %}".repeat(3)
        ));
        assert!(e.contains("steps"), "{e}");
        // Reading a large value over and over is work too.
        let e = refused(
            "{% set_global s = 'x' %}{% for i in range(end=23) %}{% set_global s = s ~ s %}{% endfor %}{% for i in range(end=1000) %}{% if s is containing('y') %}{% endif %}{% endfor %}",
        );
        assert!(e.contains("steps"), "{e}");
    }

    #[test]
    fn a_limit_hit_in_a_condition_still_fails() {
        let e = refused("{% if range(end=1000000) %}yes{% else %}no{% endif %}");
        assert!(e.contains("limit of 100000"), "{e}");
        // tera reads a condition on a name that fails as false, and goes on.
        let e = refused(
            "{% set_global s = 'x' %}{% for i in range(end=23) %}{% set_global s = s ~ s %}{% endfor %}{% for i in range(end=20) %}{% if s %}{% endif %}{% endfor %}",
        );
        assert!(e.contains("steps"), "{e}");
    }

    #[test]
    fn float_overflow_is_an_error_not_a_panic() {
        let big = format!("1.5{}", " * 1000000000000000000".repeat(17));
        let e = refused(&format!("{{% set a = {big} * 100 %}}{{{{ a + a }}}}"));
        assert!(e.contains("too large"), "{e}");
        assert!(refused(&format!("{{{{ 1{}.0 }}}}", "0".repeat(400))).contains("too large"));
    }

    #[test]
    fn the_checks_change_no_output() {
        // Rendered by plain tera and by ingot: the same, escaping included.
        let vars = json!({
            "s": "<a & b>", "n": 3, "f": 1.5, "list": ["x", "<y>", "z"],
            "map": {"k": "v"}, "empty": [], "t": true
        });
        let snippets = [
            "{{ vars.s }}|{{ vars.s | safe }}|{{ vars.s | upper }}|{{ vars.s | escape }}",
            "{{ 'lit<' }}|{{ vars.s ~ '<' }}|{{ vars.s ~ vars.n ~ 2.5 }}|{{ vars.missing | default(value='<d>') }}",
            "{% set x = vars.s %}{{ x }}{% set y = [vars.s, 1] %}{{ y | join(sep='<') }}{{ y | length }}",
            "{% for i in vars.list %}{{ loop.index }}{{ i }}{% if loop.last %}!{% endif %}{% endfor %}",
            "{% for k, v in vars.map %}{{ k }}={{ v }}{% endfor %}{% for e in vars.empty %}x{% else %}none{% endfor %}",
            "{{ vars.n + 2 * vars.f }}|{{ vars.n / 2 }}|{{ vars.n % 2 }}|{{ (vars.n - 1) * 3 }}|{{ 7 / 0 }}",
            "{% if vars.n > 2 and not vars.missing or vars.t %}yes{% endif %}{% if 'x' in vars.list %}in{% endif %}",
            "{% if vars.n is odd %}odd{% endif %}{% if vars.s is containing('&') %}amp{% endif %}",
            "{% macro m(a, b=2) %}<{{ a }}{{ b }}>{% endmacro %}{{ self::m(a=vars.s) }}{% if self::m(a=1) %}t{% endif %}",
            "{% filter upper %}{{ vars.s }}x{% endfilter %}{% filter safe %}<{% endfilter %}",
            "{% set_global g = 0 %}{% for i in range(end=4) %}{% set_global g = g + i %}{% set l = i %}{% endfor %}{{ g }}",
            "{% for i in range(end=10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}",
            "{{ vars.list | reverse | join(sep=',') }}|{{ vars.list | first }}|{{ vars.s | replace(from='a', to='A') }}",
            "{{ vars.s | split(pat=' ') | length }}|{{ 'a\nb' | indent(first=true) }}|{{ vars | json_encode }}",
            "{{ __tera_context | length > 10 }}{% block b %}block{% endblock %}{% raw %}{{ raw }}{% endraw %}",
        ];
        let vars: std::collections::BTreeMap<String, serde_json::Value> =
            serde_json::from_value(vars).unwrap();
        let context = tera::Context::from_serialize(json!({
            "recipe": { "name": "hello", "version": "1.0" },
            "vars": vars,
            "base": { "name": "scratch", "digest": "" },
        }))
        .unwrap();
        for name in ["t", "t.html"] {
            for snippet in snippets {
                let mut plain = tera::Tera::default();
                plain.add_raw_template(name, snippet).unwrap();
                let expected = plain.render(name, &context).unwrap();
                let got = render(name, snippet, &ctx(&vars)).unwrap();
                assert_eq!(got, expected, "{name}: {snippet}");
            }
        }
    }

    #[test]
    fn undefined_names_are_reported_without_internal_names() {
        let e = refused("{{ 'a' ~ nope }}");
        assert!(e.contains("nope"), "{e}");
        let e = refused("{{ nope | upper }}");
        assert!(e.contains("nope"), "{e}");
    }

    #[test]
    fn the_deepest_template_allowed_renders() {
        // At the depth limit, unoptimized: a release build has more room.
        let mut source = String::from("{% macro m0() %}{{ 1 + 1 }}{% endmacro %}");
        for i in 1..=20 {
            source += &format!(
                "{{% macro m{i}() %}}{{% for x in [1] %}}{{% if true %}}{{% filter upper %}}{{{{ self::m{}() | trim }}}}{{% endfilter %}}{{% endif %}}{{% endfor %}}{{% endmacro %}}",
                i - 1
            );
        }
        source += "{{ self::m20() }}";
        assert_eq!(render_plain("t", &source).unwrap(), "2");
        let half = MAX_DEPTH / 2 - 1;
        let nested = format!(
            "{}{{{{ {}1{} }}}}{}",
            "{% if true %}".repeat(half),
            "(".repeat(half - 2),
            ")".repeat(half - 2),
            "{% endif %}".repeat(half)
        );
        assert_eq!(render_plain("t", &nested).unwrap(), "1");
    }

    #[test]
    fn size_is_bounded() {
        let e = render_plain("t", &"x".repeat(MAX_TEMPLATE_BYTES + 1)).unwrap_err();
        assert!(e.contains("1 MiB"), "{e}");
        let e = render_plain("t", &format!("{}x", "{% if a %}".repeat(1000))).unwrap_err();
        assert!(
            e.starts_with("line 1, column 1281:") && e.contains("deeper than 128"),
            "{e}"
        );
    }
}
