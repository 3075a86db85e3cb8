//! LimitRange admission (Kubernetes' LimitRanger): a new pod's containers get the
//! namespace's default requests and limits where they name none, then every
//! container (type `Container`), the pod as a whole (`Pod`) and every claim
//! (`PersistentVolumeClaim`) is held to the ranges' `min`, `max` and
//! `maxLimitRequestRatio`, with Kubernetes' messages.

use std::collections::BTreeMap;

pub use k8s_openapi::api::core::v1::LimitRange;
use k8s_openapi::api::core::v1::{LimitRangeItem, ResourceRequirements};

use super::amount::{self, Milli};
use crate::objects::{Container, PersistentVolumeClaimSpec, PodSpec, Quantity};

pub const CONTAINER: &str = "Container";
pub const POD: &str = "Pod";
pub const PERSISTENT_VOLUME_CLAIM: &str = "PersistentVolumeClaim";

type List = BTreeMap<String, Quantity>;

fn items(ranges: &[LimitRange]) -> impl Iterator<Item = &LimitRangeItem> {
    ranges.iter().flat_map(|r| r.spec.iter().flat_map(|s| s.limits.iter()))
}

/// Fills in each container's missing requests and limits from the `Container`
/// ranges' `defaultRequest` and `default` (the first range that has one wins). A
/// request left out where the container has a limit is the limit, as Kubernetes'
/// defaulting makes it before the ranges are read. Returns whether anything changed.
pub fn apply_defaults(ranges: &[LimitRange], spec: &mut PodSpec) -> bool {
    let mut changed = false;
    for item in items(ranges).filter(|i| i.type_ == CONTAINER) {
        let containers = spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten());
        for container in containers {
            changed |= default_container(item, container);
        }
    }
    changed
}

fn default_container(item: &LimitRangeItem, container: &mut Container) -> bool {
    let mut changed = false;
    let resources = container.resources.get_or_insert_with(ResourceRequirements::default);
    let own_limits = resources.limits.clone().unwrap_or_default();
    for (name, value) in item.default.iter().flatten() {
        let limits = resources.limits.get_or_insert_with(BTreeMap::new);
        if !limits.contains_key(name) {
            limits.insert(name.clone(), value.clone());
            changed = true;
        }
    }
    for (name, value) in item.default_request.iter().flatten() {
        let limit = own_limits.get(name).cloned();
        let requests = resources.requests.get_or_insert_with(BTreeMap::new);
        if !requests.contains_key(name) {
            requests.insert(name.clone(), limit.unwrap_or_else(|| value.clone()));
            changed = true;
        }
    }
    if resources.limits.as_ref().is_some_and(BTreeMap::is_empty) {
        resources.limits = None;
    }
    if resources.requests.as_ref().is_some_and(BTreeMap::is_empty) {
        resources.requests = None;
    }
    if resources == &ResourceRequirements::default() {
        container.resources = None;
    }
    changed
}

/// A container's requests (a missing one is its limit) and limits.
fn container_lists(container: &Container) -> (List, List) {
    let resources = container.resources.clone().unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    let mut requests = resources.requests.unwrap_or_default();
    for (name, value) in &limits {
        requests.entry(name.clone()).or_insert_with(|| value.clone());
    }
    (requests, limits)
}

fn milli(list: &List, name: &str) -> Option<Milli> {
    list.get(name).and_then(amount::of)
}

/// The pod's effective requests or limits: the sum over its containers (and
/// sidecars), or the largest init container's if that is more.
pub fn pod_totals(spec: &PodSpec, limits: bool) -> BTreeMap<String, Milli> {
    let pick = |c: &Container| {
        let (requests, limit_list) = container_lists(c);
        if limits { limit_list } else { requests }
    };
    let mut total: BTreeMap<String, Milli> = BTreeMap::new();
    let mut sidecars: BTreeMap<String, Milli> = BTreeMap::new();
    let mut init_peak: BTreeMap<String, Milli> = BTreeMap::new();
    for c in spec.init_containers.iter().flatten() {
        let list = pick(c);
        let is_sidecar = c.restart_policy.as_deref() == Some("Always");
        for (name, q) in &list {
            let v = amount::of(q).unwrap_or(0);
            if is_sidecar {
                *total.entry(name.clone()).or_default() += v;
                *sidecars.entry(name.clone()).or_default() += v;
            }
        }
        for (name, q) in &list {
            let v = amount::of(q).unwrap_or(0);
            let at_start = if is_sidecar {
                sidecars.get(name).copied().unwrap_or(0)
            } else {
                v + sidecars.get(name).copied().unwrap_or(0)
            };
            let peak = init_peak.entry(name.clone()).or_default();
            *peak = (*peak).max(at_start);
        }
    }
    for c in &spec.containers {
        for (name, q) in pick(c) {
            *total.entry(name).or_default() += amount::of(&q).unwrap_or(0);
        }
    }
    for (name, peak) in init_peak {
        let sum = total.entry(name).or_default();
        *sum = (*sum).max(peak);
    }
    total
}

fn text(list: &List, name: &str) -> String {
    list.get(name).map(|q| q.0.clone()).unwrap_or_default()
}

/// Kubernetes' `minConstraint`.
fn min_constraint(kind: &str, name: &str, enforced: &Quantity, requests: &List, limits: &List) -> Option<String> {
    let bound = amount::of(enforced)?;
    let Some(request) = milli(requests, name) else {
        return Some(format!(
            "minimum {name} usage per {kind} is {}.  No request is specified",
            enforced.0
        ));
    };
    if request < bound {
        return Some(format!(
            "minimum {name} usage per {kind} is {}, but request is {}",
            enforced.0,
            text(requests, name)
        ));
    }
    if milli(limits, name).is_some_and(|limit| limit < bound) {
        return Some(format!(
            "minimum {name} usage per {kind} is {}, but limit is {}",
            enforced.0,
            text(limits, name)
        ));
    }
    None
}

/// Kubernetes' `maxConstraint`.
fn max_constraint(kind: &str, name: &str, enforced: &Quantity, requests: &List, limits: &List) -> Option<String> {
    let bound = amount::of(enforced)?;
    let Some(limit) = milli(limits, name) else {
        return Some(format!(
            "maximum {name} usage per {kind} is {}.  No limit is specified",
            enforced.0
        ));
    };
    if limit > bound {
        return Some(format!(
            "maximum {name} usage per {kind} is {}, but limit is {}",
            enforced.0,
            text(limits, name)
        ));
    }
    if milli(requests, name).is_some_and(|request| request > bound) {
        return Some(format!(
            "maximum {name} usage per {kind} is {}, but request is {}",
            enforced.0,
            text(requests, name)
        ));
    }
    None
}

/// Kubernetes' `maxRequestConstraint` (claims: only requests count).
fn max_request_constraint(kind: &str, name: &str, enforced: &Quantity, requests: &List) -> Option<String> {
    let bound = amount::of(enforced)?;
    let Some(request) = milli(requests, name) else {
        return Some(format!(
            "maximum {name} usage per {kind} is {}.  No request is specified",
            enforced.0
        ));
    };
    (request > bound).then(|| {
        format!(
            "maximum {name} usage per {kind} is {}, but request is {}",
            enforced.0,
            text(requests, name)
        )
    })
}

/// Kubernetes' `limitRequestRatioConstraint`.
fn ratio_constraint(kind: &str, name: &str, enforced: &Quantity, requests: &List, limits: &List) -> Option<String> {
    let ratio = amount::of(enforced)?;
    let request = milli(requests, name).filter(|&r| r != 0);
    let limit = milli(limits, name).filter(|&l| l != 0);
    let Some(request) = request else {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {}, but no request is specified or request is 0",
            enforced.0
        ));
    };
    let Some(limit) = limit else {
        return Some(format!(
            "{name} max limit to request ratio per {kind} is {}, but no limit is specified or limit is 0",
            enforced.0
        ));
    };
    // limit / request > ratio / 1000, in integers.
    (limit * 1000 > ratio * request).then(|| {
        format!(
            "{name} max limit to request ratio per {kind} is {}, but provided ratio is {:.6}",
            enforced.0,
            limit as f64 / request as f64
        )
    })
}

/// Every bound one item sets, held against `requests` and `limits`.
fn bounds(item: &LimitRangeItem, requests: &List, limits: &List, errors: &mut Vec<String>) {
    let kind = item.type_.as_str();
    for (name, q) in item.min.iter().flatten() {
        errors.extend(min_constraint(kind, name, q, requests, limits));
    }
    for (name, q) in item.max.iter().flatten() {
        errors.extend(max_constraint(kind, name, q, requests, limits));
    }
    for (name, q) in item.max_limit_request_ratio.iter().flatten() {
        errors.extend(ratio_constraint(kind, name, q, requests, limits));
    }
}

fn as_list(totals: BTreeMap<String, Milli>) -> List {
    totals
        .into_iter()
        .map(|(name, v)| {
            let q = amount::quantity(&name, v);
            (name, q)
        })
        .collect()
}

/// What a pod breaks of the ranges, in Kubernetes' words (empty: it fits).
pub fn pod_errors(ranges: &[LimitRange], spec: &PodSpec) -> Vec<String> {
    let mut errors = Vec::new();
    for item in items(ranges) {
        match item.type_.as_str() {
            CONTAINER => {
                for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
                    let (requests, limits) = container_lists(c);
                    bounds(item, &requests, &limits, &mut errors);
                }
            }
            POD => {
                let requests = as_list(pod_totals(spec, false));
                let limits = as_list(pod_totals(spec, true));
                bounds(item, &requests, &limits, &mut errors);
            }
            _ => {}
        }
    }
    errors
}

/// What a claim breaks of the ranges (its requests against `min` and `max`).
pub fn claim_errors(ranges: &[LimitRange], spec: &PersistentVolumeClaimSpec) -> Vec<String> {
    let requests = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .unwrap_or_default();
    let mut errors = Vec::new();
    for item in items(ranges).filter(|i| i.type_ == PERSISTENT_VOLUME_CLAIM) {
        for (name, q) in item.min.iter().flatten() {
            errors.extend(min_constraint(&item.type_, name, q, &requests, &List::new()));
        }
        for (name, q) in item.max.iter().flatten() {
            errors.extend(max_request_constraint(&item.type_, name, q, &requests));
        }
    }
    errors
}

/// Several errors as Kubernetes aggregates them: one alone, more in brackets.
pub fn aggregate(errors: &[String]) -> Option<String> {
    match errors {
        [] => None,
        [one] => Some(one.clone()),
        many => Some(format!("[{}]", many.join(", "))),
    }
}

#[cfg(test)]
#[path = "limit_range_tests.rs"]
mod tests;
