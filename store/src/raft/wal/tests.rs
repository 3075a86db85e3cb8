use super::*;

fn payload(index: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (index as usize * 31 + i) as u8).collect()
}

fn append(wal: &mut Wal, indexes: std::ops::RangeInclusive<u64>, len: usize) {
    let records: Vec<(u64, Vec<u8>)> = indexes.map(|i| (i, payload(i, len))).collect();
    wal.append(&records).unwrap();
    for file in wal.take_unsynced() {
        file.sync_data().unwrap();
    }
}

fn indexes(wal: &Wal, start: u64, end: u64) -> Vec<u64> {
    let read = wal.read(start, end).unwrap();
    for (index, bytes) in &read {
        assert_eq!(bytes, &payload(*index, bytes.len()), "payload of {index}");
    }
    read.into_iter().map(|(i, _)| i).collect()
}

fn segment_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

#[test]
fn appends_survive_a_reopen_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    assert_eq!(wal.last_index(), None);
    // 1 MiB entries: sixteen segments' worth is more than one segment.
    append(&mut wal, 1..=20, 1 << 20);
    append(&mut wal, 21..=30, 100);
    assert!(segment_files(dir.path()) >= 2);
    drop(wal);
    let wal = Wal::open(dir.path()).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (Some(1), Some(30)));
    assert_eq!(indexes(&wal, 1, 31), (1..=30).collect::<Vec<_>>());
    assert_eq!(indexes(&wal, 14, 18), vec![14, 15, 16, 17]);
}

#[test]
fn an_append_must_follow_the_last_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    append(&mut wal, 5..=6, 10);
    assert!(wal.append(&[(8, vec![1])]).is_err());
    assert!(wal.append(&[(6, vec![1])]).is_err());
    assert_eq!(wal.last_index(), Some(6));
}

#[test]
fn a_torn_append_is_cut_off_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    append(&mut wal, 1..=10, 1000);
    let path = dir.path().join(segment_name(1));
    let (start, _) = wal.segments[0].span(8);
    drop(wal);
    // The sectors from inside record 8 on never reached the disk.
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let torn_from = (start + 300).next_multiple_of(512);
    std::os::unix::fs::FileExt::write_all_at(&file, &vec![0; 4096], torn_from).unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    assert_eq!(wal.last_index(), Some(7));
    // What follows the cut reads as zeros: a shorter new record cannot be
    // followed by the old one's remains.
    append(&mut wal, 8..=8, 10);
    drop(wal);
    let wal = Wal::open(dir.path()).unwrap();
    assert_eq!(indexes(&wal, 1, 100), (1..=8).collect::<Vec<_>>());
}

#[test]
fn a_truncation_removes_the_tail_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    append(&mut wal, 1..=20, 1 << 20);
    let segments = segment_files(dir.path());
    assert!(segments >= 2);
    wal.truncate(5).unwrap();
    assert_eq!(wal.last_index(), Some(4));
    assert_eq!(segment_files(dir.path()), 1);
    // New entries of another size at the same indexes; nothing old comes back.
    append(&mut wal, 5..=6, 7);
    drop(wal);
    let wal = Wal::open(dir.path()).unwrap();
    assert_eq!(wal.last_index(), Some(6));
    let read = wal.read(1, 100).unwrap();
    assert_eq!(read.len(), 6);
    assert_eq!(read[5].1.len(), 7);
}

#[test]
fn a_log_cut_back_to_a_segment_start_keeps_its_earlier_entries() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    append(&mut wal, 1..=20, 1 << 20);
    let second = wal.segments[1].first;
    // Cut back to exactly where the second segment starts: it stays, empty.
    wal.truncate(second).unwrap();
    assert_eq!(wal.last_index(), Some(second - 1));
    drop(wal);
    let mut wal = Wal::open(dir.path()).unwrap();
    assert_eq!(
        wal.last_index(),
        Some(second - 1),
        "an empty last segment hides nothing"
    );
    // A record larger than a segment lands in the empty one, grown; nothing else
    // shares its file.
    append(&mut wal, second..=second, (SEGMENT_BYTES + 10) as usize);
    wal.purge(second - 1).unwrap();
    drop(wal);
    let wal = Wal::open(dir.path()).unwrap();
    assert_eq!(indexes(&wal, 1, 100), vec![second], "the purge kept the live segment");
}

#[test]
fn a_segment_past_a_gap_stops_the_replica_unless_it_holds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    append(&mut wal, 1..=3, 10);
    drop(wal);
    // A later segment that does not follow: truncations never leave one, so its
    // entries are what is left after the ones between were lost.
    let mut stray = Wal::open(&dir.path().join("elsewhere")).unwrap();
    append(&mut stray, 9..=9, 10);
    drop(stray);
    let stray_path = dir.path().join(segment_name(9));
    std::fs::rename(dir.path().join("elsewhere").join(segment_name(9)), &stray_path).unwrap();
    let err = Wal::open(dir.path()).err().expect("opened a log with a gap");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let message = err.to_string();
    assert!(message.contains(&stray_path.display().to_string()), "{message}");
    assert!(
        message.contains("entry 9 at offset 0") && message.contains("ends at entry 4"),
        "{message}"
    );

    // Empty, it is what a crash after a roll leaves (the entries before it lost).
    let file = std::fs::OpenOptions::new().write(true).open(&stray_path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[0; 64], 0).unwrap();
    let wal = Wal::open(dir.path()).unwrap();
    assert_eq!(wal.last_index(), Some(3));
    assert!(!stray_path.exists());
}

#[test]
fn a_purge_removes_whole_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = Wal::open(dir.path()).unwrap();
    append(&mut wal, 1..=40, 1 << 20);
    let before = segment_files(dir.path());
    assert!(before >= 3, "{before}");
    wal.purge(20).unwrap();
    let first = wal.first_index().unwrap();
    assert!(first <= 21 && first > 1, "first {first}");
    assert!(segment_files(dir.path()) < before);
    assert_eq!(indexes(&wal, 21, 41), (21..=40).collect::<Vec<_>>());
    // Past everything (a snapshot installed beyond the log): the log empties and
    // the next append may start anywhere after.
    wal.purge(100).unwrap();
    assert_eq!(wal.last_index(), None);
    append(&mut wal, 101..=101, 10);
    drop(wal);
    let wal = Wal::open(dir.path()).unwrap();
    assert_eq!((wal.first_index(), wal.last_index()), (Some(101), Some(101)));
}
