//! `lab --vlan bench-vlan`: how fast a VLAN pool's address moves when the announcing
//! node's link to that VLAN goes down (its other links stay up), seen from the client on
//! the second segment. Each round: the node answering the address on `eth0.20` loses
//! that link at the bridge; an observer in the segment's client namespace asks who has
//! the address every 5 ms, and the client's own HTTP requests go to it every 10 ms.
//! Takeover is the first answer from another node's `eth0.20`, recovery the first HTTP
//! answer from another node (it includes the 100 ms timeout of the request in flight
//! when the link went down). The link comes back and the address settles before the
//! next round.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::bench::{Observer, ms, summary, wait_stable};
use crate::error::LabError;
use crate::netns::in_netns_async;
use crate::{Lab, Segment, http};

/// One round's figures.
#[derive(Debug, Clone)]
pub struct VlanRound {
    /// The node whose `eth0.20` went down.
    pub from: String,
    /// The node that answers afterwards.
    pub to: String,
    /// Link down → first ARP/NDP answer from another node on the segment.
    pub takeover: Option<Duration>,
    /// Link down → first HTTP answer from another node.
    pub recovery: Duration,
}

/// Runs `rounds` rounds on `ip` (an address of the lab's `vlan20` pool).
pub async fn run(lab: &Lab, ip: IpAddr, rounds: u32) -> Result<Vec<VlanRound>, LabError> {
    if lab.segment_of(ip) != Segment::Vlan {
        return Err(LabError::Config(format!(
            "{ip} is not an address of the second segment's pool (start the lab with --vlan)"
        )));
    }
    let mut out = Vec::new();
    for _ in 0..rounds {
        let holder = wait_stable(lab, ip, Duration::from_secs(2), Duration::from_secs(30)).await?;
        let from = holder.split('/').next().unwrap_or(&holder).to_string();
        // Who-has every 5 ms from the second segment's client; bounded even if never stopped.
        let observer = Observer::start_on(
            lab,
            Segment::Vlan,
            vec![ip],
            Duration::from_millis(5),
            Duration::from_secs(60),
        )?;
        // Let the observer see the holder first, so that a takeover is a change.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t0 = Instant::now();
        lab.set_vlan_link(&from, false).await?;
        let to = wait_http_from_other(lab, ip, &from, Duration::from_secs(20)).await?;
        let recovery = t0.elapsed();
        let claims = observer.finish().await?;
        let old_mac = lab
            .node(&from)?
            .vlan
            .map(|v| v.mac)
            .ok_or_else(|| LabError::Config("no second segment".into()))?;
        let takeover = claims
            .iter()
            .find(|c| c.at >= t0 && c.mac != old_mac)
            .map(|c| c.at - t0);
        out.push(VlanRound {
            from: from.clone(),
            to,
            takeover,
            recovery,
        });
        lab.set_vlan_link(&from, true).await?;
        // Back to one stable answer (the node may take its address back).
        wait_stable(lab, ip, Duration::from_secs(2), Duration::from_secs(30)).await?;
    }
    Ok(out)
}

/// The report: one line per round, then min / median / max.
pub fn report(rounds: &[VlanRound]) -> String {
    let mut s = String::from("round  from  to  takeover  client recovery\n");
    for (i, r) in rounds.iter().enumerate() {
        s.push_str(&format!(
            "{:>5}  {:>4}  {:>2}  {:>8}  {}\n",
            i + 1,
            r.from,
            r.to,
            r.takeover.map(ms).unwrap_or_else(|| "-".into()),
            ms(r.recovery)
        ));
    }
    let take: Vec<Duration> = rounds.iter().filter_map(|r| r.takeover).collect();
    let rec: Vec<Duration> = rounds.iter().map(|r| r.recovery).collect();
    for (what, v) in [("takeover", take), ("client recovery", rec)] {
        if let Some((min, median, _, max)) = summary(&v) {
            s.push_str(&format!(
                "{what}: min {} / median {} / max {} ({} rounds)\n",
                ms(min),
                ms(median),
                ms(max),
                v.len()
            ));
        }
    }
    s
}

/// Polls `http://ip/` from the second segment's client every 10 ms until a node other
/// than `not` answers; returns it.
async fn wait_http_from_other(
    lab: &Lab,
    ip: IpAddr,
    not: &str,
    within: Duration,
) -> Result<String, LabError> {
    let ns = lab.plan().vlan_client_ns();
    let deadline = Instant::now() + within;
    loop {
        let answer = in_netns_async(&ns, move || http::get(ip, Duration::from_millis(100))).await;
        if let Ok(node) = answer
            && node != not
        {
            return Ok(node);
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: format!(
                    "a node other than {not} to answer http://{ip}/ on the second segment"
                ),
                after: within,
            });
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_has_a_line_per_round_and_the_summary() {
        let r = |take: Option<u64>, rec: u64| VlanRound {
            from: "n1".into(),
            to: "n2".into(),
            takeover: take.map(Duration::from_millis),
            recovery: Duration::from_millis(rec),
        };
        let text = report(&[r(Some(400), 420), r(None, 500), r(Some(380), 410)]);
        assert_eq!(text.lines().count(), 1 + 3 + 2, "{text}");
        assert!(
            text.contains("takeover: min 380.0 ms / median 400.0 ms / max 400.0 ms (2 rounds)"),
            "{text}"
        );
        assert!(
            text.contains(
                "client recovery: min 410.0 ms / median 420.0 ms / max 500.0 ms (3 rounds)"
            ),
            "{text}"
        );
    }
}
