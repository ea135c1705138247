//! What both ferrolb binaries need from the process they run in, beyond their own
//! logic: a Kubernetes client built from a kubeconfig or the in-cluster service
//! account ([`kubeconfig`]), and glibc malloc settings for a long-lived process whose
//! resident memory is a figure operators watch ([`malloc`]).
//!
//! The crate's only `unsafe` is in [`malloc`] (three libc calls).
#![deny(unsafe_code)]

pub mod kubeconfig;
pub mod malloc;

pub use kubeconfig::{ClientError, kube_client};
