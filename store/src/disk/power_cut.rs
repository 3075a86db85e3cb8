//! A disk in memory that can lose power, for tests: what a file holds is what was
//! written, but what survives a power cut is only what was synced (`sync_data` for a
//! file's bytes, `sync_dir` for the names in a directory). A cut may also let some
//! unsynced writes through, in the order they were made, the last of them torn at a
//! sector boundary, as a disk writes whole sectors.
//!
//! Directories themselves are always durable; only the names in them are not.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{Disk, DiskFile, SharedFile};

/// The unit a disk writes atomically.
pub const SECTOR_BYTES: u64 = 512;

#[derive(Debug, Clone)]
enum Op {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

impl Op {
    fn apply(&self, data: &mut Vec<u8>) {
        match self {
            Op::Write { offset, bytes } => {
                let end = *offset as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[*offset as usize..end].copy_from_slice(bytes);
            }
            Op::SetLen(len) => data.resize(*len as usize, 0),
        }
    }

    /// The first `sectors` whole sectors' worth of a write (counted on the disk's
    /// sectors, so the first may be partial).
    fn torn(&self, sectors: u64) -> Option<Op> {
        let Op::Write { offset, bytes } = self else {
            return None;
        };
        let first_boundary = (offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
        let keep_to = first_boundary + sectors.saturating_sub(1) * SECTOR_BYTES;
        let keep = (keep_to.saturating_sub(*offset) as usize).min(bytes.len());
        (sectors > 0).then(|| Op::Write {
            offset: *offset,
            bytes: bytes[..keep].to_vec(),
        })
    }
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Writes since the last sync, with their place in the disk's order of writes.
    pending: Vec<(u64, Op)>,
}

#[derive(Debug, Default)]
struct State {
    /// Bumped by a power cut: files opened before it fail.
    generation: u64,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    next_write: u64,
}

impl State {
    fn record(&mut self, inode: u64, op: Op) {
        let seq = self.next_write;
        self.next_write += 1;
        let inode = self.inodes.get_mut(&inode).expect("an open file's inode exists");
        op.apply(&mut inode.data);
        inode.pending.push((seq, op));
    }
}

/// How much of what was not synced a power cut lets through.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tear {
    /// Unsynced writes that reach the disk whole, oldest first.
    pub whole_writes: usize,
    /// Sectors of the next one that reach it.
    pub sectors: u64,
}

#[derive(Debug, Default, Clone)]
pub struct PowerCutDisk {
    state: Arc<Mutex<State>>,
    /// While set, every `sync_data` waits: a test's way to cut the power while a
    /// sync is under way.
    syncs_held: Arc<std::sync::atomic::AtomicBool>,
}

impl PowerCutDisk {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loses power: every file holds what was synced (plus what `tear` lets through),
    /// every directory the names it had at its last sync.
    pub fn cut_power(&self, tear: Tear) {
        let mut state = self.lock();
        let mut unsynced: Vec<(u64, u64, Op)> = Vec::new();
        for (id, inode) in &mut state.inodes {
            for (seq, op) in inode.pending.drain(..) {
                unsynced.push((seq, *id, op));
            }
            inode.data = inode.durable.clone();
        }
        unsynced.sort_by_key(|(seq, _, _)| *seq);
        let torn = unsynced
            .get(tear.whole_writes)
            .and_then(|(_, id, op)| Some((*id, op.torn(tear.sectors)?)));
        let through = unsynced.into_iter().take(tear.whole_writes).map(|(_, id, op)| (id, op));
        for (id, op) in through.chain(torn) {
            let inode = state.inodes.get_mut(&id).expect("listed above");
            op.apply(&mut inode.data);
        }
        state.names = state.durable_names.clone();
        let live: BTreeSet<u64> = state.names.values().copied().collect();
        state.inodes.retain(|id, _| live.contains(id));
        for inode in state.inodes.values_mut() {
            inode.durable = inode.data.clone();
        }
        state.generation += 1;
    }

    /// Holds every sync from now on (they wait, not fail) until `release_syncs`.
    pub fn hold_syncs(&self) {
        self.syncs_held.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn release_syncs(&self) {
        self.syncs_held.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// The writes no sync has covered yet.
    pub fn unsynced_writes(&self) -> usize {
        self.lock().inodes.values().map(|i| i.pending.len()).sum()
    }

    /// Flips a bit of one byte where it lies on the disk: damage, not a write.
    pub fn flip_byte(&self, path: &Path, offset: u64) {
        self.damage(path, offset, |byte| *byte ^= 0x40);
    }

    /// Zeros bytes where they lie on the disk, as a write that never happened would.
    pub fn zero(&self, path: &Path, range: std::ops::Range<u64>) {
        for offset in range {
            self.damage(path, offset, |byte| *byte = 0);
        }
    }

    fn damage(&self, path: &Path, offset: u64, change: impl Fn(&mut u8)) {
        let mut state = self.lock();
        let id = state.names[path];
        let inode = state.inodes.get_mut(&id).expect("named inodes exist");
        change(&mut inode.data[offset as usize]);
        change(&mut inode.durable[offset as usize]);
    }

    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        state.names.get(path).map(|id| state.inodes[id].data.clone())
    }
}

#[derive(Debug)]
struct SimFile {
    disk: PowerCutDisk,
    inode: u64,
    generation: u64,
}

impl SimFile {
    fn state(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = self.disk.lock();
        if state.generation != self.generation {
            return Err(io::Error::other("the power was cut since this file was opened"));
        }
        Ok(state)
    }
}

impl DiskFile for SimFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let state = self.state()?;
        let data = &state.inodes[&self.inode].data;
        let end = offset as usize + buf.len();
        if end > data.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.copy_from_slice(&data[offset as usize..end]);
        Ok(())
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let op = Op::Write {
            offset,
            bytes: buf.to_vec(),
        };
        self.state()?.record(self.inode, op);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        while self.disk.syncs_held.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let mut state = self.state()?;
        let inode = state.inodes.get_mut(&self.inode).expect("open");
        for (_, op) in inode.pending.drain(..) {
            op.apply(&mut inode.durable);
        }
        Ok(())
    }

    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.state()?.inodes[&self.inode].data.len() as u64)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let mut state = self.state()?;
        if (state.inodes[&self.inode].data.len() as u64) < len {
            state.record(self.inode, Op::SetLen(len));
        }
        Ok(())
    }

    fn clear(&self, offset: u64, len: u64) -> io::Result<()> {
        let mut state = self.state()?;
        let size = state.inodes[&self.inode].data.len() as u64;
        let len = len.min(size.saturating_sub(offset));
        if len > 0 {
            let op = Op::Write {
                offset,
                bytes: vec![0; len as usize],
            };
            state.record(self.inode, op);
        }
        Ok(())
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file", path.display()))
}

impl Disk for PowerCutDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        for ancestor in dir.ancestors() {
            state.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        Ok(state
            .names
            .keys()
            .filter(|path| path.parent() == Some(dir))
            .filter_map(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
            .collect())
    }

    fn exists(&self, path: &Path) -> bool {
        let state = self.lock();
        state.names.contains_key(path) || state.dirs.contains(path)
    }

    fn open(&self, path: &Path) -> io::Result<SharedFile> {
        let state = self.lock();
        let inode = *state.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Arc::new(SimFile {
            disk: self.clone(),
            inode,
            generation: state.generation,
        }))
    }

    fn create(&self, path: &Path) -> io::Result<SharedFile> {
        let mut state = self.lock();
        let parent = path.parent().unwrap_or(Path::new(""));
        if !state.dirs.contains(parent) {
            return Err(not_found(parent));
        }
        let inode = match state.names.get(path) {
            Some(inode) => {
                let inode = *inode;
                state.record(inode, Op::SetLen(0));
                inode
            }
            None => {
                let inode = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(inode, Inode::default());
                state.names.insert(path.to_path_buf(), inode);
                inode
            }
        };
        Ok(Arc::new(SimFile {
            disk: self.clone(),
            inode,
            generation: state.generation,
        }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.lock().names.remove(path).map(drop).ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let inode = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_path_buf(), inode);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let in_dir = |path: &PathBuf| path.parent() == Some(dir);
        state.durable_names.retain(|path, _| !in_dir(path));
        let names: Vec<(PathBuf, u64)> = state
            .names
            .iter()
            .filter(|(path, _)| in_dir(path))
            .map(|(path, id)| (path.clone(), *id))
            .collect();
        state.durable_names.extend(names);
        Ok(())
    }
}
