//! The horizontal pod autoscaler controller: every sync period (15 s, Kubernetes'
//! `--horizontal-pod-autoscaler-sync-period`; `berth server` has the same flag),
//! each HorizontalPodAutoscaler's target is scaled to meet its metrics, as
//! Kubernetes' controller does, with the usage the agents report (no metrics
//! add-on: the same reports the API server's `metrics.k8s.io` serves).
//!
//! ```text
//! autoscaler due (synced longer than a period ago, or changed by its user)
//!   ─► target's scale (target.rs: Deployment, ReplicaSet; from the caches)
//!   ─► its pods (caches) ─► the agents of their nodes: GET /metrics/usage, once each
//!   ─► decide.rs (pure; memory of recommendations and scale events per autoscaler)
//!   ─► fenced writes: the target's spec.replicas, the autoscaler's status, Events
//! ```
//!
//! The memory (stabilization windows, scale events) lives in this loop: a new
//! leader starts without it, as a restarted kube-controller-manager does.

mod behavior;
mod decide;
mod replicas;
mod target;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use berth_api::kinds::horizontal_pod_autoscaler::{
    ABLE_TO_SCALE, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec,
};
use berth_api::meta::{MetaExt, selector_matches};
use berth_api::metrics::UsageSummary;
use berth_api::objects::Pod;
use berth_client::events::{EventType, reference};
use berth_client::kv::KvError;
use berth_controller_runtime::informer::Informer;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive, sooner};

pub use behavior::Memory;
pub use decide::{Decision, Samples, decide};
pub use replicas::{PodSample, Target, Usage, proposal};
pub use target::{Op, Scalable, with_target};

/// Kubernetes' default sync period.
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(15);

pub async fn run(ctx: Context, sync_period: Duration) {
    let autoscalers: Informer<HorizontalPodAutoscalerSpec> = Informer::start(ctx.registry.kv.clone());
    autoscalers.wait_synced().await;
    ctx.caches.pods.wait_synced().await;
    ctx.caches.nodes.wait_synced().await;
    ctx.caches.deployments.wait_synced().await;
    ctx.caches.replica_sets.wait_synced().await;
    let memory: Mutex<BTreeMap<String, Memory>> = Mutex::default();
    let triggers = vec![autoscalers.subscribe()];
    drive("horizontal-pod-autoscaler", triggers, sync_period, || {
        pass(&ctx, &autoscalers, &memory, sync_period)
    })
    .await;
}

/// The samples of one autoscaler's pods, from the agents' reports.
struct PodsWithUsage<'a> {
    pods: Vec<&'a Pod>,
    reports: &'a BTreeMap<String, UsageSummary>,
}

impl Samples for PodsWithUsage<'_> {
    fn of(&self, resource: &str) -> Vec<PodSample> {
        self.pods
            .iter()
            .map(|pod| sample(pod, resource, self.reports))
            .collect()
    }
}

fn request_of(pod: &Pod, resource: &str) -> Result<i64, String> {
    let mut total = 0i64;
    for container in &pod.spec.containers {
        let request = container
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(resource));
        let Some(request) = request else {
            return Err(container.name.clone());
        };
        let value = if resource == "cpu" {
            berth_api::quantity::parse_cpu_millis(&request.0)
        } else {
            berth_api::quantity::parse_memory_bytes(&request.0)
        };
        total += value.map_err(|_| container.name.clone())? as i64;
    }
    Ok(total)
}

/// One pod as the replica calculation reads it; usage in millicores or bytes.
pub fn sample(pod: &Pod, resource: &str, reports: &BTreeMap<String, UsageSummary>) -> PodSample {
    let ready = pod
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| {
            let changed = c
                .last_transition_time
                .as_ref()
                .map_or(SystemTime::UNIX_EPOCH, berth_api::time::to_system_time);
            (c.status == "True", changed)
        });
    let node = pod.spec.node_name.as_deref().unwrap_or_default();
    let usage = reports.get(node).and_then(|report| {
        let found = report.pods.iter().find(|p| {
            p.namespace == pod.metadata.namespace() && p.name == pod.metadata.name() && p.uid == pod.metadata.uid()
        })?;
        let first = found.containers.first()?;
        let (cpu_nano_cores, memory_bytes) = found.totals();
        Some(Usage {
            value: if resource == "cpu" {
                (cpu_nano_cores / 1_000_000) as i64
            } else {
                memory_bytes as i64
            },
            timestamp: berth_api::time::parse_rfc3339(&first.usage.timestamp)?,
            window: Duration::from_secs_f64(first.usage.window_seconds.max(0.0)),
        })
    });
    PodSample {
        name: pod.metadata.name().to_string(),
        phase: pod.status.phase.clone().unwrap_or_default(),
        deleting: pod.metadata.is_deleting(),
        ready,
        start_time: pod.status.start_time.as_ref().map(berth_api::time::to_system_time),
        request: request_of(pod, resource),
        usage,
    }
}

/// Whether `hpa` is due: never synced, synced a period ago, or changed since.
fn is_due(
    hpa: &HorizontalPodAutoscaler,
    memory: &Memory,
    sync_period: Duration,
    now: SystemTime,
) -> Result<(), Duration> {
    let changed = hpa.status.observed_generation != hpa.metadata.generation;
    match memory.last_sync {
        Some(last) if !changed => match (last + sync_period).duration_since(now) {
            Ok(left) if !left.is_zero() => Err(left),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

async fn pass(
    ctx: &Context,
    autoscalers: &Informer<HorizontalPodAutoscalerSpec>,
    memory: &Mutex<BTreeMap<String, Memory>>,
    sync_period: Duration,
) -> Result<Requeue, KvError> {
    let autoscalers = autoscalers.snapshot();
    let now = SystemTime::now();
    let mut requeue: Requeue = None;
    let mut due = Vec::new();
    {
        let mut memory = memory.lock().expect("autoscaler memory lock");
        memory.retain(|key, _| autoscalers.contains(key));
        for hpa in autoscalers.iter() {
            let remembered = memory.entry(hpa.key()).or_default();
            match is_due(hpa, remembered, sync_period, now) {
                Ok(()) => {
                    remembered.last_sync = Some(now);
                    due.push(hpa);
                }
                Err(left) => requeue = sooner(requeue, Some(left)),
            }
        }
    }
    if due.is_empty() {
        return Ok(requeue);
    }
    requeue = sooner(requeue, Some(sync_period));
    let pods = ctx.caches.pods.snapshot();
    let nodes = ctx.caches.nodes.snapshot();
    let mut reports: BTreeMap<String, UsageSummary> = BTreeMap::new();
    let recorder = ctx.recorder("horizontal-pod-autoscaler");
    for hpa in due {
        let namespace = hpa.metadata.namespace();
        let target = &hpa.spec.scale_target_ref;
        let scale = match with_target(
            ctx,
            target.api_version.as_deref(),
            &target.kind,
            namespace,
            &target.name,
            Op::Read,
        )
        .await
        {
            Ok(scale) => Ok(scale),
            Err(Ok(why)) => Err(why),
            Err(Err(error)) => return Err(error),
        };
        let selected: Vec<&Pod> = match &scale {
            Ok(scale) => pods
                .iter()
                .filter(|p| {
                    p.metadata.namespace() == namespace && selector_matches(&scale.selector, p.metadata.labels())
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        // Each node's report once per pass, for every autoscaler that needs it.
        for pod in &selected {
            let node = pod.spec.node_name.clone().unwrap_or_default();
            if node.is_empty() || reports.contains_key(&node) {
                continue;
            }
            let Some(object) = nodes.iter().find(|n| n.metadata.name() == node) else {
                continue;
            };
            let value = serde_json::to_value(object).unwrap_or_default();
            match berth_client::agents::node_usage(&value).await {
                Ok(report) => {
                    reports.insert(node, report);
                }
                Err(error) => tracing::debug!(%node, %error, "no usage from the node's agent"),
            }
        }
        let samples = PodsWithUsage {
            pods: selected,
            reports: &reports,
        };
        let decision = {
            let mut memory = memory.lock().expect("autoscaler memory lock");
            let remembered = memory.entry(hpa.key()).or_default();
            decide(
                hpa,
                scale.as_ref().map(|s| s.replicas).map_err(Clone::clone),
                &samples,
                remembered,
                now,
            )
        };
        let mut status = decision.status;
        let mut events = decision.events;
        if let Some(replicas) = decision.rescale {
            let current = scale.as_ref().map_or(0, |s| s.replicas);
            match with_target(
                ctx,
                target.api_version.as_deref(),
                &target.kind,
                namespace,
                &target.name,
                Op::Set(replicas),
            )
            .await
            {
                Ok(_) => {
                    let (up, down) = behavior::rules(hpa.spec.behavior.as_ref());
                    let mut memory = memory.lock().expect("autoscaler memory lock");
                    behavior::record_scale(memory.entry(hpa.key()).or_default(), current, replicas, &up, &down, now);
                }
                Err(Err(KvError::Fenced)) => return Err(KvError::Fenced),
                Err(failure) => {
                    let why = match failure {
                        Ok(why) => why,
                        Err(error) => error.to_string(),
                    };
                    // Not scaled: say so, and try again soon.
                    events.retain(|(_, reason, _)| *reason != "SuccessfulRescale");
                    events.push((
                        EventType::Warning,
                        "FailedRescale",
                        format!("New size: {replicas}; error: {why}"),
                    ));
                    status.last_scale_time = hpa.status.last_scale_time.clone();
                    status.desired_replicas = current;
                    let conditions = status.conditions.get_or_insert_with(Vec::new);
                    let failed = <berth_api::kinds::horizontal_pod_autoscaler::HorizontalPodAutoscalerCondition as berth_api::conditions::Condition>::new(
                        ABLE_TO_SCALE,
                        "False",
                        "FailedUpdateScale",
                        &format!("the HPA controller was unable to update the target scale: {why}"),
                    );
                    berth_api::conditions::set_condition(conditions, failed, &berth_api::time::from_system_time(now));
                    memory
                        .lock()
                        .expect("autoscaler memory lock")
                        .entry(hpa.key())
                        .or_default()
                        .last_sync = None;
                    requeue = sooner(requeue, Some(RETRY_SOON));
                }
            }
        }
        if status != hpa.status {
            let mut updated = hpa.clone();
            updated.status = status;
            if benign(ctx.registry.update(&updated, ctx.fence()).await)?.is_none() {
                requeue = sooner(requeue, Some(RETRY_SOON));
            }
        }
        for (type_, reason, message) in events {
            recorder.emit(reference(hpa), type_, reason, message);
        }
    }
    Ok(requeue)
}
