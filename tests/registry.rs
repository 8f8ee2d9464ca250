//! `ingot push` and `ingot pull` against a real registry (Debian's
//! docker-registry, started per test on 127.0.0.1): the round trip through
//! skopeo, no re-upload, chunked uploads and mounts, basic auth from
//! auth.json and from a credential helper, referrer artifacts through the
//! tag fallback, and the faults (registry down, wrong credentials, a
//! registry serving corrupt blobs), none of which may write a layout.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use common::registry::{CorruptingProxy, Registry, free_port, http_get, path_with, script};
use common::{build, ingot, repo, require, run, stderr, stdout};

fn hello() -> PathBuf {
    repo().join("recipes/hello/recipe.yaml")
}

/// A test's temp dir with recipes/hello built into `DIR/hello`, and a home
/// of its own so no credentials of the machine's leak in.
struct Fixture {
    dir: tempfile::TempDir,
    layout: PathBuf,
    digest: String,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("hello");
        // The image alone: these tests count what a push sends of it
        // (tests/referrers.rs pushes artifacts).
        let digest = common::build_bare(&hello(), &layout);
        for d in ["home", "run"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        Fixture {
            dir,
            layout,
            digest,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The built image's manifest.
    fn manifest(&self) -> Value {
        common::read_json(&common::blob_path(&self.layout, &self.digest))
    }

    fn oci(&self) -> String {
        format!("oci:{}", self.layout.display())
    }

    /// `ingot` with credentials looked up only where the test puts them.
    fn ingot(&self) -> Command {
        let mut cmd = ingot();
        cmd.env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG");
        cmd
    }

    fn push(&self, to: &str, extra: &[&str]) -> Output {
        run(self.ingot().arg("push").arg(self.oci()).arg(to).args(extra))
    }

    fn pull(&self, from: &str, out: &Path, extra: &[&str]) -> Output {
        run(self
            .ingot()
            .arg("pull")
            .arg(from)
            .arg("-o")
            .arg(out)
            .args(extra))
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\nstdout: {}",
        stderr(out),
        stdout(out)
    );
    stdout(out)
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

/// Exit 1 with one clear error line containing each of `needles`.
fn fails_with(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(stdout(out).is_empty(), "stdout: {}", stdout(out));
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {err}"));
    for n in needles {
        assert!(line.contains(n), "{n:?} not in {line:?}");
    }
    line.to_string()
}

/// Nothing in `parent` but what was there: no layout, no staging left.
fn nothing_written(parent: &Path, out: &Path) {
    assert!(!out.exists(), "{} was written", out.display());
    for entry in std::fs::read_dir(parent).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            !name.to_string_lossy().starts_with(".ingot-staging"),
            "staging left behind: {name:?}"
        );
    }
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
/// build → push → skopeo inspect shows the digest → skopeo copy to a
/// layout that `ingot verify` passes → `ingot pull` gives the same digest.
fn round_trip_through_skopeo_and_pull() {
    require("skopeo");
    let f = Fixture::new();
    let registry = Registry::start();
    let pushed = ok(&f.push(&registry.reference("team/hello"), &[]));
    assert_eq!(pushed.trim(), f.digest, "stdout is the digest alone");

    let reference = format!("{}:1.2.0", registry.reference("team/hello"));
    let inspected: Value = serde_json::from_str(&run_ok(
        Command::new("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(&reference),
    ))
    .unwrap();
    assert_eq!(inspected["Digest"], f.digest.as_str());
    assert_eq!(inspected["RepoTags"], json!(["1.2.0"]));

    let copied = f.path("copied");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false"])
            .arg(&reference)
            .arg(format!("oci:{}:t", copied.display())),
    );
    ok(&run(ingot()
        .arg("verify")
        .arg(format!("oci:{}", copied.display()))));

    let pulled = f.path("pulled");
    let out = f.pull(&reference, &pulled, &[]);
    assert_eq!(ok(&out).trim(), f.digest);
    ok(&run(ingot()
        .arg("verify")
        .arg(format!("oci:{}:1.2.0", pulled.display()))));
    // The pulled layout holds the image's manifest, config and layers,
    // byte for byte the built ones.
    let pulled_blobs: Vec<_> = std::fs::read_dir(pulled.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(pulled_blobs.len(), 4, "{pulled_blobs:#?}");
    for blob in &pulled_blobs {
        let built = f
            .layout
            .join("blobs/sha256")
            .join(blob.file_name().unwrap());
        assert_eq!(std::fs::read(blob).unwrap(), std::fs::read(built).unwrap());
    }

    // By digest: an untagged entry in the same layout, whose blobs are
    // checked and reused rather than downloaded again.
    let by_digest = format!("{}@{}", registry.reference("team/hello"), f.digest);
    let mark = registry.mark();
    let out = f.pull(&by_digest, &pulled, &["--json"]);
    let report = json_of(&out);
    assert_eq!(report["digest"], f.digest.as_str());
    assert_eq!(report["tag"], Value::Null);
    assert_eq!(report["downloaded"]["blobs"], 0, "{report}");
    let blob_gets: Vec<_> = registry
        .requests_since(mark)
        .into_iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/blobs/"))
        .collect();
    assert!(blob_gets.is_empty(), "{blob_gets:#?}");

    // A blob that rotted in the layout is not reused: it is downloaded
    // again and replaces the bad copy.
    let config = f.manifest()["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let rotten = pulled.join("blobs/sha256").join(&config[7..]);
    let mut bytes = std::fs::read(&rotten).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&rotten, bytes).unwrap();
    let report = json_of(&f.pull(&by_digest, &pulled, &["--json"]));
    assert_eq!(report["downloaded"]["blobs"], 1, "{report}");
    ok(&run(ingot()
        .arg("verify")
        .arg(format!("oci:{}", pulled.display()))));
    let index: Value =
        serde_json::from_slice(&std::fs::read(pulled.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
}

#[test]
/// A second push of the same image uploads no blob: ingot's report and
/// the registry's log agree.
fn a_second_push_uploads_nothing() {
    let f = Fixture::new();
    let registry = Registry::start();
    let to = registry.reference("hello");

    let mark = registry.mark();
    let first = json_of(&f.push(&to, &["--json"]));
    assert_eq!(first["digest"], f.digest.as_str());
    assert_eq!(first["reference"], format!("{to}:1.2.0"));
    assert_eq!(first["uploaded"]["blobs"], 3, "{first}");
    assert_eq!(first["skipped"]["blobs"], 0);
    let uploads = registry.blob_uploads_since(mark);
    assert_eq!(uploads.len(), 3, "{uploads:#?}");

    let mark = registry.mark();
    let second = json_of(&f.push(&to, &["--json"]));
    assert_eq!(second["digest"], f.digest.as_str());
    assert_eq!(second["uploaded"], json!({"blobs": 0, "bytes": 0}));
    assert_eq!(second["mounted"]["blobs"], 0);
    assert_eq!(second["skipped"]["blobs"], 3);
    assert_eq!(second["skipped"]["bytes"], first["uploaded"]["bytes"]);
    let requests = registry.requests_since(mark);
    let blob_writes: Vec<_> = requests
        .iter()
        .filter(|r| r.contains("/blobs/uploads/"))
        .collect();
    assert!(blob_writes.is_empty(), "{requests:#?}");
    assert_eq!(
        requests.iter().filter(|r| r.starts_with("HEAD ")).count(),
        3,
        "{requests:#?}"
    );
}

#[test]
/// Blobs above 8 MiB go up in chunks (several PATCHes), small ones in one
/// PUT; `--quiet` leaves stderr empty; the image pulls back intact.
fn large_blobs_are_uploaded_in_chunks() {
    let f = Fixture::new();
    let recipe_dir = f.path("big");
    std::fs::create_dir_all(recipe_dir.join("files")).unwrap();
    // 9 MB that gzip cannot shrink: a xorshift stream.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..9_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(recipe_dir.join("files/data.bin"), &data).unwrap();
    std::fs::write(
        recipe_dir.join("recipe.yaml"),
        "name: big\nversion: \"1\"\nbase: scratch\nlayers:\n  - name: data\n    steps:\n      \
         - copy: { src: files/data.bin, dest: /data.bin }\n",
    )
    .unwrap();
    let layout = f.path("big-layout");
    let digest = common::build_bare(&recipe_dir.join("recipe.yaml"), &layout);

    let registry = Registry::start();
    let mark = registry.mark();
    let out = run(f
        .ingot()
        .args(["--quiet", "push"])
        .arg(format!("oci:{}", layout.display()))
        .arg(registry.reference("big")));
    assert_eq!(ok(&out).trim(), digest);
    assert!(stderr(&out).is_empty(), "--quiet: {}", stderr(&out));
    let uploads = registry.blob_uploads_since(mark);
    let patches = uploads.iter().filter(|r| r.starts_with("PATCH ")).count();
    let puts = uploads.iter().filter(|r| r.starts_with("PUT ")).count();
    assert_eq!(patches, 3, "9 MB in 4 MiB chunks: {uploads:#?}");
    assert_eq!(
        puts, 2,
        "one to close the chunked upload, one for the config"
    );

    let pulled = f.path("big-pulled");
    let out = f.pull(&format!("{}:1", registry.reference("big")), &pulled, &[]);
    assert_eq!(ok(&out).trim(), digest);
    ok(&run(ingot()
        .arg("verify")
        .arg(format!("oci:{}", pulled.display()))));
}

#[test]
/// With --from-repo, blobs the other repository has are mounted, not
/// uploaded.
fn blobs_are_mounted_from_another_repository() {
    let f = Fixture::new();
    let registry = Registry::start();
    ok(&f.push(&registry.reference("base/hello"), &[]));

    let mark = registry.mark();
    let report = json_of(&f.push(
        &format!("{}:copy", registry.reference("apps/hello")),
        &["--json", "--from-repo", "base/hello"],
    ));
    assert_eq!(report["mounted"]["blobs"], 3, "{report}");
    assert_eq!(report["uploaded"]["blobs"], 0);
    assert_eq!(
        report["reference"],
        format!("{}:copy", registry.reference("apps/hello"))
    );
    let requests = registry.requests_since(mark);
    assert_eq!(
        requests
            .iter()
            .filter(|r| r.starts_with("POST ") && r.contains("mount=") && r.contains("from=base"))
            .count(),
        3,
        "{requests:#?}"
    );
    assert!(registry.blob_uploads_since(mark).is_empty());

    // A repository without the blobs: the mount is refused, the blobs are
    // uploaded.
    let report = json_of(&f.push(
        &registry.reference("apps/other"),
        &["--json", "--from-repo", "nothing/here"],
    ));
    assert_eq!(report["mounted"]["blobs"], 0, "{report}");
    assert_eq!(report["uploaded"]["blobs"], 3);
}

#[test]
/// htpasswd basic auth: no credentials and wrong ones fail with one clear
/// line and exit 1; REGISTRY_AUTH_FILE and a DOCKER_CONFIG credHelpers
/// helper both work.
fn basic_auth_from_auth_files_and_helpers() {
    let f = Fixture::new();
    let registry = Registry::with_htpasswd("alice", "s3cret");
    let to = registry.reference("hello");

    fails_with(
        &f.push(&to, &[]),
        &[&registry.host(), "authentication failed", "none were found"],
    );

    let auth_file = |name: &str, user: &str, password: &str| {
        let path = f.path(name);
        let encoded = base64(&format!("{user}:{password}"));
        std::fs::write(
            &path,
            json!({"auths": {registry.host(): {"auth": encoded}}}).to_string(),
        )
        .unwrap();
        path
    };
    let wrong = auth_file("wrong.json", "alice", "guess");
    let out = run(f
        .ingot()
        .env("REGISTRY_AUTH_FILE", &wrong)
        .arg("push")
        .arg(f.oci())
        .arg(&to));
    fails_with(&out, &["authentication failed", "\"alice\"", "wrong.json"]);
    // Pulls are refused the same way, and write nothing.
    let out = run(f
        .ingot()
        .env("REGISTRY_AUTH_FILE", &wrong)
        .args(["pull", &format!("{to}:1.2.0"), "-o"])
        .arg(f.path("nope")));
    fails_with(&out, &["authentication failed"]);
    nothing_written(f.dir.path(), &f.path("nope"));

    let good = auth_file("good.json", "alice", "s3cret");
    let out = run(f
        .ingot()
        .env("REGISTRY_AUTH_FILE", &good)
        .arg("push")
        .arg(f.oci())
        .arg(&to));
    assert_eq!(ok(&out).trim(), f.digest);

    // DOCKER_CONFIG with a credHelpers entry; the helper is a script on
    // PATH that knows this registry only.
    let docker_config = f.path("docker");
    let bin = f.path("bin");
    std::fs::create_dir_all(&docker_config).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        docker_config.join("config.json"),
        json!({"credHelpers": {registry.host(): "ingot-test"}}).to_string(),
    )
    .unwrap();
    script(
        &bin.join("docker-credential-ingot-test"),
        &format!(
            "[ \"$1\" = get ] || exit 2\n\
             read -r server\n\
             if [ \"$server\" = \"{}\" ]; then\n  \
               echo '{{\"ServerURL\":\"'\"$server\"'\",\"Username\":\"alice\",\"Secret\":\"s3cret\"}}'\n\
             else\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
            registry.host()
        ),
    );
    let pulled = f.path("pulled");
    let out = run(f
        .ingot()
        .env("DOCKER_CONFIG", &docker_config)
        .env("PATH", path_with(&bin))
        .args(["pull", &format!("{to}:1.2.0"), "-o"])
        .arg(&pulled));
    assert_eq!(ok(&out).trim(), f.digest);
    let out = run(f
        .ingot()
        .env("DOCKER_CONFIG", &docker_config)
        .env("PATH", path_with(&bin))
        .args(["push", "--json"])
        .arg(f.oci())
        .arg(format!("{to}:again")));
    assert_eq!(json_of(&out)["skipped"]["blobs"], 3);

    // A helper that is not installed is a clear error too.
    std::fs::write(
        docker_config.join("config.json"),
        json!({"credHelpers": {registry.host(): "absent"}}).to_string(),
    )
    .unwrap();
    let out = run(f
        .ingot()
        .env("DOCKER_CONFIG", &docker_config)
        .arg("push")
        .arg(f.oci())
        .arg(&to));
    fails_with(&out, &["docker-credential-absent"]);
}

fn base64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
/// A registry that is not there: exit 1, one line, nothing written.
fn registry_down_is_one_clear_error() {
    let f = Fixture::new();
    let closed = format!("docker://127.0.0.1:{}/hello", free_port());
    fails_with(
        &f.push(&closed, &[]),
        &["cannot reach the registry", "refused"],
    );
    let out_dir = f.path("pulled");
    fails_with(
        &f.pull(&format!("{closed}:1.2.0"), &out_dir, &[]),
        &["cannot reach the registry"],
    );
    nothing_written(f.dir.path(), &out_dir);
}

#[test]
/// A registry that serves blobs with the wrong content: the pull names the
/// blob, the expected and the found digest, and writes nothing, neither a
/// new layout nor into an existing one.
fn corrupt_blobs_from_the_registry_are_refused() {
    let f = Fixture::new();
    let registry = Registry::start();
    ok(&f.push(&registry.reference("hello"), &[]));
    let proxy = CorruptingProxy::start(registry.port);
    let through = format!("docker://127.0.0.1:{}/hello:1.2.0", proxy.port);

    let manifest = f.manifest();
    let config = manifest["config"]["digest"].as_str().unwrap();

    let out_dir = f.path("pulled");
    let line = fails_with(
        &f.pull(&through, &out_dir, &[]),
        &[
            "digest mismatch",
            &format!("expected {config}"),
            "found sha256:",
        ],
    );
    assert!(line.contains(&format!("config {config}")), "{line}");
    assert!(proxy.corrupted.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    nothing_written(f.dir.path(), &out_dir);

    // Into an existing layout of another image (so every blob must come
    // from the registry): left exactly as it was.
    let other_dir = f.path("other-recipe");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other_recipe = other_dir.join("recipe.yaml");
    std::fs::write(
        &other_recipe,
        "name: other\nversion: '1'\nbase: scratch\nlayers:\n  - name: a\n    steps:\n      - file: { dest: /x, content: x }\n",
    )
    .unwrap();
    let other = f.path("other");
    build(&other_recipe, &other);
    let before_index = std::fs::read(other.join("index.json")).unwrap();
    let count = || {
        std::fs::read_dir(other.join("blobs/sha256"))
            .unwrap()
            .count()
    };
    let before_blobs = count();
    let out = f.pull(
        &format!("docker://127.0.0.1:{}/hello@{}", proxy.port, f.digest),
        &other,
        &[],
    );
    fails_with(&out, &["digest mismatch"]);
    assert_eq!(
        std::fs::read(other.join("index.json")).unwrap(),
        before_index
    );
    assert_eq!(count(), before_blobs);

    // The same pull straight from the registry works.
    assert_eq!(
        ok(&f.pull(
            &format!("{}:1.2.0", registry.reference("hello")),
            &out_dir,
            &[]
        ))
        .trim(),
        f.digest
    );
}

#[test]
/// An artifact (an SBOM) that refers to a pushed image: registry 2.8 has
/// no referrers API, so it is listed under the `sha256-<hex>` fallback tag,
/// and found there again.
fn a_referrer_is_found_through_the_fallback_tag() {
    use ingot::image::reference::RegistryRef;
    use ingot::registry::{self, Access, Progress, Remote};
    use ingot::store::BlobStore;

    let f = Fixture::new();
    let registry = Registry::start();
    ok(&f.push(&registry.reference("hello"), &[]));
    let subject_size = std::fs::metadata(
        f.layout
            .join("blobs/sha256")
            .join(f.digest.trim_start_matches("sha256:")),
    )
    .unwrap()
    .len();

    let store_dir = f.path("artifact");
    let store = BlobStore::open(&store_dir).unwrap();
    let empty = store.put(b"{}").unwrap();
    let sbom = store.put(br#"{"spdxVersion":"SPDX-2.3"}"#).unwrap();
    let artifact = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": empty.digest.to_string(), "size": empty.size},
        "layers": [{"mediaType": "application/spdx+json",
                    "digest": sbom.digest.to_string(), "size": sbom.size}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": f.digest, "size": subject_size},
        "annotations": {"org.opencontainers.image.created": "1970-01-01T00:00:00Z"}
    });
    let manifest = store.put(artifact.to_string().as_bytes()).unwrap();

    let repo: RegistryRef = registry.reference("hello").parse().unwrap();
    let remote = Remote::connect(&repo, &Access::default(), Progress::quiet()).unwrap();
    let report = registry::push_referrer(&remote, &repo, &store, &manifest).unwrap();
    let hex = f.digest.trim_start_matches("sha256:");
    assert_eq!(
        report.fallback_tag.as_deref(),
        Some(format!("sha256-{hex}").as_str())
    );
    assert_eq!(report.uploaded.blobs, 2);

    // The fallback tag, read straight from the registry.
    let (status, _, body) = http_get(
        registry.port,
        &format!("/v2/hello/manifests/sha256-{hex}"),
        &[("Accept", "application/vnd.oci.image.index.v1+json")],
    )
    .unwrap();
    assert_eq!(status, 200);
    let index: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(index["manifests"][0]["digest"], manifest.digest.to_string());
    assert_eq!(
        index["manifests"][0]["artifactType"],
        "application/spdx+json"
    );

    // Found through the library, filtered by type; pushing again adds no
    // second entry.
    let subject = repo.with_digest(f.digest.parse().unwrap());
    let found = registry::referrers(&remote, &subject, Some("application/spdx+json")).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest().to_string(), manifest.digest.to_string());
    assert!(
        registry::referrers(&remote, &subject, Some("application/other"))
            .unwrap()
            .is_empty()
    );
    let again = registry::push_referrer(&remote, &repo, &store, &manifest).unwrap();
    assert_eq!(again.fallback_tag, None);
    assert_eq!(again.uploaded.blobs, 0);
}

#[test]
/// An index is pushed with its manifests (children by digest); a pull
/// picks --platform from it and prints that manifest's digest.
fn an_index_is_pushed_whole_and_pulled_by_platform() {
    let f = Fixture::new();
    let arm_dir = f.path("tiny");
    std::fs::create_dir_all(&arm_dir).unwrap();
    std::fs::write(
        arm_dir.join("recipe.yaml"),
        "name: tiny\nversion: \"1\"\nbase: scratch\nplatform: linux/arm64\nlayers:\n  \
         - name: f\n    steps:\n      - file: { dest: /hello, content: \"hi\\n\" }\n",
    )
    .unwrap();
    let arm_layout = f.path("tiny-layout");
    let arm_digest = build(&arm_dir.join("recipe.yaml"), &arm_layout);

    // A layout whose tag names an index of both images.
    let multi = f.path("multi");
    common::copy_tree(&f.layout, &multi);
    common::copy_tree(&arm_layout.join("blobs"), &multi.join("blobs"));
    let size = |layout: &Path, digest: &str| {
        std::fs::metadata(
            layout
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .unwrap()
        .len()
    };
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": f.digest,
             "size": size(&f.layout, &f.digest),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm_digest,
             "size": size(&arm_layout, &arm_digest),
             "platform": {"os": "linux", "architecture": "arm64"}}
        ]
    })
    .to_string();
    let index_digest = {
        use sha2::Digest as _;
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(index.as_bytes()))
        )
    };
    std::fs::write(
        multi
            .join("blobs/sha256")
            .join(index_digest.trim_start_matches("sha256:")),
        &index,
    )
    .unwrap();
    std::fs::write(
        multi.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index_digest, "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"}}]})
        .to_string(),
    )
    .unwrap();

    let registry = Registry::start();
    let out = run(f
        .ingot()
        .args(["push", "--json"])
        .arg(format!("oci:{}", multi.display()))
        .arg(registry.reference("multi")));
    let report = json_of(&out);
    assert_eq!(report["digest"], index_digest.as_str());
    assert_eq!(
        report["reference"],
        format!("{}:multi", registry.reference("multi"))
    );
    assert_eq!(report["manifests"], 3);
    assert_eq!(report["uploaded"]["blobs"], 5, "{report}");

    let from = format!("{}:multi", registry.reference("multi"));
    let out = f.pull(
        &from,
        &f.path("arm"),
        &["--platform", "linux/arm64", "--json"],
    );
    let pulled = json_of(&out);
    assert_eq!(pulled["digest"], arm_digest.as_str());
    assert_eq!(pulled["index_digest"], index_digest.as_str());
    let out = f.pull(&from, &f.path("amd"), &[]);
    assert_eq!(ok(&out).trim(), f.digest);

    let out = f.pull(&from, &f.path("s390x"), &["--platform", "linux/s390x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("no image for platform linux/s390x"));
    nothing_written(f.dir.path(), &f.path("s390x"));
}

#[test]
/// A layout blob that is not what its descriptor says is caught as it is
/// read: the push fails naming it, and the registry gets neither the blob
/// nor the manifest.
fn a_corrupt_layout_is_not_pushed() {
    let f = Fixture::new();
    let manifest = f.manifest();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = f
        .layout
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();

    let registry = Registry::start();
    fails_with(
        &f.push(&registry.reference("hello"), &[]),
        &[&format!("blob {layer}"), "digest mismatch", "not pushed"],
    );
    let head = |path: String| http_get(registry.port, &path, &[]).unwrap().0;
    assert_eq!(head(format!("/v2/hello/blobs/{layer}")), 404);
    assert_eq!(head("/v2/hello/manifests/1.2.0".into()), 404);
}

#[test]
/// Wrong references and flags are usage errors (exit 2), before any
/// network traffic.
fn usage_errors() {
    let f = Fixture::new();
    let code = |out: Output| {
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    };
    let d = &f.digest;
    code(f.push("oci:/tmp/x", &[]));
    code(f.push("docker://127.0.0.1:1/Bad", &[]));
    code(f.push(&format!("docker://127.0.0.1:1/x@{d}"), &[]));
    code(f.push("docker://127.0.0.1:1/x", &["--insecure", "h:port"]));
    code(f.push("docker://127.0.0.1:1/x", &["--from-repo", "UP"]));
    code(run(f.ingot().args([
        "push",
        "docker-archive:x.tar",
        "docker://127.0.0.1:1/x",
    ])));
    code(f.pull("oci:/tmp/x", &f.path("o"), &[]));
    code(f.pull(
        "docker://127.0.0.1:1/x",
        &f.path("o"),
        &["--platform", "linux"],
    ));
    code(run(ingot().args(["verify", "docker://127.0.0.1:1/x:1"])));
    code(run(ingot().args([
        "inspect",
        "docker://127.0.0.1:1/x:1",
        "--insecure",
        "h:x",
    ])));
}
