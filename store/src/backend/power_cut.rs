//! A backend for tests that loses power: what was written since the last `flush` is
//! gone after a cut, whole batches at a time, as sled loses what it has not flushed
//! (its batches are atomic; its flush is the only point at which they are durable).

use std::sync::Mutex;

use super::{Backend, MemoryBackend, Pair, Result, Tree, WriteBatch};

#[derive(Debug, Default)]
pub struct PowerCutBackend {
    current: MemoryBackend,
    durable: MemoryBackend,
    /// Batches written since the last flush, in order.
    unflushed: Mutex<Vec<(Tree, WriteBatch)>>,
}

impl PowerCutBackend {
    pub fn new() -> Self {
        Self::default()
    }

    /// The backend as a process starting after a power cut finds it.
    pub fn after_power_cut(&self) -> PowerCutBackend {
        let next = PowerCutBackend::new();
        for tree in Tree::ALL {
            let mut batch = WriteBatch::new();
            for (key, value) in self.durable.scan(tree, &[], None, 0).expect("memory scans") {
                batch.put(key, value);
            }
            next.current.write(tree, batch.clone()).expect("memory writes");
            next.durable.write(tree, batch).expect("memory writes");
        }
        next
    }

    /// Batches that a cut now would lose.
    pub fn unflushed_batches(&self) -> usize {
        self.unflushed.lock().expect("not poisoned").len()
    }
}

impl Backend for PowerCutBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.current.get(tree, key)
    }

    fn scan(&self, tree: Tree, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Pair>> {
        self.current.scan(tree, start, end, limit)
    }

    fn last(&self, tree: Tree, start: &[u8], end: Option<&[u8]>) -> Result<Option<Pair>> {
        self.current.last(tree, start, end)
    }

    fn write(&self, tree: Tree, batch: WriteBatch) -> Result<()> {
        let mut unflushed = self.unflushed.lock().expect("not poisoned");
        self.current.write(tree, batch.clone())?;
        unflushed.push((tree, batch));
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        let mut unflushed = self.unflushed.lock().expect("not poisoned");
        for (tree, batch) in unflushed.drain(..) {
            self.durable.write(tree, batch)?;
        }
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        self.current.size_bytes()
    }
}
