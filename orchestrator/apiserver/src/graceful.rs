//! DELETE of an object (namespaces aside): the DeleteOptions' preconditions
//! (`resourceVersion`, `uid`), and for a pod the graceful deletion Kubernetes does
//! (`berth_api::pod_deletion` decides): the pod is marked with a deletionTimestamp and
//! its grace and stays until its agent stopped its containers and deletes it with
//! grace 0 and a precondition on its uid. An object with finalizers (claims' and
//! volumes' protection) is marked too, and goes when its last finalizer is removed.
//!
//! ```text
//!  read stored ─► preconditions ─► pod? decide ─► Now: delete if still at the read revision
//!      ▲                                      ├─► Mark: update if still at the read revision
//!      │                                      └─► Pending: the stored object, unchanged
//!      └──────────── the object changed in between (conflict) ───────┘
//! ```

use std::time::SystemTime;

use serde_json::Value;

use super::ApiServer;
use super::prepare::{FieldValidation, validate};
use super::route::{Kind, is_pods};
use super::status::ApiError;
use super::storage::{self, decode};
use berth_api::objects::{NodeSpec, Pod, key};
use berth_api::pod_deletion::{Deletion, Request, decide};
use berth_api::time::format_rfc3339;
use berth_client::kv::KvError;

/// The DeleteOptions a delete was given (the query's `gracePeriodSeconds` merged in
/// by the caller).
pub(crate) struct Options {
    resource_version: Option<i64>,
    uid: Option<String>,
    pub(crate) grace_seconds: Option<i64>,
}

pub(crate) fn options_of(options: Option<&Value>) -> Result<Options, ApiError> {
    let field = |path: &str| options.and_then(|o| o.pointer(path)).filter(|v| !v.is_null());
    let resource_version = field("/preconditions/resourceVersion")
        .map(|version| {
            version.as_str().and_then(|v| v.parse::<i64>().ok()).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "preconditions.resourceVersion: {version} is not a resourceVersion"
                ))
            })
        })
        .transpose()?;
    let uid = field("/preconditions/uid")
        .map(|uid| {
            uid.as_str()
                .map(str::to_string)
                .ok_or_else(|| ApiError::bad_request(format!("preconditions.uid: {uid} is not a uid")))
        })
        .transpose()?;
    let grace_seconds = field("/gracePeriodSeconds")
        .map(|grace| {
            grace
                .as_i64()
                .ok_or_else(|| ApiError::bad_request(format!("gracePeriodSeconds: {grace} is not an integer")))
        })
        .transpose()?;
    Ok(Options {
        resource_version,
        uid,
        grace_seconds,
    })
}

/// Deletes (or, for a pod, starts deleting) the object; returns it as it was, or as
/// marked.
pub async fn delete(
    api: &ApiServer,
    kind: &Kind,
    namespace: &str,
    name: &str,
    options: Option<&Value>,
) -> Result<Value, ApiError> {
    let options = options_of(options)?;
    let key = kind.key(namespace, name);
    let error = |e: KvError| ApiError::from_kv(e, kind, name);
    loop {
        let record = api.kv.get(&key).await.map_err(error)?;
        let Some(record) = record else {
            return Err(ApiError::not_found(kind, name));
        };
        let stored = decode(kind, &record)?;
        if options.resource_version.is_some_and(|v| v != record.mod_revision) {
            return Err(ApiError::conflict(kind, name));
        }
        let stored_uid = stored.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
        if let Some(wanted) = &options.uid
            && wanted != stored_uid
        {
            return Err(ApiError::uid_precondition(kind, name, wanted, stored_uid));
        }
        let has_finalizers = stored
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let deletion = if is_pods(kind) {
            decide_for_pod(api, &stored, options.grace_seconds).await?
        } else if has_finalizers && super::prepare::is_terminating(&stored) {
            Deletion::Pending
        } else if has_finalizers {
            // Marked, and removed once the last finalizer is (by its controller).
            Deletion::Mark {
                at: berth_api::time::now(),
                grace_seconds: 0,
            }
        } else {
            Deletion::Now
        };
        let outcome = match deletion {
            Deletion::Pending => return Ok(stored),
            Deletion::Now => match api.kv.delete(&key, Some(record.mod_revision), None).await {
                Ok(previous) => decode(kind, &previous).map(Some),
                Err(e) => Err(error(e)),
            },
            Deletion::Mark { at, grace_seconds } => mark(api, kind, stored, &at, grace_seconds).await.map_err(error),
        };
        let outcome = match outcome {
            Ok(Some(done)) => return Ok(done),
            Ok(None) => continue,
            Err(e) => e,
        };
        match outcome {
            // Changed (or gone and made again) since read: decide again.
            ApiError { code: 409, .. } if options.resource_version.is_none() => continue,
            e => return Err(e),
        }
    }
}

pub(crate) async fn decide_for_pod(
    api: &ApiServer,
    stored: &Value,
    grace_seconds: Option<i64>,
) -> Result<Deletion, ApiError> {
    let pod: Pod = serde_json::from_value(stored.clone())
        .map_err(|e| ApiError::internal(format!("the stored pod does not decode: {e}")))?;
    let node = pod.spec.node_name.as_deref().unwrap_or("");
    let node_gone = !node.is_empty()
        && api
            .kv
            .get(&key::<NodeSpec>("", node))
            .await
            .map_err(ApiError::internal)?
            .is_none();
    Ok(decide(
        &pod,
        Request {
            grace_seconds,
            node_gone,
            now: SystemTime::now(),
        },
    ))
}

/// Writes the pod marked for deletion if it is still as read; None when it changed.
async fn mark(
    api: &ApiServer,
    kind: &Kind,
    mut stored: Value,
    at: &berth_api::meta::Time,
    grace_seconds: i64,
) -> Result<Option<Value>, KvError> {
    let first = stored.pointer("/metadata/deletionTimestamp").is_none_or(Value::is_null);
    let metadata = &mut stored["metadata"];
    metadata["deletionTimestamp"] = format_rfc3339(berth_api::time::to_system_time(at)).into();
    metadata["deletionGracePeriodSeconds"] = grace_seconds.into();
    if first && let Some(generation) = metadata.get("generation").and_then(Value::as_i64) {
        // Kubernetes counts the start of a graceful deletion as a new generation.
        metadata["generation"] = (generation + 1).into();
    }
    let object = match validate(kind, stored, FieldValidation::Ignore, &mut Vec::new()) {
        Ok(object) => object,
        Err(e) => {
            return Err(KvError::Other(format!(
                "the marked pod does not validate: {}",
                e.message
            )));
        }
    };
    match storage::update(&api.kv, &object).await {
        Ok(written) => Ok(Some(written)),
        Err(KvError::Conflict { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
