//! Media types: the documents and layers ingot reads and writes, and every
//! check of which is which, in one place (image-spec "Media Types"; Docker
//! schema 2, which registries and `skopeo copy` still hand out, has the
//! same JSON shapes under other names).

use std::fmt;

use oci_spec::image::MediaType;

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// A sigstore signature payload, each one layer of an image's `.sig`
/// manifest (cosign's `types.SimpleSigningMediaType`; see
/// [`crate::sign::attachment`]).
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// What a manifest request accepts: OCI and Docker schema 2 manifests and
/// indexes (schema 1 is long gone).
pub const MANIFEST_TYPES: [&str; 4] = [MANIFEST, INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];

/// An image manifest, OCI or Docker.
pub fn is_manifest(media_type: &str) -> bool {
    media_type == MANIFEST || media_type == DOCKER_MANIFEST
}

/// An index of manifests (a multi-platform image), OCI or Docker.
pub fn is_index(media_type: &str) -> bool {
    media_type == INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// An image config, OCI or Docker.
pub fn is_config(media_type: &str) -> bool {
    media_type == CONFIG || media_type == DOCKER_CONFIG
}

/// How a layer blob is compressed, as its media type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type names: OCI's and Docker's
    /// (distributable or not). Anything else is not a layer we can read.
    pub fn of(media_type: &MediaType) -> Result<Compression, String> {
        match media_type {
            MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => Ok(Compression::None),
            MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => {
                Ok(Compression::Gzip)
            }
            MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => {
                Ok(Compression::Zstd)
            }
            MediaType::Other(s) => match s.as_str() {
                "application/vnd.docker.image.rootfs.diff.tar.gzip"
                | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                    Ok(Compression::Gzip)
                }
                "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
                other => Err(format!("unsupported layer media type {other}")),
            },
            other => Err(format!("unsupported layer media type {other}")),
        }
    }
}

/// How ingot writes the layers it builds: its block gzip or zstd, each
/// with the OCI media type that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayerCompression {
    /// ingot's block gzip (`application/vnd.oci.image.layer.v1.tar+gzip`).
    Gzip,
    /// zstd (`application/vnd.oci.image.layer.v1.tar+zstd`).
    Zstd,
}

impl LayerCompression {
    pub fn media_type(self) -> MediaType {
        match self {
            LayerCompression::Gzip => MediaType::ImageLayerGzip,
            LayerCompression::Zstd => MediaType::ImageLayerZstd,
        }
    }

    /// The name recorded in images and cache keys.
    pub fn name(self) -> &'static str {
        match self {
            LayerCompression::Gzip => "gzip",
            LayerCompression::Zstd => "zstd",
        }
    }
}

impl From<LayerCompression> for Compression {
    fn from(c: LayerCompression) -> Compression {
        match c {
            LayerCompression::Gzip => Compression::Gzip,
            LayerCompression::Zstd => Compression::Zstd,
        }
    }
}

impl fmt::Display for LayerCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_map_to_compressions() {
        assert_eq!(
            Compression::of(&MediaType::ImageLayerZstd),
            Ok(Compression::Zstd)
        );
        let docker = MediaType::Other("application/vnd.docker.image.rootfs.diff.tar.gzip".into());
        assert_eq!(Compression::of(&docker), Ok(Compression::Gzip));
        assert!(Compression::of(&MediaType::ImageConfig).is_err());
        for c in [LayerCompression::Gzip, LayerCompression::Zstd] {
            assert_eq!(Compression::of(&c.media_type()), Ok(c.into()));
        }
    }

    #[test]
    fn documents_are_told_apart() {
        assert!(is_manifest(MediaType::ImageManifest.as_ref()) && is_manifest(DOCKER_MANIFEST));
        assert!(is_index(MediaType::ImageIndex.as_ref()) && is_index(DOCKER_MANIFEST_LIST));
        assert!(is_config(MediaType::ImageConfig.as_ref()) && is_config(DOCKER_CONFIG));
        assert!(!is_manifest(INDEX) && !is_index(MANIFEST) && !is_config(MANIFEST));
    }
}
