//! ferrolb's `config.yaml`: pool `labels` and `l2.policies`, the happy path,
//! how each resolves, and the exact text of every error.

use std::collections::BTreeMap;

use ferrolb_config::{
    Announcement, Config, InterfaceMatcher, LabelSelector, PoolChoice, ProblemKind,
    parse_ferrolb_yaml,
};

fn errors(yaml: &str) -> Vec<String> {
    match parse_ferrolb_yaml(yaml) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

fn ok(yaml: &str) -> Config {
    parse_ferrolb_yaml(yaml).unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn selector(pairs: &[(&str, &str)]) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: labels(pairs),
        match_expressions: Vec::new(),
    })
}

const VLANS: &str = r#"
pools:
  - name: lan
    addresses: ["192.0.2.0/28"]
  - name: iot
    addresses: ["198.51.100.0/26"]
    labels: {vlan: "20", example.com/site: home}
  - name: cams
    addresses: ["203.0.113.0/28"]
    labels: {vlan: "20"}
l2:
  interfaces: [eth0]
  policies:
    - name: vlan20
      poolSelector: {matchLabels: {vlan: "20"}}
      interfaceRegexes: ["^enp[0-9]+s0\\.20$"]
      interfaces: [eth0.20, "bond?.20", eth0.20]
      nodeSelector: {matchLabels: {vlan20: "true"}}
    - name: cams-edge
      pools: [cams, cams]
      serviceSelector: {matchLabels: {exposure: edge}}
    - name: spare
      poolSelector: {matchLabels: {vlan: "30"}}
"#;

#[test]
fn labels_and_policies_parse_into_the_model() {
    let c = ok(VLANS);
    assert_eq!(c.pools[0].labels, BTreeMap::new());
    assert_eq!(
        c.pools[1].labels,
        labels(&[("vlan", "20"), ("example.com/site", "home")])
    );
    assert_eq!(c.l2.interfaces, ["eth0"]);
    let [vlan20, cams, spare] = &c.l2.policies[..] else {
        panic!("{:?}", c.l2.policies)
    };
    assert_eq!(vlan20.name, "vlan20");
    assert_eq!(
        vlan20.pools,
        PoolChoice {
            names: vec![],
            selector: selector(&[("vlan", "20")]),
        }
    );
    // Names and globs first (duplicates dropped), then regexes, whatever the field order.
    let shown: Vec<String> = vlan20.interfaces.iter().map(ToString::to_string).collect();
    assert_eq!(shown, ["eth0.20", "bond?.20", r"regex:^enp[0-9]+s0\.20$"]);
    assert!(matches!(vlan20.interfaces[0], InterfaceMatcher::Name(_)));
    assert!(matches!(vlan20.interfaces[1], InterfaceMatcher::Glob(_)));
    assert!(vlan20.interfaces[2].matches("enp3s0.20"));
    assert_eq!(vlan20.node_selector, selector(&[("vlan20", "true")]));
    assert_eq!(vlan20.service_selector, None);
    assert_eq!(cams.pools.names, ["cams"]);
    assert_eq!(cams.service_selector, selector(&[("exposure", "edge")]));
    assert!(cams.interfaces.is_empty() && cams.node_selector.is_none());
    // A selector that matches no pool is accepted (check-config points it out).
    assert_eq!(c.policies_covering(&c.pools[0]), Vec::<&_>::new());
    assert!(c.pools.iter().all(|p| !spare.pools.covers(p)));

    // Resolution: lan under l2, iot by vlan20 only, cams by both.
    let plain = labels(&[]);
    let edge = labels(&[("exposure", "edge")]);
    assert_eq!(
        c.announcement("192.0.2.1".parse().unwrap(), &plain),
        Announcement::Default
    );
    let names = |a: Announcement| match a {
        Announcement::Policies(ps) => ps.iter().map(|p| p.name.clone()).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        names(c.announcement("198.51.100.1".parse().unwrap(), &edge)),
        ["vlan20"]
    );
    assert_eq!(
        names(c.announcement("203.0.113.1".parse().unwrap(), &edge)),
        ["vlan20", "cams-edge"]
    );
    assert_eq!(
        names(c.announcement("203.0.113.1".parse().unwrap(), &plain)),
        ["vlan20"]
    );
}

#[test]
fn a_policy_with_neither_pools_nor_selector_covers_every_pool() {
    let c = ok(
        "pools:\n- name: a\n  addresses: [192.0.2.0/28]\n- name: b\n  addresses: [192.0.2.16/28]\nl2:\n  policies:\n  - name: all\n    interfaces: [\"eth*\"]\n    pools: ~\n    poolSelector: ~\n    nodeSelector: ~\n    serviceSelector: ~\n    interfaceRegexes: ~\n",
    );
    for p in &c.pools {
        assert_eq!(c.policies_covering(p).len(), 1, "{}", p.name);
    }
    assert_eq!(c.l2.policies[0].pools, PoolChoice::default());
    // Empty lists: no policy, and the automatic interface choice.
    let c = ok("pools: []\nl2:\n  policies: []\n");
    assert!(c.l2.policies.is_empty());
    let c =
        ok("pools: []\nl2:\n  policies:\n  - {name: p, interfaces: [], interfaceRegexes: []}\n");
    assert!(c.l2.policies[0].interfaces.is_empty());
}

#[test]
fn policies_may_come_before_the_pools_they_name() {
    let c = ok(
        "l2:\n  policies:\n  - {name: p, pools: [a]}\npools:\n- name: a\n  addresses: [192.0.2.0/28]\n",
    );
    assert_eq!(c.l2.policies[0].pools.names, ["a"]);
}

#[test]
fn bad_pool_labels() {
    assert_eq!(
        errors(
            "pools:\n- name: a\n  addresses: [192.0.2.0/28]\n  labels: {vlan: 20, \"-x\": a, ok: \"not ok\", Example.com/a: b}\n- name: b\n  addresses: [192.0.2.16/28]\n  labels: [vlan]\n- name: c\n  addresses: [192.0.2.32/28]\n  labels: {x: ~, 7: a}\n"
        ),
        [
            r#"pool "a", pools[0].labels.vlan = 20: expected a string, got a number (quote it: "20")"#,
            r#"pool "a", pools[0].labels.-x = "-x": invalid label key: the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"#,
            r#"pool "a", pools[0].labels.ok = "not ok": invalid label value: must be empty or 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"#,
            r#"pool "a", pools[0].labels["Example.com/a"] = "Example.com/a": invalid label key: the prefix before '/' must be a DNS subdomain (lowercase letters, digits, '-' and '.')"#,
            r#"pool "b", pools[1].labels = ["vlan"]: expected a mapping of label keys to values, got a list"#,
            "pool \"c\", pools[2].labels.x = null: expected a string, got null",
            "pool \"c\", pools[2].labels = 7: label keys must be strings",
        ]
    );
    let e = parse_ferrolb_yaml(
        "pools:\n- name: a\n  addresses: [192.0.2.0/28]\n  labels: {\"a b\": c}\n",
    )
    .unwrap_err();
    assert_eq!(e.problems[0].kind, ProblemKind::InvalidValue);
}

#[test]
fn bad_policies_every_problem_at_once() {
    assert_eq!(
        errors(
            r#"pools:
- name: lan
  addresses: [192.0.2.0/28]
- name: vlan20
  addresses: [198.51.100.0/28]
l2:
  policies:
  - name: VLAN_20
    pools: [vlan2O, lan, nothing-like-it]
    interfaces: ["", eth0.20, "a/b", "eth0:1", averyveryverylongname, "e*verylongpattern", "eth[0-3]", "^eth0$", 7]
    interfaceRegexes: ["eth[", "(", "^eth0$"]
  - pools: []
    poolSelecter: {matchLabels: {vlan: "20"}}
  - name: ""
    poolSelector: {matchLabels: {vlan: 20}}
    nodeSelector: [a]
    serviceSelector: {matchExpressions: [{key: tier, operator: in, values: [edge]}]}
  - name: dup
  - name: dup
    interfaces: eth0
  - just-a-string
"#
        ),
        [
            r#"l2.policies[0].name = "VLAN_20": invalid policy name: must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"#,
            r#"l2.policies[0].interfaces[0] = "": invalid interface name: must be 1-15 characters without '/', ':' or spaces"#,
            r#"l2.policies[0].interfaces[2] = "a/b": invalid interface name: must be 1-15 characters without '/', ':' or spaces"#,
            r#"l2.policies[0].interfaces[3] = "eth0:1": invalid interface name: must be 1-15 characters without '/', ':' or spaces"#,
            r#"l2.policies[0].interfaces[4] = "averyveryverylongname": invalid interface name: must be 1-15 characters without '/', ':' or spaces"#,
            r#"l2.policies[0].interfaces[5] = "e*verylongpattern": invalid interface pattern: must be 1-15 characters without '/', ':' or spaces"#,
            r#"l2.policies[0].interfaces[6] = "eth[0-3]": not an interface name or glob (only * and ? are special): write regular expressions in interfaceRegexes"#,
            r#"l2.policies[0].interfaces[7] = "^eth0$": not an interface name or glob (only * and ? are special): write regular expressions in interfaceRegexes"#,
            "l2.policies[0].interfaces[8] = 7: expected a string, got a number (quote it: \"7\")",
            r#"l2.policies[0].interfaceRegexes[0] = "eth[": invalid regular expression: unclosed character class"#,
            r#"l2.policies[0].interfaceRegexes[1] = "(": invalid regular expression: unclosed group"#,
            "l2.policies[1].pools: an empty list names no pool; leave the field out (a policy with neither pools nor poolSelector covers every pool)",
            r#"l2.policies[1].poolSelecter: unknown field, did you mean "poolSelector"?"#,
            "l2.policies[1].name: required field is missing",
            r#"l2.policies[2].name = "": policy name must not be empty"#,
            r#"l2.policies[2].poolSelector.matchLabels.vlan = 20: expected a string, got a number (quote it: "20")"#,
            r#"l2.policies[2].nodeSelector = ["a"]: expected a mapping, got a list"#,
            r#"l2.policies[2].serviceSelector.matchExpressions[0].operator = "in": unknown operator (expected In, NotIn, Exists or DoesNotExist); did you mean "In"?"#,
            r#"l2.policies[4].name = "dup": duplicate policy name (first defined at l2.policies[3].name)"#,
            r#"l2.policies[4].interfaces = "eth0": expected a list, got a string"#,
            r#"l2.policies[5] = "just-a-string": expected a mapping, got a string"#,
            r#"l2.policies[0].pools[0] = "vlan2O": no such pool in this configuration; did you mean "vlan20"?"#,
            r#"l2.policies[0].pools[2] = "nothing-like-it": no such pool in this configuration"#,
        ]
    );
}

#[test]
fn policy_problems_have_kinds_and_wrong_types() {
    let e = parse_ferrolb_yaml("pools: []\nl2:\n  policies: {name: a}\n").unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"l2.policies = {"name": "a"}: expected a list, got a mapping"#
    );
    let e = parse_ferrolb_yaml(
        "pools: []\nl2:\n  policies:\n  - {name: a, pools: [x], interfaceRegexes: [\"[\"], interfaces: [\"a b\"], color: red}\n",
    )
    .unwrap_err();
    let kinds: Vec<ProblemKind> = e.problems.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            ProblemKind::InvalidValue,
            ProblemKind::InvalidName,
            ProblemKind::UnknownField,
            ProblemKind::InvalidValue,
        ],
        "{e}"
    );
    assert_eq!(
        e.problems[2].to_string(),
        "l2.policies[0].color: unknown field (known fields: name, pools, poolSelector, interfaces, interfaceRegexes, nodeSelector, serviceSelector)"
    );
    assert_eq!(
        e.problems[3].to_string(),
        r#"l2.policies[0].pools[0] = "x": no such pool in this configuration"#
    );
}

#[test]
fn a_bad_policy_means_no_config_at_all() {
    // Everything else is fine: still no configuration.
    let e = parse_ferrolb_yaml(&VLANS.replace("pools: [cams, cams]", "pools: [cams, camz]"))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"l2.policies[1].pools[1] = "camz": no such pool in this configuration; did you mean "cams"?"#
    );
}
