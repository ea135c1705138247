//! The speaker's cached objects: Services, EndpointSlices and Nodes cut down to the
//! fields the election reads.
//!
//! The watches deserialize straight into these types (serde skips every other field
//! of the API's JSON), so a cluster's ports, selectors, addresses, target references,
//! node images and capacity are never even built in memory; [`trim_service`] and
//! friends then drop the metadata nobody reads (annotations such as
//! `last-applied-configuration`, managed fields, owner references...) before an object
//! enters its reflector store. This keeps the speaker's memory small and its CPU per
//! watch event low on large clusters.
//!
//! Each type implements [`kube::Resource`] for its API resource, so `Api`, `watcher`
//! and the reflector work with it as with the k8s-openapi type.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use crate::facts::SERVICE_NAME_LABEL;

macro_rules! resource {
    ($ty:ty, $scope:ty, $group:literal, $version:literal, $kind:literal, $plural:literal) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = $scope;
            fn kind(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($kind)
            }
            fn group(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($group)
            }
            fn version(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($version)
            }
            fn plural(_: &()) -> Cow<'_, str> {
                Cow::Borrowed($plural)
            }
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

/// `null` (which the API sends for an empty list, e.g. a slice without endpoints)
/// read as the default.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A `v1` Service: identity, type, class, traffic policy and ingress IPs.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SlimService {
    /// Name, namespace and uid (after [`trim_service`]).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The spec fields the election reads.
    #[serde(default)]
    pub spec: Option<SlimServiceSpec>,
    /// The status fields the election reads.
    #[serde(default)]
    pub status: Option<SlimServiceStatus>,
}

/// `spec` of a [`SlimService`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimServiceSpec {
    /// `spec.type`.
    #[serde(rename = "type", default)]
    pub type_: Option<String>,
    /// `spec.loadBalancerClass`.
    #[serde(default)]
    pub load_balancer_class: Option<String>,
    /// `spec.externalTrafficPolicy`.
    #[serde(default)]
    pub external_traffic_policy: Option<String>,
}

/// `status` of a [`SlimService`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimServiceStatus {
    /// `status.loadBalancer`.
    #[serde(default)]
    pub load_balancer: Option<SlimLoadBalancerStatus>,
}

/// `status.loadBalancer` of a [`SlimService`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SlimLoadBalancerStatus {
    /// `status.loadBalancer.ingress`.
    #[serde(default)]
    pub ingress: Option<Vec<SlimIngress>>,
}

/// One `status.loadBalancer.ingress` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SlimIngress {
    /// Its `ip` (entries with only a `hostname` have none).
    #[serde(default)]
    pub ip: Option<String>,
}

/// `true` for a non-empty JSON list, `false` for an empty one or `null`. The elements
/// are skipped unread ([`IgnoredAny`] is zero-sized: the `Vec` never allocates).
fn non_empty_list<'de, D>(d: D) -> Result<bool, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(Option::<Vec<IgnoredAny>>::deserialize(d)?.is_some_and(|v| !v.is_empty()))
}

resource!(
    SlimService,
    NamespaceResourceScope,
    "",
    "v1",
    "Service",
    "services"
);

/// A `discovery.k8s.io/v1` EndpointSlice: its Service and its endpoints' readiness.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SlimEndpointSlice {
    /// Name and namespace (after [`trim_slice`]; before it, everything the API sent).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The value of the `kubernetes.io/service-name` label, moved here by
    /// [`trim_slice`]: a one-entry label map would cost a B-tree node (~540 bytes) per
    /// slice for one string.
    #[serde(skip)]
    pub service_name: Option<String>,
    /// The endpoints.
    #[serde(default, deserialize_with = "null_as_default")]
    pub endpoints: Vec<SlimEndpoint>,
}

impl SlimEndpointSlice {
    /// The Service this slice belongs to: the moved label after [`trim_slice`], the
    /// label itself before.
    pub fn service_name(&self) -> Option<&str> {
        self.service_name.as_deref().or_else(|| {
            self.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .map(String::as_str)
        })
    }
}

/// One endpoint of a [`SlimEndpointSlice`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlimEndpoint {
    /// Whether its `addresses` list is non-empty: only that matters (an endpoint
    /// without an address serves nothing), so no address is ever built in memory.
    #[serde(rename = "addresses", default, deserialize_with = "non_empty_list")]
    pub has_address: bool,
    /// `nodeName`.
    #[serde(default)]
    pub node_name: Option<String>,
    /// `conditions`.
    #[serde(default)]
    pub conditions: Option<SlimEndpointConditions>,
}

/// `conditions` of a [`SlimEndpoint`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SlimEndpointConditions {
    /// `ready` (unset means ready, as the API documents).
    #[serde(default)]
    pub ready: Option<bool>,
}

resource!(
    SlimEndpointSlice,
    NamespaceResourceScope,
    "discovery.k8s.io",
    "v1",
    "EndpointSlice",
    "endpointslices"
);

/// A `v1` Node: identity, labels and readiness.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct SlimNode {
    /// Name, uid and labels (after [`trim_node`]).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The status fields the election reads.
    #[serde(default)]
    pub status: Option<SlimNodeStatus>,
}

/// `status` of a [`SlimNode`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SlimNodeStatus {
    /// `status.conditions` (only `Ready` kept).
    #[serde(default)]
    pub conditions: Option<Vec<SlimNodeCondition>>,
    /// `status.addresses` (only `InternalIP` kept): where peers send heartbeats.
    #[serde(default)]
    pub addresses: Option<Vec<SlimNodeAddress>>,
}

/// One Node address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SlimNodeAddress {
    /// `type` (`InternalIP`, `ExternalIP`, `Hostname`, ...).
    #[serde(rename = "type", default)]
    pub type_: String,
    /// `address`.
    #[serde(default)]
    pub address: String,
}

impl SlimNode {
    /// The node's first `InternalIP` that parses as an address: where its speaker's
    /// heartbeats are sent.
    pub fn internal_ip(&self) -> Option<std::net::IpAddr> {
        self.status
            .as_ref()?
            .addresses
            .as_ref()?
            .iter()
            .filter(|a| a.type_ == "InternalIP")
            .find_map(|a| a.address.parse().ok())
    }
}

/// One Node condition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SlimNodeCondition {
    /// `type`.
    #[serde(rename = "type", default)]
    pub type_: String,
    /// `status` (`True`, `False`, `Unknown`).
    #[serde(default)]
    pub status: String,
}

resource!(SlimNode, ClusterResourceScope, "", "v1", "Node", "nodes");

/// Name and namespace of `meta`, plus its uid when `keep_uid`; everything else dropped.
///
/// The resourceVersion goes too: the watcher tracks it from the raw event before this
/// trimming runs, and the reflector's key for every object copies name, namespace,
/// uid and resourceVersion again, so each string kept here is stored twice.
fn identity(meta: &mut ObjectMeta, keep_uid: bool) -> ObjectMeta {
    ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        uid: if keep_uid { meta.uid.take() } else { None },
        ..Default::default()
    }
}

/// Drops the metadata a Service's Events and election do not need (the uid stays: an
/// Event names the object it is about by uid; the labels stay for `l2.policies`).
pub fn trim_service(svc: &mut SlimService) {
    // Labels stay: `l2.policies` select Services by them.
    let labels = svc.metadata.labels.take();
    svc.metadata = identity(&mut svc.metadata, true);
    svc.metadata.labels = labels;
    if let Some(ingress) = svc
        .status
        .as_mut()
        .and_then(|s| s.load_balancer.as_mut())
        .and_then(|lb| lb.ingress.as_mut())
    {
        ingress.retain(|i| i.ip.is_some());
    }
}

/// Keeps a slice's name and namespace, and moves the Service name label to
/// [`SlimEndpointSlice::service_name`]; every other label and the uid go.
pub fn trim_slice(slice: &mut SlimEndpointSlice) {
    if let Some(service) = slice
        .metadata
        .labels
        .take()
        .and_then(|mut l| l.remove(SERVICE_NAME_LABEL))
    {
        slice.service_name = Some(service);
    }
    slice.metadata = identity(&mut slice.metadata, false);
}

/// Keeps a Node's identity, labels and `Ready` condition.
pub fn trim_node(node: &mut SlimNode) {
    let labels = node.metadata.labels.take();
    node.metadata = identity(&mut node.metadata, true);
    node.metadata.labels = labels;
    if let Some(status) = node.status.as_mut() {
        if let Some(cs) = status.conditions.as_mut() {
            cs.retain(|c| c.type_ == "Ready");
        }
        if let Some(addrs) = status.addresses.as_mut() {
            addrs.retain(|a| a.type_ == "InternalIP");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::{SliceIndex, node_ready, service_facts};
    use ferrolb_core::election::TrafficPolicy;
    use ferrolb_core::service::ServiceKey;
    use kube::Resource;

    /// A Service as the API server sends it, with much the speaker does not read.
    const SERVICE_JSON: &str = r#"{
      "apiVersion": "v1", "kind": "Service",
      "metadata": {"name": "web", "namespace": "shop", "uid": "u-1", "resourceVersion": "42",
                   "labels": {"app": "web"},
                   "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                   "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
      "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
               "loadBalancerClass": "ferrolb.io/lb", "selector": {"app": "web"},
               "ports": [{"port": 80, "targetPort": 8080, "nodePort": 30080}],
               "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"]},
      "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10", "ipMode": "VIP"},
                                              {"hostname": "lb.example"},
                                              {"ip": "2001:db8::10"}]}}
    }"#;

    const SLICE_JSON: &str = r#"{
      "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
      "metadata": {"name": "web-abc", "namespace": "shop",
                   "labels": {"kubernetes.io/service-name": "web",
                              "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
                   "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "u-1"}]},
      "addressType": "IPv4",
      "endpoints": [
        {"addresses": ["203.0.113.5", "203.0.113.6"], "nodeName": "node-a",
         "conditions": {"ready": true, "serving": true, "terminating": false},
         "targetRef": {"kind": "Pod", "name": "web-1"}, "zone": "z1"},
        {"addresses": ["203.0.113.15"], "nodeName": "node-b",
         "conditions": {"ready": false, "serving": true, "terminating": true}}
      ],
      "ports": [{"port": 8080, "protocol": "TCP"}]
    }"#;

    const NODE_JSON: &str = r#"{
      "apiVersion": "v1", "kind": "Node",
      "metadata": {"name": "node-a", "uid": "n-1", "resourceVersion": "7",
                   "labels": {"kubernetes.io/hostname": "node-a", "zone": "z1"},
                   "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
      "spec": {"podCIDR": "203.0.113.0/24"},
      "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                {"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                 "images": [{"names": ["registry.example/big:1"], "sizeBytes": 123456789}],
                 "capacity": {"cpu": "2"}}
    }"#;

    #[test]
    fn service_from_api_json_keeps_what_the_election_reads() {
        let mut svc: SlimService = serde_json::from_str(SERVICE_JSON).unwrap();
        trim_service(&mut svc);
        let f = service_facts(&svc, &SliceIndex::default(), "ferrolb.io/lb").unwrap();
        assert_eq!(f.key, ServiceKey::new("shop", "web"));
        assert_eq!(f.traffic_policy, TrafficPolicy::Local);
        assert_eq!(
            f.ips,
            vec![
                "192.0.2.10".parse::<std::net::IpAddr>().unwrap(),
                "2001:db8::10".parse().unwrap()
            ]
        );
        assert!(svc.metadata.annotations.is_none());
        assert!(svc.metadata.managed_fields.is_none());
        assert_eq!(
            svc.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str),
            Some("web"),
            "labels stay for l2.policies"
        );
        let r = svc.object_ref(&());
        assert_eq!(r.kind.as_deref(), Some("Service"));
        assert_eq!(r.api_version.as_deref(), Some("v1"));
        assert_eq!(r.uid.as_deref(), Some("u-1"));
        assert_eq!(r.namespace.as_deref(), Some("shop"));
        assert_eq!(
            SlimService::url_path(&(), Some("shop")),
            "/api/v1/namespaces/shop/services"
        );
    }

    #[test]
    fn slice_from_api_json_keeps_readiness_and_nodes() {
        let mut slice: SlimEndpointSlice = serde_json::from_str(SLICE_JSON).unwrap();
        let owned = |idx: &SliceIndex| {
            idx.get("shop", "web").map(|e| {
                let nodes: Vec<String> = e.nodes.iter().map(|n| n.to_string()).collect();
                (e.any, nodes)
            })
        };
        let before = owned(&SliceIndex::build([&slice]));
        trim_slice(&mut slice);
        let after = SliceIndex::build([&slice]);
        assert_eq!(before, owned(&after));
        let eps = after.get("shop", "web").unwrap();
        assert!(eps.any);
        assert_eq!(eps.nodes, ["node-a"]);
        assert!(slice.endpoints.iter().all(|e| e.has_address));
        assert_eq!(slice.service_name.as_deref(), Some("web"));
        assert_eq!(slice.service_name(), Some("web"));
        assert!(slice.metadata.labels.is_none());
        assert!(slice.metadata.owner_references.is_none());
        assert_eq!(
            SlimEndpointSlice::url_path(&(), None),
            "/apis/discovery.k8s.io/v1/endpointslices"
        );
    }

    #[test]
    fn node_from_api_json_keeps_labels_and_readiness() {
        let mut node: SlimNode = serde_json::from_str(NODE_JSON).unwrap();
        trim_node(&mut node);
        assert!(node_ready(&node));
        assert_eq!(node.metadata.labels.as_ref().unwrap()["zone"], "z1");
        assert_eq!(
            node.status
                .as_ref()
                .unwrap()
                .conditions
                .as_ref()
                .unwrap()
                .len(),
            1
        );
        assert!(node.metadata.annotations.is_none());
        assert_eq!(node.object_ref(&()).kind.as_deref(), Some("Node"));
        assert_eq!(SlimNode::url_path(&(), None), "/api/v1/nodes");
    }

    #[test]
    fn empty_objects_deserialize() {
        let s: SlimService = serde_json::from_str("{}").unwrap();
        assert!(s.spec.is_none());
        // The API sends `endpoints: null` for a slice without endpoints.
        let e: SlimEndpointSlice = serde_json::from_str(r#"{"endpoints": null}"#).unwrap();
        assert!(e.endpoints.is_empty());
        // An endpoint whose addresses are empty or null has none.
        let e: SlimEndpointSlice = serde_json::from_str(
            r#"{"endpoints": [{"addresses": []}, {"addresses": null}, {}, {"addresses": ["203.0.113.1"]}]}"#,
        )
        .unwrap();
        let has: Vec<bool> = e.endpoints.iter().map(|e| e.has_address).collect();
        assert_eq!(has, [false, false, false, true]);
        let n: SlimNode = serde_json::from_str(r#"{"status": {}}"#).unwrap();
        assert!(!node_ready(&n));
    }
}
