//! Cilium's LB-IPAM and L2 announcement objects (cilium.io).
//!
//! - `CiliumLoadBalancerIPPool` → a pool of the same name. `spec.blocks` (or the
//!   older `spec.cidrs`): `cidr`, or `start` with an optional `stop`. With
//!   `allowFirstLastIPs: No` the first and last address of every CIDR block
//!   larger than /31 (IPv4) or /127 (IPv6) are left out, as Cilium does.
//! - `serviceSelector` → `serviceSelector`, except Cilium's pseudo-labels:
//!   `io.kubernetes.service.namespace` (matchLabels or `In`) becomes
//!   `namespaces`; any other use of it, and `io.kubernetes.service.name`,
//!   cannot be written and narrow the pool to `autoAssign: false`.
//! - `disabled: true` (no new addresses, existing ones kept) → `autoAssign:
//!   false`, reported: a Service can still ask for one of its addresses.
//! - `CiliumL2AnnouncementPolicy` with `loadBalancerIPs: true` → a policy for
//!   every pool of Cilium's: `nodeSelector`, `serviceSelector` (without
//!   Cilium's pseudo-labels, which are reported), `interfaces` → an anchored
//!   literal (`^eth0$`, `^eth0\.20$`) as an interface name, any other regex in
//!   `interfaceRegexes` (an invalid one is bad input). `externalIPs: true`
//!   cannot be carried and is reported; without `loadBalancerIPs: true` a
//!   policy announces no LoadBalancer address and is left out.

use std::net::IpAddr;

use serde_yaml_ng::Value;

use super::l2::{SourcePolicy, exact_interface};
use super::objects::{Object, spec_fields};
use super::{Lost, Part, pool_name};
use crate::addr::{self, HostBits, Syntax};
use crate::error::{Problem, ProblemKind};
use crate::ferrolb::check_interface;
use crate::model::{IpRange, LabelSelector, PoolChoice, SelectorRequirement};
use crate::policy::compile_regex;
use crate::selector;
use crate::validate::{RawEntry, RawPool};
use crate::walk::{self, Loc};

/// The Cilium kinds `convert` reads.
pub const KINDS: &[&str] = &["CiliumLoadBalancerIPPool", "CiliumL2AnnouncementPolicy"];

const POOL_SPEC: &[&str] = &[
    "blocks",
    "cidrs",
    "disabled",
    "serviceSelector",
    "allowFirstLastIPs",
];
const BLOCK: &[&str] = &["cidr", "start", "stop"];
const POLICY_SPEC: &[&str] = &[
    "serviceSelector",
    "nodeSelector",
    "interfaces",
    "externalIPs",
    "loadBalancerIPs",
];
/// Cilium's pseudo-label holding a Service's namespace.
pub const NAMESPACE_LABEL: &str = "io.kubernetes.service.namespace";
/// Cilium's pseudo-label holding a Service's name.
pub const NAME_LABEL: &str = "io.kubernetes.service.name";

pub(super) fn convert(objs: &[Object], problems: &mut Vec<Problem>, lost: &mut Vec<Lost>) -> Part {
    let mut part = Part::default();
    let mut pools = Vec::new();
    for o in objs {
        match o.kind.as_str() {
            "CiliumLoadBalancerIPPool" => pools.extend(pool(o, problems, lost)),
            _ => part.policies.extend(policy(o, problems, lost)),
        }
    }
    // A Cilium L2 policy has no pool selection: it covers every pool of Cilium's.
    let names: Vec<String> = pools
        .iter()
        .filter_map(|(_, raw)| raw.name.clone())
        .collect();
    for p in &mut part.policies {
        p.intended = names.clone();
    }
    for (origin, raw) in pools {
        if part.policies.is_empty() {
            lost.push(Lost {
                origin,
                field: String::new(),
                reason: "no CiliumL2AnnouncementPolicy announces LoadBalancer addresses, so Cilium does not announce this pool at layer 2 (BGP only, or not at all); ferrolb announces a pool that no policy covers under the l2 section: on every node, on the automatic interfaces".into(),
            });
        }
        part.pools.push(raw);
    }
    part
}

fn pool(
    o: &Object,
    problems: &mut Vec<Problem>,
    lost: &mut Vec<Lost>,
) -> Option<(String, RawPool)> {
    let origin = o.origin.to_string();
    let name = pool_name(o, lost);
    let spec_loc = o.loc("spec");
    let Some(spec) = o.get("spec") else {
        problems.push(spec_loc.problem(ProblemKind::MissingField, "required field is missing"));
        return None;
    };
    let fields = spec_fields(spec, &spec_loc, POOL_SPEC, problems);
    // allowFirstLastIPs changes how blocks are read: find it first.
    let mut skip_ends = false;
    for (k, v) in &fields {
        if *k == "allowFirstLastIPs" {
            match v {
                Value::Null => {}
                Value::String(s) if s == "Yes" => {}
                Value::Bool(true) => {}
                Value::String(s) if s == "No" => skip_ends = true,
                Value::Bool(false) => skip_ends = true,
                other => problems.push(spec_loc.field(k).problem_value(
                    ProblemKind::InvalidValue,
                    other,
                    "expected \"Yes\" or \"No\"",
                )),
            }
        }
    }
    let addr_field = if fields.iter().any(|(k, _)| *k == "blocks") {
        "blocks"
    } else {
        "cidrs"
    };
    let mut raw = RawPool::new(
        Some(name),
        o.loc("metadata.name"),
        spec_loc.field(addr_field),
    );
    let mut narrowed: Vec<(&str, String)> = Vec::new();
    let mut saw_blocks = false;
    for (key, v) in fields {
        let floc = spec_loc.field(key);
        match key {
            "blocks" | "cidrs" => {
                saw_blocks = true;
                blocks(v, &floc, skip_ends, &mut raw, problems);
            }
            "disabled" if walk::boolean(v, &floc, false, problems) == Some(true) => {
                narrowed.push((
                    "spec.disabled",
                    "the pool is disabled (Cilium gives no new address from it and keeps those given)".into(),
                ));
            }
            "disabled" => {}
            "serviceSelector" => {
                if v.is_null() {
                    continue;
                }
                if let Some(sel) = selector::parse(v, &floc, problems) {
                    let (sel, namespaces, dropped) = split_pseudo_labels(sel);
                    raw.service_selector = (!sel.is_empty()).then_some(sel);
                    raw.namespaces = namespaces;
                    if !dropped.is_empty() {
                        narrowed.push((
                            "spec.serviceSelector",
                            format!(
                                "the requirements {} on Cilium's pseudo-labels cannot be written in ferrolb's format (it selects namespaces by a list of names and has no Service-name selector)",
                                dropped.join(", ")
                            ),
                        ));
                    }
                }
            }
            _ => {} // allowFirstLastIPs, read above
        }
    }
    if !saw_blocks {
        problems.push(
            spec_loc
                .field("blocks")
                .problem(ProblemKind::MissingField, "required field is missing"),
        );
        raw.addresses_broken = true;
    }
    for (field, why) in narrowed {
        raw.auto_assign = false;
        lost.push(Lost {
            origin: origin.clone(),
            field: field.into(),
            reason: format!(
                "{why}; the pool is written with autoAssign: false: Services that hold one of its addresses keep it, and a Service that asks for the pool (ferrolb.io/address-pool) or for one of its addresses gets it whatever the restriction said"
            ),
        });
    }
    Some((origin, raw))
}

fn blocks(v: &Value, loc: &Loc, skip_ends: bool, raw: &mut RawPool, problems: &mut Vec<Problem>) {
    let before = problems.len();
    if let Some(items) = walk::list(v, loc, problems) {
        for (i, item) in items.iter().enumerate() {
            let l = loc.index(i);
            let fields = spec_fields(item, &l, BLOCK, problems);
            let get = |k: &str| fields.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
            match (get("cidr"), get("start"), get("stop")) {
                (Some(c), None, None) => {
                    let cl = l.field("cidr");
                    let Some(text) = walk::string(c, &cl, problems) else {
                        continue;
                    };
                    match addr::parse_entry(text, Syntax::CidrOnly, HostBits::Mask) {
                        Ok(e) => {
                            let range = match e.prefix {
                                Some(p) if skip_ends && shrinkable(e.range, p) => shrink(e.range),
                                _ => e.range,
                            };
                            raw.entries.push(RawEntry {
                                range,
                                path: cl.path.clone(),
                                text: text.into(),
                            });
                        }
                        Err((kind, msg)) => problems.push(cl.problem_str(kind, text, msg)),
                    }
                }
                (None, Some(s), stop) => {
                    let sl = l.field("start");
                    let start = ip(s, &sl, problems);
                    let end = match stop {
                        Some(e) => ip(e, &l.field("stop"), problems),
                        None => start,
                    };
                    let (Some(start), Some(end)) = (start, end) else {
                        continue;
                    };
                    let text = format!("{start}-{end}");
                    if start.is_ipv4() != end.is_ipv4() {
                        problems.push(l.problem_str(
                            ProblemKind::MixedFamilies,
                            &text,
                            "start and stop are of different IP families",
                        ));
                    } else if start > end {
                        problems.push(l.problem_str(
                            ProblemKind::ReversedRange,
                            &text,
                            format!("reversed range: start {start} is after stop {end}"),
                        ));
                    } else {
                        raw.entries.push(RawEntry {
                            range: IpRange { start, end },
                            path: l.path.clone(),
                            text,
                        });
                    }
                }
                (None, None, Some(_)) => problems.push(
                    l.field("start")
                        .problem(ProblemKind::MissingField, "a block with stop needs start"),
                ),
                (None, None, None) => problems.push(l.problem(
                    ProblemKind::MissingField,
                    "a block needs cidr, or start (and stop)",
                )),
                _ => problems.push(l.problem(
                    ProblemKind::InvalidValue,
                    "a block is either a cidr or a start/stop range, not both",
                )),
            }
        }
    }
    if problems.len() != before {
        raw.addresses_broken = true;
    }
}

fn ip(v: &Value, loc: &Loc, problems: &mut Vec<Problem>) -> Option<IpAddr> {
    let s = walk::string(v, loc, problems)?;
    match s.trim().parse() {
        Ok(ip) => Some(ip),
        Err(_) => {
            problems.push(loc.problem_str(ProblemKind::InvalidAddress, s, "not an IP address"));
            None
        }
    }
}

/// Cilium keeps the ends of a CIDR block only up to /31 (IPv4) and /127 (IPv6).
fn shrinkable(r: IpRange, prefix: u8) -> bool {
    if r.is_ipv4() {
        prefix < 31
    } else {
        prefix < 127
    }
}

fn shrink(r: IpRange) -> IpRange {
    match (r.start, r.end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => IpRange {
            start: IpAddr::V4((u32::from(a) + 1).into()),
            end: IpAddr::V4((u32::from(b) - 1).into()),
        },
        (IpAddr::V6(a), IpAddr::V6(b)) => IpRange {
            start: IpAddr::V6((u128::from(a) + 1).into()),
            end: IpAddr::V6((u128::from(b) - 1).into()),
        },
        _ => r,
    }
}

/// Moves the namespace pseudo-label into a namespace list where ferrolb can
/// say the same; returns the rest of the selector, the namespaces, and the
/// requirements that cannot be written (rendered for the report).
fn split_pseudo_labels(sel: LabelSelector) -> (LabelSelector, Option<Vec<String>>, Vec<String>) {
    let mut rest = LabelSelector::default();
    let mut namespaces: Option<Vec<String>> = None;
    let mut dropped = Vec::new();
    let mut narrow = |vs: Vec<String>| {
        namespaces = Some(match namespaces.take() {
            None => vs,
            Some(have) => have.into_iter().filter(|n| vs.contains(n)).collect(),
        });
    };
    for (k, v) in sel.match_labels {
        if k == NAMESPACE_LABEL {
            narrow(vec![v]);
        } else if k == NAME_LABEL {
            dropped.push(format!("{k}={v}"));
        } else {
            rest.match_labels.insert(k, v);
        }
    }
    for r in sel.match_expressions {
        let key = match &r {
            SelectorRequirement::In(k, _)
            | SelectorRequirement::NotIn(k, _)
            | SelectorRequirement::Exists(k)
            | SelectorRequirement::DoesNotExist(k) => k.clone(),
        };
        match r {
            SelectorRequirement::In(k, vs) if k == NAMESPACE_LABEL => narrow(vs),
            // Every Service has a namespace: the requirement always holds.
            SelectorRequirement::Exists(k) if k == NAMESPACE_LABEL => {}
            r if key == NAMESPACE_LABEL || key == NAME_LABEL => dropped.push(describe(&r)),
            r => rest.match_expressions.push(r),
        }
    }
    // Two namespace requirements that exclude each other: a pool for no Service.
    if namespaces.as_ref().is_some_and(Vec::is_empty) {
        dropped.push(format!(
            "{NAMESPACE_LABEL} (the requirements exclude each other)"
        ));
        namespaces = None;
    }
    (rest, namespaces, dropped)
}

fn describe(r: &SelectorRequirement) -> String {
    match r {
        SelectorRequirement::In(k, vs) => format!("{k} In [{}]", vs.join(", ")),
        SelectorRequirement::NotIn(k, vs) => format!("{k} NotIn [{}]", vs.join(", ")),
        SelectorRequirement::Exists(k) => format!("{k} Exists"),
        SelectorRequirement::DoesNotExist(k) => format!("{k} DoesNotExist"),
    }
}

fn policy(
    o: &Object,
    problems: &mut Vec<Problem>,
    all_lost: &mut Vec<Lost>,
) -> Option<SourcePolicy> {
    // What this policy loses matters only if it announces LoadBalancer addresses.
    let mut lost_vec: Vec<Lost> = Vec::new();
    let lost = &mut lost_vec;
    let origin = o.origin.to_string();
    let spec_loc = o.loc("spec");
    let mut p = SourcePolicy {
        name: o.name.clone(),
        choice: PoolChoice::default(),
        intended: Vec::new(), // every pool of Cilium's, filled in by convert
        interfaces: Vec::new(),
        node_selector: None,
        service_selector: None,
    };
    let empty = Value::Mapping(Default::default());
    let spec = o.get("spec").unwrap_or(&empty);
    let before = problems.len();
    let mut load_balancer_ips = false;
    for (key, v) in spec_fields(spec, &spec_loc, POLICY_SPEC, problems) {
        let floc = spec_loc.field(key);
        if v.is_null() {
            continue;
        }
        match key {
            "serviceSelector" => {
                if let Some(sel) = selector::parse(v, &floc, problems) {
                    let (sel, dropped) = drop_pseudo_labels(sel);
                    // Empty or left out, Cilium's selector selects every Service.
                    p.service_selector = (!sel.is_empty()).then_some(sel);
                    if !dropped.is_empty() {
                        lost.push(Lost {
                            origin: origin.clone(),
                            field: "spec.serviceSelector".into(),
                            reason: format!(
                                "the requirements {} on Cilium's pseudo-labels cannot be written in ferrolb's format (a policy's serviceSelector matches Service labels only); they are left out, so the policy also applies to Services they did not select",
                                dropped.join(", ")
                            ),
                        });
                    }
                }
            }
            "nodeSelector" => {
                p.node_selector = selector::parse(v, &floc, problems).filter(|s| !s.is_empty())
            }
            "interfaces" => {
                if let Some(items) = walk::string_list(v, &floc, problems) {
                    for (re, l) in items {
                        // `^eth0$` is written as the name eth0; other patterns as they are.
                        let m = match literal_name(re) {
                            Some(n) => Ok(exact_interface(&n)),
                            None => compile_regex(re),
                        };
                        match m {
                            Ok(m) => p.interfaces.push(m),
                            Err(msg) => {
                                problems.push(l.problem_str(ProblemKind::InvalidValue, re, msg))
                            }
                        }
                    }
                }
            }
            "externalIPs" => {
                if walk::boolean(v, &floc, false, problems) == Some(true) {
                    all_lost.push(Lost {
                        origin: origin.clone(),
                        field: "spec.externalIPs".into(),
                        reason: "ferrolb announces the LoadBalancer addresses it allocates, not spec.externalIPs: those are no longer announced".into(),
                    });
                }
            }
            _ => {
                if let Some(b) = walk::boolean(v, &floc, false, problems) {
                    load_balancer_ips = b;
                }
            }
        }
    }
    if problems.len() != before || !load_balancer_ips {
        // A policy without loadBalancerIPs: true announces no LoadBalancer address.
        return None;
    }
    all_lost.append(&mut lost_vec);
    Some(p)
}

/// Leaves Cilium's pseudo-labels out of an announcement policy's Service
/// selector (ferrolb matches Service labels only); returns the rest and the
/// requirements left out, rendered for the report. `Exists` on the namespace
/// always holds and is left out without a report.
fn drop_pseudo_labels(sel: LabelSelector) -> (LabelSelector, Vec<String>) {
    let mut rest = LabelSelector::default();
    let mut dropped = Vec::new();
    for (k, v) in sel.match_labels {
        if k == NAMESPACE_LABEL || k == NAME_LABEL {
            dropped.push(format!("{k}={v}"));
        } else {
            rest.match_labels.insert(k, v);
        }
    }
    for r in sel.match_expressions {
        match &r {
            SelectorRequirement::Exists(k) if k == NAMESPACE_LABEL => {}
            SelectorRequirement::In(k, _)
            | SelectorRequirement::NotIn(k, _)
            | SelectorRequirement::Exists(k)
            | SelectorRequirement::DoesNotExist(k)
                if k == NAMESPACE_LABEL || k == NAME_LABEL =>
            {
                dropped.push(describe(&r))
            }
            _ => rest.match_expressions.push(r),
        }
    }
    (rest, dropped)
}

/// `^name$` with a valid interface name (dots escaped) → the name.
fn literal_name(re: &str) -> Option<String> {
    let body = re.strip_prefix('^')?.strip_suffix('$')?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                c @ ('.' | '-' | '_') => out.push(c),
                _ => return None,
            },
            c if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '@' => out.push(c),
            _ => return None,
        }
    }
    check_interface(&out).ok().map(|()| out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_anchored_literals_are_interface_names() {
        assert_eq!(literal_name("^eth0$").as_deref(), Some("eth0"));
        assert_eq!(literal_name(r"^eth0\.20$").as_deref(), Some("eth0.20"));
        assert_eq!(
            literal_name("^eth0.20$"),
            None,
            "an unescaped dot is any character"
        );
        assert_eq!(
            literal_name("eth0"),
            None,
            "unanchored: also matches veth0abc"
        );
        assert_eq!(literal_name("^eth[0-9]+"), None);
        assert_eq!(literal_name("^$"), None);
    }
}
