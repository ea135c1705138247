//! The request and result types the controller exchanges with the allocator.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// The allocator's name for the Service holding an allocation: the text form of its
/// [`crate::service::ServiceKey`], `"namespace/name"` (one string per allocation
/// rather than two).
pub type HolderKey = String;

/// An IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IpFamily {
    /// IPv4
    V4,
    /// IPv6
    V6,
}

impl IpFamily {
    /// The family of `ip`.
    pub fn of(ip: IpAddr) -> Self {
        if ip.is_ipv4() {
            IpFamily::V4
        } else {
            IpFamily::V6
        }
    }

    /// The other family.
    pub fn other(self) -> Self {
        match self {
            IpFamily::V4 => IpFamily::V6,
            IpFamily::V6 => IpFamily::V4,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

/// `spec.ipFamilyPolicy` of a Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FamilyPolicy {
    /// One IP, of the Service's primary family (`spec.ipFamilies[0]`).
    #[default]
    SingleStack,
    /// One IP of each family when one pool can give both, else one IP.
    PreferDualStack,
    /// One IP of each family, from the same pool, or an error.
    RequireDualStack,
}

/// A Service port's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP
    Tcp,
    /// UDP
    Udp,
    /// SCTP
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// One Service port: only the protocol and the port number matter for sharing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    /// The port's protocol.
    pub protocol: Protocol,
    /// The port number (`spec.ports[].port`).
    pub port: u16,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// Everything the allocator needs to know about one Service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    /// `"namespace/name"`; must start with `namespace` followed by `/`.
    pub key: HolderKey,
    /// The Service's namespace (checked against pools' `namespaces`).
    pub namespace: String,
    /// The Service's labels (checked against pools' `serviceSelector`).
    pub labels: BTreeMap<String, String>,
    /// `spec.ipFamilies` in order, primary first; empty means `[V4]`.
    pub families: Vec<IpFamily>,
    /// `spec.ipFamilyPolicy`.
    pub family_policy: FamilyPolicy,
    /// `spec.loadBalancerIP` and the `loadBalancerIPs` annotation together; at most
    /// one per family (duplicates of the same IP are accepted).
    pub requested_ips: Vec<IpAddr>,
    /// The `address-pool` annotation.
    pub requested_pool: Option<String>,
    /// The `allow-shared-ip` annotation: only Services with equal keys share an IP.
    pub sharing_key: Option<String>,
    /// `spec.ports` (protocol and port); two Services sharing an IP must not overlap.
    pub ports: Vec<Port>,
    /// `spec.externalTrafficPolicy: Local`.
    pub local_traffic_policy: bool,
    /// `spec.selector`; with `Local` policy, Services sharing an IP must have equal selectors.
    pub selector: BTreeMap<String, String>,
    /// Ordering key, smaller = older (e.g. creation timestamp in seconds).
    /// [`Allocator::rebuild`](super::Allocator::rebuild) restores oldest first, so
    /// when two Services' statuses claim the same IP the older one keeps it.
    pub created: i64,
}

/// The addresses given to one Service. All come from one pool; at most one per family,
/// primary family first.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Allocation {
    /// The IPs, primary family first.
    pub ips: Vec<IpAddr>,
    /// The pool they belong to.
    pub pool: String,
}

/// Occupancy of one family of one pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// Pool name.
    pub pool: String,
    /// Address family.
    pub family: IpFamily,
    /// Allocatable addresses (without `.0`/`.255` when `avoidBuggyIPs`).
    pub size: u128,
    /// Addresses held by at least one Service (a shared IP counts once).
    pub in_use: u64,
    /// `size - in_use`.
    pub free: u128,
}
