//! The summary `check-config` prints on success: the pools table
//! ([`SummaryTable`]), then how they are announced ([`AnnouncementSummary`]).

use std::fmt;

use crate::model::{Config, L2Policy, Pool};
use crate::selector::flow;

/// Which IP families a pool holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Families {
    /// IPv4 addresses only.
    Ipv4,
    /// IPv6 addresses only.
    Ipv6,
    /// Both.
    Dual,
}

impl fmt::Display for Families {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Families::Ipv4 => "IPv4",
            Families::Ipv6 => "IPv6",
            Families::Dual => "IPv4+IPv6",
        })
    }
}

/// One line of the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSummary {
    /// Pool name.
    pub name: String,
    /// Families of the pool's addresses.
    pub families: Families,
    /// Addresses the pool can hand out (after avoidBuggyIPs), saturating at `u128::MAX`.
    pub size: u128,
    /// Whether the pool is used for Services that ask for no pool.
    pub auto_assign: bool,
}

/// Summarise every pool, in configuration order.
pub fn summarize(config: &Config) -> Vec<PoolSummary> {
    config
        .pools
        .iter()
        .map(|p| PoolSummary {
            name: p.name.clone(),
            families: match (p.has_ipv4(), p.has_ipv6()) {
                (true, true) => Families::Dual,
                (false, true) => Families::Ipv6,
                // A validated pool is never empty; an empty one would say IPv4.
                _ => Families::Ipv4,
            },
            size: p.usable_size(),
            auto_assign: p.auto_assign,
        })
        .collect()
}

/// A readable table of pool summaries:
///
/// ```text
/// NAME  FAMILIES   SIZE  AUTO-ASSIGN
/// lan   IPv4+IPv6  294   yes
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SummaryTable<'a>(pub &'a [PoolSummary]);

impl fmt::Display for SummaryTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return writeln!(f, "no pools");
        }
        let header = ["NAME", "FAMILIES", "SIZE", "AUTO-ASSIGN"];
        let rows: Vec<[String; 4]> = self
            .0
            .iter()
            .map(|s| {
                [
                    s.name.clone(),
                    s.families.to_string(),
                    s.size.to_string(),
                    if s.auto_assign { "yes" } else { "no" }.to_string(),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let header = header.map(str::to_string);
        for row in std::iter::once(&header).chain(&rows) {
            let line = format!(
                "{:<w0$}  {:<w1$}  {:>w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// How the pools of a configuration are announced, printed after the pools
/// table: each `l2.policies` entry with the pools it covers (resolved), its
/// interfaces, nodes and Services; then the pools no policy covers (announced
/// under the `l2` section's own settings), the policies that cover no pool,
/// and the pools announced only for the Services a `serviceSelector` selects.
///
/// ```text
/// policy vlan20:
///   pools:      iot
///   interfaces: eth0.20
///   nodes:      matching {matchLabels: {"vlan20": "true"}}
///   services:   every Service
/// announced under l2 (every node, automatic interfaces): lan
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AnnouncementSummary<'a>(pub &'a Config);

impl fmt::Display for AnnouncementSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = self.0;
        let l2 = &config.l2;
        // A policy that lists no interface takes the default choice, which
        // `l2.interfaces` narrows (as the speaker's --interfaces flag does).
        let default_interfaces = if l2.interfaces.is_empty() {
            "automatic".to_string()
        } else {
            format!("as l2.interfaces ({})", l2.interfaces.join(", "))
        };
        let mut unused = Vec::new();
        for p in &l2.policies {
            let covered = covered_by(config, p);
            writeln!(f, "policy {}:", p.name)?;
            let pools = if covered.is_empty() {
                unused.push(p.name.as_str());
                // Named pools always exist (validated): only a selector can miss.
                match &p.pools.selector {
                    Some(s) if !config.pools.is_empty() => {
                        format!("none (poolSelector {} matches no pool)", flow(s))
                    }
                    _ => "none (there are no pools)".to_string(),
                }
            } else {
                let names: Vec<&str> = covered.iter().map(|p| p.name.as_str()).collect();
                if p.pools.names.is_empty() && p.pools.selector.is_none() {
                    format!("every pool ({})", names.join(", "))
                } else {
                    names.join(", ")
                }
            };
            writeln!(f, "  pools:      {pools}")?;
            let interfaces = if p.interfaces.is_empty() {
                default_interfaces.clone()
            } else {
                let shown: Vec<String> = p.interfaces.iter().map(ToString::to_string).collect();
                shown.join(", ")
            };
            writeln!(f, "  interfaces: {interfaces}")?;
            let nodes = match &p.node_selector {
                Some(s) => format!("matching {}", flow(s)),
                None => "every node".to_string(),
            };
            writeln!(f, "  nodes:      {nodes}")?;
            let services = match &p.service_selector {
                Some(s) => format!("matching {}", flow(s)),
                None => "every Service".to_string(),
            };
            writeln!(f, "  services:   {services}")?;
        }
        let mut under_l2 = Vec::new();
        let mut selected_only = Vec::new();
        for pool in &config.pools {
            let covering = config.policies_covering(pool);
            if covering.is_empty() {
                under_l2.push(pool.name.as_str());
            } else if covering.iter().all(|p| p.service_selector.is_some()) {
                selected_only.push(pool.name.as_str());
            }
        }
        if !under_l2.is_empty() {
            let nodes = match &l2.node_selector {
                Some(s) => format!("nodes matching {}", flow(s)),
                None => "every node".to_string(),
            };
            let interfaces = if l2.interfaces.is_empty() {
                "automatic interfaces".to_string()
            } else {
                format!("interfaces {}", l2.interfaces.join(", "))
            };
            writeln!(
                f,
                "announced under l2 ({nodes}, {interfaces}): {}",
                under_l2.join(", ")
            )?;
        }
        if !unused.is_empty() {
            writeln!(f, "policies that cover no pool: {}", unused.join(", "))?;
        }
        if !selected_only.is_empty() {
            writeln!(
                f,
                "announced only for the Services a policy's serviceSelector matches (others are not announced): {}",
                selected_only.join(", ")
            )?;
        }
        Ok(())
    }
}

/// The pools `policy` covers, in configuration order.
fn covered_by<'a>(config: &'a Config, policy: &L2Policy) -> Vec<&'a Pool> {
    config
        .pools
        .iter()
        .filter(|p| policy.pools.covers(p))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_ferrolb_yaml;

    fn shown(yaml: &str) -> String {
        let c = parse_ferrolb_yaml(yaml).unwrap_or_else(|e| panic!("{e}"));
        AnnouncementSummary(&c).to_string()
    }

    #[test]
    fn without_policies_every_pool_is_under_l2() {
        assert_eq!(
            shown(
                "pools:\n- {name: a, addresses: [192.0.2.0/28]}\n- {name: b, addresses: [192.0.2.16/28]}\n"
            ),
            "announced under l2 (every node, automatic interfaces): a, b\n"
        );
        assert_eq!(
            shown(
                "pools:\n- {name: a, addresses: [192.0.2.0/28]}\nl2:\n  interfaces: [eth0, eth1]\n  nodeSelector: {matchLabels: {ferrolb.io/speaker: \"true\"}}\n"
            ),
            "announced under l2 (nodes matching {matchLabels: {\"ferrolb.io/speaker\": \"true\"}}, interfaces eth0, eth1): a\n"
        );
        assert_eq!(shown("pools: []\n"), "");
    }

    #[test]
    fn policies_with_their_pools_interfaces_nodes_and_services() {
        let text = shown(
            r#"pools:
- {name: lan, addresses: [192.0.2.0/28]}
- {name: iot, addresses: [198.51.100.0/26], labels: {vlan: "20"}}
- {name: gated, addresses: [203.0.113.0/28]}
l2:
  interfaces: [eth0]
  policies:
  - name: vlan20
    poolSelector: {matchLabels: {vlan: "20"}}
    interfaces: [eth0.20, "bond*"]
    interfaceRegexes: ["^enp[0-9]s0\\.20$"]
    nodeSelector: {matchExpressions: [{key: vlan20, operator: Exists}]}
  - name: edge
    pools: [gated]
    serviceSelector: {matchLabels: {tier: edge}}
  - name: spare
    poolSelector: {matchLabels: {vlan: "30"}}
"#,
        );
        assert_eq!(
            text,
            r#"policy vlan20:
  pools:      iot
  interfaces: eth0.20, bond*, regex:^enp[0-9]s0\.20$
  nodes:      matching {matchExpressions: [{key: "vlan20", operator: Exists}]}
  services:   every Service
policy edge:
  pools:      gated
  interfaces: as l2.interfaces (eth0)
  nodes:      every node
  services:   matching {matchLabels: {"tier": "edge"}}
policy spare:
  pools:      none (poolSelector {matchLabels: {"vlan": "30"}} matches no pool)
  interfaces: as l2.interfaces (eth0)
  nodes:      every node
  services:   every Service
announced under l2 (every node, interfaces eth0): lan
policies that cover no pool: spare
announced only for the Services a policy's serviceSelector matches (others are not announced): gated
"#
        );
    }

    #[test]
    fn a_policy_for_every_pool_and_one_without_pools() {
        assert_eq!(
            shown(
                "pools:\n- {name: a, addresses: [192.0.2.0/28]}\n- {name: b, addresses: [192.0.2.16/28]}\nl2:\n  policies: [{name: all}]\n"
            ),
            "policy all:\n  pools:      every pool (a, b)\n  interfaces: automatic\n  nodes:      every node\n  services:   every Service\n"
        );
        assert_eq!(
            shown("pools: []\nl2:\n  policies: [{name: all}]\n"),
            "policy all:\n  pools:      none (there are no pools)\n  interfaces: automatic\n  nodes:      every node\n  services:   every Service\npolicies that cover no pool: all\n"
        );
    }
}
