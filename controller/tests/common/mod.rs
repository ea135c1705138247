//! Harness of the controller's integration tests: an embedded API server on
//! loopback, the real `ferrolb-controller` binary against it, and small
//! builders and bounded waits.
#![allow(dead_code)]

pub mod forwarder;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ferrolb_testkit::{KillOnDrop, free_port, wait_for};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

pub const NS: &str = "ferrolb-system";
pub const CM: &str = "ferrolb-config";

/// A running `ferrolb-controller` process, killed on drop.
pub struct ControllerProc {
    pub child: KillOnDrop,
    pub metrics: String,
    pub identity: String,
}

impl ControllerProc {
    /// Starts the binary with short leader-election timers.
    pub fn start(kubeconfig: &PathBuf, identity: &str) -> Self {
        Self::start_with(kubeconfig, identity, &[])
    }

    /// Starts the binary with short leader-election timers and these extra flags.
    pub fn start_with(kubeconfig: &PathBuf, identity: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
            .args(["--kubeconfig"])
            .arg(kubeconfig)
            .args(extra)
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--identity", identity])
            .args(["--lease-duration", "2s", "--renew-period", "300ms"])
            .args(["--log-level", "info,ferrolb_controller=debug"])
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("FERROLB_TEST_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start ferrolb-controller");
        ControllerProc {
            child: KillOnDrop::new(child),
            metrics: format!("127.0.0.1:{port}"),
            identity: identity.into(),
        }
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        self.child.running()
    }

    /// SIGKILL, as when a node dies.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// SIGTERM and wait for exit (SIGKILL after 10 s).
    pub fn terminate(&mut self) {
        self.child.terminate(Duration::from_secs(10));
    }

    /// GET a path of the metrics endpoint: (status code, body).
    pub async fn http_get(&self, path: &str) -> Option<(u16, String)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&self.metrics).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.ok()?;
        let code = buf.split_whitespace().nth(1)?.parse().ok()?;
        let body = buf
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Some((code, body))
    }

    /// The value of a metric sample line (exact name with labels).
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let (_, body) = self.http_get("/metrics").await?;
        body.lines()
            .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
    }
}

/// Creates the namespace if needed.
pub async fn ensure_namespace(client: &Client, name: &str) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    let _ = api.create(&PostParams::default(), &ns).await;
}

/// Writes the pool ConfigMap (ferrolb format) with this config.yaml.
pub async fn set_config(client: &Client, yaml: &str) {
    ensure_namespace(client, NS).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), NS);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": CM, "namespace": NS},
        "data": {"config.yaml": yaml}
    }))
    .unwrap();
    match api.get_opt(CM).await.unwrap() {
        Some(cur) => {
            let mut next = cm;
            next.metadata.resource_version = cur.metadata.resource_version;
            api.replace(CM, &PostParams::default(), &next)
                .await
                .unwrap();
        }
        None => {
            api.create(&PostParams::default(), &cm).await.unwrap();
        }
    }
}

/// A LoadBalancer Service builder.
pub fn mk_service(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP"}]}
    })
}

/// Creates a Service from a JSON value.
pub async fn create_service(client: &Client, v: serde_json::Value) -> Service {
    let ns = v["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let svc: Service = serde_json::from_value(v).unwrap();
    Api::<Service>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap()
}

pub async fn delete_service(client: &Client, name: &str) {
    Api::<Service>::namespaced(client.clone(), "default")
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
}

pub async fn get_service(client: &Client, name: &str) -> Service {
    Api::<Service>::namespaced(client.clone(), "default")
        .get(name)
        .await
        .unwrap()
}

/// The ingress IPs in the Service's status.
pub fn ingress_ips(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .map(|i| i.iter().filter_map(|i| i.ip.clone()).collect())
        .unwrap_or_default()
}

/// ferrolb's condition on the Service: (status, reason, message).
pub fn condition(svc: &Service) -> Option<(String, String, String)> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "ferrolb.io/IPAllocated")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Waits until the Service has exactly `n` ingress IPs and returns them.
pub async fn wait_ips(client: &Client, name: &str, n: usize) -> Vec<String> {
    wait_for(
        &format!("{n} IP(s) on {name}"),
        Duration::from_secs(15),
        || async {
            let ips = ingress_ips(&get_service(client, name).await);
            (ips.len() == n).then_some(ips)
        },
    )
    .await
}

/// Waits for ferrolb's condition with this status and returns (reason, message).
pub async fn wait_condition(client: &Client, name: &str, status: &str) -> (String, String) {
    wait_for(
        &format!("condition {status} on {name}"),
        Duration::from_secs(15),
        || async {
            let (s, r, m) = condition(&get_service(client, name).await)?;
            (s == status).then_some((r, m))
        },
    )
    .await
}

/// Events about an object, as (type, reason, note), from events.k8s.io/v1.
pub async fn events_for(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Vec<(String, String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}

/// Waits for an Event with this reason on the object and returns its note.
pub async fn wait_event(client: &Client, namespace: &str, name: &str, reason: &str) -> String {
    wait_for(
        &format!("event {reason} on {namespace}/{name}"),
        Duration::from_secs(15),
        || async {
            events_for(client, namespace, name)
                .await
                .into_iter()
                .find(|e| e.1 == reason)
                .map(|e| e.2)
        },
    )
    .await
}

/// Labels helper.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// An embedded API server on loopback with a kubeconfig for the binary.
pub struct Lab {
    pub server: ferrolb_apiserver::RunningApiServer,
    pub client: Client,
    pub kubeconfig: PathBuf,
    dir: PathBuf,
}

impl Lab {
    pub async fn start() -> Self {
        let server = ferrolb_apiserver::ApiServer::start(Default::default())
            .await
            .expect("start API server");
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("ferrolb-ctl-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).unwrap();
        let client = server.client().await.unwrap();
        // As installed by deploy/: the namespace exists, the ConfigMap may not.
        ensure_namespace(&client, NS).await;
        Lab {
            server,
            client,
            kubeconfig,
            dir,
        }
    }
}

impl Lab {
    /// A kubeconfig in the lab's directory whose server is `addr` (a forwarder
    /// to this lab's API server).
    pub fn kubeconfig_via(&self, addr: std::net::SocketAddr) -> PathBuf {
        let yaml = self
            .server
            .kubeconfig_yaml()
            .replace(self.server.url(), &format!("http://{addr}"));
        assert!(
            yaml.contains(&addr.to_string()),
            "server URL not replaced: {yaml}"
        );
        let path = self.dir.join(format!("kubeconfig-{}", addr.port()));
        std::fs::write(&path, yaml).unwrap();
        path
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
