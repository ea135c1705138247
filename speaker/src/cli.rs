//! Command-line flags, each also settable through the environment variable named
//! beside it (which is how the DaemonSet configures the speaker), and their validation
//! into [`Settings`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
pub use ferrolb_process::flags::{CommonFlags, LogFormat};

use crate::error::SpeakerError;

/// ferrolb speaker: elects, per Service IP, one node to answer ARP/NDP for it and
/// answers for the IPs this node leads.
#[derive(Debug, Clone, Parser)]
#[command(name = "ferrolb-speaker", version, about, long_about = None)]
pub struct Cli {
    /// Name of the Node this speaker runs on (from the downward API); it is the
    /// speaker's identity in its Lease.
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,

    /// Namespace of the speakers' Leases: one of their own, so that the speakers'
    /// RBAC grants nothing on the controller's leader Lease.
    #[arg(
        long,
        env = "FERROLB_NAMESPACE",
        default_value = "ferrolb-speaker-leases"
    )]
    pub namespace: String,

    /// Namespace of the pool ConfigMap.
    #[arg(
        long,
        env = "FERROLB_CONFIG_NAMESPACE",
        default_value = "ferrolb-system"
    )]
    pub config_namespace: String,

    /// Name of the pool ConfigMap (its l2 section: nodeSelector, interfaces).
    #[arg(long, env = "FERROLB_CONFIG_NAME", default_value = "ferrolb-config")]
    pub config_name: String,

    /// spec.loadBalancerClass handled by ferrolb; Services without a class are handled too.
    #[arg(long, env = "FERROLB_LB_CLASS", default_value = "ferrolb.io/lb")]
    pub lb_class: String,

    /// How long a peer's report in its Lease (the peers it cannot hear) counts after
    /// the Lease last changed; also the Lease's informational duration.
    #[arg(long, env = "FERROLB_LEASE_DURATION", default_value = "30s", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// How often the speaker renews its Lease (for `kubectl get leases` and the reports
    /// of unreachable peers): one API write per period per node. Liveness does not depend
    /// on it (see --heartbeat-interval).
    #[arg(long, env = "FERROLB_RENEW_PERIOD", default_value = "10s", value_parser = parse_duration)]
    pub renew_period: Duration,

    /// No longer used (liveness moved to the node network); accepted so that existing
    /// manifests keep working.
    #[arg(long, env = "FERROLB_LEASE_SAFETY_MARGIN", hide = true, value_parser = parse_duration)]
    pub lease_safety_margin: Option<Duration>,

    /// No longer used; accepted so that existing manifests keep working.
    #[arg(long, env = "FERROLB_RENEW_RETRY", hide = true, value_parser = parse_duration)]
    pub renew_retry: Option<Duration>,

    /// UDP port of the speakers' heartbeats on the node network (MetalLB's memberlist
    /// uses 7946, so both can run side by side during a migration).
    #[arg(long, env = "FERROLB_MEMBERSHIP_PORT", default_value_t = 7474)]
    pub membership_port: u16,

    /// Address the heartbeat socket binds (`::` also receives IPv4). Peers are reached
    /// at their Node's first InternalIP.
    #[arg(long, env = "FERROLB_MEMBERSHIP_BIND", default_value = "::")]
    pub membership_bind: IpAddr,

    /// Secret (in the config namespace) with the heartbeat key: data `primary` signs
    /// and is accepted, `secondary` is accepted too (key rotation).
    #[arg(
        long,
        env = "FERROLB_MEMBERSHIP_SECRET",
        default_value = "ferrolb-membership"
    )]
    pub membership_secret: String,

    /// Name of the cluster in every heartbeat; heartbeats of another cluster are dropped.
    #[arg(long, env = "FERROLB_CLUSTER_NAME", default_value = "default")]
    pub cluster_name: String,

    /// Interval between heartbeats to every peer (grows with the cluster so that a node
    /// sends and receives at most 1,000 packets/s; see docs/membership.md).
    #[arg(long, env = "FERROLB_HEARTBEAT_INTERVAL", default_value = "100ms", value_parser = parse_duration)]
    pub heartbeat_interval: Duration,

    /// A peer not heard of (directly or through another peer) for this long is dead and
    /// its addresses move: the bound on failover after a crash.
    #[arg(long, env = "FERROLB_PEER_TIMEOUT", default_value = "400ms", value_parser = parse_duration)]
    pub peer_timeout: Duration,

    /// The API server view of a node whose last successful API request is older than
    /// this is stale; a node alone in that state hands its addresses over.
    #[arg(long, env = "FERROLB_API_STALE_AFTER", default_value = "5s", value_parser = parse_duration)]
    pub api_stale_after: Duration,

    /// How often the speaker checks that it reaches the API server (one GET /version).
    #[arg(long, env = "FERROLB_API_PROBE_PERIOD", default_value = "500ms", value_parser = parse_duration)]
    pub api_probe_period: Duration,

    /// A node that hears fewer than half of its peers keeps its addresses but takes no
    /// new ones, until its API view has been fresh this long with no peer reporting it
    /// unreachable (then its peers are dead, not cut off from it).
    #[arg(long, env = "FERROLB_MINORITY_CONFIRM", default_value = "3s", value_parser = parse_duration)]
    pub minority_confirm: Duration,

    /// How long a node waits before answering for an IP it takes from a peer that is
    /// still running (a node joining or coming back), so that the peer stops first.
    /// Failovers from a dead, departed or link-down peer are not delayed. `0s`: never wait.
    #[arg(long, env = "FERROLB_HANDOVER_DELAY", default_value = "200ms", value_parser = parse_duration_or_zero)]
    pub handover_delay: Duration,

    /// Gratuitous ARP / unsolicited NA packets sent when taking an IP over.
    #[arg(long, env = "FERROLB_GRATUITOUS_COUNT", default_value_t = 3)]
    pub gratuitous_count: u32,

    /// Interval between those packets.
    #[arg(long, env = "FERROLB_GRATUITOUS_INTERVAL", default_value = "200ms", value_parser = parse_duration)]
    pub gratuitous_interval: Duration,

    /// Period of re-announcing every IP this node leads, for switches whose tables age
    /// out; `0s` turns it off.
    #[arg(long, env = "FERROLB_REANNOUNCE_PERIOD", default_value = "0s", value_parser = parse_duration_or_zero)]
    pub reannounce_period: Duration,

    /// Interfaces to announce on (comma separated), overriding the config's
    /// l2.interfaces and the automatic choice.
    #[arg(long, env = "FERROLB_INTERFACES", value_delimiter = ',')]
    pub interfaces: Vec<String>,

    /// Let nodes labelled node.kubernetes.io/exclude-from-external-load-balancers
    /// announce anyway (single-node and control-plane-only clusters).
    #[arg(long, env = "FERROLB_IGNORE_EXCLUDE_LB_LABEL")]
    pub ignore_exclude_lb_label: bool,

    /// Elect and report (Leases, Events, metrics) but answer no ARP/NDP: for trying the
    /// election without NET_RAW. Never use it in production.
    #[arg(long, env = "FERROLB_NO_DATAPLANE")]
    pub no_dataplane: bool,

    /// Period of the full re-election that runs even when nothing changed.
    #[arg(long, env = "FERROLB_RESYNC_PERIOD", default_value = "10s", value_parser = parse_duration)]
    pub resync_period: Duration,

    /// Address of the HTTP endpoint for /metrics, /livez and /readyz.
    #[arg(long, env = "FERROLB_METRICS_ADDR", default_value = "0.0.0.0:7473")]
    pub metrics_addr: SocketAddr,

    /// The flags every ferrolb binary has (kubeconfig, logging, runtime threads).
    #[command(flatten)]
    pub common: CommonFlags,
}

/// The speaker's timers, validated against each other (defaults: docs/membership.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// How long a peer's Lease report counts after the Lease last changed.
    pub lease_duration: Duration,
    /// Lease renewal period.
    pub renew_period: Duration,
    /// Heartbeat interval (at most; it grows with the cluster).
    pub heartbeat_interval: Duration,
    /// Peer timeout (at least; it grows with the interval).
    pub peer_timeout: Duration,
    /// API view staleness threshold.
    pub api_stale_after: Duration,
    /// API probe period.
    pub api_probe_period: Duration,
    /// How long a node in a minority waits before concluding that its peers are dead.
    pub minority_confirm: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(30),
            renew_period: Duration::from_secs(10),
            heartbeat_interval: Duration::from_millis(100),
            peer_timeout: Duration::from_millis(400),
            api_stale_after: Duration::from_secs(5),
            api_probe_period: Duration::from_millis(500),
            minority_confirm: Duration::from_secs(3),
        }
    }
}

impl Timers {
    /// Checks that the timers can work together.
    pub fn validate(&self) -> Result<(), SpeakerError> {
        let bad = |msg: String| Err(SpeakerError::InvalidFlag(msg));
        if self.renew_period.saturating_mul(2) > self.lease_duration {
            return bad(format!(
                "--renew-period ({:?}) must be at most half of --lease-duration ({:?}), or a \
                 peer's report would lapse between two renewals",
                self.renew_period, self.lease_duration
            ));
        }
        if self.heartbeat_interval.saturating_mul(2) > self.peer_timeout {
            return bad(format!(
                "--heartbeat-interval ({:?}) must be at most half of --peer-timeout ({:?}), or \
                 one lost heartbeat would look like a dead peer",
                self.heartbeat_interval, self.peer_timeout
            ));
        }
        if self.api_probe_period.saturating_mul(2) > self.api_stale_after {
            return bad(format!(
                "--api-probe-period ({:?}) must be at most half of --api-stale-after ({:?}), \
                 or one failed probe would make the API view stale",
                self.api_probe_period, self.api_stale_after
            ));
        }
        Ok(())
    }
}

/// Where and how the speakers' heartbeats travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipSettings {
    /// Address the socket binds.
    pub bind: IpAddr,
    /// UDP port, the same on every node.
    pub port: u16,
    /// Name of the key Secret (in the config namespace).
    pub secret: String,
    /// Cluster name carried in every heartbeat.
    pub cluster: String,
}

/// Gratuitous-announcement settings handed to the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceTimers {
    /// Packets per takeover.
    pub gratuitous_count: u32,
    /// Interval between them.
    pub gratuitous_interval: Duration,
    /// Periodic re-announcement, `None` when off.
    pub reannounce_period: Option<Duration>,
}

/// Everything the speaker needs to run, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name.
    pub node_name: String,
    /// Namespace of the Leases.
    pub namespace: String,
    /// Namespace of the pool ConfigMap.
    pub config_namespace: String,
    /// Name of the pool ConfigMap.
    pub config_name: String,
    /// Handled loadBalancerClass.
    pub lb_class: String,
    /// Timers.
    pub timers: Timers,
    /// The membership's socket, key and cluster name.
    pub membership: MembershipSettings,
    /// Gratuitous-announcement settings.
    pub announce: AnnounceTimers,
    /// Interfaces given on the command line (empty: config or automatic).
    pub interfaces: Vec<String>,
    /// Ignore the exclude-from-external-load-balancers label.
    pub ignore_exclude_lb_label: bool,
    /// Period of the unconditional re-election.
    pub resync_period: Duration,
    /// Wait before taking an IP from a running peer.
    pub handover_delay: Duration,
}

impl Settings {
    /// Settings for `node` with every default (used by tests and embedders).
    pub fn new(node: impl Into<String>) -> Self {
        Self {
            node_name: node.into(),
            namespace: "ferrolb-system".into(),
            config_namespace: "ferrolb-system".into(),
            config_name: "ferrolb-config".into(),
            lb_class: "ferrolb.io/lb".into(),
            timers: Timers::default(),
            membership: MembershipSettings {
                bind: IpAddr::from([0u16; 8]),
                port: 7474,
                secret: "ferrolb-membership".into(),
                cluster: "default".into(),
            },
            announce: AnnounceTimers {
                gratuitous_count: 3,
                gratuitous_interval: Duration::from_millis(200),
                reannounce_period: None,
            },
            interfaces: Vec::new(),
            ignore_exclude_lb_label: false,
            resync_period: Duration::from_secs(10),
            handover_delay: Duration::from_millis(200),
        }
    }
}

impl Cli {
    /// Validates the flags into [`Settings`].
    pub fn settings(&self) -> Result<Settings, SpeakerError> {
        if self.node_name.trim().is_empty() {
            return Err(SpeakerError::InvalidFlag(
                "--node-name / NODE_NAME is empty".into(),
            ));
        }
        let timers = Timers {
            lease_duration: self.lease_duration,
            renew_period: self.renew_period,
            heartbeat_interval: self.heartbeat_interval,
            peer_timeout: self.peer_timeout,
            api_stale_after: self.api_stale_after,
            api_probe_period: self.api_probe_period,
            minority_confirm: self.minority_confirm,
        };
        timers.validate()?;
        if self.membership_port == 0 {
            return Err(SpeakerError::InvalidFlag(
                "--membership-port must not be 0: every node uses the same port".into(),
            ));
        }
        let cluster = self.cluster_name.trim();
        if cluster.is_empty() || cluster.len() > 63 {
            return Err(SpeakerError::InvalidFlag(format!(
                "--cluster-name {:?} must be 1 to 63 bytes",
                self.cluster_name
            )));
        }
        let interfaces: Vec<String> = self
            .interfaces
            .iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        Ok(Settings {
            node_name: self.node_name.trim().to_owned(),
            namespace: self.namespace.clone(),
            config_namespace: self.config_namespace.clone(),
            config_name: self.config_name.clone(),
            lb_class: self.lb_class.clone(),
            timers,
            membership: MembershipSettings {
                bind: self.membership_bind,
                port: self.membership_port,
                secret: self.membership_secret.clone(),
                cluster: cluster.to_owned(),
            },
            announce: AnnounceTimers {
                gratuitous_count: self.gratuitous_count,
                gratuitous_interval: self.gratuitous_interval,
                reannounce_period: (!self.reannounce_period.is_zero())
                    .then_some(self.reannounce_period),
            },
            interfaces,
            ignore_exclude_lb_label: self.ignore_exclude_lb_label,
            resync_period: self.resync_period,
            handover_delay: self.handover_delay,
        })
    }
}

pub use ferrolb_process::flags::{
    duration as parse_duration, duration_or_zero as parse_duration_or_zero,
};

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let mut v = vec!["ferrolb-speaker"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v)
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("5").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("5d").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("0s").unwrap_err().contains("positive"));
        assert!(parse_duration("x1s").unwrap_err().contains("not a number"));
        assert_eq!(parse_duration_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration_or_zero("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn defaults_are_valid_and_match_settings_new() {
        let cli = parse(&["--node-name", "n1"]).unwrap();
        let s = cli.settings().unwrap();
        let d = Settings::new("n1");
        assert_eq!(s.timers, d.timers);
        assert_eq!(s.membership, d.membership);
        assert_eq!(s.announce, d.announce);
        // The one difference: the binary's Leases default to their own namespace
        // (deploy/ creates it); Settings::new keeps the tests' ferrolb-system until
        // the speaker's test harness creates ferrolb-speaker-leases.
        assert_eq!(s.namespace, "ferrolb-speaker-leases");
        assert_eq!(d.namespace, "ferrolb-system");
        assert_eq!(s.lb_class, d.lb_class);
        assert_eq!(s.resync_period, d.resync_period);
        assert_eq!(s.handover_delay, d.handover_delay);
        assert_eq!(s.announce.reannounce_period, None);
    }

    #[test]
    fn node_name_is_required() {
        // SAFETY of the env: NODE_NAME is not set in the test environment; clap must refuse.
        if std::env::var_os("NODE_NAME").is_none() {
            assert!(parse(&[]).is_err());
        }
        let cli = parse(&["--node-name", "  "]).unwrap();
        assert!(
            cli.settings()
                .unwrap_err()
                .to_string()
                .contains("NODE_NAME")
        );
    }

    #[test]
    fn inconsistent_timers_are_refused_with_the_flag_named() {
        let refused = |args: &[&str], flag: &str| {
            let mut all = vec!["--node-name", "n"];
            all.extend_from_slice(args);
            let err = parse(&all).unwrap().settings().unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        };
        refused(&["--renew-period", "20s"], "--renew-period");
        refused(&["--heartbeat-interval", "300ms"], "--heartbeat-interval");
        refused(&["--api-probe-period", "3s"], "--api-probe-period");
        refused(&["--membership-port", "0"], "--membership-port");
        refused(&["--cluster-name", " "], "--cluster-name");
        // The retired Lease flags are still accepted.
        let cli = parse(&[
            "--node-name",
            "n",
            "--lease-safety-margin",
            "1s",
            "--renew-retry",
            "900ms",
        ])
        .unwrap();
        assert!(cli.settings().is_ok());
    }

    #[test]
    fn interfaces_and_reannounce_parse() {
        let cli = parse(&[
            "--node-name",
            "n",
            "--interfaces",
            "eth0, eth1,",
            "--reannounce-period",
            "30s",
        ])
        .unwrap();
        let s = cli.settings().unwrap();
        assert_eq!(s.interfaces, vec!["eth0", "eth1"]);
        assert_eq!(s.announce.reannounce_period, Some(Duration::from_secs(30)));
    }

    #[test]
    fn every_flag_has_an_env_var() {
        let cmd = Cli::command();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            assert!(
                arg.get_env().is_some(),
                "flag --{id} has no environment variable"
            );
        }
    }
}
