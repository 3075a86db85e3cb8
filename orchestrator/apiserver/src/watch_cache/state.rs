//! What one kind's cache holds: every object as the store has it now, the recent
//! changes (the window) with each one's previous version, and, for pods, which keys
//! are bound to which node. Pure: the feeder (mod.rs) applies the store's batches.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use berth_client::kv::{Event, Record};

/// How many changes the window keeps; a watch from a revision before them is served
/// by the store instead (which answers 410 once that revision is compacted).
pub const WINDOW: usize = 50_000;

/// One version of an object as the store holds it, with what the cache indexes.
#[derive(Debug)]
pub struct Entry {
    pub record: Record,
    /// A pod's `spec.nodeName` (none for other kinds, and for unbound pods).
    pub node: Option<String>,
}

impl Entry {
    pub fn new(record: Record, indexes_nodes: bool) -> Entry {
        let node = if indexes_nodes { node_name(&record.value) } else { None };
        Entry { record, node }
    }
}

/// A pod's `spec.nodeName`, read without decoding the rest of it.
pub fn node_name(value: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Pod {
        spec: Option<Spec>,
    }
    #[derive(serde::Deserialize)]
    struct Spec {
        #[serde(rename = "nodeName")]
        node_name: Option<String>,
    }
    let pod: Pod = serde_json::from_slice(value).ok()?;
    pod.spec?.node_name.filter(|n| !n.is_empty())
}

/// One change of one key: its version before (none: created) and after (none:
/// deleted), at `revision`.
#[derive(Debug)]
pub struct Change {
    pub revision: i64,
    pub key: String,
    pub prev: Option<Arc<Entry>>,
    pub next: Option<Arc<Entry>>,
}

impl Change {
    /// Whether a watcher of `node`'s pods may care: the object was or is on it.
    pub fn touches_node(&self, node: &str) -> bool {
        let on = |e: &Option<Arc<Entry>>| e.as_ref().is_some_and(|e| e.node.as_deref() == Some(node));
        on(&self.prev) || on(&self.next)
    }
}

#[derive(Debug, Default)]
pub struct State {
    pub objects: BTreeMap<String, Arc<Entry>>,
    /// Node name → the keys of the pods bound to it.
    pub by_node: HashMap<String, BTreeSet<String>>,
    pub window: VecDeque<Arc<Change>>,
    /// Every change after this revision is in the window.
    pub oldest: i64,
    /// The revision of the last list: the window has dropped changes once `oldest`
    /// is past it.
    pub listed_at: i64,
    /// The store's revision the cache has caught up with.
    pub revision: i64,
    pub indexes_nodes: bool,
    /// How many changes the window keeps ([`WINDOW`]).
    pub window_len: usize,
}

impl State {
    #[cfg(test)]
    pub fn new(indexes_nodes: bool) -> State {
        State::with_window(indexes_nodes, WINDOW)
    }

    /// A state whose window keeps `window_len` changes.
    pub fn with_window(indexes_nodes: bool, window_len: usize) -> State {
        State {
            indexes_nodes,
            window_len,
            ..Default::default()
        }
    }

    /// Everything as listed at `revision`; the window starts there.
    pub fn reset(&mut self, records: Vec<Record>, revision: i64) {
        self.objects.clear();
        self.by_node.clear();
        self.window.clear();
        for record in records {
            let entry = Arc::new(Entry::new(record, self.indexes_nodes));
            self.index(&entry);
            self.objects.insert(entry.record.key.clone(), entry);
        }
        self.oldest = revision;
        self.listed_at = revision;
        self.revision = revision;
    }

    /// Applies one batch of the store's watch (all of one revision, or none: progress),
    /// keeping the window at most `window_len` long; the changes made.
    pub fn apply(&mut self, revision: i64, events: Vec<Event>) -> Vec<Arc<Change>> {
        let mut changes = Vec::with_capacity(events.len());
        for event in events {
            let change = match event {
                Event::Put(record) => {
                    let at = record.mod_revision;
                    let next = Arc::new(Entry::new(record, self.indexes_nodes));
                    let key = next.record.key.clone();
                    let prev = self.objects.insert(key.clone(), next.clone());
                    if let Some(prev) = &prev {
                        self.unindex(prev);
                    }
                    self.index(&next);
                    Change {
                        revision: at,
                        key,
                        prev,
                        next: Some(next),
                    }
                }
                Event::Delete { prev, revision } => {
                    let prev = match self.objects.remove(&prev.key) {
                        Some(cached) => cached,
                        None => Arc::new(Entry::new(prev, self.indexes_nodes)),
                    };
                    self.unindex(&prev);
                    Change {
                        revision,
                        key: prev.record.key.clone(),
                        prev: Some(prev),
                        next: None,
                    }
                }
            };
            let change = Arc::new(change);
            self.window.push_back(change.clone());
            changes.push(change);
        }
        while self.window.len() > self.window_len {
            if let Some(gone) = self.window.pop_front() {
                self.oldest = self.oldest.max(gone.revision);
            }
        }
        self.revision = self.revision.max(revision);
        if let Some(last) = changes.last() {
            self.revision = self.revision.max(last.revision);
        }
        changes
    }

    /// The changes after `revision`, when the window still holds them all.
    pub fn changes_after(&self, revision: i64) -> Option<Vec<Arc<Change>>> {
        if revision < self.oldest {
            return None;
        }
        let start = self.window.partition_point(|c| c.revision <= revision);
        Some(self.window.range(start..).cloned().collect())
    }

    /// The objects under `prefix`, or only those on `node` when given (pods).
    pub fn objects_under(&self, prefix: &str, node: Option<&str>) -> Vec<Arc<Entry>> {
        match node.filter(|_| self.indexes_nodes) {
            Some(node) => self
                .by_node
                .get(node)
                .into_iter()
                .flatten()
                .filter(|key| key.starts_with(prefix))
                .filter_map(|key| self.objects.get(key).cloned())
                .collect(),
            None => self
                .objects
                .range(prefix.to_string()..)
                .take_while(|(key, _)| key.starts_with(prefix))
                .map(|(_, entry)| entry.clone())
                .collect(),
        }
    }

    fn index(&mut self, entry: &Entry) {
        if let Some(node) = &entry.node {
            self.by_node
                .entry(node.clone())
                .or_default()
                .insert(entry.record.key.clone());
        }
    }

    fn unindex(&mut self, entry: &Entry) {
        if let Some(node) = &entry.node
            && let Some(keys) = self.by_node.get_mut(node)
        {
            keys.remove(&entry.record.key);
            if keys.is_empty() {
                self.by_node.remove(node);
            }
        }
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
