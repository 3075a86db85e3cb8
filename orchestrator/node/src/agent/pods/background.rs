//! The supervisor's work that may take long, run off the pass: image pulls (async),
//! sandbox setups and teardowns (blocking: the CNI plugins run as processes), and
//! stops (a grace period can be long). Pulls and setups report back as
//! [`Completion`]s, which the next pass hands to the memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::container_spec::pod_hostname;
use super::dns_config::{SandboxDns, pod_resolv_conf};
use super::sandbox::{Sandbox, etc_hosts, host_network_etc_hosts, is_host_network, network_spec};
use crate::agent::cluster::Cluster;
use crate::image::pull_secrets::credentials_from_secret;
use crate::image::{Images, PullError, PullPolicy, PulledImage, RegistryCredentials};
use crate::namespaces::{self, Kind};
use crate::network::PodNetwork;
use crate::runtime::{Runtime, SandboxSpec};
use berth_api::kinds::secret::SECRET;
use berth_api::meta::MetaExt;
use berth_api::objects::Pod;

/// The outcome of background work, for the memory.
#[derive(Debug)]
pub(crate) enum Completion {
    Pulled {
        pod_uid: String,
        container: String,
        image: String,
        result: Result<PulledImage, PullError>,
        took: Duration,
        /// Pull secrets that could not be read (the pull went on without them).
        missing_secrets: Vec<String>,
    },
    SandboxSetUp {
        pod_uid: String,
        result: Result<Sandbox, String>,
    },
    /// A deleted pod's containers stopped and its sandbox is gone.
    Stopped { pod_uid: String },
    /// The postStart hook of the run `id` finished.
    PostStarted {
        pod_uid: String,
        container: String,
        id: String,
        result: Result<(), String>,
    },
}

/// Where `imagePullSecrets` are read: the cluster's Secrets.
pub(crate) trait SecretSource: Send + Sync + 'static {
    /// The Secret `namespace/name` as stored (JSON), None when there is none.
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Option<serde_json::Value>, String>> + Send + 'a>>;
}

/// Secrets under the key Kubernetes' storage layout gives them
/// (`/registry/secrets/<namespace>/<name>`), from the store or the API server.
impl SecretSource for Cluster {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<Option<serde_json::Value>, String>> + Send + 'a>> {
        Box::pin(async move {
            let record = Cluster::get(self, &SECRET.key(namespace, name))
                .await
                .map_err(|e| e.to_string())?;
            record
                .map(|r| match berth_client::envelope::unreadable(&r.key, &r.value) {
                    Some(message) => Err(message),
                    None => serde_json::from_slice(&r.value).map_err(|e| format!("secret {namespace}/{name}: {e}")),
                })
                .transpose()
        })
    }
}

/// The credentials of a pod's pull secrets, and the secrets that could not be used
/// (missing, unreadable or of another type: the kubelet warns and pulls without).
pub(crate) async fn pull_credentials(
    secrets: Option<&dyn SecretSource>,
    namespace: &str,
    names: &[String],
) -> (Vec<RegistryCredentials>, Vec<String>) {
    let mut credentials = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        let found = match secrets {
            Some(source) => source.get(namespace, name).await,
            None => Ok(None),
        };
        match found.and_then(|s| s.ok_or_else(|| format!("secret {name:?} not found"))) {
            Ok(secret) => match credentials_from_secret(&secret) {
                Ok(found) => credentials.extend(found),
                Err(e) => {
                    tracing::warn!(%namespace, secret = %name, error = %e, "cannot use an image pull secret");
                    missing.push(format!("{namespace}/{name}"));
                }
            },
            Err(e) => {
                tracing::warn!(%namespace, secret = %name, error = %e, "cannot read an image pull secret");
                missing.push(format!("{namespace}/{name}"));
            }
        }
    }
    (credentials, missing)
}

/// What a pull needs, handed to its task.
pub(crate) struct PullJob {
    pub(crate) images: Arc<dyn Images>,
    pub(crate) secrets: Option<Arc<dyn SecretSource>>,
    pub(crate) namespace: String,
    pub(crate) pod_uid: String,
    pub(crate) container: String,
    pub(crate) image: String,
    pub(crate) policy: PullPolicy,
    pub(crate) secret_names: Vec<String>,
}

impl PullJob {
    pub(crate) async fn run(self) -> Completion {
        let (credentials, missing_secrets) =
            pull_credentials(self.secrets.as_deref(), &self.namespace, &self.secret_names).await;
        let started = Instant::now();
        let result = self.images.ensure(&self.image, self.policy, &credentials).await;
        Completion::Pulled {
            pod_uid: self.pod_uid,
            container: self.container,
            image: self.image,
            result,
            took: started.elapsed(),
            missing_secrets,
        }
    }
}

/// Where a pod's /etc files live: `<dir>/<pod uid>/`.
pub(crate) fn pod_dir(dir: &Path, pod_uid: &str) -> PathBuf {
    dir.join(pod_uid)
}

/// The pods with a sandbox directory under `dir`, found at adoption: those of pods
/// gone while the agent was away are torn down (their namespaces unmounted).
pub(crate) fn sandbox_dirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// The pod's IPC and UTS namespace files, in its sandbox directory.
pub(crate) fn namespace_paths(dir: &Path, pod_uid: &str) -> [(Kind, PathBuf); 2] {
    let files = pod_dir(dir, pod_uid);
    [(Kind::Ipc, files.join("ipc")), (Kind::Uts, files.join("uts"))]
}

/// The pod's /dev/shm, which all its containers bind: a tmpfs of its own in its
/// sandbox directory, as containerd's sandbox has (the containers share the pod's IPC
/// namespace, and so its shared memory, POSIX and System V alike).
pub(crate) fn shm_path(dir: &Path, pod_uid: &str) -> PathBuf {
    pod_dir(dir, pod_uid).join("shm")
}

/// Mounts a tmpfs at `path` as Kubernetes' runtimes make /dev/shm (64 MiB), unless one
/// is there already (a restarted agent's pod keeps its shared memory).
fn mount_shm(path: &Path) -> std::io::Result<()> {
    use rustix::mount::{MountFlags, mount};

    std::fs::create_dir_all(path)?;
    let device = |p: &Path| std::fs::metadata(p).map(|m| std::os::unix::fs::MetadataExt::dev(&m));
    if device(path)? != device(path.parent().unwrap_or(path))? {
        return Ok(());
    }
    mount(
        "shm",
        path,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        c"mode=1777,size=65536k",
    )?;
    Ok(())
}

/// Blocking: sets up the pod's network (unless host networking) and writes its /etc
/// files under `dir`; with `namespaces`, makes the IPC and UTS namespaces and the
/// /dev/shm all the pod's containers join (a host-network pod has the host's UTS
/// namespace, as in Kubernetes).
/// `node` is the node's name, a host-network pod's hostname; `dns` what its
/// resolv.conf is made from.
pub(crate) fn set_up_sandbox(
    network: Option<&dyn PodNetwork>,
    dir: &Path,
    pod: &Pod,
    node: &str,
    namespaces: bool,
    dns: &SandboxDns,
) -> Result<Sandbox, String> {
    let host_network = is_host_network(pod);
    let (netns, pod_ip) = if host_network {
        (None, None)
    } else {
        let network = network.ok_or(
            "network is not ready: container runtime network not ready: NetworkReady=false \
             reason:NetworkPluginNotReady message:this node has no pod network (CNI plugins)",
        )?;
        let status = network.setup(&network_spec(pod)).map_err(|e| e.to_string())?;
        (Some(status.netns), Some(status.ip))
    };
    let hostname = if host_network { node } else { pod_hostname(pod) };
    let files = pod_dir(dir, pod.metadata.uid());
    let write = |name: &str, content: String| {
        let path = files.join(name);
        std::fs::write(&path, content).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok::<_, String>(path)
    };
    std::fs::create_dir_all(&files).map_err(|e| format!("cannot create {}: {e}", files.display()))?;
    // With a subdomain, the name a headless Service of that name gives the pod.
    let fqdn = pod
        .spec
        .subdomain
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|subdomain| {
            let namespace = pod.metadata.namespace();
            format!("{hostname}.{subdomain}.{namespace}.svc.{}", dns.cluster.domain)
        });
    let hosts = match pod_ip {
        Some(ip) => etc_hosts(ip, hostname, fqdn.as_deref()),
        None => host_network_etc_hosts(&std::fs::read_to_string("/etc/hosts").unwrap_or_default()),
    };
    let resolv = pod_resolv_conf(pod, &dns.cluster, &dns.host).render();
    let (ipc, uts, shm) = if namespaces {
        let [(ipc_kind, ipc), (uts_kind, uts)] = namespace_paths(dir, pod.metadata.uid());
        // Host networking goes with the host's UTS namespace (its hostname), as in
        // Kubernetes; the IPC namespace is the pod's either way.
        let uts = (!host_network).then_some(uts);
        let mut wanted = vec![(ipc_kind, ipc.as_path())];
        wanted.extend(uts.as_deref().map(|uts| (uts_kind, uts)));
        namespaces::create(&wanted).map_err(|e| format!("cannot create the pod's namespaces: {e}"))?;
        let shm = shm_path(dir, pod.metadata.uid());
        mount_shm(&shm).map_err(|e| format!("cannot mount the pod's /dev/shm at {}: {e}", shm.display()))?;
        (Some(ipc), uts, Some(shm))
    } else {
        (None, None, None)
    };
    let spec = SandboxSpec {
        netns,
        ipc,
        uts,
        shm,
        hostname: hostname.to_string(),
        etc_hosts: Some(write("hosts", hosts)?),
        resolv_conf: Some(write("resolv.conf", resolv)?),
        etc_hostname: Some(write("hostname", format!("{hostname}\n"))?),
    };
    Ok(Sandbox { pod_ip, spec })
}

/// Blocking: removes what [`set_up_sandbox`] made for the pod; Ok for a pod without.
pub(crate) fn tear_down_sandbox(network: Option<&dyn PodNetwork>, dir: &Path, pod_uid: &str) {
    if let Some(network) = network
        && let Err(e) = network.teardown(pod_uid)
    {
        tracing::warn!(pod_uid, error = %e, "cannot tear down a pod's network");
    }
    // Unmounted first: a mount point cannot be removed.
    for (_, path) in namespace_paths(dir, pod_uid) {
        if let Err(e) = namespaces::remove(&path) {
            tracing::warn!(pod_uid, error = %e, path = %path.display(), "cannot remove a pod's namespace");
        }
    }
    super::volumes::tear_down(dir, pod_uid);
    let shm = shm_path(dir, pod_uid);
    match rustix::mount::unmount(&shm, rustix::mount::UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => {}
        Err(e) => tracing::warn!(pod_uid, error = %e, "cannot unmount a pod's /dev/shm"),
    }
    let files = pod_dir(dir, pod_uid);
    if let Err(e) = std::fs::remove_dir_all(&files)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(pod_uid, error = %e, "cannot remove a pod's files");
    }
}

/// Stops (TERM, `grace`, KILL) and removes the container `id`.
pub(crate) async fn stop_and_remove(runtime: Arc<dyn Runtime>, id: String, grace: Duration) {
    if let Err(e) = runtime.stop(&id, grace).await
        && !e.is_not_found()
    {
        tracing::warn!(%id, error = %e, "cannot stop container");
    }
    if let Err(e) = runtime.remove(&id)
        && !e.is_not_found()
    {
        tracing::warn!(%id, error = %e, "cannot remove container");
    }
}
