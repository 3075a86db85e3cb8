//! The EndpointSlice controller: for every Service with a selector, slices listing
//! the pods the selector matches that have an IP, with Kubernetes' conditions
//! (`serving` = the pod is Ready, `terminating` = its deletion began, `ready` =
//! serving and not terminating, or always with `publishNotReadyAddresses`), each
//! endpoint's node and pod, its hostname for pods whose subdomain is the Service, and the Service's ports with named target ports
//! resolved per pod from its containers' ports.
//!
//! Pods whose named ports resolve alike share slices; each slice holds at most
//! [`MAX_ENDPOINTS_PER_SLICE`] endpoints, carries the `kubernetes.io/service-name`
//! and `managed-by` labels and is owned by its Service. Slices the controller does
//! not manage are never touched; managed ones of a Service that is gone (or lost
//! its selector) are deleted.
//!
//! The desired slices are a pure function of the Service and the pods ([`desired`]);
//! the loop runs on every change of the pod and Service caches, reads the current
//! slices from the store (linearizably, so a write is never based on a stale slice)
//! and writes only what differs, fenced.

use std::collections::BTreeMap;
use std::time::Duration;

use berth_api::conditions::is_true;
use berth_api::kinds::Object;
use berth_api::kinds::cells::text;
use berth_api::kinds::endpoint_slice::{
    CONTROLLER_NAME, ENDPOINT_SLICE, Endpoint, EndpointConditions, EndpointPort, EndpointSlice, MANAGED_BY_LABEL,
    MAX_ENDPOINTS_PER_SLICE, SERVICE_NAME_LABEL,
};
use berth_api::kinds::service::{Service, ServiceSpec, is_headless};
use berth_api::meta::{MetaExt, ObjectMeta, OwnerReference};
use berth_api::names::{GENERATED_SUFFIX_LEN, random_suffix};
use berth_api::objects::{IntOrString, Pod, PodSpec};
use berth_client::kv::{KvError, Record};
use berth_controller_runtime::{Context, RETRY_SOON, Requeue, benign, drive};

/// The label a headless Service's slices carry, as Kubernetes' do.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// A pod as one endpoint, or `None` when it has no IP or has finished.
pub fn endpoint(service: &Service, pod: &Pod) -> Option<Endpoint> {
    let ip = text(&pod.status.pod_ip);
    if ip.is_empty() || matches!(text(&pod.status.phase), "Succeeded" | "Failed") {
        return None;
    }
    let serving = is_true(pod.status.conditions.as_ref(), "Ready");
    let terminating = pod.metadata.is_deleting();
    let ready = service.spec.publish_not_ready_addresses == Some(true) || (serving && !terminating);
    Some(Endpoint {
        addresses: vec![ip.to_string()],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: endpoint_hostname(service, pod).map(str::to_string),
        node_name: pod.spec.node_name.clone().filter(|n| !n.is_empty()),
        target_ref: Some(berth_api::kinds::endpoint_slice::ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some(pod.metadata.namespace().to_string()),
            name: Some(pod.metadata.name().to_string()),
            uid: Some(pod.metadata.uid().to_string()),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// The endpoint's `hostname`: the pod's `spec.hostname` when its `spec.subdomain`
/// names this Service (in the pod's namespace), as Kubernetes sets it. The cluster
/// DNS answers `<hostname>.<service>.<namespace>.svc.<domain>` from it.
pub fn endpoint_hostname<'a>(service: &Service, pod: &'a Pod) -> Option<&'a str> {
    let hostname = text(&pod.spec.hostname);
    let names_service = text(&pod.spec.subdomain) == service.metadata.name()
        && pod.metadata.namespace() == service.metadata.namespace();
    (!hostname.is_empty() && names_service).then_some(hostname)
}

/// The Service's ports as this pod serves them: a named target port is the pod's
/// container port of that name and protocol; a port the pod does not have is left
/// out for it, as Kubernetes does.
pub fn ports_for(spec: &ServiceSpec, pod: &PodSpec) -> Vec<EndpointPort> {
    spec.ports
        .iter()
        .flatten()
        .filter_map(|port| {
            let protocol = match text(&port.protocol) {
                "" => "TCP",
                p => p,
            };
            let number = match &port.target_port {
                None => port.port,
                Some(IntOrString::Int(n)) => *n,
                Some(IntOrString::String(name)) => pod
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .find(|p| p.name.as_deref() == Some(name) && protocol_or_tcp(&p.protocol) == protocol)
                    .map(|p| p.container_port)?,
            };
            Some(EndpointPort {
                name: Some(text(&port.name).to_string()),
                port: Some(number),
                protocol: Some(protocol.to_string()),
                app_protocol: port.app_protocol.clone(),
            })
        })
        .collect()
}

fn protocol_or_tcp(protocol: &Option<String>) -> &str {
    match text(protocol) {
        "" => "TCP",
        p => p,
    }
}

/// The slices' contents a Service should have: groups of endpoints with the same
/// ports, at most [`MAX_ENDPOINTS_PER_SLICE`] each, endpoints in pod-name order.
/// Empty for a Service without a selector (its slices are the user's).
pub fn desired<'a>(
    service: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<(Vec<EndpointPort>, Vec<Endpoint>)> {
    let Some(selector) = service.spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let mut matched: Vec<&Pod> = pods
        .into_iter()
        .filter(|p| p.metadata.namespace() == service.metadata.namespace())
        .filter(|p| selector.iter().all(|(k, v)| p.metadata.labels().get(k) == Some(v)))
        .collect();
    matched.sort_by_key(|p| p.metadata.name().to_string());
    let mut groups: BTreeMap<String, (Vec<EndpointPort>, Vec<Endpoint>)> = BTreeMap::new();
    for pod in matched {
        let Some(endpoint) = endpoint(service, pod) else {
            continue;
        };
        let ports = ports_for(&service.spec, &pod.spec);
        let key = serde_json::to_string(&ports).expect("ports serialize");
        groups
            .entry(key)
            .or_insert_with(|| (ports, Vec::new()))
            .1
            .push(endpoint);
    }
    let mut slices = Vec::new();
    for (ports, endpoints) in groups.into_values() {
        for chunk in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE) {
            slices.push((ports.clone(), chunk.to_vec()));
        }
    }
    if slices.is_empty() {
        // A Service with no endpoints still has a slice, with its ports, as
        // Kubernetes keeps one (clients tell "none ready" from "not synced").
        let ports = ports_for(&service.spec, &PodSpec::default());
        slices.push((ports, Vec::new()));
    }
    slices
}

/// The labels of a Service's slices: the Service's own, then the two that tie the
/// slice to it (and `service.kubernetes.io/headless` for a headless Service).
pub fn slice_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels().clone();
    labels.insert(SERVICE_NAME_LABEL.into(), service.metadata.name().to_string());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    if is_headless(&service.spec) {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

fn owner(service: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: service.metadata.name().to_string(),
        uid: service.metadata.uid().to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A slice for `service` with the given contents, named `name`.
pub fn slice(service: &Service, name: String, ports: Vec<EndpointPort>, endpoints: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(service.metadata.namespace().to_string()),
            labels: Some(slice_labels(service)),
            owner_references: Some(vec![owner(service)]),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints,
        ports: Some(ports),
    }
}

/// Whether a stored slice is one of the controller's.
pub fn is_managed(slice: &EndpointSlice) -> bool {
    slice.metadata.labels().get(MANAGED_BY_LABEL).map(String::as_str) == Some(CONTROLLER_NAME)
}

/// What to write: slices to create, to replace (the stored one changed), and to
/// delete (by key and revision).
#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<(String, i64)>,
}

/// Compares the stored managed slices with the desired ones, per Service. A stored
/// slice is reused for desired contents with the same ports (updated if it differs);
/// what is left over is deleted; what is missing is created. Pure but for the new
/// names' random suffixes.
pub fn plan<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    pods: &[&'a Pod],
    stored: &[(EndpointSlice, i64)],
) -> Plan {
    let mut plan = Plan::default();
    let mut by_service: BTreeMap<(String, String), Vec<&(EndpointSlice, i64)>> = BTreeMap::new();
    for entry in stored.iter().filter(|(s, _)| is_managed(s)) {
        let service = entry
            .0
            .metadata
            .labels()
            .get(SERVICE_NAME_LABEL)
            .cloned()
            .unwrap_or_default();
        by_service
            .entry((entry.0.metadata.namespace().to_string(), service))
            .or_default()
            .push(entry);
    }
    for service in services {
        let id = (
            service.metadata.namespace().to_string(),
            service.metadata.name().to_string(),
        );
        let mut existing = by_service.remove(&id).unwrap_or_default();
        // Slices of an earlier Service of the same name go with it.
        existing.retain(|(s, revision)| {
            let ours = s
                .metadata
                .owner_references()
                .iter()
                .any(|o| o.uid == service.metadata.uid());
            if !ours {
                plan.delete
                    .push((ENDPOINT_SLICE.key(s.metadata.namespace(), s.metadata.name()), *revision));
            }
            ours
        });
        for (ports, endpoints) in desired(service, pods.iter().copied()) {
            let reuse = existing
                .iter()
                .position(|(s, _)| s.ports.as_deref().unwrap_or_default() == ports.as_slice())
                .or(if existing.is_empty() { None } else { Some(0) });
            match reuse {
                Some(i) => {
                    let (stored, revision) = existing.remove(i);
                    let mut want = slice(service, stored.metadata.name().to_string(), ports, endpoints);
                    let differs = want.endpoints != stored.endpoints
                        || want.ports != stored.ports
                        || want.metadata.labels != stored.metadata.labels
                        || want.metadata.owner_references != stored.metadata.owner_references
                        || want.address_type != stored.address_type;
                    if differs {
                        let mut metadata = stored.metadata.clone();
                        metadata.labels = want.metadata.labels.take();
                        metadata.owner_references = want.metadata.owner_references.take();
                        metadata.resource_version = Some(revision.to_string());
                        want.metadata = metadata;
                        plan.update.push(want);
                    }
                }
                None => {
                    let name = generated_name(service.metadata.name());
                    plan.create.push(slice(service, name, ports, endpoints));
                }
            }
        }
        for (s, revision) in existing {
            plan.delete
                .push((ENDPOINT_SLICE.key(s.metadata.namespace(), s.metadata.name()), *revision));
        }
    }
    // Managed slices of Services that are gone, or have no selector.
    for entries in by_service.into_values() {
        for (s, revision) in entries {
            plan.delete
                .push((ENDPOINT_SLICE.key(s.metadata.namespace(), s.metadata.name()), *revision));
        }
    }
    plan
}

/// `<service>-<suffix>`, as Kubernetes' generateName makes slice names.
fn generated_name(service: &str) -> String {
    let prefix: String = service.chars().take(63 - GENERATED_SUFFIX_LEN - 1).collect();
    format!("{prefix}-{}", random_suffix(GENERATED_SUFFIX_LEN))
}

/// Runs the controller until fenced: a pass on every change of pods or Services,
/// and on every resync tick (which also catches slices changed by others).
pub async fn run(ctx: Context, resync: Duration) {
    ctx.caches.pods.wait_synced().await;
    ctx.caches.services.wait_synced().await;
    let triggers = vec![ctx.caches.pods.subscribe(), ctx.caches.services.subscribe()];
    drive("endpointslice", triggers, resync, || pass(&ctx)).await;
}

fn decode_slice(record: &Record) -> Option<(EndpointSlice, i64)> {
    match serde_json::from_slice::<EndpointSlice>(&record.value) {
        Ok(slice) => Some((slice, record.mod_revision)),
        Err(e) => {
            tracing::warn!(key = %record.key, error = %e, "skipping an EndpointSlice that does not decode");
            None
        }
    }
}

async fn pass(ctx: &Context) -> Result<Requeue, KvError> {
    let services = ctx.caches.services.snapshot();
    let (records, _) = ctx.registry.kv.list(&ENDPOINT_SLICE.prefix(None)).await?;
    let stored: Vec<(EndpointSlice, i64)> = records.iter().filter_map(decode_slice).collect();
    // No Service with a selector and no managed slice (the `kubernetes` Service of
    // `default` has neither): nothing to plan, and a pod's change costs no copy of
    // every pod.
    let has_selector = |s: &Service| s.spec.selector.as_ref().is_some_and(|s| !s.is_empty());
    if !services.iter().any(has_selector) && !stored.iter().any(|(s, _)| is_managed(s)) {
        return Ok(None);
    }
    let pods = ctx.caches.pods.snapshot();
    let pods: Vec<&Pod> = pods.iter().collect();
    let plan = plan(services.iter(), &pods, &stored);
    let mut requeue = None;
    for slice in plan.create {
        if benign(ctx.registry.create(&Object::new(slice), ctx.fence()).await)?.is_none() {
            requeue = Some(RETRY_SOON);
        }
    }
    for slice in plan.update {
        if benign(ctx.registry.update(&Object::new(slice), ctx.fence()).await)?.is_none() {
            requeue = Some(RETRY_SOON);
        }
    }
    for (key, revision) in plan.delete {
        if benign(ctx.registry.kv.delete(&key, Some(revision), ctx.fence()).await)?.is_none() {
            requeue = Some(RETRY_SOON);
        }
    }
    Ok(requeue)
}

#[cfg(test)]
#[path = "endpointslice_tests.rs"]
mod tests;
