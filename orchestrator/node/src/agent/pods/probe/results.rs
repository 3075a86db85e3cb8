//! The probes' results into the memory, free of I/O: each result counts towards its
//! container run's health (a stale one, of a run that ended, is dropped), a failure
//! is an `Unhealthy` event, and a liveness or startup probe that reached its failure
//! threshold kills the container with the probe's grace (else the pod's), once, its
//! preStop hook first, as a deletion would; the restart that follows is the restart
//! policy's, with its back-off.

use std::time::Duration;

use super::health::Verdict;
use super::workers::ProbeResult;
use crate::agent::pods::hooks::pre_stop_of;
use crate::agent::pods::memory::Memory;
use crate::agent::pods::plan::{Action, DEFAULT_GRACE, pod_name};
use berth_api::probes::Timing;

pub(crate) fn take(memory: &mut Memory, results: Vec<ProbeResult>) -> Vec<Action> {
    let mut actions = Vec::new();
    for result in results {
        let Some(pod) = memory.pods.get_mut(&result.pod_uid) else {
            continue;
        };
        let Some(spec) = crate::agent::pods::plan::all_containers(&pod.pod).find(|c| c.name == result.container) else {
            continue;
        };
        let Some(c) = pod.containers.get_mut(&result.container) else {
            continue;
        };
        if c.id.as_deref() != Some(result.id.as_str()) || c.health.is_killed(&result.id) {
            continue;
        }
        let name = pod_name(&pod.pod);
        if !result.outcome.success {
            actions.push(Action::Unhealthy {
                pod: name.clone(),
                pod_uid: result.pod_uid.clone(),
                container: result.container.clone(),
                message: format!("{} probe failed: {}", result.kind.title(), result.outcome.message),
            });
        }
        if let Verdict::Kill(kind) = c.health.record(spec, &result.id, result.kind, result.outcome.success) {
            c.health.killing(&result.id, kind);
            let probe_grace = kind
                .of(spec)
                .and_then(|p| Timing::of(p).termination_grace_period_seconds);
            let grace = probe_grace
                .or(pod.pod.spec.termination_grace_period_seconds)
                .map_or(DEFAULT_GRACE, |s| Duration::from_secs(s.max(0) as u64));
            actions.push(Action::KillUnhealthy {
                pod: name,
                pod_uid: result.pod_uid.clone(),
                handler: pod.handler.clone(),
                container: result.container.clone(),
                id: result.id.clone(),
                grace,
                pre_stop: pre_stop_of(spec),
                address: pod.sandbox.ready().and_then(|s| s.pod_ip),
                message: format!(
                    "Container {} failed {} probe, will be restarted",
                    result.container,
                    kind.title().to_lowercase()
                ),
            });
        }
    }
    actions
}
