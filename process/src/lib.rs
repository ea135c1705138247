//! The runtime both ferrolb binaries share, so that nothing is written twice: the
//! common flags and their environment variables ([`flags`]), logging ([`logging`]),
//! the shutdown signal ([`shutdown`]), the Event sink ([`events`]), the watch retry ([`backoff`]), the `/metrics` `/livez` `/readyz` endpoint
//! ([`http`]), a Kubernetes client built from a kubeconfig or the in-cluster service
//! account ([`kubeconfig`]), and glibc malloc settings for a long-lived process whose
//! resident memory is a figure operators watch ([`malloc`]).
//!
//! The crate's only `unsafe` is in [`malloc`] (three libc calls).
#![deny(unsafe_code)]

pub mod backoff;
pub mod events;
pub mod flags;
pub mod http;
pub mod kubeconfig;
pub mod logging;
pub mod malloc;
pub mod shutdown;

pub use kubeconfig::{ClientError, kube_client};
