//! Faults on the node network: nftables rules on the bridge, in the bridge namespace.
//!
//! One table of the `bridge` family filters the `forward` hook, which sees every frame
//! the bridge passes from one port to another (flooded copies included, one per output
//! port), but not the frames for the bridge's own address: so the API host (192.0.2.1,
//! local to the bridge) and the client's port are never touched, whatever the rules.
//!
//! - `isolate <node>` drops frames from the node's port to every other node's port and
//!   back: its peers neither hear it nor are heard by it (ARP included), while it still
//!   reaches the API server and the client still reaches it.
//! - `loss <P>` drops P % of the frames between node ports (`numgen random`), each
//!   direction drawn on its own. Client traffic is left alone on purpose: the client's
//!   requests measure the data plane (who answers for a Service IP, and when), which
//!   must not be blurred by the loss meant for the speakers' peer traffic.
//!
//! The whole table is replaced in one `nft -f` transaction at each change, and it
//! disappears with the bridge namespace at lab shutdown.

use std::path::Path;

use crate::cmd;
use crate::error::LabError;
use crate::faults::NetFaults;
use crate::plan::Plan;

/// Name of the lab's table (family `bridge`) in the bridge namespace.
pub const TABLE: &str = "ferrolb_lab_faults";

/// The `nft -f` script that makes the bridge namespace's fault table match `faults`:
/// it declares the table (so that deleting it never fails), deletes it, and, if any
/// fault is active, creates it anew. Fails on a node name the plan does not have.
pub fn ruleset(plan: &Plan, faults: &NetFaults) -> Result<String, LabError> {
    let ports: Vec<(String, String)> = plan.nodes().map(|n| (n.name, n.bridge_port)).collect();
    let port_of = |name: &str| {
        ports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| LabError::UnknownNode(name.to_string()))
    };
    let mut rules: Vec<String> = Vec::new();
    for node in &faults.isolated {
        let port = port_of(node)?;
        let others: Vec<&str> = ports
            .iter()
            .filter(|(_, p)| *p != port)
            .map(|(_, p)| p.as_str())
            .collect();
        // A one-node lab has no peers to drop.
        if others.is_empty() {
            continue;
        }
        let others = set(&others);
        rules.push(format!(
            "iifname \"{port}\" oifname {others} drop comment \"isolate {node}\""
        ));
        rules.push(format!(
            "iifname {others} oifname \"{port}\" drop comment \"isolate {node}\""
        ));
    }
    if faults.loss_percent > 0 && ports.len() > 1 {
        let all = set(&ports.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>());
        let p = faults.loss_percent.min(100);
        rules.push(format!(
            "iifname {all} oifname {all} numgen random mod 100 < {p} drop comment \"loss {p}%\""
        ));
    }
    let mut script = format!("table bridge {TABLE}\ndelete table bridge {TABLE}\n");
    if !rules.is_empty() {
        script.push_str(&format!(
            "table bridge {TABLE} {{\n\tchain forward {{\n\t\ttype filter hook forward priority 0; policy accept;\n"
        ));
        for r in rules {
            script.push_str(&format!("\t\t{r}\n"));
        }
        script.push_str("\t}\n}\n");
    }
    Ok(script)
}

/// An anonymous nft set of interface names: `{ "vn1", "vn2" }`.
fn set(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("{{ {} }}", quoted.join(", "))
}

/// Loads `script` (from [`ruleset`]) into `netns`, keeping a copy at `copy` (so that
/// the rules in force can be read after the fact).
pub async fn apply(netns: &str, script: &str, copy: &Path) -> Result<(), LabError> {
    cmd::require_program("nft")?;
    tokio::fs::write(copy, script)
        .await
        .map_err(LabError::io(format!("writing {}", copy.display())))?;
    let path = copy.display().to_string();
    cmd::run_async("ip", &["netns", "exec", netns, "nft", "-f", &path]).await?;
    Ok(())
}

/// The fault table as nft lists it in `netns` (empty when there is none).
pub async fn list(netns: &str) -> Result<String, LabError> {
    cmd::require_program("nft")?;
    let out = cmd::run_async("ip", &["netns", "exec", netns, "nft", "list", "tables"]).await?;
    if !out.contains(TABLE) {
        return Ok(String::new());
    }
    cmd::run_async(
        "ip",
        &[
            "netns", "exec", netns, "nft", "list", "table", "bridge", TABLE,
        ],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(nodes: usize) -> Plan {
        Plan::new("flb1a", nodes).unwrap()
    }

    #[test]
    fn no_fault_only_removes_the_table() {
        assert_eq!(
            ruleset(&plan(3), &NetFaults::default()).unwrap(),
            format!("table bridge {TABLE}\ndelete table bridge {TABLE}\n")
        );
    }

    #[test]
    fn isolating_a_node_drops_both_directions_between_it_and_its_peers_only() {
        let f = NetFaults {
            isolated: ["n2".to_string()].into(),
            loss_percent: 0,
        };
        let s = ruleset(&plan(3), &f).unwrap();
        assert!(s.starts_with(&format!(
            "table bridge {TABLE}\ndelete table bridge {TABLE}\ntable bridge {TABLE} {{\n"
        )));
        assert!(s.contains("type filter hook forward priority 0; policy accept;"));
        assert!(
            s.contains("iifname \"vn2\" oifname { \"vn1\", \"vn3\" } drop comment \"isolate n2\""),
            "{s}"
        );
        assert!(
            s.contains("iifname { \"vn1\", \"vn3\" } oifname \"vn2\" drop comment \"isolate n2\""),
            "{s}"
        );
        // The client's port is never named: node <-> client traffic passes.
        assert!(!s.contains("vclient"), "{s}");
        assert!(!s.contains("numgen"), "{s}");
        assert_eq!(s.matches(" drop").count(), 2, "{s}");
    }

    #[test]
    fn loss_draws_on_frames_between_node_ports_only() {
        let f = NetFaults {
            isolated: Default::default(),
            loss_percent: 50,
        };
        let s = ruleset(&plan(2), &f).unwrap();
        assert!(
            s.contains(
                "iifname { \"vn1\", \"vn2\" } oifname { \"vn1\", \"vn2\" } numgen random mod 100 < 50 drop"
            ),
            "{s}"
        );
        assert!(!s.contains("vclient"), "{s}");
    }

    #[test]
    fn isolation_and_loss_combine_and_one_node_has_no_peers() {
        let f = NetFaults {
            isolated: ["n1".to_string(), "n3".to_string()].into(),
            loss_percent: 10,
        };
        let s = ruleset(&plan(3), &f).unwrap();
        assert_eq!(s.matches("comment \"isolate n1\"").count(), 2, "{s}");
        assert_eq!(s.matches("comment \"isolate n3\"").count(), 2, "{s}");
        assert_eq!(s.matches("< 10 drop").count(), 1, "{s}");
        // Alone, a node has nobody to be isolated from nor lose frames to: no table.
        let alone = ruleset(
            &plan(1),
            &NetFaults {
                isolated: ["n1".to_string()].into(),
                loss_percent: 50,
            },
        )
        .unwrap();
        assert!(!alone.contains('{'), "{alone}");
    }

    #[test]
    fn an_unknown_node_is_named() {
        let f = NetFaults {
            isolated: ["n9".to_string()].into(),
            loss_percent: 0,
        };
        let e = ruleset(&plan(3), &f).unwrap_err();
        assert!(
            matches!(e, LabError::UnknownNode(ref n) if n == "n9"),
            "{e}"
        );
    }
}
