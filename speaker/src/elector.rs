//! The election loop's shell: it gathers an [`Observation`] from the caches, the
//! membership, the API probe and the peers' Lease reports, runs the pure
//! [`SpeakerStep`], and carries the [`Plan`] out (data plane, Events, metrics, what the
//! Lease publishes). Every policy is in [`ferrolb_core::election::step`].

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrolb_config::{Config, InterfaceRule};
use ferrolb_core::election::{
    ElectionPolicy, Member, NodeInfo, NotLive, Observation, Plan, SelfMode, SpeakerStep, StepConfig,
};
use ferrolb_core::membership::Keyring;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::{Notify, watch};

use crate::api_probe::ApiContact;
use crate::cli::Settings;
use crate::dataplane::Dataplane;
use crate::events::{EventTracker, NoticeSink};
use crate::facts::{SliceIndex, apply_policies, node_ready, service_facts};
use crate::http::Health;
use crate::lease::Reports;
use crate::membership::{LocalFlags, SharedMembership};
use crate::metrics::SpeakerMetrics;
use crate::renew::Published;
use crate::slim::{SlimEndpointSlice, SlimNode, SlimService};

/// The stores the election reads.
#[derive(Clone)]
pub struct Stores {
    /// Services.
    pub services: Store<SlimService>,
    /// EndpointSlices.
    pub slices: Store<SlimEndpointSlice>,
    /// Nodes.
    pub nodes: Store<SlimNode>,
    /// The pool ConfigMap.
    pub config: Store<ConfigMap>,
    /// The membership key Secret.
    pub secret: Store<Secret>,
}

/// What the election loop talks to.
pub struct ElectionLoop {
    /// Validated settings.
    pub settings: Settings,
    /// The caches.
    pub stores: Stores,
    /// The membership.
    pub membership: Arc<SharedMembership>,
    /// The API probe's last success.
    pub contact: Arc<ApiContact>,
    /// The peers' Lease reports.
    pub reports: Arc<Mutex<Reports>>,
    /// Woken by every watch, the membership and the probe.
    pub wake: Arc<Notify>,
    /// The data plane.
    pub dataplane: Arc<dyn Dataplane>,
    /// The speaker's metrics.
    pub metrics: Arc<SpeakerMetrics>,
    /// Readiness.
    pub health: Arc<Health>,
    /// Events to publish.
    pub events: NoticeSink,
    /// What the Lease publishes.
    pub published: watch::Sender<Published>,
    /// Event bookkeeping.
    pub tracker: EventTracker,
    state: LoopState,
}

/// What the loop remembers between steps besides the step itself.
struct LoopState {
    step: SpeakerStep,
    config: ConfigCache,
    interfaces: Option<Vec<String>>,
    interface_rules: Option<BTreeMap<IpAddr, InterfaceRule>>,
    peers: Option<Vec<(String, SocketAddr)>>,
    secret_version: Option<Option<Option<String>>>,
    mode: Option<SelfMode>,
    synced: bool,
}

impl ElectionLoop {
    /// The election loop for `settings`; call [`ElectionLoop::run_loop`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        settings: Settings,
        stores: Stores,
        membership: Arc<SharedMembership>,
        contact: Arc<ApiContact>,
        reports: Arc<Mutex<Reports>>,
        wake: Arc<Notify>,
        dataplane: Arc<dyn Dataplane>,
        metrics: Arc<SpeakerMetrics>,
        health: Arc<Health>,
        events: NoticeSink,
        published: watch::Sender<Published>,
    ) -> Self {
        let t = settings.timers;
        let step = SpeakerStep::new(StepConfig {
            me: settings.node_name.clone(),
            handover_delay: settings.handover_delay,
            // Peers that started with this node are heard within one timeout.
            settle: t.peer_timeout * 2 + t.heartbeat_interval,
            minority_confirm: t.minority_confirm,
            // A node counts as reaching the API server again after two probes.
            api_settle: t.api_probe_period * 2,
        });
        Self {
            settings,
            stores,
            membership,
            contact,
            reports,
            wake,
            dataplane,
            metrics,
            health,
            events,
            published,
            tracker: EventTracker::new(),
            state: LoopState {
                step,
                config: ConfigCache::default(),
                interfaces: None,
                interface_rules: None,
                peers: None,
                secret_version: None,
                mode: None,
                synced: false,
            },
        }
    }

    /// Runs the loop forever (the caller drops it on shutdown).
    pub async fn run_loop(&mut self) {
        let stores = self.stores.clone();
        // Until every cache has listed once this node has no view: it answers nothing
        // and its heartbeats say so, so that no peer elects it.
        let ready = async {
            let _ = stores.services.wait_until_ready().await;
            let _ = stores.slices.wait_until_ready().await;
            let _ = stores.nodes.wait_until_ready().await;
            let _ = stores.config.wait_until_ready().await;
            let _ = stores.secret.wait_until_ready().await;
        };
        // Fused: polled again after it completed, it stays pending instead of panicking.
        let mut ready = std::pin::pin!(futures::FutureExt::fuse(ready));
        loop {
            let now = Instant::now();
            if !self.state.synced {
                self.state.synced = futures::future::FusedFuture::is_terminated(&*ready)
                    || futures::poll!(ready.as_mut()).is_ready();
                if self.state.synced {
                    self.health.set_synced(true);
                    tracing::info!(node = %self.settings.node_name, "caches synced");
                }
            }
            let wake_at = self.step_once(now);
            let now = Instant::now();
            let deadline = wake_at.min(now + self.settings.resync_period);
            // A millisecond late so that the expiry has certainly passed when we look.
            let sleep = tokio::time::sleep_until((deadline + Duration::from_millis(1)).into());
            if self.state.synced {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = sleep => {}
                }
            } else {
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = sleep => {}
                    () = &mut ready => {}
                }
            }
        }
    }

    /// Refreshes what changed, steps, applies the plan; returns when to step again.
    fn step_once(&mut self, now: Instant) -> Instant {
        if self.state.synced {
            self.refresh_keys();
            self.refresh_config();
            self.refresh_peers();
        }
        let s = &self.settings;
        let t = s.timers;
        let warm_at = self.membership.warm_at();
        let api_age = self.contact.age(now);
        let api_fresh = api_age.is_some_and(|a| a <= t.api_stale_after);
        let has_view =
            self.state.synced && self.membership.has_keys() && warm_at.is_some_and(|w| now >= w);
        let link_ok = self.dataplane.link_ok();
        let view = self.membership.view(now);
        let reported = !view.quorum
            && self
                .reports
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .claims(&s.node_name, now);
        let me = Member {
            name: s.node_name.clone(),
            alive: true,
            has_view,
            api_fresh,
            api_recent: api_age.is_some_and(|a| a <= t.api_stale_after / 2),
            link_ok,
            leaving: false,
            claimed_unreachable: view.claims_me || reported,
        };
        let nodes: Vec<NodeInfo> = self
            .stores
            .nodes
            .state()
            .iter()
            .filter_map(|n| {
                Some(NodeInfo {
                    name: n.metadata.name.clone()?,
                    ready: node_ready(n),
                    labels: n.metadata.labels.clone().unwrap_or_default(),
                })
            })
            .collect();
        let slice_objs = self.stores.slices.state();
        let index = SliceIndex::build(slice_objs.iter().map(|a| a.as_ref()));
        let config = &self.state.config.config;
        let no_labels = BTreeMap::new();
        let my_labels = nodes
            .iter()
            .find(|n| n.name == s.node_name)
            .map_or(&no_labels, |n| &n.labels);
        let mut interface_rules = BTreeMap::new();
        let services: Vec<_> = self
            .stores
            .services
            .state()
            .iter()
            .filter_map(|svc| {
                let mut facts = service_facts(svc, &index, &s.lb_class)?;
                let labels = svc.metadata.labels.as_ref().unwrap_or(&no_labels);
                apply_policies(&mut facts, labels, config, my_labels, &mut interface_rules);
                Some(facts)
            })
            .collect();
        if self.state.interface_rules.as_ref() != Some(&interface_rules) {
            // Before the announced set changes, so that a gained IP is answered on its
            // interfaces from the first frame.
            self.dataplane.set_interface_rules(interface_rules.clone());
            self.state.interface_rules = Some(interface_rules);
        }
        let policy = ElectionPolicy {
            node_selector: config.l2.node_selector.clone(),
            ignore_exclude_label: s.ignore_exclude_lb_label,
        };
        let before = self.state.step.current().clone();
        let plan = self.state.step.step(&Observation {
            now,
            me: &me,
            peers: &view.peers,
            quorum: view.quorum,
            nodes: &nodes,
            services: &services,
            policy: &policy,
        });
        self.metrics.elections.inc();
        self.metrics.api_view_fresh.set(i64::from(api_fresh));
        self.published.send_if_modified(|p| {
            let next = Published {
                link_ok,
                unreachable: view.unreachable.clone(),
            };
            let changed = *p != next;
            *p = next;
            changed
        });
        let resync = s.resync_period;
        self.apply(&plan, &before);
        // Peers learn this node's state only now, after the plan is carried out: a node
        // that stops answering says so after it stopped, so that no peer starts first.
        self.membership.set_local(
            LocalFlags {
                has_view,
                link_ok,
                api_stale: plan.not_live == Some(NotLive::ApiStale),
            },
            now,
        );

        let mut wake_at = plan.wake_at.unwrap_or(now + resync);
        if let Some(w) = warm_at
            && now < w
        {
            wake_at = wake_at.min(w);
        }
        if let Some(last) = self.contact.last()
            && api_fresh
        {
            // The instant the API view turns stale.
            wake_at = wake_at.min(last + t.api_stale_after);
        }
        wake_at
    }

    fn apply(&mut self, plan: &Plan, before: &std::collections::BTreeSet<IpAddr>) {
        let me = self.settings.node_name.clone();
        if plan.announce != *before {
            let gained: Vec<IpAddr> = plan.announce.difference(before).copied().collect();
            let lost: Vec<IpAddr> = before.difference(&plan.announce).copied().collect();
            self.dataplane.set_announced(plan.announce.clone());
            for ip in &gained {
                tracing::info!(node = %me, %ip, "announcing");
            }
            for ip in &lost {
                tracing::info!(node = %me, %ip, announcer = ?plan.election.announcer_of(*ip),
                    "stopped announcing");
            }
            self.metrics.record_changes(gained.len(), lost.len());
        }
        for ip in &plan.held_back {
            tracing::debug!(%ip, "won from a running peer; waiting for it to stop first");
        }
        if self.state.mode != Some(plan.mode) {
            log_mode(&me, self.state.mode, plan.mode, plan.not_live);
            self.metrics.set_mode(plan.mode.metric_label());
            self.state.mode = Some(plan.mode);
        }
        let live = matches!(plan.mode, SelfMode::Normal | SelfMode::Frozen);
        for notice in self
            .tracker
            .update(&plan.election, &me, &plan.announce, plan.reporter)
        {
            self.events.send(notice);
        }
        self.metrics.announced_ips.set(plan.announce.len() as i64);
        self.metrics.live_speakers.set(plan.live.len() as i64);
        self.metrics.live.set(i64::from(live));
        self.metrics.ips_without_announcer.set(
            plan.election
                .by_ip
                .values()
                .filter(|a| a.announcer.is_err())
                .count() as i64,
        );
        self.health.set_live(live);
    }

    /// Installs the key ring when the Secret changed. A Secret that vanished keeps the
    /// last key (a deleted Secret must not silence the cluster; the controller creates a
    /// new one, and peers switch to it as they see it).
    fn refresh_keys(&mut self) {
        let s = &self.settings;
        let secret = self
            .stores
            .secret
            .get(&ObjectRef::new(&s.membership.secret).within(&s.config_namespace));
        let version = secret.as_ref().map(|x| x.metadata.resource_version.clone());
        if self.state.secret_version.as_ref() == Some(&version) {
            return;
        }
        self.state.secret_version = Some(version);
        let Some(secret) = secret else {
            if self.membership.has_keys() {
                tracing::warn!(secret = %s.membership.secret, namespace = %s.config_namespace,
                    "membership Secret deleted; keeping the last key until a new one appears");
            } else {
                tracing::error!(secret = %s.membership.secret, namespace = %s.config_namespace,
                    "membership Secret missing: heartbeats cannot be authenticated, this node \
                     announces nothing (the controller creates it)");
            }
            return;
        };
        match keyring_from_secret(&secret) {
            Ok(k) => {
                tracing::info!(secret = %s.membership.secret, "membership key loaded");
                self.membership.set_keys(Some(k));
            }
            Err(e) => tracing::error!(secret = %s.membership.secret, error = %e,
                "membership Secret is invalid; keeping the previous key"),
        }
    }

    fn refresh_config(&mut self) {
        let s = &self.settings;
        let cm = self
            .stores
            .config
            .get(&ObjectRef::new(&s.config_name).within(&s.config_namespace));
        self.state.config.refresh(cm.as_deref());
        let interfaces = if s.interfaces.is_empty() {
            self.state.config.config.l2.interfaces.clone()
        } else {
            s.interfaces.clone()
        };
        if self.state.interfaces.as_ref() != Some(&interfaces) {
            self.dataplane.set_interfaces(&interfaces);
            self.state.interfaces = Some(interfaces);
        }
    }

    /// The address book from the Node objects: every other node's first InternalIP.
    fn refresh_peers(&mut self) {
        let s = &self.settings;
        let mut peers: Vec<(String, SocketAddr)> = self
            .stores
            .nodes
            .state()
            .iter()
            .filter_map(|n| {
                let name = n.metadata.name.clone()?;
                if name == s.node_name {
                    return None;
                }
                Some((name, SocketAddr::new(n.internal_ip()?, s.membership.port)))
            })
            .collect();
        peers.sort();
        if self.state.peers.as_ref() != Some(&peers) {
            self.membership.set_peers(peers.clone());
            self.state.peers = Some(peers);
        }
    }
}

/// The key ring in a membership Secret: `primary` (signs, accepted) and optionally
/// `secondary` (accepted).
pub fn keyring_from_secret(secret: &Secret) -> Result<Keyring, String> {
    let data: BTreeMap<&str, &[u8]> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()))
        .collect();
    let primary = data
        .get("primary")
        .ok_or_else(|| "it has no data key \"primary\"".to_string())?;
    let secondary = data.get("secondary").copied();
    Keyring::new(primary, secondary).map_err(|e| e.to_string())
}

fn log_mode(me: &str, from: Option<SelfMode>, to: SelfMode, why: Option<NotLive>) {
    let why = why.map(|w| w.metric_label());
    match to {
        SelfMode::Normal => tracing::info!(node = %me, ?from, "announcing what the election gives"),
        SelfMode::NoView => {
            tracing::info!(node = %me, "no view of the cluster yet: announcing nothing")
        }
        SelfMode::Frozen => tracing::warn!(node = %me,
            "hears fewer than half of its peers: keeping its addresses, taking no new ones"),
        SelfMode::Silenced => {
            tracing::warn!(node = %me, reason = ?why, "silenced: announcing nothing")
        }
    }
}

/// The pool configuration (the pools place each IP under its announcement policies),
/// re-parsed only when the ConfigMap changes.
#[derive(Default)]
struct ConfigCache {
    version: Option<String>,
    config: Config,
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
            self.config = Config::default();
            return;
        };
        let data = cm.data.clone().unwrap_or_default();
        match ferrolb_config::parse_configmap_data(&data) {
            Ok(parsed) => self.config = parsed.config,
            Err(e) => tracing::warn!(error = %e,
                "pool ConfigMap is invalid; keeping the previous pools and l2 settings"),
        }
    }
}
