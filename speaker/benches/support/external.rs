//! `BENCH_KUBECONFIG=FILE`: a benchmark against the API server of FILE's current
//! context instead of the embedded one. Everything the benchmark creates there is
//! named with a prefix of its own (its pid and start time), in namespaces of its own,
//! so that nothing collides with what the cluster holds; [`Cleanup`] deletes it at the
//! end, also when the benchmark panics.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Namespace, Node};
use kube::api::{Api, DeleteParams, ListParams};

/// The names a benchmark run uses.
#[derive(Debug, Clone)]
pub struct Names {
    /// Prefix of every cluster-scoped name ("" against the embedded server).
    pub prefix: String,
    /// Namespace of the pool ConfigMap, the membership Secret, the leader Lease.
    pub system_ns: String,
    /// Namespace of the speakers' Leases.
    pub lease_ns: String,
    /// Namespace of the Services and EndpointSlices.
    pub svc_ns: String,
}

impl Names {
    /// ferrolb's defaults, for the embedded server (which holds nothing else).
    pub fn embedded() -> Names {
        Names {
            prefix: String::new(),
            system_ns: "ferrolb-system".into(),
            lease_ns: "ferrolb-speaker-leases".into(),
            svc_ns: "default".into(),
        }
    }

    /// Names of this run's own on an external server.
    pub fn external() -> Names {
        let prefix = ferrolb_testkit::bench_run_prefix();
        Names {
            system_ns: format!("{prefix}system"),
            lease_ns: format!("{prefix}leases"),
            svc_ns: format!("{prefix}svc"),
            prefix,
        }
    }

    /// The name of a node (prefixed).
    pub fn node(&self, n: &str) -> String {
        format!("{}{n}", self.prefix)
    }

    /// The namespaces the run creates.
    pub fn namespaces(&self) -> Vec<String> {
        let mut out = vec![self.system_ns.clone(), self.lease_ns.clone()];
        if self.svc_ns != "default" {
            out.push(self.svc_ns.clone());
        }
        out
    }
}

/// `BENCH_KUBECONFIG`, if set.
pub fn bench_kubeconfig() -> Option<PathBuf> {
    std::env::var_os("BENCH_KUBECONFIG")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// A client for the current context of `path`.
pub async fn client_from(path: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(path)
        .unwrap_or_else(|e| panic!("BENCH_KUBECONFIG {}: {e}", path.display()));
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("BENCH_KUBECONFIG {}: {e}", path.display()));
    kube::Client::try_from(config).expect("kube client")
}

/// The server's current resourceVersion, from a list (etcd's revision on a real API
/// server: every write of the whole cluster advances it, not only the benchmark's);
/// None when it is not a number.
pub async fn list_resource_version(client: &kube::Client) -> Option<u64> {
    let list = Api::<Namespace>::all(client.clone())
        .list_metadata(&ListParams::default().limit(1))
        .await
        .ok()?;
    list.metadata.resource_version?.parse().ok()
}

/// Deletes, when dropped, what a run created on the external server: its Nodes, the
/// Events about them (in `default`), and its namespaces (with everything in them).
pub struct Cleanup {
    /// The kubeconfig.
    pub path: PathBuf,
    /// The run's names.
    pub names: Names,
    /// The Nodes it created (full names).
    pub nodes: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (path, names, nodes) = (self.path.clone(), self.names.clone(), self.nodes.clone());
        // A thread and runtime of its own: this may run on (or after) the bench's runtime.
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async move {
                let client = client_from(&path).await;
                let work = remove(&client, &names, &nodes);
                if tokio::time::timeout(Duration::from_secs(120), work)
                    .await
                    .is_err()
                {
                    eprintln!(
                        "cleanup: gave up after 120 s; look for names starting with {}",
                        names.prefix
                    );
                }
            });
        });
        let _ = worker.join();
    }
}

async fn remove(client: &kube::Client, names: &Names, nodes: &[String]) {
    let dp = DeleteParams::background();
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    if let Ok(list) = events.list(&ListParams::default()).await {
        for ev in list.items {
            let about = ev.involved_object.name.clone().unwrap_or_default();
            if about.starts_with(&names.prefix) && !names.prefix.is_empty() {
                let _ = events
                    .delete(&ev.metadata.name.unwrap_or_default(), &dp)
                    .await;
            }
        }
    }
    let node_api: Api<Node> = Api::all(client.clone());
    for n in nodes {
        if let Err(e) = node_api.delete(n, &dp).await {
            eprintln!("cleanup: deleting Node {n}: {e}");
        }
    }
    let ns_api: Api<Namespace> = Api::all(client.clone());
    for ns in names.namespaces() {
        if let Err(e) = ns_api.delete(&ns, &dp).await {
            eprintln!("cleanup: deleting namespace {ns}: {e}");
        }
    }
    // A real API server empties namespaces in the background; wait for it (bounded).
    for ns in names.namespaces() {
        for _ in 0..300 {
            if matches!(ns_api.get_opt(&ns).await, Ok(None)) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    println!(
        "cleanup: deleted {} Nodes and the namespaces {} from the external API server",
        nodes.len(),
        names.namespaces().join(", ")
    );
}
