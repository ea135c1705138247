//! The faults the lab injects, as plain data, and the per-request decision of the API
//! path (pure: the random roll comes from an injected [`Roll`]).
//!
//! Two kinds:
//! - on the **API path** ([`ApiFaults`]): applied by the lab's API forwarders
//!   ([`crate::forward`]) that every client of the API server but the lab itself and
//!   the user's kubectl goes through: the API server down, latency, failures;
//! - on the **node network** ([`NetFaults`]): applied by nftables in the bridge namespace
//!   ([`crate::nft`]): a node isolated from its peers, random frame loss between nodes.

use std::collections::BTreeSet;
use std::time::Duration;

use hyper::Method;

/// What is wrong with the API path now. The default is a healthy path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiFaults {
    /// The API server is gone: open connections are reset, new ones refused.
    pub down: bool,
    /// Added before every request is forwarded (path latency).
    pub delay: Duration,
    /// Added, on top of `delay`, before every write (POST, PUT, PATCH, DELETE): a slow
    /// storage behind the API server.
    pub write_delay: Duration,
    /// Percentage (0..=100) of requests answered with 503 Service Unavailable.
    pub fail_percent: u8,
}

/// What the forwarder does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Wait this long first.
    pub delay: Duration,
    /// Then answer 503 instead of forwarding.
    pub fail: bool,
}

/// A source of uniform rolls in 0..100.
pub trait Roll {
    /// The next roll, in 0..100.
    fn percent(&mut self) -> u8;
}

/// SplitMix64: a small, fast, well-distributed generator, plenty for fault injection
/// (nothing here needs to be unpredictable).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting at `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// Seeded from the clock, so that two lab runs do not fail the same requests.
    pub fn from_clock() -> SplitMix64 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        SplitMix64(nanos ^ u64::from(std::process::id()).rotate_left(32))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Roll for SplitMix64 {
    fn percent(&mut self) -> u8 {
        // The modulo bias over 2^64 values is far below anything a test could see.
        (self.next_u64() % 100) as u8
    }
}

/// Whether `method` changes state on the API server.
pub fn is_write(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Decides the fate of one request. Rolls only when some requests must fail, so that a
/// healthy path consumes no randomness.
pub fn decide(faults: &ApiFaults, method: &Method, roll: &mut impl Roll) -> Verdict {
    let mut delay = faults.delay;
    if is_write(method) {
        delay += faults.write_delay;
    }
    let fail = faults.fail_percent > 0 && roll.percent() < faults.fail_percent;
    Verdict { delay, fail }
}

/// The per-request faults of `faults` that a TCP relay (an external `https` API
/// server, TLS end to end) cannot inject, in the words of the lab's commands; empty
/// when `faults` has none. Only `api-down`/`api-up` act below HTTP.
pub fn needs_http(faults: &ApiFaults) -> Vec<&'static str> {
    let mut out = Vec::new();
    if !faults.delay.is_zero() {
        out.push("api-delay");
    }
    if !faults.write_delay.is_zero() {
        out.push("api-delay-writes");
    }
    if faults.fail_percent > 0 {
        out.push("api-fail");
    }
    out
}

/// The body of an injected 503: a Kubernetes Status, as a real API server sends when
/// it is overloaded or its storage is unavailable, so that clients take their retry path.
pub fn unavailable_status(percent: u8) -> String {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("injected by the lab (api-fail {percent}%)"),
        "reason": "ServiceUnavailable",
        "code": 503
    })
    .to_string()
}

/// What is wrong with the node network now. The default is a healthy network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetFaults {
    /// Nodes cut off from every other node (not from the client, nor the API host).
    pub isolated: BTreeSet<String>,
    /// Percentage (0..=100) of frames dropped between node ports.
    pub loss_percent: u8,
}

/// Parses a percentage: `30` or `30%`, 0 to 100.
pub fn parse_percent(s: &str) -> Result<u8, String> {
    let digits = s.trim().trim_end_matches('%');
    match digits.parse::<u8>() {
        Ok(p) if p <= 100 => Ok(p),
        _ => Err(format!(
            "{s:?} is not a percentage (a whole number from 0 to 100, e.g. 30 or 30%)"
        )),
    }
}

/// Parses a duration such as `2s`, `500ms`, or `0` (off).
pub fn parse_delay(s: &str) -> Result<Duration, String> {
    ferrolb_core::duration::parse_or_zero(s.trim()).map_err(|e| format!("{s:?}: {e}"))
}

/// The active faults in the words of the lab's commands (`none` when healthy).
pub fn summary(api: &ApiFaults, net: &NetFaults) -> String {
    let mut parts: Vec<String> = Vec::new();
    if api.down {
        parts.push("api-down".into());
    }
    if !api.delay.is_zero() {
        parts.push(format!("api-delay {:?}", api.delay));
    }
    if !api.write_delay.is_zero() {
        parts.push(format!("api-delay-writes {:?}", api.write_delay));
    }
    if api.fail_percent > 0 {
        parts.push(format!("api-fail {}%", api.fail_percent));
    }
    for node in &net.isolated {
        parts.push(format!("isolate {node}"));
    }
    if net.loss_percent > 0 {
        parts.push(format!("loss {}%", net.loss_percent));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rolls from a fixed list, counting how many were drawn.
    struct Script {
        rolls: Vec<u8>,
        drawn: usize,
    }

    impl Roll for Script {
        fn percent(&mut self) -> u8 {
            let r = self.rolls[self.drawn % self.rolls.len()];
            self.drawn += 1;
            r
        }
    }

    fn script(rolls: &[u8]) -> Script {
        Script {
            rolls: rolls.to_vec(),
            drawn: 0,
        }
    }

    #[test]
    fn a_healthy_path_forwards_at_once_without_rolling() {
        let mut roll = script(&[0]);
        let v = decide(&ApiFaults::default(), &Method::POST, &mut roll);
        assert_eq!(
            v,
            Verdict {
                delay: Duration::ZERO,
                fail: false
            }
        );
        assert_eq!(roll.drawn, 0);
    }

    #[test]
    fn write_delay_applies_to_writes_only_and_adds_to_the_path_delay() {
        let f = ApiFaults {
            delay: Duration::from_millis(100),
            write_delay: Duration::from_secs(2),
            ..ApiFaults::default()
        };
        let mut roll = script(&[0]);
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert_eq!(decide(&f, &m, &mut roll).delay, Duration::from_millis(100));
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(decide(&f, &m, &mut roll).delay, Duration::from_millis(2100));
        }
    }

    #[test]
    fn a_request_fails_when_its_roll_is_below_the_percentage() {
        let f = ApiFaults {
            fail_percent: 30,
            ..ApiFaults::default()
        };
        let mut roll = script(&[0, 29, 30, 99]);
        let fails: Vec<bool> = (0..4)
            .map(|_| decide(&f, &Method::GET, &mut roll).fail)
            .collect();
        assert_eq!(fails, [true, true, false, false]);
        let all = ApiFaults {
            fail_percent: 100,
            ..ApiFaults::default()
        };
        assert!(decide(&all, &Method::GET, &mut script(&[99])).fail);
    }

    #[test]
    fn splitmix_rolls_are_in_range_and_spread() {
        let mut rng = SplitMix64::new(42);
        let mut below_30 = 0;
        let mut seen = [false; 100];
        for _ in 0..10_000 {
            let r = rng.percent();
            assert!(r < 100);
            seen[usize::from(r)] = true;
            below_30 += usize::from(r < 30);
        }
        assert!(seen.iter().all(|s| *s), "every value 0..100 comes up");
        assert!((2700..3300).contains(&below_30), "{below_30}");
        // Deterministic for a seed (the unit tests above rely on injecting rolls, the
        // lab on distinct seeds).
        assert_eq!(SplitMix64::new(7).next_u64(), SplitMix64::new(7).next_u64());
        assert_ne!(SplitMix64::new(7).next_u64(), SplitMix64::new(8).next_u64());
    }

    #[test]
    fn the_503_body_is_a_kubernetes_status() {
        let v: serde_json::Value = serde_json::from_str(&unavailable_status(30)).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["code"], 503);
        assert_eq!(v["reason"], "ServiceUnavailable");
        assert!(v["message"].as_str().unwrap().contains("30%"));
    }

    #[test]
    fn percentages_and_delays_parse_and_bad_ones_are_named() {
        assert_eq!(parse_percent("30"), Ok(30));
        assert_eq!(parse_percent("30%"), Ok(30));
        assert_eq!(parse_percent("0"), Ok(0));
        assert_eq!(parse_percent("100"), Ok(100));
        for bad in ["101", "-1", "x", "", "3.5"] {
            let e = parse_percent(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        assert_eq!(parse_delay("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_delay("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_delay("0"), Ok(Duration::ZERO));
        assert!(parse_delay("2").unwrap_err().contains("\"2\""));
    }

    #[test]
    fn the_summary_names_each_active_fault_as_its_command() {
        assert_eq!(
            summary(&ApiFaults::default(), &NetFaults::default()),
            "none"
        );
        let api = ApiFaults {
            down: true,
            delay: Duration::from_millis(500),
            write_delay: Duration::from_secs(2),
            fail_percent: 30,
        };
        let net = NetFaults {
            isolated: ["n2".to_string(), "n1".to_string()].into(),
            loss_percent: 50,
        };
        assert_eq!(
            summary(&api, &net),
            "api-down, api-delay 500ms, api-delay-writes 2s, api-fail 30%, isolate n1, isolate n2, loss 50%"
        );
    }

    #[test]
    fn only_down_needs_no_http() {
        assert!(
            needs_http(&ApiFaults {
                down: true,
                ..ApiFaults::default()
            })
            .is_empty()
        );
        let all = ApiFaults {
            down: false,
            delay: Duration::from_millis(1),
            write_delay: Duration::from_secs(2),
            fail_percent: 30,
        };
        assert_eq!(
            needs_http(&all),
            ["api-delay", "api-delay-writes", "api-fail"]
        );
    }
}
