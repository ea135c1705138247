//! Translation of the cached Kubernetes objects ([`crate::slim`]) into the election's
//! plain inputs ([`ferrolb_core::election`]). Pure functions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ferrolb_config::{Announcement, Config, InterfaceRule};
use ferrolb_core::election::{NodeRule, ServiceFacts, TrafficPolicy};
use ferrolb_core::service::ServiceKey;

use crate::slim::{SlimEndpointSlice as EndpointSlice, SlimNode as Node, SlimService as Service};

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Ready endpoints of one Service, gathered from all its EndpointSlices. Borrows the
/// node names from the cached slices: the index is rebuilt on every election, and
/// copying a name per Service each time was most of an election's allocations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadyEndpoints<'a> {
    /// Nodes hosting at least one ready endpoint, each once.
    pub nodes: Vec<&'a str>,
    /// At least one ready endpoint exists (with or without a node name).
    pub any: bool,
}

/// Ready endpoints per Service (namespace, name), built once per election from every
/// EndpointSlice.
#[derive(Debug, Clone, Default)]
pub struct SliceIndex<'a> {
    by_service: HashMap<(&'a str, &'a str), ReadyEndpoints<'a>>,
}

impl<'a> SliceIndex<'a> {
    /// Indexes `slices`. An endpoint counts as ready when `conditions.ready` is true or
    /// unset (the API's documented meaning of an unknown state); terminating endpoints
    /// have `ready: false` and so do not count.
    pub fn build(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> Self {
        let mut by_service: HashMap<(&'a str, &'a str), ReadyEndpoints<'a>> = HashMap::new();
        for slice in slices {
            let (Some(ns), Some(svc)) = (slice.metadata.namespace.as_deref(), slice.service_name())
            else {
                continue;
            };
            let entry = by_service.entry((ns, svc)).or_default();
            for ep in &slice.endpoints {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready || !ep.has_address {
                    continue;
                }
                entry.any = true;
                // A Service has endpoints on a handful of nodes: a short scan beats a set.
                if let Some(node) = ep.node_name.as_deref()
                    && !entry.nodes.contains(&node)
                {
                    entry.nodes.push(node);
                }
            }
        }
        Self { by_service }
    }

    /// Ready endpoints of the Service `namespace`/`name` (none when it has no slice).
    pub fn get<'s>(&'s self, namespace: &'s str, name: &'s str) -> Option<&'s ReadyEndpoints<'s>> {
        self.by_service.get(&(namespace, name))
    }
}

/// The key of a Service object (`None` without namespace or name).
pub fn service_key(svc: &Service) -> Option<ServiceKey> {
    Some(ServiceKey::new(
        svc.metadata.namespace.as_deref()?,
        svc.metadata.name.as_deref()?,
    ))
}

/// True when ferrolb's speaker handles `svc`: type LoadBalancer, and class unset or
/// equal to `lb_class`; a Service being deleted is still answered for until it is gone.
pub fn handles(svc: &Service, lb_class: &str) -> bool {
    let Some(spec) = &svc.spec else {
        return false;
    };
    ferrolb_core::service::is_ours(
        spec.type_.as_deref(),
        spec.load_balancer_class.as_deref(),
        lb_class,
        svc.metadata.deletion_timestamp.is_some(),
        ferrolb_core::service::WhileDeleting::StillOurs,
    )
}

/// The IPs in `status.loadBalancer.ingress` ([`ferrolb_core::service::ingress_ips`]).
pub fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    let ingress = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref());
    ferrolb_core::service::ingress_ips(ingress.into_iter().flatten().map(|i| i.ip.as_deref()))
}

/// The election input for `svc`, or `None` when the speaker has nothing to announce
/// for it (not handled, or no IP yet).
pub fn service_facts(svc: &Service, slices: &SliceIndex, lb_class: &str) -> Option<ServiceFacts> {
    if !handles(svc, lb_class) {
        return None;
    }
    let key = service_key(svc)?;
    let ips = ingress_ips(svc);
    if ips.is_empty() {
        return None;
    }
    let traffic_policy = match svc
        .spec
        .as_ref()
        .and_then(|s| s.external_traffic_policy.as_deref())
    {
        Some("Local") => TrafficPolicy::Local,
        _ => TrafficPolicy::Cluster,
    };
    // Only the Local policy reads the nodes (a Cluster Service may be announced from any
    // node), so only there are the names copied.
    let eps = slices.get(&key.namespace, &key.name);
    let has_ready_endpoint = eps.is_some_and(|e| e.any);
    let ready_endpoint_nodes = match (traffic_policy, eps) {
        (TrafficPolicy::Local, Some(eps)) => eps.nodes.iter().map(|n| n.to_string()).collect(),
        _ => BTreeSet::new(),
    };
    Some(ServiceFacts {
        key,
        ips,
        traffic_policy,
        ready_endpoint_nodes,
        has_ready_endpoint,
        node_rules: BTreeMap::new(),
    })
}

/// Applies the pools' announcement policies (`l2.policies` of `config`) to `facts`, the
/// election input of a Service labelled `service_labels`: which nodes may announce each
/// of its IPs, and, into `interfaces`, on which interfaces this node (labelled
/// `my_labels`) answers each. IPs of pools no policy covers keep the default node rule
/// and get the default interfaces; without any policy nothing is added at all.
pub fn apply_policies(
    facts: &mut ServiceFacts,
    service_labels: &BTreeMap<String, String>,
    config: &Config,
    my_labels: &BTreeMap<String, String>,
    interfaces: &mut BTreeMap<IpAddr, InterfaceRule>,
) {
    if config.l2.policies.is_empty() {
        return;
    }
    for ip in &facts.ips {
        let announcement = config.announcement(*ip, service_labels);
        let rule = match &announcement {
            Announcement::Default => {
                // Listed too, so that the data plane's link state covers the default
                // interfaces as one of the groups this node needs.
                interfaces.entry(*ip).or_default().default_choice = true;
                continue;
            }
            Announcement::Refused { pool, policies } => NodeRule::Refused(format!(
                "pool {pool} is announced only for the Services that the serviceSelector of {} {} selects",
                if policies.len() == 1 {
                    "policy"
                } else {
                    "policies"
                },
                policies.join(", ")
            )),
            Announcement::Policies(ps) => {
                let mine = announcement.interfaces_on(my_labels);
                // A shared IP answers wherever any of its Services' policies say.
                let entry = interfaces.entry(*ip).or_default();
                entry.default_choice |= mine.default_choice;
                for m in mine.matchers {
                    if !entry.matchers.contains(&m) {
                        entry.matchers.push(m);
                    }
                }
                NodeRule::Policies(ps.iter().map(|p| p.node_selector.clone()).collect())
            }
        };
        facts.node_rules.insert(*ip, rule);
    }
}

/// True when the Node's `Ready` condition is `True`.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::slim::{
        SlimEndpoint as Endpoint, SlimEndpointConditions as EndpointConditions,
        SlimIngress as LoadBalancerIngress, SlimLoadBalancerStatus as LoadBalancerStatus,
        SlimNodeCondition as NodeCondition, SlimNodeStatus as NodeStatus,
        SlimServiceSpec as ServiceSpec, SlimServiceStatus as ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub fn mk_service(name: &str, ips: &[&str]) -> Service {
        Service {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                ..Default::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        ips.iter()
                            .map(|ip| LoadBalancerIngress {
                                ip: Some(ip.to_string()),
                            })
                            .collect(),
                    ),
                }),
            }),
        }
    }

    pub fn mk_slice(svc: &str, eps: &[(Option<&str>, Option<bool>)]) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                namespace: Some("default".into()),
                name: Some(format!("{svc}-abc")),
                ..Default::default()
            },
            // As cached: `trim_slice` moved the service-name label here.
            service_name: Some(svc.to_string()),
            endpoints: eps
                .iter()
                .map(|(node, ready)| Endpoint {
                    has_address: true,
                    node_name: node.map(str::to_string),
                    conditions: Some(EndpointConditions { ready: *ready }),
                })
                .collect(),
        }
    }

    pub fn mk_node(name: &str, ready: bool) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                }]),
                addresses: None,
            }),
        }
    }

    #[test]
    fn handles_only_load_balancers_of_our_class() {
        let mut s = mk_service("s", &["192.0.2.1"]);
        assert!(handles(&s, "ferrolb.io/lb"));
        s.spec.as_mut().unwrap().load_balancer_class = Some("ferrolb.io/lb".into());
        assert!(handles(&s, "ferrolb.io/lb"));
        s.spec.as_mut().unwrap().load_balancer_class = Some("other.io/lb".into());
        assert!(!handles(&s, "ferrolb.io/lb"));
        let mut s = mk_service("s", &["192.0.2.1"]);
        s.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
        assert!(!handles(&s, "ferrolb.io/lb"));
        assert!(service_facts(&s, &SliceIndex::default(), "ferrolb.io/lb").is_none());
    }

    #[test]
    fn ingress_ips_skip_hostnames_garbage_and_duplicates() {
        let mut s = mk_service("s", &["192.0.2.1", "nope", "2001:db8::1", "192.0.2.1"]);
        s.status
            .as_mut()
            .unwrap()
            .load_balancer
            .as_mut()
            .unwrap()
            .ingress
            .as_mut()
            .unwrap()
            .push(LoadBalancerIngress { ip: None });
        let ips: Vec<String> = ingress_ips(&s).iter().map(|i| i.to_string()).collect();
        assert_eq!(ips, vec!["192.0.2.1", "2001:db8::1"]);
    }

    #[test]
    fn service_without_ip_is_not_an_input() {
        let s = mk_service("s", &[]);
        assert!(service_facts(&s, &SliceIndex::default(), "ferrolb.io/lb").is_none());
    }

    #[test]
    fn slices_give_ready_nodes_and_unknown_ready_counts_as_ready() {
        let slices = [
            mk_slice(
                "s",
                &[
                    (Some("a"), Some(true)),
                    (Some("b"), Some(false)),
                    (Some("c"), None),
                ],
            ),
            mk_slice("s", &[(None, Some(true)), (Some("a"), None)]),
            mk_slice("other", &[(Some("d"), Some(true))]),
        ];
        let idx = SliceIndex::build(slices.iter());
        // Each node once, even when several slices name it.
        assert_eq!(idx.get("default", "s").unwrap().nodes, ["a", "c"]);
        // Cluster policy: any ready endpoint counts, the nodes are not read.
        let f = service_facts(&mk_service("s", &["192.0.2.1"]), &idx, "ferrolb.io/lb").unwrap();
        assert_eq!(f.traffic_policy, TrafficPolicy::Cluster);
        assert!(f.has_ready_endpoint);
        assert!(f.ready_endpoint_nodes.is_empty());
        let mut svc = mk_service("s", &["192.0.2.1"]);
        svc.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
        let f = service_facts(&svc, &idx, "ferrolb.io/lb").unwrap();
        assert_eq!(f.traffic_policy, TrafficPolicy::Local);
        assert_eq!(
            f.ready_endpoint_nodes,
            ["a".to_string(), "c".to_string()].into()
        );
        assert!(f.has_ready_endpoint);
    }

    #[test]
    fn service_with_only_unready_endpoints_has_none() {
        let slices = [mk_slice("s", &[(Some("a"), Some(false))])];
        let idx = SliceIndex::build(slices.iter());
        let f = service_facts(&mk_service("s", &["192.0.2.1"]), &idx, "ferrolb.io/lb").unwrap();
        assert!(!f.has_ready_endpoint);
        assert_eq!(f.traffic_policy, TrafficPolicy::Cluster);
        let f = service_facts(
            &mk_service("s", &["192.0.2.1"]),
            &SliceIndex::default(),
            "ferrolb.io/lb",
        )
        .unwrap();
        assert!(!f.has_ready_endpoint);
    }

    #[test]
    fn node_readiness_reads_the_ready_condition() {
        assert!(node_ready(&mk_node("a", true)));
        assert!(!node_ready(&mk_node("a", false)));
        let mut n = mk_node("a", true);
        n.status = None;
        assert!(!node_ready(&n));
    }

    #[test]
    fn pool_policies_become_node_rules_and_this_nodes_interfaces() {
        let config = ferrolb_config::parse_configmap_data(
            &[(
                "config.yaml".to_string(),
                r#"
pools:
  - {name: lan, addresses: ["198.51.100.0/28"]}
  - {name: vlan20, addresses: ["192.0.2.0/28"]}
  - {name: gated, addresses: ["203.0.113.0/28"]}
l2:
  policies:
    - name: vlan20
      pools: [vlan20]
      interfaces: ["eth0.20"]
      nodeSelector: {matchLabels: {vlan20: "yes"}}
    - name: gated
      pools: [gated]
      serviceSelector: {matchLabels: {tier: edge}}
"#
                .to_string(),
            )]
            .into(),
        );
        let config = config.expect("a configuration with l2.policies").config;
        let svc = mk_service("s", &["198.51.100.1", "192.0.2.1", "203.0.113.1"]);
        let mut facts = service_facts(&svc, &SliceIndex::default(), "ferrolb.io/lb").unwrap();
        let mine: BTreeMap<String, String> = [("vlan20".to_string(), "yes".to_string())].into();
        let mut interfaces = BTreeMap::new();
        apply_policies(
            &mut facts,
            &BTreeMap::new(),
            &config,
            &mine,
            &mut interfaces,
        );
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(
            !facts.node_rules.contains_key(&ip("198.51.100.1")),
            "uncovered pool"
        );
        assert_eq!(
            interfaces[&ip("198.51.100.1")],
            InterfaceRule {
                default_choice: true,
                matchers: vec![]
            }
        );
        assert!(
            matches!(&facts.node_rules[&ip("192.0.2.1")], NodeRule::Policies(s) if s.len() == 1)
        );
        assert_eq!(
            facts.node_rules[&ip("203.0.113.1")],
            NodeRule::Refused(
                "pool gated is announced only for the Services that the serviceSelector of policy gated selects".into()
            )
        );
        assert_eq!(interfaces.len(), 2, "every IP but the refused one");
        let rule = &interfaces[&ip("192.0.2.1")];
        assert!(rule.takes("eth0.20", false) && !rule.takes("eth0", true));
        // On a node the VLAN policy does not select, no interface is taken for it.
        let mut elsewhere = BTreeMap::new();
        let mut facts = service_facts(&svc, &SliceIndex::default(), "ferrolb.io/lb").unwrap();
        apply_policies(
            &mut facts,
            &BTreeMap::new(),
            &config,
            &BTreeMap::new(),
            &mut elsewhere,
        );
        assert!(elsewhere[&ip("192.0.2.1")].is_empty());
    }
}
