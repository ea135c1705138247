//! Reading a Service: whether ferrolb handles it, what it asks for, what its
//! status holds. Pure functions over k8s-openapi types.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_core::alloc::{FamilyPolicy, IpFamily, Port, Protocol, Request};
use ferrolb_core::annotations;
use k8s_openapi::api::core::v1::Service;

/// Type of the condition ferrolb writes to `status.conditions`.
pub const CONDITION_TYPE: &str = "ferrolb.io/IPAllocated";

/// Drops what the controller never reads from a Service before it is cached:
/// the store holds every Service of the cluster, so this is most of the
/// controller's memory.
pub fn trim(svc: &mut Service) {
    let m = &mut svc.metadata;
    m.managed_fields = None;
    m.owner_references = None;
    m.finalizers = None;
    if let Some(a) = m.annotations.as_mut() {
        a.retain(|k, _| {
            let keys = [
                annotations::ADDRESS_POOL_KEYS,
                annotations::ALLOW_SHARED_IP_KEYS,
                annotations::LOAD_BALANCER_IPS_KEYS,
            ];
            keys.iter().flatten().any(|x| x == k)
        });
    }
    // Ports and the pod selector matter only to IP sharing (port conflicts, equal
    // selectors under the Local policy): a Service without a sharing key never needs
    // them, and a selector alone costs about half a kilobyte.
    let shares = m.annotations.as_ref().is_some_and(|a| {
        annotations::ALLOW_SHARED_IP_KEYS
            .iter()
            .any(|k| a.contains_key(*k))
    });
    if let Some(spec) = svc.spec.as_mut() {
        if !shares {
            spec.selector = None;
            spec.ports = None;
        }
        spec.cluster_ip = None;
        spec.cluster_ips = None;
        spec.external_ips = None;
        spec.session_affinity = None;
        spec.session_affinity_config = None;
        spec.internal_traffic_policy = None;
        spec.load_balancer_source_ranges = None;
        spec.traffic_distribution = None;
        for p in spec.ports.iter_mut().flatten() {
            p.name = None;
            p.target_port = None;
            p.app_protocol = None;
        }
    }
}

/// `namespace/name`, the allocator's key for a Service.
pub fn key(svc: &Service) -> String {
    format!(
        "{}/{}",
        svc.metadata.namespace.as_deref().unwrap_or_default(),
        svc.metadata.name.as_deref().unwrap_or_default()
    )
}

/// True when ferrolb is responsible for the Service: type LoadBalancer and a
/// loadBalancerClass that is unset or ours, and not being deleted.
pub fn is_handled(svc: &Service, class: &str) -> bool {
    let Some(spec) = svc.spec.as_ref() else {
        return false;
    };
    spec.type_.as_deref() == Some("LoadBalancer")
        && spec
            .load_balancer_class
            .as_deref()
            .is_none_or(|c| c == class)
        && svc.metadata.deletion_timestamp.is_none()
}

/// The IPs in `status.loadBalancer.ingress`, in order, skipping entries without a valid IP.
pub fn status_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| {
            ing.iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// True when the Service carries ferrolb's condition, i.e. ferrolb wrote its status.
pub fn has_our_condition(svc: &Service) -> bool {
    svc.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == CONDITION_TYPE))
}

/// The creation time as a sortable number (seconds since the epoch; 0 when unset).
pub fn created(svc: &Service) -> i64 {
    svc.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(0)
}

/// Builds the allocator's request from the Service's spec, labels and annotations.
/// Fails with a message naming the bad annotation or field.
pub fn to_request(svc: &Service) -> Result<Request, String> {
    let spec = svc.spec.clone().unwrap_or_default();
    let empty = BTreeMap::new();
    let ann = annotations::parse_annotations(svc.metadata.annotations.as_ref().unwrap_or(&empty))
        .map_err(|e| e.to_string())?;

    let mut families = Vec::new();
    for (i, f) in spec.ip_families.iter().flatten().enumerate() {
        families.push(match f.as_str() {
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

    let mut ports = Vec::new();
    for p in spec.ports.iter().flatten() {
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

    let shares = ann.allow_shared_ip.is_some();
    Ok(Request {
        key: key(svc),
        namespace: svc.metadata.namespace.clone().unwrap_or_default(),
        labels: svc.metadata.labels.clone().unwrap_or_default(),
        families,
        family_policy,
        requested_ips,
        requested_pool: ann.address_pool,
        sharing_key: ann.allow_shared_ip,
        // Ports and selector matter only to IP sharing; without a sharing key the
        // allocator need not hold them (see `trim`).
        ports: if shares { ports } else { Vec::new() },
        local_traffic_policy: spec.external_traffic_policy.as_deref() == Some("Local"),
        selector: if shares {
            spec.selector.unwrap_or_default()
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
        let mut svc: Service = serde_json::from_value(serde_json::json!({
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
        assert!(svc.spec.as_ref().unwrap().cluster_ip.is_none());
        assert!(
            svc.spec.as_ref().unwrap().selector.is_none(),
            "no sharing key: no selector kept"
        );
    }

    #[test]
    fn a_sharing_service_keeps_its_ports_and_selector() {
        let mut svc: Service = serde_json::from_value(serde_json::json!({
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
}
