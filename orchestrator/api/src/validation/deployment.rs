//! A Deployment's `strategy`, by Kubernetes' rules and with its messages:
//! `Recreate`, or `RollingUpdate` with `maxSurge` and `maxUnavailable` each a count or
//! a percentage (not both 0, unavailability at most 100%).

use super::{Errors, err};
use crate::int_or_percent::percent;
use crate::kinds::deployment::{RECREATE, ROLLING_UPDATE};
use crate::objects::{DeploymentSpec, IntOrString};

pub fn deployment_strategy(spec: &DeploymentSpec, errors: &mut Errors) {
    let strategy = spec.strategy.clone().unwrap_or_default();
    match strategy.type_.as_deref() {
        Some(RECREATE) => {
            if strategy.rolling_update.is_some() {
                err(
                    errors,
                    "spec.strategy.rollingUpdate",
                    "Forbidden: may not be specified when strategy `type` is 'Recreate'",
                );
            }
        }
        Some(ROLLING_UPDATE) => {
            let Some(rolling) = strategy.rolling_update else {
                err(
                    errors,
                    "spec.strategy.rollingUpdate",
                    "Required value: this should be defaulted and never be nil",
                );
                return;
            };
            let at = "spec.strategy.rollingUpdate";
            let unavailable = rolling.max_unavailable.unwrap_or(IntOrString::Int(0));
            let surge = rolling.max_surge.unwrap_or(IntOrString::Int(0));
            int_or_percent(&unavailable, &format!("{at}.maxUnavailable"), errors);
            int_or_percent(&surge, &format!("{at}.maxSurge"), errors);
            if is_zero(&unavailable) && is_zero(&surge) {
                err(
                    errors,
                    format!("{at}.maxUnavailable"),
                    format!(
                        "Invalid value: {}: may not be 0 when `maxSurge` is 0",
                        shown(&unavailable)
                    ),
                );
            }
            if let IntOrString::String(text) = &unavailable
                && percent(text).is_some_and(|p| p > 100)
            {
                err(
                    errors,
                    format!("{at}.maxUnavailable"),
                    format!("Invalid value: {text:?}: must not be greater than 100%"),
                );
            }
        }
        other => err(
            errors,
            "spec.strategy.type",
            format!(
                "Unsupported value: {:?}: supported values: \"Recreate\", \"RollingUpdate\"",
                other.unwrap_or_default()
            ),
        ),
    }
}

fn int_or_percent(value: &IntOrString, field: &str, errors: &mut Errors) {
    match value {
        IntOrString::Int(n) if *n < 0 => err(
            errors,
            field,
            format!("Invalid value: {n}: must be greater than or equal to 0"),
        ),
        IntOrString::String(text) if percent(text).is_none() => err(
            errors,
            field,
            format!(
                "Invalid value: {text:?}: a valid percent string must be a numeric string followed by an \
                 ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"
            ),
        ),
        _ => {}
    }
}

fn is_zero(value: &IntOrString) -> bool {
    match value {
        IntOrString::Int(n) => *n == 0,
        IntOrString::String(text) => percent(text) == Some(0),
    }
}

fn shown(value: &IntOrString) -> String {
    match value {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(text) => format!("{text:?}"),
    }
}
