//! ReplicaSet → Pods: keeps `spec.replicas` active pods (not ended, not being
//! deleted) controlled by each ReplicaSet, creating `<replicaset>-<suffix>` pods from
//! its template or deleting the extras that matter least; deletes its pods that
//! ended (so they are replaced); writes its status. A ready pod counts as available
//! once it has been ready for `spec.minReadySeconds`; the pass asks to look again
//! when the next one will be.
//!
//! Expectations (as Kubernetes names them): the pod cache lags our own writes, so a
//! pass right after creating pods would not see them and would create more. Each
//! create is remembered with its revision until the cache has reached that
//! revision; each delete until the pod has left the cache. Both are counted as done.

use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use berth_api::conditions::{condition, is_active, is_pod_ready, is_terminal};
use berth_api::meta::{MetaExt, ObjectMeta, Time, selector_matches};
use berth_api::names::random_suffix;
use berth_api::objects::{Pod, PodSpec, PodStatus, ReplicaSet, ReplicaSetCondition, ReplicaSetStatus, Resource};
use berth_api::owners::{controller_of, controller_ref, is_controlled_by};
use berth_api::qos::qos_class;
use berth_api::time::to_system_time;
use berth_client::admission::Refusal;
use berth_client::admission_reads::SharedReads;
use berth_client::events::{EventType, Recorder, reference};
use berth_client::graceful::delete_pod;
use berth_client::kv::KvError;
use berth_controller_runtime::informer::Snapshot;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive, sooner};

use crate::spec_replicas;

/// At most this many pods are created for one ReplicaSet in one pass (Kubernetes'
/// `BurstReplicas`).
const CREATE_BURST: usize = 500;
/// How many ReplicaSets a pass syncs at once (kube-controller-manager's
/// `--concurrent-replicaset-syncs`).
const CONCURRENT_SYNCS: usize = 5;
/// How soon a ReplicaSet whose pod was refused tries again.
const RETRY_REFUSED: Duration = Duration::from_secs(5);
/// The condition of a ReplicaSet whose pods cannot be created, and its reason.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const FAILED_CREATE: &str = "FailedCreate";

/// Sets `ReplicaFailure` (reason `FailedCreate`, the first refusal as its message)
/// while pods are refused, and removes it once a pass creates what it needs, as
/// Kubernetes' ReplicaSet controller does.
pub fn set_replica_failure(status: &mut ReplicaSetStatus, failure: Option<&str>, now: SystemTime) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    match failure {
        None => conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        Some(message) => {
            let condition = ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some(FAILED_CREATE.into()),
                message: Some(message.into()),
                last_transition_time: Some(berth_api::time::from_system_time(now)),
            };
            // As Kubernetes: set when absent, then kept as it is while refusals last.
            if !conditions.iter().any(|c| c.type_ == REPLICA_FAILURE) {
                conditions.push(condition);
            }
        }
    }
    if conditions.is_empty() {
        status.conditions = None;
    }
}

/// A pod for `rs` from its template, named `<rs>-<suffix>`: Pending, with its QoS
/// class, as the API server creates one; held by the dependencies gate when `rs`
/// names Services it depends on ([`berth_api::depends_on`]).
pub fn new_pod(rs: &ReplicaSet, suffix: &str) -> Pod {
    let template = rs.spec.template.as_ref();
    let template_meta = template.and_then(|t| t.metadata.as_ref());
    let non_empty = |map: Option<&BTreeMap<String, String>>| map.filter(|m| !m.is_empty()).cloned();
    let metadata = ObjectMeta {
        name: Some(format!("{}-{suffix}", rs.metadata.name())),
        namespace: rs.metadata.namespace.clone(),
        labels: non_empty(template_meta.and_then(|m| m.labels.as_ref())),
        annotations: non_empty(template_meta.and_then(|m| m.annotations.as_ref())),
        owner_references: Some(vec![controller_ref(rs)]),
        ..Default::default()
    };
    let spec = template.and_then(|t| t.spec.clone()).unwrap_or_default();
    let mut pod = Resource::new(metadata, spec);
    pod.status = PodStatus {
        phase: Some("Pending".into()),
        qos_class: Some(qos_class(&pod.spec).into()),
        ..Default::default()
    };
    berth_api::depends_on::hold(&rs.metadata, &mut pod);
    pod
}

/// The order in which extra pods go: unscheduled before scheduled, Pending before
/// Unknown before Running, not ready before ready, then the newest first (the one
/// that has had least time to warm up). Smaller sorts first.
fn deletion_rank(pod: &Pod) -> (bool, u8, bool, std::cmp::Reverse<Option<&Time>>, &str) {
    let phase = match pod.status.phase.as_deref().unwrap_or_default() {
        "Pending" | "" => 0,
        "Unknown" => 1,
        _ => 2,
    };
    (
        pod.spec.node_name.as_deref().is_some_and(|n| !n.is_empty()),
        phase,
        is_pod_ready(pod),
        // Without a creation time, a pod counts as the oldest (as an empty time did).
        std::cmp::Reverse(pod.metadata.creation_timestamp.as_ref()),
        pod.metadata.name(),
    )
}

/// The `n` pods to delete when a ReplicaSet has too many.
pub fn pods_to_delete<'a>(pods: &[&'a Pod], n: usize) -> Vec<&'a Pod> {
    let mut ranked = pods.to_vec();
    ranked.sort_by(|a, b| deletion_rank(a).cmp(&deletion_rank(b)));
    ranked.truncate(n);
    ranked
}

/// When a ready pod becomes available: `minReadySeconds` after its `Ready`
/// condition turned true (at once with none; never without a transition time).
fn available_at(pod: &Pod, min_ready: Duration) -> Option<SystemTime> {
    let ready = condition(pod.status.conditions.as_deref()?, "Ready").filter(|c| c.status == "True")?;
    if min_ready.is_zero() {
        return Some(SystemTime::UNIX_EPOCH);
    }
    Some(to_system_time(ready.last_transition_time.as_ref()?) + min_ready)
}

/// What one ReplicaSet needs done.
#[derive(Debug, Default, PartialEq)]
pub struct Plan<'a> {
    pub create: usize,
    /// Extras, and pods that ended.
    pub delete: Vec<&'a Pod>,
    pub status: Option<ReplicaSetStatus>,
    /// When a ready pod will have been ready for minReadySeconds: look again then.
    pub requeue: Option<Duration>,
}

/// The status of `rs` from its active pods at `now`, and when the next ready pod
/// becomes available.
fn status_of(rs: &ReplicaSet, active: &[&Pod], now: SystemTime) -> (ReplicaSetStatus, Option<Duration>) {
    let min_ready = Duration::from_secs(u64::try_from(rs.spec.min_ready_seconds.unwrap_or_default()).unwrap_or(0));
    let template_labels = rs
        .spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .map(|m| m.labels());
    let template_selector = berth_api::meta::match_labels(template_labels.cloned().unwrap_or_default());
    let mut ready = 0;
    let mut available = 0;
    let mut next_available: Option<Duration> = None;
    for pod in active.iter().filter(|p| is_pod_ready(p)) {
        ready += 1;
        match available_at(pod, min_ready) {
            // Available once ready for strictly longer than minReadySeconds.
            Some(at) if at < now => available += 1,
            Some(at) => {
                // A second more, so that the next look is past it.
                let after = at.duration_since(now).unwrap_or_default() + Duration::from_secs(1);
                next_available = Some(next_available.map_or(after, |n| n.min(after)));
            }
            None => {}
        }
    }
    let status = ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(
            active
                .iter()
                .filter(|p| selector_matches(&template_selector, p.metadata.labels()))
                .count() as i32,
        ),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: Some(rs.metadata.generation()),
        ..rs.status.clone()
    };
    (status, next_available)
}

/// Plans for `rs` given the pods it controls (from the cache), the creates the cache
/// does not show yet and the deletes it still shows, at `now`. Pure.
pub fn reconcile<'a>(
    rs: &ReplicaSet,
    owned: &[&'a Pod],
    pending_creates: usize,
    pending_deletes: &BTreeSet<String>,
    now: SystemTime,
) -> Plan<'a> {
    let mut plan = Plan::default();
    let active: Vec<&Pod> = owned.iter().copied().filter(|p| is_active(p)).collect();
    let (status, next_available) = status_of(rs, &active, now);
    plan.requeue = next_available;
    if status != rs.status {
        plan.status = Some(status);
    }
    if rs.metadata.is_deleting() {
        return plan;
    }
    let not_pending = |p: &&Pod| !pending_deletes.contains(&p.key());
    plan.delete = owned
        .iter()
        .copied()
        .filter(|p| is_terminal(p) && !p.metadata.is_deleting())
        .filter(not_pending)
        .collect();
    let counted: Vec<&Pod> = active.iter().copied().filter(not_pending).collect();
    let have = counted.len() + pending_creates;
    let want = spec_replicas(rs.spec.replicas).max(0) as usize;
    if want > have {
        plan.create = (want - have).min(CREATE_BURST);
    } else if have > want {
        // Only pods the cache shows can be chosen; pending creates count but wait.
        let extra = (have - want).min(counted.len());
        plan.delete.extend(pods_to_delete(&counted, extra));
    }
    plan
}

/// Our writes that the pod cache does not reflect yet, per ReplicaSet uid.
#[derive(Debug, Default)]
pub struct Expectations {
    creates: BTreeMap<String, BTreeMap<String, i64>>,
    deletes: BTreeMap<String, BTreeSet<String>>,
}

impl Expectations {
    /// Forgets what the cache now shows: creates at or below its revision, deletes of
    /// pods it no longer has, and ReplicaSets that are gone.
    pub fn observe(&mut self, pods: &Snapshot<PodSpec>, live_uids: &BTreeSet<&str>) {
        for creates in self.creates.values_mut() {
            creates.retain(|_, revision| *revision > pods.revision);
        }
        // A delete is seen once the pod is gone or terminating (graceful deletion
        // leaves it in the cache, marked, until its agent removes it).
        for deletes in self.deletes.values_mut() {
            deletes.retain(|key| pods.get(key).is_some_and(|p| !p.metadata.is_deleting()));
        }
        self.creates
            .retain(|uid, c| !c.is_empty() && live_uids.contains(uid.as_str()));
        self.deletes
            .retain(|uid, d| !d.is_empty() && live_uids.contains(uid.as_str()));
    }

    pub fn created(&mut self, rs_uid: &str, pod_key: String, revision: i64) {
        self.creates
            .entry(rs_uid.to_string())
            .or_default()
            .insert(pod_key, revision);
    }

    pub fn deleted(&mut self, rs_uid: &str, pod_key: String) {
        self.deletes.entry(rs_uid.to_string()).or_default().insert(pod_key);
    }

    pub fn pending_creates(&self, rs_uid: &str) -> usize {
        self.creates.get(rs_uid).map_or(0, BTreeMap::len)
    }

    pub fn pending_deletes(&self, rs_uid: &str) -> BTreeSet<String> {
        self.deletes.get(rs_uid).cloned().unwrap_or_default()
    }
}

/// Runs the ReplicaSet controller until fenced.
pub async fn run(ctx: Context, resync: Duration) {
    ctx.caches.replica_sets.wait_synced().await;
    ctx.caches.pods.wait_synced().await;
    let triggers = vec![ctx.caches.replica_sets.subscribe(), ctx.caches.pods.subscribe()];
    let expectations = std::sync::Mutex::new(Expectations::default());
    drive("replicaset", triggers, resync, || pass(&ctx, &expectations)).await;
}

async fn pass(ctx: &Context, expectations: &std::sync::Mutex<Expectations>) -> Result<Requeue, KvError> {
    let now = SystemTime::now();
    let pods = ctx.caches.pods.snapshot();
    let replica_sets = ctx.caches.replica_sets.snapshot();
    // Only this controller's task uses the expectations; the lock is never held
    // across an await.
    let expect = || expectations.lock().expect("expectations lock");
    let recorder = ctx.recorder("replicaset-controller");
    let live: BTreeSet<&str> = replica_sets.iter().map(|rs| rs.metadata.uid()).collect();
    expect().observe(&pods, &live);
    let mut by_owner: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for pod in pods.iter() {
        if let Some(owner) = controller_of(&pod.metadata) {
            by_owner.entry(owner.uid.as_str()).or_default().push(pod);
        }
    }
    let mut syncs = Vec::new();
    for rs in replica_sets.iter() {
        let uid = rs.metadata.uid();
        let owned: Vec<&Pod> = by_owner
            .get(uid)
            .map(|pods| {
                pods.iter()
                    .copied()
                    .filter(|p| p.metadata.namespace() == rs.metadata.namespace() && is_controlled_by(&p.metadata, uid))
                    .collect()
            })
            .unwrap_or_default();
        syncs.push(sync(ctx, rs, owned, expectations, &recorder, now));
    }
    // Several sets at once, each its creates in slow-start batches: one set's
    // writes wait for their commits while another's are sent.
    let mut outcomes = futures::stream::iter(syncs).buffer_unordered(CONCURRENT_SYNCS);
    let (mut requeue, mut error) = (None, None);
    while let Some(outcome) = outcomes.next().await {
        match outcome {
            Ok(again) => requeue = sooner(requeue, again),
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(requeue),
    }
}

/// One ReplicaSet's pass: its creates or deletes, then its status. Returns when it
/// wants to be looked at again.
async fn sync(
    ctx: &Context,
    rs: &ReplicaSet,
    owned: Vec<&Pod>,
    expectations: &std::sync::Mutex<Expectations>,
    recorder: &Recorder,
    now: SystemTime,
) -> Result<Option<Duration>, KvError> {
    let expect = || expectations.lock().expect("expectations lock");
    let mut requeue = None;
    let uid = rs.metadata.uid();
    let (pending_creates, pending_deletes) = {
        let e = expect();
        (e.pending_creates(uid), e.pending_deletes(uid))
    };
    let plan = reconcile(rs, &owned, pending_creates, &pending_deletes, now);
    requeue = sooner(requeue, plan.requeue);
    if plan.create > 0 {
        tracing::info!(replicaset = %rs.key(), count = plan.create, "creating pods");
    }
    // A create admission refuses (a quota, Pod Security, a LimitRange) ends the
    // pass's creates; the set says so, as Kubernetes' ReplicaFailure condition.
    // The creates go in slow-start batches, as Kubernetes': 1, 2, 4, … at once,
    // a batch with a failure the last.
    let mut failure = None;
    let mut attempted = 0;
    let mut batch = 1;
    while attempted < plan.create && failure.is_none() {
        let size = batch.min(plan.create - attempted);
        attempted += size;
        batch *= 2;
        let pods: Vec<Pod> = (0..size).map(|_| new_pod(rs, &random_suffix(5))).collect();
        // The batch's pods ask admission the same questions: asked once for all.
        let shared = SharedReads::default();
        let creates = (pods.iter())
            .map(|pod| (ctx.admission).create_pod_sharing(&ctx.registry.kv, pod, ctx.fence(), Some(&shared)));
        let outcomes = futures::future::join_all(creates).await;
        let mut store_error = None;
        for (pod, outcome) in pods.iter().zip(outcomes) {
            match outcome {
                Ok(created) => {
                    let revision = created.metadata.resource_version().parse().unwrap_or(i64::MAX);
                    expect().created(uid, created.key(), revision);
                    recorder.emit(
                        reference(rs),
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", created.metadata.name()),
                    );
                }
                Err(Refusal::Forbidden(why)) => {
                    if failure.is_some() {
                        continue;
                    }
                    let message = format!("pods {:?} is forbidden: {why}", pod.metadata.name());
                    tracing::info!(replicaset = %rs.key(), %message, "a pod was refused");
                    recorder.emit(
                        reference(rs),
                        EventType::Warning,
                        FAILED_CREATE,
                        format!("Error creating: {message}"),
                    );
                    failure = Some(message);
                    requeue = sooner(requeue, Some(RETRY_REFUSED));
                }
                // A name collision (or a quota charged meanwhile): the next pass
                // creates it, with another suffix.
                Err(Refusal::Store(e)) => match benign(Err::<(), _>(e)) {
                    Ok(_) => requeue = sooner(requeue, Some(RETRY_SOON)),
                    Err(e) => {
                        store_error.get_or_insert(e);
                    }
                },
            }
        }
        // The pass ends on a store error once the creates that landed are expected.
        if let Some(e) = store_error {
            return Err(e);
        }
    }
    for pod in plan.delete {
        tracing::info!(pod = %pod.key(), phase = %pod.status.phase.as_deref().unwrap_or_default(), "deleting a pod of {}", rs.key());
        // Deleted (or already gone): either way the cache will drop it.
        // With the pod's grace, as Kubernetes' ReplicaSet controller deletes: it is
        // marked Terminating (no longer counted) and its agent stops it gracefully.
        let deleted = benign(
            delete_pod(
                &ctx.registry,
                pod.metadata.namespace(),
                pod.metadata.name(),
                None,
                ctx.fence(),
            )
            .await,
        )?;
        expect().deleted(uid, pod.key());
        if deleted.is_some() {
            recorder.emit(
                reference(rs),
                EventType::Normal,
                "SuccessfulDelete",
                format!("Deleted pod: {}", pod.metadata.name()),
            );
        }
    }
    let mut status = plan.status.unwrap_or_else(|| rs.status.clone());
    set_replica_failure(&mut status, failure.as_deref(), now);
    if status != rs.status {
        let mut rs = rs.clone();
        rs.status = status;
        if benign(ctx.registry.update(&rs, ctx.fence()).await)?.is_none() {
            requeue = sooner(requeue, Some(RETRY_SOON));
        }
    }
    Ok(requeue)
}

#[cfg(test)]
#[path = "replicaset_tests.rs"]
mod tests;
