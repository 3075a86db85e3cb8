//! A pod's `volumes` and its containers' `volumeMounts`, as Kubernetes 1.32 checks
//! them: volume names are unique DNS labels, each volume has exactly one source,
//! mounts name a defined volume at an absolute path of their own, `subPath` and the
//! projected files' paths stay inside the volume, modes are 0..0777.
//!
//! The agent acts on `emptyDir`, `hostPath`, `configMap`, `secret`, `downwardAPI`,
//! `projected` (ConfigMaps, Secrets, the downward API) and `persistentVolumeClaim`;
//! every other source is refused by name, as fields berth does not act on are.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, KeyToPath, PodSpec, Volume, VolumeMount};

use super::env::{RESOURCES, subscript};
use super::unsupported::check;
use super::{Errors, err, is_dns_label, is_dns_subdomain};
use crate::kinds::secret::config_key_problem;

/// The `hostPath` types Kubernetes knows ("" checks nothing).
pub const HOST_PATH_TYPES: &[&str] = &[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

/// The fields of the pod a downward API volume file may name as they are (labels
/// and annotations also one key at a time).
const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
];

const MODE_MESSAGE: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// The sources Kubernetes defines, by field name, and whether one is set.
fn sources(v: &Volume) -> Vec<(&'static str, bool)> {
    vec![
        ("emptyDir", v.empty_dir.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("configMap", v.config_map.is_some()),
        ("secret", v.secret.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("projected", v.projected.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("cinder", v.cinder.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("flocker", v.flocker.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("image", v.image.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("nfs", v.nfs.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("rbd", v.rbd.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("storageos", v.storageos.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
    ]
}

/// The sources the agent mounts.
const IMPLEMENTED: &[&str] = &[
    "emptyDir",
    "hostPath",
    "configMap",
    "secret",
    "downwardAPI",
    "projected",
    "persistentVolumeClaim",
];

/// Checks the pod's volumes and every container's mounts of them.
pub(super) fn pod_spec(spec: &PodSpec, path: &str, errors: &mut Errors) {
    let mut names = BTreeSet::new();
    let containers: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let at = format!("{path}.volumes[{i}]");
        if v.name.is_empty() {
            err(errors, format!("{at}.name"), "Required value");
        } else if !is_dns_label(&v.name) {
            err(errors, format!("{at}.name"), format!("{:?} is not a DNS label", v.name));
        } else if !names.insert(v.name.as_str()) {
            err(errors, format!("{at}.name"), format!("Duplicate value: {:?}", v.name));
        }
        volume(v, &at, &containers, errors);
    }
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, c)| (format!("{path}.initContainers[{i}]"), c))
        .chain(
            spec.containers
                .iter()
                .enumerate()
                .map(|(i, c)| (format!("{path}.containers[{i}]"), c)),
        );
    for (at, c) in all {
        let mut paths = BTreeSet::new();
        for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
            mount(m, &format!("{at}.volumeMounts[{i}]"), &names, &mut paths, errors);
        }
    }
}

fn volume(v: &Volume, at: &str, containers: &[&str], errors: &mut Errors) {
    let set: Vec<&str> = sources(v)
        .into_iter()
        .filter_map(|(name, is_set)| is_set.then_some(name))
        .collect();
    match set.as_slice() {
        [] => return err(errors, at, "Required value: must specify a volume type"),
        [_] => {}
        [_, more @ ..] => {
            for name in more {
                err(
                    errors,
                    format!("{at}.{name}"),
                    "Forbidden: may not specify more than 1 volume type",
                );
            }
            return;
        }
    }
    let source = set[0];
    if !IMPLEMENTED.contains(&source) {
        return check(errors, true, format!("{at}.{source}"), "volume source");
    }
    if let Some(empty) = &v.empty_dir {
        let medium = empty.medium.as_deref().unwrap_or_default();
        if !["", "Memory"].contains(&medium) {
            let message = format!("Unsupported value: {medium:?}: supported values: \"\", \"Memory\"");
            err(errors, format!("{at}.emptyDir.medium"), message);
        }
        if let Some(size) = &empty.size_limit {
            if crate::quantity::parse_memory_bytes(&size.0).is_err() {
                err(
                    errors,
                    format!("{at}.emptyDir.sizeLimit"),
                    format!("{:?} is not a quantity", size.0),
                );
            }
            // On disk, the kubelet enforces it by evicting the pod; berth evicts
            // nothing, so it holds only as a tmpfs's size.
            check(
                errors,
                medium != "Memory",
                format!("{at}.emptyDir.sizeLimit"),
                "only with medium: Memory, as the size of its tmpfs",
            );
        }
    }
    if let Some(host) = &v.host_path {
        if host.path.is_empty() {
            err(errors, format!("{at}.hostPath.path"), "Required value");
        } else if !host.path.starts_with('/') {
            err(errors, format!("{at}.hostPath.path"), "must be an absolute path");
        } else if host.path.split('/').any(|part| part == "..") {
            err(errors, format!("{at}.hostPath.path"), "must not contain '..'");
        }
        let kind = host.type_.as_deref().unwrap_or_default();
        if !HOST_PATH_TYPES.contains(&kind) {
            let supported: Vec<String> = HOST_PATH_TYPES.iter().map(|t| format!("{t:?}")).collect();
            let message = format!(
                "Unsupported value: {kind:?}: supported values: {}",
                supported.join(", ")
            );
            err(errors, format!("{at}.hostPath.type"), message);
        }
    }
    if let Some(config) = &v.config_map {
        object_name(&config.name, &format!("{at}.configMap.name"), errors);
        mode(config.default_mode, &format!("{at}.configMap.defaultMode"), errors);
        key_paths(config.items.as_deref(), &format!("{at}.configMap.items"), errors);
    }
    if let Some(secret) = &v.secret {
        object_name(
            secret.secret_name.as_deref().unwrap_or_default(),
            &format!("{at}.secret.secretName"),
            errors,
        );
        mode(secret.default_mode, &format!("{at}.secret.defaultMode"), errors);
        key_paths(secret.items.as_deref(), &format!("{at}.secret.items"), errors);
    }
    if let Some(downward) = &v.downward_api {
        mode(downward.default_mode, &format!("{at}.downwardAPI.defaultMode"), errors);
        downward_files(
            downward.items.as_deref(),
            &format!("{at}.downwardAPI.items"),
            containers,
            errors,
        );
    }
    if let Some(projected) = &v.projected {
        let at = format!("{at}.projected");
        mode(projected.default_mode, &format!("{at}.defaultMode"), errors);
        let mut paths = BTreeSet::new();
        for (i, source) in projected.sources.iter().flatten().enumerate() {
            let at = format!("{at}.sources[{i}]");
            check(
                errors,
                source.cluster_trust_bundle.is_some(),
                format!("{at}.clusterTrustBundle"),
                "",
            );
            let given = [
                source.config_map.is_some(),
                source.secret.is_some(),
                source.downward_api.is_some(),
                source.service_account_token.is_some(),
                source.cluster_trust_bundle.is_some(),
            ];
            match given.iter().filter(|s| **s).count() {
                0 => err(
                    errors,
                    &at,
                    "Required value: must specify exactly 1 of: configMap, secret, downwardAPI",
                ),
                1 => {}
                _ => err(
                    errors,
                    &at,
                    "Forbidden: may not specify more than 1 volume type per source",
                ),
            }
            let mut note = |path: &str, field: String| {
                if !paths.insert(path.to_string()) {
                    err(errors, field, format!("conflicting duplicate paths {path:?}"));
                }
            };
            if let Some(config) = &source.config_map {
                for (j, item) in config.items.iter().flatten().enumerate() {
                    note(&item.path, format!("{at}.configMap.items[{j}].path"));
                }
            }
            if let Some(secret) = &source.secret {
                for (j, item) in secret.items.iter().flatten().enumerate() {
                    note(&item.path, format!("{at}.secret.items[{j}].path"));
                }
            }
            if let Some(downward) = &source.downward_api {
                for (j, item) in downward.items.iter().flatten().enumerate() {
                    note(&item.path, format!("{at}.downwardAPI.items[{j}].path"));
                }
            }
            if let Some(token) = &source.service_account_token {
                note(&token.path, format!("{at}.serviceAccountToken.path"));
            }
            if let Some(config) = &source.config_map {
                object_name(&config.name, &format!("{at}.configMap.name"), errors);
                key_paths(config.items.as_deref(), &format!("{at}.configMap.items"), errors);
            }
            if let Some(secret) = &source.secret {
                object_name(&secret.name, &format!("{at}.secret.name"), errors);
                key_paths(secret.items.as_deref(), &format!("{at}.secret.items"), errors);
            }
            if let Some(downward) = &source.downward_api {
                downward_files(
                    downward.items.as_deref(),
                    &format!("{at}.downwardAPI.items"),
                    containers,
                    errors,
                );
            }
            if let Some(token) = &source.service_account_token {
                let at = format!("{at}.serviceAccountToken");
                file_path(&token.path, &format!("{at}.path"), errors);
                token_lifetime(token.expiration_seconds, &format!("{at}.expirationSeconds"), errors);
            }
        }
    }
    if let Some(claim) = &v.persistent_volume_claim
        && claim.claim_name.is_empty()
    {
        err(
            errors,
            format!("{at}.persistentVolumeClaim.claimName"),
            "Required value",
        );
    }
}

fn object_name(name: &str, at: &str, errors: &mut Errors) {
    if name.is_empty() {
        err(errors, at, "Required value");
    } else if !is_dns_subdomain(name) {
        err(errors, at, format!("{name:?} is not a DNS subdomain"));
    }
}

fn mode(mode: Option<i32>, at: &str, errors: &mut Errors) {
    if let Some(mode) = mode
        && !(0..=0o777).contains(&mode)
    {
        err(errors, at, format!("Invalid value: {mode}: {MODE_MESSAGE}"));
    }
}

/// Why `path` cannot be a file inside a volume (Kubernetes' local non-reserved
/// path), if it cannot.
pub fn local_path_problem(path: &str) -> Option<&'static str> {
    if path.starts_with('/') {
        Some("must be a relative path")
    } else if path.split('/').any(|part| part == "..") {
        Some("must not contain '..'")
    } else if path.starts_with("..") {
        Some("must not start with '..'")
    } else {
        None
    }
}

/// A projected token's life, as Kubernetes bounds it: ten minutes to 2^32 seconds.
fn token_lifetime(seconds: Option<i64>, at: &str, errors: &mut Errors) {
    match seconds {
        Some(s) if s < 600 => err(
            errors,
            at,
            format!("Invalid value: {s}: may not specify a duration less than 10 minutes"),
        ),
        Some(s) if s > 1 << 32 => err(
            errors,
            at,
            format!("Invalid value: {s}: may not specify a duration larger than 2^32 seconds"),
        ),
        _ => {}
    }
}

fn key_paths(items: Option<&[KeyToPath]>, at: &str, errors: &mut Errors) {
    for (i, item) in items.into_iter().flatten().enumerate() {
        let at = format!("{at}[{i}]");
        if item.key.is_empty() {
            err(errors, format!("{at}.key"), "Required value");
        } else if let Some(problem) = config_key_problem(&item.key) {
            err(errors, format!("{at}.key"), problem);
        }
        file_path(&item.path, &format!("{at}.path"), errors);
        mode(item.mode, &format!("{at}.mode"), errors);
    }
}

fn file_path(path: &str, at: &str, errors: &mut Errors) {
    if path.is_empty() {
        err(errors, at, "Required value");
    } else if let Some(problem) = local_path_problem(path) {
        err(errors, at, format!("Invalid value: {path:?}: {problem}"));
    }
}

fn downward_files(items: Option<&[DownwardAPIVolumeFile]>, at: &str, containers: &[&str], errors: &mut Errors) {
    for (i, file) in items.into_iter().flatten().enumerate() {
        let at = format!("{at}[{i}]");
        file_path(&file.path, &format!("{at}.path"), errors);
        mode(file.mode, &format!("{at}.mode"), errors);
        match (&file.field_ref, &file.resource_field_ref) {
            (Some(field), None) => {
                let path = field.field_path.as_str();
                let known = VOLUME_FIELD_PATHS.contains(&path)
                    || subscript(path).is_some_and(|(_, key)| !key.is_empty() && !key.contains('\''));
                if !known {
                    let supported: Vec<String> = VOLUME_FIELD_PATHS.iter().map(|p| format!("{p:?}")).collect();
                    let message = format!(
                        "Unsupported value: {path:?}: supported values: {}",
                        supported.join(", ")
                    );
                    err(errors, format!("{at}.fieldRef.fieldPath"), message);
                }
            }
            (None, Some(resource)) => {
                let container = resource.container_name.as_deref().unwrap_or_default();
                if container.is_empty() {
                    err(errors, format!("{at}.resourceFieldRef.containerName"), "Required value");
                } else if !containers.contains(&container) {
                    let message = format!("no container {container:?} in the pod");
                    err(errors, format!("{at}.resourceFieldRef.containerName"), message);
                }
                if !RESOURCES.contains(&resource.resource.as_str()) {
                    let supported: Vec<String> = RESOURCES.iter().map(|p| format!("{p:?}")).collect();
                    let message = format!(
                        "Unsupported value: {:?}: supported values: {}",
                        resource.resource,
                        supported.join(", ")
                    );
                    err(errors, format!("{at}.resourceFieldRef.resource"), message);
                }
            }
            (Some(_), Some(_)) => err(
                errors,
                &at,
                "Invalid value: fieldRef and resourceFieldRef can not be specified simultaneously",
            ),
            (None, None) => err(
                errors,
                &at,
                "Required value: one of fieldRef and resourceFieldRef is required",
            ),
        }
    }
}

fn mount(m: &VolumeMount, at: &str, volumes: &BTreeSet<&str>, paths: &mut BTreeSet<String>, errors: &mut Errors) {
    if m.name.is_empty() {
        err(errors, format!("{at}.name"), "Required value");
    } else if !volumes.contains(m.name.as_str()) {
        err(errors, format!("{at}.name"), format!("Not found: {:?}", m.name));
    }
    let path = m.mount_path.as_str();
    if path.is_empty() {
        err(errors, format!("{at}.mountPath"), "Required value");
    } else if !path.starts_with('/') {
        err(
            errors,
            format!("{at}.mountPath"),
            format!("Invalid value: {path:?}: must be an absolute path"),
        );
    } else if path.contains(':') {
        err(
            errors,
            format!("{at}.mountPath"),
            format!("Invalid value: {path:?}: must not contain ':'"),
        );
    } else if !paths.insert(path.trim_end_matches('/').to_string()) {
        err(
            errors,
            format!("{at}.mountPath"),
            format!("Invalid value: {path:?}: must be unique"),
        );
    }
    if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty())
        && let Some(problem) = local_path_problem(sub).filter(|p| !p.contains("start"))
    {
        err(
            errors,
            format!("{at}.subPath"),
            format!("Invalid value: {sub:?}: {problem}"),
        );
    }
    check(
        errors,
        m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()),
        format!("{at}.subPathExpr"),
        "",
    );
    let propagation = m.mount_propagation.as_deref().unwrap_or_default();
    check(
        errors,
        !["", "None"].contains(&propagation),
        format!("{at}.mountPropagation"),
        "only None",
    );
    let recursive = m.recursive_read_only.as_deref().unwrap_or_default();
    check(
        errors,
        !["", "Disabled"].contains(&recursive),
        format!("{at}.recursiveReadOnly"),
        "",
    );
}

#[cfg(test)]
#[path = "volumes_tests.rs"]
mod tests;
