//! A `persistentVolumeClaim` volume on the node: the claim
//! (`/registry/persistentvolumeclaims/<ns>/<name>`) and the volume it is bound to
//! (`/registry/persistentvolumes/<spec.volumeName>`), read from the cluster as
//! Kubernetes' types, give the directory the containers bind: the volume's
//! `spec.local.path`, else its `spec.hostPath.path`. A claim that is missing or
//! not bound holds the pod with the kubelet's words. Binding, provisioning and
//! reclaiming are the control plane's.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};

use crate::agent::cluster::Cluster;

/// The directory the claim `namespace/name` is bound to, or why there is none. An
/// error reading the store is Err too (the pod waits for a later pass either way).
pub(crate) async fn bound_path(cluster: &Cluster, namespace: &str, name: &str) -> Result<PathBuf, String> {
    let claim: PersistentVolumeClaim = read(cluster, &format!("/registry/persistentvolumeclaims/{namespace}/{name}"))
        .await?
        .ok_or_else(|| format!("persistentvolumeclaim {name:?} not found"))?;
    let volume_name = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let Some(volume_name) = volume_name.filter(|_| bound) else {
        return Err(format!("persistentvolumeclaim {name:?} is not bound"));
    };
    let volume: PersistentVolume = read(cluster, &format!("/registry/persistentvolumes/{volume_name}"))
        .await?
        .ok_or_else(|| format!("persistentvolume {volume_name:?} not found"))?;
    let spec = volume.spec.unwrap_or_default();
    spec.local
        .map(|l| l.path)
        .or(spec.host_path.map(|h| h.path))
        .map(PathBuf::from)
        .ok_or_else(|| format!("persistentvolume {volume_name:?} has no local or hostPath source berth can mount"))
}

async fn read<T: serde::de::DeserializeOwned>(cluster: &Cluster, key: &str) -> Result<Option<T>, String> {
    let Some(record) = cluster.get(key).await.map_err(|e| format!("cannot read {key}: {e}"))? else {
        return Ok(None);
    };
    serde_json::from_slice(&record.value)
        .map(Some)
        .map_err(|e| format!("cannot parse {key}: {e}"))
}
