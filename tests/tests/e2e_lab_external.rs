//! `lab --kubeconfig FILE`: the lab against an external API server. There is no real
//! kube-apiserver here, so the embedded one stands in for it: started apart, with TLS,
//! and known to the lab only through its kubeconfig file. The test checks that a
//! Service gets its IP and is answered by one node, that the children reach the server
//! through the forwarders with TLS end to end, and that when the lab ends every object
//! it created is gone while those that were there before are untouched. Needs root and
//! the workspace's binaries (`cargo build -p ferrolb-controller -p ferrolb-speaker`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ferrolb_apiserver::{ApiServer, ApiServerOptions};
use ferrolb_lab::ledger::Kind;
use ferrolb_lab::{Family, Lab, LabOptions};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::json;

/// Every object of the kinds the lab (or its children) could write: (kind, namespace,
/// name, uid). A uid tells a recreated object from the original.
type Snapshot = BTreeSet<(String, String, String, String)>;

async fn snapshot(client: &kube::Client) -> Snapshot {
    let mut out = Snapshot::new();
    let kinds = [
        Kind::Namespace,
        Kind::Node,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::Service,
        Kind::EndpointSlice,
        Kind::Lease,
    ];
    let mut resources: Vec<(String, kube::api::ApiResource)> = kinds
        .iter()
        .map(|k| (format!("{k:?}"), k.resource()))
        .collect();
    resources.push(("Event".into(), kube::api::ApiResource::erase::<Event>(&())));
    for (kind, ar) in resources {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
        for o in api.list(&ListParams::default()).await.unwrap().items {
            out.insert((
                kind.clone(),
                o.metadata.namespace.unwrap_or_default(),
                o.metadata.name.unwrap_or_default(),
                o.metadata.uid.unwrap_or_default(),
            ));
        }
    }
    out
}

fn obj<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_runs_against_an_external_api_server_and_removes_only_what_it_created() {
    let t0 = Instant::now();
    let api = ApiServer::start(ApiServerOptions {
        tls: true,
        ..ApiServerOptions::default()
    })
    .await
    .expect("the stand-in external API server starts");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("external.kubeconfig");
    api.write_kubeconfig(&file).unwrap();
    let client = api.client().await.unwrap();

    // Someone else's objects: beside the lab's Services, a Node, and ferrolb-system
    // already there (as with ferrolb installed) with a ConfigMap of its own.
    let pp = PostParams::default();
    Api::<ConfigMap>::namespaced(client.clone(), "default")
        .create(
            &pp,
            &obj(json!({"metadata": {"name": "keep-me"}, "data": {"k": "v"}})),
        )
        .await
        .unwrap();
    Api::<Node>::all(client.clone())
        .create(&pp, &obj(json!({"metadata": {"name": "keep-node"}})))
        .await
        .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&pp, &obj(json!({"metadata": {"name": "ferrolb-system"}})))
        .await
        .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), "ferrolb-system")
        .create(&pp, &obj(json!({"metadata": {"name": "keep-me-too"}})))
        .await
        .unwrap();
    let before = snapshot(&client).await;

    let lab = Lab::start(LabOptions {
        nodes: 2,
        example_services: false,
        kubeconfig: Some(file.clone()),
        ..LabOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the lab does not start against the external server: {e}"));
    assert!(lab.api_server().is_none(), "no embedded server of its own");
    assert_eq!(lab.kubeconfig(), std::path::absolute(&file).unwrap());
    // The speakers reach the server through the lab network's forwarder, TLS end to
    // end: the certificate is checked against the server's own name.
    let kc = std::fs::read_to_string(lab.lab_kubeconfig()).unwrap();
    assert!(kc.contains("https://192.0.2.1:6443"), "{kc}");
    assert!(kc.contains("tls-server-name: 127.0.0.1"), "{kc}");
    assert!(kc.contains("certificate-authority-data"), "{kc}");

    lab.create_service("web", Family::V4).await.unwrap();
    let ips = lab
        .wait_service_ips("web", 1, Duration::from_secs(20))
        .await
        .unwrap();
    let who = lab
        .wait_single_announcer(ips[0], Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(lab.curl(ips[0], Duration::from_secs(2)).await.unwrap(), who);
    // The per-request faults need HTTP, which a TLS relay does not see: refused by name.
    let err = lab
        .api_delay(Duration::from_secs(1))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("api-delay") && err.contains("api-down"),
        "{err}"
    );
    // The lab created things on the server, and its children wrote there.
    let during = snapshot(&client).await;
    let added: Vec<_> = during.difference(&before).collect();
    for (kind, name) in [
        ("Node", "n1"),
        ("Namespace", "ferrolb-speaker-leases"),
        ("ConfigMap", "ferrolb-config"),
        ("Service", "web"),
        ("Lease", "ferrolb-speaker-n1"),
        ("Secret", "ferrolb-membership"),
    ] {
        assert!(
            added.iter().any(|(k, _, n, _)| k == kind && n == name),
            "{kind} {name} on the server: {added:?}"
        );
    }
    // An existing namespace is used, not owned.
    let owned = lab.owned_objects();
    assert!(
        !owned
            .iter()
            .any(|e| e.kind == Kind::Namespace && e.name == "ferrolb-system"),
        "{owned:?}"
    );

    lab.shutdown().await;
    let after = snapshot(&client).await;
    let left: Vec<_> = after.difference(&before).collect();
    let lost: Vec<_> = before.difference(&after).collect();
    assert!(left.is_empty(), "left behind on the server: {left:?}");
    assert!(lost.is_empty(), "deleted though not the lab's: {lost:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t0.elapsed()
    );
    api.shutdown().await;
}

/// A lab that ends without `shutdown` (an error while running, a Ctrl-C during its
/// build: the lab binary's paths that drop it) removes its objects all the same, from
/// its `Drop`, while its own runtime is the one that drops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_lab_still_removes_what_it_created() {
    let api = ApiServer::start(ApiServerOptions {
        tls: true,
        ..ApiServerOptions::default()
    })
    .await
    .expect("the stand-in external API server starts");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("external.kubeconfig");
    api.write_kubeconfig(&file).unwrap();
    let client = api.client().await.unwrap();
    let before = snapshot(&client).await;

    let lab = Lab::start(LabOptions {
        nodes: 1,
        example_services: false,
        kubeconfig: Some(file),
        ..LabOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("the lab does not start against the external server: {e}"));
    lab.create_service("web", Family::V4).await.unwrap();
    lab.wait_service_ips("web", 1, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(snapshot(&client).await.len() > before.len());
    drop(lab);

    let after = snapshot(&client).await;
    let left: Vec<_> = after.difference(&before).collect();
    assert!(left.is_empty(), "left behind on the server: {left:?}");
    assert_eq!(after, before);
    api.shutdown().await;
}
