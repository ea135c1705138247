//! The speaker's layer-2 data path: raw sockets, interface discovery and the
//! [`Announcer`] that answers ARP/NDP for the IPs the election gives this node.
//!
//! Packets are built and judged by the pure codecs of [`ferrolb_core::wire`]; this
//! module only moves bytes. The one module with `unsafe` is [`sys`].
//!
//! Why not `pnet_datalink`: its Linux channel binds `ETH_P_ALL` (so the socket also
//! sees, and costs a clone of, every frame the host *sends*), offers no way to attach a
//! kernel filter or join a multicast group, and reads on a blocking thread; the speaker
//! needs all three the other way round, which takes a few lines of libc in [`sys`].

pub mod announced;
pub mod announcer;
pub mod bpf;
pub mod iface;
pub mod rtnl;
pub mod scan;
mod serve;
pub mod strictarp;
mod supervise;
#[allow(unsafe_code)]
pub mod sys;

pub use announcer::{Announcer, AnnouncerConfig, PacketCounters, PacketCountersSnapshot};
pub use iface::{LinkAttrs, LinkStatus, Selection, Skip};
pub use strictarp::StrictArpProblem;

/// Errors of the data path.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The interfaces could not be listed over netlink.
    #[error("listing network interfaces over netlink: {0}")]
    Netlink(#[source] std::io::Error),
}
