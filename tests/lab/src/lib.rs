//! The network-namespace lab: ferrolb's controller and speakers, as the unchanged
//! binaries, on a layer-2 segment of network namespaces, with the embedded API server.
//!
//! ```text
//!   root namespace (lab process)      <p>-br (bridge namespace)           <p>-n1 .. <p>-nN
//!   ┌────────────────────────────┐    ┌──────────────────────────┐        ┌────────────────────────┐
//!   │ API server 127.0.0.1:port ◄┼────┤ forwarder 192.0.2.1:6443 │        │ eth0 192.0.2.1x  ◄──┐  │
//!   │  ▲           ▲             │    │ br0 192.0.2.1/24         ├─veth───┤ speaker (NODE_NAME) │  │
//!   │  │ forwarder 127.0.0.1:p2  │    │     2001:db8::1/64       │        │ kube-lb0: Service IPs│  │
//!   │  │           ▲ controller  │    │ nft table: isolate, loss │        │ HTTP responder :80 ──┘  │
//!   │ kubectl (user), lab client │    └────────────┬─────────────┘        └────────────────────────┘
//!   └────────────────────────────┘                 │veth
//!                                     <p>-client: eth0 192.0.2.2, 2001:db8::2 (curl, ARP/NDP probes)
//! ```
//!
//! The API server, the forwarders, the HTTP responders and the kube-proxy stand-in run
//! inside the lab's own process; the controller (root namespace) and the speakers (one
//! per node namespace, under `ip netns exec`) are child processes. See [`Lab::start`].
//!
//! The speakers and the controller reach the API server only through the forwarders,
//! where the lab injects API-path faults (down, delay, failures); the lab's own client
//! and the user's kubectl go to it directly. Node-network faults (a node isolated from
//! its peers, frame loss between nodes) are nftables rules on the bridge. See
//! [`faults`], [`forward`] and [`nft`]; all of them end with the lab.
//!
//! With [`LabOptions::kubeconfig`] the lab runs against an external API server instead
//! of the embedded one: it creates its objects there, reaches it through the same
//! forwarders, and removes what it created when it ends ([`external`], [`ledger`]).
#![forbid(unsafe_code)]

pub mod bench;
pub mod bench_vlan;
pub mod cmd;
pub mod error;
pub mod external;
pub mod faults;
pub mod forward;
pub mod http;
pub mod kubeproxy;
pub mod ledger;
pub mod migrate;
pub mod netns;
pub mod nft;
pub mod ping;
pub mod plan;
pub mod probe;
pub mod procs;
pub mod report;
pub mod runs;
pub mod seed;
pub mod topology;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use nix::sys::signal::Signal;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::error::LabError;
use crate::external::{ExternalApi, Scheme};
use crate::faults::{ApiFaults, NetFaults, SplitMix64};
use crate::forward::{ApiForwarder, Place, Relay};
use crate::ledger::{Kind, Ledger};
use crate::plan::{
    API_PORT, API_V4, NodePlan, OBSERVER_MAC, OBSERVER_V4, OBSERVER_V6, Plan, UPLINK,
};
use crate::probe::{Claim, Prober};
use crate::procs::{Spec, Supervisor};
use crate::runs::Claim as RunClaim;
pub use crate::seed::Family;
use ferrolb_apiserver::{ApiServer, ApiServerOptions, RunningApiServer};

/// Name of the controller binary.
pub const CONTROLLER_BIN: &str = "ferrolb-controller";
/// Name of the speaker binary.
pub const SPEAKER_BIN: &str = "ferrolb-speaker";

/// How to build a lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Number of nodes (1..=50).
    pub nodes: usize,
    /// Directory of the ferrolb binaries; default: next to the running executable (or
    /// its parent, for test executables in `target/<profile>/deps`), or $FERROLB_BIN_DIR.
    pub bin_dir: Option<PathBuf>,
    /// Start the controller.
    pub controller: bool,
    /// Start a speaker on every node.
    pub speakers: bool,
    /// Create the example Services (web: IPv4, web6: IPv6, web-dual: dual-stack).
    pub example_services: bool,
    /// Extra arguments for every speaker.
    pub speaker_args: Vec<String>,
    /// Extra arguments for the controller.
    pub controller_args: Vec<String>,
    /// Log level of the children (`--log-level`).
    pub log_level: String,
    /// An external API server's kubeconfig (its current context): the lab runs against
    /// that server instead of the embedded one, and removes what it created there.
    pub kubeconfig: Option<PathBuf>,
    /// Add the second layer-2 segment, a stand-in for VLAN 20 ([`plan::vlan`]).
    pub vlan: bool,
}

impl Default for LabOptions {
    fn default() -> Self {
        LabOptions {
            nodes: 3,
            bin_dir: None,
            controller: true,
            speakers: true,
            example_services: true,
            speaker_args: Vec::new(),
            controller_args: Vec::new(),
            log_level: "info".into(),
            kubeconfig: None,
            vlan: false,
        }
    }
}

/// The ferrolb binaries a lab runs.
#[derive(Debug, Clone)]
struct Bins {
    controller: PathBuf,
    speaker: PathBuf,
}

/// Finds a ferrolb binary: $FERROLB_BIN_DIR, then `dir`, then beside the running
/// executable and in its parent directory (test executables live in `deps/`).
pub fn find_binary(name: &str, dir: Option<&Path>) -> Result<PathBuf, LabError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("FERROLB_BIN_DIR") {
        candidates.push(PathBuf::from(d).join(name));
    }
    if let Some(d) = dir {
        candidates.push(d.join(name));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(d) = exe.parent()
    {
        candidates.push(d.join(name));
        if let Some(p) = d.parent() {
            candidates.push(p.join(name));
        }
    }
    // Name the place the user most likely expects in the error: the explicit
    // directory if one was given, else beside the running executable.
    let expected = candidates
        .get(usize::from(std::env::var_os("FERROLB_BIN_DIR").is_some()))
        .cloned();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| LabError::MissingBinary(expected.unwrap_or_else(|| PathBuf::from(name))))
}

/// A layer-2 segment of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// The first one (br0): API server, client, every node's eth0.
    Main,
    /// The second one, a stand-in for VLAN 20 ([`plan::vlan`]).
    Vlan,
}

/// A running lab. Dropping it tears everything down (processes, namespaces, state);
/// [`Lab::shutdown`] does the same and waits for the children to exit.
pub struct Lab {
    plan: Plan,
    claim: RunClaim,
    opts: LabOptions,
    bins: Option<Bins>,
    api: Option<RunningApiServer>,
    /// The external API server, when the lab runs against one.
    external: Option<ExternalApi>,
    /// How the forwarders relay: HTTP (embedded or plain-HTTP server) or TCP (TLS).
    relay: Relay,
    /// What the lab created (or adopted) on the API server.
    ledger: Arc<Ledger>,
    /// The external server's objects have been removed (by `shutdown`).
    removed: AtomicBool,
    client: Option<kube::Client>,
    kubeconfig: PathBuf,
    lab_kubeconfig: PathBuf,
    controller_kubeconfig: PathBuf,
    /// The API forwarders: the lab network's (speakers), then the controller's.
    forwarders: Vec<ApiForwarder>,
    api_faults: watch::Sender<ApiFaults>,
    net_faults: tokio::sync::Mutex<NetFaults>,
    supervisor: Supervisor,
    tasks: Vec<JoinHandle<()>>,
    proxy_ips: Option<watch::Receiver<BTreeSet<IpAddr>>>,
    cleaned: AtomicBool,
}

impl Lab {
    /// Builds the lab: reaps stale runs, creates the namespaces, starts the API server
    /// (root namespace, 127.0.0.1), its forwarder on the lab network (192.0.2.1:6443)
    /// and the controller's (127.0.0.1, a free port), the responders, registers the Nodes and the pool, the example Services with their
    /// EndpointSlices, the kube-proxy stand-in, the controller and the speakers.
    ///
    /// Call it from a tokio runtime whose threads live as long as the lab: the children
    /// are killed by the kernel when the thread that started them exits.
    pub async fn start(opts: LabOptions) -> Result<Lab, LabError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(LabError::NotRoot);
        }
        cmd::require_program("ip")?;
        cmd::require_program("setpriv")?;
        let external = match &opts.kubeconfig {
            Some(path) => Some(ExternalApi::load(path)?),
            None => None,
        };
        let bins = if opts.controller || opts.speakers {
            Some(Bins {
                controller: find_binary(CONTROLLER_BIN, opts.bin_dir.as_deref())?,
                speaker: find_binary(SPEAKER_BIN, opts.bin_dir.as_deref())?,
            })
        } else {
            None
        };
        let claim = runs::claim()?;
        let plan = match Plan::new(&claim.prefix, opts.nodes) {
            Ok(plan) if opts.vlan => plan.with_vlan(),
            Ok(plan) => plan,
            Err(e) => {
                claim.release();
                return Err(e);
            }
        };
        let state_dir = claim.state_dir.clone();
        let ledger = Arc::new(match &external {
            Some(ext) => Ledger::persisted(&state_dir, &ext.path),
            None => Ledger::default(),
        });
        let mut lab = Lab {
            plan,
            opts,
            bins,
            api: None,
            client: None,
            kubeconfig: match &external {
                Some(ext) => ext.path.clone(),
                None => state_dir.join("kubeconfig"),
            },
            relay: match external.as_ref().map(|e| e.scheme) {
                Some(Scheme::Https) => Relay::Tcp,
                _ => Relay::Http,
            },
            external,
            ledger,
            removed: AtomicBool::new(false),
            lab_kubeconfig: state_dir.join("kubeconfig-lab-network"),
            controller_kubeconfig: state_dir.join("kubeconfig-controller"),
            forwarders: Vec::new(),
            api_faults: watch::Sender::new(ApiFaults::default()),
            net_faults: tokio::sync::Mutex::new(NetFaults::default()),
            supervisor: Supervisor::new(state_dir.join("logs")),
            tasks: Vec::new(),
            proxy_ips: None,
            claim,
            cleaned: AtomicBool::new(false),
        };
        // From here on, an error drops `lab`, which removes what was built.
        lab.build().await?;
        Ok(lab)
    }

    async fn build(&mut self) -> Result<(), LabError> {
        let t = Instant::now();
        topology::build(&self.plan)?;
        tracing::debug!(elapsed = ?t.elapsed(), "lab network built");

        let target = match &self.external {
            Some(ext) => ext.target,
            None => {
                let api = ApiServer::start(ApiServerOptions::default())
                    .await
                    .map_err(|e| {
                        LabError::Config(format!("starting the embedded API server: {e}"))
                    })?;
                api.write_kubeconfig(&self.kubeconfig).map_err(|e| {
                    LabError::Config(format!("writing {}: {e}", self.kubeconfig.display()))
                })?;
                let target = api.local_addr();
                self.api = Some(api);
                target
            }
        };
        let roll = std::sync::Arc::new(std::sync::Mutex::new(SplitMix64::from_clock()));
        let lab_fwd = forward::spawn_relay(
            Place::Netns(self.plan.bridge_ns()),
            SocketAddr::from((API_V4, API_PORT)),
            target,
            self.relay,
            self.api_faults.subscribe(),
            roll.clone(),
        )?;
        let controller_fwd = forward::spawn_relay(
            Place::Root,
            SocketAddr::from(([127, 0, 0, 1], 0)),
            target,
            self.relay,
            self.api_faults.subscribe(),
            roll,
        )?;
        write_private(
            &self.lab_kubeconfig,
            &self.child_kubeconfig(lab_fwd.local_addr()),
        )?;
        write_private(
            &self.controller_kubeconfig,
            &self.child_kubeconfig(controller_fwd.local_addr()),
        )?;
        self.forwarders.push(lab_fwd);
        self.forwarders.push(controller_fwd);
        let client = match (&self.external, &self.api) {
            (Some(ext), _) => ext.client().await?,
            (None, Some(api)) => api
                .client()
                .await
                .map_err(|e| LabError::Config(format!("kube client: {e}")))?,
            (None, None) => return Err(LabError::Config("no API server".into())),
        };
        self.client = Some(client.clone());

        for node in self.plan.nodes() {
            self.tasks
                .push(http::spawn_responder(&node.netns, &node.name)?);
        }
        seed::seed_cluster(&client, &self.plan, &self.ledger).await?;
        if self.external.is_some() {
            self.adopt_child_objects(&client).await?;
        }
        let (task, ips) =
            kubeproxy::spawn(client.clone(), self.plan.nodes().map(|n| n.netns).collect());
        self.tasks.push(task);
        self.proxy_ips = Some(ips);
        if self.opts.example_services {
            for (name, family) in seed::EXAMPLE_SERVICES {
                seed::create_service(&client, &self.plan, name, family, &self.ledger).await?;
            }
            if self.plan.has_vlan() {
                let (name, family) = seed::VLAN_EXAMPLE_SERVICE;
                seed::create_service_in(
                    &client,
                    &self.plan,
                    name,
                    family,
                    Some(seed::VLAN_POOL),
                    &self.ledger,
                )
                .await?;
            }
        }
        if self.opts.controller {
            self.start_controller()?;
        }
        if self.opts.speakers {
            for node in self.plan.nodes().collect::<Vec<_>>() {
                self.start_speaker(&node.name)?;
            }
        }
        Ok(())
    }

    /// A kubeconfig that reaches the API server through the forwarder at `via`.
    fn child_kubeconfig(&self, via: SocketAddr) -> String {
        match (&self.external, &self.api) {
            (Some(ext), _) => ext.kubeconfig_via(via),
            (None, Some(api)) => api
                .kubeconfig_yaml()
                .replace(api.url(), &format!("http://{via}")),
            (None, None) => String::new(),
        }
    }

    /// Adopts the objects the children will create on an external server under names
    /// the lab knows, when those names are free: the speakers' Leases (the speaker's
    /// `ferrolb-speaker-<node>`), the controller's leader Lease and the membership
    /// Secret (the controller's defaults; a `--controller-arg` renaming them is not
    /// followed).
    async fn adopt_child_objects(&self, client: &kube::Client) -> Result<(), LabError> {
        if self.opts.speakers {
            for node in self.plan.nodes() {
                self.ledger
                    .adopt_if_absent(
                        client,
                        Kind::Lease,
                        seed::SPEAKER_LEASE_NAMESPACE,
                        &format!("ferrolb-speaker-{}", node.name),
                    )
                    .await?;
            }
        }
        if self.opts.controller {
            for (kind, name) in [
                (Kind::Lease, "ferrolb-controller"),
                (Kind::Secret, "ferrolb-membership"),
            ] {
                self.ledger
                    .adopt_if_absent(client, kind, seed::SYSTEM_NAMESPACE, name)
                    .await?;
            }
        }
        Ok(())
    }

    /// What the lab created (or adopted) on its API server so far.
    pub fn owned_objects(&self) -> Vec<ledger::Entry> {
        self.ledger.entries()
    }

    /// Starts the controller (for a lab built without it: [`LabOptions::controller`]
    /// false, e.g. to play another tool first).
    pub fn start_controller(&self) -> Result<(), LabError> {
        let bins = self.bins()?;
        // A free port on 127.0.0.1 for the child's metrics endpoint.
        let metrics =
            ferrolb_testkit::try_free_port().map_err(LabError::io("finding a free port"))?;
        let mut argv: Vec<OsString> = vec![bins.controller.clone().into()];
        for a in [
            "--kubeconfig",
            &self.controller_kubeconfig.display().to_string(),
            "--config-namespace",
            seed::SYSTEM_NAMESPACE,
            "--config-name",
            seed::CONFIG_NAME,
            "--metrics-addr",
            &format!("127.0.0.1:{metrics}"),
            "--log-level",
            &self.opts.log_level,
        ] {
            argv.push(a.into());
        }
        argv.extend(self.opts.controller_args.iter().map(OsString::from));
        self.supervisor.start(Spec {
            name: "controller".into(),
            argv,
            env: vec![("POD_NAME".into(), "lab-controller".into())],
        })?;
        Ok(())
    }

    /// The ferrolb binaries: those found at the start, or (for a lab started without
    /// controller and speakers, which may start them later) looked up now.
    fn bins(&self) -> Result<Bins, LabError> {
        match &self.bins {
            Some(bins) => Ok(bins.clone()),
            None => Ok(Bins {
                controller: find_binary(CONTROLLER_BIN, self.opts.bin_dir.as_deref())?,
                speaker: find_binary(SPEAKER_BIN, self.opts.bin_dir.as_deref())?,
            }),
        }
    }

    /// The ferrolb-controller binary the lab runs (e.g. for its `convert` command).
    pub fn controller_binary(&self) -> Result<PathBuf, LabError> {
        Ok(self.bins()?.controller)
    }

    /// Name of the supervised child that is node `node`'s speaker.
    fn speaker_child(node: &str) -> String {
        format!("speaker-{node}")
    }

    /// Starts the speaker of `node` (again).
    pub fn start_speaker(&self, node: &str) -> Result<u32, LabError> {
        let n = self.node(node)?;
        let bins = self.bins()?;
        let mut argv: Vec<OsString> = Vec::new();
        // `ip netns exec` also remounts /sys for the namespace, so the speaker sees its
        // own interfaces there; it execs (no fork), so the pid is the speaker's.
        argv.extend(["ip", "netns", "exec"].map(OsString::from));
        argv.push(n.netns.clone().into());
        argv.push(bins.speaker.clone().into());
        argv.push("--kubeconfig".into());
        argv.push(self.lab_kubeconfig.clone().into());
        argv.push("--log-level".into());
        argv.push(self.opts.log_level.clone().into());
        argv.extend(self.opts.speaker_args.iter().map(OsString::from));
        self.supervisor.start(Spec {
            name: Self::speaker_child(node),
            argv,
            env: vec![("NODE_NAME".into(), n.name.clone())],
        })
    }

    /// Sends `signal` to the speaker of `node` (SIGKILL: a crash; SIGTERM: a graceful stop).
    pub fn signal_speaker(&self, node: &str, signal: Signal) -> Result<u32, LabError> {
        self.node(node)?;
        self.supervisor.signal(&Self::speaker_child(node), signal)
    }

    /// Whether the speaker of `node` runs.
    pub fn speaker_running(&self, node: &str) -> bool {
        self.supervisor.is_running(&Self::speaker_child(node))
    }

    /// Waits until the speaker of `node` has exited (after a signal).
    pub async fn wait_speaker_exit(&self, node: &str, within: Duration) -> Result<(), LabError> {
        let what = format!("the speaker of {node} to exit");
        wait_for(
            &what,
            within,
            Duration::from_millis(5),
            move || async move { (!self.speaker_running(node)).then_some(()) },
        )
        .await
    }

    /// Cuts `node` off from the API server (its layer-2 link stays up).
    pub async fn cut(&self, node: &str) -> Result<(), LabError> {
        topology::cut(&self.node(node)?).await
    }

    /// Reconnects `node` to the API server.
    pub async fn heal(&self, node: &str) -> Result<(), LabError> {
        topology::heal(&self.node(node)?).await
    }

    /// Takes `node`'s link down at the bridge (`up == false`: nothing reaches the node
    /// and it reaches nothing, as if it were powered off) or brings it up again.
    pub async fn set_link(&self, node: &str, up: bool) -> Result<(), LabError> {
        let n = self.node(node)?;
        let state = if up { "up" } else { "down" };
        cmd::ip_in_async(
            &self.plan.bridge_ns(),
            &["link", "set", &n.bridge_port, state],
        )
        .await
        .map(|_| ())
    }

    /// Takes `node`'s link to the second segment ([`plan::vlan`]) down at its bridge, or
    /// brings it up again; its eth0 is untouched.
    pub async fn set_vlan_link(&self, node: &str, up: bool) -> Result<(), LabError> {
        let n = self.node(node)?;
        let Some(v) = n.vlan else {
            return Err(LabError::Config(
                "this lab has no second segment (start it with --vlan)".into(),
            ));
        };
        let state = if up { "up" } else { "down" };
        cmd::ip_in_async(
            &self.plan.bridge_ns(),
            &["link", "set", &v.bridge_port, state],
        )
        .await
        .map(|_| ())
    }

    /// Whether `node` is cut off.
    pub async fn is_cut(&self, node: &str) -> Result<bool, LabError> {
        topology::is_cut(&self.node(node)?).await
    }

    /// The API-path faults in force.
    pub fn api_faults(&self) -> ApiFaults {
        self.api_faults.borrow().clone()
    }

    /// Sets the API-path faults; when the API server goes down (up), returns once every
    /// forwarder has reset its connections and stopped listening (listens again).
    pub async fn set_api_faults(&self, faults: ApiFaults) -> Result<(), LabError> {
        let needs_http = faults::needs_http(&faults);
        if self.relay == Relay::Tcp && !needs_http.is_empty() {
            return Err(LabError::Config(format!(
                "{} needs the forwarder to see HTTP requests, but against the https API server {} it relays TLS end to end (TCP): only api-down/api-up are available",
                needs_http.join(", "),
                self.external
                    .as_ref()
                    .map(|e| e.host.as_str())
                    .unwrap_or("?")
            )));
        }
        let down = faults.down;
        self.api_faults.send_replace(faults);
        for f in &self.forwarders {
            f.wait_listening(!down, Duration::from_secs(5)).await?;
        }
        Ok(())
    }

    /// The API server goes away for the speakers and the controller: their open
    /// connections (watches included) are reset, new ones refused. The lab's own client
    /// and kubectl keep working.
    pub async fn api_down(&self) -> Result<(), LabError> {
        self.set_api_faults(ApiFaults {
            down: true,
            ..self.api_faults()
        })
        .await
    }

    /// Undoes [`Lab::api_down`].
    pub async fn api_up(&self) -> Result<(), LabError> {
        self.set_api_faults(ApiFaults {
            down: false,
            ..self.api_faults()
        })
        .await
    }

    /// Every request of the speakers and the controller waits `delay` before it is
    /// forwarded (zero: none). Open watches keep streaming without delay.
    pub async fn api_delay(&self, delay: Duration) -> Result<(), LabError> {
        self.set_api_faults(ApiFaults {
            delay,
            ..self.api_faults()
        })
        .await
    }

    /// Every write (POST, PUT, PATCH, DELETE) of the speakers and the controller waits
    /// `delay` more before it is forwarded (zero: none).
    pub async fn api_delay_writes(&self, delay: Duration) -> Result<(), LabError> {
        self.set_api_faults(ApiFaults {
            write_delay: delay,
            ..self.api_faults()
        })
        .await
    }

    /// `percent` % of the requests of the speakers and the controller are answered
    /// `503 Service Unavailable` with a Status body (0: none).
    pub async fn api_fail(&self, percent: u8) -> Result<(), LabError> {
        if percent > 100 {
            return Err(LabError::Config(format!(
                "api-fail takes a percentage from 0 to 100, not {percent}"
            )));
        }
        self.set_api_faults(ApiFaults {
            fail_percent: percent,
            ..self.api_faults()
        })
        .await
    }

    /// No API-path fault at all: up, no delay, no failure.
    pub async fn api_normal(&self) -> Result<(), LabError> {
        self.set_api_faults(ApiFaults::default()).await
    }

    /// The address the controller reaches the API server at (its forwarder).
    pub fn controller_api_addr(&self) -> SocketAddr {
        self.forwarders[1].local_addr()
    }

    /// The node-network faults in force.
    pub async fn net_faults(&self) -> NetFaults {
        self.net_faults.lock().await.clone()
    }

    /// Changes the node-network faults with `change` and loads the resulting rules.
    async fn change_net_faults(&self, change: impl FnOnce(&mut NetFaults)) -> Result<(), LabError> {
        let mut current = self.net_faults.lock().await;
        let mut next = current.clone();
        change(&mut next);
        let script = nft::ruleset(&self.plan, &next)?;
        nft::apply(
            &self.plan.bridge_ns(),
            &script,
            &self.state_dir().join("faults.nft"),
        )
        .await?;
        *current = next;
        Ok(())
    }

    /// Cuts `node` off from every other node on the lab network (both directions); the
    /// API server and the client still reach it. Needs nftables.
    pub async fn isolate(&self, node: &str) -> Result<(), LabError> {
        self.node(node)?;
        self.change_net_faults(|f| {
            f.isolated.insert(node.to_string());
        })
        .await
    }

    /// Undoes [`Lab::isolate`].
    pub async fn unisolate(&self, node: &str) -> Result<(), LabError> {
        self.node(node)?;
        self.change_net_faults(|f| {
            f.isolated.remove(node);
        })
        .await
    }

    /// Drops `percent` % of the frames between nodes (not those to or from the client
    /// or the API host); 0 ends the loss. Needs nftables.
    pub async fn loss(&self, percent: u8) -> Result<(), LabError> {
        if percent > 100 {
            return Err(LabError::Config(format!(
                "loss takes a percentage from 0 to 100, not {percent}"
            )));
        }
        self.change_net_faults(|f| f.loss_percent = percent).await
    }

    /// The active faults, in the words of the lab's commands (`none` when healthy).
    pub async fn fault_summary(&self) -> String {
        faults::summary(&self.api_faults(), &self.net_faults().await)
    }

    /// Pings `to` from `from` (a node name, or `client`): `count` echo requests
    /// `interval` apart. Needs iputils-ping.
    pub async fn ping(
        &self,
        from: &str,
        to: IpAddr,
        count: u32,
        interval: Duration,
    ) -> Result<ping::PingStats, LabError> {
        let netns = if from == "client" {
            self.plan.client_ns()
        } else {
            self.node(from)?.netns
        };
        ping::ping(&netns, to, count, interval).await
    }

    /// Labels `node` excluded from load balancers and cordons it (or undoes both).
    pub async fn drain(&self, node: &str, drained: bool) -> Result<(), LabError> {
        self.node(node)?;
        seed::set_node_drained(self.client(), node, drained).await
    }

    /// Marks `node` Ready or NotReady.
    pub async fn set_ready(&self, node: &str, ready: bool) -> Result<(), LabError> {
        let n = self.node(node)?;
        seed::set_node_ready(
            self.client(),
            node,
            &[IpAddr::V4(n.v4), IpAddr::V6(n.v6)],
            ready,
        )
        .await
    }

    /// Creates a LoadBalancer Service `default/<name>` with EndpointSlices on every node.
    pub async fn create_service(&self, name: &str, family: Family) -> Result<(), LabError> {
        seed::create_service(self.client(), &self.plan, name, family, &self.ledger).await
    }

    /// [`Lab::create_service`] asking for the address pool `pool`.
    pub async fn create_service_in(
        &self,
        name: &str,
        family: Family,
        pool: &str,
    ) -> Result<(), LabError> {
        seed::create_service_in(
            self.client(),
            &self.plan,
            name,
            family,
            Some(pool),
            &self.ledger,
        )
        .await
    }

    /// The plan (names, addresses, MACs).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Node `name`'s plan.
    pub fn node(&self, name: &str) -> Result<NodePlan, LabError> {
        self.plan
            .node_named(name)
            .ok_or_else(|| LabError::UnknownNode(name.to_string()))
    }

    /// Names of the nodes.
    pub fn node_names(&self) -> Vec<String> {
        self.plan.nodes().map(|n| n.name).collect()
    }

    /// A kube client (root namespace).
    pub fn client(&self) -> &kube::Client {
        self.client
            .as_ref()
            .expect("the lab has a client once started")
    }

    /// The embedded API server (None when the lab runs against an external one).
    pub fn api_server(&self) -> Option<&RunningApiServer> {
        self.api.as_ref()
    }

    /// The external API server the lab runs against, if any.
    pub fn external_api(&self) -> Option<&ExternalApi> {
        self.external.as_ref()
    }

    /// The kubeconfig for the root namespace (kubectl, the lab's observers): the
    /// embedded server's, or the external one's file as given.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The kubeconfig used inside the lab network (speakers).
    pub fn lab_kubeconfig(&self) -> &Path {
        &self.lab_kubeconfig
    }

    /// The controller's kubeconfig (through its forwarder).
    pub fn controller_kubeconfig(&self) -> &Path {
        &self.controller_kubeconfig
    }

    /// The run's state directory (kubeconfigs, logs).
    pub fn state_dir(&self) -> &Path {
        &self.claim.state_dir
    }

    /// Path of a child's log (`controller`, `speaker-n1`, ...).
    pub fn log_path(&self, child: &str) -> PathBuf {
        self.supervisor.log_path(child)
    }

    /// The first child that exited unexpectedly, as an error with its log tail.
    pub fn check_children(&self) -> Result<(), LabError> {
        match self.supervisor.crash() {
            Some(crash) => Err(crash.into_error()),
            None => Ok(()),
        }
    }

    /// Waits until a child crashes.
    pub async fn wait_crash(&self) -> LabError {
        self.supervisor.wait_crash().await.into_error()
    }

    /// The external IPs in Service `default/<name>`'s status (empty while pending).
    pub async fn service_ips(&self, name: &str) -> Result<Vec<IpAddr>, LabError> {
        let api: Api<Service> = Api::namespaced(self.client().clone(), seed::SERVICE_NAMESPACE);
        let svc = api
            .get_opt(name)
            .await
            .map_err(LabError::kube(format!("reading Service {name}")))?;
        Ok(svc.map(|s| report::ingress_ips(&s)).unwrap_or_default())
    }

    /// Waits until Service `default/<name>` has `count` external IPs and kube-proxy's
    /// stand-in has put them on the nodes.
    pub async fn wait_service_ips(
        &self,
        name: &str,
        count: usize,
        within: Duration,
    ) -> Result<Vec<IpAddr>, LabError> {
        let what =
            format!("Service default/{name} to get {count} EXTERNAL-IP(s) served on the nodes");
        wait_for(
            &what,
            within,
            Duration::from_millis(50),
            move || async move {
                self.check_children().ok()?;
                let ips = self.service_ips(name).await.ok()?;
                let on_nodes = self.proxy_ips.as_ref()?.borrow().clone();
                (ips.len() == count && ips.iter().all(|ip| on_nodes.contains(ip))).then_some(ips)
            },
        )
        .await
        .and_then(|ips| self.check_children().map(|()| ips))
    }

    /// Asks the lab network who has `ip`, from the client's port (as the observer),
    /// `requests` times 20 ms apart, and returns every claim seen until `linger` after.
    pub async fn probe(
        &self,
        ip: IpAddr,
        requests: u32,
        linger: Duration,
    ) -> Result<Vec<Claim>, LabError> {
        self.probe_on(Segment::Main, ip, requests, linger).await
    }

    /// [`Lab::probe`] on one segment.
    pub async fn probe_on(
        &self,
        segment: Segment,
        ip: IpAddr,
        requests: u32,
        linger: Duration,
    ) -> Result<Vec<Claim>, LabError> {
        let (ns, mac, v4, v6) = match segment {
            Segment::Main => (
                self.plan.client_ns(),
                OBSERVER_MAC,
                OBSERVER_V4,
                OBSERVER_V6,
            ),
            Segment::Vlan if self.plan.has_vlan() => (
                self.plan.vlan_client_ns(),
                plan::vlan::OBSERVER_MAC,
                plan::vlan::OBSERVER_V4,
                plan::vlan::OBSERVER_V6,
            ),
            Segment::Vlan => {
                return Err(LabError::Config(
                    "this lab has no second segment (start it with --vlan)".into(),
                ));
            }
        };
        netns::in_netns_async(&ns, move || {
            let mut prober = Prober::open(UPLINK, mac, v4, v6)?;
            prober.resolve(ip, requests, Duration::from_millis(20), linger)
        })
        .await
    }

    /// The nodes that answer ARP/NDP for `ip`, sorted (by MAC; unknown MACs by their
    /// address), asked on the segment of its pool ([`Lab::segment_of`]).
    pub async fn announcers(&self, ip: IpAddr) -> Result<Vec<String>, LabError> {
        self.announcers_on(self.segment_of(ip), ip).await
    }

    /// The segment where `ip` is meant to be answered: the second one for the addresses
    /// of its pool ([`plan::vlan`]) when the lab has it, the first one otherwise.
    pub fn segment_of(&self, ip: IpAddr) -> Segment {
        let in_vlan_pool = match ip {
            IpAddr::V4(a) => plan::vlan::POOL_V4.0 <= a && a <= plan::vlan::POOL_V4.1,
            IpAddr::V6(a) => plan::vlan::POOL_V6.0 <= a && a <= plan::vlan::POOL_V6.1,
        };
        if in_vlan_pool && self.plan.has_vlan() {
            Segment::Vlan
        } else {
            Segment::Main
        }
    }

    /// [`Lab::announcers`] on one segment.
    pub async fn announcers_on(
        &self,
        segment: Segment,
        ip: IpAddr,
    ) -> Result<Vec<String>, LabError> {
        let claims = self
            .probe_on(segment, ip, 2, Duration::from_millis(150))
            .await?;
        let mut names: Vec<String> = probe::distinct_macs(&claims)
            .into_iter()
            .map(|mac| self.mac_name(mac))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The node name of `mac` (`n1` for its eth0, `n1/eth0.20` for its interface on the
    /// second segment), or the MAC itself.
    pub fn mac_name(&self, mac: [u8; 6]) -> String {
        if let Some(n) = self.plan.node_of_mac(mac) {
            return n.name;
        }
        if let Some(n) = self.plan.node_of_vlan_mac(mac) {
            return format!("{}/{}", n.name, plan::vlan::NODE_IF);
        }
        plan::fmt_mac(mac)
    }

    /// Waits until exactly one node answers for `ip` and returns it.
    pub async fn wait_single_announcer(
        &self,
        ip: IpAddr,
        within: Duration,
    ) -> Result<String, LabError> {
        let what = format!("exactly one node to answer ARP/NDP for {ip}");
        wait_for(
            &what,
            within,
            Duration::from_millis(20),
            move || async move {
                self.check_children().ok()?;
                let who = self.announcers(ip).await.ok()?;
                (who.len() == 1).then(|| who[0].clone())
            },
        )
        .await
        .and_then(|who| self.check_children().map(|()| who))
    }

    /// GETs http://ip/ from the client namespace; returns the answering node's name.
    pub async fn curl(&self, ip: IpAddr, timeout: Duration) -> Result<String, LabError> {
        netns::in_netns_async(&self.plan.client_ns(), move || http::get(ip, timeout)).await
    }

    /// The client kernel's neighbour entry for `ip`: its MAC, if it has one.
    pub async fn client_neighbour(&self, ip: IpAddr) -> Result<Option<[u8; 6]>, LabError> {
        let out = cmd::ip_in_async(
            &self.plan.client_ns(),
            &["neigh", "show", &ip.to_string(), "dev", UPLINK],
        )
        .await?;
        Ok(report::parse_neigh_lladdr(&out))
    }

    /// Runs the real kubectl against the lab (root-namespace kubeconfig).
    pub async fn kubectl(&self, args: &[&str]) -> Result<String, LabError> {
        let kubeconfig = self.kubeconfig.display().to_string();
        let mut all = vec!["--kubeconfig", kubeconfig.as_str()];
        all.extend_from_slice(args);
        cmd::run_async("kubectl", &all).await
    }

    /// Tears down the lab and waits (bounded) for its children to exit.
    pub async fn shutdown(mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.forwarders.clear();
        self.supervisor.kill_all();
        self.supervisor
            .wait_all_exited(Duration::from_secs(5))
            .await;
        if let Some(api) = self.api.take() {
            api.shutdown().await;
        }
        if self.external.is_some() && !self.removed.swap(true, Ordering::SeqCst) {
            let entries = self.ledger.entries();
            let client = self.client().clone();
            ledger::report(
                tokio::time::timeout(REMOVAL_TIMEOUT, ledger::remove_all(&client, &entries)).await,
            );
            self.ledger.discard_file();
        }
        self.cleanup();
    }

    /// Removes everything the lab created. Idempotent; safe from `Drop`.
    fn cleanup(&mut self) {
        if self.cleaned.swap(true, Ordering::SeqCst) {
            return;
        }
        self.supervisor.kill_all();
        for task in self.tasks.drain(..) {
            task.abort();
        }
        // The forwarders stop with their tasks; the fault table goes with the bridge
        // namespace below.
        self.forwarders.clear();
        self.api.take();
        // Children get SIGKILL above; give the kernel a moment to reap them so that
        // their namespaces go away with `ip netns del` rather than linger.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline
            && self
                .plan
                .namespaces()
                .iter()
                .any(|ns| !topology::pids_in(ns).is_empty())
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.remove_external_objects_blocking();
        for e in topology::destroy(&self.plan) {
            tracing::warn!(error = %e, "lab cleanup");
        }
        self.claim.release();
    }
}

impl Lab {
    /// Removes the lab's objects from the external server from a synchronous context
    /// (`Drop`: an error, a Ctrl-C during the build): a thread of its own with its own
    /// runtime and client, since the lab's runtime may be the one blocked here.
    fn remove_external_objects_blocking(&self) {
        let Some(ext) = &self.external else { return };
        if self.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        ledger::remove_blocking(&ext.path, self.ledger.entries(), REMOVAL_TIMEOUT);
        self.ledger.discard_file();
    }
}

/// Bound on removing the lab's objects from an external server.
const REMOVAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Writes `text` to `path`, readable by its owner only (it may hold credentials).
fn write_private(path: &Path, text: &str) -> Result<(), LabError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(LabError::io(format!("writing {}", path.display())))?;
    f.write_all(text.as_bytes())
        .map_err(LabError::io(format!("writing {}", path.display())))
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Polls `check` every `every` until it yields a value, or fails after `within`.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    within: Duration,
    every: Duration,
    check: F,
) -> Result<T, LabError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    ferrolb_testkit::poll(within, every, check)
        .await
        .ok_or_else(|| LabError::Timeout {
            what: what.to_string(),
            after: within,
        })
}
