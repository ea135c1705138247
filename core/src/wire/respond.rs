//! What the speaker sends: the answer to a received frame, and gratuitous
//! announcements. Pure functions from bytes to bytes; the socket shell only moves them.
//!
//! Every frame built here carries the node's MAC both as Ethernet source and as ARP
//! sender / NDP target link-layer address, so that switches learn the port from the
//! same frame that updates the hosts' neighbour caches.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::frame::Packet;
use super::ipv6::{ALL_NODES, multicast_mac, solicited_node};
use super::{
    ArpOperation, ArpRepr, Error, EtherType, EthernetRepr, Ipv6Repr, MacAddr, NdiscRepr,
    NeighborFlags,
};

/// The address-resolution protocol a frame belongs to (for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// ARP (IPv4).
    Arp,
    /// Neighbor Discovery (IPv6).
    Ndp,
}

/// The largest frame the speaker sends: Ethernet + IPv6 + NA with a target
/// link-layer address option.
pub const MAX_REPLY_LEN: usize = 14 + 40 + 32;

/// A frame to send, built in place without allocating.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    buf: [u8; MAX_REPLY_LEN],
    len: u8,
}

impl Reply {
    fn build(p: &Packet) -> Reply {
        let mut buf = [0u8; MAX_REPLY_LEN];
        // Every packet this module builds fits in MAX_REPLY_LEN.
        let len = p.emit(&mut buf).expect("reply fits MAX_REPLY_LEN");
        Reply {
            buf,
            len: len as u8,
        }
    }

    /// The frame, from the destination MAC on, without padding or FCS.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply(")?;
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// What to do with a received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameDecision {
    /// Not a question the speaker answers: truncated, malformed, foreign (another
    /// EtherType, hardware type, VLAN...), or not a request (ARP reply, gratuitous ARP,
    /// Neighbor Advertisement, solicitation not addressed to its target).
    Drop(Error),
    /// A well-formed ARP request / Neighbor Solicitation for an address this node does
    /// not announce on this interface: seen, not answered.
    NotAnnounced(Protocol),
    /// Send this frame back on the interface the request came in on.
    Answer(Protocol, Reply),
}

fn ignored(layer: &'static str, what: &'static str) -> FrameDecision {
    FrameDecision::Drop(Error::Unsupported { layer, what })
}

/// Decides the reply to `frame`, received on an interface whose MAC is `my_mac` and on
/// which `is_announced(ip)` tells whether this node announces `ip`.
///
/// - ARP request (including an RFC 5227 probe from 0.0.0.0) whose target is announced →
///   ARP reply to the sender's MAC, `target is-at my_mac`. A gratuitous ARP from another
///   host (sender IP = target IP) is an announcement, not a question: never answered.
/// - Neighbor Solicitation (valid per RFC 4861 §7.1.1: hop limit 255, checksum...) sent
///   to the target's solicited-node group or to the target itself, whose target is
///   announced → Neighbor Advertisement from the target address with the override flag
///   and a target link-layer option. From a unicast source: solicited flag, sent to
///   that source and to its source link-layer option (or, without one, to the frame's
///   Ethernet source). From the unspecified address (DAD): no solicited flag, sent to
///   all-nodes ff02::1 (RFC 4861 §7.2.4).
/// - Anything else → [`FrameDecision::Drop`] / [`FrameDecision::NotAnnounced`]. Never panics.
pub fn decide(
    frame: &[u8],
    my_mac: MacAddr,
    is_announced: impl Fn(IpAddr) -> bool,
) -> FrameDecision {
    let packet = match Packet::parse(frame) {
        Ok(p) => p,
        Err(e) => return FrameDecision::Drop(e),
    };
    match packet {
        Packet::Arp { arp, .. } => {
            if arp.operation != ArpOperation::Request {
                return ignored("arp", "reply");
            }
            if arp.sender_ip == arp.target_ip {
                return ignored("arp", "gratuitous ARP");
            }
            if !is_announced(IpAddr::V4(arp.target_ip)) {
                return FrameDecision::NotAnnounced(Protocol::Arp);
            }
            let reply = Packet::Arp {
                eth: EthernetRepr {
                    src_addr: my_mac,
                    dst_addr: arp.sender_mac,
                    ethertype: EtherType::ARP,
                },
                arp: ArpRepr {
                    operation: ArpOperation::Reply,
                    sender_mac: my_mac,
                    sender_ip: arp.target_ip,
                    target_mac: arp.sender_mac,
                    target_ip: arp.sender_ip,
                },
            };
            FrameDecision::Answer(Protocol::Arp, Reply::build(&reply))
        }
        Packet::Ndisc {
            eth,
            ip,
            ndisc:
                NdiscRepr::NeighborSolicit {
                    target_addr,
                    source_lladdr,
                },
        } => {
            if ip.dst_addr != target_addr && ip.dst_addr != solicited_node(target_addr) {
                return ignored("ndisc", "solicitation not addressed to its target");
            }
            if !is_announced(IpAddr::V6(target_addr)) {
                return FrameDecision::NotAnnounced(Protocol::Ndp);
            }
            let (dst_ip, dst_mac, flags) = if ip.src_addr.is_unspecified() {
                (ALL_NODES, multicast_mac(ALL_NODES), NeighborFlags::OVERRIDE)
            } else {
                (
                    ip.src_addr,
                    source_lladdr.unwrap_or(eth.src_addr),
                    NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
                )
            };
            let reply = advert(my_mac, target_addr, dst_ip, dst_mac, flags);
            FrameDecision::Answer(Protocol::Ndp, Reply::build(&reply))
        }
        Packet::Ndisc { .. } => ignored("ndisc", "advertisement"),
    }
}

/// [`decide`], keeping only the frame to send.
pub fn respond(
    frame: &[u8],
    my_mac: MacAddr,
    is_announced: impl Fn(IpAddr) -> bool,
) -> Option<Reply> {
    match decide(frame, my_mac, is_announced) {
        FrameDecision::Answer(_, r) => Some(r),
        _ => None,
    }
}

fn advert(
    my_mac: MacAddr,
    target: Ipv6Addr,
    dst_ip: Ipv6Addr,
    dst_mac: MacAddr,
    flags: NeighborFlags,
) -> Packet {
    Packet::Ndisc {
        eth: EthernetRepr {
            src_addr: my_mac,
            dst_addr: dst_mac,
            ethertype: EtherType::IPV6,
        },
        ip: Ipv6Repr {
            src_addr: target,
            dst_addr: dst_ip,
            next_header: super::ipv6::NEXT_HEADER_ICMPV6,
            payload_len: 32,
            hop_limit: 255,
        },
        ndisc: NdiscRepr::NeighborAdvert {
            flags,
            target_addr: target,
            target_lladdr: Some(my_mac),
        },
    }
}

/// The two shapes of a gratuitous ARP. Linux takes either as an update of an existing
/// neighbour entry even within its `locktime` (and creates entries from them only with
/// `arp_accept=1`); a reply only counts as gratuitous if its target MAC equals its sender
/// MAC, which [`gratuitous_arp`] ensures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GratuitousForm {
    /// Broadcast ARP request, sender IP = target IP, target MAC zero: the "ARP
    /// Announcement" of RFC 5227 §2.3 and what Linux itself sends when an address is
    /// added. The default: as a request it is processed by every stack, including those
    /// that ignore replies they did not ask for.
    #[default]
    Request,
    /// Broadcast ARP reply, sender = target (IP and MAC), as `arping -A` sends.
    Reply,
}

/// A gratuitous ARP announcing that `ip` is at `mac`, broadcast.
pub fn gratuitous_arp(mac: MacAddr, ip: Ipv4Addr, form: GratuitousForm) -> Reply {
    let (operation, target_mac) = match form {
        GratuitousForm::Request => (ArpOperation::Request, MacAddr::ZERO),
        GratuitousForm::Reply => (ArpOperation::Reply, mac),
    };
    Reply::build(&Packet::Arp {
        eth: EthernetRepr {
            src_addr: mac,
            dst_addr: MacAddr::BROADCAST,
            ethertype: EtherType::ARP,
        },
        arp: ArpRepr {
            operation,
            sender_mac: mac,
            sender_ip: ip,
            target_mac,
            target_ip: ip,
        },
    })
}

/// An unsolicited Neighbor Advertisement (RFC 4861 §7.2.6) that `ip` is at `mac`: to
/// all-nodes ff02::1, override flag set (so caches that hold another MAC switch), no
/// solicited flag, with the target link-layer option.
pub fn unsolicited_na(mac: MacAddr, ip: Ipv6Addr) -> Reply {
    Reply::build(&advert(
        mac,
        ip,
        ALL_NODES,
        multicast_mac(ALL_NODES),
        NeighborFlags::OVERRIDE,
    ))
}
