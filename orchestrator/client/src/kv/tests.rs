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
