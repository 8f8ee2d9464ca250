//! Copy-up: the content of lower files a layer writes again with new
//! attributes. A layer cannot change a lower file's mode or owner without
//! carrying the file (image-spec, "Changesets"), as overlay filesystems
//! copy a file up to change it; the view keeps no content, so the files an
//! `attrs` step changes are read back from the layers that hold them,
//! through the same reading as a base (every check, every diff_id), and
//! staged until the layer is written.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Write};
use std::path::PathBuf;

use oci_spec::image::Descriptor;

use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::layer::{self, Content};
use crate::recipe::Step;
use crate::recipe::schema::AttrsStep;
use crate::rootfs::meta::ImagePath;
use crate::rootfs::{NodeKind, View};
use crate::store::BlobStore;
use crate::store::workdir::WorkDir;

/// A lower layer to read back: its blob and diff_id.
pub struct Lower {
    pub desc: Descriptor,
    pub diff_id: Digest,
}

/// Lower files' content, staged for a layer that writes them again.
pub struct CopyUp {
    files: HashMap<ImagePath, (PathBuf, u64)>,
    /// Keeps the staged files until the layer is written.
    pub dir: WorkDir,
}

impl CopyUp {
    /// The staged content of the lower file at `path`.
    pub fn content(&self, path: &ImagePath) -> Option<Content> {
        self.files.get(path).map(|(file, size)| Content::Path {
            path: file.clone(),
            size: *size,
        })
    }
}

/// The mode, uid and gid `attrs` gives an entry that has `mode`, `uid` and
/// `gid`: a symlink keeps its mode (it has none of its own).
pub fn changed(
    attrs: &AttrsStep,
    kind: &NodeKind,
    mode: u32,
    uid: u64,
    gid: u64,
) -> (u32, u64, u64) {
    let mode = match (&attrs.mode, kind) {
        (_, NodeKind::Symlink { .. }) | (None, _) => mode,
        (Some(change), kind) => change.apply(mode, *kind == NodeKind::Dir),
    };
    match attrs.owner {
        Some(owner) => (mode, owner.uid.into(), owner.gid.into()),
        None => (mode, uid, gid),
    }
}

/// The paths an `attrs` step reaches in `lookup`'s filesystem: `path`,
/// resolved as chmod resolves what it is given (a symlink followed), and
/// with `recursive` every path below it, among `all` (in path order),
/// symlinks not followed. None when `path` does not exist.
pub fn targets<'a>(
    attrs: &AttrsStep,
    lookup: impl Fn(&ImagePath) -> Option<NodeKind>,
    all: impl Iterator<Item = &'a ImagePath>,
) -> Result<Option<Vec<ImagePath>>, String> {
    let start = crate::rootfs::resolve_with(&attrs.path, &lookup)?;
    if !start.is_root() && lookup(&start).is_none() {
        return Ok(None);
    }
    let mut out = vec![start.clone()];
    if attrs.recursive && (start.is_root() || lookup(&start) == Some(NodeKind::Dir)) {
        out.extend(
            all.filter(|p| p.starts_with(&start) && **p != start)
                .cloned(),
        );
    }
    out.retain(|p| !p.is_root());
    Ok(Some(out))
}

/// The lower files the `attrs` steps of layer `index` change, by the view
/// layer that holds each (a hardlink's at the file it names).
pub fn wanted(steps: &[Step], view: &View) -> Result<BTreeMap<usize, BTreeSet<ImagePath>>, String> {
    let mut out: BTreeMap<usize, BTreeSet<ImagePath>> = BTreeMap::new();
    for step in steps {
        let Step::Attrs(attrs) = step else { continue };
        let lookup = |p: &ImagePath| view.get(p).map(|n| n.kind.clone());
        let Some(targets) = targets(attrs, lookup, view.iter().map(|(p, _)| p))? else {
            continue;
        };
        for path in targets {
            let Some(node) = view.get(&path) else {
                continue;
            };
            let now = (node.mode, node.uid, node.gid);
            if changed(attrs, &node.kind, node.mode, node.uid, node.gid) == now {
                continue;
            }
            let file = match &node.kind {
                NodeKind::File { .. } => path,
                NodeKind::Hardlink { target } => target.clone(),
                _ => continue,
            };
            if let Some(holder) = view.get(&file) {
                out.entry(holder.layer).or_default().insert(file);
            }
        }
    }
    Ok(out)
}

/// Reads back the `wanted` files of each lower layer (`lower` gives its
/// blob) into a staging directory.
pub fn stage(
    view: &View,
    wanted: BTreeMap<usize, BTreeSet<ImagePath>>,
    blobs: &BlobStore,
    mut lower: impl FnMut(usize) -> Result<Lower>,
) -> Result<CopyUp> {
    let dir = WorkDir::new_in(&std::env::temp_dir(), ".ingot-copyup-", 0o700)
        .context(|| "creating a staging directory for copied-up files".into())?;
    let mut files = HashMap::new();
    let mut next = 0u64;
    for (layer_index, paths) in wanted {
        let Lower { desc, diff_id } = lower(layer_index)?;
        let mut reader = layer::read::open(blobs, &desc)?;
        let below = view.below(layer_index);
        let mut on_file = |path: &ImagePath, data: &mut dyn io::Read| -> io::Result<()> {
            if !paths.contains(path) {
                return Ok(());
            }
            let file = dir.path().join(next.to_string());
            next += 1;
            let mut out = std::fs::File::create(&file)?;
            let size = io::copy(data, &mut out)?;
            out.flush()?;
            files.insert(path.clone(), (file, size));
            Ok(())
        };
        below
            .read_tar(&mut reader, &mut on_file)
            .map_err(|reason| {
                Error::Failed(format!(
                    "reading back layer {} to copy up its files: {reason}",
                    desc.digest()
                ))
            })?;
        reader.finish(&diff_id)?;
        if let Some(missing) = paths.iter().find(|p| !files.contains_key(*p)) {
            return Err(Error::Failed(format!(
                "copying up {missing}: layer {} does not hold it where the image does",
                desc.digest()
            )));
        }
    }
    Ok(CopyUp { files, dir })
}
