//! Every recipe and command README.md shows is run here, so the README
//! cannot say what ingot does not do. Each fenced block in it follows a
//! directive, an HTML comment the rendered page hides:
//!
//! - `<!-- readme: file PATH -->`: the block is the repository's file PATH,
//!   byte for byte (the shipped recipes, values files);
//! - `<!-- readme: excerpt PATH -->`: its lines, indentation removed, are
//!   lines of PATH in a row;
//! - `<!-- readme: recipe DIR (...) -->`: a recipe written to DIR/recipe.yaml
//!   in the workspace and built there (the test gives it the inputs the
//!   directive names);
//! - `<!-- readme: run (...) -->`: each command, in order, in one workspace,
//!   must exit 0, or N where its comment says `exits N`;
//! - `<!-- readme: skip REASON -->`: not run, for the reason it gives.
//!
//! A block without a directive fails the test.
//!
//! The workspace is the world the commands assume: a git checkout of
//! `recipes/` whose user can commit, with `out/hello`, `out/web` and `out/app` built, `hello.tar`
//! exported and `team/hello:1.2.0` and `team/app:2.0.0` pushed to a registry before the first
//! command runs. Within it, what a test cannot reach is replaced by what it
//! can, and nothing else:
//!
//! - `registry.example.com` and `reg.lan:5000` are a local `docker-registry`;
//! - `recipes/web` installs from a local archive of real Debian packages
//!   signed by a test key (`tests/common/archive.rs`) instead of
//!   `stemcell:debian12`'s snapshot archive: its `base` line becomes a
//!   `recipe:` base holding that archive and the stemcell's accounts, and
//!   it is locked against it (the repository's `recipes/web` is checked by
//!   `ingot validate --locked` as shipped);
//! - `cargo run --release --` and `target/*/ingot` are the `ingot` under
//!   test; `podman` keeps its storage, `runc` its state and `sudo` nothing
//!   (the tests run as root, or runc could not run) in the workspace;
//! - `sha256:…` is the digest of `out/hello:1.2.0`, `[--optional flags]`
//!   are left out, `/etc/bash_completion.d/` is in the workspace.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::archive::{Archive, ArchiveOptions};
use common::registry::{Registry, path_with, script};
use common::{AARCH64, X86_64, copy_tree, elf_header, repo, require, run, stderr, stdout};

/// One fenced block of README.md and the directive before it.
#[derive(Debug)]
struct Block {
    /// README.md's line of the opening fence, for messages.
    line: usize,
    directive: Directive,
    /// The block's text, the fence's indentation removed.
    text: String,
}

#[derive(Debug, PartialEq)]
enum Directive {
    File(String),
    Excerpt(String),
    Recipe(String),
    Run,
    Skip,
}

fn readme() -> String {
    fs::read_to_string(repo().join("README.md")).expect("README.md")
}

/// The directive in `comment` (a whole line), if it is one.
fn directive(comment: &str) -> Option<Result<Directive, String>> {
    let body = comment
        .trim()
        .strip_prefix("<!-- readme:")?
        .strip_suffix("-->")?
        .trim();
    let (word, rest) = body.split_once(' ').unwrap_or((body, ""));
    let arg = rest.split_whitespace().next().unwrap_or("").to_string();
    Some(match word {
        "file" if !arg.is_empty() => Ok(Directive::File(arg)),
        "excerpt" if !arg.is_empty() => Ok(Directive::Excerpt(arg)),
        "recipe" if !arg.is_empty() => Ok(Directive::Recipe(arg)),
        "run" => Ok(Directive::Run),
        "skip" if !rest.trim().is_empty() => Ok(Directive::Skip),
        _ => Err(format!("unknown or incomplete directive {body:?}")),
    })
}

/// Every fenced block of `text`, each with its directive; the problems
/// (a block without one, a bad directive, an unclosed fence) otherwise.
fn blocks(text: &str) -> Result<Vec<Block>, Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let (mut blocks, mut problems) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        if !line.trim_start().starts_with("```") {
            i += 1;
            continue;
        }
        let fence = format!("{}```", &line[..indent]);
        let Some(close) = (i + 1..lines.len()).find(|&j| lines[j] == fence) else {
            problems.push(format!("README.md:{}: a fence that is never closed", i + 1));
            break;
        };
        let body: String = lines[i + 1..close]
            .iter()
            .map(|l| format!("{}\n", l.get(indent..).unwrap_or("")))
            .collect();
        let before = lines[..i].iter().rev().find(|l| !l.trim().is_empty());
        match before.and_then(|l| directive(l)) {
            Some(Ok(directive)) => blocks.push(Block {
                line: i + 1,
                directive,
                text: body,
            }),
            Some(Err(e)) => problems.push(format!("README.md:{}: {e}", i + 1)),
            None => problems.push(format!(
                "README.md:{}: a block without a `<!-- readme: ... -->` directive",
                i + 1
            )),
        }
        i = close + 1;
    }
    if problems.is_empty() {
        Ok(blocks)
    } else {
        Err(problems)
    }
}

/// The commands of a shell block: continuation lines joined, blank and
/// comment-only lines left out.
fn commands(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// The exit code `command` must end with: N where its comment says
/// `exits N`, else 0.
fn expected_exit(command: &str) -> i32 {
    command
        .split_once(" # ")
        .and_then(|(_, comment)| comment.split_once("exits "))
        .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `command` with ` [--optional flags]` left out.
fn without_optional(command: &str) -> String {
    let mut out = String::new();
    let mut rest = command;
    while let Some(at) = rest.find(" [--") {
        out.push_str(&rest[..at]);
        match rest[at..].find(']') {
            Some(end) => rest = &rest[at + end + 1..],
            None => {
                rest = &rest[at..];
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn every_block_has_a_directive_and_every_file_block_is_the_file() {
    let blocks = blocks(&readme()).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    assert!(blocks.len() > 20, "README.md has {} blocks", blocks.len());
    for block in &blocks {
        match &block.directive {
            Directive::File(path) => {
                let file = fs::read_to_string(repo().join(path))
                    .unwrap_or_else(|e| panic!("README.md:{}: {path}: {e}", block.line));
                assert_eq!(
                    block.text, file,
                    "README.md:{}: the block is not {path} as it is",
                    block.line
                );
            }
            Directive::Excerpt(path) => {
                let file = fs::read_to_string(repo().join(path))
                    .unwrap_or_else(|e| panic!("README.md:{}: {path}: {e}", block.line));
                let lines: Vec<&str> = block.text.lines().collect();
                let held: Vec<&str> = file.lines().collect();
                assert!(
                    held.windows(lines.len()).any(|w| w == lines.as_slice()),
                    "README.md:{}: the block is not lines of {path}",
                    block.line
                );
            }
            _ => {}
        }
    }
}

#[test]
fn blocks_are_read_with_their_directives() {
    let text = "a\n<!-- readme: run -->\n```sh\nx \\\n  --y\n# c\n\nz [--w 1]\n```\n\n  <!-- readme: file r.yaml -->\n  ```yaml\n  k: v\n  ```\n";
    let read = blocks(text).unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].directive, Directive::Run);
    assert_eq!(commands(&read[0].text), ["x --y", "z [--w 1]"]);
    assert_eq!(without_optional("z [--w 1] v"), "z v");
    assert_eq!(expected_exit("a b  # differ: exits 1"), 1);
    assert_eq!(expected_exit("a b  # exits"), 0);
    assert_eq!(expected_exit("a --exits 3"), 0);
    assert_eq!(read[1].directive, Directive::File("r.yaml".into()));
    assert_eq!(read[1].text, "k: v\n");
    let missing = blocks("x\n```sh\ny\n```\n").unwrap_err();
    assert!(
        missing[0].contains("README.md:2: a block without"),
        "{missing:?}"
    );
    assert!(blocks("<!-- readme: skip -->\n```\n```\n").is_err());
}

/// The shipped recipes, with their shipped locks, check as CI would check
/// them (no network: `validate` reads none).
#[test]
fn the_shipped_recipes_validate_locked() {
    let recipes: Vec<PathBuf> = fs::read_dir(repo().join("recipes"))
        .unwrap()
        .map(|e| e.unwrap().path().join("recipe.yaml"))
        .collect();
    assert!(recipes.len() >= 3, "{recipes:?}");
    let out = run(common::ingot()
        .arg("validate")
        .args(&recipes)
        .arg("--locked"));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

/// The workspace the README's commands run in, and what it needs alive.
struct Workspace {
    dir: tempfile::TempDir,
    registry: Registry,
    _archive: Archive,
    hello_digest: String,
}

impl Workspace {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `ingot` as the README's commands get it.
    fn ingot(&self) -> Command {
        let mut cmd = Command::new(self.root().join("bin/ingot"));
        self.environment(&mut cmd);
        cmd
    }

    fn environment(&self, cmd: &mut Command) {
        let root = self.root();
        cmd.current_dir(root)
            .env("PATH", path_with(&root.join("bin")))
            .env("HOME", root.join("home"))
            .env("XDG_CACHE_HOME", root.join("cache"))
            .env("XDG_CONFIG_HOME", root.join("home/.config"))
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("DOCKER_CONFIG")
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("INGOT_MIRROR");
    }

    /// `command` as the README writes it, made to run here.
    fn adapt(&self, command: &str) -> String {
        let host = self.registry.host();
        let completions = self.root().join("etc/bash_completion.d/");
        without_optional(command)
            .replace("cargo run --release -- ", "ingot ")
            .replace("registry.example.com", &host)
            .replace("reg.lan:5000", &host)
            .replace("sha256:…", &self.hello_digest)
            .replace(
                "/etc/bash_completion.d/",
                &completions.display().to_string(),
            )
    }

    fn sh(&self, command: &str) -> Output {
        let mut cmd = Command::new("bash");
        cmd.args(["-euo", "pipefail", "-c", command]);
        self.environment(&mut cmd);
        run(&mut cmd)
    }
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The Debian root `recipes/web` is built on in the workspace: merged /usr,
/// base-passwd's accounts and the stemcell's nonroot user, and the local
/// archive as the one its `packages` steps inherit.
fn debian_root(dir: &Path, archive: &Archive) {
    fs::create_dir_all(dir).unwrap();
    fs::copy(archive.keyring(), dir.join("archive.gpg")).unwrap();
    let recipe = format!(
        "name: debian-test-root\nversion: 1.0.0\nbase: scratch\n\
         {}\x20 - name: base\n    steps:\n\
         \x20     - packages: {{ install: [base-passwd] }}\n\
         \x20     - group: {{ name: nonroot, gid: 65532 }}\n\
         \x20     - user: {{ name: nonroot, uid: 65532, gid: 65532, home: /home/nonroot }}\n",
        common::archive::archive_and_merged_usr(&archive.url())
    );
    fs::write(dir.join("recipe.yaml"), recipe).unwrap();
}

/// Inputs a `recipe DIR` block gets: what the directive says it needs.
fn recipe_inputs(dir: &Path, name: &str) {
    match name {
        "app" => {
            for (arch, machine) in [("amd64", X86_64), ("arm64", AARCH64)] {
                let bin = dir.join("bin").join(arch);
                fs::create_dir_all(&bin).unwrap();
                fs::write(bin.join("app"), elf_header(machine)).unwrap();
            }
        }
        other => panic!("README recipe {other}: the test has no inputs for it"),
    }
}

/// The workspace, its tools and everything built that the commands expect.
fn workspace(blocks: &[Block]) -> Workspace {
    for tool in ["git", "skopeo", "podman", "runc", "bash"] {
        require(tool);
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let archive = Archive::new(
        &common::debian::debs(common::debian::PYTHON_ARCHIVE),
        ArchiveOptions::default(),
    );
    let registry = Registry::start();

    // Tools, as the commands name them.
    let bin = root.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let ingot = PathBuf::from(env!("CARGO_BIN_EXE_ingot"));
    std::os::unix::fs::symlink(&ingot, bin.join("ingot")).unwrap();
    for build in ["release", "debug"] {
        fs::create_dir_all(root.join("target").join(build)).unwrap();
        std::os::unix::fs::symlink(&ingot, root.join("target").join(build).join("ingot")).unwrap();
    }
    let podman = root.join("podman");
    script(
        &bin.join("podman"),
        &format!(
            "exec /usr/bin/podman --storage-driver=vfs --root {0}/root --runroot {0}/run \
             --tmpdir {0}/tmp --cgroup-manager=cgroupfs --events-backend=file \"$@\"\n",
            podman.display()
        ),
    );
    script(
        &bin.join("runc"),
        &format!(
            "exec /usr/sbin/runc --root {} \"$@\"\n",
            root.join("runc").display()
        ),
    );
    script(&bin.join("sudo"), "exec \"$@\"\n");
    for d in ["home", "etc/bash_completion.d"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }

    // The recipes: the shipped ones, web on the local archive, and the
    // README's own.
    copy_tree(&repo().join("recipes"), &root.join("recipes"));
    debian_root(&root.join("debian"), &archive);
    let web = root.join("recipes/web/recipe.yaml");
    let text = fs::read_to_string(&web).unwrap();
    let based: Vec<String> = text
        .lines()
        .map(|l| match l.starts_with("base: stemcell:debian12") {
            true => "base: recipe:../../debian/recipe.yaml".to_string(),
            false => l.to_string(),
        })
        .collect();
    assert_ne!(
        based.join("\n") + "\n",
        text,
        "recipes/web names stemcell:debian12"
    );
    fs::write(&web, based.join("\n") + "\n").unwrap();
    let mut ws = Workspace {
        dir,
        registry,
        _archive: archive,
        hello_digest: String::new(),
    };
    ok(
        run(ws.ingot().args(["lock", "recipes/web"])),
        "lock recipes/web",
    );
    for block in blocks {
        if let Directive::Recipe(name) = &block.directive {
            let dir = ws.root().join(name);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join("recipe.yaml"), &block.text).unwrap();
            recipe_inputs(&dir, name);
            ok(
                run(ws
                    .ingot()
                    .args(["build", name, "-o"])
                    .arg(format!("out/{name}"))),
                &format!("README.md:{}: build {name}", block.line),
            );
        }
    }

    // What the commands expect to find.
    ws.hello_digest = ok(
        run(ws
            .ingot()
            .args(["build", "recipes/hello", "-o", "out/hello"])),
        "build hello",
    )
    .trim()
    .to_string();
    ok(
        run(ws
            .ingot()
            .args(["build", "--locked", "recipes/web", "-o", "out/web"])),
        "build web",
    );
    ok(
        run(ws.ingot().args([
            "export",
            "oci:out/hello:1.2.0",
            "--format",
            "docker-archive",
            "-o",
            "hello.tar",
        ])),
        "export hello",
    );
    for (image, repo) in [
        ("oci:out/hello:1.2.0", "team/hello"),
        ("oci:out/app:2.0.0", "team/app"),
    ] {
        ok(
            run(ws
                .ingot()
                .args(["push", image])
                .arg(ws.registry.reference(repo))),
            &format!("push {image}"),
        );
    }
    // A checkout whose user can commit, as a developer's can.
    for git in [
        &["init", "-q"][..],
        &["config", "user.name", "t"],
        &["config", "user.email", "t@ingot.invalid"],
        &["add", "-A"],
        &["commit", "-qm", "recipes"],
    ] {
        ok(
            run(Command::new("git").args(git).current_dir(ws.root())),
            "git",
        );
    }
    ws
}

/// What some commands must print, beyond exiting 0: the runnable example
/// runs and says what its param is bound to.
const EXPECTED: &[(&str, &str)] = &[
    ("--bundle web-bundle web", "hello from web\n"),
    ("--bundle bundle web", "hi from web\n"),
];

#[test]
fn every_command_runs() {
    let blocks = blocks(&readme()).unwrap_or_else(|p| panic!("{}", p.join("\n")));
    let ws = workspace(&blocks);
    let mut ran = 0;
    let mut expected: Vec<&str> = EXPECTED.iter().map(|(c, _)| *c).collect();
    for block in blocks.iter().filter(|b| b.directive == Directive::Run) {
        for command in commands(&block.text) {
            let adapted = ws.adapt(&command);
            let out = ws.sh(&adapted);
            assert!(
                out.status.code() == Some(expected_exit(&command)),
                "README.md:{}: `{command}` (run as `{adapted}`) exited {:?}:\n{}\n{}",
                block.line,
                out.status.code(),
                stdout(&out),
                stderr(&out)
            );
            for (needle, says) in EXPECTED.iter().filter(|(c, _)| command.contains(c)) {
                assert!(
                    stdout(&out).ends_with(says),
                    "README.md:{}: `{command}` printed {:?}, not ending {says:?}",
                    block.line,
                    stdout(&out)
                );
                expected.retain(|c| c != needle);
            }
            ran += 1;
        }
    }
    assert!(ran >= 30, "only {ran} commands ran");
    assert!(expected.is_empty(), "no README command has {expected:?}");
}
