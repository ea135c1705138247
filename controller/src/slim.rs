//! The controller's cached Service: the fields it reads, in compact form.
//!
//! The controller keeps every Service of the cluster in its reflector store, so
//! the size of one cached Service is most of its memory. The Service watch
//! deserializes straight into [`LbService`]: serde skips every field the
//! controller never reads (cluster IPs, node ports, session affinity, source
//! ranges, ...), the enum-like strings (`LoadBalancer`, `IPv4`, `TCP`, `VIP`,
//! `True`, ...) are shared static strings instead of one heap string each, and
//! the status holds its ingress entries and conditions in compact types that
//! convert losslessly back to the API's types when the status is written.
//! [`crate::service::trim`] then drops the metadata nobody reads.
//!
//! [`LbService`] implements [`kube::Resource`] for `v1` Services, so `Api`,
//! `watcher`, the reflector and the `Controller` work with it as with the
//! k8s-openapi type.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{LoadBalancerIngress, PortStatus, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use serde::{Deserialize, Deserializer};

/// A string that is one of a few well-known values (shared, no allocation) or any other.
pub type Name = Cow<'static, str>;

/// Values that many Services repeat; each is stored once, in the binary.
const KNOWN: &[&str] = &[
    "LoadBalancer",
    "ClusterIP",
    "NodePort",
    "ExternalName",
    "SingleStack",
    "PreferDualStack",
    "RequireDualStack",
    "Cluster",
    "Local",
    "IPv4",
    "IPv6",
    "TCP",
    "UDP",
    "SCTP",
    "VIP",
    "Proxy",
    "True",
    "False",
    "Unknown",
    "Allocated",
    crate::service::CONDITION_TYPE,
];

fn intern(s: String) -> Name {
    match KNOWN.iter().find(|k| **k == s) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(s),
    }
}

fn name<'de, D: Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
    String::deserialize(d).map(intern)
}

fn opt_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Name>, D::Error> {
    Option::<String>::deserialize(d).map(|o| o.map(intern))
}

fn names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Name>, D::Error> {
    Option::<Vec<String>>::deserialize(d)
        .map(|o| o.unwrap_or_default().into_iter().map(intern).collect())
}

/// `null` (which the API sends for some empty fields) read as the default.
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A `v1` Service as the controller caches it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct LbService {
    /// Name, namespace, labels, ferrolb's annotations, resourceVersion,
    /// generation, creation and deletion times (after [`crate::service::trim`]).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The spec fields the controller reads.
    #[serde(default, deserialize_with = "null_as_default")]
    pub spec: LbSpec,
    /// The status fields the controller reads and writes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub status: LbStatus,
}

/// `spec` of an [`LbService`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LbSpec {
    /// `spec.type`.
    #[serde(rename = "type", default, deserialize_with = "opt_name")]
    pub type_: Option<Name>,
    /// `spec.loadBalancerClass`.
    #[serde(default, deserialize_with = "opt_name")]
    pub load_balancer_class: Option<Name>,
    /// `spec.ipFamilies`.
    #[serde(default, deserialize_with = "names")]
    pub ip_families: Vec<Name>,
    /// `spec.ipFamilyPolicy`.
    #[serde(default, deserialize_with = "opt_name")]
    pub ip_family_policy: Option<Name>,
    /// `spec.loadBalancerIP` (deprecated upstream, still honoured).
    #[serde(rename = "loadBalancerIP", default)]
    pub load_balancer_ip: Option<Box<str>>,
    /// `spec.externalTrafficPolicy`.
    #[serde(default, deserialize_with = "opt_name")]
    pub external_traffic_policy: Option<Name>,
    /// `spec.ports` (port and protocol only; kept only for Services that share an IP).
    #[serde(default, deserialize_with = "null_as_default")]
    pub ports: Vec<LbPort>,
    /// `spec.selector` (kept only for Services that share an IP).
    #[serde(default)]
    pub selector: Option<BTreeMap<String, String>>,
}

/// One of `spec.ports`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LbPort {
    /// `port`.
    #[serde(default)]
    pub port: i32,
    /// `protocol` (TCP when unset).
    #[serde(default, deserialize_with = "opt_name")]
    pub protocol: Option<Name>,
}

/// `status` of an [`LbService`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LbStatus {
    /// `status.loadBalancer.ingress`.
    #[serde(rename = "loadBalancer", default, deserialize_with = "ingress_of")]
    pub ingress: Vec<Ingress>,
    /// `status.conditions`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub conditions: Vec<Cond>,
}

/// `status.loadBalancer`, only to reach its `ingress`.
#[derive(Deserialize, Default)]
struct LoadBalancer {
    #[serde(default, deserialize_with = "null_as_default")]
    ingress: Vec<Ingress>,
}

fn ingress_of<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Ingress>, D::Error> {
    Option::<LoadBalancer>::deserialize(d).map(|lb| lb.unwrap_or_default().ingress)
}

/// One `status.loadBalancer.ingress` entry (every field, so that entries written by
/// others are written back as they were).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ingress {
    /// `ip`.
    #[serde(default)]
    pub ip: Option<Box<str>>,
    /// `ipMode`.
    #[serde(default, deserialize_with = "opt_name")]
    pub ip_mode: Option<Name>,
    /// `hostname`.
    #[serde(default)]
    pub hostname: Option<Box<str>>,
    /// `ports`.
    #[serde(default)]
    pub ports: Option<Vec<PortStatus>>,
}

/// One of `status.conditions` (every field of the API's Condition).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cond {
    /// `type`.
    #[serde(rename = "type", default, deserialize_with = "name")]
    pub type_: Name,
    /// `status` (True, False, Unknown).
    #[serde(default, deserialize_with = "name")]
    pub status: Name,
    /// `reason`.
    #[serde(default, deserialize_with = "name")]
    pub reason: Name,
    /// `message`.
    #[serde(default)]
    pub message: Box<str>,
    /// `observedGeneration`.
    #[serde(default)]
    pub observed_generation: Option<i64>,
    /// `lastTransitionTime` (required by the API; tolerated when missing).
    #[serde(default)]
    pub last_transition_time: Option<Time>,
}

impl From<&Ingress> for LoadBalancerIngress {
    fn from(i: &Ingress) -> Self {
        LoadBalancerIngress {
            ip: i.ip.as_deref().map(str::to_owned),
            ip_mode: i.ip_mode.as_deref().map(str::to_owned),
            hostname: i.hostname.as_deref().map(str::to_owned),
            ports: i.ports.clone(),
        }
    }
}

impl From<&Cond> for Condition {
    fn from(c: &Cond) -> Self {
        Condition {
            type_: c.type_.to_string(),
            status: c.status.to_string(),
            reason: c.reason.to_string(),
            message: c.message.to_string(),
            observed_generation: c.observed_generation,
            last_transition_time: c
                .last_transition_time
                .clone()
                .unwrap_or(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
        }
    }
}

impl LbService {
    /// The cached form of a full Service (as the watch would have decoded it).
    pub fn from_service(svc: &Service) -> Result<Self, serde_json::Error> {
        serde_json::to_value(svc).and_then(serde_json::from_value)
    }
}

impl kube::Resource for LbService {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;
    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Service")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("services")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "prod", "resourceVersion": "7", "generation": 2,
                "labels": {"tier": "edge"}, "annotations": {"ferrolb.io/address-pool": "dmz"},
                "creationTimestamp": "2026-01-02T03:04:05Z"},
            "spec": {"type": "LoadBalancer", "clusterIP": "198.51.100.7", "clusterIPs": ["198.51.100.7"],
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "loadBalancerIP": "192.0.2.9",
                "externalTrafficPolicy": "Local", "loadBalancerClass": "ferrolb.io/lb",
                "selector": {"app": "web"}, "sessionAffinity": "None",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}]},
            "status": {
                "loadBalancer": {"ingress": [
                    {"ip": "192.0.2.9", "ipMode": "VIP"},
                    {"hostname": "lb.example.com", "ports": [{"port": 80, "protocol": "TCP"}]}]},
                "conditions": [{"type": "ferrolb.io/IPAllocated", "status": "True", "reason": "Allocated",
                    "message": "allocated 192.0.2.9 from pool dmz", "observedGeneration": 2,
                    "lastTransitionTime": "2026-01-02T03:04:06Z"}]}
        })
    }

    #[test]
    fn reads_what_the_controller_needs_and_shares_known_strings() {
        let s: LbService = serde_json::from_value(full()).unwrap();
        assert_eq!(s.metadata.name.as_deref(), Some("web"));
        assert_eq!(s.spec.type_.as_deref(), Some("LoadBalancer"));
        assert!(matches!(s.spec.type_, Some(Cow::Borrowed(_))), "interned");
        assert!(matches!(s.spec.ip_families[0], Cow::Borrowed("IPv4")));
        assert_eq!(s.spec.load_balancer_ip.as_deref(), Some("192.0.2.9"));
        assert_eq!(s.spec.load_balancer_class.as_deref(), Some("ferrolb.io/lb"));
        assert_eq!(
            s.spec.ports,
            vec![LbPort {
                port: 80,
                protocol: Some(Cow::Borrowed("TCP"))
            }]
        );
        assert_eq!(s.status.ingress.len(), 2);
        assert_eq!(s.status.conditions[0].reason, "Allocated");
    }

    #[test]
    fn status_converts_back_without_loss() {
        let v = full();
        let s: LbService = serde_json::from_value(v.clone()).unwrap();
        let ingress: Vec<LoadBalancerIngress> = s.status.ingress.iter().map(Into::into).collect();
        let conditions: Vec<Condition> = s.status.conditions.iter().map(Into::into).collect();
        assert_eq!(
            serde_json::to_value(&ingress).unwrap(),
            v["status"]["loadBalancer"]["ingress"]
        );
        assert_eq!(
            serde_json::to_value(&conditions).unwrap(),
            v["status"]["conditions"]
        );
    }

    #[test]
    fn nulls_and_missing_parts_read_as_empty() {
        let s: LbService = serde_json::from_value(json!({
            "metadata": {"name": "a"}, "spec": {"ports": null, "ipFamilies": null},
            "status": {"loadBalancer": null, "conditions": null}
        }))
        .unwrap();
        assert!(s.spec.ports.is_empty() && s.spec.ip_families.is_empty());
        assert!(s.status.ingress.is_empty() && s.status.conditions.is_empty());
        let s: LbService =
            serde_json::from_value(json!({"metadata": {"name": "a"}, "status": {}})).unwrap();
        assert_eq!(s.spec, LbSpec::default());
    }

    #[test]
    fn a_full_service_converts() {
        let svc: Service = serde_json::from_value(full()).unwrap();
        let s = LbService::from_service(&svc).unwrap();
        assert_eq!(s, serde_json::from_value::<LbService>(full()).unwrap());
    }
}
