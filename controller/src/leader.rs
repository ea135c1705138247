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
//!
//! The decisions are [`LeaderState::step`], a step function on plain data (what
//! the last API call answered, and the clock, in; the next call and whether we
//! lead, out). [`LeaderElector`] is the thin shell that makes the calls. Losing the
//! Lease is not fatal: the replica steps down (stops writing at once) and keeps
//! campaigning, so that a few API blips never end in a restart loop.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::timeout_at;
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

/// What the elector should do with a Lease it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// We hold the Lease: renew it.
    Renew,
    /// The Lease is free or expired: try to take it.
    Acquire,
    /// Someone else holds a live Lease: wait.
    Wait,
}

/// Decides what to do with the last observation, judged on the local clock.
pub fn decide(obs: &Observed, me: &str, duration: Duration, now: Instant) -> Step {
    match obs.holder.as_deref() {
        Some(h) if h == me => Step::Renew,
        None | Some("") => Step::Acquire,
        Some(_) if now.saturating_duration_since(obs.at) >= duration => Step::Acquire,
        Some(_) => Step::Wait,
    }
}

/// The Lease as read from the API server: the two fields the election needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// `spec.holderIdentity`.
    pub holder: Option<String>,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
}

/// What the last API call answered (or that the clock alone moved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Woken up after a pause (or at start): only the clock is new.
    Tick,
    /// The Lease was read; `None` when it does not exist.
    Read(Option<LeaseView>),
    /// Reading failed or timed out.
    ReadFailed,
    /// The write planned last succeeded.
    Written,
    /// The write planned last was refused because the Lease changed under us
    /// (409 Conflict, or AlreadyExists on create): someone else wrote it.
    Conflict,
    /// The write planned last failed otherwise or timed out; it may still have
    /// been applied, which the next read shows.
    WriteFailed,
}

/// The next API call, or a pause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read the Lease.
    Read,
    /// Create the Lease, held by us.
    Create,
    /// Replace the Lease with one held by us, guarded by this resourceVersion.
    Replace {
        /// The version read; a write by anyone since makes ours fail with 409.
        resource_version: String,
    },
    /// Nothing to do before this instant (then feed [`Input::Tick`]).
    SleepUntil(Instant),
}

/// The outcome of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What to do next.
    pub action: Action,
    /// Whether this replica leads now, and may write.
    pub leading: bool,
    /// While leading: the instant leadership ends unless a renewal is confirmed
    /// first. The shell cuts any API call at this instant and steps down.
    pub lead_until: Option<Instant>,
}

/// The elector's state: the last observation of the Lease and our own term.
#[derive(Debug, Clone)]
pub struct LeaderState {
    me: String,
    duration: Duration,
    renew_period: Duration,
    observed: Option<Observed>,
    /// We lead until this instant: the start of our last confirmed write plus
    /// the lease duration. Others judge expiry from when they *saw* that write,
    /// which is later, so we always stop first.
    lead_until: Option<Instant>,
    /// When the write in flight was planned (before it was sent).
    write_started: Option<Instant>,
}

impl LeaderState {
    /// A replica with this identity, not leading, knowing nothing yet.
    pub fn new(me: impl Into<String>, duration: Duration, renew_period: Duration) -> Self {
        Self {
            me: me.into(),
            duration,
            renew_period,
            observed: None,
            lead_until: None,
            write_started: None,
        }
    }

    /// Pause between rounds: the renew period while leading; a candidate polls
    /// at least every second so that it takes over soon after expiry.
    fn pause(&self) -> Duration {
        if self.lead_until.is_some() {
            self.renew_period
        } else {
            self.renew_period.min(Duration::from_secs(1))
        }
    }

    fn write(&mut self, now: Instant, action: Action) -> Action {
        self.write_started = Some(now);
        action
    }

    /// Takes one input at local time `now` and plans the next call.
    pub fn step(&mut self, input: Input, now: Instant) -> Plan {
        let action = match input {
            Input::Tick => Action::Read,
            Input::ReadFailed => Action::SleepUntil(now + self.pause()),
            Input::Read(None) => self.write(now, Action::Create),
            Input::Read(Some(view)) => {
                if self
                    .observed
                    .as_ref()
                    .is_none_or(|o| o.resource_version != view.resource_version)
                {
                    self.observed = Some(Observed {
                        holder: view.holder,
                        resource_version: view.resource_version.clone(),
                        at: now,
                    });
                }
                let obs = self.observed.as_ref().expect("set above");
                match decide(obs, &self.me, self.duration, now) {
                    Step::Wait => {
                        // Someone else holds a live Lease: if we led, not any more.
                        self.lead_until = None;
                        Action::SleepUntil(now + self.pause())
                    }
                    Step::Renew | Step::Acquire => self.write(
                        now,
                        Action::Replace {
                            resource_version: view.resource_version,
                        },
                    ),
                }
            }
            Input::Written => {
                if let Some(t) = self.write_started.take() {
                    self.lead_until = Some(t + self.duration);
                }
                Action::SleepUntil(now + self.pause())
            }
            Input::Conflict => {
                // The Lease changed under us: whoever wrote it may lead now.
                self.write_started = None;
                self.lead_until = None;
                Action::Read
            }
            Input::WriteFailed => {
                self.write_started = None;
                Action::SleepUntil(now + self.pause())
            }
        };
        if self.lead_until.is_some_and(|t| now >= t) {
            self.lead_until = None;
        }
        Plan {
            action,
            leading: self.lead_until.is_some(),
            lead_until: self.lead_until,
        }
    }
}

/// Runs leader election for ever, publishing `true` on `tx` while this replica leads.
///
/// A leader whose renewal is not confirmed within the lease duration of its last
/// confirmed one, or that sees another holder, publishes `false` at that
/// instant (the caller stops writing) and keeps campaigning.
#[derive(Clone)]
pub struct LeaderElector {
    pub api: Api<Lease>,
    pub name: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_period: Duration,
}

impl LeaderElector {
    /// Campaigns and keeps the lease; returns only when `tx` has no receivers.
    pub async fn run(self, tx: watch::Sender<bool>) {
        let mut state = LeaderState::new(&self.identity, self.duration, self.renew_period);
        let mut input = Input::Tick;
        let mut lease: Option<Lease> = None;
        loop {
            if tx.is_closed() {
                return;
            }
            let plan = state.step(input, Instant::now());
            if *tx.borrow() != plan.leading {
                info!(identity = %self.identity, leading = plan.leading, "leadership changed");
                let _ = tx.send(plan.leading);
            }
            // No call may outlive our term: at its end we must have stepped down.
            // A candidate's calls are bounded by the lease duration, so that a
            // request the network swallowed does not stall the campaign.
            let limit = tokio::time::Instant::from_std(
                plan.lead_until
                    .unwrap_or_else(|| Instant::now() + self.duration)
                    .min(Instant::now() + self.duration),
            );
            input = match plan.action {
                Action::SleepUntil(t) => {
                    let t = plan.lead_until.map_or(t, |l| l.min(t));
                    tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await;
                    Input::Tick
                }
                Action::Read => match timeout_at(limit, self.api.get_opt(&self.name)).await {
                    Ok(Ok(l)) => {
                        let view = l.as_ref().map(view);
                        lease = l;
                        Input::Read(view)
                    }
                    Ok(Err(e)) => {
                        warn!(error = %e, lease = %self.name, "reading leader lease failed");
                        Input::ReadFailed
                    }
                    Err(_) => {
                        warn!(lease = %self.name, "reading leader lease timed out");
                        Input::ReadFailed
                    }
                },
                Action::Create => {
                    let (pp, record) = (PostParams::default(), self.record(None));
                    let call = self.api.create(&pp, &record);
                    write_outcome(timeout_at(limit, call).await, "creating")
                }
                Action::Replace { resource_version } => {
                    let mut next = self.record(lease.as_ref());
                    next.metadata.resource_version = Some(resource_version);
                    let pp = PostParams::default();
                    let call = self.api.replace(&self.name, &pp, &next);
                    write_outcome(timeout_at(limit, call).await, "renewing")
                }
            };
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

fn view(l: &Lease) -> LeaseView {
    LeaseView {
        holder: l.spec.as_ref().and_then(|s| s.holder_identity.clone()),
        resource_version: l.metadata.resource_version.clone().unwrap_or_default(),
    }
}

/// Maps the answer to a write of the Lease onto the state machine's input.
fn write_outcome(
    res: Result<Result<Lease, kube::Error>, tokio::time::error::Elapsed>,
    what: &str,
) -> Input {
    match res {
        Ok(Ok(_)) => Input::Written,
        Ok(Err(kube::Error::Api(s))) if s.code == 409 => {
            info!(what, "leader lease changed under us (409): re-reading");
            Input::Conflict
        }
        Ok(Err(e)) => {
            warn!(error = %e, what, "writing leader lease failed");
            Input::WriteFailed
        }
        Err(_) => {
            warn!(what, "writing leader lease timed out");
            Input::WriteFailed
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

    fn lease(holder: &str, rv: &str) -> Input {
        Input::Read(Some(LeaseView {
            holder: Some(holder.into()),
            resource_version: rv.into(),
        }))
    }

    fn replace(rv: &str) -> Action {
        Action::Replace {
            resource_version: rv.into(),
        }
    }

    const D: Duration = Duration::from_secs(15);
    const R: Duration = Duration::from_secs(2);
    const S: Duration = Duration::from_secs(1);

    /// A replica that created the Lease at `t0` and leads.
    fn leader(t0: Instant) -> LeaderState {
        let mut st = LeaderState::new("a", D, R);
        assert_eq!(st.step(Input::Tick, t0).action, Action::Read);
        let p = st.step(Input::Read(None), t0);
        assert_eq!((p.action, p.leading), (Action::Create, false));
        let p = st.step(Input::Written, t0 + S);
        assert!(p.leading);
        // The term counts from when the write was planned, not confirmed.
        assert_eq!(p.lead_until, Some(t0 + D));
        assert_eq!(p.action, Action::SleepUntil(t0 + S + R));
        st
    }

    #[test]
    fn a_leader_that_cannot_renew_steps_down_at_its_deadline_and_keeps_campaigning() {
        let t0 = Instant::now();
        let mut st = leader(t0);
        // The API is gone: reads fail, the leader keeps leading until its deadline.
        let p = st.step(Input::ReadFailed, t0 + Duration::from_secs(5));
        assert!(p.leading);
        assert_eq!(p.lead_until, Some(t0 + D));
        let p = st.step(Input::ReadFailed, t0 + D - Duration::from_millis(1));
        assert!(p.leading);
        // At the deadline (the shell wakes then, or cuts a hung call): stepped down.
        let p = st.step(Input::Tick, t0 + D);
        assert!(!p.leading);
        assert_eq!(p.lead_until, None);
        assert_eq!(p.action, Action::Read, "it keeps trying");
        let p = st.step(Input::ReadFailed, t0 + D + S);
        assert!(!p.leading);
        assert_eq!(p.action, Action::SleepUntil(t0 + D + S + S));
        // The API is back and the Lease still names us at the version we wrote:
        // the guarded renewal succeeds only if nobody wrote since, and then we lead again.
        let t1 = t0 + Duration::from_secs(40);
        let p = st.step(lease("a", "7"), t1);
        assert_eq!((p.action, p.leading), (replace("7"), false));
        let p = st.step(Input::Written, t1 + S);
        assert!(p.leading);
        assert_eq!(p.lead_until, Some(t1 + D));
    }

    #[test]
    fn a_renewal_confirmed_after_the_deadline_does_not_extend_the_term() {
        let t0 = Instant::now();
        let mut st = leader(t0);
        let t1 = t0 + Duration::from_secs(3);
        assert_eq!(st.step(lease("a", "2"), t1).action, replace("2"));
        // Its answer arrives later than one lease duration after it was sent.
        let p = st.step(Input::Written, t1 + D);
        assert!(!p.leading, "{p:?}");
    }

    #[test]
    fn another_holder_or_a_conflict_ends_the_term_at_once() {
        let t0 = Instant::now();
        let mut st = leader(t0);
        let p = st.step(lease("b", "9"), t0 + S);
        assert!(!p.leading);
        assert_eq!(p.action, Action::SleepUntil(t0 + S + S));

        let mut st = leader(t0);
        assert_eq!(st.step(lease("a", "2"), t0 + S).action, replace("2"));
        let p = st.step(Input::Conflict, t0 + S);
        assert_eq!((p.action, p.leading), (Action::Read, false));
    }

    #[test]
    fn a_failed_renewal_keeps_the_term_until_its_deadline() {
        let t0 = Instant::now();
        let mut st = leader(t0);
        assert_eq!(st.step(lease("a", "2"), t0 + R).action, replace("2"));
        let p = st.step(Input::WriteFailed, t0 + R + S);
        assert!(p.leading);
        assert_eq!(p.lead_until, Some(t0 + D));
        assert_eq!(p.action, Action::SleepUntil(t0 + R + S + R));
    }

    #[test]
    fn a_candidate_takes_an_expired_lease_only_after_a_full_local_duration() {
        let t0 = Instant::now();
        let mut st = LeaderState::new("b", D, R);
        assert_eq!(st.step(Input::Tick, t0).action, Action::Read);
        let p = st.step(lease("a", "5"), t0);
        assert_eq!((p.action, p.leading), (Action::SleepUntil(t0 + S), false));
        // Same version seen again, just before expiry: still waiting.
        let p = st.step(lease("a", "5"), t0 + D - S);
        assert!(matches!(p.action, Action::SleepUntil(_)));
        // A renewal by "a" (new version) restarts the local clock.
        let t1 = t0 + D - S;
        st.step(lease("a", "6"), t1);
        assert!(matches!(
            st.step(lease("a", "6"), t0 + D).action,
            Action::SleepUntil(_)
        ));
        // One full duration after the last change was seen: taken.
        assert_eq!(st.step(lease("a", "6"), t1 + D).action, replace("6"));
        assert!(st.step(Input::Written, t1 + D + S).leading);
    }
}
