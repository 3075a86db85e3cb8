//! Services: a stable virtual IP (and, for `NodePort`, a port on every node) in
//! front of the pods a selector matches. Kubernetes' core/v1 `Service`.
//!
//! The API server allocates `spec.clusterIP` and the node ports (berth-apiserver's
//! `services/`), the EndpointSlice controller lists the pods behind each Service,
//! and every agent's proxy and DNS server read both. What Kubernetes defaults is
//! defaulted here ([`defaults`]), before validation, on every write.
//!
//! berth's service network is IPv4 only, and what needs a cloud (`LoadBalancer`)
//! or topology hints is refused by name (`validation/service.rs`); external IPs and
//! both traffic policies, `Local` included, are the proxy's to implement.

use std::time::SystemTime;

use serde_json::Value;

use super::cells::{self, Cells, or_none, text};
use super::{KindDescriptor, Object, PrinterColumn, StatusOnCreate, Subresources};
use crate::objects::{IntOrString, Spec};
use crate::validation::{self, FieldError};

pub use k8s_openapi::api::core::v1::{ClientIPConfig, ServicePort, ServiceSpec, ServiceStatus, SessionAffinityConfig};

/// A Service as berth stores it: Kubernetes' spec and status in berth's envelope.
pub type Service = crate::objects::Resource<ServiceSpec>;

pub const CLUSTER_IP: &str = "ClusterIP";
pub const NODE_PORT: &str = "NodePort";
pub const LOAD_BALANCER: &str = "LoadBalancer";
pub const EXTERNAL_NAME: &str = "ExternalName";
/// `spec.clusterIP` of a headless Service: no virtual IP, DNS answers with the pods.
pub const HEADLESS: &str = "None";
/// How long `sessionAffinity: ClientIP` keeps a client on one endpoint when the
/// Service does not say, as Kubernetes' default (3 hours).
pub const DEFAULT_CLIENT_IP_TIMEOUT_SECONDS: i32 = 10800;

pub static SERVICE: KindDescriptor = KindDescriptor {
    group: "",
    version: "v1",
    kind: "Service",
    plural: "services",
    singular: "service",
    short_names: &["svc"],
    namespaced: true,
    // Service names are DNS labels (they become one in `<svc>.<ns>.svc`).
    names_are_dns_labels: true,
    field_selectors: &["spec.clusterIP", "spec.type"],
    categories: &["all"],
    subresources: Subresources {
        status: true,
        scale: false,
    },
    printer_columns: &[
        PrinterColumn::NAME,
        PrinterColumn::new("Type", "string", ".spec.type", "The type of the service."),
        PrinterColumn::new(
            "Cluster-IP",
            "string",
            ".spec.clusterIP",
            "The virtual IP of the service inside the cluster (None when headless).",
        ),
        PrinterColumn::new(
            "External-IP",
            "string",
            "",
            "The addresses outside the cluster the service is reached at.",
        ),
        PrinterColumn::new(
            "Port(s)",
            "string",
            "",
            "The service's ports (and node ports), with their protocols.",
        ),
        PrinterColumn::AGE,
        PrinterColumn::new("Selector", "string", "", "The label selector of the service's pods.").wide(),
    ],
    status_on_create: StatusOnCreate::Cleared,
    decode: Object::decode::<ServiceSpec>,
    defaults,
    validate,
    validate_update,
    cells,
    conversion: None,
    schema: |generator| generator.subschema_for::<k8s_openapi::api::core::v1::Service>(),
};

impl Spec for ServiceSpec {
    type Status = ServiceStatus;
    const DESCRIPTOR: &'static KindDescriptor = &SERVICE;
}

/// The Service's type, as Kubernetes reads it: absent is `ClusterIP`.
pub fn service_type(spec: &ServiceSpec) -> &str {
    match text(&spec.type_) {
        "" => CLUSTER_IP,
        t => t,
    }
}

/// Whether the Service is headless (`clusterIP: None`): no virtual IP.
pub fn is_headless(spec: &ServiceSpec) -> bool {
    text(&spec.cluster_ip) == HEADLESS
}

/// Whether the Service's type gives each port a node port.
pub fn wants_node_ports(spec: &ServiceSpec) -> bool {
    matches!(service_type(spec), NODE_PORT | LOAD_BALANCER)
}

/// Kubernetes' defaults (its `SetDefaults_Service` and what its REST layer fills in
/// before allocation): the type, session affinity, each port's protocol and target
/// port, the traffic policies, the IP family, and `clusterIPs` from `clusterIP`.
fn defaults(object: &mut Object) {
    let Some(service) = object.downcast_mut::<Service>() else {
        return;
    };
    let spec = &mut service.spec;
    if text(&spec.type_).is_empty() {
        spec.type_ = Some(CLUSTER_IP.into());
    }
    if text(&spec.session_affinity).is_empty() {
        spec.session_affinity = Some("None".into());
    }
    if text(&spec.session_affinity) == "ClientIP" {
        let config = spec.session_affinity_config.get_or_insert_with(Default::default);
        let client_ip = config.client_ip.get_or_insert_with(Default::default);
        client_ip
            .timeout_seconds
            .get_or_insert(DEFAULT_CLIENT_IP_TIMEOUT_SECONDS);
    }
    for port in spec.ports.iter_mut().flatten() {
        if text(&port.protocol).is_empty() {
            port.protocol = Some("TCP".into());
        }
        let unset = match &port.target_port {
            None => true,
            Some(IntOrString::Int(0)) => true,
            Some(IntOrString::String(s)) => s.is_empty(),
            _ => false,
        };
        if unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    if service_type(spec) == EXTERNAL_NAME {
        return;
    }
    if text(&spec.internal_traffic_policy).is_empty() {
        spec.internal_traffic_policy = Some("Cluster".into());
    }
    if validation::service::is_externally_accessible(spec) && text(&spec.external_traffic_policy).is_empty() {
        spec.external_traffic_policy = Some("Cluster".into());
    }
    // `clusterIP` and `clusterIPs[0]` say the same; either may be the one sent.
    match (text(&spec.cluster_ip).is_empty(), spec.cluster_ips.as_deref()) {
        (true, Some([first, ..])) => spec.cluster_ip = Some(first.clone()),
        (false, None | Some([])) => spec.cluster_ips = Some(vec![text(&spec.cluster_ip).to_string()]),
        _ => {}
    }
    if spec.ip_families.as_ref().is_none_or(|f| f.is_empty()) {
        spec.ip_families = Some(vec!["IPv4".into()]);
    }
    if text(&spec.ip_family_policy).is_empty() {
        spec.ip_family_policy = Some("SingleStack".into());
    }
}

fn validate(object: &Object, errors: &mut Vec<FieldError>) {
    if let Some(service) = object.downcast_ref::<Service>() {
        validation::service::service(service, errors);
    }
}

fn validate_update(old: &Object, new: &Object, errors: &mut Vec<FieldError>) {
    if let (Some(old), Some(new)) = (old.downcast_ref::<Service>(), new.downcast_ref::<Service>()) {
        validation::service::service_update(old, new, errors);
    }
}

fn cells(object: &Object, now: SystemTime) -> Cells {
    let Some(service) = object.downcast_ref::<Service>() else {
        return cells::from_paths(&SERVICE, object, now);
    };
    let spec = &service.spec;
    vec![
        cells::name(object),
        service_type(spec).into(),
        or_none(text(&spec.cluster_ip)),
        external_ips(service).into(),
        or_none(&ports_text(spec.ports.as_deref().unwrap_or_default())),
        cells::age(object, now),
        selector_text(spec),
    ]
}

/// The EXTERNAL-IP cell, by kubectl's rules for each type.
fn external_ips(service: &Service) -> String {
    let spec = &service.spec;
    let external: Vec<&str> = spec.external_ips.iter().flatten().map(String::as_str).collect();
    match service_type(spec) {
        EXTERNAL_NAME => text(&spec.external_name).to_string(),
        LOAD_BALANCER => {
            let ingress: Vec<&str> = service
                .status
                .load_balancer
                .iter()
                .flat_map(|lb| lb.ingress.iter().flatten())
                .filter_map(|i| i.ip.as_deref().or(i.hostname.as_deref()))
                .chain(external.iter().copied())
                .collect();
            if ingress.is_empty() {
                "<pending>".into()
            } else {
                ingress.join(",")
            }
        }
        _ if !external.is_empty() => external.join(","),
        _ => "<none>".into(),
    }
}

/// `80/TCP,443:30443/TCP`, as the PORT(S) column shows ports.
pub fn ports_text(ports: &[ServicePort]) -> String {
    ports
        .iter()
        .map(|p| {
            let protocol = match text(&p.protocol) {
                "" => "TCP",
                protocol => protocol,
            };
            match p.node_port {
                Some(node_port) if node_port != 0 => format!("{}:{node_port}/{protocol}", p.port),
                _ => format!("{}/{protocol}", p.port),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `app=web,tier=front`, or `<none>` for a Service without a selector.
fn selector_text(spec: &ServiceSpec) -> Value {
    let pairs: Vec<String> = spec
        .selector
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    or_none(&pairs.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::named;

    fn decoded(value: Value) -> Object {
        let mut object = (SERVICE.decode)(&value).unwrap();
        (SERVICE.defaults)(&mut object);
        object
    }

    #[test]
    fn kubernetes_defaults_are_filled_in() {
        let object = decoded(serde_json::json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}, {"port": 81, "targetPort": "http"}],
                     "sessionAffinity": "ClientIP"}
        }));
        let spec = &object.downcast_ref::<Service>().unwrap().spec;
        assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
        let ports = spec.ports.as_deref().unwrap();
        assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(ports[0].target_port, Some(IntOrString::Int(80)));
        assert_eq!(ports[1].target_port, Some(IntOrString::String("http".into())));
        assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
        assert_eq!(
            spec.external_traffic_policy, None,
            "only NodePort and LoadBalancer have one"
        );
        assert_eq!(spec.ip_families.as_deref(), Some(&["IPv4".to_string()][..]));
        assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
        let timeout = spec
            .session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds);
        assert_eq!(timeout, Some(DEFAULT_CLIENT_IP_TIMEOUT_SECONDS));
        let headless = decoded(serde_json::json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "type": "NodePort"}
        }));
        let spec = &headless.downcast_ref::<Service>().unwrap().spec;
        assert_eq!(spec.cluster_ips.as_deref(), Some(&["None".to_string()][..]));
        assert_eq!(spec.session_affinity.as_deref(), Some("None"));
        assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    }

    #[test]
    fn rows_as_kubectl_prints_them() {
        let mut service = Service::new(
            named("default", "web"),
            ServiceSpec {
                type_: Some(NODE_PORT.into()),
                cluster_ip: Some("10.96.0.7".into()),
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(vec![
                    ServicePort {
                        port: 80,
                        node_port: Some(30080),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    },
                    ServicePort {
                        port: 53,
                        protocol: Some("UDP".into()),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            },
        );
        let now = SystemTime::now();
        let row = cells(&Object::new(service.clone()), now);
        assert_eq!(
            row.iter().map(|c| c.to_string()).collect::<Vec<_>>()[..5],
            [
                "\"web\"",
                "\"NodePort\"",
                "\"10.96.0.7\"",
                "\"<none>\"",
                "\"80:30080/TCP,53/UDP\""
            ]
        );
        assert_eq!(row[6], "app=web");
        service.spec.type_ = None;
        service.spec.ports = None;
        service.spec.selector = None;
        service.spec.cluster_ip = Some(HEADLESS.into());
        let row = cells(&Object::new(service), now);
        assert_eq!(
            (&row[1], &row[2], &row[4], &row[6]),
            (&"ClusterIP".into(), &"None".into(), &"<none>".into(), &"<none>".into())
        );
    }
}
