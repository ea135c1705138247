//! Switching from another load-balancer implementation: Services whose status
//! the previous tool wrote (the test plays that tool), then the real
//! `ferrolb-controller` binary starts against the embedded API server. No
//! address may change.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// Pools as `convert` would write them for the previous tool's pools.
const POOLS: &str = "pools:\n  - name: lan\n    addresses: [\"192.0.2.10-192.0.2.40\", \"2001:db8:10::/120\"]\n  - name: dmz\n    autoAssign: false\n    addresses: [\"198.51.100.0/28\"]\n";

/// Writes a status as the previous tool did: ingress only, no ferrolb condition.
async fn previous_tool_status(api: &Api<Service>, name: &str, ips: &[&str]) {
    let ingress: Vec<_> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    let body = json!({"status": {"loadBalancer": {"ingress": ingress}}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_set_of_services_switches_to_ferrolb_without_an_address_change() {
    let lab = Lab::start().await;
    set_config(&lab.client, POOLS).await;
    let api: Api<Service> = Api::namespaced(lab.client.clone(), "default");

    // (name, annotations, extra spec, addresses the previous tool gave). The
    // addresses are deliberately not the lowest free ones ferrolb would pick.
    let set: Vec<(&str, serde_json::Value, serde_json::Value, Vec<&str>)> = vec![
        ("plain-1", json!({}), json!({}), vec!["192.0.2.40"]),
        ("plain-2", json!({}), json!({}), vec!["192.0.2.33"]),
        (
            "metallb-pool",
            json!({"metallb.universe.tf/address-pool": "dmz"}),
            json!({}),
            vec!["198.51.100.9"],
        ),
        (
            "metallb-ip",
            json!({"metallb.io/loadBalancerIPs": "192.0.2.25"}),
            json!({}),
            vec!["192.0.2.25"],
        ),
        (
            "cilium-ip",
            json!({"lbipam.cilium.io/ips": "192.0.2.21"}),
            json!({}),
            vec!["192.0.2.21"],
        ),
        (
            "kube-vip-ip",
            json!({"kube-vip.io/loadbalancerIPs": "192.0.2.17"}),
            json!({}),
            vec!["192.0.2.17"],
        ),
        (
            "cilium-share-tcp",
            json!({"lbipam.cilium.io/sharing-key": "dns"}),
            json!({"ports": [{"port": 53, "protocol": "TCP"}]}),
            vec!["192.0.2.30"],
        ),
        (
            "cilium-share-udp",
            json!({"lbipam.cilium.io/sharing-key": "dns"}),
            json!({"ports": [{"port": 53, "protocol": "UDP"}]}),
            vec!["192.0.2.30"],
        ),
        (
            "dual",
            json!({}),
            json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
            vec!["192.0.2.38", "2001:db8:10::77"],
        ),
    ];
    for (name, ann, spec, ips) in &set {
        let mut v = mk_service(name);
        v["metadata"]["annotations"] = ann.clone();
        for (k, val) in spec.as_object().unwrap() {
            v["spec"][k] = val.clone();
        }
        create_service(&lab.client, v).await;
        previous_tool_status(&api, name, ips).await;
    }
    // One address the converted pools do not hold.
    create_service(&lab.client, mk_service("outside")).await;
    previous_tool_status(&api, "outside", &["203.0.113.50"]).await;

    let before: BTreeMap<String, Vec<String>> = set
        .iter()
        .map(|(n, _, _, ips)| (n.to_string(), ips.iter().map(|s| s.to_string()).collect()))
        .chain([("outside".to_string(), vec!["203.0.113.50".to_string()])])
        .collect();

    let _c = ControllerProc::start(&lab.kubeconfig, "c1");

    // Every Service in a pool is taken over: ferrolb's condition, same addresses.
    for (name, _, _, _) in &set {
        let (reason, message) = wait_condition(&lab.client, name, "True").await;
        assert_eq!(reason, "Allocated", "{name}: {message}");
        let note = wait_event(&lab.client, "default", name, "IPAdopted").await;
        assert!(note.starts_with("adopted "), "{name}: {note}");
    }
    let note = wait_event(&lab.client, "default", "outside", "IPNotInPool").await;
    assert!(note.contains("203.0.113.50"), "{note}");

    // Annotations of two tools that disagree: a Warning naming both, no address.
    let mut v = mk_service("conflict");
    v["metadata"]["annotations"] = json!({
        "metallb.universe.tf/loadBalancerIPs": "192.0.2.12",
        "lbipam.cilium.io/ips": "192.0.2.13",
    });
    create_service(&lab.client, v).await;
    let note = wait_event(&lab.client, "default", "conflict", "AllocationFailed").await;
    assert_eq!(
        note,
        "annotations metallb.universe.tf/loadBalancerIPs=\"192.0.2.12\" and lbipam.cilium.io/ips=\"192.0.2.13\" conflict; keep only one"
    );
    assert!(ingress_ips(&get_service(&lab.client, "conflict").await).is_empty());

    // A newcomer gets the lowest address nobody held: adopted ones are taken.
    create_service(&lab.client, mk_service("newcomer")).await;
    assert_eq!(wait_ips(&lab.client, "newcomer", 1).await, ["192.0.2.10"]);

    let mut changed = Vec::new();
    for (name, ips) in &before {
        let now = ingress_ips(&get_service(&lab.client, name).await);
        if &now != ips {
            changed.push(format!("{name}: {ips:?} -> {now:?}"));
        }
    }
    assert!(changed.is_empty(), "addresses changed: {changed:?}");
    // The one outside the pools is neither adopted nor replaced.
    let outside = get_service(&lab.client, "outside").await;
    assert!(condition(&outside).is_none());
    for (name, _, _, _) in &set {
        let events = events_for(&lab.client, "default", name).await;
        assert!(
            events
                .iter()
                .all(|e| e.1 != "IPAllocated" && e.0 != "Warning"),
            "{name}: {events:?}"
        );
    }

    // Adding the outside address to a pool adopts it, still without a change.
    set_config(
        &lab.client,
        &format!(
            "{POOLS}  - name: legacy\n    autoAssign: false\n    addresses: [\"203.0.113.50\"]\n"
        ),
    )
    .await;
    wait_condition(&lab.client, "outside", "True").await;
    wait_event(&lab.client, "default", "outside", "IPAdopted").await;
    assert_eq!(
        ingress_ips(&get_service(&lab.client, "outside").await),
        ["203.0.113.50"]
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (name, ips) in &before {
        assert_eq!(
            &ingress_ips(&get_service(&lab.client, name).await),
            ips,
            "{name}"
        );
    }
}
