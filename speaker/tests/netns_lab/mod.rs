//! A two-namespace layer-2 lab for the data-path tests and the ARP benchmark: a *node*
//! namespace where the announcer runs, a *client* namespace that resolves addresses,
//! joined by a veth pair. Addresses are from the documentation ranges only. Everything is
//! removed on drop, including when a test fails.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeSet;
use std::fs::File;
use std::net::IpAddr;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferrolb_speaker::net::{Announcer, AnnouncerConfig, sys};

/// MAC of the node's interface.
pub const NODE_MAC: &str = "02:00:00:00:00:0b";
/// MAC of the client's interface.
pub const CLIENT_MAC: &str = "02:00:00:00:00:0a";
/// Client addresses.
pub const CLIENT_V4: &str = "192.0.2.100";
/// Client IPv6 address.
pub const CLIENT_V6: &str = "2001:db8::100";
/// The node's interface name inside its namespace.
pub const NODE_IF: &str = "eth0";
/// The client's interface name inside its namespace.
pub const CLIENT_IF: &str = "eth0";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Runs a command, panicking with its output if it cannot run.
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Runs a command that must succeed.
pub fn must(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// True when this process runs as root.
fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// True if `cmd` is on PATH.
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Fails the test with what to install when `cmd` is not on PATH.
pub fn require(cmd: &str, package: &str) {
    assert!(
        have(cmd),
        "`{cmd}` is not installed: run `apt-get install -y {package}` (README, Setup; CI's .ci/run installs it)"
    );
}

/// The two namespaces and the veth between them.
pub struct Lab {
    /// Node namespace name.
    pub node: String,
    /// Client namespace name.
    pub client: String,
}

impl Lab {
    /// Creates uniquely named namespaces `flb-<pid>-<n>-{node,client}`, a veth pair
    /// `eth0`—`eth0` with fixed MACs, the client's addresses (IPv6 without DAD), and
    /// `arp_accept=1`-free defaults (the client learns only from what it asked or already
    /// holds).
    pub fn new() -> Lab {
        assert!(
            nix_is_root(),
            "the network-namespace tests need root (CI runs them as root): run `sudo cargo test`"
        );
        require("ip", "iproute2");
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let base = format!("flb-{}-{n}", std::process::id());
        let lab = Lab {
            node: format!("{base}-node"),
            client: format!("{base}-client"),
        };
        must(&["ip", "netns", "add", &lab.node]);
        must(&["ip", "netns", "add", &lab.client]);
        must(&[
            "ip",
            "link",
            "add",
            NODE_IF,
            "netns",
            &lab.node,
            "address",
            NODE_MAC,
            "type",
            "veth",
            "peer",
            "name",
            CLIENT_IF,
            "netns",
            &lab.client,
            "address",
            CLIENT_MAC,
        ]);
        for ns in [&lab.node, &lab.client] {
            must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            must(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
        }
        lab.client_ip(&["addr", "add", &format!("{CLIENT_V4}/24"), "dev", CLIENT_IF]);
        lab.client_ip(&[
            "addr",
            "add",
            &format!("{CLIENT_V6}/64"),
            "dev",
            CLIENT_IF,
            "nodad",
        ]);
        lab
    }

    /// `ip -n <node> ...`.
    pub fn node_ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", &self.node];
        v.extend_from_slice(args);
        must(&v)
    }

    /// `ip -n <client> ...`.
    pub fn client_ip(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "-n", &self.client];
        v.extend_from_slice(args);
        must(&v)
    }

    /// Runs `args` inside the client namespace (status not checked).
    pub fn in_client(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", &self.client];
        v.extend_from_slice(args);
        run(&v)
    }

    /// Runs `args` inside the node namespace, which must succeed.
    pub fn in_node(&self, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", &self.node];
        v.extend_from_slice(args);
        must(&v)
    }

    /// The client's neighbour entry for `ip`: `(lladdr, state)`; lladdr empty when
    /// unresolved, `None` when there is no entry.
    pub fn client_neigh(&self, ip: &str) -> Option<(String, String)> {
        let out = self.client_ip(&["neigh", "show", ip, "dev", CLIENT_IF]);
        let line = out.lines().next()?.to_string();
        let words: Vec<&str> = line.split_whitespace().collect();
        let mac = words
            .iter()
            .position(|w| *w == "lladdr")
            .and_then(|i| words.get(i + 1))
            .map(|s| s.to_string())
            .unwrap_or_default();
        let state = words.last().map(|s| s.to_string()).unwrap_or_default();
        Some((mac, state))
    }

    /// Makes the client kernel resolve `ip` (IPv4 or IPv6) by pinging it once; the echo
    /// itself goes unanswered (the node does not hold the IP), only ARP/NDP matters.
    pub fn client_resolve(&self, ip: &str) {
        let fam = if ip.contains(':') { "-6" } else { "-4" };
        let _ = self.in_client(&["ping", fam, "-c1", "-W1", "-n", ip]);
    }

    /// Node multicast link-layer groups on its interface (`ip maddr`).
    pub fn node_maddrs(&self) -> String {
        self.node_ip(&["maddr", "show", "dev", NODE_IF])
    }

    /// Starts an announcer inside the node namespace (see [`NodeAnnouncer`]).
    pub fn announcer(&self, cfg: AnnouncerConfig) -> NodeAnnouncer {
        NodeAnnouncer::start(&self.node, cfg)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end, and with it the peer.
        let _ = run(&["ip", "netns", "del", &self.node]);
        let _ = run(&["ip", "netns", "del", &self.client]);
    }
}

/// An [`Announcer`] running on a dedicated thread that entered a network namespace, on
/// its own single-threaded tokio runtime (so every socket it opens is in that namespace).
/// The announcer itself is shared: the test calls it directly.
pub struct NodeAnnouncer {
    /// The announcer.
    pub announcer: Arc<Announcer>,
    /// Kernel thread id of the thread that runs it (for CPU accounting).
    pub tid: u32,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NodeAnnouncer {
    fn start(ns: &str, cfg: AnnouncerConfig) -> NodeAnnouncer {
        let ns_file = File::open(format!("/var/run/netns/{ns}")).expect("netns file");
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            sys::enter_netns(&ns_file).expect("setns");
            // "/proc/thread-self" links to "<pid>/task/<tid>".
            let tid: u32 = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name()?.to_str()?.parse().ok())
                .unwrap_or(0);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let a = Arc::new(Announcer::start(cfg).await.expect("announcer starts"));
                tx.send((a.clone(), tid)).expect("test alive");
                let _ = stop_rx.await;
                drop(a);
            });
        });
        let (announcer, tid) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("announcer started in time");
        NodeAnnouncer {
            announcer,
            tid,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `set_announced` with addresses given as strings.
    pub fn announce(&self, ips: &[&str]) {
        let set: BTreeSet<IpAddr> = ips.iter().map(|s| s.parse().unwrap()).collect();
        self.announcer.set_announced(set);
    }
}

impl Drop for NodeAnnouncer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An announcer configuration for the lab: the node's `eth0`, defaults otherwise.
pub fn lab_config() -> AnnouncerConfig {
    AnnouncerConfig {
        interfaces: vec![NODE_IF.to_string()],
        ..AnnouncerConfig::default()
    }
}
