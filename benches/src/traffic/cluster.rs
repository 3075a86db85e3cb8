//! The cluster the traffic benchmarks run against, as the traffic tests arrange it: one
//! `berth server` in the root namespace, agents on test hosts (network namespaces on a
//! bridge, `berth_testkit::hosts`) running runc containers on the CNI pod network, and
//! a docker-registry on the bridge's gateway holding the `berth-echo` image.
//!
//! ```text
//!  root namespace: berth server (store on 127.0.0.1 and the gateway, API on 127.0.0.1)
//!                  docker-registry on the gateway (insecure to the agents)
//!       │ bridge
//!  host-0 … host-N: berth agent --runtime=runc --stop-pods-on-exit, pod bridge, pods,
//!                   its service proxy's iptables rules, its cluster DNS
//! ```
//!
//! The Drop stops the agents (each stops its pods on the way out), then sweeps what a
//! killed agent would leave: runc containers, mounts under the run's dir, the pods'
//! cgroups; the hosts' namespaces take the pod bridges, veths and iptables rules.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_testkit::hosts::{HostNetwork, can_make_hosts, system_tool};
use berth_testkit::registry::Registry;
use berth_testkit::{Cluster, ClusterSpec, Process, QUIET_RAFT_LOG, System, free_port};
use hyper::Method;
use hyper::body::Bytes;
use serde_json::{Value, json};

use crate::api::http::Connection;

/// Where Debian installs the CNI plugins.
const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// The Deployment's and the Service's name, and the pods' `app` label.
pub const APP: &str = "echo";
/// The port `berth-echo` listens on in its pods.
pub const POD_PORT: u16 = 8080;
/// The Service's port.
pub const SERVICE_PORT: u16 = 80;
/// How long setting up (nodes Ready, pods ready) may take before the run fails.
const SETUP_TIMEOUT: Duration = Duration::from_secs(180);

pub struct TrafficCluster {
    pub agents: Vec<Process>,
    /// Each agent's `--data-dir`.
    agent_dirs: Vec<PathBuf>,
    /// `127.0.0.1:PORT` of the API server.
    pub api_authority: String,
    /// The pods' image, `GATEWAY:PORT/bench/echo:1`.
    pub image: String,
    dir: PathBuf,
    registry: Registry,
    server: Cluster,
    // Last: the hosts go once nothing runs on them.
    pub network: HostNetwork,
}

/// One pod of the Deployment, once ready.
#[derive(Clone, Debug)]
pub struct EchoPod {
    pub name: String,
    pub ip: Ipv4Addr,
    /// The index of the host (`host-N`) it runs on.
    pub host: usize,
    /// Its container's runc id (the bundle's directory name).
    pub container_id: String,
}

/// Whether this machine has what the cluster needs; an error naming what is missing.
pub fn check_machine() -> anyhow::Result<()> {
    if !can_make_hosts() {
        bail!("the traffic benchmarks need root, ip, nsenter and iptables (test hosts)");
    }
    let runc = Command::new(system_tool("runc")).arg("--version").output();
    if !runc.is_ok_and(|o| o.status.success()) {
        bail!("the traffic benchmarks need runc (Debian's package)");
    }
    for plugin in ["bridge", "host-local", "loopback", "portmap"] {
        if !Path::new(CNI_BIN_DIR).join(plugin).is_file() {
            bail!("the CNI plugin {plugin} is missing from {CNI_BIN_DIR} (containernetworking-plugins)");
        }
    }
    Ok(())
}

impl TrafficCluster {
    /// Starts the hosts, the registry (with `echo` in a busybox image), the server and
    /// the agents under `dir`; returns once every node is Ready with a pod CIDR.
    pub async fn start(
        berth: &Path,
        echo: &Path,
        dir: &Path,
        hosts: usize,
        agent_args: &[String],
    ) -> anyhow::Result<TrafficCluster> {
        check_machine()?;
        let network = HostNetwork::create(hosts).context("creating the test hosts")?;
        let gateway = network.gateway();
        let registry = Registry::start_on_or_skip(gateway.into())
            .context("the traffic benchmarks need docker-registry (Debian's package)")?;
        let image = berth_testkit::oci::busybox_image()
            .context("no static busybox (Debian's busybox-static) to build the pods' image from")?
            .host_binary("/bin/berth-echo", echo)
            .with_context(|| format!("adding {} to the image", echo.display()))?
            .build()?;
        registry.push(&image, "bench/echo", "1")?;

        let spec = ClusterSpec::new(System::BerthServer, berth, 1)
            .dir(dir.join("server"))
            .token(format!("bench-traffic-{}", std::process::id()))
            .env("RUST_LOG", QUIET_RAFT_LOG)
            .args([format!("--cluster-cidr={}", network.pod_cidr())]);
        let mut server = Cluster::new(spec)?;
        let api_authority = format!("127.0.0.1:{}", free_port());
        let client_port = server.replicas[0].client_port;
        let urls = format!("http://127.0.0.1:{client_port},http://{gateway}:{client_port}");
        server.replicas[0].args = vec![
            format!("--api-listen={api_authority}"),
            format!("--listen-client-urls={urls}"),
            format!("--advertise-client-urls={urls}"),
        ];
        let store = format!("http://{gateway}:{client_port}");
        let mut agents = Vec::new();
        let mut agent_dirs = Vec::new();
        for (i, host) in network.hosts().iter().enumerate() {
            let name = format!("host-{i}");
            let data_dir = dir.join(&name);
            let args = [
                "agent".to_owned(),
                format!("--name={name}"),
                format!("--store={store}"),
                format!("--data-dir={}", data_dir.display()),
                format!("--listen={}:{}", host.ip, free_port()),
                format!("--advertise-address={}", host.ip),
                format!("--pod-bridge=cbr{i}"),
                format!("--cni-bin-dir={CNI_BIN_DIR}"),
                "--runtime=runc".to_owned(),
                format!("--insecure-registry={}", registry.host()),
                "--cpu=2".to_owned(),
                "--memory=4Gi".to_owned(),
                "--stop-pods-on-exit".to_owned(),
            ]
            .into_iter()
            .chain(agent_args.iter().cloned());
            agents.push(
                host.process(&name, berth, args, dir.join(format!("{name}.log")))
                    .with_env("RUST_LOG", QUIET_RAFT_LOG),
            );
            agent_dirs.push(data_dir);
        }
        let mut cluster = TrafficCluster {
            agents,
            agent_dirs,
            api_authority,
            image: registry.reference("bench/echo", "1"),
            dir: dir.to_owned(),
            registry,
            server,
            network,
        };
        cluster.server.start_all()?;
        cluster.server.wait_for_leader().await?;
        for agent in &mut cluster.agents {
            agent.start()?;
        }
        cluster.wait_for_nodes().await?;
        Ok(cluster)
    }

    async fn wait_for_nodes(&mut self) -> anyhow::Result<()> {
        let want = self.agents.len();
        let authority = self.api_authority.clone();
        self.wait_until("every node Ready with a pod CIDR", || {
            let authority = authority.clone();
            async move {
                let nodes = Api::open(&authority).await?.get_json("/api/v1/nodes").await?;
                let ready = nodes["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|n| n["spec"]["podCIDR"].is_string() && is_true(&n["status"]["conditions"], "Ready"))
                    .count();
                Ok((ready == want).then_some(()))
            }
        })
        .await
    }

    /// Polls `check` every 200 ms until it answers, failing after the set-up timeout or
    /// when a process of the cluster exits.
    pub async fn wait_until<T, F, Fut>(&mut self, what: &str, mut check: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
    {
        let started = Instant::now();
        loop {
            self.check_running()?;
            if let Some(found) = check().await? {
                return Ok(found);
            }
            if started.elapsed() > SETUP_TIMEOUT {
                bail!("{what}: not after {SETUP_TIMEOUT:?}\n{}", self.log_tails());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates the Deployment of `replicas` berth-echo pods (readiness probe every
    /// second, failing while /tmp/unready exists) and its ClusterIP Service; waits
    /// until every pod is a ready endpoint. Returns the Service's IP and the pods.
    pub async fn deploy_echo(&mut self, replicas: usize) -> anyhow::Result<(Ipv4Addr, Vec<EchoPod>)> {
        let mut api = Api::open(&self.api_authority).await?;
        api.create(
            "/apis/apps/v1/namespaces/default/deployments",
            &deployment(&self.image, replicas),
        )
        .await?;
        api.create("/api/v1/namespaces/default/services", &service()).await?;
        let authority = self.api_authority.clone();
        self.wait_until(&format!("{replicas} ready endpoints of {APP}"), || {
            let authority = authority.clone();
            async move {
                let slices = Api::open(&authority).await?.get_json(&slices_path()).await?;
                let ready = slice_endpoints(&slices).iter().filter(|(_, ready)| *ready).count();
                Ok((ready == replicas).then_some(()))
            }
        })
        .await?;
        let service = api
            .get_json(&format!("/api/v1/namespaces/default/services/{APP}"))
            .await?;
        let cluster_ip = service["spec"]["clusterIP"]
            .as_str()
            .and_then(|ip| ip.parse().ok())
            .context("the Service has no cluster IP")?;
        let pods = api.get_json(&pods_path()).await?;
        let mut echo_pods = Vec::new();
        for pod in pods["items"].as_array().into_iter().flatten() {
            let text = |pointer: &str| pod.pointer(pointer).and_then(Value::as_str).unwrap_or_default();
            let container_id = text("/status/containerStatuses/0/containerID");
            echo_pods.push(EchoPod {
                name: text("/metadata/name").to_owned(),
                ip: text("/status/podIP").parse().context("a ready pod without an IP")?,
                host: text("/spec/nodeName")
                    .strip_prefix("host-")
                    .and_then(|i| i.parse().ok())
                    .context("a pod on no host-N node")?,
                container_id: container_id
                    .split_once("://")
                    .map_or(container_id, |(_, id)| id)
                    .to_owned(),
            });
        }
        echo_pods.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((cluster_ip, echo_pods))
    }

    /// The `--data-dir` of the agent on host `index`.
    pub fn agent_dir(&self, index: usize) -> &Path {
        &self.agent_dirs[index]
    }

    /// Where `/tmp/unready` of the pod's container is, seen from the machine (the
    /// container's overlay is mounted in the machine's mount namespace).
    pub fn unready_file(&self, pod: &EchoPod) -> PathBuf {
        self.agent_dirs[pod.host]
            .join("oci/bundles")
            .join(&pod.container_id)
            .join("rootfs/tmp/unready")
    }

    /// Fails, with the logs, when the server or an agent has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        self.server.check_running()?;
        for agent in &mut self.agents {
            if let Some(status) = agent.reap_exited() {
                bail!("{} exited ({status}):\n{}", agent.name(), agent.log_tail(30).join("\n"));
            }
        }
        Ok(())
    }

    /// The last lines of every log, for a failure's message.
    pub fn log_tails(&self) -> String {
        let mut text = String::new();
        for agent in &self.agents {
            text.push_str(&format!(
                "--- {} ---\n{}\n",
                agent.name(),
                agent.log_tail(15).join("\n")
            ));
        }
        text.push_str(&format!("--- server ---{}", self.server.log_tails(10)));
        text.push_str(&format!("\n--- registry ---\n{}", self.registry.log_text()));
        text
    }
}

impl Drop for TrafficCluster {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            agent.stop(Duration::from_secs(30));
        }
        for dir in &self.agent_dirs {
            let root = dir.join("oci/runc");
            let runc = |args: &[&str]| {
                Command::new(system_tool("runc"))
                    .arg("--root")
                    .arg(&root)
                    .args(args)
                    .output()
            };
            if let Ok(out) = runc(&["list", "-q"]) {
                for id in String::from_utf8_lossy(&out.stdout).lines() {
                    let _ = runc(&["delete", "-f", id]);
                }
            }
        }
        // Overlays and pod namespace files a killed agent left, the deepest first.
        let mut mounts: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|p| p.starts_with(&self.dir))
            .collect();
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for mount in mounts {
            let _ = Command::new("umount").arg("-l").arg(&mount).output();
        }
        // The pods' cgroups, under every hierarchy's `berth` parent.
        let uids = self.pod_uids_seen();
        for hierarchy in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            for uid in &uids {
                let _ = std::fs::remove_dir(hierarchy.path().join("berth").join(uid));
            }
        }
    }
}

impl TrafficCluster {
    /// The uids of the pods the agents made containers for (from their records).
    fn pod_uids_seen(&self) -> Vec<String> {
        let mut uids = Vec::new();
        for dir in &self.agent_dirs {
            for record in std::fs::read_dir(dir.join("oci/containers"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let text = std::fs::read_to_string(record.path()).unwrap_or_default();
                if let Ok(value) = serde_json::from_str::<Value>(&text)
                    && let Some(uid) = value["pod_uid"].as_str()
                {
                    uids.push(uid.to_owned());
                }
            }
        }
        uids
    }
}

/// A keep-alive connection to the API server with JSON helpers.
pub struct Api {
    connection: Connection,
}

impl Api {
    pub async fn open(authority: &str) -> anyhow::Result<Api> {
        Ok(Api {
            connection: Connection::open(authority).await?,
        })
    }

    pub async fn get_json(&mut self, path: &str) -> anyhow::Result<Value> {
        let body = self.connection.get(path).await?.expect(200)?;
        serde_json::from_slice(&body).with_context(|| format!("the answer to {path} is not JSON"))
    }

    pub async fn create(&mut self, collection: &str, object: &Value) -> anyhow::Result<()> {
        self.connection
            .request(
                Method::POST,
                collection,
                Some(("application/json", Bytes::from(object.to_string()))),
            )
            .await?
            .expect(201)
            .with_context(|| format!("creating in {collection}"))?;
        Ok(())
    }

    pub fn connection(&mut self) -> &mut Connection {
        &mut self.connection
    }
}

pub fn pods_path() -> String {
    format!("/api/v1/namespaces/default/pods?labelSelector=app%3D{APP}")
}

pub fn slices_path() -> String {
    format!(
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3D{APP}"
    )
}

/// Whether the condition `kind` of a conditions array is True.
pub fn is_true(conditions: &Value, kind: &str) -> bool {
    conditions
        .as_array()
        .is_some_and(|all| all.iter().any(|c| c["type"] == kind && c["status"] == "True"))
}

/// Every endpoint of a slice list (or of one slice): its pod's name and readiness.
pub fn slice_endpoints(slices: &Value) -> Vec<(String, bool)> {
    let one = [slices.clone()];
    let items = slices["items"].as_array().map_or(&one[..], Vec::as_slice);
    items
        .iter()
        .flat_map(|slice| slice["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|endpoint| {
            let pod = endpoint["targetRef"]["name"].as_str().unwrap_or_default().to_owned();
            // Unset means ready, as the API says.
            (pod, endpoint["conditions"]["ready"] != false)
        })
        .collect()
}

fn deployment(image: &str, replicas: usize) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": APP},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": APP}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {
                    "terminationGracePeriodSeconds": 2,
                    "containers": [{
                        "name": APP,
                        "image": image,
                        "command": ["sh", "-c", format!("trap 'exit 0' TERM; berth-echo --port {POD_PORT} & wait")],
                        "readinessProbe": {
                            "httpGet": {"path": "/healthz", "port": POD_PORT},
                            "periodSeconds": 1,
                            "failureThreshold": 1,
                            "successThreshold": 1,
                        },
                    }],
                },
            },
        },
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": APP},
        "spec": {
            "selector": {"app": APP},
            "ports": [{"port": SERVICE_PORT, "targetPort": POD_PORT}],
        },
    })
}
