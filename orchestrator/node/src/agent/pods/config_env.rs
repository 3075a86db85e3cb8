//! A container's own environment, as the kubelet builds it when it starts the
//! container: first every key of each `envFrom` source (with its `prefix`), then each
//! `env` entry (a literal, or a ConfigMap's or Secret's key, a field of the pod, a
//! resource of a container); a later definition of a name replaces an earlier one.
//!
//! Pure: the ConfigMaps and Secrets come as read from the store by the supervisor
//! before the pass ([`ConfigObjects`]), the node's facts as [`NodeFacts`]. What is
//! missing and not `optional` is an error worded as the kubelet's
//! (`configmap "x" not found`, `couldn't find key k in ConfigMap default/x`), which
//! keeps the container from starting with `CreateContainerConfigError` until a later
//! pass finds it. Errors name objects and keys, never values; [`ConfigObjects`]
//! prints no values either.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use berth_api::kinds::config_map::ConfigMap;
use berth_api::kinds::secret::Secret;
use berth_api::meta::MetaExt;
use berth_api::objects::{Container, Pod};
use berth_api::quantity::{parse_cpu_millis, parse_memory_bytes};
use berth_api::validation::env::subscript;

/// The reason a container waits with while its environment cannot be built.
pub(crate) const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";

/// The kind of object an environment reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Source {
    ConfigMap,
    Secret,
}

impl Source {
    /// As the kubelet's not-found errors name it.
    pub(crate) fn resource(self) -> &'static str {
        match self {
            Source::ConfigMap => "configmap",
            Source::Secret => "secret",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Source::ConfigMap => "ConfigMap",
            Source::Secret => "Secret",
        }
    }

    /// Where the store keeps `namespace/name`.
    pub(crate) fn key(self, namespace: &str, name: &str) -> String {
        match self {
            Source::ConfigMap => berth_api::kinds::config_map::CONFIG_MAP.key(namespace, name),
            Source::Secret => format!("/registry/secrets/{namespace}/{name}"),
        }
    }
}

/// One object's keys and values as stored: a ConfigMap's `data` and `binaryData`,
/// a Secret's `data`.
pub(crate) type Values = BTreeMap<String, Vec<u8>>;

/// The ConfigMaps and Secrets the pods' environments name, as last read. An object
/// the store does not have is there as None; one that could not be read is absent.
#[derive(Clone, Default)]
pub(crate) struct ConfigObjects {
    objects: BTreeMap<(Source, String, String), Option<Values>>,
    /// The tokens of the pods' `serviceAccountToken` projections.
    tokens: super::tokens::Issued,
}

/// Names only: the values may be secrets.
impl std::fmt::Debug for ConfigObjects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.objects.iter().map(|((source, namespace, name), values)| {
                let kind = source.kind();
                match values {
                    Some(values) => format!("{kind} {namespace}/{name} keys {}", keys(values)),
                    None => format!("{kind} {namespace}/{name} not found"),
                }
            }))
            .entries(
                self.tokens
                    .keys()
                    .map(|(uid, audience, lifetime)| format!("token of pod {uid} for {audience:?} ({lifetime} s)")),
            )
            .finish()
    }
}

fn keys(values: &Values) -> String {
    values.keys().map(String::as_str).collect::<Vec<_>>().join(",")
}

impl ConfigObjects {
    /// Records `namespace/name` as read: its stored JSON, or None when there is none.
    pub(crate) fn insert(&mut self, source: Source, namespace: &str, name: &str, stored: Option<&serde_json::Value>) {
        let values = stored.map(|json| values_of(source, json));
        self.objects
            .insert((source, namespace.to_string(), name.to_string()), values);
    }

    /// Keeps `namespace/name` as `earlier` had it read, if it had.
    pub(crate) fn carry(&mut self, earlier: &ConfigObjects, source: Source, namespace: &str, name: &str) {
        let key = (source, namespace.to_string(), name.to_string());
        if let Some(values) = earlier.objects.get(&key) {
            self.objects.insert(key, values.clone());
        }
    }

    /// The tokens of the projections, as the token manager has them.
    pub(crate) fn set_tokens(&mut self, tokens: super::tokens::Issued) {
        self.tokens = tokens;
    }

    /// The token of pod `uid`'s projection for `audience` (empty: the API
    /// server's) living `lifetime` seconds: None when not asked for yet.
    pub(crate) fn token(&self, uid: &str, audience: &str, lifetime: i64) -> Option<&Result<String, String>> {
        self.tokens.get(&(uid.to_string(), audience.to_string(), lifetime))
    }

    /// `namespace/name` as read: None when it was not read before this pass, Some(None)
    /// when the store does not have it.
    pub(crate) fn lookup(&self, source: Source, namespace: &str, name: &str) -> Option<Option<&Values>> {
        self.objects
            .get(&(source, namespace.to_string(), name.to_string()))
            .map(Option::as_ref)
    }

    fn get(&self, source: Source, namespace: &str, name: &str) -> Result<Option<&Values>, EnvError> {
        match self.objects.get(&(source, namespace.to_string(), name.to_string())) {
            Some(found) => Ok(found.as_ref()),
            None => Err(EnvError::NotReadYet),
        }
    }
}

/// The keys and values of a stored object (one that does not parse has none).
fn values_of(source: Source, json: &serde_json::Value) -> Values {
    match source {
        Source::ConfigMap => {
            let Ok(config) = serde_json::from_value::<ConfigMap>(json.clone()) else {
                return Values::new();
            };
            let text = config.data.into_iter().flatten().map(|(k, v)| (k, v.into_bytes()));
            let binary = config.binary_data.into_iter().flatten().map(|(k, v)| (k, v.0));
            text.chain(binary).collect()
        }
        Source::Secret => serde_json::from_value::<Secret>(json.clone())
            .ok()
            .and_then(|s| s.data)
            .into_iter()
            .flatten()
            .map(|(k, v)| (k, v.0))
            .collect(),
    }
}

/// The ConfigMaps and Secrets (by name, in the pod's namespace) the environments of
/// the pod's containers name.
pub(crate) fn references(pod: &Pod) -> BTreeSet<(Source, String)> {
    let mut found = BTreeSet::new();
    for c in &pod.spec.containers {
        for source in c.env_from.iter().flatten() {
            if let Some(r) = &source.config_map_ref {
                found.insert((Source::ConfigMap, r.name.clone()));
            }
            if let Some(r) = &source.secret_ref {
                found.insert((Source::Secret, r.name.clone()));
            }
        }
        for from in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
            if let Some(r) = &from.config_map_key_ref {
                found.insert((Source::ConfigMap, r.name.clone()));
            }
            if let Some(r) = &from.secret_key_ref {
                found.insert((Source::Secret, r.name.clone()));
            }
        }
    }
    found
}

/// Why a container's environment cannot be built now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EnvError {
    /// An object it names was not read before this pass (it was not needed then, or
    /// the store did not answer): a later pass builds it.
    NotReadYet,
    /// Something it names and needs is missing: the kubelet's message.
    Missing(String),
}

/// What the node knows that a pod's environment may name.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeFacts {
    pub(crate) host_ip: String,
    /// What a container without a limit may use: the node's allocatable.
    pub(crate) cpu_millis: u64,
    pub(crate) memory_bytes: u64,
}

/// The environment `c` of `pod` defines itself, in order; `pod_ip` is the pod's
/// address, if it has one yet.
pub(crate) fn resolve(
    pod: &Pod,
    c: &Container,
    objects: &ConfigObjects,
    node: &NodeFacts,
    pod_ip: Option<IpAddr>,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace();
    let mut env = Env::default();
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let named = [
            from.config_map_ref
                .as_ref()
                .map(|r| (Source::ConfigMap, &r.name, r.optional)),
            from.secret_ref.as_ref().map(|r| (Source::Secret, &r.name, r.optional)),
        ];
        for (source, name, optional) in named.into_iter().flatten() {
            match objects.get(source, namespace, name)? {
                Some(values) => {
                    for (key, value) in values {
                        env.set(format!("{prefix}{key}"), text(value));
                    }
                }
                None if optional == Some(true) => {}
                None => return Err(not_found(source, name)),
            }
        }
    }
    for var in c.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            env.set(var.name.clone(), var.value.clone().unwrap_or_default());
            continue;
        };
        let key_ref = [
            from.config_map_key_ref
                .as_ref()
                .map(|r| (Source::ConfigMap, &r.name, &r.key, r.optional)),
            from.secret_key_ref
                .as_ref()
                .map(|r| (Source::Secret, &r.name, &r.key, r.optional)),
        ];
        if let Some((source, name, key, optional)) = key_ref.into_iter().flatten().next() {
            let is_optional = optional == Some(true);
            match objects.get(source, namespace, name)? {
                Some(values) => match values.get(key) {
                    Some(value) => env.set(var.name.clone(), text(value)),
                    None if is_optional => {}
                    None => {
                        return Err(EnvError::Missing(format!(
                            "couldn't find key {key} in {} {namespace}/{name}",
                            source.kind()
                        )));
                    }
                },
                None if is_optional => {}
                None => return Err(not_found(source, name)),
            }
        } else if let Some(field) = &from.field_ref {
            let value = field_value(pod, &field.field_path, node, pod_ip).map_err(EnvError::Missing)?;
            env.set(var.name.clone(), value);
        } else if let Some(resource) = &from.resource_field_ref {
            let container = match resource.container_name.as_deref().filter(|n| !n.is_empty()) {
                Some(name) => pod
                    .spec
                    .containers
                    .iter()
                    .find(|c| c.name == name)
                    .ok_or_else(|| EnvError::Missing(format!("container {name} not found")))?,
                None => c,
            };
            let divisor = resource.divisor.as_ref().map(|q| q.0.as_str());
            let value = resource_value(container, &resource.resource, divisor, node).map_err(EnvError::Missing)?;
            env.set(var.name.clone(), value);
        }
    }
    Ok(env.0)
}

/// Names in the order first defined, each with its last value.
#[derive(Default)]
struct Env(Vec<(String, String)>);

impl Env {
    fn set(&mut self, name: String, value: String) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

fn not_found(source: Source, name: &str) -> EnvError {
    EnvError::Missing(format!("{} {name:?} not found", source.resource()))
}

/// The value of a `fieldRef` (validation allowed only the paths below).
fn field_value(pod: &Pod, path: &str, node: &NodeFacts, pod_ip: Option<IpAddr>) -> Result<String, String> {
    let meta = &pod.metadata;
    if let Some((field, key)) = subscript(path) {
        let map = if field == "metadata.labels" {
            &meta.labels
        } else {
            &meta.annotations
        };
        return Ok(map.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => meta.name().to_string(),
        "metadata.namespace" => meta.namespace().to_string(),
        "metadata.uid" => meta.uid().to_string(),
        "spec.nodeName" => pod.spec.node_name.clone().unwrap_or_default(),
        // Every pod runs as the namespace's default service account unless it names one.
        "spec.serviceAccountName" => pod
            .spec
            .service_account_name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into()),
        "status.hostIP" | "status.hostIPs" => node.host_ip.clone(),
        "status.podIP" | "status.podIPs" => pod_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        other => return Err(format!("unsupported fieldPath: {other}")),
    })
}

/// The value of a `resourceFieldRef`: the quantity divided by the divisor, rounded
/// up. A limit not set is the node's allocatable; a request not set is the limit if
/// set (as the API server defaults it), else 0.
pub(crate) fn resource_value(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    node: &NodeFacts,
) -> Result<String, String> {
    let resources = c.resources.clone().unwrap_or_default();
    let (section, name) = resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource: {resource}"))?;
    let given = |values: &Option<BTreeMap<String, berth_api::objects::Quantity>>| {
        values.as_ref().and_then(|v| v.get(name)).map(|q| q.0.clone())
    };
    let limit = given(&resources.limits);
    let quantity = match section {
        "limits" => limit,
        "requests" => given(&resources.requests).or(limit),
        _ => return Err(format!("unsupported container resource: {resource}")),
    };
    let bad = |e: berth_api::quantity::QuantityError| e.0;
    let (amount, per) = match name {
        "cpu" => (
            match quantity {
                Some(q) => parse_cpu_millis(&q).map_err(bad)?,
                None if section == "limits" => node.cpu_millis,
                None => 0,
            },
            parse_cpu_millis(divisor.unwrap_or("1")).map_err(bad)?,
        ),
        "memory" => (
            match quantity {
                Some(q) => parse_memory_bytes(&q).map_err(bad)?,
                None if section == "limits" => node.memory_bytes,
                None => 0,
            },
            parse_memory_bytes(divisor.unwrap_or("1")).map_err(bad)?,
        ),
        _ => return Err(format!("unsupported container resource: {resource}")),
    };
    if per == 0 {
        return Err(format!("the divisor of {resource} is zero"));
    }
    Ok(amount.div_ceil(per).to_string())
}

#[cfg(test)]
#[path = "config_env_tests.rs"]
mod tests;
