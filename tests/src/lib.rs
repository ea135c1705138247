//! ferrolb testbed: an embedded Kubernetes API server for tests and the lab.
#![forbid(unsafe_code)]

pub mod apiserver;
pub mod lab;

/// A name prefix unique to this benchmark run (`flbbench-<pid>-<seconds>-`), for the
/// objects a benchmark creates on an external API server, so that they never collide
/// with what is there and can all be found and deleted afterwards.
pub fn bench_run_prefix() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("flbbench-{}-{}-", std::process::id(), secs % 1_000_000)
}
