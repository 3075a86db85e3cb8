//! An append that finds the disk full waits for space instead of failing (which
//! would stop the Raft core for good), reporting the disk full meanwhile. On a small
//! tmpfs, so as root only (skipped, with the reason, otherwise).

use berth_proto::etcdserverpb::PutRequest;
use openraft::RaftLogReader;

use super::*;
use crate::backend::MemoryBackend;
use crate::disk_space::tmpfs::Tmpfs;

/// An entry of about a mebibyte.
fn big_entry(index: u64) -> Entry {
    let put = PutRequest {
        key: index.to_string().into_bytes(),
        value: vec![index as u8; 1 << 20],
        ..Default::default()
    };
    put_entry(index, put)
}

#[tokio::test]
async fn an_append_without_room_waits_for_space_and_then_completes() {
    let tmpfs = match Tmpfs::mount("40m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            berth_testkit::skip(&format!("a tmpfs this test may mount: {why}"));
            return;
        }
    };
    let engine: SharedBackend = Arc::new(MemoryBackend::new());
    let state = Arc::new(WriteBehind::new(engine.clone()));
    let mut log = LogStore::open(1, &tmpfs.path().join("wal"), engine, state).unwrap();
    let space = log.space.clone();
    let first: Vec<Entry> = (1..=10).map(big_entry).collect();
    log.write_when_there_is_room(&first).await.unwrap();

    let filler = tmpfs.fill();
    // These need a second segment, for which there is no room.
    let more: Vec<Entry> = (11..=18).map(big_entry).collect();
    let append = tokio::spawn({
        let log = log.clone();
        async move { log.write_when_there_is_room(&more).await.map(drop) }
    });
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !space.is_full() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the full disk is never reported"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!append.is_finished(), "the append gave up on a full disk");
    assert!(
        space.reports()[0].error.contains("No space left"),
        "{:?}",
        space.reports()
    );

    std::fs::remove_file(&filler).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(30), append)
        .await
        .expect("the append hangs with space back")
        .unwrap()
        .unwrap();
    assert!(!space.is_full(), "the report outlived the append that made it");
    let read = log.try_get_log_entries(1..19).await.unwrap();
    assert_eq!(read.len(), 18);
}
