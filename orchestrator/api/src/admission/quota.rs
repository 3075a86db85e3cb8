//! ResourceQuota arithmetic (Kubernetes' quota evaluators and its admission
//! check): what an object uses of the quota's resources, and whether a new one fits
//! a quota, with Kubernetes' messages.
//!
//! Usage by kind:
//! - every object: `count/<resource>[.<group>]`; ConfigMaps, Secrets,
//!   PersistentVolumeClaims, Services, ResourceQuotas also `<resource>`;
//! - a pod: `pods` and its compute requests and limits (`requests.cpu`, `cpu`,
//!   `limits.memory`, ...), unless it has ended (Succeeded or Failed);
//! - a Service: `services.nodeports` (its node ports), `services.loadbalancers`;
//! - a claim: `requests.storage`, and per class
//!   `<class>.storageclass.storage.k8s.io/requests.storage` and `/persistentvolumeclaims`.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{ResourceQuotaSpec, ResourceQuotaStatus};

pub use super::amount::Amounts;
use super::amount::{self, Milli};
use super::limit_range::pod_totals;
use crate::kinds::Object;
use crate::objects::{PersistentVolumeClaim, Pod, ResourceQuota};

const ONE: Milli = 1000;

/// The resources a kind is counted under without `count/` (Kubernetes' legacy names).
const BARE_COUNTS: &[&str] = &[
    "configmaps",
    "persistentvolumeclaims",
    "pods",
    "replicationcontrollers",
    "resourcequotas",
    "secrets",
    "services",
];

/// `count/deployments.apps`, `count/pods`.
pub fn count_name(plural: &str, group: &str) -> String {
    if group.is_empty() {
        format!("count/{plural}")
    } else {
        format!("count/{plural}.{group}")
    }
}

/// What `object` uses of quota's resources.
pub fn usage(object: &Object) -> Amounts {
    let kind = object.descriptor();
    let mut usage = Amounts::new();
    usage.insert(count_name(kind.plural, kind.group), ONE);
    if kind.group.is_empty() && BARE_COUNTS.contains(&kind.plural) && kind.plural != "pods" {
        usage.insert(kind.plural.to_string(), ONE);
    }
    if let Some(pod) = object.downcast_ref::<Pod>() {
        usage.extend(pod_usage(pod));
    } else if let Some(service) = object.downcast_ref::<crate::kinds::service::Service>() {
        let type_ = service.spec.type_.as_deref().unwrap_or("ClusterIP");
        if type_ == "LoadBalancer" {
            usage.insert("services.loadbalancers".into(), ONE);
        }
        if type_ == "NodePort" || type_ == "LoadBalancer" {
            let ports = service.spec.ports.as_ref().map_or(0, Vec::len) as Milli;
            usage.insert("services.nodeports".into(), ports * ONE);
        }
    } else if let Some(claim) = object.downcast_ref::<PersistentVolumeClaim>() {
        let storage = claim
            .spec
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .and_then(amount::of)
            .unwrap_or(0);
        usage.insert("requests.storage".into(), storage);
        if let Some(class) = claim.spec.storage_class_name.as_deref().filter(|c| !c.is_empty()) {
            let prefix = format!("{class}.storageclass.storage.k8s.io/");
            usage.insert(format!("{prefix}requests.storage"), storage);
            usage.insert(format!("{prefix}persistentvolumeclaims"), ONE);
        }
    }
    usage
}

/// Whether a pod still counts toward compute quota: not Succeeded or Failed.
pub fn pod_counts(pod: &Pod) -> bool {
    !matches!(pod.status.phase.as_deref(), Some("Succeeded" | "Failed"))
}

/// A pod's `pods` and compute usage (nothing for one that has ended).
fn pod_usage(pod: &Pod) -> Amounts {
    let mut usage = Amounts::new();
    if !pod_counts(pod) {
        return usage;
    }
    usage.insert("pods".into(), ONE);
    for (name, value) in pod_totals(&pod.spec, false) {
        if ["cpu", "memory", "ephemeral-storage"].contains(&name.as_str()) {
            usage.insert(name.clone(), value);
        }
        usage.insert(format!("requests.{name}"), value);
    }
    for (name, value) in pod_totals(&pod.spec, true) {
        usage.insert(format!("limits.{name}"), value);
    }
    usage
}

/// Whether a quota's resource is one objects of this usage's kind are counted under
/// (Kubernetes' `MatchingResources`).
fn matches(resource: &str, object: &Object) -> bool {
    let kind = object.descriptor();
    if resource == count_name(kind.plural, kind.group) || (kind.group.is_empty() && resource == kind.plural) {
        return true;
    }
    match (kind.group, kind.plural) {
        ("", "pods") => {
            ["cpu", "memory", "ephemeral-storage"].contains(&resource)
                || (resource.starts_with("requests.") && resource != "requests.storage")
                || resource.starts_with("limits.")
        }
        ("", "services") => resource == "services.nodeports" || resource == "services.loadbalancers",
        ("", "persistentvolumeclaims") => {
            resource == "requests.storage" || resource.contains(".storageclass.storage.k8s.io/")
        }
        _ => false,
    }
}

/// The compute resources a quota makes every container name (Kubernetes' pod
/// evaluator constraints): `must specify limits.cpu for: a,b; requests.memory for: a`.
fn missing_compute(required: &BTreeSet<&str>, pod: &Pod) -> Option<String> {
    let mut missing: std::collections::BTreeMap<&str, BTreeSet<&str>> = Default::default();
    let containers = pod
        .spec
        .containers
        .iter()
        .chain(pod.spec.init_containers.iter().flatten());
    for c in containers {
        let resources = c.resources.clone().unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        let requests = resources.requests.unwrap_or_default();
        for &name in required {
            let (section, resource) = match name.split_once('.') {
                Some(("limits", r)) => (&limits, r),
                Some(("requests", r)) => (&requests, r),
                _ => (&requests, name),
            };
            // A request left out is its limit (Kubernetes' defaulting).
            let named =
                section.contains_key(resource) || (!name.starts_with("limits.") && limits.contains_key(resource));
            if !named {
                missing.entry(name).or_default().insert(c.name.as_str());
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(name, containers)| {
            format!(
                "{name} for: {}",
                containers.iter().copied().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Some(format!("must specify {}", parts.join("; ")))
}

/// `a=1,b=2`, sorted by name.
fn pretty(amounts: &Amounts) -> String {
    amounts
        .iter()
        .map(|(name, v)| format!("{name}={}", amount::format(name, *v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A quota's `status.hard` (what it enforces, once its controller has seen it).
fn hard(quota: &ResourceQuota) -> Amounts {
    quota
        .status
        .hard
        .iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), amount::of(q)?)))
        .collect()
}

fn used(quota: &ResourceQuota) -> Amounts {
    quota
        .status
        .used
        .iter()
        .flatten()
        .filter_map(|(k, q)| Some((k.clone(), amount::of(q)?)))
        .collect()
}

/// Charges a new object to one quota: `Ok(Some(used))` the quota's new usage,
/// `Ok(None)` the quota does not count it, `Err` the refusal (Kubernetes' text:
/// `exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2`).
pub fn charge(quota: &ResourceQuota, object: &Object, delta: &Amounts) -> Result<Option<Amounts>, String> {
    let name = quota.metadata.name.as_deref().unwrap_or_default();
    let hard = hard(quota);
    let restricted: BTreeSet<&str> = hard.keys().map(String::as_str).filter(|r| matches(r, object)).collect();
    if restricted.is_empty() {
        return Ok(None);
    }
    if let Some(pod) = object.downcast_ref::<Pod>() {
        let compute: BTreeSet<&str> = restricted
            .iter()
            .copied()
            .filter(|r| {
                [
                    "cpu",
                    "memory",
                    "requests.cpu",
                    "requests.memory",
                    "limits.cpu",
                    "limits.memory",
                ]
                .contains(r)
            })
            .collect();
        if let Some(missing) = missing_compute(&compute, pod) {
            return Err(format!("failed quota: {name}: {missing}"));
        }
    }
    let mut used = used(quota);
    let unknown: Vec<&str> = restricted.iter().copied().filter(|r| !used.contains_key(*r)).collect();
    if !unknown.is_empty() {
        return Err(format!(
            "status unknown for quota: {name}, resources: {}",
            unknown.join(",")
        ));
    }
    let requested: Amounts = delta
        .iter()
        .filter(|(r, v)| **v != 0 && restricted.contains(r.as_str()))
        .map(|(r, v)| (r.clone(), *v))
        .collect();
    if requested.is_empty() {
        return Ok(None);
    }
    let exceeded: Vec<&String> = requested
        .iter()
        .filter(|(r, v)| used.get(*r).copied().unwrap_or(0) + **v > hard[*r])
        .map(|(r, _)| r)
        .collect();
    if !exceeded.is_empty() {
        let mask = |amounts: &Amounts| -> Amounts {
            exceeded
                .iter()
                .map(|r| ((*r).clone(), amounts.get(*r).copied().unwrap_or(0)))
                .collect()
        };
        return Err(format!(
            "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
            pretty(&mask(&requested)),
            pretty(&mask(&used)),
            pretty(&mask(&hard))
        ));
    }
    for (r, v) in requested {
        *used.entry(r).or_default() += v;
    }
    Ok(Some(used))
}

/// The status a quota's controller writes: `hard` as the spec says, `used` summed
/// over `objects` for each hard resource.
pub fn status_of(spec: &ResourceQuotaSpec, objects: &[Object]) -> ResourceQuotaStatus {
    let hard = spec.hard.clone().unwrap_or_default();
    let mut used = Amounts::new();
    for name in hard.keys() {
        used.insert(name.clone(), 0);
    }
    for object in objects {
        for (name, value) in usage(object) {
            if let Some(total) = used.get_mut(&name) {
                *total += value;
            }
        }
    }
    ResourceQuotaStatus {
        hard: Some(hard),
        used: Some(used.iter().map(|(k, v)| (k.clone(), amount::quantity(k, *v))).collect()),
    }
}

/// A status with `used` set to `amounts` (the charged usage), keeping `hard`.
pub fn with_used(quota: &ResourceQuota, amounts: &Amounts) -> ResourceQuotaStatus {
    ResourceQuotaStatus {
        hard: quota.status.hard.clone(),
        used: Some(
            amounts
                .iter()
                .map(|(k, v)| (k.clone(), amount::quantity(k, *v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
