//! Which speakers may announce, judged from what the membership reports about them, and
//! what this node itself may do when it cannot hear its peers.
//!
//! The rules (docs/membership.md, "Eligibility"):
//! - a speaker announces only while it is alive in the membership, has a view of the
//!   cluster (its caches listed from the API server at least once), is not leaving, and
//!   no live member judges it unreachable;
//! - a speaker whose API view is stale is left out only while a strict majority of the
//!   live members with a view have a fresh one: a node cut off alone hands its addresses
//!   over, but when the API server is down for everyone nothing moves;
//! - a node that hears fewer than a strict majority of the members it knew is *frozen*
//!   ([`SelfGuard`]): it keeps what it announces and takes nothing new, because it cannot
//!   tell its peers' death from its own isolation. It unfreezes when its API view has
//!   been fresh for the confirmation time and still nobody reports it unreachable.

use std::time::{Duration, Instant};

/// What the membership says about one speaker (a peer, or this node itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The speaker's node name.
    pub name: String,
    /// Heard, directly or through a relay, within the peer timeout.
    pub alive: bool,
    /// Its caches have listed from the API server at least once.
    pub has_view: bool,
    /// Its last successful API server contact is younger than the staleness threshold.
    pub api_fresh: bool,
    /// Its last successful API server contact is younger than half the threshold, and
    /// has been for a while (see [`api_majority_fresh`]).
    pub api_recent: bool,
    /// Its announcing data path works.
    pub link_ok: bool,
    /// It said goodbye (SIGTERM).
    pub leaving: bool,
    /// A live member judges it unreachable (in a heartbeat or in its Lease).
    pub claimed_unreachable: bool,
}

impl Member {
    /// A healthy member named `name` (for tests and builders).
    pub fn healthy(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            alive: true,
            has_view: true,
            api_fresh: true,
            api_recent: true,
            link_ok: true,
            leaving: false,
            claimed_unreachable: false,
        }
    }
}

/// Why a speaker may not announce. Ordered by the order in which they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotLive {
    /// Not heard within the peer timeout.
    Dead,
    /// Said goodbye.
    Leaving,
    /// Has never had a view of the cluster.
    NoView,
    /// A live member cannot hear it.
    ClaimedUnreachable,
    /// Its API view is stale while most live members' views are fresh.
    ApiStale,
}

impl NotLive {
    /// A stable label for metrics and logs.
    pub fn metric_label(self) -> &'static str {
        match self {
            NotLive::Dead => "dead",
            NotLive::Leaving => "leaving",
            NotLive::NoView => "no_view",
            NotLive::ClaimedUnreachable => "claimed_unreachable",
            NotLive::ApiStale => "api_stale",
        }
    }
}

/// Whether a strict majority of the live members that have a view reach the API server
/// *recently* ([`Member::api_recent`]). False when the API server is down for everyone
/// (or for most): then nobody is left out for a stale view, and nothing moves.
///
/// Recent, not merely fresh, is a hysteresis: when the API server goes down for
/// everyone, the nodes' views turn stale one after the other, within one probe period;
/// the first to turn stale must not see the others as fresh and hand its addresses over.
/// Their contacts are then older than half the threshold, so they no longer count as
/// recent. Likewise when the API server comes back, a node counts as recent only after
/// it has been for a settle time, so that the last node to reconnect is not judged
/// alone while the others have just reconnected.
pub fn api_majority_fresh<'a>(members: impl IntoIterator<Item = &'a Member>) -> bool {
    let (mut recent, mut total) = (0usize, 0usize);
    for m in members {
        if m.alive && m.has_view && !m.leaving {
            total += 1;
            recent += usize::from(m.api_recent);
        }
    }
    recent * 2 > total
}

/// The verdict on `m`, given whether most members reach the API server.
pub fn judge(m: &Member, majority_fresh: bool) -> Result<(), NotLive> {
    if !m.alive {
        Err(NotLive::Dead)
    } else if m.leaving {
        Err(NotLive::Leaving)
    } else if !m.has_view {
        Err(NotLive::NoView)
    } else if m.claimed_unreachable {
        Err(NotLive::ClaimedUnreachable)
    } else if !m.api_fresh && majority_fresh {
        Err(NotLive::ApiStale)
    } else {
        Ok(())
    }
}

/// What this node may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfMode {
    /// No view of the cluster yet: announce nothing, elected for nothing.
    NoView,
    /// Announce what the election gives it.
    Normal,
    /// Cannot hear a majority: keep what it announces, take nothing new.
    Frozen,
    /// Not live (leaving, judged unreachable, or alone with a stale API view): announce
    /// nothing.
    Silenced,
}

impl SelfMode {
    /// A stable label for metrics and logs.
    pub fn metric_label(self) -> &'static str {
        match self {
            SelfMode::NoView => "no_view",
            SelfMode::Normal => "normal",
            SelfMode::Frozen => "frozen",
            SelfMode::Silenced => "silenced",
        }
    }
}

/// This node's own mode, from its verdict, its quorum and its API freshness over time.
#[derive(Debug, Clone)]
pub struct SelfGuard {
    confirm: Duration,
    minority_since: Option<Instant>,
    api_fresh_since: Option<Instant>,
    confirmed: bool,
}

impl SelfGuard {
    /// A guard that unfreezes after `confirm` of fresh API view without any report
    /// against this node.
    pub fn new(confirm: Duration) -> Self {
        Self {
            confirm,
            minority_since: None,
            api_fresh_since: None,
            confirmed: false,
        }
    }

    /// The mode at `now`. `verdict` is [`judge`] of this node, `quorum` whether it hears
    /// a strict majority of the members it knows, `api_fresh` its own API freshness.
    pub fn step(
        &mut self,
        verdict: Result<(), NotLive>,
        quorum: bool,
        api_fresh: bool,
        now: Instant,
    ) -> SelfMode {
        if api_fresh {
            self.api_fresh_since.get_or_insert(now);
        } else {
            self.api_fresh_since = None;
        }
        match verdict {
            Err(NotLive::NoView) => return SelfMode::NoView,
            Err(_) => {
                // A report against us ends any confirmation: the peers are alive.
                self.confirmed = false;
                return SelfMode::Silenced;
            }
            Ok(()) => {}
        }
        if quorum {
            self.minority_since = None;
            self.confirmed = false;
            return SelfMode::Normal;
        }
        let since = *self.minority_since.get_or_insert(now);
        if !self.confirmed
            && let Some(fresh) = self.api_fresh_since
            && now >= since.max(fresh) + self.confirm
        {
            self.confirmed = true;
        }
        if self.confirmed {
            SelfMode::Normal
        } else {
            SelfMode::Frozen
        }
    }

    /// When a frozen node may unfreeze, if it is waiting for that.
    pub fn deadline(&self) -> Option<Instant> {
        if self.confirmed {
            return None;
        }
        let since = self.minority_since?;
        let fresh = self.api_fresh_since?;
        Some(since.max(fresh) + self.confirm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<Member> {
        (0..n).map(|i| Member::healthy(format!("n{i}"))).collect()
    }

    #[test]
    fn verdicts_in_order_of_checks() {
        let mut m = Member::healthy("a");
        assert_eq!(judge(&m, true), Ok(()));
        m.api_fresh = false;
        assert_eq!(judge(&m, true), Err(NotLive::ApiStale));
        assert_eq!(judge(&m, false), Ok(()), "API down for most: stale is fine");
        m.claimed_unreachable = true;
        assert_eq!(judge(&m, false), Err(NotLive::ClaimedUnreachable));
        m.has_view = false;
        assert_eq!(judge(&m, false), Err(NotLive::NoView));
        m.leaving = true;
        assert_eq!(judge(&m, false), Err(NotLive::Leaving));
        m.alive = false;
        assert_eq!(judge(&m, false), Err(NotLive::Dead));
    }

    #[test]
    fn one_node_cut_off_is_stale_but_everyone_cut_off_is_not() {
        let mut ms = members(3);
        ms[0].api_fresh = false;
        ms[0].api_recent = false;
        assert!(api_majority_fresh(&ms), "2 of 3 recent");
        assert_eq!(judge(&ms[0], true), Err(NotLive::ApiStale));
        ms[1].api_recent = false;
        assert!(
            !api_majority_fresh(&ms),
            "1 of 3 recent, although 2 are fresh"
        );
        for m in &mut ms {
            m.api_fresh = false;
            m.api_recent = false;
        }
        assert!(!api_majority_fresh(&ms));
        let maj = api_majority_fresh(&ms);
        assert!(ms.iter().all(|m| judge(m, maj).is_ok()));
    }

    #[test]
    fn dead_leaving_and_viewless_members_do_not_count_for_the_api_majority() {
        let mut ms = members(4);
        ms[0].api_recent = false;
        ms[1].alive = false;
        ms[2].leaving = true;
        // Of the live members with a view (n0, n3), one is fresh: not a strict majority.
        assert!(!api_majority_fresh(&ms));
        ms[3].has_view = false;
        assert!(!api_majority_fresh(&ms));
        assert!(!api_majority_fresh(&[]));
    }

    #[test]
    fn guard_is_normal_with_quorum_and_silent_when_judged() {
        let t = Instant::now();
        let mut g = SelfGuard::new(Duration::from_secs(3));
        assert_eq!(g.step(Ok(()), true, true, t), SelfMode::Normal);
        assert_eq!(
            g.step(Err(NotLive::NoView), true, true, t),
            SelfMode::NoView
        );
        for r in [
            NotLive::ClaimedUnreachable,
            NotLive::ApiStale,
            NotLive::Leaving,
            NotLive::Dead,
        ] {
            assert_eq!(g.step(Err(r), true, true, t), SelfMode::Silenced, "{r:?}");
        }
    }

    #[test]
    fn minority_freezes_until_the_api_confirms_for_the_whole_confirmation_time() {
        let t = Instant::now();
        let c = Duration::from_secs(3);
        let mut g = SelfGuard::new(c);
        assert_eq!(g.step(Ok(()), false, true, t), SelfMode::Frozen);
        assert_eq!(g.deadline(), Some(t + c));
        let almost = t + c - Duration::from_millis(1);
        assert_eq!(g.step(Ok(()), false, true, almost), SelfMode::Frozen);
        assert_eq!(g.step(Ok(()), false, true, t + c), SelfMode::Normal);
        assert_eq!(g.deadline(), None);
        // Stays confirmed while still in the minority.
        assert_eq!(
            g.step(Ok(()), false, false, t + c * 2),
            SelfMode::Normal,
            "confirmed: the peers are dead"
        );
        // Quorum back, then lost again: a new confirmation is needed.
        assert_eq!(g.step(Ok(()), true, true, t + c * 3), SelfMode::Normal);
        assert_eq!(g.step(Ok(()), false, true, t + c * 4), SelfMode::Frozen);
    }

    #[test]
    fn minority_without_the_api_stays_frozen() {
        let t = Instant::now();
        let c = Duration::from_secs(3);
        let mut g = SelfGuard::new(c);
        for i in 0..10 {
            let now = t + c * i;
            assert_eq!(g.step(Ok(()), false, false, now), SelfMode::Frozen);
            assert_eq!(g.deadline(), None, "no API: nothing to wait for");
        }
        // The API comes back: the confirmation time counts from then.
        let back = t + c * 10;
        assert_eq!(g.step(Ok(()), false, true, back), SelfMode::Frozen);
        assert_eq!(g.deadline(), Some(back + c));
        assert_eq!(g.step(Ok(()), false, true, back + c), SelfMode::Normal);
    }

    #[test]
    fn a_report_during_the_freeze_silences_and_cancels_the_confirmation() {
        let t = Instant::now();
        let c = Duration::from_secs(3);
        let mut g = SelfGuard::new(c);
        assert_eq!(g.step(Ok(()), false, true, t), SelfMode::Frozen);
        let at = t + Duration::from_millis(50);
        assert_eq!(
            g.step(Err(NotLive::ClaimedUnreachable), false, true, at),
            SelfMode::Silenced
        );
        // The report goes away (peers hear us again) but we are still in the minority:
        // frozen again, and the confirmation time started when we first froze.
        assert_eq!(g.step(Ok(()), false, true, at), SelfMode::Frozen);
    }
}
