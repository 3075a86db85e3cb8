//! Recording events (core/v1 `Event`) as Kubernetes' components do: one object per
//! distinct happening (the same object, reason, message and reporter), its `count`
//! and `lastTimestamp` raised when it happens again, and every event attached to a
//! lease so that it goes after [`EVENT_TTL`] (kube-apiserver's `--event-ttl`).
//!
//! Recording never fails its caller: an event that cannot be written is logged.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use berth_api::kinds::event::{EVENT, Event, EventSource, ObjectReference};
use berth_api::meta::{MetaExt, named};
use berth_api::objects::{Resource, Spec};
use berth_api::time;

use crate::kv::{Kv, KvError, Result};
use crate::registry::Registry;

/// How long an event is kept after it was first recorded.
pub const EVENT_TTL: Duration = Duration::from_secs(3600);

/// How long one lease takes new events: events of the same minute share a lease, as
/// kube-apiserver's do, so that recording does not grant a lease per event.
const LEASE_REUSE: Duration = Duration::from_secs(60);

/// The leases events are attached to, shared by everything that writes events.
#[derive(Default)]
pub struct EventLeases {
    current: Mutex<Option<(i64, Instant)>>,
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
    registry: Registry,
    /// `default-scheduler`, `deployment-controller`, `kubelet`: the event's source.
    component: String,
    /// The node a kubelet-like reporter runs on, else empty.
    host: String,
    leases: Arc<EventLeases>,
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
            registry: Registry::new(kv),
            component: component.to_string(),
            host: host.to_string(),
            leases,
        }
    }

    /// Records an event without waiting for the write (as Kubernetes' event
    /// broadcaster does): the caller's loop is not slowed by its events.
    pub fn emit(&self, object: ObjectReference, type_: EventType, reason: &str, message: String) {
        let recorder = self.clone();
        let reason = reason.to_string();
        tokio::spawn(async move { recorder.record(&object, type_, &reason, &message).await });
    }

    /// Records that `reason` happened to `object`, with a message for people.
    pub async fn record(&self, object: &ObjectReference, type_: EventType, reason: &str, message: &str) {
        if let Err(e) = self.try_record(object, type_, reason, message).await {
            tracing::warn!(error = %e, reason, "an event was not recorded");
        }
    }

    async fn try_record(&self, object: &ObjectReference, type_: EventType, reason: &str, message: &str) -> Result<()> {
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".to_string());
        let name = event_name(object, type_, reason, message, &self.component);
        let key = EVENT.key(&namespace, &name);
        let now = time::now();
        for _ in 0..4 {
            if let Some(record) = self.registry.kv.get(&key).await? {
                let mut event: Event = serde_json::from_slice(&record.value)
                    .map_err(|e| KvError::Other(format!("stored event at {key} does not decode: {e}")))?;
                event.count = Some(event.count.unwrap_or(1) + 1);
                event.last_timestamp = Some(now.clone());
                event.metadata.resource_version = None;
                let value = serde_json::to_vec(&event).expect("events serialize");
                match self.registry.kv.update(&key, value, record.mod_revision, None).await {
                    Err(KvError::Conflict { .. }) => continue,
                    other => return other.map(drop),
                }
            }
            let event = Event {
                metadata: named(&namespace, &name),
                involved_object: object.clone(),
                type_: Some(type_.as_str().to_string()),
                reason: Some(reason.to_string()),
                message: Some(message.to_string()),
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
            let lease = self.leases.lease(&self.registry.kv).await?;
            let object = berth_api::kinds::Object::new(event);
            match self.registry.create_leased(&object, lease, None).await {
                Err(KvError::AlreadyExists) => continue,
                other => return other.map(drop),
            }
        }
        Err(KvError::Other(format!(
            "event {name} kept changing while it was recorded"
        )))
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
mod tests {
    use super::*;
    use berth_api::objects::{Pod, PodSpec};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn repeats_raise_the_count_of_one_event_attached_to_a_lease() {
        let t = crate::testing::store().await;
        let recorder = Recorder::new(t.kv.clone(), "default-scheduler", "");
        let mut pod = Pod::new(named("dev", "web-1"), PodSpec::default());
        pod.metadata.uid = Some("u1".into());
        let reference = reference(&pod);
        assert_eq!(reference.kind.as_deref(), Some("Pod"));
        recorder
            .record(
                &reference,
                EventType::Warning,
                "FailedScheduling",
                "0/2 nodes are available",
            )
            .await;
        recorder
            .record(
                &reference,
                EventType::Warning,
                "FailedScheduling",
                "0/2 nodes are available",
            )
            .await;
        recorder
            .record(
                &reference,
                EventType::Normal,
                "Scheduled",
                "Successfully assigned dev/web-1 to n1",
            )
            .await;
        let (records, _) = t.kv.list(&EVENT.prefix(Some("dev"))).await.unwrap();
        assert_eq!(records.len(), 2, "a repeat is the same event");
        let events: Vec<Event> = records
            .iter()
            .map(|r| serde_json::from_slice(&r.value).unwrap())
            .collect();
        let failed = events
            .iter()
            .find(|e| e.reason.as_deref() == Some("FailedScheduling"))
            .unwrap();
        assert_eq!(failed.count, Some(2));
        assert_eq!(failed.involved_object.name.as_deref(), Some("web-1"));
        assert!(failed.metadata.name().starts_with("web-1."));
        assert_eq!(
            failed.source.as_ref().unwrap().component.as_deref(),
            Some("default-scheduler")
        );
        assert!(records.iter().all(|r| r.lease != 0), "every event has a time to live");
        assert_eq!(records[0].lease, records[1].lease, "events of one minute share a lease");
    }
}
