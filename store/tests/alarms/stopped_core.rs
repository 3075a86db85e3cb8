//! Never a zombie: a replica whose Raft core stops hears of it, so that `berth store`
//! can exit non-zero (see `role::wait_for_signal_or_failure`) instead of answering on.

use std::time::Duration;

use berth_store::{Store, StoreConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_core_that_stops_is_noticed() {
    let dir = tempfile::tempdir().unwrap();
    // Ports are only used to derive IDs: nothing listens on them here.
    let store = Store::open(StoreConfig::single("stops", dir.path(), 1, 2))
        .await
        .unwrap();
    let watcher = tokio::spawn({
        let store = store.clone();
        async move { store.raft_stopped().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!watcher.is_finished(), "a running core was reported stopped");

    store.raft().shutdown().await.unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(30), watcher)
        .await
        .expect("a stopped core goes unnoticed")
        .unwrap();
    assert!(!reason.is_empty());
    eprintln!("noticed: {reason}");
}
