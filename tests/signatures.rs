//! Signatures (issue 17) against independent verifiers: `ingot keygen`,
//! `ingot sign` and `ingot verify --key` with skopeo 1.9 (containers/image)
//! on a real registry (Debian's docker-registry on 127.0.0.1). skopeo
//! verifies ours under a sigstoreSigned policy; we verify skopeo's, and
//! refuse them tampered, under another key or for another repository.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use common::registry::Registry;
use common::{build, ingot, repo, require, run, stderr, stdout};

const PASSPHRASE: &str = "correct horse battery staple";

/// A temp dir with hello built in it, a key pair, and skopeo's
/// configuration for the registry.
struct Fixture {
    dir: tempfile::TempDir,
    layout: PathBuf,
    registry: Registry,
}

impl Fixture {
    fn new() -> Fixture {
        require("skopeo");
        let dir = tempfile::tempdir().unwrap();
        let layout = dir.path().join("hello");
        build(&repo().join("recipes/hello/recipe.yaml"), &layout);
        for d in ["home", "run", "registries.d"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let registry = Registry::start();
        // containers-registries.d(5): read and write sigstore attachments
        // (`sha256-<hex>.sig`) for this registry.
        std::fs::write(
            dir.path().join("registries.d/test.yaml"),
            format!(
                "docker:\n  {}:\n    use-sigstore-attachments: true\n",
                registry.host()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("insecure-policy.json"),
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("passphrase"), PASSPHRASE).unwrap();
        Fixture {
            dir,
            layout,
            registry,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn oci(&self) -> String {
        format!("oci:{}:1.2.0", self.layout.display())
    }

    /// `ingot` with the passphrase and no credentials of the machine.
    fn ingot(&self) -> Command {
        let mut cmd = ingot();
        cmd.env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("DOCKER_CONFIG")
            .env_remove("COSIGN_PASSWORD")
            .env("INGOT_SIGNING_PASSPHRASE", PASSPHRASE);
        cmd
    }

    /// `ingot keygen -o DIR/NAME`: (private, public).
    fn keygen(&self, name: &str) -> (PathBuf, PathBuf) {
        ok(&run(self
            .ingot()
            .arg("keygen")
            .arg("-o")
            .arg(self.path(name))));
        (
            self.path(&format!("{name}.key")),
            self.path(&format!("{name}.pub")),
        )
    }

    fn push(&self, to: &str) -> Value {
        json_of(&run(self.ingot().args(["push", &self.oci(), to, "--json"])))
    }

    fn verify(&self, image: &str, key: &Path, extra: &[&str]) -> Output {
        run(self
            .ingot()
            .args(["verify", image, "--key"])
            .arg(key)
            .args(extra))
    }

    /// A policy.json accepting only sigstore signatures by `public`, for
    /// the image's repository (the identity cosign and ingot sign).
    fn policy(&self, public: &Path) -> PathBuf {
        let path = self.path(&format!(
            "policy-{}.json",
            public.file_stem().unwrap().to_string_lossy()
        ));
        let policy = json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {self.registry.host(): [{
                "type": "sigstoreSigned",
                "keyPath": public,
                "signedIdentity": {"type": "matchRepository"},
            }]}},
        });
        std::fs::write(&path, policy.to_string()).unwrap();
        path
    }

    fn skopeo(&self) -> Command {
        let mut cmd = Command::new("skopeo");
        cmd.env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("run"))
            .arg("--registries.d")
            .arg(self.path("registries.d"));
        cmd
    }

    /// `skopeo copy` of a registry image to a `dir:` under `policy`.
    fn skopeo_pull(&self, image: &str, policy: &Path, to: &str) -> Output {
        run(self
            .skopeo()
            .arg("--policy")
            .arg(policy)
            .args(["copy", "--src-tls-verify=false", image])
            .arg(format!("dir:{}", self.path(to).display())))
    }
}

/// Whether this skopeo reads and writes sigstore signatures. Debian
/// builds skopeo 1.9.3 with a local patch that disables them ("Debian-local
/// change: sigstore disabled"); there the skopeo half of each test is left
/// out, with a note, and the ingot half still runs.
fn skopeo_has_sigstore(f: &Fixture, image: &str, policy: &Path) -> bool {
    let out = f.skopeo_pull(image, policy, "probe");
    let disabled = stderr(&out).contains("sigstore disabled");
    if disabled {
        eprintln!(
            "note: this skopeo has sigstore disabled (Debian's patch); skopeo's checks skipped"
        );
    }
    let _ = std::fs::remove_dir_all(f.path("probe"));
    !disabled
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

/// Exit 1 with one error line containing each of `needles`.
fn fails_with(out: &Output, needles: &[&str]) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {err}"));
    for n in needles {
        assert!(line.contains(n), "{n:?} not in {line:?}");
    }
    line.to_string()
}

#[test]
fn keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("release");
    let keygen = |env: Option<&str>| {
        let mut cmd = ingot();
        cmd.env_remove("INGOT_SIGNING_PASSPHRASE")
            .env_remove("COSIGN_PASSWORD")
            .stdin(std::process::Stdio::null());
        if let Some(p) = env {
            cmd.env("INGOT_SIGNING_PASSPHRASE", p);
        }
        run(cmd.args(["keygen", "--json", "-o"]).arg(&prefix))
    };

    // No passphrase and no terminal: a clear error, nothing written.
    let out = keygen(None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("INGOT_SIGNING_PASSPHRASE"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path().join("release.key").exists());

    let report: Value = serde_json::from_str(&ok(&keygen(Some("pw")))).unwrap();
    let private = dir.path().join("release.key");
    let public = dir.path().join("release.pub");
    assert_eq!(report["private_key"], json!(private));
    let mode = std::fs::metadata(&private).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&private).unwrap();
    assert!(
        text.starts_with("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n"),
        "{text}"
    );
    assert!(
        std::fs::read_to_string(&public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\n")
    );

    // Again: refused, the key untouched.
    let out = keygen(Some("pw"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("refusing to overwrite"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&private).unwrap(), text);

    // A directory: DIR/ingot.key and DIR/ingot.pub.
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    ok(&run(ingot()
        .env("INGOT_SIGNING_PASSPHRASE", "pw")
        .args(["keygen", "-o"])
        .arg(&keys)));
    assert!(keys.join("ingot.key").is_file() && keys.join("ingot.pub").is_file());
}

#[test]
fn a_wrong_passphrase_is_named_and_signs_nothing() {
    let f = Fixture::new();
    let (private, _) = f.keygen("k");
    let out = run(f
        .ingot()
        .env("INGOT_SIGNING_PASSPHRASE", "not it")
        .args([
            "sign",
            &f.oci(),
            "--identity",
            "127.0.0.1:5000/hello",
            "--key",
        ])
        .arg(&private));
    let line = fails_with(&out, &["k.key", "passphrase does not decrypt"]);
    assert_eq!(stderr(&out).lines().count(), 1, "{line}");
    // cosign's variable, as a fallback.
    ok(&run(f
        .ingot()
        .env_remove("INGOT_SIGNING_PASSPHRASE")
        .env("COSIGN_PASSWORD", PASSPHRASE)
        .args([
            "sign",
            &f.oci(),
            "--identity",
            "127.0.0.1:5000/hello",
            "--key",
        ])
        .arg(&private)));
}

#[test]
fn skopeo_verifies_our_signature_and_refuses_unsigned_images_and_other_keys() {
    let f = Fixture::new();
    let (private, public) = f.keygen("ours");
    let (_, other) = f.keygen("other");
    let signed = format!("{}:1.2.0", f.registry.reference("hello"));
    let unsigned = format!("{}:1.2.0", f.registry.reference("unsigned"));
    let digest = f.push(&signed)["digest"].as_str().unwrap().to_string();
    f.push(&unsigned);

    let report = json_of(&run(f
        .ingot()
        .args(["sign", &signed, "--json", "--key"])
        .arg(&private)));
    assert_eq!(report["digest"], digest);
    assert_eq!(report["identity"], format!("{}/hello", f.registry.host()));
    assert_eq!(
        report["signature_tag"],
        format!("sha256-{}.sig", &digest["sha256:".len()..])
    );
    // Signing again adds nothing: RFC 6979 makes the same signature.
    let again = json_of(&run(f
        .ingot()
        .args(["sign", &signed, "--json", "--key"])
        .arg(&private)));
    assert_eq!(
        (again["added"].clone(), again["signatures"].clone()),
        (json!(false), json!(1))
    );

    if skopeo_has_sigstore(&f, &signed, &f.policy(&public)) {
        ok(&f.skopeo_pull(&signed, &f.policy(&public), "copied"));
        assert!(f.path("copied/manifest.json").is_file());

        let out = f.skopeo_pull(&unsigned, &f.policy(&public), "refused-unsigned");
        assert!(!out.status.success(), "skopeo accepted an unsigned image");
        assert!(stderr(&out).contains("signature"), "{}", stderr(&out));

        let out = f.skopeo_pull(&signed, &f.policy(&other), "refused-other");
        assert!(
            !out.status.success(),
            "skopeo accepted another key's signature"
        );
    }

    // And ingot agrees.
    ok(&f.verify(&signed, &public, &[]));
    fails_with(
        &f.verify(&unsigned, &public, &[]),
        &["not signed", "sha256-"],
    );
    fails_with(
        &f.verify(&signed, &other, &[]),
        &["does not verify under the public key"],
    );
}

/// skopeo signs with a key from `ingot keygen`, writing the attachment;
/// `ingot verify --key` accepts it, and refuses it altered, under another
/// key, and for another repository.
#[test]
fn we_verify_skopeos_signature_and_refuse_it_tampered() {
    require("curl");
    let f = Fixture::new();
    let (private, public) = f.keygen("signer");
    let (_, other) = f.keygen("other");
    let image = format!("{}:1", f.registry.reference("by-skopeo"));
    let signing = run(f
        .skopeo()
        .arg("--policy")
        .arg(f.path("insecure-policy.json"))
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--sign-by-sigstore-private-key",
        ])
        .arg(&private)
        .arg("--sign-passphrase-file")
        .arg(f.path("passphrase"))
        .arg(f.oci())
        .arg(&image));
    if stderr(&signing).contains("sigstore disabled") {
        // This skopeo cannot sign (see skopeo_has_sigstore): the image it
        // pushed is signed by ingot instead, and tampered with below.
        eprintln!("note: this skopeo has sigstore disabled (Debian's patch); ingot signs instead");
        ok(&run(f
            .ingot()
            .args(["sign", &image, "--key"])
            .arg(&private)));
    } else {
        ok(&signing);
    }

    let report = json_of(&f.verify(&image, &public, &["--json"]));
    assert_eq!(report["verified"], 1);
    fails_with(
        &f.verify(&image, &other, &[]),
        &["does not verify under the public key"],
    );
    let host = f.registry.host();
    fails_with(
        &f.verify(
            &image,
            &public,
            &["--identity", &format!("{host}/elsewhere")],
        ),
        // skopeo signs HOST/REPO:TAG, ingot HOST/REPO.
        &[
            &format!("signed for {host}/by-skopeo"),
            &format!("not {host}/elsewhere"),
        ],
    );

    // Tampered: the payload rewritten to name another digest, uploaded,
    // and the .sig manifest pointed at it (signature annotation kept).
    let tag = report["signature_tag"].as_str().unwrap();
    let base = format!("http://{host}/v2/by-skopeo");
    let manifest_url = format!("{base}/manifests/{tag}");
    let mut manifest: Value = serde_json::from_slice(&curl(&[
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &manifest_url,
    ]))
    .unwrap();
    let layer = manifest["layers"][0].clone();
    let payload = curl(&[&format!(
        "{base}/blobs/{}",
        layer["digest"].as_str().unwrap()
    )]);
    let payload = String::from_utf8(payload).unwrap();
    let forged = payload.replace(
        report["digest"].as_str().unwrap(),
        &format!("sha256:{}", "0".repeat(64)),
    );
    assert_ne!(forged, payload);
    let forged_digest = upload_blob(&base, forged.as_bytes(), &f.path("forged"));
    manifest["layers"][0]["digest"] = json!(forged_digest);
    manifest["layers"][0]["size"] = json!(forged.len());
    put_manifest(&manifest_url, &manifest, &f.path("manifest"));
    fails_with(
        &f.verify(&image, &public, &[]),
        &["does not verify under the public key"],
    );

    // Tampered: the signature annotation of another payload (ours, for
    // another image): it verifies nothing here.
    manifest["layers"][0] = layer.clone();
    let sig = manifest["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"]
        .as_str()
        .unwrap()
        .to_string();
    let mut altered = sig.into_bytes();
    let mid = altered.len() / 2;
    altered[mid] = if altered[mid] == b'A' { b'B' } else { b'A' };
    manifest["layers"][0]["annotations"]["dev.cosignproject.cosign/signature"] =
        json!(String::from_utf8(altered).unwrap());
    put_manifest(&manifest_url, &manifest, &f.path("manifest"));
    fails_with(
        &f.verify(&image, &public, &[]),
        &["does not verify under the public key"],
    );

    // Restored, it verifies again: the failures were the tampering.
    manifest["layers"][0] = layer;
    put_manifest(&manifest_url, &manifest, &f.path("manifest"));
    ok(&f.verify(&image, &public, &[]));
}

/// A layout signed for the repository it will be pushed to: the signature
/// is in the layout (fsck still clean), travels with `ingot push`, and
/// skopeo verifies it at the registry.
#[test]
fn a_signed_layout_carries_its_signature_to_the_registry() {
    let f = Fixture::new();
    let (private, public) = f.keygen("release");
    let host = f.registry.host();
    let identity = format!("{host}/released");
    let oci = f.oci();
    let out = run(f.ingot().args(["sign", &oci, "--key"]).arg(&private));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--identity HOST/REPO"),
        "{}",
        stderr(&out)
    );
    let signed = json_of(&run(f
        .ingot()
        .args(["sign", &oci, "--identity", &identity, "--json", "--key"])
        .arg(&private)));
    let tag = signed["signature_tag"].as_str().unwrap();

    // The layout: its fsck is clean with the signature in it, its one image
    // is still the image, and the signature checks.
    let index = common::read_json(&f.layout.join("index.json"));
    let tags: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    assert!(tags.contains(&tag), "{tags:?}");
    ok(&run(f
        .ingot()
        .arg("verify")
        .arg(format!("oci:{}", f.layout.display()))));
    let both = json_of(&f.verify(&oci, &public, &["--identity", &identity, "--json"]));
    assert_eq!(both["problems"], json!([]));
    assert_eq!(both["signature"]["identity"], identity);
    fails_with(
        &f.verify(&oci, &public, &["--identity", &format!("{host}/other")]),
        &[&format!("signed for {identity}, not {host}/other")],
    );
    let out = f.verify(&oci, &public, &[]);
    assert_eq!(out.status.code(), Some(2));

    let pushed = f.push(&format!("docker://{identity}"));
    assert_eq!(pushed["signatures"], tag);
    let image = format!("docker://{identity}:1.2.0");
    let skopeo = skopeo_has_sigstore(&f, &image, &f.policy(&public));
    if skopeo {
        ok(&f.skopeo_pull(&image, &f.policy(&public), "copied"));
    }
    ok(&f.verify(&image, &public, &[]));

    // Pushed elsewhere, the signature names the repository it was made
    // for: skopeo and ingot refuse it there.
    let elsewhere = format!("{}:1.2.0", f.registry.reference("elsewhere"));
    f.push(&elsewhere);
    if skopeo {
        let out = f.skopeo_pull(&elsewhere, &f.policy(&public), "refused");
        assert!(
            !out.status.success(),
            "skopeo accepted a signature for another repository"
        );
    }
    fails_with(
        &f.verify(&elsewhere, &public, &[]),
        &[&format!("signed for {identity}, not {host}/elsewhere")],
    );
}

fn curl(args: &[&str]) -> Vec<u8> {
    let out = run(Command::new("curl").arg("-sSf").args(args));
    assert!(out.status.success(), "curl {args:?}: {}", stderr(&out));
    out.stdout
}

/// A monolithic upload (POST, then PUT with the digest); the digest.
fn upload_blob(base: &str, bytes: &[u8], scratch: &Path) -> String {
    use sha2::Digest as _;
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
    let head = String::from_utf8(curl(&[
        "-X",
        "POST",
        "-o",
        "/dev/null",
        "-D",
        "-",
        &format!("{base}/blobs/uploads/"),
    ]))
    .unwrap();
    let location = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let location = if location.starts_with("http") {
        location
    } else {
        format!("{}{location}", &base[..base.find("/v2/").unwrap()])
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    std::fs::write(scratch, bytes).unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", scratch.display()),
        &format!("{location}{sep}digest={digest}"),
    ]);
    digest
}

fn put_manifest(url: &str, manifest: &Value, scratch: &Path) {
    std::fs::write(scratch, serde_json::to_vec(manifest).unwrap()).unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", scratch.display()),
        url,
    ]);
}

// Independent checks with openssl and a Python reader of cosign's key
// format (tests/tools/cosign_key.py), which run wherever skopeo's
// sigstore support is patched out.

/// One signature of a `.sig` manifest: the payload blob and the DER
/// signature of its annotation.
struct Signed {
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn signatures_of(manifest: &Value, mut blob: impl FnMut(&str) -> Vec<u8>) -> Vec<Signed> {
    use base64::Engine;
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|layer| {
            assert_eq!(
                layer["mediaType"],
                "application/vnd.dev.cosign.simplesigning.v1+json"
            );
            let b64 = layer["annotations"]["dev.cosignproject.cosign/signature"]
                .as_str()
                .unwrap();
            Signed {
                payload: blob(layer["digest"].as_str().unwrap()),
                signature: base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            }
        })
        .collect()
}

/// The signatures at `tag` of a repository of the test registry, fetched
/// with curl.
fn registry_signatures(f: &Fixture, repo: &str, tag: &str) -> Vec<Signed> {
    let base = format!("http://{}/v2/{repo}", f.registry.host());
    let manifest: Value = serde_json::from_slice(&curl(&[
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &format!("{base}/manifests/{tag}"),
    ]))
    .unwrap();
    signatures_of(&manifest, |digest| {
        curl(&[&format!("{base}/blobs/{digest}")])
    })
}

/// The signatures at `tag` of a layout, read from its files.
fn layout_signatures(layout: &Path, tag: &str) -> Vec<Signed> {
    let blob = |digest: &str| std::fs::read(common::blob_path(layout, digest)).unwrap();
    let index = common::read_json(&layout.join("index.json"));
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"));
    let manifest: Value = serde_json::from_slice(&blob(entry["digest"].as_str().unwrap())).unwrap();
    signatures_of(&manifest, blob)
}

/// `openssl dgst -sha256 -verify PUB -signature SIG DATA`: whether
/// openssl says the DER ECDSA signature of `data` verifies under `public`.
fn openssl_verifies(scratch: &Path, public: &Path, data: &[u8], signature: &[u8]) -> bool {
    let dir = tempfile::tempdir_in(scratch).unwrap();
    let (data_path, sig_path) = (dir.path().join("data"), dir.path().join("sig.der"));
    std::fs::write(&data_path, data).unwrap();
    std::fs::write(&sig_path, signature).unwrap();
    let out = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-verify"])
        .arg(public)
        .arg("-signature")
        .arg(&sig_path)
        .arg(&data_path));
    let verified = stdout(&out).contains("Verified OK");
    assert_eq!(verified, out.status.success(), "{}", stderr(&out));
    verified
}

/// openssl's reading of a public key: its DER, after checking that it
/// is an EC key on prime256v1.
fn openssl_public_der(public: &Path) -> Vec<u8> {
    let parsed = run(Command::new("openssl")
        .args(["pkey", "-pubin", "-noout", "-in"])
        .arg(public));
    ok(&parsed);
    let text = ok(&run(Command::new("openssl")
        .args(["ec", "-pubin", "-text", "-noout", "-in"])
        .arg(public)));
    assert!(text.contains("prime256v1"), "{text}");
    let der = run(Command::new("openssl")
        .args(["pkey", "-pubin", "-outform", "DER", "-in"])
        .arg(public));
    assert!(der.status.success(), "{}", stderr(&der));
    der.stdout
}

/// openssl verifies `signed` under `public`, for `digest` and
/// `identity`; not with one byte of the payload changed, nor under
/// `other`.
fn openssl_checks(
    f: &Fixture,
    signed: &Signed,
    public: &Path,
    other: &Path,
    digest: &str,
    identity: &str,
) {
    let payload: Value = serde_json::from_slice(&signed.payload).unwrap();
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        digest
    );
    assert_eq!(
        payload["critical"]["identity"]["docker-reference"],
        identity
    );
    let scratch = f.dir.path();
    assert!(openssl_verifies(
        scratch,
        public,
        &signed.payload,
        &signed.signature
    ));
    let mut altered = signed.payload.clone();
    let last = altered.len() - 2;
    altered[last] ^= 1;
    assert!(!openssl_verifies(
        scratch,
        public,
        &altered,
        &signed.signature
    ));
    assert!(!openssl_verifies(
        scratch,
        other,
        &signed.payload,
        &signed.signature
    ));
}

/// `tests/tools/cosign_key.py ARGS` with `passphrase`, in the venv of
/// scripts/test (pynacl and cryptography).
fn cosign_key(args: &[&Path], passphrase: &str) -> Output {
    require("python3");
    let probe = run(Command::new("python3").args(["-c", "import nacl.secret, cryptography"]));
    assert!(
        probe.status.success(),
        "python3 lacks pynacl or cryptography; run ./scripts/test, whose venv has them: {}",
        stderr(&probe)
    );
    run(Command::new("python3")
        .arg(repo().join("tests/tools/cosign_key.py"))
        .args(args)
        .env("COSIGN_PASSWORD", passphrase))
}

#[test]
fn openssl_verifies_our_signatures_at_a_registry_and_in_a_layout() {
    require("openssl");
    require("curl");
    let f = Fixture::new();
    let (private, public) = f.keygen("ours");
    let (_, other) = f.keygen("other");
    let der = openssl_public_der(&public);
    assert_ne!(der, openssl_public_der(&other));
    let host = f.registry.host();

    // At a registry: the signature of the image's own repository.
    let image = format!("{}:1.2.0", f.registry.reference("hello"));
    let digest = f.push(&image)["digest"].as_str().unwrap().to_string();
    let report = json_of(&run(f
        .ingot()
        .args(["sign", &image, "--json", "--key"])
        .arg(&private)));
    let signed = registry_signatures(&f, "hello", report["signature_tag"].as_str().unwrap());
    assert_eq!(signed.len(), 1);
    openssl_checks(
        &f,
        &signed[0],
        &public,
        &other,
        &digest,
        &format!("{host}/hello"),
    );

    // In a layout, for the identity named.
    let identity = format!("{host}/released");
    let report = json_of(&run(f
        .ingot()
        .args(["sign", &f.oci(), "--identity", &identity, "--json", "--key"])
        .arg(&private)));
    assert_eq!(report["digest"], digest);
    let signed = layout_signatures(&f.layout, report["signature_tag"].as_str().unwrap());
    assert_eq!(signed.len(), 1);
    openssl_checks(&f, &signed[0], &public, &other, &digest, &identity);
}

/// An implementation of cosign's key format apart from ingot's opens the
/// key `ingot keygen` wrote, with its passphrase only, and finds the
/// public key ingot wrote beside it.
#[test]
fn an_independent_reader_opens_our_private_key() {
    require("openssl");
    let f = Fixture::new();
    let (private, public) = f.keygen("ours");
    let out = cosign_key(&[Path::new("public"), &private], PASSPHRASE);
    let theirs = f.path("theirs.pub");
    std::fs::write(&theirs, ok(&out)).unwrap();
    assert_eq!(openssl_public_der(&theirs), openssl_public_der(&public));

    let out = cosign_key(&[Path::new("public"), &private], "not it");
    assert!(!out.status.success(), "a wrong passphrase opened the key");
}

/// A key written by that implementation (scrypt N=32768, the
/// ENCRYPTED COSIGN PRIVATE KEY label) signs with `ingot sign`; `ingot
/// verify` and openssl accept the signature under its public key.
#[test]
fn a_key_written_by_an_independent_writer_signs() {
    require("openssl");
    require("curl");
    let f = Fixture::new();
    let (private, public) = (f.path("theirs.key"), f.path("theirs.pub"));
    ok(&cosign_key(
        &[Path::new("generate"), &private, &public],
        PASSPHRASE,
    ));
    assert!(
        std::fs::read_to_string(&private)
            .unwrap()
            .starts_with("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n")
    );
    let (_, other) = f.keygen("other");

    let image = format!("{}:1.2.0", f.registry.reference("hello"));
    let digest = f.push(&image)["digest"].as_str().unwrap().to_string();
    let report = json_of(&run(f
        .ingot()
        .args(["sign", &image, "--json", "--key"])
        .arg(&private)));
    ok(&f.verify(&image, &public, &[]));
    fails_with(
        &f.verify(&image, &other, &[]),
        &["does not verify under the public key"],
    );
    let signed = registry_signatures(&f, "hello", report["signature_tag"].as_str().unwrap());
    let identity = format!("{}/hello", f.registry.host());
    openssl_checks(&f, &signed[0], &public, &other, &digest, &identity);

    // A wrong passphrase is refused, as for ingot's own keys.
    let out = run(f
        .ingot()
        .env("INGOT_SIGNING_PASSPHRASE", "not it")
        .args(["sign", &image, "--key"])
        .arg(&private));
    fails_with(&out, &["passphrase does not decrypt"]);
}

// Signed provenance: DSSE envelopes of the in-toto statement, attached
// as referrers beside it.

const IN_TOTO: &str = "application/vnd.in-toto+json";
const DSSE: &str = "application/vnd.dsse.envelope.v1+json";

/// DSSE's pre-authentication encoding (protocol.md), written from the
/// spec: `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// The index.json entries of a layout's referrers of `artifact_type`.
fn referrer_entries(layout: &Path, artifact_type: &str) -> Vec<Value> {
    common::read_json(&layout.join("index.json"))["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["artifactType"] == artifact_type)
        .cloned()
        .collect()
}

/// The one referrer of `artifact_type` in a layout: its manifest and its
/// document's bytes.
fn referrer_document(layout: &Path, artifact_type: &str) -> (Value, Vec<u8>) {
    let entries = referrer_entries(layout, artifact_type);
    assert_eq!(
        entries.len(),
        1,
        "one {artifact_type} in {}",
        layout.display()
    );
    let blob = |d: &Value| std::fs::read(common::blob_path(layout, d.as_str().unwrap())).unwrap();
    let manifest: Value = serde_json::from_slice(&blob(&entries[0]["digest"])).unwrap();
    let document = blob(&manifest["layers"][0]["digest"]);
    (manifest, document)
}

fn put_blob(layout: &Path, bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
    std::fs::write(common::blob_path(layout, &digest), bytes).unwrap();
    digest
}

/// Replaces the document of the layout's one referrer of `artifact_type`
/// with `bytes`, as someone with write access to the layout could: a new
/// blob, a new manifest naming it, index.json naming that.
fn replace_document(layout: &Path, artifact_type: &str, bytes: &[u8]) {
    let (mut manifest, _) = referrer_document(layout, artifact_type);
    manifest["layers"][0]["digest"] = json!(put_blob(layout, bytes));
    manifest["layers"][0]["size"] = json!(bytes.len());
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let digest = put_blob(layout, &manifest);
    let path = layout.join("index.json");
    let mut index = common::read_json(&path);
    for entry in index["manifests"].as_array_mut().unwrap() {
        if entry["artifactType"] == artifact_type {
            entry["digest"] = json!(digest);
            entry["size"] = json!(manifest.len());
        }
    }
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
}

/// openssl verifies the envelope's signature over the PAE of its type and
/// payload, and not over the PAE of another payload.
fn openssl_checks_envelope(f: &Fixture, envelope: &Value, public: &Path) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = b64.decode(envelope["payload"].as_str().unwrap()).unwrap();
    let signature = b64
        .decode(envelope["signatures"][0]["sig"].as_str().unwrap())
        .unwrap();
    let scratch = f.dir.path();
    assert!(openssl_verifies(
        scratch,
        public,
        &pae(IN_TOTO, &payload),
        &signature
    ));
    let mut altered = payload.clone();
    altered[1] ^= 1;
    assert!(!openssl_verifies(
        scratch,
        public,
        &pae(IN_TOTO, &altered),
        &signature
    ));
    assert!(!openssl_verifies(scratch, public, &payload, &signature));
}

/// `ingot build hello` into DIR/NAME, its SBOM and provenance attached.
fn build_attested(f: &Fixture, name: &str) -> PathBuf {
    let out = f.path(name);
    ok(&run(f
        .ingot()
        .arg("build")
        .arg(repo().join("recipes/hello/recipe.yaml"))
        .arg("-o")
        .arg(&out)));
    out
}

/// `ingot sign` signs the provenance with the image, as a DSSE envelope
/// cosign would write (payloadType in-toto, the statement's bytes, an
/// empty keyid) that openssl verifies over the PAE; `verify --key`
/// checks it in the layout, at the registry after push, and in a layout
/// after pull; an envelope or statement altered there fails.
#[test]
fn provenance_is_signed_as_a_dsse_envelope_that_travels_with_the_image() {
    require("openssl");
    let f = Fixture::new();
    let (private, public) = f.keygen("release");
    let layout = build_attested(&f, "attested");
    let oci = format!("oci:{}:1.2.0", layout.display());
    let identity = format!("{}/attested", f.registry.host());
    let sign = || {
        json_of(&run(f
            .ingot()
            .args(["sign", &oci, "--identity", &identity, "--json", "--key"])
            .arg(&private)))
    };
    let report = sign();
    let signed = report["provenance"].as_array().unwrap();
    assert_eq!(signed.len(), 1, "{report}");

    let (statement_manifest, statement) = referrer_document(&layout, IN_TOTO);
    let (manifest, document) = referrer_document(&layout, DSSE);
    assert_eq!(manifest["artifactType"], DSSE);
    assert_eq!(manifest["layers"][0]["mediaType"], DSSE);
    assert_eq!(manifest["subject"], statement_manifest["subject"]);
    assert_eq!(manifest["subject"]["digest"], report["digest"]);
    assert_eq!(
        manifest["annotations"]["predicateType"],
        "https://slsa.dev/provenance/v1"
    );
    let envelope: Value = serde_json::from_slice(&document).unwrap();
    assert_eq!(envelope["payloadType"], IN_TOTO);
    assert_eq!(envelope["signatures"][0]["keyid"], "");
    {
        use base64::Engine;
        let payload = base64::engine::general_purpose::STANDARD
            .decode(envelope["payload"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            payload, statement,
            "the envelope carries the statement's bytes"
        );
    }
    openssl_checks_envelope(&f, &envelope, &public);

    // Signing again adds nothing; the layout's fsck is clean.
    sign();
    assert_eq!(referrer_entries(&layout, DSSE).len(), 1);
    ok(&run(f
        .ingot()
        .arg("verify")
        .arg(format!("oci:{}", layout.display()))));

    let checked = json_of(&f.verify(&oci, &public, &["--identity", &identity, "--json"]));
    let expected = json!({"statements": 1, "envelopes": 1, "signed": 1});
    assert_eq!(checked["signature"]["provenance"], expected);
    let text = ok(&f.verify(&oci, &public, &["--identity", &identity]));
    assert!(
        text.contains("provenance: ok: 1 envelope(s) verify"),
        "{text}"
    );

    // Pushed: the envelope goes with the image, and verifies there.
    let pushed = json_of(&run(f.ingot().args([
        "push",
        &oci,
        &format!("docker://{identity}"),
        "--json",
    ])));
    let types: Vec<&str> = pushed["referrers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["artifact_type"].as_str())
        .collect();
    assert!(types.contains(&DSSE), "{types:?}");
    let image = format!("docker://{identity}:1.2.0");
    let at_registry = json_of(&f.verify(&image, &public, &["--json"]));
    assert_eq!(at_registry["provenance"], expected);

    // Pulled: it comes back as it was, with its `.sig` tag, and verifies
    // as it did at the registry; signing it again adds nothing.
    let pulled = f.path("pulled");
    let pull = json_of(&run(f
        .ingot()
        .args(["pull", "--json", &image, "-o"])
        .arg(&pulled)));
    assert!(
        pull["signatures"].as_str().unwrap().ends_with(".sig"),
        "{pull}"
    );
    let pulled_oci = format!("oci:{}:1.2.0", pulled.display());
    let (pulled_manifest, pulled_document) = referrer_document(&pulled, DSSE);
    assert_eq!((&pulled_manifest, &pulled_document), (&manifest, &document));
    let checked = json_of(&f.verify(&pulled_oci, &public, &["--identity", &identity, "--json"]));
    assert_eq!(checked["signature"]["provenance"], expected);
    let before = referrer_entries(&pulled, DSSE);
    ok(&run(f
        .ingot()
        .args(["sign", &pulled_oci, "--identity", &identity, "--key"])
        .arg(&private)));
    assert_eq!(referrer_entries(&pulled, DSSE), before);

    // An envelope whose payload was altered, its signature kept.
    let mut forged = envelope.clone();
    {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        let text = String::from_utf8(b64.decode(envelope["payload"].as_str().unwrap()).unwrap())
            .unwrap()
            .replace("\"epoch\":", "\"epoch\":1");
        assert!(text.contains("\"epoch\":1"), "{text}");
        forged["payload"] = json!(b64.encode(text));
    }
    replace_document(&pulled, DSSE, &serde_json::to_vec(&forged).unwrap());
    let line = fails_with(
        &f.verify(&pulled_oci, &public, &["--identity", &identity]),
        &[
            "provenance envelope sha256:",
            "does not verify under the public key",
        ],
    );
    assert_eq!(line.lines().count(), 1);

    // The envelope intact, the statement beside it replaced.
    replace_document(&pulled, DSSE, &document);
    ok(&f.verify(&pulled_oci, &public, &["--identity", &identity]));
    let mut other_statement = statement.clone();
    other_statement.extend_from_slice(b"\n");
    replace_document(&pulled, IN_TOTO, &other_statement);
    fails_with(
        &f.verify(&pulled_oci, &public, &["--identity", &identity]),
        &[
            "provenance envelope sha256:",
            "not the provenance attached to the image",
        ],
    );

    // No envelope: reported, not an error.
    let path = pulled.join("index.json");
    let mut index = common::read_json(&path);
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .retain(|d| d["artifactType"] != DSSE);
    std::fs::write(&path, serde_json::to_vec(&index).unwrap()).unwrap();
    let text = ok(&f.verify(&pulled_oci, &public, &["--identity", &identity]));
    assert!(
        text.contains("provenance: 1 statement(s) attached, not signed"),
        "{text}"
    );
}
