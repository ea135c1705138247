//! The proof that the speaker's per-frame work allocates nothing: a counting global
//! allocator (`cap`, a safe wrapper around the system allocator) watches
//! [`decide`] on every captured kernel frame (the frames of `core/tests/wire_frames.rs`),
//! on every prefix of them, on corrupted copies, and the gratuitous builders. A single
//! heap allocation anywhere on that path (in ferrolb's code or in a codec library it
//! calls) makes the count move and the test fail.
//!
//! This file holds one test on purpose: the allocator is global to the test binary, and
//! another test running in parallel would allocate while this one counts.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cap::Cap;
use ferrolb_core::wire::{
    FrameDecision, GratuitousForm, MacAddr, Packet, decide, gratuitous_arp, unsolicited_na,
};

#[global_allocator]
static HEAP: Cap<std::alloc::System> = Cap::new(std::alloc::System, usize::MAX);

const FRAMES: [&str; 9] = [
    "ffffffffffff02000000000a0806000108000604000102000000000ac0000264000000000000c0000201",
    "02000000000a02000000000b0806000108000604000202000000000bc000020102000000000ac0000264",
    "3333ff00000102000000000a86dd6000000000203aff20010db8000000000000000000000100ff0200000000000000000001ff00000187001b210000000020010db8000000000000000000000001010102000000000a",
    "02000000000a02000000000b86dd6000000000203aff20010db800000000000000000000000120010db80000000000000000000001008800896b6000000020010db8000000000000000000000001020102000000000b",
    "ffffffffffff02000000000b0806000108000604000102000000000bc0000201ffffffffffffc0000201",
    "ffffffffffff02000000000b0806000108000604000202000000000bc000020102000000000bc0000201",
    "02000000000b02000000000a86dd6000000000203afffe80000000000000000000fffe00000afe80000000000000000000fffe00000b87007cf700000000fe80000000000000000000fffe00000b010102000000000a",
    "02000000000a02000000000b86dd6000000000183afffe80000000000000000000fffe00000bfe80000000000000000000fffe00000a88003f0a40000000fe80000000000000000000fffe00000b",
    "3333ff00000302000000000a86dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff0000038700a6070000000020010db80000000000000000000000030e0152a4710ad529",
];

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn deciding_on_received_frames_and_building_announcements_never_allocates() {
    let me = MacAddr([2, 0, 0, 0, 0, 0x0b]);
    // Everything the loop reads is built before counting starts.
    let frames: Vec<Vec<u8>> = FRAMES.iter().map(|f| hex(f)).collect();
    let mut corrupted: Vec<Vec<u8>> = Vec::new();
    for f in &frames {
        for i in 0..f.len() {
            let mut c = f.clone();
            c[i] ^= 0xa5;
            corrupted.push(c);
        }
    }
    let announced: BTreeSet<IpAddr> = [
        "192.0.2.1",
        "192.0.2.100",
        "2001:db8::1",
        "2001:db8::3",
        "fe80::ff:fe00:b",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let is_announced = |ip: IpAddr| announced.contains(&ip);

    let before = HEAP.total_allocated();
    let (mut answers, mut drops) = (0usize, 0usize);
    for _ in 0..100 {
        for f in &frames {
            for n in 0..=f.len() {
                match decide(black_box(&f[..n]), me, is_announced) {
                    FrameDecision::Answer(..) => answers += 1,
                    FrameDecision::Drop(e) => {
                        // Formatting is how the speaker traces a drop; the error itself
                        // must not own anything.
                        black_box(e);
                        drops += 1
                    }
                    FrameDecision::NotAnnounced(_) => {}
                }
            }
            // Parsing alone (the benches and the lab use it) is just as free.
            black_box(Packet::parse(black_box(f)).ok());
        }
        for c in &corrupted {
            black_box(decide(black_box(c), me, is_announced));
        }
        black_box(gratuitous_arp(
            me,
            black_box(Ipv4Addr::new(192, 0, 2, 1)),
            GratuitousForm::Request,
        ));
        black_box(gratuitous_arp(
            me,
            black_box(Ipv4Addr::new(192, 0, 2, 1)),
            GratuitousForm::Reply,
        ));
        black_box(unsolicited_na(
            me,
            black_box(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        ));
    }
    let allocated = HEAP.total_allocated() - before;

    // The counter is live: one small allocation moves it.
    let probe = HEAP.total_allocated();
    black_box(vec![0u8; 1]);
    assert!(
        HEAP.total_allocated() > probe,
        "the counting allocator counts nothing"
    );

    // The loop did real work: whole questions were answered and prefixes dropped.
    assert!(answers >= 100 * 4, "only {answers} answers");
    assert!(drops >= 100 * 9 * 20, "only {drops} drops");
    assert_eq!(
        allocated, 0,
        "the per-frame path allocated {allocated} bytes over {answers} answers and {drops} drops"
    );
}
