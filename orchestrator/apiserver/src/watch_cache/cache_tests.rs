use super::*;
use crate::selector::Filter;
use berth_client::testing::store;

fn pods() -> &'static Kind {
    crate::tests::kind("pods")
}

fn spec(prefix: &str) -> WatcherSpec {
    WatcherSpec::new(pods(), prefix.to_string(), Filter::default(), true, None)
}

fn pod(name: &str) -> Vec<u8> {
    format!(r#"{{"metadata":{{"name":"{name}","namespace":"a"}},"spec":{{"containers":[]}}}}"#).into_bytes()
}

/// The next message that is not a bookmark (the store's progress notifications).
async fn next_message(subscription: &mut Subscription) -> Bytes {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(20), subscription.lines.recv())
            .await
            .expect("a line in time")
            .expect("the watcher is open");
        let first_line = message.split(|&b| b == b'\n').next().unwrap_or_default();
        let event: serde_json::Value = serde_json::from_slice(first_line).unwrap();
        if event["type"] != "BOOKMARK" {
            return message;
        }
    }
}

/// The next event of a message of one line, bookmarks skipped.
async fn next_line(subscription: &mut Subscription) -> serde_json::Value {
    serde_json::from_slice(&next_message(subscription).await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watchers_share_one_cache_and_a_slow_one_is_closed() {
    let store = store().await;
    let caches = Caches::default();
    let cache = caches.of(&store.kv, pods());
    assert!(Arc::ptr_eq(&cache, &caches.of(&store.kv, pods())), "one cache per kind");

    let mut keeping_up = cache.subscribe(spec("/registry/pods/"), From::Any).await.unwrap();
    let mut slow = cache.subscribe(spec("/registry/pods/a/"), From::Any).await.unwrap();
    assert_eq!(cache.watchers(), 2);
    assert!(keeping_up.first.is_empty() && slow.first.is_empty());

    // The slow watcher reads nothing while more changes come than its queue holds.
    let writes = QUEUE + 10;
    let reader = tokio::spawn(async move {
        let mut seen = 0;
        while seen < writes {
            let event = next_line(&mut keeping_up).await;
            assert_eq!(event["type"], "ADDED");
            seen += 1;
        }
        keeping_up
    });
    for i in 0..writes {
        store
            .kv
            .put(&format!("/registry/pods/a/p{i:05}"), pod(&format!("p{i:05}")), 0)
            .await
            .unwrap();
    }
    let keeping_up = reader.await.unwrap();

    // It was closed once full: what it queued, then the end (its client resumes
    // from its last resourceVersion).
    let mut queued = 0;
    while tokio::time::timeout(Duration::from_secs(20), slow.lines.recv())
        .await
        .expect("the slow watcher ends")
        .is_some()
    {
        queued += 1;
    }
    assert_eq!(queued, QUEUE);
    assert_eq!(cache.watchers(), 1);
    drop(keeping_up);

    // A watcher whose client went away is forgotten by the next progress at the latest.
    let mut progress_or_write = 0;
    while cache.watchers() > 0 {
        store.kv.put("/registry/pods/a/tick", pod("tick"), 0).await.unwrap();
        progress_or_write += 1;
        assert!(progress_or_write < 1000, "the closed watcher is never forgotten");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_before_the_cache_is_not_served_from_it() {
    let store = store().await;
    let first = store.kv.put("/registry/pods/a/p", pod("p"), 0).await.unwrap();
    let caches = Caches::default();
    let cache = caches.of(&store.kv, pods());
    let (listed, at) = cache.list("/registry/pods/", None, 0).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(at >= first);
    assert_eq!(
        cache
            .subscribe(spec("/registry/pods/"), From::After(first - 1))
            .await
            .err(),
        Some(Unserved::ByStore),
        "a revision from before the cache was filled is the store's to serve"
    );
    let mut from_list = cache.subscribe(spec("/registry/pods/"), From::After(at)).await.unwrap();
    store.kv.put("/registry/pods/a/p", pod("p"), 0).await.unwrap();
    let event = next_line(&mut from_list).await;
    assert_eq!(event["type"], "MODIFIED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_transactions_changes_reach_a_watcher_together() {
    let store = store().await;
    let caches = Caches::default();
    let cache = caches.of(&store.kv, pods());
    let mut watcher = cache.subscribe(spec("/registry/pods/"), From::Any).await.unwrap();
    let together = berth_client::kv::Together {
        conditions: vec![("/registry/pods/a/x".into(), 0), ("/registry/pods/a/y".into(), 0)],
        puts: vec![
            ("/registry/pods/a/x".into(), pod("x")),
            ("/registry/pods/a/y".into(), pod("y")),
        ],
        deletes: Vec::new(),
    };
    store.kv.write_together(&together).await.unwrap().unwrap();
    let message = next_message(&mut watcher).await;
    let names: Vec<String> = message
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let event: serde_json::Value = serde_json::from_slice(line).unwrap();
            event["object"]["metadata"]["name"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(names, ["x", "y"], "both changes of the revision in one message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_the_window_dropped_is_too_old_and_one_before_the_cache_is_the_stores() {
    let store = store().await;
    let before = store.kv.put("/registry/pods/a/p", pod("p"), 0).await.unwrap();
    let caches = Caches::with_window(3);
    let cache = caches.of(&store.kv, pods());
    let (_, listed) = cache.list("/registry/pods/", None, 0).await.unwrap();
    let mut watcher = cache
        .subscribe(spec("/registry/pods/"), From::After(listed))
        .await
        .unwrap();
    // Five changes through a window of three: the first two are dropped.
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(
            store
                .kv
                .put(&format!("/registry/pods/a/q{i}"), pod("q"), 0)
                .await
                .unwrap(),
        );
    }
    for _ in 0..5 {
        next_line(&mut watcher).await;
    }
    let from_dropped = cache.subscribe(spec("/registry/pods/"), From::After(written[0])).await;
    assert_eq!(
        from_dropped.err(),
        Some(Unserved::TooOld { oldest: written[1] }),
        "the change after it is gone from the window"
    );
    assert!(
        cache
            .subscribe(spec("/registry/pods/"), From::After(written[1]))
            .await
            .is_ok(),
        "every change after the oldest kept is still held"
    );
    // A revision from before the cache's list is still older than the window.
    let from_before = cache.subscribe(spec("/registry/pods/"), From::After(before)).await;
    assert!(matches!(from_before.err(), Some(Unserved::TooOld { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_at_a_revision_waits_for_the_cache_to_reach_it() {
    let store = store().await;
    store.kv.put("/registry/pods/a/p", pod("p"), 0).await.unwrap();
    let caches = Caches::default();
    let cache = caches.of(&store.kv, pods());
    cache.list("/registry/pods/", None, 0).await.unwrap();
    // A write elsewhere moves the store's revision; nothing under the prefix
    // changes, so only a progress notification tells the cache it is current.
    let elsewhere = store.kv.put("/registry/services/a/s", b"{}".to_vec(), 0).await.unwrap();
    let current = store.kv.current_revision("/registry/pods/").await.unwrap();
    assert_eq!(current, elsewhere);
    let (listed, at) = cache
        .list("/registry/pods/", None, current)
        .await
        .expect("caught up in time");
    assert_eq!(listed.len(), 1);
    assert!(at >= current, "served at {at}, asked for {current} or later");
    // A revision the store has not reached: the cache does not serve it.
    assert!(cache.list("/registry/pods/", None, current + 100).await.is_none());
}
