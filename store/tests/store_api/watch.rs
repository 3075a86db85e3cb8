//! Watches: every change once and in order, from history or live, however slow the
//! watcher.

use std::time::Duration;

use etcd_client::{EventType, Txn, TxnOp, WatchOptions};

use super::common::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_deliver_every_change_in_order() {
    let cluster = start(3, &[]).await;
    let mut writer = cluster.client_of(0).await;
    let mut watcher_client = cluster.client_of(2).await;

    let start = writer.put("w/a", "1", None).await.unwrap().header().unwrap().revision();
    writer.put("w/b", "2", None).await.unwrap();
    writer.put("other", "x", None).await.unwrap();
    writer.delete("w/a", None).await.unwrap();

    // Replay from history with prev_kv, then live events.
    let mut stream = watcher_client
        .watch(
            "w/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(start)
                    .with_prev_key(),
            ),
        )
        .await
        .unwrap();
    let created = stream.message().await.unwrap().unwrap();
    assert!(created.created());
    writer.put("w/c", "3", None).await.unwrap();
    let txn = Txn::new().and_then([TxnOp::put("w/d", "4", None), TxnOp::put("w/e", "5", None)]);
    writer.txn(txn).await.unwrap();
    writer.put("w/b", "2b", None).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 7 {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let revisions: Vec<i64> = resp.events().iter().map(|e| e.kv().unwrap().mod_revision()).collect();
        if resp.events().iter().any(|e| e.kv().unwrap().key() == b"w/d") {
            assert!(
                resp.events().iter().any(|e| e.kv().unwrap().key() == b"w/e"),
                "a transaction's events arrive together"
            );
        }
        for event in resp.events() {
            let kv = event.kv().unwrap();
            seen.push((
                event.event_type(),
                String::from_utf8_lossy(kv.key()).into_owned(),
                kv.mod_revision(),
                event.prev_kv().map(|p| p.value().to_vec()),
            ));
        }
        assert!(revisions.windows(2).all(|w| w[0] <= w[1]));
    }
    assert_eq!(seen[0].0, EventType::Put);
    assert_eq!(seen[0].1, "w/a");
    assert_eq!(seen[2].0, EventType::Delete);
    assert_eq!(
        seen[2].3.as_deref(),
        Some(b"1".as_slice()),
        "a delete carries the deleted value as prev_kv"
    );
    assert_eq!(seen[1].3, None, "a created key has no prev_kv");
    assert_eq!(
        (seen[6].1.as_str(), seen[6].3.as_deref()),
        ("w/b", Some(b"2".as_slice())),
        "an overwrite carries the value it replaced"
    );
    let revs: Vec<i64> = seen.iter().map(|s| s.2).collect();
    assert!(revs.windows(2).all(|w| w[0] <= w[1]), "in order: {revs:?}");
    assert!(!seen.iter().any(|s| s.1 == "other"), "only the prefix");

    // Progress: the reported revision covers everything delivered.
    stream.request_progress().await.unwrap();
    let progress = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(progress.events().is_empty());
    assert!(progress.header().unwrap().revision() >= *revs.last().unwrap());

    // NOPUT filter and cancel.
    let mut deletes = watcher_client
        .watch(
            "f",
            Some(WatchOptions::new().with_filters([etcd_client::WatchFilterType::NoPut])),
        )
        .await
        .unwrap();
    assert!(deletes.message().await.unwrap().unwrap().created());
    writer.put("f", "1", None).await.unwrap();
    writer.delete("f", None).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), deletes.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.events().len(), 1);
    assert_eq!(resp.events()[0].event_type(), EventType::Delete);
    let id = resp.watch_id();
    deletes.cancel(id).await.unwrap();
    let canceled = tokio::time::timeout(Duration::from_secs(10), deletes.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(canceled.canceled());

    // A watch on a compacted revision is cancelled with the compact revision.
    let current = writer
        .put("late", "x", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    writer.compact(current, None).await.unwrap();
    // A linearizable read makes the watcher's replica apply the compaction first.
    watcher_client.get("late", None).await.unwrap();
    let mut old = watcher_client
        .watch("w/", Some(WatchOptions::new().with_prefix().with_start_revision(start)))
        .await
        .unwrap();
    let mut compacted = None;
    for _ in 0..3 {
        let resp = tokio::time::timeout(Duration::from_secs(10), old.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if resp.canceled() {
            compacted = Some(resp.compact_revision());
            break;
        }
    }
    assert_eq!(compacted, Some(current));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_carries_many_watches_and_progress_notifications() {
    let cluster = start(1, &["--experimental-watch-progress-notify-interval", "1s"]).await;
    let mut c = cluster.client().await;
    let (mut sender, mut stream) = c.watch("a", None).await.unwrap().split();
    assert!(stream.message().await.unwrap().unwrap().created());
    sender
        .watch("b", Some(WatchOptions::new().with_progress_notify()))
        .await
        .unwrap();
    let created_b = stream.message().await.unwrap().unwrap();
    assert!(created_b.created());
    let (id_a, id_b) = (0, created_b.watch_id());
    assert_ne!(id_a, id_b);

    let rev_a = c.put("a", "1", None).await.unwrap().header().unwrap().revision();
    let rev_b = c.put("b", "2", None).await.unwrap().header().unwrap().revision();
    let mut got = Vec::new();
    let mut progress_seen = false;
    while got.len() < 2 || !progress_seen {
        let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if resp.events().is_empty() {
            // A periodic progress notification for the idle watcher b.
            if resp.watch_id() == id_b && got.len() == 2 {
                assert!(resp.header().unwrap().revision() >= rev_b);
                progress_seen = true;
            }
            continue;
        }
        for e in resp.events() {
            got.push((resp.watch_id(), e.kv().unwrap().mod_revision()));
        }
    }
    assert_eq!(got, vec![(id_a, rev_a), (id_b, rev_b)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_watcher_neither_blocks_writers_nor_misses_events() {
    let cluster = start(1, &[]).await;
    let mut c = cluster.client().await;
    // The slow watcher is another client, on its own connection.
    let mut watcher = cluster.client().await;
    let mut stream = watcher
        .watch("slow/", Some(WatchOptions::new().with_prefix()))
        .await
        .unwrap();
    assert!(stream.message().await.unwrap().unwrap().created());

    // Far more revisions than the hub keeps, and more bytes than the transport
    // buffers, while nobody reads the stream.
    const WRITES: usize = 3000;
    let value = "v".repeat(4096);
    let mut first = None;
    for i in 0..WRITES {
        let r = c.put(format!("slow/{i:05}"), value.clone(), None).await.unwrap();
        first.get_or_insert(r.header().unwrap().revision());
    }
    let first = first.unwrap();
    let mut next = first;
    while next < first + WRITES as i64 {
        let resp = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        for e in resp.events() {
            assert_eq!(e.kv().unwrap().mod_revision(), next, "no gap, no duplicate, in order");
            next += 1;
        }
    }
    assert!(
        cluster.replicas[0].log_text().contains("watcher fell behind"),
        "the test must exercise the catch-up from history"
    );
}
