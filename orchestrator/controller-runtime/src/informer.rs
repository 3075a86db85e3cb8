//! Informers: a local cache of one kind of object (or, in [`heartbeats`], of the
//! agents' heartbeat keys) kept up to date by the client's list-then-watch loop
//! ([`berth_client::reflector`]), so that controllers read memory, not the store.
//!
//! Invariants: the cache is the store's content under the prefix at `revision`
//! (once synced); `revision` never goes back; subscribers are told after every list
//! and every batch of events (a `tokio::sync::watch` of a counter, so bursts coalesce
//! and a change is never missed: level-triggered controllers only need "look again").
//!
//! Snapshots: the cache is a persistent map ([`imbl::OrdMap`]); a snapshot is a
//! clone that shares its nodes, taken in O(1), and a change made while snapshots
//! live copies only the path to what it changes (a `BTreeMap` behind an `Arc` would
//! be copied whole: 100 000 pods on every batch of events while any pass runs).
//!
//! Locks: each informer has one `std::sync::RwLock`, never held across an await and
//! never together with another lock.

use std::sync::{Arc, RwLock};

use berth_api::objects::{Resource, Spec, prefix};
use berth_client::kv::{AbortOnDrop, Event, Kv, Record};
use berth_client::reflector::{Sink, reflect};
use berth_client::registry::decode;
use imbl::OrdMap;
use imbl::ordmap::DiffItem;
use tokio::sync::watch;

mod heartbeats;
pub mod node_leases;
pub use heartbeats::{HEARTBEAT_PREFIX, HeartbeatSnapshot, Heartbeats};

/// Bumps `changed` after every list and every batch its cache applied, so that
/// subscribers look again.
pub(crate) struct Notifying<T: Sink> {
    pub(crate) cache: Arc<T>,
    pub(crate) changed: Arc<watch::Sender<u64>>,
}

impl<T: Sink> Sink for Notifying<T> {
    fn replace(&self, records: Vec<Record>, revision: i64) {
        self.cache.replace(records, revision);
        self.changed.send_modify(|n| *n += 1);
    }

    fn apply(&self, events: Vec<Event>, revision: i64) {
        self.cache.apply(events, revision);
        self.changed.send_modify(|n| *n += 1);
    }
}

/// Resolves once `has_synced` holds, re-checking on every change the receiver sees
/// (or at once if its sender is gone).
pub(crate) async fn wait_until_synced(mut changes: watch::Receiver<u64>, has_synced: impl Fn() -> bool) {
    while !has_synced() {
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// One cached object and its store create_revision (creation order finer than the
/// one-second `creationTimestamp`).
pub struct Entry<S: Spec> {
    pub object: Arc<Resource<S>>,
    pub create_revision: i64,
}

/// The same version of an object: the same cached copy (a change replaces it).
impl<S: Spec> PartialEq for Entry<S> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.object, &other.object) && self.create_revision == other.create_revision
    }
}

/// One key's difference between two snapshots: its object before and after
/// (`None`: absent then, or now).
pub struct Difference<'a, S: Spec> {
    pub key: &'a str,
    pub before: Option<&'a Resource<S>>,
    pub after: Option<&'a Resource<S>>,
}

impl<S: Spec> Clone for Entry<S> {
    fn clone(&self) -> Self {
        Entry {
            object: self.object.clone(),
            create_revision: self.create_revision,
        }
    }
}

/// A consistent, immutable view of an informer's cache at one revision.
pub struct Snapshot<S: Spec> {
    objects: OrdMap<String, Entry<S>>,
    pub revision: i64,
}

impl<S: Spec> Clone for Snapshot<S> {
    fn clone(&self) -> Self {
        Snapshot {
            objects: self.objects.clone(),
            revision: self.revision,
        }
    }
}

impl<S: Spec> Snapshot<S> {
    /// A snapshot of the given objects (for tests of pure logic), create revisions
    /// in the order given.
    #[cfg(any(test, feature = "testing"))]
    pub fn from_objects(objects: impl IntoIterator<Item = Resource<S>>, revision: i64) -> Self {
        let objects = objects
            .into_iter()
            .enumerate()
            .map(|(i, object)| {
                let entry = Entry {
                    object: Arc::new(object.clone()),
                    create_revision: i as i64 + 1,
                };
                (object.key(), entry)
            })
            .collect();
        Snapshot { objects, revision }
    }

    pub fn get(&self, key: &str) -> Option<&Resource<S>> {
        self.objects.get(key).map(|e| &*e.object)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.objects.contains_key(key)
    }

    /// Every object, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Resource<S>> {
        self.objects.values().map(|e| &*e.object)
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry<S>> {
        self.objects.values()
    }

    /// What changed from `earlier` to this snapshot, in key order: the objects
    /// added, replaced or removed. The two share what did not change, which is not
    /// visited: cheap when few changed, whatever the size.
    pub fn changes_since<'a>(&'a self, earlier: &'a Snapshot<S>) -> impl Iterator<Item = Difference<'a, S>> {
        earlier.objects.diff(&self.objects).map(|item| match item {
            DiffItem::Add(key, entry) => Difference {
                key,
                before: None,
                after: Some(&*entry.object),
            },
            DiffItem::Update { old, new } => Difference {
                key: new.0,
                before: Some(&*old.1.object),
                after: Some(&*new.1.object),
            },
            DiffItem::Remove(key, entry) => Difference {
                key,
                before: Some(&*entry.object),
                after: None,
            },
        })
    }

    pub fn create_revision(&self, key: &str) -> Option<i64> {
        self.objects.get(key).map(|e| e.create_revision)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.objects.len()
    }
}

struct TypedState<S: Spec> {
    objects: OrdMap<String, Entry<S>>,
    revision: i64,
    has_synced: bool,
}

struct TypedSink<S: Spec> {
    state: RwLock<TypedState<S>>,
}

fn entry<S: Spec>(kv: &Record) -> Option<(String, Entry<S>)> {
    match decode::<S>(kv) {
        Ok(object) => Some((
            kv.key.clone(),
            Entry {
                object: Arc::new(object),
                create_revision: kv.create_revision,
            },
        )),
        Err(e) => {
            tracing::warn!(error = %e, "informer: skipping an object that does not decode");
            None
        }
    }
}

impl<S: Spec> Sink for TypedSink<S> {
    fn replace(&self, kvs: Vec<Record>, revision: i64) {
        let objects = kvs.iter().filter_map(entry::<S>).collect();
        let mut state = self.state.write().expect("informer lock");
        state.objects = objects;
        state.revision = state.revision.max(revision);
        state.has_synced = true;
    }

    fn apply(&self, events: Vec<Event>, revision: i64) {
        let mut state = self.state.write().expect("informer lock");
        if !events.is_empty() {
            let objects = &mut state.objects;
            for event in events {
                match event {
                    Event::Put(kv) => match entry::<S>(&kv) {
                        Some((key, entry)) => {
                            objects.insert(key, entry);
                        }
                        // An undecodable value replaces what we had: forget the old one.
                        None => {
                            objects.remove(&kv.key);
                        }
                    },
                    Event::Delete { prev, .. } => {
                        objects.remove(&prev.key);
                    }
                }
            }
        }
        state.revision = state.revision.max(revision);
    }
}

/// The cache of one kind of object, shared by the controllers; cloning shares it.
pub struct Informer<S: Spec> {
    sink: Arc<TypedSink<S>>,
    changed: Arc<watch::Sender<u64>>,
    _task: Arc<AbortOnDrop>,
}

impl<S: Spec> Clone for Informer<S> {
    fn clone(&self) -> Self {
        Informer {
            sink: self.sink.clone(),
            changed: self.changed.clone(),
            _task: self._task.clone(),
        }
    }
}

impl<S: Spec> Informer<S> {
    /// Starts caching every object of the kind (all namespaces); the task stops when
    /// the last clone is dropped.
    pub fn start(kv: Kv) -> Self {
        Self::start_inner(kv, prefix::<S>(None), None)
    }

    /// A cache that syncs (empty, at the store's current revision) and then never
    /// changes: for tests of how the controllers cope with a cache that lags.
    #[cfg(any(test, feature = "testing"))]
    pub fn stalled(kv: Kv) -> Self {
        Self::start_inner(kv, "/berth/tests/nothing-here/".into(), None)
    }

    fn start_inner(kv: Kv, prefix: String, resume: Option<i64>) -> Self {
        let sink = Arc::new(TypedSink {
            state: RwLock::new(TypedState {
                objects: OrdMap::new(),
                revision: resume.map_or(0, |r| r - 1),
                has_synced: resume.is_some(),
            }),
        });
        let changed = Arc::new(watch::channel(0).0);
        let notifying = Arc::new(Notifying {
            cache: sink.clone(),
            changed: changed.clone(),
        });
        let task = tokio::spawn(reflect(kv, prefix, notifying, resume));
        Informer {
            sink,
            changed,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    pub fn snapshot(&self) -> Snapshot<S> {
        let state = self.sink.state.read().expect("informer lock");
        Snapshot {
            objects: state.objects.clone(),
            revision: state.revision,
        }
    }

    /// True once the first list has been applied.
    pub fn has_synced(&self) -> bool {
        self.sink.state.read().expect("informer lock").has_synced
    }

    /// The store revision the cache reflects.
    #[cfg(test)]
    pub fn revision(&self) -> i64 {
        self.sink.state.read().expect("informer lock").revision
    }

    /// Changes whenever the cache changes (after a list or a batch of events).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub async fn wait_synced(&self) {
        wait_until_synced(self.subscribe(), || self.has_synced()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::meta::ObjectMeta;
    use berth_api::objects::{Pod, PodSpec};
    use berth_client::registry::encode;
    use berth_testkit::eventually;

    fn pod(name: &str) -> Pod {
        Pod::new(
            ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            PodSpec::default(),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lists_then_follows_puts_and_deletes() {
        let t = berth_client::testing::store().await;
        let a = pod("a");
        t.kv.create(&a.key(), encode(&a), 0, None).await.unwrap();
        let informer = Informer::<PodSpec>::start(t.kv.clone());
        let mut changes = informer.subscribe();
        informer.wait_synced().await;
        assert!(informer.snapshot().contains(&a.key()));

        changes.borrow_and_update();
        let b = pod("b");
        let created = t.kv.create(&b.key(), encode(&b), 0, None).await.unwrap();
        eventually("b in the cache", async || {
            informer.snapshot().contains(&b.key()).then_some(())
        })
        .await;
        assert!(informer.revision() >= created, "the revision follows the events");
        assert_eq!(informer.snapshot().create_revision(&b.key()), Some(created));
        // The cache is updated before subscribers are told: wait for the word.
        tokio::time::timeout(std::time::Duration::from_secs(20), changes.changed())
            .await
            .expect("subscribers are told")
            .unwrap();

        t.kv.delete(&a.key(), None, None).await.unwrap();
        eventually("a gone from the cache", async || {
            (!informer.snapshot().contains(&a.key())).then_some(())
        })
        .await;
        assert_eq!(informer.snapshot().len(), 1);
    }

    #[test]
    fn a_snapshot_tells_what_changed_since_an_earlier_one() {
        let sink = TypedSink::<PodSpec> {
            state: RwLock::new(TypedState {
                objects: OrdMap::new(),
                revision: 0,
                has_synced: false,
            }),
        };
        let snapshot = || {
            let state = sink.state.read().unwrap();
            Snapshot {
                objects: state.objects.clone(),
                revision: state.revision,
            }
        };
        let record = |pod: &Pod, revision: i64| Record {
            key: pod.key(),
            value: encode(pod),
            create_revision: 1,
            mod_revision: revision,
            ..Default::default()
        };
        let many: Vec<Pod> = (0..2000).map(|i| pod(&format!("p{i:04}"))).collect();
        sink.replace(many.iter().map(|p| record(p, 1)).collect(), 1);
        let before = snapshot();
        assert_eq!(before.changes_since(&before).count(), 0);
        let mut labelled = pod("p0007");
        labelled.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        sink.apply(
            vec![
                Event::Put(record(&labelled, 2)),
                Event::Put(record(&pod("q"), 2)),
                Event::Delete {
                    prev: record(&many[1500], 1),
                    revision: 2,
                },
            ],
            2,
        );
        let after = snapshot();
        let changes: Vec<(&str, bool, bool)> = (after.changes_since(&before))
            .map(|d| (d.key, d.before.is_some(), d.after.is_some()))
            .collect();
        assert_eq!(
            changes,
            vec![
                ("/registry/pods/default/p0007", true, true),
                ("/registry/pods/default/p1500", true, false),
                ("/registry/pods/default/q", false, true),
            ]
        );
        let relabelled = after.changes_since(&before).next().unwrap();
        let labels = relabelled.after.unwrap().metadata.labels.as_ref().unwrap();
        assert_eq!(labels.get("a").map(String::as_str), Some("b"));
        assert!(relabelled.before.unwrap().metadata.labels.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn relists_when_the_resume_revision_was_compacted() {
        let t = berth_client::testing::store().await;
        let a = pod("a");
        let at = t.kv.create(&a.key(), encode(&a), 0, None).await.unwrap();
        let b = pod("b");
        let last = t.kv.create(&b.key(), encode(&b), 0, None).await.unwrap();
        t.compact(last).await;
        // A cache that last saw revision `at - 1` (before "a" existed): the events it
        // needs are gone, so only a fresh list can bring it up to date.
        let informer = Informer::<PodSpec>::start_inner(t.kv.clone(), prefix::<PodSpec>(None), Some(at));
        eventually("a relist", async || {
            let snapshot = informer.snapshot();
            (snapshot.contains(&a.key()) && snapshot.contains(&b.key())).then_some(())
        })
        .await;
    }
}
