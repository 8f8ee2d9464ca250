//! Artifacts that refer to an image: SBOMs, provenance, signatures
//! (image-spec 1.1, "Guidelines for Artifact Usage" and "subject").
//!
//! An artifact is an image manifest whose `artifactType` says what it
//! holds, whose config is the empty descriptor (`{}`, as the guidelines
//! ask when there is no config to carry), whose one layer is the document,
//! and whose `subject` is the image it is about. Writing the blobs is the
//! store's ([`crate::store::referrers`]); this module only shapes them.

use std::collections::HashMap;

use oci_spec::image::{Descriptor, ImageManifest, ImageManifestBuilder, MediaType};

use crate::digest::Digest;

/// The empty descriptor's media type and content (image-spec 1.1,
/// "Guidance for an Empty Descriptor").
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_JSON: &[u8] = b"{}";

/// What an artifact carries, before it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// What the artifact is (`application/spdx+json`, …): its manifest's
    /// `artifactType`.
    pub artifact_type: String,
    /// The document's media type, as its layer descriptor names it.
    pub media_type: String,
    pub document: Vec<u8>,
    /// The manifest's annotations; none when empty.
    pub annotations: HashMap<String, String>,
}

/// The empty config's descriptor.
pub fn empty_config() -> Descriptor {
    Descriptor::new(
        MediaType::from(EMPTY_MEDIA_TYPE),
        EMPTY_JSON.len() as u64,
        Digest::of(EMPTY_JSON).to_oci(),
    )
}

/// The artifact manifest of `artifact` about `subject`, its document's
/// blob being `document`.
pub fn manifest(artifact: &Artifact, document: Descriptor, subject: &Descriptor) -> ImageManifest {
    // Only what finds the subject: a platform or annotations on the
    // image's own descriptor say nothing about the artifact.
    let subject = Descriptor::new(
        subject.media_type().clone(),
        subject.size(),
        subject.digest().clone(),
    );
    let mut manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(artifact.artifact_type.as_str()))
        .config(empty_config())
        .layers(vec![document])
        .subject(subject)
        .build()
        .expect("every required field of a manifest is set");
    if !artifact.annotations.is_empty() {
        manifest.set_annotations(Some(artifact.annotations.clone()));
    }
    manifest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_config_is_the_specs() {
        // image-spec 1.1, "Guidance for an Empty Descriptor".
        assert_eq!(
            empty_config().digest().to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(empty_config().size(), 2);
    }

    #[test]
    fn an_artifact_manifest_names_its_type_and_subject_only() {
        let artifact = Artifact {
            artifact_type: "application/spdx+json".into(),
            media_type: "application/spdx+json".into(),
            document: b"{}".to_vec(),
            annotations: HashMap::new(),
        };
        let doc = Descriptor::new(
            MediaType::from("application/spdx+json"),
            2,
            Digest::of(b"{}").to_oci(),
        );
        let mut subject = Descriptor::new(MediaType::ImageManifest, 7, Digest::of(b"x").to_oci());
        subject.set_annotations(Some([("k".to_string(), "v".to_string())].into()));
        let m = manifest(&artifact, doc, &subject);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["artifactType"], "application/spdx+json");
        assert_eq!(json["config"]["mediaType"], EMPTY_MEDIA_TYPE);
        assert_eq!(json["subject"]["size"], 7);
        assert!(json["subject"].get("annotations").is_none(), "{json}");
        assert!(json.get("annotations").is_none(), "{json}");
    }
}
