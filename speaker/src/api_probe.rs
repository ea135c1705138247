//! How fresh this node's view of the API server is: one cheap read (`GET /version`)
//! every probe period. The time of the last success is the node's API contact; peers
//! learn its age through the heartbeats, which is how a node cut off alone from the API
//! server is told apart from an API server that is down for everyone.
//!
//! Watches are no freshness signal: a watch on a connection whose peer vanished can stay
//! silent for minutes before TCP notices, and a quiet cluster sends no events anyway.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::Client;
use tokio::sync::Notify;

/// The last successful API server contact.
#[derive(Debug, Default)]
pub struct ApiContact {
    last: Mutex<Option<Instant>>,
}

impl ApiContact {
    /// Records a successful request at `at`.
    pub fn succeeded(&self, at: Instant) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|t| at > t) {
            *last = Some(at);
        }
    }

    /// The instant of the last success, if any.
    pub fn last(&self) -> Option<Instant> {
        *self.last.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Age of the last success at `now`.
    pub fn age(&self, now: Instant) -> Option<Duration> {
        self.last().map(|t| now.saturating_duration_since(t))
    }
}

/// Probes the API server every `period` (each probe bounded by `timeout`), recording
/// successes in `contact` and notifying `wake` when the view turns fresh again.
pub async fn probe_loop(
    client: Client,
    contact: Arc<ApiContact>,
    wake: Arc<Notify>,
    period: Duration,
    timeout: Duration,
    stale_after: Duration,
) {
    let mut failing_since: Option<Instant> = None;
    loop {
        let started = Instant::now();
        let was_fresh = contact.age(started).is_some_and(|a| a <= stale_after);
        match tokio::time::timeout(timeout, client.apiserver_version()).await {
            Ok(Ok(_)) => {
                // The request was answered after it was sent: the API server was
                // reachable at least at `started`.
                contact.succeeded(started);
                if let Some(since) = failing_since.take() {
                    tracing::info!(after = ?since.elapsed(), "API server reachable again");
                }
                if !was_fresh {
                    wake.notify_one();
                }
            }
            Ok(Err(e)) => note_failure(&mut failing_since, &e.to_string()),
            Err(_) => note_failure(&mut failing_since, &format!("no answer within {timeout:?}")),
        }
        tokio::time::sleep_until((started + period).into()).await;
    }
}

fn note_failure(since: &mut Option<Instant>, error: &str) {
    if since.is_none() {
        *since = Some(Instant::now());
        tracing::warn!(%error, "API server probe failed; addresses keep being answered");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_keeps_the_latest_success() {
        let c = ApiContact::default();
        let t = Instant::now();
        assert_eq!(c.age(t), None);
        c.succeeded(t);
        c.succeeded(t - Duration::from_secs(1));
        assert_eq!(c.last(), Some(t));
        assert_eq!(
            c.age(t + Duration::from_secs(2)),
            Some(Duration::from_secs(2))
        );
    }
}
