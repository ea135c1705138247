//! The lab's layer-2 segment, built with iproute2: a bridge namespace, node namespaces
//! and a client namespace, each plugged into the bridge by a veth pair.
//!
//! Nothing is created in the root namespace: veth pairs are created directly between
//! the bridge namespace and their peer namespace, so interface names never collide
//! between runs.

use std::net::IpAddr;

use crate::cmd::{ip_in, ip_in_async};
use crate::error::LabError;
use crate::netns::{read_sysctl_in, sysctl_in};
use crate::plan::{
    API_V4, API_V6, BRIDGE, CLIENT_MAC, CLIENT_V4, CLIENT_V6, KUBE_LB_IF, NodePlan, Plan, UPLINK,
    fmt_mac, vlan,
};

/// Builds the whole segment for `plan`. On error, what was built stays for the caller's
/// cleanup to remove (see [`destroy`]).
pub fn build(plan: &Plan) -> Result<(), LabError> {
    for ns in plan.namespaces() {
        crate::cmd::ip(&["netns", "add", &ns])?;
        ip_in(&ns, &["link", "set", "lo", "up"])?;
        // No IPv6 duplicate address detection: addresses are usable at once and the
        // lab's addresses are unique by construction.
        sysctl_in(&ns, "net.ipv6.conf.all.accept_dad", "0")?;
        sysctl_in(&ns, "net.ipv6.conf.default.accept_dad", "0")?;
    }
    let br = plan.bridge_ns();
    ip_in(&br, &["link", "add", BRIDGE, "type", "bridge"])?;
    ip_in(&br, &["link", "set", BRIDGE, "up"])?;
    ip_in(
        &br,
        &["addr", "add", &format!("{API_V4}/24"), "dev", BRIDGE],
    )?;
    ip_in(
        &br,
        &[
            "addr",
            "add",
            &format!("{API_V6}/64"),
            "dev",
            BRIDGE,
            "nodad",
        ],
    )?;

    let client = plan.client_ns();
    plug(plan, &client, "vclient", CLIENT_MAC)?;
    ip_in(
        &client,
        &["addr", "add", &format!("{CLIENT_V4}/24"), "dev", UPLINK],
    )?;
    ip_in(
        &client,
        &[
            "addr",
            "add",
            &format!("{CLIENT_V6}/64"),
            "dev",
            UPLINK,
            "nodad",
        ],
    )?;

    for node in plan.nodes() {
        build_node(plan, &node)?;
    }
    if plan.has_vlan() {
        build_vlan(plan)?;
    }
    Ok(())
}

/// The second segment: bridge [`vlan::BRIDGE`], its client namespace (eth0), and on
/// every node an interface named [`vlan::NODE_IF`] with the node's segment addresses.
fn build_vlan(plan: &Plan) -> Result<(), LabError> {
    let br = plan.bridge_ns();
    ip_in(&br, &["link", "add", vlan::BRIDGE, "type", "bridge"])?;
    ip_in(&br, &["link", "set", vlan::BRIDGE, "up"])?;
    let client = plan.vlan_client_ns();
    plug_into(
        plan,
        vlan::BRIDGE,
        &client,
        "v20client",
        UPLINK,
        vlan::CLIENT_MAC,
    )?;
    add_addrs(
        &client,
        UPLINK,
        vlan::CLIENT_V4.into(),
        vlan::CLIENT_V6.into(),
    )?;
    for node in plan.nodes() {
        let Some(v) = &node.vlan else { continue };
        plug_into(
            plan,
            vlan::BRIDGE,
            &node.netns,
            &v.bridge_port,
            vlan::NODE_IF,
            v.mac,
        )?;
        add_addrs(&node.netns, vlan::NODE_IF, v.v4.into(), v.v6.into())?;
    }
    Ok(())
}

/// Adds `v4`/24 and `v6`/64 (without duplicate address detection) to `dev` in `netns`.
fn add_addrs(netns: &str, dev: &str, v4: IpAddr, v6: IpAddr) -> Result<(), LabError> {
    ip_in(netns, &["addr", "add", &format!("{v4}/24"), "dev", dev])?;
    ip_in(
        netns,
        &["addr", "add", &format!("{v6}/64"), "dev", dev, "nodad"],
    )?;
    Ok(())
}

/// Creates the veth pair `bridge_port` (in the bridge namespace, enslaved to br0) /
/// eth0 (in `netns`, with `mac`) and brings both up.
fn plug(plan: &Plan, netns: &str, bridge_port: &str, mac: [u8; 6]) -> Result<(), LabError> {
    plug_into(plan, BRIDGE, netns, bridge_port, UPLINK, mac)
}

/// Creates the veth pair `bridge_port` (in the bridge namespace, enslaved to `bridge`) /
/// `ifname` (in `netns`, with `mac`) and brings both up.
fn plug_into(
    plan: &Plan,
    bridge: &str,
    netns: &str,
    bridge_port: &str,
    ifname: &str,
    mac: [u8; 6],
) -> Result<(), LabError> {
    let br = plan.bridge_ns();
    let mac = fmt_mac(mac);
    ip_in(
        &br,
        &[
            "link",
            "add",
            bridge_port,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "address",
            &mac,
            "netns",
            netns,
        ],
    )?;
    ip_in(&br, &["link", "set", bridge_port, "master", bridge, "up"])?;
    ip_in(netns, &["link", "set", ifname, "up"])?;
    Ok(())
}

fn build_node(plan: &Plan, node: &NodePlan) -> Result<(), LabError> {
    let ns = &node.netns;
    plug(plan, ns, &node.bridge_port, node.mac)?;
    ip_in(
        ns,
        &["addr", "add", &format!("{}/24", node.v4), "dev", UPLINK],
    )?;
    ip_in(
        ns,
        &[
            "addr",
            "add",
            &format!("{}/64", node.v6),
            "dev",
            UPLINK,
            "nodad",
        ],
    )?;
    // kube-proxy stand-in: an interface that holds every Service IP, so that the node
    // accepts traffic for them, while (like kube-ipvs0 in IPVS mode with strictARP)
    // the kernel never answers ARP for them: only the speaker does. It is an `ifb`
    // device because it is NOARP like a dummy, and the dummy driver is not available
    // on every kernel.
    ip_in(ns, &["link", "add", KUBE_LB_IF, "type", "ifb"])?;
    // Only Service IPs on it: no IPv6 link-local address.
    ip_in(ns, &["link", "set", KUBE_LB_IF, "addrgenmode", "none"])?;
    ip_in(ns, &["link", "set", KUBE_LB_IF, "up"])?;
    // arp_ignore=1: answer ARP only for addresses of the receiving interface;
    // arp_announce=2: never use a Service IP as the source of the node's own ARP
    // requests. For IPv6 nothing is needed: the kernel answers a Neighbor Solicitation
    // only for addresses of the interface it arrived on.
    sysctl_in(ns, "net.ipv4.conf.all.arp_ignore", "1")?;
    sysctl_in(ns, "net.ipv4.conf.all.arp_announce", "2")?;
    Ok(())
}

/// Removes every namespace of `plan` that exists (processes in them must be gone
/// first, or the namespaces linger until they exit). Idempotent.
pub fn destroy(plan: &Plan) -> Vec<LabError> {
    destroy_namespaces(&plan.namespaces())
}

/// Removes the named namespaces that exist; returns the errors met, after trying all.
pub fn destroy_namespaces(namespaces: &[String]) -> Vec<LabError> {
    let existing = list_netns().unwrap_or_default();
    let mut errors = Vec::new();
    for ns in namespaces {
        if existing.iter().any(|e| e == ns)
            && let Err(e) = crate::cmd::ip(&["netns", "del", ns])
        {
            errors.push(e);
        }
    }
    errors
}

/// Names of the network namespaces under /run/netns.
pub fn list_netns() -> Result<Vec<String>, LabError> {
    let dir = match std::fs::read_dir("/run/netns") {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(LabError::Io {
                what: "listing /run/netns".into(),
                source: e,
            });
        }
    };
    Ok(dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect())
}

/// Pids of the processes inside `netns`.
pub fn pids_in(netns: &str) -> Vec<u32> {
    crate::cmd::ip(&["netns", "pids", netns])
        .map(|out| out.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Cuts `node` off from the API server host (192.0.2.1, 2001:db8::1) with `prohibit`
/// routes, while its link and every other neighbour stay reachable.
pub async fn cut(node: &NodePlan) -> Result<(), LabError> {
    ip_in_async(
        &node.netns,
        &["route", "replace", "prohibit", &format!("{API_V4}/32")],
    )
    .await?;
    ip_in_async(
        &node.netns,
        &[
            "-6",
            "route",
            "replace",
            "prohibit",
            &format!("{API_V6}/128"),
        ],
    )
    .await?;
    Ok(())
}

/// Undoes [`cut`]. Idempotent.
pub async fn heal(node: &NodePlan) -> Result<(), LabError> {
    for (family, dst) in [
        ("-4", format!("{API_V4}/32")),
        ("-6", format!("{API_V6}/128")),
    ] {
        if has_prohibit_route(&node.netns, family, &dst).await? {
            ip_in_async(&node.netns, &[family, "route", "del", "prohibit", &dst]).await?;
        }
    }
    Ok(())
}

/// Whether `node` is currently cut off.
pub async fn is_cut(node: &NodePlan) -> Result<bool, LabError> {
    has_prohibit_route(&node.netns, "-4", &format!("{API_V4}/32")).await
}

async fn has_prohibit_route(netns: &str, family: &str, dst: &str) -> Result<bool, LabError> {
    let out = ip_in_async(netns, &[family, "route", "show", "type", "prohibit", dst]).await?;
    Ok(!out.trim().is_empty())
}

/// Adds `ip` to kube-lb0 of `netns` (a /32 or /128). Idempotent.
pub async fn add_service_ip(netns: &str, ip: IpAddr) -> Result<(), LabError> {
    let (cidr, extra): (String, &[&str]) = match ip {
        IpAddr::V4(v4) => (format!("{v4}/32"), &[]),
        IpAddr::V6(v6) => (format!("{v6}/128"), &["nodad"]),
    };
    let mut args = vec!["addr", "replace", cidr.as_str(), "dev", KUBE_LB_IF];
    args.extend_from_slice(extra);
    ip_in_async(netns, &args).await.map(|_| ())
}

/// Removes `ip` from kube-lb0 of `netns`.
pub async fn del_service_ip(netns: &str, ip: IpAddr) -> Result<(), LabError> {
    let cidr = match ip {
        IpAddr::V4(v4) => format!("{v4}/32"),
        IpAddr::V6(v6) => format!("{v6}/128"),
    };
    ip_in_async(netns, &["addr", "del", &cidr, "dev", KUBE_LB_IF])
        .await
        .map(|_| ())
}

/// The Service IPs now on kube-lb0 of `netns`.
pub async fn service_ips(netns: &str) -> Result<Vec<IpAddr>, LabError> {
    let out = ip_in_async(netns, &["-o", "addr", "show", "dev", KUBE_LB_IF]).await?;
    Ok(parse_addr_lines(&out))
}

/// Parses the addresses out of `ip -o addr show` lines.
pub fn parse_addr_lines(out: &str) -> Vec<IpAddr> {
    out.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            words.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// Checks the node's ARP sysctls (a guard for the stand-in's promise).
pub fn arp_sysctls(netns: &str) -> Result<(String, String), LabError> {
    Ok((
        read_sysctl_in(netns, "net.ipv4.conf.all.arp_ignore")?,
        read_sysctl_in(netns, "net.ipv4.conf.all.arp_announce")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_from_ip_o_addr() {
        let out = "4: kube-lb0    inet 192.0.2.200/32 scope global kube-lb0\\       valid_lft forever preferred_lft forever\n\
                   4: kube-lb0    inet6 2001:db8::200/128 scope global nodad \\       valid_lft forever preferred_lft forever\n";
        assert_eq!(
            parse_addr_lines(out),
            vec![
                "192.0.2.200".parse::<IpAddr>().unwrap(),
                "2001:db8::200".parse().unwrap()
            ]
        );
        assert!(parse_addr_lines("").is_empty());
    }
}
