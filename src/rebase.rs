//! What `ingot rebase` decides before anything is written: which of an
//! image's own layers may be kept, byte for byte, on another base, and
//! what of its config is its own rather than its old base's. Pure: views
//! and configs in, findings out; `pipeline::rebase` reads the layers and
//! `commands::rebase` runs the command.
//!
//! Why keeping a layer gives exactly the bytes a rebuild would write: a
//! layer's bytes are a function of its steps, its sources and what the
//! planner looks up in the view below it. A layer whose
//! `dev.ingot.layer.base-dependent` is `false` read no base file's content
//! or metadata (no `user`, `group`, `remove`, `attrs`, `packages`, no
//! template naming `base`, no path through a base symlink): the only
//! lookups it made below are, for every path it writes and each ancestor of
//! it, what kind of node is there (absent, a directory, a file, a symlink
//! and its target). Those decide whether a parent is created (`0755 0:0`),
//! left alone, or refused, and whether a file needs a whiteout. So when
//! every such path has the same kind on the new base (with the image's own
//! layers below it) as on the old, the planner makes the same decisions,
//! hence the same entries, hence the same bytes. [`lookups`] records those
//! kinds on the old base and [`mismatches`] compares them on the new.
//!
//! One lookup would leave no trace in the image: a directory the base
//! already has, which a `mkdir` or a copied tree leaves alone, writes
//! nothing. With an entry of the layer below it, that entry's parents name
//! it; with none, the planner marks the layer base-dependent, so it is
//! rebuilt rather than kept.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use oci_spec::image::Config;

use crate::image::Port;
use crate::image::config::ConfigSpec;
use crate::rootfs::meta::ImagePath;
use crate::rootfs::{Change, NodeKind, View};

/// What a layer's planner saw at a path below it, as far as it looked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Absent,
    Directory,
    File,
    Symlink(String),
    Hardlink(String),
    Special,
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lookup::Absent => write!(f, "absent"),
            Lookup::Directory => write!(f, "a directory"),
            Lookup::File => write!(f, "a file"),
            Lookup::Symlink(t) => write!(f, "a symlink to {t}"),
            Lookup::Hardlink(t) => write!(f, "a hardlink to /{t}"),
            Lookup::Special => write!(f, "a special file"),
        }
    }
}

/// The kind of node `view` has at `path`.
pub fn lookup(view: &View, path: &ImagePath) -> Lookup {
    match view.get(path).map(|n| &n.kind) {
        None => Lookup::Absent,
        Some(NodeKind::Dir) => Lookup::Directory,
        Some(NodeKind::File { .. }) => Lookup::File,
        Some(NodeKind::Symlink { target }) => Lookup::Symlink(target.clone()),
        Some(NodeKind::Hardlink { target }) => Lookup::Hardlink(target.as_rel().to_string()),
        Some(NodeKind::Special) => Lookup::Special,
    }
}

/// The paths a layer's changes name: entries, whiteouts and opaque
/// directories.
pub fn touched(changes: &[Change]) -> BTreeSet<ImagePath> {
    changes
        .iter()
        .map(|c| match c {
            Change::Put(p, _, _) | Change::Whiteout(p) | Change::Opaque(p) => p.clone(),
        })
        .collect()
}

/// What the view below a layer has at every path the layer names and at
/// each of their ancestors: the lookups its planner made (see the module
/// header).
pub fn lookups(changes: &[Change], below: &View) -> BTreeMap<ImagePath, Lookup> {
    let mut out = BTreeMap::new();
    for path in touched(changes) {
        for p in path.ancestors().into_iter().chain([path.clone()]) {
            out.entry(p).or_insert_with_key(|p| lookup(below, p));
        }
    }
    out
}

/// Each path whose kind on the new view below differs from what the old
/// one had, in words: `/srv: a directory in the old base, absent in the
/// new`.
pub fn mismatches(recorded: &BTreeMap<ImagePath, Lookup>, new_below: &View) -> Vec<String> {
    recorded
        .iter()
        .filter_map(|(path, old)| {
            let new = lookup(new_below, path);
            (new != *old).then(|| format!("{path}: {old} in the old base, {new} in the new"))
        })
        .collect()
}

/// The paths a layer's changes name that the old base has: what a
/// base-dependent layer took from it (`/etc/passwd` for a `user` step).
pub fn taken_from_base(changes: &[Change], old_base: &View) -> Vec<ImagePath> {
    touched(changes)
        .into_iter()
        .filter(|p| old_base.get(p).is_some())
        .collect()
}

/// The part of an image's runtime config that is its own: what differs
/// from its old base's, as a recipe's `config` would say it, so that
/// [`crate::image::config::merge`] puts it on any base. A value equal to
/// the old base's counts as inherited (a recipe that set it to the same
/// value cannot be told apart; `rebase --recipe` has the recipe's word).
/// Ports or volumes the old base had and the image dropped cannot be
/// said in a recipe, and are refused.
pub fn own_config(image: Option<&Config>, old_base: Option<&Config>) -> Result<ConfigSpec, String> {
    let empty = Config::default();
    let (image, old) = (image.unwrap_or(&empty), old_base.unwrap_or(&empty));
    let env_map = |c: &Config| -> BTreeMap<String, String> {
        c.env()
            .iter()
            .flatten()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect()
    };
    let (image_env, old_env) = (env_map(image), env_map(old));
    if let Some(gone) = old_env.keys().find(|k| !image_env.contains_key(*k)) {
        return Err(format!(
            "env {gone} of the old base is not in the image's config"
        ));
    }
    let env = image_env
        .into_iter()
        .filter(|(k, v)| old_env.get(k) != Some(v))
        .collect();
    let own = |a: &Option<String>, b: &Option<String>| a.clone().filter(|_| a != b);
    let entrypoint = image
        .entrypoint()
        .clone()
        .filter(|_| image.entrypoint() != old.entrypoint());
    // An entrypoint of the image's own reset the base's cmd: any cmd then
    // is the image's own.
    let cmd = if entrypoint.is_some() {
        image.cmd().clone()
    } else {
        image.cmd().clone().filter(|_| image.cmd() != old.cmd())
    };
    if entrypoint.is_none() && image.cmd().is_none() && old.cmd().is_some() {
        return Err("the image drops its old base's cmd".into());
    }
    let added = |a: &Option<Vec<String>>, b: &Option<Vec<String>>, what: &str| {
        let (a, b) = (a.clone().unwrap_or_default(), b.clone().unwrap_or_default());
        if let Some(gone) = b.iter().find(|x| !a.contains(x)) {
            return Err(format!(
                "{what} {gone} of the old base is not in the image's config"
            ));
        }
        Ok(a.into_iter().filter(|x| !b.contains(x)).collect::<Vec<_>>())
    };
    let ports = added(image.exposed_ports(), old.exposed_ports(), "port")?
        .iter()
        .map(|p| p.parse::<Port>())
        .collect::<Result<Vec<_>, _>>()?;
    let volumes = added(image.volumes(), old.volumes(), "volume")?;
    let labels_of = |c: &Config| c.labels().clone().unwrap_or_default();
    let (image_labels, old_labels): (HashMap<_, _>, HashMap<_, _>) =
        (labels_of(image), labels_of(old));
    if let Some(gone) = old_labels.keys().find(|k| !image_labels.contains_key(*k)) {
        return Err(format!(
            "label {gone} of the old base is not in the image's config"
        ));
    }
    let labels = image_labels
        .into_iter()
        .filter(|(k, v)| old_labels.get(k) != Some(v))
        .collect();
    Ok(ConfigSpec {
        entrypoint,
        cmd,
        env,
        workdir: own(image.working_dir(), old.working_dir()),
        user: own(image.user(), old.user()),
        ports,
        labels,
        stop_signal: own(image.stop_signal(), old.stop_signal()),
        volumes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::config::merge;
    use crate::rootfs::Node;

    fn p(s: &str) -> ImagePath {
        s.parse().unwrap()
    }

    fn node(kind: NodeKind) -> Node {
        Node {
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
            layer: 0,
            capability: false,
        }
    }

    fn view(nodes: &[(&str, NodeKind)]) -> View {
        let mut v = View::new();
        v.apply(
            nodes
                .iter()
                .map(|(path, kind)| Change::Put(p(path), node(kind.clone()), None))
                .collect::<Vec<_>>(),
        );
        v
    }

    #[test]
    fn a_layer_is_kept_when_every_ancestor_looks_the_same() {
        let layer = [Change::Put(
            p("/srv/app/index.html"),
            node(NodeKind::File { size: 1 }),
            None,
        )];
        let old = view(&[("/srv", NodeKind::Dir), ("/etc", NodeKind::Dir)]);
        let recorded = lookups(&layer, &old);
        assert_eq!(recorded.len(), 3);
        assert_eq!(recorded[&p("/srv")], Lookup::Directory);
        assert_eq!(recorded[&p("/srv/app")], Lookup::Absent);
        // Other paths may differ: the layer never looked at them.
        let same = view(&[("/srv", NodeKind::Dir), ("/usr", NodeKind::Dir)]);
        assert!(mismatches(&recorded, &same).is_empty());
    }

    #[test]
    fn a_directory_gone_or_turned_symlink_is_named() {
        let layer = [Change::Put(
            p("/srv/a"),
            node(NodeKind::File { size: 1 }),
            None,
        )];
        let recorded = lookups(&layer, &view(&[("/srv", NodeKind::Dir)]));
        assert_eq!(
            mismatches(&recorded, &View::new()),
            ["/srv: a directory in the old base, absent in the new"]
        );
        let link = view(&[(
            "/srv",
            NodeKind::Symlink {
                target: "/data".into(),
            },
        )]);
        assert_eq!(
            mismatches(&recorded, &link),
            ["/srv: a directory in the old base, a symlink to /data in the new"]
        );
    }

    #[test]
    fn what_a_dependent_layer_took_is_what_the_base_had() {
        let layer = [
            Change::Put(p("/etc/passwd"), node(NodeKind::File { size: 1 }), None),
            Change::Put(p("/home/x"), node(NodeKind::Dir), None),
        ];
        let base = view(&[
            ("/etc", NodeKind::Dir),
            ("/etc/passwd", NodeKind::File { size: 1 }),
        ]);
        assert_eq!(taken_from_base(&layer, &base), [p("/etc/passwd")]);
    }

    #[test]
    fn own_config_merged_on_the_old_base_gives_the_image_back() {
        let mut old = Config::default();
        old.set_env(Some(vec!["PATH=/bin".into(), "A=1".into()]));
        old.set_labels(Some(HashMap::from([("base".into(), "v1".into())])));
        old.set_cmd(Some(vec!["sh".into()]));
        let mut spec = ConfigSpec::default();
        spec.env.insert("A".into(), "2".into());
        spec.env.insert("B".into(), "3".into());
        spec.labels.insert("app".into(), "x".into());
        spec.entrypoint = Some(vec!["/app".into()]);
        spec.ports = vec!["8080/tcp".parse().unwrap()];
        let image = merge(Some(&old), &spec);
        let own = own_config(Some(&image), Some(&old)).unwrap();
        assert_eq!(merge(Some(&old), &own), image);
        assert_eq!(own.env.len(), 2);
        assert_eq!(own.labels.len(), 1);
        assert_eq!(own.cmd, None);
        // On another base, the image's own part lands on that base's.
        let mut new = old.clone();
        new.set_labels(Some(HashMap::from([("base".into(), "v2".into())])));
        assert_eq!(merge(Some(&new), &own), merge(Some(&new), &spec));
    }

    #[test]
    fn a_dropped_label_cannot_be_said_by_a_recipe() {
        let mut old = Config::default();
        old.set_labels(Some(HashMap::from([("base".into(), "v1".into())])));
        let err = own_config(Some(&Config::default()), Some(&old)).unwrap_err();
        assert!(err.contains("label base"), "{err}");
    }
}
