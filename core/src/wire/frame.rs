//! A whole received or sent frame of one of the kinds the speaker handles.

use super::{
    ArpPacket, ArpRepr, Error, EtherType, EthernetFrame, EthernetRepr, Ipv6Packet, Ipv6Repr,
    NdiscRepr, Result,
};

/// An ARP packet or a Neighbor Discovery message, with the headers that carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Packet {
    /// Ethernet + ARP.
    Arp {
        /// Ethernet header.
        eth: EthernetRepr,
        /// ARP packet.
        arp: ArpRepr,
    },
    /// Ethernet + IPv6 + ICMPv6 NS/NA.
    Ndisc {
        /// Ethernet header.
        eth: EthernetRepr,
        /// IPv6 header; [`Packet::emit`] derives its payload length and next header
        /// from `ndisc`.
        ip: Ipv6Repr,
        /// The message.
        ndisc: NdiscRepr,
    },
}

impl Packet {
    /// Parses a whole Ethernet frame (bytes after the message, such as padding, are
    /// ignored). Anything but Ethernet/IPv4 ARP and IPv6 NS/NA is an error.
    pub fn parse(frame: &[u8]) -> Result<Packet> {
        let f = EthernetFrame::new_checked(frame)?;
        let eth = EthernetRepr::parse(&f)?;
        match eth.ethertype {
            EtherType::ARP => {
                let p = ArpPacket::new_checked(f.payload())?;
                Ok(Packet::Arp {
                    eth,
                    arp: ArpRepr::parse(&p)?,
                })
            }
            EtherType::IPV6 => {
                let p = Ipv6Packet::new_checked(f.payload())?;
                let ip = Ipv6Repr::parse(&p)?;
                let ndisc = NdiscRepr::parse(&ip, p.payload())?;
                Ok(Packet::Ndisc { eth, ip, ndisc })
            }
            _ => Err(Error::Unsupported {
                layer: "ethernet",
                what: "EtherType is neither ARP nor IPv6",
            }),
        }
    }

    /// Length of the frame [`Packet::emit`] writes (no padding: the NIC pads to 60).
    pub fn buffer_len(&self) -> usize {
        match self {
            Packet::Arp { arp, .. } => 14 + arp.buffer_len(),
            Packet::Ndisc { ndisc, .. } => 14 + 40 + ndisc.buffer_len(),
        }
    }

    /// Writes the frame into `buf[..self.buffer_len()]`; returns that length, or `None`
    /// if `buf` is too short.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let len = self.buffer_len();
        let buf = buf.get_mut(..len)?;
        match self {
            Packet::Arp { eth, arp } => {
                let mut f = EthernetFrame::new_unchecked(&mut *buf);
                EthernetRepr {
                    ethertype: EtherType::ARP,
                    ..*eth
                }
                .emit(&mut f);
                arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
            }
            Packet::Ndisc { eth, ip, ndisc } => {
                let mut f = EthernetFrame::new_unchecked(&mut *buf);
                EthernetRepr {
                    ethertype: EtherType::IPV6,
                    ..*eth
                }
                .emit(&mut f);
                let ip = Ipv6Repr {
                    next_header: super::ipv6::NEXT_HEADER_ICMPV6,
                    payload_len: ndisc.buffer_len() as u16,
                    ..*ip
                };
                let mut p = Ipv6Packet::new_unchecked(f.payload_mut());
                ip.emit(&mut p);
                ndisc.emit(&ip.src_addr, &ip.dst_addr, p.payload_mut());
            }
        }
        Some(len)
    }
}
