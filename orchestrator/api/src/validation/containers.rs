//! What a pod asks of the container runtime, checked at admission as Kubernetes
//! checks it: securityContext values, `imagePullPolicy`, and the RuntimeClass.
//!
//! The RuntimeClass is not checked here: it is an object in the store, which the API
//! server's admission reads (a pod naming a class that does not exist is refused);
//! the scheduler then places a pod only on a node whose `status.runtimeHandlers` has
//! its class's handler.

use k8s_openapi::api::core::v1::{Container, PodSpec, SeccompProfile};

use super::{Errors, err};

/// The largest user or group id Kubernetes accepts.
const MAX_ID: i64 = i32::MAX as i64;

pub(super) fn pod_spec(spec: &PodSpec, path: &str, errors: &mut Errors) {
    let pod_level = spec.security_context.clone().unwrap_or_default();
    let at = format!("{path}.securityContext");
    ids(
        errors,
        &at,
        pod_level.run_as_user,
        pod_level.run_as_group,
        pod_level.supplemental_groups.as_deref().unwrap_or_default(),
    );
    seccomp(errors, &at, pod_level.seccomp_profile.as_ref());
    for (at, c, _) in super::init_containers::with_paths(spec, path) {
        container(c, &at, errors);
        // The merged view: a container's runAsNonRoot with the pod's runAsUser 0, or
        // the other way round, can never start.
        let ours = c.security_context.clone().unwrap_or_default();
        let non_root = ours.run_as_non_root.or(pod_level.run_as_non_root) == Some(true);
        let user = ours.run_as_user.or(pod_level.run_as_user);
        if non_root && user == Some(0) {
            err(
                errors,
                format!("{at}.securityContext.runAsNonRoot"),
                "runAsNonRoot is true but runAsUser is 0: the container's runAsUser breaks non-root policy",
            );
        }
    }
}

fn container(c: &Container, at: &str, errors: &mut Errors) {
    let policy = c.image_pull_policy.as_deref().unwrap_or_default();
    if !["", "Always", "IfNotPresent", "Never"].contains(&policy) {
        err(
            errors,
            format!("{at}.imagePullPolicy"),
            format!("Unsupported value: {policy:?}: supported values: \"Always\", \"IfNotPresent\", \"Never\""),
        );
    }
    let Some(sc) = &c.security_context else { return };
    let at = format!("{at}.securityContext");
    ids(errors, &at, sc.run_as_user, sc.run_as_group, &[]);
    seccomp(errors, &at, sc.seccomp_profile.as_ref());
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            err(
                errors,
                &at,
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            );
        }
        let adds_sys_admin = sc
            .capabilities
            .as_ref()
            .and_then(|c| c.add.as_ref())
            .is_some_and(|add| add.iter().any(|c| c == "SYS_ADMIN" || c == "CAP_SYS_ADMIN"));
        if adds_sys_admin {
            err(
                errors,
                &at,
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            );
        }
    }
}

fn ids(errors: &mut Errors, at: &str, user: Option<i64>, group: Option<i64>, groups: &[i64]) {
    let mut check = |field: String, id: i64| {
        if !(0..=MAX_ID).contains(&id) {
            err(
                errors,
                format!("{at}.{field}"),
                format!("Invalid value: {id}: must be between 0 and {MAX_ID}, inclusive"),
            );
        }
    };
    user.into_iter().for_each(|u| check("runAsUser".into(), u));
    group.into_iter().for_each(|g| check("runAsGroup".into(), g));
    for (i, g) in groups.iter().enumerate() {
        check(format!("supplementalGroups[{i}]"), *g);
    }
}

fn seccomp(errors: &mut Errors, at: &str, profile: Option<&SeccompProfile>) {
    let Some(profile) = profile else { return };
    let field = format!("{at}.seccompProfile.type");
    match profile.type_.as_str() {
        "RuntimeDefault" | "Unconfined" => {}
        "Localhost" => err(
            errors,
            field,
            format!(
                "{} (Localhost profiles: only RuntimeDefault and Unconfined)",
                super::NOT_IMPLEMENTED
            ),
        ),
        other => err(
            errors,
            field,
            format!(
                "Unsupported value: {other:?}: supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Capabilities, PodSecurityContext, SecurityContext};

    use super::*;

    fn errors_of(spec: &PodSpec) -> Vec<String> {
        let mut errors = Vec::new();
        pod_spec(spec, "spec", &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    fn with(sc: SecurityContext) -> PodSpec {
        PodSpec {
            containers: vec![Container {
                name: "c".into(),
                security_context: Some(sc),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn run_as_non_root_with_user_zero_is_refused_at_either_level() {
        let container_level = with(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(0),
            ..Default::default()
        });
        assert_eq!(
            errors_of(&container_level).len(),
            1,
            "{:?}",
            errors_of(&container_level)
        );
        assert!(errors_of(&container_level)[0].starts_with("spec.containers[0].securityContext.runAsNonRoot:"));
        let mut mixed = with(SecurityContext {
            run_as_non_root: Some(true),
            ..Default::default()
        });
        mixed.spec_user(0);
        assert_eq!(errors_of(&mixed).len(), 1);
        let mut fine = with(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(1000),
            ..Default::default()
        });
        fine.spec_user(0);
        assert_eq!(errors_of(&fine), Vec::<String>::new(), "the container's user wins");
    }

    trait SpecUser {
        fn spec_user(&mut self, user: i64);
    }

    impl SpecUser for PodSpec {
        fn spec_user(&mut self, user: i64) {
            self.security_context = Some(PodSecurityContext {
                run_as_user: Some(user),
                ..Default::default()
            });
        }
    }

    #[test]
    fn kubernetes_own_checks() {
        let escalation = with(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(true),
            capabilities: Some(Capabilities {
                add: Some(vec!["SYS_ADMIN".into()]),
                drop: None,
            }),
            run_as_user: Some(-1),
            seccomp_profile: Some(SeccompProfile {
                type_: "Sometimes".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        });
        let errors = errors_of(&escalation);
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("`privileged` to true")));
        assert!(errors.iter().any(|e| e.contains("CAP_SYS_ADMIN")));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.containers[0].securityContext.runAsUser:"))
        );
        assert!(errors.iter().any(|e| e.contains("Unsupported value: \"Sometimes\"")));
    }

    #[test]
    fn pull_policies_are_checked() {
        let mut spec = with(SecurityContext::default());
        // The class is admission's to check, against the store.
        spec.runtime_class_name = Some("kata".into());
        assert_eq!(errors_of(&spec), Vec::<String>::new());
        spec.containers[0].image_pull_policy = Some("Sometimes".into());
        let errors = errors_of(&spec);
        assert!(errors[0].starts_with("spec.containers[0].imagePullPolicy: Unsupported value"));
    }
}
