//! ARP and NDP from the client's point of view: send who-has requests for a Service IP
//! on the client's eth0 and record every frame on the wire that claims an IP for a MAC
//! (ARP replies, gratuitous ARP, Neighbor Advertisements), with the time it was seen.
//!
//! This is the lab's independent observer of the speakers, so it uses its own small
//! frame builders and pnet's parsers rather than any ferrolb code. A [`Prober`] must be
//! opened on a thread inside the client namespace (see [`crate::netns::in_netns`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use pnet_datalink::{Channel, Config, DataLinkReceiver, DataLinkSender, NetworkInterface};
use pnet_packet::Packet;
use pnet_packet::arp::{ArpOperations, ArpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::icmpv6::{Icmpv6Packet, Icmpv6Types};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::Ipv6Packet;

use crate::error::LabError;

/// How a frame claimed an IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimKind {
    /// An ARP reply, or a Neighbor Advertisement with the solicited flag.
    Reply,
    /// A gratuitous ARP (sender IP = target IP) or an unsolicited NA.
    Announcement,
}

/// One frame that said "`ip` is at `mac`".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// When the client saw it.
    pub at: Instant,
    /// The IP claimed.
    pub ip: IpAddr,
    /// The MAC claimed for it (ARP sender hardware address, NA target link-layer address).
    pub mac: [u8; 6],
    /// Reply or announcement.
    pub kind: ClaimKind,
}

/// ARP request for `target` from `src_mac`/`src_ip`, broadcast.
pub fn arp_request(src_mac: [u8; 6], src_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06]);
    // Ethernet (1), IPv4 (0x0800), lengths 6 and 4, operation request (1).
    f.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&src_ip.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

/// Solicited-node multicast address of `ip` (ff02::1:ffXX:XXXX).
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// Neighbor Solicitation for `target` from `src_mac`/`src_ip`, to its solicited-node
/// multicast address, with a source link-layer address option.
pub fn neighbor_solicitation(src_mac: [u8; 6], src_ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let dst = solicited_node(target);
    let d = dst.octets();
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&src_mac);
    let sum =
        pnet_packet::icmpv6::checksum(&Icmpv6Packet::new(&icmp).expect("32 bytes"), &src_ip, &dst);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend_from_slice(&[0x33, 0x33, d[12], d[13], d[14], d[15]]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&src_ip.octets());
    f.extend_from_slice(&d);
    f.extend_from_slice(&icmp);
    f
}

/// What a frame claims, if it is an ARP reply/gratuitous ARP or a Neighbor
/// Advertisement; anything else, truncated or malformed, is `None`.
pub fn parse_claim(frame: &[u8]) -> Option<(IpAddr, [u8; 6], ClaimKind)> {
    let eth = EthernetPacket::new(frame)?;
    match eth.get_ethertype() {
        EtherTypes::Arp => {
            let arp = ArpPacket::new(eth.payload())?;
            if arp.get_hw_addr_len() != 6 || arp.get_proto_addr_len() != 4 {
                return None;
            }
            let sender = arp.get_sender_proto_addr();
            let kind = if arp.get_operation() == ArpOperations::Reply
                && sender != arp.get_target_proto_addr()
            {
                ClaimKind::Reply
            } else if sender == arp.get_target_proto_addr()
                && (arp.get_operation() == ArpOperations::Reply
                    || arp.get_operation() == ArpOperations::Request)
            {
                ClaimKind::Announcement
            } else {
                return None;
            };
            Some((IpAddr::V4(sender), arp.get_sender_hw_addr().octets(), kind))
        }
        EtherTypes::Ipv6 => {
            let ip6 = Ipv6Packet::new(eth.payload())?;
            if ip6.get_next_header() != IpNextHeaderProtocols::Icmpv6 {
                return None;
            }
            let payload_len = ip6.get_payload_length() as usize;
            let body = ip6.payload().get(..payload_len)?;
            let icmp = Icmpv6Packet::new(body)?;
            if icmp.get_icmpv6_type() != Icmpv6Types::NeighborAdvert || body.len() < 24 {
                return None;
            }
            let flags = body[4];
            let target = Ipv6Addr::from(<[u8; 16]>::try_from(&body[8..24]).ok()?);
            let mac = target_link_layer(&body[24..]).unwrap_or(eth.get_source().octets());
            let kind = if flags & 0x40 != 0 {
                ClaimKind::Reply
            } else {
                ClaimKind::Announcement
            };
            Some((IpAddr::V6(target), mac, kind))
        }
        _ => None,
    }
}

/// The target link-layer address option (type 2) among NDP options, if well formed.
fn target_link_layer(mut options: &[u8]) -> Option<[u8; 6]> {
    while options.len() >= 2 {
        let (kind, len) = (options[0], options[1] as usize * 8);
        if len == 0 || len > options.len() {
            return None;
        }
        if kind == 2 && len >= 8 {
            return <[u8; 6]>::try_from(&options[2..8]).ok();
        }
        options = &options[len..];
    }
    None
}

/// A raw socket on the client's interface that sends requests and records claims.
pub struct Prober {
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
    mac: [u8; 6],
    v4: Ipv4Addr,
    v6: Ipv6Addr,
}

impl Prober {
    /// Opens interface `iface` of the current thread's namespace.
    pub fn open(iface: &str, mac: [u8; 6], v4: Ipv4Addr, v6: Ipv6Addr) -> Result<Prober, LabError> {
        let interface: NetworkInterface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == iface)
            .ok_or_else(|| LabError::Config(format!("no interface {iface} in this namespace")))?;
        let config = Config {
            read_timeout: Some(Duration::from_millis(5)),
            promiscuous: false,
            ..Config::default()
        };
        match pnet_datalink::channel(&interface, config) {
            Ok(Channel::Ethernet(tx, rx)) => Ok(Prober {
                tx,
                rx,
                mac,
                v4,
                v6,
            }),
            Ok(_) => Err(LabError::Config(format!(
                "{iface}: not an Ethernet channel"
            ))),
            Err(e) => Err(LabError::Io {
                what: format!("opening a raw socket on {iface}"),
                source: e,
            }),
        }
    }

    /// Sends one who-has for `ip` (ARP or NS by family).
    pub fn request(&mut self, ip: IpAddr) -> Result<(), LabError> {
        let frame = match ip {
            IpAddr::V4(v4) => arp_request(self.mac, self.v4, v4),
            IpAddr::V6(v6) => neighbor_solicitation(self.mac, self.v6, v6),
        };
        match self.tx.send_to(&frame, None) {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(LabError::Io {
                what: format!("sending a who-has for {ip}"),
                source: e,
            }),
            None => Err(LabError::Config("raw socket refused the frame".into())),
        }
    }

    /// The next claim seen before `deadline`, for any IP.
    pub fn next_claim(&mut self, deadline: Instant) -> Option<Claim> {
        while Instant::now() < deadline {
            match self.rx.next() {
                Ok(frame) => {
                    let at = Instant::now();
                    // Our own frames come back on a packet socket: they claim nothing
                    // (the client asks, it never answers), but skip them explicitly.
                    if frame.len() >= 12 && frame[6..12] == self.mac {
                        continue;
                    }
                    if let Some((ip, mac, kind)) = parse_claim(frame) {
                        return Some(Claim { at, ip, mac, kind });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        None
    }

    /// Sends `requests` who-has for `ip`, `interval` apart, and returns every claim for
    /// `ip` seen until `linger` after the last one.
    pub fn resolve(
        &mut self,
        ip: IpAddr,
        requests: u32,
        interval: Duration,
        linger: Duration,
    ) -> Result<Vec<Claim>, LabError> {
        let mut claims = Vec::new();
        for i in 0..requests {
            self.request(ip)?;
            let until = Instant::now() + if i + 1 == requests { linger } else { interval };
            while let Some(c) = self.next_claim(until) {
                if c.ip == ip {
                    claims.push(c);
                }
            }
        }
        Ok(claims)
    }
}

/// The distinct MACs among `claims`, in order of first appearance.
pub fn distinct_macs(claims: &[Claim]) -> Vec<[u8; 6]> {
    let mut macs = Vec::new();
    for c in claims {
        if !macs.contains(&c.mac) {
            macs.push(c.mac);
        }
    }
    macs
}

/// The longest time during which two different MACs both claimed the IP: for each
/// pair of MACs, the intersection of the spans between their first and last claims.
/// Zero when the claims never interleave (a clean handover).
pub fn overlap(claims: &[Claim]) -> Duration {
    let macs = distinct_macs(claims);
    let span = |mac: [u8; 6]| {
        let times: Vec<Instant> = claims
            .iter()
            .filter(|c| c.mac == mac)
            .map(|c| c.at)
            .collect();
        (
            *times.iter().min().expect("mac seen"),
            *times.iter().max().expect("mac seen"),
        )
    };
    let mut longest = Duration::ZERO;
    for (i, a) in macs.iter().enumerate() {
        for b in &macs[i + 1..] {
            let ((a0, a1), (b0, b1)) = (span(*a), span(*b));
            let (start, end) = (a0.max(b0), a1.min(b1));
            if end > start {
                longest = longest.max(end - start);
            }
        }
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: [u8; 6] = [0x02, 0xf1, 0xb0, 0, 0, 2];
    const NODE: [u8; 6] = [0x02, 0xf1, 0xb0, 0, 1, 1];

    /// An ARP reply as a Linux host sends it: 192.0.2.200 is at 02:f1:b0:00:01:01, to
    /// 192.0.2.2 (02:f1:b0:00:00:02).
    const ARP_REPLY: [u8; 42] = [
        0x02, 0xf1, 0xb0, 0x00, 0x00, 0x02, 0x02, 0xf1, 0xb0, 0x00, 0x01, 0x01, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, //
        0x02, 0xf1, 0xb0, 0x00, 0x01, 0x01, 192, 0, 2, 200, //
        0x02, 0xf1, 0xb0, 0x00, 0x00, 0x02, 192, 0, 2, 2,
    ];

    /// A solicited Neighbor Advertisement: 2001:db8::200 is at 02:f1:b0:00:01:01.
    fn na_frame(solicited: bool) -> Vec<u8> {
        let src: Ipv6Addr = "2001:db8::200".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut icmp = vec![136, 0, 0, 0, if solicited { 0x60 } else { 0x20 }, 0, 0, 0];
        icmp.extend_from_slice(&src.octets());
        icmp.extend_from_slice(&[2, 1]);
        icmp.extend_from_slice(&NODE);
        let sum = pnet_packet::icmpv6::checksum(&Icmpv6Packet::new(&icmp).unwrap(), &src, &dst);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut f = Vec::new();
        f.extend_from_slice(&CLIENT);
        f.extend_from_slice(&NODE);
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
        f.extend_from_slice(&[58, 255]);
        f.extend_from_slice(&src.octets());
        f.extend_from_slice(&dst.octets());
        f.extend_from_slice(&icmp);
        f
    }

    #[test]
    fn an_arp_reply_claims_its_sender() {
        let (ip, mac, kind) = parse_claim(&ARP_REPLY).unwrap();
        assert_eq!(ip, "192.0.2.200".parse::<IpAddr>().unwrap());
        assert_eq!(mac, NODE);
        assert_eq!(kind, ClaimKind::Reply);
    }

    #[test]
    fn a_gratuitous_arp_is_an_announcement_and_a_request_is_nothing() {
        let mut garp = ARP_REPLY;
        garp[38..42].copy_from_slice(&[192, 0, 2, 200]);
        assert_eq!(parse_claim(&garp).unwrap().2, ClaimKind::Announcement);
        let req = arp_request(
            CLIENT,
            Ipv4Addr::new(192, 0, 2, 2),
            Ipv4Addr::new(192, 0, 2, 200),
        );
        assert_eq!(parse_claim(&req), None);
    }

    #[test]
    fn our_arp_request_has_the_wire_layout() {
        let req = arp_request(
            CLIENT,
            Ipv4Addr::new(192, 0, 2, 2),
            Ipv4Addr::new(192, 0, 2, 200),
        );
        let arp = ArpPacket::new(&req[14..]).unwrap();
        assert_eq!(req.len(), 42);
        assert_eq!(&req[..6], &[0xff; 6]);
        assert_eq!(arp.get_operation(), ArpOperations::Request);
        assert_eq!(arp.get_sender_hw_addr().octets(), CLIENT);
        assert_eq!(arp.get_target_proto_addr(), Ipv4Addr::new(192, 0, 2, 200));
    }

    #[test]
    fn neighbor_advertisements_claim_their_target_with_the_tlla_option() {
        let (ip, mac, kind) = parse_claim(&na_frame(true)).unwrap();
        assert_eq!(ip, "2001:db8::200".parse::<IpAddr>().unwrap());
        assert_eq!(mac, NODE);
        assert_eq!(kind, ClaimKind::Reply);
        assert_eq!(
            parse_claim(&na_frame(false)).unwrap().2,
            ClaimKind::Announcement
        );
    }

    #[test]
    fn our_solicitation_goes_to_the_solicited_node_group_with_a_valid_checksum() {
        let src: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let target: Ipv6Addr = "2001:db8::1:2a0".parse().unwrap();
        let f = neighbor_solicitation(CLIENT, src, target);
        assert_eq!(&f[..6], &[0x33, 0x33, 0xff, 0x01, 0x02, 0xa0]);
        assert_eq!(
            solicited_node(target),
            "ff02::1:ff01:2a0".parse::<Ipv6Addr>().unwrap()
        );
        let ip6 = Ipv6Packet::new(&f[14..]).unwrap();
        assert_eq!(ip6.get_hop_limit(), 255);
        let icmp = Icmpv6Packet::new(ip6.payload()).unwrap();
        assert_eq!(icmp.get_icmpv6_type(), Icmpv6Types::NeighborSolicit);
        assert_eq!(
            icmp.get_checksum(),
            pnet_packet::icmpv6::checksum(&icmp, &src, &solicited_node(target))
        );
        assert_eq!(parse_claim(&f), None, "a solicitation claims nothing");
    }

    #[test]
    fn truncated_and_foreign_frames_claim_nothing() {
        for len in 0..ARP_REPLY.len() {
            assert_eq!(parse_claim(&ARP_REPLY[..len]), None, "ARP cut at {len}");
        }
        let na = na_frame(true);
        for len in 0..na.len() {
            assert_eq!(parse_claim(&na[..len]), None, "NA cut at {len}");
        }
        let mut ipv4 = ARP_REPLY;
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(parse_claim(&ipv4), None);
    }

    fn claim(ms: u64, mac: u8, base: Instant) -> Claim {
        Claim {
            at: base + Duration::from_millis(ms),
            ip: "192.0.2.200".parse().unwrap(),
            mac: [2, 0, 0, 0, 0, mac],
            kind: ClaimKind::Reply,
        }
    }

    #[test]
    fn overlap_is_the_longest_shared_span_of_two_macs() {
        let t = Instant::now();
        let clean = [
            claim(0, 1, t),
            claim(10, 1, t),
            claim(50, 2, t),
            claim(60, 2, t),
        ];
        assert_eq!(overlap(&clean), Duration::ZERO);
        assert_eq!(distinct_macs(&clean).len(), 2);
        let messy = [
            claim(0, 1, t),
            claim(30, 2, t),
            claim(45, 1, t),
            claim(80, 2, t),
        ];
        assert_eq!(overlap(&messy), Duration::from_millis(15));
        assert_eq!(overlap(&[]), Duration::ZERO);
    }
}
