//! A log on a file system that fills: an append that finds no room is taken back
//! whole, and made again once space returns. On a small tmpfs, so as root only
//! (skipped, with the reason, otherwise).

use super::*;
use crate::disk_space::tmpfs::Tmpfs;

fn records(indexes: std::ops::RangeInclusive<u64>, len: usize) -> Vec<(u64, Vec<u8>)> {
    indexes.map(|i| (i, vec![i as u8; len])).collect()
}

#[test]
fn an_append_without_room_is_taken_back_and_made_again_when_space_returns() {
    let tmpfs = match Tmpfs::mount("40m") {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            berth_testkit::skip(&format!("a tmpfs this test may mount: {why}"));
            return;
        }
    };
    let dir = tmpfs.path().join("wal");
    let mut wal = Wal::open(&dir).unwrap();
    // The first segment (16 MiB) is allocated whole; then the rest of the disk fills.
    wal.append(&records(1..=10, 1 << 20)).unwrap();
    let filler = tmpfs.fill();
    // Eight more entries need a second segment, for which there is no room.
    let error = wal.append(&records(11..=18, 1 << 20)).unwrap_err();
    assert!(crate::disk_space::is_out_of_space(&error), "{error}");
    assert_eq!(wal.last_index(), Some(10), "the failed append left entries behind");
    assert_eq!(wal.read(1, 19).unwrap().len(), 10);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        1,
        "a half-made segment was left"
    );

    std::fs::remove_file(&filler).unwrap();
    wal.append(&records(11..=18, 1 << 20)).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let wal = Wal::open(&dir).unwrap();
    let read = wal.read(1, 19).unwrap();
    assert_eq!(
        read.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (1..=18).collect::<Vec<_>>()
    );
    assert!(read.iter().all(|(i, bytes)| bytes == &vec![*i as u8; 1 << 20]));
}
