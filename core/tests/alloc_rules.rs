//! One test per allocator rule (issue 4, section 3). Each asserts the behaviour the
//! rule demands, so removing the rule from the allocator makes its test fail.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_config::{Config, IpRange, LabelSelector, Pool};
use ferrolb_core::alloc::{
    AllocError, Allocation, Allocator, FamilyPolicy, IpFamily, Port, Protocol, Request,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// "a/len", "a-b" or "a" as an inclusive range.
fn range(s: &str) -> IpRange {
    if let Some((a, b)) = s.split_once('-') {
        return IpRange {
            start: ip(a),
            end: ip(b),
        };
    }
    let Some((a, len)) = s.split_once('/') else {
        return IpRange {
            start: ip(s),
            end: ip(s),
        };
    };
    let len: u32 = len.parse().unwrap();
    match ip(a) {
        IpAddr::V4(v) => {
            let host = if len == 0 { u32::MAX } else { u32::MAX >> len };
            let start = u32::from(v) & !host;
            IpRange {
                start: IpAddr::V4(start.into()),
                end: IpAddr::V4((start | host).into()),
            }
        }
        IpAddr::V6(v) => {
            let host = if len == 0 {
                u128::MAX
            } else {
                u128::MAX >> len
            };
            let start = u128::from(v) & !host;
            IpRange {
                start: IpAddr::V6(start.into()),
                end: IpAddr::V6((start | host).into()),
            }
        }
    }
}

fn mk_pool(name: &str, ranges: &[&str]) -> Pool {
    let mut ranges: Vec<IpRange> = ranges.iter().map(|r| range(r)).collect();
    ranges.sort();
    Pool {
        name: name.to_string(),
        ranges,
        auto_assign: true,
        avoid_buggy_ips: false,
        namespaces: None,
        service_selector: None,
        labels: Default::default(),
    }
}

fn mk_config(pools: Vec<Pool>) -> Config {
    Config {
        pools,
        ..Config::default()
    }
}

/// A single-stack IPv4 Service `key` ("ns/name") on TCP/80.
fn mk_service(key: &str) -> Request {
    let (ns, _) = key.split_once('/').unwrap();
    Request {
        key: key.to_string(),
        namespace: ns.to_string(),
        ports: vec![tcp(80)],
        ..Request::default()
    }
}

fn tcp(port: u16) -> Port {
    Port {
        protocol: Protocol::Tcp,
        port,
    }
}

fn udp(port: u16) -> Port {
    Port {
        protocol: Protocol::Udp,
        port,
    }
}

fn shared(key: &str, sharing: &str, ports: &[Port]) -> Request {
    Request {
        sharing_key: Some(sharing.to_string()),
        ports: ports.to_vec(),
        ..mk_service(key)
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ips(a: &Allocation) -> Vec<String> {
    a.ips.iter().map(|i| i.to_string()).collect()
}

fn alloc_ips(al: &mut Allocator, req: &Request) -> Vec<String> {
    ips(&al
        .allocate(req)
        .unwrap_or_else(|e| panic!("{}: {e}", req.key)))
}

// ---- requested IPs ---------------------------------------------------------------------

#[test]
fn requested_ip_is_honoured_when_free() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"])]));
    let req = Request {
        requested_ips: vec![ip("192.0.2.9")],
        ..mk_service("default/a")
    };
    assert_eq!(alloc_ips(&mut al, &req), vec!["192.0.2.9"]);
    assert_eq!(al.holders(ip("192.0.2.9")), vec!["default/a"]);
    // The next automatic allocation still starts at the bottom.
    assert_eq!(
        alloc_ips(&mut al, &mk_service("default/b")),
        vec!["192.0.2.0"]
    );
}

#[test]
fn requested_ip_outside_every_pool_or_the_requested_pool_fails() {
    let mut al = Allocator::new(mk_config(vec![
        mk_pool("a", &["192.0.2.0/28"]),
        mk_pool("b", &["198.51.100.0/28"]),
    ]));
    let req = Request {
        requested_ips: vec![ip("203.0.113.1")],
        ..mk_service("default/a")
    };
    let e = al.allocate(&req).unwrap_err();
    assert_eq!(
        e,
        AllocError::RequestedIpNotInPool {
            ip: ip("203.0.113.1"),
            pool: None
        }
    );
    assert_eq!(e.to_string(), "IP 203.0.113.1 is not in any address pool");
    assert_eq!(e.reason(), "RequestedIpNotInPool");
    let req = Request {
        requested_ips: vec![ip("198.51.100.1")],
        requested_pool: Some("a".into()),
        ..mk_service("default/a")
    };
    assert_eq!(
        al.allocate(&req).unwrap_err().to_string(),
        "IP 198.51.100.1 is not in address pool \"a\""
    );
    assert!(al.get("default/a").is_none());
}

#[test]
fn requested_ip_held_by_another_service_fails_with_the_holder() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"])]));
    alloc_ips(&mut al, &mk_service("default/first"));
    let req = Request {
        requested_ips: vec![ip("192.0.2.0")],
        ..mk_service("default/second")
    };
    let e = al.allocate(&req).unwrap_err();
    assert_eq!(
        e,
        AllocError::IpInUse {
            ip: ip("192.0.2.0"),
            holder: "default/first".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "IP 192.0.2.0 is already used by Service default/first"
    );
}

#[test]
fn requested_ip_may_come_from_a_pool_without_auto_assign() {
    let mut manual = mk_pool("manual", &["198.51.100.0/28"]);
    manual.auto_assign = false;
    let mut al = Allocator::new(mk_config(vec![manual]));
    assert_eq!(
        al.allocate(&mk_service("default/auto")).unwrap_err(),
        AllocError::NoPoolForFamily {
            family: IpFamily::V4
        }
    );
    let req = Request {
        requested_ips: vec![ip("198.51.100.3")],
        ..mk_service("default/manual")
    };
    assert_eq!(alloc_ips(&mut al, &req), vec!["198.51.100.3"]);
}

#[test]
fn two_requested_ips_of_one_family_or_of_an_unwanted_family_are_invalid() {
    let mut al = Allocator::new(mk_config(vec![mk_pool(
        "lan",
        &["192.0.2.0/28", "2001:db8::/120"],
    )]));
    let held = al.allocate(&mk_service("default/a")).unwrap();
    let req = Request {
        requested_ips: vec![ip("192.0.2.1"), ip("192.0.2.2")],
        ..mk_service("default/a")
    };
    assert_eq!(
        al.allocate(&req).unwrap_err().to_string(),
        "invalid request: two IPv4 addresses requested (192.0.2.1 and 192.0.2.2); at most one per family"
    );
    let req = Request {
        requested_ips: vec![ip("2001:db8::1")],
        ..mk_service("default/a")
    };
    assert_eq!(
        al.allocate(&req).unwrap_err().to_string(),
        "invalid request: requested IP 2001:db8::1 is IPv6, but this Service only gets IPv4"
    );
    assert_eq!(
        al.get("default/a"),
        Some(&held),
        "an invalid request changes nothing"
    );
}

#[test]
fn requested_ips_of_both_families_must_share_a_pool() {
    let mut al = Allocator::new(mk_config(vec![
        mk_pool("v4", &["192.0.2.0/28"]),
        mk_pool("v6", &["2001:db8::/120"]),
    ]));
    let req = Request {
        families: vec![IpFamily::V4, IpFamily::V6],
        family_policy: FamilyPolicy::RequireDualStack,
        requested_ips: vec![ip("192.0.2.1"), ip("2001:db8::1")],
        ..mk_service("default/a")
    };
    let e = al.allocate(&req).unwrap_err();
    assert_eq!(e.reason(), "InvalidRequest");
    assert!(e.to_string().contains("different address pools"), "{e}");
}

// ---- pool choice -------------------------------------------------------------------------

#[test]
fn pool_annotation_picks_the_pool() {
    let mut al = Allocator::new(mk_config(vec![
        mk_pool("first", &["192.0.2.0/28"]),
        mk_pool("second", &["198.51.100.0/28"]),
    ]));
    let req = Request {
        requested_pool: Some("second".into()),
        ..mk_service("default/a")
    };
    let a = al.allocate(&req).unwrap();
    assert_eq!(
        (ips(&a), a.pool.as_str()),
        (vec!["198.51.100.0".to_string()], "second")
    );
    let req = Request {
        requested_pool: Some("nope".into()),
        ..mk_service("default/b")
    };
    assert_eq!(
        al.allocate(&req).unwrap_err().to_string(),
        "address pool \"nope\" does not exist"
    );
}

#[test]
fn without_annotation_auto_assign_pools_are_used_in_configuration_order() {
    let mut off = mk_pool("off", &["203.0.113.0/30"]);
    off.auto_assign = false;
    let mut al = Allocator::new(mk_config(vec![
        off,
        mk_pool("z-first", &["198.51.100.10-198.51.100.11"]),
        mk_pool("a-second", &["192.0.2.0/30"]),
    ]));
    let got: Vec<_> = (0..6)
        .map(|i| {
            let a = al.allocate(&mk_service(&format!("default/s{i}")));
            a.map(|a| format!("{}:{}", a.pool, a.ips[0]))
        })
        .collect();
    assert_eq!(
        got,
        vec![
            Ok("z-first:198.51.100.10".to_string()),
            Ok("z-first:198.51.100.11".to_string()),
            Ok("a-second:192.0.2.0".to_string()),
            Ok("a-second:192.0.2.1".to_string()),
            Ok("a-second:192.0.2.2".to_string()),
            Ok("a-second:192.0.2.3".to_string()),
        ]
    );
    let e = al.allocate(&mk_service("default/s6")).unwrap_err();
    assert_eq!(
        e,
        AllocError::PoolExhausted {
            pool: "z-first".into(),
            family: IpFamily::V4
        }
    );
    assert_eq!(
        e.to_string(),
        "address pool \"z-first\" has no free IPv4 address"
    );
}

#[test]
fn namespaces_restrict_a_pool() {
    let mut prod = mk_pool("prod", &["192.0.2.0/28"]);
    prod.namespaces = Some(vec!["prod".into()]);
    let mut al = Allocator::new(mk_config(vec![prod, mk_pool("rest", &["198.51.100.0/28"])]));
    assert_eq!(al.allocate(&mk_service("prod/a")).unwrap().pool, "prod");
    assert_eq!(al.allocate(&mk_service("dev/a")).unwrap().pool, "rest");
    let req = Request {
        requested_pool: Some("prod".into()),
        ..mk_service("dev/b")
    };
    let e = al.allocate(&req).unwrap_err();
    assert_eq!(
        e.to_string(),
        "address pool \"prod\" may not be used by this Service: namespace \"dev\" is not in the pool's namespaces [prod]"
    );
    assert_eq!(e.reason(), "PoolNotAllowed");
    let req = Request {
        requested_ips: vec![ip("192.0.2.7")],
        ..mk_service("dev/c")
    };
    assert_eq!(al.allocate(&req).unwrap_err().reason(), "PoolNotAllowed");
}

#[test]
fn service_selector_restricts_a_pool() {
    let mut edge = mk_pool("edge", &["192.0.2.0/28"]);
    edge.service_selector = Some(LabelSelector {
        match_labels: labels(&[("tier", "edge")]),
        ..LabelSelector::default()
    });
    let mut al = Allocator::new(mk_config(vec![edge, mk_pool("rest", &["198.51.100.0/28"])]));
    let edge_svc = Request {
        labels: labels(&[("tier", "edge")]),
        ..mk_service("default/e")
    };
    assert_eq!(al.allocate(&edge_svc).unwrap().pool, "edge");
    assert_eq!(
        al.allocate(&mk_service("default/plain")).unwrap().pool,
        "rest"
    );
    let req = Request {
        requested_pool: Some("edge".into()),
        ..mk_service("default/x")
    };
    assert_eq!(
        al.allocate(&req).unwrap_err().to_string(),
        "address pool \"edge\" may not be used by this Service: the Service's labels do not match the pool's serviceSelector"
    );
}

// ---- address choice ------------------------------------------------------------------------

#[test]
fn lowest_free_address_first_and_release_frees_it() {
    let mut al = Allocator::new(mk_config(vec![mk_pool(
        "lan",
        &["192.0.2.0/30", "192.0.2.10"],
    )]));
    for (i, want) in [
        "192.0.2.0",
        "192.0.2.1",
        "192.0.2.2",
        "192.0.2.3",
        "192.0.2.10",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(
            alloc_ips(&mut al, &mk_service(&format!("default/s{i}"))),
            vec![*want]
        );
    }
    assert!(!al.is_free(ip("192.0.2.1")));
    let released = al.release("default/s1").unwrap();
    assert_eq!(ips(&released), vec!["192.0.2.1"]);
    assert!(al.is_free(ip("192.0.2.1")));
    assert!(al.get("default/s1").is_none());
    assert!(al.holders(ip("192.0.2.1")).is_empty());
    assert_eq!(
        alloc_ips(&mut al, &mk_service("default/new")),
        vec!["192.0.2.1"]
    );
    assert_eq!(al.release("default/unknown"), None);
}

#[test]
fn avoid_buggy_ips_skips_dot0_and_dot255() {
    let mut pool = mk_pool("lan", &["192.0.2.254-192.0.3.1"]);
    pool.avoid_buggy_ips = true;
    let mut al = Allocator::new(mk_config(vec![pool]));
    assert_eq!(
        alloc_ips(&mut al, &mk_service("default/a")),
        vec!["192.0.2.254"]
    );
    assert_eq!(
        alloc_ips(&mut al, &mk_service("default/b")),
        vec!["192.0.3.1"]
    );
    assert_eq!(
        al.allocate(&mk_service("default/c")).unwrap_err().reason(),
        "PoolExhausted"
    );
    let req = Request {
        requested_ips: vec![ip("192.0.2.255")],
        ..mk_service("default/d")
    };
    let e = al.allocate(&req).unwrap_err();
    assert_eq!(
        e.to_string(),
        "IP 192.0.2.255 is a .0 or .255 address, which address pool \"lan\" avoids (avoidBuggyIPs)"
    );
    let stats = al.pool_stats();
    assert_eq!((stats[0].size, stats[0].in_use, stats[0].free), (2, 2, 0));
}

#[test]
fn without_avoid_buggy_ips_dot0_and_dot255_are_allocated() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.255-192.0.3.0"])]));
    assert_eq!(
        alloc_ips(&mut al, &mk_service("default/a")),
        vec!["192.0.2.255"]
    );
    assert_eq!(
        alloc_ips(&mut al, &mk_service("default/b")),
        vec!["192.0.3.0"]
    );
}

// ---- sharing -----------------------------------------------------------------------------

#[test]
fn same_sharing_key_and_disjoint_ports_share_one_ip() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"])]));
    let a = alloc_ips(&mut al, &shared("default/dns-tcp", "dns", &[tcp(53)]));
    let b = alloc_ips(&mut al, &shared("default/dns-udp", "dns", &[udp(53)]));
    assert_eq!(a, vec!["192.0.2.0"]);
    assert_eq!(b, a, "same key, TCP/53 and UDP/53 do not collide");
    assert_eq!(
        al.holders(ip("192.0.2.0")),
        vec!["default/dns-tcp", "default/dns-udp"]
    );
    assert_eq!(al.pool_stats()[0].in_use, 1);
    // Releasing one sharer keeps the IP for the other.
    al.release("default/dns-tcp");
    assert!(!al.is_free(ip("192.0.2.0")));
    al.release("default/dns-udp");
    assert!(al.is_free(ip("192.0.2.0")));
}

#[test]
fn colliding_port_and_protocol_prevents_sharing() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"])]));
    alloc_ips(&mut al, &shared("default/a", "k", &[tcp(80), tcp(443)]));
    // Without a requested IP the colliding Service simply gets its own address.
    assert_eq!(
        alloc_ips(&mut al, &shared("default/b", "k", &[tcp(443)])),
        vec!["192.0.2.1"]
    );
    let req = Request {
        requested_ips: vec![ip("192.0.2.0")],
        ..shared("default/c", "k", &[tcp(443)])
    };
    let e = al.allocate(&req).unwrap_err();
    assert_eq!(
        e,
        AllocError::PortConflict {
            ip: ip("192.0.2.0"),
            port: tcp(443),
            holder: "default/a".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "IP 192.0.2.0 cannot be shared with Service default/a: both use port TCP/443"
    );
}

#[test]
fn different_or_missing_sharing_key_prevents_sharing() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"])]));
    alloc_ips(&mut al, &shared("default/a", "one", &[tcp(80)]));
    let other_key = Request {
        requested_ips: vec![ip("192.0.2.0")],
        ..shared("default/b", "two", &[tcp(81)])
    };
    assert_eq!(
        al.allocate(&other_key).unwrap_err(),
        AllocError::SharingKeyMismatch {
            ip: ip("192.0.2.0"),
            holder: "default/a".into()
        }
    );
    let no_key = Request {
        requested_ips: vec![ip("192.0.2.0")],
        ports: vec![tcp(81)],
        ..mk_service("default/c")
    };
    assert_eq!(al.allocate(&no_key).unwrap_err().reason(), "IpInUse");
    // And a key does not let a Service onto an IP whose holder has none.
    alloc_ips(&mut al, &mk_service("default/plain")); // 192.0.2.1
    let onto_plain = Request {
        requested_ips: vec![ip("192.0.2.1")],
        ..shared("default/d", "one", &[tcp(9)])
    };
    assert_eq!(
        al.allocate(&onto_plain).unwrap_err().reason(),
        "SharingKeyMismatch"
    );
}

#[test]
fn local_traffic_policy_requires_the_same_selector_to_share() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"])]));
    let a = Request {
        local_traffic_policy: true,
        selector: labels(&[("app", "web")]),
        ..shared("default/a", "k", &[tcp(80)])
    };
    alloc_ips(&mut al, &a);
    let other_pods = Request {
        requested_ips: vec![ip("192.0.2.0")],
        selector: labels(&[("app", "api")]),
        ..shared("default/b", "k", &[tcp(81)])
    };
    let e = al.allocate(&other_pods).unwrap_err();
    assert_eq!(e.reason(), "SelectorMismatch");
    assert_eq!(
        e.to_string(),
        "IP 192.0.2.0 cannot be shared with Service default/a: with externalTrafficPolicy Local both Services must have the same pod selector"
    );
    let same_pods = Request {
        selector: labels(&[("app", "web")]),
        ..other_pods.clone()
    };
    assert_eq!(alloc_ips(&mut al, &same_pods), vec!["192.0.2.0"]);
}

#[test]
fn cluster_traffic_policy_shares_across_selectors() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"])]));
    let a = Request {
        selector: labels(&[("app", "web")]),
        ..shared("default/a", "k", &[tcp(80)])
    };
    let b = Request {
        selector: labels(&[("app", "api")]),
        ..shared("default/b", "k", &[tcp(81)])
    };
    assert_eq!(alloc_ips(&mut al, &a), alloc_ips(&mut al, &b));
}

// ---- dual-stack --------------------------------------------------------------------------

fn dual(key: &str, policy: FamilyPolicy, families: &[IpFamily]) -> Request {
    Request {
        families: families.to_vec(),
        family_policy: policy,
        ..mk_service(key)
    }
}

const V4V6: &[IpFamily] = &[IpFamily::V4, IpFamily::V6];
const V6V4: &[IpFamily] = &[IpFamily::V6, IpFamily::V4];

#[test]
fn require_dual_stack_gets_one_of_each_family_from_one_pool() {
    let mut al = Allocator::new(mk_config(vec![
        mk_pool("v4only", &["198.51.100.0/28"]),
        mk_pool("both", &["192.0.2.0/28", "2001:db8::/120"]),
    ]));
    let a = al
        .allocate(&dual("default/a", FamilyPolicy::RequireDualStack, V6V4))
        .unwrap();
    assert_eq!(a.pool, "both");
    assert_eq!(
        ips(&a),
        vec!["2001:db8::", "192.0.2.0"],
        "primary family first"
    );
}

#[test]
fn require_dual_stack_fails_without_both_families() {
    let mut al = Allocator::new(mk_config(vec![
        mk_pool("v4", &["192.0.2.0/28"]),
        mk_pool("v6", &["2001:db8::/120"]),
    ]));
    let e = al
        .allocate(&dual("default/a", FamilyPolicy::RequireDualStack, V4V6))
        .unwrap_err();
    assert_eq!(
        e,
        AllocError::NoPoolForFamily {
            family: IpFamily::V6
        }
    );
    assert_eq!(
        e.to_string(),
        "no address pool that this Service may use has IPv6 addresses"
    );
    assert!(al.get("default/a").is_none());

    // A dual pool whose IPv6 side is exhausted: no half result either.
    let mut al = Allocator::new(mk_config(vec![mk_pool(
        "both",
        &["192.0.2.0/28", "2001:db8::1"],
    )]));
    al.allocate(&dual(
        "default/x",
        FamilyPolicy::SingleStack,
        &[IpFamily::V6],
    ))
    .unwrap();
    let e = al
        .allocate(&dual("default/a", FamilyPolicy::RequireDualStack, V4V6))
        .unwrap_err();
    assert_eq!(
        e,
        AllocError::PoolExhausted {
            pool: "both".into(),
            family: IpFamily::V6
        }
    );
    assert!(al.get("default/a").is_none());
    assert!(al.is_free(ip("192.0.2.0")));
}

#[test]
fn prefer_dual_stack_gets_both_where_it_can_else_one() {
    let mut al = Allocator::new(mk_config(vec![
        mk_pool("v4only", &["198.51.100.0/28"]),
        mk_pool("both", &["192.0.2.0/31", "2001:db8::1"]),
    ]));
    let a = al
        .allocate(&dual("default/a", FamilyPolicy::PreferDualStack, V4V6))
        .unwrap();
    assert_eq!(
        (a.pool.as_str(), ips(&a)),
        ("both", vec!["192.0.2.0".into(), "2001:db8::1".into()])
    );
    // IPv6 is now exhausted: one IPv4 address from the first pool that has one.
    let b = al
        .allocate(&dual("default/b", FamilyPolicy::PreferDualStack, V4V6))
        .unwrap();
    assert_eq!(
        (b.pool.as_str(), ips(&b)),
        ("v4only", vec!["198.51.100.0".into()])
    );
    // Releasing a frees the IPv6 address; b gains it only from its own pool, which has none.
    al.release("default/a");
    let b2 = al
        .allocate(&dual("default/b", FamilyPolicy::PreferDualStack, V4V6))
        .unwrap();
    assert_eq!(
        b2, b,
        "a valid allocation is kept, not moved to another pool"
    );
}

#[test]
fn prefer_dual_stack_completes_from_its_own_pool_when_possible() {
    let mut al = Allocator::new(mk_config(vec![mk_pool(
        "both",
        &["192.0.2.0/28", "2001:db8::1"],
    )]));
    al.allocate(&dual(
        "default/x",
        FamilyPolicy::SingleStack,
        &[IpFamily::V6],
    ))
    .unwrap();
    let a = al
        .allocate(&dual("default/a", FamilyPolicy::PreferDualStack, V4V6))
        .unwrap();
    assert_eq!(ips(&a), vec!["192.0.2.0"]);
    al.release("default/x");
    let a = al
        .allocate(&dual("default/a", FamilyPolicy::PreferDualStack, V4V6))
        .unwrap();
    assert_eq!(ips(&a), vec!["192.0.2.0", "2001:db8::1"]);
}

#[test]
fn single_stack_gets_one_ip_of_the_primary_family() {
    let mut al = Allocator::new(mk_config(vec![mk_pool(
        "both",
        &["192.0.2.0/28", "2001:db8::/120"],
    )]));
    let a = al
        .allocate(&dual("default/a", FamilyPolicy::SingleStack, V6V4))
        .unwrap();
    assert_eq!(ips(&a), vec!["2001:db8::"]);
    let b = al.allocate(&mk_service("default/b")).unwrap();
    assert_eq!(ips(&b), vec!["192.0.2.0"], "no families means IPv4");
}

// ---- stability, changes, rebuild ---------------------------------------------------------

#[test]
fn allocate_is_idempotent_and_deterministic() {
    let cfg = mk_config(vec![mk_pool("lan", &["192.0.2.0/28", "2001:db8::/120"])]);
    let reqs: Vec<Request> = (0..8)
        .map(|i| match i % 3 {
            0 => mk_service(&format!("ns/s{i}")),
            1 => dual(&format!("ns/s{i}"), FamilyPolicy::RequireDualStack, V6V4),
            _ => shared(&format!("ns/s{i}"), "k", &[tcp(1000 + i as u16)]),
        })
        .collect();
    let run = || {
        let mut al = Allocator::new(cfg.clone());
        let first: Vec<_> = reqs.iter().map(|r| al.allocate(r).unwrap()).collect();
        let again: Vec<_> = reqs.iter().map(|r| al.allocate(r).unwrap()).collect();
        assert_eq!(first, again, "allocating again changes nothing");
        first
    };
    assert_eq!(run(), run());
}

#[test]
fn changed_requested_ip_moves_the_service() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"])]));
    let mut req = mk_service("default/a");
    assert_eq!(alloc_ips(&mut al, &req), vec!["192.0.2.0"]);
    req.requested_ips = vec![ip("192.0.2.5")];
    assert_eq!(alloc_ips(&mut al, &req), vec!["192.0.2.5"]);
    assert!(al.is_free(ip("192.0.2.0")), "the old address is released");
}

#[test]
fn failed_change_keeps_a_still_permitted_allocation() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"])]));
    alloc_ips(&mut al, &mk_service("default/other")); // .0
    let mut req = mk_service("default/a");
    assert_eq!(alloc_ips(&mut al, &req), vec!["192.0.2.1"]);
    req.requested_ips = vec![ip("192.0.2.0")];
    assert_eq!(al.allocate(&req).unwrap_err().reason(), "IpInUse");
    assert_eq!(ips(al.get("default/a").unwrap()), vec!["192.0.2.1"]);
}

#[test]
fn failed_change_releases_an_allocation_no_longer_permitted() {
    let mut edge = mk_pool("edge", &["192.0.2.0/28"]);
    edge.service_selector = Some(LabelSelector {
        match_labels: labels(&[("tier", "edge")]),
        ..LabelSelector::default()
    });
    let mut al = Allocator::new(mk_config(vec![edge]));
    let mut req = Request {
        labels: labels(&[("tier", "edge")]),
        ..mk_service("default/a")
    };
    alloc_ips(&mut al, &req);
    req.labels.clear();
    assert_eq!(al.allocate(&req).unwrap_err().reason(), "NoPoolForFamily");
    assert!(al.get("default/a").is_none());
    assert!(al.is_free(ip("192.0.2.0")));
}

#[test]
fn changed_ports_that_collide_move_a_sharing_service() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"])]));
    alloc_ips(&mut al, &shared("default/a", "k", &[tcp(80)]));
    assert_eq!(
        alloc_ips(&mut al, &shared("default/b", "k", &[tcp(81)])),
        vec!["192.0.2.0"]
    );
    assert_eq!(
        alloc_ips(&mut al, &shared("default/b", "k", &[tcp(80)])),
        vec!["192.0.2.1"]
    );
    assert_eq!(al.holders(ip("192.0.2.0")), vec!["default/a"]);
}

#[test]
fn rebuild_from_status_reproduces_every_assignment() {
    let cfg = mk_config(vec![
        mk_pool("a", &["192.0.2.0/29"]),
        mk_pool("b", &["198.51.100.0/28", "2001:db8::/120"]),
    ]);
    let mut al = Allocator::new(cfg.clone());
    let mut reqs = Vec::new();
    for i in 0..20u16 {
        let mut r = match i % 4 {
            0 => mk_service(&format!("ns/s{i:02}")),
            1 => dual(&format!("ns/s{i:02}"), FamilyPolicy::PreferDualStack, V4V6),
            2 => shared(&format!("ns/s{i:02}"), "k", &[tcp(i)]),
            _ => Request {
                requested_pool: Some("b".into()),
                ..mk_service(&format!("ns/s{i:02}"))
            },
        };
        r.created = i as i64;
        al.allocate(&r).unwrap();
        reqs.push(r);
    }
    for r in reqs.iter().step_by(3) {
        al.release(&r.key);
    }
    let status: Vec<(Request, Vec<IpAddr>)> = reqs
        .iter()
        .filter_map(|r| al.get(&r.key).map(|a| (r.clone(), a.ips.clone())))
        .rev() // order of the input must not matter
        .collect();
    let mut fresh = Allocator::new(cfg);
    assert!(fresh.rebuild(status).is_empty());
    for r in &reqs {
        assert_eq!(fresh.get(&r.key), al.get(&r.key), "{}", r.key);
    }
    assert_eq!(fresh.pool_stats(), al.pool_stats());
    // Allocating afterwards changes nothing either.
    for r in &reqs {
        if let Some(a) = al.get(&r.key) {
            assert_eq!(&fresh.allocate(r).unwrap(), a);
        }
    }
}

#[test]
fn rebuild_gives_a_contested_ip_to_the_older_service() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"])]));
    let old = Request {
        created: 10,
        ..mk_service("default/zz-old")
    };
    let new = Request {
        created: 20,
        ..mk_service("default/aa-new")
    };
    let failed = al.rebuild(vec![
        (new.clone(), vec![ip("192.0.2.3")]),
        (old.clone(), vec![ip("192.0.2.3")]),
    ]);
    assert_eq!(al.holders(ip("192.0.2.3")), vec!["default/zz-old"]);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "default/aa-new");
    assert_eq!(failed[0].1.reason(), "IpInUse");
}

#[test]
fn assign_existing_never_moves_and_rejects_invalid_status() {
    let mut manual = mk_pool("manual", &["198.51.100.0/28"]);
    manual.auto_assign = false;
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"]), manual]));
    // An address in a non-auto-assign pool, not the lowest free: kept as it is.
    let a = al
        .assign_existing(&mk_service("default/a"), &[ip("198.51.100.9")])
        .unwrap();
    assert_eq!(
        (a.pool.as_str(), ips(&a)),
        ("manual", vec!["198.51.100.9".into()])
    );
    assert_eq!(
        al.allocate(&mk_service("default/a")).unwrap(),
        a,
        "still valid: not moved"
    );
    let e = al
        .assign_existing(&mk_service("default/b"), &[ip("203.0.113.1")])
        .unwrap_err();
    assert_eq!(e.reason(), "RequestedIpNotInPool");
    let e = al
        .assign_existing(&mk_service("default/b"), &[ip("2001:db8::1")])
        .unwrap_err();
    assert_eq!(e.reason(), "RequestedIpNotInPool");
    let mut al = Allocator::new(mk_config(vec![mk_pool(
        "lan",
        &["192.0.2.0/28", "2001:db8::/120"],
    )]));
    let e = al
        .assign_existing(&mk_service("default/b"), &[ip("2001:db8::1")])
        .unwrap_err();
    assert_eq!(
        e.reason(),
        "InvalidRequest",
        "IPv6 status for a single-stack IPv4 Service"
    );
    assert!(al.get("default/b").is_none());
}

#[test]
fn config_change_keeps_valid_ips_and_returns_the_others() {
    let mut al = Allocator::new(mk_config(vec![
        mk_pool("a", &["192.0.2.0/28"]),
        mk_pool("b", &["198.51.100.0/28"]),
    ]));
    let s1 = al.allocate(&mk_service("x/s1")).unwrap(); // a: .0
    let s2 = al.allocate(&mk_service("y/s2")).unwrap(); // a: .1
    let s4 = al.allocate(&mk_service("x/s4")).unwrap(); // a: .2
    let s3 = al
        .allocate(&Request {
            requested_pool: Some("b".into()),
            ..mk_service("x/s3")
        })
        .unwrap();
    // New config: pool a shrinks to .1-.15 and is limited to namespace y; pool b is renamed.
    let mut a = mk_pool("a", &["192.0.2.1-192.0.2.15"]);
    a.namespaces = Some(vec!["y".into()]);
    let lost = al.set_config(mk_config(vec![a, mk_pool("c", &["198.51.100.0/28"])]));
    assert_eq!(
        lost,
        vec![
            ("x/s1".to_string(), s1.clone()), // .0 no longer in any pool
            ("x/s3".to_string(), s3.clone()), // asked for pool b, which is gone
            ("x/s4".to_string(), s4.clone()), // namespace x no longer allowed in a
        ]
    );
    assert_eq!(al.get("y/s2"), Some(&s2), "still valid: kept");
    assert!(al.get("x/s1").is_none());
    assert!(al.is_free(ip("198.51.100.0")));
    // Pool renamed without the Service asking for it by name: kept under the new name.
    let mut al2 = Allocator::new(mk_config(vec![mk_pool("old", &["192.0.2.0/28"])]));
    al2.allocate(&mk_service("x/s")).unwrap();
    assert!(
        al2.set_config(mk_config(vec![mk_pool("new", &["192.0.2.0/24"])]))
            .is_empty()
    );
    assert_eq!(al2.get("x/s").unwrap().pool, "new");
}

#[test]
fn config_change_turning_on_avoid_buggy_ips_moves_dot0() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"])]));
    al.allocate(&mk_service("d/a")).unwrap();
    al.allocate(&mk_service("d/b")).unwrap();
    let mut pool = mk_pool("lan", &["192.0.2.0/28"]);
    pool.avoid_buggy_ips = true;
    let lost = al.set_config(mk_config(vec![pool]));
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0].0, "d/a");
    assert_eq!(
        ips(&al.allocate(&mk_service("d/a")).unwrap()),
        vec!["192.0.2.2"]
    );
}

#[test]
fn config_change_keeps_the_valid_half_of_a_dual_stack_service() {
    let mut al = Allocator::new(mk_config(vec![mk_pool(
        "both",
        &["192.0.2.0/28", "2001:db8::/120"],
    )]));
    let req = dual("d/a", FamilyPolicy::RequireDualStack, V4V6);
    al.allocate(&req).unwrap();
    let lost = al.set_config(mk_config(vec![mk_pool(
        "both",
        &["192.0.2.0/28", "2001:db8:1::/120"],
    )]));
    assert_eq!(lost.len(), 1);
    assert_eq!(ips(&lost[0].1), vec!["2001:db8::"]);
    assert_eq!(ips(al.get("d/a").unwrap()), vec!["192.0.2.0"]);
    let a = al.allocate(&req).unwrap();
    assert_eq!(
        ips(&a),
        vec!["192.0.2.0", "2001:db8:1::"],
        "IPv4 kept, IPv6 replaced"
    );
}

// ---- misc ----------------------------------------------------------------------------------

#[test]
fn an_ipv6_slash64_pool_is_usable_and_sized_without_materialising() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("v6", &["2001:db8::/64"])]));
    let req = |i: u32| {
        dual(
            &format!("d/s{i}"),
            FamilyPolicy::SingleStack,
            &[IpFamily::V6],
        )
    };
    for i in 0..1000 {
        al.allocate(&req(i)).unwrap();
    }
    assert_eq!(ips(al.get("d/s999").unwrap()), vec!["2001:db8::3e7"]);
    let s = &al.pool_stats()[0];
    assert_eq!(
        (s.size, s.in_use, s.free),
        (1u128 << 64, 1000, (1u128 << 64) - 1000)
    );
    let top = Request {
        requested_ips: vec![ip("2001:db8::ffff:ffff:ffff:ffff")],
        ..req(5000)
    };
    al.allocate(&top).unwrap();
}

#[test]
fn service_key_must_match_the_namespace() {
    let mut al = Allocator::new(mk_config(vec![mk_pool("lan", &["192.0.2.0/28"])]));
    let req = Request {
        namespace: "other".into(),
        ..mk_service("default/a")
    };
    assert_eq!(
        al.allocate(&req).unwrap_err().to_string(),
        "invalid request: Service key \"default/a\" is not \"other/<name>\""
    );
}
