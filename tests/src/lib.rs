//! ferrolb testbed: an embedded Kubernetes API server for tests and the lab.
#![forbid(unsafe_code)]

pub mod apiserver;
pub mod lab;
