//! The group commit against a real store. The tests run on one thread, so every
//! write queued before the first await is in the queue when the group's task first
//! runs: they go in as few transactions as the bounds allow.

use std::collections::BTreeSet;

use super::super::{Fence, KvError};

async fn created(kv: &super::Kv, key: &str) -> i64 {
    kv.create(key, b"0".to_vec(), 0, None).await.unwrap()
}

#[tokio::test]
async fn independent_writes_go_in_few_transactions_and_each_lands() {
    let t = crate::testing::store().await;
    let kv = &t.kv;
    let node = created(kv, "/registry/minions/n").await;
    let mut keys = Vec::new();
    for i in 0..150 {
        let key = format!("/registry/pods/default/p{i}");
        keys.push((key.clone(), created(kv, &key).await));
    }
    let group = kv.group();
    let pending: Vec<_> = keys
        .iter()
        .map(|(key, rev)| group.update_if(key, b"bound".to_vec(), *rev, &[("/registry/minions/n", node)], None))
        .collect();
    let mut revisions = BTreeSet::new();
    for outcome in futures::future::join_all(pending).await {
        revisions.insert(outcome.unwrap());
    }
    // Two compares a write: 64 writes a transaction at most, so 3 of them.
    assert_eq!(revisions.len(), 3, "{revisions:?}");
    for (key, _) in &keys {
        assert_eq!(kv.get(key).await.unwrap().unwrap().value, b"bound");
    }
}

#[tokio::test]
async fn a_write_that_conflicts_fails_alone_and_the_others_land_together() {
    let t = crate::testing::store().await;
    let kv = &t.kv;
    let a = created(kv, "/a").await;
    let b = created(kv, "/b").await;
    let c = created(kv, "/c").await;
    let d = created(kv, "/d").await;
    let node = created(kv, "/node").await;
    let b_now = kv.update("/b", b"changed".to_vec(), b, None).await.unwrap();
    let node_now = kv.update("/node", b"changed".to_vec(), node, None).await.unwrap();
    kv.delete("/d", None, None).await.unwrap();

    let group = kv.group();
    let writes = [
        group.update_if("/a", b"1".to_vec(), a, &[], None),
        group.update_if("/b", b"1".to_vec(), b, &[], None),
        group.update_if("/c", b"1".to_vec(), c, &[("/node", node)], None),
        group.update_if("/d", b"1".to_vec(), d, &[], None),
        group.update_if("/e", b"1".to_vec(), 0, &[("/missing", 0)], None),
        group.update_if("/a2", b"1".to_vec(), 0, &[("/node", node_now)], None),
    ];
    let [wa, wb, wc, wd, we, wa2] = futures::future::join_all(writes).await.try_into().unwrap();
    assert_eq!(wb, Err(KvError::Conflict { current: b_now }));
    assert_eq!(wc, Err(KvError::Conflict { current: node_now }), "the also key changed");
    assert_eq!(wd, Err(KvError::NotFound));
    let landed = wa.unwrap();
    assert_eq!(
        we,
        Ok(landed),
        "a create and an absent also key, in the same retried batch"
    );
    assert_eq!(wa2, Ok(landed));
    assert_eq!(kv.get("/a").await.unwrap().unwrap().value, b"1");
    assert_eq!(kv.get("/b").await.unwrap().unwrap().value, b"changed");
    assert_eq!(kv.get("/c").await.unwrap().unwrap().value, b"0");
    assert_eq!(kv.get("/d").await.unwrap(), None);
    assert_eq!(kv.get("/e").await.unwrap().unwrap().value, b"1");
}

#[tokio::test]
async fn writes_to_one_key_are_made_in_turn() {
    let t = crate::testing::store().await;
    let kv = &t.kv;
    let k = created(kv, "/k").await;
    let group = kv.group();
    let first = group.update_if("/k", b"1".to_vec(), k, &[], None);
    let second = group.update_if("/k", b"2".to_vec(), k, &[], None);
    // A write comparing a key another writes waits for it too.
    let reader = group.update_if("/r", b"1".to_vec(), 0, &[("/k", k)], None);
    let first = first.await.unwrap();
    assert_eq!(second.await, Err(KvError::Conflict { current: first }));
    assert_eq!(reader.await, Err(KvError::Conflict { current: first }));
    assert_eq!(kv.get("/k").await.unwrap().unwrap().value, b"1");
}

#[tokio::test]
async fn a_lost_fence_fails_every_write_it_guards_and_no_other() {
    let t = crate::testing::store().await;
    let kv = &t.kv;
    let leader = kv.put("/berth/leader", b"term 1".to_vec(), 0).await.unwrap();
    let fence = Fence {
        key: "/berth/leader".into(),
        mod_revision: leader,
    };
    let a = created(kv, "/a").await;
    let b = created(kv, "/b").await;
    let group = kv.group();
    assert!(group.update_if("/a", b"1".to_vec(), a, &[], Some(&fence)).await.is_ok());
    kv.put("/berth/leader", b"term 2".to_vec(), 0).await.unwrap();
    let a = kv.get("/a").await.unwrap().unwrap().mod_revision;
    let writes = [
        group.update_if("/a", b"2".to_vec(), a, &[], Some(&fence)),
        group.update_if("/b", b"2".to_vec(), b, &[], Some(&fence)),
        group.update_if("/b", b"3".to_vec(), 12345, &[], Some(&fence)),
        group.update_if("/c", b"2".to_vec(), 0, &[], None),
    ];
    let outcomes = futures::future::join_all(writes).await;
    assert_eq!(
        outcomes[..3],
        [Err(KvError::Fenced), Err(KvError::Fenced), Err(KvError::Fenced)]
    );
    assert!(outcomes[3].is_ok(), "{outcomes:?}");
    assert_eq!(kv.get("/a").await.unwrap().unwrap().value, b"1");
    assert_eq!(kv.get("/b").await.unwrap().unwrap().value, b"0");
}

#[tokio::test]
async fn creates_land_together_on_their_lease_and_a_taken_key_is_refused_alone() {
    let t = crate::testing::store().await;
    let kv = &t.kv;
    created(kv, "/events/taken").await;
    let lease = kv.grant(600).await.unwrap();
    let group = kv.group();
    let writes: Vec<_> = (0..5)
        .map(|i| group.create(&format!("/events/e{i}"), b"new".to_vec(), lease))
        .chain([group.create("/events/taken", b"new".to_vec(), lease)])
        .collect();
    let outcomes = futures::future::join_all(writes).await;
    assert!(matches!(outcomes[5], Err(KvError::AlreadyExists)), "{:?}", outcomes[5]);
    let revisions: BTreeSet<i64> = outcomes[..5].iter().map(|o| *o.as_ref().unwrap()).collect();
    assert_eq!(revisions.len(), 1, "the creates land in one transaction");
    for i in 0..5 {
        let record = kv.get(&format!("/events/e{i}")).await.unwrap().unwrap();
        assert_eq!((record.value.as_slice(), record.lease), (&b"new"[..], lease));
    }
    assert_eq!(kv.get("/events/taken").await.unwrap().unwrap().value, b"0");
    kv.revoke(lease).await.unwrap();
    assert!(
        kv.get("/events/e0").await.unwrap().is_none(),
        "they go with their lease"
    );
}
