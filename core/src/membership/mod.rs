//! Speaker membership over the node network (docs/membership.md): authenticated
//! all-to-all heartbeats with relayed evidence, as pure code.
//!
//! - [`wire`]: the heartbeat's codec and the FNV-1a name hash;
//! - [`auth`]: the keyring (HMAC-SHA256, key rotation);
//! - [`detector`]: the state machine deciding who is alive and what to send.

pub mod auth;
pub mod detector;
pub mod wire;

pub use auth::{AuthError, KeyError, Keyring, MIN_KEY_LEN, key_id};
pub use detector::{
    DropReason, LocalState, Membership, MembershipConfig, Outgoing, PeerState, Received,
};
pub use wire::name_hash;
