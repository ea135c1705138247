//! Failover: a crashed, terminated, link-down or API-partitioned speaker's IPs move
//! to the others, an API server down for everyone moves nothing, and at no instant do
//! two speakers announce one IP.

mod election_support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use election_support::*;
use ferrolb_speaker::{Settings, Timers};
use ferrolb_testkit::{wait_until, wait_until_async};

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
    wait_until(what, limit, || {
        let a = announcers(speakers);
        all_ips()
            .iter()
            .all(|ip| a.get(ip).map(String::as_str) == Some(expected(nodes, *ip).as_str()))
    })
    .await
}

/// Kills (as SIGKILL) the speaker announcing the first Service IP in `before` and waits
/// at most `limit` until the survivors announce every IP as the election among them says;
/// returns the victim's node, when it was killed, and how long the takeover took.
async fn kill_first_announcer(
    speakers: &mut [SpeakerHandle],
    before: &BTreeMap<IpAddr, String>,
    limit: Duration,
    what: &str,
) -> (String, Instant, Duration) {
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
    let took = settle(&live, &survivors, limit, what).await;
    (victim_node, killed_at, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_announcer_loses_its_ips_within_the_peer_timeout_and_only_those_move() {
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
    let (victim_node, killed_at, took) = kill_first_announcer(
        &mut speakers,
        &before,
        Duration::from_secs(5),
        "takeover after a crash",
    )
    .await;
    let live: Vec<&SpeakerHandle> = speakers.iter().filter(|s| s.node != victim_node).collect();
    let timeout = Timers::default().peer_timeout;
    assert!(
        took <= timeout + Duration::from_millis(300),
        "takeover took {took:?}, peer timeout {timeout:?}"
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
    // A long peer timeout: a handover that waited for it would take 4 s.
    let timers = Timers {
        heartbeat_interval: Duration::from_secs(1),
        peer_timeout: Duration::from_secs(4),
        ..Timers::default()
    };
    let mut speakers = Vec::new();
    for n in NODES {
        let mut s = c.settings(n);
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
        took < Duration::from_secs(2),
        "handover took {took:?}: it waited for the peer timeout"
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
    wait_until("link-down node goes silent", Duration::from_secs(1), || {
        speakers[victim].announced().is_empty()
    })
    .await;
    let survivors: Vec<&str> = NODES
        .iter()
        .copied()
        .filter(|n| *n != victim_node)
        .collect();
    // Well within the peer timeout: peers learn it from the next heartbeat.
    settle(
        &all,
        &survivors,
        Duration::from_secs(1),
        "peers take over from a dead link",
    )
    .await;
    // The Lease is written in the background, after the heartbeat that moved the IPs.
    wait_until_async(
        "the link state published in the Lease",
        Duration::from_secs(3),
        || async {
            c.lease(&victim_node)
                .await
                .and_then(|l| l.metadata.annotations)
                .is_some_and(|a| a.get("ferrolb.io/link").map(String::as_str) == Some("down"))
        },
    )
    .await;

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

/// Timers that make an API view stale in 1 s instead of 5 s.
fn quick_api_timers() -> Timers {
    Timers {
        api_stale_after: Duration::from_secs(1),
        api_probe_period: Duration::from_millis(200),
        ..Timers::default()
    }
}

/// The instant `s` last stopped announcing every IP of `ips` (its data plane history).
fn stopped_at(s: &SpeakerHandle, ips: &[IpAddr]) -> Option<Instant> {
    s.dp.history()
        .iter()
        .rev()
        .find(|(_, set)| ips.iter().all(|ip| !set.contains(ip)))
        .map(|(t, _)| *t)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaker_cut_off_alone_from_the_api_hands_over_coordinated() {
    let c = cluster_with_services().await;
    let proxy = Proxy::start(c.server.local_addr()).await;
    // node-a reaches the API server only through the proxy.
    let mut settings: Vec<Settings> = NODES.iter().map(|n| c.settings(n)).collect();
    for s in &mut settings {
        s.timers = quick_api_timers();
    }
    let mut speakers = vec![
        c.speaker_with(settings[0].clone(), proxy.client().await)
            .await,
    ];
    for s in &settings[1..] {
        speakers.push(c.speaker_with(s.clone(), c.client.clone()).await);
    }
    let all: Vec<&SpeakerHandle> = speakers.iter().collect();
    settle(&all, &NODES, Duration::from_secs(10), "initial election").await;
    let before = announcers(&all);
    let a_ips: Vec<IpAddr> = before
        .iter()
        .filter(|(_, n)| *n == "node-a")
        .map(|(ip, _)| *ip)
        .collect();
    assert!(!a_ips.is_empty(), "node-a has IPs");

    proxy.cut();
    let silent = wait_until(
        "node-a, alone without the API server, goes silent",
        Duration::from_secs(4),
        || speakers[0].announced().is_empty(),
    )
    .await;
    assert!(
        silent >= Duration::from_millis(700),
        "silent after {silent:?}: before its view was stale"
    );
    settle(&all, &NODES[1..], Duration::from_secs(2), "peers take over").await;
    for ip in all_ips() {
        assert_no_overlap(&all, ip, &[]);
    }
    // Coordinated: the peers start right after node-a stops (its heartbeat says so at
    // once), not after any timeout.
    let stop = stopped_at(&speakers[0], &a_ips).expect("node-a stopped");
    let mut first_takeover: Option<Instant> = None;
    for s in &speakers[1..] {
        for (at, set) in s.dp.history() {
            if at > stop && a_ips.iter().any(|ip| set.contains(ip)) {
                first_takeover = Some(first_takeover.map_or(at, |f: Instant| f.min(at)));
                break;
            }
        }
    }
    let gap = first_takeover.expect("peers took node-a's IPs") - stop;
    assert!(gap <= Duration::from_millis(200), "silent gap {gap:?}");

    // Healed: node-a gets its IPs back, still never overlapping.
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
async fn api_down_for_everyone_moves_nothing_and_a_crash_still_fails_over() {
    let c = cluster_with_services().await;
    let proxy = Proxy::start(c.server.local_addr()).await;
    let mut speakers = Vec::new();
    for n in NODES {
        let mut s = c.settings(n);
        s.timers = quick_api_timers();
        speakers.push(c.speaker_with(s, proxy.client().await).await);
    }
    let all: Vec<&SpeakerHandle> = speakers.iter().collect();
    settle(&all, &NODES, Duration::from_secs(10), "initial election").await;
    let before = announcers(&all);
    let sets_before: Vec<_> = speakers.iter().map(|s| s.announced()).collect();

    let cut_at = Instant::now();
    proxy.cut();
    // Three times the staleness threshold: every view is stale, nothing moves.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sets_during: Vec<_> = speakers.iter().map(|s| s.announced()).collect();
    assert_eq!(
        sets_during, sets_before,
        "nothing moved while the API server was down"
    );
    for s in &speakers {
        assert!(
            s.dp.history().iter().all(|(at, _)| *at < cut_at),
            "{}: changed its announcements during the outage",
            s.node
        );
    }

    // A node dies while the API server is still down: its IPs move on the cached view.
    let (victim_node, killed_at, took) = kill_first_announcer(
        &mut speakers,
        &before,
        Duration::from_secs(3),
        "takeover without the API",
    )
    .await;
    let live: Vec<&SpeakerHandle> = speakers.iter().filter(|s| s.node != victim_node).collect();
    assert!(
        took <= Timers::default().peer_timeout + Duration::from_millis(300),
        "took {took:?}"
    );
    let all: Vec<&SpeakerHandle> = speakers.iter().collect();
    for ip in all_ips() {
        assert_no_overlap(&all, ip, &[(victim_node.as_str(), killed_at)]);
    }

    // The API server returns: nothing moves, since the cluster did not change.
    let after = announcers(&live);
    proxy.heal();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        announcers(&live),
        after,
        "nothing moved when the API server returned"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaker_starting_without_the_api_announces_nothing_and_peers_keep_serving() {
    let c = cluster_with_services().await;
    let proxy = Proxy::start(c.server.local_addr()).await;
    let mut speakers = vec![c.speaker("node-b").await, c.speaker("node-c").await];
    {
        let refs: Vec<&SpeakerHandle> = speakers.iter().collect();
        settle(&refs, &NODES[1..], Duration::from_secs(10), "two speakers").await;
    }
    proxy.cut();
    speakers.push(
        c.speaker_with(c.settings("node-a"), proxy.client().await)
            .await,
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        speakers[2]
            .dp
            .history()
            .iter()
            .all(|(_, set)| set.is_empty()),
        "a speaker without a view announced something"
    );
    let refs: Vec<&SpeakerHandle> = speakers.iter().collect();
    settle(
        &refs,
        &NODES[1..],
        Duration::from_millis(100),
        "peers still serve everything",
    )
    .await;
    // With the API server back it joins.
    proxy.heal();
    settle(&refs, &NODES, Duration::from_secs(10), "node-a joins").await;
    for ip in all_ips() {
        assert_no_overlap(&refs, ip, &[]);
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
