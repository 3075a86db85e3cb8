//! The leader's periodic corruption check (`--experimental-corrupt-check-time`): it
//! raises CORRUPT for a member whose data differs, and then the cluster refuses
//! requests with etcd's error.
//!
//! The replicas are made to differ by editing a stopped follower's database, as a
//! disk's bit rot or a bug would: one stored revision record is removed, below the
//! applied log id, so the restarted follower does not write it again.

use berth_store::backend::{Backend, SledBackend, Tree, WriteBatch};
use berth_testkit::{Cluster, ClusterSpec, eventually};

use crate::common;
use crate::health::{alarm_line, alarm_list, health, member_id, with_metrics_urls};

const CORRUPT: &str = "etcdserver: corrupt cluster";
/// The first byte of a revision record's key in the database's `State` tree.
const REVISION_KEY_PREFIX: u8 = b'r';

/// Removes the newest revision record from the database in `data_dir`; returns its key.
fn remove_newest_revision(data_dir: &std::path::Path) -> Vec<u8> {
    let db = SledBackend::open(&data_dir.join("member").join("db")).expect("opening the stopped replica's database");
    let (key, _) = db
        .last(Tree::State, &[REVISION_KEY_PREFIX], Some(&[REVISION_KEY_PREFIX + 1]))
        .unwrap()
        .expect("the database holds revisions");
    let mut batch = WriteBatch::new();
    batch.delete(key.clone());
    db.write(Tree::State, batch).unwrap();
    db.flush().unwrap();
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_check_raises_corrupt_for_a_member_whose_data_differs() {
    let spec = ClusterSpec::berth_store(3).args(["--experimental-corrupt-check-time", "300ms"]);
    let mut cluster = Cluster::new(spec).unwrap();
    let metrics = with_metrics_urls(&mut cluster);
    cluster.start_all().unwrap();
    let leader = cluster.wait_for_leader().await.unwrap();
    let follower = (leader + 1) % 3;
    let endpoints = cluster.endpoints();
    let mut client = cluster.client().await;
    for i in 0..20 {
        client.put(format!("k/{i:02}"), format!("v{i}"), None).await.unwrap();
    }
    // Replicas that agree raise nothing, over several checks.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(
        alarm_list(&endpoints[0]).is_empty(),
        "an alarm among replicas that agree"
    );

    let follower_id = member_id(&endpoints[follower]).await;
    cluster.stop(follower);
    let removed = remove_newest_revision(&cluster.replicas[follower].data_dir);
    eprintln!("removed the record {removed:02x?} from the stopped follower");
    cluster.start_replica(follower).unwrap();

    let corrupt = alarm_line(follower_id, "CORRUPT");
    eventually("the corruption check to raise CORRUPT for the edited member", || {
        let listed = alarm_list(&endpoints[leader]).contains(&corrupt);
        async move { listed.then_some(()) }
    })
    .await;
    assert_eq!(
        alarm_list(&endpoints[leader]),
        vec![corrupt.clone()],
        "only the edited member is corrupt"
    );

    // Requests are refused, on every member, with etcd's error; reads are served.
    for (index, endpoint) in endpoints.iter().enumerate() {
        let mut client = common::connect(std::slice::from_ref(endpoint)).await;
        let refused = client.put("after", "v", None).await.unwrap_err();
        assert!(refused.to_string().contains(CORRUPT), "{endpoint}: {refused}");
        let refused = client.delete("k/00", None).await.unwrap_err();
        assert!(refused.to_string().contains(CORRUPT), "{endpoint}: {refused}");
        assert_eq!(client.get("k/01", None).await.unwrap().kvs().len(), 1);
        let (code, body) = health(metrics[index]);
        assert_eq!(code, 503, "{body}");
        assert!(body.contains("CORRUPT"), "{body}");
    }
    let status = common::stdout(&common::etcdctl(&endpoints, &["endpoint", "status", "-w", "json"]));
    assert!(status.contains("alarm:CORRUPT"), "{status}");
}
