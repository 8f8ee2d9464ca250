//! `ingot bind`: an image's declared params bound to one environment's
//! values at deploy time (design.md, principle 2).
//!
//! The image is only read. What comes out describes one deployment of it,
//! naming it by digest: a dotenv file, an OCI runtime bundle, or a
//! Kubernetes Deployment. Validation comes first and lists every problem;
//! nothing is written unless it passes.

pub mod bundle;
pub mod dotenv;
pub mod kubernetes;
pub mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageConfiguration;

use super::source::{self, DigestOf};
use crate::error::{Error, IoContext, Result};
use crate::image::PlatformChoice;
use crate::image::reference::ImageRef;
use crate::params::{Params, compile_pattern, declared};
use crate::registry::{Access, Progress};
use crate::rootfs::View;
use crate::store::file::{self, Links};
use values::{Given, Values};

/// Where the output goes, which decides what references can mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// A dotenv file.
    Env,
    /// An OCI runtime bundle: config.json and rootfs/.
    OciBundle,
    /// A Kubernetes Deployment.
    Kubernetes,
}

impl Format {
    /// Whether values are resolved now (env refs read) rather than by the
    /// platform at run time (secret refs).
    fn resolves_locally(self) -> bool {
        self != Format::Kubernetes
    }
}

/// A param's value, as the output carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Value(String),
    SecretRef { name: String, key: String },
}

/// Where a bound value came from, for reports (never the value itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Values,
    Default,
    Env,
    SecretRef,
}

/// One param bound to a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub name: String,
    pub value: Bound,
    pub source: Source,
    pub secret: bool,
}

/// Binds `values` to `params` for `format`, reading `{ env: VAR }` through
/// `env`. Returns every problem, each a line naming the values file and,
/// where there is one, the entry's position.
pub fn resolve(
    params: &Params,
    values: &Values,
    format: Format,
    env: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<Vec<Binding>, Vec<String>> {
    let file = values.file.display();
    // Each problem with its entry's position, to list them in file order;
    // those about params not given come last.
    let mut problems: Vec<(Option<values::Pos>, String)> = Vec::new();
    for (name, entry) in &values.entries {
        if !params.contains_key(name) {
            let declared = if params.is_empty() {
                "the image declares no params".to_string()
            } else {
                let names: Vec<&str> = params.keys().map(String::as_str).collect();
                format!("the image declares {}", names.join(", "))
            };
            let message = values.at(entry.pos, &format!("unknown param {name}; {declared}"));
            problems.push((Some(entry.pos), message));
        }
    }
    let mut bindings = Vec::new();
    for (name, param) in params {
        let Some(entry) = values.entries.get(name) else {
            if let Some(default) = &param.default {
                bindings.push(Binding {
                    name: name.clone(),
                    value: Bound::Value(default.clone()),
                    source: Source::Default,
                    secret: param.secret,
                });
            } else if param.required {
                let about = param
                    .description
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default();
                problems.push((
                    None,
                    format!("{file}: {name} is required{about} but not given"),
                ));
            }
            continue;
        };
        let problem = |m: String| {
            (
                Some(entry.pos),
                values.at(entry.pos, &format!("{name}: {m}")),
            )
        };
        let (value, source) = match &entry.given {
            Given::Literal(_) if param.secret => {
                problems.push(problem(
                    "is secret: give a reference, { secretRef: NAME/KEY } or { env: VAR }, never the value".into(),
                ));
                continue;
            }
            Given::Literal(v) => (Bound::Value(v.clone()), Source::Values),
            Given::Env(var) if !format.resolves_locally() => {
                problems.push(problem(format!(
                    "{{ env: {var} }} is read when binding --format env or oci-bundle; a Deployment takes {{ secretRef: NAME/KEY }} or a literal"
                )));
                continue;
            }
            Given::Env(var) => match env(var) {
                Some(v) => (Bound::Value(v), Source::Env),
                None => {
                    problems.push(problem(format!("environment variable {var} is not set")));
                    continue;
                }
            },
            Given::SecretRef { .. } if format.resolves_locally() => {
                problems.push(problem(
                    "{ secretRef } names a Kubernetes secret, for --format kubernetes; here use { env: VAR }".into(),
                ));
                continue;
            }
            Given::SecretRef { name, key } => (
                Bound::SecretRef {
                    name: name.clone(),
                    key: key.clone(),
                },
                Source::SecretRef,
            ),
        };
        if let Bound::Value(v) = &value {
            // What came from the environment is not echoed: it may be secret.
            let shown = if source == Source::Env {
                "the value".to_string()
            } else {
                format!("{v:?}")
            };
            if v.contains('\0') {
                problems.push(problem(format!("{shown} contains a NUL byte")));
                continue;
            }
            if let Some(pattern) = &param.pattern {
                match compile_pattern(pattern) {
                    Ok(re) if re.is_match(v) => {}
                    Ok(_) => {
                        problems.push(problem(format!(
                            "{shown} does not match the pattern {pattern:?}"
                        )));
                        continue;
                    }
                    Err(e) => {
                        problems.push(problem(e));
                        continue;
                    }
                }
            }
        }
        bindings.push(Binding {
            name: name.clone(),
            value,
            source,
            secret: param.secret,
        });
    }
    if problems.is_empty() {
        return Ok(bindings);
    }
    problems.sort_by_key(|(pos, _)| pos.map_or((usize::MAX, 0), |p| (p.line, p.col)));
    Err(problems.into_iter().map(|(_, m)| m).collect())
}

/// The most bytes a values file may have: a list of params written by
/// people.
pub const MAX_VALUES_FILE: u64 = 1 << 20;

/// What `ingot bind` was asked to do.
pub struct Request<'a> {
    pub image: &'a ImageRef,
    pub platform: &'a PlatformChoice,
    /// How to reach a registry, for a `docker://` image.
    pub access: &'a Access,
    pub progress: &'a Progress,
    pub values: Option<&'a Path>,
    pub format: Format,
    pub output: &'a Path,
    /// The image repository, for Kubernetes: `registry.example.com/team/app`.
    pub repo: Option<&'a str>,
    /// The Deployment's name [default: the image's title].
    pub name: Option<&'a str>,
    /// The `ingot bind` process's environment, for `{ env: VAR }`.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// What `ingot bind` did, for people and CI. It names params and where
/// their values came from, never the values.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub image: String,
    pub digest: String,
    /// What `digest` is the digest of: the manifest, or for a
    /// docker-archive (which has none) the config.
    pub digest_of: DigestOf,
    pub format: Format,
    pub output: PathBuf,
    pub params: BTreeMap<String, Source>,
    /// For a bundle: what its rootfs holds, and whether owners were kept
    /// (only root can set them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<crate::rootfs::unpack::Unpacked>,
}

/// Validates, then writes the output. On any problem nothing is written.
pub fn bind(req: &Request) -> Result<Report> {
    bind_into(req, None)
}

/// Validates, then writes the output to `out` (stdout, for `-o -`), for
/// the formats that are one file; `req.output` names it in the report. A
/// bundle is a directory: asking for one is a usage error, before the
/// image is read.
pub fn bind_to(req: &Request, out: &mut dyn std::io::Write) -> Result<Report> {
    if req.format == Format::OciBundle {
        return Err(Error::Usage(
            "an oci-bundle is a directory (config.json and rootfs/), so it cannot go to stdout: name a new directory with -o".into(),
        ));
    }
    bind_into(req, Some(out))
}

/// Writes `text` to `out`, or else to the file `path` (`private`: mode
/// 0600, for values that may be secret).
fn emit(
    out: Option<&mut dyn std::io::Write>,
    path: &Path,
    text: &str,
    private: bool,
) -> Result<()> {
    match out {
        Some(w) => w
            .write_all(text.as_bytes())
            .and_then(|()| w.flush())
            .context(|| "writing to stdout".into()),
        None if private => write_private(path, text.as_bytes()),
        None => crate::store::layout::replace_file(path, text.as_bytes()),
    }
}

fn bind_into(req: &Request, out: Option<&mut dyn std::io::Write>) -> Result<Report> {
    if req.format == Format::Kubernetes && req.repo.is_none() {
        return Err(Error::Usage(
            "--format kubernetes needs --repo REPOSITORY, the registry repository the image was pushed to".into(),
        ));
    }
    if req.format == Format::Kubernetes
        && let ImageRef::DockerArchive(_) = req.image
    {
        // A Deployment names the image REPO@MANIFEST-DIGEST, and an archive
        // has no manifest: what a registry would serve is not known here.
        return Err(Error::Usage(format!(
            "{}: --format kubernetes names the image by manifest digest, and a docker-archive has no manifest; bind the pushed image (docker://…) or its layout (oci:…)",
            req.image
        )));
    }
    let found = source::open(req.image, req.platform, req.access, req.progress)?;
    let params =
        declared(&found.config).map_err(|m| Error::Failed(format!("{}: {m}", req.image)))?;
    let values = match req.values {
        Some(path) => {
            let text = file::read_regular_string(path, Links::Follow, MAX_VALUES_FILE)
                .context(|| format!("reading values file {}", path.display()))?;
            values::parse(path, &text)?
        }
        None => Values {
            file: PathBuf::from("(no --values)"),
            ..Values::default()
        },
    };
    let bindings = resolve(&params, &values, req.format, req.env).map_err(Error::Unbound)?;
    let digest = found.identity.digest().to_string();
    let mut rootfs = None;
    match req.format {
        Format::Env => {
            let text = dotenv::render(&req.image.to_string(), &found.identity, &bindings);
            emit(out, req.output, &text, true)?;
        }
        Format::Kubernetes => {
            let view = read_view(&found)?;
            let deployment = kubernetes::Deployment {
                name: req.name,
                repo: req.repo.unwrap_or_default(),
                digest: &digest,
                config: &found.config,
                annotations: found.annotations(),
                user: image_user(&found.config, &view)?,
                bindings: &bindings,
            };
            let text = deployment.render().map_err(Error::Usage)?;
            emit(out, req.output, &text, false)?;
        }
        Format::OciBundle => {
            let view = read_view(&found)?;
            let user = image_user(&found.config, &view)?;
            rootfs = Some(bundle::write(&found, &view, user, &bindings, req.output)?);
        }
    }
    Ok(Report {
        image: req.image.to_string(),
        digest,
        digest_of: found.identity.digest_of(),
        format: req.format,
        output: req.output.to_path_buf(),
        params: bindings
            .iter()
            .map(|b| (b.name.clone(), b.source))
            .collect(),
        rootfs,
    })
}

/// Writes a file that may hold secret values: mode 0600 from the start,
/// replaced whole or not at all.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let private = std::fs::Permissions::from_mode(0o600);
    crate::store::layout::replace_file_with_permissions(path, private, |w| {
        w.write_all(bytes)
            .context(|| format!("writing {}", path.display()))
    })
}

/// The image's filesystem as metadata (and account files), every layer
/// verified against its digest and diff_id.
fn read_view(found: &source::Source) -> Result<View> {
    let diff_ids = crate::image::config::diff_ids(&found.config).map_err(Error::Failed)?;
    let mut view = View::new();
    for (desc, diff_id) in found.layers.iter().zip(&diff_ids) {
        view.apply_layer(&found.blobs, desc, diff_id, &mut |_, _| Ok(()))?;
    }
    Ok(view)
}

/// The image's `user`, as numeric ids through its own account files.
fn image_user(config: &ImageConfiguration, view: &View) -> Result<(u32, u32)> {
    let user = config
        .config()
        .as_ref()
        .and_then(|c| c.user().clone())
        .unwrap_or_default();
    let file = |p: &str| {
        crate::rootfs::meta::ImagePath::from_rel(p)
            .and_then(|p| view.content(&p))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    crate::rootfs::accounts::resolve_user(&user, &file("etc/passwd"), &file("etc/group"))
        .map_err(|m| Error::Failed(format!("the image's user {user:?}: {m}")))
}

#[cfg(test)]
mod tests;
