//! What /proc says about a process (CPU time, resident memory, threads), for the
//! speaker benchmarks that run the real binary.

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// utime + stime, seconds.
    pub cpu: f64,
    /// VmRSS, RssAnon, RssFile in KiB.
    pub rss: [u64; 3],
    /// Threads.
    #[allow(dead_code)] // read by speaker_load only
    pub threads: u64,
}

/// Reads /proc/<pid>/stat and /proc/<pid>/status; zeros for what cannot be read.
pub fn proc_usage(pid: u32) -> Usage {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14th and 15th.
    let after = stat.rsplit_once(") ").map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ, the unit of these fields, is 100 on Linux whatever the kernel's HZ.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Usage {
        cpu,
        rss: [kib("VmRSS:"), kib("RssAnon:"), kib("RssFile:")],
        threads: kib("Threads:"),
    }
}
