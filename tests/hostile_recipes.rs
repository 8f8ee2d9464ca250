//! Recipes and templates that would exhaust the stack, memory or time
//! (issue 14) fail like any bad input: quickly, with one `error:` line
//! naming the file and the limit, exit code 2, not by a signal, and no
//! output or staging directory left. Where memory is the risk, ingot runs
//! under `prlimit --as` (512 MiB): a limit that did not hold would end in
//! an allocation failure, by a signal.

mod common;

use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{require, stderr};

/// Address space ingot may use in these tests.
const MEMORY: &str = "--as=536870912";

/// How long a refusal may take (a debug build, on a loaded machine).
const QUICK: Duration = Duration::from_secs(5);

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(recipe: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("recipe/files")).unwrap();
        std::fs::write(dir.path().join("recipe/recipe.yaml"), recipe).unwrap();
        Fixture { dir }
    }

    /// A recipe whose one step renders `template` (`files/t.tera`).
    fn with_template(template: &str) -> Fixture {
        let f = Fixture::new(&format!(
            "{HEAD}layers:\n  - name: l\n    steps:\n      - template: {{ src: files/t.tera, dest: /etc/t }}\n"
        ));
        std::fs::write(f.dir.path().join("recipe/files/t.tera"), template).unwrap();
        f
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out/image")
    }

    /// Builds under the memory limit and checks the failure contract;
    /// returns the error line.
    fn refused(&self) -> String {
        require("prlimit");
        let mut cmd = limited(common::ingot());
        cmd.arg("build")
            .arg(self.dir.path().join("recipe/recipe.yaml"))
            .arg("-o")
            .arg(self.out());
        let start = Instant::now();
        let output: Output = cmd.output().expect("running prlimit ingot");
        let took = start.elapsed();
        let err = stderr(&output);
        assert_eq!(output.status.signal(), None, "killed by a signal: {err}");
        assert_eq!(output.status.code(), Some(2), "stderr: {err}");
        assert!(took < QUICK, "took {took:?}: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
        assert!(!self.dir.path().join("out").exists(), "output was created");
        for entry in walkdir::WalkDir::new(self.dir.path()) {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(".ingot-"), "left behind: {name}");
        }
        lines[0].to_string()
    }
}

/// `cmd`, run by `prlimit` with [`MEMORY`], environment kept.
fn limited(cmd: Command) -> Command {
    let mut wrapped = Command::new("prlimit");
    wrapped.arg(MEMORY).arg("--").arg(cmd.get_program());
    wrapped.args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => wrapped.env(key, v),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

const HEAD: &str = "name: bad\nversion: '1'\nbase: stemcell:static\n";

fn names_template_and(err: &str, what: &str) {
    assert!(
        err.contains("recipe.yaml:7:")
            && err.contains("template files/t.tera")
            && err.contains(what),
        "{err}"
    );
}

#[test]
fn issue_14_template_including_itself() {
    let err = Fixture::with_template("x{% include \"files/t.tera\" %}").refused();
    names_template_and(&err, "include");
}

#[test]
fn issue_14_recursive_macro() {
    let err = Fixture::with_template(
        "{% macro a() %}{{ self::b() }}{% endmacro %}{% macro b() %}{% if x %}{{ self::a() }}{% endif %}{% endmacro %}{{ self::a() }}",
    )
    .refused();
    names_template_and(&err, "macro `a` calls itself (a → b → a)");
}

#[test]
fn issue_14_range_to_two_billion() {
    let err =
        Fixture::with_template("{% for i in range(end=2000000000) %}{{ i }}{% endfor %}").refused();
    names_template_and(&err, "more than the limit of 100000");
}

#[test]
fn issue_14_string_doubling() {
    let err = Fixture::with_template(
        "{% set_global s = 'x' %}{% for i in range(end=64) %}{% set_global s = s ~ s %}{% endfor %}{{ s }}",
    )
    .refused();
    names_template_and(&err, "16 MiB");
    let err = Fixture::with_template(&format!(
        "{{{{ 'xx' {} }}}}",
        "| replace(from='x', to='xx') ".repeat(64)
    ))
    .refused();
    names_template_and(&err, "16 MiB");
}

#[test]
fn issue_14_template_nested_past_the_stack() {
    let err = Fixture::with_template(&format!("{}x", "{% if true %}".repeat(10_000))).refused();
    names_template_and(
        &err,
        "line 1, column 1665: the template nests deeper than 128",
    );
}

#[test]
fn issue_14_deep_flow_yaml() {
    for (open, close) in [("[", "]"), ("{a: ", "}")] {
        let recipe = format!(
            "{HEAD}vars: {{ x: {}1{} }}\n",
            open.repeat(100_000),
            close.repeat(100_000)
        );
        let err = Fixture::new(&recipe).refused();
        assert!(
            err.contains("recipe.yaml:4:") && err.contains("nests deeper than 64 levels"),
            "{err}"
        );
    }
}

#[test]
fn issue_14_recipe_over_a_mebibyte() {
    let recipe = format!("{HEAD}vars: {{ x: '{}' }}\n", "x".repeat(2 << 20));
    let err = Fixture::new(&recipe).refused();
    assert!(
        err.contains("recipe.yaml") && err.contains("larger than the limit of 1 MiB"),
        "{err}"
    );
}

/// The limits leave real templates alone: loops over vars, ranges,
/// macros calling macros.
#[test]
fn a_template_within_the_limits_builds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recipe");
    std::fs::create_dir_all(root.join("files")).unwrap();
    std::fs::write(
        root.join("recipe.yaml"),
        format!(
            "{HEAD}vars: {{ hosts: [a, b, c] }}\nlayers:\n  - name: l\n    steps:\n      - template: {{ src: files/t.tera, dest: /etc/t }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("files/t.tera"),
        "{% macro line(h, i) %}{{ i }} {{ h }}{% endmacro %}\
         {% macro all() %}{% for h in vars.hosts %}{{ self::line(h=h, i=loop.index) }}\n{% endfor %}{% endmacro %}\
         {{ self::all() }}{% for i in range(end=3) %}{{ i }}{% endfor %}\n",
    )
    .unwrap();
    common::build(&root.join("recipe.yaml"), &dir.path().join("out"));
}
