//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, exists, `!`exists, `>`, `<`) and field
//! selectors (`=`, `==`, `!=` on a fixed set of field labels per resource), as kube-apiserver parses them.

use serde_json::{Map, Value};

use crate::registry::ResourceDef;

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LabelSelector(Vec<LabelReq>);

fn valid_key(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'))
    });
    name_ok && prefix_ok
}

/// Whether `v` is a valid label value (empty, or up to 63 alphanumerics with `-_.` inside).
pub fn valid_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// Whether `k` is a valid label/annotation key (`[prefix/]name`).
pub fn valid_label_key(k: &str) -> bool {
    valid_key(k)
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Result<Vec<&str>, String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err(format!("unexpected ')' at position {i}"));
                }
            }
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses".into());
    }
    out.push(&s[start..]);
    Ok(out)
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self::default());
        }
        let mut reqs = Vec::new();
        for term in split_top(s)? {
            let term = term.trim();
            if term.is_empty() {
                return Err(format!("unable to parse requirement: empty term in {s:?}"));
            }
            reqs.push(Self::parse_term(term)?);
        }
        Ok(Self(reqs))
    }

    fn parse_term(term: &str) -> Result<LabelReq, String> {
        let key_checked = |k: &str| -> Result<String, String> {
            let k = k.trim();
            if valid_key(k) {
                Ok(k.to_string())
            } else {
                Err(format!("invalid label key {k:?} in {term:?}"))
            }
        };
        let value_checked = |v: &str| -> Result<String, String> {
            let v = v.trim();
            if valid_label_value(v) {
                Ok(v.to_string())
            } else {
                Err(format!("invalid label value {v:?} in {term:?}"))
            }
        };
        if let Some(rest) = term.strip_prefix('!') {
            return Ok(LabelReq::NotExists(key_checked(rest)?));
        }
        if let Some(open) = term.find('(') {
            if !term.ends_with(')') {
                return Err(format!(
                    "unable to parse requirement {term:?}: expected ')'"
                ));
            }
            let head: Vec<&str> = term[..open].split_whitespace().collect();
            if head.len() != 2 {
                return Err(format!(
                    "unable to parse requirement {term:?}: expected 'key in (...)' or 'key notin (...)'"
                ));
            }
            let key = key_checked(head[0])?;
            let values = term[open + 1..term.len() - 1]
                .split(',')
                .map(value_checked)
                .collect::<Result<Vec<_>, _>>()?;
            return match head[1] {
                "in" => Ok(LabelReq::In(key, values)),
                "notin" => Ok(LabelReq::NotIn(key, values)),
                op => Err(format!(
                    "unable to parse requirement {term:?}: unknown operator {op:?}"
                )),
            };
        }
        if let Some((k, v)) = term.split_once("!=") {
            return Ok(LabelReq::NotEq(key_checked(k)?, value_checked(v)?));
        }
        if let Some((k, v)) = term.split_once("==") {
            return Ok(LabelReq::Eq(key_checked(k)?, value_checked(v)?));
        }
        if let Some((k, v)) = term.split_once('=') {
            return Ok(LabelReq::Eq(key_checked(k)?, value_checked(v)?));
        }
        for (op, gt) in [('>', true), ('<', false)] {
            if let Some((k, v)) = term.split_once(op) {
                let n: i64 = v
                    .trim()
                    .parse()
                    .map_err(|_| format!("invalid integer value {:?} in {term:?}", v.trim()))?;
                let k = key_checked(k)?;
                return Ok(if gt {
                    LabelReq::Gt(k, n)
                } else {
                    LabelReq::Lt(k, n)
                });
            }
        }
        Ok(LabelReq::Exists(key_checked(term)?))
    }

    /// Whether the selector matches an object's labels.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }

    /// Whether it is the empty selector.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
struct FieldReq {
    label: String,
    value: String,
    negate: bool,
}

/// A parsed field selector; the empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldSelector(Vec<FieldReq>);

/// Splits on `sep` not preceded by a backslash, and unescapes `\,`, `\=`, `\\`.
fn split_escaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    out
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter, accepting only the labels `def` supports.
    pub fn parse(s: &str, def: &ResourceDef) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self::default());
        }
        let mut reqs = Vec::new();
        for term in split_escaped(s, ',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            // Find the first unescaped operator.
            let bytes: Vec<char> = term.chars().collect();
            let mut found = None;
            let mut i = 0;
            while i < bytes.len() {
                match bytes[i] {
                    '\\' => i += 1,
                    '!' if bytes.get(i + 1) == Some(&'=') => {
                        found = Some((i, 2, true));
                        break;
                    }
                    '=' if bytes.get(i + 1) == Some(&'=') => {
                        found = Some((i, 2, false));
                        break;
                    }
                    '=' => {
                        found = Some((i, 1, false));
                        break;
                    }
                    _ => {}
                }
                i += 1;
            }
            let Some((pos, len, negate)) = found else {
                return Err(format!(
                    "invalid selector: {term:?}; can't understand {term:?}"
                ));
            };
            let label: String = bytes[..pos].iter().collect::<String>().trim().to_string();
            let value: String = unescape(&bytes[pos + len..].iter().collect::<String>());
            if label != "metadata.name"
                && label != "metadata.namespace"
                && !def.field_labels.contains(&label.as_str())
            {
                return Err(format!("field label not supported: {label}"));
            }
            reqs.push(FieldReq {
                label,
                value,
                negate,
            });
        }
        Ok(Self(reqs))
    }

    /// The value a `metadata.name=` requirement pins, if any (to narrow a watch or list).
    pub fn pinned_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|r| r.label == "metadata.name" && !r.negate)
            .map(|r| r.value.as_str())
    }

    /// Whether it is the empty selector.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object (in the served shape) matches.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|r| {
            let actual = field_value(obj, &r.label);
            (actual == r.value) != r.negate
        })
    }
}

/// The string value of a field label on an object; missing fields read as "".
fn field_value(obj: &Value, label: &str) -> String {
    // `source` on core Events means the reporting component.
    let path = if label == "source" {
        "source.component"
    } else {
        label
    };
    let mut cur = obj;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn label_operators() {
        let l = labels(json!({"app": "web", "tier": "front", "n": "5"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(Some(&l));
        assert!(m(""));
        assert!(m("app=web"));
        assert!(m("app==web"));
        assert!(!m("app=db"));
        assert!(m("app!=db"));
        assert!(m("missing!=x"));
        assert!(m("app in (web, db)"));
        assert!(!m("app in (db)"));
        assert!(m("app notin (db)"));
        assert!(!m("app notin (web,db)"));
        assert!(m("missing notin (x)"));
        assert!(m("tier"));
        assert!(!m("missing"));
        assert!(m("!missing"));
        assert!(!m("!app"));
        assert!(m("app=web,tier=front"));
        assert!(!m("app=web,tier=back"));
        assert!(m("n>4"));
        assert!(!m("n<4"));
        assert!(m("example.com/x!=1"));
        assert!(!LabelSelector::parse("app=web").unwrap().matches(None));
    }

    #[test]
    fn label_syntax_errors() {
        for bad in [
            "app in web",
            "=x",
            "app=we b",
            "a,,b",
            "app in (x",
            "app foo (x)",
            "n>x",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        let svc = super::super::registry::lookup("", "v1", "services").unwrap();
        let ev = super::super::registry::lookup("", "v1", "events").unwrap();
        let o = json!({"metadata": {"name": "a", "namespace": "ns"}, "involvedObject": {"name": "x,y", "uid": "u1"}, "source": {"component": "c"}});
        assert!(
            FieldSelector::parse("metadata.name=a", svc)
                .unwrap()
                .matches(&o)
        );
        assert!(
            FieldSelector::parse("metadata.name==a,metadata.namespace=ns", svc)
                .unwrap()
                .matches(&o)
        );
        assert!(
            !FieldSelector::parse("metadata.name!=a", svc)
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("spec.foo=a", svc).is_err());
        assert!(FieldSelector::parse("involvedObject.name=x", svc).is_err());
        assert!(
            FieldSelector::parse(r"involvedObject.name=x\,y,involvedObject.uid=u1", ev)
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("source=c", ev).unwrap().matches(&o));
        assert!(FieldSelector::parse("reason=", ev).unwrap().matches(&o));
        assert_eq!(
            FieldSelector::parse("metadata.name=a", svc)
                .unwrap()
                .pinned_name(),
            Some("a")
        );
        assert!(FieldSelector::parse("nonsense", svc).is_err());
    }
}
