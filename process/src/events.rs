//! Kubernetes Events, queued without waiting and published by one background task in
//! the order they were queued: the one Event sink of both binaries.
//!
//! Events are for people reading `kubectl describe`; what clients wait for (a status,
//! an answered ARP request) never waits on one. So a binary queues an Event with
//! [`EventSink::send`] and goes on. One task publishing one Event at a time also
//! bounds what Events cost the API server during a burst (a thousand new Services
//! would otherwise put a thousand Event writes in front of the status writes).
//!
//! The policy when the queue is full, for both binaries: the Event is dropped and
//! counted on the counter the binary exports (`…_events_dropped_total`), as
//! client-go's broadcaster does, rather than growing memory without limit.
//!
//! Each Event is published through a fresh kube-runtime `Recorder`. A shared one
//! folds every Event with the same reason, action and object into one series and
//! keeps the *first* note, so "now announced by node b" would still read "now
//! announced by node a", and a second allocation would show the first one's IP. Both
//! binaries report changes; what can repeat (a Service that still finds no address each
//! time another is released) is not published again while the same object already got
//! the same reason and note within [`REPEAT_WINDOW`] ([`Repeats`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

/// What an Event says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventData {
    /// Warning (true) or Normal.
    pub warning: bool,
    /// CamelCase reason (`IPAllocated`, `Announcing`).
    pub reason: String,
    /// What the binary was doing (`Allocate`, `Announce`).
    pub action: String,
    /// Human-readable text.
    pub note: String,
}

impl EventData {
    /// The kube-runtime Event.
    pub fn to_event(&self) -> Event {
        Event {
            type_: if self.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: self.reason.clone(),
            note: Some(self.note.clone()),
            action: self.action.clone(),
            secondary: None,
        }
    }
}

/// One Event to publish and the object it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The object the Event is about.
    pub regarding: ObjectReference,
    /// The Event.
    pub event: EventData,
}

/// The sending side of the queue: cheap to clone, never blocks.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Pending>,
    dropped: Counter,
}

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSink")
            .field("dropped", &self.dropped.get())
            .finish_non_exhaustive()
    }
}

impl EventSink {
    /// A sink holding at most `capacity` Events, counting those it drops on `dropped`,
    /// and the receiving end for [`Publisher::spawn`].
    pub fn new(capacity: usize, dropped: Counter) -> (Self, mpsc::Receiver<Pending>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx, dropped }, rx)
    }

    /// Queues an Event; drops (and counts) it when the queue is full. After the
    /// publisher was drained, Events are dropped without being counted: the process is
    /// stopping.
    pub fn send(&self, pending: Pending) {
        match self.tx.try_send(pending) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(p)) => {
                self.dropped.inc();
                debug!(reason = %p.event.reason, "event queue full: event dropped");
            }
            Err(mpsc::error::TrySendError::Closed(p)) => {
                debug!(reason = %p.event.reason, "event publisher stopped: event dropped");
            }
        }
    }
}

/// A sink of `capacity` Events counting its drops on `dropped`, and its publisher
/// (see [`Publisher::spawn`] for `gate`).
pub fn start(
    client: kube::Client,
    reporter: Reporter,
    capacity: usize,
    dropped: Counter,
    gate: Option<watch::Receiver<bool>>,
) -> (EventSink, Publisher) {
    let (sink, rx) = EventSink::new(capacity, dropped);
    (sink, Publisher::spawn(client, reporter, rx, gate))
}

/// The background task publishing what an [`EventSink`] queued. Dropping it stops the
/// task (queued Events are lost); [`Publisher::drain`] publishes them first.
#[derive(Debug)]
pub struct Publisher {
    drain: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Publisher {
    /// Starts publishing Events from `rx` as `reporter`.
    ///
    /// With a `gate`, Events are only published while it reads true (the controller's
    /// leadership): Events queued before it turned false are discarded, and one being
    /// published when it does is cancelled, so that a former leader writes nothing.
    pub fn spawn(
        client: kube::Client,
        reporter: Reporter,
        rx: mpsc::Receiver<Pending>,
        gate: Option<watch::Receiver<bool>>,
    ) -> Self {
        let (drain_tx, drain_rx) = oneshot::channel();
        let task = tokio::spawn(publish_all(client, reporter, rx, gate, drain_rx));
        Self {
            drain: Some(drain_tx),
            task,
        }
    }

    /// Stops taking Events, publishes the ones already queued and waits for that, at
    /// most `timeout` (then the rest is dropped).
    pub async fn drain(mut self, timeout: Duration) {
        if let Some(d) = self.drain.take() {
            let _ = d.send(());
        }
        if tokio::time::timeout(timeout, &mut self.task).await.is_err() {
            debug!(?timeout, "publishing the last events timed out");
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How long an Event identical to one already published (same object, reason and note)
/// is not published again.
pub const REPEAT_WINDOW: Duration = Duration::from_secs(600);

/// Most objects whose last Events [`Repeats`] remembers; beyond, the oldest are forgotten.
const REPEAT_MEMORY: usize = 4096;

/// The last Event published about each object, so that the same one is not published
/// again right after itself. Objects and Events are remembered as 64-bit hashes (a
/// speaker leading a thousand Services keeps a thousand entries; strings would cost
/// far more than the few bytes here, and a collision only lets one Event through).
#[derive(Debug, Default)]
pub struct Repeats {
    last: HashMap<u64, (u64, Instant)>,
}

fn hash_of(parts: &[&str]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

impl Repeats {
    /// True when `p` says what the last Event published about the same object said
    /// (reason and note), at most [`REPEAT_WINDOW`] before `now`; otherwise remembers it
    /// as that object's last Event. A change in between (announced, stopped, announced
    /// again) is published in full.
    pub fn is_repeat(&mut self, p: &Pending, now: Instant) -> bool {
        let r = &p.regarding;
        let object = match &r.uid {
            Some(uid) => hash_of(&[uid]),
            None => hash_of(&[
                r.kind.as_deref().unwrap_or_default(),
                r.namespace.as_deref().unwrap_or_default(),
                r.name.as_deref().unwrap_or_default(),
            ]),
        };
        let said = hash_of(&[&p.event.reason, &p.event.note]);
        if let Some((last, at)) = self.last.get(&object)
            && *last == said
            && now.duration_since(*at) < REPEAT_WINDOW
        {
            return true;
        }
        if self.last.len() >= REPEAT_MEMORY {
            self.last
                .retain(|_, (_, at)| now.duration_since(*at) < REPEAT_WINDOW);
            if self.last.len() >= REPEAT_MEMORY {
                self.last.clear();
            }
        }
        self.last.insert(object, (said, now));
        false
    }
}

async fn publish_all(
    client: kube::Client,
    reporter: Reporter,
    mut rx: mpsc::Receiver<Pending>,
    gate: Option<watch::Receiver<bool>>,
    mut drain: oneshot::Receiver<()>,
) {
    let mut draining = false;
    let mut repeats = Repeats::default();
    loop {
        let next = tokio::select! {
            biased;
            p = rx.recv() => p,
            _ = &mut drain, if !draining => {
                // Senders may live on; closing ends the loop once the queue is empty.
                draining = true;
                rx.close();
                continue;
            }
        };
        let Some(p) = next else { return };
        if repeats.is_repeat(&p, Instant::now()) {
            debug!(reason = %p.event.reason, object = ?p.regarding.name, "same event as just published: not repeated");
            continue;
        }
        // Why a fresh Recorder each time: see the module's documentation.
        let recorder = Recorder::new(client.clone(), reporter.clone());
        let event = p.event.to_event();
        let publish = recorder.publish(&event, &p.regarding);
        let result = match &gate {
            None => publish.await,
            Some(gate) => {
                if !*gate.borrow() {
                    debug!(reason = %p.event.reason, "not leading: queued event discarded");
                    continue;
                }
                let mut lost = gate.clone();
                tokio::select! {
                    r = publish => r,
                    _ = lost.wait_for(|open| !*open) => {
                        debug!(reason = %p.event.reason, "stepped down: event being published cancelled");
                        continue;
                    }
                }
            }
        };
        if let Err(e) = result {
            warn!(error = %e, reason = %p.event.reason,
                object = ?p.regarding.name, "publishing an event failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn pending(i: usize, reason: &str) -> Pending {
        Pending {
            regarding: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Service".into()),
                namespace: Some("default".into()),
                name: Some(format!("svc-{i}")),
                ..Default::default()
            },
            event: EventData {
                warning: false,
                reason: reason.into(),
                note: format!("allocated 192.0.2.{i}"),
                action: "Allocate".into(),
            },
        }
    }

    /// What the API server saw: method, path and body of each request.
    type Requests = Arc<Mutex<Vec<(String, String, String)>>>;

    /// A client whose API server records each request (method, path, body) and answers
    /// with the body it was sent, as a create does.
    fn recording_client() -> (kube::Client, Requests) {
        let seen: Requests = Arc::default();
        let log = seen.clone();
        let svc = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let log = log.clone();
            async move {
                let method = req.method().to_string();
                let path = req.uri().path().to_owned();
                let body = req.into_body().collect_bytes().await?;
                log.lock().unwrap().push((
                    method,
                    path,
                    String::from_utf8_lossy(&body).into_owned(),
                ));
                Ok::<_, kube::Error>(
                    http::Response::builder()
                        .status(201)
                        .body(kube::client::Body::from(body.to_vec()))
                        .unwrap(),
                )
            }
        });
        (kube::Client::new(svc, "default"), seen)
    }

    fn reporter() -> Reporter {
        Reporter {
            controller: "ferrolb-test".into(),
            instance: Some("test-1".into()),
        }
    }

    #[test]
    fn an_identical_event_is_not_repeated_within_the_window() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        let a = pending(1, "AllocationFailed");
        assert!(!r.is_repeat(&a, t0));
        assert!(r.is_repeat(&a, t0 + Duration::from_secs(5)));
        let mut other_note = a.clone();
        other_note.event.note.push_str(" (again, differently)");
        assert!(!r.is_repeat(&other_note, t0 + Duration::from_secs(6)));
        assert!(
            !r.is_repeat(&a, t0 + Duration::from_secs(7)),
            "the note changed in between"
        );
        assert!(
            !r.is_repeat(&pending(2, "AllocationFailed"), t0),
            "another object"
        );
        assert!(r.is_repeat(&a, t0 + Duration::from_secs(8)));
        assert!(!r.is_repeat(&a, t0 + Duration::from_secs(8) + REPEAT_WINDOW));
        // Something else in between: the same Event again is news.
        let mut r = Repeats::default();
        assert!(!r.is_repeat(&pending(1, "Announcing"), t0));
        assert!(!r.is_repeat(&pending(1, "StoppedAnnouncing"), t0));
        assert!(!r.is_repeat(&pending(1, "Announcing"), t0));
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_blocking() {
        let dropped = Counter::default();
        let (sink, mut rx) = EventSink::new(4, dropped.clone());
        for i in 0..7 {
            sink.send(pending(i, "IPAllocated"));
        }
        assert_eq!(dropped.get(), 3);
        // The queued ones come out in order, the first first.
        assert_eq!(rx.recv().await.unwrap(), pending(0, "IPAllocated"));
        assert_eq!(rx.recv().await.unwrap(), pending(1, "IPAllocated"));
        // Room again: the next one is queued, not dropped.
        sink.send(pending(99, "IPAllocated"));
        assert_eq!(dropped.get(), 3);
    }

    #[tokio::test]
    async fn drain_publishes_every_queued_event_in_order_each_as_its_own_event() {
        let (client, seen) = recording_client();
        let (sink, rx) = EventSink::new(16, Counter::default());
        // Queued before the publisher runs, with one reason: a shared Recorder would
        // turn the second and third into patches of the first.
        for i in 0..3 {
            sink.send(pending(i, "IPAllocated"));
        }
        let publisher = Publisher::spawn(client, reporter(), rx, None);
        // The sink outlives the drain: draining must not wait for every sender to go.
        publisher.drain(Duration::from_secs(5)).await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3, "{seen:?}");
        for (i, (method, path, body)) in seen.iter().enumerate() {
            assert_eq!(method, "POST");
            assert_eq!(path, "/apis/events.k8s.io/v1/namespaces/default/events");
            assert!(body.contains(&format!("allocated 192.0.2.{i}")), "{body}");
            assert!(
                body.contains("\"reportingController\":\"ferrolb-test\""),
                "{body}"
            );
        }
        // Stopped: further Events are dropped, and not counted as a full queue.
        sink.send(pending(5, "IPAllocated"));
        assert_eq!(sink.dropped.get(), 0);
    }

    #[tokio::test]
    async fn a_closed_gate_discards_queued_events() {
        let (client, seen) = recording_client();
        let (gate_tx, gate_rx) = watch::channel(false);
        let (sink, rx) = EventSink::new(16, Counter::default());
        sink.send(pending(0, "IPAllocated"));
        let publisher = Publisher::spawn(client, reporter(), rx, Some(gate_rx));
        // The publisher takes the first Event while the gate is closed (this runtime
        // has one thread: it takes and discards it in one go).
        for _ in 0..500 {
            if sink.tx.capacity() == 16 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            sink.tx.capacity(),
            16,
            "the publisher never took the first Event"
        );
        gate_tx.send(true).unwrap();
        sink.send(pending(1, "IPAllocated"));
        publisher.drain(Duration::from_secs(5)).await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen[0].2.contains("allocated 192.0.2.1"), "{:?}", seen[0]);
    }
}
