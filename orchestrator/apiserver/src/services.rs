//! Cluster IPs and node ports: what a Service holds, allocated by the API server in
//! the transaction that writes the Service, as kube-apiserver's allocators do.
//!
//! Each address or port held is a record of its own, `/berth/services/clusterips/<ip>`
//! and `/berth/services/nodeports/<port>`, whose value names the Service holding it
//! (`<namespace>/<name>`). A create writes the Service and its records in one store
//! transaction that requires every record it takes to be absent (and the Service's
//! key, and the namespace unchanged), so two creates through any API servers cannot
//! take the same IP or port: the store orders the two transactions and the second
//! fails its compare, then draws again (or, for an asked-for value, is refused).
//! An update that adds node ports takes them the same way, and releases the ones it
//! drops; a delete releases the Service's records with it.
//!
//! A record whose Service no longer holds it (the Service went with its namespace,
//! whose deletion removes objects but not these records) is stale: it is taken over
//! by a transaction that also requires both the record and the Service's key to be
//! as they were read, so a stale record is never mistaken for a live one.
//!
//! A free value is searched for with a few random draws, which find one at once
//! while the range has room; when they all land on taken values (the range nearly
//! full), one listing of the range's records and a walk over every value from a
//! random one on find the last free ones, so a range is full only when it is.
//!
//! ```text
//! create: pick ip, ports ─► read their records (stale?) ─► txn: svc absent, records as read,
//!         namespace unchanged ─► put svc + records        └─ a compare failed: pick again
//! ```

use std::collections::BTreeSet;
use std::fmt::Display;
use std::net::Ipv4Addr;

use serde_json::Value;

use berth_api::cidr::Ipv4Cidr;
use berth_api::kinds::Object;
use berth_api::kinds::cells::text;
use berth_api::kinds::service::{HEADLESS, SERVICE, Service, wants_node_ports};
use berth_api::meta::MetaExt;
use berth_api::names::{new_uid, random_bits};
use berth_api::validation::FieldError;
use berth_client::kv::{Fence, Kv, KvError, Together};

use super::status::ApiError;
use super::storage;

const CLUSTER_IPS: &str = "/berth/services/clusterips/";
const NODE_PORTS: &str = "/berth/services/nodeports/";
/// How many random draws a search makes before it walks the whole range.
const DRAWS: usize = 64;

/// The service network: kube-apiserver's `--service-cluster-ip-range` and
/// `--service-node-port-range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceNetwork {
    pub cluster_ip_range: Ipv4Cidr,
    /// The first and last node port, inclusive.
    pub node_ports: (u16, u16),
}

impl Default for ServiceNetwork {
    fn default() -> Self {
        ServiceNetwork {
            cluster_ip_range: Ipv4Cidr::new(Ipv4Addr::new(10, 96, 0, 0), 12).expect("a valid CIDR"),
            node_ports: (30000, 32767),
        }
    }
}

impl ServiceNetwork {
    /// The address kube-apiserver gives the `kubernetes` Service: the range's first.
    pub fn first_ip(&self) -> Ipv4Addr {
        self.cluster_ip_range.host(1).expect("a range with hosts")
    }

    /// The addresses to offer, `(count, i-th)`: not the network's, not its last
    /// (broadcast) and not the first, kept for the `kubernetes` Service.
    fn ips(&self) -> (u64, impl Fn(u64) -> Ipv4Addr + '_) {
        let size = 1u64 << (32 - self.cluster_ip_range.prefix_len());
        let count = size.saturating_sub(3).max(1);
        let at = move |i: u64| {
            self.cluster_ip_range
                .host((2 + i) as u32)
                .unwrap_or_else(|| self.first_ip())
        };
        (count, at)
    }

    /// The node ports, `(count, i-th)`.
    fn ports(&self) -> (u64, impl Fn(u64) -> i32) {
        let (first, last) = self.node_ports;
        (u64::from(last - first) + 1, move |i: u64| i32::from(first) + i as i32)
    }

    fn port_range_text(&self) -> String {
        format!("{}-{}", self.node_ports.0, self.node_ports.1)
    }
}

/// `--service-node-port-range`: `30000-32767`.
pub fn parse_port_range(text: &str) -> Result<(u16, u16), String> {
    let parsed = text
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)));
    match parsed {
        Some((first, last)) if first <= last && first > 0 => Ok((first, last)),
        _ => Err(format!("{text:?} is not a port range (e.g. 30000-32767)")),
    }
}

fn owner_of(service: &Service) -> String {
    format!("{}/{}", service.metadata.namespace(), service.metadata.name())
}

/// A record a write takes: its key, and the conditions that say it is free.
struct Taken {
    key: String,
    conditions: Vec<(String, i64)>,
}

/// Whether the record at `key` is free for `owner`: absent, held by `owner` itself,
/// or stale (its Service does not hold `holds`). `None`: a live Service holds it.
async fn free(kv: &Kv, key: String, owner: &str, holds: impl Fn(&Service) -> bool) -> Result<Option<Taken>, KvError> {
    let Some(record) = kv.get(&key).await? else {
        return Ok(Some(Taken {
            conditions: vec![(key.clone(), 0)],
            key,
        }));
    };
    let holder = String::from_utf8_lossy(&record.value).to_string();
    let (namespace, name) = holder.split_once('/').unwrap_or(("", ""));
    let holder_key = SERVICE.key(namespace, name);
    let (holder_revision, is_held) = match kv.get(&holder_key).await? {
        None => (0, false),
        Some(stored) => {
            let service: Option<Service> = berth_client::registry::decode(&stored).ok();
            (stored.mod_revision, service.is_some_and(|s| holds(&s)))
        }
    };
    if is_held && holder != owner {
        return Ok(None);
    }
    Ok(Some(Taken {
        conditions: vec![(key.clone(), record.mod_revision), (holder_key, holder_revision)],
        key,
    }))
}

/// The values a search walks: `count` of them, the `i`-th `at(i)`, each with its
/// record under `prefix`.
struct Range<F> {
    prefix: &'static str,
    count: u64,
    at: F,
}

/// A free value of `range` for `owner` (see [`free`]), and the record to write:
/// `draws` random values first, then every value once from a random one on, those
/// without a record first (one listing says which), then those with one, which may
/// be stale. `skip` says which values the caller has already taken. `None`: every
/// value is held.
async fn search<T: Copy + Display>(
    kv: &Kv,
    range: &Range<impl Fn(u64) -> T>,
    draws: usize,
    owner: &str,
    holds: impl Fn(&Service, T) -> bool,
    skip: impl Fn(T) -> bool,
) -> Result<Option<(T, Taken)>, KvError> {
    if range.count == 0 {
        return Ok(None);
    }
    let key = |value: T| format!("{}{value}", range.prefix);
    for _ in 0..draws {
        let value = (range.at)(random_bits() % range.count);
        if skip(value) {
            continue;
        }
        if let Some(record) = free(kv, key(value), owner, |s| holds(s, value)).await? {
            return Ok(Some((value, record)));
        }
    }
    let (records, _) = kv.list(range.prefix).await?;
    let recorded: BTreeSet<String> = records.into_iter().map(|r| r.key).collect();
    let start = random_bits() % range.count;
    for recorded_pass in [false, true] {
        for i in walk(range.count, start) {
            let value = (range.at)(i);
            if skip(value) || recorded.contains(&key(value)) != recorded_pass {
                continue;
            }
            if let Some(record) = free(kv, key(value), owner, |s| holds(s, value)).await? {
                return Ok(Some((value, record)));
            }
        }
    }
    Ok(None)
}

/// Every index of a range of `count` once, from `start` on, wrapping around.
fn walk(count: u64, start: u64) -> impl Iterator<Item = u64> {
    (0..count).map(move |i| (start + i) % count)
}

/// Why an allocation failed: a refusal to give the client, or the store's error.
pub enum Refusal {
    Invalid(Vec<FieldError>),
    Full(&'static str),
    Store(KvError),
}

impl From<KvError> for Refusal {
    fn from(e: KvError) -> Self {
        Refusal::Store(e)
    }
}

impl Refusal {
    pub fn into_api_error(self, object: &Object) -> Result<KvError, ApiError> {
        match self {
            Refusal::Invalid(errors) => Err(ApiError::invalid(
                "Service",
                "",
                object.metadata().name(),
                &errors,
                &storage::to_value(object),
            )),
            Refusal::Full(what) => Err(ApiError::internal(format!(
                "failed to allocate a {what}: range is full"
            ))),
            Refusal::Store(e) => Ok(e),
        }
    }
}

/// Takes the Service's cluster IP (unless headless) and the node ports it needs
/// (the asked-for ones, or new ones for ports without): fills them into `service`
/// and returns the records to write. `held` are node ports the Service holds
/// already (an update's), which stay its own.
async fn allocate(
    kv: &Kv,
    network: &ServiceNetwork,
    service: &mut Service,
    take_ip: bool,
    held: &[i32],
) -> Result<Vec<Taken>, Refusal> {
    let owner = owner_of(service);
    let mut taken = Vec::new();
    if take_ip {
        let asked = text(&service.spec.cluster_ip).to_string();
        if asked.is_empty() {
            let (count, at) = network.ips();
            let holds = |s: &Service, ip: Ipv4Addr| text(&s.spec.cluster_ip) == ip.to_string();
            let range = Range {
                prefix: CLUSTER_IPS,
                count,
                at,
            };
            let found = search(kv, &range, DRAWS, &owner, holds, |_| false).await?;
            let Some((ip, record)) = found else {
                return Err(Refusal::Full("serviceIP"));
            };
            service.spec.cluster_ip = Some(ip.to_string());
            service.spec.cluster_ips = Some(vec![ip.to_string()]);
            taken.push(record);
        } else if asked != HEADLESS {
            let ip: Ipv4Addr = asked
                .parse()
                .map_err(|_| invalid_ip(&asked, "the provided IP is not valid"))?;
            if !network.cluster_ip_range.contains(ip) {
                return Err(invalid_ip(
                    &asked,
                    &format!(
                        "the provided IP ({asked}) is not in the valid range. The range of valid IPs is {}",
                        network.cluster_ip_range
                    ),
                ));
            }
            let key = format!("{CLUSTER_IPS}{ip}");
            match free(kv, key, &owner, |s| text(&s.spec.cluster_ip) == asked).await? {
                Some(record) => taken.push(record),
                None => return Err(invalid_ip(&asked, "provided IP is already allocated")),
            }
        }
    }
    if !wants_node_ports(&service.spec) {
        return Ok(taken);
    }
    let mut chosen: Vec<i32> = Vec::new();
    let ports = service.spec.ports.clone().unwrap_or_default();
    for (i, port) in ports.iter().enumerate() {
        let holds = |s: &Service, n: i32| s.spec.ports.iter().flatten().any(|p| p.node_port == Some(n));
        match port.node_port.filter(|p| *p != 0) {
            Some(asked) if held.contains(&asked) => chosen.push(asked),
            Some(asked) => {
                let field = format!("spec.ports[{i}].nodePort");
                let (first, last) = network.node_ports;
                if asked < i32::from(first) || asked > i32::from(last) || chosen.contains(&asked) {
                    let message = if chosen.contains(&asked) {
                        "provided port is already allocated".to_string()
                    } else {
                        format!(
                            "provided port is not in the valid range. The range of valid ports is {}",
                            network.port_range_text()
                        )
                    };
                    return Err(Refusal::Invalid(vec![FieldError { field, message }]));
                }
                match free(kv, format!("{NODE_PORTS}{asked}"), &owner, |s| holds(s, asked)).await? {
                    Some(record) => taken.push(record),
                    None => {
                        return Err(Refusal::Invalid(vec![FieldError {
                            field,
                            message: "provided port is already allocated".into(),
                        }]));
                    }
                }
                chosen.push(asked);
            }
            None => {
                let (count, at) = network.ports();
                let range = Range {
                    prefix: NODE_PORTS,
                    count,
                    at,
                };
                let skip = |n: i32| chosen.contains(&n) || held.contains(&n);
                let found = search(kv, &range, DRAWS, &owner, holds, skip).await?;
                let Some((n, record)) = found else {
                    return Err(Refusal::Full("nodePort"));
                };
                taken.push(record);
                chosen.push(n);
            }
        }
    }
    for (port, n) in service.spec.ports.iter_mut().flatten().zip(chosen) {
        port.node_port = Some(n);
    }
    Ok(taken)
}

fn invalid_ip(ip: &str, why: &str) -> Refusal {
    Refusal::Invalid(vec![FieldError {
        field: "spec.clusterIPs".into(),
        message: format!("[]string{{{ip:?}}}: failed to allocate IP {ip}: {why}"),
    }])
}

/// Creates a Service with its cluster IP and node ports, all in one transaction;
/// `Ok(Err(_))` is the store's answer as `storage::create` gives it (`AlreadyExists`,
/// `Fenced` for a namespace that changed), for the caller's retries.
pub async fn create(
    kv: &Kv,
    network: &ServiceNetwork,
    object: &mut Object,
    fence: Option<&Fence>,
    charges: &[berth_client::admission::Charge],
) -> Result<Result<Value, KvError>, Refusal> {
    let Some(service) = object.downcast_mut::<Service>() else {
        return Ok(Err(KvError::Other("not a Service".into())));
    };
    // What the client asked for, so that a retry after a lost race draws afresh.
    let asked = service.clone();
    loop {
        let mut service = asked.clone();
        let taken = allocate(kv, network, &mut service, true, &[]).await?;
        let metadata = &mut service.metadata;
        if metadata.uid().is_empty() {
            metadata.uid = Some(new_uid());
        }
        metadata.creation_timestamp = Some(berth_api::time::now());
        metadata.generation = Some(1);
        metadata.deletion_timestamp = None;
        let key = service.key();
        let mut together = Together {
            conditions: vec![(key.clone(), 0)],
            puts: vec![(key, service.stored_form())],
            deletes: Vec::new(),
        };
        if let Some(fence) = fence {
            together.conditions.push((fence.key.clone(), fence.mod_revision));
        }
        // The quotas' charges: a quota that moved makes the caller charge again.
        let charged_from = together.conditions.len();
        for (key, revision, value) in charges {
            together.conditions.push((key.clone(), *revision));
            together.puts.push((key.clone(), value.clone()));
        }
        let charged = charged_from..together.conditions.len();
        let owner = owner_of(&service).into_bytes();
        for record in taken {
            together.conditions.extend(record.conditions);
            together.puts.push((record.key, owner.clone()));
        }
        match kv.write_together(&together).await? {
            Ok(revision) => {
                service.metadata.resource_version = Some(revision.to_string());
                let written = Object::new(service);
                let value = storage::to_value(&written);
                *object = written;
                return Ok(Ok(value));
            }
            Err(0) => return Ok(Err(KvError::AlreadyExists)),
            Err(1) if fence.is_some() => return Ok(Err(KvError::Fenced)),
            Err(i) if charged.contains(&i) => return Ok(Err(KvError::Conflict { current: 0 })),
            // A record was taken (or freed) since it was read: draw again.
            Err(_) => continue,
        }
    }
}

/// Before an update is validated: what the client left out that the Service holds
/// (its cluster IP, a port's node port) is kept, as kube-apiserver keeps them; node
/// ports go when the new type has none.
pub fn keep_allocations(stored: &Value, new: &mut Value) {
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let old_spec = &stored["spec"];
    let missing = |spec: &serde_json::Map<String, Value>, field: &str| {
        spec.get(field)
            .is_none_or(|v| v.is_null() || v == "" || v == &Value::Array(vec![]))
    };
    // Both left out: both kept; one sent: the defaults make the other match it.
    if missing(spec, "clusterIP") && missing(spec, "clusterIPs") {
        for field in ["clusterIP", "clusterIPs"] {
            if let Some(old) = old_spec.get(field) {
                spec.insert(field.into(), old.clone());
            }
        }
    }
    let wants = matches!(
        spec.get("type").and_then(Value::as_str),
        Some("NodePort" | "LoadBalancer")
    );
    // The policy of a Service no longer reached from outside goes with its node
    // ports and external IPs, unless the client changed it (Kubernetes'
    // `dropTypeDependentFields`).
    let external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|ips| !ips.is_empty());
    let cluster_ip_type = matches!(spec.get("type").and_then(Value::as_str), None | Some("" | "ClusterIP"));
    let accessible = wants || (cluster_ip_type && external_ips);
    if !accessible && spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy") {
        spec.remove("externalTrafficPolicy");
    }
    let old_ports = old_spec["ports"].as_array().cloned().unwrap_or_default();
    for port in spec
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let same = |old: &&Value| {
            old["port"] == port["port"]
                && old["protocol"].as_str().unwrap_or("TCP") == port["protocol"].as_str().unwrap_or("TCP")
        };
        let Some(old) = old_ports.iter().find(same) else {
            continue;
        };
        let given = port.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
        if wants && given == 0 && old["nodePort"].as_i64().unwrap_or(0) != 0 {
            port["nodePort"] = old["nodePort"].clone();
        } else if !wants && given != 0 && old["nodePort"].as_i64() == Some(given) {
            port.as_object_mut().map(|p| p.remove("nodePort"));
        }
    }
}

fn node_ports(service: &Service) -> Vec<i32> {
    service
        .spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.node_port.filter(|n| *n != 0))
        .collect()
}

/// Replaces a Service (validated, at the stored `expected` revision), taking the
/// node ports it newly needs and releasing those it dropped, in one transaction.
/// `Ok(Err(Conflict))` when the Service changed since it was read.
pub async fn update(
    kv: &Kv,
    network: &ServiceNetwork,
    old: &Service,
    object: &mut Object,
) -> Result<Result<Value, KvError>, Refusal> {
    let Some(service) = object.downcast_mut::<Service>() else {
        return Ok(Err(KvError::Other("not a Service".into())));
    };
    let expected: i64 = service.metadata.resource_version().parse().unwrap_or(0);
    let held = node_ports(old);
    let asked = service.clone();
    loop {
        let mut service = asked.clone();
        let taken = allocate(kv, network, &mut service, false, &held).await?;
        let metadata = &mut service.metadata;
        metadata.generation = Some(metadata.generation().max(1));
        if service.spec != old.spec {
            service.metadata.generation = Some(old.metadata.generation().max(1) + 1);
        }
        let key = service.key();
        let owner = owner_of(&service).into_bytes();
        let now_held = node_ports(&service);
        let mut together = Together {
            conditions: vec![(key.clone(), expected)],
            puts: vec![(key, service.stored_form())],
            deletes: held
                .iter()
                .filter(|n| !now_held.contains(n))
                .map(|n| format!("{NODE_PORTS}{n}"))
                .collect(),
        };
        for record in taken {
            together.conditions.extend(record.conditions);
            together.puts.push((record.key, owner.clone()));
        }
        match kv.write_together(&together).await? {
            Ok(revision) => {
                service.metadata.resource_version = Some(revision.to_string());
                let written = Object::new(service);
                let value = storage::to_value(&written);
                *object = written;
                return Ok(Ok(value));
            }
            Err(0) => return Ok(Err(KvError::Conflict { current: 0 })),
            Err(_) => continue,
        }
    }
}

/// Deletes a Service (if at `precondition`, when given) and releases its cluster IP
/// and node ports with it; returns the Service as it was.
pub async fn delete(
    kv: &Kv,
    namespace: &str,
    name: &str,
    precondition: Option<i64>,
) -> Result<berth_client::kv::Record, KvError> {
    loop {
        let key = SERVICE.key(namespace, name);
        let Some(stored) = kv.get(&key).await? else {
            return Err(KvError::NotFound);
        };
        if precondition.is_some_and(|p| p != stored.mod_revision) {
            return Err(KvError::Conflict {
                current: stored.mod_revision,
            });
        }
        let mut deletes = vec![key.clone()];
        if let Ok(service) = berth_client::registry::decode::<berth_api::kinds::service::ServiceSpec>(&stored) {
            let ip = text(&service.spec.cluster_ip);
            if !ip.is_empty() && ip != HEADLESS {
                deletes.push(format!("{CLUSTER_IPS}{ip}"));
            }
            deletes.extend(node_ports(&service).iter().map(|n| format!("{NODE_PORTS}{n}")));
        }
        let together = Together {
            conditions: vec![(key, stored.mod_revision)],
            puts: Vec::new(),
            deletes,
        };
        match kv.write_together(&together).await? {
            Ok(_) => return Ok(stored),
            Err(_) if precondition.is_some() => {
                return Err(KvError::Conflict {
                    current: stored.mod_revision,
                });
            }
            Err(_) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ServiceNetwork {
        ServiceNetwork {
            cluster_ip_range: "10.96.0.0/29".parse().unwrap(),
            node_ports: (30000, 30002),
        }
    }

    #[test]
    fn offered_values_stay_inside_the_range_and_off_its_edges() {
        let network = tiny();
        let (count, at) = network.ips();
        let ips: Vec<String> = (0..count).map(|i| at(i).to_string()).collect();
        assert_eq!(ips, ["10.96.0.2", "10.96.0.3", "10.96.0.4", "10.96.0.5", "10.96.0.6"]);
        let (count, at) = network.ports();
        assert_eq!((0..count).map(at).collect::<Vec<_>>(), [30000, 30001, 30002]);
        assert_eq!(network.first_ip().to_string(), "10.96.0.1");
        assert_eq!(walk(5, 3).collect::<Vec<_>>(), [3, 4, 0, 1, 2]);
        assert_eq!(parse_port_range("30000-32767"), Ok((30000, 32767)));
        assert!(parse_port_range("32767-30000").is_err());
    }

    /// A Service holding `ip`, stored with its record, as a create leaves them.
    async fn hold(kv: &Kv, name: &str, ip: &str) {
        let service = serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"}, "spec": {"clusterIP": ip}});
        kv.put(&SERVICE.key("default", name), serde_json::to_vec(&service).unwrap(), 0)
            .await
            .unwrap();
        kv.put(&format!("{CLUSTER_IPS}{ip}"), format!("default/{name}").into_bytes(), 0)
            .await
            .unwrap();
    }

    /// A range with one address left: the walk finds it whatever the draws did (none
    /// here), and a record whose Service is gone counts as free; with every address
    /// held, the range is full.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nearly_full_range_gives_its_last_free_address() {
        let store = berth_client::testing::store().await;
        let kv = &store.kv;
        let network = tiny();
        let (count, at) = network.ips();
        let range = Range {
            prefix: CLUSTER_IPS,
            count,
            at,
        };
        let holds = |s: &Service, ip: Ipv4Addr| text(&s.spec.cluster_ip) == ip.to_string();
        for (name, ip) in [
            ("a", "10.96.0.2"),
            ("b", "10.96.0.3"),
            ("c", "10.96.0.5"),
            ("d", "10.96.0.6"),
        ] {
            hold(kv, name, ip).await;
        }
        for _ in 0..5 {
            let found = search(kv, &range, 0, "default/new", holds, |_| false).await.unwrap();
            let (ip, record) = found.expect("one address is free");
            assert_eq!(ip.to_string(), "10.96.0.4");
            assert_eq!(record.conditions, [(format!("{CLUSTER_IPS}10.96.0.4"), 0)]);
        }
        hold(kv, "e", "10.96.0.4").await;
        let full = search(kv, &range, DRAWS, "default/new", holds, |_| false)
            .await
            .unwrap();
        assert!(full.is_none(), "every address is held");
        // The Service holding .5 went without its record (as with its namespace).
        let removed = kv.delete(&SERVICE.key("default", "c"), None, None).await.unwrap();
        let (ip, record) = search(kv, &range, 0, "default/new", holds, |_| false)
            .await
            .unwrap()
            .expect("a stale record is free");
        assert_eq!(ip.to_string(), "10.96.0.5");
        assert_eq!(record.conditions[1], (SERVICE.key("default", "c"), 0), "{removed:?}");
    }

    #[test]
    fn updates_keep_what_the_service_holds() {
        let stored = serde_json::json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.5",
            "clusterIPs": ["10.96.0.5"], "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut new = serde_json::json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}});
        keep_allocations(&stored, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.5");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        assert!(new["spec"]["ports"][1].get("nodePort").is_none());
        let mut to_cluster_ip =
            serde_json::json!({"spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30080}]}});
        keep_allocations(&stored, &mut to_cluster_ip);
        assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());
        // The policy the NodePort Service had goes too (a client's `kubectl edit`
        // of the type keeps it), unless external IPs still reach the Service.
        let stored = serde_json::json!({"spec": {"type": "NodePort", "externalTrafficPolicy": "Local"}});
        let mut edited = serde_json::json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": "Local"}});
        keep_allocations(&stored, &mut edited);
        assert!(edited["spec"].get("externalTrafficPolicy").is_none(), "{edited}");
        let mut with_ips = serde_json::json!({"spec": {"type": "ClusterIP", "externalTrafficPolicy": "Local",
            "externalIPs": ["192.0.2.10"]}});
        keep_allocations(&stored, &mut with_ips);
        assert_eq!(with_ips["spec"]["externalTrafficPolicy"], "Local");
    }
}
