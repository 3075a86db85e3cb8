//! A node's `Ready` condition kept by its agent. The kubelet posts its Node's status
//! whenever the stored one differs from what it would report (checked every
//! `nodeStatusUpdateFrequency`, 10 s), so a Node the node lifecycle controller marked
//! (`Ready=Unknown` after heartbeats it missed or saw late) is `Ready=True` again
//! within seconds once the kubelet's heartbeat is held; the controller then lifts its
//! unreachable taints.
//!
//! ```text
//!  watch of the Node (fieldSelector metadata.name=<node>; the hollow process: one
//!  watch of every Node) ─► NodeMarks: stored Ready not True? mark it, wake its keeper
//!  keeper (runs only while the node's heartbeat is held):
//!    woken and marked ─► write the Node's status (Ready=True) ─► unmarked
//!                        failing: again after a second
//! ```
//!
//! Berth's agents compare only the `Ready` condition: the rest of the status they
//! report changes only when they register (and then they write it whole). The check
//! follows the watch instead of a read every 10 s: a Node is read when it changes, not
//! 5000 times every 10 s at 5000 nodes. A deleted Node is left deleted until the agent
//! registers again, as the kubelet leaves it until it restarts.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_api::objects::NodeSpec;
use berth_client::kv::{Event, KvError, Record};
use berth_client::reflector::Sink;
use berth_client::registry::decode;

/// How long a keeper waits before trying a failed write again.
const RETRY: Duration = Duration::from_secs(1);

/// One node's mark: its stored `Ready` condition is not `True`.
#[derive(Default)]
struct Mark {
    marked: AtomicBool,
    wake: tokio::sync::Notify,
}

/// The nodes an agent process keeps Ready, by name, fed by a watch of their Nodes.
pub struct NodeMarks {
    index: HashMap<String, usize>,
    marks: Vec<Mark>,
}

impl NodeMarks {
    /// Marks for `names`, in order (a keeper names its node by position).
    pub fn new(names: impl IntoIterator<Item = String>) -> NodeMarks {
        let index: HashMap<String, usize> = names.into_iter().enumerate().map(|(i, name)| (name, i)).collect();
        let marks = (0..index.len()).map(|_| Mark::default()).collect();
        NodeMarks { index, marks }
    }

    /// Whether node `position`'s stored Node was last seen other than `Ready=True`.
    pub fn is_marked(&self, position: usize) -> bool {
        self.marks[position].marked.load(Ordering::Relaxed)
    }

    fn see(&self, record: &Record) {
        let Ok(node) = decode::<NodeSpec>(record) else {
            return;
        };
        let Some(&position) = node.metadata.name.as_ref().and_then(|name| self.index.get(name)) else {
            return;
        };
        let ready = berth_api::conditions::is_true(node.status.conditions.as_ref(), "Ready");
        let mark = &self.marks[position];
        mark.marked.store(!ready, Ordering::Relaxed);
        if !ready {
            mark.wake.notify_one();
        }
    }

    /// Writes node `position`'s status with `write` whenever its Node is seen
    /// marked; never returns (run it beside the heartbeat, dropped with it).
    pub async fn keep<F, Fut>(&self, position: usize, write: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<(), KvError>>,
    {
        let mark = &self.marks[position];
        loop {
            // Marked before the heartbeat was held again: the wake is stored.
            if !self.is_marked(position) {
                mark.wake.notified().await;
                continue;
            }
            match write().await {
                // Not Ready=True again unless the watch says so after this write.
                Ok(()) => mark.marked.store(false, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write the Node Ready again yet; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }
}

impl Sink for NodeMarks {
    fn replace(&self, records: Vec<Record>, _revision: i64) {
        records.iter().for_each(|record| self.see(record));
    }

    fn apply(&self, events: Vec<Event>, _revision: i64) {
        for event in &events {
            if let Event::Put(record) = event {
                self.see(record);
            }
        }
    }
}

#[cfg(test)]
#[path = "node_ready_tests.rs"]
mod tests;
