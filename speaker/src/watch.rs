//! The speaker's watches: kube-runtime reflectors with a quick backoff, each waking the
//! election loop on every change.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use tokio::sync::Notify;
use tokio::task::JoinSet;

pub use ferrolb_process::backoff::QuickBackoff;

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
