//! The speaker's election loop as a step function: what it observed and the clock in,
//! a [`Plan`] out (what to answer for, whether to report, when to look again). The
//! speaker's shell gathers the observation from its caches and its membership, calls
//! [`SpeakerStep::step`] and carries the plan out; every policy lives here.
//!
//! Policies:
//! - **Eligibility** from the membership ([`super::liveness`]): a node is live when
//!   [`judge`] says so; this node's own mode comes from [`SelfGuard`] (no view,
//!   normal, frozen in a minority, silenced).
//! - **First election**: before this node's first election, the previous announcer of
//!   an IP is the one the election gives *without* this node (what its peers were doing
//!   before it joined), so that a joining node waits for the handover delay.
//! - **Joining**: for the handover delay after this node first has a view, it takes no
//!   IP it does not already answer for. Peers that gained their view at the same
//!   instant (a cluster starting, or every speaker restarted at once) would otherwise
//!   each see the others still without a view and all take the same IPs; the delay
//!   lets their heartbeats cross first.
//! - **Handover** ([`Handover`]): an IP won from a peer that is still running is
//!   answered only after the handover delay; from a dead, leaving, silenced or link-down
//!   peer at once.
//! - **Reporter**: one node, the first live one by name, reports IPs without an
//!   announcer, and only after the settle period that follows its first view (peers that
//!   started with it may not have been heard yet).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::liveness::{Member, NotLive, SelfGuard, SelfMode, api_majority_fresh, judge};
use super::{Election, ElectionPolicy, Handover, NodeFacts, ServiceFacts, elect};

/// The fixed settings of a [`SpeakerStep`].
#[derive(Debug, Clone)]
pub struct StepConfig {
    /// This node's name.
    pub me: String,
    /// Wait before answering for an IP taken from a running peer.
    pub handover_delay: Duration,
    /// Quiet period after the first view before reporting IPs without announcer.
    pub settle: Duration,
    /// How long a node in a minority waits, with a fresh API view and no report
    /// against it, before concluding that its peers are dead.
    pub minority_confirm: Duration,
    /// How long a member must have been recent ([`Member::api_recent`]) to count for
    /// the API majority (see [`api_majority_fresh`]).
    pub api_settle: Duration,
}

/// A Node object as the election reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The Node's name.
    pub name: String,
    /// Its `Ready` condition is `True`.
    pub ready: bool,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

/// Everything one step reads.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The local monotonic clock.
    pub now: Instant,
    /// This node as the membership would describe it (`alive` is true by definition).
    pub me: &'a Member,
    /// The peers the membership knows.
    pub peers: &'a [Member],
    /// This node hears a strict majority of the members it knows.
    pub quorum: bool,
    /// The Node objects.
    pub nodes: &'a [NodeInfo],
    /// The Services with IPs to announce.
    pub services: &'a [ServiceFacts],
    /// Cluster-wide election settings.
    pub policy: &'a ElectionPolicy,
}

/// What the shell carries out after a step.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The IPs to answer for now.
    pub announce: BTreeSet<IpAddr>,
    /// The whole election (for Events and metrics).
    pub election: Election,
    /// This node's mode.
    pub mode: SelfMode,
    /// Why this node is not live, if it is not.
    pub not_live: Option<NotLive>,
    /// This node reports IPs without announcer (Events).
    pub reporter: bool,
    /// The live nodes, by name.
    pub live: Vec<String>,
    /// IPs won but held back for the handover delay.
    pub held_back: Vec<IpAddr>,
    /// When to step again even if nothing changes (a handover, the end of a freeze or
    /// of the settle period).
    pub wake_at: Option<Instant>,
}

/// The speaker's election state between steps.
#[derive(Debug, Clone)]
pub struct SpeakerStep {
    cfg: StepConfig,
    guard: SelfGuard,
    handover: Handover,
    previous: Option<Election>,
    current: BTreeSet<IpAddr>,
    view_since: Option<Instant>,
    recent_since: BTreeMap<String, Instant>,
}

impl SpeakerStep {
    /// A speaker that announces nothing yet.
    pub fn new(cfg: StepConfig) -> Self {
        Self {
            guard: SelfGuard::new(cfg.minority_confirm),
            handover: Handover::new(cfg.handover_delay),
            cfg,
            previous: None,
            current: BTreeSet::new(),
            view_since: None,
            recent_since: BTreeMap::new(),
        }
    }

    /// What this node answers for now (the last plan's `announce`).
    pub fn current(&self) -> &BTreeSet<IpAddr> {
        &self.current
    }

    /// One step: the plan for `obs`.
    pub fn step(&mut self, obs: &Observation<'_>) -> Plan {
        let me = self.cfg.me.as_str();
        let now = obs.now;
        // Recent counts only once it has lasted the settle time (observed here).
        self.recent_since.retain(|name, _| {
            obs.peers
                .iter()
                .chain([obs.me])
                .any(|m| m.name == *name && m.api_recent)
        });
        let mut settling: Option<Instant> = None;
        let settled: Vec<Member> = obs
            .peers
            .iter()
            .chain([obs.me])
            .map(|m| {
                let mut m = m.clone();
                if m.api_recent {
                    let since = *self.recent_since.entry(m.name.clone()).or_insert(now);
                    let at = since + self.cfg.api_settle;
                    if now < at {
                        m.api_recent = false;
                        settling = Some(settling.map_or(at, |s| s.min(at)));
                    }
                }
                m
            })
            .collect();
        let majority_fresh = api_majority_fresh(&settled);
        let my_verdict = judge(obs.me, majority_fresh);
        let mode = self
            .guard
            .step(my_verdict, obs.quorum, obs.me.api_fresh, now);
        if obs.me.has_view {
            self.view_since.get_or_insert(now);
        }

        // Node facts: every Node object and every member; a member without a Node
        // object is not Ready (unknown to the API server).
        let mut verdicts: BTreeMap<&str, (Result<(), NotLive>, bool)> = obs
            .peers
            .iter()
            .filter(|p| p.name != me)
            .map(|p| (p.name.as_str(), (judge(p, majority_fresh), p.link_ok)))
            .collect();
        let my_live = matches!(mode, SelfMode::Normal | SelfMode::Frozen);
        let my_state = if my_live {
            Ok(())
        } else {
            Err(my_verdict.err().unwrap_or(NotLive::ClaimedUnreachable))
        };
        verdicts.insert(me, (my_state, obs.me.link_ok));
        let node_objs: BTreeMap<&str, &NodeInfo> =
            obs.nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        let names: BTreeSet<&str> = verdicts.keys().chain(node_objs.keys()).copied().collect();
        let facts: Vec<NodeFacts> = names
            .iter()
            .map(|name| {
                let (verdict, link_ok) = verdicts
                    .get(name)
                    .copied()
                    .unwrap_or((Err(NotLive::Dead), false));
                let node = node_objs.get(name);
                NodeFacts {
                    name: (*name).to_owned(),
                    speaker_live: verdict.is_ok(),
                    ready: node.is_some_and(|n| n.ready),
                    labels: node.map(|n| n.labels.clone()).unwrap_or_default(),
                    link_ok,
                }
            })
            .collect();

        let election = elect(&facts, obs.services, obs.policy);
        let won = if my_live {
            election.announced_by(me)
        } else {
            BTreeSet::new()
        };
        let previous = match self.previous.take() {
            Some(e) => e,
            None => {
                let without_me: Vec<NodeFacts> = facts
                    .iter()
                    .cloned()
                    .map(|mut n| {
                        if n.name == me {
                            n.speaker_live = false;
                        }
                        n
                    })
                    .collect();
                elect(&without_me, obs.services, obs.policy)
            }
        };
        let running = |peer: &str| {
            verdicts
                .get(peer)
                .is_some_and(|(v, link)| v.is_ok() && *link)
        };
        let admitted = self.handover.admit(
            me,
            &won,
            &self.current,
            |ip| previous.announcer_of(ip),
            running,
            now,
        );
        let joining_until = self
            .view_since
            .map(|t| t + self.cfg.handover_delay)
            .filter(|t| now < *t);
        let announce: BTreeSet<IpAddr> = if mode == SelfMode::Frozen || joining_until.is_some() {
            admitted.intersection(&self.current).copied().collect()
        } else {
            admitted
        };

        let live: Vec<String> = facts
            .iter()
            .filter(|n| n.speaker_live)
            .map(|n| n.name.clone())
            .collect();
        let settle_at = self.view_since.map(|t| t + self.cfg.settle);
        let settled = settle_at.is_some_and(|t| now >= t);
        let reporter = settled && mode == SelfMode::Normal && live.first().is_some_and(|n| n == me);
        let wake_at = [
            self.handover.next_deadline(),
            self.guard.deadline(),
            settle_at.filter(|t| *t > now),
            joining_until,
            settling,
        ]
        .into_iter()
        .flatten()
        .min();

        self.current = announce.clone();
        self.previous = Some(election.clone());
        Plan {
            announce,
            election,
            mode,
            not_live: my_state.err(),
            reporter,
            live,
            held_back: self.handover.pending().collect(),
            wake_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::election::{ServiceKey, TrafficPolicy, rendezvous_pick};

    const CONFIRM: Duration = Duration::from_secs(3);
    const DELAY: Duration = Duration::from_millis(200);
    const SETTLE: Duration = Duration::from_millis(800);

    fn cfg(me: &str) -> StepConfig {
        StepConfig {
            me: me.into(),
            handover_delay: DELAY,
            settle: SETTLE,
            minority_confirm: CONFIRM,
            api_settle: Duration::ZERO,
        }
    }

    fn ip(i: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, i])
    }

    fn svc(i: u8) -> ServiceFacts {
        ServiceFacts {
            key: ServiceKey::new("default", format!("s{i}")),
            ips: vec![ip(i)],
            traffic_policy: TrafficPolicy::Cluster,
            ready_endpoint_nodes: BTreeSet::new(),
            has_ready_endpoint: true,
            node_rules: Default::default(),
        }
    }

    fn node(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            ready: true,
            labels: BTreeMap::new(),
        }
    }

    /// A small world: nodes a, b, c, 12 Services, everyone healthy.
    struct World {
        nodes: Vec<NodeInfo>,
        services: Vec<ServiceFacts>,
        members: BTreeMap<String, Member>,
        quorum: bool,
        policy: ElectionPolicy,
    }

    impl World {
        fn new() -> Self {
            Self {
                nodes: ["a", "b", "c"].map(node).to_vec(),
                services: (1..=12).map(svc).collect(),
                members: ["a", "b", "c"]
                    .map(|n| (n.to_string(), Member::healthy(n)))
                    .into(),
                quorum: true,
                policy: ElectionPolicy::default(),
            }
        }

        fn step(&self, s: &mut SpeakerStep, me: &str, now: Instant) -> Plan {
            let mine = self.members[me].clone();
            let peers: Vec<Member> = self
                .members
                .values()
                .filter(|m| m.name != me)
                .cloned()
                .collect();
            s.step(&Observation {
                now,
                me: &mine,
                peers: &peers,
                quorum: self.quorum,
                nodes: &self.nodes,
                services: &self.services,
                policy: &self.policy,
            })
        }

        fn owner(&self, i: u8, among: &[&str]) -> String {
            rendezvous_pick(among.iter().copied(), ip(i))
                .unwrap()
                .to_owned()
        }
    }

    fn owned_by(w: &World, me: &str, among: &[&str]) -> BTreeSet<IpAddr> {
        (1..=12)
            .filter(|i| w.owner(*i, among) == me)
            .map(ip)
            .collect()
    }

    #[test]
    fn a_node_without_view_announces_nothing_and_is_not_elected_by_peers() {
        let t = Instant::now();
        let mut w = World::new();
        w.members.get_mut("c").unwrap().has_view = false;
        let mut c = SpeakerStep::new(cfg("c"));
        let plan = w.step(&mut c, "c", t);
        assert_eq!(plan.mode, SelfMode::NoView);
        assert!(plan.announce.is_empty());
        let mut a = SpeakerStep::new(cfg("a"));
        w.step(&mut a, "a", t);
        let plan = w.step(&mut a, "a", t + DELAY);
        assert_eq!(plan.announce, owned_by(&w, "a", &["a", "b"]));
        assert!(!plan.live.contains(&"c".to_string()));
    }

    #[test]
    fn first_election_waits_for_the_handover_delay_only_for_ips_a_running_peer_holds() {
        let t = Instant::now();
        let w = World::new();
        let mut a = SpeakerStep::new(cfg("a"));
        let plan = w.step(&mut a, "a", t);
        // Without a, b and c held everything; every IP a wins is held back.
        assert!(plan.announce.is_empty());
        assert_eq!(
            plan.held_back.iter().copied().collect::<BTreeSet<_>>(),
            owned_by(&w, "a", &["a", "b", "c"])
        );
        assert_eq!(plan.wake_at, Some(t + DELAY));
        let plan = w.step(&mut a, "a", t + DELAY);
        assert_eq!(plan.announce, owned_by(&w, "a", &["a", "b", "c"]));
        assert!(plan.held_back.is_empty());
    }

    #[test]
    fn nodes_gaining_their_view_together_wait_and_never_take_the_same_ip() {
        let t = Instant::now();
        let mut w = World::new();
        // Nobody had a view: nothing is announced by anyone.
        for m in w.members.values_mut() {
            m.has_view = false;
        }
        w.members.get_mut("a").unwrap().has_view = true;
        let mut a = SpeakerStep::new(cfg("a"));
        let plan = w.step(&mut a, "a", t);
        assert!(plan.announce.is_empty(), "joining: takes nothing yet");
        assert_eq!(plan.wake_at, Some(t + DELAY));
        // Meanwhile c gained its view too, and a hears it before its delay ends.
        w.members.get_mut("c").unwrap().has_view = true;
        let plan = w.step(&mut a, "a", t + DELAY);
        assert_eq!(plan.announce, owned_by(&w, "a", &["a", "c"]));
    }

    #[test]
    fn a_dead_peers_ips_are_taken_at_once_and_only_those_move() {
        let t = Instant::now();
        let mut w = World::new();
        let mut a = SpeakerStep::new(cfg("a"));
        w.step(&mut a, "a", t);
        let before = w.step(&mut a, "a", t + DELAY).announce;
        w.members.get_mut("b").unwrap().alive = false;
        let after = w.step(&mut a, "a", t + DELAY * 2).announce;
        assert!(before.is_subset(&after), "a keeps what it had");
        assert_eq!(after, owned_by(&w, "a", &["a", "c"]));
    }

    #[test]
    fn a_peer_cut_off_alone_from_the_api_hands_over_without_delay() {
        let t = Instant::now();
        let mut w = World::new();
        let mut a = SpeakerStep::new(cfg("a"));
        w.step(&mut a, "a", t);
        w.step(&mut a, "a", t + DELAY);
        let b = w.members.get_mut("b").unwrap();
        b.api_fresh = false;
        b.api_recent = false;
        let plan = w.step(&mut a, "a", t + DELAY * 2);
        assert_eq!(
            plan.announce,
            owned_by(&w, "a", &["a", "c"]),
            "no handover wait: b stopped itself"
        );
        // And b, computing the same, stops.
        let mut b = SpeakerStep::new(cfg("b"));
        let plan = w.step(&mut b, "b", t);
        assert_eq!(plan.mode, SelfMode::Silenced);
        assert_eq!(plan.not_live, Some(NotLive::ApiStale));
        assert!(plan.announce.is_empty());
    }

    #[test]
    fn api_down_for_everyone_moves_nothing() {
        let t = Instant::now();
        let mut w = World::new();
        let mut steps: BTreeMap<&str, SpeakerStep> = ["a", "b", "c"]
            .map(|n| (n, SpeakerStep::new(cfg(n))))
            .into();
        let mut before = BTreeMap::new();
        for (n, s) in &mut steps {
            w.step(s, n, t);
            before.insert(*n, w.step(s, n, t + DELAY).announce);
        }
        // The views turn stale one after the other: none is recent any more when the
        // first one crosses the threshold.
        for m in w.members.values_mut() {
            m.api_recent = false;
        }
        w.members.get_mut("b").unwrap().api_fresh = false;
        for (n, s) in &mut steps {
            let plan = w.step(s, n, t + Duration::from_secs(59));
            assert_eq!(
                plan.announce, before[n],
                "{n} keeps its IPs while b turns stale first"
            );
        }
        for m in w.members.values_mut() {
            m.api_fresh = false;
        }
        for (n, s) in &mut steps {
            let plan = w.step(s, n, t + Duration::from_secs(60));
            assert_eq!(plan.mode, SelfMode::Normal);
            assert_eq!(plan.announce, before[n], "{n} keeps its IPs");
        }
        let all: BTreeSet<IpAddr> = before.values().flatten().copied().collect();
        assert_eq!(all.len(), 12, "every IP answered exactly once");
    }

    #[test]
    fn the_last_node_to_reconnect_is_not_judged_alone() {
        let t = Instant::now();
        let mut w = World::new();
        for m in w.members.values_mut() {
            m.api_fresh = false;
            m.api_recent = false;
        }
        let mut c = SpeakerStep::new(StepConfig {
            api_settle: Duration::from_secs(1),
            ..cfg("c")
        });
        w.step(&mut c, "c", t);
        let held = w.step(&mut c, "c", t + DELAY).announce;
        assert!(!held.is_empty());
        // a and b reconnect; c is a probe period late.
        for n in ["a", "b"] {
            let m = w.members.get_mut(n).unwrap();
            m.api_fresh = true;
            m.api_recent = true;
        }
        let t1 = t + Duration::from_secs(10);
        let plan = w.step(&mut c, "c", t1);
        assert_eq!(plan.mode, SelfMode::Normal, "a and b are not settled yet");
        assert_eq!(plan.announce, held);
        assert_eq!(plan.wake_at, Some(t1 + Duration::from_secs(1)));
        let m = w.members.get_mut("c").unwrap();
        m.api_fresh = true;
        m.api_recent = true;
        let plan = w.step(&mut c, "c", t1 + Duration::from_millis(500));
        assert_eq!(plan.announce, held, "reconnected in time: nothing moved");
        // Had c stayed cut off, it would have been judged alone once a and b settled.
        let m = w.members.get_mut("c").unwrap();
        m.api_fresh = false;
        m.api_recent = false;
        let plan = w.step(&mut c, "c", t1 + Duration::from_secs(1));
        assert_eq!(plan.not_live, Some(NotLive::ApiStale));
    }

    #[test]
    fn an_isolated_node_freezes_then_falls_silent_when_reported() {
        let t = Instant::now();
        let mut w = World::new();
        let mut a = SpeakerStep::new(cfg("a"));
        w.step(&mut a, "a", t);
        let mine = w.step(&mut a, "a", t + DELAY).announce;
        // a hears nobody: its peers look dead to it.
        w.quorum = false;
        for p in ["b", "c"] {
            w.members.get_mut(p).unwrap().alive = false;
        }
        let plan = w.step(&mut a, "a", t + DELAY * 2);
        assert_eq!(plan.mode, SelfMode::Frozen);
        assert_eq!(plan.announce, mine, "keeps its own, takes nothing new");
        // Its peers publish (in their Leases) that they cannot hear it.
        w.members.get_mut("a").unwrap().claimed_unreachable = true;
        let plan = w.step(&mut a, "a", t + DELAY * 3);
        assert_eq!(plan.mode, SelfMode::Silenced);
        assert!(plan.announce.is_empty());
    }

    #[test]
    fn a_lone_survivor_takes_over_once_the_api_confirms() {
        let t = Instant::now();
        let mut w = World::new();
        let mut a = SpeakerStep::new(cfg("a"));
        w.step(&mut a, "a", t);
        w.step(&mut a, "a", t + DELAY);
        w.quorum = false;
        for p in ["b", "c"] {
            w.members.get_mut(p).unwrap().alive = false;
        }
        let t1 = t + SETTLE;
        let plan = w.step(&mut a, "a", t1);
        assert_eq!(plan.mode, SelfMode::Frozen);
        assert_eq!(plan.wake_at, Some(t1 + CONFIRM));
        let plan = w.step(&mut a, "a", t1 + CONFIRM);
        assert_eq!(plan.mode, SelfMode::Normal);
        assert_eq!(
            plan.announce.len(),
            12,
            "everything, from dead peers, at once"
        );
    }

    #[test]
    fn only_the_first_live_node_reports_and_only_after_settling() {
        let t = Instant::now();
        let w = World::new();
        let mut a = SpeakerStep::new(cfg("a"));
        let mut b = SpeakerStep::new(cfg("b"));
        assert!(!w.step(&mut a, "a", t).reporter, "not settled yet");
        assert_eq!(w.step(&mut a, "a", t + DELAY).wake_at, Some(t + SETTLE));
        assert!(w.step(&mut a, "a", t + SETTLE).reporter);
        w.step(&mut b, "b", t);
        assert!(!w.step(&mut b, "b", t + SETTLE).reporter, "b is not first");
    }

    #[test]
    fn a_leaving_peer_is_replaced_at_once_and_a_member_without_node_object_is_not_ready() {
        let t = Instant::now();
        let mut w = World::new();
        let mut a = SpeakerStep::new(cfg("a"));
        w.step(&mut a, "a", t);
        w.step(&mut a, "a", t + DELAY);
        w.members.get_mut("c").unwrap().leaving = true;
        let plan = w.step(&mut a, "a", t + DELAY * 2);
        assert_eq!(plan.announce, owned_by(&w, "a", &["a", "b"]));
        // A member whose Node object is gone is never elected.
        w.members.get_mut("c").unwrap().leaving = false;
        w.nodes.retain(|n| n.name != "c");
        let plan = w.step(&mut a, "a", t + DELAY * 3);
        assert_eq!(plan.announce, owned_by(&w, "a", &["a", "b"]));
    }
}
