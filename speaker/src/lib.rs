//! The ferrolb speaker: elects one node per Service IP and answers ARP/NDP for it.
//!
//! The election itself is pure ([`ferrolb_core::election`]); this crate is its kube
//! shell ([`run::Speaker`]) and the seam to the packets ([`dataplane::Dataplane`]).
// `deny`, not `forbid`: the raw-socket module (`net::sys`) needs small, commented
// `unsafe`.
#![deny(unsafe_code)]

pub mod api_probe;
pub mod cli;
pub mod dataplane;
pub mod elector;
pub mod error;
pub mod events;
pub mod facts;
pub mod http;
pub mod lease;
pub mod membership;
pub mod metrics;
pub mod net;
pub mod renew;
pub mod run;
pub mod slim;
pub mod watch;

pub use cli::{Cli, MembershipSettings, Settings, Timers};
pub use dataplane::{Dataplane, DataplaneCounters, RecordingDataplane};
pub use error::SpeakerError;
pub use run::Speaker;
