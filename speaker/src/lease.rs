//! The speaker's own Lease: one per node, named after it, renewed slowly (every renew
//! period, 10 s by default) for `kubectl get leases`, and carrying the peers this node
//! cannot hear on the node network (annotation [`UNREACHABLE_ANNOTATION`]).
//!
//! Liveness does not travel here any more (see `crate::membership`). The Lease is the
//! channel between the two sides of a node-network partition while the API server is
//! reachable: a node that hears none of its peers reads there that they cannot hear it
//! either, and falls silent ([`Reports`]).
//!
//! Why not `kube-lease-manager`: it implements *leader election* on one shared Lease
//! (acquire when expired, judged by comparing the holder's renewTime with the local
//! clock). Here every speaker owns its own Lease and nobody else ever acquires it.
//! Plain get / create / replace (with the resourceVersion, so a concurrent writer is
//! detected rather than overwritten) is all that is needed, and it keeps the number of
//! writes at exactly one per renewal.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};

/// Label on every speaker Lease; the speakers watch Leases with this label only.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY_VALUE: &str = "ferrolb-speaker";
/// Annotation with the node's data-path state: `up` or `down` (absent means up).
pub const LINK_ANNOTATION: &str = "ferrolb.io/link";
/// Annotation with the peers this node cannot hear on the node network, comma-separated
/// (absent: none).
pub const UNREACHABLE_ANNOTATION: &str = "ferrolb.io/unreachable";

/// The label selector matching speaker Leases.
pub fn lease_selector() -> String {
    format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")
}

/// The name of `node`'s Lease: `ferrolb-speaker-<node>`, shortened with a hash when the
/// node name is too long for an object name.
pub fn lease_name(node: &str) -> String {
    const PREFIX: &str = "ferrolb-speaker-";
    const MAX: usize = 253;
    let full = format!("{PREFIX}{node}");
    if full.len() <= MAX {
        return full;
    }
    let hash =
        ferrolb_core::election::rendezvous_score(node, std::net::Ipv4Addr::UNSPECIFIED.into());
    let keep = MAX - PREFIX.len() - 17;
    let cut: String = node.chars().take(keep).collect();
    format!("{PREFIX}{cut}-{hash:016x}")
}

/// What a speaker reads from a peer's Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// The node (holderIdentity).
    pub node: String,
    /// Changes on every write by the holder: the resourceVersion (the renewTime when
    /// the server sets none).
    pub token: String,
    /// The node's data path works.
    pub link_ok: bool,
    /// The peers the node cannot hear, sorted.
    pub unreachable: Vec<String>,
}

/// Reads a speaker Lease; `None` when it names no holder.
pub fn read_lease(lease: &Lease) -> Option<LeaseView> {
    let node = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty())?
        .to_owned();
    let token = lease
        .metadata
        .resource_version
        .clone()
        .or_else(|| {
            lease
                .spec
                .as_ref()
                .and_then(|s| s.renew_time.as_ref())
                .map(|t| t.0.to_string())
        })
        .unwrap_or_default();
    let link_ok = lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LINK_ANNOTATION))
        .is_none_or(|v| v != "down");
    let mut unreachable: Vec<String> = lease
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(UNREACHABLE_ANNOTATION))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    unreachable.sort();
    unreachable.dedup();
    Some(LeaseView {
        node,
        token,
        link_ok,
        unreachable,
    })
}

/// Builds (or refreshes, keeping metadata such as the resourceVersion) `node`'s Lease
/// as renewed at `now`.
pub fn renewed_lease(
    existing: Option<&Lease>,
    namespace: &str,
    node: &str,
    duration: Duration,
    link_ok: bool,
    unreachable: &[String],
    now: Timestamp,
) -> Lease {
    let mut lease = existing.cloned().unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(node)),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        spec: None,
    });
    lease
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    lease
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            LINK_ANNOTATION.into(),
            if link_ok { "up" } else { "down" }.into(),
        );
    let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if unreachable.is_empty() {
        annotations.remove(UNREACHABLE_ANNOTATION);
    } else {
        annotations.insert(UNREACHABLE_ANNOTATION.into(), unreachable.join(","));
    }
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(node) {
        spec.holder_identity = Some(node.to_owned());
        spec.acquire_time = Some(MicroTime(now));
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    if spec.acquire_time.is_none() {
        spec.acquire_time = Some(MicroTime(now));
    }
    // Informational only (`kubectl get lease`): peers use their own clock and the
    // configured duration. Whole seconds, rounded up.
    spec.lease_duration_seconds = Some(duration.as_millis().div_ceil(1000).max(1) as i32);
    spec.renew_time = Some(MicroTime(now));
    lease
}

/// Writes this node's Lease. Keeps the last object returned by the server so that
/// each renewal is a single `replace`.
pub struct LeaseWriter {
    api: Api<Lease>,
    namespace: String,
    node: String,
    duration: Duration,
    last: Option<Lease>,
}

impl LeaseWriter {
    /// A writer for `node`'s Lease in `namespace`.
    pub fn new(client: Client, namespace: &str, node: &str, duration: Duration) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            node: node.to_owned(),
            duration,
            last: None,
        }
    }

    /// The Lease's name.
    pub fn name(&self) -> String {
        lease_name(&self.node)
    }

    /// Renews (creating it if needed). One API write in the common case; on a conflict
    /// or a vanished Lease it re-reads and retries once.
    pub async fn renew(
        &mut self,
        link_ok: bool,
        unreachable: &[String],
    ) -> Result<(), kube::Error> {
        let name = self.name();
        let mut retried = false;
        loop {
            let current = match &self.last {
                Some(last) => Some(last.clone()),
                None => self.api.get_opt(&name).await?,
            };
            let lease = renewed_lease(
                current.as_ref(),
                &self.namespace,
                &self.node,
                self.duration,
                link_ok,
                unreachable,
                Timestamp::now(),
            );
            let result = if current.is_some() {
                self.api
                    .replace(&name, &PostParams::default(), &lease)
                    .await
            } else {
                self.api.create(&PostParams::default(), &lease).await
            };
            match result {
                Ok(l) => {
                    self.last = Some(l);
                    return Ok(());
                }
                Err(kube::Error::Api(s))
                    if (s.is_conflict() || s.is_already_exists() || s.is_not_found())
                        && !retried =>
                {
                    // Someone else wrote or deleted it (or it already exists): re-read
                    // and try once more.
                    self.last = None;
                    retried = true;
                }
                Err(e) => {
                    self.last = None;
                    return Err(e);
                }
            }
        }
    }

    /// Deletes the Lease (graceful shutdown: peers take over at once).
    pub async fn delete(&mut self) -> Result<(), kube::Error> {
        self.last = None;
        match self
            .api
            .delete(&self.name(), &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The peers' reports of the nodes they cannot hear, as read from their Leases and
/// timed on the local clock.
///
/// A report counts while its Lease keeps changing: a reporter renews every renew period,
/// so a report whose Lease has not changed for `valid_for` is from a speaker that is gone
/// (or cut off from the API server) and is ignored.
#[derive(Debug, Clone)]
pub struct Reports {
    valid_for: Duration,
    by_reporter: BTreeMap<String, Report>,
}

#[derive(Debug, Clone)]
struct Report {
    token: String,
    unreachable: Vec<String>,
    changed_at: std::time::Instant,
}

impl Reports {
    /// Reports that count for `valid_for` after their Lease last changed.
    pub fn new(valid_for: Duration) -> Self {
        Self {
            valid_for,
            by_reporter: BTreeMap::new(),
        }
    }

    /// Records `view` observed at `now`; true when what it reports changed.
    pub fn observe(&mut self, view: &LeaseView, now: std::time::Instant) -> bool {
        match self.by_reporter.get_mut(&view.node) {
            Some(r) => {
                if r.token != view.token {
                    r.token.clone_from(&view.token);
                    r.changed_at = now;
                }
                if r.unreachable != view.unreachable {
                    r.unreachable.clone_from(&view.unreachable);
                    return true;
                }
                false
            }
            None => {
                self.by_reporter.insert(
                    view.node.clone(),
                    Report {
                        token: view.token.clone(),
                        unreachable: view.unreachable.clone(),
                        changed_at: now,
                    },
                );
                !view.unreachable.is_empty()
            }
        }
    }

    /// Forgets `node`'s report (its Lease was deleted).
    pub fn forget(&mut self, node: &str) -> bool {
        self.by_reporter
            .remove(node)
            .is_some_and(|r| !r.unreachable.is_empty())
    }

    /// Forgets the reports of nodes not in `present` (after a relist); true when a
    /// report went with them.
    pub fn retain(&mut self, present: &std::collections::BTreeSet<String>) -> bool {
        let before: usize = self.by_reporter.values().map(|r| r.unreachable.len()).sum();
        self.by_reporter.retain(|n, _| present.contains(n));
        let after: usize = self.by_reporter.values().map(|r| r.unreachable.len()).sum();
        before != after
    }

    /// Whether some other node's valid report at `now` says it cannot hear `node`.
    pub fn claims(&self, node: &str, now: std::time::Instant) -> bool {
        self.by_reporter.iter().any(|(reporter, r)| {
            reporter != node
                && now.saturating_duration_since(r.changed_at) < self.valid_for
                && r.unreachable.iter().any(|n| n == node)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_valid_and_distinct() {
        assert_eq!(lease_name("node-1"), "ferrolb-speaker-node-1");
        let long_a = format!("{}a", "x".repeat(250));
        let long_b = format!("{}b", "x".repeat(250));
        let a = lease_name(&long_a);
        let b = lease_name(&long_b);
        assert!(a.len() <= 253 && b.len() <= 253);
        assert_ne!(a, b);
    }

    #[test]
    fn new_lease_carries_holder_label_link_and_times() {
        let now = Timestamp::now();
        let l = renewed_lease(
            None,
            "ferrolb-system",
            "n1",
            Duration::from_millis(1500),
            false,
            &[],
            now,
        );
        assert_eq!(l.metadata.name.as_deref(), Some("ferrolb-speaker-n1"));
        assert_eq!(l.metadata.namespace.as_deref(), Some("ferrolb-system"));
        assert_eq!(
            l.metadata.labels.as_ref().unwrap()[MANAGED_BY_LABEL],
            MANAGED_BY_VALUE
        );
        let spec = l.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
        assert_eq!(spec.lease_duration_seconds, Some(2));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        let view = read_lease(&l).unwrap();
        assert_eq!(view.node, "n1");
        assert!(!view.link_ok);
    }

    #[test]
    fn renewal_keeps_metadata_and_acquire_time() {
        let t0 = Timestamp::now();
        let mut l = renewed_lease(None, "ns", "n1", Duration::from_secs(1), true, &[], t0);
        l.metadata.resource_version = Some("41".into());
        let t1 = t0 + Duration::from_millis(500);
        let r = renewed_lease(Some(&l), "ns", "n1", Duration::from_secs(1), true, &[], t1);
        assert_eq!(r.metadata.resource_version.as_deref(), Some("41"));
        let spec = r.spec.as_ref().unwrap();
        assert_eq!(spec.acquire_time, Some(MicroTime(t0)));
        assert_eq!(spec.renew_time, Some(MicroTime(t1)));
        let view = read_lease(&r).unwrap();
        assert_eq!(view.token, "41");
        assert!(view.link_ok);
    }

    #[test]
    fn taking_over_a_foreign_holder_counts_a_transition() {
        let t0 = Timestamp::now();
        let l = renewed_lease(None, "ns", "other", Duration::from_secs(1), true, &[], t0);
        let r = renewed_lease(Some(&l), "ns", "n1", Duration::from_secs(1), true, &[], t0);
        let spec = r.spec.as_ref().unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
        assert_eq!(spec.lease_transitions, Some(2));
    }

    #[test]
    fn lease_without_holder_is_ignored_and_missing_link_means_up() {
        let mut l = renewed_lease(
            None,
            "ns",
            "n1",
            Duration::from_secs(1),
            true,
            &[],
            Timestamp::now(),
        );
        l.metadata.annotations = None;
        l.metadata.resource_version = None;
        let v = read_lease(&l).unwrap();
        assert!(v.link_ok);
        assert!(!v.token.is_empty(), "falls back to renewTime");
        l.spec.as_mut().unwrap().holder_identity = None;
        assert!(read_lease(&l).is_none());
    }

    fn view(node: &str, token: &str, unreachable: &[&str]) -> LeaseView {
        LeaseView {
            node: node.into(),
            token: token.into(),
            link_ok: true,
            unreachable: unreachable.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn unreachable_peers_round_trip_through_the_annotation() {
        let now = Timestamp::now();
        let l = renewed_lease(
            None,
            "ns",
            "n1",
            Duration::from_secs(30),
            true,
            &["n3".into(), "n2".into()],
            now,
        );
        assert_eq!(
            l.metadata.annotations.as_ref().unwrap()[UNREACHABLE_ANNOTATION],
            "n3,n2"
        );
        assert_eq!(read_lease(&l).unwrap().unreachable, vec!["n2", "n3"]);
        let r = renewed_lease(
            Some(&l),
            "ns",
            "n1",
            Duration::from_secs(30),
            true,
            &[],
            now,
        );
        assert!(
            !r.metadata
                .annotations
                .as_ref()
                .unwrap()
                .contains_key(UNREACHABLE_ANNOTATION)
        );
        assert!(read_lease(&r).unwrap().unreachable.is_empty());
    }

    #[test]
    fn reports_count_while_their_lease_keeps_changing() {
        let t = std::time::Instant::now();
        let valid = Duration::from_secs(30);
        let mut r = Reports::new(valid);
        assert!(r.observe(&view("n2", "1", &["n1"]), t), "a new claim");
        assert!(r.claims("n1", t));
        assert!(!r.claims("n2", t), "nobody claims n2");
        // Renewed (new token), same claim: still valid later.
        assert!(!r.observe(&view("n2", "2", &["n1"]), t + valid / 2));
        assert!(r.claims("n1", t + valid));
        // Not renewed any more: lapses.
        assert!(!r.claims("n1", t + valid / 2 + valid));
        // Withdrawn.
        assert!(r.observe(&view("n2", "3", &[]), t + valid));
        assert!(!r.claims("n1", t + valid));
        // A node never counts its own claim about itself; deleting a Lease forgets it.
        r.observe(&view("n1", "1", &["n1"]), t);
        assert!(!r.claims("n1", t));
        r.observe(&view("n3", "1", &["n1"]), t);
        assert!(r.forget("n3"));
        assert!(!r.claims("n1", t));
    }
}
