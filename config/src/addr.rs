//! Parsing one address entry: a CIDR, an `a-b` range or a single IP.

use std::net::IpAddr;

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

fn parse_cidr(t: &str, host_bits: HostBits) -> Result<Entry, EntryError> {
    let (addr, len) = t.split_once('/').expect("caller checked for '/'");
    let (addr, len) = (addr.trim(), len.trim());
    let Some(ip) = parse_ip(addr) else {
        return Err(invalid(&format!(
            "not a valid CIDR: {addr:?} is not an IP address"
        )));
    };
    let bits: u8 = if ip.is_ipv4() { 32 } else { 128 };
    let canonical_digits = !len.is_empty()
        && len.bytes().all(|b| b.is_ascii_digit())
        && (len == "0" || !len.starts_with('0'));
    let prefix = match len.parse::<u8>() {
        Ok(p) if canonical_digits && p <= bits => p,
        Ok(p) if canonical_digits => {
            return Err(invalid(&format!(
                "not a valid CIDR: prefix length {p} is longer than {bits} bits"
            )));
        }
        _ if canonical_digits => {
            return Err(invalid(&format!(
                "not a valid CIDR: prefix length {len} is longer than {bits} bits"
            )));
        }
        _ => {
            return Err(invalid(&format!(
                "not a valid CIDR: prefix length {len:?} is not a number"
            )));
        }
    };
    let (start, end) = network_bounds(ip, prefix);
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

/// First and last address of the network of `ip` with `prefix` bits.
fn network_bounds(ip: IpAddr, prefix: u8) -> (IpAddr, IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            let n = u32::from(a) & mask;
            (IpAddr::V4(n.into()), IpAddr::V4((n | !mask).into()))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            let n = u128::from(a) & mask;
            (IpAddr::V6(n.into()), IpAddr::V6((n | !mask).into()))
        }
    }
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
