//! Admission on the API server's creates: Pod Security, LimitRanges and
//! ResourceQuotas, through the steps the controllers use too
//! (`berth_client::admission`); this maps their refusals to Kubernetes' 403s
//! (`pods "x" is forbidden: exceeded quota: ...`).

use super::ApiServer;
use super::route::Kind;
use super::status::ApiError;
use berth_api::kinds::Object;
use berth_api::meta::MetaExt;
use berth_client::admission::{self, Charge, Refusal};

fn refused(kind: &Kind, name: &str, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Forbidden(why) => ApiError::forbidden(kind, name, &why),
        Refusal::Store(e) => ApiError::from_kv(e, kind, name),
    }
}

/// Pod Security and LimitRanges for a new object (a pod may get default requests
/// and limits); the warnings for the client.
pub async fn prepare(api: &ApiServer, kind: &Kind, object: &mut Object) -> Result<Vec<String>, ApiError> {
    let name = object.metadata().name().to_string();
    api.settings
        .admission
        .prepare(&api.kv, object)
        .await
        .map_err(|r| refused(kind, &name, r))
}

/// The quota writes a new object needs; a quota it would exceed refuses it.
pub async fn charges(api: &ApiServer, kind: &Kind, object: &Object) -> Result<Vec<Charge>, ApiError> {
    admission::charges(&api.kv, object)
        .await
        .map_err(|r| refused(kind, object.metadata().name(), r))
}

/// The quota writes an update's growth needs (a Service's new node ports, a
/// claim's larger request), to be written with it.
pub async fn update_charges(
    api: &ApiServer,
    kind: &Kind,
    stored: &serde_json::Value,
    new: &Object,
) -> Result<Vec<Charge>, ApiError> {
    use berth_api::kinds::{persistent_volume_claim::PERSISTENT_VOLUME_CLAIM, pod::POD, service::SERVICE};
    if ![&POD, &SERVICE, &PERSISTENT_VOLUME_CLAIM].contains(&kind) {
        return Ok(Vec::new());
    }
    let old = (kind.decode)(super::storage::for_storage(kind, stored.clone()))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    admission::update_charges(&api.kv, &old, new)
        .await
        .map_err(|r| refused(kind, new.metadata().name(), r))
}
