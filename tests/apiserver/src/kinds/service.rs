//! Service defaulting, allocation and validation, as kube-apiserver does it for the fields ferrolb
//! reads and writes: type, ports, ipFamilies/ipFamilyPolicy, clusterIP(s) from the service ranges,
//! nodePorts, healthCheckNodePort, loadBalancerClass, and `status.loadBalancer`.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value, json};

use super::super::status::FieldError;
use super::super::store::Store;

/// IPv4 service range (documentation range).
pub const SERVICE_V4: (Ipv4Addr, u8) = (Ipv4Addr::new(198, 51, 100, 0), 24);
/// IPv6 service range (documentation range).
pub const SERVICE_V6: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 0), 112);
/// NodePort range.
pub const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
const POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

fn family_of(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn in_range(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            u32::from(*a) >> (32 - SERVICE_V4.1) == u32::from(SERVICE_V4.0) >> (32 - SERVICE_V4.1)
        }
        IpAddr::V6(a) => {
            u128::from(*a) >> (128 - SERVICE_V6.1)
                == u128::from(SERVICE_V6.0) >> (128 - SERVICE_V6.1)
        }
    }
}

fn range_text(family: &str) -> String {
    if family == "IPv4" {
        format!("{}/{}", SERVICE_V4.0, SERVICE_V4.1)
    } else {
        format!("{}/{}", SERVICE_V6.0, SERVICE_V6.1)
    }
}

fn valid_cidr(s: &str) -> bool {
    let Some((ip, len)) = s.split_once('/') else {
        return false;
    };
    match (ip.parse::<IpAddr>(), len.parse::<u8>()) {
        (Ok(IpAddr::V4(_)), Ok(l)) => l <= 32,
        (Ok(IpAddr::V6(_)), Ok(l)) => l <= 128,
        _ => false,
    }
}

/// What other Services hold (looked up in the store's index, not copied: a copy
/// per request would cost as much as the number of Services), plus what this
/// request has claimed so far.
struct Taken<'a> {
    index: &'a Allocations,
    ns: &'a str,
    name: &'a str,
    ips: HashSet<IpAddr>,
    node_ports: HashSet<i64>,
}

impl Taken<'_> {
    fn other(&self, owner: &(String, String)) -> bool {
        owner.0 != self.ns || owner.1 != self.name
    }

    fn has_ip(&self, ip: &IpAddr) -> bool {
        self.ips.contains(ip) || self.index.ips.get(ip).is_some_and(|o| self.other(o))
    }

    /// Claims an IP; false when it is taken.
    fn claim_ip(&mut self, ip: IpAddr) -> bool {
        !self.has_ip(&ip) && self.ips.insert(ip)
    }

    fn has_port(&self, p: i64) -> bool {
        self.node_ports.contains(&p) || self.index.node_ports.get(&p).is_some_and(|o| self.other(o))
    }

    /// Claims a node port (no check: the caller reports conflicts itself).
    fn claim_port(&mut self, p: i64) {
        self.node_ports.insert(p);
    }

    /// The lowest free node port.
    fn free_port(&self) -> Option<i64> {
        (self.index.port_floor.max(*NODE_PORTS.start())..=*NODE_PORTS.end())
            .find(|n| !self.has_port(*n))
    }
}

fn taken_by_others<'a>(store: &'a Store, ns: &'a str, name: &'a str) -> Taken<'a> {
    Taken {
        index: &store.service_allocations,
        ns,
        name,
        ips: HashSet::new(),
        node_ports: HashSet::new(),
    }
}

/// Index of the cluster IPs and node ports each Service holds (see `Store::put`).
#[derive(Debug, Default)]
pub struct Allocations {
    ips: std::collections::HashMap<IpAddr, (String, String)>,
    node_ports: std::collections::HashMap<i64, (String, String)>,
    /// Every service IP below these offsets in its range is held: allocation scans
    /// from here rather than from the start of the range (which would cost as much
    /// as the number of Services per create) and still hands out the lowest free one.
    v4_floor: u32,
    v6_floor: u128,
    /// The same for node ports.
    port_floor: i64,
}

impl Allocations {
    /// Replaces what `ns/name` held in `old` by what it holds in `new`.
    pub fn update(&mut self, ns: &str, name: &str, old: Option<&Value>, new: Option<&Value>) {
        if let Some(old) = old {
            let (ips, ports) = held(old);
            for ip in ips {
                self.ips.remove(&ip);
                match ip_offset(&ip) {
                    Some(Offset::V4(o)) => self.v4_floor = self.v4_floor.min(o),
                    Some(Offset::V6(o)) => self.v6_floor = self.v6_floor.min(o),
                    None => {}
                }
            }
            for p in ports {
                self.node_ports.remove(&p);
                self.port_floor = self.port_floor.min(p);
            }
        }
        if let Some(new) = new {
            let (ips, ports) = held(new);
            let owner = (ns.to_owned(), name.to_owned());
            for ip in ips {
                self.ips.insert(ip, owner.clone());
            }
            for p in ports {
                self.node_ports.insert(p, owner.clone());
            }
        }
        self.v4_floor = self.v4_floor.max(1);
        while self.ips.contains_key(&v4_at(self.v4_floor)) {
            self.v4_floor += 1;
        }
        self.v6_floor = self.v6_floor.max(1);
        while self.ips.contains_key(&v6_at(self.v6_floor)) {
            self.v6_floor += 1;
        }
        self.port_floor = self.port_floor.max(*NODE_PORTS.start());
        while self.node_ports.contains_key(&self.port_floor) {
            self.port_floor += 1;
        }
    }
}

/// An IP's offset in its service range.
enum Offset {
    V4(u32),
    V6(u128),
}

/// The offset of an IP in its service range (None outside the ranges).
fn ip_offset(ip: &IpAddr) -> Option<Offset> {
    if !in_range(ip) {
        return None;
    }
    Some(match ip {
        IpAddr::V4(a) => Offset::V4(u32::from(*a) - u32::from(SERVICE_V4.0)),
        IpAddr::V6(a) => Offset::V6(u128::from(*a) - u128::from(SERVICE_V6.0)),
    })
}

fn v4_at(offset: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(SERVICE_V4.0).wrapping_add(offset)))
}

fn v6_at(offset: u128) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(
        u128::from(SERVICE_V6.0).wrapping_add(offset),
    ))
}

/// The cluster IPs and node ports a stored Service holds.
fn held(svc: &Value) -> (Vec<IpAddr>, Vec<i64>) {
    let ips = svc["spec"]["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.as_str()?.parse().ok())
        .collect();
    let mut ports: Vec<i64> = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_i64())
        .collect();
    ports.extend(svc["spec"]["healthCheckNodePort"].as_i64());
    (ips, ports)
}

/// The lowest free service IP of a family.
fn allocate_ip(family: &str, taken: &Taken) -> Option<IpAddr> {
    if family == "IPv4" {
        let size = 1u32 << (32 - SERVICE_V4.1);
        (taken.index.v4_floor.max(1)..size - 1)
            .map(v4_at)
            .find(|ip| !taken.has_ip(ip))
    } else {
        let size = 1u128 << (128 - SERVICE_V6.1);
        (taken.index.v6_floor.max(1)..size - 1)
            .map(v6_at)
            .find(|ip| !taken.has_ip(ip))
    }
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn needs_node_ports(spec: &Value) -> bool {
    match spec["type"].as_str() {
        Some("NodePort") => true,
        Some("LoadBalancer") => spec["allocateLoadBalancerNodePorts"].as_bool() != Some(false),
        _ => false,
    }
}

fn is_external_traffic_type(t: &str) -> bool {
    t == "NodePort" || t == "LoadBalancer"
}

/// Clears fields that only make sense for the old type, when the type changed and the user left
/// them as they were (kube-apiserver's `dropTypeDependentFields`).
fn drop_type_dependent(old: &Value, spec: &mut Map<String, Value>) {
    let old_spec = &old["spec"];
    let old_type = old_spec["type"].as_str().unwrap_or("ClusterIP");
    let new_type = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if old_type == new_type {
        return;
    }
    let new_spec = Value::Object(spec.clone());
    if needs_node_ports(old_spec)
        && !needs_node_ports(&new_spec)
        && let Some(Value::Array(ports)) = spec.get_mut("ports")
    {
        for p in ports.iter_mut() {
            let same = old_spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|op| op["port"] == p["port"] && op["nodePort"] == p["nodePort"]);
            if same && let Some(m) = p.as_object_mut() {
                m.remove("nodePort");
            }
        }
    }
    if old_type == "LoadBalancer" && new_type != "LoadBalancer" {
        if spec.get("loadBalancerClass") == old_spec.get("loadBalancerClass") {
            spec.remove("loadBalancerClass");
        }
        spec.remove("allocateLoadBalancerNodePorts");
        if spec.get("healthCheckNodePort") == old_spec.get("healthCheckNodePort") {
            spec.remove("healthCheckNodePort");
        }
    }
    if !is_external_traffic_type(&new_type)
        && spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy")
    {
        spec.remove("externalTrafficPolicy");
    }
    if new_type == "ExternalName" {
        for f in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
            if spec.get(f) == old_spec.get(f) {
                spec.remove(f);
            }
        }
    }
}

/// Defaults, allocates and validates a Service being created (`old` None) or updated.
pub fn prepare(old: Option<&Value>, obj: &mut Value, store: &Store) -> Vec<FieldError> {
    let ns = obj["metadata"]["namespace"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    let mut errs = Vec::new();
    if !obj["spec"].is_object() {
        obj["spec"] = json!({});
    }
    if old.is_none() {
        // Status is the controller's to write, never the creator's.
        obj["status"] = json!({"loadBalancer": {}});
    }
    let mut taken = taken_by_others(store, &ns, &name);
    let spec = obj["spec"].as_object_mut().expect("made an object above");
    if let Some(old) = old {
        drop_type_dependent(old, spec);
    }

    // Type.
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    spec.insert("type".into(), json!(ty));
    if !TYPES.contains(&ty.as_str()) {
        errs.push(FieldError::not_supported("spec.type", ty.as_str(), TYPES));
        return errs;
    }
    if !spec.contains_key("sessionAffinity") {
        spec.insert("sessionAffinity".into(), json!("None"));
    }
    if ty != "ExternalName" && !spec.contains_key("internalTrafficPolicy") {
        spec.insert("internalTrafficPolicy".into(), json!("Cluster"));
    }
    if is_external_traffic_type(&ty) {
        match spec.get("externalTrafficPolicy").and_then(Value::as_str) {
            None => {
                spec.insert("externalTrafficPolicy".into(), json!("Cluster"));
            }
            Some("Cluster" | "Local") => {}
            Some(other) => errs.push(FieldError::not_supported(
                "spec.externalTrafficPolicy",
                other,
                &["Cluster", "Local"],
            )),
        }
    } else if let Some(p) = spec.get("externalTrafficPolicy").and_then(Value::as_str) {
        errs.push(FieldError::invalid(
            "spec.externalTrafficPolicy",
            p,
            "may only be set when `type` is 'NodePort' or 'LoadBalancer'",
        ));
    }
    if ty == "LoadBalancer" {
        if !spec.contains_key("allocateLoadBalancerNodePorts") {
            spec.insert("allocateLoadBalancerNodePorts".into(), json!(true));
        }
    } else if spec.contains_key("allocateLoadBalancerNodePorts") {
        errs.push(FieldError::forbidden(
            "spec.allocateLoadBalancerNodePorts",
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }

    // loadBalancerClass: only for LoadBalancer, a domain-prefixed name, immutable while LoadBalancer.
    if let Some(class) = spec.get("loadBalancerClass").and_then(Value::as_str) {
        if ty != "LoadBalancer" {
            errs.push(FieldError::forbidden(
                "spec.loadBalancerClass",
                "may only be used when `type` is 'LoadBalancer'",
            ));
        } else if !class.contains('/') || !super::super::selector::valid_label_key(class) {
            errs.push(FieldError::invalid(
                "spec.loadBalancerClass",
                class,
                "must be a domain-prefixed path (such as \"acme.io/foo\")",
            ));
        }
    }
    if let Some(old) = old
        && old["spec"]["type"] == "LoadBalancer"
        && ty == "LoadBalancer"
        && old["spec"].get("loadBalancerClass") != spec.get("loadBalancerClass")
    {
        let v = spec
            .get("loadBalancerClass")
            .cloned()
            .unwrap_or(Value::Null);
        errs.push(FieldError::invalid(
            "spec.loadBalancerClass",
            v,
            "may not change once set",
        ));
    }
    if let Some(ip) = spec.get("loadBalancerIP").and_then(Value::as_str)
        && !ip.is_empty()
        && ip.parse::<IpAddr>().is_err()
    {
        errs.push(FieldError::invalid(
            "spec.loadBalancerIP",
            ip,
            "must be a valid IP address",
        ));
    }

    for (i, ip) in spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let ip = ip.as_str().unwrap_or("");
        if ip.parse::<IpAddr>().is_err() {
            errs.push(FieldError::invalid(
                format!("spec.externalIPs[{i}]"),
                ip,
                "must be a valid IP address",
            ));
        }
    }
    for (i, cidr) in spec
        .get("loadBalancerSourceRanges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let cidr = cidr.as_str().unwrap_or("");
        if !valid_cidr(cidr.trim()) {
            errs.push(FieldError::invalid(
                format!("spec.loadBalancerSourceRanges[{i}]"),
                cidr,
                "must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 ",
            ));
        }
    }

    // Ports.
    let mut ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let multi = ports.len() > 1;
    let mut names = HashSet::new();
    let mut port_protos = HashSet::new();
    for (i, p) in ports.iter_mut().enumerate() {
        let Some(pm) = p.as_object_mut() else {
            errs.push(FieldError::invalid(
                format!("spec.ports[{i}]"),
                p.clone(),
                "must be an object",
            ));
            continue;
        };
        let port = pm.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&port) {
            errs.push(FieldError::invalid(
                format!("spec.ports[{i}].port"),
                port,
                "must be between 1 and 65535, inclusive",
            ));
        }
        let proto = pm
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP")
            .to_string();
        pm.insert("protocol".into(), json!(proto));
        if !PROTOCOLS.contains(&proto.as_str()) {
            errs.push(FieldError::not_supported(
                format!("spec.ports[{i}].protocol"),
                proto.as_str(),
                PROTOCOLS,
            ));
        }
        if ty != "ExternalName" && !pm.contains_key("targetPort") {
            pm.insert("targetPort".into(), json!(port));
        }
        let pname = pm
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if multi && pname.is_empty() {
            errs.push(FieldError::required(format!("spec.ports[{i}].name"), ""));
        }
        if !pname.is_empty() && !names.insert(pname.clone()) {
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}].name"),
                pname.as_str(),
            ));
        }
        if !port_protos.insert((port, proto.clone())) {
            errs.push(FieldError::duplicate(
                format!("spec.ports[{i}]"),
                json!({"port": port, "protocol": proto}),
            ));
        }
    }
    if ports.is_empty()
        && ty != "ExternalName"
        && spec.get("clusterIP").and_then(Value::as_str) != Some("None")
    {
        errs.push(FieldError::required("spec.ports", ""));
    }

    if ty == "ExternalName" {
        if spec
            .get("externalName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            errs.push(FieldError::required("spec.externalName", ""));
        }
        for f in ["clusterIP", "clusterIPs"] {
            if let Some(v) = spec
                .get(f)
                .filter(|v| !v.is_null() && *v != "" && *v != &json!([]))
            {
                errs.push(FieldError::forbidden(
                    format!("spec.{f}"),
                    format!("may not be set for ExternalName services (got {v})"),
                ));
            }
        }
        spec.insert("ports".into(), Value::Array(ports));
        return errs;
    }

    // ClusterIPs and families. On update, unset allocated values keep their old values.
    if let Some(old) = old {
        let os = &old["spec"];
        if spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
            && str_list(spec.get("clusterIPs").unwrap_or(&Value::Null)).is_empty()
            && os["clusterIP"].as_str().is_some_and(|s| !s.is_empty())
        {
            spec.insert("clusterIP".into(), os["clusterIP"].clone());
            spec.insert("clusterIPs".into(), os["clusterIPs"].clone());
        }
        if str_list(spec.get("ipFamilies").unwrap_or(&Value::Null)).is_empty()
            && !os["ipFamilies"].is_null()
        {
            spec.insert("ipFamilies".into(), os["ipFamilies"].clone());
        }
        if spec.get("ipFamilyPolicy").is_none_or(Value::is_null) && !os["ipFamilyPolicy"].is_null()
        {
            spec.insert("ipFamilyPolicy".into(), os["ipFamilyPolicy"].clone());
        }
        let old_ip = os["clusterIP"].as_str().unwrap_or("");
        let new_ip = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("");
        if !old_ip.is_empty() && new_ip != old_ip {
            errs.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                new_ip,
                "may not change once set",
            ));
            return errs;
        }
    }
    let mut cluster_ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut cluster_ips = str_list(spec.get("clusterIPs").unwrap_or(&Value::Null));
    if cluster_ips.is_empty() && !cluster_ip.is_empty() {
        cluster_ips.push(cluster_ip.clone());
    }
    if cluster_ip.is_empty() && !cluster_ips.is_empty() {
        cluster_ip = cluster_ips[0].clone();
    }
    if cluster_ips.first().is_some_and(|c| *c != cluster_ip) {
        errs.push(FieldError::invalid(
            "spec.clusterIPs[0]",
            cluster_ips[0].as_str(),
            "must match `clusterIP` when both are specified",
        ));
        return errs;
    }
    let headless = cluster_ip == "None";
    let mut families = str_list(spec.get("ipFamilies").unwrap_or(&Value::Null));
    for (i, f) in families.iter().enumerate() {
        if f != "IPv4" && f != "IPv6" {
            errs.push(FieldError::not_supported(
                format!("spec.ipFamilies[{i}]"),
                f.as_str(),
                &["IPv4", "IPv6"],
            ));
        }
    }
    if families.len() > 2 || (families.len() == 2 && families[0] == families[1]) {
        errs.push(FieldError::invalid(
            "spec.ipFamilies",
            json!(families),
            "may specify no more than one IP for each IP family",
        ));
    }
    if !errs.is_empty() {
        return errs;
    }
    let policy = match spec.get("ipFamilyPolicy").and_then(Value::as_str) {
        Some(p) => p.to_string(),
        None if cluster_ips.len() == 2 || families.len() == 2 => "RequireDualStack".to_string(),
        None => "SingleStack".to_string(),
    };
    if !POLICIES.contains(&policy.as_str()) {
        errs.push(FieldError::not_supported(
            "spec.ipFamilyPolicy",
            policy.as_str(),
            POLICIES,
        ));
        return errs;
    }
    // A downgrade to SingleStack releases the secondary IP and family.
    if policy == "SingleStack"
        && old.is_some_and(|o| {
            o["spec"]["clusterIPs"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
        })
    {
        cluster_ips.truncate(1);
        families.truncate(1);
    }
    if !headless {
        if cluster_ips.len() > 2 {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                json!(cluster_ips),
                "may specify no more than one IP for each IP family",
            ));
            return errs;
        }
        for (i, ip) in cluster_ips.iter().enumerate() {
            let Ok(parsed) = ip.parse::<IpAddr>() else {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    ip.as_str(),
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                ));
                continue;
            };
            let fam = family_of(&parsed);
            match families.get(i) {
                Some(f) if f != fam => errs.push(FieldError::invalid(
                    format!("spec.ipFamilies[{i}]"),
                    f.as_str(),
                    format!("does not match IP family of clusterIPs[{i}] ({ip})"),
                )),
                Some(_) => {}
                None => families.push(fam.to_string()),
            }
        }
        if cluster_ips.len() == 2 && families.len() == 2 && families[0] == families[1] {
            errs.push(FieldError::invalid(
                "spec.clusterIPs",
                json!(cluster_ips),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !errs.is_empty() {
        return errs;
    }
    if families.is_empty() {
        families.push("IPv4".into());
    }
    if policy != "SingleStack" && families.len() == 1 {
        families.push(if families[0] == "IPv4" {
            "IPv6".into()
        } else {
            "IPv4".into()
        });
    }
    if policy == "SingleStack" && (families.len() > 1 || cluster_ips.len() > 1) {
        errs.push(FieldError::invalid(
            "spec.ipFamilyPolicy",
            "SingleStack",
            "must be 'RequireDualStack' or 'PreferDualStack' when multiple 'ipFamilies' are specified",
        ));
        return errs;
    }
    if headless {
        cluster_ips = vec!["None".into()];
    } else {
        let old_ips: HashSet<String> = old
            .map(|o| str_list(&o["spec"]["clusterIPs"]).into_iter().collect())
            .unwrap_or_default();
        for (i, ip) in cluster_ips.iter().enumerate() {
            if old_ips.contains(ip) {
                continue;
            }
            let parsed: IpAddr = ip.parse().expect("validated above");
            if !in_range(&parsed) {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    ip.as_str(),
                    format!("failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is {}", range_text(family_of(&parsed))),
                ));
            } else if !taken.claim_ip(parsed) {
                errs.push(FieldError::invalid(
                    format!("spec.clusterIPs[{i}]"),
                    ip.as_str(),
                    format!("failed to allocate IP {ip}: provided IP is already allocated"),
                ));
            }
        }
        for fam in families.iter().skip(cluster_ips.len()) {
            match allocate_ip(fam, &taken) {
                Some(ip) => {
                    taken.claim_ip(ip);
                    cluster_ips.push(ip.to_string());
                }
                None => errs.push(FieldError::invalid(
                    "spec.clusterIPs",
                    fam.as_str(),
                    format!("range is full: {}", range_text(fam)),
                )),
            }
        }
    }
    if !errs.is_empty() {
        return errs;
    }
    spec.insert("clusterIP".into(), json!(cluster_ips[0]));
    spec.insert("clusterIPs".into(), json!(cluster_ips));
    spec.insert("ipFamilies".into(), json!(families));
    spec.insert("ipFamilyPolicy".into(), json!(policy));

    // NodePorts.
    let spec_value = Value::Object(spec.clone());
    let wants = needs_node_ports(&spec_value);
    let old_ports: Vec<Value> = old
        .and_then(|o| o["spec"]["ports"].as_array().cloned())
        .unwrap_or_default();
    let old_node_ports: HashSet<i64> = old_ports
        .iter()
        .filter_map(|p| p["nodePort"].as_i64())
        .collect();
    let mut mine: Vec<(i64, String)> = Vec::new();
    for (i, p) in ports.iter_mut().enumerate() {
        let Some(pm) = p.as_object_mut() else {
            continue;
        };
        let proto = pm
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP")
            .to_string();
        match pm
            .get("nodePort")
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            Some(np) if !wants => {
                errs.push(FieldError::forbidden(
                    format!("spec.ports[{i}].nodePort"),
                    format!("may not be used when `type` is '{ty}' (got {np})"),
                ));
            }
            Some(np) => {
                if mine.iter().any(|(n, pr)| *n == np && *pr == proto) {
                    errs.push(FieldError::duplicate(
                        format!("spec.ports[{i}].nodePort"),
                        np,
                    ));
                } else if !mine.iter().any(|(n, _)| *n == np) && !old_node_ports.contains(&np) {
                    if !NODE_PORTS.contains(&np) {
                        errs.push(FieldError::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            np,
                            "provided port is not in the valid range. The range of valid ports is 30000-32767",
                        ));
                    } else if taken.has_port(np) {
                        errs.push(FieldError::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            np,
                            "provided port is already allocated",
                        ));
                    }
                }
                taken.claim_port(np);
                mine.push((np, proto));
            }
            None if wants => {
                let reuse = old_ports
                    .iter()
                    .find(|op| {
                        op["port"] == pm["port"]
                            && op["protocol"].as_str().unwrap_or("TCP") == proto
                    })
                    .and_then(|op| op["nodePort"].as_i64());
                let np = reuse.or_else(|| taken.free_port());
                match np {
                    Some(np) => {
                        taken.claim_port(np);
                        mine.push((np, proto));
                        pm.insert("nodePort".into(), json!(np));
                    }
                    None => errs.push(FieldError::invalid(
                        format!("spec.ports[{i}].nodePort"),
                        0,
                        "range is full",
                    )),
                }
            }
            None => {
                pm.remove("nodePort");
            }
        }
    }
    spec.insert("ports".into(), Value::Array(ports));

    let wants_health = ty == "LoadBalancer"
        && spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local");
    match spec
        .get("healthCheckNodePort")
        .and_then(Value::as_i64)
        .filter(|n| *n != 0)
    {
        Some(h) if !wants_health => {
            errs.push(FieldError::invalid("spec.healthCheckNodePort", h, "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"));
        }
        Some(h) => {
            let was = old.and_then(|o| o["spec"]["healthCheckNodePort"].as_i64()) == Some(h);
            if !was && (!NODE_PORTS.contains(&h) || taken.has_port(h)) {
                errs.push(FieldError::invalid(
                    "spec.healthCheckNodePort",
                    h,
                    "provided port is not available",
                ));
            }
        }
        None if wants_health => {
            let h = old
                .and_then(|o| o["spec"]["healthCheckNodePort"].as_i64())
                .or_else(|| taken.free_port());
            if let Some(h) = h {
                spec.insert("healthCheckNodePort".into(), json!(h));
            }
        }
        None => {
            spec.remove("healthCheckNodePort");
        }
    }
    errs.extend(validate_status(obj));
    errs
}

/// Validates (and defaults `ipMode` in) `status.loadBalancer`.
pub fn validate_status(obj: &mut Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    // `pointer_mut`, not indexing: indexing would insert the missing keys as nulls.
    let Some(ingress) = obj
        .pointer_mut("/status/loadBalancer/ingress")
        .and_then(Value::as_array_mut)
    else {
        return errs;
    };
    for (i, ing) in ingress.iter_mut().enumerate() {
        let base = format!("status.loadBalancer.ingress[{i}]");
        let Some(m) = ing.as_object_mut() else {
            errs.push(FieldError::invalid(base, Value::Null, "must be an object"));
            continue;
        };
        let ip = m
            .get("ip")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !ip.is_empty() && ip.parse::<IpAddr>().is_err() {
            errs.push(FieldError::invalid(
                format!("{base}.ip"),
                ip.as_str(),
                "must be a valid IP address",
            ));
        }
        if let Some(h) = m.get("hostname").and_then(Value::as_str)
            && !h.is_empty()
            && h.parse::<IpAddr>().is_ok()
        {
            errs.push(FieldError::invalid(
                format!("{base}.hostname"),
                h,
                "must be a DNS name, not an IP address",
            ));
        }
        match m.get("ipMode").and_then(Value::as_str) {
            None if !ip.is_empty() => {
                m.insert("ipMode".into(), json!("VIP"));
            }
            None => {}
            Some(mode) => {
                if ip.is_empty() {
                    errs.push(FieldError::forbidden(
                        format!("{base}.ipMode"),
                        "may not be specified when `ip` is not",
                    ));
                } else if mode != "VIP" && mode != "Proxy" {
                    errs.push(FieldError::not_supported(
                        format!("{base}.ipMode"),
                        mode,
                        &["Proxy", "VIP"],
                    ));
                }
            }
        }
        for (j, p) in m
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let port = p["port"].as_i64().unwrap_or(0);
            if !(1..=65535).contains(&port) {
                errs.push(FieldError::invalid(
                    format!("{base}.ports[{j}].port"),
                    port,
                    "must be between 1 and 65535, inclusive",
                ));
            }
            let proto = p["protocol"].as_str().unwrap_or("");
            if !PROTOCOLS.contains(&proto) {
                errs.push(FieldError::not_supported(
                    format!("{base}.ports[{j}].protocol"),
                    proto,
                    PROTOCOLS,
                ));
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_service(spec: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"}, "spec": spec})
    }

    fn store_with(svcs: &[Value]) -> Store {
        let mut s = Store::new(100);
        for v in svcs {
            let name = v["metadata"]["name"].as_str().unwrap().to_string();
            s.put("services", "default", &name, v.clone());
        }
        s
    }

    #[test]
    fn defaults_single_stack_ipv4() {
        let mut svc = mk_service(json!({"ports": [{"port": 80}]}));
        assert!(prepare(None, &mut svc, &store_with(&[])).is_empty());
        let s = &svc["spec"];
        assert_eq!(s["type"], "ClusterIP");
        assert_eq!(s["ipFamilyPolicy"], "SingleStack");
        assert_eq!(s["ipFamilies"], json!(["IPv4"]));
        assert_eq!(s["clusterIP"], "198.51.100.1");
        assert_eq!(s["clusterIPs"], json!(["198.51.100.1"]));
        assert_eq!(s["ports"][0]["protocol"], "TCP");
        assert_eq!(s["ports"][0]["targetPort"], 80);
        assert!(s["ports"][0].get("nodePort").is_none());
        assert_eq!(svc["status"], json!({"loadBalancer": {}}));
    }

    #[test]
    fn dual_stack_and_node_ports_for_load_balancer() {
        let mut other = mk_service(json!({"ports": [{"port": 80}]}));
        prepare(None, &mut other, &store_with(&[]))
            .is_empty()
            .then_some(())
            .unwrap();
        let store = store_with(&[other]);
        let mut svc = mk_service(
            json!({"type": "LoadBalancer", "ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv6"], "ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}),
        );
        svc["metadata"]["name"] = json!("lb");
        assert_eq!(prepare(None, &mut svc, &store), vec![]);
        let s = &svc["spec"];
        assert_eq!(s["ipFamilies"], json!(["IPv6", "IPv4"]));
        assert_eq!(s["clusterIPs"], json!(["2001:db8:ffff::1", "198.51.100.2"]));
        assert_eq!(s["ports"][0]["nodePort"], 30000);
        assert_eq!(s["ports"][1]["nodePort"], 30001);
        assert_eq!(s["externalTrafficPolicy"], "Cluster");
        assert_eq!(s["allocateLoadBalancerNodePorts"], true);
    }

    #[test]
    fn explicit_cluster_ip_checks() {
        let mut a = mk_service(json!({"clusterIP": "198.51.100.7", "ports": [{"port": 80}]}));
        assert!(prepare(None, &mut a, &store_with(&[])).is_empty());
        let store = store_with(&[a]);
        let mut b = mk_service(json!({"clusterIP": "198.51.100.7", "ports": [{"port": 80}]}));
        b["metadata"]["name"] = json!("b");
        let e = prepare(None, &mut b, &store);
        assert!(e[0].to_string().contains("already allocated"), "{e:?}");
        let mut c = mk_service(json!({"clusterIP": "192.0.2.1", "ports": [{"port": 80}]}));
        c["metadata"]["name"] = json!("c");
        assert!(
            prepare(None, &mut c, &store)[0]
                .to_string()
                .contains("not in the valid range")
        );
        let mut d = mk_service(
            json!({"ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "SingleStack", "ports": [{"port": 80}]}),
        );
        assert_eq!(
            prepare(None, &mut d, &store)[0].field,
            "spec.ipFamilyPolicy"
        );
    }

    #[test]
    fn update_keeps_allocations_and_guards_class() {
        let store = store_with(&[]);
        let mut old = mk_service(
            json!({"type": "LoadBalancer", "loadBalancerClass": "ferrolb.io/lb", "ports": [{"port": 80}]}),
        );
        assert!(prepare(None, &mut old, &store).is_empty());
        // An update that omits allocated fields keeps them.
        let mut new = mk_service(
            json!({"type": "LoadBalancer", "loadBalancerClass": "ferrolb.io/lb", "ports": [{"port": 80}]}),
        );
        assert!(prepare(Some(&old), &mut new, &store).is_empty());
        assert_eq!(new["spec"]["clusterIP"], old["spec"]["clusterIP"]);
        assert_eq!(
            new["spec"]["ports"][0]["nodePort"],
            old["spec"]["ports"][0]["nodePort"]
        );
        // The class may not change.
        let mut changed = mk_service(
            json!({"type": "LoadBalancer", "loadBalancerClass": "other.io/lb", "ports": [{"port": 80}]}),
        );
        let e = prepare(Some(&old), &mut changed, &store);
        assert_eq!(e[0].field, "spec.loadBalancerClass");
        assert!(e[0].to_string().contains("may not change once set"));
        // Type ClusterIP drops the node ports and class.
        let mut cip = old.clone();
        cip["spec"]["type"] = json!("ClusterIP");
        assert_eq!(prepare(Some(&old), &mut cip, &store), vec![]);
        assert!(cip["spec"]["ports"][0].get("nodePort").is_none());
        assert!(cip["spec"].get("loadBalancerClass").is_none());
        assert!(cip["spec"].get("externalTrafficPolicy").is_none());
    }

    #[test]
    fn external_ips_and_source_ranges_are_checked() {
        let store = store_with(&[]);
        let mut svc = mk_service(
            json!({"type": "LoadBalancer", "externalIPs": ["192.0.2.5", "nope"], "loadBalancerSourceRanges": ["203.0.113.0/24", "203.0.113.0/33"], "ports": [{"port": 80}]}),
        );
        let e = prepare(None, &mut svc, &store);
        let fields: Vec<&str> = e.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            vec!["spec.externalIPs[1]", "spec.loadBalancerSourceRanges[1]"]
        );
    }

    #[test]
    fn status_ingress_validation() {
        let mut ok = json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"ip": "2001:db8::10"}]}}});
        assert!(validate_status(&mut ok).is_empty());
        assert_eq!(ok["status"]["loadBalancer"]["ingress"][0]["ipMode"], "VIP");
        let mut bad = json!({"status": {"loadBalancer": {"ingress": [{"ip": "not-an-ip"}]}}});
        let e = validate_status(&mut bad);
        assert_eq!(e[0].field, "status.loadBalancer.ingress[0].ip");
        let mut host =
            json!({"status": {"loadBalancer": {"ingress": [{"hostname": "192.0.2.1"}]}}});
        assert_eq!(validate_status(&mut host).len(), 1);
    }
}
