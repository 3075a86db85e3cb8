//! The API server's watch cache, as kube-apiserver's: one store watch per kind
//! (started by the kind's first watch, `resourceVersion=0` list or update), fanned
//! out to every client's watch, instead of one store watch per client. An update
//! starts from the cache's copy of its object (rest.rs), as kube-apiserver's do.
//!
//! ```text
//!  store: list R ──► State (objects, pods by node) ──► watch from R + 1
//!                                                        │ batch: apply ──► window of changes
//!                                                        ▼         (prev and next versions)
//!     watchers ◄── lines, made once per change ◄── the watchers it may concern:
//!     (bounded queues;                               those of the pods' nodes
//!      full: closed, the client                      (spec.nodeName=<node>) and
//!      resumes from its last                         every other
//!      resourceVersion)
//!  progress ──► BOOKMARK to those that allow them
//!  compacted (the cache fell behind) ──► list again; every watcher closed
//! ```
//!
//! A watch from a revision the window has dropped is answered 410 Expired, as
//! kube-apiserver's cache answers it: the client lists again (from the cache)
//! instead of every late client replaying the store's history on a store watch of
//! its own. A watch from before the cache was filled, or while it cannot be, is
//! served by the store as before (watch.rs), which answers 410 once that revision
//! is compacted.
//!
//! Lists: `resourceVersion=0` is served from the cache as it is (any revision will
//! do, as Kubernetes allows; its `limit` is not honored, as kube-apiserver's cache
//! does not). A consistent list (no `resourceVersion`) or one not older than a
//! revision, without `limit`, is served from the cache once it has caught up with
//! the store's current revision (or the one asked), as kube-apiserver 1.32's
//! consistent reads from cache: the cache asks the store for a progress
//! notification to learn it has, and a cache that has not within [`FRESH_WAIT`]
//! leaves the list to the store.

pub mod lines;
mod state;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use tokio::sync::{Notify, mpsc, watch};

use self::lines::{ChangeView, WatcherSpec, indexes_nodes};
use self::state::{Change, Entry, State};
use crate::route::Kind;
use berth_client::kv::{Kv, KvError};

/// How many batches of lines (one revision's each) a watcher's queue holds before
/// the watcher is closed as too slow.
const QUEUE: usize = 1024;
/// How long a request waits for a kind's new cache to be filled before the store
/// serves it instead.
const READY_WAIT: Duration = Duration::from_secs(10);
/// The pause before the store's watch is opened again after it broke.
const REWATCH_DELAY: Duration = Duration::from_millis(200);
/// How long a list waits for the cache to reach the revision it must be served at
/// (kube-apiserver waits 3 s too) before the store serves it.
pub const FRESH_WAIT: Duration = Duration::from_secs(3);

/// Every kind's cache, each started on first use.
pub struct Caches {
    caches: Mutex<HashMap<usize, Arc<Cache>>>,
    /// How many changes each cache's window keeps.
    window_len: usize,
}

impl Default for Caches {
    fn default() -> Self {
        Caches::with_window(state::WINDOW)
    }
}

impl Caches {
    /// Caches whose windows keep `window_len` changes each.
    pub fn with_window(window_len: usize) -> Self {
        Caches {
            caches: Mutex::default(),
            window_len,
        }
    }

    /// The cache of `kind`, started if it was not.
    pub fn of(&self, kv: &Kv, kind: &'static Kind) -> Arc<Cache> {
        let id = kind as *const Kind as usize;
        let mut caches = self.caches.lock().expect("caches lock");
        caches
            .entry(id)
            .or_insert_with(|| Cache::start(kv.clone(), kind, self.window_len))
            .clone()
    }
}

/// One kind's cache and the watchers it feeds.
pub struct Cache {
    kind: &'static Kind,
    inner: Mutex<Inner>,
    ready: watch::Receiver<bool>,
    /// The revision the cache has caught up with, for lists that wait for it.
    revision: watch::Sender<i64>,
    /// Asks the feeder for a progress notification of the store's watch.
    progress: Arc<Notify>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().expect("task lock").take() {
            task.abort();
        }
    }
}

struct Inner {
    state: State,
    watchers: Watchers,
}

#[derive(Default)]
struct Watchers {
    next_id: u64,
    all: HashMap<u64, Registered>,
    /// Watchers without a node of their own: offered every change.
    anywhere: BTreeSet<u64>,
    by_node: HashMap<String, BTreeSet<u64>>,
}

struct Registered {
    spec: Arc<WatcherSpec>,
    /// Changes at or before this revision were sent otherwise (or not wanted).
    after: i64,
    tx: mpsc::Sender<Bytes>,
}

impl Watchers {
    fn add(&mut self, spec: Arc<WatcherSpec>, after: i64, tx: mpsc::Sender<Bytes>) {
        let id = self.next_id;
        self.next_id += 1;
        match &spec.node {
            Some(node) => self.by_node.entry(node.clone()).or_default().insert(id),
            None => self.anywhere.insert(id),
        };
        self.all.insert(id, Registered { spec, after, tx });
    }

    fn remove(&mut self, id: u64) {
        let Some(gone) = self.all.remove(&id) else { return };
        match &gone.spec.node {
            Some(node) => {
                if let Some(ids) = self.by_node.get_mut(node) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.by_node.remove(node);
                    }
                }
            }
            None => {
                self.anywhere.remove(&id);
            }
        }
    }

    /// The watchers a change may concern.
    fn candidates(&self, change: &Change) -> Vec<u64> {
        let mut ids: Vec<u64> = self.anywhere.iter().copied().collect();
        let nodes = [&change.prev, &change.next].map(|e| e.as_ref().and_then(|e| e.node.as_deref()));
        for node in nodes.iter().flatten() {
            ids.extend(self.by_node.get(*node).into_iter().flatten());
        }
        if nodes[0].is_some() && nodes[0] == nodes[1] {
            ids.sort_unstable();
            ids.dedup();
        }
        ids
    }

    fn clear(&mut self) {
        *self = Watchers {
            next_id: self.next_id,
            ..Default::default()
        };
    }
}

/// Where a cached watch starts.
#[derive(Debug, Clone, Copy)]
pub enum From {
    /// `resourceVersion=0`: every cached object as ADDED, then the changes after.
    Any,
    /// The changes after this revision.
    After(i64),
}

/// A watch the cache serves: its first lines, then its queue.
pub struct Subscription {
    pub first: Vec<u8>,
    pub lines: mpsc::Receiver<Bytes>,
}

/// Why the cache does not serve a watch.
#[derive(Debug, PartialEq, Eq)]
pub enum Unserved {
    /// Not filled in time, or the revision is from before it was: the store's
    /// watch serves it.
    ByStore,
    /// The window has dropped changes after the revision: every change after
    /// `oldest` is still held (410 Expired: the client lists again).
    TooOld { oldest: i64 },
}

impl Cache {
    fn start(kv: Kv, kind: &'static Kind, window_len: usize) -> Arc<Cache> {
        let (ready_tx, ready) = watch::channel(false);
        let progress = Arc::new(Notify::new());
        let cache = Arc::new(Cache {
            kind,
            inner: Mutex::new(Inner {
                state: State::with_window(indexes_nodes(kind), window_len),
                watchers: Watchers::default(),
            }),
            ready,
            revision: watch::channel(0).0,
            progress: progress.clone(),
            task: Mutex::new(None),
        });
        let weak = Arc::downgrade(&cache);
        let task = tokio::spawn(feed(weak, kv, kind, ready_tx, progress));
        *cache.task.lock().expect("task lock") = Some(task);
        cache
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("watch cache lock")
    }

    /// Whether the cache has been filled, waiting a while for it.
    async fn wait_ready(&self) -> bool {
        let mut ready = self.ready.clone();
        tokio::time::timeout(READY_WAIT, ready.wait_for(|r| *r))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Starts a watch from the cache, or says why it does not serve it.
    pub async fn subscribe(&self, spec: WatcherSpec, from: From) -> Result<Subscription, Unserved> {
        if !self.wait_ready().await {
            return Err(Unserved::ByStore);
        }
        let spec = Arc::new(spec);
        let (tx, lines) = mpsc::channel(QUEUE);
        let mut first = Vec::new();
        match from {
            From::Any => {
                let objects = {
                    let mut inner = self.lock();
                    let objects = inner.state.objects_under(&spec.prefix, spec.node.as_deref());
                    let at = inner.state.revision;
                    inner.watchers.add(spec.clone(), at, tx);
                    objects
                };
                for entry in &objects {
                    first.extend(lines::added_line(self.kind, entry, &spec).unwrap_or_default());
                }
            }
            From::After(revision) => {
                let changes = {
                    let mut inner = self.lock();
                    let Some(changes) = inner.state.changes_after(revision) else {
                        let state = &inner.state;
                        return Err(match state.oldest > state.listed_at {
                            true => Unserved::TooOld { oldest: state.oldest },
                            false => Unserved::ByStore,
                        });
                    };
                    inner.watchers.add(spec.clone(), revision, tx);
                    changes
                };
                for change in &changes {
                    if let Some(line) = ChangeView::new(self.kind, change).line_for(&spec) {
                        first.extend_from_slice(&line);
                    }
                }
            }
        }
        Ok(Subscription { first, lines })
    }

    /// The cached objects under `prefix` (on `node`, for pods), and the revision
    /// the cache is at; `None` when the cache is not filled in time (while it is
    /// being filled, for a list at a revision: the store serves those at once, as
    /// kube-apiserver's do), or has not caught up with `at_least` (0: any) in time.
    pub async fn list(&self, prefix: &str, node: Option<&str>, at_least: i64) -> Option<(Vec<Arc<Entry>>, i64)> {
        let ready = match at_least {
            0 => self.wait_ready().await,
            _ => *self.ready.borrow(),
        };
        if !ready || !self.wait_for(at_least).await {
            return None;
        }
        let inner = self.lock();
        Some((inner.state.objects_under(prefix, node), inner.state.revision))
    }

    /// The object at `key` as the cache holds it, without waiting: `None` when the
    /// cache is not filled yet or has no such key. It may be behind the store: an
    /// update made from it is conditional on its revision (kube-apiserver's
    /// GuaranteedUpdate starts from its cache's object the same way).
    pub fn get(&self, key: &str) -> Option<berth_client::kv::Record> {
        if !*self.ready.borrow() {
            return None;
        }
        let inner = self.lock();
        inner.state.objects.get(key).map(|entry| entry.record.clone())
    }

    /// Stops the cache where it is (its store watch ends): a stale cache, for tests.
    #[cfg(test)]
    pub fn freeze(&self) {
        if let Some(task) = self.task.lock().expect("task lock").take() {
            task.abort();
        }
    }

    /// Whether the cache reaches `revision` within [`FRESH_WAIT`], asking the store
    /// for progress (its watch is silent while nothing under the prefix changes).
    async fn wait_for(&self, revision: i64) -> bool {
        let mut at = self.revision.subscribe();
        if *at.borrow_and_update() >= revision {
            return true;
        }
        self.progress.notify_one();
        tokio::time::timeout(FRESH_WAIT, at.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Applies a batch of the store's watch and offers its changes to the watchers.
    fn apply(&self, revision: i64, events: Vec<berth_client::kv::Event>) {
        let mut inner = self.lock();
        let is_progress = events.is_empty();
        let changes = inner.state.apply(revision, events);
        self.revision.send_replace(inner.state.revision);
        let Inner { watchers, state } = &mut *inner;
        let mut gone = Vec::new();
        // Each watcher's lines of the batch, sent as one message: a revision's changes
        // (one transaction's) reach a watcher all together or not at all, so a client
        // that resumes from the last resourceVersion it saw misses none of them.
        let mut batches: HashMap<u64, Vec<Bytes>> = HashMap::new();
        for change in &changes {
            let view = ChangeView::new(self.kind, change);
            for id in watchers.candidates(change) {
                let watcher = &watchers.all[&id];
                if change.revision <= watcher.after {
                    continue;
                }
                if let Some(line) = view.line_for(&watcher.spec) {
                    batches.entry(id).or_default().push(line);
                }
            }
        }
        for (id, mut lines) in batches {
            // One line (most batches) goes as made, shared with the other watchers.
            let message = match lines.len() {
                1 => lines.pop().expect("one line"),
                _ => Bytes::from(lines.concat()),
            };
            if watchers.all[&id].tx.try_send(message).is_err() {
                // Too slow, or gone: it is closed, and resumes from its last
                // resourceVersion if it is still there.
                gone.push(id);
            }
        }
        if is_progress {
            let bookmark = lines::bookmark(self.kind, state.revision);
            for (id, watcher) in &watchers.all {
                if watcher.tx.is_closed() {
                    gone.push(*id);
                } else if watcher.spec.allow_bookmarks && state.revision > watcher.after {
                    // A full queue skips a bookmark; the next one will do.
                    let _ = watcher.tx.try_send(bookmark.clone());
                }
            }
        }
        for id in gone {
            watchers.remove(id);
        }
    }

    /// Everything as listed at `revision`; every watcher is closed (each resumes
    /// from its last resourceVersion, or lists again on a 410).
    fn reset(&self, records: Vec<berth_client::kv::Record>, revision: i64) {
        let mut inner = self.lock();
        inner.state.reset(records, revision);
        inner.watchers.clear();
        self.revision.send_replace(revision);
    }

    /// How many watchers the cache feeds.
    #[cfg(test)]
    pub fn watchers(&self) -> usize {
        self.lock().watchers.all.len()
    }
}

/// Fills the cache and keeps it current until the cache is dropped.
async fn feed(
    cache: std::sync::Weak<Cache>,
    kv: Kv,
    kind: &'static Kind,
    ready: watch::Sender<bool>,
    progress: Arc<Notify>,
) {
    let prefix = kind.prefix(None);
    loop {
        let (records, revision) = match kv.list(&prefix).await {
            Ok(listed) => listed,
            Err(e) => {
                tracing::debug!(kind = kind.plural, error = %e, "the watch cache cannot list yet");
                tokio::time::sleep(REWATCH_DELAY).await;
                continue;
            }
        };
        let Some(strong) = cache.upgrade() else { return };
        strong.reset(records, revision);
        drop(strong);
        let _ = ready.send(true);
        let mut at = revision;
        'watch: loop {
            let mut store_watch = match kv.watch(&prefix, at + 1).await {
                Ok(w) => w,
                Err(KvError::Compacted { .. }) => break 'watch,
                Err(e) => {
                    tracing::debug!(kind = kind.plural, error = %e, "the watch cache's store watch failed; again");
                    tokio::time::sleep(REWATCH_DELAY).await;
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    next = store_watch.next() => next,
                    () = progress.notified() => {
                        store_watch.request_progress().await;
                        continue;
                    }
                };
                match next {
                    Some(Ok((revision, events))) => {
                        let Some(strong) = cache.upgrade() else { return };
                        strong.apply(revision, events);
                        at = strong.lock().state.revision;
                    }
                    Some(Err(KvError::Compacted { .. })) => break 'watch,
                    Some(Err(e)) => {
                        tracing::debug!(kind = kind.plural, error = %e, "the watch cache's store watch broke; again");
                        tokio::time::sleep(REWATCH_DELAY).await;
                        continue 'watch;
                    }
                    None => {
                        tokio::time::sleep(REWATCH_DELAY).await;
                        continue 'watch;
                    }
                }
            }
        }
        tracing::info!(
            kind = kind.plural,
            "the watch cache fell behind the store's compaction; listing again"
        );
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
