//! The speaker's kube shell: watches, Lease renewal, the election loop, shutdown.
//!
//! Tasks (all owned by one `JoinSet`, so dropping or aborting [`Speaker::run`] stops
//! every one of them):
//! - reflectors for Services, EndpointSlices, Nodes and the pool ConfigMap, which wake
//!   the election loop on every change;
//! - the Lease watch, which feeds [`PeerLiveness`] with locally timed observations;
//! - the renewer, which writes this node's Lease every renew period (and at once when
//!   the data path changes state);
//! - the Event publisher.
//!
//! The election loop recomputes on every wake-up, at the next instant a peer's Lease
//! or the own Lease would expire, and every resync period; it drives the
//! [`Dataplane`].

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ferrolb_config::L2Config;
use ferrolb_core::election::{
    Election, ElectionPolicy, Handover, NodeFacts, Observed, PeerLiveness, SelfLease, elect,
    my_announcements,
};
use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cli::Settings;
use crate::dataplane::Dataplane;
use crate::error::SpeakerError;
use crate::events::{EventTracker, Notice, STRICT_ARP_CHECK, publish_loop, strict_arp_loop};
use crate::facts::{SliceIndex, node_ready, service_facts};
use crate::http::Health;
use crate::lease::{LeaseWriter, lease_selector, read_lease};
use crate::metrics::Metrics;
use crate::slim::{SlimEndpointSlice, SlimNode, SlimService, trim_node, trim_service, trim_slice};

/// How often the renewer looks at the data plane's link state.
const LINK_POLL: Duration = Duration::from_millis(50);
/// Pending Events beyond this are dropped (they are informational).
const EVENT_QUEUE: usize = 4096;
/// Upper bound on the shutdown steps that talk to the API server.
const SHUTDOWN_API_TIMEOUT: Duration = Duration::from_secs(2);

/// Watch retry: 100 ms doubling up to 1 s. Faster than kube's default (up to 30 s) so
/// that a speaker is back in the election within about a second of the API server
/// becoming reachable again.
#[derive(Debug, Clone)]
struct QuickBackoff {
    next: Duration,
}

impl QuickBackoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(1);
    fn new() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Iterator for QuickBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(d)
    }
}

impl Backoff for QuickBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// State shared between the tasks.
struct Shared {
    liveness: Mutex<PeerLiveness>,
    own: Mutex<SelfLease>,
    wake: Notify,
    leases_synced: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking holder cannot leave these plain-data states half-updated in a way
    // that matters more than stopping the speaker would.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The stores the election reads.
#[derive(Clone)]
struct Stores {
    services: Store<SlimService>,
    slices: Store<SlimEndpointSlice>,
    nodes: Store<SlimNode>,
    config: Store<ConfigMap>,
}

/// One speaker: everything [`Speaker::run`] needs.
pub struct Speaker {
    settings: Settings,
    client: Client,
    dataplane: Arc<dyn Dataplane>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

impl Speaker {
    /// A speaker for `settings.node_name` talking to the API server through `client`
    /// and answering through `dataplane`.
    pub fn new(settings: Settings, client: Client, dataplane: Arc<dyn Dataplane>) -> Self {
        let metrics = Arc::new(Metrics::new(dataplane.clone()));
        Self {
            settings,
            client,
            dataplane,
            metrics,
            health: Arc::new(Health::default()),
        }
    }

    /// The speaker's metrics (for the HTTP endpoint).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The speaker's readiness (for the HTTP endpoint).
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Runs until `shutdown` completes, then hands over gracefully: stops answering,
    /// deletes its Lease so that peers take over at once, and returns.
    ///
    /// Dropping the returned future instead (a crash) stops every task; peers then take
    /// over when the Lease expires.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), SpeakerError> {
        let s = &self.settings;
        let timers = s.timers;
        let shared = Arc::new(Shared {
            liveness: Mutex::new(PeerLiveness::new(timers.duration)),
            own: Mutex::new(SelfLease::new(timers.duration, timers.safety_margin)),
            wake: Notify::new(),
            leases_synced: AtomicBool::new(false),
        });
        let mut tasks = JoinSet::new();

        let services = spawn_reflector(
            &mut tasks,
            &shared,
            Api::<SlimService>::all(self.client.clone()),
            watcher::Config::default().page_size(100),
            trim_service,
        );
        let slices = spawn_reflector(
            &mut tasks,
            &shared,
            Api::<SlimEndpointSlice>::all(self.client.clone()),
            watcher::Config::default().page_size(100),
            trim_slice,
        );
        let nodes = spawn_reflector(
            &mut tasks,
            &shared,
            Api::<SlimNode>::all(self.client.clone()),
            watcher::Config::default(),
            trim_node,
        );
        let config = spawn_reflector(
            &mut tasks,
            &shared,
            Api::<ConfigMap>::namespaced(self.client.clone(), &s.config_namespace),
            watcher::Config::default().fields(&format!("metadata.name={}", s.config_name)),
            |cm: &mut ConfigMap| cm.metadata.managed_fields = None,
        );
        let stores = Stores {
            services,
            slices,
            nodes,
            config,
        };

        tasks.spawn(lease_watch(
            Api::<Lease>::namespaced(self.client.clone(), &s.namespace),
            shared.clone(),
            s.node_name.clone(),
        ));
        let mut renewer = TaskGuard(tokio::spawn(renew_loop(
            LeaseWriter::new(
                self.client.clone(),
                &s.namespace,
                &s.node_name,
                timers.duration,
            ),
            shared.clone(),
            self.dataplane.clone(),
            self.metrics.clone(),
            s.clone(),
        )));
        tasks.spawn(strict_arp_loop(
            self.client.clone(),
            s.node_name.clone(),
            stores.nodes.clone(),
            self.dataplane.clone(),
            self.metrics.clone(),
            STRICT_ARP_CHECK,
        ));
        let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
        let mut publisher = TaskGuard(tokio::spawn(publish_loop(
            self.client.clone(),
            s.node_name.clone(),
            stores.services.clone(),
            event_rx,
        )));

        let mut elector = Elector {
            settings: s.clone(),
            shared: shared.clone(),
            stores: stores.clone(),
            dataplane: self.dataplane.clone(),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            events: event_tx,
            tracker: EventTracker::new(),
            current: BTreeSet::new(),
            config: ConfigCache::default(),
            interfaces: None,
            last_inputs: None,
            handover: Handover::new(s.handover_delay),
            last_election: None,
            synced_at: None,
            settled: false,
        };

        tracing::info!(node = %s.node_name, namespace = %s.namespace,
            lease_duration = ?timers.duration, renew_period = ?timers.renew_period,
            "speaker starting");
        tokio::select! {
            () = shutdown => {}
            () = elector.run_loop(&stores) => {}
        }

        // Graceful handover: silence first, so that no peer ever answers alongside us.
        tracing::info!(node = %s.node_name, "shutting down: releasing every IP");
        self.dataplane.set_announced(BTreeSet::new());
        self.health.set_lease_held(false);
        self.metrics.announced_ips.set(0);
        // No renewal may be in flight when the Lease is deleted: a late one would
        // re-create it.
        renewer.0.abort();
        let _ = (&mut renewer.0).await;
        let mut writer = LeaseWriter::new(
            self.client.clone(),
            &s.namespace,
            &s.node_name,
            timers.duration,
        );
        match tokio::time::timeout(SHUTDOWN_API_TIMEOUT, writer.delete()).await {
            Ok(Ok(())) => tracing::info!(node = %s.node_name, "Lease deleted: peers take over"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not delete the Lease; peers take over when it expires")
            }
            Err(_) => {
                tracing::warn!("deleting the Lease timed out; peers take over when it expires")
            }
        }
        for n in elector.tracker_shutdown() {
            let _ = elector.events.try_send(n);
        }
        drop(elector);
        let _ = tokio::time::timeout(SHUTDOWN_API_TIMEOUT, &mut publisher.0).await;
        tasks.abort_all();
        Ok(())
    }
}

/// Aborts its task when dropped, so that dropping [`Speaker::run`] stops it too.
struct TaskGuard(tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn_reflector<K>(
    tasks: &mut JoinSet<()>,
    shared: &Arc<Shared>,
    api: Api<K>,
    config: watcher::Config,
    slim: fn(&mut K),
) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let stream = watcher(api, config)
        .backoff(QuickBackoff::new())
        // Only what the election reads is cached (see `crate::slim`).
        .modify(slim)
        .reflect(writer);
    let shared = shared.clone();
    tasks.spawn(drive(stream, shared, K::kind(&()).to_string()));
    store
}

async fn drive<S, K>(stream: S, shared: Arc<Shared>, kind: String)
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Ok(watcher::Event::InitDone) => {
                // The reflector has swapped the listed objects in and dropped the list's
                // garbage: hand those pages back (see `crate::malloc`).
                ferrolb_process::malloc::release_free_memory();
                shared.wake.notify_one();
            }
            Ok(_) => shared.wake.notify_one(),
            Err(e) => tracing::warn!(kind = %kind, error = %e, "watch failed; retrying"),
        }
    }
}

/// Feeds [`PeerLiveness`] (and the own [`SelfLease`]) from the speaker Leases,
/// timestamping each observation on the local monotonic clock.
async fn lease_watch(api: Api<Lease>, shared: Arc<Shared>, me: String) {
    let stream = watcher(api, watcher::Config::default().labels(&lease_selector()))
        .backoff(QuickBackoff::new());
    let mut stream = std::pin::pin!(stream);
    let mut listed: BTreeSet<String> = BTreeSet::new();
    while let Some(ev) = stream.next().await {
        let now = std::time::Instant::now();
        let wake = match ev {
            Ok(watcher::Event::Init) => {
                listed.clear();
                false
            }
            Ok(watcher::Event::InitApply(l)) => {
                if let Some(v) = read_lease(&l) {
                    listed.insert(v.node.clone());
                }
                observe(&shared, &me, &l, now)
            }
            Ok(watcher::Event::Apply(l)) => observe(&shared, &me, &l, now),
            Ok(watcher::Event::InitDone) => {
                lock(&shared.liveness).retain(&listed);
                if !listed.contains(&me) {
                    lock(&shared.own).release();
                }
                shared.leases_synced.store(true, Ordering::SeqCst);
                true
            }
            Ok(watcher::Event::Delete(l)) => match read_lease(&l) {
                Some(v) => {
                    if v.node == me {
                        // Peers have forgotten us: silent until the renewer re-creates it.
                        lock(&shared.own).release();
                    }
                    lock(&shared.liveness).forget(&v.node)
                }
                None => false,
            },
            Err(e) => {
                tracing::warn!(error = %e, "Lease watch failed; retrying");
                false
            }
        };
        if wake {
            shared.wake.notify_one();
        }
    }
}

fn observe(shared: &Shared, me: &str, lease: &Lease, now: std::time::Instant) -> bool {
    let Some(v) = read_lease(lease) else {
        return false;
    };
    let seen = lock(&shared.liveness).observe(&v.node, &v.token, v.link_ok, now);
    if v.node == me && seen != Observed::Unchanged {
        let mut own = lock(&shared.own);
        let was_held = own.held(now);
        own.seen(now);
        // The own Lease becoming held again changes the election.
        return (!was_held && own.held(now)) || seen == Observed::Changed;
    }
    seen == Observed::Changed
}

/// Renews this node's Lease every renew period, at once when the link changes state,
/// and after `retry` when a renewal fails.
async fn renew_loop(
    mut writer: LeaseWriter,
    shared: Arc<Shared>,
    dataplane: Arc<dyn Dataplane>,
    metrics: Arc<Metrics>,
    settings: Settings,
) {
    let timers = settings.timers;
    let mut link = dataplane.link_ok();
    let mut failures = RenewFailures::default();
    loop {
        let sent = std::time::Instant::now();
        let result = tokio::time::timeout(timers.renew_period, writer.renew(link)).await;
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(short_error(&e)),
            Err(_) => Some(format!("no answer within {:?}", timers.renew_period)),
        };
        let next = match error {
            None => {
                metrics.lease_renewals.inc();
                if let Some(n) = failures.recovered() {
                    tracing::info!(node = %settings.node_name, failures = n, "Lease renewed again");
                }
                let mut own = lock(&shared.own);
                let was_held = own.held(std::time::Instant::now());
                own.renewed(sent);
                if !was_held && own.held(std::time::Instant::now()) {
                    shared.wake.notify_one();
                }
                Instant::from_std(sent) + timers.renew_period
            }
            Some(error) => {
                metrics.lease_renew_failures.inc();
                if failures.failed(std::time::Instant::now()) {
                    tracing::warn!(node = %settings.node_name, %error,
                        failures = failures.count, "Lease renewal failing");
                }
                Instant::now() + failures.retry_delay(timers.retry, timers.renew_period)
            }
        };
        // Sleep until the next renewal, watching the link meanwhile.
        loop {
            let poll = (Instant::now() + LINK_POLL).min(next);
            tokio::time::sleep_until(poll).await;
            let now_link = dataplane.link_ok();
            if now_link != link {
                tracing::warn!(node = %settings.node_name, link_ok = now_link,
                    "data path changed state; publishing it in the Lease");
                link = now_link;
                shared.wake.notify_one();
                break;
            }
            if Instant::now() >= next {
                break;
            }
        }
    }
}

/// Consecutive renewal failures: the first is logged at once, then one line every
/// [`RenewFailures::LOG_EVERY`]; retries back off from `retry` to the renew period.
#[derive(Debug, Default)]
struct RenewFailures {
    count: u32,
    logged_at: Option<std::time::Instant>,
}

impl RenewFailures {
    const LOG_EVERY: Duration = Duration::from_secs(10);

    /// Records a failure; true when it should be logged.
    fn failed(&mut self, now: std::time::Instant) -> bool {
        self.count += 1;
        let log = self
            .logged_at
            .is_none_or(|t| now.duration_since(t) >= Self::LOG_EVERY);
        if log {
            self.logged_at = Some(now);
        }
        log
    }

    /// Records a success; the number of failures before it, if any.
    fn recovered(&mut self) -> Option<u32> {
        let n = std::mem::take(&mut self.count);
        self.logged_at = None;
        (n > 0).then_some(n)
    }

    /// `retry` doubled per consecutive failure, at most `max`.
    fn retry_delay(&self, retry: Duration, max: Duration) -> Duration {
        let shift = self.count.saturating_sub(1).min(16);
        retry.saturating_mul(1 << shift).min(max)
    }
}

/// A one-line description of a kube error (the API status message, not the whole
/// debug dump).
fn short_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

/// The pool configuration's l2 section, re-parsed only when the ConfigMap changes.
#[derive(Default)]
struct ConfigCache {
    version: Option<String>,
    l2: L2Config,
}

impl ConfigCache {
    fn refresh(&mut self, cm: Option<&ConfigMap>) {
        let version = cm.map(|c| c.metadata.resource_version.clone().unwrap_or_default());
        if version == self.version {
            return;
        }
        self.version = version;
        let Some(cm) = cm else {
            // No ConfigMap: announce from every node on the automatic interfaces.
            self.l2 = L2Config::default();
            return;
        };
        let data = cm.data.clone().unwrap_or_default();
        match ferrolb_config::parse_configmap_data(&data) {
            Ok(parsed) => self.l2 = parsed.config.l2,
            Err(e) => tracing::warn!(error = %e,
                "pool ConfigMap is invalid; keeping the previous l2 settings"),
        }
    }
}

/// What the election was computed from, to skip recomputing on timer wake-ups that
/// changed nothing.
#[derive(PartialEq, Eq)]
struct Inputs {
    held: bool,
    link_ok: bool,
    live: Vec<(String, bool, bool)>,
}

struct Elector {
    settings: Settings,
    shared: Arc<Shared>,
    stores: Stores,
    dataplane: Arc<dyn Dataplane>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    events: mpsc::Sender<Notice>,
    tracker: EventTracker,
    current: BTreeSet<IpAddr>,
    config: ConfigCache,
    interfaces: Option<Vec<String>>,
    last_inputs: Option<Inputs>,
    handover: Handover,
    last_election: Option<Election>,
    synced_at: Option<Instant>,
    settled: bool,
}

impl Elector {
    async fn run_loop(&mut self, stores: &Stores) {
        // Wait until every cache has listed once: electing from a partial view would
        // take IPs from peers this speaker has not seen yet.
        let ready = async {
            let _ = stores.services.wait_until_ready().await;
            let _ = stores.slices.wait_until_ready().await;
            let _ = stores.nodes.wait_until_ready().await;
            let _ = stores.config.wait_until_ready().await;
        };
        ready.await;
        while !self.shared.leases_synced.load(Ordering::SeqCst) {
            self.shared.wake.notified().await;
        }
        self.health.set_synced(true);
        self.synced_at = Some(Instant::now());
        tracing::info!(node = %self.settings.node_name, "caches synced");

        let mut last_full = Instant::now();
        let mut force = true;
        loop {
            let now = std::time::Instant::now();
            let inputs = self.inputs(now);
            let handover_due = self.handover.next_deadline().is_some_and(|d| d <= now);
            let settle_due = !self.settled
                && self
                    .synced_at
                    .is_some_and(|t| t.elapsed() >= self.settings.timers.duration);
            if settle_due {
                self.settled = true;
            }
            if force || handover_due || settle_due || self.last_inputs.as_ref() != Some(&inputs) {
                self.elect_and_apply(&inputs, now);
                self.last_inputs = Some(inputs);
                last_full = Instant::now();
            }
            let deadline = self
                .next_deadline(now)
                .min(last_full + self.settings.resync_period);
            tokio::select! {
                () = self.shared.wake.notified() => { force = true; }
                () = tokio::time::sleep_until(deadline) => {
                    force = Instant::now() >= last_full + self.settings.resync_period;
                }
            }
        }
    }

    fn inputs(&self, now: std::time::Instant) -> Inputs {
        let live = lock(&self.shared.liveness);
        Inputs {
            held: lock(&self.shared.own).held(now),
            link_ok: self.dataplane.link_ok(),
            live: live
                .nodes(now)
                .map(|(n, l)| (n.to_owned(), l, live.link_ok(n)))
                .collect(),
        }
    }

    /// The earliest instant at which liveness (a peer's or our own) changes.
    fn next_deadline(&self, now: std::time::Instant) -> Instant {
        let far = now + self.settings.resync_period;
        let peer = lock(&self.shared.liveness).next_expiry(now).unwrap_or(far);
        let own = lock(&self.shared.own)
            .deadline()
            .filter(|d| *d > now)
            .unwrap_or(far);
        let handover = self.handover.next_deadline().unwrap_or(far);
        // The end of the start-up quiet period for warnings (see `apply`).
        let settle = self
            .synced_at
            .filter(|_| !self.settled)
            .map(|t| (t + self.settings.timers.duration).into_std())
            .unwrap_or(far);
        // A millisecond late so that the expiry has certainly passed when we look.
        Instant::from_std(peer.min(own).min(handover).min(settle).min(far))
            + Duration::from_millis(1)
    }

    fn node_facts(&self, inputs: &Inputs) -> Vec<NodeFacts> {
        let me = &self.settings.node_name;
        let mut names: BTreeMap<&str, (bool, bool)> = inputs
            .live
            .iter()
            .map(|(n, live, link)| (n.as_str(), (*live, *link)))
            .collect();
        // Our own state is known locally, before (and stricter than) what peers see.
        names.insert(me.as_str(), (inputs.held, inputs.link_ok));
        names
            .into_iter()
            .map(|(name, (live, link_ok))| {
                let node = self.stores.nodes.get(&ObjectRef::new(name));
                NodeFacts {
                    name: name.to_owned(),
                    speaker_live: live,
                    ready: node.as_deref().is_some_and(node_ready),
                    labels: node
                        .as_deref()
                        .and_then(|n| n.metadata.labels.clone())
                        .unwrap_or_default(),
                    link_ok,
                }
            })
            .collect()
    }

    fn elect_and_apply(&mut self, inputs: &Inputs, now: std::time::Instant) {
        let s = &self.settings;
        let cm = self
            .stores
            .config
            .get(&ObjectRef::new(&s.config_name).within(&s.config_namespace));
        self.config.refresh(cm.as_deref());
        let interfaces = if s.interfaces.is_empty() {
            self.config.l2.interfaces.clone()
        } else {
            s.interfaces.clone()
        };
        if self.interfaces.as_ref() != Some(&interfaces) {
            self.dataplane.set_interfaces(&interfaces);
            self.interfaces = Some(interfaces);
        }

        let nodes = self.node_facts(inputs);
        let slice_objs = self.stores.slices.state();
        let index = SliceIndex::build(slice_objs.iter().map(|a| a.as_ref()));
        let services: Vec<_> = self
            .stores
            .services
            .state()
            .iter()
            .filter_map(|svc| service_facts(svc, &index, &s.lb_class))
            .collect();
        let policy = ElectionPolicy {
            node_selector: self.config.l2.node_selector.clone(),
            ignore_exclude_label: s.ignore_exclude_lb_label,
        };
        let election = elect(&nodes, &services, &policy);
        let won = my_announcements(&election, &s.node_name, inputs.held);
        // Who answered before: the last election, or on the first one the election
        // without this node (what the peers were doing before it joined).
        let previous = match self.last_election.take() {
            Some(e) => e,
            None => {
                let without_me: Vec<NodeFacts> = nodes
                    .iter()
                    .cloned()
                    .map(|mut n| {
                        if n.name == s.node_name {
                            n.speaker_live = false;
                        }
                        n
                    })
                    .collect();
                elect(&without_me, &services, &policy)
            }
        };
        let running: BTreeMap<&str, bool> = inputs
            .live
            .iter()
            .map(|(n, live, link)| (n.as_str(), *live && *link))
            .collect();
        let mine = self.handover.admit(
            &s.node_name,
            &won,
            &self.current,
            |ip| previous.announcer_of(ip),
            |peer| running.get(peer).copied().unwrap_or(false),
            now,
        );
        for ip in self.handover.pending() {
            tracing::debug!(%ip, "won from a running peer; waiting for it to stop first");
        }
        self.metrics.elections.inc();
        self.apply(&election, mine, &nodes);
        self.last_election = Some(election);
    }

    fn apply(&mut self, election: &Election, mine: BTreeSet<IpAddr>, nodes: &[NodeFacts]) {
        let me = self.settings.node_name.clone();
        if mine != self.current {
            let gained: Vec<IpAddr> = mine.difference(&self.current).copied().collect();
            let lost: Vec<IpAddr> = self.current.difference(&mine).copied().collect();
            self.dataplane.set_announced(mine.clone());
            for ip in &gained {
                tracing::info!(node = %me, %ip, "announcing");
            }
            for ip in &lost {
                tracing::info!(node = %me, %ip, announcer = ?election.announcer_of(*ip), "stopped announcing");
            }
            self.metrics.record_changes(gained.len(), lost.len());
            self.current = mine;
        }
        let live: Vec<&str> = nodes
            .iter()
            .filter(|n| n.speaker_live)
            .map(|n| n.name.as_str())
            .collect();
        // One speaker (the first live one by name) reports Services without announcer.
        // Not in the first lease duration after start: peers that started at the same
        // time may not have written their Leases yet, and the warning would be false.
        let settled = self
            .synced_at
            .is_some_and(|t| t.elapsed() >= self.settings.timers.duration);
        let reporter = settled && live.first().is_some_and(|n| *n == me);
        let held = nodes.iter().any(|n| n.name == me && n.speaker_live);
        for notice in self
            .tracker
            .update(election, &me, &self.current, reporter && held)
        {
            if self.events.try_send(notice).is_err() {
                tracing::debug!("Event queue full; dropping an Event");
            }
        }
        self.metrics.announced_ips.set(self.current.len() as i64);
        self.metrics.live_speakers.set(live.len() as i64);
        self.metrics.lease_held.set(i64::from(held));
        self.metrics.ips_without_announcer.set(
            election
                .by_ip
                .values()
                .filter(|a| a.announcer.is_err())
                .count() as i64,
        );
        self.health.set_lease_held(held);
    }

    fn tracker_shutdown(&mut self) -> Vec<Notice> {
        self.tracker.shutdown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renew_failures_back_off_and_log_sparingly() {
        let t0 = std::time::Instant::now();
        let mut f = RenewFailures::default();
        let retry = Duration::from_millis(100);
        let max = Duration::from_millis(500);
        assert!(f.failed(t0), "first failure is logged");
        assert_eq!(f.retry_delay(retry, max), retry);
        assert!(!f.failed(t0 + Duration::from_secs(1)));
        assert_eq!(f.retry_delay(retry, max), Duration::from_millis(200));
        assert!(!f.failed(t0 + Duration::from_secs(2)));
        assert_eq!(f.retry_delay(retry, max), Duration::from_millis(400));
        assert!(f.failed(t0 + Duration::from_secs(10)), "one line per 10 s");
        assert_eq!(f.retry_delay(retry, max), max);
        assert_eq!(f.recovered(), Some(4));
        assert_eq!(f.recovered(), None);
        assert!(
            f.failed(t0 + Duration::from_secs(11)),
            "a new outage is logged at once"
        );
        assert_eq!(f.retry_delay(retry, max), retry);
    }

    #[test]
    fn quick_backoff_doubles_to_one_second_and_resets() {
        let mut b = QuickBackoff::new();
        let v: Vec<u128> = (0..6).map(|_| b.next().unwrap().as_millis()).collect();
        assert_eq!(v, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(100)));
    }
}
