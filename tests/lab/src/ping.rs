//! ICMP echo between the lab's namespaces (iputils `ping`), to see the node-network
//! faults: who still hears whom, and how many frames get through.

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use crate::cmd;
use crate::error::LabError;

/// What one `ping` run saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingStats {
    /// Echo requests sent.
    pub transmitted: u32,
    /// Echo replies received.
    pub received: u32,
}

/// Parses ping's summary line: `200 packets transmitted, 51 received, ...`.
pub fn parse_summary(out: &str) -> Option<PingStats> {
    out.lines().find_map(|line| {
        let (tx, rest) = line.split_once(" packets transmitted, ")?;
        let rx = rest.split_once(" received")?.0;
        Some(PingStats {
            transmitted: tx.trim().parse().ok()?,
            received: rx.trim().parse().ok()?,
        })
    })
}

/// Sends `count` echo requests `interval` apart from inside `netns` to `to`, each
/// waited for at most 1 s, the whole run bounded in time (ping's own `-w` would not do:
/// with it, `-c` counts replies, so ping sends on until the deadline under loss).
pub async fn ping(
    netns: &str,
    to: IpAddr,
    count: u32,
    interval: Duration,
) -> Result<PingStats, LabError> {
    cmd::require_program("ping")?;
    let bound = interval * count + Duration::from_secs(5);
    let args = [
        "netns".to_string(),
        "exec".into(),
        netns.into(),
        "ping".into(),
        "-q".into(),
        "-n".into(),
        "-c".into(),
        count.to_string(),
        "-i".into(),
        format!("{:.3}", interval.as_secs_f64()),
        "-W".into(),
        "1".into(),
        to.to_string(),
    ];
    let what = format!("ip {}", args.join(" "));
    let run = tokio::process::Command::new("ip")
        .args(&args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(bound, run)
        .await
        .map_err(|_| LabError::Timeout {
            what: format!("`{what}` to finish"),
            after: bound,
        })?
        .map_err(LabError::io(format!("running `{what}`")))?;
    // ping exits 1 when replies are missing: that is a result here, not an error.
    let stdout = String::from_utf8_lossy(&out.stdout);
    match (out.status.code(), parse_summary(&stdout)) {
        (Some(0 | 1), Some(stats)) => Ok(stats),
        _ => Err(LabError::Command {
            command: what,
            status: out.status.to_string(),
            stderr: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr).trim(),
                stdout.trim()
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_line_is_parsed_with_or_without_errors() {
        let out = "PING 192.0.2.12 (192.0.2.12) 56(84) bytes of data.\n\n--- 192.0.2.12 ping statistics ---\n200 packets transmitted, 51 received, 74.5% packet loss, time 2010ms\nrtt min/avg/max/mdev = 0.030/0.061/0.120/0.020 ms\n";
        assert_eq!(
            parse_summary(out),
            Some(PingStats {
                transmitted: 200,
                received: 51
            })
        );
        assert_eq!(
            parse_summary(
                "5 packets transmitted, 0 received, +5 errors, 100% packet loss, time 4005ms\n"
            ),
            Some(PingStats {
                transmitted: 5,
                received: 0
            })
        );
        assert_eq!(
            parse_summary("ping: connect: Network is unreachable\n"),
            None
        );
    }
}
