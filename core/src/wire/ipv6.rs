//! The fixed IPv6 header (RFC 8200), read and written through `pnet_packet`'s
//! [`Ipv6Packet`] / [`MutableIpv6Packet`]; the solicited-node multicast address (RFC 4291
//! §2.7.1) and its Ethernet mapping (RFC 2464 §7).
//!
//! Extension headers are not walked: Neighbor Discovery messages are sent without them
//! (Linux, and every stack the speaker meets, put ICMPv6 right after the fixed header),
//! so a packet whose next header is not ICMPv6 is unsupported and dropped.

use std::net::Ipv6Addr;

use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv6::{Ipv6Packet, MutableIpv6Packet};

use super::{Error, MacAddr, Result, check_len};

const LAYER: &str = "ipv6";

/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;

/// IP protocol number of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;

/// ff02::1, all nodes on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The solicited-node multicast address of `addr`: `ff02::1:ff` followed by its low 24
/// bits. A Neighbor Solicitation for `addr` is sent there.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet multicast MAC of an IPv6 multicast address: `33:33` followed by its low
/// 32 bits (RFC 2464 §7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The MAC of `addr`'s solicited-node group, `33:33:ff:xx:xx:xx`: the group a NIC must
/// accept for solicitations of `addr` to arrive.
pub fn solicited_node_mac(addr: Ipv6Addr) -> MacAddr {
    multicast_mac(solicited_node(addr))
}

/// Wraps the Ethernet payload `p` as an IPv6 packet holding the fixed header and the
/// payload length it declares; shorter is [`Error::Truncated`]. Trailing bytes (Ethernet
/// padding) are allowed: the packet's `payload()` is exactly the declared length.
pub fn packet(p: &[u8]) -> Result<Ipv6Packet<'_>> {
    check_len(LAYER, p.len(), HEADER_LEN)?;
    let declared = usize::from(u16::from_be_bytes([p[4], p[5]]));
    // pnet clamps a payload that runs past the buffer; the speaker drops it instead.
    check_len(LAYER, p.len(), HEADER_LEN + declared)?;
    Ipv6Packet::new(p).ok_or(Error::Truncated {
        layer: LAYER,
        need: HEADER_LEN,
        have: p.len(),
    })
}

/// The fixed IPv6 header as the speaker uses it. Traffic class and flow label are not
/// kept: they are read as anything and written as zero (as Linux does for ND).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header (58 for ICMPv6).
    pub next_header: u8,
    /// Payload length.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Reads the fixed header; a version other than 6, or a multicast source, is
    /// malformed.
    pub fn parse(p: &Ipv6Packet<'_>) -> Result<Ipv6Repr> {
        if p.get_version() != 6 {
            return Err(Error::Malformed {
                layer: LAYER,
                what: "version is not 6",
            });
        }
        let src_addr = p.get_source();
        if src_addr.is_multicast() {
            return Err(Error::Malformed {
                layer: LAYER,
                what: "multicast source address",
            });
        }
        Ok(Ipv6Repr {
            src_addr,
            dst_addr: p.get_destination(),
            next_header: p.get_next_header().0,
            payload_len: p.get_payload_length(),
            hop_limit: p.get_hop_limit(),
        })
    }

    /// Bytes the header takes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 40 bytes of `p`.
    pub fn emit(&self, p: &mut MutableIpv6Packet<'_>) {
        p.set_version(6);
        p.set_traffic_class(0);
        p.set_flow_label(0);
        p.set_payload_length(self.payload_len);
        p.set_next_header(IpNextHeaderProtocol(self.next_header));
        p.set_hop_limit(self.hop_limit);
        p.set_source(self.src_addr);
        p.set_destination(self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet_packet::Packet as _;

    #[test]
    fn solicited_node_of_documentation_address() {
        let a: Ipv6Addr = "2001:db8::12:3456".parse().unwrap();
        assert_eq!(
            solicited_node(a),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            solicited_node_mac(a),
            MacAddr([0x33, 0x33, 0xff, 0x12, 0x34, 0x56])
        );
        assert_eq!(multicast_mac(ALL_NODES), MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    }

    #[test]
    fn declared_payload_beyond_buffer_is_truncated() {
        let mut b = [0u8; 48];
        b[0] = 0x60;
        b[5] = 9;
        assert!(matches!(
            packet(&b[..]),
            Err(Error::Truncated {
                need: 49,
                have: 48,
                ..
            })
        ));
        b[5] = 8;
        assert_eq!(packet(&b[..]).unwrap().payload().len(), 8);
        // Padding after the declared payload is not part of it.
        b[5] = 3;
        assert_eq!(packet(&b[..]).unwrap().payload().len(), 3);
    }

    #[test]
    fn version_four_is_malformed() {
        let mut b = [0u8; 40];
        b[0] = 0x45;
        let p = packet(&b[..]).unwrap();
        assert!(matches!(Ipv6Repr::parse(&p), Err(Error::Malformed { .. })));
    }

    #[test]
    fn emit_writes_the_fixed_header_where_parse_reads_it() {
        let r = Ipv6Repr {
            src_addr: "2001:db8::1".parse().unwrap(),
            dst_addr: "ff02::1".parse().unwrap(),
            next_header: NEXT_HEADER_ICMPV6,
            payload_len: 0,
            hop_limit: 255,
        };
        let mut b = [0xaau8; 40];
        r.emit(&mut MutableIpv6Packet::new(&mut b).unwrap());
        assert_eq!(b[..8], [0x60, 0, 0, 0, 0, 0, 58, 255]);
        assert_eq!(b[8..24], r.src_addr.octets());
        assert_eq!(b[24..40], r.dst_addr.octets());
        assert_eq!(Ipv6Repr::parse(&packet(&b).unwrap()), Ok(r));
    }
}
