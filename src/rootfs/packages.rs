//! The package databases an image's filesystem may hold, read line by
//! line: dpkg's `var/lib/dpkg/status`, distroless's one-stanza-a-package
//! `var/lib/dpkg/status.d/*` and apk's `lib/apk/db/installed`. The seal
//! reads them for remote-login packages, `diff` for what is installed at
//! which version.
//!
//! Reading is tolerant: these files come from hostile images, and a line
//! that is no field is skipped rather than failing the reader.

use super::meta::ImagePath;

/// Which package database a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Database {
    /// dpkg's `status`: deb822 stanzas, one a package.
    Dpkg,
    /// A distroless `status.d` file: dpkg stanzas without `Status`.
    DpkgStatusD,
    /// apk's `installed`: `K:value` lines, a blank line between packages.
    Apk,
}

pub const DPKG_STATUS: &str = "var/lib/dpkg/status";
pub const DPKG_STATUS_D: &str = "var/lib/dpkg/status.d";
pub const APK_INSTALLED: &str = "lib/apk/db/installed";

/// The database `path` is, if any.
pub fn database_of(path: &ImagePath) -> Option<Database> {
    match path.as_rel() {
        DPKG_STATUS => Some(Database::Dpkg),
        APK_INSTALLED => Some(Database::Apk),
        // Asked of every path a layer writes: no parent made to ask it.
        _ if path.parent_rel() == DPKG_STATUS_D => Some(Database::DpkgStatusD),
        _ => None,
    }
}

/// One package a database lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    /// Its version as written; empty when the stanza has none.
    pub version: String,
    /// Whether its files are on disk: dpkg's `not-installed` and
    /// `config-files` states leave no program, every other state does.
    pub installed: bool,
    /// Its architecture as written (dpkg's `Architecture`, apk's `A:`);
    /// empty when the stanza has none.
    pub architecture: String,
    /// Its license as the database writes it: apk's `L:`; dpkg records
    /// none.
    pub license: Option<String>,
}

/// Reads one database's lines, a stanza at a time.
#[derive(Debug)]
pub struct Stanzas {
    database: Database,
    name: Option<String>,
    version: Option<String>,
    installed: Option<bool>,
    architecture: Option<String>,
    license: Option<String>,
}

impl Stanzas {
    pub fn new(database: Database) -> Stanzas {
        Stanzas {
            database,
            name: None,
            version: None,
            installed: None,
            architecture: None,
            license: None,
        }
    }

    /// Takes one line (without its newline); returns the package a blank
    /// line ends.
    pub fn line(&mut self, line: &str) -> Option<Package> {
        if line.is_empty() {
            return self.end();
        }
        match self.database {
            Database::Dpkg | Database::DpkgStatusD => {
                // deb822 field names are case-insensitive.
                let field = |name: &str| {
                    line.split_once(':')
                        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
                        .map(|(_, value)| value.trim())
                };
                if let Some(name) = field("Package") {
                    self.name = Some(name.to_string());
                } else if let Some(version) = field("Version") {
                    self.version = Some(version.to_string());
                } else if let Some(arch) = field("Architecture") {
                    self.architecture = Some(arch.to_string());
                } else if let Some(status) = field("Status") {
                    // The last word is the package's state. Only
                    // not-installed and config-files (conffiles alone)
                    // leave no program on disk; unpacked, half-configured
                    // and the triggers states have the files in place.
                    let state = status.split_whitespace().last().unwrap_or("");
                    self.installed = Some(!matches!(state, "not-installed" | "config-files"));
                }
            }
            Database::Apk => {
                if let Some(name) = line.strip_prefix("P:") {
                    self.name = Some(name.trim().to_string());
                    self.installed = Some(true);
                } else if let Some(version) = line.strip_prefix("V:") {
                    self.version = Some(version.trim().to_string());
                } else if let Some(arch) = line.strip_prefix("A:") {
                    self.architecture = Some(arch.trim().to_string());
                } else if let Some(license) = line.strip_prefix("L:") {
                    self.license = Some(license.trim().to_string()).filter(|l| !l.is_empty());
                }
            }
        }
        None
    }

    /// Ends a stanza (at a blank line, or at the end of the file): the
    /// package it named, if any. A distroless `status.d` stanza without a
    /// Status field is an installed package.
    pub fn end(&mut self) -> Option<Package> {
        let installed = self
            .installed
            .take()
            .unwrap_or(self.database == Database::DpkgStatusD);
        let version = self.version.take().unwrap_or_default();
        let architecture = self.architecture.take().unwrap_or_default();
        let license = self.license.take();
        self.name.take().map(|name| Package {
            name,
            version,
            installed,
            architecture,
            license,
        })
    }
}

/// Every package `text` lists, installed or not, in the order written.
pub fn read(database: Database, text: &str) -> Vec<Package> {
    let mut stanzas = Stanzas::new(database);
    let mut found: Vec<Package> = text
        .lines()
        .filter_map(|line| stanzas.line(line.trim_end()))
        .collect();
    found.extend(stanzas.end());
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> ImagePath {
        ImagePath::from_rel(p).unwrap()
    }

    #[test]
    fn databases_by_path() {
        assert_eq!(
            database_of(&path("var/lib/dpkg/status")),
            Some(Database::Dpkg)
        );
        assert_eq!(
            database_of(&path("var/lib/dpkg/status.d/libc6")),
            Some(Database::DpkgStatusD)
        );
        assert_eq!(
            database_of(&path("lib/apk/db/installed")),
            Some(Database::Apk)
        );
        for p in [
            "var/lib/dpkg/status-old",
            "var/lib/dpkg/status.d/x/y",
            "etc",
        ] {
            assert_eq!(database_of(&path(p)), None, "{p}");
        }
    }

    #[test]
    fn dpkg_stanzas_with_their_state() {
        let text = "Package: foo\nstatus: install ok installed\nVersion: 1.0-1\nArchitecture: amd64\n\n\
                    Package: gone\nStatus: deinstall ok config-files\nVersion: 2\n\n\
                    Package: bare\n";
        let found = read(Database::Dpkg, text);
        let summary: Vec<(&str, &str, bool)> = found
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.installed))
            .collect();
        assert_eq!(
            summary,
            [
                ("foo", "1.0-1", true),
                ("gone", "2", false),
                ("bare", "", false)
            ]
        );
        assert_eq!(
            (
                found[0].architecture.as_str(),
                found[1].architecture.as_str()
            ),
            ("amd64", "")
        );
        // Without a Status, a distroless status.d stanza is installed.
        assert!(read(Database::DpkgStatusD, "Package: bare\nVersion: 1\n")[0].installed);
    }

    #[test]
    fn apk_stanzas() {
        let text = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\n\nP:busybox\nV:1.36.1-r5\n";
        let found = read(Database::Apk, text);
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].architecture.as_str(), found[0].license.as_deref()),
            ("x86_64", Some("MIT"))
        );
        assert_eq!(found[1].license, None);
        assert_eq!(
            (
                found[1].name.as_str(),
                found[1].version.as_str(),
                found[1].installed
            ),
            ("busybox", "1.36.1-r5", true)
        );
    }
}
