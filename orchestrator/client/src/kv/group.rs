//! Group commit: many callers' conditional writes committed together, each with the
//! outcome it would have had alone. A write is queued when it is made; one task
//! sends the queue as one transaction (bounded by etcd's `--max-txn-ops` and a size),
//! and the writes made while that transaction is in flight go in the next, so an
//! idle group adds no delay and a busy one pays one round trip per batch instead of
//! one per write. The scheduler binds pods with it, event recorders create events
//! with it; node heartbeats can write with it.
//!
//! ```text
//!  update_if(key, value, rev, also, fence) ─► queue ─► batch: writes that touch no
//!        key another of them writes, one fence        │
//!                                                     ▼
//!      txn(compare: every write's key and also keys, the fence; success: the puts;
//!          failure: read those keys)
//!        succeeded: every write has the txn's revision
//!        failed:    the fence changed: every write Fenced; otherwise each write whose
//!                   own compares failed gets NotFound/Conflict, as alone, and the
//!                   others are sent again at the head of the next batch
//! ```
//!
//! The writes of one batch are independent (no write's key is another's key or
//! also key), so committing them at once is the same as committing them one after
//! another in any order. Each failed batch settles at least one write, so the
//! writes sent again always make progress.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;

use berth_proto::etcdserverpb::{Compare, RequestOp, TxnRequest};
use tokio::sync::{mpsc, oneshot};

use super::write::{first_read, get_op, log_fenced, log_refused, mod_revision_is, put_op};
use super::{Fence, Kv, KvError, Result};

/// The most compares (and so reads and puts) in one transaction: etcd's default
/// `--max-txn-ops`.
pub const MAX_GROUP_OPS: usize = 128;

/// The most bytes of values in one transaction, below the store's 1.5 MiB request
/// limit; a single larger write goes alone.
const MAX_GROUP_BYTES: usize = 1024 * 1024;

/// How far past the head of the queue a batch looks for writes it can take.
const SCAN: usize = 4 * MAX_GROUP_OPS;

/// A group committer: a handle to a task that commits the writes given to it in
/// batches. Clones share the task; it ends when the last clone is dropped (the
/// writes already queued are committed first).
#[derive(Clone)]
pub struct Group {
    kv: Kv,
    queue: mpsc::UnboundedSender<Queued>,
}

/// One write waiting in the queue, and where its outcome goes.
struct Queued {
    key: String,
    value: Vec<u8>,
    mod_revision: i64,
    also: Vec<(String, i64)>,
    fence: Option<Fence>,
    /// The lease the put attaches the key to (0: none).
    lease: i64,
    done: oneshot::Sender<Result<i64>>,
}

impl Queued {
    fn compares(&self) -> usize {
        1 + self.also.len()
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.key.as_str()).chain(self.also.iter().map(|(k, _)| k.as_str()))
    }
}

impl Kv {
    /// A group committer writing through this client. Its task runs on the current
    /// tokio runtime.
    pub fn group(&self) -> Group {
        let (queue, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(self.clone(), receiver));
        Group {
            kv: self.clone(),
            queue,
        }
    }
}

impl Group {
    /// Queues a write of `value` under `key`, made only if `key` is still at
    /// `mod_revision` (0: absent, a create), every `(other key, mod_revision)` in
    /// `also` is unchanged too (a missing key has mod_revision 0) and the fence's
    /// record is still at its revision. The write is queued when this is called,
    /// not when the future is first polled; the future gives what [`Kv::update_if`]
    /// would have given for the write alone: the revision it landed at, `Fenced`,
    /// `NotFound` (the key is gone), `Conflict` with the current mod_revision of the
    /// key or of the first changed `also` key, or the transport's error (outcome
    /// unknown). The key's lease, if any, is dropped, as `update_if` does.
    pub fn update_if(
        &self,
        key: &str,
        value: Vec<u8>,
        mod_revision: i64,
        also: &[(&str, i64)],
        fence: Option<&Fence>,
    ) -> impl Future<Output = Result<i64>> + Send + 'static + use<> {
        let also = also.iter().map(|(k, r)| (k.to_string(), *r)).collect();
        self.queue(key, value, mod_revision, also, fence.cloned(), 0)
    }

    /// Queues the creation of `key`, attached to `lease` (0: none): what
    /// [`Kv::create`] would have given alone, `AlreadyExists` when the key is there.
    pub fn create(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: i64,
    ) -> impl Future<Output = Result<i64>> + Send + 'static + use<> {
        let written = self.queue(key, value, 0, Vec::new(), None, lease);
        async move {
            match written.await {
                Err(KvError::Conflict { .. }) => Err(KvError::AlreadyExists),
                other => other,
            }
        }
    }

    fn queue(
        &self,
        key: &str,
        value: Vec<u8>,
        mod_revision: i64,
        also: Vec<(String, i64)>,
        fence: Option<Fence>,
        lease: i64,
    ) -> impl Future<Output = Result<i64>> + Send + 'static + use<> {
        let (done, outcome) = oneshot::channel();
        let queued = self.kv.seal(key, value).and_then(|value| {
            let write = Queued {
                key: key.to_string(),
                value,
                mod_revision,
                also,
                fence,
                lease,
                done,
            };
            self.queue
                .send(write)
                .map_err(|_| KvError::Other("the group commit task has stopped".into()))
        });
        async move {
            queued?;
            outcome
                .await
                .unwrap_or_else(|_| Err(KvError::Unavailable("the group commit task has stopped".into())))
        }
    }
}

/// The group's task: takes what has been queued, commits a batch, repeats.
async fn run(kv: Kv, mut receiver: mpsc::UnboundedReceiver<Queued>) {
    let mut queue: VecDeque<Queued> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match receiver.recv().await {
                Some(write) => queue.push_back(write),
                None => return,
            }
        }
        while let Ok(write) = receiver.try_recv() {
            queue.push_back(write);
        }
        let batch = take_batch(&mut queue);
        let again = commit(&kv, batch).await;
        for write in again.into_iter().rev() {
            queue.push_front(write);
        }
    }
}

/// The next batch from the head of `queue`: the first write, then those after it
/// with the same fence that touch no key another write of the batch writes, within
/// the bounds. The rest keep their places.
fn take_batch(queue: &mut VecDeque<Queued>) -> Vec<Queued> {
    let mut batch: Vec<Queued> = Vec::new();
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut touched: BTreeSet<String> = BTreeSet::new();
    let mut compares = 0;
    let mut bytes = 0;
    let mut i = 0;
    while i < queue.len() && i < SCAN {
        let write = &queue[i];
        let fence_ops = usize::from(write.fence.is_some());
        let fits = match batch.first() {
            None => true,
            Some(first) => {
                first.fence == write.fence
                    && compares + write.compares() + fence_ops <= MAX_GROUP_OPS
                    && bytes + write.value.len() <= MAX_GROUP_BYTES
                    && !touched.contains(&write.key)
                    && !write.also.iter().any(|(k, _)| written.contains(k))
            }
        };
        if !fits {
            if compares + fence_ops + 1 > MAX_GROUP_OPS {
                break;
            }
            i += 1;
            continue;
        }
        let write = queue.remove(i).expect("an index inside the queue");
        compares += write.compares();
        bytes += write.value.len();
        written.insert(write.key.clone());
        touched.extend(write.keys().map(str::to_string));
        batch.push(write);
    }
    batch
}

/// Commits `batch` in one transaction and gives each write its outcome, but for the
/// writes whose own compares held in a transaction that failed: those are returned,
/// to be sent again.
async fn commit(kv: &Kv, batch: Vec<Queued>) -> Vec<Queued> {
    let fence = batch.first().and_then(|w| w.fence.clone());
    let mut compare: Vec<Compare> = Vec::new();
    let mut success: Vec<RequestOp> = Vec::new();
    // Each key read once in the failure branch: its index there.
    let mut reads: BTreeMap<&str, usize> = BTreeMap::new();
    for write in &batch {
        compare.push(mod_revision_is(&write.key, write.mod_revision));
        compare.extend(write.also.iter().map(|(k, r)| mod_revision_is(k, *r)));
        success.push(put_op(&write.key, write.value.clone(), write.lease));
        for key in write.keys() {
            let next = reads.len();
            reads.entry(key).or_insert(next);
        }
    }
    let mut failure = vec![RequestOp::default(); reads.len()];
    for (key, i) in &reads {
        failure[*i] = get_op(key);
    }
    if let Some(fence) = &fence {
        compare.push(mod_revision_is(&fence.key, fence.mod_revision));
        failure.push(get_op(&fence.key));
    }
    let fence_read = reads.len();
    let reads: BTreeMap<String, usize> = reads.into_iter().map(|(k, i)| (k.to_string(), i)).collect();
    tracing::trace!(writes = batch.len(), "group commit");
    let response = match kv
        .txn(TxnRequest {
            compare,
            success,
            failure,
        })
        .await
    {
        Ok(response) => response,
        Err(e) => {
            for write in batch {
                let _ = write.done.send(Err(e.clone()));
            }
            return Vec::new();
        }
    };
    if response.succeeded {
        let revision = response.header.map_or(0, |h| h.revision);
        for write in batch {
            if let Some(fence) = &fence {
                log_fenced(&write.key, fence, revision);
            }
            let _ = write.done.send(Ok(revision));
        }
        return Vec::new();
    }
    if let Some(fence) = &fence
        && first_read(&response, fence_read).map(|kv| kv.mod_revision) != Some(fence.mod_revision)
    {
        for write in batch {
            log_refused(&write.key, fence);
            let _ = write.done.send(Err(KvError::Fenced));
        }
        return Vec::new();
    }
    let size = batch.len();
    let current = |key: &str| first_read(&response, reads[key]).map(|kv| kv.mod_revision);
    let mut again = Vec::new();
    for write in batch {
        match own_outcome(&write, current) {
            Some(error) => {
                let _ = write.done.send(Err(error));
            }
            None => again.push(write),
        }
    }
    if again.len() == size {
        // No compare of the writes failed, yet the transaction did: nothing to
        // settle by, so no write is sent again (it would fail the same way).
        for write in again {
            let _ = write.done.send(Err(KvError::Conflict { current: 0 }));
        }
        return Vec::new();
    }
    again
}

/// Why `write` fails, as it would alone, given each key's current mod_revision
/// (`None`: absent); `None` when its compares hold.
fn own_outcome(write: &Queued, current: impl Fn(&str) -> Option<i64>) -> Option<KvError> {
    match current(&write.key) {
        None if write.mod_revision != 0 => return Some(KvError::NotFound),
        Some(now) if now != write.mod_revision => return Some(KvError::Conflict { current: now }),
        _ => {}
    }
    write.also.iter().find_map(|(key, expected)| {
        let now = current(key).unwrap_or(0);
        (now != *expected).then_some(KvError::Conflict { current: now })
    })
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
