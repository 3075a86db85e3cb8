//! A cluster that runs real containers: one `berth server` (or several replicas),
//! agents each on its own test host (a network namespace, see `berth_testkit::hosts`) running pods on the
//! runc runtime with the CNI pod network, and an image registry the hosts pull from.
//!
//! ```text
//!  root namespace: berth server (store on 127.0.0.1 and the gateway, API on 127.0.0.1,
//!                  or on every address for pods to reach)
//!                  docker-registry on the gateway (an insecure registry to the agents)
//!       │ bridge
//!  host-0 … host-N: berth agent --runtime=runc, its own data dir, pod bridge, pods
//! ```
//!
//! The Drop tears down what the agents leave (they are killed, so their containers
//! keep running): every runc container of every agent, then every mount left under
//! the cluster's dir, then the hosts (their namespaces take the pod bridges, veths and
//! iptables rules), the registry and the server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_testkit::hosts::{HostNetwork, can_make_hosts, system_tool};
use berth_testkit::oci::{ImageBuilder, busybox_image};
use berth_testkit::registry::Registry;
use berth_testkit::{Cluster, ClusterSpec, Process, QUIET_RAFT_LOG, System, eventually_blocking, free_port};
use serde_json::Value;

use super::{BERTH, have_kubectl, http_get};

/// Where Debian installs the CNI plugins.
const CNI_BIN_DIR: &str = "/usr/lib/cni";

pub struct ContainerCluster {
    pub agents: Vec<Process>,
    /// Each agent's `--data-dir`.
    pub agent_dirs: Vec<PathBuf>,
    /// The REST API port the helpers (and kubectl) use: the first replica's, until a
    /// test that stops that replica turns to another ([`ContainerCluster::use_api_of`]).
    pub api_port: u16,
    /// Each replica's REST API port.
    pub api_ports: Vec<u16>,
    pub registry: Registry,
    pub server: Cluster,
    /// The admin's kubeconfig, when the cluster runs secure
    /// ([`ContainerCluster::start_secure`]).
    pub admin_kubeconfig: Option<PathBuf>,
    // Last: the hosts go once nothing runs on them.
    pub network: HostNetwork,
}

/// Whether this machine can run containers as the agent does (root, runc, the CNI
/// plugins, kubectl, test hosts); skips (fails under CI) if not.
pub fn can_run_containers() -> bool {
    if !can_make_hosts() || !have_kubectl() {
        return false;
    }
    let runc = Command::new(system_tool("runc")).arg("--version").output();
    if !runc.is_ok_and(|o| o.status.success()) {
        berth_testkit::skip("runc (Debian's package; scripts/test.sh installs it)");
        return false;
    }
    for plugin in ["bridge", "host-local", "loopback", "portmap"] {
        if !Path::new(CNI_BIN_DIR).join(plugin).is_file() {
            berth_testkit::skip(&format!(
                "the CNI plugin {plugin} (containernetworking-plugins; scripts/test.sh installs it)"
            ));
            return false;
        }
    }
    true
}

impl ContainerCluster {
    /// A server, a registry and `hosts` agents, every node Ready; `None` after a skip.
    pub fn start(hosts: usize) -> Option<ContainerCluster> {
        Self::start_with(hosts, |_, _| Vec::new())
    }

    /// As [`ContainerCluster::start`], every agent also given the flags `agent_args`
    /// returns from the test network's gateway and the cluster's dir.
    pub fn start_with(
        hosts: usize,
        agent_args: impl FnOnce(std::net::Ipv4Addr, &Path) -> Vec<String>,
    ) -> Option<ContainerCluster> {
        Self::start_replicated(1, hosts, agent_args)
    }

    /// As [`ContainerCluster::start_with`], with `replicas` control-plane replicas
    /// (each serving the API on a port of its own); the agents know every replica.
    pub fn start_replicated(
        replicas: usize,
        hosts: usize,
        agent_args: impl FnOnce(std::net::Ipv4Addr, &Path) -> Vec<String>,
    ) -> Option<ContainerCluster> {
        Self::start_inner(replicas, hosts, agent_args, false)
    }

    /// As [`ContainerCluster::start_with`], with the API also reachable from pods:
    /// it listens on every address and advertises the gateway, so the `kubernetes`
    /// Service leads to it.
    pub fn start_with_api_for_pods(
        hosts: usize,
        agent_args: impl FnOnce(std::net::Ipv4Addr, &Path) -> Vec<String>,
    ) -> Option<ContainerCluster> {
        Self::start_inner(1, hosts, agent_args, true)
    }

    /// As [`ContainerCluster::start`], the server also given `server_args`.
    pub fn start_with_server_args(hosts: usize, server_args: &[&str]) -> Option<ContainerCluster> {
        let server_args = server_args.iter().map(|a| a.to_string()).collect();
        Self::start_inner_with(1, hosts, |_, _| Vec::new(), false, server_args, false)
    }

    /// As [`ContainerCluster::start_with_server_args`], secure as `berth up` runs:
    /// a CA made for the cluster (`berth pki`'s layout in `<dir>/pki`), the API over
    /// HTTPS (reachable from pods) authorizing with Node and RBAC and signing
    /// ServiceAccount tokens, and agents that reach it only through the API, each
    /// with a node certificate and kubeconfig of its own. kubectl runs as the admin.
    pub fn start_secure(hosts: usize, server_args: &[&str]) -> Option<ContainerCluster> {
        let server_args = server_args.iter().map(|a| a.to_string()).collect();
        Self::start_inner_with(1, hosts, |_, _| Vec::new(), true, server_args, true)
    }

    fn start_inner(
        replicas: usize,
        hosts: usize,
        agent_args: impl FnOnce(std::net::Ipv4Addr, &Path) -> Vec<String>,
        api_for_pods: bool,
    ) -> Option<ContainerCluster> {
        Self::start_inner_with(replicas, hosts, agent_args, api_for_pods, Vec::new(), false)
    }

    fn start_inner_with(
        replicas: usize,
        hosts: usize,
        agent_args: impl FnOnce(std::net::Ipv4Addr, &Path) -> Vec<String>,
        api_for_pods: bool,
        server_args: Vec<String>,
        secure: bool,
    ) -> Option<ContainerCluster> {
        if !can_run_containers() {
            return None;
        }
        let network = HostNetwork::create(hosts).expect("test hosts");
        let gateway = network.gateway();
        let registry = Registry::start_on_or_skip(gateway.into())?;
        let mut server = Cluster::new(
            ClusterSpec::new(System::BerthServer, BERTH, replicas)
                .args(
                    [
                        "--node-monitor-grace-period=5s".to_string(),
                        format!("--cluster-cidr={}", network.pod_cidr()),
                    ]
                    .into_iter()
                    .chain(server_args),
                )
                .env("RUST_LOG", QUIET_RAFT_LOG),
        )
        .unwrap();
        let api_ports: Vec<u16> = (0..replicas).map(|_| free_port()).collect();
        let pki = secure.then(|| {
            let layout = berth_pki::layout::Layout::new(server.dir().join("pki"));
            let ca = layout.init(&[gateway.to_string()]).expect("the cluster's CA");
            (layout, ca)
        });
        // The store also listens on the gateway, where the agents reach it (unless secure).
        let mut stores = Vec::new();
        for (replica, api_port) in server.replicas.iter_mut().zip(&api_ports) {
            let client_port = replica.client_port;
            // Secure, the agents go through the API: the store stays on loopback.
            let urls = if secure {
                format!("http://127.0.0.1:{client_port}")
            } else {
                format!("http://127.0.0.1:{client_port},http://{gateway}:{client_port}")
            };
            replica.args = vec![
                format!("--listen-client-urls={urls}"),
                format!("--advertise-client-urls={urls}"),
            ];
            if api_for_pods {
                replica.args.push(format!("--api-listen=0.0.0.0:{api_port}"));
                replica.args.push(format!("--advertise-address={gateway}"));
            } else {
                replica.args.push(format!("--api-listen=127.0.0.1:{api_port}"));
            }
            if let Some((pki, _)) = &pki {
                replica.args.extend(secure_server_flags(pki));
            }
            stores.push(format!("http://{gateway}:{client_port}"));
        }
        let store = stores.join(",");
        let dir = server.dir().to_path_buf();
        let extra_args = agent_args(gateway, &dir);
        let mut agents = Vec::new();
        let mut agent_dirs = Vec::new();
        for (i, host) in network.hosts().iter().enumerate() {
            let name = format!("host-{i}");
            let data_dir = dir.join(&name);
            let access = match &pki {
                Some((pki, ca)) => {
                    let urls: Vec<String> = api_ports.iter().map(|p| format!("https://{gateway}:{p}")).collect();
                    secure_agent_flags(pki, ca, &name, host.ip, &urls.join(","))
                }
                None => vec![format!("--store={store}")],
            };
            let args = [
                "agent".to_string(),
                format!("--name={name}"),
                format!("--data-dir={}", data_dir.display()),
                format!("--listen={}:{}", host.ip, free_port()),
                format!("--advertise-address={}", host.ip),
                format!("--pod-bridge=cbr{i}"),
                format!("--cni-bin-dir={CNI_BIN_DIR}"),
                "--runtime=runc".into(),
                format!("--insecure-registry={}", registry.host()),
                "--cpu=2".into(),
                "--memory=4Gi".into(),
                "--lease-ttl=3s".into(),
                "--restart-backoff=500ms".into(),
            ]
            .into_iter()
            .chain(access)
            .chain(extra_args.iter().cloned());
            agents.push(
                host.process(&name, BERTH, args, dir.join(format!("{name}.log")))
                    .with_env("RUST_LOG", QUIET_RAFT_LOG),
            );
            agent_dirs.push(data_dir);
        }
        let admin_kubeconfig = pki.as_ref().map(|(pki, ca)| {
            let path = dir.join("admin.kubeconfig");
            let admin = pki.read("admin").expect("the admin's certificate");
            let url = format!("https://127.0.0.1:{}", api_ports[0]);
            berth_pki::kubeconfig::Kubeconfig::for_identity("berth", &url, &ca.identity.cert_pem, "admin", &admin)
                .write(&path)
                .expect("the admin's kubeconfig");
            path
        });
        let mut cluster = ContainerCluster {
            admin_kubeconfig,
            agents,
            agent_dirs,
            api_port: api_ports[0],
            api_ports,
            registry,
            server,
            network,
        };
        cluster.server.start_all().unwrap();
        for agent in &mut cluster.agents {
            agent.start().unwrap();
        }
        cluster.wait_for_nodes();
        Some(cluster)
    }

    /// Turns the helpers (and kubectl) to replica `index`'s API.
    pub fn use_api_of(&mut self, index: usize) {
        self.api_port = self.api_ports[index];
    }

    fn wait_for_nodes(&mut self) {
        let want = self.agents.len();
        eventually_blocking("every node Ready with a pod CIDR", || {
            self.check_running();
            let (status, nodes) = self.get_json("/api/v1/nodes");
            let ready = nodes["items"]
                .as_array()?
                .iter()
                .filter(|n| n["spec"]["podCIDR"].is_string())
                .filter(|n| {
                    n["status"]["conditions"]
                        .as_array()
                        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
                })
                .count();
            (status == 200 && ready == want).then_some(())
        });
    }

    /// Panics, with the logs, if the server or an agent exited.
    pub fn check_running(&mut self) {
        if let Err(exited) = self.server.check_running() {
            panic!("{exited:#}");
        }
        for agent in &mut self.agents {
            agent.assert_running();
        }
    }

    /// Pushes the busybox image, with what `extend` adds, as `repo:tag`; returns the
    /// image reference and the manifest digest the registry answered.
    pub fn push_busybox(
        &self,
        repo: &str,
        tag: &str,
        extend: impl FnOnce(ImageBuilder) -> ImageBuilder,
    ) -> (String, String) {
        let builder = busybox_image().expect("a static busybox (checked by the set-up)");
        let image = extend(builder).build().expect("the image builds");
        let digest = self.registry.push(&image, repo, tag).expect("the push");
        (self.registry.reference(repo, tag), digest)
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        let mut command = Command::new("kubectl");
        match &self.admin_kubeconfig {
            Some(kubeconfig) => command
                .arg(format!("--server=https://127.0.0.1:{}", self.api_port))
                .env("KUBECONFIG", kubeconfig),
            None => command
                .arg(format!("--server=http://127.0.0.1:{}", self.api_port))
                .env("KUBECONFIG", "/dev/null"),
        };
        command
            .args(args)
            .env("HOME", self.server.dir())
            .output()
            .expect("kubectl runs")
    }

    /// GET of `path` on the API as the admin: the status (200 or not) and the body.
    pub fn get_json(&self, path: &str) -> (u16, Value) {
        if self.admin_kubeconfig.is_none() {
            return http_get(self.api_port, path);
        }
        let out = self.kubectl(&["get", "--raw", path]);
        match serde_json::from_slice(&out.stdout) {
            Ok(body) if out.status.success() => (200, body),
            _ => (0, Value::Null),
        }
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f` of a manifest written to the cluster's dir.
    pub fn apply(&self, name: &str, manifest: &str) {
        let path = self.server.dir().join(format!("{name}.yaml"));
        std::fs::write(&path, manifest).unwrap();
        self.kubectl_ok(&["apply", "-f", &path.display().to_string()]);
    }

    /// The pod as the API has it (`Value::Null` when it does not exist).
    pub fn pod(&self, name: &str) -> Value {
        let (status, pod) = self.get_json(&format!("/api/v1/namespaces/default/pods/{name}"));
        if status == 200 { pod } else { Value::Null }
    }

    /// Polls the pod until `check` returns something ("it hangs" otherwise).
    pub fn wait_pod<T>(&mut self, name: &str, what: &str, mut check: impl FnMut(&Value) -> Option<T>) -> T {
        eventually_blocking(&format!("pod {name}: {what}"), || {
            self.check_running();
            check(&self.pod(name))
        })
    }

    /// Waits until every container of the pod runs; returns the pod.
    pub fn wait_running(&mut self, name: &str) -> Value {
        self.wait_pod(name, "Running", |pod| {
            let statuses = pod["status"]["containerStatuses"].as_array()?;
            let all_running = !statuses.is_empty() && statuses.iter().all(|s| s["state"]["running"].is_object());
            (pod["status"]["phase"] == "Running" && all_running).then(|| pod.clone())
        })
    }

    /// The status of the pod's container `container`.
    pub fn container_status(pod: &Value, container: &str) -> Value {
        pod["status"]["containerStatuses"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["name"] == container))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Waits until the container's log holds `needle`; returns the log.
    pub fn wait_log(&mut self, pod: &str, container: &str, needle: &str) -> String {
        eventually_blocking(&format!("{pod}/{container} logs {needle:?}"), || {
            self.check_running();
            let out = self.kubectl(&["logs", pod, "-c", container]);
            let log = String::from_utf8_lossy(&out.stdout).into_owned();
            log.contains(needle).then_some(log)
        })
    }

    /// Waits for an event about pod `name` whose message holds `needle`; returns the
    /// message.
    pub fn wait_event(&mut self, name: &str, needle: &str) -> String {
        eventually_blocking(&format!("an event of pod {name} saying {needle:?}"), || {
            self.check_running();
            let (_, events) = self.get_json("/api/v1/namespaces/default/events");
            events["items"]
                .as_array()?
                .iter()
                .filter(|e| e["involvedObject"]["name"] == name)
                .filter_map(|e| e["message"].as_str())
                .find(|message| message.contains(needle))
                .map(String::from)
        })
    }

    /// The agent (host index) the pod was bound to.
    pub fn host_of(pod: &Value) -> usize {
        let node = pod["spec"]["nodeName"].as_str().expect("a bound pod");
        node.strip_prefix("host-")
            .and_then(|i| i.parse().ok())
            .expect("a host-N node")
    }

    /// Deletes the pod and waits until the API no longer has it.
    pub fn delete_pod(&mut self, name: &str) {
        self.kubectl_ok(&["delete", "pod", name, "--wait=false"]);
        self.wait_pod(name, "gone", |pod| pod.is_null().then_some(()));
    }

    /// The runc root of agent `index` (the runtime's `state_dir/oci/runc`).
    pub fn runc_root(&self, index: usize) -> PathBuf {
        self.agent_dirs[index].join("oci/runc")
    }

    /// `runc state` of a container of agent `index` (`None` when runc has none).
    pub fn runc_state(&self, index: usize, id: &str) -> Option<Value> {
        let out = Command::new(system_tool("runc"))
            .arg("--root")
            .arg(self.runc_root(index))
            .args(["state", id])
            .output()
            .ok()?;
        out.status.success().then(|| serde_json::from_slice(&out.stdout).ok())?
    }

    /// The ids of agent `index`'s runc containers.
    pub fn runc_ids(&self, index: usize) -> Vec<String> {
        let out = Command::new(system_tool("runc"))
            .arg("--root")
            .arg(self.runc_root(index))
            .args(["list", "-q"])
            .output()
            .expect("runc");
        String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
    }
}

/// The mount points under `dir` in this process's mount namespace (the machine's:
/// agents enter only a network namespace).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect()
}

impl Drop for ContainerCluster {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            agent.kill();
        }
        for index in 0..self.agent_dirs.len() {
            for id in self.runc_ids(index) {
                let _ = Command::new(system_tool("runc"))
                    .arg("--root")
                    .arg(self.runc_root(index))
                    .args(["delete", "-f", &id])
                    .output();
            }
        }
        // Overlays and pod namespace files, the deepest first.
        let mut mounts = mounts_under(self.server.dir());
        mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for mount in mounts {
            let _ = rustix::mount::unmount(&mount, rustix::mount::UnmountFlags::DETACH);
        }
        // runc removed the containers' cgroups; their pods' parents are the agent's.
        for root in cgroup_roots() {
            for pod in pod_cgroups(&root, &self.pod_uids_seen()) {
                let _ = std::fs::remove_dir(pod);
            }
        }
    }
}

impl ContainerCluster {
    /// The uids of the pods this cluster's agents made bundles for (their records
    /// stay until the pod goes), for the Drop's cgroup sweep.
    fn pod_uids_seen(&self) -> Vec<String> {
        let mut uids = Vec::new();
        for dir in &self.agent_dirs {
            let records = std::fs::read_dir(dir.join("oci/containers"))
                .into_iter()
                .flatten()
                .flatten();
            for record in records {
                let text = std::fs::read_to_string(record.path()).unwrap_or_default();
                if let Ok(value) = serde_json::from_str::<Value>(&text)
                    && let Some(uid) = value["pod_uid"].as_str()
                {
                    uids.push(uid.to_string());
                }
            }
        }
        uids
    }
}

/// The secure API server's flags: HTTPS with the cluster's certificates, clients
/// by certificate (Node,RBAC follows), the agents' API with the API's client
/// certificate, ServiceAccount tokens signed and the CA published to pods.
fn secure_server_flags(pki: &berth_pki::layout::Layout) -> Vec<String> {
    let file = |name: &str, key: bool| {
        let (cert, private) = pki.pair(name);
        if key { private } else { cert }.display().to_string()
    };
    let ca = pki.ca_cert().display().to_string();
    vec![
        format!("--tls-cert-file={}", file("apiserver", false)),
        format!("--tls-private-key-file={}", file("apiserver", true)),
        format!("--client-ca-file={ca}"),
        format!("--root-ca-file={ca}"),
        format!(
            "--kubelet-client-certificate={}",
            file("apiserver-kubelet-client", false)
        ),
        format!("--kubelet-client-key={}", file("apiserver-kubelet-client", true)),
        format!("--kubelet-certificate-authority={ca}"),
        format!(
            "--service-account-signing-key-file={}",
            pki.service_account_key().0.display()
        ),
    ]
}

/// A secure agent's flags: its kubeconfig (as `system:node:<name>`, to the API at
/// `urls`) instead of the store, and its API's certificate for its address.
fn secure_agent_flags(
    pki: &berth_pki::layout::Layout,
    ca: &berth_pki::Ca,
    node: &str,
    address: std::net::Ipv4Addr,
    urls: &str,
) -> Vec<String> {
    let identity = pki
        .ensure_node(ca, node, &[address.to_string()])
        .expect("the node's certificate");
    let (cert, key) = pki.pair(&berth_pki::layout::Layout::node_name(node));
    let kubeconfig = cert.with_extension("kubeconfig");
    let user = format!("system:node:{node}");
    berth_pki::kubeconfig::Kubeconfig::for_identity("berth", urls, &ca.identity.cert_pem, &user, &identity)
        .write(&kubeconfig)
        .expect("the node's kubeconfig");
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--tls-cert-file={}", cert.display()),
        format!("--tls-private-key-file={}", key.display()),
        format!("--client-ca-file={}", pki.ca_cert().display()),
    ]
}

/// Every cgroup v1 hierarchy's `berth` parent, and the v2 one's.
pub fn cgroup_roots() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("berth"))
        .filter(|p| p.is_dir())
        .collect()
}

/// The cgroup dirs of these pods under one hierarchy's `berth` parent.
pub fn pod_cgroups(root: &Path, uids: &[String]) -> Vec<PathBuf> {
    uids.iter().map(|uid| root.join(uid)).filter(|p| p.exists()).collect()
}
