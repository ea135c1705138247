//! ConfigMaps: kube-vip-cloud-provider's (`cidr-*`/`range-*` keys), read by
//! the kube-vip parser ferrolb already has, after the keys it refuses but a
//! conversion can report are taken out; a MetalLB legacy or ferrolb ConfigMap
//! is read as the controller reads it (an exact conversion).
//!
//! Taken out and reported: `allow-share-<ns>: "true"` (ferrolb shares an
//! address only between Services with the same `ferrolb.io/allow-shared-ip`
//! key) and `search-order: desc` (ferrolb hands out the lowest free address).
//! `interface-<ns>` becomes a policy for the pool of namespace `<ns>` named
//! `interface-<ns>`; without such a pool (the namespace's Services take
//! addresses from `global`) it is reported.

use std::collections::BTreeMap;

use super::l2::{OwnL2, exact_interface, unique_name};
use super::objects::Object;
use super::{Lost, Part};
use crate::error::{Problem, ProblemKind};
use crate::ferrolb::check_interface;
use crate::model::{Config, L2Policy, PoolChoice};
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
        let mut per_namespace = Vec::new();
        let config = if kube_vip {
            let data = take_out(o, data, &mut per_namespace, lost);
            crate::kubevip::parse_kubevip(&data)
        } else {
            crate::parse_configmap_data(&data).map(|p| p.config)
        };
        match config {
            Ok(mut c) => {
                namespace_interfaces(o, &per_namespace, &mut c, problems, lost);
                add(o, c, &mut part);
            }
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

/// Removes (and reports) the kube-vip keys ferrolb has no equivalent for, and
/// takes out the `interface-<ns>` keys (namespace, interface) for
/// [`namespace_interfaces`].
fn take_out(
    o: &Object,
    mut data: BTreeMap<String, String>,
    per_namespace: &mut Vec<(String, String)>,
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
        } else if let Some(ns) = k.strip_prefix("interface-")
            && ns != "global"
        {
            per_namespace.push((ns.to_string(), v.to_string()));
            remove.push(k.clone());
            None
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

/// kube-vip's `interface-<ns>`: the interface of the Services of namespace
/// `<ns>`, which take their addresses from the pool `<ns>` when it exists. A
/// policy for that pool says the same; without the pool, the Services use the
/// `global` pool, which ferrolb announces as a whole.
fn namespace_interfaces(
    o: &Object,
    per_namespace: &[(String, String)],
    config: &mut Config,
    problems: &mut Vec<Problem>,
    lost: &mut Vec<Lost>,
) {
    let mut used: Vec<String> = config.l2.policies.iter().map(|p| p.name.clone()).collect();
    for (ns, iface) in per_namespace {
        let key = format!("interface-{ns}");
        if let Err(msg) = check_interface(iface) {
            let loc = o.loc("data").field(&key);
            problems.push(loc.problem_str(ProblemKind::InvalidName, iface, msg));
            continue;
        }
        if !config.pools.iter().any(|p| p.name == *ns) {
            lost.push(Lost {
                origin: o.origin.to_string(),
                field: Loc::at("data").field(&key).path,
                reason: format!(
                    "namespace {ns} has no pool of its own (cidr-{ns} or range-{ns}), so its Services take addresses from the global pool; ferrolb announces per pool, not per namespace: they are announced like the global pool, not on {iface}"
                ),
            });
            continue;
        }
        config.l2.policies.push(L2Policy {
            name: unique_name(&key, &mut used),
            pools: PoolChoice {
                names: vec![ns.clone()],
                selector: None,
            },
            interfaces: vec![exact_interface(iface)],
            node_selector: None,
            service_selector: None,
        });
    }
}

/// Adds a read configuration's pools, and its `l2` section.
fn add(o: &Object, c: Config, part: &mut Part) {
    let origin = o.origin.to_string();
    part.own.push(OwnL2 {
        name: o.name.clone(),
        l2: c.l2,
        pools: c.pools.iter().map(|p| p.name.clone()).collect(),
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
        raw.labels = p.labels;
        part.pools.push(raw);
    }
}
