//! The text of `berth describe`, laid out as kubectl's describers lay it out (the
//! same labels, levels of two spaces, and Go tabwriter alignment). Pure: the
//! command fetches the objects, these functions only write.
//!
//! One file per kind, as kubectl has one describer per kind; the blocks that several
//! kinds print (a container, a pod template, labels, times) live in their own files.

mod any_kind;
mod container;
mod deployment;
mod events;
mod namespace;
mod node;
mod pod;
mod pod_template;
mod replica_set;
mod text;

pub use any_kind::any;
pub use deployment::deployment;
pub use events::events;
pub use namespace::namespace;
pub use node::node;
pub use pod::pod;
pub use replica_set::replica_set;

/// A typed object from the JSON the API server would return, for the tests' fixtures.
#[cfg(test)]
fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).unwrap()
}
