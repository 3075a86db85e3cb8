//! The node's side of the `berth.io/local` provisioner: the binder on the leader
//! creates a PersistentVolume whose `spec.local.path` is a directory of this node;
//! this loop makes that directory as soon as the volume exists (before the claim
//! is bound, so before any pod mounts it), and when the volume is Released with
//! reclaim policy Delete (its claim deleted) removes the directory and then the
//! volume object.
//!
//! ```text
//!  PersistentVolumes (list-then-watch, from the store or the API server)
//!      │  on a change, or every 10 s:
//!      └─► each one ours? (provisioned by berth.io/local, path under
//!            │             --local-volume-dir, node affinity allows this node)
//!            ├─► Released + Delete: rm -r <path>, then delete the volume (at its
//!            │                      resourceVersion)
//!            └─► otherwise: mkdir -p <path> (0777, as hostPath's
//!                           DirectoryOrCreate leaves it to the pod's user)
//! ```
//!
//! Nothing outside `--local-volume-dir` is ever made or removed. Through the API
//! server the agent reads and deletes the volumes as `system:nodes`, bound to
//! `system:persistent-volume-provisioner`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_api::kinds::persistent_volume::PERSISTENT_VOLUME;
use berth_api::meta::MetaExt;
use berth_api::objects::{PersistentVolume, PersistentVolumeSpec};
use berth_api::persistent_volumes::{
    DELETE, HOSTNAME_LABEL, LOCAL_PROVISIONER, PROVISIONED_BY, RELEASED, node_allows, volume_phase,
};
use berth_client::kv::{AbortOnDrop, Event, KvError, Record};
use berth_client::reflector::Sink;
use berth_client::registry::decode;

use super::cluster::Cluster;

/// How often the volumes are looked at again without a change.
const RESYNC: Duration = Duration::from_secs(10);

/// What this node does for one volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Not ours, or nothing to do.
    Nothing,
    /// The directory must exist.
    Make(PathBuf),
    /// Remove the directory, then the volume (at its resourceVersion).
    Reclaim(PathBuf),
}

/// The step for `volume` on the node `node` whose local volumes live in `dir`. Pure.
pub(crate) fn step(volume: &PersistentVolume, node: &str, dir: &Path) -> Step {
    let provisioner = volume.metadata.annotations().get(PROVISIONED_BY).map(String::as_str);
    let Some(local) = &volume.spec.local else {
        return Step::Nothing;
    };
    let path = PathBuf::from(&local.path);
    let labels = BTreeMap::from([(HOSTNAME_LABEL.to_string(), node.to_string())]);
    let is_ours = provisioner == Some(LOCAL_PROVISIONER)
        && path.parent() == Some(dir)
        && path.file_name().is_some_and(|n| n == volume.metadata.name())
        && node_allows(volume, node, &labels);
    if !is_ours {
        return Step::Nothing;
    }
    let policy = volume.spec.persistent_volume_reclaim_policy.as_deref();
    if volume_phase(volume) == RELEASED && policy == Some(DELETE) {
        Step::Reclaim(path)
    } else if volume.metadata.is_deleting() {
        Step::Nothing
    } else {
        Step::Make(path)
    }
}

/// The volumes as the list-then-watch loop last saw them, by store key.
#[derive(Default)]
struct Volumes {
    volumes: Mutex<Option<BTreeMap<String, PersistentVolume>>>,
    changed: tokio::sync::Notify,
}

impl Volumes {
    fn put(volumes: &mut BTreeMap<String, PersistentVolume>, record: &Record) {
        match decode::<PersistentVolumeSpec>(record) {
            Ok(volume) => {
                volumes.insert(record.key.clone(), volume);
            }
            Err(e) => {
                tracing::warn!(key = %record.key, error = %e, "skipping a volume that does not decode");
                volumes.remove(&record.key);
            }
        }
    }
}

impl Sink for Volumes {
    fn replace(&self, records: Vec<Record>, _revision: i64) {
        let mut volumes = BTreeMap::new();
        for record in &records {
            Self::put(&mut volumes, record);
        }
        *self.volumes.lock().expect("volumes lock") = Some(volumes);
        self.changed.notify_one();
    }

    fn apply(&self, events: Vec<Event>, _revision: i64) {
        let mut guard = self.volumes.lock().expect("volumes lock");
        let volumes = guard.get_or_insert_default();
        for event in &events {
            match event {
                Event::Put(record) => Self::put(volumes, record),
                Event::Delete { prev, .. } => {
                    volumes.remove(&prev.key);
                }
            }
        }
        self.changed.notify_one();
    }
}

/// Keeps this node's local volumes' directories until the agent stops.
pub(crate) async fn run(cluster: Cluster, node: String, dir: PathBuf) {
    let volumes = Arc::new(Volumes::default());
    let _reflector = AbortOnDrop(tokio::spawn(cluster.clone().reflect(
        &PERSISTENT_VOLUME,
        None,
        volumes.clone(),
    )));
    loop {
        // Wait for any change to the volumes (or the resync) before looking again.
        let _ = tokio::time::timeout(RESYNC, volumes.changed.notified()).await;
        let snapshot = volumes.volumes.lock().expect("volumes lock").clone();
        if let Some(snapshot) = snapshot {
            sync(&cluster, &node, &dir, snapshot.values()).await;
        }
    }
}

/// One pass over every volume.
async fn sync(cluster: &Cluster, node: &str, dir: &Path, volumes: impl Iterator<Item = &PersistentVolume>) {
    for volume in volumes {
        match step(volume, node, dir) {
            Step::Nothing => {}
            Step::Make(path) => {
                if !path.is_dir()
                    && let Err(e) = make(&path)
                {
                    tracing::warn!(volume = volume.metadata.name(), path = %path.display(), error = %e,
                        "cannot make the local volume's directory");
                }
            }
            Step::Reclaim(path) => {
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(volume = volume.metadata.name(), path = %path.display(), error = %e,
                            "cannot remove the local volume's directory");
                        continue;
                    }
                }
                let version = volume.metadata.resource_version().parse().unwrap_or(0);
                match cluster.delete_volume(volume.metadata.name(), version).await {
                    Ok(()) => tracing::info!(volume = volume.metadata.name(), path = %path.display(),
                        "reclaimed the local volume: directory and volume deleted"),
                    Err(KvError::NotFound | KvError::Conflict { .. }) => {}
                    Err(e) => tracing::warn!(volume = volume.metadata.name(), error = %e,
                        "cannot delete the reclaimed local volume; trying again"),
                }
            }
        }
    }
}

fn make(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))
}

#[cfg(test)]
mod tests {
    use berth_api::meta::named;
    use berth_api::objects::LocalVolumeSource;
    use berth_api::persistent_volumes::{BOUND, RETAIN, affinity_to_hostname};

    use super::*;

    fn local(name: &str, path: &str, host: &str, phase: &str, policy: &str) -> PersistentVolume {
        let mut metadata = named("", name);
        metadata.annotations = Some([(PROVISIONED_BY.to_string(), LOCAL_PROVISIONER.to_string())].into());
        let mut volume = PersistentVolume::new(
            metadata,
            PersistentVolumeSpec {
                local: Some(LocalVolumeSource {
                    path: path.into(),
                    fs_type: None,
                }),
                node_affinity: Some(affinity_to_hostname(host)),
                persistent_volume_reclaim_policy: Some(policy.into()),
                ..Default::default()
            },
        );
        volume.status.phase = Some(phase.into());
        volume
    }

    #[test]
    fn only_this_nodes_volumes_under_its_dir() {
        let dir = Path::new("/var/lib/berth/volumes");
        let ours = local("pvc-1", "/var/lib/berth/volumes/pvc-1", "n1", BOUND, DELETE);
        assert_eq!(step(&ours, "n1", dir), Step::Make(dir.join("pvc-1")));
        assert_eq!(step(&ours, "n2", dir), Step::Nothing, "another node's");
        let outside = local("pvc-1", "/etc/pvc-1", "n1", BOUND, DELETE);
        assert_eq!(step(&outside, "n1", dir), Step::Nothing, "never outside the dir");
        let renamed = local("pvc-2", "/var/lib/berth/volumes/pvc-1", "n1", BOUND, DELETE);
        assert_eq!(
            step(&renamed, "n1", dir),
            Step::Nothing,
            "the directory is named after the volume"
        );
        let mut by_hand = ours.clone();
        by_hand.metadata.annotations = None;
        assert_eq!(step(&by_hand, "n1", dir), Step::Nothing, "not provisioned: the user's");
    }

    #[test]
    fn released_volumes_are_reclaimed_by_policy() {
        let dir = Path::new("/v");
        let delete = local("pvc-1", "/v/pvc-1", "n1", RELEASED, DELETE);
        assert_eq!(step(&delete, "n1", dir), Step::Reclaim(PathBuf::from("/v/pvc-1")));
        let retain = local("pvc-1", "/v/pvc-1", "n1", RELEASED, RETAIN);
        assert_eq!(
            step(&retain, "n1", dir),
            Step::Make(PathBuf::from("/v/pvc-1")),
            "Retain keeps the data"
        );
    }
}
