//! The multi-version key-value store of one replica.
//!
//! Reads run against the committed state; writes run inside the state machine's
//! apply, through a [`WriteCtx`] that assigns sub-revisions and collects the events.
//! Writes land in an in-memory overlay and a [`WriteBatch`] that the state machine
//! commits together with the applied log id, so the backend never holds half an
//! apply.
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
use super::range::{KeyRange, RangeOptions, RangeResult};
use super::revision::{REVISION_KEY_LEN, Revision};
use crate::backend::{BatchOp, SharedBackend, Tree, WriteBatch};

const META_CURRENT_REVISION: &[u8] = b"m/current_revision";
const META_COMPACT_REVISION: &[u8] = b"m/compact_revision";
const RECORD_PUT: u8 = 0;
const RECORD_TOMBSTONE: u8 = 1;
const LOAD_CHUNK: usize = 4096;

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
    /// Records written by the apply in progress and not yet committed to the backend:
    /// where each one's put sits in `batch`.
    pending: HashMap<Revision, usize>,
    batch: WriteBatch,
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
        let mut start = Revision::start_key(0).to_vec();
        let end = [super::REVISION_KEY_PREFIX + 1];
        loop {
            let chunk = backend.scan(Tree::State, &start, Some(&end), LOAD_CHUNK)?;
            let Some((last_key, _)) = chunk.last() else {
                break;
            };
            let mut next = last_key.clone();
            next.push(0);
            for (key, value) in &chunk {
                let revision = Revision::from_key(key).ok_or_else(|| MvccError::CorruptRecord {
                    revision: Revision::default(),
                    reason: format!("revision key of {} bytes, want {REVISION_KEY_LEN}", key.len()),
                })?;
                let (kv, is_tombstone) = decode_record(revision, value)?;
                if is_tombstone {
                    latest_lease.remove(&kv.key);
                } else {
                    latest_lease.insert(kv.key.clone(), kv.lease);
                }
                push_to_index(&mut index, &kv, revision, is_tombstone);
            }
            if chunk.len() < LOAD_CHUNK {
                break;
            }
            start = next;
        }
        let store = Self {
            backend,
            index,
            current_revision,
            compact_revision,
            pending: HashMap::new(),
            batch: WriteBatch::new(),
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
            && let Some(BatchOp::Put(_, bytes)) = self.batch.ops.get(at)
        {
            return decode_record(revision, bytes).map(Some);
        }
        match self.backend.get(Tree::State, &revision.to_key())? {
            Some(bytes) => decode_record(revision, &bytes).map(Some),
            None => Ok(None),
        }
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
        self.pending.insert(revision, self.batch.ops.len());
        self.batch.put(revision.to_key().to_vec(), record);
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
        for (key, index) in self.index.iter_mut() {
            for removed in index.compact(revision) {
                self.batch.delete(removed.to_key().to_vec());
                self.pending.remove(&removed);
            }
            if index.is_empty() {
                emptied.push(key.clone());
            }
        }
        for key in emptied {
            self.index.remove(&key);
        }
        self.compact_revision = revision;
        self.batch
            .put(META_COMPACT_REVISION.to_vec(), revision.to_be_bytes().to_vec());
        Ok(())
    }

    /// Hands the staged writes to the caller, who commits them atomically with the
    /// applied log id.
    pub fn take_batch(&mut self) -> WriteBatch {
        self.pending.clear();
        std::mem::take(&mut self.batch)
    }

    /// Drops staged writes after a failed commit; the caller must reload from the backend.
    pub fn has_staged_writes(&self) -> bool {
        !self.batch.is_empty()
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
        let end = Revision::start_key(to + 1);
        let mut start = Revision::start_key(from).to_vec();
        let mut out: Vec<RevisionEvents> = Vec::new();
        'scan: loop {
            let chunk = self.backend.scan(Tree::State, &start, Some(&end), LOAD_CHUNK)?;
            for (key, value) in &chunk {
                let Some(revision) = Revision::from_key(key) else {
                    continue;
                };
                let (kv, is_tombstone) = decode_record(revision, value)?;
                if out.last().is_none_or(|last| last.revision != revision.main) {
                    if out.len() == max_revisions {
                        break 'scan;
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
            }
            if chunk.len() < LOAD_CHUNK {
                break;
            }
            let mut next = chunk.last().expect("non-empty chunk").0.clone();
            next.push(0);
            start = next;
        }
        Ok(out)
    }

    /// A hash of every record with main revision in `compact..=at`; replicas that
    /// applied the same log agree on it.
    pub fn hash_kv(&self, at: i64) -> Result<u32, MvccError> {
        let mut hash = Fnv32::new();
        let end = Revision::start_key(at + 1);
        let mut start = Revision::start_key(self.compact_revision).to_vec();
        loop {
            let chunk = self.backend.scan(Tree::State, &start, Some(&end), LOAD_CHUNK)?;
            for (key, value) in &chunk {
                hash.write(key);
                hash.write(value);
            }
            if chunk.len() < LOAD_CHUNK {
                break;
            }
            let mut next = chunk.last().expect("non-empty chunk").0.clone();
            next.push(0);
            start = next;
        }
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

    /// Debug-build check of the invariants after every change.
    pub fn debug_validate(&self) {
        if cfg!(debug_assertions)
            && let Err(e) = self.validate()
        {
            panic!("mvcc invariant broken: {e}");
        }
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
