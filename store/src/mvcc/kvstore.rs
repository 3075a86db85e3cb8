//! The multi-version key-value store of one replica.
//!
//! Reads run against the committed state; writes run inside the state machine's
//! apply, through a [`WriteCtx`] that assigns sub-revisions and collects the events.
//! Writes land in an in-memory overlay and a [`WriteBatch`] that the state machine
//! commits together with the applied log id, so the backend never holds half an
//! apply. The records go to the backend in packs ([`super::packs`]).
//!
//! Invariants (checked by [`KvStore::validate`]):
//! - `compact_revision <= current_revision`;
//! - every revision in the key index has `main <= current_revision`;
//! - every key index is ordered and never has two tombstones in a row.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use berth_proto::Message;
use berth_proto::mvccpb::{Event, KeyValue, event::EventType};

use super::MvccError;
use super::key_index::{KeyIndex, LiveMeta};
use super::packs::{self, Records};
use super::range::{KeyRange, RangeOptions, RangeResult};
use super::revision::{REVISION_KEY_PREFIX, Revision};
use crate::backend::{BatchOp, Pair, SharedBackend, Tree, WriteBatch};

const META_CURRENT_REVISION: &[u8] = b"m/current_revision";
const META_COMPACT_REVISION: &[u8] = b"m/compact_revision";
const RECORD_PUT: u8 = 0;
const RECORD_TOMBSTONE: u8 = 1;
/// Stored values read per scan of history: packs of up to a few KiB each.
const LOAD_CHUNK: usize = 256;

/// Live keys attached to a lease: `(key, lease ID)`.
pub type LeasedKeys = Vec<(Vec<u8>, i64)>;

/// The events of one main revision, in sub-revision order. A delete's `prev_kv` is
/// always filled; a put's only while some watcher on this replica asks for previous
/// values (see [`KvStore::set_events_carry_prev_kv`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionEvents {
    pub revision: i64,
    pub events: Vec<Event>,
}

/// One write transaction in progress: the main revision it will commit as and the
/// events it has produced so far.
#[derive(Debug)]
pub struct WriteCtx {
    main: i64,
    next_sub: i64,
    events: Vec<Event>,
}

impl WriteCtx {
    pub fn revision(&self) -> i64 {
        self.main
    }

    pub fn has_changes(&self) -> bool {
        self.next_sub > 0
    }
}

pub struct KvStore {
    backend: SharedBackend,
    index: BTreeMap<Vec<u8>, KeyIndex>,
    current_revision: i64,
    compact_revision: i64,
    /// The key of every stored value, a pack or a lone record, in order: the record
    /// at a revision is in the last one at or before it.
    packs: Vec<Revision>,
    /// Records written by the apply in progress, in revision order, for the backend;
    /// `None` for one that a compaction in the same apply dropped.
    staged: Vec<(Revision, Option<Vec<u8>>)>,
    /// Where each record of `staged` sits in it.
    pending: HashMap<Revision, usize>,
    /// The other writes of the apply in progress: meta keys and compaction's rewrites.
    batch: WriteBatch,
    /// Where the last write of each pack that a compaction in the apply in progress
    /// rewrote or deleted sits in `batch`.
    rewritten: HashMap<Vec<u8>, usize>,
    /// Whether a put's event carries the value it replaced. Reading that value costs
    /// a backend read per put; nobody needs it unless a watcher asked for it.
    events_carry_prev_kv: bool,
}

/// What a put replaced: the fields of the live value it followed, and that value
/// itself when the caller asked for it.
#[derive(Debug)]
pub struct Replaced {
    pub meta: LiveMeta,
    pub kv: Option<KeyValue>,
}

impl std::fmt::Debug for KvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStore")
            .field("keys", &self.index.len())
            .field("current_revision", &self.current_revision)
            .field("compact_revision", &self.compact_revision)
            .finish_non_exhaustive()
    }
}

fn encode_record(kv: &KeyValue, is_tombstone: bool) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + kv.encoded_len());
    buf.push(if is_tombstone { RECORD_TOMBSTONE } else { RECORD_PUT });
    kv.encode(&mut buf).expect("encoding into a Vec cannot fail");
    buf
}

fn decode_record(revision: Revision, bytes: &[u8]) -> Result<(KeyValue, bool), MvccError> {
    let corrupt = |reason: String| MvccError::CorruptRecord { revision, reason };
    let (&kind, body) = bytes.split_first().ok_or_else(|| corrupt("empty record".into()))?;
    let is_tombstone = match kind {
        RECORD_PUT => false,
        RECORD_TOMBSTONE => true,
        other => return Err(corrupt(format!("unknown record kind {other}"))),
    };
    let kv = KeyValue::decode(body).map_err(|e| corrupt(e.to_string()))?;
    Ok((kv, is_tombstone))
}

fn read_i64(backend: &SharedBackend, key: &[u8]) -> Result<i64, MvccError> {
    match backend.get(Tree::State, key)? {
        None => Ok(0),
        Some(bytes) => {
            let raw: [u8; 8] = bytes.as_slice().try_into().map_err(|_| MvccError::CorruptRecord {
                revision: Revision::default(),
                reason: format!("meta key {} has {} bytes", String::from_utf8_lossy(key), bytes.len()),
            })?;
            Ok(i64::from_be_bytes(raw))
        }
    }
}

impl KvStore {
    /// Loads the key index from the backend. Also returns every live key that is
    /// attached to a lease, so the lease table can be rebuilt.
    pub fn open(backend: SharedBackend) -> Result<(Self, LeasedKeys), MvccError> {
        let current_revision = read_i64(&backend, META_CURRENT_REVISION)?;
        let compact_revision = read_i64(&backend, META_COMPACT_REVISION)?;
        let mut index: BTreeMap<Vec<u8>, KeyIndex> = BTreeMap::new();
        let mut latest_lease: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        let mut packs = Vec::new();
        for_each_stored(&backend, 0, None, |pack, revision, record| {
            if packs.last() != Some(&pack) {
                packs.push(pack);
            }
            let (kv, is_tombstone) = decode_record(revision, record)?;
            if is_tombstone {
                latest_lease.remove(&kv.key);
            } else {
                latest_lease.insert(kv.key.clone(), kv.lease);
            }
            push_to_index(&mut index, &kv, revision, is_tombstone);
            Ok(true)
        })?;
        let store = Self {
            backend,
            index,
            current_revision,
            compact_revision,
            packs,
            staged: Vec::new(),
            pending: HashMap::new(),
            batch: WriteBatch::new(),
            rewritten: HashMap::new(),
            events_carry_prev_kv: true,
        };
        store.validate().map_err(|reason| MvccError::CorruptRecord {
            revision: Revision::default(),
            reason,
        })?;
        let leased = latest_lease.into_iter().filter(|(_, lease)| *lease != 0).collect();
        Ok((store, leased))
    }

    pub fn current_revision(&self) -> i64 {
        self.current_revision
    }

    pub fn backend(&self) -> &SharedBackend {
        &self.backend
    }

    /// Whether puts from now on put the replaced value in their events (a watcher
    /// that wants it and finds it missing reads it from history).
    pub fn set_events_carry_prev_kv(&mut self, carry: bool) {
        self.events_carry_prev_kv = carry;
    }

    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    pub fn key_count(&self) -> usize {
        self.index.len()
    }

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

    fn index_range<'a>(&'a self, range: &'a KeyRange) -> Box<dyn Iterator<Item = (&'a Vec<u8>, &'a KeyIndex)> + 'a> {
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

    fn live_value(&self, revision: Revision) -> Result<KeyValue, MvccError> {
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

    /// Checks that a compaction to `revision` is allowed.
    pub fn check_compact(&self, revision: i64) -> Result<(), MvccError> {
        if revision <= self.compact_revision {
            return Err(MvccError::Compacted {
                requested: revision,
                compacted: self.compact_revision,
            });
        }
        if revision > self.current_revision {
            return Err(MvccError::FutureRevision {
                requested: revision,
                current: self.current_revision,
            });
        }
        Ok(())
    }

    /// Forgets every revision before `revision` that a read at `revision` or later
    /// cannot see, in the index and in the backend.
    pub fn compact(&mut self, revision: i64) -> Result<(), MvccError> {
        self.check_compact(revision)?;
        let mut emptied = Vec::new();
        let mut dropped = Vec::new();
        for (key, index) in self.index.iter_mut() {
            for removed in index.compact(revision) {
                match self.pending.remove(&removed) {
                    Some(at) => self.staged[at].1 = None,
                    None => dropped.push(removed),
                }
            }
            if index.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.index.remove(&key);
        }
        // Reads below `revision` fail from here on, even if rewriting the packs does.
        self.compact_revision = revision;
        dropped.sort_unstable();
        self.drop_stored(&dropped)?;
        self.batch
            .put(META_COMPACT_REVISION.to_vec(), revision.to_be_bytes().to_vec());
        Ok(())
    }

    /// Rewrites the stored packs that hold `dropped` (sorted) without them.
    fn drop_stored(&mut self, dropped: &[Revision]) -> Result<(), MvccError> {
        let mut emptied = Vec::new();
        let mut next = 0;
        while let Some(&first) = dropped.get(next) {
            let Some((key, stored)) = self.stored_around(first)? else {
                next += 1;
                continue;
            };
            // A pack this apply already rewrote is read as rewritten.
            let value = match self.rewritten.get(&key).map(|&at| &self.batch.ops[at]) {
                Some(BatchOp::Put(_, value)) => value.clone(),
                Some(BatchOp::Delete(_)) => Vec::new(),
                None => stored,
            };
            let records = if value.is_empty() {
                Vec::new()
            } else {
                Records::new(&key, &value)?.collect::<Result<Vec<_>, _>>()?
            };
            let last = records.last().map(|(revision, _)| *revision);
            let end = next + dropped[next..].partition_point(|r| Some(*r) <= last);
            if end == next {
                // Not stored (any more): nothing to drop.
                next += 1;
                continue;
            }
            let here = &dropped[next..end];
            next = end;
            let kept: Vec<(Revision, &[u8])> = records
                .into_iter()
                .filter(|(revision, _)| here.binary_search(revision).is_err())
                .collect();
            self.rewritten.insert(key.clone(), self.batch.ops.len());
            if kept.is_empty() {
                emptied.push(Revision::from_key(&key).expect("a pack's key"));
                self.batch.delete(key);
            } else {
                self.batch.put(key, packs::encode_pack(&kept));
            }
        }
        self.packs.retain(|pack| emptied.binary_search(pack).is_err());
        Ok(())
    }

    /// The stored value that holds the record at `revision` if any does: the pack
    /// with the greatest key at or before the revision.
    fn stored_around(&self, revision: Revision) -> Result<Option<Pair>, MvccError> {
        let Some(at) = self.packs.partition_point(|pack| *pack <= revision).checked_sub(1) else {
            return Ok(None);
        };
        let key = self.packs[at].to_key();
        Ok(self.backend.get(Tree::State, &key)?.map(|value| (key.to_vec(), value)))
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

    /// Checks the invariants in the module doc.
    pub fn validate(&self) -> Result<(), String> {
        if self.compact_revision > self.current_revision {
            return Err(format!(
                "compact revision {} is past current revision {}",
                self.compact_revision, self.current_revision
            ));
        }
        for (key, index) in &self.index {
            index
                .check()
                .map_err(|e| format!("key {:?}: {e}", String::from_utf8_lossy(key)))?;
            if let Some(last) = index.entries().last()
                && last.revision.main > self.current_revision
            {
                return Err(format!(
                    "key {:?} has revision {} past current revision {}",
                    String::from_utf8_lossy(key),
                    last.revision.main,
                    self.current_revision
                ));
            }
        }
        Ok(())
    }

    /// Checks that the backend holds what this store has in memory: the key index
    /// and the packs rebuilt from it are the ones kept. Reads the whole history;
    /// staged writes must have been committed.
    pub fn check_stored(&self) -> Result<(), String> {
        let (stored, _) = Self::open(self.backend.clone()).map_err(|e| e.to_string())?;
        fn differs<'a>(a: &'a KvStore, b: &KvStore) -> Option<&'a Vec<u8>> {
            a.index
                .iter()
                .find(|(key, index)| b.index.get(*key) != Some(*index))
                .map(|(key, _)| key)
        }
        if let Some(key) = differs(self, &stored).or_else(|| differs(&stored, self)) {
            return Err(format!(
                "the key index of {:?} differs from the one the backend's records make",
                String::from_utf8_lossy(key)
            ));
        }
        if stored.packs != self.packs {
            return Err(format!(
                "{} packs stored, {} known",
                stored.packs.len(),
                self.packs.len()
            ));
        }
        if (stored.current_revision, stored.compact_revision) != (self.current_revision, self.compact_revision) {
            return Err("the stored current or compact revision differs".into());
        }
        Ok(())
    }

    /// Debug-build check of the invariants after every change.
    pub fn debug_validate(&self) {
        if cfg!(debug_assertions)
            && let Err(e) = self.validate()
        {
            panic!("mvcc invariant broken: {e}");
        }
    }
}

/// Calls `f` with every stored record of main revision `from..=to` (no `to`: to the
/// last), in revision order, until it returns `false`: the key of the pack that
/// holds it, its revision, the record.
fn for_each_stored(
    backend: &SharedBackend,
    from: i64,
    to: Option<i64>,
    mut f: impl FnMut(Revision, Revision, &[u8]) -> Result<bool, MvccError>,
) -> Result<(), MvccError> {
    let first = Revision::start_key(from);
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

fn push_to_index(index: &mut BTreeMap<Vec<u8>, KeyIndex>, kv: &KeyValue, revision: Revision, is_tombstone: bool) {
    let key_index = match index.get_mut(&kv.key) {
        Some(key_index) => key_index,
        None => index.entry(kv.key.clone()).or_default(),
    };
    if is_tombstone {
        key_index.push_tombstone(revision);
    } else {
        key_index.push_put(
            revision,
            LiveMeta {
                create_revision: kv.create_revision,
                version: kv.version,
                lease: kv.lease,
            },
        );
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
