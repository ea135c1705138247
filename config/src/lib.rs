//! ferrolb's pool configuration: the validated model that the allocator and
//! the speaker consume, and the parsers for the three ConfigMap formats
//! (ferrolb's own, MetalLB's legacy one, kube-vip-cloud-provider's).
//!
//! Everything here is pure: text in, a [`Config`] or every problem found out.
//! A configuration with any problem yields no `Config` at all, so a bad edit
//! never takes effect in part.
//!
//! Entry points: [`parse_configmap_data`] (the controller, on each ConfigMap
//! change), [`parse_document`] and [`summarize`] (`check-config FILE`),
//! [`convert::convert`] (`convert FILE...`: MetalLB's, Cilium's or kube-vip's
//! objects to a ferrolb ConfigMap).
#![forbid(unsafe_code)]

mod addr;
pub mod convert;
mod document;
pub mod error;
mod ferrolb;
mod kubevip;
mod metallb;
pub mod model;
mod policy;
mod selector;
mod summary;
mod validate;
mod walk;

pub use document::{
    FERROLB_KEY, Format, METALLB_KEY, Parsed, parse_configmap_data, parse_document,
};
pub use error::{ConfigErrors, PoolRef, Problem, ProblemKind};
pub use ferrolb::parse_ferrolb_yaml;
pub use kubevip::{GLOBAL as KUBEVIP_GLOBAL_POOL, parse_kubevip};
pub use metallb::parse_metallb_legacy;
pub use model::{
    Announcement, Config, InterfaceMatcher, InterfaceRule, IpRange, L2Config, L2Policy,
    LabelSelector, Pool, PoolChoice, SelectorRequirement, is_buggy_ip,
};
pub use summary::{AnnouncementSummary, Families, PoolSummary, SummaryTable, summarize};
