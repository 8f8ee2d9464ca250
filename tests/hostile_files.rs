//! Issue 14: files ingot reads whole or streams (a layout's `index.json`,
//! `oci-layout` and blobs, `ingot.lock`) are read only when they are
//! regular files, and small ones only within a bound. A symlink to
//! `/dev/zero` is refused, not read until memory runs out (each such test
//! runs ingot under `prlimit --as` to prove no large allocation); a FIFO is
//! refused at once, not waited on (each such test kills ingot and fails
//! if it has not exited within a deadline). And `ingot gc` removes nothing
//! from a layout that is broken, and writes nothing in a dry run.

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::layout::{Lies, dir, file, tar, write_layout};
use common::{blob_path, read_json};

/// How long a command may take before it is taken to hang.
const DEADLINE: Duration = Duration::from_secs(20);

/// The address space ingot runs in where a file could make it allocate
/// without bound: reading `/dev/zero` whole would pass it within a second.
const ADDRESS_SPACE: &str = "--as=536870912";

/// What a finished command left.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// Both streams, for messages and for what `verify` reports on stdout.
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Exited (not killed by a signal) with `code`.
    fn exited(&self, code: i32) -> &Ran {
        assert_eq!(
            self.status.code(),
            Some(code),
            "status {:?}; stdout: {}; stderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    fn says(&self, needles: &[&str]) -> &Ran {
        let text = self.text();
        for n in needles {
            assert!(text.contains(n), "{n:?} not in: {text}");
        }
        self
    }
}

/// Runs `cmd`, killing it and failing the test if it has not exited within
/// [`DEADLINE`].
fn run_within(mut cmd: Command) -> Ran {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting a command");
    // Drained on threads, so a full pipe never stalls the child.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {DEADLINE:?}: killed; stderr: {}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// `ingot ARGS`, as `common::ingot` sets it up, within the deadline.
fn ingot(args: &[&str]) -> Ran {
    let mut cmd = common::ingot();
    cmd.args(args);
    run_within(cmd)
}

/// `ingot ARGS` under `prlimit --as`, within the deadline, with the
/// environment `common::ingot` gives.
fn ingot_bounded(args: &[&str]) -> Ran {
    let plain = common::ingot();
    let mut cmd = Command::new("prlimit");
    cmd.arg(ADDRESS_SPACE)
        .arg("--")
        .arg(plain.get_program())
        .args(args);
    for (key, value) in plain.get_envs() {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    run_within(cmd)
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Replaces the file at `path` with a symlink to `/dev/zero`.
fn zero_at(path: &Path) {
    std::fs::remove_file(path).unwrap();
    std::os::unix::fs::symlink("/dev/zero", path).unwrap();
}

/// A temp dir holding `base/`, a one-image layout tagged `t`, and
/// `recipe/recipe.yaml` built on it.
struct Case {
    tmp: tempfile::TempDir,
    manifest: String,
}

impl Case {
    fn new() -> Case {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tar(&[dir("etc"), file("etc/hostname", b"victim\n")]);
        let manifest = write_layout(&tmp.path().join("base"), &[layer], Lies::default());
        let recipe = tmp.path().join("recipe");
        std::fs::create_dir_all(&recipe).unwrap();
        std::fs::write(
            recipe.join("recipe.yaml"),
            "name: victim\nversion: '1'\nbase: oci:../base:t\nlayers:\n  - name: app\n    steps:\n\
             \x20     - file: { dest: /victim, content: \"built\\n\" }\n",
        )
        .unwrap();
        Case {
            tmp,
            manifest: manifest.to_string(),
        }
    }

    fn base(&self) -> PathBuf {
        self.tmp.path().join("base")
    }

    /// `oci:BASE` with `suffix` (":t", or "" for the whole layout).
    fn oci(&self, suffix: &str) -> String {
        format!("oci:{}{suffix}", self.base().display())
    }

    fn recipe(&self) -> PathBuf {
        self.tmp.path().join("recipe/recipe.yaml")
    }

    fn out(&self) -> PathBuf {
        self.tmp.path().join("out")
    }

    fn manifest_json(&self) -> serde_json::Value {
        read_json(&blob_path(&self.base(), &self.manifest))
    }

    fn config_digest(&self) -> String {
        self.manifest_json()["config"]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn layer_digest(&self) -> String {
        self.manifest_json()["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn blob(&self, digest: &str) -> PathBuf {
        blob_path(&self.base(), digest)
    }

    /// Adds a blob nothing references: what gc would remove.
    fn garbage(&self) -> PathBuf {
        let bytes = b"an old version's layer";
        let digest = ingot::digest::Digest::of(bytes).to_string();
        let path = self.blob(&digest);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn build(&self) -> Ran {
        let (recipe, out) = (self.recipe(), self.out());
        ingot(&["build", path(&recipe), "-o", path(&out)])
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------
// Symlinks to /dev/zero, under a bounded address space

#[test]
fn issue14_index_json_that_is_a_symlink_to_dev_zero_is_refused() {
    let case = Case::new();
    zero_at(&case.base().join("index.json"));
    for args in [
        vec!["inspect", &case.oci(":t")],
        vec!["gc", &case.oci("")],
        vec!["gc", "--dry-run", &case.oci("")],
    ] {
        ingot_bounded(&args)
            .exited(1)
            .says(&["index.json", "not a regular file (a symlink)"]);
    }
    ingot_bounded(&["verify", &case.oci("")])
        .exited(1)
        .says(&["reading index.json: not a regular file (a symlink)"]);
}

#[test]
fn issue14_config_that_is_a_symlink_to_dev_zero_is_refused() {
    let case = Case::new();
    let config = case.config_digest();
    zero_at(&case.blob(&config));
    let refused = format!("blob {config}: not a regular file (a symlink)");
    for args in [vec!["inspect", &case.oci(":t")], vec!["gc", &case.oci("")]] {
        ingot_bounded(&args).exited(1).says(&[&refused]);
    }
    let (recipe, out) = (case.recipe(), case.out());
    ingot_bounded(&["build", path(&recipe), "-o", path(&out)])
        .exited(1)
        .says(&[&refused]);
    ingot_bounded(&["verify", &case.oci("")])
        .exited(1)
        .says(&[&format!(
            "blobs/sha256/{} is not a regular file (a symlink)",
            &config["sha256:".len()..]
        )]);
}

#[test]
fn issue14_ingot_lock_that_is_a_symlink_to_dev_zero_is_refused() {
    let case = Case::new();
    let lock = case.tmp.path().join("recipe/ingot.lock");
    std::os::unix::fs::symlink("/dev/zero", &lock).unwrap();
    let (recipe, out) = (case.recipe(), case.out());
    let ran = ingot_bounded(&["build", path(&recipe), "-o", path(&out)]);
    ran.exited(1)
        .says(&[path(&lock), "not a regular file (a character device)"]);
    assert!(!out.exists());
}

// ---------------------------------------------------------------------------
// A FIFO blob: every reader returns at once

/// A case whose layer blob is a FIFO nothing will ever write to.
fn fifo_layer() -> (Case, String) {
    let case = Case::new();
    let layer = case.layer_digest();
    let blob = case.blob(&layer);
    std::fs::remove_file(&blob).unwrap();
    mkfifo(&blob);
    let refused = format!("blob {layer}: not a regular file (a FIFO)");
    (case, refused)
}

#[test]
fn issue14_build_on_a_fifo_layer_blob_returns_at_once() {
    let (case, refused) = fifo_layer();
    case.build().exited(1).says(&[&refused]);
    assert!(!case.out().exists());
}

#[test]
fn issue14_verify_of_a_fifo_layer_blob_returns_at_once() {
    let (case, _) = fifo_layer();
    let layer = case.layer_digest();
    ingot(&["verify", &case.oci("")]).exited(1).says(&[
        "unreadable",
        &format!(
            "blobs/sha256/{} is not a regular file (a FIFO)",
            &layer["sha256:".len()..]
        ),
    ]);
}

#[test]
fn issue14_audit_of_a_fifo_layer_blob_returns_at_once() {
    let (case, refused) = fifo_layer();
    let image = case.oci(":t");
    ingot(&["audit", &image])
        .exited(1)
        .says(&[&format!("{image}: {refused}")]);
}

#[test]
fn issue14_export_of_a_fifo_layer_blob_returns_at_once() {
    let (case, refused) = fifo_layer();
    let archive = case.tmp.path().join("victim.tar");
    ingot(&[
        "export",
        &case.oci(":t"),
        "--format",
        "docker-archive",
        "-o",
        path(&archive),
    ])
    .exited(1)
    .says(&[&refused]);
    assert!(!archive.exists());
}

#[test]
fn issue14_inspect_names_a_fifo_layer_blob_as_such() {
    let (case, refused) = fifo_layer();
    let ran = ingot(&["inspect", &case.oci(":t")]);
    ran.exited(1).says(&[&refused]);
    assert!(!ran.stderr.contains("missing"), "{}", ran.stderr);
}

#[test]
fn issue14_a_fifo_config_or_index_json_is_refused_at_once() {
    let case = Case::new();
    let config = case.blob(&case.config_digest());
    std::fs::remove_file(&config).unwrap();
    mkfifo(&config);
    let refused = format!("blob {}: not a regular file (a FIFO)", case.config_digest());
    ingot(&["inspect", &case.oci(":t")])
        .exited(1)
        .says(&[&refused]);
    case.build().exited(1).says(&[&refused]);

    let index = case.base().join("index.json");
    std::fs::remove_file(&index).unwrap();
    mkfifo(&index);
    ingot(&["inspect", &case.oci(":t")])
        .exited(1)
        .says(&["index.json: not a regular file (a FIFO)"]);
    ingot(&["verify", &case.oci("")])
        .exited(1)
        .says(&["reading index.json: not a regular file (a FIFO)"]);
}

/// A cache whose files (entries, summaries, stat indexes, blobs) have all
/// become FIFOs is a cache that misses: the build reads nothing from it,
/// waits on nothing, and makes the same image.
#[test]
fn issue14_cache_files_that_are_fifos_are_misses() {
    let case = Case::new();
    let cache = case.tmp.path().join("cache");
    let build = |out: &str| {
        let (recipe, out) = (case.recipe(), case.tmp.path().join(out));
        let cache = path(&cache);
        let ran = ingot(&["build", path(&recipe), "-o", path(&out), "--cache", cache]);
        ran.exited(0);
        ran.stdout.trim().to_string()
    };
    let digest = build("first");
    let mut fifos = 0;
    for entry in walkdir::WalkDir::new(&cache) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            std::fs::remove_file(entry.path()).unwrap();
            mkfifo(entry.path());
            fifos += 1;
        }
    }
    assert!(fifos >= 4, "{fifos} cache files");
    assert_eq!(build("second"), digest);
}

/// Paths a user names (a recipe, a docker archive, an allow file) may be
/// symlinks, but a FIFO there is refused at once too.
#[test]
fn issue14_fifos_a_user_names_are_refused_at_once() {
    let case = Case::new();
    let fifo = case.tmp.path().join("fifo");
    mkfifo(&fifo);
    let out = case.out();
    ingot(&["build", path(&fifo), "-o", path(&out)])
        .exited(2)
        .says(&["cannot read recipe: not a regular file (a FIFO)"]);
    let archive = format!("docker-archive:{}", fifo.display());
    ingot(&["inspect", &archive])
        .exited(2)
        .says(&["opening: not a regular file (a FIFO)"]);
    ingot(&["audit", &case.oci(":t"), "--allow", path(&fifo)])
        .exited(2)
        .says(&["not a regular file (a FIFO)"]);

    // A recipe reached through a symlink is read.
    let link = case.tmp.path().join("recipe/link.yaml");
    std::os::unix::fs::symlink("recipe.yaml", &link).unwrap();
    ingot(&["build", path(&link), "-o", path(&out)]).exited(0);
}

// ---------------------------------------------------------------------------
// Size bounds

/// index.json padded with JSON whitespace to `len` bytes: valid JSON.
fn pad_index(case: &Case, len: usize) {
    let path = case.base().join("index.json");
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() < len);
    bytes.resize(len, b' ');
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn issue14_an_index_json_over_4_mib_is_refused_naming_the_limit() {
    let case = Case::new();
    pad_index(&case, 4 << 20);
    ingot(&["inspect", &case.oci(":t")]).exited(0);

    pad_index(&case, (4 << 20) + 1);
    let limit = "index.json: larger than the limit of 4 MiB";
    ingot(&["inspect", &case.oci(":t")])
        .exited(1)
        .says(&[limit]);
    ingot(&["verify", &case.oci("")]).exited(1).says(&[limit]);
    ingot(&["gc", &case.oci("")]).exited(1).says(&[limit]);
    case.build().exited(1).says(&[limit]);
}

// ---------------------------------------------------------------------------
// gc on a broken layout

/// The names in the layout's `blobs/sha256`, sorted.
fn blob_names(layout: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn issue14_gc_removes_nothing_when_a_layer_is_missing() {
    let case = Case::new();
    let garbage = case.garbage();
    let layer = case.layer_digest();
    std::fs::remove_file(case.blob(&layer)).unwrap();
    let before = blob_names(&case.base());
    for args in [
        vec!["gc", &case.oci("")],
        vec!["gc", "--dry-run", &case.oci("")],
    ] {
        ingot(&args).exited(1).says(&[
            &format!("blob {layer}: missing"),
            &format!("layers[0] of manifest {}", case.manifest),
            "nothing removed",
        ]);
    }
    assert_eq!(blob_names(&case.base()), before);
    assert!(garbage.exists());
}

#[test]
fn issue14_gc_removes_nothing_when_the_config_is_corrupt() {
    let case = Case::new();
    let garbage = case.garbage();
    let config = case.config_digest();
    let path = case.blob(&config);
    // The same length, another content: only its digest says so.
    let sound = std::fs::read(&path).unwrap();
    let mut bytes = sound.clone();
    bytes[0] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let before = blob_names(&case.base());
    ingot(&["gc", &case.oci("")]).exited(1).says(&[
        &format!("blob {config}: digest mismatch"),
        &format!("config of manifest {}", case.manifest),
        "nothing removed",
    ]);
    assert_eq!(blob_names(&case.base()), before);
    assert!(garbage.exists());

    // A layer of the wrong size stops it too.
    std::fs::write(&path, sound).unwrap();
    let layer = case.layer_digest();
    let mut longer = std::fs::read(case.blob(&layer)).unwrap();
    longer.push(0);
    std::fs::write(case.blob(&layer), longer).unwrap();
    ingot(&["gc", &case.oci("")])
        .exited(1)
        .says(&[&format!("blob {layer}: size mismatch")]);
    assert!(garbage.exists());
}

/// Every path under `dir` (itself included) with its mtime, size and
/// inode, sorted by path.
fn snapshot(dir: &Path) -> Vec<(PathBuf, SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let mut out: Vec<_> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            (
                e.path().to_path_buf(),
                m.modified().unwrap(),
                m.len(),
                m.ino(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn issue14_gc_dry_run_writes_nothing() {
    let case = Case::new();
    let garbage = case.garbage();
    let garbage_name = garbage.file_name().unwrap().to_string_lossy().into_owned();
    // Times in the past, so that any write would show in a later mtime.
    let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    for (p, ..) in snapshot(&case.base()) {
        std::fs::File::open(&p).unwrap().set_modified(old).unwrap();
    }

    // Without a lock file, and with one (a build has run): neither
    // creates nor touches anything.
    for with_lock in [false, true] {
        if with_lock {
            let lock = case.base().join("index.json.lock");
            std::fs::write(&lock, b"").unwrap();
            std::fs::File::open(&lock)
                .unwrap()
                .set_modified(old)
                .unwrap();
            std::fs::File::open(case.base())
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let before = snapshot(&case.base());
        let ran = ingot(&["gc", "--dry-run", "--json", &case.oci("")]);
        ran.exited(0);
        let report: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
        assert_eq!(
            report["removed"],
            serde_json::json!([format!("sha256:{garbage_name}")]),
            "{report}"
        );
        assert_eq!(
            snapshot(&case.base()),
            before,
            "with lock file: {with_lock}"
        );
    }

    // The real thing removes the garbage, and only it.
    ingot(&["gc", &case.oci("")]).exited(0);
    assert!(!garbage.exists());
    ingot(&["verify", &case.oci("")]).exited(0);
}
