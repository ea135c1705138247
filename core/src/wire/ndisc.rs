//! ICMPv6 Neighbor Solicitation and Neighbor Advertisement (RFC 4861 §4.3, §4.4) with the
//! source / target link-layer address options, validated as RFC 4861 §7.1 requires. The
//! fields are read and written through `pnet_packet`'s ICMPv6 / NDP packet types, and the
//! checksum is pnet's.
//!
//! Two parts stay ferrolb's own, each for an input on which pnet does not hold up (the
//! failing inputs are tests in `core/tests/wire_pnet_limits.rs`):
//! - the walk over the options: pnet computes an option's size as `length * 8` in `u8`,
//!   which overflows from a length of 32 on (a panic where overflow checks are on, a
//!   wrapped size and a walk astray otherwise), so the walk computes it in `usize` and
//!   hands pnet only options whose bounds it checked;
//! - the checksum comparison: pnet's value is compared with the field, and a message
//!   whose checksum comes out as 0 may carry either zero of one's-complement arithmetic,
//!   0x0000 or 0xffff (RFC 1624 §3); Linux accepts both, and so does the speaker.
//!
//! Parsing needs the enclosing [`Ipv6Repr`]: the checksum covers a pseudo-header of the
//! IPv6 addresses, and validity depends on the hop limit (255 proves the sender is on
//! the link) and on the addresses.

use std::net::Ipv6Addr;

use pnet_packet::icmpv6::ndp::{
    MutableNdpOptionPacket, MutableNeighborAdvertPacket, MutableNeighborSolicitPacket,
    NdpOptionPacket, NdpOptionType, NdpOptionTypes, NeighborAdvertPacket, NeighborSolicitPacket,
};
use pnet_packet::icmpv6::{
    self as pnet_icmpv6, Icmpv6Code, Icmpv6Packet, Icmpv6Types, MutableIcmpv6Packet,
};

use super::ipv6::{NEXT_HEADER_ICMPV6, solicited_node};
use super::{Error, Ipv6Repr, MacAddr, Result, check_len};

const LAYER: &str = "ndisc";

/// ICMPv6 type of a Neighbor Solicitation.
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;

/// Type, code, checksum.
const ICMPV6_HEADER_LEN: usize = 4;
/// Type, code, checksum, reserved/flags, target address.
const FIXED_LEN: usize = 24;
/// One link-layer address option on Ethernet: type, length (1 = 8 bytes), MAC.
const LLADDR_OPT_LEN: usize = 8;

/// The R/S/O flags of a Neighbor Advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags(u8);

impl NeighborFlags {
    /// R: the sender is a router.
    pub const ROUTER: NeighborFlags = NeighborFlags(0x80);
    /// S: sent in response to a solicitation.
    pub const SOLICITED: NeighborFlags = NeighborFlags(0x40);
    /// O: override an existing cache entry.
    pub const OVERRIDE: NeighborFlags = NeighborFlags(0x20);
    const MASK: u8 = 0xe0;

    /// No flag set.
    pub const fn empty() -> Self {
        NeighborFlags(0)
    }
    /// From the first byte after the checksum (reserved bits are dropped).
    pub const fn from_bits_truncate(b: u8) -> Self {
        NeighborFlags(b & Self::MASK)
    }
    /// The flag bits.
    pub const fn bits(self) -> u8 {
        self.0
    }
    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: NeighborFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for NeighborFlags {
    type Output = NeighborFlags;
    fn bitor(self, rhs: Self) -> Self {
        NeighborFlags(self.0 | rhs.0)
    }
}

/// A Neighbor Solicitation or Advertisement. Options other than the link-layer address
/// options (nonce, ...) are checked for well-formedness and then ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdiscRepr {
    /// "Who has `target_addr`?"
    NeighborSolicit {
        /// The address being resolved.
        target_addr: Ipv6Addr,
        /// The solicitor's MAC (absent in DAD probes and some unicast probes).
        source_lladdr: Option<MacAddr>,
    },
    /// "`target_addr` is at `target_lladdr`."
    NeighborAdvert {
        /// R/S/O flags.
        flags: NeighborFlags,
        /// The address advertised.
        target_addr: Ipv6Addr,
        /// The MAC it is at.
        target_lladdr: Option<MacAddr>,
    },
}

fn malformed(what: &'static str) -> Error {
    Error::Malformed { layer: LAYER, what }
}

fn truncated(layer: &'static str, need: usize, have: usize) -> Error {
    Error::Truncated { layer, need, have }
}

/// Whether the checksum field of `icmp` is right for the pseudo-header of `ip`: pnet's
/// checksum (computed with the field taken as zero) equals the field, or, when it is 0,
/// the field holds the other zero 0xffff (see the module documentation).
fn checksum_ok(ip: &Ipv6Repr, icmp: &Icmpv6Packet<'_>) -> bool {
    let want = pnet_icmpv6::checksum(icmp, &ip.src_addr, &ip.dst_addr);
    let have = icmp.get_checksum();
    have == want || (want == 0 && have == 0xffff)
}

impl NdiscRepr {
    /// Reads the ICMPv6 message `msg` (the IPv6 payload) carried in `ip`.
    ///
    /// Dropped as RFC 4861 §7.1 demands: hop limit not 255, bad checksum, code not 0,
    /// shorter than 24 bytes, multicast target, an option of length 0 or running past the
    /// end; for a solicitation from the unspecified address (DAD), a destination other
    /// than the target's solicited-node group or a source link-layer option; for an
    /// advertisement to a multicast destination, the solicited flag. Other ICMPv6
    /// messages are unsupported.
    pub fn parse(ip: &Ipv6Repr, msg: &[u8]) -> Result<NdiscRepr> {
        if ip.next_header != NEXT_HEADER_ICMPV6 {
            return Err(Error::Unsupported {
                layer: "ipv6",
                what: "next header is not ICMPv6",
            });
        }
        let icmp = Icmpv6Packet::new(msg)
            .ok_or_else(|| truncated("icmpv6", ICMPV6_HEADER_LEN, msg.len()))?;
        let ty = icmp.get_icmpv6_type();
        if ty != Icmpv6Types::NeighborSolicit && ty != Icmpv6Types::NeighborAdvert {
            return Err(Error::Unsupported {
                layer: "icmpv6",
                what: "not a neighbor solicitation or advertisement",
            });
        }
        if ip.hop_limit != 255 {
            return Err(malformed("hop limit is not 255"));
        }
        if icmp.get_icmpv6_code() != Icmpv6Code(0) {
            return Err(malformed("code is not 0"));
        }
        check_len(LAYER, msg.len(), FIXED_LEN)?;
        if !checksum_ok(ip, &icmp) {
            return Err(Error::Checksum { layer: "icmpv6" });
        }
        let too_short = || truncated(LAYER, FIXED_LEN, msg.len());
        if ty == Icmpv6Types::NeighborSolicit {
            let ns = NeighborSolicitPacket::new(msg).ok_or_else(too_short)?;
            let target_addr = ns.get_target_addr();
            if target_addr.is_multicast() {
                return Err(malformed("multicast target address"));
            }
            let (source_lladdr, _) = parse_options(ns.get_options_raw())?;
            if ip.src_addr.is_unspecified() {
                if ip.dst_addr != solicited_node(target_addr) {
                    return Err(malformed(
                        "DAD solicitation not sent to the solicited-node group",
                    ));
                }
                if source_lladdr.is_some() {
                    return Err(malformed(
                        "DAD solicitation carries a source link-layer address",
                    ));
                }
            }
            Ok(NdiscRepr::NeighborSolicit {
                target_addr,
                source_lladdr,
            })
        } else {
            let na = NeighborAdvertPacket::new(msg).ok_or_else(too_short)?;
            let target_addr = na.get_target_addr();
            if target_addr.is_multicast() {
                return Err(malformed("multicast target address"));
            }
            let (_, target_lladdr) = parse_options(na.get_options_raw())?;
            let flags = NeighborFlags::from_bits_truncate(na.get_flags());
            if ip.dst_addr.is_multicast() && flags.contains(NeighborFlags::SOLICITED) {
                return Err(malformed("solicited advertisement to a multicast group"));
            }
            Ok(NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                target_lladdr,
            })
        }
    }

    /// Length of the ICMPv6 message [`NdiscRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        let opt = match self {
            NdiscRepr::NeighborSolicit { source_lladdr, .. } => source_lladdr.is_some(),
            NdiscRepr::NeighborAdvert { target_lladdr, .. } => target_lladdr.is_some(),
        };
        FIXED_LEN + if opt { LLADDR_OPT_LEN } else { 0 }
    }

    /// Writes the message into `msg` (at least [`NdiscRepr::buffer_len`] bytes: a
    /// shorter buffer is a bug of the caller and panics, as slice indexing does) and
    /// fills in the checksum for the pseudo-header of `src` → `dst`.
    pub fn emit(&self, src: &Ipv6Addr, dst: &Ipv6Addr, msg: &mut [u8]) {
        let len = self.buffer_len();
        let msg = &mut msg[..len];
        let option = match *self {
            NdiscRepr::NeighborSolicit {
                target_addr,
                source_lladdr,
            } => {
                let mut p = MutableNeighborSolicitPacket::new(&mut *msg)
                    .expect("buffer_len is at least the fixed part");
                p.set_icmpv6_type(Icmpv6Types::NeighborSolicit);
                p.set_icmpv6_code(Icmpv6Code(0));
                p.set_checksum(0);
                p.set_reserved(0);
                p.set_target_addr(target_addr);
                source_lladdr.map(|m| (NdpOptionTypes::SourceLLAddr, m))
            }
            NdiscRepr::NeighborAdvert {
                flags,
                target_addr,
                target_lladdr,
            } => {
                let mut p = MutableNeighborAdvertPacket::new(&mut *msg)
                    .expect("buffer_len is at least the fixed part");
                p.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
                p.set_icmpv6_code(Icmpv6Code(0));
                p.set_checksum(0);
                p.set_flags(flags.bits());
                p.set_reserved(0);
                p.set_target_addr(target_addr);
                target_lladdr.map(|m| (NdpOptionTypes::TargetLLAddr, m))
            }
        };
        if let Some((ty, mac)) = option {
            emit_lladdr_option(ty, mac, &mut msg[FIXED_LEN..]);
        }
        let sum = Icmpv6Packet::new(msg)
            .map(|p| pnet_icmpv6::checksum(&p, src, dst))
            .expect("buffer_len is at least the ICMPv6 header");
        MutableIcmpv6Packet::new(msg)
            .expect("buffer_len is at least the ICMPv6 header")
            .set_checksum(sum);
    }
}

/// Writes a link-layer address option (8 bytes) at the start of `buf`.
fn emit_lladdr_option(ty: NdpOptionType, mac: MacAddr, buf: &mut [u8]) {
    let mut o = MutableNdpOptionPacket::new(&mut buf[..LLADDR_OPT_LEN])
        .expect("an option is at least 2 bytes");
    o.set_option_type(ty);
    o.set_length(1);
    o.set_data(&mac.octets());
}

/// Walks the TLV options; returns the first source and target link-layer addresses.
/// The bounds of each option are ferrolb's own arithmetic (see the module documentation);
/// its fields are read through pnet.
fn parse_options(mut opts: &[u8]) -> Result<(Option<MacAddr>, Option<MacAddr>)> {
    let (mut sll, mut tll) = (None, None);
    while !opts.is_empty() {
        check_len(LAYER, opts.len(), 2)?;
        let len = usize::from(opts[1]) * 8;
        if len == 0 {
            return Err(malformed("option of length 0"));
        }
        check_len(LAYER, opts.len(), len)?;
        let (this, rest) = opts.split_at(len);
        let o = NdpOptionPacket::new(this).ok_or_else(|| truncated(LAYER, 2, this.len()))?;
        let ty = o.get_option_type();
        if ty == NdpOptionTypes::SourceLLAddr || ty == NdpOptionTypes::TargetLLAddr {
            if len != LLADDR_OPT_LEN {
                return Err(malformed("link-layer address option is not 8 bytes"));
            }
            // A length of 1 is the one pnet sizes right: its data is the 6-byte MAC.
            let mac = MacAddr::from_slice(pnet_packet::Packet::payload(&o))
                .ok_or_else(|| malformed("link-layer address option is not 8 bytes"))?;
            let slot = if ty == NdpOptionTypes::SourceLLAddr {
                &mut sll
            } else {
                &mut tll
            };
            slot.get_or_insert(mac);
        }
        opts = rest;
    }
    Ok((sll, tll))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(src: &str, dst: &str, len: usize) -> Ipv6Repr {
        Ipv6Repr {
            src_addr: src.parse().unwrap(),
            dst_addr: dst.parse().unwrap(),
            next_header: 58,
            payload_len: len as u16,
            hop_limit: 255,
        }
    }

    fn ns(src: &str, dst: &str, sll: Option<MacAddr>) -> (Ipv6Repr, Vec<u8>) {
        let r = NdiscRepr::NeighborSolicit {
            target_addr: "2001:db8::1".parse().unwrap(),
            source_lladdr: sll,
        };
        let i = ip(src, dst, r.buffer_len());
        let mut m = vec![0; r.buffer_len()];
        r.emit(&i.src_addr, &i.dst_addr, &mut m);
        (i, m)
    }

    #[test]
    fn hop_limit_below_255_is_dropped() {
        let (mut i, m) = ns(
            "2001:db8::100",
            "ff02::1:ff00:1",
            Some(MacAddr([2, 0, 0, 0, 0, 1])),
        );
        assert!(NdiscRepr::parse(&i, &m).is_ok());
        i.hop_limit = 254;
        assert_eq!(
            NdiscRepr::parse(&i, &m),
            Err(malformed("hop limit is not 255"))
        );
    }

    #[test]
    fn corrupted_message_fails_checksum() {
        let (i, mut m) = ns("2001:db8::100", "ff02::1:ff00:1", None);
        m[23] ^= 0x01;
        assert_eq!(
            NdiscRepr::parse(&i, &m),
            Err(Error::Checksum { layer: "icmpv6" })
        );
    }

    #[test]
    fn dad_with_source_lladdr_or_unicast_destination_is_dropped() {
        let (i, m) = ns("::", "ff02::1:ff00:1", Some(MacAddr([2, 0, 0, 0, 0, 1])));
        assert!(NdiscRepr::parse(&i, &m).is_err());
        let (i, m) = ns("::", "2001:db8::1", None);
        assert!(NdiscRepr::parse(&i, &m).is_err());
        let (i, m) = ns("::", "ff02::1:ff00:1", None);
        assert!(NdiscRepr::parse(&i, &m).is_ok());
    }

    #[test]
    fn zero_length_option_is_dropped() {
        let r = NdiscRepr::NeighborSolicit {
            target_addr: "2001:db8::1".parse().unwrap(),
            source_lladdr: None,
        };
        let i = ip("2001:db8::100", "ff02::1:ff00:1", 32);
        let mut m = vec![0; 32];
        r.emit(&i.src_addr, &i.dst_addr, &mut m[..24]);
        m[24] = 14; // nonce option with length 0
        let c = pnet_icmpv6::checksum(&Icmpv6Packet::new(&m).unwrap(), &i.src_addr, &i.dst_addr);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(
            NdiscRepr::parse(&i, &m),
            Err(malformed("option of length 0"))
        );
    }

    #[test]
    fn solicited_advert_to_multicast_is_dropped() {
        let r = NdiscRepr::NeighborAdvert {
            flags: NeighborFlags::SOLICITED | NeighborFlags::OVERRIDE,
            target_addr: "2001:db8::1".parse().unwrap(),
            target_lladdr: None,
        };
        let i = ip("2001:db8::1", "ff02::1", r.buffer_len());
        let mut m = vec![0; r.buffer_len()];
        r.emit(&i.src_addr, &i.dst_addr, &mut m);
        assert!(NdiscRepr::parse(&i, &m).is_err());
    }

    #[test]
    fn other_icmpv6_types_are_unsupported() {
        let i = ip("2001:db8::100", "2001:db8::1", 8);
        let m = [128u8, 0, 0, 0, 0, 0, 0, 0]; // echo request
        assert!(matches!(
            NdiscRepr::parse(&i, &m),
            Err(Error::Unsupported { .. })
        ));
    }
}
