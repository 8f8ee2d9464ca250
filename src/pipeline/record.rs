//! What a build records about itself so that anyone holding the recipe
//! tree can rebuild it and compare (README, "Reproducibility"): the
//! settings that shape the bytes, the recipe's path within its
//! repository, and the digest of the lock it read. `image::provenance`
//! reads the same keys back.
//!
//! The recipe's path and the lock's digest are recorded only with a
//! revision: only then is the build tied to a repository. Without one, an
//! image depends on the content alone: a recipe copied outside git keeps
//! its digest, a lock that pins what a build resolves anyway changes none,
//! and a stemcell built from `base-images/` is the embedded one, byte for
//! byte.

use std::collections::HashMap;
use std::path::Path;

use super::Settings;
use crate::digest::Digest;
use crate::error::Result;
use crate::image::annotation;
use crate::layer;
use crate::lock;
use crate::recipe::Recipe;

/// What a recipe's image records beside the settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Recorded {
    /// The recipe file's path within its git work tree.
    pub recipe_path: Option<String>,
    /// The sha256 of the `ingot.lock` beside the recipe.
    pub lock_digest: Option<Digest>,
    /// A revision was given, but the recipe is in no work tree: its path
    /// could not be recorded, which the build warns about.
    pub outside_work_tree: bool,
}

/// The lock the root recipe of a build read: its directory, and the
/// digest of the bytes read there (None when it has no lock).
pub(super) struct RootLock<'a> {
    pub dir: &'a Path,
    pub digest: Option<Digest>,
}

/// What `recipe` records: nothing without a revision (see above). The
/// root recipe's lock digest is of the bytes the build read; a `recipe:`
/// base elsewhere records its own lock's, as it would built on its own
/// (its digest is what `base.digest` names). An embedded recipe (a
/// stemcell) records neither, so that a stemcell version keeps one digest.
pub(super) fn recorded(recipe: &Recipe, settings: &Settings, root: &RootLock) -> Result<Recorded> {
    if recipe.path.is_none() || settings.revision.is_none() {
        return Ok(Recorded::default());
    }
    let recipe_path = recipe.path_in_work_tree();
    let lock_digest = if recipe.dir == root.dir {
        root.digest
    } else {
        lock::digest(&lock::path_for(&recipe.file))?
    };
    Ok(Recorded {
        outside_work_tree: recipe_path.is_none(),
        recipe_path,
        lock_digest,
    })
}

/// The annotations a rebuild reads back, on an image's manifest and on a
/// multi-platform build's index alike: created (the epoch), the layer
/// encoding and compression, and what was given or found.
pub(super) fn annotations(
    settings: &Settings,
    created: &str,
    recorded: &Recorded,
) -> HashMap<String, String> {
    let mut out = vec![
        (annotation::CREATED, created.to_string()),
        (
            annotation::LAYER_ENCODING,
            layer::ENCODING_VERSION.to_string(),
        ),
        (
            annotation::COMPRESSION,
            settings.compression.name().to_string(),
        ),
    ];
    let optional = [
        (annotation::REVISION, settings.revision.clone()),
        (annotation::SOURCE, settings.source.clone()),
        (annotation::RECIPE_PATH, recorded.recipe_path.clone()),
        (
            annotation::LOCK_DIGEST,
            recorded.lock_digest.map(|d| d.to_string()),
        ),
    ];
    out.extend(
        optional
            .into_iter()
            .filter_map(|(key, value)| Some((key, value?))),
    );
    out.into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::media::LayerCompression;
    use crate::image::provenance::{Built, RebuildSettings};
    use crate::image::{Platform, rfc3339};

    /// What a build writes, `image::provenance` reads back as it was.
    #[test]
    fn what_is_recorded_reads_back() {
        let settings = Settings {
            epoch: 1_700_000_000,
            compression: LayerCompression::Zstd,
            revision: Some("0123abc".into()),
            source: Some("https://example.com/repo".into()),
        };
        let recorded = Recorded {
            recipe_path: Some("apps/web/recipe.yaml".into()),
            lock_digest: Some(Digest::of(b"{}")),
            outside_work_tree: false,
        };
        let mut written = annotations(&settings, &rfc3339(settings.epoch), &recorded);
        written.insert(annotation::PLATFORM.into(), "linux/amd64".into());
        let read = RebuildSettings::from_annotations(&written).unwrap();
        assert_eq!(
            read,
            RebuildSettings {
                epoch: settings.epoch,
                compression: settings.compression,
                encoding: layer::ENCODING_VERSION.to_string(),
                platforms: Built::Image(Platform::linux_amd64()),
                revision: settings.revision,
                source: settings.source,
                recipe_path: recorded.recipe_path,
                lock_digest: recorded.lock_digest,
            }
        );
    }

    #[test]
    fn nothing_optional_is_written_when_absent() {
        let settings = Settings {
            epoch: 0,
            compression: LayerCompression::Gzip,
            revision: None,
            source: None,
        };
        let mut keys: Vec<String> = annotations(&settings, &rfc3339(0), &Recorded::default())
            .into_keys()
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                annotation::COMPRESSION,
                annotation::LAYER_ENCODING,
                annotation::CREATED,
            ]
        );
    }
}
