//! HTTP front: parses paths (`/api/v1/...`, `/apis/<g>/<v>/...`), query strings and bodies, and
//! dispatches to discovery, the verbs, watches and Table output. Every failure is a `Status`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::discovery;
use crate::kubectl::openapi;
use crate::kubectl::protobuf;
use crate::kubectl::table;
use crate::paging;
use crate::patch::PatchKind;
use crate::registry::{self, ResourceDef};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::Store;
use crate::verbs::{self, DeleteOpts, WriteOpts};
use crate::watch::{self, WatchRequest};

/// Largest request body accepted.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// Shared server state.
pub struct App {
    pub store: Mutex<Store>,
    pub shutdown: CancellationToken,
    /// Bumped to end every open watch (simulates an API server restart / connection loss).
    pub breaker: tokio::sync::watch::Sender<u64>,
    pub bookmark_interval: Duration,
    pub minor_version: String,
    pub server_address: String,
}

impl App {
    /// Locks the store (a poisoned lock is still usable: writes are all-or-nothing).
    pub fn lock_store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A resource path, parsed.
struct Target {
    def: &'static ResourceDef,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (code, axum::Json(v)).into_response()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

fn truthy(q: &HashMap<String, String>, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

/// The single entry point for every request.
pub async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let query = parse_query(parts.uri.query());
    let method = parts.method.clone();
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(e) => {
            return ApiError::bad_request(format!("reading request body: {e}")).into_response();
        }
    };
    let resp = route(&app, &method, &path, &query, &parts.headers, &body).await;
    let resp = resp.unwrap_or_else(IntoResponse::into_response);
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}

async fn route(
    app: &Arc<App>,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let segs: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let get_only = |v: Value| -> Result<Response, ApiError> {
        if method == Method::GET || method == Method::HEAD {
            Ok(json_response(StatusCode::OK, &v))
        } else {
            Err(ApiError::method_not_allowed(path))
        }
    };
    match segs.as_slice() {
        ["version"] => return get_only(discovery::version(&app.minor_version)),
        ["healthz" | "livez" | "readyz", ..] => {
            return Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "ok",
            )
                .into_response());
        }
        ["api"] => return get_only(discovery::core_versions(&app.server_address)),
        ["api", "v1"] => return get_only(discovery::resources("", "v1").expect("core is served")),
        ["apis"] => return get_only(discovery::groups()),
        ["openapi", "v3"] => return get_only(openapi::index()),
        ["openapi", "v3", "api", v] => {
            return get_only(openapi::document("", v).ok_or_else(|| ApiError::no_route(path))?);
        }
        ["openapi", "v3", "apis", g, v] => {
            return get_only(openapi::document(g, v).ok_or_else(|| ApiError::no_route(path))?);
        }
        ["apis", g] => {
            return get_only(discovery::group(g).ok_or_else(|| ApiError::no_route(path))?);
        }
        ["apis", g, v] => {
            return get_only(discovery::resources(g, v).ok_or_else(|| ApiError::no_route(path))?);
        }
        _ => {}
    }
    let (group, version, rest): (&str, &str, &[&str]) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", v, rest),
        ["apis", g, v, rest @ ..] => (g, v, rest),
        _ => return Err(ApiError::no_route(path)),
    };
    let target = parse_target(group, version, rest).ok_or_else(|| ApiError::no_route(path))?;
    handle_resource(app, method, target, query, headers, body)
}

fn parse_target(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let lookup = |plural: &str| registry::lookup(group, version, plural);
    let t = |def, ns: Option<&str>, name: Option<&str>, sub: Option<&str>| Target {
        def,
        namespace: ns.map(String::from),
        name: name.map(String::from),
        sub: sub.map(String::from),
    };
    let target = match rest {
        ["namespaces", ns, plural, tail @ ..] if lookup(plural).is_some_and(|d| d.namespaced) => {
            let def = lookup(plural)?;
            match tail {
                [] => t(def, Some(ns), None, None),
                [name] => t(def, Some(ns), Some(name), None),
                [name, sub] => t(def, Some(ns), Some(name), Some(sub)),
                _ => return None,
            }
        }
        [plural, tail @ ..] => {
            let def = lookup(plural)?;
            match tail {
                [] => t(def, None, None, None),
                // A namespaced object must be addressed inside its namespace.
                [name] if !def.namespaced => t(def, None, Some(name), None),
                [name, sub] if !def.namespaced => t(def, None, Some(name), Some(sub)),
                _ => return None,
            }
        }
        _ => return None,
    };
    if let Some(sub) = &target.sub
        && !(sub == "status" && target.def.status_subresource)
    {
        return None;
    }
    Some(target)
}

fn write_opts(query: &HashMap<String, String>, headers: &HeaderMap) -> Result<WriteOpts, ApiError> {
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unsupported dryRun value {other:?}: only \"All\""
            )));
        }
    };
    let strict = match query.get("fieldValidation").map(String::as_str) {
        None | Some("") | Some("Ignore") | Some("Warn") => false,
        Some("Strict") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", got {other:?}"
            )));
        }
    };
    Ok(WriteOpts {
        dry_run,
        field_manager: query.get("fieldManager").filter(|s| !s.is_empty()).cloned(),
        strict,
        force: truthy(query, "force"),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(String::from),
    })
}

fn parse_json_body(content_type: &str, body: &[u8]) -> Result<Value, ApiError> {
    let base = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if base == "application/vnd.kubernetes.protobuf" {
        return protobuf::decode(body)
            .map_err(|e| ApiError::unsupported_media_type_body(&format!("{base} ({e})")));
    }
    if !matches!(
        base.as_str(),
        "" | "application/json" | "application/yaml" | "*/*"
    ) {
        // Typed Go clients (e.g. `kubectl create configmap`) send protobuf, which this server does
        // not decode; the real server accepts it, so say clearly what to do instead.
        return Err(ApiError::unsupported_media_type_body(&base));
    }
    if body.is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    // JSON is the wire format; YAML bodies (a superset) are accepted too, as kube-apiserver does.
    serde_json::from_slice(body).or_else(|json_err| {
        std::str::from_utf8(body)
            .ok()
            .and_then(|t| serde_yaml_ng::from_str::<Value>(t).ok())
            .filter(Value::is_object)
            .ok_or_else(|| {
                ApiError::bad_request(format!("error decoding request body: {json_err}"))
            })
    })
}

fn selectors(
    def: &ResourceDef,
    query: &HashMap<String, String>,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str), def)
        .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
    Ok((labels, fields))
}

fn list_response(
    def: &ResourceDef,
    items: Vec<Value>,
    rv: u64,
    beyond: usize,
    table_av: Option<&str>,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let mut page = paging::paginate(
        items,
        rv,
        query.get("limit").map(String::as_str),
        query.get("continue").map(String::as_str),
    )?;
    if page.continue_token.is_some() {
        // `items` held one item past the page, plus `beyond` not copied at all.
        page.remaining = Some(page.remaining.unwrap_or(1) + beyond);
    }
    let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(n) = page.remaining {
        meta["remainingItemCount"] = json!(n);
    }
    if let Some(av) = table_av {
        let include = query
            .get("includeObject")
            .map_or("Metadata", String::as_str);
        let mut t = table::table(def, av, &page.items, include, None);
        t["metadata"] = meta;
        return Ok(json_response(StatusCode::OK, &t));
    }
    // Items of a list carry no apiVersion/kind, as on a real server.
    let items: Vec<Value> = page
        .items
        .into_iter()
        .map(|mut o| {
            if let Some(m) = o.as_object_mut() {
                m.remove("apiVersion");
                m.remove("kind");
            }
            o
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"kind": def.list_kind(), "apiVersion": def.api_version(), "metadata": meta, "items": items}),
    ))
}

fn object_response(
    code: StatusCode,
    def: &ResourceDef,
    obj: Value,
    table_av: Option<&str>,
) -> Response {
    match table_av {
        Some(av) => json_response(code, &table::table(def, av, &[obj], "Object", None)),
        None => json_response(code, &obj),
    }
}

fn handle_resource(
    app: &Arc<App>,
    method: &Method,
    t: Target,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let def = t.def;
    let ns = t.namespace.as_deref();
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let table_av = table::wants_table(accept);
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let is_watch = truthy(query, "watch");
    match (method.clone(), t.name.as_deref()) {
        (Method::GET, name) if is_watch => {
            let (labels, mut fields) = selectors(def, query)?;
            if let Some(name) = name {
                let pin = format!("metadata.name={name}");
                fields = FieldSelector::parse(&pin, def).map_err(ApiError::bad_request)?;
            }
            let timeout = match query.get("timeoutSeconds") {
                Some(s) => Some(Duration::from_secs(s.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid timeoutSeconds {s:?}"))
                })?)),
                None => None,
            };
            let req = WatchRequest {
                def,
                namespace: t.namespace.clone(),
                labels,
                fields,
                resource_version: query.get("resourceVersion").cloned(),
                bookmarks: truthy(query, "allowWatchBookmarks"),
                send_initial_events: truthy(query, "sendInitialEvents"),
                timeout,
                table: table_av,
            };
            watch::serve(app.clone(), req)
        }
        (Method::GET, Some(name)) => {
            let obj = verbs::get(&app.lock_store(), def, ns, name)?;
            Ok(object_response(StatusCode::OK, def, obj, table_av))
        }
        (Method::GET, None) => {
            let (labels, fields) = selectors(def, query)?;
            let after = paging::resume_after(query.get("continue").map(String::as_str));
            // One more than the limit tells whether another page follows.
            let cap = query
                .get("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|l| *l > 0)
                .map(|l| l + 1);
            let (items, rv, beyond) = verbs::list_page(
                &app.lock_store(),
                def,
                ns,
                &labels,
                &fields,
                after.as_ref(),
                cap,
            );
            list_response(def, items, rv, beyond, table_av, query)
        }
        (Method::POST, None) => {
            if def.namespaced && ns.is_none() {
                return Err(ApiError::method_not_allowed(
                    "create requires a namespace in the path",
                ));
            }
            let opts = write_opts(query, headers)?;
            let obj = verbs::prepare_body(
                def,
                ns,
                None,
                parse_json_body(content_type, body)?,
                opts.strict,
            )?;
            let created = verbs::create(&mut app.lock_store(), def, ns, obj, &opts, None)?;
            Ok(object_response(StatusCode::CREATED, def, created, table_av))
        }
        (Method::PUT, Some(name)) => {
            let opts = write_opts(query, headers)?;
            let obj = verbs::prepare_body(
                def,
                ns,
                Some(name),
                parse_json_body(content_type, body)?,
                opts.strict,
            )?;
            let up = verbs::update(
                &mut app.lock_store(),
                def,
                ns,
                name,
                t.sub.as_deref(),
                obj,
                &opts,
                None,
            )?;
            let code = if up.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(object_response(code, def, up.object, table_av))
        }
        (Method::PATCH, Some(name)) => {
            let kind = PatchKind::from_content_type(content_type)
                .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
            let opts = write_opts(query, headers)?;
            if kind == PatchKind::Apply && opts.field_manager.is_none() {
                return Err(ApiError::bad_request(
                    "PATCH requests with apply content type must specify a fieldManager",
                ));
            }
            if kind != PatchKind::Apply && query.contains_key("force") {
                return Err(ApiError::bad_request(
                    "force may only be specified with apply requests",
                ));
            }
            let patch_doc = verbs::parse_patch_body(kind, body)?;
            let up = verbs::patch(
                &mut app.lock_store(),
                def,
                ns,
                name,
                t.sub.as_deref(),
                kind,
                patch_doc,
                &opts,
            )?;
            let code = if up.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(object_response(code, def, up.object, table_av))
        }
        (Method::DELETE, Some(name)) => {
            if t.sub.is_some() {
                return Err(ApiError::method_not_allowed("delete on a subresource"));
            }
            let opts = delete_opts(query, body)?;
            let gone = verbs::delete(&mut app.lock_store(), def, ns, name, &opts)?;
            Ok(json_response(StatusCode::OK, &gone))
        }
        (Method::DELETE, None) => {
            let (labels, fields) = selectors(def, query)?;
            let opts = delete_opts(query, body)?;
            let mut store = app.lock_store();
            let (items, rv) = verbs::list(&store, def, ns, &labels, &fields);
            let mut deleted = Vec::new();
            for item in items {
                let name = item["metadata"]["name"].as_str().unwrap_or("").to_string();
                let item_ns = item["metadata"]["namespace"].as_str().map(String::from);
                if let Ok(gone) = verbs::delete(&mut store, def, item_ns.as_deref(), &name, &opts) {
                    deleted.push(gone);
                }
            }
            drop(store);
            list_response(def, deleted, rv, 0, None, &HashMap::new())
        }
        (Method::POST, Some(_)) | (Method::PUT, None) | (Method::PATCH, None) => {
            Err(ApiError::method_not_allowed(def.plural))
        }
        _ => Err(ApiError::method_not_allowed(def.plural)),
    }
}

fn delete_opts(query: &HashMap<String, String>, body: &[u8]) -> Result<DeleteOpts, ApiError> {
    let mut o = DeleteOpts {
        dry_run: query.get("dryRun").is_some_and(|v| v == "All"),
        ..Default::default()
    };
    if !body.is_empty() {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?;
        if !v.is_object() {
            return Err(ApiError::bad_request("DeleteOptions must be an object"));
        }
        o.uid = v["preconditions"]["uid"].as_str().map(String::from);
        o.resource_version = v["preconditions"]["resourceVersion"]
            .as_str()
            .map(String::from);
        if v["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "All"))
        {
            o.dry_run = true;
        }
    }
    Ok(o)
}
