//! Deleting a namespace deletes everything in it, in three steps that are safe to
//! repeat after a crash at any point (a second DELETE finishes the job):
//!
//! ```text
//! 1. mark it terminating (deletionTimestamp, phase Terminating): creates in it are
//!    refused from now on, and a create that read it before fails, because creates
//!    are fenced by the namespace record's revision
//! 2. delete every namespaced object in it, kind by kind
//! 3. delete the namespace record
//! ```
//!
//! `default` cannot be deleted, as in Kubernetes.

use serde_json::Value;

use super::ApiServer;
use super::prepare::{FieldValidation, is_terminating, resource_version, validate};
use super::rest::get;
use super::route::namespaces;
use super::status::ApiError;
use super::storage::{self, decode};
use berth_api::kinds::KINDS;
use berth_api::time::now_rfc3339;
use berth_client::kv::KvError;

pub async fn delete(api: &ApiServer, name: &str) -> Result<Value, ApiError> {
    let kind = namespaces();
    if name == "default" {
        return Err(ApiError::forbidden(kind, name, "this namespace may not be deleted"));
    }
    let marked = mark_terminating(api, name).await?;
    for contained in KINDS.iter().filter(|k| k.namespaced) {
        let (kvs, _) = api
            .kv
            .list(&contained.prefix(Some(name)))
            .await
            .map_err(|e| ApiError::from_kv(e, kind, name))?;
        for kv in kvs {
            match api.kv.delete(&kv.key, None, None).await {
                Ok(_) | Err(KvError::NotFound) => {}
                Err(e) => return Err(ApiError::from_kv(e, kind, name)),
            }
        }
    }
    match api.kv.delete(&kind.key("", name), None, None).await {
        Ok(previous) => decode(kind, &previous),
        // A concurrent deletion finished first.
        Err(KvError::NotFound) => Ok(marked),
        Err(e) => Err(ApiError::from_kv(e, kind, name)),
    }
}

async fn mark_terminating(api: &ApiServer, name: &str) -> Result<Value, ApiError> {
    let kind = namespaces();
    loop {
        let stored = get(api, kind, "", name).await?;
        if is_terminating(&stored) {
            return Ok(stored);
        }
        let mut marked = stored.clone();
        marked["metadata"]["deletionTimestamp"] = now_rfc3339().into();
        marked["metadata"]["resourceVersion"] = resource_version(&stored).into();
        marked["status"] = serde_json::json!({"phase": "Terminating"});
        let object = validate(kind, marked, FieldValidation::Ignore, &mut Vec::new())?;
        match storage::update(&api.kv, &object).await {
            Ok(written) => return Ok(written),
            Err(KvError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_kv(e, kind, name)),
        }
    }
}
