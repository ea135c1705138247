//! The allocator's state transitions on the shared context: configuration changes,
//! deletes and the sweep of missed ones, rebuilds from the Services' status, which
//! Services need a reconcile, the step-down, and the pool metrics they move.

use std::sync::Arc;
use std::time::Instant;

use ferrolb_config::parse_configmap_data;
use ferrolb_core::alloc::Allocator;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::{error, info};

use crate::metrics::PoolLabels;
use crate::reconcile;
use crate::run::{Ctx, Engine};
use crate::service;
use crate::slim::LbService as Service;
use crate::status;

impl Ctx {
    pub(crate) fn update_pool_metrics(&self, engine: &Engine) {
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
    pub(crate) fn retry_failed(&self) {
        for r in self.failed.lock().expect("lock").iter() {
            let _ = self.retry_tx.send(r.clone());
        }
    }

    /// A Service was deleted: release its IPs at once.
    pub(crate) fn on_deleted(&self, svc: &Service) {
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
    pub(crate) fn sweep(&self, store: &Store<Service>) {
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
    pub(crate) fn on_configmap(&self, cm: &ConfigMap, store: &Store<Service>) {
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
    pub(crate) fn trigger_needed(&self, store: &Store<Service>) {
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
    pub(crate) fn ensure_rebuilt(&self, store: &Store<Service>) {
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
    pub(crate) fn rebuild_from(&self, services: &[Arc<Service>], source: &str) {
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
    pub(crate) fn step_down(&self) {
        let mut e = self.engine.lock().expect("lock");
        e.alloc = Allocator::new(e.config.clone().unwrap_or_default());
        e.rebuilt = false;
        e.needs_fresh_list = true;
        self.update_pool_metrics(&e);
        drop(e);
        self.failed.lock().expect("lock").clear();
    }
}

fn family_label(f: ferrolb_core::alloc::IpFamily) -> &'static str {
    match f {
        ferrolb_core::alloc::IpFamily::V4 => "ipv4",
        ferrolb_core::alloc::IpFamily::V6 => "ipv6",
    }
}
