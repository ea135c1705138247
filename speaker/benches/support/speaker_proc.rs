//! A speaker binary the benchmarks run: the process (killed when dropped), its
//! `/metrics`, and waiting until the speakers announce every Service.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrolb_testkit::KillOnDrop;

/// A benchmark knob from the environment, or its default.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A running speaker, killed and reaped when dropped (also when the benchmark panics).
pub struct SpeakerProc {
    pub child: KillOnDrop,
    /// Where its `/metrics` listens.
    pub metrics: SocketAddr,
}

/// One unlabelled metric of a speaker's `/metrics`, read over a plain HTTP/1.1
/// request (callable from any thread, e.g. one inside a network namespace).
pub fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits (at most 120 s) until `speakers` together announce `n_svc` IPs; returns how
/// long it took from the call.
pub async fn wait_announced(speakers: &[SpeakerProc], n_svc: u32) -> Duration {
    let start = Instant::now();
    loop {
        let total: f64 = speakers
            .iter()
            .map(|p| metric(p.metrics, "ferrolb_speaker_announced_ips").unwrap_or(0.0))
            .sum();
        if total as u32 == n_svc {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the speakers did not converge ({total} of {n_svc} announced)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
