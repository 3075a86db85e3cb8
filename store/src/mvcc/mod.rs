//! Multi-version concurrency control, as etcd's mvcc package: every write transaction
//! gets one main revision; each key keeps its history of revisions in memory
//! ([`KeyIndex`]); values live in the backend keyed by revision, a few kilobytes of
//! them to a backend key ([`packs`]), so a read at any revision since the last
//! compaction sees exactly the state at that revision.
//!
//! ```text
//!   put/delete ──► KvStore::put / delete_range ──► pending overlay + WriteBatch
//!                                      │                 (committed by the state
//!                                      ▼                  machine with the applied
//!                                key index (memory)       log id, atomically)
//! ```

mod error;
mod key_index;
mod kvstore;
mod packs;
mod range;
mod revision;

pub use error::MvccError;
pub use key_index::{IndexEntry, KeyIndex, LiveMeta};
pub use kvstore::{KvStore, RevisionEvents, WriteCtx};
pub use range::{KeyRange, RangeOptions, RangeResult};
pub use revision::{INITIAL_REVISION, REVISION_KEY_PREFIX, Revision};
