//! Reads: a key or a range of keys as they were at a main revision, from the key
//! index in memory and the records in the overlay or the backend.

use std::ops::Bound;

use berth_proto::mvccpb::KeyValue;

use super::{KvStore, decode_record};
use crate::mvcc::MvccError;
use crate::mvcc::key_index::{KeyIndex, LiveMeta};
use crate::mvcc::packs::Records;
use crate::mvcc::range::{KeyRange, RangeOptions, RangeResult};
use crate::mvcc::revision::Revision;

impl KvStore {
    /// Resolves a requested revision (0: current) or says why it cannot be read.
    pub fn check_revision(&self, requested: i64) -> Result<i64, MvccError> {
        if requested <= 0 {
            return Ok(self.current_revision);
        }
        if requested > self.current_revision {
            return Err(MvccError::FutureRevision {
                requested,
                current: self.current_revision,
            });
        }
        if requested < self.compact_revision {
            return Err(MvccError::Compacted {
                requested,
                compacted: self.compact_revision,
            });
        }
        Ok(requested)
    }

    pub(super) fn index_range<'a>(
        &'a self,
        range: &'a KeyRange,
    ) -> Box<dyn Iterator<Item = (&'a Vec<u8>, &'a KeyIndex)> + 'a> {
        if range.is_single {
            return Box::new(self.index.get_key_value(range.start.as_slice()).into_iter());
        }
        let upper = match &range.end {
            Some(end) if end.as_slice() <= range.start.as_slice() => {
                return Box::new(std::iter::empty());
            }
            Some(end) => Bound::Excluded(end.as_slice()),
            None => Bound::Unbounded,
        };
        Box::new(
            self.index
                .range::<[u8], _>((Bound::Included(range.start.as_slice()), upper)),
        )
    }

    /// The record stored at `revision`, from the overlay or the backend.
    pub fn record(&self, revision: Revision) -> Result<Option<(KeyValue, bool)>, MvccError> {
        if let Some(&at) = self.pending.get(&revision)
            && let Some((_, Some(bytes))) = self.staged.get(at)
        {
            return decode_record(revision, bytes).map(Some);
        }
        let Some((key, value)) = self.stored_around(revision)? else {
            return Ok(None);
        };
        for item in Records::new(&key, &value)? {
            let (at, bytes) = item?;
            if at == revision {
                return decode_record(revision, bytes).map(Some);
            }
            if at > revision {
                break;
            }
        }
        Ok(None)
    }

    pub(super) fn live_value(&self, revision: Revision) -> Result<KeyValue, MvccError> {
        match self.record(revision)? {
            Some((kv, false)) => Ok(kv),
            Some((_, true)) => Err(MvccError::CorruptRecord {
                revision,
                reason: "index says live, record is a tombstone".into(),
            }),
            None => Err(MvccError::CorruptRecord {
                revision,
                reason: "indexed revision missing from the backend".into(),
            }),
        }
    }

    /// A key's mod revision and what its live value carries at main revision `at`,
    /// from the index without reading the value (see `KeyIndex::meta_at`; `None`:
    /// only the record can say).
    pub fn meta_at(&self, key: &[u8], at: i64) -> Option<Option<(i64, LiveMeta)>> {
        match self.index.get(key) {
            Some(index) => index.meta_at(at),
            None => Some(None),
        }
    }

    /// The live value of `key` at main revision `at`.
    pub fn get_at(&self, key: &[u8], at: i64) -> Result<Option<KeyValue>, MvccError> {
        match self.index.get(key).and_then(|k| k.live_at(at)) {
            Some(revision) => self.live_value(revision).map(Some),
            None => Ok(None),
        }
    }

    /// A range read at `opts.revision` (0: current), with etcd's semantics for limit,
    /// count, sorting and filters.
    pub fn range(&self, range: &KeyRange, opts: &RangeOptions) -> Result<RangeResult, MvccError> {
        let at = self.check_revision(opts.revision)?;
        self.range_at(range, opts, at)
    }

    /// A range read at an already checked main revision (inside a write transaction
    /// this may be the revision being written).
    pub fn range_at(&self, range: &KeyRange, opts: &RangeOptions, at: i64) -> Result<RangeResult, MvccError> {
        let live = self.index_range(range).filter_map(|(_, k)| k.live_at(at));
        let mut result = RangeResult {
            current_revision: self.current_revision,
            ..Default::default()
        };
        if opts.count_only {
            result.count = live.count() as i64;
            return Ok(result);
        }
        let fetch_limit = if opts.limit > 0 && !opts.needs_full_scan() {
            opts.limit as usize + 1
        } else {
            usize::MAX
        };
        let mut count = 0i64;
        for revision in live {
            count += 1;
            if result.kvs.len() < fetch_limit {
                let mut kv = self.live_value(revision)?;
                if opts.keep(&kv) {
                    if opts.keys_only {
                        kv.value = Vec::new();
                    }
                    result.kvs.push(kv);
                }
            }
        }
        result.count = count;
        opts.sort(&mut result.kvs);
        if opts.limit > 0 && result.kvs.len() > opts.limit as usize {
            result.kvs.truncate(opts.limit as usize);
            result.more = true;
        }
        Ok(result)
    }
}
