//! Failover measured from the client namespace.
//!
//! One round: find the node that answers for a Service IP, make sure the client's own
//! traffic reaches it, then disrupt it — SIGKILL its speaker (a crash), SIGTERM it (a
//! graceful stop), or cut the node off from the API server while its link stays up (a
//! partition: the case where two nodes could answer at once) — and measure:
//! - **recovery**: from the signal until an HTTP request from the client (a new TCP
//!   connection every 10 ms, through the client kernel's neighbour cache) is answered by
//!   another node. The old node keeps serving (its kube-proxy is alive, only its
//!   speaker died), so this is the time until the client's traffic has moved;
//! - **takeover**: from the signal until another node's first ARP/NDP claim is seen;
//! - **overlap**: the longest window in which two different MACs claimed the IP, from
//!   an observer that sends a who-has every 5 ms and records every reply, gratuitous
//!   ARP and advertisement on the wire (so its resolution is about 5 ms).
//!
//! Then the speaker starts again (or the node is healed) and, until the IP is stable (it
//! may move back: election is by rendezvous hashing), the overlap of that planned
//! handover is measured too.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::lab::error::LabError;
use crate::lab::netns::spawn_in_netns;
use crate::lab::plan::{OBSERVER_MAC, OBSERVER_V4, OBSERVER_V6, UPLINK};
use crate::lab::probe::{Claim, Prober, overlap};
use crate::lab::{Lab, http};

/// Interval of the observer's who-has (the resolution of the overlap measure).
const OBSERVER_TICK: Duration = Duration::from_millis(5);
/// Pause between the client's requests (the resolution of the recovery measure, plus
/// the time of one request, well under a millisecond on the lab network).
const CLIENT_TICK: Duration = Duration::from_millis(2);

/// What happens to the announcing node in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruption {
    /// Its speaker gets SIGKILL (a crash); it is started again after the round.
    Kill,
    /// Its speaker gets SIGTERM (a graceful stop); it is started again after the round.
    Term,
    /// The node is cut off from the API server (its link stays up); healed after.
    Cut,
}

impl std::fmt::Display for Disruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Disruption::Kill => "SIGKILL",
            Disruption::Term => "SIGTERM",
            Disruption::Cut => "API cut",
        })
    }
}

/// The result of one failover round.
#[derive(Debug, Clone)]
pub struct Round {
    /// What was done to the announcing node.
    pub disruption: Disruption,
    /// The IP.
    pub ip: IpAddr,
    /// The node that announced it.
    pub from: String,
    /// The node the client's traffic moved to.
    pub to: String,
    /// Signal → first HTTP answer from another node.
    pub recovery: Duration,
    /// Signal → first ARP/NDP claim by another MAC, if seen.
    pub takeover: Option<Duration>,
    /// Longest window with two MACs claiming the IP during the failover.
    pub overlap: Duration,
    /// The silent window: the old MAC's last claim → the new MAC's first claim (zero
    /// when they overlap). After a partition it shows the safety margin at work.
    pub gap: Option<Duration>,
    /// Requests that failed (timeout, refused) between the signal and the recovery.
    pub failed_requests: u32,
    /// Longest two-MAC window while the node rejoined (speaker restarted or link healed).
    pub rejoin_overlap: Duration,
}

/// A background observer in the client namespace: sends a who-has for `ip` every tick
/// and records the claims for it until stopped.
struct Observer {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Vec<Claim>, LabError>>,
}

impl Observer {
    fn start(lab: &Lab, ip: IpAddr) -> Result<Observer, LabError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = spawn_in_netns(&lab.plan().client_ns(), move || {
            let mut prober = Prober::open(UPLINK, OBSERVER_MAC, OBSERVER_V4, OBSERVER_V6)?;
            let mut claims = Vec::new();
            // Bounded: a forgotten observer stops by itself after two minutes.
            let end = Instant::now() + Duration::from_secs(120);
            while !flag.load(Ordering::Relaxed) && Instant::now() < end {
                prober.request(ip)?;
                let next = Instant::now() + OBSERVER_TICK;
                while let Some(c) = prober.next_claim(next) {
                    if c.ip == ip {
                        claims.push(c);
                    }
                }
            }
            Ok(claims)
        })?;
        Ok(Observer { stop, thread })
    }

    fn finish(self) -> Result<Vec<Claim>, LabError> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| Err(LabError::Config("the observer thread panicked".into())))
    }
}

/// Waits until the client's own HTTP traffic to `ip` reaches `node`.
async fn wait_client_reaches(
    lab: &Lab,
    ip: IpAddr,
    node: &str,
    within: Duration,
) -> Result<(), LabError> {
    let what = format!("the client's requests to {ip} to reach {node}");
    crate::lab::wait_for(
        &what,
        within,
        Duration::from_millis(50),
        move || async move {
            (lab.curl(ip, Duration::from_millis(300)).await.ok()? == node).then_some(())
        },
    )
    .await
}

/// Waits until exactly one node has answered for `ip` for `quiet` in a row.
pub async fn wait_stable(
    lab: &Lab,
    ip: IpAddr,
    quiet: Duration,
    within: Duration,
) -> Result<String, LabError> {
    let deadline = Instant::now() + within;
    let mut current: Option<(String, Instant)> = None;
    loop {
        lab.check_children()?;
        let who = lab.announcers(ip).await?;
        let now = Instant::now();
        match (&current, who.as_slice()) {
            (Some((node, since)), [one]) if node == one => {
                if now.duration_since(*since) >= quiet {
                    return Ok(one.clone());
                }
            }
            (_, [one]) => current = Some((one.clone(), now)),
            _ => current = None,
        }
        if now >= deadline {
            return Err(LabError::Timeout {
                what: format!("{ip} to be answered by one stable node"),
                after: within,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One failover round on `ip` with `disruption` (see the module docs).
pub async fn failover_round(
    lab: &Lab,
    ip: IpAddr,
    disruption: Disruption,
    within: Duration,
) -> Result<Round, LabError> {
    let from = wait_stable(
        lab,
        ip,
        Duration::from_millis(1000),
        Duration::from_secs(30),
    )
    .await?;
    wait_client_reaches(lab, ip, &from, Duration::from_secs(15)).await?;

    let observer = Observer::start(lab, ip)?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    match disruption {
        Disruption::Kill => {
            lab.signal_speaker(&from, Signal::SIGKILL)?;
        }
        Disruption::Term => {
            lab.signal_speaker(&from, Signal::SIGTERM)?;
        }
        Disruption::Cut => lab.cut(&from).await?,
    }
    let old = from.clone();
    let client = spawn_in_netns(&lab.plan().client_ns(), move || {
        let mut failed = 0u32;
        while t0.elapsed() < within {
            match http::get(ip, Duration::from_millis(100)) {
                Ok(node) if node != old => return Ok((t0.elapsed(), node, failed)),
                Ok(_) => {}
                Err(_) => failed += 1,
            }
            std::thread::sleep(CLIENT_TICK);
        }
        Err(LabError::Timeout {
            what: format!("the client's traffic to {ip} to move off {old}"),
            after: within,
        })
    })?;
    let outcome = tokio::task::spawn_blocking(move || client.join())
        .await
        .map_err(|e| LabError::Config(format!("client thread: {e}")))?
        .unwrap_or_else(|_| Err(LabError::Config("the client thread panicked".into())));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let claims = tokio::task::spawn_blocking(move || observer.finish())
        .await
        .map_err(|e| LabError::Config(format!("observer: {e}")))??;
    let (recovery, to, failed_requests) = outcome?;
    let old_mac = lab.node(&from)?.mac;
    let first_new = claims
        .iter()
        .filter(|c| c.at >= t0 && c.mac != old_mac)
        .map(|c| c.at)
        .min();
    let last_old = claims
        .iter()
        .filter(|c| c.mac == old_mac)
        .map(|c| c.at)
        .max();
    let takeover = first_new.map(|at| at - t0);
    let gap = first_new
        .zip(last_old)
        .map(|(new, old)| new.saturating_duration_since(old));

    let rejoin = match disruption {
        Disruption::Kill | Disruption::Term => {
            lab.wait_speaker_exit(&from, Duration::from_secs(10))
                .await?;
            let rejoin = Observer::start(lab, ip)?;
            lab.start_speaker(&from)?;
            rejoin
        }
        Disruption::Cut => {
            let rejoin = Observer::start(lab, ip)?;
            lab.heal(&from).await?;
            rejoin
        }
    };
    let settled = wait_stable(
        lab,
        ip,
        Duration::from_millis(1500),
        Duration::from_secs(30),
    )
    .await;
    let rejoin_claims = tokio::task::spawn_blocking(move || rejoin.finish())
        .await
        .map_err(|e| LabError::Config(format!("observer: {e}")))??;
    settled?;

    Ok(Round {
        disruption,
        ip,
        from,
        to,
        recovery,
        takeover,
        overlap: overlap(&claims),
        gap,
        failed_requests,
        rejoin_overlap: overlap(&rejoin_claims),
    })
}

/// Minimum, median, mean and maximum of `values`.
pub fn summary(values: &[Duration]) -> Option<(Duration, Duration, Duration, Duration)> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort();
    let mean = v.iter().sum::<Duration>() / v.len() as u32;
    Some((v[0], v[v.len() / 2], mean, v[v.len() - 1]))
}

/// Formats a duration in milliseconds with one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_orders_values() {
        let v = [
            Duration::from_millis(30),
            Duration::from_millis(10),
            Duration::from_millis(20),
        ];
        let (min, median, mean, max) = summary(&v).unwrap();
        assert_eq!((min, median, mean, max), (v[1], v[2], v[2], v[0]));
        assert!(summary(&[]).is_none());
        assert_eq!(ms(Duration::from_micros(1260)), "1.3 ms");
    }
}
