//! The three patch types kube-apiserver accepts on PATCH, as pure functions over JSON
//! values: the API server reads the stored object, calls one of these by the request's
//! Content-Type, and validates and stores the result.
//!
//! | Content-Type                              | function          | sent by                          |
//! |-------------------------------------------|-------------------|----------------------------------|
//! | `application/json-patch+json`             | `json_patch`      | `kubectl patch --type json`      |
//! | `application/merge-patch+json`            | `merge_patch`     | `kubectl patch --type merge`     |
//! | `application/strategic-merge-patch+json`  | `strategic_merge` | `kubectl apply`, `set image`, `edit`, `patch` |
//!
//! ```text
//!  stored object ─┐
//!  patch ─────────┼─► json_patch / merge_patch / strategic_merge ─► patched object
//!  PatchSchema ───┘            (strategic only: which lists merge, by which key)
//!      ▲
//!      │ PatchSchema::for_type::<k8s_openapi::api::apps::v1::Deployment>(), once per kind:
//!      │ the kind's JSON schema (schemars) + the strategy table (strategy.rs)
//! ```
//!
//! Nothing here does I/O, and a failed patch leaves the stored object as it was: every
//! function works on a copy and returns it.

mod error;
mod json_patch;
mod merge_patch;
mod pointer;
pub(crate) mod schema;
mod strategic;
mod strategy;
pub(crate) mod value;

pub use error::{JsonPatchFailure, PatchError, StrategicMergeFailure};
pub use json_patch::json_patch;
pub use merge_patch::merge_patch;
pub use schema::PatchSchema;
pub use strategic::strategic_merge;
pub use strategy::{FieldStrategy, PATCH_STRATEGIES, StrategyFact};
