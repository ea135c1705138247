//! Interface discovery and link state against the real kernel: which interfaces the
//! announcer uses, that it follows them as they come and go, that a link down makes the
//! node ineligible, and the strictARP check. Run as root.

mod netns_lab;

use std::time::Duration;

use ferrolb_speaker::net::AnnouncerConfig;
use ferrolb_testkit::poll_blocking;
use netns_lab::{Lab, NODE_MAC, lab_config};

fn names(a: &netns_lab::NodeAnnouncer) -> Vec<String> {
    let mut v: Vec<String> = a
        .announcer
        .links()
        .borrow()
        .iter()
        .map(|l| l.name.clone())
        .collect();
    v.sort();
    v
}

fn until(limit_ms: u64, mut f: impl FnMut() -> bool) -> bool {
    poll_blocking(Duration::from_millis(limit_ms), || f().then_some(())).is_some()
}

#[test]
fn link_down_or_carrier_loss_makes_node_ineligible_until_it_returns() {
    let lab = Lab::new();
    let a = lab.announcer(lab_config());
    let an = &a.announcer;
    assert!(until(2000, || an.link_ok()), "link not ok at start");

    lab.node_ip(&["link", "set", "eth0", "down"]);
    assert!(until(3000, || !an.link_ok()), "admin down not noticed");
    lab.node_ip(&["link", "set", "eth0", "up"]);
    assert!(until(2000, || an.link_ok()), "admin up not noticed");

    // The peer going down takes the node's carrier away; when it returns, everything
    // announced is announced again (neighbours may have dropped us meanwhile).
    a.announce(&["192.0.2.40"]);
    assert!(
        until(2000, || an.packet_counters().snapshot().gratuitous_sent
            >= 3),
        "{:?}",
        an.packet_counters().snapshot()
    );
    lab.client_ip(&["link", "set", "eth0", "down"]);
    // The kernel publishes carrier changes through its link-watch work, which batches
    // them up to one second after the previous link event (the "up" just above).
    assert!(until(2500, || !an.link_ok()), "carrier loss not noticed");
    lab.client_ip(&["link", "set", "eth0", "up"]);
    assert!(until(2000, || an.link_ok()), "carrier return not noticed");
    assert!(
        until(2000, || an.packet_counters().snapshot().gratuitous_sent
            >= 6),
        "no burst after carrier return: {:?}",
        an.packet_counters().snapshot()
    );

    // The data path survived the flaps.
    a.announce(&["192.0.2.40", "192.0.2.10"]);
    lab.client_resolve("192.0.2.10");
    assert!(
        poll_blocking(Duration::from_secs(3), || lab
            .client_neigh("192.0.2.10")
            .filter(|(m, _)| m == NODE_MAC))
        .is_some()
    );
}

#[test]
fn automatic_choice_skips_virtual_enslaved_and_noarp_and_follows_changes() {
    let lab = Lab::new();
    // Next to the lab's eth0: a container-style veth pair, a NOARP interface, and a
    // bridge with an enslaved port (veth rather than dummy devices: minimal kernels lack
    // the dummy driver).
    lab.node_ip(&[
        "link", "add", "veth1abc", "type", "veth", "peer", "name", "veth2abc",
    ]);
    lab.node_ip(&[
        "link",
        "add",
        "eth7",
        "type",
        "veth",
        "peer",
        "name",
        "vethnoarp",
    ]);
    lab.node_ip(&["link", "set", "eth7", "arp", "off"]);
    lab.node_ip(&["link", "add", "br0", "type", "bridge"]);
    lab.node_ip(&[
        "link", "add", "port0", "type", "veth", "peer", "name", "vethport",
    ]);
    lab.node_ip(&["link", "set", "port0", "master", "br0"]);
    for i in [
        "veth1abc",
        "veth2abc",
        "eth7",
        "vethnoarp",
        "br0",
        "port0",
        "vethport",
    ] {
        lab.node_ip(&["link", "set", i, "up"]);
    }
    let a = lab.announcer(AnnouncerConfig::default());
    assert!(
        until(2000, || names(&a) == ["br0", "eth0"]),
        "{:?}",
        names(&a)
    );

    // A new interface is picked up without restart, and dropped when it goes.
    lab.node_ip(&[
        "link", "add", "eth5", "type", "veth", "peer", "name", "veth5",
    ]);
    lab.node_ip(&["link", "set", "eth5", "up"]);
    assert!(
        until(2000, || names(&a) == ["br0", "eth0", "eth5"]),
        "{:?}",
        names(&a)
    );
    lab.node_ip(&["link", "del", "eth5"]);
    assert!(
        until(2000, || names(&a) == ["br0", "eth0"]),
        "{:?}",
        names(&a)
    );
}

#[test]
fn listed_interface_that_appears_later_is_answered_on() {
    let lab = Lab::new();
    let a = lab.announcer(AnnouncerConfig {
        interfaces: vec!["eth1".into()],
        ..AnnouncerConfig::default()
    });
    assert!(names(&a).is_empty());
    assert!(!a.announcer.link_ok(), "no listed interface yet");
    a.announce(&["198.51.100.10"]);

    let mac1 = "02:00:00:00:01:0b";
    must_create_second_link(&lab, mac1);
    assert!(until(2000, || a.announcer.link_ok()), "{:?}", names(&a));
    let _ = lab.in_client(&["ping", "-4", "-c1", "-W1", "-n", "198.51.100.10"]);
    let got = poll_blocking(Duration::from_secs(3), || {
        let out = lab.client_ip(&["neigh", "show", "198.51.100.10", "dev", "eth1"]);
        out.contains(mac1).then_some(out)
    });
    assert!(got.is_some(), "not answered on the new interface");
}

fn must_create_second_link(lab: &Lab, node_mac: &str) {
    netns_lab::must(&[
        "ip",
        "link",
        "add",
        "eth1",
        "netns",
        &lab.node,
        "address",
        node_mac,
        "type",
        "veth",
        "peer",
        "name",
        "eth1",
        "netns",
        &lab.client,
    ]);
    lab.node_ip(&["link", "set", "eth1", "up"]);
    lab.client_ip(&["link", "set", "eth1", "up"]);
    lab.client_ip(&["addr", "add", "198.51.100.100/24", "dev", "eth1"]);
}

#[test]
fn strict_arp_problem_is_reported_only_with_kube_ipvs0_and_lax_sysctls() {
    let lab = Lab::new();
    let set = |ignore: u8, announce: u8| {
        for dev in ["all", "eth0"] {
            lab.in_node(&[
                "sysctl",
                "-qw",
                &format!("net.ipv4.conf.{dev}.arp_ignore={ignore}"),
                &format!("net.ipv4.conf.{dev}.arp_announce={announce}"),
            ]);
        }
    };
    set(0, 0);
    let a = lab.announcer(lab_config());
    let an = &a.announcer;
    // Lax, but no kube-ipvs0: the Service IPs are not local, nothing to report.
    assert!(an.strict_arp_problems().is_empty());

    // kube-proxy makes it a dummy; any link type will do for the check.
    lab.node_ip(&[
        "link",
        "add",
        "kube-ipvs0",
        "type",
        "veth",
        "peer",
        "name",
        "vethipvs",
    ]);
    assert!(
        until(2000, || !an.strict_arp_problems().is_empty()),
        "kube-ipvs0 with arp_ignore=0 not reported"
    );
    let p = an.strict_arp_problems();
    assert_eq!(p[0].interface, "eth0");
    assert_eq!((p[0].arp_ignore, p[0].arp_announce), (0, 0));

    // kube-proxy's strictARP settings clear it (sysctls raise no netlink event: the
    // re-scan that set_interfaces triggers re-reads them).
    set(1, 2);
    an.set_interfaces(&["eth0".into()]);
    assert!(
        until(2000, || an.strict_arp_problems().is_empty()),
        "{:?}",
        an.strict_arp_problems()
    );
}
