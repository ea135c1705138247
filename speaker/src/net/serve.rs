//! One interface task of the data path: reads ARP requests and Neighbor Solicitations
//! from its two kernel-filtered raw sockets, answers through the pure
//! [`ferrolb_core::wire::decide`] for the IPs this node announces, joins the
//! solicited-node groups, and sends the gratuitous bursts (see `announcer` for how the
//! tasks are supervised).

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use ferrolb_core::wire::{self, FrameDecision, MacAddr, Protocol, Reply};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::announcer::{BATCH, ETH_P_ARP, ETH_P_IPV6, FRAME_BUF, Inner, PacketCounters, inc};
use super::bpf;
use super::iface::LinkStatus;
use super::sys::PacketSocket;

/// A pending gratuitous burst.
struct Burst {
    due: Instant,
    ips: Arc<Vec<IpAddr>>,
    /// Rounds still to send.
    left: u32,
    /// Rounds that may still be repeated because a send failed in them.
    retries: u32,
}

struct Iface {
    link: LinkStatus,
    inner: Arc<Inner>,
    arp: AsyncFd<PacketSocket>,
    nd: AsyncFd<PacketSocket>,
    joined: BTreeSet<MacAddr>,
    bursts: Vec<Burst>,
}

/// The interface task: runs until aborted or until a socket fails.
pub(super) async fn serve(
    link: LinkStatus,
    inner: Arc<Inner>,
    mut burst_all: mpsc::UnboundedReceiver<()>,
) -> io::Result<()> {
    let filter = inner.cfg.kernel_filter;
    let arp_prog = bpf::arp_requests();
    let ns_prog = bpf::neighbor_solicitations();
    let arp = PacketSocket::open(link.ifindex, ETH_P_ARP, filter.then_some(&arp_prog[..]))?;
    let nd = PacketSocket::open(link.ifindex, ETH_P_IPV6, filter.then_some(&ns_prog[..]))?;
    // Room for a burst of requests while the task is busy; silently capped by rmem_max.
    let _ = arp.set_recv_buffer(1 << 20);
    let _ = nd.set_recv_buffer(1 << 20);
    let mut me = Iface {
        link,
        arp: super::sys::register(arp)?,
        nd: super::sys::register(nd)?,
        inner: inner.clone(),
        joined: BTreeSet::new(),
        bursts: Vec::new(),
    };
    let mut generation = inner.generation.subscribe();
    // Whatever is announced when the interface appears is news to its neighbours.
    let mut last = BTreeSet::new();
    generation.mark_changed();
    let mut reannounce = inner.cfg.reannounce_every.map(|d| {
        let mut i = tokio::time::interval_at(Instant::now() + d, d);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let mut buf = [0u8; FRAME_BUF];
    loop {
        let next_due = me.bursts.iter().map(|b| b.due).min();
        tokio::select! {
            r = me.arp.readable() => {
                let mut g = r?;
                me.drain(&mut g, &mut buf);
            }
            r = me.nd.readable() => {
                let mut g = r?;
                me.drain(&mut g, &mut buf);
            }
            r = generation.changed() => {
                if r.is_err() {
                    return Ok(()); // the announcer is gone
                }
                let cur = inner.read_set().on_interface(&me.link.name, me.link.in_default);
                let gained: Vec<IpAddr> = cur.difference(&last).copied().collect();
                me.sync_groups(&cur);
                me.schedule(gained, inner.cfg.burst_count);
                last = cur;
            }
            Some(()) = burst_all.recv() => {
                let all = inner.read_set().on_interface(&me.link.name, me.link.in_default);
                me.schedule(all.into_iter().collect(), inner.cfg.burst_count);
            }
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                me.send_due();
            }
            _ = async { reannounce.as_mut().expect("guarded").tick().await }, if reannounce.is_some() => {
                let all = inner.read_set().on_interface(&me.link.name, me.link.in_default);
                me.schedule(all.into_iter().collect(), 1);
            }
        }
    }
}

impl Iface {
    /// Reads up to [`BATCH`] frames from the socket whose readiness `g` holds and
    /// answers them.
    fn drain(
        &self,
        g: &mut tokio::io::unix::AsyncFdReadyGuard<'_, PacketSocket>,
        buf: &mut [u8; FRAME_BUF],
    ) {
        let sock = g.get_inner();
        let m = &self.inner.counters;
        for _ in 0..BATCH {
            match sock.recv(buf) {
                Ok(n) => {
                    let set = self.inner.read_set();
                    let (name, in_default) = (&self.link.name, self.link.in_default);
                    match wire::decide(&buf[..n], self.link.mac, |ip| {
                        set.answers(ip, name, in_default)
                    }) {
                        FrameDecision::Answer(p, reply) => {
                            inc(seen(m, p));
                            match sock.send(reply.as_bytes()) {
                                Ok(_) => inc(match p {
                                    Protocol::Arp => &m.arp_replies_sent,
                                    Protocol::Ndp => &m.ndp_advertisements_sent,
                                }),
                                Err(e) => {
                                    inc(&m.send_errors);
                                    tracing::debug!(interface = %self.link.name, error = %e, "reply not sent");
                                }
                            }
                        }
                        FrameDecision::NotAnnounced(p) => inc(seen(m, p)),
                        FrameDecision::Drop(e) => {
                            inc(&m.frames_dropped);
                            tracing::trace!(interface = %self.link.name, error = %e, "frame dropped");
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    g.clear_ready();
                    return;
                }
                Err(e) => {
                    // ENETDOWN while the link is down, ENOBUFS...: transient.
                    inc(&m.receive_errors);
                    tracing::debug!(interface = %self.link.name, error = %e, "receive failed");
                    return;
                }
            }
        }
        // Batch full: leave readiness set so the next select! comes straight back.
    }

    /// Joins the solicited-node group of every announced IPv6 address, leaves the rest.
    fn sync_groups(&mut self, set: &BTreeSet<IpAddr>) {
        let want: BTreeSet<MacAddr> = set
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V6(v6) => Some(wire::solicited_node_mac(*v6)),
                IpAddr::V4(_) => None,
            })
            .collect();
        let sock = self.nd.get_ref();
        for mac in want.difference(&self.joined) {
            if let Err(e) = sock.join_multicast(mac.0) {
                tracing::warn!(interface = %self.link.name, group = %mac, error = %e, "cannot join solicited-node group");
            }
        }
        for mac in self.joined.difference(&want) {
            if let Err(e) = sock.leave_multicast(mac.0) {
                tracing::debug!(interface = %self.link.name, group = %mac, error = %e, "cannot leave solicited-node group");
            }
        }
        self.joined = want;
    }

    fn schedule(&mut self, ips: Vec<IpAddr>, count: u32) {
        if ips.is_empty() || count == 0 {
            return;
        }
        self.bursts.push(Burst {
            due: Instant::now(),
            ips: Arc::new(ips),
            left: count,
            retries: count,
        });
        // Send the first round right away rather than after a trip through select!.
        self.send_due();
    }

    fn send_due(&mut self) {
        let now = Instant::now();
        let interval = self.inner.cfg.burst_interval;
        let m = &self.inner.counters;
        for b in self.bursts.iter_mut().filter(|b| b.due <= now) {
            let mut failed = false;
            for ip in b.ips.iter() {
                let set = self.inner.read_set();
                if !set.answers(*ip, &self.link.name, self.link.in_default) {
                    continue; // lost meanwhile (or moved off this interface): never announce it again
                }
                let (frame, sock): (Reply, &PacketSocket) = match ip {
                    IpAddr::V4(v4) => (
                        wire::gratuitous_arp(self.link.mac, *v4, self.inner.cfg.garp_form),
                        self.arp.get_ref(),
                    ),
                    IpAddr::V6(v6) => (wire::unsolicited_na(self.link.mac, *v6), self.nd.get_ref()),
                };
                match sock.send(frame.as_bytes()) {
                    Ok(_) => inc(&m.gratuitous_sent),
                    Err(e) => {
                        failed = true;
                        inc(&m.send_errors);
                        tracing::debug!(interface = %self.link.name, %ip, error = %e, "gratuitous packet not sent");
                    }
                }
            }
            // A round that failed (ENOBUFS, a link that has just come up and whose
            // queue is not active yet) is sent again, at most `count` times per burst,
            // so that neighbours still get the number of announcements configured.
            if failed && b.retries > 0 {
                b.retries -= 1;
            } else {
                b.left -= 1;
            }
            b.due = now + interval;
        }
        self.bursts.retain(|b| b.left > 0);
    }
}

fn seen(m: &PacketCounters, p: Protocol) -> &AtomicU64 {
    match p {
        Protocol::Arp => &m.arp_requests_seen,
        Protocol::Ndp => &m.ndp_solicitations_seen,
    }
}
