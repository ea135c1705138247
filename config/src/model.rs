//! The validated configuration model. Values of these types only come out of
//! validation, so consumers may rely on the invariants stated on each type.

use std::collections::BTreeMap;
use std::net::IpAddr;

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

/// One address pool, validated: non-empty, ranges sorted and non-overlapping.
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

    /// True when `ip` lies in one of the pool's ranges (ignores `avoid_buggy_ips`).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.ranges.iter().any(|r| r.contains(ip))
    }

    /// True when a Service in `namespace` with `labels` may use this pool.
    pub fn allows(&self, namespace: &str, labels: &BTreeMap<String, String>) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|ns| ns.iter().any(|n| n == namespace))
            && self.service_selector.as_ref().is_none_or(|s| s.matches(labels))
    }
}

/// Where IPs are announced at layer 2. Every pool is announced; this only narrows where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Config {
    /// When non-empty, announce only on these interfaces.
    pub interfaces: Vec<String>,
    /// When set, only nodes whose labels match may announce.
    pub node_selector: Option<LabelSelector>,
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
