//! The data path the election drives: answers ARP/NDP on every selected interface for
//! the IPs this node announces, and announces newly gained IPs with a short burst of
//! gratuitous ARP / unsolicited NA.
//!
//! Structure: one *supervisor* task (module `supervise`) follows the links (netlink
//! events plus a periodic re-scan) and keeps one *interface task* per selected interface:
//! the default choice, plus the interfaces that the `l2.policies` of this node's
//! addresses name ([`super::announced::Announced`] says which IP is answered where). An interface task
//! owns two raw sockets (ARP requests; Neighbor Solicitations), both filtered in the
//! kernel, reads frames as they come (tokio `AsyncFd`), answers through the pure
//! [`ferrolb_core::wire::decide`], and sends the bursts.
//!
//! The announced set sits behind an `RwLock`: the hot path holds the read lock only
//! while it decides and sends one frame (no `.await` inside), and
//! [`Announcer::set_announced`] takes the write lock, which waits for any such frame
//! in flight. So when `set_announced` returns, no frame for a removed IP can leave any
//! more — a stronger promise than a lock-free swap would give, for the price of an
//! uncontended read lock per frame.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ferrolb_config::InterfaceRule;
use ferrolb_core::wire::GratuitousForm;
use tokio::sync::{Notify, watch};
use tokio::task::AbortHandle;

use super::NetError;
use super::announced::Announced;
use super::iface::{LinkStatus, Selection};
use super::scan::dump_links;
use super::strictarp::{self, StrictArpProblem};
use super::supervise::Supervisor;
use crate::dataplane::{Dataplane, DataplaneCounters};

pub(super) const ETH_P_ARP: u16 = 0x0806;
pub(super) const ETH_P_IPV6: u16 = 0x86dd;
/// Receive buffer: bigger than the snap lengths of the filters.
pub(super) const FRAME_BUF: usize = 512;
/// Frames handled per wake-up before yielding to the other branches (bursts, set
/// changes), so that a flood cannot starve them.
pub(super) const BATCH: usize = 256;

/// Tunables of the data path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncerConfig {
    /// `l2.interfaces`; empty = the documented automatic choice
    /// ([`super::iface`]).
    pub interfaces: Vec<String>,
    /// Gratuitous packets per newly gained IP and interface (0: none).
    pub burst_count: u32,
    /// Spacing of the burst.
    pub burst_interval: Duration,
    /// Request or reply form of gratuitous ARP.
    pub garp_form: GratuitousForm,
    /// Re-announce every announced IP this often (one packet each), for switches whose
    /// MAC tables age out before any traffic refreshes them. `None` (default): off.
    pub reannounce_every: Option<Duration>,
    /// Full re-scan of the links even without netlink events (a safety net for a
    /// missed or overflowed notification).
    pub rescan_every: Duration,
    /// Root of the ARP sysctls for the strictARP check.
    pub sysctl_root: std::path::PathBuf,
    /// Attach the kernel BPF filters (default). `false` exists only so that the
    /// benchmark can show what the filters save: every IPv6 frame then wakes the
    /// announcer.
    pub kernel_filter: bool,
}

impl Default for AnnouncerConfig {
    /// 3 gratuitous packets 200 ms apart: the first leaves at once, so neighbours and
    /// switches move as soon as the election decides; 200 ms is longer than the 100 ms
    /// overlap the election allows, so if the previous holder still answered a request
    /// in that window, a later packet of the burst corrects the cache it touched; three
    /// packets survive the loss of any one or two, and the burst ends after 400 ms, well
    /// within the 2 s failover budget. Cost: 3 frames of 42 or 86 bytes per IP.
    fn default() -> Self {
        AnnouncerConfig {
            interfaces: Vec::new(),
            burst_count: 3,
            burst_interval: Duration::from_millis(200),
            garp_form: GratuitousForm::Request,
            reannounce_every: None,
            rescan_every: Duration::from_secs(10),
            sysctl_root: strictarp::PROC_CONF.into(),
            kernel_filter: true,
        }
    }
}

/// Monotonic packet counters (map them to Prometheus counters).
#[derive(Debug, Default)]
pub struct PacketCounters {
    /// ARP requests received (answered or not).
    pub arp_requests_seen: AtomicU64,
    /// ARP replies sent.
    pub arp_replies_sent: AtomicU64,
    /// Neighbor Solicitations received.
    pub ndp_solicitations_seen: AtomicU64,
    /// Solicited Neighbor Advertisements sent.
    pub ndp_advertisements_sent: AtomicU64,
    /// Gratuitous ARPs and unsolicited NAs sent.
    pub gratuitous_sent: AtomicU64,
    /// Frames that passed the kernel filter but were not a valid question (malformed,
    /// gratuitous ARP from another host...).
    pub frames_dropped: AtomicU64,
    /// Sends that failed.
    pub send_errors: AtomicU64,
    /// Receives that failed.
    pub receive_errors: AtomicU64,
}

/// A copy of [`PacketCounters`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketCountersSnapshot {
    /// See [`PacketCounters::arp_requests_seen`].
    pub arp_requests_seen: u64,
    /// See [`PacketCounters::arp_replies_sent`].
    pub arp_replies_sent: u64,
    /// See [`PacketCounters::ndp_solicitations_seen`].
    pub ndp_solicitations_seen: u64,
    /// See [`PacketCounters::ndp_advertisements_sent`].
    pub ndp_advertisements_sent: u64,
    /// See [`PacketCounters::gratuitous_sent`].
    pub gratuitous_sent: u64,
    /// See [`PacketCounters::frames_dropped`].
    pub frames_dropped: u64,
    /// See [`PacketCounters::send_errors`].
    pub send_errors: u64,
    /// See [`PacketCounters::receive_errors`].
    pub receive_errors: u64,
}

impl PacketCounters {
    /// Reads every counter.
    pub fn snapshot(&self) -> PacketCountersSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PacketCountersSnapshot {
            arp_requests_seen: r(&self.arp_requests_seen),
            arp_replies_sent: r(&self.arp_replies_sent),
            ndp_solicitations_seen: r(&self.ndp_solicitations_seen),
            ndp_advertisements_sent: r(&self.ndp_advertisements_sent),
            gratuitous_sent: r(&self.gratuitous_sent),
            frames_dropped: r(&self.frames_dropped),
            send_errors: r(&self.send_errors),
            receive_errors: r(&self.receive_errors),
        }
    }
}

pub(super) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(super) struct Inner {
    pub(super) cfg: AnnouncerConfig,
    pub(super) announced: RwLock<Announced>,
    /// Bumped on every change of `announced`; interface tasks diff against their copy.
    pub(super) generation: watch::Sender<u64>,
    pub(super) selection: Mutex<Selection>,
    pub(super) rescan: Notify,
    pub(super) links: watch::Sender<Vec<LinkStatus>>,
    pub(super) link_ok: AtomicBool,
    pub(super) strict_arp: Mutex<Vec<StrictArpProblem>>,
    pub(super) counters: PacketCounters,
}

impl Inner {
    pub(super) fn read_set(&self) -> std::sync::RwLockReadGuard<'_, Announced> {
        // A panic while holding the lock cannot leave the set half-written (writes are
        // a single assignment), so a poisoned lock is still consistent.
        self.announced.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// The ARP/NDP data path of one speaker. Create it inside a tokio runtime; dropping it
/// stops every task and closes every socket.
pub struct Announcer {
    inner: Arc<Inner>,
    supervisor: AbortHandle,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("announced", &self.inner.read_set().ips)
            .field("links", &*self.inner.links.borrow())
            .finish()
    }
}

impl Announcer {
    /// Starts the data path: discovers the interfaces (an error if the first netlink
    /// dump fails), then keeps following them in background tasks on the current tokio
    /// runtime (it does not block beyond one netlink dump); its sockets are opened in the
    /// network namespace of that runtime's threads.
    /// Raw-socket errors (missing `CAP_NET_RAW`) surface per interface in the log and as
    /// link-down, and are retried every second.
    pub async fn start(cfg: AnnouncerConfig) -> Result<Announcer, NetError> {
        let initial = dump_links().map_err(NetError::Netlink)?;
        let inner = Arc::new(Inner {
            selection: Mutex::new(Selection::from_list(&cfg.interfaces)),
            cfg,
            announced: RwLock::new(Announced::default()),
            generation: watch::Sender::new(0),
            rescan: Notify::new(),
            links: watch::Sender::new(Vec::new()),
            link_ok: AtomicBool::new(false),
            strict_arp: Mutex::new(Vec::new()),
            counters: PacketCounters::default(),
        });
        let supervisor = Supervisor::start(inner.clone(), initial);
        Ok(Announcer { inner, supervisor })
    }

    /// Makes `ips` the exact set this node answers for. Newly gained IPs get a burst of
    /// gratuitous ARP / unsolicited NA on every selected interface (sent by the
    /// interface tasks, starting at once); IPs no longer in the set are not answered
    /// from the moment this returns. IPv6 solicited-node groups are joined/left to match.
    pub fn set_announced(&self, ips: BTreeSet<IpAddr>) {
        {
            let mut w = self
                .inner
                .announced
                .write()
                .unwrap_or_else(|e| e.into_inner());
            if w.ips == ips {
                return;
            }
            w.ips = ips;
        }
        self.inner.generation.send_modify(|g| *g += 1);
    }

    /// Sets the interface rules of IPs whose pool `l2.policies` cover (IPs without one
    /// are answered on the default choice), opens the interfaces they name and closes
    /// those no longer named. Effective for frames from the moment this returns; IPs
    /// that gain an interface get a gratuitous burst there.
    pub fn set_interface_rules(&self, rules: BTreeMap<IpAddr, InterfaceRule>) {
        {
            let mut w = self
                .inner
                .announced
                .write()
                .unwrap_or_else(|e| e.into_inner());
            if w.rules == rules {
                return;
            }
            w.rules = rules;
        }
        self.inner.generation.send_modify(|g| *g += 1);
        self.inner.rescan.notify_one();
    }

    /// The IPs currently announced.
    pub fn announced(&self) -> BTreeSet<IpAddr> {
        self.inner.read_set().ips.clone()
    }

    /// Whether at least one selected interface is up with carrier (cheap: an atomic).
    pub fn link_ok(&self) -> bool {
        self.inner.link_ok.load(Ordering::Acquire)
    }

    /// The selected interfaces and their link state; changes are published as they are
    /// seen (netlink event or re-scan).
    pub fn links(&self) -> watch::Receiver<Vec<LinkStatus>> {
        self.inner.links.subscribe()
    }

    /// Replaces `l2.interfaces` (empty: automatic) and re-scans at once.
    pub fn set_interfaces(&self, names: &[String]) {
        *self
            .inner
            .selection
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Selection::from_list(names);
        self.inner.rescan.notify_one();
    }

    /// Selected interfaces on which the kernel itself would answer ARP for Service IPs
    /// (kube-proxy IPVS without strictARP), as of the last scan.
    pub fn strict_arp_problems(&self) -> Vec<StrictArpProblem> {
        self.inner
            .strict_arp
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The packet counters.
    pub fn packet_counters(&self) -> &PacketCounters {
        &self.inner.counters
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        // Stop answering before the sockets close asynchronously.
        self.inner
            .announced
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .ips
            .clear();
        self.supervisor.abort();
    }
}

impl Dataplane for Announcer {
    fn set_announced(&self, ips: BTreeSet<IpAddr>) {
        Announcer::set_announced(self, ips)
    }

    fn link_ok(&self) -> bool {
        Announcer::link_ok(self)
    }

    fn set_interfaces(&self, interfaces: &[String]) {
        Announcer::set_interfaces(self, interfaces)
    }

    fn set_interface_rules(&self, rules: BTreeMap<IpAddr, InterfaceRule>) {
        Announcer::set_interface_rules(self, rules)
    }

    fn counters(&self) -> DataplaneCounters {
        let m = self.inner.counters.snapshot();
        DataplaneCounters {
            arp_requests_seen: m.arp_requests_seen,
            arp_replies_sent: m.arp_replies_sent,
            ndp_solicitations_seen: m.ndp_solicitations_seen,
            ndp_advertisements_sent: m.ndp_advertisements_sent,
            gratuitous_sent: m.gratuitous_sent,
        }
    }
}
