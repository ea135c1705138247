//! The pool summary `check-config` prints on success.

use std::fmt;

use crate::model::Config;

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
