//! The orchestrator's API objects (Kubernetes-shaped): metadata, the kinds, resource
//! quantities, and validation that names the field at fault. The API server, the
//! controllers and the scheduler of the orchestrator issue build on these.

pub mod meta;
pub mod objects;
pub mod quantity;
pub mod time;
pub mod validation;
