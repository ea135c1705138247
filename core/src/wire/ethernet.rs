//! Ethernet II frames (no FCS: Linux hands frames to packet sockets without it).

use super::{Error, MacAddr, Result, check_len};

const LAYER: &str = "ethernet";

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

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone)]
pub struct EthernetFrame<T> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the header: destination, source, EtherType.
    pub const HEADER_LEN: usize = 14;

    /// Wraps a buffer without checking its length; accessors may then panic, so use
    /// [`EthernetFrame::new_checked`] on anything received.
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer that holds at least a whole header.
    pub fn new_checked(buffer: T) -> Result<Self> {
        check_len(LAYER, buffer.as_ref().len(), Self::HEADER_LEN)?;
        Ok(EthernetFrame { buffer })
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    pub fn dst_addr(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[0..6].try_into().expect("6 bytes"))
    }

    /// Source address.
    pub fn src_addr(&self) -> MacAddr {
        MacAddr(self.buffer.as_ref()[6..12].try_into().expect("6 bytes"))
    }

    /// EtherType.
    pub fn ethertype(&self) -> EtherType {
        let b = self.buffer.as_ref();
        EtherType(u16::from_be_bytes([b[12], b[13]]))
    }

    /// Everything after the header (including any padding up to the 60-byte minimum).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[Self::HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[0..6].copy_from_slice(&a.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[6..12].copy_from_slice(&a.0);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, t: EtherType) {
        self.buffer.as_mut()[12..14].copy_from_slice(&t.0.to_be_bytes());
    }

    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[Self::HEADER_LEN..]
    }
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
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        let ethertype = frame.ethertype();
        if ethertype == EtherType::VLAN || ethertype == EtherType::QINQ {
            return Err(Error::Unsupported {
                layer: LAYER,
                what: "VLAN-tagged frame",
            });
        }
        let src_addr = frame.src_addr();
        if src_addr.is_multicast() {
            return Err(Error::Malformed {
                layer: LAYER,
                what: "multicast source address",
            });
        }
        Ok(EthernetRepr {
            src_addr,
            dst_addr: frame.dst_addr(),
            ethertype,
        })
    }

    /// Length of the header this emits.
    pub const fn buffer_len(&self) -> usize {
        14
    }

    /// Writes the header into the first 14 bytes of `frame`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffer_is_truncated_error() {
        let e = EthernetFrame::new_checked(&[0u8; 13][..]).unwrap_err();
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
        let f = EthernetFrame::new_checked(&b[..]).unwrap();
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
        let f = EthernetFrame::new_checked(&b[..]).unwrap();
        assert!(matches!(
            EthernetRepr::parse(&f),
            Err(Error::Malformed { .. })
        ));
    }
}
