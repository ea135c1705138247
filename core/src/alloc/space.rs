//! The addresses of one family in one pool, and which of them are free.
//!
//! Addresses are handled as `u128` (IPv4 addresses are their `u32` value). The
//! set of *allocatable* addresses is the pool's ranges minus, with
//! `avoidBuggyIPs`, the `.0` and `.255` of every IPv4 /24. Free addresses are
//! kept as maximal intervals `[start, end]` of that ordered set: an interval may
//! span a gap between ranges or a skipped `.0`/`.255`, because adjacency is
//! measured in allocatable addresses, not in raw integers. Consequently the
//! whole pool starts as ONE interval, whatever its size, and the lowest free
//! address is the start of the first interval. Every operation is a few
//! `BTreeMap` steps plus a binary search over the pool's ranges: O(log n) in the
//! number of free intervals (bounded by the number of used addresses + 1) and
//! never proportional to the pool's size, so an IPv6 /64 costs the same as a /28.

use std::collections::BTreeMap;

/// One family of one pool: its ranges and its free intervals.
#[derive(Debug, Clone)]
pub(crate) struct Space {
    /// Sorted, disjoint, inclusive ranges; each holds at least one allocatable address.
    ranges: Vec<(u128, u128)>,
    /// Skip `.0` and `.255` of every /24 (IPv4 only).
    avoid_buggy: bool,
    /// Free intervals keyed by their END, value = start; both allocatable, maximal.
    /// Keying by the end means that taking the lowest address of an interval (the
    /// common case) only rewrites a value in place, with no change to the tree.
    free: BTreeMap<u128, u128>,
    /// Number of allocatable addresses.
    size: u128,
    /// Number of addresses taken out of `free`.
    in_use: u64,
}

/// True for the `.0` and `.255` of an IPv4 /24.
fn buggy(x: u128) -> bool {
    matches!(x & 0xff, 0 | 0xff)
}

/// Number of `x` in `0..=n` that are `.0` or `.255` of a /24.
fn buggy_upto(n: u128) -> u128 {
    (n / 256 + 1) + (n + 1) / 256
}

impl Space {
    /// Builds the space of `ranges` (sorted, disjoint, inclusive). `avoid_buggy` is only
    /// meaningful for IPv4 and must be false for IPv6. Returns `None` when no address
    /// is allocatable (e.g. a range made only of a `.255` and the next `.0`).
    pub(crate) fn new(
        ranges: impl IntoIterator<Item = (u128, u128)>,
        avoid_buggy: bool,
    ) -> Option<Self> {
        let mut space = Space {
            ranges: Vec::new(),
            avoid_buggy,
            free: BTreeMap::new(),
            size: 0,
            in_use: 0,
        };
        for (start, end) in ranges {
            let mut count = (end - start).saturating_add(1);
            if avoid_buggy {
                let below = if start == 0 { 0 } else { buggy_upto(start - 1) };
                count -= buggy_upto(end) - below;
            }
            if count > 0 {
                space.ranges.push((start, end));
                space.size = space.size.saturating_add(count);
            }
        }
        let first = space.next_valid(0)?;
        let last = space.prev_valid(u128::MAX)?;
        space.free.insert(last, first);
        Some(space)
    }

    /// Number of allocatable addresses.
    pub(crate) fn size(&self) -> u128 {
        self.size
    }

    /// Number of addresses in use.
    pub(crate) fn in_use(&self) -> u64 {
        self.in_use
    }

    /// True when `x` is an allocatable address of this space.
    pub(crate) fn is_valid(&self, x: u128) -> bool {
        if self.avoid_buggy && buggy(x) {
            return false;
        }
        let i = self.ranges.partition_point(|&(_, end)| end < x);
        self.ranges.get(i).is_some_and(|&(start, _)| start <= x)
    }

    /// Smallest allocatable address `>= x`.
    fn next_valid(&self, x: u128) -> Option<u128> {
        let mut i = self.ranges.partition_point(|&(_, end)| end < x);
        while let Some(&(start, end)) = self.ranges.get(i) {
            let mut y = x.max(start);
            if self.avoid_buggy {
                match y & 0xff {
                    0 => y += 1,
                    0xff => y += 2,
                    _ => {}
                }
            }
            if y <= end {
                return Some(y);
            }
            // Every kept range has an allocatable address, so the next range's
            // first one is the answer: this loop runs at most twice.
            i += 1;
        }
        None
    }

    /// Largest allocatable address `<= x`.
    fn prev_valid(&self, x: u128) -> Option<u128> {
        let mut i = self.ranges.partition_point(|&(start, _)| start <= x);
        while i > 0 {
            let (start, end) = self.ranges[i - 1];
            let mut y = x.min(end);
            if self.avoid_buggy {
                match y & 0xff {
                    0xff => y -= 1,
                    // Wraps only below `start`, which the check below rejects.
                    0 => y = y.wrapping_sub(2),
                    _ => {}
                }
            }
            if y >= start && y <= end {
                return Some(y);
            }
            i -= 1;
        }
        None
    }

    /// The free interval containing `x`, as (end, start).
    fn containing(&self, x: u128) -> Option<(u128, u128)> {
        self.free
            .range(x..)
            .next()
            .filter(|&(_, &start)| start <= x)
            .map(|(&end, &start)| (end, start))
    }

    /// True when `x` is allocatable and not in use.
    pub(crate) fn is_free(&self, x: u128) -> bool {
        self.is_valid(x) && self.containing(x).is_some()
    }

    /// The lowest free address.
    pub(crate) fn lowest_free(&self) -> Option<u128> {
        self.free.first_key_value().map(|(_, &start)| start)
    }

    /// Marks the free address `x` as used. Returns false (and changes nothing)
    /// when `x` is not a free allocatable address.
    pub(crate) fn take(&mut self, x: u128) -> bool {
        if !self.is_valid(x) {
            return false;
        }
        let Some((end, start)) = self.containing(x) else {
            return false;
        };
        // Whatever stays above x keeps the entry (same end); below x needs a new one.
        if x < end {
            let right = self.next_valid(x + 1).expect("end is allocatable");
            self.free.insert(end, right);
        } else {
            self.free.remove(&end);
        }
        if start < x {
            let left = self.prev_valid(x - 1).expect("start is allocatable");
            self.free.insert(left, start);
        }
        self.in_use += 1;
        true
    }

    /// Returns the used address `x` to the free set. Returns false (and changes
    /// nothing) when `x` is not allocatable or already free.
    pub(crate) fn put(&mut self, x: u128) -> bool {
        if !self.is_valid(x) || self.containing(x).is_some() {
            return false;
        }
        // The interval just below merges when no allocatable address lies between.
        let below = self
            .free
            .range(..x)
            .next_back()
            .map(|(&end, &start)| (end, start))
            .filter(|&(end, _)| self.next_valid(end + 1) == Some(x));
        // Likewise the interval just above (the first one ending above x).
        let above_start = x.checked_add(1).and_then(|n| self.next_valid(n));
        let above = self
            .free
            .range(x..)
            .next()
            .map(|(&end, &start)| (end, start))
            .filter(|&(_, start)| Some(start) == above_start);
        let start = match below {
            Some((end, start)) => {
                self.free.remove(&end);
                start
            }
            None => x,
        };
        match above {
            Some((end, _)) => {
                self.free.insert(end, start);
            }
            None => {
                self.free.insert(x, start);
            }
        }
        self.in_use -= 1;
        true
    }

    /// Number of free intervals (for tests of the representation).
    #[cfg(test)]
    pub(crate) fn intervals(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(s: &str) -> u128 {
        u32::from(s.parse::<std::net::Ipv4Addr>().unwrap()) as u128
    }

    #[test]
    fn lowest_free_walks_up_and_release_reuses() {
        let mut s = Space::new([(10, 12), (20, 20)], false).unwrap();
        assert_eq!(s.size(), 4);
        let mut got = vec![];
        while let Some(x) = s.lowest_free() {
            assert!(s.take(x));
            got.push(x);
        }
        assert_eq!(got, vec![10, 11, 12, 20]);
        assert_eq!(s.in_use(), 4);
        assert!(s.put(11));
        assert_eq!(s.lowest_free(), Some(11));
        assert!(!s.put(11), "double free must be refused");
        assert!(!s.take(15), "an address outside the ranges is never taken");
    }

    #[test]
    fn release_merges_back_into_one_interval() {
        let mut s = Space::new([(0, 99), (200, 299)], false).unwrap();
        for x in [5, 50, 99, 200, 250] {
            assert!(s.take(x));
        }
        assert_eq!(s.intervals(), 5);
        for x in [250, 5, 200, 50, 99] {
            assert!(s.put(x));
        }
        assert_eq!(
            s.intervals(),
            1,
            "gap between ranges is not an obstacle to merging"
        );
        assert_eq!(s.in_use(), 0);
    }

    #[test]
    fn avoid_buggy_skips_dot0_and_dot255() {
        let mut s = Space::new([(v4("192.0.2.254"), v4("198.51.100.1"))], true).unwrap();
        assert!(!s.is_valid(v4("192.0.2.255")));
        assert!(!s.is_valid(v4("192.0.3.0")));
        assert!(s.take(v4("192.0.2.254")));
        assert_eq!(s.lowest_free(), Some(v4("192.0.3.1")));
        assert!(!s.take(v4("192.0.3.0")));
        assert!(s.put(v4("192.0.2.254")));
        assert_eq!(s.intervals(), 1);
    }

    #[test]
    fn avoid_buggy_size_and_ranges_without_usable_address() {
        // A /24 has 254 usable addresses; a range of only .255 and .0 has none.
        let s = Space::new([(v4("192.0.2.0"), v4("192.0.2.255"))], true).unwrap();
        assert_eq!(s.size(), 254);
        assert!(Space::new([(v4("192.0.2.255"), v4("192.0.3.0"))], true).is_none());
        let s = Space::new(
            [
                (v4("192.0.2.255"), v4("192.0.3.0")),
                (v4("198.51.100.7"), v4("198.51.100.7")),
            ],
            true,
        )
        .unwrap();
        assert_eq!(s.size(), 1);
        assert_eq!(s.lowest_free(), Some(v4("198.51.100.7")));
    }

    #[test]
    fn a_slash64_is_one_interval() {
        let base = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128;
        let mut s = Space::new([(base, base + u64::MAX as u128)], false).unwrap();
        assert_eq!(s.size(), 1u128 << 64);
        for i in 0..1000 {
            assert_eq!(s.lowest_free(), Some(base + i));
            assert!(s.take(base + i));
        }
        assert_eq!(s.intervals(), 1);
        assert!(s.take(base + u64::MAX as u128));
        assert!(s.is_free(base + (1u128 << 40)));
    }

    #[test]
    fn top_of_ipv6_space_does_not_overflow() {
        let mut s = Space::new([(u128::MAX - 1, u128::MAX)], false).unwrap();
        assert!(s.take(u128::MAX));
        assert!(s.put(u128::MAX));
        assert_eq!(s.intervals(), 1);
    }
}

#[cfg(test)]
mod model_tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    /// The allocatable addresses, listed one by one (only for tiny spaces).
    fn materialise(ranges: &[(u128, u128)], avoid: bool) -> BTreeSet<u128> {
        ranges
            .iter()
            .flat_map(|&(s, e)| s..=e)
            .filter(|x| !(avoid && buggy(*x)))
            .collect()
    }

    proptest! {
        /// The interval set behaves exactly like the set of free addresses listed one by
        /// one: same lowest free, same answers to "is it free", same counts.
        #[test]
        fn matches_a_materialised_model(
            cuts in prop::collection::btree_set(200u128..800, 2..8),
            avoid in any::<bool>(),
            ops in prop::collection::vec((any::<bool>(), 150u128..850), 0..200),
        ) {
            let cuts: Vec<u128> = cuts.into_iter().collect();
            let ranges: Vec<(u128, u128)> = cuts.chunks(2).filter(|c| c.len() == 2).map(|c| (c[0], c[1])).collect();
            let all = materialise(&ranges, avoid);
            let Some(mut space) = Space::new(ranges.iter().copied(), avoid) else {
                prop_assert!(all.is_empty());
                return Ok(());
            };
            prop_assert_eq!(space.size(), all.len() as u128);
            let mut free = all.clone();
            for (take, x) in ops {
                if take {
                    // Alternate between taking the lowest and a given address.
                    let x = if x % 2 == 0 { space.lowest_free().unwrap_or(x) } else { x };
                    prop_assert_eq!(space.take(x), free.remove(&x));
                } else {
                    let expect = all.contains(&x) && !free.contains(&x);
                    prop_assert_eq!(space.put(x), expect);
                    if expect {
                        free.insert(x);
                    }
                }
                prop_assert_eq!(space.lowest_free(), free.first().copied());
                prop_assert_eq!(space.in_use() as usize, all.len() - free.len());
                for y in [x.saturating_sub(1), x, x + 1] {
                    prop_assert_eq!(space.is_free(y), free.contains(&y));
                }
                // Maximal intervals: never more than one per run of free addresses.
                let runs = free
                    .iter()
                    .zip(free.iter().skip(1))
                    .filter(|(a, b)| all.range(**a + 1..**b).next().is_some())
                    .count()
                    + usize::from(!free.is_empty());
                prop_assert_eq!(space.intervals(), runs);
            }
        }
    }
}
