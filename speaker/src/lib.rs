//! The ferrolb speaker: elects one node per Service IP and answers ARP/NDP for it.
