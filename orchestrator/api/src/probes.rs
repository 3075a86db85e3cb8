//! Kubernetes' defaults for a container's liveness, readiness and startup probes.
//! The API server fills them into the pods it admits; the agent reads a probe through
//! [`Timing::of`], which takes an unset (or zero) value as its default, so pods
//! written by the controllers, which skip the API server's defaults, probe alike.

pub use k8s_openapi::api::core::v1::{ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, Probe, TCPSocketAction};

use k8s_openapi::api::core::v1::PodSpec;

pub const DEFAULT_TIMEOUT_SECONDS: i32 = 1;
pub const DEFAULT_PERIOD_SECONDS: i32 = 10;
pub const DEFAULT_SUCCESS_THRESHOLD: i32 = 1;
pub const DEFAULT_FAILURE_THRESHOLD: i32 = 3;

/// A probe's numbers, with Kubernetes' defaults for those unset or zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay_seconds: u32,
    pub timeout_seconds: u32,
    pub period_seconds: u32,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe's own grace for a kill it causes; None: the pod's.
    pub termination_grace_period_seconds: Option<i64>,
}

impl Timing {
    pub fn of(probe: &Probe) -> Timing {
        let or = |value: Option<i32>, default: i32| value.filter(|v| *v > 0).unwrap_or(default) as u32;
        Timing {
            initial_delay_seconds: probe.initial_delay_seconds.unwrap_or(0).max(0) as u32,
            timeout_seconds: or(probe.timeout_seconds, DEFAULT_TIMEOUT_SECONDS),
            period_seconds: or(probe.period_seconds, DEFAULT_PERIOD_SECONDS),
            success_threshold: or(probe.success_threshold, DEFAULT_SUCCESS_THRESHOLD),
            failure_threshold: or(probe.failure_threshold, DEFAULT_FAILURE_THRESHOLD),
            termination_grace_period_seconds: probe.termination_grace_period_seconds,
        }
    }
}

/// Fills in the defaults Kubernetes gives every probe of the pod's containers
/// and sidecars (timeouts, period, thresholds; an httpGet's path `/` and scheme
/// HTTP).
pub fn set_defaults(spec: &mut PodSpec) {
    for container in spec
        .containers
        .iter_mut()
        .chain(spec.init_containers.iter_mut().flatten())
    {
        let probes = [
            &mut container.liveness_probe,
            &mut container.readiness_probe,
            &mut container.startup_probe,
        ];
        for probe in probes.into_iter().flatten() {
            default_probe(probe);
        }
    }
}

fn default_probe(probe: &mut Probe) {
    let set = |value: &mut Option<i32>, default: i32| {
        if value.is_none_or(|v| v == 0) {
            *value = Some(default);
        }
    };
    set(&mut probe.timeout_seconds, DEFAULT_TIMEOUT_SECONDS);
    set(&mut probe.period_seconds, DEFAULT_PERIOD_SECONDS);
    set(&mut probe.success_threshold, DEFAULT_SUCCESS_THRESHOLD);
    set(&mut probe.failure_threshold, DEFAULT_FAILURE_THRESHOLD);
    if let Some(http) = &mut probe.http_get {
        if http.path.as_deref().is_none_or(str::is_empty) {
            http.path = Some("/".into());
        }
        if http.scheme.as_deref().is_none_or(str::is_empty) {
            http.scheme = Some("HTTP".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Container;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    use super::*;

    #[test]
    fn unset_numbers_get_kubernetes_defaults_and_set_ones_stay() {
        let mut spec = PodSpec {
            containers: vec![Container {
                name: "c".into(),
                readiness_probe: Some(Probe {
                    http_get: Some(HTTPGetAction {
                        port: IntOrString::Int(80),
                        ..Default::default()
                    }),
                    period_seconds: Some(3),
                    success_threshold: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let before = Timing::of(spec.containers[0].readiness_probe.as_ref().unwrap());
        set_defaults(&mut spec);
        let probe = spec.containers[0].readiness_probe.as_ref().unwrap();
        assert_eq!(probe.timeout_seconds, Some(1));
        assert_eq!(probe.period_seconds, Some(3));
        assert_eq!(probe.success_threshold, Some(1));
        assert_eq!(probe.failure_threshold, Some(3));
        let http = probe.http_get.as_ref().unwrap();
        assert_eq!(
            (http.path.as_deref(), http.scheme.as_deref()),
            (Some("/"), Some("HTTP"))
        );
        assert_eq!(
            Timing::of(probe),
            before,
            "the agent reads unset values as the defaults"
        );
    }
}
