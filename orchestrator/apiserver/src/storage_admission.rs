//! Admission for persistent storage, as Kubernetes' plugins do it:
//! DefaultStorageClass (a new claim that names no class gets the default one) and
//! PersistentVolumeClaimResize (a claim grows only if its class allows expansion),
//! StorageObjectInUseProtection (claims and volumes get their protection finalizers);
//! and the class `local` every cluster starts with.

use std::time::Duration;

use serde_json::Value;

use super::ApiServer;
use super::route::Kind;
use super::status::ApiError;
use super::storage;
use berth_api::kinds::Object;
use berth_api::kinds::persistent_volume_claim::{PERSISTENT_VOLUME_CLAIM, RESIZE_FORBIDDEN, is_expansion};
use berth_api::kinds::storage_class::{STORAGE_CLASS, StorageClass, default_class, default_of, from_stored};
use berth_api::meta::MetaExt;
use berth_api::objects::PersistentVolumeClaim;
use berth_client::kv::KvError;
use berth_client::registry::Registry;

/// A new claim without `storageClassName` (absent, not empty: empty asks for no
/// class) gets the default class, if there is one.
pub async fn default_class_of_claim(api: &ApiServer, kind: &Kind, object: &mut Object) -> Result<(), ApiError> {
    if *kind != PERSISTENT_VOLUME_CLAIM {
        return Ok(());
    }
    let Some(claim) = object.downcast_mut::<PersistentVolumeClaim>() else {
        return Ok(());
    };
    if claim.spec.storage_class_name.is_some() {
        return Ok(());
    }
    let name = claim.metadata.name().to_string();
    let (records, _) = api
        .kv
        .list(&STORAGE_CLASS.prefix(None))
        .await
        .map_err(|e| ApiError::from_kv(e, kind, &name))?;
    let classes: Vec<StorageClass> = records.iter().filter_map(|r| from_stored(&r.value)).collect();
    if let Some(class) = default_of(&classes) {
        claim.spec.storage_class_name = Some(class.metadata.name().to_string());
    }
    Ok(())
}

/// New claims and volumes get their protection finalizer (Kubernetes'
/// StorageObjectInUseProtection): a claim stays while a pod uses it, a volume while
/// it is bound.
pub fn add_protection(kind: &Kind, object: &mut Object) {
    use berth_api::kinds::persistent_volume::PERSISTENT_VOLUME;
    use berth_api::persistent_volumes::{PV_PROTECTION, PVC_PROTECTION};
    let finalizer = if *kind == PERSISTENT_VOLUME_CLAIM {
        PVC_PROTECTION
    } else if *kind == PERSISTENT_VOLUME {
        PV_PROTECTION
    } else {
        return;
    };
    let finalizers = object.metadata_mut().finalizers.get_or_insert_default();
    if !finalizers.iter().any(|f| f == finalizer) {
        finalizers.push(finalizer.to_string());
    }
}

/// An update that grows a claim's request: only a bound claim of a class with
/// `allowVolumeExpansion: true` may.
pub async fn check_resize(api: &ApiServer, kind: &Kind, stored: &Value, new: &Object) -> Result<(), ApiError> {
    if *kind != PERSISTENT_VOLUME_CLAIM {
        return Ok(());
    }
    let Some(new) = new.downcast_ref::<PersistentVolumeClaim>() else {
        return Ok(());
    };
    let old: PersistentVolumeClaim = serde_json::from_value(storage::for_storage(kind, stored.clone()))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if !is_expansion(&old, new) {
        return Ok(());
    }
    let name = new.metadata.name();
    let class = new.spec.storage_class_name.as_deref().unwrap_or_default();
    let allows = match api.kv.get(&STORAGE_CLASS.key("", class)).await {
        Ok(record) => record
            .and_then(|r| from_stored(&r.value))
            .is_some_and(|c| c.allow_volume_expansion == Some(true)),
        Err(e) => return Err(ApiError::from_kv(e, kind, name)),
    };
    if class.is_empty() || !allows {
        return Err(ApiError::forbidden(kind, name, RESIZE_FORBIDDEN));
    }
    Ok(())
}

/// Creates the class `local` if it does not exist (a user's change to it, or a
/// class made again after a delete, stays as it is).
pub async fn ensure_default_storage_class(registry: Registry) {
    let class = Object::new(default_class());
    loop {
        match registry.create(&class, None).await {
            Ok(_) | Err(KvError::AlreadyExists) => return,
            Err(e) => {
                tracing::debug!(error = %e, "cannot create the default StorageClass yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
