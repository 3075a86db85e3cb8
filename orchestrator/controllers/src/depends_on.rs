//! The dependencies controller: releases the pods that `berth.io/depends-on` holds
//! ([`berth_api::depends_on`]) once every Service they name has a ready endpoint.
//!
//! ```text
//!  gated pod (gate berth.io/depends-on, annotation "db,cache")
//!    │  Services of its namespace (cache) + their EndpointSlices (store)
//!    ├─ all have an endpoint that is ready ──► gate removed, DependenciesReady=True,
//!    │                                          Event DependenciesReady
//!    └─ some do not ──► DependenciesReady=False "waiting for …", Event
//!                       WaitingForDependencies; looked at again in a second
//! ```
//!
//! A Service's endpoints are read from its EndpointSlices (the `kubernetes.io/
//! service-name` label), so a Service without a selector whose slices the user
//! keeps counts as well. Slices are not cached on the leader: while some pod waits,
//! its namespace's slices are listed from the store once a pass, and the pass
//! runs again every [`WAIT_RECHECK`]. A pass walks every pod, so passes are spaced
//! a second apart at least: a pod waits at most that long to be looked at.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_api::conditions::{Condition, condition, is_terminal, set_condition};
use berth_api::depends_on::{ANNOTATION, CONDITION, GATE, is_held, services};
use berth_api::kinds::endpoint_slice::{ENDPOINT_SLICE, EndpointSlice, SERVICE_NAME_LABEL};
use berth_api::kinds::service::ServiceSpec;
use berth_api::meta::MetaExt;
use berth_api::objects::{Pod, PodCondition, key};
use berth_api::time::now;
use berth_client::events::{EventType, reference};
use berth_client::kv::KvError;
use berth_client::registry::encode;
use berth_controller_runtime::informer::Snapshot;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive, sooner};

/// How often a pass runs while some pod waits (EndpointSlices are not watched).
pub const WAIT_RECHECK: Duration = Duration::from_secs(1);
/// Passes walk the pods at most this often.
const MIN_PASS_INTERVAL: Duration = Duration::from_secs(1);
/// The component the events name.
const COMPONENT: &str = "depends-on-controller";
const READY_REASON: &str = "DependenciesReady";
const WAITING_REASON: &str = "WaitingForDependencies";

/// What a held pod needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every Service it names has a ready endpoint: remove the gate.
    Release { message: String },
    /// Some do not; the message says which, and why.
    Wait { message: String },
}

/// Whether a slice lists an endpoint that is ready (an absent `ready` counts as
/// ready, as Kubernetes reads it) and has an address.
fn has_ready_endpoint(slice: &EndpointSlice) -> bool {
    slice
        .endpoints
        .iter()
        .any(|e| !e.addresses.is_empty() && e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
}

/// What the held `pod` needs, from the Services of the cluster and the
/// EndpointSlices of its namespace. Pure.
pub fn decide(pod: &Pod, services_cache: &Snapshot<ServiceSpec>, slices: &[EndpointSlice]) -> Decision {
    let namespace = pod.metadata.namespace();
    let value = pod
        .metadata
        .annotations()
        .get(ANNOTATION)
        .map(String::as_str)
        .unwrap_or_default();
    let names = match services(value) {
        Ok(names) => names,
        // Only a pod written around the API's checks gets here: holding it forever
        // would hide the mistake less well than saying it.
        Err(problem) => {
            return Decision::Wait {
                message: format!("annotation {ANNOTATION}: {problem}"),
            };
        }
    };
    let mut missing = Vec::new();
    for name in &names {
        let service = services_cache.get(&key::<ServiceSpec>(namespace, name));
        let ready = slices.iter().any(|slice| {
            slice.metadata.namespace() == namespace
                && slice.metadata.labels().get(SERVICE_NAME_LABEL).map(String::as_str) == Some(name)
                && has_ready_endpoint(slice)
        });
        match (service, ready) {
            (None, _) => missing.push(format!("Service {namespace}/{name} not found")),
            (Some(_), false) => missing.push(format!("Service {namespace}/{name} has no ready endpoints")),
            (Some(_), true) => {}
        }
    }
    if missing.is_empty() {
        Decision::Release {
            message: format!("Services with ready endpoints: {}", names.join(", ")),
        }
    } else {
        Decision::Wait {
            message: format!("waiting for dependencies: {}", missing.join("; ")),
        }
    }
}

/// The pod after `decision`: released (gate removed, condition True) or with the
/// condition saying what it waits for; `None` when nothing changes. Pure.
pub fn apply(pod: &Pod, decision: &Decision) -> Option<Pod> {
    let mut pod = pod.clone();
    let (status, reason, message) = match decision {
        Decision::Release { message } => ("True", READY_REASON, message),
        Decision::Wait { message } => ("False", WAITING_REASON, message),
    };
    let mut changed = set_condition(
        pod.status.conditions.get_or_insert_default(),
        PodCondition::new(CONDITION, status, reason, message),
        &now(),
    );
    if let Decision::Release { .. } = decision {
        let gates = pod.spec.scheduling_gates.get_or_insert_default();
        gates.retain(|g| g.name != GATE);
        if gates.is_empty() {
            pod.spec.scheduling_gates = None;
        }
        changed = true;
    }
    changed.then_some(pod)
}

/// Runs the controller until fenced: on every change of a pod or a Service, every
/// resync, and every [`WAIT_RECHECK`] while some pod waits.
pub async fn run(ctx: Context, resync: Duration) {
    ctx.caches.pods.wait_synced().await;
    ctx.caches.services.wait_synced().await;
    let triggers = vec![ctx.caches.pods.subscribe(), ctx.caches.services.subscribe()];
    let last_pass = Mutex::new(None);
    drive("depends-on", triggers, resync, || pass(&ctx, &last_pass)).await;
}

/// Whether a pass may walk the pods now, else how long until it may: at most one
/// walk per [`MIN_PASS_INTERVAL`], so that a burst of pod writes (thousands a
/// second) costs this controller a walk a second, not one per write.
fn throttle(last_pass: &Mutex<Option<Instant>>) -> Option<Duration> {
    let mut last = last_pass.lock().expect("throttle lock");
    if let Some(wait) = last.and_then(|at| MIN_PASS_INTERVAL.checked_sub(at.elapsed())) {
        return Some(wait);
    }
    *last = Some(Instant::now());
    None
}

async fn pass(ctx: &Context, last_pass: &Mutex<Option<Instant>>) -> Result<Requeue, KvError> {
    if let Some(wait) = throttle(last_pass) {
        return Ok(Some(wait));
    }
    let pods = ctx.caches.pods.snapshot();
    let held: Vec<&Pod> = pods
        .iter()
        .filter(|p| is_held(&p.spec) && !p.metadata.is_deleting() && !is_terminal(p))
        .collect();
    if held.is_empty() {
        return Ok(None);
    }
    let services = ctx.caches.services.snapshot();
    let mut slices: BTreeMap<&str, Vec<EndpointSlice>> = BTreeMap::new();
    let recorder = ctx.recorder(COMPONENT);
    let mut requeue = None;
    for pod in held {
        let namespace = pod.metadata.namespace();
        if !slices.contains_key(namespace) {
            let (records, _) = ctx.registry.kv.list(&ENDPOINT_SLICE.prefix(Some(namespace))).await?;
            let decoded = records
                .iter()
                .filter_map(|r| serde_json::from_slice::<EndpointSlice>(&r.value).ok())
                .collect();
            slices.insert(namespace, decoded);
        }
        let decision = decide(pod, &services, &slices[namespace]);
        if let Decision::Wait { .. } = decision {
            requeue = sooner(requeue, Some(WAIT_RECHECK));
        }
        let Some(updated) = apply(pod, &decision) else {
            continue;
        };
        let Ok(version) = pod.metadata.resource_version().parse::<i64>() else {
            continue;
        };
        let written = ctx
            .registry
            .kv
            .update(&pod.key(), encode(&updated), version, ctx.fence())
            .await;
        if benign(written)?.is_none() {
            requeue = sooner(requeue, Some(RETRY_SOON));
            continue;
        }
        let was_waiting = condition(pod.status.conditions.as_deref().unwrap_or_default(), CONDITION)
            .is_some_and(|c| c.reason.as_deref() == Some(WAITING_REASON));
        match decision {
            Decision::Release { message } => {
                tracing::info!(pod = %pod.key(), "dependencies ready: released");
                recorder.emit(reference(pod), EventType::Normal, READY_REASON, message);
            }
            Decision::Wait { message } => {
                if !was_waiting {
                    tracing::info!(pod = %pod.key(), %message, "held for its dependencies");
                }
                recorder.emit(reference(pod), EventType::Normal, WAITING_REASON, message);
            }
        }
    }
    Ok(requeue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::kinds::endpoint_slice::{Endpoint, EndpointConditions};
    use berth_api::meta::ObjectMeta;
    use berth_api::objects::{PodSchedulingGate, PodSpec, Resource};

    fn held_pod(depends_on: &str) -> Pod {
        Resource::new(
            ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("shop".into()),
                annotations: Some([(ANNOTATION.to_string(), depends_on.to_string())].into()),
                ..Default::default()
            },
            PodSpec {
                scheduling_gates: Some(vec![
                    PodSchedulingGate { name: GATE.into() },
                    PodSchedulingGate {
                        name: "example.com/other".into(),
                    },
                ]),
                ..Default::default()
            },
        )
    }

    fn service(namespace: &str, name: &str) -> Resource<ServiceSpec> {
        Resource::new(
            ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            ServiceSpec::default(),
        )
    }

    fn slice(namespace: &str, service: &str, ready: Option<bool>) -> EndpointSlice {
        EndpointSlice {
            metadata: ObjectMeta {
                name: Some(format!("{service}-abc")),
                namespace: Some(namespace.into()),
                labels: Some([(SERVICE_NAME_LABEL.to_string(), service.to_string())].into()),
                ..Default::default()
            },
            address_type: "IPv4".into(),
            endpoints: vec![Endpoint {
                addresses: vec!["10.0.0.7".into()],
                conditions: Some(EndpointConditions {
                    ready,
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ports: None,
        }
    }

    fn snapshot<S: berth_api::objects::Spec>(objects: impl IntoIterator<Item = Resource<S>>) -> Snapshot<S> {
        Snapshot::from_objects(objects, 1)
    }

    fn wait_message(decision: Decision) -> String {
        match decision {
            Decision::Wait { message } => message,
            other => panic!("expected to wait, got {other:?}"),
        }
    }

    #[test]
    fn a_pod_waits_for_every_service_it_names() {
        let pod = held_pod("db,cache");
        let services = snapshot([service("shop", "db"), service("shop", "cache"), service("other", "db")]);
        let none = wait_message(decide(&pod, &snapshot::<ServiceSpec>([]), &[]));
        assert_eq!(
            none,
            "waiting for dependencies: Service shop/db not found; Service shop/cache not found"
        );
        let slices = [slice("shop", "db", Some(true)), slice("shop", "cache", Some(false))];
        assert_eq!(
            wait_message(decide(&pod, &services, &slices)),
            "waiting for dependencies: Service shop/cache has no ready endpoints"
        );
        // A ready endpoint of a Service of the same name in another namespace does
        // not count.
        let elsewhere = [slice("shop", "db", Some(true)), slice("other", "cache", Some(true))];
        assert!(matches!(decide(&pod, &services, &elsewhere), Decision::Wait { .. }));
        // An absent `ready` is ready.
        let ready = [slice("shop", "db", Some(true)), slice("shop", "cache", None)];
        assert_eq!(
            decide(&pod, &services, &ready),
            Decision::Release {
                message: "Services with ready endpoints: db, cache".into()
            }
        );
    }

    #[test]
    fn release_removes_only_its_own_gate() {
        let pod = held_pod("db");
        let released = apply(&pod, &Decision::Release { message: "ok".into() }).unwrap();
        let gates = released.spec.scheduling_gates.as_ref().unwrap();
        assert_eq!(gates.len(), 1);
        assert_eq!(gates[0].name, "example.com/other");
        let condition = condition(released.status.conditions.as_deref().unwrap(), CONDITION).unwrap();
        assert_eq!(
            (condition.status.as_str(), condition.reason.as_deref()),
            ("True", Some(READY_REASON))
        );
    }

    #[test]
    fn an_unchanged_wait_writes_nothing() {
        let pod = held_pod("db");
        let wait = Decision::Wait {
            message: "waiting for dependencies: Service shop/db not found".into(),
        };
        let waiting = apply(&pod, &wait).expect("the first wait writes its condition");
        assert!(is_held(&waiting.spec));
        assert_eq!(apply(&waiting, &wait), None);
        let other = Decision::Wait {
            message: "waiting for dependencies: Service shop/db has no ready endpoints".into(),
        };
        assert!(apply(&waiting, &other).is_some(), "a new reason is written");
    }
}
