//! Write transactions: each write takes the next sub-revision of the transaction's
//! main revision, goes into the key index at once and into the overlay of staged
//! records, which the state machine takes as one batch, in packs, when it commits.

use berth_proto::mvccpb::{Event, KeyValue, event::EventType};

use super::{
    KvStore, META_COMPACT_REVISION, META_CURRENT_REVISION, Replaced, RevisionEvents, WriteCtx, encode_record,
    push_to_index,
};
use crate::backend::WriteBatch;
use crate::mvcc::MvccError;
use crate::mvcc::key_index::KeyIndex;
use crate::mvcc::packs;
use crate::mvcc::range::KeyRange;
use crate::mvcc::revision::Revision;

impl KvStore {
    /// Starts the numbering of a store that has never been written at `initial`
    /// (see `CommandBatch.initial_revision`): the current revision becomes `initial`
    /// and, as in etcd, the compact revision -1 (never compacted: even revision 0 may
    /// be compacted). A store that has been written keeps its numbering; so does
    /// every store for `initial` 0, the numbering of earlier versions.
    pub fn start_numbering(&mut self, initial: i64) {
        if initial <= 0 || self.current_revision != 0 {
            return;
        }
        self.current_revision = initial;
        self.compact_revision = -1;
        self.batch
            .put(META_CURRENT_REVISION.to_vec(), initial.to_be_bytes().to_vec());
        self.batch
            .put(META_COMPACT_REVISION.to_vec(), (-1i64).to_be_bytes().to_vec());
    }

    pub fn begin_write(&self) -> WriteCtx {
        WriteCtx {
            main: self.current_revision + 1,
            next_sub: 0,
            events: Vec::new(),
        }
    }

    fn stage(&mut self, ctx: &mut WriteCtx, kv: &KeyValue, is_tombstone: bool) -> Revision {
        let revision = Revision::new(ctx.main, ctx.next_sub);
        ctx.next_sub += 1;
        let record = encode_record(kv, is_tombstone);
        self.pending.insert(revision, self.staged.len());
        self.staged.push((revision, Some(record)));
        push_to_index(&mut self.index, kv, revision, is_tombstone);
        revision
    }

    /// Puts `value` under `key` in the transaction; says what it replaced, with the
    /// replaced value itself if `want_prev_kv`.
    pub fn put(
        &mut self,
        ctx: &mut WriteCtx,
        key: &[u8],
        value: Vec<u8>,
        lease: i64,
        want_prev_kv: bool,
    ) -> Result<Option<Replaced>, MvccError> {
        let replaced = self.index.get(key).and_then(KeyIndex::live);
        let prev_kv = match replaced {
            Some(_) if want_prev_kv || self.events_carry_prev_kv => self.get_at(key, ctx.main)?,
            _ => None,
        };
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision: replaced.map_or(ctx.main, |m| m.create_revision),
            mod_revision: ctx.main,
            version: replaced.map_or(1, |m| m.version + 1),
            value,
            lease,
        };
        self.stage(ctx, &kv, false);
        let (event_prev, returned_prev) = match (self.events_carry_prev_kv, want_prev_kv) {
            (true, true) => (prev_kv.clone(), prev_kv),
            (true, false) => (prev_kv, None),
            (false, _) => (None, prev_kv),
        };
        ctx.events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: event_prev,
        });
        Ok(replaced.map(|meta| Replaced {
            meta,
            kv: returned_prev,
        }))
    }

    /// Deletes every live key in `range`; returns the deleted values in key order.
    pub fn delete_range(&mut self, ctx: &mut WriteCtx, range: &KeyRange) -> Result<Vec<KeyValue>, MvccError> {
        let keys: Vec<(Vec<u8>, Revision)> = self
            .index_range(range)
            .filter_map(|(key, k)| k.live_at(ctx.main).map(|rev| (key.clone(), rev)))
            .collect();
        let mut deleted = Vec::with_capacity(keys.len());
        for (key, revision) in keys {
            let prev = self.live_value(revision)?;
            let tombstone = KeyValue {
                key,
                mod_revision: ctx.main,
                ..Default::default()
            };
            self.stage(ctx, &tombstone, true);
            ctx.events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(tombstone),
                prev_kv: Some(prev.clone()),
            });
            deleted.push(prev);
        }
        Ok(deleted)
    }

    /// Ends a write transaction: if it changed anything, its revision becomes current.
    pub fn end_write(&mut self, ctx: WriteCtx) -> Option<RevisionEvents> {
        if !ctx.has_changes() {
            return None;
        }
        self.current_revision = ctx.main;
        self.batch
            .put(META_CURRENT_REVISION.to_vec(), ctx.main.to_be_bytes().to_vec());
        Some(RevisionEvents {
            revision: ctx.main,
            events: ctx.events,
        })
    }

    /// Hands the staged writes to the caller, who commits them atomically with the
    /// applied log id: the new records in packs, then the rest in the order written.
    pub fn take_batch(&mut self) -> WriteBatch {
        self.pending.clear();
        self.rewritten.clear();
        let mut batch = WriteBatch::new();
        let mut pack: Vec<(Revision, &[u8])> = Vec::new();
        let mut bytes = 0;
        let records = self
            .staged
            .iter()
            .filter_map(|(revision, record)| Some((*revision, record.as_deref()?)));
        for (revision, record) in records {
            pack.push((revision, record));
            bytes += record.len();
            if bytes >= packs::PACK_BYTES {
                batch.put(pack[0].0.to_key().to_vec(), packs::encode(&pack));
                self.packs.push(pack[0].0);
                pack.clear();
                bytes = 0;
            }
        }
        if let Some(&(first, _)) = pack.first() {
            batch.put(first.to_key().to_vec(), packs::encode(&pack));
            self.packs.push(first);
        }
        self.staged.clear();
        batch.ops.append(&mut self.batch.ops);
        batch
    }
}
