//! Several speakers against the embedded API server: one announcer per IP, spread,
//! eligibility (Ready, exclude label, l2.nodeSelector), Leases and Events.

mod election_support;

use std::collections::BTreeMap;
use std::time::Duration;

use election_support::*;
use ferrolb_testkit::{wait_until, wait_until_async};

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_announcer_per_ip_spread_over_nodes_with_leases_and_events() {
    let c = Cluster::start().await;
    for n in NODES {
        c.add_node(n, true, &[]).await;
    }
    let n_svc = 30;
    for i in 0..n_svc {
        c.add_service(&format!("svc-{i}"), doc_ip(i), false, &["node-a"])
            .await;
    }
    let speakers = [
        c.speaker(NODES[0]).await,
        c.speaker(NODES[1]).await,
        c.speaker(NODES[2]).await,
    ];
    let refs: Vec<&SpeakerHandle> = speakers.iter().collect();

    // Every IP ends up announced by the node the pure election names.
    wait_until(
        "every IP announced as elected",
        Duration::from_secs(10),
        || {
            let a = announcers(&refs);
            a.len() == n_svc as usize
                && (0..n_svc).all(|i| a[&doc_ip(i)] == expected(&NODES, doc_ip(i)))
        },
    )
    .await;
    // ... and it stays that way (no flapping, never two announcers).
    for _ in 0..20 {
        let a = announcers(&refs);
        assert_eq!(a.len(), n_svc as usize);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for n in announcers(&refs).values() {
        *per_node.entry(n.clone()).or_default() += 1;
    }
    assert_eq!(per_node.len(), 3, "every node announces some: {per_node:?}");
    for i in 0..n_svc {
        assert_no_overlap(&refs, doc_ip(i), &[]);
    }

    // `kubectl get lease -n ferrolb-system` shows one Lease per speaker.
    for n in NODES {
        let lease = c.lease(n).await.expect("lease exists");
        assert_eq!(
            lease.spec.unwrap().holder_identity.as_deref(),
            Some(n),
            "holder of {n}'s Lease"
        );
    }

    // `kubectl describe svc` tells which node holds it.
    let holder = expected(&NODES, doc_ip(0));
    wait_until_async(
        "Announcing Event on svc-0",
        Duration::from_secs(5),
        || async {
            c.service_events("svc-0").await.iter().any(|e| {
                e.reason.as_deref() == Some("Announcing")
                    && e.type_.as_deref() == Some("Normal")
                    && e.reporting_controller.as_deref() == Some("ferrolb-speaker")
                    && e.reporting_instance.as_deref() == Some(holder.as_str())
                    && e.note
                        .as_deref()
                        .is_some_and(|n| n.contains(&holder) && n.contains("198.51.100.0"))
            })
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unready_excluded_and_unselected_nodes_do_not_announce() {
    let c = Cluster::start().await;
    c.add_node("ready", true, &[("ferrolb.io/speaker", "true")])
        .await;
    c.add_node("unready", false, &[("ferrolb.io/speaker", "true")])
        .await;
    c.add_node(
        "excluded",
        true,
        &[
            ("ferrolb.io/speaker", "true"),
            (
                "node.kubernetes.io/exclude-from-external-load-balancers",
                "",
            ),
        ],
    )
    .await;
    c.add_node("unselected", true, &[]).await;
    c.set_config(
        "pools: [{name: p, addresses: [198.51.100.0/24]}]\n\
         l2: {nodeSelector: {matchLabels: {ferrolb.io/speaker: \"true\"}}}\n",
    )
    .await;
    for i in 0..20 {
        c.add_service(&format!("svc-{i}"), doc_ip(i), false, &["ready"])
            .await;
    }
    let speakers = [
        c.speaker("ready").await,
        c.speaker("unready").await,
        c.speaker("excluded").await,
        c.speaker("unselected").await,
    ];
    let refs: Vec<&SpeakerHandle> = speakers.iter().collect();
    wait_until(
        "all 20 IPs on the only eligible node",
        Duration::from_secs(10),
        || speakers[0].announced().len() == 20,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for s in &speakers[1..] {
        assert!(
            s.announced().is_empty(),
            "{} announces {:?}",
            s.node,
            s.announced()
        );
    }
    announcers(&refs);

    // The node becomes NotReady: nobody may announce; one speaker explains why.
    c.set_node_ready("ready", false).await;
    wait_until("NotReady node stops", Duration::from_secs(5), || {
        speakers[0].announced().is_empty()
    })
    .await;
    wait_until_async("NoEligibleNode warning", Duration::from_secs(5), || async {
        c.service_events("svc-0").await.iter().any(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.reason.as_deref() == Some("NoEligibleNode")
                && e.note.as_deref().is_some_and(|n| n.contains("not Ready"))
        })
    })
    .await;
    // Exactly one speaker reported it (no flood from every node).
    let reporters: std::collections::BTreeSet<String> = c
        .service_events("svc-0")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("NoEligibleNode"))
        .filter_map(|e| e.reporting_instance)
        .collect();
    assert_eq!(reporters.len(), 1, "reported by {reporters:?}");

    // Removing the selector from the config lets `unselected` take over.
    c.set_config("pools: [{name: p, addresses: [198.51.100.0/24]}]\n")
        .await;
    wait_until("unselected node takes all", Duration::from_secs(5), || {
        speakers[3].announced().len() == 20
    })
    .await;
    assert!(
        speakers[2].announced().is_empty(),
        "excluded node stays out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclude_label_can_be_ignored_by_flag() {
    let c = Cluster::start().await;
    c.add_node(
        "cp",
        true,
        &[(
            "node.kubernetes.io/exclude-from-external-load-balancers",
            "",
        )],
    )
    .await;
    c.add_service("svc", doc_ip(1), false, &["cp"]).await;
    let mut settings = c.settings("cp");
    settings.ignore_exclude_lb_label = true;
    let s = c.speaker_with(settings, c.client.clone()).await;
    wait_until(
        "control-plane node announces",
        Duration::from_secs(10),
        || s.announced().contains(&doc_ip(1)),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kernel_answering_arp_itself_is_reported_on_the_node_once() {
    let c = Cluster::start().await;
    c.add_node("ipvs-node", true, &[]).await;
    let s = c.speaker("ipvs-node").await;
    let finding = "kube-ipvs0 exists and on eth0 the kernel has arp_ignore=0 arp_announce=0";
    s.dp.set_strict_arp_problems(vec![finding.to_string()]);
    wait_until_async(
        "StrictArpDisabled Event on the Node",
        Duration::from_secs(15),
        || async {
            c.events_about("Node", "ipvs-node").await.iter().any(|e| {
                e.type_.as_deref() == Some("Warning")
                    && e.reason.as_deref() == Some("StrictArpDisabled")
                    && e.note.as_deref() == Some(finding)
            })
        },
    )
    .await;
    // Reported once, not at every check.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let n = c
        .events_about("Node", "ipvs-node")
        .await
        .iter()
        .filter(|e| e.reason.as_deref() == Some("StrictArpDisabled"))
        .count();
    assert_eq!(n, 1);
}
