//! The numbers a Deployment's strategy allows, as Kubernetes resolves them: with
//! `RollingUpdate`, `maxSurge` pods above `spec.replicas` (a percentage rounded up)
//! and `maxUnavailable` below it (rounded down; 1 when both come to 0, so a
//! rollout can always move); with `Recreate`, neither.

use berth_api::int_or_percent::scaled;
use berth_api::kinds::deployment::{DEFAULT_MAX_SURGE_AND_UNAVAILABLE, RECREATE};
use berth_api::objects::{Deployment, IntOrString};

use crate::spec_replicas;

/// Whether the Deployment rolls (anything but `Recreate`: a strategy left out is
/// the default, RollingUpdate).
pub fn is_rolling_update(deployment: &Deployment) -> bool {
    let strategy = deployment.spec.strategy.as_ref();
    strategy.and_then(|s| s.type_.as_deref()) != Some(RECREATE)
}

/// `(maxSurge, maxUnavailable)` resolved against `spec.replicas`; (0, 0) for Recreate.
fn fenceposts(deployment: &Deployment) -> (i32, i32) {
    if !is_rolling_update(deployment) {
        return (0, 0);
    }
    let replicas = spec_replicas(deployment.spec.replicas).max(0);
    let rolling = deployment
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    let default = || IntOrString::String(DEFAULT_MAX_SURGE_AND_UNAVAILABLE.to_string());
    let surge = rolling.and_then(|r| r.max_surge.clone()).unwrap_or_else(default);
    let unavailable = rolling.and_then(|r| r.max_unavailable.clone()).unwrap_or_else(default);
    // Validation refuses what does not parse; read it as 0 if it got stored anyway.
    let surge = scaled(&surge, replicas, true).unwrap_or(0).max(0);
    let unavailable = scaled(&unavailable, replicas, false).unwrap_or(0).max(0);
    if surge == 0 && unavailable == 0 {
        return (0, 1);
    }
    (surge, unavailable)
}

/// How many pods above `spec.replicas` a rollout may run.
pub fn max_surge(deployment: &Deployment) -> i32 {
    fenceposts(deployment).0
}

/// How many of `spec.replicas` may be unavailable during a rollout (never more
/// than all of them; none for Recreate or with no replicas).
pub fn max_unavailable(deployment: &Deployment) -> i32 {
    let replicas = spec_replicas(deployment.spec.replicas).max(0);
    if !is_rolling_update(deployment) || replicas == 0 {
        return 0;
    }
    fenceposts(deployment).1.min(replicas)
}
