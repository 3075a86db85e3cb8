//! An in-memory backend for tests. It obeys the same contract as the sled backend
//! (the conformance suite runs against both) but loses everything when dropped.

use std::collections::BTreeMap;
use std::sync::RwLock;

use super::{Backend, BatchOp, Pair, Result, Tree, WriteBatch, bounds, is_empty_range};

type Trees = BTreeMap<Tree, BTreeMap<Vec<u8>, Vec<u8>>>;

#[derive(Debug, Default)]
pub struct MemoryBackend {
    trees: RwLock<Trees>,
}

impl MemoryBackend {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Backend for MemoryBackend {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let trees = self.trees.read().expect("memory backend lock poisoned");
        Ok(trees.get(&tree).and_then(|t| t.get(key).cloned()))
    }

    fn scan(&self, tree: Tree, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<Pair>> {
        if is_empty_range(start, end) {
            return Ok(Vec::new());
        }
        let trees = self.trees.read().expect("memory backend lock poisoned");
        let Some(t) = trees.get(&tree) else {
            return Ok(Vec::new());
        };
        let limit = if limit == 0 { usize::MAX } else { limit };
        Ok(t.range(bounds(start, end))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn last(&self, tree: Tree, start: &[u8], end: Option<&[u8]>) -> Result<Option<Pair>> {
        if is_empty_range(start, end) {
            return Ok(None);
        }
        let trees = self.trees.read().expect("memory backend lock poisoned");
        let Some(t) = trees.get(&tree) else {
            return Ok(None);
        };
        Ok(t.range(bounds(start, end))
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn write(&self, tree: Tree, batch: WriteBatch) -> Result<()> {
        let mut trees = self.trees.write().expect("memory backend lock poisoned");
        let t = trees.entry(tree).or_default();
        for op in batch.ops {
            match op {
                BatchOp::Put(k, v) => {
                    t.insert(k, v);
                }
                BatchOp::Delete(k) => {
                    t.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn size_bytes(&self) -> u64 {
        let trees = self.trees.read().expect("memory backend lock poisoned");
        trees
            .values()
            .flat_map(|t| t.iter())
            .map(|(k, v)| (k.len() + v.len()) as u64)
            .sum()
    }
}
