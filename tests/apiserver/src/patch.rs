//! The four patch types: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch
//! (for the types served here: merge, with merge keys on the few keyed lists, the `$patch`,
//! `$retainKeys`, `$setElementOrder` and `$deleteFromPrimitiveList` directives kubectl sends) and the
//! merge step of server-side apply.

use serde_json::{Map, Value};

/// Which patch format a request body is in (from its Content-Type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// application/merge-patch+json
    Merge,
    /// application/json-patch+json
    Json,
    /// application/strategic-merge-patch+json
    Strategic,
    /// application/apply-patch+yaml (server-side apply)
    Apply,
}

impl PatchKind {
    /// Maps a Content-Type to a patch kind.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match base.as_str() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    if let Value::Object(p) = patch {
        if !target.is_object() {
            *target = Value::Object(Map::new());
        }
        let t = target.as_object_mut().expect("made an object above");
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

/// RFC 6902 JSON patch; on error nothing is changed.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
    let mut work = target.clone();
    json_patch::patch(&mut work, &ops).map_err(|e| format!("JSON patch failed: {e}"))?;
    *target = work;
    Ok(())
}

/// How a list at a given path merges under strategic merge patch and apply.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ListStrategy {
    /// Replace the whole list.
    Atomic,
    /// Merge elements that are objects by this key.
    MergeKey(&'static str),
    /// Union of primitive values.
    PrimitiveSet,
}

/// The keyed lists of the served types (by dotted path without indices); all other lists are atomic.
fn list_strategy(path: &str) -> ListStrategy {
    match path {
        "spec.ports" => ListStrategy::MergeKey("port"),
        "status.conditions" | "status.addresses" => ListStrategy::MergeKey("type"),
        "metadata.ownerReferences" => ListStrategy::MergeKey("uid"),
        "metadata.finalizers" => ListStrategy::PrimitiveSet,
        "spec.containers" | "spec.initContainers" | "spec.volumes" => {
            ListStrategy::MergeKey("name")
        }
        _ => ListStrategy::Atomic,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Strategic merge patch of `patch` into `target`. `nulls_delete` is true for strategic merge
/// (null removes a field, keyed lists merge by key) and false for the merge step of server-side
/// apply (nulls are ignored and every list is replaced whole, matching the field ownership of
/// `super::managed`, which owns lists as a whole).
pub fn strategic_merge(
    target: &mut Value,
    patch: &Value,
    nulls_delete: bool,
) -> Result<(), String> {
    let mut work = target.clone();
    merge_value(&mut work, patch, "", nulls_delete)?;
    *target = work;
    Ok(())
}

fn merge_value(
    target: &mut Value,
    patch: &Value,
    path: &str,
    nulls_delete: bool,
) -> Result<(), String> {
    match patch {
        Value::Object(p) => {
            match p.get("$patch").and_then(Value::as_str) {
                Some("replace") => {
                    let mut m = p.clone();
                    m.remove("$patch");
                    *target = Value::Object(m);
                    return Ok(());
                }
                Some("delete") => {
                    *target = Value::Null;
                    return Ok(());
                }
                Some("merge") | None => {}
                Some(other) => {
                    return Err(format!("unknown patch directive {other:?} at {path:?}"));
                }
            }
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().expect("made an object above");
            let mut orders: Vec<(String, Vec<Value>)> = Vec::new();
            for (k, v) in p {
                if k == "$patch" {
                    continue;
                }
                if k == "$retainKeys" {
                    continue;
                }
                if let Some(field) = k.strip_prefix("$setElementOrder/") {
                    let Value::Array(order) = v else {
                        return Err(format!("{k} at {path:?} must be a list"));
                    };
                    orders.push((field.to_string(), order.clone()));
                    continue;
                }
                if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
                    let Value::Array(del) = v else {
                        return Err(format!("{k} at {path:?} must be a list"));
                    };
                    if let Some(Value::Array(list)) = t.get_mut(field) {
                        list.retain(|x| !del.contains(x));
                    }
                    continue;
                }
                if k.starts_with('$') {
                    return Err(format!("unknown patch directive {k:?} at {path:?}"));
                }
                let child = join(path, k);
                if v.is_null() {
                    if nulls_delete {
                        t.remove(k);
                    }
                    continue;
                }
                let entry = t.entry(k.clone()).or_insert(Value::Null);
                merge_value(entry, v, &child, nulls_delete)?;
                if entry.is_null() {
                    t.remove(k);
                }
            }
            if let Some(Value::Array(keep)) = p.get("$retainKeys") {
                let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
                t.retain(|k, _| keep.contains(&k.as_str()));
            }
            for (field, order) in orders {
                let child = join(path, &field);
                if let Some(Value::Array(list)) = t.get_mut(&field) {
                    reorder(list, &order, list_strategy(&child));
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            let strategy = if nulls_delete {
                list_strategy(path)
            } else {
                ListStrategy::Atomic
            };
            match strategy {
                ListStrategy::Atomic => *target = patch.clone(),
                ListStrategy::PrimitiveSet => {
                    let mut list = target.as_array().cloned().unwrap_or_default();
                    for it in items {
                        if !list.contains(it) {
                            list.push(it.clone());
                        }
                    }
                    *target = Value::Array(list);
                }
                ListStrategy::MergeKey(key) => {
                    // A `$patch: replace` element replaces the whole list.
                    if items
                        .iter()
                        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
                    {
                        let list = items
                            .iter()
                            .filter(|i| i.get("$patch").is_none())
                            .cloned()
                            .collect();
                        *target = Value::Array(list);
                        return Ok(());
                    }
                    let mut list = target.as_array().cloned().unwrap_or_default();
                    for it in items {
                        let Some(kv) = it.get(key) else {
                            return Err(format!("{path}: element is missing merge key {key:?}"));
                        };
                        let pos = list.iter().position(|x| x.get(key) == Some(kv));
                        if it.get("$patch").and_then(Value::as_str) == Some("delete") {
                            if let Some(pos) = pos {
                                list.remove(pos);
                            }
                            continue;
                        }
                        match pos {
                            Some(pos) => merge_value(&mut list[pos], it, path, nulls_delete)?,
                            None => {
                                let mut fresh = Value::Object(Map::new());
                                merge_value(&mut fresh, it, path, nulls_delete)?;
                                list.push(fresh);
                            }
                        }
                    }
                    *target = Value::Array(list);
                }
            }
            Ok(())
        }
        other => {
            *target = other.clone();
            Ok(())
        }
    }
}

/// Orders `list` like `order` (elements not named there keep their relative order, after).
fn reorder(list: &mut [Value], order: &[Value], strategy: ListStrategy) {
    let rank = |v: &Value| -> usize {
        let found = match strategy {
            ListStrategy::MergeKey(key) => order
                .iter()
                .position(|o| o.get(key).is_some() && o.get(key) == v.get(key)),
            _ => order.iter().position(|o| o == v),
        };
        found.unwrap_or(usize::MAX)
    };
    list.sort_by_key(rank);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(t, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn json_patch_ops_and_atomic_failure() {
        let mut t = json!({"a": 1, "l": [1]});
        json_patch(&mut t, &json!([{"op": "add", "path": "/l/-", "value": 2}, {"op": "replace", "path": "/a", "value": 5}])).unwrap();
        assert_eq!(t, json!({"a": 5, "l": [1, 2]}));
        let before = t.clone();
        assert!(json_patch(&mut t, &json!([{"op": "replace", "path": "/a", "value": 6}, {"op": "test", "path": "/a", "value": 1}])).is_err());
        assert_eq!(t, before);
        assert!(json_patch(&mut t, &json!({"op": "add"})).is_err());
    }

    #[test]
    fn strategic_merges_ports_by_port() {
        let mut svc = json!({"spec": {"ports": [{"port": 80, "nodePort": 30001, "name": "http"}, {"port": 443, "name": "https"}]}});
        strategic_merge(
            &mut svc,
            &json!({"spec": {
                "$setElementOrder/ports": [{"port": 443}, {"port": 80}, {"port": 8080}],
                "ports": [{"port": 80, "name": "web"}, {"port": 8080, "name": "alt"}]
            }}),
            true,
        )
        .unwrap();
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"port": 443, "name": "https"}, {"port": 80, "nodePort": 30001, "name": "web"}, {"port": 8080, "name": "alt"}])
        );
        strategic_merge(
            &mut svc,
            &json!({"spec": {"ports": [{"port": 443, "$patch": "delete"}]}}),
            true,
        )
        .unwrap();
        assert_eq!(svc["spec"]["ports"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn strategic_directives() {
        let mut o = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}}, "data": {"k": "v"}, "spec": {"a": 1, "b": 2}});
        strategic_merge(
            &mut o,
            &json!({"metadata": {"finalizers": ["b"], "labels": {"x": null}}, "data": {"$patch": "replace", "n": "m"}, "spec": {"$retainKeys": ["a", "c"], "c": 3}}),
            true,
        )
        .unwrap();
        assert_eq!(
            o,
            json!({"metadata": {"finalizers": ["a", "b"], "labels": {"y": "2"}}, "data": {"n": "m"}, "spec": {"a": 1, "c": 3}})
        );
        strategic_merge(
            &mut o,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            true,
        )
        .unwrap();
        assert_eq!(o["metadata"]["finalizers"], json!(["b"]));
        assert!(strategic_merge(&mut o, &json!({"$bogus": 1}), true).is_err());
        // Apply ignores nulls.
        strategic_merge(&mut o, &json!({"spec": {"a": null}}), false).unwrap();
        assert_eq!(o["spec"]["a"], json!(1));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            PatchKind::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchKind::Merge)
        );
        assert_eq!(
            PatchKind::from_content_type("application/apply-patch+yaml"),
            Some(PatchKind::Apply)
        );
        assert_eq!(PatchKind::from_content_type("application/json"), None);
    }
}
