//! The build cache key of a recipe layer: a digest of everything the
//! layer's bytes depend on (issue: "a build cache that makes unchanged work
//! free"). Two layers with the same key are byte-identical.
//!
//! That is: the layer encoding and compression; the timestamp; the layers
//! below (the base's diff_ids and the keys of the recipe layers below,
//! which fix the view the steps run against as well as their diff_ids
//! would, without waiting for those layers to be written; and how many of
//! them are the base's); the layer's steps as written; what templates
//! see; and every source file's path, kind, executable bit, symlink target
//! and content digest. File digests come from the stat index, so unchanged
//! files are not read. The source entries are hashed as they are encoded,
//! a JSON line each after the rest, never held as one document: a tree of
//! 300,000 files would otherwise cost a kilobyte per entry (issue 19).

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::base::BaseImage;
use crate::debian::archive::PackagePin;
use crate::digest::{Digest, HashingWriter};
use crate::image::canonical_json;
use crate::layer;
use crate::recipe::schema::LayerSpec;
use crate::recipe::{Recipe, Step};
use crate::rootfs::source::{self, SourceKind};
use crate::store::cache::FileStat;
use crate::store::stat_index::{Key, SourceFiles, SourceIndex};

/// Bumped when what goes into a key changes meaning.
pub const KEY_VERSION: u32 = 4;

#[derive(Serialize)]
struct KeyInputs<'a> {
    key_version: u32,
    encoding: &'static str,
    compression: &'static str,
    epoch: u64,
    lower: &'a [Digest],
    base_layers: usize,
    layer: &'a LayerSpec,
    templates: Option<TemplateInputs<'a>>,
    /// How many entries each source has; the entries themselves follow
    /// the head, one JSON line each (see [`hash_sources`]).
    sources: Vec<usize>,
    /// The locked closure a `packages` step installs: each `.deb`'s
    /// SHA-256 fixes what it unpacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    packages: Option<&'a [PackagePin]>,
}

#[derive(Serialize)]
struct TemplateInputs<'a> {
    name: &'a str,
    version: &'a str,
    vars: &'a std::collections::BTreeMap<String, serde_json::Value>,
    base_name: &'a str,
    base_digest: Option<Digest>,
    /// `os/arch[/variant]`, which templates see.
    platform: String,
}

#[derive(Serialize)]
struct SourceItem<'a> {
    rel: &'a str,
    kind: &'static str,
    executable: bool,
    target: Option<&'a str>,
    digest: Option<Digest>,
    /// The host's permission bits, for a copy that keeps them.
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<u32>,
}

/// What a layer key needs besides the recipe.
pub struct KeyContext<'a> {
    pub recipe: &'a Recipe,
    pub base: &'a BaseImage,
    pub lower: &'a [Digest],
    pub epoch: u64,
    pub compression: &'static str,
    pub packages: Option<&'a [PackagePin]>,
}

/// The key of layer `index`, with the walks of its copy and template
/// sources (by resolved root), which planning then uses rather than walking
/// again, so the layer is built from the tree its key describes. None when
/// a source cannot be read: the build then plans the layer and reports the
/// problem where it belongs.
pub fn layer_key(
    ctx: &KeyContext,
    index: usize,
    stats: &SourceIndex,
) -> Option<(Digest, source::Walks)> {
    let spec = &ctx.recipe.spec.layers[index];
    let mut walks = Vec::new();
    let mut has_template = false;
    for step in &spec.steps {
        let (src, keep_modes) = match step {
            Step::Copy(c) => (&c.src, c.keep_modes),
            Step::Template(t) => {
                has_template = true;
                (&t.src, false)
            }
            Step::Extract(e) => (&e.src, false),
            _ => continue,
        };
        let root = ctx.recipe.resolve_src(src).ok()?;
        let walk = source::walk(&root).ok()?;
        walks.push((root, walk, keep_modes));
    }
    // Every file's digest at once, so the ones the index does not know are
    // read in parallel.
    let files = WalkedFiles::new(&walks, stats);
    let digests = stats.digests(&files).ok()?;
    drop(files);
    let spec_recipe = &ctx.recipe.spec;
    let inputs = KeyInputs {
        key_version: KEY_VERSION,
        encoding: layer::ENCODING_VERSION,
        compression: ctx.compression,
        epoch: ctx.epoch,
        lower: ctx.lower,
        base_layers: ctx.base.layers.len(),
        layer: spec,
        templates: has_template.then(|| TemplateInputs {
            name: &spec_recipe.name,
            version: &spec_recipe.version,
            vars: &spec_recipe.vars,
            base_name: &ctx.base.name,
            base_digest: ctx.base.manifest_digest,
            platform: ctx.base.platform.to_string(),
        }),
        sources: walks.iter().map(|(_, walk, _)| walk.len()).collect(),
        packages: ctx.packages,
    };
    // Buffered: the JSON encoder writes a line in a dozen small pieces.
    let mut hasher =
        std::io::BufWriter::with_capacity(64 << 10, HashingWriter::new(std::io::sink()));
    hasher.write_all(&canonical_json(&inputs).ok()?).ok()?;
    let sources = walks.iter().map(|(_, walk, keep)| (walk, *keep));
    hash_sources(sources, &mut digests.into_iter(), &mut hasher)?;
    let (key, _, _) = hasher.into_inner().ok()?.finish();
    let walks = walks.into_iter().map(|(root, mut walk, _)| {
        walk.forget_identities();
        (root, walk)
    });
    Some((key, walks.collect()))
}

/// The files of a key's walks, as its stat index asks for them: by
/// position, each named by its walk and its place there (a host path is
/// made only while one is read).
struct WalkedFiles<'w> {
    walks: &'w [(PathBuf, source::Walk, bool)],
    /// What each walk's files are filed under in the index.
    roots: Vec<Vec<u8>>,
    /// Each file: its walk, and its place in it.
    files: Vec<(u32, u32)>,
}

impl<'w> WalkedFiles<'w> {
    fn new(walks: &'w [(PathBuf, source::Walk, bool)], index: &SourceIndex) -> WalkedFiles<'w> {
        let files = walks
            .iter()
            .enumerate()
            .flat_map(|(w, (_, walk, _))| {
                walk.iter()
                    .enumerate()
                    .filter(|(_, e)| matches!(e.kind, SourceKind::File { .. }))
                    .map(move |(i, _)| (w as u32, i as u32))
            })
            .collect();
        WalkedFiles {
            roots: walks
                .iter()
                .map(|(root, ..)| index.root_key(root))
                .collect(),
            walks,
            files,
        }
    }

    fn entry(&self, i: usize) -> (usize, source::SourceEntry<'w>) {
        let (w, e) = self.files[i];
        (w as usize, self.walks[w as usize].1.get(e as usize))
    }
}

impl SourceFiles for WalkedFiles<'_> {
    fn count(&self) -> usize {
        self.files.len()
    }

    fn key(&self, i: usize) -> Key<'_> {
        let (w, entry) = self.entry(i);
        Key {
            root: &self.roots[w],
            rel: entry.rel,
        }
    }

    fn stat(&self, i: usize) -> FileStat {
        match self.entry(i).1.kind {
            SourceKind::File {
                stat: Some(stat), ..
            } => stat,
            // Never without a stat here: a walk forgets them only once
            // its key is made (and a zero stat is read again, not trusted).
            _ => FileStat::default(),
        }
    }

    fn host_path(&self, i: usize, path: &mut PathBuf) {
        let (w, entry) = self.entry(i);
        self.walks[w].1.host_path_into(entry.rel, path);
    }
}

/// Writes what a key records of each walked source after the head: each
/// entry's path, kind, executable bit, symlink target, (for files, in
/// walk order, from `digests`) content digest and, for a copy that keeps
/// them, mode, as one JSON line. Streamed, not held: a source of 300,000
/// entries would otherwise be a tree of values in memory (issue 19).
/// The head says how many lines each source has, so the encoding is
/// unambiguous. None when `digests` runs short.
fn hash_sources<'w>(
    sources: impl Iterator<Item = (&'w source::Walk, bool)>,
    digests: &mut impl Iterator<Item = Digest>,
    out: &mut impl Write,
) -> Option<()> {
    for (walk, keep_modes) in sources {
        for entry in walk.iter() {
            let (kind, executable, target, digest) = match entry.kind {
                SourceKind::Dir => ("dir", false, None, None),
                SourceKind::File { executable, .. } => {
                    ("file", executable, None, Some(digests.next()?))
                }
                SourceKind::Symlink { target } => ("symlink", false, Some(target), None),
            };
            let item = SourceItem {
                rel: entry.rel,
                kind,
                executable,
                target,
                digest,
                mode: keep_modes.then_some(entry.mode),
            };
            serde_json::to_writer(&mut *out, &item).ok()?;
            out.write_all(b"\n").ok()?;
        }
    }
    Some(())
}
