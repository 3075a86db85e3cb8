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
//!
//! ```text
//!   mod.rs        the store, its records, loading it from the backend
//!   read.rs       point and range reads at a revision
//!   write.rs      write transactions, and the batch they leave for the backend
//!   compaction.rs forgetting old revisions, in the index and in the packs
//!   history.rs    events and hashes read back from the stored records
//!   validation.rs the invariants above, and the backend against memory
//! ```

use std::collections::{BTreeMap, HashMap};

use berth_proto::Message;
use berth_proto::mvccpb::{Event, KeyValue};

use super::MvccError;
use super::key_index::{KeyIndex, LiveMeta};
use super::revision::Revision;
use crate::backend::{SharedBackend, Tree, WriteBatch};

mod compaction;
mod history;
mod read;
mod validation;
mod write;

use history::for_each_stored;

const META_CURRENT_REVISION: &[u8] = b"m/current_revision";
const META_COMPACT_REVISION: &[u8] = b"m/compact_revision";
/// The revision of a store nothing was ever written to.
pub const EMPTY_STORE_REVISION: i64 = 1;
const RECORD_PUT: u8 = 0;
const RECORD_TOMBSTONE: u8 = 1;

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
        // etcd's empty store is at revision 1 and its first write makes revision 2.
        // Clients depend on it: the concurrency package's elections and locks wait
        // for keys created at or before `revision - 1`, where 0 means "no bound", so a
        // first write at revision 1 would make a candidate wait for its own key.
        let current_revision = match backend.get(Tree::State, META_CURRENT_REVISION)? {
            None => EMPTY_STORE_REVISION,
            Some(_) => read_i64(&backend, META_CURRENT_REVISION)?,
        };
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
