//! `--format oci-bundle`: an OCI runtime bundle (runtime-spec, "Filesystem
//! Bundle") that `runc run` starts: `config.json` plus the image unpacked
//! into `rootfs/`.
//!
//! The process runs as the image's user, resolved to numeric ids, with the
//! bound values in its environment, on a read-only root with a tmpfs on
//! /tmp, without new privileges, holding only CAP_NET_BIND_SERVICE.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxCapabilitiesBuilder, Mount, MountBuilder, ProcessBuilder, RootBuilder, Spec,
    UserBuilder, get_default_mounts,
};

use super::{Binding, Bound};
use crate::commands::source::{Identity, Source};
use crate::error::{Error, IoContext, Result};
use crate::image::annotation;
use crate::layer;
use crate::rootfs::View;
use crate::rootfs::unpack::{Unpack, Unpacked};
use crate::store::workdir::WorkDir;

/// The runtime config for the image's `config` with `bindings`.
pub fn spec(found: &Source, user: (u32, u32), bindings: &[Binding]) -> Result<Spec, String> {
    let runtime = found.config.config().clone().unwrap_or_default();
    let args: Vec<String> = runtime
        .entrypoint()
        .iter()
        .chain(runtime.cmd())
        .flatten()
        .cloned()
        .collect();
    if args.is_empty() {
        return Err("the image has no entrypoint or cmd: there is nothing to run".into());
    }
    // The image's env, then the bound values, which win: a base image may
    // set a name the recipe declares as a param.
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for var in runtime.env().iter().flatten() {
        let (k, v) = var.split_once('=').unwrap_or((var, ""));
        env.insert(k.to_string(), v.to_string());
    }
    for b in bindings {
        if let Bound::Value(v) = &b.value {
            env.insert(b.name.clone(), v.clone());
        }
    }
    let caps: HashSet<Capability> = [Capability::NetBindService].into();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(|e| e.to_string())?;
    let user = UserBuilder::default()
        .uid(user.0)
        .gid(user.1)
        .build()
        .map_err(|e| e.to_string())?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(args)
        .env(
            env.into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        )
        .cwd(
            runtime
                .working_dir()
                .clone()
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into()),
        )
        .no_new_privileges(true)
        .capabilities(capabilities)
        .build()
        .map_err(|e| e.to_string())?;
    let root = RootBuilder::default()
        .path("rootfs")
        .readonly(true)
        .build()
        .map_err(|e| e.to_string())?;
    let mut mounts: Vec<Mount> = get_default_mounts();
    mounts.push(
        MountBuilder::default()
            .destination("/tmp")
            .typ("tmpfs")
            .source("tmpfs")
            .options(["nosuid", "nodev", "mode=1777"].map(String::from).to_vec())
            .build()
            .map_err(|e| e.to_string())?,
    );
    let title = found
        .annotations()
        .and_then(|a| a.get(annotation::TITLE))
        .cloned();
    let mut spec = Spec::default();
    spec.set_version("1.0.2".into());
    spec.set_process(Some(process));
    spec.set_root(Some(root));
    spec.set_mounts(Some(mounts));
    spec.set_hostname(Some(title.unwrap_or_else(|| "ingot".into())));
    // A docker-archive has no manifest: its config digest, named as such.
    let (key, digest) = match found.identity {
        Identity::Manifest(d) => ("dev.ingot.image.digest", d),
        Identity::Config(d) => ("dev.ingot.image.config-digest", d),
    };
    spec.set_annotations(Some([(key.to_string(), digest.to_string())].into()));
    Ok(spec)
}

/// Writes the bundle at `out`, which must not exist yet: built in a temp
/// directory beside it and renamed into place once whole.
pub fn write(
    found: &Source,
    view: &View,
    user: (u32, u32),
    bindings: &[Binding],
    out: &Path,
) -> Result<Unpacked> {
    if out.symlink_metadata().is_ok() {
        return Err(Error::Usage(format!(
            "{} exists; bind writes a new bundle: remove it or choose another -o",
            out.display()
        )));
    }
    let spec = spec(found, user, bindings)
        .map_err(|m| Error::Failed(format!("{}: {m}", found.identity.digest())))?;
    let parent = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    // 0700: config.json may hold secret values read from the environment.
    let staging = WorkDir::new_in(&parent, ".ingot-bundle-", 0o700)
        .context(|| format!("creating a temp directory in {}", parent.display()))?;
    let rootfs = staging.path().join("rootfs");
    std::fs::create_dir(&rootfs).context(|| format!("creating {}", rootfs.display()))?;
    let diff_ids = crate::image::config::diff_ids(&found.config).map_err(Error::Failed)?;
    let failed = |m: String| Error::Failed(format!("unpacking into {}: {m}", out.display()));
    let mut unpack = Unpack::start(view, &rootfs).map_err(failed)?;
    for (desc, diff_id) in found.layers.iter().zip(&diff_ids) {
        let mut reader = layer::read::open(&found.blobs, desc)?;
        if let Err(m) = unpack.layer(&mut reader) {
            // A stream that broke is the blob's fault, or its encoding's:
            // said as such, from the blob's own check.
            reader.diff_id()?;
            return Err(failed(m));
        }
        reader.finish(diff_id)?;
    }
    let unpacked = unpack.finish().map_err(failed)?;
    let json = serde_json::to_vec_pretty(&spec)
        .map_err(|e| Error::Failed(format!("encoding config.json: {e}")))?;
    super::write_private(&staging.path().join("config.json"), &json)?;
    let staged = staging
        .keep()
        .context(|| "releasing the bundle's temp directory".into())?;
    std::fs::rename(&staged, out)
        .inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&staged);
        })
        .context(|| format!("moving the bundle to {}", out.display()))?;
    Ok(unpacked)
}
