use std::path::PathBuf;

use super::*;
use crate::params::ParamSpec;
use crate::recipe::Pos;
use values::Entry;

fn param(f: impl FnOnce(&mut ParamSpec)) -> ParamSpec {
    let mut p = ParamSpec::default();
    f(&mut p);
    p
}

fn params() -> Params {
    [
        (
            "LOG_LEVEL".to_string(),
            param(|p| {
                p.default = Some("info".into());
                p.pattern = Some("debug|info|warn|error".into());
            }),
        ),
        (
            "DATABASE_URL".to_string(),
            param(|p| {
                p.required = true;
                p.secret = true;
                p.description = Some("the primary database".into());
            }),
        ),
        ("REGION".to_string(), param(|_| {})),
    ]
    .into()
}

fn values(entries: &[(&str, Given, usize)]) -> Values {
    Values {
        file: PathBuf::from("prod.yaml"),
        entries: entries
            .iter()
            .map(|(n, g, line)| {
                (
                    n.to_string(),
                    Entry {
                        given: g.clone(),
                        pos: Pos {
                            line: *line,
                            col: 1,
                        },
                    },
                )
            })
            .collect(),
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn lit(s: &str) -> Given {
    Given::Literal(s.into())
}

#[test]
fn binds_values_defaults_and_references() {
    let env = |v: &str| (v == "DB").then(|| "postgres://db".to_string());
    let v = values(&[("DATABASE_URL", Given::Env("DB".into()), 1)]);
    let b = resolve(&params(), &v, Format::Env, &env).unwrap();
    let got: Vec<(&str, &Bound, Source)> = b
        .iter()
        .map(|b| (b.name.as_str(), &b.value, b.source))
        .collect();
    assert_eq!(
        got,
        [
            (
                "DATABASE_URL",
                &Bound::Value("postgres://db".into()),
                Source::Env
            ),
            ("LOG_LEVEL", &Bound::Value("info".into()), Source::Default),
        ]
    );
    let secret = Given::SecretRef {
        name: "db".into(),
        key: "url".into(),
    };
    let v = values(&[("DATABASE_URL", secret, 1), ("REGION", lit("eu"), 2)]);
    let b = resolve(&params(), &v, Format::Kubernetes, &no_env).unwrap();
    assert_eq!(b.len(), 3);
    assert!(b[0].secret);
}

#[test]
fn lists_every_problem_at_once() {
    let v = values(&[
        ("LOG_LEVEL", lit("verbose"), 1),
        ("NOPE", lit("x"), 2),
        ("REGION", Given::Env("UNSET".into()), 3),
    ]);
    let problems = resolve(&params(), &v, Format::Env, &no_env).unwrap_err();
    assert_eq!(
        problems,
        [
            "prod.yaml:1:1: LOG_LEVEL: \"verbose\" does not match the pattern \"debug|info|warn|error\"",
            "prod.yaml:2:1: unknown param NOPE; the image declares DATABASE_URL, LOG_LEVEL, REGION",
            "prod.yaml:3:1: REGION: environment variable UNSET is not set",
            "prod.yaml: DATABASE_URL is required (the primary database) but not given",
        ]
    );
}

#[test]
fn a_secret_never_takes_a_literal() {
    let v = values(&[("DATABASE_URL", lit("postgres://user:pw@db"), 4)]);
    for format in [Format::Env, Format::OciBundle, Format::Kubernetes] {
        let problems = resolve(&params(), &v, format, &no_env).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("prod.yaml:4:1: DATABASE_URL: is secret"));
        assert!(!problems[0].contains("pw@db"), "the value is not echoed");
    }
}

#[test]
fn references_fit_their_format() {
    let secret = Given::SecretRef {
        name: "db".into(),
        key: "url".into(),
    };
    let v = values(&[("DATABASE_URL", secret, 1)]);
    let p = resolve(&params(), &v, Format::OciBundle, &no_env).unwrap_err();
    assert!(p[0].contains("for --format kubernetes"), "{p:?}");
    let v = values(&[("DATABASE_URL", Given::Env("DB".into()), 1)]);
    let env = |_: &str| Some("x".to_string());
    let p = resolve(&params(), &v, Format::Kubernetes, &env).unwrap_err();
    assert!(p[0].contains("{ env: DB } is read when binding"), "{p:?}");
}

#[test]
fn values_from_the_environment_are_checked_but_not_shown() {
    let v = values(&[
        ("LOG_LEVEL", Given::Env("L".into()), 1),
        ("DATABASE_URL", Given::Env("DB".into()), 2),
    ]);
    let env = |_: &str| Some("hunter2".to_string());
    let p = resolve(&params(), &v, Format::Env, &env).unwrap_err();
    assert_eq!(
        p,
        [
            "prod.yaml:1:1: LOG_LEVEL: the value does not match the pattern \"debug|info|warn|error\""
        ]
    );
}
