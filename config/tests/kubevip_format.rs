//! kube-vip-cloud-provider's ConfigMap: mapping and exact error text.

use std::collections::BTreeMap;

use ferrolb_config::{Format, IpRange, parse_configmap_data};

fn r(a: &str, b: &str) -> IpRange {
    IpRange {
        start: a.parse().unwrap(),
        end: b.parse().unwrap(),
    }
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn errors(pairs: &[(&str, &str)]) -> Vec<String> {
    match parse_configmap_data(&data(pairs)) {
        Ok(p) => panic!("expected errors, got {p:?}"),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn namespace_pools_come_before_global() {
    let parsed = parse_configmap_data(&data(&[
        ("range-global", "192.0.2.200-192.0.2.202"),
        ("cidr-global", "192.0.2.224/29"),
        ("cidr-prod", "198.51.100.0/28, 2001:db8:1::/126"),
        ("range-prod", "198.51.100.100-198.51.100.110"),
        (
            "range-dev",
            "203.0.113.10-203.0.113.20,203.0.113.30-203.0.113.31",
        ),
    ]))
    .unwrap();
    assert_eq!(parsed.format, Format::KubeVip);
    let c = parsed.config;
    let names: Vec<&str> = c.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["dev", "prod", "global"]);
    let dev = &c.pools[0];
    assert_eq!(dev.namespaces, Some(vec!["dev".to_string()]));
    assert_eq!(
        dev.ranges,
        vec![
            r("203.0.113.10", "203.0.113.20"),
            r("203.0.113.30", "203.0.113.31")
        ]
    );
    let prod = &c.pools[1];
    assert_eq!(
        prod.ranges,
        vec![
            r("198.51.100.0", "198.51.100.15"),
            r("198.51.100.100", "198.51.100.110"),
            r("2001:db8:1::", "2001:db8:1::3")
        ]
    );
    let global = &c.pools[2];
    assert_eq!(global.namespaces, None);
    assert_eq!(
        global.ranges,
        vec![
            r("192.0.2.200", "192.0.2.202"),
            r("192.0.2.224", "192.0.2.231")
        ]
    );
    for p in &c.pools {
        assert!(p.auto_assign);
        assert!(!p.avoid_buggy_ips);
        assert_eq!(p.service_selector, None);
    }
    // kube-vip behaviour through the allocator's rule "first allowed auto-assign pool in order":
    let first_for = |ns: &str| {
        c.pools
            .iter()
            .find(|p| p.auto_assign && p.allows(ns, &BTreeMap::new()))
            .map(|p| p.name.as_str())
    };
    assert_eq!(first_for("prod"), Some("prod"));
    assert_eq!(first_for("dev"), Some("dev"));
    assert_eq!(first_for("other"), Some("global"));
}

#[test]
fn kubevip_readme_style_values_are_read_as_they_are() {
    // Host bits set and overlapping entries, exactly as kube-vip's own examples write them.
    let c = parse_configmap_data(&data(&[(
        "cidr-global",
        "192.0.2.220/29,192.0.2.200/30,192.0.2.200/29",
    )]))
    .unwrap()
    .config;
    assert_eq!(
        c.pools[0].ranges,
        vec![
            r("192.0.2.200", "192.0.2.207"),
            r("192.0.2.216", "192.0.2.223")
        ]
    );
}

#[test]
fn skip_end_ips_and_interface_global() {
    let c = parse_configmap_data(&data(&[
        (
            "cidr-global",
            "192.0.2.0/24,198.51.100.8/31,198.51.100.20/32,2001:db8::/126",
        ),
        ("skip-end-ips-in-cidr", "true"),
        ("interface-global", "eth1"),
        ("search-order", "asc"),
        ("allow-share-global", "false"),
    ]))
    .unwrap()
    .config;
    assert_eq!(
        c.pools[0].ranges,
        vec![
            r("192.0.2.1", "192.0.2.254"),
            r("198.51.100.8", "198.51.100.9"),
            r("198.51.100.20", "198.51.100.20"),
            r("2001:db8::", "2001:db8::3"),
        ]
    );
    assert_eq!(c.l2.interfaces, vec!["eth1".to_string()]);
}

#[test]
fn malformed_entries() {
    assert_eq!(
        errors(&[
            (
                "cidr-global",
                "192.0.2.0/24,,192.0.2.300/32,192.0.2.1-192.0.2.5"
            ),
            (
                "range-global",
                "192.0.2.9-192.0.2.1,198.51.100.1,198.51.100.0/24,192.0.2.1-2001:db8::1"
            ),
            ("cidr-prod", ""),
        ]),
        [
            r#"pool "global", data["cidr-global"][1] = "": empty entry (a stray comma?)"#,
            r#"pool "global", data["cidr-global"][2] = "192.0.2.300/32": not a valid CIDR: "192.0.2.300" is not an IP address"#,
            r#"pool "global", data["cidr-global"][3] = "192.0.2.1-192.0.2.5": expected a CIDR (address/prefix-length), not a range"#,
            r#"pool "prod", data["cidr-prod"] = "": no addresses listed"#,
            r#"pool "global", data["range-global"][0] = "192.0.2.9-192.0.2.1": reversed range: start 192.0.2.9 is after end 192.0.2.1"#,
            r#"pool "global", data["range-global"][1] = "198.51.100.1": expected a range written start-end"#,
            r#"pool "global", data["range-global"][2] = "198.51.100.0/24": expected a range written start-end, not a CIDR"#,
            r#"pool "global", data["range-global"][3] = "192.0.2.1-2001:db8::1": range mixes IPv4 and IPv6 (start 192.0.2.1 is IPv4, end 2001:db8::1 is IPv6)"#,
        ]
    );
}

#[test]
fn unsupported_and_unknown_keys() {
    assert_eq!(
        errors(&[
            ("cidr-global", "192.0.2.0/28"),
            ("range-Prod", "192.0.2.20-192.0.2.30"),
            ("search-order", "desc"),
            ("allow-share-dev", "true"),
            ("interface-dev", "eth2"),
            ("skip-end-ips-in-cidr", "yes"),
            ("cidr_global", "192.0.2.0/28"),
        ]),
        [
            r#"data["allow-share-dev"] = "true": sharing every address of a namespace is not supported: annotate the Services that share with ferrolb.io/allow-shared-ip instead"#,
            r#"data["cidr_global"]: unknown kube-vip key, did you mean "cidr-global"?"#,
            r#"data["interface-dev"]: a per-namespace interface is not supported: ferrolb announces per pool, not per namespace (use interface-global, or `ferrolb-controller convert`, which writes it as an l2 policy for the namespace's pool)"#,
            r#"data["search-order"] = "desc": search-order desc is not supported: ferrolb chooses addresses itself; remove the key"#,
            r#"data["skip-end-ips-in-cidr"] = "yes": expected "true" or "false""#,
            r#"data["range-Prod"]: "Prod" is not a namespace name: must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"#,
        ]
    );
}

#[test]
fn overlap_between_namespace_pool_and_global() {
    assert_eq!(
        errors(&[
            ("cidr-global", "192.0.2.0/24"),
            ("range-prod", "192.0.2.10-192.0.2.20")
        ]),
        [
            r#"pool "global", data["cidr-global"][0] = "192.0.2.0/24": overlaps data["range-prod"][0] = "192.0.2.10-192.0.2.20" of pool "prod" (common addresses: 192.0.2.10-192.0.2.20)"#
        ]
    );
}

#[test]
fn overlap_with_a_merged_pool_names_the_entry_that_overlaps() {
    assert_eq!(
        errors(&[
            ("cidr-global", "198.51.100.0/24,192.0.2.0/28,192.0.2.0/29"),
            ("range-prod", "192.0.2.4-192.0.2.5"),
        ]),
        [
            r#"pool "global", data["cidr-global"][1] = "192.0.2.0/28": overlaps data["range-prod"][0] = "192.0.2.4-192.0.2.5" of pool "prod" (common addresses: 192.0.2.4-192.0.2.5)"#
        ]
    );
    // Thousands of identical kube-vip entries are one pool, quickly.
    let many = vec!["192.0.2.0/24"; 5000].join(",");
    let c = parse_configmap_data(&data(&[("cidr-global", many.as_str())]))
        .unwrap()
        .config;
    assert_eq!(c.pools[0].ranges, vec![r("192.0.2.0", "192.0.2.255")]);
}
