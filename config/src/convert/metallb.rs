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
//! - Pools carry their `metadata.labels` into `labels`, so that pool
//!   selectors keep selecting them.
//! - Each `L2Advertisement` becomes a policy: `ipAddressPools` → `pools`,
//!   `ipAddressPoolSelectors` → `poolSelector`, `interfaces`, `nodeSelectors`
//!   → `nodeSelector`; neither pools nor selectors → every pool. Several node
//!   (or pool) selectors, any of which may match, become one policy each,
//!   named `<advertisement>-<i>`: several policies covering a pool add up the
//!   same way.
//! - A pool that no `L2Advertisement` covers is not announced at layer 2 by
//!   MetalLB; ferrolb announces such a pool under the `l2` section, which is
//!   reported.

use serde_yaml_ng::Value;

use super::l2::{SourcePolicy, exact_interface};
use super::objects::{Object, spec_fields};
use super::{Lost, Part, pool_name};
use crate::error::{Problem, ProblemKind};
use crate::ferrolb::{check_interface, read_addresses};
use crate::model::{LabelSelector, PoolChoice};
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
    /// `metadata.name`, which L2Advertisements name (the pool may be renamed).
    object_name: String,
    origin: String,
    /// (has serviceAllocation: 0 first, priority, name)
    order: (u8, i64, String),
}

struct AdRead {
    origin: String,
    /// `metadata.name`.
    name: String,
    /// `spec.ipAddressPools`: pool object names.
    names: Vec<String>,
    /// `spec.ipAddressPoolSelectors` (any may match).
    selectors: Vec<LabelSelector>,
    /// `spec.nodeSelectors` (any may match); empty: every node.
    node_selectors: Vec<LabelSelector>,
    /// `spec.interfaces`; empty: every interface.
    interfaces: Vec<String>,
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
                    origin: ad.origin.clone(),
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
        let covered = ads.iter().any(|a| {
            all_pools(a)
                || a.names.contains(&p.object_name)
                || a.selectors.iter().any(|s| s.matches(&p.raw.labels))
        });
        if !covered {
            lost.push(Lost {
                origin: p.origin.clone(),
                field: String::new(),
                reason: "no L2Advertisement covers this pool, so MetalLB does not announce it at layer 2 (BGP only, or not at all); ferrolb announces a pool that no policy covers under the l2 section: on every node, on the automatic interfaces".into(),
            });
        }
    }
    for ad in &ads {
        part.policies.extend(policies(ad, &pools));
    }
    part.pools = pools.into_iter().map(|p| p.raw).collect();
    part
}

fn all_pools(ad: &AdRead) -> bool {
    ad.names.is_empty() && ad.selectors.is_empty()
}

/// The ferrolb policies of one advertisement: one per pool selector (pool
/// names go with the first) and node selector, since MetalLB takes a pool or a
/// node when any of them matches, and several policies add up the same way.
fn policies(ad: &AdRead, pools: &[PoolRead]) -> Vec<SourcePolicy> {
    let ferrolb_name = |object: &String| {
        pools
            .iter()
            .find(|p| &p.object_name == object)
            .and_then(|p| p.raw.name.clone())
    };
    let names: Vec<String> = ad.names.iter().filter_map(ferrolb_name).collect();
    let choices: Vec<PoolChoice> = if all_pools(ad) {
        vec![PoolChoice::default()]
    } else if ad.selectors.is_empty() {
        // Only names: with none of them found, the advertisement covers no pool
        // (and is dropped when assembled, its names reported above).
        vec![PoolChoice {
            names,
            selector: None,
        }]
    } else {
        ad.selectors
            .iter()
            .enumerate()
            .map(|(i, s)| PoolChoice {
                names: if i == 0 { names.clone() } else { Vec::new() },
                selector: Some(s.clone()),
            })
            .collect()
    };
    let nodes: Vec<Option<LabelSelector>> = if ad.node_selectors.is_empty() {
        vec![None]
    } else {
        ad.node_selectors.iter().cloned().map(Some).collect()
    };
    let interfaces: Vec<_> = ad.interfaces.iter().map(|i| exact_interface(i)).collect();
    let count = choices.len() * nodes.len();
    let mut out = Vec::new();
    for choice in &choices {
        // The pools this choice covers in MetalLB: this input's pools only.
        let intended: Vec<String> = pools
            .iter()
            .filter(|p| {
                let n = p.raw.name.as_deref().unwrap_or_default();
                all_pools(ad)
                    || choice.names.iter().any(|c| c == n)
                    || choice
                        .selector
                        .as_ref()
                        .is_some_and(|s| s.matches(&p.raw.labels))
            })
            .filter_map(|p| p.raw.name.clone())
            .collect();
        for node_selector in &nodes {
            let name = if count == 1 {
                ad.name.clone()
            } else {
                format!("{}-{}", ad.name, out.len())
            };
            out.push(SourcePolicy {
                name,
                choice: choice.clone(),
                intended: intended.clone(),
                interfaces: interfaces.clone(),
                node_selector: node_selector.clone(),
                service_selector: None,
            });
        }
    }
    out
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
    // The pool's labels, which ipAddressPoolSelectors (and ferrolb's poolSelector) match.
    if let Some(l) = o.value.get("metadata").and_then(|m| m.get("labels")) {
        raw.labels = selector::label_map(
            l,
            &o.loc("metadata.labels"),
            ProblemKind::InvalidValue,
            problems,
        );
    }
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
        origin: o.origin.to_string(),
        name: o.name.clone(),
        names: Vec::new(),
        selectors: Vec::new(),
        node_selectors: Vec::new(),
        interfaces: Vec::new(),
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
            "nodeSelectors" => ad.node_selectors = selectors(v, &floc, problems),
            _ => {
                if let Some(items) = walk::string_list(v, &floc, problems) {
                    for (name, l) in items {
                        match check_interface(name) {
                            Ok(()) if !ad.interfaces.iter().any(|n| n == name) => {
                                ad.interfaces.push(name.into())
                            }
                            Ok(()) => {}
                            Err(msg) => {
                                problems.push(l.problem_str(ProblemKind::InvalidName, name, msg))
                            }
                        }
                    }
                }
            }
        }
    }
    (problems.len() == before).then_some(ad)
}
