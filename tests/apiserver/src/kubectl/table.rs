//! `meta.k8s.io/v1` Table output (what `kubectl get` prints), with the columns and cell formats of
//! kube-apiserver's printers for the served kinds.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::registry::ResourceDef;

/// Whether an Accept header asks for a Table; returns the Table apiVersion to answer with.
pub fn wants_table(accept: &str) -> Option<&'static str> {
    for range in accept.split(',') {
        let params: Vec<&str> = range.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if has("as=Table") && has("g=meta.k8s.io") {
            if has("v=v1") {
                return Some("meta.k8s.io/v1");
            }
            if has("v=v1beta1") {
                return Some("meta.k8s.io/v1beta1");
            }
        }
    }
    None
}

/// kubectl's human-readable durations (`5s`, `3m2s`, `4h`, `2d3h`, `3y`).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age_of(ts: &Value, now: DateTime<Utc>) -> String {
    match ts
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
    {
        Some(t) => human_duration((now - t.with_timezone(&Utc)).num_seconds()),
        None => "<unknown>".into(),
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn or_none(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

fn col(name: &str, ty: &str, priority: u8, desc: &str) -> Value {
    json!({"name": name, "type": ty, "format": if name == "Name" { "name" } else { "" }, "description": desc, "priority": priority})
}

fn labels_string(m: &Value) -> String {
    let mut pairs: Vec<String> = m
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", s(v)))
        .collect();
    pairs.sort();
    or_none(pairs.join(","))
}

fn service_row(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let spec = &o["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    let cluster_ip = or_none(s(&spec["clusterIP"]).to_string());
    let external: Vec<String> = spec["externalIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| s(v).to_string())
        .collect();
    let lb: Vec<String> = o["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            i["ip"]
                .as_str()
                .or(i["hostname"].as_str())
                .map(String::from)
        })
        .collect();
    let mut lb_text = lb.join(",");
    // kubectl shortens long lists (not in -o wide, which this table does not know about).
    if lb_text.chars().count() > 16 {
        lb_text = format!("{}...", lb_text.chars().take(13).collect::<String>());
    }
    let external_ip = match ty {
        "LoadBalancer" => {
            let mut all = external.clone();
            if !lb_text.is_empty() {
                all.push(lb_text);
            }
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => s(&spec["externalName"]).to_string(),
        _ => or_none(external.join(",")),
    };
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64().filter(|n| *n != 0) {
                Some(np) => format!("{}:{np}/{proto}", p["port"]),
                None => format!("{}/{proto}", p["port"]),
            }
        })
        .collect();
    vec![
        json!(o["metadata"]["name"]),
        json!(ty),
        json!(cluster_ip),
        json!(external_ip),
        json!(or_none(ports.join(","))),
        json!(age_of(&o["metadata"]["creationTimestamp"], now)),
        json!(labels_string(&spec["selector"])),
    ]
}

fn node_row(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let conds = o["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut status = match conds.iter().find(|c| c["type"] == "Ready") {
        Some(c) if c["status"] == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if o["spec"]["unschedulable"].as_bool() == Some(true) {
        status.push_str(",SchedulingDisabled");
    }
    let mut roles: Vec<String> = Vec::new();
    for (k, v) in o["metadata"]["labels"].as_object().into_iter().flatten() {
        if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
            if !r.is_empty() {
                roles.push(r.to_string());
            }
        } else if k == "kubernetes.io/role" && !s(v).is_empty() {
            roles.push(s(v).to_string());
        }
    }
    roles.sort();
    roles.dedup();
    let addr = |t: &str| -> String {
        or_none(
            o["status"]["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["type"] == t)
                .map(|a| s(&a["address"]).to_string())
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    let info = &o["status"]["nodeInfo"];
    vec![
        json!(o["metadata"]["name"]),
        json!(status),
        json!(or_none(roles.join(","))),
        json!(age_of(&o["metadata"]["creationTimestamp"], now)),
        json!(s(&info["kubeletVersion"])),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(or_none(s(&info["osImage"]).to_string())),
        json!(or_none(s(&info["kernelVersion"]).to_string())),
        json!(or_none(s(&info["containerRuntimeVersion"]).to_string())),
    ]
}

fn endpointslice_row(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let ports: Vec<String> = o["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            p["port"]
                .as_i64()
                .map_or("<unset>".into(), |n| n.to_string())
        })
        .collect();
    let ports = if ports.is_empty() {
        "<unset>".to_string()
    } else {
        ports.join(",")
    };
    let addrs: Vec<String> = o["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
        .map(|a| s(&a).to_string())
        .collect();
    let endpoints = match addrs.len() {
        0 => "<unset>".to_string(),
        n if n <= 3 => addrs.join(","),
        n => format!("{} + {} more...", addrs[..3].join(","), n - 3),
    };
    vec![
        json!(o["metadata"]["name"]),
        json!(s(&o["addressType"])),
        json!(ports),
        json!(endpoints),
        json!(age_of(&o["metadata"]["creationTimestamp"], now)),
    ]
}

fn event_row(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let last = if !o["lastTimestamp"].is_null() {
        &o["lastTimestamp"]
    } else if !o["series"]["lastObservedTime"].is_null() {
        &o["series"]["lastObservedTime"]
    } else {
        &o["eventTime"]
    };
    let first = if o["firstTimestamp"].is_null() {
        &o["eventTime"]
    } else {
        &o["firstTimestamp"]
    };
    let io = &o["involvedObject"];
    let object = format!("{}/{}", s(&io["kind"]).to_lowercase(), s(&io["name"]));
    let source = {
        let c = s(&o["source"]["component"]);
        if c.is_empty() {
            s(&o["reportingComponent"]).to_string()
        } else {
            c.to_string()
        }
    };
    let count = o["count"]
        .as_i64()
        .or(o["series"]["count"].as_i64())
        .unwrap_or(1);
    vec![
        json!(age_of(last, now)),
        json!(s(&o["type"])),
        json!(s(&o["reason"])),
        json!(object),
        json!(s(&io["fieldPath"])),
        json!(source),
        json!(s(&o["message"]).trim()),
        json!(age_of(first, now)),
        json!(count),
        json!(o["metadata"]["name"]),
    ]
}

/// `metav1.FormatLabelSelector`: `k=v` pairs, then expressions (`k in (a,b)`, `!k`, ...).
fn selector_string(sel: &Value) -> String {
    if sel.is_null() {
        return "<none>".into();
    }
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", s(v)))
        .collect();
    parts.sort();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = s(&e["key"]);
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(s)
            .collect();
        parts.push(match s(&e["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            op => format!("{key} {op} ({})", values.join(",")),
        });
    }
    // An empty selector selects everything; kubectl prints it as such.
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// Container names and images of a pod template (the wide columns of workloads).
fn containers_and_images(template: &Value) -> (String, String) {
    let cs = template["spec"]["containers"].as_array();
    let names: Vec<&str> = cs.into_iter().flatten().map(|c| s(&c["name"])).collect();
    let images: Vec<&str> = cs.into_iter().flatten().map(|c| s(&c["image"])).collect();
    (names.join(","), images.join(","))
}

fn count(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn deployment_row(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (spec, st) = (&o["spec"], &o["status"]);
    let (containers, images) = containers_and_images(&spec["template"]);
    vec![
        json!(o["metadata"]["name"]),
        json!(format!(
            "{}/{}",
            count(&st["readyReplicas"]),
            spec["replicas"].as_i64().unwrap_or(1)
        )),
        json!(count(&st["updatedReplicas"])),
        json!(count(&st["availableReplicas"])),
        json!(age_of(&o["metadata"]["creationTimestamp"], now)),
        json!(containers),
        json!(images),
        json!(selector_string(&spec["selector"])),
    ]
}

fn daemonset_row(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (spec, st) = (&o["spec"], &o["status"]);
    let (containers, images) = containers_and_images(&spec["template"]);
    vec![
        json!(o["metadata"]["name"]),
        json!(count(&st["desiredNumberScheduled"])),
        json!(count(&st["currentNumberScheduled"])),
        json!(count(&st["numberReady"])),
        json!(count(&st["updatedNumberScheduled"])),
        json!(count(&st["numberAvailable"])),
        json!(labels_string(&spec["template"]["spec"]["nodeSelector"])),
        json!(age_of(&o["metadata"]["creationTimestamp"], now)),
        json!(containers),
        json!(images),
        json!(selector_string(&spec["selector"])),
    ]
}

fn pdb_row(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    // An IntOrString: a number or a percentage; "N/A" when unset.
    let bound = |v: &Value| match v {
        Value::Null => "N/A".to_string(),
        Value::String(x) => x.clone(),
        other => other.to_string(),
    };
    vec![
        json!(o["metadata"]["name"]),
        json!(bound(&o["spec"]["minAvailable"])),
        json!(bound(&o["spec"]["maxUnavailable"])),
        json!(count(&o["status"]["disruptionsAllowed"])),
        json!(age_of(&o["metadata"]["creationTimestamp"], now)),
    ]
}

fn binding_row(o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let subjects = o["subjects"].as_array();
    let of_kind = |kind: &str| -> String {
        subjects
            .into_iter()
            .flatten()
            .filter(|x| x["kind"] == kind)
            .map(|x| match x["namespace"].as_str() {
                Some(ns) if kind == "ServiceAccount" => format!("{ns}/{}", s(&x["name"])),
                _ => s(&x["name"]).to_string(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        json!(o["metadata"]["name"]),
        json!(format!(
            "{}/{}",
            s(&o["roleRef"]["kind"]),
            s(&o["roleRef"]["name"])
        )),
        json!(age_of(&o["metadata"]["creationTimestamp"], now)),
        json!(of_kind("User")),
        json!(of_kind("Group")),
        json!(of_kind("ServiceAccount")),
    ]
}

/// Column definitions and a row renderer for a resource.
#[allow(clippy::type_complexity)]
fn printer(def: &ResourceDef) -> (Vec<Value>, Box<dyn Fn(&Value, DateTime<Utc>) -> Vec<Value>>) {
    let name = col(
        "Name",
        "string",
        0,
        "Name must be unique within a namespace.",
    );
    let age = col(
        "Age",
        "string",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    );
    let age_row = |o: &Value, now| -> Vec<Value> {
        vec![
            json!(o["metadata"]["name"]),
            json!(age_of(&o["metadata"]["creationTimestamp"], now)),
        ]
    };
    match (def.group, def.kind) {
        ("", "Service") => (
            vec![
                name,
                col("Type", "string", 0, "The type of service."),
                col("Cluster-IP", "string", 0, "The cluster IP of the service."),
                col(
                    "External-IP",
                    "string",
                    0,
                    "The external IPs of the service.",
                ),
                col("Port(s)", "string", 0, "The ports of the service."),
                age,
                col("Selector", "string", 1, "The selector of the service."),
            ],
            Box::new(service_row),
        ),
        ("", "Node") => (
            vec![
                name,
                col("Status", "string", 0, "The status of the node."),
                col("Roles", "string", 0, "The roles of the node."),
                age,
                col("Version", "string", 0, "Kubelet version."),
                col("Internal-IP", "string", 1, "Internal IP of the node."),
                col("External-IP", "string", 1, "External IP of the node."),
                col("OS-Image", "string", 1, "OS image of the node."),
                col("Kernel-Version", "string", 1, "Kernel version of the node."),
                col(
                    "Container-Runtime",
                    "string",
                    1,
                    "Container runtime of the node.",
                ),
            ],
            Box::new(node_row),
        ),
        ("coordination.k8s.io", "Lease") => (
            vec![
                name,
                col("Holder", "string", 0, "The holder of the lease."),
                age,
            ],
            Box::new(|o, now| {
                vec![
                    json!(o["metadata"]["name"]),
                    json!(s(&o["spec"]["holderIdentity"])),
                    json!(age_of(&o["metadata"]["creationTimestamp"], now)),
                ]
            }),
        ),
        ("", "ConfigMap") => (
            vec![name, col("Data", "integer", 0, "Number of keys."), age],
            Box::new(|o, now| {
                let n = o["data"].as_object().map_or(0, |m| m.len())
                    + o["binaryData"].as_object().map_or(0, |m| m.len());
                vec![
                    json!(o["metadata"]["name"]),
                    json!(n),
                    json!(age_of(&o["metadata"]["creationTimestamp"], now)),
                ]
            }),
        ),
        ("", "Namespace") => (
            vec![
                name,
                col("Status", "string", 0, "The status of the namespace."),
                age,
            ],
            Box::new(|o, now| {
                vec![
                    json!(o["metadata"]["name"]),
                    json!(s(&o["status"]["phase"])),
                    json!(age_of(&o["metadata"]["creationTimestamp"], now)),
                ]
            }),
        ),
        ("discovery.k8s.io", "EndpointSlice") => (
            vec![
                name,
                col("AddressType", "string", 0, "The type of addresses."),
                col("Ports", "string", 0, "The ports of the slice."),
                col("Endpoints", "string", 0, "The addresses of the slice."),
                age,
            ],
            Box::new(endpointslice_row),
        ),
        ("", "Event") => (
            vec![
                col(
                    "Last Seen",
                    "string",
                    0,
                    "Time since the event was last seen.",
                ),
                col("Type", "string", 0, "Type of the event."),
                col("Reason", "string", 0, "Reason for the event."),
                col("Object", "string", 0, "The object the event is about."),
                col(
                    "Subobject",
                    "string",
                    1,
                    "The subobject the event is about.",
                ),
                col("Source", "string", 1, "Who reported the event."),
                col("Message", "string", 0, "The event message."),
                col(
                    "First Seen",
                    "string",
                    1,
                    "Time since the event was first seen.",
                ),
                col("Count", "string", 1, "Times seen."),
                col("Name", "string", 1, "Name of the event."),
            ],
            Box::new(event_row),
        ),
        ("", "Endpoints") => (
            vec![
                name,
                col("Endpoints", "string", 0, "Endpoint addresses."),
                age,
            ],
            Box::new(|o, now| {
                let mut eps = Vec::new();
                for sub in o["subsets"].as_array().into_iter().flatten() {
                    for a in sub["addresses"].as_array().into_iter().flatten() {
                        let ports: Vec<i64> = sub["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|p| p["port"].as_i64())
                            .collect();
                        if ports.is_empty() {
                            eps.push(s(&a["ip"]).to_string());
                        }
                        for p in ports {
                            eps.push(format!("{}:{p}", s(&a["ip"])));
                        }
                    }
                }
                vec![
                    json!(o["metadata"]["name"]),
                    json!(or_none(eps.join(","))),
                    json!(age_of(&o["metadata"]["creationTimestamp"], now)),
                ]
            }),
        ),
        ("apps", "Deployment") => (
            vec![
                name,
                col("Ready", "string", 0, "Number of the pod with ready state"),
                col(
                    "Up-to-date",
                    "integer",
                    0,
                    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                ),
                col(
                    "Available",
                    "integer",
                    0,
                    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                ),
                age,
                col(
                    "Containers",
                    "string",
                    1,
                    "Names of each container in the template.",
                ),
                col(
                    "Images",
                    "string",
                    1,
                    "Images referenced by each container in the template.",
                ),
                col("Selector", "string", 1, "Label selector for pods."),
            ],
            Box::new(deployment_row),
        ),
        ("apps", "DaemonSet") => (
            vec![
                name,
                col(
                    "Desired",
                    "integer",
                    0,
                    "The total number of nodes that should be running the daemon pod.",
                ),
                col(
                    "Current",
                    "integer",
                    0,
                    "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
                ),
                col(
                    "Ready",
                    "integer",
                    0,
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
                ),
                col(
                    "Up-to-date",
                    "integer",
                    0,
                    "The total number of nodes that are running updated daemon pod.",
                ),
                col(
                    "Available",
                    "integer",
                    0,
                    "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
                ),
                col(
                    "Node Selector",
                    "string",
                    0,
                    "NodeSelector is a selector which must be true for the pod to fit on a node.",
                ),
                age,
                col(
                    "Containers",
                    "string",
                    1,
                    "Names of each container in the template.",
                ),
                col(
                    "Images",
                    "string",
                    1,
                    "Images referenced by each container in the template.",
                ),
                col(
                    "Selector",
                    "string",
                    1,
                    "A label query over pods that are managed by the daemon set.",
                ),
            ],
            Box::new(daemonset_row),
        ),
        ("policy", "PodDisruptionBudget") => (
            vec![
                name,
                col(
                    "Min Available",
                    "string",
                    0,
                    "The minimum number of pods that must be available.",
                ),
                col(
                    "Max Unavailable",
                    "string",
                    0,
                    "The maximum number of pods that may be unavailable.",
                ),
                col(
                    "Allowed Disruptions",
                    "integer",
                    0,
                    "Calculated number of pods that may be disrupted at this time.",
                ),
                age,
            ],
            Box::new(pdb_row),
        ),
        ("", "ServiceAccount") => (
            vec![
                name,
                col(
                    "Secrets",
                    "string",
                    0,
                    "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
                ),
                age,
            ],
            Box::new(|o, now| {
                vec![
                    json!(o["metadata"]["name"]),
                    json!(o["secrets"].as_array().map_or(0, Vec::len)),
                    json!(age_of(&o["metadata"]["creationTimestamp"], now)),
                ]
            }),
        ),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => (
            vec![
                name,
                col(
                    "Created At",
                    "string",
                    0,
                    "Time is the time the object was created.",
                ),
            ],
            Box::new(|o, _now| {
                // An absolute time in UTC, not an age.
                let created = o["metadata"]["creationTimestamp"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| {
                        t.with_timezone(&Utc)
                            .format("%Y-%m-%dT%H:%M:%SZ")
                            .to_string()
                    })
                    .unwrap_or_default();
                vec![json!(o["metadata"]["name"]), json!(created)]
            }),
        ),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => (
            vec![
                name,
                col("Role", "string", 0, "Role is the role being bound."),
                age,
                col("Users", "string", 1, "Users in the binding."),
                col("Groups", "string", 1, "Groups in the binding."),
                col(
                    "ServiceAccounts",
                    "string",
                    1,
                    "ServiceAccounts in the binding.",
                ),
            ],
            Box::new(binding_row),
        ),
        _ => (vec![name, age], Box::new(age_row)),
    }
}

/// A Table of `objects` (in the resource's shape). `include_object` is the `includeObject`
/// parameter: "None", "Object" or (default) "Metadata".
pub fn table(
    def: &ResourceDef,
    api_version: &str,
    objects: &[Value],
    include_object: &str,
    rv: Option<u64>,
) -> Value {
    let (columns, row) = printer(def);
    let now = Utc::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let object = match include_object {
                "None" => Value::Null,
                "Object" => o.clone(),
                _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]}),
            };
            let mut r = json!({"cells": row(o, now)});
            if !object.is_null() {
                r["object"] = object;
            }
            r
        })
        .collect();
    let mut meta = json!({});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv.to_string());
    }
    json!({"kind": "Table", "apiVersion": api_version, "metadata": meta, "columnDefinitions": columns, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::lookup;

    #[test]
    fn durations_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(125), "2m5s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(400 * 86400), "400d");
        assert_eq!(human_duration(3 * 365 * 86400), "3y");
    }

    #[test]
    fn accept_negotiation() {
        assert_eq!(
            wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"),
            Some("meta.k8s.io/v1")
        );
        assert_eq!(
            wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io"),
            Some("meta.k8s.io/v1beta1")
        );
        assert_eq!(wants_table("application/json"), None);
    }

    #[test]
    fn service_cells() {
        let def = lookup("", "v1", "services").unwrap();
        let lb = json!({"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"}, "spec": {"type": "LoadBalancer", "clusterIP": "198.51.100.1", "ports": [{"port": 80, "nodePort": 31234, "protocol": "TCP"}], "selector": {"b": "2", "a": "1"}}, "status": {"loadBalancer": {}}});
        let t = table(
            def,
            "meta.k8s.io/v1",
            std::slice::from_ref(&lb),
            "Metadata",
            Some(7),
        );
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "web");
        assert_eq!(cells[1], "LoadBalancer");
        assert_eq!(cells[2], "198.51.100.1");
        assert_eq!(cells[3], "<pending>");
        assert_eq!(cells[4], "80:31234/TCP");
        assert_eq!(cells[6], "a=1,b=2");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let mut with_ip = lb.clone();
        with_ip["status"]["loadBalancer"]["ingress"] = json!([{"ip": "192.0.2.10"}]);
        assert_eq!(
            table(def, "meta.k8s.io/v1", &[with_ip], "None", None)["rows"][0]["cells"][3],
            "192.0.2.10"
        );
        let cip = json!({"metadata": {"name": "c"}, "spec": {"type": "ClusterIP", "clusterIP": "198.51.100.2", "ports": [{"port": 53, "protocol": "UDP"}]}});
        let mut long = lb.clone();
        long["status"]["loadBalancer"]["ingress"] =
            json!([{"ip": "192.0.2.10"}, {"hostname": "é.example.invalid"}]);
        assert_eq!(
            table(def, "meta.k8s.io/v1", &[long], "None", None)["rows"][0]["cells"][3],
            "192.0.2.10,é...."
        );
        let c = table(def, "meta.k8s.io/v1", &[cip], "None", None);
        assert_eq!(c["rows"][0]["cells"][3], "<none>");
        assert_eq!(c["rows"][0]["cells"][4], "53/UDP");
    }

    #[test]
    fn node_cells() {
        let def = lookup("", "v1", "nodes").unwrap();
        let n = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}}, "spec": {"unschedulable": true}, "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.32.0"}}});
        let t = table(def, "meta.k8s.io/v1", &[n], "None", None);
        assert_eq!(t["rows"][0]["cells"][1], "Ready,SchedulingDisabled");
        assert_eq!(t["rows"][0]["cells"][2], "control-plane");
        assert_eq!(t["rows"][0]["cells"][4], "v1.32.0");
    }

    #[test]
    fn workload_cells() {
        let def = lookup("apps", "v1", "deployments").unwrap();
        let d = json!({"metadata": {"name": "ctl"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"b": "2", "a": "1"}, "matchExpressions": [{"key": "t", "operator": "In", "values": ["x", "y"]}]}, "template": {"spec": {"containers": [{"name": "c", "image": "img:1"}, {"name": "d", "image": "img:2"}]}}}, "status": {"readyReplicas": 1, "updatedReplicas": 2}});
        let t = table(def, "meta.k8s.io/v1", &[d], "None", None);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["priority"] == 0)
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "Ready", "Up-to-date", "Available", "Age"]);
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[1], "1/2");
        assert_eq!(cells[2], 2);
        assert_eq!(cells[3], 0);
        assert_eq!(cells[5], "c,d");
        assert_eq!(cells[6], "img:1,img:2");
        assert_eq!(cells[7], "a=1,b=2,t in (x,y)");

        let def = lookup("apps", "v1", "daemonsets").unwrap();
        let ds = json!({"metadata": {"name": "spk"}, "spec": {"selector": {"matchLabels": {"a": "1"}}, "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}}, "status": {"desiredNumberScheduled": 3, "numberReady": 2}});
        let cells = &table(def, "meta.k8s.io/v1", &[ds], "None", None)["rows"][0]["cells"];
        assert_eq!(cells[1], 3);
        assert_eq!(cells[3], 2);
        assert_eq!(cells[6], "kubernetes.io/os=linux");

        let def = lookup("policy", "v1", "poddisruptionbudgets").unwrap();
        let pdb = json!({"metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}});
        let cells = &table(def, "meta.k8s.io/v1", &[pdb], "None", None)["rows"][0]["cells"];
        assert_eq!(cells[1], "50%");
        assert_eq!(cells[2], "N/A");
        assert_eq!(cells[3], 0);
    }

    #[test]
    fn rbac_cells() {
        let def = lookup("rbac.authorization.k8s.io", "v1", "clusterrolebindings").unwrap();
        let b = json!({"metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}, {"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "sb", "namespace": "ns"}]});
        let cells = &table(def, "meta.k8s.io/v1", &[b], "None", None)["rows"][0]["cells"];
        assert_eq!(cells[1], "ClusterRole/r");
        assert_eq!(cells[3], "u");
        assert_eq!(cells[4], "");
        assert_eq!(cells[5], "ns/sa, ns/sb");
        let def = lookup("rbac.authorization.k8s.io", "v1", "roles").unwrap();
        let r = json!({"metadata": {"name": "r", "creationTimestamp": "2020-01-02T03:04:05Z"}});
        let cells = &table(def, "meta.k8s.io/v1", &[r], "None", None)["rows"][0]["cells"];
        assert_eq!(cells[1], "2020-01-02T03:04:05Z");
    }
}
