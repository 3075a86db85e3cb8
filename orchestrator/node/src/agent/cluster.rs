//! The agent's access to the cluster, one type for both ways in: the store directly
//! (`--store` alone), or the API server as `system:node:<name>` (`--kubeconfig`),
//! as a kubelet reaches it.
//!
//! ```text
//!                       store mode                 API mode
//!  pods bound here      store reflector, all pods  GET/watch pods?fieldSelector=spec.nodeName=<node>
//!  pod status           txn on the pod's key       PUT pods/<name>/status at the resourceVersion read
//!  a pod's removal      delete at its revision     DELETE, grace 0, preconditions.uid
//!  the Node             create, or modify          POST, else PUT the Node and PUT its status
//!  what pods use        get of the store key       GET of the object that key names
//!  (ConfigMaps, Secrets, RuntimeClasses, claims and their volumes)
//! ```
//!
//! In API mode the ConfigMaps and Secrets pods name are watched one by one
//! (`fieldSelector=metadata.name=<name>` in their namespace), as the Node
//! authorizer allows a node to read only those.
//!
//! The Services and EndpointSlices (the proxy's and DNS's) and the Nodes (the
//! routes') are watched through the API too, and the heartbeat is the node's Lease
//! there ([`super::node_lease`]); events are posted there, the local volumes'
//! provisioner watches and deletes its PersistentVolumes there, and the packet
//! filter watches the pods, namespaces and NetworkPolicies there. In API mode
//! nothing is read from or written to the store, which is never dialled
//! (`--store` is not needed).

use std::sync::Arc;

use berth_api::kinds::KindDescriptor;
use berth_api::kinds::node::NODE;
use berth_api::kinds::persistent_volume::PERSISTENT_VOLUME;
use berth_api::kinds::pod::POD;
use berth_api::meta::MetaExt;
use berth_api::objects::{Node, NodeSpec, PersistentVolumeSpec, Pod, PodSpec};
use berth_client::api_source::{ApiSource, Source};
use berth_client::kv::{KvError, Record};
use berth_client::reflector::Sink;
use berth_client::registry::{Registry, decode};
use serde_json::json;

/// How often a status write through the API is tried again after a conflict.
const CONFLICT_ATTEMPTS: usize = 10;

#[derive(Clone)]
pub struct Cluster {
    /// The store: everything in store mode; never used in API mode.
    pub(crate) store: Registry,
    /// The API server, in API mode.
    api: Option<ApiSource>,
}

impl Cluster {
    /// Everything through the store.
    pub fn store(store: Registry) -> Cluster {
        Cluster { store, api: None }
    }

    /// Everything through the API server (`store` is never dialled).
    pub fn api(api: ApiSource, store: Registry) -> Cluster {
        Cluster { store, api: Some(api) }
    }

    /// The same cluster over connections of its own (API mode; store mode shares
    /// the store client's).
    pub fn with_own_connections(&self) -> Cluster {
        Cluster {
            store: self.store.clone(),
            api: self.api.as_ref().map(ApiSource::with_own_connections),
        }
    }

    pub fn is_api(&self) -> bool {
        self.api.is_some()
    }

    /// What the agent records its events with (as `component` on `host`): to the
    /// store, or through the API server.
    pub fn recorder(&self, component: &str, host: &str) -> berth_client::events::Recorder {
        match &self.api {
            Some(api) => berth_client::events::Recorder::through_api(api.clone(), component, host),
            None => berth_client::events::Recorder::new(self.store.kv.clone(), component, host),
        }
    }

    /// The API server, in API mode.
    pub fn api_source(&self) -> Option<&ApiSource> {
        self.api.as_ref()
    }

    /// Lists then watches `kind` forever, feeding `sink`. Over the API only what
    /// `field_selector` selects comes; from the store everything does (the sinks
    /// keep what is theirs either way).
    pub async fn reflect(self, kind: &'static KindDescriptor, field_selector: Option<String>, sink: Arc<dyn Sink>) {
        self.source().reflect(kind, field_selector, sink).await
    }

    /// Where the list-then-watch loops read.
    pub fn source(&self) -> Source {
        match &self.api {
            Some(api) => Source::Api(api.clone()),
            None => Source::Store(self.store.kv.clone()),
        }
    }

    /// The object a store key names, as the store keeps it (Secrets decrypted).
    pub async fn get(&self, key: &str) -> Result<Option<Record>, KvError> {
        match &self.api {
            Some(api) => api.get(key).await,
            None => self.store.kv.get(key).await,
        }
    }

    /// A token for the pod's ServiceAccount, bound to the pod (a TokenRequest
    /// through the API server); store mode has no way to sign one.
    pub async fn request_token(
        &self,
        pod: &Pod,
        audience: Option<&str>,
        expiration_seconds: i64,
    ) -> Result<(String, std::time::SystemTime), KvError> {
        let Some(api) = &self.api else {
            return Err(KvError::Other(
                "serviceAccountToken projections need the agent to reach the API server (berth agent --kubeconfig)"
                    .into(),
            ));
        };
        let account = berth_api::admission::service_account::account_name(&pod.spec);
        let meta = &pod.metadata;
        api.request_token(
            meta.namespace(),
            account,
            (meta.name(), meta.uid()),
            audience,
            expiration_seconds,
        )
        .await
    }

    pub async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<Pod>, KvError> {
        match &self.api {
            Some(api) => match api.read(&POD, namespace, name).await? {
                Some(record) => decode::<PodSpec>(&record).map(Some),
                None => Ok(None),
            },
            None => self.store.get::<PodSpec>(namespace, name).await,
        }
    }

    /// Reads the pod, lets `change` change its status (false: nothing to write) and
    /// writes the status, read again and changed again after a conflict.
    pub async fn modify_pod_status(
        &self,
        namespace: &str,
        name: &str,
        change: impl FnMut(&mut Pod) -> bool,
    ) -> Result<Pod, KvError> {
        self.modify_pod_status_from(None, namespace, name, change).await
    }

    /// [`modify_pod_status`](Self::modify_pod_status), through the API server
    /// starting from `seen` (the pod as a watch delivered it) instead of reading it
    /// first: the write is made at `seen`'s resourceVersion, so a stale copy fails
    /// it and the pod is read again.
    pub async fn modify_pod_status_from(
        &self,
        mut seen: Option<Pod>,
        namespace: &str,
        name: &str,
        mut change: impl FnMut(&mut Pod) -> bool,
    ) -> Result<Pod, KvError> {
        let Some(api) = &self.api else {
            return self.store.modify::<PodSpec>(namespace, name, None, change).await;
        };
        let mut attempts = 0;
        loop {
            let pod = match seen.take() {
                Some(pod) => Some(pod),
                None => self.get_pod(namespace, name).await?,
            };
            let Some(mut pod) = pod else {
                return Err(KvError::NotFound);
            };
            if !change(&mut pod) {
                return Ok(pod);
            }
            let body = serde_json::to_value(&pod).expect("pods serialize");
            match api.replace(&POD, namespace, name, Some("status"), &body).await {
                Err(KvError::Conflict { .. }) if attempts < CONFLICT_ATTEMPTS => attempts += 1,
                Err(e) => return Err(e),
                Ok(record) => return decode::<PodSpec>(&record),
            }
        }
    }

    /// Removes a pod whose containers stopped, if it is still the one with `uid`
    /// (and, from the store, still at `resource_version`).
    pub async fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        resource_version: Option<i64>,
    ) -> Result<(), KvError> {
        match &self.api {
            Some(api) => {
                let options = json!({
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "gracePeriodSeconds": 0,
                    "preconditions": {"uid": uid},
                });
                api.delete(&POD, namespace, name, &options).await
            }
            None => self
                .store
                .delete::<PodSpec>(namespace, name, resource_version, None)
                .await
                .map(drop),
        }
    }

    /// Deletes the PersistentVolume `name` if it is still at `resource_version`.
    pub async fn delete_volume(&self, name: &str, resource_version: i64) -> Result<(), KvError> {
        match &self.api {
            Some(api) => {
                let options = json!({
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "preconditions": {"resourceVersion": resource_version.to_string()},
                });
                api.delete(&PERSISTENT_VOLUME, "", name, &options).await
            }
            None => self
                .store
                .delete::<PersistentVolumeSpec>("", name, Some(resource_version), None)
                .await
                .map(drop),
        }
    }

    /// Creates the Node, or refreshes the labels and annotations `node` carries and
    /// its whole status (its spec, cordons and taints, is the users').
    pub async fn write_node(&self, node: &Node) -> Result<(), KvError> {
        let name = node.metadata.name().to_string();
        let refresh = |stored: &mut Node| {
            stored.metadata.labels_mut().extend(node.metadata.labels().clone());
            stored
                .metadata
                .annotations_mut()
                .extend(node.metadata.annotations().clone());
            stored.status = node.status.clone();
            true
        };
        let Some(api) = &self.api else {
            match self.store.create(node, None).await {
                Ok(_) => return Ok(()),
                Err(KvError::AlreadyExists) => {}
                Err(e) => return Err(e),
            }
            return self.store.modify::<NodeSpec>("", &name, None, refresh).await.map(drop);
        };
        let body = serde_json::to_value(node).expect("nodes serialize");
        match api.create(&NODE, "", &body).await {
            Ok(_) => return Ok(()),
            Err(KvError::AlreadyExists) => {}
            Err(e) => return Err(e),
        }
        // The Node (its metadata) and its status are written apart, as the API
        // server keeps each write to its own part.
        let mut attempts = 0;
        loop {
            let Some(record) = api.read(&NODE, "", &name).await? else {
                return Err(KvError::NotFound);
            };
            let mut stored = decode::<NodeSpec>(&record)?;
            refresh(&mut stored);
            let result = async {
                let written = api
                    .replace(
                        &NODE,
                        "",
                        &name,
                        None,
                        &serde_json::to_value(&stored).expect("nodes serialize"),
                    )
                    .await?;
                stored.metadata.resource_version = Some(written.mod_revision.to_string());
                let body = serde_json::to_value(&stored).expect("nodes serialize");
                api.replace(&NODE, "", &name, Some("status"), &body).await
            };
            match result.await {
                Err(KvError::Conflict { .. }) if attempts < CONFLICT_ATTEMPTS => attempts += 1,
                Err(e) => return Err(e),
                Ok(_) => return Ok(()),
            }
        }
    }
}
