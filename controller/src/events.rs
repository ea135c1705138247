//! Kubernetes Events, published by one background worker in the order they
//! were queued.
//!
//! Events are for people reading `kubectl describe`; a Service's IP in its
//! status is what clients wait for. So reconciling never waits on an Event:
//! it queues it and goes on. One worker publishing one Event at a time also
//! bounds what Events cost the API server during a burst (1,000 new Services
//! would otherwise put 1,000 Event writes in front of the status writes), and
//! the queue is bounded: when it is full, further Events are dropped and
//! counted (`ferrolb_events_dropped_total`), as client-go's broadcaster does,
//! rather than growing the controller's memory without limit.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::metrics::Metrics;

/// Events waiting to be published, at most.
pub const QUEUE_CAPACITY: usize = 1024;

/// One Event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The object the Event is about.
    pub regarding: ObjectReference,
    /// Warning (true) or Normal.
    pub warning: bool,
    /// CamelCase reason.
    pub reason: String,
    /// What the controller was doing (`Allocate`, `Release`, `LoadConfig`).
    pub action: String,
    /// Human-readable text.
    pub note: String,
}

/// The sending side of the queue: cheap to clone, never blocks.
#[derive(Clone)]
pub struct EventQueue {
    tx: mpsc::Sender<Pending>,
    metrics: Arc<Metrics>,
}

impl EventQueue {
    /// A queue and its receiving end, for [`publish_all`].
    pub fn new(metrics: Arc<Metrics>) -> (Self, mpsc::Receiver<Pending>) {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        (Self { tx, metrics }, rx)
    }

    /// Queues an Event; drops (and counts) it when the queue is full.
    pub fn send(&self, ev: Pending) {
        if let Err(e) = self.tx.try_send(ev) {
            self.metrics.events_dropped.inc();
            let ev = match e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
            };
            debug!(reason = %ev.reason, "event queue full: event dropped");
        }
    }
}

/// Publishes queued Events one at a time until every sender is gone, while
/// `leading`: Events queued before a step-down are discarded, and one being
/// sent when it happens is cancelled, so that a former leader writes nothing.
pub async fn publish_all(
    recorder: Recorder,
    mut rx: mpsc::Receiver<Pending>,
    leading: watch::Receiver<bool>,
) {
    while let Some(p) = rx.recv().await {
        if !*leading.borrow() {
            debug!(reason = %p.reason, "not leading: queued event discarded");
            continue;
        }
        let ev = Event {
            type_: if p.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: p.reason,
            note: Some(p.note),
            action: p.action,
            secondary: None,
        };
        let mut lost = leading.clone();
        tokio::select! {
            r = recorder.publish(&ev, &p.regarding) => {
                if let Err(e) = r {
                    warn!(error = %e, reason = %ev.reason, "publishing event failed");
                }
            }
            _ = lost.wait_for(|l| !*l) => {
                debug!(reason = %ev.reason, "stepped down: event being published cancelled");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_pending(i: usize) -> Pending {
        Pending {
            regarding: ObjectReference {
                name: Some(format!("svc-{i}")),
                ..Default::default()
            },
            warning: false,
            reason: "IPAllocated".into(),
            action: "Allocate".into(),
            note: format!("allocated 192.0.2.{i}"),
        }
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_blocking() {
        let metrics = Arc::new(Metrics::new());
        let (q, mut rx) = EventQueue::new(metrics.clone());
        for i in 0..QUEUE_CAPACITY + 3 {
            q.send(mk_pending(i));
        }
        assert_eq!(metrics.events_dropped.get(), 3);
        // The queued ones come out in order, the first first.
        assert_eq!(rx.recv().await.unwrap(), mk_pending(0));
        assert_eq!(rx.recv().await.unwrap(), mk_pending(1));
        // Room again: the next one is queued, not dropped.
        q.send(mk_pending(9999));
        assert_eq!(metrics.events_dropped.get(), 3);
    }
}
