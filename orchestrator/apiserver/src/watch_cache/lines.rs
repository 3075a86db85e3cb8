//! What a watcher is sent about a change: its selectors decide the event's type
//! (an object that starts to pass them is ADDED, one that stops is DELETED, as its
//! previous version stamped with the change's revision, as kube-apiserver's cache
//! sends it), and each line is made once per change and shared by every watcher
//! that gets the same one.

use std::cell::OnceCell;
use std::sync::Arc;

use axum::body::Bytes;
use serde_json::Value;

use super::state::{Change, Entry};
use crate::route::Kind;
use crate::selector::Filter;
use crate::storage::{decode, served_json, stamp};
use crate::table::Include;
use crate::watch::{event_type, object_line, raw_line};

/// What one watcher asked for.
#[derive(Debug, Clone)]
pub struct WatcherSpec {
    /// The keys it watches (the kind's, or one namespace's).
    pub prefix: String,
    pub filter: Filter,
    /// `spec.nodeName=<node>` among its field selectors (pods): it is only offered
    /// the changes of pods that were or are on that node.
    pub node: Option<String>,
    pub allow_bookmarks: bool,
    pub table: Option<(&'static str, Include)>,
}

impl WatcherSpec {
    pub fn new(
        kind: &Kind,
        prefix: String,
        filter: Filter,
        allow_bookmarks: bool,
        table: Option<(&'static str, Include)>,
    ) -> WatcherSpec {
        WatcherSpec {
            node: indexed_node(kind, &filter),
            prefix,
            filter,
            allow_bookmarks,
            table,
        }
    }
}

/// Whether the cache keeps pods by node for this kind.
pub fn indexes_nodes(kind: &Kind) -> bool {
    kind.plural == "pods" && kind.group.is_empty()
}

/// The node a filter pins the pods to (`spec.nodeName=<node>`, not empty).
pub fn indexed_node(kind: &Kind, filter: &Filter) -> Option<String> {
    if !indexes_nodes(kind) {
        return None;
    }
    filter
        .fields
        .terms
        .iter()
        .find(|(field, value, negated)| field == "spec.nodeName" && !negated && !value.is_empty())
        .map(|(_, value, _)| value.clone())
}

/// A change as the watchers see it, each version decoded at most once.
pub struct ChangeView<'a> {
    kind: &'static Kind,
    pub change: &'a Change,
    prev: OnceCell<Option<Value>>,
    next: OnceCell<Option<Value>>,
    /// Lines without tables: ADDED, MODIFIED, DELETED.
    lines: [OnceCell<Bytes>; 3],
}

impl<'a> ChangeView<'a> {
    pub fn new(kind: &'static Kind, change: &'a Change) -> ChangeView<'a> {
        ChangeView {
            kind,
            change,
            prev: OnceCell::new(),
            next: OnceCell::new(),
            lines: Default::default(),
        }
    }

    fn prev(&self) -> Option<&Value> {
        self.prev
            .get_or_init(|| self.change.prev.as_ref().and_then(|e| decoded(self.kind, e)))
            .as_ref()
    }

    fn next(&self) -> Option<&Value> {
        self.next
            .get_or_init(|| self.change.next.as_ref().and_then(|e| decoded(self.kind, e)))
            .as_ref()
    }

    /// Whether `version` passes the watcher's filter, decoded only when the cache's
    /// index does not decide it.
    fn passes<'v>(
        &self,
        spec: &WatcherSpec,
        version: Option<&Arc<Entry>>,
        decoded: impl FnOnce() -> Option<&'v Value>,
    ) -> bool {
        let Some(version) = version else {
            return false;
        };
        indexed_pass(spec, version).unwrap_or_else(|| decoded().is_some_and(|o| spec.filter.matches(o)))
    }

    /// The line this watcher gets, if any.
    pub fn line_for(&self, spec: &WatcherSpec) -> Option<Bytes> {
        if !self.change.key.starts_with(&spec.prefix) {
            return None;
        }
        if let Some(node) = &spec.node
            && !self.change.touches_node(node)
        {
            return None;
        }
        let passed_before = self.passes(spec, self.change.prev.as_ref(), || self.prev());
        let passes_now = self.passes(spec, self.change.next.as_ref(), || self.next());
        let event_type = event_type(passed_before, passes_now)?;
        let slot = match event_type {
            "ADDED" => 0,
            "MODIFIED" => 1,
            _ => 2,
        };
        // A DELETED line carries the previous version, stamped with the change's revision.
        let (version, revision) = match event_type {
            "DELETED" => (self.change.prev.as_ref()?, self.change.revision),
            _ => {
                let next = self.change.next.as_ref()?;
                (next, next.record.mod_revision)
            }
        };
        let object = || -> Option<Value> {
            let mut object = match event_type {
                "DELETED" => self.prev()?.clone(),
                _ => self.next()?.clone(),
            };
            stamp(self.kind, &mut object, revision);
            Some(object)
        };
        match spec.table {
            Some(table) => Some(Bytes::from(object_line(self.kind, Some(table), event_type, &object()?))),
            None => {
                if let Some(line) = self.lines[slot].get() {
                    return Some(line.clone());
                }
                let line = plain_line(self.kind, event_type, version, revision, object)?;
                Some(self.lines[slot].get_or_init(|| Bytes::from(line)).clone())
            }
        }
    }
}

/// An object as served, or none (logged) when it does not decode.
fn decoded(kind: &Kind, entry: &Arc<Entry>) -> Option<Value> {
    decode(kind, &entry.record)
        .map_err(|e| tracing::warn!(key = %entry.record.key, error = %e.message, "not sending an object that does not decode"))
        .ok()
}

/// A line without a table for `version` stamped at `revision`: straight from the
/// stored JSON where it can be, else from the object `decode` gives.
fn plain_line(
    kind: &Kind,
    event_type: &str,
    version: &Entry,
    revision: i64,
    decode: impl FnOnce() -> Option<Value>,
) -> Option<Vec<u8>> {
    match served_json(kind, &version.record, revision) {
        Some(json) => Some(raw_line(event_type, &json)),
        None => Some(object_line(kind, None, event_type, &decode()?)),
    }
}

/// Whether `version` passes the watcher's filter, when what the cache indexes
/// decides it (a node's watch of its pods: always); None when the object must be
/// decoded to tell.
fn indexed_pass(spec: &WatcherSpec, version: &Entry) -> Option<bool> {
    if spec.filter.is_everything() {
        return Some(true);
    }
    let node = spec.node.as_ref()?;
    (spec.filter.labels.is_everything() && spec.filter.fields.terms.len() == 1)
        .then(|| version.node.as_deref() == Some(node.as_str()))
}

/// The ADDED line of a cached object for this watcher, if it passes its filter.
pub fn added_line(kind: &'static Kind, entry: &Arc<Entry>, spec: &WatcherSpec) -> Option<Vec<u8>> {
    if spec.table.is_none()
        && let Some(passes) = indexed_pass(spec, entry)
    {
        let revision = entry.record.mod_revision;
        return passes
            .then(|| plain_line(kind, "ADDED", entry, revision, || decoded(kind, entry)))
            .flatten();
    }
    let object = decoded(kind, entry)?;
    spec.filter
        .matches(&object)
        .then(|| object_line(kind, spec.table, "ADDED", &object))
}

/// A BOOKMARK at `revision`.
pub fn bookmark(kind: &Kind, revision: i64) -> Bytes {
    Bytes::from(crate::watch::bookmark_line(kind, revision))
}
