//! Shared harness of the election tests: an embedded API server, objects built with
//! small helpers, speakers run in-process with a recording data plane, and a TCP proxy
//! that can cut a speaker off the API server.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrolb_apiserver::{ApiServer, ApiServerOptions, RunningApiServer};
use ferrolb_core::election::rendezvous_pick;
use ferrolb_speaker::{RecordingDataplane, Settings, Speaker};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, LoadBalancerIngress, LoadBalancerStatus, Namespace, Node, NodeCondition, NodeStatus,
    Service, ServicePort, ServiceSpec, ServiceStatus,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const NS: &str = "ferrolb-system";

/// An embedded API server with the speaker namespace and the membership Secret
/// created. Speakers run in-process, each with its heartbeat socket on its own loopback
/// address (its Node's InternalIP, 127.0.0.x) and the cluster's port.
pub struct Cluster {
    pub server: RunningApiServer,
    pub client: Client,
    /// The heartbeat port of this cluster's speakers.
    pub port: u16,
    addrs: Mutex<BTreeMap<String, std::net::Ipv4Addr>>,
}

/// A UDP port free on every 127.0.0.x address now (bound on 0.0.0.0, then released).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.local_addr())
        .expect("a free UDP port")
        .port()
}

/// The membership Secret with a key made for this test run.
pub fn membership_secret(key: &[u8]) -> k8s_openapi::api::core::v1::Secret {
    k8s_openapi::api::core::v1::Secret {
        metadata: ObjectMeta {
            name: Some("ferrolb-membership".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "primary".to_string(),
            k8s_openapi::ByteString(key.to_vec()),
        )])),
        ..Default::default()
    }
}

/// A key unique to this process and instant (tests only; never a real secret).
pub fn test_key() -> Vec<u8> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("ferrolb-test-key-{}-{nanos:032}", std::process::id()).into_bytes()
}

impl Cluster {
    pub async fn start() -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
        let server = ApiServer::start(ApiServerOptions::default())
            .await
            .expect("API server starts");
        let client = server.client().await.expect("client");
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(NS.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace");
        Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), NS)
            .create(&PostParams::default(), &membership_secret(&test_key()))
            .await
            .expect("membership secret");
        Self {
            server,
            client,
            port: free_udp_port(),
            addrs: Mutex::default(),
        }
    }

    /// The loopback address standing for `node`'s InternalIP.
    pub fn node_addr(&self, node: &str) -> std::net::Ipv4Addr {
        let mut addrs = self.addrs.lock().unwrap();
        let next = addrs.len() as u8 + 10;
        *addrs
            .entry(node.to_string())
            .or_insert(std::net::Ipv4Addr::new(127, 0, 0, next))
    }

    /// Default settings for `node`'s speaker in this cluster.
    pub fn settings(&self, node: &str) -> Settings {
        let mut s = Settings::new(node);
        s.namespace = NS.into();
        s.membership.bind = IpAddr::V4(self.node_addr(node));
        s.membership.port = self.port;
        s
    }

    pub async fn add_node(&self, name: &str, ready: bool, labels: &[(&str, &str)]) {
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: None,
            status: None,
        };
        let api = Api::<Node>::all(self.client.clone());
        api.create(&PostParams::default(), &node)
            .await
            .expect("node");
        self.set_node_ready(name, ready).await;
    }

    pub async fn set_node_ready(&self, name: &str, ready: bool) {
        let status = NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            addresses: Some(vec![k8s_openapi::api::core::v1::NodeAddress {
                type_: "InternalIP".into(),
                address: self.node_addr(name).to_string(),
            }]),
            ..Default::default()
        };
        Api::<Node>::all(self.client.clone())
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": status })),
            )
            .await
            .expect("node status");
    }

    pub async fn label_node(&self, name: &str, key: &str, value: Option<&str>) {
        Api::<Node>::all(self.client.clone())
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "metadata": { "labels": { key: value } } })),
            )
            .await
            .expect("label node");
    }

    /// A LoadBalancer Service in `default` with `ip` in its status and one ready
    /// endpoint on each of `endpoint_nodes`.
    pub async fn add_service(&self, name: &str, ip: IpAddr, local: bool, endpoint_nodes: &[&str]) {
        let svc = Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                external_traffic_policy: Some(if local { "Local" } else { "Cluster" }.into()),
                ports: Some(vec![ServicePort {
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        };
        let api = Api::<Service>::namespaced(self.client.clone(), "default");
        api.create(&PostParams::default(), &svc)
            .await
            .expect("service");
        let status = ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    ip: Some(ip.to_string()),
                    ..Default::default()
                }]),
            }),
            ..Default::default()
        };
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await
        .expect("service status");
        let eps: Vec<(&str, bool)> = endpoint_nodes.iter().map(|n| (*n, true)).collect();
        self.set_endpoints(name, &eps).await;
    }

    /// Replaces the Service's EndpointSlice with one endpoint per `(node, ready)`.
    pub async fn set_endpoints(&self, svc: &str, eps: &[(&str, bool)]) {
        let slice = EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{svc}-slice")),
                namespace: Some("default".into()),
                labels: Some(BTreeMap::from([(
                    "kubernetes.io/service-name".to_string(),
                    svc.to_string(),
                )])),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: eps
                .iter()
                .enumerate()
                .map(|(i, (node, ready))| Endpoint {
                    addresses: vec![format!("203.0.113.{}", i + 1)],
                    node_name: Some(node.to_string()),
                    conditions: Some(EndpointConditions {
                        ready: Some(*ready),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ports: None,
        };
        let api = Api::<EndpointSlice>::namespaced(self.client.clone(), "default");
        let name = format!("{svc}-slice");
        match api.get_opt(&name).await.expect("get slice") {
            Some(old) => {
                let mut new = slice;
                new.metadata.resource_version = old.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &new)
                    .await
                    .expect("replace slice");
            }
            None => {
                api.create(&PostParams::default(), &slice)
                    .await
                    .expect("create slice");
            }
        }
    }

    /// Writes the pool ConfigMap with `config_yaml` as its `config.yaml`.
    pub async fn set_config(&self, config_yaml: &str) {
        let api = Api::<ConfigMap>::namespaced(self.client.clone(), NS);
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some("ferrolb-config".into()),
                namespace: Some(NS.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "config.yaml".to_string(),
                config_yaml.to_string(),
            )])),
            ..Default::default()
        };
        match api.get_opt("ferrolb-config").await.expect("get cm") {
            Some(old) => {
                let mut new = cm;
                new.metadata.resource_version = old.metadata.resource_version;
                api.replace("ferrolb-config", &PostParams::default(), &new)
                    .await
                    .expect("replace cm");
            }
            None => {
                api.create(&PostParams::default(), &cm)
                    .await
                    .expect("create cm");
            }
        }
    }

    /// Events (events.k8s.io/v1) about Service `name` in `default`.
    pub async fn service_events(&self, name: &str) -> Vec<K8sEvent> {
        self.events_about("Service", name).await
    }

    /// Events (events.k8s.io/v1) in `default` about the object of `kind` named `name`
    /// (Services there, and cluster-scoped objects such as Nodes).
    pub async fn events_about(&self, kind: &str, name: &str) -> Vec<K8sEvent> {
        Api::<K8sEvent>::namespaced(self.client.clone(), "default")
            .list(&Default::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                    && e.regarding.as_ref().and_then(|r| r.kind.as_deref()) == Some(kind)
            })
            .collect()
    }

    pub async fn lease(&self, node: &str) -> Option<Lease> {
        Api::<Lease>::namespaced(self.client.clone(), NS)
            .get_opt(&format!("ferrolb-speaker-{node}"))
            .await
            .expect("get lease")
    }

    /// Starts a speaker with `settings` talking to the API server through `client`.
    pub async fn speaker_with(&self, settings: Settings, client: Client) -> SpeakerHandle {
        let dp = Arc::new(RecordingDataplane::new());
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let speaker = Speaker::new(settings.clone(), client, dp.clone());
        let task = tokio::spawn(async move {
            speaker
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
                .expect("speaker runs");
        });
        SpeakerHandle {
            node: settings.node_name.clone(),
            dp,
            task: Some(task),
            stop: Some(stop_tx),
        }
    }

    pub async fn speaker(&self, node: &str) -> SpeakerHandle {
        self.speaker_with(self.settings(node), self.client.clone())
            .await
    }
}

pub struct SpeakerHandle {
    pub node: String,
    pub dp: Arc<RecordingDataplane>,
    task: Option<JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
}

impl SpeakerHandle {
    /// Crash: every task of the speaker stops at once, nothing is cleaned up. (Its data
    /// plane keeps the last set, as a frozen process would; a killed process's sockets
    /// close, so callers ignore a killed speaker's set.)
    pub fn kill(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Graceful shutdown (what SIGTERM triggers in the binary); waits for it to finish.
    pub async fn terminate(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("speaker stops within 10 s")
                .expect("speaker task ends cleanly");
        }
    }

    pub fn announced(&self) -> BTreeSet<IpAddr> {
        self.dp.announced()
    }
}

impl Drop for SpeakerHandle {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Who announces each IP among `speakers`; panics when two announce one IP.
pub fn announcers(speakers: &[&SpeakerHandle]) -> BTreeMap<IpAddr, String> {
    let mut out = BTreeMap::new();
    for s in speakers {
        for ip in s.announced() {
            if let Some(other) = out.insert(ip, s.node.clone()) {
                panic!("{ip} announced by both {other} and {}", s.node);
            }
        }
    }
    out
}

/// The expected announcer of `ip` among `nodes` (all eligible): the pure election's
/// rendezvous pick.
pub fn expected(nodes: &[&str], ip: IpAddr) -> String {
    rendezvous_pick(nodes.iter().copied(), ip)
        .expect("a node")
        .to_owned()
}

/// `i`-th documentation IPv4 address (198.51.100.0/24, then 203.0.113.0/24).
pub fn doc_ip(i: u32) -> IpAddr {
    let base = if i < 256 {
        u32::from(std::net::Ipv4Addr::new(198, 51, 100, 0)) + i
    } else {
        u32::from(std::net::Ipv4Addr::new(203, 0, 113, 0)) + (i - 256)
    };
    IpAddr::V4(base.into())
}

/// Checks from recorded histories that no two speakers ever announced `ip` at the same
/// time. `killed` gives the instant each killed speaker died (its answering stopped then).
pub fn assert_no_overlap(speakers: &[&SpeakerHandle], ip: IpAddr, killed: &[(&str, Instant)]) {
    // Intervals [start, end) during which each speaker announced ip.
    let mut intervals: Vec<(Instant, Option<Instant>, String)> = Vec::new();
    for s in speakers {
        let mut start: Option<Instant> = None;
        for (t, set) in s.dp.history() {
            match (start, set.contains(&ip)) {
                (None, true) => start = Some(t),
                (Some(st), false) => {
                    intervals.push((st, Some(t), s.node.clone()));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(st) = start {
            // Still announcing, or killed while announcing (its sockets would close then).
            let end = killed.iter().find(|(n, _)| *n == s.node).map(|(_, t)| *t);
            intervals.push((st, end, s.node.clone()));
        }
    }
    intervals.sort_by_key(|i| i.0);
    for w in intervals.windows(2) {
        let (_, end_a, node_a) = &w[0];
        let (start_b, _, node_b) = &w[1];
        match end_a {
            Some(end) => assert!(
                end <= start_b,
                "{ip}: {node_b} started {:?} before {node_a} stopped",
                end.duration_since(*start_b)
            ),
            None => panic!("{ip}: {node_b} started while {node_a} still announced"),
        }
    }
}

/// A TCP proxy in front of the API server that can cut every connection, to partition
/// one speaker from the API server while the others keep talking to it.
pub struct Proxy {
    pub addr: SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, cut_rx) = tokio::sync::watch::channel(false);
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let conns2 = conns.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut down, _)) = listener.accept().await else {
                    return;
                };
                if *cut_rx.borrow() {
                    drop(down); // refused: closed at once
                    continue;
                }
                let h = tokio::spawn(async move {
                    if let Ok(mut up) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
                conns2.lock().unwrap().push(h);
            }
        });
        Self {
            addr,
            cut,
            task,
            conns,
        }
    }

    /// Cuts every open connection and refuses new ones (until `heal`).
    pub fn cut(&self) {
        self.cut.send_replace(true);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    pub fn heal(&self) {
        self.cut.send_replace(false);
    }

    /// A kube client whose requests go through the proxy.
    pub async fn client(&self) -> Client {
        let yaml = format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: p, cluster: {{server: 'http://{}'}}}}]\n\
             contexts: [{{name: p, context: {{cluster: p, user: p}}}}]\ncurrent-context: p\n\
             users: [{{name: p, user: {{}}}}]\n",
            self.addr
        );
        let kc = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig");
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .expect("config");
        Client::try_from(config).expect("client")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}
