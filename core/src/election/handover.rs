//! Handover: an IP won from a peer that still answers is taken only after a delay, so
//! that the peer stops first.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Holds back IPs this node has just won from a peer that is still running, so that the
/// peer stops answering before this node starts.
///
/// When a node joins (or comes back: link up, Ready again, partition healed), it and
/// the previous announcer see the same change through their watches at about the same
/// time; without a delay both could answer for a few milliseconds. An IP won from a
/// peer whose speaker is still live (and whose link works) is therefore announced only
/// `delay` after it was won. IPs won because their announcer died, left gracefully
/// (Lease deleted) or lost its link are announced at once: that peer is already
/// silent, and failover time is what matters there.
#[derive(Debug, Clone)]
pub struct Handover {
    delay: Duration,
    pending: BTreeMap<IpAddr, Instant>,
}

impl Handover {
    /// A handover that waits `delay` before taking an IP from a live peer.
    pub fn new(delay: Duration) -> Self {
        Self {
            delay,
            pending: BTreeMap::new(),
        }
    }

    /// Of the IPs `won` by this node, those it may answer for at `now`.
    ///
    /// `announcing` is what it answers for now; `previous_announcer` tells who announced
    /// an IP in the previous election (for the first election: the election computed
    /// without this node); `peer_running(node)` tells whether that node's speaker is
    /// live with a working link, i.e. still answering.
    pub fn admit<'a>(
        &mut self,
        me: &str,
        won: &BTreeSet<IpAddr>,
        announcing: &BTreeSet<IpAddr>,
        previous_announcer: impl Fn(IpAddr) -> Option<&'a str>,
        peer_running: impl Fn(&str) -> bool,
        now: Instant,
    ) -> BTreeSet<IpAddr> {
        self.pending.retain(|ip, _| won.contains(ip));
        let mut out = BTreeSet::new();
        for ip in won {
            if announcing.contains(ip) {
                out.insert(*ip);
                continue;
            }
            if let Some(at) = self.pending.get(ip) {
                if now >= *at {
                    self.pending.remove(ip);
                    out.insert(*ip);
                }
                continue;
            }
            let from_running_peer =
                previous_announcer(*ip).is_some_and(|p| p != me && peer_running(p));
            if from_running_peer && !self.delay.is_zero() {
                self.pending.insert(*ip, now + self.delay);
            } else {
                out.insert(*ip);
            }
        }
        out
    }

    /// The next instant at which a held-back IP may be announced.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().min().copied()
    }

    /// IPs currently held back.
    pub fn pending(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.pending.keys().copied()
    }
}
