//! Checks common to all three formats, run once every pool has been read:
//! pool names, duplicates, overlaps within and across pools, empty pools.
//! Then, and only if nothing at all is wrong, the [`Config`] is assembled.

use std::collections::BTreeMap;

use crate::addr;
use crate::error::{ConfigErrors, PoolRef, Problem, ProblemKind};
use crate::model::{Config, IpRange, L2Config, LabelSelector, Pool};
use crate::walk::{DNS1123_RULE, Loc, is_dns1123_label};

/// One address entry as written, after parsing.
#[derive(Debug, Clone)]
pub(crate) struct RawEntry {
    pub range: IpRange,
    /// Where it was written, e.g. `pools[0].addresses[2]`.
    pub path: String,
    /// How it was written.
    pub text: String,
}

/// A pool as read by a format parser, before the cross-pool checks.
#[derive(Debug, Clone)]
pub(crate) struct RawPool {
    /// The name, when one was written as a string.
    pub name: Option<String>,
    /// Location of the name field (for name problems).
    pub name_loc: Loc,
    /// Location of the address list (for "empty pool").
    pub addresses_loc: Loc,
    /// Entries that parsed.
    pub entries: Vec<RawEntry>,
    /// True when some entry (or the list itself) was malformed; then "empty" is not reported
    /// because the real problem has been.
    pub addresses_broken: bool,
    /// The field name of avoid-buggy-IPs in this format, for the "nothing left" message.
    pub avoid_field: &'static str,
    /// Union overlapping entries instead of rejecting them (kube-vip semantics).
    pub merge_overlaps: bool,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    pub namespaces: Option<Vec<String>>,
    pub service_selector: Option<LabelSelector>,
    pub labels: BTreeMap<String, String>,
}

impl RawPool {
    /// A pool with defaults, to be filled in by a parser.
    pub fn new(name: Option<String>, name_loc: Loc, addresses_loc: Loc) -> Self {
        RawPool {
            name,
            name_loc,
            addresses_loc,
            entries: Vec::new(),
            addresses_broken: false,
            avoid_field: "avoidBuggyIPs",
            merge_overlaps: false,
            auto_assign: true,
            avoid_buggy_ips: false,
            namespaces: None,
            service_selector: None,
            labels: BTreeMap::new(),
        }
    }

    fn pool_ref(&self, index: usize) -> PoolRef {
        match &self.name {
            Some(n) => PoolRef::Name(n.clone()),
            None => PoolRef::Index(index),
        }
    }
}

/// Run the cross-pool checks and build the config; `problems` already holds
/// what the format parser found. Any problem at all means `Err` with all of them.
pub(crate) fn finish(
    pools: Vec<RawPool>,
    l2: L2Config,
    mut problems: Vec<Problem>,
) -> Result<Config, ConfigErrors> {
    check_names(&pools, &mut problems);
    check_overlaps(&pools, &mut problems);
    check_empty(&pools, &mut problems);
    if !problems.is_empty() {
        return Err(ConfigErrors::new(problems));
    }
    let pools = pools
        .into_iter()
        .map(|p| {
            let ranges: Vec<IpRange> = p.entries.iter().map(|e| e.range).collect();
            // Without merging the ranges are already disjoint (checked above); merge
            // also sorts, and joins touching ranges, which changes no address.
            let ranges = addr::merge(ranges);
            Pool {
                name: p.name.expect("a pool without a name was reported"),
                ranges,
                auto_assign: p.auto_assign,
                avoid_buggy_ips: p.avoid_buggy_ips,
                namespaces: p.namespaces,
                service_selector: p.service_selector,
                labels: p.labels,
            }
        })
        .collect();
    Ok(Config { pools, l2 })
}

fn check_names(pools: &[RawPool], problems: &mut Vec<Problem>) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (i, p) in pools.iter().enumerate() {
        let Some(name) = &p.name else { continue };
        let loc = p.name_loc.in_pool(p.pool_ref(i));
        if name.is_empty() {
            problems.push(loc.problem_str(
                ProblemKind::InvalidName,
                name,
                "pool name must not be empty",
            ));
        } else if !is_dns1123_label(name) {
            problems.push(loc.problem_str(
                ProblemKind::InvalidName,
                name,
                format!("invalid pool name: {DNS1123_RULE}"),
            ));
        }
        match seen.get(name.as_str()) {
            Some(first) => problems.push(loc.problem_str(
                ProblemKind::DuplicateName,
                name,
                format!("duplicate pool name (first defined at {first})"),
            )),
            None => {
                seen.insert(name, &p.name_loc.path);
            }
        }
    }
}

/// At most this many overlaps are listed, so that a list pasted twice over
/// (thousands of entries) cannot make validation quadratic.
const MAX_OVERLAPS: usize = 100;

/// Report every pair of entries that share addresses, on the later-written entry.
fn check_overlaps(pools: &[RawPool], problems: &mut Vec<Problem>) {
    // (range, pool index, entry index), sorted by start so that only entries
    // starting before the current one's end need comparing. Pools whose own
    // entries may overlap (kube-vip) take part with their union, so that
    // their overlaps cost nothing here; the entry to name is looked up when
    // reporting.
    let mut all: Vec<(IpRange, usize, usize)> = Vec::new();
    for (pi, p) in pools.iter().enumerate() {
        if p.merge_overlaps {
            let merged = addr::merge(p.entries.iter().map(|e| e.range).collect());
            all.extend(merged.into_iter().map(|r| (r, pi, usize::MAX)));
        } else {
            all.extend(
                p.entries
                    .iter()
                    .enumerate()
                    .map(|(ei, e)| (e.range, pi, ei)),
            );
        }
    }
    all.sort();
    let mut pairs = Vec::new();
    let mut truncated = false;
    'outer: for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if b.0.is_ipv4() != a.0.is_ipv4() || b.0.start > a.0.end {
                break;
            }
            if pairs.len() == MAX_OVERLAPS {
                truncated = true;
                break 'outer;
            }
            let common = a.0.intersection(&b.0).expect("ranges overlap");
            let name = |x: &(IpRange, usize, usize)| (x.1, entry_for(&pools[x.1], x.2, common));
            let (na, nb) = (name(a), name(b));
            let (first, later) = if na < nb { (na, nb) } else { (nb, na) };
            pairs.push((later, first, common));
        }
    }
    pairs.sort();
    for ((lp, le), (fp, fe), common) in pairs {
        let later = &pools[lp];
        let first = &pools[fp];
        let entry = &later.entries[le];
        let other = &first.entries[fe];
        let whose = if lp == fp {
            "the same pool".to_string()
        } else {
            first.pool_ref(fp).to_string()
        };
        let loc = Loc::at(entry.path.clone()).in_pool(later.pool_ref(lp));
        problems.push(loc.problem_str(
            ProblemKind::Overlap,
            &entry.text,
            format!(
                "overlaps {} = {:?} of {whose} (common addresses: {common})",
                other.path, other.text
            ),
        ));
    }
    if truncated {
        problems.push(Problem::new(
            ProblemKind::Overlap,
            "",
            format!("more overlapping addresses not listed (only the first {MAX_OVERLAPS} are)"),
        ));
    }
}

/// The entry to name: `index` itself, or for a merged range (`usize::MAX`) the
/// first entry of the pool that holds some of `common`.
fn entry_for(pool: &RawPool, index: usize, common: IpRange) -> usize {
    if index != usize::MAX {
        return index;
    }
    pool.entries
        .iter()
        .position(|e| e.range.intersection(&common).is_some())
        .expect("a merged range is made of entries")
}

fn check_empty(pools: &[RawPool], problems: &mut Vec<Problem>) {
    for (i, p) in pools.iter().enumerate() {
        if p.addresses_broken {
            continue;
        }
        let loc = p.addresses_loc.in_pool(p.pool_ref(i));
        if p.entries.is_empty() {
            problems.push(loc.problem(ProblemKind::EmptyPool, "pool has no addresses"));
        } else if p
            .entries
            .iter()
            .all(|e| e.range.usable_size(p.avoid_buggy_ips) == 0)
        {
            problems.push(loc.problem(
                ProblemKind::EmptyPool,
                format!(
                    "no usable address left: {} skips every .0 and .255, and the pool has nothing else",
                    p.avoid_field
                ),
            ));
        }
    }
}
