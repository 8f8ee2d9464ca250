//! `ingot validate` checks recipes and their locks offline, each problem at
//! a file, line and column; `build` and `lock` take a recipe's directory.

mod common;

use std::path::{Path, PathBuf};

use common::{ingot, repo, run, stderr, stdout};

/// `recipe.yaml` with `text` in a new directory `name` under `dir`.
fn recipe(dir: &Path, name: &str, text: &str) -> PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("recipe.yaml"), text).unwrap();
    d
}

const TINY: &str = "name: tiny\nversion: '1'\nbase: stemcell:static\nlayers:\n  - name: l\n    steps:\n      - file: { dest: /v, content: '1' }\n";

/// The JSON objects `validate --json` printed, one per line.
fn objects(out: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn build_and_lock_take_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let r = recipe(dir.path(), "r", TINY);
    let by_dir = run(ingot()
        .arg("build")
        .arg(&r)
        .arg("-o")
        .arg(dir.path().join("a")));
    assert!(by_dir.status.success(), "{}", stderr(&by_dir));
    let by_file = common::build(&r.join("recipe.yaml"), &dir.path().join("b"));
    assert_eq!(stdout(&by_dir).trim(), by_file);

    let lock = run(ingot().arg("lock").arg(&r));
    assert!(lock.status.success(), "{}", stderr(&lock));
    assert!(r.join("ingot.lock").is_file());
    // The lock it wrote agrees with the recipe.
    let out = run(ingot().args(["validate", "--locked"]).arg(&r));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(
        stdout(&out),
        format!("{}: ok\n", r.join("recipe.yaml").display())
    );
}

#[test]
fn valid_recipes_pass_and_each_problem_is_at_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let good = recipe(dir.path(), "good", TINY);
    let bad = recipe(
        dir.path(),
        "bad",
        "name: bad\nversion: '1'\nbase: scratch\nbogus: 1\n",
    );
    let out = run(ingot()
        .arg("validate")
        .arg(&good)
        .arg(repo().join("recipes/hello"))
        .arg(&bad));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("good/recipe.yaml: ok"), "{text}");
    assert!(text.contains("hello/recipe.yaml: ok"), "{text}");
    let line = format!("{}:4:1: ", bad.join("recipe.yaml").display());
    assert!(text.contains(&line) && text.contains("bogus"), "{text}");
    assert!(
        stderr(&out).contains("1 of 3 recipes are invalid"),
        "{}",
        stderr(&out)
    );

    let out = run(ingot().args(["validate", "--json"]).arg(&good).arg(&bad));
    assert_eq!(out.status.code(), Some(2));
    let objects = objects(&out);
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[0]["ok"], true);
    assert_eq!(objects[0]["errors"], serde_json::json!([]));
    assert_eq!(objects[1]["ok"], false);
    assert_eq!(
        objects[1]["path"].as_str().unwrap(),
        bad.join("recipe.yaml").to_str().unwrap()
    );
    let error = &objects[1]["errors"][0];
    assert_eq!(
        (error["line"].as_u64(), error["column"].as_u64()),
        (Some(4), Some(1))
    );
    assert!(
        error["message"].as_str().unwrap().contains("bogus"),
        "{error}"
    );
}

#[test]
fn templates_are_rendered_with_the_recipes_vars() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: t\nversion: '1'\nbase: scratch\nvars: { who: world }\nlayers:\n  - name: l\n    steps:\n      - template: { src: ok.tera, dest: /ok }\n      - template: { src: syntax.tera, dest: /syntax }\n      - template: { src: missing.tera, dest: /missing }\n";
    let r = recipe(dir.path(), "t", text);
    std::fs::write(
        r.join("ok.tera"),
        "hello {{ vars.who }} on {{ base.name }}\n",
    )
    .unwrap();
    std::fs::write(r.join("syntax.tera"), "fine\nfine\n  {{ oops( }}\n").unwrap();
    std::fs::write(r.join("missing.tera"), "{{ vars.nobody }}\n").unwrap();
    let out = run(ingot().args(["validate", "--json"]).arg(&r));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let objects = objects(&out);
    let errors = objects[0]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    // A syntax error is placed in the template…
    assert!(
        errors[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("t/syntax.tera"),
        "{errors:#?}"
    );
    assert_eq!(errors[0]["line"], 3, "{errors:#?}");
    // …a missing var at the step that renders it.
    assert!(
        errors[1]["file"]
            .as_str()
            .unwrap()
            .ends_with("t/recipe.yaml"),
        "{errors:#?}"
    );
    assert_eq!(errors[1]["line"], 10, "{errors:#?}");
    assert!(
        errors[1]["message"].as_str().unwrap().contains("nobody"),
        "{errors:#?}"
    );
}

#[test]
fn the_lock_must_parse_and_agree_with_the_recipe() {
    let dir = tempfile::tempdir().unwrap();
    let r = recipe(dir.path(), "r", TINY);
    let lock = r.join("ingot.lock");
    let pin = |reference: &str, resolved: &str| {
        serde_json::json!({
            "from": "recipe.yaml",
            "reference": reference,
            "resolved": resolved,
            "config": format!("sha256:{}", "1".repeat(64)),
        })
    };
    let write = |pins: Vec<serde_json::Value>| {
        let text = serde_json::to_string_pretty(&serde_json::json!({"version": 1, "pins": pins}));
        std::fs::write(&lock, text.unwrap()).unwrap();
    };
    let errors = |r: &Path| {
        let out = run(ingot().args(["validate", "--json"]).arg(r));
        let objects = objects(&out);
        assert_eq!(
            out.status.code(),
            Some(if objects[0]["ok"] == true { 0 } else { 2 })
        );
        objects[0]["errors"].as_array().unwrap().clone()
    };

    write(vec![pin("stemcell:static", "stemcell:static@1.0.0")]);
    assert_eq!(errors(&r), Vec::<serde_json::Value>::new());

    // An older version this ingot embeds is outdated, not wrong (`ingot
    // outdated` says so); one it does not embed is wrong. Then a pin the
    // recipe no longer uses.
    write(vec![pin("stemcell:static", "stemcell:static@1.1.0")]);
    assert_eq!(errors(&r), Vec::<serde_json::Value>::new());
    write(vec![pin("stemcell:static", "stemcell:static@0.9.0")]);
    let found = errors(&r);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["line"], 3, "at the recipe's base: {found:#?}");
    assert!(
        found[0]["message"].as_str().unwrap().contains(
            "pins stemcell:static@0.9.0 for stemcell:static, a version this ingot does not embed"
        ),
        "{found:#?}"
    );

    write(vec![
        pin("stemcell:static", "stemcell:static@1.0.0"),
        pin("oci:gone", "oci:gone"),
    ]);
    let found = errors(&r);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["file"].as_str().unwrap(), lock.to_str().unwrap());
    assert_eq!(
        (found[0]["line"].as_u64(), found[0]["column"].as_u64()),
        (Some(12), Some(7))
    );
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .contains("no longer names it")
    );

    // A base the lock does not pin.
    write(vec![]);
    let found = errors(&r);
    assert!(
        found[0]["message"]
            .as_str()
            .unwrap()
            .contains("pins no base stemcell:static"),
        "{found:#?}"
    );

    // A lock that does not parse, at its position.
    std::fs::write(&lock, "{\n  \"version\": 1,\n  \"pins\": [ ! ]\n}\n").unwrap();
    let found = errors(&r);
    assert_eq!(found[0]["file"].as_str().unwrap(), lock.to_str().unwrap());
    assert_eq!(
        (found[0]["line"].as_u64(), found[0]["column"].as_u64()),
        (Some(3), Some(13))
    );
    assert!(
        !found[0]["message"].as_str().unwrap().contains(" at line "),
        "{found:#?}"
    );
}

#[test]
fn packages_steps_need_their_closure_in_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: p\nversion: '1'\nbase: stemcell:debian12\nlayers:\n  - name: tools\n    steps:\n      - packages: { install: [busybox-static] }\n";
    let r = recipe(dir.path(), "p", text);
    std::fs::write(
        r.join("ingot.lock"),
        serde_json::to_string(&serde_json::json!({"version": 1, "pins": [{
            "from": "recipe.yaml",
            "reference": "stemcell:debian12",
            "resolved": "stemcell:debian12@1.0.0",
            "config": format!("sha256:{}", "1".repeat(64)),
        }]}))
        .unwrap(),
    )
    .unwrap();
    let out = run(ingot().arg("validate").arg(&r));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("recipe.yaml:7:19: layer \"tools\", step 1 (packages): ")
            && text.contains("pins no closure for this step"),
        "{text}"
    );
}

#[test]
fn validate_never_touches_the_network_nor_builds() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard): nothing answers, and nothing must be asked.
    let r = recipe(
        dir.path(),
        "n",
        "name: n\nversion: '1'\nbase: docker://127.0.0.1:9/x:1\n",
    );
    let out = run(ingot().arg("validate").arg(&r).args(["--timeout", "1"]));
    // validate takes no network flags at all.
    assert_eq!(out.status.code(), Some(2));
    let started = std::time::Instant::now();
    let out = run(ingot().arg("validate").arg(&r));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(started.elapsed().as_secs() < 5);
    assert!(!dir.path().join("out").exists());
}

#[test]
fn recipe_bases_are_checked_too_and_cycles_found() {
    let dir = tempfile::tempdir().unwrap();
    recipe(
        dir.path(),
        "lower",
        "name: lower\nversion: '1'\nbase: recipe:../upper/recipe.yaml\n",
    );
    let upper = recipe(
        dir.path(),
        "upper",
        "name: upper\nversion: '1'\nbase: recipe:../lower/recipe.yaml\n",
    );
    let out = run(ingot().arg("validate").arg(&upper));
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("recipe cycle"), "{}", stdout(&out));

    recipe(
        dir.path(),
        "lower",
        "name: lower\nversion: '1'\nbase: scratch\nlayers: [ { name: x, steps: [ { nope: 1 } ] } ]\n",
    );
    let out = run(ingot().arg("validate").arg(&upper));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stdout(&out).contains("lower/recipe.yaml:4:"),
        "{}",
        stdout(&out)
    );
}
