//! Multi-platform builds: `platforms: [...]` builds one image per platform
//! under an image index tagged with the recipe's version, each image on
//! that platform of its base, and third-party tools (skopeo, umoci, file)
//! take each platform's image from it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::{blob_path, read_json};

use common::{AARCH64, X86_64, elf_header as elf};

/// A recipe directory at `dir`: `recipe.yaml` (with `head` after its name
/// and version) and the amd64 and arm64 "binaries" under
/// `bin/ARCH/app`, with a template that says the platform.
fn write_app(dir: &Path, head: &str) -> PathBuf {
    for (arch, machine) in [("amd64", X86_64), ("arm64", AARCH64)] {
        std::fs::create_dir_all(dir.join("bin").join(arch)).unwrap();
        std::fs::write(dir.join("bin").join(arch).join("app"), elf(machine)).unwrap();
    }
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(
        dir.join("files/platform.tera"),
        "{{ platform.os }}/{{ platform.arch }}\n",
    )
    .unwrap();
    let recipe = dir.join("recipe.yaml");
    std::fs::write(
        &recipe,
        format!(
            "name: multi\nversion: 1.0.0\n{head}\
             layers:\n  - name: app\n    steps:\n      \
             - copy: {{ src: 'bin/{{{{ platform.arch }}}}/app', dest: /usr/bin/app, mode: '0755' }}\n      \
             - template: {{ src: files/platform.tera, dest: /etc/platform }}\n\
             config:\n  entrypoint: [/usr/bin/app]\n"
        ),
    )
    .unwrap();
    recipe
}

const TWO: &str = "base: scratch\nplatforms: [linux/amd64, linux/arm64]\n";

/// The descriptor index.json tags `tag`.
fn tagged(layout: &Path, tag: &str) -> Value {
    let index = read_json(&layout.join("index.json"));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .cloned()
        .unwrap_or_else(|| panic!("no tag {tag} in {index}"))
}

/// `skopeo inspect --raw REF`, parsed.
fn skopeo_raw(reference: &str, extra: &[&str]) -> Value {
    let out = common::run(
        Command::new("skopeo")
            .arg("inspect")
            .args(extra)
            .arg("--raw")
            .arg(reference),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The platforms an index lists, as `os/arch`.
fn platforms_of(index: &Value) -> Vec<String> {
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["platform"]["os"].as_str().unwrap(),
                d["platform"]["architecture"].as_str().unwrap()
            )
        })
        .collect()
}

/// The manifest digest the index at `tag` of `layout` lists for `arch`.
fn manifest_for(layout: &Path, tag: &str, arch: &str) -> String {
    let top = tagged(layout, tag);
    let index = read_json(&blob_path(layout, top["digest"].as_str().unwrap()));
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["platform"]["architecture"] == arch)
        .and_then(|d| d["digest"].as_str())
        .unwrap_or_else(|| panic!("no {arch} in {index}"))
        .to_string()
}

/// `skopeo copy --override-arch ARCH` of `src` to a new layout, unpacked
/// with umoci: the unpacked root filesystem.
fn take_arch(src: &str, arch: &str, work: &Path) -> PathBuf {
    let copy = work.join(format!("copy-{arch}"));
    let out = common::run(
        Command::new("skopeo")
            .args(["copy", "--override-os", "linux", "--override-arch", arch])
            .arg(src)
            .arg(format!("oci:{}:x", copy.display())),
    );
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        common::stderr(&out)
    );
    let bundle = work.join(format!("bundle-{arch}"));
    let out = common::run(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:x", copy.display()))
            .arg(&bundle),
    );
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        common::stderr(&out)
    );
    bundle.join("rootfs")
}

/// What `file` says of `path`.
fn file_says(path: &Path) -> String {
    let out = common::run(Command::new("file").arg("-b").arg(path));
    assert!(out.status.success(), "{}", common::stderr(&out));
    common::stdout(&out)
}

#[test]
/// The build prints the index's digest and tags it with the version;
/// skopeo reads an index of both platforms, takes each platform's image
/// from it, and that image holds that platform's binary and a template
/// rendered for it. ingot's own readers pick a platform the same way.
fn two_platforms_make_an_index_each_tool_takes_its_platform_from() {
    for tool in ["skopeo", "umoci", "file"] {
        common::require(tool);
    }
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_app(&tmp.path().join("app"), TWO);
    let layout = tmp.path().join("out");
    let digest = common::build(&recipe, &layout);

    let top = tagged(&layout, "1.0.0");
    assert_eq!(top["digest"], digest.as_str());
    assert_eq!(top["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert!(top.get("platform").is_none(), "{top}");

    let reference = format!("oci:{}:1.0.0", layout.display());
    let index = skopeo_raw(&reference, &[]);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(platforms_of(&index), ["linux/amd64", "linux/arm64"]);

    for (arch, says) in [("arm64", "ARM aarch64"), ("amd64", "x86-64")] {
        let rootfs = take_arch(&reference, arch, tmp.path());
        let described = file_says(&rootfs.join("usr/bin/app"));
        assert!(described.contains(says), "{arch}: file says {described}");
        assert_eq!(
            std::fs::read_to_string(rootfs.join("etc/platform")).unwrap(),
            format!("linux/{arch}\n")
        );
        // skopeo's config for that platform says it too.
        let config = skopeo_raw(
            &reference,
            &[
                "--config",
                "--override-os",
                "linux",
                "--override-arch",
                arch,
            ],
        );
        assert_eq!(config["architecture"], arch);

        let out = common::run(
            common::ingot()
                .args(["inspect", "--json", "--platform"])
                .arg(format!("linux/{arch}"))
                .arg(&reference),
        );
        assert!(out.status.success(), "{}", common::stderr(&out));
        let inspected: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(inspected["config"]["architecture"], arch);
        assert_eq!(inspected["digest"], manifest_for(&layout, "1.0.0", arch));
    }

    // verify walks the index and both images.
    let out = common::run(
        common::ingot()
            .args(["verify", "--json"])
            .arg(format!("oci:{}", layout.display())),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
}

#[test]
/// `--json` reports the index and, per platform, each image.
fn the_report_lists_each_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_app(&tmp.path().join("app"), TWO);
    let layout = tmp.path().join("out");
    let out = common::run(
        common::ingot()
            .args(["build", "--json"])
            .arg(&recipe)
            .arg("-o")
            .arg(&layout),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["digest"], tagged(&layout, "1.0.0")["digest"]);
    let platforms = report["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2);
    for (p, arch) in platforms.iter().zip(["amd64", "arm64"]) {
        assert_eq!(p["platform"], format!("linux/{arch}"));
        assert_eq!(p["digest"], manifest_for(&layout, "1.0.0", arch));
        assert_eq!(p["layers"][0]["name"], "app");
    }
}

#[test]
/// The index's digest depends on the recipe and its inputs only: another
/// directory, umask, input mtimes and TZ give the same one.
fn the_index_digest_is_reproducible() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_app(&tmp.path().join("app"), TWO);
    let first = common::build(&recipe, &tmp.path().join("out"));

    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("some/other-name");
    common::copy_tree(&tmp.path().join("app"), &copy);
    for rel in ["bin/amd64/app", "bin/arm64/app", "files/platform.tera"] {
        let out = common::run(
            Command::new("touch")
                .args(["-d", "2004-02-29 12:00:00"])
                .arg(copy.join(rel)),
        );
        assert!(out.status.success());
    }
    let out = common::run(
        Command::new("sh")
            .arg("-c")
            .arg(r#"umask 077; exec "$@""#)
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_ingot"))
            .args(["build", "recipe.yaml", "-o", "../../out/x"])
            .current_dir(&copy)
            .env_remove("SOURCE_DATE_EPOCH")
            .env("XDG_CACHE_HOME", elsewhere.path().join("cache"))
            .env("TZ", "Pacific/Chatham"),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out).trim(), first);

    // One platform's binary changed is another index.
    std::fs::write(copy.join("bin/arm64/app"), [elf(AARCH64), vec![0]].concat()).unwrap();
    let again = common::build(&copy.join("recipe.yaml"), &elsewhere.path().join("out/y"));
    assert_ne!(again, first);
}

#[test]
/// The amd64 image of a multi-platform build on the static stemcell is
/// the image a single-platform build makes; the arm64 one is built on the
/// stemcell built for arm64 (the same files, its config saying arm64).
fn the_static_stemcell_builds_for_arm64() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, head: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let recipe = dir.join("recipe.yaml");
        std::fs::write(
            &recipe,
            format!(
                "name: svc\nversion: '2'\nbase: stemcell:static\n{head}\
                 layers:\n  - name: conf\n    steps:\n      \
                 - file: {{ dest: /etc/svc.conf, content: \"on\\n\" }}\n"
            ),
        )
        .unwrap();
        recipe
    };
    let single = common::build(&write("single", ""), &tmp.path().join("single-out"));
    let layout = tmp.path().join("multi-out");
    common::build(
        &write("multi", "platforms: [linux/amd64, linux/arm64]\n"),
        &layout,
    );
    assert_eq!(manifest_for(&layout, "2", "amd64"), single);

    let arm = manifest_for(&layout, "2", "arm64");
    let manifest = read_json(&blob_path(&layout, &arm));
    let config = read_json(&blob_path(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ));
    assert_eq!(config["architecture"], "arm64");
    let base = manifest["annotations"]["org.opencontainers.image.base.name"].as_str();
    assert_eq!(base, Some("stemcell:static@1.1.0"));
    // The stemcell's files are the same on both: the layers below the
    // recipe's are the same blobs.
    let amd = read_json(&blob_path(&layout, &single));
    assert_eq!(amd["layers"], manifest["layers"]);

    // A single-platform recipe may ask for arm64 too.
    let one = common::build(
        &write("one", "platform: linux/arm64\n"),
        &tmp.path().join("one-out"),
    );
    assert_eq!(one, arm);
}

#[test]
/// An index base gives each platform its own manifest; a base lacking one
/// of the recipe's platforms fails, naming the base and the platform, as
/// does a single-platform base for another platform.
fn index_bases_give_each_platform_its_manifest() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    common::build(&write_app(&tmp.path().join("base-src"), TWO), &base);

    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    let on = |name: &str, head: &str| {
        let recipe = app.join(format!("{name}.yaml"));
        std::fs::write(
            &recipe,
            format!(
                "name: {name}\nversion: '1'\n{head}layers:\n  - name: l\n    steps:\n      \
                 - file: {{ dest: /etc/x, content: x }}\n"
            ),
        )
        .unwrap();
        recipe
    };
    let layout = tmp.path().join("out");
    common::build(
        &on(
            "both",
            "base: oci:../base:1.0.0\nplatforms: [linux/arm64, linux/amd64]\n",
        ),
        &layout,
    );
    for arch in ["arm64", "amd64"] {
        let manifest = read_json(&blob_path(&layout, &manifest_for(&layout, "1", arch)));
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.base.digest"],
            manifest_for(&base, "1.0.0", arch),
            "{arch}"
        );
    }

    let out = common::try_build(
        on(
            "lacking",
            "base: oci:../base:1.0.0\nplatforms: [linux/amd64, linux/ppc64le]\n",
        ),
        tmp.path().join("lacking-out"),
    );
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("oci:../base:1.0.0") && err.contains("linux/ppc64le"),
        "{err}"
    );
    assert!(err.contains("lacking.yaml:3:"), "{err}");
    assert!(!tmp.path().join("lacking-out").exists());

    // A base with one manifest is for its platform only.
    let single = tmp.path().join("single");
    common::build(
        &write_app(
            &tmp.path().join("single-src"),
            "base: scratch\nplatform: linux/amd64\n",
        ),
        &single,
    );
    let out = common::try_build(
        on(
            "other",
            "base: oci:../single:1.0.0\nplatforms: [linux/amd64, linux/arm64]\n",
        ),
        tmp.path().join("other-out"),
    );
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("oci:../single:1.0.0") && err.contains("linux/arm64"),
        "{err}"
    );
    assert!(err.contains("other.yaml:4:"), "{err}");
}

#[test]
/// A `recipe:` base is built for each platform of the recipe on it,
/// filling its own `src` placeholders for that platform.
fn recipe_bases_are_built_for_each_platform() {
    common::require("file");
    let tmp = tempfile::tempdir().unwrap();
    write_app(&tmp.path().join("lower"), "base: scratch\n");
    let upper = tmp.path().join("upper");
    std::fs::create_dir_all(&upper).unwrap();
    let recipe = upper.join("recipe.yaml");
    std::fs::write(
        &recipe,
        "name: upper\nversion: '3'\nbase: recipe:../lower/recipe.yaml\n\
         platforms: [linux/amd64, linux/arm64]\n",
    )
    .unwrap();
    let layout = tmp.path().join("out");
    common::build(&recipe, &layout);
    for (arch, says) in [("arm64", "ARM aarch64"), ("amd64", "x86-64")] {
        let rootfs = take_arch(&format!("oci:{}:3", layout.display()), arch, tmp.path());
        let described = file_says(&rootfs.join("usr/bin/app"));
        assert!(described.contains(says), "{arch}: file says {described}");
    }
}

#[test]
/// `ingot lock` pins a base per platform where the platforms resolve it
/// differently, and `--locked` builds from that lock.
fn the_lock_pins_bases_per_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app");
    let recipe = write_app(
        &dir,
        "base: stemcell:static\nplatforms: [linux/amd64, linux/arm64]\n",
    );
    let out = common::run(common::ingot().arg("lock").arg(&recipe));
    assert!(out.status.success(), "{}", common::stderr(&out));
    let lock = read_json(&dir.join("ingot.lock"));
    let pins = lock["pins"].as_array().unwrap();
    let platforms: Vec<&str> = pins
        .iter()
        .map(|p| p["platform"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{lock}");
    assert_ne!(pins[0]["config"], pins[1]["config"]);

    let out = common::run(
        common::ingot()
            .args(["build", "--locked"])
            .arg(&recipe)
            .arg("-o")
            .arg(tmp.path().join("out")),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
}

#[test]
/// Recipe errors of multi-platform recipes name file:line:column:
/// `platform` with `platforms`, and a source missing for one platform.
fn platform_errors_name_the_position() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_app(
        &tmp.path().join("both"),
        "base: scratch\nplatform: linux/amd64\nplatforms: [linux/arm64]\n",
    );
    let out = common::try_build(&recipe, tmp.path().join("out"));
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("recipe.yaml:5:12") && err.contains("not both"),
        "{err}"
    );

    let recipe = write_app(
        &tmp.path().join("missing"),
        "base: scratch\nplatforms: [linux/amd64, linux/s390x]\n",
    );
    let out = common::try_build(&recipe, tmp.path().join("out"));
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("recipe.yaml:8:")
            && err.contains("bin/s390x/app")
            && err.contains("linux/s390x"),
        "{err}"
    );
}

#[test]
/// inspect says which index it took the image from; audit and export
/// take the image of `--platform` from the index.
fn commands_read_each_platform_of_the_index() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("out");
    let index = common::build(&write_app(&tmp.path().join("app"), TWO), &layout);
    let reference = format!("oci:{}:1.0.0", layout.display());

    let out = common::run(common::ingot().arg("inspect").arg(&reference));
    assert!(out.status.success(), "{}", common::stderr(&out));
    let text = common::stdout(&out);
    assert!(
        text.contains(&format!("index     {index} (linux/amd64, linux/arm64;")),
        "{text}"
    );
    assert!(text.contains("platform  linux/amd64"), "{text}");
    let out = common::run(common::ingot().args(["inspect", "--json"]).arg(&reference));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["index"]["digest"], index.as_str());
    assert_eq!(json["index"]["platforms"][1], "linux/arm64");

    for arch in ["amd64", "arm64"] {
        let platform = format!("linux/{arch}");
        let out = common::run(
            common::ingot()
                .args(["audit", "--json", "--platform", &platform])
                .arg(&reference),
        );
        assert!(out.status.success(), "{}", common::stderr(&out));
        let audit: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(audit["digest"], manifest_for(&layout, "1.0.0", arch));

        let archive = tmp.path().join(format!("{arch}.tar"));
        let out = common::run(
            common::ingot()
                .args([
                    "export",
                    "--format",
                    "docker-archive",
                    "--platform",
                    &platform,
                ])
                .arg(&reference)
                .arg("-o")
                .arg(&archive),
        );
        assert!(out.status.success(), "{}", common::stderr(&out));
        let out = common::run(
            common::ingot()
                .args(["inspect", "--json"])
                .arg(format!("docker-archive:{}", archive.display())),
        );
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["config"]["architecture"], arch);
    }
}

#[test]
/// push sends the index with both manifests, skopeo reads it from the
/// registry, pull takes one platform of it, and a `docker://` tag of an
/// index is a base pinned per platform.
fn the_index_goes_through_a_registry() {
    common::require("skopeo");
    let registry = common::registry::Registry::start();
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("out");
    let index = common::build(&write_app(&tmp.path().join("app"), TWO), &layout);
    let remote = registry.reference("multi");
    let out = common::run(
        common::ingot()
            .arg("push")
            .arg(format!("oci:{}:1.0.0", layout.display()))
            .arg(&remote),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out).trim(), index);
    let raw = skopeo_raw(&format!("{remote}:1.0.0"), &["--tls-verify=false"]);
    assert_eq!(platforms_of(&raw), ["linux/amd64", "linux/arm64"]);

    let pulled = tmp.path().join("pulled");
    let out = common::run(
        common::ingot()
            .args(["pull", "--platform", "linux/arm64"])
            .arg(format!("{remote}:1.0.0"))
            .arg("-o")
            .arg(&pulled),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    let top = read_json(&pulled.join("index.json"));
    assert_eq!(
        top["manifests"][0]["digest"],
        manifest_for(&layout, "1.0.0", "arm64")
    );

    // The tag as a base: each platform pinned to its own manifest.
    let app = tmp.path().join("on-registry");
    std::fs::create_dir_all(&app).unwrap();
    let recipe = app.join("recipe.yaml");
    std::fs::write(
        &recipe,
        format!(
            "name: upper\nversion: '1'\nbase: {remote}:1.0.0\n\
             platforms: [linux/amd64, linux/arm64]\n"
        ),
    )
    .unwrap();
    let out = common::run(common::ingot().arg("lock").arg(&recipe));
    assert!(out.status.success(), "{}", common::stderr(&out));
    let lock = read_json(&app.join("ingot.lock"));
    for (pin, arch) in lock["pins"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["amd64", "arm64"])
    {
        assert_eq!(pin["platform"], format!("linux/{arch}"), "{lock}");
        assert_eq!(pin["manifest"], manifest_for(&layout, "1.0.0", arch));
    }
    let built = tmp.path().join("upper");
    let out = common::run(
        common::ingot()
            .args(["build", "--locked"])
            .arg(&recipe)
            .arg("-o")
            .arg(&built),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    for arch in ["amd64", "arm64"] {
        let manifest = read_json(&blob_path(&built, &manifest_for(&built, "1", arch)));
        assert_eq!(
            manifest["annotations"]["org.opencontainers.image.base.digest"],
            manifest_for(&layout, "1.0.0", arch),
            "{arch}"
        );
    }
}

#[test]
/// The Debian stemcells pin their packages for amd64: built for arm64,
/// they say so (before fetching anything).
fn a_debian_stemcell_for_another_architecture_says_it_is_locked_for_amd64() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tmp.path().join("recipe.yaml");
    std::fs::write(
        &recipe,
        "name: d\nversion: '1'\nbase: stemcell:debian12\nplatforms: [linux/arm64, linux/amd64]\n",
    )
    .unwrap();
    let out = common::try_build(&recipe, tmp.path().join("out"));
    let err = common::stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("stemcell debian12@")
            && err.contains("for amd64 only")
            && err.contains("arm64"),
        "{err}"
    );
}

#[test]
/// `ingot validate` renders templates for each platform and wants the
/// lock to pin each platform's base.
fn validate_checks_every_platform() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("app");
    let recipe = write_app(
        &dir,
        "base: stemcell:static\nplatforms: [linux/amd64, linux/arm64]\n",
    );
    let validate = || common::run(common::ingot().args(["validate", "--locked"]).arg(&recipe));
    let out = common::run(common::ingot().arg("lock").arg(&recipe));
    assert!(out.status.success(), "{}", common::stderr(&out));
    let out = validate();
    assert!(out.status.success(), "{}", common::stdout(&out));

    // A lock that pins the base for amd64 only.
    let path = dir.join("ingot.lock");
    let mut lock = read_json(&path);
    lock["pins"].as_array_mut().unwrap().pop();
    std::fs::write(&path, serde_json::to_vec_pretty(&lock).unwrap()).unwrap();
    let out = validate();
    let text = common::stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("recipe.yaml:3:") && text.contains("on linux/arm64"),
        "{text}"
    );

    // A template that fails for one platform fails validation.
    std::fs::write(
        dir.join("files/platform.tera"),
        "{% if platform.arch == 'arm64' %}{{ vars.missing }}{% endif %}\n",
    )
    .unwrap();
    let out = common::run(common::ingot().arg("validate").arg(&recipe));
    let text = common::stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("missing"), "{text}");
}
