//! The flags both binaries share, flattened into each one's command line
//! (`#[command(flatten)]`), with one environment variable scheme: `FERROLB_<FLAG>`.
//! Durations are written as operators write them: `500ms`, `1.5s`, `2m`, `1h`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags every ferrolb binary has.
#[derive(Debug, Clone, Args)]
pub struct CommonFlags {
    /// Path of a kubeconfig; without it `$KUBECONFIG`, `~/.kube/config` or the
    /// in-cluster service account is used (kube's rules).
    #[arg(long, env = "FERROLB_KUBECONFIG", global = true)]
    pub kubeconfig: Option<PathBuf>,

    /// Log format.
    #[arg(
        long,
        env = "FERROLB_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax, e.g. `info` or `ferrolb_speaker=debug`).
    #[arg(long, env = "FERROLB_LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,

    /// Worker threads of the async runtime. Two keep up with each binary's work; the
    /// runtime's own default (one per CPU) would cost a thread, its stack and a malloc
    /// arena per core on a large node.
    #[arg(long, env = "FERROLB_WORKER_THREADS", default_value_t = 2, global = true,
        value_parser = clap::value_parser!(u16).range(1..=64))]
    pub worker_threads: u16,
}

/// Parses a positive duration such as `500ms`, `1.5s`, `2m`, `1h`.
pub fn duration(s: &str) -> Result<Duration, String> {
    ferrolb_core::duration::parse_positive(s)
}

/// Like [`duration`] but accepts zero (`0`, `0s`) to mean "off".
pub fn duration_or_zero(s: &str) -> Result<Duration, String> {
    ferrolb_core::duration::parse_or_zero(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonFlags,
    }

    #[test]
    fn defaults_and_names() {
        let c = Cli::try_parse_from(["x"]).unwrap().common;
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.log_level, "info");
        assert_eq!(c.worker_threads, 2);
        assert!(c.kubeconfig.is_none());
        let c = Cli::try_parse_from(["x", "--log-format", "json", "--worker-threads", "4"])
            .unwrap()
            .common;
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.worker_threads, 4);
        assert!(Cli::try_parse_from(["x", "--worker-threads", "0"]).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(duration("0s").is_err());
        assert_eq!(duration_or_zero("0"), Ok(Duration::ZERO));
    }
}
