//! The embedded API server with the real `kubectl` (v1.32) as its client: tables, apply/create/
//! delete, describe with events, server-side apply, watch, TLS, and the `ferrolb-apiserver` binary.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrolb_apiserver::{ApiServer, ApiServerOptions, RunningApiServer};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use serde_json::json;
use tempfile::TempDir;

struct Kubectl {
    kubeconfig: PathBuf,
    cache: PathBuf,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    fn new(server: &RunningApiServer, dir: &TempDir) -> Self {
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        Self {
            kubeconfig,
            cache: dir.path().join("cache"),
        }
    }

    /// Runs kubectl (asynchronously, so the in-process server keeps serving), bounded in time.
    async fn run(&self, args: &[&str]) -> Out {
        let child = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .args(args)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(30), child)
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .expect("kubectl must be installed and on PATH (see README setup)");
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args).await;
        assert!(o.ok, "kubectl {args:?} failed: {}\n{}", o.stderr, o.stdout);
        o.stdout
    }
}

async fn setup() -> (RunningApiServer, kube::Client, TempDir, Kubectl) {
    let server = ApiServer::start(ApiServerOptions::default()).await.unwrap();
    let client = server.client().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl::new(&server, &dir);
    (server, client, dir, k)
}

/// Splits a kubectl table into rows of whitespace-separated cells (cells here have no spaces).
fn rows(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

async fn mk_svc(api: &Api<Service>, name: &str, spec: serde_json::Value) -> Service {
    let s: Service =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    api.create(&PostParams::default(), &s).await.unwrap()
}

#[tokio::test]
async fn get_svc_prints_the_real_table() {
    let (_s, client, _d, k) = setup().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let lb = mk_svc(
        &api,
        "web",
        json!({"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80}]}),
    )
    .await;
    let pending_ports =
        json!([{"port": 443, "name": "https"}, {"port": 53, "protocol": "UDP", "name": "dns"}]);
    mk_svc(
        &api,
        "pending",
        json!({"type": "LoadBalancer", "ports": pending_ports}),
    )
    .await;
    mk_svc(&api, "internal", json!({"ports": [{"port": 8080}]})).await;
    api.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}})),
    )
    .await
    .unwrap();

    let out = k.ok(&["get", "svc"]).await;
    let t = rows(&out);
    assert_eq!(
        t[0],
        vec![
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ],
        "{out}"
    );
    let np = lb.spec.unwrap().ports.unwrap()[0].node_port.unwrap();
    let web = t.iter().find(|r| r[0] == "web").expect("web row");
    assert_eq!(
        &web[1..5],
        &[
            "LoadBalancer".to_string(),
            "198.51.100.1".into(),
            "192.0.2.10".into(),
            format!("80:{np}/TCP")
        ]
    );
    assert!(web[5].ends_with('s'), "age like 0s: {}", web[5]);
    let pending = t.iter().find(|r| r[0] == "pending").expect("pending row");
    assert_eq!(pending[3], "<pending>");
    assert!(
        pending[4].starts_with("443:")
            && pending[4].contains("/TCP,53:")
            && pending[4].ends_with("/UDP"),
        "{}",
        pending[4]
    );
    let internal = t.iter().find(|r| r[0] == "internal").expect("internal row");
    assert_eq!(
        &internal[1..5],
        &[
            "ClusterIP".to_string(),
            "198.51.100.3".into(),
            "<none>".into(),
            "8080/TCP".into()
        ]
    );

    let wide = rows(&k.ok(&["get", "svc", "web", "-o", "wide"]).await);
    assert_eq!(wide[0].last().unwrap(), "SELECTOR");
    assert_eq!(wide[1].last().unwrap(), "app=web");
    // Short name and all namespaces.
    let all = rows(&k.ok(&["get", "svc", "-A"]).await);
    assert_eq!(all[0][0], "NAMESPACE");
    assert_eq!(all.len(), 4);
}

#[tokio::test]
async fn get_nodes_leases_configmaps_namespaces_endpointslices() {
    let (_s, _c, dir, k) = setup().await;
    let f = write(
        dir.path(),
        "objs.yaml",
        r#"
apiVersion: v1
kind: Node
metadata: {name: node-a, labels: {node-role.kubernetes.io/worker: ""}}
status:
  conditions: [{type: Ready, status: "True"}]
  nodeInfo: {kubeletVersion: v1.32.0, architecture: amd64, bootID: b, containerRuntimeVersion: none, kernelVersion: "6.1", kubeProxyVersion: "", machineID: m, operatingSystem: linux, osImage: Debian, systemUUID: u}
---
apiVersion: v1
kind: Node
metadata: {name: node-b}
spec: {unschedulable: true}
status:
  conditions: [{type: Ready, status: "False"}]
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: ferrolb-controller, namespace: default}
spec: {holderIdentity: ctrl-1, leaseDurationSeconds: 15}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: pools, namespace: default}
data: {a: "1", b: "2"}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints: [{addresses: [192.0.2.11]}, {addresses: [192.0.2.12]}]
"#,
    );
    let out = k.ok(&["create", "-f", &f]).await;
    assert!(
        out.contains("node/node-a created")
            && out.contains("lease.coordination.k8s.io/ferrolb-controller created"),
        "{out}"
    );

    let nodes = rows(&k.ok(&["get", "nodes"]).await);
    assert_eq!(nodes[0], vec!["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    assert_eq!(&nodes[1][0..3], &["node-a", "Ready", "worker"]);
    assert_eq!(nodes[1][4], "v1.32.0");
    assert_eq!(
        &nodes[2][0..3],
        &["node-b", "NotReady,SchedulingDisabled", "<none>"]
    );

    let leases = rows(&k.ok(&["get", "leases"]).await);
    assert_eq!(leases[0], vec!["NAME", "HOLDER", "AGE"]);
    assert_eq!(&leases[1][0..2], &["ferrolb-controller", "ctrl-1"]);

    let cms = rows(&k.ok(&["get", "cm"]).await);
    assert_eq!(cms[0], vec!["NAME", "DATA", "AGE"]);
    assert_eq!(&cms[1][0..2], &["pools", "2"]);

    let ns = rows(&k.ok(&["get", "ns"]).await);
    assert_eq!(ns[0], vec!["NAME", "STATUS", "AGE"]);
    let names: Vec<&str> = ns[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        vec!["default", "kube-node-lease", "kube-public", "kube-system"]
    );
    assert!(ns[1..].iter().all(|r| r[1] == "Active"));

    let eps = rows(&k.ok(&["get", "endpointslices"]).await);
    assert_eq!(
        eps[0],
        vec!["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    );
    assert_eq!(
        &eps[1][0..4],
        &["web-abc", "IPv4", "8080", "192.0.2.11,192.0.2.12"]
    );

    // Selectors go through to the server.
    let sel = k
        .ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(sel.trim(), "endpointslice.discovery.k8s.io/web-abc");
    let none = k
        .run(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=other",
        ])
        .await;
    assert!(
        none.ok && none.stdout.is_empty() && none.stderr.contains("No resources found"),
        "{}",
        none.stderr
    );
}

#[tokio::test]
async fn apply_create_and_delete_services_and_configmaps() {
    let (_s, client, dir, k) = setup().await;
    let manifest = |port: u16, pools: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels: {{app: web}}\nspec:\n  type: LoadBalancer\n  selector: {{app: web}}\n  ports:\n  - name: http\n    port: {port}\n    targetPort: 8080\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ferrolb-config\ndata:\n  config.yaml: |\n    {pools}\n"
        )
    };
    let f = write(dir.path(), "app.yaml", &manifest(80, "pools: [a]"));
    let out = k.ok(&["apply", "-f", &f]).await;
    assert_eq!(
        out,
        "service/web created\nconfigmap/ferrolb-config created\n"
    );
    let out = k.ok(&["apply", "-f", &f]).await;
    assert_eq!(
        out,
        "service/web unchanged\nconfigmap/ferrolb-config unchanged\n"
    );

    let f2 = write(dir.path(), "app2.yaml", &manifest(81, "pools: [b]"));
    let out = k.ok(&["apply", "-f", &f2]).await;
    assert_eq!(
        out,
        "service/web configured\nconfigmap/ferrolb-config configured\n"
    );
    let svc: Service = Api::namespaced(client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    let ports = svc.spec.unwrap().ports.unwrap();
    assert_eq!(
        ports.len(),
        1,
        "the old port was removed by apply: {ports:?}"
    );
    assert_eq!(ports[0].port, 81);
    assert!(ports[0].node_port.is_some());
    let cm: ConfigMap = Api::namespaced(client.clone(), "default")
        .get("ferrolb-config")
        .await
        .unwrap();
    assert_eq!(cm.data.unwrap()["config.yaml"], "pools: [b]\n");
    let jp = k
        .ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].port} {.spec.clusterIP}",
        ])
        .await;
    assert_eq!(jp, "81 198.51.100.1");

    // create -f of existing objects fails with AlreadyExists, naming the objects.
    let again = k.run(&["create", "-f", &f]).await;
    assert!(!again.ok);
    assert!(
        again.stderr.contains("Error from server (AlreadyExists)")
            && again.stderr.contains("services \"web\" already exists"),
        "{}",
        again.stderr
    );

    let out = k.ok(&["delete", "-f", &f]).await;
    assert_eq!(
        out,
        "service \"web\" deleted\nconfigmap \"ferrolb-config\" deleted\n"
    );
    let gone = k.run(&["get", "svc", "web"]).await;
    assert!(
        !gone.ok
            && gone
                .stderr
                .contains("Error from server (NotFound): services \"web\" not found"),
        "{}",
        gone.stderr
    );

    // create -f, then delete by name.
    let out = k.ok(&["create", "-f", &f]).await;
    assert_eq!(
        out,
        "service/web created\nconfigmap/ferrolb-config created\n"
    );
    assert_eq!(
        k.ok(&["delete", "svc", "web"]).await,
        "service \"web\" deleted\n"
    );
    assert_eq!(
        k.ok(&["delete", "cm", "ferrolb-config"]).await,
        "configmap \"ferrolb-config\" deleted\n"
    );
    let missing = k.run(&["delete", "cm", "ferrolb-config"]).await;
    assert!(
        !missing.ok
            && missing
                .stderr
                .contains("configmaps \"ferrolb-config\" not found")
    );
}

#[tokio::test]
async fn apply_validates_unknown_fields_and_invalid_values() {
    let (_s, _c, dir, k) = setup().await;
    let bad_field = write(
        dir.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n  bogus: 1\n",
    );
    let o = k.run(&["apply", "-f", &bad_field]).await;
    assert!(
        !o.ok && o.stderr.contains("unknown field") && o.stderr.contains("spec.bogus"),
        "{}",
        o.stderr
    );
    // With --validate=false the unknown field is dropped, as on a real server.
    k.ok(&["apply", "--validate=false", "-f", &bad_field]).await;
    let bad_value = write(
        dir.path(),
        "bad2.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web2}\nspec:\n  type: Magic\n  ports: [{port: 80}]\n",
    );
    let o = k.run(&["create", "-f", &bad_value]).await;
    assert!(
        !o.ok && o.stderr.contains("Unsupported value: \"Magic\""),
        "{}",
        o.stderr
    );
}

#[tokio::test]
async fn describe_svc_shows_events_from_the_recorder() {
    let (_s, client, _d, k) = setup().await;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc = mk_svc(
        &api,
        "web",
        json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
    )
    .await;
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ferrolb-controller".into(),
            instance: Some("ctrl-1".into()),
        },
    );
    let reference = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        name: svc.metadata.name.clone(),
        namespace: svc.metadata.namespace.clone(),
        uid: svc.metadata.uid.clone(),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Normal,
        reason: "IPAllocated".into(),
        note: Some("Assigned IP 192.0.2.10".into()),
        action: "Allocate".into(),
        secondary: None,
    };
    recorder.publish(&ev, &reference).await.unwrap();
    // The second identical event becomes a series (the recorder PATCHes the existing event).
    recorder.publish(&ev, &reference).await.unwrap();
    // An event about another object must not show.
    let other = ObjectReference {
        name: Some("other".into()),
        uid: Some("other-uid".into()),
        ..reference.clone()
    };
    let other_ev = Event {
        type_: EventType::Warning,
        reason: "Other".into(),
        note: Some("not about web".into()),
        action: "Allocate".into(),
        secondary: None,
    };
    recorder.publish(&other_ev, &other).await.unwrap();

    let out = k.ok(&["describe", "svc", "web"]).await;
    assert!(out.contains("Name:                     web"), "{out}");
    assert!(
        out.contains("Type:                     LoadBalancer"),
        "{out}"
    );
    let events = out.split("Events:").nth(1).expect("an Events section");
    let lines: Vec<&str> = events.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        vec!["Type", "Reason", "Age", "From", "Message"],
        "{out}"
    );
    assert_eq!(lines.len(), 3, "header, rule and one event: {out}");
    assert!(
        lines[2].contains("Normal")
            && lines[2].contains("IPAllocated")
            && lines[2].contains("ferrolb-controller"),
        "{out}"
    );
    assert!(
        lines[2].contains("(x2 over") && lines[2].contains("Assigned IP 192.0.2.10"),
        "{out}"
    );
    assert!(!out.contains("Other"));

    let ev_table = rows(&k.ok(&["get", "events"]).await);
    assert_eq!(
        ev_table[0],
        vec!["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    );
    assert!(
        ev_table
            .iter()
            .any(|r| r.contains(&"service/web".to_string())
                && r.contains(&"IPAllocated".to_string()))
    );
}

#[tokio::test]
async fn server_side_apply_and_conflicts() {
    let (_s, _c, dir, k) = setup().await;
    let f = write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: \"1\", b: \"2\"}\n",
    );
    assert_eq!(
        k.ok(&["apply", "--server-side", "-f", &f]).await,
        "configmap/c serverside-applied\n"
    );
    // Another manager changing a field the first owns conflicts...
    let f2 = write(
        dir.path(),
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: \"9\"}\n",
    );
    let o = k
        .run(&[
            "apply",
            "--server-side",
            "--field-manager",
            "other",
            "-f",
            &f2,
        ])
        .await;
    assert!(
        !o.ok && o.stderr.contains("conflict with \"kubectl\"") && o.stderr.contains(".data.a"),
        "{}",
        o.stderr
    );
    // ...unless forced.
    k.ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "other",
        "--force-conflicts",
        "-f",
        &f2,
    ])
    .await;
    assert_eq!(
        k.ok(&["get", "cm", "c", "-o", "jsonpath={.data.a},{.data.b}"])
            .await,
        "9,2"
    );
    // The first manager applying without b drops b (it alone owned it); a now belongs to "other".
    let f3 = write(
        dir.path(),
        "cm3.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {}\n",
    );
    k.ok(&["apply", "--server-side", "-f", &f3]).await;
    assert_eq!(
        k.ok(&["get", "cm", "c", "-o", "jsonpath={.data}"]).await,
        "{\"a\":\"9\"}"
    );
}

#[tokio::test]
async fn get_watch_prints_changes() {
    let (_s, client, _d, k) = setup().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    mk_svc(
        &api,
        "web",
        json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
    )
    .await;
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .arg("--cache-dir")
        .arg(&k.cache)
        .args(["get", "svc", "-w", "--request-timeout=20s"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    use tokio::io::AsyncReadExt;
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut patched = false;
    while !seen.contains("192.0.2.10") {
        let n = tokio::time::timeout_at(deadline, stdout.read(&mut buf))
            .await
            .expect("kubectl -w shows the new IP in time")
            .unwrap();
        assert!(n > 0, "kubectl -w ended early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        if !patched && seen.contains("<pending>") {
            api.patch_status(
                "web",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}),
                ),
            )
            .await
            .unwrap();
            patched = true;
        }
    }
    child.kill().await.unwrap();
    assert!(seen.starts_with("NAME"), "{seen}");
}

#[tokio::test]
async fn kubectl_over_tls() {
    let server = ApiServer::start(ApiServerOptions {
        tls: true,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    assert!(
        server
            .kubeconfig_yaml()
            .contains("certificate-authority-data:")
    );
    let dir = tempfile::tempdir().unwrap();
    let k = Kubectl::new(&server, &dir);
    let ns = rows(&k.ok(&["get", "ns"]).await);
    assert_eq!(ns.len(), 5);
    // kube-rs over TLS too.
    let client = server.client().await.unwrap();
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
}

#[tokio::test]
async fn the_binary_writes_a_kubeconfig_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("sub/kubeconfig");
    let help = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrolb-apiserver"))
        .arg("--help")
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("TEST AND LAB") && help.contains("NOT FOR PRODUCTION"),
        "{help}"
    );
    for flag in ["--listen", "--write-kubeconfig", "--tls"] {
        assert!(help.contains(flag), "{flag} in {help}");
    }
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ferrolb-apiserver"))
        .args(["--listen", "127.0.0.1:0"])
        // Every flag is also an environment variable.
        .env("FERROLB_APISERVER_TLS", "true")
        .env("FERROLB_APISERVER_KUBECONFIG", &kc)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !kc.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "kubeconfig not written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let written = std::fs::read_to_string(&kc).unwrap();
    assert!(
        written.contains("server: https://127.0.0.1:")
            && written.contains("certificate-authority-data:"),
        "{written}"
    );
    let k = Kubectl {
        kubeconfig: kc.clone(),
        cache: dir.path().join("cache"),
    };
    let f = write(
        dir.path(),
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}\n",
    );
    let out = k.ok(&["create", "-f", &f]).await;
    assert_eq!(out, "configmap/x created\n");
    assert_eq!(
        k.ok(&["get", "cm", "x", "-o", "jsonpath={.data.a}"]).await,
        "b"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn generators_that_send_protobuf_work() {
    let (_s, client, dir, k) = setup().await;
    // kubectl's generators send protobuf bodies.
    assert_eq!(
        k.ok(&["create", "namespace", "ferrolb-system"]).await,
        "namespace/ferrolb-system created\n"
    );
    let f = write(
        dir.path(),
        "config.yaml",
        "pools:\n- name: default\n  addresses: [192.0.2.100/30]\n",
    );
    let out = k
        .ok(&[
            "create",
            "configmap",
            "ferrolb-config",
            "-n",
            "ferrolb-system",
            &format!("--from-file=config.yaml={f}"),
            "--from-literal=x=y",
        ])
        .await;
    assert_eq!(out, "configmap/ferrolb-config created\n");
    let cm: ConfigMap = Api::namespaced(client.clone(), "ferrolb-system")
        .get("ferrolb-config")
        .await
        .unwrap();
    let data = cm.data.unwrap();
    assert_eq!(
        data["config.yaml"],
        "pools:\n- name: default\n  addresses: [192.0.2.100/30]\n"
    );
    assert_eq!(data["x"], "y");
    assert_eq!(
        k.ok(&["create", "service", "loadbalancer", "web", "--tcp=80:8080"])
            .await,
        "service/web created\n"
    );
    let svc: Service = Api::namespaced(client, "default").get("web").await.unwrap();
    let spec = svc.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    let port = &spec.ports.unwrap()[0];
    assert_eq!((port.port, port.name.as_deref()), (80, Some("80-8080")));
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
    );
    assert_eq!(spec.selector.unwrap()["app"], "web");
}

/// What the install manifests hold besides ferrolb's own kinds, one of each, in `default`.
const INSTALL_KINDS: &str = r#"apiVersion: v1
kind: ServiceAccount
metadata: {name: ctl}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ctl}
spec:
  replicas: 2
  selector: {matchLabels: {app: ctl}}
  template:
    metadata: {labels: {app: ctl}}
    spec:
      serviceAccountName: ctl
      containers: [{name: c, image: "ferrolb/controller:1"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: spk}
spec:
  selector: {matchLabels: {app: spk}}
  template:
    metadata: {labels: {app: spk}}
    spec:
      nodeSelector: {kubernetes.io/os: linux}
      containers: [{name: s, image: "ferrolb/speaker:1"}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: leases}
rules: [{apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: leases}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leases}
subjects: [{kind: ServiceAccount, name: ctl, namespace: default}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "ferrolb:svc"}
rules: [{apiGroups: [""], resources: [services], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "ferrolb:svc"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "ferrolb:svc"}
subjects: [{kind: ServiceAccount, name: ctl, namespace: default}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: ctl}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: ctl}}
"#;

#[tokio::test]
async fn workloads_rbac_and_pdbs_apply_print_and_validate() {
    use k8s_openapi::api::apps::v1::Deployment;
    let (_s, client, dir, k) = setup().await;
    let f = write(dir.path(), "install.yaml", INSTALL_KINDS);
    assert_eq!(
        k.ok(&["apply", "-f", &f]).await,
        "serviceaccount/ctl created\ndeployment.apps/ctl created\ndaemonset.apps/spk created\n\
         role.rbac.authorization.k8s.io/leases created\n\
         rolebinding.rbac.authorization.k8s.io/leases created\n\
         clusterrole.rbac.authorization.k8s.io/ferrolb:svc created\n\
         clusterrolebinding.rbac.authorization.k8s.io/ferrolb:svc created\n\
         poddisruptionbudget.policy/ctl created\n"
    );

    // Short names and kubectl's columns.
    let deploy = rows(&k.ok(&["get", "deploy"]).await);
    assert_eq!(
        deploy[0],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert_eq!(deploy[1][..4], ["ctl", "0/2", "0", "0"]);
    let ds = k.ok(&["get", "ds"]).await;
    assert!(
        ds.starts_with("NAME   DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR            AGE\n"),
        "{ds}"
    );
    assert!(ds.contains(" kubernetes.io/os=linux "), "{ds}");
    assert_eq!(rows(&k.ok(&["get", "sa"]).await)[1][..2], ["ctl", "0"]);
    let pdb = k.ok(&["get", "pdb"]).await;
    assert!(
        pdb.starts_with("NAME   MIN AVAILABLE   MAX UNAVAILABLE   ALLOWED DISRUPTIONS   AGE\n"),
        "{pdb}"
    );
    assert_eq!(rows(&pdb)[1][..4], ["ctl", "1", "N/A", "0"]);
    let rb = rows(&k.ok(&["get", "rolebinding", "-o", "wide"]).await);
    assert_eq!(rb[0][..3], ["NAME", "ROLE", "AGE"]);
    assert_eq!(rb[1][1], "Role/leases");
    assert_eq!(rb[1].last().unwrap(), "default/ctl");
    let crb = rows(&k.ok(&["get", "clusterrolebinding", "ferrolb:svc"]).await);
    assert_eq!(crb[1][..2], ["ferrolb:svc", "ClusterRole/ferrolb:svc"]);
    let roles = rows(&k.ok(&["get", "clusterroles"]).await);
    assert_eq!(roles[0], ["NAME", "CREATED", "AT"]);

    // The status subresource: status writes leave the generation, spec writes bump it.
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let created = api.get("ctl").await.unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    api.patch_status(
        "ctl",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 1}})),
    )
    .await
    .unwrap();
    let deploy = rows(&k.ok(&["get", "deploy", "ctl"]).await);
    assert_eq!(deploy[1][..4], ["ctl", "2/2", "2", "1"]);
    // A status sent to the main resource is ignored, a spec change counted.
    let scaled = api
        .patch(
            "ctl",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.metadata.generation, Some(2));
    assert_eq!(scaled.status.unwrap().ready_replicas, Some(2));
    // Applying the manifest again puts the replicas back (kubectl owns the field).
    let again = k.ok(&["apply", "-f", &f]).await;
    assert!(
        again.contains("deployment.apps/ctl configured\n"),
        "{again}"
    );
    assert!(again.contains("serviceaccount/ctl unchanged\n"), "{again}");
    let back = api.get("ctl").await.unwrap();
    assert_eq!(back.spec.unwrap().replicas, Some(2));
    assert_eq!(back.metadata.generation, Some(3));

    // The real server's checks, with its messages.
    let moved = INSTALL_KINDS.replace(
        "template:\n    metadata: {labels: {app: ctl}}",
        "template:\n    metadata: {labels: {app: other}}",
    );
    let o = k
        .run(&["apply", "-f", &write(dir.path(), "bad.yaml", &moved)])
        .await;
    assert!(
        !o.ok
            && o.stderr.contains("The Deployment \"ctl\" is invalid")
            && o.stderr
                .contains("spec.template.metadata.labels: Invalid value:")
            && o.stderr
                .contains("`selector` does not match template `labels`"),
        "{}",
        o.stderr
    );
    let rebound = INSTALL_KINDS.replace(
        "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: leases}",
        "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}",
    );
    let o = k
        .run(&["apply", "-f", &write(dir.path(), "rebound.yaml", &rebound)])
        .await;
    assert!(
        !o.ok
            && o.stderr.contains("roleRef: Invalid value:")
            && o.stderr.contains("cannot change roleRef"),
        "{}",
        o.stderr
    );
    // Nothing of the failed applies took effect.
    assert_eq!(
        k.ok(&[
            "get",
            "rolebinding",
            "leases",
            "-o",
            "jsonpath={.roleRef.kind}/{.roleRef.name}"
        ])
        .await,
        "Role/leases"
    );
    let no_ref = write(
        dir.path(),
        "noref.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nsubjects: []\n",
    );
    let o = k.run(&["create", "-f", &no_ref]).await;
    assert!(
        !o.ok && o.stderr.contains("roleRef.name: Required value"),
        "{}",
        o.stderr
    );

    assert_eq!(
        k.ok(&["delete", "-f", &f]).await,
        "serviceaccount \"ctl\" deleted\ndeployment.apps \"ctl\" deleted\ndaemonset.apps \"spk\" deleted\n\
         role.rbac.authorization.k8s.io \"leases\" deleted\n\
         rolebinding.rbac.authorization.k8s.io \"leases\" deleted\n\
         clusterrole.rbac.authorization.k8s.io \"ferrolb:svc\" deleted\n\
         clusterrolebinding.rbac.authorization.k8s.io \"ferrolb:svc\" deleted\n\
         poddisruptionbudget.policy \"ctl\" deleted\n"
    );
    assert!(api.get_opt("ctl").await.unwrap().is_none());
}
