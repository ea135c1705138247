//! Cost and detection time of the membership protocol, simulated in one process
//! (core/tests/support/membership_sim.rs: 1 ms delivery delay, no loss).
//!
//! For N = 3, 50, 64 and 500 nodes: after a warm-up, a fixed simulated window
//! (`BENCH_SECS`, default 10 s) measures per node the packets sent + received per
//! second, the bytes per heartbeat and the CPU time spent in `poll` and `receive`
//! (wall clock of the single simulating thread around those calls, divided by N and
//! by the simulated seconds; the process CPU over the window, harness included, is
//! shown beside it). Then node 0 crashes mid-interval and the detection delay of every
//! other node is reported (min / median / max).
//!
//! Run: `cargo bench -p ferrolb-core --bench membership`

#[path = "../tests/support/membership_sim.rs"]
mod sim;

use std::time::Duration;

use ferrolb_core::membership::MembershipConfig;
use sim::Sim;

/// utime + stime of this process, in seconds (USER_HZ is 100 on Linux).
fn process_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .clamp(1, 60);
    println!(
        "| nodes | interval ms | timeout ms | packets/s per node (sent+recv) | bytes per heartbeat | poll+receive CPU per node | process CPU per node | detection ms min / median / max |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for n in [3usize, 50, 64, 500] {
        let mut s = Sim::new(n, MembershipConfig::default(), 42 + n as u64);
        let (interval, timeout) = (s.nodes[0].m.interval(), s.nodes[0].m.timeout());
        s.run_for(timeout + Duration::from_secs(1));
        s.sent = 0;
        s.received = 0;
        s.bytes_sent = 0;
        s.busy = Duration::ZERO;
        let cpu0 = process_cpu();
        s.run_for(Duration::from_secs(secs));
        let cpu = process_cpu().zip(cpu0).map(|(b, a)| b - a);
        let sim_secs = secs as f64;
        let pps = (s.sent + s.received) as f64 / n as f64 / sim_secs;
        let bytes = s.bytes_sent as f64 / s.sent.max(1) as f64;
        // CPU per node per second, as a share of one core, in µs per second.
        let busy_us = s.busy.as_secs_f64() * 1e6 / n as f64 / sim_secs;
        let proc_us = cpu.map_or("n/a".to_string(), |c| {
            format!("{:.0} µs/s", c * 1e6 / n as f64 / sim_secs)
        });
        // Crash mid-interval and watch every observer.
        s.run_for(interval / 3);
        s.crash(0);
        s.run_for(timeout + interval * 2);
        let d = s.detection_delays();
        let det = if d.len() == n - 1 {
            format!("{} / {} / {}", ms(d[0]), ms(d[d.len() / 2]), ms(d[d.len() - 1]))
        } else {
            format!("only {} of {} observers detected", d.len(), n - 1)
        };
        println!(
            "| {n} | {} | {} | {pps:.0} | {bytes:.0} | {busy_us:.0} µs/s | {proc_us} | {det} |",
            ms(interval),
            ms(timeout)
        );
    }
}
