//! Recording events (core/v1 `Event`) as Kubernetes' components do: one object per
//! distinct happening (the same object, reason, message and reporter), its `count`
//! and `lastTimestamp` raised when it happens again, and every event attached to a
//! lease so that it goes after [`EVENT_TTL`] (kube-apiserver's `--event-ttl`).
//! Before that, client-go's correlator (correlator.rs): a source's events about one
//! object are rate limited, and many distinct messages of one reason about it are
//! combined into one event.
//!
//! Recording never fails its caller: an event that cannot be written is logged.
//! Events emitted without waiting are written a bounded number at a time, and past
//! a queue of them the newest are dropped, as client-go's broadcaster drops past
//! its 1000: a scheduler that places thousands of pods in one pass does not fire
//! thousands of writes at once at the store. New events go to the store through a
//! group commit, many in one transaction.
//!
//! A recorder writes to the store, or (an agent with `--kubeconfig`) through the API
//! server, which nodes may not read events from. Either way it counts the repeats
//! in memory, as Kubernetes' recorder: the first time an event is created (found
//! there already, written before this process started: its count raised in the
//! store, left as it is through the API server), a repeat raises its `count` and
//! `lastTimestamp` (a merge PATCH through the API server, created again if it went
//! meanwhile). The API server attaches what it creates to its own event leases.

mod correlator;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use berth_api::kinds::event::{EVENT, Event, EventSource, ObjectReference};
use berth_api::meta::{MetaExt, named};
use berth_api::objects::{Resource, Spec};
use berth_api::time;

use crate::api_source::ApiSource;
use crate::kv::{Group, Kv, KvError, Result};
use crate::registry::{Registry, Stored, new_object};

/// How long an event is kept after it was first recorded.
pub const EVENT_TTL: Duration = Duration::from_secs(3600);

/// How long one lease takes new events: events of the same minute share a lease, as
/// kube-apiserver's do, so that recording does not grant a lease per event.
const LEASE_REUSE: Duration = Duration::from_secs(60);

/// How many emitted events a process writes at once; the others wait their turn.
/// Those written to the store are created through one group commit: this many fill
/// the transaction in flight and the next one.
const EVENT_WRITERS: usize = 2 * crate::kv::MAX_GROUP_OPS;

/// How many emitted events may be waiting or being written before more are dropped.
/// client-go's broadcaster queues 1000, but kube-scheduler binds one pod at a time;
/// a berth scheduler pass binds thousands at once and emits their events together.
const MAX_QUEUED_EVENTS: usize = 10_000;

/// The leases events are attached to, shared by everything that writes events, and
/// what the recorders that share them share besides: the correlator, so that a
/// source's repeats are counted across its passes, and the queue of emitted events.
#[derive(Default)]
pub struct EventLeases {
    current: Mutex<Option<(i64, Instant)>>,
    recording: Arc<Recording>,
}

/// The state recorders share (see [`EventLeases`]).
struct Recording {
    correlator: std::sync::Mutex<correlator::Correlator>,
    /// One permit for each event being written.
    writers: tokio::sync::Semaphore,
    /// Emitted events waiting or being written.
    queued: AtomicUsize,
    /// Emitted events dropped since the queue was last found with room, for the log.
    dropped: AtomicU64,
    /// Where events are created in the store, many in one transaction; made with
    /// the first.
    group: OnceLock<Group>,
    /// The keys of the events being written, each with the repeats that came
    /// meanwhile folded into one (see [`Recorder::write_in_turn`]).
    writing: std::sync::Mutex<HashMap<String, Option<Happening>>>,
}

impl Default for Recording {
    fn default() -> Self {
        Recording {
            correlator: Default::default(),
            writers: tokio::sync::Semaphore::new(EVENT_WRITERS),
            queued: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            group: OnceLock::new(),
            writing: Default::default(),
        }
    }
}

impl EventLeases {
    /// A lease that outlives [`EVENT_TTL`] from now.
    pub async fn lease(&self, kv: &Kv) -> Result<i64> {
        let mut current = self.current.lock().await;
        if let Some((id, granted)) = *current
            && granted.elapsed() < LEASE_REUSE
        {
            return Ok(id);
        }
        let ttl = (EVENT_TTL + LEASE_REUSE).as_secs() as i64;
        let id = kv.grant(ttl).await?;
        *current = Some((id, Instant::now()));
        Ok(id)
    }
}

/// `Normal` or `Warning`, as Kubernetes types its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// What a component records events with; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    target: Target,
    /// `default-scheduler`, `deployment-controller`, `kubelet`: the event's source.
    component: String,
    /// The node a kubelet-like reporter runs on, else empty.
    host: String,
    /// Shared by the recorder's clones, and by the recorders that share its leases.
    recording: Arc<Recording>,
}

/// Where a recorder writes.
#[derive(Clone)]
enum Target {
    Store {
        registry: Registry,
        leases: Arc<EventLeases>,
    },
    /// The API server.
    Api { api: ApiSource },
}

/// The reference an event names its object by.
pub fn reference<S: Spec>(object: &Resource<S>) -> ObjectReference {
    ObjectReference {
        api_version: Some(S::DESCRIPTOR.api_version()),
        kind: Some(S::DESCRIPTOR.kind.to_string()),
        name: Some(object.metadata.name().to_string()),
        namespace: object.metadata.namespace.clone().filter(|n| !n.is_empty()),
        uid: object.metadata.uid.clone(),
        resource_version: object.metadata.resource_version.clone(),
        field_path: None,
    }
}

impl Recorder {
    pub fn new(kv: Kv, component: &str, host: &str) -> Recorder {
        Recorder::with_leases(kv, component, host, Arc::new(EventLeases::default()))
    }

    /// A recorder whose events share `leases` with other recorders' of the process.
    pub fn with_leases(kv: Kv, component: &str, host: &str, leases: Arc<EventLeases>) -> Recorder {
        Recorder {
            recording: leases.recording.clone(),
            target: Target::Store {
                registry: Registry::new(kv),
                leases,
            },
            component: component.to_string(),
            host: host.to_string(),
        }
    }

    /// A recorder that writes through the API server.
    pub fn through_api(api: ApiSource, component: &str, host: &str) -> Recorder {
        Recorder {
            target: Target::Api { api },
            component: component.to_string(),
            host: host.to_string(),
            recording: Arc::default(),
        }
    }

    /// Records an event without waiting for the write (as Kubernetes' event
    /// broadcaster does): the caller's loop is not slowed by its events. It is
    /// written when one of [`EVENT_WRITERS`] is free, and dropped (logged) when
    /// [`MAX_QUEUED_EVENTS`] are queued already.
    pub fn emit(&self, object: ObjectReference, type_: EventType, reason: &str, message: String) {
        let recording = self.recording.clone();
        if recording.queued.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED_EVENTS {
            recording.queued.fetch_sub(1, Ordering::Relaxed);
            if recording.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(reason, "too many events queued; dropping the newest");
            }
            return;
        }
        let dropped = recording.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "the event queue has room again; events dropped while it was full"
            );
        }
        let recorder = self.clone();
        let reason = reason.to_string();
        tokio::spawn(async move {
            if let Ok(_turn) = recording.writers.acquire().await {
                recorder.record(&object, type_, &reason, &message).await;
            }
            recording.queued.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Records that `reason` happened to `object`, with a message for people.
    pub async fn record(&self, object: &ObjectReference, type_: EventType, reason: &str, message: &str) {
        if let Some(happening) = self.happening(object, type_, reason, message) {
            self.write_in_turn(happening).await;
        }
    }

    /// Writes `happening`, unless one of its event is being written: then it is
    /// folded into the next write of that event, made once the current one is done.
    /// So the writes of one event never race each other (a controller that says
    /// "Created pod" for a burst of pods at once raises one event's count), and a
    /// burst of repeats costs one write after the one under way.
    async fn write_in_turn(&self, happening: Happening) {
        let key = EVENT.key(happening.event.metadata.namespace(), happening.event.metadata.name());
        {
            let mut writing = self.recording.writing.lock().expect("events being written lock");
            match writing.entry(key.clone()) {
                Entry::Occupied(mut later) => {
                    let later = later.get_mut();
                    let times = happening.times + later.as_ref().map_or(0, |h| h.times);
                    *later = Some(Happening { times, ..happening });
                    return;
                }
                Entry::Vacant(entry) => {
                    entry.insert(None);
                }
            }
        }
        let mut turn = Turn {
            writing: &self.recording.writing,
            key,
            done: false,
        };
        let mut next = Some(happening);
        while let Some(happening) = next {
            let reason = happening.event.reason.clone().unwrap_or_default();
            let written = match &self.target {
                Target::Store { registry, leases } => record_in_store(registry, leases, happening).await,
                Target::Api { api } => record_through_api(api, happening).await,
            };
            if let Err(e) = written {
                tracing::warn!(error = %e, reason, "an event was not recorded");
            }
            next = turn.next();
        }
    }

    /// The event `reason` makes of `object`, as the correlator has it; `None` when
    /// the correlator drops it.
    fn happening(&self, object: &ObjectReference, type_: EventType, reason: &str, message: &str) -> Option<Happening> {
        let said = correlator::Said {
            about: [
                self.component.as_str(),
                &self.host,
                object.kind.as_deref().unwrap_or_default(),
                object.namespace.as_deref().unwrap_or_default(),
                object.name.as_deref().unwrap_or_default(),
                object.uid.as_deref().unwrap_or_default(),
                object.api_version.as_deref().unwrap_or_default(),
            ]
            .join("\u{0}"),
            reason: format!("{}\u{0}{reason}", type_.as_str()),
            message: message.to_string(),
        };
        let verdict = (self.recording.correlator)
            .lock()
            .expect("correlator lock")
            .observe(&said, Instant::now());
        let Some(verdict) = verdict else {
            tracing::debug!(reason, object = ?object.name, "an event dropped: its source said too much about its object");
            return None;
        };
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".to_string());
        // A combined event is one whatever its latest message.
        let distinct = if verdict.combined {
            correlator::COMBINED
        } else {
            message
        };
        let name = event_name(object, type_, reason, distinct, &self.component);
        let now = time::now();
        let event = Event {
            metadata: named(&namespace, &name),
            involved_object: object.clone(),
            type_: Some(type_.as_str().to_string()),
            reason: Some(reason.to_string()),
            message: Some(verdict.message),
            count: Some(1),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now.clone()),
            source: Some(EventSource {
                component: Some(self.component.clone()),
                host: (!self.host.is_empty()).then(|| self.host.clone()),
            }),
            reporting_component: Some(self.component.clone()),
            reporting_instance: Some(if self.host.is_empty() {
                self.component.clone()
            } else {
                self.host.clone()
            }),
            ..Default::default()
        };
        Some(Happening {
            event,
            count: verdict.count,
            times: 1,
        })
    }
}

/// One event's turn to be written (see [`Recorder::write_in_turn`]): while it is
/// held, the event's key is in `writing` and repeats fold into it. Dropped before
/// its writes are done (the recording future dropped mid-write), it gives the turn
/// up, so that later repeats are written rather than folded into a turn nobody
/// takes.
struct Turn<'a> {
    writing: &'a std::sync::Mutex<HashMap<String, Option<Happening>>>,
    key: String,
    /// The key has left `writing`: nothing was folded in after the last write.
    done: bool,
}

impl Turn<'_> {
    /// The repeats folded in meanwhile, to write next; none ends the turn.
    fn next(&mut self) -> Option<Happening> {
        let mut writing = self.writing.lock().expect("events being written lock");
        let next = writing.get_mut(&self.key).and_then(Option::take);
        if next.is_none() {
            writing.remove(&self.key);
            self.done = true;
        }
        next
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Ok(mut writing) = self.writing.lock()
        {
            writing.remove(&self.key);
        }
    }
}

/// An event to write: the `count`th time of it as the correlator counts, `times`
/// of them since the write before (more than one when repeats were folded).
struct Happening {
    event: Event,
    count: i32,
    times: i32,
}

/// Created the first time without reading the store; a repeat (or a first time
/// found there already) raises the stored one's count by its times, and sets its
/// last time and its message (a combined event's latest); created again, counting
/// its times, if it is gone.
async fn record_in_store(registry: &Registry, leases: &EventLeases, happening: Happening) -> Result<()> {
    let Happening {
        mut event,
        count,
        times,
    } = happening;
    event.count = Some(times);
    let key = EVENT.key(event.metadata.namespace(), event.metadata.name());
    let mut create_first = count == 1;
    for _ in 0..4 {
        if !create_first && let Some(record) = registry.kv.get(&key).await? {
            let mut stored: Event = serde_json::from_slice(&record.value)
                .map_err(|e| KvError::Other(format!("stored event at {key} does not decode: {e}")))?;
            stored.count = Some(stored.count.unwrap_or(1) + times);
            stored.last_timestamp = event.last_timestamp.clone();
            stored.message = event.message.clone();
            stored.metadata.resource_version = None;
            let value = serde_json::to_vec(&stored).expect("events serialize");
            match registry.kv.update(&key, value, record.mod_revision, None).await {
                Err(KvError::Conflict { .. }) => continue,
                other => return other.map(drop),
            }
        }
        create_first = false;
        let lease = leases.lease(&registry.kv).await?;
        let object = new_object(&berth_api::kinds::Object::new(event.clone()));
        let group = leases.recording.group.get_or_init(|| registry.kv.group());
        match group.create(&key, object.encode(), lease).await {
            Err(KvError::AlreadyExists) => continue,
            other => return other.map(drop),
        }
    }
    Err(KvError::Other(format!(
        "event {key} kept changing while it was recorded"
    )))
}

/// The `count`th time of the event: a POST the first time, else a merge PATCH of
/// its count and last time, and a POST again if it is gone. One already there at
/// the first time (written before this process started) is left as it is.
async fn record_through_api(api: &ApiSource, happening: Happening) -> Result<()> {
    let Happening { mut event, count, .. } = happening;
    let namespace = event.metadata.namespace().to_string();
    let name = event.metadata.name().to_string();
    if count > 1 {
        let patch = serde_json::json!({
            "count": count, "lastTimestamp": event.last_timestamp, "message": event.message,
        });
        match api.merge_patch(&EVENT, &namespace, &name, &patch).await {
            Err(KvError::NotFound) => event.count = Some(count),
            other => return other.map(drop),
        }
    }
    let body = serde_json::to_value(&event).expect("events serialize");
    match api.create(&EVENT, &namespace, &body).await {
        Ok(_) => Ok(()),
        Err(KvError::AlreadyExists) => {
            tracing::debug!(event = %name, "the event is there already; not recorded again");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// The name of the event of one happening: the object's name and a hash of what
/// makes the happening distinct, so that a repeat finds it.
fn event_name(object: &ObjectReference, type_: EventType, reason: &str, message: &str, component: &str) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        &object.kind,
        &object.uid,
        &object.field_path,
        type_.as_str(),
        reason,
        message,
        component,
    )
        .hash(&mut hasher);
    format!(
        "{}.{:016x}",
        object.name.as_deref().unwrap_or("unknown"),
        hasher.finish()
    )
}

#[cfg(test)]
mod tests;
