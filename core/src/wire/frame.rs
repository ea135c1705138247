//! A whole received or sent frame of one of the kinds the speaker handles.

use pnet_packet::Packet as _;
use pnet_packet::arp::MutableArpPacket;
use pnet_packet::ethernet::MutableEthernetPacket;
use pnet_packet::ipv6::MutableIpv6Packet;

use super::{ArpRepr, Error, EtherType, EthernetRepr, Ipv6Repr, NdiscRepr, Result};
use super::{arp, ethernet, ipv6};

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
        let f = ethernet::packet(frame)?;
        let eth = EthernetRepr::parse(&f)?;
        match eth.ethertype {
            EtherType::ARP => {
                let p = arp::packet(f.payload())?;
                Ok(Packet::Arp {
                    eth,
                    arp: ArpRepr::parse(&p)?,
                })
            }
            EtherType::IPV6 => {
                let p = ipv6::packet(f.payload())?;
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
            Packet::Arp { arp, .. } => ethernet::HEADER_LEN + arp.buffer_len(),
            Packet::Ndisc { ndisc, .. } => {
                ethernet::HEADER_LEN + ipv6::HEADER_LEN + ndisc.buffer_len()
            }
        }
    }

    /// Writes the frame into `buf[..self.buffer_len()]`; returns that length, or `None`
    /// if `buf` is too short.
    pub fn emit(&self, buf: &mut [u8]) -> Option<usize> {
        let len = self.buffer_len();
        let buf = buf.get_mut(..len)?;
        // `buf` holds exactly `len` bytes, enough for every header below, so pnet's
        // constructors (which only check a minimum length) cannot fail.
        let (head, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
        let mut f = MutableEthernetPacket::new(head)?;
        match self {
            Packet::Arp { eth, arp } => {
                EthernetRepr {
                    ethertype: EtherType::ARP,
                    ..*eth
                }
                .emit(&mut f);
                arp.emit(&mut MutableArpPacket::new(rest)?);
            }
            Packet::Ndisc { eth, ip, ndisc } => {
                EthernetRepr {
                    ethertype: EtherType::IPV6,
                    ..*eth
                }
                .emit(&mut f);
                let ip = Ipv6Repr {
                    next_header: ipv6::NEXT_HEADER_ICMPV6,
                    payload_len: ndisc.buffer_len() as u16,
                    ..*ip
                };
                let (head, msg) = rest.split_at_mut(ipv6::HEADER_LEN);
                ip.emit(&mut MutableIpv6Packet::new(head)?);
                ndisc.emit(&ip.src_addr, &ip.dst_addr, msg);
            }
        }
        Some(len)
    }
}
