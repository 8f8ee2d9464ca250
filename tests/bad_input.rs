//! Bad input gets one clear line naming the file and position, exit code 2,
//! and leaves no output behind (design.md, "A recipe" and "Output").

mod common;

use std::path::{Path, PathBuf};

use common::{ingot, run, stderr};

/// A recipe directory in a temp dir, with `files/` holding a few inputs.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(recipe: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recipe");
        std::fs::create_dir_all(root.join("files/tree")).unwrap();
        std::fs::write(root.join("files/a.txt"), "a\n").unwrap();
        std::fs::write(root.join("files/tree/b.txt"), "b\n").unwrap();
        std::fs::write(root.join("recipe.yaml"), recipe).unwrap();
        Fixture { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("recipe")
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out/image")
    }

    /// Builds and checks the failure contract; returns the error line.
    fn fails_at(&self, line: usize) -> String {
        let output = common::try_build(self.root().join("recipe.yaml"), self.out());
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "stderr: {err}");
        assert!(output.stdout.is_empty(), "stdout: {:?}", output.stdout);
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
        let line_text = lines[0];
        let position = format!("recipe.yaml:{line}:");
        assert!(
            line_text.contains(&position),
            "error should name {position}: {line_text}"
        );
        assert!(!self.out().exists(), "output was created");
        assert!(
            !self.dir.path().join("out").exists(),
            "output parent was created"
        );
        assert_no_staging(self.dir.path());
        line_text.to_string()
    }
}

/// No staging directory may survive a failed build.
fn assert_no_staging(dir: &Path) {
    for entry in walkdir::WalkDir::new(dir) {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy();
        assert!(
            !name.starts_with(".ingot-staging"),
            "left behind: {}",
            entry.path().display()
        );
    }
}

const HEAD: &str = "name: bad\nversion: '1'\nbase: stemcell:static\n";

fn with_steps(steps: &str) -> String {
    format!("{HEAD}layers:\n  - name: l\n    steps:\n{steps}")
}

#[test]
fn unknown_field() {
    let err = Fixture::new(&format!("{HEAD}colour: blue\n")).fails_at(4);
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn unknown_field_in_a_step() {
    let f = Fixture::new(&with_steps(
        "      - file: { dest: /x, content: x, mdoe: '0644' }\n",
    ));
    let err = f.fails_at(7);
    assert!(err.contains("mdoe"), "{err}");
}

#[test]
fn wrong_type() {
    let f = Fixture::new(&with_steps("      - user: { name: app, uid: lots }\n"));
    let err = f.fails_at(7);
    assert!(
        err.contains("invalid type") || err.contains("invalid value"),
        "{err}"
    );
}

#[test]
fn mode_that_is_not_octal() {
    let f = Fixture::new(&with_steps("      - mkdir: { path: /x, mode: \"0985\" }\n"));
    let err = f.fails_at(7);
    assert!(err.contains("octal"), "{err}");
}

#[test]
fn owner_by_name_is_refused() {
    let f = Fixture::new(&with_steps(
        "      - mkdir: { path: /x, owner: \"root:root\" }\n",
    ));
    let err = f.fails_at(7);
    assert!(err.contains("numeric"), "{err}");
}

#[test]
fn missing_src() {
    let f = Fixture::new(&with_steps("      - copy: { src: files/nope, dest: /x }\n"));
    let err = f.fails_at(7);
    assert!(
        err.contains("files/nope") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn src_escaping_with_dotdot() {
    let f = Fixture::new(&with_steps(
        "      - copy: { src: ../recipe/../.., dest: /x }\n",
    ));
    let err = f.fails_at(7);
    assert!(err.contains("outside the recipe"), "{err}");
}

#[test]
fn src_absolute() {
    let f = Fixture::new(&with_steps(
        "      - copy: { src: /etc/hostname, dest: /x }\n",
    ));
    let err = f.fails_at(7);
    assert!(err.contains("relative"), "{err}");
}

#[test]
fn src_escaping_through_a_symlink() {
    let f = Fixture::new(&with_steps("      - copy: { src: files/out, dest: /x }\n"));
    std::os::unix::fs::symlink(f.dir.path(), f.root().join("files/out")).unwrap();
    let err = f.fails_at(7);
    assert!(err.contains("outside the recipe"), "{err}");
}

#[test]
fn template_src_escaping_through_a_symlink() {
    let f = Fixture::new(&with_steps(
        "      - template: { src: files/t, dest: /x }\n",
    ));
    std::fs::write(f.dir.path().join("secret"), "{{ 1 }}").unwrap();
    std::os::unix::fs::symlink(f.dir.path().join("secret"), f.root().join("files/t")).unwrap();
    f.fails_at(7);
}

#[test]
fn dest_with_dotdot() {
    let f = Fixture::new(&with_steps(
        "      - copy: { src: files/a.txt, dest: /etc/../x }\n",
    ));
    let err = f.fails_at(7);
    assert!(err.contains(".."), "{err}");
}

#[test]
fn relative_dest() {
    let f = Fixture::new(&with_steps("      - file: { dest: etc/x, content: x }\n"));
    let err = f.fails_at(7);
    assert!(err.contains("absolute"), "{err}");
}

#[test]
fn template_error_names_the_template_and_its_line() {
    let f = Fixture::new(&with_steps(
        "      - file: { dest: /ok, content: ok }\n      - template: { src: files/t.tera, dest: /x }\n",
    ));
    std::fs::write(f.root().join("files/t.tera"), "fine\n{{ vars.missing }}\n").unwrap();
    let err = f.fails_at(8);
    assert!(
        err.contains("files/t.tera") && err.contains("missing"),
        "{err}"
    );

    std::fs::write(f.root().join("files/t.tera"), "fine\n{% if %}\n").unwrap();
    let err = f.fails_at(8);
    assert!(
        err.contains("files/t.tera") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn template_cannot_read_the_environment() {
    let f = Fixture::new(&with_steps(
        "      - template: { src: files/t.tera, dest: /x }\n",
    ));
    std::fs::write(f.root().join("files/t.tera"), "{{ get_env(name='HOME') }}").unwrap();
    let err = f.fails_at(7);
    assert!(err.contains("not available"), "{err}");
}

#[test]
fn remove_of_a_missing_path() {
    let f = Fixture::new(&with_steps("      - remove: { path: /etc/nope }\n"));
    let err = f.fails_at(7);
    assert!(
        err.contains("/etc/nope") && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn conflicting_user_ids() {
    // nonroot has uid 65532 in the static stemcell.
    let f = Fixture::new(&with_steps(
        "      - user: { name: intruder, uid: 65532 }\n",
    ));
    let err = f.fails_at(7);
    assert!(
        err.contains("conflicts") && err.contains("nonroot"),
        "{err}"
    );
}

#[test]
fn unknown_stemcell() {
    let f = Fixture::new("name: bad\nversion: '1'\nbase: stemcell:nope\n");
    let err = f.fails_at(3);
    assert!(
        err.contains("unknown stemcell") && err.contains("static@"),
        "{err}"
    );
}

#[test]
fn unknown_stemcell_version() {
    let f = Fixture::new("name: bad\nversion: '1'\nbase: stemcell:static@9.9.9\n");
    f.fails_at(3);
}

#[test]
fn socket_in_a_copy_source() {
    let f = Fixture::new(&with_steps("      - copy: { src: files/tree, dest: /x }\n"));
    let _listener =
        std::os::unix::net::UnixListener::bind(f.root().join("files/tree/sock")).unwrap();
    let err = f.fails_at(7);
    assert!(
        err.contains("socket") && err.contains("files/tree/sock"),
        "{err}"
    );
}

#[test]
fn device_node_in_a_copy_source() {
    let f = Fixture::new(&with_steps("      - copy: { src: files/tree, dest: /x }\n"));
    let node = f.root().join("files/tree/null");
    let made = std::process::Command::new("mknod")
        .arg(&node)
        .args(["c", "1", "3"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !made {
        // mknod needs root (CI runs as root); a fifo is the same class of
        // special file and needs no privilege.
        let status = std::process::Command::new("mkfifo")
            .arg(&node)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let err = f.fails_at(7);
    assert!(err.contains("files/tree/null"), "{err}");
}

#[test]
fn a_file_where_a_directory_is_needed() {
    let f = Fixture::new(&with_steps(
        "      - file: { dest: /etc/motd, content: x }\n      - file: { dest: /etc/motd/x, content: y }\n",
    ));
    let err = f.fails_at(8);
    assert!(err.contains("not a directory"), "{err}");
}

/// A recipe that cannot be read is named without a position: there is
/// none in a file that was never read.
#[test]
fn missing_recipe_file() {
    let dir = tempfile::tempdir().unwrap();
    let nope = dir.path().join("nope.yaml");
    for command in ["build", "lock"] {
        let output = run(ingot().arg(command).arg(&nope));
        assert_eq!(output.status.code(), Some(2), "{command}");
        let err = stderr(&output);
        assert!(
            err.starts_with(&format!("error: {}: cannot read recipe: ", nope.display())),
            "{command}: {err}"
        );
        assert!(!err.contains(":1:1"), "{command}: a fake position: {err}");
    }
}

/// An unreadable recipe (here a FIFO, which root cannot read as a file
/// either, and which is refused without waiting on it) gets the same: its
/// name, no position.
#[test]
fn unreadable_recipe_file() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("recipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&recipe)
        .status()
        .unwrap();
    assert!(made.success());
    let output = run(ingot()
        .arg("build")
        .arg(&recipe)
        .arg("-o")
        .arg(dir.path().join("out")));
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert_eq!(
        err.trim_end(),
        format!(
            "error: {}: cannot read recipe: not a regular file (a FIFO)",
            recipe.display()
        ),
        "{err}"
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn failed_rebuild_leaves_the_old_layout_intact() {
    let f = Fixture::new(&with_steps("      - file: { dest: /x, content: x }\n"));
    let digest = common::build(&f.root().join("recipe.yaml"), &f.out());
    let index = std::fs::read(f.out().join("index.json")).unwrap();
    std::fs::write(
        f.root().join("recipe.yaml"),
        with_steps("      - remove: { path: /nope }\n"),
    )
    .unwrap();
    let output = common::try_build(f.root().join("recipe.yaml"), f.out());
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(std::fs::read(f.out().join("index.json")).unwrap(), index);
    assert_no_staging(f.dir.path());
    let inspect = run(ingot()
        .arg("inspect")
        .arg(format!("oci:{}:1", f.out().display())));
    assert!(common::stdout(&inspect).contains(&digest));
}

/// `-o` below a file: said before anything is built, in the user's words.
#[test]
fn an_output_below_a_file_is_refused_up_front() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("afile"), "x").unwrap();
    let out = run(ingot()
        .args(["build", "-q"])
        .arg(common::repo().join("recipes/hello/recipe.yaml"))
        .arg("-o")
        .arg(dir.path().join("afile/sub")));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("afile is a file, not a directory"),
        "{}",
        stderr(&out)
    );
    assert_no_staging(dir.path());
}

/// A file that is no tar at all, given as a docker-archive: named for what
/// it is, and none of its bytes printed.
#[test]
fn a_garbage_docker_archive_is_named_not_printed() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.tar");
    let bytes: Vec<u8> = (0u32..3000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, &bytes).unwrap();
    let out = run(ingot()
        .arg("inspect")
        .arg(format!("docker-archive:{}", garbage.display())));
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("not a tar archive"), "{err}");
    assert!(
        err.chars().all(|c| !c.is_control() || c == '\n') && !err.contains('\u{fffd}'),
        "{err:?}"
    );
}
