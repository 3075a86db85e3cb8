//! The store used in-process, as the orchestrator uses it: one replica, no sockets.

use std::time::Duration;

use berth_proto::etcdserverpb::{
    CompactionRequest, LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    request_op,
};
use berth_store::{Store, StoreConfig, StoreError};

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
    assert_eq!(first.header.unwrap().revision, 2, "the empty store is at revision 1");
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
    assert_eq!(range.header.as_ref().unwrap().revision, 3);
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
        3,
        "nothing applied twice after the restart"
    );
    assert_eq!(store.lease_leases().leases.len(), 1);
    store.shutdown().await;
}

fn range_at(key: &str, revision: i64) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        revision,
        ..Default::default()
    }
}

/// A transaction that writes, so that it goes through the log and apply, and reads
/// `key` at `revision`.
fn writing_txn(key: &str, revision: i64) -> TxnRequest {
    TxnRequest {
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(put("x", "1"))),
            },
            RequestOp {
                request: Some(request_op::Request::RequestRange(range_at(key, revision))),
            },
        ],
        ..Default::default()
    }
}

/// Regression: the errors that apply decides used to reach the client with their
/// numbers zeroed (`Compacted { requested: 0, compacted: 0 }`), as the applied result
/// kept only a code and a text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_report_the_revisions_and_leases_they_are_about() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    for i in 1..=5 {
        store.put(put("a", &i.to_string())).await.unwrap();
    }
    store
        .compact(CompactionRequest {
            revision: 4,
            physical: true,
        })
        .await
        .unwrap();
    let compacted = StoreError::Compacted {
        requested: 2,
        compacted: 4,
    };
    assert_eq!(store.range(range_at("a", 2)).await.unwrap_err(), compacted);
    assert_eq!(store.txn(writing_txn("a", 2)).await.unwrap_err(), compacted);
    let again = CompactionRequest {
        revision: 2,
        physical: false,
    };
    assert_eq!(store.compact(again).await.unwrap_err(), compacted);

    let future = StoreError::FutureRevision { requested: 100 };
    assert_eq!(store.range(range_at("a", 100)).await.unwrap_err(), future);
    assert_eq!(store.txn(writing_txn("a", 100)).await.unwrap_err(), future);
    let ahead = CompactionRequest {
        revision: 100,
        physical: false,
    };
    assert_eq!(store.compact(ahead).await.unwrap_err(), future);

    let lease = store
        .lease_grant(LeaseGrantRequest { ttl: 600, id: 0x42 })
        .await
        .unwrap();
    assert_eq!(lease.id, 0x42);
    assert_eq!(
        store
            .lease_grant(LeaseGrantRequest { ttl: 600, id: 0x42 })
            .await
            .unwrap_err(),
        StoreError::LeaseExists { id: 0x42 }
    );
    assert_eq!(
        store.lease_revoke(LeaseRevokeRequest { id: 0x43 }).await.unwrap_err(),
        StoreError::LeaseNotFound { id: 0x43 }
    );
    let mut leased = put("b", "1");
    leased.lease = 0x44;
    assert_eq!(
        store.put(leased).await.unwrap_err(),
        StoreError::LeaseNotFound { id: 0x44 }
    );
    store.shutdown().await;
}
