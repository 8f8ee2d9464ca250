//! Line-oriented files the seal reads by path: package databases (which
//! remote-login packages are installed) and service definitions (which
//! start a remote-login server).

use crate::rootfs::meta::ImagePath;
use crate::rootfs::packages::{self, Database, Stanzas};

/// Longest line kept; longer lines are cut (they are not what these files
/// hold).
pub const MAX_LINE: usize = 64 * 1024;

/// Packages that install a remote-login server (SSH, telnet, rsh/rlogin,
/// mosh, VNC, RDP), in dpkg and apk databases.
pub const REMOTE_LOGIN_PACKAGES: [&str; 22] = [
    "openssh-server",
    "openssh-server-pam",
    "openssh",
    "dropbear",
    "dropbear-bin",
    "dropbear-run",
    "tinyssh",
    "tinysshd",
    "telnetd",
    "telnetd-ssl",
    "inetutils-telnetd",
    "busybox-extras",
    "rsh-server",
    "rsh-redone-server",
    "mosh",
    "xrdp",
    "tigervnc-standalone-server",
    "tigervnc-scraping-server",
    "tightvncserver",
    "x11vnc",
    "vnc4server",
    "xvnc",
];

/// File names of remote-login servers, in any directory: SSH (OpenSSH,
/// dropbear, tinysshd), telnet, rsh/rlogin, mosh, RDP and VNC. Also the
/// words a service definition starts one by (`busybox telnetd`).
pub const REMOTE_LOGIN_SERVERS: [&str; 17] = [
    "sshd",
    "sshd-session",
    "dropbear",
    "dropbearmulti",
    "tinysshd",
    "telnetd",
    "in.telnetd",
    "utelnetd",
    "rshd",
    "in.rshd",
    "rlogind",
    "in.rlogind",
    "mosh-server",
    "xrdp",
    "Xvnc",
    "Xtigervnc",
    "x11vnc",
];

/// Which line-oriented file a path is, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dpkg,
    DpkgStatusD,
    Apk,
    /// What init systems start services from: inittab, inetd and xinetd,
    /// systemd units, sysv scripts, runit/s6 run scripts, supervisord.
    Service,
}

pub fn kind_of(path: &ImagePath) -> Option<Kind> {
    let rel = path.as_rel();
    let name = path.file_name();
    let under = |dir: &str| rel.starts_with(dir);
    match packages::database_of(path) {
        Some(Database::Dpkg) => return Some(Kind::Dpkg),
        Some(Database::DpkgStatusD) => return Some(Kind::DpkgStatusD),
        Some(Database::Apk) => return Some(Kind::Apk),
        None => {}
    }
    match rel {
        "etc/inittab"
        | "etc/inetd.conf"
        | "etc/xinetd.conf"
        | "etc/rc.local"
        | "etc/supervisord.conf" => Some(Kind::Service),
        _ if [
            "etc/inetd.d/",
            "etc/xinetd.d/",
            "etc/init.d/",
            "etc/supervisor/",
        ]
        .iter()
        .any(|d| under(d)) =>
        {
            Some(Kind::Service)
        }
        _ if (name.ends_with(".service") || name.ends_with(".socket"))
            && ["etc/systemd/", "lib/systemd/", "usr/lib/systemd/"]
                .iter()
                .any(|d| under(d)) =>
        {
            Some(Kind::Service)
        }
        _ if name == "run"
            && [
                "etc/sv/",
                "etc/service/",
                "etc/runit/",
                "etc/s6",
                "etc/services.d/",
            ]
            .iter()
            .any(|d| under(d)) =>
        {
            Some(Kind::Service)
        }
        _ => None,
    }
}

/// Splits a stream into lines, cutting any longer than [`MAX_LINE`].
#[derive(Default)]
pub struct Lines {
    line: Vec<u8>,
}

impl Lines {
    pub fn feed(&mut self, chunk: &[u8], out: &mut dyn FnMut(&str)) {
        for part in chunk.split_inclusive(|b| *b == b'\n') {
            let room = MAX_LINE.saturating_sub(self.line.len());
            self.line.extend_from_slice(&part[..part.len().min(room)]);
            if part.ends_with(b"\n") {
                out(String::from_utf8_lossy(&self.line).trim_end());
                self.line.clear();
            }
        }
    }

    pub fn finish(&mut self, out: &mut dyn FnMut(&str)) {
        if !self.line.is_empty() {
            out(String::from_utf8_lossy(&self.line).trim_end());
            self.line.clear();
        }
    }
}

impl Kind {
    /// The package database this kind of file is, if it is one.
    fn database(self) -> Option<Database> {
        match self {
            Kind::Dpkg => Some(Database::Dpkg),
            Kind::DpkgStatusD => Some(Database::DpkgStatusD),
            Kind::Apk => Some(Database::Apk),
            Kind::Service => None,
        }
    }
}

/// Reads package database stanzas and service definitions.
pub struct Records {
    kind: Option<Kind>,
    stanzas: Option<Stanzas>,
    line: usize,
    /// Installed remote-login packages.
    pub packages: Vec<String>,
    /// Remote-login servers a service definition starts, with the line.
    pub started: Vec<(&'static str, usize)>,
}

impl Records {
    pub fn new(kind: Option<Kind>) -> Records {
        Records {
            kind,
            stanzas: kind.and_then(Kind::database).map(Stanzas::new),
            line: 0,
            packages: Vec::new(),
            started: Vec::new(),
        }
    }

    pub fn line(&mut self, line: &str) {
        self.line += 1;
        if let Some(stanzas) = &mut self.stanzas {
            let ended = stanzas.line(line);
            self.keep(ended);
        } else if self.kind == Some(Kind::Service)
            && let Some(server) = starts_server(line)
        {
            self.started.push((server, self.line));
        }
    }

    /// Ends the file's last stanza.
    pub fn end(&mut self) {
        let ended = self.stanzas.as_mut().and_then(Stanzas::end);
        self.keep(ended);
    }

    /// Notes a package a stanza named, when it is an installed
    /// remote-login one.
    fn keep(&mut self, package: Option<packages::Package>) {
        if let Some(package) =
            package.filter(|p| p.installed && REMOTE_LOGIN_PACKAGES.contains(&p.name.as_str()))
        {
            self.packages.push(package.name);
        }
    }
}

/// The remote-login server a service definition's line starts, if any: a
/// word (a command, a path's last part, or a multi-call binary's applet
/// such as `busybox telnetd`) that names one. Comments start nothing.
pub fn starts_server(line: &str) -> Option<&'static str> {
    let line = line.trim_start();
    if line.starts_with('#') || line.starts_with(';') {
        return None;
    }
    line.split(|c: char| c.is_whitespace() || matches!(c, ':' | '=' | ';' | '"' | '\'' | ','))
        .map(|word| word.rsplit('/').next().unwrap_or(word))
        .find_map(|word| REMOTE_LOGIN_SERVERS.iter().copied().find(|s| *s == word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_lines_that_start_a_server() {
        assert_eq!(
            starts_server("::respawn:/bin/busybox telnetd -F -l /bin/sh"),
            Some("telnetd")
        );
        assert_eq!(starts_server("ExecStart=-/usr/sbin/sshd -i"), Some("sshd"));
        assert_eq!(
            starts_server("telnet stream tcp nowait root /usr/sbin/tcpd /usr/sbin/in.telnetd"),
            Some("in.telnetd")
        );
        assert_eq!(
            starts_server("command=/usr/sbin/dropbear -F -E"),
            Some("dropbear")
        );
        assert_eq!(starts_server("# ExecStart=/usr/sbin/sshd"), None);
        assert_eq!(starts_server("After=network.target sshd.service"), None);
        assert_eq!(starts_server("ExecStart=/usr/bin/nginx"), None);
    }

    #[test]
    fn service_definitions_by_path() {
        let kind = |p: &str| kind_of(&ImagePath::from_rel(p).unwrap());
        for p in [
            "etc/inittab",
            "etc/inetd.conf",
            "etc/xinetd.d/telnet",
            "etc/systemd/system/x.service",
            "usr/lib/systemd/system/ssh.socket",
            "etc/sv/telnet/run",
            "etc/s6-overlay/s6-rc.d/ssh/run",
            "etc/services.d/ssh/run",
            "etc/supervisor/conf.d/ssh.conf",
            "etc/init.d/ssh",
        ] {
            assert_eq!(kind(p), Some(Kind::Service), "{p}");
        }
        for p in [
            "srv/x.service",
            "etc/sv/telnet/log",
            "usr/share/doc/inittab",
        ] {
            assert_eq!(kind(p), None, "{p}");
        }
    }
}
