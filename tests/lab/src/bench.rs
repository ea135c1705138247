//! Failover and stability measured from the client namespace.
//!
//! **Failover rounds** ([`failover_round`]): find the node that answers for a Service
//! IP, make sure the client's own traffic reaches it, then disrupt it (see
//! [`Disruption`]: a crash, a graceful stop, a partition from the API server, an
//! isolation from its peers, a crash while the API server is down for everyone, a
//! power-off) and measure:
//! - **recovery**: from the disruption until an HTTP request from the client (a new TCP
//!   connection every few ms, through the client kernel's neighbour cache) is answered
//!   by another node. Except after a power-off the old node keeps serving (its
//!   kube-proxy is alive), so this is the time until the client's traffic has moved;
//! - **takeover**: from the disruption until another node's first ARP/NDP claim is seen;
//! - **overlap**: the longest window in which two different MACs claimed the IP, from
//!   an observer that sends a who-has every 5 ms and records every reply, gratuitous
//!   ARP and advertisement on the wire (so its resolution is about 5 ms);
//! - **gap**: the old MAC's last claim → the new MAC's first claim;
//! - **silenced**: from the disruption until the old node no longer answers a who-has.
//!
//! Then the node is restored and, until the IP is stable (it may move back: election
//! is by rendezvous hashing), the overlap of that planned handover is measured too.
//!
//! **Stability runs** ([`soak`]): a fault under which nothing may move (see [`Soak`])
//! is held for a while; a client requests every example Service IP in turn and the
//! observer records every claim, so that failed requests and announcer changes are
//! counted, during the fault and for a few seconds after it is lifted.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::error::LabError;
use crate::netns::spawn_in_netns;
use crate::plan::{OBSERVER_MAC, OBSERVER_V4, OBSERVER_V6, UPLINK};
use crate::probe::{Claim, Prober, overlap};
use crate::seed::EXAMPLE_SERVICES;
use crate::{Family, Lab, http};

/// Interval of the observer's who-has in a failover round (the resolution of the
/// overlap measure).
const OBSERVER_TICK: Duration = Duration::from_millis(5);
/// Interval of the observer's round of who-has over every IP in a stability run.
const SOAK_OBSERVER_TICK: Duration = Duration::from_millis(20);
/// Pause between the client's requests (the resolution of the recovery measure, plus
/// the time of one request, well under a millisecond on the lab network).
const CLIENT_TICK: Duration = Duration::from_millis(2);
/// Pause between the client's requests in a stability run.
const SOAK_CLIENT_TICK: Duration = Duration::from_millis(20);
/// Timeout of one client request (connect, then each read).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(100);
/// How long a stability run keeps watching after its fault is lifted.
const AFTER_LIFT: Duration = Duration::from_secs(5);
/// How long the API server stays down before the crash in [`Disruption::KillDuringApiDown`],
/// so that every speaker has noticed the outage.
const API_DOWN_LEAD: Duration = Duration::from_secs(2);

/// What happens to the announcing node in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruption {
    /// Its speaker gets SIGKILL (a crash); it is started again after the round.
    Kill,
    /// Its speaker gets SIGTERM (a graceful stop); it is started again after the round.
    Term,
    /// The node is cut off from the API server (its link stays up); healed after. The
    /// handover is coordinated and waits for `--api-stale-after`: recovery shows that
    /// wait, gap and overlap show the coordination.
    Cut,
    /// The node is isolated from its peers on the node network (the API server and the
    /// client still reach it); unisolated after.
    Isolate,
    /// The API server goes down for everyone, and 2 s later the speaker gets SIGKILL;
    /// the API server comes back and the speaker starts again after the round.
    KillDuringApiDown,
    /// The speaker gets SIGKILL and the node's link goes down at the bridge (it stops
    /// serving entirely); the link comes back and the speaker starts again after.
    PowerOff,
}

/// Every disruption, in the order the bench runs them.
pub const DISRUPTIONS: [Disruption; 6] = [
    Disruption::Kill,
    Disruption::Term,
    Disruption::Cut,
    Disruption::Isolate,
    Disruption::KillDuringApiDown,
    Disruption::PowerOff,
];

impl Disruption {
    /// The disruption's name on the command line (`--only`).
    pub fn name(self) -> &'static str {
        match self {
            Disruption::Kill => "kill",
            Disruption::Term => "term",
            Disruption::Cut => "cut",
            Disruption::Isolate => "isolate",
            Disruption::KillDuringApiDown => "kill-api-down",
            Disruption::PowerOff => "power-off",
        }
    }
}

impl std::fmt::Display for Disruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Disruption::Kill => "SIGKILL",
            Disruption::Term => "SIGTERM",
            Disruption::Cut => "API cut (one node)",
            Disruption::Isolate => "isolated from peers",
            Disruption::KillDuringApiDown => "SIGKILL, API down for all",
            Disruption::PowerOff => "power-off",
        })
    }
}

/// The result of one failover round.
#[derive(Debug, Clone)]
pub struct Round {
    /// What was done to the announcing node.
    pub disruption: Disruption,
    /// The IP.
    pub ip: IpAddr,
    /// The node that announced it.
    pub from: String,
    /// The node the client's traffic moved to.
    pub to: String,
    /// Disruption → first HTTP answer from another node.
    pub recovery: Duration,
    /// Disruption → first ARP/NDP claim by another MAC, if seen.
    pub takeover: Option<Duration>,
    /// Longest window with two MACs claiming the IP during the failover.
    pub overlap: Duration,
    /// The silent window: the old MAC's last claim → the new MAC's first claim (zero
    /// when they overlap).
    pub gap: Option<Duration>,
    /// Disruption → the old node no longer answers a who-has (None: it still did when
    /// the round gave up waiting).
    pub silenced: Option<Duration>,
    /// Requests that failed (timeout, refused) between the disruption and the recovery.
    pub failed_requests: u32,
    /// Longest two-MAC window while the node rejoined.
    pub rejoin_overlap: Duration,
}

/// A background observer in the client namespace: sends a who-has for each of `ips`
/// every tick and records the claims for them until stopped.
pub(crate) struct Observer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Vec<Claim>, LabError>>,
}

impl Observer {
    /// Starts observing; it stops by itself after `bound`, should it be forgotten.
    pub(crate) fn start(
        lab: &Lab,
        ips: Vec<IpAddr>,
        tick: Duration,
        bound: Duration,
    ) -> Result<Observer, LabError> {
        Observer::start_on(lab, crate::Segment::Main, ips, tick, bound)
    }

    /// [`Observer::start`] on one segment (the second one's client and observer identity
    /// for [`crate::Segment::Vlan`]).
    pub(crate) fn start_on(
        lab: &Lab,
        segment: crate::Segment,
        ips: Vec<IpAddr>,
        tick: Duration,
        bound: Duration,
    ) -> Result<Observer, LabError> {
        use crate::plan::vlan;
        let (ns, mac, v4, v6) = match segment {
            crate::Segment::Main => (
                lab.plan().client_ns(),
                OBSERVER_MAC,
                OBSERVER_V4,
                OBSERVER_V6,
            ),
            crate::Segment::Vlan => (
                lab.plan().vlan_client_ns(),
                vlan::OBSERVER_MAC,
                vlan::OBSERVER_V4,
                vlan::OBSERVER_V6,
            ),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = spawn_in_netns(&ns, move || {
            let mut prober = Prober::open(UPLINK, mac, v4, v6)?;
            let mut claims = Vec::new();
            let end = Instant::now() + bound;
            while !flag.load(Ordering::Relaxed) && Instant::now() < end {
                for ip in &ips {
                    prober.request(*ip)?;
                }
                let next = Instant::now() + tick;
                while let Some(c) = prober.next_claim(next) {
                    if ips.contains(&c.ip) {
                        claims.push(c);
                    }
                }
            }
            Ok(claims)
        })?;
        Ok(Observer { stop, thread })
    }

    /// The observer of a failover round: one IP, every 5 ms.
    fn one(lab: &Lab, ip: IpAddr) -> Result<Observer, LabError> {
        Observer::start(lab, vec![ip], OBSERVER_TICK, Duration::from_secs(120))
    }

    pub(crate) async fn finish(self) -> Result<Vec<Claim>, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || {
            thread
                .join()
                .unwrap_or_else(|_| Err(LabError::Config("the observer thread panicked".into())))
        })
        .await
        .map_err(|e| LabError::Config(format!("observer: {e}")))?
    }
}

/// Joins a client-namespace thread from async code.
pub(crate) async fn join<T: Send + 'static>(
    handle: std::thread::JoinHandle<Result<T, LabError>>,
    what: &str,
) -> Result<T, LabError> {
    let panicked = format!("the {what} thread panicked");
    tokio::task::spawn_blocking(move || {
        handle
            .join()
            .unwrap_or_else(|_| Err(LabError::Config(panicked)))
    })
    .await
    .map_err(|e| LabError::Config(format!("joining the {what} thread: {e}")))?
}

/// Waits until the client's own HTTP traffic to `ip` reaches `node`.
async fn wait_client_reaches(
    lab: &Lab,
    ip: IpAddr,
    node: &str,
    within: Duration,
) -> Result<(), LabError> {
    let what = format!("the client's requests to {ip} to reach {node}");
    crate::wait_for(
        &what,
        within,
        Duration::from_millis(50),
        move || async move {
            (lab.curl(ip, Duration::from_millis(300)).await.ok()? == node).then_some(())
        },
    )
    .await
}

/// Waits until exactly one node has answered for `ip` for `quiet` in a row.
pub async fn wait_stable(
    lab: &Lab,
    ip: IpAddr,
    quiet: Duration,
    within: Duration,
) -> Result<String, LabError> {
    let deadline = Instant::now() + within;
    let mut current: Option<(String, Instant)> = None;
    loop {
        lab.check_children()?;
        let who = lab.announcers(ip).await?;
        let now = Instant::now();
        match (&current, who.as_slice()) {
            (Some((node, since)), [one]) if node == one => {
                if now.duration_since(*since) >= quiet {
                    return Ok(one.clone());
                }
            }
            (_, [one]) => current = Some((one.clone(), now)),
            _ => current = None,
        }
        if now >= deadline {
            return Err(LabError::Timeout {
                what: format!("{ip} to be answered by one stable node"),
                after: within,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `node` no longer answers a who-has for `ip`; the time since `t0`.
async fn wait_silent(
    lab: &Lab,
    ip: IpAddr,
    node: &str,
    t0: Instant,
    within: Duration,
) -> Result<Option<Duration>, LabError> {
    let deadline = Instant::now() + within;
    loop {
        if !lab.announcers(ip).await?.iter().any(|n| n == node) {
            return Ok(Some(t0.elapsed()));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One failover round on `ip` with `disruption` (see the module docs). `within`
/// bounds the wait for the client's traffic to move.
pub async fn failover_round(
    lab: &Lab,
    ip: IpAddr,
    disruption: Disruption,
    within: Duration,
) -> Result<Round, LabError> {
    let from = wait_stable(
        lab,
        ip,
        Duration::from_millis(1000),
        Duration::from_secs(30),
    )
    .await?;
    wait_client_reaches(lab, ip, &from, Duration::from_secs(15)).await?;

    if disruption == Disruption::KillDuringApiDown {
        lab.api_down().await?;
        tokio::time::sleep(API_DOWN_LEAD).await;
    }
    let observer = Observer::one(lab, ip)?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    match disruption {
        Disruption::Kill | Disruption::KillDuringApiDown => {
            lab.signal_speaker(&from, Signal::SIGKILL)?;
        }
        Disruption::Term => {
            lab.signal_speaker(&from, Signal::SIGTERM)?;
        }
        Disruption::PowerOff => {
            lab.signal_speaker(&from, Signal::SIGKILL)?;
            lab.set_link(&from, false).await?;
        }
        Disruption::Cut => lab.cut(&from).await?,
        Disruption::Isolate => lab.isolate(&from).await?,
    }
    let old = from.clone();
    let client = spawn_in_netns(&lab.plan().client_ns(), move || {
        let mut failed = 0u32;
        while t0.elapsed() < within {
            match http::get(ip, REQUEST_TIMEOUT) {
                Ok(node) if node != old => return Ok((t0.elapsed(), node, failed)),
                Ok(_) => {}
                Err(_) => failed += 1,
            }
            std::thread::sleep(CLIENT_TICK);
        }
        Err(LabError::Timeout {
            what: format!("the client's traffic to {ip} to move off {old}"),
            after: within,
        })
    })?;
    let outcome = join(client, "client").await;
    // A node that is isolated or cut off may fall silent after the client has moved:
    // keep observing until it has, so that overlap and gap cover the whole handover.
    let silenced = match &outcome {
        Ok(_) => wait_silent(lab, ip, &from, t0, Duration::from_secs(15)).await,
        Err(_) => Ok(None),
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let claims = observer.finish().await;

    // Restore the node whatever happened, so that a failed round leaves the lab usable.
    let rejoin = restore(lab, &from, disruption, ip).await;
    let (recovery, to, failed_requests) = outcome?;
    let silenced = silenced?;
    let claims = claims?;
    let rejoin_claims = rejoin?;

    let (takeover, gap) = handover(&claims, lab.node(&from)?.mac, t0);

    Ok(Round {
        disruption,
        ip,
        from,
        to,
        recovery,
        takeover,
        overlap: overlap(&claims),
        gap,
        silenced,
        failed_requests,
        rejoin_overlap: overlap(&rejoin_claims),
    })
}

/// Undoes `disruption` on `node` and waits until `ip` is stable again; returns the
/// claims seen meanwhile.
async fn restore(
    lab: &Lab,
    node: &str,
    disruption: Disruption,
    ip: IpAddr,
) -> Result<Vec<Claim>, LabError> {
    let rejoin = Observer::one(lab, ip)?;
    let undone = async {
        match disruption {
            Disruption::Kill | Disruption::Term => {}
            Disruption::KillDuringApiDown => lab.api_up().await?,
            Disruption::PowerOff => lab.set_link(node, true).await?,
            Disruption::Cut => return lab.heal(node).await,
            Disruption::Isolate => return lab.unisolate(node).await,
        }
        lab.wait_speaker_exit(node, Duration::from_secs(10)).await?;
        lab.start_speaker(node).map(|_| ())
    }
    .await;
    let settled = match undone {
        Ok(()) => wait_stable(
            lab,
            ip,
            Duration::from_millis(1500),
            Duration::from_secs(30),
        )
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    let claims = rejoin.finish().await;
    settled?;
    claims
}

/// Takeover and silent gap of a handover away from `old_mac` that began at `t0`: the
/// first claim by another MAC after `t0` (as a time since `t0`), and the time from the
/// old MAC's last claim to it (zero when they overlap).
pub fn handover(
    claims: &[Claim],
    old_mac: [u8; 6],
    t0: Instant,
) -> (Option<Duration>, Option<Duration>) {
    let first_new = claims
        .iter()
        .filter(|c| c.at >= t0 && c.mac != old_mac)
        .map(|c| c.at)
        .min();
    let last_old = claims
        .iter()
        .filter(|c| c.mac == old_mac)
        .map(|c| c.at)
        .max();
    let takeover = first_new.map(|at| at - t0);
    let gap = first_new
        .zip(last_old)
        .map(|(new, old)| new.saturating_duration_since(old));
    (takeover, gap)
}

/// Announcer changes in `[from, to)`: for each IP of `announcers` (IP → the MAC that
/// announced it before), the number of other MACs that claimed it. Claims for other
/// IPs are ignored.
pub fn count_moves(
    claims: &[Claim],
    announcers: &BTreeMap<IpAddr, [u8; 6]>,
    from: Instant,
    to: Instant,
) -> u32 {
    let mut moves = 0;
    for (ip, mac) in announcers {
        let mut others: Vec<[u8; 6]> = claims
            .iter()
            .filter(|c| c.ip == *ip && c.mac != *mac && c.at >= from && c.at < to)
            .map(|c| c.mac)
            .collect();
        others.sort();
        others.dedup();
        moves += others.len() as u32;
    }
    moves
}

/// The longest time in `[from, to)` during which some IP of `ips` was claimed by
/// nobody (the edges of the window count: an IP never claimed was silent throughout).
/// With a who-has every tick this shows whether every address kept being answered.
pub fn longest_silence(claims: &[Claim], ips: &[IpAddr], from: Instant, to: Instant) -> Duration {
    let mut longest = Duration::ZERO;
    for ip in ips {
        let mut times: Vec<Instant> = claims
            .iter()
            .filter(|c| c.ip == *ip && c.at >= from && c.at < to)
            .map(|c| c.at)
            .collect();
        times.sort();
        let mut last = from;
        for t in times.into_iter().chain(std::iter::once(to)) {
            longest = longest.max(t - last);
            last = t;
        }
    }
    longest
}

/// A fault under which no address may move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Soak {
    /// The API server is down for everyone (speakers and controller).
    ApiDown,
    /// Every API write of the speakers and the controller takes 2 s more.
    ApiSlowWrites,
    /// 30 % of the API requests of the speakers and the controller fail with 503.
    ApiFailing,
    /// 10 % of the frames between nodes are dropped.
    Loss,
    /// The API server is down for everyone and a speaker that announces nothing (if
    /// there is one) stops and starts again meanwhile: it must announce nothing.
    StartWithoutApi,
}

/// Every stability run, in the order the bench runs them.
pub const SOAKS: [Soak; 5] = [
    Soak::ApiDown,
    Soak::ApiSlowWrites,
    Soak::ApiFailing,
    Soak::Loss,
    Soak::StartWithoutApi,
];

impl Soak {
    /// The run's name on the command line (`--only`).
    pub fn name(self) -> &'static str {
        match self {
            Soak::ApiDown => "api-down",
            Soak::ApiSlowWrites => "api-slow-writes",
            Soak::ApiFailing => "api-failing",
            Soak::Loss => "loss",
            Soak::StartWithoutApi => "start-without-api",
        }
    }

    /// How long issue 11 asks the fault to be held (the bench's default).
    pub fn default_duration(self) -> Duration {
        match self {
            Soak::ApiSlowWrites | Soak::ApiFailing => Duration::from_secs(300),
            Soak::Loss => Duration::from_secs(600),
            Soak::ApiDown | Soak::StartWithoutApi => Duration::from_secs(60),
        }
    }
}

impl std::fmt::Display for Soak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Soak::ApiDown => "API down for all",
            Soak::ApiSlowWrites => "API writes +2 s",
            Soak::ApiFailing => "API 30 % 503",
            Soak::Loss => "10 % loss between nodes",
            Soak::StartWithoutApi => "speaker starts, API down",
        })
    }
}

/// The result of a stability run.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// The fault.
    pub soak: Soak,
    /// How long it was held.
    pub duration: Duration,
    /// The node that announced each IP before the fault.
    pub announcers: BTreeMap<IpAddr, String>,
    /// Client requests made while the fault was held.
    pub requests: u32,
    /// Of those, the ones that failed (timeout, refused, bad answer).
    pub failed_requests: u32,
    /// The first few failures, for the reader: time into the fault, IP, error.
    pub failures: Vec<String>,
    /// Announcer changes while the fault was held: for each IP, the MACs other than
    /// its announcer's that claimed it.
    pub moves: u32,
    /// Announcer changes within `AFTER_LIFT` after the fault was lifted.
    pub moves_after_lift: u32,
    /// The longest time some IP went unanswered by every node while the fault was held
    /// (the observer asks for each every 20 ms).
    pub longest_silence: Duration,
    /// [`Soak::StartWithoutApi`]: the restarted node, and how many claims its MAC made
    /// while the API server was down.
    pub restarted: Option<(String, u32)>,
}

/// The external IPs of the example Services (web, web6, web-dual), once allocated.
pub async fn example_ips(lab: &Lab) -> Result<Vec<IpAddr>, LabError> {
    let mut ips = Vec::new();
    for (name, family) in EXAMPLE_SERVICES {
        let count = if family == Family::Dual { 2 } else { 1 };
        ips.extend(
            lab.wait_service_ips(name, count, Duration::from_secs(30))
                .await?,
        );
    }
    Ok(ips)
}

/// Holds `soak` for `duration` while a client requests every IP of `ips` in turn and
/// the observer records their claims (see the module docs).
pub async fn soak(
    lab: &Lab,
    ips: &[IpAddr],
    soak: Soak,
    duration: Duration,
) -> Result<SoakReport, LabError> {
    let mut announcers = BTreeMap::new();
    for ip in ips {
        let node = wait_stable(
            lab,
            *ip,
            Duration::from_millis(1000),
            Duration::from_secs(30),
        )
        .await?;
        wait_client_reaches(lab, *ip, &node, Duration::from_secs(15)).await?;
        announcers.insert(*ip, node);
    }
    let observer = Observer::start(
        lab,
        ips.to_vec(),
        SOAK_OBSERVER_TICK,
        duration + AFTER_LIFT + Duration::from_secs(60),
    )?;
    let t0 = Instant::now();
    let held = hold(lab, ips, soak, duration, &announcers).await;
    let t_lift = Instant::now();
    let lifted = lift(lab, soak).await;
    tokio::time::sleep(AFTER_LIFT).await;
    let claims = observer.finish().await;
    let ((requests, failed_requests, failures), restarted) = held?;
    lifted?;
    let claims = claims?;

    let mut announcer_macs = BTreeMap::new();
    for (ip, node) in &announcers {
        announcer_macs.insert(*ip, lab.node(node)?.mac);
    }
    let moves = count_moves(&claims, &announcer_macs, t0, t_lift);
    let moves_after_lift = count_moves(&claims, &announcer_macs, t_lift, t_lift + AFTER_LIFT);
    let longest_silence = longest_silence(&claims, ips, t0, t_lift);
    let restarted = match restarted {
        Some(node) => {
            let mac = lab.node(&node)?.mac;
            let n = claims
                .iter()
                .filter(|c| c.mac == mac && c.at >= t0 && c.at < t_lift)
                .count() as u32;
            Some((node, n))
        }
        None => None,
    };
    // Leave the lab as it was found: every IP answered by one node.
    for ip in ips {
        wait_stable(
            lab,
            *ip,
            Duration::from_millis(1000),
            Duration::from_secs(30),
        )
        .await?;
    }
    Ok(SoakReport {
        soak,
        duration,
        announcers,
        requests,
        failed_requests,
        failures,
        moves,
        moves_after_lift,
        longest_silence,
        restarted,
    })
}

/// Client counts: requests, failed requests, the first failures.
type ClientCounts = (u32, u32, Vec<String>);

/// Applies `soak`, runs the client for `duration`, and returns its counts and, for
/// [`Soak::StartWithoutApi`], the restarted node.
async fn hold(
    lab: &Lab,
    ips: &[IpAddr],
    soak: Soak,
    duration: Duration,
    announcers: &BTreeMap<IpAddr, String>,
) -> Result<(ClientCounts, Option<String>), LabError> {
    let t0 = Instant::now();
    let client_ips = ips.to_vec();
    let client = spawn_in_netns(&lab.plan().client_ns(), move || {
        Ok(client_loop(&client_ips, t0, duration))
    })?;
    let applied = apply(lab, soak, announcers).await;
    let counts = join(client, "client").await;
    let restarted = applied?;
    Ok((counts?, restarted))
}

/// Requests every IP of `ips` in turn (a new connection each) until `duration` after
/// `t0`; bounded in count as well.
fn client_loop(ips: &[IpAddr], t0: Instant, duration: Duration) -> ClientCounts {
    let max_requests = (duration.as_millis() / SOAK_CLIENT_TICK.as_millis()) as u32 + 10;
    let (mut requests, mut failed) = (0u32, 0u32);
    let mut failures = Vec::new();
    while t0.elapsed() < duration && requests < max_requests {
        let ip = ips[requests as usize % ips.len()];
        requests += 1;
        if let Err(e) = http::get(ip, REQUEST_TIMEOUT) {
            failed += 1;
            if failures.len() < 5 {
                failures.push(format!("{} {ip}: {e}", ms(t0.elapsed())));
            }
        }
        std::thread::sleep(SOAK_CLIENT_TICK);
    }
    (requests, failed, failures)
}

/// Puts `soak` in force; for [`Soak::StartWithoutApi`], restarts a speaker and returns
/// its node.
async fn apply(
    lab: &Lab,
    soak: Soak,
    announcers: &BTreeMap<IpAddr, String>,
) -> Result<Option<String>, LabError> {
    match soak {
        Soak::ApiDown => lab.api_down().await?,
        Soak::ApiSlowWrites => lab.api_delay_writes(Duration::from_secs(2)).await?,
        Soak::ApiFailing => lab.api_fail(30).await?,
        Soak::Loss => lab.loss(10).await?,
        Soak::StartWithoutApi => {
            lab.api_down().await?;
            // The node announcing the fewest IPs (none, when there is one), so that the
            // run shows the restart alone, not a handover.
            let node = lab
                .node_names()
                .into_iter()
                .min_by_key(|n| announcers.values().filter(|a| *a == n).count())
                .ok_or_else(|| LabError::Config("the lab has no node".into()))?;
            tokio::time::sleep(API_DOWN_LEAD).await;
            lab.signal_speaker(&node, Signal::SIGTERM)?;
            lab.wait_speaker_exit(&node, Duration::from_secs(10))
                .await?;
            lab.start_speaker(&node)?;
            return Ok(Some(node));
        }
    }
    Ok(None)
}

/// Ends `soak`.
async fn lift(lab: &Lab, soak: Soak) -> Result<(), LabError> {
    match soak {
        Soak::ApiDown | Soak::StartWithoutApi => lab.api_up().await,
        Soak::ApiSlowWrites => lab.api_delay_writes(Duration::ZERO).await,
        Soak::ApiFailing => lab.api_fail(0).await,
        Soak::Loss => lab.loss(0).await,
    }
}

/// Minimum, median, mean and maximum of `values`.
pub fn summary(values: &[Duration]) -> Option<(Duration, Duration, Duration, Duration)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort();
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    Some((v[0], v[v.len() / 2], mean, v[v.len() - 1]))
}

/// Formats a duration in milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
    const C: [u8; 6] = [2, 0, 0, 0, 0, 0xc];

    fn claim(t0: Instant, ms: u64, ip: &str, mac: [u8; 6]) -> Claim {
        Claim {
            at: t0 + Duration::from_millis(ms),
            ip: ip.parse().unwrap(),
            mac,
            kind: crate::probe::ClaimKind::Reply,
        }
    }

    #[test]
    fn handover_measures_takeover_and_gap_from_the_claims() {
        let t0 = Instant::now();
        let ip = "192.0.2.200";
        // A claims until 40 ms after the disruption at 10 ms, B from 90 ms.
        let claims: Vec<Claim> = [0, 20, 40, 90, 100]
            .into_iter()
            .zip([A, A, A, B, B])
            .map(|(ms, mac)| claim(t0, ms, ip, mac))
            .collect();
        let (takeover, gap) = handover(&claims, A, t0 + Duration::from_millis(10));
        assert_eq!(takeover, Some(Duration::from_millis(80)));
        assert_eq!(gap, Some(Duration::from_millis(50)));
        // Overlapping claims: no gap.
        let claims = vec![claim(t0, 0, ip, B), claim(t0, 5, ip, A)];
        assert_eq!(handover(&claims, A, t0).1, Some(Duration::ZERO));
        // Nobody took over.
        assert_eq!(handover(&claims[1..], A, t0), (None, None));
    }

    #[test]
    fn moves_count_other_macs_per_ip_within_the_window() {
        let t0 = Instant::now();
        let (v4, v6) = ("192.0.2.200", "2001:db8::200");
        let announcers: BTreeMap<IpAddr, [u8; 6]> =
            [(v4.parse().unwrap(), A), (v6.parse().unwrap(), B)].into();
        let quiet = vec![
            claim(t0, 0, v4, A),
            claim(t0, 10, v6, B),
            // Another IP than the observed ones does not count.
            claim(t0, 20, "192.0.2.201", C),
        ];
        let end = t0 + Duration::from_secs(1);
        assert_eq!(count_moves(&quiet, &announcers, t0, end), 0);
        let mut moved = quiet.clone();
        // v4 claimed by B twice and by C once: two other MACs; v6 by A: one.
        moved.extend([
            claim(t0, 30, v4, B),
            claim(t0, 40, v4, B),
            claim(t0, 50, v4, C),
            claim(t0, 60, v6, A),
        ]);
        assert_eq!(count_moves(&moved, &announcers, t0, end), 3);
        // Only the window counts.
        let from = t0 + Duration::from_millis(45);
        assert_eq!(count_moves(&moved, &announcers, from, end), 2);
        assert_eq!(count_moves(&moved, &announcers, t0, from), 1);
    }

    #[test]
    fn the_longest_silence_counts_the_window_edges_and_unclaimed_ips() {
        let t0 = Instant::now();
        let (v4, v6) = ("192.0.2.200", "2001:db8::200");
        let ips: Vec<IpAddr> = vec![v4.parse().unwrap(), v6.parse().unwrap()];
        let end = t0 + Duration::from_millis(100);
        let mut claims: Vec<Claim> = (0..10).map(|i| claim(t0, i * 10, v4, A)).collect();
        claims.extend((0..10).map(|i| claim(t0, i * 10 + 5, v6, B)));
        assert_eq!(
            longest_silence(&claims, &ips, t0, end),
            Duration::from_millis(10)
        );
        // v6 unanswered from 25 ms to 75 ms.
        claims.retain(|c| !(c.ip == ips[1] && (30..=70).contains(&(c.at - t0).as_millis())));
        assert_eq!(
            longest_silence(&claims, &ips, t0, end),
            Duration::from_millis(50)
        );
        // An IP nobody claims is silent for the whole window.
        let more = [ips[0], "192.0.2.201".parse().unwrap()];
        assert_eq!(
            longest_silence(&claims, &more, t0, end),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn fault_names_are_distinct() {
        let mut names: Vec<&str> = DISRUPTIONS
            .iter()
            .map(|d| d.name())
            .chain(SOAKS.iter().map(|s| s.name()))
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DISRUPTIONS.len() + SOAKS.len());
    }

    #[test]
    fn summary_orders_values() {
        let v = [
            Duration::from_millis(30),
            Duration::from_millis(10),
            Duration::from_millis(20),
        ];
        let (min, median, mean, max) = summary(&v).unwrap();
        assert_eq!((min, median, mean, max), (v[1], v[2], v[2], v[0]));
        assert!(summary(&[]).is_none());
        assert_eq!(ms(Duration::from_micros(1260)), "1.3 ms");
    }
}
