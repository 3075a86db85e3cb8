//! Leases: kept alive by keepalives, revoked with their keys, expired without them.

use std::time::Duration;

use berth_testkit::eventually;
use etcd_client::{EventType, PutOptions, WatchOptions};

use super::common::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_keep_keys_alive_and_expire_them() {
    let cluster = start(3, &["--election-timeout", "1000"]).await;
    let mut c = cluster.client_of(1).await;

    // Keepalive holds a 2-second lease well past its TTL (sent to a follower).
    let kept = c.lease_grant(2, None).await.unwrap().id();
    c.put("kept", "v", Some(PutOptions::new().with_lease(kept)))
        .await
        .unwrap();
    let (mut keeper, mut responses) = c.lease_keep_alive(kept).await.unwrap();
    // Revoked and expiring leases, with keys attached.
    let revoked = c.lease_grant(60, None).await.unwrap().id();
    c.put("revoked/a", "v", Some(PutOptions::new().with_lease(revoked)))
        .await
        .unwrap();
    c.put("revoked/b", "v", Some(PutOptions::new().with_lease(revoked)))
        .await
        .unwrap();
    let expiring = c.lease_grant(2, None).await.unwrap().id();
    c.put("expiring", "v", Some(PutOptions::new().with_lease(expiring)))
        .await
        .unwrap();

    let ttl = c
        .lease_time_to_live(revoked, Some(etcd_client::LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .unwrap();
    assert_eq!(ttl.granted_ttl(), 60);
    assert_eq!(ttl.keys().len(), 2);
    let chosen = c
        .lease_grant(30, Some(etcd_client::LeaseGrantOptions::new().with_id(0x7777)))
        .await
        .unwrap();
    assert_eq!(chosen.id(), 0x7777, "a client may choose the lease ID");
    let err = c
        .lease_grant(30, Some(etcd_client::LeaseGrantOptions::new().with_id(0x7777)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("lease already exists"), "{err}");
    let listed = c.leases().await.unwrap();
    assert_eq!(listed.leases().len(), 4);

    let from = c.get("revoked/a", None).await.unwrap().header().unwrap().revision();
    let mut events = c
        .watch(
            "revoked/",
            Some(WatchOptions::new().with_prefix().with_start_revision(from + 1)),
        )
        .await
        .unwrap();
    assert!(events.message().await.unwrap().unwrap().created());
    c.lease_revoke(revoked).await.unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(resp.events().len(), 2, "both keys deleted in one revision");
    assert!(resp.events().iter().all(|e| e.event_type() == EventType::Delete));

    for _ in 0..8 {
        keeper.keep_alive().await.unwrap();
        let resp = responses.message().await.unwrap().unwrap();
        assert_eq!(resp.ttl(), 2);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // 4 s have passed: the kept lease lives, the other is gone with its key.
    assert_eq!(c.get("kept", None).await.unwrap().count(), 1);
    eventually("the expiring key to be deleted", || {
        let mut c = c.clone();
        async move { (c.get("expiring", None).await.ok()?.count() == 0).then_some(()) }
    })
    .await;
    let gone = c.lease_time_to_live(expiring, None).await.unwrap();
    assert_eq!(gone.ttl(), -1);
}
