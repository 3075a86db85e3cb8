//! What the proxy reads of the Services and EndpointSlices: one [`ServicePort`] per
//! port of every Service with a cluster IP, with the endpoints its slices list for
//! that port. Pure; the rules (rules.rs) are written from these alone.
//!
//! Slices belong to their Service by the `kubernetes.io/service-name` label, and a
//! slice's port to a Service port by name and protocol, as kube-proxy matches them
//! (named `targetPort`s come resolved in the slices: the port number there is the
//! pod's). Only IPv4 slices are read, and an endpoint's first address, as kube-proxy
//! reads them.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label naming an EndpointSlice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// `sessionAffinityConfig.clientIP.timeoutSeconds` when unset (three hours).
pub const DEFAULT_AFFINITY_TIMEOUT_S: i32 = 10800;

/// A port's transport protocol, in iptables' spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Kubernetes' `TCP`/`UDP`/`SCTP` (TCP when unset, the API's default).
    pub fn parse(value: Option<&str>) -> Option<Protocol> {
        match value.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// As iptables' `-p` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One address of an EndpointSlice, for one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    /// `conditions.ready`; unset means ready, as the API says.
    pub ready: bool,
    /// `conditions.serving`; unset means the same as ready.
    pub serving: bool,
    /// `conditions.terminating`; unset means not terminating.
    pub terminating: bool,
    /// The node the endpoint runs on, for the `Local` traffic policies.
    pub node_name: Option<String>,
}

impl Endpoint {
    /// `ip:port`, as DNAT's `--to-destination` takes it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

/// One port of a Service that has a cluster IP, with its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub namespace: String,
    pub service: String,
    /// The port's name (empty for a Service's single unnamed port).
    pub port_name: String,
    pub protocol: Protocol,
    pub cluster_ip: Ipv4Addr,
    pub port: u16,
    /// `nodePort`, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// `spec.externalIPs`: addresses that reach the Service as its cluster IP does.
    pub external_ips: Vec<Ipv4Addr>,
    /// `sessionAffinity: ClientIP`'s timeout.
    pub affinity_timeout_s: Option<i32>,
    /// `internalTrafficPolicy: Local`: cluster IP traffic goes to this node's
    /// endpoints only.
    pub internal_local: bool,
    /// `externalTrafficPolicy: Local`: NodePort and external IP traffic goes to this
    /// node's endpoints only, keeping the client's address.
    pub external_local: bool,
    /// Sorted by address, one per `ip:port`.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// `namespace/name:port` (`namespace/name` for an unnamed port), as kube-proxy
    /// names a service port in its comments.
    pub fn display_name(&self) -> String {
        if self.port_name.is_empty() {
            format!("{}/{}", self.namespace, self.service)
        } else {
            format!("{}/{}:{}", self.namespace, self.service, self.port_name)
        }
    }

    /// The endpoints traffic may go to: the ready ones (of this node only, with
    /// `local_node`); when none is ready, those still serving while they terminate
    /// (kube-proxy's terminating-endpoint fallback, so a rolling update or a drain
    /// drops no connection while the new pods are not ready yet).
    pub fn usable_endpoints(&self, local_node: Option<&str>) -> Vec<&Endpoint> {
        let candidates: Vec<&Endpoint> = self
            .endpoints
            .iter()
            .filter(|e| local_node.is_none_or(|node| e.node_name.as_deref() == Some(node)))
            .collect();
        let ready: Vec<&Endpoint> = candidates.iter().copied().filter(|e| e.ready).collect();
        if !ready.is_empty() {
            return ready;
        }
        candidates.into_iter().filter(|e| e.serving && e.terminating).collect()
    }
}

/// The service ports of `services`, with their endpoints from `slices`, sorted by
/// namespace, Service, port name and protocol.
pub fn service_ports(services: &[Service], slices: &[EndpointSlice]) -> Vec<ServicePort> {
    let endpoints = endpoints_by_port(slices);
    let mut ports = Vec::new();
    for service in services {
        let (Some(namespace), Some(name)) = (&service.metadata.namespace, &service.metadata.name) else {
            continue;
        };
        let Some(spec) = &service.spec else { continue };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        // Headless Services ("None") have no virtual IP to program.
        let Some(cluster_ip) = spec.cluster_ip.as_deref().and_then(|ip| ip.parse::<Ipv4Addr>().ok()) else {
            continue;
        };
        let affinity_timeout_s = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_S)
        });
        let external_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        for port in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else {
                continue;
            };
            let Ok(number) = u16::try_from(port.port) else { continue };
            let port_name = port.name.clone().unwrap_or_default();
            let key = (namespace.clone(), name.clone(), port_name.clone(), protocol);
            ports.push(ServicePort {
                namespace: namespace.clone(),
                service: name.clone(),
                port_name,
                protocol,
                cluster_ip,
                port: number,
                node_port: port.node_port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0),
                external_ips: external_ips.clone(),
                affinity_timeout_s,
                internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
                external_local: spec.external_traffic_policy.as_deref() == Some("Local"),
                endpoints: endpoints
                    .get(&key)
                    .map(|e| e.values().cloned().collect())
                    .unwrap_or_default(),
            });
        }
    }
    ports.sort_by(|a, b| {
        (&a.namespace, &a.service, &a.port_name, a.protocol).cmp(&(&b.namespace, &b.service, &b.port_name, b.protocol))
    });
    ports
}

/// (namespace, service, port name, protocol).
type PortKey = (String, String, String, Protocol);

/// Every slice's endpoints, by the service port they serve, one per `ip:port` (an
/// address two slices list is ready, serving or terminating if either says so).
fn endpoints_by_port(slices: &[EndpointSlice]) -> BTreeMap<PortKey, BTreeMap<(Ipv4Addr, u16), Endpoint>> {
    let mut by_port: BTreeMap<PortKey, BTreeMap<(Ipv4Addr, u16), Endpoint>> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let labels = slice.metadata.labels.as_ref();
        let Some(service) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) else {
            continue;
        };
        let Some(namespace) = &slice.metadata.namespace else {
            continue;
        };
        for port in slice.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else {
                continue;
            };
            let Some(number) = port.port.and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            let key = (
                namespace.clone(),
                service.clone(),
                port.name.clone().unwrap_or_default(),
                protocol,
            );
            let endpoints = by_port.entry(key).or_default();
            for endpoint in &slice.endpoints {
                let Some(ip) = endpoint.addresses.first().and_then(|a| a.parse::<Ipv4Addr>().ok()) else {
                    continue;
                };
                let conditions = endpoint.conditions.as_ref();
                let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                let found = Endpoint {
                    ip,
                    port: number,
                    ready,
                    serving: conditions.and_then(|c| c.serving).unwrap_or(ready),
                    terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
                    node_name: endpoint.node_name.clone(),
                };
                endpoints
                    .entry((ip, number))
                    .and_modify(|known| {
                        known.ready |= found.ready;
                        known.serving |= found.serving;
                        known.terminating |= found.terminating;
                    })
                    .or_insert(found);
            }
        }
    }
    by_port
}
