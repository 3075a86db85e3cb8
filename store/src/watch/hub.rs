use std::sync::Arc;

use tokio::sync::broadcast;

use crate::mvcc::RevisionEvents;

/// How many applied batches the hub holds for watchers that are a little behind;
/// past that a watcher reads history instead of holding memory.
const HUB_CAPACITY: usize = 1024;

#[derive(Debug, Clone)]
pub struct WatchHub {
    tx: broadcast::Sender<Arc<Vec<RevisionEvents>>>,
}

impl Default for WatchHub {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchHub {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(HUB_CAPACITY);
        Self { tx }
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
