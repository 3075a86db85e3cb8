//! The disk nemesis's fault is real: with `--test-fault slow-disk`, a replica whose
//! disk the nemesis slowed takes at least the injected delay to commit a write (its
//! raft log sync waits first), and a heal gives it its speed back. Were the store's
//! hook gone, the write would not wait and this test would fail.

use std::time::{Duration, Instant};

use berth_jepsen::cluster::{Cluster, ClusterSpec};
use berth_testkit::berth_binary;

/// Long enough that a healed write taking as long would mean a hung replica.
const DELAY: Duration = Duration::from_millis(2500);

async fn timed_put(client: &mut etcd_client::Client, value: &str) -> Duration {
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(30), client.put("disk/k", value, None))
        .await
        .expect("a put hung for 30 s")
        .expect("the put succeeds");
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowed_disk_delays_every_commit_until_healed() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ClusterSpec {
        nodes: 1,
        berth: berth_binary(),
        dir: dir.path().join("cluster"),
        test_fault: Some("slow-disk".into()),
        seed: 1,
        tls: None,
    };
    let mut cluster = Cluster::start(spec).await.unwrap();
    cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .expect("a leader within 30 s");
    // No client timeout: the slowed writes take longer than the workloads allow.
    let mut client = etcd_client::Client::connect(cluster.endpoints(), None)
        .await
        .expect("the replica answers");
    timed_put(&mut client, "before").await;

    cluster.slow_disk(0, DELAY).unwrap();
    let took = timed_put(&mut client, "slow").await;
    assert!(
        took >= DELAY,
        "a write committed in {took:?} on a disk slowed by {DELAY:?}"
    );

    cluster.heal_disks().unwrap();
    // After the heal at most one sync that had already read the delay still waits.
    timed_put(&mut client, "healed-1").await;
    let took = timed_put(&mut client, "healed-2").await;
    assert!(took < DELAY, "a write still took {took:?} after the disk was healed");
    let resp = client.get("disk/k", None).await.unwrap();
    assert_eq!(resp.kvs()[0].value(), b"healed-2");
    cluster.stop_all();
}
