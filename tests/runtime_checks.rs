//! Build-time checks of what runs later (src/pipeline/checks.rs): a
//! runtime config that runc or podman would refuse when the container
//! starts fails the build, with one line naming the recipe field, and a
//! config they accept builds.

mod common;

use std::path::PathBuf;

use common::stderr;

/// A recipe directory holding `files/` for the tests' programs.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("recipe/files")).unwrap();
        Fixture { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("recipe")
    }

    /// Writes `files/NAME`, executable.
    fn program(&self, name: &str, bytes: &[u8]) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.root().join("files").join(name);
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn recipe(&self, name: &str, text: &str) -> PathBuf {
        let path = self.root().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }

    fn builds(&self, text: &str) {
        let recipe = self.recipe("recipe.yaml", text);
        // Each passing case is a new image of the same version: a fresh
        // layout, since a layout never moves a version's tag.
        let _ = std::fs::remove_dir_all(self.out("ok"));
        common::build(&recipe, &self.out("ok"));
    }

    /// Builds, expecting the recipe error contract: exit 2, one error
    /// line naming `recipe.yaml:LINE:`, no output. Returns the line.
    fn fails_at(&self, text: &str, line: usize) -> String {
        let recipe = self.recipe("recipe.yaml", text);
        let out = self.out("bad");
        let output = common::try_build(&recipe, &out);
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "stderr: {err}");
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "one error line: {err}");
        assert!(
            lines[0].contains(&format!("recipe.yaml:{line}:")),
            "should name line {line}: {}",
            lines[0]
        );
        assert!(!out.exists(), "output was created");
        lines[0].to_string()
    }
}

/// A 64-bit little-endian ELF program header table naming `interp` as its
/// PT_INTERP, as a dynamically linked x86-64 program starts (nothing
/// after: the check reads headers only).
fn elf_with_interpreter(interp: &str) -> Vec<u8> {
    let mut f = vec![0u8; 0x40];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2;
    f[5] = 1;
    f[6] = 1;
    f[0x10] = 2; // ET_EXEC
    f[0x12] = 0x3e; // x86-64
    f[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
    f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    f[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
    let at = 0x40u64 + 56;
    let mut ph = vec![0u8; 56];
    ph[..4].copy_from_slice(&3u32.to_le_bytes());
    ph[8..16].copy_from_slice(&at.to_le_bytes());
    ph[32..40].copy_from_slice(&(interp.len() as u64 + 1).to_le_bytes());
    f.extend(ph);
    f.extend(interp.as_bytes());
    f.push(0);
    f
}

const HEAD: &str = "name: app\nversion: '1'\nbase: stemcell:static\n";

/// Lines 4 to 8: one layer copying files/app to /usr/local/bin/app.
fn with_app(config: &str) -> String {
    format!(
        "{HEAD}layers:\n  - name: app\n    steps:\n\
         \x20     - copy: {{ src: files/app, dest: /usr/local/bin/app }}\n\
         config:\n{config}"
    )
}

const LD: &str = "/lib64/ld-linux-x86-64.so.2";

#[test]
fn a_user_or_group_name_must_be_in_the_image() {
    let f = Fixture::new();
    f.program("app", b"\x7fELF static enough");
    let err = f.fails_at(&with_app("  user: app\n"), 9);
    assert!(
        err.contains("config.user") && err.contains("no user \"app\""),
        "{err}"
    );
    let err = f.fails_at(&with_app("  user: \"nonroot:staff\"\n"), 9);
    assert!(err.contains("no group \"staff\""), "{err}");
    // Names the stemcell's accounts hold, and numeric ids with no entry,
    // are what runtimes run.
    f.builds(&with_app("  user: \"nonroot:nobody\"\n"));
    f.builds(&with_app("  user: \"4242:4242\"\n"));
}

#[test]
fn the_entrypoint_must_be_an_executable_file_in_the_image() {
    let f = Fixture::new();
    f.program("app", b"\x7fELF static enough");
    let err = f.fails_at(&with_app("  entrypoint: [/usr/bin/app]\n"), 9);
    assert!(
        err.contains("config.entrypoint: /usr/bin/app does not exist in the image"),
        "{err}"
    );
    let err = f.fails_at(&with_app("  entrypoint: [/etc]\n"), 9);
    assert!(err.contains("is a directory"), "{err}");
    let err = f.fails_at(&with_app("  cmd: [/etc/os-release, -v]\n"), 9);
    assert!(
        err.contains("config.cmd: /etc/os-release is not executable"),
        "{err}"
    );
    // A bare name not in PATH.
    let err = f.fails_at(
        &with_app("  env: { PATH: /usr/bin }\n  entrypoint: [app]\n"),
        10,
    );
    assert!(err.contains("PATH (/usr/bin)"), "{err}");
    // Owner-only execute bits, run as another uid.
    let text = format!(
        "{HEAD}layers:\n  - name: app\n    steps:\n\
         \x20     - copy: {{ src: files/app, dest: /usr/local/bin/app, mode: '0700', owner: '10:10' }}\n\
         config:\n  entrypoint: [/usr/local/bin/app]\n  user: '4242'\n"
    );
    let err = f.fails_at(&text, 9);
    assert!(err.contains("not executable by uid 4242"), "{err}");

    // A bare name through PATH, and a path through symlinks.
    f.builds(&with_app("  entrypoint: [app, --serve]\n  user: '65532'\n"));
    let text = format!(
        "{HEAD}layers:\n  - name: app\n    steps:\n\
         \x20     - copy: {{ src: files/app, dest: /opt/app/bin/app }}\n\
         \x20     - symlink: {{ path: /opt/current, target: app }}\n\
         \x20     - symlink: {{ path: /usr/local/bin/app, target: ../../../opt/current/bin/app }}\n\
         config:\n  cmd: [/usr/local/bin/app]\n"
    );
    f.builds(&text);
}

#[test]
fn an_entrypoint_inherited_from_the_base_is_checked_at_base() {
    let f = Fixture::new();
    f.program("app", b"\x7fELF static enough");
    f.recipe(
        "lower.yaml",
        &with_app("  entrypoint: [/usr/local/bin/app]\n"),
    );
    let upper = "name: upper\nversion: '1'\nbase: recipe:lower.yaml\nlayers:\n\
                 \x20 - name: prune\n    steps:\n\
                 \x20     - remove: { path: /usr/local/bin/app }\n";
    let err = f.fails_at(upper, 3);
    assert!(
        err.contains(
            "config.entrypoint, inherited from the base: /usr/local/bin/app does not exist"
        ),
        "{err}"
    );
    f.builds(&upper.replace("/usr/local/bin/app", "/etc/os-release"));
}

#[test]
fn a_programs_interpreter_must_be_in_the_image() {
    let f = Fixture::new();
    f.program("app", &elf_with_interpreter(LD));
    f.program("loader", b"\x7fELF the loader itself");
    f.program("tool.sh", b"#!/bin/sh\necho hi\n");
    let err = f.fails_at(&with_app("  entrypoint: [/usr/local/bin/app]\n"), 9);
    assert!(
        err.contains(&format!(
            "config.entrypoint: /usr/local/bin/app needs the interpreter {LD}, which does not exist in the image"
        )),
        "{err}"
    );
    // A script's #! line is read the same way.
    let script = format!(
        "{HEAD}layers:\n  - name: app\n    steps:\n\
         \x20     - copy: {{ src: files/tool.sh, dest: /usr/local/bin/tool }}\n\
         config:\n  entrypoint: [tool]\n"
    );
    let err = f.fails_at(&script, 9);
    assert!(
        err.contains("tool (found as /usr/local/bin/tool) needs the interpreter /bin/sh"),
        "{err}"
    );

    // With the loader there (through merged /usr's symlink), it runs.
    let text = format!(
        "{HEAD}layers:\n  - name: app\n    steps:\n\
         \x20     - copy: {{ src: files/app, dest: /usr/local/bin/app }}\n\
         \x20     - copy: {{ src: files/loader, dest: /usr/lib64/ld-linux-x86-64.so.2 }}\n\
         \x20     - symlink: {{ path: /lib64, target: usr/lib64 }}\n\
         config:\n  entrypoint: [/usr/local/bin/app]\n"
    );
    f.builds(&text);
    // A loader that is a script for a missing shell is followed too.
    std::fs::write(f.root().join("files/loader"), b"#!/bin/sh\n").unwrap();
    let err = f.fails_at(&text, 11);
    assert!(
        err.contains(&format!(
            "needs the interpreter /bin/sh (through /usr/local/bin/app -> {LD})"
        )),
        "{err}"
    );
}

#[test]
fn stop_signal_must_be_a_signal() {
    let f = Fixture::new();
    f.program("app", b"x");
    for bad in ["SIGFOO", "0", "65", "TERM!"] {
        let err = f.fails_at(&with_app(&format!("  stop_signal: '{bad}'\n")), 9);
        assert!(
            err.contains("config.stop_signal") && err.contains(bad),
            "{err}"
        );
    }
    for good in ["SIGTERM", "term", "15", "SIGRTMIN+3", "QUIT"] {
        f.builds(&with_app(&format!("  stop_signal: '{good}'\n")));
    }
}

#[test]
fn workdir_must_be_a_directory_when_it_exists() {
    let f = Fixture::new();
    f.program("app", b"x");
    let err = f.fails_at(&with_app("  workdir: /etc/os-release\n"), 9);
    assert!(
        err.contains("config.workdir: \"/etc/os-release\" is a file in the image"),
        "{err}"
    );
    let err = f.fails_at(&with_app("  workdir: /etc/os-release/sub\n"), 9);
    assert!(err.contains("not a directory"), "{err}");
    let err = f.fails_at(&with_app("  workdir: srv\n"), 9);
    assert!(err.contains("absolute"), "{err}");
    // A missing workdir is created by runtimes; a directory is fine.
    f.builds(&with_app("  workdir: /srv/missing\n"));
    f.builds(&with_app("  workdir: /etc\n"));
}

/// The shipped examples pass the checks (everything's user and workdir
/// among them).
#[test]
fn shipped_recipes_pass() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["hello", "everything"] {
        common::build(&common::example(name), &tmp.path().join(name));
    }
}
