//! The pure reply decision ([`ferrolb_core::wire::decide`]) on real frames, against an
//! announced set of 1,000 IPs: the per-frame CPU cost of the data path minus syscalls.
//!
//! `cargo bench -p ferrolb-speaker --bench decide`

use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{Criterion, criterion_group, criterion_main};
use ferrolb_core::wire::{GratuitousForm, MacAddr, decide, gratuitous_arp, unsolicited_na};

const ARP_REQUEST: &str =
    "ffffffffffff02000000000a0806000108000604000102000000000ac0000264000000000000c0000201";
const NDP_NS_MULTICAST: &str = "3333ff00000102000000000a86dd6000000000203aff20010db8000000000000000000000100ff0200000000000000000001ff00000187001b210000000020010db8000000000000000000000001010102000000000a";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn bench(c: &mut Criterion) {
    let me = MacAddr([2, 0, 0, 0, 0, 0x0b]);
    let mut set: BTreeSet<IpAddr> = BTreeSet::new();
    for i in 0..500u32 {
        set.insert(IpAddr::V4(Ipv4Addr::from(0xc633_6400 + i))); // 198.51.100.0 +
        set.insert(IpAddr::V6(Ipv6Addr::from(
            0x2001_0db8_0000_0000_0000_0000_0001_0000u128 + u128::from(i),
        )));
    }
    let mut hit = set.clone();
    hit.insert("192.0.2.1".parse().unwrap());
    hit.insert("2001:db8::1".parse().unwrap());
    let arp = hex(ARP_REQUEST);
    let ns = hex(NDP_NS_MULTICAST);
    let garbage = vec![0x5au8; 60];

    c.bench_function("decide/arp_request_answered", |b| {
        b.iter(|| decide(black_box(&arp), me, |ip| hit.contains(&ip)))
    });
    c.bench_function("decide/arp_request_not_announced", |b| {
        b.iter(|| decide(black_box(&arp), me, |ip| set.contains(&ip)))
    });
    c.bench_function("decide/ns_answered", |b| {
        b.iter(|| decide(black_box(&ns), me, |ip| hit.contains(&ip)))
    });
    c.bench_function("decide/garbage_dropped", |b| {
        b.iter(|| decide(black_box(&garbage), me, |ip| hit.contains(&ip)))
    });
    c.bench_function("build/gratuitous_arp", |b| {
        b.iter(|| {
            gratuitous_arp(
                me,
                black_box(Ipv4Addr::new(192, 0, 2, 1)),
                GratuitousForm::Request,
            )
        })
    });
    c.bench_function("build/unsolicited_na", |b| {
        b.iter(|| {
            unsolicited_na(
                me,
                black_box(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
