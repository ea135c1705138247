//! Shared by the deploy_* tests: the rendered manifests (`kubectl kustomize deploy/`),
//! typed, and the binaries' flags as the manifests set them.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodSpec, PodTemplateSpec, ServiceAccount,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub const NAMESPACE: &str = "ferrolb-system";
/// The speakers' Lease namespace: only their Leases, and the Role for them.
pub const LEASE_NAMESPACE: &str = "ferrolb-speaker-leases";
/// The documented image: one image, both binaries.
pub const IMAGE: &str = "ghcr.io/ferrolb/ferrolb:0.1.0";
pub const CONTROLLER_SA: &str = "ferrolb-controller";
pub const SPEAKER_SA: &str = "ferrolb-speaker";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `kubectl kustomize deploy/`, split into documents.
pub fn render() -> Vec<Value> {
    let dir = repo_root().join("deploy");
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl must be on PATH (see README: Setup)");
    assert!(
        out.status.success(),
        "kubectl kustomize {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 output");
    split_documents(&text)
}

pub fn split_documents(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).expect("rendered YAML parses"))
        .filter(|v| !v.is_null())
        .collect()
}

pub fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

pub fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

/// Parses `v` into `T` and checks that serializing it back gives the same JSON:
/// a misspelt or misplaced field (which serde would silently drop) is an error.
pub fn typed<T: DeserializeOwned + serde::Serialize>(v: &Value) -> Result<T, String> {
    let what = format!("{} {}", kind(v), name(v));
    let t: T = serde_json::from_value(v.clone()).map_err(|e| format!("{what}: {e}"))?;
    let back = serde_json::to_value(&t).map_err(|e| format!("{what}: {e}"))?;
    if &back != v {
        return Err(format!(
            "{what}: a field was lost parsing it (unknown or misplaced field?)\nrendered: {v}\nparsed:   {back}"
        ));
    }
    Ok(t)
}

/// Every rendered object, typed.
#[derive(Default)]
pub struct Manifests {
    pub namespaces: Vec<Namespace>,
    pub service_accounts: Vec<ServiceAccount>,
    pub cluster_roles: Vec<ClusterRole>,
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub roles: Vec<Role>,
    pub role_bindings: Vec<RoleBinding>,
    pub config_maps: Vec<ConfigMap>,
    pub deployments: Vec<Deployment>,
    pub daemon_sets: Vec<DaemonSet>,
    pub pdbs: Vec<PodDisruptionBudget>,
}

impl Manifests {
    pub fn from_values(docs: &[Value]) -> Result<Self, String> {
        let mut m = Manifests::default();
        for v in docs {
            match (v["apiVersion"].as_str().unwrap_or_default(), kind(v)) {
                ("v1", "Namespace") => m.namespaces.push(typed(v)?),
                ("v1", "ServiceAccount") => m.service_accounts.push(typed(v)?),
                ("v1", "ConfigMap") => m.config_maps.push(typed(v)?),
                ("rbac.authorization.k8s.io/v1", "ClusterRole") => m.cluster_roles.push(typed(v)?),
                ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                    m.cluster_role_bindings.push(typed(v)?)
                }
                ("rbac.authorization.k8s.io/v1", "Role") => m.roles.push(typed(v)?),
                ("rbac.authorization.k8s.io/v1", "RoleBinding") => m.role_bindings.push(typed(v)?),
                ("apps/v1", "Deployment") => m.deployments.push(typed(v)?),
                ("apps/v1", "DaemonSet") => m.daemon_sets.push(typed(v)?),
                ("policy/v1", "PodDisruptionBudget") => m.pdbs.push(typed(v)?),
                (api, k) => return Err(format!("unexpected object {api} {k} {}", name(v))),
            }
        }
        Ok(m)
    }

    pub fn load() -> Self {
        Self::from_values(&render()).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn deployment(&self, name: &str) -> &Deployment {
        self.deployments
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("Deployment {name} missing"))
    }

    pub fn daemon_set(&self, name: &str) -> &DaemonSet {
        self.daemon_sets
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("DaemonSet {name} missing"))
    }
}

pub fn pod_spec(t: &PodTemplateSpec) -> &PodSpec {
    t.spec.as_ref().expect("pod template has a spec")
}

pub fn only_container(spec: &PodSpec) -> &Container {
    assert_eq!(spec.containers.len(), 1, "one container per pod");
    assert!(spec.init_containers.as_ref().is_none_or(Vec::is_empty));
    &spec.containers[0]
}

/// The container's environment as the process would see it, with the downward
/// API filled in with sample values for this pod.
pub fn env_of(c: &Container, namespace: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in c.env.as_deref().unwrap_or_default() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), None) => v.clone(),
            (None, Some(from)) => {
                let path = from
                    .field_ref
                    .as_ref()
                    .unwrap_or_else(|| panic!("{}: only fieldRef is used", e.name))
                    .field_path
                    .as_str();
                match path {
                    "metadata.name" => "ferrolb-controller-5d8c7b9f4-x2x7q".to_owned(),
                    "metadata.namespace" => namespace.to_owned(),
                    "spec.nodeName" => "node-1".to_owned(),
                    other => panic!("{}: unexpected fieldRef {other}", e.name),
                }
            }
            _ => panic!("{}: needs exactly one of value and valueFrom", e.name),
        };
        assert!(
            out.insert(e.name.clone(), value).is_none(),
            "{} set twice",
            e.name
        );
    }
    out
}

pub fn field_ref<'a>(c: &'a Container, var: &str) -> Option<&'a str> {
    c.env
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|e| e.name == var)
        .and_then(|e| e.value_from.as_ref())
        .and_then(|f| f.field_ref.as_ref())
        .map(|f| f.field_path.as_str())
}

/// Turns environment variables into the binary's command-line flags through its
/// clap definition, and parses them: an unknown variable or a value the binary
/// would refuse fails the test.
pub fn parse_env<C: clap::Parser>(env: &BTreeMap<String, String>) -> C {
    let mut cmd = C::command();
    // Settles each argument's number of values (unset until built).
    cmd.build();
    let bin = cmd.get_name().to_owned();
    let mut args = vec![bin.clone()];
    for (var, value) in env {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == var.as_str()))
            .unwrap_or_else(|| {
                panic!("{bin}: the manifest sets {var}, which is not a flag's variable")
            });
        let long = arg.get_long().expect("env flags have a long name");
        if arg.get_action().takes_values() {
            args.push(format!("--{long}={value}"));
        } else if value == "true" {
            args.push(format!("--{long}"));
        }
    }
    C::try_parse_from(&args)
        .unwrap_or_else(|e| panic!("{bin} refuses the manifest's flags {args:?}: {e}"))
}

pub fn metrics_port(c: &Container) -> i32 {
    let ports = c.ports.as_deref().unwrap_or_default();
    let p = ports
        .iter()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .expect("a port named metrics (for scraping)");
    assert_eq!(p.protocol.as_deref().unwrap_or("TCP"), "TCP");
    p.container_port
}

/// Liveness on /livez, readiness on /readyz, both on the metrics port.
pub fn assert_health_probes(c: &Container) {
    for (probe, path) in [
        (&c.liveness_probe, "/livez"),
        (&c.readiness_probe, "/readyz"),
    ] {
        let probe = probe
            .as_ref()
            .unwrap_or_else(|| panic!("{}: no probe for {path}", c.name));
        let get = probe.http_get.as_ref().expect("HTTP probe");
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(
            get.port,
            IntOrString::String("metrics".into()),
            "{}: {path} port",
            c.name
        );
        assert!(probe.timeout_seconds.unwrap_or(1) < probe.period_seconds.unwrap_or(10));
    }
}

/// The seccomp profile in force for the container (its own, else the pod's).
pub fn seccomp(spec: &PodSpec, c: &Container) -> Option<String> {
    let own = c
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    let pod = spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    own.or(pod).map(|p| p.type_.clone())
}
