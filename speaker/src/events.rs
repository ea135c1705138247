//! Kubernetes Events on Services: which node announces them, and why none does.
//!
//! [`EventTracker`] is pure: it compares successive elections and says what to
//! report. [`NoticeSink`] queues the reports on the shared Event sink
//! ([`ferrolb_process::events`]), published in the background so that a slow API
//! server never delays announcing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_core::election::{Election, NoAnnouncer};
use ferrolb_core::service::ServiceKey;
use ferrolb_process::events::{EventData, EventSink, Pending, Publisher};
use kube::Resource;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::dataplane::Dataplane;
use crate::metrics::SpeakerMetrics;
use crate::slim::{SlimNode, SlimService};

/// The reporting controller name on every Event.
pub const REPORTING_CONTROLLER: &str = "ferrolb-speaker";

/// Events waiting to be published, at most; beyond, they are dropped and counted
/// (`ferrolb_speaker_events_dropped_total`).
pub const QUEUE_CAPACITY: usize = 4096;

/// Starts publishing the Events of the speaker on `node`.
pub fn start(client: kube::Client, node: &str, metrics: &SpeakerMetrics) -> (EventSink, Publisher) {
    let reporter = Reporter {
        controller: REPORTING_CONTROLLER.into(),
        instance: Some(node.to_owned()),
    };
    let dropped = metrics.events_dropped.clone();
    ferrolb_process::events::start(client, reporter, QUEUE_CAPACITY, dropped, None)
}

/// Something worth an Event on a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// This node started answering for these IPs of the Service.
    Started {
        /// The Service.
        service: ServiceKey,
        /// The IPs gained.
        ips: Vec<IpAddr>,
    },
    /// This node stopped answering for these IPs of the Service.
    Stopped {
        /// The Service.
        service: ServiceKey,
        /// The IPs lost.
        ips: Vec<IpAddr>,
        /// Why, for the message.
        why: String,
    },
    /// No node can announce the Service.
    NoAnnouncer {
        /// The Service.
        service: ServiceKey,
        /// The Event reason: `NotAllowedByL2Policy` when no announcement policy of the
        /// pool allows the Service, `NoEligibleNode` otherwise.
        reason: &'static str,
        /// Why, for the message.
        why: String,
    },
}

impl Notice {
    /// The Service concerned.
    pub fn service(&self) -> &ServiceKey {
        match self {
            Notice::Started { service, .. }
            | Notice::Stopped { service, .. }
            | Notice::NoAnnouncer { service, .. } => service,
        }
    }

    /// The Event to publish for it, as seen from `node`.
    pub fn to_event(&self, node: &str) -> EventData {
        let list = |ips: &[IpAddr]| {
            ips.iter()
                .map(|ip| {
                    let proto = if ip.is_ipv4() { "ARP" } else { "NDP" };
                    format!("{ip} ({proto})")
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Notice::Started { ips, .. } => EventData {
                warning: false,
                reason: "Announcing".into(),
                note: format!("node {node} announces {}", list(ips)),
                action: "Announce".into(),
            },
            Notice::Stopped { ips, why, .. } => EventData {
                warning: false,
                reason: "StoppedAnnouncing".into(),
                note: format!("node {node} stopped announcing {}: {why}", list(ips)),
                action: "Announce".into(),
            },
            Notice::NoAnnouncer { why, reason, .. } => EventData {
                warning: true,
                reason: (*reason).into(),
                note: format!("no node announces this Service: {why}"),
                action: "Elect".into(),
            },
        }
    }
}

/// Remembers what was last reported, so that each change is reported once.
#[derive(Debug, Default)]
pub struct EventTracker {
    mine: BTreeMap<ServiceKey, BTreeSet<IpAddr>>,
    warned: BTreeMap<ServiceKey, (&'static str, String)>,
}

impl EventTracker {
    /// An empty tracker (nothing announced, nothing warned).
    pub fn new() -> Self {
        Self::default()
    }

    /// Compares `election` (in which this node, `me`, actually announces `my_ips`) with
    /// the previous call and returns what to report. Warnings about Services without an
    /// announcer are only produced when `report_warnings` (one speaker reports them, so
    /// that a cluster does not get one per node).
    pub fn update(
        &mut self,
        election: &Election,
        me: &str,
        my_ips: &BTreeSet<IpAddr>,
        report_warnings: bool,
    ) -> Vec<Notice> {
        let mut next: BTreeMap<ServiceKey, BTreeSet<IpAddr>> = BTreeMap::new();
        for ip in my_ips {
            if let Some(a) = election.by_ip.get(ip) {
                for s in &a.services {
                    next.entry(s.clone()).or_default().insert(*ip);
                }
            }
        }
        let existing: BTreeSet<&ServiceKey> = election
            .by_ip
            .values()
            .flat_map(|a| a.services.iter())
            .collect();

        let mut out = Vec::new();
        let keys: BTreeSet<ServiceKey> = self.mine.keys().chain(next.keys()).cloned().collect();
        for key in keys {
            let empty = BTreeSet::new();
            let old = self.mine.get(&key).unwrap_or(&empty);
            let new = next.get(&key).unwrap_or(&empty);
            let gained: Vec<IpAddr> = new.difference(old).copied().collect();
            let lost: Vec<IpAddr> = old.difference(new).copied().collect();
            if !lost.is_empty() && existing.contains(&key) {
                let why = lost_reason(election, me, lost[0]);
                out.push(Notice::Stopped {
                    service: key.clone(),
                    ips: lost,
                    why,
                });
            }
            if !gained.is_empty() {
                out.push(Notice::Started {
                    service: key.clone(),
                    ips: gained,
                });
            }
        }
        self.mine = next;

        // Services none of whose IPs has an announcer.
        let mut orphans: BTreeMap<ServiceKey, (&'static str, String)> = BTreeMap::new();
        let mut served: BTreeSet<&ServiceKey> = BTreeSet::new();
        for a in election.by_ip.values() {
            match &a.announcer {
                Ok(_) => served.extend(a.services.iter()),
                Err(why) => {
                    let reason = match why {
                        NoAnnouncer::NotAllowed(..) => "NotAllowedByL2Policy",
                        _ => "NoEligibleNode",
                    };
                    for s in &a.services {
                        orphans
                            .entry(s.clone())
                            .or_insert_with(|| (reason, why.to_string()));
                    }
                }
            }
        }
        orphans.retain(|k, _| !served.contains(k));
        if report_warnings {
            for (key, (reason, why)) in &orphans {
                if self.warned.get(key).map(|w| &w.1) != Some(why) {
                    out.push(Notice::NoAnnouncer {
                        service: key.clone(),
                        reason,
                        why: why.clone(),
                    });
                }
            }
            self.warned = orphans;
        } else {
            self.warned.clear();
        }
        out
    }

    /// The speaker is shutting down: a stop notice for everything it announced.
    pub fn shutdown(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.mine)
            .into_iter()
            .map(|(service, ips)| Notice::Stopped {
                service,
                ips: ips.into_iter().collect(),
                why: "the speaker is shutting down".into(),
            })
            .collect()
    }
}

fn lost_reason(election: &Election, me: &str, ip: IpAddr) -> String {
    match election.by_ip.get(&ip).map(|a| &a.announcer) {
        Some(Ok(n)) if n == me => "this node's speaker Lease is not held".into(),
        Some(Ok(n)) => format!("now announced by node {n}"),
        Some(Err(why)) => why.to_string(),
        None => "the IP was released".into(),
    }
}

/// Queues [`Notice`]s as Events on their Services.
#[derive(Clone)]
pub struct NoticeSink {
    sink: EventSink,
    node: String,
    services: Store<SlimService>,
}

impl NoticeSink {
    /// Notices of the speaker on `node`, about Services found in `services`.
    pub fn new(sink: EventSink, node: String, services: Store<SlimService>) -> Self {
        Self {
            sink,
            node,
            services,
        }
    }

    /// Queues the Event for `notice`; a Service no longer cached gets none.
    pub fn send(&self, notice: Notice) {
        let key = notice.service();
        let Some(svc) = self
            .services
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
        else {
            return;
        };
        self.sink.send(Pending {
            regarding: svc.object_ref(&()),
            event: notice.to_event(&self.node),
        });
    }
}

/// How often the strictARP findings of the data plane are looked at.
pub const STRICT_ARP_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// The findings in `current` not reported yet (those in `reported`).
pub fn new_findings(reported: &BTreeSet<String>, current: &BTreeSet<String>) -> Vec<String> {
    current.difference(reported).cloned().collect()
}

/// Reports, once per finding, that this node's kernel would answer ARP for Service IPs
/// itself (which defeats the election): a Warning Event on the Node (the data plane
/// logs it too), and the `strict_arp_problems` gauge.
pub async fn strict_arp_loop(
    events: EventSink,
    node: String,
    nodes: Store<SlimNode>,
    dataplane: Arc<dyn Dataplane>,
    metrics: Arc<SpeakerMetrics>,
    period: std::time::Duration,
) {
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let current: BTreeSet<String> = dataplane.strict_arp_problems().into_iter().collect();
        metrics.strict_arp_problems.set(current.len() as i64);
        let fresh = new_findings(&reported, &current);
        if fresh.is_empty() {
            reported = current;
            continue;
        }
        // Without the Node in the cache yet, try again at the next tick.
        let Some(obj) = nodes.get(&ObjectRef::new(&node)) else {
            continue;
        };
        let reference = obj.object_ref(&());
        for finding in fresh {
            events.send(Pending {
                regarding: reference.clone(),
                event: EventData {
                    warning: true,
                    reason: "StrictArpDisabled".into(),
                    note: finding,
                    action: "CheckArpSysctls".into(),
                },
            });
        }
        reported = current;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_core::election::{ElectionPolicy, NodeFacts, ServiceFacts, TrafficPolicy, elect};

    fn node(name: &str, live: bool) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            speaker_live: live,
            ready: true,
            labels: Default::default(),
            link_ok: true,
        }
    }

    fn svc(name: &str, ip: &str, ready: bool) -> ServiceFacts {
        ServiceFacts {
            key: ServiceKey::new("default", name),
            ips: vec![ip.parse().unwrap()],
            traffic_policy: TrafficPolicy::Cluster,
            ready_endpoint_nodes: Default::default(),
            has_ready_endpoint: ready,
            node_rules: Default::default(),
        }
    }

    #[test]
    fn only_new_findings_are_reported() {
        let a: BTreeSet<String> = ["eth0: lax".to_string()].into();
        let ab: BTreeSet<String> = ["eth0: lax".to_string(), "eth1: lax".to_string()].into();
        assert_eq!(new_findings(&BTreeSet::new(), &a), vec!["eth0: lax"]);
        assert!(new_findings(&a, &a).is_empty());
        assert_eq!(new_findings(&a, &ab), vec!["eth1: lax"]);
        assert!(new_findings(&ab, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn start_then_stop_with_new_announcer_named() {
        let svcs = vec![svc("s", "192.0.2.1", true)];
        let mut t = EventTracker::new();
        let e = elect(&[node("a", true)], &svcs, &ElectionPolicy::default());
        let mine = e.announced_by("a");
        let n = t.update(&e, "a", &mine, false);
        assert_eq!(
            n,
            vec![Notice::Started {
                service: ServiceKey::new("default", "s"),
                ips: vec!["192.0.2.1".parse().unwrap()]
            }]
        );
        assert!(t.update(&e, "a", &mine, false).is_empty(), "reported once");

        // Make b win: a goes away from a's own point of view.
        let e2 = elect(
            &[node("a", false), node("b", true)],
            &svcs,
            &ElectionPolicy::default(),
        );
        let n = t.update(&e2, "a", &e2.announced_by("a"), false);
        assert_eq!(n.len(), 1);
        let ev = n[0].to_event("a");
        assert_eq!(ev.reason, "StoppedAnnouncing");
        assert_eq!(
            ev.note,
            "node a stopped announcing 192.0.2.1 (ARP): now announced by node b"
        );
    }

    #[test]
    fn lease_loss_is_named_as_the_reason() {
        let svcs = vec![svc("s", "2001:db8::1", true)];
        let e = elect(&[node("a", true)], &svcs, &ElectionPolicy::default());
        let mut t = EventTracker::new();
        t.update(&e, "a", &e.announced_by("a"), false);
        let n = t.update(&e, "a", &BTreeSet::new(), false);
        assert_eq!(
            n[0].to_event("a").note,
            "node a stopped announcing 2001:db8::1 (NDP): this node's speaker Lease is not held"
        );
    }

    #[test]
    fn deleted_service_gets_no_stop_event() {
        let e = elect(
            &[node("a", true)],
            &[svc("s", "192.0.2.1", true)],
            &ElectionPolicy::default(),
        );
        let mut t = EventTracker::new();
        t.update(&e, "a", &e.announced_by("a"), false);
        let empty = elect(&[node("a", true)], &[], &ElectionPolicy::default());
        assert!(t.update(&empty, "a", &BTreeSet::new(), false).is_empty());
    }

    #[test]
    fn warning_once_per_reason_and_only_from_the_reporter() {
        let nodes = [node("a", true)];
        let e = elect(
            &nodes,
            &[svc("s", "192.0.2.1", false)],
            &ElectionPolicy::default(),
        );
        let mut quiet = EventTracker::new();
        assert!(quiet.update(&e, "a", &BTreeSet::new(), false).is_empty());

        let mut t = EventTracker::new();
        let n = t.update(&e, "a", &BTreeSet::new(), true);
        assert_eq!(n.len(), 1);
        let ev = n[0].to_event("a");
        assert!(ev.warning);
        assert_eq!(
            ev.note,
            "no node announces this Service: Service default/s has no ready endpoint"
        );
        assert!(t.update(&e, "a", &BTreeSet::new(), true).is_empty());

        // A different reason is reported again.
        let e2 = elect(
            &[node("a", false)],
            &[svc("s", "192.0.2.1", true)],
            &ElectionPolicy::default(),
        );
        let n = t.update(&e2, "a", &BTreeSet::new(), true);
        assert_eq!(n.len(), 1);
        assert!(n[0].to_event("a").note.contains("1 node no live speaker"));

        // Once served, a recurrence is reported again.
        let ok = elect(
            &nodes,
            &[svc("s", "192.0.2.1", true)],
            &ElectionPolicy::default(),
        );
        t.update(&ok, "a", &ok.announced_by("a"), true);
        let n = t.update(&e2, "a", &BTreeSet::new(), true);
        assert!(n.iter().any(|x| matches!(x, Notice::NoAnnouncer { .. })));
    }

    #[test]
    fn a_service_no_policy_allows_gets_its_own_warning() {
        let mut s = svc("gated", "192.0.2.7", true);
        s.node_rules.insert(
            "192.0.2.7".parse().unwrap(),
            ferrolb_core::election::NodeRule::Refused(
                "pool p is announced only for tier=edge".into(),
            ),
        );
        let e = elect(&[node("a", true)], &[s], &ElectionPolicy::default());
        let mut t = EventTracker::new();
        let n = t.update(&e, "a", &BTreeSet::new(), true);
        assert_eq!(n.len(), 1);
        let ev = n[0].to_event("a");
        assert!(ev.warning);
        assert_eq!(ev.reason, "NotAllowedByL2Policy");
        assert_eq!(
            ev.note,
            "no node announces this Service: no l2 policy allows Service default/gated (pool p is announced only for tier=edge)"
        );
    }
}
