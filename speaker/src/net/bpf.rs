//! The classic BPF programs the kernel runs on every frame before it reaches the
//! speaker's sockets, so that only the frames the speaker acts on cost a wake-up and a
//! copy: ARP requests, and ICMPv6 Neighbor Solicitations.
//!
//! Each program is a list of "this field must equal that value" checks, any failure
//! dropping the frame. Frames whose 802.1Q tag the NIC stripped into packet metadata
//! are dropped too: they belong to a VLAN, which is another interface (see
//! [`ferrolb_core::wire`]).

/// One classic BPF instruction, as `SO_ATTACH_FILTER` takes it.
pub type Insn = libc::sock_filter;

const BPF_LD: u16 = 0x00;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_W: u16 = 0x00;
const BPF_H: u16 = 0x08;
const BPF_B: u16 = 0x10;
const BPF_ABS: u16 = 0x20;
const BPF_JEQ: u16 = 0x10;
const BPF_K: u16 = 0x00;

/// Base of the kernel's "ancillary data" pseudo-offsets.
const SKF_AD_OFF: i32 = -0x1000;
/// Ancillary: 1 if the frame carried a VLAN tag the NIC or stack moved to metadata.
const SKF_AD_VLAN_TAG_PRESENT: i32 = 48;

/// Bytes of an accepted ARP frame handed to the socket (ARP is 42 bytes, 60 padded).
pub const ARP_SNAPLEN: u32 = 128;
/// Bytes of an accepted NS handed to the socket: enough for the header, the target and
/// several options; a longer one arrives truncated and is dropped by the parser.
pub const NS_SNAPLEN: u32 = 256;

/// A field load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// 8 bits at an offset from the start of the Ethernet header.
    Byte(u32),
    /// 16 bits, network order.
    Half(u32),
    /// 32 bits, network order.
    Word(u32),
    /// Whether a VLAN tag is in the packet metadata (0/1).
    VlanPresent,
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// Builds "every `(load, value)` must match, then accept `snaplen` bytes".
pub fn all_equal(checks: &[(Load, u32)], snaplen: u32) -> Vec<Insn> {
    let n = checks.len();
    let mut prog = Vec::with_capacity(2 * n + 2);
    // Layout: [ld, jeq] * n, ret snaplen, ret 0.
    for (i, (load, value)) in checks.iter().enumerate() {
        let ld = match *load {
            Load::Byte(off) => insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, off),
            Load::Half(off) => insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, off),
            Load::Word(off) => insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, off),
            Load::VlanPresent => insn(
                BPF_LD | BPF_W | BPF_ABS,
                0,
                0,
                (SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT) as u32,
            ),
        };
        prog.push(ld);
        // The jeq is at index 2i+1; the drop at 2n+1: skip the rest on mismatch.
        let to_drop = (2 * n + 1) - (2 * i + 2);
        prog.push(insn(BPF_JMP | BPF_JEQ | BPF_K, 0, to_drop as u8, *value));
    }
    prog.push(insn(BPF_RET | BPF_K, 0, 0, snaplen));
    prog.push(insn(BPF_RET | BPF_K, 0, 0, 0));
    prog
}

/// Untagged Ethernet/IPv4 ARP requests.
pub fn arp_requests() -> Vec<Insn> {
    all_equal(
        &[
            (Load::VlanPresent, 0),
            (Load::Half(12), 0x0806),      // EtherType ARP
            (Load::Word(14), 0x0001_0800), // hardware Ethernet, protocol IPv4
            (Load::Half(18), 0x0604),      // address lengths 6 and 4
            (Load::Half(20), 1),           // operation: request
        ],
        ARP_SNAPLEN,
    )
}

/// Untagged IPv6 frames carrying, right after the fixed header, an ICMPv6 Neighbor
/// Solicitation with hop limit 255 (RFC 4861 drops anything else anyway).
pub fn neighbor_solicitations() -> Vec<Insn> {
    all_equal(
        &[
            (Load::VlanPresent, 0),
            (Load::Half(12), 0x86dd), // EtherType IPv6
            (Load::Byte(20), 58),     // next header ICMPv6
            (Load::Byte(21), 255),    // hop limit
            (Load::Byte(54), 135),    // ICMPv6 type NS
        ],
        NS_SNAPLEN,
    )
}

#[cfg(test)]
/// Runs `prog` on `frame` as the kernel would, for tests: returns the number of bytes
/// accepted (0 = dropped). Supports exactly what [`all_equal`] emits; an out-of-bounds
/// load drops, as in the kernel.
fn run(prog: &[Insn], frame: &[u8], vlan_present: bool) -> u32 {
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    while let Some(i) = prog.get(pc) {
        pc += 1;
        match i.code {
            c if c == BPF_LD | BPF_W | BPF_ABS
                && i.k == (SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT) as u32 =>
            {
                acc = u32::from(vlan_present)
            }
            c if c & 0x07 == BPF_LD => {
                let k = i.k as usize;
                let n = match c & 0x18 {
                    BPF_B => 1,
                    BPF_H => 2,
                    _ => 4,
                };
                let Some(b) = frame.get(k..k + n) else {
                    return 0;
                };
                acc = b.iter().fold(0u32, |a, &x| (a << 8) | u32::from(x));
            }
            c if c == BPF_JMP | BPF_JEQ | BPF_K => {
                pc += usize::from(if acc == i.k { i.jt } else { i.jf });
            }
            c if c == BPF_RET | BPF_K => return i.k.min(frame.len() as u32),
            _ => return 0,
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const ARP_REQUEST: &str =
        "ffffffffffff02000000000a0806000108000604000102000000000ac0000264000000000000c0000201";
    const ARP_REPLY: &str =
        "02000000000a02000000000b0806000108000604000202000000000bc000020102000000000ac0000264";
    const NS: &str = "3333ff00000102000000000a86dd6000000000203aff20010db8000000000000000000000100ff0200000000000000000001ff00000187001b210000000020010db8000000000000000000000001010102000000000a";
    const NA: &str = "02000000000a02000000000b86dd6000000000203aff20010db800000000000000000000000120010db80000000000000000000001008800896b6000000020010db8000000000000000000000001020102000000000b";

    #[test]
    fn arp_filter_passes_requests_only() {
        let p = arp_requests();
        assert_eq!(run(&p, &hex(ARP_REQUEST), false), 42);
        assert_eq!(run(&p, &hex(ARP_REQUEST), true), 0, "VLAN-tagged");
        assert_eq!(run(&p, &hex(ARP_REPLY), false), 0);
        assert_eq!(run(&p, &hex(NS), false), 0);
        assert_eq!(run(&p, &hex(ARP_REQUEST)[..21], false), 0, "truncated");
        let mut rarp = hex(ARP_REQUEST);
        rarp[15] = 6; // hardware type 6
        assert_eq!(run(&p, &rarp, false), 0);
    }

    #[test]
    fn ns_filter_passes_solicitations_only() {
        let p = neighbor_solicitations();
        assert_eq!(run(&p, &hex(NS), false), 86);
        assert_eq!(run(&p, &hex(NS), true), 0);
        assert_eq!(run(&p, &hex(NA), false), 0);
        assert_eq!(run(&p, &hex(ARP_REQUEST), false), 0);
        let mut hop = hex(NS);
        hop[21] = 64;
        assert_eq!(run(&p, &hop, false), 0);
        let mut udp = hex(NS);
        udp[20] = 17;
        assert_eq!(run(&p, &udp, false), 0);
    }

    #[test]
    fn snaplen_caps_long_frames() {
        let mut big = hex(NS);
        big.resize(1500, 0);
        assert_eq!(run(&neighbor_solicitations(), &big, false), NS_SNAPLEN);
    }
}
