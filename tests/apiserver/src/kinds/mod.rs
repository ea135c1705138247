//! Per-kind behaviour: typed decoding (unknown fields, wrong types), conversion between served
//! shapes, metadata validation, and the defaulting and validation kube-apiserver applies.

pub mod data;
pub mod event;
pub mod service;
pub mod workload;

use k8s_openapi::api::{apps, coordination, core::v1 as core, discovery, events, policy, rbac};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::registry::ResourceDef;
use crate::selector::{valid_label_key, valid_label_value};
use crate::status::FieldError;
use crate::store::Store;

/// The object as this resource serves it (only events.k8s.io Events differ from storage).
pub fn to_view(def: &ResourceDef, stored: &Value) -> Value {
    if def.group == "events.k8s.io" {
        event::to_events_v1(stored)
    } else {
        stored.clone()
    }
}

/// Like [`to_view`], without a copy when the served shape is the stored one
/// (every resource but events.k8s.io Events): watches render every change for
/// every watcher, and copying each object there is most of their cost.
pub fn to_view_cow<'a>(def: &ResourceDef, stored: &'a Value) -> std::borrow::Cow<'a, Value> {
    if def.group == "events.k8s.io" {
        std::borrow::Cow::Owned(event::to_events_v1(stored))
    } else {
        std::borrow::Cow::Borrowed(stored)
    }
}

/// The object in storage shape, from the shape this resource serves.
pub fn from_view(def: &ResourceDef, view: &Value) -> Value {
    if def.group == "events.k8s.io" {
        event::from_events_v1(view)
    } else {
        view.clone()
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Decodes an object (in this resource's shape) into its typed form and back, as the Go server's
/// decoding does: type errors are reported, unknown fields are dropped. With `strict`, unknown
/// fields are an error (kubectl's default `fieldValidation=Strict`).
pub fn decode(def: &ResourceDef, v: &Value, strict: bool) -> Result<Value, String> {
    let out = match (def.group, def.kind) {
        ("", "Namespace") => round_trip::<core::Namespace>(v),
        ("", "Node") => round_trip::<core::Node>(v),
        ("", "Service") => round_trip::<core::Service>(v),
        ("", "ConfigMap") => round_trip::<core::ConfigMap>(v),
        ("", "Secret") => round_trip::<core::Secret>(v),
        ("", "Event") => round_trip::<core::Event>(v),
        ("", "Endpoints") => round_trip::<core::Endpoints>(v),
        ("", "Pod") => round_trip::<core::Pod>(v),
        ("discovery.k8s.io", "EndpointSlice") => round_trip::<discovery::v1::EndpointSlice>(v),
        ("coordination.k8s.io", "Lease") => round_trip::<coordination::v1::Lease>(v),
        ("events.k8s.io", "Event") => round_trip::<events::v1::Event>(v),
        ("", "ServiceAccount") => round_trip::<core::ServiceAccount>(v),
        ("apps", "Deployment") => round_trip::<apps::v1::Deployment>(v),
        ("apps", "DaemonSet") => round_trip::<apps::v1::DaemonSet>(v),
        ("rbac.authorization.k8s.io", "ClusterRole") => round_trip::<rbac::v1::ClusterRole>(v),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            round_trip::<rbac::v1::ClusterRoleBinding>(v)
        }
        ("rbac.authorization.k8s.io", "Role") => round_trip::<rbac::v1::Role>(v),
        ("rbac.authorization.k8s.io", "RoleBinding") => round_trip::<rbac::v1::RoleBinding>(v),
        ("policy", "PodDisruptionBudget") => round_trip::<policy::v1::PodDisruptionBudget>(v),
        _ => Ok(v.clone()),
    }?;
    if strict {
        let mut unknown = Vec::new();
        unknown_fields(v, &out, "", &mut unknown);
        if !unknown.is_empty() {
            let list: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field {f:?}"))
                .collect();
            return Err(format!("strict decoding error: {}", list.join(", ")));
        }
    }
    Ok(out)
}

/// Fields present (non-null) in `input` but absent in the decoded `output`.
fn unknown_fields(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            // Free-form maps keep every key, so only typed objects can have unknown fields.
            for (k, v) in i {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match o.get(k) {
                    None if !v.is_null() => out.push(child),
                    Some(ov) => unknown_fields(v, ov, &child, out),
                    None => {}
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (n, (a, b)) in i.iter().zip(o.iter()).enumerate() {
                unknown_fields(a, b, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// DNS-1123 label (namespaces, service names additionally must start with a letter).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// DNS-1123 subdomain (most object names).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.split('.').all(|p| {
            !p.is_empty()
                && p.starts_with(|c: char| c.is_ascii_alphanumeric())
                && p.ends_with(|c: char| c.is_ascii_alphanumeric())
        })
}

/// Validates the user-settable metadata: name format, labels, annotations.
pub fn validate_metadata(def: &ResourceDef, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = &obj["metadata"];
    let name = meta["name"].as_str().unwrap_or("");
    let name_ok = match def.kind {
        "Namespace" => is_dns_label(name),
        "Service" => is_dns_label(name) && name.starts_with(|c: char| c.is_ascii_lowercase()),
        // RBAC names are path segments (`system:controller:...` is a valid ClusterRole).
        _ if def.group == "rbac.authorization.k8s.io" => {
            !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '%'])
        }
        _ => is_dns_subdomain(name),
    };
    if !name_ok {
        let what = match def.kind {
            "Namespace" => {
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
            }
            "Service" => {
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character"
            }
            _ => {
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            }
        };
        errs.push(FieldError::invalid("metadata.name", name, what));
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            if !valid_label_key(k) {
                errs.push(FieldError::invalid("metadata.labels", k.as_str(), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
            let vs = v.as_str().unwrap_or("");
            if !valid_label_value(vs) {
                errs.push(FieldError::invalid(
                    "metadata.labels",
                    vs,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
        }
    }
    if let Some(ann) = meta["annotations"].as_object() {
        let mut total = 0;
        for (k, v) in ann {
            if !valid_label_key(k) {
                errs.push(FieldError::invalid("metadata.annotations", k.as_str(), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            errs.push(FieldError::invalid(
                "metadata.annotations",
                total,
                "must have at most 262144 bytes",
            ));
        }
    }
    errs
}

/// Kind-specific defaulting and validation of a new object (in storage shape).
pub fn prepare_create(def: &ResourceDef, obj: &mut Value, store: &Store) -> Vec<FieldError> {
    match def.storage {
        "services" => service::prepare(None, obj, store),
        "namespaces" => {
            if obj["spec"]["finalizers"].is_null() {
                obj["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            obj["status"] = json!({"phase": "Active"});
            Vec::new()
        }
        "leases" => validate_lease(obj),
        "configmaps" => data::validate_configmap(obj),
        "secrets" => data::prepare_secret(obj),
        "endpointslices" => data::validate_endpointslice(None, obj),
        "deployments" => {
            workload::default_deployment(obj);
            workload::validate_workload(None, obj)
        }
        "daemonsets" => workload::validate_workload(None, obj),
        "rolebindings" | "clusterrolebindings" => workload::validate_binding(None, obj),
        "poddisruptionbudgets" => workload::validate_pdb(obj),
        _ => Vec::new(),
    }
}

/// Kind-specific defaulting and validation of an update (both in storage shape).
pub fn prepare_update(
    def: &ResourceDef,
    old: &Value,
    new: &mut Value,
    store: &Store,
) -> Vec<FieldError> {
    match def.storage {
        "services" => service::prepare(Some(old), new, store),
        "leases" => validate_lease(new),
        "configmaps" => {
            let mut errs = data::validate_configmap(new);
            if old["immutable"] == true {
                for f in ["data", "binaryData", "immutable"] {
                    if old.get(f) != new.get(f) {
                        errs.push(FieldError::forbidden(
                            f,
                            "field is immutable when `immutable` is set",
                        ));
                    }
                }
            }
            errs
        }
        "secrets" => {
            let mut errs = data::prepare_secret(new);
            if old["type"] != new["type"] {
                errs.push(FieldError::invalid(
                    "type",
                    new["type"].to_string(),
                    "field is immutable",
                ));
            }
            errs
        }
        "endpointslices" => data::validate_endpointslice(Some(old), new),
        "deployments" => {
            workload::default_deployment(new);
            workload::validate_workload(Some(old), new)
        }
        "daemonsets" => workload::validate_workload(Some(old), new),
        "rolebindings" | "clusterrolebindings" => workload::validate_binding(Some(old), new),
        "poddisruptionbudgets" => workload::validate_pdb(new),
        "namespaces" => {
            if new["status"].is_null() {
                new["status"] = old["status"].clone();
            }
            Vec::new()
        }
        _ => Vec::new(),
    }
}

/// Validation of the status a status write sets.
pub fn validate_status(def: &ResourceDef, obj: &mut Value) -> Vec<FieldError> {
    match def.storage {
        "services" => service::validate_status(obj),
        _ => Vec::new(),
    }
}

fn validate_lease(obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(d) = obj["spec"]["leaseDurationSeconds"].as_i64()
        && d <= 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseDurationSeconds",
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = obj["spec"]["leaseTransitions"].as_i64()
        && t < 0
    {
        errs.push(FieldError::invalid(
            "spec.leaseTransitions",
            t,
            "must be greater than or equal to 0",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    #[test]
    fn decode_reports_type_errors_and_unknown_fields() {
        let svc = lookup("", "v1", "services").unwrap();
        let ok = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}]}});
        assert!(decode(svc, &ok, true).is_ok());
        let bad_type = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}, "spec": {"ports": [{"port": "eighty"}]}});
        assert!(decode(svc, &bad_type, false).is_err());
        let unknown = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a"}, "spec": {"bogus": 1}});
        let lenient = decode(svc, &unknown, false).unwrap();
        assert!(lenient["spec"].get("bogus").is_none());
        let err = decode(svc, &unknown, true).unwrap_err();
        assert!(err.contains("spec.bogus"), "{err}");
        // Free-form maps keep their keys.
        let cm = lookup("", "v1", "configmaps").unwrap();
        let c = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"x": "y"}}, "data": {"any": "thing"}});
        assert_eq!(decode(cm, &c, true).unwrap()["data"]["any"], "thing");
    }

    #[test]
    fn names_and_labels() {
        let svc = lookup("", "v1", "services").unwrap();
        let cm = lookup("", "v1", "configmaps").unwrap();
        assert!(validate_metadata(svc, &json!({"metadata": {"name": "web-1"}})).is_empty());
        assert!(!validate_metadata(svc, &json!({"metadata": {"name": "1web"}})).is_empty());
        assert!(validate_metadata(cm, &json!({"metadata": {"name": "a.b-c"}})).is_empty());
        assert!(!validate_metadata(cm, &json!({"metadata": {"name": "A"}})).is_empty());
        assert!(
            !validate_metadata(
                cm,
                &json!({"metadata": {"name": "a", "labels": {"x": "bad value"}}})
            )
            .is_empty()
        );
    }
}
