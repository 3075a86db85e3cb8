//! What the scheduler sees: nodes with what they can hold and what is already
//! bound to them, and a pod's needs, summed over its containers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use berth_api::kinds::pod::is_sidecar;
use berth_api::meta::{LabelSelector, MetaExt};
use berth_api::objects::{
    Affinity, Container, Node, PersistentVolume, PersistentVolumeClaim, Pod, PodSpec, Quantity, Taint, Toleration,
    TopologySpreadConstraint,
};
use berth_api::quantity::{parse_cpu_millis, parse_memory_bytes};

// Not `Eq`: Kubernetes' `Taint` is only `PartialEq`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeInfo {
    pub name: String,
    pub is_ready: bool,
    pub is_unschedulable: bool,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub allocatable_cpu_millis: u64,
    pub allocatable_memory_bytes: u64,
    /// Requests of the pods already bound to the node.
    pub used_cpu_millis: u64,
    pub used_memory_bytes: u64,
    pub used_host_ports: BTreeSet<i32>,
    /// The same requests with Kubernetes' non-zero defaults for containers that state
    /// none ([`DEFAULT_CPU_MILLIS`], [`DEFAULT_MEMORY_BYTES`]): what scoring reads, so
    /// that pods without requests still weigh on a node.
    pub nonzero_used_cpu_millis: u64,
    pub nonzero_used_memory_bytes: u64,
    /// The pods on the node that count for spreading and inter-pod affinity (not
    /// being deleted).
    pub pods: Vec<PlacedPod>,
    /// How many of `pods` have pod affinity or anti-affinity terms of their own (the
    /// only ones inter-pod affinity looks at for a pod without terms; kube-scheduler
    /// keeps such a list per node too). Kept by [`NodeInfo::place`].
    pub pods_with_affinity: usize,
    /// The RuntimeClass handlers its agent runs (`status.runtimeHandlers`).
    pub runtime_handlers: BTreeSet<String>,
}

impl NodeInfo {
    /// What a Node offers: its allocatable `cpu` and `memory` (its capacity when it
    /// states no allocatable; a quantity that does not parse counts as none), labels,
    /// taints and schedulability. It is ready only when its `Ready` condition is
    /// `True` and its agent's heartbeat is live (the condition alone lags a dead
    /// agent by the node monitor's grace period). Nothing is charged yet.
    pub fn from_node(node: &Node, has_heartbeat: bool) -> Self {
        let offered = match &node.status.allocatable {
            Some(allocatable) if !allocatable.is_empty() => Some(allocatable),
            _ => node.status.capacity.as_ref(),
        };
        let is_ready_condition = node
            .status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        NodeInfo {
            name: node.metadata.name().to_string(),
            is_ready: has_heartbeat && is_ready_condition,
            is_unschedulable: node.spec.unschedulable.unwrap_or(false),
            labels: node.metadata.labels().clone(),
            taints: node.spec.taints.clone().unwrap_or_default(),
            allocatable_cpu_millis: quantity(offered, "cpu")
                .and_then(|q| parse_cpu_millis(q).ok())
                .unwrap_or(0),
            allocatable_memory_bytes: quantity(offered, "memory")
                .and_then(|q| parse_memory_bytes(q).ok())
                .unwrap_or(0),
            runtime_handlers: node
                .status
                .runtime_handlers
                .iter()
                .flatten()
                .filter_map(|h| h.name.clone())
                .collect(),
            ..Default::default()
        }
    }

    /// Accounts for a pod placed on this node.
    pub fn charge(&mut self, pod: &PodRequest) {
        self.used_cpu_millis += pod.cpu_millis;
        self.used_memory_bytes += pod.memory_bytes;
        self.used_host_ports.extend(pod.host_ports.iter().copied());
        self.nonzero_used_cpu_millis += pod.nonzero_cpu_millis;
        self.nonzero_used_memory_bytes += pod.nonzero_memory_bytes;
        if !pod.is_deleting {
            self.place(PlacedPod {
                namespace: pod.namespace.clone(),
                labels: pod.labels.clone(),
                namespace_labels: pod.namespace_labels.clone(),
                affinity: pod.affinity.clone(),
            });
        }
    }

    /// Counts `placed` among the node's pods.
    pub fn place(&mut self, placed: PlacedPod) {
        if has_pod_terms(placed.affinity.as_deref()) {
            self.pods_with_affinity += 1;
        }
        self.pods.push(placed);
    }

    /// The pods inter-pod affinity looks at: all of them for a pod with terms of
    /// its own (`all`), else those with terms.
    pub fn pods_for_affinity(&self, all: bool) -> impl Iterator<Item = &PlacedPod> {
        // A node none of whose pods has terms has nothing to show a pod without any.
        let pods: &[PlacedPod] = if all || self.pods_with_affinity > 0 {
            &self.pods
        } else {
            &[]
        };
        pods.iter().filter(move |p| all || has_pod_terms(p.affinity.as_deref()))
    }
}

/// Whether an affinity has pod affinity or anti-affinity terms.
pub fn has_pod_terms(affinity: Option<&Affinity>) -> bool {
    affinity.is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
}

/// Labels shared between a pod's requests and the nodes' copies a pass makes of
/// it (a pass places every bound pod on its node again).
pub type Labels = Arc<BTreeMap<String, String>>;

/// A pod on a node, as spreading and inter-pod affinity see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlacedPod {
    pub namespace: String,
    pub labels: Labels,
    /// Its namespace's labels, which other pods' `namespaceSelector`s read.
    pub namespace_labels: Labels,
    /// Its own affinity: its required anti-affinity keeps other pods away (the
    /// symmetry kube-scheduler keeps), its terms weigh in others' scores.
    pub affinity: Option<Arc<Affinity>>,
}

/// What scoring counts for a container without a CPU request (Kubernetes'
/// `DefaultMilliCPURequest`).
pub const DEFAULT_CPU_MILLIS: u64 = 100;
/// What scoring counts for a container without a memory request (Kubernetes'
/// `DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_BYTES: u64 = 200 << 20;

// Not `Eq`: Kubernetes' `Toleration` is only `PartialEq`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodRequest {
    pub name: String,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub node_selector: BTreeMap<String, String>,
    /// `spec.affinity`: node affinity, pod affinity and anti-affinity.
    pub affinity: Option<Arc<Affinity>>,
    /// `spec.topologySpreadConstraints`; a pod with any does not get the default
    /// spread.
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    pub tolerations: Vec<Toleration>,
    pub host_ports: BTreeSet<i32>,
    /// The handler of the pod's RuntimeClass; None without one (the node's default
    /// runtime, which every node has). [`from_spec`](Self::from_spec) takes the
    /// class's name for it (the built-in classes are named after their handlers);
    /// the scheduling loop puts in the handler it reads from the class.
    pub runtime_handler: Option<String>,
    /// The requests with the non-zero defaults (see [`NodeInfo`]).
    pub nonzero_cpu_millis: u64,
    pub nonzero_memory_bytes: u64,
    pub namespace: String,
    pub labels: Labels,
    /// Its namespace's labels (for `namespaceSelector`s), filled in by the
    /// scheduling loop.
    pub namespace_labels: Labels,
    /// Being deleted: it holds its resources but no longer counts for spreading.
    pub is_deleting: bool,
    /// Which pods count as this pod's siblings for Kubernetes' default topology
    /// spread (the selectors of its Services and its ReplicaSet); `None`: the pod is not spread.
    pub spread_selector: Option<LabelSelector>,
    /// The pods `spread_selector` matches on each node, by the node's position in
    /// the nodes the pod is scheduled against (a position beyond the end has none),
    /// when the caller has counted them (the scheduling loop does, once a pass for
    /// each selector); `None`: scoring counts them over the nodes' pods.
    pub siblings: Option<Arc<Vec<u32>>>,
    /// Each node's zone (`topology.kubernetes.io/zone`) as a number, one per zone,
    /// by the node's position as `siblings` is, when the caller has read them (the
    /// scheduling loop does, once a pass); `None`: scoring reads the nodes' labels.
    pub zones: Option<Arc<Vec<Option<u32>>>>,
    /// The volumes its claims are bound to: the node must be in each one's node
    /// affinity.
    pub bound_volumes: Vec<PersistentVolume>,
    /// For each of its claims that waits for its first consumer, the nodes it can
    /// be bound on (see [`WaitingClaim`]).
    pub waiting_claims: Vec<WaitingClaim>,
}

/// A claim of a WaitForFirstConsumer class not bound yet: its volume will be one of
/// `candidates` (the Available volumes that match it) on the chosen node, or, when
/// `is_provisioned`, made there if none is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WaitingClaim {
    pub claim: PersistentVolumeClaim,
    pub candidates: Vec<PersistentVolume>,
    pub is_provisioned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotError(pub String);

impl PodRequest {
    /// A pod's needs from its spec (validation has already checked the quantities).
    pub fn from_spec(name: &str, spec: &PodSpec) -> Result<Self, SnapshotError> {
        let mut request = PodRequest {
            name: name.to_string(),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            affinity: spec.affinity.clone().map(Arc::new),
            topology_spread_constraints: spec.topology_spread_constraints.clone().unwrap_or_default(),
            tolerations: spec.tolerations.clone().unwrap_or_default(),
            runtime_handler: spec
                .runtime_class_name
                .as_deref()
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            ..Default::default()
        };
        // As Kubernetes counts them: the app containers and the sidecars run together;
        // each other init container runs alone beside the sidecars started before it.
        let mut sidecars = Needs::default();
        let mut peak = Needs::default();
        for container in spec.init_containers.iter().flatten() {
            let needs = Needs::of(container)?;
            if is_sidecar(container) {
                sidecars = sidecars.plus(needs);
                peak = peak.max(sidecars);
                request
                    .host_ports
                    .extend(container.ports.iter().flatten().filter_map(|p| p.host_port));
            } else {
                peak = peak.max(sidecars.plus(needs));
            }
        }
        let mut steady = sidecars;
        for container in &spec.containers {
            steady = steady.plus(Needs::of(container)?);
            request
                .host_ports
                .extend(container.ports.iter().flatten().filter_map(|p| p.host_port));
        }
        let needs = steady.max(peak);
        request.cpu_millis = needs.cpu_millis;
        request.memory_bytes = needs.memory_bytes;
        request.nonzero_cpu_millis = needs.nonzero_cpu_millis;
        request.nonzero_memory_bytes = needs.nonzero_memory_bytes;
        Ok(request)
    }

    /// A pod's needs from the pod: [`from_spec`](Self::from_spec), with its
    /// namespace and labels (for spreading) and whether it is being deleted.
    pub fn from_pod(pod: &Pod) -> Result<Self, SnapshotError> {
        let mut request = Self::from_spec(pod.metadata.name(), &pod.spec)?;
        request.namespace = pod.metadata.namespace().to_string();
        request.labels = Arc::new(pod.metadata.labels().clone());
        request.is_deleting = pod.metadata.deletion_timestamp.is_some();
        Ok(request)
    }
}

/// What one container (or several together) requests, and the same with the
/// scheduler's non-zero defaults for what it leaves out.
#[derive(Debug, Clone, Copy, Default)]
struct Needs {
    cpu_millis: u64,
    memory_bytes: u64,
    nonzero_cpu_millis: u64,
    nonzero_memory_bytes: u64,
}

impl Needs {
    fn of(container: &Container) -> Result<Needs, SnapshotError> {
        let requests = container.resources.as_ref().and_then(|r| r.requests.as_ref());
        let cpu = match quantity(requests, "cpu") {
            Some(cpu) => Some(parse_cpu_millis(cpu).map_err(|e| SnapshotError(e.0))?),
            None => None,
        };
        let memory = match quantity(requests, "memory") {
            Some(memory) => Some(parse_memory_bytes(memory).map_err(|e| SnapshotError(e.0))?),
            None => None,
        };
        Ok(Needs {
            cpu_millis: cpu.unwrap_or(0),
            memory_bytes: memory.unwrap_or(0),
            nonzero_cpu_millis: cpu.unwrap_or(DEFAULT_CPU_MILLIS),
            nonzero_memory_bytes: memory.unwrap_or(DEFAULT_MEMORY_BYTES),
        })
    }

    fn plus(self, other: Needs) -> Needs {
        Needs {
            cpu_millis: self.cpu_millis + other.cpu_millis,
            memory_bytes: self.memory_bytes + other.memory_bytes,
            nonzero_cpu_millis: self.nonzero_cpu_millis + other.nonzero_cpu_millis,
            nonzero_memory_bytes: self.nonzero_memory_bytes + other.nonzero_memory_bytes,
        }
    }

    /// Each resource's larger amount.
    fn max(self, other: Needs) -> Needs {
        Needs {
            cpu_millis: self.cpu_millis.max(other.cpu_millis),
            memory_bytes: self.memory_bytes.max(other.memory_bytes),
            nonzero_cpu_millis: self.nonzero_cpu_millis.max(other.nonzero_cpu_millis),
            nonzero_memory_bytes: self.nonzero_memory_bytes.max(other.nonzero_memory_bytes),
        }
    }
}

/// The quantity of `resource` in a (possibly absent) list of quantities.
fn quantity<'a>(quantities: Option<&'a BTreeMap<String, Quantity>>, resource: &str) -> Option<&'a str> {
    quantities?.get(resource).map(|q| q.0.as_str())
}
