//! ARP for IPv4 over Ethernet (RFC 826), read and written through `pnet_packet`'s
//! [`ArpPacket`] / [`MutableArpPacket`]. Any other hardware or protocol type is
//! unsupported: the speaker only resolves IPv4 addresses on Ethernet links.
//!
//! pnet's layout is the fixed 28-byte Ethernet/IPv4 one and ignores the two declared
//! address lengths, so [`ArpRepr::parse`] checks them first (ferrolb's own check): a
//! packet whose declared lengths run past the buffer is truncated, and one that declares
//! other lengths is not Ethernet/IPv4 and never reaches pnet's accessors.

use std::net::Ipv4Addr;

use pnet_packet::arp::{self as pnet_arp, ArpHardwareTypes, ArpPacket, MutableArpPacket};
use pnet_packet::ethernet::EtherTypes;

use super::{Error, MacAddr, Result, check_len};

const LAYER: &str = "arp";

/// Length of an Ethernet/IPv4 ARP packet.
pub const LEN: usize = 28;
/// Hardware type, protocol type, the two address lengths, operation.
const FIXED_LEN: usize = 8;

/// ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// 1: who-has.
    Request,
    /// 2: is-at.
    Reply,
}

impl From<ArpOperation> for pnet_arp::ArpOperation {
    fn from(op: ArpOperation) -> Self {
        match op {
            ArpOperation::Request => pnet_arp::ArpOperations::Request,
            ArpOperation::Reply => pnet_arp::ArpOperations::Reply,
        }
    }
}

/// Wraps the Ethernet payload `p` as an ARP packet after checking the declared address
/// lengths (which pnet does not read): shorter than the fixed part or than the addresses
/// it declares is truncated; not 6-byte hardware and 4-byte protocol addresses, or
/// shorter than 28 bytes, is unsupported. Trailing bytes (Ethernet padding) are allowed.
pub fn packet(p: &[u8]) -> Result<ArpPacket<'_>> {
    check_len(LAYER, p.len(), FIXED_LEN)?;
    let (hlen, plen) = (usize::from(p[4]), usize::from(p[5]));
    check_len(LAYER, p.len(), FIXED_LEN + 2 * (hlen + plen))?;
    match ArpPacket::new(p) {
        Some(a) if hlen == 6 && plen == 4 => Ok(a),
        _ => Err(not_eth_ipv4()),
    }
}

fn not_eth_ipv4() -> Error {
    Error::Unsupported {
        layer: LAYER,
        what: "not Ethernet/IPv4 ARP",
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
    /// Reads an Ethernet/IPv4 ARP packet (as wrapped by [`packet`]); other hardware or
    /// protocol types and operations (RARP, InARP, ...) are unsupported, and a group
    /// sender MAC is malformed.
    pub fn parse(p: &ArpPacket<'_>) -> Result<ArpRepr> {
        if p.get_hardware_type() != ArpHardwareTypes::Ethernet
            || p.get_protocol_type() != EtherTypes::Ipv4
            || p.get_hw_addr_len() != 6
            || p.get_proto_addr_len() != 4
        {
            return Err(not_eth_ipv4());
        }
        let operation = match p.get_operation() {
            pnet_arp::ArpOperations::Request => ArpOperation::Request,
            pnet_arp::ArpOperations::Reply => ArpOperation::Reply,
            _ => {
                return Err(Error::Unsupported {
                    layer: LAYER,
                    what: "operation other than request/reply",
                });
            }
        };
        let sender_mac = MacAddr::from(p.get_sender_hw_addr());
        if !sender_mac.is_unicast() {
            return Err(Error::Malformed {
                layer: LAYER,
                what: "sender hardware address is not unicast",
            });
        }
        Ok(ArpRepr {
            operation,
            sender_mac,
            sender_ip: p.get_sender_proto_addr(),
            target_mac: MacAddr::from(p.get_target_hw_addr()),
            target_ip: p.get_target_proto_addr(),
        })
    }

    /// Bytes [`ArpRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        LEN
    }

    /// Writes the packet into the first 28 bytes of `p`.
    pub fn emit(&self, p: &mut MutableArpPacket<'_>) {
        p.set_hardware_type(ArpHardwareTypes::Ethernet);
        p.set_protocol_type(EtherTypes::Ipv4);
        p.set_hw_addr_len(6);
        p.set_proto_addr_len(4);
        p.set_operation(self.operation.into());
        p.set_sender_hw_addr(self.sender_mac.into());
        p.set_sender_proto_addr(self.sender_ip);
        p.set_target_hw_addr(self.target_mac.into());
        p.set_target_proto_addr(self.target_ip);
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
        .emit(&mut MutableArpPacket::new(&mut b[..]).unwrap());
        b
    }

    fn parse(b: &[u8]) -> Result<ArpRepr> {
        ArpRepr::parse(&packet(b)?)
    }

    #[test]
    fn emitted_request_has_the_ethernet_ipv4_layout() {
        assert_eq!(
            request(),
            [
                0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 192, 0, 2, 100, 0, 0, 0, 0, 0, 0, 192, 0,
                2, 1
            ]
        );
        assert!(parse(&request()).is_ok());
    }

    #[test]
    fn other_hardware_type_is_unsupported() {
        let mut b = request();
        b[1] = 6; // IEEE 802
        assert!(matches!(parse(&b), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn other_protocol_type_is_unsupported() {
        let mut b = request();
        b[2..4].copy_from_slice(&[0x86, 0xdd]);
        assert!(matches!(parse(&b), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn other_declared_address_lengths_are_unsupported() {
        // 8 + 2 * (6 + 16) = 52 bytes: present, but not Ethernet/IPv4 (pnet would read
        // the first 4 bytes of the 16-byte addresses as IPv4 ones).
        let mut b = [0u8; 52];
        b[..8].copy_from_slice(&request()[..8]);
        b[5] = 16;
        assert!(matches!(parse(&b), Err(Error::Unsupported { .. })));
        // Declared lengths that fit in fewer than 28 bytes.
        let mut b = request();
        b[4] = 1;
        b[5] = 1;
        assert!(matches!(parse(&b[..12]), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn rarp_operation_is_unsupported() {
        let mut b = request();
        b[7] = 3;
        assert!(matches!(parse(&b), Err(Error::Unsupported { .. })));
    }

    #[test]
    fn declared_lengths_beyond_buffer_are_truncated() {
        let mut b = request();
        b[4] = 200;
        assert!(matches!(packet(&b[..]), Err(Error::Truncated { .. })));
        assert!(matches!(
            packet(&request()[..7]),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            packet(&request()[..27]),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn broadcast_sender_is_malformed() {
        let mut b = request();
        b[8..14].copy_from_slice(&[0xff; 6]);
        assert!(matches!(parse(&b), Err(Error::Malformed { .. })));
    }
}
