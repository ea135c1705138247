//! ARP against the real kernel: a client namespace resolves Service IPs that the node's
//! announcer answers for (the IPs are *not* assigned in the node namespace, so only the
//! announcer can answer). Run as root.

mod netns_lab;

use std::time::Duration;

use ferrolb_core::wire::GratuitousForm;
use ferrolb_speaker::net::AnnouncerConfig;
use ferrolb_testkit::poll_blocking;
use netns_lab::{CLIENT_IF, Lab, NODE_MAC, lab_config, require};

#[test]
fn arp_request_from_client_gets_reply_with_node_mac() {
    let lab = Lab::new();
    let a = lab.announcer(lab_config());
    a.announce(&["192.0.2.10", "2001:db8::10"]);
    lab.client_resolve("192.0.2.10");
    let (mac, state) = poll_blocking(Duration::from_secs(3), || {
        lab.client_neigh("192.0.2.10")
            .filter(|(m, _)| !m.is_empty())
    })
    .expect("client resolved 192.0.2.10");
    assert_eq!(mac, NODE_MAC);
    assert!(
        ["REACHABLE", "STALE", "DELAY", "PROBE"].contains(&state.as_str()),
        "{state}"
    );
    let m = a.announcer.packet_counters().snapshot();
    assert!(m.arp_requests_seen >= 1, "{m:?}");
    assert!(m.arp_replies_sent >= 1, "{m:?}");
}

#[test]
fn arping_sees_exactly_one_reply_from_the_node_mac() {
    // arping is in the CI package list; the kernel path above does not need it.
    require("arping", "arping");
    let lab = Lab::new();
    let a = lab.announcer(lab_config());
    a.announce(&["192.0.2.10"]);
    let o = lab.in_client(&[
        "arping",
        "-c",
        "1",
        "-w",
        "3",
        "-I",
        CLIENT_IF,
        "192.0.2.10",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_lowercase();
    assert!(o.status.success(), "arping failed: {out}");
    assert!(out.contains(NODE_MAC), "{out}");
    // Debian's `arping` (Habets) says "1 packets received ... (0 extra)", iputils'
    // arping "Received 1 response(s)".
    assert!(
        out.contains("1 packets received") || out.contains("received 1 response"),
        "{out}"
    );
    assert!(!out.contains("(1 extra)"), "{out}");
}

#[test]
fn ip_not_announced_gets_no_reply() {
    let lab = Lab::new();
    let a = lab.announcer(lab_config());
    a.announce(&["192.0.2.10"]);
    lab.client_resolve("192.0.2.11");
    // The kernel retries for ~3 s; the request is seen, never answered.
    let seen = poll_blocking(Duration::from_secs(3), || {
        (a.announcer.packet_counters().snapshot().arp_requests_seen >= 1).then_some(())
    });
    assert!(seen.is_some(), "the request never reached the announcer");
    std::thread::sleep(Duration::from_millis(300));
    let entry = lab.client_neigh("192.0.2.11");
    if let Some((mac, state)) = &entry {
        assert!(mac.is_empty(), "resolved to {mac}");
        assert!(
            ["INCOMPLETE", "FAILED"].contains(&state.as_str()),
            "{state}"
        );
    }
    assert_eq!(a.announcer.packet_counters().snapshot().arp_replies_sent, 0);
}

#[test]
fn ip_removed_from_the_set_is_no_longer_answered() {
    let lab = Lab::new();
    let a = lab.announcer(lab_config());
    a.announce(&["192.0.2.12"]);
    lab.client_resolve("192.0.2.12");
    assert!(
        poll_blocking(Duration::from_secs(3), || lab
            .client_neigh("192.0.2.12")
            .filter(|(m, _)| m == NODE_MAC))
        .is_some()
    );
    let before = a.announcer.packet_counters().snapshot().arp_replies_sent;
    a.announce(&[]);
    lab.client_ip(&["neigh", "flush", "dev", CLIENT_IF]);
    lab.client_resolve("192.0.2.12");
    std::thread::sleep(Duration::from_millis(300));
    let after = a.announcer.packet_counters().snapshot();
    assert!(after.arp_requests_seen >= 2, "{after:?}");
    assert_eq!(after.arp_replies_sent, before, "answered after removal");
    if let Some((mac, _)) = lab.client_neigh("192.0.2.12") {
        assert!(mac.is_empty(), "resolved to {mac} after removal");
    }
}

fn gratuitous_updates_existing_entry(form: GratuitousForm) {
    let lab = Lab::new();
    let a = lab.announcer(AnnouncerConfig {
        garp_form: form,
        ..lab_config()
    });
    // The client holds a stale entry pointing elsewhere (the "previous announcer"),
    // just written, i.e. within its locktime: only a gratuitous ARP may override it.
    lab.client_ip(&[
        "neigh",
        "replace",
        "192.0.2.20",
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        CLIENT_IF,
        "nud",
        "stale",
    ]);
    a.announce(&["192.0.2.20"]);
    let got = poll_blocking(Duration::from_secs(2), || {
        lab.client_neigh("192.0.2.20")
            .filter(|(m, _)| m == NODE_MAC)
    });
    assert!(
        got.is_some(),
        "entry not updated: {:?}",
        lab.client_neigh("192.0.2.20")
    );
    // No request was involved: the update came from the burst.
    let m = a.announcer.packet_counters().snapshot();
    assert_eq!(m.arp_replies_sent, 0);
    assert!(m.gratuitous_sent >= 1);
    // The whole burst (3 by default) goes out.
    let all = poll_blocking(Duration::from_secs(2), || {
        (a.announcer.packet_counters().snapshot().gratuitous_sent >= 3).then_some(())
    });
    assert!(all.is_some());
}

#[test]
fn gratuitous_arp_request_form_updates_client_neighbour_table() {
    gratuitous_updates_existing_entry(GratuitousForm::Request);
}

#[test]
fn gratuitous_arp_reply_form_updates_client_neighbour_table() {
    gratuitous_updates_existing_entry(GratuitousForm::Reply);
}

#[test]
fn gratuitous_arp_creates_entry_when_client_accepts_unsolicited_arp() {
    let lab = Lab::new();
    lab.in_client(&["sysctl", "-qw", "net.ipv4.conf.eth0.arp_accept=1"]);
    let a = lab.announcer(lab_config());
    a.announce(&["192.0.2.21"]);
    let got = poll_blocking(Duration::from_secs(2), || {
        lab.client_neigh("192.0.2.21")
            .filter(|(m, _)| m == NODE_MAC)
    });
    assert!(got.is_some(), "{:?}", lab.client_neigh("192.0.2.21"));
}

#[test]
fn periodic_reannouncement_repeats_and_repairs_caches_when_enabled() {
    let lab = Lab::new();
    let a = lab.announcer(AnnouncerConfig {
        burst_count: 1,
        reannounce_every: Some(Duration::from_millis(300)),
        ..lab_config()
    });
    a.announce(&["192.0.2.30"]);
    // Someone poisons the client's cache after the takeover burst...
    std::thread::sleep(Duration::from_millis(100));
    lab.client_ip(&[
        "neigh",
        "replace",
        "192.0.2.30",
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        CLIENT_IF,
        "nud",
        "stale",
    ]);
    // ...and the next periodic announcement puts it right without any request.
    let got = poll_blocking(Duration::from_secs(2), || {
        lab.client_neigh("192.0.2.30")
            .filter(|(m, _)| m == NODE_MAC)
    });
    assert!(got.is_some(), "{:?}", lab.client_neigh("192.0.2.30"));
    assert!(
        poll_blocking(Duration::from_secs(2), || (a
            .announcer
            .packet_counters()
            .snapshot()
            .gratuitous_sent
            >= 3)
            .then_some(()))
        .is_some()
    );
    assert_eq!(a.announcer.packet_counters().snapshot().arp_replies_sent, 0);
}

#[test]
fn reannouncement_is_off_by_default() {
    let lab = Lab::new();
    let a = lab.announcer(lab_config());
    a.announce(&["192.0.2.31"]);
    std::thread::sleep(Duration::from_millis(1200));
    // Exactly the takeover burst, nothing after it.
    assert_eq!(a.announcer.packet_counters().snapshot().gratuitous_sent, 3);
}
