//! The inputs on which `pnet_packet` does not hold up, and on which the speaker therefore
//! keeps its own code for exactly that part (see `core/src/wire/ndisc.rs` and the
//! README's development notes). Each test shows what pnet does with the input and that
//! the speaker's codecs get it right.

use std::net::Ipv6Addr;

use ferrolb_core::wire::{FrameDecision, MacAddr, NdiscRepr, Packet, Protocol, decide};
use pnet_packet::icmpv6::ndp::{NdpOptionTypes, NeighborSolicitPacket};
use pnet_packet::icmpv6::{self, Icmpv6Packet};

/// The kernel's NS for 2001:db8::1 to its solicited-node group, from 2001:db8::100
/// (02:00:00:00:00:0a), with a source link-layer option (the captured frame of
/// `core/tests/wire_frames.rs`).
const NDP_NS_MULTICAST: &str = "3333ff00000102000000000a86dd6000000000203aff20010db8000000000000000000000100ff0200000000000000000001ff00000187001b210000000020010db8000000000000000000000001010102000000000a";
const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);
/// Ethernet + IPv6 headers.
const MSG: usize = 54;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Recomputes the ICMPv6 checksum of a frame built from the captured NS.
fn fix_checksum(f: &mut [u8]) {
    f[MSG + 2..MSG + 4].copy_from_slice(&[0, 0]);
    let c = icmpv6::checksum(
        &Icmpv6Packet::new(&f[MSG..]).unwrap(),
        &v6("2001:db8::100"),
        &v6("ff02::1:ff00:1"),
    );
    f[MSG + 2..MSG + 4].copy_from_slice(&c.to_be_bytes());
}

/// The captured NS with an option of `units` × 8 bytes (type 14, nonce-like) before its
/// source link-layer option.
fn ns_with_long_option(units: u8) -> Vec<u8> {
    let mut f = hex(NDP_NS_MULTICAST);
    let sll = f.split_off(MSG + 24);
    let mut opt = vec![0u8; usize::from(units) * 8];
    opt[0] = 14;
    opt[1] = units;
    f.extend_from_slice(&opt);
    f.extend_from_slice(&sll);
    let payload_len = (f.len() - MSG) as u16;
    f[18..20].copy_from_slice(&payload_len.to_be_bytes());
    fix_checksum(&mut f);
    f
}

#[test]
fn an_option_of_32_units_or_more_is_walked_past_to_the_link_layer_address() {
    for units in [1u8, 31, 32, 33, 255] {
        let f = ns_with_long_option(units);
        assert_eq!(
            Packet::parse(&f).map(|p| match p {
                Packet::Ndisc { ndisc, .. } => Some(ndisc),
                Packet::Arp { .. } => None,
            }),
            Ok(Some(NdiscRepr::NeighborSolicit {
                target_addr: v6("2001:db8::1"),
                source_lladdr: Some(MAC_A),
            })),
            "option of {units} units"
        );
        assert!(matches!(
            decide(&f, MAC_B, |_| true),
            FrameDecision::Answer(Protocol::Ndp, _)
        ));
    }
}

#[test]
fn pnets_own_option_walk_fails_on_an_option_of_33_units_or_more() {
    // pnet sizes an option as `length * 8` computed in u8, which overflows from 32
    // units on: a panic where overflow checks are on (as in tests), a wrapped size
    // otherwise (33 units are taken as 8 bytes, 40 as 64), and the walk goes astray.
    // Either way it does not find the source link-layer option after the long one.
    for units in [33u8, 40] {
        let f = ns_with_long_option(units);
        let walk = std::panic::catch_unwind(|| {
            let ns = NeighborSolicitPacket::new(&f[MSG..]).unwrap();
            ns.get_options_iter()
                .map(|o| (o.get_option_type(), o.get_length()))
                .collect::<Vec<_>>()
        });
        let right = vec![
            (pnet_packet::icmpv6::ndp::NdpOptionType(14), units),
            (NdpOptionTypes::SourceLLAddr, 1),
        ];
        assert!(
            walk.as_ref().map_or(true, |w| *w != right),
            "pnet now walks an option of {units} units right ({walk:?}): \
             core/src/wire/ndisc.rs could use its iterator"
        );
    }
}

/// One's-complement sum of two 16-bit words.
fn ones_add(a: u16, b: u16) -> u16 {
    let t = u32::from(a) + u32::from(b);
    ((t & 0xffff) + (t >> 16)) as u16
}

#[test]
fn a_checksum_of_zero_carried_as_0xffff_is_accepted_as_linux_does() {
    // Adjust the last word of the source MAC (still unicast) so that the checksum of
    // the message comes out as 0, then write it as the other zero, 0xffff.
    let mut f = hex(NDP_NS_MULTICAST);
    let c = u16::from_be_bytes([f[MSG + 2], f[MSG + 3]]);
    let w = MSG + 30;
    let last = u16::from_be_bytes([f[w], f[w + 1]]);
    f[w..w + 2].copy_from_slice(&ones_add(last, c).to_be_bytes());
    fix_checksum(&mut f);
    assert_eq!(f[MSG + 2..MSG + 4], [0, 0], "checksum comes out as 0");
    let mac = MacAddr::from_slice(&f[MSG + 26..MSG + 32]).unwrap();
    f[MSG + 2..MSG + 4].copy_from_slice(&[0xff, 0xff]);

    // pnet's value is 0, the field 0xffff: comparing the two would drop the frame.
    let computed = icmpv6::checksum(
        &Icmpv6Packet::new(&f[MSG..]).unwrap(),
        &v6("2001:db8::100"),
        &v6("ff02::1:ff00:1"),
    );
    assert_eq!(computed, 0);
    let Ok(Packet::Ndisc { ndisc, .. }) = Packet::parse(&f) else {
        panic!("dropped: {:?}", Packet::parse(&f))
    };
    assert_eq!(
        ndisc,
        NdiscRepr::NeighborSolicit {
            target_addr: v6("2001:db8::1"),
            source_lladdr: Some(mac),
        }
    );
    assert!(matches!(
        decide(&f, MAC_B, |_| true),
        FrameDecision::Answer(Protocol::Ndp, _)
    ));
    // Any other wrong value is still a bad checksum.
    f[MSG + 3] = 0xfe;
    assert!(matches!(
        decide(&f, MAC_B, |_| true),
        FrameDecision::Drop(_)
    ));
}
