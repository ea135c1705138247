//! The real `ferrolb-controller` binary against the embedded API server: it
//! survives losing its leader Lease, and it keeps the membership Secret.

mod common;

use std::time::{Duration, Instant};

use common::forwarder::Forwarder;
use common::*;
use ferrolb_testkit::wait_for;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const POOL: &str = "pools:\n  - name: lan\n    addresses: [\"192.0.2.10-192.0.2.19\"]\n";
/// The lease duration `ControllerProc` runs with.
const LEASE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_api_for_longer_than_the_lease_steps_down_and_leads_again_without_restart() {
    let lab = Lab::start().await;
    set_config(&lab.client, POOL).await;
    let fwd = Forwarder::start(lab.server.local_addr()).await;
    let mut c = ControllerProc::start(&lab.kubeconfig_via(fwd.addr), "c1");
    wait_for("c1 leads", Duration::from_secs(10), || async {
        (c.metric("ferrolb_leader").await? == 1.0).then_some(())
    })
    .await;
    // One after the other: reconciles run concurrently, so the order is the test's.
    create_service(&lab.client, mk_service("a")).await;
    assert_eq!(wait_ips(&lab.client, "a", 1).await, ["192.0.2.10"]);
    create_service(&lab.client, mk_service("b")).await;
    assert_eq!(wait_ips(&lab.client, "b", 1).await, ["192.0.2.11"]);
    assert_eq!(c.metric("ferrolb_leader_stepdowns_total").await, Some(0.0));

    // The API goes out of reach (requests hang): the leader steps down within
    // the lease duration of its last renewal, and does not exit.
    let cut_at = Instant::now();
    fwd.cut();
    wait_for("step-down", LEASE + Duration::from_secs(3), || async {
        (c.metric("ferrolb_leader_stepdowns_total").await? == 1.0).then_some(())
    })
    .await;
    eprintln!("stepped down {:?} after the cut", cut_at.elapsed());
    assert_eq!(c.metric("ferrolb_leader").await, Some(0.0));
    // While out of reach: a Service "pending" is created, then someone else (as a
    // new leader would) gives .12 to a younger Service "other". Neither is in the
    // controller's cache.
    create_service(&lab.client, mk_service("pending")).await;
    create_service(&lab.client, mk_service("other")).await;
    let taken =
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.12", "ipMode": "VIP"}]}}});
    Api::<Service>::namespaced(lab.client.clone(), "default")
        .patch_status("other", &PatchParams::default(), &Patch::Merge(&taken))
        .await
        .unwrap();
    let until = cut_at + 3 * LEASE;
    tokio::time::sleep(until.saturating_duration_since(Instant::now())).await;
    assert!(c.running(), "the controller exited after losing the API");
    let (code, _) = c.http_get("/readyz").await.expect("/readyz answers");
    assert_eq!(code, 200, "a stepped-down replica stays a ready standby");

    // The API is back for new requests, while the watches still hang on their
    // swallowed connections: the cache is stale. It leads again (same process)
    // and rebuilds from a fresh list, which knows that "other" holds .12; a
    // rebuild from the cache would not, and would give .12 to "pending", first in
    // the watch once it resumes.
    fwd.restore_keeping_held();
    wait_for("c1 leads again", Duration::from_secs(10), || async {
        (c.metric("ferrolb_leader").await? == 1.0).then_some(())
    })
    .await;
    wait_for("rebuilt", Duration::from_secs(10), || async {
        c.http_get("/readyz").await.filter(|r| r.0 == 200)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    fwd.release_held();
    assert_eq!(wait_ips(&lab.client, "pending", 1).await, ["192.0.2.13"]);
    create_service(&lab.client, mk_service("new")).await;
    assert_eq!(wait_ips(&lab.client, "new", 1).await, ["192.0.2.14"]);
    assert_eq!(
        ingress_ips(&get_service(&lab.client, "a").await),
        ["192.0.2.10"]
    );
    assert_eq!(
        ingress_ips(&get_service(&lab.client, "b").await),
        ["192.0.2.11"]
    );
    assert_eq!(
        ingress_ips(&get_service(&lab.client, "other").await),
        ["192.0.2.12"]
    );
    assert!(c.running());
    assert_eq!(c.metric("ferrolb_leader_stepdowns_total").await, Some(1.0));
}

const SECRET: &str = "ferrolb-membership";

async fn get_secret(lab: &Lab) -> Option<Secret> {
    Api::<Secret>::namespaced(lab.client.clone(), NS)
        .get_opt(SECRET)
        .await
        .unwrap()
}

fn primary(s: &Secret) -> Vec<u8> {
    s.data.as_ref().unwrap()["primary"].0.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_membership_secret_is_left_alone_when_present_and_created_when_missing() {
    let lab = Lab::start().await;
    set_config(&lab.client, POOL).await;
    let api = Api::<Secret>::namespaced(lab.client.clone(), NS);
    // An operator's Secret, there before the controller starts.
    let theirs = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(SECRET.into()),
            ..Default::default()
        },
        data: Some(
            [
                (
                    "primary".to_owned(),
                    ByteString(b"operator-key-0123456".to_vec()),
                ),
                (
                    "secondary".to_owned(),
                    ByteString(b"operator-old-key-789".to_vec()),
                ),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let created = api.create(&PostParams::default(), &theirs).await.unwrap();
    let c = ControllerProc::start_with(&lab.kubeconfig, "c1", &["--resync-period", "300ms"]);
    wait_for("c1 leads", Duration::from_secs(10), || async {
        (c.metric("ferrolb_leader").await? == 1.0).then_some(())
    })
    .await;
    // Several check periods (300 ms) while leading: untouched.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let now = get_secret(&lab).await.expect("secret still there");
    assert_eq!(
        now.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(primary(&now), b"operator-key-0123456");

    // Deleted: the leader creates a new one, 32 random bytes, labelled as its own.
    api.delete(SECRET, &DeleteParams::default()).await.unwrap();
    let made = wait_for("secret re-created", Duration::from_secs(10), || async {
        get_secret(&lab).await
    })
    .await;
    let key = primary(&made);
    assert_eq!(key.len(), 32);
    assert_ne!(key, vec![0u8; 32]);
    assert_eq!(
        made.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
        "ferrolb-controller"
    );
    assert!(made.data.as_ref().unwrap().get("secondary").is_none());
    // And it stays as created: the next checks do not rewrite the key.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let later = get_secret(&lab).await.unwrap();
    assert_eq!(
        later.metadata.resource_version,
        made.metadata.resource_version
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_install_gets_a_membership_secret_at_start() {
    let lab = Lab::start().await;
    assert!(get_secret(&lab).await.is_none());
    // No pool ConfigMap either: the Secret does not wait for a configuration.
    let _c = ControllerProc::start(&lab.kubeconfig, "c1");
    let s = wait_for("secret created", Duration::from_secs(10), || async {
        get_secret(&lab).await
    })
    .await;
    assert_eq!(primary(&s).len(), 32);
}

/// Holds the controller's Lease as "intruder", renewing it every 300 ms, until dropped.
struct Intruder(tokio::task::JoinHandle<()>);

impl Intruder {
    async fn take(client: kube::Client) -> Self {
        use k8s_openapi::api::coordination::v1::Lease;
        let api = Api::<Lease>::namespaced(client, NS);
        async fn grab(api: &Api<Lease>) -> bool {
            let Ok(mut l) = api.get("ferrolb-controller").await else {
                return false;
            };
            let spec = l.spec.get_or_insert_with(Default::default);
            spec.holder_identity = Some("intruder".into());
            spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                k8s_openapi::jiff::Timestamp::now(),
            ));
            api.replace("ferrolb-controller", &PostParams::default(), &l)
                .await
                .is_ok()
        }
        wait_for(
            "the intruder takes the Lease",
            Duration::from_secs(5),
            || async { grab(&api).await.then_some(()) },
        )
        .await;
        Intruder(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                grab(&api).await;
            }
        }))
    }
}

impl Drop for Intruder {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_sees_another_holder_writes_nothing_until_it_leads_again() {
    let lab = Lab::start().await;
    set_config(&lab.client, POOL).await;
    let mut c = ControllerProc::start(&lab.kubeconfig, "c1");
    wait_for("c1 leads", Duration::from_secs(10), || async {
        (c.metric("ferrolb_leader").await? == 1.0).then_some(())
    })
    .await;
    create_service(&lab.client, mk_service("a")).await;
    assert_eq!(wait_ips(&lab.client, "a", 1).await, ["192.0.2.10"]);

    let intruder = Intruder::take(lab.client.clone()).await;
    wait_for("step-down", Duration::from_secs(5), || async {
        (c.metric("ferrolb_leader_stepdowns_total").await? == 1.0).then_some(())
    })
    .await;
    assert_eq!(c.metric("ferrolb_leader").await, Some(0.0));
    // The API is reachable, but a former leader writes no status and no Event.
    create_service(&lab.client, mk_service("during")).await;
    tokio::time::sleep(2 * LEASE).await;
    let during = get_service(&lab.client, "during").await;
    assert!(ingress_ips(&during).is_empty() && condition(&during).is_none());
    assert!(
        events_for(&lab.client, "default", "during")
            .await
            .is_empty()
    );
    assert!(c.running());

    // The intruder stops renewing: one lease duration later c1 takes over, rebuilds
    // from a fresh list, and allocates without moving "a".
    drop(intruder);
    assert_eq!(wait_ips(&lab.client, "during", 1).await, ["192.0.2.11"]);
    assert_eq!(
        ingress_ips(&get_service(&lab.client, "a").await),
        ["192.0.2.10"]
    );
    assert_eq!(c.metric("ferrolb_leader").await, Some(1.0));
    assert!(c.running());
}
