//! Which interfaces the speaker answers on, decided from link attributes alone (pure;
//! the attributes come from netlink, see [`super::scan`]).
//!
//! **Default (no `l2.interfaces`)**: every interface that is
//! - Ethernet (ARPHRD_ETHER), administratively up (`IFF_UP`) and broadcast-capable
//!   (`IFF_BROADCAST`),
//! - not loopback, not `IFF_NOARP`,
//! - without a master: a bond slave or bridge port answers through its master (the
//!   bond or bridge carries the node's address and MAC on that segment),
//! - not named like the usual virtual interfaces of container networking, whose peers
//!   are pods on this node, not the layer-2 segment clients sit on: see
//!   [`VIRTUAL_PREFIXES`].
//!
//! **With `l2.interfaces`**: exactly the listed interfaces that exist and are Ethernet,
//! whatever their name, master or flags (an explicit choice wins; a listed interface
//! that is down is still *selected*, and reported as link down).
//!
//! A selected interface's link is usable ([`LinkAttrs::link_ok`]) when it is up, has
//! carrier and its operational state is not down/dormant: the election treats a node
//! without any usable selected interface as ineligible.

use ferrolb_config::{InterfaceMatcher, InterfaceRule};
use ferrolb_core::wire::MacAddr;

/// `IFF_UP`.
pub const IFF_UP: u32 = 0x1;
/// `IFF_BROADCAST`.
pub const IFF_BROADCAST: u32 = 0x2;
/// `IFF_RUNNING`: the kernel considers the link operational (set by its link-watch
/// work, at the moment it also activates the transmit queue).
pub const IFF_RUNNING: u32 = 0x40;
/// `IFF_LOOPBACK`.
pub const IFF_LOOPBACK: u32 = 0x8;
/// `IFF_NOARP`.
pub const IFF_NOARP: u32 = 0x80;
/// `ARPHRD_ETHER`.
pub const ARPHRD_ETHER: u16 = 1;

/// Name prefixes of virtual interfaces skipped by default: veth pairs and CNI plugins'
/// devices (Calico, Flannel, Cilium, Weave, Docker, LXC, kube-proxy's IPVS dummy,
/// tunnels and overlays).
pub const VIRTUAL_PREFIXES: &[&str] = &[
    "veth",
    "cni",
    "flannel",
    "cali",
    "docker",
    "kube-ipvs",
    "kube-bridge",
    "lxc",
    "cilium",
    "vxlan",
    "tunl",
    "weave",
    "vethwe",
    "genev",
    "nodelocaldns",
    "virbr",
    "br-",
    "tap",
    "tun",
    "wg",
    "kube-dummy",
    "antrea",
    "ovs",
    "ipvlan",
    "macvtap",
];

/// The RFC 2863 operational state of a link (`IFLA_OPERSTATE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OperState {
    /// 0: the driver does not report it (common for virtual devices).
    #[default]
    Unknown,
    /// 1.
    NotPresent,
    /// 2.
    Down,
    /// 3.
    LowerLayerDown,
    /// 4.
    Testing,
    /// 5.
    Dormant,
    /// 6.
    Up,
}

impl OperState {
    /// From the netlink code.
    pub fn from_code(c: u8) -> OperState {
        match c {
            1 => OperState::NotPresent,
            2 => OperState::Down,
            3 => OperState::LowerLayerDown,
            4 => OperState::Testing,
            5 => OperState::Dormant,
            6 => OperState::Up,
            _ => OperState::Unknown,
        }
    }
}

/// What the kernel says about one link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkAttrs {
    /// Interface index.
    pub ifindex: u32,
    /// Name.
    pub name: String,
    /// `ARPHRD_*` hardware type.
    pub arphrd: u16,
    /// `IFF_*` flags.
    pub flags: u32,
    /// Hardware address.
    pub mac: Option<MacAddr>,
    /// Index of the bond/bridge this link is enslaved to.
    pub master: Option<u32>,
    /// Operational state.
    pub operstate: OperState,
    /// Carrier (physical link) present.
    pub carrier: Option<bool>,
}

impl LinkAttrs {
    /// Up, running, with carrier, and not operationally down: frames can flow.
    /// `IFF_RUNNING` matters: right after a link comes up, the kernel already reports
    /// carrier but drops what is sent until its link-watch work (up to 1 s later) has
    /// activated the queue and set `IFF_RUNNING`.
    pub fn link_ok(&self) -> bool {
        self.flags & IFF_UP != 0
            && self.flags & IFF_RUNNING != 0
            && self.carrier != Some(false)
            && !matches!(
                self.operstate,
                OperState::Down
                    | OperState::LowerLayerDown
                    | OperState::NotPresent
                    | OperState::Dormant
            )
    }
}

/// Which interfaces to use: the `l2.interfaces` of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selection {
    /// The documented default (module documentation).
    #[default]
    Auto,
    /// Exactly these names.
    Named(Vec<String>),
}

impl Selection {
    /// From `l2.interfaces`: empty means [`Selection::Auto`].
    pub fn from_list(names: &[String]) -> Selection {
        if names.is_empty() {
            Selection::Auto
        } else {
            Selection::Named(names.to_vec())
        }
    }
}

/// Why an interface is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Not in `l2.interfaces`.
    NotListed,
    /// Not Ethernet (or no usable MAC).
    NotEthernet,
    /// Loopback.
    Loopback,
    /// Administratively down.
    Down,
    /// Not broadcast-capable (point-to-point...).
    NotBroadcast,
    /// `IFF_NOARP`.
    NoArp,
    /// Enslaved to a bond or bridge: its master answers.
    HasMaster,
    /// Named like a container-networking device (the prefix).
    Virtual(&'static str),
}

/// Whether `link` is used under `sel`; the error says why not.
pub fn qualifies(link: &LinkAttrs, sel: &Selection) -> Result<(), Skip> {
    let ethernet = link.arphrd == ARPHRD_ETHER && link.mac.is_some_and(|m| m.is_unicast());
    match sel {
        Selection::Named(names) => {
            if !names.contains(&link.name) {
                Err(Skip::NotListed)
            } else if !ethernet {
                Err(Skip::NotEthernet)
            } else {
                Ok(())
            }
        }
        Selection::Auto => {
            if link.flags & IFF_LOOPBACK != 0 {
                return Err(Skip::Loopback);
            }
            if !ethernet {
                return Err(Skip::NotEthernet);
            }
            if link.flags & IFF_UP == 0 {
                return Err(Skip::Down);
            }
            if link.flags & IFF_BROADCAST == 0 {
                return Err(Skip::NotBroadcast);
            }
            if link.flags & IFF_NOARP != 0 {
                return Err(Skip::NoArp);
            }
            if link.master.is_some() {
                return Err(Skip::HasMaster);
            }
            if let Some(p) = VIRTUAL_PREFIXES.iter().find(|p| link.name.starts_with(**p)) {
                return Err(Skip::Virtual(p));
            }
            Ok(())
        }
    }
}

/// The state of one selected interface, as reported to the election and in logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkStatus {
    /// Name.
    pub name: String,
    /// Index.
    pub ifindex: u32,
    /// MAC the speaker answers with.
    pub mac: MacAddr,
    /// Whether frames can flow ([`LinkAttrs::link_ok`]).
    pub link_ok: bool,
    /// Taken by the default choice ([`Selection`]), not only by an `l2.policies`
    /// interface entry: IPs of pools that no policy covers are answered here.
    pub in_default: bool,
}

/// The interfaces to use among `links`, with their status. With a [`Selection::Named`]
/// list, the names that match no usable link are returned as missing so that they
/// count as "down" for eligibility.
pub fn select(links: &[LinkAttrs], sel: &Selection) -> (Vec<LinkStatus>, Vec<String>) {
    select_with(links, sel, &[])
}

/// [`select`], plus the Ethernet interfaces that `extra` (the interface entries of the
/// `l2.policies` that apply to this node) match, as [`Selection::Named`] takes them.
pub fn select_with(
    links: &[LinkAttrs],
    sel: &Selection,
    extra: &[InterfaceMatcher],
) -> (Vec<LinkStatus>, Vec<String>) {
    let chosen: Vec<LinkStatus> = links
        .iter()
        .filter_map(|l| {
            let in_default = qualifies(l, sel).is_ok();
            let by_policy = || {
                extra.iter().any(|m| m.matches(&l.name))
                    && qualifies(l, &Selection::Named(vec![l.name.clone()])).is_ok()
            };
            (in_default || by_policy()).then(|| LinkStatus {
                name: l.name.clone(),
                ifindex: l.ifindex,
                mac: l.mac.unwrap_or_default(),
                link_ok: l.link_ok(),
                in_default,
            })
        })
        .collect();
    let missing = match sel {
        Selection::Auto => Vec::new(),
        Selection::Named(names) => names
            .iter()
            .filter(|n| !chosen.iter().any(|c| &c.name == *n))
            .cloned()
            .collect(),
    };
    (chosen, missing)
}

/// The node can announce: at least one selected interface has a usable link (every
/// announced IP is answered on every selected interface, so one suffices).
pub fn eligible(selected: &[LinkStatus]) -> bool {
    selected.iter().any(|s| s.link_ok)
}

/// The node can announce under `rules` (one per IP it may be elected for, see
/// [`ferrolb_config::InterfaceRule`]): every distinct rule that takes some interface
/// has at least one taken interface with a usable link. The election knows one link
/// state per node, so a node that cannot answer some of its pools on any of their
/// interfaces gives up all of them rather than keep addresses it cannot answer for.
/// Without rules (no `l2.policies`), [`eligible`].
pub fn eligible_for<'a>(
    selected: &[LinkStatus],
    rules: impl IntoIterator<Item = &'a InterfaceRule>,
) -> bool {
    let mut groups: Vec<&InterfaceRule> = Vec::new();
    for r in rules {
        if !r.is_empty() && !groups.contains(&r) {
            groups.push(r);
        }
    }
    if groups.is_empty() {
        return eligible(selected);
    }
    groups.iter().all(|r| {
        selected
            .iter()
            .any(|l| l.link_ok && r.takes(&l.name, l.in_default))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_link(name: &str) -> LinkAttrs {
        LinkAttrs {
            ifindex: 2,
            name: name.into(),
            arphrd: ARPHRD_ETHER,
            flags: IFF_UP | IFF_BROADCAST | IFF_RUNNING,
            mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
            master: None,
            operstate: OperState::Up,
            carrier: Some(true),
        }
    }

    #[test]
    fn default_takes_a_plain_ethernet_interface() {
        assert_eq!(qualifies(&mk_link("eth0"), &Selection::Auto), Ok(()));
        assert_eq!(qualifies(&mk_link("enp3s0"), &Selection::Auto), Ok(()));
        assert_eq!(qualifies(&mk_link("bond0"), &Selection::Auto), Ok(()));
        assert_eq!(qualifies(&mk_link("br0"), &Selection::Auto), Ok(()));
    }

    #[test]
    fn default_skips_loopback_noarp_down_p2p_and_slaves() {
        let a = Selection::Auto;
        let mut l = mk_link("lo");
        l.flags |= IFF_LOOPBACK;
        l.arphrd = 772;
        assert_eq!(qualifies(&l, &a), Err(Skip::Loopback));
        let mut l = mk_link("eth1");
        l.flags |= IFF_NOARP;
        assert_eq!(qualifies(&l, &a), Err(Skip::NoArp));
        let mut l = mk_link("eth1");
        l.flags &= !IFF_UP;
        assert_eq!(qualifies(&l, &a), Err(Skip::Down));
        let mut l = mk_link("eth1");
        l.flags &= !IFF_BROADCAST;
        assert_eq!(qualifies(&l, &a), Err(Skip::NotBroadcast));
        let mut l = mk_link("eth1");
        l.master = Some(5);
        assert_eq!(qualifies(&l, &a), Err(Skip::HasMaster));
        let mut l = mk_link("wlan0");
        l.arphrd = 801;
        assert_eq!(qualifies(&l, &a), Err(Skip::NotEthernet));
        let mut l = mk_link("eth2");
        l.mac = None;
        assert_eq!(qualifies(&l, &a), Err(Skip::NotEthernet));
    }

    #[test]
    fn default_skips_container_networking_devices() {
        for n in [
            "veth1a2b",
            "cni0",
            "flannel.1",
            "cali12345",
            "docker0",
            "kube-ipvs0",
            "lxc8d3",
            "cilium_host",
            "vxlan.calico",
            "tunl0",
            "weave",
        ] {
            assert!(
                matches!(
                    qualifies(&mk_link(n), &Selection::Auto),
                    Err(Skip::Virtual(_))
                ),
                "{n} should be skipped"
            );
        }
    }

    #[test]
    fn explicit_list_wins_over_default_rules() {
        let sel = Selection::from_list(&["veth-node".into()]);
        let mut l = mk_link("veth-node");
        l.master = Some(3);
        assert_eq!(qualifies(&l, &sel), Ok(()));
        assert_eq!(qualifies(&mk_link("eth0"), &sel), Err(Skip::NotListed));
        assert_eq!(Selection::from_list(&[]), Selection::Auto);
    }

    #[test]
    fn link_state_follows_flags_carrier_and_operstate() {
        assert!(mk_link("eth0").link_ok());
        let mut l = mk_link("eth0");
        l.carrier = Some(false);
        assert!(!l.link_ok());
        let mut l = mk_link("eth0");
        l.operstate = OperState::LowerLayerDown;
        assert!(!l.link_ok());
        let mut l = mk_link("eth0");
        l.operstate = OperState::Unknown; // dummy devices report unknown
        assert!(l.link_ok());
        let mut l = mk_link("eth0");
        l.flags &= !IFF_UP;
        assert!(!l.link_ok());
        let mut l = mk_link("eth0");
        l.flags &= !IFF_RUNNING; // carrier reported, queue not active yet
        assert!(!l.link_ok());
    }

    #[test]
    fn select_reports_missing_named_interfaces_and_eligibility() {
        let mut down = mk_link("eth1");
        down.ifindex = 3;
        down.carrier = Some(false);
        let links = [mk_link("eth0"), down];
        let (sel, missing) = select(
            &links,
            &Selection::from_list(&["eth1".into(), "eth9".into()]),
        );
        assert_eq!(sel.len(), 1);
        assert_eq!(sel[0].name, "eth1");
        assert!(!sel[0].link_ok);
        assert_eq!(missing, vec!["eth9".to_string()]);
        assert!(!eligible(&sel));
        let (sel, _) = select(&links, &Selection::Auto);
        assert!(eligible(&sel));
        assert!(!eligible(&[]));
    }

    #[test]
    fn with_rules_every_group_of_interfaces_needs_one_working_link() {
        let status = |name: &str, ok: bool, in_default: bool| LinkStatus {
            name: name.into(),
            ifindex: 1,
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            link_ok: ok,
            in_default,
        };
        let default = InterfaceRule {
            default_choice: true,
            matchers: vec![],
        };
        let vlan = InterfaceRule {
            default_choice: false,
            matchers: vec![InterfaceMatcher::Name("eth0.20".into())],
        };
        let nothing = InterfaceRule::default();
        let up = [status("eth0", true, true), status("eth0.20", true, false)];
        assert!(eligible_for(&up, [&default, &vlan, &vlan, &nothing]));
        let vlan_down = [status("eth0", true, true), status("eth0.20", false, false)];
        assert!(!eligible_for(&vlan_down, [&default, &vlan]));
        assert!(
            eligible_for(&vlan_down, [&default, &nothing]),
            "a rule taking nothing needs nothing"
        );
        assert!(eligible_for(&vlan_down, []), "no rules: any link");
        let eth0_down = [status("eth0", false, true), status("eth0.20", true, false)];
        assert!(!eligible_for(&eth0_down, [&default, &vlan]));
        assert!(eligible_for(&eth0_down, [&vlan]));
    }

    #[test]
    fn policy_interfaces_add_to_the_default_choice() {
        let mut vlan = mk_link("eth0.20");
        vlan.ifindex = 4;
        let mut other = mk_link("eth1.30");
        other.ifindex = 5;
        let mut lo = mk_link("lo");
        lo.ifindex = 1;
        lo.arphrd = 772; // ARPHRD_LOOPBACK
        let links = [mk_link("eth0"), vlan, other, lo];
        let extra = [
            InterfaceMatcher::Glob("eth0.*".into()),
            InterfaceMatcher::Name("lo".into()),
        ];
        let (sel, missing) = select_with(&links, &Selection::from_list(&["eth0".into()]), &extra);
        let got: Vec<(&str, bool)> = sel
            .iter()
            .map(|l| (l.name.as_str(), l.in_default))
            .collect();
        assert_eq!(
            got,
            [("eth0", true), ("eth0.20", false)],
            "lo is not Ethernet"
        );
        assert!(missing.is_empty());
        let (sel, _) = select(&links, &Selection::from_list(&["eth0".into()]));
        assert_eq!(sel.len(), 1);
    }
}
