//! MetalLB's legacy ConfigMap (key `config`): mapping and exact error text.

use std::collections::BTreeMap;

use ferrolb_config::{Format, IpRange, parse_configmap_data, parse_metallb_legacy};

fn r(a: &str, b: &str) -> IpRange {
    IpRange {
        start: a.parse().unwrap(),
        end: b.parse().unwrap(),
    }
}

fn errors(yaml: &str) -> Vec<String> {
    match parse_metallb_legacy(yaml) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn layer2_pools_map_onto_the_model() {
    let data = BTreeMap::from([(
        "config".to_string(),
        "address-pools:\n- name: default\n  protocol: layer2\n  addresses:\n  - 192.0.2.10-192.0.2.20\n  - 198.51.100.0/24\n- name: manual\n  protocol: layer2\n  addresses: [203.0.113.0/28]\n  auto-assign: false\n  avoid-buggy-ips: true\npeers: []\n"
            .to_string(),
    )]);
    let parsed = parse_configmap_data(&data).unwrap();
    assert_eq!(parsed.format, Format::MetalLbLegacy);
    let c = parsed.config;
    assert_eq!(c.pools.len(), 2);
    assert_eq!(c.pools[0].name, "default");
    assert_eq!(
        c.pools[0].ranges,
        vec![
            r("192.0.2.10", "192.0.2.20"),
            r("198.51.100.0", "198.51.100.255")
        ]
    );
    assert!(c.pools[0].auto_assign);
    assert!(!c.pools[0].avoid_buggy_ips);
    assert_eq!(c.pools[0].namespaces, None);
    assert_eq!(c.pools[0].service_selector, None);
    assert_eq!(c.pools[1].name, "manual");
    assert!(!c.pools[1].auto_assign);
    assert!(c.pools[1].avoid_buggy_ips);
    assert_eq!(c.l2, Default::default());
}

#[test]
fn bgp_pools_are_a_clear_error_naming_the_pool() {
    assert_eq!(
        errors(
            "address-pools:\n- name: edge\n  protocol: bgp\n  addresses: [192.0.2.0/28]\n- name: lan\n  protocol: layer2\n  addresses: [192.0.2.16/28]\n"
        ),
        [
            r#"pool "edge", address-pools[0].protocol = "bgp": BGP is not supported: ferrolb announces addresses at layer 2 only; use protocol: layer2"#
        ]
    );
}

#[test]
fn bgp_sections_are_errors() {
    assert_eq!(
        errors(
            "peers:\n- peer-address: 192.0.2.1\n  peer-asn: 64501\n  my-asn: 64500\nbgp-communities:\n  no-advertise: 65535:65282\naddress-pools:\n- name: lan\n  protocol: layer2\n  addresses: [192.0.2.16/28]\n  bgp-advertisements:\n  - aggregation-length: 32\n"
        ),
        [
            "peers: BGP is not supported: ferrolb announces addresses at layer 2 only; remove this section",
            "bgp-communities: BGP is not supported: ferrolb announces addresses at layer 2 only; remove this section",
            r#"pool "lan", address-pools[0].bgp-advertisements: BGP is not supported: ferrolb announces addresses at layer 2 only; remove this field"#,
        ]
    );
}

#[test]
fn unknown_protocol_and_fields() {
    assert_eq!(
        errors(
            "address-pools:\n- name: lan\n  protocol: Layer2\n  addresses: [192.0.2.0/28]\n  autoAssign: false\n- name: wan\n  protocol: arp\n  addresses: [192.0.2.16/28]\naddress-pool: []\n"
        ),
        [
            r#"pool "lan", address-pools[0].protocol = "Layer2": unknown protocol (ferrolb supports layer2); did you mean "layer2"?"#,
            r#"pool "lan", address-pools[0].autoAssign: unknown field, did you mean "auto-assign"?"#,
            r#"pool "wan", address-pools[1].protocol = "arp": unknown protocol (ferrolb supports layer2)"#,
            r#"address-pool: unknown field, did you mean "address-pools"?"#,
        ]
    );
}

#[test]
fn missing_fields_bad_values_and_cross_pool_checks() {
    assert_eq!(
        errors(
            "address-pools:\n- name: a\n  addresses: [192.0.2.0/28]\n- name: a\n  protocol: layer2\n  addresses: [192.0.2.8/29, 192.0.2.7/24]\n  auto-assign: \"no\"\n- protocol: layer2\n  addresses: [192.0.2.255]\n  avoid-buggy-ips: true\n"
        ),
        [
            r#"pool "a", address-pools[0].protocol: required field is missing"#,
            r#"pool "a", address-pools[1].addresses[1] = "192.0.2.7/24": host bits are set (the network is 192.0.2.0/24; write that, or a range such as 192.0.2.7-192.0.2.255)"#,
            r#"pool "a", address-pools[1].auto-assign = "no": expected a boolean (true or false), got a string"#,
            "pool at index 2, address-pools[2].name: required field is missing",
            r#"pool "a", address-pools[1].name = "a": duplicate pool name (first defined at address-pools[0].name)"#,
            r#"pool "a", address-pools[1].addresses[0] = "192.0.2.8/29": overlaps address-pools[0].addresses[0] = "192.0.2.0/28" of pool "a" (common addresses: 192.0.2.8-192.0.2.15)"#,
            "pool at index 2, address-pools[2].addresses: no usable address left: avoid-buggy-ips skips every .0 and .255, and the pool has nothing else",
        ]
    );
}

#[test]
fn empty_or_poolless_config() {
    assert_eq!(errors(""), ["the configuration is empty"]);
    assert_eq!(
        errors("peers: []\n"),
        ["address-pools: required field is missing"]
    );
}
