//! Watch semantics of the embedded API server, with kube-rs: resuming from a resourceVersion,
//! 410 Gone for history that is gone, bookmarks, streaming lists, selector transitions, and
//! kube-runtime's watcher recovering from broken watches and restarts.

use std::time::Duration;

use ferrolb_apiserver::{ApiServer, ApiServerOptions, RunningApiServer};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::json;

async fn start(opts: ApiServerOptions) -> (RunningApiServer, kube::Client) {
    let server = ApiServer::start(opts).await.unwrap();
    let client = server.client().await.unwrap();
    (server, client)
}

fn cm(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": app}}, "data": {"v": "0"}}),
    )
    .unwrap()
}

async fn next<S>(stream: &mut S) -> WatchEvent<ConfigMap>
where
    S: futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .expect("a watch event in time")
        .expect("no stream error")
        .expect("stream still open")
}

#[tokio::test]
async fn too_old_resource_version_is_410_gone() {
    let (_s, client) = start(ApiServerOptions {
        history: 3,
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = api
        .create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.unwrap();
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("b{i}"), "x"))
            .await
            .unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match next(&mut stream).await {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
            assert!(
                e.message.starts_with("too old resource version"),
                "{}",
                e.message
            );
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    // A recent resourceVersion still works.
    let list = api.list(&ListParams::default()).await.unwrap();
    let mut stream = api
        .watch(
            &WatchParams::default(),
            &list.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "1"}})),
    )
    .await
    .unwrap();
    assert!(
        matches!(next(&mut stream).await, WatchEvent::Modified(o) if o.metadata.name.as_deref() == Some("a"))
    );
}

#[tokio::test]
async fn compaction_makes_old_versions_gone_and_resumes_replay_history() {
    let (server, client) = start(ApiServerOptions::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let a = api
        .create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    let rv_a = a.metadata.resource_version.unwrap();
    api.create(&PostParams::default(), &cm("b", "x"))
        .await
        .unwrap();
    // History replay from a's version: b was added after it.
    let mut stream = api
        .watch(&WatchParams::default(), &rv_a)
        .await
        .unwrap()
        .boxed();
    assert!(
        matches!(next(&mut stream).await, WatchEvent::Added(o) if o.metadata.name.as_deref() == Some("b"))
    );
    drop(stream);
    server.compact();
    let mut stream = api
        .watch(&WatchParams::default(), &rv_a)
        .await
        .unwrap()
        .boxed();
    assert!(matches!(next(&mut stream).await, WatchEvent::Error(e) if e.code == 410));
}

#[tokio::test]
async fn bookmarks_when_allowed() {
    let (_s, client) = start(ApiServerOptions {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let c = api
        .create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    let rv: u64 = c.metadata.resource_version.unwrap().parse().unwrap();
    let wp = WatchParams {
        bookmarks: true,
        ..Default::default()
    };
    let mut stream = api.watch(&wp, &rv.to_string()).await.unwrap().boxed();
    match next(&mut stream).await {
        WatchEvent::Bookmark(b) => {
            assert_eq!(b.metadata.resource_version.parse::<u64>().unwrap(), rv)
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }
    // Without bookmarks asked for, none come: the next event is the change.
    let mut plain = api
        .watch(&WatchParams::default().disable_bookmarks(), &rv.to_string())
        .await
        .unwrap()
        .boxed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "1"}})),
    )
    .await
    .unwrap();
    assert!(matches!(next(&mut plain).await, WatchEvent::Modified(_)));
}

#[tokio::test]
async fn label_selector_transitions_are_added_and_deleted() {
    let (_s, client) = start(ApiServerOptions::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let c = api
        .create(&PostParams::default(), &cm("a", "other"))
        .await
        .unwrap();
    let mut stream = api
        .watch(
            &WatchParams::default().labels("app in (ferrolb)"),
            &c.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "ferrolb"}}})),
    )
    .await
    .unwrap();
    assert!(matches!(next(&mut stream).await, WatchEvent::Added(_)));
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    assert!(matches!(next(&mut stream).await, WatchEvent::Modified(_)));
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "gone"}}})),
    )
    .await
    .unwrap();
    assert!(matches!(next(&mut stream).await, WatchEvent::Deleted(_)));
}

#[tokio::test]
async fn watch_from_zero_sends_current_state_and_a_named_watch_sees_only_its_object() {
    let (_s, client) = start(ApiServerOptions::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", "x"))
        .await
        .unwrap();
    let mut stream = api
        .watch(&WatchParams::default().fields("metadata.name=b"), "0")
        .await
        .unwrap()
        .boxed();
    assert!(
        matches!(next(&mut stream).await, WatchEvent::Added(o) if o.metadata.name.as_deref() == Some("b"))
    );
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "1"}})),
    )
    .await
    .unwrap();
    api.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "1"}})),
    )
    .await
    .unwrap();
    assert!(
        matches!(next(&mut stream).await, WatchEvent::Modified(o) if o.metadata.name.as_deref() == Some("b"))
    );
}

/// Waits (at most 10 s) until the reflector's store satisfies `pred`.
async fn wait_for(
    store: &reflector::Store<ConfigMap>,
    what: &str,
    pred: impl Fn(&reflector::Store<ConfigMap>) -> bool,
) {
    let what = format!("the reflector to see {what}");
    ferrolb_testkit::wait_until(&what, Duration::from_secs(10), || pred(store)).await;
}

#[tokio::test]
async fn reflector_recovers_from_broken_watches_and_restarts() {
    let (server, client) = start(ApiServerOptions::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default()).default_backoff(),
    )
    .applied_objects();
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.try_next().await.is_ok() {}
    });
    wait_for(&reader, "a", |s| s.state().len() == 1).await;
    server.break_watches();
    api.create(&PostParams::default(), &cm("b", "x"))
        .await
        .unwrap();
    wait_for(&reader, "b after a broken watch", |s| s.state().len() == 2).await;
    server.simulate_restart();
    api.delete("a", &Default::default()).await.unwrap();
    api.create(&PostParams::default(), &cm("c", "x"))
        .await
        .unwrap();
    wait_for(&reader, "a gone and c after a restart", |s| {
        let mut names: Vec<String> = s
            .state()
            .iter()
            .map(|o| o.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        names == ["b", "c"]
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_and_end_bookmark() {
    let (_s, client) = start(ApiServerOptions::default()).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("a", "x"))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
    let mut saw_a = false;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match ev {
            watcher::Event::Init => {}
            watcher::Event::InitApply(o) => saw_a |= o.metadata.name.as_deref() == Some("a"),
            watcher::Event::InitDone => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(saw_a);
    api.create(&PostParams::default(), &cm("b", "x"))
        .await
        .unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(ev, watcher::Event::Apply(o) if o.metadata.name.as_deref() == Some("b")));
}
