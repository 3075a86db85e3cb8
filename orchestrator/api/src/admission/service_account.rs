//! ServiceAccount admission, as Kubernetes' plugin of that name does it to a new
//! pod: the account defaults to `default`; an account that does not exist refuses
//! the pod; the account's `imagePullSecrets` go to a pod that names none; and,
//! unless the pod or the account says `automountServiceAccountToken: false`, the
//! `kube-api-access-<5 chars>` projected volume (a token, the cluster's CA, the
//! namespace) is mounted read-only at [`MOUNT_PATH`] in every container.

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, DownwardAPIProjection, DownwardAPIVolumeFile, KeyToPath, ObjectFieldSelector,
    ProjectedVolumeSource, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};

use crate::kinds::service_account::{DEFAULT_SERVICE_ACCOUNT, ServiceAccount};
use crate::objects::PodSpec;

/// Where the token, `ca.crt` and `namespace` appear in a container.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The prefix of the volume's name.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The token's life in the volume, as Kubernetes asks it: an hour and a few seconds,
/// so that it is told apart from tokens asked for otherwise.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// The account a pod runs as: `spec.serviceAccountName`, else `default`.
pub fn account_name(spec: &PodSpec) -> &str {
    spec.service_account_name
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_SERVICE_ACCOUNT)
}

/// Kubernetes' refusal of a pod whose account does not exist (after `pods "x" is
/// forbidden: `).
pub fn not_found(namespace: &str, name: &str) -> String {
    format!("error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found")
}

/// The volume Kubernetes mounts, named with `suffix`.
pub fn api_access_volume(suffix: &str) -> Volume {
    Volume {
        name: format!("{VOLUME_PREFIX}{suffix}"),
        projected: Some(ProjectedVolumeSource {
            default_mode: Some(0o644),
            sources: Some(vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                        path: "token".into(),
                        audience: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    config_map: Some(ConfigMapProjection {
                        name: "kube-root-ca.crt".into(),
                        items: Some(vec![KeyToPath {
                            key: "ca.crt".into(),
                            path: "ca.crt".into(),
                            mode: None,
                        }]),
                        optional: None,
                    }),
                    ..Default::default()
                },
                VolumeProjection {
                    downward_api: Some(DownwardAPIProjection {
                        items: Some(vec![DownwardAPIVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                api_version: Some("v1".into()),
                                field_path: "metadata.namespace".into(),
                            }),
                            ..Default::default()
                        }]),
                    }),
                    ..Default::default()
                },
            ]),
        }),
        ..Default::default()
    }
}

/// Admits `spec` as the account `account` (as read; `None`: it does not exist).
/// `mount` says whether the token volume is mounted at all on this cluster;
/// `suffix` names it. A refusal is Kubernetes' text.
pub fn admit(
    namespace: &str,
    spec: &mut PodSpec,
    account: Option<&ServiceAccount>,
    mount: bool,
    suffix: &str,
) -> Result<(), String> {
    let name = account_name(spec).to_string();
    spec.service_account_name = Some(name.clone());
    spec.service_account = Some(name.clone());
    let Some(account) = account else {
        return Err(not_found(namespace, &name));
    };
    if spec.image_pull_secrets.as_ref().is_none_or(Vec::is_empty)
        && let Some(secrets) = account.image_pull_secrets.as_ref().filter(|s| !s.is_empty())
    {
        spec.image_pull_secrets = Some(secrets.clone());
    }
    let automount = spec
        .automount_service_account_token
        .or(account.automount_service_account_token)
        .unwrap_or(true);
    if !mount || !automount {
        return Ok(());
    }
    let mounted_already = |mounts: &Option<Vec<VolumeMount>>| {
        mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path.trim_end_matches('/') == MOUNT_PATH)
    };
    let volume = api_access_volume(suffix);
    let mount = VolumeMount {
        name: volume.name.clone(),
        mount_path: MOUNT_PATH.into(),
        read_only: Some(true),
        ..Default::default()
    };
    let mut used = false;
    for container in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        if !mounted_already(&container.volume_mounts) {
            container.volume_mounts.get_or_insert_with(Vec::new).push(mount.clone());
            used = true;
        }
    }
    if used {
        spec.volumes.get_or_insert_with(Vec::new).push(volume);
    }
    Ok(())
}

#[cfg(test)]
#[path = "service_account_tests.rs"]
mod tests;
