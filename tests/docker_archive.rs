//! `docker-archive:` bases against a real writer of the format: skopeo
//! exports an image ingot built, and `base::docker_archive::load` reads it
//! back to the same content. CI installs skopeo (`common::require`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use ingot::base::docker_archive;
use ingot::digest::Digest;
use ingot::image::config::diff_ids;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

/// The hello recipe built into `dir/hello` and exported by skopeo to
/// `dir/hello.tar`; returns the layout and the archive.
fn export_hello(dir: &Path) -> (PathBuf, PathBuf) {
    common::require("skopeo");
    let layout = dir.join("hello");
    common::build(&common::repo().join("recipes/hello/recipe.yaml"), &layout);
    let archive = dir.join("hello.tar");
    let out = common::run(
        Command::new("skopeo")
            .arg("copy")
            .arg(format!("oci:{}:1.2.0", layout.display()))
            .arg(format!("docker-archive:{}:hello:1.2.0", archive.display())),
    );
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        common::stderr(&out)
    );
    (layout, archive)
}

fn blob(layout: &Path, digest: &oci_spec::image::Digest) -> PathBuf {
    let d = Digest::try_from(digest).unwrap();
    layout.join("blobs/sha256").join(d.hex())
}

/// The manifest and config ingot wrote for the one image in `layout`.
fn original(layout: &Path) -> (ImageManifest, ImageConfiguration) {
    let index = ImageIndex::from_file(layout.join("index.json")).unwrap();
    let manifest = ImageManifest::from_file(blob(layout, index.manifests()[0].digest())).unwrap();
    let config = ImageConfiguration::from_file(blob(layout, manifest.config().digest())).unwrap();
    (manifest, config)
}

fn load(archive: &Path, store: &Path) -> (ingot::base::BaseImage, ingot::store::BlobStore) {
    let blobs = ingot::store::BlobStore::open(store).unwrap();
    let base = docker_archive::load(archive, &blobs, &ingot::progress::Progress::quiet())
        .unwrap_or_else(|e| panic!("{e}"));
    (base, blobs)
}

#[test]
/// The archive skopeo writes loads to the image ingot built: same config,
/// every stored layer decompressing to its diff_id, and (since ingot's
/// block gzip depends only on the tar bytes) the very same layer blobs.
fn loads_what_skopeo_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let (layout, archive) = export_hello(tmp.path());
    let (manifest, config) = original(&layout);
    let (base, blobs) = load(&archive, &tmp.path().join("store"));

    assert_eq!(base.name, format!("docker-archive:{}", archive.display()));
    assert_eq!(base.manifest_digest, None);
    assert_eq!(base.platform.to_string(), "linux/amd64");
    assert_eq!(base.config, config);
    let expected = diff_ids(&config).unwrap();
    assert_eq!(diff_ids(&base.config).unwrap(), expected);
    assert_eq!(base.layers.len(), expected.len());
    for (desc, diff_id) in base.layers.iter().zip(&expected) {
        ingot::layer::read::open(&blobs, desc)
            .unwrap()
            .finish(diff_id)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let digests = |layers: &[oci_spec::image::Descriptor]| {
        layers
            .iter()
            .map(|d| d.digest().clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(digests(&base.layers), digests(manifest.layers()));
}

#[test]
/// Loading the same archive twice, into two stores, gives the same blobs.
fn loading_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, archive) = export_hello(tmp.path());
    let (first, _) = load(&archive, &tmp.path().join("one"));
    let (second, _) = load(&archive, &tmp.path().join("two"));
    assert_eq!(first.layers, second.layers);
    assert_eq!(first.config, second.config);
}
