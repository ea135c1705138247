//! The stable hash of the election: rendezvous (highest random weight) hashing of
//! (node, IP), part of ferrolb's cluster protocol.

use std::net::IpAddr;

pub(super) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of `bytes`, continuing from `state`.
pub(super) fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        state ^= u64::from(b);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// MurmurHash3's 64-bit finaliser: FNV-1a alone mixes poorly into the high bits, and
/// rendezvous hashing compares whole 64-bit scores.
pub(super) fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The rendezvous score of `node` for `ip`; the highest-scoring eligible node announces.
///
/// **This function is part of ferrolb's cluster protocol**: every speaker of a cluster,
/// whatever its version, must compute the same value, or two speakers may both announce
/// an IP during a rolling upgrade. It is defined as
/// `fmix64(FNV-1a-64(node_utf8 ‖ 0xFF ‖ family ‖ address_octets))` where `family` is the
/// byte 4 or 6, the address is in network byte order (4 or 16 octets) and `fmix64` is
/// MurmurHash3's 64-bit finaliser. `0xFF` never occurs in UTF-8, so no node name can run
/// into the address bytes. It deliberately avoids `std`'s hasher, whose algorithm may
/// change between Rust releases. Changing it is a breaking change.
pub fn rendezvous_score(node: &str, ip: IpAddr) -> u64 {
    let mut h = fnv1a(FNV_OFFSET, node.as_bytes());
    h = fnv1a(h, &[0xff]);
    h = match ip {
        IpAddr::V4(a) => fnv1a(fnv1a(h, &[4]), &a.octets()),
        IpAddr::V6(a) => fnv1a(fnv1a(h, &[6]), &a.octets()),
    };
    fmix64(h)
}

/// The candidate that ranks first for `ip`: highest score, ties (astronomically rare)
/// broken by the smaller name so that the answer is total.
pub fn rendezvous_pick<'a, I>(candidates: I, ip: IpAddr) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    candidates
        .into_iter()
        .map(|n| (rendezvous_score(n, ip), std::cmp::Reverse(n)))
        .max()
        .map(|(_, std::cmp::Reverse(n))| n)
}
