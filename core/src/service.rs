//! What both binaries decide about a Service object, decided once: whether it is
//! ferrolb's, and which IPs its status holds. Plain fields in, so that each binary's
//! own slim Service type reads them.

use std::net::IpAddr;

/// What to do with a Service that is being deleted (it has a deletion timestamp, and
/// finalizers keep it around).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhileDeleting {
    /// Not ours any more: the controller releases its IPs and writes nothing.
    NotOurs,
    /// Still ours: the speakers keep answering for it until it is gone, because its
    /// traffic still flows while finalizers run.
    StillOurs,
}

/// True when ferrolb handles a Service of `type_` and `class`: type `LoadBalancer` and a
/// `spec.loadBalancerClass` that is unset or `ours`; a Service being deleted as
/// `while_deleting` says.
pub fn is_ours(
    type_: Option<&str>,
    class: Option<&str>,
    ours: &str,
    deleting: bool,
    while_deleting: WhileDeleting,
) -> bool {
    type_ == Some("LoadBalancer")
        && class.is_none_or(|c| c == ours)
        && (!deleting || while_deleting == WhileDeleting::StillOurs)
}

/// The IPs of `status.loadBalancer.ingress[].ip`, in order, without duplicates; entries
/// that are hostnames, empty or not valid IPs (surrounding spaces are tolerated) are
/// skipped.
pub fn ingress_ips<'a>(ips: impl IntoIterator<Item = Option<&'a str>>) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for ip in ips
        .into_iter()
        .flatten()
        .filter_map(|s| s.trim().parse::<IpAddr>().ok())
    {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_balancers_of_our_class_or_none_are_ours() {
        let ours = |t, c| is_ours(t, c, "ferrolb.io/lb", false, WhileDeleting::NotOurs);
        assert!(ours(Some("LoadBalancer"), None));
        assert!(ours(Some("LoadBalancer"), Some("ferrolb.io/lb")));
        assert!(!ours(Some("LoadBalancer"), Some("other.io/lb")));
        assert!(!ours(Some("ClusterIP"), None));
        assert!(!ours(None, None));
    }

    #[test]
    fn deletion_is_decided_by_the_caller() {
        let lb = Some("LoadBalancer");
        assert!(!is_ours(lb, None, "x", true, WhileDeleting::NotOurs));
        assert!(is_ours(lb, None, "x", true, WhileDeleting::StillOurs));
        assert!(is_ours(lb, None, "x", false, WhileDeleting::NotOurs));
    }

    #[test]
    fn ingress_ips_skip_hostnames_garbage_and_duplicates() {
        let ips = ingress_ips([
            Some("192.0.2.1"),
            None,
            Some("lb.example.org"),
            Some(" 2001:db8::1 "),
            Some("192.0.2.1"),
            Some(""),
        ]);
        assert_eq!(
            ips,
            vec![
                "192.0.2.1".parse::<IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
    }
}
