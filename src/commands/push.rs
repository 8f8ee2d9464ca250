//! `ingot push`: an image from an OCI layout to a registry
//! (distribution-spec "Pushing manifests").
//!
//! Blobs first, manifests last (a registry refuses a manifest whose blobs
//! it lacks); blobs go through [`registry::push_blobs`], which mounts them
//! from another repository of the same registry when one is known
//! (`--from-repo`, or the repository of a `docker://` base named in the
//! manifest's `org.opencontainers.image.base.name`). An index is pushed
//! with every manifest it lists, children by digest. The artifacts the
//! layout holds about them (SBOMs, provenance) follow as referrers.

use std::collections::BTreeSet;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::commands::sign;
use crate::digest::Digest;
use crate::error::{Error, RegistryError, Result, Within};
use crate::image::MAX_MANIFEST_SIZE;
use crate::image::reference::{OciRef, RegistryRef, Selector};
use crate::image::{annotation, media};
use crate::registry::{self, Access, Progress, PushOptions, PushReport, Remote};
use crate::store::BlobRef;
use crate::store::layout::{Layout, blob_ref, tag_of};
use crate::store::referrers;

/// How deep indexes may nest in a layout we push.
const MAX_INDEX_DEPTH: usize = 4;

/// Pushes the image `source` names to `dest`. The tag is `dest`'s, else
/// the source's; with neither, the image is pushed by digest only. The
/// image is tagged with `options.also_tags` too, and with
/// `options.keep_tags` nothing is sent when the registry has one of the
/// tags for another manifest.
pub fn push(
    source: &OciRef,
    dest: &RegistryRef,
    options: &PushOptions,
    access: &Access,
    progress: Progress,
) -> Result<PushReport> {
    if dest.digest.is_some() {
        return Err(Error::Usage(format!(
            "{dest}: push to docker://HOST/REPO[:TAG]; the digest is what the push prints"
        )));
    }
    let layout = Layout::open(&source.path)?;
    let desc = layout.find(&source.selector)?;
    let tag = dest.tag.clone().or(match &source.selector {
        Selector::Tag(t) => Some(t.clone()),
        Selector::Only => tag_of(&desc).map(str::to_string),
        Selector::Digest(_) => None,
    });
    let target = dest.with_tag(tag.as_deref());

    let mut plan = Plan::default();
    collect(&layout, &desc, 0, &mut plan)?;
    let root = plan
        .manifests
        .last()
        .cloned()
        .ok_or_else(|| Error::Failed(format!("{source}: nothing to push")))?;

    let remote = Remote::connect(&target, access, progress)?;
    let mut tags: Vec<&str> = tag.iter().map(String::as_str).collect();
    for also in &options.also_tags {
        if !tags.contains(&also.as_str()) {
            tags.push(also);
        }
    }
    if options.keep_tags {
        refuse_moving_tags(&remote, &target, &tags, root.digest)?;
    }
    let mut sources: Vec<String> = options
        .from_repositories
        .iter()
        .map(|r| r.as_str().to_string())
        .collect();
    sources.extend(plan.bases.iter().filter_map(|base| {
        let base: RegistryRef = base.parse().ok()?;
        (base.host == target.host && base.repository != target.repository)
            .then_some(base.repository)
    }));
    let mut seen = BTreeSet::new();
    sources.retain(|r| seen.insert(r.clone()));

    let reference = match &tag {
        Some(_) => target.to_string(),
        None => target.with_digest(root.digest).to_string(),
    };
    let mut report = PushReport::new(reference, root.digest, &root.media_type);
    registry::push_blobs(
        &remote,
        &target,
        &layout.blobs,
        &plan.blobs,
        &sources,
        options,
        &source.to_string(),
        &mut report,
    )?;
    // Children by digest, then the root at its tag.
    let (children, _) = plan.manifests.split_at(plan.manifests.len() - 1);
    for m in children {
        remote.put_manifest(&target.with_tag(None), &m.bytes, &m.media_type)?;
        report.manifests += 1;
    }
    remote.put_manifest(&target, &root.bytes, &root.media_type)?;
    report.manifests += 1;
    for also in tags.iter().filter(|t| Some(**t) != tag.as_deref()) {
        remote.put_manifest(&target.with_tag(Some(also)), &root.bytes, &root.media_type)?;
    }
    // The artifacts about the image and each manifest of its index, after
    // them: a referrer's subject is on the registry before it is.
    for m in &plan.manifests {
        for artifact in referrers::of(&layout, &m.digest)? {
            let manifest = blob_ref(&artifact)?;
            report.referrers.push(registry::push_referrer(
                &remote,
                &target,
                &layout.blobs,
                &manifest,
            )?);
        }
    }
    // Signed in the layout (`ingot sign --identity`): the signatures travel
    // with the image, to the tag where skopeo and cosign look.
    report.signatures = sign::push_signatures(&remote, &target, &layout, &root.digest)?;
    Ok(report)
}

/// Fails, naming both digests, when the registry has one of `tags` for
/// another manifest than `digest`.
fn refuse_moving_tags(
    remote: &Remote,
    target: &RegistryRef,
    tags: &[&str],
    digest: Digest,
) -> Result<()> {
    let mut moved = Vec::new();
    for tag in tags {
        let at = target.with_tag(Some(tag));
        match remote.get_manifest(&at) {
            Ok(held) if held.digest != digest => {
                moved.push(format!("{at} is {}, this image {digest}", held.digest));
            }
            Ok(_) | Err(Error::Registry(RegistryError::NotFound { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    if moved.is_empty() {
        return Ok(());
    }
    Err(Error::Failed(format!(
        "{}; a version never moves: nothing was pushed (bump the version, or use --replace to move the tag)",
        moved.join("; ")
    )))
}

#[derive(Clone)]
struct ManifestBytes {
    bytes: Vec<u8>,
    digest: Digest,
    media_type: String,
}

/// What a push sends: blobs (each once, in first-seen order) and
/// manifests (children before their index).
#[derive(Default)]
struct Plan {
    blobs: Vec<BlobRef>,
    seen: BTreeSet<Digest>,
    manifests: Vec<ManifestBytes>,
    /// `org.opencontainers.image.base.name` of every manifest: mount
    /// sources when they are on the destination registry.
    bases: Vec<String>,
}

impl Plan {
    fn blob(&mut self, desc: &Descriptor) -> Result<()> {
        let blob = blob_ref(desc)?;
        if self.seen.insert(blob.digest) {
            self.blobs.push(blob);
        }
        Ok(())
    }
}

fn collect(layout: &Layout, desc: &Descriptor, depth: usize, plan: &mut Plan) -> Result<()> {
    let blob = blob_ref(desc)?;
    if blob.size > MAX_MANIFEST_SIZE {
        return Err(Error::Failed(format!(
            "{}: manifest {} claims {} bytes, more than a registry accepts",
            layout.dir.display(),
            blob.digest,
            blob.size
        )));
    }
    let bytes = layout
        .blobs
        .read(&blob)
        .within(|| format!("reading {}", layout.dir.display()))?;
    let media_type = desc.media_type().to_string();
    let bad_json = |e: serde_json::Error| {
        Error::Failed(format!("manifest {}: invalid JSON: {e}", blob.digest))
    };
    if media::is_index(&media_type) {
        if depth >= MAX_INDEX_DEPTH {
            return Err(Error::Failed(format!(
                "{}: indexes nest deeper than {MAX_INDEX_DEPTH}",
                layout.dir.display()
            )));
        }
        let index: ImageIndex = serde_json::from_slice(&bytes).map_err(bad_json)?;
        for child in index.manifests() {
            collect(layout, child, depth + 1, plan)?;
        }
    } else if media::is_manifest(&media_type) {
        let manifest: ImageManifest = serde_json::from_slice(&bytes).map_err(bad_json)?;
        plan.blob(manifest.config())?;
        for layer in manifest.layers() {
            plan.blob(layer)?;
        }
        if let Some(base) = manifest
            .annotations()
            .as_ref()
            .and_then(|a| a.get(annotation::BASE_NAME))
        {
            plan.bases.push(base.clone());
        }
    } else {
        return Err(Error::Failed(format!(
            "{}: {} is a {media_type}, not an image manifest or index",
            layout.dir.display(),
            blob.digest
        )));
    }
    if !plan.manifests.iter().any(|m| m.digest == blob.digest) {
        plan.manifests.push(ManifestBytes {
            bytes,
            digest: blob.digest,
            media_type,
        });
    }
    Ok(())
}
