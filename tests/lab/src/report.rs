//! What the lab shows its user: the `kubectl get svc` table, which node answers for
//! each external IP, the state of each node, and the faults in force.

use std::fmt::Write as _;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, ListParams};

use crate::Lab;
use crate::error::LabError;
use crate::faults::{self, NetFaults};
use crate::plan::parse_mac;
use crate::seed::{EXCLUDE_LABEL, SYSTEM_NAMESPACE};

/// The IPs in a Service's `status.loadBalancer.ingress`.
pub fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ing| {
            ing.iter()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The MAC of an `ip neigh show <ip>` line that has one (`lladdr`), if any.
pub fn parse_neigh_lladdr(out: &str) -> Option<[u8; 6]> {
    out.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        words.find(|w| *w == "lladdr")?;
        parse_mac(words.next()?)
    })
}

/// How `node` hears its peers on the node network: `ISOLATED`, `LOSS <P>%`, or `ok`.
pub fn node_peers(node: &str, net: &NetFaults) -> String {
    if net.isolated.contains(node) {
        "ISOLATED".into()
    } else if net.loss_percent > 0 {
        format!("LOSS {}%", net.loss_percent)
    } else {
        "ok".into()
    }
}

/// The "who answers" verdict for one IP.
pub fn describe_announcers(who: &[String]) -> String {
    match who {
        [] => "nobody answers".to_string(),
        [one] => one.clone(),
        many => format!("CONFLICT: {} all answer", many.join(", ")),
    }
}

/// The whole status screen of a lab.
pub async fn status(lab: &Lab) -> Result<String, LabError> {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "$ kubectl --kubeconfig {} get svc -A",
        lab.kubeconfig().display()
    );
    match lab.kubectl(&["get", "svc", "-A"]).await {
        Ok(table) => out.push_str(&table),
        Err(e) => {
            let _ = writeln!(out, "(kubectl failed: {e})");
        }
    }
    out.push('\n');

    let services: Api<Service> = Api::all(lab.client().clone());
    let list = services
        .list(&ListParams::default())
        .await
        .map_err(LabError::kube("listing Services"))?;
    let _ = writeln!(
        out,
        "{:<28} {:<18} ANSWERED BY (ARP/NDP from the client)",
        "SERVICE", "EXTERNAL-IP"
    );
    let mut any = false;
    for svc in &list.items {
        let name = format!(
            "{}/{}",
            svc.metadata.namespace.as_deref().unwrap_or(""),
            svc.metadata.name.as_deref().unwrap_or("")
        );
        for ip in ingress_ips(svc) {
            any = true;
            let who = lab
                .announcers(ip)
                .await
                .map(|w| describe_announcers(&w))
                .unwrap_or_else(|e| format!("({e})"));
            let _ = writeln!(out, "{name:<28} {:<18} {who}", ip.to_string());
        }
    }
    if !any {
        let _ = writeln!(out, "(no Service has an external IP yet)");
    }
    out.push('\n');

    // The controller's leader Lease, then the speakers' (in a namespace of their own).
    for ns in [SYSTEM_NAMESPACE, crate::seed::SPEAKER_LEASE_NAMESPACE] {
        let _ = writeln!(out, "$ kubectl get lease -n {ns}");
        match lab.kubectl(&["get", "lease", "-n", ns]).await {
            Ok(table) if table.trim().is_empty() => out.push_str("(no Lease yet)\n"),
            Ok(table) => out.push_str(&table),
            Err(e) => {
                let _ = writeln!(out, "(kubectl failed: {e})");
            }
        }
        out.push('\n');
    }

    let api_faults = lab.api_faults();
    let net_faults = lab.net_faults().await;
    let nodes: Api<Node> = Api::all(lab.client().clone());
    let _ = writeln!(
        out,
        "{:<5} {:<16} {:<17} {:<9} {:<9} {:<9} {:<8} {:<8}",
        "NODE", "NETNS", "MAC", "SPEAKER", "API", "PEERS", "READY", "DRAINED"
    );
    for n in lab.plan().nodes() {
        let obj = nodes.get_opt(&n.name).await.ok().flatten();
        let ready = obj
            .as_ref()
            .and_then(|o| {
                o.status
                    .as_ref()?
                    .conditions
                    .as_ref()?
                    .iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| c.status.clone())
            })
            .unwrap_or_else(|| "?".into());
        let drained = obj
            .as_ref()
            .and_then(|o| o.metadata.labels.as_ref())
            .is_some_and(|l| l.contains_key(EXCLUDE_LABEL));
        let speaker = if lab.speaker_running(&n.name) {
            "running"
        } else {
            "stopped"
        };
        let api = match lab.is_cut(&n.name).await {
            Ok(true) => "CUT",
            Ok(false) if api_faults.down => "DOWN",
            Ok(false) => "ok",
            Err(_) => "?",
        };
        let peers = node_peers(&n.name, &net_faults);
        let _ = writeln!(
            out,
            "{:<5} {:<16} {:<17} {:<9} {:<9} {:<9} {:<8} {:<8}",
            n.name,
            n.netns,
            crate::plan::fmt_mac(n.mac),
            speaker,
            api,
            peers,
            ready,
            if drained { "yes" } else { "no" }
        );
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "faults:      {}",
        faults::summary(&api_faults, &net_faults)
    );
    let _ = writeln!(out, "kubeconfig:  {}", lab.kubeconfig().display());
    if let Some(ext) = lab.external_api() {
        let _ = writeln!(
            out,
            "api server:  external, {} ({}; {} objects of the lab's to remove at exit)",
            ext.target,
            match ext.scheme {
                crate::external::Scheme::Https => "https, relayed as TCP",
                crate::external::Scheme::Http => "http, relayed as HTTP",
            },
            lab.owned_objects().len()
        );
    }
    let _ = writeln!(
        out,
        "logs:        {}",
        lab.state_dir().join("logs").display()
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbour_lines_yield_their_mac_only_when_resolved() {
        assert_eq!(
            parse_neigh_lladdr("192.0.2.200 lladdr 02:f1:b0:00:01:02 REACHABLE\n"),
            Some([0x02, 0xf1, 0xb0, 0, 1, 2])
        );
        assert_eq!(parse_neigh_lladdr("192.0.2.200  FAILED\n"), None);
        assert_eq!(parse_neigh_lladdr(""), None);
    }

    #[test]
    fn a_node_shows_isolation_before_loss() {
        let mut net = NetFaults::default();
        assert_eq!(node_peers("n1", &net), "ok");
        net.loss_percent = 20;
        assert_eq!(node_peers("n1", &net), "LOSS 20%");
        net.isolated.insert("n1".into());
        assert_eq!(node_peers("n1", &net), "ISOLATED");
        assert_eq!(node_peers("n2", &net), "LOSS 20%");
    }

    #[test]
    fn announcer_verdicts() {
        assert_eq!(describe_announcers(&[]), "nobody answers");
        assert_eq!(describe_announcers(&["n2".into()]), "n2");
        assert_eq!(
            describe_announcers(&["n1".into(), "n2".into()]),
            "CONFLICT: n1, n2 all answer"
        );
    }
}
