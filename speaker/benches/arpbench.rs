//! ARP data-path benchmark against the real kernel (root): builds its own namespaces
//! and veth pair (documentation addresses), runs one [`Announcer`] on one thread in the
//! node namespace, and drives it from a raw socket in the client namespace.
//!
//! 1. Throughput: ARP requests as fast as the client can send for a few seconds;
//!    replies per second, and replies per CPU-second of the announcer's thread.
//! 2. Latency: 10,000 requests/s, paced, each reply matched to its request; p50/p99/max.
//! 3. Kernel filter: a flood of IPv6 UDP frames (no Neighbor Solicitation among them)
//!    at the node, with and without the BPF filters: the announcer thread's CPU time and
//!    wake-ups.
//! 4. Idle: CPU of the announcer with 1,000 announced IPs and no traffic.
//!
//! `cargo bench -p ferrolb-speaker --bench arpbench` (add `-- --quick` for short runs,
//! `-- --rt-announcer` to run the announcer thread alone at real-time priority, which
//! takes other processes' load out of its figures).
//! Every loop is bounded in count and time.

#[path = "support/frames.rs"]
mod frames;
#[path = "../tests/netns_lab/mod.rs"]
mod netns_lab;

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ferrolb_core::wire::{ArpOperation, MacAddr, Packet};
use ferrolb_speaker::net::sys::{self, PacketSocket};
use ferrolb_speaker::net::{AnnouncerConfig, PacketCountersSnapshot};
use netns_lab::{CLIENT_MAC, Lab, NODE_MAC, NodeAnnouncer, lab_config};

const TARGET: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// Sender addresses that tag requests so that replies can be matched (reply target
/// IP = request sender IP): two documentation /24s.
const SLOTS: usize = 508;

fn slot_ip(k: usize) -> Ipv4Addr {
    let i = k % SLOTS;
    if i < 254 {
        Ipv4Addr::new(198, 51, 100, 1 + i as u8)
    } else {
        Ipv4Addr::new(203, 0, 113, 1 + (i - 254) as u8)
    }
}

fn ip_slot(ip: Ipv4Addr) -> Option<usize> {
    let o = ip.octets();
    match (o[0], o[1], o[2], o[3]) {
        (198, 51, 100, x @ 1..=254) => Some(usize::from(x) - 1),
        (203, 0, 113, x @ 1..=254) => Some(254 + usize::from(x) - 1),
        _ => None,
    }
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn requests() -> Vec<Vec<u8>> {
    (0..SLOTS)
        .map(|k| frames::arp_request(mac(CLIENT_MAC), slot_ip(k), TARGET))
        .collect()
}

/// The slot a frame answers, if it is the node's reply for TARGET.
fn reply_slot(frame: &[u8]) -> Option<usize> {
    match Packet::parse(frame) {
        Ok(Packet::Arp { arp, .. })
            if arp.operation == ArpOperation::Reply
                && arp.sender_ip == TARGET
                && arp.sender_mac == mac(NODE_MAC) =>
        {
            ip_slot(arp.target_ip)
        }
        _ => None,
    }
}

/// Nanoseconds thread `tid` of this process has run.
fn thread_cpu(tid: u32) -> Duration {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).unwrap_or_default();
    Duration::from_nanos(
        s.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}

/// Runs `f` on a thread inside the client namespace.
fn in_client<T: Send + 'static>(lab: &Lab, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = File::open(format!("/var/run/netns/{}", lab.client)).unwrap();
    std::thread::spawn(move || {
        sys::enter_netns(&ns).expect("setns client");
        f()
    })
    .join()
    .expect("client thread")
}

fn client_ifindex(lab: &Lab) -> u32 {
    let out = lab.client_ip(&["-o", "link", "show", "eth0"]);
    out.split(':').next().unwrap().trim().parse().unwrap()
}

struct Setup {
    lab: Lab,
    node: NodeAnnouncer,
    ifindex: u32,
}

fn setup(cfg: AnnouncerConfig) -> Setup {
    let lab = Lab::new();
    // The client kernel need not process the replies: only the raw socket reads them.
    lab.client_ip(&["link", "set", "eth0", "arp", "off"]);
    let node = lab.announcer(cfg);
    if std::env::args().any(|a| a == "--rt-announcer") {
        // Give the announcer thread (only) a real-time priority: what a speaker with a
        // reserved CPU would get on a node whose other work saturates every core.
        netns_lab::must(&["chrt", "-f", "-p", "10", &node.tid.to_string()]);
    }
    node.announce(&["192.0.2.10"]);
    let ifindex = client_ifindex(&lab);
    // Let the interface task start.
    std::thread::sleep(Duration::from_millis(300));
    Setup { lab, node, ifindex }
}

struct Throughput {
    sent: u64,
    replies: u64,
    seen: u64,
    elapsed: Duration,
    cpu: Duration,
}

fn throughput(run_for: Duration) -> Throughput {
    let s = setup(lab_config());
    let m0 = s.node.announcer.packet_counters().snapshot();
    let c0 = thread_cpu(s.node.tid);
    let ifindex = s.ifindex;
    let t0 = Instant::now();
    let sent = in_client(&s.lab, move || {
        // Protocol 0: this socket only sends, so replies cost the client nothing (the
        // latency run below checks that every reply does arrive).
        let sock = PacketSocket::open(ifindex, 0, None).unwrap();
        let reqs = requests();
        let batch: Vec<&[u8]> = reqs.iter().take(64).map(|r| &r[..]).collect();
        let mut sent = 0u64;
        let end = Instant::now() + run_for;
        while Instant::now() < end && sent < 50_000_000 {
            sent += sock.send_batch(&batch).unwrap_or(0) as u64;
        }
        sent
    });
    // Let the announcer empty its queue.
    std::thread::sleep(Duration::from_millis(200));
    let elapsed = t0.elapsed().saturating_sub(Duration::from_millis(200));
    let cpu = thread_cpu(s.node.tid) - c0;
    let m1 = s.node.announcer.packet_counters().snapshot();
    Throughput {
        sent,
        replies: m1.arp_replies_sent - m0.arp_replies_sent,
        seen: m1.arp_requests_seen - m0.arp_requests_seen,
        elapsed,
        cpu,
    }
}

struct Latency {
    sent: u64,
    lat: Vec<Duration>,
    cpu: Duration,
    elapsed: Duration,
}

fn latency(rate: u32, run_for: Duration) -> Latency {
    let s = setup(lab_config());
    let ifindex = s.ifindex;
    let c0 = thread_cpu(s.node.tid);
    let t0 = Instant::now();
    let (sent, lat) = in_client(&s.lab, move || {
        let sock = PacketSocket::open(ifindex, 0x0806, None).unwrap();
        // Reply times come from the kernel's receive timestamp, so the client may sleep
        // between sends and its own scheduling delays do not count.
        sock.enable_timestamps().unwrap();
        let reqs = requests();
        let mut sent_at: Vec<Option<Duration>> = vec![None; SLOTS];
        let mut lat = Vec::with_capacity((rate as usize) * run_for.as_secs() as usize + 16);
        let mut buf = [0u8; 256];
        let period = Duration::from_secs(1) / rate;
        let total = u64::from(rate) * run_for.as_secs();
        let start = Instant::now();
        let mut sent = 0u64;
        let hard_end = start + run_for + Duration::from_secs(1);
        let epoch = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
        };
        while Instant::now() < hard_end {
            // Send every request that is due (pacing at `rate` on average).
            let due = (start.elapsed().as_nanos() / period.as_nanos()) as u64 + 1;
            while sent < total.min(due) {
                let k = sent as usize % SLOTS;
                sent_at[k] = Some(epoch());
                let _ = sock.send(&reqs[k]);
                sent += 1;
            }
            while let Ok((n, ts)) = sock.recv_timestamped(&mut buf) {
                if let (Some(k), Some(ts)) = (reply_slot(&buf[..n]), ts)
                    && let Some(at) = sent_at[k].take()
                {
                    lat.push(ts.saturating_sub(at));
                }
            }
            if sent >= total && start.elapsed() > run_for + Duration::from_millis(100) {
                break;
            }
            std::thread::sleep(period / 2);
        }
        (sent, lat)
    });
    Latency {
        sent,
        lat,
        cpu: thread_cpu(s.node.tid) - c0,
        elapsed: t0.elapsed(),
    }
}

fn v6_udp_frame() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&mac(NODE_MAC).0);
    f.extend_from_slice(&mac(CLIENT_MAC).0);
    f.extend_from_slice(&[0x86, 0xdd]);
    let payload = 8 + 64u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&payload.to_be_bytes());
    f.extend_from_slice(&[17, 64]);
    f.extend_from_slice(&"2001:db8::100".parse::<Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(&"2001:db8::10".parse::<Ipv6Addr>().unwrap().octets());
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&9u16.to_be_bytes());
    f.extend_from_slice(&payload.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&[0xab; 64]);
    f
}

struct Flood {
    frames: u64,
    elapsed: Duration,
    cpu: Duration,
    counters: PacketCountersSnapshot,
}

fn flood(kernel_filter: bool, run_for: Duration) -> Flood {
    let s = setup(AnnouncerConfig {
        kernel_filter,
        ..lab_config()
    });
    let ifindex = s.ifindex;
    let m0 = s.node.announcer.packet_counters().snapshot();
    let c0 = thread_cpu(s.node.tid);
    let t0 = Instant::now();
    let frames = in_client(&s.lab, move || {
        let sock = PacketSocket::open(ifindex, 0x86dd, None).unwrap();
        let f = v6_udp_frame();
        let end = Instant::now() + run_for;
        let mut n = 0u64;
        while Instant::now() < end && n < 50_000_000 {
            for _ in 0..64 {
                n += u64::from(sock.send(&f).is_ok());
            }
        }
        n
    });
    let elapsed = t0.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let m1 = s.node.announcer.packet_counters().snapshot();
    Flood {
        frames,
        elapsed,
        cpu: thread_cpu(s.node.tid) - c0,
        counters: PacketCountersSnapshot {
            frames_dropped: m1.frames_dropped - m0.frames_dropped,
            ndp_solicitations_seen: m1.ndp_solicitations_seen - m0.ndp_solicitations_seen,
            ..PacketCountersSnapshot::default()
        },
    }
}

fn idle(n: usize, run_for: Duration) -> (Duration, Duration, u64) {
    let s = setup(lab_config());
    let mut set: BTreeSet<IpAddr> = BTreeSet::new();
    for i in 0..n / 2 {
        set.insert(IpAddr::V4(
            Ipv4Addr::new(198, 51, 100, 0)
                .to_bits()
                .wrapping_add(i as u32)
                .into(),
        ));
        let mut o = "2001:db8::1:0".parse::<Ipv6Addr>().unwrap().octets();
        o[14] = (i >> 8) as u8;
        o[15] = i as u8;
        set.insert(IpAddr::V6(o.into()));
    }
    s.node.announcer.set_announced(set);
    // Let the takeover bursts finish, then measure quiet time.
    std::thread::sleep(Duration::from_secs(1));
    let g = s
        .node
        .announcer
        .packet_counters()
        .snapshot()
        .gratuitous_sent;
    let c0 = thread_cpu(s.node.tid);
    let t0 = Instant::now();
    std::thread::sleep(run_for);
    (thread_cpu(s.node.tid) - c0, t0.elapsed(), g)
}

fn pct(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb / 1024 / 1024)
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{} cores ({cpu}), {mem} GiB, Linux {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        kernel.trim()
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `cargo bench` passes --bench; ignore everything else.
    let secs = if quick { 1 } else { 3 };
    let d = Duration::from_secs(secs);
    println!("machine: {}", machine());

    let t = throughput(d);
    println!(
        "throughput: client offered {} requests ({:.0}/s) in {:.2?}; announcer saw {}, sent {} replies ({:.0}/s); announcer thread CPU {:.2?} ({:.0}% of one core) => {:.0} replies per CPU-second",
        t.sent,
        t.sent as f64 / t.elapsed.as_secs_f64(),
        t.elapsed,
        t.seen,
        t.replies,
        t.replies as f64 / t.elapsed.as_secs_f64(),
        t.cpu,
        pct(t.cpu, t.elapsed),
        t.replies as f64 / t.cpu.as_secs_f64().max(1e-9),
    );

    let mut l = latency(10_000, d);
    l.lat.sort();
    let q = |p: f64| {
        l.lat
            .get(((l.lat.len() as f64 * p) as usize).min(l.lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "latency @10000/s: sent {}, answered {} ({} lost); p50 {:.1?} p99 {:.1?} p99.9 {:.1?} max {:.1?}; announcer CPU {:.1}% of one core",
        l.sent,
        l.lat.len(),
        l.sent - l.lat.len() as u64,
        q(0.50),
        q(0.99),
        q(0.999),
        l.lat.last().copied().unwrap_or_default(),
        pct(l.cpu, l.elapsed),
    );

    for filter in [true, false] {
        let f = flood(filter, d);
        println!(
            "IPv6 UDP flood, kernel filter {}: {} frames at {:.0}/s; announcer thread CPU {:.2?} ({:.1}% of one core), frames that reached it: {} (dropped by the parser) + {} NS",
            if filter { "ON " } else { "OFF" },
            f.frames,
            f.frames as f64 / f.elapsed.as_secs_f64(),
            f.cpu,
            pct(f.cpu, f.elapsed),
            f.counters.frames_dropped,
            f.counters.ndp_solicitations_seen,
        );
    }

    let (cpu, wall, g) = idle(1000, Duration::from_secs(if quick { 2 } else { 5 }));
    println!(
        "idle with 1000 announced IPs (500 IPv4, 500 IPv6 => 500 solicited-node groups; takeover sent {g} gratuitous packets): announcer thread CPU {:.2?} over {:.2?} ({:.3}% of one core)",
        cpu,
        wall,
        pct(cpu, wall)
    );
}
