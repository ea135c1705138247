//! Reading a Kubernetes label selector (`matchLabels`, `matchExpressions`),
//! with the same syntax rules the API server applies to labels.

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use crate::error::{Problem, ProblemKind};
use crate::model::{LabelSelector, SelectorRequirement};
use crate::walk::{self, Loc};

const SELECTOR_FIELDS: &[&str] = &["matchLabels", "matchExpressions"];
const EXPRESSION_FIELDS: &[&str] = &["key", "operator", "values"];
const OPERATORS: &[&str] = &["In", "NotIn", "Exists", "DoesNotExist"];

/// Parse a selector; `None` (after reporting) when anything in it is wrong.
pub(crate) fn parse(
    value: &Value,
    loc: &Loc,
    problems: &mut Vec<Problem>,
) -> Option<LabelSelector> {
    let before = problems.len();
    let fields = walk::fields(value, loc, problems)?;
    let mut sel = LabelSelector::default();
    for (key, v) in fields {
        let floc = loc.field(key);
        match key {
            "matchLabels" => {
                sel.match_labels = label_map(v, &floc, ProblemKind::InvalidSelector, problems)
            }
            "matchExpressions" => sel.match_expressions = match_expressions(v, &floc, problems),
            _ => problems.push(walk::unknown_field(&floc, key, SELECTOR_FIELDS)),
        }
    }
    (problems.len() == before).then_some(sel)
}

/// A mapping of label keys to values (a selector's `matchLabels`, a pool's
/// `labels`), every key and value checked as the API server checks labels;
/// syntax problems are of `kind`.
pub(crate) fn label_map(
    value: &Value,
    loc: &Loc,
    kind: ProblemKind,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let map = match value {
        Value::Null => return out,
        Value::Mapping(m) => m,
        other => {
            problems.push(walk::wrong_type(
                loc,
                other,
                "a mapping of label keys to values",
            ));
            return out;
        }
    };
    for (k, v) in map {
        let Value::String(key) = k else {
            problems.push(loc.problem_value(kind, k, "label keys must be strings"));
            continue;
        };
        let kloc = loc.field(key);
        if let Err(msg) = check_label_key(key) {
            problems.push(kloc.problem_str(kind, key, msg));
        }
        if let Some(val) = walk::string(v, &kloc, problems) {
            if let Err(msg) = check_label_value(val) {
                problems.push(kloc.problem_str(kind, val, msg));
            }
            out.insert(key.clone(), val.to_string());
        }
    }
    out
}

fn match_expressions(
    value: &Value,
    loc: &Loc,
    problems: &mut Vec<Problem>,
) -> Vec<SelectorRequirement> {
    let mut out = Vec::new();
    if value.is_null() {
        return out;
    }
    let Some(items) = walk::list(value, loc, problems) else {
        return out;
    };
    for (i, item) in items.iter().enumerate() {
        let iloc = loc.index(i);
        if let Some(req) = expression(item, &iloc, problems) {
            out.push(req);
        }
    }
    out
}

fn expression(
    value: &Value,
    loc: &Loc,
    problems: &mut Vec<Problem>,
) -> Option<SelectorRequirement> {
    let before = problems.len();
    let fields = walk::fields(value, loc, problems)?;
    let (mut key, mut operator, mut values) = (None, None, None);
    for (name, v) in fields {
        let floc = loc.field(name);
        match name {
            "key" => {
                if let Some(k) = walk::string(v, &floc, problems) {
                    if let Err(msg) = check_label_key(k) {
                        problems.push(floc.problem_str(ProblemKind::InvalidSelector, k, msg));
                    }
                    key = Some(k.to_string());
                }
            }
            "operator" => {
                match walk::string(v, &floc, problems) {
                    Some(op) if OPERATORS.contains(&op) => operator = Some(op),
                    Some(op) => {
                        let hint = match walk::suggest(op, OPERATORS) {
                            Some(s) => format!("; did you mean {s:?}?"),
                            None => String::new(),
                        };
                        problems.push(floc.problem_str(
                        ProblemKind::InvalidSelector,
                        op,
                        format!("unknown operator (expected In, NotIn, Exists or DoesNotExist){hint}"),
                    ));
                    }
                    None => {}
                }
            }
            "values" => {
                if v.is_null() {
                    values = Some(Vec::new());
                    continue;
                }
                if let Some(vs) = walk::string_list(v, &floc, problems) {
                    let mut list = Vec::new();
                    for (s, l) in vs {
                        if let Err(msg) = check_label_value(s) {
                            problems.push(l.problem_str(ProblemKind::InvalidSelector, s, msg));
                        }
                        list.push(s.to_string());
                    }
                    values = Some(list);
                }
            }
            _ => problems.push(walk::unknown_field(&floc, name, EXPRESSION_FIELDS)),
        }
    }
    for required in ["key", "operator"] {
        if !has_field(value, required) {
            problems.push(
                loc.field(required)
                    .problem(ProblemKind::MissingField, "required field is missing"),
            );
        }
    }
    // The operator/values rules only make sense once the entry itself is well-formed.
    let (key, operator) = match (key, operator) {
        (Some(k), Some(o)) if problems.len() == before => (k, o),
        _ => return None,
    };
    let values = values.unwrap_or_default();
    let vloc = loc.field("values");
    match operator {
        "In" | "NotIn" if values.is_empty() => {
            problems.push(vloc.problem(
                ProblemKind::InvalidSelector,
                format!("operator {operator} needs at least one value"),
            ));
            None
        }
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            problems.push(vloc.problem(
                ProblemKind::InvalidSelector,
                format!("operator {operator} takes no values"),
            ));
            None
        }
        "In" => Some(SelectorRequirement::In(key, values)),
        "NotIn" => Some(SelectorRequirement::NotIn(key, values)),
        "Exists" => Some(SelectorRequirement::Exists(key)),
        _ => Some(SelectorRequirement::DoesNotExist(key)),
    }
}

fn has_field(value: &Value, name: &str) -> bool {
    value.as_mapping().is_some_and(|m| m.contains_key(name))
}

/// A label key: an optional DNS-subdomain prefix and `/`, then a name.
fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let subdomain_ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            });
        if !subdomain_ok {
            return Err("invalid label key: the prefix before '/' must be a DNS subdomain (lowercase letters, digits, '-' and '.')".into());
        }
    }
    if name.is_empty() || !is_label_name(name) {
        return Err("invalid label key: the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit".into());
    }
    Ok(())
}

fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err("invalid label value: must be empty or 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit".into())
    }
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A label selector as a YAML flow mapping with JSON-quoted strings, as
/// `convert` writes it and `check-config` shows it:
/// `{matchLabels: {"tier": "edge"}}`.
pub(crate) fn flow(sel: &LabelSelector) -> String {
    let mut parts = Vec::new();
    if !sel.match_labels.is_empty() {
        let labels: Vec<String> = sel
            .match_labels
            .iter()
            .map(|(k, v)| format!("{}: {}", q(k), q(v)))
            .collect();
        parts.push(format!("matchLabels: {{{}}}", labels.join(", ")));
    }
    if !sel.match_expressions.is_empty() {
        let exprs: Vec<String> = sel
            .match_expressions
            .iter()
            .map(|r| match r {
                SelectorRequirement::In(k, vs) => format!(
                    "{{key: {}, operator: In, values: {}}}",
                    q(k),
                    list(vs.iter().map(|v| q(v)))
                ),
                SelectorRequirement::NotIn(k, vs) => format!(
                    "{{key: {}, operator: NotIn, values: {}}}",
                    q(k),
                    list(vs.iter().map(|v| q(v)))
                ),
                SelectorRequirement::Exists(k) => format!("{{key: {}, operator: Exists}}", q(k)),
                SelectorRequirement::DoesNotExist(k) => {
                    format!("{{key: {}, operator: DoesNotExist}}", q(k))
                }
            })
            .collect();
        parts.push(format!("matchExpressions: [{}]", exprs.join(", ")));
    }
    format!("{{{}}}", parts.join(", "))
}

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string always serializes")
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str) -> (Option<LabelSelector>, Vec<String>) {
        let v: Value = serde_yaml_ng::from_str(yaml).unwrap();
        let mut problems = Vec::new();
        let sel = parse(&v, &Loc::at("sel"), &mut problems);
        (sel, problems.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn full_selector() {
        let (sel, problems) = run("matchLabels: {tier: edge, ferrolb.io/speaker: \"true\"}\n\
             matchExpressions:\n\
             - {key: env, operator: In, values: [prod, staging]}\n\
             - {key: env, operator: NotIn, values: [dev]}\n\
             - {key: team, operator: Exists}\n\
             - {key: legacy, operator: DoesNotExist, values: []}\n");
        assert_eq!(problems, Vec::<String>::new());
        let sel = sel.unwrap();
        assert_eq!(
            sel.match_labels
                .get("ferrolb.io/speaker")
                .map(String::as_str),
            Some("true")
        );
        assert_eq!(
            sel.match_expressions,
            vec![
                SelectorRequirement::In("env".into(), vec!["prod".into(), "staging".into()]),
                SelectorRequirement::NotIn("env".into(), vec!["dev".into()]),
                SelectorRequirement::Exists("team".into()),
                SelectorRequirement::DoesNotExist("legacy".into()),
            ]
        );
    }

    #[test]
    fn every_selector_problem_is_reported() {
        let (sel, problems) = run(
            "matchLabels: {tier: true, \"-bad\": x, ok: \"not valid!\"}\n\
             matchExpressions:\n\
             - {key: env, operator: in, values: [prod]}\n\
             - {key: env, operator: In}\n\
             - {key: team, operator: Exists, values: [x]}\n\
             - {operator: Exists}\n\
             - {key: a, operator: Like}\n\
             - {key: a, operator: In, value: [x]}\n",
        );
        assert!(sel.is_none());
        assert_eq!(
            problems,
            vec![
                r#"sel.matchLabels.tier = true: expected a string, got a boolean (quote it: "true")"#,
                r#"sel.matchLabels.-bad = "-bad": invalid label key: the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"#,
                r#"sel.matchLabels.ok = "not valid!": invalid label value: must be empty or 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"#,
                r#"sel.matchExpressions[0].operator = "in": unknown operator (expected In, NotIn, Exists or DoesNotExist); did you mean "In"?"#,
                "sel.matchExpressions[1].values: operator In needs at least one value",
                "sel.matchExpressions[2].values: operator Exists takes no values",
                "sel.matchExpressions[3].key: required field is missing",
                r#"sel.matchExpressions[4].operator = "Like": unknown operator (expected In, NotIn, Exists or DoesNotExist)"#,
                r#"sel.matchExpressions[5].value: unknown field, did you mean "values"?"#,
            ]
        );
    }

    #[test]
    fn label_keys() {
        assert!(check_label_key("ferrolb.io/speaker").is_ok());
        assert!(check_label_key("app.kubernetes.io/name").is_ok());
        assert!(check_label_key("tier").is_ok());
        assert!(check_label_key("Tier_1.x").is_ok());
        assert!(check_label_key("/x").is_err());
        assert!(check_label_key("Foo.io/x").is_err());
        assert!(check_label_key("x/").is_err());
        assert!(check_label_key("a/b/c").is_err());
        assert!(check_label_key(&"a".repeat(64)).is_err());
    }
}
