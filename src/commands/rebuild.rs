//! `ingot verify IMAGE --rebuild RECIPE`: proves an image is what a recipe
//! makes, without trusting whoever built it (issue 16).
//!
//! In order, each step stopping the next when it fails:
//! 1. the layout's fsck ([`verify`]): a tampered layout is reported and
//!    nothing is rebuilt;
//! 2. the settings the image records ([`RebuildSettings`]), checked
//!    against this ingot and the recipe: the layer encoding, the lock's
//!    digest and the recipe's path in its repository;
//! 3. a build of the recipe with those settings into a temp directory
//!    (removed on every path), through the pipeline as a library;
//! 4. the digests compared; when they differ, [`explain`] says where.

use std::collections::HashMap;

use oci_spec::image::Descriptor;
use serde::Serialize;

use super::source::{self, Source};
use super::verify::{self, Report};
use crate::diff::{Diff, FileChange, IndexDiff, PackageDiff, Status};
use crate::digest::Digest;
use crate::error::{Error, IoContext, Result};
use crate::image::provenance::{Built, RebuildSettings};
use crate::image::reference::{ImageRef, OciRef, Selector};
use crate::image::{MAX_MANIFEST_SIZE, PlatformChoice};
use crate::layer;
use crate::lock;
use crate::pipeline::{self, Log};
use crate::progress::Progress;
use crate::recipe::Recipe;
use crate::registry::Access;
use crate::store::layout::Layout;
use crate::store::workdir::WorkDir;

/// What `verify --rebuild` is asked to do.
pub struct Request<'a> {
    pub image: &'a OciRef,
    /// `--digest`: the image must be this manifest or index, too.
    pub expected: Option<&'a Digest>,
    pub recipe: &'a Recipe,
    /// The cache, registries and mirrors the rebuild may use: none of it
    /// changes the image.
    pub sources: &'a pipeline::Sources,
    pub progress: &'a Progress,
}

/// The outcome: the fsck, the settings read, and the comparison.
#[derive(Debug, Serialize)]
pub struct Rebuild {
    /// The image, as given.
    pub image: String,
    /// The image's manifest or index digest, when the fsck named one.
    pub digest: Option<String>,
    /// The recipe rebuilt, as given.
    pub recipe: String,
    /// The layout's fsck, which runs first.
    pub fsck: Report,
    /// The settings the image records, which the rebuild used.
    pub settings: Option<RebuildSettings>,
    /// Whether the rebuild ran: not when the fsck found problems or the
    /// image cannot be rebuilt by this ingot from this recipe.
    pub rebuilt: bool,
    pub rebuilt_digest: Option<Digest>,
    /// The rebuild is the image, digest for digest.
    pub equal: bool,
    /// Why not, when it is not.
    pub explanation: Option<Explanation>,
}

/// Why a rebuild is not the image.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// One line.
    pub reason: String,
    /// Each platform's image that differs, compared (empty when no
    /// rebuild ran).
    pub images: Vec<Comparison>,
    /// The two indexes compared, for a multi-platform image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexDiff>,
}

/// Runs the fsck, then the rebuild and the comparison, logging progress.
/// A layout with problems, or an image not rebuilt equal, is a report
/// whose `equal` is false, not an `Err`: the caller prints it, then fails.
pub fn rebuild(req: &Request, log: Log) -> Result<Rebuild> {
    let fsck = verify::verify(&req.image.path, &req.image.selector, req.expected)?;
    let mut out = Rebuild {
        image: req.image.to_string(),
        digest: fsck.digest.clone(),
        recipe: req.recipe.file.display().to_string(),
        fsck,
        settings: None,
        rebuilt: false,
        rebuilt_digest: None,
        equal: false,
        explanation: None,
    };
    if !out.fsck.is_ok() {
        log(&format!("{} has problems: not rebuilt", out.image));
        return Ok(out);
    }
    let (top, digest) = match out.fsck.checked.as_slice() {
        [one] => (
            one.clone(),
            one.digest
                .parse::<Digest>()
                .map_err(|e| Error::Failed(e.to_string()))?,
        ),
        _ => {
            return Err(Error::Usage(format!(
                "{} holds several images: name the one to rebuild (oci:PATH:TAG, or --digest)",
                out.image
            )));
        }
    };
    log(&format!("{}: intact, {top}", out.image));
    let settings = RebuildSettings::from_annotations(&annotations_of(req.image, &digest)?)
        .map_err(|e| Error::Within {
            context: out.image.clone(),
            source: Box::new(e),
        })?;
    out.settings = Some(settings.clone());
    if let Some(reason) = refusal(&settings, req.recipe)? {
        out.explanation = Some(Explanation {
            reason,
            images: Vec::new(),
            index: None,
        });
        return Ok(out);
    }

    let scratch = WorkDir::new_in(&std::env::temp_dir(), ".ingot-rebuild-", 0o700)
        .context(|| "creating a temp directory for the rebuild".into())?;
    let output = scratch.path().join("image");
    log(&format!(
        "rebuilding {} with {}",
        req.recipe.file.display(),
        describe(&settings)
    ));
    let build = pipeline::Settings {
        epoch: settings.epoch,
        compression: settings.compression,
        revision: settings.revision.clone(),
        source: settings.source.clone(),
    };
    let emit = pipeline::Emit {
        output: output.clone(),
        locked: settings.lock_digest.is_some(),
        tags: Vec::new(),
        replace: false,
        attest: false,
    };
    let built = pipeline::build(req.recipe, &build, req.sources, &emit, req.progress, log)?;
    out.rebuilt = true;
    out.rebuilt_digest = Some(built.digest);
    log(&format!("rebuilt {}", built.digest));
    out.equal = built.digest == digest;
    if !out.equal {
        let rebuilt = OciRef {
            path: output,
            selector: Selector::Digest(built.digest),
        };
        out.explanation = Some(compare(req.image, &digest, &rebuilt, &settings.platforms));
    }
    Ok(out)
}

/// The annotations of the manifest or index `digest` in the layout.
fn annotations_of(image: &OciRef, digest: &Digest) -> Result<HashMap<String, String>> {
    #[derive(serde::Deserialize)]
    struct Annotated {
        annotations: Option<HashMap<String, String>>,
    }
    let layout = Layout::open(&image.path)?;
    let desc: Descriptor = layout.find(&Selector::Digest(*digest))?;
    let read: Annotated = layout.read_json(&desc, MAX_MANIFEST_SIZE)?;
    Ok(read.annotations.unwrap_or_default())
}

/// Why this ingot cannot rebuild the image from this recipe, found before
/// building: another layer encoding, another lock, another recipe path.
fn refusal(settings: &RebuildSettings, recipe: &Recipe) -> Result<Option<String>> {
    if settings.encoding != layer::ENCODING_VERSION {
        return Ok(Some(format!(
            "the image was made by layer encoding {}, and this ingot writes encoding {}: rebuild it with an ingot of encoding {}",
            settings.encoding,
            layer::ENCODING_VERSION,
            settings.encoding
        )));
    }
    // Only a build at a revision records its lock (or that it had none):
    // without one the lock is checked by the digests it pins alone.
    let path = lock::path_for(&recipe.file);
    let ours = lock::digest(&path)?;
    if settings.revision.is_some() && ours != settings.lock_digest {
        let name = |d: Option<Digest>| d.map_or("none".to_string(), |d| d.to_string());
        return Ok(Some(format!(
            "the recipe's ingot.lock is not the one the image was built with: the image records {}, {} is {}",
            name(settings.lock_digest),
            path.display(),
            name(ours)
        )));
    }
    if let Some(recorded) = &settings.recipe_path {
        let ours = recipe.path_in_work_tree();
        if ours.as_ref() != Some(recorded) {
            return Ok(Some(format!(
                "the image was built from {recorded} in its repository, but {} is {}",
                recipe.file.display(),
                ours.map_or("in no git work tree".to_string(), |p| p),
            )));
        }
    }
    Ok(None)
}

/// The settings in words, for the progress line and the text report.
pub fn describe(settings: &RebuildSettings) -> String {
    let mut parts = vec![
        format!("SOURCE_DATE_EPOCH={}", settings.epoch),
        format!("compression {}", settings.compression.name()),
        format!("layer encoding {}", settings.encoding),
        format!("platform {}", settings.platforms),
    ];
    let optional = [
        ("revision", &settings.revision),
        ("source", &settings.source),
        ("recipe", &settings.recipe_path),
    ];
    for (what, value) in optional {
        if let Some(v) = value {
            parts.push(format!("{what} {v}"));
        }
    }
    if let Some(lock) = settings.lock_digest {
        parts.push(format!("--locked (ingot.lock {lock})"));
    }
    parts.join(", ")
}

/// Opens each platform's image of both and explains those that differ.
fn compare(image: &OciRef, digest: &Digest, rebuilt: &OciRef, built: &Built) -> Explanation {
    let original = OciRef {
        path: image.path.clone(),
        selector: Selector::Digest(*digest),
    };
    let mut reason = None;
    let mut images = Vec::new();
    let mut index = None;
    for platform in built.platforms() {
        let choice = PlatformChoice {
            platform: platform.clone(),
            named: matches!(built, Built::Index(_)),
        };
        let open = |r: &OciRef| {
            source::open(
                &ImageRef::Oci(r.clone()),
                &choice,
                &Access::default(),
                &Progress::quiet(),
            )
        };
        let (a, b) = (open(&original), open(rebuilt));
        if let (Ok(a), Ok(b), None) = (&a, &b, &index)
            && let (Some(x), Some(y)) = (&a.index, &b.index)
        {
            index = Some(crate::diff::fields::index(x, y));
        }
        match (a, b) {
            (Ok(a), Ok(b)) if a.identity == b.identity => {}
            (Ok(a), Ok(b)) => match explain(&a, &b) {
                Ok(c) => images.push(c),
                Err(e) => {
                    reason.get_or_insert(format!("platform {platform}: comparing: {e}"));
                }
            },
            (Err(e), _) | (_, Err(e)) => {
                reason.get_or_insert(format!("platform {platform}: {e}"));
            }
        }
    }
    let reason = reason.unwrap_or_else(|| match images.first() {
        Some(c) => c.summary(),
        None => {
            let keys: Vec<String> = index
                .iter()
                .flat_map(|i| &i.annotations)
                .map(|a| a.key.clone())
                .collect();
            format!(
                "the index differs, though each platform's image is the same{}",
                listed(": annotations ", &keys)
            )
        }
    });
    Explanation {
        reason,
        images,
        index,
    }
}

// ---------------------------------------------------------------------------
// The comparison of two images: `ingot diff`'s, per platform.

/// One platform's image against its rebuild.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub platform: String,
    /// The image as old, the rebuild as new.
    pub diff: Diff,
}

/// How many paths a one-line reason names before it says how many more.
const NAMED_IN_SUMMARY: usize = 5;

impl Comparison {
    /// The difference in one line: the first layer that differs and the
    /// files that differ in it, else the config's fields, else the layers
    /// encoded otherwise, else the annotations.
    pub fn summary(&self) -> String {
        let diff = &self.diff;
        if let Some(layer) = diff.layers.differing.first() {
            let name = layer
                .old
                .as_ref()
                .or(layer.new.as_ref())
                .map_or_else(|| format!("#{}", layer.index + 1), |l| l.name.clone());
            let files: Vec<String> = layer.files.iter().map(describe_file).collect();
            // A package that moved is why its files did: named first.
            let packages = diff
                .packages
                .as_ref()
                .map(PackageDiff::phrases)
                .unwrap_or_default();
            return format!(
                "layer {} ({name}) first differs{}{}",
                layer.index + 1,
                listed(": packages ", &packages),
                listed(
                    if packages.is_empty() {
                        ": "
                    } else {
                        "; files "
                    },
                    &files
                )
            );
        }
        let fields: Vec<String> = diff.config.iter().map(|f| f.key.clone()).collect();
        if !fields.is_empty() {
            return format!(
                "the layers are the same; the config differs{}",
                listed(": ", &fields)
            );
        }
        let recoded: Vec<String> = diff
            .layers
            .shared
            .iter()
            .filter(|l| l.other_digest.is_some())
            .map(|l| format!("{} ({})", l.index + 1, l.layer.name))
            .collect();
        if !recoded.is_empty() {
            return format!(
                "the layers hold the same tars, encoded otherwise (another compression){}",
                listed(": layer ", &recoded)
            );
        }
        let keys: Vec<String> = diff
            .annotations
            .iter()
            .flatten()
            .map(|a| a.key.clone())
            .collect();
        format!(
            "the layers and config are the same; the manifest's annotations differ{}",
            listed(": ", &keys)
        )
    }
}

/// `path (what differs)`, or `path added` / `path removed`.
fn describe_file(f: &FileChange) -> String {
    match f.status {
        Status::Added => format!("{} added", f.path),
        Status::Removed => format!("{} removed", f.path),
        _ => format!("{} ({})", f.path, f.attributes.join(", ")),
    }
}

/// `items` after `lead`, the first few and how many more; nothing when
/// there are none.
fn listed(lead: &str, items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let shown = items[..items.len().min(NAMED_IN_SUMMARY)].join(", ");
    match items.len().saturating_sub(NAMED_IN_SUMMARY) {
        0 => format!("{lead}{shown}"),
        more => format!("{lead}{shown} and {more} more"),
    }
}

/// Compares an image with its rebuild, as `ingot diff` does.
pub fn explain(image: &Source, rebuilt: &Source) -> Result<Comparison> {
    Ok(Comparison {
        platform: crate::image::config::platform_of(&image.config).to_string(),
        diff: super::diff::compare(image, rebuilt, &Progress::quiet())?,
    })
}

/// The outcome in words: the fsck's report, the settings, then the verdict
/// and, on a difference, what differs.
pub fn render(r: &Rebuild) -> String {
    let mut out = verify::render(&r.fsck);
    if let Some(settings) = &r.settings {
        out.push_str(&format!("settings: {}\n", describe(settings)));
    }
    match (&r.rebuilt_digest, &r.explanation) {
        (Some(d), _) if r.equal => out.push_str(&format!(
            "rebuilt: {d}: the same image, rebuilt from {}\n",
            r.recipe
        )),
        (Some(d), Some(e)) => {
            out.push_str(&format!(
                "rebuilt: {d}, not {}\nDIFFERENT: {}\n",
                r.digest.as_deref().unwrap_or("the image"),
                e.reason
            ));
            for c in &e.images {
                render_comparison(&mut out, c);
            }
        }
        (None, Some(e)) => out.push_str(&format!("NOT REBUILT: {}\n", e.reason)),
        _ if !r.fsck.is_ok() => out.push_str("NOT REBUILT: the layout has problems\n"),
        _ => {}
    }
    out
}

fn render_comparison(out: &mut String, c: &Comparison) {
    out.push_str(&format!("  {}:\n", c.platform));
    for line in crate::diff::render(&c.diff).lines() {
        out.push_str(&format!("    {line}\n"));
    }
}

/// The error a report that is not `equal` ends in: the fsck's problems,
/// or the reason, naming both digests.
pub fn failure(r: &Rebuild) -> Error {
    if !r.fsck.is_ok() {
        return Error::unverified_problems(r.fsck.problems.len());
    }
    let reason = r
        .explanation
        .as_ref()
        .map_or("the rebuild differs", |e| e.reason.as_str());
    match &r.rebuilt_digest {
        Some(d) => Error::Unverified(format!(
            "{} is {}, but {} rebuilds as {d}: {reason}",
            r.image,
            r.digest.as_deref().unwrap_or("?"),
            r.recipe
        )),
        None => Error::Unverified(format!("{} was not rebuilt: {reason}", r.image)),
    }
}
