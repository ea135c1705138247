//! The controller's Kubernetes Events: the shared sink ([`ferrolb_process::events`],
//! where the queue, its drop-and-count policy and the publishing are explained), fed
//! by the reconciler and the configuration watch, published only while leading.

use std::sync::Arc;

use ferrolb_process::events::{EventSink, Publisher};
use kube::runtime::events::Reporter;
use tokio::sync::watch;

use crate::metrics::ControllerMetrics;

/// Events waiting to be published, at most.
pub const QUEUE_CAPACITY: usize = 1024;

/// The reporting controller name on every Event.
pub const REPORTING_CONTROLLER: &str = "ferrolb-controller";

/// Starts publishing as replica `identity`, while `leading`: Events queued before a
/// step-down are discarded and one being published is cancelled, so that a former
/// leader writes nothing. Drops are counted on `ferrolb_events_dropped_total`.
pub fn start(
    client: kube::Client,
    identity: &str,
    metrics: &Arc<ControllerMetrics>,
    leading: watch::Receiver<bool>,
) -> (EventSink, Publisher) {
    let reporter = Reporter {
        controller: REPORTING_CONTROLLER.into(),
        instance: Some(identity.to_owned()),
    };
    let dropped = metrics.events_dropped.clone();
    ferrolb_process::events::start(client, reporter, QUEUE_CAPACITY, dropped, Some(leading))
}
