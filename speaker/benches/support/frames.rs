//! Frames the speaker benchmarks send, built with ferrolb's own codecs.

use std::net::Ipv4Addr;

use ferrolb_core::wire::{ArpOperation, ArpRepr, EtherType, EthernetRepr, MacAddr, Packet};

/// A broadcast ARP request from `sender_mac`/`sender_ip` asking who has `target_ip`.
pub fn arp_request(sender_mac: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    let p = Packet::Arp {
        eth: EthernetRepr {
            src_addr: sender_mac,
            dst_addr: MacAddr::BROADCAST,
            ethertype: EtherType::ARP,
        },
        arp: ArpRepr {
            operation: ArpOperation::Request,
            sender_mac,
            sender_ip,
            target_mac: MacAddr::ZERO,
            target_ip,
        },
    };
    let mut b = vec![0; p.buffer_len()];
    p.emit(&mut b).expect("the buffer has the frame's length");
    b
}
