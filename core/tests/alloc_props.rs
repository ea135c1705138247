//! Property tests of the allocator's invariants (issue 4, section 4):
//! - no IP is held by two Services unless they share it validly;
//! - every held IP lies in a pool that allows its Service;
//! - a rebuild from status reproduces the same assignments;
//! - release then allocate can reuse the IP;
//! - random sequences of allocate / release / config change never break the first two,
//!   a config change keeps exactly the IPs that stay valid, and equal inputs give equal
//!   outputs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ferrolb_config::{Config, IpRange, LabelSelector, Pool};
use ferrolb_core::alloc::{
    AllocError, Allocation, Allocator, FamilyPolicy, IpFamily, Port, Protocol, Request,
};
use proptest::prelude::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mk_pool(name: &str, ranges: &[(&str, &str)]) -> Pool {
    Pool {
        name: name.to_string(),
        ranges: ranges
            .iter()
            .map(|(a, b)| IpRange {
                start: ip(a),
                end: ip(b),
            })
            .collect(),
        auto_assign: true,
        avoid_buggy_ips: false,
        namespaces: None,
        service_selector: None,
        labels: Default::default(),
    }
}

fn edge_selector() -> LabelSelector {
    LabelSelector {
        match_labels: [("tier".to_string(), "edge".to_string())].into(),
        ..LabelSelector::default()
    }
}

/// Small pools so that exhaustion, sharing and restrictions all happen often.
fn configs() -> Vec<Config> {
    let mk = |pools| Config {
        pools,
        ..Config::default()
    };
    // 0: plain, a buggy-avoiding dual pool, a restricted manual pool, an IPv6 pool.
    let a = mk_pool("a", &[("192.0.2.0", "192.0.2.3")]);
    let mut b = mk_pool(
        "b",
        &[
            ("198.51.100.254", "198.51.101.1"),
            ("2001:db8::1", "2001:db8::2"),
        ],
    );
    b.avoid_buggy_ips = true;
    let mut c = mk_pool("c", &[("203.0.113.0", "203.0.113.3")]);
    c.auto_assign = false;
    c.namespaces = Some(vec!["ns0".into()]);
    let v6 = mk_pool("v6", &[("2001:db8:1::", "2001:db8:1::3")]);
    let cfg0 = mk(vec![a, b.clone(), c, v6]);
    // 1: a shrinks, b stops avoiding, c becomes selector-restricted, v6 renamed.
    let a1 = mk_pool("a", &[("192.0.2.1", "192.0.2.3")]);
    let mut b1 = b.clone();
    b1.avoid_buggy_ips = false;
    let mut c1 = mk_pool("c", &[("203.0.113.0", "203.0.113.3")]);
    c1.service_selector = Some(edge_selector());
    let v61 = mk_pool("six", &[("2001:db8:1::", "2001:db8:1::3")]);
    let cfg1 = mk(vec![v61, c1, a1, b1]);
    // 2: a restricted to ns1 and grown, b gone, c merged into a dual pool.
    let mut a2 = mk_pool("a", &[("192.0.2.0", "192.0.2.7")]);
    a2.namespaces = Some(vec!["ns1".into()]);
    let d2 = mk_pool(
        "c",
        &[
            ("203.0.113.0", "203.0.113.3"),
            ("2001:db8:1::", "2001:db8:1::3"),
        ],
    );
    let cfg2 = mk(vec![a2, d2]);
    vec![cfg0, cfg1, cfg2]
}

/// Addresses worth requesting: in pools, buggy ones, and outside every pool.
const CANDIDATE_IPS: &[&str] = &[
    "192.0.2.0",
    "192.0.2.2",
    "198.51.100.255",
    "198.51.101.1",
    "203.0.113.1",
    "2001:db8::2",
    "2001:db8:1::1",
    "198.51.100.7",
];

const PORTS: &[Port] = &[
    Port {
        protocol: Protocol::Tcp,
        port: 80,
    },
    Port {
        protocol: Protocol::Tcp,
        port: 443,
    },
    Port {
        protocol: Protocol::Udp,
        port: 53,
    },
];

fn request_strategy() -> impl Strategy<Value = Request> {
    let families = prop_oneof![
        Just(vec![]),
        Just(vec![IpFamily::V6]),
        Just(vec![IpFamily::V4, IpFamily::V6]),
        Just(vec![IpFamily::V6, IpFamily::V4]),
    ];
    let policy = prop_oneof![
        3 => Just(FamilyPolicy::SingleStack),
        1 => Just(FamilyPolicy::PreferDualStack),
        1 => Just(FamilyPolicy::RequireDualStack),
    ];
    let requested = prop_oneof![
        4 => Just(vec![]),
        1 => (0..CANDIDATE_IPS.len()).prop_map(|i| vec![ip(CANDIDATE_IPS[i])]),
    ];
    let pool = prop_oneof![
        4 => Just(None),
        1 => prop::sample::select(vec!["a", "b", "c", "v6", "nope"]).prop_map(|p| Some(p.to_string())),
    ];
    let sharing = prop_oneof![
        2 => Just(None),
        1 => Just(Some("k1".to_string())),
        1 => Just(Some("k2".to_string())),
    ];
    (
        (0..2u8, 0..6u8, any::<bool>(), families, policy),
        (
            requested,
            pool,
            sharing,
            prop::sample::subsequence(PORTS.to_vec(), 1..=2),
        ),
        (any::<bool>(), 0..2u8, 0..3i64),
    )
        .prop_map(
            |(
                (ns, name, edge, families, family_policy),
                (requested_ips, requested_pool, sharing_key, ports),
                (local, sel, created),
            )| {
                let namespace = format!("ns{ns}");
                let mut labels = BTreeMap::new();
                if edge {
                    labels.insert("tier".to_string(), "edge".to_string());
                }
                Request {
                    key: format!("{namespace}/s{name}"),
                    namespace,
                    labels,
                    families,
                    family_policy,
                    requested_ips,
                    requested_pool,
                    sharing_key,
                    ports,
                    local_traffic_policy: local,
                    selector: [("app".to_string(), format!("app{sel}"))].into(),
                    created,
                }
            },
        )
}

#[derive(Debug, Clone)]
enum Op {
    Allocate(Box<Request>),
    Release(u8, u8),
    SetConfig(usize),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => request_strategy().prop_map(|r| Op::Allocate(Box::new(r))),
        2 => (0..2u8, 0..6u8).prop_map(|(n, s)| Op::Release(n, s)),
        1 => (0..3usize).prop_map(Op::SetConfig),
    ]
}

fn all_keys() -> impl Iterator<Item = String> {
    (0..2).flat_map(|n| (0..6).map(move |s| format!("ns{n}/s{s}")))
}

fn buggy(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v) if matches!(v.octets()[3], 0 | 255))
}

/// Whether `ip` may be held by the Service of `req` under `config`, judged independently
/// of the allocator: the pool containing it allows the Service, is the requested one if
/// any, and does not skip the address.
fn valid_under(config: &Config, req: &Request, ip: IpAddr) -> Option<String> {
    let pool = config.pools.iter().find(|p| p.contains(ip))?;
    (pool.allows(&req.namespace, &req.labels)
        && req.requested_pool.as_ref().is_none_or(|r| *r == pool.name)
        && !(pool.avoid_buggy_ips && buggy(ip)))
    .then(|| pool.name.clone())
}

/// Two holders of one IP must share validly.
fn may_share(a: &Request, b: &Request) -> bool {
    a.sharing_key.is_some()
        && a.sharing_key == b.sharing_key
        && a.ports.iter().all(|p| !b.ports.contains(p))
        && (!(a.local_traffic_policy || b.local_traffic_policy) || a.selector == b.selector)
}

/// The first two invariants, plus internal consistency of the views.
fn check_invariants(al: &Allocator, config: &Config, reqs: &HashMap<String, Request>) {
    let mut holders_seen: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
    for key in all_keys() {
        let Some(a) = al.get(&key) else {
            continue;
        };
        let req = &reqs[&key];
        assert!(!a.ips.is_empty(), "{key} holds an empty allocation");
        let families: BTreeSet<_> = a.ips.iter().map(|i| IpFamily::of(*i)).collect();
        assert_eq!(
            families.len(),
            a.ips.len(),
            "{key}: two IPs of one family: {a:?}"
        );
        let pool = config
            .pools
            .iter()
            .find(|p| p.name == a.pool)
            .unwrap_or_else(|| panic!("{key}: pool {} not in config", a.pool));
        for &ip in &a.ips {
            assert!(pool.contains(ip), "{key}: {ip} not in pool {}", pool.name);
            assert!(
                pool.allows(&req.namespace, &req.labels),
                "{key}: pool {} does not allow it",
                pool.name
            );
            assert!(!(pool.avoid_buggy_ips && buggy(ip)), "{key}: buggy {ip}");
            assert!(!al.is_free(ip), "{key}: held {ip} reported free");
            assert!(
                al.holders(ip).contains(&key),
                "{key}: not among holders of {ip}"
            );
            holders_seen.entry(ip).or_default().push(key.clone());
        }
    }
    for (ip, holders) in &holders_seen {
        assert_eq!(&al.holders(*ip), holders, "holders of {ip}");
        for (i, a) in holders.iter().enumerate() {
            for b in &holders[i + 1..] {
                assert!(
                    may_share(&reqs[a], &reqs[b]),
                    "{ip} held by {a} and {b} which may not share: {:?} / {:?}",
                    reqs[a],
                    reqs[b]
                );
            }
        }
    }
    // Occupancy agrees with the holders.
    for s in al.pool_stats() {
        let used = holders_seen
            .keys()
            .filter(|ip| {
                IpFamily::of(**ip) == s.family
                    && config
                        .pools
                        .iter()
                        .any(|p| p.name == s.pool && p.contains(**ip))
            })
            .count() as u64;
        assert_eq!(s.in_use, used, "in_use of {} {}", s.pool, s.family);
        assert_eq!(s.free, s.size - used as u128);
    }
}

/// Runs `ops`, checking every invariant after each step; returns the results for the
/// determinism comparison, the final allocator, config and requests.
fn run(ops: &[Op]) -> (Vec<String>, Allocator, Config, HashMap<String, Request>) {
    let cfgs = configs();
    let mut config = cfgs[0].clone();
    let mut al = Allocator::new(config.clone());
    let mut reqs: HashMap<String, Request> = HashMap::new();
    let mut log = Vec::new();
    for op in ops {
        match op {
            Op::Allocate(req) => {
                let before = al.get(&req.key).cloned();
                let res = al.allocate(req);
                match &res {
                    // Refused as a whole: nothing changes, the stored request included.
                    Err(AllocError::InvalidRequest(_)) => {
                        assert_eq!(al.get(&req.key), before.as_ref());
                    }
                    _ => {
                        reqs.insert(req.key.clone(), (**req).clone());
                    }
                }
                match &res {
                    Ok(a) => assert_eq!(al.get(&req.key), Some(a)),
                    // On error: the previous addresses kept (reordered for the new
                    // request's primary family at most), or nothing.
                    Err(_) => {
                        let sorted = |a: Option<Allocation>| {
                            a.map(|mut a| {
                                a.ips.sort();
                                a
                            })
                        };
                        let after = al.get(&req.key).cloned();
                        assert!(
                            after.is_none() || sorted(after.clone()) == sorted(before.clone()),
                            "{before:?} -> {after:?}"
                        );
                    }
                }
                log.push(format!("{res:?}"));
            }
            Op::Release(n, s) => {
                let key = format!("ns{n}/s{s}");
                let before = al.get(&key).cloned();
                let released = al.release(&key);
                assert_eq!(released, before);
                for ip in released.iter().flat_map(|a| &a.ips) {
                    assert!(!al.holders(*ip).contains(&key));
                    assert_eq!(al.is_free(*ip), al.holders(*ip).is_empty(), "{ip}");
                }
                log.push(format!("{released:?}"));
            }
            Op::SetConfig(i) => {
                let before: BTreeMap<String, Allocation> = all_keys()
                    .filter_map(|k| al.get(&k).map(|a| (k, a.clone())))
                    .collect();
                config = cfgs[*i].clone();
                let lost = al.set_config(config.clone());
                let lost_map: BTreeMap<_, _> = lost.iter().cloned().collect();
                assert_eq!(lost_map.len(), lost.len(), "one entry per Service");
                for (key, old) in &before {
                    let kept = al.get(key).map(|a| a.ips.clone()).unwrap_or_default();
                    let gone = lost_map.get(key).map(|a| a.ips.clone()).unwrap_or_default();
                    let mut union: Vec<_> = kept.iter().chain(&gone).copied().collect();
                    union.sort();
                    let mut old_ips = old.ips.clone();
                    old_ips.sort();
                    assert_eq!(union, old_ips, "{key}: kept + lost = before");
                    let req = &reqs[key];
                    for ip in &kept {
                        assert!(
                            valid_under(&config, req, *ip).is_some(),
                            "{key} kept invalid {ip}"
                        );
                    }
                    // A lost IP is invalid, or valid only in another pool than the kept one.
                    for ip in &gone {
                        match valid_under(&config, req, *ip) {
                            None => {}
                            Some(p) => assert!(
                                al.get(key).is_some_and(|a| a.pool != p),
                                "{key} lost valid {ip}"
                            ),
                        }
                    }
                }
                log.push(format!("{lost:?}"));
            }
        }
        check_invariants(&al, &config, &reqs);
    }
    (log, al, config, reqs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Invariants hold after every step of any sequence, and equal inputs give equal outputs.
    #[test]
    fn random_sequences_keep_the_invariants(ops in prop::collection::vec(op_strategy(), 1..40)) {
        let (log1, ..) = run(&ops);
        let (log2, ..) = run(&ops);
        prop_assert_eq!(log1, log2);
    }

    /// Rebuilding a fresh allocator from what status would show reproduces every
    /// assignment, in whatever order the Services are listed.
    #[test]
    fn rebuild_from_status_reproduces(ops in prop::collection::vec(op_strategy(), 1..40), rotate in 0usize..12) {
        let (_, al, config, reqs) = run(&ops);
        let mut status: Vec<(Request, Vec<IpAddr>)> = all_keys()
            .filter_map(|k| al.get(&k).map(|a| (reqs[&k].clone(), a.ips.clone())))
            .collect();
        if !status.is_empty() {
            let n = rotate % status.len();
            status.rotate_left(n);
        }
        let mut fresh = Allocator::new(config.clone());
        let failed: Vec<(String, AllocError)> = fresh.rebuild(status);
        prop_assert!(failed.is_empty(), "{:?}", failed);
        for k in all_keys() {
            prop_assert_eq!(fresh.get(&k), al.get(&k), "{}", k);
        }
        prop_assert_eq!(fresh.pool_stats(), al.pool_stats());
        check_invariants(&fresh, &config, &reqs);
    }

    /// After a release the IPs are free (unless still shared) and the same Service can get
    /// exactly them back; a new Service released and allocated again gets the same IPs.
    #[test]
    fn release_then_allocate_reuses(ops in prop::collection::vec(op_strategy(), 1..40), pick in 0usize..12) {
        let (_, mut al, _, reqs) = run(&ops);
        let held: Vec<String> = all_keys().filter(|k| al.get(k).is_some()).collect();
        if let Some(key) = held.get(pick % held.len().max(1)) {
            let old = al.release(key).unwrap();
            for ip in &old.ips {
                prop_assert_eq!(al.is_free(*ip), al.holders(*ip).is_empty());
            }
            // Ask for exactly the released addresses (the stored request may hold wishes
            // that its allocation did not fulfil, e.g. a second family).
            let families: Vec<IpFamily> = old.ips.iter().map(|i| IpFamily::of(*i)).collect();
            let family_policy = if families.len() == 2 {
                FamilyPolicy::RequireDualStack
            } else {
                FamilyPolicy::SingleStack
            };
            let again = Request {
                requested_ips: old.ips.clone(),
                requested_pool: Some(old.pool.clone()),
                families,
                family_policy,
                ..reqs[key].clone()
            };
            let got = al.allocate(&again);
            prop_assert_eq!(got, Ok(old));
        }
        let newcomer = Request {
            key: "fresh/svc".into(),
            namespace: "fresh".into(),
            ports: vec![PORTS[0]],
            ..Request::default()
        };
        if let Ok(first) = al.allocate(&newcomer) {
            al.release(&newcomer.key);
            prop_assert_eq!(al.allocate(&newcomer), Ok(first));
        }
    }
}
