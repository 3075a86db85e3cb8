use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::broadcast;

use crate::mvcc::RevisionEvents;

/// How many applied batches the hub holds for watchers that are a little behind;
/// past that a watcher reads history instead of holding memory.
const HUB_CAPACITY: usize = 1024;

#[derive(Debug, Clone)]
pub struct WatchHub {
    tx: broadcast::Sender<Arc<Vec<RevisionEvents>>>,
    /// Watchers on this replica that asked for previous values.
    prev_kv_watchers: Arc<AtomicUsize>,
}

/// Held by a watcher that asked for previous values; while any is held, applied
/// puts put the value they replaced in their events.
#[derive(Debug)]
pub struct PrevKvInterest(Arc<AtomicUsize>);

impl Drop for PrevKvInterest {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for WatchHub {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchHub {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(HUB_CAPACITY);
        Self {
            tx,
            prev_kv_watchers: Arc::default(),
        }
    }

    /// Whether some watcher wants previous values in the events it gets.
    pub fn wants_prev_kv(&self) -> bool {
        self.prev_kv_watchers.load(Ordering::Acquire) > 0
    }

    /// Registers a watcher's wish for previous values, until the interest is dropped.
    pub fn want_prev_kv(&self) -> PrevKvInterest {
        self.prev_kv_watchers.fetch_add(1, Ordering::AcqRel);
        PrevKvInterest(self.prev_kv_watchers.clone())
    }

    /// Called after a batch is committed to the backend, in revision order.
    pub fn publish(&self, events: Vec<RevisionEvents>) {
        if !events.is_empty() {
            // No receivers is fine: nobody watches.
            let _ = self.tx.send(Arc::new(events));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Vec<RevisionEvents>>> {
        self.tx.subscribe()
    }
}
