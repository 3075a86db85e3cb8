use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_fences_and_watches_against_a_real_store() {
    let t = crate::testing::store().await;
    let kv = &t.kv;
    let rev = kv
        .create("/registry/pods/default/a", b"1".to_vec(), 0, None)
        .await
        .unwrap();
    assert_eq!(
        kv.create("/registry/pods/default/a", b"2".to_vec(), 0, None).await,
        Err(KvError::AlreadyExists)
    );
    let rev2 = kv
        .update("/registry/pods/default/a", b"2".to_vec(), rev, None)
        .await
        .unwrap();
    assert_eq!(
        kv.update("/registry/pods/default/a", b"3".to_vec(), rev, None).await,
        Err(KvError::Conflict { current: rev2 })
    );
    assert_eq!(
        kv.update("/registry/pods/default/b", b"3".to_vec(), rev, None).await,
        Err(KvError::NotFound)
    );

    let leader = kv.put("/berth/leader", b"term 1".to_vec(), 0).await.unwrap();
    let fence = Fence {
        key: "/berth/leader".into(),
        mod_revision: leader,
    };
    kv.create("/registry/pods/default/c", b"1".to_vec(), 0, Some(&fence))
        .await
        .unwrap();
    kv.put("/berth/leader", b"term 2".to_vec(), 0).await.unwrap();
    assert_eq!(
        kv.create("/registry/pods/default/d", b"1".to_vec(), 0, Some(&fence))
            .await,
        Err(KvError::Fenced)
    );
    assert_eq!(kv.get("/registry/pods/default/d").await.unwrap(), None);

    let (items, at) = kv.list("/registry/pods/").await.unwrap();
    assert_eq!(items.len(), 2);
    let mut watch = kv.watch("/registry/pods/", at + 1).await.unwrap();
    let deleted = kv.delete("/registry/pods/default/a", None, None).await.unwrap();
    assert_eq!(deleted.value, b"2");
    // Progress notifications (empty batches) may come first.
    let events = loop {
        let (_, events) = watch.next().await.unwrap().unwrap();
        if !events.is_empty() {
            break events;
        }
    };
    assert!(
        matches!(&events[..], [Event::Delete { prev, .. }] if prev.value == b"2"),
        "{events:?}"
    );
    assert_eq!(
        kv.delete("/registry/pods/default/a", None, None).await,
        Err(KvError::NotFound)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn value_less_puts_and_multi_key_updates() {
    let t = crate::testing::store().await;
    let kv = &t.kv;
    assert_eq!(
        kv.put_if_value_less("/r", b"5", b"5 x".to_vec()).await,
        Err(KvError::NotFound)
    );
    let at = kv.put("/r", b"3 a".to_vec(), 0).await.unwrap();
    let put = kv.put_if_value_less("/r", b"5", b"5 b".to_vec()).await.unwrap();
    assert!(put > at);
    assert_eq!(
        kv.put_if_value_less("/r", b"5", b"5 c".to_vec()).await,
        Err(KvError::Conflict { current: put }),
        "\"5 b\" does not sort before \"5\""
    );
    assert_eq!(kv.get("/r").await.unwrap().unwrap().value, b"5 b");

    let pod = kv.put("/pod", b"1".to_vec(), 0).await.unwrap();
    let node = kv.put("/node", b"1".to_vec(), 0).await.unwrap();
    let fence = Fence {
        key: "/r".into(),
        mod_revision: put,
    };
    let bound = kv
        .update_if(
            "/pod",
            b"2".to_vec(),
            pod,
            &[("/node", node), ("/absent", 0)],
            Some(&fence),
        )
        .await
        .unwrap();
    let node2 = kv.put("/node", b"2".to_vec(), 0).await.unwrap();
    assert_eq!(
        kv.update_if("/pod", b"3".to_vec(), bound, &[("/node", node)], Some(&fence))
            .await,
        Err(KvError::Conflict { current: node2 }),
        "the other key changed"
    );
    assert_eq!(
        kv.update_if("/pod", b"3".to_vec(), pod, &[("/node", node2)], None)
            .await,
        Err(KvError::Conflict { current: bound })
    );
    assert_eq!(
        kv.update_if("/gone", b"3".to_vec(), 1, &[], None).await,
        Err(KvError::NotFound)
    );
    kv.put("/r", b"6 z".to_vec(), 0).await.unwrap();
    assert_eq!(
        kv.update_if("/pod", b"3".to_vec(), bound, &[("/node", node2)], Some(&fence))
            .await,
        Err(KvError::Fenced)
    );
    assert_eq!(kv.get("/pod").await.unwrap().unwrap().value, b"2");
}

#[test]
fn prefix_ends() {
    assert_eq!(prefix_end(b"/registry/pods/"), b"/registry/pods0".to_vec());
    assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    assert_eq!(prefix_end(b"\xff"), vec![0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_are_read_in_pages_at_one_revision() {
    let t = crate::testing::store().await;
    let kv = &t.kv;
    // More keys than one page holds, written concurrently (the store batches them).
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..(LIST_PAGE + 20) {
        let kv = kv.clone();
        writes.spawn(async move { kv.put(&format!("/many/{i:04}"), b"v".to_vec(), 0).await.unwrap() });
    }
    writes.join_all().await;
    kv.put("/manyx", b"outside".to_vec(), 0).await.unwrap();
    let (records, revision) = kv.list("/many/").await.unwrap();
    let keys: Vec<String> = records.iter().map(|r| r.key.clone()).collect();
    let expected: Vec<String> = (0..(LIST_PAGE + 20)).map(|i| format!("/many/{i:04}")).collect();
    assert_eq!(keys, expected);

    // A page, then changes, then the next page at the first one's revision: the
    // changes are not in it.
    let first = kv.list_page("/many/", "/many/", 0, 10).await.unwrap();
    assert_eq!(first.records.len(), 10);
    assert!(first.more);
    assert_eq!(first.count, (LIST_PAGE + 20) as i64);
    assert!(first.revision >= revision);
    kv.delete("/many/0010", None, None).await.unwrap();
    kv.put("/many/0011", b"changed".to_vec(), 0).await.unwrap();
    let from = format!("{}\0", first.records[9].key);
    let second = kv.list_page("/many/", &from, first.revision, 2).await.unwrap();
    assert_eq!(second.revision, first.revision);
    assert_eq!(
        second
            .records
            .iter()
            .map(|r| (r.key.as_str(), r.value.as_slice()))
            .collect::<Vec<_>>(),
        [("/many/0010", b"v".as_slice()), ("/many/0011", b"v".as_slice())]
    );
    assert_eq!(second.count, (LIST_PAGE + 10) as i64, "the keys from `from` on");
    assert!(matches!(
        kv.list_page("/many/", "/other", 0, 1).await,
        Err(KvError::Other(_))
    ));

    // Once that revision is compacted, a read at it says so.
    let now = kv.put("/many/0012", b"changed".to_vec(), 0).await.unwrap();
    t.compact(now).await;
    assert_eq!(
        kv.list_page("/many/", &from, first.revision, 2).await,
        Err(KvError::Compacted {
            requested: first.revision,
            compacted: 0
        })
    );
    assert_eq!(
        kv.get_at("/many/0000", now + 1000).await,
        Err(KvError::FutureRevision { requested: now + 1000 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_watches_larger_than_four_mebibytes_are_read() {
    let t = crate::testing::store().await;
    let kv = &t.kv;
    // Five values of 1.2 MB, under the store's request limit: 6 MB together, more
    // than gRPC's default 4 MiB message, in one list and in one watch catch-up.
    let value = vec![b'x'; 1_200_000];
    let mut first = 0;
    for i in 0..5 {
        let revision = kv.put(&format!("/big/{i}"), value.clone(), 0).await.unwrap();
        if i == 0 {
            first = revision;
        }
    }
    let (records, _) = kv.list("/big/").await.unwrap();
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| r.value == value));
    let mut watch = kv.watch("/big/", first).await.unwrap();
    let mut seen = 0;
    while seen < 5 {
        let (_, events) = tokio::time::timeout(std::time::Duration::from_secs(20), watch.next())
            .await
            .expect("events in time")
            .expect("the watch goes on")
            .unwrap();
        seen += events.len();
    }
    assert_eq!(seen, 5);
    // One value over the store's limit is refused as such.
    assert_eq!(
        kv.put("/big/huge", vec![b'x'; 1_600_000], 0).await,
        Err(KvError::RequestTooLarge)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_makes_every_write_or_none() {
    let t = crate::testing::store().await;
    let kv = &t.kv;
    let budget = kv.create("/registry/budget", b"1".to_vec(), 0, None).await.unwrap();
    let pod = kv.create("/registry/pod", b"p".to_vec(), 0, None).await.unwrap();
    let spend = |budget: i64, pod: i64| {
        vec![
            Write::Update {
                key: "/registry/budget".into(),
                value: b"0".to_vec(),
                mod_revision: budget,
            },
            Write::Delete {
                key: "/registry/pod".into(),
                mod_revision: pod,
            },
        ]
    };
    // The pod changed since it was read: nothing is written.
    let pod_now = kv.update("/registry/pod", b"q".to_vec(), pod, None).await.unwrap();
    assert_eq!(
        kv.commit(&spend(budget, pod), None).await,
        Err(KvError::Conflict { current: pod_now })
    );
    assert_eq!(kv.get("/registry/budget").await.unwrap().unwrap().value, b"1");

    kv.commit(&spend(budget, pod_now), None).await.unwrap();
    assert_eq!(kv.get("/registry/budget").await.unwrap().unwrap().value, b"0");
    assert_eq!(kv.get("/registry/pod").await.unwrap(), None);
    // Spent once: the same writes again find the budget changed and the pod gone.
    let again = kv.commit(&spend(budget, pod_now), None).await;
    assert!(matches!(again, Err(KvError::Conflict { .. })), "{again:?}");
}

#[test]
fn an_unavailable_store_is_reported_with_what_caused_it() {
    #[derive(Debug)]
    struct Wrapped(std::io::Error);
    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error reading a body from connection")
        }
    }
    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let mut status = tonic::Status::unavailable("transport error");
    let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
    status.set_source(std::sync::Arc::new(Wrapped(reset)));
    assert_eq!(
        status_error(status).to_string(),
        "the store is unavailable: transport error: error reading a body from connection: connection reset by peer"
    );
    // A cause that only repeats the message is not said twice.
    let mut status = tonic::Status::unavailable("connection closed");
    status.set_source(std::sync::Arc::new(std::io::Error::other("connection closed")));
    assert_eq!(
        status_error(status).to_string(),
        "the store is unavailable: connection closed"
    );
    // Other errors are as the store said them.
    assert_eq!(
        status_error(tonic::Status::invalid_argument("etcdserver: bad")).to_string(),
        "store error: etcdserver: bad"
    );
}
