//! One segment file: where its records start, and how it is read back at open, up to
//! its last good record. The record layout is in the module doc of `wal`.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::HEADER_LEN;

pub(super) struct Segment {
    pub(super) first: u64,
    pub(super) path: PathBuf,
    pub(super) file: Arc<File>,
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

/// Makes `len` bytes from `offset` read as zeros, without giving up their blocks.
pub(super) fn clear(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use rustix::fs::FallocateFlags;
    if len == 0 {
        return Ok(());
    }
    match rustix::fs::fallocate(
        file,
        FallocateFlags::ZERO_RANGE | FallocateFlags::KEEP_SIZE,
        offset,
        len,
    ) {
        Ok(()) => Ok(()),
        // A file system without it: write the zeros.
        Err(_) => {
            let zeros = vec![0u8; 1 << 20];
            let mut at = offset;
            while at < offset + len {
                let n = (offset + len - at).min(zeros.len() as u64) as usize;
                file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            Ok(())
        }
    }
}

pub(super) fn allocate(file: &File, len: u64) -> io::Result<()> {
    use rustix::io::Errno;
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        // A file system without it. Any other error (no space above all) is the
        // caller's: a file merely set to its length would fail its writes later.
        Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOSYS => file.set_len(len),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn checksum(index: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&index.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// Reads a segment's records; clears whatever follows the last good one.
pub(super) fn recover_segment(path: PathBuf, first: u64) -> io::Result<Segment> {
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&path)?;
    let capacity = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    let mut offsets = Vec::new();
    let mut end = 0u64;
    let mut header = [0u8; HEADER_LEN];
    let mut payload = Vec::new();
    loop {
        if end + HEADER_LEN as u64 > capacity || reader.read_exact(&mut header).is_err() {
            break;
        }
        let len = u64::from(u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")));
        let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
        let index = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
        let expected = first + offsets.len() as u64;
        if len == 0 {
            break;
        }
        let cut = |why: &str| {
            tracing::warn!(segment = %path.display(), index = expected, "log ends at a torn record ({why}); cutting it off");
        };
        if index != expected || end + HEADER_LEN as u64 + len > capacity {
            cut("its header does not fit");
            break;
        }
        payload.resize(len as usize, 0);
        if reader.read_exact(&mut payload).is_err() || checksum(index, &payload) != crc {
            cut("its checksum fails");
            break;
        }
        offsets.push(end);
        end += HEADER_LEN as u64 + len;
    }
    drop(reader);
    if end < capacity {
        // Anything after the last good record is a torn append: clear it so that no
        // later append is ever followed by its remains.
        clear(&file, end, capacity - end)?;
        file.sync_data()?;
    }
    Ok(Segment {
        first,
        path,
        file: Arc::new(file),
        offsets,
        end,
        capacity,
    })
}
