//! A Service's checks, with kube-apiserver's words (its `ValidateService` and
//! `ValidateServiceUpdate`): ports, target ports, the cluster IP's forms, the
//! selector, and what berth refuses by name because nothing in berth would act on
//! it. Whether an asked-for cluster IP or node port is inside its range and free is
//! the allocator's to say (berth-apiserver), as kube-apiserver's does.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::unsupported::{NOT_IMPLEMENTED, check};
use super::{Errors, err, is_dns_label};
use crate::kinds::cells::text;
use crate::kinds::service::{
    CLUSTER_IP, EXTERNAL_NAME, HEADLESS, LOAD_BALANCER, NODE_PORT, Service, ServicePort, is_headless, service_type,
};
use crate::objects::IntOrString;

/// Kubernetes' IP message, as its `IsValidIP` words it.
pub const INVALID_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

pub fn service(service: &Service, errors: &mut Errors) {
    let name = service.metadata.name.as_deref().unwrap_or_default();
    if !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        err(
            errors,
            "metadata.name",
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an \
             alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', \
             regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
        );
    }
    let spec = &service.spec;
    let type_ = service_type(spec);
    match type_ {
        CLUSTER_IP | NODE_PORT => {}
        LOAD_BALANCER | EXTERNAL_NAME => err(
            errors,
            "spec.type",
            format!("{NOT_IMPLEMENTED} (berth serves ClusterIP and NodePort Services)"),
        ),
        other => err(
            errors,
            "spec.type",
            format!(
                "Unsupported value: {other:?}: supported values: \"ClusterIP\", \"ExternalName\", \
                 \"LoadBalancer\", \"NodePort\""
            ),
        ),
    }
    cluster_ip(service, errors);
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ports.is_empty() && !is_headless(spec) && type_ != EXTERNAL_NAME {
        err(errors, "spec.ports", "required");
    }
    let mut names = BTreeSet::new();
    let mut port_protocols = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        service_port(port, &at, ports.len() > 1, errors);
        let name = text(&port.name);
        if !name.is_empty() && !names.insert(name) {
            err(errors, format!("{at}.name"), format!("Duplicate value: {name:?}"));
        }
        if !port_protocols.insert((port.port, text(&port.protocol))) {
            err(
                errors,
                at.clone(),
                format!("Duplicate value: \"{}/{}\"", port.port, text(&port.protocol)),
            );
        }
        if let Some(node_port) = port.node_port.filter(|p| *p != 0) {
            if type_ == CLUSTER_IP {
                err(
                    errors,
                    format!("{at}.nodePort"),
                    "Forbidden: may not be used when `type` is 'ClusterIP'",
                );
            } else if !(1..=65535).contains(&node_port) {
                err(errors, format!("{at}.nodePort"), PORT_RANGE);
            }
        }
    }
    for (key, value) in spec.selector.iter().flatten() {
        if key.is_empty() || key.len() > 316 {
            err(errors, "spec.selector", format!("{key:?} is not a valid label key"));
        }
        if value.len() > 63 || !value.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            err(
                errors,
                format!("spec.selector.{key}"),
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'",
            );
        }
    }
    match text(&spec.session_affinity) {
        "" | "None" | "ClientIP" => {}
        other => err(
            errors,
            "spec.sessionAffinity",
            format!("Unsupported value: {other:?}: supported values: \"ClientIP\", \"None\""),
        ),
    }
    if let Some(timeout) = spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds)
        && !(1..=86400).contains(&timeout)
    {
        err(
            errors,
            "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
            "must be greater than 0 and less than 86400",
        );
    }
    unsupported(service, errors);
}

/// One port: its name (a DNS label; required when there are several), number,
/// protocol and target port (a number or a container port's name).
fn service_port(port: &ServicePort, at: &str, several: bool, errors: &mut Errors) {
    let name = text(&port.name);
    if name.is_empty() {
        if several {
            err(errors, format!("{at}.name"), "required");
        }
    } else if !is_dns_label(name) {
        err(
            errors,
            format!("{at}.name"),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must \
             start and end with an alphanumeric character",
        );
    }
    if !(1..=65535).contains(&port.port) {
        err(errors, format!("{at}.port"), PORT_RANGE);
    }
    match text(&port.protocol) {
        "TCP" | "UDP" => {}
        "SCTP" => err(
            errors,
            format!("{at}.protocol"),
            format!("{NOT_IMPLEMENTED} (berth's proxy forwards TCP and UDP)"),
        ),
        other => err(
            errors,
            format!("{at}.protocol"),
            format!("Unsupported value: {other:?}: supported values: \"SCTP\", \"TCP\", \"UDP\""),
        ),
    }
    match &port.target_port {
        Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => {
            err(errors, format!("{at}.targetPort"), PORT_RANGE);
        }
        Some(IntOrString::String(name)) => {
            if let Some(problem) = port_name_problem(name) {
                err(errors, format!("{at}.targetPort"), problem);
            }
        }
        _ => {}
    }
}

/// Why `name` is not an IANA service name (what a named container port must be),
/// as Kubernetes' `IsValidPortName` says.
pub fn port_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 15 {
        return Some("must be no more than 15 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if name.contains("--") {
        return Some("must not contain consecutive hyphens");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        return Some("must contain at least one letter (a-z)");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must not begin or end with a hyphen");
    }
    None
}

/// `clusterIP`: empty (allocate one), `None` (headless, not for NodePort), or an
/// IPv4 address; `clusterIPs`, when sent, starts with it.
fn cluster_ip(service: &Service, errors: &mut Errors) {
    let spec = &service.spec;
    let ip = text(&spec.cluster_ip);
    if ip == HEADLESS {
        if service_type(spec) == NODE_PORT {
            err(
                errors,
                "spec.clusterIP",
                "may not be set to 'None' for NodePort services",
            );
        }
    } else if !ip.is_empty() {
        match ip.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => {}
            Ok(IpAddr::V6(_)) => err(
                errors,
                "spec.clusterIP",
                format!("{NOT_IMPLEMENTED} (berth's service network is IPv4 only)"),
            ),
            Err(_) => err(errors, "spec.clusterIP", INVALID_IP),
        }
    }
    let ips = spec.cluster_ips.as_deref().unwrap_or_default();
    if let Some(first) = ips.first()
        && first != ip
    {
        err(errors, "spec.clusterIPs", "first value must match `clusterIP`");
    }
    if ips.len() > 1 {
        err(
            errors,
            "spec.clusterIPs",
            format!("{NOT_IMPLEMENTED} (a second cluster IP: berth's service network is IPv4 only)"),
        );
    }
}

/// What berth would have to act on but does not: refused by name.
fn unsupported(service: &Service, errors: &mut Errors) {
    let spec = &service.spec;
    let some = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
    let set = |s: &Option<String>| !text(s).is_empty();
    let mut refuse = |is_set: bool, field: &str, detail: &str| check(errors, is_set, field.into(), detail);
    refuse(some(&spec.external_ips), "spec.externalIPs", "");
    refuse(
        set(&spec.external_name) && service_type(spec) != EXTERNAL_NAME,
        "spec.externalName",
        "",
    );
    refuse(
        !matches!(text(&spec.external_traffic_policy), "" | "Cluster"),
        "spec.externalTrafficPolicy",
        "berth's proxy sends node port traffic to every endpoint",
    );
    refuse(
        !matches!(text(&spec.internal_traffic_policy), "" | "Cluster"),
        "spec.internalTrafficPolicy",
        "berth's proxy sends cluster traffic to every endpoint",
    );
    refuse(set(&spec.load_balancer_ip), "spec.loadBalancerIP", "");
    refuse(
        some(&spec.load_balancer_source_ranges),
        "spec.loadBalancerSourceRanges",
        "",
    );
    refuse(set(&spec.load_balancer_class), "spec.loadBalancerClass", "");
    refuse(
        spec.health_check_node_port.is_some_and(|p| p != 0),
        "spec.healthCheckNodePort",
        "",
    );
    refuse(
        set(&spec.traffic_distribution),
        "spec.trafficDistribution",
        "topology hints",
    );
    refuse(
        spec.ip_families.iter().flatten().any(|f| f != "IPv4"),
        "spec.ipFamilies",
        "berth's service network is IPv4 only",
    );
    refuse(
        text(&spec.ip_family_policy) == "RequireDualStack",
        "spec.ipFamilyPolicy",
        "berth's service network is IPv4 only",
    );
    if !matches!(
        text(&spec.ip_family_policy),
        "" | "SingleStack" | "PreferDualStack" | "RequireDualStack"
    ) {
        err(
            errors,
            "spec.ipFamilyPolicy",
            format!(
                "Unsupported value: {:?}: supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\"",
                text(&spec.ip_family_policy)
            ),
        );
    }
}

/// What an update may not change: the cluster IP once set (a client that leaves it
/// out keeps it: the API server copies it from the stored Service first).
pub fn service_update(old: &Service, new: &Service, errors: &mut Errors) {
    let (before, after) = (text(&old.spec.cluster_ip), text(&new.spec.cluster_ip));
    if !before.is_empty() && before != after {
        err(errors, "spec.clusterIPs[0]", "may not change once set");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::Object;
    use crate::kinds::service::SERVICE;

    fn errors_of(spec: serde_json::Value) -> Vec<String> {
        let value = serde_json::json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"}, "spec": spec});
        let mut object: Object = (SERVICE.decode)(value).unwrap();
        (SERVICE.defaults)(&mut object);
        crate::validation::validate(&object)
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn a_plain_service_is_valid() {
        let ok = errors_of(serde_json::json!({"selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}));
        assert_eq!(ok, Vec::<String>::new());
        let headless = errors_of(serde_json::json!({"clusterIP": "None", "selector": {"app": "db"}}));
        assert_eq!(headless, Vec::<String>::new());
    }

    #[test]
    fn ports_are_checked_as_kubernetes_does() {
        let errors = errors_of(serde_json::json!({"ports": [
            {"port": 0}, {"port": 80, "targetPort": "no_such"}, {"name": "a", "port": 80}, {"name": "a", "port": 81, "protocol": "XDP"}
        ]}));
        assert_eq!(
            errors,
            [
                "spec.ports[0].name: required",
                "spec.ports[0].port: must be between 1 and 65535, inclusive",
                "spec.ports[0].targetPort: must be between 1 and 65535, inclusive",
                "spec.ports[1].name: required",
                "spec.ports[1].targetPort: must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "spec.ports[2]: Duplicate value: \"80/TCP\"",
                "spec.ports[3].protocol: Unsupported value: \"XDP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
                "spec.ports[3].name: Duplicate value: \"a\"",
            ]
        );
        assert_eq!(errors_of(serde_json::json!({})), ["spec.ports: required"]);
        let node_port_on_cluster_ip = errors_of(serde_json::json!({"ports": [{"port": 80, "nodePort": 30000}]}));
        assert_eq!(
            node_port_on_cluster_ip,
            ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
        );
    }

    #[test]
    fn cluster_ip_forms() {
        let port = serde_json::json!([{"port": 80}]);
        assert_eq!(
            errors_of(serde_json::json!({"clusterIP": "10.96.0.9", "ports": port})),
            Vec::<String>::new()
        );
        assert_eq!(
            errors_of(serde_json::json!({"clusterIP": "10.96.0.300", "ports": port})),
            [format!("spec.clusterIP: {INVALID_IP}")]
        );
        assert_eq!(
            errors_of(serde_json::json!({"clusterIP": "None", "type": "NodePort", "ports": port})),
            ["spec.clusterIP: may not be set to 'None' for NodePort services"]
        );
        assert_eq!(
            errors_of(serde_json::json!({"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.8"], "ports": port})),
            ["spec.clusterIPs: first value must match `clusterIP`"]
        );
    }

    #[test]
    fn what_berth_does_not_implement_is_refused_by_name() {
        let errors = errors_of(
            serde_json::json!({"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "SCTP"}],
            "externalIPs": ["1.2.3.4"], "externalTrafficPolicy": "Local", "ipFamilies": ["IPv6"],
            "trafficDistribution": "PreferClose"}),
        );
        let fields: Vec<&str> = errors.iter().map(|e| e.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "spec.type",
                "spec.ports[0].protocol",
                "spec.externalIPs",
                "spec.externalTrafficPolicy",
                "spec.trafficDistribution",
                "spec.ipFamilies"
            ]
        );
        assert!(errors.iter().all(|e| e.contains(NOT_IMPLEMENTED)), "{errors:?}");
    }

    #[test]
    fn the_cluster_ip_may_not_change() {
        let service = |ip: &str| {
            let mut s = Service::default();
            s.spec.cluster_ip = Some(ip.into());
            s
        };
        let mut errors = Vec::new();
        service_update(&service("10.96.0.9"), &service("10.96.0.9"), &mut errors);
        assert!(errors.is_empty());
        service_update(&service("10.96.0.9"), &service("10.96.0.10"), &mut errors);
        assert_eq!(errors[0].to_string(), "spec.clusterIPs[0]: may not change once set");
    }
}
