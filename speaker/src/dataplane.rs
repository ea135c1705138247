//! The seam between the election and the packets.
//!
//! The election decides *which* IPs this node answers for; a [`Dataplane`] makes it so
//! (answers ARP/NDP, sends gratuitous packets on takeover) and reports whether its data
//! path works. The real one is `crate::net`'s [`Announcer`] (wrapped in
//! [`NetDataplane`]); [`RecordingDataplane`] is an in-memory one for tests and for
//! running the election without raw sockets.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ferrolb_config::InterfaceRule;
use tokio::sync::watch;

use crate::cli::Settings;
use crate::error::SpeakerError;
use crate::net::{Announcer, AnnouncerConfig};

/// Packet counters a data plane exposes for `/metrics` (monotonic totals).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataplaneCounters {
    /// ARP requests received.
    pub arp_requests_seen: u64,
    /// ARP replies sent.
    pub arp_replies_sent: u64,
    /// Neighbor Solicitations received.
    pub ndp_solicitations_seen: u64,
    /// Solicited Neighbor Advertisements sent.
    pub ndp_advertisements_sent: u64,
    /// Gratuitous ARPs and unsolicited NAs sent.
    pub gratuitous_sent: u64,
}

/// What the speaker needs from the packet side.
pub trait Dataplane: Send + Sync + 'static {
    /// Makes `ips` the exact set this node answers for: IPs that were not in the previous
    /// set get a burst of gratuitous ARP / unsolicited NA, IPs that left it are no longer
    /// answered from the moment this returns. Must not block for long (no network I/O
    /// awaiting replies).
    fn set_announced(&self, ips: BTreeSet<IpAddr>);

    /// True while the data path works (the announcing interface is up with carrier).
    /// Polled often; must be cheap.
    fn link_ok(&self) -> bool;

    /// The `l2.interfaces` of the configuration changed (empty: automatic choice).
    fn set_interfaces(&self, _interfaces: &[String]) {}

    /// The interface rules of announced IPs whose pool `l2.policies` cover (the others
    /// are answered on the default choice). Called before [`Dataplane::set_announced`]
    /// whenever they change.
    fn set_interface_rules(&self, _rules: BTreeMap<IpAddr, InterfaceRule>) {}

    /// Packet counters for metrics.
    fn counters(&self) -> DataplaneCounters {
        DataplaneCounters::default()
    }

    /// Interfaces on which the kernel itself would answer ARP for Service IPs
    /// (kube-proxy IPVS without strictARP), one human-readable line each.
    fn strict_arp_problems(&self) -> Vec<String> {
        Vec::new()
    }
}

/// An in-memory [`Dataplane`] that records every announced set; link state is settable.
///
/// Used by the election tests and by `--dry-run`-style embedding: it answers nothing.
#[derive(Debug)]
pub struct RecordingDataplane {
    current: watch::Sender<BTreeSet<IpAddr>>,
    history: Mutex<Vec<(Instant, BTreeSet<IpAddr>)>>,
    link: AtomicBool,
    interfaces: Mutex<Vec<String>>,
    rules: Mutex<BTreeMap<IpAddr, InterfaceRule>>,
    gratuitous: AtomicU64,
    strict_arp: Mutex<Vec<String>>,
}

impl Default for RecordingDataplane {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordingDataplane {
    /// A data plane with link up and nothing announced.
    pub fn new() -> Self {
        Self {
            current: watch::Sender::new(BTreeSet::new()),
            history: Mutex::new(Vec::new()),
            link: AtomicBool::new(true),
            interfaces: Mutex::new(Vec::new()),
            rules: Mutex::new(BTreeMap::new()),
            gratuitous: AtomicU64::new(0),
            strict_arp: Mutex::new(Vec::new()),
        }
    }

    /// The set currently announced.
    pub fn announced(&self) -> BTreeSet<IpAddr> {
        self.current.borrow().clone()
    }

    /// A receiver that sees every change of the announced set.
    pub fn subscribe(&self) -> watch::Receiver<BTreeSet<IpAddr>> {
        self.current.subscribe()
    }

    /// Every set passed to `set_announced`, with the instant it was applied.
    pub fn history(&self) -> Vec<(Instant, BTreeSet<IpAddr>)> {
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Simulates the announcing interface going down (`false`) or up.
    pub fn set_link(&self, up: bool) {
        self.link.store(up, Ordering::SeqCst);
    }

    /// Simulates the strictARP check finding `problems`.
    pub fn set_strict_arp_problems(&self, problems: Vec<String>) {
        *self.strict_arp.lock().unwrap_or_else(|e| e.into_inner()) = problems;
    }

    /// The interfaces last configured.
    pub fn interfaces(&self) -> Vec<String> {
        self.interfaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The interface rules last set.
    pub fn interface_rules(&self) -> BTreeMap<IpAddr, InterfaceRule> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Dataplane for RecordingDataplane {
    fn set_announced(&self, ips: BTreeSet<IpAddr>) {
        let gained = ips.difference(&self.current.borrow()).count() as u64;
        self.gratuitous.fetch_add(gained, Ordering::Relaxed);
        self.history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((Instant::now(), ips.clone()));
        self.current.send_replace(ips);
    }

    fn link_ok(&self) -> bool {
        self.link.load(Ordering::SeqCst)
    }

    fn set_interfaces(&self, interfaces: &[String]) {
        *self.interfaces.lock().unwrap_or_else(|e| e.into_inner()) = interfaces.to_vec();
    }

    fn set_interface_rules(&self, rules: BTreeMap<IpAddr, InterfaceRule>) {
        *self.rules.lock().unwrap_or_else(|e| e.into_inner()) = rules;
    }

    fn counters(&self) -> DataplaneCounters {
        DataplaneCounters {
            gratuitous_sent: self.gratuitous.load(Ordering::Relaxed),
            ..Default::default()
        }
    }

    fn strict_arp_problems(&self) -> Vec<String> {
        self.strict_arp
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl<T: Dataplane> Dataplane for Arc<T> {
    fn set_announced(&self, ips: BTreeSet<IpAddr>) {
        (**self).set_announced(ips)
    }
    fn link_ok(&self) -> bool {
        (**self).link_ok()
    }
    fn set_interfaces(&self, interfaces: &[String]) {
        (**self).set_interfaces(interfaces)
    }
    fn set_interface_rules(&self, rules: BTreeMap<IpAddr, InterfaceRule>) {
        (**self).set_interface_rules(rules)
    }
    fn counters(&self) -> DataplaneCounters {
        (**self).counters()
    }
    fn strict_arp_problems(&self) -> Vec<String> {
        (**self).strict_arp_problems()
    }
}

/// The raw-socket [`Announcer`] plus what the speaker needs beyond its own
/// [`Dataplane`] implementation (the strictARP findings).
pub struct NetDataplane(pub Announcer);

impl Dataplane for NetDataplane {
    fn set_announced(&self, ips: BTreeSet<IpAddr>) {
        Dataplane::set_announced(&self.0, ips)
    }
    fn link_ok(&self) -> bool {
        Dataplane::link_ok(&self.0)
    }
    fn set_interfaces(&self, interfaces: &[String]) {
        Dataplane::set_interfaces(&self.0, interfaces)
    }
    fn set_interface_rules(&self, rules: BTreeMap<IpAddr, InterfaceRule>) {
        Dataplane::set_interface_rules(&self.0, rules)
    }
    fn counters(&self) -> DataplaneCounters {
        Dataplane::counters(&self.0)
    }
    fn strict_arp_problems(&self) -> Vec<String> {
        self.0
            .strict_arp_problems()
            .iter()
            .map(|p| p.to_string())
            .collect()
    }
}

/// The data plane for the binary: the raw-socket [`Announcer`] configured from the
/// flags, or with `disabled` (the `--no-dataplane` flag) a [`RecordingDataplane`] that
/// answers nothing.
pub async fn build(
    settings: &Settings,
    disabled: bool,
) -> Result<Arc<dyn Dataplane>, SpeakerError> {
    if disabled {
        tracing::warn!(node = %settings.node_name,
            "--no-dataplane: electing only, no ARP/NDP is answered");
        return Ok(Arc::new(RecordingDataplane::new()));
    }
    let cfg = AnnouncerConfig {
        interfaces: settings.interfaces.clone(),
        burst_count: settings.announce.gratuitous_count,
        burst_interval: settings.announce.gratuitous_interval,
        reannounce_every: settings.announce.reannounce_period,
        ..AnnouncerConfig::default()
    };
    let announcer = Announcer::start(cfg)
        .await
        .map_err(|e| SpeakerError::Dataplane(e.to_string()))?;
    Ok(Arc::new(NetDataplane(announcer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_dataplane_records_sets_and_counts_gains() {
        let d = RecordingDataplane::new();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        d.set_announced([a].into());
        d.set_announced([a, b].into());
        d.set_announced([b].into());
        assert_eq!(d.announced(), [b].into());
        assert_eq!(d.history().len(), 3);
        assert_eq!(d.counters().gratuitous_sent, 2);
        assert!(d.link_ok());
        d.set_link(false);
        assert!(!d.link_ok());
        d.set_interfaces(&["eth0".into()]);
        assert_eq!(d.interfaces(), vec!["eth0"]);
    }
}
