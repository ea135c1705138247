//! The running controller: the thin Kubernetes shell around the pure
//! allocator and reconcile decisions.
//!
//! One Service watch feeds a reflector store. While this replica leads, the
//! watch's objects trigger a kube-runtime `Controller`, its delete events
//! release IPs at once, and each relist sweeps allocations whose Service is
//! gone (a delete missed while the watch was down). The pool ConfigMap has a
//! watch of its own; a change re-triggers every Service.
//!
//! Leadership comes in terms. A replica that loses its Lease (a renewal not
//! confirmed in time, or another holder) ends the term at once: the reconciler
//! and every write in flight are dropped, queued Events are discarded, and the
//! allocator is emptied. The process stays up, a ready standby, and campaigns
//! again; its next term rebuilds the allocator from a fresh list of Services
//! (its watch may have missed changes while the API was out of reach) before it
//! allocates anything.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrolb_config::{Config, parse_configmap_data};
use ferrolb_core::alloc::Allocator;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use crate::cli::RunArgs;
pub use crate::error::Error;
use crate::events::{EventQueue, Pending};
use crate::http::Health;
use crate::leader::Elector;
use crate::metrics::{Metrics, PoolLabels};
use crate::reconcile::{self, Decision};
use crate::service;
use crate::slim::LbService as Service;
use crate::status;

/// Reconciles running at once, at most.
const RECONCILE_CONCURRENCY: u16 = 64;

/// How often, at most, the leader checks that the membership Secret exists.
const MEMBERSHIP_CHECK_MAX_PERIOD: Duration = Duration::from_secs(30);

/// The allocator with the configuration it was built from.
struct Engine {
    alloc: Allocator,
    config: Option<Config>,
    /// True once the allocator was rebuilt from the Services' status.
    rebuilt: bool,
    /// Set when a term ended: the cache may have missed changes while the API
    /// was out of reach, so the next rebuild must come from a fresh list.
    needs_fresh_list: bool,
}

impl Engine {
    /// Reconciling is safe once the allocator was rebuilt; without any
    /// configuration it is too, as nothing is allocated then.
    fn open(&self) -> bool {
        self.rebuilt || self.config.is_none()
    }
}

/// State shared by the watch tasks and the reconciler.
pub struct Ctx {
    client: Client,
    engine: Mutex<Engine>,
    events: EventQueue,
    metrics: Arc<Metrics>,
    class: String,
    cm_ref: String,
    leading: watch::Receiver<bool>,
    /// Set once the Service cache holds the full list: a rebuild before that
    /// would see too few Services and hand their IPs out again.
    services_synced: std::sync::atomic::AtomicBool,
    /// Services whose allocation failed: retried when an IP is released.
    retry_tx: mpsc::UnboundedSender<ObjectRef<Service>>,
    failed: Mutex<std::collections::HashSet<ObjectRef<Service>>>,
}

impl Ctx {
    fn leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Queues an Event (published in the background, never awaited here).
    fn publish(
        &self,
        regarding: k8s_openapi::api::core::v1::ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.events.send(Pending {
            regarding,
            warning,
            reason: reason.to_owned(),
            action: action.to_owned(),
            note,
        });
    }

    fn update_pool_metrics(&self, engine: &Engine) {
        self.metrics.pool_size.clear();
        self.metrics.pool_in_use.clear();
        self.metrics.pool_free.clear();
        for s in engine.alloc.pool_stats() {
            let labels = PoolLabels {
                pool: s.pool.clone(),
                family: family_label(s.family).to_owned(),
            };
            self.metrics
                .pool_size
                .get_or_create(&labels)
                .set(s.size as f64);
            self.metrics
                .pool_in_use
                .get_or_create(&labels)
                .set(s.in_use as i64);
            self.metrics
                .pool_free
                .get_or_create(&labels)
                .set(s.free as f64);
        }
    }

    /// Retries every Service whose allocation failed (an IP was freed).
    fn retry_failed(&self) {
        for r in self.failed.lock().expect("lock").iter() {
            let _ = self.retry_tx.send(r.clone());
        }
    }

    /// A Service was deleted: release its IPs at once.
    fn on_deleted(&self, svc: &Service) {
        let key = service::key(svc);
        let released = {
            let mut e = self.engine.lock().expect("lock");
            let r = e.alloc.release(&key);
            if r.is_some() {
                self.update_pool_metrics(&e);
            }
            r
        };
        self.failed
            .lock()
            .expect("lock")
            .remove(&ObjectRef::from_obj(svc));
        if let Some(a) = released {
            info!(service = %key, ips = ?a.ips, "service deleted: IPs released");
            self.metrics.releases.inc();
            self.retry_failed();
        }
    }

    /// After a relist: release allocations whose Service no longer exists.
    fn sweep(&self, store: &Store<Service>) {
        let mut e = self.engine.lock().expect("lock");
        if !e.rebuilt {
            return;
        }
        let live: std::collections::BTreeSet<String> =
            store.state().iter().map(|s| service::key(s)).collect();
        let gone: Vec<String> = e
            .alloc
            .keys()
            .filter(|k| !live.contains(*k))
            .map(str::to_owned)
            .collect();
        for key in &gone {
            e.alloc.release(key);
            self.metrics.releases.inc();
            info!(service = %key, "service gone (missed delete): IPs released");
        }
        if !gone.is_empty() {
            self.update_pool_metrics(&e);
            drop(e);
            self.retry_failed();
        }
    }

    /// A new version of the pool ConfigMap.
    fn on_configmap(&self, cm: &ConfigMap, store: &Store<Service>) {
        let data = cm.data.clone().unwrap_or_default();
        match parse_configmap_data(&data) {
            Ok(parsed) => {
                info!(format = ?parsed.format, pools = parsed.config.pools.len(), "pool configuration loaded");
                self.metrics
                    .config_reloads
                    .get_or_create(&crate::metrics::ResultLabels {
                        result: "ok".into(),
                    })
                    .inc();
                self.metrics.config_stale.set(0);
                let moved = {
                    let mut e = self.engine.lock().expect("lock");
                    let moved = e.alloc.set_config(parsed.config.clone());
                    e.config = Some(parsed.config);
                    if e.rebuilt {
                        // Addresses the new pools now hold go to their Services first.
                        reconcile::adopt_unheld(&mut e.alloc, &store.state(), &self.class);
                    }
                    self.update_pool_metrics(&e);
                    moved
                };
                for (key, a) in &moved {
                    info!(service = %key, ips = ?a.ips, "IP no longer valid under the new configuration: reallocating");
                }
                if self.leading() {
                    self.ensure_rebuilt(store);
                    self.trigger_needed(store);
                }
            }
            Err(problems) => {
                let text = problems.to_string();
                error!(configmap = %self.cm_ref, problems = %text, "invalid pool configuration rejected; the last good one stays in force");
                self.metrics
                    .config_reloads
                    .get_or_create(&crate::metrics::ResultLabels {
                        result: "error".into(),
                    })
                    .inc();
                self.metrics.config_stale.set(1);
                if self.leading() {
                    let note = format!(
                        "configuration rejected, the last good one stays in force:\n{text}"
                    );
                    self.publish(
                        cm.object_ref(&()),
                        true,
                        "InvalidConfiguration",
                        "LoadConfig",
                        note,
                    );
                }
            }
        }
    }

    /// Sends to the reconciler every Service whose reconcile would change
    /// something (an allocation, a status write or an Event), after leadership was
    /// gained or the configuration changed.
    ///
    /// The decisions are taken on a copy of the allocator, so this changes nothing
    /// itself. Triggering every Service instead would run thousands of reconciles
    /// that find nothing to do, and their bookkeeping, at once: memory at every restart
    /// and config change (BENCHMARKS.md, "Controller").
    fn trigger_needed(&self, store: &Store<Service>) {
        let t = Instant::now();
        let services = store.state();
        let (mut alloc, config) = {
            let e = self.engine.lock().expect("lock");
            if !e.open() {
                return; // the rebuild triggers again
            }
            (e.alloc.clone(), e.config.clone())
        };
        let now = Timestamp::now();
        let mut triggered = 0usize;
        for svc in &services {
            let d = reconcile::decide(&mut alloc, config.as_ref(), svc, &self.class, &self.cm_ref);
            let writes = d
                .wanted
                .as_ref()
                .is_some_and(|w| status::patch(svc, w, now).is_some());
            if writes || d.allocated || d.released || !d.notes.is_empty() {
                let _ = self.retry_tx.send(ObjectRef::from_obj(svc.as_ref()));
                triggered += 1;
            }
        }
        info!(
            services = services.len(),
            triggered,
            elapsed_ms = t.elapsed().as_millis() as u64,
            "services to reconcile after a configuration or leadership change"
        );
        // The allocator copy and the rebuild's requests were the largest transient
        // memory of a restart or reload: give those pages back now.
        drop((alloc, services));
        ferrolb_process::malloc::release_free_memory();
    }

    /// Rebuilds the allocator from the Services' status once, before any allocation.
    fn ensure_rebuilt(&self, store: &Store<Service>) {
        if !self
            .services_synced
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        if self.engine.lock().expect("lock").needs_fresh_list {
            return; // the term's fresh list rebuilds it
        }
        self.rebuild_from(&store.state(), "cache");
    }

    /// Rebuilds the allocator from these Services' status, once per term and
    /// only with a configuration (without one nothing is allocated, and the
    /// configuration's arrival rebuilds).
    fn rebuild_from(&self, services: &[Arc<Service>], source: &str) {
        let mut e = self.engine.lock().expect("lock");
        e.needs_fresh_list = false;
        if e.rebuilt || e.config.is_none() {
            return;
        }
        let t = Instant::now();
        let Engine { alloc, .. } = &mut *e;
        let adopted = reconcile::rebuild(alloc, services, &self.class);
        e.rebuilt = true;
        self.update_pool_metrics(&e);
        info!(
            services = services.len(),
            adopted,
            source,
            elapsed_ms = t.elapsed().as_millis() as u64,
            "allocator rebuilt from Service status"
        );
    }

    /// The term ended: forget every allocation (the next leader, maybe us,
    /// rebuilds from the Services' status) and every pending retry.
    fn step_down(&self) {
        let mut e = self.engine.lock().expect("lock");
        e.alloc = Allocator::new(e.config.clone().unwrap_or_default());
        e.rebuilt = false;
        e.needs_fresh_list = true;
        self.update_pool_metrics(&e);
        drop(e);
        self.failed.lock().expect("lock").clear();
    }
}

/// Reconciles one Service: decide under the allocator lock, then write.
async fn reconcile_one(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let start = Instant::now();
    let decision: Decision = {
        let mut e = ctx.engine.lock().expect("lock");
        if !e.open() {
            // Not rebuilt yet: allocating now could hand out an IP some other
            // Service holds; the rebuild re-triggers everything.
            return Ok(Action::await_change());
        }
        let Engine { alloc, config, .. } = &mut *e;
        let d = reconcile::decide(alloc, config.as_ref(), &svc, &ctx.class, &ctx.cm_ref);
        if d.allocated || d.released {
            ctx.update_pool_metrics(&e);
        }
        d
    };
    let oref = ObjectRef::from_obj(svc.as_ref());
    if decision.failure.is_some() {
        ctx.failed.lock().expect("lock").insert(oref);
    } else {
        ctx.failed.lock().expect("lock").remove(&oref);
    }
    if let Some(reason) = decision.failure {
        ctx.metrics.failure(reason.metric_label());
    }
    if decision.allocated {
        ctx.metrics.allocations.inc();
    }
    if decision.released {
        ctx.metrics.releases.inc();
        ctx.retry_failed();
    }
    if !ctx.leading() {
        // Stepped down while deciding: the next leader rebuilds from the status.
        return Ok(Action::await_change());
    }
    if let Some(wanted) = &decision.wanted
        && let Some(patch) = status::patch(&svc, wanted, Timestamp::now())
    {
        let api: Api<Service> = Api::namespaced(
            ctx.client.clone(),
            svc.namespace().as_deref().unwrap_or("default"),
        );
        debug!(service = %service::key(&svc), ?wanted, "writing status");
        api.patch_status(
            &svc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    if !decision.notes.is_empty() && ctx.leading() {
        let svc_ref = svc.object_ref(&());
        for n in decision.notes {
            ctx.publish(
                svc_ref.clone(),
                n.warning,
                n.reason.as_str(),
                n.reason.action(),
                n.message,
            );
        }
    }
    ctx.metrics
        .reconcile_duration
        .observe(start.elapsed().as_secs_f64());
    Ok(Action::await_change())
}

fn error_policy(svc: Arc<Service>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let reason = err.metric_label();
    ctx.metrics.reconcile_error(reason);
    let after = err.retry_after();
    debug!(service = %service::key(&svc), error = %err, reason, ?after, "reconcile failed; retrying");
    Action::requeue(after)
}

/// Builds a client from `--kubeconfig` or the environment (`$KUBECONFIG`,
/// `~/.kube/config`, else the in-cluster service account).
pub async fn client(args: &RunArgs) -> Result<Client, Error> {
    Ok(ferrolb_process::kube_client(args.common.kubeconfig.as_deref()).await?)
}

/// Runs the controller until SIGTERM/SIGINT; losing leadership only ends a term.
pub async fn run(args: RunArgs) -> Result<(), Error> {
    let client = client(&args).await?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    let (addr, serve) =
        ferrolb_process::http::bind(args.metrics_addr, metrics.clone(), health.clone()).await?;
    info!(addr = %addr, identity = %identity, "serving /metrics, /livez, /readyz");
    tokio::spawn(async move {
        if let Err(e) = serve.await {
            error!(error = %e, "metrics endpoint stopped");
        }
    });

    let leader_ns = args
        .leader_namespace
        .clone()
        .unwrap_or_else(|| args.config_namespace.clone());
    let elector = Elector {
        api: Api::<Lease>::namespaced(client.clone(), &leader_ns),
        name: args.leader_lease.clone(),
        identity: identity.clone(),
        duration: args.lease_duration,
        renew_period: args.renew_period,
    };
    let (lead_tx, lead_rx) = watch::channel(false);
    tokio::spawn(elector.clone().run(lead_tx));

    let (retry_tx, retry_rx) = mpsc::unbounded_channel();
    let cm_ref = format!("{}/{}", args.config_namespace, args.config_name);
    let (events, events_rx) = EventQueue::new(metrics.clone());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "ferrolb-controller".into(),
            instance: Some(identity.clone()),
        },
    );
    tokio::spawn(crate::events::publish_all(
        recorder,
        events_rx,
        lead_rx.clone(),
    ));
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        engine: Mutex::new(Engine {
            alloc: Allocator::new(Config::default()),
            config: None,
            rebuilt: false,
            needs_fresh_list: false,
        }),
        events,
        metrics: metrics.clone(),
        class: args.lb_class.clone(),
        cm_ref: cm_ref.clone(),
        leading: lead_rx.clone(),
        services_synced: Default::default(),
        retry_tx,
        failed: Mutex::default(),
    });

    // Services: one watch and one store, always running so that a standby
    // takes over with a warm cache.
    let (svc_reader, svc_writer) = reflector::store::<Service>();
    let (touch_tx, touch_rx) = mpsc::unbounded_channel::<Service>();
    // Small list pages: the initial list of a large cluster is decoded page by page, and
    // each page of full Services is a transient peak before `trim` shrinks them.
    let svc_stream = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default().page_size(100),
    )
    .backoff(ferrolb_process::backoff::QuickBackoff::new())
    // The store keeps every Service: drop what the controller never reads.
    .modify(service::trim)
    .reflect(svc_writer);
    {
        let ctx = ctx.clone();
        let store = svc_reader.clone();
        tokio::spawn(async move {
            futures::pin_mut!(svc_stream);
            while let Some(ev) = svc_stream.next().await {
                let forward = ctx.leading() && ctx.engine.lock().expect("lock").open();
                match ev {
                    Ok(Event::Apply(s) | Event::InitApply(s)) if forward => {
                        let _ = touch_tx.send(s);
                    }
                    Ok(Event::Delete(s)) if ctx.leading() => ctx.on_deleted(&s),
                    Ok(Event::InitDone) if ctx.leading() => ctx.sweep(&store),
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "service watch failed; retrying with backoff"),
                }
            }
        });
    }

    // The pool ConfigMap.
    let (cm_known_tx, mut cm_known_rx) = watch::channel(false);
    {
        let ctx = ctx.clone();
        let store = svc_reader.clone();
        let api = Api::<ConfigMap>::namespaced(client.clone(), &args.config_namespace);
        let wc = watcher::Config::default().fields(&format!("metadata.name={}", args.config_name));
        tokio::spawn(async move {
            let stream = watcher(api, wc).backoff(ferrolb_process::backoff::QuickBackoff::new());
            futures::pin_mut!(stream);
            let mut seen = false;
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(Event::Apply(cm) | Event::InitApply(cm)) => {
                        seen = true;
                        ctx.on_configmap(&cm, &store);
                    }
                    Ok(Event::Delete(_)) => {
                        warn!(configmap = %ctx.cm_ref, "pool ConfigMap deleted; the last configuration stays in force");
                    }
                    Ok(Event::InitDone) => {
                        if !seen && ctx.engine.lock().expect("lock").config.is_none() {
                            warn!(configmap = %ctx.cm_ref, "pool ConfigMap not found: allocating nothing until it exists");
                        }
                        let _ = cm_known_tx.send(true);
                    }
                    Ok(Event::Init) => seen = false,
                    Err(e) => warn!(error = %e, "configmap watch failed; retrying with backoff"),
                }
            }
        });
    }

    let shutdown = ferrolb_process::shutdown::signal();
    futures::pin_mut!(shutdown);

    // Standby: caches warm, waiting for the Lease.
    let _ = svc_reader.wait_until_ready().await;
    ctx.services_synced
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = cm_known_rx.wait_for(|k| *k).await;
    info!("caches synced; waiting for leadership");
    if !ctx.leading() {
        health.set_ready(true);
    }

    let term = Term {
        ctx: ctx.clone(),
        store: svc_reader.clone(),
        health: health.clone(),
        touch_rx: Arc::new(tokio::sync::Mutex::new(touch_rx)),
        retry_rx: Arc::new(tokio::sync::Mutex::new(retry_rx)),
        resync_period: args.resync_period,
        secrets: Api::namespaced(client.clone(), &args.config_namespace),
        secret_name: args.membership_secret.clone(),
        secret_namespace: args.config_namespace.clone(),
    };
    loop {
        let mut lead_wait = lead_rx.clone();
        tokio::select! {
            _ = lead_wait.wait_for(|l| *l) => {}
            _ = &mut shutdown => return Ok(()),
        }
        let mut lost = lead_rx.clone();
        tokio::select! {
            biased;
            _ = lost.wait_for(|l| !*l) => {
                // Dropping the term's future cancelled the reconciler and every
                // write it had in flight; the Event worker discards the rest.
                metrics.leader.set(0);
                metrics.stepdowns.inc();
                ctx.step_down();
                health.set_ready(true);
                warn!(identity = %identity, "leadership lost: stepped down, writing nothing; campaigning again");
            }
            _ = &mut shutdown => {
                info!("shutting down: releasing the leader lease");
                elector.release().await;
                return Ok(());
            }
            _ = term.lead() => return Ok(()),
        }
    }
}

/// What one term of leadership works with.
struct Term {
    ctx: Arc<Ctx>,
    store: Store<Service>,
    health: Arc<Health>,
    /// The Service watch's triggers and the retries; each term takes them over
    /// (the lock), so that one channel serves every term.
    touch_rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Service>>>,
    retry_rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<ObjectRef<Service>>>>,
    resync_period: Duration,
    secrets: Api<Secret>,
    secret_name: String,
    secret_namespace: String,
}

impl Term {
    /// Leads: rebuilds the allocator, then reconciles until the future is
    /// dropped (leadership lost, or shutdown). Returns only if the Service
    /// triggers end, which they do not while the process runs.
    async fn lead(&self) {
        let ctx = &self.ctx;
        self.health.set_ready(false);
        ctx.metrics.leader.set(1);
        if ctx.engine.lock().expect("lock").needs_fresh_list {
            info!("leading again: rebuilding the allocator from a fresh list of Services");
            let services = list_services_until_ok(&ctx.client).await;
            ctx.rebuild_from(&services, "fresh list");
        } else {
            info!("leading: rebuilding the allocator");
            ctx.ensure_rebuilt(&self.store);
        }
        self.health.set_ready(true);

        let mut touch = self.touch_rx.clone().lock_owned().await;
        let mut retry = self.retry_rx.clone().lock_owned().await;
        // What an earlier term left queued is stale; trigger_needed finds all there is to do.
        while touch.try_recv().is_ok() {}
        while retry.try_recv().is_ok() {}
        ctx.trigger_needed(&self.store);
        let trigger = futures::stream::unfold(touch, |mut rx| async move {
            let s = rx.recv().await?;
            Some((Ok::<_, watcher::Error>(s), rx))
        });
        let retry_stream = futures::stream::unfold(retry, |mut rx| async move {
            let r = rx.recv().await?;
            Some((r, rx))
        });
        let controller = Controller::for_stream(trigger, self.store.clone())
            // Bounded: a config change re-triggers every Service, and 10,000 reconciles
            // in flight at once would each hold a request future (kilobytes) at the same
            // time, a memory peak that the allocator keeps long after. 64 in flight
            // still writes thousands of statuses per second.
            .with_config(
                kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY),
            )
            .reconcile_on(retry_stream)
            .run(reconcile_one, error_policy, ctx.clone())
            .for_each(|res| async move {
                if let Err(e) = res {
                    debug!(error = %e, "reconcile error");
                }
            });

        // Periodic sweep for deletes missed while not watching. Not at once: after
        // an outage the cache may still lack Services the fresh list adopted, and
        // a sweep now would free their IPs; by the first period the watch caught up.
        let sweeper = async {
            let first = tokio::time::Instant::now() + self.resync_period;
            let mut t = tokio::time::interval_at(first, self.resync_period);
            loop {
                t.tick().await;
                ctx.sweep(&self.store);
            }
        };

        let membership = async {
            let mut t = tokio::time::interval(self.resync_period.min(MEMBERSHIP_CHECK_MAX_PERIOD));
            loop {
                t.tick().await;
                self.ensure_membership_secret().await;
            }
        };

        tokio::select! {
            _ = controller => {}
            _ = sweeper => {}
            _ = membership => {}
        }
    }

    /// Creates the membership Secret when missing; never touches an existing one.
    async fn ensure_membership_secret(&self) {
        let (name, ns) = (&self.secret_name, &self.secret_namespace);
        match crate::membership::ensure(&self.secrets, name, ns).await {
            Ok(crate::membership::Outcome::Created) => {
                info!(secret = %format!("{ns}/{name}"), "membership Secret was missing: created with a new random key");
            }
            Ok(crate::membership::Outcome::Present) => {}
            Ok(crate::membership::Outcome::Unusable(why)) => {
                warn!(secret = %format!("{ns}/{name}"), problem = %why, "membership Secret unusable by speakers; left as it is");
            }
            Err(e) => warn!(error = %e, "membership Secret check failed; retrying"),
        }
    }
}

/// Lists every Service, page by page, trimmed as the cache keeps them; retries
/// every second until the API answers (the caller drops this on step-down).
async fn list_services_until_ok(client: &Client) -> Vec<Arc<Service>> {
    let api = Api::<Service>::all(client.clone());
    loop {
        match list_services(&api).await {
            Ok(s) => return s,
            Err(e) => {
                warn!(error = %e, "listing Services for the rebuild failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn list_services(api: &Api<Service>) -> Result<Vec<Arc<Service>>, kube::Error> {
    let mut out = Vec::new();
    let mut lp = ListParams::default().limit(100);
    loop {
        let page = api.list(&lp).await?;
        let next = page.metadata.continue_.clone().filter(|c| !c.is_empty());
        out.extend(page.items.into_iter().map(|mut s| {
            service::trim(&mut s);
            Arc::new(s)
        }));
        match next {
            Some(c) => lp = lp.continue_token(&c),
            None => return Ok(out),
        }
    }
}

fn watcher<K>(
    api: Api<K>,
    wc: watcher::Config,
) -> impl futures::Stream<Item = Result<Event<K>, watcher::Error>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, wc)
}

fn family_label(f: ferrolb_core::alloc::IpFamily) -> &'static str {
    match f {
        ferrolb_core::alloc::IpFamily::V4 => "ipv4",
        ferrolb_core::alloc::IpFamily::V6 => "ipv6",
    }
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "controller".into());
    format!("{host}-{}", std::process::id())
}
