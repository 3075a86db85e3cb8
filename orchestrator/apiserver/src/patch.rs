//! PATCH: which of Kubernetes' patch types a request sends (its Content-Type), and
//! applying it to the stored object with `berth_api::patch`. Strategic merge
//! patches follow each kind's list strategies, read once per kind from its schema.
//! Server-side apply (`application/apply-patch+yaml`) goes through
//! `managed_fields::apply` instead, over the same schema.

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
    /// `application/apply-patch+yaml`: server-side apply of a configuration (YAML or
    /// JSON), with field ownership.
    Apply,
}

impl PatchType {
    pub fn of(content_type: &str) -> Result<PatchType, ApiError> {
        match content_type {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" => Ok(PatchType::Apply),
            other => Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, \
                 application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
            ))),
        }
    }

    /// Reads the body: JSON, an array of operations for a JSON patch and an object
    /// for the others; an applied configuration is YAML (or JSON, which is YAML).
    pub fn decode(self, body: &[u8]) -> Result<Value, ApiError> {
        if self == PatchType::Apply {
            let value: Value = serde_yaml_ng::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            return match value {
                Value::Object(_) => Ok(value),
                _ => Err(ApiError::bad_request(
                    "error decoding YAML: an applied configuration must be an object",
                )),
            };
        }
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
        PatchType::Apply => {
            return Err(ApiError::unsupported_media_type(
                "apply patches (application/apply-patch+yaml) are taken by objects and their status, \
                 not by this subresource",
            ));
        }
    };
    result.map_err(|error| match error {
        PatchError::Malformed(_) => ApiError::bad_request(error.to_string()),
        // kube-apiserver answers a patch that cannot apply (a missing path, a failed
        // test, a list of lists) as Invalid.
        _ => ApiError::new(422, "Invalid", error.to_string()),
    })
}

/// The patch schema of a kind, compiled once.
pub fn schema(kind: &Kind) -> &'static PatchSchema {
    static SCHEMAS: OnceLock<BTreeMap<(String, &'static str), PatchSchema>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        KINDS
            .iter()
            .map(|k| ((k.api_version(), k.kind), PatchSchema::for_kind(k)))
            .collect()
    });
    &schemas[&(kind.api_version(), kind.kind)]
}
