//! ferrolb's per-pool announcement policies: the `l2.policies` list of
//! `config.yaml` (the model is [`L2Policy`]).
//!
//! ```yaml
//! l2:
//!   policies:
//!     - name: vlan20                    # required, a DNS-1123 label, unique
//!       pools: [iot]                    # pools by name (each must exist) ...
//!       poolSelector:                   # ... and/or by their labels
//!         matchLabels: {vlan: "20"}
//!       interfaces: [eth0.20, "bond*"]  # names, or globs with * and ?
//!       interfaceRegexes: ["^enp[0-9]+s0\\.20$"]
//!       nodeSelector: {matchLabels: {vlan20: "true"}}
//!       serviceSelector: {matchLabels: {exposure: iot}}
//! ```
//!
//! A `poolSelector` that matches no pool is not an error: MetalLB accepts such
//! an advertisement too, and a pool labelled later is then covered.
//! `check-config` lists the policies that cover no pool.

use serde_yaml_ng::Value;

use crate::error::{Problem, ProblemKind};
use crate::ferrolb::check_interface;
use crate::model::{InterfaceMatcher, L2Policy, PoolChoice};
use crate::selector;
use crate::walk::{self, DNS1123_RULE, Loc, is_dns1123_label};

/// The fields of one policy, in the documented order.
pub(crate) const POLICY_FIELDS: &[&str] = &[
    "name",
    "pools",
    "poolSelector",
    "interfaces",
    "interfaceRegexes",
    "nodeSelector",
    "serviceSelector",
];

/// Compiled interface regexes are kept small: interface names are at most 15
/// bytes, and a configuration must not make every speaker allocate much.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Characters that make an `interfaces` entry look like a regular expression or
/// a character class, which it is not: such an entry would silently never match.
const REGEX_LOOKING: &[char] = &['[', ']', '(', ')', '{', '}', '^', '$', '\\', '|', '+'];

/// A pool named in some policy's `pools`, checked once every pool has been read
/// (`l2` may come before `pools` in the document).
#[derive(Debug, Clone)]
pub(crate) struct PoolReference {
    /// The name as written.
    pub name: String,
    /// Where it is written, e.g. `l2.policies[1].pools[0]`.
    pub loc: Loc,
}

/// Reads `l2.policies`. Returns the policies that were read without a problem
/// (only meaningful when no problem was found at all) and every pool name
/// they refer to, for [`check_pool_references`].
pub(crate) fn parse_policies(
    value: &Value,
    loc: &Loc,
    problems: &mut Vec<Problem>,
) -> (Vec<L2Policy>, Vec<PoolReference>) {
    let mut policies = Vec::new();
    let mut refs = Vec::new();
    if value.is_null() {
        return (policies, refs);
    }
    let Some(items) = walk::list(value, loc, problems) else {
        return (policies, refs);
    };
    // (name, where it was first defined)
    let mut seen: Vec<(String, String)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let before = problems.len();
        let p = policy(item, &loc.index(i), &mut seen, &mut refs, problems);
        if let Some(p) = p.filter(|_| problems.len() == before) {
            policies.push(p);
        }
    }
    (policies, refs)
}

/// Reports every policy's pool name that is none of `pool_names`.
pub(crate) fn check_pool_references(
    refs: &[PoolReference],
    pool_names: &[&str],
    problems: &mut Vec<Problem>,
) {
    for r in refs {
        if pool_names.contains(&r.name.as_str()) {
            continue;
        }
        let msg = match walk::suggest(&r.name, pool_names) {
            Some(s) => format!("no such pool in this configuration; did you mean {s:?}?"),
            None => "no such pool in this configuration".to_string(),
        };
        problems.push(r.loc.problem_str(ProblemKind::InvalidValue, &r.name, msg));
    }
}

/// One policy; `None` when its name is missing or not a string (the other
/// fields are still checked). `seen` holds the names of the policies before it.
fn policy(
    value: &Value,
    loc: &Loc,
    seen: &mut Vec<(String, String)>,
    refs: &mut Vec<PoolReference>,
    problems: &mut Vec<Problem>,
) -> Option<L2Policy> {
    let fields = walk::fields(value, loc, problems)?;
    let mut name = None;
    let mut pools = PoolChoice::default();
    let mut names = Vec::new();
    let mut regexes = Vec::new();
    let mut node_selector = None;
    let mut service_selector = None;
    let mut saw_name = false;
    for (key, v) in fields {
        let floc = loc.field(key);
        match key {
            "name" => {
                saw_name = true;
                if let Some(n) = walk::string(v, &floc, problems) {
                    if n.is_empty() {
                        problems.push(floc.problem_str(
                            ProblemKind::InvalidName,
                            n,
                            "policy name must not be empty",
                        ));
                    } else if !is_dns1123_label(n) {
                        problems.push(floc.problem_str(
                            ProblemKind::InvalidName,
                            n,
                            format!("invalid policy name: {DNS1123_RULE}"),
                        ));
                    }
                    match seen.iter().find(|(s, _)| s == n) {
                        Some((_, first)) => problems.push(floc.problem_str(
                            ProblemKind::DuplicateName,
                            n,
                            format!("duplicate policy name (first defined at {first})"),
                        )),
                        None => seen.push((n.to_string(), floc.path.clone())),
                    }
                    name = Some(n.to_string());
                }
            }
            "pools" => pools.names = pool_names(v, &floc, refs, problems),
            "poolSelector" => {
                if !v.is_null() {
                    pools.selector = selector::parse(v, &floc, problems);
                }
            }
            "interfaces" => names = interface_names(v, &floc, problems),
            "interfaceRegexes" => regexes = interface_regexes(v, &floc, problems),
            "nodeSelector" => {
                if !v.is_null() {
                    node_selector = selector::parse(v, &floc, problems);
                }
            }
            "serviceSelector" => {
                if !v.is_null() {
                    service_selector = selector::parse(v, &floc, problems);
                }
            }
            _ => problems.push(walk::unknown_field(&floc, key, POLICY_FIELDS)),
        }
    }
    if !saw_name {
        problems.push(
            loc.field("name")
                .problem(ProblemKind::MissingField, "required field is missing"),
        );
    }
    // Names and globs first, then regexes, whatever the order of the fields:
    // one configuration has one model.
    names.extend(regexes);
    Some(L2Policy {
        name: name?,
        pools,
        interfaces: names,
        node_selector,
        service_selector,
    })
}

fn pool_names(
    value: &Value,
    loc: &Loc,
    refs: &mut Vec<PoolReference>,
    problems: &mut Vec<Problem>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if value.is_null() {
        return out;
    }
    let Some(items) = walk::string_list(value, loc, problems) else {
        return out;
    };
    if value.as_sequence().is_some_and(|s| s.is_empty()) {
        // Left out, the field means "every pool" (with no poolSelector); an empty
        // list reads as "no pool", so it is refused rather than guessed.
        problems.push(loc.problem(
            ProblemKind::InvalidValue,
            "an empty list names no pool; leave the field out (a policy with neither pools nor poolSelector covers every pool)",
        ));
        return out;
    }
    for (name, l) in items {
        refs.push(PoolReference {
            name: name.to_string(),
            loc: l,
        });
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    out
}

/// The `interfaces` entries: a name, or a glob when it holds `*` or `?`.
fn interface_names(value: &Value, loc: &Loc, problems: &mut Vec<Problem>) -> Vec<InterfaceMatcher> {
    matchers(
        value,
        loc,
        problems,
        ProblemKind::InvalidName,
        interface_matcher,
    )
}

/// The `interfaceRegexes` entries.
fn interface_regexes(
    value: &Value,
    loc: &Loc,
    problems: &mut Vec<Problem>,
) -> Vec<InterfaceMatcher> {
    matchers(
        value,
        loc,
        problems,
        ProblemKind::InvalidValue,
        compile_regex,
    )
}

/// A list of strings read with `parse`, duplicates dropped; each refused entry is
/// reported as `kind` at its own place, in the order of the entries.
fn matchers(
    value: &Value,
    loc: &Loc,
    problems: &mut Vec<Problem>,
    kind: ProblemKind,
    parse: fn(&str) -> Result<InterfaceMatcher, String>,
) -> Vec<InterfaceMatcher> {
    let mut out = Vec::new();
    if value.is_null() {
        return out;
    }
    let Some(items) = walk::list(value, loc, problems) else {
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        let l = loc.index(i);
        let Some(entry) = walk::string(item, &l, problems) else {
            continue;
        };
        match parse(entry) {
            Ok(m) if !out.contains(&m) => out.push(m),
            Ok(_) => {}
            Err(msg) => problems.push(l.problem_str(kind, entry, msg)),
        }
    }
    out
}

/// An `interfaces` entry as ferrolb reads it, or why it is refused.
pub(crate) fn interface_matcher(entry: &str) -> Result<InterfaceMatcher, String> {
    let glob = entry.contains(['*', '?']);
    if check_interface(entry).is_err() {
        return Err(if glob {
            "invalid interface pattern: must be 1-15 characters without '/', ':' or spaces".into()
        } else {
            "invalid interface name: must be 1-15 characters without '/', ':' or spaces".into()
        });
    }
    if entry.contains(REGEX_LOOKING) {
        return Err("not an interface name or glob (only * and ? are special): write regular expressions in interfaceRegexes".into());
    }
    Ok(if glob {
        InterfaceMatcher::Glob(entry.to_string())
    } else {
        InterfaceMatcher::Name(entry.to_string())
    })
}

/// An interface regular expression (Cilium's syntax, which the `regex` crate
/// shares), or the `regex` crate's reason for refusing it.
pub(crate) fn compile_regex(text: &str) -> Result<InterfaceMatcher, String> {
    regex::RegexBuilder::new(text)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(InterfaceMatcher::Regex)
        .map_err(|e| format!("invalid regular expression: {}", regex_message(&e)))
}

/// The `regex` crate's message on one line: a syntax error is printed with the
/// pattern and a caret line, of which the last `error: ...` line says it all.
fn regex_message(e: &regex::Error) -> String {
    let text = e.to_string();
    match text.lines().rev().find_map(|l| l.strip_prefix("error: ")) {
        Some(m) => m.to_string(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_with_star_or_question_mark_are_globs() {
        assert_eq!(
            interface_matcher("eth0.20"),
            Ok(InterfaceMatcher::Name("eth0.20".into()))
        );
        assert_eq!(
            interface_matcher("eth0.*"),
            Ok(InterfaceMatcher::Glob("eth0.*".into()))
        );
        assert_eq!(
            interface_matcher("enp?s0"),
            Ok(InterfaceMatcher::Glob("enp?s0".into()))
        );
        assert!(interface_matcher("eth[0-3]").is_err());
        assert!(interface_matcher("^eth0$").is_err());
    }

    #[test]
    fn regex_errors_are_one_line() {
        let Err(msg) = compile_regex("eth[") else {
            panic!("compiled")
        };
        assert_eq!(msg, "invalid regular expression: unclosed character class");
        let Err(msg) = compile_regex("(a{1000}){1000}") else {
            panic!("compiled")
        };
        assert!(
            msg.starts_with("invalid regular expression: ") && !msg.contains('\n'),
            "{msg}"
        );
    }
}
