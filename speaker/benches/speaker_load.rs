//! Whole-speaker benchmark under ARP load (root; a bench binary, not criterion: it
//! measures a running process over wall-clock windows).
//!
//! The real `ferrolb-speaker` binary runs **with its data path** in a node network
//! namespace (`ip netns exec`, as the lab and a DaemonSet pod on the host network run
//! it), against the embedded API server (ferrolb-apiserver), which this process serves on
//! the node namespace's loopback. One Node, `node-a`, Ready; N Services (default 1,000:
//! half IPv4 in 198.51.100.0/24 and 203.0.113.0/24, half IPv6 in 2001:db8:1::/64), each
//! with its IP in its status and a ready endpoint on `node-a`, so the single speaker leads
//! all of them. A client namespace is joined to the node by a veth pair (documentation
//! addresses only).
//!
//! Once every IP is announced and the takeover bursts are over, it reads the speaker's
//! CPU (utime + stime from `/proc/<pid>/stat`) and RSS:
//! 1. idle, over a window (default 10 s);
//! 2. while the client sends ARP requests for the announced IPv4 addresses at a fixed
//!    rate (default 10,000/s for 10 s), round-robin over the IPs: replies received and
//!    lost (each reply matched to its request by the IP it answers), the reply latency
//!    (kernel receive timestamp of the reply in the client minus the time just before
//!    the request was sent), and the speaker's largest RSS sampled every 250 ms.
//!
//! `cargo bench -p ferrolb-speaker --bench speaker_load`
//! (env: BENCH_SERVICES=1000, BENCH_IDLE_SECS=10, BENCH_LOAD_SECS=10, BENCH_RATE=10000).
//! Every loop is bounded in count and time.

#[path = "../tests/netns_lab/mod.rs"]
mod netns_lab;

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrolb_apiserver::{ApiServer, ApiServerOptions};
use ferrolb_core::wire::{ArpOperation, MacAddr, Packet};
use ferrolb_speaker::net::sys::{self, PacketSocket};
use netns_lab::{CLIENT_IF, CLIENT_MAC, CLIENT_V4, Lab, NODE_MAC};

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/frames.rs"]
mod frames;
#[path = "support/proc_usage.rs"]
mod proc_usage;
#[path = "support/speaker_proc.rs"]
mod speaker_proc;
use proc_usage::proc_usage;
use speaker_proc::{SpeakerProc, env_num, metric, wait_announced};

const BIN: &str = env!("CARGO_BIN_EXE_ferrolb-speaker");
const NODE: &str = "node-a";
/// ARP requests are sent for at most this many IPs (the IPv4 half of the Services).
const MAX_V4: u32 = 500;

/// The i-th Service IP: the first 500 IPv4 in 198.51.100.1-254 and 203.0.113.1-246,
/// the rest IPv6 in 2001:db8:1::/64.
fn svc_ip(i: u32) -> IpAddr {
    match i {
        0..254 => IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1 + i as u8)),
        254..MAX_V4 => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1 + (i - 254) as u8)),
        _ => IpAddr::V6(Ipv6Addr::from(
            u128::from(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0)) + u128::from(i - MAX_V4 + 1),
        )),
    }
}

fn mib(k: u64) -> f64 {
    k as f64 / 1024.0
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

/// One broadcast ARP request from the client for `target`.
fn request(target: Ipv4Addr) -> Vec<u8> {
    frames::arp_request(mac(CLIENT_MAC), CLIENT_V4.parse().unwrap(), target)
}

/// The index of the target a frame answers, if it is the node's ARP reply to the client.
fn answered(frame: &[u8], targets: &[Ipv4Addr]) -> Option<usize> {
    match Packet::parse(frame) {
        Ok(Packet::Arp { arp, eth })
            if arp.operation == ArpOperation::Reply
                && arp.sender_mac == mac(NODE_MAC)
                && eth.src_addr == mac(NODE_MAC)
                && arp.target_ip == CLIENT_V4.parse::<Ipv4Addr>().unwrap() =>
        {
            targets.iter().position(|t| *t == arp.sender_ip)
        }
        _ => None,
    }
}

struct LoadResult {
    sent: u64,
    /// Latency of every matched reply.
    lat: Vec<Duration>,
    elapsed: Duration,
}

/// Sends `rate` ARP requests per second for `run_for` from the client namespace (on a
/// thread that entered it), round-robin over `targets`, and collects the replies.
fn client_load(
    client_ns: File,
    ifindex: u32,
    targets: Vec<Ipv4Addr>,
    rate: u32,
    run_for: Duration,
) -> std::thread::JoinHandle<LoadResult> {
    std::thread::spawn(move || {
        sys::enter_netns(&client_ns).expect("setns client");
        let sock = PacketSocket::open(ifindex, 0x0806, None).expect("client ARP socket");
        let _ = sock.set_recv_buffer(4 << 20);
        // Reply times come from the kernel's receive timestamp, so the client may sleep
        // between sends and its own scheduling delays after the reply do not count.
        sock.enable_timestamps().expect("SO_TIMESTAMPNS");
        let frames: Vec<Vec<u8>> = targets.iter().map(|t| request(*t)).collect();
        let mut sent_at: Vec<Option<Duration>> = vec![None; targets.len()];
        let period = Duration::from_secs(1) / rate;
        let total = (f64::from(rate) * run_for.as_secs_f64()) as u64;
        let mut lat = Vec::with_capacity(total as usize + 16);
        let mut buf = [0u8; 256];
        let epoch = || SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let start = Instant::now();
        let hard_end = start + run_for + Duration::from_secs(1);
        let mut sent = 0u64;
        while Instant::now() < hard_end {
            let due = (start.elapsed().as_nanos() / period.as_nanos()) as u64 + 1;
            while sent < total.min(due) {
                let k = sent as usize % frames.len();
                sent_at[k] = Some(epoch());
                let _ = sock.send(&frames[k]);
                sent += 1;
            }
            while let Ok((n, ts)) = sock.recv_timestamped(&mut buf) {
                if let (Some(k), Some(ts)) = (answered(&buf[..n], &targets), ts)
                    && let Some(at) = sent_at[k].take()
                {
                    lat.push(ts.saturating_sub(at));
                }
            }
            // Stop 200 ms after the last request: late replies count as lost.
            if sent >= total && start.elapsed() > run_for + Duration::from_millis(200) {
                break;
            }
            std::thread::sleep(period / 2);
        }
        LoadResult {
            sent,
            lat,
            elapsed: start.elapsed(),
        }
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Everything but the namespaces: runs on a thread (and a runtime) inside the node
/// namespace, so that the API server listens on the node's loopback.
async fn bench(lab_node: String, client_ns: File, client_ifindex: u32) {
    let n_svc = env_num("BENCH_SERVICES", 1000) as u32;
    let idle = Duration::from_secs(env_num("BENCH_IDLE_SECS", 10));
    let load = Duration::from_secs(env_num("BENCH_LOAD_SECS", 10));
    let rate = env_num("BENCH_RATE", 10_000).clamp(1, 100_000) as u32;

    let server = ApiServer::start(ApiServerOptions {
        history: 20_000,
        ..Default::default()
    })
    .await
    .expect("API server");
    let client = server.client().await.unwrap();
    let t = Instant::now();
    cluster::populate(&client, &[NODE], n_svc, svc_ip).await;
    println!(
        "populated 1 Node and {n_svc} Services with status and EndpointSlices in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let dir = std::env::temp_dir().join(format!("ferrolb-load-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    // A free port on the node's loopback (this thread is in the node namespace).
    let metrics = ferrolb_testkit::free_addr();
    // `ip netns exec` execs the speaker (the pid is the speaker's) and mounts the
    // namespace's own /sys for it, as a pod on the host network sees its node's.
    let child = Command::new("ip")
        .args(["netns", "exec", &lab_node, BIN, "--node-name", NODE])
        .args(["--log-level", "warn", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--metrics-addr")
        .arg(metrics.to_string())
        .env_remove("NODE_NAME")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn speaker");
    let speaker = [SpeakerProc {
        child: ferrolb_testkit::KillOnDrop::new(child),
        metrics,
    }];
    let pid = speaker[0].child.id();
    let took = wait_announced(&speaker, n_svc).await;
    println!(
        "converged: {n_svc} IPs announced by the speaker {:.1} s after start",
        took.as_secs_f64()
    );
    // The takeover bursts (3 packets 200 ms apart per IP) and start-up Events settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let grat = metric(metrics, "ferrolb_speaker_gratuitous_sent_total").unwrap_or(0.0);

    let u0 = proc_usage(pid);
    let la0 = load_average();
    tokio::time::sleep(idle).await;
    let u1 = proc_usage(pid);
    println!(
        "idle over {:.0} s (load average {la0}): CPU {:.2}% of a core; RSS {:.1} MiB (anonymous {:.1}, file-backed {:.1}); {} threads; {grat} gratuitous packets sent at takeover",
        idle.as_secs_f64(),
        (u1.cpu - u0.cpu) / idle.as_secs_f64() * 100.0,
        mib(u1.rss[0]),
        mib(u1.rss[1]),
        mib(u1.rss[2]),
        u1.threads,
    );

    let targets: Vec<Ipv4Addr> = (0..n_svc.min(MAX_V4))
        .filter_map(|i| match svc_ip(i) {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        })
        .collect();
    let seen0 = metric(metrics, "ferrolb_speaker_arp_requests_seen_total").unwrap_or(0.0);
    let replied0 = metric(metrics, "ferrolb_speaker_arp_replies_sent_total").unwrap_or(0.0);
    let la1 = load_average();
    let u2 = proc_usage(pid);
    let t0 = Instant::now();
    let handle = client_load(client_ns, client_ifindex, targets.clone(), rate, load);
    let mut peak = u2.rss;
    let mut samples = 0u32;
    while !handle.is_finished() && samples < 10_000 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let u = proc_usage(pid);
        if u.rss[0] > peak[0] {
            peak = u.rss;
        }
        samples += 1;
    }
    let mut r = handle.join().expect("client thread");
    let u3 = proc_usage(pid);
    let wall = t0.elapsed().as_secs_f64();
    let seen = metric(metrics, "ferrolb_speaker_arp_requests_seen_total").unwrap_or(0.0) - seen0;
    let replied =
        metric(metrics, "ferrolb_speaker_arp_replies_sent_total").unwrap_or(0.0) - replied0;
    r.lat.sort();
    let q = |p: f64| {
        r.lat
            .get(((r.lat.len() as f64 * p) as usize).min(r.lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let answered = r.lat.len() as u64;
    println!(
        "under load ({rate} ARP requests/s for {:.0} s over {} IPv4 IPs; load average {la1}): sent {}, replies received {answered}, lost {} ({:.3}%); speaker saw {seen} requests and sent {replied} replies",
        load.as_secs_f64(),
        targets.len(),
        r.sent,
        r.sent - answered,
        (r.sent - answered) as f64 / r.sent.max(1) as f64 * 100.0,
    );
    println!(
        "  reply latency p50 {:.1?} p99 {:.1?} p99.9 {:.1?} max {:.1?}",
        q(0.50),
        q(0.99),
        q(0.999),
        r.lat.last().copied().unwrap_or_default()
    );
    println!(
        "  speaker CPU {:.2}% of a core over {wall:.1} s ({:.2} µs per request); RSS at the end {:.1} MiB (anonymous {:.1}, file-backed {:.1}), largest sampled {:.1} MiB (anonymous {:.1}, file-backed {:.1}); client ran {:.1} s",
        (u3.cpu - u2.cpu) / wall * 100.0,
        (u3.cpu - u2.cpu) * 1e6 / seen.max(1.0),
        mib(u3.rss[0]),
        mib(u3.rss[1]),
        mib(u3.rss[2]),
        mib(peak[0]),
        mib(peak[1]),
        mib(peak[2]),
        r.elapsed.as_secs_f64(),
    );
    drop(speaker);
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    if uid != "0" {
        eprintln!("speaker_load needs root (network namespaces, raw sockets); skipped");
        return;
    }
    let lab = Lab::new();
    // The client kernel need not process the replies: only the raw socket reads them.
    lab.client_ip(&["link", "set", CLIENT_IF, "arp", "off"]);
    let out = lab.client_ip(&["-o", "link", "show", CLIENT_IF]);
    let ifindex: u32 = out.split(':').next().unwrap().trim().parse().unwrap();
    let node_ns = File::open(format!("/var/run/netns/{}", lab.node)).unwrap();
    let client_ns = File::open(format!("/var/run/netns/{}", lab.client)).unwrap();
    let node = lab.node.clone();
    std::thread::spawn(move || {
        // Runtime threads inherit the namespace of the thread that creates them.
        sys::enter_netns(&node_ns).expect("setns node");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(bench(node, client_ns, ifindex));
    })
    .join()
    .expect("benchmark thread");
    drop(lab);
}
