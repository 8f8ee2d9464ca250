//! Installed packages compared: what the package databases of two merged
//! filesystems list (dpkg's status and distroless's status.d together,
//! apk's installed apart), by name, with versions ordered as dpkg and apk
//! order them.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;

use crate::debian::version::Version;
use crate::rootfs::apk_version;
use crate::rootfs::meta::ImagePath;
use crate::rootfs::packages::{self, Database};

/// Which package manager a package is installed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Manager {
    Dpkg,
    Apk,
}

/// A package one image has and the other not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Package {
    pub manager: Manager,
    pub name: String,
    pub version: String,
}

/// How a package's version moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Upgraded,
    Downgraded,
    /// Another version, not ordered: one that does not parse.
    Changed,
}

/// A package both images have, at other versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionChange {
    pub manager: Manager,
    pub name: String,
    pub old: String,
    pub new: String,
    pub direction: Direction,
}

/// What differs in the installed packages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PackageDiff {
    pub added: Vec<Package>,
    pub removed: Vec<Package>,
    pub changed: Vec<VersionChange>,
}

impl Manager {
    pub fn name(self) -> &'static str {
        match self {
            Manager::Dpkg => "dpkg",
            Manager::Apk => "apk",
        }
    }
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Upgraded => "upgraded",
            Direction::Downgraded => "downgraded",
            Direction::Changed => "changed",
        }
    }
}

impl PackageDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// Each difference in a few words, for a one-line reason: `bar 0.9
    /// added`, `baz 2.1 removed`, `foo 1.0-1 -> 1.2-1 (upgraded)`.
    pub fn phrases(&self) -> Vec<String> {
        let added = self
            .added
            .iter()
            .map(|p| format!("{} {} added", p.name, p.version));
        let removed = (self.removed.iter()).map(|p| format!("{} {} removed", p.name, p.version));
        let changed = self
            .changed
            .iter()
            .map(|c| format!("{} {} -> {} ({})", c.name, c.old, c.new, c.direction.name()));
        changed.chain(added).chain(removed).collect()
    }
}

/// Installed packages by manager and name, with their versions.
type Installed = BTreeMap<(Manager, String), String>;

/// The installed packages the databases of one filesystem list.
pub fn installed(databases: &BTreeMap<ImagePath, (Database, Vec<u8>)>) -> Installed {
    let mut out = Installed::new();
    for (database, bytes) in databases.values() {
        let manager = match database {
            Database::Dpkg | Database::DpkgStatusD => Manager::Dpkg,
            Database::Apk => Manager::Apk,
        };
        let text = String::from_utf8_lossy(bytes);
        for package in packages::read(*database, &text) {
            if package.installed {
                out.insert((manager, package.name), package.version);
            }
        }
    }
    out
}

/// Two package sets compared.
pub fn compare(a: &Installed, b: &Installed) -> PackageDiff {
    let mut diff = PackageDiff::default();
    let package = |(manager, name): &(Manager, String), version: &String| Package {
        manager: *manager,
        name: name.clone(),
        version: version.clone(),
    };
    for (key, old) in a {
        match b.get(key) {
            None => diff.removed.push(package(key, old)),
            Some(new) if new != old => diff.changed.push(VersionChange {
                manager: key.0,
                name: key.1.clone(),
                old: old.clone(),
                new: new.clone(),
                direction: direction(key.0, old, new),
            }),
            Some(_) => {}
        }
    }
    for (key, new) in b {
        if !a.contains_key(key) {
            diff.added.push(package(key, new));
        }
    }
    diff
}

fn direction(manager: Manager, old: &str, new: &str) -> Direction {
    let order = match manager {
        Manager::Dpkg => match (old.parse::<Version>(), new.parse::<Version>()) {
            (Ok(old), Ok(new)) => Some(new.cmp(&old)),
            _ => None,
        },
        Manager::Apk => apk_version::compare(new, old),
    };
    match order {
        Some(Ordering::Greater) => Direction::Upgraded,
        Some(Ordering::Less) => Direction::Downgraded,
        // Equal in order but not in text (`1.0` and `1.00`), or unordered.
        _ => Direction::Changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &[(&str, &str)]) -> Installed {
        list.iter()
            .map(|(n, v)| ((Manager::Dpkg, n.to_string()), v.to_string()))
            .collect()
    }

    #[test]
    fn added_removed_and_ordered_by_dpkg() {
        let a = set(&[
            ("foo", "1.0-1"),
            ("baz", "1"),
            ("old", "2.0~rc1"),
            ("e", "1:0.1"),
        ]);
        let b = set(&[("foo", "1.2-1"), ("bar", "3"), ("old", "1.9"), ("e", "2.0")]);
        let diff = compare(&a, &b);
        assert_eq!(diff.added[0].name, "bar");
        assert_eq!(diff.removed[0].name, "baz");
        let moves: Vec<(&str, Direction)> = diff
            .changed
            .iter()
            .map(|c| (c.name.as_str(), c.direction))
            .collect();
        // An epoch outweighs any upstream version.
        assert_eq!(
            moves,
            [
                ("e", Direction::Downgraded),
                ("foo", Direction::Upgraded),
                ("old", Direction::Downgraded)
            ]
        );
    }
}
