//! The patch module's one error type. Where kube-apiserver has words for a failure (its
//! JSON patch library, its strategic merge patch package), the message keeps those words,
//! so a user who knows Kubernetes' errors recognises them; berth adds where the failure
//! happened (the operation's index, the field's path) in front.

use serde_json::Value;

/// Why a patch could not be applied. The API server answers these as a client error:
/// the patch, not the stored object, is at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The patch document does not have the shape its patch type requires.
    #[error("{0}")]
    Malformed(String),

    /// A JSON patch (RFC 6902) operation failed; `index` counts from 0.
    #[error("json patch operation {index}: {failure}")]
    JsonPatch { index: usize, failure: JsonPatchFailure },

    /// A strategic merge patch could not be applied at `path` (a JSON pointer into the
    /// object; list elements are named by their position in the stored list).
    #[error("strategic merge patch at {path:?}: {failure}")]
    StrategicMerge {
        path: String,
        failure: StrategicMergeFailure,
    },
}

/// Why one JSON patch operation failed. The messages are those of the JSON patch library
/// kube-apiserver uses, so `testing value /spec/replicas failed: test failed` reads the same.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonPatchFailure {
    #[error("operation is not a JSON object")]
    NotAnOperation,

    /// `op` is missing (Kubernetes calls that kind "unknown") or not one of RFC 6902's six.
    #[error("Unexpected kind: {kind}")]
    UnexpectedKind { kind: String },

    /// `path`, `from` or `value` is missing (or, for `path` and `from`, not a string).
    #[error("{}", missing_field(field))]
    MissingField { field: &'static str },

    /// `pointer` is not a JSON pointer (RFC 6901).
    #[error("invalid JSON pointer {pointer:?}: {reason}")]
    InvalidPointer { pointer: String, reason: &'static str },

    /// The container that `path` names a member of does not exist.
    #[error("{}", missing_path(op, path))]
    MissingPath { op: &'static str, path: String },

    /// `replace` of a member or element that does not exist.
    #[error("replace operation does not apply: doc is missing key: {path}: missing value")]
    MissingKey { path: String },

    /// `remove` of an object member that does not exist.
    #[error("error in remove for path: '{path}': Unable to remove nonexistent key: {key}: missing value")]
    NonexistentKey { path: String, key: String },

    /// `move` or `copy` from a location that does not exist.
    #[error("{op} operation does not apply: doc is missing from path: {from}: missing value")]
    MissingFrom { op: &'static str, from: String },

    /// `move` or `copy` to a location whose container does not exist.
    #[error("{op} operation does not apply: doc is missing destination path: {path}: missing value")]
    MissingDestination { op: &'static str, path: String },

    /// An array index past the end (or past the end plus one, for `add`).
    #[error("error in {op} for path: '{path}': Unable to access invalid index: {index}: invalid index referenced")]
    InvalidIndex {
        op: &'static str,
        path: String,
        index: usize,
    },

    /// An array element named by something other than a decimal index (or `-` for `add`).
    #[error("error in {op} for path: '{path}': value was not a proper array index: '{token}'")]
    NotAnIndex {
        op: &'static str,
        path: String,
        token: String,
    },

    /// A `test` operation found a different value (or none).
    #[error("testing value {path} failed: test failed")]
    TestFailed { path: String },
}

fn missing_field(field: &str) -> String {
    // The library's own two spellings: "operation missing path field" and
    // "operation, missing from field" / "operation, missing value field".
    if field == "path" {
        "operation missing path field: missing value".to_owned()
    } else {
        format!("operation, missing {field} field: missing value")
    }
}

fn missing_path(op: &str, path: &str) -> String {
    match op {
        "add" | "remove" => {
            format!("{op} operation does not apply: doc is missing path: \"{path}\": missing value")
        }
        "test" => format!("test operation does not apply: is missing path: {path}: missing value"),
        _ => format!("{op} operation does not apply: doc is missing path: {path}: missing value"),
    }
}

/// Why a strategic merge patch could not be applied. The messages are those of
/// Kubernetes' strategic merge patch package, with JSON in place of Go's map printing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StrategicMergeFailure {
    /// The patch (or the stored object) is not a JSON object.
    #[error("invalid JSON document")]
    NotAnObject,

    /// `$patch` with a value other than `replace`, `delete` or `merge`.
    #[error("unknown patch type: {directive} in map: {element}")]
    UnknownDirective { directive: String, element: Value },

    /// An element of a list merged by key lacks the key.
    #[error("map: {element} does not contain declared merge key: {merge_key}")]
    MissingMergeKey { element: Value, merge_key: String },

    /// The stored value and the patch disagree on whether a field is a list or a map, where
    /// a directive needs one of them.
    #[error("expected a {expected}, but received a {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },

    #[error("lists of lists are not supported")]
    ListOfLists,

    /// The elements of a merged list (stored and patch together) are not all of one kind.
    #[error("list element types are not identical: {elements}")]
    MixedElementTypes { elements: Value },

    /// A list of objects whose field has the merge strategy but no merge key.
    #[error("cannot merge lists without merge key for {definition}")]
    NoMergeKey { definition: String },

    /// `$deleteFromPrimitiveList/<field>` that is not a list, or has no field name.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveList,

    /// `$retainKeys` that is not a list, or a patch member the list does not name.
    #[error("invalid patch format of retainKeys{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    BadRetainKeys { detail: Option<String> },

    /// `$setElementOrder/<field>` that is not a list, or has no field name.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrder,

    /// The patch list names elements in an order `$setElementOrder` contradicts, or names
    /// one it lacks.
    #[error("The order in patch list: {patch} doesn't match $setElementOrder list: {order}")]
    OrderMismatch { patch: Value, order: Value },
}

/// The JSON word for a value's kind, for messages.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}
