//! Watch streams: newline-delimited JSON watch events, starting from a resourceVersion (replaying
//! the kept history, or 410 Gone as an ERROR event when it no longer reaches back), from the
//! current state (synthetic ADDED events), optional BOOKMARK events, selector transitions
//! (an object that stops matching is DELETED for that watch), and an end on timeout, on server
//! shutdown, or when the test asks all watches to break.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::handlers::App;
use crate::kinds;
use crate::kubectl::table;
use crate::registry::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{Change, ChangeType};

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
    let (rx, last_rv) = {
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
                    return Ok(stream_response(lines_stream(gone)));
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
    // The stream is the response body itself, polled by the connection's own task: an
    // event costs one wake-up of that task, not a hop through a task of its own first
    // (which, on a busy server, doubled the time an event waited in the run queue).
    let live = Live {
        initial: initial_lines.into(),
        rx,
        breaker: app.breaker.subscribe(),
        shutdown: app.shutdown.clone(),
        deadline: Box::pin(tokio::time::sleep(
            req.timeout.unwrap_or(Duration::from_secs(1800)),
        )),
        tick: None,
        bookmark_every: app.bookmark_interval,
        last_rv,
        req,
        ended: false,
    };
    Ok(stream_response(futures::stream::unfold(
        live,
        |mut live| async move { live.next().await.map(|line| (line, live)) },
    )))
}

/// The state of a running watch.
struct Live {
    /// Lines to send before the live events.
    initial: VecDeque<Bytes>,
    rx: broadcast::Receiver<Arc<Change>>,
    breaker: tokio::sync::watch::Receiver<u64>,
    shutdown: tokio_util::sync::CancellationToken,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Started on the first live poll, so that no bookmark precedes the initial events.
    tick: Option<tokio::time::Interval>,
    bookmark_every: Duration,
    last_rv: u64,
    req: WatchRequest,
    /// Set after the last line (an ERROR event) was sent.
    ended: bool,
}

impl Live {
    /// The next line of the stream, or None when the watch ends.
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(l) = self.initial.pop_front() {
            return Some(l);
        }
        if self.ended {
            return None;
        }
        let every = self.bookmark_every;
        let tick = self.tick.get_or_insert_with(|| {
            let mut t = tokio::time::interval(every);
            t.reset();
            t
        });
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                _ = self.breaker.changed() => return None,
                _ = &mut self.deadline => return None,
                _ = tick.tick(), if self.req.bookmarks => {
                    return Some(line(&self.req.bookmark(self.last_rv, false)));
                }
                msg = self.rx.recv() => match msg {
                    Ok(change) => {
                        if change.rv <= self.last_rv {
                            continue;
                        }
                        self.last_rv = change.rv;
                        if let Some(l) = self.req.event_for(&change) {
                            return Some(l);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        // This watch fell behind the live stream: end it like a compaction would.
                        self.ended = true;
                        let rv = self.last_rv;
                        return Some(line(&gone_event(&ApiError::expired(rv, rv + 1))));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }
}

fn lines_stream(lines: Vec<Value>) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    futures::stream::iter(lines.into_iter().map(|l| line(&l)))
}

fn stream_response(lines: impl futures::Stream<Item = Bytes> + Send + 'static) -> Response {
    use futures::StreamExt;
    let stream = lines.map(Ok::<Bytes, std::convert::Infallible>);
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
