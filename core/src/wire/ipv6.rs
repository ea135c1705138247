//! The fixed IPv6 header (RFC 8200), the solicited-node multicast address (RFC 4291
//! §2.7.1), its Ethernet mapping (RFC 2464 §7) and the ICMPv6 checksum (RFC 4443 §2.3).
//!
//! Extension headers are not walked: Neighbor Discovery messages are sent without them
//! (Linux, and every stack the speaker meets, put ICMPv6 right after the fixed header),
//! so a packet whose next header is not ICMPv6 is unsupported and dropped.

use std::net::Ipv6Addr;

use super::{Error, MacAddr, Result, check_len};

const LAYER: &str = "ipv6";

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

/// The Internet checksum (one's complement of the one's complement sum) of ICMPv6
/// `message` with the IPv6 pseudo-header of `src`, `dst`. With the checksum field
/// included, a correct message sums to 0.
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        let mut chunks = bytes.chunks_exact(2);
        for c in &mut chunks {
            sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(u16::from_be_bytes([*last, 0]));
        }
    };
    add(&src.octets());
    add(&dst.octets());
    // Upper-layer length fits in 32 bits for anything the codecs accept.
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(message);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Length of the fixed header.
    pub const HEADER_LEN: usize = 40;

    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer holding the fixed header and the payload length it declares
    /// (trailing bytes, such as Ethernet padding, are allowed and ignored).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        check_len(LAYER, b.len(), Self::HEADER_LEN)?;
        let p = Ipv6Packet { buffer };
        check_len(
            LAYER,
            p.buffer.as_ref().len(),
            Self::HEADER_LEN + usize::from(p.payload_len()),
        )?;
        Ok(p)
    }

    /// The version field (6 for IPv6).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    /// Payload length.
    pub fn payload_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[4], b[5]])
    }
    /// Next header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[6]
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }
    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        let b: [u8; 16] = self.buffer.as_ref()[8..24].try_into().expect("16");
        Ipv6Addr::from(b)
    }
    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        let b: [u8; 16] = self.buffer.as_ref()[24..40].try_into().expect("16");
        Ipv6Addr::from(b)
    }
    /// The payload, exactly `payload_len` bytes.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..Self::HEADER_LEN + usize::from(self.payload_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// The payload, writable (`payload_len` bytes: set it first).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = Self::HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[Self::HEADER_LEN..end]
    }
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
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Ipv6Repr> {
        if p.version() != 6 {
            return Err(Error::Malformed {
                layer: LAYER,
                what: "version is not 6",
            });
        }
        let src_addr = p.src_addr();
        if src_addr.is_multicast() {
            return Err(Error::Malformed {
                layer: LAYER,
                what: "multicast source address",
            });
        }
        Ok(Ipv6Repr {
            src_addr,
            dst_addr: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
        })
    }

    /// Bytes the header takes.
    pub const fn buffer_len(&self) -> usize {
        40
    }

    /// Writes the header into the first 40 bytes of `p`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv6Packet<T>) {
        let b = p.buffer.as_mut();
        b[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
        b[4..6].copy_from_slice(&self.payload_len.to_be_bytes());
        b[6] = self.next_header;
        b[7] = self.hop_limit;
        b[8..24].copy_from_slice(&self.src_addr.octets());
        b[24..40].copy_from_slice(&self.dst_addr.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Ipv6Packet::new_checked(&b[..]),
            Err(Error::Truncated {
                need: 49,
                have: 48,
                ..
            })
        ));
        b[5] = 8;
        assert_eq!(Ipv6Packet::new_checked(&b[..]).unwrap().payload().len(), 8);
    }

    #[test]
    fn version_four_is_malformed() {
        let mut b = [0u8; 40];
        b[0] = 0x45;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert!(matches!(Ipv6Repr::parse(&p), Err(Error::Malformed { .. })));
    }

    #[test]
    fn message_with_its_checksum_sums_to_zero() {
        let s: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let d: Ipv6Addr = "2001:db8::1".parse().unwrap();
        // Odd length exercises the zero padding of the last byte.
        let mut m = [0x87, 0, 0, 0, 1, 2, 3, 4, 5];
        let c = icmpv6_checksum(&s, &d, &m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(icmpv6_checksum(&s, &d, &m), 0);
        m[8] ^= 1;
        assert_ne!(icmpv6_checksum(&s, &d, &m), 0);
    }
}
