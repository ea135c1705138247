//! The verbs on stored objects — get, list, create, update, patch, delete — as plain functions on
//! the [`Store`], independent of HTTP. Each write runs under the caller's store lock.

use serde_json::{Value, json};

use crate::kinds;
use crate::kubectl::managed;
use crate::patch::{self, PatchKind};
use crate::registry::{ResourceDef, storage_def};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::Store;

/// Options shared by the write verbs (from the query string).
#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    /// `dryRun=All`: validate and answer, store nothing.
    pub dry_run: bool,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// `fieldValidation=Strict`: unknown fields are an error.
    pub strict: bool,
    /// `force=true` on server-side apply.
    pub force: bool,
    /// The client's User-Agent, whose first word is the default field manager, as on a real server.
    pub user_agent: Option<String>,
}

impl WriteOpts {
    fn manager(&self) -> String {
        if let Some(m) = &self.field_manager {
            return m.clone();
        }
        self.user_agent
            .as_deref()
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    }
}

/// `now` as a `metav1.Time` string.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // Fall back to the clock: uniqueness within one process is what matters here.
        let t = chrono::Utc::now()
            .timestamp_nanos_opt()
            .unwrap_or_default()
            .to_le_bytes();
        for (i, x) in b.iter_mut().enumerate() {
            *x = t[i % 8] ^ (i as u8).wrapping_mul(31);
        }
    }
    b
}

/// A random (version 4 layout) UID.
pub fn new_uid() -> String {
    let mut b: [u8; 16] = random_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The 5-character suffix generateName adds (same alphabet as kube-apiserver: no vowels, no 0/1/3).
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes::<5>()
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn ns_key<'a>(def: &ResourceDef, ns: Option<&'a str>) -> &'a str {
    if def.namespaced { ns.unwrap_or("") } else { "" }
}

/// Checks a submitted body against the URL and the resource, decodes it and returns it in
/// storage shape.
pub fn prepare_body(
    def: &ResourceDef,
    ns: Option<&str>,
    url_name: Option<&str>,
    mut body: Value,
    strict: bool,
) -> Result<Value, ApiError> {
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    let want_av = def.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            obj.insert("apiVersion".into(), json!(want_av));
        }
        Some(av) if av == want_av => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            obj.insert("kind".into(), json!(def.kind));
        }
        Some(k) if k == def.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
    }
    if !obj.get("metadata").is_some_and(Value::is_object) {
        if obj.get("metadata").is_some_and(|m| !m.is_null()) {
            return Err(ApiError::bad_request("metadata must be an object"));
        }
        obj.insert("metadata".into(), json!({}));
    }
    let meta = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .expect("made an object above");
    if def.namespaced {
        let url_ns = ns.unwrap_or("");
        match meta.get("namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                meta.insert("namespace".into(), json!(url_ns));
            }
        }
    } else {
        meta.remove("namespace");
    }
    if let Some(url_name) = url_name {
        match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != url_name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({url_name})"
                )));
            }
            _ => {
                meta.insert("name".into(), json!(url_name));
            }
        }
    }
    let decoded = kinds::decode(def, &body, strict).map_err(|e| {
        ApiError::bad_request(format!(
            "error decoding {} {}: {e}",
            def.kind,
            def.api_version()
        ))
    })?;
    Ok(kinds::from_view(def, &decoded))
}

/// Reads one object, in the resource's shape.
pub fn get(
    store: &Store,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
) -> Result<Value, ApiError> {
    store
        .get(def.storage, ns_key(def, ns), name)
        .map(|o| kinds::to_view(def, o))
        .ok_or_else(|| ApiError::not_found(def, name))
}

/// Lists objects matching the selectors; returns them with the list's resourceVersion.
pub fn list(
    store: &Store,
    def: &ResourceDef,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> (Vec<Value>, u64) {
    let (items, rv, _) = list_page(store, def, ns, labels, fields, None, None);
    (items, rv)
}

/// Like [`list`], but only what one page needs: objects after `after` (a
/// continue token's key), at most `cap` of them. Paging through a large
/// collection then copies each object once instead of the whole collection
/// per page.
pub fn list_page(
    store: &Store,
    def: &ResourceDef,
    ns: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    after: Option<&(String, String)>,
    cap: Option<usize>,
) -> (Vec<Value>, u64, usize) {
    let ns = if def.namespaced { ns } else { None };
    let mut matching = store
        .list(def.storage, ns)
        .filter(|o| {
            after.is_none_or(|(a_ns, a_name)| {
                let m = &o["metadata"];
                let key = (
                    m["namespace"].as_str().unwrap_or(""),
                    m["name"].as_str().unwrap_or(""),
                );
                key > (a_ns.as_str(), a_name.as_str())
            })
        })
        .filter(|o| {
            // Selectors see the served shape; only Events differ from storage.
            if def.group == "events.k8s.io" {
                let v = kinds::to_view(def, o);
                labels.matches(v["metadata"]["labels"].as_object()) && fields.matches(&v)
            } else {
                labels.matches(o["metadata"]["labels"].as_object()) && fields.matches(o)
            }
        });
    let items: Vec<Value> = matching
        .by_ref()
        .take(cap.unwrap_or(usize::MAX))
        .map(|o| kinds::to_view(def, o))
        .collect();
    // Counted, not copied: what a page beyond this one would hold.
    let beyond = matching.count();
    (items, store.current_rv(), beyond)
}

/// Creates an object from a body already through [`prepare_body`] (storage shape).
pub fn create(
    store: &mut Store,
    def: &ResourceDef,
    ns: Option<&str>,
    mut obj: Value,
    opts: &WriteOpts,
    applied: Option<&Value>,
) -> Result<Value, ApiError> {
    let ns = ns_key(def, ns).to_string();
    let meta = &mut obj["metadata"];
    let name = match meta["name"].as_str().filter(|s| !s.is_empty()) {
        Some(n) => n.to_string(),
        None => match meta["generateName"].as_str().filter(|s| !s.is_empty()) {
            Some(prefix) => {
                // Retry a few times on the (unlikely) collision, as the real server does once.
                let mut candidate = format!("{prefix}{}", name_suffix());
                for _ in 0..8 {
                    if store.get(def.storage, &ns, &candidate).is_none() {
                        break;
                    }
                    candidate = format!("{prefix}{}", name_suffix());
                }
                candidate
            }
            None => {
                let fe = super::status::FieldError::required(
                    "metadata.name",
                    "name or generateName is required",
                );
                return Err(ApiError::invalid(def, "", &[fe]));
            }
        },
    };
    meta["name"] = json!(name);
    if def.namespaced {
        if store.get("namespaces", "", &ns).is_none() {
            return Err(ApiError::not_found(storage_def("namespaces"), &ns));
        }
        if store
            .get("namespaces", "", &ns)
            .is_some_and(|n| !n["metadata"]["deletionTimestamp"].is_null())
        {
            return Err(ApiError::forbidden(format!(
                "{} {name:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                def.qualified()
            )));
        }
    }
    if store.get(def.storage, &ns, &name).is_some() {
        return Err(ApiError::already_exists(def, &name));
    }
    if let Some(m) = meta.as_object_mut() {
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        ] {
            m.remove(f);
        }
        m.insert("uid".into(), json!(new_uid()));
        m.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if def.tracks_generation {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
    }
    let mut errs = kinds::validate_metadata(def, &obj);
    errs.extend(kinds::prepare_create(def, &mut obj, store));
    if !errs.is_empty() {
        return Err(ApiError::invalid(def, &name, &errs));
    }
    let manager = opts.manager();
    let managed_sub = None;
    let av = def.api_version();
    let writer = managed::Writer {
        manager: &manager,
        sub: managed_sub,
        force: opts.force,
        has_status: def.status_subresource,
        api_version: &av,
    };
    if let Err(conflicts) = managed::record(None, &mut obj, applied, &writer) {
        return Err(ApiError::apply_conflict(def, &name, &conflicts));
    }
    if opts.dry_run {
        obj["metadata"]["resourceVersion"] = json!("");
        return Ok(kinds::to_view(def, &obj));
    }
    let stored = store.put(def.storage, &ns, &name, obj);
    Ok(kinds::to_view(def, &stored))
}

/// Result of an update: the object, and whether it was created (PUT on a create-on-update resource).
pub struct Updated {
    /// The object in the resource's shape.
    pub object: Value,
    /// Whether it was created rather than updated.
    pub created: bool,
}

/// Whether two objects are equal apart from resourceVersion and managedFields (compared
/// in place: this runs on every write).
fn same_but_volatile(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let volatile = |k: &str| k == "resourceVersion" || k == "managedFields";
    let same_meta = |x: Option<&Value>, y: Option<&Value>| match (
        x.and_then(Value::as_object),
        y.and_then(Value::as_object),
    ) {
        (Some(x), Some(y)) => {
            let kept =
                |m: &serde_json::Map<String, Value>| m.keys().filter(|k| !volatile(k)).count();
            kept(x) == kept(y)
                && x.iter()
                    .filter(|(k, _)| !volatile(k))
                    .all(|(k, v)| y.get(k) == Some(v))
        }
        _ => x == y,
    };
    a.len() == b.len()
        && a.iter().all(|(k, v)| match b.get(k) {
            Some(w) if k == "metadata" => same_meta(Some(v), Some(w)),
            Some(w) => v == w,
            None => false,
        })
}

/// Replaces an object (PUT) with a body already through [`prepare_body`] (storage shape).
#[allow(clippy::too_many_arguments)]
pub fn update(
    store: &mut Store,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    new: Value,
    opts: &WriteOpts,
    applied: Option<&Value>,
) -> Result<Updated, ApiError> {
    let nsk = ns_key(def, ns).to_string();
    // A shared handle, not a copy: the store replaces, never mutates, what it holds.
    let Some(old) = store.get_shared(def.storage, &nsk, name).cloned() else {
        if def.create_on_update && sub.is_none() {
            let object = create(store, def, ns, new, opts, applied)?;
            return Ok(Updated {
                object,
                created: true,
            });
        }
        return Err(ApiError::not_found(def, name));
    };
    let old_rv = old["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if let Some(rv) = new["metadata"]["resourceVersion"]
        .as_str()
        .filter(|s| !s.is_empty())
        && rv != old_rv
    {
        return Err(ApiError::conflict(
            def,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        ));
    }
    let status_write = sub == Some("status");
    let mut result = if status_write {
        let mut r = Value::clone(&old);
        r["status"] = new.get("status").cloned().unwrap_or(Value::Null);
        if r["status"].is_null() {
            r.as_object_mut().map(|m| m.remove("status"));
        }
        r
    } else {
        let mut r = new;
        if def.status_subresource {
            match old.get("status") {
                Some(s) => r["status"] = s.clone(),
                None => {
                    r.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        r
    };
    {
        let meta = result["metadata"]
            .as_object_mut()
            .expect("prepare_body made metadata an object");
        for f in [
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "name",
            "namespace",
        ] {
            match old["metadata"].get(f) {
                Some(v) => meta.insert(f.into(), v.clone()),
                None => meta.remove(f),
            };
        }
        meta.remove("selfLink");
        if let Some(mf) = old["metadata"].get("managedFields") {
            meta.insert("managedFields".into(), mf.clone());
        }
    }
    let mut errs = Vec::new();
    if status_write {
        errs.extend(kinds::validate_status(def, &mut result));
    } else {
        errs.extend(kinds::validate_metadata(def, &result));
        errs.extend(kinds::prepare_update(def, &old, &mut result, store));
    }
    if !errs.is_empty() {
        return Err(ApiError::invalid(def, name, &errs));
    }
    if def.tracks_generation && old.get("spec") != result.get("spec") {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        result["metadata"]["generation"] = json!(g);
    }
    let (manager, av) = (opts.manager(), def.api_version());
    let writer = managed::Writer {
        manager: &manager,
        sub,
        force: opts.force,
        has_status: def.status_subresource,
        api_version: &av,
    };
    if let Err(conflicts) = managed::record(Some(&old), &mut result, applied, &writer) {
        return Err(ApiError::apply_conflict(def, name, &conflicts));
    }
    // A deleted object whose last finalizer is gone goes away now.
    let finalizers_empty = result["metadata"]["finalizers"]
        .as_array()
        .is_none_or(|f| f.is_empty());
    if !result["metadata"]["deletionTimestamp"].is_null() && finalizers_empty {
        if opts.dry_run {
            return Ok(Updated {
                object: kinds::to_view(def, &result),
                created: false,
            });
        }
        store.put(def.storage, &nsk, name, result);
        let gone = store.remove(def.storage, &nsk, name).expect("just stored");
        return Ok(Updated {
            object: kinds::to_view(def, &gone),
            created: false,
        });
    }
    if same_but_volatile(&old, &result)
        && old["metadata"]["managedFields"] == result["metadata"]["managedFields"]
    {
        // Nothing changed: no new resourceVersion, no watch event (as etcd with an unchanged value).
        return Ok(Updated {
            object: kinds::to_view(def, &old),
            created: false,
        });
    }
    if opts.dry_run {
        return Ok(Updated {
            object: kinds::to_view(def, &result),
            created: false,
        });
    }
    let stored = store.put(def.storage, &nsk, name, result);
    Ok(Updated {
        object: kinds::to_view(def, &stored),
        created: false,
    })
}

/// Parses a patch body: JSON for the JSON patch types, YAML (a superset of JSON) for apply.
/// Done before taking the store lock: decoding needs nothing of the store.
pub fn parse_patch_body(kind: PatchKind, body: &[u8]) -> Result<Value, ApiError> {
    let parsed = match kind {
        PatchKind::Apply => {
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("apply body is not UTF-8: {e}")))?;
            serde_yaml_ng::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        }
        _ => serde_json::from_slice::<Value>(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}"))),
    }?;
    match (kind, &parsed) {
        (PatchKind::Json, Value::Array(_)) => Ok(parsed),
        (PatchKind::Json, _) => Err(ApiError::bad_request(
            "a JSON patch must be a list of operations",
        )),
        (_, Value::Object(_)) => Ok(parsed),
        _ => Err(ApiError::bad_request(
            "a merge, strategic merge or apply patch must be an object",
        )),
    }
}

/// Patches an object (PATCH), creating it for server-side apply when absent.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    store: &mut Store,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    kind: PatchKind,
    patch_doc: Value,
    opts: &WriteOpts,
) -> Result<Updated, ApiError> {
    let nsk = ns_key(def, ns).to_string();
    let existing = store
        .get(def.storage, &nsk, name)
        .map(|o| kinds::to_view(def, o));
    if kind == PatchKind::Apply {
        for f in ["apiVersion", "kind"] {
            if patch_doc
                .get(f)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(ApiError::bad_request(format!(
                    "{f} must be set in an apply configuration"
                )));
            }
        }
        if let Some(n) = patch_doc["metadata"]["name"].as_str()
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
    }
    let Some(current) = existing else {
        if kind == PatchKind::Apply && sub.is_none() {
            let obj = prepare_body(def, ns, Some(name), patch_doc.clone(), opts.strict)?;
            let applied = kinds::from_view(def, &patch_doc);
            let object = create(store, def, ns, obj, opts, Some(&applied))?;
            return Ok(Updated {
                object,
                created: true,
            });
        }
        return Err(ApiError::not_found(def, name));
    };
    let current_rv = current["metadata"]["resourceVersion"].clone();
    let mut patched = current;
    match kind {
        PatchKind::Merge => patch::merge_patch(&mut patched, &patch_doc),
        PatchKind::Json => {
            patch::json_patch(&mut patched, &patch_doc).map_err(ApiError::unprocessable)?
        }
        PatchKind::Strategic => patch::strategic_merge(&mut patched, &patch_doc, true)
            .map_err(ApiError::unprocessable)?,
        PatchKind::Apply => patch::strategic_merge(&mut patched, &patch_doc, false)
            .map_err(ApiError::unprocessable)?,
    }
    if !patched.is_object() || !(patched["metadata"].is_object() || patched["metadata"].is_null()) {
        return Err(ApiError::unprocessable(
            "the patched object must be an object with object metadata",
        ));
    }
    // A patch that did not mention resourceVersion applies to the current object.
    if patched["metadata"]["resourceVersion"].is_null() {
        patched["metadata"]["resourceVersion"] = current_rv;
    }
    let new = prepare_body(def, ns, Some(name), patched, opts.strict)?;
    let applied = (kind == PatchKind::Apply).then(|| kinds::from_view(def, &patch_doc));
    let manager_only = managed::removed_by_apply(
        store.get(def.storage, &nsk, name),
        applied.as_ref(),
        &opts.manager(),
        sub,
    );
    let mut new = new;
    for path in manager_only {
        managed::remove_path(&mut new, &path);
    }
    update(store, def, ns, name, sub, new, opts, applied.as_ref())
}

/// DeleteOptions preconditions.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// Deletes an object; an object with finalizers is only marked (deletionTimestamp) until they are removed.
pub fn delete(
    store: &mut Store,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOpts,
) -> Result<Value, ApiError> {
    let nsk = ns_key(def, ns).to_string();
    let Some(old) = store.get(def.storage, &nsk, name).cloned() else {
        return Err(ApiError::not_found(def, name));
    };
    if let Some(uid) = &opts.uid
        && old["metadata"]["uid"].as_str() != Some(uid.as_str())
    {
        return Err(ApiError::conflict(
            def,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                old["metadata"]["uid"].as_str().unwrap_or("")
            ),
        ));
    }
    if let Some(rv) = &opts.resource_version
        && old["metadata"]["resourceVersion"].as_str() != Some(rv.as_str())
    {
        return Err(ApiError::conflict(
            def,
            name,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                old["metadata"]["resourceVersion"].as_str().unwrap_or("")
            ),
        ));
    }
    if opts.dry_run {
        return Ok(kinds::to_view(def, &old));
    }
    let has_finalizers = old["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty());
    if has_finalizers {
        if !old["metadata"]["deletionTimestamp"].is_null() {
            return Ok(kinds::to_view(def, &old));
        }
        let mut marked = old;
        marked["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
        marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        let stored = store.put(def.storage, &nsk, name, marked);
        return Ok(kinds::to_view(def, &stored));
    }
    if def.storage == "namespaces" {
        // Namespace deletion removes its content first (at once, where a real cluster takes a while).
        let mut doomed = Vec::new();
        for r in super::registry::RESOURCES.iter().filter(|r| r.namespaced) {
            for o in store.list(r.storage, Some(name)) {
                doomed.push((
                    r.storage,
                    o["metadata"]["name"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
        doomed.sort();
        doomed.dedup();
        for (storage, n) in doomed {
            store.remove(storage, name, &n);
        }
    }
    let gone = store
        .remove(def.storage, &nsk, name)
        .expect("checked above");
    Ok(kinds::to_view(def, &gone))
}

#[cfg(test)]
mod tests {
    use super::same_but_volatile;
    use serde_json::json;

    #[test]
    fn only_resource_version_and_managed_fields_are_volatile() {
        let a = json!({"metadata": {"name": "a", "resourceVersion": "1", "managedFields": [1]},
                       "spec": {"x": 1}});
        let b = json!({"metadata": {"name": "a", "resourceVersion": "9"}, "spec": {"x": 1}});
        assert!(same_but_volatile(&a, &b));
        assert!(same_but_volatile(&b, &a));
        for changed in [
            json!({"metadata": {"name": "b", "resourceVersion": "9"}, "spec": {"x": 1}}),
            json!({"metadata": {"name": "a", "labels": {}}, "spec": {"x": 1}}),
            json!({"metadata": {"name": "a"}, "spec": {"x": 2}}),
            json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {}}),
            json!({"metadata": {"name": "a"}}),
            json!({"metadata": null, "spec": {"x": 1}}),
        ] {
            assert!(!same_but_volatile(&a, &changed), "{changed}");
            assert!(!same_but_volatile(&changed, &a), "{changed}");
        }
    }
}
