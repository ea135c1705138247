//! IPv6 Neighbor Discovery against the real kernel. Run as root.

mod netns_lab;

use std::time::Duration;

use ferrolb_testkit::poll_blocking;
use netns_lab::{CLIENT_IF, Lab, NODE_MAC, lab_config, require};

#[test]
fn ns_to_solicited_node_group_gets_na_and_client_learns_node_mac() {
    let lab = Lab::new();
    let a = lab.announcer(lab_config());
    a.announce(&["2001:db8::10", "192.0.2.10"]);
    // The kernel's first NS for a new neighbour goes to ff02::1:ff00:10.
    lab.client_resolve("2001:db8::10");
    let (mac, state) = poll_blocking(Duration::from_secs(3), || {
        lab.client_neigh("2001:db8::10")
            .filter(|(m, _)| !m.is_empty())
    })
    .expect("client resolved 2001:db8::10");
    assert_eq!(mac, NODE_MAC);
    assert!(
        ["REACHABLE", "STALE", "DELAY", "PROBE"].contains(&state.as_str()),
        "{state}"
    );
    let m = a.announcer.packet_counters().snapshot();
    assert!(m.ndp_solicitations_seen >= 1, "{m:?}");
    assert!(m.ndp_advertisements_sent >= 1, "{m:?}");
}

#[test]
fn solicited_node_group_is_joined_while_announced_and_left_after() {
    let lab = Lab::new();
    let a = lab.announcer(lab_config());
    let group = "33:33:ff:00:00:33";
    assert!(!lab.node_maddrs().contains(group));
    a.announce(&["2001:db8::33"]);
    assert!(
        poll_blocking(Duration::from_secs(2), || lab
            .node_maddrs()
            .contains(group)
            .then_some(()))
        .is_some(),
        "{}",
        lab.node_maddrs()
    );
    a.announce(&[]);
    assert!(
        poll_blocking(Duration::from_secs(2), || (!lab
            .node_maddrs()
            .contains(group))
        .then_some(()))
        .is_some(),
        "{}",
        lab.node_maddrs()
    );
}

#[test]
fn ndisc6_gets_na_with_node_target_link_layer_address() {
    require("ndisc6", "ndisc6");
    let lab = Lab::new();
    let a = lab.announcer(lab_config());
    a.announce(&["2001:db8::11"]);
    let o = lab.in_client(&[
        "ndisc6",
        "-1",
        "-r",
        "3",
        "-w",
        "1000",
        "2001:db8::11",
        CLIENT_IF,
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_lowercase();
    assert!(o.status.success(), "ndisc6 failed: {out}");
    assert!(out.contains(NODE_MAC), "{out}");
}

#[test]
fn ipv6_not_announced_gets_no_na() {
    let lab = Lab::new();
    let a = lab.announcer(lab_config());
    a.announce(&["2001:db8::10"]);
    lab.client_resolve("2001:db8::12");
    let seen = poll_blocking(Duration::from_secs(3), || {
        (a.announcer
            .packet_counters()
            .snapshot()
            .ndp_solicitations_seen
            >= 1)
            .then_some(())
    });
    assert!(seen.is_some(), "NS never reached the announcer");
    std::thread::sleep(Duration::from_millis(300));
    if let Some((mac, state)) = lab.client_neigh("2001:db8::12") {
        assert!(mac.is_empty(), "resolved to {mac}");
        assert!(
            ["INCOMPLETE", "FAILED"].contains(&state.as_str()),
            "{state}"
        );
    }
    assert_eq!(
        a.announcer
            .packet_counters()
            .snapshot()
            .ndp_advertisements_sent,
        0
    );
}

#[test]
fn unsolicited_na_overrides_clients_stale_entry() {
    let lab = Lab::new();
    let a = lab.announcer(lab_config());
    lab.client_ip(&[
        "-6",
        "neigh",
        "replace",
        "2001:db8::20",
        "lladdr",
        "02:00:00:00:00:99",
        "dev",
        CLIENT_IF,
        "nud",
        "stale",
    ]);
    a.announce(&["2001:db8::20"]);
    let got = poll_blocking(Duration::from_secs(2), || {
        lab.client_neigh("2001:db8::20")
            .filter(|(m, _)| m == NODE_MAC)
    });
    assert!(got.is_some(), "{:?}", lab.client_neigh("2001:db8::20"));
    assert_eq!(
        a.announcer
            .packet_counters()
            .snapshot()
            .ndp_advertisements_sent,
        0
    );
}
