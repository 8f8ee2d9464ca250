//! What an image records about how it was built, read back: everything a
//! rebuild needs besides the recipe tree itself (README,
//! "Reproducibility").
//!
//! A build writes these as annotations on its manifest (and, for a
//! multi-platform build, on its index too; see
//! `pipeline::platforms`). This module owns reading them: one pure
//! function from the annotations to [`RebuildSettings`], so that
//! `verify --rebuild` and anyone else take the same meaning from the same
//! keys, and an image that lacks one is refused naming the key.

use std::collections::HashMap;

use serde::Serialize;

use super::media::LayerCompression;
use super::{Platform, annotation, epoch_of};
use crate::digest::Digest;
use crate::error::{Error, Result};

/// The settings an image was built with, as its annotations record them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RebuildSettings {
    /// SOURCE_DATE_EPOCH, from `org.opencontainers.image.created`.
    pub epoch: u64,
    /// How the recipe's layers were compressed.
    #[serde(serialize_with = "serialize_compression")]
    pub compression: LayerCompression,
    /// The layer encoding version of the ingot that built it.
    pub encoding: String,
    /// The platform of an image, or the platforms of an index, in order.
    pub platforms: Built,
    /// The VCS revision the build was given (`--revision`).
    pub revision: Option<String>,
    /// Where the recipe's source lives (`--source`).
    pub source: Option<String>,
    /// The recipe file's path within its git work tree, recorded with a
    /// revision.
    pub recipe_path: Option<String>,
    /// The sha256 of the `ingot.lock` the build read, when it had one.
    pub lock_digest: Option<Digest>,
}

/// What a build made: one image for a platform, or an index of several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    Image(Platform),
    Index(Vec<Platform>),
}

impl Built {
    /// Each platform, in order: one for an image.
    pub fn platforms(&self) -> &[Platform] {
        match self {
            Built::Image(p) => std::slice::from_ref(p),
            Built::Index(ps) => ps,
        }
    }
}

/// `{"image": "linux/amd64"}` or `{"index": ["linux/amd64", …]}`.
impl Serialize for Built {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let names: Vec<String> = self.platforms().iter().map(ToString::to_string).collect();
        let mut map = s.serialize_map(Some(1))?;
        match self {
            Built::Image(_) => map.serialize_entry("image", &names[0])?,
            Built::Index(_) => map.serialize_entry("index", &names)?,
        }
        map.end()
    }
}

impl std::fmt::Display for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Built::Image(p) => write!(f, "{p}"),
            Built::Index(ps) => {
                let names: Vec<String> = ps.iter().map(ToString::to_string).collect();
                write!(f, "{} (an index)", names.join(", "))
            }
        }
    }
}

/// The platforms of an index as one annotation value: `linux/amd64,linux/arm64`.
pub fn platforms_value(platforms: &[Platform]) -> String {
    let names: Vec<String> = platforms.iter().map(ToString::to_string).collect();
    names.join(",")
}

impl RebuildSettings {
    /// Reads the settings from a manifest's or an index's annotations.
    /// An index names its platforms (`dev.ingot.build.platforms`), an
    /// image its one platform; a required key that is missing or does not
    /// parse is an error naming it (the image was not built by an ingot
    /// that records it).
    pub fn from_annotations(annotations: &HashMap<String, String>) -> Result<RebuildSettings> {
        let required = |key: &str| {
            annotations.get(key).ok_or_else(|| {
                Error::Failed(format!(
                    "the image does not record {key}, which a rebuild needs: it was not built by ingot, or by one too old to record it"
                ))
            })
        };
        let bad = |key: &str, value: &str, why: String| {
            Error::Failed(format!("annotation {key}={value:?}: {why}"))
        };
        let created = required(annotation::CREATED)?;
        let epoch = epoch_of(created).map_err(|e| bad(annotation::CREATED, created, e))?;
        let compression = required(annotation::COMPRESSION)?;
        let compression = compression_named(compression).ok_or_else(|| {
            bad(
                annotation::COMPRESSION,
                compression,
                "not gzip or zstd".into(),
            )
        })?;
        let encoding = required(annotation::LAYER_ENCODING)?.clone();
        let platforms = match annotations.get(annotation::PLATFORMS) {
            Some(list) => Built::Index(
                list.split(',')
                    .map(str::parse)
                    .collect::<std::result::Result<_, String>>()
                    .map_err(|e| bad(annotation::PLATFORMS, list, e))?,
            ),
            None => {
                let one = required(annotation::PLATFORM)?;
                Built::Image(one.parse().map_err(|e| bad(annotation::PLATFORM, one, e))?)
            }
        };
        let lock_digest = match annotations.get(annotation::LOCK_DIGEST) {
            Some(d) => Some(
                d.parse()
                    .map_err(|e| bad(annotation::LOCK_DIGEST, d, format!("{e}")))?,
            ),
            None => None,
        };
        let optional = |key: &str| annotations.get(key).cloned();
        Ok(RebuildSettings {
            epoch,
            compression,
            encoding,
            platforms,
            revision: optional(annotation::REVISION),
            source: optional(annotation::SOURCE),
            recipe_path: optional(annotation::RECIPE_PATH),
            lock_digest,
        })
    }
}

fn serialize_compression<S: serde::Serializer>(
    c: &LayerCompression,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(c.name())
}

/// The compression `dev.ingot.build.compression` names.
fn compression_named(name: &str) -> Option<LayerCompression> {
    [LayerCompression::Gzip, LayerCompression::Zstd]
        .into_iter()
        .find(|c| c.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// What every ingot image records, for linux/amd64 at epoch 5.
    fn minimal() -> HashMap<String, String> {
        recorded(&[
            (annotation::CREATED, "1970-01-01T00:00:05Z"),
            (annotation::COMPRESSION, "zstd"),
            (annotation::LAYER_ENCODING, "3"),
            (annotation::PLATFORM, "linux/amd64"),
        ])
    }

    #[test]
    fn an_image_reads_back_what_it_records() {
        let mut annotations = minimal();
        let lock = Digest::of(b"lock");
        annotations.extend(recorded(&[
            (annotation::REVISION, "abc123"),
            (annotation::SOURCE, "https://example.com/r"),
            (annotation::RECIPE_PATH, "apps/web/recipe.yaml"),
            (annotation::LOCK_DIGEST, &lock.to_string()),
            ("org.example.other", "ignored"),
        ]));
        let settings = RebuildSettings::from_annotations(&annotations).unwrap();
        assert_eq!(
            settings,
            RebuildSettings {
                epoch: 5,
                compression: LayerCompression::Zstd,
                encoding: "3".into(),
                platforms: Built::Image(Platform::linux_amd64()),
                revision: Some("abc123".into()),
                source: Some("https://example.com/r".into()),
                recipe_path: Some("apps/web/recipe.yaml".into()),
                lock_digest: Some(lock),
            }
        );
    }

    #[test]
    fn optional_settings_may_be_absent() {
        let settings = RebuildSettings::from_annotations(&minimal()).unwrap();
        assert_eq!(
            (
                settings.revision,
                settings.recipe_path,
                settings.lock_digest
            ),
            (None, None, None)
        );
    }

    #[test]
    fn an_index_names_its_platforms_in_order() {
        let mut annotations = minimal();
        annotations.remove(annotation::PLATFORM);
        let list = "linux/arm64/v8,linux/amd64";
        annotations.insert(annotation::PLATFORMS.into(), list.into());
        let settings = RebuildSettings::from_annotations(&annotations).unwrap();
        let platforms: Vec<Platform> = list.split(',').map(|p| p.parse().unwrap()).collect();
        assert_eq!(settings.platforms, Built::Index(platforms.clone()));
        assert_eq!(platforms_value(&platforms), list);
    }

    #[test]
    fn a_missing_or_bad_key_is_named() {
        for key in [
            annotation::CREATED,
            annotation::COMPRESSION,
            annotation::LAYER_ENCODING,
            annotation::PLATFORM,
        ] {
            let mut annotations = minimal();
            annotations.remove(key);
            let err = RebuildSettings::from_annotations(&annotations).unwrap_err();
            assert!(err.to_string().contains(key), "{key}: {err}");
        }
        for (key, value) in [
            (annotation::CREATED, "yesterday"),
            (annotation::CREATED, "1970-01-01T00:00:05+01:00"),
            (annotation::COMPRESSION, "lz4"),
            (annotation::PLATFORM, "linux"),
            (annotation::LOCK_DIGEST, "sha256:12"),
        ] {
            let mut annotations = minimal();
            annotations.insert(key.into(), value.into());
            let err = RebuildSettings::from_annotations(&annotations).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(key) && msg.contains(value), "{msg}");
        }
    }
}
