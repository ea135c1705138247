//! Speaker election benchmark (a bench binary, not criterion: it measures a running
//! system over wall-clock windows).
//!
//! 1. Steady state: the embedded API server with 3 Nodes and N Services (default 1,000,
//!    each with an IP in its status and a ready endpoint), and 3 `ferrolb-speaker`
//!    processes (`--no-dataplane`, default timers). Once every IP is announced, it
//!    measures over a window (default 30 s): API writes per second (the server's
//!    resourceVersion advances by one per write, whoever makes it), Lease renewals, and
//!    each speaker's CPU (utime + stime from /proc) and RSS. Each speaker's heartbeat
//!    socket binds its Node's InternalIP, a loopback address of its own.
//! 2. Failover of the election (in-process speakers, default timers, same cluster
//!    shape): time from a crash (every task of the announcer aborted, as SIGKILL) or a
//!    graceful stop (what SIGTERM runs) of one speaker until the survivors announce all
//!    of its IPs, and the longest window in which two speakers announced one IP.
//! 3. The cost of one election (`elect`) for the cluster shape, in CPU time.
//!
//! `cargo bench -p ferrolb-speaker --bench election`
//! (env: BENCH_SERVICES=1000, BENCH_WINDOW_SECS=30, BENCH_FAILOVERS=5)
//!
//! `BENCH_KUBECONFIG=FILE` runs 1. and 2. against the API server of FILE's current
//! context instead of the embedded one: Nodes prefixed `flbbench-<pid>-<time>-`,
//! namespaces of the run's own (its Services too), all deleted at the end (see
//! `support/external.rs`). The writes per second then come from the resourceVersion
//! of a list (etcd's revision: every write on the cluster counts, not only the
//! speakers'), or are reported as not available. The API server must serve IPv6
//! Services (the benchmark's are IPv6 single-stack).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_apiserver::{ApiServer, ApiServerOptions, RunningApiServer};
use ferrolb_core::election::{
    ElectionPolicy, NodeFacts, ServiceFacts, ServiceKey, TrafficPolicy, elect,
};
use ferrolb_speaker::{RecordingDataplane, Settings, Speaker};
use ferrolb_testkit::{KillOnDrop, free_addr, free_port};
use kube::Client;
use std::path::PathBuf;
use tokio::sync::oneshot;

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/external.rs"]
mod external;
#[path = "support/proc_usage.rs"]
mod proc_usage;
#[path = "support/speaker_proc.rs"]
mod speaker_proc;
use proc_usage::proc_usage;
use speaker_proc::{SpeakerProc, env_num, metric, wait_announced};

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
const BIN: &str = env!("CARGO_BIN_EXE_ferrolb-speaker");

/// The i-th Service IP, in documentation space only: the three IPv4 documentation /24s
/// (768 addresses), then 2001:db8::/32.
fn svc_ip(i: u32) -> IpAddr {
    const BASES: [u32; 3] = [0xc000_0200, 0xc633_6400, 0xcb00_7100]; // 192.0.2/24, 198.51.100/24, 203.0.113/24
    if i < 768 {
        IpAddr::V4(Ipv4Addr::from(BASES[(i / 256) as usize] + (i % 256)))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(
            0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + u128::from(i),
        ))
    }
}

/// The API server a run uses: the embedded one, or an external one (`BENCH_KUBECONFIG`).
struct Target {
    /// The embedded server (None: external).
    server: Option<RunningApiServer>,
    /// A kubeconfig for it.
    kubeconfig: PathBuf,
    /// The run's namespaces and name prefix.
    names: external::Names,
    /// The run's Node names.
    nodes: Vec<String>,
}

impl Target {
    async fn client(&self) -> Client {
        match &self.server {
            Some(s) => s.client().await.expect("client"),
            None => external::client_from(&self.kubeconfig).await,
        }
    }

    /// The server's write counter: the embedded server's own, or a list's
    /// resourceVersion on an external one.
    async fn resource_version(&self) -> Option<u64> {
        match &self.server {
            Some(s) => Some(s.resource_version()),
            None => external::list_resource_version(&self.client().await).await,
        }
    }

    fn namespaces(&self) -> cluster::Namespaces<'_> {
        cluster::Namespaces {
            system: &self.names.system_ns,
            leases: &self.names.lease_ns,
            services: &self.names.svc_ns,
        }
    }
}

async fn steady_state(target: &Target, n_svc: u32, window: Duration) {
    let dir = std::env::temp_dir().join(format!("ferrolb-election-bench-{}", std::process::id()));
    let kubeconfig = match &target.server {
        Some(server) => {
            let path = dir.join("kubeconfig");
            server.write_kubeconfig(&path).expect("kubeconfig");
            path
        }
        None => target.kubeconfig.clone(),
    };
    let mut procs = Vec::new();
    let port = free_port();
    for (i, n) in target.nodes.iter().enumerate() {
        let metrics = free_addr();
        let child = Command::new(BIN)
            .args(["--node-name", n, "--no-dataplane", "--log-level", "warn"])
            .args(["--namespace", &target.names.lease_ns])
            .args(["--config-namespace", &target.names.system_ns])
            .arg("--membership-bind")
            .arg(cluster::node_addr(i).to_string())
            .arg("--membership-port")
            .arg(port.to_string())
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--metrics-addr")
            .arg(metrics.to_string())
            .env_remove("NODE_NAME")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn speaker");
        procs.push(SpeakerProc {
            child: KillOnDrop::new(child),
            metrics,
        });
    }
    let took = wait_announced(&procs, n_svc).await;
    println!(
        "converged: {n_svc} IPs announced by 3 speakers {:.1} s after start",
        took.as_secs_f64()
    );
    // Let start-up Events and the initial burst settle before measuring.
    tokio::time::sleep(Duration::from_secs(5)).await;

    let rv0 = target.resource_version().await;
    let renew0: Vec<f64> = procs
        .iter()
        .map(|p| metric(p.metrics, "ferrolb_speaker_lease_renewals_total").unwrap_or(0.0))
        .collect();
    let use0: Vec<f64> = procs.iter().map(|p| proc_usage(p.child.id()).cpu).collect();
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let secs = t0.elapsed().as_secs_f64();
    let rv1 = target.resource_version().await;
    let renewals: f64 = procs
        .iter()
        .zip(&renew0)
        .map(|(p, r0)| {
            metric(p.metrics, "ferrolb_speaker_lease_renewals_total").unwrap_or(0.0) - r0
        })
        .sum();
    let writes = match (rv0, rv1) {
        (Some(a), Some(b)) if b >= a => format!(
            "{:.2} API writes/s in total ({} writes{})",
            (b - a) as f64 / secs,
            b - a,
            if target.server.is_some() {
                ""
            } else {
                ", from a list's resourceVersion: every write on the cluster counts"
            }
        ),
        _ => "API writes/s not available (the server's resourceVersion is not a counter)".into(),
    };
    println!(
        "steady state over {secs:.1} s: {writes}; {:.2} Lease renewals/s; target <= nodes / renew period = 3 / 10 s = 0.3/s plus what the Services cause",
        renewals / secs
    );
    for (p, cpu0) in procs.iter().zip(&use0) {
        let now = proc_usage(p.child.id());
        let (cpu1, rss) = (now.cpu, now.rss);
        let mib = |k: u64| k as f64 / 1024.0;
        println!(
            "  speaker pid {}: CPU {:.2}% of a core, RSS {:.1} MiB (anonymous {:.1}, file-backed {:.1})",
            p.child.id(),
            (cpu1 - cpu0) / secs * 100.0,
            mib(rss[0]),
            mib(rss[1]),
            mib(rss[2])
        );
    }
    drop(procs);
    let _ = std::fs::remove_dir_all(&dir);
}

struct InProc {
    node: String,
    dp: Arc<RecordingDataplane>,
    task: Option<tokio::task::JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
}

fn start_in_proc(target: &Target, node: &str, client: Client, port: u16) -> InProc {
    let dp = Arc::new(RecordingDataplane::new());
    let (tx, rx) = oneshot::channel::<()>();
    let mut settings = Settings::new(node);
    settings.namespace = target.names.lease_ns.clone();
    settings.config_namespace = target.names.system_ns.clone();
    let i = target
        .nodes
        .iter()
        .position(|n| n == node)
        .expect("a bench node");
    settings.membership.bind = IpAddr::V4(cluster::node_addr(i));
    settings.membership.port = port;
    let speaker = Speaker::new(settings, client, dp.clone());
    let task = tokio::spawn(async move {
        let _ = speaker
            .run(async {
                let _ = rx.await;
            })
            .await;
    });
    InProc {
        node: node.into(),
        dp,
        task: Some(task),
        stop: Some(tx),
    }
}

fn union(speakers: &[&InProc]) -> usize {
    let mut all = BTreeSet::new();
    for s in speakers {
        all.extend(s.dp.announced());
    }
    all.len()
}

/// Longest window in which two speakers' recorded sets both held one IP.
fn max_overlap(speakers: &[&InProc], killed: Option<(&str, Instant)>) -> Duration {
    let mut by_ip: BTreeMap<IpAddr, Vec<(Instant, Instant)>> = BTreeMap::new();
    let end_of_time = Instant::now();
    for s in speakers {
        let mut open: BTreeMap<IpAddr, Instant> = BTreeMap::new();
        for (t, set) in s.dp.history() {
            for ip in &set {
                open.entry(*ip).or_insert(t);
            }
            let gone: Vec<IpAddr> = open
                .keys()
                .filter(|ip| !set.contains(ip))
                .copied()
                .collect();
            for ip in gone {
                let st = open.remove(&ip).unwrap();
                by_ip.entry(ip).or_default().push((st, t));
            }
        }
        let end = killed
            .filter(|(n, _)| *n == s.node)
            .map(|(_, t)| t)
            .unwrap_or(end_of_time);
        for (ip, st) in open {
            by_ip.entry(ip).or_default().push((st, end));
        }
    }
    let mut worst = Duration::ZERO;
    for iv in by_ip.values_mut() {
        iv.sort();
        for w in iv.windows(2) {
            if w[1].0 < w[0].1 {
                worst = worst.max(w[0].1.min(w[1].1) - w[1].0);
            }
        }
    }
    worst
}

async fn failovers(target: &Target, n_svc: u32, rounds: u64) {
    let port = free_port();
    let mk = |node: &str, c: Client| start_in_proc(target, node, c, port);
    let mut speakers = Vec::new();
    for n in &target.nodes {
        speakers.push(mk(n, target.client().await));
    }
    for kind in ["crash (SIGKILL)", "graceful (SIGTERM)"] {
        let mut times = Vec::new();
        let mut overlap = Duration::ZERO;
        for round in 0..rounds {
            // Steady state with all three.
            let start = Instant::now();
            while union(&speakers.iter().collect::<Vec<_>>()) != n_svc as usize
                || speakers
                    .iter()
                    .map(|s| s.dp.announced().len())
                    .sum::<usize>()
                    != n_svc as usize
            {
                assert!(start.elapsed() < Duration::from_secs(60), "no steady state");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            let victim = (round % 3) as usize;
            let mut v = speakers.remove(victim);
            let t0 = Instant::now();
            if kind.starts_with("crash") {
                if let Some(t) = v.task.take() {
                    t.abort();
                }
            } else {
                if let Some(s) = v.stop.take() {
                    let _ = s.send(());
                }
            }
            loop {
                if union(&speakers.iter().collect::<Vec<_>>()) == n_svc as usize {
                    break;
                }
                assert!(t0.elapsed() < Duration::from_secs(10), "no takeover");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            times.push(t0.elapsed());
            let killed = kind.starts_with("crash").then_some((v.node.as_str(), t0));
            let mut all: Vec<&InProc> = speakers.iter().collect();
            all.push(&v);
            overlap = overlap.max(max_overlap(&all, killed));
            if let Some(t) = v.task.take() {
                let _ = t.await;
            }
            // The victim comes back (a restarted pod) for the next round.
            speakers.insert(victim, mk(&v.node, target.client().await));
        }
        if times.is_empty() {
            continue;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "election failover, {kind}, {} rounds: median {:.0} ms, max {:.0} ms (times until the survivors announce every IP of the victim); longest overlap {:.1} ms",
            times.len(),
            ms(times[times.len() / 2]),
            ms(*times.last().unwrap()),
            ms(overlap)
        );
    }
    for mut s in speakers {
        if let Some(t) = s.task.take() {
            t.abort();
        }
    }
}

fn election_cost(n_svc: u32) {
    let nodes: Vec<NodeFacts> = NODES
        .iter()
        .map(|n| NodeFacts {
            name: n.to_string(),
            speaker_live: true,
            ready: true,
            labels: Default::default(),
            link_ok: true,
        })
        .collect();
    let services: Vec<ServiceFacts> = (0..n_svc)
        .map(|i| ServiceFacts {
            key: ServiceKey::new("default", format!("svc-{i}")),
            ips: vec![svc_ip(i)],
            traffic_policy: TrafficPolicy::Cluster,
            ready_endpoint_nodes: Default::default(),
            has_ready_endpoint: true,
            node_rules: Default::default(),
        })
        .collect();
    let policy = ElectionPolicy::default();
    let iters = 200;
    let t0 = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(elect(
            std::hint::black_box(&nodes),
            std::hint::black_box(&services),
            &policy,
        ));
    }
    println!(
        "one election (3 nodes, {n_svc} Services): {:.0} µs (mean of {iters}, wall clock)",
        t0.elapsed().as_secs_f64() * 1e6 / iters as f64
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n_svc = env_num("BENCH_SERVICES", 1000) as u32;
    let window = Duration::from_secs(env_num("BENCH_WINDOW_SECS", 30));
    let rounds = env_num("BENCH_FAILOVERS", 5);
    election_cost(n_svc);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let external = external::bench_kubeconfig();
        let names = match external {
            Some(_) => external::Names::external(),
            None => external::Names::embedded(),
        };
        let nodes: Vec<String> = NODES.iter().map(|n| names.node(n)).collect();
        let target = match &external {
            Some(path) => {
                println!(
                    "against the external API server of {} (names prefixed {})",
                    path.display(),
                    names.prefix
                );
                Target {
                    server: None,
                    kubeconfig: path.clone(),
                    names: names.clone(),
                    nodes: nodes.clone(),
                }
            }
            None => Target {
                server: Some(
                    ApiServer::start(ApiServerOptions {
                        history: 20_000,
                        ..Default::default()
                    })
                    .await
                    .expect("API server"),
                ),
                kubeconfig: PathBuf::new(),
                names: names.clone(),
                nodes: nodes.clone(),
            },
        };
        // Removes the run's objects from an external server at the end, or on a panic.
        let _cleanup = external.map(|path| external::Cleanup {
            path,
            names: names.clone(),
            nodes: nodes.clone(),
        });
        let client = target.client().await;
        let t = Instant::now();
        let node_refs: Vec<&str> = nodes.iter().map(String::as_str).collect();
        cluster::populate_in(&client, target.namespaces(), &node_refs, n_svc, svc_ip).await;
        println!(
            "populated 3 Nodes and {n_svc} Services with status and EndpointSlices in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        steady_state(&target, n_svc, window).await;
        failovers(&target, n_svc, rounds).await;
    });
}
