//! Assembling an image from its parts: the base's config and layers, the
//! recipe's layers on top, the merged runtime config and the manifest's
//! annotations, written as canonical JSON (design.md, "Merging onto a
//! base" and rule 9). Pure: the caller stores the bytes.

use std::collections::HashMap;

use oci_spec::image::{
    Config, Descriptor, History, ImageConfiguration, ImageManifest, ImageManifestBuilder, MediaType,
};

use super::config::{diff_ids, image_config};
use super::{Platform, canonical_json};
use crate::digest::Digest;

/// A layer the recipe adds: its descriptor, its diff_id and the history
/// entry that says what made it.
#[derive(Debug, Clone)]
pub struct NewLayer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    pub history: History,
}

/// The base an image is assembled on: its config (history and diff_ids
/// carry over) and its layer descriptors, bottom first.
#[derive(Debug, Clone, Copy)]
pub struct Lower<'a> {
    pub config: &'a ImageConfiguration,
    pub layers: &'a [Descriptor],
}

/// An image's config and manifest, and the bytes each is stored as.
#[derive(Debug, Clone)]
pub struct Assembled {
    pub config: ImageConfiguration,
    pub config_json: Vec<u8>,
    pub manifest: ImageManifest,
    pub manifest_json: Vec<u8>,
}

impl Assembled {
    /// Every layer descriptor, base first.
    pub fn layers(&self) -> &[Descriptor] {
        self.manifest.layers()
    }
}

/// The image `layers` make on `base`: one config (`platform`, `runtime`,
/// the diff_ids and history of both, `created`) and one manifest with
/// `annotations`.
pub fn assemble(
    base: Lower,
    layers: Vec<NewLayer>,
    platform: &Platform,
    runtime: Config,
    created: &str,
    annotations: HashMap<String, String>,
) -> Result<Assembled, String> {
    let mut ids = diff_ids(base.config)?;
    let mut history = base.config.history().clone().unwrap_or_default();
    let mut descriptors = base.layers.to_vec();
    for layer in layers {
        ids.push(layer.diff_id);
        history.push(layer.history);
        descriptors.push(layer.descriptor);
    }
    let config = image_config(platform, created, runtime, &ids, history);
    let config_json = canonical_json(&config).map_err(|e| format!("encoding the config: {e}"))?;
    let config_descriptor = Descriptor::new(
        MediaType::ImageConfig,
        config_json.len() as u64,
        Digest::of(&config_json).to_oci(),
    );
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_descriptor)
        .layers(descriptors)
        .annotations(annotations)
        .build()
        .map_err(|e| format!("assembling the manifest: {e}"))?;
    let manifest_json =
        canonical_json(&manifest).map_err(|e| format!("encoding the manifest: {e}"))?;
    Ok(Assembled {
        config,
        config_json,
        manifest,
        manifest_json,
    })
}

/// An image manifest an image index lists: its digest, size and platform.
pub struct IndexEntry<'a> {
    pub digest: Digest,
    pub size: u64,
    pub platform: &'a Platform,
}

/// The image index of a multi-platform image, in canonical JSON: one
/// manifest descriptor per platform, each with its `platform`, in the
/// order given, and the index's `annotations`.
pub fn index(
    entries: &[IndexEntry],
    annotations: HashMap<String, String>,
) -> Result<Vec<u8>, String> {
    let manifests = entries
        .iter()
        .map(|e| {
            let mut desc = Descriptor::new(MediaType::ImageManifest, e.size, e.digest.to_oci());
            desc.set_platform(Some(e.platform.to_oci()));
            desc
        })
        .collect();
    let mut index = oci_spec::image::ImageIndex::default();
    index.set_schema_version(2);
    index.set_media_type(Some(MediaType::ImageIndex));
    index.set_manifests(manifests);
    index.set_annotations(Some(annotations).filter(|a| !a.is_empty()));
    canonical_json(&index).map_err(|e| format!("encoding the image index: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::config::history_entry;

    fn layer(content: &[u8]) -> NewLayer {
        NewLayer {
            descriptor: Descriptor::new(
                MediaType::ImageLayerGzip,
                content.len() as u64,
                Digest::of(content).to_oci(),
            ),
            diff_id: Digest::of(&[content, b"tar"].concat()),
            history: history_entry("1970-01-01T00:00:00Z", "ingot layer x".into(), None),
        }
    }

    #[test]
    fn layers_and_history_stack_on_the_base() {
        let platform = Platform::linux_amd64();
        let below = assemble(
            Lower {
                config: &image_config(&platform, "", Config::default(), &[], vec![]),
                layers: &[],
            },
            vec![layer(b"a")],
            &platform,
            Config::default(),
            "1970-01-01T00:00:00Z",
            HashMap::new(),
        )
        .unwrap();
        let above = assemble(
            Lower {
                config: &below.config,
                layers: below.layers(),
            },
            vec![layer(b"b")],
            &platform,
            Config::default(),
            "1970-01-01T00:00:00Z",
            HashMap::from([("k".to_string(), "v".to_string())]),
        )
        .unwrap();
        assert_eq!(above.layers().len(), 2);
        assert_eq!(above.config.rootfs().diff_ids().len(), 2);
        assert_eq!(above.config.history().as_ref().map(Vec::len), Some(2));
        // The manifest names the config by the digest of its bytes.
        assert_eq!(
            above.manifest.config().digest().to_string(),
            Digest::of(&above.config_json).to_string()
        );
        assert_eq!(
            above.manifest.config().size(),
            above.config_json.len() as u64
        );
        // Canonical JSON: sorted keys, no whitespace.
        let text = String::from_utf8(above.manifest_json.clone()).unwrap();
        assert!(text.starts_with("{\"annotations\":{\"k\":\"v\"},\"config\":"));
    }

    #[test]
    fn an_index_lists_each_manifest_with_its_platform() {
        let (amd, arm) = (Platform::linux_amd64(), "linux/arm64/v8".parse().unwrap());
        let digest = Digest::of(b"m");
        let entries = [
            IndexEntry {
                digest,
                size: 1,
                platform: &amd,
            },
            IndexEntry {
                digest,
                size: 1,
                platform: &arm,
            },
        ];
        let json = index(&entries, HashMap::new()).unwrap();
        let d = digest.to_string();
        let manifest = "\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\"";
        assert_eq!(
            String::from_utf8(json).unwrap(),
            format!(
                "{{\"manifests\":[\
                 {{\"digest\":\"{d}\",{manifest},\"platform\":{{\"architecture\":\"amd64\",\"os\":\"linux\"}},\"size\":1}},\
                 {{\"digest\":\"{d}\",{manifest},\"platform\":{{\"architecture\":\"arm64\",\"os\":\"linux\",\"variant\":\"v8\"}},\"size\":1}}],\
                 \"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"schemaVersion\":2}}"
            )
        );
        let annotated = index(&entries, HashMap::from([("k".into(), "v".into())])).unwrap();
        let text = String::from_utf8(annotated).unwrap();
        assert!(
            text.starts_with("{\"annotations\":{\"k\":\"v\"},\"manifests\":"),
            "{text}"
        );
    }
}
