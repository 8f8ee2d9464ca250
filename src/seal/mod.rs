//! Sealing (design.md, "Sealing"): proof that an image holds no way in.
//!
//! The policy is the table [`RULES`]: each rule has an id, one line saying
//! what it forbids, and a check over the final merged filesystem, the
//! image config and what the content scan found. The same table runs on
//! every build and in `ingot audit` on any image. Exceptions come only from
//! the recipe's `seal.allow`, by rule and path.

pub mod scan;

use std::collections::BTreeMap;

use oci_spec::image::Config;
use serde::Serialize;

use crate::rootfs::meta::ImagePath;
use crate::rootfs::{NodeKind, View};
pub use scan::{Directive, Found, REMOTE_LOGIN_SERVERS, Scan};

/// The version of the rule table. A change to what any rule accepts is a
/// new version; sealed images record the version they passed.
///
/// 2: `no-empty-password`; ports read as runtimes read them; world-writable
///    device nodes and fifos; public host keys no longer count; a hardlink
///    is the file it names (its key, its SSH server, its setuid bits);
///    `no-ssh-server` is `no-remote-login`: telnet, rsh/rlogin, mosh, VNC
///    and RDP servers too, dpkg fields in any case; an sshd_config's
///    AuthorizedKeysCommand is a violation; dropbear host keys anywhere.
/// 3: servers by their binaries' content and by the service definitions
///    that start them; keys by parsing (examples and prose no longer
///    count; DER, base64 DER and JWKs do); both inside archives, and
///    `scanned-archives` for what the scan's bounds stop; sshd configs
///    followed through `Include`.
pub const POLICY_VERSION: &str = "3";

/// What a rule looks at.
pub struct Inputs<'a> {
    pub view: &'a View,
    pub config: Option<&'a Config>,
    pub scan: &'a Scan,
}

/// One thing a rule forbids, found: where, in which layer, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// None for findings in the image config.
    pub path: Option<ImagePath>,
    /// Index of the layer that introduced it, bottom first.
    pub layer: Option<usize>,
    pub detail: String,
}

/// A seal rule.
pub struct Rule {
    pub id: &'static str,
    pub description: &'static str,
    check: fn(&Inputs) -> Vec<Finding>,
}

/// The policy, in one screen.
pub static RULES: [Rule; 9] = [
    Rule {
        id: "no-remote-login",
        description: "no remote-login server (SSH, telnet, rsh/rlogin, mosh, VNC, RDP): by the name of an executable file, symlink or hardlink (sshd, sshd-session, dropbear, dropbearmulti, tinysshd, telnetd, in.telnetd, utelnetd, rshd, in.rshd, rlogind, in.rlogind, mosh-server, xrdp, Xvnc, Xtigervnc, x11vnc); by content, in any ELF file and inside archives (strings only the daemons carry: OpenSSH sshd, dropbear, tinysshd, inetutils telnetd, rshd/rlogind, mosh-server, xrdp, TigerVNC Xvnc, libvncserver); by installed package (openssh-server, dropbear, tinysshd, telnetd, inetutils-telnetd, busybox-extras, rsh-server, mosh, xrdp, tigervnc and other VNC servers; dpkg, distroless status.d, apk; rpm databases are not read); or started by a service definition (inittab, inetd, xinetd, systemd units, init.d, rc.local, runit, s6, supervisord) or the image's Entrypoint and Cmd, busybox applets included",
        check: no_remote_login,
    },
    Rule {
        id: "no-ssh-host-keys",
        description: "no SSH host keys: /etc/ssh/ssh_host_*_key* (not the public .pub halves), dropbear_*_host_key in any directory",
        check: no_ssh_host_keys,
    },
    Rule {
        id: "no-authorized-keys",
        description: "no authorized_keys or authorized_keys2 file anywhere, nor any file named by AuthorizedKeysFile, nor an AuthorizedKeysCommand, in the configs sshd reads (sshd_config in any directory, sshd_config.d, and every file they Include, globs followed; keywords in any case, Keyword value or Keyword=value)",
        check: no_authorized_keys,
    },
    Rule {
        id: "no-empty-password",
        description: "no account with an empty password field in /etc/passwd or /etc/shadow",
        check: no_empty_password,
    },
    Rule {
        id: "no-ssh-port",
        description: "port 22/tcp is not exposed in the image config, however written (022, 22/TCP, a range such as 20-30)",
        check: no_ssh_port,
    },
    Rule {
        id: "no-private-keys",
        description: "no private key material in any file or archive member, found by parsing: PEM blocks whose body decodes to a key (PKCS#1, DSA, SEC1, PKCS#8, encrypted; markers read as OpenSSL reads them, also embedded in YAML, JSON and .env), OpenSSH, SSH2, PGP secret keys, PuTTY, cosign/sigstore; DER key files; base64 of PEM or DER keys; JWKs with a private member. Not generic secrets (cloud credentials, tokens)",
        check: no_private_keys,
    },
    Rule {
        id: "scanned-archives",
        description: "every archive in the image (gzip, xz, zstd, tar, zip, known by content) is read whole by the scan, within its bounds: 4 levels, 1 GiB and 100,000 members per file, zip members stored or deflated and not encrypted",
        check: scanned_archives,
    },
    Rule {
        id: "no-world-writable",
        description: "no world-writable regular file, device node, fifo or directory, except directories with the sticky bit",
        check: no_world_writable,
    },
    Rule {
        id: "setuid",
        description: "every setuid or setgid regular file, and every file with capabilities (security.capability), is allowed by name",
        check: setuid,
    },
];

/// The policy as `ingot audit --list-rules --json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    pub policy: &'static str,
    pub scanner: &'static str,
    pub rules: Vec<RuleInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    pub id: &'static str,
    pub description: &'static str,
}

impl Policy {
    pub fn current() -> Policy {
        Policy {
            policy: POLICY_VERSION,
            scanner: scan::SCANNER_VERSION,
            rules: RULES
                .iter()
                .map(|r| RuleInfo {
                    id: r.id,
                    description: r.description,
                })
                .collect(),
        }
    }
}

/// The rule table in words: a heading with the versions, then each rule's
/// id and description, wrapped to fit a terminal.
pub fn render_rules() -> String {
    const WIDTH: usize = 78;
    let pad = RULES.iter().map(|r| r.id.len()).max().unwrap_or(0) + 4;
    let mut out = format!(
        "Rules (policy {POLICY_VERSION}, scanner {}):\n",
        scan::SCANNER_VERSION
    );
    for rule in &RULES {
        let mut line = format!("  {:<width$}", rule.id, width = pad - 2);
        for word in rule.description.split(' ') {
            if line.len() + word.len() + 1 > WIDTH && line.len() > pad {
                out.push_str(line.trim_end());
                out.push('\n');
                line = " ".repeat(pad);
            } else if line.len() > pad {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// An exception to a rule, by path, with the reason a reviewer accepted:
/// a recipe's `seal.allow` entry.
#[derive(Debug, Clone, serde::Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SealAllow {
    pub rule: String,
    pub path: ImagePath,
    pub reason: String,
}

/// A rule id, if the table has it.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// A layer as reports name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerLabel {
    pub digest: String,
    /// The recipe layer's name, or "base".
    pub name: String,
}

/// A finding of one rule, with its layer named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub rule: &'static str,
    pub path: Option<String>,
    pub layer: Option<LayerLabel>,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {}",
            self.rule,
            self.path.as_deref().unwrap_or("image config")
        )?;
        if let Some(l) = &self.layer {
            write!(f, " (layer {} {})", l.name, l.digest)?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// What the seal found in an image.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub policy: &'static str,
    pub rules: Vec<&'static str>,
    pub violations: Vec<Violation>,
    /// Violations the recipe allows, with its reasons.
    pub allowed: Vec<(Violation, String)>,
    /// Indexes of `seal.allow` entries that matched nothing.
    #[serde(skip)]
    pub unused_allows: Vec<usize>,
}

impl Report {
    pub fn is_sealed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Runs every rule, sets aside what `allow` permits, and names layers by
/// `labels` (one per layer, bottom first).
pub fn check(inputs: &Inputs, allow: &[SealAllow], labels: &[LayerLabel]) -> Report {
    let mut used = vec![false; allow.len()];
    let mut violations = Vec::new();
    let mut allowed = Vec::new();
    for rule in &RULES {
        let mut findings = (rule.check)(inputs);
        findings.sort_by(|a, b| a.path.cmp(&b.path));
        findings.dedup();
        for f in findings {
            let violation = Violation {
                rule: rule.id,
                path: f.path.as_ref().map(ToString::to_string),
                layer: f.layer.and_then(|i| labels.get(i).cloned()),
                detail: f.detail,
            };
            let exception = allow
                .iter()
                .position(|a| a.rule == rule.id && Some(&a.path) == f.path.as_ref());
            match exception {
                Some(i) => {
                    used[i] = true;
                    allowed.push((violation, allow[i].reason.clone()));
                }
                None => violations.push(violation),
            }
        }
    }
    Report {
        policy: POLICY_VERSION,
        rules: RULES.iter().map(|r| r.id).collect(),
        violations,
        allowed,
        unused_allows: used
            .iter()
            .enumerate()
            .filter(|(_, u)| !**u)
            .map(|(i, _)| i)
            .collect(),
    }
}

/// Whether a content finding still stands: the file it was found in is the
/// one the final filesystem has at that path.
fn present(view: &View, path: &ImagePath, layer: usize) -> bool {
    view.get(path)
        .is_some_and(|n| n.layer == layer && matches!(n.kind, NodeKind::File { .. }))
}

/// Every non-directory entry, with its node.
fn files(view: &View) -> impl Iterator<Item = (&ImagePath, &crate::rootfs::Node)> {
    view.iter().filter(|(_, n)| !n.is_dir())
}

fn found(path: &ImagePath, layer: usize, detail: impl Into<String>) -> Finding {
    Finding {
        path: Some(path.clone()),
        layer: Some(layer),
        detail: detail.into(),
    }
}

fn no_remote_login(inputs: &Inputs) -> Vec<Finding> {
    let view = inputs.view;
    // By name: what can be executed under a server's name. A file without
    // an execute bit named sshd runs nothing (a real server so named is
    // found by its content).
    let executable = |n: &crate::rootfs::Node| match n.kind {
        NodeKind::File { .. } | NodeKind::Hardlink { .. } => n.mode & 0o111 != 0,
        NodeKind::Symlink { .. } => true,
        NodeKind::Dir | NodeKind::Special => false,
    };
    let binaries = files(view)
        .filter(|(p, n)| REMOTE_LOGIN_SERVERS.contains(&p.file_name()) && executable(n))
        .map(|(p, n)| found(p, n.layer, "a remote-login server"));
    // The image's own command: `busybox telnetd` as an entrypoint.
    let command = inputs.config.and_then(|c| {
        let words: Vec<String> = [c.entrypoint(), c.cmd()]
            .into_iter()
            .flatten()
            .flatten()
            .cloned()
            .collect();
        scan::starts_server(&words.join(" ")).map(|server| Finding {
            path: None,
            layer: None,
            detail: format!("the image's Entrypoint and Cmd start {server}"),
        })
    });
    // A hardlink is the file it names, under another name: one to a
    // server's name is that server, whatever became of the name since.
    let linked = hardlinks(view)
        .into_iter()
        .filter(|(_, _, origin)| REMOTE_LOGIN_SERVERS.contains(&origin.file_name()))
        .map(|(p, layer, origin)| found(p, layer, format!("a hardlink to the server {origin}")));
    let packages = inputs
        .scan
        .each(|f| match f {
            Found::Package(package) => Some(format!("package {package} is installed")),
            _ => None,
        })
        .filter(|(p, layer, _)| present(view, p, *layer))
        .map(|(p, layer, detail)| found(p, layer, detail));
    let by_content = inputs.scan.each(|f| match f {
        Found::Server { server, inside } => Some(match where_inside(inside).as_str() {
            "" => format!("the {server} server, by its content"),
            place => format!("the {server} server, by its content,{place}"),
        }),
        Found::Starts { server, line } => Some(format!("starts {server} (line {line})")),
        _ => None,
    });
    let by_content = at_every_name(view, by_content);
    binaries
        .chain(linked)
        .chain(packages)
        .chain(by_content)
        .chain(command)
        .collect()
}

/// Where in a file a finding is: nowhere to add for the file's own bytes,
/// and for an archive's member its path; a compressed stream has no member
/// name of its own.
fn where_inside(inside: &Option<String>) -> String {
    match inside.as_deref() {
        None => String::new(),
        Some("") => " once decompressed".to_string(),
        Some(member) => format!(" inside it at {member}"),
    }
}

/// Content findings at the file's path when it is still the file found,
/// and at every hardlink to it made since.
fn at_every_name<'a>(
    view: &'a View,
    findings: impl Iterator<Item = (&'a ImagePath, usize, String)>,
) -> Vec<Finding> {
    let links = hardlinks(view);
    let mut out = Vec::new();
    for (path, layer, detail) in findings {
        if present(view, path, layer) {
            out.push(found(path, layer, detail.clone()));
        }
        for (link, link_layer, origin) in &links {
            if origin == path && *link_layer >= layer {
                out.push(found(
                    link,
                    *link_layer,
                    format!("a hardlink to {path}: {detail}"),
                ));
            }
        }
    }
    out
}

/// Archives the scan could not read whole.
fn scanned_archives(inputs: &Inputs) -> Vec<Finding> {
    let unscanned = inputs.scan.each(|f| match f {
        Found::Unscanned { inside, reason } if inside.is_empty() => {
            Some(format!("not scanned: {reason}"))
        }
        Found::Unscanned { inside, reason } => Some(format!("not scanned at {inside}: {reason}")),
        _ => None,
    });
    at_every_name(inputs.view, unscanned)
}

fn no_ssh_host_keys(inputs: &Inputs) -> Vec<Finding> {
    files(inputs.view)
        .filter(|(p, _)| {
            let (dir, name) = (p.parent_rel(), p.file_name());
            // A host key's public half (`.pub`) is no secret.
            let private = !name.ends_with(".pub");
            (dir == "etc/ssh"
                && name.starts_with("ssh_host_")
                && name.contains("_key")
                && private)
                // Dropbear's keys are binary, not PEM, so only their
                // names tell; `dropbear -r` takes them from anywhere.
                || (name.starts_with("dropbear_") && name.ends_with("_host_key"))
        })
        .map(|(p, n)| found(p, n.layer, "an SSH host key"))
        .collect()
}

fn no_authorized_keys(inputs: &Inputs) -> Vec<Finding> {
    let view = inputs.view;
    let mut out: Vec<Finding> = files(view)
        .filter(|(p, _)| matches!(p.file_name(), "authorized_keys" | "authorized_keys2"))
        .map(|(p, n)| found(p, n.layer, "an authorized_keys file"))
        .collect();
    // Without an /etc/passwd, sshd could still let root in.
    let mut users = passwd_users(view);
    if users.is_empty() {
        users.push(("root".into(), "0".into(), "/root".into()));
    }
    for (config, layer, directive) in sshd_directives(inputs) {
        match directive {
            Directive::AuthorizedKeysCommand(command) => out.push(found(
                config,
                layer,
                format!("AuthorizedKeysCommand {command} hands sshd keys at login"),
            )),
            Directive::AuthorizedKeysFile(patterns) => {
                for pattern in patterns.iter().filter(|p| p.as_str() != "none") {
                    for (user, uid, home) in &users {
                        let Some(path) = expand_authorized_keys_file(pattern, user, uid, home)
                        else {
                            continue;
                        };
                        if let Some(node) = view.get(&path).filter(|n| !n.is_dir()) {
                            out.push(found(
                                &path,
                                node.layer,
                                format!("named by AuthorizedKeysFile in {config}"),
                            ));
                        }
                    }
                }
            }
            Directive::Include(_) => {}
        }
    }
    out
}

fn no_ssh_port(inputs: &Inputs) -> Vec<Finding> {
    let ports = inputs
        .config
        .and_then(|c| c.exposed_ports().clone())
        .unwrap_or_default();
    ports
        .iter()
        .filter(|p| exposes_tcp_22(p))
        .map(|p| Finding {
            path: None,
            layer: None,
            detail: format!("port {p} is exposed"),
        })
        .collect()
}

/// Whether an exposed-port entry covers 22/tcp, read as runtimes read it
/// (`PORT[-END][/PROTO]`, numbers with leading zeros, the protocol in any
/// case, tcp when left out).
fn exposes_tcp_22(spec: &str) -> bool {
    let (range, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    if !proto.eq_ignore_ascii_case("tcp") {
        return false;
    }
    let number = |s: &str| s.trim().parse::<u32>().ok();
    match range.split_once('-') {
        Some((start, end)) => {
            matches!((number(start), number(end)), (Some(a), Some(b)) if a <= 22 && 22 <= b)
        }
        None => number(range) == Some(22),
    }
}

/// Every account whose password field is empty, in /etc/passwd (no shadow
/// entry consulted) or /etc/shadow: anyone may log in as it without a
/// password. A locked field (`*`, `!`, `x` pointing at shadow) is fine.
fn no_empty_password(inputs: &Inputs) -> Vec<Finding> {
    let mut out = Vec::new();
    for file in ["etc/passwd", "etc/shadow"] {
        let path = ImagePath::root().join_rel(file);
        let (Some(text), Some(node)) = (inputs.view.content(&path), inputs.view.get(&path)) else {
            continue;
        };
        for line in String::from_utf8_lossy(text).lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if line.starts_with('#') || fields.len() < 2 || fields[0].is_empty() {
                continue;
            }
            if fields[1].is_empty() {
                out.push(found(
                    &path,
                    node.layer,
                    format!("account {} has an empty password", fields[0]),
                ));
            }
        }
    }
    out
}

fn no_private_keys(inputs: &Inputs) -> Vec<Finding> {
    let keys = inputs.scan.each(|f| match f {
        Found::Key { format, inside } => Some(format!("holds a {format}{}", where_inside(inside))),
        _ => None,
    });
    at_every_name(inputs.view, keys)
}

/// The sshd directives sshd would read: those of its configs
/// ([`scan::is_sshd_config`]) and of every file they `Include`, followed
/// as sshd follows them (globs; relative paths under /etc/ssh; at most 16
/// levels).
fn sshd_directives<'a>(inputs: &'a Inputs) -> Vec<(&'a ImagePath, usize, &'a Directive)> {
    let view = inputs.view;
    let directives: Vec<(&ImagePath, usize, &Directive)> = inputs
        .scan
        .each(|f| match f {
            Found::Directive(d) => Some(d),
            _ => None,
        })
        .filter(|(p, layer, _)| present(view, p, *layer))
        .collect();
    let mut read: Vec<&ImagePath> = view
        .iter()
        .filter(|(p, n)| scan::is_sshd_config(p) && matches!(n.kind, NodeKind::File { .. }))
        .map(|(p, _)| p)
        .collect();
    let mut next = read.clone();
    for _ in 0..16 {
        let included: Vec<&ImagePath> = directives
            .iter()
            .filter(|(p, _, _)| next.contains(p))
            .filter_map(|(_, _, d)| match d {
                Directive::Include(patterns) => Some(patterns),
                _ => None,
            })
            .flatten()
            .filter_map(|pattern| include_pattern(pattern))
            .flat_map(|pattern| {
                files(view)
                    .filter(move |(p, _)| pattern.is_match(p.as_rel()))
                    .map(|(p, _)| p)
            })
            .filter(|p| !read.contains(p))
            .collect();
        if included.is_empty() {
            break;
        }
        read.extend(included.iter().copied());
        next = included;
    }
    directives
        .into_iter()
        .filter(|(p, _, _)| read.contains(p))
        .collect()
}

/// An `Include` pattern as a matcher of image paths (without the leading
/// slash): glob(3)'s `*`, `?` and `[...]`, none crossing a `/`; relative
/// patterns are under /etc/ssh.
fn include_pattern(pattern: &str) -> Option<regex::Regex> {
    let absolute = match pattern.strip_prefix('/') {
        Some(rest) => rest.to_string(),
        None => format!("etc/ssh/{pattern}"),
    };
    let mut re = String::from("^");
    let mut chars = absolute.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                re.push('[');
                if chars.peek() == Some(&'!') {
                    chars.next();
                    re.push('^');
                }
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    if c == '\\' || c == '[' || c == '^' {
                        re.push('\\');
                    }
                    re.push(c);
                }
                re.push(']');
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).ok()
}

fn hardlinks(view: &View) -> Vec<(&ImagePath, usize, ImagePath)> {
    view.iter()
        .filter_map(|(p, n)| match &n.kind {
            NodeKind::Hardlink { target } => Some((p, n.layer, origin(view, target))),
            _ => None,
        })
        .collect()
}

/// Where a chain of hardlinks ends: a bounded walk, as chains are short
/// and a hostile one may loop.
fn origin(view: &View, target: &ImagePath) -> ImagePath {
    let mut at = target.clone();
    for _ in 0..16 {
        match view.get(&at).map(|n| &n.kind) {
            Some(NodeKind::Hardlink { target }) => at = target.clone(),
            _ => break,
        }
    }
    at
}

fn no_world_writable(inputs: &Inputs) -> Vec<Finding> {
    inputs
        .view
        .iter()
        .filter(|(_, n)| n.mode & 0o002 != 0)
        .filter_map(|(p, n)| match n.kind {
            NodeKind::Dir if n.mode & 0o1000 == 0 => Some(found(
                p,
                n.layer,
                format!(
                    "a world-writable directory ({:04o}) without the sticky bit",
                    n.mode
                ),
            )),
            NodeKind::File { .. } | NodeKind::Hardlink { .. } => Some(found(
                p,
                n.layer,
                format!("a world-writable file ({:04o})", n.mode),
            )),
            NodeKind::Special => Some(found(
                p,
                n.layer,
                format!("a world-writable device node or fifo ({:04o})", n.mode),
            )),
            _ => None,
        })
        .collect()
}

fn setuid(inputs: &Inputs) -> Vec<Finding> {
    inputs
        .view
        .iter()
        .filter(|(_, n)| matches!(n.kind, NodeKind::File { .. } | NodeKind::Hardlink { .. }))
        .filter_map(|(p, n)| {
            let what = match (n.mode & 0o4000 != 0, n.mode & 0o2000 != 0, n.capability) {
                (true, true, _) => "setuid and setgid",
                (true, false, _) => "setuid",
                (false, true, _) => "setgid",
                (false, false, true) => "file capabilities",
                (false, false, false) => return None,
            };
            let fix = if n.mode & 0o6000 != 0 {
                format!("drop the bits with an attrs step ({{ path: {p}, mode: \"u-s,g-s\" }})")
            } else {
                "remove the file".to_string()
            };
            Some(found(
                p,
                n.layer,
                format!(
                    "{what} ({:04o}); allow it by name in seal.allow, or {fix}",
                    n.mode
                ),
            ))
        })
        .collect()
}

/// (name, uid, home) of every account in the image's /etc/passwd.
fn passwd_users(view: &View) -> Vec<(String, String, String)> {
    let Some(text) = view.content(&ImagePath::root().join_rel("etc/passwd")) else {
        return Vec::new();
    };
    String::from_utf8_lossy(text)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 6).then(|| (f[0].to_string(), f[2].to_string(), f[5].to_string()))
        })
        .collect()
}

/// sshd_config(5) TOKENS for AuthorizedKeysFile: `%%`, `%h`, `%u`, `%U`;
/// a relative result is taken from the user's home.
fn expand_authorized_keys_file(
    pattern: &str,
    user: &str,
    uid: &str,
    home: &str,
) -> Option<ImagePath> {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '%' => out.push('%'),
            'h' => out.push_str(home),
            'u' => out.push_str(user),
            'U' => out.push_str(uid),
            _ => return None,
        }
    }
    if !out.starts_with('/') {
        out = format!("{}/{out}", home.trim_end_matches('/'));
    }
    out.parse().ok()
}

/// The exceptions an image was sealed with, for its annotation: canonical
/// JSON `[{"path":…,"reason":…,"rule":…}]`.
pub fn allow_annotation(allow: &[SealAllow]) -> serde_json::Result<String> {
    let list: Vec<BTreeMap<&str, String>> = allow
        .iter()
        .map(|a| {
            BTreeMap::from([
                ("rule", a.rule.clone()),
                ("path", a.path.to_string()),
                ("reason", a.reason.clone()),
            ])
        })
        .collect();
    Ok(String::from_utf8_lossy(&crate::image::canonical_json(&list)?).into_owned())
}

/// The report in words: one line per violation and per exception.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    for v in &report.violations {
        out.push_str(&format!("violation: {v}\n"));
    }
    for (v, reason) in &report.allowed {
        out.push_str(&format!("allowed: {v} [{reason}]\n"));
    }
    let verdict = if report.is_sealed() {
        "sealed"
    } else {
        "NOT SEALED"
    };
    out.push_str(&format!(
        "{verdict}: policy {}, {} rules, {} violations, {} allowed\n",
        report.policy,
        report.rules.len(),
        report.violations.len(),
        report.allowed.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rootfs::{Change, Node};

    fn p(s: &str) -> ImagePath {
        s.parse().unwrap()
    }

    fn node(kind: NodeKind, mode: u32) -> Node {
        Node {
            kind,
            mode,
            uid: 0,
            gid: 0,
            layer: 0,
            capability: false,
        }
    }

    fn file(mode: u32) -> Node {
        node(NodeKind::File { size: 1 }, mode)
    }

    /// A one-layer view of `entries`, with /etc/passwd holding root and app.
    fn view(entries: Vec<(&str, Node)>) -> View {
        let mut v = View::new();
        let passwd =
            b"root:x:0:0:root:/root:/sbin/nologin\napp:x:1000:1000::/home/app:/sbin/nologin\n";
        let mut changes = vec![Change::Put(
            p("/etc/passwd"),
            file(0o644),
            Some(passwd.to_vec()),
        )];
        changes.extend(
            entries
                .into_iter()
                .map(|(path, n)| Change::Put(p(path), n, None)),
        );
        v.apply(changes);
        v
    }

    /// The ids of the rules that fail on `view`, `scan` and `ports`.
    fn failing(view: &View, scan: &Scan, ports: &[&str]) -> Vec<&'static str> {
        let mut config = Config::default();
        config.set_exposed_ports(Some(ports.iter().map(|p| p.to_string()).collect()));
        let inputs = Inputs {
            view,
            config: Some(&config),
            scan,
        };
        let report = check(&inputs, &[], &[]);
        let mut ids: Vec<&str> = report.violations.iter().map(|v| v.rule).collect();
        ids.dedup();
        ids
    }

    fn fails(entries: Vec<(&str, Node)>) -> Vec<&'static str> {
        failing(&view(entries), &Scan::default(), &[])
    }

    #[test]
    fn a_clean_image_passes_every_rule() {
        let ok = fails(vec![
            ("/tmp", node(NodeKind::Dir, 0o1777)),
            ("/usr/bin/app", file(0o755)),
            ("/etc/ssh/ssh_config", file(0o644)),
            ("/srv/sshd", node(NodeKind::Dir, 0o755)),
            ("/var/mail", node(NodeKind::Dir, 0o2775)),
            (
                "/lib/link",
                node(NodeKind::Symlink { target: "x".into() }, 0o777),
            ),
            ("/dev/console", node(NodeKind::Special, 0o600)),
            ("/etc/ssh/ssh_host_ed25519_key.pub", file(0o644)),
        ]);
        assert_eq!(ok, Vec::<&str>::new());
        assert_eq!(
            failing(
                &view(vec![]),
                &Scan::default(),
                &["2222/tcp", "22/udp", "23-30/tcp", "8022", "x/tcp"]
            ),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn each_path_rule_fails_on_its_case() {
        let cases: [(&str, Node, &str); 11] = [
            ("/usr/sbin/sshd", file(0o755), "no-remote-login"),
            ("/usr/bin/dropbearmulti", file(0o755), "no-remote-login"),
            (
                "/etc/ssh/ssh_host_ed25519_key",
                file(0o600),
                "no-ssh-host-keys",
            ),
            (
                "/etc/dropbear/dropbear_rsa_host_key",
                file(0o600),
                "no-ssh-host-keys",
            ),
            (
                "/opt/keys/dropbear_ed25519_host_key",
                file(0o600),
                "no-ssh-host-keys",
            ),
            (
                "/root/.ssh/authorized_keys",
                file(0o600),
                "no-authorized-keys",
            ),
            ("/srv/data", node(NodeKind::Dir, 0o777), "no-world-writable"),
            ("/srv/file", file(0o666), "no-world-writable"),
            (
                "/dev/sda",
                node(NodeKind::Special, 0o666),
                "no-world-writable",
            ),
            ("/usr/bin/su", file(0o4755), "setuid"),
            ("/usr/bin/wall", file(0o2755), "setuid"),
        ];
        for (path, n, rule) in cases {
            assert_eq!(fails(vec![(path, n)]), [rule], "{path}");
        }
        let capable = Node {
            capability: true,
            ..file(0o755)
        };
        assert_eq!(fails(vec![("/usr/bin/ping", capable)]), ["setuid"]);
    }

    #[test]
    fn the_ssh_port_fails_in_the_config_however_written() {
        let v = view(vec![]);
        for spec in [
            "22/tcp",
            "22",
            "22/TCP",
            "022/tcp",
            "20-30/tcp",
            "22-23",
            " 22 /tcp",
        ] {
            assert_eq!(
                failing(&v, &Scan::default(), &[spec]),
                ["no-ssh-port"],
                "{spec}"
            );
        }
    }

    #[test]
    fn empty_passwords_fail_locked_ones_pass() {
        let with = |path: &str, text: &str| {
            let mut v = view(vec![]);
            v.apply(vec![Change::Put(
                p(path),
                file(0o600),
                Some(text.as_bytes().to_vec()),
            )]);
            failing(&v, &Scan::default(), &[])
        };
        assert_eq!(
            with(
                "/etc/passwd",
                "root:x:0:0::/root:/bin/sh\nguest::1001:1001::/:/bin/sh\n"
            ),
            ["no-empty-password"]
        );
        assert_eq!(
            with(
                "/etc/shadow",
                "root:*:19000:0:99999:7:::\napp::19000:0:99999:7:::\n"
            ),
            ["no-empty-password"]
        );
        assert_eq!(
            with(
                "/etc/shadow",
                "root:*:19000::::::\napp:!:19000::::::\nx:!*:1::::::\n# note\n\n"
            ),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn content_findings_count_only_while_the_file_stands() {
        let v = view(vec![
            ("/srv/key", file(0o600)),
            ("/var/lib/dpkg/status", file(0o644)),
        ]);
        let findings = |layer: usize| {
            Scan::of(vec![
                (
                    p("/srv/key"),
                    layer,
                    Found::Key {
                        format: "OPENSSH PRIVATE KEY".into(),
                        inside: None,
                    },
                ),
                (
                    p("/var/lib/dpkg/status"),
                    layer,
                    Found::Package("openssh-server".into()),
                ),
            ])
        };
        assert_eq!(
            failing(&v, &findings(0), &[]),
            ["no-remote-login", "no-private-keys"]
        );

        // The same findings from a layer whose files were later replaced.
        assert_eq!(failing(&v, &findings(7), &[]), Vec::<&str>::new());
    }

    #[test]
    fn authorized_keys_file_targets_are_expanded_per_user() {
        let v = view(vec![
            ("/etc/ssh/sshd_config", file(0o644)),
            ("/etc/ssh/keys/app", file(0o644)),
            ("/home/app/.ssh/extra", file(0o600)),
        ]);
        let scan = Scan::of(vec![(
            p("/etc/ssh/sshd_config"),
            0,
            Found::Directive(Directive::AuthorizedKeysFile(vec![
                "/etc/ssh/keys/%u".into(),
                ".ssh/extra".into(),
                "none".into(),
            ])),
        )]);
        let mut config = Config::default();
        config.set_exposed_ports(None);
        let report = check(
            &Inputs {
                view: &v,
                config: Some(&config),
                scan: &scan,
            },
            &[],
            &[],
        );
        let paths: Vec<&str> = report
            .violations
            .iter()
            .filter_map(|v| v.path.as_deref())
            .collect();
        assert_eq!(paths, ["/etc/ssh/keys/app", "/home/app/.ssh/extra"]);
        assert_eq!(
            expand_authorized_keys_file("%h/k%%", "u", "1", "/home/u"),
            Some(p("/home/u/k%"))
        );
        assert_eq!(expand_authorized_keys_file("%x", "u", "1", "/"), None);
    }

    #[test]
    fn exceptions_allow_by_rule_and_path_and_stale_ones_are_reported() {
        let v = view(vec![("/usr/bin/su", file(0o4755))]);
        let allow = |rule: &str, path: &str| SealAllow {
            rule: rule.into(),
            path: p(path),
            reason: "needed".into(),
        };
        let inputs = Inputs {
            view: &v,
            config: None,
            scan: &Scan::default(),
        };
        let report = check(&inputs, &[allow("setuid", "/usr/bin/su")], &[]);
        assert!(report.is_sealed());
        assert_eq!(report.allowed.len(), 1);
        assert!(report.unused_allows.is_empty());

        let report = check(
            &inputs,
            &[
                allow("no-remote-login", "/usr/bin/su"),
                allow("setuid", "/bin/su"),
            ],
            &[],
        );
        assert!(
            !report.is_sealed(),
            "an exception must name the rule and the path"
        );
        assert_eq!(report.unused_allows, [0, 1]);
    }

    #[test]
    fn violations_name_rule_path_and_layer() {
        let v = view(vec![("/usr/sbin/sshd", file(0o755))]);
        let labels = [LayerLabel {
            digest: "sha256:abc".into(),
            name: "base".into(),
        }];
        let inputs = Inputs {
            view: &v,
            config: None,
            scan: &Scan::default(),
        };
        let report = check(&inputs, &[], &labels);
        assert_eq!(
            report.violations[0].to_string(),
            "no-remote-login: /usr/sbin/sshd (layer base sha256:abc): a remote-login server"
        );
    }

    #[test]
    fn the_table_is_complete_and_unique() {
        let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len());
        assert!(RULES.iter().all(|r| !r.description.is_empty()));
        assert!(rule("setuid").is_some() && rule("nope").is_none());
    }
}
