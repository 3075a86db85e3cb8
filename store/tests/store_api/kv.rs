//! Reads, writes, transactions and compaction: etcd's semantics and etcd's errors.

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, SortOrder, SortTarget, Txn, TxnOp};

use super::common::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_semantics_match_etcd() {
    let cluster = start(3, &[]).await;
    let mut c = cluster.client_of(1).await;

    let first = c.put("k1", "v1", None).await.unwrap();
    let rev1 = first.header().unwrap().revision();
    let second = c
        .put("k1", "v2", Some(PutOptions::new().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(second.header().unwrap().revision(), rev1 + 1, "one revision per write");
    assert_eq!(second.prev_key().unwrap().value(), b"v1");
    for k in ["k2", "k3", "k4"] {
        c.put(k, k, None).await.unwrap();
    }

    let kv = c.get("k1", None).await.unwrap();
    let kv = &kv.kvs()[0];
    assert_eq!(
        (kv.create_revision(), kv.mod_revision(), kv.version()),
        (rev1, rev1 + 1, 2)
    );

    // Historical read.
    let old = c.get("k1", Some(GetOptions::new().with_revision(rev1))).await.unwrap();
    assert_eq!(old.kvs()[0].value(), b"v1");

    // Prefix with limit: count is the full count, more says there is more.
    let page = c
        .get("k", Some(GetOptions::new().with_prefix().with_limit(2)))
        .await
        .unwrap();
    assert_eq!(page.kvs().len(), 2);
    assert_eq!(page.count(), 4);
    assert!(page.more());

    let sorted = c
        .get(
            "k",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Key, SortOrder::Descend),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<&[u8]> = sorted.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(keys, [b"k4", b"k3", b"k2", b"k1"]);

    let newer = c
        .get(
            "k",
            Some(
                GetOptions::new()
                    .with_prefix()
                    .with_min_mod_revision(rev1 + 2)
                    .with_max_create_revision(rev1 + 3),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<&[u8]> = newer.kvs().iter().map(|kv| kv.key()).collect();
    assert_eq!(keys, [b"k2", b"k3"], "filters on mod and create revision");
    let from = c.get("k3", Some(GetOptions::new().with_from_key())).await.unwrap();
    assert_eq!(from.count(), 2);
    let count_only = c
        .get("k", Some(GetOptions::new().with_prefix().with_count_only()))
        .await
        .unwrap();
    assert_eq!((count_only.count(), count_only.kvs().len()), (4, 0));
    let keys_only = c.get("k2", Some(GetOptions::new().with_keys_only())).await.unwrap();
    assert!(keys_only.kvs()[0].value().is_empty());
    let serializable = c.get("k2", Some(GetOptions::new().with_serializable())).await.unwrap();
    assert_eq!(serializable.kvs()[0].value(), b"k2");

    // Txn: compares on value, version, create and mod revision; both branches.
    let txn = Txn::new()
        .when([
            Compare::value("k1", CompareOp::Equal, "v2"),
            Compare::version("k1", CompareOp::Equal, 2),
            Compare::create_revision("k1", CompareOp::Equal, rev1),
            Compare::mod_revision("k1", CompareOp::Greater, rev1),
        ])
        .and_then([TxnOp::put("k1", "v3", None), TxnOp::get("k1", None)])
        .or_else([TxnOp::put("failed", "yes", None)]);
    let resp = c.txn(txn).await.unwrap();
    assert!(resp.succeeded());
    let read = match &resp.op_responses()[1] {
        etcd_client::TxnOpResponse::Get(get) => get.kvs()[0].value().to_vec(),
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(read, b"v3", "a read in a txn sees the txn's own write");
    let missing = Txn::new()
        .when([Compare::value("absent", CompareOp::Equal, "x")])
        .and_then([TxnOp::put("never", "x", None)])
        .or_else([TxnOp::put("else", "x", None)]);
    assert!(!c.txn(missing).await.unwrap().succeeded());
    assert_eq!(c.get("else", None).await.unwrap().count(), 1);
    assert_eq!(c.get("never", None).await.unwrap().count(), 0);

    // Delete with prev_kv over a range.
    let del = c
        .delete("k", Some(DeleteOptions::new().with_prefix().with_prev_key()))
        .await
        .unwrap();
    assert_eq!(del.deleted(), 4);
    assert_eq!(del.prev_kvs().len(), 4);

    // Compaction: reads before it fail, reads after it work.
    let current = c.get("else", None).await.unwrap().header().unwrap().revision();
    c.compact(current - 1, None).await.unwrap();
    let err = c
        .get("k1", Some(GetOptions::new().with_revision(rev1)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("required revision has been compacted"),
        "{err}"
    );
    let err = c
        .get("k1", Some(GetOptions::new().with_revision(current + 100)))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("required revision is a future revision"),
        "{err}"
    );
    let err = c.compact(current - 2, None).await.unwrap_err();
    assert!(
        err.to_string().contains("required revision has been compacted"),
        "{err}"
    );

    // Every replica reports the same hash of the key space. A linearizable read on
    // each first makes it apply everything committed, the compaction included (a
    // compaction changes no revision, so the revision alone does not show it).
    let mut hashes = Vec::new();
    for i in 0..3 {
        let mut ci = cluster.client_of(i).await;
        ci.get("else", None).await.unwrap();
        let r = ci.hash_kv(current).await.unwrap();
        assert_eq!(r.compact_version(), current - 1, "replica {i} applied the compaction");
        hashes.push(r.hash());
    }
    assert!(hashes.iter().all(|h| *h == hashes[0]), "replicas diverge: {hashes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_etcds_errors_and_change_nothing() {
    let cluster = start(3, &[]).await;
    let mut c = cluster.client().await;
    c.put("keep", "me", None).await.unwrap();
    let before = c.get("keep", None).await.unwrap().header().unwrap().revision();

    let err = c.put("", "v", None).await.unwrap_err().to_string();
    assert!(err.contains("key is not provided"), "{err}");

    let too_many = Txn::new().and_then(
        (0..129)
            .map(|i| TxnOp::put(format!("t{i}"), "v", None))
            .collect::<Vec<_>>(),
    );
    let err = c.txn(too_many).await.unwrap_err().to_string();
    assert!(err.contains("too many operations in txn request"), "{err}");

    let duplicate = Txn::new().and_then([TxnOp::put("d", "1", None), TxnOp::put("d", "2", None)]);
    let err = c.txn(duplicate).await.unwrap_err().to_string();
    assert!(err.contains("duplicate key given in txn request"), "{err}");

    // Over --max-request-bytes (1.5 MiB): etcd's own error.
    let big = vec![b'x'; 1600 * 1024];
    let err = c.put("big", big, None).await.unwrap_err().to_string();
    assert!(err.contains("etcdserver: request is too large"), "{err}");
    // Past the gRPC limit as well: refused by the transport, as etcd's is.
    let huge = vec![b'x'; 3 * 1024 * 1024];
    assert!(c.put("huge", huge, None).await.is_err());

    let err = c
        .put("leased", "v", Some(PutOptions::new().with_lease(0x1234)))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("requested lease not found"), "{err}");

    let err = c.lease_grant(9_000_000_001, None).await.unwrap_err().to_string();
    assert!(err.contains("too large lease TTL"), "{err}");

    let err = c
        .put("x", "", Some(PutOptions::new().with_ignore_value()))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("key not found"), "{err}");

    // Nothing above wrote anything, and the store still serves.
    let after = c.get("keep", None).await.unwrap();
    assert_eq!(after.header().unwrap().revision(), before);
    assert_eq!(after.kvs()[0].value(), b"me");
    c.put("still", "serving", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_reads_are_linearizable() {
    let mut cluster = start(3, &[]).await;
    let leader = cluster.wait_for_leader().await.unwrap();
    let follower = (leader + 1) % 3;
    let mut to_leader = cluster.client_of(leader).await;
    let mut to_follower = cluster.client_of(follower).await;
    for i in 0..50 {
        let value = format!("v{i}");
        to_leader.put("register", value.clone(), None).await.unwrap();
        let read = to_follower.get("register", None).await.unwrap();
        assert_eq!(
            read.kvs()[0].value(),
            value.as_bytes(),
            "a read after an acknowledged write sees it"
        );
    }
}
