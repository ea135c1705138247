//! Folding the source's announcement policies into ferrolb's one `l2` section.
//!
//! ferrolb announces every pool under the same `l2` settings (interfaces and
//! one node selector). A source whose pools are all announced alike is carried
//! over exactly; when pools are announced differently, per-pool policies do not
//! exist in ferrolb's format yet, so `l2` is left unrestricted (every pool is
//! still answered, on every interface of every node, rather than silenced
//! somewhere it was answered before) and each restriction is reported.

use super::Lost;

use crate::model::{L2Config, LabelSelector};

/// One announcement policy of the source, as ferrolb can state it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The object it came from.
    pub origin: String,
    /// Nodes that may announce: any one of these selectors; empty means every node.
    pub node_selectors: Vec<LabelSelector>,
    /// The field holding `node_selectors`, for reports.
    pub nodes_field: &'static str,
    /// Interface names; `None` means every interface.
    pub interfaces: Option<Vec<String>>,
    /// The field holding `interfaces`, for reports.
    pub interfaces_field: &'static str,
}

impl Policy {
    fn unrestricted(&self) -> bool {
        self.node_selectors.is_empty() && self.interfaces.is_none()
    }

    fn describe(&self) -> String {
        let ifaces = match &self.interfaces {
            None => "every interface".to_string(),
            Some(i) => format!("interfaces [{}]", i.join(", ")),
        };
        let nodes = match &self.node_selectors[..] {
            [] => "every node".to_string(),
            sels => {
                let s: Vec<String> = sels.iter().map(crate::selector::flow).collect();
                format!("nodes matching {}", s.join(" or "))
            }
        };
        format!("{ifaces} of {nodes}")
    }
}

/// How one pool is announced: by every node on every interface, or by these
/// policies together.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Effective {
    Everywhere,
    Policies(Vec<usize>),
}

/// The `l2` section for `policies` covering pools as `coverage` says (pools
/// covered by none were reported by their source). Reports what it cannot say.
pub fn reduce(
    policies: &[Policy],
    coverage: &[(String, Vec<usize>)],
    lost: &mut Vec<Lost>,
) -> L2Config {
    let effective = |ix: &Vec<usize>| -> Option<Effective> {
        if ix.is_empty() {
            return None;
        }
        if ix.iter().any(|&i| policies[i].unrestricted()) {
            return Some(Effective::Everywhere);
        }
        // Policies that say the same count once.
        let mut uniq: Vec<usize> = Vec::new();
        for &i in ix {
            if !uniq.iter().any(|&u| same(&policies[u], &policies[i])) {
                uniq.push(i);
            }
        }
        Some(Effective::Policies(uniq))
    };
    let mut distinct: Vec<(Effective, Vec<&str>)> = Vec::new();
    for (pool, ix) in coverage {
        let Some(e) = effective(ix) else { continue };
        match distinct
            .iter_mut()
            .find(|(d, _)| equivalent(policies, d, &e))
        {
            Some((_, names)) => names.push(pool),
            None => distinct.push((e, vec![pool])),
        }
    }
    match &distinct[..] {
        [] | [(Effective::Everywhere, _)] => L2Config::default(),
        [(Effective::Policies(ix), _)] => one_policy_set(policies, ix, lost),
        _ => {
            let described: Vec<String> = distinct
                .iter()
                .map(|(e, pools)| {
                    let how = match e {
                        Effective::Everywhere => "every interface of every node".to_string(),
                        Effective::Policies(ix) => ix
                            .iter()
                            .map(|&i| policies[i].describe())
                            .collect::<Vec<_>>()
                            .join(" and "),
                    };
                    format!("{} on {how}", pools.join(", "))
                })
                .collect();
            let reason = format!(
                "the pools are announced differently ({}); per-pool announcement policies do not exist in ferrolb's format yet, so every pool is announced on every interface of every node",
                described.join("; ")
            );
            for p in policies.iter().filter(|p| !p.unrestricted()) {
                lost.push(Lost {
                    origin: p.origin.clone(),
                    field: restricting_fields(p),
                    reason: reason.clone(),
                });
            }
            L2Config::default()
        }
    }
}

/// Every pool is announced by the same policies: their union, when ferrolb can
/// state it.
fn one_policy_set(policies: &[Policy], ix: &[usize], lost: &mut Vec<Lost>) -> L2Config {
    let first = &policies[ix[0]];
    let same_nodes = ix
        .iter()
        .all(|&i| policies[i].node_selectors == first.node_selectors);
    if !same_nodes {
        // Different interfaces on different node groups: not one (nodes, interfaces) pair.
        let described: Vec<String> = ix.iter().map(|&i| policies[i].describe()).collect();
        for &i in ix {
            lost.push(Lost {
                origin: policies[i].origin.clone(),
                field: restricting_fields(&policies[i]),
                reason: format!(
                    "the policies announcing the pools differ in their nodes ({}); ferrolb's l2 section holds one node selector and one interface list, so every pool is announced on every interface of every node",
                    described.join("; ")
                ),
            });
        }
        return L2Config::default();
    }
    // Same nodes: the union of the interfaces is exact.
    let mut interfaces: Option<Vec<String>> = Some(Vec::new());
    for &i in ix {
        match (&mut interfaces, &policies[i].interfaces) {
            (_, None) => interfaces = None,
            (Some(acc), Some(more)) => {
                for m in more {
                    if !acc.contains(m) {
                        acc.push(m.clone());
                    }
                }
            }
            (None, Some(_)) => {}
        }
    }
    let node_selector = match &first.node_selectors[..] {
        [] => None,
        [one] => Some(one.clone()),
        several => {
            let s: Vec<String> = several.iter().map(crate::selector::flow).collect();
            for &i in ix {
                lost.push(Lost {
                    origin: policies[i].origin.clone(),
                    field: policies[i].nodes_field.to_string(),
                    reason: format!(
                        "nodes matching any of {} selectors ({}) cannot be written as ferrolb's one l2.nodeSelector; every node may announce",
                        several.len(),
                        s.join(" or ")
                    ),
                });
            }
            None
        }
    };
    L2Config {
        interfaces: interfaces.unwrap_or_default(),
        node_selector,
        policies: Vec::new(),
    }
}

fn same(a: &Policy, b: &Policy) -> bool {
    a.node_selectors == b.node_selectors && a.interfaces == b.interfaces
}

fn equivalent(policies: &[Policy], a: &Effective, b: &Effective) -> bool {
    match (a, b) {
        (Effective::Everywhere, Effective::Everywhere) => true,
        (Effective::Policies(x), Effective::Policies(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|&i| y.iter().any(|&j| same(&policies[i], &policies[j])))
        }
        _ => false,
    }
}

fn restricting_fields(p: &Policy) -> String {
    let mut f = Vec::new();
    if p.interfaces.is_some() {
        f.push(p.interfaces_field);
    }
    if !p.node_selectors.is_empty() {
        f.push(p.nodes_field);
    }
    f.join(", ")
}
