//! Writing a [`Config`] as ferrolb's `config.yaml` inside a ConfigMap manifest.
//!
//! Written by hand rather than through a serializer so that the output reads
//! like the documentation's examples: fields in the documented order, defaults
//! left out, addresses as CIDRs where they are one. Every string is written as
//! a JSON string, which YAML reads as the same double-quoted scalar.

use std::fmt::Write;
use std::net::IpAddr;

use crate::model::{Config, InterfaceMatcher, IpRange, L2Policy};
use crate::selector::flow as selector;

use super::{CONFIGMAP_NAME, CONFIGMAP_NAMESPACE};

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(", "))
}

/// A range as written in `addresses`: a single IP, a CIDR when it is exactly
/// one, else `start-end`.
pub fn range_text(r: &IpRange) -> String {
    if r.start == r.end {
        return r.start.to_string();
    }
    let (s, e, bits) = match (r.start, r.end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(a) as u128, u32::from(b) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return format!("{}-{}", r.start, r.end),
    };
    let size = e.wrapping_sub(s).wrapping_add(1);
    // A CIDR: the size is a power of two (0 here means all 2^128) and the start aligned to it.
    let aligned = |size: u128| size.is_power_of_two() && s % size == 0;
    if size == 0 && s == 0 {
        return format!("{}/0", r.start);
    }
    if aligned(size) {
        let prefix = bits - size.trailing_zeros();
        return format!("{}/{prefix}", r.start);
    }
    format!("{}-{}", r.start, r.end)
}

/// The `config.yaml` text of `config`.
pub fn config_yaml(config: &Config) -> String {
    let mut out = String::new();
    if config.pools.is_empty() {
        out.push_str("pools: []\n");
    } else {
        out.push_str("pools:\n");
    }
    for p in &config.pools {
        let _ = writeln!(out, "  - name: {}", q(&p.name));
        let _ = writeln!(
            out,
            "    addresses: {}",
            list(p.ranges.iter().map(|r| q(&range_text(r))))
        );
        if !p.auto_assign {
            out.push_str("    autoAssign: false\n");
        }
        if p.avoid_buggy_ips {
            out.push_str("    avoidBuggyIPs: true\n");
        }
        if let Some(ns) = &p.namespaces {
            let _ = writeln!(out, "    namespaces: {}", list(ns.iter().map(|n| q(n))));
        }
        if let Some(sel) = &p.service_selector {
            let _ = writeln!(out, "    serviceSelector: {}", selector(sel));
        }
        if !p.labels.is_empty() {
            let labels: Vec<String> = p
                .labels
                .iter()
                .map(|(k, v)| format!("{}: {}", q(k), q(v)))
                .collect();
            let _ = writeln!(out, "    labels: {{{}}}", labels.join(", "));
        }
    }
    let l2 = &config.l2;
    if !l2.interfaces.is_empty() || l2.node_selector.is_some() || !l2.policies.is_empty() {
        out.push_str("l2:\n");
        if !l2.interfaces.is_empty() {
            let _ = writeln!(
                out,
                "  interfaces: {}",
                list(l2.interfaces.iter().map(|i| q(i)))
            );
        }
        if let Some(sel) = &l2.node_selector {
            let _ = writeln!(out, "  nodeSelector: {}", selector(sel));
        }
        if !l2.policies.is_empty() {
            out.push_str("  policies:\n");
        }
        for p in &l2.policies {
            policy(&mut out, p);
        }
    }
    out
}

/// One `l2.policies` entry, fields in the documented order.
fn policy(out: &mut String, p: &L2Policy) {
    let _ = writeln!(out, "    - name: {}", q(&p.name));
    if !p.pools.names.is_empty() {
        let _ = writeln!(
            out,
            "      pools: {}",
            list(p.pools.names.iter().map(|n| q(n)))
        );
    }
    if let Some(sel) = &p.pools.selector {
        let _ = writeln!(out, "      poolSelector: {}", selector(sel));
    }
    let (regexes, names): (Vec<&InterfaceMatcher>, Vec<&InterfaceMatcher>) = p
        .interfaces
        .iter()
        .partition(|m| matches!(m, InterfaceMatcher::Regex(_)));
    let text = |m: &InterfaceMatcher| match m {
        InterfaceMatcher::Name(n) | InterfaceMatcher::Glob(n) => q(n),
        InterfaceMatcher::Regex(r) => q(r.as_str()),
    };
    if !names.is_empty() {
        let _ = writeln!(
            out,
            "      interfaces: {}",
            list(names.into_iter().map(text))
        );
    }
    if !regexes.is_empty() {
        let _ = writeln!(
            out,
            "      interfaceRegexes: {}",
            list(regexes.into_iter().map(text))
        );
    }
    if let Some(sel) = &p.node_selector {
        let _ = writeln!(out, "      nodeSelector: {}", selector(sel));
    }
    if let Some(sel) = &p.service_selector {
        let _ = writeln!(out, "      serviceSelector: {}", selector(sel));
    }
}

/// The whole ConfigMap manifest, with a comment naming the source files.
pub fn manifest<'a>(config: &Config, files: impl Iterator<Item = &'a str>) -> String {
    let files: Vec<&str> = files.collect();
    let mut out = format!(
        "# Written by `ferrolb-controller convert` from {}.\n\
         # Check it with `ferrolb-controller check-config FILE` before applying it.\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {CONFIGMAP_NAME}\n  namespace: {CONFIGMAP_NAMESPACE}\ndata:\n  config.yaml: |\n",
        files.join(", ").replace('\n', " ")
    );
    for line in config_yaml(config).lines() {
        let _ = writeln!(out, "    {line}");
    }
    out
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
    fn ranges_are_written_as_cidrs_when_they_are_one() {
        assert_eq!(range_text(&r("192.0.2.0", "192.0.2.255")), "192.0.2.0/24");
        assert_eq!(range_text(&r("192.0.2.7", "192.0.2.7")), "192.0.2.7");
        assert_eq!(
            range_text(&r("192.0.2.1", "192.0.2.254")),
            "192.0.2.1-192.0.2.254"
        );
        assert_eq!(
            range_text(&r("192.0.2.8", "192.0.2.23")),
            "192.0.2.8-192.0.2.23"
        );
        assert_eq!(range_text(&r("0.0.0.0", "255.255.255.255")), "0.0.0.0/0");
        assert_eq!(
            range_text(&r("2001:db8::", "2001:db8::ff")),
            "2001:db8::/120"
        );
        assert_eq!(
            range_text(&r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")),
            "::/0"
        );
        assert_eq!(
            range_text(&r("2001:db8::1", "2001:db8::2")),
            "2001:db8::1-2001:db8::2"
        );
    }
}
