//! Carries out the plan against the runtime: observes the runtime, calls [`plan`] with
//! the memory and the pass's clock, and does what it returns. Every decision is the
//! plan's; what is left here is calls, their errors and the log lines.
//!
//! Stops run in the background (a grace period can be long), so a pass never waits on
//! a container that is going away.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::memory::{Memory, Now};
use super::plan::{Action, Observed, StopReason, plan, plan_reports};
use crate::runtime::Runtime;
use berth_api::kinds::event::ObjectReference;
use berth_api::objects::{Pod, PodStatus};
use berth_client::events::{EventType, Recorder};

pub(crate) struct Executor {
    runtime: Arc<dyn Runtime>,
    memory: Memory,
    host_ip: String,
    /// The statuses this pass has to write, for the supervisor (which holds the store).
    writes: Vec<Action>,
    /// Where the events about containers go (none in tests of the executor alone).
    events: Option<Recorder>,
}

/// The reference an event about a container of a pod names: the pod, and the
/// container as Kubernetes' field path (`spec.containers{http}`).
fn container_reference(pod: &str, pod_uid: &str, container: &str) -> ObjectReference {
    let (namespace, name) = pod.split_once('/').unwrap_or(("default", pod));
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        uid: Some(pod_uid.to_string()),
        field_path: Some(format!("spec.containers{{{container}}}")),
        resource_version: None,
    }
}

impl Executor {
    pub(crate) fn new(runtime: Arc<dyn Runtime>, backoff_base: Duration, host_ip: String) -> Self {
        Executor {
            memory: Memory::new(backoff_base, runtime.name()),
            runtime,
            host_ip,
            writes: Vec::new(),
            events: None,
        }
    }

    /// Records events about the containers with `recorder` (Started, Failed).
    pub(crate) fn with_events(mut self, recorder: Recorder) -> Self {
        self.events = Some(recorder);
        self
    }

    pub(crate) fn memory(&self) -> &Memory {
        &self.memory
    }

    /// One pass at `now` over the pods bound to this node (by store key): returns the
    /// statuses to write (`Action::ReportStatus`), each to be confirmed with
    /// [`reported`](Self::reported) once written.
    pub(crate) fn pass(&mut self, desired: &BTreeMap<String, Pod>, now: Now) -> Vec<Action> {
        let observed = self.observe();
        for action in plan(&mut self.memory, desired, &observed, now) {
            self.carry_out(action, now);
        }
        // After the starts' outcomes are in the memory: a pod started in this pass is
        // reported Running in this pass.
        for action in plan_reports(&self.memory, &self.host_ip, now) {
            self.carry_out(action, now);
        }
        std::mem::take(&mut self.writes)
    }

    /// The status of the pod `uid` is in the store (or the pod is gone from it).
    pub(crate) fn reported(&mut self, uid: &str, status: PodStatus) {
        if let Some(pod) = self.memory.pods.get_mut(uid) {
            pod.reported = Some(status);
        }
    }

    /// What the plan needs from the runtime: everything it has when the pass adopts,
    /// and the state of every container the memory holds.
    fn observe(&self) -> Observed {
        let mut observed = Observed::default();
        if !self.memory.adopted {
            observed.found = self.runtime.list();
            for c in &observed.found {
                observed.states.insert(c.id.clone(), Ok(c.state));
            }
        }
        for id in self.memory.container_ids() {
            if !observed.states.contains_key(id) {
                let state = self.runtime.state(id).map_err(|e| e.to_string());
                observed.states.insert(id.to_owned(), state);
            }
        }
        observed
    }

    fn carry_out(&mut self, action: Action, now: Now) {
        match action {
            Action::Adopt { pod, container, id } => {
                tracing::info!(%pod, %container, %id, "adopting a running container");
            }
            Action::Lost {
                pod,
                container,
                id,
                error,
            } => {
                tracing::warn!(%pod, %container, %id, %error, "lost track of a container; starting it again");
            }
            Action::Remove {
                pod,
                pod_uid,
                container,
                id,
                exit_code,
                backing_off,
            } => {
                tracing::info!(%pod, %container, exit_code, "container exited");
                if backing_off && let Some(events) = &self.events {
                    events.emit(
                        container_reference(&pod, &pod_uid, &container),
                        EventType::Warning,
                        "BackOff",
                        format!("Back-off restarting failed container {container} in pod {pod}"),
                    );
                }
                if let Err(e) = self.runtime.remove(&id)
                    && !e.is_not_found()
                {
                    tracing::warn!(%pod, error = %e, "cannot remove an exited container");
                }
            }
            Action::Start { pod_uid, spec } => {
                let result = self.runtime.start(&spec);
                let Some(c) = self
                    .memory
                    .pods
                    .get_mut(&pod_uid)
                    .and_then(|p| p.containers.get_mut(&spec.name))
                else {
                    debug_assert!(false, "the plan starts only containers it remembers");
                    return;
                };
                match result {
                    Ok(id) => {
                        tracing::info!(pod = %spec.pod, container = %spec.name, %id, "container started");
                        c.started(id, now);
                        if let Some(events) = &self.events {
                            events.emit(
                                container_reference(&spec.pod, &pod_uid, &spec.name),
                                EventType::Normal,
                                "Started",
                                format!("Started container {}", spec.name),
                            );
                        }
                    }
                    Err(e) => {
                        tracing::warn!(pod = %spec.pod, container = %spec.name, error = %e, "cannot start container");
                        if let Some(events) = &self.events {
                            events.emit(
                                container_reference(&spec.pod, &pod_uid, &spec.name),
                                EventType::Warning,
                                "Failed",
                                format!("Error: {e}"),
                            );
                        }
                        c.start_failed(e.to_string(), now);
                    }
                }
            }
            Action::Stop {
                pod,
                ids,
                containers,
                grace,
                remove_logs_of,
                reason,
            } => {
                match reason {
                    StopReason::PodGone => {
                        tracing::info!(%pod, ?ids, "stopping: the pod is no longer bound to this node");
                        if let (Some(events), Some(uid)) = (&self.events, &remove_logs_of) {
                            for container in &containers {
                                events.emit(
                                    container_reference(&pod, uid, container),
                                    EventType::Normal,
                                    "Killing",
                                    format!("Stopping container {container}"),
                                );
                            }
                        }
                    }
                    StopReason::Duplicate => {
                        tracing::info!(%pod, ?ids, "stopping a second copy of a container found at adoption");
                    }
                }
                let runtime = self.runtime.clone();
                tokio::spawn(async move {
                    let stops = ids.into_iter().map(|id| stop_and_remove(runtime.clone(), id, grace));
                    futures::future::join_all(stops).await;
                    if let Some(uid) = remove_logs_of {
                        runtime.remove_pod_logs(&uid);
                    }
                });
            }
            Action::ReportStatus { .. } => self.writes.push(action),
        }
    }

    /// Stops every container now (self-fencing or shutdown), the runtime's and the
    /// memory's alike, and forgets the pods: the next pass adopts afresh.
    pub(crate) async fn stop_all(&mut self, grace: Duration) {
        let mut ids: Vec<String> = self.runtime.list().into_iter().map(|c| c.id).collect();
        ids.extend(self.memory.container_ids().map(str::to_owned));
        ids.sort();
        ids.dedup();
        let stops = ids
            .into_iter()
            .map(|id| stop_and_remove(self.runtime.clone(), id, grace));
        futures::future::join_all(stops).await;
        self.memory.forget_all();
    }
}

async fn stop_and_remove(runtime: Arc<dyn Runtime>, id: String, grace: Duration) {
    if let Err(e) = runtime.stop(&id, grace).await
        && !e.is_not_found()
    {
        tracing::warn!(%id, error = %e, "cannot stop container");
    }
    if let Err(e) = runtime.remove(&id)
        && !e.is_not_found()
    {
        tracing::warn!(%id, error = %e, "cannot remove container");
    }
}
