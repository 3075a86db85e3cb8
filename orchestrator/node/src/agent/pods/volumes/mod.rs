//! A pod's volumes on the node, laid out as the kubelet lays them out:
//!
//! ```text
//!  <state>/pods/<uid>/volumes/kubernetes.io~empty-dir/<name>     a directory (medium Memory: a tmpfs)
//!                            /kubernetes.io~configmap/<name>     files by the atomic writer
//!                            /kubernetes.io~secret/<name>        the same, on a tmpfs of its own
//!                            /kubernetes.io~downward-api/<name>  the same, on a tmpfs
//!                            /kubernetes.io~projected/<name>     the same, on a tmpfs
//!  hostPath: the host's path, checked by its type; persistentVolumeClaim: the bound
//!  volume's local (or hostPath) path
//! ```
//!
//! Set up in the pass, before the pod's containers may start (the executor calls
//! [`sync`]), from the ConfigMaps, Secrets and claims the supervisor read before the
//! pass. What is missing and not optional holds the pod (its containers wait in
//! ContainerCreating) with a `FailedMount` event in the kubelet's words, and is
//! looked for again on every pass. Once set up, every pass brings the files of the
//! ConfigMap, Secret, downward API and projected volumes up to date (a payload
//! equal to the last one written costs a hash); the supervisor re-reads the objects
//! when a watch on ConfigMaps and Secrets sees a change (and once a minute), and
//! keeps what it last read of them in between. The containers bind the
//! volumes (`ContainerSpec::mounts`); the sandbox's teardown unmounts the tmpfs
//! mounts ([`tear_down`]) before the pod's directory goes. A restarted agent sets
//! up again over what is there: mounted tmpfs are kept, equal files not rewritten.

mod atomic_writer;
pub(crate) mod claim;
mod host_path;
mod projection;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash as _, Hasher as _};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Volume;

use super::config_env::{ConfigObjects, NodeFacts, Source};
use crate::runtime::VolumeMount;
use berth_api::meta::MetaExt;
use berth_api::objects::{Container, Pod};
use berth_api::quantity::parse_memory_bytes;
pub(crate) use projection::ProjectionError;

/// A volume as the containers bind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadyVolume {
    pub(crate) path: PathBuf,
    /// Always for the API's data (ConfigMaps, Secrets, the downward API); a claim's
    /// `readOnly`.
    pub(crate) read_only: bool,
}

pub(crate) type ReadyVolumes = BTreeMap<String, ReadyVolume>;

/// The bound directories of the claims the pods name, by (namespace, claim), as
/// read before the pass; Err: why there is none.
pub(crate) type Claims = BTreeMap<(String, String), Result<PathBuf, String>>;

/// A pod's volumes as the agent has them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct PodVolumes {
    /// Set up: the containers may bind them.
    pub(crate) ready: Option<ReadyVolumes>,
    /// The last failure reported (an event is emitted when it changes).
    pub(crate) failed: Option<String>,
    /// The hash of each volume's files as last written.
    written: BTreeMap<String, u64>,
}

/// What a pass sets volumes up from.
pub(crate) struct Context<'a> {
    /// `<state>/pods`.
    pub(crate) pods_dir: &'a Path,
    pub(crate) objects: &'a ConfigObjects,
    pub(crate) claims: &'a Claims,
    pub(crate) node: &'a NodeFacts,
}

/// The kubelet's plugin directory of a volume held under the pod's directory.
fn plugin(v: &Volume) -> Option<&'static str> {
    if v.empty_dir.is_some() {
        Some("kubernetes.io~empty-dir")
    } else if v.config_map.is_some() {
        Some("kubernetes.io~configmap")
    } else if v.secret.is_some() {
        Some("kubernetes.io~secret")
    } else if v.downward_api.is_some() {
        Some("kubernetes.io~downward-api")
    } else if v.projected.is_some() {
        Some("kubernetes.io~projected")
    } else {
        None
    }
}

/// Whether the volume lives in memory: Secrets (never on the node's disk), the
/// downward API and projected volumes (as the kubelet), emptyDir with `medium: Memory`.
fn on_tmpfs(v: &Volume) -> bool {
    v.secret.is_some()
        || v.downward_api.is_some()
        || v.projected.is_some()
        || v.empty_dir
            .as_ref()
            .is_some_and(|e| e.medium.as_deref() == Some("Memory"))
}

fn volume_dir(pods_dir: &Path, uid: &str, plugin: &str, name: &str) -> PathBuf {
    pods_dir.join(uid).join("volumes").join(plugin).join(name)
}

/// The ConfigMaps and Secrets (by name, in the pod's namespace) the pod's volumes name.
pub(crate) fn references(pod: &Pod) -> BTreeSet<(Source, String)> {
    let mut found = BTreeSet::new();
    for v in pod.spec.volumes.iter().flatten() {
        if let Some(c) = &v.config_map {
            found.insert((Source::ConfigMap, c.name.clone()));
        }
        if let Some(s) = &v.secret {
            found.insert((Source::Secret, s.secret_name.clone().unwrap_or_default()));
        }
        for source in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &source.config_map {
                found.insert((Source::ConfigMap, c.name.clone()));
            }
            if let Some(s) = &source.secret {
                found.insert((Source::Secret, s.name.clone()));
            }
        }
    }
    found
}

/// The claims the pod's volumes name.
pub(crate) fn claims(pod: &Pod) -> Vec<String> {
    pod.spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.persistent_volume_claim.as_ref().map(|c| c.claim_name.clone()))
        .collect()
}

/// Blocking: sets up the pod's volumes, or brings the files of those set up up to
/// date. Returns a failure to report when it is new (the kubelet's `FailedMount`
/// message).
pub(crate) fn sync(pod: &Pod, ctx: &Context<'_>, state: &mut PodVolumes) -> Option<String> {
    let uid = pod.metadata.uid();
    let inputs = projection::Inputs {
        pod,
        objects: ctx.objects,
        node: ctx.node,
    };
    if state.ready.is_some() {
        for v in pod.spec.volumes.iter().flatten() {
            let Some(Ok(payload)) = projection::payload(v, &inputs) else {
                // Not read this pass, or gone: the files stay as they are.
                continue;
            };
            let hash = hash_of(&payload);
            if state.written.get(&v.name) == Some(&hash) {
                continue;
            }
            let dir = volume_dir(ctx.pods_dir, uid, plugin(v).unwrap_or_default(), &v.name);
            match atomic_writer::write(&dir, &payload) {
                Ok(wrote) => {
                    if wrote {
                        tracing::info!(pod = %super::plan::pod_name(pod), volume = %v.name, "updated a volume's files");
                    }
                    state.written.insert(v.name.clone(), hash);
                }
                Err(e) => tracing::warn!(volume = %v.name, error = %e, "cannot update a volume's files"),
            }
        }
        return None;
    }
    let mut ready = ReadyVolumes::new();
    for v in pod.spec.volumes.iter().flatten() {
        match set_up(pod, v, ctx, &inputs, state) {
            Ok(Some(volume)) => {
                ready.insert(v.name.clone(), volume);
            }
            Ok(None) => return None,
            Err(message) => {
                let message = format!("MountVolume.SetUp failed for volume {:?} : {message}", v.name);
                if state.failed.as_ref() == Some(&message) {
                    return None;
                }
                state.failed = Some(message.clone());
                return Some(message);
            }
        }
    }
    state.ready = Some(ready);
    state.failed = None;
    None
}

fn hash_of(payload: &atomic_writer::Payload) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    for (path, file) in payload {
        path.hash(&mut hasher);
        file.data.hash(&mut hasher);
        file.mode.hash(&mut hasher);
    }
    hasher.finish()
}

/// One volume: Ok(None) while something it names was not read yet.
fn set_up(
    pod: &Pod,
    v: &Volume,
    ctx: &Context<'_>,
    inputs: &projection::Inputs<'_>,
    state: &mut PodVolumes,
) -> Result<Option<ReadyVolume>, String> {
    let namespace = pod.metadata.namespace();
    if let Some(host) = &v.host_path {
        let path = PathBuf::from(&host.path);
        host_path::check(&path, host.type_.as_deref().unwrap_or_default())?;
        return Ok(Some(ReadyVolume { path, read_only: false }));
    }
    if let Some(claim) = &v.persistent_volume_claim {
        return match ctx.claims.get(&(namespace.to_string(), claim.claim_name.clone())) {
            None => Ok(None),
            Some(Err(message)) => Err(message.clone()),
            Some(Ok(path)) => Ok(Some(ReadyVolume {
                path: path.clone(),
                read_only: claim.read_only == Some(true),
            })),
        };
    }
    let Some(plugin) = plugin(v) else {
        return Err("berth does not mount this volume source".into());
    };
    let payload = match projection::payload(v, inputs) {
        None => None,
        Some(Ok(payload)) => Some(payload),
        Some(Err(ProjectionError::NotReadYet)) => return Ok(None),
        Some(Err(ProjectionError::Missing(message))) => return Err(message),
    };
    let dir = volume_dir(ctx.pods_dir, pod.metadata.uid(), plugin, &v.name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if on_tmpfs(v) {
        let size = tmpfs_size(pod, v, ctx.node);
        mount_tmpfs(&dir, size).map_err(|e| format!("cannot mount a tmpfs at {}: {e}", dir.display()))?;
    }
    let Some(payload) = payload else {
        // An emptyDir: open to every user of the pod, as the kubelet makes it.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
        return Ok(Some(ReadyVolume {
            path: dir,
            read_only: false,
        }));
    };
    atomic_writer::write(&dir, &payload).map_err(|e| format!("cannot write the files of the volume: {e}"))?;
    state.written.insert(v.name.clone(), hash_of(&payload));
    Ok(Some(ReadyVolume {
        path: dir,
        read_only: true,
    }))
}

/// A memory-backed volume's size: its `sizeLimit`, else the pod's memory limit (when
/// every container has one), else the node's allocatable memory.
fn tmpfs_size(pod: &Pod, v: &Volume, node: &NodeFacts) -> u64 {
    let limit = v
        .empty_dir
        .as_ref()
        .and_then(|e| e.size_limit.as_ref())
        .and_then(|q| parse_memory_bytes(&q.0).ok());
    let pod_limit = pod
        .spec
        .containers
        .iter()
        .map(|c| {
            let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
            limits
                .and_then(|l| l.get("memory"))
                .and_then(|q| parse_memory_bytes(&q.0).ok())
        })
        .sum::<Option<u64>>();
    limit.or(pod_limit).unwrap_or(node.memory_bytes).max(4096)
}

/// Mounts a tmpfs at `dir` unless one is there (a restarted agent's pod keeps it).
fn mount_tmpfs(dir: &Path, size: u64) -> std::io::Result<()> {
    use rustix::mount::{MountFlags, mount};
    if is_mount_point(dir)? {
        return Ok(());
    }
    let options = std::ffi::CString::new(format!("mode=0777,size={size}")).expect("no NUL");
    mount(
        "tmpfs",
        dir,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        options.as_c_str(),
    )?;
    Ok(())
}

fn is_mount_point(dir: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let device = |p: &Path| std::fs::metadata(p).map(|m| m.dev());
    Ok(device(dir)? != device(dir.parent().unwrap_or(dir))?)
}

/// Blocking: unmounts every volume of the pod mounted under its directory; the
/// caller then removes the directory.
pub(crate) fn tear_down(pods_dir: &Path, uid: &str) {
    let root = pods_dir.join(uid).join("volumes");
    let Ok(plugins) = std::fs::read_dir(&root) else { return };
    for plugin in plugins.flatten() {
        let Ok(volumes) = std::fs::read_dir(plugin.path()) else {
            continue;
        };
        for volume in volumes.flatten() {
            let path = volume.path();
            if !is_mount_point(&path).unwrap_or(false) {
                continue;
            }
            match rustix::mount::unmount(&path, rustix::mount::UnmountFlags::DETACH) {
                Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => {}
                Err(e) => tracing::warn!(uid, error = %e, path = %path.display(), "cannot unmount a pod's volume"),
            }
        }
    }
}

/// Whether `mount` is the ServiceAccount token's, as ServiceAccount admission adds
/// it (`kube-api-access-*` at the account's mount path).
pub(crate) fn is_api_access(mount: &k8s_openapi::api::core::v1::VolumeMount) -> bool {
    use berth_api::admission::service_account::{MOUNT_PATH, VOLUME_PREFIX};
    mount.name.starts_with(VOLUME_PREFIX) && mount.mount_path == MOUNT_PATH
}

/// The binds of a container's `volumeMounts` that `keep` keeps, from the pod's
/// volumes as set up.
pub(crate) fn mounts(
    container: &Container,
    ready: &ReadyVolumes,
    keep: impl Fn(&&k8s_openapi::api::core::v1::VolumeMount) -> bool,
) -> Vec<VolumeMount> {
    container
        .volume_mounts
        .iter()
        .flatten()
        .filter(keep)
        .filter_map(|m| {
            let volume = ready.get(&m.name)?;
            Some(VolumeMount {
                source: volume.path.clone(),
                sub_path: m.sub_path.clone().unwrap_or_default(),
                destination: PathBuf::from(&m.mount_path),
                read_only: volume.read_only || m.read_only == Some(true),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
