//! Property tests of the codecs: arbitrary bytes never panic, representations survive
//! emit → parse unchanged, and whatever the speaker sends obeys its invariants.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_core::wire::{
    ArpOperation, ArpRepr, EtherType, EthernetRepr, FrameDecision, GratuitousForm, Ipv6Repr,
    MacAddr, NdiscRepr, NeighborFlags, Packet, decide, gratuitous_arp, solicited_node,
    solicited_node_mac, unsolicited_na,
};
use proptest::prelude::*;

const ARP_REQUEST: &str =
    "ffffffffffff02000000000a0806000108000604000102000000000ac0000264000000000000c0000201";
const NDP_NS_MULTICAST: &str = "3333ff00000102000000000a86dd6000000000203aff20010db8000000000000000000000100ff0200000000000000000001ff00000187001b210000000020010db8000000000000000000000001010102000000000a";
const NDP_NS_DAD: &str = "3333ff00000302000000000a86dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff0000038700a6070000000020010db80000000000000000000000030e0152a4710ad529";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn unicast_mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(|mut b| {
        b[0] &= 0xfe;
        b[5] |= 1; // never all-zero
        MacAddr(b)
    })
}

fn any_mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(MacAddr)
}

fn v6_unicast() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(|mut b| {
        if b[0] == 0xff {
            b[0] = 0x20;
        }
        Ipv6Addr::from(b)
    })
}

fn arp_packet() -> impl Strategy<Value = Packet> {
    (
        unicast_mac(),
        any_mac(),
        any::<bool>(),
        unicast_mac(),
        any::<[u8; 4]>(),
        any_mac(),
        any::<[u8; 4]>(),
    )
        .prop_map(|(src, dst, req, sha, spa, tha, tpa)| Packet::Arp {
            eth: EthernetRepr {
                src_addr: src,
                dst_addr: dst,
                ethertype: EtherType::ARP,
            },
            arp: ArpRepr {
                operation: if req {
                    ArpOperation::Request
                } else {
                    ArpOperation::Reply
                },
                sender_mac: sha,
                sender_ip: Ipv4Addr::from(spa),
                target_mac: tha,
                target_ip: Ipv4Addr::from(tpa),
            },
        })
}

/// Valid NS/NA packets (RFC 4861 constraints respected so that parse accepts them).
fn ndisc_packet() -> impl Strategy<Value = Packet> {
    (
        unicast_mac(),
        any_mac(),
        v6_unicast(),
        v6_unicast(),
        0u8..4,
        any::<u8>(),
        proptest::option::of(unicast_mac()),
    )
        .prop_map(|(src, dst, ip_src, target, kind, flags, ll)| {
            let (dst_ip, ndisc) = match kind {
                // NS to the solicited-node group.
                0 => (
                    solicited_node(target),
                    NdiscRepr::NeighborSolicit {
                        target_addr: target,
                        source_lladdr: ll,
                    },
                ),
                // DAD probe: unspecified source, no option.
                1 => (
                    solicited_node(target),
                    NdiscRepr::NeighborSolicit {
                        target_addr: target,
                        source_lladdr: None,
                    },
                ),
                // Unicast NA with any flags.
                2 => (
                    ip_src,
                    NdiscRepr::NeighborAdvert {
                        flags: NeighborFlags::from_bits_truncate(flags),
                        target_addr: target,
                        target_lladdr: ll,
                    },
                ),
                // Unsolicited NA to all-nodes.
                _ => (
                    "ff02::1".parse().unwrap(),
                    NdiscRepr::NeighborAdvert {
                        flags: NeighborFlags::from_bits_truncate(flags & !0x40),
                        target_addr: target,
                        target_lladdr: ll,
                    },
                ),
            };
            let src_ip = if kind == 1 {
                Ipv6Addr::UNSPECIFIED
            } else {
                ip_src
            };
            Packet::Ndisc {
                eth: EthernetRepr {
                    src_addr: src,
                    dst_addr: dst,
                    ethertype: EtherType::IPV6,
                },
                ip: Ipv6Repr {
                    src_addr: src_ip,
                    dst_addr: dst_ip,
                    next_header: 58,
                    payload_len: ndisc.buffer_len() as u16,
                    hop_limit: 255,
                },
                ndisc,
            }
        })
}

fn packet() -> impl Strategy<Value = Packet> {
    prop_oneof![arp_packet(), ndisc_packet()]
}

fn emit(p: &Packet) -> Vec<u8> {
    let mut b = vec![0; p.buffer_len()];
    p.emit(&mut b).unwrap();
    b
}

/// Checks what `decide` answers with: Ethernet source = ARP sender MAC / NA target
/// link-layer address = `me`, and it is a reply to the question asked.
fn check_answer(frame: &[u8], me: MacAddr) {
    let asked = Packet::parse(frame);
    if let FrameDecision::Answer(_, r) = decide(frame, me, |_| true) {
        let b = r.as_bytes();
        assert_eq!(&b[6..12], &me.0);
        match (
            asked.expect("answered an unparsable frame"),
            Packet::parse(b).unwrap(),
        ) {
            (Packet::Arp { arp: q, .. }, Packet::Arp { arp: a, .. }) => {
                assert_eq!(q.operation, ArpOperation::Request);
                assert_eq!(a.operation, ArpOperation::Reply);
                assert_eq!(a.sender_mac, me);
                assert_eq!(a.sender_ip, q.target_ip);
                assert_eq!(a.target_ip, q.sender_ip);
            }
            (
                Packet::Ndisc {
                    ndisc: NdiscRepr::NeighborSolicit { target_addr: q, .. },
                    ..
                },
                Packet::Ndisc {
                    ip,
                    ndisc:
                        NdiscRepr::NeighborAdvert {
                            target_addr,
                            target_lladdr,
                            flags,
                        },
                    ..
                },
            ) => {
                assert_eq!(target_addr, q);
                assert_eq!(ip.src_addr, q);
                assert_eq!(target_lladdr, Some(me));
                assert!(flags.contains(NeighborFlags::OVERRIDE));
                assert_eq!(ip.hop_limit, 255);
            }
            (q, a) => panic!("{q:?} answered with {a:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Packet::parse(&bytes);
        check_answer(&bytes, MacAddr([2, 0, 0, 0, 0, 0x0b]));
    }

    #[test]
    fn mutated_real_frames_never_panic_and_answers_stay_valid(
        which in 0usize..3,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut b = hex([ARP_REQUEST, NDP_NS_MULTICAST, NDP_NS_DAD][which]);
        for (i, x) in flips {
            let n = b.len();
            b[i % n] ^= x;
        }
        let keep = b.len() - cut % 8;
        b.truncate(keep);
        check_answer(&b, MacAddr([2, 0, 0, 0, 0, 0x0b]));
    }

    #[test]
    fn parse_of_emit_is_identity(p in packet()) {
        let b = emit(&p);
        prop_assert_eq!(Packet::parse(&b), Ok(p));
        // Ethernet padding does not change the result.
        let mut padded = b.clone();
        padded.resize(b.len().max(60) + 4, 0);
        prop_assert_eq!(Packet::parse(&padded), Ok(p));
    }

    #[test]
    fn valid_questions_for_announced_ips_are_answered(p in packet(), me in unicast_mac()) {
        let b = emit(&p);
        let d = decide(&b, me, |_| true);
        let should = match p {
            Packet::Arp { arp, .. } => arp.operation == ArpOperation::Request && arp.sender_ip != arp.target_ip,
            Packet::Ndisc { ndisc, .. } => matches!(ndisc, NdiscRepr::NeighborSolicit { .. }),
        };
        prop_assert_eq!(matches!(d, FrameDecision::Answer(..)), should, "{:?} -> {:?}", p, d);
        check_answer(&b, me);
    }

    #[test]
    fn nothing_is_answered_for_ips_not_announced(p in packet(), me in unicast_mac()) {
        let b = emit(&p);
        prop_assert!(!matches!(decide(&b, me, |_| false), FrameDecision::Answer(..)));
    }

    #[test]
    fn only_the_announced_target_is_answered(p in arp_packet(), me in unicast_mac()) {
        let b = emit(&p);
        let Packet::Arp { arp, .. } = p else { unreachable!() };
        let d = decide(&b, me, |ip| ip == IpAddr::V4(arp.target_ip));
        let d_other = decide(&b, me, |ip| ip != IpAddr::V4(arp.target_ip));
        prop_assert!(!matches!(d_other, FrameDecision::Answer(..)));
        if arp.operation == ArpOperation::Request && arp.sender_ip != arp.target_ip {
            prop_assert!(matches!(d, FrameDecision::Answer(..)));
        }
    }

    #[test]
    fn gratuitous_frames_parse_back(me in unicast_mac(), v4 in any::<[u8; 4]>(), v6 in v6_unicast(), req in any::<bool>()) {
        let form = if req { GratuitousForm::Request } else { GratuitousForm::Reply };
        let g = gratuitous_arp(me, Ipv4Addr::from(v4), form);
        let Ok(Packet::Arp { eth, arp }) = Packet::parse(g.as_bytes()) else { panic!() };
        prop_assert_eq!(eth.src_addr, me);
        prop_assert_eq!(eth.dst_addr, MacAddr::BROADCAST);
        prop_assert_eq!(arp.sender_mac, me);
        prop_assert_eq!(arp.sender_ip, arp.target_ip);
        let n = unsolicited_na(me, v6);
        let Ok(Packet::Ndisc { eth, ndisc, .. }) = Packet::parse(n.as_bytes()) else { panic!() };
        prop_assert_eq!(eth.src_addr, me);
        prop_assert_eq!(ndisc, NdiscRepr::NeighborAdvert { flags: NeighborFlags::OVERRIDE, target_addr: v6, target_lladdr: Some(me) });
    }

    #[test]
    fn solicited_node_mac_has_the_33_33_ff_prefix(a in v6_unicast()) {
        let m = solicited_node_mac(a);
        prop_assert_eq!(&m.0[..3], &[0x33, 0x33, 0xff]);
        prop_assert_eq!(&m.0[3..], &a.octets()[13..]);
    }
}
