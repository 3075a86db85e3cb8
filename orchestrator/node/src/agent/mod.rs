//! The node supervisor (`berth agent`): registers its Node, heartbeats through a
//! store lease (through the API server: its node's Lease, [`node_lease`]), runs the pods bound to it through a [`Runtime`], reports their
//! status, and serves their logs.
//!
//! ```text
//!  session: grant lease ─► heartbeat key + Node status ─► pods loop ──────────┐
//!               ▲                                       (list, watch, sync)   │
//!               └──── lease lost: stop every workload (self-fencing) ◄────────┘
//!  beside the pods loop: its Node seen marked not Ready ─► Node status written
//!  Ready again ([`node_ready`])
//! ```
//!
//! Fencing: a node whose lease expired is declared NotReady by the leader after a
//! grace period and its pods are replaced elsewhere. The agent stops its workloads as
//! soon as it cannot renew its lease (or its Lease) within the TTL, so a replacement never runs
//! beside a pod that the control plane has given up on.

pub mod cluster;
pub mod dns;
pub mod hollow;
mod local_volumes;
mod logs;
mod metrics;
pub mod node_lease;
mod node_ready;
mod pods;
mod stream;
pub mod tls_listener;
pub mod workloads;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::conditions::Condition;
use berth_api::objects::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeRuntimeHandler, NodeSpec, NodeStatus,
    Pod, PodSpec, Quantity,
};
use berth_api::persistent_volumes::LOCAL_VOLUME_DIR;
use berth_api::quantity::{format_cpu_millis, format_memory_bytes};
use berth_client::kv::{Event, Kv, KvError, Record};
use berth_client::reflector::Sink;
use berth_client::registry::{Registry, decode};
pub use workloads::{Runtimes, Workloads};

/// The key a live agent keeps attached to its lease.
pub fn heartbeat_key(node: &str) -> String {
    format!("/berth/heartbeats/{node}")
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub name: String,
    pub store_endpoints: Vec<String>,
    /// How `https` store endpoints are dialled (the CA, the client certificate).
    pub store_tls: Option<Arc<rustls::ClientConfig>>,
    pub data_dir: PathBuf,
    /// Where the log server listens.
    pub listen: SocketAddr,
    /// The address the API server reaches this agent at.
    pub advertise_address: String,
    pub cpu_millis: u64,
    pub memory_bytes: u64,
    pub labels: BTreeMap<String, String>,
    /// The heartbeat lease's TTL (in API mode, the node Lease's duration).
    pub lease_ttl: Duration,
    /// The first restart back-off of a crashing container (doubles up to 5 minutes).
    pub restart_backoff: Duration,
    /// Stop the workloads when the agent itself is stopped (otherwise they keep
    /// running and a restarted agent adopts them).
    pub stop_pods_on_exit: bool,
    /// The pod network's settings (`--cni-bin-dir`, the bridge, its state dir).
    pub cni: crate::network::CniSettings,
    /// The routes to the other nodes' pod CIDRs, kept while the agent runs, when its
    /// pods use the pod network ([`crate::network::routes::NodeRoutes::for_network`]).
    pub pod_routes: Option<crate::network::routes::NodeRoutes>,
    /// The cluster DNS: `--cluster-domain`, `--cluster-dns`, `--resolv-conf`.
    pub dns: dns::ClusterDnsConfig,
    /// The service proxy's settings, when this agent programs the node's iptables
    /// for the Services (removed again when the agent stops).
    pub proxy: Option<crate::proxy::ProxySettings>,
    /// The control plane's keys for Secrets encrypted at rest
    /// (`--encryption-provider-config`): the agent reads its pods' image pull
    /// secrets from the store.
    pub envelope: Option<Arc<berth_client::envelope::Envelope>>,
    /// Where volumes of the `berth.io/local` provisioner on this node live
    /// (`--local-volume-dir`, absolute), published on the Node for the provisioner.
    pub local_volume_dir: PathBuf,
    /// HTTPS for the agent's API (`--tls-cert-file`, `--client-ca-file`): only the
    /// API server's client certificate gets in. None: plain HTTP.
    pub tls: Option<tls_listener::AgentTls>,
    /// The API servers (`--kubeconfig`): the pods bound here, their status, the
    /// Node and what the pods use go through them ([`cluster::Cluster`]); None:
    /// everything through the store.
    pub api: Option<berth_client::api_source::ApiSource>,
}

/// The pods this agent runs, by namespace/name: their uid and runtime handler, for
/// the log server.
pub(crate) type PodIndex = Arc<Mutex<BTreeMap<(String, String), IndexedPod>>>;

/// What the agent's HTTP endpoints need to know of a pod running here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexedPod {
    pub uid: String,
    /// The runtime handler that runs it.
    pub handler: String,
    /// Its own address, when it has a network namespace of its own (None: it shares
    /// the host's network, or its sandbox is not ready yet).
    pub pod_ip: Option<std::net::IpAddr>,
}

/// Runs the agent until `shutdown` resolves.
pub async fn run(
    config: AgentConfig,
    workloads: impl Into<Workloads>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let workloads: Workloads = workloads.into();
    let runtimes = workloads.runtimes.clone();
    let mut kv = Kv::connect_with_tls(&config.store_endpoints, config.store_tls.as_deref())?;
    if let Some(envelope) = &config.envelope {
        kv = kv.with_envelope(envelope.clone());
    }
    let registry = Registry::new(kv.clone());
    let cluster = match config.api.clone() {
        Some(api) => cluster::Cluster::api(api, registry.clone()),
        None => cluster::Cluster::store(registry.clone()),
    };
    let index: PodIndex = Arc::default();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {} (--listen): {e}", config.listen))?;
    let port = listener.local_addr()?.port();
    let usage_window = metrics::SharedWindow::default();
    let _sampler = berth_client::kv::AbortOnDrop(tokio::spawn(metrics::sample(runtimes.clone(), usage_window.clone())));
    let usage = logs::UsageEndpoint {
        node: config.name.clone(),
        window: usage_window,
    };
    let server = match config.tls.clone() {
        None => tokio::spawn(logs::serve(listener, runtimes.clone(), index.clone(), usage)),
        Some(tls) => {
            let listener = tls_listener::TlsListener::new(listener, tls)?;
            tokio::spawn(logs::serve(listener, runtimes.clone(), index.clone(), usage))
        }
    };
    let _logs = berth_client::kv::AbortOnDrop(server);
    tracing::info!(
        node = %config.name,
        logs = %config.listen,
        runtimes = %runtimes.handlers().join(","),
        default_runtime = runtimes.default_handler(),
        images = workloads.images.is_some(),
        pod_network = workloads.network.is_some(),
        through = if cluster.is_api() { "the API server" } else { "the store" },
        "agent starting"
    );
    let _routes =
        (config.pod_routes.clone()).map(|r| berth_client::kv::AbortOnDrop(tokio::spawn(r.run(cluster.source()))));
    let proxier = config
        .proxy
        .clone()
        .map(|settings| Arc::new(crate::proxy::Proxier::new(settings)));
    let proxy_loop = (proxier.clone())
        .map(|p| berth_client::kv::AbortOnDrop(tokio::spawn(crate::proxy::watch::run(p, cluster.source()))));
    // NetworkPolicies are enforced where the proxy runs, under its tag and host.
    let filter = (config.proxy.as_ref())
        .map(|settings| Arc::new(crate::netpol::Filter::new(&settings.tag, settings.host_netns.clone())));
    let filter_loop = (filter.clone()).map(|f| {
        berth_client::kv::AbortOnDrop(tokio::spawn(crate::netpol::watch::run(
            f,
            cluster.source(),
            config.name.clone(),
        )))
    });

    // The Services and EndpointSlices, for the DNS server on the pod bridge's gateway
    // and the containers' service variables.
    let node_dns = Arc::new(dns::NodeDns {
        config: config.dns.clone(),
        pod_cidr: config.pod_routes.as_ref().and_then(|r| r.pod_cidr.clone()),
        catalog: Arc::default(),
    });
    let _catalog = berth_client::kv::AbortOnDrop(tokio::spawn(node_dns.catalog.clone().follow(cluster.source())));
    let host_netns = config.pod_routes.as_ref().and_then(|r| r.host_netns.clone());
    let _dns = berth_client::kv::AbortOnDrop(tokio::spawn(node_dns.clone().serve(host_netns)));
    let _local_volumes = berth_client::kv::AbortOnDrop(tokio::spawn(local_volumes::run(
        cluster.clone(),
        config.name.clone(),
        config.local_volume_dir.clone(),
    )));

    let mut pods = pods::PodSupervisor::new(
        config.name.clone(),
        cluster.clone(),
        workloads,
        config.restart_backoff,
        index,
        config.advertise_address.clone(),
        config.data_dir.join("pods"),
    )
    .with_allocatable(config.cpu_millis, config.memory_bytes)
    .with_dns(node_dns);
    tokio::pin!(shutdown);
    let current_lease = std::sync::atomic::AtomicI64::new(0);
    // The Node as stored: marked not Ready while the heartbeat is held, written Ready again.
    let marks = Arc::new(node_ready::NodeMarks::new([config.name.clone()]));
    let _node_watch = berth_client::kv::AbortOnDrop(tokio::spawn(cluster.clone().reflect(
        &berth_api::kinds::node::NODE,
        Some(format!("metadata.name={}", config.name)),
        marks.clone(),
    )));
    loop {
        let session = async {
            let mut heartbeat = register(&kv, &cluster, &config, &runtimes, port).await;
            if let Heartbeat::Store(lease, _) = &heartbeat {
                current_lease.store(*lease, std::sync::atomic::Ordering::Relaxed);
            }
            tokio::select! {
                () = heartbeat.lost() => {
                    tracing::warn!(node = %config.name, heartbeat = %heartbeat,
                        "lost the heartbeat lease: stopping every workload (self-fencing)");
                    pods.stop_all(Duration::from_secs(1)).await;
                }
                () = pods.run() => {}
                () = marks.keep(0, || write_node(&cluster, &config, &runtimes, port)) => {}
            }
        };
        tokio::select! {
            () = session => {}
            () = &mut shutdown => break,
        }
    }
    if config.stop_pods_on_exit {
        tracing::info!(node = %config.name, "stopping every workload before exiting");
        pods.stop_all(Duration::from_secs(5)).await;
        // Nothing runs here any more: let the control plane know at once rather than
        // after the lease's TTL.
        let lease = current_lease.load(std::sync::atomic::Ordering::Relaxed);
        if lease != 0
            && let Err(e) = kv.revoke(lease).await
        {
            tracing::warn!(node = %config.name, error = %e, "cannot revoke the heartbeat lease");
        }
        if let Some(api) = cluster.api_source()
            && let Err(e) = node_lease::release(api, &config.name).await
        {
            tracing::warn!(node = %config.name, error = %e, "cannot delete the node's Lease");
        }
    }
    // The service rules and the filter go with the agent (a sync still running
    // finishes first).
    drop(proxy_loop);
    drop(filter_loop);
    if let Some(filter) = filter {
        match tokio::task::spawn_blocking(move || filter.stop()).await {
            Ok(Ok(())) => tracing::info!(node = %config.name, "removed the network policy filter"),
            Ok(Err(e)) => tracing::warn!(node = %config.name, error = %e, "cannot remove the network policy filter"),
            Err(e) => tracing::warn!(node = %config.name, error = %e, "the network policy filter's cleanup failed"),
        }
    }
    if let Some(proxier) = proxier {
        match tokio::task::spawn_blocking(move || proxier.stop()).await {
            Ok(Ok(())) => tracing::info!(node = %config.name, "removed the service proxy's rules"),
            Ok(Err(e)) => tracing::warn!(node = %config.name, error = %e, "cannot remove the service proxy's rules"),
            Err(e) => tracing::warn!(node = %config.name, error = %e, "the service proxy's cleanup failed"),
        }
    }
    Ok(())
}

/// How the agent heartbeats: a store lease its heartbeat key is attached to, or
/// (through the API server) its node's Lease.
enum Heartbeat {
    Store(i64, berth_client::kv::KeepAlive),
    Api(node_lease::NodeLease),
}

impl Heartbeat {
    /// Resolves when the heartbeat could not be kept for its TTL.
    async fn lost(&mut self) {
        match self {
            Heartbeat::Store(_, keep_alive) => keep_alive.lost().await,
            Heartbeat::Api(lease) => lease.keep().await,
        }
    }
}

impl std::fmt::Display for Heartbeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Heartbeat::Store(lease, _) => write!(f, "store lease {lease:x}"),
            Heartbeat::Api(lease) => write!(f, "Lease {}", lease.name()),
        }
    }
}

/// Grants a lease, attaches the heartbeat key to it and writes the Node's status
/// (through the API server: creates or renews the node's Lease, then writes the
/// Node's status); retries until the cluster answers.
async fn register(
    kv: &Kv,
    cluster: &cluster::Cluster,
    config: &AgentConfig,
    runtimes: &Runtimes,
    port: u16,
) -> Heartbeat {
    let ttl = config.lease_ttl.as_secs().max(1) as i64;
    loop {
        let attempt = async {
            if let Some(api) = cluster.api_source() {
                // The heartbeat first, as the key in the store: a Node without
                // one would be marked NotReady at once.
                let lease = node_lease::NodeLease::ensure(api.clone(), &config.name, config.lease_ttl).await?;
                write_node(cluster, config, runtimes, port).await?;
                return Ok::<_, KvError>(Heartbeat::Api(lease));
            }
            let lease = kv.grant(ttl).await?;
            kv.put(&heartbeat_key(&config.name), config.name.clone().into_bytes(), lease)
                .await?;
            write_node(cluster, config, runtimes, port).await?;
            Ok(Heartbeat::Store(lease, kv.keep_alive(lease, ttl)))
        };
        match attempt.await {
            Ok(heartbeat) => {
                tracing::info!(node = %config.name, %heartbeat, "registered");
                return heartbeat;
            }
            Err(e) => {
                tracing::warn!(node = %config.name, error = %e, "cannot register yet; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn node_status(config: &AgentConfig, runtimes: &Runtimes, port: u16) -> NodeStatus {
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(format_cpu_millis(config.cpu_millis))),
        ("memory".to_string(), Quantity(format_memory_bytes(config.memory_bytes))),
    ]);
    let mut ready = NodeCondition::new("Ready", "True", "KubeletReady", "berth agent is posting ready status");
    ready.last_transition_time = Some(berth_api::time::now());
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(vec![ready]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: config.advertise_address.clone(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: config.name.clone(),
            },
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: i32::from(port) }),
        }),
        // The RuntimeClass handlers this node runs, as the kubelet reports them
        // (the scheduler places a pod only where its class's handler is).
        runtime_handlers: Some(
            runtimes
                .handlers()
                .into_iter()
                .map(|name| NodeRuntimeHandler {
                    name: Some(name),
                    features: None,
                })
                .collect(),
        ),
        ..Default::default()
    }
}

/// Creates the Node or refreshes its status, labels and annotations (the spec —
/// cordons and taints — is the users').
async fn write_node(
    cluster: &cluster::Cluster,
    config: &AgentConfig,
    runtimes: &Runtimes,
    port: u16,
) -> Result<(), KvError> {
    let mut labels = config.labels.clone();
    labels.insert("kubernetes.io/hostname".into(), config.name.clone());
    labels.insert("berth.io/version".into(), env!("CARGO_PKG_VERSION").into());
    let local_volume_dir = config.local_volume_dir.display().to_string();
    let mut node = Node::new(
        berth_api::meta::ObjectMeta {
            name: Some(config.name.clone()),
            labels: Some(labels),
            annotations: Some([(LOCAL_VOLUME_DIR.to_string(), local_volume_dir)].into()),
            ..Default::default()
        },
        NodeSpec::default(),
    );
    node.status = node_status(config, runtimes, port);
    cluster.write_node(&node).await
}

/// The pods bound to this node, fed by the client's list-then-watch loop and
/// published whole to the pod supervisor after every list and every batch.
pub(crate) struct BoundPods {
    node: String,
    pods: Mutex<BTreeMap<String, Pod>>,
    desired_tx: tokio::sync::watch::Sender<Option<BTreeMap<String, Pod>>>,
}

impl BoundPods {
    pub(crate) fn new(node: String, desired_tx: tokio::sync::watch::Sender<Option<BTreeMap<String, Pod>>>) -> Self {
        BoundPods {
            node,
            pods: Mutex::new(BTreeMap::new()),
            desired_tx,
        }
    }

    /// The pod a record holds, if it decodes (one that does not is logged and skipped).
    fn pod(record: &Record) -> Option<Pod> {
        decode::<PodSpec>(record)
            .map_err(|e| tracing::warn!(error = %e, "skipping a pod that does not decode"))
            .ok()
    }

    /// Keeps `record`'s pod if it is bound here, else forgets its key.
    fn put(&self, pods: &mut BTreeMap<String, Pod>, record: &Record) {
        match Self::pod(record) {
            Some(pod) if pod.spec.node_name.as_deref() == Some(self.node.as_str()) => {
                pods.insert(record.key.clone(), pod);
            }
            _ => {
                pods.remove(&record.key);
            }
        }
    }
}

impl Sink for BoundPods {
    fn replace(&self, records: Vec<Record>, _revision: i64) {
        let mut pods = self.pods.lock().expect("bound pods lock");
        pods.clear();
        for record in &records {
            self.put(&mut pods, record);
        }
        let _ = self.desired_tx.send(Some(pods.clone()));
    }

    fn apply(&self, events: Vec<Event>, _revision: i64) {
        let mut pods = self.pods.lock().expect("bound pods lock");
        for event in &events {
            match event {
                Event::Put(record) => self.put(&mut pods, record),
                Event::Delete { prev, .. } => {
                    pods.remove(&prev.key);
                }
            }
        }
        let _ = self.desired_tx.send(Some(pods.clone()));
    }
}

/// This host's CPUs (in millicores) and memory (bytes), for `--cpu`/`--memory`
/// defaults.
pub fn detect_capacity() -> (u64, u64) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(1 << 30, |kb| kb * 1024);
    (cpus * 1000, memory)
}

#[cfg(test)]
mod tests;
