//! A Service's checks, with kube-apiserver's words (its `ValidateService` and
//! `ValidateServiceUpdate`): ports, target ports, the cluster IP's forms, the
//! selector, session affinity, external IPs and the traffic policies, the fields
//! only a type berth does not serve may use, and what berth refuses by name because
//! nothing in berth would act on it. Whether an asked-for cluster IP or node port is inside its range and free is
//! the allocator's to say (berth-apiserver), as kube-apiserver's does.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use super::unsupported::{NOT_IMPLEMENTED, check};
use super::{Errors, err, is_dns_label, is_dns_subdomain};
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
        "ClientIP" => {}
        "" | "None" => {
            if spec.session_affinity_config.is_some() {
                err(
                    errors,
                    "spec.sessionAffinityConfig",
                    "Forbidden: must not be set when session affinity is None",
                );
            }
        }
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
    external_ips(spec, errors);
    traffic_policies(spec, errors);
    load_balancer_only(service, errors);
    unsupported(service, errors);
}

/// Whether traffic from outside the cluster reaches the Service (node ports or
/// external IPs), as Kubernetes' `ExternallyAccessible` says: what
/// `externalTrafficPolicy` applies to.
pub fn is_externally_accessible(spec: &crate::kinds::service::ServiceSpec) -> bool {
    matches!(service_type(spec), NODE_PORT | LOAD_BALANCER)
        || (service_type(spec) == CLUSTER_IP && spec.external_ips.as_ref().is_some_and(|ips| !ips.is_empty()))
}

/// `spec.externalIPs`: addresses, none a host's own by definition (unspecified,
/// loopback, link-local), as Kubernetes' `ValidateNonSpecialIP` says; IPv4 only, as
/// berth's service network is.
fn external_ips(spec: &crate::kinds::service::ServiceSpec, errors: &mut Errors) {
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        let at = format!("spec.externalIPs[{i}]");
        match ip.parse::<IpAddr>() {
            Err(_) => err(errors, at, INVALID_IP),
            Ok(IpAddr::V6(_)) => err(
                errors,
                at,
                format!("{NOT_IMPLEMENTED} (berth's service network is IPv4 only)"),
            ),
            Ok(IpAddr::V4(v4)) => {
                if let Some(problem) = special_ip_problem(v4) {
                    err(errors, at, problem);
                }
            }
        }
    }
}

/// Why `ip` may not be an external IP or an endpoint, in Kubernetes' words.
fn special_ip_problem(ip: Ipv4Addr) -> Option<String> {
    if ip.is_unspecified() {
        Some(format!("may not be unspecified ({ip})"))
    } else if ip.is_loopback() {
        Some("may not be in the loopback range (127.0.0.0/8, ::1/128)".into())
    } else if ip.is_link_local() {
        Some("may not be in the link-local range (169.254.0.0/16, fe80::/10)".into())
    } else if ip.octets()[..3] == [224, 0, 0] {
        Some("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)".into())
    } else {
        None
    }
}

/// `externalTrafficPolicy` (only for a Service reached from outside, and then
/// required: the defaults fill it in) and `internalTrafficPolicy`, both `Cluster` or
/// `Local`, which the proxy implements; `healthCheckNodePort`, only for a
/// LoadBalancer with the `Local` policy; `trafficDistribution`'s one value.
fn traffic_policies(spec: &crate::kinds::service::ServiceSpec, errors: &mut Errors) {
    let external = text(&spec.external_traffic_policy);
    if !is_externally_accessible(spec) {
        if !external.is_empty() {
            err(
                errors,
                "spec.externalTrafficPolicy",
                "may only be set for externally-accessible services",
            );
        }
    } else if external.is_empty() {
        err(errors, "spec.externalTrafficPolicy", "required");
    } else if !matches!(external, "Cluster" | "Local") {
        err(
            errors,
            "spec.externalTrafficPolicy",
            format!("Unsupported value: {external:?}: supported values: \"Cluster\", \"Local\""),
        );
    }
    let internal = text(&spec.internal_traffic_policy);
    if !matches!(internal, "" | "Cluster" | "Local") {
        err(
            errors,
            "spec.internalTrafficPolicy",
            format!("Unsupported value: {internal:?}: supported values: \"Cluster\", \"Local\""),
        );
    }
    // A health check node port serves a cloud load balancer (the type is refused
    // as such); on any other type Kubernetes refuses it.
    if spec.health_check_node_port.is_some_and(|p| p != 0) && service_type(spec) != LOAD_BALANCER {
        err(
            errors,
            "spec.healthCheckNodePort",
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        );
    }
    match text(&spec.traffic_distribution) {
        "" => {}
        "PreferClose" => err(
            errors,
            "spec.trafficDistribution",
            format!("{NOT_IMPLEMENTED} (topology hints)"),
        ),
        other => err(
            errors,
            "spec.trafficDistribution",
            format!("Unsupported value: {other:?}: supported values: \"PreferClose\""),
        ),
    }
}

/// The fields of a cloud load balancer, which Kubernetes refuses on every other
/// type (a LoadBalancer Service is refused by its type), and a load balancer's
/// status, which Kubernetes 1.32 allows on LoadBalancer Services only.
fn load_balancer_only(service: &Service, errors: &mut Errors) {
    let spec = &service.spec;
    if service_type(spec) == LOAD_BALANCER {
        return;
    }
    const ONLY_LOAD_BALANCER: &str = "Forbidden: may only be used when `type` is 'LoadBalancer'";
    if spec.allocate_load_balancer_node_ports.is_some() {
        err(errors, "spec.allocateLoadBalancerNodePorts", ONLY_LOAD_BALANCER);
    }
    if spec.load_balancer_class.is_some() {
        err(errors, "spec.loadBalancerClass", ONLY_LOAD_BALANCER);
    }
    if spec.load_balancer_source_ranges.as_ref().is_some_and(|r| !r.is_empty()) {
        // Kubernetes names this field with a capital L in its error.
        err(errors, "spec.LoadBalancerSourceRanges", ONLY_LOAD_BALANCER);
    }
    let ingress = service.status.load_balancer.as_ref().and_then(|lb| lb.ingress.as_ref());
    if ingress.is_some_and(|i| !i.is_empty()) {
        err(
            errors,
            "status.loadBalancer.ingress",
            "Forbidden: may only be used when `spec.type` is 'LoadBalancer'",
        );
    }
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
    if let Some(app_protocol) = &port.app_protocol {
        for problem in qualified_name_problems(app_protocol) {
            err(errors, format!("{at}.appProtocol"), problem);
        }
    }
}

/// Why `name` is not what Kubernetes calls a qualified name (`[prefix/]name`: a DNS
/// subdomain, then up to 63 alphanumerics, '-', '_' or '.' that start and end
/// alphanumeric), as its `IsQualifiedName` words it.
pub fn qualified_name_problems(name: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let (prefix, short) = match name.split_once('/') {
        Some((prefix, short)) => (Some(prefix), short),
        None => (None, name),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            problems.push("prefix part must be non-empty".into());
        } else if !is_dns_subdomain(prefix) {
            problems.push(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, \
                 '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex \
                 used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
                    .into(),
            );
        }
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if short.is_empty() {
        problems.push("name part must be non-empty".into());
    } else if short.len() > 63 {
        problems.push("name part must be no more than 63 characters".into());
    }
    if !short.is_empty()
        && (short.contains('/')
            || !short.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || !edge_ok(short.chars().next())
            || !edge_ok(short.chars().last()))
    {
        problems.push(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
             alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
             '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                .into(),
        );
    }
    problems
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
    let set = |s: &Option<String>| !text(s).is_empty();
    check(
        errors,
        set(&spec.external_name) && service_type(spec) != EXTERNAL_NAME,
        "spec.externalName".into(),
        "",
    );
    check(errors, set(&spec.load_balancer_ip), "spec.loadBalancerIP".into(), "");
    for (i, family) in spec.ip_families.iter().flatten().enumerate() {
        let at = format!("spec.ipFamilies[{i}]");
        match family.as_str() {
            "IPv4" => {}
            "IPv6" => check(errors, true, at, "berth's service network is IPv4 only"),
            other => err(
                errors,
                at,
                format!("Unsupported value: {other:?}: supported values: \"IPv4\", \"IPv6\""),
            ),
        }
    }
    check(
        errors,
        text(&spec.ip_family_policy) == "RequireDualStack",
        "spec.ipFamilyPolicy".into(),
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
#[path = "service_tests.rs"]
mod tests;
