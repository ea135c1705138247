//! Watch streams: newline-delimited JSON watch events, starting from a resourceVersion (replaying
//! the kept history, or 410 Gone as an ERROR event when it no longer reaches back), from the
//! current state (synthetic ADDED events), optional BOOKMARK events, selector transitions
//! (an object that stops matching is DELETED for that watch), and an end on timeout, on server
//! shutdown, or when the test asks all watches to break.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::handlers::App;
use super::kinds;
use super::registry::ResourceDef;
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::store::{Change, ChangeType};
use super::table;

/// A watch request, parsed.
pub struct WatchRequest {
    pub def: &'static ResourceDef,
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    /// `resourceVersion`; None or "0" start from the current state.
    pub resource_version: Option<String>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout: Option<Duration>,
    /// Table apiVersion when the client asked for Table rows.
    pub table: Option<&'static str>,
}

impl WatchRequest {
    fn matches(&self, obj: &Value) -> bool {
        let ns_ok = match (&self.namespace, self.def.namespaced) {
            (Some(ns), true) => obj["metadata"]["namespace"].as_str() == Some(ns.as_str()),
            _ => true,
        };
        ns_ok
            && self.labels.matches(obj["metadata"]["labels"].as_object())
            && self.fields.matches(obj)
    }

    fn render(&self, obj: &Value) -> Value {
        match self.table {
            Some(av) => table::table(self.def, av, std::slice::from_ref(obj), "Object", None),
            None => obj.clone(),
        }
    }

    /// The watch event line for a change, as seen through this watch's selectors.
    fn event_for(&self, c: &Change) -> Option<Bytes> {
        if c.storage != self.def.storage {
            return None;
        }
        let new = kinds::to_view_cow(self.def, &c.object);
        let now_matches = self.matches(&new);
        let was = match (&c.kind, &c.old) {
            // Without label or field selectors an object matches before and after a
            // change alike (its namespace never changes): no need to view the old one.
            (ChangeType::Modified, Some(_)) if self.labels.is_empty() && self.fields.is_empty() => {
                now_matches
            }
            (ChangeType::Modified, Some(old)) => self.matches(&kinds::to_view_cow(self.def, old)),
            (ChangeType::Deleted, _) => now_matches,
            _ => false,
        };
        let ty = match (c.kind, was, now_matches) {
            (ChangeType::Added, _, true) => "ADDED",
            (ChangeType::Modified, true, true) => "MODIFIED",
            (ChangeType::Modified, false, true) => "ADDED",
            (ChangeType::Modified, true, false) => "DELETED",
            (ChangeType::Deleted, true, _) => "DELETED",
            _ => return None,
        };
        Some(match self.table {
            Some(_) => line(&json!({"type": ty, "object": self.render(&new)})),
            None => event_line(ty, &new),
        })
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {"kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": meta}})
    }
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// `{"type": ty, "object": obj}` and a newline, serialized straight from the object.
fn event_line(ty: &str, obj: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct WatchEvent<'a> {
        #[serde(rename = "type")]
        ty: &'a str,
        object: &'a Value,
    }
    let mut b = serde_json::to_vec(&WatchEvent { ty, object: obj }).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn gone_event(e: &ApiError) -> Value {
    json!({"type": "ERROR", "object": e.to_status()})
}

/// Starts a watch: decides its starting point under the store lock, then streams from a task.
pub fn serve(app: Arc<App>, req: WatchRequest) -> Result<Response, ApiError> {
    let start_rv: Option<u64> = match req.resource_version.as_deref() {
        None | Some("") | Some("0") => None,
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version {s:?}")))?,
        ),
    };
    // The events before the live ones (history replayed, or the current state), rendered.
    let mut initial_lines: Vec<Bytes> = Vec::new();
    let (rx, mut last_rv) = {
        let store = app.lock_store();
        let rx = store.subscribe();
        let current = store.current_rv();
        match start_rv {
            Some(rv) if !req.send_initial_events => match store.changes_since(rv) {
                Ok(changes) => {
                    initial_lines.extend(changes.iter().filter_map(|c| req.event_for(c)));
                    (rx, current.max(rv))
                }
                Err(oldest) => {
                    let gone = vec![gone_event(&ApiError::expired(rv, oldest))];
                    return Ok(stream_response(spawn_lines(gone)));
                }
            },
            _ => {
                for o in store.list(
                    req.def.storage,
                    req.namespace.as_deref().filter(|_| req.def.namespaced),
                ) {
                    let v = kinds::to_view_cow(req.def, o);
                    if req.matches(&v) {
                        initial_lines.push(match req.table {
                            Some(_) => line(&json!({"type": "ADDED", "object": req.render(&v)})),
                            None => event_line("ADDED", &v),
                        });
                    }
                }
                if req.send_initial_events && req.bookmarks {
                    initial_lines.push(line(&req.bookmark(current, true)));
                }
                (rx, current)
            }
        }
    };
    let (tx, body_rx) = mpsc::channel::<Bytes>(256);
    let mut breaker = app.breaker.subscribe();
    let shutdown = app.shutdown.clone();
    let bookmark_every = app.bookmark_interval;
    tokio::spawn(async move {
        let mut rx: broadcast::Receiver<Arc<Change>> = rx;
        for l in initial_lines {
            if tx.send(l).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(req.timeout.unwrap_or(Duration::from_secs(1800)));
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(bookmark_every);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = breaker.changed() => break,
                _ = &mut deadline => break,
                _ = tick.tick(), if req.bookmarks => {
                    if tx.send(line(&req.bookmark(last_rv, false))).await.is_err() { break; }
                }
                msg = rx.recv() => match msg {
                    Ok(change) => {
                        if change.rv <= last_rv {
                            continue;
                        }
                        last_rv = change.rv;
                        if let Some(l) = req.event_for(&change)
                            && tx.send(l).await.is_err()
                        {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // This watch fell behind the live stream: end it like a compaction would.
                        let _ = tx.send(line(&gone_event(&ApiError::expired(last_rv, last_rv + 1)))).await;
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    });
    Ok(stream_response(body_rx))
}

fn spawn_lines(lines: Vec<Value>) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(lines.len().max(1));
    for l in lines {
        let _ = tx.try_send(line(&l));
    }
    rx
}

fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, std::convert::Infallible>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    resp
}
