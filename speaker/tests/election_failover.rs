//! Failover: a crashed, terminated, link-down or partitioned speaker's IPs move to
//! the others, and at no instant do two speakers announce one IP.

mod election_support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use election_support::*;
use ferrolb_speaker::{LeaseTimers, Settings};

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const N_SVC: u32 = 24;

async fn cluster_with_services() -> Cluster {
    let c = Cluster::start().await;
    for n in NODES {
        c.add_node(n, true, &[]).await;
    }
    for i in 0..N_SVC {
        c.add_service(&format!("svc-{i}"), doc_ip(i), false, &["node-a"])
            .await;
    }
    c
}

fn all_ips() -> Vec<IpAddr> {
    (0..N_SVC).map(doc_ip).collect()
}

/// Waits until `speakers` announce every IP exactly as the election among `nodes` says.
async fn settle(
    speakers: &[&SpeakerHandle],
    nodes: &[&str],
    limit: Duration,
    what: &str,
) -> Duration {
    wait_until(limit, what, || {
        let a = announcers(speakers);
        all_ips()
            .iter()
            .all(|ip| a.get(ip).map(String::as_str) == Some(expected(nodes, *ip).as_str()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_announcer_loses_its_ips_within_the_lease_duration_and_only_those_move() {
    let c = cluster_with_services().await;
    let mut speakers = Vec::new();
    for n in NODES {
        speakers.push(c.speaker(n).await);
    }
    {
        let refs: Vec<&SpeakerHandle> = speakers.iter().collect();
        settle(&refs, &NODES, Duration::from_secs(10), "initial election").await;
    }
    let before = announcers(&speakers.iter().collect::<Vec<_>>());
    let victim_node = before[&doc_ip(0)].clone();
    let victim = speakers.iter().position(|s| s.node == victim_node).unwrap();
    let killed_at = Instant::now();
    speakers[victim].kill();

    let survivors: Vec<&str> = NODES
        .iter()
        .copied()
        .filter(|n| *n != victim_node)
        .collect();
    let live: Vec<&SpeakerHandle> = speakers.iter().filter(|s| s.node != victim_node).collect();
    let took = settle(
        &live,
        &survivors,
        Duration::from_secs(5),
        "takeover after a crash",
    )
    .await;
    let lease = LeaseTimers::default().duration;
    assert!(
        took <= lease + Duration::from_millis(500),
        "takeover took {took:?}, lease duration {lease:?}"
    );
    // Minimal movement: IPs of the survivors stayed where they were.
    let after = announcers(&live);
    for (ip, node) in &before {
        if *node != victim_node {
            assert_eq!(&after[ip], node, "{ip} moved although its node survived");
        }
    }
    let all: Vec<&SpeakerHandle> = speakers.iter().collect();
    for ip in all_ips() {
        assert_no_overlap(&all, ip, &[(victim_node.as_str(), killed_at)]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_deletes_the_lease_and_hands_over_at_once() {
    let c = cluster_with_services().await;
    // A long lease: a handover that waited for expiry would take 10 s.
    let timers = LeaseTimers {
        duration: Duration::from_secs(10),
        renew_period: Duration::from_secs(1),
        safety_margin: Duration::from_secs(2),
        retry: Duration::from_millis(100),
    };
    let mut speakers = Vec::new();
    for n in NODES {
        let mut s = Settings::new(n);
        s.timers = timers;
        speakers.push(c.speaker_with(s, c.client.clone()).await);
    }
    {
        let refs: Vec<&SpeakerHandle> = speakers.iter().collect();
        settle(&refs, &NODES, Duration::from_secs(10), "initial election").await;
    }
    let before = announcers(&speakers.iter().collect::<Vec<_>>());
    let victim_node = before[&doc_ip(0)].clone();
    let victim = speakers.iter().position(|s| s.node == victim_node).unwrap();
    assert!(c.lease(&victim_node).await.is_some());

    let start = Instant::now();
    speakers[victim].terminate().await;
    assert!(
        speakers[victim].announced().is_empty(),
        "silent after shutdown"
    );
    assert!(c.lease(&victim_node).await.is_none(), "Lease deleted");
    let survivors: Vec<&str> = NODES
        .iter()
        .copied()
        .filter(|n| *n != victim_node)
        .collect();
    let live: Vec<&SpeakerHandle> = speakers.iter().filter(|s| s.node != victim_node).collect();
    settle(
        &live,
        &survivors,
        Duration::from_secs(3),
        "takeover after SIGTERM",
    )
    .await;
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "handover took {took:?}: it waited for the Lease to expire"
    );
    let all: Vec<&SpeakerHandle> = speakers.iter().collect();
    for ip in all_ips() {
        assert_no_overlap(&all, ip, &[]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_down_hands_over_and_is_published_in_the_lease() {
    let c = cluster_with_services().await;
    let mut speakers = Vec::new();
    for n in NODES {
        speakers.push(c.speaker(n).await);
    }
    let all: Vec<&SpeakerHandle> = speakers.iter().collect();
    settle(&all, &NODES, Duration::from_secs(10), "initial election").await;
    let victim_node = announcers(&all)[&doc_ip(0)].clone();
    let victim = speakers.iter().position(|s| s.node == victim_node).unwrap();

    speakers[victim].dp.set_link(false);
    wait_until(Duration::from_secs(1), "link-down node goes silent", || {
        speakers[victim].announced().is_empty()
    })
    .await;
    let survivors: Vec<&str> = NODES
        .iter()
        .copied()
        .filter(|n| *n != victim_node)
        .collect();
    // Well within the lease duration: peers learn it from the Lease, not from expiry.
    settle(
        &all,
        &survivors,
        Duration::from_secs(1),
        "peers take over from a dead link",
    )
    .await;
    let ann = c
        .lease(&victim_node)
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap();
    assert_eq!(ann.get("ferrolb.io/link").map(String::as_str), Some("down"));

    // Link back: the node takes its IPs back by the normal election.
    speakers[victim].dp.set_link(true);
    settle(
        &all,
        &NODES,
        Duration::from_secs(3),
        "IPs return after link up",
    )
    .await;
    for ip in all_ips() {
        assert_no_overlap(&all, ip, &[]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_speaker_stops_answering_before_peers_take_over() {
    let c = cluster_with_services().await;
    let proxy = Proxy::start(c.server.local_addr()).await;
    // node-a reaches the API server only through the proxy.
    let mut speakers = vec![
        c.speaker_with(Settings::new("node-a"), proxy.client().await)
            .await,
    ];
    for n in &NODES[1..] {
        speakers.push(c.speaker(n).await);
    }
    let all: Vec<&SpeakerHandle> = speakers.iter().collect();
    settle(&all, &NODES, Duration::from_secs(10), "initial election").await;
    let before = announcers(&all);
    assert!(before.values().any(|n| n == "node-a"), "node-a has IPs");

    let cut_at = Instant::now();
    proxy.cut();
    let t = LeaseTimers::default();
    let silent = wait_until(
        Duration::from_secs(3),
        "partitioned node goes silent",
        || speakers[0].announced().is_empty(),
    )
    .await;
    assert!(
        silent <= t.duration - t.safety_margin + Duration::from_millis(300),
        "silent after {silent:?}"
    );
    settle(&all, &NODES[1..], Duration::from_secs(5), "peers take over").await;
    // Nobody announced an IP while node-a still did.
    for ip in all_ips() {
        assert_no_overlap(&all, ip, &[]);
    }
    // The silence came before the takeover, by about the safety margin.
    let mut first_takeover: Option<Instant> = None;
    for s in &speakers[1..] {
        for (at, set) in s.dp.history() {
            if at > cut_at
                && before
                    .iter()
                    .any(|(ip, n)| n == "node-a" && set.contains(ip))
            {
                first_takeover = Some(first_takeover.map_or(at, |f: Instant| f.min(at)));
                break;
            }
        }
    }
    let stop = speakers[0]
        .dp
        .history()
        .iter()
        .rev()
        .find(|(_, set)| set.is_empty())
        .map(|(t, _)| *t)
        .unwrap();
    let takeover = first_takeover.expect("peers took node-a's IPs");
    assert!(takeover > stop, "takeover before node-a went silent");

    // Healed: node-a comes back into the election and gets its IPs back, still never
    // overlapping.
    proxy.heal();
    settle(
        &all,
        &NODES,
        Duration::from_secs(10),
        "node-a back after the partition",
    )
    .await;
    for ip in all_ips() {
        assert_no_overlap(&all, ip, &[]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_speaker_takes_its_share_without_overlap() {
    let c = cluster_with_services().await;
    let mut speakers = vec![c.speaker("node-a").await, c.speaker("node-b").await];
    {
        let refs: Vec<&SpeakerHandle> = speakers.iter().collect();
        settle(&refs, &NODES[..2], Duration::from_secs(10), "two speakers").await;
    }
    speakers.push(c.speaker("node-c").await);
    let all: Vec<&SpeakerHandle> = speakers.iter().collect();
    settle(&all, &NODES, Duration::from_secs(10), "three speakers").await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for n in announcers(&all).values() {
        *counts.entry(n.clone()).or_default() += 1;
    }
    assert!(counts.get("node-c").copied().unwrap_or(0) > 0, "{counts:?}");
    for ip in all_ips() {
        assert_no_overlap(&all, ip, &[]);
    }
}
