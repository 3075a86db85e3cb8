//! `berth up`: a whole cluster on this machine for trying berth out: control-plane
//! replicas and agents as child processes of this one, their data and logs under one
//! folder, stopped cleanly (workloads included) on Ctrl-C. Once the cluster is up, a
//! child that dies is restarted with a back-off and berth up says so (supervise.rs).
//!
//! Where the host can run containers (root, runc, the CNI plugins), the agents run
//! pods in them, each agent with its own pod bridge, and `examples/web.yaml`'s image is
//! built here from the host's static busybox and served by a local `docker-registry`
//! (also a child, stopped with the rest) or imported into each agent's store
//! (example_image.rs). Elsewhere pods run as host processes, and berth up says why.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Parser;

use berth_client::http_client::HttpClient;
use berth_pki::kubeconfig::Kubeconfig;
use berth_pki::layout::{ADMIN_USER, Layout};

use super::example_image::{self, BuiltImage, ContainerSupport};
use super::store_client::StoreClientFlags;
use super::supervise::{self, Process};

#[derive(Parser, Debug)]
#[command(
    name = "berth up",
    about = "Start a local berth cluster: control-plane replicas and agents on this machine"
)]
pub struct UpFlags {
    /// Where the cluster keeps its data and logs.
    #[arg(long, default_value = "berth-local")]
    dir: PathBuf,
    /// Control-plane replicas (1, 3 or 5).
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// Worker nodes.
    #[arg(long, default_value_t = 2)]
    agents: usize,
    /// CPU each agent offers (default: the host's).
    #[arg(long)]
    agent_cpu: Option<String>,
    /// Memory each agent offers (default: the host's).
    #[arg(long)]
    agent_memory: Option<String>,
    /// How long a node stays without its heartbeat (not ready) before its pods move.
    #[arg(long, default_value = "10s")]
    node_monitor_grace_period: String,
    /// The API servers' authorizers, in order: AlwaysAllow, Node, RBAC.
    #[arg(long, default_value = "Node,RBAC")]
    authorization_mode: String,
    /// New namespaces accept traffic only from their own pods (the label
    /// berth.io/isolation: namespace; `none` opts one out); false leaves them open.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    isolate_namespaces: bool,
}

/// The EncryptionConfiguration berth up makes in its folder, with the key of
/// Secrets' encryption at rest.
pub const ENCRYPTION_CONFIG: &str = "encryption-config.yaml";

/// The ports of replica `i`: etcd's local-cluster convention (2379, 22379, 32379, …)
/// for the store, and 8080 + i for the API server.
pub fn server_ports(i: usize) -> (u16, u16, u16) {
    let client = if i == 0 { 2379 } else { 2379 + 10_000 * (i as u16 + 1) };
    (client, client + 1, 8080 + i as u16)
}

pub fn run(args: &[String]) -> ExitCode {
    let flags: UpFlags = match super::parse_flags("up", args) {
        Ok(f) => f,
        Err(code) => return code,
    };
    if ![1, 3, 5].contains(&flags.servers) {
        berth_cli::err_line(format_args!("berth up: --servers {}: must be 1, 3 or 5", flags.servers));
        return ExitCode::from(2);
    }
    if flags.agents == 0 || flags.agents > 50 {
        berth_cli::err_line(format_args!(
            "berth up: --agents {}: must be between 1 and 50",
            flags.agents
        ));
        return ExitCode::from(2);
    }
    let runtime = match super::tokio_runtime("up") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    runtime.block_on(up(flags))
}

fn spawn(name: &str, args: Vec<String>, log: &Path) -> Result<Process, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the berth executable: {e}"))?;
    Process::spawn(name, &exe, args, log)
}

async fn up(flags: UpFlags) -> ExitCode {
    let dir = &flags.dir;
    let logs = dir.join("logs");
    if let Err(e) = std::fs::create_dir_all(&logs) {
        berth_cli::err_line(format_args!("berth up: cannot create {}: {e}", logs.display()));
        return ExitCode::FAILURE;
    }
    let members: Vec<(String, u16, u16, u16)> = (0..flags.servers)
        .map(|i| {
            let (client, peer, api) = server_ports(i);
            (format!("server-{i}"), client, peer, api)
        })
        .collect();
    let initial_cluster = members
        .iter()
        .map(|(name, _, peer, _)| format!("{name}=https://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let store_urls: Vec<String> = members
        .iter()
        .map(|(_, client, ..)| format!("https://127.0.0.1:{client}"))
        .collect();
    let api_urls: Vec<String> = members
        .iter()
        .map(|(.., api)| format!("https://127.0.0.1:{api}"))
        .collect();

    // The cluster's CA and certificates (made once, kept beside its data), and the
    // admin's kubeconfig that kubectl and berth's CLI read.
    let security = match Security::make(dir, &api_urls[0]) {
        Ok(security) => security,
        Err(e) => {
            berth_cli::err_line(format_args!("berth up: {e}"));
            return ExitCode::FAILURE;
        }
    };

    // Secrets are encrypted at rest with a key made for this cluster, kept beside
    // its data (0600), outside the store; every replica and agent reads it.
    let encryption = dir.join(ENCRYPTION_CONFIG);
    match berth_client::envelope::config::generate_unless_present(&encryption, "berth-1") {
        Ok(true) => println!(
            "berth up: Secrets are encrypted at rest with a new key in {}",
            encryption.display()
        ),
        Ok(false) => {}
        Err(e) => {
            berth_cli::err_line(format_args!("berth up: cannot write the encryption key: {e}"));
            return ExitCode::FAILURE;
        }
    }
    let encryption_flag = format!("--encryption-provider-config={}", encryption.display());
    let support = ContainerSupport::detect();
    let mut processes = Vec::new();
    remove_pod_bridges(matches!(support, ContainerSupport::Containers { .. }), flags.agents);
    let mut ok = true;
    let example = match &support {
        ContainerSupport::Containers { busybox } => match example_image::build(busybox, dir) {
            Ok(built) => Some(built),
            Err(e) => {
                berth_cli::err_line(format_args!("berth up: {e}"));
                return ExitCode::FAILURE;
            }
        },
        ContainerSupport::Processes { why } => {
            println!(
                "berth up: pods will run as host processes (the process runtime), not in containers: {why}.\n\
                 \x20         Their `image` is not pulled; run examples/web-process.yaml. See README.md for what containers need."
            );
            None
        }
    };
    // Through the registry when berth up can run one, else imported into each agent.
    let mut is_imported = false;
    if let Some(built) = &example {
        match example_image::registry_binary() {
            Ok(binary) => {
                ok &= match example_image::registry_config(dir)
                    .and_then(|args| Process::spawn("registry", &binary, args, &logs.join("registry.log")))
                {
                    Ok(p) => {
                        processes.push(p);
                        push(built).await
                    }
                    Err(e) => {
                        berth_cli::err_line(format_args!("berth up: {e}"));
                        false
                    }
                };
            }
            Err(why) => {
                println!("berth up: no local registry ({why}); importing the example image into each agent's store");
                is_imported = true;
            }
        }
    }
    let mut start = |name: &str, args: Vec<String>| -> bool {
        match spawn(name, args, &logs.join(format!("{name}.log"))) {
            Ok(p) => {
                processes.push(p);
                true
            }
            Err(e) => {
                berth_cli::err_line(format_args!("berth up: {e}"));
                false
            }
        }
    };
    for (name, client, peer, api) in &members {
        let client_url = format!("https://127.0.0.1:{client}");
        let peer_url = format!("https://127.0.0.1:{peer}");
        ok &= start(
            name,
            vec![
                "server".into(),
                format!("--name={name}"),
                format!("--data-dir={}", dir.join(name).display()),
                format!("--listen-client-urls={client_url}"),
                format!("--advertise-client-urls={client_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster={initial_cluster}"),
                // The etcd port takes only certificates of the cluster CA, and the
                // members authenticate each other.
                format!("--cert-file={}", security.pki.pair("store/server").0.display()),
                format!("--key-file={}", security.pki.pair("store/server").1.display()),
                format!("--trusted-ca-file={}", security.pki.ca_cert().display()),
                "--client-cert-auth".into(),
                format!("--peer-cert-file={}", security.pki.pair("store/peer").0.display()),
                format!("--peer-key-file={}", security.pki.pair("store/peer").1.display()),
                format!("--peer-trusted-ca-file={}", security.pki.ca_cert().display()),
                "--peer-client-cert-auth".into(),
                format!("--api-listen=127.0.0.1:{api}"),
                format!("--node-monitor-grace-period={}", flags.node_monitor_grace_period),
                format!("--authorization-mode={}", flags.authorization_mode),
                format!("--isolate-namespaces={}", flags.isolate_namespaces),
                encryption_flag.clone(),
                format!("--tls-cert-file={}", security.pki.pair("apiserver").0.display()),
                format!("--tls-private-key-file={}", security.pki.pair("apiserver").1.display()),
                format!("--client-ca-file={}", security.pki.ca_cert().display()),
                format!(
                    "--kubelet-client-certificate={}",
                    security.pki.pair("apiserver-kubelet-client").0.display()
                ),
                format!(
                    "--kubelet-client-key={}",
                    security.pki.pair("apiserver-kubelet-client").1.display()
                ),
                format!("--kubelet-certificate-authority={}", security.pki.ca_cert().display()),
                format!(
                    "--service-account-signing-key-file={}",
                    security.pki.service_account_key().0.display()
                ),
                format!(
                    "--service-account-key-file={}",
                    security.pki.service_account_key().1.display()
                ),
            ]
            .into_iter()
            .chain(security.store_client.to_args())
            .collect(),
        );
    }
    for j in 0..flags.agents {
        let name = format!("node-{j}");
        let mut args = vec![
            "agent".into(),
            format!("--name={name}"),
            format!("--data-dir={}", dir.join(&name).display()),
            format!("--listen=127.0.0.1:{}", 10250 + j),
            "--stop-pods-on-exit".into(),
        ];
        // The agent reaches the cluster through the API servers only, as
        // system:node:<name> (the Node authorizer limits it to its own pods); it holds
        // neither the store's client certificate nor the Secrets' key. Its own API
        // takes only the API servers' client certificate.
        match security.node_certificate(&name, &api_urls) {
            Ok((cert, key, kubeconfig)) => args.extend([
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--tls-cert-file={}", cert.display()),
                format!("--tls-private-key-file={}", key.display()),
                format!("--client-ca-file={}", security.pki.ca_cert().display()),
            ]),
            Err(e) => {
                berth_cli::err_line(format_args!("berth up: {e}"));
                ok = false;
            }
        }
        if let Some(cpu) = &flags.agent_cpu {
            args.push(format!("--cpu={cpu}"));
        }
        if let Some(memory) = &flags.agent_memory {
            args.push(format!("--memory={memory}"));
        }
        if example.is_some() {
            // The agents share the host: each joins its pods to a bridge of its own.
            args.push(format!("--pod-bridge={}", pod_bridge(j)));
        }
        if let Some(built) = example.as_ref().filter(|_| is_imported)
            && let Err(e) = example_image::import_into(&dir.join(&name), built)
        {
            berth_cli::err_line(format_args!("berth up: {e}"));
            ok = false;
        }
        ok &= start(&name, args);
    }
    if ok {
        println!(
            "berth up: starting {} control-plane replicas and {} agents (data and logs in {})",
            flags.servers,
            flags.agents,
            dir.display()
        );
        let client = HttpClient::new(api_urls.clone()).with_tls(security.admin_tls.clone());
        tokio::select! {
            ready = wait_ready(&client, flags.agents) => if ready {
                print_usage(&api_urls, &store_urls, &security, dir, example.as_ref());
            } else {
                berth_cli::err_line(format_args!("berth up: the cluster is not ready after 60 s; see the logs in {}", logs.display()));
                ok = false;
            },
            name = supervise::first_exit(&mut processes) => {
                berth_cli::err_line(format_args!("berth up: {name} exited while starting; see {}", logs.join(format!("{name}.log")).display()));
                ok = false;
            }
            () = super::wait_for_signal() => {
                supervise::stop(&mut processes).await;
                remove_pod_bridges(example.is_some(), flags.agents);
                return ExitCode::SUCCESS;
            }
        }
        if ok {
            // From here a child that dies is restarted (supervise.rs) until Ctrl-C.
            tokio::select! {
                () = super::wait_for_signal() => {}
                () = supervise::supervise(&mut processes) => {}
            }
        }
    }
    println!("berth up: stopping");
    supervise::stop(&mut processes).await;
    remove_pod_bridges(example.is_some(), flags.agents);
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

async fn wait_ready(client: &HttpClient, agents: usize) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if let Ok(r) = client.request("GET", "/api/v1/nodes", None).await
            && r.status == 200
            && let Ok(list) = serde_json::from_slice::<serde_json::Value>(&r.body)
            && list["items"]
                .as_array()
                .is_some_and(|items| items.iter().filter(|n| is_ready(n)).count() >= agents)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

fn is_ready(node: &serde_json::Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Waits for the registry child, then pushes the example image to it, off the async
/// runtime (the push is blocking I/O).
async fn push(built: &BuiltImage) -> bool {
    let image = built.clone();
    match tokio::task::spawn_blocking(move || example_image::push_when_serving(&image)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            berth_cli::err_line(format_args!("berth up: {e}"));
            false
        }
        Err(e) => {
            berth_cli::err_line(format_args!("berth up: pushing the example image: {e}"));
            false
        }
    }
}

/// What berth up makes for TLS and authentication.
struct Security {
    pki: Layout,
    ca: berth_pki::Ca,
    /// The admin's kubeconfig.
    kubeconfig: PathBuf,
    /// berth up's own client of the API servers: the admin.
    admin_tls: std::sync::Arc<rustls::ClientConfig>,
    /// The control plane's client of the etcd port.
    store_client: StoreClientFlags,
}

impl Security {
    fn make(dir: &Path, api_url: &str) -> Result<Security, String> {
        let pki = Layout::new(dir.join("pki"));
        let ca = pki.init(&[]).map_err(|e| format!("the cluster's certificates: {e}"))?;
        let admin = pki.read("admin").map_err(|e| e.to_string())?;
        let kubeconfig = std::path::absolute(dir.join("kubeconfig")).map_err(|e| format!("{}: {e}", dir.display()))?;
        Kubeconfig::for_identity("berth", api_url, &ca.identity.cert_pem, ADMIN_USER, &admin)
            .write(&kubeconfig)
            .map_err(|e| format!("the admin's kubeconfig: {e}"))?;
        let admin_tls = berth_pki::tls::client_config(&ca.identity.cert_pem, Some(&admin), &[b"http/1.1"])
            .map_err(|e| e.to_string())?;
        let store_client = StoreClientFlags {
            cafile: Some(pki.ca_cert()),
            certfile: Some(pki.pair("store/client").0),
            keyfile: Some(pki.pair("store/client").1),
        };
        Ok(Security {
            pki,
            ca,
            kubeconfig,
            admin_tls,
            store_client,
        })
    }

    /// The certificate and key files of agent `node` (made once), valid for the
    /// loopback address the agents of berth up listen on, and its kubeconfig for the
    /// API servers at `api_urls` (the agent fails over across them).
    fn node_certificate(&self, node: &str, api_urls: &[String]) -> Result<(PathBuf, PathBuf, PathBuf), String> {
        let identity = self
            .pki
            .ensure_node(&self.ca, node, &[])
            .map_err(|e| format!("the certificate of {node}: {e}"))?;
        let name = Layout::node_name(node);
        let (cert, key) = self.pki.pair(&name);
        let kubeconfig = cert.with_extension("kubeconfig");
        let user = format!("system:node:{node}");
        Kubeconfig::for_identity(
            "berth",
            &api_urls.join(","),
            &self.ca.identity.cert_pem,
            &user,
            &identity,
        )
        .write(&kubeconfig)
        .map_err(|e| format!("the kubeconfig of {node}: {e}"))?;
        Ok((cert, key, kubeconfig))
    }
}

fn print_usage(
    api_urls: &[String],
    store_urls: &[String],
    security: &Security,
    dir: &Path,
    example: Option<&BuiltImage>,
) {
    let (manifest, reach) = match example {
        Some(built) => (
            "examples/web.yaml",
            format!(
                "\nThe example's image is {} (busybox {}, also in {}).\n\
                 Pods run in containers; their IPs are reachable from this host:\n  \
                 berth get pods -o wide\n  \
                 wget -qO- http://<pod IP>:8080/\n  \
                 kubectl port-forward pod/<pod> 18080:8080   # then http://127.0.0.1:18080/\n",
                example_image::example_image(),
                built.version_tag,
                built.layout.display(),
            ),
        ),
        None => ("examples/web-process.yaml", String::new()),
    };
    println!(
        "\nberth is up.\n\n  API servers:  {}\n  store (etcd): {}\n  kubeconfig:   {} (the admin; kubectl and berth read it)\n\nTry:\n  export KUBECONFIG={}\n  berth apply -f {manifest}\n  berth get pods -o wide\n  berth logs <pod>\n  etcdctl --endpoints {} --cacert {} --cert {} --key {} get /registry --prefix --keys-only\n{reach}\nLogs are in {}. Press Ctrl-C to stop everything.",
        api_urls.join(","),
        store_urls.join(","),
        security.kubeconfig.display(),
        security.kubeconfig.display(),
        store_urls.join(","),
        security.pki.ca_cert().display(),
        security.pki.pair("store/client").0.display(),
        security.pki.pair("store/client").1.display(),
        dir.join("logs").display()
    );
}

/// The bridge of agent `j`'s pods: the agents share this host, so each has its own.
fn pod_bridge(j: usize) -> String {
    format!("berth{j}")
}

/// Removes the agents' pod bridges once no pod is attached to them. The CNI bridge
/// plugin leaves a bridge behind with its gateway address, and the next `berth up`
/// may give that agent another block of the cluster CIDR, which the plugin then
/// refuses ("already has an IP address different from ..."): so they go when the
/// agents stop, and a crash's leftovers go at the next start. A bridge with ports is
/// in use (by pods someone else runs) and stays.
fn remove_pod_bridges(has_bridges: bool, agents: usize) {
    if !has_bridges {
        return;
    }
    for j in 0..agents {
        let bridge = pod_bridge(j);
        let sys = Path::new("/sys/class/net").join(&bridge);
        if !sys.join("bridge").is_dir() {
            continue;
        }
        let ports = std::fs::read_dir(sys.join("brif")).map_or(0, |ports| ports.count());
        if ports > 0 {
            berth_cli::err_line(format_args!(
                "berth up: the pod bridge {bridge} still has {ports} ports attached; leaving it"
            ));
            continue;
        }
        match Command::new("ip").args(["link", "del", &bridge]).status() {
            Ok(status) if status.success() => {}
            Ok(status) => berth_cli::err_line(format_args!("berth up: ip link del {bridge}: {status}")),
            Err(e) => berth_cli::err_line(format_args!("berth up: ip link del {bridge}: {e}")),
        }
    }
}
