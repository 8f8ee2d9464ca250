//! What a parsed template may contain, checked on its AST before it
//! renders (issue 14).
//!
//! tera's renderer recurses without a bound: a template that includes
//! itself, imports itself, or has a macro calling itself overflows the
//! stack (exit 134). A template here is one file, so `include`, `extends`
//! and `import` could only name itself: they are refused. The macros'
//! calls (`self::name(…)`, anywhere in a body) must form no cycle, and the
//! nesting, counted through the macros called, stays within
//! [`MAX_DEPTH`]. tera's AST carries no positions, so refusals name the
//! construct. The same walk gives the static cost of a body, which the
//! meter charges for each iteration of a loop.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tera::ast::{Expr, ExprVal, FunctionCall, Node};

use super::{MAX_DEPTH, MAX_STEPS};

/// A visit of every node and expression of a body, parents first, each
/// with its depth (a node or an expression is one level).
pub(super) trait Visitor<'a> {
    /// Returns whether to visit the node's children.
    fn node(&mut self, _node: &'a Node, _depth: usize) -> bool {
        true
    }
    fn expr(&mut self, _expr: &'a Expr, _depth: usize) {}
}

pub(super) fn walk_nodes<'a>(v: &mut impl Visitor<'a>, nodes: &'a [Node], depth: usize) {
    for node in nodes {
        walk_node(v, node, depth);
    }
}

pub(super) fn walk_node<'a>(v: &mut impl Visitor<'a>, node: &'a Node, depth: usize) {
    if !v.node(node, depth) {
        return;
    }
    let d = depth + 1;
    match node {
        Node::Super
        | Node::Text(_)
        | Node::Raw(..)
        | Node::Comment(..)
        | Node::Break(_)
        | Node::Continue(_)
        | Node::Extends(..)
        | Node::Include(..)
        | Node::ImportMacro(..) => {}
        Node::VariableBlock(_, e) => walk_expr(v, e, d),
        Node::Set(_, set) => walk_expr(v, &set.value, d),
        Node::MacroDefinition(_, m, _) => {
            for (_, default) in sorted(&m.args) {
                if let Some(e) = default {
                    walk_expr(v, e, d);
                }
            }
            walk_nodes(v, &m.body, d);
        }
        Node::FilterSection(_, section, _) => {
            walk_call(v, &section.filter, d);
            walk_nodes(v, &section.body, d);
        }
        Node::Block(_, block, _) => walk_nodes(v, &block.body, d),
        Node::Forloop(_, f, _) => {
            walk_expr(v, &f.container, d);
            walk_nodes(v, &f.body, d);
            if let Some(body) = &f.empty_body {
                walk_nodes(v, body, d);
            }
        }
        Node::If(i, _) => {
            for (_, condition, body) in &i.conditions {
                walk_expr(v, condition, d);
                walk_nodes(v, body, d);
            }
            if let Some((_, body)) = &i.otherwise {
                walk_nodes(v, body, d);
            }
        }
    }
}

pub(super) fn walk_expr<'a>(v: &mut impl Visitor<'a>, expr: &'a Expr, depth: usize) {
    v.expr(expr, depth);
    let d = depth + 1;
    walk_val(v, &expr.val, d);
    for filter in &expr.filters {
        walk_call(v, filter, d);
    }
}

fn walk_val<'a>(v: &mut impl Visitor<'a>, val: &'a ExprVal, d: usize) {
    match val {
        ExprVal::String(_)
        | ExprVal::Int(_)
        | ExprVal::Float(_)
        | ExprVal::Bool(_)
        | ExprVal::Ident(_) => {}
        ExprVal::Math(m) => {
            walk_expr(v, &m.lhs, d);
            walk_expr(v, &m.rhs, d);
        }
        ExprVal::Logic(l) => {
            walk_expr(v, &l.lhs, d);
            walk_expr(v, &l.rhs, d);
        }
        ExprVal::In(i) => {
            walk_expr(v, &i.lhs, d);
            walk_expr(v, &i.rhs, d);
        }
        ExprVal::Test(t) => {
            for e in &t.args {
                walk_expr(v, e, d);
            }
        }
        ExprVal::MacroCall(m) => {
            for (_, e) in sorted(&m.args) {
                walk_expr(v, e, d);
            }
        }
        ExprVal::FunctionCall(f) => walk_call(v, f, d),
        ExprVal::Array(items) => {
            for e in items {
                walk_expr(v, e, d);
            }
        }
        // A concatenation's parts are values, not expressions: visit
        // them as expressions of their own one level down.
        ExprVal::StringConcat(c) => {
            for part in &c.values {
                walk_val(v, part, d);
            }
        }
    }
}

fn walk_call<'a>(v: &mut impl Visitor<'a>, call: &'a FunctionCall, d: usize) {
    for (_, e) in sorted(&call.args) {
        walk_expr(v, e, d);
    }
}

/// tera keeps arguments in a `HashMap`: visit them in name order, so the
/// first problem reported is the same on every run.
fn sorted<T>(map: &HashMap<String, T>) -> Vec<(&String, &T)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}

/// How deep a macro's body nests and what it costs, calls included.
#[derive(Debug, Clone, Copy)]
pub(super) struct Summary {
    depth: usize,
    cost: u64,
}

pub(super) type Macros = BTreeMap<String, Summary>;

/// Checks `template`, and summarizes its macros for [`cost_of`].
pub(super) fn check(template: &tera::Template) -> Result<Macros, String> {
    let mut refusals = Refusals::default();
    walk_nodes(&mut refusals, &template.ast, 0);
    if let Some(found) = refusals.found {
        return Err(found);
    }
    let graph: BTreeMap<&str, BTreeSet<&str>> = template
        .macros
        .iter()
        .map(|(name, m)| {
            let mut calls = Calls::default();
            walk_nodes(&mut calls, &m.body, 1);
            (name.as_str(), calls.0)
        })
        .collect();
    let mut macros = Macros::new();
    for name in callees_first(&graph)? {
        let body = &template.macros[name].body;
        let summary = Summary {
            depth: depth_of(body, &macros),
            cost: cost_of(body, &macros),
        };
        macros.insert(name.to_string(), summary);
    }
    if depth_of(&template.ast, &macros) > MAX_DEPTH {
        return Err(format!(
            "the template nests deeper than {MAX_DEPTH} levels, counting through the macros it calls"
        ));
    }
    if cost_of(&template.ast, &macros) > MAX_STEPS {
        return Err(format!(
            "the template expands, through its macros, to more than its limit of {MAX_STEPS} steps"
        ));
    }
    Ok(macros)
}

/// Constructs no template may hold.
#[derive(Default)]
struct Refusals {
    found: Option<String>,
}

impl<'a> Visitor<'a> for Refusals {
    fn node(&mut self, node: &'a Node, _: usize) -> bool {
        let one_file = "a template is one file";
        let refusal = match node {
            Node::Include(_, names, _) => Some(format!(
                "`{{% include {} %}}` is not allowed: {one_file}, and including itself would recurse without end",
                names.join(", ")
            )),
            Node::Extends(_, name) => Some(format!(
                "`{{% extends \"{name}\" %}}` is not allowed: {one_file}"
            )),
            Node::ImportMacro(_, name, _) => Some(format!(
                "`{{% import \"{name}\" %}}` is not allowed: {one_file}; call its macros as `self::name()`"
            )),
            _ => None,
        };
        if self.found.is_none() {
            self.found = refusal;
        }
        true
    }

    fn expr(&mut self, expr: &'a Expr, _: usize) {
        let refusal = match &expr.val {
            // tera unwraps the number a float literal makes: a literal too
            // large for an f64 would panic.
            ExprVal::Float(f) if !f.is_finite() => {
                Some("a number literal is too large for a 64-bit float".to_string())
            }
            ExprVal::MacroCall(m) if m.namespace != "self" => Some(format!(
                "macro call `{}::{}()`: a template is one file, its macros are called as `self::{}()`",
                m.namespace, m.name, m.name
            )),
            _ => None,
        };
        if self.found.is_none() {
            self.found = refusal;
        }
    }
}

/// The macros a body calls, wherever it calls them.
#[derive(Default)]
struct Calls<'a>(BTreeSet<&'a str>);

impl<'a> Visitor<'a> for Calls<'a> {
    fn expr(&mut self, expr: &'a Expr, _: usize) {
        if let ExprVal::MacroCall(m) = &expr.val {
            self.0.insert(m.name.as_str());
        }
    }
}

/// The macros in an order where each comes after those it calls, or the
/// first cycle, as a path. Iterative: a chain of macros is as long as the
/// template allows.
fn callees_first<'a>(graph: &BTreeMap<&'a str, BTreeSet<&'a str>>) -> Result<Vec<&'a str>, String> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark: BTreeMap<&str, Mark> = graph.keys().map(|&k| (k, Mark::New)).collect();
    let mut order = Vec::new();
    for &root in graph.keys() {
        if mark[root] != Mark::New {
            continue;
        }
        // The path from `root`, each macro with the callees left to visit.
        let mut path: Vec<(&str, Vec<&str>)> = Vec::new();
        let callees = |name: &str| -> Vec<&'a str> {
            graph
                .get(name)
                .map_or_else(Vec::new, |c| c.iter().rev().copied().collect())
        };
        mark.insert(root, Mark::Open);
        path.push((root, callees(root)));
        while let Some((name, left)) = path.last_mut() {
            let name = *name;
            match left.pop() {
                Some(next) => match mark.get(next) {
                    // A call to a macro that does not exist fails when it
                    // renders.
                    None | Some(Mark::Done) => {}
                    Some(Mark::Open) => {
                        let start = path.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let mut cycle: Vec<&str> = path[start..].iter().map(|(n, _)| *n).collect();
                        cycle.push(next);
                        return Err(format!(
                            "macro `{next}` calls itself ({}): recursive macros are not allowed, they would recurse until the stack overflows",
                            cycle.join(" → ")
                        ));
                    }
                    Some(Mark::New) => {
                        mark.insert(next, Mark::Open);
                        path.push((next, callees(next)));
                    }
                },
                None => {
                    mark.insert(name, Mark::Done);
                    order.push(name);
                    path.pop();
                }
            }
        }
    }
    Ok(order)
}

/// The deepest a body nests when it runs, through the macros it calls.
fn depth_of(body: &[Node], macros: &Macros) -> usize {
    struct Depth<'m> {
        macros: &'m Macros,
        max: usize,
    }
    impl<'a> Visitor<'a> for Depth<'_> {
        fn node(&mut self, node: &'a Node, depth: usize) -> bool {
            self.max = self.max.max(depth);
            // A definition runs where it is called, not where it stands.
            !matches!(node, Node::MacroDefinition(..))
        }
        fn expr(&mut self, expr: &'a Expr, depth: usize) {
            let called = match &expr.val {
                ExprVal::MacroCall(m) => self.macros.get(&m.name).map_or(0, |s| s.depth),
                _ => 0,
            };
            self.max = self.max.max(depth + called);
        }
    }
    let mut v = Depth { macros, max: 0 };
    walk_nodes(&mut v, body, 1);
    v.max
}

/// A bound on the work of running `body` once, apart from its loops'
/// bodies (the meter charges those per iteration) and from the values it
/// builds (charged as they are built): one step per node and expression,
/// one per byte of text, and what each macro called costs.
pub(super) fn cost_of(body: &[Node], macros: &Macros) -> u64 {
    struct Cost<'m> {
        macros: &'m Macros,
        total: u64,
    }
    impl<'a> Visitor<'a> for Cost<'_> {
        fn node(&mut self, node: &'a Node, depth: usize) -> bool {
            let text = match node {
                Node::Text(s) | Node::Raw(_, s, _) => s.len() as u64,
                _ => 0,
            };
            self.total = self.total.saturating_add(1 + text);
            match node {
                Node::MacroDefinition(..) => false,
                Node::Forloop(_, f, _) => {
                    walk_expr(self, &f.container, depth + 1);
                    if let Some(body) = &f.empty_body {
                        walk_nodes(self, body, depth + 1);
                    }
                    false
                }
                _ => true,
            }
        }
        fn expr(&mut self, expr: &'a Expr, _: usize) {
            let called = match &expr.val {
                ExprVal::MacroCall(m) => self.macros.get(&m.name).map_or(0, |s| s.cost),
                _ => 0,
            };
            self.total = self.total.saturating_add(1).saturating_add(called);
        }
    }
    let mut v = Cost { macros, total: 0 };
    walk_nodes(&mut v, body, 0);
    v.total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(source: &str) -> Result<Macros, String> {
        let template = tera::Template::new("t", None, source).expect("parses");
        check(&template)
    }

    fn refused(source: &str) -> String {
        match checked(source) {
            Err(e) => e,
            Ok(_) => panic!("accepted: {source}"),
        }
    }

    #[test]
    fn include_extends_and_import_are_refused() {
        let e = refused("a{% include \"t\" %}b");
        assert!(e.contains("include") && e.contains("one file"), "{e}");
        let e = refused("{% if x %}{% include \"other\" ignore missing %}{% endif %}");
        assert!(e.contains("include"), "{e}");
        let e = refused("{% extends \"t\" %}");
        assert!(e.contains("extends"), "{e}");
        let e = refused("{% import \"t\" as m %}{{ m::f() }}");
        assert!(e.contains("import"), "{e}");
        let e = refused("{% macro f() %}x{% endmacro %}{{ m::f() }}");
        assert!(e.contains("self::f()"), "{e}");
    }

    #[test]
    fn a_macro_calling_itself_is_refused() {
        let e = refused("{% macro m() %}{{ self::m() }}{% endmacro %}{{ self::m() }}");
        assert!(e.contains("macro `m` calls itself (m → m)"), "{e}");
        // A cycle is found even when nothing calls it.
        let e = refused("{% macro m() %}{{ self::m() }}{% endmacro %}");
        assert!(e.contains("calls itself"), "{e}");
    }

    #[test]
    fn cycles_through_other_macros_are_refused_wherever_the_call_is() {
        let bodies = [
            "{{ self::b() }}",
            "{% if self::b() %}x{% endif %}",
            "{% for i in [1] %}{{ self::b() }}{% endfor %}",
            "{% for i in [1] %}{% else %}{{ self::b() }}{% endfor %}",
            "{% if x %}{% elif y %}{% else %}{{ self::b() }}{% endif %}",
            "{{ x | default(value=self::b()) }}",
            "{{ range(end=self::b() | length) }}",
            "{{ [1, self::b()] }}",
            "{{ 1 + self::b() | length }}",
            "{{ self::b() == 'x' and y }}",
            "{{ self::b() in 'x' }}",
            "{{ x is containing(self::b()) }}",
            "{{ self::c(v=self::b()) }}",
            "{% set x = self::b() %}",
            "{% set_global x = self::b() %}",
            "{% filter replace(from='a', to=self::b()) %}a{% endfilter %}",
            "{% filter upper %}{{ self::b() }}{% endfilter %}",
        ];
        for body in bodies {
            let source = format!(
                "{{% macro a() %}}{body}{{% endmacro %}}\
                 {{% macro b() %}}{{{{ self::a() }}}}{{% endmacro %}}\
                 {{% macro c(v) %}}{{{{ v }}}}{{% endmacro %}}"
            );
            let e = refused(&source);
            assert!(
                e.contains("macro `a` calls itself (a → b → a)"),
                "{body}: {e}"
            );
        }
    }

    #[test]
    fn acyclic_macros_are_allowed() {
        let source = "{% macro leaf(x) %}[{{ x }}]{% endmacro %}\
                      {% macro mid() %}{{ self::leaf(x=1) }}{{ self::leaf(x=2) }}{% endmacro %}\
                      {% macro top() %}{{ self::mid() }}{{ self::leaf(x=3) }}{% endmacro %}\
                      {{ self::top() }}";
        let macros = checked(source).unwrap();
        assert_eq!(macros.len(), 3);
        assert!(macros["top"].depth > macros["mid"].depth);
        assert!(macros["top"].cost > macros["mid"].cost);
    }

    #[test]
    fn loops_ranges_and_expressions_are_allowed() {
        for source in [
            "{% for k, v in vars %}{{ k }}={{ v }}\n{% endfor %}",
            "{% for i in range(start=1, end=10, step_by=2) %}{{ i }}{% endfor %}",
            "{% set x = 'a' ~ recipe.name ~ 1 %}{% if x is containing('a') and not y %}{{ x | upper }}{% endif %}",
            "{% block b %}{{ 1.5 * 2 }}{% endblock %}{% raw %}{{ x }}{% endraw %}{# c #}",
        ] {
            checked(source).unwrap();
        }
    }

    #[test]
    fn infinite_float_literals_are_refused() {
        let source = format!("{{{{ 1{}.0 }}}}", "0".repeat(400));
        assert!(refused(&source).contains("too large"));
    }

    #[test]
    fn depth_counts_through_macros() {
        // Each macro nests its call one level deeper than the last.
        let mut source = String::from("{% macro m0() %}x{% endmacro %}");
        for i in 1..=60 {
            source += &format!(
                "{{% macro m{i}() %}}{{% if a %}}{{{{ self::m{}() }}}}{{% endif %}}{{% endmacro %}}",
                i - 1
            );
        }
        assert!(checked(&format!("{source}{{{{ self::m30() }}}}")).is_ok());
        let e = refused(&format!("{source}{{{{ self::m60() }}}}"));
        assert!(e.contains("deeper than 128"), "{e}");
    }

    #[test]
    fn cost_excludes_loop_bodies_but_counts_macros() {
        let macros = checked("{% macro m() %}0123456789{% endmacro %}").unwrap();
        let parse = |s: &str| tera::Template::new("t", None, s).unwrap().ast;
        let in_loop = cost_of(&parse("{% for i in x %}0123456789{% endfor %}"), &macros);
        let called = cost_of(&parse("{{ self::m() }}"), &macros);
        assert!(in_loop < 10, "{in_loop}");
        assert!(called > 10, "{called}");
        // Exponential expansion through acyclic macros is refused.
        let mut source = String::from("{% macro m0() %}0123456789{% endmacro %}");
        for i in 1..=40 {
            let p = i - 1;
            source += &format!(
                "{{% macro m{i}() %}}{{% if self::m{p}() %}}{{% endif %}}{{% if self::m{p}() %}}{{% endif %}}{{% endmacro %}}"
            );
        }
        let e = refused(&format!("{source}{{% if self::m40() %}}{{% endif %}}"));
        assert!(e.contains("expands"), "{e}");
    }
}
