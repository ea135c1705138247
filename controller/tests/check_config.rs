//! `ferrolb-controller check-config FILE` as an operator runs it in GitOps CI.

use std::process::Command;

fn check(name: &str, text: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("ferrolb-check-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("run ferrolb-controller");
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn valid_bare_config_prints_a_pool_summary() {
    let (code, out) = check(
        "config.yaml",
        "pools:\n  - name: lan\n    addresses: [\"192.0.2.0/28\", \"2001:db8:10::/120\"]\n  - name: dmz\n    addresses: [\"198.51.100.10-198.51.100.19\"]\n    autoAssign: false\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("NAME"), "{out}");
    let lan = out.lines().find(|l| l.starts_with("lan")).expect(&out);
    assert!(
        lan.contains("IPv4+IPv6") && lan.contains("272") && lan.contains("yes"),
        "{lan}"
    );
    let dmz = out.lines().find(|l| l.starts_with("dmz")).expect(&out);
    assert!(dmz.contains("10") && dmz.contains("no"), "{dmz}");
}

#[test]
fn metallb_configmap_manifest_is_accepted() {
    let manifest = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: config
  namespace: metallb-system
data:
  config: |
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 192.0.2.100-192.0.2.109
"#;
    let (code, out) = check("metallb.yaml", manifest);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("default") && l.contains("IPv4")),
        "{out}"
    );
}

#[test]
fn every_problem_is_printed_and_the_exit_status_is_one() {
    let (code, out) = check(
        "bad.yaml",
        "pools:\n  - name: a\n    addresses: [\"192.0.2.300/24\"]\n    autoassign: true\n  - name: a\n    addresses: [\"192.0.2.20-192.0.2.10\"]\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("192.0.2.300/24"), "names the bad CIDR: {out}");
    assert!(out.contains("autoassign"), "names the unknown field: {out}");
    assert!(
        out.contains("192.0.2.20-192.0.2.10"),
        "names the reversed range: {out}"
    );
    assert!(
        out.to_lowercase().contains("duplicate"),
        "reports the duplicate name: {out}"
    );
}

#[test]
fn missing_file_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .args(["check-config", "/nonexistent/ferrolb.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot read /nonexistent/ferrolb.yaml"));
}

#[test]
fn policies_are_printed_after_the_pools() {
    let manifest = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: ferrolb-config
  namespace: ferrolb-system
data:
  config.yaml: |
    pools:
      - name: lan
        addresses: ["192.0.2.0/28"]
      - name: iot
        addresses: ["198.51.100.0/28"]
        labels: {vlan: "20"}
    l2:
      policies:
        - name: vlan20
          poolSelector: {matchLabels: {vlan: "20"}}
          interfaces: [eth0.20]
          nodeSelector: {matchLabels: {vlan20: "true"}}
        - name: vlan30
          poolSelector: {matchLabels: {vlan: "30"}}
"#;
    let (code, out) = check("policies.yaml", manifest);
    assert_eq!(code, 0, "{out}");
    let (_, after_table) = out
        .split_once("iot   IPv4        16  yes\n")
        .unwrap_or_else(|| panic!("pools table:\n{out}"));
    assert_eq!(
        after_table,
        r#"policy vlan20:
  pools:      iot
  interfaces: eth0.20
  nodes:      matching {matchLabels: {"vlan20": "true"}}
  services:   every Service
policy vlan30:
  pools:      none (poolSelector {matchLabels: {"vlan": "30"}} matches no pool)
  interfaces: automatic
  nodes:      every node
  services:   every Service
announced under l2 (every node, automatic interfaces): lan
policies that cover no pool: vlan30
"#
    );
    // A policy naming a pool that does not exist: exit 1, the path and the name.
    let (code, out) = check(
        "bad-policy.yaml",
        "pools:\n  - name: lan\n    addresses: [\"192.0.2.0/28\"]\nl2:\n  policies:\n    - name: p\n      pools: [lna]\n",
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(r#"l2.policies[0].pools[0] = "lna": no such pool in this configuration; did you mean "lan"?"#),
        "{out}"
    );
}
