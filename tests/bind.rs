//! `ingot bind`: one image, bound per environment without being touched;
//! every validation problem listed; outputs read back by their real
//! consumers (sh, runc, kubernetes-validate).

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{build, example, ingot, require, run, stderr, stdout};

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), fs::read(e.path()).unwrap()))
        .collect()
}

/// The hello example built into `dir/img`; returns the layout and digest.
fn hello(dir: &Path) -> (PathBuf, String) {
    let layout = dir.join("img");
    let digest = build(&example("hello"), &layout);
    (layout, digest)
}

/// `ingot bind` of `layout` with `values` as `format` into `out`.
fn bind_cmd(layout: &Path, values: &Path, format: &str, out: &Path) -> Command {
    let mut cmd = ingot();
    cmd.arg("bind")
        .arg(format!("oci:{}", layout.display()))
        .arg("--values")
        .arg(values)
        .args(["--format", format, "-o"])
        .arg(out);
    cmd
}

fn bind(layout: &Path, values: &Path, format: &str, out: &Path) -> std::process::Output {
    run(&mut bind_cmd(layout, values, format, out))
}

fn write(path: &Path, text: &str) -> PathBuf {
    fs::write(path, text).unwrap();
    path.to_path_buf()
}

fn comments(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with('#')).collect()
}

/// What `sh` reads back from a dotenv file: each name's value.
fn source_in_sh(file: &Path, names: &[&str]) -> Vec<String> {
    let script = names
        .iter()
        .map(|n| format!("printf '%s\\0' \"${n}\";"))
        .collect::<String>();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("set -a; . \"$1\"; {script}"))
        .arg("sh")
        .arg(file)
        .env_clear()
        .output()
        .unwrap();
    assert!(out.status.success(), "sh: {}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_terminator('\0').map(String::from).collect()
}

#[test]
fn dev_and_prod_bind_one_untouched_image() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, digest) = hello(dir.path());
    let before = snapshot(&layout);
    let dev = write(
        &dir.path().join("dev.yaml"),
        "LOG_LEVEL: debug\nDATABASE_URL: { env: DEV_DB }\n",
    );
    let prod = write(
        &dir.path().join("prod.yaml"),
        "DATABASE_URL: { env: PROD_DB }\n",
    );
    let tricky = "postgres://app:p\"w$HOME`x`\\n@db/prod\nsecond line";
    for (values, out, db) in [
        (&dev, "dev.env", "postgres://dev"),
        (&prod, "prod.env", tricky),
    ] {
        let output = run(bind_cmd(&layout, values, "env", &dir.path().join(out))
            .env("DEV_DB", db)
            .env("PROD_DB", db));
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert_eq!(
        snapshot(&layout),
        before,
        "binding changed the image layout"
    );

    let (dev_env, prod_env) = (dir.path().join("dev.env"), dir.path().join("prod.env"));
    for f in [&dev_env, &prod_env] {
        let mode = fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} may hold secrets", f.display());
        let text = fs::read_to_string(f).unwrap();
        assert!(text.contains(&format!("# digest: {digest}\n")), "{text}");
    }
    // The two outputs differ only in the values' lines.
    let dev_text = fs::read_to_string(&dev_env).unwrap();
    let prod_text = fs::read_to_string(&prod_env).unwrap();
    assert_eq!(comments(&dev_text), comments(&prod_text));
    // sh reads every value back byte for byte, the default included.
    let names = ["DATABASE_URL", "LOG_LEVEL"];
    assert_eq!(source_in_sh(&dev_env, &names), ["postgres://dev", "debug"]);
    assert_eq!(source_in_sh(&prod_env, &names), [tricky, "info"]);
}

#[test]
fn deployments_for_two_environments_differ_only_in_values() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = hello(dir.path());
    let mut docs = Vec::new();
    for (env, text) in [
        (
            "dev",
            "LOG_LEVEL: debug\nDATABASE_URL: { secretRef: dev-db/url }\n",
        ),
        (
            "prod",
            "LOG_LEVEL: warn\nDATABASE_URL: { secretRef: prod-db/url }\n",
        ),
    ] {
        let values = write(&dir.path().join(format!("{env}.yaml")), text);
        let out = dir.path().join(format!("{env}-deploy.yaml"));
        let output = run(bind_cmd(&layout, &values, "kubernetes", &out)
            .args(["--repo", "registry.example.com/hello"]));
        assert!(output.status.success(), "{}", stderr(&output));
        let doc: serde_json::Value =
            serde_yaml::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
        docs.push(doc);
    }
    let env = |d: &serde_json::Value| d["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    assert_eq!(env(&docs[0])[1]["value"], "debug");
    assert_eq!(env(&docs[1])[1]["value"], "warn");
    assert_eq!(
        env(&docs[1])[0]["valueFrom"]["secretKeyRef"]["name"],
        "prod-db"
    );
    for d in &mut docs {
        d["spec"]["template"]["spec"]["containers"][0]["env"] = serde_json::Value::Null;
    }
    assert_eq!(
        docs[0], docs[1],
        "the Deployments differ beyond their values"
    );
}

#[test]
fn templates_never_see_params() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("t.tera"), "level={{ params.LOG_LEVEL }}\n").unwrap();
    let recipe = write(
        &dir.path().join("recipe.yaml"),
        "name: t\nversion: '1'\nbase: scratch\nparams:\n  LOG_LEVEL: { default: info }\n\
         layers:\n  - name: a\n    steps:\n      - template: { src: t.tera, dest: /t }\n",
    );
    let output = common::try_build(&recipe, dir.path().join("o"));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("params"), "{}", stderr(&output));
    assert!(!dir.path().join("o").exists());
}

#[test]
fn every_problem_is_listed_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = hello(dir.path());
    let bad = write(
        &dir.path().join("bad.yaml"),
        "LOG_LEVEL: verbose\nREGION: eu\n",
    );
    let out = dir.path().join("out.env");
    let output = bind(&layout, &bad, "env", &out);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    let file = bad.display();
    for want in [
        "the values do not bind (3 problems)".to_string(),
        format!("{file}:1:1: LOG_LEVEL: \"verbose\" does not match the pattern"),
        format!("{file}:2:1: unknown param REGION; the image declares DATABASE_URL, LOG_LEVEL"),
        format!("{file}: DATABASE_URL is required (Where the app keeps its state) but not given"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(!out.exists());
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        2,
        "only img and bad.yaml"
    );
}

#[test]
fn a_literal_secret_is_refused_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = hello(dir.path());
    let values = write(
        &dir.path().join("v.yaml"),
        "DATABASE_URL: postgres://app:hunter2@db\n",
    );
    for format in ["env", "oci-bundle", "kubernetes"] {
        let out = dir.path().join(format!("out-{format}"));
        let output =
            run(bind_cmd(&layout, &values, format, &out)
                .args(["--repo", "registry.example.com/hello"]));
        assert_eq!(output.status.code(), Some(2), "{format}");
        let err = stderr(&output);
        assert!(
            err.contains("1:1: DATABASE_URL: is secret"),
            "{format}: {err}"
        );
        assert!(!err.contains("hunter2"), "the secret is echoed: {err}");
        assert!(!out.exists(), "{format} wrote {}", out.display());
    }
}

#[test]
fn references_must_suit_the_format_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = hello(dir.path());
    let secret_ref = write(
        &dir.path().join("k8s.yaml"),
        "DATABASE_URL: { secretRef: hello-db/url }\n",
    );
    let out = dir.path().join("x.env");
    let output = bind(&layout, &secret_ref, "env", &out);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("names a Kubernetes secret"),
        "{}",
        stderr(&output)
    );

    let env_ref = write(
        &dir.path().join("env.yaml"),
        "DATABASE_URL: { env: INGOT_TEST_UNSET_DB }\n",
    );
    let output = bind(&layout, &env_ref, "env", &out);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .contains("1:1: DATABASE_URL: environment variable INGOT_TEST_UNSET_DB is not set"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());
}

#[test]
fn an_image_with_nothing_to_run_makes_no_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = hello(dir.path());
    let values = write(&dir.path().join("v.yaml"), "DATABASE_URL: { env: DB }\n");
    let bundle = dir.path().join("bundle");
    let output = run(bind_cmd(&layout, &values, "oci-bundle", &bundle).env("DB", "x"));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no entrypoint or cmd"),
        "{}",
        stderr(&output)
    );
    assert!(!bundle.exists());
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".ingot-bundle"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn without_values_only_defaults_bind() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = hello(dir.path());
    let out = dir.path().join("x.env");
    let output = run(ingot()
        .arg("bind")
        .arg(format!("oci:{}", layout.display()))
        .args(["--format", "env", "-o"])
        .arg(&out));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("DATABASE_URL is required"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());
}

#[test]
fn a_malformed_values_file_names_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = hello(dir.path());
    for (text, want) in [
        (
            "LOG_LEVEL: [debug]\n",
            ":1:12: LOG_LEVEL: expected a string",
        ),
        (
            "LOG_LEVEL: debug\nLOG_LEVEL: info\n",
            ":2:1: LOG_LEVEL is given twice",
        ),
        (
            "DATABASE_URL: { secretRef: nokey }\n",
            ":1:28: DATABASE_URL: secretRef \"nokey\" must be NAME/KEY",
        ),
        (
            "LOG_LEVEL: 'open\n",
            ":1:12: while scanning a quoted scalar",
        ),
    ] {
        let values = write(&dir.path().join("v.yaml"), text);
        let out = dir.path().join("out.env");
        let output = bind(&layout, &values, "env", &out);
        assert_eq!(output.status.code(), Some(2), "{text:?}");
        let err = stderr(&output);
        assert!(
            err.contains(&format!("{}{want}", values.display())),
            "{text:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(!out.exists());
    }
    let output = bind(
        &layout,
        &dir.path().join("missing.yaml"),
        "env",
        &dir.path().join("o"),
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("missing.yaml"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn params_are_checked_when_the_recipe_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    for (params, want) in [
        (
            "A: { pattern: \"(\" }",
            "3:17: param A: pattern \"(\" is not a valid regex",
        ),
        (
            "A: { secret: true, default: x }",
            "3:31: param A is secret, so it cannot have a default",
        ),
        (
            "A: { default: x, pattern: \"[0-9]+\" }",
            "3:17: param A: default \"x\" does not match",
        ),
        (
            "A: { required: true, default: x }",
            "3:18: param A has a default",
        ),
        (
            "A-B: {}",
            "3:3: param name \"A-B\" must be a portable environment name",
        ),
    ] {
        let recipe = write(
            &dir.path().join("recipe.yaml"),
            &format!("name: p\nversion: '1'\nparams:\n  {params}\nbase: scratch\n"),
        );
        let output = common::try_build(&recipe, dir.path().join("o"));
        assert_eq!(output.status.code(), Some(2), "{params}");
        let err = stderr(&output);
        assert!(
            err.contains(&format!("recipe.yaml:{}", want.replacen("3:", "4:", 1))),
            "{params}: {err}"
        );
    }
}

#[test]
fn inspect_lists_the_params() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, _) = hello(dir.path());
    let output = run(ingot()
        .arg("inspect")
        .arg(format!("oci:{}", layout.display())));
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("params:"), "{text}");
    assert!(
        text.contains("DATABASE_URL  required, secret  Where the app keeps its state"),
        "{text}"
    );
    assert!(
        text.contains(
            "LOG_LEVEL     default \"info\", pattern \"^(debug|info|warn|error)$\"  Log verbosity"
        ),
        "{text}"
    );
    let output = run(ingot()
        .arg("inspect")
        .arg("--json")
        .arg(format!("oci:{}", layout.display())));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["params"]["DATABASE_URL"]["secret"], true);
    assert_eq!(json["params"]["LOG_LEVEL"]["default"], "info");
}

#[test]
fn a_multi_platform_layout_is_narrowed_to_the_platform() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, digest) = hello(dir.path());
    common::nest_in_index(&layout, "1.2.0");
    let image = format!("oci:{}:1.2.0", layout.display());
    let output = run(ingot().args(["inspect", "--json", &image]));
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["digest"], digest, "the amd64 image's manifest");
    assert_eq!(json["params"]["LOG_LEVEL"]["default"], "info");

    let values = write(&dir.path().join("v.yaml"), "DATABASE_URL: { env: DB }\n");
    let out = dir.path().join("x.env");
    let output = run(ingot()
        .args(["bind", &image, "--format", "env", "--values"])
        .arg(&values)
        .arg("-o")
        .arg(&out)
        .env("DB", "postgres://db"));
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        fs::read_to_string(&out)
            .unwrap()
            .contains(&format!("# digest: {digest}"))
    );

    // The arm64 entry names a manifest the layout does not have.
    let output = run(ingot().args(["inspect", &image, "--platform", "linux/arm64"]));
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let output = run(ingot().args(["inspect", &image, "--platform", "linux/s390x"]));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("linux/s390x"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn kubernetes_output_passes_kubernetes_validate() {
    require("kubernetes-validate");
    let dir = tempfile::tempdir().unwrap();
    let (layout, digest) = hello(dir.path());
    let values = write(
        &dir.path().join("prod.yaml"),
        "LOG_LEVEL: warn\nDATABASE_URL: { secretRef: hello-db/url }\n",
    );
    let out = dir.path().join("deploy.yaml");
    let output = run(bind_cmd(&layout, &values, "kubernetes", &out)
        .args(["--repo", "registry.example.com/team/hello"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let validate = |file: &Path| {
        run(Command::new("kubernetes-validate")
            .args(["--strict", "--kubernetes-version", "1.33.0"])
            .arg(file))
    };
    let checked = validate(&out);
    assert!(
        checked.status.success(),
        "kubernetes-validate: {}{}",
        stdout(&checked),
        stderr(&checked)
    );
    let doc: serde_json::Value = serde_yaml::from_str(&fs::read_to_string(&out).unwrap()).unwrap();
    let container = &doc["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        format!("registry.example.com/team/hello@{digest}")
    );
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["runAsUser"], 10001);
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(
        container["env"][0]["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "hello-db", "key": "url"})
    );
    assert_eq!(
        container["env"][1],
        serde_json::json!({"name": "LOG_LEVEL", "value": "warn"})
    );

    // The validator is live: a broken Deployment fails it.
    let broken = fs::read_to_string(&out)
        .unwrap()
        .replace("runAsUser: 10001", "runAsUser: ten");
    let checked = validate(&write(&dir.path().join("broken.yaml"), &broken));
    assert!(
        !checked.status.success(),
        "kubernetes-validate passed a broken Deployment"
    );

    // Without --repo there is no image reference to write.
    let output = bind(&layout, &values, "kubernetes", &dir.path().join("x.yaml"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("needs --repo"),
        "{}",
        stderr(&output)
    );
}

/// A static program that prints its ids and environment, then tries to
/// write to /etc and /tmp.
const PROBE_C: &str = r#"
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
extern char **environ;
static void try_write(const char *path) {
    FILE *f = fopen(path, "w");
    if (f) { fputs("x", f); fclose(f); printf("write %s: ok\n", path); }
    else printf("write %s: %s\n", path, strerror(errno));
}
int main(void) {
    printf("ids %u:%u\n", getuid(), getgid());
    for (char **e = environ; *e; e++) printf("env %s\n", *e);
    try_write("/etc/probe");
    try_write("/tmp/probe");
    return 0;
}
"#;

#[test]
fn an_oci_bundle_runs_under_runc() {
    require("runc");
    require("gcc");
    // runc needs root to create the container's namespaces and mounts.
    let uid = run(Command::new("id").arg("-u"));
    assert_eq!(
        stdout(&uid).trim(),
        "0",
        "runc tests run as root (as CI does)"
    );

    let dir = tempfile::tempdir().unwrap();
    let recipe_dir = dir.path().join("probe");
    fs::create_dir_all(recipe_dir.join("files")).unwrap();
    let source = write(&dir.path().join("probe.c"), PROBE_C);
    let cc = run(Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(recipe_dir.join("files/probe"))
        .arg(&source));
    assert!(cc.status.success(), "gcc -static: {}", stderr(&cc));
    let recipe = write(
        &recipe_dir.join("recipe.yaml"),
        "name: probe\nversion: '1'\nbase: stemcell:static\n\
         params:\n  GREETING: { required: true, pattern: '[a-z ]+' }\n  TOKEN: { required: true, secret: true }\n  LEVEL: { default: info }\n\
         layers:\n  - name: app\n    steps:\n\
         \x20     - user: { name: probe, uid: 10001, gid: 10002, home: /nonexistent }\n\
         \x20     - copy: { src: files/probe, dest: /usr/local/bin/probe, mode: '0755' }\n\
         config:\n  entrypoint: [/usr/local/bin/probe]\n  user: probe\n  env: { PATH: /usr/local/bin }\n",
    );
    let layout = dir.path().join("img");
    let digest = build(&recipe, &layout);
    let values = write(
        &dir.path().join("dev.yaml"),
        "GREETING: hello world\nTOKEN: { env: PROBE_TOKEN }\n",
    );
    let bundle = dir.path().join("bundle");
    let output = run(bind_cmd(&layout, &values, "oci-bundle", &bundle)
        .arg("--json")
        .env("PROBE_TOKEN", "s3cret value"));
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["rootfs"]["owners"], true, "{report}");
    assert!(report["rootfs"]["files"].as_u64().unwrap() > 1, "{report}");
    assert!(
        !report.to_string().contains("s3cret"),
        "the report names no value"
    );
    let mode = fs::metadata(bundle.join("config.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let config: serde_json::Value = common::read_json(&bundle.join("config.json"));
    assert_eq!(config["annotations"]["dev.ingot.image.digest"], digest);
    assert_eq!(config["root"]["readonly"], true);
    assert_eq!(config["process"]["noNewPrivileges"], true);
    assert_eq!(config["process"]["terminal"], false);
    let caps = &config["process"]["capabilities"];
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(
            caps[set],
            serde_json::json!(["CAP_NET_BIND_SERVICE"]),
            "{set}"
        );
    }
    let tmp = config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == "/tmp")
        .expect("a /tmp mount");
    assert_eq!(tmp["type"], "tmpfs");

    let id = format!("ingot-test-{}", std::process::id());
    let ran = run(Command::new("runc")
        .arg("--root")
        .arg(dir.path().join("runc-state"))
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id));
    let text = stdout(&ran);
    assert!(ran.status.success(), "runc run: {}{}", text, stderr(&ran));
    for want in [
        "ids 10001:10002",
        "env GREETING=hello world",
        "env TOKEN=s3cret value",
        "env LEVEL=info",
        "env PATH=/usr/local/bin",
        "write /etc/probe: Read-only file system",
        "write /tmp/probe: ok",
    ] {
        assert!(
            text.lines().any(|l| l == want),
            "missing {want:?} in:\n{text}"
        );
    }

    // A bundle is written once: binding onto it again is refused.
    let again = run(bind_cmd(&layout, &values, "oci-bundle", &bundle).env("PROBE_TOKEN", "x"));
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("exists"), "{}", stderr(&again));
}

/// A recipe on a `recipe:` base, declaring params of its own, as
/// `lower/recipe.yaml` and `upper/recipe.yaml` under `dir`; `upper` is the
/// upper recipe's text after its `base:` line.
fn derived(dir: &Path, upper: &str) -> PathBuf {
    fs::create_dir_all(dir.join("lower")).unwrap();
    fs::create_dir_all(dir.join("upper")).unwrap();
    write(
        &dir.join("lower/recipe.yaml"),
        "name: lower\nversion: '1'\nbase: stemcell:static\n\
         params:\n  TOKEN: { required: true, secret: true }\n  LEVEL: { default: info }\n",
    );
    write(
        &dir.join("upper/recipe.yaml"),
        &format!("name: upper\nversion: '2'\nbase: recipe:../lower/recipe.yaml\n{upper}"),
    )
}

/// Params merge across bases: a derived recipe declaring its own keeps
/// the base's, required secret included, in the label bind reads.
#[test]
fn a_derived_recipe_keeps_its_base_params() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = derived(
        dir.path(),
        "params:\n  REGION: { default: eu }\n  LEVEL: { default: info }\n",
    );
    let layout = dir.path().join("img");
    build(&recipe, &layout);
    let output = run(ingot()
        .args(["inspect", "--json"])
        .arg(format!("oci:{}", layout.display())));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let names: Vec<&String> = json["params"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["LEVEL", "REGION", "TOKEN"], "{json}");

    let out = dir.path().join("x.env");
    let empty = write(&dir.path().join("empty.yaml"), "REGION: us\n");
    let output = bind(&layout, &empty, "env", &out);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("TOKEN is required"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());

    let values = write(
        &dir.path().join("v.yaml"),
        "TOKEN: { env: T }\nREGION: us\n",
    );
    let output = run(bind_cmd(&layout, &values, "env", &out).env("T", "s3cret"));
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        source_in_sh(&out, &["LEVEL", "REGION", "TOKEN"]),
        ["info", "us", "s3cret"]
    );
}

/// A param the derived recipe redefines must be the base's exactly: the
/// error names the recipe's line and the base.
#[test]
fn a_param_redefined_differently_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = derived(dir.path(), "params:\n  TOKEN: { required: true }\n");
    let output = common::try_build(&recipe, dir.path().join("img"));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("upper/recipe.yaml:5:3: param TOKEN redefines base lower:1's param TOKEN")
            && err.contains("identical"),
        "{err}"
    );
    assert!(!dir.path().join("img").exists());
}

/// A recipe's config.env may not set a name its base binds as a param.
#[test]
fn env_colliding_with_a_base_param_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = derived(dir.path(), "config:\n  env: { LEVEL: debug }\n");
    let output = common::try_build(&recipe, dir.path().join("img"));
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("upper/recipe.yaml:5:10: config.env \"LEVEL\" collides with param \"LEVEL\" of base lower:1"),
        "{err}"
    );
    assert!(!dir.path().join("img").exists());
}
