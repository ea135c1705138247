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
        };
        assert_eq!(pool.usable_size(), 254 + (1u128 << 64));
        assert!(!pool.is_usable("192.0.2.0".parse().unwrap()));
        assert!(pool.is_usable("192.0.2.1".parse().unwrap()));
        assert!(pool.contains("192.0.2.255".parse().unwrap()));
        assert!(!pool.is_usable("192.0.2.255".parse().unwrap()));
        assert!(pool.is_usable("2001:db8::".parse().unwrap()));
    }
}
