//! `ingot inspect`: an image's manifest, config and annotations, from a
//! layout, a docker-archive or a registry with every blob verified, in
//! words or as JSON.

use std::fmt::Write as _;

use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::IndexSummary;
use crate::image::PlatformChoice;
use crate::image::reference::ImageRef;
use crate::image::{annotation, config as image_config};
use crate::registry::{self, Access, Progress, Remote};
use crate::store;
use crate::store::layout::{Layout, blob_ref};

use super::source::{self, DigestOf};

/// Everything `inspect` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    pub reference: String,
    pub digest: String,
    /// What `digest` is the digest of: the manifest, or for a
    /// docker-archive (which has none) the config.
    pub digest_of: DigestOf,
    /// The image index the reference named, from which the platform's
    /// image was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<IndexSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<ImageManifest>,
    pub config: ImageConfiguration,
    /// The params the image declares, bound per environment by `ingot bind`.
    pub params: crate::params::Params,
    /// The artifacts about the image or its index (SBOMs, provenance):
    /// listed by the layout or the registry; none for a docker-archive.
    pub referrers: Vec<Referrer>,
}

/// An artifact that names the image (or its index) as its subject.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Referrer {
    pub digest: String,
    pub artifact_type: Option<String>,
    pub size: u64,
    /// The digest of the image or index it is about.
    pub subject: String,
}

/// Inspects `image`, choosing `platform` when it is an index (of any
/// depth); a registry is reached as `access` allows.
pub fn inspect(
    image: &ImageRef,
    platform: &PlatformChoice,
    access: &Access,
    progress: &Progress,
) -> Result<Inspection> {
    let source = source::open(image, platform, access, progress)?;
    for layer in &source.layers {
        let blob = blob_ref(layer)?;
        // Missing, or there but no regular file (a FIFO): said as such.
        source
            .blobs
            .present(&blob.digest)
            .map_err(|e| Error::Failed(format!("{image}: layer {e}")))?;
    }
    let params = crate::params::declared(&source.config)
        .map_err(|m| Error::Failed(format!("{image}: {m}")))?;
    let mut subjects = vec![source.identity.digest()];
    subjects.extend(source.index.as_ref().map(|i| i.digest));
    let referrers = if source.identity.digest_of() == DigestOf::Manifest {
        referrers_of(image, &subjects, access, progress)?
    } else {
        Vec::new()
    };
    Ok(Inspection {
        referrers,
        params,
        reference: image.to_string(),
        digest: source.identity.digest().to_string(),
        digest_of: source.identity.digest_of(),
        index: source.index,
        manifest: source.manifest,
        config: source.config,
    })
}

/// The artifacts about each of `subjects` that the layout or registry
/// `image` names lists.
fn referrers_of(
    image: &ImageRef,
    subjects: &[Digest],
    access: &Access,
    progress: &Progress,
) -> Result<Vec<Referrer>> {
    let mut out = Vec::new();
    for subject in subjects {
        let listed = match image {
            ImageRef::Oci(r) => store::referrers::of(&Layout::open(&r.path)?, subject)?,
            ImageRef::Docker(r) => {
                let at = r.with_digest(*subject);
                let remote = Remote::connect(&at, access, progress.clone())?;
                registry::referrers(&remote, &at, None)?
            }
            ImageRef::DockerArchive(_) => Vec::new(),
        };
        out.extend(listed.iter().map(|d| Referrer {
            digest: d.digest().to_string(),
            artifact_type: d.artifact_type().as_ref().map(|t| t.to_string()),
            size: d.size(),
            subject: subject.to_string(),
        }));
    }
    Ok(out)
}

/// The inspection in words, for people.
pub fn render(i: &Inspection) -> String {
    let mut out = String::new();
    let c = &i.config;
    let _ = writeln!(out, "image     {}", i.reference);
    let _ = match i.digest_of {
        DigestOf::Manifest => writeln!(out, "digest    {}", i.digest),
        DigestOf::Config => writeln!(out, "digest    {} (of the config: no manifest)", i.digest),
    };
    if let Some(index) = &i.index {
        let _ = writeln!(
            out,
            "index     {} ({}; --platform chooses)",
            index.digest,
            index.platforms.join(", ")
        );
    }
    let _ = writeln!(out, "platform  {}", image_config::platform_of(c));
    let _ = writeln!(out, "created   {}", c.created().as_deref().unwrap_or("-"));
    if let Some(m) = &i.manifest {
        let _ = writeln!(out, "config    {}", m.config().digest());
    }
    if let Some(a) = i.manifest.as_ref().and_then(|m| m.annotations().as_ref()) {
        let _ = writeln!(out, "annotations:");
        let mut keys: Vec<_> = a.iter().collect();
        keys.sort();
        for (k, v) in keys {
            let _ = writeln!(out, "  {k} = {v}");
        }
    }
    if !i.referrers.is_empty() {
        let _ = writeln!(out, "referrers:");
        for r in &i.referrers {
            let about = if r.subject == i.digest {
                ""
            } else {
                " (of the index)"
            };
            let _ = writeln!(
                out,
                "  {}  {}  {} B{about}",
                r.artifact_type.as_deref().unwrap_or("-"),
                r.digest,
                r.size
            );
        }
    }
    let diff_ids = c.rootfs().diff_ids();
    let _ = writeln!(out, "layers:");
    let Some(manifest) = &i.manifest else {
        // Only the diff_ids are the archive's own: ingot's re-encoded
        // blobs exist nowhere else.
        for (n, d) in diff_ids.iter().enumerate() {
            let _ = writeln!(out, "  {:>2}  diff_id {d}", n + 1);
        }
        return render_config(out, i);
    };
    for (n, layer) in manifest.layers().iter().enumerate() {
        let name = layer
            .annotations()
            .as_ref()
            .and_then(|a| a.get(annotation::LAYER_NAME))
            .map_or("-", String::as_str);
        let _ = writeln!(
            out,
            "  {:>2}  {}  {:>10} B  {}",
            n + 1,
            layer.digest(),
            layer.size(),
            name
        );
        if let Some(d) = diff_ids.get(n) {
            let _ = writeln!(out, "      diff_id {d}");
        }
    }
    render_config(out, i)
}

/// The runtime config, params and history, after the layers.
fn render_config(mut out: String, i: &Inspection) -> String {
    let c = &i.config;
    if let Some(cfg) = c.config() {
        let _ = writeln!(out, "runtime config:");
        let list = |v: &Option<Vec<String>>| v.as_ref().map(|v| format!("{v:?}"));
        let mut fields = vec![
            ("entrypoint", list(cfg.entrypoint())),
            ("cmd", list(cfg.cmd())),
            ("workdir", cfg.working_dir().clone()),
            ("user", cfg.user().clone()),
            ("ports", list(cfg.exposed_ports())),
            ("stop signal", cfg.stop_signal().clone()),
        ];
        fields.retain(|(_, v)| v.is_some());
        for (k, v) in fields {
            let _ = writeln!(out, "  {k:<11} {}", v.unwrap_or_default());
        }
        for e in cfg.env().iter().flatten() {
            let _ = writeln!(out, "  env         {e}");
        }
        if let Some(labels) = cfg.labels() {
            let mut l: Vec<_> = labels.iter().collect();
            l.sort();
            for (k, v) in l {
                let _ = writeln!(out, "  label       {k}={v}");
            }
        }
    }
    if !i.params.is_empty() {
        let _ = writeln!(out, "params:");
        let width = i.params.keys().map(String::len).max().unwrap_or(0);
        for (name, p) in &i.params {
            let mut traits = Vec::new();
            if p.required {
                traits.push("required".to_string());
            }
            if p.secret {
                traits.push("secret".to_string());
            }
            if let Some(d) = &p.default {
                traits.push(format!("default {d:?}"));
            }
            if let Some(pattern) = &p.pattern {
                traits.push(format!("pattern {pattern:?}"));
            }
            if traits.is_empty() {
                traits.push("optional".to_string());
            }
            let about = p
                .description
                .as_deref()
                .map(|d| format!("  {d}"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {name:<width$}  {}{about}", traits.join(", "));
        }
    }
    if let Some(h) = c.history() {
        let _ = writeln!(out, "history:");
        for e in h {
            let _ = writeln!(out, "  {}", e.created_by().as_deref().unwrap_or("-"));
        }
    }
    out
}
