//! ferrolb's pool configuration: the validated model that the allocator and
//! the speaker consume, and the parsers for the three ConfigMap formats
//! (ferrolb's own, MetalLB's legacy one, kube-vip-cloud-provider's).
//!
//! Everything here is pure: text in, a [`Config`] or a list of problems out.
#![forbid(unsafe_code)]

pub mod model;

pub use model::{Config, IpRange, L2Config, LabelSelector, Pool, SelectorRequirement};
