//! The scheduling loop on the leader: places the pods that have no node, the highest
//! priority first and then in creation order (preempting pods of lower priority for
//! one that fits nowhere, run/preempt.rs), with the pure
//! [`schedule`](super::schedule), all from one snapshot, each placement charged to its
//! node as it is made; binds each in a transaction that compares the pod and the node
//! as they were read (and the leadership fence), so a placement made from a stale view
//! fails instead of over-committing a node. The binds and the explanations of a pass
//! go through the group commit (run/binds.rs): many to a transaction, each with its
//! own outcome.
//!
//! ```text
//!  caches (nodes, pods, heartbeats) + assumed binds ──► NodeInfos (what is left)
//!                                                          │
//!  unbound pods, by priority ──► their claims (volumes.rs) ──► schedule ──► charge the node,
//!                                    │           queue the bind: txn(pod rv, node rv, fence);
//!                                    │           with claims waiting for it, alone: their rv,
//!                                    │           and their selected-node annotation in the txn
//!                                    └─► no fit: preempt (run/preempt.rs), or queue
//!                                        PodScheduled=False "0/N nodes …"
//!  end of the pass: every queued write settled (run/binds.rs): bound ─► assume the pod;
//!                   lost a race ─► the pod is looked at again next pass
//! ```
//!
//! Assumed pods: a pod this loop bound stays charged to its node until the pod cache
//! reaches the bind's revision (from then on the cache shows it bound, or gone), so
//! the next pass, which may run before the cache catches up, does not see the room
//! it took as free.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::snapshot::{Labels, has_pod_terms};
use super::{NodeInfo, PodRequest, Strategy, schedule_from};

/// How soon a pass runs again while a pod waits for its claims (missing, or not
/// yet bound under Immediate binding), which this loop reads but does not watch.
const CLAIMS_RECHECK: Duration = Duration::from_secs(1);

/// How many pods a pass places between two yields to the runtime.
const YIELD_EVERY: usize = 32;

/// The scheduler's name, as pods' `schedulerName` and its events' source say.
const SCHEDULER_NAME: &str = "default-scheduler";
use berth_api::conditions::{Condition, is_terminal, set_condition};
use berth_api::kinds::service::ServiceSpec;
use berth_api::meta::{LabelSelector, MetaExt, Time, selector_is_empty};
use berth_api::objects::{NamespaceSpec, NodeSpec, Pod, PodCondition, PodSpec, ReplicaSetSpec, Resource, key};
use berth_api::owners::controller_of;
use berth_api::time::now;
use berth_client::events::Recorder;
use berth_client::kv::KvError;
use berth_client::registry::encode;
use berth_controller_runtime::informer::Snapshot;
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive, sooner};

/// A pod this loop bound, until the pod cache shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Assumed {
    pub node: String,
    pub request: PodRequest,
    /// The revision of the bind.
    pub revision: i64,
}

/// What each node has left: its offer (see [`NodeInfo::from_node`]; readiness needs
/// `has_heartbeat`) minus the requests of the pods bound to it that have not ended,
/// and of the assumed pods the cache still shows unbound. Pure.
pub fn node_infos(
    nodes: &Snapshot<NodeSpec>,
    pods: &Snapshot<PodSpec>,
    assumed: &BTreeMap<String, Assumed>,
    has_heartbeat: impl Fn(&str) -> bool,
) -> Vec<NodeInfo> {
    node_infos_with(nodes, pods, assumed, has_heartbeat, &mut Requests::default())
}

/// [`node_infos`], with the bound pods' requests taken from `requests` where the
/// pod has not changed since they were made (and kept there for the next pass).
pub fn node_infos_with(
    nodes: &Snapshot<NodeSpec>,
    pods: &Snapshot<PodSpec>,
    assumed: &BTreeMap<String, Assumed>,
    has_heartbeat: impl Fn(&str) -> bool,
    requests: &mut Requests,
) -> Vec<NodeInfo> {
    let mut infos: BTreeMap<&str, NodeInfo> = nodes
        .iter()
        .map(|node| {
            let name = node.metadata.name();
            (name, NodeInfo::from_node(node, has_heartbeat(name)))
        })
        .collect();
    for entry in pods.entries() {
        let pod = &entry.object;
        if node_name(pod).is_empty() || is_terminal(pod) {
            continue;
        }
        let Some(info) = infos.get_mut(node_name(pod)) else {
            continue;
        };
        match requests.of(pod) {
            Ok(request) => info.charge(&request),
            Err(e) => tracing::warn!(pod = %pod.key(), error = %e.0, "a bound pod's requests do not parse"),
        }
    }
    requests.keep_only(pods);
    for (pod_key, assumed) in assumed {
        let cached_unbound = pods.get(pod_key).is_some_and(|p| node_name(p).is_empty());
        if let (true, Some(info)) = (cached_unbound, infos.get_mut(assumed.node.as_str())) {
            info.charge(&assumed.request);
        }
    }
    infos.into_values().collect()
}

/// Gives the placed pods their namespaces' labels, which `namespaceSelector`s in
/// pod affinity terms read (the loop gives each pod to place its own). Pure.
pub fn with_namespace_labels(infos: &mut [NodeInfo], namespace_labels: &BTreeMap<String, BTreeMap<String, String>>) {
    let shared: BTreeMap<&String, Labels> = (namespace_labels.iter())
        .map(|(name, labels)| (name, Arc::new(labels.clone())))
        .collect();
    for placed in infos.iter_mut().flat_map(|i| i.pods.iter_mut()) {
        placed.namespace_labels = shared.get(&placed.namespace).cloned().unwrap_or_default();
    }
}

/// Whether any pod, pending or placed, has pod affinity terms (which may select
/// namespaces by their labels).
fn has_pod_affinity(pending: &[&Pod], infos: &[NodeInfo]) -> bool {
    pending.iter().any(|p| has_pod_terms(p.spec.affinity.as_ref())) || infos.iter().any(|i| i.pods_with_affinity > 0)
}

/// Every namespace's labels.
async fn namespace_labels(ctx: &Context) -> Result<BTreeMap<String, BTreeMap<String, String>>, KvError> {
    let (namespaces, _) = ctx.registry.list::<NamespaceSpec>(None).await?;
    Ok(namespaces
        .into_iter()
        .map(|n| (n.metadata.name().to_string(), n.metadata.labels().clone()))
        .collect())
}

/// The pods waiting for a node, the highest priority first, then the oldest
/// (creationTimestamp, then the store's create revision), as kube-scheduler's queue
/// orders them, without those this loop already bound and those a scheduling gate
/// holds. Pure.
pub fn pending_pods<'a>(pods: &'a Snapshot<PodSpec>, assumed: &BTreeMap<String, Assumed>) -> Vec<&'a Pod> {
    let mut pending: Vec<(std::cmp::Reverse<i32>, Option<&Time>, i64, &Pod)> = pods
        .entries()
        .map(|e| &*e.object)
        .filter(|p| node_name(p).is_empty() && !p.metadata.is_deleting() && !is_terminal(p))
        .filter(|p| !assumed.contains_key(&p.key()) && !is_gated(p))
        .map(|p| {
            let created = pods.create_revision(&p.key()).unwrap_or(i64::MAX);
            let priority = std::cmp::Reverse(preempt::priority(p));
            (priority, p.metadata.creation_timestamp.as_ref(), created, p)
        })
        .collect();
    pending.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    pending.into_iter().map(|(_, _, _, p)| p).collect()
}

/// The request with its RuntimeClass's handler in place of the class's name, read
/// from the store once a pass for each class named (`handlers`; admission checked
/// the class exists; a class deleted since is taken as naming its handler).
async fn with_class_handler(
    ctx: &Context,
    handlers: &mut BTreeMap<String, Option<String>>,
    mut request: PodRequest,
) -> Result<PodRequest, KvError> {
    use berth_api::kinds::runtime_class::{RUNTIME_CLASS, handler_of_stored};
    let Some(class) = request.runtime_handler.take() else {
        return Ok(request);
    };
    if !handlers.contains_key(&class) {
        let record = ctx.registry.kv.get(&RUNTIME_CLASS.key("", &class)).await?;
        let handler = record.and_then(|r| handler_of_stored(&r.value));
        handlers.insert(class.clone(), handler);
    }
    request.runtime_handler = Some(handlers[&class].clone().unwrap_or(class));
    Ok(request)
}

/// The selector of the pod's siblings for Kubernetes' default topology spread
/// (`DefaultSelector`): the labels every Service of the pod's namespace that selects
/// it asks for, and the terms of its controlling ReplicaSet's selector, all of which
/// a sibling must match. A pod that neither selects is not spread. Kubernetes also
/// merges the selectors of ReplicationControllers and StatefulSets, kinds berth
/// does not serve; it takes every ReplicaSet whose selector matches the pod, where
/// this takes the one that controls it (the others would be overlapping
/// ReplicaSets, which Kubernetes warns against). Pure.
pub fn spread_selector(
    pod: &Pod,
    replica_sets: &Snapshot<ReplicaSetSpec>,
    services: &Snapshot<ServiceSpec>,
) -> Option<LabelSelector> {
    let labels = pod.metadata.labels();
    let namespace = pod.metadata.namespace();
    let mut merged = LabelSelector::default();
    for service in services.iter().filter(|s| s.metadata.namespace() == namespace) {
        // A Service without a selector selects no pod (its endpoints are the user's).
        let Some(selector) = service.spec.selector.as_ref().filter(|s| !s.is_empty()) else {
            continue;
        };
        if selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            let match_labels = merged.match_labels.get_or_insert_default();
            match_labels.extend(selector.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    if let Some(rs) = controlling_replica_set(pod, replica_sets) {
        let match_labels = rs.spec.selector.match_labels.iter().flatten();
        merged
            .match_labels
            .get_or_insert_default()
            .extend(match_labels.map(|(k, v)| (k.clone(), v.clone())));
        if let Some(terms) = &rs.spec.selector.match_expressions {
            merged
                .match_expressions
                .get_or_insert_default()
                .extend(terms.iter().cloned());
        }
    }
    (!selector_is_empty(&merged)).then_some(merged)
}

/// The ReplicaSet that controls the pod, with a selector.
fn controlling_replica_set<'a>(
    pod: &Pod,
    replica_sets: &'a Snapshot<ReplicaSetSpec>,
) -> Option<&'a Resource<ReplicaSetSpec>> {
    let owner = controller_of(&pod.metadata).filter(|o| o.kind == "ReplicaSet")?;
    let rs = replica_sets.get(&key::<ReplicaSetSpec>(pod.metadata.namespace(), &owner.name))?;
    (rs.metadata.uid() == owner.uid && !selector_is_empty(&rs.spec.selector)).then_some(rs)
}

/// Whether scheduling gates hold the pod (`spec.schedulingGates` not empty).
fn is_gated(pod: &Pod) -> bool {
    pod.spec.scheduling_gates.as_ref().is_some_and(|g| !g.is_empty())
}

/// The unbound pods scheduling gates hold that do not yet say so. Pure.
pub fn gated_pods(pods: &Snapshot<PodSpec>) -> Vec<&Pod> {
    pods.iter()
        .filter(|p| node_name(p).is_empty() && !p.metadata.is_deleting() && !is_terminal(p) && is_gated(p))
        .filter(|p| marked_pending(p, GATED_REASON, GATED_MESSAGE).is_some())
        .collect()
}

/// Kubernetes' reason and message for a pod its scheduling gates hold.
const GATED_REASON: &str = "SchedulingGated";
const GATED_MESSAGE: &str = "Scheduling is blocked due to non-empty scheduling gates";

/// The node a pod is bound to; empty while it waits for one.
fn node_name(pod: &Pod) -> &str {
    pod.spec.node_name.as_deref().unwrap_or_default()
}

/// The pod bound to `node`: `spec.nodeName` and `PodScheduled=True` (and no
/// longer a nominated node).
pub fn bound(pod: &Pod, node: &str) -> Pod {
    let mut pod = pod.clone();
    pod.spec.node_name = Some(node.to_string());
    pod.status.nominated_node_name = None;
    set_condition(
        pod.status.conditions.get_or_insert_default(),
        PodCondition::new("PodScheduled", "True", "", ""),
        &now(),
    );
    pod
}

/// The pod marked unschedulable with `message`, or `None` when it already says so
/// (so an unchanged explanation is not rewritten on every pass).
pub fn marked_unschedulable(pod: &Pod, message: &str) -> Option<Pod> {
    marked_pending(pod, "Unschedulable", message)
}

/// The pod Pending with `PodScheduled=False` for `reason`, or `None` when it already
/// says so.
fn marked_pending(pod: &Pod, reason: &str, message: &str) -> Option<Pod> {
    let mut pod = pod.clone();
    let changed = set_condition(
        pod.status.conditions.get_or_insert_default(),
        PodCondition::new("PodScheduled", "False", reason, message),
        &now(),
    );
    let phase_changed = pod.status.phase.as_deref() != Some("Pending");
    pod.status.phase = Some("Pending".into());
    (changed || phase_changed).then_some(pod)
}

/// Runs the scheduling loop until fenced.
pub async fn run(ctx: Context, strategy: Strategy, resync: Duration) {
    ctx.caches.nodes.wait_synced().await;
    ctx.caches.pods.wait_synced().await;
    ctx.caches.heartbeats.wait_synced().await;
    ctx.caches.replica_sets.wait_synced().await;
    ctx.caches.services.wait_synced().await;
    let triggers = vec![
        ctx.caches.pods.subscribe(),
        ctx.caches.nodes.subscribe(),
        ctx.caches.heartbeats.subscribe(),
    ];
    let assumed = Mutex::new(BTreeMap::new());
    let requests = Mutex::new(Requests::default());
    let groups = binds::Groups::new(&ctx);
    drive("scheduler", triggers, resync, || {
        pass(&ctx, &groups, strategy, &assumed, &requests)
    })
    .await;
}

async fn pass(
    ctx: &Context,
    groups: &binds::Groups,
    strategy: Strategy,
    assumed: &Mutex<BTreeMap<String, Assumed>>,
    requests: &Mutex<Requests>,
) -> Result<Requeue, KvError> {
    let started = Instant::now();
    let pods = ctx.caches.pods.snapshot();
    let nodes = ctx.caches.nodes.snapshot();
    let heartbeats = ctx.caches.heartbeats.snapshot();
    // Only this loop's task uses `assumed`; the lock is never held across an await.
    let assume = || assumed.lock().expect("assumed pods lock");
    assume().retain(|_, a| a.revision > pods.revision);
    let (infos, pending) = {
        let assumed = assume();
        let mut requests = requests.lock().expect("requests lock");
        let live = |n: &str| heartbeats.is_live_at(n, tokio::time::Instant::now());
        let infos = node_infos_with(&nodes, &pods, &assumed, live, &mut requests);
        (infos, pending_pods(&pods, &assumed))
    };
    let mut requeue = None;
    for pod in gated_pods(&pods) {
        if !write_gated(ctx, pod).await? {
            requeue = Some(RETRY_SOON);
        }
    }
    let recorder = ctx.recorder(SCHEDULER_NAME);
    let pending_count = pending.len();
    let mut queued = Vec::new();
    // Every bind queued is settled, even when placing ends in an error: a pod
    // bound and not assumed would leave its node's room looking free.
    let placing = place(
        ctx,
        groups,
        strategy,
        &pods,
        &nodes,
        infos,
        pending,
        &mut queued,
        &recorder,
    )
    .await;
    let placed_in = started.elapsed();
    let (settled, bound) = binds::settle(queued, &recorder, assumed).await;
    if bound > 0 {
        tracing::info!(pending = pending_count, bound, placing = ?placed_in, total = ?started.elapsed(), "scheduling pass");
    }
    Ok(sooner(sooner(requeue, placing?), settled?))
}

/// Places every pending pod against `infos`, charging each placement as it is made
/// (so the pods after it see the room it takes; a bind that then fails leaves its
/// charge until the next pass, which only makes this pass's later placements more
/// careful), and queues its bind in `queued`; a pod with claims waiting for it is
/// bound here, alone. What the pass asks for: to run again soon when a write lost a
/// race or a pod waits for its claims.
#[allow(clippy::too_many_arguments)]
async fn place<'a>(
    ctx: &Context,
    groups: &binds::Groups,
    strategy: Strategy,
    pods: &'a Snapshot<PodSpec>,
    nodes: &Snapshot<NodeSpec>,
    mut infos: Vec<NodeInfo>,
    pending: Vec<&'a Pod>,
    queued: &mut Vec<binds::Queued<'a>>,
    recorder: &Recorder,
) -> Result<Requeue, KvError> {
    let replica_sets = ctx.caches.replica_sets.snapshot();
    let services = ctx.caches.services.snapshot();
    // Read only when a pod affinity term could select namespaces by their labels.
    let namespaces = if has_pod_affinity(&pending, &infos) {
        let labels = namespace_labels(ctx).await?;
        with_namespace_labels(&mut infos, &labels);
        labels
    } else {
        BTreeMap::new()
    };
    let mut requeue = None;
    // The pods on nodes as preemption weighs them, gathered once a pod fits nowhere.
    let mut on_nodes = None;
    let mut handlers = BTreeMap::new();
    let mut siblings = siblings::Siblings::default();
    let nominated = preempt::nominated_pods(&pending);
    // Where each node is in `infos`, and where the next pod's search starts.
    let names: Vec<String> = infos.iter().map(|i| i.name.clone()).collect();
    let by_name: BTreeMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
    let mut next_start = 0;
    // The nodes' zones, read from their labels once a pass rather than per pod.
    let zones = Arc::new(super::score::number_zones(&infos));
    for (n, pod) in pending.into_iter().enumerate() {
        // A pass over thousands of pods leaves the runtime's threads to the API
        // server's requests from time to time.
        if n % YIELD_EVERY == YIELD_EVERY - 1 {
            tokio::task::yield_now().await;
        }
        let request = match PodRequest::from_pod(pod) {
            Ok(mut request) => {
                request.spread_selector = spread_selector(pod, &replica_sets, &services);
                request.namespace_labels = Arc::new(namespaces.get(&request.namespace).cloned().unwrap_or_default());
                match super::volumes::read_claims(ctx, pod).await? {
                    Ok((bound_volumes, waiting_claims)) => {
                        request.bound_volumes = bound_volumes;
                        request.waiting_claims = waiting_claims;
                    }
                    Err(message) => {
                        // Claims are not watched here: look again soon, for the
                        // binder's write (a class, a bound volume) or a new claim.
                        requeue = sooner(requeue, Some(CLAIMS_RECHECK));
                        queued.extend(binds::queue_unschedulable(ctx, groups, pod, message));
                        continue;
                    }
                }
                with_class_handler(ctx, &mut handlers, request).await?
            }
            Err(e) => {
                queued.extend(binds::queue_unschedulable(ctx, groups, pod, e.0));
                continue;
            }
        };
        let seen = preempt::with_nominated(pod, &infos, &nominated);
        let mut request = request;
        // The nominated pods' view has the same nodes in the same places.
        request.zones = Some(zones.clone());
        // The counts leave out the pods nominated to nodes, which a view with them counts.
        if seen.is_none() {
            request.siblings = siblings.of(&request, &infos);
        }
        let placed = match schedule_from(&request, seen.as_deref().unwrap_or(&infos), strategy, next_start) {
            Ok(placement) => {
                next_start = (next_start + placement.examined) % infos.len().max(1);
                placement.node
            }
            Err(unschedulable) => {
                let seen = seen.as_deref().unwrap_or(&infos);
                let on_nodes = on_nodes.get_or_insert_with(|| preempt::placed_pods(pods));
                let message = &unschedulable.message;
                if preempt::preempt(ctx, pod, &request, seen, on_nodes, message, recorder).await? {
                    continue;
                }
                queued.extend(binds::queue_unschedulable(ctx, groups, pod, unschedulable.message));
                continue;
            }
        };
        let Some(node) = nodes.get(&key::<NodeSpec>("", &placed)) else {
            continue;
        };
        request.siblings = None;
        request.zones = None;
        if let Some(&i) = by_name.get(placed.as_str()) {
            infos[i].charge(&request);
            siblings.placed(&request, i);
        }
        if request.waiting_claims.is_empty() {
            queued.push(binds::queue_bind(ctx, groups, pod, node, request));
        } else {
            let bound_pod = bound(pod, node.metadata.name());
            let bound = super::volumes::bind_with_claims(ctx, pod, &bound_pod, node, &request.waiting_claims).await?;
            queued.push(binds::made(pod, node, request, bound));
        }
    }
    Ok(requeue)
}

/// Writes `PodScheduled=False` with `SchedulingGated` on a gated pod when it does
/// not say so yet (with no event, as kube-scheduler); false after a benign race.
async fn write_gated(ctx: &Context, pod: &Pod) -> Result<bool, KvError> {
    let Some(marked) = marked_pending(pod, GATED_REASON, GATED_MESSAGE) else {
        return Ok(true);
    };
    let Ok(version) = pod.metadata.resource_version().parse::<i64>() else {
        return Ok(true);
    };
    tracing::info!(pod = %pod.key(), reason = GATED_REASON, "not scheduled");
    let written = ctx
        .registry
        .kv
        .update(&pod.key(), encode(&marked), version, ctx.fence())
        .await;
    Ok(benign(written)?.is_some())
}

mod binds;
mod preempt;
mod requests;
mod siblings;

pub use requests::Requests;

#[cfg(test)]
mod tests;
