//! The log on a disk that loses power or gets damaged (`PowerCutDisk`): a torn tail is
//! cut, every entry synced before a cut survives it, and damage anywhere else stops
//! the log with the file and offset instead of dropping what follows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::disk::PowerCutDisk;
use crate::disk::power_cut::Tear;

/// Small segments, so that a few entries span several.
const TEST_SEGMENT_BYTES: u64 = 8 << 10;

/// Never zero, so no record holds a sector of zeros of its own.
fn payload(index: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| ((index as usize * 31 + i) as u8) | 1).collect()
}

fn dir() -> PathBuf {
    PathBuf::from("/member/wal")
}

fn open(disk: &PowerCutDisk) -> io::Result<Wal> {
    Wal::open_on(Arc::new(disk.clone()), &dir()).map(|wal| wal.with_segment_bytes(TEST_SEGMENT_BYTES))
}

fn append_synced(wal: &mut Wal, indexes: std::ops::RangeInclusive<u64>, len: usize) {
    let records: Vec<(u64, Vec<u8>)> = indexes.map(|i| (i, payload(i, len))).collect();
    wal.append(&records).unwrap();
    wal.sync().unwrap();
}

fn all(wal: &Wal) -> Vec<(u64, Vec<u8>)> {
    wal.read(0, u64::MAX).unwrap()
}

/// A log of entries 1..=10 of 300 bytes, synced, in one segment; where entry `index`
/// starts.
fn ten_entries(disk: &PowerCutDisk) -> impl Fn(u64) -> u64 {
    let mut wal = open(disk).unwrap();
    append_synced(&mut wal, 1..=10, 300);
    let starts: Vec<u64> = (1..=10).map(|i| wal.segments[0].span(i).0).collect();
    move |index| starts[index as usize - 1]
}

fn assert_refused(disk: &PowerCutDisk, file: &Path, offset: u64) {
    let err = open(disk).err().expect("opened a damaged log");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&file.display().to_string()),
        "names no file: {message}"
    );
    assert!(
        message.contains(&format!("offset {offset}")),
        "names no offset {offset}: {message}"
    );
}

#[test]
fn a_flipped_byte_mid_log_stops_it_instead_of_dropping_what_follows() {
    let disk = PowerCutDisk::new();
    let start = ten_entries(&disk);
    let file = dir().join(segment_name(1));
    disk.flip_byte(&file, start(5) + 100);
    assert_refused(&disk, &file, start(5));
}

#[test]
fn a_flipped_byte_in_the_last_record_is_damage_not_a_torn_tail() {
    for at in [20, 200, 0, 1, 6, 9] {
        let disk = PowerCutDisk::new();
        let start = ten_entries(&disk);
        let file = dir().join(segment_name(1));
        // In the payload, the length, the checksum and the index field.
        disk.flip_byte(&file, start(10) + at);
        assert_refused(&disk, &file, start(10));
    }
}

#[test]
fn a_flipped_byte_in_an_earlier_segment_stops_the_log() {
    let disk = PowerCutDisk::new();
    let mut wal = open(&disk).unwrap();
    append_synced(&mut wal, 1..=40, 1000);
    assert!(wal.segments.len() >= 3);
    let second = &wal.segments[1];
    let (file, at) = (second.path.clone(), second.span(second.first + 1).0);
    drop(wal);
    disk.flip_byte(&file, at + 50);
    assert_refused(&disk, &file, at);
}

#[test]
fn damage_in_the_unwritten_space_after_the_log_loses_nothing() {
    let disk = PowerCutDisk::new();
    let start = ten_entries(&disk);
    let file = dir().join(segment_name(1));
    disk.flip_byte(&file, start(10) + 2000);
    let wal = open(&disk).unwrap();
    assert_eq!(all(&wal).len(), 10);
    assert!(disk.contents(&file).unwrap()[start(10) as usize + 2000] == 0, "cleared");
}

#[test]
fn a_power_cut_mid_append_tears_the_tail_which_is_cut_off() {
    let disk = PowerCutDisk::new();
    let start = ten_entries(&disk);
    let mut wal = open(&disk).unwrap();
    let records: Vec<(u64, Vec<u8>)> = (11..=14).map(|i| (i, payload(i, 300))).collect();
    wal.append(&records).unwrap();
    drop(wal);
    // The append's first two sectors reach the disk: entry 11 whole, 12 cut short.
    disk.cut_power(Tear {
        whole_writes: 0,
        sectors: 2,
    });
    let (end, record) = (start(10) + 316, 316);
    let reached = (end / 512 + 2) * 512;
    let whole = (reached - end) / record;
    assert!(whole < 4, "the test needs entry {} torn", 11 + whole);
    let wal = open(&disk).unwrap();
    let indexes: Vec<u64> = all(&wal).iter().map(|(i, _)| *i).collect();
    assert_eq!(
        indexes,
        (1..=10 + whole).collect::<Vec<_>>(),
        "the synced entries and the whole ones after"
    );
    for (index, bytes) in all(&wal) {
        assert_eq!(bytes, payload(index, 300), "entry {index}");
    }
}

#[test]
fn a_torn_record_followed_by_a_valid_one_is_not_a_torn_tail() {
    let disk = PowerCutDisk::new();
    let start = ten_entries(&disk);
    let file = dir().join(segment_name(1));
    // Entry 5's last sectors read as zeros, as if torn, yet entries 6..=10 follow.
    let zero_from = (start(5) + 20).next_multiple_of(512);
    assert!(zero_from < start(6), "the test needs a sector boundary inside entry 5");
    disk.zero(&file, zero_from..start(6));
    assert_refused(&disk, &file, start(5));
}

/// Found by the model test below: a truncation synced only the segment it cut, so a
/// later segment's entries became durable while the unsynced ones before them in the
/// earlier segment did not, and after a power cut the log had a gap (and refused to
/// open, rightly, for all it could tell).
#[test]
fn a_truncation_leaves_no_gap_behind_a_power_cut() {
    let disk = PowerCutDisk::new();
    let mut wal = open(&disk).unwrap();
    let records: Vec<(u64, Vec<u8>)> = (1..=12).map(|i| (i, payload(i, 1000))).collect();
    wal.append(&records).unwrap();
    assert!(wal.segments.len() >= 2, "the test needs entries in two segments");
    wal.truncate(12).unwrap();
    drop(wal);
    disk.cut_power(Tear::default());
    let wal = open(&disk).unwrap();
    assert_eq!(
        all(&wal),
        records[..11].to_vec(),
        "a truncation is durable when it returns"
    );
}

/// What the model test does to the log.
#[derive(Debug, Clone)]
enum Op {
    Append {
        count: u64,
        len: usize,
    },
    Sync,
    /// Cuts the log back to this fraction (per mille) of its entries.
    Truncate {
        keep_per_mille: u64,
    },
    CutPower {
        whole_writes: usize,
        sectors: u64,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..6, 1usize..1500).prop_map(|(count, len)| Op::Append { count, len }),
        2 => Just(Op::Sync),
        1 => (0u64..1000).prop_map(|keep_per_mille| Op::Truncate { keep_per_mille }),
        2 => (0usize..8, 0u64..6).prop_map(|(whole_writes, sectors)| Op::CutPower { whole_writes, sectors }),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// After any run of appends, syncs, truncations and power cuts, the log holds every
    /// entry synced (or truncated to) before the cut, and nothing but what was
    /// appended, in order.
    #[test]
    fn no_synced_entry_is_lost_to_a_power_cut(ops in proptest::collection::vec(op(), 1..40)) {
        let disk = PowerCutDisk::new();
        let mut wal = open(&disk).unwrap();
        // The log as appended, and how many of its entries are durable.
        let mut model: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut durable = 0usize;
        for op in ops {
            match op {
                Op::Append { count, len } => {
                    let next = model.last().map_or(1, |(i, _)| i + 1);
                    let records: Vec<(u64, Vec<u8>)> = (next..next + count).map(|i| (i, payload(i, len))).collect();
                    wal.append(&records).unwrap();
                    model.extend(records);
                }
                Op::Sync => {
                    wal.sync().unwrap();
                    durable = model.len();
                }
                Op::Truncate { keep_per_mille } => {
                    let keep = model.len() * keep_per_mille as usize / 1000;
                    if let Some((index, _)) = model.get(keep) {
                        wal.truncate(*index).unwrap();
                        model.truncate(keep);
                        durable = durable.min(keep);
                    }
                }
                Op::CutPower { whole_writes, sectors } => {
                    drop(wal);
                    disk.cut_power(Tear { whole_writes, sectors });
                    wal = open(&disk).unwrap_or_else(|e| panic!("the log does not open after a power cut: {e}"));
                    let recovered = all(&wal);
                    prop_assert!(recovered.len() >= durable, "lost synced entries: {} of {durable} left", recovered.len());
                    prop_assert!(recovered.len() <= model.len());
                    prop_assert_eq!(&recovered[..], &model[..recovered.len()]);
                    model.truncate(recovered.len());
                    durable = model.len();
                }
                Op::Reopen => {
                    wal.sync().unwrap();
                    drop(wal);
                    wal = open(&disk).unwrap();
                    durable = model.len();
                    prop_assert_eq!(all(&wal), model.clone());
                }
            }
        }
    }

    /// A flipped byte in a synced entry either stops the log, naming its file, or
    /// leaves every entry readable as written: never a shorter log.
    #[test]
    fn a_flipped_byte_never_shortens_the_log(count in 1u64..40, len in 1usize..1500, pick in 0.0f64..1.0) {
        let disk = PowerCutDisk::new();
        let mut wal = open(&disk).unwrap();
        append_synced(&mut wal, 1..=count, len);
        let files: Vec<(PathBuf, u64)> = wal.segments.iter().map(|s| (s.path.clone(), s.end)).collect();
        drop(wal);
        let written: u64 = files.iter().map(|(_, end)| end).sum();
        let mut at = (pick * written as f64) as u64;
        let (file, offset) = files.iter().find_map(|(path, end)| {
            if at < *end { Some((path.clone(), at)) } else { at -= end; None }
        }).expect("an offset among the records");
        disk.flip_byte(&file, offset);
        match open(&disk) {
            Err(e) => {
                prop_assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                prop_assert!(e.to_string().contains(&file.display().to_string()), "{}", e);
            }
            Ok(wal) => prop_assert!(false, "a damaged log opened with {} entries of {count}", all(&wal).len()),
        }
    }
}
