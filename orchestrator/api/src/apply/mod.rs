//! Server-side apply and field ownership, as kube-apiserver does them: every object
//! records in `metadata.managedFields` which manager owns which of its fields; an
//! apply sets a manager's fields and is refused when it would change fields others
//! own; every other write takes the fields it changes. Pure functions over JSON
//! values; the API server reads the stored object and the clock, calls `apply` or
//! `update`, and stores the result.
//!
//! ```text
//!  applied configuration ──► applied_fields ──► the applier's new field set
//!           │                                            │
//!           ▼                                            ▼
//!  live ──► merge ──► prune (fields it applied before, owned by nobody else now)
//!                        │
//!                        ▼
//!              compare(live, merged) ──► changed fields ∩ other managers' ──► 409
//!                        │                 (force: taken from them instead)
//!                        ▼
//!              merged object + managedFields (fieldsV1 per manager)
//!
//!  any other write:  compare(stored, new) ──► the writer owns what it changed;
//!                                             others lose that and what went
//! ```
//!
//! | file              | what                                                        |
//! |-------------------|-------------------------------------------------------------|
//! | `path`            | path elements (`f:`, `k:`, `v:`, `i:`) and their printing   |
//! | `field_set`       | sets of fields: union, difference, intersection             |
//! | `fields_v1`       | the JSON form in `managedFields`                            |
//! | `schema`          | list types (map keys, set, atomic) and atomic structs       |
//! | `applied_fields`  | the fields a configuration sets                             |
//! | `compare`         | what a write added, modified and removed                    |
//! | `merge`, `prune`  | a configuration merged into an object; fields taken out     |
//! | `managed`         | managers and their entries                                  |
//! | `conflict`        | conflicts and kube-apiserver's messages                     |
//! | `field_manager`   | `apply` and `update`                                        |
//! | `last_applied`    | taking over from client-side apply (manager `kubectl`)      |

mod applied_fields;
mod compare;
mod conflict;
mod field_manager;
mod field_set;
mod fields_v1;
mod last_applied;
mod managed;
mod merge;
mod path;
mod prune;
mod schema;

#[cfg(test)]
mod tests;

pub use applied_fields::applied_fields;
pub use compare::{Comparison, compare};
pub use conflict::{Conflict, Conflicts};
pub use field_manager::{Applied, ApplyError, BEFORE_FIRST_APPLY, Writer, apply, update};
pub use field_set::FieldSet;
pub use fields_v1::{from_fields_v1, to_fields_v1};
pub use last_applied::LAST_APPLIED;
pub use managed::{MAX_UPDATE_MANAGERS, Managed, ManagedFields, ManagerId, Operation};
pub use merge::merge;
pub use path::{Path, PathElement};
pub use schema::{ListType, MapKeys};
