//! Watches. The hub broadcasts what each apply committed; every watcher is a task
//! that follows the broadcast while it keeps up and reads MVCC history when it
//! falls behind or starts from an old revision.
//!
//! ```text
//!  apply commits ──► WatchHub (bounded broadcast of Arc'd batches, never blocks writers)
//!                         │ lagged?  ──► catch up from KvStore::events_between
//!                         ▼
//!                  watcher task (filter, prev_kv) ──► stream's bounded output queue
//! ```
//!
//! A watcher delivers every revision after its start exactly once and in order,
//! because it tracks the next revision it owes and skips or back-fills around it.

mod hub;
mod watcher;

pub use hub::WatchHub;
pub use watcher::{WatchSpec, Watcher, WatcherProgress};
