//! The membership's I/O shell: one UDP socket, the protocol state machine
//! ([`ferrolb_core::membership::Membership`]) behind a mutex, and the task that feeds it
//! datagrams and timer ticks and sends what it asks for.
//!
//! The election loop reads the membership (who is alive, who claims whom unreachable,
//! quorum) and writes the address book and the local state; this task wakes the loop
//! whenever something the election reads changes.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ferrolb_core::election::Member;
use ferrolb_core::membership::{Keyring, LocalState, Membership, MembershipConfig, Outgoing};

use crate::api_probe::ApiContact;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use crate::metrics::SpeakerMetrics;

/// Largest datagram accepted (a heartbeat is far smaller; see docs/membership.md).
const MAX_DATAGRAM: usize = 9000;

/// The membership shared between its task and the election loop.
pub struct SharedMembership {
    state: Mutex<Membership>,
    /// What the election loop last said of this node (view, link, whether it has
    /// stopped for a stale API view); the API age is read from `contact` at every send,
    /// so that heartbeats carry the current one.
    flags: Mutex<LocalFlags>,
    contact: Arc<ApiContact>,
    keys: Mutex<Option<Keyring>>,
    /// Wakes the membership task: the local state changed and peers must hear at once.
    poke: Notify,
    api_stale_after: Duration,
    /// When this node could first both authenticate and address heartbeats (keys and
    /// address book installed): heard-of peers are only meaningful from then on.
    ready_since: Mutex<(Option<Instant>, Option<Instant>)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panicking holder cannot leave it worse than stopping would.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the election loop says of this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalFlags {
    /// Its caches have listed (and it has keys and has listened long enough).
    pub has_view: bool,
    /// Its data path works.
    pub link_ok: bool,
    /// It has judged its own API view stale *and stopped answering* for it.
    pub api_stale: bool,
}

/// What the election reads from the membership at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipView {
    /// The peers, as election members.
    pub peers: Vec<Member>,
    /// This node hears a strict majority of the members it knows.
    pub quorum: bool,
    /// Some live peer's latest heartbeat lists this node as unreachable.
    pub claims_me: bool,
    /// Names of the peers this node judges dead (published in its Lease).
    pub unreachable: Vec<String>,
}

impl SharedMembership {
    /// A membership for `me`; its incarnation is the current wall-clock time in ms.
    pub fn new(me: &str, config: MembershipConfig, contact: Arc<ApiContact>) -> Self {
        let incarnation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1);
        let api_stale_after = config.api_stale_after;
        Self {
            state: Mutex::new(Membership::new(me, incarnation, config)),
            flags: Mutex::new(LocalFlags {
                has_view: false,
                link_ok: true,
                api_stale: false,
            }),
            contact,
            keys: Mutex::new(None),
            poke: Notify::new(),
            api_stale_after,
            ready_since: Mutex::new((None, None)),
        }
    }

    /// Installs the key ring (from the Secret); `None` when it is missing or invalid.
    pub fn set_keys(&self, keys: Option<Keyring>) {
        if keys.is_some() {
            lock(&self.ready_since).0.get_or_insert_with(Instant::now);
        }
        *lock(&self.keys) = keys;
        self.poke.notify_one();
    }

    /// Whether a key ring is installed.
    pub fn has_keys(&self) -> bool {
        lock(&self.keys).is_some()
    }

    /// Replaces the address book.
    pub fn set_peers(&self, peers: Vec<(String, SocketAddr)>) {
        lock(&self.ready_since).1.get_or_insert_with(Instant::now);
        lock(&self.state).set_peers(peers);
    }

    /// Sets what this node reports of itself; peers hear at once when it changed in a
    /// way they read.
    pub fn set_local(&self, flags: LocalFlags, now: Instant) {
        *lock(&self.flags) = flags;
        if self.refresh_local(now) {
            self.poke.notify_one();
        }
    }

    /// Hands the current local state (with the API age as of `now`) to the protocol;
    /// true when peers must hear at once.
    ///
    /// The staleness of this node's API view is the election loop's to declare, after it
    /// stopped answering: until then the age sent stays below the threshold, and once
    /// declared the node reports no contact at all. A peer therefore never takes this
    /// node's addresses for a stale view before this node has let go of them.
    fn refresh_local(&self, now: Instant) -> bool {
        let flags = *lock(&self.flags);
        let below = self
            .api_stale_after
            .saturating_sub(Duration::from_millis(1));
        let api_age = if flags.api_stale {
            None
        } else {
            self.contact.age(now).map(|a| a.min(below))
        };
        lock(&self.state).set_local(
            LocalState {
                has_view: flags.has_view,
                api_age,
                link_ok: flags.link_ok,
                leaving: false,
            },
            now,
        )
    }

    /// The instant from which this node has listened long enough to have heard every
    /// live peer (one peer timeout plus one interval after it could first authenticate
    /// and address heartbeats): before it, an unheard peer may be alive. `None` while it
    /// cannot yet.
    pub fn warm_at(&self) -> Option<Instant> {
        let (keys, book) = *lock(&self.ready_since);
        let m = lock(&self.state);
        Some(keys?.max(book?) + m.timeout() + m.interval())
    }

    /// The current peer timeout.
    pub fn timeout(&self) -> Duration {
        lock(&self.state).timeout()
    }

    /// The view the election reads.
    pub fn view(&self, now: Instant) -> MembershipView {
        let m = lock(&self.state);
        let claimed = m.claimed_unreachable(now);
        // A peer is stale when *it* says so (its heartbeat is sent at once when its view
        // turns stale, after it stopped answering), not when this node extrapolates its
        // age: that could run a little ahead of the peer's own clock and take its IPs
        // while it still answers. Extrapolation only catches a peer that stopped
        // reporting, which the timeout turns into a dead one anyway.
        let stale_after = self.api_stale_after + m.timeout();
        let mut claims_me = false;
        let peers = m
            .peers(now)
            .map(|p| {
                claims_me |= p.alive && p.claims_me_unreachable;
                Member {
                    name: p.name.to_owned(),
                    alive: p.alive,
                    has_view: p.has_view,
                    api_fresh: p.api_age.is_some_and(|a| a <= stale_after),
                    api_recent: p.api_age.is_some_and(|a| a <= self.api_stale_after / 2),
                    link_ok: p.link_ok,
                    leaving: p.leaving,
                    claimed_unreachable: claimed.contains(p.name),
                }
            })
            .collect();
        MembershipView {
            peers,
            quorum: m.has_quorum(now),
            claims_me,
            unreachable: m.unreachable(now),
        }
    }

    /// Marks this node leaving and sends the goodbye heartbeats at once (graceful
    /// shutdown: peers take over without waiting for the timeout).
    pub async fn leave(&self, socket: &UdpSocket) {
        let now = Instant::now();
        lock(&self.state).leave(now);
        for _ in 0..3 {
            let mut out = Vec::new();
            if let Some(keys) = lock(&self.keys).as_ref() {
                lock(&self.state).poll(keys, Instant::now(), &mut out);
            }
            send_all(socket, &out, None).await;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Binds the heartbeat socket.
pub async fn bind(addr: IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    UdpSocket::bind(SocketAddr::new(addr, port)).await
}

async fn send_all(socket: &UdpSocket, out: &[Outgoing], metrics: Option<&SpeakerMetrics>) {
    for o in out {
        // Sending to an IPv6 peer from an IPv4 socket (or the reverse) fails; so does a
        // full socket buffer. A lost heartbeat is what the protocol is built to absorb.
        let to = match (socket.local_addr().map(|a| a.is_ipv6()), o.to) {
            (Ok(true), SocketAddr::V4(v4)) => {
                SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
            }
            _ => o.to,
        };
        match socket.send_to(&o.datagram, to).await {
            Ok(_) => {
                if let Some(m) = metrics {
                    m.heartbeats_sent.inc();
                }
            }
            Err(e) => {
                tracing::debug!(to = %o.to, error = %e, "heartbeat not sent");
                if let Some(m) = metrics {
                    m.heartbeat_send_errors.inc();
                }
            }
        }
    }
}

/// The digest of what the election reads, to wake it only on changes.
fn digest(view: &MembershipView) -> (Vec<Member>, bool, bool) {
    (view.peers.clone(), view.quorum, view.claims_me)
}

/// Runs the membership on `socket` until dropped; `wake` is notified whenever what the
/// election reads changes.
pub async fn run(
    shared: Arc<SharedMembership>,
    socket: Arc<UdpSocket>,
    wake: Arc<Notify>,
    metrics: Arc<SpeakerMetrics>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut out = Vec::new();
    let mut last = None;
    loop {
        let now = Instant::now();
        out.clear();
        shared.refresh_local(now);
        let next = {
            let keys = lock(&shared.keys);
            match keys.as_ref() {
                Some(keys) => lock(&shared.state).poll(keys, now, &mut out),
                // Without a key nothing can be signed: look again when one arrives.
                None => now + Duration::from_secs(1),
            }
        };
        send_all(&socket, &out, Some(&metrics)).await;
        let d = digest(&shared.view(Instant::now()));
        if last.as_ref() != Some(&d) {
            metrics
                .membership_alive
                .set(d.0.iter().filter(|m| m.alive).count() as i64);
            last = Some(d);
            wake.notify_one();
        }
        tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((len, from)) => {
                    metrics.heartbeats_received.inc();
                    let from = canonical(from);
                    let now = Instant::now();
                    let result = {
                        let keys = lock(&shared.keys);
                        match keys.as_ref() {
                            Some(keys) => lock(&shared.state).receive(from, &buf[..len], keys, now).map(|r| r.changed),
                            None => Err(ferrolb_core::membership::DropReason::UnknownKey),
                        }
                    };
                    match result {
                        Ok(true) => wake.notify_one(),
                        Ok(false) => {}
                        Err(reason) => {
                            metrics.heartbeat_dropped(reason.metric_label());
                            tracing::debug!(%from, reason = reason.metric_label(), "heartbeat dropped");
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "heartbeat socket receive failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = tokio::time::sleep_until(next.into()) => {}
            () = shared.poke.notified() => {}
        }
    }
}

/// An IPv4 peer seen through a dual-stack socket arrives as `::ffff:a.b.c.d`; the
/// address book holds it as plain IPv4.
fn canonical(from: SocketAddr) -> SocketAddr {
    match from {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => from,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn mapped_ipv4_sources_become_plain_ipv4() {
        let mapped = SocketAddr::new(
            IpAddr::V6(Ipv4Addr::new(192, 0, 2, 11).to_ipv6_mapped()),
            7474,
        );
        assert_eq!(
            canonical(mapped),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)), 7474)
        );
        let v6 = SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11)),
            7474,
        );
        assert_eq!(canonical(v6), v6);
    }
}
