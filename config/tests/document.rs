//! Format detection on ConfigMap data, `check-config` documents and the summary.

use std::collections::BTreeMap;

use ferrolb_config::{
    Families, Format, PoolSummary, SummaryTable, parse_configmap_data, parse_document, summarize,
};

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn data_errors(pairs: &[(&str, &str)]) -> Vec<String> {
    match parse_configmap_data(&data(pairs)) {
        Ok(p) => panic!("expected errors, got {p:?}"),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

fn doc_errors(text: &str) -> Vec<String> {
    match parse_document(text) {
        Ok(p) => panic!("expected errors, got {p:?}"),
        Err(e) => e.problems.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn format_is_detected_from_the_keys() {
    let f = |pairs: &[(&str, &str)]| parse_configmap_data(&data(pairs)).unwrap().format;
    assert_eq!(f(&[("config.yaml", "pools: []")]), Format::Ferrolb);
    assert_eq!(f(&[("config", "address-pools: []")]), Format::MetalLbLegacy);
    assert_eq!(
        f(&[("range-global", "192.0.2.1-192.0.2.2")]),
        Format::KubeVip
    );
    assert_eq!(f(&[("cidr-prod", "192.0.2.0/30")]), Format::KubeVip);
}

#[test]
fn no_recognisable_key() {
    assert_eq!(
        data_errors(&[("config.yml", "pools: []")]),
        [
            r#"data: no configuration found: expected the key "config.yaml" (ferrolb), "config" (MetalLB legacy) or cidr-<namespace>/range-<namespace> keys (kube-vip-cloud-provider); found "config.yml""#,
            r#"data["config.yml"]: unknown key, did you mean "config.yaml"?"#,
        ]
    );
    assert_eq!(
        data_errors(&[]),
        [
            r#"data: no configuration found: expected the key "config.yaml" (ferrolb), "config" (MetalLB legacy) or cidr-<namespace>/range-<namespace> keys (kube-vip-cloud-provider); it has no keys"#
        ]
    );
}

#[test]
fn keys_of_two_formats_or_stray_keys() {
    assert_eq!(
        data_errors(&[
            ("config.yaml", "pools: []"),
            ("cidr-global", "192.0.2.0/28")
        ]),
        [
            "data: keys of several formats in one ConfigMap (ferrolb, kube-vip-cloud-provider); keep the keys of one"
        ]
    );
    assert_eq!(
        data_errors(&[("config.yaml", "pools: [{name: a}]"), ("notes", "hello")]),
        [
            r#"data["notes"]: unexpected key next to "config.yaml"; a ConfigMap holds one configuration"#,
            r#"pool "a", pools[0].addresses: required field is missing"#,
        ]
    );
}

const MANIFEST: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: ferrolb-config
  namespace: ferrolb-system
data:
  config.yaml: |
    pools:
      - name: lan
        addresses: ["192.0.2.0/28", "2001:db8:10::/120"]
      - name: manual
        addresses: ["198.51.100.0/24"]
        autoAssign: false
        avoidBuggyIPs: true
"#;

#[test]
fn manifests_of_each_format() {
    let p = parse_document(MANIFEST).unwrap();
    assert_eq!(p.format, Format::Ferrolb);
    assert_eq!(p.config.pools.len(), 2);

    let metallb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: |\n    address-pools:\n    - name: default\n      protocol: layer2\n      addresses: [192.0.2.10-192.0.2.20]\n";
    let p = parse_document(metallb).unwrap();
    assert_eq!(p.format, Format::MetalLbLegacy);
    assert_eq!(p.config.pools[0].name, "default");

    let kubevip = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kubevip, namespace: kube-system}\ndata:\n  cidr-global: 192.0.2.0/28\n  range-prod: 198.51.100.10-198.51.100.20\n";
    let p = parse_document(kubevip).unwrap();
    assert_eq!(p.format, Format::KubeVip);
    assert_eq!(
        p.config
            .pools
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>(),
        ["prod", "global"]
    );
}

#[test]
fn bare_configs() {
    let p = parse_document("pools:\n- name: a\n  addresses: [192.0.2.0/28]\n").unwrap();
    assert_eq!(p.format, Format::Ferrolb);
    let p = parse_document(
        "address-pools:\n- name: a\n  protocol: layer2\n  addresses: [192.0.2.0/28]\n",
    )
    .unwrap();
    assert_eq!(p.format, Format::MetalLbLegacy);
}

#[test]
fn multi_document_files_pick_the_one_configmap() {
    let text = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ferrolb-system}}\n---{MANIFEST}"
    );
    assert_eq!(parse_document(&text).unwrap().format, Format::Ferrolb);
    let two = format!("{MANIFEST}---{MANIFEST}");
    assert_eq!(
        doc_errors(&two),
        ["the file holds 2 ConfigMaps; check one at a time"]
    );
    assert_eq!(
        doc_errors("kind: Namespace\n---\nkind: Service\n"),
        ["the file holds 2 YAML documents and none is a ConfigMap"]
    );
}

#[test]
fn bad_manifests() {
    assert_eq!(
        doc_errors("apiVersion: v1\nkind: Secret\ndata: {}\n"),
        [r#"kind = "Secret": expected a ConfigMap manifest or a bare config.yaml"#]
    );
    assert_eq!(
        doc_errors("kind: ConfigMap\nmetadata: {name: x}\n"),
        ["data: the ConfigMap has no data"]
    );
    assert_eq!(
        doc_errors(
            "kind: ConfigMap\ndata:\n  cidr-global: 192.0.2.0/28\n  skip-end-ips-in-cidr: true\n"
        ),
        [
            r#"data.skip-end-ips-in-cidr = true: expected a string, got a boolean (quote it: "true")"#
        ]
    );
    assert_eq!(doc_errors(""), ["the document is empty"]);
    assert_eq!(doc_errors("# only a comment\n"), ["the document is empty"]);
    let e = doc_errors("kind: ConfigMap\ndata: [\n");
    assert!(e.len() == 1 && e[0].starts_with("invalid YAML: "), "{e:?}");
}

#[test]
fn errors_inside_a_manifest_are_all_reported() {
    let text = MANIFEST.replace("192.0.2.0/28", "192.0.2.1/28").replace(
        r#""198.51.100.0/24""#,
        r#""198.51.100.0/24", "2001:db8:10::5""#,
    );
    assert_eq!(
        doc_errors(&text),
        [
            r#"pool "lan", pools[0].addresses[0] = "192.0.2.1/28": host bits are set (the network is 192.0.2.0/28; write that, or a range such as 192.0.2.1-192.0.2.15)"#,
            r#"pool "manual", pools[1].addresses[1] = "2001:db8:10::5": overlaps pools[0].addresses[1] = "2001:db8:10::/120" of pool "lan" (common addresses: 2001:db8:10::5)"#,
        ]
    );
}

#[test]
fn summary_of_pools() {
    let p = parse_document(
        "pools:\n- name: lan\n  addresses: [192.0.2.0/28, 2001:db8:10::/120]\n- name: manual\n  addresses: [198.51.100.0/24]\n  autoAssign: false\n  avoidBuggyIPs: true\n- name: v6\n  addresses: [\"2001:db8::/64\"]\n",
    )
    .unwrap();
    let s = summarize(&p.config);
    assert_eq!(
        s,
        vec![
            PoolSummary {
                name: "lan".into(),
                families: Families::Dual,
                size: 16 + 256,
                auto_assign: true
            },
            PoolSummary {
                name: "manual".into(),
                families: Families::Ipv4,
                size: 254,
                auto_assign: false
            },
            PoolSummary {
                name: "v6".into(),
                families: Families::Ipv6,
                size: 1 << 64,
                auto_assign: true
            },
        ]
    );
    assert_eq!(
        SummaryTable(&s).to_string(),
        "NAME    FAMILIES                   SIZE  AUTO-ASSIGN\n\
         lan     IPv4+IPv6                   272  yes\n\
         manual  IPv4                        254  no\n\
         v6      IPv6       18446744073709551616  yes\n"
    );
    assert_eq!(SummaryTable(&[]).to_string(), "no pools\n");
}

#[test]
fn the_whole_ipv6_space_saturates() {
    let p = parse_document("pools:\n- name: all\n  addresses: [\"::/0\", 0.0.0.0/0]\n").unwrap();
    let s = summarize(&p.config);
    assert_eq!(s[0].size, u128::MAX);
    assert_eq!(s[0].families, Families::Dual);
}
