//! ARP for IPv4 over Ethernet (RFC 826). Any other hardware or protocol type is
//! unsupported: the speaker only resolves IPv4 addresses on Ethernet links.

use std::net::Ipv4Addr;

use super::{Error, MacAddr, Result, check_len};

const LAYER: &str = "arp";

/// ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// 1: who-has.
    Request,
    /// 2: is-at.
    Reply,
}

impl ArpOperation {
    fn code(self) -> u16 {
        match self {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
        }
    }
}

/// A read/write view of an ARP packet (the Ethernet payload).
#[derive(Debug, Clone)]
pub struct ArpPacket<T> {
    buffer: T,
}

mod field {
    use std::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const LEN: usize = 28;

    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps a buffer of at least the fixed header (8 bytes) and the addresses its
    /// declared lengths promise. Trailing bytes (Ethernet padding) are allowed.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        check_len(LAYER, b.len(), 8)?;
        let need = 8 + 2 * (usize::from(b[field::HLEN]) + usize::from(b[field::PLEN]));
        check_len(LAYER, b.len(), need)?;
        Ok(ArpPacket { buffer })
    }

    fn u16_at(&self, r: std::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        self.u16_at(field::HTYPE)
    }
    /// Protocol type (0x0800 = IPv4).
    pub fn protocol_type(&self) -> u16 {
        self.u16_at(field::PTYPE)
    }
    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    /// Raw operation code.
    pub fn operation(&self) -> u16 {
        self.u16_at(field::OPER)
    }

    fn is_eth_ipv4(&self) -> bool {
        self.hardware_type() == 1
            && self.protocol_type() == 0x0800
            && self.hardware_len() == 6
            && self.protocol_len() == 4
            && self.buffer.as_ref().len() >= Self::LEN
    }

    /// Sender hardware address (only meaningful for Ethernet/IPv4, as checked by
    /// [`ArpRepr::parse`]).
    pub fn sender_hardware_addr(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[field::SHA].try_into().expect("6"))
    }
    /// Sender protocol address.
    pub fn sender_protocol_addr(&self) -> Ipv4Addr {
        let b: [u8; 4] = self.buffer.as_ref()[field::SPA].try_into().expect("4");
        Ipv4Addr::from(b)
    }
    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[field::THA].try_into().expect("6"))
    }
    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        let b: [u8; 4] = self.buffer.as_ref()[field::TPA].try_into().expect("4");
        Ipv4Addr::from(b)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    fn set(&mut self, r: std::ops::Range<usize>, v: &[u8]) {
        self.buffer.as_mut()[r].copy_from_slice(v);
    }
}

/// An Ethernet/IPv4 ARP request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender IPv4 address (0.0.0.0 in an RFC 5227 probe).
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (ignored in requests).
    pub target_mac: MacAddr,
    /// Target IPv4 address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Reads an Ethernet/IPv4 ARP packet; other hardware/protocol types and operations
    /// (RARP, InARP, ...) are unsupported, and a group sender MAC is malformed.
    pub fn parse<T: AsRef<[u8]>>(p: &ArpPacket<T>) -> Result<ArpRepr> {
        if !p.is_eth_ipv4() {
            return Err(Error::Unsupported {
                layer: LAYER,
                what: "not Ethernet/IPv4 ARP",
            });
        }
        let operation = match p.operation() {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            _ => {
                return Err(Error::Unsupported {
                    layer: LAYER,
                    what: "operation other than request/reply",
                });
            }
        };
        let sender_mac = p.sender_hardware_addr();
        if !sender_mac.is_unicast() {
            return Err(Error::Malformed {
                layer: LAYER,
                what: "sender hardware address is not unicast",
            });
        }
        Ok(ArpRepr {
            operation,
            sender_mac,
            sender_ip: p.sender_protocol_addr(),
            target_mac: p.target_hardware_addr(),
            target_ip: p.target_protocol_addr(),
        })
    }

    /// Bytes [`ArpRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        ArpPacket::<&[u8]>::LEN
    }

    /// Writes the packet into the first 28 bytes of `p` (which must hold them).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut ArpPacket<T>) {
        p.set(field::HTYPE, &1u16.to_be_bytes());
        p.set(field::PTYPE, &0x0800u16.to_be_bytes());
        p.buffer.as_mut()[field::HLEN] = 6;
        p.buffer.as_mut()[field::PLEN] = 4;
        p.set(field::OPER, &self.operation.code().to_be_bytes());
        p.set(field::SHA, &self.sender_mac.0);
        p.set(field::SPA, &self.sender_ip.octets());
        p.set(field::THA, &self.target_mac.0);
        p.set(field::TPA, &self.target_ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> [u8; 28] {
        let mut b = [0u8; 28];
        ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            sender_ip: Ipv4Addr::new(192, 0, 2, 100),
            target_mac: MacAddr::ZERO,
            target_ip: Ipv4Addr::new(192, 0, 2, 1),
        }
        .emit(&mut ArpPacket::new_unchecked(&mut b[..]));
        b
    }

    #[test]
    fn other_hardware_type_is_unsupported() {
        let mut b = request();
        b[1] = 6; // IEEE 802
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert!(matches!(ArpRepr::parse(&p), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn other_protocol_type_is_unsupported() {
        let mut b = request();
        b[2..4].copy_from_slice(&[0x86, 0xdd]);
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert!(matches!(ArpRepr::parse(&p), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn rarp_operation_is_unsupported() {
        let mut b = request();
        b[7] = 3;
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert!(matches!(ArpRepr::parse(&p), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn declared_lengths_beyond_buffer_are_truncated() {
        let mut b = request();
        b[4] = 200;
        assert!(matches!(
            ArpPacket::new_checked(&b[..]),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            ArpPacket::new_checked(&b[..7]),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn broadcast_sender_is_malformed() {
        let mut b = request();
        b[8..14].copy_from_slice(&[0xff; 6]);
        let p = ArpPacket::new_checked(&b[..]).unwrap();
        assert!(matches!(ArpRepr::parse(&p), Err(Error::Malformed { .. })));
    }
}
