//! `ingot audit`: the seal's rules run on any image, built by ingot or not,
//! from a layout, a docker-archive or a registry, reading each layer once
//! as a stream.
//!
//! Trust model (design.md, "Sealing"): an image's own word is not proof.
//! The exceptions an ingot image declares (its `dev.ingot.seal.allow`
//! annotation, which anyone who writes a manifest can write) are shown
//! with their reasons but pass nothing unless the auditor accepts them:
//! all at once (`--accept-declared`), or one by one in an allow file of
//! the auditor's own, optionally bound to an image digest.

use std::path::Path;

use oci_spec::image::{Descriptor, ImageConfiguration};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result, Within};
use crate::image::reference::ImageRef;
use crate::image::{PlatformChoice, annotation};
use crate::registry::{Access, Progress};
use crate::rootfs::View;
use crate::rootfs::meta::ImagePath;
use crate::seal::SealAllow;
use crate::seal::{self, LayerLabel, Report, Scan};
use crate::store::BlobStore;
use crate::store::file::{self, Links};

use super::source::{self, DigestOf};

/// The seal's report on one image, naming the image.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub image: String,
    pub digest: String,
    /// What `digest` is the digest of: the manifest, or for a
    /// docker-archive (which has none) the config.
    pub digest_of: DigestOf,
    /// The image index the image was taken from, for a multi-platform
    /// image: its digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<Digest>,
    /// The exceptions the image declares, and whether the auditor
    /// accepted them.
    pub declared: Vec<Declared>,
    #[serde(flatten)]
    pub report: Report,
}

/// An exception the image declares about itself.
#[derive(Debug, Clone, Serialize)]
pub struct Declared {
    pub rule: String,
    pub path: String,
    pub reason: String,
    /// Whether it was honoured (`--accept-declared`).
    pub accepted: bool,
}

/// Which exceptions an audit honours: the image's own only when
/// `accept_declared`; the auditor's own always (those bound to a digest
/// only on that image).
#[derive(Debug, Clone, Default)]
pub struct Trust {
    pub accept_declared: bool,
    pub allow: Vec<AuditorAllow>,
}

/// One entry of an auditor's allow file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditorAllow {
    pub rule: String,
    pub path: ImagePath,
    pub reason: String,
    /// The image (manifest digest, or config digest for a docker-archive)
    /// the exception is for; without one it holds for every image.
    #[serde(default)]
    pub digest: Option<Digest>,
}

/// An allow file is a short list written by people.
const MAX_ALLOW_FILE: u64 = 1 << 20;

/// Reads an auditor's allow file: a YAML list of `{ rule, path, reason,
/// digest? }`. Unknown fields and rules are errors naming the file and
/// position (exit 2).
pub fn read_allow_file(path: &Path) -> Result<Vec<AuditorAllow>> {
    let usage = |m: String| Error::Usage(format!("{}: {m}", path.display()));
    let text = file::read_regular_string(path, Links::Follow, MAX_ALLOW_FILE)
        .map_err(|e| usage(e.to_string()))?;
    let list: Vec<AuditorAllow> = serde_yaml::from_str(&text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!("{}:{}: ", l.line(), l.column()))
            .unwrap_or_default();
        Error::Usage(format!("{}:{at}{e}", path.display()))
    })?;
    for (i, a) in list.iter().enumerate() {
        if seal::rule(&a.rule).is_none() {
            let ids: Vec<&str> = seal::RULES.iter().map(|r| r.id).collect();
            return Err(usage(format!(
                "entry {}: unknown rule {:?} (rules: {})",
                i + 1,
                a.rule,
                ids.join(", ")
            )));
        }
    }
    Ok(list)
}

/// Audits `image`, choosing `platform` from an index; a registry is
/// reached as `access` allows. The exceptions the image declares are
/// listed with their reasons, and honoured only as `trust` says.
pub fn audit(
    image: &ImageRef,
    platform: &PlatformChoice,
    access: &Access,
    progress: &Progress,
    trust: &Trust,
) -> Result<Audit> {
    let source = source::open(image, platform, access, progress)?;
    let digest = source.identity.digest();
    let declared = declared_exceptions(source.annotations())?;
    let mut allow: Vec<SealAllow> = if trust.accept_declared {
        declared.clone()
    } else {
        Vec::new()
    };
    allow.extend(
        trust
            .allow
            .iter()
            .filter(|a| a.digest.is_none_or(|d| d == digest))
            .map(|a| SealAllow {
                rule: a.rule.clone(),
                path: a.path.clone(),
                reason: a.reason.clone(),
            }),
    );
    let report = run(
        &source.config,
        &source.layers,
        &source.blobs,
        &allow,
        &source.labels,
    )
    // A layer's error names its blob; this names the image it is in.
    .within(|| image.to_string())?;
    let declared = declared
        .into_iter()
        .map(|d| Declared {
            rule: d.rule,
            path: d.path.to_string(),
            reason: d.reason,
            accepted: trust.accept_declared,
        })
        .collect();
    Ok(Audit {
        image: image.to_string(),
        digest: digest.to_string(),
        digest_of: source.identity.digest_of(),
        index: source.index.as_ref().map(|i| i.digest),
        declared,
        report,
    })
}

/// The audit in words: the image and the digest audited, the image's
/// declared exceptions, then the seal's report.
pub fn render(audit: &Audit) -> String {
    let of = match audit.digest_of {
        DigestOf::Manifest => "manifest",
        DigestOf::Config => "config",
    };
    let mut out = format!("image: {}\n{of}: {}\n", audit.image, audit.digest);
    if let Some(index) = &audit.index {
        out.push_str(&format!("index: {index}\n"));
    }
    for d in &audit.declared {
        let verdict = if d.accepted {
            "accepted"
        } else {
            "not accepted; --accept-declared or an --allow file accepts it"
        };
        out.push_str(&format!(
            "declared by the image: {}: {} [{}] ({verdict})\n",
            d.rule, d.path, d.reason
        ));
    }
    out.push_str(&seal::render(&audit.report));
    out
}

/// Streams every layer into a view and the content scan, then checks.
fn run(
    config: &ImageConfiguration,
    layers: &[Descriptor],
    blobs: &BlobStore,
    allow: &[SealAllow],
    labels: &[LayerLabel],
) -> Result<Report> {
    let diff_ids = crate::image::config::diff_ids(config).map_err(Error::Failed)?;
    let mut view = View::new();
    let mut scan = Scan::default();
    for (i, (desc, diff_id)) in layers.iter().zip(&diff_ids).enumerate() {
        view.apply_layer(blobs, desc, diff_id, &mut |path, data| {
            scan.visit(path, i, data)
        })?;
    }
    let inputs = seal::Inputs {
        view: &view,
        config: config.config().as_ref(),
        scan: &scan,
    };
    Ok(seal::check(&inputs, allow, labels))
}

/// The exceptions an image was sealed with, from its annotation.
fn declared_exceptions(
    annotations: Option<&std::collections::HashMap<String, String>>,
) -> Result<Vec<SealAllow>> {
    let Some(text) = annotations.and_then(|a| a.get(annotation::SEAL_ALLOW)) else {
        return Ok(Vec::new());
    };
    serde_json::from_str(text)
        .map_err(|e| Error::Failed(format!("annotation {}: {e}", annotation::SEAL_ALLOW)))
}
