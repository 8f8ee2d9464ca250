//! Dependency resolution: the closure of the requested packages over
//! `Pre-Depends` and `Depends`, for one architecture (and `all`), from one
//! or more indexes.
//!
//! The resolver is deliberately simple and deterministic, in the way of
//! apko and rules_distroless rather than apt: it chooses once per relation
//! and never backtracks. What it does, in order:
//!
//! 1. The requested names are sorted and each chosen first (the best
//!    version of a real package; a virtual name only when one package
//!    provides it), so that they satisfy alternatives before anything else.
//! 2. Chosen packages are visited in the order they were chosen; each
//!    relation of `Pre-Depends`, then `Depends`, is satisfied by
//!    - a package already chosen that satisfies any of its alternatives;
//!    - else the first alternative that something satisfies: the real
//!      package of that name with the highest satisfying version, else
//!      its providers, by package name, then highest version.
//! 3. One version per package name: a relation that only another version
//!    of a chosen package would satisfy is unsatisfiable.
//!
//! Candidates are ordered by their content (version, architecture,
//! origin, file), never by the order of the indexes, so the same indexes
//! give the same closure however they are listed.
//!
//! Not handled: `Conflicts`, `Breaks` and `Replaces` are not read (a
//! closure may hold two packages that conflict; an image built from a
//! real archive's consistent suite rarely does); `Recommends` and
//! `Suggests` are not followed; the `Essential: yes` set is not added
//! implicitly (request it); no backtracking when an early choice makes a
//! later relation unsatisfiable.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::debian::index::{Alternative, ArchQualifier, MultiArch, Package, Relation};
use crate::debian::version::Version;
use crate::digest::Digest;

/// The packages the resolver may choose from: those of one architecture
/// and `all`, each with the origin (an index's or archive's label, chosen
/// by the caller) it came from.
#[derive(Debug, Clone)]
pub struct Index {
    native: String,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    origin: String,
    package: Package,
}

impl Index {
    /// An empty index for installing on `native` (`amd64`).
    pub fn new(native: &str) -> Index {
        Index {
            native: native.to_string(),
            entries: Vec::new(),
        }
    }

    /// Adds the packages of one index, labelled `origin`. Packages of
    /// another architecture than the native one and `all` are left out:
    /// the image is of one architecture.
    pub fn add(&mut self, origin: &str, packages: impl IntoIterator<Item = Package>) {
        let native = self.native.clone();
        self.entries.extend(
            packages
                .into_iter()
                .filter(|p| p.architecture == native || p.architecture == "all")
                .map(|package| Entry {
                    origin: origin.to_string(),
                    package,
                }),
        );
    }
}

/// One package of the closure: what a lock pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub name: String,
    pub version: Version,
    pub architecture: String,
    /// The origin given to [`Index::add`]: the archive `filename` is in.
    pub origin: String,
    pub filename: String,
    pub size: u64,
    pub sha256: Digest,
}

/// The closure, sorted by package name, and the excluded packages that
/// something wanted, as (excluded, wanted by), sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    pub packages: Vec<Chosen>,
    pub excluded: Vec<(String, String)>,
}

/// Why no closure exists. Each names the package and the relation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown package {name}: no index has it and nothing provides it")]
    Unknown { name: String },
    #[error("{name} is a virtual package provided by {}: request one of them", .providers.join(", "))]
    Virtual {
        name: String,
        providers: Vec<String>,
    },
    #[error("{name} is both requested and excluded")]
    RequestedAndExcluded { name: String },
    #[error(transparent)]
    Unsatisfiable(Box<Unsatisfiable>),
    #[error(transparent)]
    Inconsistent(Box<Inconsistent>),
}

/// A relation nothing satisfies. `chain` runs from a requested package to
/// `package`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{package} {version}: {field} '{relation}' cannot be satisfied: {why} (wanted through {})",
    .chain.join(" -> ")
)]
pub struct Unsatisfiable {
    pub package: String,
    pub version: Version,
    pub field: &'static str,
    pub relation: String,
    pub why: String,
    pub chain: Vec<String>,
}

/// Two indexes hold one version of a package with different content:
/// either could be pinned, so neither is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{name} {version} ({architecture}) differs between indexes: {first} in {first_origin}, {second} in {second_origin}"
)]
pub struct Inconsistent {
    pub name: String,
    pub version: Version,
    pub architecture: String,
    pub first: Digest,
    pub first_origin: String,
    pub second: Digest,
    pub second_origin: String,
}

/// The closure of `requested` in `index` over `Pre-Depends` and
/// `Depends`, less `exclude` (see the module's header for the rules).
/// An excluded package satisfies what wants it but is not installed, nor
/// followed; the result says who wanted it.
pub fn resolve<S: AsRef<str>>(
    index: &Index,
    requested: &[S],
    exclude: &[S],
) -> Result<Resolution, ResolveError> {
    let catalog = Catalog::new(index);
    let exclude: BTreeSet<&str> = exclude.iter().map(AsRef::as_ref).collect();
    let requested: BTreeSet<&str> = requested.iter().map(AsRef::as_ref).collect();
    let mut closure = Closure::default();
    for name in &requested {
        if exclude.contains(name) {
            return Err(ResolveError::RequestedAndExcluded {
                name: name.to_string(),
            });
        }
        let id = catalog.root(name)?;
        closure.choose(&catalog, id, None)?;
    }
    while let Some(id) = closure.queue.pop_front() {
        let package = catalog.package(id);
        let fields = [
            ("Pre-Depends", &package.pre_depends),
            ("Depends", &package.depends),
        ];
        for (field, relations) in fields {
            for relation in relations {
                let pick = closure
                    .satisfy(&catalog, &exclude, id, relation)
                    .map_err(|why| {
                        ResolveError::Unsatisfiable(Box::new(Unsatisfiable {
                            package: package.name.clone(),
                            version: package.version.clone(),
                            field,
                            relation: relation.to_string(),
                            why,
                            chain: closure.chain(&catalog, id),
                        }))
                    })?;
                if let Some(pick) = pick {
                    closure.choose(&catalog, pick, Some(id))?;
                }
            }
        }
    }
    Ok(closure.resolution(&catalog))
}

/// The index, sorted for lookups: real packages by name and providers by
/// the name they provide, each list best first.
struct Catalog<'a> {
    native: &'a str,
    entries: &'a [Entry],
    by_name: BTreeMap<&'a str, Vec<usize>>,
    /// Virtual name to (entry, provided version).
    providers: BTreeMap<&'a str, Vec<(usize, Option<&'a Version>)>>,
}

impl<'a> Catalog<'a> {
    fn new(index: &'a Index) -> Catalog<'a> {
        let entries = index.entries.as_slice();
        let mut by_name: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        let mut providers: BTreeMap<&str, Vec<(usize, Option<&Version>)>> = BTreeMap::new();
        for (id, entry) in entries.iter().enumerate() {
            by_name.entry(&entry.package.name).or_default().push(id);
            for p in &entry.package.provides {
                providers
                    .entry(&p.name)
                    .or_default()
                    .push((id, p.version.as_ref()));
            }
        }
        let best_first = |a: &usize, b: &usize| {
            let (x, y) = (&entries[*a], &entries[*b]);
            x.package
                .name
                .cmp(&y.package.name)
                .then_with(|| y.package.version.cmp(&x.package.version))
                .then_with(|| x.package.architecture.cmp(&y.package.architecture))
                .then_with(|| x.origin.cmp(&y.origin))
                .then_with(|| x.package.filename.cmp(&y.package.filename))
                .then_with(|| x.package.sha256.cmp(&y.package.sha256))
                // `1.0` and `1.0-0` are equal versions, but print apart.
                .then_with(|| {
                    let text = |e: &Entry| e.package.version.to_string();
                    text(x).cmp(&text(y))
                })
        };
        for ids in by_name.values_mut() {
            ids.sort_by(best_first);
        }
        for list in providers.values_mut() {
            list.sort_by(|a, b| best_first(&a.0, &b.0).then_with(|| b.1.cmp(&a.1)));
        }
        Catalog {
            native: &index.native,
            entries,
            by_name,
            providers,
        }
    }

    fn package(&self, id: usize) -> &'a Package {
        &self.entries[id].package
    }

    /// The entry a requested name stands for.
    fn root(&self, name: &str) -> Result<usize, ResolveError> {
        if let Some(&best) = self.by_name.get(name).and_then(|ids| ids.first()) {
            return Ok(best);
        }
        let providers: BTreeSet<&str> = self
            .providers
            .get(name)
            .into_iter()
            .flatten()
            .map(|(id, _)| self.package(*id).name.as_str())
            .collect();
        match providers.len() {
            0 => Err(ResolveError::Unknown {
                name: name.to_string(),
            }),
            1 => Ok(self.providers[name][0].0),
            _ => Err(ResolveError::Virtual {
                name: name.to_string(),
                providers: providers.into_iter().map(str::to_string).collect(),
            }),
        }
    }

    /// Every entry that satisfies `alt`, in order of preference: real
    /// packages named so, best version first, then providers.
    fn satisfiers(&self, alt: &'a Alternative) -> impl Iterator<Item = usize> + '_ {
        let real = self
            .by_name
            .get(alt.name.as_str())
            .into_iter()
            .flatten()
            .copied()
            .filter(move |&id| {
                let p = self.package(id);
                self.arch_ok(alt.arch.as_ref(), p)
                    && alt.constraint.as_ref().is_none_or(|c| c.allows(&p.version))
            });
        let provided = self
            .providers
            .get(alt.name.as_str())
            .into_iter()
            .flatten()
            .filter(move |(id, version)| {
                // An unversioned provide never satisfies a versioned
                // relation (Policy §7.5).
                self.arch_ok(alt.arch.as_ref(), self.package(*id))
                    && match (&alt.constraint, version) {
                        (None, _) => true,
                        (Some(c), Some(v)) => c.allows(v),
                        (Some(_), None) => false,
                    }
            })
            .map(|(id, _)| *id);
        real.chain(provided)
    }

    /// Whether `pkg` may satisfy an alternative qualified `q` (the
    /// Multi-Arch spec, wiki.debian.org/Multiarch/Implementation). `all`
    /// counts as the native architecture, and so does every depender here,
    /// which makes `Multi-Arch: foreign` (satisfying plain relations from
    /// any architecture) always hold within one architecture's closure.
    fn arch_ok(&self, q: Option<&ArchQualifier>, pkg: &Package) -> bool {
        let arch = match pkg.architecture.as_str() {
            "all" => self.native,
            a => a,
        };
        match q {
            None => arch == self.native || pkg.multi_arch == MultiArch::Foreign,
            Some(ArchQualifier::Any) => pkg.multi_arch == MultiArch::Allowed,
            Some(ArchQualifier::Native) => arch == self.native,
            Some(ArchQualifier::Arch(a)) => arch == a,
        }
    }

    /// Refuses to pin `id` when another index holds the same version of
    /// the package with other content.
    fn check_twins(&self, id: usize) -> Result<(), ResolveError> {
        let (entry, p) = (&self.entries[id], self.package(id));
        let twin = self.by_name[p.name.as_str()].iter().find(|&&other| {
            let q = self.package(other);
            q.version == p.version && q.architecture == p.architecture && q.sha256 != p.sha256
        });
        match twin {
            Some(&other) => Err(ResolveError::Inconsistent(Box::new(Inconsistent {
                name: p.name.clone(),
                version: p.version.clone(),
                architecture: p.architecture.clone(),
                first: p.sha256,
                first_origin: entry.origin.clone(),
                second: self.package(other).sha256,
                second_origin: self.entries[other].origin.clone(),
            }))),
            None => Ok(()),
        }
    }

    /// Why nothing satisfies `relation`, alternative by alternative.
    fn why_not(&self, relation: &Relation, chosen: &BTreeMap<&str, usize>) -> String {
        let notes: Vec<String> = relation
            .alternatives
            .iter()
            .map(|alt| {
                let name = alt.name.as_str();
                let versions: Vec<String> = self
                    .by_name
                    .get(name)
                    .into_iter()
                    .flatten()
                    .map(|&id| {
                        let p = self.package(id);
                        format!(
                            "{} ({}, Multi-Arch: {})",
                            p.version, p.architecture, p.multi_arch
                        )
                    })
                    .collect();
                if let Some(&id) = chosen.get(name) {
                    format!("{name} {} is already chosen", self.package(id).version)
                } else if !versions.is_empty() {
                    format!("the index has {name} {}", versions.join(", "))
                } else if self.providers.contains_key(name) {
                    format!("no provider of {name} satisfies it")
                } else {
                    format!("no package {name} in the index")
                }
            })
            .collect();
        notes.join("; ")
    }
}

/// The closure as it grows.
#[derive(Default)]
struct Closure<'a> {
    /// Package name to the chosen entry.
    chosen: BTreeMap<&'a str, usize>,
    /// The chosen package whose relation chose each one; none for roots.
    wanted_by: BTreeMap<usize, usize>,
    queue: VecDeque<usize>,
    excluded: BTreeSet<(String, String)>,
}

impl<'a> Closure<'a> {
    fn choose(
        &mut self,
        catalog: &Catalog<'a>,
        id: usize,
        by: Option<usize>,
    ) -> Result<(), ResolveError> {
        let name = catalog.package(id).name.as_str();
        if self.chosen.contains_key(name) {
            return Ok(());
        }
        catalog.check_twins(id)?;
        self.chosen.insert(name, id);
        if let Some(by) = by {
            self.wanted_by.insert(id, by);
        }
        self.queue.push_back(id);
        Ok(())
    }

    /// Satisfies one relation of `by`: the package to choose for it, or
    /// none when a chosen or an excluded package already does; else why
    /// nothing can.
    fn satisfy(
        &mut self,
        catalog: &Catalog<'a>,
        exclude: &BTreeSet<&str>,
        by: usize,
        relation: &'a Relation,
    ) -> Result<Option<usize>, String> {
        let is_chosen = |id: usize| self.chosen.get(catalog.package(id).name.as_str()) == Some(&id);
        let already = relation
            .alternatives
            .iter()
            .any(|alt| catalog.satisfiers(alt).any(is_chosen));
        if already {
            return Ok(None);
        }
        let wanter = &catalog.package(by).name;
        for alt in &relation.alternatives {
            // A package already chosen at another version cannot be
            // chosen again: one version per name.
            let pick = catalog
                .satisfiers(alt)
                .find(|&id| !self.chosen.contains_key(catalog.package(id).name.as_str()));
            let excluded = match pick {
                _ if exclude.contains(alt.name.as_str()) => &alt.name,
                Some(id) if exclude.contains(catalog.package(id).name.as_str()) => {
                    &catalog.package(id).name
                }
                Some(id) => return Ok(Some(id)),
                None => continue,
            };
            self.excluded.insert((excluded.clone(), wanter.clone()));
            return Ok(None);
        }
        Err(catalog.why_not(relation, &self.chosen))
    }

    /// The names from a requested package down to `id`.
    fn chain(&self, catalog: &Catalog<'a>, id: usize) -> Vec<String> {
        let mut chain = vec![catalog.package(id).name.clone()];
        let mut at = id;
        while let Some(&by) = self.wanted_by.get(&at) {
            chain.push(catalog.package(by).name.clone());
            at = by;
        }
        chain.reverse();
        chain
    }

    fn resolution(self, catalog: &Catalog<'a>) -> Resolution {
        // `chosen` is keyed by name: already in the output's order.
        let packages = self
            .chosen
            .values()
            .map(|&id| {
                let (entry, p) = (&catalog.entries[id], catalog.package(id));
                Chosen {
                    name: p.name.clone(),
                    version: p.version.clone(),
                    architecture: p.architecture.clone(),
                    origin: entry.origin.clone(),
                    filename: p.filename.clone(),
                    size: p.size,
                    sha256: p.sha256,
                }
            })
            .collect();
        Resolution {
            packages,
            excluded: self.excluded.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debian::index::{Field, read_packages};
    use crate::debian::index::{Stanzas, tests::BOOKWORM};

    /// Packages from deb822 text; `Architecture` defaults to amd64, and
    /// the file fields are made up from name, version and architecture.
    fn packages(text: &str) -> Vec<Package> {
        Stanzas::new(text.as_bytes())
            .map(|s| {
                let mut s = s.unwrap();
                let field = |name: &str, value: String| Field {
                    name: name.to_string(),
                    value,
                    line: 0,
                };
                if s.get("Architecture").is_none() {
                    s.fields.push(field("Architecture", "amd64".into()));
                }
                let id = ["Package", "Version", "Architecture"]
                    .map(|f| s.get(f).unwrap().value.clone())
                    .join("_");
                s.fields.push(field("Filename", format!("pool/{id}.deb")));
                s.fields.push(field("Size", id.len().to_string()));
                s.fields
                    .push(field("SHA256", Digest::of(id.as_bytes()).hex()));
                Package::from_stanza(&s).unwrap()
            })
            .collect()
    }

    fn index_of(text: &str) -> Index {
        let mut index = Index::new("amd64");
        index.add("main", packages(text));
        index
    }

    /// `name version` of each chosen package.
    fn chosen(r: &Resolution) -> Vec<String> {
        r.packages
            .iter()
            .map(|c| format!("{} {}", c.name, c.version))
            .collect()
    }

    fn closure(text: &str, requested: &[&str]) -> Vec<String> {
        chosen(&resolve(&index_of(text), requested, &[]).unwrap())
    }

    fn error(text: &str, requested: &[&str], exclude: &[&str]) -> String {
        resolve(&index_of(text), requested, exclude)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_closure_follows_pre_depends_and_depends() {
        let text = "Package: app\nVersion: 1\nDepends: libfoo\nPre-Depends: libbar\n\n\
                    Package: libfoo\nVersion: 1\nDepends: libc6\n\n\
                    Package: libbar\nVersion: 1\n\n\
                    Package: libc6\nVersion: 2.36\n\n\
                    Package: unrelated\nVersion: 1\n";
        let r = resolve(&index_of(text), &["app"], &[]).unwrap();
        assert_eq!(chosen(&r), ["app 1", "libbar 1", "libc6 2.36", "libfoo 1"]);
        let libc = &r.packages[2];
        assert_eq!(libc.filename, "pool/libc6_2.36_amd64.deb");
        assert_eq!(libc.sha256, Digest::of(b"libc6_2.36_amd64"));
        assert_eq!((libc.size, libc.architecture.as_str()), (16, "amd64"));
        assert_eq!(libc.origin, "main");
        assert!(r.excluded.is_empty());
    }

    #[test]
    fn cycles_end() {
        let text = "Package: a\nVersion: 1\nDepends: b\n\nPackage: b\nVersion: 1\nPre-Depends: a\n";
        assert_eq!(closure(text, &["a"]), ["a 1", "b 1"]);
    }

    #[test]
    fn the_highest_satisfying_version_is_chosen() {
        let text = "Package: app\nVersion: 1\nDepends: lib (<< 3)\n\n\
                    Package: lib\nVersion: 1.0\n\nPackage: lib\nVersion: 3.0\n\n\
                    Package: lib\nVersion: 2.0\n\nPackage: lib\nVersion: 2.0~rc1\n";
        assert_eq!(closure(text, &["app"]), ["app 1", "lib 2.0"]);
        assert_eq!(closure(text, &["lib"]), ["lib 3.0"]);
    }

    #[test]
    fn the_first_satisfiable_alternative_is_chosen() {
        let text = "Package: app\nVersion: 1\nDepends: missing | old (>= 2) | b | a\n\n\
                    Package: old\nVersion: 1\n\nPackage: a\nVersion: 1\n\nPackage: b\nVersion: 1\n";
        assert_eq!(closure(text, &["app"]), ["app 1", "b 1"]);
    }

    #[test]
    fn a_real_package_is_preferred_over_providers() {
        let text = "Package: app\nVersion: 1\nDepends: awk\n\n\
                    Package: awk\nVersion: 1\n\n\
                    Package: aawk\nVersion: 1\nProvides: awk\n";
        assert_eq!(closure(text, &["app"]), ["app 1", "awk 1"]);
    }

    #[test]
    fn providers_are_chosen_by_name_then_version() {
        let text = "Package: app\nVersion: 1\nDepends: mail-transport-agent\n\n\
                    Package: postfix\nVersion: 3\nProvides: mail-transport-agent\n\n\
                    Package: exim4\nVersion: 4\nProvides: mail-transport-agent\n\n\
                    Package: exim4\nVersion: 5\nProvides: mail-transport-agent\n";
        assert_eq!(closure(text, &["app"]), ["app 1", "exim4 5"]);
    }

    #[test]
    fn versioned_relations_need_versioned_provides() {
        let text = "Package: app\nVersion: 1\nDepends: libgcc1 (>= 1:10)\n\n\
                    Package: libgcc-s1\nVersion: 12.2.0-14\nProvides: libgcc1 (= 1:12.2.0-14)\n\n\
                    Package: other\nVersion: 1\nProvides: libgcc1\n";
        assert_eq!(closure(text, &["app"]), ["app 1", "libgcc-s1 12.2.0-14"]);
        let too_new = text.replace("(>= 1:10)", "(>= 1:13)");
        assert_eq!(
            error(&too_new, &["app"], &[]),
            "app 1: Depends 'libgcc1 (>= 1:13)' cannot be satisfied: \
             no provider of libgcc1 satisfies it (wanted through app)"
        );
        // Unversioned, `other` satisfies it too, but it sorts after.
        let plain = text.replace(" (>= 1:10)", "");
        assert_eq!(closure(&plain, &["app"]), ["app 1", "libgcc-s1 12.2.0-14"]);
    }

    #[test]
    fn packages_already_chosen_are_preferred() {
        let text = "Package: app\nVersion: 1\nDepends: gawk | mawk, mail-transport-agent\n\n\
                    Package: gawk\nVersion: 1\n\nPackage: mawk\nVersion: 1\n\n\
                    Package: exim4\nVersion: 4\nProvides: mail-transport-agent\n\n\
                    Package: postfix\nVersion: 3\nProvides: mail-transport-agent\n";
        assert_eq!(closure(text, &["app"]), ["app 1", "exim4 4", "gawk 1"]);
        assert_eq!(
            closure(text, &["postfix", "mawk", "app"]),
            ["app 1", "mawk 1", "postfix 3"]
        );
    }

    #[test]
    fn any_needs_multi_arch_allowed() {
        let text = "Package: app\nVersion: 1\nArchitecture: all\nDepends: python3:any (>= 3.11)\n\n\
                    Package: python3\nVersion: 3.11.2\nMulti-Arch: allowed\n";
        assert_eq!(closure(text, &["app"]), ["app 1", "python3 3.11.2"]);
        for other in ["foreign", "same", "no"] {
            let text = text.replace("allowed", other);
            let err = error(&text, &["app"], &[]);
            assert!(
                err.starts_with(
                    "app 1: Depends 'python3:any (>= 3.11)' cannot be satisfied: \
                     the index has python3 3.11.2 (amd64, Multi-Arch: "
                ),
                "{err}"
            );
        }
        // A plain relation is satisfied whatever the Multi-Arch.
        let plain = text.replace(":any", "").replace("allowed", "same");
        assert_eq!(closure(&plain, &["app"]), ["app 1", "python3 3.11.2"]);
    }

    #[test]
    fn foreign_packages_satisfy_plain_relations_from_all() {
        let text = "Package: app\nVersion: 1\nArchitecture: all\nDepends: tool\n\n\
                    Package: tool\nVersion: 1\nMulti-Arch: foreign\n";
        assert_eq!(closure(text, &["app"]), ["app 1", "tool 1"]);
    }

    #[test]
    fn architecture_qualifiers_and_other_architectures() {
        let text = "Package: app\nVersion: 1\nDepends: lib:amd64, data:native, alllib:amd64\n\n\
                    Package: lib\nVersion: 1\n\nPackage: data\nVersion: 1\n\n\
                    Package: alllib\nVersion: 1\nArchitecture: all\n\n\
                    Package: lib32\nVersion: 1\nArchitecture: i386\n\n\
                    Package: lib\nVersion: 9\nArchitecture: i386\n";
        assert_eq!(
            closure(text, &["app"]),
            ["alllib 1", "app 1", "data 1", "lib 1"]
        );
        // i386 packages are not in an amd64 index at all.
        assert_eq!(
            error(text, &["lib32"], &[]),
            "unknown package lib32: no index has it and nothing provides it"
        );
        let cross = text.replace("lib:amd64", "lib:i386");
        assert!(error(&cross, &["app"], &[]).contains("'lib:i386' cannot be satisfied"));
    }

    #[test]
    fn the_result_does_not_depend_on_the_order_of_indexes_or_requests() {
        let text = "Package: app\nVersion: 1\nDepends: x | y, mta, lib (>= 1)\n\n\
                    Package: tool\nVersion: 2\nDepends: y\n\n\
                    Package: x\nVersion: 1\n\nPackage: y\nVersion: 1\n\n\
                    Package: lib\nVersion: 1\n\nPackage: lib\nVersion: 2\n\n\
                    Package: b-mta\nVersion: 1\nProvides: mta\n\n\
                    Package: a-mta\nVersion: 1\nProvides: mta\n\n\
                    Package: a-mta\nVersion: 2\nProvides: mta\n";
        let pkgs = packages(text);
        let mut expected = Index::new("amd64");
        expected.add("main", pkgs.clone());
        let expected = resolve(&expected, &["app", "tool"], &[]).unwrap();
        // app is visited first and takes x before tool's y is chosen: the
        // closure is deterministic, not minimal.
        assert_eq!(
            chosen(&expected),
            ["a-mta 2", "app 1", "lib 2", "tool 2", "x 1", "y 1"]
        );
        for rotation in 0..pkgs.len() {
            let mut shuffled = pkgs.clone();
            shuffled.rotate_left(rotation);
            shuffled.reverse();
            let (first, second) = shuffled.split_at(rotation);
            let mut index = Index::new("amd64");
            index.add("main", second.to_vec());
            index.add("main", first.to_vec());
            let got = resolve(&index, &["tool", "app", "tool"], &[]).unwrap();
            assert_eq!(got, expected, "rotation {rotation}");
        }
    }

    #[test]
    fn one_version_is_pinned_from_several_indexes() {
        let text = "Package: lib\nVersion: 1\n";
        let mut index = Index::new("amd64");
        index.add("updates", packages(text));
        index.add("main", packages(text));
        let r = resolve(&index, &["lib"], &[]).unwrap();
        assert_eq!(r.packages[0].origin, "main");

        let mut other = packages(text);
        other[0].sha256 = Digest::of(b"something else");
        index.add("evil", other);
        assert_eq!(
            resolve(&index, &["lib"], &[]).unwrap_err(),
            ResolveError::Inconsistent(Box::new(Inconsistent {
                name: "lib".into(),
                version: "1".parse().unwrap(),
                architecture: "amd64".into(),
                first: Digest::of(b"something else"),
                first_origin: "evil".into(),
                second: Digest::of(b"lib_1_amd64"),
                second_origin: "main".into(),
            }))
        );
    }

    #[test]
    fn unknown_and_virtual_requests() {
        let text = "Package: exim4\nVersion: 4\nProvides: mail-transport-agent\n\n\
                    Package: busybox\nVersion: 1\nProvides: awk\n";
        assert_eq!(
            error(text, &["nope"], &[]),
            "unknown package nope: no index has it and nothing provides it"
        );
        assert_eq!(closure(text, &["awk"]), ["busybox 1"]);
        let two = format!("{text}\nPackage: postfix\nVersion: 3\nProvides: mail-transport-agent\n");
        assert_eq!(
            error(&two, &["mail-transport-agent"], &[]),
            "mail-transport-agent is a virtual package provided by exim4, postfix: \
             request one of them"
        );
    }

    #[test]
    fn an_unsatisfiable_relation_names_the_chain_that_wanted_it() {
        let text = "Package: app\nVersion: 1\nDepends: libfoo\n\n\
                    Package: libfoo\nVersion: 2\nPre-Depends: libbar (>= 2) | libbaz\n\n\
                    Package: libbar\nVersion: 1.0\n\nPackage: libbar\nVersion: 1.5\n";
        let err = resolve(&index_of(text), &["app"], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "libfoo 2: Pre-Depends 'libbar (>= 2) | libbaz' cannot be satisfied: \
             the index has libbar 1.5 (amd64, Multi-Arch: no), 1.0 (amd64, Multi-Arch: no); \
             no package libbaz in the index (wanted through app -> libfoo)"
        );
        let ResolveError::Unsatisfiable(u) = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            (u.chain, u.field),
            (vec!["app".into(), "libfoo".into()], "Pre-Depends")
        );
    }

    #[test]
    fn one_version_per_name() {
        let text = "Package: a\nVersion: 1\nDepends: c (<< 2)\n\n\
                    Package: b\nVersion: 1\nDepends: c (>= 2)\n\n\
                    Package: c\nVersion: 1\n\nPackage: c\nVersion: 2\n";
        assert_eq!(
            error(text, &["a", "b"], &[]),
            "b 1: Depends 'c (>= 2)' cannot be satisfied: c 1 is already chosen \
             (wanted through b)"
        );
    }

    #[test]
    fn excluded_packages_are_dropped_and_their_wanters_named() {
        let text = "Package: app\nVersion: 1\nDepends: libfoo, mta\n\n\
                    Package: tool\nVersion: 1\nDepends: libfoo (>= 9) | other\n\n\
                    Package: libfoo\nVersion: 1\nDepends: libc6\n\n\
                    Package: libc6\nVersion: 1\n\n\
                    Package: exim4\nVersion: 4\nProvides: mta\n";
        let r = resolve(&index_of(text), &["app", "tool"], &["libfoo", "exim4"]).unwrap();
        assert_eq!(chosen(&r), ["app 1", "tool 1"]);
        let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            r.excluded,
            [
                pair("exim4", "app"),
                pair("libfoo", "app"),
                pair("libfoo", "tool"),
            ]
        );
        // Still followed when something else wants it.
        let r = resolve(&index_of(text), &["app", "libfoo"], &["exim4"]).unwrap();
        assert_eq!(chosen(&r), ["app 1", "libc6 1", "libfoo 1"]);
        assert_eq!(
            error(text, &["app"], &["app"]),
            "app is both requested and excluded"
        );
    }

    #[test]
    fn a_real_closure_from_bookworm_stanzas() {
        let mut index = Index::new("amd64");
        index.add("bookworm", read_packages(BOOKWORM.as_bytes()).unwrap());
        let r = resolve(&index, &["ca-certificates"], &["debconf"]).unwrap();
        assert_eq!(
            chosen(&r),
            [
                "ca-certificates 20250419~deb12u2",
                "gcc-12-base 12.2.0-14+deb12u1",
                "libc6 2.36-9+deb12u14",
                "libgcc-s1 12.2.0-14+deb12u1",
                "libssl3 3.0.22-1~deb12u2",
                "openssl 3.0.22-1~deb12u2",
            ]
        );
        assert_eq!(r.excluded, [("debconf".into(), "ca-certificates".into())]);
        let ssl = &r.packages[4];
        assert_eq!(
            ssl.filename,
            "pool/updates/main/o/openssl/libssl3_3.0.22-1~deb12u2_amd64.deb"
        );
        assert_eq!(ssl.size, 2039888);
        let with_debconf = resolve(&index, &["ca-certificates"], &[]).unwrap();
        assert!(chosen(&with_debconf).contains(&"debconf 1.5.82".to_string()));
        // perl-base pre-depends on dpkg, which the sample lacks.
        assert_eq!(
            resolve(&index, &["perl-base"], &[])
                .unwrap_err()
                .to_string(),
            "perl-base 5.36.0-7+deb12u4: Pre-Depends 'libcrypt1 (>= 1:4.1.0)' cannot be \
             satisfied: no package libcrypt1 in the index (wanted through perl-base)"
        );
    }
}
