//! A [`Diff`] in words, terse as `diff --stat`: a header naming both
//! images, then one section for each part that differs, a line per key,
//! layer, file or package (`+` only in the new image, `-` only in the
//! old, `~` in both but different, `=` shared).

use std::fmt::Write as _;

use serde_json::Value;

use super::files::{FileChange, Status};
use super::packages::{Direction, PackageDiff};
use super::tree::{FileMeta, Kind};
use super::{Diff, FieldChange, LayerDiff, LayerRef, Named};

/// The diff as text, ending in a newline.
pub fn render(diff: &Diff) -> String {
    let mut out = String::new();
    header(&mut out, "---", &diff.old);
    header(&mut out, "+++", &diff.new);
    if diff.is_empty() {
        out.push_str("identical\n");
        return out;
    }
    if let Some(index) = diff.index.as_ref().filter(|i| !i.is_empty()) {
        let _ = writeln!(out, "index {} -> {}", index.old, index.new);
        for p in &index.added {
            let _ = writeln!(out, "  + {p}");
        }
        for p in &index.removed {
            let _ = writeln!(out, "  - {p}");
        }
        fields(&mut out, &index.changed, |v| v.clone());
        if !index.annotations.is_empty() {
            out.push_str("index annotations\n");
            fields(&mut out, &index.annotations, |v| format!("{v:?}"));
        }
    }
    match &diff.annotations {
        Some(changes) if !changes.is_empty() => {
            out.push_str("annotations\n");
            fields(&mut out, changes, |v| format!("{v:?}"));
        }
        Some(_) => {}
        None => out.push_str("annotations: not compared (a docker-archive has no manifest)\n"),
    }
    if !diff.config.is_empty() {
        out.push_str("config\n");
        config_fields(&mut out, &diff.config);
    }
    layers(&mut out, &diff.layers);
    if !diff.filesystem.is_empty() {
        let _ = writeln!(out, "filesystem: {}", counts(&diff.filesystem));
        for change in &diff.filesystem {
            file(&mut out, "  ", change);
        }
    }
    if let Some(packages) = diff.packages.as_ref().filter(|p| !p.is_empty()) {
        packages_section(&mut out, packages);
    }
    if diff.digests_differ()
        && diff.config.is_empty()
        && diff.annotations.as_ref().is_none_or(Vec::is_empty)
        && diff.layers.differing.is_empty()
    {
        out.push_str(
            "the digests differ in what diff does not compare: the manifest's or the config's encoding\n",
        );
    }
    out
}

fn header(out: &mut String, mark: &str, side: &Named) {
    let of = match side.digest_of {
        super::DigestOf::Manifest => "manifest",
        super::DigestOf::Config => "config",
    };
    let _ = writeln!(out, "{mark} {} {} ({of})", side.image, side.digest);
}

fn fields<T>(out: &mut String, changes: &[FieldChange<T>], show: impl Fn(&T) -> String) {
    for c in changes {
        let _ = match (&c.old, &c.new) {
            (None, Some(new)) => writeln!(out, "  + {}: {}", c.key, show(new)),
            (Some(old), None) => writeln!(out, "  - {}: {}", c.key, show(old)),
            (Some(old), Some(new)) => {
                writeln!(out, "  ~ {}: {} -> {}", c.key, show(old), show(new))
            }
            (None, None) => Ok(()),
        };
    }
}

/// Config fields, an array changed shown by the elements it lost and
/// gained (`config.Env`, `rootfs.diff_ids`), not whole twice.
fn config_fields(out: &mut String, changes: &[FieldChange<Value>]) {
    for c in changes {
        match (&c.old, &c.new) {
            (Some(Value::Array(old)), Some(Value::Array(new))) => {
                let only = |a: &[Value], b: &[Value]| -> Vec<String> {
                    a.iter()
                        .filter(|v| !b.contains(v))
                        .map(Value::to_string)
                        .collect()
                };
                let (lost, gained) = (only(old, new), only(new, old));
                let mut parts = Vec::new();
                if !lost.is_empty() {
                    parts.push(format!("- {}", lost.join(", ")));
                }
                if !gained.is_empty() {
                    parts.push(format!("+ {}", gained.join(", ")));
                }
                if parts.is_empty() {
                    parts.push("the same elements, in another order".into());
                }
                let _ = writeln!(out, "  ~ {}: {}", c.key, parts.join("; "));
            }
            _ => fields(out, std::slice::from_ref(c), Value::to_string),
        }
    }
}

fn layers(out: &mut String, layers: &LayerDiff) {
    if layers.differing.is_empty() && layers.shared.iter().all(|l| l.other_digest.is_none()) {
        return;
    }
    let _ = write!(out, "layers: {} shared", layers.shared.len());
    if let Some(first) = layers.first_differing {
        let _ = write!(out, ", first differing {first}");
    }
    out.push('\n');
    for shared in &layers.shared {
        let _ = write!(out, "  = {} {}", shared.index, layer(&shared.layer));
        if let Some(other) = &shared.other_digest {
            let _ = write!(out, " -> {other} (the same tar, encoded otherwise)");
        }
        out.push('\n');
    }
    for differing in &layers.differing {
        let (mark, text) = match (&differing.old, &differing.new) {
            (Some(old), Some(new)) if old.name == new.name => (
                "~",
                format!("{} {} -> {}", old.name, old.digest, new.digest),
            ),
            (Some(old), Some(new)) => ("~", format!("{} -> {}", layer(old), layer(new))),
            (Some(old), None) => ("-", layer(old)),
            (None, Some(new)) => ("+", layer(new)),
            (None, None) => continue,
        };
        let _ = writeln!(
            out,
            "  {mark} {} {text}: {}",
            differing.index,
            counts(&differing.files)
        );
        for change in &differing.files {
            file(out, "      ", change);
        }
    }
}

fn layer(l: &LayerRef) -> String {
    format!("{} {}", l.name, l.digest)
}

/// `N added, N removed, N changed` of files.
fn counts(changes: &[FileChange]) -> String {
    let n = |s: Status| changes.iter().filter(|c| c.status == s).count();
    tally(&[
        (n(Status::Added), "added"),
        (n(Status::Removed), "removed"),
        (n(Status::Changed), "changed"),
    ])
    .unwrap_or_else(|| "no file differs".into())
}

/// `N what, N what`, leaving out the zeros; None when all are.
fn tally(counts: &[(usize, &str)]) -> Option<String> {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn file(out: &mut String, indent: &str, change: &FileChange) {
    let _ = match (change.status, &change.old, &change.new) {
        (Status::Added, _, Some(new)) => {
            writeln!(out, "{indent}+ {} ({})", change.path, what(new))
        }
        (Status::Removed, Some(old), _) => {
            writeln!(out, "{indent}- {} ({})", change.path, what(old))
        }
        (Status::Changed, Some(old), Some(new)) => writeln!(
            out,
            "{indent}~ {} ({}){}",
            change.path,
            change.attributes.join(", "),
            change_detail(old, new)
        ),
        _ => Ok(()),
    };
}

/// An entry in a few words: a file's size, a link's target, a kind.
fn what(meta: &FileMeta) -> String {
    match (meta.kind, meta.size, &meta.link) {
        (Kind::File, Some(size), _) => format!("{size} bytes"),
        (Kind::Symlink, _, Some(target)) => format!("symlink to {target}"),
        (Kind::Hardlink, _, Some(target)) => format!("hardlink to {target}"),
        (Kind::Dir, ..) => "directory".into(),
        (Kind::Whiteout, ..) => "whiteout".into(),
        (Kind::Opaque, ..) => "opaque whiteout".into(),
        _ => "device or fifo".into(),
    }
}

/// Old and new values of what changed, briefly: sizes, modes, owners.
fn change_detail(old: &FileMeta, new: &FileMeta) -> String {
    let mut parts = Vec::new();
    if old.kind != new.kind {
        parts.push(format!("{} -> {}", what(old), what(new)));
    }
    if old.size != new.size
        && let (Some(a), Some(b)) = (old.size, new.size)
    {
        parts.push(format!("{a} -> {b} bytes"));
    }
    if old.mode != new.mode {
        parts.push(format!("mode {:04o} -> {:04o}", old.mode, new.mode));
    }
    if (old.uid, old.gid) != (new.uid, new.gid) {
        parts.push(format!(
            "owner {}:{} -> {}:{}",
            old.uid, old.gid, new.uid, new.gid
        ));
    }
    if old.mtime != new.mtime {
        parts.push(format!("mtime {} -> {}", old.mtime, new.mtime));
    }
    if old.link != new.link && old.kind == new.kind {
        parts.push(format!(
            "{} -> {}",
            old.link.as_deref().unwrap_or(""),
            new.link.as_deref().unwrap_or("")
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join("; "))
    }
}

fn packages_section(out: &mut String, packages: &PackageDiff) {
    let n = |d: Direction| packages.changed.iter().filter(|c| c.direction == d).count();
    let counts = tally(&[
        (packages.added.len(), "added"),
        (packages.removed.len(), "removed"),
        (n(Direction::Upgraded), "upgraded"),
        (n(Direction::Downgraded), "downgraded"),
        (n(Direction::Changed), "changed"),
    ]);
    let _ = writeln!(out, "packages: {}", counts.unwrap_or_default());
    for p in &packages.added {
        let _ = writeln!(out, "  + {} {} {}", p.manager.name(), p.name, p.version);
    }
    for p in &packages.removed {
        let _ = writeln!(out, "  - {} {} {}", p.manager.name(), p.name, p.version);
    }
    for c in &packages.changed {
        let _ = writeln!(
            out,
            "  ~ {} {} {} -> {} ({})",
            c.manager.name(),
            c.name,
            c.old,
            c.new,
            c.direction.name()
        );
    }
}
