//! The embedded API server, driven by kube-rs as ferrolb's controller and speaker drive a real one.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_apiserver::{ApiServer, ApiServerOptions, RunningApiServer};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::Status;
use serde_json::json;

async fn start() -> (RunningApiServer, kube::Client) {
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("server starts");
    let client = server.client().await.expect("client");
    (server, client)
}

fn svc(name: &str, spec: serde_json::Value) -> Service {
    serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

fn api_err(e: kube::Error) -> Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn service_create_defaults_and_allocates() {
    let (_s, client) = start().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let created = api
        .create(
            &PostParams::default(),
            &svc(
                "web",
                json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
            ),
        )
        .await
        .unwrap();
    let spec = created.spec.clone().unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("198.51.100.1"));
    assert_eq!(spec.ip_families, Some(vec!["IPv4".to_string()]));
    assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
    let np = spec.ports.unwrap()[0].node_port.unwrap();
    assert!((30000..=32767).contains(&np));
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    assert_eq!(created.metadata.generation, Some(1));
    let got = api.get("web").await.unwrap();
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );
}

#[tokio::test]
async fn create_conflicts_and_not_found() {
    let (_s, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "pools"}, "data": {"a": "1"}})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap();
    let e = api_err(api.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(e.message, "configmaps \"pools\" already exists");
    let e = api_err(api.get("missing").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    let other: Api<ConfigMap> = Api::namespaced(client, "nope");
    let e = api_err(other.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!(e.code, 404);
    assert!(
        e.message.contains("namespaces \"nope\" not found"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn lease_lifecycle_with_optimistic_concurrency() {
    let (_s, client) = start().await;
    let api: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "ip-192-0-2-10"}, "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 10}})).unwrap();
    let l1 = api.create(&PostParams::default(), &lease).await.unwrap();
    let mut l2 = l1.clone();
    l2.spec.as_mut().unwrap().holder_identity = Some("node-b".into());
    let l2 = api
        .replace("ip-192-0-2-10", &PostParams::default(), &l2)
        .await
        .unwrap();
    assert_eq!(l2.spec.unwrap().holder_identity.as_deref(), Some("node-b"));
    // Replacing with the stale resourceVersion fails with 409 Conflict.
    let e = api_err(
        api.replace("ip-192-0-2-10", &PostParams::default(), &l1)
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    let dp = api
        .delete("ip-192-0-2-10", &DeleteParams::default())
        .await
        .unwrap();
    assert!(dp.is_left());
    assert_eq!(
        api_err(api.get("ip-192-0-2-10").await.unwrap_err()).code,
        404
    );
}

#[tokio::test]
async fn list_and_watch_with_selectors() {
    let (_s, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mk = |name: &str, app: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}}})).unwrap()
    };
    api.create(&PostParams::default(), &mk("a", "ferrolb"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &mk("b", "other"))
        .await
        .unwrap();
    let list = api
        .list(&ListParams::default().labels("app=ferrolb"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let rv = list.metadata.resource_version.clone().unwrap();
    let all: Api<ConfigMap> = Api::all(client);
    assert_eq!(
        all.list(&ListParams::default().fields("metadata.name=b"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let mut stream = api
        .watch(&WatchParams::default().labels("app=ferrolb"), &rv)
        .await
        .unwrap()
        .boxed();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    api.create(&PostParams::default(), &mk("c", "ferrolb"))
        .await
        .unwrap();
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    api.delete("a", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            WatchEvent::Added(o) => seen.push(format!("ADDED {}", o.metadata.name.unwrap())),
            WatchEvent::Modified(o) => seen.push(format!("MODIFIED {}", o.metadata.name.unwrap())),
            WatchEvent::Deleted(o) => seen.push(format!("DELETED {}", o.metadata.name.unwrap())),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, vec!["MODIFIED a", "ADDED c", "DELETED a"]);
}

#[tokio::test]
async fn status_subresource_is_separate_and_validated() {
    let (_s, client) = start().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    api.create(
        &PostParams::default(),
        &svc(
            "lb",
            json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .unwrap();
    let st = api
        .patch_status("lb", &PatchParams::default(), &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}, "spec": {"type": "ClusterIP"}})))
        .await
        .unwrap();
    assert_eq!(
        st.spec.as_ref().unwrap().type_.as_deref(),
        Some("LoadBalancer")
    );
    let ing = st.status.unwrap().load_balancer.unwrap().ingress.unwrap();
    assert_eq!(ing[0].ip.as_deref(), Some("192.0.2.10"));
    // Main resource ignores status.
    let mut s = api.get("lb").await.unwrap();
    s.status = None;
    s.metadata.labels = Some(BTreeMap::from([("x".to_string(), "y".to_string())]));
    let s = api.replace("lb", &PostParams::default(), &s).await.unwrap();
    assert!(s.status.unwrap().load_balancer.unwrap().ingress.is_some());
    // Invalid ingress IP → 422 naming the field.
    let e = api_err(
        api.patch_status(
            "lb",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.300"}]}}}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(
        e.message.contains("status.loadBalancer.ingress[0].ip"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn nodes_and_endpointslices_and_namespaces() {
    let (_s, client) = start().await;
    let nodes: Api<Node> = Api::all(client.clone());
    let n: Node = serde_json::from_value(json!({"metadata": {"name": "node-a"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})).unwrap();
    let n = nodes.create(&PostParams::default(), &n).await.unwrap();
    assert_eq!(n.status.unwrap().conditions.unwrap()[0].status, "True");
    let eps: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let es: EndpointSlice = serde_json::from_value(json!({"metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}}, "addressType": "IPv4", "endpoints": [{"addresses": ["192.0.2.21"], "nodeName": "node-a"}]})).unwrap();
    eps.create(&PostParams::default(), &es).await.unwrap();
    assert_eq!(
        eps.list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    let nss: Api<Namespace> = Api::all(client);
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|n| n.metadata.name.unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["default", "kube-node-lease", "kube-public", "kube-system"]
    );
}

#[tokio::test]
async fn list_pages_with_limit_and_continue() {
    let (_s, client) = start().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..5 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("c{i}")}})).unwrap();
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let p1 = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(p1.items.len(), 2);
    assert_eq!(p1.metadata.remaining_item_count, Some(3));
    let token = p1.metadata.continue_.clone().unwrap();
    let p2 = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .unwrap();
    let p3 = api
        .list(
            &ListParams::default()
                .limit(2)
                .continue_token(p2.metadata.continue_.as_deref().unwrap()),
        )
        .await
        .unwrap();
    let names: Vec<String> = p1
        .items
        .iter()
        .chain(&p2.items)
        .chain(&p3.items)
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, vec!["c0", "c1", "c2", "c3", "c4"]);
    assert!(p3.metadata.continue_.is_none());
    assert_eq!(p3.metadata.resource_version, p1.metadata.resource_version);
}
