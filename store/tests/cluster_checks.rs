//! Checks a cluster of real `berth store` processes makes on itself: the initial
//! corruption check (`--experimental-initial-corrupt-check`) and the strict
//! reconfiguration check (`--strict-reconfig-check`, on by default as in etcd).

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use berth_store::backend::{self, Tree, WriteBatch};
use berth_testkit::{Cluster, eventually};
use etcd_client::GetOptions;

use common::{etcdctl, start};

const INTACT: &[u8] = b"value-as-the-cluster-wrote-it";
const ALTERED: &[u8] = b"VALUE-AS-THE-CLUSTER-WROTE-IT";

/// Waits until replica `index` has applied the key `marker` (read from its own state).
async fn wait_for_key(cluster: &Cluster, index: usize, marker: &str) {
    let client = cluster.client_of(index).await;
    eventually("the replica to apply the marker", || {
        let mut client = client.clone();
        async move {
            let got = client
                .get(marker, Some(GetOptions::new().with_serializable()))
                .await
                .ok()?;
            (got.count() == 1).then_some(())
        }
    })
    .await;
}

/// Changes, in a stopped replica's database, the stored bytes of every record whose
/// value is [`INTACT`] to [`ALTERED`], as a bad disk or a hand edit would: the same
/// length, so every record still decodes, and nothing else touched. Returns how many
/// stored values changed.
fn alter_stored_values(data_dir: &std::path::Path) -> usize {
    let db = backend::open_on_disk(&data_dir.join("member").join("db")).unwrap();
    let mut batch = WriteBatch::new();
    for (key, value) in db.scan(Tree::State, &[], None, 0).unwrap() {
        if let Some(at) = value.windows(INTACT.len()).position(|w| w == INTACT) {
            let mut altered = value.clone();
            altered[at..at + ALTERED.len()].copy_from_slice(ALTERED);
            batch.put(key, altered);
        }
    }
    let altered = batch.len();
    db.write(Tree::State, batch).unwrap();
    db.flush().unwrap();
    altered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_data_changed_while_stopped_refuses_to_start() {
    let mut cluster = start(3, &["--experimental-initial-corrupt-check"]).await;
    let mut client = cluster.client().await;
    for i in 0..20 {
        client
            .put(format!("key-{i}"), format!("value-{i}"), None)
            .await
            .unwrap();
    }
    client.put("marker", INTACT, None).await.unwrap();
    for index in 0..3 {
        wait_for_key(&cluster, index, "marker").await;
    }

    // A healthy replica restarts through the check.
    cluster.stop(1);
    cluster.start_replica(1).unwrap();
    wait_for_key(&cluster, 1, "marker").await;
    let log = cluster.replicas[1].log_text();
    assert!(log.contains("initial corruption check passed"), "{log}");

    // One whose stored data changed while it was stopped does not.
    cluster.stop(2);
    assert!(
        alter_stored_values(&cluster.replicas[2].data_dir) > 0,
        "the marker is not stored"
    );
    cluster.start_replica(2).unwrap();
    let status = eventually("the altered replica to exit", || {
        let exited = cluster.reap_exited();
        async move {
            exited
                .into_iter()
                .find(|(index, _)| *index == 2)
                .map(|(_, status)| status)
        }
    })
    .await;
    assert!(!status.success(), "{status}");
    let log = cluster.replicas[2].log_text();
    assert!(log.contains("found data inconsistency with peers"), "{log}");
    assert!(log.contains("has hash"), "the message names the hashes: {log}");

    // The others still serve (once a leader is settled, if replica 2 led), with the
    // data as written.
    let client = cluster.client_of(0).await;
    let got = eventually("a linearizable read from the others", || {
        let mut client = client.clone();
        async move { client.get("marker", None).await.ok() }
    })
    .await;
    assert_eq!(got.kvs()[0].value(), INTACT);
}

/// The member IDs of replicas `indexes`, by their peer URLs.
async fn member_ids(cluster: &Cluster, client: &mut etcd_client::Client, indexes: [usize; 2]) -> [u64; 2] {
    let members = client.member_list().await.unwrap();
    indexes.map(|index| common::member_id_of(cluster, &members, index))
}

/// Three replicas with `args`; one follower (returned second) killed, and long enough
/// ago that the leader (returned first) no longer counts it as reachable; the third
/// returned is the other follower.
async fn cluster_with_a_follower_down(args: &[&str]) -> (Cluster, usize, usize, usize) {
    let mut cluster = start(3, args).await;
    let leader = cluster.wait_for_leader().await.unwrap();
    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let (down, live) = (followers[0], followers[1]);
    cluster.kill(down);
    // The leader counts a member as reachable for an election timeout (1 s) after
    // its last answer.
    tokio::time::sleep(Duration::from_secs(3)).await;
    (cluster, leader, down, live)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_that_would_lose_the_quorum_is_refused_by_default() {
    let (cluster, leader, down, live) = cluster_with_a_follower_down(&[]).await;
    let mut client = cluster.client_of(leader).await;
    let [live_id, down_id] = member_ids(&cluster, &mut client, [live, down]).await;

    // etcdctl, as an operator would run it.
    let endpoint = [cluster.replicas[leader].endpoint()];
    let refused = etcdctl(&endpoint, &["member", "remove", &format!("{live_id:x}")]);
    assert!(!refused.status.success(), "the removal succeeded");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("etcdserver: unhealthy cluster"), "{stderr}");
    let members = client.member_list().await.unwrap();
    assert_eq!(members.members().len(), 3, "nothing was removed");

    // Removing the member that is down keeps the quorum that is up: allowed.
    client.member_remove(down_id).await.unwrap();
    let members = client.member_list().await.unwrap();
    assert!(members.members().iter().all(|m| m.id() != down_id));
    client.put("after-removal", "x", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_check_the_removal_goes_ahead_and_waits_for_a_quorum() {
    let (mut cluster, leader, down, live) = cluster_with_a_follower_down(&["--strict-reconfig-check=false"]).await;
    let mut client = cluster.client_of(leader).await;
    let [live_id, _] = member_ids(&cluster, &mut client, [live, down]).await;

    // Not refused: the change is proposed, and commits only once the replica that is
    // down answers again (its joint configuration needs a quorum of the new voters).
    let removal = tokio::spawn({
        let mut client = client.clone();
        async move { client.member_remove(live_id).await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!removal.is_finished(), "the removal was answered: {:?}", removal.await);
    cluster.start_replica(down).unwrap();
    removal.await.unwrap().unwrap();
    eventually("the removed member to leave the list", || {
        let mut client = client.clone();
        async move {
            let members = client.member_list().await.ok()?;
            members.members().iter().all(|m| m.id() != live_id).then_some(())
        }
    })
    .await;
}
