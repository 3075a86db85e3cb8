//! Defragmentation of the sled database: what `etcdctl defrag` asks for.
//!
//! sled never gives back the space of overwritten and deleted values on its own; its
//! files only grow until the next rewrite. A defragmentation rewrites every tree into
//! a fresh database next to the live one and swaps the two directories:
//!
//! ```text
//!   db/            the live database (flushed first)
//!   db.defrag/     1. every pair of every tree copied in, flushed
//!   db  → db.old   2. the live database closed and moved aside
//!   db.defrag → db 3. the fresh one moved into place, reopened
//!   db.old/        4. deleted
//! ```
//!
//! The copy is taken while nothing else touches the database (the backend's write
//! lock), so it holds one moment of both trees: the applied log id is copied with the
//! data it covers, and the Raft log's vote and commit records with them. A crash at
//! any step leaves a database to open: before step 2 the live one (the copy is
//! dropped); between steps 2 and 3 the fresh one, complete since step 1 flushed it;
//! after step 3 the fresh one. [`recover`] sorts this out when the database opens.

use std::path::{Path, PathBuf};

use super::sled_backend::Engine;
use super::{Result, Tree};

/// Pairs copied per batch: the copy never holds a whole tree in memory.
const COPY_BATCH: usize = 4096;

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    dir.with_file_name(name)
}

fn sync_parent(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Step 1: a fresh database beside `dir` with every pair of `live`.
pub(super) fn copy_into_fresh(dir: &Path, live: &Engine) -> Result<()> {
    live.db.flush()?;
    let fresh_dir = sibling(dir, ".defrag");
    if fresh_dir.exists() {
        std::fs::remove_dir_all(&fresh_dir)?;
    }
    let fresh = Engine::open(&fresh_dir)?;
    for tree in Tree::ALL {
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for item in live.tree(tree).iter() {
            let (key, value) = item?;
            batch.insert(key, value);
            in_batch += 1;
            if in_batch == COPY_BATCH {
                fresh.tree(tree).apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
        }
        fresh.tree(tree).apply_batch(batch)?;
    }
    fresh.db.flush()?;
    Ok(())
}

/// Steps 2 to 4: closes `live`, puts the fresh database in its place and opens it.
pub(super) fn swap(dir: &Path, live: Engine) -> Result<Engine> {
    drop(live);
    let (fresh_dir, old_dir) = (sibling(dir, ".defrag"), sibling(dir, ".old"));
    if old_dir.exists() {
        std::fs::remove_dir_all(&old_dir)?;
    }
    std::fs::rename(dir, &old_dir)?;
    std::fs::rename(&fresh_dir, dir)?;
    sync_parent(dir)?;
    let engine = Engine::open(dir)?;
    std::fs::remove_dir_all(&old_dir)?;
    Ok(engine)
}

/// Finishes or undoes a defragmentation that a crash interrupted, before `dir` opens.
pub(super) fn recover(dir: &Path) -> Result<()> {
    let (fresh_dir, old_dir) = (sibling(dir, ".defrag"), sibling(dir, ".old"));
    if fresh_dir.exists() {
        if dir.exists() {
            // Interrupted before the swap: the live database is whole.
            std::fs::remove_dir_all(&fresh_dir)?;
        } else {
            // Interrupted between the two renames: the copy is complete.
            std::fs::rename(&fresh_dir, dir)?;
            sync_parent(dir)?;
        }
    }
    if old_dir.exists() && dir.exists() {
        std::fs::remove_dir_all(&old_dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, SledBackend, WriteBatch};

    fn bytes_in(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let meta = entry.metadata().unwrap();
                if meta.is_dir() {
                    bytes_in(&entry.path())
                } else {
                    meta.len()
                }
            })
            .sum()
    }

    fn churn(backend: &SledBackend, rounds: usize) {
        let value = vec![7u8; 4096];
        for round in 0..rounds {
            let mut batch = WriteBatch::new();
            for key in 0..64u32 {
                batch.put(
                    key.to_be_bytes().to_vec(),
                    [value.as_slice(), &round.to_be_bytes()].concat(),
                );
            }
            backend.write(Tree::State, batch).unwrap();
        }
        backend.flush().unwrap();
    }

    #[test]
    fn a_defragmentation_shrinks_the_files_and_keeps_every_pair() {
        let dir = tempfile::tempdir().unwrap();
        let db_dir = dir.path().join("db");
        let backend = SledBackend::open(&db_dir).unwrap();
        churn(&backend, 200);
        let mut vote = WriteBatch::new();
        vote.put(b"vote".to_vec(), b"term 3".to_vec());
        vote.put(b"other".to_vec(), b"x".to_vec());
        backend.write(Tree::RaftLog, vote).unwrap();
        let before_pairs = backend.scan(Tree::State, b"", None, 0).unwrap();
        let before_bytes = bytes_in(&db_dir);

        backend.defragment().unwrap();
        let after_bytes = bytes_in(&db_dir);
        assert!(
            after_bytes < before_bytes / 2,
            "{before_bytes} bytes before, {after_bytes} after"
        );
        assert_eq!(backend.scan(Tree::State, b"", None, 0).unwrap(), before_pairs);
        assert_eq!(backend.get(Tree::RaftLog, b"vote").unwrap(), Some(b"term 3".to_vec()));
        assert!(!sibling(&db_dir, ".old").exists() && !sibling(&db_dir, ".defrag").exists());

        // Still a working database, and one that reopens.
        churn(&backend, 1);
        drop(backend);
        let reopened = SledBackend::open(&db_dir).unwrap();
        assert_eq!(reopened.scan(Tree::State, b"", None, 0).unwrap().len(), 64);
    }

    #[test]
    fn a_crash_between_the_renames_opens_the_complete_copy() {
        let dir = tempfile::tempdir().unwrap();
        let db_dir = dir.path().join("db");
        {
            let backend = SledBackend::open(&db_dir).unwrap();
            churn(&backend, 3);
        }
        // Step 1 done, step 2 done, step 3 not: only db.defrag and db.old exist.
        {
            let live = Engine::open(&db_dir).unwrap();
            copy_into_fresh(&db_dir, &live).unwrap();
        }
        std::fs::rename(&db_dir, sibling(&db_dir, ".old")).unwrap();
        let backend = SledBackend::open(&db_dir).unwrap();
        assert_eq!(backend.scan(Tree::State, b"", None, 0).unwrap().len(), 64);
        assert!(!sibling(&db_dir, ".old").exists());

        // A copy left over from a crash before the swap is dropped.
        drop(backend);
        std::fs::create_dir_all(sibling(&db_dir, ".defrag")).unwrap();
        let backend = SledBackend::open(&db_dir).unwrap();
        assert_eq!(backend.scan(Tree::State, b"", None, 0).unwrap().len(), 64);
        assert!(!sibling(&db_dir, ".defrag").exists());
    }
}
