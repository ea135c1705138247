//! The real `ferrolb-controller` binary against the embedded API server:
//! every behaviour of the controller issue, end to end over HTTP.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ferrolb_testkit::wait_for;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const POOL: &str = "pools:\n  - name: lan\n    addresses: [\"192.0.2.10-192.0.2.12\", \"2001:db8:10::10-2001:db8:10::12\"]\n  - name: edge\n    autoAssign: false\n    addresses: [\"198.51.100.10-198.51.100.19\"]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allocates_writes_status_condition_and_event() {
    let lab = Lab::start().await;
    set_config(&lab.client, POOL).await;
    let _c = ControllerProc::start(&lab.kubeconfig, "c1");
    create_service(&lab.client, mk_service("web")).await;
    assert_eq!(wait_ips(&lab.client, "web", 1).await, ["192.0.2.10"]);
    let svc = get_service(&lab.client, "web").await;
    let ing = &svc
        .status
        .as_ref()
        .unwrap()
        .load_balancer
        .as_ref()
        .unwrap()
        .ingress
        .as_ref()
        .unwrap()[0];
    assert_eq!(ing.ip_mode.as_deref(), Some("VIP"));
    let (status, reason, message) = condition(&svc).expect("condition");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Allocated"));
    assert!(
        message.contains("192.0.2.10") && message.contains("lan"),
        "{message}"
    );
    let note = wait_event(&lab.client, "default", "web", "IPAllocated").await;
    assert!(
        note.contains("192.0.2.10") && note.contains("lan"),
        "{note}"
    );
    // Only the status was written: the spec is as created.
    assert_eq!(svc.metadata.generation, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_pools_sharing_aliases_and_dual_stack_are_honoured() {
    let lab = Lab::start().await;
    set_config(&lab.client, POOL).await;
    let _c = ControllerProc::start(&lab.kubeconfig, "c1");

    let mut v = mk_service("asks-ip");
    v["spec"]["loadBalancerIP"] = json!("192.0.2.12");
    create_service(&lab.client, v).await;
    assert_eq!(wait_ips(&lab.client, "asks-ip", 1).await, ["192.0.2.12"]);

    let mut v = mk_service("asks-pool");
    v["metadata"]["annotations"] = json!({"metallb.universe.tf/address-pool": "edge"});
    create_service(&lab.client, v).await;
    assert_eq!(
        wait_ips(&lab.client, "asks-pool", 1).await,
        ["198.51.100.10"]
    );

    for (name, port) in [("share-a", 80), ("share-b", 443)] {
        let mut v = mk_service(name);
        v["metadata"]["annotations"] =
            json!({"ferrolb.io/allow-shared-ip": "k", "ferrolb.io/address-pool": "edge"});
        v["spec"]["ports"] = json!([{"port": port, "protocol": "TCP"}]);
        create_service(&lab.client, v).await;
    }
    let a = wait_ips(&lab.client, "share-a", 1).await;
    let b = wait_ips(&lab.client, "share-b", 1).await;
    assert_eq!(a, b, "same sharing key, different ports: one IP");

    let mut v = mk_service("dual");
    v["spec"]["ipFamilyPolicy"] = json!("RequireDualStack");
    v["spec"]["ipFamilies"] = json!(["IPv6", "IPv4"]);
    create_service(&lab.client, v).await;
    let ips = wait_ips(&lab.client, "dual", 2).await;
    assert!(
        ips[0].contains(':') && !ips[1].contains(':'),
        "primary family first: {ips:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_warns_keeps_nothing_and_is_retried_when_an_ip_frees() {
    let lab = Lab::start().await;
    set_config(
        &lab.client,
        "pools:\n  - name: tiny\n    addresses: [\"192.0.2.10/32\"]\n",
    )
    .await;
    let _c = ControllerProc::start(&lab.kubeconfig, "c1");
    create_service(&lab.client, mk_service("first")).await;
    wait_ips(&lab.client, "first", 1).await;
    create_service(&lab.client, mk_service("second")).await;
    let (reason, message) = wait_condition(&lab.client, "second", "False").await;
    assert_eq!(reason, "PoolExhausted");
    assert!(message.contains("tiny"), "{message}");
    let note = wait_event(&lab.client, "default", "second", "AllocationFailed").await;
    assert!(note.contains("tiny"), "{note}");
    assert!(ingress_ips(&get_service(&lab.client, "second").await).is_empty());

    // Deleting the holder frees the IP: the waiting Service gets it without any change of its own.
    delete_service(&lab.client, "first").await;
    assert_eq!(wait_ips(&lab.client, "second", 1).await, ["192.0.2.10"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_ferrolb_releases_and_clears_only_what_it_wrote() {
    let lab = Lab::start().await;
    set_config(&lab.client, POOL).await;
    let _c = ControllerProc::start(&lab.kubeconfig, "c1");
    create_service(&lab.client, mk_service("web")).await;
    wait_ips(&lab.client, "web", 1).await;
    let api: Api<Service> = Api::namespaced(lab.client.clone(), "default");

    // A foreign condition written by someone else survives.
    let foreign = json!({"status": {"conditions": [
        {"type": "example.com/Probe", "status": "True", "reason": "Ok", "message": "x", "lastTransitionTime": "2026-01-01T00:00:00Z"},
        condition_json(&get_service(&lab.client, "web").await)
    ]}});
    api.patch_status("web", &PatchParams::default(), &Patch::Merge(&foreign))
        .await
        .unwrap();

    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
    )
    .await
    .unwrap();
    wait_for("ingress cleared", Duration::from_secs(15), || async {
        let s = get_service(&lab.client, "web").await;
        (ingress_ips(&s).is_empty() && condition(&s).is_none()).then_some(())
    })
    .await;
    let s = get_service(&lab.client, "web").await;
    let conds = s.status.unwrap().conditions.unwrap_or_default();
    assert_eq!(conds.len(), 1);
    assert_eq!(conds[0].type_, "example.com/Probe");
    wait_event(&lab.client, "default", "web", "IPReleased").await;

    // The IP is free again for the next Service.
    create_service(&lab.client, mk_service("next")).await;
    assert_eq!(wait_ips(&lab.client, "next", 1).await, ["192.0.2.10"]);

    // A Service of another class is left strictly alone.
    let mut v = mk_service("other-class");
    v["spec"]["loadBalancerClass"] = json!("example.com/other");
    create_service(&lab.client, v).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let s = get_service(&lab.client, "other-class").await;
    assert!(ingress_ips(&s).is_empty() && condition(&s).is_none());
}

fn condition_json(svc: &Service) -> serde_json::Value {
    let c = svc
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "ferrolb.io/IPAllocated")
        .unwrap();
    serde_json::to_value(c).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_changes_no_ip_and_the_older_service_keeps_a_duplicate() {
    let lab = Lab::start().await;
    set_config(&lab.client, POOL).await;
    let mut c = ControllerProc::start(&lab.kubeconfig, "c1");
    for name in ["a", "b", "c"] {
        create_service(&lab.client, mk_service(name)).await;
    }
    let before: Vec<_> = [
        wait_ips(&lab.client, "a", 1).await,
        wait_ips(&lab.client, "b", 1).await,
        wait_ips(&lab.client, "c", 1).await,
    ]
    .concat();
    c.kill();
    // While it is down: "a" is deleted (a missed delete), and a younger Service
    // claims b's IP by hand.
    delete_service(&lab.client, "a").await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // a strictly younger creationTimestamp
    create_service(&lab.client, mk_service("thief")).await;
    let api: Api<Service> = Api::namespaced(lab.client.clone(), "default");
    let stolen =
        json!({"status": {"loadBalancer": {"ingress": [{"ip": before[1], "ipMode": "VIP"}]}}});
    api.patch_status("thief", &PatchParams::default(), &Patch::Merge(&stolen))
        .await
        .unwrap();

    // Same identity, as a restarted pod: it leads at once, racing its caches.
    let _c2 = ControllerProc::start(&lab.kubeconfig, "c1");
    let note = wait_event(&lab.client, "default", "thief", "IPConflict").await;
    assert!(note.contains(&before[1]), "{note}");
    let thief = wait_for("thief moved", Duration::from_secs(15), || async {
        let ips = ingress_ips(&get_service(&lab.client, "thief").await);
        (ips.len() == 1 && ips[0] != before[1]).then_some(ips)
    })
    .await;
    assert_eq!(
        thief,
        [before[0].clone()],
        "the thief gets the IP freed by the missed delete"
    );
    assert_eq!(
        ingress_ips(&get_service(&lab.client, "b").await),
        [before[1].clone()]
    );
    assert_eq!(
        ingress_ips(&get_service(&lab.client, "c").await),
        [before[2].clone()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_apply_live_and_bad_config_is_rejected_whole() {
    let lab = Lab::start().await;
    let c = ControllerProc::start(&lab.kubeconfig, "c1");
    // No ConfigMap: the controller starts, is ready, allocates nothing and says why.
    create_service(&lab.client, mk_service("early")).await;
    let (reason, message) = wait_condition(&lab.client, "early", "False").await;
    assert_eq!(reason, "NoConfiguration");
    assert!(
        message.contains("ferrolb-system/ferrolb-config"),
        "{message}"
    );
    let ready = wait_for("readyz", Duration::from_secs(10), || async {
        c.http_get("/readyz").await.filter(|r| r.0 == 200)
    })
    .await;
    assert_eq!(ready.1, "ok");

    // The ConfigMap appears: the waiting Service gets an IP, no restart.
    set_config(
        &lab.client,
        "pools:\n  - name: lan\n    addresses: [\"192.0.2.10/31\"]\n",
    )
    .await;
    assert_eq!(wait_ips(&lab.client, "early", 1).await, ["192.0.2.10"]);

    // A bad ConfigMap: rejected as a whole, Warning Event on it, config_stale=1, nothing released.
    set_config(&lab.client, "pools:\n  - name: lan\n    addresses: [\"198.51.100.0/24\"]\n  - name: broken\n    addresses: [\"300.1.1.1\"]\n").await;
    let note = wait_event(&lab.client, NS, CM, "InvalidConfiguration").await;
    assert!(note.contains("300.1.1.1"), "{note}");
    wait_for("config_stale 1", Duration::from_secs(10), || async {
        (c.metric("ferrolb_config_stale").await? == 1.0).then_some(())
    })
    .await;
    assert_eq!(
        ingress_ips(&get_service(&lab.client, "early").await),
        ["192.0.2.10"]
    );
    create_service(&lab.client, mk_service("during-bad")).await;
    assert_eq!(
        wait_ips(&lab.client, "during-bad", 1).await,
        ["192.0.2.11"],
        "the last good config is in force"
    );

    // A good change that drops the IP of one Service moves only that one.
    set_config(
        &lab.client,
        "pools:\n  - name: lan\n    addresses: [\"192.0.2.11/32\", \"203.0.113.7/32\"]\n",
    )
    .await;
    let moved = wait_for("early moved", Duration::from_secs(15), || async {
        let ips = ingress_ips(&get_service(&lab.client, "early").await);
        (ips == ["203.0.113.7"]).then_some(ips)
    })
    .await;
    assert_eq!(moved, ["203.0.113.7"]);
    assert_eq!(
        ingress_ips(&get_service(&lab.client, "during-bad").await),
        ["192.0.2.11"]
    );
    assert_eq!(c.metric("ferrolb_config_stale").await, Some(0.0));
    let m = c.http_get("/metrics").await.unwrap().1;
    assert!(
        m.contains("ferrolb_pool_size{pool=\"lan\",family=\"ipv4\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("ferrolb_pool_in_use{pool=\"lan\",family=\"ipv4\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("ferrolb_config_reloads_total{result=\"error\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("ferrolb_reconcile_duration_seconds_count"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_takes_over_within_the_lease_duration_and_only_the_leader_writes() {
    let lab = Lab::start().await;
    set_config(&lab.client, POOL).await;
    let mut c1 = ControllerProc::start(&lab.kubeconfig, "c1");
    wait_for("c1 leads", Duration::from_secs(10), || async {
        (c1.metric("ferrolb_leader").await? == 1.0).then_some(())
    })
    .await;
    let c2 = ControllerProc::start(&lab.kubeconfig, "c2");
    wait_for("c2 ready as standby", Duration::from_secs(10), || async {
        c2.http_get("/readyz").await.filter(|r| r.0 == 200)
    })
    .await;
    assert_eq!(c2.metric("ferrolb_leader").await, Some(0.0));
    create_service(&lab.client, mk_service("one")).await;
    wait_ips(&lab.client, "one", 1).await;
    assert_eq!(
        c2.metric("ferrolb_allocations_total").await,
        Some(0.0),
        "the standby wrote nothing"
    );

    c1.kill();
    let t = Instant::now();
    create_service(&lab.client, mk_service("two")).await;
    wait_ips(&lab.client, "two", 1).await;
    let took = t.elapsed();
    eprintln!("standby took over and allocated in {took:?}");
    assert!(
        took < Duration::from_secs(2) + Duration::from_millis(1500),
        "lease duration 2s, took {took:?}"
    );
    assert_eq!(
        ingress_ips(&get_service(&lab.client, "one").await),
        ["192.0.2.10"],
        "no IP moved on takeover"
    );
}
