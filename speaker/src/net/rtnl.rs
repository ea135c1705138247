//! rtnetlink link messages, sans-IO: the `RTM_GETLINK` dump request and the parsing of
//! `RTM_NEWLINK` / `RTM_DELLINK` answers into [`LinkAttrs`]. Netlink is used rather
//! than `/sys/class/net` because it describes the network namespace of the *socket*
//! (sysfs shows that of its mount), and because the same socket family delivers change
//! events, so interfaces that come and go are seen at once.
//!
//! Netlink headers are in host byte order.

use ferrolb_core::wire::MacAddr;

use super::iface::{LinkAttrs, OperState};

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// New or changed link.
pub const RTM_NEWLINK: u16 = 16;
/// Removed link.
pub const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MASTER: u16 = 10;
const IFLA_OPERSTATE: u16 = 16;
const IFLA_CARRIER: u16 = 33;

/// The request for a dump of every link, with sequence number `seq`.
pub fn getlink_dump_request(seq: u32) -> [u8; NLMSG_HDRLEN + IFINFOMSG_LEN] {
    let mut b = [0u8; NLMSG_HDRLEN + IFINFOMSG_LEN];
    b[0..4].copy_from_slice(&((NLMSG_HDRLEN + IFINFOMSG_LEN) as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&RTM_GETLINK.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // pid 0 (the kernel); ifinfomsg all zero: family AF_UNSPEC, every link.
    b
}

/// One message of a netlink datagram, as far as link tracking cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A link exists (or changed) with these attributes.
    NewLink(LinkAttrs),
    /// The link with this index is gone.
    DelLink(u32),
    /// End of a dump.
    Done,
    /// The kernel refused the request (negative errno).
    Error(i32),
    /// Anything else (ignored).
    Other,
}

/// Why a datagram could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("netlink: malformed message: {0}")]
pub struct NetlinkError(pub &'static str);

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_ne_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Splits a datagram into messages. A message running past the datagram is an error;
/// nothing panics on any input.
pub fn parse(mut buf: &[u8]) -> Result<Vec<Message>, NetlinkError> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32_at(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(NetlinkError("length out of bounds"));
        }
        let ty = u16_at(buf, 4);
        let body = &buf[NLMSG_HDRLEN..len];
        out.push(match ty {
            NLMSG_DONE => Message::Done,
            NLMSG_ERROR => {
                if body.len() < 4 {
                    return Err(NetlinkError("short error message"));
                }
                Message::Error(u32_at(body, 0) as i32)
            }
            RTM_NEWLINK => Message::NewLink(parse_link(body)?),
            RTM_DELLINK => Message::DelLink(parse_link(body)?.ifindex),
            _ => Message::Other,
        });
        buf = &buf[align4(len).min(buf.len())..];
    }
    Ok(out)
}

fn parse_link(body: &[u8]) -> Result<LinkAttrs, NetlinkError> {
    if body.len() < IFINFOMSG_LEN {
        return Err(NetlinkError("short ifinfomsg"));
    }
    let mut link = LinkAttrs {
        ifindex: u32_at(body, 4),
        arphrd: u16_at(body, 2),
        flags: u32_at(body, 8),
        ..LinkAttrs::default()
    };
    let mut attrs = &body[IFINFOMSG_LEN..];
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0));
        if len < 4 || len > attrs.len() {
            return Err(NetlinkError("attribute length out of bounds"));
        }
        let data = &attrs[4..len];
        match u16_at(attrs, 2) & 0x3fff {
            IFLA_IFNAME => {
                let s = data.split(|&c| c == 0).next().unwrap_or_default();
                link.name = String::from_utf8_lossy(s).into_owned();
            }
            IFLA_ADDRESS => link.mac = MacAddr::from_slice(data),
            IFLA_MASTER if data.len() >= 4 => link.master = Some(u32_at(data, 0)),
            IFLA_OPERSTATE if !data.is_empty() => link.operstate = OperState::from_code(data[0]),
            IFLA_CARRIER if !data.is_empty() => link.carrier = Some(data[0] != 0),
            _ => {}
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    Ok(link)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(data);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn newlink(index: u32, flags: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut body = vec![0u8; 16];
        body[2..4].copy_from_slice(&1u16.to_ne_bytes());
        body[4..8].copy_from_slice(&index.to_ne_bytes());
        body[8..12].copy_from_slice(&flags.to_ne_bytes());
        for a in attrs {
            body.extend_from_slice(a);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn parses_a_link_and_done() {
        let mut d = newlink(
            7,
            0x1003,
            &[
                attr(IFLA_IFNAME, b"eth0\0"),
                attr(IFLA_ADDRESS, &[2, 0, 0, 0, 0, 0x0b]),
                attr(IFLA_MASTER, &3u32.to_ne_bytes()),
                attr(IFLA_OPERSTATE, &[6]),
                attr(IFLA_CARRIER, &[1]),
            ],
        );
        let mut done = vec![0u8; 20];
        done[0..4].copy_from_slice(&20u32.to_ne_bytes());
        done[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
        d.extend_from_slice(&done);
        let m = parse(&d).unwrap();
        assert_eq!(m.len(), 2);
        let Message::NewLink(l) = &m[0] else {
            panic!("{m:?}")
        };
        assert_eq!(l.name, "eth0");
        assert_eq!(l.ifindex, 7);
        assert_eq!(l.flags, 0x1003);
        assert_eq!(l.arphrd, 1);
        assert_eq!(l.mac, Some(MacAddr([2, 0, 0, 0, 0, 0x0b])));
        assert_eq!(l.master, Some(3));
        assert_eq!(l.operstate, OperState::Up);
        assert_eq!(l.carrier, Some(true));
        assert_eq!(m[1], Message::Done);
    }

    #[test]
    fn truncated_or_garbage_never_panics() {
        let d = newlink(7, 1, &[attr(IFLA_IFNAME, b"eth0\0")]);
        for n in 0..d.len() {
            let _ = parse(&d[..n]);
        }
        let mut bad = d.clone();
        bad[16 + 16] = 200; // attribute length beyond the message
        assert!(parse(&bad).is_err());
        for seed in 0..200u32 {
            let g: Vec<u8> = (0..64u32)
                .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed * 97) >> 13) as u8)
                .collect();
            let _ = parse(&g);
        }
    }

    #[test]
    fn dump_request_has_request_and_dump_flags() {
        let r = getlink_dump_request(9);
        assert_eq!(u32_at(&r, 0), 32);
        assert_eq!(u16_at(&r, 4), RTM_GETLINK);
        assert_eq!(u16_at(&r, 6), 0x301);
        assert_eq!(u32_at(&r, 8), 9);
    }
}
