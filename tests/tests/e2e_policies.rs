//! End to end: per-pool announcement policies (`l2.policies`) with the real binaries
//! in the lab with its second layer-2 segment (`--vlan`: bridge br20, `eth0.20` on every
//! node, a stand-in for VLAN 20). The lab's example configuration puts pool `lab` on
//! eth0 of every node and pool `vlan20` only on `eth0.20` of the nodes labelled
//! `lab.ferrolb.io/vlan20=true` (n1 and n2; n3 is not). Needs root and the workspace's
//! binaries (`cargo test --workspace` builds them). Every wait is bounded.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_lab::bench::wait_stable;
use ferrolb_lab::seed::{SERVICE_NAMESPACE, VLAN_EXAMPLE_SERVICE};
use ferrolb_lab::{Family, Lab, LabOptions, Segment, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use nix::sys::signal::Signal;
use serde_json::json;

/// Bound for anything ferrolb should do in about a second or two.
const SOON: Duration = Duration::from_secs(20);

async fn start() -> Lab {
    Lab::start(LabOptions {
        vlan: true,
        ..LabOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the lab does not start: {e}"))
}

/// Asserts that nobody answers for `ip` on `segment` during `window` (probing all along).
async fn assert_silent(lab: &Lab, segment: Segment, ip: IpAddr, window: Duration) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        let who = lab.announcers_on(segment, ip).await.unwrap();
        assert!(
            who.is_empty(),
            "{ip} must not be answered on {segment:?}, but {who:?} answer"
        );
    }
}

/// The node (without the interface suffix) of an announcer name such as `n1/eth0.20`.
fn node_of(announcer: &str) -> &str {
    announcer.split('/').next().unwrap_or(announcer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_on_eth0_20_is_answered_there_only_and_never_moves_to_an_unlabelled_node() {
    let lab = start().await;
    let (name, _) = VLAN_EXAMPLE_SERVICE;
    let vlan_ips = lab.wait_service_ips(name, 2, SOON).await.unwrap();
    let web = lab.wait_service_ips("web", 1, SOON).await.unwrap()[0];

    // Each address of the VLAN pool: answered on the second segment, by the eth0.20 of
    // a labelled node, and never on the first segment.
    for ip in &vlan_ips {
        assert_eq!(
            lab.segment_of(*ip),
            Segment::Vlan,
            "{ip} is in the vlan20 pool"
        );
        let who = wait_stable(&lab, *ip, Duration::from_secs(1), SOON)
            .await
            .unwrap();
        assert!(
            who == "n1/eth0.20" || who == "n2/eth0.20",
            "{ip} must be answered by eth0.20 of a labelled node, not by {who}"
        );
        assert_silent(&lab, Segment::Main, *ip, Duration::from_millis(500)).await;
    }
    // The lab pool: answered on eth0 (l2.interfaces), never on the second segment.
    let who = wait_stable(&lab, web, Duration::from_secs(1), SOON)
        .await
        .unwrap();
    assert!(["n1", "n2", "n3"].contains(&who.as_str()), "{web}: {who}");
    assert_silent(&lab, Segment::Vlan, web, Duration::from_millis(500)).await;

    // The announcing labelled node dies: the other labelled node takes over, on eth0.20.
    let ip = vlan_ips[0];
    let holder_now = node_of(
        &wait_stable(&lab, ip, Duration::from_secs(1), SOON)
            .await
            .unwrap(),
    )
    .to_string();
    let other = if holder_now == "n1" { "n2" } else { "n1" };
    lab.signal_speaker(&holder_now, Signal::SIGKILL).unwrap();
    lab.wait_speaker_exit(&holder_now, SOON).await.unwrap();
    let next = wait_stable(&lab, ip, Duration::from_secs(1), SOON)
        .await
        .unwrap();
    assert_eq!(
        next,
        format!("{other}/eth0.20"),
        "{ip} moves only to the other labelled node"
    );

    // The last labelled node dies too: n3's speaker runs, but the policy leaves it out,
    // so nobody answers on either segment.
    lab.signal_speaker(other, Signal::SIGKILL).unwrap();
    lab.wait_speaker_exit(other, SOON).await.unwrap();
    assert!(lab.speaker_running("n3"));
    let what = format!("{ip} to be withdrawn once no labelled node is left");
    wait_for(&what, SOON, Duration::from_millis(50), || async {
        lab.announcers_on(Segment::Vlan, ip)
            .await
            .ok()
            .filter(|w| w.is_empty())
    })
    .await
    .unwrap();
    for ip in &vlan_ips {
        assert_silent(&lab, Segment::Vlan, *ip, Duration::from_secs(2)).await;
        assert_silent(&lab, Segment::Main, *ip, Duration::from_millis(300)).await;
    }
    // The lab pool is not affected by the vlan20 policy: n3 answers it now.
    let who = wait_stable(&lab, web, Duration::from_secs(1), SOON)
        .await
        .unwrap();
    assert_eq!(who, "n3");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holders_vlan_link_going_down_moves_its_vlan_addresses_to_the_other_labelled_node() {
    let lab = start().await;
    let (name, _) = VLAN_EXAMPLE_SERVICE;
    let ip = lab.wait_service_ips(name, 2, SOON).await.unwrap()[0];
    let holder = node_of(
        &wait_stable(&lab, ip, Duration::from_secs(1), SOON)
            .await
            .unwrap(),
    )
    .to_string();
    let other = if holder == "n1" { "n2" } else { "n1" };

    lab.set_vlan_link(&holder, false).await.unwrap();
    let next = wait_stable(&lab, ip, Duration::from_secs(1), SOON)
        .await
        .unwrap();
    assert_eq!(next, format!("{other}/eth0.20"));
    // The election knows one link state per node: a node that cannot answer one of its
    // pools gives up all of them (README, "Announcement policies"), so the holder's eth0
    // addresses move too rather than stay with a node that is half cut off.
    let web = lab.wait_service_ips("web", 1, SOON).await.unwrap()[0];
    let who = wait_stable(&lab, web, Duration::from_secs(1), SOON)
        .await
        .unwrap();
    assert_ne!(who, holder, "{web} left the node whose eth0.20 is down");

    // Link back: the node is eligible again and every address is answered once.
    lab.set_vlan_link(&holder, true).await.unwrap();
    let back = wait_stable(&lab, ip, Duration::from_secs(2), SOON)
        .await
        .unwrap();
    assert!(back == "n1/eth0.20" || back == "n2/eth0.20", "{back}");
    lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_no_policy_allows_is_not_announced_and_gets_a_warning_event() {
    let lab = start().await;
    // A third pool, announced only for Services labelled tier=edge.
    let cms: Api<ConfigMap> =
        Api::namespaced(lab.client().clone(), ferrolb_lab::seed::SYSTEM_NAMESPACE);
    // The lab's configuration, plus a pool that one policy announces only for Services
    // labelled tier=edge.
    let config = ferrolb_lab::seed::vlan_pool_config_yaml().replacen(
        "l2:\n",
        "  - name: gated\n    addresses: [\"192.0.2.230-192.0.2.240\"]\n    autoAssign: false\nl2:\n",
        1,
    ) + "    - name: edge-only\n      pools: [gated]\n      serviceSelector: {matchLabels: {tier: edge}}\n";
    ferrolb_config::parse_ferrolb_yaml(&config)
        .unwrap_or_else(|e| panic!("the test's configuration is valid: {e}\n{config}"));
    cms.patch(
        ferrolb_lab::seed::CONFIG_NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"config.yaml": config}})),
    )
    .await
    .unwrap();

    lab.create_service_in("plain", Family::V4, "gated")
        .await
        .unwrap();
    lab.create_service_in("edge", Family::V4, "gated")
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(lab.client().clone(), SERVICE_NAMESPACE);
    services
        .patch(
            "edge",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "edge"}}})),
        )
        .await
        .unwrap();
    let plain = lab.wait_service_ips("plain", 1, SOON).await.unwrap()[0];
    let edge = lab.wait_service_ips("edge", 1, SOON).await.unwrap()[0];
    for ip in [plain, edge] {
        let IpAddr::V4(v4) = ip else { panic!("{ip}") };
        assert!(
            (230..=240).contains(&v4.octets()[3]),
            "{ip} comes from the gated pool"
        );
    }

    // The allowed Service is answered; the other one is not, anywhere.
    wait_stable(&lab, edge, Duration::from_secs(1), SOON)
        .await
        .unwrap();
    assert_silent(&lab, Segment::Main, plain, Duration::from_secs(2)).await;
    assert_silent(&lab, Segment::Vlan, plain, Duration::from_millis(300)).await;

    // And the Service says why, in a Warning Event.
    let events: Api<Event> = Api::namespaced(lab.client().clone(), SERVICE_NAMESPACE);
    let what = "a NotAllowedByL2Policy Warning Event on default/plain";
    let note = wait_for(what, SOON, Duration::from_millis(100), || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find_map(|e| {
            (e.reason.as_deref() == Some("NotAllowedByL2Policy")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("plain")
                && e.type_.as_deref() == Some("Warning"))
            .then(|| e.note.unwrap_or_default())
        })
    })
    .await
    .unwrap();
    assert!(
        note.contains("no l2 policy allows Service default/plain")
            && note.contains("pool gated")
            && note.contains("edge-only"),
        "the Event names the Service, the pool and the policy: {note}"
    );

    // Labelling the Service makes the policy apply: it is announced.
    services
        .patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "edge"}}})),
        )
        .await
        .unwrap();
    wait_stable(&lab, plain, Duration::from_secs(1), SOON)
        .await
        .unwrap();
    lab.shutdown().await;
}
