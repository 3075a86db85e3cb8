//! A pod's init containers, checked as Kubernetes checks them: a container's
//! `restartPolicy` is `Always` on an init container (a sidecar) and nowhere else; an
//! init container that is not a sidecar runs once to completion, so it has no probes
//! and no lifecycle hooks. Names are unique across init and app containers (checked
//! with the others, in `pod_spec`).

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::{Errors, err};

/// Every container of the pod with its path: the init containers first, in order,
/// then the app containers.
pub(super) fn with_paths<'a>(spec: &'a PodSpec, path: &str) -> Vec<(String, &'a Container, bool)> {
    let init = spec.init_containers.iter().flatten().enumerate();
    let init = init.map(|(i, c)| (format!("{path}.initContainers[{i}]"), c, true));
    let app = spec.containers.iter().enumerate();
    init.chain(app.map(|(i, c)| (format!("{path}.containers[{i}]"), c, false)))
        .collect()
}

/// The checks that depend on whether `c` is an init container.
pub(super) fn container(c: &Container, at: &str, is_init: bool, errors: &mut Errors) {
    let field = |name: &str| format!("{at}.{name}");
    let Some(policy) = c.restart_policy.as_deref() else {
        if is_init {
            plain_init_container(c, at, errors);
        }
        return;
    };
    if !is_init {
        err(
            errors,
            field("restartPolicy"),
            "Forbidden: may not be set for non-init containers",
        );
    } else if policy != "Always" {
        err(
            errors,
            field("restartPolicy"),
            format!("Unsupported value: {policy:?}: supported values: \"Always\""),
        );
    }
}

/// An init container without `restartPolicy: Always` runs to completion before the
/// next starts: nothing may probe it or hook into its life.
fn plain_init_container(c: &Container, at: &str, errors: &mut Errors) {
    let forbidden = [
        (c.lifecycle.is_some(), "lifecycle"),
        (c.liveness_probe.is_some(), "livenessProbe"),
        (c.readiness_probe.is_some(), "readinessProbe"),
        (c.startup_probe.is_some(), "startupProbe"),
    ];
    for (set, name) in forbidden {
        if set {
            err(
                errors,
                format!("{at}.{name}"),
                "Forbidden: may not be set for init containers without restartPolicy=Always",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ExecAction, Lifecycle, LifecycleHandler, Probe};

    use super::*;

    fn errors_of(spec: &PodSpec) -> Vec<String> {
        let mut errors = Vec::new();
        super::super::pod_spec(spec, "spec", &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    fn named(name: &str) -> Container {
        Container {
            name: name.into(),
            command: Some(vec!["true".into()]),
            ..Default::default()
        }
    }

    fn probe() -> Probe {
        Probe {
            exec: Some(ExecAction {
                command: Some(vec!["true".into()]),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn init_containers_are_accepted_and_names_are_unique_across_both_lists() {
        let mut spec = PodSpec {
            init_containers: Some(vec![named("setup"), named("migrate")]),
            containers: vec![named("app")],
            ..Default::default()
        };
        assert_eq!(errors_of(&spec), Vec::<String>::new());
        spec.containers.push(named("setup"));
        assert_eq!(
            errors_of(&spec),
            ["spec.containers[1].name: duplicate container name \"setup\""]
        );
    }

    #[test]
    fn probes_and_hooks_only_on_sidecars_and_restart_policy_only_on_init_containers() {
        let hooked = Container {
            lifecycle: Some(Lifecycle {
                post_start: Some(LifecycleHandler {
                    exec: Some(ExecAction {
                        command: Some(vec!["true".into()]),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            readiness_probe: Some(probe()),
            startup_probe: Some(probe()),
            ..named("plain")
        };
        let sidecar = Container {
            name: "proxy".into(),
            restart_policy: Some("Always".into()),
            ..hooked.clone()
        };
        let odd = Container {
            restart_policy: Some("OnFailure".into()),
            ..named("odd")
        };
        let app = Container {
            restart_policy: Some("Always".into()),
            ..named("app")
        };
        let spec = PodSpec {
            init_containers: Some(vec![hooked, sidecar, odd]),
            containers: vec![app],
            ..Default::default()
        };
        assert_eq!(
            errors_of(&spec),
            [
                "spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.initContainers[0].startupProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.initContainers[2].restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
                "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
            ]
        );
    }
}
