//! The membership state machine: who is alive, from authenticated heartbeats sent
//! all-to-all and the evidence peers relay (docs/membership.md, "Protocol").
//!
//! A step function: the shell feeds it received datagrams ([`Membership::receive`]),
//! the address book ([`Membership::set_peers`]) and the local node's state
//! ([`Membership::set_local`]), and asks it what to send ([`Membership::poll`]); the
//! clock is an `Instant` passed in, never read here.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::auth::{AuthError, Keyring};
use super::wire::{self, API_AGE_NEVER, Flags, Header, Heartbeat, MAX_HEARD, MAX_UNREACHABLE};

/// The protocol's knobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipConfig {
    /// Cluster name carried by every heartbeat; heartbeats of other clusters are dropped.
    pub cluster: String,
    /// Smallest interval between two heartbeats to a peer (`--heartbeat-interval`).
    pub heartbeat_interval: Duration,
    /// Smallest peer timeout (`--peer-timeout`).
    pub peer_timeout: Duration,
    /// Packets per second (sent + received) a node may spend on membership; the
    /// interval grows with the cluster to stay within it.
    pub packet_budget: u32,
    /// Age of the last API server contact beyond which a node's API view is stale.
    /// Crossing it either way is a state change that peers learn at once.
    pub api_stale_after: Duration,
}

impl Default for MembershipConfig {
    fn default() -> Self {
        MembershipConfig {
            cluster: "default".to_string(),
            heartbeat_interval: Duration::from_millis(100),
            peer_timeout: Duration::from_millis(400),
            packet_budget: 1000,
            api_stale_after: Duration::from_secs(5),
        }
    }
}

impl MembershipConfig {
    /// Interval for a cluster of `nodes` nodes (this one included):
    /// max(heartbeat_interval, 2·(nodes−1)/packet_budget), at most [`MAX_PERIOD`] (a
    /// budget of 0 counts as 1).
    pub fn interval_for(&self, nodes: usize) -> Duration {
        let budget = u64::from(self.packet_budget.max(1));
        let peers = nodes.saturating_sub(1) as u64;
        let spread = Duration::from_nanos(peers.saturating_mul(2_000_000_000) / budget);
        self.heartbeat_interval.max(spread).min(MAX_PERIOD)
    }

    /// Peer timeout for a cluster of `nodes` nodes: max(peer_timeout, 3 × interval), at
    /// most 3 × [`MAX_PERIOD`].
    pub fn timeout_for(&self, nodes: usize) -> Duration {
        self.peer_timeout
            .min(MAX_PERIOD * 3)
            .max(self.interval_for(nodes) * 3)
    }

    /// Checks that `me` and the cluster name fit the wire format (a node whose names
    /// do not fit sends nothing).
    pub fn check(&self, me: &str) -> Result<(), wire::Error> {
        let header = Header {
            key_id: [0; 4],
            cluster: &self.cluster,
            sender: me,
            incarnation: 0,
            sequence: 0,
            flags: Flags::default(),
            api_age_ms: 0,
        };
        wire::emit_unsigned(&mut Vec::new(), &header, &[], &[])
    }
}

/// Longest interval: bounds every deadline computed from the configuration, so that
/// adding it to an `Instant` cannot overflow whatever a flag says.
pub const MAX_PERIOD: Duration = Duration::from_secs(3600);

/// The local node's state, as its heartbeats report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalState {
    /// Its caches synced from the API server at least once.
    pub has_view: bool,
    /// Age of its last successful API server contact, `None` if never.
    pub api_age: Option<Duration>,
    /// Its announcing link is up.
    pub link_ok: bool,
    /// It is shutting down.
    pub leaving: bool,
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Destination.
    pub to: SocketAddr,
    /// The signed heartbeat.
    pub datagram: Vec<u8>,
}

/// What this node knows of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerState<'a> {
    /// Its node name.
    pub name: &'a str,
    /// The freshest evidence (direct or relayed) is younger than the timeout and it is
    /// not leaving.
    pub alive: bool,
    /// As its latest heartbeat reported (false if never heard directly).
    pub has_view: bool,
    /// As its latest heartbeat reported.
    pub link_ok: bool,
    /// It announced it is shutting down (this incarnation).
    pub leaving: bool,
    /// Age of its last API server contact: as reported plus the time since it was
    /// reported; `None` if it never had one or was never heard directly.
    pub api_age: Option<Duration>,
    /// Its latest heartbeat lists this node as unreachable.
    pub claims_me_unreachable: bool,
}

/// Why a received datagram was dropped (each counted under [`DropReason::metric_label`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DropReason {
    /// Truncated, a field out of range, or trailing bytes.
    #[error("malformed heartbeat")]
    Malformed,
    /// Not `FLBM`.
    #[error("bad magic")]
    BadMagic,
    /// Another wire version.
    #[error("unsupported version")]
    UnsupportedVersion,
    /// Signed with a key this node does not hold.
    #[error("unknown key id")]
    UnknownKey,
    /// The MAC does not match.
    #[error("bad MAC")]
    BadMac,
    /// Authenticated, but of another cluster.
    #[error("other cluster")]
    OtherCluster,
    /// (incarnation, sequence) not above the last accepted from that sender.
    #[error("replayed or reordered")]
    Replayed,
    /// Our own name as sender.
    #[error("from ourselves")]
    FromSelf,
}

impl DropReason {
    /// The `reason` label of the drop counter.
    /// Every reason, for metrics that list each one from the start.
    pub const ALL: [DropReason; 8] = [
        DropReason::Malformed,
        DropReason::BadMagic,
        DropReason::UnsupportedVersion,
        DropReason::UnknownKey,
        DropReason::BadMac,
        DropReason::OtherCluster,
        DropReason::Replayed,
        DropReason::FromSelf,
    ];

    /// A stable label for the metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::BadMagic => "bad_magic",
            DropReason::UnsupportedVersion => "unsupported_version",
            DropReason::UnknownKey => "unknown_key",
            DropReason::BadMac => "bad_mac",
            DropReason::OtherCluster => "other_cluster",
            DropReason::Replayed => "replayed",
            DropReason::FromSelf => "from_self",
        }
    }
}

impl From<wire::Error> for DropReason {
    fn from(e: wire::Error) -> Self {
        match e {
            wire::Error::BadMagic => DropReason::BadMagic,
            wire::Error::UnsupportedVersion(_) => DropReason::UnsupportedVersion,
            wire::Error::Truncated { .. }
            | wire::Error::Malformed { .. }
            | wire::Error::Trailing(_) => DropReason::Malformed,
        }
    }
}

impl From<AuthError> for DropReason {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::UnknownKey => DropReason::UnknownKey,
            AuthError::BadMac => DropReason::BadMac,
        }
    }
}

/// Result of an accepted datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Something the election reads changed: a peer's liveness, flags, API freshness
    /// or whether it claims this node unreachable.
    pub changed: bool,
}

/// Maps keyed by node name or name hash: foldhash (randomly seeded per process), as the
/// allocator's; the names come from authenticated peers only.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Most forgotten peers whose replay state is kept (so that a datagram captured before a
/// peer was forgotten cannot be replayed once it is).
const MAX_TOMBSTONES: usize = 4096;

#[derive(Debug)]
struct Peer {
    name: String,
    hash: u64,
    /// Address from the address book, if listed there.
    book_addr: Option<SocketAddr>,
    /// Source address of its latest accepted heartbeat.
    src: Option<SocketAddr>,
    /// Last accepted (incarnation, sequence).
    incarnation: u64,
    sequence: u64,
    last_direct: Option<Instant>,
    last_relayed: Option<Instant>,
    flags: Flags,
    api_age_ms: u32,
    claims_me: bool,
    /// Name hashes its latest heartbeat lists as unreachable (reused buffer).
    claims: Vec<u64>,
    /// When this node learnt it is leaving (cleared by a new incarnation).
    leaving_since: Option<Instant>,
}

/// What the election reads of a peer, to tell whether a datagram changed it.
#[derive(PartialEq, Eq)]
struct Observed {
    alive: bool,
    flags: Flags,
    api_fresh: bool,
    claims_me: bool,
    claims_len: usize,
}

impl Peer {
    fn new(name: String, book_addr: Option<SocketAddr>) -> Self {
        Peer {
            hash: wire::name_hash(&name),
            name,
            book_addr,
            src: None,
            incarnation: 0,
            sequence: 0,
            last_direct: None,
            last_relayed: None,
            flags: Flags::default(),
            api_age_ms: API_AGE_NEVER,
            claims_me: false,
            claims: Vec::new(),
            leaving_since: None,
        }
    }

    fn freshest(&self) -> Option<Instant> {
        self.last_direct.max(self.last_relayed)
    }

    fn alive(&self, now: Instant, timeout: Duration) -> bool {
        self.leaving_since.is_none()
            && self
                .freshest()
                .is_some_and(|t| now.saturating_duration_since(t) < timeout)
    }

    fn directly_alive(&self, now: Instant, timeout: Duration) -> bool {
        self.leaving_since.is_none()
            && self
                .last_direct
                .is_some_and(|t| now.saturating_duration_since(t) < timeout)
    }

    /// Heard at least once (directly or through a relay) and not leaving.
    fn known(&self) -> bool {
        self.leaving_since.is_none() && self.freshest().is_some()
    }

    fn observed(&self, now: Instant, timeout: Duration, stale_after: Duration) -> Observed {
        Observed {
            alive: self.alive(now, timeout),
            flags: self.flags,
            api_fresh: u128::from(self.api_age_ms) < stale_after.as_millis(),
            claims_me: self.claims_me,
            claims_len: self.claims.len(),
        }
    }
}

/// The membership of one node: its peers' liveness and state, and the heartbeats it owes.
#[derive(Debug)]
pub struct Membership {
    me: String,
    my_hash: u64,
    incarnation: u64,
    sequence: u64,
    config: MembershipConfig,
    interval: Duration,
    timeout: Duration,
    peers: Vec<Peer>,
    by_name: HashMap<String, usize>,
    by_hash: HashMap<u64, usize>,
    tombstones: HashMap<String, (u64, u64)>,
    local: LocalState,
    local_at: Option<Instant>,
    leaving: bool,
    /// A state change: send to every peer at the next poll.
    urgent: bool,
    /// Leaving rounds still to send at once.
    leave_rounds: u8,
    next_send: Option<Instant>,
    /// Latest clock reading passed in (set_peers has none of its own).
    last_now: Option<Instant>,
    last_scheduled: Option<Instant>,
    heard_cursor: usize,
    unreachable_cursor: usize,
    scratch_heard: Vec<(u64, u16)>,
    scratch_unreachable: Vec<u64>,
    buf: Vec<u8>,
}

/// Collects into `out` at most `max` values `pick` yields over `peers`, starting at
/// `cursor`; when more qualify, the cursor moves past the last one taken so that the
/// next call carries the following ones (a rotating window).
fn rotate_collect<T>(
    peers: &[Peer],
    cursor: &mut usize,
    max: usize,
    out: &mut Vec<T>,
    pick: impl Fn(&Peer) -> Option<T>,
) {
    out.clear();
    let len = peers.len();
    if len == 0 {
        return;
    }
    let start = *cursor % len;
    for i in 0..len {
        let idx = (start + i) % len;
        if let Some(v) = pick(&peers[idx]) {
            out.push(v);
            if out.len() == max {
                *cursor = (idx + 1) % len;
                return;
            }
        }
    }
}

impl Membership {
    /// A node named `me` in its `incarnation` (its start time in ms since the epoch, so
    /// that a restart is a higher one). If `me` or the cluster name does not fit the wire
    /// format ([`MembershipConfig::check`]), the node sends nothing.
    pub fn new(me: &str, incarnation: u64, config: MembershipConfig) -> Self {
        let interval = config.interval_for(1);
        let timeout = config.timeout_for(1);
        Membership {
            me: me.to_string(),
            my_hash: wire::name_hash(me),
            incarnation,
            sequence: 0,
            config,
            interval,
            timeout,
            peers: Vec::new(),
            by_name: HashMap::default(),
            by_hash: HashMap::default(),
            tombstones: HashMap::default(),
            local: LocalState::default(),
            local_at: None,
            leaving: false,
            // The first poll announces this node at once.
            urgent: true,
            leave_rounds: 0,
            next_send: None,
            last_now: None,
            last_scheduled: None,
            heard_cursor: 0,
            unreachable_cursor: 0,
            scratch_heard: Vec::new(),
            scratch_unreachable: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// The address book (from the Node objects): replaces it; peers no longer listed
    /// are forgotten (their replay state is kept aside). Authenticated senders that were
    /// never listed (their Node not seen yet) are kept while directly alive. This node's
    /// own name is ignored; a name listed twice keeps its first address.
    pub fn set_peers(&mut self, peers: impl IntoIterator<Item = (String, SocketAddr)>) {
        let mut old: HashMap<String, Peer> =
            self.peers.drain(..).map(|p| (p.name.clone(), p)).collect();
        let mut listed = HashSet::new();
        for (name, addr) in peers {
            if name == self.me || !listed.insert(name.clone()) {
                continue;
            }
            let mut peer = match old.remove(&name) {
                Some(p) => p,
                None => {
                    let mut p = Peer::new(name, None);
                    if let Some((inc, seq)) = self.tombstones.remove(&p.name) {
                        p.incarnation = inc;
                        p.sequence = seq;
                    }
                    p
                }
            };
            peer.book_addr = Some(addr);
            self.peers.push(peer);
        }
        for (name, p) in old {
            let unlisted_alive = p.book_addr.is_none()
                && self
                    .last_now
                    .is_some_and(|now| p.directly_alive(now, self.timeout));
            if unlisted_alive {
                self.peers.push(p);
                continue;
            }
            if p.incarnation != 0 || p.sequence != 0 {
                if self.tombstones.len() >= MAX_TOMBSTONES {
                    // Bounded memory; losing one entry only reopens a replay window for
                    // a peer that is long gone.
                    if let Some(k) = self.tombstones.keys().next().cloned() {
                        self.tombstones.remove(&k);
                    }
                }
                self.tombstones.insert(name, (p.incarnation, p.sequence));
            }
        }
        self.reindex();
        // N counts the address book only: every node computes it from the same Nodes.
        let nodes = self.peers.iter().filter(|p| p.book_addr.is_some()).count() + 1;
        self.interval = self.config.interval_for(nodes);
        self.timeout = self.config.timeout_for(nodes);
    }

    fn reindex(&mut self) {
        self.by_name.clear();
        self.by_hash.clear();
        for (i, p) in self.peers.iter().enumerate() {
            self.by_name.insert(p.name.clone(), i);
            // A 64-bit hash collision between two node names: the first keeps relays.
            self.by_hash.entry(p.hash).or_insert(i);
        }
    }

    /// The local node's state; true when it changed in a way peers must learn at once
    /// (a flag, or API freshness crossing `api_stale_after`): the next `poll` then sends
    /// to every peer.
    pub fn set_local(&mut self, local: LocalState, now: Instant) -> bool {
        let stale_after = self.config.api_stale_after;
        let fresh = |l: &LocalState| l.api_age.is_some_and(|a| a < stale_after);
        let old = self.local;
        let changed = old.has_view != local.has_view
            || old.link_ok != local.link_ok
            || old.leaving != local.leaving
            || fresh(&old) != fresh(&local);
        self.local = local;
        self.local_at = Some(now);
        self.last_now = self.last_now.max(Some(now));
        if local.leaving && !self.leaving {
            self.leave(now);
        } else if changed {
            self.urgent = true;
        }
        changed
    }

    /// Marks this node leaving: the next poll sends three rounds of heartbeats with the
    /// leaving flag at once (later rounds keep the flag).
    pub fn leave(&mut self, _now: Instant) {
        if !self.leaving {
            self.leaving = true;
            self.leave_rounds = 3;
        }
    }

    /// Handles a received datagram: parse, authenticate, check cluster and replay, then
    /// record the sender's direct evidence and the evidence it relays.
    pub fn receive(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        keys: &Keyring,
        now: Instant,
    ) -> Result<Received, DropReason> {
        self.last_now = self.last_now.max(Some(now));
        let hb = Heartbeat::parse(datagram)?;
        keys.verify(hb.header.key_id, hb.signed, hb.mac)?;
        let h = &hb.header;
        if h.cluster != self.config.cluster {
            return Err(DropReason::OtherCluster);
        }
        if h.sender == self.me {
            return Err(DropReason::FromSelf);
        }
        let (timeout, stale_after) = (self.timeout, self.config.api_stale_after);
        let idx = match self.by_name.get(h.sender) {
            Some(&i) => i,
            None => {
                // Authenticated but not in the address book: a peer whose Node this node
                // has not seen yet. Kept, and replied to at its source address.
                if let Some(&(inc, seq)) = self.tombstones.get(h.sender)
                    && (h.incarnation, h.sequence) <= (inc, seq)
                {
                    return Err(DropReason::Replayed);
                }
                self.tombstones.remove(h.sender);
                self.peers.push(Peer::new(h.sender.to_string(), None));
                let i = self.peers.len() - 1;
                self.by_name.insert(h.sender.to_string(), i);
                self.by_hash.entry(self.peers[i].hash).or_insert(i);
                i
            }
        };
        let my_hash = self.my_hash;
        let peer = &mut self.peers[idx];
        if (h.incarnation, h.sequence) <= (peer.incarnation, peer.sequence) {
            return Err(DropReason::Replayed);
        }
        let before = peer.observed(now, timeout, stale_after);
        if h.incarnation > peer.incarnation {
            // A new incarnation replaces the old one: nothing learnt of the old (its
            // leaving, relays about it) applies.
            peer.last_relayed = None;
            peer.leaving_since = None;
        }
        peer.incarnation = h.incarnation;
        peer.sequence = h.sequence;
        peer.last_direct = Some(now);
        peer.src = Some(from);
        peer.flags = h.flags;
        peer.api_age_ms = h.api_age_ms;
        peer.claims_me = hb.unreachable.contains(my_hash);
        let claims_before = peer.claims.len();
        let same_claims = claims_before == hb.unreachable.len()
            && peer.claims.iter().copied().eq(hb.unreachable.iter());
        if !same_claims {
            peer.claims.clear();
            peer.claims.extend(hb.unreachable.iter());
        }
        if h.flags.leaving && peer.leaving_since.is_none() {
            peer.leaving_since = Some(now);
        }
        let sender_hash = peer.hash;
        let mut changed = before != peer.observed(now, timeout, stale_after) || !same_claims;

        for (hash, age_ms) in hb.heard.iter() {
            if hash == my_hash || hash == sender_hash {
                continue;
            }
            let Some(&i) = self.by_hash.get(&hash) else {
                continue;
            };
            let Some(evidence) = now.checked_sub(Duration::from_millis(u64::from(age_ms))) else {
                continue;
            };
            let p = &mut self.peers[i];
            if let Some(since) = p.leaving_since {
                // Relayed evidence never revives a leaving peer: only evidence younger
                // than its leaving by a whole timeout (its next incarnation, heard by the
                // relay) does, since the relay may not have heard the leaving yet.
                if evidence <= since + timeout {
                    continue;
                }
            }
            if p.last_relayed.is_none_or(|t| t < evidence) {
                let was_alive = p.alive(now, timeout);
                p.last_relayed = Some(evidence);
                if p.leaving_since.is_some() {
                    p.leaving_since = None;
                    p.flags = Flags::default();
                    p.api_age_ms = API_AGE_NEVER;
                }
                changed |= was_alive != p.alive(now, timeout);
            }
        }
        Ok(Received { changed })
    }

    fn local_api_age_ms(&self, now: Instant) -> u32 {
        match (self.local.api_age, self.local_at) {
            (Some(age), Some(at)) => {
                let ms = (age + now.saturating_duration_since(at)).as_millis();
                u32::try_from(ms)
                    .unwrap_or(API_AGE_NEVER - 1)
                    .min(API_AGE_NEVER - 1)
            }
            _ => API_AGE_NEVER,
        }
    }

    fn send_round(&mut self, keys: &Keyring, now: Instant, out: &mut Vec<Outgoing>) {
        self.sequence += 1;
        let timeout = self.timeout;
        rotate_collect(
            &self.peers,
            &mut self.heard_cursor,
            MAX_HEARD,
            &mut self.scratch_heard,
            |p| {
                p.directly_alive(now, timeout).then(|| {
                    let age = p
                        .last_direct
                        .map_or(0, |t| now.saturating_duration_since(t).as_millis());
                    (p.hash, u16::try_from(age).unwrap_or(u16::MAX))
                })
            },
        );
        rotate_collect(
            &self.peers,
            &mut self.unreachable_cursor,
            MAX_UNREACHABLE,
            &mut self.scratch_unreachable,
            |p| (p.known() && !p.alive(now, timeout)).then_some(p.hash),
        );
        let header = Header {
            key_id: keys.primary_id(),
            cluster: &self.config.cluster,
            sender: &self.me,
            incarnation: self.incarnation,
            sequence: self.sequence,
            flags: Flags {
                has_view: self.local.has_view,
                link_ok: self.local.link_ok,
                leaving: self.leaving || self.local.leaving,
            },
            api_age_ms: self.local_api_age_ms(now),
        };
        self.buf.clear();
        if wire::emit_unsigned(
            &mut self.buf,
            &header,
            &self.scratch_heard,
            &self.scratch_unreachable,
        )
        .is_err()
        {
            // Names that do not fit the format (MembershipConfig::check): nothing to send.
            return;
        }
        let mac = keys.sign(&self.buf);
        self.buf.extend_from_slice(&mac);
        for p in &self.peers {
            let to = match (p.book_addr, p.src) {
                (Some(a), _) => a,
                (None, Some(src)) if p.directly_alive(now, timeout) => src,
                _ => continue,
            };
            out.push(Outgoing {
                to,
                datagram: self.buf.clone(),
            });
        }
    }

    /// Appends the datagrams due at `now` to `out`; returns when to call again (next send
    /// or next expiry of a live peer).
    pub fn poll(&mut self, keys: &Keyring, now: Instant, out: &mut Vec<Outgoing>) -> Instant {
        self.last_now = self.last_now.max(Some(now));
        let mut rounds = 0u8;
        if self.leave_rounds > 0 {
            rounds = std::mem::take(&mut self.leave_rounds);
            self.urgent = false;
        } else if std::mem::take(&mut self.urgent) {
            rounds = 1;
        }
        match self.next_send {
            None => {
                // Deterministic per-node phase, so that nodes started together do not
                // send in lockstep.
                let nanos = self.interval.as_nanos().max(1) as u64;
                self.next_send = Some(now + Duration::from_nanos(1 + self.my_hash % nanos));
            }
            Some(mut t) => {
                // The interval may have shrunk since (set_peers).
                if let Some(last) = self.last_scheduled {
                    t = t.min(last + self.interval);
                }
                if now >= t {
                    rounds = rounds.max(1);
                    let mut next = t + self.interval;
                    if next <= now {
                        next = now + self.interval;
                    }
                    self.last_scheduled = Some(t);
                    t = next;
                }
                self.next_send = Some(t);
            }
        }
        for _ in 0..rounds {
            self.send_round(keys, now, out);
        }
        let mut wake = self.next_send.unwrap_or(now + self.interval);
        for p in &self.peers {
            if p.alive(now, self.timeout)
                && let Some(t) = p.freshest()
            {
                wake = wake.min(t + self.timeout);
            }
        }
        wake
    }

    /// Every peer this node knows of (address book and authenticated senders not in it).
    pub fn peers(&self, now: Instant) -> impl Iterator<Item = PeerState<'_>> {
        let timeout = self.timeout;
        self.peers.iter().map(move |p| {
            let heard = p.last_direct.is_some();
            PeerState {
                name: &p.name,
                alive: p.alive(now, timeout),
                has_view: heard && p.flags.has_view,
                link_ok: heard && p.flags.link_ok,
                leaving: p.leaving_since.is_some(),
                api_age: match (p.api_age_ms, p.last_direct) {
                    (API_AGE_NEVER, _) | (_, None) => None,
                    (ms, Some(at)) => Some(
                        Duration::from_millis(u64::from(ms)) + now.saturating_duration_since(at),
                    ),
                },
                claims_me_unreachable: p.claims_me,
            }
        })
    }

    /// The peers that some live peer's latest heartbeat lists as unreachable (claims
    /// travel with every heartbeat, so that every node excludes a peer that any of them
    /// cannot hear, and a partial partition ends with one consistent election).
    pub fn claimed_unreachable(&self, now: Instant) -> std::collections::HashSet<&str> {
        let timeout = self.timeout;
        let mut out = std::collections::HashSet::new();
        for p in self.peers.iter().filter(|p| p.alive(now, timeout)) {
            for h in &p.claims {
                if let Some(&i) = self.by_hash.get(h)
                    && self.peers[i].hash != p.hash
                {
                    out.insert(self.peers[i].name.as_str());
                }
            }
        }
        out
    }

    /// Peers heard at least once by this incarnation and not left/forgotten, alive or not.
    pub fn known(&self) -> usize {
        self.peers.iter().filter(|p| p.known()).count()
    }

    /// Whether this node hears a strict majority of the known members (itself included).
    pub fn has_quorum(&self, now: Instant) -> bool {
        let known = self.known();
        let alive = self
            .peers
            .iter()
            .filter(|p| p.known() && p.alive(now, self.timeout))
            .count();
        2 * (alive + 1) > known + 1
    }

    /// Names of known peers judged dead now (what this node publishes as unreachable).
    pub fn unreachable(&self, now: Instant) -> Vec<String> {
        self.peers
            .iter()
            .filter(|p| p.known() && !p.alive(now, self.timeout))
            .map(|p| p.name.clone())
            .collect()
    }

    /// Current heartbeat interval (grows with the address book).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Current peer timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// This node's name.
    pub fn me(&self) -> &str {
        &self.me
    }
}
