//! Command-line flags, each also settable through the environment variable named
//! beside it (which is how the DaemonSet configures the speaker), and their validation
//! into [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

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

    /// Path of a kubeconfig; without it the in-cluster config (or $KUBECONFIG,
    /// ~/.kube/config) is used.
    #[arg(long, env = "FERROLB_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

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

    /// Peers take this node's IPs over when its Lease has not changed for this long.
    /// Bounds the failover time after a crash.
    #[arg(long, env = "FERROLB_LEASE_DURATION", default_value = "1500ms", value_parser = parse_duration)]
    pub lease_duration: Duration,

    /// How often the speaker renews its Lease: one API write per period per node.
    #[arg(long, env = "FERROLB_RENEW_PERIOD", default_value = "500ms", value_parser = parse_duration)]
    pub renew_period: Duration,

    /// The speaker stops answering when its last renewal is older than
    /// lease-duration minus this margin, so it is silent before peers take over.
    #[arg(long, env = "FERROLB_LEASE_SAFETY_MARGIN", default_value = "500ms", value_parser = parse_duration)]
    pub lease_safety_margin: Duration,

    /// Delay before retrying a failed renewal.
    #[arg(long, env = "FERROLB_RENEW_RETRY", default_value = "100ms", value_parser = parse_duration)]
    pub renew_retry: Duration,

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

    /// Log format.
    #[arg(long, env = "FERROLB_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax, e.g. `info` or `ferrolb_speaker=debug`).
    #[arg(long, env = "FERROLB_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Worker threads of the async runtime. The speaker's work fits in two; the
    /// runtime's own default (one per CPU) would cost a thread, its stack and a malloc
    /// arena per core on a large node.
    #[arg(long, env = "FERROLB_WORKER_THREADS", default_value_t = 2,
        value_parser = clap::value_parser!(u16).range(1..=64))]
    pub worker_threads: u16,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The Lease timers, validated against each other.
///
/// Defaults (1.5 s / 0.5 s / 0.5 s / 0.1 s) aim at a crash failover under 2 s end to
/// end: peers take over at most `duration` after the last renewal they saw, plus a
/// watch delivery (milliseconds) and the gratuitous ARP. A renewal every 0.5 s costs two
/// API writes per node per second whatever the number of Services. The speaker stops
/// answering `duration - margin` = 1 s after its last successful renewal was *sent*,
/// i.e. it survives one lost renewal (plus retries) without flapping, and is silent at
/// least 0.5 s before any peer starts answering, which absorbs scheduling and watch
/// jitter so that two nodes never answer at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTimers {
    /// Peers consider a Lease dead this long after they saw it change.
    pub duration: Duration,
    /// Renewal period.
    pub renew_period: Duration,
    /// How much earlier than its peers the speaker judges its own Lease lost.
    pub safety_margin: Duration,
    /// Delay before retrying a failed renewal.
    pub retry: Duration,
}

impl Default for LeaseTimers {
    fn default() -> Self {
        Self {
            duration: Duration::from_millis(1500),
            renew_period: Duration::from_millis(500),
            safety_margin: Duration::from_millis(500),
            retry: Duration::from_millis(100),
        }
    }
}

impl LeaseTimers {
    /// Checks that the timers can work together.
    pub fn validate(&self) -> Result<(), SpeakerError> {
        let bad = |msg: String| Err(SpeakerError::InvalidFlag(msg));
        if self.safety_margin >= self.duration {
            return bad(format!(
                "--lease-safety-margin ({:?}) must be shorter than --lease-duration ({:?})",
                self.safety_margin, self.duration
            ));
        }
        let hold = self.duration - self.safety_margin;
        if self.renew_period >= hold {
            return bad(format!(
                "--renew-period ({:?}) must be shorter than --lease-duration minus \
                 --lease-safety-margin ({hold:?}), or the speaker would stop answering \
                 between two renewals",
                self.renew_period
            ));
        }
        if self.retry > self.renew_period {
            return bad(format!(
                "--renew-retry ({:?}) must not be longer than --renew-period ({:?})",
                self.retry, self.renew_period
            ));
        }
        Ok(())
    }
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
    /// Lease timers.
    pub timers: LeaseTimers,
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
            timers: LeaseTimers::default(),
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
        let timers = LeaseTimers {
            duration: self.lease_duration,
            renew_period: self.renew_period,
            safety_margin: self.lease_safety_margin,
            retry: self.renew_retry,
        };
        timers.validate()?;
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

/// Parses a positive duration such as `500ms`, `1.5s`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    ferrolb_core::duration::parse_positive(s)
}

/// Like [`parse_duration`] but accepts zero (`0`, `0s`) to mean "off".
pub fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    ferrolb_core::duration::parse_or_zero(s)
}

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
        let cli = parse(&[
            "--node-name",
            "n",
            "--lease-duration",
            "1s",
            "--lease-safety-margin",
            "1s",
        ])
        .unwrap();
        assert!(
            cli.settings()
                .unwrap_err()
                .to_string()
                .contains("--lease-safety-margin")
        );
        let cli = parse(&["--node-name", "n", "--renew-period", "1s"]).unwrap();
        assert!(
            cli.settings()
                .unwrap_err()
                .to_string()
                .contains("--renew-period")
        );
        let cli = parse(&["--node-name", "n", "--renew-retry", "900ms"]).unwrap();
        assert!(
            cli.settings()
                .unwrap_err()
                .to_string()
                .contains("--renew-retry")
        );
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
