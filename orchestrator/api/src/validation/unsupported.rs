//! Fields Kubernetes defines that berth does not act on yet. Objects keep every
//! field a client sends (the types are Kubernetes' own), so a field berth would
//! ignore is refused instead, naming its path, unless it holds the value that means
//! "nothing to do" (its Kubernetes default, `false`, empty). What berth implements
//! is not listed here; a field leaves this list when the behaviour behind it lands.

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, PodSpec, SecurityContext};

use super::{Errors, FieldError};
use crate::meta::ObjectMeta;

/// The message of every refusal, so that clients (and tests) can tell a missing
/// feature from a wrong value.
pub const NOT_IMPLEMENTED: &str = "berth does not implement this field yet";

fn refuse(errors: &mut Errors, field: String, detail: &str) {
    let message = if detail.is_empty() {
        NOT_IMPLEMENTED.to_string()
    } else {
        format!("{NOT_IMPLEMENTED} ({detail})")
    };
    errors.push(FieldError { field, message });
}

/// Refuses `field` when `set` says it holds something berth would have to act on.
pub(super) fn check(errors: &mut Errors, set: bool, field: String, detail: &str) {
    if set {
        refuse(errors, field, detail);
    }
}

fn some_vec<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

fn is_true(b: Option<bool>) -> bool {
    b == Some(true)
}

fn other_than(value: &Option<String>, allowed: &[&str]) -> bool {
    value.as_deref().is_some_and(|v| !v.is_empty() && !allowed.contains(&v))
}

pub(super) fn metadata(meta: &ObjectMeta, errors: &mut Errors) {
    // Deletion waits for the storage protection finalizers, which the volume
    // protection controller removes; for no other.
    let protection = crate::persistent_volumes::PROTECTION_FINALIZERS;
    check(
        errors,
        meta.finalizers
            .iter()
            .flatten()
            .any(|f| !protection.contains(&f.as_str())),
        "metadata.finalizers".into(),
        "deletion waits only for kubernetes.io/pvc-protection and kubernetes.io/pv-protection",
    );
}

pub(super) fn pod_spec(spec: &PodSpec, path: &str, errors: &mut Errors) {
    let at = |field: &str| format!("{path}.{field}");
    let mut set = |is_set: bool, field: &str, detail: &str| check(errors, is_set, at(field), detail);
    set(some_vec(&spec.ephemeral_containers), "ephemeralContainers", "");
    set(some_vec(&spec.host_aliases), "hostAliases", "");
    set(some_vec(&spec.readiness_gates), "readinessGates", "");
    set(some_vec(&spec.resource_claims), "resourceClaims", "");
    set(spec.active_deadline_seconds.is_some(), "activeDeadlineSeconds", "");
    set(spec.os.is_some(), "os", "");
    set(spec.overhead.as_ref().is_some_and(|o| !o.is_empty()), "overhead", "");
    set(spec.resources.is_some(), "resources", "pod-level resources");
    // priority and priorityClassName are admission's (the Priority plugin).
    set(
        other_than(&spec.preemption_policy, &["PreemptLowerPriority", "Never"]),
        "preemptionPolicy",
        "",
    );
    set(
        other_than(&spec.scheduler_name, &["default-scheduler"]),
        "schedulerName",
        "berth has one scheduler, default-scheduler",
    );
    // The deprecated `serviceAccount` is taken only as the same name as
    // `serviceAccountName` (or `default` when that is absent).
    let account_name = spec.service_account_name.as_deref().unwrap_or("default");
    set(other_than(&spec.service_account, &[account_name]), "serviceAccount", "");
    set(is_true(spec.host_ipc), "hostIPC", "");
    set(is_true(spec.host_pid), "hostPID", "");
    set(spec.host_users == Some(false), "hostUsers", "");
    set(is_true(spec.share_process_namespace), "shareProcessNamespace", "");
    set(is_true(spec.set_hostname_as_fqdn), "setHostnameAsFQDN", "");
    pod_security_context(spec.security_context.as_ref(), path, errors);
}

/// The pod's securityContext: runAsUser, runAsGroup, runAsNonRoot,
/// supplementalGroups and seccompProfile are implemented; the rest is refused by name.
fn pod_security_context(sc: Option<&PodSecurityContext>, path: &str, errors: &mut Errors) {
    let Some(sc) = sc else { return };
    let at = |field: &str| format!("{path}.securityContext.{field}");
    let mut set = |is_set: bool, field: &str| check(errors, is_set, at(field), "");
    set(sc.fs_group.is_some(), "fsGroup");
    set(other_than(&sc.fs_group_change_policy, &[]), "fsGroupChangePolicy");
    set(sc.se_linux_options.is_some(), "seLinuxOptions");
    set(other_than(&sc.se_linux_change_policy, &[]), "seLinuxChangePolicy");
    set(sc.windows_options.is_some(), "windowsOptions");
    set(some_vec(&sc.sysctls), "sysctls");
    set(sc.app_armor_profile.is_some(), "appArmorProfile");
    set(
        other_than(&sc.supplemental_groups_policy, &["Merge"]),
        "supplementalGroupsPolicy",
    );
}

/// A container's securityContext: runAsUser, runAsGroup, runAsNonRoot,
/// capabilities, privileged, readOnlyRootFilesystem, allowPrivilegeEscalation and
/// seccompProfile are implemented; the rest is refused by name.
fn container_security_context(sc: Option<&SecurityContext>, at: &str, errors: &mut Errors) {
    let Some(sc) = sc else { return };
    let field = |name: &str| format!("{at}.securityContext.{name}");
    let mut set = |is_set: bool, name: &str| check(errors, is_set, field(name), "");
    set(sc.se_linux_options.is_some(), "seLinuxOptions");
    set(sc.windows_options.is_some(), "windowsOptions");
    set(sc.app_armor_profile.is_some(), "appArmorProfile");
    set(other_than(&sc.proc_mount, &["Default"]), "procMount");
}

pub(super) fn container(c: &Container, at: &str, errors: &mut Errors) {
    let field = |name: &str| format!("{at}.{name}");
    let mut set = |is_set: bool, name: &str| check(errors, is_set, field(name), "");
    if let Some(lifecycle) = &c.lifecycle {
        // postStart and preStop run (exec, httpGet over HTTP, sleep); the rest is
        // refused.
        set(lifecycle.stop_signal.is_some(), "lifecycle.stopSignal");
        for (handler, name) in [(&lifecycle.post_start, "postStart"), (&lifecycle.pre_stop, "preStop")] {
            let Some(handler) = handler else { continue };
            set(handler.tcp_socket.is_some(), &format!("lifecycle.{name}.tcpSocket"));
            let https = handler
                .http_get
                .as_ref()
                .is_some_and(|h| other_than(&h.scheme, &["HTTP"]));
            set(https, &format!("lifecycle.{name}.httpGet.scheme"));
        }
    }
    set(some_vec(&c.volume_devices), "volumeDevices");
    set(some_vec(&c.resize_policy), "resizePolicy");
    set(is_true(c.stdin), "stdin");
    set(is_true(c.stdin_once), "stdinOnce");
    set(is_true(c.tty), "tty");
    set(
        other_than(&c.termination_message_path, &["/dev/termination-log"]),
        "terminationMessagePath",
    );
    set(
        other_than(&c.termination_message_policy, &["File"]),
        "terminationMessagePolicy",
    );
    set(
        c.resources.as_ref().is_some_and(|r| some_vec(&r.claims)),
        "resources.claims",
    );
    container_security_context(c.security_context.as_ref(), at, errors);
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, Probe, Volume};

    use super::*;

    fn fields(errors: &Errors) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn fields_berth_would_ignore_are_named() {
        let probed = Container {
            name: "c".into(),
            // Probes are implemented: not refused here (validation/probes.rs checks them).
            liveness_probe: Some(Probe::default()),
            lifecycle: Some(k8s_openapi::api::core::v1::Lifecycle {
                stop_signal: Some("SIGINT".into()),
                ..Default::default()
            }),
            // Implemented: validation/env.rs checks them.
            env: Some(vec![EnvVar {
                name: "B".into(),
                value_from: Some(EnvVarSource::default()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let spec = PodSpec {
            containers: vec![probed.clone()],
            // Implemented: validation/volumes.rs checks them.
            volumes: Some(vec![Volume::default()]),
            ..Default::default()
        };
        let mut errors = Vec::new();
        pod_spec(&spec, "spec.template.spec", &mut errors);
        container(&probed, "spec.template.spec.containers[0]", &mut errors);
        assert_eq!(
            fields(&errors),
            ["spec.template.spec.containers[0].lifecycle.stopSignal"]
        );
        assert!(errors.iter().all(|e| e.message.starts_with(NOT_IMPLEMENTED)));
    }

    #[test]
    fn hooks_are_accepted_and_the_other_lifecycle_fields_named() {
        use k8s_openapi::api::core::v1::{
            ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler, SleepAction, TCPSocketAction,
        };
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let with = |lifecycle: Lifecycle| {
            let c = Container {
                name: "c".into(),
                lifecycle: Some(lifecycle),
                ..Default::default()
            };
            let mut errors = Vec::new();
            container(&c, "c", &mut errors);
            fields(&errors).iter().map(|f| f.to_string()).collect::<Vec<_>>()
        };
        let http = |scheme: &str| HTTPGetAction {
            port: IntOrString::Int(80),
            scheme: Some(scheme.into()),
            ..Default::default()
        };
        for handler in [
            LifecycleHandler {
                exec: Some(ExecAction::default()),
                ..Default::default()
            },
            LifecycleHandler {
                http_get: Some(http("HTTP")),
                ..Default::default()
            },
            LifecycleHandler {
                sleep: Some(SleepAction { seconds: 3 }),
                ..Default::default()
            },
        ] {
            let accepted = with(Lifecycle {
                pre_stop: Some(handler.clone()),
                post_start: Some(handler),
                ..Default::default()
            });
            assert!(accepted.is_empty(), "{accepted:?}");
        }
        let refused = with(Lifecycle {
            post_start: Some(LifecycleHandler {
                tcp_socket: Some(TCPSocketAction::default()),
                ..Default::default()
            }),
            pre_stop: Some(LifecycleHandler {
                http_get: Some(http("HTTPS")),
                tcp_socket: Some(TCPSocketAction::default()),
                ..Default::default()
            }),
            stop_signal: Some("SIGINT".into()),
        });
        assert_eq!(
            refused,
            [
                "c.lifecycle.stopSignal",
                "c.lifecycle.postStart.tcpSocket",
                "c.lifecycle.preStop.tcpSocket",
                "c.lifecycle.preStop.httpGet.scheme",
            ]
        );
    }

    #[test]
    fn security_context_fields_berth_lacks_are_named_and_the_rest_accepted() {
        use k8s_openapi::api::core::v1::{Capabilities, SELinuxOptions, Sysctl};
        let c = Container {
            name: "c".into(),
            security_context: Some(SecurityContext {
                run_as_user: Some(1000),
                capabilities: Some(Capabilities {
                    add: Some(vec!["NET_ADMIN".into()]),
                    drop: Some(vec!["ALL".into()]),
                }),
                read_only_root_filesystem: Some(true),
                proc_mount: Some("Unmasked".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let spec = PodSpec {
            containers: vec![c.clone()],
            image_pull_secrets: Some(vec![Default::default()]),
            runtime_class_name: Some("runc".into()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                supplemental_groups: Some(vec![4000]),
                fs_group: Some(2000),
                se_linux_options: Some(SELinuxOptions::default()),
                sysctls: Some(vec![Sysctl::default()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut errors = Vec::new();
        pod_spec(&spec, "spec", &mut errors);
        container(&c, "spec.containers[0]", &mut errors);
        assert_eq!(
            fields(&errors),
            [
                "spec.securityContext.fsGroup",
                "spec.securityContext.seLinuxOptions",
                "spec.securityContext.sysctls",
                "spec.containers[0].securityContext.procMount",
            ]
        );
    }

    #[test]
    fn the_defaults_kubernetes_writes_are_accepted() {
        let spec = PodSpec {
            containers: vec![],
            scheduler_name: Some("default-scheduler".into()),
            dns_policy: Some("ClusterFirst".into()),
            security_context: Some(PodSecurityContext::default()),
            service_account_name: Some("default".into()),
            volumes: Some(vec![]),
            host_network: Some(false),
            ..Default::default()
        };
        let c = Container {
            name: "c".into(),
            termination_message_path: Some("/dev/termination-log".into()),
            termination_message_policy: Some("File".into()),
            image_pull_policy: Some("IfNotPresent".into()),
            tty: Some(false),
            ..Default::default()
        };
        let mut errors = Vec::new();
        pod_spec(&spec, "spec", &mut errors);
        container(&c, "spec.containers[0]", &mut errors);
        assert_eq!(fields(&errors), Vec::<&str>::new());
        let mut errors = Vec::new();
        pod_spec(
            &PodSpec {
                scheduler_name: Some("my-scheduler".into()),
                ..Default::default()
            },
            "spec",
            &mut errors,
        );
        assert_eq!(fields(&errors), ["spec.schedulerName"]);
    }
}
