//! ConfigMaps: kube-vip-cloud-provider's (`cidr-*`/`range-*` keys), read by
//! the kube-vip parser ferrolb already has, after the keys it refuses but a
//! conversion can report are taken out; a MetalLB legacy or ferrolb ConfigMap
//! is read as the controller reads it (an exact conversion).
//!
//! Taken out and reported: `allow-share-<ns>: "true"` (ferrolb shares an
//! address only between Services with the same `ferrolb.io/allow-shared-ip`
//! key), `search-order: desc` (ferrolb hands out the lowest free address) and
//! `interface-<ns>` (one interface list for every pool).

use std::collections::BTreeMap;

use super::l2::Policy;
use super::objects::Object;
use super::{Lost, Part};
use crate::error::{Problem, ProblemKind};
use crate::model::Config;
use crate::validate::{RawEntry, RawPool};
use crate::walk::{self, Loc};

pub(super) fn convert(objs: &[Object], problems: &mut Vec<Problem>, lost: &mut Vec<Lost>) -> Part {
    let mut part = Part::default();
    for o in objs {
        let Some(data) = data(o, problems) else {
            continue;
        };
        let origin = o.origin.to_string();
        let kube_vip = crate::kubevip::detect(&data);
        let config = if kube_vip {
            let data = take_out(o, data, lost);
            crate::kubevip::parse_kubevip(&data)
        } else {
            crate::parse_configmap_data(&data).map(|p| p.config)
        };
        let fields = if kube_vip {
            ("data.interface-global", "l2.nodeSelector")
        } else {
            ("l2.interfaces", "l2.nodeSelector")
        };
        match config {
            Ok(c) => add(&origin, c, fields, &mut part),
            Err(e) => problems.extend(e.problems.into_iter().map(|mut p| {
                p.path = if p.path.is_empty() {
                    origin.clone()
                } else {
                    format!("{origin} {}", p.path)
                };
                p
            })),
        }
    }
    part
}

/// The ConfigMap's `data`, every value a string.
fn data(o: &Object, problems: &mut Vec<Problem>) -> Option<BTreeMap<String, String>> {
    let loc = o.loc("data");
    let Some(v) = o.get("data") else {
        problems.push(loc.problem(ProblemKind::MissingField, "the ConfigMap has no data"));
        return None;
    };
    let fields = walk::fields(v, &loc, problems)?;
    let before = problems.len();
    let mut out = BTreeMap::new();
    for (k, v) in fields {
        if let Some(s) = walk::string(v, &loc.field(k), problems) {
            out.insert(k.to_string(), s.to_string());
        }
    }
    (problems.len() == before).then_some(out)
}

/// Removes (and reports) the kube-vip keys ferrolb has no equivalent for.
fn take_out(
    o: &Object,
    mut data: BTreeMap<String, String>,
    lost: &mut Vec<Lost>,
) -> BTreeMap<String, String> {
    let origin = o.origin.to_string();
    let field = |k: &str| Loc::at("data").field(k).path;
    let mut remove = Vec::new();
    for (k, v) in &data {
        let v = v.trim();
        let reason = if let Some(ns) = k.strip_prefix("allow-share-") {
            matches!(v, "1" | "t" | "T" | "true" | "TRUE" | "True").then(|| format!(
                "Services of {} that share an address today keep sharing it only if each is annotated ferrolb.io/allow-shared-ip with one key; without it the younger of two is given another address",
                if ns == "global" { "any namespace".to_string() } else { format!("namespace {ns}") }
            ))
        } else if k == "search-order" {
            (v == "desc").then(|| "ferrolb hands out the lowest free address, not the highest; addresses already given do not change".to_string())
        } else if let Some(ns) = k.strip_prefix("interface-") {
            (ns != "global").then(|| format!(
                "a per-namespace interface ({v}) does not exist in ferrolb's format: the pool of namespace {ns} is announced like every other pool"
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            lost.push(Lost {
                origin: origin.clone(),
                field: field(k),
                reason,
            });
            remove.push(k.clone());
        }
    }
    for k in remove {
        data.remove(&k);
    }
    data
}

/// Adds a read configuration's pools, and its `l2` as a policy for all of them.
fn add(origin: &str, c: Config, fields: (&'static str, &'static str), part: &mut Part) {
    let policy = part.policies.len();
    part.policies.push(Policy {
        origin: origin.to_string(),
        node_selectors: c.l2.node_selector.into_iter().collect(),
        nodes_field: fields.1,
        interfaces: (!c.l2.interfaces.is_empty()).then_some(c.l2.interfaces),
        interfaces_field: fields.0,
    });
    for p in c.pools {
        let loc = Loc::at(format!("{origin} pool {:?}", p.name));
        let mut raw = RawPool::new(Some(p.name.clone()), loc.clone(), loc.clone());
        raw.entries = p
            .ranges
            .iter()
            .map(|r| RawEntry {
                range: *r,
                path: loc.path.clone(),
                text: r.to_string(),
            })
            .collect();
        raw.auto_assign = p.auto_assign;
        raw.avoid_buggy_ips = p.avoid_buggy_ips;
        raw.namespaces = p.namespaces;
        raw.service_selector = p.service_selector;
        part.coverage.push((p.name, vec![policy]));
        part.pools.push(raw);
    }
}
