//! The requests of the pods bound to nodes, kept from one pass to the next. Every
//! pass charges each bound pod to its node, and between two passes almost none of
//! them change: a pod's requests are made again only when its object did (the
//! informer's snapshots share unchanged objects, so the same `Arc`). Equal label
//! sets are handed out as one `Arc` (the pods of a ReplicaSet all have the same),
//! which lets the default spread group pods by it (run/siblings.rs).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use berth_api::objects::{Pod, PodSpec};
use berth_controller_runtime::informer::Snapshot;

use crate::PodRequest;
use crate::snapshot::{Labels, SnapshotError};

/// Each pod's requests, by key, with the object they were made from.
#[derive(Default)]
pub struct Requests {
    known: HashMap<String, (Arc<Pod>, Arc<PodRequest>)>,
    labels: HashSet<Labels>,
}

impl Requests {
    /// The requests of `pod`, made now unless they were made from this very object.
    pub fn of(&mut self, pod: &Arc<Pod>) -> Result<Arc<PodRequest>, SnapshotError> {
        let key = pod.key();
        if let Some((made_from, request)) = self.known.get(&key)
            && Arc::ptr_eq(made_from, pod)
        {
            return Ok(request.clone());
        }
        let mut request = PodRequest::from_pod(pod)?;
        match self.labels.get(&request.labels) {
            Some(shared) => request.labels = shared.clone(),
            None => {
                self.labels.insert(request.labels.clone());
            }
        }
        let request = Arc::new(request);
        self.known.insert(key, (pod.clone(), request.clone()));
        Ok(request)
    }

    /// Forgets the requests of pods that are gone or changed in `pods`.
    pub fn keep_only(&mut self, pods: &Snapshot<PodSpec>) {
        self.known
            .retain(|key, (made_from, _)| pods.get(key).is_some_and(|now| std::ptr::eq(now, &**made_from)));
        // A label set no request holds any more.
        self.labels.retain(|labels| Arc::strong_count(labels) > 1);
    }

    /// How many pods' requests are kept.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.known.len()
    }
}
