//! Failure detection of the membership protocol on a simulated network
//! (support/membership_sim.rs): crashes, leaving, loss, cut links, quorum.

#[path = "support/membership_sim.rs"]
mod sim;

use std::time::Duration;

use ferrolb_core::membership::{Keyring, LocalState, Membership, MembershipConfig};
use sim::{KEY, Sim, addr, name};

const MS: Duration = Duration::from_millis(1);

fn warm(n: usize, seed: u64) -> Sim {
    let mut s = Sim::new(n, MembershipConfig::default(), seed);
    s.run_for(Duration::from_secs(2));
    for o in 0..n {
        for t in 0..n {
            if o != t {
                assert!(s.sees_alive(o, t), "after warm-up {o} must see {t} alive");
            }
        }
    }
    s
}

fn crash_detected_within_timeout(n: usize) {
    let mut s = warm(n, 7);
    let (interval, timeout) = (s.nodes[0].m.interval(), s.nodes[0].m.timeout());
    s.run_for(37 * MS); // crash mid-interval
    s.crash(0);
    s.run_for(timeout + interval * 2);
    let d = s.detection_delays();
    assert_eq!(d.len(), n - 1, "every observer detects the crash: {d:?}");
    for &x in &d {
        assert!(
            x <= timeout + interval,
            "{n} nodes: detected after {x:?}, beyond timeout {timeout:?} + interval {interval:?}"
        );
        assert!(
            x + interval >= timeout,
            "{n} nodes: detected after {x:?}, earlier than timeout - interval"
        );
    }
}

#[test]
fn crash_is_detected_within_timeout_plus_an_interval_with_3_nodes() {
    crash_detected_within_timeout(3);
}

#[test]
fn crash_is_detected_within_timeout_plus_an_interval_with_64_nodes() {
    crash_detected_within_timeout(64);
}

#[test]
fn leaving_is_detected_at_once() {
    let mut s = warm(3, 11);
    s.run_for(50 * MS);
    let now = s.now;
    s.nodes[2].m.leave(now);
    s.wake_now(2);
    s.run_for(2 * MS); // one delivery delay
    for o in 0..2 {
        assert!(
            !s.sees_alive(o, 2),
            "{o} must see node 2 dead as soon as it leaves"
        );
        let p = s.nodes[o]
            .m
            .peers(s.now)
            .find(|p| p.name == name(2))
            .unwrap();
        assert!(p.leaving);
        assert_eq!(
            s.nodes[o].m.known(),
            1,
            "a leaving peer is no longer a known member"
        );
        assert!(
            s.nodes[o].m.unreachable(s.now).is_empty(),
            "left is not unreachable"
        );
    }
    // It keeps sending leaving heartbeats, and relays never revive it.
    s.run_for(Duration::from_secs(3));
    assert!(!s.sees_alive(0, 2) && !s.sees_alive(1, 2));
}

fn no_false_death_under_loss(n: usize) {
    let mut s = warm(n, 0x5eed + n as u64);
    s.loss = 0.10;
    s.check_false_deaths = true;
    s.run_for(Duration::from_secs(600));
    assert!(s.sent > 0);
    let lost = s.sent - s.received;
    assert!(
        lost as f64 > 0.08 * s.sent as f64,
        "the loss must really happen: {lost} of {}",
        s.sent
    );
    assert_eq!(s.false_deaths, 0, "{n} nodes, 10% loss, 10 minutes");
}

#[test]
fn ten_percent_loss_for_ten_minutes_kills_nobody_with_3_nodes() {
    no_false_death_under_loss(3);
}

#[test]
fn ten_percent_loss_for_ten_minutes_kills_nobody_with_5_nodes() {
    no_false_death_under_loss(5);
}

#[test]
fn one_way_loss_kills_nobody() {
    let mut s = warm(3, 3);
    s.cut.insert((0, 1)); // 1 never hears 0 directly; 2 relays
    s.check_false_deaths = true;
    s.run_for(Duration::from_secs(30));
    assert_eq!(s.false_deaths, 0);
}

#[test]
fn a_relay_keeps_a_peer_alive_whose_direct_link_is_dead_and_only_a_relay() {
    let mut s = warm(3, 5);
    s.cut_between(0, 2);
    s.check_false_deaths = true;
    s.run_for(Duration::from_secs(10));
    assert_eq!(s.false_deaths, 0, "node 1 relays 0 and 2 to each other");
    // Without the relay, the dead link shows.
    s.check_false_deaths = false;
    s.crash(1);
    s.run_for(Duration::from_secs(1));
    assert!(!s.sees_alive(0, 2) && !s.sees_alive(2, 0));
}

#[test]
fn isolation_of_one_node_of_three_loses_its_quorum_only() {
    let mut s = warm(3, 9);
    s.isolate(0);
    s.run_for(Duration::from_secs(1));
    assert!(!s.nodes[0].m.has_quorum(s.now), "the isolated node");
    assert!(s.nodes[1].m.has_quorum(s.now) && s.nodes[2].m.has_quorum(s.now));
    assert_eq!(s.nodes[1].m.unreachable(s.now), vec![name(0)]);
    // The majority's heartbeats to node 0 are cut, so it cannot read the claim;
    // node 2 hears node 1 claim 0 unreachable, and nobody claims 2.
    let p = s.nodes[2]
        .m
        .peers(s.now)
        .find(|p| p.name == name(1))
        .unwrap();
    assert!(!p.claims_me_unreachable);
}

#[test]
fn the_survivor_of_two_crashes_out_of_three_loses_its_quorum() {
    let mut s = warm(3, 13);
    s.crash(1);
    s.crash(2);
    s.run_for(Duration::from_secs(1));
    assert!(!s.nodes[0].m.has_quorum(s.now));
    assert_eq!(s.nodes[0].m.known(), 2);
    let mut u = s.nodes[0].m.unreachable(s.now);
    u.sort();
    assert_eq!(u, vec![name(1), name(2)]);
}

#[test]
fn unreachable_claims_reach_the_node_they_name() {
    let mut s = warm(3, 17);
    s.cut.insert((0, 1)); // 1 no longer hears 0 directly...
    s.cut.insert((0, 2)); // ...nor does 2, but 0 still hears both
    s.run_for(Duration::from_secs(1));
    for o in 1..3 {
        let p = s.nodes[0]
            .m
            .peers(s.now)
            .find(|p| p.name == name(o))
            .unwrap();
        assert!(
            p.alive && p.claims_me_unreachable,
            "node {o} claims 0 unreachable"
        );
    }
    assert!(s.nodes[0].m.has_quorum(s.now), "0 still hears everybody");
}

#[test]
fn a_local_change_is_sent_to_every_peer_at_once() {
    let keys = Keyring::new(KEY, None).unwrap();
    let t0 = std::time::Instant::now();
    let mut a = Membership::new("a", 1, MembershipConfig::default());
    let mut b = Membership::new("b", 1, MembershipConfig::default());
    a.set_peers([("b".to_string(), addr(1))]);
    b.set_peers([("a".to_string(), addr(0))]);
    let mut out = Vec::new();
    let next = a.poll(&keys, t0, &mut out);
    assert_eq!(out.len(), 1, "a node announces itself at its first poll");
    assert!(
        b.receive(addr(0), &out[0].datagram, &keys, t0)
            .unwrap()
            .changed
    );
    let mid = t0 + 10 * MS;
    assert!(next > mid);
    out.clear();
    assert_eq!(
        a.poll(&keys, mid, &mut out),
        next,
        "nothing due mid-interval"
    );
    assert!(out.is_empty());
    let view = LocalState {
        has_view: true,
        api_age: Some(Duration::ZERO),
        link_ok: true,
        leaving: false,
    };
    assert!(a.set_local(view, mid));
    assert!(!a.set_local(view, mid), "the same state again is no change");
    a.poll(&keys, mid, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, addr(1));
    let r = b
        .receive(addr(0), &out[0].datagram, &keys, mid + MS)
        .unwrap();
    assert!(r.changed);
    // The reported age grows by the time since the report.
    let p = b.peers(mid + 3 * MS).next().unwrap();
    assert!(p.has_view && p.link_ok && p.alive);
    assert_eq!(p.api_age, Some(2 * MS));
    // API freshness crossing api_stale_after is a change; aging within it is not.
    let later = mid + Duration::from_secs(1);
    assert!(!a.set_local(
        LocalState {
            api_age: Some(Duration::from_secs(1)),
            ..view
        },
        later
    ));
    assert!(a.set_local(
        LocalState {
            api_age: Some(Duration::from_secs(6)),
            ..view
        },
        later
    ));
}

#[test]
fn an_authenticated_sender_missing_from_the_address_book_is_accepted_and_answered() {
    let keys = Keyring::new(KEY, None).unwrap();
    let t0 = std::time::Instant::now();
    let mut a = Membership::new("a", 1, MembershipConfig::default());
    let mut b = Membership::new("b", 1, MembershipConfig::default());
    b.set_peers([("a".to_string(), addr(0))]);
    let mut out = Vec::new();
    b.poll(&keys, t0, &mut out);
    let src = addr(7); // b's real source address, unknown to a
    assert!(a.receive(src, &out[0].datagram, &keys, t0).unwrap().changed);
    assert_eq!(a.known(), 1);
    out.clear();
    a.poll(&keys, t0, &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, src, "answered at its source address");
    // Listing it in the address book keeps its replay state: the same datagram is old.
    a.set_peers([("b".to_string(), addr(1))]);
    assert!(a.peers(t0).next().unwrap().alive);
}

#[test]
fn a_new_incarnation_replaces_the_old_one() {
    let keys = Keyring::new(KEY, None).unwrap();
    let t0 = std::time::Instant::now();
    let mut a = Membership::new("a", 1, MembershipConfig::default());
    a.set_peers([("b".to_string(), addr(1))]);
    let mut old = Membership::new("b", 100, MembershipConfig::default());
    old.set_peers([("a".to_string(), addr(0))]);
    old.leave(t0);
    let mut out = Vec::new();
    old.poll(&keys, t0, &mut out);
    assert_eq!(out.len(), 3, "three leaving rounds at once");
    for o in &out {
        let _ = a.receive(addr(1), &o.datagram, &keys, t0);
    }
    assert!(!a.peers(t0).next().unwrap().alive);
    let mut new = Membership::new("b", 200, MembershipConfig::default());
    new.set_peers([("a".to_string(), addr(0))]);
    out.clear();
    new.poll(&keys, t0 + MS, &mut out);
    assert!(
        a.receive(addr(1), &out[0].datagram, &keys, t0 + MS)
            .unwrap()
            .changed
    );
    let p = a.peers(t0 + MS).next().unwrap();
    assert!(p.alive && !p.leaving);
}

#[test]
fn interval_and_timeout_grow_with_the_cluster() {
    let cases = [
        (3, 100, 400),
        (50, 100, 400),
        (64, 126, 400),
        (500, 998, 2994),
    ];
    for (n, interval_ms, timeout_ms) in cases {
        let mut m = Membership::new(&name(0), 1, MembershipConfig::default());
        m.set_peers((1..n).map(|j| (name(j), addr(j))));
        assert_eq!(
            m.interval(),
            Duration::from_millis(interval_ms),
            "{n} nodes"
        );
        assert_eq!(m.timeout(), Duration::from_millis(timeout_ms), "{n} nodes");
        // Within budget: sent + received per second by a node.
        let pps = 2.0 * (n - 1) as f64 / m.interval().as_secs_f64();
        assert!(pps <= 1000.0 + 1e-6, "{n} nodes: {pps} packets/s");
    }
}

fn member(me: &str, peers: &[&str]) -> Membership {
    let mut m = Membership::new(me, 1, MembershipConfig::default());
    m.set_peers(
        peers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.to_string(), addr(i + 1))),
    );
    m
}

fn first_datagram(m: &mut Membership, keys: &Keyring, t: std::time::Instant) -> Vec<u8> {
    let mut out = Vec::new();
    m.poll(keys, t, &mut out);
    out.into_iter().next().expect("a datagram").datagram
}

#[test]
fn a_relay_that_missed_the_leaving_does_not_revive_the_leaver() {
    let keys = Keyring::new(KEY, None).unwrap();
    let t = std::time::Instant::now();
    let mut a = member("a", &["b", "c"]);
    let mut b = member("b", &["a", "c"]);
    let mut c = member("c", &["a", "b"]);
    let hello = first_datagram(&mut c, &keys, t);
    b.receive(addr(2), &hello, &keys, t).unwrap();
    a.receive(addr(2), &hello, &keys, t).unwrap();
    c.leave(t + MS);
    let bye = first_datagram(&mut c, &keys, t + MS);
    a.receive(addr(2), &bye, &keys, t + 2 * MS).unwrap();
    // b has not heard the leaving yet and relays c as heard 3 ms ago.
    let relay = first_datagram(&mut b, &keys, t + 3 * MS);
    a.receive(addr(1), &relay, &keys, t + 4 * MS).unwrap();
    let pc = a.peers(t + 4 * MS).find(|p| p.name == "c").unwrap();
    assert!(!pc.alive && pc.leaving);
    assert!(a.peers(t + 4 * MS).find(|p| p.name == "b").unwrap().alive);
}

#[test]
fn beyond_128_heard_peers_the_heard_list_rotates() {
    use ferrolb_core::membership::name_hash;
    use ferrolb_core::membership::wire::Heartbeat;
    let keys = Keyring::new(KEY, None).unwrap();
    let t = std::time::Instant::now();
    let names: Vec<String> = (1..=200).map(name).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut hub = member("hub", &refs);
    for n in &names {
        let mut m = member(n, &["hub"]);
        let d = first_datagram(&mut m, &keys, t);
        hub.receive(addr(0), &d, &keys, t).unwrap();
    }
    let mut covered = std::collections::HashSet::new();
    for round in 0..2 {
        // A local change asks for an immediate round.
        let view = LocalState {
            has_view: round % 2 == 1,
            ..LocalState::default()
        };
        assert!(hub.set_local(view, t) || round == 0);
        let mut out = Vec::new();
        hub.poll(&keys, t + MS * round, &mut out);
        let hb = Heartbeat::parse(&out[0].datagram).unwrap();
        assert_eq!(hb.heard.len(), 128);
        covered.extend(hb.heard.iter().map(|(h, _)| h));
    }
    let all: std::collections::HashSet<u64> = names.iter().map(|n| name_hash(n)).collect();
    assert_eq!(covered, all, "two rounds relay all 200 peers");
}

#[test]
fn an_unlisted_live_sender_survives_an_address_book_update() {
    let keys = Keyring::new(KEY, None).unwrap();
    let t = std::time::Instant::now();
    let mut a = member("a", &["c"]);
    let mut b = member("b", &["a"]);
    let d = first_datagram(&mut b, &keys, t);
    a.receive(addr(9), &d, &keys, t).unwrap();
    a.set_peers([("c".to_string(), addr(2))]);
    assert_eq!(a.known(), 1);
    assert_eq!(a.interval(), MembershipConfig::default().interval_for(2));
    let mut out = Vec::new();
    a.poll(&keys, t + MS, &mut out);
    assert!(
        out.iter().any(|o| o.to == addr(9)),
        "still answered: {out:?}"
    );
    // Once dead, an unlisted sender is forgotten at the next update, but its replay
    // state is kept: its old datagram cannot bring it back.
    let late = t + Duration::from_secs(5);
    a.poll(&keys, late, &mut Vec::new());
    a.set_peers([("c".to_string(), addr(2))]);
    assert_eq!(a.peers(late).count(), 1);
    assert_eq!(
        a.receive(addr(9), &d, &keys, late),
        Err(ferrolb_core::membership::DropReason::Replayed)
    );
}

#[test]
fn absurd_periods_are_bounded_instead_of_overflowing_the_clock() {
    let config = MembershipConfig {
        heartbeat_interval: Duration::MAX,
        peer_timeout: Duration::MAX,
        packet_budget: 0,
        ..MembershipConfig::default()
    };
    let keys = Keyring::new(KEY, None).unwrap();
    let t = std::time::Instant::now();
    let mut m = Membership::new("a", 1, config);
    m.set_peers((1..500).map(|j| (name(j), addr(j))));
    assert_eq!(m.interval(), ferrolb_core::membership::detector::MAX_PERIOD);
    let mut out = Vec::new();
    let next = m.poll(&keys, t, &mut out);
    assert!(next > t && out.len() == 499);
    assert!(m.has_quorum(t));
}

#[test]
fn nodes_started_together_send_at_different_phases() {
    let keys = Keyring::new(KEY, None).unwrap();
    let t = std::time::Instant::now();
    let mut phases = std::collections::HashSet::new();
    for i in 0..10 {
        let mut m = Membership::new(&name(i), 1, MembershipConfig::default());
        m.set_peers([(name(99), addr(99))]);
        let first = m.poll(&keys, t, &mut Vec::new());
        assert!(first > t && first <= t + m.interval());
        phases.insert(first);
    }
    assert_eq!(phases.len(), 10, "each node's phase comes from its name");
}

#[test]
fn beyond_64_dead_peers_the_unreachable_list_rotates() {
    use ferrolb_core::membership::name_hash;
    use ferrolb_core::membership::wire::Heartbeat;
    let keys = Keyring::new(KEY, None).unwrap();
    let t = std::time::Instant::now();
    let names: Vec<String> = (1..=100).map(name).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut hub = member("hub", &refs);
    for n in &names {
        let mut m = member(n, &["hub"]);
        let d = first_datagram(&mut m, &keys, t);
        hub.receive(addr(0), &d, &keys, t).unwrap();
    }
    let late = t + Duration::from_secs(2);
    assert_eq!(hub.unreachable(late).len(), 100);
    let mut covered = std::collections::HashSet::new();
    for round in 0..2 {
        let view = LocalState {
            link_ok: round % 2 == 1,
            ..LocalState::default()
        };
        hub.set_local(view, late);
        let mut out = Vec::new();
        hub.poll(&keys, late, &mut out);
        let hb = Heartbeat::parse(&out[0].datagram).unwrap();
        assert_eq!(hb.unreachable.len(), 64);
        assert!(hb.heard.is_empty(), "dead peers are not relayed");
        covered.extend(hb.unreachable.iter());
    }
    let all: std::collections::HashSet<u64> = names.iter().map(|n| name_hash(n)).collect();
    assert_eq!(covered, all, "two rounds name all 100 dead peers");
}
