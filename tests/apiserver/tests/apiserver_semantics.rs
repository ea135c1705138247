//! Write semantics of the embedded API server, with kube-rs: the patch types, server-side apply
//! ownership, generateName, finalizers, namespace deletion, generation and resourceVersion rules,
//! dry-run, Service defaulting/validation, v1 ↔ events.k8s.io Events, and bad requests (400/415/
//! 422 with a Status, never a crash).

use ferrolb_apiserver::{ApiServer, ApiServerOptions, RunningApiServer};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event as CoreEvent, Namespace, Node, Service};
use k8s_openapi::api::events::v1::Event as NewEvent;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::Status;
use serde_json::{Value, json};

async fn start() -> (RunningApiServer, kube::Client) {
    let server = ApiServer::start(ApiServerOptions::default()).await.unwrap();
    let client = server.client().await.unwrap();
    (server, client)
}

fn api_err(e: kube::Error) -> Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn obj<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

async fn mk_svc(client: &kube::Client, name: &str, spec: Value) -> Result<Service, kube::Error> {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": name}, "spec": spec})),
    )
    .await
}

#[tokio::test]
async fn json_strategic_and_merge_patches() {
    let (_s, client) = start().await;
    let svc = mk_svc(&client, "web", json!({"type": "NodePort", "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 443}]})).await.unwrap();
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let np80 = svc.spec.unwrap().ports.unwrap()[0].node_port;
    // Strategic merge: ports merge by port, keeping the allocated nodePort.
    let s = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"ports": [{"port": 80, "name": "http"}]}})),
        )
        .await
        .unwrap();
    let ports = s.spec.unwrap().ports.unwrap();
    assert_eq!(ports.len(), 2);
    assert_eq!(ports[0].name.as_deref(), Some("http"));
    assert_eq!(ports[0].node_port, np80);
    // JSON patch.
    let s = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(
                    json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(s.metadata.labels.unwrap()["a"], "b");
    // A failing JSON patch test op changes nothing.
    let before = api.get("web").await.unwrap().metadata.resource_version;
    let e = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(
                    json!([{"op": "test", "path": "/metadata/name", "value": "other"}]),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e).code, 422);
    assert_eq!(
        api.get("web").await.unwrap().metadata.resource_version,
        before
    );
    // Merge patch with a stale resourceVersion conflicts.
    let e = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1", "labels": {"x": "y"}}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_err(e).reason, "Conflict");
}

#[tokio::test]
async fn server_side_apply_creates_and_detects_lease_conflicts() {
    let (_s, client) = start().await;
    let api: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let lease = |holder: &str| json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "vip"}, "spec": {"holderIdentity": holder, "leaseDurationSeconds": 5}});
    // Apply creates when absent.
    let l = api
        .patch(
            "vip",
            &PatchParams::apply("speaker-a"),
            &Patch::Apply(lease("a")),
        )
        .await
        .unwrap();
    assert_eq!(l.spec.unwrap().holder_identity.as_deref(), Some("a"));
    let mf = l.metadata.managed_fields.unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("speaker-a"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));
    // Another manager applying a different holder conflicts.
    let e = api_err(
        api.patch(
            "vip",
            &PatchParams::apply("speaker-b"),
            &Patch::Apply(lease("b")),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "Conflict"));
    assert!(
        e.message.contains("speaker-a") && e.message.contains(".spec.holderIdentity"),
        "{}",
        e.message
    );
    // Same values: shared ownership, no conflict.
    api.patch(
        "vip",
        &PatchParams::apply("speaker-b"),
        &Patch::Apply(lease("a")),
    )
    .await
    .unwrap();
    // Forced: b takes it.
    let l = api
        .patch(
            "vip",
            &PatchParams::apply("speaker-b").force(),
            &Patch::Apply(lease("b")),
        )
        .await
        .unwrap();
    assert_eq!(l.spec.unwrap().holder_identity.as_deref(), Some("b"));
    // A field cleared by an update frees it: a may apply again.
    api.patch(
        "vip",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"holderIdentity": null}})),
    )
    .await
    .unwrap();
    api.patch(
        "vip",
        &PatchParams::apply("speaker-a"),
        &Patch::Apply(lease("a")),
    )
    .await
    .unwrap();
    // Apply requires a field manager.
    let no_mgr = PatchParams {
        field_manager: None,
        ..Default::default()
    };
    assert_eq!(
        api_err(
            api.patch("vip", &no_mgr, &Patch::Apply(lease("a")))
                .await
                .unwrap_err()
        )
        .code,
        400
    );
}

#[tokio::test]
async fn status_apply_only_touches_status() {
    let (_s, client) = start().await;
    mk_svc(
        &client,
        "lb",
        json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
    )
    .await
    .unwrap();
    let api: Api<Service> = Api::namespaced(client, "default");
    let body = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "lb"}, "spec": {"type": "ClusterIP"}, "status": {"loadBalancer": {"ingress": [{"ip": "2001:db8::10"}]}}});
    let s = api
        .patch_status(
            "lb",
            &PatchParams::apply("ferrolb-controller"),
            &Patch::Apply(body),
        )
        .await
        .unwrap();
    assert_eq!(s.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
    let ing = &s.status.unwrap().load_balancer.unwrap().ingress.unwrap()[0];
    assert_eq!(ing.ip.as_deref(), Some("2001:db8::10"));
    assert_eq!(ing.ip_mode.as_deref(), Some("VIP"));
}

#[tokio::test]
async fn generation_and_resource_version_rules() {
    let (_s, client) = start().await;
    let s = mk_svc(
        &client,
        "web",
        json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
    )
    .await
    .unwrap();
    let api: Api<Service> = Api::namespaced(client, "default");
    assert_eq!(s.metadata.generation, Some(1));
    let rv0 = s.metadata.resource_version.clone();
    // Replacing with the same object changes nothing: same resourceVersion.
    let same = api
        .replace("web", &PostParams::default(), &s)
        .await
        .unwrap();
    assert_eq!(same.metadata.resource_version, rv0);
    let l = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        l.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    assert_ne!(l.metadata.resource_version, rv0);
    let st = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        st.metadata.generation,
        Some(1),
        "status changes keep the generation"
    );
    let sp = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"externalTrafficPolicy": "Local"}})),
        )
        .await
        .unwrap();
    assert_eq!(sp.metadata.generation, Some(2));
    let spec = sp.spec.unwrap();
    assert!(
        spec.health_check_node_port.is_some(),
        "Local gets a healthCheckNodePort"
    );
    // uid and creationTimestamp cannot be changed by an update.
    let mut forged = api.get("web").await.unwrap();
    forged.metadata.uid = Some("forged".into());
    let kept = api
        .replace("web", &PostParams::default(), &forged)
        .await
        .unwrap();
    assert_eq!(kept.metadata.uid, s.metadata.uid);
}

#[tokio::test]
async fn service_families_ranges_and_class() {
    let (_s, client) = start().await;
    let dual = mk_svc(&client, "dual", json!({"type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6", "IPv4"], "ports": [{"port": 80}]})).await.unwrap();
    let spec = dual.spec.unwrap();
    assert_eq!(spec.ip_families.unwrap(), vec!["IPv6", "IPv4"]);
    let ips = spec.cluster_ips.unwrap();
    assert!(
        ips[0].starts_with("2001:db8:ffff::") && ips[1].starts_with("198.51.100."),
        "{ips:?}"
    );
    let v6 = mk_svc(
        &client,
        "v6",
        json!({"ipFamilies": ["IPv6"], "ports": [{"port": 80}]}),
    )
    .await
    .unwrap();
    assert_eq!(
        v6.spec.unwrap().ip_family_policy.as_deref(),
        Some("SingleStack")
    );
    let headless = mk_svc(
        &client,
        "headless",
        json!({"clusterIP": "None", "ports": [{"port": 80}]}),
    )
    .await
    .unwrap();
    assert_eq!(headless.spec.unwrap().cluster_ips.unwrap(), vec!["None"]);

    let e = api_err(
        mk_svc(
            &client,
            "x",
            json!({"clusterIP": "203.0.113.5", "ports": [{"port": 80}]}),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    assert!(
        e.message.contains("spec.clusterIPs[0]") && e.message.contains("not in the valid range"),
        "{}",
        e.message
    );
    let taken = mk_svc(
        &client,
        "np1",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}),
    )
    .await
    .unwrap();
    assert_eq!(taken.spec.unwrap().ports.unwrap()[0].node_port, Some(31000));
    let e = api_err(
        mk_svc(
            &client,
            "np2",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        e.message.contains("spec.ports[0].nodePort") && e.message.contains("already allocated"),
        "{}",
        e.message
    );
    let e = api_err(
        mk_svc(
            &client,
            "np3",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}),
        )
        .await
        .unwrap_err(),
    );
    assert!(e.message.contains("30000-32767"), "{}", e.message);
    let e = api_err(
        mk_svc(
            &client,
            "ports",
            json!({"ports": [{"port": 80}, {"port": 81}]}),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        e.message.contains("spec.ports[0].name: Required value"),
        "{}",
        e.message
    );

    // loadBalancerClass is immutable while the Service is a LoadBalancer.
    mk_svc(&client, "cls", json!({"type": "LoadBalancer", "loadBalancerClass": "ferrolb.io/lb", "ports": [{"port": 80}]})).await.unwrap();
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let e = api_err(
        api.patch(
            "cls",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"loadBalancerClass": "other.io/lb"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(
        e.message.contains("spec.loadBalancerClass")
            && e.message.contains("may not change once set"),
        "{}",
        e.message
    );
    let e = api_err(
        api.patch(
            "cls",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"loadBalancerClass": null}})),
        )
        .await
        .unwrap_err(),
    );
    assert!(e.message.contains("may not change once set"));
    // Changing the type away from LoadBalancer clears the class and the node ports.
    let c = api
        .patch(
            "cls",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await
        .unwrap();
    let spec = c.spec.unwrap();
    assert!(spec.load_balancer_class.is_none());
    assert!(spec.ports.unwrap()[0].node_port.is_none());
    let e = api_err(
        mk_svc(
            &client,
            "cls2",
            json!({"loadBalancerClass": "ferrolb.io/lb", "ports": [{"port": 80}]}),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        e.message.contains("spec.loadBalancerClass"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn generate_name_finalizers_preconditions_and_namespace_deletion() {
    let (_s, client) = start().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "team"}})),
    )
    .await
    .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
    let g = cms
        .create(
            &PostParams::default(),
            &obj(json!({"metadata": {"generateName": "pool-"}})),
        )
        .await
        .unwrap();
    let name = g.metadata.name.clone().unwrap();
    assert!(name.starts_with("pool-") && name.len() == 10, "{name}");

    // Preconditions.
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("wrong".into()),
            resource_version: None,
        }),
        ..Default::default()
    };
    assert_eq!(api_err(cms.delete(&name, &dp).await.unwrap_err()).code, 409);

    // Finalizers hold deletion until removed.
    cms.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "held", "finalizers": ["ferrolb.io/x"]}})),
    )
    .await
    .unwrap();
    cms.delete("held", &DeleteParams::default()).await.unwrap();
    let held = cms.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_err(cms.get("held").await.unwrap_err()).code, 404);

    // Deleting the namespace removes its content.
    nss.delete("team", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_err(cms.get(&name).await.unwrap_err()).code, 404);
    let e = api_err(
        cms.create(
            &PostParams::default(),
            &obj(json!({"metadata": {"name": "late"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 404);

    // dryRun stores nothing.
    let d: Api<ConfigMap> = Api::namespaced(client, "default");
    d.create(
        &PostParams {
            dry_run: true,
            field_manager: None,
        },
        &obj(json!({"metadata": {"name": "dry"}})),
    )
    .await
    .unwrap();
    assert_eq!(api_err(d.get("dry").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn node_status_is_separate_from_spec() {
    let (_s, client) = start().await;
    let nodes: Api<Node> = Api::all(client);
    nodes.create(&PostParams::default(), &obj(json!({"metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))).await.unwrap();
    // A spec write ignores status.
    let n = nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"unschedulable": true}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}})))
        .await
        .unwrap();
    assert_eq!(n.spec.unwrap().unschedulable, Some(true));
    assert_eq!(
        n.status.clone().unwrap().conditions.unwrap()[0].status,
        "True"
    );
    // A status write ignores spec.
    let n = nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"unschedulable": false}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}})))
        .await
        .unwrap();
    assert_eq!(n.spec.unwrap().unschedulable, Some(true));
    assert_eq!(n.status.unwrap().conditions.unwrap()[0].status, "False");
}

#[tokio::test]
async fn events_are_one_object_with_two_shapes() {
    let (_s, client) = start().await;
    let new: Api<NewEvent> = Api::namespaced(client.clone(), "default");
    let e = new
        .create(
            &PostParams::default(),
            &obj(json!({
                "metadata": {"name": "web.1"},
                "eventTime": "2026-01-01T00:00:00.000000Z",
                "reportingController": "ferrolb-controller", "reportingInstance": "c1",
                "action": "Allocate", "reason": "IPAllocated", "type": "Normal", "note": "hello",
                "regarding": {"kind": "Service", "name": "web", "namespace": "default", "uid": "u-1"}
            })),
        )
        .await
        .unwrap();
    assert_eq!(e.note.as_deref(), Some("hello"));
    let core: Api<CoreEvent> = Api::namespaced(client.clone(), "default");
    let list = core
        .list(&ListParams::default().fields(
            "involvedObject.name=web,involvedObject.namespace=default,involvedObject.uid=u-1",
        ))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let c = &list.items[0];
    assert_eq!(c.message.as_deref(), Some("hello"));
    assert_eq!(c.reporting_component.as_deref(), Some("ferrolb-controller"));
    assert_eq!(c.involved_object.kind.as_deref(), Some("Service"));
    assert!(
        core.list(&ListParams::default().fields("involvedObject.uid=other"))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // A series patch through events.k8s.io shows as count on v1.
    new.patch("web.1", &PatchParams::default(), &Patch::Merge(json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:01:00.000000Z"}, "deprecatedCount": 2})))
        .await
        .unwrap();
    assert_eq!(core.get("web.1").await.unwrap().count, Some(2));
    let e = api_err(
        core.list(&ListParams::default().fields("spec.nope=x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400);
}

/// Sends a raw request and returns the error Status (these requests must all fail cleanly).
async fn raw_err(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> Status {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body.to_vec())
        .unwrap();
    match client.request_text(req).await {
        Err(kube::Error::Api(s)) => *s,
        other => panic!("{method} {path} with {body:?}: expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_requests_get_a_status_never_a_crash() {
    let (_s, client) = start().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let cases: Vec<(&str, String, &str, &[u8], u16)> = vec![
        ("POST", cms.into(), "application/json", b"{not json", 400),
        ("POST", cms.into(), "application/json", b"[1,2]", 400),
        ("POST", cms.into(), "application/json", b"", 400),
        (
            "POST",
            cms.into(),
            "application/json",
            br#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"x"}}"#,
            400,
        ),
        (
            "POST",
            cms.into(),
            "application/json",
            br#"{"apiVersion":"v2","metadata":{"name":"x"}}"#,
            400,
        ),
        (
            "POST",
            cms.into(),
            "application/json",
            br#"{"metadata":"x"}"#,
            400,
        ),
        (
            "POST",
            cms.into(),
            "application/json",
            br#"{"metadata":{"name":"x"},"data":{"a":1}}"#,
            400,
        ),
        (
            "POST",
            cms.into(),
            "application/json",
            br#"{"metadata":{"name":"Bad_Name"}}"#,
            422,
        ),
        (
            "POST",
            cms.into(),
            "application/json",
            br#"{"metadata":{}}"#,
            422,
        ),
        (
            "POST",
            cms.into(),
            "application/json",
            br#"{"metadata":{"name":"x","namespace":"other"}}"#,
            400,
        ),
        (
            "POST",
            cms.into(),
            "application/vnd.kubernetes.protobuf",
            b"k8s\x00",
            415,
        ),
        (
            "PUT",
            format!("{cms}/x"),
            "application/json",
            br#"{"metadata":{"name":"y"}}"#,
            400,
        ),
        (
            "GET",
            format!("{cms}?labelSelector=a%20in%20b"),
            "application/json",
            b"",
            400,
        ),
        (
            "GET",
            format!("{cms}?fieldSelector=data.a%3Db"),
            "application/json",
            b"",
            400,
        ),
        (
            "GET",
            "/api/v1/nonsense".into(),
            "application/json",
            b"",
            404,
        ),
        (
            "GET",
            "/apis/batch/v1/jobs".into(),
            "application/json",
            b"",
            404,
        ),
        (
            "GET",
            "/api/v1/configmaps/x".into(),
            "application/json",
            b"",
            404,
        ),
        (
            "GET",
            format!("{cms}?watch=true&resourceVersion=abc"),
            "application/json",
            b"",
            400,
        ),
    ];
    for (method, path, ct, body, code) in cases {
        let s = raw_err(&client, method, &path, ct, body).await;
        assert_eq!(
            s.code,
            code,
            "{method} {path} {:?}: {}",
            String::from_utf8_lossy(body),
            s.message
        );
    }
    // Patches on an existing object.
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "x"}})),
    )
    .await
    .unwrap();
    let p = format!("{cms}/x");
    let patches: Vec<(&str, &[u8], u16)> = vec![
        ("application/merge-patch+json", b"nope", 400),
        ("application/merge-patch+json", b"[]", 400),
        ("application/merge-patch+json", br#"{"metadata":5}"#, 422),
        (
            "application/merge-patch+json",
            br#"{"data":{"a":[1]}}"#,
            400,
        ),
        ("application/json-patch+json", br#"{"op":"add"}"#, 400),
        (
            "application/json-patch+json",
            br#"[{"op":"explode","path":"/x"}]"#,
            422,
        ),
        (
            "application/json-patch+json",
            br#"[{"op":"replace","path":"","value":7}]"#,
            422,
        ),
        (
            "application/strategic-merge-patch+json",
            br#"{"$patch":"bogus"}"#,
            422,
        ),
        ("application/apply-patch+yaml", b"::: not yaml :::", 400),
        ("text/plain", b"{}", 415),
    ];
    for (ct, body, code) in patches {
        let s = raw_err(&client, "PATCH", &format!("{p}?fieldManager=t"), ct, body).await;
        assert_eq!(
            s.code,
            code,
            "PATCH {ct} {:?}: {}",
            String::from_utf8_lossy(body),
            s.message
        );
        assert_eq!(s.status, Some(kube::core::response::StatusSummary::Failure));
    }
    // The server is still serving and the object unchanged.
    assert!(api.get("x").await.unwrap().data.is_none());
}

#[tokio::test]
async fn delete_collection_and_cluster_wide_watch() {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::{WatchEvent, WatchParams};
    let (_s, client) = start().await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &obj(json!({"metadata": {"name": "other"}})),
    )
    .await
    .unwrap();
    let all: Api<ConfigMap> = Api::all(client.clone());
    let rv = all
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = all
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    for ns in ["default", "other"] {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        for n in ["a", "b"] {
            api.create(
                &PostParams::default(),
                &obj(json!({"metadata": {"name": n, "labels": {"n": n}}})),
            )
            .await
            .unwrap();
        }
    }
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match tokio::time::timeout(std::time::Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(o) => seen.push(format!(
                "{}/{}",
                o.metadata.namespace.unwrap(),
                o.metadata.name.unwrap()
            )),
            WatchEvent::Bookmark(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, vec!["default/a", "default/b", "other/a", "other/b"]);
    let other: Api<ConfigMap> = Api::namespaced(client, "other");
    let gone = other
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("n=a"),
        )
        .await
        .unwrap();
    let names: Vec<String> = gone
        .left()
        .expect("the deleted objects")
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(names, vec!["a"]);
    let left: Vec<String> = all
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, vec!["a", "b", "b"]);
}
