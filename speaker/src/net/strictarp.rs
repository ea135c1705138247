//! Detects a kernel that would answer ARP for Service IPs itself.
//!
//! kube-proxy in IPVS mode assigns every Service IP to the dummy interface `kube-ipvs0`,
//! so the IPs are *local* on every node. With Linux's defaults the kernel then
//! - answers ARP requests for them on any interface (`arp_ignore=0`: reply for any
//!   local address), so every node answers and the election is defeated; and
//! - may use a Service IP as the sender of its own ARP requests (`arp_announce=0`: any
//!   local address), teaching neighbours that the IP is at this node.
//!
//! kube-proxy's `strictARP: true` sets `arp_ignore=1` (reply only for addresses of the
//! receiving interface) and `arp_announce=2` (always use the best local address of the
//! outgoing interface). Linux applies the *maximum* of `conf/all/<knob>` and
//! `conf/<if>/<knob>`, which is what [`assess`] computes.

use std::path::Path;

/// The ARP sysctls of one interface (and `all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArpSysctls {
    /// `conf/all/arp_ignore`.
    pub all_ignore: u8,
    /// `conf/all/arp_announce`.
    pub all_announce: u8,
    /// `conf/<if>/arp_ignore`.
    pub if_ignore: u8,
    /// `conf/<if>/arp_announce`.
    pub if_announce: u8,
}

/// What is wrong, for the Event and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrictArpProblem {
    /// The interface whose settings are lax.
    pub interface: String,
    /// Effective `arp_ignore` (0 means the kernel answers for kube-ipvs0's IPs).
    pub arp_ignore: u8,
    /// Effective `arp_announce` (below 2 means it may announce Service IPs).
    pub arp_announce: u8,
}

impl std::fmt::Display for StrictArpProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kube-ipvs0 exists and on {} the kernel has arp_ignore={} arp_announce={}: it would answer ARP for Service IPs itself; set kube-proxy's ipvs.strictARP=true (arp_ignore=1, arp_announce=2)",
            self.interface, self.arp_ignore, self.arp_announce
        )
    }
}

/// Whether the kernel would answer ARP for Service IPs on `interface`: only when
/// `kube-ipvs0` exists (otherwise Service IPs are not local) and the effective
/// `arp_ignore` is 0 or `arp_announce` is below 2.
pub fn assess(kube_ipvs0: bool, interface: &str, s: ArpSysctls) -> Option<StrictArpProblem> {
    if !kube_ipvs0 {
        return None;
    }
    let arp_ignore = s.all_ignore.max(s.if_ignore);
    let arp_announce = s.all_announce.max(s.if_announce);
    (arp_ignore == 0 || arp_announce < 2).then(|| StrictArpProblem {
        interface: interface.to_string(),
        arp_ignore,
        arp_announce,
    })
}

fn read_knob(root: &Path, dev: &str, knob: &str) -> std::io::Result<u8> {
    let p = root.join(dev).join(knob);
    let s = std::fs::read_to_string(&p)?;
    s.trim().parse().map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: not a number: {:?}", p.display(), s.trim()),
        )
    })
}

/// Reads the sysctls of `interface` under `root` (normally
/// `/proc/sys/net/ipv4/conf`, which shows the calling thread's network namespace).
pub fn read_sysctls(root: &Path, interface: &str) -> std::io::Result<ArpSysctls> {
    Ok(ArpSysctls {
        all_ignore: read_knob(root, "all", "arp_ignore")?,
        all_announce: read_knob(root, "all", "arp_announce")?,
        if_ignore: read_knob(root, interface, "arp_ignore")?,
        if_announce: read_knob(root, interface, "arp_announce")?,
    })
}

/// The default sysctl root.
pub const PROC_CONF: &str = "/proc/sys/net/ipv4/conf";

#[cfg(test)]
mod tests {
    use super::*;

    fn s(ai: u8, aa: u8, ii: u8, ia: u8) -> ArpSysctls {
        ArpSysctls {
            all_ignore: ai,
            all_announce: aa,
            if_ignore: ii,
            if_announce: ia,
        }
    }

    #[test]
    fn no_kube_ipvs0_no_problem() {
        assert_eq!(assess(false, "eth0", s(0, 0, 0, 0)), None);
    }

    #[test]
    fn linux_defaults_with_kube_ipvs0_are_a_problem() {
        let p = assess(true, "eth0", s(0, 0, 0, 0)).unwrap();
        assert_eq!((p.arp_ignore, p.arp_announce), (0, 0));
        assert!(p.to_string().contains("strictARP"));
    }

    #[test]
    fn strict_arp_on_all_or_on_the_interface_is_enough() {
        assert_eq!(assess(true, "eth0", s(1, 2, 0, 0)), None);
        assert_eq!(assess(true, "eth0", s(0, 0, 1, 2)), None);
        assert_eq!(assess(true, "eth0", s(1, 0, 0, 2)), None);
        assert_eq!(assess(true, "eth0", s(2, 2, 0, 0)), None);
    }

    #[test]
    fn half_strict_is_still_a_problem() {
        assert!(assess(true, "eth0", s(1, 1, 0, 0)).is_some());
        assert!(assess(true, "eth0", s(0, 2, 0, 0)).is_some());
    }

    #[test]
    fn reads_sysctls_from_a_tree() {
        let dir = std::env::temp_dir().join(format!("ferrolb-strictarp-{}", std::process::id()));
        for (d, i, a) in [("all", "1", "0"), ("eth0", "0", "2")] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
            std::fs::write(dir.join(d).join("arp_ignore"), format!("{i}\n")).unwrap();
            std::fs::write(dir.join(d).join("arp_announce"), format!("{a}\n")).unwrap();
        }
        let r = read_sysctls(&dir, "eth0").unwrap();
        assert_eq!(r, s(1, 0, 0, 2));
        assert!(read_sysctls(&dir, "eth9").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
