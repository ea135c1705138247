//! ferrolb's own `config.yaml`: the happy path and the exact text of every kind of error.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_config::{Config, IpRange, ProblemKind, SelectorRequirement, parse_ferrolb_yaml};

fn r(a: &str, b: &str) -> IpRange {
    IpRange {
        start: a.parse().unwrap(),
        end: b.parse().unwrap(),
    }
}

fn errors(yaml: &str) -> Vec<String> {
    match parse_ferrolb_yaml(yaml) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

fn ok(yaml: &str) -> Config {
    parse_ferrolb_yaml(yaml).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

const ISSUE_EXAMPLE: &str = r#"
pools:
  - name: lan
    addresses: ["192.0.2.0/28", "192.0.2.100-192.0.2.120", "192.0.2.200", "2001:db8:10::/120"]
    autoAssign: true
    avoidBuggyIPs: false
    namespaces: [prod]
    serviceSelector:
      matchLabels: {tier: edge}
l2:
  interfaces: [eth0]
  nodeSelector:
    matchLabels: {ferrolb.io/speaker: "true"}
"#;

#[test]
fn the_issue_example_parses_into_the_model() {
    let c = ok(ISSUE_EXAMPLE);
    assert_eq!(c.pools.len(), 1);
    let p = &c.pools[0];
    assert_eq!(p.name, "lan");
    assert_eq!(
        p.ranges,
        vec![
            r("192.0.2.0", "192.0.2.15"),
            r("192.0.2.100", "192.0.2.120"),
            r("192.0.2.200", "192.0.2.200"),
            r("2001:db8:10::", "2001:db8:10::ff"),
        ]
    );
    assert!(p.auto_assign);
    assert!(!p.avoid_buggy_ips);
    assert_eq!(p.namespaces, Some(vec!["prod".to_string()]));
    let sel = p.service_selector.as_ref().unwrap();
    assert_eq!(
        sel.match_labels,
        BTreeMap::from([("tier".to_string(), "edge".to_string())])
    );
    assert_eq!(c.l2.interfaces, vec!["eth0".to_string()]);
    let ns = c.l2.node_selector.as_ref().unwrap();
    assert_eq!(
        ns.match_labels
            .get("ferrolb.io/speaker")
            .map(String::as_str),
        Some("true")
    );
}

#[test]
fn defaults_apply_when_fields_are_left_out_or_null() {
    let c = ok(
        "pools:\n- name: a\n  addresses: [198.51.100.0/24]\n- name: b\n  addresses: [203.0.113.9]\n  autoAssign: ~\n  namespaces:\n  serviceSelector:\n",
    );
    for p in &c.pools {
        assert!(p.auto_assign);
        assert!(!p.avoid_buggy_ips);
        assert_eq!(p.namespaces, None);
        assert_eq!(p.service_selector, None);
    }
    assert_eq!(c.l2, Default::default());
}

#[test]
fn pools_keep_their_order_and_ranges_are_sorted() {
    let c = ok(
        "pools:\n- name: z\n  addresses: [203.0.113.10, 2001:db8::/126, 203.0.113.1-203.0.113.5]\n  autoAssign: false\n  avoidBuggyIPs: true\n- name: a\n  addresses: [198.51.100.0/30]\n",
    );
    assert_eq!(
        c.pools.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["z", "a"]
    );
    assert_eq!(
        c.pools[0].ranges,
        vec![
            r("203.0.113.1", "203.0.113.5"),
            r("203.0.113.10", "203.0.113.10"),
            r("2001:db8::", "2001:db8::3")
        ]
    );
    assert!(!c.pools[0].auto_assign);
    assert!(c.pools[0].avoid_buggy_ips);
}

#[test]
fn no_pools_is_a_valid_configuration() {
    assert_eq!(ok("pools: []\n"), Config::default());
}

#[test]
fn selectors_with_expressions() {
    let c = ok(
        "pools:\n- name: a\n  addresses: [198.51.100.0/24]\n  serviceSelector:\n    matchExpressions:\n    - {key: env, operator: In, values: [prod]}\n    - {key: legacy, operator: DoesNotExist}\n",
    );
    let sel = c.pools[0].service_selector.as_ref().unwrap();
    assert_eq!(
        sel.match_expressions,
        vec![
            SelectorRequirement::In("env".into(), vec!["prod".into()]),
            SelectorRequirement::DoesNotExist("legacy".into()),
        ]
    );
    let ip: IpAddr = "198.51.100.7".parse().unwrap();
    assert!(c.pools[0].contains(ip));
}

#[test]
fn malformed_addresses() {
    assert_eq!(
        errors(
            "pools:\n- name: lan\n  addresses:\n  - 192.0.2.300\n  - 192.0.2.0/33\n  - 192.0.2.7/24\n  - 192.0.2.20-192.0.2.10\n  - 192.0.2.1-2001:db8::1\n  - 192.0.2/24\n  - \"\"\n  - 5\n"
        ),
        [
            r#"pool "lan", pools[0].addresses[0] = "192.0.2.300": not an IP address, a CIDR (address/prefix-length) or a range (start-end)"#,
            r#"pool "lan", pools[0].addresses[1] = "192.0.2.0/33": not a valid CIDR: prefix length 33 is longer than 32 bits"#,
            r#"pool "lan", pools[0].addresses[2] = "192.0.2.7/24": host bits are set (the network is 192.0.2.0/24; write that, or a range such as 192.0.2.7-192.0.2.255)"#,
            r#"pool "lan", pools[0].addresses[3] = "192.0.2.20-192.0.2.10": reversed range: start 192.0.2.20 is after end 192.0.2.10"#,
            r#"pool "lan", pools[0].addresses[4] = "192.0.2.1-2001:db8::1": range mixes IPv4 and IPv6 (start 192.0.2.1 is IPv4, end 2001:db8::1 is IPv6)"#,
            r#"pool "lan", pools[0].addresses[5] = "192.0.2/24": not a valid CIDR: "192.0.2" is not an IP address"#,
            r#"pool "lan", pools[0].addresses[6] = "": empty address"#,
            r#"pool "lan", pools[0].addresses[7] = 5: expected a string, got a number (quote it: "5")"#,
        ]
    );
}

#[test]
fn error_kinds_are_exposed() {
    let e = parse_ferrolb_yaml(
        "pools:\n- name: lan\n  addresses: [192.0.2.7/24, 192.0.2.9-192.0.2.1]\n",
    )
    .unwrap_err();
    let kinds: Vec<ProblemKind> = e.problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [ProblemKind::HostBitsSet, ProblemKind::ReversedRange]
    );
}

#[test]
fn unknown_fields_everywhere_with_suggestions() {
    assert_eq!(
        errors(
            "pool: []\npools:\n- name: lan\n  addresses: [192.0.2.0/28]\n  autoassign: false\n  avoidBuggyIps: true\n  protocol: layer2\n  serviceSelector:\n    matchLabel: {a: b}\nl2:\n  interface: [eth0]\n"
        ),
        [
            r#"pool: unknown field, did you mean "pools"?"#,
            r#"pool "lan", pools[0].autoassign: unknown field, did you mean "autoAssign"?"#,
            r#"pool "lan", pools[0].avoidBuggyIps: unknown field, did you mean "avoidBuggyIPs"?"#,
            r#"pool "lan", pools[0].protocol: unknown field (known fields: name, addresses, autoAssign, avoidBuggyIPs, namespaces, serviceSelector, labels)"#,
            r#"pool "lan", pools[0].serviceSelector.matchLabel: unknown field, did you mean "matchLabels"?"#,
            r#"l2.interface: unknown field, did you mean "interfaces"?"#,
        ]
    );
}

#[test]
fn wrong_types() {
    assert_eq!(
        errors(
            "pools:\n- name: 7\n  addresses: 192.0.2.0/28\n  autoAssign: \"yes\"\n  avoidBuggyIPs: 1\n  namespaces: prod\n  serviceSelector: [a]\n- just-a-string\nl2: [eth0]\n"
        ),
        [
            "pool at index 0, pools[0].name = 7: expected a string, got a number (quote it: \"7\")",
            r#"pool at index 0, pools[0].addresses = "192.0.2.0/28": expected a list, got a string"#,
            r#"pool at index 0, pools[0].autoAssign = "yes": expected a boolean (true or false), got a string"#,
            "pool at index 0, pools[0].avoidBuggyIPs = 1: expected a boolean (true or false), got a number",
            r#"pool at index 0, pools[0].namespaces = "prod": expected a list, got a string"#,
            r#"pool at index 0, pools[0].serviceSelector = ["a"]: expected a mapping, got a list"#,
            r#"pool at index 1, pools[1] = "just-a-string": expected a mapping, got a string"#,
            r#"l2 = ["eth0"]: expected a mapping, got a list"#,
        ]
    );
    assert_eq!(errors("[1, 2]"), ["[1, 2]: expected a mapping, got a list"]);
    assert_eq!(
        errors("pools: {}\n"),
        ["pools = {}: expected a list, got a mapping"]
    );
}

#[test]
fn missing_fields() {
    assert_eq!(
        errors("pools:\n- addresses: [192.0.2.0/28]\n- name: b\nl2: {}\n"),
        [
            "pool at index 0, pools[0].name: required field is missing",
            r#"pool "b", pools[1].addresses: required field is missing"#,
        ]
    );
    assert_eq!(errors("l2: {}\n"), ["pools: required field is missing"]);
    assert_eq!(
        errors(""),
        ["the configuration is empty (write `pools: []` for no pools)"]
    );
}

#[test]
fn invalid_names() {
    assert_eq!(
        errors(
            "pools:\n- name: LAN_1\n  addresses: [192.0.2.0/28]\n- name: \"\"\n  addresses: [192.0.2.16/28]\n  namespaces: [Prod, ok]\nl2:\n  interfaces: [\"\", eth0, \"a/b\", averyveryverylongname]\n"
        ),
        [
            r#"pool "", pools[1].namespaces[0] = "Prod": invalid namespace name: must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"#,
            r#"l2.interfaces[0] = "": invalid interface name: must be 1-15 characters without '/', ':' or spaces"#,
            r#"l2.interfaces[2] = "a/b": invalid interface name: must be 1-15 characters without '/', ':' or spaces"#,
            r#"l2.interfaces[3] = "averyveryverylongname": invalid interface name: must be 1-15 characters without '/', ':' or spaces"#,
            r#"pool "LAN_1", pools[0].name = "LAN_1": invalid pool name: must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"#,
            r#"pool "", pools[1].name = "": pool name must not be empty"#,
        ]
    );
}

#[test]
fn empty_namespace_list_is_an_error() {
    assert_eq!(
        errors("pools:\n- name: a\n  addresses: [192.0.2.0/28]\n  namespaces: []\n"),
        [
            r#"pool "a", pools[0].namespaces: an empty list allows no namespace at all; leave the field out to allow every namespace"#
        ]
    );
}

#[test]
fn duplicate_names() {
    assert_eq!(
        errors(
            "pools:\n- name: a\n  addresses: [192.0.2.0/28]\n- name: b\n  addresses: [192.0.2.16/28]\n- name: a\n  addresses: [192.0.2.32/28]\n"
        ),
        [r#"pool "a", pools[2].name = "a": duplicate pool name (first defined at pools[0].name)"#]
    );
}

#[test]
fn overlaps_between_and_within_pools() {
    assert_eq!(
        errors(
            "pools:\n- name: a\n  addresses: [192.0.2.0/28, 2001:db8::/64]\n- name: b\n  addresses: [192.0.2.8-192.0.2.20, \"2001:db8::ff\"]\n- name: c\n  addresses: [198.51.100.0/24, 198.51.100.128/25, 198.51.100.200]\n"
        ),
        [
            r#"pool "b", pools[1].addresses[0] = "192.0.2.8-192.0.2.20": overlaps pools[0].addresses[0] = "192.0.2.0/28" of pool "a" (common addresses: 192.0.2.8-192.0.2.15)"#,
            r#"pool "b", pools[1].addresses[1] = "2001:db8::ff": overlaps pools[0].addresses[1] = "2001:db8::/64" of pool "a" (common addresses: 2001:db8::ff)"#,
            r#"pool "c", pools[2].addresses[1] = "198.51.100.128/25": overlaps pools[2].addresses[0] = "198.51.100.0/24" of the same pool (common addresses: 198.51.100.128-198.51.100.255)"#,
            r#"pool "c", pools[2].addresses[2] = "198.51.100.200": overlaps pools[2].addresses[0] = "198.51.100.0/24" of the same pool (common addresses: 198.51.100.200)"#,
            r#"pool "c", pools[2].addresses[2] = "198.51.100.200": overlaps pools[2].addresses[1] = "198.51.100.128/25" of the same pool (common addresses: 198.51.100.200)"#,
        ]
    );
}

#[test]
fn touching_ranges_do_not_overlap() {
    let c = ok(
        "pools:\n- name: a\n  addresses: [192.0.2.0/28, 192.0.2.16-192.0.2.20]\n- name: b\n  addresses: [192.0.2.21]\n",
    );
    assert_eq!(c.pools[0].ranges, vec![r("192.0.2.0", "192.0.2.20")]);
}

#[test]
fn empty_pools() {
    assert_eq!(
        errors(
            "pools:\n- name: a\n  addresses: []\n- name: b\n  addresses: [192.0.2.0, 192.0.2.255/32]\n  avoidBuggyIPs: true\n- name: c\n  addresses: [192.0.2.300]\n"
        ),
        [
            r#"pool "c", pools[2].addresses[0] = "192.0.2.300": not an IP address, a CIDR (address/prefix-length) or a range (start-end)"#,
            r#"pool "a", pools[0].addresses: pool has no addresses"#,
            r#"pool "b", pools[1].addresses: no usable address left: avoidBuggyIPs skips every .0 and .255, and the pool has nothing else"#,
        ]
    );
}

#[test]
fn yaml_syntax_errors_carry_the_location() {
    let e = errors("pools:\n- name: a\n  addresses: [192.0.2.0/28\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("invalid YAML: "), "{}", e[0]);
    assert!(e[0].contains("line "), "{}", e[0]);
}

#[test]
fn duplicate_yaml_keys_are_rejected() {
    let e = errors("pools: []\npools: []\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("invalid YAML: ") && e[0].contains("duplicate"),
        "{}",
        e[0]
    );
}

#[test]
fn yaml_merge_keys_are_applied() {
    let c = ok(
        "pools:\n- &base {name: a, addresses: [192.0.2.0/28], autoAssign: false}\n- <<: *base\n  name: b\n  addresses: [192.0.2.16/28]\n",
    );
    assert!(!c.pools[1].auto_assign);
    assert_eq!(c.pools[1].name, "b");
}

#[test]
fn a_bad_pool_means_no_config_at_all() {
    // One good pool and one bad pool: nothing is returned, not the good half.
    let e = parse_ferrolb_yaml(
        "pools:\n- name: good\n  addresses: [192.0.2.0/28]\n- name: bad\n  addresses: [nope]\n",
    );
    assert!(e.is_err());
}

#[test]
fn thousands_of_overlaps_are_cut_short() {
    let mut yaml = String::from("pools:\n- name: a\n  addresses:\n");
    for _ in 0..3000 {
        yaml.push_str("  - 192.0.2.0/24\n");
    }
    let e = errors(&yaml);
    assert_eq!(e.len(), 101);
    assert_eq!(
        e[0],
        r#"pool "a", pools[0].addresses[1] = "192.0.2.0/24": overlaps pools[0].addresses[0] = "192.0.2.0/24" of the same pool (common addresses: 192.0.2.0-192.0.2.255)"#
    );
    assert_eq!(
        e[100],
        "more overlapping addresses not listed (only the first 100 are)"
    );
}
