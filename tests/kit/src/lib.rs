//! Small helpers shared by the tests and benchmarks of every ferrolb crate: waits that always
//! end (each takes a limit and says what it waited for when it runs out), free loopback ports,
//! a child process that is killed when dropped, and the name prefix of a benchmark run.
//!
//! It depends on nothing heavy (tokio for the async waits' sleeps only), so that a crate's
//! dev-dependency on it costs little.
#![forbid(unsafe_code)]

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::ops::{Deref, DerefMut};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

// ---- Bounded waits ---------------------------------------------------------------

/// Calls `f` every `every` until it yields `Some`, for at most `within`; `None` when the time
/// ran out. `f` is always called at least once, and once more at the limit.
pub async fn poll<T, F, Fut>(within: Duration, every: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Like [`poll`] for a thread outside any async runtime (e.g. one inside a network
/// namespace), polling every 20 ms.
pub fn poll_blocking<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` every 20 ms until it yields `Some` and returns the value; panics, naming `what`,
/// after `within`.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    match poll(within, Duration::from_millis(20), f).await {
        Some(v) => v,
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}

/// Polls the (cheap, synchronous) condition `cond` every 10 ms until it holds and returns how
/// long that took; panics, naming `what`, after `within`. The short period keeps the returned
/// time close to the moment the condition started to hold.
pub async fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    wait_timed(what, within, Duration::from_millis(10), || {
        std::future::ready(cond())
    })
    .await
}

/// Like [`wait_until`] for an async condition (typically an API request), polled every 50 ms.
pub async fn wait_until_async<F, Fut>(what: &str, within: Duration, cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_timed(what, within, Duration::from_millis(50), cond).await
}

async fn wait_timed<F, Fut>(what: &str, within: Duration, every: Duration, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    let held = poll(within, every, || {
        let fut = cond();
        async move { fut.await.then_some(()) }
    })
    .await;
    match held {
        Some(()) => start.elapsed(),
        None => panic!("timed out after {within:?} waiting for {what}"),
    }
}

// ---- Ports -----------------------------------------------------------------------

/// A TCP port free on 127.0.0.1 now (bound, then released for the caller to bind; good enough
/// for tests, where nothing else races for ports on that scale).
pub fn try_free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// [`try_free_port`], panicking when no port can be bound.
pub fn free_port() -> u16 {
    try_free_port().expect("binding a free TCP port on 127.0.0.1")
}

/// `127.0.0.1:<a free port>` (see [`free_port`]).
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

// ---- Child processes -------------------------------------------------------------

/// A child process that is killed (SIGKILL) and reaped when dropped, also when a test panics,
/// so that no test leaves a binary running. Derefs to the [`Child`].
#[derive(Debug)]
pub struct KillOnDrop(Child);

impl KillOnDrop {
    /// Takes over `child`.
    pub fn new(child: Child) -> Self {
        Self(child)
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }

    /// SIGKILL and reap, as when a node dies. Does nothing to an exited process.
    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// SIGTERM, then waits (polling every 20 ms, blocking the thread) at most `within` for the
    /// exit; SIGKILL after that. Returns the exit status when the process ended on its own.
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let status = poll_blocking(within, || self.0.try_wait().ok().flatten());
        if status.is_none() {
            self.kill();
        }
        status
    }
}

impl Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---- Benchmarks ------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn poll_returns_the_first_value_and_gives_up_at_the_limit() {
        let mut n = 0;
        let v = poll(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            std::future::ready((n == 3).then_some(n))
        })
        .await;
        assert_eq!(v, Some(3));
        let start = Instant::now();
        let none: Option<()> = poll(Duration::from_millis(50), Duration::from_millis(5), || {
            std::future::ready(None)
        })
        .await;
        assert_eq!(none, None);
        assert!(start.elapsed() >= Duration::from_millis(50));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 30ms waiting for the impossible")]
    async fn wait_until_panics_naming_what_it_waited_for() {
        wait_until("the impossible", Duration::from_millis(30), || false).await;
    }

    #[test]
    fn poll_blocking_gives_up_at_the_limit() {
        let mut calls = 0;
        let r: Option<()> = poll_blocking(Duration::from_millis(50), || {
            calls += 1;
            None
        });
        assert_eq!(r, None);
        assert!(calls >= 2, "{calls}");
    }

    #[test]
    fn free_port_can_be_bound() {
        // Other processes on the machine take ports too: one of a few must be bindable.
        let ports: Vec<u16> = (0..5).map(|_| free_port()).collect();
        assert!(ports.iter().all(|p| *p != 0), "{ports:?}");
        assert!(
            ports
                .iter()
                .any(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok()),
            "none of {ports:?} could be bound again"
        );
    }

    #[test]
    fn kill_on_drop_kills_the_child() {
        let child = Command::new("sleep").arg("600").spawn().expect("sleep(1)");
        let pid = child.id();
        let mut guard = KillOnDrop::new(child);
        assert!(guard.running());
        drop(guard);
        // Reaped: the pid is no longer a child of this process.
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| !s.contains("(sleep)")),
            "sleep {pid} still exists"
        );
    }

    #[test]
    fn terminate_returns_the_exit_status_of_a_process_that_ends_on_sigterm() {
        let child = Command::new("sleep").arg("600").spawn().expect("sleep(1)");
        let mut guard = KillOnDrop::new(child);
        let status = guard
            .terminate(Duration::from_secs(5))
            .expect("exits on SIGTERM");
        assert!(!status.success());
        assert!(!guard.running());
    }
}
