//! Recipes on bases they did not build: an umoci-made OCI layout, another
//! recipe; pinned by ingot.lock; whiteouts applied over the base's layers
//! and checked on `umoci unpack`'s result.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{build, ingot, require, run, stderr};

fn sh(dir: &Path, script: &str) {
    let out = run(Command::new("sh").arg("-ec").arg(script).current_dir(dir));
    assert!(out.status.success(), "{script}: {}", stderr(&out));
}

/// An OCI layout at `dir/base` made by umoci, tag `v1`: /etc/greeting,
/// /etc/app.d/{a,b}.conf, /usr/bin/tool (the cmd, so executable, as the
/// build checks), /bin -> usr/bin, /srv/data/old.txt.
fn umoci_base(dir: &Path, greeting: &str) {
    require("umoci");
    sh(
        dir,
        &format!(
            "rm -rf base rfs
             umoci init --layout base
             umoci new --image base:v1
             mkdir -p rfs/etc/app.d rfs/usr/bin rfs/srv/data
             printf '{greeting}' > rfs/etc/greeting
             echo a > rfs/etc/app.d/a.conf
             echo b > rfs/etc/app.d/b.conf
             echo tool > rfs/usr/bin/tool
             chmod 0755 rfs/usr/bin/tool
             echo old > rfs/srv/data/old.txt
             ln -s usr/bin rfs/bin
             umoci insert --image base:v1 rfs /
             umoci config --image base:v1 --config.env PATH=/usr/bin --config.cmd /bin/tool"
        ),
    );
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn unpack(layout: &Path, tag: &str, bundle: &Path) -> PathBuf {
    let out = run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(bundle));
    assert!(out.status.success(), "umoci unpack: {}", stderr(&out));
    bundle.join("rootfs")
}

const ON_BASE: &str = "name: app
version: '1'
base: oci:../base:v1
layers:
  - name: prune
    steps:
      - remove: { path: /etc/greeting }
      - remove: { path: /etc/app.d }
      - remove: { path: /srv/data }
      - mkdir:  { path: /srv/data }
      - file:   { dest: /srv/data/new.txt, content: new }
      - file:   { dest: /bin/added, content: via-symlink, mode: '0755' }
  - name: readd
    steps:
      - file:   { dest: /etc/greeting, content: again }
";

/// The whiteout cases of the issue, on a base made by umoci: a base file and
/// a base directory removed, a directory replaced (opaque), a removed path
/// re-added in a later layer, a dest under the base's symlinked /bin.
#[test]
fn recipe_on_an_umoci_base_applies_whiteouts() {
    let dir = tempfile::tempdir().unwrap();
    umoci_base(dir.path(), "hello");
    let recipe = write(dir.path(), "app/recipe.yaml", ON_BASE);
    let layout = dir.path().join("out");
    let digest = build(&recipe, &layout);
    // Reproducible on a foreign base too.
    assert_eq!(build(&recipe, &dir.path().join("out2")), digest);

    let rootfs = unpack(&layout, "1", &dir.path().join("bundle"));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/greeting")).unwrap(),
        "again"
    );
    assert!(!rootfs.join("etc/app.d").exists(), "base directory removed");
    let mut data: Vec<String> = std::fs::read_dir(rootfs.join("srv/data"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    data.sort();
    assert_eq!(
        data,
        ["new.txt"],
        "replaced directory keeps only new content"
    );
    assert!(
        std::fs::symlink_metadata(rootfs.join("bin"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("usr/bin/added")).unwrap(),
        "via-symlink"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("usr/bin/tool")).unwrap(),
        "tool\n"
    );
    assert_eq!(
        std::fs::metadata(rootfs.join("usr/bin/added"))
            .unwrap()
            .mode()
            & 0o777,
        0o755
    );

    // The base's config is inherited, and its identity annotated.
    let out = run(ingot()
        .arg("inspect")
        .arg("--json")
        .arg(format!("oci:{}", layout.display())));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["config"]["config"]["Cmd"][0], "/bin/tool");
    let annotations = &json["manifest"]["annotations"];
    assert_eq!(
        annotations["org.opencontainers.image.base.name"],
        "oci:../base:v1"
    );
    assert!(
        annotations["org.opencontainers.image.base.digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
}

/// `oci:PATH@sha256:…` names the base by manifest digest.
#[test]
fn base_by_digest() {
    let dir = tempfile::tempdir().unwrap();
    umoci_base(dir.path(), "hello");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("base/index.json")).unwrap())
            .unwrap();
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let by_tag = build(
        &write(dir.path(), "a/recipe.yaml", ON_BASE),
        &dir.path().join("o1"),
    );
    let by_digest = ON_BASE.replace("oci:../base:v1", &format!("oci:../base@{manifest}"));
    let recipe = write(dir.path(), "b/recipe.yaml", &by_digest);
    let layout = dir.path().join("o2");
    let digest = build(&recipe, &layout);
    assert_ne!(digest, by_tag, "the base.name annotation differs");
    let out = run(ingot()
        .arg("inspect")
        .arg(format!("oci:{}", layout.display())));
    assert!(common::stdout(&out).contains(&manifest));
}

/// A missing layout or tag is the recipe's error, at its `base` line.
#[test]
fn missing_base_is_a_recipe_error() {
    let dir = tempfile::tempdir().unwrap();
    umoci_base(dir.path(), "hello");
    for base in ["oci:../nope:v1", "oci:../base:v2"] {
        let recipe = write(
            dir.path(),
            "app/recipe.yaml",
            &ON_BASE.replace("oci:../base:v1", base),
        );
        let out = common::try_build(&recipe, dir.path().join("out"));
        assert_eq!(out.status.code(), Some(2), "{base}: {}", stderr(&out));
        assert!(stderr(&out).contains("recipe.yaml:3:"), "{}", stderr(&out));
        assert!(!dir.path().join("out").exists());
    }
}

/// A recipe on a recipe: the inner one is built first, into the same
/// layout's blobs, and its image is the base.
#[test]
fn recipe_on_a_recipe() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "lower/recipe.yaml",
        "name: lower\nversion: '1'\nbase: stemcell:static\nlayers:\n  - name: l\n    steps:\n      - file: { dest: /etc/lower, content: lower }\n",
    );
    let upper = write(
        dir.path(),
        "upper/recipe.yaml",
        "name: upper\nversion: '1'\nbase: recipe:../lower/recipe.yaml\nlayers:\n  - name: u\n    steps:\n      - file: { dest: /etc/upper, content: upper }\n      - remove: { path: /etc/lower }\n",
    );
    let layout = dir.path().join("out");
    build(&upper, &layout);
    let rootfs = unpack(&layout, "1", &dir.path().join("bundle"));
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/upper")).unwrap(),
        "upper"
    );
    assert!(!rootfs.join("etc/lower").exists());
    assert!(
        rootfs.join("etc/passwd").exists(),
        "the stemcell below both"
    );

    // The base is named for what it is, not for where this checkout keeps
    // it, and pinned by the digest the lower recipe builds to on its own.
    let lower = build(
        &dir.path().join("lower/recipe.yaml"),
        &dir.path().join("lower-out"),
    );
    let out = run(ingot()
        .arg("inspect")
        .arg("--json")
        .arg(format!("oci:{}", layout.display())));
    assert!(out.status.success(), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let annotations = &json["manifest"]["annotations"];
    assert_eq!(annotations["org.opencontainers.image.base.name"], "lower:1");
    assert_eq!(annotations["org.opencontainers.image.base.digest"], lower);
}

/// A cycle of recipe bases is refused, naming the cycle.
#[test]
fn recipe_cycle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = write(
        dir.path(),
        "a/recipe.yaml",
        "name: a\nversion: '1'\nbase: recipe:../b/recipe.yaml\n",
    );
    write(
        dir.path(),
        "b/recipe.yaml",
        "name: b\nversion: '1'\nbase: recipe:../a/recipe.yaml\n",
    );
    let out = common::try_build(&a, dir.path().join("out"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("recipe cycle")
            && err.contains("a/recipe.yaml")
            && err.contains("b/recipe.yaml"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("error")).count(),
        1,
        "{err}"
    );
    assert!(!dir.path().join("out").exists());

    let selfish = write(
        dir.path(),
        "c/recipe.yaml",
        "name: c\nversion: '1'\nbase: recipe:recipe.yaml\n",
    );
    let out = common::try_build(&selfish, dir.path().join("out"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// `--locked` passes right after `ingot lock` and fails, naming the base,
/// when the base changes underneath; nothing is written then.
#[test]
fn locked_builds_fail_when_a_base_moves() {
    let dir = tempfile::tempdir().unwrap();
    umoci_base(dir.path(), "hello");
    let recipe = write(dir.path(), "app/recipe.yaml", ON_BASE);
    let layout = dir.path().join("out");

    let out = run(ingot()
        .arg("build")
        .arg("--locked")
        .arg(&recipe)
        .arg("-o")
        .arg(&layout));
    assert_eq!(out.status.code(), Some(1), "no lock yet: {}", stderr(&out));
    assert!(stderr(&out).contains("ingot lock"), "{}", stderr(&out));

    let out = run(ingot().arg("lock").arg(&recipe));
    assert!(out.status.success(), "{}", stderr(&out));
    let lock: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("app/ingot.lock")).unwrap()).unwrap();
    assert_eq!(lock["pins"][0]["reference"], "oci:../base:v1");
    assert!(
        lock["pins"][0]["config"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        lock["pins"][0]["manifest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );

    let out = run(ingot()
        .arg("build")
        .arg("--locked")
        .arg(&recipe)
        .arg("-o")
        .arg(&layout));
    assert!(out.status.success(), "{}", stderr(&out));
    let index = std::fs::read(layout.join("index.json")).unwrap();

    umoci_base(dir.path(), "changed");
    let out = run(ingot()
        .arg("build")
        .arg("--locked")
        .arg(&recipe)
        .arg("-o")
        .arg(&layout));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("oci:../base:v1") && err.contains("--locked"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(layout.join("index.json")).unwrap(),
        index,
        "layout untouched"
    );

    // Without --locked the build follows the base: into another layout,
    // or, as the version is another image now, with --replace.
    let out = common::try_build(&recipe, dir.path().join("followed"));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(ingot()
        .arg("build")
        .arg(&recipe)
        .arg("-o")
        .arg(&layout)
        .arg("--replace"));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The lock follows `recipe:` bases and pins the stemcell below them.
#[test]
fn lock_pins_bases_of_base_recipes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "lower/recipe.yaml",
        "name: lower\nversion: '1'\nbase: stemcell:static\n",
    );
    let upper = write(
        dir.path(),
        "upper/recipe.yaml",
        "name: upper\nversion: '1'\nbase: recipe:../lower/recipe.yaml\n",
    );
    let out = run(ingot().arg("lock").arg("--json").arg(&upper));
    assert!(out.status.success(), "{}", stderr(&out));
    let lock: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pins = lock["pins"].as_array().unwrap();
    assert_eq!(pins.len(), 1, "{lock}");
    assert_eq!(pins[0]["from"], "../lower/recipe.yaml");
    assert_eq!(pins[0]["reference"], "stemcell:static");
    // Locked afresh: the newest version.
    assert_eq!(pins[0]["resolved"], "stemcell:static@1.1.0");
    let out = run(ingot()
        .arg("build")
        .arg("--locked")
        .arg(&upper)
        .arg("-o")
        .arg(dir.path().join("o")));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// Every path under `root` with its type, mode, owner and content digest:
/// a tree's identity, for comparing unpacked images.
fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.unwrap();
        let meta = entry.path().symlink_metadata().unwrap();
        let rel = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .display()
            .to_string();
        let what = if meta.file_type().is_symlink() {
            format!("-> {}", std::fs::read_link(entry.path()).unwrap().display())
        } else if meta.is_file() {
            ingot::digest::Digest::of(&std::fs::read(entry.path()).unwrap()).to_string()
        } else {
            "dir".into()
        };
        out.push(format!(
            "{rel} {:o} {}:{} {what}",
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid()
        ));
    }
    out
}

/// The same base as an umoci layout, re-encoded by skopeo (zstd,
/// uncompressed) and exported to docker-archive: a recipe on each gives the
/// same merged tree, and each build is reproducible.
#[test]
fn one_base_in_every_format_gives_the_same_tree() {
    require("skopeo");
    let dir = tempfile::tempdir().unwrap();
    umoci_base(dir.path(), "hello");
    sh(
        dir.path(),
        "skopeo copy --dest-compress-format zstd oci:base:v1 oci:zstd:v1
         skopeo copy --dest-decompress oci:base:v1 oci:plain:v1
         skopeo copy oci:base:v1 docker-archive:base.tar:base:v1",
    );
    let zstd: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("zstd/index.json")).unwrap())
            .unwrap();
    let manifest = zstd["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("zstd/blobs/sha256").join(manifest)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );

    let mut trees = Vec::new();
    for (i, base) in [
        "oci:../base:v1",
        "oci:../zstd:v1",
        "oci:../plain:v1",
        "docker-archive:../base.tar",
    ]
    .iter()
    .enumerate()
    {
        let recipe = write(
            dir.path(),
            &format!("r{i}/recipe.yaml"),
            &ON_BASE.replace("oci:../base:v1", base),
        );
        let layout = dir.path().join(format!("out{i}"));
        let digest = build(&recipe, &layout);
        assert_eq!(
            build(&recipe, &dir.path().join(format!("again{i}"))),
            digest,
            "{base}"
        );
        // umoci 0.4 cannot unpack zstd layers: let skopeo re-encode all
        // outputs to gzip, the same way for each.
        sh(
            dir.path(),
            &format!(
                "skopeo copy --dest-compress --dest-compress-format gzip oci:out{i}:1 oci:gz{i}:1"
            ),
        );
        let rootfs = unpack(
            &dir.path().join(format!("gz{i}")),
            "1",
            &dir.path().join(format!("bundle{i}")),
        );
        trees.push((base.to_string(), tree(&rootfs)));
    }
    for (base, t) in &trees[1..] {
        assert_eq!(t, &trees[0].1, "{base} differs from {}", trees[0].0);
    }
    assert!(
        trees[0].1.iter().any(|l| l.starts_with("usr/bin/added ")),
        "{:?}",
        trees[0].1
    );
}

/// A base whose index lists several platforms gives the recipe's.
#[test]
fn an_index_base_selects_the_platform() {
    let dir = tempfile::tempdir().unwrap();
    umoci_base(dir.path(), "hello");
    // Wrap the umoci manifest in an index with an amd64 and a (bogus) arm64
    // entry, tagged v1.
    common::nest_in_index(&dir.path().join("base"), "v1");

    let recipe = write(dir.path(), "app/recipe.yaml", ON_BASE);
    build(&recipe, &dir.path().join("out"));

    let arm = ON_BASE.replace(
        "base: oci:../base:v1",
        "base: oci:../base:v1\nplatform: linux/s390x",
    );
    let recipe = write(dir.path(), "arm/recipe.yaml", &arm);
    let out = common::try_build(&recipe, dir.path().join("out2"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64, linux/arm64")
            || err.contains("linux/arm64, linux/amd64"),
        "{err}"
    );
}

/// `--locked` checks the lock before building anything: with no lock, a
/// lock that does not read, or one that does not pin the bases the recipes
/// name, it fails at once, naming the lock, with no layer built (the cache
/// stays empty) and nothing written.
#[test]
fn locked_checks_the_lock_before_building() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "lower/recipe.yaml",
        "name: lower\nversion: '1'\nbase: stemcell:static\nlayers:\n  - name: l\n    steps:\n      - file: { dest: /etc/lower, content: lower }\n",
    );
    let upper = write(
        dir.path(),
        "upper/recipe.yaml",
        "name: upper\nversion: '1'\nbase: recipe:../lower/recipe.yaml\nlayers:\n  - name: u\n    steps:\n      - file: { dest: /etc/upper, content: upper }\n",
    );
    let lock = dir.path().join("upper/ingot.lock");
    let layout = dir.path().join("out");
    let cache = dir.path().join("cache");
    let locked_build = || {
        run(ingot()
            .args(["build", "--locked", "--cache"])
            .arg(&cache)
            .arg(&upper)
            .arg("-o")
            .arg(&layout))
    };
    let fails_up_front = |code: i32, says: &str| {
        let out = locked_build();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(code), "{err}");
        assert!(err.contains(&lock.display().to_string()), "{err}");
        assert!(err.contains(says), "{says:?} not in {err}");
        assert!(!err.contains("building"), "something was built: {err}");
        assert!(!cache.exists(), "the cache was filled");
        assert!(!layout.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            left.iter().all(|n| n == "lower" || n == "upper"),
            "{left:?}"
        );
    };

    fails_up_front(1, "does not exist; run `ingot lock");

    std::fs::write(&lock, "{ not json").unwrap();
    fails_up_front(2, "ingot.lock: ");

    // A lock of the recipe as it was, before the lower recipe's base
    // changed: it pins another reference.
    std::fs::remove_file(&lock).unwrap();
    let out = run(ingot().arg("lock").arg(&upper));
    assert!(out.status.success(), "{}", stderr(&out));
    write(
        dir.path(),
        "lower/recipe.yaml",
        "name: lower\nversion: '1'\nbase: stemcell:static@1.0.0\nlayers:\n  - name: l\n    steps:\n      - file: { dest: /etc/lower, content: lower }\n",
    );
    fails_up_front(
        1,
        "+ stemcell:static@1.0.0 (in ../lower/recipe.yaml): not locked; - stemcell:static (in ../lower/recipe.yaml): locked but no longer used",
    );

    let out = run(ingot().arg("lock").arg(&upper));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = locked_build();
    assert!(out.status.success(), "{}", stderr(&out));
}
