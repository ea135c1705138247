//! The supervisor of the data path: follows the links (netlink events plus a periodic
//! re-scan), keeps one interface task ([`super::serve`]) per selected interface,
//! restarts failed ones after a back-off, and publishes the link state the election
//! reads and the strictARP check.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ferrolb_core::wire::MacAddr;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::announcer::Inner;
use super::iface::{LinkAttrs, LinkStatus, eligible_for, select_with};
use super::scan::{LinkEvents, dump_links};
use super::serve::serve;
use super::strictarp::{self, StrictArpProblem};

/// Minimum delay before re-opening sockets on an interface whose task failed.
const RESPAWN_BACKOFF: Duration = Duration::from_secs(1);

struct Task {
    name: String,
    mac: MacAddr,
    in_default: bool,
    link_ok: bool,
    abort: AbortHandle,
    burst_all: mpsc::UnboundedSender<()>,
}

pub(super) struct Supervisor {
    inner: Arc<Inner>,
    tasks: HashMap<u32, Task>,
    set: JoinSet<(u32, io::Result<()>)>,
    /// Interfaces whose task failed, and when: not re-opened before the back-off.
    failed: HashMap<u32, Instant>,
}

impl Supervisor {
    /// Applies the first link dump, then follows the links in a background task.
    pub(super) fn start(inner: Arc<Inner>, initial: Vec<LinkAttrs>) -> AbortHandle {
        let mut sup = Supervisor {
            inner,
            tasks: HashMap::new(),
            set: JoinSet::new(),
            failed: HashMap::new(),
        };
        sup.apply(initial);
        tokio::spawn(sup.run()).abort_handle()
    }

    async fn run(mut self) {
        let mut events = match LinkEvents::open() {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!(error = %e, "no netlink link events; relying on periodic re-scan");
                None
            }
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.inner.cfg.rescan_every) => {}
                _ = self.inner.rescan.notified() => {}
                r = async { events.as_mut().expect("guarded").changed().await }, if events.is_some() => {
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "netlink link events failed; relying on periodic re-scan");
                        events = None;
                    }
                }
                Some(done) = self.set.join_next() => {
                    if let Ok((ifindex, result)) = done {
                        let name = self.tasks.remove(&ifindex).map(|t| t.name).unwrap_or_default();
                        if let Err(e) = result {
                            tracing::warn!(interface = %name, ifindex, error = %e, "interface data path failed; retrying");
                        }
                        self.failed.insert(ifindex, Instant::now());
                        let inner = self.inner.clone();
                        // Wake a re-scan once the back-off has passed.
                        tokio::spawn(async move {
                            tokio::time::sleep(RESPAWN_BACKOFF).await;
                            inner.rescan.notify_one();
                        });
                    }
                    continue;
                }
            }
            match dump_links() {
                Ok(links) => self.apply(links),
                Err(e) => tracing::warn!(error = %e, "netlink link dump failed"),
            }
        }
    }

    /// Reconciles the interface tasks with the links just read.
    fn apply(&mut self, links: Vec<LinkAttrs>) {
        let sel = self
            .inner
            .selection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let extra = self.inner.read_set().matchers();
        let (chosen, missing) = select_with(&links, &sel, &extra);
        if !missing.is_empty() {
            tracing::debug!(?missing, "listed interfaces not present");
        }
        // Stop tasks of interfaces gone, deselected, whose MAC changed or that joined or
        // left the default choice (the task reads that once).
        self.tasks.retain(|ifindex, t| {
            let keep = chosen
                .iter()
                .any(|c| c.ifindex == *ifindex && c.mac == t.mac && c.in_default == t.in_default);
            if !keep {
                tracing::info!(interface = %t.name, "stop answering on interface");
                t.abort.abort();
            }
            keep
        });
        let now = Instant::now();
        self.failed
            .retain(|_, at| now.duration_since(*at) < RESPAWN_BACKOFF);
        for c in &chosen {
            match self.tasks.get_mut(&c.ifindex) {
                Some(t) => {
                    if c.link_ok && !t.link_ok {
                        // Carrier is back: neighbours may have aged us out meanwhile.
                        let _ = t.burst_all.send(());
                    }
                    t.link_ok = c.link_ok;
                }
                None if self.failed.contains_key(&c.ifindex) => {}
                None => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    let inner = self.inner.clone();
                    let link = c.clone();
                    let ifindex = c.ifindex;
                    let abort = self
                        .set
                        .spawn(async move { (ifindex, serve(link, inner, rx).await) });
                    tracing::info!(interface = %c.name, mac = %c.mac, link_ok = c.link_ok, "answering on interface");
                    self.tasks.insert(
                        c.ifindex,
                        Task {
                            name: c.name.clone(),
                            mac: c.mac,
                            in_default: c.in_default,
                            link_ok: c.link_ok,
                            abort,
                            burst_all: tx,
                        },
                    );
                }
            }
        }
        // Link state for the election: only interfaces whose task runs count.
        let live: Vec<LinkStatus> = chosen
            .iter()
            .filter(|c| self.tasks.contains_key(&c.ifindex))
            .cloned()
            .collect();
        let link_ok = eligible_for(&live, self.inner.read_set().rules.values());
        self.inner.link_ok.store(link_ok, Ordering::Release);
        self.inner.links.send_if_modified(|l| {
            let changed = *l != chosen;
            if changed {
                tracing::info!(links = ?chosen, "interfaces changed");
                *l = chosen.clone();
            }
            changed
        });
        self.check_strict_arp(&links, &chosen);
    }

    fn check_strict_arp(&self, links: &[LinkAttrs], chosen: &[LinkStatus]) {
        let ipvs = links.iter().any(|l| l.name == "kube-ipvs0");
        let root: &Path = &self.inner.cfg.sysctl_root;
        let problems: Vec<StrictArpProblem> = chosen
            .iter()
            .filter_map(|c| match strictarp::read_sysctls(root, &c.name) {
                Ok(s) => strictarp::assess(ipvs, &c.name, s),
                Err(e) => {
                    tracing::debug!(interface = %c.name, error = %e, "ARP sysctls unreadable");
                    None
                }
            })
            .collect();
        let mut cur = self
            .inner
            .strict_arp
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *cur != problems {
            for p in &problems {
                tracing::warn!(interface = %p.interface, arp_ignore = p.arp_ignore,
                    arp_announce = p.arp_announce, "{p}");
            }
            *cur = problems;
        }
    }
}
