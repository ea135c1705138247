//! The allocation-related annotations of a Service, parsed without side effects.
//!
//! ferrolb's own keys come first; those of the tools a cluster moves from are
//! accepted as aliases so Services move over unchanged: MetalLB's
//! (`metallb.universe.tf/...` and `metallb.io/...`), Cilium LB-IPAM's
//! (`lbipam.cilium.io/ips`, `lbipam.cilium.io/sharing-key`,
//! `lbipam.cilium.io/sharing-cross-namespace`) and kube-vip's
//! (`kube-vip.io/loadbalancerIPs`). When several keys for the same setting are
//! present they must agree, otherwise the error names both keys and values:
//! silently preferring one would hide a mistake.
//!
//! Cilium shares an address only between Services of one namespace unless each
//! lists the other's namespace in `sharing-cross-namespace` (or `*`); MetalLB and
//! ferrolb share across namespaces. [`ServiceAnnotations::sharing_key`] keeps
//! Cilium's rule by folding the allowed namespaces into the key the allocator
//! compares, so two Services get the same key only when each allows the other.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// ferrolb's key naming the pool to allocate from.
pub const ADDRESS_POOL: &str = "ferrolb.io/address-pool";
/// ferrolb's key carrying the IP-sharing key.
pub const ALLOW_SHARED_IP: &str = "ferrolb.io/allow-shared-ip";
/// ferrolb's key listing requested IPs, comma-separated, at most one per family.
pub const LOAD_BALANCER_IPS: &str = "ferrolb.io/loadBalancerIPs";

/// MetalLB (legacy domain) alias of [`ADDRESS_POOL`].
pub const METALLB_UNIVERSE_ADDRESS_POOL: &str = "metallb.universe.tf/address-pool";
/// MetalLB (legacy domain) alias of [`ALLOW_SHARED_IP`].
pub const METALLB_UNIVERSE_ALLOW_SHARED_IP: &str = "metallb.universe.tf/allow-shared-ip";
/// MetalLB (legacy domain) alias of [`LOAD_BALANCER_IPS`].
pub const METALLB_UNIVERSE_LOAD_BALANCER_IPS: &str = "metallb.universe.tf/loadBalancerIPs";
/// MetalLB alias of [`ADDRESS_POOL`].
pub const METALLB_IO_ADDRESS_POOL: &str = "metallb.io/address-pool";
/// MetalLB alias of [`ALLOW_SHARED_IP`].
pub const METALLB_IO_ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";
/// MetalLB alias of [`LOAD_BALANCER_IPS`].
pub const METALLB_IO_LOAD_BALANCER_IPS: &str = "metallb.io/loadBalancerIPs";

/// Cilium LB-IPAM alias of [`LOAD_BALANCER_IPS`].
pub const CILIUM_IPS: &str = "lbipam.cilium.io/ips";
/// Cilium LB-IPAM alias of [`ALLOW_SHARED_IP`], limited to the Service's namespace
/// unless [`CILIUM_SHARING_CROSS_NAMESPACE`] widens it.
pub const CILIUM_SHARING_KEY: &str = "lbipam.cilium.io/sharing-key";
/// Cilium LB-IPAM: the other namespaces (comma-separated, or `*` for all) whose
/// Services may share this Service's address under its sharing key.
pub const CILIUM_SHARING_CROSS_NAMESPACE: &str = "lbipam.cilium.io/sharing-cross-namespace";
/// kube-vip alias of [`LOAD_BALANCER_IPS`].
pub const KUBE_VIP_LOAD_BALANCER_IPS: &str = "kube-vip.io/loadbalancerIPs";

/// Every key of the pool setting, in precedence order.
pub const ADDRESS_POOL_KEYS: &[&str] = &[
    ADDRESS_POOL,
    METALLB_IO_ADDRESS_POOL,
    METALLB_UNIVERSE_ADDRESS_POOL,
];
/// Every key of the sharing setting, in precedence order.
pub const ALLOW_SHARED_IP_KEYS: &[&str] = &[
    ALLOW_SHARED_IP,
    METALLB_IO_ALLOW_SHARED_IP,
    METALLB_UNIVERSE_ALLOW_SHARED_IP,
    CILIUM_SHARING_KEY,
];
/// Every key of the requested-IPs setting, in precedence order.
pub const LOAD_BALANCER_IPS_KEYS: &[&str] = &[
    LOAD_BALANCER_IPS,
    METALLB_IO_LOAD_BALANCER_IPS,
    METALLB_UNIVERSE_LOAD_BALANCER_IPS,
    CILIUM_IPS,
    KUBE_VIP_LOAD_BALANCER_IPS,
];
/// Every annotation key this module reads (what the controller must keep of a Service).
pub const ALL_KEYS: &[&[&str]] = &[
    ADDRESS_POOL_KEYS,
    ALLOW_SHARED_IP_KEYS,
    LOAD_BALANCER_IPS_KEYS,
    &[CILIUM_SHARING_CROSS_NAMESPACE],
];

/// The allocation settings a Service's annotations carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAnnotations {
    /// The pool to allocate from.
    pub address_pool: Option<String>,
    /// The sharing key, as written.
    pub allow_shared_ip: Option<String>,
    /// Requested IPs, at most one per family, in the order written.
    pub load_balancer_ips: Vec<IpAddr>,
    /// Which namespaces may share the address: `All` unless the key came from
    /// Cilium's `sharing-key`, which shares within the namespace plus those listed
    /// in `sharing-cross-namespace`.
    pub sharing_scope: SharingScope,
}

/// The namespaces whose Services may share an address under one sharing key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SharingScope {
    /// Any namespace (ferrolb's and MetalLB's rule, and Cilium's `*`).
    #[default]
    All,
    /// The Service's own namespace and these others (Cilium's rule), sorted.
    Namespaces(Vec<String>),
}

/// One problem with a Service's annotations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    /// Two keys for the same setting disagree.
    #[error("annotations {key_a}=\"{value_a}\" and {key_b}=\"{value_b}\" conflict; keep only one")]
    Conflict {
        /// The first key.
        key_a: &'static str,
        /// Its value.
        value_a: String,
        /// The conflicting key.
        key_b: &'static str,
        /// Its value.
        value_b: String,
    },
    /// The value is empty (or only blanks).
    #[error("annotation {key} is empty")]
    Empty {
        /// The key.
        key: &'static str,
    },
    /// An item of an IP list is not an IP address.
    #[error("annotation {key}=\"{value}\": \"{item}\" is not an IP address")]
    InvalidIp {
        /// The key (or `spec.loadBalancerIP`).
        key: &'static str,
        /// The whole value.
        value: String,
        /// The offending item.
        item: String,
    },
    /// An item of a namespace list is not a namespace name.
    #[error("annotation {key}=\"{value}\": \"{item}\" is not a namespace name (nor *)")]
    InvalidNamespace {
        /// The key.
        key: &'static str,
        /// The whole value.
        value: String,
        /// The offending item.
        item: String,
    },
    /// More than one IP of one family.
    #[error(
        "annotation {key}=\"{value}\": more than one {family} address ({first} and {second}); at most one per family"
    )]
    TwoOfFamily {
        /// The key (or `spec.loadBalancerIP`).
        key: &'static str,
        /// The whole value.
        value: String,
        /// "IPv4" or "IPv6".
        family: &'static str,
        /// The first address of the family.
        first: IpAddr,
        /// The second one.
        second: IpAddr,
    },
}

/// Every problem found in one Service's annotations (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationErrors(pub Vec<AnnotationError>);

impl fmt::Display for AnnotationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AnnotationErrors {}

/// The key `spec.loadBalancerIP` is reported under by [`ServiceAnnotations::requested_ips`].
pub const SPEC_LOAD_BALANCER_IP: &str = "spec.loadBalancerIP";

fn family_name(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// Parses a comma-separated IP list (blanks around items ignored), at most one per family.
fn parse_ips(key: &'static str, value: &str) -> Result<Vec<IpAddr>, Vec<AnnotationError>> {
    let mut ips: Vec<IpAddr> = Vec::new();
    let mut errors = Vec::new();
    if value.trim().is_empty() {
        return Err(vec![AnnotationError::Empty { key }]);
    }
    for item in value.split(',').map(str::trim) {
        match item.parse::<IpAddr>() {
            Ok(ip) => match ips.iter().find(|o| o.is_ipv4() == ip.is_ipv4()) {
                Some(&first) if first != ip => errors.push(AnnotationError::TwoOfFamily {
                    key,
                    value: value.to_string(),
                    family: family_name(&ip),
                    first,
                    second: ip,
                }),
                Some(_) => {}
                None => ips.push(ip),
            },
            Err(_) => errors.push(AnnotationError::InvalidIp {
                key,
                value: value.to_string(),
                item: item.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(ips)
    } else {
        Err(errors)
    }
}

/// Reads one setting from its keys: present values must agree (compared after
/// `normalise`); returns the first key's value.
fn one_setting<T: PartialEq>(
    annotations: &BTreeMap<String, String>,
    keys: &[&'static str],
    parse: impl Fn(&'static str, &str) -> Result<T, Vec<AnnotationError>>,
    errors: &mut Vec<AnnotationError>,
) -> Option<T> {
    let mut found: Option<(&'static str, &str, T)> = None;
    for &key in keys {
        let Some(raw) = annotations.get(key) else {
            continue;
        };
        let value = match parse(key, raw) {
            Ok(v) => v,
            Err(mut e) => {
                errors.append(&mut e);
                continue;
            }
        };
        match &found {
            None => found = Some((key, raw, value)),
            Some((first_key, first_raw, first_value)) => {
                if *first_value != value {
                    errors.push(AnnotationError::Conflict {
                        key_a: first_key,
                        value_a: first_raw.to_string(),
                        key_b: key,
                        value_b: raw.to_string(),
                    });
                }
            }
        }
    }
    found.map(|(_, _, v)| v)
}

fn parse_name(key: &'static str, value: &str) -> Result<String, Vec<AnnotationError>> {
    let v = value.trim();
    if v.is_empty() {
        Err(vec![AnnotationError::Empty { key }])
    } else {
        Ok(v.to_string())
    }
}

/// Parses the allocation annotations out of a Service's `metadata.annotations`.
/// Unrelated annotations are ignored. Reports every problem at once.
pub fn parse_annotations(
    annotations: &BTreeMap<String, String>,
) -> Result<ServiceAnnotations, AnnotationErrors> {
    let mut errors = Vec::new();
    let address_pool = one_setting(annotations, ADDRESS_POOL_KEYS, parse_name, &mut errors);
    let allow_shared_ip = one_setting(annotations, ALLOW_SHARED_IP_KEYS, parse_name, &mut errors);
    // IP lists are compared as sets of addresses so that "a,b" and "b, a" agree.
    let sorted = |key, value: &str| {
        parse_ips(key, value).map(|ips| {
            let mut s = ips.clone();
            s.sort();
            (s, ips)
        })
    };
    let ips = one_setting(
        annotations,
        LOAD_BALANCER_IPS_KEYS,
        |k, v| sorted(k, v).map(|p| p.0),
        &mut errors,
    );
    // Keep the order written in the winning key.
    let load_balancer_ips = match ips {
        Some(_) => LOAD_BALANCER_IPS_KEYS
            .iter()
            .find_map(|k| annotations.get(*k).and_then(|v| parse_ips(k, v).ok()))
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let sharing_scope = sharing_scope(annotations, &mut errors);
    if errors.is_empty() {
        Ok(ServiceAnnotations {
            address_pool,
            allow_shared_ip,
            load_balancer_ips,
            sharing_scope,
        })
    } else {
        Err(AnnotationErrors(errors))
    }
}

/// Cilium's scope applies as soon as its sharing key is written (even next to an
/// agreeing ferrolb or MetalLB key): the Service was set up under Cilium's rule.
/// `sharing-cross-namespace` alone is ignored, as Cilium ignores it.
fn sharing_scope(
    annotations: &BTreeMap<String, String>,
    errors: &mut Vec<AnnotationError>,
) -> SharingScope {
    if !annotations.contains_key(CILIUM_SHARING_KEY) {
        return SharingScope::All;
    }
    let Some(raw) = annotations.get(CILIUM_SHARING_CROSS_NAMESPACE) else {
        return SharingScope::Namespaces(Vec::new());
    };
    let mut out: Vec<String> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "*" {
            return SharingScope::All;
        }
        if !is_namespace_name(item) {
            errors.push(AnnotationError::InvalidNamespace {
                key: CILIUM_SHARING_CROSS_NAMESPACE,
                value: raw.clone(),
                item: item.to_string(),
            });
            continue;
        }
        out.push(item.to_string());
    }
    out.sort();
    out.dedup();
    SharingScope::Namespaces(out)
}

/// A DNS-1123 label, which every namespace name is.
fn is_namespace_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

impl ServiceAnnotations {
    /// The key the allocator compares to decide whether two Services may share an
    /// address. With [`SharingScope::All`] it is the key as written. With a Cilium
    /// scope it also names every namespace allowed (the Service's own included,
    /// sorted), so that two Services get equal keys only when both allow each
    /// other's namespace, Cilium's condition for sharing.
    pub fn sharing_key(&self, namespace: &str) -> Option<String> {
        let key = self.allow_shared_ip.as_ref()?;
        match &self.sharing_scope {
            SharingScope::All => Some(key.clone()),
            SharingScope::Namespaces(others) => {
                let mut all: Vec<&str> = others.iter().map(String::as_str).collect();
                all.push(namespace);
                all.sort_unstable();
                all.dedup();
                // '/' and ',' appear in no namespace name, so the form is unambiguous.
                Some(format!("{key}/namespaces={}", all.join(",")))
            }
        }
    }

    /// The Service's requested IPs: `spec.loadBalancerIP` (deprecated in Kubernetes but
    /// still used) together with the annotation's list. The same IP in both is fine; two
    /// different IPs of one family are an error naming both sources.
    pub fn requested_ips(
        &self,
        spec_load_balancer_ip: Option<&str>,
    ) -> Result<Vec<IpAddr>, AnnotationError> {
        let mut ips = self.load_balancer_ips.clone();
        let Some(raw) = spec_load_balancer_ip
            .map(str::trim)
            .filter(|s| !s.is_empty())
        else {
            return Ok(ips);
        };
        let ip: IpAddr = raw.parse().map_err(|_| AnnotationError::InvalidIp {
            key: SPEC_LOAD_BALANCER_IP,
            value: raw.to_string(),
            item: raw.to_string(),
        })?;
        match ips.iter().find(|o| o.is_ipv4() == ip.is_ipv4()) {
            Some(&other) if other != ip => Err(AnnotationError::Conflict {
                key_a: SPEC_LOAD_BALANCER_IP,
                value_a: raw.to_string(),
                key_b: LOAD_BALANCER_IPS,
                value_b: ips
                    .iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            }),
            Some(_) => Ok(ips),
            None => {
                ips.insert(0, ip);
                Ok(ips)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_ferrolb_keys() {
        let a = parse_annotations(&ann(&[
            (ADDRESS_POOL, "lan"),
            (ALLOW_SHARED_IP, "web"),
            (LOAD_BALANCER_IPS, "192.0.2.10, 2001:db8::10"),
            ("unrelated/key", "x"),
        ]))
        .unwrap();
        assert_eq!(a.address_pool.as_deref(), Some("lan"));
        assert_eq!(a.allow_shared_ip.as_deref(), Some("web"));
        assert_eq!(
            a.load_balancer_ips,
            vec![
                "192.0.2.10".parse::<IpAddr>().unwrap(),
                "2001:db8::10".parse().unwrap()
            ]
        );
    }

    #[test]
    fn metallb_aliases_are_accepted() {
        for (pool, share, ips) in [
            (
                METALLB_UNIVERSE_ADDRESS_POOL,
                METALLB_UNIVERSE_ALLOW_SHARED_IP,
                METALLB_UNIVERSE_LOAD_BALANCER_IPS,
            ),
            (
                METALLB_IO_ADDRESS_POOL,
                METALLB_IO_ALLOW_SHARED_IP,
                METALLB_IO_LOAD_BALANCER_IPS,
            ),
        ] {
            let a = parse_annotations(&ann(&[(pool, "p"), (share, "k"), (ips, "198.51.100.1")]))
                .unwrap();
            assert_eq!(a.address_pool.as_deref(), Some("p"), "{pool}");
            assert_eq!(a.allow_shared_ip.as_deref(), Some("k"), "{share}");
            assert_eq!(
                a.load_balancer_ips,
                vec!["198.51.100.1".parse::<IpAddr>().unwrap()]
            );
        }
    }

    #[test]
    fn agreeing_aliases_are_fine_conflicting_ones_name_both_keys() {
        let a = parse_annotations(&ann(&[
            (ADDRESS_POOL, "lan"),
            (METALLB_UNIVERSE_ADDRESS_POOL, "lan"),
            (LOAD_BALANCER_IPS, "192.0.2.1,2001:db8::1"),
            (METALLB_IO_LOAD_BALANCER_IPS, "2001:db8::1, 192.0.2.1"),
        ]))
        .unwrap();
        assert_eq!(a.address_pool.as_deref(), Some("lan"));
        assert_eq!(
            a.load_balancer_ips[0],
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );

        let e = parse_annotations(&ann(&[
            (ALLOW_SHARED_IP, "a"),
            (METALLB_UNIVERSE_ALLOW_SHARED_IP, "b"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotations ferrolb.io/allow-shared-ip=\"a\" and metallb.universe.tf/allow-shared-ip=\"b\" conflict; keep only one"
        );
    }

    #[test]
    fn malformed_ips_name_the_annotation_and_value() {
        let e = parse_annotations(&ann(&[(
            METALLB_IO_LOAD_BALANCER_IPS,
            "192.0.2.1,not-an-ip",
        )]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotation metallb.io/loadBalancerIPs=\"192.0.2.1,not-an-ip\": \"not-an-ip\" is not an IP address"
        );
        let e = parse_annotations(&ann(&[(LOAD_BALANCER_IPS, "192.0.2.1,192.0.2.2")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotation ferrolb.io/loadBalancerIPs=\"192.0.2.1,192.0.2.2\": more than one IPv4 address (192.0.2.1 and 192.0.2.2); at most one per family"
        );
    }

    #[test]
    fn every_problem_is_reported_and_empty_values_are_errors() {
        let e = parse_annotations(&ann(&[
            (ADDRESS_POOL, " "),
            (LOAD_BALANCER_IPS, "x"),
            (ALLOW_SHARED_IP, "a"),
            (METALLB_IO_ALLOW_SHARED_IP, "b"),
        ]))
        .unwrap_err();
        assert_eq!(e.0.len(), 3, "{e}");
        assert!(e.0.contains(&AnnotationError::Empty { key: ADDRESS_POOL }));
    }

    #[test]
    fn spec_load_balancer_ip_merges_with_the_annotation() {
        let a = parse_annotations(&ann(&[(LOAD_BALANCER_IPS, "2001:db8::5")])).unwrap();
        assert_eq!(
            a.requested_ips(Some("192.0.2.5")).unwrap(),
            vec![
                "192.0.2.5".parse::<IpAddr>().unwrap(),
                "2001:db8::5".parse().unwrap()
            ]
        );
        assert_eq!(a.requested_ips(Some("2001:db8::5")).unwrap().len(), 1);
        let e = a.requested_ips(Some("2001:db8::6")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotations spec.loadBalancerIP=\"2001:db8::6\" and ferrolb.io/loadBalancerIPs=\"2001:db8::5\" conflict; keep only one"
        );
        let e = a.requested_ips(Some("bogus")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotation spec.loadBalancerIP=\"bogus\": \"bogus\" is not an IP address"
        );
        assert_eq!(a.requested_ips(Some("")).unwrap().len(), 1);
    }

    #[test]
    fn cilium_and_kube_vip_ip_lists_are_requested_ips() {
        for key in [CILIUM_IPS, KUBE_VIP_LOAD_BALANCER_IPS] {
            let a = parse_annotations(&ann(&[(key, "2001:db8::7, 192.0.2.7")])).unwrap();
            assert_eq!(
                a.load_balancer_ips,
                vec![
                    "2001:db8::7".parse::<IpAddr>().unwrap(),
                    "192.0.2.7".parse().unwrap()
                ],
                "{key}"
            );
        }
        let e = parse_annotations(&ann(&[(CILIUM_IPS, "192.0.2.7,192.0.2.8")])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotation lbipam.cilium.io/ips=\"192.0.2.7,192.0.2.8\": more than one IPv4 address (192.0.2.7 and 192.0.2.8); at most one per family"
        );
    }

    #[test]
    fn conflicting_annotations_of_two_tools_name_both() {
        let e = parse_annotations(&ann(&[
            (METALLB_UNIVERSE_LOAD_BALANCER_IPS, "192.0.2.5"),
            (CILIUM_IPS, "192.0.2.6"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotations metallb.universe.tf/loadBalancerIPs=\"192.0.2.5\" and lbipam.cilium.io/ips=\"192.0.2.6\" conflict; keep only one"
        );
        let e = parse_annotations(&ann(&[
            (CILIUM_IPS, "192.0.2.5"),
            (KUBE_VIP_LOAD_BALANCER_IPS, "192.0.2.9"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotations lbipam.cilium.io/ips=\"192.0.2.5\" and kube-vip.io/loadbalancerIPs=\"192.0.2.9\" conflict; keep only one"
        );
        let e = parse_annotations(&ann(&[
            (METALLB_IO_ALLOW_SHARED_IP, "web"),
            (CILIUM_SHARING_KEY, "dns"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotations metallb.io/allow-shared-ip=\"web\" and lbipam.cilium.io/sharing-key=\"dns\" conflict; keep only one"
        );
        // The same request written for two tools is fine.
        let a = parse_annotations(&ann(&[
            (METALLB_IO_LOAD_BALANCER_IPS, "192.0.2.5"),
            (KUBE_VIP_LOAD_BALANCER_IPS, "192.0.2.5"),
        ]))
        .unwrap();
        assert_eq!(
            a.load_balancer_ips,
            vec!["192.0.2.5".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn cilium_sharing_key_shares_within_the_namespace_only() {
        let a = parse_annotations(&ann(&[(CILIUM_SHARING_KEY, "dns")])).unwrap();
        assert_eq!(a.allow_shared_ip.as_deref(), Some("dns"));
        assert_eq!(a.sharing_scope, SharingScope::Namespaces(vec![]));
        assert_eq!(
            a.sharing_key("prod").as_deref(),
            Some("dns/namespaces=prod")
        );
        assert_ne!(a.sharing_key("prod"), a.sharing_key("dev"));
        // ferrolb's and MetalLB's keys share across namespaces.
        let m = parse_annotations(&ann(&[(METALLB_IO_ALLOW_SHARED_IP, "dns")])).unwrap();
        assert_eq!(m.sharing_key("prod"), m.sharing_key("dev"));
        assert_eq!(m.sharing_key("prod").as_deref(), Some("dns"));
        assert_eq!(
            parse_annotations(&ann(&[])).unwrap().sharing_key("prod"),
            None
        );
    }

    #[test]
    fn cilium_cross_namespace_sharing_needs_both_sides_to_allow() {
        let key = |ns: &str, cross: &str| {
            parse_annotations(&ann(&[
                (CILIUM_SHARING_KEY, "dns"),
                (CILIUM_SHARING_CROSS_NAMESPACE, cross),
            ]))
            .unwrap()
            .sharing_key(ns)
            .unwrap()
        };
        // Each lists the other: same key.
        assert_eq!(key("prod", "dev"), key("dev", " prod"));
        assert_eq!(key("prod", "dev"), "dns/namespaces=dev,prod");
        // Only one side allows the other: different keys, no sharing.
        let alone = parse_annotations(&ann(&[(CILIUM_SHARING_KEY, "dns")]))
            .unwrap()
            .sharing_key("dev")
            .unwrap();
        assert_ne!(key("prod", "dev"), alone);
        // `*` allows every namespace: the plain key, as MetalLB's.
        assert_eq!(key("prod", "dev,*"), "dns");
        assert_eq!(key("dev", "*"), key("prod", "*"));
        // A namespace list without a sharing key does nothing (as in Cilium).
        let a = parse_annotations(&ann(&[(CILIUM_SHARING_CROSS_NAMESPACE, "dev")])).unwrap();
        assert_eq!(a.sharing_key("prod"), None);
        let e = parse_annotations(&ann(&[
            (CILIUM_SHARING_KEY, "dns"),
            (CILIUM_SHARING_CROSS_NAMESPACE, "dev,Not_A_Namespace"),
        ]))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "annotation lbipam.cilium.io/sharing-cross-namespace=\"dev,Not_A_Namespace\": \"Not_A_Namespace\" is not a namespace name (nor *)"
        );
    }
}
