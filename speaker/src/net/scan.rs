//! The I/O shell of interface discovery: a netlink dump of the links of the calling
//! thread's network namespace, and a netlink subscription that wakes the announcer when
//! any link changes.

use std::io;

use tokio::io::unix::AsyncFd;

use super::iface::LinkAttrs;
use super::rtnl::{self, Message};
use super::sys::{NetlinkSocket, RTMGRP_LINK};

/// Every link of the current network namespace. Blocking, but the kernel builds the
/// answer while we read it, so it returns in microseconds (and a 2 s receive timeout
/// bounds it if it ever did not).
pub fn dump_links() -> io::Result<Vec<LinkAttrs>> {
    let sock = NetlinkSocket::open(0, false)?;
    sock.send(&rtnl::getlink_dump_request(1))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut links = Vec::new();
    loop {
        let n = sock.recv(&mut buf)?;
        let msgs =
            rtnl::parse(&buf[..n]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        if msgs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "netlink: empty datagram",
            ));
        }
        for m in msgs {
            match m {
                Message::NewLink(l) => links.push(l),
                Message::Done => return Ok(links),
                Message::Error(e) if e != 0 => return Err(io::Error::from_raw_os_error(-e)),
                _ => {}
            }
        }
    }
}

/// A subscription to link changes (`RTMGRP_LINK`).
#[derive(Debug)]
pub struct LinkEvents {
    fd: AsyncFd<NetlinkSocket>,
    buf: Vec<u8>,
}

impl LinkEvents {
    /// Subscribes; must be called within a tokio runtime.
    pub fn open() -> io::Result<Self> {
        Ok(LinkEvents {
            fd: super::sys::register(NetlinkSocket::open(RTMGRP_LINK, true)?)?,
            buf: vec![0u8; 64 * 1024],
        })
    }

    /// Waits until at least one link changed, then drains every pending notification
    /// (the caller re-reads the full state, so their content does not matter; an
    /// overflow, `ENOBUFS`, counts as a change too).
    pub async fn changed(&mut self) -> io::Result<()> {
        let mut guard = self.fd.readable().await?;
        loop {
            match guard.try_io(|s| s.get_ref().recv(&mut self.buf)) {
                Ok(Ok(_)) => continue,
                Ok(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => return Ok(()),
            }
        }
    }
}
