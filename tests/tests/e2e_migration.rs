//! End to end: a running set of Services switches from a "previous tool" to ferrolb
//! in the lab (issue 13), in both orders of `ferrolb_lab::migrate`. The lab plays the
//! previous tool (it writes the Services' status and one node's kernel answers ARP/NDP
//! for the addresses), the real `ferrolb-controller convert` converts its MetalLB
//! configuration, then the unchanged ferrolb binaries take over while a client keeps
//! requesting every address. Needs root, iproute2 and util-linux (`setpriv`), and the
//! workspace's binaries (`cargo build --workspace`, or `cargo test --workspace`).
//!
//! Asserted: no address changes, every Service gets `IPAdopted`, every address ends up
//! answered by a node whose speaker announces it (the previous speaker's addresses are
//! gone), and every client interruption ends. Timings are printed, not asserted
//! tightly: they go to BENCHMARKS.md (`lab bench-migrate`).

use std::net::IpAddr;
use std::time::Duration;

use ferrolb_lab::migrate::{self, Options, Order, Report};
use ferrolb_lab::{Lab, LabOptions};

/// A bound on any interruption: far above what the lab measures (BENCHMARKS.md), low
/// enough to catch an address that is never answered again.
const BOUND: Duration = Duration::from_secs(20);

async fn switch(order: Order) -> Report {
    let lab = Lab::start(LabOptions {
        controller: false,
        speakers: false,
        example_services: false,
        ..LabOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the lab does not start: {e}"));
    let opts = Options {
        services: 4,
        order,
        ..Options::default()
    };
    let report = migrate::run(&lab, &opts).await;
    // What the client sees at the end, before the lab goes.
    let served = match &report {
        Ok(r) => {
            let mut served = Vec::new();
            for s in &r.services {
                served.push((s.ip, lab.curl(s.ip, Duration::from_secs(1)).await));
            }
            served
        }
        Err(_) => Vec::new(),
    };
    let previous = migrate::previous_speaker_ips(&lab, &opts.previous_node).await;
    lab.shutdown().await;
    let report = report.unwrap_or_else(|e| panic!("{}: {e}", order.name()));
    for (ip, answer) in served {
        let node = answer.unwrap_or_else(|e| panic!("{ip} is not served at the end: {e}"));
        assert!(node.starts_with('n'), "{ip} answered by {node}");
    }
    assert_eq!(
        previous.expect("reading the previous speaker's addresses"),
        Vec::<IpAddr>::new(),
        "the previous speaker stopped"
    );
    report
}

fn check(report: &Report) {
    let order = report.order.name();
    let families: Vec<bool> = report.services.iter().map(|s| s.ip.is_ipv4()).collect();
    assert!(
        families.contains(&true) && families.contains(&false),
        "IPv4 and IPv6"
    );
    for step in &report.steps {
        println!(
            "{order}: {} took {:.1} ms",
            step.step,
            step.took.as_secs_f64() * 1000.0
        );
        assert_eq!(
            step.addresses_changed,
            Vec::<String>::new(),
            "{order}: no address changes at step {}",
            step.step
        );
        for ip in &step.ips {
            println!(
                "  {} {}: interruption {:.1} ms ({} of {} requests failed), unanswered {:.1} ms, served by {:?}",
                ip.service,
                ip.ip,
                ip.interruption.as_secs_f64() * 1000.0,
                ip.failed,
                ip.requests,
                ip.unanswered.as_secs_f64() * 1000.0,
                ip.served_by
            );
            assert!(
                ip.recovered && ip.interruption < BOUND,
                "{order}, {}: the client's interruption of {} ends within {BOUND:?}: {ip:?}",
                step.step,
                ip.ip
            );
            assert!(
                ip.unanswered < BOUND,
                "{order}, {}: {} unanswered for {:?}",
                step.step,
                ip.ip,
                ip.unanswered
            );
            assert!(
                ip.requests > 0,
                "{order}: the client kept requesting {}",
                ip.ip
            );
        }
    }
    for s in &report.services {
        assert!(
            report.adopted.get(&s.name).copied().unwrap_or(0) >= 1,
            "{order}: {} got IPAdopted: {:?}",
            s.name,
            report.adopted
        );
        let who = &report.announcers[&s.ip];
        assert!(
            who.starts_with('n') && !who.contains(':'),
            "{order}: {} is answered by a node's MAC, not {who}",
            s.ip
        );
        let announced = report
            .announced_by
            .get(&s.name)
            .cloned()
            .unwrap_or_default();
        assert!(
            announced.contains(who),
            "{order}: {}'s answering node {who} is one whose ferrolb speaker announced it: {announced:?}",
            s.ip
        );
    }
    let last = report.steps.last().expect("steps");
    assert_eq!(last.adopted, report.services.len(), "{order}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_switch_to_ferrolb_first_without_an_address_change() {
    check(&switch(Order::FerrolbFirst).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_switch_to_ferrolb_after_the_previous_speaker_stops_without_an_address_change() {
    check(&switch(Order::StopFirst).await);
}
