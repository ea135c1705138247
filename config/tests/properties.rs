//! Property tests: valid address lists round-trip; no input makes a parser panic,
//! and whatever is accepted satisfies the model's invariants.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_config::{
    Config, IpRange, parse_configmap_data, parse_document, parse_ferrolb_yaml, summarize,
};
use proptest::prelude::*;
use serde_yaml_ng::{Mapping, Value};

/// One address entry inside its own block of addresses, as text and as the range it means.
#[derive(Debug, Clone)]
struct Entry {
    text: String,
    range: IpRange,
}

/// An entry within block `block` (a /24 for IPv4, a /120 for IPv6) in one of the three spellings.
fn entry(block: u32, v6: bool, form: u8, a: u8, b: u8) -> Entry {
    let (lo, hi) = (a.min(b), a.max(b));
    let ip = |off: u8| -> IpAddr {
        if v6 {
            // 2001:db8::/32 documentation space, one /120 per block.
            let base = (0x2001_0db8u128 << 96) | (u128::from(block) << 8);
            IpAddr::V6(Ipv6Addr::from(base | u128::from(off)))
        } else {
            IpAddr::V4(Ipv4Addr::from((block << 8) | u32::from(off)))
        }
    };
    match form % 3 {
        0 => {
            // CIDR of prefix len 24..=32 (IPv4) / 120..=128 (IPv6) at the block start.
            let extra = lo % 9; // 0..=8 bits below the block prefix
            let prefix = if v6 { 120 + extra } else { 24 + extra };
            let size = 1u32 << (8 - extra);
            Entry {
                text: format!("{}/{}", ip(0), prefix),
                range: IpRange {
                    start: ip(0),
                    end: ip((size - 1) as u8),
                },
            }
        }
        1 => Entry {
            text: format!("{}-{}", ip(lo), ip(hi)),
            range: IpRange {
                start: ip(lo),
                end: ip(hi),
            },
        },
        _ => Entry {
            text: ip(lo).to_string(),
            range: IpRange {
                start: ip(lo),
                end: ip(lo),
            },
        },
    }
}

/// Pools of entries in pairwise non-adjacent blocks, so nothing overlaps or touches.
fn pools() -> impl Strategy<Value = Vec<Vec<Entry>>> {
    (
        proptest::collection::btree_set(0u32..(1 << 23), 1..24),
        proptest::collection::vec(
            (
                any::<bool>(),
                any::<u8>(),
                any::<u8>(),
                any::<u8>(),
                0usize..4,
            ),
            24,
        ),
    )
        .prop_map(|(blocks, params)| {
            let mut pools: Vec<Vec<Entry>> = vec![Vec::new(); 4];
            for (block, (v6, form, a, b, pool)) in blocks.into_iter().zip(params) {
                // Doubling keeps a free block between any two chosen ones.
                pools[pool].push(entry(block * 2, v6, form, a, b));
            }
            pools.retain(|p| !p.is_empty());
            pools
        })
}

fn yaml_for(pools: &[Vec<Entry>]) -> String {
    let mut s = String::from("pools:\n");
    for (i, p) in pools.iter().enumerate() {
        s.push_str(&format!("- name: pool-{i}\n  addresses:\n"));
        for e in p {
            s.push_str(&format!("  - \"{}\"\n", e.text));
        }
    }
    s
}

/// The model's invariants for anything a parser accepts.
fn check_invariants(c: &Config) {
    let mut names = std::collections::BTreeSet::new();
    let mut all: Vec<IpRange> = Vec::new();
    for p in &c.pools {
        assert!(names.insert(p.name.clone()), "duplicate name {}", p.name);
        assert!(!p.ranges.is_empty(), "empty pool {}", p.name);
        assert!(p.usable_size() > 0, "no usable address in {}", p.name);
        for r in &p.ranges {
            assert_eq!(r.start.is_ipv4(), r.end.is_ipv4());
            assert!(r.start <= r.end);
        }
        for w in p.ranges.windows(2) {
            assert!(w[0].start < w[1].start, "ranges not sorted in {}", p.name);
        }
        all.extend(&p.ranges);
    }
    all.sort();
    for w in all.windows(2) {
        assert!(
            w[0].intersection(&w[1]).is_none(),
            "{} overlaps {}",
            w[0],
            w[1]
        );
    }
    assert_eq!(summarize(c).len(), c.pools.len());
}

const FIELD_NAMES: &[&str] = &[
    "pools",
    "l2",
    "name",
    "addresses",
    "autoAssign",
    "avoidBuggyIPs",
    "namespaces",
    "serviceSelector",
    "matchLabels",
    "matchExpressions",
    "key",
    "operator",
    "values",
    "interfaces",
    "nodeSelector",
    "address-pools",
    "protocol",
    "auto-assign",
    "avoid-buggy-ips",
    "peers",
    "kind",
    "data",
    "config.yaml",
    "config",
    "cidr-global",
    "range-prod",
    "autoassign",
];
const STRINGS: &[&str] = &[
    "lan",
    "192.0.2.0/28",
    "192.0.2.7/24",
    "192.0.2.1-192.0.2.9",
    "192.0.2.9-192.0.2.1",
    "2001:db8::/120",
    "192.0.2.1-2001:db8::1",
    "In",
    "NotIn",
    "Exists",
    "DoesNotExist",
    "layer2",
    "bgp",
    "ConfigMap",
    "eth0",
    "",
    "0.0.0.0/0",
    "::/0",
    "192.0.2.255",
    "pools: []",
    "address-pools: []",
];

fn yaml_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        proptest::sample::select(STRINGS).prop_map(|s| Value::String(s.to_string())),
        "[a-z0-9./:-]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Sequence),
            proptest::collection::vec(
                (
                    proptest::sample::select(FIELD_NAMES)
                        .prop_map(|s| Value::String(s.to_string())),
                    inner
                ),
                0..5
            )
            .prop_map(|kvs| Value::Mapping(kvs.into_iter().collect::<Mapping>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn valid_address_lists_round_trip(pools in pools()) {
        let config = parse_ferrolb_yaml(&yaml_for(&pools))
            .unwrap_or_else(|e| panic!("rejected a valid config:\n{e}\n{}", yaml_for(&pools)));
        prop_assert_eq!(config.pools.len(), pools.len());
        for (pool, entries) in config.pools.iter().zip(&pools) {
            let mut want: Vec<IpRange> = entries.iter().map(|e| e.range).collect();
            want.sort();
            prop_assert_eq!(&pool.ranges, &want);
        }
        check_invariants(&config);
    }

    #[test]
    fn parse_document_never_panics_on_text(text in "\\PC{0,200}") {
        if let Ok(p) = parse_document(&text) { check_invariants(&p.config) }
    }

    #[test]
    fn parsers_never_panic_on_yaml_shaped_input(value in yaml_value()) {
        let text = serde_yaml_ng::to_string(&value).unwrap();
        match parse_document(&text) {
            Ok(p) => check_invariants(&p.config),
            Err(e) => prop_assert!(!e.problems.is_empty() && e.problems.iter().all(|p| !p.to_string().is_empty())),
        }
        if let Ok(c) = ferrolb_config::parse_metallb_legacy(&text) { check_invariants(&c) }
    }

    #[test]
    fn configmap_data_never_panics(
        pairs in proptest::collection::btree_map(
            prop_oneof![
                proptest::sample::select(&["config.yaml", "config", "cidr-global", "range-global",
                    "cidr-prod", "range-prod", "skip-end-ips-in-cidr", "interface-global"][..]).prop_map(String::from),
                "[a-z-]{0,16}",
            ],
            prop_oneof![
                proptest::sample::select(STRINGS).prop_map(String::from),
                "[0-9a-f.:/, -]{0,40}",
            ],
            0..6,
        )
    ) {
        let data: BTreeMap<String, String> = pairs;
        if let Ok(p) = parse_configmap_data(&data) { check_invariants(&p.config) }
    }
}
