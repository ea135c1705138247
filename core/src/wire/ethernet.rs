//! Ethernet II frames (no FCS: Linux hands frames to packet sockets without it), read and
//! written through `pnet_packet`'s [`EthernetPacket`] / [`MutableEthernetPacket`].

use pnet_packet::ethernet::{self as pnet_eth, EthernetPacket, MutableEthernetPacket};

use super::{Error, MacAddr, Result};

const LAYER: &str = "ethernet";

/// Length of the header: destination, source, EtherType.
pub const HEADER_LEN: usize = 14;

/// The EtherType field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP.
    pub const ARP: EtherType = EtherType(0x0806);
    /// IPv6.
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// 802.1Q VLAN tag.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// 802.1ad service VLAN tag (QinQ).
    pub const QINQ: EtherType = EtherType(0x88a8);
}

impl From<pnet_eth::EtherType> for EtherType {
    fn from(t: pnet_eth::EtherType) -> Self {
        EtherType(t.0)
    }
}

impl From<EtherType> for pnet_eth::EtherType {
    fn from(t: EtherType) -> Self {
        pnet_eth::EtherType(t.0)
    }
}

/// Wraps a received frame; a buffer shorter than the header is [`Error::Truncated`].
pub fn packet(frame: &[u8]) -> Result<EthernetPacket<'_>> {
    EthernetPacket::new(frame).ok_or(Error::Truncated {
        layer: LAYER,
        need: HEADER_LEN,
        have: frame.len(),
    })
}

/// The header fields of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source address.
    pub src_addr: MacAddr,
    /// Destination address.
    pub dst_addr: MacAddr,
    /// EtherType.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header. A frame with a multicast source address is malformed (no
    /// station sends from a group address); a VLAN-tagged frame is unsupported (see
    /// the module documentation of [`crate::wire`]).
    pub fn parse(frame: &EthernetPacket<'_>) -> Result<EthernetRepr> {
        let ethertype = EtherType::from(frame.get_ethertype());
        if ethertype == EtherType::VLAN || ethertype == EtherType::QINQ {
            return Err(Error::Unsupported {
                layer: LAYER,
                what: "VLAN-tagged frame",
            });
        }
        let src_addr = MacAddr::from(frame.get_source());
        if src_addr.is_multicast() {
            return Err(Error::Malformed {
                layer: LAYER,
                what: "multicast source address",
            });
        }
        Ok(EthernetRepr {
            src_addr,
            dst_addr: MacAddr::from(frame.get_destination()),
            ethertype,
        })
    }

    /// Length of the header this emits.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 14 bytes of `frame`.
    pub fn emit(&self, frame: &mut MutableEthernetPacket<'_>) {
        frame.set_destination(self.dst_addr.into());
        frame.set_source(self.src_addr.into());
        frame.set_ethertype(self.ethertype.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffer_is_truncated_error() {
        let e = packet(&[0u8; 13][..]).unwrap_err();
        assert_eq!(
            e,
            Error::Truncated {
                layer: "ethernet",
                need: 14,
                have: 13
            }
        );
    }

    #[test]
    fn vlan_tagged_frame_is_unsupported() {
        let mut b = [0u8; 18];
        b[6] = 2;
        b[12..14].copy_from_slice(&[0x81, 0x00]);
        let f = packet(&b[..]).unwrap();
        assert!(matches!(
            EthernetRepr::parse(&f),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn multicast_source_is_malformed() {
        let mut b = [0u8; 14];
        b[6] = 1;
        b[12..14].copy_from_slice(&[0x08, 0x06]);
        let f = packet(&b[..]).unwrap();
        assert!(matches!(
            EthernetRepr::parse(&f),
            Err(Error::Malformed { .. })
        ));
    }

    #[test]
    fn emit_writes_the_fields_where_parse_reads_them() {
        let r = EthernetRepr {
            src_addr: MacAddr([2, 0, 0, 0, 0, 0x0b]),
            dst_addr: MacAddr([2, 0, 0, 0, 0, 0x0a]),
            ethertype: EtherType::ARP,
        };
        let mut b = [0u8; 14];
        r.emit(&mut MutableEthernetPacket::new(&mut b).unwrap());
        assert_eq!(b, [2, 0, 0, 0, 0, 0x0a, 2, 0, 0, 0, 0, 0x0b, 0x08, 0x06]);
        assert_eq!(EthernetRepr::parse(&packet(&b).unwrap()), Ok(r));
    }
}
