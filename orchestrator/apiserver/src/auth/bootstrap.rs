//! The default roles and bindings (berth-api's `rbac::bootstrap`), made at start
//! when missing and mended when a default marked for auto-update lacks something,
//! as kube-apiserver's RBAC post-start hook does. Every replica does it; the writes
//! are conditional, so replicas agree.
//!
//! With the Node authorization mode, `system:node`'s binding has no subjects; the
//! group `system:nodes` that berth gave it before that mode existed is taken out
//! of a stored one, so that no node keeps every node's rights.

use std::time::Duration;

use berth_api::kinds::Object;
use berth_api::kinds::cluster_role::CLUSTER_ROLE;
use berth_api::kinds::cluster_role_binding::CLUSTER_ROLE_BINDING;
use berth_api::meta::MetaExt;
use berth_api::rbac::bootstrap::{
    NODE, NODES_GROUP, cluster_role_bindings, cluster_roles, reconcile_binding, reconcile_role,
};
use berth_api::rbac::{ClusterRole, ClusterRoleBinding};
use berth_client::kv::{Kv, KvError};
use berth_client::registry::Registry;

/// Writes the defaults until the store takes them.
pub async fn ensure_default_roles(kv: Kv, node_mode: bool) {
    let registry = Registry::new(kv.clone());
    loop {
        match reconcile(&kv, &registry, node_mode).await {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(error = %e, "cannot write the default roles yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

async fn reconcile(kv: &Kv, registry: &Registry, node_mode: bool) -> Result<(), KvError> {
    for default in cluster_roles() {
        let key = CLUSTER_ROLE.key("", default.metadata.name());
        let stored = kv.get(&key).await?;
        let stored = stored.as_ref().and_then(|r| {
            let mut object: ClusterRole = serde_json::from_slice(&r.value).ok()?;
            object.metadata.resource_version = Some(r.mod_revision.to_string());
            Some(object)
        });
        match stored {
            None => create(registry, Object::new(default)).await?,
            Some(stored) => {
                if let Some(mended) = reconcile_role(&stored, &default) {
                    update(registry, Object::new(mended)).await?;
                }
            }
        }
    }
    for default in cluster_role_bindings(node_mode) {
        let key = CLUSTER_ROLE_BINDING.key("", default.metadata.name());
        let stored = kv.get(&key).await?;
        let stored = stored.as_ref().and_then(|r| {
            let mut object: ClusterRoleBinding = serde_json::from_slice(&r.value).ok()?;
            object.metadata.resource_version = Some(r.mod_revision.to_string());
            Some(object)
        });
        match stored {
            None => create(registry, Object::new(default)).await?,
            Some(mut stored) => {
                let nodes_group =
                    |s: &berth_api::rbac::Subject| s.kind == berth_api::rbac::GROUP_KIND && s.name == NODES_GROUP;
                if node_mode
                    && default.metadata.name() == NODE
                    && let Some(subjects) = &mut stored.subjects
                    && subjects.iter().any(nodes_group)
                {
                    subjects.retain(|s| !nodes_group(s));
                    if subjects.is_empty() {
                        stored.subjects = None;
                    }
                    update(registry, Object::new(stored)).await?;
                    continue;
                }
                if let Some(mended) = reconcile_binding(&stored, &default) {
                    update(registry, Object::new(mended)).await?;
                }
            }
        }
    }
    Ok(())
}

async fn create(registry: &Registry, object: Object) -> Result<(), KvError> {
    match registry.create(&object, None).await {
        Ok(_) | Err(KvError::AlreadyExists) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn update(registry: &Registry, object: Object) -> Result<(), KvError> {
    match registry.update(&object, None).await {
        // Another replica mended it first; the next start looks again.
        Ok(_) | Err(KvError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
