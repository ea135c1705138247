//! Switching a running set of Services from another load-balancer implementation to
//! ferrolb (issue 13), step by step as README's "Switching from MetalLB / Cilium /
//! kube-vip" describes it, measured from the client namespace.
//!
//! **The previous tool** is played by the lab, without installing anything:
//! - its controller: the lab writes every Service's `status.loadBalancer.ingress` itself,
//!   with addresses from the top of the pool (not the lowest free ones ferrolb would
//!   pick, so that an address kept shows adoption, not coincidence);
//! - its speaker: the addresses are added to the `eth0` of one node, whose kernel then
//!   answers ARP and NDP for them (the nodes run with `arp_ignore=1`, which answers for
//!   addresses of the receiving interface; the same addresses on kube-lb0 stay
//!   unanswered). This is how kube-vip's ARP mode holds an address, and on the wire the
//!   same replies MetalLB's and Cilium's speakers send. Stopping that speaker removes
//!   the addresses. Not played: kube-vip's periodic re-announcements;
//! - its configuration: a MetalLB `IPAddressPool` and `L2Advertisement` with the lab's
//!   pool, which the real `ferrolb-controller convert` turns into ferrolb's ConfigMap.
//!
//! kube-proxy's stand-in serves the addresses on every node throughout, as kube-proxy
//! does in a cluster (it follows the Services' status, not the tool), so a client whose
//! traffic still goes to the previous tool's node is still served.
//!
//! **Measured** per step ([`Step`]) of an [`Order`], for every Service IP, while a
//! client requests each IP over HTTP (a new TCP connection every [`CLIENT_TICK`],
//! through the client kernel's neighbour cache, as a client that keeps talking) and an
//! observer sends a who-has for each every [`OBSERVER_TICK`] (what a client that must
//! resolve the address, a new or idle one, gets):
//! - *interruption*: the longest run of failed requests that began in the step, from
//!   the first failed request to the next answer;
//! - *unanswered*: the longest time without any ARP/NDP claim for the IP that began in
//!   the step (from the last claim; the observer's tick is the floor);
//! - the Services whose status changed (must be none) and those with an `IPAdopted`
//!   Event.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::bench::{Observer, join};
use crate::error::LabError;
use crate::netns::spawn_in_netns;
use crate::plan::{POOL_V4, POOL_V6, UPLINK};
use crate::probe::{Claim, ClaimKind};
use crate::seed::{CONFIG_NAME, SERVICE_NAMESPACE, SYSTEM_NAMESPACE};
use crate::{Family, Lab, cmd, http, wait_for};

/// Pause between one client's requests to one IP.
pub const CLIENT_TICK: Duration = Duration::from_millis(10);
/// Interval of the observer's round of who-has over every IP.
pub const OBSERVER_TICK: Duration = Duration::from_millis(10);
/// Timeout of one client request (connect, then each read).
const REQUEST_TIMEOUT: Duration = Duration::from_millis(100);
/// Most Services a migration may have (the pool's addresses per family).
pub const MAX_SERVICES: usize = 20;
/// The Event reason of an adopted address (the controller's).
pub const ADOPTED: &str = "IPAdopted";
/// The Event reason of a speaker that starts announcing (the speaker's).
pub const ANNOUNCING: &str = "Announcing";

/// The order of the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Stop the previous speaker, then apply ferrolb (controller and speakers at once).
    StopFirst,
    /// ferrolb's controller (it adopts), then ferrolb's speakers while the previous
    /// speaker still answers, then stop the previous speaker.
    FerrolbFirst,
}

/// Both orders, in the order the bench runs them.
pub const ORDERS: [Order; 2] = [Order::StopFirst, Order::FerrolbFirst];

impl Order {
    /// The order's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Order::StopFirst => "stop-first",
            Order::FerrolbFirst => "ferrolb-first",
        }
    }

    /// The order named `name`.
    pub fn parse(name: &str) -> Option<Order> {
        ORDERS.into_iter().find(|o| o.name() == name)
    }

    /// Its steps.
    pub fn steps(self) -> &'static [Step] {
        match self {
            Order::StopFirst => &[Step::StopPrevious, Step::ApplyFerrolb],
            Order::FerrolbFirst => &[Step::Controller, Step::Speakers, Step::StopPrevious],
        }
    }
}

/// One step of a switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The previous tool's speaker stops answering.
    StopPrevious,
    /// The converted ConfigMap is applied and ferrolb's controller and speakers start
    /// together (`kubectl apply -k deploy/`); done once every Service is adopted and
    /// announced and every IP answered.
    ApplyFerrolb,
    /// The converted ConfigMap is applied and ferrolb's controller starts; done once
    /// every Service is adopted.
    Controller,
    /// ferrolb's speakers start; done once every Service is announced.
    Speakers,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Step::StopPrevious => "stop the previous speaker",
            Step::ApplyFerrolb => "apply ferrolb (controller + speakers)",
            Step::Controller => "ferrolb controller (adopts)",
            Step::Speakers => "ferrolb speakers",
        })
    }
}

/// How to run a switch.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of Services (1..=[`MAX_SERVICES`]), IPv4 and IPv6 alternately.
    pub services: usize,
    /// The order of the steps.
    pub order: Order,
    /// The node whose kernel plays the previous tool's speaker.
    pub previous_node: String,
    /// How long to keep measuring after a step's effect, before the next step.
    pub settle: Duration,
    /// Pause between stopping the previous speaker and applying ferrolb
    /// ([`Order::StopFirst`]; zero: the commands back to back).
    pub pause: Duration,
    /// Bound on each wait (a step's effect, the previous tool being reachable).
    pub within: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            services: 4,
            order: Order::FerrolbFirst,
            previous_node: "n1".into(),
            settle: Duration::from_secs(2),
            pause: Duration::ZERO,
            within: Duration::from_secs(30),
        }
    }
}

/// A Service of the switch and the address the previous tool gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    /// Its name in `default`.
    pub name: String,
    /// Its family.
    pub family: Family,
    /// Its external IP.
    pub ip: IpAddr,
}

/// The Services of a switch of `count`: IPv4 and IPv6 alternately, with addresses
/// from the top of the pool down.
pub fn plan_services(count: usize) -> Result<Vec<Migrated>, LabError> {
    if count == 0 || count > MAX_SERVICES {
        return Err(LabError::Config(format!(
            "a migration takes 1 to {MAX_SERVICES} Services, not {count}"
        )));
    }
    Ok((0..count)
        .map(|i| {
            let k = (i / 2) as u32;
            if i % 2 == 0 {
                Migrated {
                    name: format!("mig-v4-{}", k + 1),
                    family: Family::V4,
                    ip: IpAddr::V4(Ipv4Addr::from(u32::from(POOL_V4.1) - k)),
                }
            } else {
                Migrated {
                    name: format!("mig-v6-{}", k + 1),
                    family: Family::V6,
                    ip: IpAddr::V6(Ipv6Addr::from(u128::from(POOL_V6.1) - k as u128)),
                }
            }
        })
        .collect())
}

/// The previous tool's configuration, as `kubectl get ipaddresspools,l2advertisements
/// -o yaml` prints a MetalLB install that owns the lab's pool.
pub fn previous_tool_manifest() -> String {
    format!(
        "apiVersion: v1\nkind: List\nitems:\n\
         - apiVersion: metallb.io/v1beta1\n  kind: IPAddressPool\n  metadata:\n    name: lab\n    namespace: metallb-system\n  spec:\n    addresses:\n    - {}-{}\n    - {}-{}\n\
         - apiVersion: metallb.io/v1beta1\n  kind: L2Advertisement\n  metadata:\n    name: lab\n    namespace: metallb-system\n  spec: {{}}\n",
        POOL_V4.0, POOL_V4.1, POOL_V6.0, POOL_V6.1
    )
}

/// What one step did to one IP.
#[derive(Debug, Clone)]
pub struct IpStep {
    /// The Service.
    pub service: String,
    /// Its IP.
    pub ip: IpAddr,
    /// Longest client interruption that began in the step (the one whose first failed request
    /// started in it; zero: no request failed).
    pub interruption: Duration,
    /// Whether the client was answered again after it (false: not before the end).
    pub recovered: bool,
    /// Requests made in the step.
    pub requests: u32,
    /// Of those, the failed ones.
    pub failed: u32,
    /// Longest time without an ARP/NDP claim that began in the step: whose
    /// first unanswered who-has (a tick after the last claim) went out in it.
    pub unanswered: Duration,
    /// For a step that starts ferrolb's speakers: from its start to the first
    /// gratuitous ARP / unsolicited NA for the IP (ferrolb's, the previous speaker
    /// sends none).
    pub announced_after: Option<Duration>,
    /// The nodes that answered the client's requests in the step, in order.
    pub served_by: Vec<String>,
}

/// One step's outcome.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// The step.
    pub step: Step,
    /// From its start until its effect was seen (see [`Step`]).
    pub took: Duration,
    /// Services whose status differs from the previous tool's after the step.
    pub addresses_changed: Vec<String>,
    /// Services with an `IPAdopted` Event after the step.
    pub adopted: usize,
    /// Per IP.
    pub ips: Vec<IpStep>,
}

/// A whole switch.
#[derive(Debug, Clone)]
pub struct Report {
    /// Its order.
    pub order: Order,
    /// The node that played the previous speaker.
    pub previous_node: String,
    /// The Services.
    pub services: Vec<Migrated>,
    /// Per step.
    pub steps: Vec<StepReport>,
    /// `IPAdopted` Events per Service at the end.
    pub adopted: BTreeMap<String, usize>,
    /// The node that answers for each IP at the end (a name, or a MAC that is no node's).
    pub announcers: BTreeMap<IpAddr, String>,
    /// The nodes that `Announcing` Events name for each Service.
    pub announced_by: BTreeMap<String, Vec<String>>,
}

/// Adds (or removes) `ips` on `node`'s eth0: the previous tool's speaker starts (stops).
pub async fn previous_speaker(
    lab: &Lab,
    node: &str,
    ips: &[IpAddr],
    on: bool,
) -> Result<(), LabError> {
    let netns = lab.node(node)?.netns;
    for ip in ips {
        let cidr = match ip {
            IpAddr::V4(v4) => format!("{v4}/32"),
            IpAddr::V6(v6) => format!("{v6}/128"),
        };
        let mut args = vec!["addr", if on { "replace" } else { "del" }, &cidr];
        args.extend(["dev", UPLINK]);
        if on && ip.is_ipv6() {
            args.push("nodad");
        }
        cmd::ip_in_async(&netns, &args).await?;
    }
    Ok(())
}

/// The Service IPs on `node`'s eth0 (the previous speaker's, while it runs).
pub async fn previous_speaker_ips(lab: &Lab, node: &str) -> Result<Vec<IpAddr>, LabError> {
    let netns = lab.node(node)?.netns;
    let out = cmd::ip_in_async(&netns, &["-o", "addr", "show", "dev", UPLINK]).await?;
    Ok(crate::topology::parse_addr_lines(&out)
        .into_iter()
        .filter(|ip| crate::plan::in_pool(*ip))
        .collect())
}

/// The ferrolb ConfigMap's `config.yaml` that `ferrolb-controller convert` writes for
/// [`previous_tool_manifest`]. A conversion that loses anything is an error.
pub async fn converted_config(lab: &Lab) -> Result<String, LabError> {
    let manifest = lab.state_dir().join("previous-tool.yaml");
    std::fs::write(&manifest, previous_tool_manifest())
        .map_err(LabError::io(format!("writing {}", manifest.display())))?;
    let bin = lab.controller_binary()?;
    let out = cmd::run_async(
        &bin.display().to_string(),
        &["convert", &manifest.display().to_string()],
    )
    .await?;
    let cm: ConfigMap = serde_yaml_ng::from_str(&out).map_err(|e| {
        LabError::Config(format!(
            "`ferrolb-controller convert` printed no ConfigMap: {e}"
        ))
    })?;
    cm.data
        .and_then(|mut d| d.remove("config.yaml"))
        .ok_or_else(|| LabError::Config("the converted ConfigMap has no config.yaml".into()))
}

/// Replaces the lab's pool ConfigMap's `config.yaml` with `config`.
async fn apply_config(lab: &Lab, config: &str) -> Result<(), LabError> {
    let api: Api<ConfigMap> = Api::namespaced(lab.client().clone(), SYSTEM_NAMESPACE);
    api.patch(
        CONFIG_NAME,
        &PatchParams::default(),
        &Patch::Merge(json!({ "data": { "config.yaml": config } })),
    )
    .await
    .map_err(LabError::kube(format!(
        "writing ConfigMap {SYSTEM_NAMESPACE}/{CONFIG_NAME}"
    )))?;
    Ok(())
}

/// Creates the Services and writes their status as the previous tool's controller did.
async fn create_services(lab: &Lab, services: &[Migrated]) -> Result<(), LabError> {
    let api: Api<Service> = Api::namespaced(lab.client().clone(), SERVICE_NAMESPACE);
    for s in services {
        lab.create_service(&s.name, s.family).await?;
        let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": s.ip.to_string()}]}}});
        api.patch_status(&s.name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .map_err(LabError::kube(format!(
                "writing the status of Service {SERVICE_NAMESPACE}/{}",
                s.name
            )))?;
    }
    Ok(())
}

/// Per Service of `default`, the `events.k8s.io` Events with `reason`: their notes.
pub async fn events(lab: &Lab, reason: &str) -> Result<BTreeMap<String, Vec<String>>, LabError> {
    let api: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(lab.client().clone(), SERVICE_NAMESPACE);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(LabError::kube("listing the Events of default"))?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ev in list.items {
        if ev.reason.as_deref() != Some(reason) {
            continue;
        }
        let Some(name) = ev.regarding.and_then(|r| r.name) else {
            continue;
        };
        out.entry(name)
            .or_default()
            .push(ev.note.unwrap_or_default());
    }
    Ok(out)
}

/// The node an `Announcing` note names (`node n2 announces ...`).
pub fn announcing_node(note: &str) -> Option<&str> {
    note.strip_prefix("node ")?.split_whitespace().next()
}

/// Waits until every Service of `services` has an Event with `reason`.
async fn wait_events(
    lab: &Lab,
    services: &[Migrated],
    reason: &str,
    within: Duration,
) -> Result<(), LabError> {
    let what = format!("every migrated Service to get a {reason} Event");
    wait_for(&what, within, Duration::from_millis(50), || async {
        lab.check_children().ok()?;
        let got = events(lab, reason).await.ok()?;
        services
            .iter()
            .all(|s| got.contains_key(&s.name))
            .then_some(())
    })
    .await
    .and_then(|()| lab.check_children())
}

/// Waits until every IP of `services` is answered by some node.
async fn wait_answered(lab: &Lab, services: &[Migrated], within: Duration) -> Result<(), LabError> {
    for s in services {
        let what = format!("{} to be answered again", s.ip);
        wait_for(&what, within, Duration::from_millis(20), || async {
            (!lab.announcers(s.ip).await.ok()?.is_empty()).then_some(())
        })
        .await?;
    }
    Ok(())
}

/// The Services whose external IPs are no longer the previous tool's.
async fn changed(lab: &Lab, services: &[Migrated]) -> Result<Vec<String>, LabError> {
    let mut out = Vec::new();
    for s in services {
        if lab.service_ips(&s.name).await? != vec![s.ip] {
            out.push(s.name.clone());
        }
    }
    Ok(out)
}

/// Builds the starting point in a lab started without controller and speakers: the
/// Services with the previous tool's status, served by kube-proxy on every node and
/// answered by the previous speaker on `opts.previous_node`, which the client reaches.
pub async fn prepare(lab: &Lab, opts: &Options) -> Result<Vec<Migrated>, LabError> {
    let services = plan_services(opts.services)?;
    lab.node(&opts.previous_node)?;
    create_services(lab, &services).await?;
    for s in &services {
        lab.wait_service_ips(&s.name, 1, opts.within).await?;
    }
    let ips: Vec<IpAddr> = services.iter().map(|s| s.ip).collect();
    previous_speaker(lab, &opts.previous_node, &ips, true).await?;
    for s in &services {
        let what = format!(
            "the client's requests to {} to reach the previous speaker's node {}",
            s.ip, opts.previous_node
        );
        wait_for(&what, opts.within, Duration::from_millis(50), || async {
            let node = lab.curl(s.ip, Duration::from_millis(300)).await.ok()?;
            let who = lab.announcers(s.ip).await.ok()?;
            (node == opts.previous_node && who == [opts.previous_node.clone()]).then_some(())
        })
        .await?;
    }
    Ok(services)
}

/// One client request: when it started and ended, and the node that answered.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Start of the request.
    pub at: Instant,
    /// Its end.
    pub done: Instant,
    /// The answering node (None: the request failed).
    pub node: Option<String>,
}

/// A run of failed requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// Start of its first failed request.
    pub start: Instant,
    /// End of the next successful request (None: none came).
    pub end: Option<Instant>,
    /// Its failed requests.
    pub failed: u32,
}

/// The outages in `samples` (in time order).
pub fn outages(samples: &[Sample]) -> Vec<Outage> {
    let mut out = Vec::new();
    let mut current: Option<Outage> = None;
    for s in samples {
        match (&mut current, &s.node) {
            (None, None) => {
                current = Some(Outage {
                    start: s.at,
                    end: None,
                    failed: 1,
                })
            }
            (Some(o), None) => o.failed += 1,
            (Some(_), Some(_)) => {
                let mut o = current.take().expect("an outage is open");
                o.end = Some(s.done);
                out.push(o);
            }
            (None, Some(_)) => {}
        }
    }
    out.extend(current);
    out
}

/// The silences of one IP: every span between two successive claims, and from the
/// last claim to `end`, as (from, to).
pub fn silences(claims: &[Instant], end: Instant) -> Vec<(Instant, Instant)> {
    let mut times: Vec<Instant> = claims.iter().copied().filter(|t| *t < end).collect();
    times.sort();
    times.push(end);
    times.windows(2).map(|w| (w[0], w[1])).collect()
}

/// The index of the step that `t` falls in, given the steps' start times (None: before
/// the first).
pub fn step_of(marks: &[Instant], t: Instant) -> Option<usize> {
    marks.iter().rposition(|m| *m <= t)
}

/// Per step, what happened to IP `ip` of Service `service`: from its client's
/// `samples` and the observer's `claims` for it, with the steps `steps` starting at
/// `marks` and the measurement ending at `end`.
pub fn per_step(
    service: &str,
    ip: IpAddr,
    samples: &[Sample],
    claims: &[Claim],
    (steps, marks): (&[Step], &[Instant]),
    end: Instant,
) -> Vec<IpStep> {
    let mut out: Vec<IpStep> = marks
        .iter()
        .map(|_| IpStep {
            service: service.to_string(),
            ip,
            interruption: Duration::ZERO,
            recovered: true,
            requests: 0,
            failed: 0,
            unanswered: Duration::ZERO,
            announced_after: None,
            served_by: Vec::new(),
        })
        .collect();
    for o in outages(samples) {
        let Some(i) = step_of(marks, o.start) else {
            continue;
        };
        let length = o.end.unwrap_or(end).saturating_duration_since(o.start);
        if length >= out[i].interruption {
            out[i].interruption = length;
            out[i].recovered = o.end.is_some();
        }
    }
    for s in samples {
        let Some(i) = step_of(marks, s.at) else {
            continue;
        };
        out[i].requests += 1;
        match &s.node {
            None => out[i].failed += 1,
            Some(n) if !out[i].served_by.contains(n) => out[i].served_by.push(n.clone()),
            Some(_) => {}
        }
    }
    let times: Vec<Instant> = claims.iter().map(|c| c.at).collect();
    for (from, to) in silences(&times, end) {
        // The first unanswered who-has went out within a tick after the last claim.
        if let Some(i) = step_of(marks, from + OBSERVER_TICK) {
            out[i].unanswered = out[i].unanswered.max(to - from);
        }
    }
    for (i, (step, mark)) in steps.iter().zip(marks).enumerate() {
        if matches!(step, Step::Speakers | Step::ApplyFerrolb) {
            out[i].announced_after = claims
                .iter()
                .filter(|c| c.at >= *mark && c.kind == ClaimKind::Announcement)
                .map(|c| c.at - *mark)
                .min();
        }
    }
    out
}

/// One IP's client thread: its samples when it ends.
type ClientThread = std::thread::JoinHandle<Result<Vec<Sample>, LabError>>;

/// The client: one thread per IP in the client namespace, requesting it every
/// [`CLIENT_TICK`] until stopped (or `bound`, should it be forgotten).
struct Client {
    stop: Arc<AtomicBool>,
    threads: Vec<(IpAddr, ClientThread)>,
}

impl Client {
    fn start(lab: &Lab, ips: &[IpAddr], bound: Duration) -> Result<Client, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for ip in ips {
            let (ip, flag) = (*ip, stop.clone());
            let max = (bound.as_millis() / CLIENT_TICK.as_millis()) as usize + 1;
            let thread = spawn_in_netns(&lab.plan().client_ns(), move || {
                let mut samples = Vec::new();
                let t0 = Instant::now();
                while !flag.load(Ordering::Relaxed) && t0.elapsed() < bound && samples.len() < max {
                    let at = Instant::now();
                    let node = http::get(ip, REQUEST_TIMEOUT).ok();
                    samples.push(Sample {
                        at,
                        done: Instant::now(),
                        node,
                    });
                    std::thread::sleep(CLIENT_TICK);
                }
                Ok(samples)
            });
            match thread {
                Ok(t) => threads.push((ip, t)),
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(Client { stop, threads })
    }

    async fn finish(self) -> Result<BTreeMap<IpAddr, Vec<Sample>>, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        let mut out = BTreeMap::new();
        for (ip, thread) in self.threads {
            out.insert(ip, join(thread, "client").await?);
        }
        Ok(out)
    }
}

/// Bound on a whole switch's measurement.
const MEASUREMENT_BOUND: Duration = Duration::from_secs(600);

/// Runs a switch in a lab started without controller and speakers (see the module
/// docs): [`prepare`], then the steps of `opts.order`, measuring each.
pub async fn run(lab: &Lab, opts: &Options) -> Result<Report, LabError> {
    let services = prepare(lab, opts).await?;
    let ips: Vec<IpAddr> = services.iter().map(|s| s.ip).collect();
    let observer = Observer::start(lab, ips.clone(), OBSERVER_TICK, MEASUREMENT_BOUND)?;
    let client = match Client::start(lab, &ips, MEASUREMENT_BOUND) {
        Ok(c) => c,
        Err(e) => {
            let _ = observer.finish().await;
            return Err(e);
        }
    };
    // A baseline before the first step, so that a step's first silence has a start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stepped = steps(lab, opts, &services).await;
    let end = Instant::now();
    let claims = observer.finish().await;
    let samples = client.finish().await;
    let (marks, mut steps) = stepped?;
    let claims = claims?;
    let samples = samples?;

    for s in &services {
        let own_claims: Vec<Claim> = claims.iter().filter(|c| c.ip == s.ip).copied().collect();
        let none = Vec::new();
        let own = samples.get(&s.ip).unwrap_or(&none);
        let order = opts.order.steps();
        for (report, ip) in steps.iter_mut().zip(per_step(
            &s.name,
            s.ip,
            own,
            &own_claims,
            (order, &marks),
            end,
        )) {
            report.ips.push(ip);
        }
    }

    let mut announcers = BTreeMap::new();
    for s in &services {
        let who =
            crate::bench::wait_stable(lab, s.ip, Duration::from_millis(1000), opts.within).await?;
        announcers.insert(s.ip, who);
    }
    let adopted = events(lab, ADOPTED)
        .await?
        .into_iter()
        .map(|(k, v)| (k, v.len()))
        .collect();
    let announced_by = events(lab, ANNOUNCING)
        .await?
        .into_iter()
        .map(|(k, notes)| {
            let nodes = notes
                .iter()
                .filter_map(|n| announcing_node(n).map(str::to_string))
                .collect();
            (k, nodes)
        })
        .collect();
    Ok(Report {
        order: opts.order,
        previous_node: opts.previous_node.clone(),
        services,
        steps,
        adopted,
        announcers,
        announced_by,
    })
}

/// Runs the steps; returns their start times and reports (without the per-IP part).
async fn steps(
    lab: &Lab,
    opts: &Options,
    services: &[Migrated],
) -> Result<(Vec<Instant>, Vec<StepReport>), LabError> {
    let ips: Vec<IpAddr> = services.iter().map(|s| s.ip).collect();
    // Converted before the clock starts: `convert` runs on the operator's machine.
    let config = converted_config(lab).await?;
    let order = opts.order.steps();
    let (mut marks, mut reports) = (Vec::new(), Vec::new());
    for (i, step) in order.iter().enumerate() {
        let t0 = Instant::now();
        marks.push(t0);
        match step {
            Step::StopPrevious => previous_speaker(lab, &opts.previous_node, &ips, false).await?,
            Step::Controller => {
                apply_config(lab, &config).await?;
                lab.start_controller()?;
                wait_events(lab, services, ADOPTED, opts.within).await?;
            }
            Step::Speakers => {
                start_speakers(lab)?;
                wait_events(lab, services, ANNOUNCING, opts.within).await?;
            }
            Step::ApplyFerrolb => {
                apply_config(lab, &config).await?;
                lab.start_controller()?;
                start_speakers(lab)?;
                wait_events(lab, services, ADOPTED, opts.within).await?;
                wait_events(lab, services, ANNOUNCING, opts.within).await?;
                wait_answered(lab, services, opts.within).await?;
            }
        }
        let took = t0.elapsed();
        let last = i + 1 == order.len();
        let settle = if *step == Step::StopPrevious && !last {
            opts.pause
        } else {
            opts.settle
        };
        // At least two observer ticks between steps, so that a silence the step began
        // (its first unanswered who-has within a tick of the last claim) is the step's.
        let settle = settle.max(OBSERVER_TICK * 2);
        tokio::time::sleep(settle).await;
        lab.check_children()?;
        reports.push(StepReport {
            step: *step,
            took,
            addresses_changed: changed(lab, services).await?,
            adopted: events(lab, ADOPTED).await?.len(),
            ips: Vec::new(),
        });
    }
    Ok((marks, reports))
}

/// Starts every node's speaker at once, as a DaemonSet rolls out.
fn start_speakers(lab: &Lab) -> Result<(), LabError> {
    for node in lab.node_names() {
        lab.start_speaker(&node)?;
    }
    Ok(())
}

/// Header of [`round_rows`] (Markdown).
pub const ROUND_HEADER: &str = "\
| order | round | step | took | addresses changed | Services adopted | client interruption max / median | failed requests | unanswered max / median | ferrolb announces after median / max | IPs served by another node |
|---|---|---|---|---|---|---|---|---|---|---|";

/// Maximum and median of `values` ("-" when empty).
fn max_median(values: &[Duration]) -> String {
    match crate::bench::summary(values) {
        Some((_, median, _, max)) => format!("{} / {}", ms(max), ms(median)),
        None => "-".into(),
    }
}

/// Median and maximum of `values` ("-" when empty).
fn median_max(values: &[Duration]) -> String {
    match crate::bench::summary(values) {
        Some((_, median, _, max)) => format!("{} / {}", ms(median), ms(max)),
        None => "-".into(),
    }
}

fn ms(d: Duration) -> String {
    crate::bench::ms(d)
}

/// The figures of some (step, IP) results.
#[derive(Default)]
struct Figures {
    interruptions: Vec<Duration>,
    unanswered: Vec<Duration>,
    announced: Vec<Duration>,
    failed: u32,
    requests: u32,
    /// IPs whose client was served by a node other than the previous speaker's.
    moved: usize,
}

/// Gathers [`Figures`] from (result, previous speaker's node) pairs.
fn figures<'a>(ips: impl Iterator<Item = (&'a IpStep, &'a str)>) -> Figures {
    let mut f = Figures::default();
    for (ip, previous) in ips {
        f.interruptions.push(ip.interruption);
        f.unanswered.push(ip.unanswered);
        f.announced.extend(ip.announced_after);
        f.failed += ip.failed;
        f.requests += ip.requests;
        f.moved += usize::from(ip.served_by.iter().any(|n| n != previous));
    }
    f
}

/// One Markdown row per step of `report` (round `round`), over its IPs.
pub fn round_rows(report: &Report, round: u32) -> String {
    let mut out = String::new();
    for step in &report.steps {
        let f = figures(
            step.ips
                .iter()
                .map(|ip| (ip, report.previous_node.as_str())),
        );
        out.push_str(&format!(
            "| {} | {round} | {} | {} | {} | {} / {} | {} | {} of {} | {} | {} | {} of {} |\n",
            report.order.name(),
            step.step,
            ms(step.took),
            step.addresses_changed.len(),
            step.adopted,
            report.services.len(),
            max_median(&f.interruptions),
            f.failed,
            f.requests,
            max_median(&f.unanswered),
            median_max(&f.announced),
            f.moved,
            step.ips.len(),
        ));
    }
    out
}

/// Per order and step, over every round and IP of `reports` (Markdown).
pub fn summary(reports: &[Report]) -> String {
    let mut out = String::from(
        "| order | step | rounds | addresses changed | Services adopted (IPAdopted) | client interruption max / median | failed requests | unanswered max / median | ferrolb announces after median / max |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for order in ORDERS {
        let of: Vec<&Report> = reports.iter().filter(|r| r.order == order).collect();
        let Some(first) = of.first() else { continue };
        for (i, step) in first.steps.iter().enumerate() {
            let steps: Vec<(&StepReport, &str)> = of
                .iter()
                .filter_map(|r| Some((r.steps.get(i)?, r.previous_node.as_str())))
                .collect();
            let f = figures(
                steps
                    .iter()
                    .flat_map(|(s, p)| s.ips.iter().map(move |ip| (ip, *p))),
            );
            let changed: usize = steps.iter().map(|(s, _)| s.addresses_changed.len()).sum();
            let adopted: usize = steps.iter().map(|(s, _)| s.adopted).sum();
            let services: usize = of.iter().map(|r| r.services.len()).sum();
            out.push_str(&format!(
                "| {} | {} | {} | {changed} | {adopted} of {services} | {} | {} of {} | {} | {} |\n",
                order.name(),
                step.step,
                steps.len(),
                max_median(&f.interruptions),
                f.failed,
                f.requests,
                max_median(&f.unanswered),
                median_max(&f.announced),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t0: Instant, ms: u64, node: Option<&str>) -> Sample {
        Sample {
            at: t0 + Duration::from_millis(ms),
            done: t0 + Duration::from_millis(ms + 1),
            node: node.map(str::to_string),
        }
    }

    #[test]
    fn services_alternate_families_from_the_top_of_the_pool() {
        let s = plan_services(3).unwrap();
        assert_eq!(s[0].name, "mig-v4-1");
        assert_eq!(s[0].ip, "192.0.2.220".parse::<IpAddr>().unwrap());
        assert_eq!(s[1].family, Family::V6);
        assert_eq!(s[1].ip, "2001:db8::220".parse::<IpAddr>().unwrap());
        assert_eq!(s[2].ip, "192.0.2.219".parse::<IpAddr>().unwrap());
        let all = plan_services(MAX_SERVICES).unwrap();
        assert!(all.iter().all(|s| crate::plan::in_pool(s.ip)));
        assert!(plan_services(0).unwrap_err().to_string().contains("not 0"));
        assert!(plan_services(MAX_SERVICES + 1).is_err());
    }

    #[test]
    fn outages_run_from_the_first_failure_to_the_next_answer() {
        let t0 = Instant::now();
        let samples = [
            sample(t0, 0, Some("n1")),
            sample(t0, 10, None),
            sample(t0, 20, None),
            sample(t0, 30, Some("n2")),
            sample(t0, 40, None),
        ];
        let o = outages(&samples);
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].start, t0 + Duration::from_millis(10));
        assert_eq!(o[0].end, Some(t0 + Duration::from_millis(31)));
        assert_eq!(o[0].failed, 2);
        assert_eq!(o[1].end, None, "never answered again");
        assert!(outages(&samples[..1]).is_empty());
    }

    #[test]
    fn per_step_attributes_outages_and_silences_to_the_step_they_begin_in() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let marks = [at(100), at(200)];
        let samples = [
            sample(t0, 50, Some("n1")),
            sample(t0, 150, Some("n1")),
            // Fails from 190 ms (step 0) to the answer at 260 ms (step 1).
            sample(t0, 190, None),
            sample(t0, 220, None),
            sample(t0, 260, Some("n2")),
        ];
        let ip: IpAddr = "192.0.2.220".parse().unwrap();
        let claim = |ms, kind| Claim {
            at: at(ms),
            ip,
            mac: [2, 0, 0, 0, 0, 1],
            kind,
        };
        // Replies every 10 ms until 190 ms, none until the announcement at 250 ms.
        let mut claims: Vec<Claim> = (0..20).map(|i| claim(i * 10, ClaimKind::Reply)).collect();
        claims.push(claim(250, ClaimKind::Announcement));
        claims.extend((26..30).map(|i| claim(i * 10, ClaimKind::Reply)));
        let steps = [Step::StopPrevious, Step::ApplyFerrolb];
        let per = per_step("s", ip, &samples, &claims, (&steps, &marks), at(300));
        // The outage's first failed request (190 ms) is step 0's.
        assert_eq!(per[0].interruption, Duration::from_millis(71));
        assert_eq!(per[1].interruption, Duration::ZERO);
        assert!(per[0].recovered);
        assert_eq!((per[0].requests, per[0].failed), (2, 1));
        assert_eq!((per[1].requests, per[1].failed), (2, 1));
        // The last claim before the silence was at 190 ms: the first unanswered
        // who-has went out by 200 ms, in step 1.
        assert_eq!(per[0].unanswered, Duration::from_millis(10));
        assert_eq!(per[1].unanswered, Duration::from_millis(60));
        assert_eq!(per[0].served_by, ["n1"]);
        assert_eq!(per[1].served_by, ["n2"]);
        assert_eq!(per[0].announced_after, None, "no speaker starts in step 0");
        assert_eq!(per[1].announced_after, Some(Duration::from_millis(50)));
        // Never answered again: the outage runs to the end, not recovered.
        let per = per_step("s", ip, &samples[..4], &claims, (&steps, &marks), at(300));
        assert_eq!(per[0].interruption, Duration::from_millis(110));
        assert!(!per[0].recovered);
    }

    #[test]
    fn silences_run_to_the_end_and_steps_are_found_by_start() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let s = silences(&[at(10), at(0), at(60)], at(50));
        assert_eq!(s, vec![(at(0), at(10)), (at(10), at(50))]);
        assert_eq!(silences(&[], at(5)), vec![]);
        let marks = [at(10), at(20)];
        assert_eq!(step_of(&marks, at(5)), None);
        assert_eq!(step_of(&marks, at(10)), Some(0));
        assert_eq!(step_of(&marks, at(25)), Some(1));
    }

    #[test]
    fn announcing_notes_name_their_node_and_orders_their_steps() {
        assert_eq!(
            announcing_node("node n2 announces 192.0.2.220 (ARP)"),
            Some("n2")
        );
        assert_eq!(announcing_node("something else"), None);
        assert_eq!(Order::parse("stop-first"), Some(Order::StopFirst));
        assert_eq!(Order::parse("ferrolb-first"), Some(Order::FerrolbFirst));
        assert_eq!(Order::parse("other"), None);
        assert_eq!(Order::StopFirst.steps()[0], Step::StopPrevious);
        assert_eq!(
            Order::FerrolbFirst.steps().last(),
            Some(&Step::StopPrevious)
        );
    }

    #[test]
    fn the_previous_tool_manifest_converts_exactly_to_the_lab_pool() {
        // `convert` itself runs in the e2e test; here: the manifest is what kubectl prints.
        let m = previous_tool_manifest();
        let doc: serde_json::Value = serde_yaml_ng::from_str(&m).unwrap();
        let items = doc["items"].as_array().unwrap();
        assert_eq!(items[0]["kind"], "IPAddressPool");
        assert_eq!(items[0]["spec"]["addresses"][0], "192.0.2.200-192.0.2.220");
        assert_eq!(
            items[0]["spec"]["addresses"][1],
            "2001:db8::200-2001:db8::220"
        );
        assert_eq!(items[1]["kind"], "L2Advertisement");
    }

    #[test]
    fn the_tables_aggregate_over_ips_and_rounds() {
        let ip = |service: &str, int: u64, un: u64, served: &[&str]| IpStep {
            service: service.into(),
            ip: "192.0.2.220".parse().unwrap(),
            interruption: Duration::from_millis(int),
            recovered: true,
            requests: 10,
            failed: u32::from(int > 0),
            unanswered: Duration::from_millis(un),
            announced_after: None,
            served_by: served.iter().map(|s| s.to_string()).collect(),
        };
        let report = |ints: [u64; 2]| Report {
            order: Order::StopFirst,
            previous_node: "n1".into(),
            services: plan_services(2).unwrap(),
            steps: vec![StepReport {
                step: Step::StopPrevious,
                took: Duration::from_millis(8),
                addresses_changed: vec![],
                adopted: 0,
                ips: vec![
                    ip("a", ints[0], 800, &["n1"]),
                    ip("b", ints[1], 10, &["n1", "n2"]),
                ],
            }],
            adopted: BTreeMap::new(),
            announcers: BTreeMap::new(),
            announced_by: BTreeMap::new(),
        };
        let row = round_rows(&report([0, 30]), 1);
        assert_eq!(
            row,
            "| stop-first | 1 | stop the previous speaker | 8.0 ms | 0 | 0 / 2 | 30.0 ms / 30.0 ms | 1 of 20 | 800.0 ms / 800.0 ms | - | 1 of 2 |\n"
        );
        let table = summary(&[report([0, 30]), report([0, 50])]);
        assert!(
            table.contains("| stop-first | stop the previous speaker | 2 | 0 | 0 of 4 | 50.0 ms / 30.0 ms | 2 of 40 | 800.0 ms / 800.0 ms | - |"),
            "{table}"
        );
        assert_eq!(table.lines().count(), 3, "no row for an order not run");
    }
}
