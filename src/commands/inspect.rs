//! `ingot inspect`: an image's manifest, config and annotations, read from
//! a layout with every blob verified, in words or as JSON.

use std::fmt::Write as _;

use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::image::Platform;

use crate::error::{Error, Result};
use crate::image::reference::ImageRef;
use crate::image::{annotation, config as image_config};
use crate::store::layout::blob_ref;

/// Everything `inspect` shows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Inspection {
    pub reference: String,
    pub digest: String,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// The params the image declares, bound per environment by `ingot bind`.
    pub params: crate::params::Params,
}

/// Inspects `image`, choosing `platform` when the layout's entry is an
/// index (of any depth).
pub fn inspect(image: &ImageRef, platform: &Platform) -> Result<Inspection> {
    let ImageRef::Oci(oci) = image else {
        return Err(Error::Usage(format!(
            "inspect reads OCI layouts: oci:PATH[:TAG], not {image}"
        )));
    };
    let found = crate::store::layout::open_image(oci, &oci.path, platform)?;
    for layer in found.manifest.layers() {
        let blob = blob_ref(layer)?;
        if !found.layout.blobs.contains(&blob.digest) {
            return Err(Error::Failed(format!(
                "layer blob {} is missing",
                blob.digest
            )));
        }
    }
    let params =
        crate::params::declared(&found.config).map_err(|m| Error::Failed(format!("{oci}: {m}")))?;
    Ok(Inspection {
        params,
        reference: oci.to_string(),
        digest: found.manifest_digest.to_string(),
        manifest: found.manifest,
        config: found.config,
    })
}

/// The inspection in words, for people.
pub fn render(i: &Inspection) -> String {
    let mut out = String::new();
    let c = &i.config;
    let _ = writeln!(out, "image     {}", i.reference);
    let _ = writeln!(out, "digest    {}", i.digest);
    let _ = writeln!(out, "platform  {}", image_config::platform_of(c));
    let _ = writeln!(out, "created   {}", c.created().as_deref().unwrap_or("-"));
    let _ = writeln!(out, "config    {}", i.manifest.config().digest());
    if let Some(a) = i.manifest.annotations() {
        let _ = writeln!(out, "annotations:");
        let mut keys: Vec<_> = a.iter().collect();
        keys.sort();
        for (k, v) in keys {
            let _ = writeln!(out, "  {k} = {v}");
        }
    }
    let diff_ids = c.rootfs().diff_ids();
    let _ = writeln!(out, "layers:");
    for (n, layer) in i.manifest.layers().iter().enumerate() {
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
