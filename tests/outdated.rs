//! `ingot outdated` and `ingot lock --update` against moved inputs: a
//! package the archive (real, signed, served on 127.0.0.1) publishes at a
//! newer version, and a registry tag (the test registry) pushed again.
//! `outdated` names exactly what would move and exits 1; `lock --update`
//! moves it and says so; then `outdated` is clean and `build --locked`
//! builds what the lock now pins.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

use common::archive::{Archive, ArchiveOptions};
use common::registry::Registry;
use common::{ingot, run, stderr, stdout};

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", stderr(out));
    stdout(out)
}

fn ingot_in(cache: &Path, args: &[&str], paths: &[&Path]) -> Output {
    run(ingot().args(args).args(paths).arg("--cache").arg(cache))
}

/// `ingot outdated PATHS --json`: its exit code and report.
fn outdated(cache: &Path, paths: &[&Path]) -> (Option<i32>, Value) {
    let out = ingot_in(cache, &["outdated", "--json", "-q"], paths);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    (out.status.code(), report)
}

/// Each recipe of an `outdated` report with its lock's state.
fn states(report: &Value) -> Vec<(&str, &str)> {
    report
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["lock"].as_str().unwrap()))
        .collect()
}

fn write_recipe(dir: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("recipe.yaml"), text).unwrap();
    dir.to_path_buf()
}

#[test]
fn a_package_published_anew_is_outdated_until_the_lock_moves() {
    let debs = common::debian::debs(&["zlib1g", "libc6", "libgcc-s1", "gcc-12-base"]);
    let mut archive = Archive::new(&debs, ArchiveOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("z");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(archive.keyring(), dir.join("archive.gpg")).unwrap();
    let recipe = write_recipe(
        &dir,
        &format!(
            "name: z\nversion: 1.0.0\nbase: scratch\n{}\
             \x20 - name: runtime\n    steps:\n      - packages: {{ install: [zlib1g] }}\n",
            common::archive::archive_and_merged_usr(&archive.url())
        ),
    );
    let cache = tmp.path().join("cache");
    ok(&ingot_in(&cache, &["lock", "-q"], &[&recipe]), "lock");
    let (code, report) = outdated(&cache, &[&recipe]);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report[0]["lock"], "current");

    let old = ok(
        &run(std::process::Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&debs[0])
            .arg("Version")),
        "dpkg-deb",
    );
    let (next, new) = common::debian::next_version(&debs[0], "point1", tmp.path());
    let mut published = vec![next];
    published.extend_from_slice(&debs[1..]);
    archive.publish(&published);

    let moved = json!([{
        "kind": "package",
        "from": "recipe.yaml",
        "name": "zlib1g:amd64 in layer runtime",
        "old": old.trim(),
        "new": new,
    }]);
    let (code, report) = outdated(&cache, &[&recipe]);
    assert_eq!(code, Some(1), "{report}");
    assert_eq!(report[0]["lock"], "outdated");
    assert_eq!(report[0]["changes"], moved);
    assert_eq!(report[0]["written"], false);

    let update = ingot_in(&cache, &["lock", "--update", "--json", "-q"], &[&recipe]);
    let report: Value = serde_json::from_str(&ok(&update, "lock --update")).unwrap();
    assert_eq!(report[0]["changes"], moved);
    assert_eq!(report[0]["written"], true);
    let (code, report) = outdated(&cache, &[&recipe]);
    assert_eq!((code, &report[0]["lock"]), (Some(0), &json!("current")));
    let out = tmp.path().join("out");
    ok(
        &run(ingot()
            .args(["build", "-q", "--locked"])
            .arg(&recipe)
            .arg("-o")
            .arg(&out)
            .arg("--cache")
            .arg(&cache)),
        "build --locked after the update",
    );
}

#[test]
fn a_registry_tag_pushed_again_is_outdated_until_the_lock_moves() {
    let registry = Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    // Two images pushed to one tag, one after the other.
    let base = |content: &str| {
        let dir = write_recipe(
            &tmp.path().join(format!("base-{content}")),
            &format!(
                "name: base\nversion: '1'\nbase: scratch\nlayers:\n  - name: f\n    steps:\n      \
                 - file: {{ dest: /etc/base, content: {content} }}\n"
            ),
        );
        let out = tmp.path().join(format!("base-{content}.out"));
        common::build_bare(&dir.join("recipe.yaml"), &out);
        ok(
            &run(ingot()
                .args(["push", "-q"])
                .arg(format!("oci:{}:1", out.display()))
                .arg(registry.reference("team/base:1"))),
            "push base",
        );
    };
    base("one");
    let tree = tmp.path().join("tree");
    let app = write_recipe(
        &tree.join("app"),
        &format!(
            "name: app\nversion: '1'\nbase: {}\nlayers:\n  - name: f\n    steps:\n      \
             - file: {{ dest: /etc/app, content: app }}\n",
            registry.reference("team/base:1")
        ),
    );
    let solo = write_recipe(
        &tree.join("solo"),
        "name: solo\nversion: '1'\nbase: scratch\nlayers:\n  - name: f\n    steps:\n      \
         - file: { dest: /x, content: x }\n",
    );
    ok(&ingot_in(&cache, &["lock", "-q"], &[&app]), "lock app");
    ok(&ingot_in(&cache, &["lock", "-q"], &[&solo]), "lock solo");
    // A recipe on app, outside the tree: its lock pins app's base too.
    let top = write_recipe(
        &tmp.path().join("nested/top"),
        "name: top\nversion: '1'\nbase: recipe:../../tree/app/recipe.yaml\nlayers:\n  - name: f\n    steps:\n      \
         - file: { dest: /etc/top, content: top }\n",
    );
    ok(&ingot_in(&cache, &["lock", "-q"], &[&top]), "lock top");
    let build_top = |what: &str, args: &[&str]| {
        let out = tmp.path().join(what);
        let built = run(ingot()
            .args(["build", "-q", "--no-attest"])
            .args(args)
            .arg(&top)
            .arg("-o")
            .arg(&out)
            .arg("--cache")
            .arg(&cache));
        ok(&built, what).trim().to_string()
    };
    let top_before = build_top("top-before", &["--locked"]);
    base("two");
    // The base's base stays pinned by top's lock, the tag moved or not.
    assert_eq!(build_top("top-locked", &["--locked"]), top_before);
    assert_eq!(build_top("top-unlocked", &[]), top_before);

    // The directory: only app is outdated, by its base.
    let (code, report) = outdated(&cache, &[&tree]);
    assert_eq!(code, Some(1), "{report}");
    let states = states(&report);
    assert_eq!(states, [("app", "outdated"), ("solo", "current")]);
    let change = &report[0]["changes"][0];
    assert_eq!(change["kind"], "base");
    assert_eq!(change["name"], registry.reference("team/base:1"));
    assert_ne!(change["old"], change["new"]);
    assert_eq!(report[0]["changes"].as_array().unwrap().len(), 1);

    // A locked build honours the pin: the base it was locked to, by
    // digest, whatever the tag names now (`outdated` is the gate that
    // says the tag moved).
    let locked = |what: &str| {
        let out = tmp.path().join(what);
        ok(
            &run(ingot()
                .args(["build", "-q", "--locked"])
                .arg(&app)
                .arg("-o")
                .arg(&out)
                .arg("--cache")
                .arg(&cache)),
            "build --locked",
        );
        let index = common::read_json(&out.join("index.json"));
        let manifest = common::read_json(&common::blob_path(
            &out,
            index["manifests"][0]["digest"].as_str().unwrap(),
        ));
        manifest["annotations"]["org.opencontainers.image.base.digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let pinned = locked("before");
    assert!(
        change["old"].as_str().unwrap().ends_with(&pinned),
        "{change}"
    );

    let text = ok(
        &ingot_in(&cache, &["lock", "--update", "-q"], &[&tree]),
        "lock --update",
    );
    assert!(
        text.contains("outdated ") && text.contains(", ingot.lock written\n  base "),
        "{text}"
    );
    assert!(text.contains("current  "), "solo is left as it was: {text}");
    let moved = locked("after");
    assert!(
        change["new"].as_str().unwrap().ends_with(&moved),
        "{change}"
    );
    let (code, _) = outdated(&cache, &[&tree]);
    assert_eq!(code, Some(0));
}

/// The stemcell rollout on the shipped recipes: `recipes/hello` and
/// `recipes/everything` pin `stemcell:static@1.0.0`, and this ingot
/// embeds 1.1.0 too (a new CA bundle). Until their locks move, builds stay
/// on 1.0.0, to the golden digest; `outdated` names exactly that move;
/// after `lock --update` builds follow the new version, and `--locked`
/// passes. An unversioned stemcell a lock does not pin is the newest.
#[test]
fn a_new_stemcell_version_is_outdated_until_the_locks_move() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let tree = tmp.path().join("recipes");
    for name in ["hello", "everything"] {
        common::copy_tree(&common::repo().join("recipes").join(name), &tree.join(name));
    }
    let unpinned = write_recipe(
        &tree.join("new"),
        "name: new\nversion: '1'\nbase: stemcell:static\nlayers:\n  - name: f\n    steps:\n      \
         - file: { dest: /etc/new, content: new }\n",
    );
    let base_of = |out: &Path| -> (String, String) {
        let index = common::read_json(&out.join("index.json"));
        let digest = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let manifest = common::read_json(&common::blob_path(out, &digest));
        let name = manifest["annotations"]["org.opencontainers.image.base.name"].clone();
        (digest, name.as_str().unwrap().to_string())
    };
    let build = |what: &str, recipe: &Path, locked: bool| -> (String, String) {
        let out = tmp.path().join(what);
        let mut cmd = ingot();
        cmd.args(["build", "-q", "--no-attest"]).arg(recipe);
        if locked {
            cmd.arg("--locked");
        }
        ok(
            &run(cmd.arg("-o").arg(&out).arg("--cache").arg(&cache)),
            what,
        );
        base_of(&out)
    };
    let golden = std::fs::read_to_string(common::repo().join("tests/golden/hello.digest")).unwrap();
    let (digest, base) = build("before", &tree.join("hello"), true);
    assert_eq!(
        (digest.as_str(), base.as_str()),
        (golden.trim(), "stemcell:static@1.0.0")
    );
    assert_eq!(build("fresh", &unpinned, false).1, "stemcell:static@1.1.0");

    let (code, report) = outdated(&cache, &[&tree]);
    assert_eq!(code, Some(1), "{report}");
    let states = states(&report);
    assert_eq!(
        states,
        [
            ("everything", "outdated"),
            ("hello", "outdated"),
            ("new", "missing")
        ]
    );
    let changes = &report[1]["changes"];
    assert_eq!(changes.as_array().unwrap().len(), 1, "{changes}");
    assert_eq!(changes[0]["kind"], "base");
    assert_eq!(changes[0]["name"], "stemcell:static");
    assert!(
        changes[0]["old"]
            .as_str()
            .unwrap()
            .starts_with("stemcell:static@1.0.0 ")
            && changes[0]["new"]
                .as_str()
                .unwrap()
                .starts_with("stemcell:static@1.1.0 "),
        "{changes}"
    );

    ok(
        &ingot_in(&cache, &["lock", "--update", "-q"], &[&tree]),
        "lock --update",
    );
    let (code, report) = outdated(&cache, &[&tree]);
    assert_eq!(code, Some(0), "{report}");
    let (digest, base) = build("after", &tree.join("hello"), true);
    assert_eq!(base, "stemcell:static@1.1.0");
    assert_ne!(digest, golden.trim());
    // The new version is what a recipe naming it builds on, to the digest.
    let text = std::fs::read_to_string(tree.join("hello/recipe.yaml")).unwrap();
    std::fs::write(
        tree.join("hello/recipe.yaml"),
        text.replace("base: stemcell:static\n", "base: stemcell:static@1.1.0\n"),
    )
    .unwrap();
    std::fs::remove_file(tree.join("hello/ingot.lock")).unwrap();
    assert_eq!(build("named", &tree.join("hello"), false).0, digest);
}
