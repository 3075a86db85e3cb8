//! A container's liveness, readiness and startup probes, checked as Kubernetes checks
//! them: exactly one handler (exec, httpGet, tcpSocket, grpc), numbers not negative,
//! a liveness or startup probe's successThreshold 1, a probe's own
//! terminationGracePeriodSeconds positive and never on a readiness probe, ports that
//! are ports or port names, schemes HTTP or HTTPS.

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Errors, err};

pub(super) fn container(c: &Container, at: &str, errors: &mut Errors) {
    let probes = [
        (&c.liveness_probe, "livenessProbe"),
        (&c.readiness_probe, "readinessProbe"),
        (&c.startup_probe, "startupProbe"),
    ];
    for (probe, name) in probes {
        if let Some(probe) = probe {
            check(probe, name, &format!("{at}.{name}"), errors);
        }
    }
}

fn check(probe: &Probe, kind: &str, at: &str, errors: &mut Errors) {
    let field = |name: &str| format!("{at}.{name}");
    let handlers = [
        probe.exec.is_some(),
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
        probe.grpc.is_some(),
    ];
    match handlers.iter().filter(|set| **set).count() {
        0 => err(errors, at, "Required value: must specify a handler type"),
        1 => {}
        _ => err(errors, at, "Forbidden: may not specify more than 1 handler type"),
    }
    let numbers = [
        (probe.initial_delay_seconds, "initialDelaySeconds"),
        (probe.timeout_seconds, "timeoutSeconds"),
        (probe.period_seconds, "periodSeconds"),
        (probe.success_threshold, "successThreshold"),
        (probe.failure_threshold, "failureThreshold"),
    ];
    for (value, name) in numbers {
        if let Some(value) = value
            && value < 0
        {
            err(
                errors,
                field(name),
                format!("Invalid value: {value}: must be greater than or equal to 0"),
            );
        }
    }
    if kind != "readinessProbe"
        && let Some(threshold) = probe.success_threshold
        && threshold != 1
        && threshold != 0
    {
        err(
            errors,
            field("successThreshold"),
            format!("Invalid value: {threshold}: must be 1"),
        );
    }
    if let Some(grace) = probe.termination_grace_period_seconds {
        if kind == "readinessProbe" {
            err(
                errors,
                field("terminationGracePeriodSeconds"),
                "Invalid value: must not be set for readinessProbes",
            );
        } else if grace <= 0 {
            err(
                errors,
                field("terminationGracePeriodSeconds"),
                format!("Invalid value: {grace}: must be greater than 0"),
            );
        }
    }
    if let Some(exec) = &probe.exec
        && exec.command.as_ref().is_none_or(Vec::is_empty)
    {
        err(errors, field("exec.command"), "Required value");
    }
    if let Some(http) = &probe.http_get {
        port(&http.port, &field("httpGet.port"), errors);
        let scheme = http.scheme.as_deref().unwrap_or_default();
        if !["", "HTTP", "HTTPS"].contains(&scheme) {
            err(
                errors,
                field("httpGet.scheme"),
                format!("Unsupported value: {scheme:?}: supported values: \"HTTP\", \"HTTPS\""),
            );
        }
        for (i, header) in http.http_headers.iter().flatten().enumerate() {
            let valid = !header.name.is_empty()
                && header
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid {
                err(
                    errors,
                    field(&format!("httpGet.httpHeaders[{i}].name")),
                    format!(
                        "Invalid value: {:?}: a valid HTTP header must consist of alphanumeric characters or '-'",
                        header.name
                    ),
                );
            }
        }
    }
    if let Some(tcp) = &probe.tcp_socket {
        port(&tcp.port, &field("tcpSocket.port"), errors);
    }
    if let Some(grpc) = &probe.grpc
        && !(1..=65535).contains(&grpc.port)
    {
        err(
            errors,
            field("grpc.port"),
            format!("Invalid value: {}: must be between 1 and 65535, inclusive", grpc.port),
        );
    }
}

/// A port number, or a port's name (IANA_SVC_NAME: at most 15 lower-case letters,
/// digits and single inner hyphens, with a letter among them).
fn port(port: &IntOrString, at: &str, errors: &mut Errors) {
    match port {
        IntOrString::Int(n) if !(1..=65535).contains(n) => err(
            errors,
            at,
            format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
        ),
        IntOrString::Int(_) => {}
        IntOrString::String(name) => {
            let valid = !name.is_empty()
                && name.len() <= 15
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && name.bytes().any(|b| b.is_ascii_lowercase())
                && !name.starts_with('-')
                && !name.ends_with('-')
                && !name.contains("--");
            if !valid {
                err(
                    errors,
                    at,
                    format!(
                        "Invalid value: {name:?}: must be a port number or an IANA_SVC_NAME (at most 15 characters, a-z, 0-9 and '-', with a letter)"
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, TCPSocketAction};

    use super::*;

    fn errors_of(c: &Container) -> Vec<String> {
        let mut errors = Vec::new();
        container(c, "spec.containers[0]", &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    fn exec() -> Option<ExecAction> {
        Some(ExecAction {
            command: Some(vec!["true".into()]),
        })
    }

    #[test]
    fn good_probes_of_every_handler_pass() {
        let c = Container {
            name: "c".into(),
            liveness_probe: Some(Probe {
                exec: exec(),
                termination_grace_period_seconds: Some(5),
                ..Default::default()
            }),
            readiness_probe: Some(Probe {
                http_get: Some(HTTPGetAction {
                    port: IntOrString::String("http".into()),
                    scheme: Some("HTTPS".into()),
                    http_headers: Some(vec![HTTPHeader {
                        name: "X-Probe".into(),
                        value: "1".into(),
                    }]),
                    ..Default::default()
                }),
                success_threshold: Some(3),
                ..Default::default()
            }),
            startup_probe: Some(Probe {
                grpc: Some(GRPCAction {
                    port: 9090,
                    service: None,
                }),
                failure_threshold: Some(30),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(errors_of(&c), Vec::<String>::new());
    }

    #[test]
    fn kubernetes_refusals_name_the_field() {
        let c = Container {
            name: "c".into(),
            liveness_probe: Some(Probe {
                exec: exec(),
                tcp_socket: Some(TCPSocketAction {
                    port: IntOrString::Int(0),
                    host: None,
                }),
                success_threshold: Some(2),
                period_seconds: Some(-1),
                ..Default::default()
            }),
            readiness_probe: Some(Probe {
                termination_grace_period_seconds: Some(3),
                ..Default::default()
            }),
            startup_probe: Some(Probe {
                http_get: Some(HTTPGetAction {
                    port: IntOrString::String("Not-A-Name".into()),
                    scheme: Some("FTP".into()),
                    ..Default::default()
                }),
                termination_grace_period_seconds: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        };
        let errors = errors_of(&c);
        let expected = [
            "spec.containers[0].livenessProbe: Forbidden: may not specify more than 1 handler type",
            "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.containers[0].livenessProbe.tcpSocket.port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.containers[0].readinessProbe: Required value: must specify a handler type",
            "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: must not be set for readinessProbes",
            "spec.containers[0].startupProbe.terminationGracePeriodSeconds: Invalid value: 0: must be greater than 0",
            "spec.containers[0].startupProbe.httpGet.port: Invalid value: \"Not-A-Name\"",
            "spec.containers[0].startupProbe.httpGet.scheme: Unsupported value: \"FTP\"",
        ];
        assert_eq!(errors.len(), expected.len(), "{errors:#?}");
        for (error, expected) in errors.iter().zip(expected) {
            assert!(error.starts_with(expected), "{error:?} is not {expected:?}");
        }
        let empty_exec = Container {
            name: "c".into(),
            liveness_probe: Some(Probe {
                exec: Some(ExecAction { command: None }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            errors_of(&empty_exec),
            ["spec.containers[0].livenessProbe.exec.command: Required value"]
        );
    }
}
