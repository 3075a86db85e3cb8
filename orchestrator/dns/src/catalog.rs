//! What the cluster's names are made from: the Services and EndpointSlices of the
//! store, read into small input types of our own (the server needs a few fields of
//! each), and the [`Catalog`] that two reflectors keep current.
//!
//! ```text
//!  reflector /registry/services/       ─► Catalog.services  (namespace, name) ─► ServiceEntry
//!  reflector /registry/endpointslices/ ─► Catalog.slices    (namespace, slice)  ─► SliceEntry
//!                                            │ read under one lock per query
//!                                            ▼
//!                                     zone::answer (pure)
//! ```
//!
//! Both are stored in Kubernetes' JSON (berth-api's `Service` is its spec and status
//! in berth's envelope, `EndpointSlice` is flat), so, read through the registry's
//! decoder, they are k8s-openapi's types.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use berth_api::kinds::endpoint_slice::ENDPOINT_SLICE;
use berth_api::kinds::service::SERVICE;
use berth_client::api_source::Source;
use berth_client::kv::{Event, Record};
use berth_client::reflector::Sink;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// Where the API server keeps them (`/registry/<plural>/<namespace>/<name>`).
pub const SERVICES_PREFIX: &str = "/registry/services/";
pub const ENDPOINT_SLICES_PREFIX: &str = "/registry/endpointslices/";
/// The label naming an EndpointSlice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One port of a Service or of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortEntry {
    /// "" for the one unnamed port a Service may have.
    pub name: String,
    pub port: u16,
    /// TCP, UDP or SCTP.
    pub protocol: String,
}

/// What names and environment variables need of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub namespace: String,
    pub name: String,
    /// `spec.clusterIPs` (or `clusterIP`); empty for a headless or ExternalName one.
    pub cluster_ips: Vec<IpAddr>,
    /// `clusterIP: None`: the names are the endpoints' own addresses.
    pub headless: bool,
    /// `type: ExternalName`: the name is a CNAME to this.
    pub external_name: Option<String>,
    pub ports: Vec<PortEntry>,
    /// `publishNotReadyAddresses`: not-ready endpoints are named too.
    pub publish_not_ready: bool,
}

/// One endpoint of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointEntry {
    pub addresses: Vec<IpAddr>,
    /// The pod's `hostname`, set by the slice's controller when the pod's `subdomain`
    /// is the Service's name.
    pub hostname: Option<String>,
    /// `conditions.ready`; an absent one counts as ready, as Kubernetes reads it.
    pub ready: bool,
}

/// What names need of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEntry {
    pub namespace: String,
    /// The Service it belongs to (its `kubernetes.io/service-name` label).
    pub service: String,
    pub ports: Vec<PortEntry>,
    pub endpoints: Vec<EndpointEntry>,
}

impl ServiceEntry {
    pub fn from_service(service: &Service) -> Option<ServiceEntry> {
        let meta = &service.metadata;
        let spec = service.spec.as_ref()?;
        let cluster_ip = spec.cluster_ip.as_deref().unwrap_or_default();
        let headless = cluster_ip == "None";
        let external_name = (spec.type_.as_deref() == Some("ExternalName"))
            .then(|| spec.external_name.clone())
            .flatten()
            .map(|n| n.trim_end_matches('.').to_string())
            .filter(|n| !n.is_empty());
        let listed = spec.cluster_ips.iter().flatten().map(String::as_str);
        let cluster_ips = listed
            .chain((!cluster_ip.is_empty()).then_some(cluster_ip))
            .filter_map(|ip| ip.parse().ok())
            .fold(Vec::new(), |mut ips: Vec<IpAddr>, ip| {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
                ips
            });
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(PortEntry {
                    name: p.name.clone().unwrap_or_default(),
                    port: u16::try_from(p.port).ok()?,
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                })
            })
            .collect();
        Some(ServiceEntry {
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            name: meta.name.clone()?,
            cluster_ips,
            headless,
            external_name,
            ports,
            publish_not_ready: spec.publish_not_ready_addresses == Some(true),
        })
    }

    /// The address environment variables and A records give: the first cluster IP.
    pub fn cluster_ip(&self) -> Option<IpAddr> {
        self.cluster_ips.first().copied()
    }
}

impl SliceEntry {
    pub fn from_slice(slice: &EndpointSlice) -> Option<SliceEntry> {
        let meta = &slice.metadata;
        let service = meta.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(PortEntry {
                    name: p.name.clone().unwrap_or_default(),
                    port: u16::try_from(p.port?).ok()?,
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                })
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .map(|e| EndpointEntry {
                addresses: e.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
                hostname: e.hostname.clone().filter(|h| !h.is_empty()),
                ready: e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
            })
            .collect();
        Some(SliceEntry {
            namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
            service,
            ports,
            endpoints,
        })
    }
}

/// The Services and EndpointSlices as last read, keyed by (namespace, name).
#[derive(Debug, Default)]
pub struct Catalog {
    inner: RwLock<Contents>,
}

#[derive(Debug, Default, Clone)]
pub struct Contents {
    pub services: BTreeMap<(String, String), ServiceEntry>,
    pub slices: BTreeMap<(String, String), SliceEntry>,
}

impl Contents {
    /// The slices of the Service `namespace/name`.
    pub fn slices_of<'a>(&'a self, namespace: &'a str, name: &'a str) -> impl Iterator<Item = &'a SliceEntry> + 'a {
        let start = (namespace.to_string(), String::new());
        self.slices
            .range(start..)
            .take_while(move |((ns, _), _)| ns == namespace)
            .map(|(_, slice)| slice)
            .filter(move |slice| slice.service == name)
    }

    /// The Services of one namespace, by name.
    pub fn services_in<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a ServiceEntry> + 'a {
        let start = (namespace.to_string(), String::new());
        self.services
            .range(start..)
            .take_while(move |((ns, _), _)| ns == namespace)
            .map(|(_, service)| service)
    }
}

impl Catalog {
    /// Reads the contents under the lock.
    pub fn read<T>(&self, f: impl FnOnce(&Contents) -> T) -> T {
        f(&self.inner.read().expect("catalog lock"))
    }

    /// Replaces the contents (tests, and the snapshots built without a store).
    pub fn set(&self, contents: Contents) {
        *self.inner.write().expect("catalog lock") = contents;
    }

    /// Keeps the catalog current from the store until the task is dropped: one
    /// reflector per prefix.
    pub async fn follow(self: Arc<Self>, source: impl Into<Source>) {
        let source: Source = source.into();
        let services = source
            .clone()
            .reflect(&SERVICE, None, Arc::new(ServicesSink(self.clone())));
        let slices = source.reflect(&ENDPOINT_SLICE, None, Arc::new(SlicesSink(self)));
        tokio::join!(services, slices);
    }
}

/// (namespace, name) from `/registry/<plural>/<namespace>/<name>`.
fn key_parts(prefix: &str, key: &str) -> Option<(String, String)> {
    let (namespace, name) = key.strip_prefix(prefix)?.split_once('/')?;
    Some((namespace.to_string(), name.to_string()))
}

/// The stored object of `kind` as k8s-openapi's type; one that does not decode is
/// logged and skipped.
fn decode<T: serde::de::DeserializeOwned>(record: &Record, kind: &str) -> Option<T> {
    berth_client::registry::decode_value(record, kind)
        .map_err(|e| e.to_string())
        .and_then(|value| serde_json::from_value(value).map_err(|e| e.to_string()))
        .map_err(|e| tracing::warn!(key = %record.key, error = %e, "skipping an object that does not decode"))
        .ok()
}

/// Applies a reflector's records to one of the catalog's maps.
fn apply_events<T>(
    map: &mut BTreeMap<(String, String), T>,
    prefix: &str,
    events: &[Event],
    read: impl Fn(&Record) -> Option<T>,
) {
    for event in events {
        match event {
            Event::Put(record) => {
                let Some(key) = key_parts(prefix, &record.key) else {
                    continue;
                };
                match read(record) {
                    Some(entry) => map.insert(key, entry),
                    None => map.remove(&key),
                };
            }
            Event::Delete { prev, .. } => {
                if let Some(key) = key_parts(prefix, &prev.key) {
                    map.remove(&key);
                }
            }
        }
    }
}

fn read_service(record: &Record) -> Option<ServiceEntry> {
    ServiceEntry::from_service(&decode::<Service>(record, "Service")?)
}

fn read_slice(record: &Record) -> Option<SliceEntry> {
    SliceEntry::from_slice(&decode::<EndpointSlice>(record, "EndpointSlice")?)
}

struct ServicesSink(Arc<Catalog>);
struct SlicesSink(Arc<Catalog>);

impl Sink for ServicesSink {
    fn replace(&self, records: Vec<Record>, _revision: i64) {
        let mut contents = self.0.inner.write().expect("catalog lock");
        contents.services.clear();
        let puts: Vec<Event> = records.into_iter().map(Event::Put).collect();
        apply_events(&mut contents.services, SERVICES_PREFIX, &puts, read_service);
    }

    fn apply(&self, events: Vec<Event>, _revision: i64) {
        let mut contents = self.0.inner.write().expect("catalog lock");
        apply_events(&mut contents.services, SERVICES_PREFIX, &events, read_service);
    }
}

impl Sink for SlicesSink {
    fn replace(&self, records: Vec<Record>, _revision: i64) {
        let mut contents = self.0.inner.write().expect("catalog lock");
        contents.slices.clear();
        let puts: Vec<Event> = records.into_iter().map(Event::Put).collect();
        apply_events(&mut contents.slices, ENDPOINT_SLICES_PREFIX, &puts, read_slice);
    }

    fn apply(&self, events: Vec<Event>, _revision: i64) {
        let mut contents = self.0.inner.write().expect("catalog lock");
        apply_events(&mut contents.slices, ENDPOINT_SLICES_PREFIX, &events, read_slice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_service_reads_its_addresses_ports_and_kind() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                     "ports": [{"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"}]}
        }))
        .unwrap();
        let entry = ServiceEntry::from_service(&service).unwrap();
        assert_eq!(entry.cluster_ips, vec!["10.96.0.20".parse::<IpAddr>().unwrap()]);
        assert!(!entry.headless);
        assert_eq!(entry.ports[0].protocol, "TCP", "TCP when not given");
        assert_eq!(entry.ports[1].protocol, "UDP");

        let headless: Service = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"clusterIP": "None", "clusterIPs": ["None"]}
        }))
        .unwrap();
        let entry = ServiceEntry::from_service(&headless).unwrap();
        assert!(entry.headless && entry.cluster_ips.is_empty());

        let external: Service = serde_json::from_value(json!({
            "metadata": {"name": "mail", "namespace": "shop"},
            "spec": {"type": "ExternalName", "externalName": "mail.example.com."}
        }))
        .unwrap();
        let entry = ServiceEntry::from_service(&external).unwrap();
        assert_eq!(entry.external_name.as_deref(), Some("mail.example.com"));
    }

    #[test]
    fn a_slice_names_its_service_and_reads_absent_readiness_as_ready() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "db-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432}],
            "endpoints": [
                {"addresses": ["10.244.1.5"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.244.2.6"], "conditions": {"ready": false}},
                {"addresses": ["10.244.2.7"]}
            ]
        }))
        .unwrap();
        let entry = SliceEntry::from_slice(&slice).unwrap();
        assert_eq!(entry.service, "db");
        let ready: Vec<bool> = entry.endpoints.iter().map(|e| e.ready).collect();
        assert_eq!(ready, [true, false, true]);
        assert_eq!(entry.endpoints[0].hostname.as_deref(), Some("db-0"));
    }

    #[test]
    fn the_sinks_follow_puts_and_deletes_by_key() {
        let catalog = Arc::new(Catalog::default());
        let sink = ServicesSink(catalog.clone());
        let record = |name: &str| Record {
            key: format!("/registry/services/shop/{name}"),
            value: serde_json::to_vec(&json!({
                "metadata": {"name": name, "namespace": "shop"},
                "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 80}]}
            }))
            .unwrap(),
            ..Record::default()
        };
        sink.replace(vec![record("a"), record("b")], 5);
        assert_eq!(catalog.read(|c| c.services_in("shop").count()), 2);
        sink.apply(
            vec![Event::Delete {
                prev: record("a"),
                revision: 6,
            }],
            6,
        );
        let names: Vec<String> = catalog.read(|c| c.services_in("shop").map(|s| s.name.clone()).collect());
        assert_eq!(names, ["b"]);
    }
}
