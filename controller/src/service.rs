//! Reading a Service: whether ferrolb handles it, what it asks for, what its
//! status holds. Pure functions over k8s-openapi types.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_core::alloc::{FamilyPolicy, IpFamily, Port, Protocol, Request};
use ferrolb_core::annotations;
use ferrolb_core::service::ServiceKey;

use crate::slim::LbService;

/// Type of the condition ferrolb writes to `status.conditions`.
pub const CONDITION_TYPE: &str = "ferrolb.io/IPAllocated";

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
    ServiceKey::new(
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// True when ferrolb is responsible for the Service: type LoadBalancer and a
/// loadBalancerClass that is unset or ours, and not being deleted.
pub fn is_handled(svc: &LbService, class: &str) -> bool {
    ferrolb_core::service::is_ours(
        svc.spec.type_.as_deref(),
        svc.spec.load_balancer_class.as_deref(),
        class,
        svc.metadata.deletion_timestamp.is_some(),
        ferrolb_core::service::WhileDeleting::NotOurs,
    )
}

/// The IPs in `status.loadBalancer.ingress` ([`ferrolb_core::service::ingress_ips`]).
pub fn status_ips(svc: &LbService) -> Vec<IpAddr> {
    ferrolb_core::service::ingress_ips(svc.status.ingress.iter().map(|i| i.ip.as_deref()))
}

/// True when the Service carries ferrolb's condition, i.e. ferrolb wrote its status.
pub fn has_our_condition(svc: &LbService) -> bool {
    svc.status
        .conditions
        .iter()
        .any(|c| c.type_ == CONDITION_TYPE)
}

/// The creation time as a sortable number (seconds since the epoch; 0 when unset).
pub fn created(svc: &LbService) -> i64 {
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
        key: key(svc).to_string(),
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
