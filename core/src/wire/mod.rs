//! Layer-2 packet codecs for the speaker: Ethernet II, ARP (IPv4 over Ethernet), IPv6 and
//! ICMPv6 Neighbor Discovery (Neighbor Solicitation / Advertisement), plus the decision
//! "which reply, if any, does this received frame deserve" (`respond`) and the builders
//! of gratuitous announcements.
//!
//! The style is sans-IO, after smoltcp's `wire` module; the byte layouts are
//! `pnet_packet`'s. Every layer has
//! - a `packet` function that wraps received bytes in pnet's borrowed view
//!   (`EthernetPacket`, `ArpPacket`, `Ipv6Packet`, ...) after checking every length the
//!   header declares, so that a short buffer is an [`Error::Truncated`] rather than
//!   whatever pnet would make of it, and
//! - a *representation* (`XxxRepr`), a plain value with `parse` (pnet view → repr,
//!   validating every field the speaker relies on) and `emit` (repr → bytes in a caller's
//!   buffer, through pnet's `MutableXxxPacket` setters).
//!
//! Only pnet's borrowed views are used: their owned forms, `populate` and the
//! `get_options()` accessors build `Vec`s, and the received-frame path must not allocate
//! (`core/tests/wire_alloc.rs` counts). Where pnet does not hold up on some input,
//! ferrolb's own code does exactly that part: see [`ndisc`] and [`arp`].
//!
//! Nothing here allocates, performs I/O or panics on input: a truncated, malformed or
//! foreign frame is an [`Error`] (and [`respond::decide`] turns every error into a drop).
//!
//! ## 802.1Q VLAN tags
//! Tagged frames (EtherType 0x8100 / 0x88a8) are **dropped**, not looked through. A
//! VLAN is another layer-2 domain: on Linux it is its own interface (`eth0.100`), on
//! which the kernel delivers the frames untagged, so the speaker answers there if that
//! interface is selected. Answering a tagged request on the parent would need the reply
//! to carry the same tag and would announce the IP in a VLAN nobody configured.
//! (The raw-socket filter in the speaker also drops frames whose tag the NIC stripped
//! into packet metadata, for the same reason.)

pub mod arp;
pub mod ethernet;
pub mod frame;
pub mod ipv6;
pub mod ndisc;
pub mod respond;

use std::fmt;

pub use arp::{ArpOperation, ArpRepr};
pub use ethernet::{EtherType, EthernetRepr};
pub use frame::Packet;
pub use ipv6::{Ipv6Repr, solicited_node, solicited_node_mac};
pub use ndisc::{NdiscRepr, NeighborFlags};
pub use respond::{
    FrameDecision, GratuitousForm, Protocol, Reply, decide, gratuitous_arp, respond, unsolicited_na,
};

/// Why a frame could not be parsed. Every variant names the layer (`"ethernet"`,
/// `"arp"`, `"ipv6"`, `"icmpv6"`, `"ndisc"`) and what was wrong; none allocates, so the
/// error path is as cheap as the happy one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before the structure does.
    #[error("{layer}: truncated: need {need} bytes, have {have}")]
    Truncated {
        /// The protocol layer.
        layer: &'static str,
        /// Bytes the structure needs.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A field holds a value the protocol forbids.
    #[error("{layer}: malformed: {what}")]
    Malformed {
        /// The protocol layer.
        layer: &'static str,
        /// What is wrong.
        what: &'static str,
    },
    /// A well-formed packet of a kind the speaker does not handle (another hardware or
    /// protocol type, another ICMPv6 message, a VLAN tag...).
    #[error("{layer}: unsupported: {what}")]
    Unsupported {
        /// The protocol layer.
        layer: &'static str,
        /// What is not supported.
        what: &'static str,
    },
    /// The checksum does not match the contents.
    #[error("{layer}: bad checksum")]
    Checksum {
        /// The protocol layer.
        layer: &'static str,
    },
}

/// Result of the codecs.
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn check_len(layer: &'static str, have: usize, need: usize) -> Result<()> {
    if have < need {
        Err(Error::Truncated { layer, need, have })
    } else {
        Ok(())
    }
}

/// A 48-bit IEEE 802 MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Builds an address from a slice of exactly six bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<MacAddr> {
        <[u8; 6]>::try_from(bytes).ok().map(MacAddr)
    }

    /// The six octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Group (multicast or broadcast) address: the I/G bit of the first octet is set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// An address a station may use as its own: not group, not all-zero.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != MacAddr::ZERO
    }
}

impl From<pnet_base::MacAddr> for MacAddr {
    fn from(m: pnet_base::MacAddr) -> Self {
        MacAddr(m.octets())
    }
}

impl From<MacAddr> for pnet_base::MacAddr {
    fn from(m: MacAddr) -> Self {
        let [a, b, c, d, e, f] = m.0;
        pnet_base::MacAddr(a, b, c, d, e, f)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Error of [`MacAddr`]'s `FromStr`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets separated by ':'")]
pub struct MacParseError(pub String);

impl std::str::FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in out.iter_mut() {
            let p = parts.next().ok_or_else(|| MacParseError(s.to_string()))?;
            if p.is_empty() || p.len() > 2 {
                return Err(MacParseError(s.to_string()));
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| MacParseError(s.to_string()))?;
        }
        if parts.next().is_some() {
            return Err(MacParseError(s.to_string()));
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_and_display_round_trip() {
        let m: MacAddr = "02:00:00:00:00:0a".parse().unwrap();
        assert_eq!(m, MacAddr([2, 0, 0, 0, 0, 0x0a]));
        assert_eq!(m.to_string(), "02:00:00:00:00:0a");
        assert!(m.is_unicast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(!MacAddr::ZERO.is_unicast());
        assert!("02:00:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:00:0a:0b".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:00:zz".parse::<MacAddr>().is_err());
    }
}
