//! Shared by the speaker benchmarks: fills the embedded API server with Ready Nodes and
//! LoadBalancer Services that have an IP in their status and one ready endpoint each.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{
    LoadBalancerIngress, LoadBalancerStatus, Namespace, Node, NodeCondition, NodeStatus, Service,
    ServicePort, ServiceSpec, ServiceStatus,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

/// The InternalIP of the i-th node: a loopback address of its own, where its speaker's
/// heartbeat socket binds (`--membership-bind`).
pub fn node_addr(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 0, 0, 10 + i as u8)
}

/// The namespaces a benchmark fills.
#[derive(Debug, Clone, Copy)]
pub struct Namespaces<'a> {
    /// The membership Secret's (the speakers' `--config-namespace`).
    pub system: &'a str,
    /// The speakers' Leases' (`--namespace`).
    pub leases: &'a str,
    /// The Services' and EndpointSlices'; created unless `default`.
    pub services: &'a str,
}

/// ferrolb's default namespaces, Services in `default` (the embedded server).
pub const DEFAULT_NAMESPACES: Namespaces<'static> = Namespaces {
    system: "ferrolb-system",
    leases: "ferrolb-speaker-leases",
    services: "default",
};

/// [`populate_in`] ferrolb's default namespaces.
#[allow(dead_code)] // each bench binary uses one of the two
pub async fn populate(client: &Client, nodes: &[&str], n_svc: u32, svc_ip: impl Fn(u32) -> IpAddr) {
    populate_in(client, DEFAULT_NAMESPACES, nodes, n_svc, svc_ip).await
}

/// Creates the namespaces `ns`, the membership Secret (a key made for this run),
/// `nodes` (Ready, InternalIP [`node_addr`]), and `n_svc` Services `svc-<i>` with
/// `svc_ip(i)` in their status and a ready endpoint on `nodes[i % nodes.len()]`.
pub async fn populate_in(
    client: &Client,
    ns: Namespaces<'_>,
    nodes: &[&str],
    n_svc: u32,
    svc_ip: impl Fn(u32) -> IpAddr,
) {
    let mut own = vec![ns.system, ns.leases];
    if ns.services != "default" {
        own.push(ns.services);
    }
    for ns in own {
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &Namespace {
                    metadata: ObjectMeta {
                        name: Some(ns.into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("creating namespace {ns}: {e}"));
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let key = format!("ferrolb-bench-key-{}-{nanos:032}", std::process::id());
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns.system)
        .create(
            &PostParams::default(),
            &k8s_openapi::api::core::v1::Secret {
                metadata: ObjectMeta {
                    name: Some("ferrolb-membership".into()),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(
                    "primary".to_string(),
                    k8s_openapi::ByteString(key.into_bytes()),
                )])),
                ..Default::default()
            },
        )
        .await
        .expect("membership secret");
    let node_api = Api::<Node>::all(client.clone());
    for (i, n) in nodes.iter().enumerate() {
        node_api
            .create(
                &PostParams::default(),
                &Node {
                    metadata: ObjectMeta {
                        name: Some((*n).into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("creating Node {n}: {e}"));
        let status = NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            addresses: Some(vec![k8s_openapi::api::core::v1::NodeAddress {
                type_: "InternalIP".into(),
                address: node_addr(i).to_string(),
            }]),
            ..Default::default()
        };
        node_api
            .patch_status(
                n,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": status })),
            )
            .await
            .expect("node status");
    }
    let svcs = Api::<Service>::namespaced(client.clone(), ns.services);
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), ns.services);
    for i in 0..n_svc {
        let name = format!("svc-{i}");
        let svc = Service {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                // The testbed's IPv4 service range is a /24; its IPv6 one holds 65,536.
                ip_families: Some(vec!["IPv6".into()]),
                ip_family_policy: Some("SingleStack".into()),
                // ... and its node ports run out at 2,768.
                allocate_load_balancer_node_ports: Some(false),
                ports: Some(vec![ServicePort {
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        };
        svcs.create(&PostParams::default(), &svc)
            .await
            .unwrap_or_else(|e| {
                panic!("creating Service {name} (IPv6 single-stack: the API server must serve IPv6 Services): {e}")
            });
        let status = ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some(svc_ip(i).to_string()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        };
        svcs.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await
        .expect("service status");
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{name}-x")),
                labels: Some(BTreeMap::from([(
                    "kubernetes.io/service-name".to_string(),
                    name.clone(),
                )])),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: vec![Endpoint {
                // A pod address, only ever stored (no packet goes to it).
                addresses: vec!["192.0.2.250".into()],
                node_name: Some(nodes[i as usize % nodes.len()].into()),
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ports: None,
        };
        slices
            .create(&PostParams::default(), &slice)
            .await
            .expect("slice");
    }
}
