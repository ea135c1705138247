//! The controller's typed outcomes: errors of the running process (with how to retry a
//! reconcile that failed with one), why an allocation failed, and what an Event says.
//! Each has a stable `metric_label` (or Event reason) that metrics and Events use, so
//! that no decision is taken by comparing strings.

use std::time::Duration;

/// Errors of the running controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// No client could be built.
    #[error(transparent)]
    Client(#[from] ferrolb_process::ClientError),
    /// The metrics endpoint could not be served.
    #[error("metrics endpoint: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// Every value [`Error::metric_label`] returns.
    pub const LABELS: &'static [&'static str] = &[
        "conflict",
        "not_found",
        "throttled",
        "server_error",
        "rejected",
        "transport",
        "client",
        "io",
    ];

    /// A stable label (`ferrolb_reconcile_errors_total{reason}`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) => match s.code {
                409 => "conflict",
                404 => "not_found",
                429 => "throttled",
                500..=599 => "server_error",
                _ => "rejected",
            },
            Error::Kube(_) => "transport",
            Error::Client(_) => "client",
            Error::Io(_) => "io",
        }
    }

    /// How long to wait before reconciling the Service again after this error.
    ///
    /// A conflict means the Service changed under us: its watch event is on the way, so
    /// a short wait. A Service that is gone needs no retry soon (the watch removes it).
    /// A throttled or failing API server gets room; a transport error (the API server
    /// out of reach) is retried as soon as the watches would reconnect.
    pub fn retry_after(&self) -> Duration {
        match self.metric_label() {
            "conflict" => Duration::from_millis(100),
            "not_found" => Duration::from_secs(30),
            "throttled" | "server_error" => Duration::from_secs(2),
            "rejected" => Duration::from_secs(10),
            _ => Duration::from_secs(1),
        }
    }
}

/// Why an allocation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No pool ConfigMap exists (or none was ever valid).
    NoConfiguration,
    /// The Service's request (annotations, `loadBalancerIP`, families) is invalid.
    InvalidRequest,
    /// The allocator refused, for its own stable reason (`AllocError::reason`).
    Allocation(&'static str),
}

impl Failure {
    /// A stable CamelCase label (`ferrolb_allocation_failures_total{reason}` and the
    /// status condition's reason).
    pub fn metric_label(self) -> &'static str {
        match self {
            Failure::NoConfiguration => "NoConfiguration",
            Failure::InvalidRequest => "InvalidRequest",
            Failure::Allocation(reason) => reason,
        }
    }
}

/// What an Event on a Service says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteReason {
    /// Addresses allocated.
    IpAllocated,
    /// Allocation failed.
    AllocationFailed,
    /// Addresses released.
    IpReleased,
    /// Two Services claimed one address.
    IpConflict,
    /// An address written by another implementation was kept.
    IpAdopted,
    /// An address written by another implementation could not be kept.
    IpNotAdopted,
    /// An address written by another implementation lies in no pool.
    IpNotInPool,
}

impl NoteReason {
    /// The Event's CamelCase reason.
    pub fn as_str(self) -> &'static str {
        match self {
            NoteReason::IpAllocated => "IPAllocated",
            NoteReason::AllocationFailed => "AllocationFailed",
            NoteReason::IpReleased => "IPReleased",
            NoteReason::IpConflict => "IPConflict",
            NoteReason::IpAdopted => "IPAdopted",
            NoteReason::IpNotAdopted => "IPNotAdopted",
            NoteReason::IpNotInPool => "IPNotInPool",
        }
    }

    /// The Event's action: what the controller was doing.
    pub fn action(self) -> &'static str {
        match self {
            NoteReason::IpReleased => "Release",
            _ => "Allocate",
        }
    }
}

impl std::fmt::Display for NoteReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> Error {
        Error::Kube(kube::Error::Api(
            kube::core::Status::failure("x", "Reason")
                .with_code(code)
                .boxed(),
        ))
    }

    #[test]
    fn errors_have_stable_labels_and_retries_by_kind() {
        assert_eq!(api(409).metric_label(), "conflict");
        assert_eq!(api(404).metric_label(), "not_found");
        assert_eq!(api(429).metric_label(), "throttled");
        assert_eq!(api(503).metric_label(), "server_error");
        assert_eq!(api(422).metric_label(), "rejected");
        assert!(api(409).retry_after() < api(503).retry_after());
        assert!(api(503).retry_after() < api(404).retry_after());
        let io = Error::Io(std::io::Error::other("x"));
        assert_eq!(io.metric_label(), "io");
        for e in [api(409), api(404), api(429), api(503), api(422), io] {
            assert!(Error::LABELS.contains(&e.metric_label()));
        }
    }

    #[test]
    fn failures_and_notes_keep_their_published_spelling() {
        assert_eq!(Failure::NoConfiguration.metric_label(), "NoConfiguration");
        assert_eq!(
            Failure::Allocation("PoolExhausted").metric_label(),
            "PoolExhausted"
        );
        assert_eq!(NoteReason::IpReleased.as_str(), "IPReleased");
        assert_eq!(NoteReason::IpReleased.action(), "Release");
        assert_eq!(NoteReason::IpAllocated.action(), "Allocate");
        assert_eq!(NoteReason::IpNotInPool.to_string(), "IPNotInPool");
    }
}
