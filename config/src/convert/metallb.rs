//! MetalLB's CRDs (metallb.io): `IPAddressPool` and `L2Advertisement` become
//! pools and announcement policies; the BGP kinds are reported by name.
//!
//! - Pools are ordered as MetalLB prefers them for a Service that names none:
//!   pools with a `serviceAllocation` first, by `priority` (lower first, unset
//!   last), then the others; ties by name.
//! - `serviceAllocation.namespaces` becomes `namespaces`, one
//!   `serviceSelectors` entry becomes `serviceSelector`. `namespaceSelectors`
//!   and several `serviceSelectors` (any of which may match) cannot be written:
//!   the pool is kept for the Services that have its addresses, with
//!   `autoAssign: false`, and reported.
//! - A pool that no `L2Advertisement` covers is not announced at layer 2 by
//!   MetalLB; ferrolb announces every pool, which is reported.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use super::l2::Policy;
use super::objects::{Object, spec_fields};
use super::{Lost, Part, pool_name};
use crate::error::{Problem, ProblemKind};
use crate::ferrolb::{check_interface, read_addresses};
use crate::model::LabelSelector;
use crate::selector;
use crate::validate::RawPool;
use crate::walk::{self, DNS1123_RULE, Loc, is_dns1123_label};

/// The MetalLB kinds `convert` reads.
pub const KINDS: &[&str] = &[
    "IPAddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "Community",
    "BFDProfile",
];

const POOL_SPEC: &[&str] = &[
    "addresses",
    "autoAssign",
    "avoidBuggyIPs",
    "serviceAllocation",
];
const ALLOCATION: &[&str] = &[
    "priority",
    "namespaces",
    "namespaceSelectors",
    "serviceSelectors",
];
const L2_SPEC: &[&str] = &[
    "ipAddressPools",
    "ipAddressPoolSelectors",
    "nodeSelectors",
    "interfaces",
];

struct PoolRead {
    raw: RawPool,
    labels: BTreeMap<String, String>,
    /// `metadata.name`, which L2Advertisements name (the pool may be renamed).
    object_name: String,
    origin: String,
    /// (has serviceAllocation: 0 first, priority, name)
    order: (u8, i64, String),
}

struct AdRead {
    policy: Policy,
    names: Vec<String>,
    selectors: Vec<LabelSelector>,
    /// True when neither pool names nor selectors are given: every pool.
    all: bool,
}

pub(super) fn convert(objs: &[Object], problems: &mut Vec<Problem>, lost: &mut Vec<Lost>) -> Part {
    let mut pools = Vec::new();
    let mut ads = Vec::new();
    for o in objs {
        match o.kind.as_str() {
            "IPAddressPool" => pools.extend(pool(o, problems, lost)),
            "L2Advertisement" => ads.extend(advertisement(o, problems)),
            kind => lost.push(Lost {
                origin: o.origin.to_string(),
                field: String::new(),
                reason: format!(
                    "{kind} is BGP configuration, which ferrolb does not support (it announces addresses at layer 2 only); nothing of it is carried over"
                ),
            }),
        }
    }
    pools.sort_by(|a, b| a.order.cmp(&b.order));
    // A name that matches no pool is a typo or a missing input file: say so.
    for ad in &ads {
        for n in &ad.names {
            if !pools.iter().any(|p| &p.object_name == n) {
                lost.push(Lost {
                    origin: ad.policy.origin.clone(),
                    field: "spec.ipAddressPools".into(),
                    reason: format!(
                        "names the pool {n:?}, which is not among the input's IPAddressPools; nothing is announced for it"
                    ),
                });
            }
        }
    }
    let mut part = Part::default();
    for p in &pools {
        let name = p.raw.name.clone().unwrap_or_default();
        let covering: Vec<usize> = ads
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                a.all
                    || a.names.contains(&p.object_name)
                    || a.selectors.iter().any(|s| s.matches(&p.labels))
            })
            .map(|(i, _)| i)
            .collect();
        if covering.is_empty() {
            lost.push(Lost {
                origin: p.origin.clone(),
                field: String::new(),
                reason: "no L2Advertisement covers this pool, so MetalLB does not announce it at layer 2 (BGP only, or not at all); ferrolb announces every pool at layer 2".into(),
            });
        }
        part.coverage.push((name, covering));
    }
    part.policies = ads.into_iter().map(|a| a.policy).collect();
    part.pools = pools.into_iter().map(|p| p.raw).collect();
    part
}

fn pool(o: &Object, problems: &mut Vec<Problem>, lost: &mut Vec<Lost>) -> Option<PoolRead> {
    let origin = o.origin.to_string();
    let name = pool_name(o, lost);
    let mut raw = RawPool::new(
        Some(name.clone()),
        o.loc("metadata.name"),
        o.loc("spec.addresses"),
    );
    let spec_loc = o.loc("spec");
    let Some(spec) = o.get("spec") else {
        problems.push(spec_loc.problem(ProblemKind::MissingField, "required field is missing"));
        return None;
    };
    let mut order = (1u8, i64::MAX, name.clone());
    let mut saw_addresses = false;
    let mut narrowed = Vec::new();
    for (key, v) in spec_fields(spec, &spec_loc, POOL_SPEC, problems) {
        let floc = spec_loc.field(key);
        match key {
            "addresses" => {
                saw_addresses = true;
                read_addresses(v, &floc, &mut raw, problems);
            }
            "autoAssign" => {
                if let Some(b) = walk::boolean(v, &floc, true, problems) {
                    raw.auto_assign = b;
                }
            }
            "avoidBuggyIPs" => {
                if let Some(b) = walk::boolean(v, &floc, false, problems) {
                    raw.avoid_buggy_ips = b;
                }
            }
            _ => {
                if v.is_null() {
                    continue;
                }
                order.0 = 0;
                for (k, a) in spec_fields(v, &floc, ALLOCATION, problems) {
                    let aloc = floc.field(k);
                    match k {
                        "priority" => match a.as_i64() {
                            Some(p) => order.1 = p,
                            None if a.is_null() => {}
                            None => problems.push(walk::wrong_type(&aloc, a, "an integer")),
                        },
                        "namespaces" => raw.namespaces = namespaces(a, &aloc, problems),
                        "namespaceSelectors" => {
                            let sels = selectors(a, &aloc, problems);
                            if !sels.is_empty() {
                                narrowed.push((
                                    "spec.serviceAllocation.namespaceSelectors",
                                    "ferrolb selects namespaces by name only (pool field namespaces), not by their labels".to_string(),
                                ));
                            }
                        }
                        _ => {
                            let mut sels = selectors(a, &aloc, problems);
                            match sels.len() {
                                0 => {}
                                1 => raw.service_selector = sels.pop(),
                                n => narrowed.push((
                                    "spec.serviceAllocation.serviceSelectors",
                                    format!("a Service matching any of {n} selectors cannot be written as ferrolb's one serviceSelector"),
                                )),
                            }
                        }
                    }
                }
            }
        }
    }
    if !saw_addresses {
        problems.push(
            spec_loc
                .field("addresses")
                .problem(ProblemKind::MissingField, "required field is missing"),
        );
        raw.addresses_broken = true;
    }
    if narrowed
        .iter()
        .any(|(f, _)| f.ends_with("namespaceSelectors"))
        && raw.namespaces.take().is_some()
    {
        // MetalLB allows the listed namespaces and those the selectors match:
        // keeping only the list would refuse Services that hold its addresses.
        narrowed.push((
            "spec.serviceAllocation.namespaces",
            "MetalLB allows these namespaces and those namespaceSelectors match, which ferrolb cannot say; the namespace list is left out".to_string(),
        ));
    }
    let was_auto = raw.auto_assign;
    for (field, why) in narrowed {
        let effect = if was_auto {
            "the pool is written with autoAssign: false, so that no Service outside the selection gets an address from it; Services that hold one of its addresses keep it, new ones must name the pool (ferrolb.io/address-pool) to use it"
        } else {
            "the pool has autoAssign: false already; a Service that names the pool may use it whatever its namespace or labels"
        };
        raw.auto_assign = false;
        lost.push(Lost {
            origin: origin.clone(),
            field: field.into(),
            reason: format!("{why}; {effect}"),
        });
    }
    Some(PoolRead {
        raw,
        labels: o.labels.clone(),
        object_name: o.name.clone(),
        origin,
        order,
    })
}

fn namespaces(v: &Value, loc: &Loc, problems: &mut Vec<Problem>) -> Option<Vec<String>> {
    let items = walk::string_list(v, loc, problems)?;
    let mut out: Vec<String> = Vec::new();
    for (ns, l) in items {
        if !is_dns1123_label(ns) {
            problems.push(l.problem_str(
                ProblemKind::InvalidName,
                ns,
                format!("invalid namespace name: {DNS1123_RULE}"),
            ));
        } else if !out.iter().any(|n| n == ns) {
            out.push(ns.to_string());
        }
    }
    // An empty list restricts nothing in MetalLB.
    (!out.is_empty()).then_some(out)
}

fn selectors(v: &Value, loc: &Loc, problems: &mut Vec<Problem>) -> Vec<LabelSelector> {
    if v.is_null() {
        return Vec::new();
    }
    let Some(items) = walk::list(v, loc, problems) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .filter_map(|(i, s)| selector::parse(s, &loc.index(i), problems))
        .collect()
}

fn advertisement(o: &Object, problems: &mut Vec<Problem>) -> Option<AdRead> {
    let spec_loc = o.loc("spec");
    let mut ad = AdRead {
        policy: Policy {
            origin: o.origin.to_string(),
            node_selectors: Vec::new(),
            nodes_field: "spec.nodeSelectors",
            interfaces: None,
            interfaces_field: "spec.interfaces",
        },
        names: Vec::new(),
        selectors: Vec::new(),
        all: true,
    };
    let Some(spec) = o.get("spec") else {
        return Some(ad); // an empty L2Advertisement announces every pool everywhere
    };
    let before = problems.len();
    for (key, v) in spec_fields(spec, &spec_loc, L2_SPEC, problems) {
        let floc = spec_loc.field(key);
        if v.is_null() {
            continue;
        }
        match key {
            "ipAddressPools" => {
                if let Some(items) = walk::string_list(v, &floc, problems) {
                    ad.names
                        .extend(items.into_iter().map(|(s, _)| s.to_string()));
                }
            }
            "ipAddressPoolSelectors" => ad.selectors = selectors(v, &floc, problems),
            "nodeSelectors" => ad.policy.node_selectors = selectors(v, &floc, problems),
            _ => {
                if let Some(items) = walk::string_list(v, &floc, problems) {
                    let mut names: Vec<String> = Vec::new();
                    for (name, l) in items {
                        match check_interface(name) {
                            Ok(()) if !names.iter().any(|n| n == name) => names.push(name.into()),
                            Ok(()) => {}
                            Err(msg) => {
                                problems.push(l.problem_str(ProblemKind::InvalidName, name, msg))
                            }
                        }
                    }
                    if !names.is_empty() {
                        ad.policy.interfaces = Some(names);
                    }
                }
            }
        }
    }
    ad.all = ad.names.is_empty() && ad.selectors.is_empty();
    (problems.len() == before).then_some(ad)
}
