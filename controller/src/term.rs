//! One term of leadership: rebuild the allocator, then reconcile (the kube-runtime
//! `Controller`), sweep missed deletes and keep the membership Secret, until the term
//! ends; and the reconcile of one Service, which carries a pure decision out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::engine::Engine;
use crate::error::Error;
use crate::http::Health;
use crate::reconcile::{self, ServiceDecision};
use crate::run::Ctx;
use crate::service::{self, ServiceView};
use crate::slim::LbService as Service;
use crate::status;

/// Reconciles running at once, at most.
const RECONCILE_CONCURRENCY: u16 = 64;

/// How often, at most, the leader checks that the membership Secret exists.
const MEMBERSHIP_CHECK_MAX_PERIOD: Duration = Duration::from_secs(30);

/// Reconciles one Service: decide under the allocator lock, then write.
pub(crate) async fn reconcile_one(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let start = Instant::now();
    // Read before the allocator lock is taken: the lock is held only to decide.
    let view = ServiceView::new(&svc, &ctx.class);
    let decision: ServiceDecision = {
        let mut e = ctx.engine.lock().expect("lock");
        if !e.open() {
            // Not rebuilt yet: allocating now could hand out an IP some other
            // Service holds; the rebuild re-triggers everything.
            return Ok(Action::await_change());
        }
        let Engine { alloc, config, .. } = &mut *e;
        let d = reconcile::decide(alloc, config.as_ref(), &view, &ctx.cm_ref);
        if d.allocated || d.released {
            ctx.set_pool_metrics(&e.alloc.pool_stats());
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
        debug!(service = %view.key, ?wanted, "writing status");
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

pub(crate) fn error_policy(svc: Arc<Service>, err: &Error, ctx: Arc<Ctx>) -> Action {
    let reason = err.metric_label();
    ctx.metrics.reconcile_error(reason);
    let after = err.retry_after();
    debug!(service = %service::key(&svc), error = %err, reason, ?after, "reconcile failed; retrying");
    Action::requeue(after)
}

/// What one term of leadership works with.
pub(crate) struct Term {
    pub(crate) ctx: Arc<Ctx>,
    pub(crate) store: Store<Service>,
    pub(crate) health: Arc<Health>,
    /// The Service watch's triggers and the retries; each term takes them over
    /// (the lock), so that one channel serves every term.
    pub(crate) touch_rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Service>>>,
    pub(crate) retry_rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<ObjectRef<Service>>>>,
    pub(crate) resync_period: Duration,
    pub(crate) secrets: Api<Secret>,
    pub(crate) secret_name: String,
    pub(crate) secret_namespace: String,
}

impl Term {
    /// Leads: rebuilds the allocator, then reconciles until the future is
    /// dropped (leadership lost, or shutdown). Returns only if the Service
    /// triggers end, which they do not while the process runs.
    pub(crate) async fn lead(&self) {
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
pub(crate) async fn list_services_until_ok(client: &Client) -> Vec<Arc<Service>> {
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
