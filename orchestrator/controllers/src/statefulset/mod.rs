//! StatefulSet → Pods and claims: keeps `spec.replicas` pods named `<set>-<ordinal>`
//! with stable hostnames and claims, created and deleted in order (OrderedReady) or
//! all at once (Parallel), rolled to a new template from the highest ordinal down to
//! the partition (RollingUpdate) or only as pods are deleted (OnDelete); writes the
//! set's status (what `kubectl rollout status sts` reads).
//!
//! The pure pass is [`plan::reconcile`]; names, labels and claims are in
//! [`identity`]; the claims' writes in [`claims`]; the set's ControllerRevisions in
//! [`revisions`] (synced whenever the template changes, read for the current revision's
//! template during a partitioned update; templates never change, so they are kept
//! in memory once read).
//!
//! Expectations: the pod cache lags the controller's own writes, and an ordered pass
//! that does not see the pod it just created would create it again (refused, the name
//! is taken) or, worse, not see a deletion and delete the next pod. A set with a write
//! the cache does not show yet waits for it (or for [`EXPECTATION_TIMEOUT`]).

pub mod claims;
pub mod identity;
pub mod plan;
pub mod revisions;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use berth_api::kinds::Object;
use berth_api::kinds::stateful_set::DELETE;
use berth_api::meta::MetaExt;
use berth_api::objects::{Pod, PodSpec, PodTemplateSpec, StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy};
use berth_api::owners::{controller_of, is_controlled_by};
use berth_client::admission::Refusal;
use berth_client::events::{EventType, reference};
use berth_client::graceful::delete_pod;
use berth_client::kv::KvError;
use berth_controller_runtime::informer::Snapshot;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive, sooner};

use plan::Why;

/// How long a write the pod cache does not show holds its set back at most.
pub const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(10);

/// What the cache should come to show of a pod the controller wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Present,
    /// Terminating or gone.
    Leaving,
}

/// The controller's pod writes the cache does not show yet, per set uid.
#[derive(Debug, Default)]
pub struct Expectations {
    pending: BTreeMap<String, BTreeMap<String, (Expect, Instant)>>,
}

impl Expectations {
    fn observe(&mut self, pods: &Snapshot<PodSpec>, live_uids: &BTreeSet<&str>, now: Instant) {
        for writes in self.pending.values_mut() {
            writes.retain(|key, (expect, at)| {
                let seen = match expect {
                    Expect::Present => pods.contains(key),
                    Expect::Leaving => pods.get(key).is_none_or(|p| p.metadata.is_deleting()),
                };
                !seen && now.duration_since(*at) < EXPECTATION_TIMEOUT
            });
        }
        self.pending
            .retain(|uid, writes| !writes.is_empty() && live_uids.contains(uid.as_str()));
    }

    fn expect(&mut self, set_uid: &str, pod_key: String, expect: Expect) {
        self.pending
            .entry(set_uid.to_string())
            .or_default()
            .insert(pod_key, (expect, Instant::now()));
    }

    fn is_waiting(&self, set_uid: &str) -> bool {
        self.pending.contains_key(set_uid)
    }
}

/// What the controller remembers between passes.
#[derive(Debug, Default)]
pub struct Memory {
    expectations: Expectations,
    /// Set uid → the revision last synced (a template that comes back is synced
    /// again: it becomes the newest revision).
    synced: BTreeMap<String, String>,
    /// The templates of revisions read, by revision key.
    templates: BTreeMap<String, PodTemplateSpec>,
    /// Set uid → the retention policy its claims' owners were last synced to.
    policies: BTreeMap<String, Option<StatefulSetPersistentVolumeClaimRetentionPolicy>>,
}

/// Runs the StatefulSet controller until fenced.
pub async fn run(ctx: Context, resync: Duration) {
    ctx.caches.stateful_sets.wait_synced().await;
    ctx.caches.pods.wait_synced().await;
    let triggers = vec![ctx.caches.stateful_sets.subscribe(), ctx.caches.pods.subscribe()];
    let memory = std::sync::Mutex::new(Memory::default());
    drive("statefulset", triggers, resync, || pass(&ctx, &memory)).await;
}

/// Syncs the set's revisions once per template, and reads the template of its
/// current revision when that is not the set's own.
async fn revisions_of(
    ctx: &Context,
    set: &StatefulSet,
    owned: &[&Pod],
    memory: &std::sync::Mutex<Memory>,
) -> Result<Option<PodTemplateSpec>, KvError> {
    let remember = || memory.lock().expect("memory lock");
    let uid = set.metadata.uid().to_string();
    let update_revision = identity::revision_of(set);
    let current_revision = set.status.current_revision.clone().unwrap_or_default();
    if !set.metadata.is_deleting() && remember().synced.get(&uid) != Some(&update_revision) {
        let mut in_use: BTreeSet<String> = owned.iter().map(|p| identity::pod_revision(p).to_string()).collect();
        in_use.insert(current_revision.clone());
        revisions::sync(&ctx.registry, set, &in_use, ctx.fence()).await?;
        remember().synced.insert(uid, update_revision.clone());
    }
    if current_revision.is_empty() || current_revision == update_revision {
        return Ok(None);
    }
    let key = revisions::revision_key(set.metadata.namespace(), &current_revision);
    if let Some(template) = remember().templates.get(&key) {
        return Ok(Some(template.clone()));
    }
    let template = revisions::read_template(&ctx.registry, set.metadata.namespace(), &current_revision).await?;
    if let Some(template) = &template {
        remember().templates.insert(key, template.clone());
    }
    Ok(template)
}

async fn pass(ctx: &Context, memory: &std::sync::Mutex<Memory>) -> Result<Requeue, KvError> {
    let now = SystemTime::now();
    let pods = ctx.caches.pods.snapshot();
    let sets = ctx.caches.stateful_sets.snapshot();
    // Only this controller's task uses the expectations; the lock is never held
    // across an await.
    let remember = || memory.lock().expect("memory lock");
    let live: BTreeSet<&str> = sets.iter().map(|s| s.metadata.uid()).collect();
    remember().expectations.observe(&pods, &live, Instant::now());
    remember().synced.retain(|uid, _| live.contains(uid.as_str()));
    remember().policies.retain(|uid, _| live.contains(uid.as_str()));
    // Without a set there is nothing to plan, and a pod's change costs no walk of
    // every pod.
    if live.is_empty() {
        return Ok(None);
    }
    let mut by_owner: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    for pod in pods.iter() {
        if let Some(owner) = controller_of(&pod.metadata) {
            by_owner.entry(owner.uid.as_str()).or_default().push(pod);
        }
    }
    let mut requeue = None;
    for set in sets.iter() {
        let uid = set.metadata.uid();
        if remember().expectations.is_waiting(uid) {
            requeue = sooner(requeue, Some(RETRY_SOON));
            continue;
        }
        let owned: Vec<&Pod> = by_owner
            .get(uid)
            .map(|pods| {
                pods.iter()
                    .copied()
                    .filter(|p| {
                        p.metadata.namespace() == set.metadata.namespace() && is_controlled_by(&p.metadata, uid)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let current_template = revisions_of(ctx, set, &owned, memory).await?;
        let policy = set.spec.persistent_volume_claim_retention_policy.clone();
        if !set.metadata.is_deleting() && remember().policies.get(uid) != Some(&policy) {
            claims::sync_owners(&ctx.registry, set, ctx.fence()).await?;
            remember().policies.insert(uid.to_string(), policy);
        }
        let plan = plan::reconcile(set, &owned, current_template.as_ref(), now);
        requeue = sooner(requeue, plan.requeue);
        if !act(ctx, set, plan.create, plan.delete, memory).await? {
            requeue = sooner(requeue, Some(RETRY_SOON));
        }
        if let Some(status) = plan.status {
            let mut set = set.clone();
            set.status = status;
            if benign(ctx.registry.update(&set, ctx.fence()).await)?.is_none() {
                requeue = sooner(requeue, Some(RETRY_SOON));
            }
        }
    }
    Ok(requeue)
}

/// Makes a plan's writes: each new pod after its claims, then the deletions (a pod
/// scaled away under `whenScaled: Delete` first hands its claims to itself). Returns
/// false when a write met a race and the set should be looked at again soon.
async fn act(
    ctx: &Context,
    set: &StatefulSet,
    create: Vec<Pod>,
    delete: Vec<(&Pod, Why)>,
    memory: &std::sync::Mutex<Memory>,
) -> Result<bool, KvError> {
    let expect = || memory.lock().expect("memory lock");
    let recorder = ctx.recorder("statefulset-controller");
    let (uid, set_name) = (set.metadata.uid(), set.metadata.name());
    let mut is_done = true;
    'pods: for pod in create {
        let ordinal = identity::ordinal_of(set_name, pod.metadata.name()).unwrap_or_default();
        for claim in identity::claims_for(set, ordinal) {
            // Claims are admitted as the API server admits them (LimitRanges, quotas).
            let claim_name = claim.metadata.name().to_string();
            match ctx
                .admission
                .create(&ctx.registry.kv, Object::new(claim), ctx.fence())
                .await
            {
                Ok(_) => recorder.emit(
                    reference(set),
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!(
                        "create Claim {claim_name} Pod {} in StatefulSet {set_name} success",
                        pod.metadata.name()
                    ),
                ),
                Err(Refusal::Store(KvError::AlreadyExists)) => {}
                Err(Refusal::Store(e)) => return Err(e),
                Err(Refusal::Forbidden(why)) => {
                    recorder.emit(
                        reference(set),
                        EventType::Warning,
                        "FailedCreate",
                        format!(
                            "create Claim {claim_name} for Pod {} in StatefulSet {set_name} failed error: \
                             persistentvolumeclaims {claim_name:?} is forbidden: {why}",
                            pod.metadata.name()
                        ),
                    );
                    break 'pods;
                }
            }
        }
        tracing::info!(statefulset = %set.key(), pod = %pod.metadata.name(), "creating a pod");
        match ctx.admission.create_pod(&ctx.registry.kv, &pod, ctx.fence()).await {
            Ok(created) => {
                expect().expectations.expect(uid, created.key(), Expect::Present);
                recorder.emit(
                    reference(set),
                    EventType::Normal,
                    "SuccessfulCreate",
                    format!(
                        "create Pod {} in StatefulSet {set_name} successful",
                        created.metadata.name()
                    ),
                );
            }
            // The name is still taken (the old pod has not gone yet).
            Err(Refusal::Store(KvError::AlreadyExists | KvError::Conflict { .. } | KvError::NotFound)) => {
                is_done = false
            }
            Err(Refusal::Store(e)) => return Err(e),
            // Refused (a quota, Pod Security): said so; the next resync tries again.
            Err(Refusal::Forbidden(why)) => {
                let name = pod.metadata.name();
                recorder.emit(
                    reference(set),
                    EventType::Warning,
                    "FailedCreate",
                    format!(
                        "create Pod {name} in StatefulSet {set_name} failed error: pods {name:?} is forbidden: {why}"
                    ),
                );
                break;
            }
        }
    }
    let when_scaled = set
        .spec
        .persistent_volume_claim_retention_policy
        .as_ref()
        .and_then(|p| p.when_scaled.as_deref());
    for (pod, why) in delete {
        if why == Why::ScaledDown && when_scaled == Some(DELETE) {
            claims::give_to_pod(&ctx.registry, set, pod, ctx.fence()).await?;
        }
        tracing::info!(statefulset = %set.key(), pod = %pod.metadata.name(), reason = ?why, "deleting a pod");
        let (namespace, name) = (pod.metadata.namespace(), pod.metadata.name());
        let deleted = benign(delete_pod(&ctx.registry, namespace, name, None, ctx.fence()).await)?;
        expect().expectations.expect(uid, pod.key(), Expect::Leaving);
        match deleted {
            Some(_) => recorder.emit(
                reference(set),
                EventType::Normal,
                "SuccessfulDelete",
                format!("delete Pod {name} in StatefulSet {set_name} successful"),
            ),
            None => is_done = false,
        }
    }
    Ok(is_done)
}
