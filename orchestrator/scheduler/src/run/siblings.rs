//! The default spread's sibling counts of a pass: for each spread selector (a
//! ReplicaSet's, a Service's) the pods it matches on each node, counted the first
//! time a pod with that selector is placed, and kept up to date as the pass places
//! pods. Scoring a pod then reads its counts instead of matching the selector
//! against every pod placed (which made a pass of n pods O(n × pods on nodes)).
//!
//! A first count does not match the selector against every placed pod either: the
//! placed pods are grouped once a pass by namespace and label set (the pods of one
//! ReplicaSet share one, which the requests' cache hands out once, run/requests.rs),
//! and a selector is matched once per group. With 100 000 pods of a few hundred
//! sets, a new selector costs a few hundred matches, not 100 000.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use berth_api::meta::{LabelSelector, selector_matches};

use crate::snapshot::Labels;
use crate::{NodeInfo, PodRequest};

/// The pods a selector matches, by the node's position in the pass's nodes.
pub type Counts = Arc<Vec<u32>>;

/// Placed pods of one namespace and one label set: how many on each node, by
/// position.
#[derive(Debug)]
struct Group {
    namespace: String,
    labels: Labels,
    on_nodes: BTreeMap<usize, u32>,
}

/// Counts by `(namespace, selector)`, and the groups first counts are made from.
#[derive(Debug, Default)]
pub struct Siblings {
    counted: Vec<(String, LabelSelector, Counts)>,
    groups: Vec<Group>,
    /// The groups' indices by the address of their label set (one, unless several
    /// namespaces share a label set).
    group_of: HashMap<usize, Vec<usize>>,
    grouped: bool,
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
        if !self.grouped {
            self.group(infos);
        }
        let mut counts = vec![0u32; infos.len()];
        let matching =
            (self.groups.iter()).filter(|g| g.namespace == *namespace && selector_matches(selector, &g.labels));
        for group in matching {
            for (&position, &n) in &group.on_nodes {
                if let Some(count) = counts.get_mut(position) {
                    *count += n;
                }
            }
        }
        let counts = Arc::new(counts);
        self.counted.push((namespace.clone(), selector.clone(), counts.clone()));
        Some(counts)
    }

    /// Counts `pod`, just placed on the node at `position` (and so among the node's
    /// pods), for each selector of its namespace that matches it, and in its group.
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
        if self.grouped {
            self.add(&pod.namespace, &pod.labels, position);
        }
    }

    /// Groups the pods placed on `infos`.
    fn group(&mut self, infos: &[NodeInfo]) {
        for (position, node) in infos.iter().enumerate() {
            for placed in &node.pods {
                self.add(&placed.namespace, &placed.labels, position);
            }
        }
        self.grouped = true;
    }

    fn add(&mut self, namespace: &str, labels: &Labels, position: usize) {
        let indices = self.group_of.entry(Arc::as_ptr(labels) as usize).or_default();
        let found = indices.iter().copied().find(|&i| self.groups[i].namespace == namespace);
        let index = found.unwrap_or_else(|| {
            self.groups.push(Group {
                namespace: namespace.to_string(),
                labels: labels.clone(),
                on_nodes: BTreeMap::new(),
            });
            indices.push(self.groups.len() - 1);
            self.groups.len() - 1
        });
        *self.groups[index].on_nodes.entry(position).or_default() += 1;
    }
}

#[cfg(test)]
#[path = "siblings_tests.rs"]
mod tests;
