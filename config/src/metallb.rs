//! MetalLB's legacy ConfigMap (key `config`), read as it is.
//!
//! ```yaml
//! address-pools:
//! - name: default
//!   protocol: layer2
//!   addresses: [192.0.2.10-192.0.2.20]
//!   auto-assign: true
//!   avoid-buggy-ips: false
//! ```
//!
//! Only layer-2 pools can be served; anything about BGP is an error that says so,
//! rather than a pool silently left out.

use serde_yaml_ng::Value;

use crate::error::{ConfigErrors, PoolRef, Problem, ProblemKind};
use crate::ferrolb::read_addresses;
use crate::model::{Config, L2Config};
use crate::validate::{self, RawPool};
use crate::walk::{self, Loc};

const TOP_FIELDS: &[&str] = &["address-pools", "peers", "bgp-communities", "bfd-profiles"];
const BGP_TOP_FIELDS: &[&str] = &["peers", "bgp-communities", "bfd-profiles"];
const POOL_FIELDS: &[&str] = &[
    "name",
    "protocol",
    "addresses",
    "auto-assign",
    "avoid-buggy-ips",
    "bgp-advertisements",
];
const PROTOCOLS: &[&str] = &["layer2", "bgp"];

/// Parse and validate the text of a MetalLB legacy `config` key.
pub fn parse_metallb_legacy(text: &str) -> Result<Config, ConfigErrors> {
    let value = crate::document::load_single(text)?;
    from_value(&value)
}

/// Validate an already-loaded MetalLB legacy document.
pub(crate) fn from_value(value: &Value) -> Result<Config, ConfigErrors> {
    let mut problems = Vec::new();
    let root = Loc::root();
    if value.is_null() {
        return Err(ConfigErrors::single(
            root.problem(ProblemKind::Syntax, "the configuration is empty"),
        ));
    }
    let Some(fields) = walk::fields(value, &root, &mut problems) else {
        return Err(ConfigErrors::new(problems));
    };
    let mut pools = Vec::new();
    let mut saw_pools = false;
    for (key, v) in fields {
        let loc = root.field(key);
        if BGP_TOP_FIELDS.contains(&key) {
            // An empty list says nothing; a populated one configures BGP we would not do.
            if !is_empty(v) {
                problems.push(loc.problem(
                    ProblemKind::Unsupported,
                    "BGP is not supported: ferrolb announces addresses at layer 2 only; remove this section",
                ));
            }
            continue;
        }
        if key != "address-pools" {
            problems.push(walk::unknown_field(&loc, key, TOP_FIELDS));
            continue;
        }
        saw_pools = true;
        if let Some(items) = walk::list(v, &loc, &mut problems) {
            for (i, item) in items.iter().enumerate() {
                if let Some(p) = pool(item, &loc.index(i), i, &mut problems) {
                    pools.push(p);
                }
            }
        }
    }
    if !saw_pools {
        problems.push(
            root.field("address-pools")
                .problem(ProblemKind::MissingField, "required field is missing"),
        );
    }
    validate::finish(pools, L2Config::default(), problems)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        _ => false,
    }
}

fn pool(value: &Value, loc: &Loc, index: usize, problems: &mut Vec<Problem>) -> Option<RawPool> {
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
    raw.avoid_field = "avoid-buggy-ips";
    let (mut saw_name, mut saw_protocol, mut saw_addresses) = (false, false, false);
    for (key, v) in fields {
        let floc = loc.field(key);
        match key {
            "name" => {
                saw_name = true;
                walk::string(v, &floc, problems);
            }
            "protocol" => {
                saw_protocol = true;
                match walk::string(v, &floc, problems) {
                    Some("layer2") => {}
                    Some("bgp") => problems.push(floc.problem_str(
                        ProblemKind::Unsupported,
                        "bgp",
                        "BGP is not supported: ferrolb announces addresses at layer 2 only; use protocol: layer2",
                    )),
                    Some(other) => {
                        let hint = match walk::suggest(other, PROTOCOLS) {
                            Some(s) => format!("; did you mean {s:?}?"),
                            None => String::new(),
                        };
                        problems.push(floc.problem_str(
                            ProblemKind::Unsupported,
                            other,
                            format!("unknown protocol (ferrolb supports layer2){hint}"),
                        ));
                    }
                    None => {}
                }
            }
            "addresses" => {
                saw_addresses = true;
                read_addresses(v, &floc, &mut raw, problems);
            }
            "auto-assign" => {
                if let Some(b) = walk::boolean(v, &floc, true, problems) {
                    raw.auto_assign = b;
                }
            }
            "avoid-buggy-ips" => {
                if let Some(b) = walk::boolean(v, &floc, false, problems) {
                    raw.avoid_buggy_ips = b;
                }
            }
            "bgp-advertisements" => {
                if !is_empty(v) {
                    problems.push(floc.problem(
                        ProblemKind::Unsupported,
                        "BGP is not supported: ferrolb announces addresses at layer 2 only; remove this field",
                    ));
                }
            }
            _ => problems.push(walk::unknown_field(&floc, key, POOL_FIELDS)),
        }
    }
    for (saw, field) in [
        (saw_name, "name"),
        (saw_protocol, "protocol"),
        (saw_addresses, "addresses"),
    ] {
        if !saw {
            problems.push(
                loc.field(field)
                    .problem(ProblemKind::MissingField, "required field is missing"),
            );
        }
    }
    if !saw_addresses {
        raw.addresses_broken = true;
    }
    Some(raw)
}
