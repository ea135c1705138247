//! The lab's naming and addressing plan: pure data, no I/O.
//!
//! Every address lives in a documentation range (192.0.2.0/24, 2001:db8::/64): the
//! bridge (the "API server host") is .1 / ::1, the client .2 / ::2, node `i` (1-based)
//! .(10+i) / ::(10+i). Service IPs come from a pool at .200-.220 / ::200-::220. Node
//! MACs are fixed and locally administered, so that a MAC seen in an ARP reply names
//! its node without asking anyone.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::LabError;

/// Most nodes a lab may have (node addresses .11-.60 stay clear of the pool at .200).
pub const MAX_NODES: usize = 50;

/// Address of the API server as the nodes see it (on the bridge).
pub const API_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// IPv6 address of the bridge.
pub const API_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// Port of the API server on the lab network.
pub const API_PORT: u16 = 6443;
/// The client's addresses.
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
/// The client's IPv6 address.
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
/// The client's MAC.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0xf1, 0xb0, 0x00, 0x00, 0x02];
/// The observer: a listen-only identity on the client's port (no interface has it) that
/// the lab's ARP/NDP probes use as their sender, so that the answers go to it and never
/// teach the client's kernel a neighbour entry behind the back of the traffic measured.
pub const OBSERVER_MAC: [u8; 6] = [0x02, 0xf1, 0xb0, 0x00, 0x00, 0x03];
/// The observer's IPv4 address.
pub const OBSERVER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 3);
/// The observer's IPv6 address.
pub const OBSERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 3);
/// First and last IPv4 address of the example pool.
pub const POOL_V4: (Ipv4Addr, Ipv4Addr) =
    (Ipv4Addr::new(192, 0, 2, 200), Ipv4Addr::new(192, 0, 2, 220));
/// First and last IPv6 address of the example pool.
pub const POOL_V6: (Ipv6Addr, Ipv6Addr) = (
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200),
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x220),
);
/// Name of the interface, in each node and in the client, that plugs into the bridge.
pub const UPLINK: &str = "eth0";
/// Name of the kube-proxy stand-in's interface holding the Service IPs in each node.
pub const KUBE_LB_IF: &str = "kube-lb0";
/// Name of the bridge in the bridge namespace.
pub const BRIDGE: &str = "br0";
/// Port the HTTP responder listens on in each node namespace.
pub const HTTP_PORT: u16 = 80;

/// The second layer-2 segment (`--vlan`): the machines' kernel has no 802.1Q, so a
/// second bridge stands in for VLAN 20, and each node plugs into it with an interface
/// named like a VLAN sub-interface. Its addresses are in 203.0.113.0/24 and
/// 2001:db8:20::/64, laid out as on the first segment.
pub mod vlan {
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// The VLAN id the segment stands in for.
    pub const ID: u16 = 20;
    /// The node interface on the segment.
    pub const NODE_IF: &str = "eth0.20";
    /// The bridge, in the bridge namespace.
    pub const BRIDGE: &str = "br20";
    /// The client's addresses and MAC on the segment.
    pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
    /// The client's IPv6 address on the segment.
    pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 0, 0, 0, 2);
    /// The client's MAC on the segment (nodes' MACs there are `02:f1:b0:00:15:<i>`).
    pub const CLIENT_MAC: [u8; 6] = [0x02, 0xf1, 0xb0, 0x00, 0x14, 0x02];
    /// The observer's identity on the segment (see [`super::OBSERVER_MAC`]).
    pub const OBSERVER_MAC: [u8; 6] = [0x02, 0xf1, 0xb0, 0x00, 0x14, 0x03];
    /// The observer's IPv4 address on the segment.
    pub const OBSERVER_V4: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 3);
    /// The observer's IPv6 address on the segment.
    pub const OBSERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 0, 0, 0, 3);
    /// First and last IPv4 address of the segment's example pool.
    pub const POOL_V4: (Ipv4Addr, Ipv4Addr) = (
        Ipv4Addr::new(203, 0, 113, 200),
        Ipv4Addr::new(203, 0, 113, 220),
    );
    /// First and last IPv6 address of the segment's example pool.
    pub const POOL_V6: (Ipv6Addr, Ipv6Addr) = (
        Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 0, 0, 0, 0x200),
        Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 0, 0, 0, 0x220),
    );
}

/// A node's plug into the second segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanPlug {
    /// Name of the bridge-side end of the veth, in the bridge namespace.
    pub bridge_port: String,
    /// IPv4 address on [`vlan::NODE_IF`].
    pub v4: Ipv4Addr,
    /// IPv6 address on [`vlan::NODE_IF`].
    pub v6: Ipv6Addr,
    /// MAC of [`vlan::NODE_IF`].
    pub mac: [u8; 6],
}

/// The names a lab run uses, all derived from its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    prefix: String,
    nodes: usize,
    vlan: bool,
}

/// One node of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    /// Kubernetes Node name (`n1`, `n2`, ...).
    pub name: String,
    /// Network namespace name.
    pub netns: String,
    /// Name of the bridge-side end of its veth, in the bridge namespace.
    pub bridge_port: String,
    /// IPv4 address on eth0.
    pub v4: Ipv4Addr,
    /// IPv6 address on eth0.
    pub v6: Ipv6Addr,
    /// MAC of eth0.
    pub mac: [u8; 6],
    /// Its plug into the second segment, when the lab has one.
    pub vlan: Option<VlanPlug>,
}

impl Plan {
    /// A plan for `nodes` nodes under `prefix` (e.g. `flb1234a`).
    pub fn new(prefix: &str, nodes: usize) -> Result<Plan, LabError> {
        if nodes == 0 || nodes > MAX_NODES {
            return Err(LabError::Config(format!(
                "the lab needs between 1 and {MAX_NODES} nodes, not {nodes}"
            )));
        }
        if !is_family_prefix(prefix) {
            return Err(LabError::Config(format!(
                "lab prefix {prefix:?} must be `flb` followed by digits and one lowercase letter"
            )));
        }
        Ok(Plan {
            prefix: prefix.to_string(),
            nodes,
            vlan: false,
        })
    }

    /// The same plan with the second layer-2 segment ([`vlan`]).
    pub fn with_vlan(mut self) -> Plan {
        self.vlan = true;
        self
    }

    /// Whether the lab has the second segment.
    pub fn has_vlan(&self) -> bool {
        self.vlan
    }

    /// The client namespace of the second segment (exists only with [`Plan::with_vlan`]).
    pub fn vlan_client_ns(&self) -> String {
        format!("{}-client{}", self.prefix, vlan::ID)
    }

    /// The run's prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The bridge namespace.
    pub fn bridge_ns(&self) -> String {
        format!("{}-br", self.prefix)
    }

    /// The client namespace.
    pub fn client_ns(&self) -> String {
        format!("{}-client", self.prefix)
    }

    /// All namespaces of the run, bridge first.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all = vec![self.bridge_ns(), self.client_ns()];
        if self.vlan {
            all.push(self.vlan_client_ns());
        }
        all.extend(self.nodes().map(|n| n.netns));
        all
    }

    /// The nodes, in order.
    pub fn nodes(&self) -> impl Iterator<Item = NodePlan> + '_ {
        (1..=self.nodes).map(move |i| self.node(i))
    }

    /// Number of nodes.
    pub fn node_count(&self) -> usize {
        self.nodes
    }

    /// Node `i` (1-based).
    fn node(&self, i: usize) -> NodePlan {
        let host = 10 + i as u8;
        // The IPv6 host part reads like the IPv4 one: n1 is ::11 as it is .11.
        let v6_host =
            u16::from_str_radix(&host.to_string(), 16).expect("decimal digits are hex digits");
        NodePlan {
            name: format!("n{i}"),
            netns: format!("{}-n{i}", self.prefix),
            bridge_port: format!("vn{i}"),
            v4: Ipv4Addr::new(192, 0, 2, host),
            v6: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, v6_host),
            mac: [0x02, 0xf1, 0xb0, 0x00, 0x01, i as u8],
            vlan: self.vlan.then(|| VlanPlug {
                bridge_port: format!("v{}n{i}", vlan::ID),
                v4: Ipv4Addr::new(203, 0, 113, host),
                v6: Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 0, 0, 0, v6_host),
                mac: [0x02, 0xf1, 0xb0, 0x00, 0x15, i as u8],
            }),
        }
    }

    /// The node with this Kubernetes name.
    pub fn node_named(&self, name: &str) -> Option<NodePlan> {
        self.nodes().find(|n| n.name == name)
    }

    /// The node whose eth0 has this MAC.
    pub fn node_of_mac(&self, mac: [u8; 6]) -> Option<NodePlan> {
        self.nodes().find(|n| n.mac == mac)
    }

    /// The node whose [`vlan::NODE_IF`] has this MAC.
    pub fn node_of_vlan_mac(&self, mac: [u8; 6]) -> Option<NodePlan> {
        self.nodes()
            .find(|n| n.vlan.as_ref().is_some_and(|v| v.mac == mac))
    }
}

/// Whether `s` has the shape of a lab prefix: `flb`, digits, one lowercase letter.
pub fn is_family_prefix(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("flb") else {
        return false;
    };
    let bytes = rest.as_bytes();
    bytes.len() >= 2
        && bytes[..bytes.len() - 1].iter().all(u8::is_ascii_digit)
        && bytes[bytes.len() - 1].is_ascii_lowercase()
}

/// The prefix a namespace name belongs to, if it is a lab namespace.
pub fn prefix_of_netns(ns: &str) -> Option<&str> {
    let (prefix, _) = ns.split_once('-')?;
    is_family_prefix(prefix).then_some(prefix)
}

/// The `n`-th candidate prefix for process `pid` (`n` < 26).
pub fn candidate_prefix(pid: u32, n: usize) -> String {
    format!("flb{:04}{}", pid % 10000, (b'a' + (n % 26) as u8) as char)
}

/// Formats a MAC as `02:f1:b0:00:01:01`.
pub fn fmt_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `02:f1:b0:00:01:01` (any case).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Whether `ip` lies in the example pool (or the second segment's).
pub fn in_pool(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            (POOL_V4.0 <= v4 && v4 <= POOL_V4.1) || (vlan::POOL_V4.0 <= v4 && v4 <= vlan::POOL_V4.1)
        }
        IpAddr::V6(v6) => {
            (POOL_V6.0 <= v6 && v6 <= POOL_V6.1) || (vlan::POOL_V6.0 <= v6 && v6 <= vlan::POOL_V6.1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_documentation_addresses_and_distinct_macs() {
        let plan = Plan::new("flb0042a", 3).unwrap();
        let nodes: Vec<_> = plan.nodes().collect();
        assert_eq!(nodes[0].name, "n1");
        assert_eq!(nodes[0].netns, "flb0042a-n1");
        assert_eq!(nodes[0].v4, Ipv4Addr::new(192, 0, 2, 11));
        assert_eq!(nodes[2].v6, "2001:db8::13".parse::<Ipv6Addr>().unwrap());
        assert_eq!(fmt_mac(nodes[1].mac), "02:f1:b0:00:01:02");
        assert_eq!(plan.node_of_mac(nodes[2].mac).unwrap().name, "n3");
        assert_eq!(plan.node_of_mac(CLIENT_MAC), None);
        assert_eq!(
            plan.namespaces(),
            [
                "flb0042a-br",
                "flb0042a-client",
                "flb0042a-n1",
                "flb0042a-n2",
                "flb0042a-n3"
            ]
        );
    }

    #[test]
    fn the_last_node_stays_below_the_pool() {
        let plan = Plan::new("flb1a", MAX_NODES).unwrap();
        let last = plan.nodes().last().unwrap();
        assert_eq!(last.v4, Ipv4Addr::new(192, 0, 2, 60));
        assert_eq!(last.v6, "2001:db8::60".parse::<Ipv6Addr>().unwrap());
        assert!(!in_pool(IpAddr::V4(last.v4)));
        assert!(!in_pool(IpAddr::V6(last.v6)));
    }

    #[test]
    fn bad_node_counts_and_prefixes_are_refused() {
        assert!(
            Plan::new("flb1a", 0)
                .unwrap_err()
                .to_string()
                .contains("not 0")
        );
        assert!(Plan::new("flb1a", MAX_NODES + 1).is_err());
        assert!(
            Plan::new("lab1a", 3)
                .unwrap_err()
                .to_string()
                .contains("\"lab1a\"")
        );
        assert!(Plan::new("flb1", 3).is_err());
        assert!(Plan::new("flba", 3).is_err());
    }

    #[test]
    fn namespaces_are_recognised_by_their_prefix() {
        assert_eq!(prefix_of_netns("flb0042a-n1"), Some("flb0042a"));
        assert_eq!(prefix_of_netns("flb7b-client"), Some("flb7b"));
        assert_eq!(prefix_of_netns("flbx-n1"), None);
        assert_eq!(prefix_of_netns("other-n1"), None);
        assert_eq!(prefix_of_netns("flb0042a"), None);
        assert_eq!(candidate_prefix(123456, 0), "flb3456a");
        assert_eq!(candidate_prefix(7, 2), "flb0007c");
    }

    #[test]
    fn macs_round_trip_and_bad_ones_are_refused() {
        let mac = [0x02, 0xf1, 0xb0, 0, 1, 0xab];
        assert_eq!(parse_mac(&fmt_mac(mac)), Some(mac));
        assert_eq!(parse_mac("02:F1:B0:00:01:AB"), Some(mac));
        assert_eq!(parse_mac("02:f1:b0:00:01"), None);
        assert_eq!(parse_mac("02:f1:b0:00:01:ab:cd"), None);
        assert_eq!(parse_mac("02:f1:b0:00:01:zz"), None);
        assert_eq!(parse_mac("02:f1:b0:00:01:abc"), None);
    }

    #[test]
    fn pool_bounds() {
        assert!(in_pool("192.0.2.200".parse().unwrap()));
        assert!(in_pool("192.0.2.220".parse().unwrap()));
        assert!(!in_pool("192.0.2.221".parse().unwrap()));
        assert!(in_pool("2001:db8::210".parse().unwrap()));
        assert!(!in_pool("2001:db8::1:200".parse().unwrap()));
    }

    #[test]
    fn the_second_segment_has_its_own_addresses_macs_and_client() {
        let plain = Plan::new("flb7a", 2).unwrap();
        assert!(plain.nodes().all(|n| n.vlan.is_none()));
        assert_eq!(plain.namespaces().len(), 4);
        let plan = plain.with_vlan();
        assert!(plan.namespaces().contains(&"flb7a-client20".to_string()));
        let n2 = plan.node_named("n2").unwrap();
        let v = n2.vlan.clone().unwrap();
        assert_eq!(v.v4, Ipv4Addr::new(203, 0, 113, 12));
        assert_eq!(v.v6, "2001:db8:20::12".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v.bridge_port, "v20n2");
        assert_ne!(v.mac, n2.mac);
        let all: Vec<[u8; 6]> = plan
            .nodes()
            .flat_map(|n| [n.mac, n.vlan.unwrap().mac])
            .chain([
                CLIENT_MAC,
                OBSERVER_MAC,
                vlan::CLIENT_MAC,
                vlan::OBSERVER_MAC,
            ])
            .collect();
        let mut distinct = all.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            all.len(),
            "every MAC of the lab is unique: {all:?}"
        );
        assert_eq!(plan.node_of_vlan_mac(v.mac).unwrap().name, "n2");
        assert!(plan.node_of_mac(v.mac).is_none());
        assert!(in_pool("203.0.113.205".parse().unwrap()));
        assert!(!in_pool("203.0.113.12".parse().unwrap()));
    }
}
