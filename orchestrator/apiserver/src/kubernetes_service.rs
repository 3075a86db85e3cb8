//! The `kubernetes` Service of `default`: how pods find the API, as kube-apiserver
//! keeps it. Every API server, for as long as it runs:
//!
//! ```text
//! register: /berth/apiservers/<ip>:<port> on a lease of LEASE_TTL_S, kept alive
//!   (none when the server has no address pods can reach: a loopback listener and
//!   no --advertise-address)
//! reconcile, every INTERVAL and on any change of the Service, its slices or the
//!   registrations:
//!   Service default/kubernetes absent ─► create it (services::create: the first IP of
//!     --service-cluster-ip-range, taken in the create's transaction); present: left be
//!   registrations ─► the slices, one per API port (pure: desired_slices) ─► create,
//!     update (at the revision read) or delete what differs
//! ```
//!
//! Several API servers do this at once safely: every write is conditional (create if
//! absent, update at the revision read, delete at the revision read), and all of them
//! compute the same slices from the same registrations, so a lost race is answered by
//! the next pass, which finds nothing left to do. A registration goes with its lease
//! when its API server dies, and the next pass drops its address.
//!
//! The port: kube-apiserver's Service has `https` 443, and so does berth's when its
//! API serves TLS (client-go's in-cluster configuration dials
//! `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT` and checks the
//! serving certificate against the pod's `ca.crt`: `berth pki` makes it valid for
//! the Service's address). An API served in plain HTTP (no `--tls-cert-file`) is
//! `http` 80, the scheme's own port, so that no client sends credentials in the
//! clear by mistake of scheme. The port is set when the Service is made.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use berth_api::kinds::Object;
use berth_api::kinds::endpoint_slice::{
    ENDPOINT_SLICE, Endpoint, EndpointConditions, EndpointPort, EndpointSlice, SERVICE_NAME_LABEL,
};
use berth_api::kinds::service::{SERVICE, Service, ServicePort, ServiceSpec};
use berth_api::meta::{MetaExt, ObjectMeta};
use berth_api::objects::IntOrString;
use berth_client::kv::{KeepAlive, Kv, KvError};
use berth_client::registry::Registry;

use crate::services::{self, Refusal, ServiceNetwork};

/// The Service's name and namespace, as Kubernetes'.
pub const NAME: &str = "kubernetes";
pub const NAMESPACE: &str = "default";
/// The Service's port: `https` 443 for an API served with TLS, else `http` 80.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub name: &'static str,
    pub port: i32,
}

impl Port {
    pub fn of(tls: bool) -> Port {
        if tls {
            Port {
                name: "https",
                port: 443,
            }
        } else {
            Port { name: "http", port: 80 }
        }
    }
}
/// Where each API server registers its address, on a lease.
pub const REGISTRATIONS: &str = "/berth/apiservers/";
/// How long a registration outlives its API server: kube-apiserver's endpoint lease TTL.
pub const LEASE_TTL_S: i64 = 15;
/// kube-apiserver's endpoint reconciler interval.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// The address this API server lists for pods: `--advertise-address` with the
/// listener's port; without it, the listener's address, unless that is loopback
/// (pods cannot reach it: then none) or unspecified (then the address of the host's
/// route to the outside, as kube-apiserver picks its default interface).
pub fn advertised(listen: SocketAddr, advertise_address: Option<Ipv4Addr>) -> Option<SocketAddrV4> {
    let ip = match (advertise_address, listen.ip()) {
        (Some(ip), _) => ip,
        (None, IpAddr::V4(ip)) if ip.is_loopback() => return None,
        (None, IpAddr::V4(ip)) if ip.is_unspecified() => default_route_address()?,
        (None, IpAddr::V4(ip)) => ip,
        (None, IpAddr::V6(_)) => default_route_address()?,
    };
    Some(SocketAddrV4::new(ip, listen.port()))
}

/// The source address the host would use towards the outside: a UDP socket
/// "connected" to a documentation address sends nothing but has the route's source.
fn default_route_address() -> Option<Ipv4Addr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    match socket.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_unspecified() && !ip.is_loopback() => Some(ip),
        _ => None,
    }
}

/// The Service as kube-apiserver makes it (its labels, no selector, the first
/// address of the service range), with `target_port` the API's port.
pub fn service(network: &ServiceNetwork, port: Port, target_port: u16) -> Service {
    let first = network.first_ip().to_string();
    Service::new(
        ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NAMESPACE.into()),
            labels: Some(
                [("component", "apiserver"), ("provider", "kubernetes")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ServiceSpec {
            type_: Some("ClusterIP".into()),
            cluster_ip: Some(first.clone()),
            cluster_ips: Some(vec![first]),
            session_affinity: Some("None".into()),
            ports: Some(vec![ServicePort {
                name: Some(port.name.into()),
                port: port.port,
                protocol: Some("TCP".into()),
                target_port: Some(IntOrString::Int(i32::from(target_port))),
                ..Default::default()
            }]),
            ..Default::default()
        },
    )
}

/// The slices listing the registered API servers: one per API port, since a slice's
/// endpoints share its ports (kube-apiserver's servers all serve one port; berth's
/// replicas on one host each have their own). The first is named `kubernetes`, as
/// Kubernetes' one slice; the others `kubernetes-<port>`. With no server registered,
/// one empty slice: the Service has no endpoints, and says so.
pub fn desired_slices(registered: &[SocketAddrV4], port_name: &'static str) -> Vec<EndpointSlice> {
    let mut by_port: BTreeMap<u16, Vec<Ipv4Addr>> = BTreeMap::new();
    for address in registered {
        by_port.entry(address.port()).or_default().push(*address.ip());
    }
    if by_port.is_empty() {
        return vec![slice(NAME.into(), port_name, None, Vec::new())];
    }
    by_port
        .into_iter()
        .enumerate()
        .map(|(i, (port, mut ips))| {
            ips.sort();
            ips.dedup();
            let name = if i == 0 {
                NAME.to_string()
            } else {
                format!("{NAME}-{port}")
            };
            slice(name, port_name, Some(port), ips)
        })
        .collect()
}

fn slice(name: String, port_name: &'static str, port: Option<u16>, ips: Vec<Ipv4Addr>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(NAMESPACE.into()),
            labels: Some([(SERVICE_NAME_LABEL.to_string(), NAME.to_string())].into()),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: ips
            .into_iter()
            .map(|ip| Endpoint {
                addresses: vec![ip.to_string()],
                conditions: Some(EndpointConditions {
                    ready: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ports: Some(
            port.map(|port| EndpointPort {
                name: Some(port_name.into()),
                port: Some(i32::from(port)),
                protocol: Some("TCP".into()),
                app_protocol: None,
            })
            .into_iter()
            .collect(),
        ),
    }
}

/// Whether a stored slice is one of the Service's: named `kubernetes` or
/// `kubernetes-<port>` and labelled for it. Other slices a user labels for the
/// Service are left alone.
fn is_ours(slice: &EndpointSlice) -> bool {
    let name = slice.metadata.name();
    let named = name == NAME
        || name
            .strip_prefix("kubernetes-")
            .is_some_and(|port| port.parse::<u16>().is_ok());
    named && slice.metadata.labels().get(SERVICE_NAME_LABEL).map(String::as_str) == Some(NAME)
}

/// Creates the Service unless it exists (whoever made it, and however it is now).
async fn ensure_service(kv: &Kv, network: &ServiceNetwork, port: Port, target_port: u16) -> Result<(), KvError> {
    if kv.get(&SERVICE.key(NAMESPACE, NAME)).await?.is_some() {
        return Ok(());
    }
    let mut object = Object::new(service(network, port, target_port));
    (SERVICE.defaults)(&mut object);
    match services::create(kv, network, &mut object, None, &[]).await {
        Ok(Ok(_)) => {
            tracing::info!(ip = %network.first_ip(), "created the kubernetes Service");
            Ok(())
        }
        Ok(Err(KvError::AlreadyExists)) => Ok(()),
        Ok(Err(e)) | Err(Refusal::Store(e)) => Err(e),
        Err(Refusal::Invalid(errors)) => Err(KvError::Other(format!(
            "cannot create the kubernetes Service: {}",
            errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("; ")
        ))),
        Err(Refusal::Full(what)) => Err(KvError::Other(format!("no {what} for the kubernetes Service"))),
    }
}

/// The registered API servers' addresses.
async fn registrations(kv: &Kv) -> Result<Vec<SocketAddrV4>, KvError> {
    let (records, _) = kv.list(REGISTRATIONS).await?;
    Ok(records
        .iter()
        .filter_map(|r| r.key.strip_prefix(REGISTRATIONS)?.parse().ok())
        .collect())
}

/// Brings the stored slices to the desired ones; every write conditional.
async fn reconcile_slices(kv: &Kv, registry: &Registry, port: Port) -> Result<(), KvError> {
    let want = desired_slices(&registrations(kv).await?, port.name);
    let (records, _) = kv.list(&ENDPOINT_SLICE.prefix(Some(NAMESPACE))).await?;
    let mut stored: BTreeMap<String, (EndpointSlice, i64)> = records
        .iter()
        .filter_map(|r| Some((serde_json::from_slice::<EndpointSlice>(&r.value).ok()?, r.mod_revision)))
        .filter(|(s, _)| is_ours(s))
        .map(|(s, revision)| (s.metadata.name().to_string(), (s, revision)))
        .collect();
    for mut slice in want {
        match stored.remove(slice.metadata.name()) {
            None => ignore_races(registry.create(&Object::new(slice), None).await)?,
            Some((current, revision)) => {
                let same = current.endpoints == slice.endpoints
                    && current.ports == slice.ports
                    && current.address_type == slice.address_type
                    && current.metadata.labels == slice.metadata.labels;
                if !same {
                    let mut metadata = current.metadata.clone();
                    metadata.labels = slice.metadata.labels.take();
                    metadata.resource_version = Some(revision.to_string());
                    slice.metadata = metadata;
                    ignore_races(registry.update(&Object::new(slice), None).await)?;
                }
            }
        }
    }
    for (name, (_, revision)) in stored {
        ignore_races(
            kv.delete(&ENDPOINT_SLICE.key(NAMESPACE, &name), Some(revision), None)
                .await
                .map(|_| ()),
        )?;
    }
    Ok(())
}

/// Another API server wrote first: the next pass sees what it wrote.
fn ignore_races<T>(result: Result<T, KvError>) -> Result<(), KvError> {
    match result {
        Ok(_) | Err(KvError::AlreadyExists | KvError::Conflict { .. } | KvError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes this server's registration on a fresh lease and keeps it alive.
async fn register(kv: &Kv, address: SocketAddrV4) -> Result<KeepAlive, KvError> {
    let lease = kv.grant(LEASE_TTL_S).await?;
    kv.put(
        &format!("{REGISTRATIONS}{address}"),
        address.to_string().into_bytes(),
        lease,
    )
    .await?;
    tracing::info!(%address, "registered as an API server for the kubernetes Service");
    Ok(kv.keep_alive(lease, LEASE_TTL_S))
}

/// Resolves when the registration's lease is lost; never without one.
async fn lost(registration: &mut Option<KeepAlive>) {
    match registration {
        Some(keep_alive) => keep_alive.lost().await,
        None => std::future::pending().await,
    }
}

/// Wakes `changed` on every change under `prefix` (and when its watch has to start
/// again, since changes may have been missed), until the process ends.
async fn watch_changes(kv: Kv, prefix: String, changed: Arc<tokio::sync::Notify>) {
    loop {
        match kv.watch(&prefix, 0).await {
            Ok(mut watch) => {
                while let Some(Ok((_, events))) = watch.next().await {
                    if !events.is_empty() {
                        changed.notify_one();
                    }
                }
            }
            Err(e) => tracing::debug!(%prefix, error = %e, "cannot watch yet"),
        }
        changed.notify_one();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Keeps the Service (on `port`) and its slices, and this server's registration at
/// `address` (none: this server lists no address), until the process ends.
pub async fn run(kv: Kv, network: ServiceNetwork, port: Port, api_port: u16, address: Option<SocketAddrV4>) {
    let registry = Registry::new(kv.clone());
    let changed = Arc::new(tokio::sync::Notify::new());
    for prefix in [
        SERVICE.key(NAMESPACE, NAME),
        ENDPOINT_SLICE.key(NAMESPACE, NAME),
        REGISTRATIONS.to_string(),
    ] {
        tokio::spawn(watch_changes(kv.clone(), prefix, changed.clone()));
    }
    if address.is_none() {
        tracing::info!(
            "the API listens on loopback only and has no --advertise-address: \
             the kubernetes Service lists no address of this server"
        );
    }
    let mut registration: Option<KeepAlive> = None;
    loop {
        if registration.is_none()
            && let Some(address) = address
        {
            match register(&kv, address).await {
                Ok(keep_alive) => registration = Some(keep_alive),
                Err(e) => tracing::debug!(error = %e, "cannot register the API server yet"),
            }
        }
        let pass = async {
            ensure_service(&kv, &network, port, api_port).await?;
            reconcile_slices(&kv, &registry, port).await
        };
        let retry = match pass.await {
            Ok(()) => INTERVAL,
            Err(e) => {
                tracing::debug!(error = %e, "cannot keep the kubernetes Service yet; retrying");
                Duration::from_millis(500)
            }
        };
        let retry = if registration.is_none() && address.is_some() {
            Duration::from_millis(500)
        } else {
            retry
        };
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = changed.notified() => {}
            () = lost(&mut registration) => registration = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_address_is_one_pods_can_reach() {
        let listen: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(advertised(listen, None), None, "loopback: none");
        let given = Some(Ipv4Addr::new(10, 0, 0, 7));
        assert_eq!(advertised(listen, given), Some("10.0.0.7:8080".parse().unwrap()));
        let on_bridge: SocketAddr = "10.0.0.1:6443".parse().unwrap();
        assert_eq!(advertised(on_bridge, None), Some("10.0.0.1:6443".parse().unwrap()));
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        if let Some(chosen) = advertised(any, None) {
            assert!(!chosen.ip().is_loopback() && !chosen.ip().is_unspecified(), "{chosen}");
            assert_eq!(chosen.port(), 8080);
        }
    }

    #[test]
    fn the_service_is_kube_apiservers_on_the_first_ip_of_the_range() {
        let network = ServiceNetwork {
            cluster_ip_range: "10.100.0.0/16".parse().unwrap(),
            ..Default::default()
        };
        let service = service(&network, Port::of(true), 8080);
        assert_eq!(service.spec.cluster_ip.as_deref(), Some("10.100.0.1"));
        assert_eq!(service.spec.selector, None);
        let port = &service.spec.ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.port, port.target_port.clone()),
            (Some("https"), 443, Some(IntOrString::Int(8080)))
        );
        let plain = super::service(&network, Port::of(false), 8080);
        let port = &plain.spec.ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("http"), 80));
        assert_eq!(
            service.metadata.labels().get("provider").map(String::as_str),
            Some("kubernetes")
        );
    }

    #[test]
    fn the_slices_list_every_registered_server_one_slice_per_port() {
        let none = desired_slices(&[], "https");
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].metadata.name(), "kubernetes");
        assert!(none[0].endpoints.is_empty());

        let one_port = desired_slices(
            &["10.0.0.2:6443".parse().unwrap(), "10.0.0.1:6443".parse().unwrap()],
            "https",
        );
        assert_eq!(one_port.len(), 1);
        let slice = &one_port[0];
        assert_eq!(slice.metadata.name(), "kubernetes");
        assert_eq!(
            slice.metadata.labels().get(SERVICE_NAME_LABEL).map(String::as_str),
            Some("kubernetes")
        );
        let addresses: Vec<&str> = slice.endpoints.iter().map(|e| e.addresses[0].as_str()).collect();
        assert_eq!(addresses, ["10.0.0.1", "10.0.0.2"]);
        assert!(
            slice
                .endpoints
                .iter()
                .all(|e| e.conditions.as_ref().unwrap().ready == Some(true))
        );
        let port = &slice.ports.as_ref().unwrap()[0];
        assert_eq!((port.name.as_deref(), port.port), (Some("https"), Some(6443)));

        let two_ports = desired_slices(
            &["10.0.0.1:8081".parse().unwrap(), "10.0.0.1:8080".parse().unwrap()],
            "http",
        );
        let names: Vec<&str> = two_ports.iter().map(|s| s.metadata.name()).collect();
        assert_eq!(names, ["kubernetes", "kubernetes-8081"]);
        assert!(two_ports.iter().all(is_ours));
        let mut users = two_ports[0].clone();
        users.metadata.name = Some("kubernetes-extra".into());
        assert!(!is_ours(&users));
    }
}
