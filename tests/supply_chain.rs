//! The SBOM and provenance of issue 17, checked by tools that are not
//! ingot: `pyspdxtools` (PyPI spdx-tools) validates every SBOM,
//! `check-jsonschema` validates the provenance against the in-toto
//! Statement v1 and SLSA Provenance v1 schemas vendored in tests/schemas/,
//! skopeo and umoci still read the image beside its referrers. All three
//! come from `scripts/test` (its venv, and apt).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use common::archive::{Archive, ArchiveOptions};
use common::registry::Registry;
use common::{ingot, read_json, require, run, stderr, stdout};

const SPDX: &str = "application/spdx+json";
const IN_TOTO: &str = "application/vnd.in-toto+json";

fn ok(cmd: &mut Command, what: &str) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{what}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// `ingot build RECIPE -o OUT` with its own cache dir: the digest.
fn build(recipe: &Path, out: &Path, cache: &Path) -> String {
    ok(
        ingot()
            .args(["build", "-q"])
            .arg(recipe)
            .arg("-o")
            .arg(out)
            .arg("--cache")
            .arg(cache),
        "ingot build",
    )
    .trim()
    .to_string()
}

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

/// The document of the artifact of `artifact_type` about `subject` in the
/// layout, checking the artifact manifest's shape on the way.
fn attached(layout: &Path, subject: &str, artifact_type: &str) -> Vec<u8> {
    let index = read_json(&layout.join("index.json"));
    let mut found = Vec::new();
    for entry in index["manifests"].as_array().unwrap() {
        if entry["artifactType"] != artifact_type {
            continue;
        }
        let digest = entry["digest"].as_str().unwrap();
        let manifest: Value = serde_json::from_slice(&blob(layout, digest)).unwrap();
        if manifest["subject"]["digest"] != subject {
            continue;
        }
        assert_eq!(manifest["artifactType"], artifact_type, "{manifest}");
        assert_eq!(
            manifest["config"]["mediaType"], "application/vnd.oci.empty.v1+json",
            "{manifest}"
        );
        assert_eq!(
            blob(layout, manifest["config"]["digest"].as_str().unwrap()),
            b"{}"
        );
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{manifest}");
        assert_eq!(layers[0]["mediaType"], artifact_type);
        found.push(blob(layout, layers[0]["digest"].as_str().unwrap()));
    }
    assert_eq!(
        found.len(),
        1,
        "one {artifact_type} about {subject} in {}",
        read_json(&layout.join("index.json"))
    );
    found.remove(0)
}

/// `ingot sbom IMAGE` on stdout.
fn sbom_of(image: &str, extra: &[&str]) -> Vec<u8> {
    let out = run(ingot().arg("sbom").arg(image).args(extra));
    assert!(out.status.success(), "ingot sbom {image}: {}", stderr(&out));
    out.stdout
}

/// Writes `bytes` to `dir/name` and runs `pyspdxtools -i` on it.
fn pyspdxtools_validates(dir: &Path, name: &str, bytes: &[u8]) {
    require("pyspdxtools");
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    ok(
        Command::new("pyspdxtools").arg("-i").arg(&file),
        "pyspdxtools -i",
    );
}

/// check-jsonschema against the statement and the SLSA provenance schema.
fn schemas_validate(dir: &Path, bytes: &[u8]) {
    require("check-jsonschema");
    let file = dir.join("provenance.json");
    std::fs::write(&file, bytes).unwrap();
    let schemas = common::repo().join("tests/schemas");
    for schema in [
        "in-toto-statement-v1.schema.json",
        "slsa-provenance-v1.schema.json",
    ] {
        ok(
            Command::new("check-jsonschema")
                .arg("--schemafile")
                .arg(schemas.join(schema))
                .arg(&file),
            schema,
        );
    }
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The purls the SBOM gives its packages, by name.
fn purls(sbom: &Value) -> Vec<(String, String)> {
    sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["externalRefs"][0]["referenceLocator"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

#[test]
fn hello_is_attested_validly_and_reproducibly() {
    let tmp = tempfile::tempdir().unwrap();
    let hello = common::example("hello");
    let (a, b) = (tmp.path().join("a/out"), tmp.path().join("elsewhere/b"));
    let digest = build(&hello, &a, &tmp.path().join("cache-a"));
    assert_eq!(build(&hello, &b, &tmp.path().join("cache-b")), digest);

    let sbom = attached(&a, &digest, SPDX);
    let provenance = attached(&a, &digest, IN_TOTO);
    // Other directory, other cache: the same bytes.
    assert_eq!(attached(&b, &digest, SPDX), sbom);
    assert_eq!(attached(&b, &digest, IN_TOTO), provenance);
    // `ingot sbom` of the built image is what the build attached.
    assert_eq!(sbom_of(&format!("oci:{}:1.2.0", a.display()), &[]), sbom);
    // A warm build takes the SBOM it made for the same image from the
    // cache; one entry that does not read back is made again.
    let kept: Vec<_> = std::fs::read_dir(tmp.path().join("cache-a/attestations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let warm = tmp.path().join("warm/out");
    assert_eq!(build(&hello, &warm, &tmp.path().join("cache-a")), digest);
    assert_eq!(attached(&warm, &digest, SPDX), sbom);
    std::fs::write(&kept[0], "not a summary").unwrap();
    let again = tmp.path().join("again/out");
    assert_eq!(build(&hello, &again, &tmp.path().join("cache-a")), digest);
    assert_eq!(attached(&again, &digest, SPDX), sbom);
    assert_ne!(std::fs::read(&kept[0]).unwrap(), b"not a summary");
    // The entry names the document's blob in the cache, checked as read:
    // a damaged one is not attached, but made again.
    let cached = tmp
        .path()
        .join("cache-a/blobs/sha256")
        .join(sha256_hex(&sbom));
    std::fs::remove_file(&cached).unwrap();
    std::fs::write(&cached, vec![b'x'; sbom.len()]).unwrap();
    let damaged = tmp.path().join("damaged/out");
    assert_eq!(build(&hello, &damaged, &tmp.path().join("cache-a")), digest);
    assert_eq!(attached(&damaged, &digest, SPDX), sbom);

    pyspdxtools_validates(tmp.path(), "hello.spdx.json", &sbom);
    schemas_validate(tmp.path(), &provenance);

    let doc = json(&sbom);
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert!(
        doc["documentNamespace"]
            .as_str()
            .unwrap()
            .ends_with(&digest.replace(':', "-")),
        "{}",
        doc["documentNamespace"]
    );
    assert_eq!(doc["creationInfo"]["created"], "1970-01-01T00:00:00Z");
    let names = purls(&doc);
    assert_eq!(names[0].0, "hello");
    assert!(
        names[0].1.starts_with("pkg:oci/hello@sha256%3A"),
        "{names:?}"
    );
    assert_eq!(names[1].0, "stemcell:static@1.0.0", "the base: {names:?}");
    // The recipe's own files, not the stemcell's.
    let files: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fileName"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"./etc/hello/version"), "{files:?}");
    assert!(files.contains(&"./srv/hello/index.html"), "{files:?}");
    assert!(
        !files.contains(&"./etc/ssl/certs/ca-certificates.crt"),
        "a stemcell file: {files:?}"
    );

    let statement = json(&provenance);
    assert_eq!(statement["subject"][0]["name"], "hello:1.2.0");
    assert_eq!(
        format!(
            "sha256:{}",
            statement["subject"][0]["digest"]["sha256"]
                .as_str()
                .unwrap()
        ),
        digest
    );
    let deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    let kinds: Vec<&str> = deps
        .iter()
        .map(|d| d["annotations"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["recipe", "lock", "base"], "{statement}");
    let recipe_bytes = std::fs::read(&hello).unwrap();
    assert_eq!(
        deps[0]["digest"]["sha256"],
        sha256_hex(&recipe_bytes),
        "the recipe's digest"
    );
}

/// A file written again by a later layer is listed once, with the
/// content the image ends with; one a later layer removes is not listed;
/// the verification code is SPDX's over what is listed (clause 7.9).
#[test]
fn an_sbom_lists_each_own_file_as_the_image_last_wrote_it() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tmp.path().join("recipe.yaml");
    std::fs::write(
        &recipe,
        "name: overwrites\nversion: '1'\nbase: scratch\nlayers:\n\
         \x20 - name: one\n    steps:\n\
         \x20     - file: { dest: /srv/x, content: one }\n\
         \x20     - file: { dest: /srv/gone, content: g }\n\
         \x20     - file: { dest: /srv/kept, content: k }\n\
         \x20 - name: two\n    steps:\n\
         \x20     - file: { dest: /srv/x, content: two }\n\
         \x20     - remove: { path: /srv/gone }\n\
         \x20 - name: three\n    steps:\n\
         \x20     - file: { dest: /srv/y, content: y }\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let digest = build(&recipe, &out, &tmp.path().join("cache"));
    let sbom = attached(&out, &digest, SPDX);
    pyspdxtools_validates(tmp.path(), "overwrites.spdx.json", &sbom);
    let doc = json(&sbom);
    let sha1_hex = |b: &[u8]| hex::encode(<sha1::Sha1 as sha1::Digest>::digest(b));
    let listed: Vec<(String, String, String)> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let sum = |algorithm: &str| {
                f["checksums"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["algorithm"] == algorithm)
                    .map(|c| c["checksumValue"].as_str().unwrap().to_string())
                    .unwrap()
            };
            let name = f["fileName"].as_str().unwrap().to_string();
            (name, sum("SHA256"), sum("SHA1"))
        })
        .collect();
    let expected: Vec<(String, String, String)> = [("kept", "k"), ("x", "two"), ("y", "y")]
        .iter()
        .map(|(name, content)| {
            let bytes = content.as_bytes();
            (format!("./srv/{name}"), sha256_hex(bytes), sha1_hex(bytes))
        })
        .collect();
    assert_eq!(listed, expected);
    let mut sums: Vec<&str> = expected.iter().map(|(_, _, sha1)| sha1.as_str()).collect();
    sums.sort();
    let image = &doc["packages"][0];
    assert_eq!(
        image["packageVerificationCode"]["packageVerificationCodeValue"],
        sha1_hex(sums.concat().as_bytes())
    );
    // Each listed file is CONTAINED by the image, once.
    let contained: Vec<&str> = doc["relationships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["relationshipType"] == "CONTAINS")
        .map(|r| r["relatedSpdxElement"].as_str().unwrap())
        .collect();
    let ids: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["SPDXID"].as_str().unwrap())
        .collect();
    assert_eq!(contained, ids);
}

/// `ingot build RECIPE -o OUT --cache CACHE`, not quiet: the digest and
/// what the build logged.
fn build_logged(recipe: &Path, out: &Path, cache: &Path) -> (String, String) {
    let output = run(ingot()
        .arg("build")
        .arg(recipe)
        .arg("-o")
        .arg(out)
        .arg("--cache")
        .arg(cache));
    assert!(output.status.success(), "ingot build: {}", stderr(&output));
    (stdout(&output).trim().to_string(), stderr(&output))
}

/// A build makes the SBOM from the files of its own layers as it hashed
/// them writing each (or, for one served from the cache, as the cache
/// filed them then), reading nothing back: it says what `ingot sbom`
/// reading the image says, byte for byte, over every step kind
/// (copy-ups, an extracted tree with its hardlinks, whiteouts, a
/// directory replaced), over package databases the recipe writes (dpkg's
/// `status.d`, apk's `installed`) and over a `recipe:` base, whose layers
/// are the image's own. Without the filed lists, it reads the image back,
/// to the same bytes.
#[test]
fn an_sbom_made_as_the_layers_are_written_is_the_one_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let same_as_read_back = |recipe: &Path, name: &str, cache: &Path, how: &str| {
        let out = tmp.path().join(name);
        let (digest, log) = build_logged(recipe, &out, cache);
        assert!(log.contains(how), "{name}: {log}");
        let sbom = attached(&out, &digest, SPDX);
        assert_eq!(
            sbom_of(&format!("oci:{}", out.display()), &[]),
            sbom,
            "{name}"
        );
        json(&sbom)
    };
    const WRITTEN: &str = "files as hashed when written";
    const READ_BACK: &str = "reading the image back";

    let everything = common::example("everything");
    let doc = same_as_read_back(&everything, "everything", &tmp.path().join("c1"), WRITTEN);
    let files = doc["files"].as_array().unwrap().len();
    assert!(files > 5, "{files} files listed");

    let lower = tmp.path().join("lower/recipe.yaml");
    std::fs::create_dir_all(lower.parent().unwrap()).unwrap();
    std::fs::write(
        &lower,
        "name: lower\nversion: '1'\nbase: scratch\nlayers:\n\
         \x20 - name: one\n    steps:\n\
         \x20     - file: { dest: /var/lib/dpkg/status.d/tool, content: \"Package: tool\\nVersion: 1.0-1\\nArchitecture: amd64\\n\" }\n\
         \x20     - file: { dest: /lib/apk/db/installed, content: \"P:musl\\nV:1.2.4-r2\\nA:x86_64\\nL:MIT\\n\\n\" }\n\
         \x20     - file: { dest: /srv/x, content: one }\n\
         \x20     - file: { dest: /srv/gone, content: g }\n",
    )
    .unwrap();
    let upper = tmp.path().join("upper/recipe.yaml");
    std::fs::create_dir_all(upper.parent().unwrap()).unwrap();
    let write_upper = |x: &str| {
        std::fs::write(
            &upper,
            format!(
                "name: upper\nversion: '1'\nbase: recipe:../lower/recipe.yaml\nlayers:\n\
                 \x20 - name: two\n    steps:\n\
                 \x20     - file: {{ dest: /srv/x, content: {x} }}\n\
                 \x20     - remove: {{ path: /srv/gone }}\n\
                 \x20     - symlink: {{ path: /srv/y, target: x }}\n"
            ),
        )
        .unwrap()
    };
    write_upper("two");
    let cache = tmp.path().join("c2");
    let doc = same_as_read_back(&upper, "cold", &cache, WRITTEN);
    let names: Vec<String> = purls(&doc).into_iter().map(|(n, _)| n).collect();
    assert!(
        names.contains(&"tool".to_string()) && names.contains(&"musl".to_string()),
        "{names:?}"
    );
    let listed: Vec<&str> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["fileName"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&"./srv/x"), "{listed:?}");
    assert!(!listed.contains(&"./srv/gone"), "{listed:?}");

    // The base's layer served from the cache: its files as filed.
    write_upper("three");
    same_as_read_back(&upper, "warm", &cache, WRITTEN);
    // Nothing filed: the image is read back.
    std::fs::remove_dir_all(cache.join("files")).unwrap();
    std::fs::create_dir(cache.join("files")).unwrap();
    write_upper("four");
    same_as_read_back(&upper, "unfiled", &cache, READ_BACK);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The referrers are listed in index.json beside the image, which skopeo
/// and umoci still read as before; an unchanged build changes nothing.
#[test]
fn referrers_sit_beside_the_image_in_the_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cache = tmp.path().join("cache");
    let digest = build(&common::example("hello"), &out, &cache);
    let index = read_json(&out.join("index.json"));
    let entries = index["manifests"].as_array().unwrap();
    let types: Vec<&str> = entries
        .iter()
        .map(|e| e["artifactType"].as_str().unwrap_or("image"))
        .collect();
    assert_eq!(types, ["image", SPDX, IN_TOTO], "{index}");
    for entry in &entries[1..] {
        assert!(
            entry["annotations"]
                .get("org.opencontainers.image.ref.name")
                .is_none()
        );
        let manifest = json(&blob(&out, entry["digest"].as_str().unwrap()));
        assert_eq!(manifest["subject"]["digest"], digest.as_str());
        assert_eq!(
            manifest["subject"]["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
    }

    let before = std::fs::read(out.join("index.json")).unwrap();
    assert_eq!(build(&common::example("hello"), &out, &cache), digest);
    assert_eq!(std::fs::read(out.join("index.json")).unwrap(), before);

    require("skopeo");
    let inspected = json(
        ok(
            Command::new("skopeo")
                .arg("inspect")
                .arg(format!("oci:{}:1.2.0", out.display())),
            "skopeo inspect",
        )
        .as_bytes(),
    );
    assert_eq!(inspected["Digest"], digest.as_str());
    require("umoci");
    let list = ok(
        Command::new("umoci").args(["ls", "--layout"]).arg(&out),
        "umoci ls",
    );
    assert_eq!(list.trim(), "1.2.0");
    ok(
        Command::new("umoci")
            .args(["stat", "--image"])
            .arg(format!("{}:1.2.0", out.display())),
        "umoci stat",
    );
    ok(
        ingot().arg("verify").arg(format!("oci:{}", out.display())),
        "ingot verify",
    );
}

/// `ingot sbom` reads any transport: a docker-archive export and an image
/// in a registry give valid documents naming the same files.
#[test]
fn sbom_of_a_docker_archive_and_a_registry_image() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let digest = build(&common::example("hello"), &out, &tmp.path().join("cache"));
    let layout = format!("oci:{}:1.2.0", out.display());
    let from_layout = json(&sbom_of(&layout, &[]));

    let tar = tmp.path().join("hello.tar");
    ok(
        ingot()
            .arg("export")
            .arg(&layout)
            .args(["--format", "docker-archive", "-o"])
            .arg(&tar),
        "ingot export",
    );
    let archived = sbom_of(&format!("docker-archive:{}", tar.display()), &[]);
    pyspdxtools_validates(tmp.path(), "archive.spdx.json", &archived);
    let archived = json(&archived);
    // A docker-archive keeps no manifest: no annotation names the image
    // (its reference does) or says which layers are the recipe's, so it
    // lists no files of its own.
    let name = archived["packages"][0]["name"].as_str().unwrap();
    assert!(name.starts_with("docker-archive:"), "{name}");
    assert!(archived.get("files").is_none(), "{archived}");
    assert!(
        archived["documentNamespace"]
            .as_str()
            .unwrap()
            .contains("/config/"),
        "a docker-archive is named by its config: {}",
        archived["documentNamespace"]
    );

    let registry = Registry::start();
    let to = registry.reference("team/hello");
    ok(ingot().arg("push").arg(&layout).arg(&to), "ingot push");
    let written = tmp.path().join("registry.spdx.json");
    ok(
        ingot()
            .arg("sbom")
            .arg(format!("{to}:1.2.0"))
            .arg("-o")
            .arg(&written),
        "ingot sbom docker://",
    );
    let remote = std::fs::read(&written).unwrap();
    pyspdxtools_validates(tmp.path(), "remote.spdx.json", &remote);
    // The same manifest, the same document: the registry changes nothing.
    assert_eq!(json(&remote), from_layout);
    assert!(
        from_layout["documentNamespace"]
            .as_str()
            .unwrap()
            .ends_with(&digest.replace(':', "-"))
    );
}

/// An SBOM that cannot be made writes nothing: `-o FILE` keeps the file
/// it would replace and leaves no temp file beside it, and stdout stays
/// empty. Here a layer's blob is damaged, found as the layer is read.
#[test]
fn an_sbom_of_a_damaged_image_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let digest = build(&common::example("hello"), &out, &tmp.path().join("cache"));
    let manifest: Value = serde_json::from_slice(&blob(&out, &digest)).unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    let top = layers[layers.len() - 1]["digest"].as_str().unwrap();
    let path = out
        .join("blobs/sha256")
        .join(top.strip_prefix("sha256:").unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    // The blob may be a hardlink into the cache: a new file, not a write
    // through it.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &bytes).unwrap();
    let image = format!("oci:{}:1.2.0", out.display());

    let kept = tmp.path().join("sbom");
    std::fs::create_dir(&kept).unwrap();
    let file = kept.join("hello.spdx.json");
    std::fs::write(&file, "the last one").unwrap();
    let output = run(ingot().arg("sbom").arg(&image).arg("-o").arg(&file));
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains(&format!("blob {top}: digest mismatch")),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "the last one");
    let left: Vec<_> = std::fs::read_dir(&kept)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [file.file_name().unwrap()]);

    let output = run(ingot().arg("sbom").arg(&image));
    assert_eq!(output.status.code(), Some(1), "stderr: {}", stderr(&output));
    assert!(output.stdout.is_empty(), "{}", stdout(&output));
}

/// zlib1g and what it needs.
const CLOSURE: &[&str] = &["zlib1g", "libc6", "libgcc-s1", "gcc-12-base"];

/// A recipe installing zlib1g from `archive` on merged /usr.
fn zlib_recipe(dir: &Path, archive: &Archive) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(archive.keyring(), dir.join("archive.gpg")).unwrap();
    let text = format!(
        "name: z\nversion: 1.0.0\nbase: scratch\n{}\
         \x20 - name: runtime\n    steps:\n\
         \x20     - packages: {{ install: [zlib1g] }}\n",
        common::archive::archive_and_merged_usr(&archive.url()),
    );
    let path = dir.join("recipe.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// An image with Debian packages: the SBOM lists each with its purl, the
/// provenance each `.deb` with its SHA-256; both validate, both repeat.
#[test]
fn debian_packages_are_listed_and_attested() {
    let debs = common::debian::debs(CLOSURE);
    let archive = Archive::new(&debs, ArchiveOptions::default());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = zlib_recipe(&tmp.path().join("z"), &archive);
    ok(
        ingot()
            .arg("lock")
            .arg(&recipe)
            .arg("--cache")
            .arg(tmp.path().join("c1")),
        "ingot lock",
    );
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let digest = build(&recipe, &a, &tmp.path().join("c1"));
    assert_eq!(build(&recipe, &b, &tmp.path().join("c2")), digest);

    let sbom = attached(&a, &digest, SPDX);
    let provenance = attached(&a, &digest, IN_TOTO);
    assert_eq!(attached(&b, &digest, SPDX), sbom);
    assert_eq!(attached(&b, &digest, IN_TOTO), provenance);
    assert_eq!(sbom_of(&format!("oci:{}", a.display()), &[]), sbom);
    pyspdxtools_validates(tmp.path(), "z.spdx.json", &sbom);
    schemas_validate(tmp.path(), &provenance);

    let doc = json(&sbom);
    let listed = purls(&doc);
    for name in CLOSURE {
        let deb = debs
            .iter()
            .find(|d| {
                ok(
                    Command::new("dpkg-deb").arg("-f").arg(d).arg("Package"),
                    "dpkg-deb",
                )
                .trim()
                    == *name
            })
            .unwrap();
        let field = |f: &str| {
            ok(
                Command::new("dpkg-deb").arg("-f").arg(deb).arg(f),
                "dpkg-deb",
            )
            .trim()
            .to_string()
        };
        let (version, arch) = (field("Version"), field("Architecture"));
        let purl = format!(
            "pkg:deb/debian/{name}@{}?arch={arch}",
            version.replace(':', "%3A").replace('+', "%2B")
        );
        assert!(
            listed.iter().any(|(n, p)| n == name && *p == purl),
            "{name} as {purl}: {listed:?}"
        );
    }

    let statement = json(&provenance);
    let deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
        .as_array()
        .unwrap();
    for deb in &debs {
        let hex = sha256_hex(&std::fs::read(deb).unwrap());
        assert!(
            deps.iter().any(|d| d["annotations"]["kind"] == "deb"
                && d["digest"]["sha256"] == hex.as_str()),
            "{} ({hex}) in {statement}",
            deb.display()
        );
    }
    let lock = std::fs::read(recipe.with_file_name("ingot.lock")).unwrap();
    assert!(
        deps.iter().any(|d| d["annotations"]["kind"] == "lock"
            && d["digest"]["sha256"] == sha256_hex(&lock).as_str()),
        "{statement}"
    );
}
