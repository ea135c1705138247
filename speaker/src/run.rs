//! The speaker's kube shell: it wires the tasks and hands over on shutdown.
//!
//! Tasks (all owned by one `JoinSet`, so dropping or aborting [`Speaker::run`] stops
//! every one of them):
//! - reflectors for Services, EndpointSlices, Nodes, the pool ConfigMap and the
//!   membership Secret ([`crate::watch`]), which wake the election loop on every change;
//! - the membership ([`crate::membership`]): heartbeats on the node network, the
//!   speakers' liveness;
//! - the API probe ([`crate::api_probe`]): how fresh this node's view is;
//! - the Lease renewer and the Lease watch ([`crate::renew`]): visibility, and the
//!   reports of unreachable peers;
//! - the Event publisher and the strictARP check;
//! - the election loop ([`crate::elector`]), which drives the [`Dataplane`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrolb_core::membership::MembershipConfig;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::api_probe::{ApiContact, probe_loop};
use crate::cli::Settings;
use crate::dataplane::Dataplane;
use crate::elector::{ElectionLoop, Stores};
use crate::error::SpeakerError;
use crate::events::{NoticeSink, STRICT_ARP_CHECK, strict_arp_loop};
use crate::http::Health;
use crate::lease::{LeaseWriter, Reports};
use crate::membership::SharedMembership;
use crate::metrics::SpeakerMetrics;
use crate::renew::{Published, lease_watch, renew_loop};
use crate::slim::{SlimEndpointSlice, SlimNode, SlimService, trim_node, trim_service, trim_slice};
use crate::watch::spawn_reflector;

/// Upper bound on the shutdown steps that talk to the API server.
const SHUTDOWN_API_TIMEOUT: Duration = Duration::from_secs(2);

/// One speaker: everything [`Speaker::run`] needs.
pub struct Speaker {
    settings: Settings,
    client: Client,
    dataplane: Arc<dyn Dataplane>,
    metrics: Arc<SpeakerMetrics>,
    health: Arc<Health>,
}

impl Speaker {
    /// A speaker for `settings.node_name` talking to the API server through `client`
    /// and answering through `dataplane`.
    pub fn new(settings: Settings, client: Client, dataplane: Arc<dyn Dataplane>) -> Self {
        let metrics = Arc::new(SpeakerMetrics::new(dataplane.clone()));
        Self {
            settings,
            client,
            dataplane,
            metrics,
            health: Arc::new(Health::default()),
        }
    }

    /// The speaker's metrics (for the HTTP endpoint).
    pub fn metrics(&self) -> Arc<SpeakerMetrics> {
        self.metrics.clone()
    }

    /// The speaker's readiness (for the HTTP endpoint).
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Runs until `shutdown` completes, then hands over gracefully: stops answering,
    /// says goodbye on the node network so that peers take over at once, deletes its
    /// Lease, and returns.
    ///
    /// Fails at once when the heartbeat socket cannot be bound. Dropping the returned
    /// future instead (a crash) stops every task; peers then take over when the peer
    /// timeout expires.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), SpeakerError> {
        let s = &self.settings;
        let t = s.timers;
        let socket = crate::membership::bind(s.membership.bind, s.membership.port)
            .await
            .map_err(|e| SpeakerError::Membership {
                addr: std::net::SocketAddr::new(s.membership.bind, s.membership.port),
                source: e,
            })?;
        let socket = Arc::new(socket);
        let contact = Arc::new(ApiContact::default());
        let config = MembershipConfig {
            cluster: s.membership.cluster.clone(),
            heartbeat_interval: t.heartbeat_interval,
            peer_timeout: t.peer_timeout,
            packet_budget: MembershipConfig::default().packet_budget,
            api_stale_after: t.api_stale_after,
        };
        config.check(&s.node_name).map_err(|e| {
            SpeakerError::InvalidFlag(format!(
                "--node-name {:?} / --cluster-name {:?} do not fit in a heartbeat: {e}",
                s.node_name, s.membership.cluster
            ))
        })?;
        let membership = Arc::new(SharedMembership::new(&s.node_name, config, contact.clone()));
        let wake = Arc::new(Notify::new());
        let reports = Arc::new(Mutex::new(Reports::new(t.lease_duration)));
        let mut tasks = JoinSet::new();

        let stores = Stores {
            services: spawn_reflector(
                &mut tasks,
                &wake,
                Api::<SlimService>::all(self.client.clone()),
                watcher::Config::default().page_size(100),
                trim_service,
            ),
            slices: spawn_reflector(
                &mut tasks,
                &wake,
                Api::<SlimEndpointSlice>::all(self.client.clone()),
                watcher::Config::default().page_size(100),
                trim_slice,
            ),
            nodes: spawn_reflector(
                &mut tasks,
                &wake,
                Api::<SlimNode>::all(self.client.clone()),
                watcher::Config::default(),
                trim_node,
            ),
            config: spawn_reflector(
                &mut tasks,
                &wake,
                Api::<ConfigMap>::namespaced(self.client.clone(), &s.config_namespace),
                watcher::Config::default().fields(&format!("metadata.name={}", s.config_name)),
                |cm: &mut ConfigMap| cm.metadata.managed_fields = None,
            ),
            secret: spawn_reflector(
                &mut tasks,
                &wake,
                Api::<Secret>::namespaced(self.client.clone(), &s.config_namespace),
                watcher::Config::default()
                    .fields(&format!("metadata.name={}", s.membership.secret)),
                |x: &mut Secret| x.metadata.managed_fields = None,
            ),
        };

        tasks.spawn(crate::membership::run(
            membership.clone(),
            socket.clone(),
            wake.clone(),
            self.metrics.clone(),
        ));
        tasks.spawn(link_watch(self.dataplane.clone(), wake.clone()));
        tasks.spawn(probe_loop(
            self.client.clone(),
            contact.clone(),
            wake.clone(),
            t.api_probe_period,
            t.api_stale_after,
            t.api_stale_after,
        ));
        tasks.spawn(lease_watch(
            Api::<Lease>::namespaced(self.client.clone(), &s.namespace),
            reports.clone(),
            wake.clone(),
        ));
        let (published_tx, published_rx) = watch::channel(Published {
            link_ok: self.dataplane.link_ok(),
            unreachable: Vec::new(),
        });
        let mut renewer = TaskGuard(tokio::spawn(renew_loop(
            LeaseWriter::new(
                self.client.clone(),
                &s.namespace,
                &s.node_name,
                t.lease_duration,
            ),
            published_rx,
            self.metrics.clone(),
            s.node_name.clone(),
            t.renew_period,
        )));
        let (events, publisher) =
            crate::events::start(self.client.clone(), &s.node_name, &self.metrics);
        tasks.spawn(strict_arp_loop(
            events.clone(),
            s.node_name.clone(),
            stores.nodes.clone(),
            self.dataplane.clone(),
            self.metrics.clone(),
            STRICT_ARP_CHECK,
        ));
        let notices = NoticeSink::new(events, s.node_name.clone(), stores.services.clone());

        let mut elector = ElectionLoop::new(
            s.clone(),
            stores,
            membership.clone(),
            contact,
            reports,
            wake,
            self.dataplane.clone(),
            self.metrics.clone(),
            self.health.clone(),
            notices,
            published_tx,
        );

        tracing::info!(node = %s.node_name, membership = %socket.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            heartbeat_interval = ?t.heartbeat_interval, peer_timeout = ?t.peer_timeout,
            "speaker starting");
        tokio::select! {
            () = shutdown => {}
            () = elector.run_loop() => {}
        }

        // Graceful handover: silence first, then goodbye, so that no peer ever answers
        // alongside us and none waits for the timeout.
        tracing::info!(node = %s.node_name, "shutting down: releasing every IP");
        self.dataplane.set_announced(Default::default());
        self.health.set_live(false);
        self.metrics.announced_ips.set(0);
        membership.leave(&socket).await;
        // No renewal may be in flight when the Lease is deleted: a late one would
        // re-create it.
        renewer.0.abort();
        let _ = (&mut renewer.0).await;
        let mut writer = LeaseWriter::new(
            self.client.clone(),
            &s.namespace,
            &s.node_name,
            t.lease_duration,
        );
        match tokio::time::timeout(SHUTDOWN_API_TIMEOUT, writer.delete()).await {
            Ok(Ok(())) => tracing::info!(node = %s.node_name, "Lease deleted"),
            Ok(Err(e)) => tracing::warn!(error = %e, "could not delete the Lease"),
            Err(_) => tracing::warn!("deleting the Lease timed out"),
        }
        for n in elector.tracker.shutdown() {
            elector.events.send(n);
        }
        drop(elector);
        publisher.drain(SHUTDOWN_API_TIMEOUT).await;
        tasks.abort_all();
        Ok(())
    }
}

/// How often the data path's link state is looked at.
const LINK_POLL: Duration = Duration::from_millis(50);

/// Wakes the election loop when the data path's link changes state (the loop reads it
/// and the next heartbeat tells the peers).
async fn link_watch(dataplane: Arc<dyn Dataplane>, wake: Arc<Notify>) {
    let mut link = dataplane.link_ok();
    loop {
        tokio::time::sleep(LINK_POLL).await;
        let now = dataplane.link_ok();
        if now != link {
            tracing::warn!(link_ok = now, "data path changed state");
            link = now;
            wake.notify_one();
        }
    }
}

/// Aborts its task when dropped, so that dropping [`Speaker::run`] stops it too.
struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}
