//! The codecs against real frames captured from Linux 6.18 (iputils arping, kernel ND)
//! between host A 02:00:00:00:00:0a (192.0.2.100, 2001:db8::100) and host B
//! 02:00:00:00:00:0b (192.0.2.1, 2001:db8::1), whole Ethernet frames without FCS.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_core::wire::{
    ArpOperation, ArpRepr, Error, EtherType, EthernetRepr, FrameDecision, GratuitousForm, MacAddr,
    NdiscRepr, NeighborFlags, Packet, Protocol, decide, gratuitous_arp, respond,
    solicited_node_mac, unsolicited_na,
};

const ARP_REQUEST: &str =
    "ffffffffffff02000000000a0806000108000604000102000000000ac0000264000000000000c0000201";
const ARP_REPLY: &str =
    "02000000000a02000000000b0806000108000604000202000000000bc000020102000000000ac0000264";
const NDP_NS_MULTICAST: &str = "3333ff00000102000000000a86dd6000000000203aff20010db8000000000000000000000100ff0200000000000000000001ff00000187001b210000000020010db8000000000000000000000001010102000000000a";
const NDP_NA_SOLICITED: &str = "02000000000a02000000000b86dd6000000000203aff20010db800000000000000000000000120010db80000000000000000000001008800896b6000000020010db8000000000000000000000001020102000000000b";
const GARP_REQUEST: &str =
    "ffffffffffff02000000000b0806000108000604000102000000000bc0000201ffffffffffffc0000201";
const GARP_REPLY: &str =
    "ffffffffffff02000000000b0806000108000604000202000000000bc000020102000000000bc0000201";
const NDP_NS_UNICAST: &str = "02000000000b02000000000a86dd6000000000203afffe80000000000000000000fffe00000afe80000000000000000000fffe00000b87007cf700000000fe80000000000000000000fffe00000b010102000000000a";
const NDP_NA_NO_TLLA: &str = "02000000000a02000000000b86dd6000000000183afffe80000000000000000000fffe00000bfe80000000000000000000fffe00000a88003f0a40000000fe80000000000000000000fffe00000b";
const NDP_NS_DAD: &str = "3333ff00000302000000000a86dd6000000000203aff00000000000000000000000000000000ff0200000000000000000001ff0000038700a6070000000020010db80000000000000000000000030e0152a4710ad529";

const ALL: [&str; 9] = [
    ARP_REQUEST,
    ARP_REPLY,
    NDP_NS_MULTICAST,
    NDP_NA_SOLICITED,
    GARP_REQUEST,
    GARP_REPLY,
    NDP_NS_UNICAST,
    NDP_NA_NO_TLLA,
    NDP_NS_DAD,
];

const MAC_A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0a]);
const MAC_B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0x0b]);

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn set(ips: &[&str]) -> BTreeSet<IpAddr> {
    ips.iter().map(|s| s.parse().unwrap()).collect()
}

/// B's view: it announces `ips`.
fn b_decides(frame: &[u8], ips: &[&str]) -> FrameDecision {
    let s = set(ips);
    decide(frame, MAC_B, |ip| s.contains(&ip))
}

#[test]
fn arp_request_parses() {
    let p = Packet::parse(&hex(ARP_REQUEST)).unwrap();
    assert_eq!(
        p,
        Packet::Arp {
            eth: EthernetRepr {
                src_addr: MAC_A,
                dst_addr: MacAddr::BROADCAST,
                ethertype: EtherType::ARP
            },
            arp: ArpRepr {
                operation: ArpOperation::Request,
                sender_mac: MAC_A,
                sender_ip: v4("192.0.2.100"),
                target_mac: MacAddr::ZERO,
                target_ip: v4("192.0.2.1"),
            }
        }
    );
}

#[test]
fn answer_to_arp_request_is_byte_identical_to_the_kernels() {
    let d = b_decides(&hex(ARP_REQUEST), &["192.0.2.1"]);
    match d {
        FrameDecision::Answer(Protocol::Arp, r) => assert_eq!(r.as_bytes(), &hex(ARP_REPLY)[..]),
        other => panic!("expected an ARP answer, got {other:?}"),
    }
}

#[test]
fn arp_request_padded_to_ethernet_minimum_is_answered_the_same() {
    let mut f = hex(ARP_REQUEST);
    f.resize(60, 0);
    let s = set(&["192.0.2.1"]);
    let r = respond(&f, MAC_B, |ip| s.contains(&ip)).unwrap();
    assert_eq!(r.as_bytes(), &hex(ARP_REPLY)[..]);
}

#[test]
fn arp_request_for_an_ip_not_announced_is_seen_not_answered() {
    assert_eq!(
        b_decides(&hex(ARP_REQUEST), &["192.0.2.2", "2001:db8::1"]),
        FrameDecision::NotAnnounced(Protocol::Arp)
    );
    assert_eq!(
        b_decides(&hex(ARP_REQUEST), &[]),
        FrameDecision::NotAnnounced(Protocol::Arp)
    );
}

#[test]
fn arp_reply_parses_and_is_never_answered() {
    let p = Packet::parse(&hex(ARP_REPLY)).unwrap();
    let Packet::Arp { eth, arp } = p else {
        panic!("not ARP: {p:?}")
    };
    assert_eq!(eth.src_addr, MAC_B);
    assert_eq!(arp.operation, ArpOperation::Reply);
    assert_eq!(arp.sender_ip, v4("192.0.2.1"));
    assert_eq!(arp.target_mac, MAC_A);
    // Even if A "announced" the addresses involved, a reply is not a question.
    let d = decide(&hex(ARP_REPLY), MAC_A, |_| true);
    assert!(
        matches!(d, FrameDecision::Drop(Error::Unsupported { .. })),
        "{d:?}"
    );
}

#[test]
fn arp_probe_from_unspecified_sender_is_answered_to_its_mac() {
    // RFC 5227 probe for 192.0.2.1 (built from the real request: sender IP zeroed).
    let mut f = hex(ARP_REQUEST);
    f[28..32].copy_from_slice(&[0, 0, 0, 0]);
    let FrameDecision::Answer(_, r) = b_decides(&f, &["192.0.2.1"]) else {
        panic!("probe not answered")
    };
    let Packet::Arp { eth, arp } = Packet::parse(r.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(eth.dst_addr, MAC_A);
    assert_eq!(arp.target_mac, MAC_A);
    assert_eq!(arp.target_ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!(arp.sender_ip, v4("192.0.2.1"));
}

#[test]
fn ns_to_solicited_node_group_parses() {
    let p = Packet::parse(&hex(NDP_NS_MULTICAST)).unwrap();
    let Packet::Ndisc { eth, ip, ndisc } = p else {
        panic!("not NDP: {p:?}")
    };
    assert_eq!(eth.dst_addr, solicited_node_mac(v6("2001:db8::1")));
    assert_eq!(eth.dst_addr, MacAddr([0x33, 0x33, 0xff, 0, 0, 1]));
    assert_eq!(ip.src_addr, v6("2001:db8::100"));
    assert_eq!(ip.dst_addr, v6("ff02::1:ff00:1"));
    assert_eq!(ip.hop_limit, 255);
    assert_eq!(
        ndisc,
        NdiscRepr::NeighborSolicit {
            target_addr: v6("2001:db8::1"),
            source_lladdr: Some(MAC_A)
        }
    );
}

#[test]
fn answer_to_multicast_ns_is_byte_identical_to_the_kernels_na() {
    match b_decides(&hex(NDP_NS_MULTICAST), &["2001:db8::1"]) {
        FrameDecision::Answer(Protocol::Ndp, r) => {
            assert_eq!(r.as_bytes(), &hex(NDP_NA_SOLICITED)[..])
        }
        other => panic!("expected an NA, got {other:?}"),
    }
}

#[test]
fn ns_for_an_ip_not_announced_is_seen_not_answered() {
    assert_eq!(
        b_decides(&hex(NDP_NS_MULTICAST), &["192.0.2.1", "2001:db8::2"]),
        FrameDecision::NotAnnounced(Protocol::Ndp)
    );
}

#[test]
fn na_parses_and_is_never_answered() {
    for f in [NDP_NA_SOLICITED, NDP_NA_NO_TLLA] {
        let p = Packet::parse(&hex(f)).unwrap();
        assert!(matches!(
            p,
            Packet::Ndisc {
                ndisc: NdiscRepr::NeighborAdvert { .. },
                ..
            }
        ));
        assert!(matches!(
            decide(&hex(f), MAC_A, |_| true),
            FrameDecision::Drop(_)
        ));
    }
    let Packet::Ndisc {
        ndisc:
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                target_lladdr,
            },
        ..
    } = Packet::parse(&hex(NDP_NA_SOLICITED)).unwrap()
    else {
        panic!()
    };
    assert_eq!(flags, NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE);
    assert_eq!(target_addr, v6("2001:db8::1"));
    assert_eq!(target_lladdr, Some(MAC_B));
    let Packet::Ndisc {
        ndisc:
            NdiscRepr::NeighborAdvert {
                flags,
                target_lladdr,
                ..
            },
        ..
    } = Packet::parse(&hex(NDP_NA_NO_TLLA)).unwrap()
    else {
        panic!()
    };
    assert_eq!(flags, NeighborFlags::SOLICITED);
    assert_eq!(target_lladdr, None);
}

#[test]
fn answer_to_unicast_ns_matches_the_kernels_but_adds_override_and_tlla() {
    // The kernel answers a unicast NS with S only and no option (ndp-na-no-tlla); the
    // speaker always sets S+O and the target link-layer option (allowed by RFC 4861
    // §7.2.4, and what makes a cache that still holds the previous node's MAC switch).
    let d = b_decides(&hex(NDP_NS_UNICAST), &["fe80::ff:fe00:b"]);
    let FrameDecision::Answer(Protocol::Ndp, r) = d else {
        panic!("{d:?}")
    };
    let ours = Packet::parse(r.as_bytes()).unwrap();
    let kernel = Packet::parse(&hex(NDP_NA_NO_TLLA)).unwrap();
    let (
        Packet::Ndisc {
            eth: e1,
            ip: i1,
            ndisc: n1,
        },
        Packet::Ndisc {
            eth: e2,
            ip: i2,
            ndisc: n2,
        },
    ) = (ours, kernel)
    else {
        panic!()
    };
    assert_eq!(e1, e2);
    assert_eq!(
        (i1.src_addr, i1.dst_addr, i1.hop_limit),
        (i2.src_addr, i2.dst_addr, i2.hop_limit)
    );
    assert_eq!(
        n1,
        NdiscRepr::NeighborAdvert {
            flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
            target_addr: v6("fe80::ff:fe00:b"),
            target_lladdr: Some(MAC_B),
        }
    );
    let NdiscRepr::NeighborAdvert { target_addr, .. } = n2 else {
        panic!()
    };
    assert_eq!(target_addr, v6("fe80::ff:fe00:b"));
    // Byte-level: identical apart from payload length, checksum, flags and the option.
    let (a, k) = (r.as_bytes(), hex(NDP_NA_NO_TLLA));
    assert_eq!(a[..18], k[..18]);
    assert_eq!(a[20..56], k[20..56]);
    assert_eq!(a[58], 0x60);
    assert_eq!(k[58], 0x40);
    assert_eq!(a[59..78], k[59..78]);
    assert_eq!(a[78..], [2, 1, 2, 0, 0, 0, 0, 0x0b]);
}

#[test]
fn unicast_ns_without_source_option_is_answered_to_the_frame_source() {
    let mut f = hex(NDP_NS_UNICAST);
    // Strip the option and fix lengths and checksum by re-emitting the parsed packet.
    let Packet::Ndisc { eth, ip, ndisc } = Packet::parse(&f).unwrap() else {
        panic!()
    };
    let NdiscRepr::NeighborSolicit { target_addr, .. } = ndisc else {
        panic!()
    };
    let stripped = Packet::Ndisc {
        eth,
        ip,
        ndisc: NdiscRepr::NeighborSolicit {
            target_addr,
            source_lladdr: None,
        },
    };
    f.truncate(stripped.buffer_len());
    stripped.emit(&mut f).unwrap();
    let FrameDecision::Answer(_, r) = b_decides(&f, &["fe80::ff:fe00:b"]) else {
        panic!()
    };
    assert_eq!(&r.as_bytes()[..6], &MAC_A.0);
}

#[test]
fn dad_probe_is_answered_to_all_nodes_without_solicited_flag() {
    let f = hex(NDP_NS_DAD);
    let Packet::Ndisc { ip, ndisc, .. } = Packet::parse(&f).unwrap() else {
        panic!()
    };
    assert!(ip.src_addr.is_unspecified());
    assert_eq!(
        ndisc,
        NdiscRepr::NeighborSolicit {
            target_addr: v6("2001:db8::3"),
            source_lladdr: None
        }
    );
    let FrameDecision::Answer(Protocol::Ndp, r) = b_decides(&f, &["2001:db8::3"]) else {
        panic!()
    };
    let Packet::Ndisc { eth, ip, ndisc } = Packet::parse(r.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(eth.dst_addr, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    assert_eq!(eth.src_addr, MAC_B);
    assert_eq!(ip.dst_addr, v6("ff02::1"));
    assert_eq!(ip.src_addr, v6("2001:db8::3"));
    assert_eq!(ip.hop_limit, 255);
    assert_eq!(
        ndisc,
        NdiscRepr::NeighborAdvert {
            flags: NeighborFlags::OVERRIDE,
            target_addr: v6("2001:db8::3"),
            target_lladdr: Some(MAC_B)
        }
    );
}

#[test]
fn ns_with_hop_limit_below_255_is_dropped() {
    let mut f = hex(NDP_NS_MULTICAST);
    f[21] = 254; // hop limit (not covered by the ICMPv6 checksum)
    let d = b_decides(&f, &["2001:db8::1"]);
    assert!(
        matches!(d, FrameDecision::Drop(Error::Malformed { .. })),
        "{d:?}"
    );
}

#[test]
fn ns_with_bad_checksum_is_dropped() {
    let mut f = hex(NDP_NS_MULTICAST);
    f[57] ^= 0xff;
    assert_eq!(
        b_decides(&f, &["2001:db8::1"]),
        FrameDecision::Drop(Error::Checksum { layer: "icmpv6" })
    );
}

#[test]
fn ns_sent_to_another_address_is_not_answered() {
    // Same NS re-addressed to 2001:db8::100's group: valid, but not for its target.
    let f = hex(NDP_NS_MULTICAST);
    let Packet::Ndisc { eth, mut ip, ndisc } = Packet::parse(&f).unwrap() else {
        panic!()
    };
    ip.dst_addr = v6("ff02::1:ff00:100");
    let p = Packet::Ndisc { eth, ip, ndisc };
    let mut g = vec![0; p.buffer_len()];
    p.emit(&mut g).unwrap();
    assert!(matches!(
        b_decides(&g, &["2001:db8::1"]),
        FrameDecision::Drop(_)
    ));
}

#[test]
fn gratuitous_arp_reply_form_is_byte_identical_to_arping_a() {
    let r = gratuitous_arp(MAC_B, v4("192.0.2.1"), GratuitousForm::Reply);
    assert_eq!(r.as_bytes(), &hex(GARP_REPLY)[..]);
}

#[test]
fn gratuitous_arp_request_form_differs_from_arping_u_only_in_target_mac() {
    // RFC 5227 §2.3 asks for a zero target hardware address (as the kernel itself
    // sends); arping -U puts ff:ff:ff:ff:ff:ff there. Receivers ignore the field.
    let r = gratuitous_arp(MAC_B, v4("192.0.2.1"), GratuitousForm::Request);
    let k = hex(GARP_REQUEST);
    assert_eq!(r.as_bytes().len(), k.len());
    assert_eq!(r.as_bytes()[..32], k[..32]);
    assert_eq!(r.as_bytes()[32..38], [0; 6]);
    assert_eq!(r.as_bytes()[38..], k[38..]);
    assert_eq!(GratuitousForm::default(), GratuitousForm::Request);
}

#[test]
fn gratuitous_arps_from_others_are_not_answered() {
    for f in [GARP_REQUEST, GARP_REPLY] {
        assert!(matches!(
            decide(&hex(f), MAC_A, |_| true),
            FrameDecision::Drop(_)
        ));
    }
}

#[test]
fn unsolicited_na_goes_to_all_nodes_with_override() {
    let r = unsolicited_na(MAC_B, v6("2001:db8::1"));
    // Same bytes as the kernel's solicited NA apart from addressing, flags, checksum.
    let Packet::Ndisc { eth, ip, ndisc } = Packet::parse(r.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(eth.src_addr, MAC_B);
    assert_eq!(eth.dst_addr, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    assert_eq!(ip.src_addr, v6("2001:db8::1"));
    assert_eq!(ip.dst_addr, v6("ff02::1"));
    assert_eq!(ip.hop_limit, 255);
    assert_eq!(
        ndisc,
        NdiscRepr::NeighborAdvert {
            flags: NeighborFlags::OVERRIDE,
            target_addr: v6("2001:db8::1"),
            target_lladdr: Some(MAC_B)
        }
    );
    let k = hex(NDP_NA_SOLICITED);
    assert_eq!(r.as_bytes()[12..38], k[12..38]);
    assert_eq!(r.as_bytes()[58], 0x20);
    assert_eq!(r.as_bytes()[59..], k[59..]);
}

#[test]
fn every_real_frame_parses_and_reemits_identically_where_canonical() {
    for (i, f) in ALL.iter().enumerate() {
        let b = hex(f);
        let p = Packet::parse(&b).unwrap_or_else(|e| panic!("frame {i}: {e}"));
        let mut out = vec![0; p.buffer_len()];
        p.emit(&mut out).unwrap();
        if *f == NDP_NS_DAD {
            // The nonce option is not kept, so only the frame without it comes back.
            assert_eq!(out.len(), b.len() - 8);
        } else {
            assert_eq!(out, b, "frame {i} re-emitted differently");
        }
    }
}

#[test]
fn every_prefix_of_every_real_frame_is_dropped_without_panic() {
    for f in ALL {
        let b = hex(f);
        let full = Packet::parse(&b).unwrap().buffer_len();
        for n in 0..full {
            let d = decide(&b[..n], MAC_B, |_| true);
            assert!(
                matches!(d, FrameDecision::Drop(_)),
                "prefix {n} of {f} gave {d:?}"
            );
        }
    }
}

#[test]
fn every_answer_carries_the_node_mac_as_ethernet_source_and_in_the_payload() {
    for f in ALL {
        if let Some(r) = respond(&hex(f), MAC_B, |_| true) {
            let b = r.as_bytes();
            assert_eq!(&b[6..12], &MAC_B.0);
            match Packet::parse(b).unwrap() {
                Packet::Arp { arp, .. } => assert_eq!(arp.sender_mac, MAC_B),
                Packet::Ndisc {
                    ndisc: NdiscRepr::NeighborAdvert { target_lladdr, .. },
                    ..
                } => assert_eq!(target_lladdr, Some(MAC_B)),
                other => panic!("answered with {other:?}"),
            }
        }
    }
}
