//! The default spread's sibling counts of a pass: for each spread selector (a
//! ReplicaSet's, a Service's) the pods it matches on each node, counted over every
//! node once a pass, the first time a pod with that selector is placed, and kept up
//! to date as the pass places pods. Scoring a pod then reads its counts instead of
//! matching the selector against every pod placed (which made a pass of n pods
//! O(n × pods on nodes)).

use std::sync::Arc;

use berth_api::meta::{LabelSelector, selector_matches};

use crate::score::siblings_on;
use crate::{NodeInfo, PodRequest};

/// The pods a selector matches, by the node's position in the pass's nodes.
pub type Counts = Arc<Vec<u32>>;

/// Counts by `(namespace, selector)`.
#[derive(Debug, Default)]
pub struct Siblings {
    counted: Vec<(String, LabelSelector, Counts)>,
}

impl Siblings {
    /// The counts for `request`'s spread selector (none when it is not spread),
    /// counted over `infos` the first time.
    pub fn of(&mut self, request: &PodRequest, infos: &[NodeInfo]) -> Option<Counts> {
        let selector = request.spread_selector.as_ref()?;
        let namespace = &request.namespace;
        if let Some((_, _, counts)) = self.counted.iter().find(|(n, s, _)| n == namespace && s == selector) {
            return Some(counts.clone());
        }
        let counts: Vec<u32> = (infos.iter())
            .map(|node| siblings_on(node, namespace, selector) as u32)
            .collect();
        let counts = Arc::new(counts);
        self.counted.push((namespace.clone(), selector.clone(), counts.clone()));
        Some(counts)
    }

    /// Counts `pod`, just placed on the node at `position` (and so among the node's
    /// pods), for each selector of its namespace that matches it.
    pub fn placed(&mut self, pod: &PodRequest, position: usize) {
        if pod.is_deleting {
            return;
        }
        for (namespace, selector, counts) in &mut self.counted {
            if *namespace == pod.namespace
                && selector_matches(selector, &pod.labels)
                && let Some(count) = Arc::make_mut(counts).get_mut(position)
            {
                *count += 1;
            }
        }
    }
}

#[cfg(test)]
#[path = "siblings_tests.rs"]
mod tests;
