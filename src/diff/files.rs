//! Two sets of entries compared path by path: what was added, removed or
//! changed, and for a change, which attributes differ.

use serde::Serialize;

use super::tree::{FileMeta, Tree};

/// How a path differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Added,
    Removed,
    Changed,
}

/// One path that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    pub path: String,
    pub status: Status,
    /// For a change, the attributes that differ, of `kind`, `content`
    /// (the sha256 of a file's bytes), `size`, `mode`, `owner` (uid or
    /// gid), `mtime`, `link` (a symlink's or hardlink's target), `xattrs`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<&'static str>,
    /// The entry in the first image, if it has one.
    pub old: Option<FileMeta>,
    /// The entry in the second image, if it has one.
    pub new: Option<FileMeta>,
}

/// Every path of `a` and `b` that differs, in path order.
pub fn compare(a: &Tree, b: &Tree) -> Vec<FileChange> {
    let mut out = Vec::new();
    let mut a = a.iter().peekable();
    let mut b = b.iter().peekable();
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some((pa, _)), Some((pb, _))) => pa.cmp(pb),
        };
        match order {
            std::cmp::Ordering::Less => {
                let (path, old) = a.next().expect("peeked");
                out.push(one_sided(path.to_string(), Status::Removed, old));
            }
            std::cmp::Ordering::Greater => {
                let (path, new) = b.next().expect("peeked");
                out.push(one_sided(path.to_string(), Status::Added, new));
            }
            std::cmp::Ordering::Equal => {
                let (path, old) = a.next().expect("peeked");
                let (_, new) = b.next().expect("peeked");
                let attributes = attributes(old, new);
                if !attributes.is_empty() {
                    out.push(FileChange {
                        path: path.to_string(),
                        status: Status::Changed,
                        attributes,
                        old: Some(old.clone()),
                        new: Some(new.clone()),
                    });
                }
            }
        }
    }
    out
}

/// Every entry of `tree` as added (or removed): a layer one image lacks.
pub fn all(tree: &Tree, status: Status) -> Vec<FileChange> {
    tree.iter()
        .map(|(path, meta)| one_sided(path.to_string(), status, meta))
        .collect()
}

fn one_sided(path: String, status: Status, meta: &FileMeta) -> FileChange {
    let (old, new) = match status {
        Status::Removed => (Some(meta.clone()), None),
        _ => (None, Some(meta.clone())),
    };
    FileChange {
        path,
        status,
        attributes: Vec::new(),
        old,
        new,
    }
}

/// The attributes of two entries at one path that differ.
pub fn attributes(a: &FileMeta, b: &FileMeta) -> Vec<&'static str> {
    [
        ("kind", a.kind != b.kind),
        ("content", a.digest != b.digest),
        ("size", a.size != b.size),
        ("mode", a.mode != b.mode),
        ("owner", (a.uid, a.gid) != (b.uid, b.gid)),
        ("mtime", a.mtime != b.mtime),
        ("link", a.link != b.link),
        ("xattrs", a.xattrs != b.xattrs),
    ]
    .into_iter()
    .filter_map(|(name, differs)| differs.then_some(name))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::tree::Kind;
    use crate::digest::Digest;
    use crate::rootfs::meta::ImagePath;

    fn file(content: &[u8], mode: u32) -> FileMeta {
        FileMeta {
            kind: Kind::File,
            size: Some(content.len() as u64),
            digest: Some(Digest::of(content)),
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            link: None,
            xattrs: Default::default(),
        }
    }

    fn tree(entries: &[(&str, FileMeta)]) -> Tree {
        entries
            .iter()
            .map(|(p, m)| (ImagePath::from_rel(p).unwrap(), m.clone()))
            .collect()
    }

    #[test]
    fn added_removed_and_changed_in_path_order() {
        let a = tree(&[
            ("a", file(b"same", 0o644)),
            ("b", file(b"old", 0o644)),
            ("c", file(b"gone", 0o644)),
        ]);
        let b = tree(&[
            ("a", file(b"same", 0o644)),
            ("b", file(b"newer", 0o600)),
            ("d", file(b"new", 0o644)),
        ]);
        let changes = compare(&a, &b);
        let summary: Vec<(&str, Status, Vec<&str>)> = changes
            .iter()
            .map(|c| (c.path.as_str(), c.status, c.attributes.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                ("/b", Status::Changed, vec!["content", "size", "mode"]),
                ("/c", Status::Removed, vec![]),
                ("/d", Status::Added, vec![]),
            ]
        );
        assert!(compare(&a, &a).is_empty());
    }

    #[test]
    fn an_owner_or_time_alone_is_named() {
        let mut other = file(b"x", 0o644);
        other.uid = 10001;
        other.mtime = 5;
        assert_eq!(attributes(&file(b"x", 0o644), &other), ["owner", "mtime"]);
    }
}
