//! Read-index batching: concurrent linearizable reads share one confirmation of
//! leadership instead of one quorum round each.
//!
//! A read joins the batch that has not started yet; a batch starts only after every
//! read in it arrived, so the index it obtains is at least as new as each read
//! requires. While a batch is in flight, newcomers gather for the next one.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::{Result, StoreError};

type Waiter = oneshot::Sender<Result<u64>>;

#[derive(Default)]
struct Queue {
    waiting: Vec<Waiter>,
    is_running: bool,
}

#[derive(Default, Clone)]
pub struct ReadIndexBatcher {
    queue: Arc<Mutex<Queue>>,
}

impl ReadIndexBatcher {
    /// The read index for a read that arrives now. `fetch` obtains one (it is run by
    /// whichever read starts the batch, for everyone in it).
    pub async fn read_index<F, Fut>(&self, fetch: F) -> Result<u64>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            queue.waiting.push(tx);
            !std::mem::replace(&mut queue.is_running, true)
        };
        if start {
            tokio::spawn(Self::run(self.queue.clone(), fetch));
        }
        rx.await.map_err(|_| StoreError::Stopped)?
    }

    async fn run<F, Fut>(queue: Arc<Mutex<Queue>>, fetch: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<u64>>,
    {
        loop {
            let batch = {
                let mut queue = queue.lock().unwrap_or_else(|p| p.into_inner());
                if queue.waiting.is_empty() {
                    queue.is_running = false;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            let index = fetch().await;
            for waiter in batch {
                let _ = waiter.send(index.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_reads_share_a_fetch_and_late_reads_wait_for_a_newer_one() {
        let batcher = ReadIndexBatcher::default();
        let fetches = Arc::new(AtomicU64::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let fetch = {
            let fetches = fetches.clone();
            let gate = gate.clone();
            move || {
                let fetches = fetches.clone();
                let gate = gate.clone();
                async move {
                    let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
                    gate.notified().await;
                    Ok(n * 10)
                }
            }
        };
        // The first read starts a fetch that is held open.
        let first = tokio::spawn({
            let b = batcher.clone();
            let f = fetch.clone();
            async move { b.read_index(f).await }
        });
        tokio::task::yield_now().await;
        while fetches.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Reads arriving during that fetch must not get its (older) index.
        let late: Vec<_> = (0..5)
            .map(|_| {
                let b = batcher.clone();
                let f = fetch.clone();
                tokio::spawn(async move { b.read_index(f).await })
            })
            .collect();
        tokio::task::yield_now().await;
        gate.notify_one();
        assert_eq!(first.await.unwrap().unwrap(), 10);
        while fetches.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        for read in late {
            assert_eq!(read.await.unwrap().unwrap(), 20, "late reads share the second fetch");
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "six reads, two confirmations");
    }
}
