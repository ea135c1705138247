//! Reading a Service: whether ferrolb handles it, what it asks for, what its
//! status holds. [`ServiceView`] reads all of it at once, so that the reconcile
//! decides on plain data; the functions below are the readers it is built from.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_core::alloc::{FamilyPolicy, HolderKey, IpFamily, Port, Protocol, Request};
use ferrolb_core::annotations;
use ferrolb_core::service::ServiceKey;

use crate::slim::LbService;

/// Type of the condition ferrolb writes to `status.conditions`.
pub const CONDITION_TYPE: &str = "ferrolb.io/IPAllocated";

/// Why ferrolb leaves a Service alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotHandled {
    /// `spec.type` is not `LoadBalancer`.
    NotLoadBalancer,
    /// `spec.loadBalancerClass` names another implementation.
    OtherClass,
    /// A LoadBalancer of ferrolb's class that is being deleted: the controller
    /// releases its addresses at once rather than when the object is gone
    /// ([`ferrolb_core::service::WhileDeleting::NotOurs`]).
    Deleting,
}

/// Whether ferrolb handles a Service, and what it asks for when it does.
// Views are short-lived (built to decide on or rebuild from, then dropped), so the
// larger variant's size does not last; boxing it would cost an allocation per Service.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handling {
    /// ferrolb's: the allocator's request, or the text naming the bad annotation or
    /// field that kept it from being built ([`to_request`]).
    Handled(Result<Request, String>),
    /// Not ferrolb's, and why.
    NotHandled(NotHandled),
}

/// A Service as the reconcile decides on it, read once from the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// The Service's identity, as the allocator keys it ([`key_text`]).
    pub key: HolderKey,
    /// Whether ferrolb handles it; its request when it does.
    pub handling: Handling,
    /// The IPs in `status.loadBalancer.ingress`, in order, without duplicates or
    /// hostnames ([`ferrolb_core::service::ingress_ips`]).
    pub status_ips: Vec<IpAddr>,
    /// True when the status carries ferrolb's condition ([`CONDITION_TYPE`]), i.e.
    /// ferrolb wrote it.
    pub our_condition: bool,
}

impl ServiceView {
    /// Reads `svc` for a controller of loadBalancerClass `class`. The request is
    /// built only for a Service ferrolb handles: the store holds every Service of the
    /// cluster, and the others never need one.
    pub fn new(svc: &LbService, class: &str) -> Self {
        let handling = match not_handled(svc, class) {
            None => Handling::Handled(to_request(svc)),
            Some(why) => Handling::NotHandled(why),
        };
        Self {
            key: key_text(svc),
            handling,
            status_ips: status_ips(svc),
            our_condition: has_our_condition(svc),
        }
    }

    /// The allocator's key: the Service's key as text (see [`key_text`]).
    pub fn holder_key(&self) -> &str {
        &self.key
    }
}

/// Drops the metadata the controller never reads before a Service is cached (the
/// store holds every Service of the cluster), and the ports and selector of
/// Services that share no IP.
pub fn trim(svc: &mut LbService) {
    let m = &mut svc.metadata;
    m.managed_fields = None;
    m.owner_references = None;
    m.finalizers = None;
    if let Some(a) = m.annotations.as_mut() {
        a.retain(|k, _| {
            annotations::ALL_KEYS
                .iter()
                .copied()
                .flatten()
                .any(|x| x == k)
        });
        if a.is_empty() {
            m.annotations = None;
        }
    }
    if m.labels.as_ref().is_some_and(BTreeMap::is_empty) {
        m.labels = None;
    }
    // Ports and the pod selector matter only to IP sharing (port conflicts, equal
    // selectors under the Local policy): a Service without a sharing key never needs
    // them, and a selector alone costs about half a kilobyte.
    let shares = m.annotations.as_ref().is_some_and(|a| {
        annotations::ALLOW_SHARED_IP_KEYS
            .iter()
            .any(|k| a.contains_key(*k))
    });
    if !shares {
        svc.spec.selector = None;
        svc.spec.ports = Vec::new();
    }
    svc.spec.ports.shrink_to_fit();
    svc.spec.ip_families.shrink_to_fit();
    svc.status.ingress.shrink_to_fit();
    svc.status.conditions.shrink_to_fit();
}

/// The Service's identity. The allocator keys it by its text form, `namespace/name`
/// ([`ServiceKey`]'s `Display`): that is where a key becomes a string, at each call
/// into the allocator, and where one is read back ([`std::str::FromStr`]).
pub fn key(svc: &LbService) -> ServiceKey {
    let (namespace, name) = key_parts(svc);
    ServiceKey::new(namespace, name)
}

/// The Service's namespace and name, borrowed.
pub fn key_parts(svc: &LbService) -> (&str, &str) {
    (
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// The text form of [`key`], `namespace/name`, built in one allocation
/// ([`ferrolb_core::service::key_text`]).
pub fn key_text(svc: &LbService) -> HolderKey {
    let (namespace, name) = key_parts(svc);
    ferrolb_core::service::key_text(namespace, name)
}

/// `None` when ferrolb is responsible for the Service (type LoadBalancer, a
/// loadBalancerClass that is unset or `class`, not being deleted), else why not.
/// [`ferrolb_core::service::is_ours`] decides; the reason only names which part failed.
fn not_handled(svc: &LbService, class: &str) -> Option<NotHandled> {
    let type_ = svc.spec.type_.as_deref();
    let lb_class = svc.spec.load_balancer_class.as_deref();
    let deleting = svc.metadata.deletion_timestamp.is_some();
    let ours = ferrolb_core::service::is_ours(
        type_,
        lb_class,
        class,
        deleting,
        ferrolb_core::service::WhileDeleting::NotOurs,
    );
    if ours {
        None
    } else if type_ != Some("LoadBalancer") {
        Some(NotHandled::NotLoadBalancer)
    } else if lb_class.is_some_and(|c| c != class) {
        Some(NotHandled::OtherClass)
    } else {
        Some(NotHandled::Deleting)
    }
}

/// The IPs in `status.loadBalancer.ingress` ([`ferrolb_core::service::ingress_ips`]).
fn status_ips(svc: &LbService) -> Vec<IpAddr> {
    ferrolb_core::service::ingress_ips(svc.status.ingress.iter().map(|i| i.ip.as_deref()))
}

/// True when the Service carries ferrolb's condition, i.e. ferrolb wrote its status.
fn has_our_condition(svc: &LbService) -> bool {
    svc.status
        .conditions
        .iter()
        .any(|c| c.type_ == CONDITION_TYPE)
}

/// The creation time as a sortable number (seconds since the epoch; 0 when unset).
fn created(svc: &LbService) -> i64 {
    svc.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(0)
}

/// Builds the allocator's request from the Service's spec, labels and annotations.
/// Fails with a message naming the bad annotation or field.
pub fn to_request(svc: &LbService) -> Result<Request, String> {
    let spec = &svc.spec;
    let empty = BTreeMap::new();
    let ann = annotations::parse_annotations(svc.metadata.annotations.as_ref().unwrap_or(&empty))
        .map_err(|e| e.to_string())?;

    let mut families = Vec::new();
    for (i, f) in spec.ip_families.iter().enumerate() {
        families.push(match f.as_ref() {
            "IPv4" => IpFamily::V4,
            "IPv6" => IpFamily::V6,
            other => return Err(format!("spec.ipFamilies[{i}]: unknown IP family {other:?}")),
        });
    }
    let family_policy = match spec.ip_family_policy.as_deref() {
        None | Some("SingleStack") => FamilyPolicy::SingleStack,
        Some("PreferDualStack") => FamilyPolicy::PreferDualStack,
        Some("RequireDualStack") => FamilyPolicy::RequireDualStack,
        Some(other) => return Err(format!("spec.ipFamilyPolicy: unknown policy {other:?}")),
    };

    let requested_ips = ann
        .requested_ips(spec.load_balancer_ip.as_deref())
        .map_err(|e| e.to_string())?;

    let namespace = svc.metadata.namespace.clone().unwrap_or_default();
    let sharing_key = ann.sharing_key(&namespace);
    let shares = sharing_key.is_some();
    let mut ports = Vec::new();
    // Ports and selector matter only to IP sharing; without a sharing key the
    // allocator need not hold them (see `trim`).
    if shares {
        for p in &spec.ports {
            let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                other => return Err(format!("spec.ports: unknown protocol {other:?}")),
            };
            let port = u16::try_from(p.port)
                .map_err(|_| format!("spec.ports: port {} out of range", p.port))?;
            ports.push(Port { protocol, port });
        }
    }

    Ok(Request {
        key: key_text(svc),
        namespace,
        labels: svc.metadata.labels.clone().unwrap_or_default(),
        families,
        family_policy,
        requested_ips,
        requested_pool: ann.address_pool,
        sharing_key,
        ports,
        local_traffic_policy: spec.external_traffic_policy.as_deref() == Some("Local"),
        selector: if shares {
            spec.selector.clone().unwrap_or_default()
        } else {
            BTreeMap::new()
        },
        created: created(svc),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASS: &str = "ferrolb.io/lb";

    fn view(svc: serde_json::Value) -> ServiceView {
        ServiceView::new(&serde_json::from_value::<LbService>(svc).unwrap(), CLASS)
    }

    #[test]
    fn the_view_says_whether_and_why_a_service_is_handled() {
        let meta = serde_json::json!({"name": "web", "namespace": "prod"});
        let deleting = serde_json::json!({"name": "web", "namespace": "prod",
            "deletionTimestamp": "2026-01-01T00:00:00Z", "finalizers": ["example.com/hold"]});
        let cases = [
            (
                meta.clone(),
                serde_json::json!({"type": "LoadBalancer"}),
                None,
            ),
            (
                meta.clone(),
                serde_json::json!({"type": "LoadBalancer", "loadBalancerClass": CLASS}),
                None,
            ),
            (
                meta.clone(),
                serde_json::json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb"}),
                Some(NotHandled::OtherClass),
            ),
            (
                meta.clone(),
                serde_json::json!({"type": "ClusterIP"}),
                Some(NotHandled::NotLoadBalancer),
            ),
            (
                meta,
                serde_json::json!({}),
                Some(NotHandled::NotLoadBalancer),
            ),
            (
                deleting.clone(),
                serde_json::json!({"type": "LoadBalancer"}),
                Some(NotHandled::Deleting),
            ),
            (
                deleting,
                serde_json::json!({"type": "NodePort"}),
                Some(NotHandled::NotLoadBalancer),
            ),
        ];
        for (metadata, spec, why) in cases {
            let v = view(serde_json::json!({"metadata": metadata, "spec": spec}));
            assert_eq!(v.key, ServiceKey::new("prod", "web").to_string());
            match (why, &v.handling) {
                (None, Handling::Handled(Ok(req))) => assert_eq!(req.key, "prod/web"),
                (Some(why), Handling::NotHandled(got)) => assert_eq!(*got, why, "{spec}"),
                (_, got) => panic!("{spec}: expected {why:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn the_view_holds_the_request_error_and_the_status_as_read() {
        let v = view(serde_json::json!({
            "metadata": {"name": "web", "namespace": "prod",
                "annotations": {"ferrolb.io/loadBalancerIPs": "not-an-ip"}},
            "spec": {"type": "LoadBalancer"},
            "status": {
                "loadBalancer": {"ingress": [{"ip": "192.0.2.7"}, {"hostname": "lb.example.org"},
                    {"ip": " 192.0.2.7 "}, {"ip": "2001:db8::7"}]},
                "conditions": [{"type": "example.com/Other", "status": "True", "reason": "X",
                    "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
            }
        }));
        let Handling::Handled(Err(e)) = &v.handling else {
            panic!("expected the request's error, got {:?}", v.handling);
        };
        assert!(e.contains("not-an-ip"), "{e}");
        assert_eq!(
            v.status_ips,
            [
                "192.0.2.7".parse::<IpAddr>().unwrap(),
                "2001:db8::7".parse().unwrap()
            ]
        );
        assert!(
            !v.our_condition,
            "another controller's condition is not ferrolb's"
        );
    }

    #[test]
    fn trim_keeps_everything_a_request_needs() {
        let mut svc: LbService = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "prod", "labels": {"tier": "edge"},
                "annotations": {"metallb.universe.tf/address-pool": "dmz", "kubectl.kubernetes.io/last-applied-configuration": "{...}"},
                "managedFields": [{"manager": "kubectl"}]},
            "spec": {"type": "LoadBalancer", "clusterIP": "198.51.100.7", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "loadBalancerIP": "192.0.2.9", "externalTrafficPolicy": "Local", "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 30080}]}
        }))
        .unwrap();
        let before = to_request(&svc).unwrap();
        trim(&mut svc);
        assert_eq!(to_request(&svc).unwrap(), before);
        assert!(svc.metadata.managed_fields.is_none());
        assert_eq!(svc.metadata.annotations.as_ref().unwrap().len(), 1);
        assert!(
            svc.spec.selector.is_none(),
            "no sharing key: no selector kept"
        );
    }

    #[test]
    fn a_sharing_service_keeps_its_ports_and_selector() {
        let mut svc: LbService = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "dns-udp", "namespace": "prod",
                "annotations": {"ferrolb.io/allow-shared-ip": "dns"}},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": {"app": "dns"},
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353}]}
        }))
        .unwrap();
        let before = to_request(&svc).unwrap();
        assert_eq!(
            before.ports,
            vec![Port {
                protocol: Protocol::Udp,
                port: 53
            }]
        );
        assert_eq!(before.selector.get("app").map(String::as_str), Some("dns"));
        trim(&mut svc);
        assert_eq!(to_request(&svc).unwrap(), before);
    }

    #[test]
    fn cilium_sharing_annotations_survive_trim_and_scope_the_key() {
        let mut svc: LbService = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "dns", "namespace": "prod",
                "annotations": {"lbipam.cilium.io/sharing-key": "dns",
                    "lbipam.cilium.io/sharing-cross-namespace": "dev",
                    "lbipam.cilium.io/ips": "192.0.2.53"}},
            "spec": {"type": "LoadBalancer", "selector": {"app": "dns"},
                "ports": [{"port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        let before = to_request(&svc).unwrap();
        assert_eq!(
            before.sharing_key.as_deref(),
            Some("dns/namespaces=dev,prod")
        );
        assert_eq!(
            before.requested_ips,
            vec!["192.0.2.53".parse::<IpAddr>().unwrap()]
        );
        trim(&mut svc);
        assert_eq!(svc.metadata.annotations.as_ref().unwrap().len(), 3);
        assert_eq!(to_request(&svc).unwrap(), before);
    }
}
