//! Parsing one address entry: a CIDR, an `a-b` range or a single IP.

use std::borrow::Cow;
use std::net::IpAddr;
use std::str::FromStr;

use ipnetwork::{IpNetwork, IpNetworkError, Ipv4Network, Ipv6Network};

use crate::error::ProblemKind;
use crate::model::IpRange;

/// Which spellings an entry may use. kube-vip keys accept only one each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Syntax {
    /// CIDR, range or single IP (ferrolb, MetalLB).
    Any,
    /// `a.b.c.d/n` only (kube-vip `cidr-*`).
    CidrOnly,
    /// `a-b` only (kube-vip `range-*`).
    RangeOnly,
}

/// What to do with a CIDR such as `192.0.2.7/24` whose address has host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostBits {
    /// Reject it: the writer probably meant something else (ferrolb, MetalLB).
    Reject,
    /// Use the network it lies in, as kube-vip does.
    Mask,
}

/// A parsed entry: the range, and the prefix length when written as a CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub range: IpRange,
    pub prefix: Option<u8>,
}

/// A parse failure: its kind and message (the value is reported by the caller).
pub(crate) type EntryError = (ProblemKind, String);

/// Parse one entry. Surrounding whitespace, and whitespace around `-`, is allowed.
pub(crate) fn parse_entry(
    text: &str,
    syntax: Syntax,
    host_bits: HostBits,
) -> Result<Entry, EntryError> {
    let t = text.trim();
    if t.is_empty() {
        return Err((ProblemKind::InvalidAddress, "empty address".into()));
    }
    if t.contains(',') {
        return Err(invalid(
            "one address per entry: write a list item for each, not a comma-separated string",
        ));
    }
    if t.contains('/') {
        if syntax == Syntax::RangeOnly {
            return Err(invalid("expected a range written start-end, not a CIDR"));
        }
        return parse_cidr(t, host_bits);
    }
    if t.contains('-') {
        if syntax == Syntax::CidrOnly {
            return Err(invalid(
                "expected a CIDR (address/prefix-length), not a range",
            ));
        }
        return parse_range(t);
    }
    match syntax {
        Syntax::CidrOnly => Err(invalid("expected a CIDR (address/prefix-length)")),
        Syntax::RangeOnly => Err(invalid("expected a range written start-end")),
        Syntax::Any => match parse_ip(t) {
            Some(ip) => Ok(Entry {
                range: IpRange { start: ip, end: ip },
                prefix: None,
            }),
            None => Err(invalid(
                "not an IP address, a CIDR (address/prefix-length) or a range (start-end)",
            )),
        },
    }
}

fn invalid(msg: &str) -> EntryError {
    (ProblemKind::InvalidAddress, msg.to_string())
}

/// Only plain addresses: Rust's parser already refuses IPv4 octets with leading
/// zeros and IPv6 zone ids, both of which have no place in a pool.
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// A CIDR entry, parsed and checked (prefix length against the family, host bits) by
/// `ipnetwork`, whose network and broadcast addresses bound the range.
///
/// Two parts stay ferrolb's own. The spelling of the prefix: `ipnetwork` also takes
/// `+8`, `024` and a dotted netmask (`192.0.2.0/255.255.255.0`), which no pool format
/// documents and which are rejected, as before, as "not a number". And the messages:
/// `ipnetwork`'s errors say "invalid prefix" / "invalid address", so each is mapped to
/// the message that names the part at fault in the operator's spelling.
fn parse_cidr(t: &str, host_bits: HostBits) -> Result<Entry, EntryError> {
    let (addr, len) = t.split_once('/').expect("caller checked for '/'");
    let (addr, len) = (addr.trim(), len.trim());
    let canonical_digits = !len.is_empty()
        && len.bytes().all(|b| b.is_ascii_digit())
        && (len == "0" || !len.starts_with('0'));
    if !canonical_digits {
        // Rejected whatever the address; the message names the address first if it is
        // wrong too (ipnetwork reads it with the same std parser).
        return Err(match parse_ip(addr) {
            None => not_an_address(addr),
            Some(_) => invalid(&format!(
                "not a valid CIDR: prefix length {len:?} is not a number"
            )),
        });
    }
    // Whitespace around '/' is allowed in a pool, not by ipnetwork.
    let cidr: Cow<'_, str> = if addr.len() + len.len() + 1 == t.len() {
        Cow::Borrowed(t)
    } else {
        Cow::Owned(format!("{addr}/{len}"))
    };
    // The family decides which of ipnetwork's parsers reads it (IpNetwork's own FromStr
    // tries both and reports every failure as an invalid address).
    let (parsed, bits) = if addr.contains(':') {
        (Ipv6Network::from_str(&cidr).map(IpNetwork::V6), 128u8)
    } else {
        (Ipv4Network::from_str(&cidr).map(IpNetwork::V4), 32u8)
    };
    let net = match parsed {
        Ok(net) => net,
        Err(IpNetworkError::InvalidAddr(_)) => return Err(not_an_address(addr)),
        // With canonical digits, the only prefix ipnetwork refuses is one longer than
        // the family's bits (or than 255, which does not fit its u8).
        Err(IpNetworkError::InvalidPrefix) => {
            return Err(invalid(&format!(
                "not a valid CIDR: prefix length {len} is longer than {bits} bits"
            )));
        }
        Err(e) => return Err(invalid(&format!("not a valid CIDR: {e}"))),
    };
    let (ip, prefix) = (net.ip(), net.prefix());
    let (start, end) = (net.network(), net.broadcast());
    if start != ip && host_bits == HostBits::Reject {
        return Err((
            ProblemKind::HostBitsSet,
            format!(
                "host bits are set (the network is {start}/{prefix}; write that, or a range such as {ip}-{end})"
            ),
        ));
    }
    Ok(Entry {
        range: IpRange { start, end },
        prefix: Some(prefix),
    })
}

fn not_an_address(addr: &str) -> EntryError {
    invalid(&format!("not a valid CIDR: {addr:?} is not an IP address"))
}

fn parse_range(t: &str) -> Result<Entry, EntryError> {
    let parts: Vec<&str> = t.split('-').map(str::trim).collect();
    let [a, b] = parts[..] else {
        return Err(invalid(
            "not a valid range: expected exactly one '-' between start and end",
        ));
    };
    let start = parse_ip(a);
    let end = parse_ip(b);
    let (start, end) = match (start, end) {
        (Some(s), Some(e)) => (s, e),
        (None, _) => {
            return Err(invalid(&format!(
                "not a valid range: start {a:?} is not an IP address"
            )));
        }
        (_, None) => {
            return Err(invalid(&format!(
                "not a valid range: end {b:?} is not an IP address"
            )));
        }
    };
    if start.is_ipv4() != end.is_ipv4() {
        return Err((
            ProblemKind::MixedFamilies,
            format!(
                "range mixes IPv4 and IPv6 (start {start} is {}, end {end} is {})",
                family(start),
                family(end)
            ),
        ));
    }
    if start > end {
        return Err((
            ProblemKind::ReversedRange,
            format!("reversed range: start {start} is after end {end}"),
        ));
    }
    Ok(Entry {
        range: IpRange { start, end },
        prefix: None,
    })
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// Sort ranges and merge those that overlap or touch (set union).
pub(crate) fn merge(mut ranges: Vec<IpRange>) -> Vec<IpRange> {
    ranges.sort();
    let mut out: Vec<IpRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        if let Some(last) = out.last_mut()
            && last.is_ipv4() == r.is_ipv4()
            && (r.start <= last.end || next(last.end) == Some(r.start))
        {
            if r.end > last.end {
                last.end = r.end;
            }
            continue;
        }
        out.push(r);
    }
    out
}

/// The address after `ip`, if any.
fn next(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => u32::from(a).checked_add(1).map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(a) => u128::from(a).checked_add(1).map(|n| IpAddr::V6(n.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: &str, b: &str) -> IpRange {
        IpRange {
            start: a.parse().unwrap(),
            end: b.parse().unwrap(),
        }
    }

    fn any(t: &str) -> Result<IpRange, EntryError> {
        parse_entry(t, Syntax::Any, HostBits::Reject).map(|e| e.range)
    }

    #[test]
    fn cidr_range_and_single_ip() {
        assert_eq!(any("192.0.2.0/28"), Ok(r("192.0.2.0", "192.0.2.15")));
        assert_eq!(
            any(" 192.0.2.100 - 192.0.2.120 "),
            Ok(r("192.0.2.100", "192.0.2.120"))
        );
        assert_eq!(any("192.0.2.200"), Ok(r("192.0.2.200", "192.0.2.200")));
        assert_eq!(
            any("2001:db8:10::/120"),
            Ok(r("2001:db8:10::", "2001:db8:10::ff"))
        );
        assert_eq!(any("0.0.0.0/0"), Ok(r("0.0.0.0", "255.255.255.255")));
        assert_eq!(
            any("::/0"),
            Ok(r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
        );
        assert_eq!(any("2001:db8::1/128"), Ok(r("2001:db8::1", "2001:db8::1")));
        assert_eq!(
            any("2001:db8::1-2001:db8::5"),
            Ok(r("2001:db8::1", "2001:db8::5"))
        );
    }

    #[test]
    fn malformed_entries() {
        let e = |t| any(t).unwrap_err();
        assert_eq!(e(""), (ProblemKind::InvalidAddress, "empty address".into()));
        assert_eq!(
            e("192.0.2.300"),
            (
                ProblemKind::InvalidAddress,
                "not an IP address, a CIDR (address/prefix-length) or a range (start-end)".into()
            )
        );
        assert_eq!(
            e("192.0.2.0/33").1,
            "not a valid CIDR: prefix length 33 is longer than 32 bits"
        );
        assert_eq!(
            e("2001:db8::/129").1,
            "not a valid CIDR: prefix length 129 is longer than 128 bits"
        );
        assert_eq!(
            e("192.0.2.0/999").1,
            "not a valid CIDR: prefix length 999 is longer than 32 bits"
        );
        assert_eq!(
            e("192.0.2.0/x").1,
            "not a valid CIDR: prefix length \"x\" is not a number"
        );
        assert_eq!(
            e("192.0.2.0/+8").1,
            "not a valid CIDR: prefix length \"+8\" is not a number"
        );
        assert_eq!(
            e("192.0.2.0/024").1,
            "not a valid CIDR: prefix length \"024\" is not a number"
        );
        assert_eq!(
            e("192.0.2/24").1,
            "not a valid CIDR: \"192.0.2\" is not an IP address"
        );
        assert_eq!(
            e("1.2.3.4-1.2.3.5-1.2.3.6").1,
            "not a valid range: expected exactly one '-' between start and end"
        );
        assert_eq!(
            e("x-192.0.2.1").1,
            "not a valid range: start \"x\" is not an IP address"
        );
        assert_eq!(
            e("192.0.2.1-").1,
            "not a valid range: end \"\" is not an IP address"
        );
        assert_eq!(
            e("192.0.2.0/24, 192.0.3.0/24").1,
            "one address per entry: write a list item for each, not a comma-separated string"
        );
        assert_eq!(e("fe80::1%eth0").0, ProblemKind::InvalidAddress);
        assert_eq!(e("010.0.0.1").0, ProblemKind::InvalidAddress);
    }

    #[test]
    fn host_bits_rejected_or_masked() {
        assert_eq!(
            any("192.0.2.7/24"),
            Err((
                ProblemKind::HostBitsSet,
                "host bits are set (the network is 192.0.2.0/24; write that, or a range such as 192.0.2.7-192.0.2.255)".into()
            ))
        );
        assert_eq!(
            parse_entry("192.0.2.220/29", Syntax::CidrOnly, HostBits::Mask),
            Ok(Entry {
                range: r("192.0.2.216", "192.0.2.223"),
                prefix: Some(29)
            })
        );
    }

    #[test]
    fn cidr_spellings_ipnetwork_takes_but_pools_do_not() {
        // ipnetwork accepts each of these (hence ferrolb's own check of the prefix's
        // spelling in parse_cidr); no pool format documents them.
        for t in ["192.0.2.0/+8", "192.0.2.0/024", "192.0.2.0/255.255.255.0"] {
            assert!(t.parse::<IpNetwork>().is_ok(), "ipnetwork now refuses {t}");
        }
        assert_eq!(
            any("192.0.2.0/255.255.255.0").unwrap_err(),
            (
                ProblemKind::InvalidAddress,
                "not a valid CIDR: prefix length \"255.255.255.0\" is not a number".into()
            )
        );
        assert_eq!(
            any("192.0.2.0/24/8").unwrap_err().1,
            "not a valid CIDR: prefix length \"24/8\" is not a number"
        );
        // The address is named first when both parts are wrong.
        assert_eq!(
            any("192.0.2/24/8").unwrap_err().1,
            "not a valid CIDR: \"192.0.2\" is not an IP address"
        );
        assert_eq!(
            any("2001:db8::/").unwrap_err().1,
            "not a valid CIDR: prefix length \"\" is not a number"
        );
        assert_eq!(
            any("2001:db8::zz/64").unwrap_err().1,
            "not a valid CIDR: \"2001:db8::zz\" is not an IP address"
        );
        assert_eq!(
            any("2001:db8::/300").unwrap_err().1,
            "not a valid CIDR: prefix length 300 is longer than 128 bits"
        );
    }

    #[test]
    fn whitespace_around_the_slash_is_allowed() {
        assert_eq!(
            parse_entry(" 192.0.2.0 / 28 ", Syntax::CidrOnly, HostBits::Reject),
            Ok(Entry {
                range: r("192.0.2.0", "192.0.2.15"),
                prefix: Some(28)
            })
        );
        assert_eq!(
            any("2001:db8::1 /127").unwrap_err().0,
            ProblemKind::HostBitsSet
        );
    }

    proptest::proptest! {
        /// Every IPv4 CIDR covers the addresses that share its first `prefix` bits, as
        /// a mask computed here says; host bits are rejected exactly when set.
        #[test]
        fn v4_cidr_bounds_match_the_mask(a in proptest::prelude::any::<u32>(), p in 0u8..=32) {
            let mask = u32::MAX.checked_shl(32 - u32::from(p)).unwrap_or(0);
            let text = format!("{}/{p}", std::net::Ipv4Addr::from(a));
            let masked = parse_entry(&text, Syntax::CidrOnly, HostBits::Mask).unwrap();
            let lo = IpAddr::from(std::net::Ipv4Addr::from(a & mask));
            let hi = IpAddr::from(std::net::Ipv4Addr::from(a | !mask));
            proptest::prop_assert_eq!(masked, Entry { range: IpRange { start: lo, end: hi }, prefix: Some(p) });
            let strict = parse_entry(&text, Syntax::Any, HostBits::Reject);
            proptest::prop_assert_eq!(strict.is_ok(), a & !mask == 0);
        }

        /// The same for IPv6.
        #[test]
        fn v6_cidr_bounds_match_the_mask(a in proptest::prelude::any::<u128>(), p in 0u8..=128) {
            let mask = u128::MAX.checked_shl(128 - u32::from(p)).unwrap_or(0);
            let text = format!("{}/{p}", std::net::Ipv6Addr::from(a));
            let masked = parse_entry(&text, Syntax::CidrOnly, HostBits::Mask).unwrap();
            let lo = IpAddr::from(std::net::Ipv6Addr::from(a & mask));
            let hi = IpAddr::from(std::net::Ipv6Addr::from(a | !mask));
            proptest::prop_assert_eq!(masked, Entry { range: IpRange { start: lo, end: hi }, prefix: Some(p) });
            let strict = parse_entry(&text, Syntax::Any, HostBits::Reject);
            proptest::prop_assert_eq!(strict.is_ok(), a & !mask == 0);
        }
    }

    #[test]
    fn reversed_and_mixed_ranges() {
        assert_eq!(
            any("192.0.2.20-192.0.2.10"),
            Err((
                ProblemKind::ReversedRange,
                "reversed range: start 192.0.2.20 is after end 192.0.2.10".into()
            ))
        );
        assert_eq!(
            any("192.0.2.1-2001:db8::1"),
            Err((
                ProblemKind::MixedFamilies,
                "range mixes IPv4 and IPv6 (start 192.0.2.1 is IPv4, end 2001:db8::1 is IPv6)"
                    .into()
            ))
        );
    }

    #[test]
    fn syntax_restrictions() {
        assert_eq!(
            parse_entry("192.0.2.1-192.0.2.2", Syntax::CidrOnly, HostBits::Mask)
                .unwrap_err()
                .1,
            "expected a CIDR (address/prefix-length), not a range"
        );
        assert_eq!(
            parse_entry("192.0.2.0/24", Syntax::RangeOnly, HostBits::Mask)
                .unwrap_err()
                .1,
            "expected a range written start-end, not a CIDR"
        );
        assert_eq!(
            parse_entry("192.0.2.1", Syntax::RangeOnly, HostBits::Mask)
                .unwrap_err()
                .1,
            "expected a range written start-end"
        );
        assert_eq!(
            parse_entry("192.0.2.1", Syntax::CidrOnly, HostBits::Mask)
                .unwrap_err()
                .1,
            "expected a CIDR (address/prefix-length)"
        );
    }

    #[test]
    fn merge_unions_overlapping_and_touching() {
        let m = merge(vec![
            r("192.0.2.10", "192.0.2.20"),
            r("192.0.2.0", "192.0.2.12"),
            r("192.0.2.21", "192.0.2.21"),
            r("192.0.2.30", "192.0.2.40"),
            r("2001:db8::", "2001:db8::5"),
            r("255.255.255.255", "255.255.255.255"),
        ]);
        assert_eq!(
            m,
            vec![
                r("192.0.2.0", "192.0.2.21"),
                r("192.0.2.30", "192.0.2.40"),
                r("255.255.255.255", "255.255.255.255"),
                r("2001:db8::", "2001:db8::5"),
            ]
        );
    }
}
