//! Bounds on what a template does while it renders (issue 14).
//!
//! tera bounds nothing: `range(end=2000000000)` allocates until the
//! process aborts, and a `set_global` in a loop, a chain of `set`s or of
//! filters doubles a string at each step. So before a template renders,
//! [`rewrite`] makes every value an expression yields pass a check filter,
//! every builtin filter and test is wrapped to check what it reads and
//! builds, `range` is replaced, and each loop charges its iterations when
//! it starts. The [`Meter`] counts steps (bytes built or read, and each
//! loop iteration times the static cost of its body, `walk::cost_of`) and
//! refuses a value over [`MAX_VALUE_BYTES`] or nested deeper than
//! [`MAX_DEPTH`], a filter call allocating over [`MAX_FILTER_BYTES`], more
//! than [`MAX_STEPS`] steps, output over [`MAX_OUTPUT_BYTES`] and ranges
//! over [`MAX_RANGE`] elements.
//!
//! The first limit hit is kept: tera swallows some errors (an `if` whose
//! condition fails is false), so a render that hit one fails even if tera
//! finished it, and every check after the first refusal refuses too.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tera::ast::{Expr, ExprVal, FunctionCall, Node};
use tera::{Filter, Function, Test, Value};

use super::walk::{self, Macros};
use super::{MAX_DEPTH, MAX_FILTER_BYTES, MAX_OUTPUT_BYTES, MAX_RANGE, MAX_STEPS, MAX_VALUE_BYTES};

/// Names the rewrite inserts; a template has no use for them.
const CHECK: &str = "__ingot_check";
const CHECK_SAFE: &str = "__ingot_check_safe";
const LOOP: &str = "__ingot_loop";
const VALUE: &str = "__ingot_value";

/// Whether a message from tera's error chain is about an inserted name.
pub(super) fn is_internal(message: &str) -> bool {
    message.contains("'__ingot_")
}

/// What a `Value` costs beyond its payload: about its size in memory.
const ELEMENT: u64 = 32;

/// Steps spent and the first limit hit; shared by everything `install`s.
#[derive(Default)]
pub(super) struct Meter {
    steps: AtomicU64,
    stopped: AtomicBool,
    hit: Mutex<Option<String>>,
}

impl Meter {
    /// The first limit the template hit.
    pub(super) fn hit(&self) -> Option<String> {
        self.hit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn refuse(&self, message: String) -> tera::Error {
        self.stopped.store(true, Ordering::Relaxed);
        self.hit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(|| message.clone());
        tera::Error::msg(message)
    }

    fn charge(&self, steps: u64) -> tera::Result<()> {
        let total = self
            .steps
            .fetch_add(steps, Ordering::Relaxed)
            .saturating_add(steps);
        if total > MAX_STEPS {
            return Err(self.refuse(format!(
                "the template does more work than its limit of {MAX_STEPS} steps (bytes built or read, and loop iterations)"
            )));
        }
        if self.stopped.load(Ordering::Relaxed) {
            return Err(tera::Error::msg(self.hit().unwrap_or_default()));
        }
        Ok(())
    }

    /// Refuses `value` beyond the limits; else charges its size.
    fn check(&self, value: &Value) -> tera::Result<()> {
        let bytes = measure(value, 1).map_err(|m| self.refuse(m))?;
        self.charge(bytes)
    }
}

/// About the bytes `value` holds in memory. Stops at the first limit it
/// crosses, so it reads at most about [`MAX_VALUE_BYTES`].
fn measure(value: &Value, depth: usize) -> Result<u64, String> {
    let too_large = || {
        format!(
            "the template builds a value larger than {} MiB, the limit for one value",
            MAX_VALUE_BYTES >> 20
        )
    };
    if depth > MAX_DEPTH {
        return Err(format!(
            "the template builds a value nested deeper than {MAX_DEPTH} levels"
        ));
    }
    let mut total = ELEMENT;
    match value {
        Value::String(s) => total += s.len() as u64,
        // tera adds and subtracts floats unchecked and panics on an
        // infinite result: no operand may be more than half the largest.
        Value::Number(n) if n.as_f64().is_some_and(|f| f.abs() > f64::MAX / 2.0) => {
            return Err(format!(
                "the template uses the number {n}, too large for arithmetic (at most {:e})",
                f64::MAX / 2.0
            ));
        }
        Value::Array(items) => {
            for item in items {
                total += measure(item, depth + 1)?;
                if total > MAX_VALUE_BYTES as u64 {
                    return Err(too_large());
                }
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                total += ELEMENT + key.len() as u64 + measure(item, depth + 1)?;
                if total > MAX_VALUE_BYTES as u64 {
                    return Err(too_large());
                }
            }
        }
        _ => {}
    }
    if total > MAX_VALUE_BYTES as u64 {
        return Err(too_large());
    }
    Ok(total)
}

/// Wraps tera's builtin filters and tests, and adds `range` and the
/// names the rewrite inserts.
pub(super) fn install(tera: &mut tera::Tera, meter: &Arc<Meter>) {
    for (name, filter) in tera.filters.iter_mut() {
        *filter = Arc::new(Metered {
            name: name.clone(),
            inner: filter.clone(),
            meter: meter.clone(),
        });
    }
    for (name, test) in tera.testers.iter_mut() {
        *test = Arc::new(Metered {
            name: name.clone(),
            inner: test.clone(),
            meter: meter.clone(),
        });
    }
    tera.register_function("range", Range(meter.clone()));
    tera.register_function(VALUE, Pass(meter.clone()));
    for (name, safe) in [(CHECK, false), (CHECK_SAFE, true)] {
        tera.register_filter(
            name,
            Check {
                meter: meter.clone(),
                safe,
            },
        );
    }
    tera.register_filter(LOOP, Loop(meter.clone()));
}

/// A builtin filter or test, charged for what it reads and checked on
/// what it builds.
struct Metered<T: ?Sized> {
    name: String,
    inner: Arc<T>,
    meter: Arc<Meter>,
}

impl Filter for Metered<dyn Filter> {
    fn filter(&self, value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
        self.meter.check(value)?;
        for arg in args.values() {
            self.meter.check(arg)?;
        }
        if let Some(bytes) = allocates(&self.name, value, args)
            && bytes > MAX_FILTER_BYTES as u64
        {
            return Err(self.meter.refuse(format!(
                "the filter `{}` would allocate about {} MiB, more than its limit of {} MiB",
                self.name,
                bytes >> 20,
                MAX_FILTER_BYTES >> 20
            )));
        }
        let out = self.inner.filter(value, args)?;
        self.meter.check(&out)?;
        Ok(out)
    }

    fn is_safe(&self) -> bool {
        self.inner.is_safe()
    }
}

impl Test for Metered<dyn Test> {
    fn test(&self, value: Option<&Value>, args: &[Value]) -> tera::Result<bool> {
        for v in value.into_iter().chain(args) {
            self.meter.check(v)?;
        }
        self.inner.test(value, args)
    }
}

/// About the bytes a builtin filter will allocate, for those that may
/// allocate many times what they read; checked before they run. The
/// others allocate at most a few times what they read, and what they build
/// is checked after.
fn allocates(name: &str, value: &Value, args: &HashMap<String, Value>) -> Option<u64> {
    let arg = |key: &str| args.get(key).and_then(Value::as_str);
    // `join` and `split` read "\n" and "\t" in their argument as escapes.
    let unescape = |s: &str| s.replace("\\n", "\n").replace("\\t", "\t");
    let count = |s: &str, pattern: &str| -> u64 {
        if pattern.is_empty() {
            s.chars().count() as u64 + 1
        } else {
            s.matches(pattern).count() as u64
        }
    };
    let chars = |s: &str, set: &str| s.chars().filter(|c| set.contains(*c)).count() as u64;
    let plus = |s: &str, n: u64, bytes: usize| {
        (s.len() as u64).saturating_add(n.saturating_mul(bytes as u64))
    };
    let s = value.as_str();
    match name {
        "replace" => {
            let (s, from, to) = (s?, arg("from")?, arg("to")?);
            Some(plus(s, count(s, from), to.len()))
        }
        "indent" => {
            let s = s?;
            Some(plus(
                s,
                count(s, "\n") + 1,
                arg("prefix").unwrap_or("    ").len(),
            ))
        }
        "split" => {
            let (s, pattern) = (s?, unescape(arg("pat")?));
            Some(plus(s, count(s, &pattern) + 1, ELEMENT as usize))
        }
        "join" => {
            let items = value.as_array()?.len() as u64;
            let sep = unescape(arg("sep").unwrap_or(""));
            let bytes = measure(value, 1).unwrap_or(u64::MAX);
            Some(bytes.saturating_add(items.saturating_mul(sep.len() as u64)))
        }
        "escape" => s.map(|s| plus(s, chars(s, "&<>\"'/"), 5)),
        "escape_xml" => s.map(|s| plus(s, chars(s, "&<>\"'"), 5)),
        "linebreaksbr" => s.map(|s| plus(s, count(s, "\n"), 3)),
        // Every grapheme indexed first, at 24 bytes each.
        "truncate" => s.map(|s| (s.len() as u64).saturating_mul(24)),
        // Pretty JSON indents every line by its depth: count what it writes.
        "json_encode" => {
            let mut counter = Counter(0);
            let pretty = args.get("pretty").and_then(Value::as_bool).unwrap_or(false);
            let _ = if pretty {
                serde_json::to_writer_pretty(&mut counter, value)
            } else {
                serde_json::to_writer(&mut counter, value)
            };
            Some(counter.0)
        }
        _ => None,
    }
}

/// Counts bytes written to it, and stops past what any filter may build.
struct Counter(u64);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        if self.0 > MAX_FILTER_BYTES as u64 {
            return Err(io::Error::other("too large"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// tera's `range(start, end, step_by)`, refusing more than [`MAX_RANGE`]
/// elements (and a step of 0, which never ends).
struct Range(Arc<Meter>);

impl Function for Range {
    fn call(&self, args: &HashMap<String, Value>) -> tera::Result<Value> {
        let number = |name: &str, default: Option<usize>| -> tera::Result<usize> {
            match args.get(name) {
                Some(v) => tera::from_value::<usize>(v.clone()).map_err(|_| {
                    tera::Error::msg(format!(
                        "Function `range` received {name}={v} but `{name}` can only be a number"
                    ))
                }),
                None => default.ok_or_else(|| {
                    tera::Error::msg(format!(
                        "Function `range` was called without a `{name}` argument"
                    ))
                }),
            }
        };
        let start = number("start", Some(0))?;
        let step = number("step_by", Some(1))?;
        let end = number("end", None)?;
        if start > end {
            return Err(tera::Error::msg(
                "Function `range` was called with a `start` argument greater than the `end` one",
            ));
        }
        if step == 0 {
            return Err(tera::Error::msg(
                "Function `range` was called with `step_by=0`, which never ends",
            ));
        }
        let count = (end - start).div_ceil(step);
        if count > MAX_RANGE {
            return Err(self.0.refuse(format!(
                "range(start={start}, end={end}, step_by={step}) has {count} elements, more than the limit of {MAX_RANGE}"
            )));
        }
        let values = Value::Array((start..end).step_by(step).map(Value::from).collect());
        self.0.check(&values)?;
        Ok(values)
    }
}

/// The check the rewrite puts on every expression: the value unchanged.
/// `safe` says whether tera should treat it as already escaped.
struct Check {
    meter: Arc<Meter>,
    safe: bool,
}

impl Filter for Check {
    fn filter(&self, value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
        self.meter.check(value)?;
        Ok(value.clone())
    }

    fn is_safe(&self) -> bool {
        self.safe
    }
}

/// The check on a loop's container: charges every iteration now, each
/// the static cost of the body, given as `cost`.
struct Loop(Arc<Meter>);

impl Filter for Loop {
    fn filter(&self, value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
        self.0.check(value)?;
        let iterations = match value {
            Value::Array(items) => items.len(),
            Value::Object(map) => map.len(),
            Value::String(s) => s.chars().count(),
            _ => 0,
        };
        let cost = args.get("cost").and_then(Value::as_u64).unwrap_or(0);
        self.0
            .charge((iterations as u64).saturating_mul(cost.saturating_add(1)))?;
        Ok(value.clone())
    }
}

/// The check on a part of a `~` concatenation, which tera evaluates as a
/// value rather than an expression: `__ingot_value(v=part)`.
struct Pass(Arc<Meter>);

impl Function for Pass {
    fn call(&self, args: &HashMap<String, Value>) -> tera::Result<Value> {
        let value = args.get("v").cloned().unwrap_or(Value::Null);
        self.0.check(&value)?;
        Ok(value)
    }

    /// A concatenation of names is not escaped; keep it so.
    fn is_safe(&self) -> bool {
        true
    }
}

/// Where a template renders to: refuses more than [`MAX_OUTPUT_BYTES`].
/// tera's `render_to` writes as it goes, so the limit holds as it renders.
pub(super) struct Output {
    bytes: Vec<u8>,
    meter: Arc<Meter>,
}

impl Output {
    pub(super) fn new(meter: &Arc<Meter>) -> Output {
        Output {
            bytes: Vec::new(),
            meter: meter.clone(),
        }
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl io::Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_OUTPUT_BYTES {
            let message = format!(
                "the template writes more than {} MiB, the limit for its output",
                MAX_OUTPUT_BYTES >> 20
            );
            self.meter.refuse(message.clone());
            return Err(io::Error::other(message));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Puts the checks into `template`: its AST, and the copies tera renders
/// from (macro definitions and blocks).
pub(super) fn rewrite(template: &mut tera::Template, macros: &Macros) {
    rewrite_nodes(&mut template.ast, macros);
    for m in template.macros.values_mut() {
        rewrite_nodes(&mut m.body, macros);
    }
    for block in template.blocks.values_mut() {
        rewrite_nodes(&mut block.body, macros);
    }
}

fn rewrite_nodes(nodes: &mut [Node], macros: &Macros) {
    for node in nodes {
        rewrite_node(node, macros);
    }
}

fn rewrite_node(node: &mut Node, macros: &Macros) {
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
        Node::VariableBlock(_, e) => rewrite_expr(e),
        Node::Set(_, set) => rewrite_expr(&mut set.value),
        // Default values are literals; the body is the copy in the AST.
        Node::MacroDefinition(_, m, _) => rewrite_nodes(&mut m.body, macros),
        Node::FilterSection(_, section, _) => {
            rewrite_call(&mut section.filter);
            rewrite_nodes(&mut section.body, macros);
        }
        Node::Block(_, block, _) => rewrite_nodes(&mut block.body, macros),
        Node::Forloop(_, f, _) => {
            let cost = walk::cost_of(&f.body, macros);
            // The container is charged as a whole, after its filters.
            rewrite_val(&mut f.container.val);
            for filter in &mut f.container.filters {
                rewrite_call(filter);
            }
            let cost = Expr::new(ExprVal::Int(i64::try_from(cost).unwrap_or(i64::MAX)));
            f.container.filters.push(call(LOOP, Some(("cost", cost))));
            rewrite_nodes(&mut f.body, macros);
            if let Some(body) = &mut f.empty_body {
                rewrite_nodes(body, macros);
            }
        }
        Node::If(i, _) => {
            for (_, condition, body) in &mut i.conditions {
                rewrite_expr(condition);
                rewrite_nodes(body, macros);
            }
            if let Some((_, body)) = &mut i.otherwise {
                rewrite_nodes(body, macros);
            }
        }
    }
}

/// Puts [`CHECK`] first among `expr`'s filters (after `default`, which
/// tera only honours first), so its value is checked before any filter
/// reads it. Which of the two checks keeps tera's escaping as it was: with
/// no other filter, the last filter run decides whether a string is
/// escaped, and tera escapes literals, names and function results only.
fn rewrite_expr(expr: &mut Expr) {
    rewrite_val(&mut expr.val);
    for filter in &mut expr.filters {
        rewrite_call(filter);
    }
    let escaped = match &expr.val {
        ExprVal::String(_) | ExprVal::FunctionCall(_) => true,
        ExprVal::Ident(name) => name != "__tera_context",
        _ => false,
    };
    let at = usize::from(expr.filters.first().is_some_and(|f| f.name == "default"));
    let check = if escaped { CHECK } else { CHECK_SAFE };
    expr.filters.insert(at, call(check, None));
}

fn rewrite_val(val: &mut ExprVal) {
    match val {
        ExprVal::String(_)
        | ExprVal::Int(_)
        | ExprVal::Float(_)
        | ExprVal::Bool(_)
        | ExprVal::Ident(_) => {}
        ExprVal::Math(m) => {
            rewrite_expr(&mut m.lhs);
            rewrite_expr(&mut m.rhs);
        }
        ExprVal::Logic(l) => {
            rewrite_expr(&mut l.lhs);
            rewrite_expr(&mut l.rhs);
        }
        ExprVal::In(i) => {
            rewrite_expr(&mut i.lhs);
            rewrite_expr(&mut i.rhs);
        }
        ExprVal::Test(t) => t.args.iter_mut().for_each(rewrite_expr),
        ExprVal::MacroCall(m) => m.args.values_mut().for_each(rewrite_expr),
        ExprVal::FunctionCall(f) => rewrite_call(f),
        ExprVal::Array(items) => items.iter_mut().for_each(rewrite_expr),
        // Each part that is not a literal becomes `__ingot_value(v=part)`.
        ExprVal::StringConcat(c) => {
            for part in &mut c.values {
                if matches!(
                    part,
                    ExprVal::String(_) | ExprVal::Int(_) | ExprVal::Float(_)
                ) {
                    continue;
                }
                let mut inner = std::mem::replace(part, ExprVal::Bool(false));
                rewrite_val(&mut inner);
                *part = ExprVal::FunctionCall(call(VALUE, Some(("v", Expr::new(inner)))));
            }
        }
    }
}

fn rewrite_call(call: &mut FunctionCall) {
    call.args.values_mut().for_each(rewrite_expr);
}

fn call(name: &str, arg: Option<(&str, Expr)>) -> FunctionCall {
    FunctionCall {
        name: name.to_string(),
        args: arg.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}
