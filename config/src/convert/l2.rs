//! The sources' announcement policies as ferrolb `l2.policies`.
//!
//! Each source module states a policy as its tool means it: which of the
//! tool's pools it covers (`intended`), and how ferrolb would naturally say
//! that (`choice`: all pools, names, a label selector). Once every input has
//! been read, [`assemble`] checks each choice against all the pools of the
//! output: a choice that would reach another tool's pools (a MetalLB
//! advertisement for "all pools" next to Cilium pools) is written as the
//! names of the pools it covered instead, so that no pool is announced where
//! its own tool did not announce it. A ConfigMap's own `l2` section is kept
//! as it is when that ConfigMap is the only input; next to other inputs it
//! becomes a policy for its pools, since the output's `l2` section would
//! otherwise apply to the other inputs' uncovered pools too.

use std::collections::BTreeMap;

use crate::model::{InterfaceMatcher, L2Config, L2Policy, LabelSelector, PoolChoice};
use crate::policy::{compile_regex, interface_matcher};
use crate::validate::RawPool;
use crate::walk::is_dns1123_label;

/// One announcement policy of a source, before it is written.
#[derive(Debug, Clone)]
pub struct SourcePolicy {
    /// The name it should have (the object's name, maybe with a suffix);
    /// made a valid, unique policy name by [`assemble`].
    pub name: String,
    /// How ferrolb would say which pools it covers (names are ferrolb pool names).
    pub choice: PoolChoice,
    /// The ferrolb names of the pools it covers in its own tool.
    pub intended: Vec<String>,
    /// Interfaces; empty for the automatic choice.
    pub interfaces: Vec<InterfaceMatcher>,
    /// Nodes that may announce under it.
    pub node_selector: Option<LabelSelector>,
    /// Services it applies to.
    pub service_selector: Option<LabelSelector>,
}

/// The `l2` section of a ConfigMap input (kube-vip, MetalLB legacy, ferrolb),
/// and the names of the pools it holds.
#[derive(Debug, Clone)]
pub struct OwnL2 {
    /// The ConfigMap's name, for the policy its `l2` becomes next to other inputs.
    pub name: String,
    /// Its `l2` section, policies included.
    pub l2: L2Config,
    /// Its pools' names.
    pub pools: Vec<String>,
}

/// The interface called exactly `name` (a valid Linux name), as ferrolb reads
/// it back: a name, or, when ferrolb would read the name as a glob (it holds
/// `*` or `?`) or refuse it, an anchored regular expression of it.
pub fn exact_interface(name: &str) -> InterfaceMatcher {
    match interface_matcher(name) {
        Ok(m @ InterfaceMatcher::Name(_)) => m,
        _ => compile_regex(&format!("^{}$", regex::escape(name)))
            .expect("an escaped name is a valid regular expression"),
    }
}

/// The output's `l2` section: the sources' policies (see the module doc), and
/// the `l2` section of a ConfigMap that is the only input.
pub fn assemble(pools: &[RawPool], policies: Vec<SourcePolicy>, own: Vec<OwnL2>) -> L2Config {
    if let [only] = &own[..]
        && policies.is_empty()
        && only.pools.len() == pools.len()
    {
        return only.l2.clone();
    }
    let labels: BTreeMap<&str, &BTreeMap<String, String>> = pools
        .iter()
        .filter_map(|p| Some((p.name.as_deref()?, &p.labels)))
        .collect();
    let mut all = policies;
    for o in own {
        all.extend(from_own(o, &labels));
    }
    let mut used: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for p in all {
        let Some(choice) = writable_choice(&p, pools) else {
            continue;
        };
        let mut interfaces: Vec<InterfaceMatcher> = Vec::new();
        for m in p.interfaces {
            if !interfaces.contains(&m) {
                interfaces.push(m);
            }
        }
        // As ferrolb reads them back: names and globs, then regexes.
        interfaces.sort_by_key(|m| matches!(m, InterfaceMatcher::Regex(_)));
        let name = unique_name(&p.name, &mut used);
        out.push(L2Policy {
            name,
            pools: choice,
            interfaces,
            node_selector: p.node_selector,
            service_selector: p.service_selector,
        });
    }
    L2Config {
        interfaces: Vec::new(),
        node_selector: None,
        policies: out,
    }
}

/// A ConfigMap's `l2` as policies that say the same next to other inputs.
fn from_own(o: OwnL2, labels: &BTreeMap<&str, &BTreeMap<String, String>>) -> Vec<SourcePolicy> {
    let covers = |choice: &PoolChoice, pool: &str| {
        let empty = BTreeMap::new();
        let l = labels.get(pool).copied().unwrap_or(&empty);
        choice.names.is_empty() && choice.selector.is_none()
            || choice.names.iter().any(|n| n == pool)
            || choice.selector.as_ref().is_some_and(|s| s.matches(l))
    };
    // A policy that lists no interface takes l2.interfaces (the default choice).
    let default_interfaces: Vec<InterfaceMatcher> =
        o.l2.interfaces.iter().map(|i| exact_interface(i)).collect();
    let mut out = Vec::new();
    for p in &o.l2.policies {
        out.push(SourcePolicy {
            name: p.name.clone(),
            choice: p.pools.clone(),
            intended: o
                .pools
                .iter()
                .filter(|n| covers(&p.pools, n))
                .cloned()
                .collect(),
            interfaces: if p.interfaces.is_empty() {
                default_interfaces.clone()
            } else {
                p.interfaces.clone()
            },
            node_selector: p.node_selector.clone(),
            service_selector: p.service_selector.clone(),
        });
    }
    let uncovered: Vec<String> = o
        .pools
        .iter()
        .filter(|n| !o.l2.policies.iter().any(|p| covers(&p.pools, n)))
        .cloned()
        .collect();
    // Under an unrestricted l2 section a pool is announced as the output's
    // (unrestricted) l2 section announces it: no policy needed.
    if !uncovered.is_empty() && (!o.l2.interfaces.is_empty() || o.l2.node_selector.is_some()) {
        out.push(SourcePolicy {
            name: o.name.clone(),
            choice: PoolChoice {
                names: uncovered.clone(),
                selector: None,
            },
            intended: uncovered,
            interfaces: default_interfaces,
            node_selector: o.l2.node_selector.clone(),
            service_selector: None,
        });
    }
    out
}

/// The pool choice to write for `p`: its own when it covers exactly the
/// intended pools among all of the output's, else their names; `None` when it
/// covers no pool and cannot be written so (then it announced nothing).
fn writable_choice(p: &SourcePolicy, pools: &[RawPool]) -> Option<PoolChoice> {
    let exists = |n: &String| pools.iter().any(|q| q.name.as_ref() == Some(n));
    let natural = PoolChoice {
        // A name the input holds no pool for cannot be written (ferrolb refuses it).
        names: p
            .choice
            .names
            .iter()
            .filter(|n| exists(n))
            .cloned()
            .collect(),
        selector: p.choice.selector.clone(),
    };
    let reaches = |choice: &PoolChoice| -> Vec<&str> {
        pools
            .iter()
            .filter(|q| {
                let name = q.name.as_deref().unwrap_or_default();
                (choice.names.is_empty() && choice.selector.is_none())
                    || choice.names.iter().any(|n| n == name)
                    || choice
                        .selector
                        .as_ref()
                        .is_some_and(|s| s.matches(&q.labels))
            })
            .filter_map(|q| q.name.as_deref())
            .collect()
    };
    let mut intended: Vec<&str> = pools
        .iter()
        .filter_map(|q| q.name.as_deref())
        .filter(|n| p.intended.iter().any(|i| i == n))
        .collect();
    intended.dedup();
    if reaches(&natural) == intended {
        return Some(natural);
    }
    (!intended.is_empty()).then(|| PoolChoice {
        names: intended.into_iter().map(str::to_string).collect(),
        selector: None,
    })
}

/// `wanted` as a valid policy name (a DNS-1123 label), distinct from `used`.
pub fn unique_name(wanted: &str, used: &mut Vec<String>) -> String {
    let base = if is_dns1123_label(wanted) {
        wanted.to_string()
    } else {
        label_from(wanted, "policy")
    };
    let mut name = base.clone();
    let mut i = 2;
    while used.contains(&name) {
        let suffix = format!("-{i}");
        let mut stem = base.clone();
        stem.truncate(63 - suffix.len());
        name = format!("{}{suffix}", stem.trim_end_matches('-'));
        i += 1;
    }
    used.push(name.clone());
    name
}

/// A DNS-1123 label made of `s`: lowercase, other characters as `-`, at most
/// 63 characters; `fallback` when nothing is left.
pub fn label_from(s: &str, fallback: &str) -> String {
    let mut n: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    n.truncate(63);
    let n = n.trim_matches('-').to_string();
    if n.is_empty() {
        fallback.to_string()
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_and_unique() {
        let mut used = Vec::new();
        assert_eq!(unique_name("vlan20", &mut used), "vlan20");
        assert_eq!(unique_name("vlan20", &mut used), "vlan20-2");
        assert_eq!(unique_name("vlan20", &mut used), "vlan20-3");
        assert_eq!(unique_name("Lan.V4", &mut used), "lan-v4");
        assert_eq!(unique_name("...", &mut used), "policy");
        let long = "a".repeat(70);
        assert_eq!(unique_name(&long, &mut used), "a".repeat(63));
        let second = unique_name(&long, &mut used);
        assert_eq!(second, format!("{}-2", "a".repeat(61)));
        assert!(is_dns1123_label(&second));
    }

    #[test]
    fn exact_names_stay_exact() {
        assert_eq!(
            exact_interface("eth0.20"),
            InterfaceMatcher::Name("eth0.20".into())
        );
        let star = exact_interface("eth*");
        assert_eq!(star.to_string(), r"regex:^eth\*$");
        assert!(star.matches("eth*") && !star.matches("eth0"));
        assert_eq!(exact_interface("a[1]").to_string(), r"regex:^a\[1\]$");
    }
}
