//! The image config: a recipe's `config` merged onto its base's, plus the
//! rootfs diff_ids and history (design.md, "Merging onto a base").

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use oci_spec::image::{Arch, Config, ImageConfiguration, Os};

use serde::Deserialize;

use super::{Platform, Port};
use crate::digest::Digest;

/// Image config set by the recipe; unset fields are inherited from the base.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSpec {
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub ports: Vec<Port>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// Directories runtimes mount a volume on; added to the base's.
    #[serde(default)]
    pub volumes: Vec<String>,
}

/// Applies the recipe's config on top of the base's, Docker-style: `env`
/// entries override by name, an `entrypoint` set by the recipe resets the
/// base's `cmd`, labels merge, ports and volumes add up; other fields
/// replace.
pub fn merge(base: Option<&Config>, spec: &ConfigSpec) -> Config {
    let mut out = base.cloned().unwrap_or_default();

    let mut env: Vec<String> = out.env().clone().unwrap_or_default();
    for (key, value) in &spec.env {
        let line = format!("{key}={value}");
        match env
            .iter_mut()
            .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
        {
            Some(existing) => *existing = line,
            None => env.push(line),
        }
    }
    out.set_env((!env.is_empty()).then_some(env));

    if let Some(entrypoint) = &spec.entrypoint {
        out.set_entrypoint(Some(entrypoint.clone()));
        out.set_cmd(None);
    }
    if let Some(cmd) = &spec.cmd {
        out.set_cmd(Some(cmd.clone()));
    }
    if let Some(workdir) = &spec.workdir {
        out.set_working_dir(Some(workdir.clone()));
    }
    if let Some(user) = &spec.user {
        out.set_user(Some(user.clone()));
    }
    if let Some(signal) = &spec.stop_signal {
        out.set_stop_signal(Some(signal.clone()));
    }

    let mut ports: Vec<String> = out.exposed_ports().clone().unwrap_or_default();
    ports.extend(spec.ports.iter().map(|p| p.to_string()));
    ports.sort();
    ports.dedup();
    out.set_exposed_ports((!ports.is_empty()).then_some(ports));

    let mut volumes: Vec<String> = out.volumes().clone().unwrap_or_default();
    volumes.extend(spec.volumes.iter().cloned());
    volumes.sort();
    volumes.dedup();
    out.set_volumes((!volumes.is_empty()).then_some(volumes));

    let mut labels: HashMap<String, String> = out.labels().clone().unwrap_or_default();
    labels.extend(spec.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    out.set_labels((!labels.is_empty()).then_some(labels));
    out
}

/// A full image config: platform, merged runtime config, the diff_ids of
/// every layer (base first) and one history entry per layer.
pub fn image_config(
    platform: &Platform,
    created: &str,
    config: Config,
    diff_ids: &[Digest],
    history: Vec<oci_spec::image::History>,
) -> ImageConfiguration {
    let mut image = ImageConfiguration::default();
    image.set_created(Some(created.to_string()));
    image.set_os(Os::from(platform.os.as_str()));
    image.set_architecture(Arch::from(platform.arch.as_str()));
    image.set_variant(platform.variant.clone());
    image.set_config((config != Config::default()).then_some(config));
    image
        .rootfs_mut()
        .set_diff_ids(diff_ids.iter().map(|d| d.to_string()).collect());
    image.set_history((!history.is_empty()).then_some(history));
    image
}

/// The platform an image config declares.
pub fn platform_of(config: &ImageConfiguration) -> Platform {
    Platform {
        os: config.os().to_string(),
        arch: config.architecture().to_string(),
        variant: config.variant().clone(),
    }
}

/// One history entry for a layer the recipe adds.
pub fn history_entry(
    created: &str,
    created_by: String,
    comment: Option<String>,
) -> oci_spec::image::History {
    let mut h = oci_spec::image::History::default();
    h.set_created(Some(created.to_string()));
    h.set_created_by(Some(created_by));
    h.set_comment(comment);
    h
}

/// The diff_ids of a config, parsed.
pub fn diff_ids(config: &ImageConfiguration) -> Result<Vec<Digest>, String> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| Digest::from_str(d).map_err(|e| e.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ConfigSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn env_overrides_by_name_and_keeps_base_order() {
        let mut base = Config::default();
        base.set_env(Some(vec!["PATH=/bin".into(), "A=1".into()]));
        base.set_cmd(Some(vec!["sh".into()]));
        let merged = merge(
            Some(&base),
            &spec("env: { PATH: /usr/bin, B: '2' }\nentrypoint: [/app]"),
        );
        assert_eq!(
            merged.env().clone().unwrap(),
            ["PATH=/usr/bin", "A=1", "B=2"]
        );
        assert_eq!(merged.entrypoint().clone().unwrap(), ["/app"]);
        assert_eq!(merged.cmd(), &None, "a new entrypoint resets the base cmd");
    }

    #[test]
    fn labels_merge_and_ports_add_up() {
        let mut base = Config::default();
        base.set_labels(Some([("a".to_string(), "1".to_string())].into()));
        base.set_exposed_ports(Some(vec!["53/udp".into()]));
        let merged = merge(Some(&base), &spec("labels: { b: '2' }\nports: ['8080']"));
        assert_eq!(merged.labels().clone().unwrap().len(), 2);
        assert_eq!(
            merged.exposed_ports().clone().unwrap(),
            ["53/udp", "8080/tcp"]
        );
    }
}
