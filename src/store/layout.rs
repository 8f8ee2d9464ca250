//! OCI image layouts on disk (image-spec, "OCI Image Layout").
//!
//! A build writes into a [`Staging`] directory beside its target, so a
//! failed build leaves nothing and the old layout intact. [`commit`] then
//! either renames the staging directory into place (a new layout) or moves
//! its blobs in and replaces `index.json` by rename, under a lock file, so
//! concurrent builds into one layout keep every tag.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use super::file::{self, Links};
use super::referrers::Referrer;
use super::workdir::WorkDir;
use super::{BlobRef, BlobStore};
use crate::digest::Digest;
use crate::error::{BlobError, Error, IoContext, Result, Within};
use crate::image::media::{self, Compression};
use crate::image::reference::{OciRef, Selector, is_signature_tag};
use crate::image::{
    IndexSummary, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, Platform, annotation, canonical_json,
    select_platform,
};

const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// The most bytes `oci-layout` may have: its one field is 30.
pub const MAX_LAYOUT_MARKER: u64 = 4 << 10;
const LOCK_FILE: &str = "index.json.lock";

/// The name of every staging directory starts so.
pub const STAGING_PREFIX: &str = ".ingot-staging-";

/// Temp files and directories are private by default; a layout is published
/// with the modes `create` and `mkdir` give, so the umask decides as usual.
pub(crate) fn file_mode() -> fs::Permissions {
    fs::Permissions::from_mode(0o666)
}

/// A work directory that becomes, or feeds, a layout at `target`.
pub struct Staging {
    dir: WorkDir,
    pub blobs: BlobStore,
    target: PathBuf,
}

impl Staging {
    /// Creates the staging directory in the nearest existing ancestor of
    /// `target`, so the final rename stays on one filesystem and nothing is
    /// created at `target` until the build succeeds. What killed builds
    /// left there is swept first (see [`super::workdir`]).
    pub fn new(target: &Path) -> Result<Staging> {
        let absolute = std::path::absolute(target)
            .context(|| format!("resolving output path {}", target.display()))?;
        if let Some(file) = absolute
            .ancestors()
            .skip(1)
            .find(|a| a.symlink_metadata().is_ok_and(|m| !m.is_dir()) && !a.is_dir())
        {
            return Err(Error::Usage(format!(
                "output {}: {} is a file, not a directory",
                target.display(),
                file.display()
            )));
        }
        let anchor = absolute
            .ancestors()
            .skip(1)
            .find(|a| a.is_dir())
            .unwrap_or(Path::new("/"))
            .to_path_buf();
        let dir = WorkDir::new_in(&anchor, STAGING_PREFIX, 0o777)
            .context(|| format!("creating a staging directory in {}", anchor.display()))?;
        let blobs =
            BlobStore::open(dir.path()).context(|| "creating the staging blob store".into())?;
        Ok(Staging {
            dir,
            blobs,
            target: absolute,
        })
    }
}

/// What a build adds to a layout: one manifest, tagged with its version
/// and any further tags.
pub struct Tagged<'a> {
    pub recipe: &'a str,
    /// The version, then any further tags.
    pub tags: &'a [String],
    /// An image manifest, or the index of a multi-platform build.
    pub manifest: BlobRef,
    pub media_type: MediaType,
    /// The image's platform; None for an index.
    pub platform: Option<&'a Platform>,
    /// Move a tag the layout has for another manifest, rather than refuse.
    pub replace: bool,
    /// Artifacts about the image, their blobs staged: listed untagged,
    /// in the same write of index.json as the image's tags.
    pub referrers: &'a [Referrer],
}

/// What a tag the layout already has for another manifest becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retag {
    /// It moves to the new manifest, and the layout is rewritten even
    /// when every tag is already there (a pull follows its source, and
    /// brings back blobs a damaged layout lost).
    Move,
    /// The commit is refused, naming both digests: a released version
    /// never moves silently (design.md, "Versions are immutable"). When
    /// every tag already names the manifest, nothing is touched.
    Refuse,
    /// As `Refuse`, but a tag naming another manifest moves (`--replace`).
    Replace,
}

/// What committing did to the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The layout was created or its index rewritten.
    Written,
    /// Every tag already named this manifest: nothing was touched.
    Unchanged,
}

/// One entry of index.json, as a build or a pull adds it. A build names
/// its recipe (the layout's owner) and a tag; a pulled image may have
/// neither, and may be a Docker schema 2 manifest.
pub struct Entry<'a> {
    /// The recipe that owns the layout; None leaves the owner as it is.
    pub recipe: Option<&'a str>,
    /// None adds the manifest by digest only.
    pub tag: Option<&'a str>,
    pub manifest: BlobRef,
    pub media_type: MediaType,
    pub platform: Option<&'a Platform>,
    /// An artifact's type, for an entry that is one (a [`Referrer`]).
    pub artifact_type: Option<&'a str>,
}

/// Publishes the staged blobs and the tags at the staging's target. A tag
/// the layout has for another manifest is refused (both digests named,
/// nothing changed) unless `tagged.replace`; when every tag already names
/// the manifest, nothing is touched.
pub fn commit(staging: Staging, tagged: &Tagged) -> Result<Committed> {
    let mut entries: Vec<Entry> = tagged
        .tags
        .iter()
        .map(|tag| Entry {
            recipe: Some(tagged.recipe),
            tag: Some(tag.as_str()),
            manifest: tagged.manifest,
            media_type: tagged.media_type.clone(),
            platform: tagged.platform,
            artifact_type: None,
        })
        .collect();
    entries.extend(tagged.referrers.iter().map(Referrer::entry));
    let retag = if tagged.replace {
        Retag::Replace
    } else {
        Retag::Refuse
    };
    commit_entries(staging, &entries, retag)
}

/// Publishes the staged blobs and one index.json entry at the staging's
/// target, moving its tag if the layout has it, with the artifacts about
/// it: the same atomic rename-or-merge as [`commit`].
pub fn commit_entry(staging: Staging, entry: Entry, referrers: &[Referrer]) -> Result<()> {
    commit_entries_with(staging, vec![entry], referrers)
}

/// [`commit_entry`] of several entries (an image and its signatures).
pub fn commit_entries_with<'a>(
    staging: Staging,
    mut entries: Vec<Entry<'a>>,
    referrers: &'a [Referrer],
) -> Result<()> {
    entries.extend(referrers.iter().map(Referrer::entry));
    commit_entries(staging, &entries, Retag::Move).map(|_| ())
}

/// Publishes the staged blobs and the artifacts `referrers` into the
/// existing layout at the staging's target: they are listed, nothing
/// else changes.
pub fn commit_referrers(staging: Staging, referrers: &[Referrer]) -> Result<Committed> {
    let target = staging.target.clone();
    // An artifact about nothing the layout holds is a mistake, not a
    // layout to create.
    Layout::open(&target)?;
    let entries: Vec<Entry> = referrers.iter().map(Referrer::entry).collect();
    merge_into(&target, &staging.blobs, &entries, Retag::Refuse)
}

fn commit_entries(staging: Staging, entries: &[Entry], retag: Retag) -> Result<Committed> {
    let target = staging.target.clone();
    // An empty directory (made by a user, or by `mktemp -d`) is no layout
    // yet; rename(2) replaces it atomically.
    let empty_dir = fs::read_dir(&target).is_ok_and(|mut d| d.next().is_none());
    if empty_dir || !target.exists() {
        let index = index_with_all(None, entries);
        write_layout_files(staging.dir.path(), &index)?;
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).context(|| format!("creating {}", parent.display()))?;
        }
        let staged = staging
            .dir
            .keep()
            .context(|| "releasing the staging directory".into())?;
        match fs::rename(&staged, &target) {
            Ok(()) => return Ok(Committed::Written),
            // Another build created the layout first: merge into it below.
            Err(_) if target.is_dir() => {
                let blobs = BlobStore::open(&staged).context(|| "reopening staging".into())?;
                let result = merge_into(&target, &blobs, entries, retag);
                let _ = fs::remove_dir_all(&staged);
                return result;
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staged);
                return Err(Error::Io {
                    context: format!("moving the new layout to {}", target.display()),
                    source: e,
                });
            }
        }
    }
    merge_into(&target, &staging.blobs, entries, retag)
}

/// Moves blobs into an existing layout and retags, under its lock: the
/// tags are checked against the index read under the lock, so of two
/// concurrent builds of one version, the second is refused.
fn merge_into(
    target: &Path,
    blobs: &BlobStore,
    entries: &[Entry],
    retag: Retag,
) -> Result<Committed> {
    // Check it is a layout before creating the lock file in it.
    let layout = Layout::open(target)?;
    let _lock = lock(target)?;
    sweep_temp_files(target);
    let index = layout.index()?;
    let owner = index
        .annotations()
        .as_ref()
        .and_then(|a| a.get(annotation::LAYOUT_RECIPE));
    if let Some(owner) = owner
        && let Some(recipe) = entries.iter().find_map(|e| e.recipe)
        && owner != recipe
    {
        return Err(Error::Usage(format!(
            "{} holds images of recipe {owner:?}; refusing to add recipe {recipe:?} (use another -o)",
            target.display(),
        )));
    }
    let mut unchanged = true;
    let mut moved = Vec::new();
    for entry in entries {
        let digest = entry.manifest.digest.to_oci();
        let held = entry.tag.and_then(|tag| {
            index
                .manifests()
                .iter()
                .find(|d| tag_of(d) == Some(tag))
                .map(|d| (tag, d))
        });
        match held {
            Some((_, d)) if *d.digest() == digest => {}
            Some((tag, d)) => {
                unchanged = false;
                moved.push(format!(
                    "tag {tag} is {}, this image {}",
                    d.digest(),
                    entry.manifest.digest
                ));
            }
            // An untagged entry (an artifact) changes nothing when the
            // layout lists its manifest already.
            None if entry.tag.is_none()
                && index.manifests().iter().any(|d| *d.digest() == digest) => {}
            None => unchanged = false,
        }
    }
    if retag == Retag::Refuse && !moved.is_empty() {
        return Err(Error::Failed(format!(
            "{}: {}; a version never moves: bump it, or rebuild with --replace to move the tag",
            target.display(),
            moved.join("; ")
        )));
    }
    if unchanged && retag != Retag::Move {
        return Ok(Committed::Unchanged);
    }
    blobs
        .move_into(&layout.blobs)
        .context(|| format!("moving blobs into {}", target.display()))?;
    let index = super::referrers::prune(&layout.blobs, index_with_all(Some(index), entries))?;
    write_layout_files(target, &index)?;
    Ok(Committed::Written)
}

/// `index` (a new one when None) with every entry of `entries` added.
fn index_with_all(index: Option<ImageIndex>, entries: &[Entry]) -> ImageIndex {
    let mut index = index;
    for entry in entries {
        index = Some(index_with(index, entry));
    }
    index.unwrap_or_else(|| {
        let mut i = ImageIndex::default();
        i.set_media_type(Some(MediaType::ImageIndex));
        i
    })
}

/// Takes the layout's lock file; released when the handle drops. Opened
/// without following a symlink and without blocking (a FIFO under its
/// name would wait for a reader), and refused unless a regular file.
pub(crate) fn lock(dir: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(&path)
        .context(|| format!("opening lock {}", path.display()))?;
    let meta = file
        .metadata()
        .context(|| format!("opening lock {}", path.display()))?;
    if !meta.is_file() {
        return Err(Error::Failed(format!(
            "{}: not a regular file ({})",
            path.display(),
            file::kind_of(meta.file_type())
        )));
    }
    file.lock()
        .context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

/// The name of every temp file [`replace_file`] makes starts so.
const TEMP_PREFIX: &str = ".ingot-tmp-";

/// Removes the temp files a killed writer left in the layout root `dir`
/// (ours, and the `.tmp*` an older ingot made); returns them. Called under
/// the layout's lock, which every writer of the root holds, so none of
/// them is being written.
pub(crate) fn sweep_temp_files(dir: &Path) -> Vec<PathBuf> {
    stray_temp_files(dir)
        .into_iter()
        .filter(|p| fs::remove_file(p).is_ok())
        .collect()
}

/// The temp files [`sweep_temp_files`] would remove.
pub(crate) fn stray_temp_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with(TEMP_PREFIX) || name.starts_with(".tmp")
        })
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Shares the layout's lock, for a reader that must write nothing: the
/// lock file is not created when there is none (no build has written the
/// layout while holding it, then), and is opened read-only. Released when
/// the handle drops.
pub(crate) fn lock_shared(dir: &Path) -> Result<Option<File>> {
    let path = dir.join(LOCK_FILE);
    let file = match file::open_regular(&path, Links::Refuse) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context(|| format!("opening lock {}", path.display())),
    };
    file.lock_shared()
        .context(|| format!("locking {}", path.display()))?;
    Ok(Some(file))
}

/// `index` (or a new one) with `entry` as the only manifest for its tag
/// (or, untagged, the only untagged entry with its digest).
fn index_with(index: Option<ImageIndex>, entry: &Entry) -> ImageIndex {
    let mut index = index.unwrap_or_else(|| {
        let mut i = ImageIndex::default();
        i.set_media_type(Some(MediaType::ImageIndex));
        i
    });
    let digest = entry.manifest.digest.to_oci();
    let mut manifests: Vec<Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| match entry.tag {
            Some(tag) => tag_of(d) != Some(tag),
            None => tag_of(d).is_some() || *d.digest() != digest,
        })
        .cloned()
        .collect();
    let mut desc = Descriptor::new(entry.media_type.clone(), entry.manifest.size, digest);
    if let Some(tag) = entry.tag {
        desc.set_annotations(Some(
            [(annotation::REF_NAME.to_string(), tag.to_string())].into(),
        ));
    }
    desc.set_artifact_type(entry.artifact_type.map(MediaType::from));
    if let Some(p) = entry.platform {
        let mut platform = oci_spec::image::Platform::default();
        platform.set_os(p.os.as_str().into());
        platform.set_architecture(p.arch.as_str().into());
        platform.set_variant(p.variant.clone());
        desc.set_platform(Some(platform));
    }
    manifests.push(desc);
    // Stable order whatever the build order: images by tag (untagged
    // first, by digest), then artifacts by digest.
    manifests.sort_by_cached_key(|d| {
        (
            is_artifact(d),
            tag_of(d).map(str::to_string),
            d.digest().to_string(),
        )
    });
    index.set_manifests(manifests);
    if let Some(recipe) = entry.recipe {
        index.set_annotations(Some(
            [(annotation::LAYOUT_RECIPE.to_string(), recipe.to_string())].into(),
        ));
    }
    index
}

/// Whether an index.json entry is an artifact about an image (it names
/// its `artifactType`), not an image to select.
pub fn is_artifact(d: &Descriptor) -> bool {
    d.artifact_type().is_some()
}

/// The tag (`org.opencontainers.image.ref.name`) a descriptor carries.
pub fn tag_of(d: &Descriptor) -> Option<&str> {
    d.annotations()
        .as_ref()
        .and_then(|a| a.get(annotation::REF_NAME))
        .map(String::as_str)
}

/// Writes `oci-layout` and `index.json`, each by temp file and rename.
fn write_layout_files(dir: &Path, index: &ImageIndex) -> Result<()> {
    let json =
        canonical_json(index).map_err(|e| Error::Failed(format!("encoding index.json: {e}")))?;
    replace_file(&dir.join("oci-layout"), OCI_LAYOUT.as_bytes())?;
    replace_file(&dir.join("index.json"), &json)
}

/// Replaces `path` with `bytes`; see [`replace_file_with`].
pub fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    replace_file_with(path, |w| {
        w.write_all(bytes)
            .context(|| format!("writing {}", path.display()))
    })
}

/// Replaces `path` with what `write` writes, through a temp file beside it
/// that is synced and renamed into place only when `write` succeeded: a
/// reader sees the old file or the whole new one, and a failure leaves
/// nothing behind (the temp file is removed when dropped).
pub fn replace_file_with<T>(
    path: &Path,
    write: impl FnOnce(&mut dyn io::Write) -> Result<T>,
) -> Result<T> {
    replace_file_with_permissions(path, file_mode(), write)
}

/// [`replace_file_with`], the file created with `permissions` rather than
/// the umask's: 0600 for files that may hold secrets, which must never
/// exist readable to others, not even for a moment.
pub fn replace_file_with_permissions<T>(
    path: &Path,
    permissions: std::fs::Permissions,
    write: impl FnOnce(&mut dyn io::Write) -> Result<T>,
) -> Result<T> {
    // `Path::new("x").parent()` is `Some("")`: the current directory.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut out = Replacement::in_dir(dir, permissions).context(|| {
        format!(
            "creating a temp file for {} in {}",
            path.display(),
            dir.display()
        )
    })?;
    let value = write(&mut out)?;
    out.put(path)?;
    Ok(value)
}

/// A file being written in a directory, to replace one there when whole
/// ([`put`](Self::put)): written for longer than one call, as a layer's
/// summary is while its entries go by. Removed when dropped unput.
pub struct Replacement {
    out: io::BufWriter<tempfile::NamedTempFile>,
}

impl Replacement {
    /// A new temp file in `dir`, made with `permissions` from the start.
    pub fn in_dir(dir: &Path, permissions: std::fs::Permissions) -> io::Result<Replacement> {
        let tmp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .permissions(permissions)
            .tempfile_in(dir)?;
        Ok(Replacement {
            out: io::BufWriter::new(tmp),
        })
    }

    /// Syncs the file and renames it to `path`, in the same directory.
    pub fn put(self, path: &Path) -> Result<()> {
        let tmp = self
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .context(|| format!("writing {}", path.display()))?;
        tmp.as_file()
            .sync_all()
            .context(|| format!("syncing {}", path.display()))?;
        tmp.persist(path)
            .map_err(|e| e.error)
            .context(|| format!("replacing {}", path.display()))?;
        Ok(())
    }
}

impl io::Write for Replacement {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// How deep indexes may nest before the layout is called hostile.
const MAX_INDEX_DEPTH: usize = 4;

/// An image found in a layout: its manifest and config, read and checked.
pub struct Found {
    pub layout: Layout,
    /// The tag index.json gives the entry the reference named, if any.
    pub tag: Option<String>,
    pub manifest_digest: Digest,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// The index the reference named, when it named one.
    pub index: Option<IndexSummary>,
}

/// Finds the image `reference` names in the layout at `dir`, choosing
/// `platform` from an index. The manifest and config are verified; layer
/// blobs are not read yet.
///
/// A layout or tag that is not there is a usage error; a layout whose
/// blobs are not what its descriptors say is a failure.
pub fn open_image(reference: &OciRef, dir: &Path, platform: &Platform) -> Result<Found> {
    let failed = |m: String| Error::Failed(format!("{reference}: {m}"));
    let layout = Layout::open(dir)?;
    let mut desc = layout.find(&reference.selector)?;
    let tag = tag_of(&desc).map(str::to_string);
    let mut named = None;
    for _ in 0..MAX_INDEX_DEPTH {
        if !media::is_index(desc.media_type().as_ref()) {
            break;
        }
        let index: ImageIndex = layout.read_json(&desc, MAX_MANIFEST_SIZE)?;
        if named.is_none() {
            named = Some(IndexSummary::of(digest_of(&desc)?, &index));
        }
        desc = select_platform(&index, platform)
            .map_err(|m| Error::Usage(format!("{reference}: {m}")))?
            .clone();
    }
    if !media::is_manifest(desc.media_type().as_ref()) {
        return Err(failed(format!(
            "{} is a {}, not an image manifest",
            desc.digest(),
            desc.media_type()
        )));
    }
    let manifest_digest = digest_of(&desc)?;
    let manifest: ImageManifest = layout.read_json(&desc, MAX_MANIFEST_SIZE)?;
    let config: ImageConfiguration = layout.read_json(manifest.config(), MAX_CONFIG_SIZE)?;
    check_image(&manifest, &config).map_err(failed)?;
    Ok(Found {
        layout,
        tag,
        manifest_digest,
        manifest,
        config,
        index: named,
    })
}

/// What every reader of an image relies on before reading a layer: one
/// diff_id per layer, and layers in a compression ingot reads.
pub fn check_image(manifest: &ImageManifest, config: &ImageConfiguration) -> Result<(), String> {
    let diff_ids = config.rootfs().diff_ids().len();
    if diff_ids != manifest.layers().len() {
        return Err(format!(
            "the manifest lists {} layers but the config {diff_ids} diff_ids",
            manifest.layers().len()
        ));
    }
    for layer in manifest.layers() {
        Compression::of(layer.media_type())?;
    }
    Ok(())
}

/// An existing layout, read-only.
pub struct Layout {
    pub dir: PathBuf,
    pub blobs: BlobStore,
}

impl Layout {
    /// Opens the layout at `dir`, checking its `oci-layout` (a regular
    /// file of at most [`MAX_LAYOUT_MARKER`] bytes).
    pub fn open(dir: &Path) -> Result<Layout> {
        let marker = dir.join("oci-layout");
        if fs::symlink_metadata(&marker).is_err() {
            return Err(Error::Usage(format!(
                "{} is not an OCI image layout (no oci-layout file)",
                dir.display()
            )));
        }
        #[derive(serde::Deserialize)]
        struct Marker {
            #[serde(rename = "imageLayoutVersion")]
            version: String,
        }
        let text = file::read_regular(&marker, Links::Refuse, MAX_LAYOUT_MARKER)
            .context(|| format!("reading {}", marker.display()))?;
        match serde_json::from_slice::<Marker>(&text) {
            Ok(m) if m.version == "1.0.0" => {}
            Ok(m) => {
                return Err(Error::Failed(format!(
                    "{}: image layout version {:?} is not supported (expected \"1.0.0\")",
                    marker.display(),
                    m.version
                )));
            }
            Err(e) => return Err(Error::Failed(format!("{}: {e}", marker.display()))),
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
            blobs: BlobStore {
                root: dir.join("blobs").join("sha256"),
            },
        })
    }

    /// `index.json`: a regular file of at most [`MAX_MANIFEST_SIZE`] bytes
    /// (an index, held to a manifest's bound).
    pub fn index(&self) -> Result<ImageIndex> {
        let path = self.dir.join("index.json");
        let bytes = file::read_regular(&path, Links::Refuse, MAX_MANIFEST_SIZE)
            .context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Failed(format!("{}: invalid index: {e}", path.display())))
    }

    /// The descriptor a selector names: a tagged or the only entry of
    /// index.json, or any manifest or index blob by digest.
    pub fn find(&self, selector: &Selector) -> Result<Descriptor> {
        let index = self.index()?;
        let manifests = index.manifests();
        let found: Vec<&Descriptor> = match selector {
            Selector::Tag(t) => manifests
                .iter()
                .filter(|d| tag_of(d) == Some(t.as_str()))
                .collect(),
            // Artifacts about an image, and its signatures
            // (`sha256-<hex>.sig`), are not another image.
            Selector::Only => manifests
                .iter()
                .filter(|d| !is_artifact(d) && !tag_of(d).is_some_and(is_signature_tag))
                .collect(),
            Selector::Digest(digest) => {
                let listed = manifests
                    .iter()
                    .find(|d| Digest::try_from(d.digest()).ok() == Some(*digest));
                return match listed {
                    Some(d) => Ok(d.clone()),
                    None => self.describe(digest),
                };
            }
        };
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::Usage(format!(
                "{}: no image tagged {:?}; tags: {}",
                self.dir.display(),
                match selector {
                    Selector::Tag(t) => t.as_str(),
                    _ => "",
                },
                tags(manifests)
            ))),
            _ => Err(Error::Usage(format!(
                "{} holds several images; name one with :TAG ({})",
                self.dir.display(),
                tags(manifests)
            ))),
        }
    }

    /// A descriptor for a blob that index.json does not list, from its own
    /// bytes (checked against the digest) and its `mediaType` field.
    fn describe(&self, digest: &Digest) -> Result<Descriptor> {
        let path = self.blobs.path(digest);
        let bytes = match file::read_regular(&path, Links::Refuse, MAX_MANIFEST_SIZE) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::Usage(format!(
                    "{}: no manifest {digest}",
                    self.dir.display()
                )));
            }
            Err(e) => return Err(super::blob_error(*digest, e).into()),
        };
        let found = Digest::of(&bytes);
        if found != *digest {
            return Err(BlobError::DigestMismatch {
                expected: *digest,
                found,
            }
            .into());
        }
        #[derive(serde::Deserialize)]
        struct Head {
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
        }
        let head: Head = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Failed(format!("blob {digest}: invalid JSON: {e}")))?;
        let media_type = head.media_type.ok_or_else(|| {
            Error::Failed(format!(
                "blob {digest}: no mediaType; not a manifest or index"
            ))
        })?;
        Ok(Descriptor::new(
            MediaType::from(media_type.as_str()),
            bytes.len() as u64,
            digest.to_oci(),
        ))
    }

    /// Reads and parses a JSON blob, verified against its descriptor, whose
    /// size may be at most `limit` ([`MAX_MANIFEST_SIZE`] for manifests and
    /// indexes, [`MAX_CONFIG_SIZE`] for configs).
    pub fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        desc: &Descriptor,
        limit: u64,
    ) -> Result<T> {
        let blob = blob_ref(desc)?;
        check_json_size(&blob, limit)?;
        let bytes = self
            .blobs
            .read(&blob)
            .within(|| format!("reading {}", self.dir.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Failed(format!("blob {}: invalid JSON: {e}", blob.digest)))
    }
}

fn tags(manifests: &[Descriptor]) -> String {
    let t: Vec<&str> = manifests.iter().filter_map(tag_of).collect();
    if t.is_empty() {
        "none".into()
    } else {
        t.join(", ")
    }
}

/// The digest and size a descriptor promises.
pub fn blob_ref(desc: &Descriptor) -> Result<BlobRef> {
    let digest = Digest::try_from(desc.digest()).map_err(|e| Error::Failed(e.to_string()))?;
    Ok(BlobRef {
        digest,
        size: desc.size(),
    })
}

/// Refuses a JSON blob whose descriptor claims more than `limit` bytes: it
/// would be read whole (a reader never gives more than the declared size).
pub fn check_json_size(blob: &BlobRef, limit: u64) -> Result<()> {
    if blob.size > limit {
        return Err(Error::Failed(format!(
            "blob {}: the descriptor says {} bytes, larger than the limit of {}",
            blob.digest,
            blob.size,
            file::human_size(limit)
        )));
    }
    Ok(())
}

fn digest_of(desc: &Descriptor) -> Result<Digest> {
    Digest::try_from(desc.digest()).map_err(|e| Error::Failed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn replace_file_with_is_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let n = replace_file_with(&path, |w| {
            w.write_all(b"new").unwrap();
            Ok(3)
        })
        .unwrap();
        assert_eq!((n, fs::read(&path).unwrap()), (3, b"new".to_vec()));

        // A failed write keeps the old file and leaves no temp file.
        let err = replace_file_with(&path, |w| {
            w.write_all(b"half").unwrap();
            Err::<(), _>(Error::Failed("stopped".into()))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "stopped");
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(names(dir.path()), ["out"]);
    }
}
