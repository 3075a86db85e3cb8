//! The backend quota: a write that would pass `--quota-backend-bytes` is refused with
//! etcd's error and raises NOSPACE, which stays, cluster-wide and across restarts,
//! until an operator disarms it.

use berth_testkit::{Cluster, ClusterSpec, eventually};
use etcd_client::Client;

use crate::common;
use crate::health::{alarm_line, alarm_list, endpoint_status, health, member_id, with_metrics_urls};

const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";
const QUOTA: &str = "1000000";
const VALUE_BYTES: usize = 60_000;

fn with_quota(cluster: &mut Cluster, quota: &str) {
    for replica in &mut cluster.replicas {
        replica.args.retain(|arg| !arg.starts_with("--quota-backend-bytes"));
        replica.args.push(format!("--quota-backend-bytes={quota}"));
    }
}

/// Puts big values until the quota refuses one; returns the keys written.
async fn fill_to_quota(client: &mut Client) -> Vec<String> {
    let value = vec![b'v'; VALUE_BYTES];
    let mut written = Vec::new();
    for i in 0..500 {
        let key = format!("big/{i:04}");
        match client.put(key.clone(), value.clone(), None).await {
            Ok(_) => written.push(key),
            Err(e) => {
                assert!(e.to_string().contains(NO_SPACE), "a put failed with {e}");
                return written;
            }
        }
    }
    panic!("500 puts of {VALUE_BYTES} bytes never passed a quota of {QUOTA} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_raises_nospace_which_stays_until_disarmed() {
    let mut cluster = Cluster::new(ClusterSpec::berth_store(3)).unwrap();
    let metrics = with_metrics_urls(&mut cluster);
    with_quota(&mut cluster, QUOTA);
    cluster.start_all().unwrap();
    let leader = cluster.wait_for_leader().await.unwrap();
    let follower = (leader + 1) % 3;
    let endpoints = cluster.endpoints();
    assert!(
        alarm_list(&endpoints[0]).is_empty(),
        "no alarm before the quota is reached"
    );

    let mut client = cluster.client_of(leader).await;
    let written = fill_to_quota(&mut client).await;
    assert!(!written.is_empty(), "the first put already passed the quota");
    let leader_id = member_id(&endpoints[leader]).await;
    let nospace = alarm_line(leader_id, "NOSPACE");

    // The alarm is the cluster's: every member lists it, reports it and refuses to add
    // data, whichever member the request reaches.
    for (index, endpoint) in endpoints.iter().enumerate() {
        eventually("every member to list the alarm", || {
            let listed = alarm_list(endpoint).contains(&nospace);
            async move { listed.then_some(()) }
        })
        .await;
        let status = endpoint_status(endpoint);
        assert!(
            status.contains("alarm:NOSPACE"),
            "endpoint status of {endpoint}: {status}"
        );
        let (code, body) = health(metrics[index]);
        assert_eq!(code, 503, "{body}");
        assert!(
            body.contains("\"health\":\"false\"") && body.contains("NOSPACE"),
            "{body}"
        );
    }
    let mut other = cluster.client_of(follower).await;
    let refused = other.put("small", "v", None).await.unwrap_err();
    assert!(refused.to_string().contains(NO_SPACE), "{refused}");
    let lease = other.lease_grant(60, None).await.unwrap_err();
    assert!(lease.to_string().contains(NO_SPACE), "a lease grant: {lease}");

    // What frees space, and reads, are served: etcd's way out is to delete, compact,
    // defragment and disarm.
    let first = &written[0];
    assert_eq!(other.get(first.as_str(), None).await.unwrap().kvs().len(), 1);
    other
        .delete("big/", Some(etcd_client::DeleteOptions::new().with_prefix()))
        .await
        .unwrap();
    let revision = other.get("big/", None).await.unwrap().header().unwrap().revision();
    common::stdout(&common::etcdctl(&endpoints, &["compact", &revision.to_string()]));
    common::stdout(&common::etcdctl(&endpoints, &["defrag"]));

    // berth's database does not shrink at once after a compaction (etcd's does after a
    // defragmentation), so the operator raises the quota, with a restart. The alarm
    // was stored with the data: it is still raised, and still refuses writes.
    with_quota(&mut cluster, "0");
    for index in 0..3 {
        cluster.stop(index);
    }
    cluster.start_all().unwrap();
    cluster.wait_for_leader().await.unwrap();
    assert!(
        alarm_list(&endpoints[follower]).contains(&nospace),
        "the alarm did not survive a restart"
    );
    let mut client = cluster.client().await;
    let refused = client.put("after-restart", "v", None).await.unwrap_err();
    assert!(refused.to_string().contains(NO_SPACE), "{refused}");

    let disarmed = common::stdout(&common::etcdctl(&endpoints, &["alarm", "disarm"]));
    assert!(disarmed.contains(&nospace), "etcdctl alarm disarm printed {disarmed:?}");
    for endpoint in &endpoints {
        assert!(alarm_list(endpoint).is_empty(), "{endpoint} still lists an alarm");
    }
    client.put("after-disarm", "v", None).await.unwrap();
    let (code, body) = health(metrics[follower]);
    assert_eq!(code, 200, "{body}");
    let stored = client.get("after-disarm", None).await.unwrap();
    assert_eq!(stored.kvs().len(), 1);
}
