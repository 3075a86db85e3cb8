//! PATCH: which of Kubernetes' patch types a request sends (its Content-Type), and
//! applying it to the stored object with `berth_api::patch`. Strategic merge
//! patches follow each kind's list strategies, read once per kind from its schema.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::route::Kind;
use super::status::ApiError;
use berth_api::kinds::KINDS;
use berth_api::patch::{self, PatchError, PatchSchema};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json` (RFC 6902): a list of operations.
    Json,
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/strategic-merge-patch+json`: lists merge by their keys.
    Strategic,
}

impl PatchType {
    pub fn of(content_type: &str) -> Result<PatchType, ApiError> {
        match content_type {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" => Err(ApiError::unsupported_media_type(
                "server-side apply (application/apply-patch+yaml) is not supported yet; \
                 use client-side apply (kubectl apply without --server-side)",
            )),
            other => Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, \
                 application/strategic-merge-patch+json (got {other:?})"
            ))),
        }
    }

    /// Reads the body: JSON, an array of operations for a JSON patch and an object
    /// for the others.
    pub fn decode(self, body: &[u8]) -> Result<Value, ApiError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
        match (self, &value) {
            (PatchType::Json, Value::Array(_)) => Ok(value),
            (PatchType::Json, _) => Err(ApiError::bad_request("a JSON patch must be a list of operations")),
            (_, Value::Object(_)) => Ok(value),
            _ => Err(ApiError::bad_request("a merge patch must be an object")),
        }
    }
}

/// The stored object with the patch applied; `kind: None` for views without list
/// strategies of their own (a `Scale`), which merge as merge patches do.
pub fn apply(kind: Option<&Kind>, patch_type: PatchType, original: &Value, patch: &Value) -> Result<Value, ApiError> {
    let result = match patch_type {
        PatchType::Json => patch::json_patch(original, patch),
        PatchType::Merge => Ok(patch::merge_patch(original, patch)),
        PatchType::Strategic => match kind {
            Some(kind) => patch::strategic_merge(original, patch, schema(kind)),
            None => patch::strategic_merge(original, patch, &PatchSchema::unknown()),
        },
    };
    result.map_err(|error| match error {
        PatchError::Malformed(_) => ApiError::bad_request(error.to_string()),
        // kube-apiserver answers a patch that cannot apply (a missing path, a failed
        // test, a list of lists) as Invalid.
        _ => ApiError::new(422, "Invalid", error.to_string()),
    })
}

fn schema(kind: &Kind) -> &'static PatchSchema {
    static SCHEMAS: OnceLock<BTreeMap<&'static str, PatchSchema>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| KINDS.iter().map(|k| (k.kind, PatchSchema::for_kind(k))).collect());
    &schemas[kind.kind]
}
