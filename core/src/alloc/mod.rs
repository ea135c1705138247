//! The IP allocator: which Service holds which address of which pool.
//!
//! Pure: the controller feeds it the configuration and one [`Request`] per Service,
//! and writes what comes back into Service status.
//!
//! # Rules
//! - **Pool choice.** A requested IP (`spec.loadBalancerIP` or the `loadBalancerIPs`
//!   annotation) selects the pool containing it; all requested IPs must lie in one pool,
//!   and in the requested pool if one is named. Otherwise the `address-pool` annotation
//!   names the pool. Otherwise the candidates are the `autoAssign` pools that allow the
//!   Service (`namespaces`, `serviceSelector`), **in configuration order**, except that a
//!   pool the Service already holds an address in is tried first (so a change of request
//!   moves as little as possible). Explicitly named pools need not be `autoAssign`.
//! - **Address choice within a pool**, per family: the requested IP; else the address the
//!   Service already holds in that pool; else, with a sharing key, the lowest IP already
//!   held under that key that can be shared; else the **lowest free address**. The result
//!   therefore depends only on the configuration and the sequence of calls: it is
//!   deterministic.
//! - **One pool per Service.** All IPs of a Service come from the same pool.
//! - **Families.** `SingleStack`: one IP of `families[0]`. `RequireDualStack`: one IP of
//!   each family from the same pool, or an error. `PreferDualStack`: the first candidate
//!   pool that can give both families; failing that, one IP of the primary family, and
//!   failing that one of the secondary family (as listed in `families`).
//! - **Sharing.** An IP held by others is given only when every holder has the same
//!   sharing key, no `(protocol, port)` pair appears on both sides, and, where either side
//!   uses `externalTrafficPolicy: Local`, both have the same pod selector.
//! - **avoidBuggyIPs** pools never hand out (nor accept a request for) the `.0` and
//!   `.255` of an IPv4 /24.
//! - **Stability.** [`Allocator::allocate`] returns a Service's current allocation
//!   unchanged while it still satisfies the request. `autoAssign` only restricts where
//!   *new* addresses are picked; an address already held in a pool that stopped being
//!   `autoAssign` stays. A changed request is applied atomically: either the whole new
//!   allocation is committed, or (on error) the previous allocation is kept when it is
//!   still *permitted* for the new request (its pool allows the Service, its families are
//!   wanted, sharing still holds with the new ports/selector/key) and released otherwise.
//!   After an error, [`Allocator::get`] tells which happened. A self-contradictory
//!   request ([`AllocError::InvalidRequest`]) changes nothing at all.
//!
//! - **Rebuild.** [`Allocator::assign_existing`] / [`Allocator::rebuild`] take the IPs
//!   found in Services' status as they are (oldest Service first), so a restarted
//!   controller reproduces the assignments without moving any.
//! - **Configuration change.** [`Allocator::set_config`] keeps every held IP that is
//!   still valid and hands back the others for re-allocation.
//!
//! # Cost
//! Per pool and family the free addresses are kept as maximal intervals (keyed by their
//! end), so picking the lowest free address, taking one, returning one and asking whether
//! one is free are O(log n) in the number of intervals (at most one more than the number
//! of used addresses) and never walk the pool; a whole IPv6 /64 starts as one interval.
//! Holders are in a hash map keyed by IP. The one search that is not logarithmic is
//! sharing: a Service with a sharing key looks through the IPs already held under that
//! key (usually a handful) before taking a fresh address.

mod error;
mod keys;
mod space;
mod types;

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Deref;
use std::sync::Arc;

use ferrolb_config::{Config, Pool};

pub use error::AllocError;
pub use types::{
    Allocation, FamilyPolicy, HolderKey, IpFamily, PoolStats, Port, Protocol, Request,
};

use space::Space;

/// Hash maps keyed by Service key or IP use foldhash (randomly seeded per process): the
/// std SipHash was the largest single cost of an allocation. No decision depends on
/// iteration order, so the seed never changes a result.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Integer form of an address (IPv4 as its `u32`).
fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Address of `x` in `family`.
fn from_u128(family: IpFamily, x: u128) -> IpAddr {
    match family {
        // Values in a V4 space come from `u32`s, so the cast is lossless.
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(x as u32)),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(x)),
    }
}

/// Namespace part of a `"namespace/name"` key.
fn namespace_of(key: &str) -> &str {
    key.split_once('/').map_or("", |(ns, _)| ns)
}

/// Both families' spaces of one pool (absent when the pool has no address of the family).
#[derive(Debug, Clone)]
struct PoolState {
    v4: Option<Space>,
    v6: Option<Space>,
}

impl PoolState {
    fn new(pool: &Pool) -> Self {
        let ranges = |v4: bool| {
            pool.ranges
                .iter()
                .filter(move |r| r.is_ipv4() == v4)
                .map(|r| (to_u128(r.start), to_u128(r.end)))
        };
        PoolState {
            v4: Space::new(ranges(true), pool.avoid_buggy_ips),
            v6: Space::new(ranges(false), false),
        }
    }

    fn space(&self, family: IpFamily) -> Option<&Space> {
        match family {
            IpFamily::V4 => self.v4.as_ref(),
            IpFamily::V6 => self.v6.as_ref(),
        }
    }

    fn space_mut(&mut self, family: IpFamily) -> Option<&mut Space> {
        match family {
            IpFamily::V4 => self.v4.as_mut(),
            IpFamily::V6 => self.v6.as_mut(),
        }
    }
}

/// What a Service brings to a shared IP. Only kept for Services with a sharing key,
/// since without one an IP is never shared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Share {
    key: String,
    ports: Vec<Port>,
    local: bool,
    selector: BTreeMap<String, String>,
}

/// A borrowed [`Share`], built from a stored record or from a request.
#[derive(Clone, Copy)]
struct ShareView<'a> {
    key: &'a str,
    ports: &'a [Port],
    local: bool,
    selector: &'a BTreeMap<String, String>,
}

impl Share {
    fn view(&self) -> ShareView<'_> {
        ShareView {
            key: &self.key,
            ports: &self.ports,
            local: self.local,
            selector: &self.selector,
        }
    }
}

fn share_of(req: &Request) -> Option<ShareView<'_>> {
    req.sharing_key.as_deref().map(|key| ShareView {
        key,
        ports: &req.ports,
        local: req.local_traffic_policy,
        selector: &req.selector,
    })
}

/// What is stored per Service: its allocation and the parts of its request that later
/// decisions (sharing checks, configuration changes) need. The namespace is the key's
/// prefix and is not stored again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    alloc: Allocation,
    labels: BTreeMap<String, String>,
    requested_pool: Option<String>,
    share: Option<Box<Share>>,
}

impl Record {
    fn new(req: &Request, alloc: Allocation) -> Self {
        Record {
            alloc,
            labels: req.labels.clone(),
            requested_pool: req.requested_pool.clone(),
            share: req.sharing_key.as_ref().map(|key| {
                Box::new(Share {
                    key: key.clone(),
                    ports: req.ports.clone(),
                    local: req.local_traffic_policy,
                    selector: req.selector.clone(),
                })
            }),
        }
    }
}

/// Holders of one IP, sorted by key.
#[derive(Debug, Clone)]
struct IpEntry {
    pool: usize,
    holders: Holders,
}

/// The Services holding one IP, sorted. Almost every IP has exactly one holder, which is
/// stored inline to save an allocation per IP.
#[derive(Debug, Clone)]
enum Holders {
    One(Arc<str>),
    Many(Vec<Arc<str>>),
}

impl Holders {
    fn as_slice(&self) -> &[Arc<str>] {
        match self {
            Holders::One(k) => std::slice::from_ref(k),
            Holders::Many(v) => v,
        }
    }

    /// Adds `key` (kept sorted, no duplicates).
    fn insert(&mut self, key: &Arc<str>) {
        let mut v = match self {
            Holders::One(k) if k == key => return,
            Holders::One(k) => vec![k.clone()],
            Holders::Many(v) => std::mem::take(v),
        };
        if let Err(pos) = v.binary_search(key) {
            v.insert(pos, key.clone());
        }
        *self = Holders::Many(v);
    }

    /// Removes `key`; returns true when no holder is left.
    fn remove(&mut self, key: &str) -> bool {
        match self {
            Holders::One(k) => &**k == key,
            Holders::Many(v) => {
                v.retain(|h| &**h != key);
                let empty = v.is_empty();
                if let [only] = v.as_slice() {
                    let only = only.clone();
                    *self = Holders::One(only);
                }
                empty
            }
        }
    }
}

/// Up to two items inline (families, or requested IPs one per family): avoids heap
/// allocations on the hot path of every request.
#[derive(Clone, Copy)]
struct Two<T: Copy> {
    items: [T; 2],
    len: usize,
}

impl<T: Copy> Two<T> {
    fn one(a: T) -> Self {
        Two {
            items: [a, a],
            len: 1,
        }
    }

    fn pair(a: T, b: T) -> Self {
        Two {
            items: [a, b],
            len: 2,
        }
    }

    fn empty(filler: T) -> Self {
        Two {
            items: [filler, filler],
            len: 0,
        }
    }

    fn push(&mut self, x: T) {
        self.items[self.len] = x;
        self.len += 1;
    }
}

impl<T: Copy> Deref for Two<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items[..self.len]
    }
}

/// A request after validation: the families wanted, primary first, and the requested
/// IP of each family, in the same order.
struct Norm {
    wanted: Two<IpFamily>,
    requested: Two<IpAddr>,
}

impl Norm {
    fn requested(&self, family: IpFamily) -> Option<IpAddr> {
        self.requested
            .iter()
            .copied()
            .find(|ip| IpFamily::of(*ip) == family)
    }
}

/// Which Service holds which address. See the [module documentation](self) for the rules.
#[derive(Debug, Clone)]
pub struct Allocator {
    config: Config,
    pools: Vec<PoolState>,
    by_name: HashMap<String, usize>,
    services: HashMap<Arc<str>, Record>,
    ips: HashMap<IpAddr, IpEntry>,
    /// Sharing key -> IPs held under it, ordered so the lowest shareable one is found first.
    shared: HashMap<String, BTreeSet<IpAddr>>,
}

impl Allocator {
    /// An allocator over `config`'s pools with nothing allocated.
    pub fn new(config: Config) -> Self {
        let pools = config.pools.iter().map(PoolState::new).collect();
        let by_name = config
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i))
            .collect();
        Allocator {
            config,
            pools,
            by_name,
            services: HashMap::default(),
            ips: HashMap::default(),
            shared: HashMap::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Number of Services holding an allocation.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// True when no Service holds an allocation.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The allocation `key` holds.
    pub fn get(&self, key: &str) -> Option<&Allocation> {
        self.services.get(key).map(|r| &r.alloc)
    }

    /// The Services holding `ip`, sorted.
    pub fn holders(&self, ip: IpAddr) -> Vec<HolderKey> {
        self.ips
            .get(&ip)
            .map(|e| e.holders.as_slice().iter().map(|h| h.to_string()).collect())
            .unwrap_or_default()
    }

    /// True when `ip` is an allocatable address of some pool and nobody holds it.
    pub fn is_free(&self, ip: IpAddr) -> bool {
        !self.ips.contains_key(&ip)
            && self
                .pool_of(ip)
                .and_then(|pi| self.pools[pi].space(IpFamily::of(ip)))
                .is_some_and(|s| s.is_free(to_u128(ip)))
    }

    /// Occupancy of every pool, in configuration order, IPv4 before IPv6.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        let mut out = Vec::new();
        for (pool, state) in self.config.pools.iter().zip(&self.pools) {
            for family in [IpFamily::V4, IpFamily::V6] {
                if let Some(s) = state.space(family) {
                    out.push(PoolStats {
                        pool: pool.name.clone(),
                        family,
                        size: s.size(),
                        in_use: s.in_use(),
                        free: s.size() - s.in_use() as u128,
                    });
                }
            }
        }
        out
    }

    /// Gives `req.key` addresses according to `req`, or says why it cannot.
    ///
    /// Idempotent: a Service whose allocation still satisfies the request gets it back
    /// unchanged (a `PreferDualStack` Service holding one family gains the other when its
    /// pool now has one free). Otherwise a new allocation is computed and committed as a
    /// whole. On error, the previous allocation is kept if it is still permitted for the
    /// new request, and released otherwise; check [`Allocator::get`]. An
    /// [`AllocError::InvalidRequest`] (the request contradicts itself) changes nothing.
    pub fn allocate(&mut self, req: &Request) -> Result<Allocation, AllocError> {
        let norm = normalize(req)?;
        let held = self.services.get(req.key.as_str());
        if let Some(rec) = held
            && self.satisfies(&rec.alloc, req, &norm)
        {
            let mut alloc = rec.alloc.clone();
            self.try_complete(req, &norm, &mut alloc);
            order_by_family(&mut alloc.ips, &norm.wanted);
            let new = Record::new(req, alloc.clone());
            if *rec != new {
                self.commit(req.key.as_str(), new);
            }
            return Ok(alloc);
        }
        match self.plan(req, &norm, held.map(|r| &r.alloc)) {
            Ok(alloc) => {
                self.commit(&req.key, Record::new(req, alloc.clone()));
                Ok(alloc)
            }
            // An inconsistent request is refused as a whole and changes nothing.
            Err(e @ AllocError::InvalidRequest(_)) => Err(e),
            Err(e) => {
                if let Some(rec) = self.services.get(req.key.as_str()) {
                    if self.permits(&rec.alloc, req, &norm).is_ok() {
                        let mut alloc = rec.alloc.clone();
                        order_by_family(&mut alloc.ips, &norm.wanted);
                        self.commit(&req.key, Record::new(req, alloc));
                    } else {
                        self.release(&req.key);
                    }
                }
                Err(e)
            }
        }
    }

    /// Restores an allocation read from a Service's status, without moving anything:
    /// `ips` are taken as they are if they lie in one pool that allows the Service, fit its
    /// families, and can be held alongside their current holders. Requested IPs and pool
    /// are not enforced here; a following [`Allocator::allocate`] moves the Service if
    /// they differ. On error nothing changes. Call it oldest Service first (or use
    /// [`Allocator::rebuild`]) so that the older of two Services claiming an IP keeps it.
    pub fn assign_existing(
        &mut self,
        req: &Request,
        ips: &[IpAddr],
    ) -> Result<Allocation, AllocError> {
        let norm = normalize(req)?;
        let mut ips: Vec<IpAddr> = ips.to_vec();
        ips.dedup();
        let Some(&first) = ips.first() else {
            return Err(AllocError::InvalidRequest(
                "no IP to restore from status".to_string(),
            ));
        };
        let pi = self
            .pool_of(first)
            .ok_or(AllocError::RequestedIpNotInPool {
                ip: first,
                pool: None,
            })?;
        order_by_family(&mut ips, &norm.wanted);
        let alloc = Allocation {
            ips,
            pool: self.config.pools[pi].name.clone(),
        };
        for &ip in &alloc.ips {
            if self.pool_of(ip) != Some(pi) {
                return Err(AllocError::InvalidRequest(format!(
                    "IPs {first} and {ip} lie in different address pools; a Service's IPs come from one pool"
                )));
            }
        }
        self.permits(&alloc, req, &norm)?;
        self.commit(&req.key, Record::new(req, alloc.clone()));
        Ok(alloc)
    }

    /// Restores many Services from status, oldest first (by `created`, then key), so the
    /// outcome does not depend on the order of `items`. Returns the Services that could
    /// not be restored, with the reason; the caller allocates them afresh.
    ///
    /// Items may be owned (`(Request, Vec<IpAddr>)`) or borrowed (`(&Request, &[IpAddr])`).
    pub fn rebuild<I, R, V>(&mut self, items: I) -> Vec<(HolderKey, AllocError)>
    where
        I: IntoIterator<Item = (R, V)>,
        R: Borrow<Request>,
        V: AsRef<[IpAddr]>,
    {
        let items: Vec<(R, V)> = items.into_iter().collect();
        // Sort indices rather than the (large) requests themselves.
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (items[a].0.borrow(), items[b].0.borrow());
            (a.created, &a.key).cmp(&(b.created, &b.key))
        });
        self.services.reserve(items.len());
        self.ips.reserve(items.len());
        let mut failed = Vec::new();
        for i in order {
            let (req, ips) = &items[i];
            let req = req.borrow();
            if let Err(e) = self.assign_existing(req, ips.as_ref()) {
                failed.push((req.key.clone(), e));
            }
        }
        failed
    }

    /// Frees everything `key` holds and returns it.
    pub fn release(&mut self, key: &str) -> Option<Allocation> {
        self.detach(key).map(|(_, rec)| rec.alloc)
    }

    /// Switches to a new configuration. Every held IP that still lies in a pool allowing
    /// its Service (and in the Service's requested pool, if any; not a skipped `.0`/`.255`)
    /// is kept, with its allocation's `pool` renamed if the IP now lies in a differently
    /// named pool. The IPs that are no longer valid are released and returned per Service,
    /// sorted by key, with the pool they were in; the caller should call
    /// [`Allocator::allocate`] for each of these Services (it keeps what remains and fills
    /// the gap).
    pub fn set_config(&mut self, config: Config) -> Vec<(HolderKey, Allocation)> {
        let old = std::mem::take(&mut self.services);
        *self = Allocator::new(config);
        let mut old: Vec<(Arc<str>, Record)> = old.into_iter().collect();
        old.sort_by(|a, b| a.0.cmp(&b.0));
        let mut lost_all = Vec::new();
        for (key, mut rec) in old {
            let ns = namespace_of(&key);
            let mut pool = None;
            let mut kept = Vec::new();
            let mut lost = Vec::new();
            for &ip in &rec.alloc.ips {
                let ok = self.pool_of(ip).filter(|&pi| {
                    let p = &self.config.pools[pi];
                    pool.is_none_or(|q| q == pi)
                        && p.allows(ns, &rec.labels)
                        && rec.requested_pool.as_ref().is_none_or(|r| *r == p.name)
                        && self.pools[pi]
                            .space(IpFamily::of(ip))
                            .is_some_and(|s| s.is_valid(to_u128(ip)))
                });
                match ok {
                    Some(pi) => {
                        pool = Some(pi);
                        kept.push(ip);
                    }
                    None => lost.push(ip),
                }
            }
            if !lost.is_empty() {
                lost_all.push((
                    key.to_string(),
                    Allocation {
                        ips: lost,
                        pool: rec.alloc.pool.clone(),
                    },
                ));
            }
            if let Some(pi) = pool {
                rec.alloc = Allocation {
                    ips: kept,
                    pool: self.config.pools[pi].name.clone(),
                };
                self.attach(key, rec, pi);
            }
        }
        lost_all
    }

    // ---- internals -------------------------------------------------------------------

    /// The pool whose ranges contain `ip` (pools are disjoint, so at most one).
    fn pool_of(&self, ip: IpAddr) -> Option<usize> {
        self.config.pools.iter().position(|p| p.contains(ip))
    }

    /// Ok when the pool lets a Service of `namespace` with `labels` use it.
    fn pool_allows(
        &self,
        pi: usize,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<(), AllocError> {
        let pool = &self.config.pools[pi];
        if let Some(ns) = &pool.namespaces
            && !ns.iter().any(|n| n == namespace)
        {
            return Err(AllocError::PoolNotAllowed {
                pool: pool.name.clone(),
                reason: format!(
                    "namespace \"{namespace}\" is not in the pool's namespaces [{}]",
                    ns.join(", ")
                ),
            });
        }
        if let Some(sel) = &pool.service_selector
            && !sel.matches(labels)
        {
            return Err(AllocError::PoolNotAllowed {
                pool: pool.name.clone(),
                reason: "the Service's labels do not match the pool's serviceSelector".to_string(),
            });
        }
        Ok(())
    }

    /// Ok when a Service `me` with `share` may hold `ip` next to its current holders.
    fn can_share(
        &self,
        ip: IpAddr,
        me: &str,
        share: Option<ShareView<'_>>,
    ) -> Result<(), AllocError> {
        let Some(entry) = self.ips.get(&ip) else {
            return Ok(());
        };
        for holder in entry.holders.as_slice().iter().filter(|h| &***h != me) {
            let holder_share = self.services[holder].share.as_deref().map(Share::view);
            let Some(mine) = share else {
                return Err(AllocError::IpInUse {
                    ip,
                    holder: holder.to_string(),
                });
            };
            let Some(theirs) = holder_share.filter(|t| t.key == mine.key) else {
                return Err(AllocError::SharingKeyMismatch {
                    ip,
                    holder: holder.to_string(),
                });
            };
            if let Some(port) = mine.ports.iter().find(|p| theirs.ports.contains(p)) {
                return Err(AllocError::PortConflict {
                    ip,
                    port: *port,
                    holder: holder.to_string(),
                });
            }
            if (mine.local || theirs.local) && mine.selector != theirs.selector {
                return Err(AllocError::SelectorMismatch {
                    ip,
                    holder: holder.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Ok when `ip` (known to lie in pool `pi`) is allocatable, i.e. not skipped by
    /// `avoidBuggyIPs`.
    fn check_valid(&self, pi: usize, ip: IpAddr) -> Result<(), AllocError> {
        let valid = self.pools[pi]
            .space(IpFamily::of(ip))
            .is_some_and(|s| s.is_valid(to_u128(ip)));
        if valid {
            Ok(())
        } else {
            Err(AllocError::BuggyIp {
                ip,
                pool: self.config.pools[pi].name.clone(),
            })
        }
    }

    /// Ok when `alloc` may be held by the Service of `req`: its pool exists and allows the
    /// Service, each IP is allocatable and of a wanted family (one per family), and
    /// sharing holds with the request's key, ports and selector. Wishes (requested IPs and
    /// pool, both families for dual-stack) are not checked.
    fn permits(&self, alloc: &Allocation, req: &Request, norm: &Norm) -> Result<(), AllocError> {
        let pi = *self
            .by_name
            .get(&alloc.pool)
            .ok_or_else(|| AllocError::UnknownPool {
                pool: alloc.pool.clone(),
            })?;
        self.pool_allows(pi, &req.namespace, &req.labels)?;
        let mut seen = Vec::with_capacity(2);
        for &ip in &alloc.ips {
            let family = IpFamily::of(ip);
            if !norm.wanted.contains(&family) || seen.contains(&family) {
                return Err(AllocError::InvalidRequest(format!(
                    "IP {ip} does not fit the Service's IP families ({})",
                    families_text(&norm.wanted)
                )));
            }
            seen.push(family);
            self.check_valid(pi, ip)?;
            self.can_share(ip, &req.key, share_of(req))?;
        }
        Ok(())
    }

    /// True when `alloc` is permitted and also fulfils every wish of `req`.
    fn satisfies(&self, alloc: &Allocation, req: &Request, norm: &Norm) -> bool {
        let families_ok = match req.family_policy {
            FamilyPolicy::SingleStack | FamilyPolicy::RequireDualStack => {
                alloc.ips.len() == norm.wanted.len()
            }
            FamilyPolicy::PreferDualStack => !alloc.ips.is_empty(),
        };
        families_ok
            && req.requested_pool.as_ref().is_none_or(|p| *p == alloc.pool)
            && norm.requested.iter().all(|ip| alloc.ips.contains(ip))
            && self.permits(alloc, req, norm).is_ok()
    }

    /// For a `PreferDualStack` Service holding one family, adds the other from the same
    /// pool when possible.
    fn try_complete(&self, req: &Request, norm: &Norm, alloc: &mut Allocation) {
        if req.family_policy != FamilyPolicy::PreferDualStack
            || alloc.ips.len() >= norm.wanted.len()
        {
            return;
        }
        let Some(&pi) = self.by_name.get(&alloc.pool) else {
            return;
        };
        for &family in norm.wanted.iter() {
            if alloc.ips.iter().all(|ip| IpFamily::of(*ip) != family)
                && let Ok(ip) = self.pick(pi, family, req, norm, None)
            {
                alloc.ips.push(ip);
            }
        }
    }

    /// Candidate pools for `req`, in the order they are tried.
    fn candidates(
        &self,
        req: &Request,
        norm: &Norm,
        held: Option<&Allocation>,
    ) -> Result<Vec<usize>, AllocError> {
        let named = match &req.requested_pool {
            Some(name) => Some(
                *self
                    .by_name
                    .get(name)
                    .ok_or_else(|| AllocError::UnknownPool { pool: name.clone() })?,
            ),
            None => None,
        };
        if let Some(&first) = norm.requested.first() {
            let mut pool = None;
            for &ip in norm.requested.iter() {
                let pi = self.pool_of(ip).filter(|pi| named.is_none_or(|n| n == *pi));
                let Some(pi) = pi else {
                    return Err(AllocError::RequestedIpNotInPool {
                        ip,
                        pool: req.requested_pool.clone(),
                    });
                };
                if pool.is_some_and(|p| p != pi) {
                    return Err(AllocError::InvalidRequest(format!(
                        "requested IPs {first} and {ip} lie in different address pools; a Service's IPs come from one pool"
                    )));
                }
                pool = Some(pi);
            }
            let pi = pool.expect("at least one requested IP");
            self.pool_allows(pi, &req.namespace, &req.labels)?;
            return Ok(vec![pi]);
        }
        if let Some(pi) = named {
            self.pool_allows(pi, &req.namespace, &req.labels)?;
            return Ok(vec![pi]);
        }
        let mut cands: Vec<usize> = (0..self.config.pools.len())
            .filter(|&pi| {
                self.config.pools[pi].auto_assign
                    && self.pool_allows(pi, &req.namespace, &req.labels).is_ok()
            })
            .collect();
        let held = held.and_then(|a| self.by_name.get(&a.pool).copied());
        if let Some(h) = held
            && let Some(pos) = cands.iter().position(|&c| c == h)
        {
            cands.remove(pos);
            cands.insert(0, h);
        }
        Ok(cands)
    }

    /// One address of `family` in pool `pi` for `req` (see the module rules).
    /// `held` is the Service's current allocation, whose IP in this pool is kept if possible.
    fn pick(
        &self,
        pi: usize,
        family: IpFamily,
        req: &Request,
        norm: &Norm,
        held: Option<&Allocation>,
    ) -> Result<IpAddr, AllocError> {
        let share = share_of(req);
        if let Some(ip) = norm.requested(family) {
            self.check_valid(pi, ip)?;
            self.can_share(ip, &req.key, share)?;
            return Ok(ip);
        }
        let pool = &self.config.pools[pi];
        if let Some(held) = held.filter(|h| h.pool == pool.name)
            && let Some(&ip) = held.ips.iter().find(|ip| IpFamily::of(**ip) == family)
            && self.can_share(ip, &req.key, share).is_ok()
        {
            return Ok(ip);
        }
        if let Some(share) = share
            && let Some(ips) = self.shared.get(share.key)
        {
            let found = ips.iter().copied().find(|&ip| {
                IpFamily::of(ip) == family
                    && self.ips.get(&ip).is_some_and(|e| e.pool == pi)
                    && self.can_share(ip, &req.key, Some(share)).is_ok()
            });
            if let Some(ip) = found {
                return Ok(ip);
            }
        }
        self.pools[pi]
            .space(family)
            .and_then(Space::lowest_free)
            .map(|x| from_u128(family, x))
            .ok_or_else(|| AllocError::PoolExhausted {
                pool: pool.name.clone(),
                family,
            })
    }

    /// The allocation `req` should get now, computed without changing anything.
    fn plan(
        &self,
        req: &Request,
        norm: &Norm,
        held: Option<&Allocation>,
    ) -> Result<Allocation, AllocError> {
        let cands = self.candidates(req, norm, held)?;
        let attempts: Two<Two<IpFamily>> = match (req.family_policy, &*norm.wanted) {
            // The third attempt (secondary family alone) is tried by the loop below.
            (FamilyPolicy::PreferDualStack, &[p, s]) => Two::pair(Two::pair(p, s), Two::one(p)),
            _ => Two::one(norm.wanted),
        };
        let last = match (req.family_policy, &*norm.wanted) {
            (FamilyPolicy::PreferDualStack, &[_, s]) => Some(Two::one(s)),
            _ => None,
        };
        let mut first_err = None;
        let mut missing = None;
        for families in attempts.iter().copied().chain(last) {
            // Every attempt must include the families the Service asked an IP of.
            if norm
                .requested
                .iter()
                .any(|ip| !families.contains(&IpFamily::of(*ip)))
            {
                continue;
            }
            'pools: for &pi in &cands {
                let mut ips = Vec::with_capacity(families.len());
                for &family in families.iter() {
                    if self.pools[pi].space(family).is_none() {
                        missing.get_or_insert(family);
                        continue 'pools;
                    }
                    match self.pick(pi, family, req, norm, held) {
                        Ok(ip) => ips.push(ip),
                        Err(e) => {
                            first_err.get_or_insert(e);
                            continue 'pools;
                        }
                    }
                }
                return Ok(Allocation {
                    ips,
                    pool: self.config.pools[pi].name.clone(),
                });
            }
        }
        Err(first_err.unwrap_or(AllocError::NoPoolForFamily {
            family: missing.unwrap_or(norm.wanted[0]),
        }))
    }

    /// Replaces whatever `key` holds by `rec`.
    fn commit(&mut self, key: &str, rec: Record) {
        let key = match self.detach(key) {
            Some((k, _)) => k,
            None => Arc::from(key),
        };
        let pi = self.by_name[&rec.alloc.pool];
        self.attach(key, rec, pi);
    }

    /// Records `rec` for `key` (which holds nothing), taking its IPs out of the free sets.
    /// The caller has checked that every IP is free or shareable.
    /// `pi` is the index of the allocation's pool.
    fn attach(&mut self, key: Arc<str>, rec: Record, pi: usize) {
        for &ip in &rec.alloc.ips {
            match self.ips.entry(ip) {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    e.get_mut().holders.insert(&key)
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    let taken = self.pools[pi]
                        .space_mut(IpFamily::of(ip))
                        .is_some_and(|s| s.take(to_u128(ip)));
                    debug_assert!(taken, "{ip} was checked to be free");
                    v.insert(IpEntry {
                        pool: pi,
                        holders: Holders::One(key.clone()),
                    });
                }
            }
            if let Some(share) = &rec.share {
                self.shared.entry(share.key.clone()).or_default().insert(ip);
            }
        }
        self.services.insert(key, rec);
    }

    /// Removes `key` and returns its IPs to the free sets when nobody else holds them.
    fn detach(&mut self, key: &str) -> Option<(Arc<str>, Record)> {
        let (key, rec) = self.services.remove_entry(key)?;
        for &ip in &rec.alloc.ips {
            let Some(entry) = self.ips.get_mut(&ip) else {
                continue;
            };
            if entry.holders.remove(&key) {
                let pi = entry.pool;
                self.ips.remove(&ip);
                if let Some(s) = self.pools[pi].space_mut(IpFamily::of(ip)) {
                    s.put(to_u128(ip));
                }
                if let Some(share) = &rec.share
                    && let Some(set) = self.shared.get_mut(&share.key)
                {
                    set.remove(&ip);
                    if set.is_empty() {
                        self.shared.remove(&share.key);
                    }
                }
            }
        }
        Some((key, rec))
    }
}

/// Puts `ips` in the order of `wanted` (primary family first).
fn order_by_family(ips: &mut [IpAddr], wanted: &[IpFamily]) {
    ips.sort_by_key(|ip| wanted.iter().position(|f| *f == IpFamily::of(*ip)));
}

fn families_text(families: &[IpFamily]) -> String {
    families
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks the request's own consistency and works out the wanted families.
fn normalize(req: &Request) -> Result<Norm, AllocError> {
    match req.key.split_once('/') {
        Some((ns, name)) if ns == req.namespace && !name.is_empty() && !ns.is_empty() => {}
        _ => {
            return Err(AllocError::InvalidRequest(format!(
                "Service key \"{}\" is not \"{}/<name>\"",
                req.key, req.namespace
            )));
        }
    }
    let families = match req.families.as_slice() {
        [] => Two::one(IpFamily::V4),
        &[a] => Two::one(a),
        &[a, b] if a != b => Two::pair(a, b),
        more => {
            return Err(AllocError::InvalidRequest(format!(
                "spec.ipFamilies must list each family at most once, got [{}]",
                families_text(more)
            )));
        }
    };
    let wanted = match req.family_policy {
        FamilyPolicy::SingleStack => Two::one(families[0]),
        FamilyPolicy::PreferDualStack => families,
        FamilyPolicy::RequireDualStack => Two::pair(families[0], families[0].other()),
    };
    let mut requested = Two::empty(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    for &ip in &req.requested_ips {
        let family = IpFamily::of(ip);
        if let Some(other) = requested.iter().find(|r| IpFamily::of(**r) == family) {
            if *other == ip {
                continue;
            }
            return Err(AllocError::InvalidRequest(format!(
                "two {family} addresses requested ({other} and {ip}); at most one per family"
            )));
        }
        if !wanted.contains(&family) {
            return Err(AllocError::InvalidRequest(format!(
                "requested IP {ip} is {family}, but this Service only gets {}",
                families_text(&wanted)
            )));
        }
        requested.push(ip);
    }
    order_by_family(&mut requested.items[..requested.len], &wanted);
    Ok(Norm { wanted, requested })
}
