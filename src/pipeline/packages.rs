//! The `packages` steps of a recipe on their way to layers (issue 13): the
//! archives they resolve from (the recipe's own, else its base recipe's,
//! as a Debian stemcell records its archive), the closure each is locked
//! to, and the `.deb`s, fetched by SHA-256 into the content store, that a
//! layer built afresh installs.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use super::Log;
use crate::base::stemcell;
use crate::debian::archive::{self, ArchiveSource, PackagePin};
use crate::debian::fetch::{Mirrors, Settings};
use crate::debian::install::{self, Installed, Options};
use crate::error::{Error, IoContext, Result};
use crate::image::Platform;
use crate::lock::{LockFile, PackageSet};
use crate::net::Timeouts;
use crate::recipe::schema::{BaseRef, PackagesStep};
use crate::recipe::{Recipe, Step};
use crate::rootfs::View;
use crate::store::BlobStore;
use crate::store::file::{self, Links};
use crate::store::workdir::WorkDir;

/// The locked closure of each layer that installs packages, by layer
/// index.
pub type Closures = BTreeMap<usize, PackageSet>;

/// How closures are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// As the lock pins them; a step the lock does not answer is an error.
    Locked,
    /// As the lock pins them, else resolved from the archive now.
    Build,
    /// Resolved from the archive now, whatever the lock says.
    Relock,
}

/// The `packages` step of each layer that has one.
fn steps(recipe: &Recipe) -> impl Iterator<Item = (usize, &PackagesStep)> {
    recipe
        .spec
        .layers
        .iter()
        .enumerate()
        .filter_map(|(i, l)| match l.steps.first() {
            Some(Step::Packages(p)) => Some((i, p)),
            _ => None,
        })
}

/// Whether the recipe installs any package.
pub fn installs(recipe: &Recipe) -> bool {
    steps(recipe).next().is_some()
}

/// The archives `recipe`'s packages come from: its own, else those of the
/// recipe its base is built from (a stemcell's, at the version `lock`
/// pins as the base resolves it, or a `recipe:` base's), keyrings read.
/// `from` names `recipe` in `lock`.
pub fn archives(
    recipe: &Recipe,
    lock: Option<&LockFile>,
    from: &str,
) -> Result<Vec<ArchiveSource>> {
    if !recipe.spec.archives.is_empty() {
        return recipe
            .spec
            .archives
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let at = |m: String| {
                    Error::from(recipe.error_at(&["archives", &i.to_string(), "keyring"], m))
                };
                let path = recipe.resolve_src(&a.keyring).map_err(at)?;
                let keyring = read_keyring(&path)
                    .map_err(|e| at(format!("reading keyring {:?}: {e}", a.keyring)))?;
                Ok(ArchiveSource {
                    url: a.url.clone(),
                    suites: a.suites.clone(),
                    components: a.components.clone(),
                    keyring,
                    keyring_name: format!("{}: {}", recipe.file.display(), a.keyring),
                })
            })
            .collect();
    }
    match &recipe.spec.base {
        BaseRef::Stemcell { name, version } => {
            let version =
                crate::base::stemcell_version(recipe, from, name, version.as_deref(), lock);
            let unpacked = stemcell::unpack(name, version.as_deref())
                .map_err(|m| recipe.error_at(&["base"], m))?;
            archives(&unpacked.recipe, None, "")
        }
        BaseRef::Recipe(path) => {
            let inner = Recipe::load(&recipe.dir.join(path))?;
            let from = beside(from, &super::pathdiff(&inner.file, &recipe.dir));
            archives(&inner, lock, &from)
        }
        _ => Ok(Vec::new()),
    }
}

/// How the lock names the recipe at `rel` from the directory of the
/// recipe it names `from`: both are relative and `..`-first, as
/// [`super::pathdiff`] makes them, so `..` cancels a named directory.
fn beside(from: &str, rel: &str) -> String {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for part in rel.split('/') {
        match part {
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            "." | "" => {}
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

/// Largest keyring read: Debian's, with every release's keys, is 55 KB.
const MAX_KEYRING: u64 = 4 << 20;

/// A keyring file (or a symlink to one), refused when it is not a regular
/// file or is larger than [`MAX_KEYRING`].
fn read_keyring(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    file::read_regular(path, Links::Follow, MAX_KEYRING)
}

/// Debian's name for the architecture of `platform`.
pub fn debian_arch(platform: &Platform) -> Result<&'static str, String> {
    let arch = match (platform.arch.as_str(), platform.variant.as_deref()) {
        ("amd64", _) => "amd64",
        ("arm64", _) => "arm64",
        ("arm", Some("v7")) => "armhf",
        ("arm", Some("v5")) => "armel",
        ("386", _) => "i386",
        ("ppc64le", _) => "ppc64el",
        ("s390x", _) => "s390x",
        ("riscv64", _) => "riscv64",
        ("mips64le", _) => "mips64el",
        _ => return Err(format!("platform {platform} has no Debian architecture")),
    };
    Ok(arch)
}

/// What finding closures needs.
pub struct Context<'a> {
    /// The recipe's path as `ingot.lock` names it.
    pub from: &'a str,
    pub lock: Option<&'a LockFile>,
    pub resolve: Resolve,
    pub platform: &'a Platform,
    /// `--mirror` specs, as given.
    pub mirrors: &'a [String],
    pub timeouts: Timeouts,
}

/// The closure of every `packages` step of `recipe`.
pub fn closures(recipe: &Recipe, ctx: &Context, log: Log) -> Result<Closures> {
    let mut out = Closures::new();
    let mut sources: Option<Vec<ArchiveSource>> = None;
    for (index, step) in steps(recipe) {
        let layer = &recipe.spec.layers[index].name;
        let at = |m: String| Error::from(recipe.step_error(index, 0, None, m));
        if sources.is_none() {
            let lock = ctx.lock.filter(|_| ctx.resolve != Resolve::Relock);
            sources = Some(archives(recipe, lock, ctx.from)?);
        }
        let sources = sources.as_deref().unwrap_or_default();
        if sources.is_empty() {
            return Err(no_archive(recipe, index));
        }
        let request = request(ctx.from, layer, step, sources);
        let arch = debian_arch(ctx.platform).map_err(at)?;
        // A lock holds one closure per architecture the recipe builds for.
        let answering: Vec<&PackageSet> = ctx
            .lock
            .filter(|_| ctx.resolve != Resolve::Relock)
            .map(|lock| {
                lock.packages
                    .iter()
                    .filter(|set| set.from == ctx.from && set.layer == *layer)
                    .filter(|set| set.answers(&request))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(set) = answering.iter().find(|set| set.is_for(arch)) {
            out.insert(index, (*set).clone());
            continue;
        }
        if ctx.resolve == Resolve::Locked {
            return Err(at(not_locked(recipe, layer, arch, &answering)));
        }
        if ctx.resolve == Resolve::Build {
            log(&format!(
                "warning: layer {layer}: packages not locked, resolved from the archive (run ingot lock to pin them)"
            ));
        }
        let mirrors = mirrors(ctx.mirrors, &request.archives)?;
        let settings = Settings::with_timeouts(ctx.timeouts);
        let resolved = archive::lock_with(
            &settings,
            sources,
            arch,
            &step.install,
            &step.exclude,
            &mirrors,
            log,
        )
        .map_err(|e| Error::from(e).within(format!("layer {layer}")))?;
        for excluded in &resolved.excluded {
            log(&format!(
                "layer {layer}: excluded {} (wanted by {})",
                excluded.name,
                excluded.wanted_by.join(", ")
            ));
        }
        let mut set = request;
        set.packages = resolved.packages;
        out.insert(index, set);
    }
    Ok(out)
}

/// What each `packages` step of `recipe` asks for, by layer index, as the
/// lock records it (with no packages): what `ingot validate` looks for in
/// the lock. An error when the step has no archive to install from.
pub fn requests(recipe: &Recipe, from: &str, lock: &LockFile) -> Result<Vec<(usize, PackageSet)>> {
    let mut out = Vec::new();
    let mut sources: Option<Vec<ArchiveSource>> = None;
    for (index, step) in steps(recipe) {
        if sources.is_none() {
            sources = Some(archives(recipe, Some(lock), from)?);
        }
        let sources = sources.as_deref().unwrap_or_default();
        if sources.is_empty() {
            return Err(no_archive(recipe, index));
        }
        let layer = &recipe.spec.layers[index].name;
        out.push((index, request(from, layer, step, sources)));
    }
    Ok(out)
}

/// `--locked`, before anything is built: every `packages` step of
/// `recipe` (named `from` in the lock) is answered by `lock` (read from
/// `lock_path`) as written.
pub fn check_locked(
    recipe: &Recipe,
    from: &str,
    lock: &LockFile,
    lock_path: &std::path::Path,
) -> Result<()> {
    for (index, request) in requests(recipe, from, lock)? {
        let layer = &request.layer;
        if lock
            .package_set(from, layer)
            .is_none_or(|set| !set.answers(&request))
        {
            let message = format!(
                "--locked: {} does not pin the packages of layer {layer:?} as the recipe asks; run `ingot lock`",
                lock_path.display()
            );
            return Err(recipe.step_error(index, 0, None, message).into());
        }
    }
    Ok(())
}

/// A `packages` step with nowhere to install from.
fn no_archive(recipe: &Recipe, index: usize) -> Error {
    recipe
        .step_error(
            index,
            0,
            None,
            "no archive to install from: add `archives:` to the recipe, or build on a Debian stemcell",
        )
        .into()
}

/// Why a `--locked` build (or a stemcell, which is always built from its
/// own lock) has no closure for layer `layer` on `arch`, given the sets
/// that answer its request for other architectures.
fn not_locked(recipe: &Recipe, layer: &str, arch: &str, other: &[&PackageSet]) -> String {
    let mut archs: Vec<&str> = other.iter().map(|s| s.architecture()).collect();
    archs.sort();
    archs.dedup();
    let embedded = recipe.path.is_none();
    match (archs.is_empty(), embedded) {
        (true, _) => format!(
            "--locked: the packages of layer {layer:?} are not locked as the recipe asks; run `ingot lock {}`",
            recipe.file.display()
        ),
        (false, true) => format!(
            "stemcell {}@{} pins its packages for {} only: it does not build for {arch} yet",
            recipe.spec.name,
            recipe.spec.version,
            archs.join(", ")
        ),
        (false, false) => format!(
            "--locked: the packages of layer {layer:?} are locked for {} only, not {arch}; run `ingot lock {}`",
            archs.join(", "),
            recipe.file.display()
        ),
    }
}

/// What a step asks for, as the lock records it.
fn request(from: &str, layer: &str, step: &PackagesStep, sources: &[ArchiveSource]) -> PackageSet {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v
    };
    PackageSet {
        from: from.to_string(),
        layer: layer.to_string(),
        install: sorted(&step.install),
        exclude: sorted(&step.exclude),
        archives: sources.iter().map(|s| s.url.clone()).collect(),
        packages: Vec::new(),
    }
}

/// The mirrors of `specs` for `archives`.
fn mirrors(specs: &[String], archives: &[String]) -> Result<Mirrors> {
    let archives: Vec<&str> = archives.iter().map(String::as_str).collect();
    Ok(Mirrors::for_archives(specs, &archives)?)
}

/// Where `.deb`s are fetched to and from.
pub struct Debs<'a> {
    pub store: &'a BlobStore,
    /// `--mirror` specs, as given.
    pub mirrors: &'a [String],
    pub timeouts: Timeouts,
}

/// A layer's packages installed over `below`: their `.deb`s fetched
/// (those `below` lacks), unpacked, the database written. The staging
/// directory holds the files' content until the layer is written.
pub fn install_set(
    below: &View,
    set: &PackageSet,
    step: &PackagesStep,
    debs: &Debs,
    log: Log,
) -> Result<(Installed, WorkDir)> {
    let missing: Vec<PackagePin> = install::missing(below, &set.packages)
        .into_iter()
        .cloned()
        .collect();
    let mirrors = mirrors(debs.mirrors, &set.archives)?;
    let settings = Settings::with_timeouts(debs.timeouts);
    let paths = archive::fetch_debs_with(&settings, &missing, &mirrors, debs.store, log)
        .map_err(|e| Error::from(e).within(format!("layer {}", set.layer)))?;
    let by_name: HashMap<String, PathBuf> =
        missing.iter().map(|p| p.name.clone()).zip(paths).collect();
    let staging = WorkDir::new_in(&std::env::temp_dir(), ".ingot-packages-", 0o700)
        .context(|| "creating a staging directory for package contents".into())?;
    let options = Options {
        drop_setuid: step.drop_setuid,
    };
    let installed = install::install(below, &set.packages, &by_name, staging.path(), options)
        .map_err(|e| Error::Failed(format!("layer {}: {e}", set.layer)))?;
    Ok((installed, staging))
}

/// What a `packages` layer installed, for the build's report: read off
/// the dpkg database the layer wrote, so a layer served from the cache
/// reports the same as one built.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Packages this layer unpacked (the rest of the closure was there).
    pub installed: Vec<Installation>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Installation {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Its maintainer scripts, none of which ran.
    pub scripts_not_run: Vec<&'static str>,
}

/// The report of layer `layer_index`, which installed `set`, from `view`
/// (which holds the layer).
pub fn report(view: &View, set: &PackageSet, layer_index: usize) -> Report {
    let in_layer = |rel: &str| {
        crate::rootfs::meta::ImagePath::from_rel(rel)
            .and_then(|p| view.get(&p))
            .is_some_and(|n| n.layer == layer_index)
    };
    let info = |pin: &PackagePin, file: &str| {
        let bare = format!("{}/{}.{file}", install::INFO, pin.name);
        let qualified = format!("{}/{}:{}.{file}", install::INFO, pin.name, pin.architecture);
        in_layer(&bare) || in_layer(&qualified)
    };
    let installed = set
        .packages
        .iter()
        .filter(|pin| info(pin, "list"))
        .map(|pin| Installation {
            name: pin.name.clone(),
            version: pin.version.clone(),
            architecture: pin.architecture.clone(),
            scripts_not_run: crate::debian::deb::Script::ALL
                .into_iter()
                .map(|s| s.name())
                .filter(|s| info(pin, s))
                .collect(),
        })
        .collect();
    Report { installed }
}

/// The report's lines for the log: one per package whose scripts did not
/// run, so nothing is silently half-installed.
pub fn log_report(layer: &str, report: &Report, log: Log) {
    log(&format!(
        "layer {layer}: {} packages installed",
        report.installed.len()
    ));
    for p in report
        .installed
        .iter()
        .filter(|p| !p.scripts_not_run.is_empty())
    {
        log(&format!(
            "layer {layer}: {} {}: maintainer scripts not run: {}",
            p.name,
            p.version,
            p.scripts_not_run.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every embedded stemcell that installs packages builds from its own
    /// lock alone: each step is answered, from the recipe's archives, by
    /// pins with plain archive paths.
    #[test]
    fn embedded_stemcells_are_locked_as_their_recipes_ask() {
        let mut checked = 0;
        for (name, version) in stemcell::available() {
            let unpacked = stemcell::unpack(&name, Some(&version)).unwrap();
            let recipe = &unpacked.recipe;
            if !installs(recipe) {
                continue;
            }
            let lock = crate::lock::read(&recipe.dir.join(crate::lock::FILE_NAME))
                .unwrap()
                .unwrap_or_else(|| panic!("stemcell {name} has no ingot.lock"));
            let sources = archives(recipe, None, "recipe.yaml").unwrap();
            let urls: Vec<String> = sources.iter().map(|s| s.url.clone()).collect();
            for (index, step) in steps(recipe) {
                let layer = &recipe.spec.layers[index].name;
                let asked = request("recipe.yaml", layer, step, &sources);
                let set = lock
                    .package_set("recipe.yaml", layer)
                    .filter(|set| set.answers(&asked))
                    .unwrap_or_else(|| panic!("{name}: layer {layer} is not locked as asked"));
                assert!(!set.packages.is_empty());
                for pin in &set.packages {
                    assert!(urls.contains(&pin.archive), "{name}: {pin:?}");
                    assert!(
                        pin.path.starts_with("pool/") && !pin.path.split('/').any(|c| c == ".."),
                        "{name}: {pin:?}"
                    );
                }
            }
            checked += 1;
        }
        assert!(checked >= 2, "the Debian stemcells install packages");
    }

    #[test]
    fn a_base_recipe_is_named_from_the_locked_recipe() {
        assert_eq!(
            beside("recipe.yaml", "../lower/recipe.yaml"),
            "../lower/recipe.yaml"
        );
        assert_eq!(
            beside("../lower/recipe.yaml", "../base/r.yaml"),
            "../base/r.yaml"
        );
        assert_eq!(beside("a/recipe.yaml", "b/recipe.yaml"), "a/b/recipe.yaml");
        assert_eq!(
            beside("../x/recipe.yaml", "../../y/recipe.yaml"),
            "../../y/recipe.yaml"
        );
    }

    #[test]
    fn a_recipe_on_a_debian_stemcell_inherits_its_archives() {
        let text = "name: a\nversion: '1'\nbase: stemcell:debian12\n\
                    layers:\n  - name: l\n    steps:\n      - packages: { install: [python3-minimal] }\n";
        let recipe =
            Recipe::parse(text, std::path::Path::new("r.yaml"), std::env::temp_dir()).unwrap();
        let sources = archives(&recipe, None, "recipe.yaml").unwrap();
        let urls: Vec<&str> = sources.iter().map(|s| s.url.as_str()).collect();
        assert!(
            urls.iter()
                .all(|u| u.starts_with("https://snapshot.debian.org/")),
            "{urls:?}"
        );
        assert!(sources.iter().all(|s| !s.keyring.is_empty()));
    }

    /// A lock holds one closure per architecture: a build takes its own
    /// architecture's, and a `--locked` build for one the lock lacks names
    /// those it has.
    #[test]
    fn closures_are_locked_per_architecture() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.gpg"), b"keys").unwrap();
        let text = "name: a\nversion: '1'\nbase: scratch\nplatforms: [linux/amd64, linux/arm64]\n\
                    archives:\n  - { url: 'http://a.invalid/debian', suites: [s], components: [main], keyring: k.gpg }\n\
                    layers:\n  - name: l\n    steps:\n      - packages: { install: [hello] }\n";
        let mut recipe = Recipe::parse(
            text,
            std::path::Path::new("r.yaml"),
            dir.path().to_path_buf(),
        )
        .unwrap();
        // Loaded from a file, not embedded as a stemcell is.
        recipe.path = Some(dir.path().join("r.yaml"));
        let sources = archives(&recipe, None, "recipe.yaml").unwrap();
        let Some((_, step)) = steps(&recipe).next() else {
            panic!("a packages step")
        };
        let set = |arch: &str| {
            let mut set = request("r.yaml", "l", step, &sources);
            set.packages = ["hello", "hello-data"]
                .iter()
                .zip([arch, "all"])
                .map(|(name, arch)| PackagePin {
                    name: name.to_string(),
                    version: "1".into(),
                    architecture: arch.into(),
                    archive: "http://a.invalid/debian".into(),
                    path: format!("pool/{name}_{arch}.deb"),
                    size: 1,
                    sha256: crate::digest::Digest::of(arch.as_bytes()),
                })
                .collect();
            set
        };
        let lock = LockFile::new(Vec::new()).with_packages(vec![set("arm64"), set("amd64")]);
        assert_eq!(lock.packages[0].architecture(), "amd64", "sorted");
        let closures = |platform: &str| {
            let platform: Platform = platform.parse().unwrap();
            let ctx = Context {
                from: "r.yaml",
                lock: Some(&lock),
                resolve: Resolve::Locked,
                platform: &platform,
                mirrors: &[],
                timeouts: Timeouts::default(),
            };
            closures(&recipe, &ctx, &mut |_| {})
        };
        for arch in ["amd64", "arm64"] {
            let got = closures(&format!("linux/{arch}")).unwrap();
            assert_eq!(got[&0], set(arch), "{arch}");
        }
        let err = closures("linux/s390x").unwrap_err().to_string();
        assert!(
            err.contains("locked for amd64, arm64 only, not s390x") && err.contains("r.yaml:10:"),
            "{err}"
        );
    }

    #[test]
    fn platforms_map_to_debian_architectures() {
        let arch = |p: &str| debian_arch(&p.parse().unwrap());
        assert_eq!(arch("linux/amd64"), Ok("amd64"));
        assert_eq!(arch("linux/arm/v7"), Ok("armhf"));
        assert_eq!(arch("linux/ppc64le"), Ok("ppc64el"));
        assert!(arch("linux/wasm").is_err());
    }
}
