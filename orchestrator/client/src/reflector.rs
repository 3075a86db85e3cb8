//! The one list-then-watch loop: every cache of the orchestrator (the leader's
//! informers, an agent's view of its pods) is fed by [`reflect`].
//!
//! ```text
//!  list prefix at R (in pages, all at R) ──► sink.replace(records, R) ──► watch from R + 1
//!        ▲                                               │ events: sink.apply(events, last event's revision)
//!        │ compacted (the revision we need is gone)      │ progress only: ignored
//!        └───────────────────────────────────────────────┤ stream ended or failed:
//!                                                        └─► watch again from revision + 1
//! ```
//!
//! A failed list or watch is logged at warn: a cache that cannot list stays stale
//! (its loops see nothing new), so the failure must be visible without debug logs.

use std::sync::Arc;
use std::time::Duration;

use crate::kv::{Event, Kv, KvError, Record};

/// How long to wait before listing or watching again after the store failed.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// Receives what the reflector reads; implementations update a cache.
pub trait Sink: Send + Sync + 'static {
    /// The whole content of the prefix at `revision`.
    fn replace(&self, records: Vec<Record>, revision: i64);
    /// Events up to `revision` (events are in revision order and none is older than
    /// the revision of the previous call).
    fn apply(&self, events: Vec<Event>, revision: i64);
}

/// Lists then watches `prefix` forever, feeding `sink`. Starts with a list, or
/// (tests) with a watch from `resume`.
pub async fn reflect(kv: Kv, prefix: String, sink: Arc<dyn Sink>, resume: Option<i64>) {
    let mut resume = resume;
    loop {
        let mut next = match resume.take() {
            Some(next) => next,
            None => match kv.list(&prefix).await {
                Ok((kvs, revision)) => {
                    sink.replace(kvs, revision);
                    revision + 1
                }
                Err(e) => {
                    tracing::warn!(%prefix, error = %e, "list failed; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
            },
        };
        // Watch from `next` until the revision we need has been compacted away.
        loop {
            let mut watch = match kv.watch(&prefix, next).await {
                Ok(watch) => watch,
                Err(KvError::Compacted { .. }) => break,
                Err(e) => {
                    tracing::warn!(%prefix, error = %e, "watch failed; retrying");
                    tokio::time::sleep(RETRY_DELAY).await;
                    continue;
                }
            };
            let mut compacted = false;
            while let Some(batch) = watch.next().await {
                match batch {
                    Ok((_, events)) => {
                        // Events older than `next` were applied already (never expected).
                        let events: Vec<Event> = events.into_iter().filter(|e| e.revision() >= next).collect();
                        // Progress notifications (no events) are not trusted to move the
                        // revision: the controllers' expectations and the scheduler's
                        // assumed pods wait on it, and only events prove what was seen.
                        let Some(revision) = events.last().map(Event::revision) else {
                            continue;
                        };
                        sink.apply(events, revision);
                        next = revision + 1;
                    }
                    Err(KvError::Compacted { .. }) => {
                        compacted = true;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(%prefix, error = %e, "watch failed; resuming");
                        break;
                    }
                }
            }
            if compacted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(%prefix, next, "the watch revision was compacted; listing again");
    }
}
