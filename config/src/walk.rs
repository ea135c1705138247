//! Helpers to walk a `serde_yaml_ng::Value` by hand, collecting problems.
//!
//! serde's `deny_unknown_fields` stops at the first unknown field and cannot
//! say which pool it was in; walking the value ourselves lets us report every
//! problem with its full path.

use serde_yaml_ng::{Mapping, Value};

use crate::error::{PoolRef, Problem, ProblemKind};

/// Where in the document we are: the path and the pool (if inside one).
#[derive(Debug, Clone)]
pub(crate) struct Loc {
    pub path: String,
    pub pool: Option<PoolRef>,
}

impl Loc {
    /// The document root.
    pub fn root() -> Self {
        Loc {
            path: String::new(),
            pool: None,
        }
    }

    /// A root with a given path prefix (e.g. `data["cidr-global"]`).
    pub fn at(path: impl Into<String>) -> Self {
        Loc {
            path: path.into(),
            pool: None,
        }
    }

    /// The location of field `key` below this one.
    pub fn field(&self, key: &str) -> Loc {
        let plain = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let path = match (self.path.is_empty(), plain) {
            (true, true) => key.to_string(),
            (false, true) => format!("{}.{key}", self.path),
            (_, false) => format!("{}[{key:?}]", self.path),
        };
        Loc {
            path,
            pool: self.pool.clone(),
        }
    }

    /// The location of list element `i` below this one.
    pub fn index(&self, i: usize) -> Loc {
        Loc {
            path: format!("{}[{i}]", self.path),
            pool: self.pool.clone(),
        }
    }

    /// The same location, attributed to `pool`.
    pub fn in_pool(&self, pool: PoolRef) -> Loc {
        Loc {
            path: self.path.clone(),
            pool: Some(pool),
        }
    }

    /// A problem at this location.
    pub fn problem(&self, kind: ProblemKind, message: impl Into<String>) -> Problem {
        Problem::new(kind, self.path.clone(), message).in_pool(self.pool.clone())
    }

    /// A problem at this location about `value`.
    pub fn problem_value(
        &self,
        kind: ProblemKind,
        value: &Value,
        message: impl Into<String>,
    ) -> Problem {
        self.problem(kind, message).with_value(render(value))
    }

    /// A problem at this location about the string `value`.
    pub fn problem_str(
        &self,
        kind: ProblemKind,
        value: &str,
        message: impl Into<String>,
    ) -> Problem {
        self.problem(kind, message).with_value(format!("{value:?}"))
    }
}

/// A short rendering of a value for error messages: strings quoted, collections compact and cut.
pub(crate) fn render(value: &Value) -> String {
    const MAX: usize = 60;
    let mut s = String::new();
    render_into(value, &mut s, MAX + 1);
    if s.chars().count() > MAX {
        let cut: String = s.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        s
    }
}

fn render_into(value: &Value, out: &mut String, budget: usize) {
    if out.len() > budget {
        return;
    }
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&format!("{s:?}")),
        Value::Sequence(seq) => {
            out.push('[');
            for (i, v) in seq.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_into(v, out, budget);
                if out.len() > budget {
                    return;
                }
            }
            out.push(']');
        }
        Value::Mapping(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render_into(k, out, budget);
                out.push_str(": ");
                render_into(v, out, budget);
                if out.len() > budget {
                    return;
                }
            }
            out.push('}');
        }
        Value::Tagged(t) => {
            out.push_str(&t.tag.to_string());
            out.push(' ');
            render_into(&t.value, out, budget);
        }
    }
}

/// "a string", "a list", ... for "expected X, got Y" messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A wrong-type problem.
pub(crate) fn wrong_type(loc: &Loc, value: &Value, expected: &str) -> Problem {
    let mut msg = format!("expected {expected}, got {}", type_name(value));
    // The classic YAML trap: `"true"` written unquoted in a label map.
    if expected == "a string" && matches!(value, Value::Bool(_) | Value::Number(_)) {
        msg.push_str(&format!(" (quote it: \"{}\")", render(value)));
    }
    loc.problem_value(ProblemKind::WrongType, value, msg)
}

/// Check that `value` is a mapping with string keys and return its entries in
/// document order. Callers match the names they know and send every other one
/// to [`unknown_field`] in their fallback arm, so that problems come out in
/// document order.
///
/// Returns `None` (after reporting) when `value` is not a mapping.
pub(crate) fn fields<'a>(
    value: &'a Value,
    loc: &Loc,
    problems: &mut Vec<Problem>,
) -> Option<Vec<(&'a str, &'a Value)>> {
    let Value::Mapping(map) = value else {
        problems.push(wrong_type(loc, value, "a mapping"));
        return None;
    };
    Some(string_keyed(map, loc, problems))
}

fn string_keyed<'a>(
    map: &'a Mapping,
    loc: &Loc,
    problems: &mut Vec<Problem>,
) -> Vec<(&'a str, &'a Value)> {
    let mut out = Vec::new();
    for (k, v) in map {
        match k {
            Value::String(key) => out.push((key.as_str(), v)),
            _ => problems.push(loc.problem_value(
                ProblemKind::UnknownField,
                k,
                "field names must be strings",
            )),
        }
    }
    out
}

/// An unknown-field problem, suggesting the closest known field.
pub(crate) fn unknown_field(loc: &Loc, key: &str, known: &[&str]) -> Problem {
    let msg = match suggest(key, known) {
        Some(s) => format!("unknown field, did you mean {s:?}?"),
        None => format!("unknown field (known fields: {})", known.join(", ")),
    };
    loc.problem(ProblemKind::UnknownField, msg)
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| !matches!(c, '-' | '_' | '.' | ' '))
            .flat_map(char::to_lowercase)
            .collect()
    };
    let w = norm(word);
    if let Some(c) = candidates.iter().find(|c| norm(c) == w) {
        return Some(c);
    }
    let lw = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&lw, &c.to_lowercase()), *c))
        .filter(|(d, c)| *d <= (c.chars().count() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting insertions, deletions, substitutions and swaps of
/// neighbouring characters (optimal string alignment): "nmae" is one edit from "name".
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j] = distance between a[..i] and b[..j]
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j - 1] + cost)
                .min(d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// A string field; reports a wrong type.
pub(crate) fn string<'a>(
    value: &'a Value,
    loc: &Loc,
    problems: &mut Vec<Problem>,
) -> Option<&'a str> {
    match value {
        Value::String(s) => Some(s),
        other => {
            problems.push(wrong_type(loc, other, "a string"));
            None
        }
    }
}

/// A boolean field; `null` means "use the default".
pub(crate) fn boolean(
    value: &Value,
    loc: &Loc,
    default: bool,
    problems: &mut Vec<Problem>,
) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Null => Some(default),
        other => {
            problems.push(wrong_type(loc, other, "a boolean (true or false)"));
            None
        }
    }
}

/// A list field; reports a wrong type.
pub(crate) fn list<'a>(
    value: &'a Value,
    loc: &Loc,
    problems: &mut Vec<Problem>,
) -> Option<&'a [Value]> {
    match value {
        Value::Sequence(s) => Some(s),
        other => {
            problems.push(wrong_type(loc, other, "a list"));
            None
        }
    }
}

/// A list of strings; every bad element is reported, the good ones are returned
/// with their locations. `None` when the value is not a list at all.
pub(crate) fn string_list<'a>(
    value: &'a Value,
    loc: &Loc,
    problems: &mut Vec<Problem>,
) -> Option<Vec<(&'a str, Loc)>> {
    let items = list(value, loc, problems)?;
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let l = loc.index(i);
        if let Some(s) = string(item, &l, problems) {
            out.push((s, l));
        }
    }
    Some(out)
}

/// True for a DNS-1123 label: 1-63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub(crate) fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The rule text for DNS-1123 labels, for messages.
pub(crate) const DNS1123_RULE: &str =
    "must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_keys_that_are_not_plain() {
        let l = Loc::root()
            .field("l2")
            .field("nodeSelector")
            .field("matchLabels");
        assert_eq!(
            l.field("ferrolb.io/speaker").path,
            r#"l2.nodeSelector.matchLabels["ferrolb.io/speaker"]"#
        );
        assert_eq!(
            Loc::root().field("pools").index(3).field("name").path,
            "pools[3].name"
        );
        assert_eq!(Loc::root().field("").path, r#"[""]"#);
    }

    #[test]
    fn suggestions_catch_case_dashes_and_small_typos() {
        let known = ["name", "addresses", "autoAssign", "avoidBuggyIPs"];
        assert_eq!(suggest("autoassign", &known), Some("autoAssign"));
        assert_eq!(suggest("auto-assign", &known), Some("autoAssign"));
        assert_eq!(suggest("adresses", &known), Some("addresses"));
        assert_eq!(suggest("avoidBuggyIps", &known), Some("avoidBuggyIPs"));
        assert_eq!(suggest("protocol", &known), None);
        assert_eq!(suggest("nmae", &known), Some("name"));
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(edit_distance("nmae", "name"), 1);
    }

    #[test]
    fn render_quotes_strings_and_cuts_long_values() {
        assert_eq!(render(&Value::String("a\"b".into())), r#""a\"b""#);
        assert_eq!(
            render(&serde_yaml_ng::from_str::<Value>("[1, true, x]").unwrap()),
            r#"[1, true, "x"]"#
        );
        let long = Value::String("x".repeat(100));
        let r = render(&long);
        assert_eq!(r.chars().count(), 61);
        assert!(r.ends_with('…'));
    }

    #[test]
    fn dns1123_labels() {
        assert!(is_dns1123_label("lan"));
        assert!(is_dns1123_label("a-1"));
        assert!(is_dns1123_label("0"));
        assert!(!is_dns1123_label(""));
        assert!(!is_dns1123_label("Lan"));
        assert!(!is_dns1123_label("-a"));
        assert!(!is_dns1123_label("a-"));
        assert!(!is_dns1123_label("a_b"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }
}
