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

use ferrolb_process::events::{EventData, EventSink, Pending};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::cli::RunArgs;
use crate::engine::Engine;
pub use crate::error::Error;
use crate::http::Health;
use crate::leader::LeaderElector;
use crate::metrics::ControllerMetrics;
use crate::service;
use crate::slim::LbService as Service;
use crate::term::Term;

/// State shared by the watch tasks and the reconciler.
pub struct Ctx {
    pub(crate) client: Client,
    pub(crate) engine: Mutex<Engine>,
    pub(crate) events: EventSink,
    pub(crate) metrics: Arc<ControllerMetrics>,
    pub(crate) class: String,
    pub(crate) cm_ref: String,
    pub(crate) leading: watch::Receiver<bool>,
    /// Set once the Service cache holds the full list: a rebuild before that
    /// would see too few Services and hand their IPs out again.
    pub(crate) services_synced: std::sync::atomic::AtomicBool,
    /// Services whose allocation failed: retried when an IP is released.
    pub(crate) retry_tx: mpsc::UnboundedSender<ObjectRef<Service>>,
    pub(crate) failed: Mutex<std::collections::HashSet<ObjectRef<Service>>>,
}

impl Ctx {
    pub(crate) fn leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Queues an Event (published in the background, never awaited here).
    pub(crate) fn publish(
        &self,
        regarding: k8s_openapi::api::core::v1::ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.events.send(Pending {
            regarding,
            event: EventData {
                warning,
                reason: reason.to_owned(),
                action: action.to_owned(),
                note,
            },
        });
    }
}

/// Builds a client from `--kubeconfig` or the environment (`$KUBECONFIG`,
/// `~/.kube/config`, else the in-cluster service account).
pub async fn client(args: &RunArgs) -> Result<Client, Error> {
    Ok(ferrolb_process::kube_client(args.common.kubeconfig.as_deref()).await?)
}

/// Runs the controller until SIGTERM/SIGINT; losing leadership only ends a term.
pub async fn run(args: RunArgs) -> Result<(), Error> {
    let client = client(&args).await?;
    let metrics = Arc::new(ControllerMetrics::new());
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
    let elector = LeaderElector {
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
    // Publishing stops when `run` returns (`_publisher` dropped).
    let (events, _publisher) =
        crate::events::start(client.clone(), &identity, &metrics, lead_rx.clone());
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        engine: Mutex::new(Engine::new()),
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
                    Ok(Event::Delete(s)) if ctx.leading() => ctx.on_deleted(&s, &store),
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
                ctx.step_down(&svc_reader);
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

fn watcher<K>(
    api: Api<K>,
    wc: watcher::Config,
) -> impl futures::Stream<Item = Result<Event<K>, watcher::Error>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, wc)
}

fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "controller".into());
    format!("{host}-{}", std::process::id())
}
