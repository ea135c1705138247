//! The Kubernetes objects a lab starts with: its Nodes, the ferrolb-system and
//! ferrolb-speaker-leases namespaces,
//! an example pool ConfigMap, and example Services with EndpointSlices (one ready
//! endpoint on every node, as a DaemonSet of host-network pods would have).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, Service,
    ServicePort, ServiceSpec,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::error::LabError;
use crate::ledger::{Kind, Ledger};
use crate::plan::{HTTP_PORT, POOL_V4, POOL_V6, Plan, UPLINK, vlan};

/// Namespace of ferrolb's own objects.
pub const SYSTEM_NAMESPACE: &str = "ferrolb-system";
/// Namespace of the speakers' Leases (the speaker's `--namespace` default), kept
/// apart from ferrolb-system so that no speaker may touch the controller's Lease.
pub const SPEAKER_LEASE_NAMESPACE: &str = "ferrolb-speaker-leases";
/// Name of the pool ConfigMap.
pub const CONFIG_NAME: &str = "ferrolb-config";
/// Namespace of the example Services.
pub const SERVICE_NAMESPACE: &str = "default";
/// The label that excludes a node from announcing (well-known in Kubernetes).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The example pool configuration (ferrolb format).
pub fn pool_config_yaml() -> String {
    format!(
        "pools:\n  - name: lab\n    addresses: [\"{}-{}\", \"{}-{}\"]\n",
        POOL_V4.0, POOL_V4.1, POOL_V6.0, POOL_V6.1
    )
}

/// The label of the nodes that may announce the second segment's pool.
pub const VLAN_NODE_LABEL: &str = "lab.ferrolb.io/vlan20";
/// The second segment's pool.
pub const VLAN_POOL: &str = "vlan20";
/// The example Service in the second segment's pool.
pub const VLAN_EXAMPLE_SERVICE: (&str, Family) = ("web-vlan20", Family::Dual);

/// The example configuration of a lab with the second segment: the `lab` pool answered
/// on eth0 of every node, and the `vlan20` pool (labelled `vlan: "20"`, given only to
/// Services that ask for it) answered only on `eth0.20`, only by nodes labelled
/// [`VLAN_NODE_LABEL`].
pub fn vlan_pool_config_yaml() -> String {
    let v = |a: std::net::Ipv4Addr, b: std::net::Ipv4Addr| format!("{a}-{b}");
    let w = |a: std::net::Ipv6Addr, b: std::net::Ipv6Addr| format!("{a}-{b}");
    format!(
        r#"{lab}  - name: {VLAN_POOL}
    addresses: ["{v4}", "{v6}"]
    autoAssign: false
    labels: {{vlan: "20"}}
l2:
  interfaces: [{uplink}]
  policies:
    - name: vlan20-segment
      poolSelector: {{matchLabels: {{vlan: "20"}}}}
      interfaces: ["{vlan_if}"]
      nodeSelector: {{matchLabels: {{{VLAN_NODE_LABEL}: "true"}}}}
"#,
        lab = pool_config_yaml(),
        v4 = v(vlan::POOL_V4.0, vlan::POOL_V4.1),
        v6 = w(vlan::POOL_V6.0, vlan::POOL_V6.1),
        uplink = UPLINK,
        vlan_if = vlan::NODE_IF,
    )
}

/// IP family request of an example Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// SingleStack IPv4.
    V4,
    /// SingleStack IPv6.
    V6,
    /// RequireDualStack, IPv4 first.
    Dual,
}

/// The example Services of the lab: name and family.
pub const EXAMPLE_SERVICES: [(&str, Family); 3] = [
    ("web", Family::V4),
    ("web6", Family::V6),
    ("web-dual", Family::Dual),
];

/// A LoadBalancer Service `name` on port 80 of the given family.
pub fn service(name: &str, family: Family) -> Service {
    let (families, policy) = match family {
        Family::V4 => (vec!["IPv4".to_string()], "SingleStack"),
        Family::V6 => (vec!["IPv6".to_string()], "SingleStack"),
        Family::Dual => (
            vec!["IPv4".to_string(), "IPv6".to_string()],
            "RequireDualStack",
        ),
    };
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(SERVICE_NAMESPACE.to_string()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            selector: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: HTTP_PORT as i32,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ip_families: Some(families),
            ip_family_policy: Some(policy.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The EndpointSlices of Service `name`: one per family, a ready endpoint on every node
/// (at the node's address, like host-network pods).
pub fn endpoint_slices(plan: &Plan, name: &str, family: Family) -> Vec<EndpointSlice> {
    let families: &[&str] = match family {
        Family::V4 => &["IPv4"],
        Family::V6 => &["IPv6"],
        Family::Dual => &["IPv4", "IPv6"],
    };
    families
        .iter()
        .map(|fam| EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{name}-{}", fam.to_lowercase())),
                namespace: Some(SERVICE_NAMESPACE.to_string()),
                labels: Some(BTreeMap::from([
                    ("kubernetes.io/service-name".to_string(), name.to_string()),
                    (
                        "endpointslice.kubernetes.io/managed-by".to_string(),
                        "ferrolb-lab".to_string(),
                    ),
                ])),
                ..Default::default()
            },
            address_type: fam.to_string(),
            endpoints: plan
                .nodes()
                .map(|n| Endpoint {
                    addresses: vec![if *fam == "IPv4" {
                        n.v4.to_string()
                    } else {
                        n.v6.to_string()
                    }],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    }),
                    node_name: Some(n.name.clone()),
                    ..Default::default()
                })
                .collect(),
            ports: Some(vec![EndpointPort {
                name: Some("http".into()),
                port: Some(HTTP_PORT as i32),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
        })
        .collect()
}

/// The Node object of node `name` (status set separately through the subresource).
fn node(name: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/hostname".to_string(), name.to_string()),
                ("kubernetes.io/os".to_string(), "linux".to_string()),
            ])),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        ..Default::default()
    }
}

/// The status of a node with these addresses.
pub fn node_status(name: &str, addresses: &[IpAddr], ready: bool) -> NodeStatus {
    let now =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let mut addrs: Vec<NodeAddress> = addresses
        .iter()
        .map(|ip| NodeAddress {
            type_: "InternalIP".into(),
            address: ip.to_string(),
        })
        .collect();
    addrs.push(NodeAddress {
        type_: "Hostname".into(),
        address: name.to_string(),
    });
    NodeStatus {
        addresses: Some(addrs),
        conditions: Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            reason: Some(if ready { "KubeletReady" } else { "LabNotReady" }.into()),
            message: Some(
                if ready {
                    "ferrolb lab node"
                } else {
                    "marked NotReady by the lab"
                }
                .into(),
            ),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(now),
        }]),
        ..Default::default()
    }
}

/// Registers the lab's Nodes (Ready), ferrolb's namespaces (unless they exist) and the
/// pool ConfigMap, recording in `ledger` what it creates.
pub async fn seed_cluster(
    client: &kube::Client,
    plan: &Plan,
    ledger: &Ledger,
) -> Result<(), LabError> {
    let pp = PostParams::default();
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for name in [SYSTEM_NAMESPACE, SPEAKER_LEASE_NAMESPACE] {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        // An external cluster may have them already (ferrolb installed): used, not owned.
        match namespaces.create(&pp, &ns).await {
            Ok(created) => ledger.created(Kind::Namespace, &created.metadata),
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(LabError::kube(format!("creating namespace {name}"))(e)),
        }
    }

    let nodes: Api<Node> = Api::all(client.clone());
    let count = plan.node_count();
    for (i, n) in plan.nodes().enumerate() {
        let mut obj = node(&n.name);
        // With the second segment, every node but the last may announce its pool (the
        // last one shows that the pool never moves to a node its policy leaves out).
        if plan.has_vlan() && (i + 1 < count || count == 1) {
            obj.metadata
                .labels
                .get_or_insert_default()
                .insert(VLAN_NODE_LABEL.into(), "true".into());
        }
        let created = nodes
            .create(&pp, &obj)
            .await
            .map_err(LabError::kube(format!("creating Node {}", n.name)))?;
        ledger.created(Kind::Node, &created.metadata);
        set_node_ready(client, &n.name, &[IpAddr::V4(n.v4), IpAddr::V6(n.v6)], true).await?;
    }

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), SYSTEM_NAMESPACE);
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIG_NAME.into()),
            namespace: Some(SYSTEM_NAMESPACE.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "config.yaml".to_string(),
            if plan.has_vlan() {
                vlan_pool_config_yaml()
            } else {
                pool_config_yaml()
            },
        )])),
        ..Default::default()
    };
    let created = cms.create(&pp, &cm).await.map_err(LabError::kube(format!(
        "creating ConfigMap {SYSTEM_NAMESPACE}/{CONFIG_NAME}"
    )))?;
    ledger.created(Kind::ConfigMap, &created.metadata);
    Ok(())
}

/// Writes node `name`'s status: its addresses and a Ready condition.
pub async fn set_node_ready(
    client: &kube::Client,
    name: &str,
    addresses: &[IpAddr],
    ready: bool,
) -> Result<(), LabError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let status = node_status(name, addresses, ready);
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .map_err(LabError::kube(format!("writing the status of Node {name}")))?;
    Ok(())
}

/// Sets or removes the exclude-from-external-load-balancers label and cordons or
/// uncordons node `name` (what `kubectl drain` plus an operator's label would do).
pub async fn set_node_drained(
    client: &kube::Client,
    name: &str,
    drained: bool,
) -> Result<(), LabError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let label = if drained {
        json!("true")
    } else {
        serde_json::Value::Null
    };
    let patch = json!({
        "metadata": { "labels": { EXCLUDE_LABEL: label } },
        "spec": { "unschedulable": if drained { json!(true) } else { serde_json::Value::Null } },
    });
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map_err(LabError::kube(format!(
            "{} Node {name}",
            if drained { "draining" } else { "undraining" }
        )))?;
    Ok(())
}

/// Creates Service `name` of `family` and its EndpointSlices, recorded in `ledger`.
pub async fn create_service(
    client: &kube::Client,
    plan: &Plan,
    name: &str,
    family: Family,
    ledger: &Ledger,
) -> Result<(), LabError> {
    create_service_in(client, plan, name, family, None, ledger).await
}

/// [`create_service`], asking for `pool` (the `ferrolb.io/address-pool` annotation)
/// when given.
pub async fn create_service_in(
    client: &kube::Client,
    plan: &Plan,
    name: &str,
    family: Family,
    pool: Option<&str>,
    ledger: &Ledger,
) -> Result<(), LabError> {
    let pp = PostParams::default();
    let services: Api<Service> = Api::namespaced(client.clone(), SERVICE_NAMESPACE);
    let mut svc = service(name, family);
    if let Some(pool) = pool {
        svc.metadata.annotations = Some(BTreeMap::from([(
            ferrolb_core::annotations::ADDRESS_POOL.to_string(),
            pool.to_string(),
        )]));
    }
    let created = services
        .create(&pp, &svc)
        .await
        .map_err(LabError::kube(format!(
            "creating Service {SERVICE_NAMESPACE}/{name}"
        )))?;
    ledger.created(Kind::Service, &created.metadata);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), SERVICE_NAMESPACE);
    for slice in endpoint_slices(plan, name, family) {
        let slice_name = slice.metadata.name.clone().unwrap_or_default();
        let created = slices
            .create(&pp, &slice)
            .await
            .map_err(LabError::kube(format!(
                "creating EndpointSlice {SERVICE_NAMESPACE}/{slice_name}"
            )))?;
        ledger.created(Kind::EndpointSlice, &created.metadata);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vlan_example_config_is_valid_and_puts_its_pool_on_eth0_20_of_labelled_nodes() {
        let config =
            ferrolb_config::parse_ferrolb_yaml(&vlan_pool_config_yaml()).expect("valid config");
        assert_eq!(config.pools.len(), 2);
        let ip: IpAddr = "203.0.113.205".parse().unwrap();
        let a = config.announcement(ip, &BTreeMap::new());
        let labelled = BTreeMap::from([(VLAN_NODE_LABEL.to_string(), "true".to_string())]);
        assert!(a.selects_node(&config.l2, &labelled));
        assert!(!a.selects_node(&config.l2, &BTreeMap::new()));
        let rule = a.interfaces_on(&labelled);
        assert!(rule.takes(vlan::NODE_IF, false) && !rule.takes(UPLINK, true));
        let lab_ip: IpAddr = "192.0.2.205".parse().unwrap();
        assert_eq!(
            config.announcement(lab_ip, &BTreeMap::new()),
            ferrolb_config::Announcement::Default
        );
        assert_eq!(config.l2.interfaces, vec![UPLINK.to_string()]);
    }

    #[test]
    fn the_example_pool_is_a_valid_ferrolb_config_inside_the_documentation_ranges() {
        let config = ferrolb_config::parse_ferrolb_yaml(&pool_config_yaml()).expect("valid config");
        assert_eq!(config.pools.len(), 1);
        let summary = ferrolb_config::summarize(&config);
        assert_eq!(summary.len(), 1);
    }

    #[test]
    fn endpoint_slices_put_a_ready_endpoint_on_every_node_per_family() {
        let plan = Plan::new("flb1a", 3).unwrap();
        let slices = endpoint_slices(&plan, "web-dual", Family::Dual);
        assert_eq!(slices.len(), 2);
        assert_eq!(slices[0].address_type, "IPv4");
        assert_eq!(slices[1].address_type, "IPv6");
        for s in &slices {
            assert_eq!(s.endpoints.len(), 3);
            assert_eq!(
                s.metadata.labels.as_ref().unwrap()["kubernetes.io/service-name"],
                "web-dual"
            );
            assert!(
                s.endpoints
                    .iter()
                    .all(|e| e.conditions.as_ref().unwrap().ready == Some(true))
            );
        }
        assert_eq!(
            slices[1].endpoints[2].addresses,
            vec!["2001:db8::13".to_string()]
        );
        assert_eq!(slices[0].endpoints[0].node_name.as_deref(), Some("n1"));
    }

    #[test]
    fn services_ask_for_their_family() {
        let s = service("web6", Family::V6);
        let spec = s.spec.unwrap();
        assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
        assert_eq!(spec.ip_families, Some(vec!["IPv6".to_string()]));
        assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
        let dual = service("d", Family::Dual).spec.unwrap();
        assert_eq!(dual.ip_family_policy.as_deref(), Some("RequireDualStack"));
    }
}
