//! This node's Lease, renewed slowly with the peers it cannot hear, and the peers'
//! Leases read back as [`Reports`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::lease::{LeaseWriter, Reports, lease_selector, read_lease};
use crate::metrics::SpeakerMetrics;
use crate::watch::QuickBackoff;

/// What this node publishes in its Lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Its data path works.
    pub link_ok: bool,
    /// The peers it cannot hear, sorted.
    pub unreachable: Vec<String>,
}

/// Renews this node's Lease every `period`, and at once when what it publishes changes;
/// after a failure, retries with a backoff from 100 ms up to the period.
pub async fn renew_loop(
    mut writer: LeaseWriter,
    mut published: watch::Receiver<Published>,
    metrics: Arc<SpeakerMetrics>,
    node: String,
    period: Duration,
) {
    const RETRY: Duration = Duration::from_millis(100);
    let mut failures = RenewFailures::default();
    loop {
        let current = published.borrow_and_update().clone();
        let result =
            tokio::time::timeout(period, writer.renew(current.link_ok, &current.unreachable)).await;
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(short_error(&e)),
            Err(_) => Some(format!("no answer within {period:?}")),
        };
        let next = match error {
            None => {
                metrics.lease_renewals.inc();
                if let Some(n) = failures.recovered() {
                    tracing::info!(%node, failures = n, "Lease renewed again");
                }
                Instant::now() + period
            }
            Some(error) => {
                metrics.lease_renew_failures.inc();
                if failures.failed(std::time::Instant::now()) {
                    // Informational: liveness does not depend on the Lease.
                    tracing::warn!(%node, %error, failures = failures.count,
                        "Lease renewal failing (addresses keep being answered)");
                }
                Instant::now() + failures.retry_delay(RETRY, period)
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            r = published.changed() => if r.is_err() { return },
        }
    }
}

/// Feeds `reports` from the speaker Leases, timing each observation on the local clock;
/// notifies `wake` when a report changes.
pub async fn lease_watch(api: Api<Lease>, reports: Arc<Mutex<Reports>>, wake: Arc<Notify>) {
    let stream = watcher(api, watcher::Config::default().labels(&lease_selector()))
        .backoff(QuickBackoff::new());
    let mut stream = std::pin::pin!(stream);
    let mut listed: BTreeSet<String> = BTreeSet::new();
    while let Some(ev) = stream.next().await {
        let now = std::time::Instant::now();
        let mut r = reports.lock().unwrap_or_else(|e| e.into_inner());
        let changed = match ev {
            Ok(watcher::Event::Init) => {
                listed.clear();
                false
            }
            Ok(watcher::Event::InitApply(l)) => read_lease(&l).is_some_and(|v| {
                listed.insert(v.node.clone());
                r.observe(&v, now)
            }),
            Ok(watcher::Event::Apply(l)) => read_lease(&l).is_some_and(|v| r.observe(&v, now)),
            Ok(watcher::Event::InitDone) => r.retain(&listed),
            Ok(watcher::Event::Delete(l)) => read_lease(&l).is_some_and(|v| r.forget(&v.node)),
            Err(e) => {
                tracing::debug!(error = %e, "Lease watch failed; retrying");
                false
            }
        };
        drop(r);
        if changed {
            wake.notify_one();
        }
    }
}

/// Consecutive renewal failures: the first is logged at once, then one line every
/// [`RenewFailures::LOG_EVERY`]; retries back off from `retry` to the renew period.
#[derive(Debug, Default)]
struct RenewFailures {
    count: u32,
    logged_at: Option<std::time::Instant>,
}

impl RenewFailures {
    const LOG_EVERY: Duration = Duration::from_secs(10);

    /// Records a failure; true when it should be logged.
    fn failed(&mut self, now: std::time::Instant) -> bool {
        self.count += 1;
        let log = self
            .logged_at
            .is_none_or(|t| now.duration_since(t) >= Self::LOG_EVERY);
        if log {
            self.logged_at = Some(now);
        }
        log
    }

    /// Records a success; the number of failures before it, if any.
    fn recovered(&mut self) -> Option<u32> {
        let n = std::mem::take(&mut self.count);
        self.logged_at = None;
        (n > 0).then_some(n)
    }

    /// `retry` doubled per consecutive failure, at most `max`.
    fn retry_delay(&self, retry: Duration, max: Duration) -> Duration {
        let shift = self.count.saturating_sub(1).min(16);
        retry.saturating_mul(1 << shift).min(max)
    }
}

/// A one-line description of a kube error (the API status message, not the whole
/// debug dump).
fn short_error(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renew_failures_back_off_and_log_sparingly() {
        let t0 = std::time::Instant::now();
        let mut f = RenewFailures::default();
        let retry = Duration::from_millis(100);
        let max = Duration::from_millis(500);
        assert!(f.failed(t0), "first failure is logged");
        assert_eq!(f.retry_delay(retry, max), retry);
        assert!(!f.failed(t0 + Duration::from_secs(1)));
        assert_eq!(f.retry_delay(retry, max), Duration::from_millis(200));
        assert!(!f.failed(t0 + Duration::from_secs(2)));
        assert_eq!(f.retry_delay(retry, max), Duration::from_millis(400));
        assert!(f.failed(t0 + Duration::from_secs(10)), "one line per 10 s");
        assert_eq!(f.retry_delay(retry, max), max);
        assert_eq!(f.recovered(), Some(4));
        assert_eq!(f.recovered(), None);
        assert!(
            f.failed(t0 + Duration::from_secs(11)),
            "a new outage is logged at once"
        );
        assert_eq!(f.retry_delay(retry, max), retry);
    }
}
