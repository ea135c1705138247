//! ferrolb's own format: the `config.yaml` key.
//!
//! ```yaml
//! pools:
//!   - name: lan
//!     addresses: ["192.0.2.0/28", "192.0.2.100-192.0.2.120", "192.0.2.200"]
//!     autoAssign: true
//!     avoidBuggyIPs: false
//!     namespaces: [prod]
//!     serviceSelector: {matchLabels: {tier: edge}}
//!     labels: {vlan: "10"}
//!   - name: iot
//!     addresses: ["198.51.100.0/26"]
//!     labels: {vlan: "20"}
//! l2:
//!   interfaces: [eth0]
//!   nodeSelector: {matchLabels: {ferrolb.io/speaker: "true"}}
//!   policies:
//!     - name: vlan20
//!       poolSelector: {matchLabels: {vlan: "20"}}
//!       interfaces: [eth0.20]
//!       nodeSelector: {matchLabels: {vlan20: "true"}}
//! ```
//!
//! `labels` are the pool's own labels (Kubernetes label syntax), which
//! policies select pools by. `l2.interfaces` and `l2.nodeSelector` apply to the
//! pools no policy covers; a covered pool is announced only as its policies say
//! (see [`crate::model::L2Config`]). The policies are read by [`crate::policy`]:
//! a policy's `pools` must name pools of this configuration, while a
//! `poolSelector` that matches no pool is accepted (as MetalLB accepts it) and
//! pointed out by `check-config`.

use serde_yaml_ng::Value;

use crate::addr::{self, HostBits, Syntax};
use crate::error::{ConfigErrors, PoolRef, Problem, ProblemKind};
use crate::model::{Config, L2Config};
use crate::policy::{self, PoolReference};
use crate::selector;
use crate::validate::{self, RawEntry, RawPool};
use crate::walk::{self, DNS1123_RULE, Loc, is_dns1123_label};

const TOP_FIELDS: &[&str] = &["pools", "l2"];
const POOL_FIELDS: &[&str] = &[
    "name",
    "addresses",
    "autoAssign",
    "avoidBuggyIPs",
    "namespaces",
    "serviceSelector",
    "labels",
];
const L2_FIELDS: &[&str] = &["interfaces", "nodeSelector", "policies"];

/// Parse and validate a ferrolb `config.yaml`.
pub fn parse_ferrolb_yaml(text: &str) -> Result<Config, ConfigErrors> {
    let value = crate::document::load_single(text)?;
    from_value(&value)
}

/// Validate an already-loaded ferrolb document.
pub(crate) fn from_value(value: &Value) -> Result<Config, ConfigErrors> {
    let mut problems = Vec::new();
    let root = Loc::root();
    if value.is_null() {
        return Err(ConfigErrors::single(root.problem(
            ProblemKind::Syntax,
            "the configuration is empty (write `pools: []` for no pools)",
        )));
    }
    let Some(fields) = walk::fields(value, &root, &mut problems) else {
        return Err(ConfigErrors::new(problems));
    };
    let mut pools = Vec::new();
    let mut l2 = L2Config::default();
    let mut refs = Vec::new();
    let mut saw_pools = false;
    for (key, v) in fields {
        let loc = root.field(key);
        match key {
            "pools" => {
                saw_pools = true;
                if let Some(items) = walk::list(v, &loc, &mut problems) {
                    for (i, item) in items.iter().enumerate() {
                        if let Some(p) = pool(item, &loc.index(i), i, &mut problems) {
                            pools.push(p);
                        }
                    }
                }
            }
            "l2" => (l2, refs) = parse_l2(v, &loc, &mut problems),
            _ => problems.push(walk::unknown_field(&loc, key, TOP_FIELDS)),
        }
    }
    if !saw_pools {
        problems.push(
            root.field("pools")
                .problem(ProblemKind::MissingField, "required field is missing"),
        );
    }
    let names: Vec<&str> = pools.iter().filter_map(|p| p.name.as_deref()).collect();
    policy::check_pool_references(&refs, &names, &mut problems);
    validate::finish(pools, l2, problems)
}

fn pool(value: &Value, loc: &Loc, index: usize, problems: &mut Vec<Problem>) -> Option<RawPool> {
    // Name first, so that every later problem can name the pool.
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string);
    let pref = match &name {
        Some(n) => PoolRef::Name(n.clone()),
        None => PoolRef::Index(index),
    };
    let loc = loc.in_pool(pref);
    let fields = walk::fields(value, &loc, problems)?;
    let mut raw = RawPool::new(name, loc.field("name"), loc.field("addresses"));
    let (mut saw_name, mut saw_addresses) = (false, false);
    for (key, v) in fields {
        let floc = loc.field(key);
        match key {
            "name" => {
                saw_name = true;
                walk::string(v, &floc, problems);
            }
            "addresses" => {
                saw_addresses = true;
                read_addresses(v, &floc, &mut raw, problems);
            }
            "autoAssign" => {
                if let Some(b) = walk::boolean(v, &floc, true, problems) {
                    raw.auto_assign = b;
                }
            }
            "avoidBuggyIPs" => {
                if let Some(b) = walk::boolean(v, &floc, false, problems) {
                    raw.avoid_buggy_ips = b;
                }
            }
            "namespaces" => raw.namespaces = namespaces(v, &floc, problems),
            "serviceSelector" => {
                if !v.is_null() {
                    raw.service_selector = selector::parse(v, &floc, problems);
                }
            }
            "labels" => {
                raw.labels = selector::label_map(v, &floc, ProblemKind::InvalidValue, problems)
            }
            _ => problems.push(walk::unknown_field(&floc, key, POOL_FIELDS)),
        }
    }
    if !saw_name {
        problems.push(
            loc.field("name")
                .problem(ProblemKind::MissingField, "required field is missing"),
        );
    }
    if !saw_addresses {
        problems.push(
            loc.field("addresses")
                .problem(ProblemKind::MissingField, "required field is missing"),
        );
        raw.addresses_broken = true;
    }
    Some(raw)
}

/// Read an `addresses` list (ferrolb and MetalLB spell entries the same way).
pub(crate) fn read_addresses(
    value: &Value,
    loc: &Loc,
    raw: &mut RawPool,
    problems: &mut Vec<Problem>,
) {
    let before = problems.len();
    if let Some(items) = walk::list(value, loc, problems) {
        // One pass, so problems come out in the order of the entries.
        for (i, item) in items.iter().enumerate() {
            let l = loc.index(i);
            let Some(text) = walk::string(item, &l, problems) else {
                continue;
            };
            match addr::parse_entry(text, Syntax::Any, HostBits::Reject) {
                Ok(e) => raw.entries.push(RawEntry {
                    range: e.range,
                    path: l.path.clone(),
                    text: text.to_string(),
                }),
                Err((kind, msg)) => problems.push(l.problem_str(kind, text, msg)),
            }
        }
    }
    if problems.len() != before {
        raw.addresses_broken = true;
    }
}

fn namespaces(value: &Value, loc: &Loc, problems: &mut Vec<Problem>) -> Option<Vec<String>> {
    if value.is_null() {
        return None;
    }
    let items = walk::string_list(value, loc, problems)?;
    if items.is_empty() && value.as_sequence().is_some_and(|s| s.is_empty()) {
        problems.push(loc.problem(
            ProblemKind::InvalidValue,
            "an empty list allows no namespace at all; leave the field out to allow every namespace",
        ));
        return None;
    }
    let mut out = Vec::new();
    for (ns, l) in items {
        if !is_dns1123_label(ns) {
            problems.push(l.problem_str(
                ProblemKind::InvalidName,
                ns,
                format!("invalid namespace name: {DNS1123_RULE}"),
            ));
        } else if !out.iter().any(|n| n == ns) {
            out.push(ns.to_string());
        }
    }
    Some(out)
}

fn parse_l2(
    value: &Value,
    loc: &Loc,
    problems: &mut Vec<Problem>,
) -> (L2Config, Vec<PoolReference>) {
    let mut l2 = L2Config::default();
    let mut refs = Vec::new();
    if value.is_null() {
        return (l2, refs);
    }
    let Some(fields) = walk::fields(value, loc, problems) else {
        return (l2, refs);
    };
    for (key, v) in fields {
        let floc = loc.field(key);
        match key {
            "interfaces" => {
                if v.is_null() {
                    continue;
                }
                if let Some(items) = walk::string_list(v, &floc, problems) {
                    for (name, l) in items {
                        match check_interface(name) {
                            Ok(()) if !l2.interfaces.iter().any(|i| i == name) => {
                                l2.interfaces.push(name.to_string())
                            }
                            Ok(()) => {}
                            Err(msg) => {
                                problems.push(l.problem_str(ProblemKind::InvalidName, name, msg))
                            }
                        }
                    }
                }
            }
            "nodeSelector" => {
                if !v.is_null() {
                    l2.node_selector = selector::parse(v, &floc, problems);
                }
            }
            "policies" => (l2.policies, refs) = policy::parse_policies(v, &floc, problems),
            _ => problems.push(walk::unknown_field(&floc, key, L2_FIELDS)),
        }
    }
    (l2, refs)
}

/// Linux interface names: 1-15 bytes, no '/', no whitespace, not `.` or `..`.
pub(crate) fn check_interface(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(
            "invalid interface name: must be 1-15 characters without '/', ':' or spaces".into(),
        );
    }
    Ok(())
}
