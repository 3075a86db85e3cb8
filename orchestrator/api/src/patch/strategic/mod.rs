//! Strategic merge patch, `application/strategic-merge-patch+json`: what `kubectl apply`,
//! `kubectl set image`, `kubectl edit` and `kubectl patch` (by default) send. A JSON merge
//! patch that knows, from the kind's schema and Kubernetes' patch strategies, which lists
//! merge element by element (containers by name) instead of being replaced, and that
//! takes directives (`$patch`, `$retainKeys`, `$setElementOrder/`,
//! `$deleteFromPrimitiveList/`; see `directive.rs`).
//!
//! The semantics are those of kube-apiserver applying a patch to a built-in kind (the
//! Go package k8s.io/apimachinery/pkg/util/strategicpatch with the options the API server
//! uses: nulls delete, and parallel deletion lists apply). `map.rs` holds the walk,
//! `list.rs` the merging of lists, `order.rs` the order of merged lists. Two departures,
//! both where Kubernetes would leave the decoding of its typed objects to clean up:
//! directives and null members are stripped from values that land where nothing is
//! stored; and `$patch: merge` is accepted as the default it names instead of rejected.

mod directive;
mod list;
mod map;
mod order;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use super::error::{PatchError, StrategicMergeFailure};
use super::pointer::escape;
use super::schema::PatchSchema;

/// Applies the strategic merge patch `patch` to `original`, an object of the kind that
/// `schema` describes.
pub fn strategic_merge(original: &Value, patch: &Value, schema: &PatchSchema) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(fail("", StrategicMergeFailure::NotAnObject));
    };
    let original = match original {
        Value::Object(original) => original.clone(),
        Value::Null => Map::new(),
        _ => return Err(fail("", StrategicMergeFailure::NotAnObject)),
    };
    map::merge_map(original, patch, schema.root(), "").map(Value::Object)
}

fn fail(path: &str, failure: StrategicMergeFailure) -> PatchError {
    PatchError::StrategicMerge {
        path: path.to_owned(),
        failure,
    }
}

/// The pointer to member (or element) `name` of the value at `path`.
fn child(path: &str, name: &str) -> String {
    format!("{path}/{}", escape(name))
}
