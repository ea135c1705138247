//! The speaker's watches: kube-runtime reflectors with a quick backoff, each waking the
//! election loop on every change.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Watch retry: 100 ms doubling up to 1 s. Faster than kube's default (up to 30 s) so
/// that a speaker is back in the election within about a second of the API server
/// becoming reachable again.
#[derive(Debug, Clone)]
pub struct QuickBackoff {
    next: Duration,
}

impl QuickBackoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(1);
    /// A backoff at its first delay.
    pub fn new() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Iterator for QuickBackoff {
    type Item = Duration;
    fn next(&mut self) -> Option<Duration> {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        Some(d)
    }
}

impl Backoff for QuickBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for QuickBackoff {
    fn default() -> Self {
        Self::new()
    }
}

/// Spawns a reflector for `api` into `tasks`, trimming each object with `slim`; every
/// change notifies `wake`.
pub fn spawn_reflector<K>(
    tasks: &mut JoinSet<()>,
    wake: &Arc<Notify>,
    api: Api<K>,
    config: watcher::Config,
    slim: fn(&mut K),
) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store::<K>();
    let stream = watcher(api, config)
        .backoff(QuickBackoff::new())
        // Only what the election reads is cached (see `crate::slim`).
        .modify(slim)
        .reflect(writer);
    tasks.spawn(drive(stream, wake.clone(), K::kind(&()).to_string()));
    store
}

async fn drive<S, K>(stream: S, wake: Arc<Notify>, kind: String)
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => {}
            Ok(watcher::Event::InitDone) => {
                // The reflector has swapped the listed objects in and dropped the list's
                // garbage: hand those pages back (see `crate::malloc`).
                ferrolb_process::malloc::release_free_memory();
                wake.notify_one();
            }
            Ok(_) => wake.notify_one(),
            Err(e) => tracing::warn!(kind = %kind, error = %e, "watch failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_backoff_doubles_to_one_second_and_resets() {
        let mut b = QuickBackoff::new();
        let v: Vec<u128> = (0..6).map(|_| b.next().unwrap().as_millis()).collect();
        assert_eq!(v, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next(), Some(Duration::from_millis(100)));
    }
}
