//! `convert`: realistic `kubectl get -o yaml` output of MetalLB, Cilium and
//! kube-vip, every field of each kind, with the exact configuration and the
//! exact list of what is lost; then bad input and its error text.

use std::collections::BTreeMap;

use ferrolb_config::convert::{Conversion, convert};
use ferrolb_config::{IpRange, LabelSelector, SelectorRequirement, parse_document};

const METALLB_EXACT: &str = include_str!("fixtures/convert/metallb-exact.yaml");
const METALLB_LOSSY: &str = include_str!("fixtures/convert/metallb-lossy.yaml");
const CILIUM_EXACT: &str = include_str!("fixtures/convert/cilium-exact.yaml");
const CILIUM_LOSSY: &str = include_str!("fixtures/convert/cilium-lossy.yaml");
const KUBEVIP: &str = include_str!("fixtures/convert/kubevip.yaml");
const METALLB_VLANS: &str = include_str!("fixtures/convert/metallb-vlans.yaml");

fn r(a: &str, b: &str) -> IpRange {
    IpRange {
        start: a.parse().unwrap(),
        end: b.parse().unwrap(),
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(files: &[(&str, &str)]) -> Conversion {
    let c = convert(files).unwrap_or_else(|e| panic!("conversion failed:\n{e}"));
    // The manifest reads back, through check-config's parser, as the same configuration.
    let back = parse_document(&c.manifest).unwrap_or_else(|e| panic!("{e}\n{}", c.manifest));
    assert_eq!(back.config, c.config);
    c
}

fn lost(c: &Conversion) -> Vec<String> {
    c.lost.iter().map(ToString::to_string).collect()
}

/// The body of the `l2:` section of the manifest's `config.yaml`, without its indentation.
fn l2_block(c: &Conversion) -> String {
    let (_, l2) = c
        .manifest
        .split_once("\n    l2:\n")
        .unwrap_or_else(|| panic!("no l2 section:\n{}", c.manifest));
    l2.lines()
        .map(|l| format!("{}\n", l.strip_prefix("      ").expect("indented")))
        .collect()
}

fn node(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    labels(pairs)
}

fn errors(files: &[(&str, &str)]) -> Vec<String> {
    match convert(files) {
        Ok(c) => panic!("expected errors, got\n{}", c.manifest),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn metallb_pools_and_advertisements_convert_exactly() {
    let c = ok(&[("metallb.yaml", METALLB_EXACT)]);
    assert_eq!(lost(&c), Vec::<String>::new());
    let names: Vec<&str> = c.config.pools.iter().map(|p| p.name.as_str()).collect();
    // serviceAllocation pools first (MetalLB prefers them), then by name.
    assert_eq!(names, ["dmz", "lan", "manual"]);
    let dmz = &c.config.pools[0];
    assert_eq!(dmz.ranges, [r("198.51.100.0", "198.51.100.255")]);
    assert!(dmz.auto_assign && dmz.avoid_buggy_ips);
    assert_eq!(
        dmz.namespaces,
        Some(vec!["web".to_string(), "shop".to_string()])
    );
    assert_eq!(
        dmz.service_selector,
        Some(LabelSelector {
            match_labels: labels(&[("tier", "edge")]),
            match_expressions: vec![SelectorRequirement::In(
                "exposure".into(),
                vec!["public".into()]
            )],
        })
    );
    // Labels come along, so that the advertisement's pool selector keeps selecting.
    assert_eq!(dmz.labels, labels(&[("zone", "dmz")]));
    let lan = &c.config.pools[1];
    assert_eq!(
        lan.ranges,
        [
            r("192.0.2.0", "192.0.2.63"),
            r("192.0.2.100", "192.0.2.120"),
            r("2001:db8:10::", "2001:db8:10::ff")
        ]
    );
    assert!(lan.auto_assign && !lan.avoid_buggy_ips);
    assert_eq!(
        (lan.namespaces.as_ref(), lan.service_selector.as_ref()),
        (None, None)
    );
    assert_eq!(lan.labels, labels(&[("zone", "lan")]));
    let manual = &c.config.pools[2];
    assert_eq!(manual.ranges, [r("203.0.113.16", "203.0.113.31")]);
    assert!(!manual.auto_assign);
    assert_eq!(
        l2_block(&c),
        r#"policies:
  - name: "by-name"
    pools: ["lan", "manual"]
    interfaces: ["eth0"]
    nodeSelector: {matchLabels: {"ferrolb.io/speaker": "true"}}
  - name: "by-label"
    poolSelector: {matchLabels: {"zone": "dmz"}}
    interfaces: ["eth0"]
    nodeSelector: {matchLabels: {"ferrolb.io/speaker": "true"}}
"#
    );
    assert!(
        c.manifest
            .contains("  name: ferrolb-config\n  namespace: ferrolb-system\n")
    );
    assert!(
        c.manifest.contains(
            r#"addresses: ["192.0.2.0/26", "192.0.2.100-192.0.2.120", "2001:db8:10::/120"]"#
        ),
        "{}",
        c.manifest
    );
}

#[test]
fn metallb_what_ferrolb_cannot_say_is_listed_field_by_field() {
    let c = ok(&[("metallb-lossy.yaml", METALLB_LOSSY)]);
    let names: Vec<&str> = c.config.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["iot", "bgp-only", "lan"]);
    let iot = &c.config.pools[0];
    // Kept for the Services holding its addresses, closed to auto-assignment.
    assert!(!iot.auto_assign);
    assert_eq!(iot.namespaces, None);
    assert_eq!(iot.service_selector, None);
    // Each pool announced as before: lan on eth0, iot on eth0.20 of the garage nodes.
    assert_eq!(
        l2_block(&c),
        r#"policies:
  - name: "vlan10"
    pools: ["lan"]
    interfaces: ["eth0"]
  - name: "vlan20"
    poolSelector: {matchLabels: {"vlan": "20"}}
    interfaces: ["eth0.20"]
    nodeSelector: {matchLabels: {"zone": "garage"}}
"#
    );
    let narrowed = "the pool is written with autoAssign: false, so that no Service outside the selection gets an address from it; Services that hold one of its addresses keep it, new ones must name the pool (ferrolb.io/address-pool) to use it";
    let bgp = |o: &str, k: &str| {
        format!(
            "metallb-lossy.yaml[{o}] {k}: {} is BGP configuration, which ferrolb does not support (it announces addresses at layer 2 only); nothing of it is carried over",
            k.split(' ').next().unwrap()
        )
    };
    assert_eq!(
        lost(&c),
        vec![
            format!("metallb-lossy.yaml[1] IPAddressPool \"iot\" spec.serviceAllocation.namespaceSelectors: ferrolb selects namespaces by name only (pool field namespaces), not by their labels; {narrowed}"),
            format!("metallb-lossy.yaml[1] IPAddressPool \"iot\" spec.serviceAllocation.serviceSelectors: a Service matching any of 2 selectors cannot be written as ferrolb's one serviceSelector; {narrowed}"),
            format!("metallb-lossy.yaml[1] IPAddressPool \"iot\" spec.serviceAllocation.namespaces: MetalLB allows these namespaces and those namespaceSelectors match, which ferrolb cannot say; the namespace list is left out; {narrowed}"),
            bgp("5", "BGPAdvertisement \"bgp\""),
            bgp("6", "BGPPeer \"router\""),
            bgp("7", "Community \"communities\""),
            bgp("8", "BFDProfile \"fast\""),
            "metallb-lossy.yaml[2] IPAddressPool \"bgp-only\": no L2Advertisement covers this pool, so MetalLB does not announce it at layer 2 (BGP only, or not at all); ferrolb announces a pool that no policy covers under the l2 section: on every node, on the automatic interfaces".to_string(),
        ]
    );
}

#[test]
fn metallb_vlans_and_node_groups_convert_exactly_as_policies() {
    let c = ok(&[("vlans.yaml", METALLB_VLANS)]);
    assert_eq!(lost(&c), Vec::<String>::new());
    let names: Vec<&str> = c.config.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["cams", "iot", "lan"]);
    assert_eq!(
        c.config.pools[2].labels,
        labels(&[("app.kubernetes.io/managed-by", "Helm"), ("vlan", "10")])
    );
    // Two node selectors: two policies. Two pool selectors: two policies.
    assert_eq!(
        l2_block(&c),
        r#"policies:
  - name: "lan-0"
    pools: ["lan"]
    interfaces: ["eth0"]
    nodeSelector: {matchLabels: {"kubernetes.io/hostname": "node-a"}}
  - name: "lan-1"
    pools: ["lan"]
    interfaces: ["eth0"]
    nodeSelector: {matchLabels: {"kubernetes.io/hostname": "node-b"}}
  - name: "vlans-0"
    poolSelector: {matchLabels: {"vlan": "20"}}
    interfaces: ["eth0.20", "eth0.30"]
    nodeSelector: {matchLabels: {"vlan-trunk": "true"}}
  - name: "vlans-1"
    poolSelector: {matchExpressions: [{key: "vlan", operator: In, values: ["30"]}]}
    interfaces: ["eth0.20", "eth0.30"]
    nodeSelector: {matchLabels: {"vlan-trunk": "true"}}
  - name: "backup"
    interfaces: ["bond0"]
    nodeSelector: {matchLabels: {"role": "backup-router"}}
"#
    );

    // MetalLB's semantics, pool by pool and node by node: a node announces a
    // pool when some advertisement covering the pool selects it, on the
    // interfaces of those that do.
    let nodes = [
        ("node-a", node(&[("kubernetes.io/hostname", "node-a")])),
        (
            "node-b",
            node(&[("kubernetes.io/hostname", "node-b"), ("vlan-trunk", "true")]),
        ),
        (
            "node-c",
            node(&[
                ("kubernetes.io/hostname", "node-c"),
                ("vlan-trunk", "true"),
                ("role", "backup-router"),
            ]),
        ),
        ("node-d", node(&[("kubernetes.io/hostname", "node-d")])),
    ];
    let vlans: &[&str] = &["eth0.20", "eth0.30"];
    let vlans_and_bond: &[&str] = &["eth0.20", "eth0.30", "bond0"];
    let expected: [(&str, [&[&str]; 4]); 4] = [
        ("192.0.2.7", [&["eth0"], &["eth0"], &["bond0"], &[]]),
        ("198.51.100.9", [&[], vlans, vlans_and_bond, &[]]),
        ("203.0.113.2", [&[], vlans, vlans_and_bond, &[]]),
        ("2001:db8:30::3", [&[], vlans, vlans_and_bond, &[]]),
    ];
    let probes = ["eth0", "eth0.20", "eth0.30", "bond0", "eth1"];
    for (ip, per_node) in expected {
        let a = c.config.announcement(ip.parse().unwrap(), &BTreeMap::new());
        for ((name, labels), want) in nodes.iter().zip(per_node) {
            assert_eq!(
                a.selects_node(&c.config.l2, labels),
                !want.is_empty(),
                "{ip} on {name}"
            );
            let rule = a.interfaces_on(labels);
            let got: Vec<&str> = probes
                .iter()
                .copied()
                .filter(|i| rule.takes(i, true))
                .collect();
            let mut want = want.to_vec();
            want.sort_by_key(|i| probes.iter().position(|p| p == i));
            assert_eq!(got, want, "{ip} on {name}");
        }
    }
}

#[test]
fn pool_names_and_interfaces_ferrolb_would_read_otherwise_stay_exact() {
    // A renamed pool is named by its new name; an interface name holding a glob
    // character is written as an anchored regex, so that it still means that name.
    let text = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan.v4}\nspec: {addresses: [192.0.2.0/28]}\n---\n\
        apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: Odd.Name}\nspec: {ipAddressPools: [lan.v4], interfaces: [\"eth*\", eth1]}\n";
    let c = ok(&[("odd.yaml", text)]);
    assert_eq!(
        l2_block(&c),
        "policies:\n  - name: \"odd-name\"\n    pools: [\"lan-v4\"]\n    interfaces: [\"eth1\"]\n    interfaceRegexes: [\"^eth\\\\*$\"]\n"
    );
    let policy = &c.config.l2.policies[0];
    assert!(policy.interfaces.iter().any(|m| m.matches("eth*")));
    assert!(!policy.interfaces.iter().any(|m| m.matches("eth0")));
    // Only the renamed pool is reported: the policy's name is nobody's reference.
    assert_eq!(lost(&c).len(), 1, "{:?}", lost(&c));
}

#[test]
fn cilium_pools_and_policies_convert_exactly() {
    let c = ok(&[("cilium.yaml", CILIUM_EXACT)]);
    assert_eq!(lost(&c), Vec::<String>::new());
    let blue = &c.config.pools[0];
    assert_eq!(blue.name, "blue");
    // allowFirstLastIPs: No leaves out .0 and .15 of the /28, not the ends of ranges.
    assert_eq!(
        blue.ranges,
        [
            r("192.0.2.1", "192.0.2.14"),
            r("192.0.2.100", "192.0.2.110"),
            r("192.0.2.200", "192.0.2.200")
        ]
    );
    assert!(blue.auto_assign);
    assert_eq!(
        blue.namespaces,
        Some(vec!["prod".to_string(), "staging".to_string()])
    );
    assert_eq!(
        blue.service_selector,
        Some(LabelSelector {
            match_labels: labels(&[("color", "blue")]),
            match_expressions: vec![],
        })
    );
    let v6 = &c.config.pools[1];
    assert_eq!(v6.ranges, [r("2001:db8:20::", "2001:db8:20::f")]);
    // Anchored literals become names; other patterns stay regular expressions.
    assert_eq!(
        l2_block(&c),
        r#"policies:
  - name: "workers"
    interfaces: ["eth0", "eth0.20"]
    nodeSelector: {matchExpressions: [{key: "node-role.kubernetes.io/control-plane", operator: DoesNotExist}]}
  - name: "edge"
    interfaceRegexes: ["^bond[0-9]+$", "enp[0-9]+s0"]
    nodeSelector: {matchLabels: {"edge": "true"}}
    serviceSelector: {matchExpressions: [{key: "exposure", operator: In, values: ["internet"]}]}
"#
    );
    // An internet-facing Service: both policies; any other: workers only.
    let ip = "192.0.2.5".parse().unwrap();
    let internet = c
        .config
        .announcement(ip, &labels(&[("exposure", "internet")]));
    let edge_node = node(&[
        ("edge", "true"),
        ("node-role.kubernetes.io/control-plane", ""),
    ]);
    assert!(internet.selects_node(&c.config.l2, &edge_node));
    let rule = internet.interfaces_on(&edge_node);
    assert!(rule.takes("bond1", false) && rule.takes("enp3s0", false) && !rule.takes("eth0", true));
    let plain = c.config.announcement(ip, &BTreeMap::new());
    assert!(!plain.selects_node(&c.config.l2, &edge_node));
}

#[test]
fn cilium_what_ferrolb_cannot_say_is_listed() {
    let c = ok(&[("cilium-lossy.yaml", CILIUM_LOSSY)]);
    let old = &c.config.pools[0];
    assert_eq!((old.name.as_str(), old.auto_assign), ("old", false));
    assert_eq!(old.ranges, [r("198.51.100.0", "198.51.100.7")]);
    let dns = &c.config.pools[1];
    assert_eq!((dns.name.as_str(), dns.auto_assign), ("dns", false));
    assert_eq!(dns.service_selector, None);
    // The namespace requirement is left out of the policy's Service selector (reported).
    assert_eq!(
        l2_block(&c),
        r#"policies:
  - name: "all"
    interfaceRegexes: ["^eth[0-9]+"]
    serviceSelector: {matchLabels: {"announce": "l2"}}
"#
    );
    let narrowed = "the pool is written with autoAssign: false: Services that hold one of its addresses keep it, and a Service that asks for the pool (ferrolb.io/address-pool) or for one of its addresses gets it whatever the restriction said";
    let external = "ferrolb announces the LoadBalancer addresses it allocates, not spec.externalIPs: those are no longer announced";
    assert_eq!(
        lost(&c),
        vec![
            format!("cilium-lossy.yaml[0] CiliumLoadBalancerIPPool \"old\" spec.disabled: the pool is disabled (Cilium gives no new address from it and keeps those given); {narrowed}"),
            format!("cilium-lossy.yaml[1] CiliumLoadBalancerIPPool \"dns\" spec.serviceSelector: the requirements io.kubernetes.service.name=coredns on Cilium's pseudo-labels cannot be written in ferrolb's format (it selects namespaces by a list of names and has no Service-name selector); {narrowed}"),
            format!("cilium-lossy.yaml[2] CiliumL2AnnouncementPolicy \"all\" spec.externalIPs: {external}"),
            "cilium-lossy.yaml[2] CiliumL2AnnouncementPolicy \"all\" spec.serviceSelector: the requirements io.kubernetes.service.namespace In [prod] on Cilium's pseudo-labels cannot be written in ferrolb's format (a policy's serviceSelector matches Service labels only); they are left out, so the policy also applies to Services they did not select".to_string(),
            format!("cilium-lossy.yaml[3] CiliumL2AnnouncementPolicy \"external-only\" spec.externalIPs: {external}"),
        ]
    );
}

#[test]
fn cilium_pools_without_a_policy_are_reported() {
    let text = "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: p}\nspec: {blocks: [{cidr: 192.0.2.0/30}]}\n";
    let c = ok(&[("p.yaml", text)]);
    // allowFirstLastIPs unset: every address of the CIDR.
    assert_eq!(c.config.pools[0].ranges, [r("192.0.2.0", "192.0.2.3")]);
    assert_eq!(
        lost(&c),
        [
            "p.yaml[0] CiliumLoadBalancerIPPool \"p\": no CiliumL2AnnouncementPolicy announces LoadBalancer addresses, so Cilium does not announce this pool at layer 2 (BGP only, or not at all); ferrolb announces a pool that no policy covers under the l2 section: on every node, on the automatic interfaces"
        ]
    );
}

#[test]
fn kube_vip_configmap_converts_with_its_refused_keys_reported() {
    let c = ok(&[("kubevip.yaml", KUBEVIP)]);
    let names: Vec<&str> = c.config.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["dev", "prod", "global"]);
    assert_eq!(c.config.pools[0].namespaces, Some(vec!["dev".to_string()]));
    assert_eq!(
        c.config.pools[1].ranges,
        [r("198.51.100.100", "198.51.100.110")]
    );
    // skip-end-ips-in-cidr: "true" drops the ends of the /29.
    assert_eq!(c.config.pools[2].ranges, [r("192.0.2.225", "192.0.2.230")]);
    assert_eq!(c.config.pools[2].namespaces, None);
    // interface-global for every pool, interface-dev for the pool of namespace dev.
    assert_eq!(
        l2_block(&c),
        "interfaces: [\"eth0\"]\npolicies:\n  - name: \"interface-dev\"\n    pools: [\"dev\"]\n    interfaces: [\"eth1\"]\n"
    );
    assert_eq!(
        lost(&c),
        [
            "kubevip.yaml[0] ConfigMap \"kubevip\" data.allow-share-prod: Services of namespace prod that share an address today keep sharing it only if each is annotated ferrolb.io/allow-shared-ip with one key; without it the younger of two is given another address",
            "kubevip.yaml[0] ConfigMap \"kubevip\" data.search-order: ferrolb hands out the lowest free address, not the highest; addresses already given do not change",
        ]
    );
    // A namespace without a pool of its own uses the global pool: reported.
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kubevip}\ndata: {cidr-global: 192.0.2.0/28, interface-web: eth1}\n";
    let c = ok(&[("cm.yaml", text)]);
    assert_eq!(c.config.l2, Default::default());
    assert_eq!(
        lost(&c),
        [
            "cm.yaml[0] ConfigMap \"kubevip\" data.interface-web: namespace web has no pool of its own (cidr-web or range-web), so its Services take addresses from the global pool; ferrolb announces per pool, not per namespace: they are announced like the global pool, not on eth1"
        ]
    );
    assert_eq!(
        errors(&[(
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kubevip}\ndata: {cidr-web: 192.0.2.0/28, interface-web: \"eth 1\"}\n"
        )]),
        [
            "cm.yaml[0] ConfigMap \"kubevip\" data.interface-web = \"eth 1\": invalid interface name: must be 1-15 characters without '/', ':' or spaces"
        ]
    );
}

#[test]
fn a_ferrolb_configmap_alone_is_carried_as_it_is() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ferrolb-config}\ndata:\n  config.yaml: |\n    pools:\n    - {name: lan, addresses: [192.0.2.0/28]}\n    - {name: iot, addresses: [192.0.2.16/28], labels: {vlan: \"20\"}}\n    l2:\n      interfaces: [eth0]\n      nodeSelector: {matchLabels: {lb: \"yes\"}}\n      policies:\n      - {name: vlan20, poolSelector: {matchLabels: {vlan: \"20\"}}, interfaces: [\"eth0.2?\"], interfaceRegexes: [\"^vlan20$\"]}\n";
    let c = ok(&[("cm.yaml", text)]);
    assert_eq!(lost(&c), Vec::<String>::new());
    let original = parse_document(text).unwrap().config;
    assert_eq!(c.config, original);
}

#[test]
fn a_metallb_legacy_configmap_converts_exactly() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: |\n    address-pools:\n    - name: default\n      protocol: layer2\n      addresses: [192.0.2.10-192.0.2.20]\n      avoid-buggy-ips: true\n";
    let c = ok(&[("legacy.yaml", text)]);
    assert_eq!(lost(&c), Vec::<String>::new());
    assert_eq!(c.config.pools[0].ranges, [r("192.0.2.10", "192.0.2.20")]);
    assert!(c.config.pools[0].avoid_buggy_ips);
}

#[test]
fn several_files_of_several_tools_make_one_configuration() {
    let c = ok(&[("cilium.yaml", CILIUM_EXACT), ("kubevip.yaml", KUBEVIP)]);
    let names: Vec<&str> = c.config.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["blue", "v6", "dev", "prod", "global"]);
    // Cilium's policies cover Cilium's pools only (by name, since "every pool" would
    // now take kube-vip's too); kube-vip's interface-global becomes a policy for
    // its pools, since the output's l2 section would reach Cilium's pools.
    assert_eq!(
        l2_block(&c),
        r#"policies:
  - name: "workers"
    pools: ["blue", "v6"]
    interfaces: ["eth0", "eth0.20"]
    nodeSelector: {matchExpressions: [{key: "node-role.kubernetes.io/control-plane", operator: DoesNotExist}]}
  - name: "edge"
    pools: ["blue", "v6"]
    interfaceRegexes: ["^bond[0-9]+$", "enp[0-9]+s0"]
    nodeSelector: {matchLabels: {"edge": "true"}}
    serviceSelector: {matchExpressions: [{key: "exposure", operator: In, values: ["internet"]}]}
  - name: "interface-dev"
    pools: ["dev"]
    interfaces: ["eth1"]
  - name: "kubevip"
    pools: ["prod", "global"]
    interfaces: ["eth0"]
"#
    );
    assert_eq!(lost(&c).len(), 2, "{:#?}", lost(&c));
    // Pools of two tools that share addresses are bad input, naming both.
    assert_eq!(
        errors(&[
            ("metallb.yaml", METALLB_EXACT),
            ("cilium.yaml", CILIUM_EXACT)
        ]),
        [
            "pool \"blue\", cilium.yaml[0].items[0] CiliumLoadBalancerIPPool \"blue\" spec.blocks[0].cidr = \"192.0.2.0/28\": overlaps metallb.yaml[0].items[0] IPAddressPool \"lan\" spec.addresses[0] = \"192.0.2.0/26\" of pool \"lan\" (common addresses: 192.0.2.1-192.0.2.14)",
            "pool \"blue\", cilium.yaml[0].items[0] CiliumLoadBalancerIPPool \"blue\" spec.blocks[1] = \"192.0.2.100-192.0.2.110\": overlaps metallb.yaml[0].items[0] IPAddressPool \"lan\" spec.addresses[1] = \"192.0.2.100-192.0.2.120\" of pool \"lan\" (common addresses: 192.0.2.100-192.0.2.110)",
        ]
    );
}

#[test]
fn bad_input_names_the_file_document_object_and_field() {
    let pool = |name: &str, addr: &str| {
        format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: {name}}}\nspec: {{addresses: [\"{addr}\"]}}\n"
        )
    };
    assert_eq!(
        errors(&[
            ("a.yaml", &pool("a", "192.0.2.0/24")),
            ("b.yaml", &format!("---\n{}", pool("b", "192.0.2.128/25")))
        ]),
        [
            "pool \"b\", b.yaml[0] IPAddressPool \"b\" spec.addresses[0] = \"192.0.2.128/25\": overlaps a.yaml[0] IPAddressPool \"a\" spec.addresses[0] = \"192.0.2.0/24\" of pool \"a\" (common addresses: 192.0.2.128-192.0.2.255)"
        ]
    );
    assert_eq!(
        errors(&[("x.yaml", &pool("a", "192.0.2.7/24"))]),
        [
            "x.yaml[0] IPAddressPool \"a\" spec.addresses[0] = \"192.0.2.7/24\": host bits are set (the network is 192.0.2.0/24; write that, or a range such as 192.0.2.7-192.0.2.255)"
        ]
    );
    assert_eq!(
        errors(&[(
            "x.yaml",
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {adresses: [192.0.2.0/28]}\n"
        )]),
        [
            "x.yaml[0] IPAddressPool \"a\" spec.adresses: unknown field, did you mean \"addresses\"?",
            "x.yaml[0] IPAddressPool \"a\" spec.addresses: required field is missing",
        ]
    );
    assert_eq!(
        errors(&[(
            "x.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: apps/v1, kind: Deployment, metadata: {name: speaker}}\n- {kind: IPAddressPool, metadata: {}}\n"
        )]),
        [
            "x.yaml[0].items[1] IPAddressPool metadata.name: required field is missing",
            "x.yaml[0].items[0] Deployment \"speaker\": kind \"Deployment\" is not a load-balancer configuration object (expected MetalLB's IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer, Community, BFDProfile, Cilium's CiliumLoadBalancerIPPool, CiliumL2AnnouncementPolicy, or a ConfigMap)",
        ]
    );
    assert_eq!(
        errors(&[(
            "x.yaml",
            "apiVersion: cilium.io/v2\nkind: CiliumLoadBalancerIPPool\nmetadata: {name: p}\nspec:\n  blocks:\n  - {start: 192.0.2.9, stop: 192.0.2.1}\n  - {cidr: 192.0.2.0/24, start: 192.0.2.1}\n  allowFirstLastIPs: maybe\n"
        )]),
        [
            "x.yaml[0] CiliumLoadBalancerIPPool \"p\" spec.allowFirstLastIPs = \"maybe\": expected \"Yes\" or \"No\"",
            "x.yaml[0] CiliumLoadBalancerIPPool \"p\" spec.blocks[0] = \"192.0.2.9-192.0.2.1\": reversed range: start 192.0.2.9 is after stop 192.0.2.1",
            "x.yaml[0] CiliumLoadBalancerIPPool \"p\" spec.blocks[1]: a block is either a cidr or a start/stop range, not both",
        ]
    );
    let e = errors(&[("x.yaml", "kind: [\n")]);
    assert!(e[0].starts_with("x.yaml[0]: invalid YAML: "), "{e:?}");
    assert_eq!(
        errors(&[("x.yaml", "")]),
        [
            "no objects found: give the output of `kubectl get ipaddresspools,l2advertisements -A -o yaml` (or of Cilium's or kube-vip's objects)"
        ]
    );
    assert_eq!(
        errors(&[(
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kubevip}\ndata: {cidr-global: 192.0.2.0/33}\n"
        )]),
        [
            "pool \"global\", cm.yaml[0] ConfigMap \"kubevip\" data[\"cidr-global\"][0] = \"192.0.2.0/33\": not a valid CIDR: prefix length 33 is longer than 32 bits"
        ]
    );
}

#[test]
fn an_invalid_object_name_is_renamed_and_reported() {
    let text = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan.v4}\nspec: {addresses: [192.0.2.0/28]}\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: all}\nspec: {ipAddressPools: [lan.v4]}\n";
    let c = ok(&[("n.yaml", text)]);
    assert_eq!(c.config.pools[0].name, "lan-v4");
    assert_eq!(
        lost(&c),
        [
            "n.yaml[0] IPAddressPool \"lan.v4\" metadata.name: not a valid ferrolb pool name (1-63 lowercase letters, digits or '-'); written as \"lan-v4\": Services that name the pool in an annotation must name \"lan-v4\""
        ]
    );
}

#[test]
fn an_advertisement_for_every_pool_adds_to_narrower_ones() {
    // "all" announces every pool everywhere, vlan20 adds eth0.20 for pool b.
    let text = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [192.0.2.0/28]}\n---\n\
        apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: b}\nspec: {addresses: [192.0.2.16/28]}\n---\n\
        apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: all}\n---\n\
        apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: vlan20}\nspec: {ipAddressPools: [b, c], interfaces: [eth0.20]}\n---\n\
        apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: typo}\nspec: {ipAddressPools: [d]}\n";
    let c = ok(&[("u.yaml", text)]);
    // The advertisement that names only missing pools covers none: left out.
    assert_eq!(
        l2_block(&c),
        "policies:\n  - name: \"all\"\n  - name: \"vlan20\"\n    pools: [\"b\"]\n    interfaces: [\"eth0.20\"]\n"
    );
    // Naming a pool the input does not hold is reported (a typo, or a file left out).
    assert_eq!(
        lost(&c),
        [
            "u.yaml[3] L2Advertisement \"vlan20\" spec.ipAddressPools: names the pool \"c\", which is not among the input's IPAddressPools; nothing is announced for it",
            "u.yaml[4] L2Advertisement \"typo\" spec.ipAddressPools: names the pool \"d\", which is not among the input's IPAddressPools; nothing is announced for it",
        ]
    );
    // Next to another tool's pools, "every pool" means MetalLB's pools: by name.
    let kubevip = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kubevip}\ndata: {cidr-global: 198.51.100.0/28}\n";
    let c = ok(&[("u.yaml", text), ("kv.yaml", kubevip)]);
    assert_eq!(
        l2_block(&c),
        "policies:\n  - name: \"all\"\n    pools: [\"a\", \"b\"]\n  - name: \"vlan20\"\n    pools: [\"b\"]\n    interfaces: [\"eth0.20\"]\n"
    );
    assert!(c.config.policies_covering(&c.config.pools[2]).is_empty());
}

#[test]
fn standard_input_style_single_documents_and_empty_documents_are_read() {
    // A trailing `---` and comments-only documents are not objects.
    let text = "---\n# exported\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: [2001:db8::/64]}\n---\n";
    let c = ok(&[("-", text)]);
    assert_eq!(
        c.config.pools[0].ranges,
        [r("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff")]
    );
    assert!(
        c.manifest.contains(r#"addresses: ["2001:db8::/64"]"#),
        "{}",
        c.manifest
    );
    assert!(
        c.manifest
            .starts_with("# Written by `ferrolb-controller convert` from -.\n")
    );
}

#[test]
fn bad_regexes_and_labels_are_bad_input() {
    assert_eq!(
        errors(&[(
            "x.yaml",
            "apiVersion: cilium.io/v2alpha1\nkind: CiliumL2AnnouncementPolicy\nmetadata: {name: p}\nspec: {loadBalancerIPs: true, interfaces: [\"^eth0$\", \"eth[0-9\"]}\n"
        )]),
        [
            "x.yaml[0] CiliumL2AnnouncementPolicy \"p\" spec.interfaces[1] = \"eth[0-9\": invalid regular expression: unclosed character class"
        ]
    );
    // Hand-written input: the API server would have refused the label.
    assert_eq!(
        errors(&[(
            "x.yaml",
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, labels: {vlan: \"2 0\"}}\nspec: {addresses: [192.0.2.0/28]}\n"
        )]),
        [
            "x.yaml[0] IPAddressPool \"a\" metadata.labels.vlan = \"2 0\": invalid label value: must be empty or 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ]
    );
}
