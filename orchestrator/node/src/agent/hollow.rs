//! Hollow nodes (`berth agent --hollow N`), as Kubernetes' kubemark: N simulated
//! agents in one process that speak the real API and start nothing, to load the
//! control plane as N nodes would.
//!
//! ```text
//!  one task per node <prefix>-<i>; node i tries API server i mod n first:
//!    register: the node's Lease (node_lease.rs) ─► the Node (cluster.rs write_node)
//!    ├─ Lease renewed every duration/4; lost ─► register again
//!    ├─ its Node seen not Ready (one watch of every Node, node_ready.rs) while the
//!    │    Lease is held ─► its status written Ready again, as a kubelet's
//!    ├─ pods?fieldSelector=spec.nodeName=<node>: list, watch ─► HollowPods (counts)
//!    └─ each pod changed: bound, not Running+Ready ─► PUT status: Running, Ready,
//!         an IP of the node's fake range, containers running since first seen;
//!         made from the watched copy at its resourceVersion (409: GET, again)
//!       deletionTimestamp set ─► DELETE, grace 0, preconditions.uid (as the agent
//!         removes a pod whose containers stopped)
//! ```
//!
//! The fake pod addresses come from 100.64.0.0/10 (the shared address space, which
//! no cluster CIDR uses), split evenly by node index: node i owns the block
//! `i × block` where a block holds `--hollow-pods` addresses. Each node counts the pod
//! events its watch delivered and those of pods not bound to it (none, unless the
//! API server's field selector lets others through), exposed on `/metrics`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use berth_api::conditions::Condition;
use berth_api::kinds::node::NODE;
use berth_api::kinds::pod::{POD, is_sidecar};
use berth_api::meta::{MetaExt, Time};
use berth_api::objects::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, DaemonEndpoint,
    HostIP, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus, Pod, PodCondition, PodIP,
    PodSpec, PodStatus, Quantity,
};
use berth_api::quantity::{format_cpu_millis, format_memory_bytes};
use berth_api::time::from_system_time;
use berth_client::kv::{Event, KvError, Record};
use berth_client::reflector::Sink;
use berth_client::registry::decode;

use super::cluster::Cluster;
use super::node_lease::NodeLease;
use super::node_ready::NodeMarks;

/// Where the fake pod addresses come from: 100.64.0.0/10.
const POD_RANGE: (Ipv4Addr, u32) = (Ipv4Addr::new(100, 64, 0, 0), 10);
/// How long a node waits before trying a failed write again.
const RETRY: Duration = Duration::from_secs(1);

/// What the hollow nodes are: their names, what each offers, their heartbeat.
#[derive(Debug, Clone)]
pub struct HollowConfig {
    /// The nodes are `<prefix>-0` to `<prefix>-<count - 1>`.
    pub prefix: String,
    pub count: usize,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    /// The pods each node takes (its capacity's `pods`); also the size of its
    /// block of fake addresses.
    pub pods: u32,
    /// Labels of every node (`kubernetes.io/hostname` is each node's name).
    pub labels: BTreeMap<String, String>,
    /// The duration of each node's Lease (renewed every quarter of it).
    pub lease_ttl: Duration,
    /// The nodes' InternalIP.
    pub address: String,
    /// The port the Nodes name as their agent's (the hollow process's `/metrics`).
    pub port: u16,
}

impl HollowConfig {
    pub fn node_name(&self, index: usize) -> String {
        format!("{}-{index}", self.prefix)
    }

    /// The addresses each node's block holds: its pods and the block's first
    /// address (never given out), rounded up to a power of two.
    fn block(&self) -> u32 {
        (self.pods + 1).next_power_of_two()
    }

    /// Whether every node's block fits in the fake range; the error says what to change.
    pub fn check(&self) -> Result<(), String> {
        let room = 1u64 << (32 - POD_RANGE.1);
        let needed = u64::from(self.block()) * self.count as u64;
        if needed > room {
            return Err(format!(
                "{} hollow nodes of {} pods need {needed} pod addresses; the fake range 100.64.0.0/10 has {room}",
                self.count, self.pods
            ));
        }
        Ok(())
    }

    /// Pod address `slot` (from 0, below `pods`) of node `index`.
    pub fn pod_ip(&self, index: usize, slot: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(POD_RANGE.0) + index as u32 * self.block() + 1 + slot)
    }

    /// The slot `ip` holds in node `index`'s block, if it is one of its.
    fn slot_of(&self, index: usize, ip: &str) -> Option<u32> {
        let ip: Ipv4Addr = ip.parse().ok()?;
        let first = u32::from(self.pod_ip(index, 0));
        let offset = u32::from(ip).checked_sub(first)?;
        (offset < self.pods).then_some(offset)
    }
}

/// One node's bookkeeping, read by `/metrics` and the tests.
#[derive(Debug, Default)]
pub struct NodeCounters {
    /// Pods its list and watch delivered (each listed pod and each event).
    pub events: AtomicU64,
    /// Of those, pods bound to another node (or to none).
    pub foreign: AtomicU64,
    /// Pods bound to it now.
    pub pods: AtomicU64,
    /// Status writes that reported a pod Running.
    pub reported: AtomicU64,
    /// Pods it deleted after their deletion began.
    pub finished: AtomicU64,
    /// Whether its Node and Lease are written.
    pub registered: AtomicU64,
}

/// One series of `/metrics`: its name, type, help and counter.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&NodeCounters) -> &AtomicU64,
);

/// Every hollow node's counters, in node order.
#[derive(Debug)]
pub struct HollowStats {
    pub nodes: Vec<(String, NodeCounters)>,
}

impl HollowStats {
    pub fn new(config: &HollowConfig) -> Arc<HollowStats> {
        Arc::new(HollowStats {
            nodes: (0..config.count)
                .map(|i| (config.node_name(i), NodeCounters::default()))
                .collect(),
        })
    }

    /// The counters in Prometheus' text format, one series per node and counter.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let series: [Series; 6] = [
            (
                "berth_hollow_pod_events_total",
                "counter",
                "Pods the node's list and watch delivered.",
                |c| &c.events,
            ),
            (
                "berth_hollow_foreign_pod_events_total",
                "counter",
                "Pods the node's list and watch delivered that were not bound to it.",
                |c| &c.foreign,
            ),
            ("berth_hollow_pods", "gauge", "Pods bound to the node.", |c| &c.pods),
            (
                "berth_hollow_pods_reported_running_total",
                "counter",
                "Status writes that reported a pod Running and Ready.",
                |c| &c.reported,
            ),
            (
                "berth_hollow_pods_finished_total",
                "counter",
                "Pods deleted with grace 0 once their deletion began.",
                |c| &c.finished,
            ),
            (
                "berth_hollow_node_registered",
                "gauge",
                "1 once the node's Lease and Node are written.",
                |c| &c.registered,
            ),
        ];
        for (name, kind, help, counter) in series {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (node, counters) in &self.nodes {
                let value = counter(counters).load(Ordering::Relaxed);
                out.push_str(&format!("{name}{{node=\"{node}\"}} {value}\n"));
            }
        }
        out
    }
}

/// Runs every hollow node until the future is dropped, node i through
/// `clusters[i mod n]` (each in API mode: the store is never dialled; each may try
/// a different API server first).
pub async fn run(config: HollowConfig, clusters: Vec<Cluster>, stats: Arc<HollowStats>) {
    assert!(
        !clusters.is_empty() && clusters.iter().all(Cluster::is_api),
        "hollow nodes reach the cluster through the API servers"
    );
    let config = Arc::new(config);
    let mut tasks = tokio::task::JoinSet::new();
    // One watch of every Node for all of them (a kubelet watches its own).
    let marks = Arc::new(NodeMarks::new((0..config.count).map(|i| config.node_name(i))));
    tasks.spawn(clusters[0].clone().reflect(&NODE, None, marks.clone()));
    for index in 0..config.count {
        let node = HollowNode {
            index,
            name: config.node_name(index),
            config: config.clone(),
            // Connections of its own, as each kubelet keeps its own.
            cluster: clusters[index % clusters.len()].with_own_connections(),
            stats: stats.clone(),
            marks: marks.clone(),
        };
        tasks.spawn(node.run());
    }
    while tasks.join_next().await.is_some() {}
}

struct HollowNode {
    index: usize,
    name: String,
    config: Arc<HollowConfig>,
    cluster: Cluster,
    stats: Arc<HollowStats>,
    marks: Arc<NodeMarks>,
}

impl HollowNode {
    fn counters(&self) -> &NodeCounters {
        &self.stats.nodes[self.index].1
    }

    /// Registers, then keeps the Lease, the pods' watch and their statuses going.
    async fn run(self) {
        let pods = Arc::new(HollowPods::new(self.name.clone(), self.stats.clone(), self.index));
        let selector = format!("spec.nodeName={}", self.name);
        let watch = self.cluster.clone().reflect(&POD, Some(selector), pods.clone());
        let heartbeat = async {
            loop {
                let mut lease = self.register().await;
                let ready = self.marks.keep(self.index, || {
                    let (cluster, node) = (&self.cluster, node_object(&self.config, &self.name));
                    async move { cluster.write_node(&node).await }
                });
                tokio::select! {
                    () = lease.keep() => {}
                    () = ready => {}
                }
                self.counters().registered.store(0, Ordering::Relaxed);
                tracing::warn!(node = %self.name, "lost the node's Lease; registering again");
            }
        };
        tokio::join!(watch, heartbeat, self.settle(&pods));
    }

    /// The node's Lease, then its Node; tried until both are written.
    async fn register(&self) -> NodeLease {
        let api = self.cluster.api_source().expect("hollow nodes use the API").clone();
        loop {
            let attempt = async {
                let lease = NodeLease::ensure(api.clone(), &self.name, self.config.lease_ttl).await?;
                self.cluster.write_node(&node_object(&self.config, &self.name)).await?;
                Ok::<_, KvError>(lease)
            };
            match attempt.await {
                Ok(lease) => {
                    self.counters().registered.store(1, Ordering::Relaxed);
                    return lease;
                }
                Err(e) => {
                    tracing::warn!(node = %self.name, error = %e, "cannot register the hollow node yet; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    /// Reports each changed pod Running, or finishes it once its deletion began.
    async fn settle(&self, pods: &HollowPods) {
        let mut slots: BTreeMap<String, u32> = BTreeMap::new();
        loop {
            pods.wake.notified().await;
            let keys = std::mem::take(&mut *pods.dirty.lock().expect("hollow pods lock"));
            let mut failed = Vec::new();
            for key in keys {
                let bound = pods.bound.lock().expect("hollow pods lock").get(&key).cloned();
                let Some(bound) = bound else {
                    slots.remove(&key);
                    continue;
                };
                let done = if bound.deleting {
                    self.finish(&bound).await
                } else if !bound.settled {
                    let slot = self.slot(&mut slots, &key, &bound);
                    let seen = pods.unsettled.lock().expect("hollow pods lock").remove(&key);
                    self.report(&bound, slot, seen).await
                } else {
                    true
                };
                if !done {
                    failed.push(key);
                }
            }
            if !failed.is_empty() {
                pods.dirty.lock().expect("hollow pods lock").extend(failed);
                tokio::time::sleep(RETRY).await;
                pods.wake.notify_one();
            }
        }
    }

    /// The pod's address slot: the one its stored address holds, else the lowest free.
    fn slot(&self, slots: &mut BTreeMap<String, u32>, key: &str, bound: &Bound) -> Option<u32> {
        if let Some(slot) = slots.get(key) {
            return Some(*slot);
        }
        let slot = match bound
            .pod_ip
            .as_deref()
            .and_then(|ip| self.config.slot_of(self.index, ip))
        {
            Some(slot) => slot,
            None => {
                let taken: BTreeSet<u32> = slots.values().copied().collect();
                (0..self.config.pods).find(|s| !taken.contains(s))?
            }
        };
        slots.insert(key.to_string(), slot);
        Some(slot)
    }

    /// Writes the pod's status as running here; false when it should be tried again.
    async fn report(&self, bound: &Bound, slot: Option<u32>, seen: Option<Pod>) -> bool {
        let pod_ip = slot.map(|slot| self.config.pod_ip(self.index, slot));
        let now = from_system_time(SystemTime::now());
        let result = self
            .cluster
            .modify_pod_status_from(seen, &bound.namespace, &bound.name, |stored| {
                if stored.metadata.uid() != bound.uid
                    || stored.spec.node_name.as_deref() != Some(self.name.as_str())
                    || stored.metadata.deletion_timestamp.is_some()
                {
                    return false;
                }
                let started = stored.status.start_time.clone().unwrap_or_else(|| now.clone());
                let ours = hollow_status(stored, &self.config.address, pod_ip, &started);
                let merged = super::pods::merge_status(&stored.status, &ours, &now);
                if merged == stored.status {
                    return false;
                }
                stored.status = merged;
                true
            })
            .await;
        match result {
            Ok(_) => {
                self.counters().reported.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(KvError::NotFound) => true,
            Err(e) => {
                tracing::debug!(node = %self.name, pod = %bound.name, error = %e, "cannot report the pod yet");
                false
            }
        }
    }

    /// Deletes a pod whose deletion began (nothing runs to stop); false when it
    /// should be tried again.
    async fn finish(&self, bound: &Bound) -> bool {
        match (self.cluster)
            .delete_pod(&bound.namespace, &bound.name, &bound.uid, None)
            .await
        {
            Ok(()) => {
                self.counters().finished.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(KvError::NotFound | KvError::Conflict { .. }) => true,
            Err(e) => {
                tracing::debug!(node = %self.name, pod = %bound.name, error = %e, "cannot finish the pod yet");
                false
            }
        }
    }
}

/// `/metrics`: every hollow node's counters, in Prometheus' text format.
pub async fn serve_metrics(listener: tokio::net::TcpListener, stats: Arc<HollowStats>) {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(
                |axum::extract::State(stats): axum::extract::State<Arc<HollowStats>>| async move {
                    ([("content-type", "text/plain; version=0.0.4")], stats.prometheus())
                },
            ),
        )
        .route("/healthz", get(|| async { "ok" }))
        .with_state(stats);
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "the hollow nodes' metrics server stopped");
    }
}

/// The Node of hollow node `name`: the config's capacity, Ready.
pub fn node_object(config: &HollowConfig, name: &str) -> Node {
    let mut labels = config.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), name.to_string());
    labels.insert("berth.io/hollow".into(), "true".into());
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(format_cpu_millis(config.cpu_millis))),
        ("memory".to_string(), Quantity(format_memory_bytes(config.memory_bytes))),
        ("pods".to_string(), Quantity(config.pods.to_string())),
    ]);
    let mut ready = NodeCondition::new(
        "Ready",
        "True",
        "KubeletReady",
        "berth hollow node is posting ready status",
    );
    ready.last_transition_time = Some(berth_api::time::now());
    let mut node = Node::new(
        berth_api::meta::ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        NodeSpec::default(),
    );
    node.status = NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(vec![ready]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: config.address.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: name.to_string(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(config.port),
            }),
        }),
        ..Default::default()
    };
    node
}

/// The status a hollow node reports for `pod`: Running and Ready, at `pod_ip`, every
/// container running since `started` (init containers completed, sidecars running).
pub(crate) fn hollow_status(pod: &Pod, host_ip: &str, pod_ip: Option<Ipv4Addr>, started: &Time) -> PodStatus {
    let uid = pod.metadata.uid();
    let running = |c: &Container| ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: c.image.clone().unwrap_or_default(),
        container_id: Some(container_id(uid, &c.name)),
        ready: true,
        started: Some(true),
        state: Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started.clone()),
            }),
            ..Default::default()
        }),
        last_state: Some(ContainerState::default()),
        ..Default::default()
    };
    let init_statuses: Vec<ContainerStatus> = (pod.spec.init_containers.iter().flatten())
        .map(|c| {
            if is_sidecar(c) {
                return running(c);
            }
            let mut status = running(c);
            status.started = Some(false);
            status.state = Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 0,
                    reason: Some("Completed".into()),
                    started_at: Some(started.clone()),
                    finished_at: Some(started.clone()),
                    container_id: status.container_id.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            });
            status
        })
        .collect();
    let statuses: Vec<ContainerStatus> = pod.spec.containers.iter().map(running).collect();
    let conditions = ["Initialized", "Ready", "ContainersReady"]
        .into_iter()
        .map(|type_| PodCondition::new(type_, "True", "", ""))
        .collect();
    let host: Option<std::net::IpAddr> = host_ip.parse().ok();
    PodStatus {
        phase: Some("Running".into()),
        conditions: Some(conditions),
        host_ip: (!host_ip.is_empty()).then(|| host_ip.to_string()),
        host_ips: host.map(|ip| vec![HostIP { ip: ip.to_string() }]),
        pod_ip: pod_ip.map(|ip| ip.to_string()),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip: ip.to_string() }]),
        qos_class: Some(berth_api::qos::qos_class(&pod.spec).to_string()),
        start_time: Some(started.clone()),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: (!statuses.is_empty()).then_some(statuses),
        ..Default::default()
    }
}

/// A fake container's id: `hollow://` and 64 hex digits of its pod and name.
fn container_id(pod_uid: &str, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{pod_uid}/{name}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("hollow://{hex}")
}

/// What a hollow node keeps of a pod bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bound {
    namespace: String,
    name: String,
    uid: String,
    /// Its deletion began.
    deleting: bool,
    /// Its stored status already says Running and Ready.
    settled: bool,
    /// Its stored address.
    pod_ip: Option<String>,
}

impl Bound {
    fn of(pod: &Pod) -> Bound {
        let condition =
            |type_: &str| (pod.status.conditions.iter().flatten()).any(|c| c.type_ == type_ && c.status == "True");
        Bound {
            namespace: pod.metadata.namespace().to_string(),
            name: pod.metadata.name().to_string(),
            uid: pod.metadata.uid().to_string(),
            deleting: pod.metadata.deletion_timestamp.is_some(),
            settled: pod.status.phase.as_deref() == Some("Running") && condition("Ready"),
            pod_ip: pod.status.pod_ip.clone(),
        }
    }
}

/// One hollow node's pods, fed by its list-then-watch loop: what changed is marked
/// for [`HollowNode::settle`], and every pod delivered is counted.
pub(crate) struct HollowPods {
    node: String,
    stats: Arc<HollowStats>,
    index: usize,
    bound: Mutex<BTreeMap<String, Bound>>,
    /// The latest copy of each pod bound here and not yet reported Running, which
    /// the report starts from rather than reading the pod again.
    unsettled: Mutex<BTreeMap<String, Pod>>,
    dirty: Mutex<BTreeSet<String>>,
    wake: tokio::sync::Notify,
}

impl HollowPods {
    pub(crate) fn new(node: String, stats: Arc<HollowStats>, index: usize) -> HollowPods {
        HollowPods {
            node,
            stats,
            index,
            bound: Mutex::default(),
            unsettled: Mutex::default(),
            dirty: Mutex::default(),
            wake: tokio::sync::Notify::new(),
        }
    }

    fn counters(&self) -> &NodeCounters {
        &self.stats.nodes[self.index].1
    }

    /// Counts `record`'s pod and keeps it if it is bound here; the key if it changed.
    fn put(&self, bound: &mut BTreeMap<String, Bound>, record: &Record) -> Option<String> {
        self.counters().events.fetch_add(1, Ordering::Relaxed);
        let pod = decode::<PodSpec>(record)
            .map_err(|e| tracing::warn!(node = %self.node, error = %e, "skipping a pod that does not decode"))
            .ok();
        match pod {
            Some(pod) if pod.spec.node_name.as_deref() == Some(self.node.as_str()) => {
                let new = Bound::of(&pod);
                let changed = bound.get(&record.key) != Some(&new);
                let mut unsettled = self.unsettled.lock().expect("hollow pods lock");
                if new.settled || new.deleting {
                    unsettled.remove(&record.key);
                } else {
                    unsettled.insert(record.key.clone(), pod);
                }
                bound.insert(record.key.clone(), new);
                changed.then(|| record.key.clone())
            }
            _ => {
                self.counters().foreign.fetch_add(1, Ordering::Relaxed);
                self.forget(&record.key);
                bound.remove(&record.key).map(|_| record.key.clone())
            }
        }
    }

    fn forget(&self, key: &str) {
        self.unsettled.lock().expect("hollow pods lock").remove(key);
    }

    fn publish(&self, bound: &BTreeMap<String, Bound>, changed: Vec<String>) {
        self.counters().pods.store(bound.len() as u64, Ordering::Relaxed);
        if !changed.is_empty() {
            self.dirty.lock().expect("hollow pods lock").extend(changed);
            self.wake.notify_one();
        }
    }
}

impl Sink for HollowPods {
    fn replace(&self, records: Vec<Record>, _revision: i64) {
        let mut bound = self.bound.lock().expect("hollow pods lock");
        let before: BTreeSet<String> = bound.keys().cloned().collect();
        let mut fresh = BTreeMap::new();
        let mut changed: Vec<String> = records.iter().filter_map(|r| self.put(&mut fresh, r)).collect();
        // Gone while the watch was down: forgotten (their slots freed).
        for gone in before.into_iter().filter(|key| !fresh.contains_key(key)) {
            self.forget(&gone);
            changed.push(gone);
        }
        // Listed again unchanged: nothing to do for them.
        changed.retain(|key| fresh.get(key) != bound.get(key) || !fresh.contains_key(key));
        *bound = fresh;
        self.publish(&bound, changed);
    }

    fn apply(&self, events: Vec<Event>, _revision: i64) {
        let mut bound = self.bound.lock().expect("hollow pods lock");
        let mut changed = Vec::new();
        for event in &events {
            match event {
                Event::Put(record) => changed.extend(self.put(&mut bound, record)),
                Event::Delete { prev, .. } => {
                    self.counters().events.fetch_add(1, Ordering::Relaxed);
                    let own = decode::<PodSpec>(prev)
                        .is_ok_and(|pod| pod.spec.node_name.as_deref() == Some(self.node.as_str()));
                    if !own {
                        self.counters().foreign.fetch_add(1, Ordering::Relaxed);
                    }
                    self.forget(&prev.key);
                    if bound.remove(&prev.key).is_some() {
                        changed.push(prev.key.clone());
                    }
                }
            }
        }
        self.publish(&bound, changed);
    }
}

#[cfg(test)]
#[path = "hollow_tests.rs"]
mod tests;
