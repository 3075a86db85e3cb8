//! The object kinds of the orchestrator: Namespace, Node, Pod, ReplicaSet and
//! Deployment, with `spec` (the user's) and `status` (the system's).
//!
//! Every kind with a spec and a status is a [`Resource`] of its spec type (the
//! types of the fields are Kubernetes' own, from `k8s-openapi`); the spec type says, through
//! [`Spec`], what its status is and which descriptor of [`crate::kinds`] says what
//! the kind is called and where it is served. An object of a kind known only at run
//! time is an [`Object`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::meta::{MetaExt, ObjectMeta};
use crate::kinds::KindDescriptor;
pub use crate::kinds::Object;

// The kinds' fields are Kubernetes' own types: every field a client sends is kept.
pub use k8s_openapi::api::apps::v1::{
    DeploymentCondition, DeploymentSpec, DeploymentStatus, DeploymentStrategy, ReplicaSetCondition, ReplicaSetSpec,
    ReplicaSetStatus, RollingUpdateDeployment, RollingUpdateStatefulSetStrategy, StatefulSetOrdinals,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetStatus, StatefulSetUpdateStrategy,
};
pub use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, DaemonEndpoint, EnvVar, HostIP, LifecycleHandler, LocalObjectReference,
    NamespaceCondition, NamespaceSpec, NamespaceStatus, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeRuntimeHandler, NodeSpec, NodeStatus, PodCondition, PodIP, PodSchedulingGate, PodSecurityContext, PodSpec,
    PodStatus, PodTemplateSpec, ResourceRequirements, SeccompProfile, SecurityContext, Taint, Toleration,
};
pub use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, LocalVolumeSource, ObjectReference, PersistentVolumeClaimSpec, PersistentVolumeClaimStatus,
    PersistentVolumeClaimVolumeSource, PersistentVolumeSpec, PersistentVolumeStatus, Volume,
    VolumeResourceRequirements,
};
pub use k8s_openapi::api::core::v1::{ResourceQuotaSpec, ResourceQuotaStatus};
// Placement: affinity and topology spread.
pub use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PodAffinity, PodAffinityTerm,
    PodAntiAffinity, PreferredSchedulingTerm, TopologySpreadConstraint, WeightedPodAffinityTerm,
};
pub use k8s_openapi::api::policy::v1::{PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
pub use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
pub use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What a spec type says about its kind: its status type, and the kind's
/// descriptor (in `crate::kinds`), where every fact about the kind is written.
pub trait Spec:
    Serialize + DeserializeOwned + Clone + Default + PartialEq + std::fmt::Debug + Send + Sync + 'static
{
    type Status: Serialize + DeserializeOwned + Clone + Default + PartialEq + std::fmt::Debug + Send + Sync + 'static;
    const DESCRIPTOR: &'static KindDescriptor;
}

/// The common envelope: apiVersion, kind, metadata, spec, status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", bound = "")]
pub struct Resource<S: Spec> {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: S,
    #[serde(default)]
    pub status: S::Status,
}

pub type Namespace = Resource<NamespaceSpec>;
pub type Node = Resource<NodeSpec>;
pub type Pod = Resource<PodSpec>;
pub type ReplicaSet = Resource<ReplicaSetSpec>;
pub type Deployment = Resource<DeploymentSpec>;
pub type PodDisruptionBudget = Resource<PodDisruptionBudgetSpec>;
pub type StatefulSet = Resource<StatefulSetSpec>;
pub type PersistentVolume = Resource<PersistentVolumeSpec>;
pub type PersistentVolumeClaim = Resource<PersistentVolumeClaimSpec>;
pub type ResourceQuota = Resource<ResourceQuotaSpec>;

impl<S: Spec> Resource<S> {
    /// A new object of this kind with `apiVersion` and `kind` filled in.
    pub fn new(metadata: ObjectMeta, spec: S) -> Self {
        Resource {
            api_version: S::DESCRIPTOR.api_version(),
            kind: S::DESCRIPTOR.kind.to_string(),
            metadata,
            spec,
            status: S::Status::default(),
        }
    }

    pub fn key(&self) -> String {
        key::<S>(self.metadata.namespace(), self.metadata.name())
    }

    /// The form the store keeps: JSON with `kind` and `apiVersion`, without a
    /// resourceVersion (that is the key's mod_revision, stamped on every read).
    pub fn stored_form(&self) -> Vec<u8> {
        let mut object = self.clone();
        object.metadata.resource_version = None;
        object.api_version = S::DESCRIPTOR.api_version();
        object.kind = S::DESCRIPTOR.kind.to_string();
        serde_json::to_vec(&object).expect("objects serialize")
    }
}

/// The store key of an object: `/registry/<resource>/<namespace>/<name>`, or
/// `/registry/<resource>/<name>` for cluster-scoped kinds.
pub fn key<S: Spec>(namespace: &str, name: &str) -> String {
    S::DESCRIPTOR.key(namespace, name)
}

/// The key prefix of every object of a kind, in one namespace or (`None`) in all.
pub fn prefix<S: Spec>(namespace: Option<&str>) -> String {
    S::DESCRIPTOR.prefix(namespace)
}
