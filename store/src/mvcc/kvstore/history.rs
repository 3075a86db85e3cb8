//! History read back from the backend: the events of past revisions for watchers
//! that catch up, and the hash that replicas compare. Both scan the stored records
//! in revision order, a chunk of packs at a time.

use berth_proto::mvccpb::{Event, event::EventType};

use super::{KvStore, RevisionEvents, decode_record};
use crate::backend::{SharedBackend, Tree};
use crate::mvcc::MvccError;
use crate::mvcc::packs::Records;
use crate::mvcc::revision::{REVISION_KEY_PREFIX, Revision};

/// Stored values read per scan of history: packs of up to a few KiB each.
const LOAD_CHUNK: usize = 256;

impl KvStore {
    /// The events of main revisions `from..=to` from history, at most `max_revisions`
    /// of them, for watchers that catch up. With `with_prev_kv`, `prev_kv` is filled
    /// where it still exists.
    pub fn events_between(
        &self,
        from: i64,
        to: i64,
        max_revisions: usize,
        with_prev_kv: bool,
    ) -> Result<Vec<RevisionEvents>, MvccError> {
        if from > to {
            return Ok(Vec::new());
        }
        if from < self.compact_revision {
            return Err(MvccError::Compacted {
                requested: from,
                compacted: self.compact_revision,
            });
        }
        let mut out: Vec<RevisionEvents> = Vec::new();
        for_each_stored(&self.backend, from, Some(to), |_, revision, record| {
            let (kv, is_tombstone) = decode_record(revision, record)?;
            if out.last().is_none_or(|last| last.revision != revision.main) {
                if out.len() == max_revisions {
                    return Ok(false);
                }
                out.push(RevisionEvents {
                    revision: revision.main,
                    events: Vec::new(),
                });
            }
            let prev_kv = match self.index.get(&kv.key).and_then(|k| k.live_before(revision)) {
                Some(prev) if with_prev_kv => self.record(prev)?.map(|(kv, _)| kv),
                _ => None,
            };
            let r#type = if is_tombstone {
                EventType::Delete
            } else {
                EventType::Put
            } as i32;
            out.last_mut().expect("pushed above").events.push(Event {
                r#type,
                kv: Some(kv),
                prev_kv,
            });
            Ok(true)
        })?;
        Ok(out)
    }

    /// A hash of every record with main revision in `compact..=at`, each with its
    /// revision; replicas that applied the same log agree on it, however their
    /// records are packed.
    pub fn hash_kv(&self, at: i64) -> Result<u32, MvccError> {
        let mut hash = Fnv32::new();
        for_each_stored(&self.backend, self.compact_revision, Some(at), |_, revision, record| {
            hash.write(&revision.to_key());
            hash.write(record);
            Ok(true)
        })?;
        Ok(hash.finish())
    }
}

/// Calls `f` with every stored record of main revision `from..=to` (no `to`: to the
/// last), in revision order, until it returns `false`: the key of the pack that
/// holds it, its revision, the record.
pub(super) fn for_each_stored(
    backend: &SharedBackend,
    from: i64,
    to: Option<i64>,
    mut f: impl FnMut(Revision, Revision, &[u8]) -> Result<bool, MvccError>,
) -> Result<(), MvccError> {
    // A compact revision of -1 (never compacted) starts at the beginning.
    let first = Revision::start_key(from.max(0));
    // The pack before `from`'s first key may hold records at or after it.
    let mut start = match backend.last(Tree::State, &[REVISION_KEY_PREFIX], Some(&first))? {
        Some((key, _)) => key,
        None => first.to_vec(),
    };
    let end = match to.and_then(|to| to.checked_add(1)) {
        Some(after) => Revision::start_key(after).to_vec(),
        None => vec![REVISION_KEY_PREFIX + 1],
    };
    let mut previous: Option<Revision> = None;
    loop {
        let chunk = backend.scan(Tree::State, &start, Some(&end), LOAD_CHUNK)?;
        for (key, value) in &chunk {
            let records = Records::new(key, value)?;
            let pack = records.key_revision();
            for item in records {
                let (revision, record) = item?;
                if let Some(before) = previous
                    && revision <= before
                {
                    return Err(MvccError::CorruptRecord {
                        revision,
                        reason: format!("stored after revision {before:?}"),
                    });
                }
                previous = Some(revision);
                if revision.main < from {
                    continue;
                }
                if to.is_some_and(|to| revision.main > to) || !f(pack, revision, record)? {
                    return Ok(());
                }
            }
        }
        let Some((last, _)) = chunk.last() else {
            return Ok(());
        };
        if chunk.len() < LOAD_CHUNK {
            return Ok(());
        }
        start = last.clone();
        start.push(0);
    }
}

/// FNV-1a, 32 bits: small, deterministic and the same on every platform.
struct Fnv32(u32);

impl Fnv32 {
    fn new() -> Self {
        Self(0x811c_9dc5)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u32::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }

    fn finish(&self) -> u32 {
        self.0
    }
}
