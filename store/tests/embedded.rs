//! The store used in-process, as the orchestrator uses it: one replica, no sockets.

use std::time::Duration;

use berth_proto::etcdserverpb::{LeaseGrantRequest, PutRequest, RangeRequest};
use berth_store::{Store, StoreConfig};

async fn open(dir: &std::path::Path) -> Store {
    // Ports are only used to derive IDs: nothing listens on them here.
    let store = Store::open(StoreConfig::single("embedded", dir, 1, 2)).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !store.is_leader() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a single replica must elect itself"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store
}

fn put(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_store_serves_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let first = store.put(put("a", "1")).await.unwrap();
    assert_eq!(first.header.unwrap().revision, 1);
    store.put(put("b", "2")).await.unwrap();
    let lease = store.lease_grant(LeaseGrantRequest { ttl: 600, id: 0 }).await.unwrap();
    assert!(lease.id > 0);
    let range = store
        .range(RangeRequest {
            key: b"a".to_vec(),
            range_end: b"c".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(range.count, 2);
    assert_eq!(range.header.as_ref().unwrap().revision, 2);
    store.shutdown().await;
    drop(store);

    let store = open(dir.path()).await;
    let range = store
        .range(RangeRequest {
            key: b"b".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(range.kvs[0].value, b"2");
    assert_eq!(
        range.header.unwrap().revision,
        2,
        "nothing applied twice after the restart"
    );
    assert_eq!(store.lease_leases().leases.len(), 1);
    store.shutdown().await;
}
