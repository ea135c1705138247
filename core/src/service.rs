//! What both binaries decide about a Service object, decided once: its identity
//! ([`ServiceKey`]), whether it is ferrolb's, and which IPs its status holds. Plain
//! fields in, so that each binary's own slim Service type reads them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Identity of a Service: namespace and name.
///
/// Its text form is `namespace/name` ([`fmt::Display`], read back by [`FromStr`]); the
/// allocator keys its allocations by that text ([`crate::alloc::HolderKey`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
}

impl ServiceKey {
    /// Builds a key from namespace and name.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A text that is not `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a Service key: expected namespace/name, both non-empty and without '/'")]
pub struct ParseServiceKeyError {
    /// The text read.
    pub text: String,
}

impl FromStr for ServiceKey {
    type Err = ParseServiceKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match split_key(s) {
            Some((ns, name)) => Ok(Self::new(ns, name)),
            None => Err(ParseServiceKeyError { text: s.to_owned() }),
        }
    }
}

/// The text form of a [`ServiceKey`], `namespace/name` (what its `Display` writes),
/// built from borrowed parts in one allocation: the controller builds one per
/// Service at every rebuild, and two short-lived strings each would leave holes
/// in the heap between the ones it keeps (BENCHMARKS.md, "Controller").
pub fn key_text(namespace: &str, name: &str) -> String {
    let mut s = String::with_capacity(namespace.len() + 1 + name.len());
    s.push_str(namespace);
    s.push('/');
    s.push_str(name);
    s
}

/// Reads `namespace/name` back into its parts without copying them; `None` for a
/// text that [`ServiceKey`]'s `FromStr` refuses.
pub fn split_key(text: &str) -> Option<(&str, &str)> {
    text.split_once('/')
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
}

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
    fn the_key_text_is_the_display_of_the_key_and_splits_back_into_its_parts() {
        let k = ServiceKey::new("shop", "web-1");
        let text = key_text("shop", "web-1");
        assert_eq!(text, k.to_string());
        assert_eq!(text.capacity(), text.len());
        assert_eq!(split_key(&text), Some(("shop", "web-1")));
    }

    #[test]
    fn a_service_key_reads_back_its_text_and_rejects_other_text() {
        let k = ServiceKey::new("shop", "web");
        assert_eq!(k.to_string(), "shop/web");
        assert_eq!("shop/web".parse::<ServiceKey>(), Ok(k));
        for bad in ["web", "/web", "shop/", "a/b/c", ""] {
            let e = bad.parse::<ServiceKey>().unwrap_err();
            assert_eq!(e.text, bad);
            assert!(e.to_string().contains("namespace/name"), "{e}");
            assert_eq!(split_key(bad), None, "{bad:?}");
        }
    }

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
