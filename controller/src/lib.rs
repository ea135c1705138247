//! The ferrolb controller: watches LoadBalancer Services and the pool ConfigMap
//! and writes allocated IPs to the Services' status.
//!
//! The decisions (`service`, `status`, `reconcile`, `leader::decide`) are pure
//! and tested on plain data; `run` is the Kubernetes shell around them.
#![forbid(unsafe_code)]

pub mod check_config;
pub mod cli;
pub mod convert;
pub mod engine;
pub mod error;
pub mod events;
pub mod http;
pub mod leader;
pub mod membership;
pub mod metrics;
pub mod reconcile;
pub mod run;
pub mod service;
pub mod slim;
pub mod status;
pub mod term;
