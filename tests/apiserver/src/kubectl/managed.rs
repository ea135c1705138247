//! Field ownership (`metadata.managedFields`), as far as server-side apply needs it: every write
//! records which manager set which fields; an apply that would change a field another manager set
//! fails with 409 Conflict unless forced, and an apply that stops listing a field it alone owned
//! removes it. Lists are owned as a whole (atomic), which is exact for the fields ferrolb applies.

use serde_json::{Map, Value, json};

/// A field path: object keys from the root.
pub type Path = Vec<String>;

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    manager: String,
    apply: bool,
    subresource: Option<String>,
    api_version: String,
    time: String,
    paths: Vec<Path>,
}

const TRACKED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// Leaf paths of an object that a write to `sub` can own.
fn leaves(obj: &Value, sub: Option<&str>, has_status: bool) -> Vec<Path> {
    let mut out = Vec::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        let tracked = match k.as_str() {
            "apiVersion" | "kind" => false,
            "status" => sub == Some("status") || !has_status,
            _ => sub != Some("status"),
        };
        if !tracked {
            continue;
        }
        if k == "metadata" {
            for mk in TRACKED_METADATA {
                if let Some(mv) = v.get(*mk) {
                    walk(mv, vec!["metadata".into(), (*mk).into()], &mut out);
                }
            }
            continue;
        }
        walk(v, vec![k.clone()], &mut out);
    }
    out
}

fn walk(v: &Value, path: Path, out: &mut Vec<Path>) {
    match v {
        // An empty map sets nothing, so nobody owns anything there.
        Value::Null => {}
        Value::Object(m) if m.is_empty() => {}
        Value::Object(m) => {
            for (k, c) in m {
                let mut p = path.clone();
                p.push(k.clone());
                walk(c, p, out);
            }
        }
        _ => out.push(path),
    }
}

fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for p in path {
        cur = cur.get(p)?;
    }
    (!cur.is_null()).then_some(cur)
}

fn overlaps(a: &[String], b: &[String]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// Removes the field at `path` (and parents left empty) from an object.
pub fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = &mut *obj;
    for p in parents {
        match cur.get_mut(p) {
            Some(c) => cur = c,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last);
    }
    if parents.len() > 1
        && value_at(obj, parents).is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
    {
        remove_path(obj, parents);
    }
}

fn to_fields_v1(paths: &[Path]) -> Value {
    let mut root = Map::new();
    for p in paths {
        let mut cur = &mut root;
        for seg in p {
            cur = cur
                .entry(format!("f:{seg}"))
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("only objects are inserted");
        }
    }
    Value::Object(root)
}

fn from_fields_v1(v: &Value, prefix: Path, out: &mut Vec<Path>) {
    let Some(m) = v.as_object() else { return };
    let children: Vec<_> = m
        .iter()
        .filter_map(|(k, c)| k.strip_prefix("f:").map(|k| (k, c)))
        .collect();
    if children.is_empty() {
        if !prefix.is_empty() {
            out.push(prefix);
        }
        return;
    }
    for (k, c) in children {
        let mut p = prefix.clone();
        p.push(k.to_string());
        from_fields_v1(c, p, out);
    }
}

fn parse_entries(obj: Option<&Value>) -> Vec<Entry> {
    let Some(list) = obj.and_then(|o| o["metadata"]["managedFields"].as_array()) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let mut paths = Vec::new();
            from_fields_v1(&e["fieldsV1"], Vec::new(), &mut paths);
            Some(Entry {
                manager: e["manager"].as_str()?.to_string(),
                apply: e["operation"] == "Apply",
                subresource: e["subresource"].as_str().map(String::from),
                api_version: e["apiVersion"].as_str().unwrap_or("").to_string(),
                time: e["time"].as_str().unwrap_or("").to_string(),
                paths,
            })
        })
        .collect()
}

fn render(entries: &[Entry]) -> Value {
    Value::Array(
        entries
            .iter()
            .map(|e| {
                let mut v = json!({
                    "manager": e.manager,
                    "operation": if e.apply { "Apply" } else { "Update" },
                    "apiVersion": e.api_version,
                    "time": e.time,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": to_fields_v1(&e.paths),
                });
                if let Some(s) = &e.subresource {
                    v["subresource"] = json!(s);
                }
                v
            })
            .collect(),
    )
}

/// Fields that an apply by `manager` no longer lists and nobody else owns: the apply removes them.
pub fn removed_by_apply(
    current: Option<&Value>,
    applied: Option<&Value>,
    manager: &str,
    sub: Option<&str>,
) -> Vec<Path> {
    let (Some(current), Some(applied)) = (current, applied) else {
        return Vec::new();
    };
    let entries = parse_entries(Some(current));
    let has_status = true;
    let now_applied = leaves(applied, sub, has_status);
    let mine = entries
        .iter()
        .find(|e| e.manager == manager && e.apply && e.subresource.as_deref() == sub);
    let Some(mine) = mine else { return Vec::new() };
    mine.paths
        .iter()
        .filter(|p| !now_applied.iter().any(|a| overlaps(a, p)))
        .filter(|p| {
            !entries.iter().any(|e| {
                !(e.manager == manager && e.apply && e.subresource.as_deref() == sub)
                    && e.paths.iter().any(|q| overlaps(q, p))
            })
        })
        .cloned()
        .collect()
}

/// Who writes, and how.
pub struct Writer<'a> {
    /// Field manager name.
    pub manager: &'a str,
    /// Subresource written (`status`) or None for the main resource.
    pub sub: Option<&'a str>,
    /// Server-side apply `force`.
    pub force: bool,
    /// Whether the resource has a status subresource (then main writes own no status fields).
    pub has_status: bool,
    /// apiVersion the write came through.
    pub api_version: &'a str,
}

/// Records a write in `new`'s managedFields. With `applied` (server-side apply), fields owned by
/// other managers whose value the apply changes are conflicts: returned as (manager, field)
/// unless forced, in which case ownership moves.
pub fn record(
    old: Option<&Value>,
    new: &mut Value,
    applied: Option<&Value>,
    w: &Writer<'_>,
) -> Result<(), Vec<(String, String)>> {
    let Writer {
        manager,
        sub,
        force,
        has_status,
        api_version,
    } = *w;
    let mut entries = parse_entries(old);
    let before = entries.clone();
    let api_version = api_version.to_string();
    let now = crate::verbs::now_rfc3339();
    let is_mine = |e: &Entry, apply: bool| {
        e.manager == manager && e.apply == apply && e.subresource.as_deref() == sub
    };
    let empty = Value::Null;
    let old_obj = old.unwrap_or(&empty);

    // Fields the write changed (set or altered), and fields it removed.
    let new_leaves = leaves(new, sub, has_status);
    let changed: Vec<Path> = new_leaves
        .iter()
        .filter(|p| value_at(old_obj, p) != value_at(new, p))
        .cloned()
        .collect();
    let removed: Vec<Path> = leaves(old_obj, sub, has_status)
        .into_iter()
        .filter(|p| value_at(new, p).is_none())
        .collect();

    if let Some(applied) = applied {
        let applied_paths = leaves(applied, sub, has_status);
        let mut conflicts = Vec::new();
        for e in entries.iter().filter(|e| e.manager != manager) {
            for q in &e.paths {
                for p in applied_paths.iter().filter(|p| overlaps(p, q)) {
                    let longer = if p.len() >= q.len() { p } else { q };
                    if value_at(old_obj, longer) != value_at(applied, longer) {
                        conflicts.push((e.manager.clone(), format!(".{}", longer.join("."))));
                    }
                }
            }
        }
        conflicts.sort();
        conflicts.dedup();
        if !conflicts.is_empty() && !force {
            return Err(conflicts);
        }
        for e in entries.iter_mut().filter(|e| e.manager != manager) {
            e.paths.retain(|q| {
                !applied_paths.iter().any(|p| {
                    let longer = if p.len() >= q.len() { p } else { q };
                    overlaps(p, q) && value_at(old_obj, longer) != value_at(applied, longer)
                })
            });
        }
        match entries.iter_mut().find(|e| is_mine(e, true)) {
            Some(e) if e.paths != applied_paths => {
                e.paths = applied_paths;
                e.time = now.clone();
            }
            Some(_) => {}
            None => entries.push(Entry {
                manager: manager.to_string(),
                apply: true,
                subresource: sub.map(String::from),
                api_version: api_version.clone(),
                time: now.clone(),
                paths: applied_paths,
            }),
        }
    } else if !changed.is_empty() {
        for e in entries.iter_mut().filter(|e| !is_mine(e, false)) {
            e.paths.retain(|q| !changed.iter().any(|p| overlaps(p, q)));
        }
        match entries.iter_mut().find(|e| is_mine(e, false)) {
            Some(e) => {
                for p in &changed {
                    e.paths.retain(|q| !overlaps(p, q));
                    e.paths.push(p.clone());
                }
                e.time = now.clone();
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                apply: false,
                subresource: sub.map(String::from),
                api_version: api_version.clone(),
                time: now.clone(),
                paths: changed,
            }),
        }
    }
    for e in entries.iter_mut() {
        e.paths.retain(|q| {
            !removed
                .iter()
                .any(|r| overlaps(r, q) && value_at(new, q).is_none())
        });
        e.paths.sort();
        e.paths.dedup();
    }
    entries.retain(|e| !e.paths.is_empty());
    let meta = new["metadata"].as_object_mut();
    if let Some(meta) = meta {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else if entries != before || !meta.contains_key("managedFields") {
            meta.insert("managedFields".into(), render(&entries));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(manager: &str, force: bool) -> Writer<'_> {
        Writer {
            manager,
            sub: None,
            force,
            has_status: false,
            api_version: "v1",
        }
    }

    fn lease(holder: Option<&str>) -> Value {
        let mut l = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"}, "spec": {}});
        if let Some(h) = holder {
            l["spec"]["holderIdentity"] = json!(h);
        }
        l
    }

    #[test]
    fn apply_conflicts_with_another_manager_unless_equal_or_forced() {
        let mut v1 = lease(None);
        record(None, &mut v1, None, &w("creator", false)).unwrap();
        let cfg_a = lease(Some("a"));
        let mut v2 = cfg_a.clone();
        v2["metadata"] = v1["metadata"].clone();
        record(Some(&v1), &mut v2, Some(&cfg_a), &w("mgr-a", false)).unwrap();
        assert_eq!(v2["metadata"]["managedFields"][0]["manager"], "mgr-a");
        assert_eq!(
            v2["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:spec": {"f:holderIdentity": {}}})
        );
        // b applying a different holder conflicts.
        let cfg_b = lease(Some("b"));
        let mut v3 = cfg_b.clone();
        v3["metadata"] = v2["metadata"].clone();
        let err = record(Some(&v2), &mut v3, Some(&cfg_b), &w("mgr-b", false)).unwrap_err();
        assert_eq!(
            err,
            vec![("mgr-a".to_string(), ".spec.holderIdentity".to_string())]
        );
        // The same value is shared ownership, no conflict.
        let mut same = v2.clone();
        record(Some(&v2), &mut same, Some(&cfg_a), &w("mgr-b", false)).unwrap();
        // Forced, ownership moves.
        record(Some(&v2), &mut v3, Some(&cfg_b), &w("mgr-b", true)).unwrap();
        let mf = v3["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(mf.len(), 1);
        assert_eq!(mf[0]["manager"], "mgr-b");
    }

    #[test]
    fn removal_by_update_frees_ownership() {
        let cfg = lease(Some("a"));
        let mut v1 = cfg.clone();
        record(None, &mut v1, Some(&cfg), &w("mgr-a", false)).unwrap();
        let mut v2 = lease(None);
        v2["metadata"] = v1["metadata"].clone();
        record(Some(&v1), &mut v2, None, &w("mgr-a", false)).unwrap();
        assert!(v2["metadata"].get("managedFields").is_none());
        let cfg_b = lease(Some("b"));
        let mut v3 = cfg_b.clone();
        v3["metadata"] = v2["metadata"].clone();
        assert!(record(Some(&v2), &mut v3, Some(&cfg_b), &w("mgr-b", false)).is_ok());
    }

    #[test]
    fn apply_drops_fields_it_no_longer_lists() {
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": "1"}}, "data": {"a": "1", "b": "2"}});
        let mut v1 = cfg.clone();
        record(None, &mut v1, Some(&cfg), &w("me", false)).unwrap();
        let cfg2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let mut gone = removed_by_apply(Some(&v1), Some(&cfg2), "me", None);
        gone.sort();
        assert_eq!(
            gone,
            vec![
                vec!["data".to_string(), "b".to_string()],
                vec!["metadata".into(), "labels".into(), "x".into()]
            ]
        );
        let mut obj = v1.clone();
        for p in &gone {
            remove_path(&mut obj, p);
        }
        assert_eq!(obj["data"], json!({"a": "1"}));
        assert!(obj["metadata"].get("labels").is_none());
    }
}
