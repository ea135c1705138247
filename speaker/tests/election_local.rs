//! `externalTrafficPolicy: Local`: the announcer is a node with a ready endpoint, and
//! the IP follows the endpoints.

mod election_support;

use std::time::Duration;

use election_support::*;
use ferrolb_testkit::{wait_until, wait_until_async};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_policy_follows_ready_endpoints() {
    let c = Cluster::start().await;
    let nodes = ["node-a", "node-b", "node-c"];
    for n in nodes {
        c.add_node(n, true, &[]).await;
    }
    let ip = doc_ip(7);
    c.add_service("web", ip, true, &["node-b"]).await;
    let speakers = [
        c.speaker("node-a").await,
        c.speaker("node-b").await,
        c.speaker("node-c").await,
    ];
    let refs: Vec<&SpeakerHandle> = speakers.iter().collect();
    let holder = |node: &'static str| {
        let refs = refs.clone();
        move || announcers(&refs).get(&ip).map(String::as_str) == Some(node)
    };
    wait_until(
        "node-b (the only endpoint) announces",
        Duration::from_secs(10),
        holder("node-b"),
    )
    .await;

    // The endpoint moves to node-c (node-b loses its last local endpoint).
    c.set_endpoints("web", &[("node-b", false), ("node-c", true)])
        .await;
    wait_until(
        "node-c takes over",
        Duration::from_secs(3),
        holder("node-c"),
    )
    .await;
    assert!(speakers[1].announced().is_empty());

    // No ready endpoint anywhere: nobody announces, and a Warning says why.
    c.set_endpoints("web", &[("node-c", false)]).await;
    wait_until("nobody announces", Duration::from_secs(3), || {
        announcers(&refs).is_empty()
    })
    .await;
    wait_until_async("NoEligibleNode warning", Duration::from_secs(5), || async {
        c.service_events("web").await.iter().any(|e| {
            e.reason.as_deref() == Some("NoEligibleNode")
                && e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("has no ready endpoint"))
        })
    })
    .await;
    // node-c's stop was reported on the Service with the reason.
    wait_until_async(
        "StoppedAnnouncing from node-c",
        Duration::from_secs(5),
        || async {
            c.service_events("web").await.iter().any(|e| {
                e.reason.as_deref() == Some("StoppedAnnouncing")
                    && e.reporting_instance.as_deref() == Some("node-c")
                    && e.note
                        .as_deref()
                        .is_some_and(|n| n.contains("no ready endpoint"))
            })
        },
    )
    .await;
    assert_no_overlap(&refs, ip, &[]);
}
