//! Build-time checks of what runs later: the runtime config, merged onto
//! the base's, read against the finished image as runc and podman read it
//! when a container starts. A value that would fail there fails the build,
//! at the recipe field that set it (or at `base`, for one it inherits).
//!
//! - `user`: a user or group *name* must be in the image's `/etc/passwd`
//!   or `/etc/group`; numeric ids need no entry (runtimes run them as
//!   given, a uid without one with gid 0).
//! - The program (`entrypoint[0]`, else `cmd[0]`): found as runtimes find
//!   it (an absolute path; a relative one from the workdir; a bare name
//!   through the config's `PATH`, else the runtimes' default), symlinks
//!   followed inside the image; it must be a regular file the user may
//!   execute (root: any execute bit). Its interpreter, the ELF
//!   `PT_INTERP` or a script's `#!`, must be there and executable too,
//!   and so on down the chain (at most [`MAX_INTERPRETERS`] deep, as the
//!   kernel allows).
//! - `stop_signal`: a signal name (`SIGTERM`, `TERM`, any case, real-time
//!   `SIGRTMIN+3`) or number (1 to 64).
//! - `workdir`: absolute; when it exists, a directory. A missing one is
//!   fine: runc, crun and podman create it when the container starts.
//! - `volumes`: each, when it exists, a directory (a missing one is
//!   created for the mount).

use oci_spec::image::Config;

use crate::recipe::{Recipe, RecipeError};
use crate::rootfs::meta::ImagePath;
use crate::rootfs::{Node, NodeKind, View, accounts};
use crate::seal::{Found, Scan};

/// The `PATH` runtimes search when the config sets none (Docker, podman
/// and containerd's default).
/// The version of what these checks accept: a build's cached verdict
/// ([`super::verdict_key`]) counts only for the same. Raise it with any
/// change to what passes.
pub const VERSION: u32 = 1;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How many interpreters deep a program is followed: Linux gives up after
/// five `execve` rewrites (binfmt's recursion limit).
pub const MAX_INTERPRETERS: usize = 4;

/// Linux's signal names, without `SIG`, as runtimes parse them
/// (`moby/sys/signal`, `containers/common`); the real-time ones are
/// `RTMIN`, `RTMIN+N` and `RTMAX-N`.
const SIGNALS: [&str; 36] = [
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL",
    "PIPE", "POLL", "PROF", "PWR", "QUIT", "RTMAX", "RTMIN", "SEGV", "STKFLT", "STOP", "SYS",
    "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
    "XFSZ",
];

/// What the checks read.
pub struct Inputs<'a> {
    pub recipe: &'a Recipe,
    /// The finished image's filesystem.
    pub view: &'a View,
    /// What the content scan found, interpreters among it.
    pub scan: &'a Scan,
    /// The runtime config, merged onto the base's.
    pub config: &'a Config,
}

/// Runs every check; the first that fails is the error.
pub fn check(inputs: &Inputs) -> Result<(), RecipeError> {
    let user = check_user(inputs)?;
    check_workdir(inputs)?;
    check_volumes(inputs)?;
    check_stop_signal(inputs)?;
    check_program(inputs, user)
}

/// Where an error about config field `field` points: the field, when the
/// recipe sets it, else `base`, whose config it came from.
fn at(
    inputs: &Inputs,
    field: &str,
    set: bool,
    index: Option<usize>,
    message: String,
) -> RecipeError {
    let recipe = inputs.recipe;
    if set {
        let index = index.map(|i| i.to_string());
        let mut path = vec!["config", field];
        path.extend(index.as_deref());
        recipe.error_at(&path, format!("config.{field}: {message}"))
    } else {
        recipe.error_at(
            &["base"],
            format!("config.{field}, inherited from the base: {message}"),
        )
    }
}

/// The account files of the image, as text ("" when absent).
fn account_file(view: &View, name: &str) -> String {
    let path = ImagePath::root().join_rel(name);
    String::from_utf8_lossy(view.content(&path).unwrap_or_default()).into_owned()
}

/// Who the program runs as.
struct RunAs {
    uid: u32,
    /// The primary group and the supplementary ones `/etc/group` lists
    /// the user in.
    gids: Vec<u32>,
}

fn check_user(inputs: &Inputs) -> Result<RunAs, RecipeError> {
    let user = inputs.config.user().clone().unwrap_or_default();
    let passwd = account_file(inputs.view, "etc/passwd");
    let group = account_file(inputs.view, "etc/group");
    let (uid, gid) = accounts::resolve_user(&user, &passwd, &group).map_err(|m| {
        let set = inputs.recipe.spec.config.user.is_some();
        at(
            inputs,
            "user",
            set,
            None,
            format!("{user:?}: {m} (numeric ids need no entry)"),
        )
    })?;
    // The user's name, for the groups that list it as a member.
    let name = user.split(':').next().unwrap_or_default();
    let name = if name.parse::<u32>().is_ok() || name.is_empty() {
        passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && f[2] == uid.to_string())
            .map(|f| f[0].to_string())
            .unwrap_or_default()
    } else {
        name.to_string()
    };
    let mut gids = vec![gid];
    if !name.is_empty() && !user.contains(':') {
        for fields in group.lines().map(|l| l.split(':').collect::<Vec<_>>()) {
            if fields.len() >= 4
                && fields[3].split(',').any(|m| m == name)
                && let Ok(g) = fields[2].parse()
            {
                gids.push(g);
            }
        }
    }
    Ok(RunAs { uid, gids })
}

fn check_workdir(inputs: &Inputs) -> Result<(), RecipeError> {
    let Some(workdir) = inputs
        .config
        .working_dir()
        .clone()
        .filter(|w| !w.is_empty())
    else {
        return Ok(());
    };
    let set = inputs.recipe.spec.config.workdir.is_some();
    let fail = |m: String| at(inputs, "workdir", set, None, format!("{workdir:?} {m}"));
    if !workdir.starts_with('/') {
        return Err(fail(
            "is not an absolute path, which runtimes require".into(),
        ));
    }
    // `..` and other spellings runtimes clean themselves are left to them.
    let Ok(path) = workdir.parse::<ImagePath>() else {
        return Ok(());
    };
    let resolved = inputs
        .view
        .resolve(&path)
        .map_err(|m| fail(format!("cannot be created: {m}")))?;
    match inputs.view.get(&resolved).map(|n| &n.kind) {
        // Runtimes create a missing workdir.
        None | Some(NodeKind::Dir) => Ok(()),
        Some(kind) => Err(fail(format!(
            "is {} in the image, not a directory",
            kind_name(kind)
        ))),
    }
}

/// A volume is mounted on a directory: one that exists as anything else
/// fails the container's start (a missing one is created).
fn check_volumes(inputs: &Inputs) -> Result<(), RecipeError> {
    for volume in inputs.config.volumes().iter().flatten() {
        let Ok(path) = volume.parse::<ImagePath>() else {
            continue;
        };
        let problem = match inputs.view.resolve(&path) {
            Err(m) => Some(format!("cannot be created: {m}")),
            Ok(resolved) => match inputs.view.get(&resolved).map(|n| &n.kind) {
                None | Some(NodeKind::Dir) => None,
                Some(kind) => Some(format!(
                    "is {} in the image, not a directory",
                    kind_name(kind)
                )),
            },
        };
        if let Some(problem) = problem {
            let index = inputs
                .recipe
                .spec
                .config
                .volumes
                .iter()
                .position(|v| v == volume);
            return Err(at(
                inputs,
                "volumes",
                index.is_some(),
                index,
                format!("{volume:?} {problem}"),
            ));
        }
    }
    Ok(())
}

fn check_stop_signal(inputs: &Inputs) -> Result<(), RecipeError> {
    let Some(signal) = inputs.config.stop_signal().clone() else {
        return Ok(());
    };
    if is_signal(&signal) {
        return Ok(());
    }
    let set = inputs.recipe.spec.config.stop_signal.is_some();
    Err(at(
        inputs,
        "stop_signal",
        set,
        None,
        format!(
            "{signal:?} is not a signal (a name such as SIGTERM or TERM, or a number from 1 to 64)"
        ),
    ))
}

/// Whether runtimes take `s` for a signal: a number from 1 to 64, or a
/// name, `SIG` or not, in any case.
pub fn is_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if SIGNALS.contains(&name) {
        return true;
    }
    // glibc's real-time range: RTMIN..RTMIN+15, RTMAX-14..RTMAX.
    let offset = |rest: &str| rest.parse::<u32>().is_ok_and(|n| (1..=15).contains(&n));
    name.strip_prefix("RTMIN+").is_some_and(offset)
        || name
            .strip_prefix("RTMAX-")
            .is_some_and(|r| offset(r) && r != "15")
}

/// The program the container runs: the first word of the entrypoint, else
/// of cmd, and which field it came from.
fn program(inputs: &Inputs) -> Option<(String, &'static str)> {
    let config = inputs.config;
    if let Some(first) = config.entrypoint().as_ref().and_then(|e| e.first()) {
        return Some((first.clone(), "entrypoint"));
    }
    let first = config.cmd().as_ref().and_then(|c| c.first())?;
    Some((first.clone(), "cmd"))
}

fn check_program(inputs: &Inputs, user: RunAs) -> Result<(), RecipeError> {
    let Some((argv0, field)) = program(inputs) else {
        return Ok(());
    };
    let spec = &inputs.recipe.spec.config;
    let set = match field {
        "entrypoint" => spec.entrypoint.is_some(),
        _ => spec.cmd.is_some(),
    };
    let fail = |m: String| at(inputs, field, set, Some(0), m);
    let workdir = inputs
        .config
        .working_dir()
        .clone()
        .and_then(|w| w.parse::<ImagePath>().ok())
        .unwrap_or_default();
    let (path, node) = if argv0.contains('/') {
        let path = image_path(&workdir, &argv0)
            .ok_or_else(|| fail(format!("{argv0:?} is not a path runtimes can run")))?;
        executable(inputs.view, &path, &user).map_err(|m| fail(format!("{argv0} {m}")))?
    } else {
        let search = search_path(inputs.config);
        let found = search
            .split(':')
            .filter(|dir| dir.starts_with('/'))
            .filter_map(|dir| image_path(&ImagePath::root(), &format!("{dir}/{argv0}")))
            .find_map(|path| executable(inputs.view, &path, &user).ok());
        found.ok_or_else(|| {
            fail(format!(
                "{argv0:?} is not an executable file in any directory of PATH ({search})"
            ))
        })?
    };
    let named = if argv0.contains('/') {
        argv0.clone()
    } else {
        format!("{argv0} (found as {path})")
    };
    check_interpreters(inputs, &workdir, &argv0, path, node, &user)
        .map_err(|m| fail(format!("{named} {m}")))
}

/// The `PATH` a bare program name is looked up in.
fn search_path(config: &Config) -> String {
    config
        .env()
        .iter()
        .flatten()
        .find_map(|e| e.strip_prefix("PATH=").map(str::to_string))
        .unwrap_or_else(|| DEFAULT_PATH.to_string())
}

/// `name` as an image path: absolute, or relative to `dir`. None for one
/// with `..` or the whiteout prefix, which [`ImagePath`] does not hold.
fn image_path(dir: &ImagePath, name: &str) -> Option<ImagePath> {
    if name.starts_with('/') {
        name.parse().ok()
    } else {
        format!("{dir}/{name}").parse().ok()
    }
}

/// Follows the program's interpreters, each of which must be an
/// executable file too; `path` and `node` are where the program's content
/// is.
fn check_interpreters(
    inputs: &Inputs,
    workdir: &ImagePath,
    argv0: &str,
    mut path: ImagePath,
    mut node: Node,
    user: &RunAs,
) -> Result<(), String> {
    let mut chain = argv0.to_string();
    for _ in 0..MAX_INTERPRETERS {
        let Some(interp) = interpreter(inputs.scan, &path, &node) else {
            return Ok(());
        };
        let at = image_path(workdir, &interp).ok_or_else(|| {
            format!("needs the interpreter {interp:?}, which is no path the kernel can open")
        })?;
        (path, node) = executable(inputs.view, &at, user).map_err(|m| {
            let by = if chain == argv0 {
                String::new()
            } else {
                format!(" (through {chain})")
            };
            format!("needs the interpreter {interp}{by}, which {m}")
        })?;
        chain = format!("{chain} -> {interp}");
    }
    Err(format!(
        "runs through more than {MAX_INTERPRETERS} interpreters ({chain}), which the kernel refuses"
    ))
}

/// The interpreter the scan found in the file whose content is at `path`,
/// if it is the file the image holds there.
fn interpreter(scan: &Scan, path: &ImagePath, node: &Node) -> Option<String> {
    scan.each(|f| match f {
        Found::Interpreter(i) => Some(i),
        _ => None,
    })
    .find(|(p, layer, _)| *p == path && *layer == node.layer)
    .map(|(_, _, i)| i.clone())
}

/// Where the content of the file `path` leads to is, symlinks and a
/// hardlink followed, and its node, when it is a regular file `user` may
/// execute; else why not ("does not exist in the image", ...).
fn executable(view: &View, path: &ImagePath, user: &RunAs) -> Result<(ImagePath, Node), String> {
    let mut at = view
        .resolve(path)
        .map_err(|m| format!("cannot be reached: {m}"))?;
    let mut node = view
        .get(&at)
        .ok_or_else(|| "does not exist in the image".to_string())?
        .clone();
    if let NodeKind::Hardlink { target } = node.kind.clone() {
        let file = view
            .get(&target)
            .ok_or_else(|| format!("is a hardlink to {target}, which the image does not have"))?;
        // The inode's bits: runtimes differ on whose header sets them.
        node = Node {
            mode: node.mode | file.mode,
            ..file.clone()
        };
        at = target;
    }
    let shown = if at == *path {
        String::new()
    } else {
        format!(" (as {at})")
    };
    if !matches!(node.kind, NodeKind::File { .. }) {
        return Err(format!(
            "is {}{shown}, not a regular file",
            kind_name(&node.kind)
        ));
    }
    let bits = if user.uid == 0 {
        0o111
    } else if u64::from(user.uid) == node.uid {
        0o100
    } else if user.gids.iter().any(|g| u64::from(*g) == node.gid) {
        0o010
    } else {
        0o001
    };
    if node.mode & bits == 0 {
        return Err(format!(
            "is not executable by uid {}{shown} (mode {:04o}, owner {}:{})",
            user.uid, node.mode, node.uid, node.gid
        ));
    }
    Ok((at, node))
}

fn kind_name(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::Dir => "a directory",
        NodeKind::File { .. } => "a file",
        NodeKind::Symlink { .. } => "a symlink",
        NodeKind::Hardlink { .. } => "a hardlink",
        NodeKind::Special => "a device node or fifo",
    }
}
