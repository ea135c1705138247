//! The objects of `kubectl get ... -o yaml` output: every YAML document of
//! every file, a `List`'s items taken one by one, each with where it came from.

use std::fmt;

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::error::{Problem, ProblemKind};
use crate::walk::{self, Loc};

/// Where an object was read: file, document (0-based) and `List` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The file as named on the command line.
    pub file: String,
    /// Index of the YAML document in the file, from 0.
    pub document: usize,
    /// Index in the document's `List`, when the document is a `List`.
    pub item: Option<usize>,
    /// The object's kind and name, once known.
    pub object: Option<(String, String)>,
}

impl fmt::Display for Origin {
    /// `pools.yaml[0].items[2] IPAddressPool "lan"`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.file, self.document)?;
        if let Some(i) = self.item {
            write!(f, ".items[{i}]")?;
        }
        if let Some((kind, name)) = &self.object {
            write!(f, " {kind} {name:?}")?;
        }
        Ok(())
    }
}

/// One Kubernetes object, its kind and name checked.
#[derive(Debug, Clone)]
pub struct Object {
    /// Where it came from.
    pub origin: Origin,
    /// `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// The whole object.
    pub value: Value,
}

impl Object {
    /// A location inside the object, e.g. `spec`, for problems.
    pub fn loc(&self, field: &str) -> Loc {
        Loc::at(format!("{} {field}", self.origin))
    }

    /// A top-level field of the object.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.value.get(field).filter(|v| !v.is_null())
    }
}

/// Reads every object of one file. Problems name the file and document.
pub fn read_file(file: &str, text: &str, problems: &mut Vec<Problem>) -> Vec<Object> {
    let mut out = Vec::new();
    for (document, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let origin = Origin {
            file: file.to_string(),
            document,
            item: None,
            object: None,
        };
        let mut value = match Value::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                problems.push(Problem::new(
                    ProblemKind::Syntax,
                    origin.to_string(),
                    format!("invalid YAML: {e}"),
                ));
                // The parser cannot resynchronise after a syntax error.
                break;
            }
        };
        if let Err(e) = value.apply_merge() {
            problems.push(Problem::new(
                ProblemKind::Syntax,
                origin.to_string(),
                format!("invalid YAML: {e}"),
            ));
            continue;
        }
        if value.is_null() {
            continue; // an empty document, e.g. after a trailing `---`
        }
        if value.get("kind").and_then(Value::as_str) == Some("List") {
            let loc = Loc::at(format!("{origin} items"));
            match value.get("items") {
                None | Some(Value::Null) => {}
                Some(items) => {
                    if let Some(items) = walk::list(items, &loc, problems) {
                        for (i, item) in items.iter().enumerate() {
                            let origin = Origin {
                                item: Some(i),
                                ..origin.clone()
                            };
                            out.extend(object(origin, item.clone(), problems));
                        }
                    }
                }
            }
        } else {
            out.extend(object(origin, value, problems));
        }
    }
    out
}

fn object(mut origin: Origin, value: Value, problems: &mut Vec<Problem>) -> Option<Object> {
    let here = Loc::at(origin.to_string());
    if !value.is_mapping() {
        problems.push(walk::wrong_type(
            &here,
            &value,
            "a Kubernetes object (a mapping)",
        ));
        return None;
    }
    let kind = match value.get("kind") {
        Some(Value::String(k)) => k.clone(),
        Some(other) => {
            problems.push(walk::wrong_type(&here.field("kind"), other, "a string"));
            return None;
        }
        None => {
            problems.push(here.field("kind").problem(
                ProblemKind::MissingField,
                "required field is missing: is this `kubectl get ... -o yaml` output?",
            ));
            return None;
        }
    };
    let meta = Loc::at(format!("{origin} {kind} metadata"));
    let name = match value.get("metadata").and_then(|m| m.get("name")) {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        Some(other) => {
            problems.push(walk::wrong_type(
                &meta.field("name"),
                other,
                "a non-empty string",
            ));
            return None;
        }
        None => {
            problems.push(
                meta.field("name")
                    .problem(ProblemKind::MissingField, "required field is missing"),
            );
            return None;
        }
    };
    origin.object = Some((kind.clone(), name.clone()));
    Some(Object {
        origin,
        kind,
        name,
        value,
    })
}

/// Checks that `value` (a `spec`) only holds `known` fields; returns its entries.
pub fn spec_fields<'a>(
    value: &'a Value,
    loc: &Loc,
    known: &[&str],
    problems: &mut Vec<Problem>,
) -> Vec<(&'a str, &'a Value)> {
    let Some(fields) = walk::fields(value, loc, problems) else {
        return Vec::new();
    };
    fields
        .into_iter()
        .filter(|(k, _)| {
            let ok = known.contains(k);
            if !ok {
                problems.push(walk::unknown_field(&loc.field(k), k, known));
            }
            ok
        })
        .collect()
}
