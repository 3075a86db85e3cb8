//! One segment file: where its records start, and how it is read back at open, up to
//! its last good record. The record layout is in the module doc of `wal`.
//!
//! What may follow the last good record, and what recovery makes of it:
//!
//! ```text
//!   zeros to the end (allocated, never written)      the end of the log
//!   a record that reads as zeros from a sector       a torn append (a crash mid-write:
//!     boundary inside it to its end                    a disk writes whole sectors, in
//!                                                      order), cut off when nothing
//!                                                      valid follows it
//!   any other record that fails its checksum         damage: the replica stops
//!   any valid record further on (a later index)      damage: the replica stops
//! ```
//!
//! A flipped byte does not leave a record's end as zeros, so it never passes for a
//! torn append, even in the last record (one in the length field is told apart by the
//! shorter length that does check out); and entries after damage are never dropped
//! quietly. The one blind spot: a record whose payload itself ends in a sector of
//! zeros, damaged elsewhere, reads as torn.

use std::io;
use std::path::{Path, PathBuf};

use super::{HEADER_LEN, corrupt};
use crate::disk::{Disk, SharedFile};

/// The unit a disk writes atomically: a torn append leaves whole sectors unwritten.
const SECTOR_BYTES: u64 = 512;

pub(super) struct Segment {
    pub(super) first: u64,
    pub(super) path: PathBuf,
    pub(super) file: SharedFile,
    /// Where each record starts, in index order from `first`.
    pub(super) offsets: Vec<u64>,
    /// Past the last record.
    pub(super) end: u64,
    pub(super) capacity: u64,
}

impl Segment {
    pub(super) fn next_index(&self) -> u64 {
        self.first + self.offsets.len() as u64
    }

    pub(super) fn last_index(&self) -> Option<u64> {
        (!self.offsets.is_empty()).then(|| self.next_index() - 1)
    }

    /// Start and end offsets of the record for `index`, which the segment holds.
    pub(super) fn span(&self, index: u64) -> (u64, u64) {
        let i = (index - self.first) as usize;
        let end = self.offsets.get(i + 1).copied().unwrap_or(self.end);
        (self.offsets[i], end)
    }
}

pub(super) fn checksum(index: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&index.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// How a segment's records end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// At zeros: nothing was written after the last record.
    Clean,
    /// At a record a crash cut short, at `offset`, which would reach to `extent`.
    Torn { offset: u64, extent: u64 },
}

struct Header {
    len: u64,
    crc: u32,
    index: u64,
}

fn header_at(bytes: &[u8], at: u64) -> Header {
    let h = &bytes[at as usize..at as usize + HEADER_LEN];
    Header {
        len: u64::from(u32::from_le_bytes(h[0..4].try_into().expect("4 bytes"))),
        crc: u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")),
        index: u64::from_le_bytes(h[8..16].try_into().expect("8 bytes")),
    }
}

/// The end of the record at `at` when its header is whole and it fits the file.
fn record_end(bytes: &[u8], at: u64, header: &Header) -> Option<u64> {
    let end = at + HEADER_LEN as u64 + header.len;
    (header.len > 0 && end <= bytes.len() as u64).then_some(end)
}

fn is_valid(bytes: &[u8], at: u64, header: &Header) -> bool {
    record_end(bytes, at, header)
        .is_some_and(|end| checksum(header.index, &bytes[at as usize + HEADER_LEN..end as usize]) == header.crc)
}

/// True when the record at `at` reads as zeros from a sector boundary inside it to
/// `extent`: its first sectors reached the disk, the rest never did.
fn is_torn(bytes: &[u8], at: u64, extent: u64) -> bool {
    let record = &bytes[at as usize..extent as usize];
    let written = record.iter().rposition(|b| *b != 0).map_or(0, |i| i as u64 + 1);
    (at + written).next_multiple_of(SECTOR_BYTES) < extent
}

/// True when the record at `at`, the one for `index`, checks out with a shorter
/// length than its header says: the length field is damaged, not the record torn.
fn checks_out_shorter(bytes: &[u8], at: u64, header: &Header, extent: u64) -> bool {
    let payload = &bytes[at as usize + HEADER_LEN..extent as usize];
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header.index.to_le_bytes());
    payload.iter().any(|b| {
        hasher.update(std::slice::from_ref(b));
        hasher.clone().finalize() == header.crc
    })
}

/// The first valid record from `from` on whose index is `next` or later.
pub(super) fn find_record(bytes: &[u8], from: u64, next: u64) -> Option<(u64, u64)> {
    let last_start = (bytes.len() as u64).checked_sub(HEADER_LEN as u64)?;
    let mut at = from;
    while at <= last_start {
        // A record's header is never all zeros: skip runs of zeros (a segment is
        // mostly allocated, unwritten space) to the first header that could hold one.
        let nonzero = first_nonzero(bytes, at as usize)? as u64;
        at = at.max(nonzero.saturating_sub(HEADER_LEN as u64 - 1));
        while at <= last_start.min(nonzero) {
            let header = header_at(bytes, at);
            // Cheap filters first: nearly every offset fails on the index.
            let plausible = header.index >= next && header.index - next < 1 << 32;
            if plausible && is_valid(bytes, at, &header) {
                return Some((at, header.index));
            }
            at += 1;
        }
    }
    None
}

/// Where the first byte that is not zero lies, from `from` on; a word at a time.
pub(super) fn first_nonzero(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    let words = rest.chunks_exact(8);
    let tail_start = rest.len() - words.remainder().len();
    let word = words
        .enumerate()
        .find(|(_, word)| u64::from_ne_bytes((*word).try_into().expect("8 bytes")) != 0)
        .map(|(i, _)| i * 8);
    let (start, end) = match word {
        Some(start) => (start, start + 8),
        None => (tail_start, rest.len()),
    };
    rest[start..end].iter().position(|b| *b != 0).map(|i| from + start + i)
}

/// Reads a whole segment file.
pub(super) fn read_all(file: &SharedFile) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; file.size_bytes()? as usize];
    file.read_exact_at(&mut bytes, 0)?;
    Ok(bytes)
}

fn damaged(path: &Path, offset: u64, what: String) -> io::Error {
    corrupt(format!(
        "log segment {} is damaged at offset {offset}: {what}; refusing to go on without the \
         entries after it (restore this member's data dir from a backup, or remove the member \
         and add it back empty)",
        path.display()
    ))
}

/// Reads a segment's records (the first is `first`) and what follows the last good
/// one; a torn tail is cut off and cleared, damage is an error naming the offset.
pub(super) fn recover_segment(disk: &dyn Disk, path: PathBuf, first: u64) -> io::Result<(Segment, Ending)> {
    let file = disk.open(&path)?;
    let bytes = read_all(&file)?;
    let capacity = bytes.len() as u64;
    let mut offsets = Vec::new();
    let mut end = 0u64;
    let ending = loop {
        if end + HEADER_LEN as u64 > capacity {
            break Ending::Clean;
        }
        let header = header_at(&bytes, end);
        let expected = first + offsets.len() as u64;
        if header.len == 0 && header.crc == 0 && header.index == 0 {
            break Ending::Clean;
        }
        if header.index == expected && is_valid(&bytes, end, &header) {
            offsets.push(end);
            end = record_end(&bytes, end, &header).expect("valid records fit");
            continue;
        }
        // The record's extent as far as its header can be believed.
        let extent = record_end(&bytes, end, &header).unwrap_or((end + HEADER_LEN as u64).min(capacity));
        let length_damaged = header.index == expected && checks_out_shorter(&bytes, end, &header, extent);
        // A tear zeroes a record's tail, never its length field's prefix: a length of
        // zero or past the file is damage, even where the header's own tail (an
        // index's high bytes) is zeros across a sector boundary.
        let impossible_length = record_end(&bytes, end, &header).is_none();
        if length_damaged || impossible_length || !is_torn(&bytes, end, extent) {
            let why = if length_damaged {
                format!(
                    "the record for entry {expected} has a damaged length field ({})",
                    header.len
                )
            } else if header.index != expected {
                format!("the record for entry {expected} reads as entry {}", header.index)
            } else if record_end(&bytes, end, &header).is_none() {
                format!(
                    "the record for entry {expected} has an impossible length {}",
                    header.len
                )
            } else {
                format!("the record for entry {expected} fails its checksum")
            };
            return Err(damaged(&path, end, why));
        }
        break Ending::Torn { offset: end, extent };
    };
    let after = match ending {
        Ending::Clean => end,
        Ending::Torn { extent, .. } => extent,
    };
    let next = first + offsets.len() as u64;
    if let Some((at, index)) = find_record(&bytes, after.min(capacity), next) {
        let what = match ending {
            Ending::Clean => {
                format!("the records end at entry {next}, yet a valid record for entry {index} follows at offset {at}")
            }
            Ending::Torn { .. } => format!(
                "the record for entry {next} is cut short, yet a valid record for entry {index} follows at offset {at}: not a torn tail"
            ),
        };
        return Err(damaged(&path, end, what));
    }
    if let Ending::Torn { offset, .. } = ending {
        tracing::warn!(segment = %path.display(), offset, index = next, "the log ends at a torn append (a crash mid-write); cutting it off");
    }
    if first_nonzero(&bytes, end as usize).is_some() {
        // So that no later append is ever followed by the remains of this one.
        file.clear(end, capacity - end)?;
        file.sync_data()?;
    }
    let segment = Segment {
        first,
        path,
        file,
        offsets,
        end,
        capacity,
    };
    Ok((segment, ending))
}
