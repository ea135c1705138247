//! Command-line flags. Every flag can also be set through the environment
//! variable named beside it, which is how the Deployment configures it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// ferrolb controller: allocates external IPs to Services of type LoadBalancer
/// from the pools in a ConfigMap and writes them to the Services' status.
#[derive(Debug, Parser)]
#[command(name = "ferrolb-controller", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands; without one the controller runs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller (the default).
    Run,
    /// Validate a pool configuration offline: a ConfigMap manifest in any of the
    /// three formats, or a bare config.yaml. Exit status 1 and every problem on error.
    CheckConfig {
        /// The file to check (`-` for standard input).
        file: PathBuf,
    },
    /// Convert the configuration of MetalLB (IPAddressPool, L2Advertisement),
    /// Cilium (CiliumLoadBalancerIPPool, CiliumL2AnnouncementPolicy) or
    /// kube-vip-cloud-provider (its ConfigMap), as `kubectl get ... -o yaml`
    /// prints it, to a ferrolb ConfigMap on standard output. Everything that
    /// cannot be carried over is listed on standard error. Exit status 0 when
    /// exact, 2 when something was lost, 1 on bad input.
    Convert {
        /// The files to read (`-` for standard input).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Flags of the running controller.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The flags every ferrolb binary has (kubeconfig, logging, runtime threads).
    #[command(flatten)]
    pub common: CommonFlags,

    /// Namespace of the pool ConfigMap.
    #[arg(
        long,
        env = "FERROLB_CONFIG_NAMESPACE",
        default_value = "ferrolb-system",
        global = true
    )]
    pub config_namespace: String,

    /// Name of the pool ConfigMap.
    #[arg(
        long,
        env = "FERROLB_CONFIG_NAME",
        default_value = "ferrolb-config",
        global = true
    )]
    pub config_name: String,

    /// spec.loadBalancerClass handled by ferrolb; Services without a class are handled too.
    #[arg(
        long,
        env = "FERROLB_LB_CLASS",
        default_value = "ferrolb.io/lb",
        global = true
    )]
    pub lb_class: String,

    /// Name of the Secret (in the config namespace) holding the speakers' membership key; the leader creates it when missing and never overwrites it.
    #[arg(
        long,
        env = "FERROLB_MEMBERSHIP_SECRET",
        default_value = "ferrolb-membership",
        global = true
    )]
    pub membership_secret: String,

    /// Namespace of the leader-election Lease (defaults to the config namespace).
    #[arg(long, env = "FERROLB_LEADER_NAMESPACE", global = true)]
    pub leader_namespace: Option<String>,

    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "FERROLB_LEADER_LEASE",
        default_value = "ferrolb-controller",
        global = true
    )]
    pub leader_lease: String,

    /// Identity in the leader Lease (defaults to $POD_NAME, else the host name and pid).
    #[arg(long, env = "POD_NAME", global = true)]
    pub identity: Option<String>,

    /// How long a leader Lease stays valid without renewal: the standby takes over at most this long after the leader dies.
    #[arg(long, env = "FERROLB_LEASE_DURATION", default_value = "15s", value_parser = humantime_duration, global = true)]
    pub lease_duration: Duration,

    /// How often the leader renews its Lease (well below the lease duration).
    #[arg(long, env = "FERROLB_RENEW_PERIOD", default_value = "2s", value_parser = humantime_duration, global = true)]
    pub renew_period: Duration,

    /// Address of the HTTP endpoint for /metrics, /livez and /readyz.
    #[arg(
        long,
        env = "FERROLB_METRICS_ADDR",
        default_value = "0.0.0.0:7472",
        global = true
    )]
    pub metrics_addr: SocketAddr,

    /// Period of the full resync that catches missed deletes.
    #[arg(long, env = "FERROLB_RESYNC_PERIOD", default_value = "5m", value_parser = humantime_duration, global = true)]
    pub resync_period: Duration,
}

pub use ferrolb_process::flags::duration as humantime_duration;
pub use ferrolb_process::flags::{CommonFlags, LogFormat};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(humantime_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(humantime_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(humantime_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(
            humantime_duration("5")
                .unwrap_err()
                .contains("needs a unit")
        );
        assert!(
            humantime_duration("5d")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(humantime_duration("0s").unwrap_err().contains("positive"));
    }

    #[test]
    fn every_flag_has_an_env_var() {
        use clap::CommandFactory;
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
