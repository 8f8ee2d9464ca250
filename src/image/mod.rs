//! Image metadata: config, manifest and index assembly, and the canonical
//! JSON they are written in (design.md, rule 9, and "Merging onto a base").

pub mod artifact;
pub mod assemble;
pub mod config;
pub mod identity;
pub mod media;
pub mod provenance;
pub mod reference;

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndex};
use serde::Serialize;

/// A manifest or index (index.json included) larger than this is refused
/// rather than trusted with memory: containerd's limit.
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// Configs are read whole to be parsed; one larger than this is refused.
/// Long histories make configs bigger than manifests, hence the margin.
pub const MAX_CONFIG_SIZE: u64 = 16 << 20;

/// Annotation keys (image-spec "Pre-Defined Annotation Keys", plus ingot's).
pub mod annotation {
    pub const CREATED: &str = "org.opencontainers.image.created";
    pub const TITLE: &str = "org.opencontainers.image.title";
    pub const VERSION: &str = "org.opencontainers.image.version";
    pub const REVISION: &str = "org.opencontainers.image.revision";
    pub const SOURCE: &str = "org.opencontainers.image.source";
    pub const BASE_NAME: &str = "org.opencontainers.image.base.name";
    pub const BASE_DIGEST: &str = "org.opencontainers.image.base.digest";
    pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
    /// The layer byte-encoding version (design.md rule 8).
    pub const LAYER_ENCODING: &str = "dev.ingot.layer.encoding";
    /// Build settings that shape the bytes: compression and platform.
    pub const COMPRESSION: &str = "dev.ingot.build.compression";
    pub const PLATFORM: &str = "dev.ingot.build.platform";
    /// On a multi-platform build's index: its platforms, comma-separated,
    /// in the recipe's order.
    pub const PLATFORMS: &str = "dev.ingot.build.platforms";
    /// The recipe file's path within its git work tree, recorded when the
    /// build names a revision (README, "Reproducibility").
    pub const RECIPE_PATH: &str = "dev.ingot.recipe.path";
    /// The sha256 of the `ingot.lock` the build read.
    pub const LOCK_DIGEST: &str = "dev.ingot.lock.digest";
    /// On a layer descriptor: the recipe layer's name.
    pub const LAYER_NAME: &str = "dev.ingot.layer.name";
    /// On a layer descriptor: whether the layer's bytes depended on the
    /// base's content, so a later rebase knows whether it is safe.
    pub const LAYER_BASE_DEPENDENT: &str = "dev.ingot.layer.base-dependent";
    /// On a manifest: the recipe layers (comma-separated names) that
    /// changed nothing on this base and so are not in the image, which
    /// alone would not say that a build on another base may write them.
    pub const LAYERS_EMPTY: &str = "dev.ingot.layers.empty";
    /// The seal policy version the image passed.
    pub const SEAL_POLICY: &str = "dev.ingot.seal.policy";
    /// The seal exceptions the image was built with, canonical JSON.
    pub const SEAL_ALLOW: &str = "dev.ingot.seal.allow";
    /// Config label: the recipe's declared runtime params, canonical JSON.
    pub const PARAMS: &str = "dev.ingot.params";
    /// The recipe name that owns a layout, on index.json.
    pub const LAYOUT_RECIPE: &str = "dev.ingot.recipe";

    /// Whether ingot writes `key` itself, so a recipe's own annotations may
    /// not: the `dev.ingot.` namespace and the pre-defined keys ingot sets.
    pub fn is_ingots(key: &str) -> bool {
        key.starts_with("dev.ingot.")
            || [
                CREATED,
                TITLE,
                VERSION,
                REVISION,
                SOURCE,
                BASE_NAME,
                BASE_DIGEST,
                REF_NAME,
            ]
            .contains(&key)
    }
}

/// Serializes `value` as canonical JSON: object keys sorted by bytes, no
/// insignificant whitespace. Going through `serde_json::Value` (a BTreeMap
/// without the `preserve_order` feature) sorts the HashMaps inside oci-spec
/// types.
pub fn canonical_json<T: Serialize>(value: &T) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&serde_json::to_value(value)?)
}

/// An OS/architecture pair, written `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn linux_amd64() -> Platform {
        Platform {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
        }
    }

    /// Whether an image for `other` serves a build that wants `self`: the
    /// same OS and architecture, and the same variant when `self` names
    /// one (linux/arm64 takes linux/arm64/v8), as [`select_platform`]
    /// chooses.
    pub fn accepts(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.arch == other.arch
            && (self.variant.is_none() || self.variant == other.variant)
    }

    /// As an index descriptor's `platform` field.
    pub fn to_oci(&self) -> oci_spec::image::Platform {
        let mut platform = oci_spec::image::Platform::default();
        platform.set_os(self.os.as_str().into());
        platform.set_architecture(self.arch.as_str().into());
        platform.set_variant(self.variant.clone());
        platform
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok =
            |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "platform {s:?}: expected OS/ARCH or OS/ARCH/VARIANT, like linux/amd64"
            )),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The platform a command reads an image for. From an index it picks the
/// manifest; a single-platform image must be it only when the user named
/// it (`--platform`): the default takes such an image as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformChoice {
    pub platform: Platform,
    /// Named by the user, rather than the default.
    pub named: bool,
}

impl PlatformChoice {
    /// `--platform`, if given; else linux/amd64, not insisted on.
    pub fn from_flag(given: Option<Platform>) -> PlatformChoice {
        match given {
            Some(platform) => PlatformChoice {
                platform,
                named: true,
            },
            None => PlatformChoice {
                platform: Platform::linux_amd64(),
                named: false,
            },
        }
    }

    /// Checks a single-platform image (one no index led to) of platform
    /// `have` against a named choice, as an index entry is matched.
    pub fn check_single(&self, have: &Platform) -> Result<(), String> {
        let wanted = &self.platform;
        if !self.named || wanted.accepts(have) {
            return Ok(());
        }
        Err(format!(
            "the image is for platform {have} only, not {wanted} (--platform); it is no multi-platform index to choose from"
        ))
    }
}

/// The image index a reference named, which a reader followed to one
/// platform's image: its digest and the platforms it lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexSummary {
    pub digest: crate::digest::Digest,
    /// Each manifest's platform, `os/arch[/variant]`, in the index's order.
    pub platforms: Vec<String>,
    /// Each manifest that names its platform, with its digest, in the
    /// index's order: what `diff` compares of two indexes.
    #[serde(skip)]
    pub manifests: Vec<(String, String)>,
    /// The index's own annotations, sorted.
    #[serde(skip)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

impl IndexSummary {
    pub fn of(digest: crate::digest::Digest, index: &ImageIndex) -> IndexSummary {
        let manifests: Vec<(String, String)> = index
            .manifests()
            .iter()
            .filter_map(|d| {
                Some((
                    platform_name(d.platform().as_ref()?),
                    d.digest().to_string(),
                ))
            })
            .collect();
        IndexSummary {
            digest,
            platforms: manifests.iter().map(|(p, _)| p.clone()).collect(),
            manifests,
            annotations: index
                .annotations()
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// A descriptor's platform as `os/arch[/variant]`.
fn platform_name(p: &oci_spec::image::Platform) -> String {
    match p.variant() {
        Some(v) => format!("{}/{}/{v}", p.os(), p.architecture()),
        None => format!("{}/{}", p.os(), p.architecture()),
    }
}

/// The manifest of `index` for `platform`. Variants must match only when
/// the wanted platform names one.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    platform: &Platform,
) -> Result<&'a Descriptor, String> {
    let matches = |d: &&Descriptor| {
        d.platform().as_ref().is_some_and(|p| {
            p.os().to_string() == platform.os
                && p.architecture().to_string() == platform.arch
                && (platform.variant.is_none() || *p.variant() == platform.variant)
        })
    };
    index.manifests().iter().find(matches).ok_or_else(|| {
        let offered: Vec<String> = index
            .manifests()
            .iter()
            .filter_map(|d| d.platform().as_ref())
            .map(|p| format!("{}/{}", p.os(), p.architecture()))
            .collect();
        format!(
            "no image for platform {platform} in the index (it has: {})",
            if offered.is_empty() {
                "none".into()
            } else {
                offered.join(", ")
            }
        )
    })
}

/// An exposed port, `PORT/PROTO` (tcp when the protocol is left out).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    pub number: u16,
    pub proto: String,
}

impl FromStr for Port {
    type Err = String;

    fn from_str(s: &str) -> Result<Port, String> {
        let (num, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        let number =
            num.parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(|| {
                format!("port {s:?}: expected a number 1-65535, like \"8080/tcp\"")
            })?;
        if !["tcp", "udp", "sctp"].contains(&proto) {
            return Err(format!("port {s:?}: protocol must be tcp, udp or sctp"));
        }
        Ok(Port {
            number,
            proto: proto.to_string(),
        })
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.number, self.proto)
    }
}

deserialize_from_str!(Platform, Port);

/// The last second RFC 3339 can write with a four-digit year,
/// 9999-12-31T23:59:59Z: the largest SOURCE_DATE_EPOCH an image can record.
pub const MAX_EPOCH: u64 = 253_402_300_799;

/// RFC 3339 UTC time, to the second, for a Unix timestamp: what OCI
/// `created` fields hold. Pure arithmetic on the value passed in; the clock
/// never enters the core. `epoch` is at most [`MAX_EPOCH`] (the CLI refuses
/// larger ones); beyond it, the last second is written.
pub fn rfc3339(epoch: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch.min(MAX_EPOCH));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The Unix timestamp of a `created` value as [`rfc3339`] writes it, and
/// only as it writes it (`YYYY-MM-DDTHH:MM:SSZ`), so that a recorded epoch
/// reads back exactly and one written another way is not taken for it.
pub fn epoch_of(created: &str) -> Result<u64, String> {
    let t = humantime::parse_rfc3339(created).map_err(|e| format!("not an RFC 3339 time ({e})"))?;
    let epoch = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "before 1970".to_string())?
        .as_secs();
    if rfc3339(epoch) != created {
        return Err(format!(
            "not a time as ingot writes it (YYYY-MM-DDTHH:MM:SSZ, UTC, whole seconds): {}",
            rfc3339(epoch)
        ));
    }
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    proptest::proptest! {
        /// Every epoch an image can record reads back as itself.
        #[test]
        fn every_epoch_round_trips(epoch in 0..=MAX_EPOCH) {
            proptest::prop_assert_eq!(epoch_of(&rfc3339(epoch)), Ok(epoch));
        }
    }

    #[test]
    fn the_edges_round_trip_and_other_spellings_do_not_parse() {
        for epoch in [
            0,
            1,
            5,
            951_782_400,
            4_102_444_799,
            MAX_EPOCH - 1,
            MAX_EPOCH,
        ] {
            assert_eq!(epoch_of(&rfc3339(epoch)), Ok(epoch), "{epoch}");
        }
        assert_eq!(rfc3339(MAX_EPOCH), "9999-12-31T23:59:59Z");
        for other in [
            "1970-01-01T00:00:05+00:00",
            "1970-01-01T00:00:05.0Z",
            "1970-01-01 00:00:05Z",
            "1970-01-01t00:00:05z",
            "",
        ] {
            assert!(epoch_of(other).is_err(), "{other}");
        }
    }

    #[test]
    fn canonical_json_sorts_keys_without_whitespace() {
        let mut m = std::collections::HashMap::new();
        m.insert("b", 1);
        m.insert("a", 2);
        m.insert("c", 3);
        assert_eq!(canonical_json(&m).unwrap(), br#"{"a":2,"b":1,"c":3}"#);
    }

    #[test]
    fn platforms_and_ports_parse() {
        assert_eq!(
            "linux/arm64/v8".parse::<Platform>().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!("linux".parse::<Platform>().is_err());
        assert_eq!("8080".parse::<Port>().unwrap().to_string(), "8080/tcp");
        assert!("0/tcp".parse::<Port>().is_err());
        assert!("80/icmp".parse::<Port>().is_err());
    }
}
