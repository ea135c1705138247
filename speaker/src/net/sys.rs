//! The only `unsafe` in the speaker: thin wrappers over the Linux syscalls the data path
//! needs (`AF_PACKET` raw sockets with a classic BPF filter and multicast membership,
//! `AF_NETLINK` route sockets, and `setns` for the network-namespace lab).
//!
//! Each `unsafe` block calls one libc function with pointers to live, correctly sized
//! locals; its result is checked right after. Everything above this module is safe code.

use std::fs::File;
use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::bpf::Insn;

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` is a live reference to a `T` whose size is passed along; the kernel
    // only reads that many bytes during the call.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall without pointers; on success we own the new descriptor.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
    cvt_size(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) })
}

fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`.
    cvt_size(unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), 0) })
}

/// An `AF_PACKET`/`SOCK_RAW` socket bound to one interface and one EtherType, with a
/// classic BPF filter run by the kernel on every candidate frame. Non-blocking.
///
/// It is created with protocol 0 (which receives nothing), gets its filter, and only
/// then is bound to the EtherType: no unfiltered frame can slip in between.
/// Binding to one EtherType rather than `ETH_P_ALL` keeps the socket off the transmit
/// path entirely (the kernel clones every outgoing frame for `ETH_P_ALL` taps) and lets
/// the kernel's protocol demultiplexing skip it for every other EtherType.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketSocket {
    /// Opens a socket on `ifindex` for `ethertype`, filtered by `filter` (`None`: no
    /// filter, every frame of that EtherType is delivered — for the benchmark only).
    pub fn open(ifindex: u32, ethertype: u16, filter: Option<&[Insn]>) -> io::Result<Self> {
        let fd = socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)?;
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "ifindex out of range"))?;
        if let Some(f) = filter {
            let prog = libc::sock_fprog {
                len: u16::try_from(f.len()).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "BPF program too long")
                })?,
                // The kernel copies the program during setsockopt; `f` outlives the call.
                filter: f.as_ptr() as *mut libc::sock_filter,
            };
            setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                &prog,
            )?;
        }
        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ethertype.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a live sockaddr_ll and its exact size is passed.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(PacketSocket { fd, ifindex })
    }

    /// Receives one frame into `buf` (truncated to its length); `WouldBlock` when none.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        recv(self.fd.as_raw_fd(), buf)
    }

    /// Sends one whole Ethernet frame out of the bound interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<usize> {
        send(self.fd.as_raw_fd(), frame)
    }

    /// Sends several whole frames with one `sendmmsg(2)`; returns how many left. For
    /// the benchmark's load generator (the speaker answers frame by frame).
    pub fn send_batch(&self, frames: &[&[u8]]) -> io::Result<usize> {
        let mut iov: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr() as *mut libc::c_void,
                iov_len: f.len(),
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iov
            .iter_mut()
            .map(|v| {
                // SAFETY: all-zero is a valid msghdr (no name, no control data).
                let mut h: libc::mmsghdr = unsafe { zeroed() };
                h.msg_hdr.msg_iov = v;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: `msgs` holds `msgs.len()` headers, each pointing to one iovec of `iov`
        // that points into a frame of `frames`; all outlive the call, and the kernel only
        // reads the frames (and writes `msg_len` into the headers).
        let n = cvt(unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                msgs.len() as libc::c_uint,
                0,
            )
        })?;
        Ok(n as usize)
    }

    /// Asks the kernel to stamp every received frame with its arrival time
    /// (`SO_TIMESTAMPNS`, CLOCK_REALTIME); read it with [`PacketSocket::recv_timestamped`].
    pub fn enable_timestamps(&self) -> io::Result<()> {
        setsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &1i32,
        )
    }

    /// Receives one frame and the time the kernel received it (since the Unix epoch),
    /// if [`PacketSocket::enable_timestamps`] was called. For the benchmark, whose
    /// latency figures must not include its own scheduling delays.
    pub fn recv_timestamped(
        &self,
        buf: &mut [u8],
    ) -> io::Result<(usize, Option<std::time::Duration>)> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // u64 words keep the control buffer aligned for cmsghdr.
        let mut control = [0u64; 16];
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control) as _;
        // SAFETY: `msg` points to `iov` (into `buf`) and to `control`, all live and of
        // the sizes given; the kernel writes at most those many bytes.
        let n = cvt_size(unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, 0) })?;
        // With only SO_TIMESTAMPNS enabled, the one control message is
        // {len: usize, level: i32, type: i32, timespec {sec: i64, nsec: i64}}.
        let used = msg.msg_controllen as usize;
        let level = control[1] as u32 as i32;
        let ty = (control[1] >> 32) as u32 as i32;
        let ts = (used >= 32 && level == libc::SOL_SOCKET && ty == libc::SCM_TIMESTAMPNS)
            .then(|| std::time::Duration::new(control[2], control[3] as u32));
        Ok((n, ts))
    }

    fn membership(&self, op: libc::c_int, ty: libc::c_int, mac: Option<[u8; 6]>) -> io::Result<()> {
        let mut addr = [0u8; 8];
        if let Some(m) = mac {
            addr[..6].copy_from_slice(&m);
        }
        let mreq = libc::packet_mreq {
            mr_ifindex: self.ifindex,
            mr_type: ty as u16,
            mr_alen: if mac.is_some() { 6 } else { 0 },
            mr_address: addr,
        };
        setsockopt(self.fd.as_raw_fd(), libc::SOL_PACKET, op, &mreq)
    }

    /// Makes the interface accept frames sent to the multicast `mac` for as long as this
    /// socket lives (the kernel programs the NIC's multicast filter, and falls back to
    /// all-multicast by itself when the filter is full).
    pub fn join_multicast(&self, mac: [u8; 6]) -> io::Result<()> {
        self.membership(
            libc::PACKET_ADD_MEMBERSHIP,
            libc::PACKET_MR_MULTICAST,
            Some(mac),
        )
    }

    /// Undoes [`PacketSocket::join_multicast`].
    pub fn leave_multicast(&self, mac: [u8; 6]) -> io::Result<()> {
        self.membership(
            libc::PACKET_DROP_MEMBERSHIP,
            libc::PACKET_MR_MULTICAST,
            Some(mac),
        )
    }

    /// Sets the receive buffer size (the kernel doubles it and caps it by rmem_max unless
    /// the caller has CAP_NET_ADMIN, which `SO_RCVBUFFORCE` needs).
    pub fn set_recv_buffer(&self, bytes: usize) -> io::Result<()> {
        let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        setsockopt(
            self.fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &v,
        )
        .or_else(|_| setsockopt(self.fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &v))
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// An `AF_NETLINK`/`NETLINK_ROUTE` socket.
#[derive(Debug)]
pub struct NetlinkSocket {
    fd: OwnedFd,
}

/// The rtnetlink multicast group of link changes.
pub const RTMGRP_LINK: u32 = libc::RTMGRP_LINK as u32;

impl NetlinkSocket {
    /// Opens a route socket subscribed to the multicast `groups` (0: none, for
    /// request/response use). `nonblocking` for event sockets driven by tokio; a blocking
    /// one gets a 2 s receive timeout so that a dump can never hang the caller.
    pub fn open(groups: u32, nonblocking: bool) -> io::Result<Self> {
        let ty = libc::SOCK_RAW | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
        let fd = socket(libc::AF_NETLINK, ty, libc::NETLINK_ROUTE)?;
        // SAFETY: all-zero is a valid sockaddr_nl.
        let mut snl: libc::sockaddr_nl = unsafe { zeroed() };
        snl.nl_family = libc::AF_NETLINK as u16;
        snl.nl_groups = groups;
        // SAFETY: `snl` is a live sockaddr_nl and its exact size is passed.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&snl as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        if !nonblocking {
            let tv = libc::timeval {
                tv_sec: 2,
                tv_usec: 0,
            };
            setsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)?;
        }
        Ok(NetlinkSocket { fd })
    }

    /// Sends one request to the kernel.
    pub fn send(&self, msg: &[u8]) -> io::Result<usize> {
        send(self.fd.as_raw_fd(), msg)
    }

    /// Receives one datagram (possibly several netlink messages).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        recv(self.fd.as_raw_fd(), buf)
    }
}

impl AsRawFd for NetlinkSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Moves the *calling thread* into the network namespace `ns` (a file such as
/// `/var/run/netns/<name>`). For the network-namespace lab and benchmark, which run an
/// announcer or a client inside a namespace from a dedicated thread; the speaker itself
/// never changes namespace.
pub fn enter_netns(ns: &File) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor we borrow for its duration.
    cvt(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) })?;
    Ok(())
}

/// The socket types of this module, which own their descriptor for their whole life.
pub trait OwnedSocket: AsRawFd + sealed::Sealed {}
impl OwnedSocket for PacketSocket {}
impl OwnedSocket for NetlinkSocket {}
mod sealed {
    pub trait Sealed {}
    impl Sealed for super::PacketSocket {}
    impl Sealed for super::NetlinkSocket {}
}

/// Registers one of this module's sockets with the tokio reactor for readability
/// (sends never wait: a full queue is a dropped reply, counted by the caller).
pub fn register<T: OwnedSocket>(sock: T) -> io::Result<tokio::io::unix::AsyncFd<T>> {
    // SAFETY: `PacketSocket` and `NetlinkSocket` hold an `OwnedFd` that is opened in
    // their constructor, never replaced, and closed only when they drop, so the
    // descriptor stays valid and the same for the whole life of the `AsyncFd`.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(sock, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}
