//! Prometheus metrics of the controller (prometheus-client), served at /metrics.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of the per-pool gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
}

/// Label of the failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// Label of the config reload counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Every metric the controller exports, registered under the `ferrolb_` prefix.
pub struct ControllerMetrics {
    pub registry: Registry,
    /// Addresses in a pool. A float, because an IPv6 pool may hold up to 2^128 addresses.
    pub pool_size: Family<PoolLabels, FloatGauge>,
    /// Addresses of a pool held by Services (shared IPs count once).
    pub pool_in_use: Family<PoolLabels, Gauge>,
    /// Addresses of a pool still free (float, like the size).
    pub pool_free: Family<PoolLabels, FloatGauge>,
    pub allocations: Counter,
    pub releases: Counter,
    pub allocation_failures: Family<ReasonLabels, Counter>,
    pub config_reloads: Family<ResultLabels, Counter>,
    /// 1 while the ConfigMap in the cluster is invalid and the last good one is in force.
    pub config_stale: Gauge,
    /// 1 on the replica that holds the leader Lease.
    pub leader: Gauge,
    /// Terms of leadership that ended without a shutdown (Lease not renewed in
    /// time, or taken by another replica).
    pub stepdowns: Counter,
    pub reconcile_duration: Histogram,
    /// Events dropped because the queue of Events to publish was full.
    pub events_dropped: Counter,
    /// Reconciles that failed, by error kind (`Error::metric_label`).
    pub reconcile_errors: Family<ReasonLabels, Counter>,
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ControllerMetrics {
    /// Builds and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ferrolb");
        let m = ControllerMetrics {
            pool_size: Family::default(),
            pool_in_use: Family::default(),
            pool_free: Family::default(),
            allocations: Counter::default(),
            releases: Counter::default(),
            allocation_failures: Family::default(),
            config_reloads: Family::default(),
            config_stale: Gauge::default(),
            leader: Gauge::default(),
            stepdowns: Counter::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            events_dropped: Counter::default(),
            reconcile_errors: Family::default(),
            registry: Registry::default(),
        };
        registry.register("pool_size", "Addresses in the pool", m.pool_size.clone());
        registry.register(
            "pool_in_use",
            "Addresses of the pool held by Services",
            m.pool_in_use.clone(),
        );
        registry.register(
            "pool_free",
            "Addresses of the pool still free",
            m.pool_free.clone(),
        );
        registry.register("allocations", "IP allocations made", m.allocations.clone());
        registry.register("releases", "IP allocations released", m.releases.clone());
        registry.register(
            "allocation_failures",
            "Allocations that failed, by reason",
            m.allocation_failures.clone(),
        );
        registry.register(
            "config_reloads",
            "Pool configuration loads, by result",
            m.config_reloads.clone(),
        );
        registry.register(
            "config_stale",
            "1 when the ConfigMap is invalid and the last good configuration is in force",
            m.config_stale.clone(),
        );
        registry.register("leader", "1 on the replica that leads", m.leader.clone());
        registry.register(
            "leader_stepdowns",
            "Times this replica lost leadership and stepped down",
            m.stepdowns.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time to reconcile one Service",
            m.reconcile_duration.clone(),
        );
        registry.register(
            "events_dropped",
            "Events dropped because the queue of Events to publish was full",
            m.events_dropped.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error kind",
            m.reconcile_errors.clone(),
        );
        // Every error kind's series exists from the start (at 0), for rates and alerts.
        for reason in crate::error::Error::LABELS {
            let _ = m.reconcile_errors.get_or_create(&ReasonLabels {
                reason: (*reason).to_owned(),
            });
        }
        ControllerMetrics { registry, ..m }
    }

    /// Renders the registry in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts a failed reconcile under its error kind.
    pub fn reconcile_error(&self, reason: &str) {
        self.reconcile_errors
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a failed allocation under its reason.
    pub fn failure(&self, reason: &str) {
        self.allocation_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_render_with_prefix_and_labels() {
        let m = ControllerMetrics::new();
        m.failure("PoolExhausted");
        m.config_stale.set(1);
        m.pool_size
            .get_or_create(&PoolLabels {
                pool: "lan".into(),
                family: "ipv6".into(),
            })
            .set(2f64.powi(64));
        let text = m.encode();
        assert!(
            text.contains("ferrolb_allocation_failures_total{reason=\"PoolExhausted\"} 1"),
            "{text}"
        );
        assert!(text.contains("ferrolb_config_stale 1"), "{text}");
        assert!(
            text.contains("ferrolb_pool_size{pool=\"lan\",family=\"ipv6\"} 18446744073709553000.0"),
            "{text}"
        );
        assert!(
            text.contains("ferrolb_reconcile_duration_seconds_bucket"),
            "{text}"
        );
    }
}
