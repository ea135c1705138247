//! Cost and detection time of the membership protocol, simulated in one process
//! (core/tests/support/membership_sim.rs: 1 ms delivery delay, no loss).
//!
//! For N = 3, 50, 64 and 500 nodes: after a warm-up, a fixed simulated window
//! (`BENCH_SECS`, default 10 s) measures per node the packets sent + received per
//! second, the bytes per heartbeat and the CPU time spent in `poll` and `receive`
//! (wall clock of the single simulating thread around those calls, divided by N and
//! by the simulated seconds: inflated when other processes preempt this one) and the
//! thread's CPU time over the window, harness included (an upper bound that
//! preemption does not inflate). Then nodes crash one after the other, each at another phase of the
//! heartbeat schedule (5 crashes, 2 at 500 nodes), and the detection delay of every live
//! observer is reported (min / median / max over all observers and crashes).
//!
//! Run: `cargo bench -p ferrolb-core --bench membership`

#[path = "../tests/support/membership_sim.rs"]
mod sim;

use std::time::Duration;

use ferrolb_core::membership::MembershipConfig;
use sim::Sim;

/// CPU time this thread has run, in seconds (/proc/thread-self/schedstat, in ns): the
/// simulation is single-threaded, so this is the CPU of poll, receive and the harness.
fn thread_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
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
        "| nodes | interval ms | timeout ms | packets/s per node (sent+recv) | bytes per heartbeat | poll+receive wall time per node | thread CPU per node (harness incl.) | detection ms min / median / max |"
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
        let cpu0 = thread_cpu();
        s.run_for(Duration::from_secs(secs));
        let cpu = thread_cpu().zip(cpu0).map(|(b, a)| b - a);
        let sim_secs = secs as f64;
        let pps = (s.sent + s.received) as f64 / n as f64 / sim_secs;
        let bytes = s.bytes_sent as f64 / s.sent.max(1) as f64;
        // CPU per node per second, as a share of one core, in µs per second.
        let busy_us = s.busy.as_secs_f64() * 1e6 / n as f64 / sim_secs;
        let proc_us = match cpu {
            // The kernel updates a running thread's total at ticks and switches only.
            Some(c) if c > 0.0 => format!("{:.0} µs/s", c * 1e6 / n as f64 / sim_secs),
            Some(_) => "below resolution".to_string(),
            None => "n/a".to_string(),
        };
        // Crash victims one after the other, each at another phase of the schedule,
        // and collect the detection delay of every live observer.
        let victims = if n >= 500 { 2 } else { 5.min(n - 2) };
        let mut delays = Vec::new();
        let mut missed = 0;
        for v in 0..victims {
            s.run_for(interval * (v as u32 + 1) / (victims as u32 + 1));
            s.crash(v);
            s.run_for(timeout + interval * 2);
            let d = s.detection_delays();
            missed += (n - 1 - v) - d.len();
            delays.extend(d);
        }
        delays.sort();
        let det = if missed == 0 && !delays.is_empty() {
            format!(
                "{} / {} / {} ({} crashes)",
                ms(delays[0]),
                ms(delays[delays.len() / 2]),
                ms(delays[delays.len() - 1]),
                victims
            )
        } else {
            format!("{missed} observers missed a crash")
        };
        println!(
            "| {n} | {} | {} | {pps:.0} | {bytes:.0} | {busy_us:.0} µs/s | {proc_us} | {det} |",
            ms(interval),
            ms(timeout)
        );
    }
}
