//! Prometheus metrics of the speaker (`/metrics`).

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::dataplane::Dataplane;

/// Direction of a leadership change.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabels {
    /// `gained` or `lost`.
    pub change: &'static str,
}

/// Reason a heartbeat was dropped.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// [`ferrolb_core::membership::DropReason::metric_label`].
    pub reason: &'static str,
}

/// This node's mode.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    /// [`ferrolb_core::election::SelfMode::metric_label`].
    pub mode: &'static str,
}

/// The speaker's metrics.
pub struct SpeakerMetrics {
    registry: Registry,
    /// IPs this node currently answers for.
    pub announced_ips: Gauge,
    /// Speakers this node considers live (itself included when its Lease is held).
    pub live_speakers: Gauge,
    /// 1 while this node may announce (alive with a view, not frozen out or silenced).
    pub live: Gauge,
    /// 1 for this node's current mode (normal, frozen, silenced, no_view), 0 for the others.
    pub mode: Family<ModeLabels, Gauge>,
    /// 1 while this node's last successful API server request is recent.
    pub api_view_fresh: Gauge,
    /// Peers heard within the peer timeout.
    pub membership_alive: Gauge,
    /// Heartbeat datagrams sent.
    pub heartbeats_sent: Counter,
    /// Heartbeat datagrams that could not be sent.
    pub heartbeat_send_errors: Counter,
    /// Heartbeat datagrams received (before authentication).
    pub heartbeats_received: Counter,
    /// Heartbeat datagrams dropped, by reason.
    pub heartbeats_dropped: Family<DropLabels, Counter>,
    /// Events dropped because the publishing queue was full
    /// ([`ferrolb_process::events`]).
    pub events_dropped: Counter,
    /// Service IPs that no node can announce.
    pub ips_without_announcer: Gauge,
    /// IPs gained / lost by this node.
    pub leadership_changes: Family<ChangeLabels, Counter>,
    /// Successful Lease renewals (API writes).
    pub lease_renewals: Counter,
    /// Failed Lease renewals.
    pub lease_renew_failures: Counter,
    /// Elections computed.
    pub elections: Counter,
    /// Interfaces on which the kernel itself would answer ARP for Service IPs.
    pub strict_arp_problems: Gauge,
}

impl std::fmt::Debug for SpeakerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeakerMetrics").finish_non_exhaustive()
    }
}

impl SpeakerMetrics {
    /// Creates the metrics, with the packet counters read from `dataplane` at scrape time.
    pub fn new(dataplane: Arc<dyn Dataplane>) -> Self {
        let mut registry = Registry::with_prefix("ferrolb_speaker");
        let announced_ips = Gauge::default();
        let live_speakers = Gauge::default();
        let live = Gauge::default();
        let mode = Family::<ModeLabels, Gauge>::default();
        let api_view_fresh = Gauge::default();
        let membership_alive = Gauge::default();
        let heartbeats_sent = Counter::default();
        let heartbeat_send_errors = Counter::default();
        let heartbeats_received = Counter::default();
        let heartbeats_dropped = Family::<DropLabels, Counter>::default();
        let events_dropped = Counter::default();
        let ips_without_announcer = Gauge::default();
        let leadership_changes = Family::<ChangeLabels, Counter>::default();
        let lease_renewals = Counter::default();
        let lease_renew_failures = Counter::default();
        let elections = Counter::default();
        let strict_arp_problems = Gauge::default();
        registry.register(
            "announced_ips",
            "Service IPs this node answers ARP/NDP for",
            announced_ips.clone(),
        );
        registry.register(
            "live_speakers",
            "Speakers this node considers live",
            live_speakers.clone(),
        );
        registry.register(
            "live",
            "1 while this node may announce (alive with a view, not silenced)",
            live.clone(),
        );
        registry.register("mode", "1 for this node's current mode", mode.clone());
        registry.register(
            "api_view_fresh",
            "1 while this node's last successful API server request is recent",
            api_view_fresh.clone(),
        );
        registry.register(
            "membership_alive_peers",
            "Peers heard (directly or through a relay) within the peer timeout",
            membership_alive.clone(),
        );
        registry.register(
            "heartbeats_sent",
            "Heartbeat datagrams sent",
            heartbeats_sent.clone(),
        );
        registry.register(
            "heartbeat_send_errors",
            "Heartbeat datagrams that could not be sent",
            heartbeat_send_errors.clone(),
        );
        registry.register(
            "heartbeats_received",
            "Heartbeat datagrams received, before authentication",
            heartbeats_received.clone(),
        );
        registry.register(
            "heartbeats_dropped",
            "Heartbeat datagrams dropped (malformed, unauthenticated, replayed, other cluster), by reason",
            heartbeats_dropped.clone(),
        );
        registry.register(
            "ips_without_announcer",
            "Service IPs no node can announce",
            ips_without_announcer.clone(),
        );
        registry.register(
            "leadership_changes",
            "Service IPs gained or lost by this node",
            leadership_changes.clone(),
        );
        registry.register(
            "lease_renewals",
            "Successful Lease renewals",
            lease_renewals.clone(),
        );
        registry.register(
            "lease_renew_failures",
            "Failed Lease renewals",
            lease_renew_failures.clone(),
        );
        registry.register("elections", "Elections computed", elections.clone());
        registry.register(
            "strict_arp_problems",
            "Interfaces on which the kernel would answer ARP for Service IPs itself (kube-proxy IPVS without strictARP)",
            strict_arp_problems.clone(),
        );
        registry.register(
            "events_dropped",
            "Events dropped because the publishing queue was full",
            events_dropped.clone(),
        );
        registry.register_collector(Box::new(DataplaneCollector(dataplane)));
        // Every series exists from the start (at 0), so that rates and alerts work
        // before the first event.
        for r in ferrolb_core::membership::DropReason::ALL {
            let _ = heartbeats_dropped.get_or_create(&DropLabels {
                reason: r.metric_label(),
            });
        }
        let m = Self {
            registry,
            announced_ips,
            live_speakers,
            live,
            mode,
            api_view_fresh,
            membership_alive,
            heartbeats_sent,
            heartbeat_send_errors,
            heartbeats_received,
            heartbeats_dropped,
            events_dropped,
            ips_without_announcer,
            leadership_changes,
            lease_renewals,
            lease_renew_failures,
            elections,
            strict_arp_problems,
        };
        m.set_mode("no_view");
        m
    }

    /// Records `gained` and `lost` IPs.
    pub fn record_changes(&self, gained: usize, lost: usize) {
        self.leadership_changes
            .get_or_create(&ChangeLabels { change: "gained" })
            .inc_by(gained as u64);
        self.leadership_changes
            .get_or_create(&ChangeLabels { change: "lost" })
            .inc_by(lost as u64);
    }

    /// Counts a dropped heartbeat.
    pub fn heartbeat_dropped(&self, reason: &'static str) {
        self.heartbeats_dropped
            .get_or_create(&DropLabels { reason })
            .inc();
    }

    /// Sets the mode gauges: 1 for `current`, 0 for the others.
    pub fn set_mode(&self, current: &'static str) {
        for m in ["normal", "frozen", "silenced", "no_view"] {
            self.mode
                .get_or_create(&ModeLabels { mode: m })
                .set(i64::from(m == current));
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "could not encode metrics");
        }
        out
    }
}

/// Reads the data plane's packet counters on each scrape.
struct DataplaneCollector(Arc<dyn Dataplane>);

impl std::fmt::Debug for DataplaneCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataplaneCollector")
    }
}

impl Collector for DataplaneCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = self.0.counters();
        for (name, help, value) in [
            (
                "arp_requests_seen",
                "ARP requests received",
                c.arp_requests_seen,
            ),
            ("arp_replies_sent", "ARP replies sent", c.arp_replies_sent),
            (
                "ndp_solicitations_seen",
                "Neighbor Solicitations received",
                c.ndp_solicitations_seen,
            ),
            (
                "ndp_advertisements_sent",
                "Solicited Neighbor Advertisements sent",
                c.ndp_advertisements_sent,
            ),
            (
                "gratuitous_sent",
                "Gratuitous ARPs and unsolicited Neighbor Advertisements sent",
                c.gratuitous_sent,
            ),
        ] {
            let counter: ConstCounter<u64> = ConstCounter::new(value);
            let m = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::RecordingDataplane;

    #[test]
    fn exposition_has_every_metric_with_values() {
        let dp = Arc::new(RecordingDataplane::new());
        dp.set_announced(["192.0.2.1".parse().unwrap()].into());
        let m = SpeakerMetrics::new(dp);
        m.announced_ips.set(3);
        m.record_changes(2, 1);
        m.lease_renew_failures.inc();
        m.heartbeat_dropped("bad_mac");
        m.heartbeat_dropped("bad_mac");
        m.set_mode("frozen");
        let text = m.encode();
        for needle in [
            "ferrolb_speaker_announced_ips 3",
            "ferrolb_speaker_leadership_changes_total{change=\"gained\"} 2",
            "ferrolb_speaker_leadership_changes_total{change=\"lost\"} 1",
            "ferrolb_speaker_lease_renew_failures_total 1",
            "ferrolb_speaker_lease_renewals_total 0",
            "ferrolb_speaker_heartbeats_dropped_total{reason=\"bad_mac\"} 2",
            "ferrolb_speaker_mode{mode=\"frozen\"} 1",
            "ferrolb_speaker_mode{mode=\"normal\"} 0",
            "ferrolb_speaker_arp_requests_seen_total 0",
            "ferrolb_speaker_arp_replies_sent_total 0",
            "ferrolb_speaker_ndp_solicitations_seen_total 0",
            "ferrolb_speaker_ndp_advertisements_sent_total 0",
            "ferrolb_speaker_gratuitous_sent_total 1",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }
}
