//! The validated configuration model. Values of these types only come out of
//! validation, so consumers may rely on the invariants stated on each type.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// True for the addresses that `avoidBuggyIPs` skips: the `.0` and `.255` of
/// every IPv4 /24 (some old clients treat them as network/broadcast addresses).
/// Never true for IPv6.
pub fn is_buggy_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => matches!(a.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

/// An inclusive range of addresses of one family, `start <= end`.
///
/// CIDRs, `a-b` ranges and single IPs all become one `IpRange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpRange {
    /// First address of the range.
    pub start: IpAddr,
    /// Last address of the range (inclusive); same family as `start`.
    pub end: IpAddr,
}

impl IpRange {
    /// True for an IPv4 range.
    pub fn is_ipv4(&self) -> bool {
        self.start.is_ipv4()
    }

    /// True when `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_ipv4() && self.start <= ip && ip <= self.end
    }

    /// Number of addresses in the range (saturating at `u128::MAX`).
    pub fn size(&self) -> u128 {
        match (self.start, self.end) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(b) - u32::from(a)) as u128 + 1,
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(b) - u128::from(a)).saturating_add(1),
            _ => 0,
        }
    }

    /// Number of addresses a pool may hand out from this range: all of them,
    /// or, with `avoid_buggy_ips`, all but the `.0` and `.255` of each /24.
    pub fn usable_size(&self, avoid_buggy_ips: bool) -> u128 {
        match (self.start, self.end) {
            (IpAddr::V4(a), IpAddr::V4(b)) if avoid_buggy_ips => {
                let (s, e) = (i64::from(u32::from(a)), i64::from(u32::from(b)));
                // Count of x in [0, n] with x % 256 == r.
                let upto = |n: i64, r: i64| if n < r { 0 } else { (n - r) / 256 + 1 };
                let buggy = upto(e, 0) - upto(s - 1, 0) + upto(e, 255) - upto(s - 1, 255);
                (e - s + 1 - buggy) as u128
            }
            _ => self.size(),
        }
    }

    /// The addresses both ranges hold, if any.
    pub fn intersection(&self, other: &IpRange) -> Option<IpRange> {
        if self.is_ipv4() != other.is_ipv4() {
            return None;
        }
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start <= end).then_some(IpRange { start, end })
    }
}

impl fmt::Display for IpRange {
    /// `192.0.2.7` for a single address, `192.0.2.1-192.0.2.9` otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements, all of which must hold.
    pub match_expressions: Vec<SelectorRequirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorRequirement {
    /// `operator: In`
    In(String, Vec<String>),
    /// `operator: NotIn`
    NotIn(String, Vec<String>),
    /// `operator: Exists`
    Exists(String),
    /// `operator: DoesNotExist`
    DoesNotExist(String),
}

impl LabelSelector {
    /// True when `labels` satisfy every requirement. An empty selector matches everything.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| match r {
                SelectorRequirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
                SelectorRequirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
                SelectorRequirement::Exists(k) => labels.contains_key(k),
                SelectorRequirement::DoesNotExist(k) => !labels.contains_key(k),
            })
    }

    /// True when the selector has no requirement at all.
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }
}

/// One address pool, validated: non-empty (at least one usable address),
/// ranges sorted and non-overlapping (touching ranges are joined), disjoint from
/// every other pool's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Unique pool name.
    pub name: String,
    /// The pool's addresses, sorted by start, disjoint.
    pub ranges: Vec<IpRange>,
    /// Whether Services that name no pool and no IP may be given an address from it.
    pub auto_assign: bool,
    /// Skip the `.0` and `.255` address of every IPv4 /24.
    pub avoid_buggy_ips: bool,
    /// When set, only Services in these namespaces may use the pool.
    pub namespaces: Option<Vec<String>>,
    /// When set, only Services whose labels match may use the pool.
    pub service_selector: Option<LabelSelector>,
    /// The pool's own labels, which announcement policies select pools by
    /// ([`PoolChoice::selector`]).
    pub labels: BTreeMap<String, String>,
}

impl Pool {
    /// True when the pool has at least one IPv4 range.
    pub fn has_ipv4(&self) -> bool {
        self.ranges.iter().any(|r| r.is_ipv4())
    }

    /// True when the pool has at least one IPv6 range.
    pub fn has_ipv6(&self) -> bool {
        self.ranges.iter().any(|r| !r.is_ipv4())
    }

    /// Number of addresses the pool may hand out (after `avoid_buggy_ips`),
    /// saturating at `u128::MAX`.
    pub fn usable_size(&self) -> u128 {
        self.ranges.iter().fold(0u128, |acc, r| {
            acc.saturating_add(r.usable_size(self.avoid_buggy_ips))
        })
    }

    /// True when `ip` is in the pool and may be handed out (honours `avoid_buggy_ips`).
    pub fn is_usable(&self, ip: IpAddr) -> bool {
        self.contains(ip) && !(self.avoid_buggy_ips && is_buggy_ip(ip))
    }

    /// True when `ip` lies in one of the pool's ranges (ignores `avoid_buggy_ips`).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// True when a Service in `namespace` with `labels` may use this pool.
    pub fn allows(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|ns| ns.iter().any(|n| n == namespace))
            && self
                .service_selector
                .as_ref()
                .is_none_or(|s| s.matches(labels))
    }
}

/// Where IPs are announced at layer 2.
///
/// A pool that some [`L2Policy`] covers is announced as its policies say, and only
/// so; every other pool is announced under the section's own `interfaces` and
/// `nodeSelector` (by default: every node, automatic interfaces). Resolution for one
/// IP: [`Config::announcement`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Config {
    /// For pools no policy covers: when non-empty, announce only on these interfaces.
    pub interfaces: Vec<String>,
    /// For pools no policy covers: when set, only nodes whose labels match may announce.
    pub node_selector: Option<LabelSelector>,
    /// Per-pool announcement policies, in configuration order; names are unique.
    pub policies: Vec<L2Policy>,
}

/// One per-pool announcement policy (`l2.policies[]`), as MetalLB's
/// `L2Advertisement` or Cilium's `CiliumL2AnnouncementPolicy`: which pools it covers,
/// on which interfaces, from which nodes, for which Services. Several policies may
/// cover one pool; a node may then announce when any of them selects it, on the
/// interfaces of those that do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Policy {
    /// Unique name (a DNS-1123 label), used in Events and `check-config`.
    pub name: String,
    /// The pools it covers.
    pub pools: PoolChoice,
    /// Interfaces to answer on; empty means the automatic choice (as for `l2.interfaces`).
    pub interfaces: Vec<InterfaceMatcher>,
    /// When set, only nodes whose labels match announce under this policy.
    pub node_selector: Option<LabelSelector>,
    /// When set, the policy applies only to Services whose labels match.
    pub service_selector: Option<LabelSelector>,
}

/// Which pools a policy covers: those named, and those whose labels match the
/// selector. With neither, every pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolChoice {
    /// Pools by name (each names an existing pool: validated).
    pub names: Vec<String>,
    /// Pools by their `labels`.
    pub selector: Option<LabelSelector>,
}

impl PoolChoice {
    /// True when the choice takes `pool`.
    pub fn covers(&self, pool: &Pool) -> bool {
        if self.names.is_empty() && self.selector.is_none() {
            return true;
        }
        self.names.contains(&pool.name)
            || self
                .selector
                .as_ref()
                .is_some_and(|s| s.matches(&pool.labels))
    }
}

/// One entry of a policy's interface list.
#[derive(Debug, Clone)]
pub enum InterfaceMatcher {
    /// Exactly this name (`eth0`, `eth0.20`, `bond0`).
    Name(String),
    /// A shell-style pattern: `*` any run of characters, `?` any one (`eth0.*`, `enp?s0`).
    Glob(String),
    /// A regular expression matched anywhere in the name unless anchored, as Cilium's
    /// `interfaces` entries are (`^eth[0-9]+$`).
    Regex(regex::Regex),
}

impl PartialEq for InterfaceMatcher {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (InterfaceMatcher::Name(a), InterfaceMatcher::Name(b))
            | (InterfaceMatcher::Glob(a), InterfaceMatcher::Glob(b)) => a == b,
            (InterfaceMatcher::Regex(a), InterfaceMatcher::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl Eq for InterfaceMatcher {}

impl InterfaceMatcher {
    /// True when the interface called `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            InterfaceMatcher::Name(n) => n == name,
            InterfaceMatcher::Glob(g) => glob_matches(g.as_bytes(), name.as_bytes()),
            InterfaceMatcher::Regex(r) => r.is_match(name),
        }
    }
}

impl fmt::Display for InterfaceMatcher {
    /// As written: `eth0`, `eth0.*`, and regular expressions as `regex:^eth[0-9]+$`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterfaceMatcher::Name(n) | InterfaceMatcher::Glob(n) => f.write_str(n),
            InterfaceMatcher::Regex(r) => write!(f, "regex:{}", r.as_str()),
        }
    }
}

/// Shell-style match of a whole name: `*` any run (also empty), `?` one byte.
/// Iterative with one backtrack point, so linear in practice and never recursive.
fn glob_matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Interfaces one node answers an IP on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceRule {
    /// The automatic choice (or the speaker's `--interfaces`, or `l2.interfaces`): true
    /// when some applicable policy lists no interface, or no policy covers the pool.
    pub default_choice: bool,
    /// Interfaces named or matched by the applicable policies.
    pub matchers: Vec<InterfaceMatcher>,
}

impl InterfaceRule {
    /// True when the rule takes the interface `name`; `in_default` says whether the
    /// default choice takes it.
    pub fn takes(&self, name: &str, in_default: bool) -> bool {
        (self.default_choice && in_default) || self.matchers.iter().any(|m| m.matches(name))
    }

    /// True when the rule takes no interface at all.
    pub fn is_empty(&self) -> bool {
        !self.default_choice && self.matchers.is_empty()
    }
}

/// How one IP of one Service is announced: [`Config::announcement`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announcement<'a> {
    /// No policy covers the IP's pool (or the IP lies in no pool): the `l2` section's
    /// own `interfaces` and `nodeSelector` apply.
    Default,
    /// These policies cover the pool and allow the Service.
    Policies(Vec<&'a L2Policy>),
    /// Policies cover the pool, but none allows the Service (its labels match no
    /// `serviceSelector`): the IP is not announced.
    Refused {
        /// The IP's pool.
        pool: &'a str,
        /// The policies that cover the pool, by name.
        policies: Vec<&'a str>,
    },
}

impl Announcement<'_> {
    /// True when some node may announce under it (it is not [`Announcement::Refused`]).
    pub fn allowed(&self) -> bool {
        !matches!(self, Announcement::Refused { .. })
    }

    /// True when a node labelled `labels` may announce.
    pub fn selects_node(&self, l2: &L2Config, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Announcement::Default => l2.node_selector.as_ref().is_none_or(|s| s.matches(labels)),
            Announcement::Policies(ps) => ps
                .iter()
                .any(|p| p.node_selector.as_ref().is_none_or(|s| s.matches(labels))),
            Announcement::Refused { .. } => false,
        }
    }

    /// The interfaces a node labelled `labels` answers on (empty when it may not announce).
    pub fn interfaces_on(&self, labels: &BTreeMap<String, String>) -> InterfaceRule {
        match self {
            Announcement::Default => InterfaceRule {
                default_choice: true,
                matchers: Vec::new(),
            },
            Announcement::Policies(ps) => {
                let mut rule = InterfaceRule::default();
                for p in ps
                    .iter()
                    .filter(|p| p.node_selector.as_ref().is_none_or(|s| s.matches(labels)))
                {
                    if p.interfaces.is_empty() {
                        rule.default_choice = true;
                    }
                    for m in &p.interfaces {
                        if !rule.matchers.contains(m) {
                            rule.matchers.push(m.clone());
                        }
                    }
                }
                rule
            }
            Announcement::Refused { .. } => InterfaceRule::default(),
        }
    }
}

/// A whole validated configuration. Pools keep the order in which they were written,
/// which is also the order in which auto-assignment tries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// The address pools, in configuration order.
    pub pools: Vec<Pool>,
    /// Layer-2 announcement settings.
    pub l2: L2Config,
}

impl Config {
    /// The pool holding `ip`, if any.
    pub fn pool_of(&self, ip: IpAddr) -> Option<&Pool> {
        self.pools.iter().find(|p| p.contains(ip))
    }

    /// The policies that cover `pool`, in configuration order.
    pub fn policies_covering<'a>(&'a self, pool: &Pool) -> Vec<&'a L2Policy> {
        self.l2
            .policies
            .iter()
            .filter(|p| p.pools.covers(pool))
            .collect()
    }

    /// How `ip`, an address of a Service labelled `service_labels`, is announced.
    pub fn announcement(
        &self,
        ip: IpAddr,
        service_labels: &BTreeMap<String, String>,
    ) -> Announcement<'_> {
        let Some(pool) = self.pool_of(ip) else {
            return Announcement::Default;
        };
        let covering = self.policies_covering(pool);
        if covering.is_empty() {
            return Announcement::Default;
        }
        let allowing: Vec<&L2Policy> = covering
            .iter()
            .copied()
            .filter(|p| {
                p.service_selector
                    .as_ref()
                    .is_none_or(|s| s.matches(service_labels))
            })
            .collect();
        if allowing.is_empty() {
            Announcement::Refused {
                pool: &pool.name,
                policies: covering.iter().map(|p| p.name.as_str()).collect(),
            }
        } else {
            Announcement::Policies(allowing)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: &str, b: &str) -> IpRange {
        IpRange {
            start: a.parse().unwrap(),
            end: b.parse().unwrap(),
        }
    }

    #[test]
    fn usable_size_skips_dot_zero_and_dot_255() {
        assert_eq!(r("192.0.2.0", "192.0.2.255").usable_size(true), 254);
        assert_eq!(r("192.0.2.0", "192.0.2.255").usable_size(false), 256);
        assert_eq!(r("192.0.2.1", "192.0.2.254").usable_size(true), 254);
        assert_eq!(r("192.0.2.255", "192.0.3.0").usable_size(true), 0);
        assert_eq!(r("192.0.2.250", "192.0.3.5").usable_size(true), 10);
        assert_eq!(r("0.0.0.0", "0.0.0.0").usable_size(true), 0);
        assert_eq!(r("255.255.255.255", "255.255.255.255").usable_size(true), 0);
        assert_eq!(
            r("0.0.0.0", "255.255.255.255").usable_size(true),
            254 * (1 << 24)
        );
        assert_eq!(r("2001:db8::", "2001:db8::ff").usable_size(true), 256);
    }

    #[test]
    fn usable_size_agrees_with_a_count() {
        let base = u32::from("198.51.100.0".parse::<std::net::Ipv4Addr>().unwrap());
        for (s, e) in [
            (0u32, 0u32),
            (0, 600),
            (3, 255),
            (255, 256),
            (100, 1000),
            (511, 512),
        ] {
            let range = IpRange {
                start: IpAddr::V4((base + s).into()),
                end: IpAddr::V4((base + e).into()),
            };
            let counted = (base + s..=base + e)
                .filter(|x| !is_buggy_ip(IpAddr::V4((*x).into())))
                .count() as u128;
            assert_eq!(range.usable_size(true), counted, "{range}");
        }
    }

    #[test]
    fn display_and_intersection() {
        assert_eq!(r("192.0.2.1", "192.0.2.1").to_string(), "192.0.2.1");
        assert_eq!(
            r("192.0.2.1", "192.0.2.9").to_string(),
            "192.0.2.1-192.0.2.9"
        );
        assert_eq!(
            r("192.0.2.0", "192.0.2.15").intersection(&r("192.0.2.8", "192.0.2.20")),
            Some(r("192.0.2.8", "192.0.2.15"))
        );
        assert_eq!(
            r("192.0.2.0", "192.0.2.15").intersection(&r("192.0.2.16", "192.0.2.20")),
            None
        );
        assert_eq!(
            r("0.0.0.0", "255.255.255.255").intersection(&r("::", "::1")),
            None
        );
    }

    #[test]
    fn pool_usable_size_and_is_usable() {
        let pool = Pool {
            name: "p".into(),
            ranges: vec![
                r("192.0.2.0", "192.0.2.255"),
                r("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff"),
            ],
            auto_assign: true,
            avoid_buggy_ips: true,
            namespaces: None,
            service_selector: None,
            labels: BTreeMap::new(),
        };
        assert_eq!(pool.usable_size(), 254 + (1u128 << 64));
        assert!(!pool.is_usable("192.0.2.0".parse().unwrap()));
        assert!(pool.is_usable("192.0.2.1".parse().unwrap()));
        assert!(pool.contains("192.0.2.255".parse().unwrap()));
        assert!(!pool.is_usable("192.0.2.255".parse().unwrap()));
        assert!(pool.is_usable("2001:db8::".parse().unwrap()));
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(kv: &[(&str, &str)]) -> Option<LabelSelector> {
        Some(LabelSelector {
            match_labels: labels(kv),
            match_expressions: Vec::new(),
        })
    }

    fn pool(name: &str, cidr_start: &str, cidr_end: &str, pool_labels: &[(&str, &str)]) -> Pool {
        Pool {
            name: name.into(),
            ranges: vec![IpRange {
                start: cidr_start.parse().unwrap(),
                end: cidr_end.parse().unwrap(),
            }],
            auto_assign: true,
            avoid_buggy_ips: false,
            namespaces: None,
            service_selector: None,
            labels: labels(pool_labels),
        }
    }

    fn policy(name: &str, pools: &[&str]) -> L2Policy {
        L2Policy {
            name: name.into(),
            pools: PoolChoice {
                names: pools.iter().map(|p| p.to_string()).collect(),
                selector: None,
            },
            interfaces: Vec::new(),
            node_selector: None,
            service_selector: None,
        }
    }

    #[test]
    fn globs_match_whole_names() {
        let g = |p: &str, n: &str| InterfaceMatcher::Glob(p.into()).matches(n);
        assert!(g("eth0.*", "eth0.20"));
        assert!(g("eth0.*", "eth0."));
        assert!(!g("eth0.*", "eth0"));
        assert!(!g("eth0.*", "eth1.20"));
        assert!(g("enp?s0", "enp3s0"));
        assert!(!g("enp?s0", "enp33s0"));
        assert!(g("*", "anything"));
        assert!(g("*.20", "bond0.20"));
        assert!(!g("*.20", "bond0.200"));
        assert!(g("e*0*", "eth0.20"));
        assert!(!InterfaceMatcher::Name("eth0".into()).matches("eth0.20"));
        let re = InterfaceMatcher::Regex(regex::Regex::new("eth[0-9]+").unwrap());
        assert!(re.matches("veth12"), "unanchored, as in Cilium");
        let anchored = InterfaceMatcher::Regex(regex::Regex::new("^eth[0-9]+$").unwrap());
        assert!(!anchored.matches("veth12"));
        assert!(anchored.matches("eth3"));
        assert_eq!(anchored.to_string(), "regex:^eth[0-9]+$");
    }

    #[test]
    fn pool_choice_by_name_selector_or_all() {
        let p = pool("vlan20", "192.0.2.0", "192.0.2.15", &[("vlan", "20")]);
        assert!(PoolChoice::default().covers(&p));
        let by_name = PoolChoice {
            names: vec!["vlan20".into()],
            selector: None,
        };
        assert!(by_name.covers(&p));
        let by_label = PoolChoice {
            names: vec!["other".into()],
            selector: selector(&[("vlan", "20")]),
        };
        assert!(by_label.covers(&p));
        let neither = PoolChoice {
            names: vec!["other".into()],
            selector: selector(&[("vlan", "30")]),
        };
        assert!(!neither.covers(&p));
    }

    #[test]
    fn announcement_resolves_per_pool() {
        let mut vlan = policy("vlan20", &["vlan20"]);
        vlan.interfaces = vec![InterfaceMatcher::Name("eth0.20".into())];
        vlan.node_selector = selector(&[("rack", "a")]);
        let mut edge_only = policy("edge", &["vlan20"]);
        edge_only.service_selector = selector(&[("tier", "edge")]);
        edge_only.node_selector = selector(&[("edge", "true")]);
        edge_only.interfaces = vec![InterfaceMatcher::Glob("bond*".into())];
        let mut gated = policy("gated", &["gated"]);
        gated.service_selector = selector(&[("tier", "edge")]);
        let config = Config {
            pools: vec![
                pool("lan", "198.51.100.0", "198.51.100.15", &[]),
                pool("vlan20", "192.0.2.0", "192.0.2.15", &[]),
                pool("gated", "203.0.113.0", "203.0.113.15", &[]),
            ],
            l2: L2Config {
                interfaces: vec!["eth0".into()],
                node_selector: selector(&[("lb", "yes")]),
                policies: vec![vlan, edge_only, gated],
            },
        };
        let plain = labels(&[]);
        let edge = labels(&[("tier", "edge")]);

        // Uncovered pool and addresses outside every pool: the l2 section.
        let lan = config.announcement("198.51.100.1".parse().unwrap(), &plain);
        assert_eq!(lan, Announcement::Default);
        assert!(lan.selects_node(&config.l2, &labels(&[("lb", "yes")])));
        assert!(!lan.selects_node(&config.l2, &labels(&[("rack", "a")])));
        assert!(lan.interfaces_on(&plain).default_choice);
        assert_eq!(
            config.announcement("2001:db8::1".parse().unwrap(), &plain),
            Announcement::Default
        );

        // Covered pool: only its policies, and only those that allow the Service.
        let ip = "192.0.2.3".parse().unwrap();
        let a = config.announcement(ip, &plain);
        let Announcement::Policies(ps) = &a else {
            panic!("{a:?}")
        };
        assert_eq!(
            ps.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["vlan20"]
        );
        assert!(a.selects_node(&config.l2, &labels(&[("rack", "a")])));
        assert!(
            !a.selects_node(&config.l2, &labels(&[("lb", "yes")])),
            "l2.nodeSelector no longer applies"
        );
        let rule = a.interfaces_on(&labels(&[("rack", "a")]));
        assert!(!rule.default_choice);
        assert!(rule.takes("eth0.20", false));
        assert!(!rule.takes("eth0", true));
        assert!(a.interfaces_on(&labels(&[("lb", "yes")])).is_empty());

        // Two policies for an edge Service: a node of either kind, each on its own interfaces.
        let b = config.announcement(ip, &edge);
        assert!(b.selects_node(&config.l2, &labels(&[("edge", "true")])));
        let both = b.interfaces_on(&labels(&[("rack", "a"), ("edge", "true")]));
        assert!(both.takes("eth0.20", false) && both.takes("bond0", false));
        let edge_node = b.interfaces_on(&labels(&[("edge", "true")]));
        assert!(!edge_node.takes("eth0.20", false) && edge_node.takes("bond1", false));

        // A pool whose only policy does not allow the Service: refused, with names.
        let refused = config.announcement("203.0.113.9".parse().unwrap(), &plain);
        assert_eq!(
            refused,
            Announcement::Refused {
                pool: "gated",
                policies: vec!["gated"]
            }
        );
        assert!(!refused.allowed());
        assert!(!refused.selects_node(&config.l2, &plain));
        assert!(
            config
                .announcement("203.0.113.9".parse().unwrap(), &edge)
                .allowed()
        );
    }
}
