//! Leader election over a coordination.k8s.io/v1 Lease, so that of the
//! controller's replicas only one writes.
//!
//! Written here rather than taken from kube-lease-manager because that crate
//! takes orphaned locks through server-side-apply field-ownership conflicts and
//! counts in whole seconds; this one uses the same scheme as client-go's
//! leaderelection: updates guarded by `resourceVersion` (a stale write gets 409
//! Conflict) and expiry judged on the *local* monotonic clock from the moment a
//! change of the Lease was observed, so clock skew between nodes cannot make two
//! replicas leaders at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tracing::{info, warn};

/// What the Lease record looked like when last observed, and when (locally).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Holder identity in the record (`None` when released).
    pub holder: Option<String>,
    /// The record's resourceVersion: any write by the holder changes it.
    pub resource_version: String,
    /// Local time at which this version was first seen.
    pub at: Instant,
}

/// What the elector should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// We hold the Lease: renew it.
    Renew,
    /// The Lease is free or expired: try to take it.
    Acquire,
    /// Someone else holds a live Lease: wait.
    Wait,
}

/// Decides the next step from the last observation, judged on the local clock.
pub fn decide(obs: &Observed, me: &str, duration: Duration, now: Instant) -> Step {
    match obs.holder.as_deref() {
        Some(h) if h == me => Step::Renew,
        None | Some("") => Step::Acquire,
        Some(_) if now.saturating_duration_since(obs.at) >= duration => Step::Acquire,
        Some(_) => Step::Wait,
    }
}

/// Runs leader election for ever, publishing `true` on `tx` while this replica leads.
///
/// A leader that could not renew within `duration` of its last successful renew
/// publishes `false` (the caller stops writing, and exits).
#[derive(Clone)]
pub struct Elector {
    pub api: Api<Lease>,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_period: Duration,
}

impl Elector {
    /// Campaigns and keeps the lease; never returns unless `tx` has no receivers.
    pub async fn run(self, tx: watch::Sender<bool>) {
        let mut observed: Option<Observed> = None;
        let mut last_renew: Option<Instant> = None;
        loop {
            if tx.is_closed() {
                return;
            }
            let leading = self.step(&mut observed, &mut last_renew).await;
            if *tx.borrow() != leading {
                info!(identity = %self.identity, leading, "leadership changed");
                let _ = tx.send(leading);
            }
            let pause = if leading {
                self.renew_period
            } else {
                self.renew_period.min(Duration::from_secs(1))
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// One round; returns whether we lead afterwards.
    async fn step(
        &self,
        observed: &mut Option<Observed>,
        last_renew: &mut Option<Instant>,
    ) -> bool {
        let now = Instant::now();
        let still_valid =
            |last: &Option<Instant>| last.is_some_and(|t| now.duration_since(t) < self.duration);
        let current = match self.api.get_opt(&self.name).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, lease = %self.name, "reading leader lease failed");
                return still_valid(last_renew);
            }
        };
        let Some(lease) = current else {
            return match self
                .api
                .create(&PostParams::default(), &self.record(None))
                .await
            {
                Ok(_) => {
                    *last_renew = Some(now);
                    true
                }
                Err(e) => {
                    warn!(error = %e, "creating leader lease failed");
                    false
                }
            };
        };
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
        if observed.as_ref().is_none_or(|o| o.resource_version != rv) {
            *observed = Some(Observed {
                holder: holder.clone(),
                resource_version: rv.clone(),
                at: now,
            });
        }
        let obs = observed.as_ref().expect("set above");
        let step = decide(obs, &self.identity, self.duration, now);
        if step == Step::Wait {
            *last_renew = None;
            return false;
        }
        let mut next = self.record(Some(&lease));
        next.metadata.resource_version = Some(rv);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => {
                *last_renew = Some(now);
                true
            }
            Err(e) => {
                // A 409 means another replica wrote first: it leads.
                warn!(error = %e, ?step, "writing leader lease failed");
                step == Step::Renew && still_valid(last_renew)
            }
        }
    }

    /// The Lease as we want it, held by us, based on the current record.
    fn record(&self, current: Option<&Lease>) -> Lease {
        let now = MicroTime(Timestamp::now());
        let spec = current.and_then(|l| l.spec.clone()).unwrap_or_default();
        let ours = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: current.and_then(|l| l.metadata.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
                acquire_time: if ours {
                    spec.acquire_time
                } else {
                    Some(now.clone())
                },
                renew_time: Some(now),
                lease_transitions: Some(
                    spec.lease_transitions.unwrap_or(0) + i32::from(!ours && current.is_some()),
                ),
                ..LeaseSpec::default()
            }),
        }
    }

    /// Gives the Lease up so that a standby takes over at once (on shutdown).
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        spec.acquire_time = None;
        if let Err(e) = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            warn!(error = %e, "releasing leader lease failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(holder: Option<&str>, at: Instant) -> Observed {
        Observed {
            holder: holder.map(str::to_owned),
            resource_version: "1".into(),
            at,
        }
    }

    #[test]
    fn holder_renews_and_others_wait_until_local_expiry() {
        let t0 = Instant::now();
        let d = Duration::from_secs(15);
        assert_eq!(decide(&obs(Some("a"), t0), "a", d, t0), Step::Renew);
        assert_eq!(
            decide(&obs(Some("a"), t0), "b", d, t0 + Duration::from_secs(14)),
            Step::Wait
        );
        assert_eq!(decide(&obs(Some("a"), t0), "b", d, t0 + d), Step::Acquire);
    }

    #[test]
    fn released_or_empty_lease_is_taken_at_once() {
        let t0 = Instant::now();
        let d = Duration::from_secs(15);
        assert_eq!(decide(&obs(None, t0), "b", d, t0), Step::Acquire);
        assert_eq!(decide(&obs(Some(""), t0), "b", d, t0), Step::Acquire);
    }
}
