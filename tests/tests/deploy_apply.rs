//! The install manifests against the testbed's API server:
//!
//! - `kubectl apply` of the rendered manifests creates every object, each reads back
//!   with `kubectl get`, and applying again changes nothing;
//! - the controller and the speaker, configured with exactly the flags the
//!   manifests give them, turn a LoadBalancer Service into an EXTERNAL-IP from the
//!   example pool that one node announces — the README's install-and-verify path,
//!   minus the container runtime;
//! - every API request they send on the way is recorded by a proxy and must be
//!   allowed by `ferrolb_testbed::api_access` (so by the RBAC in `deploy/`, which the
//!   manifest test holds equal to it), and every entry of the lists is used.

mod deploy_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use deploy_support::*;
use ferrolb_apiserver::{ApiServer, ApiServerOptions, RunningApiServer};
use ferrolb_speaker::RecordingDataplane;
use ferrolb_testbed::api_access::{self, ApiAccess, Install};
use ferrolb_testkit::wait_for;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Secret, Service};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

/// The first address of the example pool (deploy/config.yaml).
const FIRST_POOL_IP: &str = "192.0.2.240";
/// Upper bound of every wait; the steps take milliseconds.
const WAIT: Duration = Duration::from_secs(30);

// ---- kubectl -----------------------------------------------------------------

struct Kubectl {
    kubeconfig: std::path::PathBuf,
}

impl Kubectl {
    /// Runs kubectl with `args` and `stdin`; returns (success, stdout, stderr).
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .expect("kubectl must be on PATH (see README: Setup)");
        let mut input = child.stdin.take().expect("stdin");
        let data = stdin.unwrap_or_default().to_owned();
        let writer = tokio::spawn(async move {
            let _ = input.write_all(data.as_bytes()).await;
        });
        let out = tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .expect("kubectl finishes in time")
            .expect("kubectl runs");
        let _ = writer.await;
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn yaml_stream(docs: &[&Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml_ng::to_string(d).expect("YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

async fn start_server(dir: &Path) -> (RunningApiServer, Kubectl) {
    let server = ApiServer::start(ApiServerOptions::default())
        .await
        .expect("API server starts");
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    (server, Kubectl { kubeconfig })
}

/// `kubectl apply` of the rendered manifests: every object is created, and a second
/// apply changes nothing. Returns the rendered objects.
async fn apply_manifests(kubectl: &Kubectl) -> Vec<Value> {
    let docs = render();
    let all: Vec<&Value> = docs.iter().collect();
    // kubectl's default validation: the server checks fields (fieldValidation=Strict).
    let validate = "--validate=strict";
    let stream = yaml_stream(&all);
    let (ok, out, err) = kubectl
        .run(&["apply", validate, "-f", "-"], Some(&stream))
        .await;
    assert!(ok, "kubectl apply failed:\n{out}\n{err}");
    for d in &all {
        let group = d["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .rsplit_once('/')
            .map(|(g, _)| format!(".{g}"))
            .unwrap_or_default();
        let line = format!("{}{group}/{} created", kind(d).to_lowercase(), name(d));
        assert!(
            out.lines().any(|l| l == line),
            "expected {line:?} in:\n{out}"
        );
    }
    let versions_before = resource_versions(kubectl, &all).await;
    let (ok, out, err) = kubectl
        .run(&["apply", validate, "-f", "-"], Some(&stream))
        .await;
    assert!(ok, "second kubectl apply failed:\n{out}\n{err}");
    // kubectl always re-sends a PodDisruptionBudget's selector (its patch strategy is
    // "replace") and so prints "configured" for it; the server must still change nothing.
    let changed: Vec<&str> = out
        .lines()
        .filter(|l| !l.ends_with(" unchanged"))
        .filter(|l| *l != "poddisruptionbudget.policy/ferrolb-controller configured")
        .collect();
    assert!(
        changed.is_empty(),
        "a second apply must change nothing:\n{out}"
    );
    assert_eq!(out.lines().count(), all.len(), "{out}");
    assert_eq!(
        resource_versions(kubectl, &all).await,
        versions_before,
        "a second apply wrote to the server"
    );
    docs
}

/// `kind.group/name` and resourceVersion of each object, read back with `kubectl get`;
/// every object must exist and carry a uid.
async fn resource_versions(kubectl: &Kubectl, docs: &[&Value]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for d in docs {
        let group = d["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .rsplit_once('/')
            .map(|(g, _)| format!(".{g}"))
            .unwrap_or_default();
        let what = format!("{}{group}", kind(d).to_lowercase());
        let mut args = vec!["get", &what, name(d), "-o", "json"];
        if let Some(ns) = d["metadata"]["namespace"].as_str() {
            args.extend(["-n", ns]);
        }
        let (ok, text, err) = kubectl.run(&args, None).await;
        assert!(ok, "kubectl {args:?}: {err}");
        let got: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(got["metadata"]["name"], d["metadata"]["name"], "{args:?}");
        assert!(got["metadata"]["uid"].is_string(), "{args:?}: {text}");
        let rv = got["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        out.insert(format!("{what}/{}", name(d)), rv.to_string());
    }
    out
}

/// Whether `served` holds everything `manifest` says (the server may add defaults);
/// the path of the first difference otherwise.
fn holds(served: &Value, manifest: &Value, path: &str) -> Result<(), String> {
    match (served, manifest) {
        (Value::Object(s), Value::Object(m)) => m.iter().try_for_each(|(k, v)| {
            holds(s.get(k).unwrap_or(&Value::Null), v, &format!("{path}.{k}"))
        }),
        (Value::Array(s), Value::Array(m)) if s.len() == m.len() => s
            .iter()
            .zip(m)
            .enumerate()
            .try_for_each(|(n, (a, b))| holds(a, b, &format!("{path}[{n}]"))),
        (s, m) if s == m => Ok(()),
        _ => Err(path.to_owned()),
    }
}

#[test]
fn holds_finds_what_is_missing_or_different() {
    let served = json!({"a": {"b": 1, "c": [1, 2]}, "d": "x"});
    assert_eq!(holds(&served, &json!({"a": {"b": 1}}), ""), Ok(()));
    assert_eq!(
        holds(&served, &json!({"a": {"c": [1, 3]}}), ""),
        Err(".a.c[1]".into())
    );
    assert_eq!(
        holds(&served, &json!({"a": {"c": [1]}}), ""),
        Err(".a.c".into())
    );
    assert_eq!(holds(&served, &json!({"e": 1}), ""), Err(".e".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_apply_to_the_testbed_api_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, kubectl) = start_server(dir.path()).await;
    let rendered = apply_manifests(&kubectl).await;
    // What was applied is what the manifests say.
    let client = server.client().await.expect("client");
    let ns = Api::<Namespace>::all(client.clone())
        .get("ferrolb-system")
        .await
        .expect("namespace");
    let labels = ns.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("privileged")
    );
    // kube-rs finds every kind through discovery and reads back all the manifest says.
    for d in &rendered {
        let (group, version) = match d["apiVersion"].as_str().unwrap_or_default().split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", d["apiVersion"].as_str().unwrap_or_default()),
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind(d));
        let (ar, _caps) = kube::discovery::pinned_kind(&client, &gvk)
            .await
            .unwrap_or_else(|e| panic!("discovery of {gvk:?}: {e}"));
        let api: Api<kube::api::DynamicObject> = match d["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let got = api
            .get(name(d))
            .await
            .unwrap_or_else(|e| panic!("{} {}: {e}", kind(d), name(d)));
        let got = serde_json::to_value(&got).expect("JSON");
        if let Err(path) = holds(&got, d, "") {
            panic!(
                "{} {}: {path} differs from the manifest: {got:#}",
                kind(d),
                name(d)
            );
        }
    }
    let cm_doc = rendered
        .iter()
        .find(|d| kind(d) == "ConfigMap")
        .expect("ConfigMap");
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "ferrolb-system")
        .get("ferrolb-config")
        .await
        .expect("configmap");
    assert_eq!(serde_json::to_value(&cm.data).unwrap(), cm_doc["data"]);
    // `kubectl get` lists it as an operator would see it.
    let (ok, out, err) = kubectl
        .run(&["get", "configmap", "-n", "ferrolb-system"], None)
        .await;
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|l| l.starts_with("ferrolb-config ")),
        "{out}"
    );
    server.shutdown().await;
}

// ---- A recording proxy -------------------------------------------------------

/// One request as seen on the wire.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: Client,
    log: Arc<Mutex<Vec<Recorded>>>,
}

/// An HTTP proxy in front of the API server that records every request.
struct RecordingProxy {
    url: String,
    log: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingProxy {
    async fn start(upstream: Client) -> Self {
        let log = Arc::new(Mutex::new(Vec::new()));
        let state = ProxyState {
            upstream,
            log: log.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, log, task }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.log.lock().expect("lock").clone()
    }

    /// A kubeconfig pointing at the proxy.
    fn write_kubeconfig(&self, path: &Path) {
        let kc = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: proxy\n  cluster:\n    server: {}\n\
             contexts:\n- name: proxy\n  context:\n    cluster: proxy\n    user: proxy\n\
             current-context: proxy\nusers:\n- name: proxy\n  user: {{}}\n",
            self.url
        );
        std::fs::write(path, kc).expect("write kubeconfig");
    }

    async fn client(&self) -> Client {
        let config = kube::Config::new(self.url.parse().expect("url"));
        Client::try_from(config).expect("client")
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(st): State<ProxyState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let query: BTreeMap<String, String> = parts
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    st.log.lock().expect("lock").push(Recorded {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query,
    });
    let body = match axum::body::to_bytes(body, 16 << 20).await {
        Ok(b) => b,
        Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let mut builder = axum::http::Request::builder().method(parts.method).uri(
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
    );
    for (k, v) in &parts.headers {
        if k != axum::http::header::HOST {
            builder = builder.header(k, v);
        }
    }
    let upstream_req = builder
        .body(kube::client::Body::from(body.to_vec()))
        .expect("request");
    match st.upstream.send(upstream_req).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            Response::from_parts(parts, axum::body::Body::new(body))
        }
        Err(e) => (axum::http::StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    }
}

/// The attributes RBAC decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attrs {
    group: String,
    resource: String,
    verb: String,
    namespace: Option<String>,
    name: Option<String>,
}

/// What the API server's authorizer sees of a request (RequestInfo):
/// (group, resource[/subresource], verb, namespace, name). `None` for the
/// discovery and version endpoints, which every authenticated user may read.
fn authz_attributes(r: &Recorded) -> Option<Attrs> {
    let segs: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", _v, rest @ ..] if !rest.is_empty() => ("", rest),
        ["apis", g, _v, rest @ ..] if !rest.is_empty() => (*g, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (resource, name, sub) = match rest {
        [res] => (*res, None, None),
        [res, name] => (*res, Some(name.to_string()), None),
        [res, name, sub] => (*res, Some(name.to_string()), Some(*sub)),
        _ => panic!("unexpected path {}", r.path),
    };
    let resource = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_owned(),
    };
    let watch = r
        .query
        .get("watch")
        .is_some_and(|v| v == "true" || v == "1");
    let verb = match (r.method.as_str(), &name) {
        ("GET", Some(_)) if watch => "watch",
        ("GET", Some(_)) => "get",
        ("GET", None) if watch => "watch",
        ("GET", None) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", Some(_)) => "delete",
        ("DELETE", None) => "deletecollection",
        (m, _) => panic!("unexpected method {m} {}", r.path),
    };
    // A list or watch selecting one name by field is authorized for that name.
    let name = name.or_else(|| {
        r.query.get("fieldSelector").and_then(|fs| {
            fs.split(',')
                .find_map(|req| req.strip_prefix("metadata.name="))
                .map(str::to_owned)
        })
    });
    Some(Attrs {
        group: group.to_owned(),
        resource,
        verb: verb.to_owned(),
        namespace,
        name,
    })
}

/// The (group, resource, verb) of each request `list` allows, and a line for each
/// request it does not.
type Used = BTreeSet<(String, String, String)>;

fn sort_requests(list: &[ApiAccess], reqs: &[Recorded]) -> (Used, Vec<String>) {
    let install = Install::default();
    let mut used = BTreeSet::new();
    let mut denied = Vec::new();
    for r in reqs {
        let Some(at) = authz_attributes(r) else {
            continue;
        };
        let req = api_access::Request {
            group: &at.group,
            resource: &at.resource,
            verb: &at.verb,
            namespace: at.namespace.as_deref(),
            name: at.name.as_deref(),
        };
        if api_access::permits(list, &install, &req) {
            used.insert((at.group.clone(), at.resource.clone(), at.verb.clone()));
        } else {
            denied.push(format!("{} {} {:?} -> {req:?}", r.method, r.path, r.query));
        }
    }
    (used, denied)
}

/// Checks every recorded request against `list`; returns what was used.
fn check_requests(who: &str, list: &[ApiAccess], reqs: &[Recorded]) -> Used {
    let (used, denied) = sort_requests(list, reqs);
    assert!(
        !reqs.is_empty() && !used.is_empty(),
        "{who}: no request went through the proxy"
    );
    assert!(
        denied.is_empty(),
        "{who} made API calls that api_access (and so its RBAC) does not allow:\n{}",
        denied.join("\n")
    );
    used
}

/// Every entry of `list` but `rare` was exercised.
fn assert_all_used(who: &str, list: &[ApiAccess], used: &Used, rare: &[(&str, &str)]) {
    for a in list {
        for v in a.verbs {
            if rare.contains(&(a.resource, *v)) {
                continue;
            }
            let key = (a.group.to_owned(), a.resource.to_owned(), (*v).to_owned());
            assert!(
                used.contains(&key),
                "{who}: api_access lists {v} {} ({}) but the binary never called it here: \
                 drop it from the list and the RBAC, or exercise it",
                a.resource,
                a.group
            );
        }
    }
}

// ---- The install flow ----------------------------------------------------------

const DEMO: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
    - name: http
      port: 80
      targetPort: 8080
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-abcde
  namespace: default
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
endpoints:
  - addresses: ["203.0.113.7"]
    nodeName: node-1
    conditions: {ready: true}
ports:
  - name: http
    port: 8080
    protocol: TCP
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_binaries_give_a_service_its_external_ip_within_their_rbac() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, kubectl) = start_server(dir.path()).await;
    apply_manifests(&kubectl).await;
    let client = server.client().await.expect("client");

    // A Ready node for the speaker.
    let nodes = Api::<Node>::all(client.clone());
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "node-1"}})).unwrap(),
        )
        .await
        .expect("node");
    nodes
        .patch_status(
            "node-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}})),
        )
        .await
        .expect("node status");

    let m = Manifests::load();

    // The controller, with the Deployment's flags, through a recording proxy.
    let ctl_proxy = RecordingProxy::start(client.clone()).await;
    let ctl_kc = dir.path().join("controller.kubeconfig");
    ctl_proxy.write_kubeconfig(&ctl_kc);
    let d = m.deployment("ferrolb-controller");
    let mut env = env_of(
        only_container(pod_spec(&d.spec.as_ref().unwrap().template)),
        "ferrolb-system",
    );
    env.insert("FERROLB_KUBECONFIG".into(), ctl_kc.display().to_string());
    env.insert("FERROLB_METRICS_ADDR".into(), "127.0.0.1:0".into());
    let cli: ferrolb_controller::cli::Cli = parse_env(&env);
    // Its future is not Send (it is the binary's main task): give it a thread and a
    // runtime of its own, as its main() does.
    let (ctl_stop_tx, ctl_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let controller = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            tokio::select! {
                r = ferrolb_controller::run::run(cli.run) => panic!("the controller stopped: {r:?}"),
                _ = ctl_stop_rx => {}
            }
        });
    });

    // The speaker, with the DaemonSet's flags, through another one, answering
    // through a recording data plane instead of raw sockets.
    let spk_proxy = RecordingProxy::start(client.clone()).await;
    let ds = m.daemon_set("ferrolb-speaker");
    let env = env_of(
        only_container(pod_spec(&ds.spec.as_ref().unwrap().template)),
        "ferrolb-system",
    );
    let cli: ferrolb_speaker::Cli = parse_env(&env);
    let mut settings = cli.settings().expect("speaker settings");
    // The heartbeat socket on a loopback address and a free port of its own, so that
    // tests running beside this one cannot collide on the DaemonSet's port.
    settings.membership.bind = std::net::Ipv4Addr::LOCALHOST.into();
    settings.membership.port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port();
    let dataplane = Arc::new(RecordingDataplane::new());
    let speaker =
        ferrolb_speaker::Speaker::new(settings, spk_proxy.client().await, dataplane.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let speaker = tokio::spawn(speaker.run(async move {
        let _ = stop_rx.await;
    }));

    // The README's verification: a LoadBalancer Service gets an EXTERNAL-IP.
    let (ok, out, err) = kubectl.run(&["apply", "-f", "-"], Some(DEMO)).await;
    assert!(ok, "{out}\n{err}");
    let ip = wait_for("the Service's EXTERNAL-IP", WAIT, || async {
        let (ok, out, _) = kubectl
            .run(
                &[
                    "get",
                    "svc",
                    "web",
                    "-o",
                    "jsonpath={.status.loadBalancer.ingress[0].ip}",
                ],
                None,
            )
            .await;
        (ok && !out.trim().is_empty()).then(|| out.trim().to_owned())
    })
    .await;
    assert_eq!(ip, FIRST_POOL_IP, "the lowest address of the example pool");
    let (ok, out, err) = kubectl.run(&["get", "svc", "web"], None).await;
    assert!(ok, "{err}");
    let header = out.lines().next().unwrap_or_default();
    let row = out.lines().nth(1).unwrap_or_default();
    let col = header
        .find("EXTERNAL-IP")
        .unwrap_or_else(|| panic!("no EXTERNAL-IP column:\n{out}"));
    assert!(
        row.get(col..).is_some_and(|r| r.starts_with(FIRST_POOL_IP)),
        "{out}"
    );
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .get("web")
        .await
        .expect("svc");
    let conds = svc.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "ferrolb.io/IPAllocated" && c.status == "True"),
        "{conds:?}"
    );

    // The speaker's node announces it, holds its Lease and says so in an Event.
    let want: IpAddr = FIRST_POOL_IP.parse().unwrap();
    wait_for("the speaker to announce the IP", WAIT, || {
        let dp = dataplane.clone();
        async move { dp.announced().contains(&want).then_some(()) }
    })
    .await;
    // The controller's Lease in ferrolb-system, the speakers' in their own namespace.
    let ctl_leases = Api::<Lease>::namespaced(client.clone(), "ferrolb-system");
    let leases = Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE);
    let names = |l: Vec<Lease>| {
        l.into_iter()
            .filter_map(|l| l.metadata.name)
            .collect::<BTreeSet<_>>()
    };
    wait_for("the controller's and the speaker's Leases", WAIT, || {
        let (ctl_leases, leases) = (ctl_leases.clone(), leases.clone());
        async move {
            let ctl = names(ctl_leases.list(&ListParams::default()).await.ok()?.items);
            let spk = names(leases.list(&ListParams::default()).await.ok()?.items);
            (ctl == BTreeSet::from(["ferrolb-controller".to_owned()])
                && spk.iter().any(|n| n.contains("node-1")))
            .then_some(())
        }
    })
    .await;
    // The leader created the membership Secret.
    let secret = wait_for("the membership Secret", WAIT, || {
        let api = Api::<Secret>::namespaced(client.clone(), "ferrolb-system");
        async move { api.get_opt("ferrolb-membership").await.ok()? }
    })
    .await;
    let key = &secret.data.as_ref().expect("data")["primary"];
    assert_eq!(key.0.len(), 32);
    let events = Api::<K8sEvent>::namespaced(client.clone(), "default");
    wait_for("Events from both binaries on the Service", WAIT, || {
        let events = events.clone();
        async move {
            let evs = events.list(&ListParams::default()).await.ok()?.items;
            let reasons: BTreeSet<String> = evs.into_iter().filter_map(|e| e.reason).collect();
            (reasons.contains("IPAllocated") && reasons.contains("Announcing")).then_some(())
        }
    })
    .await;

    // The leader renews its Lease (one --renew-period after taking it).
    wait_for("the controller to renew its Lease", WAIT, || {
        let renewed = ctl_proxy.requests().iter().any(|r| {
            r.method == "PUT"
                && r.path
                    .ends_with("/namespaces/ferrolb-system/leases/ferrolb-controller")
        });
        async move { renewed.then_some(()) }
    })
    .await;

    // A graceful stop of the speaker deletes its Lease.
    let _ = stop_tx.send(());
    tokio::time::timeout(WAIT, speaker)
        .await
        .expect("the speaker stops in time")
        .expect("speaker task")
        .expect("speaker run");
    let left = names(
        leases
            .list(&ListParams::default())
            .await
            .expect("leases")
            .items,
    );
    assert!(
        !left.iter().any(|n| n.contains("node-1")),
        "speaker Lease left: {left:?}"
    );
    let _ = ctl_stop_tx.send(());
    tokio::task::spawn_blocking(move || controller.join())
        .await
        .expect("join")
        .expect("the controller ran until stopped");

    // Every API call was allowed by the lists, and every entry was needed.
    let ctl_used = check_requests("controller", api_access::CONTROLLER, &ctl_proxy.requests());
    let spk_used = check_requests("speaker", api_access::SPEAKER, &spk_proxy.requests());
    // Event patches happen only for repeats of one Event (the Recorder's series).
    assert_all_used(
        "controller",
        api_access::CONTROLLER,
        &ctl_used,
        &[("events", "patch")],
    );
    // The speaker replaces its Lease one --renew-period (10 s) after creating it, or
    // at once when the peers it cannot hear change: neither happens in this run.
    assert_all_used(
        "speaker",
        api_access::SPEAKER,
        &spk_used,
        &[("events", "patch"), ("leases", "update")],
    );

    // The endpoint slice was read by the speaker only; the controller never asked.
    assert!(!ctl_used.iter().any(|(_, r, _)| r == "endpointslices"));
    server.shutdown().await;
}

#[test]
fn authz_attributes_follow_the_api_servers_request_info() {
    let rec = |method: &str, path: &str, query: &[(&str, &str)]| Recorded {
        method: method.into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let a = |r: Recorded| authz_attributes(&r);
    let s = |x: &str| x.to_owned();
    let at = |group: &str,
              resource: &str,
              verb: &str,
              namespace: Option<String>,
              name: Option<String>| {
        Some(Attrs {
            group: s(group),
            resource: s(resource),
            verb: s(verb),
            namespace,
            name,
        })
    };
    let ns = |x: &str| Some(s(x));
    let cases = [
        (
            rec("GET", "/api/v1/services", &[("watch", "true")]),
            at("", "services", "watch", None, None),
        ),
        (
            rec("GET", "/api/v1/services", &[]),
            at("", "services", "list", None, None),
        ),
        (
            rec("PATCH", "/api/v1/namespaces/shop/services/web/status", &[]),
            at("", "services/status", "patch", ns("shop"), ns("web")),
        ),
        (
            rec(
                "GET",
                "/api/v1/namespaces/ferrolb-system/configmaps",
                &[
                    ("fieldSelector", "metadata.name=ferrolb-config"),
                    ("watch", "1"),
                ],
            ),
            at(
                "",
                "configmaps",
                "watch",
                ns("ferrolb-system"),
                ns("ferrolb-config"),
            ),
        ),
        (
            rec(
                "POST",
                "/apis/coordination.k8s.io/v1/namespaces/ferrolb-system/leases",
                &[],
            ),
            at(
                "coordination.k8s.io",
                "leases",
                "create",
                ns("ferrolb-system"),
                None,
            ),
        ),
        (
            rec(
                "DELETE",
                "/apis/coordination.k8s.io/v1/namespaces/ferrolb-system/leases/x",
                &[],
            ),
            at(
                "coordination.k8s.io",
                "leases",
                "delete",
                ns("ferrolb-system"),
                ns("x"),
            ),
        ),
        (
            rec("GET", "/api/v1/namespaces/default", &[]),
            at("", "namespaces", "get", None, ns("default")),
        ),
    ];
    for (r, want) in cases {
        assert_eq!(a(r.clone()), want, "{r:?}");
    }
    assert_eq!(a(rec("GET", "/apis/events.k8s.io/v1", &[])), None);
    assert_eq!(a(rec("GET", "/version", &[])), None);
}

#[test]
fn requests_outside_the_lists_are_reported() {
    let rec = |method: &str, path: &str, query: &[(&str, &str)]| Recorded {
        method: method.into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let reqs = [
        // Allowed: the status patch and the named ConfigMap watch.
        rec("PATCH", "/api/v1/namespaces/shop/services/web/status", &[]),
        rec(
            "GET",
            "/api/v1/namespaces/ferrolb-system/configmaps",
            &[
                ("fieldSelector", "metadata.name=ferrolb-config"),
                ("watch", "true"),
            ],
        ),
        // Not allowed: a Service's spec, an unselected ConfigMap list, another
        // namespace's Lease, a core/v1 Event.
        rec("PATCH", "/api/v1/namespaces/shop/services/web", &[]),
        rec("GET", "/api/v1/namespaces/ferrolb-system/configmaps", &[]),
        rec(
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/ferrolb-controller",
            &[],
        ),
        rec("POST", "/api/v1/namespaces/shop/events", &[]),
    ];
    let (used, denied) = sort_requests(api_access::CONTROLLER, &reqs);
    assert_eq!(used.len(), 2, "{used:?}");
    assert_eq!(denied.len(), 4, "{denied:#?}");
    assert!(denied[0].starts_with("PATCH /api/v1/namespaces/shop/services/web "));
}
