//! `--format kubernetes`: a Deployment (apps/v1) that runs the image by
//! digest, its params as env values or `secretKeyRef`s, locked down the way
//! a sealed image expects: read-only root, no privilege escalation, no
//! capabilities, a numeric user.

use std::collections::HashMap;

use oci_spec::image::ImageConfiguration;
use serde_json::{Value, json};

use super::{Binding, Bound};
use crate::image::reference::{split_host, valid_host, valid_repository};
use crate::image::{Port, annotation};

/// Everything the Deployment is made from.
pub struct Deployment<'a> {
    /// `metadata.name`; the image's title when not given.
    pub name: Option<&'a str>,
    /// The repository the image is pushed to, without tag or digest.
    pub repo: &'a str,
    pub digest: &'a str,
    pub config: &'a ImageConfiguration,
    pub annotations: Option<&'a HashMap<String, String>>,
    /// The image's user, resolved to numeric ids.
    pub user: (u32, u32),
    pub bindings: &'a [Binding],
}

impl Deployment<'_> {
    /// The Deployment as YAML, or why it cannot be made.
    pub fn render(&self) -> Result<String, String> {
        let manifest = self.manifest()?;
        serde_yaml::to_string(&manifest).map_err(|e| format!("encoding the Deployment: {e}"))
    }

    fn manifest(&self) -> Result<Value, String> {
        if !valid_repo(self.repo) {
            return Err(format!(
                "--repo {:?}: expected a repository without tag or digest, like registry.example.com/team/app",
                self.repo
            ));
        }
        let name = self.name()?;
        let labels = json!({ "app.kubernetes.io/name": name });
        let env: Vec<Value> = self.bindings.iter().map(env_var).collect();
        let runtime = self.config.config().as_ref();
        let mut ports = Vec::new();
        for p in runtime
            .and_then(|c| c.exposed_ports().as_ref())
            .into_iter()
            .flatten()
        {
            let port: Port = p.parse()?;
            ports.push(json!({
                "containerPort": port.number,
                "protocol": port.proto.to_uppercase(),
            }));
        }
        let (uid, gid) = self.user;
        let mut security = json!({
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsUser": uid,
            "runAsGroup": gid,
            "capabilities": { "drop": ["ALL"] },
        });
        if uid != 0 {
            security["runAsNonRoot"] = json!(true);
        }
        let mut container = json!({
            "name": name,
            "image": format!("{}@{}", self.repo, self.digest),
            "securityContext": security,
            // The root filesystem is read-only; /tmp is the scratch space.
            "volumeMounts": [{ "name": "tmp", "mountPath": "/tmp" }],
        });
        if !env.is_empty() {
            container["env"] = Value::Array(env);
        }
        if !ports.is_empty() {
            container["ports"] = Value::Array(ports);
        }
        Ok(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": name,
                "labels": labels,
                "annotations": { "dev.ingot.image.digest": self.digest },
            },
            "spec": {
                "selector": { "matchLabels": labels },
                "template": {
                    "metadata": { "labels": labels },
                    "spec": {
                        // A sealed image has no business with the API server.
                        "automountServiceAccountToken": false,
                        "containers": [container],
                        "volumes": [{ "name": "tmp", "emptyDir": {} }],
                    },
                },
            },
        }))
    }

    /// `--name`, else the image's title; either must be a DNS label.
    fn name(&self) -> Result<String, String> {
        let title = self
            .annotations
            .and_then(|a| a.get(annotation::TITLE))
            .or_else(|| {
                self.config
                    .config()
                    .as_ref()
                    .and_then(|c| c.labels().as_ref())
                    .and_then(|l| l.get(annotation::TITLE))
            });
        let (name, from) = match (self.name, title) {
            (Some(n), _) => (n, "--name"),
            (None, Some(t)) => (t.as_str(), "the image's title"),
            (None, None) => {
                return Err("the image has no title: give the Deployment a --name".into());
            }
        };
        if !valid_dns_label(name) {
            return Err(format!(
                "{from} {name:?} is not a Kubernetes name (lowercase letters, digits and '-', at most 63): give --name"
            ));
        }
        Ok(name.to_string())
    }
}

fn env_var(b: &Binding) -> Value {
    match &b.value {
        Bound::Value(v) => json!({ "name": b.name, "value": v }),
        Bound::SecretRef { name, key } => json!({
            "name": b.name,
            "valueFrom": { "secretKeyRef": { "name": name, "key": key } },
        }),
    }
}

/// `[HOST[:PORT]/]PATH`, as in a Docker reference, without tag or digest.
fn valid_repo(s: &str) -> bool {
    let (host, path) = split_host(s);
    host.is_none_or(valid_host) && valid_repository(path)
}

/// RFC 1123 label: what a Deployment and a container may be called.
fn valid_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_take_no_tag_or_digest() {
        for ok in [
            "app",
            "team/app",
            "registry.example.com/team/app",
            "localhost:5000/app",
        ] {
            assert!(valid_repo(ok), "{ok}");
        }
        for bad in [
            "",
            "app:1",
            "app@sha256:ab",
            "Team/App",
            "registry.example.com/",
        ] {
            assert!(!valid_repo(bad), "{bad}");
        }
    }

    fn deployment_for(user: (u32, u32), ports: &str) -> Value {
        let config: ImageConfiguration = serde_json::from_str(&format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},
               "config":{{"ExposedPorts":{ports},"Labels":{{"org.opencontainers.image.title":"app"}}}}}}"#
        ))
        .unwrap();
        let d = Deployment {
            name: None,
            repo: "registry.example.com/app",
            digest: "sha256:ab",
            config: &config,
            annotations: None,
            user,
            bindings: &[],
        };
        d.manifest().unwrap()
    }

    #[test]
    fn root_is_never_claimed_non_root() {
        let root = deployment_for((0, 0), "{}");
        let c = &root["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["securityContext"]["runAsUser"], 0);
        assert!(c["securityContext"].get("runAsNonRoot").is_none());
        assert!(c.get("env").is_none() && c.get("ports").is_none());
        assert_eq!(c["name"], "app", "named by the title label");
        let user = deployment_for((10001, 10001), r#"{"8080/tcp":{},"53/udp":{}}"#);
        let c = &user["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["securityContext"]["runAsNonRoot"], true);
        let mut ports: Vec<String> = c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{}/{}", p["containerPort"], p["protocol"].as_str().unwrap()))
            .collect();
        ports.sort();
        assert_eq!(ports, ["53/UDP", "8080/TCP"]);
    }

    #[test]
    fn names_are_dns_labels() {
        assert!(valid_dns_label("hello-1"));
        for bad in ["", "Hello", "-a", "a-", "a_b", &"x".repeat(64)] {
            assert!(!valid_dns_label(bad), "{bad}");
        }
    }
}
