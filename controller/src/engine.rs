//! The allocator's state transitions: configuration changes, deletes and the sweep of
//! missed ones, rebuilds from the Services' status, which Services need a reconcile,
//! and the step-down.
//!
//! Each transition is a pure method of `Engine` (plain data in, the new state and a
//! list of `Effect`s out), unit-tested below; `Ctx::carry_out` is the shell that
//! turns effects into metrics, logs, Events and reconciles.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use ferrolb_config::{Config, Format, parse_configmap_data};
use ferrolb_core::alloc::{Allocator, HolderKey, PoolStats};
use ferrolb_core::service::{ServiceKey, split_key};
use ferrolb_process::events::{EventData, Pending};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::jiff::Timestamp;
use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use tracing::{error, info};

use crate::metrics::{PoolLabels, ResultLabels};
use crate::reconcile;
use crate::run::Ctx;
use crate::service::{self, ServiceView};
use crate::slim::LbService as Service;
use crate::status;

/// The allocator with the configuration it was built from.
pub(crate) struct Engine {
    pub(crate) alloc: Allocator,
    pub(crate) config: Option<Config>,
    /// True once the allocator was rebuilt from the Services' status.
    pub(crate) rebuilt: bool,
    /// Set when a term ended: the cache may have missed changes while the API
    /// was out of reach, so the next rebuild must come from a fresh list.
    pub(crate) needs_fresh_list: bool,
}

/// Why an allocation was released outside a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReleaseCause {
    /// The Service's delete was seen.
    Deleted,
    /// A relist no longer holds the Service (its delete was missed).
    Gone,
}

/// What the shell does for an [`Engine`] transition, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// An allocation was released: count and log it.
    Released {
        service: HolderKey,
        ips: Vec<IpAddr>,
        cause: ReleaseCause,
    },
    /// The pools' gauges are now these.
    PoolMetrics(Vec<PoolStats>),
    /// An address was freed: retry the Services whose allocation failed.
    RetryFailed,
    /// The Service's failed allocation is no longer to be retried (it was deleted).
    ForgetFailure(ServiceKey),
    /// No failed allocation is to be retried (the term ended).
    ForgetFailures,
    /// A configuration was loaded: count, clear the stale flag and log.
    ConfigLoaded { format: Format, pools: usize },
    /// A configuration was rejected: count, set the stale flag and log.
    ConfigRejected { problems: String },
    /// An allocation is not valid under the new configuration: its Service gets another.
    Reallocating {
        service: HolderKey,
        ips: Vec<IpAddr>,
    },
    /// Queue an Event.
    Publish(Pending),
    /// Rebuild the allocator if it was not, then send every Service whose reconcile
    /// would change something to the reconciler.
    RebuildAndTrigger,
}

impl Engine {
    /// An engine without configuration: allocates nothing.
    pub(crate) fn new() -> Self {
        Self {
            alloc: Allocator::new(Config::default()),
            config: None,
            rebuilt: false,
            needs_fresh_list: false,
        }
    }

    /// Reconciling is safe once the allocator was rebuilt; without any
    /// configuration it is too, as nothing is allocated then.
    pub(crate) fn open(&self) -> bool {
        self.rebuilt || self.config.is_none()
    }

    fn pool_metrics(&self) -> Effect {
        Effect::PoolMetrics(self.alloc.pool_stats())
    }

    /// A Service was deleted: its IPs are released at once.
    pub(crate) fn delete(&mut self, service: &ServiceKey) -> Vec<Effect> {
        let mut out = Vec::new();
        let released = self.alloc.release(&service.to_string());
        if let Some(a) = &released {
            out.push(self.pool_metrics());
            out.push(Effect::Released {
                service: service.to_string(),
                ips: a.ips.clone(),
                cause: ReleaseCause::Deleted,
            });
        }
        out.push(Effect::ForgetFailure(service.clone()));
        if released.is_some() {
            out.push(Effect::RetryFailed);
        }
        out
    }

    /// After a relist holding the `live` Services: allocations of the others are
    /// released. Nothing before the rebuild (the allocator holds nothing to sweep yet).
    pub(crate) fn sweep(&mut self, live: &BTreeSet<(&str, &str)>) -> Vec<Effect> {
        if !self.rebuilt {
            return Vec::new();
        }
        // A key that does not read back as a Service key matches no live Service.
        let gone: Vec<HolderKey> = self
            .alloc
            .keys()
            .filter(|k| split_key(k).is_none_or(|k| !live.contains(&k)))
            .map(str::to_owned)
            .collect();
        let mut out: Vec<Effect> = gone
            .into_iter()
            .map(|service| {
                let ips = self
                    .alloc
                    .release(&service)
                    .map(|a| a.ips)
                    .unwrap_or_default();
                Effect::Released {
                    service,
                    ips,
                    cause: ReleaseCause::Gone,
                }
            })
            .collect();
        if !out.is_empty() {
            out.push(self.pool_metrics());
            out.push(Effect::RetryFailed);
        }
        out
    }

    /// A new version of the pool ConfigMap, `data` of the object `configmap`. A valid
    /// one takes effect (addresses the new pools hold go to their `services` first);
    /// an invalid one changes nothing, and the leader says why in an Event.
    pub(crate) fn configure(
        &mut self,
        data: &BTreeMap<String, String>,
        configmap: ObjectReference,
        services: &[Arc<Service>],
        class: &str,
        leading: bool,
    ) -> Vec<Effect> {
        let parsed = match parse_configmap_data(data) {
            Ok(p) => p,
            Err(problems) => {
                let problems = problems.to_string();
                let note = format!(
                    "configuration rejected, the last good one stays in force:\n{problems}"
                );
                let mut out = vec![Effect::ConfigRejected { problems }];
                if leading {
                    out.push(Effect::Publish(Pending {
                        regarding: configmap,
                        event: EventData {
                            warning: true,
                            reason: "InvalidConfiguration".into(),
                            action: "LoadConfig".into(),
                            note,
                        },
                    }));
                }
                return out;
            }
        };
        let mut out = vec![Effect::ConfigLoaded {
            format: parsed.format,
            pools: parsed.config.pools.len(),
        }];
        let moved = self.alloc.set_config(parsed.config.clone());
        self.config = Some(parsed.config);
        if self.rebuilt {
            // Addresses the new pools now hold go to their Services first.
            let views = services.iter().map(|s| ServiceView::new(s, class));
            reconcile::adopt_unheld(&mut self.alloc, views);
        }
        out.push(self.pool_metrics());
        out.extend(moved.into_iter().map(|(service, a)| Effect::Reallocating {
            service,
            ips: a.ips,
        }));
        if leading {
            out.push(Effect::RebuildAndTrigger);
        }
        out
    }

    /// The Services among `services` whose reconcile would change something (an
    /// allocation, a status write or an Event); `None` while reconciling is not open
    /// (the rebuild triggers again).
    ///
    /// The decisions are taken on a copy of the allocator, so this changes nothing.
    /// Triggering every Service instead would run thousands of reconciles that find
    /// nothing to do, and their bookkeeping, at once: memory at every restart and config
    /// change (BENCHMARKS.md, "Controller").
    pub(crate) fn needing_reconcile<'a>(
        &self,
        services: &'a [Arc<Service>],
        class: &str,
        cm: &str,
        now: Timestamp,
    ) -> Option<Vec<&'a Arc<Service>>> {
        if !self.open() {
            return None;
        }
        let mut alloc = self.alloc.clone();
        let config = self.config.as_ref();
        Some(
            services
                .iter()
                .filter(|svc| {
                    let d =
                        reconcile::decide(&mut alloc, config, &ServiceView::new(svc, class), cm);
                    let writes = d
                        .wanted
                        .as_ref()
                        .is_some_and(|w| status::patch(svc, w, now).is_some());
                    writes || d.allocated || d.released || !d.notes.is_empty()
                })
                .collect(),
        )
    }

    /// Rebuilds the allocator from these Services' status, once per term and only with
    /// a configuration (without one nothing is allocated, and the configuration's
    /// arrival rebuilds). Returns how many Services were adopted, if it rebuilt.
    pub(crate) fn rebuild(&mut self, services: &[Arc<Service>], class: &str) -> Option<usize> {
        self.needs_fresh_list = false;
        if self.rebuilt || self.config.is_none() {
            return None;
        }
        let views = services.iter().map(|s| ServiceView::new(s, class));
        let adopted = reconcile::rebuild(&mut self.alloc, views);
        self.rebuilt = true;
        Some(adopted)
    }

    /// The term ended: every allocation is forgotten (the next leader, maybe this
    /// replica, rebuilds from the Services' status), and every pending retry.
    pub(crate) fn step_down(&mut self) -> Vec<Effect> {
        self.alloc = Allocator::new(self.config.clone().unwrap_or_default());
        self.rebuilt = false;
        self.needs_fresh_list = true;
        vec![self.pool_metrics(), Effect::ForgetFailures]
    }
}

impl Ctx {
    /// Runs one transition of the engine under its lock and carries out its effects:
    /// in order and under the lock (so that the pool gauges follow the transitions in
    /// the order they happened), except those that take the lock themselves or wake
    /// reconciles, which run after it is released.
    fn transition(&self, store: &Store<Service>, step: impl FnOnce(&mut Engine) -> Vec<Effect>) {
        let mut engine = self.engine.lock().expect("lock");
        let mut after = Vec::new();
        for effect in step(&mut engine) {
            match effect {
                Effect::RetryFailed | Effect::RebuildAndTrigger => after.push(effect),
                now => self.carry_out(now, store),
            }
        }
        drop(engine);
        for effect in after {
            self.carry_out(effect, store);
        }
    }

    fn carry_out(&self, effect: Effect, store: &Store<Service>) {
        match effect {
            Effect::Released {
                service,
                ips,
                cause,
            } => {
                self.metrics.releases.inc();
                match cause {
                    ReleaseCause::Deleted => info!(%service, ?ips, "service deleted: IPs released"),
                    ReleaseCause::Gone => {
                        info!(%service, ?ips, "service gone (missed delete): IPs released")
                    }
                }
            }
            Effect::PoolMetrics(stats) => self.set_pool_metrics(&stats),
            Effect::RetryFailed => self.retry_failed(),
            Effect::ForgetFailure(key) => {
                let r = ObjectRef::new(&key.name).within(&key.namespace);
                self.failed.lock().expect("lock").remove(&r);
            }
            Effect::ForgetFailures => self.failed.lock().expect("lock").clear(),
            Effect::ConfigLoaded { format, pools } => {
                info!(?format, pools, "pool configuration loaded");
                self.count_reload("ok");
                self.metrics.config_stale.set(0);
            }
            Effect::ConfigRejected { problems } => {
                error!(configmap = %self.cm_ref, %problems, "invalid pool configuration rejected; the last good one stays in force");
                self.count_reload("error");
                self.metrics.config_stale.set(1);
            }
            Effect::Reallocating { service, ips } => {
                info!(%service, ?ips, "IP no longer valid under the new configuration: reallocating");
            }
            Effect::Publish(p) => self.events.send(p),
            Effect::RebuildAndTrigger => {
                self.ensure_rebuilt(store);
                self.trigger_needed(store);
            }
        }
    }

    fn count_reload(&self, result: &str) {
        self.metrics
            .config_reloads
            .get_or_create(&ResultLabels {
                result: result.into(),
            })
            .inc();
    }

    /// Sets the pool gauges to `stats` (pools no longer configured disappear).
    pub(crate) fn set_pool_metrics(&self, stats: &[PoolStats]) {
        self.metrics.pool_size.clear();
        self.metrics.pool_in_use.clear();
        self.metrics.pool_free.clear();
        for s in stats {
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
    pub(crate) fn on_deleted(&self, svc: &Service, store: &Store<Service>) {
        self.transition(store, |e| e.delete(&service::key(svc)));
    }

    /// After a relist: release allocations whose Service no longer exists.
    pub(crate) fn sweep(&self, store: &Store<Service>) {
        // Borrowed names: a relist of every Service copies no string.
        let services = store.state();
        let live: BTreeSet<(&str, &str)> = services.iter().map(|s| service::key_parts(s)).collect();
        self.transition(store, |e| e.sweep(&live));
    }

    /// A new version of the pool ConfigMap.
    pub(crate) fn on_configmap(&self, cm: &ConfigMap, store: &Store<Service>) {
        let data = cm.data.clone().unwrap_or_default();
        let (services, leading) = (store.state(), self.leading());
        self.transition(store, |e| {
            e.configure(&data, cm.object_ref(&()), &services, &self.class, leading)
        });
    }

    /// Sends to the reconciler every Service whose reconcile would change something
    /// ([`Engine::needing_reconcile`]), after leadership was gained or the
    /// configuration changed.
    pub(crate) fn trigger_needed(&self, store: &Store<Service>) {
        let t = Instant::now();
        let services = store.state();
        let needed = {
            let e = self.engine.lock().expect("lock");
            e.needing_reconcile(&services, &self.class, &self.cm_ref, Timestamp::now())
        };
        let Some(needed) = needed else {
            return; // the rebuild triggers again
        };
        for svc in &needed {
            let _ = self.retry_tx.send(ObjectRef::from_obj(svc.as_ref()));
        }
        info!(
            services = services.len(),
            triggered = needed.len(),
            elapsed_ms = t.elapsed().as_millis() as u64,
            "services to reconcile after a configuration or leadership change"
        );
        // The allocator copy (gone with `needing_reconcile`) and the rebuild's requests
        // were the largest transient memory of a restart or reload: give those pages
        // back now.
        drop(needed);
        drop(services);
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

    /// Rebuilds the allocator from these Services' status ([`Engine::rebuild`]).
    pub(crate) fn rebuild_from(&self, services: &[Arc<Service>], source: &str) {
        let t = Instant::now();
        let mut e = self.engine.lock().expect("lock");
        let Some(adopted) = e.rebuild(services, &self.class) else {
            return;
        };
        self.set_pool_metrics(&e.alloc.pool_stats());
        info!(
            services = services.len(),
            adopted,
            source,
            elapsed_ms = t.elapsed().as_millis() as u64,
            "allocator rebuilt from Service status"
        );
    }

    /// The term ended ([`Engine::step_down`]).
    pub(crate) fn step_down(&self, store: &Store<Service>) {
        self.transition(store, Engine::step_down);
    }
}

fn family_label(f: ferrolb_core::alloc::IpFamily) -> &'static str {
    match f {
        ferrolb_core::alloc::IpFamily::V4 => "ipv4",
        ferrolb_core::alloc::IpFamily::V6 => "ipv6",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_core::alloc::IpFamily;

    const CLASS: &str = "ferrolb.io/lb";
    const CM: &str = "ferrolb-system/ferrolb-config";

    fn data(yaml: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("config.yaml".to_owned(), yaml.to_owned())])
    }

    fn pool(range: &str) -> BTreeMap<String, String> {
        data(&format!(
            "pools:\n  - name: lan\n    addresses:\n      - {range}\n"
        ))
    }

    fn cm_ref() -> ObjectReference {
        ObjectReference {
            kind: Some("ConfigMap".into()),
            namespace: Some("ferrolb-system".into()),
            name: Some("ferrolb-config".into()),
            ..Default::default()
        }
    }

    fn lb(ns: &str, name: &str) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": ns, "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"type": "LoadBalancer"}
            }))
            .unwrap(),
        )
    }

    /// An engine configured with `range`, rebuilt from no Service, holding an
    /// allocation for each of `services`.
    fn engine_with(range: &str, services: &[Arc<Service>]) -> Engine {
        let mut e = Engine::new();
        e.configure(&pool(range), cm_ref(), &[], CLASS, false);
        assert_eq!(e.rebuild(&[], CLASS), Some(0));
        for s in services {
            let view = ServiceView::new(s, CLASS);
            let d = reconcile::decide(&mut e.alloc, e.config.as_ref(), &view, CM);
            assert!(d.allocated, "{d:?}");
        }
        e
    }

    fn in_use(effects: &[Effect]) -> Vec<u64> {
        effects
            .iter()
            .filter_map(|f| match f {
                Effect::PoolMetrics(stats) => Some(stats.iter().map(|s| s.in_use).sum()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_delete_releases_updates_the_gauges_and_retries_the_failed() {
        let web = lb("shop", "web");
        let mut e = engine_with("192.0.2.10/32", std::slice::from_ref(&web));
        let key = ServiceKey::new("shop", "web");
        let fx = e.delete(&key);
        assert_eq!(in_use(&fx), [0]);
        assert_eq!(
            fx[1..],
            [
                Effect::Released {
                    service: "shop/web".into(),
                    ips: vec!["192.0.2.10".parse().unwrap()],
                    cause: ReleaseCause::Deleted,
                },
                Effect::ForgetFailure(key.clone()),
                Effect::RetryFailed,
            ]
        );
        assert!(e.alloc.get("shop/web").is_none());
        // Deleting a Service without an allocation only forgets its failure: no
        // retry, as nothing was freed.
        assert_eq!(e.delete(&key), [Effect::ForgetFailure(key)]);
    }

    #[test]
    fn a_sweep_releases_only_services_gone_and_only_after_the_rebuild() {
        let (a, b) = (lb("default", "a"), lb("default", "b"));
        let mut e = engine_with("192.0.2.10/31", &[a.clone(), b.clone()]);
        let live = BTreeSet::from([("default", "a")]);
        let fx = e.sweep(&live);
        assert_eq!(
            fx[0],
            Effect::Released {
                service: "default/b".into(),
                ips: vec!["192.0.2.11".parse().unwrap()],
                cause: ReleaseCause::Gone,
            }
        );
        assert_eq!(in_use(&fx), [1]);
        assert_eq!(fx.last(), Some(&Effect::RetryFailed));
        assert!(e.alloc.get("default/a").is_some());
        assert!(e.sweep(&live).is_empty(), "nothing more to sweep");

        // Not rebuilt (a new term): the allocator is not to be trusted yet.
        let mut e = engine_with("192.0.2.10/31", &[a]);
        e.rebuilt = false;
        assert!(e.sweep(&BTreeSet::new()).is_empty());
        assert!(e.alloc.get("default/a").is_some());
    }

    #[test]
    fn a_valid_configuration_takes_effect_and_the_leader_triggers_reconciles() {
        let web = lb("default", "web");
        let mut e = engine_with("192.0.2.10/32", std::slice::from_ref(&web));
        // The new pool no longer holds web's address.
        let fx = e.configure(&pool("198.51.100.0/31"), cm_ref(), &[web], CLASS, true);
        assert!(
            matches!(fx[0], Effect::ConfigLoaded { pools: 1, .. }),
            "{fx:?}"
        );
        let Effect::PoolMetrics(stats) = &fx[1] else {
            panic!("{fx:?}")
        };
        assert_eq!((stats[0].family, stats[0].size), (IpFamily::V4, 2));
        assert_eq!(
            fx[2],
            Effect::Reallocating {
                service: "default/web".into(),
                ips: vec!["192.0.2.10".parse().unwrap()],
            }
        );
        assert_eq!(fx[3..], [Effect::RebuildAndTrigger]);
        assert!(e.config.is_some());
        // A standby applies it too, but triggers nothing.
        let fx = e.configure(&pool("198.51.100.0/30"), cm_ref(), &[], CLASS, false);
        assert!(!fx.contains(&Effect::RebuildAndTrigger), "{fx:?}");
    }

    #[test]
    fn an_invalid_configuration_changes_nothing_and_only_the_leader_says_so() {
        let mut e = engine_with("192.0.2.10/32", &[lb("default", "web")]);
        let bad = data("pools:\n  - name: lan\n    addresses: [not-a-cidr]\n");
        let fx = e.configure(&bad, cm_ref(), &[], CLASS, false);
        let [Effect::ConfigRejected { problems }] = &fx[..] else {
            panic!("{fx:?}")
        };
        assert!(problems.contains("not-a-cidr"), "{problems}");
        assert!(
            e.alloc.get("default/web").is_some(),
            "the last good one stays"
        );

        let fx = e.configure(&bad, cm_ref(), &[], CLASS, true);
        let Some(Effect::Publish(p)) = fx.get(1) else {
            panic!("{fx:?}")
        };
        assert_eq!(p.regarding, cm_ref());
        assert!(p.event.warning);
        assert_eq!(p.event.reason, "InvalidConfiguration");
        assert!(p.event.note.contains("not-a-cidr"), "{}", p.event.note);
    }

    #[test]
    fn only_services_whose_reconcile_changes_something_are_triggered() {
        let (old, new) = (lb("default", "old"), lb("default", "new"));
        let e = engine_with("192.0.2.10/31", std::slice::from_ref(&old));
        // `old` holds an address but its status does not show it yet: both need one.
        let services = [old, new];
        let needed = e
            .needing_reconcile(&services, CLASS, CM, Timestamp::UNIX_EPOCH)
            .unwrap();
        assert_eq!(needed.len(), 2);
        assert!(e.alloc.get("default/new").is_none(), "decided on a copy");
        // A Service of another class is nothing to ferrolb.
        let mut other = (*lb("default", "other")).clone();
        other.spec.load_balancer_class = Some("example.com/lb".into());
        let others = [Arc::new(other)];
        let needed = e
            .needing_reconcile(&others, CLASS, CM, Timestamp::UNIX_EPOCH)
            .unwrap();
        assert!(needed.is_empty());
        // Not open before the rebuild.
        let mut closed = engine_with("192.0.2.10/31", &[]);
        closed.rebuilt = false;
        assert!(
            closed
                .needing_reconcile(&services, CLASS, CM, Timestamp::UNIX_EPOCH)
                .is_none()
        );
    }

    #[test]
    fn a_step_down_forgets_every_allocation_and_failure() {
        let mut e = engine_with("192.0.2.10/32", &[lb("default", "web")]);
        let fx = e.step_down();
        assert_eq!(in_use(&fx), [0]);
        assert_eq!(fx[1..], [Effect::ForgetFailures]);
        assert!(e.alloc.get("default/web").is_none());
        assert!(!e.rebuilt && e.needs_fresh_list && e.config.is_some());
        // The next rebuild comes from a fresh list, once.
        assert_eq!(e.rebuild(&[], CLASS), Some(0));
        assert!(!e.needs_fresh_list);
        assert_eq!(e.rebuild(&[], CLASS), None);
    }
}
