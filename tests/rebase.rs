//! `ingot rebase IMAGE --onto NEWBASE [--recipe DIR]` against the real
//! binary (issue 18): rebasing gives the digest a build on the new base
//! gives; a layer that reads the base is refused, naming what it took,
//! and rebuilt alone with --recipe; a new base on which a layer would be
//! planned differently is refused naming the path; a new base the seal
//! rejects fails the seal; a base that moved since is refused with both
//! digests. Nothing is written when a rebase fails.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use common::{build_bare, ingot, require, run, stderr, stdout};

/// A base recipe on scratch: accounts (so /etc/passwd exists), /srv,
/// `/etc/ca.crt` holding `ca`, a label, and `extra` steps.
fn base_recipe(dir: &Path, ca: &str, extra: &str, seal: &str) -> PathBuf {
    fs::create_dir_all(dir.join("files")).unwrap();
    fs::write(dir.join("files/ca.crt"), ca).unwrap();
    fs::write(
        dir.join("recipe.yaml"),
        format!(
            "name: base\nversion: 1.0.0\nbase: scratch\nlayers:\n  - name: system\n    steps:\n      \
             - user: {{ name: svc, uid: 1000, gid: 1000, home: /home/svc }}\n      \
             - copy: {{ src: files/ca.crt, dest: /etc/ca.crt }}\n{extra}\
             config:\n  labels: {{ org.example.base: {ca} }}\n{seal}"
        ),
    )
    .unwrap();
    dir.to_path_buf()
}

const SRV_DIR: &str = "      - mkdir: { path: /srv }\n";

/// Builds the base at `dir` into `dir/out`.
fn built_base(dir: &Path, ca: &str, extra: &str, seal: &str) {
    build_bare(&base_recipe(dir, ca, extra, seal), &dir.join("out"));
}

/// An app recipe at `dir` on `base`, with `layers` (YAML list items).
fn app_recipe(dir: &Path, base: &str, layers: &str) -> PathBuf {
    fs::create_dir_all(dir.join("files")).unwrap();
    fs::write(dir.join("files/index.html"), "hello\n").unwrap();
    fs::write(
        dir.join("recipe.yaml"),
        format!(
            "name: app\nversion: 2.0.0\nbase: {base}\nlayers:\n{layers}config:\n  env: {{ APP_MODE: prod }}\n  labels: {{ org.example.app: \"yes\" }}\n"
        ),
    )
    .unwrap();
    dir.to_path_buf()
}

/// Layers that only add files under new directories.
const PLAIN: &str = "  - name: site\n    steps:\n      \
    - copy: { src: files/index.html, dest: /srv/app/index.html }\n  \
    - name: conf\n    steps:\n      \
    - file: { dest: /opt/app/app.conf, content: \"port = 8080\\n\" }\n";

/// PLAIN with a `user` step between: that layer reads /etc/passwd.
const WITH_USER: &str = "  - name: site\n    steps:\n      \
    - copy: { src: files/index.html, dest: /srv/app/index.html }\n  \
    - name: account\n    steps:\n      \
    - user: { name: app, uid: 10001, gid: 10001, home: /var/lib/app }\n  \
    - name: conf\n    steps:\n      \
    - file: { dest: /opt/app/app.conf, content: \"port = 8080\\n\" }\n";

/// A temp dir with base-v1 and base-v2 (another /etc/ca.crt and label)
/// built, and the app `layers` on base-v1 built into app/out.
fn fixture(layers: &str) -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    built_base(&root.join("base-v1"), "v1", SRV_DIR, "");
    built_base(&root.join("base-v2"), "v2", SRV_DIR, "");
    let app = app_recipe(&root.join("app"), "oci:../base-v1/out:1.0.0", layers);
    let digest = build_bare(&app, &app.join("out"));
    (tmp, digest)
}

/// The same app recipe on `base`, built elsewhere: the rebuild to match.
fn rebuilt_on(root: &Path, name: &str, base: &str, layers: &str) -> String {
    let app = app_recipe(&root.join(name), base, layers);
    build_bare(&app, &app.join("out"))
}

/// `ingot rebase oci:out --onto ONTO -o ../rebased ARGS` run in app/.
fn rebase(root: &Path, onto: &str, args: &[&str]) -> Output {
    run(ingot()
        .current_dir(root.join("app"))
        .args(["rebase", "oci:out", "--onto", onto, "-o", "../rebased"])
        .args(args))
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "rebase failed: {}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap()
}

fn names(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect()
}

#[test]
fn rebase_equals_rebuild_for_layers_that_do_not_read_the_base() {
    let (tmp, old) = fixture(PLAIN);
    let root = tmp.path();
    let out = rebase(root, "oci:../base-v2/out:1.0.0", &["--json"]);
    let report = json(&out);
    let rebuilt = rebuilt_on(root, "app-v2", "oci:../base-v2/out:1.0.0", PLAIN);
    assert_eq!(report["new_digest"], rebuilt.as_str());
    assert_eq!(report["old_digest"], old.as_str());
    assert_ne!(rebuilt, old);
    assert_eq!(names(&report["reused"]), ["site", "conf"]);
    assert!(names(&report["rebuilt"]).is_empty());
    assert_eq!(report["old_base"], "oci:../base-v1/out:1.0.0");
    assert_eq!(report["new_base"], "oci:../base-v2/out:1.0.0");

    // A third-party reader finds the new base's file under the same app.
    require("umoci");
    let bundle = root.join("bundle");
    let unpacked = run(std::process::Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:2.0.0", root.join("rebased").display()))
        .arg(&bundle));
    assert!(unpacked.status.success(), "umoci: {}", stderr(&unpacked));
    let rootfs = bundle.join("rootfs");
    assert_eq!(fs::read_to_string(rootfs.join("etc/ca.crt")).unwrap(), "v2");
    assert_eq!(
        fs::read_to_string(rootfs.join("srv/app/index.html")).unwrap(),
        "hello\n"
    );
}

#[test]
fn a_layer_that_reads_the_base_is_refused_then_rebuilt_alone_with_the_recipe() {
    let (tmp, _) = fixture(WITH_USER);
    let root = tmp.path();
    let onto = "oci:../base-v2/out:1.0.0";
    let refused = rebase(root, onto, &[]);
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(
        err.contains("layer account: base-dependent") && err.contains("/etc/passwd"),
        "{err}"
    );
    assert!(err.contains("--recipe"), "{err}");
    assert!(
        !err.contains("layer site") && !err.contains("layer conf:"),
        "{err}"
    );
    assert!(!root.join("rebased").exists());

    let out = rebase(root, onto, &["--recipe", ".", "--no-attest", "--json"]);
    let report = json(&out);
    assert_eq!(names(&report["rebuilt"]), ["account"]);
    assert_eq!(names(&report["reused"]), ["site", "conf"]);
    let err = stderr(&out);
    assert!(
        err.contains("layer account: rebuilt: base-dependent"),
        "{err}"
    );
    assert!(err.contains("layer site: reused"), "{err}");
    let rebuilt = rebuilt_on(root, "app-v2", onto, WITH_USER);
    assert_eq!(report["new_digest"], rebuilt.as_str());
}

#[test]
fn a_directory_the_layer_writes_into_that_is_a_symlink_on_the_new_base_is_refused() {
    let (tmp, _) = fixture(PLAIN);
    let root = tmp.path();
    let link = "      - mkdir: { path: /data }\n      - symlink: { path: /srv, target: /data }\n";
    built_base(&root.join("base-link"), "v2", link, "");
    let out = rebase(root, "oci:../base-link/out:1.0.0", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("layer site: would be planned differently")
            && err.contains("/srv: a directory in the old base, a symlink to /data in the new"),
        "{err}"
    );
    assert!(!err.contains("layer conf"), "{err}");
    assert!(!root.join("rebased").exists());

    // A file where a directory was is refused the same way.
    built_base(
        &root.join("base-file"),
        "v2",
        "      - file: { dest: /opt, content: \"x\" }\n      - mkdir: { path: /srv }\n",
        "",
    );
    let err = stderr(&rebase(root, "oci:../base-file/out:1.0.0", &[]));
    assert!(
        err.contains("layer conf:")
            && err.contains("/opt: absent in the old base, a file in the new"),
        "{err}"
    );
}

#[test]
fn a_new_base_holding_sshd_fails_the_seal_as_a_build_on_it_does() {
    let (tmp, _) = fixture(PLAIN);
    let root = tmp.path();
    let sshd = format!(
        "{SRV_DIR}      - file: {{ dest: /usr/sbin/sshd, content: \"x\", mode: \"0755\" }}\n"
    );
    let allow = "seal:\n  allow:\n    - { rule: no-remote-login, path: /usr/sbin/sshd, reason: a bad base for tests }\n";
    built_base(&root.join("base-sshd"), "v2", &sshd, allow);
    let onto = "oci:../base-sshd/out:1.0.0";
    let out = rebase(root, onto, &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("no-remote-login") && err.contains("/usr/sbin/sshd"),
        "{err}"
    );
    assert!(!root.join("rebased").exists());

    let app = app_recipe(&root.join("app-sshd"), onto, PLAIN);
    let built = common::try_build(&app, app.join("out"));
    assert!(!built.status.success());
    assert!(stderr(&built).contains("no-remote-login"));
}

#[test]
fn a_base_that_resolves_to_another_digest_than_recorded_is_refused_naming_both() {
    let (tmp, _) = fixture(PLAIN);
    let root = tmp.path();
    let recorded = {
        let layout = common::read_json(&root.join("base-v1/out/index.json"));
        layout["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // base-v1's tag moves to another image under the app.
    let dir = root.join("base-v1");
    fs::write(dir.join("files/ca.crt"), "v1, reissued").unwrap();
    let moved = common::build_with(
        &dir.join("recipe.yaml"),
        &dir.join("out"),
        &["--no-attest", "--replace"],
    );
    let out = rebase(root, "oci:../base-v2/out:1.0.0", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(&recorded) && err.contains(&moved), "{err}");
    assert!(!root.join("rebased").exists());
}

#[test]
fn rebasing_from_one_static_stemcell_version_to_the_next_equals_a_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let app = app_recipe(&root.join("app"), "stemcell:static@1.0.0", PLAIN);
    build_bare(&app, &app.join("out"));
    let report = json(&rebase(root, "stemcell:static@1.1.0", &["--json"]));
    assert_eq!(report["old_base"], "stemcell:static@1.0.0");
    assert_eq!(report["new_base"], "stemcell:static@1.1.0");
    assert_eq!(names(&report["reused"]), ["site", "conf"]);
    let rebuilt = rebuilt_on(root, "app-next", "stemcell:static@1.1.0", PLAIN);
    assert_eq!(report["new_digest"], rebuilt.as_str());
}

/// The app `layers` built on base-v1 (which has /srv), and base-bare
/// (which has not) built beside it: its reference, and the app's digest.
fn on_a_base_with_srv(root: &Path, layers: &str) -> (&'static str, String) {
    built_base(&root.join("base-v1"), "v1", SRV_DIR, "");
    built_base(&root.join("base-bare"), "v2", "", "");
    let app = app_recipe(&root.join("app"), "oci:../base-v1/out:1.0.0", layers);
    (
        "oci:../base-bare/out:1.0.0",
        build_bare(&app, &app.join("out")),
    )
}

/// Rebasing onto `onto` is refused with `refusal` (and nothing written);
/// with the recipe, `spool` is rebuilt to the rebuild's digest. The
/// report and the rebuild's digest.
fn refused_then_rebuilt(root: &Path, onto: &str, layers: &str, refusal: &str) -> (Value, String) {
    let refused = rebase(root, onto, &[]);
    assert!(!refused.status.success());
    let err = stderr(&refused);
    assert!(err.contains(refusal), "{err}");
    assert!(!root.join("rebased").exists());
    let report = json(&rebase(
        root,
        onto,
        &["--recipe", ".", "--no-attest", "--json"],
    ));
    assert_eq!(names(&report["rebuilt"]), ["spool"]);
    let rebuilt = rebuilt_on(root, "app-bare", onto, layers);
    assert_eq!(report["new_digest"], rebuilt.as_str());
    (report, rebuilt)
}

/// A `mkdir` of a directory the old base has writes nothing, so the layer
/// holds no trace of it: on a base without it, a rebuild writes the
/// directory. The layer is base-dependent for that, refused, and rebuilt
/// with the recipe to the rebuild's digest. (The layer writes a file too:
/// a layer that changes nothing is not emitted at all.)
#[test]
fn a_mkdir_of_a_directory_the_old_base_has_is_not_kept_on_a_base_without_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let layers = "  - name: spool\n    steps:\n      - mkdir: { path: /srv }\n      \
                  - file: { dest: /etc/spool.conf, content: spool }\n";
    let (onto, _) = on_a_base_with_srv(root, layers);
    refused_then_rebuilt(root, onto, layers, "layer spool: base-dependent");
}

/// A layer that changes nothing on the old base is not in the image; the
/// manifest names it (`dev.ingot.layers.empty`), so a rebase without the
/// recipe refuses rather than drop what a build on the new base writes.
#[test]
fn a_layer_that_changed_nothing_on_the_old_base_is_not_dropped_by_a_rebase() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let layers = "  - name: spool\n    steps:\n      - mkdir: { path: /srv }\n  \
                  - name: conf\n    steps:\n      - file: { dest: /etc/conf, content: c }\n";
    let (onto, digest) = on_a_base_with_srv(root, layers);
    let manifest = common::read_json(&common::blob_path(&root.join("app/out"), &digest));
    assert_eq!(manifest["annotations"]["dev.ingot.layers.empty"], "spool");
    assert_eq!(
        manifest["layers"].as_array().unwrap().len(),
        2,
        "{manifest}"
    );
    let (report, rebuilt) = refused_then_rebuilt(
        root,
        onto,
        layers,
        "layers spool: changed nothing on the old base",
    );
    assert_eq!(names(&report["reused"]), ["conf"]);
    let refusal = stderr(&rebase(root, onto, &[]));
    assert!(!refusal.contains("layer conf"), "{refusal}");
    let on_bare = common::read_json(&common::blob_path(&root.join("app-bare/out"), &rebuilt));
    assert!(on_bare["annotations"]["dev.ingot.layers.empty"].is_null());
}
