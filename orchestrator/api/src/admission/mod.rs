//! Admission's pure rules: what the API server and the controllers that create
//! pods and claims apply to a new object after validation and before it is
//! written (the store-side steps, reading the namespace's ranges and quotas and
//! charging them, are `berth-client`'s `admission`).
//!
//! - [`pod_security`]: the Pod Security Standards by namespace label;
//! - [`limit_range`]: LimitRanges' defaults and bounds;
//! - [`quota`]: ResourceQuotas' usage and the charge of a new object;
//! - [`service_account`]: the account of a pod, its pull secrets and token volume;
//! - [`amount`]: exact arithmetic on resource quantities.

pub mod amount;
pub mod limit_range;
pub mod pod_security;
pub mod quota;
pub mod service_account;
