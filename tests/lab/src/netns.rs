//! Running code inside one of the lab's network namespaces.
//!
//! A socket belongs to the network namespace its creating thread was in, and keeps it
//! for its whole life. So the lab creates sockets (listeners, raw sockets, outgoing
//! connections) on a short-lived thread that has `setns`'d into the namespace, then uses
//! them from anywhere — e.g. serves a listener bound inside a node namespace from the
//! lab's tokio runtime. The thread is thrown away afterwards: a runtime's worker thread
//! must never switch namespace, since every later task on it would inherit it.

use std::fs::File;
use std::net::SocketAddr;

use nix::sched::{CloneFlags, setns};

use crate::error::LabError;

/// Runs `f` on a fresh thread inside network namespace `netns` (a name under
/// /run/netns) and returns its result.
pub fn in_netns<T, F>(netns: &str, f: F) -> Result<T, LabError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, LabError> + Send + 'static,
{
    spawn_in_netns(netns, f)?.join().unwrap_or_else(|_| {
        Err(LabError::Config(format!(
            "a task in network namespace {netns} panicked"
        )))
    })
}

/// Async [`in_netns`]: the blocking work runs off the runtime's threads.
pub async fn in_netns_async<T, F>(netns: &str, f: F) -> Result<T, LabError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, LabError> + Send + 'static,
{
    let netns = netns.to_string();
    tokio::task::spawn_blocking(move || in_netns(&netns, f))
        .await
        .unwrap_or_else(|e| Err(LabError::Config(format!("netns task failed: {e}"))))
}

/// A TCP listener bound at `addr` inside `netns`, ready for tokio (call from a runtime).
pub fn tcp_listener_in(netns: &str, addr: SocketAddr) -> Result<tokio::net::TcpListener, LabError> {
    let std_listener = in_netns(netns, move || {
        let l =
            std::net::TcpListener::bind(addr).map_err(LabError::io(format!("binding {addr}")))?;
        l.set_nonblocking(true)
            .map_err(LabError::io("setting a listener non-blocking"))?;
        Ok(l)
    })?;
    tokio::net::TcpListener::from_std(std_listener)
        .map_err(LabError::io(format!("registering listener {addr}")))
}

/// Writes a sysctl under /proc/sys/net inside `netns` (those files follow the namespace
/// of the thread that opens them).
pub fn sysctl_in(netns: &str, key: &str, value: &str) -> Result<(), LabError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    let value = value.to_string();
    in_netns(netns, move || {
        std::fs::write(&path, &value).map_err(LabError::io(format!("writing {value} to {path}")))
    })
}

/// Reads a sysctl inside `netns`.
pub fn read_sysctl_in(netns: &str, key: &str) -> Result<String, LabError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    in_netns(netns, move || {
        std::fs::read_to_string(&path)
            .map(|s| s.trim().to_string())
            .map_err(LabError::io(format!("reading {path}")))
    })
}

/// Runs `f` on a new background thread inside `netns`; join the handle for its result.
pub fn spawn_in_netns<T, F>(
    netns: &str,
    f: F,
) -> Result<std::thread::JoinHandle<Result<T, LabError>>, LabError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, LabError> + Send + 'static,
{
    let path = format!("/run/netns/{netns}");
    let file =
        File::open(&path).map_err(LabError::io(format!("opening network namespace {path}")))?;
    let name = netns.to_string();
    std::thread::Builder::new()
        .name(format!("netns-{netns}"))
        .spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| LabError::Io {
                what: format!("entering network namespace {name}"),
                source: e.into(),
            })?;
            f()
        })
        .map_err(LabError::io("spawning a thread"))
}
