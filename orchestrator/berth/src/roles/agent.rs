//! `berth agent`: the node supervisor's command line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use berth_api::quantity::{parse_cpu_millis, parse_memory_bytes};
use berth_api::validation::is_dns_label;
use berth_node::agent::dns::ClusterDnsConfig;
use berth_node::agent::tls_listener::AgentTls;
use berth_node::agent::{self, AgentConfig, Runtimes, Workloads};
use berth_node::image::gc::GcThresholds;
use berth_node::image::{Images, ImagesConfig, NodeImages};
use berth_node::network::routes::NodeRoutes;
use berth_node::network::{CniNetwork, CniSettings};
use berth_node::proxy::{Proxier, ProxySettings};
use berth_node::runtime::{OciRuntime, ProcessRuntime, Runtime};
use berth_pki::layout::APISERVER_AGENT_CLIENT;
use berth_pki::tls::ClientAuth;
use berth_store::flags::parse_duration_ms;

#[derive(Parser, Debug)]
#[command(
    name = "berth agent",
    about = "The node supervisor: runs the pods the scheduler binds to this node"
)]
pub struct AgentFlags {
    /// The node's name (a DNS label); defaults to the host name.
    #[arg(long)]
    name: Option<String>,
    /// The control plane's store (etcd API) endpoints, comma-separated. Not used
    /// with --kubeconfig: then everything goes through the API server.
    #[arg(long, default_value = "http://127.0.0.1:2379", value_delimiter = ',')]
    pub(super) store: Vec<String>,
    /// Reach the API server as the kubeconfig's user (`system:node:<name>` in
    /// `system:nodes`, as `berth pki` issues for a node) with its server URLs
    /// (comma-separated for several), CA, and client certificate or token: the
    /// pods bound here, their status, the Node and what the pods use go through it.
    #[arg(long, value_name = "FILE")]
    pub(super) kubeconfig: Option<PathBuf>,
    /// Where the agent keeps container records and logs (default: <name>.agent).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where volumes of the `berth.io/local` provisioner live on this node, one
    /// directory per volume (default: <data-dir>/volumes).
    #[arg(long)]
    local_volume_dir: Option<PathBuf>,
    /// Where the agent serves container logs to the API server.
    #[arg(long, default_value = "127.0.0.1:10250")]
    pub(super) listen: SocketAddr,
    /// The address the API server reaches this node at (default: the --listen host).
    #[arg(long)]
    pub(super) advertise_address: Option<String>,
    /// CPU the node offers, as a quantity (`2`, `1500m`); default: the host's CPUs.
    #[arg(long)]
    cpu: Option<String>,
    /// Memory the node offers, as a quantity (`4Gi`); default: the host's memory.
    #[arg(long)]
    memory: Option<String>,
    /// Node labels, `key=value` comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(super) labels: Vec<String>,
    /// The heartbeat lease's TTL; with --kubeconfig, the duration of the node's
    /// Lease in kube-node-lease (renewed every quarter of it).
    #[arg(long, default_value = "10s")]
    pub(super) lease_ttl: String,
    /// The first back-off before restarting a crashed container (doubles up to 5m).
    #[arg(long, default_value = "10s")]
    restart_backoff: String,
    /// Stop this node's workloads when the agent stops (by default they keep running
    /// and a restarted agent adopts them).
    #[arg(long)]
    stop_pods_on_exit: bool,
    /// The runtime of pods that name no RuntimeClass: `runc` (containers from images)
    /// or `process` (commands on the host). Default: runc where this host can run
    /// it (root, the runc binary, cgroups), else process.
    #[arg(long)]
    runtime: Option<String>,
    /// A registry (`host:port`, or a host for every port) reached over HTTPS without
    /// checking its certificate, or else plain HTTP; repeatable. Registries on
    /// loopback always are.
    #[arg(long = "insecure-registry", value_name = "HOST[:PORT]")]
    insecure_registries: Vec<String>,
    /// Image garbage collection starts when the disk holding the images is used at
    /// or above this percentage (100 turns it off)...
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(u8).range(0..=100))]
    image_gc_high_threshold: u8,
    /// ...and removes unused images until usage is below this one.
    #[arg(long, default_value_t = 80, value_parser = clap::value_parser!(u8).range(0..=100))]
    image_gc_low_threshold: u8,
    /// Where the CNI plugins are (bridge, host-local, loopback, portmap); default:
    /// /usr/lib/cni, or /opt/cni/bin when only it has them.
    #[arg(long)]
    cni_bin_dir: Option<PathBuf>,
    /// The bridge the pods' veths join.
    #[arg(long, default_value = berth_node::network::DEFAULT_BRIDGE)]
    pod_bridge: String,
    /// The cluster's DNS domain: pods search `<ns>.svc.<domain>`, `svc.<domain>` and
    /// `<domain>`, and this node's DNS server answers the Services' names under it.
    #[arg(long, default_value = berth_dns::DEFAULT_CLUSTER_DOMAIN)]
    cluster_domain: String,
    /// The DNS servers pods are told (comma-separated IP addresses); default: this
    /// node's own, at its pod bridge's gateway address.
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Vec<String>,
    /// The host's resolver configuration: the DNS server forwards other names to its
    /// nameservers, and pods search its domains too.
    #[arg(long, default_value = berth_dns::resolv::DEFAULT_RESOLV_CONF)]
    resolv_conf: PathBuf,
    /// The Services' virtual IP range, as the API server's flag of the same name:
    /// traffic to it is routed to the pod bridge, so it stays on the node.
    #[arg(long, default_value = berth_node::proxy::DEFAULT_SERVICE_CIDR)]
    service_cluster_ip_range: String,
    /// The service proxy: `iptables` (kube-proxy's iptables mode) or `none` (no
    /// Service traffic through this node). Default: iptables where this host can
    /// run it (root, iptables-restore), else none.
    #[arg(long, value_parser = ["iptables", "none"])]
    proxy_mode: Option<String>,
    /// The control plane's EncryptionConfiguration (the API server's flag of the
    /// same name): without --kubeconfig the agent reads its pods' image pull
    /// secrets from the store, and needs the keys that encrypt them there.
    #[arg(long, value_name = "FILE")]
    encryption_provider_config: Option<PathBuf>,
    /// The node's certificate (PEM; `berth pki` makes one per node): the agent's
    /// API serves HTTPS. Needs --tls-private-key-file and --client-ca-file.
    #[arg(long, value_name = "FILE", requires_all = ["tls_private_key_file", "client_ca_file"])]
    tls_cert_file: Option<PathBuf>,
    /// Its private key.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// The CA whose client certificates may call the agent's API; only the API
    /// server's (CN kube-apiserver-kubelet-client) gets in.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    client_ca_file: Option<PathBuf>,
    /// How to reach an https store (`--store https://...`).
    #[command(flatten)]
    store_client: super::store_client::StoreClientFlags,
    /// Run N hollow nodes instead (as kubemark's): simulated agents that register
    /// `<--hollow-prefix>-<i>`, renew their Leases and report their pods Running
    /// without starting anything. Needs --kubeconfig, as a user that may act for
    /// every one of them; --listen serves their counters on /metrics.
    #[command(flatten)]
    pub hollow: super::hollow::HollowFlags,
    /// Log level (error, warn, info, debug).
    #[arg(long, default_value = "info")]
    log_level: String,
}

pub(super) fn duration(flag: &str, value: &str) -> Result<Duration, String> {
    let ms = parse_duration_ms(value).map_err(|e| format!("--{flag}: {e}"))?;
    if ms == 0 {
        return Err(format!("--{flag} must be more than 0"));
    }
    Ok(Duration::from_millis(ms))
}

/// The node's name: `--name`, else the host name.
fn node_name(flag: Option<String>) -> Result<String, String> {
    let name = match flag {
        Some(n) => n,
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_lowercase())
            .map_err(|e| format!("--name not given and the host name is unreadable: {e}"))?,
    };
    if !is_dns_label(&name) {
        return Err(format!(
            "--name {name:?}: a node name must be a DNS label (lower-case letters, digits and '-')"
        ));
    }
    Ok(name)
}

/// The agent's data directory when `--data-dir` is not given: `<name>.agent`.
pub fn default_data_dir(name: Option<String>) -> Result<PathBuf, String> {
    Ok(PathBuf::from(format!("{}.agent", node_name(name)?)))
}

/// The image store's settings from the agent's flags.
pub fn images_config(flags: &AgentFlags, data_dir: &std::path::Path) -> Result<ImagesConfig, String> {
    if flags.image_gc_low_threshold > flags.image_gc_high_threshold {
        return Err(format!(
            "--image-gc-low-threshold ({}) must not be above --image-gc-high-threshold ({})",
            flags.image_gc_low_threshold, flags.image_gc_high_threshold
        ));
    }
    for registry in &flags.insecure_registries {
        if registry.is_empty() || registry.contains('/') {
            return Err(format!("--insecure-registry {registry:?}: expected HOST or HOST:PORT"));
        }
    }
    let mut config = ImagesConfig::new(data_dir);
    config.insecure_registries = flags.insecure_registries.clone();
    config.gc = GcThresholds {
        high_percent: flags.image_gc_high_threshold,
        low_percent: flags.image_gc_low_threshold,
    };
    Ok(config)
}

/// `--labels`: `key=value` pairs.
pub(super) fn labels(flags: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for label in flags.iter().filter(|l| !l.is_empty()) {
        let Some((k, v)) = label.split_once('=') else {
            return Err(format!("--labels {label:?}: expected key=value"));
        };
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(labels)
}

pub fn config(flags: AgentFlags) -> Result<AgentConfig, String> {
    let tls = agent_tls(&flags)?;
    let name = node_name(flags.name)?;
    let (detected_cpu, detected_memory) = agent::detect_capacity();
    let cpu_millis = match flags.cpu {
        Some(q) => parse_cpu_millis(&q).map_err(|e| format!("--cpu {q:?}: {}", e.0))?,
        None => detected_cpu,
    };
    let memory_bytes = match flags.memory {
        Some(q) => parse_memory_bytes(&q).map_err(|e| format!("--memory {q:?}: {}", e.0))?,
        None => detected_memory,
    };
    let labels = labels(&flags.labels)?;
    for url in &flags.store {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("--store {url:?}: expected a URL such as http://127.0.0.1:2379"));
        }
    }
    let lease_ttl = duration("lease-ttl", &flags.lease_ttl)?;
    if lease_ttl < Duration::from_secs(2) {
        return Err("--lease-ttl must be at least 2s".into());
    }
    let service_cidr = (flags.service_cluster_ip_range.parse())
        .map_err(|e| format!("--service-cluster-ip-range {:?}: {e}", flags.service_cluster_ip_range))?;
    let data_dir = flags.data_dir.unwrap_or_else(|| PathBuf::from(format!("{name}.agent")));
    let local_volume_dir = flags.local_volume_dir.unwrap_or_else(|| data_dir.join("volumes"));
    let local_volume_dir = std::path::absolute(&local_volume_dir)
        .map_err(|e| format!("--local-volume-dir {}: {e}", local_volume_dir.display()))?;
    let mut cni = CniSettings::new(data_dir.join("network"));
    if let Some(dir) = flags.cni_bin_dir {
        cni.bin_dir = dir;
    }
    cni.bridge = flags.pod_bridge;
    if cni.bridge.is_empty() || cni.bridge.len() > 15 {
        return Err(format!(
            "--pod-bridge {:?}: an interface name has 1 to 15 characters",
            cni.bridge
        ));
    }
    let domain = flags.cluster_domain.trim_matches('.').to_ascii_lowercase();
    if !berth_api::validation::is_dns_subdomain(&domain) {
        return Err(format!(
            "--cluster-domain {:?}: expected a DNS name such as cluster.local",
            flags.cluster_domain
        ));
    }
    let mut cluster_dns = Vec::new();
    for server in flags.cluster_dns.iter().filter(|s| !s.is_empty()) {
        cluster_dns.push(
            server
                .parse()
                .map_err(|_| format!("--cluster-dns {server:?}: expected an IP address"))?,
        );
    }
    // The proxy's chains are named after the pod bridge, as the pods' masquerade
    // exemption is: agents sharing a host keep theirs apart. Whether it runs, and
    // whether the service CIDR is routed to the bridge, is settled in `workloads`.
    let proxy = match flags.proxy_mode.as_deref() {
        Some("none") => None,
        _ => Some(ProxySettings {
            node_name: name.clone(),
            tag: cni.bridge.clone(),
            host_netns: None,
            service_cidr,
            route_bridge: None,
        }),
    };
    let envelope = match &flags.encryption_provider_config {
        Some(path) => Some(Arc::new(
            berth_client::envelope::config::load(path).map_err(|e| format!("--encryption-provider-config {e}"))?,
        )),
        None => None,
    };
    let api = match &flags.kubeconfig {
        Some(path) => Some(api_source(path)?),
        None => None,
    };
    Ok(AgentConfig {
        tls,
        api,
        envelope,
        proxy,
        dns: ClusterDnsConfig {
            domain,
            cluster_dns,
            resolv_conf: flags.resolv_conf,
            ..ClusterDnsConfig::default()
        },
        data_dir,
        local_volume_dir,
        advertise_address: flags.advertise_address.unwrap_or_else(|| flags.listen.ip().to_string()),
        name,
        store_endpoints: flags.store,
        store_tls: flags.store_client.tls()?,
        listen: flags.listen,
        cpu_millis,
        memory_bytes,
        labels,
        lease_ttl,
        restart_backoff: duration("restart-backoff", &flags.restart_backoff)?,
        stop_pods_on_exit: flags.stop_pods_on_exit,
        cni,
        // Set where the agent's pods use the pod network (CniNetwork): see
        // NodeRoutes::for_network.
        pod_routes: None,
    })
}

/// The API servers and the credentials a kubeconfig names, read as kubectl reads it.
pub(super) fn api_source(path: &std::path::Path) -> Result<berth_client::api_source::ApiSource, String> {
    Ok(api_sources(path)?.swap_remove(0))
}

/// [`api_source`] once per server the kubeconfig names, each trying a different
/// one first (the servers in turn), so that many clients can be spread over them.
pub(super) fn api_sources(path: &std::path::Path) -> Result<Vec<berth_client::api_source::ApiSource>, String> {
    // kubectl takes a kubeconfig without a context for none at all; an agent told
    // to use one needs its server and user.
    let file = berth_pki::kubeconfig::Kubeconfig::read(path).map_err(|e| format!("--kubeconfig {e}"))?;
    if file.current_context.is_empty() {
        return Err(format!(
            "--kubeconfig {}: the kubeconfig has no current-context",
            path.display()
        ));
    }
    let sources = berth_cli::kubeconfig::Sources {
        kubeconfig_flag: Some(path),
        ..Default::default()
    };
    let connection = berth_cli::kubeconfig::connection(&sources).map_err(|e| format!("--kubeconfig: {e}"))?;
    let mut sources = Vec::new();
    for first in 0..connection.servers.len().max(1) {
        let mut servers = connection.servers.clone();
        servers.rotate_left(first);
        let mut http = berth_client::http_client::HttpClient::new(servers).with_bearer_token(connection.token.clone());
        if let Some(tls) = &connection.tls {
            http = http.with_tls(tls.clone());
        }
        sources.push(berth_client::api_source::ApiSource::new(Arc::new(http)));
    }
    Ok(sources)
}

/// The agent API's HTTPS settings from the TLS flags.
fn agent_tls(flags: &AgentFlags) -> Result<Option<AgentTls>, String> {
    let (Some(cert), Some(key), Some(ca)) = (&flags.tls_cert_file, &flags.tls_private_key_file, &flags.client_ca_file)
    else {
        return Ok(None);
    };
    let read = |path: &PathBuf, flag: &str| {
        std::fs::read_to_string(path).map_err(|e| format!("--{flag} {}: {e}", path.display()))
    };
    let identity = berth_pki::Identity {
        cert_pem: read(cert, "tls-cert-file")?,
        key_pem: read(key, "tls-private-key-file")?,
    };
    let ca = read(ca, "client-ca-file")?;
    let config = berth_pki::tls::server_config(&identity, Some(&ca), ClientAuth::Required, &[b"http/1.1"])
        .map_err(|e| format!("--tls-cert-file/--tls-private-key-file/--client-ca-file: {e}"))?;
    Ok(Some(AgentTls {
        config,
        allowed_users: vec![APISERVER_AGENT_CLIENT.to_string()],
    }))
}

pub fn run(args: &[String]) -> ExitCode {
    let flags: AgentFlags = match super::parse_flags("agent", args) {
        Ok(f) => f,
        Err(code) => return code,
    };
    super::init_logging(&flags.log_level);
    if flags.hollow.hollow.is_some() {
        return super::hollow::run(flags);
    }
    let runtime_flag = flags.runtime.clone();
    let proxy_flag = flags.proxy_mode.clone();
    let data_dir = flags.data_dir.clone();
    let images = default_data_dir(flags.name.clone())
        .map(|default| data_dir.unwrap_or(default))
        .and_then(|dir| images_config(&flags, &dir));
    let images_config = match images {
        Ok(c) => c,
        Err(e) => {
            berth_cli::err_line(format_args!("berth agent: {e}"));
            return ExitCode::from(2);
        }
    };
    let config = match config(flags) {
        Ok(c) => c,
        Err(e) => {
            berth_cli::err_line(format_args!("berth agent: {e}"));
            return ExitCode::from(2);
        }
    };
    let images: Arc<dyn Images> = match NodeImages::new(images_config) {
        Ok(images) => Arc::new(images),
        Err(e) => {
            berth_cli::err_line(format_args!("berth agent: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let mut config = config;
    let workloads = match workloads(&mut config, runtime_flag.as_deref(), images) {
        Ok(w) => w,
        Err(e) => {
            berth_cli::err_line(format_args!("berth agent: {e}"));
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = settle_proxy(&mut config, proxy_flag.as_deref()) {
        berth_cli::err_line(format_args!("berth agent: {e}"));
        return ExitCode::FAILURE;
    }
    let tokio = match super::tokio_runtime("agent") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match tokio.block_on(agent::run(config, workloads, super::wait_for_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            berth_cli::err_line(format_args!("berth agent: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Keeps the service proxy where this host can run it (an error when `--proxy-mode
/// iptables` asked for it and it cannot), and routes the service CIDR to the pod
/// bridge when pods use the pod network.
fn settle_proxy(config: &mut AgentConfig, mode: Option<&str>) -> Result<(), String> {
    if config.proxy.is_none() {
        return Ok(());
    }
    if let Err(why) = Proxier::available() {
        if mode == Some("iptables") {
            return Err(format!("--proxy-mode iptables: {why}"));
        }
        tracing::info!(%why, "no service proxy on this node");
        config.proxy = None;
        return Ok(());
    }
    let bridge = config.pod_routes.as_ref().map(|routes| routes.bridge.clone());
    if let Some(proxy) = &mut config.proxy {
        proxy.route_bridge = bridge;
    }
    Ok(())
}

/// The runtimes this host can offer, with the images and the pod network the runc
/// runtime needs; `default` (`--runtime`) picks the default handler, else runc where
/// it is available, else the process runtime. Sets `config.pod_routes` when pods use
/// the pod network.
fn workloads(config: &mut AgentConfig, default: Option<&str>, images: Arc<dyn Images>) -> Result<Workloads, String> {
    // Containers' output goes through this binary's log writer, which records when
    // each line came (`logs --timestamps`).
    let writer =
        std::env::current_exe().map_err(|e| format!("cannot find the berth binary for the log writer: {e}"))?;
    let process: Arc<dyn Runtime> = Arc::new(
        ProcessRuntime::new(config.data_dir.clone())
            .map_err(|e| e.to_string())?
            .with_log_writer(writer.clone()),
    );
    let mut runtimes = Runtimes::new(process, false);
    let mut network: Option<Arc<dyn berth_node::network::PodNetwork>> = None;
    match OciRuntime::available() {
        Ok(()) => {
            let oci: Arc<dyn Runtime> = Arc::new(
                OciRuntime::new(config.data_dir.clone())
                    .map_err(|e| e.to_string())?
                    .with_log_writer(writer),
            );
            // Without the CNI plugins only hostNetwork pods can start on runc; the
            // others wait with the kubelet's "network is not ready".
            match CniNetwork::available(&config.cni) {
                Ok(()) => {
                    let cni = CniNetwork::new(config.cni.clone());
                    config.pod_routes = Some(NodeRoutes::for_network(&config.name, &cni));
                    network = Some(Arc::new(cni));
                }
                Err(why) => tracing::warn!(%why, "no pod network: only hostNetwork pods run on runc"),
            }
            runtimes = runtimes.with(oci, true);
            runtimes.set_default("runc")?;
        }
        Err(why) => tracing::info!(%why, "the runc runtime is not offered"),
    }
    if let Some(handler) = default {
        runtimes.set_default(handler).map_err(|e| format!("--runtime: {e}"))?;
    }
    Ok(Workloads {
        runtimes,
        images: Some(images),
        network,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> AgentFlags {
        AgentFlags::try_parse_from(["berth agent", "--name", "n1"].iter().chain(args)).unwrap()
    }

    #[test]
    fn image_flags_reach_the_image_config() {
        let f = flags(&[
            "--insecure-registry",
            "registry.lan:5000",
            "--insecure-registry=mirror.lan",
            "--image-gc-high-threshold",
            "90",
            "--image-gc-low-threshold",
            "70",
        ]);
        let config = images_config(&f, std::path::Path::new("n1.agent")).unwrap();
        assert_eq!(config.insecure_registries, ["registry.lan:5000", "mirror.lan"]);
        assert_eq!(
            config.gc,
            GcThresholds {
                high_percent: 90,
                low_percent: 70
            }
        );
        assert_eq!(config.root, PathBuf::from("n1.agent/images"));

        let inverted = flags(&["--image-gc-high-threshold", "50", "--image-gc-low-threshold", "60"]);
        assert!(
            images_config(&inverted, std::path::Path::new("d"))
                .unwrap_err()
                .contains("must not be above")
        );
        let url = flags(&["--insecure-registry", "http://registry.lan/"]);
        assert!(
            images_config(&url, std::path::Path::new("d"))
                .unwrap_err()
                .contains("HOST:PORT")
        );
        assert!(AgentFlags::try_parse_from(["berth agent", "--image-gc-high-threshold", "101"]).is_err());
    }

    fn parse(args: &[&str]) -> Result<AgentConfig, String> {
        let args: Vec<String> = ["--name", "n1"].iter().chain(args).map(|a| a.to_string()).collect();
        config(AgentFlags::try_parse_from(std::iter::once("berth agent".to_string()).chain(args)).unwrap())
    }

    #[test]
    fn a_kubeconfig_sends_the_agent_through_the_api_server_and_one_without_a_context_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ca = berth_pki::Ca::create("test-ca").unwrap();
        let node = ca
            .issue(&berth_pki::Profile::client("system:node:n1", &["system:nodes"]))
            .unwrap();
        let file = dir.path().join("n1.kubeconfig");
        berth_pki::kubeconfig::Kubeconfig::for_identity(
            "berth",
            "https://127.0.0.1:6443",
            &ca.identity.cert_pem,
            "system:node:n1",
            &node,
        )
        .write(&file)
        .unwrap();
        let flag = format!("--kubeconfig={}", file.display());
        assert!(parse(&[&flag]).unwrap().api.is_some());
        assert!(parse(&[]).unwrap().api.is_none(), "the store alone by default");

        let empty = dir.path().join("empty.kubeconfig");
        std::fs::write(&empty, "apiVersion: v1\nkind: Config\n").unwrap();
        let error = parse(&[&format!("--kubeconfig={}", empty.display())]).unwrap_err();
        assert!(
            error.contains("--kubeconfig") && error.contains("current-context"),
            "{error}"
        );
        let missing = dir.path().join("missing.kubeconfig");
        let error = parse(&[&format!("--kubeconfig={}", missing.display())]).unwrap_err();
        assert!(error.starts_with("--kubeconfig"), "{error}");
    }

    #[test]
    fn the_pod_network_takes_the_cni_dir_and_bridge_and_lives_under_the_data_dir() {
        let defaults = parse(&["--data-dir", "/var/lib/berth"]).unwrap();
        assert_eq!(defaults.cni.bridge, "berth0");
        assert_eq!(defaults.cni.bin_dir, berth_node::network::default_bin_dir());
        assert_eq!(defaults.cni.state_dir, PathBuf::from("/var/lib/berth/network"));
        assert!(defaults.cni.host_netns.is_none() && defaults.pod_routes.is_none());
        let proxy = defaults.proxy.expect("a proxy unless --proxy-mode none");
        assert_eq!(proxy.tag, "berth0", "its chains are named after the pod bridge");
        assert_eq!(proxy.service_cidr.to_string(), "10.96.0.0/12");
        assert!(
            proxy.route_bridge.is_none(),
            "routed only once the pod network is known"
        );
        let given = parse(&["--cni-bin-dir", "/opt/cni/bin", "--pod-bridge=cbr0"]).unwrap();
        assert_eq!(given.cni.bin_dir, PathBuf::from("/opt/cni/bin"));
        assert_eq!(given.cni.bridge, "cbr0");
        assert_eq!(given.proxy.unwrap().tag, "cbr0");
        let none = parse(&["--proxy-mode=none", "--service-cluster-ip-range=10.100.0.0/16"]).unwrap();
        assert!(none.proxy.is_none());
        let error = parse(&["--service-cluster-ip-range", "10.96.0.0"]).unwrap_err();
        assert!(error.contains("--service-cluster-ip-range"), "{error}");
        let error = parse(&["--pod-bridge", "a-bridge-name-too-long"]).unwrap_err();
        assert!(error.contains("--pod-bridge"), "{error}");
    }

    #[test]
    fn dns_flags_reach_the_agent_config() {
        let defaults = parse(&[]).unwrap();
        assert_eq!(defaults.dns, ClusterDnsConfig::default());
        assert_eq!(defaults.dns.domain, "cluster.local");
        let given = parse(&[
            "--cluster-domain=Corp.Example.",
            "--cluster-dns",
            "10.96.0.10,10.96.0.11",
            "--resolv-conf",
            "/run/systemd/resolve/resolv.conf",
        ])
        .unwrap();
        assert_eq!(given.dns.domain, "corp.example");
        assert_eq!(given.dns.cluster_dns.len(), 2);
        assert_eq!(given.dns.resolv_conf, PathBuf::from("/run/systemd/resolve/resolv.conf"));
        assert!(
            parse(&["--cluster-dns", "dns.example"])
                .unwrap_err()
                .contains("--cluster-dns")
        );
        assert!(
            parse(&["--cluster-domain", "bad_domain"])
                .unwrap_err()
                .contains("--cluster-domain")
        );
    }
}
