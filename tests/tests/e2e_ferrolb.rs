//! End to end: the unchanged ferrolb-controller and ferrolb-speaker binaries in the lab
//! (3 nodes, embedded API server), observed from the client namespace as a host on the
//! same layer-2 segment would see them. Needs root and the workspace's binaries
//! (`cargo test --workspace` builds them).
//!
//! Every wait is bounded; failover times are printed and written to
//! `$CARGO_TARGET_TMPDIR/e2e-failover.txt`, and only checked against a generous bound.

use std::io::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_lab::bench::wait_stable;
use ferrolb_lab::probe::distinct_macs;
use ferrolb_lab::{Lab, LabError, LabOptions, wait_for};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use nix::sys::signal::Signal;
use serde_json::json;

/// Bound for anything ferrolb should do in about a second or two.
const SOON: Duration = Duration::from_secs(20);

async fn start() -> Lab {
    Lab::start(LabOptions::default())
        .await
        .unwrap_or_else(|e| panic!("the lab does not start: {e}"))
}

/// Records a measured time for the reader of the test output.
fn record(what: &str, d: Duration) {
    let line = format!("{what}: {:.1} ms", d.as_secs_f64() * 1000.0);
    println!("{line}");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-failover.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// The single external IP of Service `name`, once one node has answered for it for a
/// second. While the speakers start one after another, an IP may first be announced by
/// an early node and then move once to its rendezvous winner; a test that acts on the
/// first answer would race that move.
async fn announced(lab: &Lab, name: &str) -> (IpAddr, String) {
    let ips = lab.wait_service_ips(name, 1, SOON).await.unwrap();
    let who = wait_stable(lab, ips[0], Duration::from_secs(1), SOON)
        .await
        .unwrap();
    (ips[0], who)
}

/// Waits until the client's HTTP requests to `ip` are answered by a node other than
/// `not`; returns that node.
async fn client_reaches_other_than(lab: &Lab, ip: IpAddr, not: &str) -> Result<String, LabError> {
    let what = format!("the client's requests to {ip} to be answered by a node other than {not}");
    wait_for(&what, SOON, Duration::from_millis(10), move || async move {
        lab.curl(ip, Duration::from_millis(200))
            .await
            .ok()
            .filter(|n| n != not)
    })
    .await
}

/// Asserts that the client resolves `ip` to exactly `node`'s MAC and that its
/// traffic reaches `node`.
async fn assert_served_by(lab: &Lab, ip: IpAddr, node: &str) {
    let mac = lab.node(node).unwrap().mac;
    let claims = lab.probe(ip, 3, Duration::from_millis(300)).await.unwrap();
    assert!(
        claims.len() >= 3,
        "{ip}: every who-has is answered: {claims:?}"
    );
    assert_eq!(
        distinct_macs(&claims),
        vec![mac],
        "{ip}: only {node} answers: {claims:?}"
    );
    let answered = wait_for(
        &format!("HTTP to {ip}"),
        SOON,
        Duration::from_millis(50),
        move || async move { lab.curl(ip, Duration::from_millis(500)).await.ok() },
    )
    .await
    .unwrap();
    assert_eq!(
        answered, node,
        "{ip}: the request reaches the node whose MAC answered"
    );
    assert_eq!(
        lab.client_neighbour(ip).await.unwrap(),
        Some(mac),
        "{ip}: the client kernel resolved it to {node}"
    );
}

/// Waits until nobody answers for `ip`, then checks it stays so for a while.
async fn assert_withdrawn(lab: &Lab, ip: IpAddr) -> Duration {
    let t0 = Instant::now();
    wait_for(
        &format!("nobody to answer for {ip}"),
        SOON,
        Duration::from_millis(20),
        move || async move {
            lab.probe(ip, 1, Duration::from_millis(100))
                .await
                .ok()
                .filter(|c| c.is_empty())
                .map(|_| ())
        },
    )
    .await
    .unwrap();
    let took = t0.elapsed();
    let later = lab.probe(ip, 5, Duration::from_millis(500)).await.unwrap();
    assert!(later.is_empty(), "{ip} stays withdrawn: {later:?}");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_ip_is_answered_by_one_node_and_its_traffic_reaches_that_node() {
    let lab = start().await;
    for name in ["web", "web6"] {
        let (ip, who) = announced(&lab, name).await;
        assert_eq!(
            ip.is_ipv6(),
            name == "web6",
            "{name} got an IP of its family: {ip}"
        );
        assert_served_by(&lab, ip, &who).await;
    }
    // The dual-stack Service: both IPs, each answered by one node.
    let ips = lab.wait_service_ips("web-dual", 2, SOON).await.unwrap();
    assert!(
        ips.iter().any(IpAddr::is_ipv4) && ips.iter().any(IpAddr::is_ipv6),
        "{ips:?}"
    );
    for ip in ips {
        let who = wait_stable(&lab, ip, Duration::from_secs(1), SOON)
            .await
            .unwrap();
        assert_served_by(&lab, ip, &who).await;
    }
    // What a user sees with kubectl.
    let table = lab.kubectl(&["get", "svc", "web"]).await.unwrap();
    let web_ip = lab.service_ips("web").await.unwrap()[0];
    assert!(
        table.lines().next().unwrap().contains("EXTERNAL-IP"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("LoadBalancer") && row.contains(&web_ip.to_string()),
        "{table}"
    );
    lab.check_children().unwrap();
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_announcing_speaker_moves_the_ip_and_the_client_recovers() {
    let lab = start().await;
    let (ip, first) = announced(&lab, "web").await;
    assert_served_by(&lab, ip, &first).await;

    // A crash: SIGKILL.
    let t0 = Instant::now();
    lab.signal_speaker(&first, Signal::SIGKILL).unwrap();
    let second = client_reaches_other_than(&lab, ip, &first).await.unwrap();
    let took = t0.elapsed();
    record(
        "SIGKILL of the announcing speaker -> client traffic reaches the new node",
        took,
    );
    assert!(
        took < Duration::from_secs(10),
        "failover after SIGKILL took {took:?}"
    );
    assert_eq!(lab.wait_single_announcer(ip, SOON).await.unwrap(), second);
    assert_served_by(&lab, ip, &second).await;

    // A graceful stop: SIGTERM hands over.
    let t0 = Instant::now();
    lab.signal_speaker(&second, Signal::SIGTERM).unwrap();
    let third = client_reaches_other_than(&lab, ip, &second).await.unwrap();
    let took = t0.elapsed();
    record(
        "SIGTERM of the announcing speaker -> client traffic reaches the new node",
        took,
    );
    assert!(
        took < Duration::from_secs(10),
        "handover after SIGTERM took {took:?}"
    );
    assert_ne!(third, first, "the killed speaker's node cannot announce");
    assert_served_by(&lab, ip, &third).await;
    lab.wait_speaker_exit(&second, SOON).await.unwrap();

    // The speakers come back; every IP is still answered by exactly one node.
    lab.start_speaker(&first).unwrap();
    lab.start_speaker(&second).unwrap();
    let who = wait_stable(&lab, ip, Duration::from_secs(1), SOON)
        .await
        .unwrap();
    assert_served_by(&lab, ip, &who).await;
    lab.check_children().unwrap();
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_service_or_making_it_cluster_ip_withdraws_the_announcement() {
    let lab = start().await;
    let services: Api<Service> = Api::namespaced(lab.client().clone(), "default");
    let (ip4, _) = announced(&lab, "web").await;
    let (ip6, _) = announced(&lab, "web6").await;

    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let took = assert_withdrawn(&lab, ip4).await;
    record("Service deleted -> no ARP reply", took);

    services
        .patch(
            "web6",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await
        .unwrap();
    let took = assert_withdrawn(&lab, ip6).await;
    record("Service changed to ClusterIP -> no NDP reply", took);

    // The other Service is unaffected.
    let dual = lab.wait_service_ips("web-dual", 2, SOON).await.unwrap();
    for ip in dual {
        lab.wait_single_announcer(ip, SOON).await.unwrap();
    }
    lab.check_children().unwrap();
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_api_server_stops_answering_and_another_takes_over() {
    let lab = start().await;
    let (ip, first) = announced(&lab, "web").await;
    let first_mac = lab.node(&first).unwrap().mac;
    lab.cut(&first).await.unwrap();
    let lab_ref = &lab;
    let t0 = Instant::now();
    // The partitioned speaker must fall silent, and a peer must take over.
    let second = wait_for(
        "another node to answer alone",
        SOON,
        Duration::from_millis(20),
        move || async move {
            let claims = lab_ref
                .probe(ip, 1, Duration::from_millis(100))
                .await
                .ok()?;
            let macs = distinct_macs(&claims);
            (macs.len() == 1 && macs[0] != first_mac).then(|| lab_ref.mac_name(macs[0]))
        },
    )
    .await
    .unwrap();
    record(
        "API partition of the announcing node -> another node answers alone",
        t0.elapsed(),
    );
    assert_ne!(second, first);
    let claims = lab.probe(ip, 5, Duration::from_millis(300)).await.unwrap();
    assert!(
        !distinct_macs(&claims).contains(&first_mac),
        "the cut node stays silent: {claims:?}"
    );
    assert!(lab.speaker_running(&first), "the cut speaker keeps running");

    lab.heal(&first).await.unwrap();
    let who = wait_stable(&lab, ip, Duration::from_secs(1), SOON)
        .await
        .unwrap();
    assert_served_by(&lab, ip, &who).await;
    lab.check_children().unwrap();
    lab.shutdown().await;
}
