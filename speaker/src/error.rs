//! The speaker library's error type.

/// Everything that can stop the speaker.
#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    /// A flag or a combination of flags is invalid.
    #[error("invalid flag: {0}")]
    InvalidFlag(String),
    /// No Kubernetes client could be built (kubeconfig or in-cluster config).
    #[error(transparent)]
    Client(#[from] ferrolb_process::ClientError),
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {context}: {source}")]
    Kube {
        /// What the speaker was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: kube::Error,
    },
    /// The HTTP endpoint could not be served.
    #[error("metrics endpoint {addr}: {source}")]
    Http {
        /// The address.
        addr: std::net::SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The heartbeat socket could not be bound.
    #[error("membership socket {addr} (--membership-bind, --membership-port): {source}")]
    Membership {
        /// The address.
        addr: std::net::SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The data plane could not be started.
    #[error("data plane: {0}")]
    Dataplane(String),
}

impl SpeakerError {
    /// Wraps a kube error with what was being done.
    pub fn kube(context: impl Into<String>, source: kube::Error) -> Self {
        SpeakerError::Kube {
            context: context.into(),
            source,
        }
    }
}
