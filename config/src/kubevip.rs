//! kube-vip-cloud-provider's ConfigMap, read as it is.
//!
//! Keys `cidr-<ns>` / `range-<ns>` hold comma-separated CIDRs / `start-end`
//! ranges; `<ns>` is a namespace or the word `global`. The mapping onto
//! ferrolb's model:
//!
//! - `cidr-global` + `range-global` → one pool named `global`, any namespace.
//! - `cidr-<ns>` + `range-<ns>` → one pool named `<ns>` with `namespaces: [<ns>]`.
//! - every pool has `autoAssign: true`; namespace pools come first (sorted by
//!   name), `global` last, so "first allowed auto-assign pool in order" picks a
//!   Service's own namespace pool when there is one, else `global`.
//! - entries of one pool may overlap (kube-vip takes their union, and so do we);
//!   CIDRs with host bits set are taken as their network, as kube-vip does.
//! - `skip-end-ips-in-cidr: "true"` drops the first and last address of every
//!   IPv4 CIDR shorter than /31 from the pool's ranges.
//! - `interface-global` → `l2.interfaces`.
//! - `search-order: asc`, `allow-share-*: false` state defaults and are accepted;
//!   `search-order: desc`, `allow-share-*: true` and `interface-<ns>` have no
//!   equivalent and are errors.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::addr::{self, HostBits, Syntax};
use crate::error::{ConfigErrors, PoolRef, Problem, ProblemKind};
use crate::ferrolb::check_interface;
use crate::model::{Config, IpRange, L2Config};
use crate::validate::{self, RawEntry, RawPool};
use crate::walk::{self, DNS1123_RULE, Loc, is_dns1123_label};

/// Name of the pool every namespace may use.
pub const GLOBAL: &str = "global";

const KNOWN_KEYS: &[&str] = &[
    "cidr-global",
    "range-global",
    "skip-end-ips-in-cidr",
    "search-order",
    "allow-share-global",
    "interface-global",
];

/// True when the ConfigMap's keys look like kube-vip's.
pub(crate) fn detect(data: &BTreeMap<String, String>) -> bool {
    data.keys()
        .any(|k| k.starts_with("cidr-") || k.starts_with("range-"))
}

/// Parse and validate a kube-vip-cloud-provider ConfigMap's data.
pub fn parse_kubevip(data: &BTreeMap<String, String>) -> Result<Config, ConfigErrors> {
    let mut problems = Vec::new();
    let mut l2 = L2Config::default();
    let key_loc = |k: &str| Loc::at(format!("data[{k:?}]"));

    // Options first: skip-end-ips changes how CIDRs are read.
    let mut skip_ends = false;
    for (key, value) in data {
        let loc = key_loc(key);
        let v = value.trim();
        if key == "skip-end-ips-in-cidr" {
            match v {
                "true" => skip_ends = true,
                "false" => {}
                _ => problems.push(loc.problem_str(
                    ProblemKind::InvalidValue,
                    value,
                    "expected \"true\" or \"false\"",
                )),
            }
        } else if key == "search-order" {
            match v {
                "asc" => {}
                "desc" => problems.push(loc.problem_str(
                    ProblemKind::Unsupported,
                    value,
                    "search-order desc is not supported: ferrolb chooses addresses itself; remove the key",
                )),
                _ => problems.push(loc.problem_str(ProblemKind::InvalidValue, value, "expected \"asc\" or \"desc\"")),
            }
        } else if let Some(ns) = key.strip_prefix("allow-share-") {
            match go_bool(v) {
                Some(false) => {}
                Some(true) => problems.push(loc.problem_str(
                    ProblemKind::Unsupported,
                    value,
                    "sharing every address of a namespace is not supported: annotate the Services that share with ferrolb.io/allow-shared-ip instead",
                )),
                None => problems.push(loc.problem_str(ProblemKind::InvalidValue, value, "expected \"true\" or \"false\"")),
            }
            check_suffix(ns, &loc, &mut problems);
        } else if let Some(ns) = key.strip_prefix("interface-") {
            if ns == GLOBAL {
                match check_interface(v) {
                    Ok(()) => l2.interfaces = vec![v.to_string()],
                    Err(msg) => {
                        problems.push(loc.problem_str(ProblemKind::InvalidName, value, msg))
                    }
                }
            } else {
                problems.push(loc.problem(
                    ProblemKind::Unsupported,
                    "a per-namespace interface is not supported: ferrolb announces per pool, not per namespace (use interface-global, or `ferrolb-controller convert`, which writes it as an l2 policy for the namespace's pool)",
                ));
            }
        } else if !key.starts_with("cidr-") && !key.starts_with("range-") {
            let msg = match walk::suggest(key, KNOWN_KEYS) {
                Some(s) => format!("unknown kube-vip key, did you mean {s:?}?"),
                None => "unknown kube-vip key (expected cidr-<namespace>, range-<namespace>, skip-end-ips-in-cidr, search-order, allow-share-<namespace> or interface-global)".to_string(),
            };
            problems.push(loc.problem(ProblemKind::UnknownField, msg));
        }
    }

    let mut pools: BTreeMap<String, RawPool> = BTreeMap::new();
    for (key, value) in data {
        let (syntax, ns) = if let Some(ns) = key.strip_prefix("cidr-") {
            (Syntax::CidrOnly, ns)
        } else if let Some(ns) = key.strip_prefix("range-") {
            (Syntax::RangeOnly, ns)
        } else {
            continue;
        };
        let loc = key_loc(key);
        if !check_suffix(ns, &loc, &mut problems) {
            continue;
        }
        let loc = loc.in_pool(PoolRef::Name(ns.to_string()));
        let raw = pools.entry(ns.to_string()).or_insert_with(|| {
            let mut p = RawPool::new(Some(ns.to_string()), loc.clone(), loc.clone());
            p.merge_overlaps = true;
            if ns != GLOBAL {
                p.namespaces = Some(vec![ns.to_string()]);
            }
            p
        });
        read_list(value, syntax, skip_ends, &loc, raw, &mut problems);
    }

    // Namespace pools first (BTreeMap order), `global` last.
    let global = pools.remove(GLOBAL);
    let ordered: Vec<RawPool> = pools.into_values().chain(global).collect();
    validate::finish(ordered, l2, problems)
}

/// Check the `<ns>` part of a key; false (after reporting) when it is not a namespace name.
fn check_suffix(ns: &str, loc: &Loc, problems: &mut Vec<Problem>) -> bool {
    if is_dns1123_label(ns) {
        return true;
    }
    problems.push(loc.problem(
        ProblemKind::InvalidName,
        format!("{ns:?} is not a namespace name: {DNS1123_RULE}"),
    ));
    false
}

fn read_list(
    value: &str,
    syntax: Syntax,
    skip_ends: bool,
    loc: &Loc,
    raw: &mut RawPool,
    problems: &mut Vec<Problem>,
) {
    if value.trim().is_empty() {
        problems.push(loc.problem_str(ProblemKind::EmptyPool, value, "no addresses listed"));
        raw.addresses_broken = true;
        return;
    }
    for (i, item) in value.split(',').enumerate() {
        let l = loc.index(i);
        if item.trim().is_empty() {
            problems.push(l.problem_str(
                ProblemKind::InvalidAddress,
                item,
                "empty entry (a stray comma?)",
            ));
            raw.addresses_broken = true;
            continue;
        }
        match addr::parse_entry(item, syntax, HostBits::Mask) {
            Ok(e) => {
                let range = match e.prefix {
                    Some(p) if skip_ends && e.range.is_ipv4() && p < 31 => shrink(e.range),
                    _ => e.range,
                };
                raw.entries.push(RawEntry {
                    range,
                    path: l.path.clone(),
                    text: item.trim().to_string(),
                });
            }
            Err((kind, msg)) => {
                problems.push(l.problem_str(kind, item.trim(), msg));
                raw.addresses_broken = true;
            }
        }
    }
}

/// Drop the network and broadcast address of an IPv4 CIDR range of at least 4 addresses.
fn shrink(r: IpRange) -> IpRange {
    match (r.start, r.end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => IpRange {
            start: IpAddr::V4((u32::from(a) + 1).into()),
            end: IpAddr::V4((u32::from(b) - 1).into()),
        },
        _ => r,
    }
}

/// Go's `strconv.ParseBool`, which kube-vip uses for `allow-share-*`.
fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}
