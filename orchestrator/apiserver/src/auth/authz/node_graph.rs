//! What the Node authorizer reads: which node each pod is bound to and what it
//! names (Secrets, ConfigMaps, claims, its service account), and which volume each
//! claim is bound to, kept in memory by two reflectors (pods, claims) as the RBAC
//! cache keeps roles. Kubernetes keeps the same facts as a graph; here a node's
//! pods are indexed by node and a question walks that node's pods.
//!
//! A pod just bound may not be here yet when its node, told by its own watch,
//! asks for it or what it names: before refusing a node, the authorizer reads the
//! pods the request is about from the store ([`NodeGraph::refresh`]) and asks
//! again, where Kubernetes refuses until its graph has the edge.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};

use berth_api::kinds::persistent_volume_claim::PERSISTENT_VOLUME_CLAIM;
use berth_api::kinds::pod::POD;
use berth_api::objects::{PersistentVolumeClaim, Pod, PodSpec};
use berth_client::kv::{Event, Kv, Record};
use berth_client::reflector::{Sink, reflect};

/// What a node may reach through a pod bound to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uses {
    Secret,
    ConfigMap,
    Claim,
    ServiceAccount,
}

/// One pod's node and the objects of its namespace it names.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PodEdges {
    pub node: String,
    pub namespace: String,
    pub service_account: String,
    pub secrets: BTreeSet<String>,
    pub config_maps: BTreeSet<String>,
    pub claims: BTreeSet<String>,
}

impl PodEdges {
    /// A pod's edges, as Kubernetes' graph populator draws them: env and envFrom of
    /// every container (init and ephemeral too), volumes (projected sources
    /// included), imagePullSecrets and the service account.
    pub fn of(pod: &Pod) -> PodEdges {
        let spec: &PodSpec = &pod.spec;
        let mut edges = PodEdges {
            node: spec.node_name.clone().unwrap_or_default(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            service_account: spec.service_account_name.clone().unwrap_or_default(),
            ..Default::default()
        };
        for secret in spec.image_pull_secrets.iter().flatten() {
            edges.secrets.insert(secret.name.clone());
        }
        let containers = spec.containers.iter().chain(spec.init_containers.iter().flatten());
        let env = containers.map(|c| (&c.env, &c.env_from)).chain(
            spec.ephemeral_containers
                .iter()
                .flatten()
                .map(|c| (&c.env, &c.env_from)),
        );
        for (env, env_from) in env {
            for var in env.iter().flatten() {
                let Some(from) = &var.value_from else { continue };
                if let Some(r) = &from.secret_key_ref {
                    edges.secrets.insert(r.name.clone());
                }
                if let Some(r) = &from.config_map_key_ref {
                    edges.config_maps.insert(r.name.clone());
                }
            }
            for from in env_from.iter().flatten() {
                if let Some(r) = &from.secret_ref {
                    edges.secrets.insert(r.name.clone());
                }
                if let Some(r) = &from.config_map_ref {
                    edges.config_maps.insert(r.name.clone());
                }
            }
        }
        for volume in spec.volumes.iter().flatten() {
            if let Some(s) = volume.secret.as_ref().and_then(|s| s.secret_name.clone()) {
                edges.secrets.insert(s);
            }
            if let Some(c) = &volume.config_map {
                edges.config_maps.insert(c.name.clone());
            }
            if let Some(c) = &volume.persistent_volume_claim {
                edges.claims.insert(c.claim_name.clone());
            }
            // An ephemeral volume's claim is named `<pod>-<volume>`.
            if volume.ephemeral.is_some() {
                let pod = pod.metadata.name.as_deref().unwrap_or_default();
                edges.claims.insert(format!("{pod}-{}", volume.name));
            }
            for source in volume.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
                if let Some(s) = &source.secret {
                    edges.secrets.insert(s.name.clone());
                }
                if let Some(c) = &source.config_map {
                    edges.config_maps.insert(c.name.clone());
                }
            }
        }
        edges
    }

    fn names(&self, uses: Uses, name: &str) -> bool {
        match uses {
            Uses::Secret => self.secrets.contains(name),
            Uses::ConfigMap => self.config_maps.contains(name),
            Uses::Claim => self.claims.contains(name),
            Uses::ServiceAccount => self.service_account == name,
        }
    }
}

#[derive(Default)]
struct Graph {
    /// By the pod's store key.
    pods: BTreeMap<String, PodEdges>,
    /// Node name → store keys of the pods bound to it.
    by_node: BTreeMap<String, BTreeSet<String>>,
    /// `<namespace>/<claim>` → the volume it is bound to.
    claims: BTreeMap<String, String>,
}

impl Graph {
    fn remove_pod(&mut self, key: &str) {
        if let Some(old) = self.pods.remove(key)
            && let Some(keys) = self.by_node.get_mut(&old.node)
        {
            keys.remove(key);
            if keys.is_empty() {
                self.by_node.remove(&old.node);
            }
        }
    }

    fn put_pod(&mut self, key: &str, edges: PodEdges) {
        self.remove_pod(key);
        if !edges.node.is_empty() {
            self.by_node
                .entry(edges.node.clone())
                .or_default()
                .insert(key.to_string());
        }
        self.pods.insert(key.to_string(), edges);
    }
}

/// The pods' and claims' edges, and how many of the two kinds have been listed.
pub struct NodeGraph {
    graph: RwLock<Graph>,
    listed: tokio::sync::watch::Sender<u8>,
}

#[derive(Clone, Copy)]
enum Which {
    Pods,
    Claims,
}

struct GraphSink {
    graph: Arc<NodeGraph>,
    which: Which,
    listed: std::sync::atomic::AtomicBool,
}

impl GraphSink {
    fn put(&self, graph: &mut Graph, record: &Record) {
        match self.which {
            Which::Pods => match serde_json::from_slice::<Pod>(&record.value) {
                Ok(pod) => graph.put_pod(&record.key, PodEdges::of(&pod)),
                Err(e) => {
                    tracing::warn!(key = %record.key, error = %e, "a pod the node authorizer cannot read is ignored");
                    graph.remove_pod(&record.key);
                }
            },
            Which::Claims => {
                let claim = serde_json::from_slice::<PersistentVolumeClaim>(&record.value).ok();
                let volume = claim.as_ref().and_then(|c| c.spec.volume_name.clone());
                let name = claim_name(&record.key);
                match volume.filter(|v| !v.is_empty()) {
                    Some(volume) => graph.claims.insert(name, volume),
                    None => graph.claims.remove(&name),
                };
            }
        }
    }

    fn remove(&self, graph: &mut Graph, key: &str) {
        match self.which {
            Which::Pods => graph.remove_pod(key),
            Which::Claims => drop(graph.claims.remove(&claim_name(key))),
        }
    }
}

/// `<namespace>/<name>` of a claim's store key (its last two segments).
fn claim_name(key: &str) -> String {
    let mut parts = key.rsplitn(3, '/');
    let name = parts.next().unwrap_or_default();
    let namespace = parts.next().unwrap_or_default();
    format!("{namespace}/{name}")
}

impl Sink for GraphSink {
    fn replace(&self, records: Vec<Record>, _revision: i64) {
        {
            let mut graph = self.graph.graph.write().unwrap_or_else(|e| e.into_inner());
            match self.which {
                Which::Pods => {
                    graph.pods.clear();
                    graph.by_node.clear();
                }
                Which::Claims => graph.claims.clear(),
            }
            for record in &records {
                self.put(&mut graph, record);
            }
        }
        if !self.listed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.graph.listed.send_modify(|n| *n += 1);
        }
    }

    fn apply(&self, events: Vec<Event>, _revision: i64) {
        let mut graph = self.graph.graph.write().unwrap_or_else(|e| e.into_inner());
        for event in &events {
            match event {
                Event::Put(record) => self.put(&mut graph, record),
                Event::Delete { prev, .. } => self.remove(&mut graph, &prev.key),
            }
        }
    }
}

impl NodeGraph {
    pub fn new() -> Arc<NodeGraph> {
        Arc::new(NodeGraph {
            graph: Default::default(),
            listed: tokio::sync::watch::channel(0).0,
        })
    }

    /// Lists and watches pods and claims for as long as the process runs.
    pub fn start(self: &Arc<Self>, kv: &Kv) {
        for (prefix, which) in [
            (POD.prefix(None), Which::Pods),
            (PERSISTENT_VOLUME_CLAIM.prefix(None), Which::Claims),
        ] {
            let sink = Arc::new(GraphSink {
                graph: self.clone(),
                which,
                listed: Default::default(),
            });
            tokio::spawn(reflect(kv.clone(), prefix, sink, None));
        }
    }

    /// Waits until both kinds have been listed once, for at most `limit`.
    pub async fn wait_listed(&self, limit: std::time::Duration) -> bool {
        let mut listed = self.listed.subscribe();
        tokio::time::timeout(limit, listed.wait_for(|n| *n >= 2))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Puts a pod as a watch event would (tests).
    pub fn put_pod(&self, pod: &Pod) {
        let key = POD.key(
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default(),
        );
        let mut graph = self.graph.write().unwrap_or_else(|e| e.into_inner());
        graph.put_pod(&key, PodEdges::of(pod));
    }

    /// Binds a claim to a volume as a watch event would (tests).
    pub fn put_claim(&self, namespace: &str, name: &str, volume: &str) {
        let mut graph = self.graph.write().unwrap_or_else(|e| e.into_inner());
        graph.claims.insert(format!("{namespace}/{name}"), volume.into());
    }

    /// Reads from the store the pods a refused request of a node is about (the pod
    /// it names, or its namespace's pods for what a pod names) and puts them here,
    /// so that a decision does not lag behind the request. A later watch event
    /// brings the same or newer. Volumes are left to the watch.
    pub async fn refresh(&self, kv: &Kv, namespace: &str, pod: Option<&str>) {
        let records = match pod {
            Some(name) => kv.get(&POD.key(namespace, name)).await.map(|r| r.into_iter().collect()),
            None => kv.list(&POD.prefix(Some(namespace))).await.map(|(records, _)| records),
        };
        let records: Vec<Record> = match records {
            Ok(records) => records,
            Err(e) => {
                tracing::debug!(error = %e, "the node authorizer cannot read pods now");
                return;
            }
        };
        let mut graph = self.graph.write().unwrap_or_else(|e| e.into_inner());
        for record in records {
            if let Ok(pod) = serde_json::from_slice::<Pod>(&record.value) {
                graph.put_pod(&record.key, PodEdges::of(&pod));
            }
        }
    }

    /// The node the pod is bound to ("" unbound), if the pod is known.
    pub fn pod_node(&self, namespace: &str, name: &str) -> Option<String> {
        let graph = self.graph.read().unwrap_or_else(|e| e.into_inner());
        graph.pods.get(&POD.key(namespace, name)).map(|p| p.node.clone())
    }

    /// Whether a pod bound to `node` names the object `name` in `namespace`.
    pub fn node_uses(&self, node: &str, uses: Uses, namespace: &str, name: &str) -> bool {
        let graph = self.graph.read().unwrap_or_else(|e| e.into_inner());
        graph.by_node.get(node).into_iter().flatten().any(|key| {
            graph
                .pods
                .get(key)
                .is_some_and(|p| p.namespace == namespace && p.names(uses, name))
        })
    }

    /// Whether a pod bound to `node` uses a claim bound to the volume `name`.
    pub fn node_uses_volume(&self, node: &str, name: &str) -> bool {
        let graph = self.graph.read().unwrap_or_else(|e| e.into_inner());
        graph.by_node.get(node).into_iter().flatten().any(|key| {
            graph.pods.get(key).is_some_and(|p| {
                p.claims.iter().any(|claim| {
                    graph
                        .claims
                        .get(&format!("{}/{claim}", p.namespace))
                        .map(String::as_str)
                        == Some(name)
                })
            })
        })
    }
}
