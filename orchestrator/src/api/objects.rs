//! The object kinds of the orchestrator: Namespace, Node, Pod, ReplicaSet and
//! Deployment, with `spec` (the user's) and `status` (the system's).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{LabelSelector, ObjectMeta};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub container_port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<i32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// Quantities as written (`500m`, `128Mi`); parsed by validation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRequirements {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default)]
    pub resources: ResourceRequirements,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    #[serde(default)]
    pub key: String,
    /// `Equal` (default) or `Exists`.
    #[serde(default)]
    pub operator: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub effect: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Vec<Container>,
    /// `Always` (default), `OnFailure` or `Never`.
    #[serde(default)]
    pub restart_policy: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// Set by the scheduler when it binds the pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateSpec {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetSpec {
    #[serde(default = "one")]
    pub replicas: i32,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    #[serde(default = "one")]
    pub replicas: i32,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
}

fn one() -> i32 {
    1
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    pub key: String,
    #[serde(default)]
    pub value: String,
    /// `NoSchedule` or `NoExecute`.
    pub effect: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    #[serde(default)]
    pub unschedulable: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

/// An object of any kind the API knows, tagged by `kind`; `status` is kept as
/// free JSON until the controllers that write it exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Object {
    Namespace(Namespaced<serde_json::Value>),
    Node(Namespaced<NodeSpec>),
    Pod(Namespaced<PodSpec>),
    ReplicaSet(Namespaced<ReplicaSetSpec>),
    Deployment(Namespaced<DeploymentSpec>),
}

/// The common envelope: apiVersion, metadata, spec, status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Namespaced<S> {
    pub api_version: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: S,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub status: serde_json::Value,
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Namespace(_) => "Namespace",
            Object::Node(_) => "Node",
            Object::Pod(_) => "Pod",
            Object::ReplicaSet(_) => "ReplicaSet",
            Object::Deployment(_) => "Deployment",
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::Node(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::ReplicaSet(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
        }
    }

    pub fn api_version(&self) -> &str {
        match self {
            Object::Namespace(o) => &o.api_version,
            Object::Node(o) => &o.api_version,
            Object::Pod(o) => &o.api_version,
            Object::ReplicaSet(o) => &o.api_version,
            Object::Deployment(o) => &o.api_version,
        }
    }

    /// The plural resource name in URLs and store keys.
    pub fn resource(&self) -> &'static str {
        match self {
            Object::Namespace(_) => "namespaces",
            Object::Node(_) => "nodes",
            Object::Pod(_) => "pods",
            Object::ReplicaSet(_) => "replicasets",
            Object::Deployment(_) => "deployments",
        }
    }

    pub fn is_namespaced(&self) -> bool {
        !matches!(self, Object::Namespace(_) | Object::Node(_))
    }

    /// The store key: `/registry/<resource>/<namespace>/<name>` (no namespace for
    /// cluster-scoped kinds).
    pub fn key(&self) -> String {
        let meta = self.metadata();
        if self.is_namespaced() {
            format!("/registry/{}/{}/{}", self.resource(), meta.namespace, meta.name)
        } else {
            format!("/registry/{}/{}", self.resource(), meta.name)
        }
    }
}
