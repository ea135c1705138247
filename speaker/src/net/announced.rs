//! The IPs this node answers for, and on which interfaces: the shared state that
//! [`super::Announcer`] writes and every interface task reads per frame.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_config::{InterfaceMatcher, InterfaceRule};

/// The announced IPs with their interface rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announced {
    /// Every IP this node announces (the election's decision).
    pub ips: BTreeSet<IpAddr>,
    /// Interface rules of IPs whose pool `l2.policies` cover; an IP without one is
    /// answered on the default choice of interfaces.
    pub rules: BTreeMap<IpAddr, InterfaceRule>,
}

impl Announced {
    /// True when `ip` is answered on the interface `name` (`in_default`: the default
    /// choice takes that interface).
    pub fn answers(&self, ip: IpAddr, name: &str, in_default: bool) -> bool {
        self.ips.contains(&ip)
            && match self.rules.get(&ip) {
                None => in_default,
                Some(rule) => rule.takes(name, in_default),
            }
    }

    /// The IPs answered on the interface `name`.
    pub fn on_interface(&self, name: &str, in_default: bool) -> BTreeSet<IpAddr> {
        self.ips
            .iter()
            .copied()
            .filter(|ip| self.answers(*ip, name, in_default))
            .collect()
    }

    /// Every interface entry of the rules: interfaces they match are opened even when
    /// the default choice does not take them.
    pub fn matchers(&self) -> Vec<InterfaceMatcher> {
        let mut all: Vec<InterfaceMatcher> = Vec::new();
        for m in self.rules.values().flat_map(|r| r.matchers.iter()) {
            if !all.contains(m) {
                all.push(m.clone());
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_narrow_or_move_an_ip_to_other_interfaces() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c: IpAddr = "2001:db8::3".parse().unwrap();
        let gone: IpAddr = "192.0.2.9".parse().unwrap();
        let vlan = InterfaceRule {
            default_choice: false,
            matchers: vec![InterfaceMatcher::Name("eth0.20".into())],
        };
        let both = InterfaceRule {
            default_choice: true,
            matchers: vec![InterfaceMatcher::Glob("bond*".into())],
        };
        let set = Announced {
            ips: [a, b, c].into(),
            rules: [(b, vlan), (c, both), (gone, InterfaceRule::default())].into(),
        };
        assert!(set.answers(a, "eth0", true));
        assert!(!set.answers(a, "eth0.20", false), "a policy-only interface");
        assert!(!set.answers(b, "eth0", true));
        assert!(set.answers(b, "eth0.20", false));
        assert!(set.answers(c, "eth0", true) && set.answers(c, "bond0", false));
        assert!(!set.answers(gone, "eth0", true), "not announced at all");
        assert_eq!(set.on_interface("eth0", true), [a, c].into());
        assert_eq!(set.on_interface("eth0.20", false), [b].into());
        assert_eq!(set.matchers().len(), 2);
    }
}
