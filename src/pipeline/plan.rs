//! Planning one recipe layer: steps applied against the view below, giving
//! the layer's entries, whiteouts and opaque whiteouts (design.md, rules 3,
//! 5 and 6, and "Merging onto a base").
//!
//! A plan answers "what is at this path now?" by looking first at its own
//! entries, then at what it has removed, then at the view of lower layers.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use std::path::Path;
use std::sync::Arc;

use super::copyup::{self, CopyUp};
use super::extract::Archive;
use crate::base::BaseImage;
use crate::debian::install::Installed;
use crate::layer::{self, Content, EntryKind};
use crate::recipe::schema::{AttrsStep, CopyStep, ExtractStep, GroupStep, TemplateStep, UserStep};
use crate::recipe::{MAX_TEMPLATE_SIZE, Recipe, RecipeError, Step, template};
use crate::rootfs::accounts::{self, Databases};
use crate::rootfs::meta::{ImagePath, Owner};
use crate::rootfs::source::{self, SourceEntry, SourceKind};
use crate::rootfs::{Change, Node, NodeKind, View, repack_grown, resolve_parent_with};
use crate::store::file::{self, Links};

/// Everything a layer's steps may read.
pub struct Inputs<'a> {
    pub recipe: &'a Recipe,
    pub base: &'a BaseImage,
    pub view: &'a View,
    /// How many of the view's layers are the base's: reading those makes a
    /// layer base-dependent, reading the recipe's own does not.
    pub base_layers: usize,
    pub epoch: u64,
    /// Sources already walked (for the cache key); others are walked here.
    /// The last copy step of a source takes its walk, and frees it as it
    /// plans its entries.
    pub walks: &'a RefCell<source::Walks>,
    /// What the layer's `packages` step installed, done before planning.
    pub installed: Option<&'a Installed>,
    /// Lower files the layer's `attrs` steps change, read back.
    pub copied_up: Option<&'a CopyUp>,
    /// The archives of the layer's `extract` steps, read, by step index.
    pub extracted: &'a BTreeMap<usize, Archive>,
}

/// A layer entry as planned, but for its path: that is its key in the
/// plan (16 bytes an entry fewer, at 300,000 of them).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Planned {
    kind: EntryKind,
    mode: u32,
    uid: u64,
    gid: u64,
}

impl Planned {
    fn of(entry: &layer::Entry) -> Planned {
        Planned {
            kind: entry.kind.clone(),
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
        }
    }

    /// Bytes of file content the entry brings.
    fn content_size(&self) -> u64 {
        match &self.kind {
            EntryKind::File(content) => content.size(),
            _ => 0,
        }
    }

    /// The layer entry at `path`.
    fn at(self, path: ImagePath) -> layer::Entry {
        layer::Entry {
            path: path.into_shared(),
            kind: self.kind,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
        }
    }
}

/// A plan's entries by path, in the order their layer lists them (see
/// [`layer::order`]): they drain into runs as they are, with no sort and
/// no list of their paths beside them.
#[derive(Debug, Default)]
struct Entries {
    map: BTreeMap<InLayer, Planned>,
    /// The number of entries at which the map is next repacked.
    repack_at: usize,
}

/// A path, ordered as a layer lists its entries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct InLayer(ImagePath);

impl Ord for InLayer {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        layer::order::compare(self.0.as_rel(), other.0.as_rel())
    }
}

impl PartialOrd for InLayer {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Entries {
    fn get(&self, path: &ImagePath) -> Option<&Planned> {
        if self.all_before(path) {
            return None;
        }
        self.map.get(&InLayer(path.clone()))
    }

    /// Whether every entry comes before `path`: so for each one a copy
    /// step's walk plans, listed in this order, found without a search.
    fn all_before(&self, path: &ImagePath) -> bool {
        self.map
            .last_key_value()
            .is_none_or(|(last, _)| layer::order::compare(last.0.as_rel(), path.as_rel()).is_lt())
    }

    fn get_mut(&mut self, path: &ImagePath) -> Option<&mut Planned> {
        self.map.get_mut(&InLayer(path.clone()))
    }

    fn contains_key(&self, path: &ImagePath) -> bool {
        self.map.contains_key(&InLayer(path.clone()))
    }

    fn insert(&mut self, path: ImagePath, planned: Planned) {
        self.map.insert(InLayer(path), planned);
        repack_grown(&mut self.map, &mut self.repack_at);
    }

    #[cfg(test)]
    fn remove(&mut self, path: &ImagePath) -> Option<Planned> {
        self.map.remove(&InLayer(path.clone()))
    }

    /// Removes what lies below `path` (and `path` itself when
    /// `inclusive`): the entries right after it, in this order.
    fn remove_below(&mut self, path: &ImagePath, inclusive: bool) {
        if self.all_before(path) {
            return;
        }
        let doomed: Vec<InLayer> = self
            .map
            .range(InLayer(path.clone())..)
            .map(|(p, _)| p)
            .take_while(|p| p.0.starts_with(path))
            .filter(|p| inclusive || p.0 != *path)
            .cloned()
            .collect();
        for p in doomed {
            self.map.remove(&p);
        }
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn keys(&self) -> impl Iterator<Item = &ImagePath> {
        self.map.keys().map(|p| &p.0)
    }

    fn values(&self) -> impl Iterator<Item = &Planned> {
        self.map.values()
    }
}

/// A copy step being planned: its entries' common parts.
struct Copying<'a> {
    step: &'a CopyStep,
    /// Where the source's root lands.
    dest: ImagePath,
    /// The source's root on the host.
    root: Arc<Path>,
    /// The directory the last entry put went into (or was), when reaching
    /// it crossed no symlink: it and every directory above it are
    /// directories of the plan or below it, so an entry right inside it
    /// needs neither resolving nor its parents looked up. A walk lists
    /// most entries right after a sibling or their directory, and looking
    /// up each ancestor of each of 300,000 entries twice cost seconds.
    known_dir: Option<ImagePath>,
}

/// The changes one recipe layer makes.
#[derive(Debug, Default)]
pub struct Plan {
    /// Each entry by its path, which [`Plan::into_runs`] gives it.
    entries: Entries,
    whiteouts: BTreeSet<ImagePath>,
    opaques: BTreeSet<ImagePath>,
    /// Whether the layer read the base: account edits, removals, templates
    /// using `base`, paths resolved through the base's symlinks.
    pub base_dependent: bool,
    base_layers: usize,
    /// Base directories a step would have made but found there, and so
    /// left out of the layer.
    left_alone: Vec<ImagePath>,
}

/// A planned layer's entries on their way to its writer: see
/// [`Plan::into_runs`].
pub struct Runs {
    /// The entries and (last first) the whiteouts and opaque whiteouts,
    /// each in the canonical order: the runs merge them.
    entries: BTreeMap<InLayer, Planned>,
    markers: Vec<layer::Entry>,
    maker: Option<layer::RunMaker>,
    count: usize,
    content: u64,
}

impl Runs {
    /// The number of tar entries.
    pub fn entry_count(&self) -> usize {
        self.count
    }

    /// Bytes of file content the entries bring.
    pub fn content_size(&self) -> u64 {
        self.content
    }

    /// The whiteouts and opaque whiteouts not yet in a run, in order.
    pub fn markers(&self) -> impl Iterator<Item = &layer::Entry> {
        self.markers.iter().rev()
    }

    /// The next tar entry, taken out of the plan.
    fn next_entry(&mut self) -> Option<layer::Entry> {
        let marker_first = match (self.markers.last(), self.entries.first_key_value()) {
            (Some(m), Some((p, _))) => layer::order::compare(&m.path, p.0.as_rel()).is_lt(),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if marker_first {
            return self.markers.pop();
        }
        let (path, planned) = self.entries.pop_first()?;
        Some(planned.at(path.0))
    }
}

impl Iterator for Runs {
    type Item = std::io::Result<layer::Run>;

    fn next(&mut self) -> Option<Self::Item> {
        self.maker.as_ref()?;
        while let Some(entry) = self.next_entry() {
            let maker = self.maker.as_mut()?;
            match maker.push(entry) {
                Ok(None) => {}
                Ok(Some(run)) => return Some(Ok(run)),
                Err(e) => {
                    self.maker = None;
                    return Some(Err(e));
                }
            }
        }
        self.maker.take()?.finish().map(Ok)
    }
}

/// Plans layer `index` of the recipe. Errors name the step at fault.
pub fn plan_layer(inputs: &Inputs, index: usize) -> Result<Plan, RecipeError> {
    let mut plan = Plan {
        base_layers: inputs.base_layers,
        ..Plan::default()
    };
    let recipe = inputs.recipe;
    for (j, step) in recipe.spec.layers[index].steps.iter().enumerate() {
        let fail = |field: &str| {
            let field = field.to_string();
            move |msg: String| recipe.step_error(index, j, Some(&field), msg)
        };
        match step {
            Step::Copy(c) => {
                let steps = &recipe.spec.layers[index].steps[j + 1..];
                plan.copy(inputs, c, steps).map_err(fail("src"))?
            }
            Step::File(f) => {
                let dest = plan
                    .resolve(inputs.view, &f.dest.path)
                    .map_err(fail("dest"))?;
                let kind = EntryKind::File(Content::Bytes(f.content.clone().into_bytes()));
                let mode = f.mode.map_or(0o644, |m| m.0);
                plan.put(inputs.view, dest, kind, mode, f.owner.unwrap_or_default())
                    .map_err(fail("dest"))?;
            }
            Step::Template(t) => plan
                .template(inputs, t)
                .map_err(|(field, m)| fail(field)(m))?,
            Step::Mkdir(m) => {
                let path = plan.resolve(inputs.view, &m.path).map_err(fail("path"))?;
                let exists = plan.lookup(inputs.view, &path) == Some(NodeKind::Dir);
                if exists && m.mode.is_none() && m.owner.is_none() {
                    plan.left_alone(inputs.view, path.clone());
                }
                if !exists || m.mode.is_some() || m.owner.is_some() {
                    let mode = m.mode.map_or(0o755, |m| m.0);
                    plan.put(
                        inputs.view,
                        path,
                        EntryKind::Dir,
                        mode,
                        m.owner.unwrap_or_default(),
                    )
                    .map_err(fail("path"))?;
                }
            }
            Step::Symlink(l) => {
                let path = plan.resolve(inputs.view, &l.path).map_err(fail("path"))?;
                let kind = EntryKind::Symlink {
                    target: l.target.clone(),
                };
                plan.put(inputs.view, path, kind, 0o777, l.owner.unwrap_or_default())
                    .map_err(fail("path"))?;
            }
            Step::Remove(r) => {
                let path = plan.resolve(inputs.view, &r.path).map_err(fail("path"))?;
                plan.remove(inputs.view, &path).map_err(fail("path"))?;
            }
            Step::Attrs(a) => plan.attrs(inputs, a).map_err(fail("path"))?,
            Step::Extract(e) => {
                let archive = inputs.extracted.get(&j).ok_or_else(|| {
                    fail("src")(format!("archive {} was not read before planning", e.src))
                })?;
                plan.extract(inputs.view, e, archive).map_err(fail("src"))?
            }
            Step::User(u) => plan.user(inputs, u).map_err(fail("name"))?,
            Step::Group(g) => plan.group(inputs, g).map_err(fail("name"))?,
            Step::Packages(_) => {
                let installed = inputs.installed.ok_or_else(|| {
                    fail("install")("the packages were not installed before planning".into())
                })?;
                // Unpacked against the view below, as dpkg would: the
                // entries are final, and read the base.
                for entry in &installed.entries {
                    if let Some(path) = ImagePath::from_rel(&entry.path) {
                        plan.entries.insert(path, Planned::of(entry));
                    }
                }
                plan.base_dependent = true;
            }
        }
    }
    plan.base_dependent |= plan.leaves_no_trace();
    Ok(plan)
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.whiteouts.is_empty() && self.opaques.is_empty()
    }

    /// The layer's tar entries, whiteouts and all, in the canonical order
    /// a run of at most `len` at a time, each entry taken out of the plan
    /// as its run is made: the plan's memory goes as the runs come.
    pub fn into_runs(self, len: usize) -> Runs {
        let whiteouts = self.whiteouts.iter().map(|w| {
            let parent = w.parent().unwrap_or_default();
            layer::Entry::whiteout(parent.as_rel(), w.file_name())
        });
        let opaques = self
            .opaques
            .iter()
            .map(|o| layer::Entry::opaque_whiteout(o.as_rel()));
        let mut markers: Vec<layer::Entry> = whiteouts.chain(opaques).collect();
        // Last first: taken from the end.
        markers.sort_unstable_by(|a, b| layer::order::compare(&b.path, &a.path));
        let targets = self
            .entries
            .values()
            .filter_map(|e| e.kind.hardlink_target());
        let checker = layer::Checker::new(targets);
        Runs {
            count: markers.len() + self.entries.map.len(),
            content: self.entries.values().map(Planned::content_size).sum(),
            maker: Some(layer::RunMaker::new(len, checker)),
            entries: self.entries.map,
            markers,
        }
    }

    /// The layer's tar entries, whiteouts and all, in the canonical order.
    #[cfg(test)]
    pub fn into_entries(self) -> Vec<layer::Entry> {
        self.into_runs(usize::MAX)
            .flat_map(|run| run.map(layer::Run::into_entries).unwrap_or_default())
            .collect()
    }

    /// What `path` holds now: this layer's entry, else the lower one unless
    /// this layer removed it.
    fn lookup(&self, view: &View, path: &ImagePath) -> Option<NodeKind> {
        if let Some(e) = self.entries.get(path) {
            return Some(node_kind(&e.kind));
        }
        if self.hidden(path) {
            return None;
        }
        view.get(path).map(|n| n.kind.clone())
    }

    /// Whether this layer's whiteouts hide the lower `path`.
    fn hidden(&self, path: &ImagePath) -> bool {
        self.whiteouts.iter().any(|w| path.starts_with(w))
            || self
                .opaques
                .iter()
                .any(|o| path != o && path.starts_with(o))
    }

    /// Resolves `path`'s directories through symlinks, lower or planned.
    fn resolve(&mut self, view: &View, path: &ImagePath) -> Result<ImagePath, String> {
        self.resolve_crossing(view, path)
            .map(|(resolved, _)| resolved)
    }

    /// [`Plan::resolve`], and whether it crossed a symlink.
    fn resolve_crossing(
        &mut self,
        view: &View,
        path: &ImagePath,
    ) -> Result<(ImagePath, bool), String> {
        let through_base = std::cell::Cell::new(false);
        let (resolved, crossed) = resolve_parent_with(path, |p| {
            let kind = self.lookup(view, p);
            if matches!(kind, Some(NodeKind::Symlink { .. })) && self.sees_base(view, p) {
                through_base.set(true);
            }
            kind
        })?;
        self.base_dependent |= through_base.get();
        Ok((resolved, crossed))
    }

    /// Notes a directory of the base that a step found and left alone.
    fn left_alone(&mut self, view: &View, path: ImagePath) {
        if self.sees_base(view, &path) {
            self.left_alone.push(path);
        }
    }

    /// Whether a base directory left alone has nothing of this layer below
    /// it: the layer then holds no trace of it, and on a base without it
    /// a build writes it, so the layer's bytes depend on the base. One
    /// with an entry below it is named by that entry's parents, which a
    /// rebase compares between bases.
    fn leaves_no_trace(&self) -> bool {
        if self.left_alone.is_empty() {
            return false;
        }
        let named: BTreeSet<ImagePath> = self
            .entries
            .keys()
            .chain(&self.whiteouts)
            .chain(&self.opaques)
            .flat_map(|p| p.ancestors())
            .collect();
        self.left_alone.iter().any(|d| !named.contains(d))
    }

    /// Whether what this layer sees at `path` comes from a base layer.
    fn sees_base(&self, view: &View, path: &ImagePath) -> bool {
        !self.entries.contains_key(path)
            && !self.hidden(path)
            && view.get(path).is_some_and(|n| n.layer < self.base_layers)
    }

    /// Adds an entry at an already resolved `path`, creating missing parents
    /// as `0755 0:0` and leaving existing ones alone (rule 3).
    fn put(
        &mut self,
        view: &View,
        path: ImagePath,
        kind: EntryKind,
        mode: u32,
        owner: Owner,
    ) -> Result<(), String> {
        for ancestor in path.ancestors() {
            match self.lookup(view, &ancestor) {
                Some(NodeKind::Dir) => {}
                Some(_) => return Err(format!("{ancestor} exists and is not a directory")),
                None => self.insert(view, ancestor, EntryKind::Dir, 0o755, Owner::default()),
            }
        }
        self.insert(view, path, kind, mode, owner);
        Ok(())
    }

    fn insert(&mut self, view: &View, path: ImagePath, kind: EntryKind, mode: u32, owner: Owner) {
        let is_dir = kind == EntryKind::Dir;
        if is_dir && self.whiteouts.remove(&path) {
            // A removed directory comes back: hide its old content instead.
            self.opaques.insert(path.clone());
        }
        if !is_dir {
            let lower_dir = view.get(&path).is_some_and(Node::is_dir);
            if lower_dir && !self.hidden(&path) {
                // A file replacing a lower directory must hide its subtree.
                self.whiteouts.insert(path.clone());
            } else if !lower_dir {
                // A file replaces a lower file by itself: no whiteout needed.
                self.whiteouts.remove(&path);
            }
        }
        if !is_dir {
            self.entries.remove_below(&path, false);
        }
        let entry = Planned {
            kind,
            mode,
            uid: owner.uid.into(),
            gid: owner.gid.into(),
        };
        self.entries.insert(path, entry);
    }

    /// Renders template `t` into its `dest`; an error names the field at
    /// fault (`src` or `dest`).
    fn template(
        &mut self,
        inputs: &Inputs,
        t: &TemplateStep,
    ) -> Result<(), (&'static str, String)> {
        let recipe = inputs.recipe;
        let path = recipe.resolve_src(&t.src).map_err(|m| ("src", m))?;
        let text = file::read_regular_string(&path, Links::Follow, MAX_TEMPLATE_SIZE)
            .map_err(|e| ("src", format!("reading template {}: {e}", t.src)))?;
        let base_digest = inputs
            .base
            .manifest_digest
            .map(|d| d.to_string())
            .unwrap_or_default();
        let ctx = template::Context {
            name: &recipe.spec.name,
            version: &recipe.spec.version,
            vars: &recipe.spec.vars,
            base_name: &inputs.base.name,
            base_digest: &base_digest,
            platform: &inputs.base.platform,
        };
        let rendered = template::render(&t.src, &text, &ctx)
            .map_err(|e| ("src", format!("template {}: {e}", t.src)))?;
        // A template naming `base` depends on which base it got.
        self.base_dependent |= text.contains("base");
        let dest = self
            .resolve(inputs.view, &t.dest.path)
            .map_err(|m| ("dest", m))?;
        let kind = EntryKind::File(Content::Bytes(rendered.into_bytes()));
        let mode = t.mode.map_or(0o644, |m| m.0);
        self.put(inputs.view, dest, kind, mode, t.owner.unwrap_or_default())
            .map_err(|m| ("dest", m))
    }

    fn remove(&mut self, view: &View, path: &ImagePath) -> Result<(), String> {
        let planned = self.entries.contains_key(path);
        let lower = !self.hidden(path) && view.get(path).is_some();
        self.base_dependent |= self.sees_base(view, path);
        if !planned && !lower {
            return Err(format!(
                "{path} does not exist in the base or earlier steps"
            ));
        }
        self.entries.remove_below(path, true);
        self.opaques.retain(|o| !o.starts_with(path));
        if lower {
            self.whiteouts.retain(|w| !w.starts_with(path));
            self.whiteouts.insert(path.clone());
        }
        Ok(())
    }

    /// Plans copy step `c`, which `later` steps of its layer follow.
    fn copy(&mut self, inputs: &Inputs, c: &CopyStep, later: &[Step]) -> Result<(), String> {
        let src = inputs.recipe.resolve_src(&c.src)?;
        // The last copy of a source in the layer takes its walk, which then
        // shrinks as the plan grows.
        let copied_again = later.iter().any(|step| match step {
            Step::Copy(d) => inputs.recipe.resolve_src(&d.src).is_ok_and(|s| s == src),
            _ => false,
        });
        let taken = match copied_again {
            true => None,
            false => inputs.walks.borrow_mut().remove(&src),
        };
        let walks = inputs.walks.borrow();
        let walked;
        let walk = match (&taken, walks.get(&src)) {
            (Some(walk), _) | (None, Some(walk)) => walk,
            (None, None) => {
                walked = source::walk(&src)?;
                &walked
            }
        };
        // A file copied to a `dest` ending in `/` goes into it, under its
        // own name; a directory's contents go into `dest` either way.
        let dest = match walk.first() {
            Some(root) if c.dest.dir && root.kind != SourceKind::Dir => {
                let name = Path::new(&c.src)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .filter(|n| !n.starts_with(layer::WHITEOUT_PREFIX))
                    .ok_or_else(|| format!("copy source {:?} has no usable file name", c.src))?;
                c.dest.path.join(name)
            }
            _ => c.dest.path.clone(),
        };
        let mut copy = Copying {
            step: c,
            dest,
            // Named once for all the files of the tree, not per file.
            root: Arc::from(walk.root()),
            known_dir: None,
        };
        match taken {
            Some(walk) => {
                drop(walks);
                walk.drain(|item| self.copy_entry(inputs, &mut copy, item))
            }
            None => walk
                .iter()
                .try_for_each(|item| self.copy_entry(inputs, &mut copy, item)),
        }
    }

    /// Plans one entry of copy `copy`'s walk.
    fn copy_entry(
        &mut self,
        inputs: &Inputs,
        copy: &mut Copying,
        item: SourceEntry,
    ) -> Result<(), String> {
        let c = copy.step;
        let owner = c.owner.unwrap_or_default();
        let target = if item.rel.is_empty() {
            copy.dest.clone()
        } else {
            if item
                .rel
                .split('/')
                .any(|n| n.starts_with(layer::WHITEOUT_PREFIX))
            {
                return Err(format!(
                    "copy source {}/{} uses the reserved whiteout prefix .wh.",
                    c.src, item.rel
                ));
            }
            copy.dest.join_rel(item.rel)
        };
        let in_known_dir = !target.is_root()
            && copy
                .known_dir
                .as_ref()
                .is_some_and(|dir| dir.as_rel() == target.parent_rel());
        let (path, crossed) = match in_known_dir {
            true => (target, false),
            false => self.resolve_crossing(inputs.view, &target)?,
        };
        // The host's bits, when the step keeps them.
        let kept = c.keep_modes.then_some(item.mode);
        let (kind, mode) = match item.kind {
            // The root is the runtime's: a tree copied to `/` fills it.
            SourceKind::Dir if path.is_root() => return Ok(()),
            SourceKind::Dir => {
                let exists = self.lookup(inputs.view, &path) == Some(NodeKind::Dir);
                if exists && c.owner.is_none() {
                    self.left_alone(inputs.view, path);
                    return Ok(());
                }
                (EntryKind::Dir, kept.unwrap_or(0o755))
            }
            SourceKind::File {
                size, executable, ..
            } => {
                let mode =
                    c.mode
                        .map(|m| m.0)
                        .or(kept)
                        .unwrap_or(if executable { 0o755 } else { 0o644 });
                let content = Content::below(&copy.root, item.rel, path.as_rel(), size);
                (EntryKind::File(content), mode)
            }
            SourceKind::Symlink { target } => (
                EntryKind::Symlink {
                    target: target.to_string(),
                },
                0o777,
            ),
        };
        // Where the next entry may find its directory known.
        let known = match (crossed, kind == EntryKind::Dir) {
            (true, _) => None,
            (false, true) => Some(path.clone()),
            (false, false) if in_known_dir => copy.known_dir.take(),
            (false, false) => path.parent(),
        };
        if in_known_dir {
            // Every directory above it is one already: nothing to make.
            self.insert(inputs.view, path, kind, mode, owner);
        } else {
            self.put(inputs.view, path, kind, mode, owner)?;
        }
        copy.known_dir = known;
        Ok(())
    }

    /// Changes the mode and owner of what `a` reaches: this layer's own
    /// entries in place, lower paths written again (a file with its
    /// content, copied up), and only where something changes.
    fn attrs(&mut self, inputs: &Inputs, a: &AttrsStep) -> Result<(), String> {
        let view = inputs.view;
        let all: BTreeSet<ImagePath> = self
            .entries
            .keys()
            .chain(view.iter().map(|(p, _)| p).filter(|p| !self.hidden(p)))
            .cloned()
            .collect();
        let targets = copyup::targets(a, |p| self.lookup(view, p), all.iter())?
            .ok_or_else(|| format!("{} does not exist in the base or earlier steps", a.path))?;
        for path in targets {
            if let Some(entry) = self.entries.get_mut(&path) {
                let kind = node_kind(&entry.kind);
                (entry.mode, entry.uid, entry.gid) =
                    copyup::changed(a, &kind, entry.mode, entry.uid, entry.gid);
                continue;
            }
            let Some(node) = view.get(&path) else {
                continue;
            };
            let (mode, uid, gid) = copyup::changed(a, &node.kind, node.mode, node.uid, node.gid);
            if (mode, uid, gid) == (node.mode, node.uid, node.gid) {
                continue;
            }
            self.base_dependent |= self.sees_base(view, &path);
            let content = |file: &ImagePath| {
                inputs
                    .copied_up
                    .and_then(|c| c.content(file))
                    .map(EntryKind::File)
                    .ok_or_else(|| {
                        format!(
                            "{path} was not read back to be copied up (an earlier step of the layer moved it?); change it in a layer of its own"
                        )
                    })
            };
            let kind = match &node.kind {
                NodeKind::Dir => EntryKind::Dir,
                NodeKind::Symlink { target } => EntryKind::Symlink {
                    target: target.clone(),
                },
                NodeKind::File { .. } => content(&path)?,
                // Written again as a file of its own: the link to the
                // other names of its inode is not kept.
                NodeKind::Hardlink { target } => content(target)?,
                NodeKind::Special => {
                    return Err(format!(
                        "{path} is a device node or fifo, which a recipe layer cannot carry"
                    ));
                }
            };
            let entry = Planned {
                kind,
                mode,
                uid,
                gid,
            };
            self.entries.insert(path, entry);
        }
        Ok(())
    }

    /// Puts what an archive holds below `e.dest` (its directories resolved
    /// through the image's symlinks, as `copy`'s are), with the archive's
    /// modes and owners. Each set of hardlinks becomes a file at the name
    /// that sorts first, the others linking to it, so the layer lists the
    /// file before its links.
    fn extract(&mut self, view: &View, e: &ExtractStep, archive: &Archive) -> Result<(), String> {
        let at = |path: &ImagePath| e.dest.join_rel(path.as_rel());
        let owner = |node: &Node, path: &ImagePath| -> Result<Owner, String> {
            let id = |n: u64| {
                u32::try_from(n).map_err(|_| {
                    format!(
                        "archive {}: entry {path} has owner id {n}, above 2^32",
                        e.src
                    )
                })
            };
            Ok(Owner {
                uid: id(node.uid)?,
                gid: id(node.gid)?,
            })
        };
        // The file each hardlink names (in the image), with its links.
        let mut linked: BTreeMap<ImagePath, Vec<ImagePath>> = BTreeMap::new();
        for (path, node, content) in &archive.entries {
            let target = self.resolve(view, &at(path))?;
            if target.is_root() {
                continue;
            }
            let kind = match (&node.kind, content) {
                (NodeKind::Dir, _) => EntryKind::Dir,
                (NodeKind::File { .. }, Some(content)) => EntryKind::File(content.clone()),
                (NodeKind::Symlink { target }, _) => EntryKind::Symlink {
                    target: target.clone(),
                },
                (NodeKind::Hardlink { target: file }, _) => {
                    let file = self.resolve(view, &at(file))?;
                    linked.entry(file.clone()).or_default().push(target.clone());
                    EntryKind::Hardlink {
                        target: file.as_rel().to_string(),
                    }
                }
                _ => return Err(format!("archive {}: entry {path} has no content", e.src)),
            };
            self.put(
                view,
                target.clone(),
                kind,
                node.mode & 0o7777,
                owner(node, path)?,
            )?;
        }
        for (file, links) in linked {
            let Some(entry) = self.entries.get(&file).cloned() else {
                return Err(format!(
                    "archive {}: {file} is hardlinked but no longer a file of the layer",
                    e.src
                ));
            };
            let first = std::iter::once(&file)
                .chain(&links)
                .min_by(|a, b| layer::order::compare(a.as_rel(), b.as_rel()))
                .cloned()
                .unwrap_or_else(|| file.clone());
            for name in std::iter::once(&file).chain(&links) {
                let kind = if *name == first {
                    entry.kind.clone()
                } else {
                    EntryKind::Hardlink {
                        target: first.as_rel().to_string(),
                    }
                };
                let link = Planned {
                    kind,
                    ..entry.clone()
                };
                self.entries.insert(name.clone(), link);
            }
        }
        Ok(())
    }

    fn user(&mut self, inputs: &Inputs, u: &UserStep) -> Result<(), String> {
        let gid = u.gid.unwrap_or(u.uid);
        let home = match &u.home {
            Some(h) => h.clone(),
            None => ImagePath::root().join("home").join(&u.name),
        };
        let user = accounts::User {
            name: u.name.clone(),
            uid: u.uid,
            gid,
            gecos: u.gecos.clone().unwrap_or_default(),
            home: home.to_string(),
            shell: u.shell.clone().unwrap_or_else(|| "/sbin/nologin".into()),
        };
        let db = self.databases(inputs.view)?;
        let days = inputs.epoch / 86_400;
        self.write_databases(inputs.view, &db, &accounts::add_user(&db, &user, days)?)?;
        // `/nonexistent` is the convention for "no home"; never create it.
        if home.as_rel() == "nonexistent" {
            return Ok(());
        }
        let home = self.resolve(inputs.view, &home)?;
        if self.lookup(inputs.view, &home).is_none() {
            let owner = Owner { uid: u.uid, gid };
            self.put(inputs.view, home, EntryKind::Dir, 0o750, owner)?;
        }
        Ok(())
    }

    fn group(&mut self, inputs: &Inputs, g: &GroupStep) -> Result<(), String> {
        let group = accounts::Group {
            name: g.name.clone(),
            gid: g.gid,
            members: g.members.clone(),
        };
        let db = self.databases(inputs.view)?;
        self.write_databases(inputs.view, &db, &accounts::add_group(&db, &group)?)
    }

    /// The account databases as this layer sees them.
    fn databases(&mut self, view: &View) -> Result<Databases, String> {
        let mut read = |name: &str| -> Result<String, String> {
            let path = ImagePath::root().join_rel(name);
            self.base_dependent |= self.sees_base(view, &path);
            let bytes = match self.entries.get(&path).map(|e| &e.kind) {
                Some(EntryKind::File(content)) => read_content(content, path.as_rel())?,
                Some(_) => return Err(format!("{path} is not a regular file")),
                None if self.hidden(&path) => Vec::new(),
                None => match view.content(&path) {
                    Some(b) => b.to_vec(),
                    None if view.get(&path).is_some() => {
                        return Err(format!("{path} is not a regular file"));
                    }
                    None => Vec::new(),
                },
            };
            String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8 text"))
        };
        Ok(Databases {
            passwd: read("etc/passwd")?,
            group: read("etc/group")?,
            shadow: read("etc/shadow")?,
            gshadow: read("etc/gshadow")?,
        })
    }

    /// Writes the databases that changed, keeping an existing file's mode
    /// and owner.
    fn write_databases(
        &mut self,
        view: &View,
        old: &Databases,
        new: &Databases,
    ) -> Result<(), String> {
        let files = [
            ("etc/passwd", &old.passwd, &new.passwd, 0o644),
            ("etc/group", &old.group, &new.group, 0o644),
            ("etc/shadow", &old.shadow, &new.shadow, 0o600),
            ("etc/gshadow", &old.gshadow, &new.gshadow, 0o600),
        ];
        for (name, before, after, default_mode) in files {
            if before == after {
                continue;
            }
            let path = ImagePath::root().join_rel(name);
            let (mode, owner) = match (self.entries.get(&path), view.get(&path)) {
                (Some(e), _) => (
                    e.mode,
                    Owner {
                        uid: e.uid as u32,
                        gid: e.gid as u32,
                    },
                ),
                (None, Some(n)) if !self.hidden(&path) => (
                    n.mode,
                    Owner {
                        uid: n.uid as u32,
                        gid: n.gid as u32,
                    },
                ),
                _ => (default_mode, Owner::default()),
            };
            let kind = EntryKind::File(Content::Bytes(after.clone().into_bytes()));
            self.put(view, path, kind, mode, owner)?;
        }
        Ok(())
    }
}

/// Hands `each` the changes a layer's entries make to the view below,
/// what reading the layer back would give, without reading it: those that
/// hide lower paths (whiteouts, opaque whiteouts) when `hiding`, else the
/// others, in entry order. The view takes a layer's hiding changes before
/// any other. One change per entry, made as it is handed on, so that a
/// large layer's are never all held at once.
pub fn each_change<'a>(
    entries: impl Iterator<Item = &'a layer::Entry>,
    layer_index: usize,
    hiding: bool,
    mut each: impl FnMut(Change),
) -> Result<(), String> {
    for entry in entries {
        let name = entry.path.rsplit_once('/').map_or(&*entry.path, |(_, n)| n);
        // The opaque whiteout's name has the whiteout prefix too.
        if name.starts_with(layer::WHITEOUT_PREFIX) == hiding {
            each(change(entry, layer_index)?);
        }
    }
    Ok(())
}

/// The change one entry makes to the view below.
fn change(entry: &layer::Entry, layer_index: usize) -> Result<Change, String> {
    // The entry's own text: the view and the layer share it.
    let path = ImagePath::from_shared(Arc::clone(&entry.path))
        .ok_or_else(|| format!("layer entry {:?} is not a canonical path", entry.path))?;
    let name = path.file_name();
    if name == layer::OPAQUE_WHITEOUT {
        return Ok(Change::Opaque(path.parent().unwrap_or_default()));
    }
    if let Some(hidden) = name.strip_prefix(layer::WHITEOUT_PREFIX) {
        return Ok(Change::Whiteout(
            path.parent().unwrap_or_default().join(hidden),
        ));
    }
    let content = match &entry.kind {
        _ if !View::is_watched(&path) => None,
        EntryKind::File(content) => Some(read_content(content, &entry.path)?),
        _ => None,
    };
    let node = Node {
        kind: node_kind(&entry.kind),
        mode: entry.mode,
        uid: entry.uid,
        gid: entry.gid,
        layer: layer_index,
        capability: false,
    };
    Ok(Change::Put(path, node, content))
}

/// A planned file's bytes: those it holds, or its host file's (see
/// [`read_source`]).
fn read_content(content: &Content, path: &str) -> Result<Vec<u8>, String> {
    match (content, content.host_path(path)) {
        (Content::Bytes(b), _) => Ok(b.clone()),
        (_, Some(host)) => read_source(&host, content.size()),
        (_, None) => Err(format!("{path}: its planned content names no host file")),
    }
}

/// A planned host file's bytes: a regular file (never a FIFO or a device
/// swapped in since it was planned) of the `size` it was planned with.
fn read_source(host: &Path, size: u64) -> Result<Vec<u8>, String> {
    file::read_regular(host, Links::Follow, size).map_err(|e| match file::refusal(&e) {
        Some(file::FileError::TooLarge { .. }) => format!(
            "{}: changed while building (planned as a {size}-byte regular file)",
            host.display()
        ),
        _ => format!("reading {}: {e}", host.display()),
    })
}

fn node_kind(kind: &EntryKind) -> NodeKind {
    match kind {
        EntryKind::Dir => NodeKind::Dir,
        EntryKind::File(content) => NodeKind::File {
            size: content.size(),
        },
        EntryKind::Symlink { target } => NodeKind::Symlink {
            target: target.clone(),
        },
        EntryKind::Hardlink { target } => NodeKind::Hardlink {
            target: ImagePath::from_rel(target).unwrap_or_default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImagePath {
        s.parse().unwrap()
    }

    /// A base with /etc/motd (file), /srv/old/x (a directory tree) and
    /// /tmp 1777, all in base layer 0.
    fn base_view() -> View {
        let node = |kind, mode| Node {
            kind,
            mode,
            uid: 0,
            gid: 0,
            layer: 0,
            capability: false,
        };
        let file = || node(NodeKind::File { size: 1 }, 0o644);
        let mut v = View::new();
        v.apply(vec![
            Change::Put(p("/etc"), node(NodeKind::Dir, 0o755), None),
            Change::Put(p("/etc/motd"), file(), None),
            Change::Put(p("/srv"), node(NodeKind::Dir, 0o755), None),
            Change::Put(p("/srv/old"), node(NodeKind::Dir, 0o755), None),
            Change::Put(p("/srv/old/x"), file(), None),
            Change::Put(p("/tmp"), node(NodeKind::Dir, 0o1777), None),
        ]);
        v
    }

    fn plan() -> Plan {
        Plan {
            base_layers: 1,
            ..Plan::default()
        }
    }

    fn file() -> EntryKind {
        EntryKind::File(Content::Bytes(b"new".to_vec()))
    }

    fn paths(plan: Plan) -> Vec<String> {
        let mut names: Vec<String> = plan
            .into_entries()
            .into_iter()
            .map(|e| e.path.to_string())
            .collect();
        names.sort();
        names
    }

    /// A plan's runs list its entries and whiteouts merged in the layer's
    /// order (a directory's whole subtree before a sibling named like it
    /// plus `-` or `.`), none longer than asked, each entry once.
    #[test]
    fn runs_come_in_the_layers_order() {
        let view = base_view();
        let mut plan = plan();
        plan.remove(&view, &p("/etc/motd")).unwrap();
        plan.remove(&view, &p("/srv/old")).unwrap();
        for (path, kind) in [
            ("/srv/old", EntryKind::Dir),
            ("/srv/a.txt", file()),
            ("/srv/a/x", file()),
            ("/srv/a-b", file()),
        ] {
            plan.put(&view, p(path), kind, 0o644, Owner::default())
                .unwrap();
        }
        let runs: Vec<layer::Run> = plan.into_runs(2).map(Result::unwrap).collect();
        assert!(runs.iter().all(|r| r.entries().len() <= 2));
        let paths: Vec<&str> = runs
            .iter()
            .flat_map(|r| r.entries().iter().map(|e| &*e.path))
            .collect();
        assert_eq!(
            paths,
            [
                "etc/.wh.motd",
                "srv/a",
                "srv/a/x",
                "srv/a-b",
                "srv/a.txt",
                "srv/old",
                "srv/old/.wh..wh..opq"
            ]
        );
    }

    #[test]
    fn existing_parents_are_not_re_emitted_and_new_ones_are_0755() {
        let view = base_view();
        let mut plan = plan();
        plan.put(&view, p("/tmp/a/b"), file(), 0o600, Owner::default())
            .unwrap();
        let entries = plan.into_entries();
        let got: Vec<(&str, u32)> = entries.iter().map(|e| (&*e.path, e.mode)).collect();
        assert_eq!(got, [("tmp/a", 0o755), ("tmp/a/b", 0o600)]);
    }

    #[test]
    fn a_base_directory_left_alone_with_nothing_below_it_reads_the_base() {
        let view = base_view();
        let mut plan = plan();
        plan.left_alone(&view, p("/srv"));
        assert!(plan.leaves_no_trace(), "nothing of the layer names /srv");
        plan.put(&view, p("/srv/new"), file(), 0o644, Owner::default())
            .unwrap();
        assert!(!plan.leaves_no_trace(), "/srv/new's parent names /srv");
        // One the layer made itself is no base's.
        let mut own = self::plan();
        own.put(&view, p("/opt/x"), file(), 0o644, Owner::default())
            .unwrap();
        own.left_alone(&view, p("/opt"));
        own.entries.remove(&p("/opt/x"));
        assert!(!own.leaves_no_trace());
    }

    #[test]
    fn removing_and_recreating_a_directory_is_an_opaque_whiteout() {
        let view = base_view();
        let mut plan = plan();
        plan.remove(&view, &p("/srv/old")).unwrap();
        plan.put(&view, p("/srv/old/y"), file(), 0o644, Owner::default())
            .unwrap();
        assert!(plan.base_dependent);
        assert_eq!(
            paths(plan),
            ["srv/old", "srv/old/.wh..wh..opq", "srv/old/y"]
        );
    }

    #[test]
    fn removing_a_directory_is_a_plain_whiteout() {
        let view = base_view();
        let mut plan = plan();
        plan.remove(&view, &p("/srv/old")).unwrap();
        assert_eq!(paths(plan), ["srv/.wh.old"]);
    }

    #[test]
    fn a_file_replacing_a_removed_file_needs_no_whiteout() {
        let view = base_view();
        let mut plan = plan();
        plan.remove(&view, &p("/etc/motd")).unwrap();
        plan.put(&view, p("/etc/motd"), file(), 0o644, Owner::default())
            .unwrap();
        assert_eq!(paths(plan), ["etc/motd"]);
    }

    #[test]
    fn a_file_replacing_a_lower_directory_hides_its_tree() {
        let view = base_view();
        let mut plan = plan();
        plan.put(&view, p("/srv/old"), file(), 0o644, Owner::default())
            .unwrap();
        assert_eq!(paths(plan), ["srv/.wh.old", "srv/old"]);
    }

    #[test]
    fn removing_what_exists_nowhere_is_an_error() {
        let view = base_view();
        let mut plan = plan();
        assert!(plan.remove(&view, &p("/etc/nope")).is_err());
        // Removed once, it is gone for the rest of the layer too.
        plan.remove(&view, &p("/etc/motd")).unwrap();
        assert!(plan.remove(&view, &p("/etc/motd")).is_err());
        // Something planned in this layer can be removed again.
        plan.put(&view, p("/etc/new"), file(), 0o644, Owner::default())
            .unwrap();
        plan.remove(&view, &p("/etc/new")).unwrap();
        assert_eq!(paths(plan), ["etc/.wh.motd"]);
    }

    #[test]
    fn a_file_parent_is_an_error() {
        let view = base_view();
        let mut plan = plan();
        let err = plan
            .put(&view, p("/etc/motd/x"), file(), 0o644, Owner::default())
            .unwrap_err();
        assert!(
            err.contains("/etc/motd") && err.contains("not a directory"),
            "{err}"
        );
    }
}
