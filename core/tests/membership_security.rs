//! Unauthenticated, foreign and replayed heartbeats are dropped with the right reason
//! and change nothing; key rotation costs no failover.

#[path = "support/membership_sim.rs"]
mod sim;

use std::time::Duration;

use ferrolb_core::membership::{DropReason, Keyring, Membership, MembershipConfig};
use sim::{KEY, KEY2, Sim, addr, name};

fn warm(n: usize, seed: u64) -> Sim {
    let mut s = Sim::new(n, MembershipConfig::default(), seed);
    s.run_for(Duration::from_secs(2));
    s
}

/// Heartbeats of a node named like node 0, from another cluster or key.
fn impostor_datagrams(config: MembershipConfig, keys: &Keyring, t: std::time::Instant) -> Vec<u8> {
    let mut m = Membership::new(&name(0), u64::MAX / 2, config);
    m.set_peers([(name(1), addr(1))]);
    let mut out = Vec::new();
    m.poll(keys, t, &mut out);
    out.pop().expect("one datagram").datagram
}

/// After node 0 crashes, `attack` injects datagrams claiming to be node 0 into node 1
/// every 20 ms; detection must stay within timeout + interval and every injected
/// datagram must be dropped as `reason`.
fn attack_does_not_delay_detection(
    attack: impl Fn(&mut Sim, usize) -> Vec<Vec<u8>>,
    reason: DropReason,
) {
    let mut s = warm(3, 21);
    s.capture_from = Some(0);
    s.run_for(Duration::from_millis(500));
    s.capture_from = None;
    let (interval, timeout) = (s.nodes[1].m.interval(), s.nodes[1].m.timeout());
    s.crash(0);
    let mut injected = 0;
    for round in 0..50 {
        for d in attack(&mut s, round) {
            s.inject(addr(0), 1, d);
            injected += 1;
        }
        s.run_for(Duration::from_millis(20));
    }
    assert!(injected > 0);
    assert_eq!(
        s.drops.get(&reason).copied().unwrap_or(0),
        injected,
        "every injected datagram dropped as {reason:?}: {:?}",
        s.drops
    );
    assert_eq!(s.drops.len(), 1, "no other drops: {:?}", s.drops);
    let d = s.detection_delays();
    assert_eq!(d.len(), 2, "both observers detect the crash");
    assert!(
        d.iter().all(|&x| x <= timeout + interval),
        "detection {d:?} delayed by the attack"
    );
    assert!(!s.sees_alive(1, 0));
}

#[test]
fn forged_macs_are_dropped_and_do_not_delay_detection() {
    attack_does_not_delay_detection(
        |s, round| {
            let (_, mut d) = s.captured[round % s.captured.len()].clone();
            let last = d.len() - 1;
            d[last] ^= 1;
            // A fresher sequence, too: only the MAC protects it.
            let seq_at = 4 + 1 + 4 + 1 + "default".len() + 1 + name(0).len() + 8;
            d[seq_at] = 0x7f;
            vec![d]
        },
        DropReason::BadMac,
    );
}

#[test]
fn replayed_datagrams_of_a_dead_node_are_dropped_and_do_not_delay_detection() {
    attack_does_not_delay_detection(
        |s, round| {
            // Everything node 0 sent, to anybody, replayed to node 1.
            if round == 0 {
                s.captured.iter().map(|(_, d)| d.clone()).collect()
            } else {
                vec![s.captured[round % s.captured.len()].1.clone()]
            }
        },
        DropReason::Replayed,
    );
}

#[test]
fn another_clusters_heartbeats_are_dropped() {
    attack_does_not_delay_detection(
        |s, _| {
            let config = MembershipConfig {
                cluster: "other".to_string(),
                ..MembershipConfig::default()
            };
            vec![impostor_datagrams(
                config,
                &Keyring::new(KEY, None).unwrap(),
                s.now,
            )]
        },
        DropReason::OtherCluster,
    );
}

#[test]
fn heartbeats_under_an_unknown_key_are_dropped() {
    attack_does_not_delay_detection(
        |s, _| {
            let keys = Keyring::new(b"an attacker's key, 32 bytes long", None).unwrap();
            vec![impostor_datagrams(
                MembershipConfig::default(),
                &keys,
                s.now,
            )]
        },
        DropReason::UnknownKey,
    );
}

#[test]
fn garbage_and_own_datagrams_are_dropped_with_their_reason() {
    let keys = Keyring::new(KEY, None).unwrap();
    let t = std::time::Instant::now();
    let mut a = Membership::new("a", 1, MembershipConfig::default());
    a.set_peers([("b".to_string(), addr(1))]);
    let mut out = Vec::new();
    a.poll(&keys, t, &mut out);
    let own = out[0].datagram.clone();
    assert_eq!(
        a.receive(addr(1), &own, &keys, t),
        Err(DropReason::FromSelf)
    );
    assert_eq!(
        a.receive(addr(1), b"FLB", &keys, t),
        Err(DropReason::Malformed)
    );
    assert_eq!(
        a.receive(addr(1), b"XXXXXXXXXX", &keys, t),
        Err(DropReason::BadMagic)
    );
    let mut v2 = own.clone();
    v2[4] = 2;
    assert_eq!(
        a.receive(addr(1), &v2, &keys, t),
        Err(DropReason::UnsupportedVersion)
    );
    let labels: Vec<_> = [
        DropReason::Malformed,
        DropReason::BadMagic,
        DropReason::UnsupportedVersion,
        DropReason::UnknownKey,
        DropReason::BadMac,
        DropReason::OtherCluster,
        DropReason::Replayed,
        DropReason::FromSelf,
    ]
    .iter()
    .map(|r| r.metric_label())
    .collect();
    let mut unique = labels.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        labels.len(),
        "distinct metric labels: {labels:?}"
    );
}

#[test]
fn key_rotation_causes_no_death_and_no_drop() {
    let mut s = Sim::new(3, MembershipConfig::default(), 23);
    // Node 0 already signs with the new key; the others still sign with the old one
    // and accept the new one as secondary.
    s.nodes[0].keys = Keyring::new(KEY2, Some(KEY)).unwrap();
    for i in 1..3 {
        s.nodes[i].keys = Keyring::new(KEY, Some(KEY2)).unwrap();
    }
    s.run_for(Duration::from_secs(1));
    s.check_false_deaths = true;
    s.run_for(Duration::from_secs(10));
    assert_eq!(s.false_deaths, 0);
    assert!(s.drops.is_empty(), "{:?}", s.drops);
    assert!(s.received > 500);
}
