//! ferrolb's pure core, shared by the controller and the speaker: IP allocation,
//! election decisions and layer-2 packet codecs. No kube client and no socket
//! lives here, so every decision is tested on plain data.
#![forbid(unsafe_code)]
pub mod alloc;
pub mod annotations;
pub mod duration;
pub mod election;
pub mod membership;
pub mod service;
pub mod wire;
