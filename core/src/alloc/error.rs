//! Why an allocation failed.

use std::net::IpAddr;

use super::types::{HolderKey, IpFamily, Port};

/// Why a Service could not get (or keep) an address. `Display` is the human reason,
/// fit for a Kubernetes Event; [`AllocError::reason`] is a short stable label for metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The pool has no free address of the family.
    #[error("address pool \"{pool}\" has no free {family} address")]
    PoolExhausted {
        /// The pool.
        pool: String,
        /// The family that ran out.
        family: IpFamily,
    },
    /// No pool this Service may use (auto-assign ones when it names no pool) has the family.
    #[error("no address pool that this Service may use has {family} addresses")]
    NoPoolForFamily {
        /// The missing family.
        family: IpFamily,
    },
    /// A requested IP (or an IP restored from status) lies in no pool, or not in the
    /// requested pool.
    #[error("IP {ip} is not in {}", match pool { Some(p) => format!("address pool \"{p}\""), None => "any address pool".to_string() })]
    RequestedIpNotInPool {
        /// The requested IP.
        ip: IpAddr,
        /// The pool the Service asked for, if any.
        pool: Option<String>,
    },
    /// The IP is held by another Service and sharing is not possible (no sharing key on
    /// one side).
    #[error("IP {ip} is already used by Service {holder}")]
    IpInUse {
        /// The IP.
        ip: IpAddr,
        /// A Service holding it.
        holder: HolderKey,
    },
    /// The pool's `namespaces` or `serviceSelector` exclude the Service.
    #[error("address pool \"{pool}\" may not be used by this Service: {reason}")]
    PoolNotAllowed {
        /// The pool.
        pool: String,
        /// Which restriction excludes the Service.
        reason: String,
    },
    /// The requested pool does not exist.
    #[error("address pool \"{pool}\" does not exist")]
    UnknownPool {
        /// The requested pool name.
        pool: String,
    },
    /// The IP is held by a Service with another (or no) sharing key.
    #[error(
        "IP {ip} is used by Service {holder}, which does not share it under the same allow-shared-ip key"
    )]
    SharingKeyMismatch {
        /// The IP.
        ip: IpAddr,
        /// The Service holding it.
        holder: HolderKey,
    },
    /// Sharing the IP would put two Services on the same port and protocol.
    #[error("IP {ip} cannot be shared with Service {holder}: both use port {port}")]
    PortConflict {
        /// The IP.
        ip: IpAddr,
        /// The colliding port.
        port: Port,
        /// The Service already on it.
        holder: HolderKey,
    },
    /// Sharing the IP with `externalTrafficPolicy: Local` needs equal pod selectors.
    #[error(
        "IP {ip} cannot be shared with Service {holder}: with externalTrafficPolicy Local both Services must have the same pod selector"
    )]
    SelectorMismatch {
        /// The IP.
        ip: IpAddr,
        /// The Service holding it.
        holder: HolderKey,
    },
    /// The IP is a `.0` or `.255` and its pool has `avoidBuggyIPs`.
    #[error(
        "IP {ip} is a .0 or .255 address, which address pool \"{pool}\" avoids (avoidBuggyIPs)"
    )]
    BuggyIp {
        /// The IP.
        ip: IpAddr,
        /// The pool.
        pool: String,
    },
    /// The request itself is inconsistent (e.g. two requested IPs of one family).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

impl AllocError {
    /// A short CamelCase reason, stable, for metric labels and Event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            AllocError::PoolExhausted { .. } => "PoolExhausted",
            AllocError::NoPoolForFamily { .. } => "NoPoolForFamily",
            AllocError::RequestedIpNotInPool { .. } => "RequestedIpNotInPool",
            AllocError::IpInUse { .. } => "IpInUse",
            AllocError::PoolNotAllowed { .. } => "PoolNotAllowed",
            AllocError::UnknownPool { .. } => "UnknownPool",
            AllocError::SharingKeyMismatch { .. } => "SharingKeyMismatch",
            AllocError::PortConflict { .. } => "PortConflict",
            AllocError::SelectorMismatch { .. } => "SelectorMismatch",
            AllocError::BuggyIp { .. } => "BuggyIp",
            AllocError::InvalidRequest(_) => "InvalidRequest",
        }
    }
}
