//! An embedded, in-memory Kubernetes API server for tests and the lab.
//!
//! It serves, over plain HTTP or self-signed TLS, the resources ferrolb and kubectl use (Namespaces,
//! Nodes, Services, ConfigMaps, Secrets, Events, Endpoints, Pods, EndpointSlices, Leases, events.k8s.io
//! Events, and what the install manifests hold: ServiceAccounts, Deployments, DaemonSets, RBAC
//! roles and bindings, PodDisruptionBudgets, stored but not run) with kube-apiserver's
//! semantics: get/list/watch (resourceVersions, bookmarks, 410 Gone), create/update/patch/delete
//! with optimistic concurrency, the status subresource, label and field selectors, server-side
//! apply with field ownership, Service defaulting and validation (and the few checks of the
//! install kinds), discovery and Table output.
//!
//! What only kubectl needs — Table output, protobuf request bodies, server-side apply's
//! field ownership, the OpenAPI v3 documents — is in [`kubectl`]; ferrolb's binaries rely on none of it.
//!
//! It is a TEST AND LAB server: no authentication, no authorization, no persistence.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferrolb_apiserver::Error> {
//! use ferrolb_apiserver::{ApiServer, ApiServerOptions};
//! let server = ApiServer::start(ApiServerOptions::default()).await?;
//! let client = server.client().await?;
//! # drop(client);
//! server.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod discovery;
mod handlers;
pub mod kinds;
pub mod kubectl;
mod paging;
pub mod patch;
pub mod registry;
pub mod selector;
mod server;
pub mod status;
pub mod store;
mod tls;
mod verbs;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use kinds::service::{NODE_PORTS, SERVICE_V4, SERVICE_V6};

/// Errors starting or using the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Certificate generation or TLS setup failed.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// Writing the kubeconfig failed.
    #[error("cannot write kubeconfig {path}: {source}")]
    WriteKubeconfig {
        path: String,
        source: std::io::Error,
    },
    /// Building a kube client failed.
    #[error("cannot build a kube client: {0}")]
    Client(String),
}

/// How to start the server.
#[derive(Debug, Clone)]
pub struct ApiServerOptions {
    /// Address to listen on; port 0 picks a free port. Use 0.0.0.0 to be reachable from
    /// network namespaces.
    pub listen: SocketAddr,
    /// Serve HTTPS with a generated CA (its certificate goes into the kubeconfig).
    pub tls: bool,
    /// Host (name or IP) put in the kubeconfig's server URL; default: the listen IP, or 127.0.0.1
    /// when listening on an unspecified address. TLS certificates include it.
    pub advertise_host: Option<String>,
    /// Extra DNS names / IPs for the TLS certificate.
    pub tls_sans: Vec<String>,
    /// How many changes are kept for watches resuming from a resourceVersion; older ones get 410.
    pub history: usize,
    /// Interval of BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// Minor version reported by `/version` (major is 1).
    pub minor_version: String,
}

impl Default for ApiServerOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: false,
            advertise_host: None,
            tls_sans: Vec::new(),
            history: 1000,
            bookmark_interval: Duration::from_secs(5),
            minor_version: "32".into(),
        }
    }
}

/// Entry point; see [`ApiServer::start`].
pub struct ApiServer;

impl ApiServer {
    /// Binds, creates the default namespaces (default, kube-system, kube-public, kube-node-lease)
    /// and serves until [`RunningApiServer::shutdown`] or drop.
    pub async fn start(opts: ApiServerOptions) -> Result<RunningApiServer, Error> {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: opts.listen,
                source,
            })?;
        let local = listener.local_addr().map_err(|source| Error::Bind {
            addr: opts.listen,
            source,
        })?;
        let host = opts.advertise_host.clone().unwrap_or_else(|| {
            if local.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                local.ip().to_string()
            }
        });
        let tls = if opts.tls {
            let mut sans = opts.tls_sans.clone();
            sans.push(host.clone());
            if !local.ip().is_unspecified() {
                sans.push(local.ip().to_string());
            }
            Some(tls::generate(&sans)?)
        } else {
            None
        };
        let host_in_url = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{host_in_url}:{}", local.port());

        let mut store = store::Store::new(opts.history);
        seed_namespaces(&mut store);
        let (breaker, _) = tokio::sync::watch::channel(0u64);
        let shutdown = CancellationToken::new();
        let app = Arc::new(handlers::App {
            store: Mutex::new(store),
            shutdown: shutdown.clone(),
            breaker,
            bookmark_interval: opts.bookmark_interval,
            minor_version: opts.minor_version.clone(),
            server_address: format!("{host_in_url}:{}", local.port()),
        });
        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.server_config.clone()));
        let task = tokio::spawn(server::serve(
            listener,
            app.clone(),
            acceptor,
            shutdown.clone(),
        ));
        tracing::info!(%url, tls = opts.tls, "embedded API server listening");
        Ok(RunningApiServer {
            url,
            local,
            ca_pem: tls.map(|t| t.ca_pem),
            app,
            shutdown,
            task: Some(task),
        })
    }
}

fn seed_namespaces(store: &mut store::Store) {
    let now = verbs::now_rfc3339();
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] {
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "uid": verbs::new_uid(), "creationTimestamp": now,
                         "labels": {"kubernetes.io/metadata.name": ns}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        store.put("namespaces", "", ns, obj);
    }
}

/// A running server. Dropping it stops it (use [`RunningApiServer::shutdown`] to wait for that).
pub struct RunningApiServer {
    url: String,
    local: SocketAddr,
    ca_pem: Option<String>,
    app: Arc<handlers::App>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl RunningApiServer {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The CA certificate (PEM) when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A kubeconfig (YAML) for this server: one cluster, context and user (no credentials),
    /// default namespace `default`.
    pub fn kubeconfig_yaml(&self) -> String {
        let mut cluster = json!({"server": self.url});
        // The server ignores credentials, but kubectl prompts for a username on an HTTPS server
        // whose user has none; a placeholder token keeps it non-interactive.
        let mut user = json!({});
        if let Some(ca) = &self.ca_pem {
            user = json!({"token": "ferrolb-testbed-no-auth"});
            cluster["certificate-authority-data"] =
                json!(base64::engine::general_purpose::STANDARD.encode(ca));
        }
        let cfg = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "ferrolb-testbed", "cluster": cluster}],
            "contexts": [{"name": "ferrolb-testbed", "context": {"cluster": "ferrolb-testbed", "user": "ferrolb-testbed", "namespace": "default"}}],
            "current-context": "ferrolb-testbed",
            "users": [{"name": "ferrolb-testbed", "user": user}],
            "preferences": {},
        });
        serde_yaml_ng::to_string(&cfg).unwrap_or_default()
    }

    /// Writes [`Self::kubeconfig_yaml`] to `path` (mode 0600, atomically), creating parent directories.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        let err = |source| Error::WriteKubeconfig {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        // Written beside and renamed into place, so a reader never sees half a file.
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, self.kubeconfig_yaml()).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)?;
        Ok(())
    }

    /// A kube client for this server.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())
            .map_err(|e| Error::Client(e.to_string()))?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| Error::Client(e.to_string()))?;
        kube::Client::try_from(config).map_err(|e| Error::Client(e.to_string()))
    }

    /// Ends every open watch now (clients see their stream close and must re-watch or re-list),
    /// as when an API server restarts or a connection breaks.
    pub fn break_watches(&self) {
        self.app.breaker.send_modify(|g| *g += 1);
    }

    /// Forgets the change history: watches from any earlier resourceVersion get 410 Gone,
    /// as after an etcd compaction.
    pub fn compact(&self) {
        self.app.lock_store().compact();
    }

    /// Simulates an API server restart: history compacted and every watch broken.
    pub fn simulate_restart(&self) {
        self.compact();
        self.break_watches();
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.app.lock_store().current_rv()
    }

    /// Stops serving and waits for the server task to end.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningApiServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
