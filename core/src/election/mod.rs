//! Speaker election: which node announces each Service IP, decided on plain data.
//!
//! Every speaker runs [`elect`] on the same inputs (read from the API server) and so
//! reaches the same answer without talking to its peers: the announcer of an IP is the
//! eligible node that ranks first by *rendezvous hashing* of `(node, IP)` (see
//! [`rendezvous_score`]). Rendezvous hashing spreads IPs evenly over nodes and, when a
//! node leaves, moves only the IPs that node held.
//!
//! Who is alive comes from the speakers' membership on the node network (see
//! `docs/membership.md` and [`crate::membership`]): [`liveness`] turns what the
//! membership reports into each node's eligibility, and [`step`] is the speaker's whole
//! election loop as a step function (observations and the clock in, a plan out).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ferrolb_config::LabelSelector;

pub mod handover;
pub mod hash;
pub mod liveness;
pub mod step;

pub use handover::Handover;
pub use hash::{rendezvous_pick, rendezvous_score};

pub use liveness::{Member, NotLive, SelfGuard, SelfMode};
pub use step::{NodeInfo, Observation, Plan, SpeakerStep, StepConfig};

/// The well-known label with which a Node opts out of external load balancers.
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

/// What the election knows about one node that runs (or ran) a speaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    /// The Node's name (= the speaker's identity).
    pub name: String,
    /// The node's speaker is alive in the membership and may announce (see [`liveness`]).
    pub speaker_live: bool,
    /// The Node object exists and its `Ready` condition is `True`.
    pub ready: bool,
    /// The Node's labels.
    pub labels: BTreeMap<String, String>,
    /// The node's announcing data path (interface, link) works.
    pub link_ok: bool,
}

/// A Service's `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficPolicy {
    /// Traffic may land on any node; kube-proxy forwards it to an endpoint anywhere.
    #[default]
    Cluster,
    /// Traffic must land on a node with a local ready endpoint.
    Local,
}

/// The Service identity of the whole crate, here where the election always used it.
pub use crate::service::ServiceKey;

/// What the election knows about one Service that has external IPs to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceFacts {
    /// The Service.
    pub key: ServiceKey,
    /// Its IPs from `status.loadBalancer.ingress`.
    pub ips: Vec<IpAddr>,
    /// Its `externalTrafficPolicy`.
    pub traffic_policy: TrafficPolicy,
    /// Nodes that host at least one ready endpoint of the Service.
    pub ready_endpoint_nodes: BTreeSet<String>,
    /// True when the Service has at least one ready endpoint anywhere (including
    /// endpoints whose node is unknown).
    pub has_ready_endpoint: bool,
    /// Which nodes may announce each IP, from the announcement policies of its pool;
    /// an IP without an entry follows [`NodeRule::Default`].
    pub node_rules: BTreeMap<IpAddr, NodeRule>,
}

/// Which nodes may announce one IP of a Service (the pool's `l2.policies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NodeRule {
    /// No policy covers the IP's pool: [`ElectionPolicy::node_selector`] decides.
    #[default]
    Default,
    /// Policies cover the pool and allow the Service: a node they select (any of these
    /// node selectors; `None` selects every node).
    Policies(Vec<Option<LabelSelector>>),
    /// Policies cover the pool but none allows the Service: nobody announces it. The
    /// text says why, for Events (`pool vlan20: policies a, b select other Services`).
    Refused(String),
}

impl NodeRule {
    /// Why the rule keeps a node labelled `labels` from announcing, if it does.
    fn rejects(
        &self,
        labels: &BTreeMap<String, String>,
        policy: &ElectionPolicy,
    ) -> Option<Ineligible> {
        match self {
            NodeRule::Default => policy
                .node_selector
                .as_ref()
                .is_some_and(|s| !s.matches(labels))
                .then_some(Ineligible::NotSelected),
            NodeRule::Policies(selectors) => (!selectors
                .iter()
                .any(|s| s.as_ref().is_none_or(|s| s.matches(labels))))
            .then_some(Ineligible::NotSelectedByPolicy),
            NodeRule::Refused(_) => Some(Ineligible::NotSelectedByPolicy),
        }
    }
}

/// Cluster-wide settings that narrow the eligible nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElectionPolicy {
    /// `l2.nodeSelector` of the configuration: when set, only matching nodes announce.
    pub node_selector: Option<LabelSelector>,
    /// When true, nodes labelled [`EXCLUDE_LB_LABEL`] may announce anyway (single-node and
    /// control-plane-only clusters).
    pub ignore_exclude_label: bool,
}

// ---------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------

/// Why one node may not announce an IP. Ordered by the order in which they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ineligible {
    /// The node's speaker is not alive in the membership, has no view of the cluster,
    /// is leaving, or is the only one cut off from the API server.
    SpeakerNotLive,
    /// The Node is not Ready (or unknown).
    NodeNotReady,
    /// The Node carries the exclude-from-external-load-balancers label.
    ExcludedByLabel,
    /// The Node does not match `l2.nodeSelector` (pools no policy covers).
    NotSelected,
    /// No `l2.policies` entry covering the IP's pool selects the Node.
    NotSelectedByPolicy,
    /// The node's announcing interface is down.
    LinkDown,
    /// `externalTrafficPolicy: Local` and no ready endpoint on this node.
    NoLocalEndpoint,
    /// The IP is shared by several Services and the node is not eligible for all of them.
    NotEligibleForAllSharers,
}

impl Ineligible {
    fn describe(self) -> &'static str {
        match self {
            Ineligible::SpeakerNotLive => "no live speaker",
            Ineligible::NodeNotReady => "not Ready",
            Ineligible::ExcludedByLabel => "labelled exclude-from-external-load-balancers",
            Ineligible::NotSelected => "not matching l2.nodeSelector",
            Ineligible::NotSelectedByPolicy => "not selected by the l2 policies of the IP's pool",
            Ineligible::LinkDown => "announcing interface down",
            Ineligible::NoLocalEndpoint => "no local ready endpoint (externalTrafficPolicy Local)",
            Ineligible::NotEligibleForAllSharers => "not eligible for every Service sharing the IP",
        }
    }
}

/// Why no node announces an IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoAnnouncer {
    /// No speaker is known at all.
    NoSpeakers,
    /// The Service (one of the Services sharing the IP) has no ready endpoint anywhere.
    NoReadyEndpoint(ServiceKey),
    /// No announcement policy of the IP's pool allows the Service (one of the sharers).
    NotAllowed(ServiceKey, String),
    /// Every known node is ineligible; counts of the first reason found per node.
    NoEligibleNode(BTreeMap<Ineligible, usize>),
}

impl fmt::Display for NoAnnouncer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoAnnouncer::NoSpeakers => write!(f, "no speaker is running"),
            NoAnnouncer::NoReadyEndpoint(k) => write!(f, "Service {k} has no ready endpoint"),
            NoAnnouncer::NotAllowed(k, why) => {
                write!(f, "no l2 policy allows Service {k} ({why})")
            }
            NoAnnouncer::NoEligibleNode(counts) => {
                write!(f, "no eligible node: ")?;
                let mut first = true;
                for (reason, n) in counts {
                    if !first {
                        write!(f, ", ")?;
                    }
                    first = false;
                    let noun = if *n == 1 { "node" } else { "nodes" };
                    write!(f, "{n} {noun} {}", reason.describe())?;
                }
                Ok(())
            }
        }
    }
}

/// The decision for one IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The Services that use the IP (usually one; several when the IP is shared).
    pub services: Vec<ServiceKey>,
    /// The announcing node, or why there is none.
    pub announcer: Result<String, NoAnnouncer>,
}

/// The result of an election: a decision for every Service IP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Election {
    /// Decision per IP.
    pub by_ip: BTreeMap<IpAddr, Assignment>,
}

impl Election {
    /// The IPs that `node` announces.
    pub fn announced_by(&self, node: &str) -> BTreeSet<IpAddr> {
        self.by_ip
            .iter()
            .filter(|(_, a)| a.announcer.as_deref() == Ok(node))
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// The announcer of `ip`, if it has one.
    pub fn announcer_of(&self, ip: IpAddr) -> Option<&str> {
        self.by_ip
            .get(&ip)
            .and_then(|a| a.announcer.as_deref().ok())
    }
}

// ---------------------------------------------------------------------------------------
// The election
// ---------------------------------------------------------------------------------------

/// The node-level reason why `node` may not announce anything, if any. Node selectors
/// are per IP ([`NodeRule`]) and checked in [`decide_ip`].
fn node_ineligibility(node: &NodeFacts, policy: &ElectionPolicy) -> Option<Ineligible> {
    if !node.speaker_live {
        Some(Ineligible::SpeakerNotLive)
    } else if !node.ready {
        Some(Ineligible::NodeNotReady)
    } else if !policy.ignore_exclude_label && node.labels.contains_key(EXCLUDE_LB_LABEL) {
        Some(Ineligible::ExcludedByLabel)
    } else if !node.link_ok {
        Some(Ineligible::LinkDown)
    } else {
        None
    }
}

/// Service-level check of a node that passed the node-level ones.
fn service_allows(svc: &ServiceFacts, node: &str) -> bool {
    match svc.traffic_policy {
        TrafficPolicy::Cluster => true,
        TrafficPolicy::Local => svc.ready_endpoint_nodes.contains(node),
    }
}

/// Decides the announcer of every IP of `services`.
///
/// Deterministic: the same inputs give the same output on every speaker, whatever the
/// order of `nodes` and `services`. An IP used by several Services (shared IP) is
/// announced by a node eligible for all of them. Duplicate node names are ignored after
/// the first.
pub fn elect(nodes: &[NodeFacts], services: &[ServiceFacts], policy: &ElectionPolicy) -> Election {
    // Node-level verdicts once, sorted by name so that iteration order is fixed.
    let mut verdicts: BTreeMap<&str, Verdict> = BTreeMap::new();
    for n in nodes {
        verdicts.entry(n.name.as_str()).or_insert_with(|| Verdict {
            node: n,
            ineligible: node_ineligibility(n, policy),
            default_rule: NodeRule::Default.rejects(&n.labels, policy),
        });
    }
    // The nodes that may announce an IP every Service of which follows the default rule
    // (most IPs): computed once, not per IP.
    let base: Vec<&str> = verdicts
        .iter()
        .filter(|(_, v)| v.ineligible.is_none() && v.default_rule.is_none())
        .map(|(n, _)| *n)
        .collect();

    // Group Services by IP (shared IPs).
    let mut users: BTreeMap<IpAddr, Vec<&ServiceFacts>> = BTreeMap::new();
    for svc in services {
        let mut seen = BTreeSet::new();
        for ip in &svc.ips {
            if seen.insert(*ip) {
                users.entry(*ip).or_default().push(svc);
            }
        }
    }

    let mut by_ip = BTreeMap::new();
    for (ip, mut svcs) in users {
        svcs.sort_by(|a, b| a.key.cmp(&b.key));
        svcs.dedup_by(|a, b| a.key == b.key);
        let keys: Vec<ServiceKey> = svcs.iter().map(|s| s.key.clone()).collect();
        let announcer = decide_ip(ip, &svcs, &verdicts, &base, policy);
        by_ip.insert(
            ip,
            Assignment {
                services: keys,
                announcer,
            },
        );
    }
    Election { by_ip }
}

/// What the election knows of one node before looking at any IP.
struct Verdict<'a> {
    node: &'a NodeFacts,
    /// The node-level reason it may not announce anything.
    ineligible: Option<Ineligible>,
    /// [`NodeRule::Default`]'s verdict, computed once (most IPs follow it).
    default_rule: Option<Ineligible>,
}

impl Verdict<'_> {
    /// The first reason (in [`Ineligible`] order) why the node may not announce `ip` of
    /// `svcs`, before the Services' endpoints are looked at.
    fn for_ip(
        &self,
        ip: IpAddr,
        svcs: &[&ServiceFacts],
        policy: &ElectionPolicy,
    ) -> Option<Ineligible> {
        let by_rule = svcs
            .iter()
            .filter_map(|s| match s.node_rules.get(&ip) {
                None | Some(NodeRule::Default) => self.default_rule,
                Some(rule) => rule.rejects(&self.node.labels, policy),
            })
            .min();
        match (self.ineligible, by_rule) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn decide_ip(
    ip: IpAddr,
    svcs: &[&ServiceFacts],
    verdicts: &BTreeMap<&str, Verdict<'_>>,
    base: &[&str],
    policy: &ElectionPolicy,
) -> Result<String, NoAnnouncer> {
    // Without any pool policy (the common case) no Service has a node rule: skip the
    // per-IP lookups altogether.
    let any_rules = svcs.iter().any(|s| !s.node_rules.is_empty());
    if any_rules
        && let Some((s, why)) = svcs.iter().find_map(|s| match s.node_rules.get(&ip) {
            Some(NodeRule::Refused(why)) => Some((s, why)),
            _ => None,
        })
    {
        return Err(NoAnnouncer::NotAllowed(s.key.clone(), why.clone()));
    }
    if let Some(s) = svcs.iter().find(|s| !s.has_ready_endpoint) {
        return Err(NoAnnouncer::NoReadyEndpoint(s.key.clone()));
    }
    let by_default = !any_rules
        || svcs
            .iter()
            .all(|s| matches!(s.node_rules.get(&ip), None | Some(NodeRule::Default)));
    // Either list of candidates, then the Services' own node limits on each.
    let allowed = |n: &&str| svcs.iter().all(|s| service_allows(s, n));
    let winner = if by_default {
        rendezvous_pick(base.iter().copied().filter(allowed), ip)
    } else {
        let by_rule = verdicts
            .iter()
            .filter(|(_, v)| v.for_ip(ip, svcs, policy).is_none())
            .map(|(n, _)| *n);
        rendezvous_pick(by_rule.filter(allowed), ip)
    };
    if let Some(winner) = winner {
        return Ok(winner.to_owned());
    }
    if verdicts.is_empty() {
        return Err(NoAnnouncer::NoSpeakers);
    }
    // Explain: first failing reason per node.
    let mut counts = BTreeMap::new();
    for (node, verdict) in verdicts {
        let reason = match verdict.for_ip(ip, svcs, policy) {
            Some(r) => r,
            None => {
                let allowed_by_some = svcs.iter().any(|s| service_allows(s, node));
                if svcs.len() > 1 && allowed_by_some {
                    Ineligible::NotEligibleForAllSharers
                } else {
                    Ineligible::NoLocalEndpoint
                }
            }
        };
        *counts.entry(reason).or_insert(0) += 1;
    }
    Err(NoAnnouncer::NoEligibleNode(counts))
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::hash::{FNV_OFFSET, fmix64, fnv1a};
    use super::*;
    use ferrolb_config::SelectorRequirement;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::time::{Duration, Instant};

    fn mk_node(name: &str) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            speaker_live: true,
            ready: true,
            labels: BTreeMap::new(),
            link_ok: true,
        }
    }

    fn mk_nodes(names: &[&str]) -> Vec<NodeFacts> {
        names.iter().map(|n| mk_node(n)).collect()
    }

    fn mk_service(name: &str, ips: &[&str]) -> ServiceFacts {
        ServiceFacts {
            key: ServiceKey::new("default", name),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            traffic_policy: TrafficPolicy::Cluster,
            ready_endpoint_nodes: BTreeSet::new(),
            has_ready_endpoint: true,
            node_rules: Default::default(),
        }
    }

    fn local(mut s: ServiceFacts, endpoint_nodes: &[&str]) -> ServiceFacts {
        s.traffic_policy = TrafficPolicy::Local;
        s.ready_endpoint_nodes = endpoint_nodes.iter().map(|n| n.to_string()).collect();
        s.has_ready_endpoint = !endpoint_nodes.is_empty();
        s
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn v4(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(
            u32::from(Ipv4Addr::new(198, 51, 100, 0)) + i,
        ))
    }

    // -- hash ----------------------------------------------------------------------------

    #[test]
    fn fnv1a_matches_reference_vectors() {
        // Vectors from the FNV reference (draft-eastlake-fnv).
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn fmix64_is_a_bijection_on_samples() {
        let outs: BTreeSet<u64> = (0..10_000u64).map(fmix64).collect();
        assert_eq!(outs.len(), 10_000);
        assert_eq!(fmix64(0), 0);
    }

    /// Pinned values (computed by an independent Python implementation of the documented
    /// definition): if this test fails, the score function changed, which breaks
    /// mixed-version clusters. Do not update the numbers; revert the change.
    #[test]
    fn rendezvous_score_is_pinned() {
        let a = rendezvous_score("node-a", ip("192.0.2.10"));
        let b = rendezvous_score("node-b", ip("192.0.2.10"));
        let c = rendezvous_score("node-a", ip("2001:db8::10"));
        // Recompute from the documented definition, independently of the helpers' order.
        let mut bytes = b"node-a".to_vec();
        bytes.push(0xff);
        bytes.push(4);
        bytes.extend_from_slice(&[192, 0, 2, 10]);
        assert_eq!(a, fmix64(fnv1a(FNV_OFFSET, &bytes)));
        assert_eq!(
            a, 0x6f99_9b8f_4c41_b420,
            "score of node-a/192.0.2.10 changed: {a:#x}"
        );
        assert_eq!(
            b, 0x3ea7_11dd_39cc_a74e,
            "score of node-b/192.0.2.10 changed: {b:#x}"
        );
        assert_eq!(
            c, 0x9206_97e2_1920_a7c9,
            "score of node-a/2001:db8::10 changed: {c:#x}"
        );
    }

    #[test]
    fn score_distinguishes_families_and_names() {
        // ::c000:20a has the same last four octets as 192.0.2.10.
        let v6: IpAddr = IpAddr::V6(Ipv6Addr::from(0xc000_020au128));
        assert_ne!(
            rendezvous_score("n", ip("192.0.2.10")),
            rendezvous_score("n", v6)
        );
        assert_ne!(
            rendezvous_score("n1", ip("192.0.2.10")),
            rendezvous_score("n2", ip("192.0.2.10"))
        );
    }

    #[test]
    fn pick_is_order_independent_and_empty_is_none() {
        let ip = ip("192.0.2.1");
        let a = rendezvous_pick(["x", "y", "z"], ip);
        let b = rendezvous_pick(["z", "x", "y"], ip);
        assert_eq!(a, b);
        assert!(a.is_some());
        assert_eq!(rendezvous_pick(std::iter::empty(), ip), None);
    }

    // -- election ------------------------------------------------------------------------

    #[test]
    fn one_announcer_per_ip_and_it_is_a_known_node() {
        let nodes = mk_nodes(&["a", "b", "c"]);
        let svcs = vec![
            mk_service("s1", &["192.0.2.1"]),
            mk_service("s2", &["192.0.2.2", "2001:db8::2"]),
        ];
        let e = elect(&nodes, &svcs, &ElectionPolicy::default());
        assert_eq!(e.by_ip.len(), 3);
        for a in e.by_ip.values() {
            let n = a.announcer.as_ref().unwrap();
            assert!(["a", "b", "c"].contains(&n.as_str()));
        }
        let total: usize = ["a", "b", "c"]
            .iter()
            .map(|n| e.announced_by(n).len())
            .sum();
        assert_eq!(total, 3);
    }

    #[test]
    fn dead_unready_excluded_unselected_and_link_down_nodes_never_announce() {
        let mut nodes = mk_nodes(&[
            "dead",
            "unready",
            "excluded",
            "unselected",
            "linkdown",
            "ok",
        ]);
        nodes[0].speaker_live = false;
        nodes[1].ready = false;
        nodes[2].labels.insert(EXCLUDE_LB_LABEL.into(), "".into());
        for n in &mut nodes {
            if n.name != "unselected" {
                n.labels.insert("l2".into(), "yes".into());
            }
        }
        nodes[4].link_ok = false;
        let policy = ElectionPolicy {
            node_selector: Some(LabelSelector {
                match_labels: [("l2".to_string(), "yes".to_string())].into(),
                match_expressions: vec![],
            }),
            ignore_exclude_label: false,
        };
        let svcs: Vec<_> = (0..200)
            .map(|i| ServiceFacts {
                ips: vec![v4(i)],
                ..mk_service(&format!("s{i}"), &[])
            })
            .collect();
        let e = elect(&nodes, &svcs, &policy);
        assert_eq!(e.announced_by("ok").len(), 200);
    }

    fn labelled(mut n: NodeFacts, k: &str, v: &str) -> NodeFacts {
        n.labels.insert(k.into(), v.into());
        n
    }

    fn sel(k: &str, v: &str) -> Option<LabelSelector> {
        Some(LabelSelector {
            match_labels: [(k.to_string(), v.to_string())].into(),
            match_expressions: vec![],
        })
    }

    #[test]
    fn pool_policies_choose_the_nodes_per_ip() {
        let nodes = vec![
            labelled(mk_node("a"), "rack", "1"),
            labelled(mk_node("b"), "rack", "2"),
            labelled(mk_node("c"), "kubernetes.io/hostname", "c"),
        ];
        // The cluster-wide selector would allow only c; the policy of the VLAN pool
        // replaces it for that pool's IPs.
        let policy = ElectionPolicy {
            node_selector: sel("kubernetes.io/hostname", "c"),
            ignore_exclude_label: false,
        };
        let mut svcs = Vec::new();
        for i in 0..64 {
            let mut s = mk_service(&format!("s{i}"), &[]);
            s.ips = vec![v4(i), v4(1000 + i)];
            s.node_rules.insert(
                v4(i),
                NodeRule::Policies(vec![sel("rack", "1"), sel("rack", "2")]),
            );
            svcs.push(s);
        }
        let e = elect(&nodes, &svcs, &policy);
        let mut winners = BTreeSet::new();
        for i in 0..64 {
            let w = e.announcer_of(v4(i)).unwrap();
            assert!(w == "a" || w == "b", "{w} is not selected by the policy");
            winners.insert(w);
            assert_eq!(e.announcer_of(v4(1000 + i)), Some("c"), "default rule");
        }
        assert_eq!(winners.len(), 2, "both selected nodes share the pool");

        // Only rack 1 selected and its node not ready: nobody, and the reason says why.
        let mut s = mk_service("only", &["192.0.2.200"]);
        s.node_rules.insert(
            ip("192.0.2.200"),
            NodeRule::Policies(vec![sel("rack", "1")]),
        );
        let mut down = nodes.clone();
        down[0].ready = false;
        let e = elect(&down, &[s.clone()], &policy);
        assert_eq!(
            e.by_ip[&ip("192.0.2.200")].announcer,
            Err(NoAnnouncer::NoEligibleNode(
                [
                    (Ineligible::NodeNotReady, 1),
                    (Ineligible::NotSelectedByPolicy, 2)
                ]
                .into()
            ))
        );
        assert_eq!(
            e.by_ip[&ip("192.0.2.200")]
                .announcer
                .as_ref()
                .unwrap_err()
                .to_string(),
            "no eligible node: 1 node not Ready, 2 nodes not selected by the l2 policies of the IP's pool"
        );
        // A policy without a node selector takes every node.
        s.node_rules
            .insert(ip("192.0.2.200"), NodeRule::Policies(vec![None]));
        assert!(
            elect(&down, &[s], &policy)
                .announcer_of(ip("192.0.2.200"))
                .is_some()
        );
    }

    #[test]
    fn a_policy_selecting_every_node_elects_as_the_default_rule_does() {
        // The default path uses the node list built once; the policy path checks each
        // node per IP: both must give the same winners.
        let mut nodes = mk_nodes(&["a", "b", "c", "d", "e"]);
        nodes[1].ready = false;
        nodes[3].labels.insert(EXCLUDE_LB_LABEL.into(), "".into());
        let plain: Vec<ServiceFacts> = (0..300)
            .map(|i| ServiceFacts {
                ips: vec![v4(i)],
                ..mk_service(&format!("s{i}"), &[])
            })
            .collect();
        let with_rules: Vec<ServiceFacts> = plain
            .iter()
            .cloned()
            .map(|mut s| {
                s.node_rules
                    .insert(s.ips[0], NodeRule::Policies(vec![None]));
                s
            })
            .collect();
        let policy = ElectionPolicy::default();
        let a = elect(&nodes, &plain, &policy);
        let b = elect(&nodes, &with_rules, &policy);
        assert_eq!(a, b);
        assert!(a.by_ip.values().all(|x| x.announcer.is_ok()));
    }

    #[test]
    fn refused_ips_are_never_announced_and_say_why() {
        let nodes = mk_nodes(&["a", "b"]);
        let mut s = mk_service("gated", &["192.0.2.9"]);
        s.node_rules.insert(
            ip("192.0.2.9"),
            NodeRule::Refused("pool p is announced only for tier=edge".into()),
        );
        // A sharer that is allowed does not make the IP announceable.
        let mut sharer = mk_service("open", &["192.0.2.9"]);
        sharer
            .node_rules
            .insert(ip("192.0.2.9"), NodeRule::Policies(vec![None]));
        let e = elect(&nodes, &[s, sharer], &ElectionPolicy::default());
        let why = e.by_ip[&ip("192.0.2.9")].announcer.clone().unwrap_err();
        assert_eq!(
            why,
            NoAnnouncer::NotAllowed(
                ServiceKey::new("default", "gated"),
                "pool p is announced only for tier=edge".into()
            )
        );
        assert_eq!(
            why.to_string(),
            "no l2 policy allows Service default/gated (pool p is announced only for tier=edge)"
        );
    }

    #[test]
    fn a_shared_ip_needs_a_node_every_sharers_policies_select() {
        let nodes = vec![
            labelled(labelled(mk_node("both"), "x", "1"), "y", "1"),
            labelled(mk_node("x-only"), "x", "1"),
            labelled(mk_node("y-only"), "y", "1"),
        ];
        let mut s1 = mk_service("s1", &["192.0.2.50"]);
        s1.node_rules
            .insert(ip("192.0.2.50"), NodeRule::Policies(vec![sel("x", "1")]));
        let mut s2 = mk_service("s2", &["192.0.2.50"]);
        s2.node_rules
            .insert(ip("192.0.2.50"), NodeRule::Policies(vec![sel("y", "1")]));
        let e = elect(&nodes, &[s1, s2], &ElectionPolicy::default());
        assert_eq!(e.announcer_of(ip("192.0.2.50")), Some("both"));
    }

    #[test]
    fn ignore_exclude_label_flag_makes_excluded_node_eligible() {
        let mut nodes = mk_nodes(&["cp"]);
        nodes[0]
            .labels
            .insert(EXCLUDE_LB_LABEL.into(), "true".into());
        let svcs = vec![mk_service("s", &["192.0.2.1"])];
        let e = elect(&nodes, &svcs, &ElectionPolicy::default());
        assert_eq!(
            e.by_ip[&ip("192.0.2.1")].announcer,
            Err(NoAnnouncer::NoEligibleNode(
                [(Ineligible::ExcludedByLabel, 1)].into()
            ))
        );
        let e = elect(
            &nodes,
            &svcs,
            &ElectionPolicy {
                ignore_exclude_label: true,
                ..Default::default()
            },
        );
        assert_eq!(e.announcer_of(ip("192.0.2.1")), Some("cp"));
    }

    #[test]
    fn node_selector_expressions_apply() {
        let mut nodes = mk_nodes(&["a", "b"]);
        nodes[0].labels.insert("zone".into(), "z1".into());
        nodes[1].labels.insert("zone".into(), "z2".into());
        let policy = ElectionPolicy {
            node_selector: Some(LabelSelector {
                match_labels: BTreeMap::new(),
                match_expressions: vec![SelectorRequirement::In("zone".into(), vec!["z2".into()])],
            }),
            ignore_exclude_label: false,
        };
        let svcs: Vec<_> = (0..50)
            .map(|i| ServiceFacts {
                ips: vec![v4(i)],
                ..mk_service(&format!("s{i}"), &[])
            })
            .collect();
        let e = elect(&nodes, &svcs, &policy);
        assert_eq!(e.announced_by("b").len(), 50);
        assert!(e.announced_by("a").is_empty());
    }

    #[test]
    fn local_policy_picks_only_nodes_with_ready_endpoints() {
        let nodes = mk_nodes(&["a", "b", "c", "d"]);
        let svcs: Vec<_> = (0..100)
            .map(|i| {
                local(
                    ServiceFacts {
                        ips: vec![v4(i)],
                        ..mk_service(&format!("s{i}"), &[])
                    },
                    &["b", "d"],
                )
            })
            .collect();
        let e = elect(&nodes, &svcs, &ElectionPolicy::default());
        let on_b = e.announced_by("b").len();
        let on_d = e.announced_by("d").len();
        assert_eq!(on_b + on_d, 100);
        assert!(on_b > 20 && on_d > 20, "b={on_b} d={on_d}");
    }

    #[test]
    fn local_policy_without_local_endpoint_on_live_nodes_explains() {
        let nodes = mk_nodes(&["a", "b"]);
        // Endpoint on a node without a speaker.
        let svcs = vec![local(mk_service("s", &["192.0.2.1"]), &["elsewhere"])];
        let e = elect(&nodes, &svcs, &ElectionPolicy::default());
        let err = e.by_ip[&ip("192.0.2.1")].announcer.clone().unwrap_err();
        assert_eq!(
            err,
            NoAnnouncer::NoEligibleNode([(Ineligible::NoLocalEndpoint, 2)].into())
        );
        assert_eq!(
            err.to_string(),
            "no eligible node: 2 nodes no local ready endpoint (externalTrafficPolicy Local)"
        );
    }

    #[test]
    fn service_without_ready_endpoint_has_no_announcer() {
        let nodes = mk_nodes(&["a"]);
        let mut s = mk_service("s", &["192.0.2.1"]);
        s.has_ready_endpoint = false;
        let e = elect(&nodes, &[s], &ElectionPolicy::default());
        let err = e.by_ip[&ip("192.0.2.1")].announcer.clone().unwrap_err();
        assert_eq!(
            err,
            NoAnnouncer::NoReadyEndpoint(ServiceKey::new("default", "s"))
        );
        assert_eq!(err.to_string(), "Service default/s has no ready endpoint");
    }

    #[test]
    fn no_speakers_is_reported() {
        let e = elect(
            &[],
            &[mk_service("s", &["192.0.2.1"])],
            &ElectionPolicy::default(),
        );
        assert_eq!(
            e.by_ip[&ip("192.0.2.1")].announcer,
            Err(NoAnnouncer::NoSpeakers)
        );
    }

    #[test]
    fn mixed_reasons_are_counted_per_node() {
        let mut nodes = mk_nodes(&["a", "b", "c"]);
        nodes[0].ready = false;
        nodes[1].ready = false;
        nodes[2].labels.insert(EXCLUDE_LB_LABEL.into(), "".into());
        let e = elect(
            &nodes,
            &[mk_service("s", &["192.0.2.1"])],
            &ElectionPolicy::default(),
        );
        let err = e.by_ip[&ip("192.0.2.1")].announcer.clone().unwrap_err();
        assert_eq!(
            err.to_string(),
            "no eligible node: 2 nodes not Ready, 1 node labelled exclude-from-external-load-balancers"
        );
    }

    #[test]
    fn shared_ip_goes_to_a_node_eligible_for_all_sharers() {
        let nodes = mk_nodes(&["a", "b", "c"]);
        let s1 = local(mk_service("s1", &["192.0.2.1"]), &["a", "b"]);
        let s2 = local(mk_service("s2", &["192.0.2.1"]), &["b", "c"]);
        let e = elect(&nodes, &[s1.clone(), s2], &ElectionPolicy::default());
        let a = &e.by_ip[&ip("192.0.2.1")];
        assert_eq!(a.announcer.as_deref(), Ok("b"));
        assert_eq!(a.services.len(), 2);

        let s3 = local(mk_service("s3", &["192.0.2.1"]), &["c"]);
        let e = elect(&nodes, &[s1, s3], &ElectionPolicy::default());
        assert_eq!(
            e.by_ip[&ip("192.0.2.1")].announcer,
            Err(NoAnnouncer::NoEligibleNode(
                [(Ineligible::NotEligibleForAllSharers, 3)].into()
            ))
        );
    }

    // -- properties ----------------------------------------------------------------------

    fn arb_node() -> impl Strategy<Value = NodeFacts> {
        (
            "[a-z]{1,6}",
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(name, live, ready, excluded, link)| {
                let mut n = mk_node(&name);
                n.speaker_live = live;
                n.ready = ready;
                n.link_ok = link;
                if excluded {
                    n.labels.insert(EXCLUDE_LB_LABEL.into(), "".into());
                }
                n
            })
    }

    fn arb_services() -> impl Strategy<Value = Vec<ServiceFacts>> {
        prop::collection::vec(
            (
                0u32..64,
                any::<bool>(),
                prop::collection::btree_set("[a-z]{1,6}", 0..4),
            ),
            0..40,
        )
        .prop_map(|v| {
            v.into_iter()
                .enumerate()
                .map(|(i, (ipn, is_local, eps))| {
                    let mut s = mk_service(&format!("s{i}"), &[]);
                    s.ips = vec![v4(ipn)];
                    if is_local {
                        s.traffic_policy = TrafficPolicy::Local;
                    }
                    s.has_ready_endpoint = !eps.is_empty();
                    s.ready_endpoint_nodes = eps;
                    s
                })
                .collect()
        })
    }

    proptest! {
        /// Same inputs in any order: the same decision; every announcer is eligible.
        #[test]
        fn deterministic_and_announcer_eligible(
            nodes in prop::collection::btree_map("[a-z]{1,6}", arb_node(), 0..8)
                .prop_map(|m| m.into_iter().map(|(k, mut n)| { n.name = k; n }).collect::<Vec<_>>()),
            svcs in arb_services(),
        ) {
            let policy = ElectionPolicy::default();
            let e1 = elect(&nodes, &svcs, &policy);
            let mut rn = nodes.clone();
            rn.reverse();
            let mut rs = svcs.clone();
            rs.reverse();
            let e2 = elect(&rn, &rs, &policy);
            prop_assert_eq!(&e1, &e2);
            // Exactly one announcer per IP: the per-node shares partition the announced IPs.
            let names: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
            let mut seen = BTreeSet::new();
            for n in &names {
                for ip in e1.announced_by(n) {
                    prop_assert!(seen.insert(ip), "{} announced twice", ip);
                }
            }
            for (ip, a) in &e1.by_ip {
                if let Ok(winner) = &a.announcer {
                    prop_assert!(seen.contains(ip));
                    let first = nodes.iter().find(|n| &n.name == winner).unwrap();
                    prop_assert!(node_ineligibility(first, &policy).is_none());
                    prop_assert!(NodeRule::Default.rejects(&first.labels, &policy).is_none());
                    for s in svcs.iter().filter(|s| s.ips.contains(ip)) {
                        prop_assert!(s.has_ready_endpoint);
                        prop_assert!(service_allows(s, winner));
                    }
                }
            }
        }

        /// When a node leaves, only the IPs it held move.
        #[test]
        fn minimal_movement_when_a_node_leaves(
            n in 2usize..8,
            leaving in 0usize..8,
            ips in prop::collection::btree_set(0u32..5000, 1..100),
        ) {
            let names: Vec<String> = (0..n).map(|i| format!("node-{i}")).collect();
            let leaving = &names[leaving % n];
            let nodes: Vec<_> = names.iter().map(|s| mk_node(s)).collect();
            let svcs: Vec<_> = ips.iter().map(|i| ServiceFacts { ips: vec![v4(*i)], ..mk_service(&format!("s{i}"), &[]) }).collect();
            let before = elect(&nodes, &svcs, &ElectionPolicy::default());
            let mut after_nodes = nodes.clone();
            after_nodes.iter_mut().find(|x| &x.name == leaving).unwrap().speaker_live = false;
            let after = elect(&after_nodes, &svcs, &ElectionPolicy::default());
            for (ip, a) in &before.by_ip {
                let old = a.announcer.as_deref().unwrap();
                let new = after.announcer_of(*ip).unwrap();
                if old == leaving.as_str() {
                    prop_assert_ne!(new, leaving.as_str());
                } else {
                    prop_assert_eq!(old, new, "{} moved although its node stayed", ip);
                }
            }
            // And when it comes back, exactly the same assignment as before.
            prop_assert_eq!(elect(&nodes, &svcs, &ElectionPolicy::default()), before);
        }
    }

    #[test]
    fn spread_over_nodes_is_even() {
        for n in [2usize, 3, 5, 10] {
            let names: Vec<String> = (0..n).map(|i| format!("worker-{i}")).collect();
            let nodes: Vec<_> = names.iter().map(|s| mk_node(s)).collect();
            let svcs: Vec<_> = (0..3000)
                .map(|i| ServiceFacts {
                    ips: vec![if i % 2 == 0 {
                        v4(i)
                    } else {
                        IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | i as u128))
                    }],
                    ..mk_service(&format!("s{i}"), &[])
                })
                .collect();
            let e = elect(&nodes, &svcs, &ElectionPolicy::default());
            let expected = 3000.0 / n as f64;
            for name in &names {
                let got = e.announced_by(name).len() as f64;
                // Binomial spread: allow ±20 % (well over 4 standard deviations here).
                assert!(
                    (got - expected).abs() < expected * 0.2,
                    "{n} nodes: {name} has {got}, expected about {expected}"
                );
            }
        }
    }

    // -- handover ------------------------------------------------------------------------

    #[test]
    fn ip_won_from_a_running_peer_waits_for_the_delay() {
        let delay = Duration::from_millis(200);
        let t0 = Instant::now();
        let mut h = Handover::new(delay);
        let x = ip("192.0.2.1");
        let won: BTreeSet<IpAddr> = [x].into();
        let none = BTreeSet::new();
        let prev = |_| Some("peer");
        assert!(h.admit("me", &won, &none, prev, |_| true, t0).is_empty());
        assert_eq!(h.next_deadline(), Some(t0 + delay));
        assert!(
            h.admit("me", &won, &none, prev, |_| true, t0 + delay / 2)
                .is_empty()
        );
        assert_eq!(h.admit("me", &won, &none, prev, |_| true, t0 + delay), won);
        assert_eq!(h.next_deadline(), None);
    }

    #[test]
    fn ip_won_from_a_dead_or_silent_peer_or_nobody_is_announced_at_once() {
        let mut h = Handover::new(Duration::from_millis(200));
        let t0 = Instant::now();
        let won: BTreeSet<IpAddr> = [ip("192.0.2.1")].into();
        let none = BTreeSet::new();
        assert_eq!(
            h.admit("me", &won, &none, |_| Some("dead"), |_| false, t0),
            won
        );
        assert_eq!(h.admit("me", &won, &none, |_| None, |_| true, t0), won);
        assert_eq!(
            h.admit("me", &won, &none, |_| Some("me"), |_| true, t0),
            won
        );
        // Already announcing: kept.
        assert_eq!(
            h.admit("me", &won, &won, |_| Some("peer"), |_| true, t0),
            won
        );
        // Zero delay never holds back.
        let mut z = Handover::new(Duration::ZERO);
        assert_eq!(
            z.admit("me", &won, &none, |_| Some("peer"), |_| true, t0),
            won
        );
    }

    #[test]
    fn held_back_ip_that_is_lost_again_is_forgotten() {
        let mut h = Handover::new(Duration::from_millis(200));
        let t0 = Instant::now();
        let won: BTreeSet<IpAddr> = [ip("192.0.2.1")].into();
        let none = BTreeSet::new();
        h.admit("me", &won, &none, |_| Some("peer"), |_| true, t0);
        assert_eq!(h.pending().count(), 1);
        h.admit("me", &none, &none, |_| Some("peer"), |_| true, t0);
        assert_eq!(h.pending().count(), 0);
        assert_eq!(h.next_deadline(), None);
    }
}
