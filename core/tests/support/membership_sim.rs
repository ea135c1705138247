//! An in-process network of `Membership` instances on a simulated clock: datagrams are
//! delivered after a fixed delay, lost at random (deterministic PRNG) or on cut links,
//! and nodes are polled exactly when they ask to be. Shared by the membership tests
//! and the membership bench.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_core::membership::{
    DropReason, Keyring, LocalState, Membership, MembershipConfig, Outgoing,
};

/// Deterministic PRNG (SplitMix64): the same seed gives the same losses.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub const KEY: &[u8] = b"membership-test-key-0001";
pub const KEY2: &[u8] = b"membership-test-key-0002";

pub fn name(i: usize) -> String {
    format!("node-{i}")
}

/// Node i's address: a documentation address, one port per node.
pub fn addr(i: usize) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 10_000 + i as u16))
}

pub struct Node {
    pub m: Membership,
    pub keys: Keyring,
    pub crashed: bool,
    pub wake: Instant,
}

struct InFlight {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    to: usize,
    datagram: Vec<u8>,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

pub struct Sim {
    pub start: Instant,
    pub now: Instant,
    pub nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    pub rng: SplitMix64,
    /// Probability that any datagram is lost.
    pub loss: f64,
    /// Directed links (from, to) that lose everything.
    pub cut: HashSet<(usize, usize)>,
    pub delay: Duration,
    by_addr: HashMap<SocketAddr, usize>,
    /// Drops by receiving node and reason.
    pub drops: HashMap<DropReason, u64>,
    pub sent: u64,
    pub received: u64,
    pub bytes_sent: u64,
    /// Datagrams sent by this node are recorded (to replay them later).
    pub capture_from: Option<usize>,
    pub captured: Vec<(usize, Vec<u8>)>,
    /// When set, every poll checks that no node judges a live, non-leaving peer dead.
    pub check_false_deaths: bool,
    pub false_deaths: u64,
    /// Victim and crash time: first instant each observer judged it dead.
    pub watch: Option<(usize, Instant)>,
    pub detected: HashMap<usize, Instant>,
    /// Time spent inside poll and receive (wall clock of the simulating thread).
    pub busy: Duration,
    outbox: Vec<Outgoing>,
}

impl Sim {
    pub fn new(n: usize, config: MembershipConfig, seed: u64) -> Sim {
        let start = Instant::now();
        let nodes = (0..n)
            .map(|i| {
                let mut m = Membership::new(&name(i), 1_700_000_000_000 + i as u64, config.clone());
                m.set_peers((0..n).filter(|&j| j != i).map(|j| (name(j), addr(j))));
                m.set_local(
                    LocalState {
                        has_view: true,
                        api_age: Some(Duration::ZERO),
                        link_ok: true,
                        leaving: false,
                    },
                    start,
                );
                Node {
                    m,
                    keys: Keyring::new(KEY, None).expect("test key"),
                    crashed: false,
                    wake: start,
                }
            })
            .collect();
        Sim {
            start,
            now: start,
            nodes,
            queue: BinaryHeap::new(),
            seq: 0,
            rng: SplitMix64(seed),
            loss: 0.0,
            cut: HashSet::new(),
            delay: Duration::from_millis(1),
            by_addr: (0..n).map(|i| (addr(i), i)).collect(),
            drops: HashMap::new(),
            sent: 0,
            received: 0,
            bytes_sent: 0,
            capture_from: None,
            captured: Vec::new(),
            check_false_deaths: false,
            false_deaths: 0,
            watch: None,
            detected: HashMap::new(),
            busy: Duration::ZERO,
            outbox: Vec::new(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Cuts both directions between a and b.
    pub fn cut_between(&mut self, a: usize, b: usize) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    /// Isolates node a from every other node.
    pub fn isolate(&mut self, a: usize) {
        for b in 0..self.nodes.len() {
            if b != a {
                self.cut_between(a, b);
            }
        }
    }

    pub fn crash(&mut self, i: usize) {
        self.nodes[i].crashed = true;
        self.watch = Some((i, self.now));
        self.detected.clear();
    }

    /// Wakes node i at once (after a call that wants an immediate send).
    pub fn wake_now(&mut self, i: usize) {
        self.nodes[i].wake = self.now;
    }

    /// Delivers `datagram` to node `to` as if from `from`, after the link delay.
    pub fn inject(&mut self, from: SocketAddr, to: usize, datagram: Vec<u8>) {
        self.seq += 1;
        self.queue.push(Reverse(InFlight {
            at: self.now + self.delay,
            seq: self.seq,
            from,
            to,
            datagram,
        }));
    }

    /// Whether `observer` judges `target` alive now.
    pub fn sees_alive(&self, observer: usize, target: usize) -> bool {
        let t = name(target);
        self.nodes[observer]
            .m
            .peers(self.now)
            .find(|p| p.name == t)
            .is_some_and(|p| p.alive)
    }

    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            let next_wake = self
                .nodes
                .iter()
                .filter(|n| !n.crashed)
                .map(|n| n.wake)
                .min();
            let next_msg = self.queue.peek().map(|Reverse(m)| m.at);
            let next = match (next_wake, next_msg) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > end {
                break;
            }
            self.now = next;
            while self.queue.peek().is_some_and(|Reverse(m)| m.at <= self.now) {
                let Reverse(m) = self.queue.pop().expect("peeked");
                self.deliver(m);
            }
            for i in 0..self.nodes.len() {
                if !self.nodes[i].crashed && self.nodes[i].wake <= self.now {
                    self.poll(i);
                }
            }
        }
        self.now = end;
    }

    fn deliver(&mut self, m: InFlight) {
        let node = &mut self.nodes[m.to];
        if node.crashed {
            return;
        }
        self.received += 1;
        let t0 = Instant::now();
        let r = node.m.receive(m.from, &m.datagram, &node.keys, self.now);
        self.busy += t0.elapsed();
        if let Err(reason) = r {
            *self.drops.entry(reason).or_default() += 1;
        }
    }

    fn poll(&mut self, i: usize) {
        let now = self.now;
        let mut out = std::mem::take(&mut self.outbox);
        out.clear();
        let node = &mut self.nodes[i];
        let t0 = Instant::now();
        node.wake = node.m.poll(&node.keys, now, &mut out);
        self.busy += t0.elapsed();
        assert!(node.wake > now, "poll must ask to be called again later");
        if let Some((victim, _)) = self.watch
            && i != victim
            && !self.detected.contains_key(&i)
            && !self.sees_alive(i, victim)
        {
            self.detected.insert(i, now);
        }
        if self.check_false_deaths {
            let me = &self.nodes[i];
            for p in me.m.peers(now) {
                if !p.alive && !p.leaving {
                    self.false_deaths += 1;
                }
            }
        }
        for o in out.drain(..) {
            self.sent += 1;
            self.bytes_sent += o.datagram.len() as u64;
            let Some(&to) = self.by_addr.get(&o.to) else {
                continue;
            };
            if self.capture_from == Some(i) {
                self.captured.push((to, o.datagram.clone()));
            }
            if self.cut.contains(&(i, to)) || (self.loss > 0.0 && self.rng.next_f64() < self.loss) {
                continue;
            }
            self.inject(addr(i), to, o.datagram);
        }
        self.outbox = out;
    }

    /// Detection delays (from the crash) of every observer that detected the victim.
    pub fn detection_delays(&self) -> Vec<Duration> {
        let Some((_, crashed_at)) = self.watch else {
            return Vec::new();
        };
        let mut v: Vec<Duration> = self.detected.values().map(|&t| t - crashed_at).collect();
        v.sort();
        v
    }
}
