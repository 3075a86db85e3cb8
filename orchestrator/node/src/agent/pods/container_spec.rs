//! What the runtime is asked to run for one container of a pod: the pod's container
//! merged with its image's config and its pod's sandbox, by Kubernetes' rules.
//!
//! - argv: `command` given → it alone (it replaces the ENTRYPOINT and the image's CMD
//!   is ignored), then `args`; only `args` → ENTRYPOINT + args; neither →
//!   ENTRYPOINT + CMD.
//! - env: the image's, then the pod's identity, then the container's own (`envFrom`
//!   and `env`, resolved; a later entry wins: the pod's over the image's); at the
//!   start, the Services' variables ([`with_service_env`]) over the image's but under
//!   the container's own.
//! - workingDir: the container's, else the image's.
//! - securityContext: the pod's level, then the container's over it field by field.
//!
//! Without an image (the process runtime, which runs on the host) argv is
//! `command` + `args` and nothing comes from an image.

use crate::image::PulledImage;
use crate::runtime::{ContainerSpec, RootFs, SandboxSpec, SecuritySpec};
use berth_api::meta::MetaExt;
use berth_api::objects::{Container, Pod};
use berth_api::quantity::{parse_cpu_millis, parse_memory_bytes};

/// The spec to start `c` of `pod` with, from `image` when the runtime runs images,
/// with only the container's literal `env` values (its sources resolved: see
/// [`container_spec_with_env`]).
#[cfg(test)]
pub(crate) fn container_spec(
    pod: &Pod,
    c: &Container,
    image: Option<&PulledImage>,
    sandbox: Option<&SandboxSpec>,
) -> ContainerSpec {
    let own = c
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    container_spec_with_env(pod, c, image, sandbox, own)
}

/// The spec to start `c` of `pod` with, from `image` when the runtime runs images;
/// `own_env` is the environment the container defines itself (`envFrom` and `env`,
/// resolved: config_env.rs).
pub(crate) fn container_spec_with_env(
    pod: &Pod,
    c: &Container,
    image: Option<&PulledImage>,
    sandbox: Option<&SandboxSpec>,
    own_env: Vec<(String, String)>,
) -> ContainerSpec {
    let name = pod.metadata.name();
    let namespace = pod.metadata.namespace();
    let mut env: Vec<(String, String)> = image
        .map(|i| i.config.env.iter().map(|e| split_env(e)).collect())
        .unwrap_or_default();
    env.extend([
        ("HOSTNAME".to_string(), pod_hostname(pod).to_string()),
        ("BERTH_POD_NAME".to_string(), name.to_string()),
        ("BERTH_POD_NAMESPACE".to_string(), namespace.to_string()),
    ]);
    env.extend(own_env);
    let quantity = |section: &str, resource: &str| {
        let resources = c.resources.as_ref()?;
        let values = if section == "limits" {
            resources.limits.as_ref()
        } else {
            resources.requests.as_ref()
        };
        values?.get(resource).map(|q| q.0.clone())
    };
    let cpu = |section| quantity(section, "cpu").and_then(|q| parse_cpu_millis(&q).ok());
    let working_dir = c.working_dir.clone().filter(|d| !d.is_empty()).or_else(|| {
        image
            .and_then(|i| i.config.working_dir.clone())
            .filter(|d| !d.is_empty())
    });
    let mut security = security_spec(pod, c);
    security.image_user = image.and_then(|i| i.config.user.clone()).filter(|u| !u.is_empty());
    ContainerSpec {
        pod_uid: pod.metadata.uid().to_string(),
        pod: format!("{namespace}/{name}"),
        name: c.name.clone(),
        argv: argv(c, image),
        env,
        working_dir: working_dir.map(Into::into),
        // A request not given is the limit, as the API server defaults it.
        cpu_request_millis: cpu("requests").or_else(|| cpu("limits")),
        cpu_limit_millis: cpu("limits"),
        memory_limit_bytes: quantity("limits", "memory").and_then(|q| parse_memory_bytes(&q).ok()),
        rootfs: image.map(|i| RootFs {
            layers: i.layers.clone(),
            image_digest: i.config_digest.clone(),
        }),
        sandbox: sandbox.cloned(),
        security,
        // The pod's volumes, bound by the container's step once they are set up.
        mounts: Vec::new(),
    }
}

/// The pod's hostname: `spec.hostname`, else its name.
pub(crate) fn pod_hostname(pod: &Pod) -> &str {
    pod.spec
        .hostname
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or(pod.metadata.name())
}

/// Which Services' variables a container gets when it starts: those of the pod's
/// namespace with `enableServiceLinks` (default true), `kubernetes` always; never
/// over a variable the container declares itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceLinks {
    pub(crate) namespace: String,
    pub(crate) enabled: bool,
    /// The names of the container's own `env`.
    pub(crate) declared: Vec<String>,
    /// What `$(VAR)` references to expand once the Services' variables are known.
    pub(crate) expansion: super::expansion::Expansion,
}

impl ServiceLinks {
    pub(crate) fn of(pod: &Pod, c: &Container) -> ServiceLinks {
        ServiceLinks {
            namespace: pod.metadata.namespace().to_string(),
            enabled: pod.spec.enable_service_links != Some(false),
            declared: c.env.iter().flatten().map(|e| e.name.clone()).collect(),
            expansion: Default::default(),
        }
    }
}

/// What of `spec` (built for `c`) holds `$(VAR)` references to expand: the
/// container's own variables `own`, those of them set by a literal `env[].value`,
/// and where its own command and args begin in argv.
pub(crate) fn expansion_of(c: &Container, spec: &ContainerSpec, own: &[String]) -> super::expansion::Expansion {
    let mut literal: Vec<String> = Vec::new();
    for var in c.env.iter().flatten() {
        literal.retain(|name| *name != var.name);
        if var.value_from.is_none() {
            literal.push(var.name.clone());
        }
    }
    let command = c.command.as_deref().unwrap_or_default();
    let args = c.args.as_deref().unwrap_or_default();
    let argv_from = if !command.is_empty() {
        Some(0)
    } else if !args.is_empty() {
        Some(spec.argv.len().saturating_sub(args.len()))
    } else {
        None
    };
    super::expansion::Expansion {
        own: own.to_vec(),
        literal,
        argv_from,
    }
}

/// `spec` with the Services' `variables` (in the kubelet's order: over the image's
/// values, not over those the container declares).
pub(crate) fn with_service_env(
    mut spec: ContainerSpec,
    variables: Vec<(String, String)>,
    declared: &[String],
) -> ContainerSpec {
    let variables: Vec<(String, String)> = variables.into_iter().filter(|(k, _)| !declared.contains(k)).collect();
    spec.env.retain(|(k, _)| !variables.iter().any(|(name, _)| name == k));
    // Before the container's own entries, as the kubelet lists them.
    let first_own = spec
        .env
        .iter()
        .position(|(k, _)| declared.contains(k))
        .unwrap_or(spec.env.len());
    spec.env.splice(first_own..first_own, variables);
    spec
}

/// Kubernetes' rule for a container's command line (see the module's doc).
fn argv(c: &Container, image: Option<&PulledImage>) -> Vec<String> {
    let command = c.command.clone().unwrap_or_default();
    let args = c.args.clone().unwrap_or_default();
    let Some(image) = image else {
        return command.into_iter().chain(args).collect();
    };
    let head = if command.is_empty() {
        image.config.entrypoint.clone()
    } else {
        command
    };
    let tail = if !args.is_empty() || !c.command.as_ref().is_none_or(Vec::is_empty) {
        args
    } else {
        image.config.cmd.clone()
    };
    head.into_iter().chain(tail).collect()
}

/// "NAME=value" as the image config writes it; a bare "NAME" is NAME set empty.
fn split_env(entry: &str) -> (String, String) {
    match entry.split_once('=') {
        Some((name, value)) => (name.to_string(), value.to_string()),
        None => (entry.to_string(), String::new()),
    }
}

/// The pod's securityContext with the container's over it. Values the API server's
/// validation keeps in range (ids are 0..=2^31-1) are converted without loss.
pub(crate) fn security_spec(pod: &Pod, c: &Container) -> SecuritySpec {
    let pod_level = pod.spec.security_context.clone().unwrap_or_default();
    let ours = c.security_context.clone().unwrap_or_default();
    let id = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    let seccomp = ours
        .seccomp_profile
        .as_ref()
        .or(pod_level.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str());
    let capabilities = ours.capabilities.unwrap_or_default();
    SecuritySpec {
        run_as_user: id(ours.run_as_user.or(pod_level.run_as_user)),
        run_as_group: id(ours.run_as_group.or(pod_level.run_as_group)),
        image_user: None,
        supplemental_groups: pod_level
            .supplemental_groups
            .unwrap_or_default()
            .into_iter()
            .filter_map(|g| u32::try_from(g).ok())
            .collect(),
        run_as_non_root: ours.run_as_non_root.or(pod_level.run_as_non_root) == Some(true),
        capabilities_add: capabilities.add.unwrap_or_default(),
        capabilities_drop: capabilities.drop.unwrap_or_default(),
        privileged: ours.privileged == Some(true),
        read_only_root_filesystem: ours.read_only_root_filesystem == Some(true),
        no_new_privileges: ours.allow_privilege_escalation == Some(false),
        seccomp_runtime_default: seccomp == Some("RuntimeDefault"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::fake::pulled;
    use berth_api::meta::ObjectMeta;
    use berth_api::objects::{Capabilities, PodSecurityContext, SeccompProfile, SecurityContext};
    use berth_api::objects::{EnvVar, PodSpec};

    fn pod_with(c: &Container) -> Pod {
        Pod::new(
            ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("uid-web".into()),
                ..Default::default()
            },
            PodSpec {
                containers: vec![c.clone()],
                ..Default::default()
            },
        )
    }

    fn strings(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn command_and_args_merge_with_the_image_as_kubernetes_says() {
        // The fake image: ENTRYPOINT ["/bin/app"], CMD ["--serve"].
        let image = pulled("app:1");
        // (case, command, args, the argv run)
        type Case<'a> = (&'a str, Option<Vec<String>>, Option<Vec<String>>, &'a [&'a str]);
        let cases: [Case; 5] = [
            ("neither: ENTRYPOINT + CMD", None, None, &["/bin/app", "--serve"]),
            (
                "command only: CMD is ignored",
                strings(&["/bin/sh"]),
                None,
                &["/bin/sh"],
            ),
            (
                "args only: ENTRYPOINT + args",
                None,
                strings(&["--debug"]),
                &["/bin/app", "--debug"],
            ),
            (
                "both: the image's are ignored",
                strings(&["/bin/sh"]),
                strings(&["-c", "true"]),
                &["/bin/sh", "-c", "true"],
            ),
            (
                "empty lists count as not given",
                Some(vec![]),
                Some(vec![]),
                &["/bin/app", "--serve"],
            ),
        ];
        for (case, command, args, want) in cases {
            let c = Container {
                name: "main".into(),
                command,
                args,
                ..Default::default()
            };
            let spec = container_spec(&pod_with(&c), &c, Some(&image), None);
            assert_eq!(spec.argv, want, "{case}");
            let on_host = container_spec(&pod_with(&c), &c, None, None);
            let mut own: Vec<String> = c.command.clone().unwrap_or_default();
            own.extend(c.args.clone().unwrap_or_default());
            assert_eq!(on_host.argv, own, "{case}: without an image, the container's own");
        }
    }

    #[test]
    fn env_working_dir_and_user_come_from_the_image_unless_the_pod_says() {
        let image = pulled("app:1");
        let mut c = Container {
            name: "main".into(),
            env: Some(vec![EnvVar {
                name: "MODE".into(),
                value: Some("pod".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let mut with_user = image.clone();
        with_user.config.user = Some("1000:1000".into());
        let spec = container_spec(&pod_with(&c), &c, Some(&with_user), None);
        let env: Vec<(&str, &str)> = spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            env,
            [
                ("PATH", "/usr/bin:/bin"),
                ("MODE", "image"),
                ("HOSTNAME", "web"),
                ("BERTH_POD_NAME", "web"),
                ("BERTH_POD_NAMESPACE", "prod"),
                ("MODE", "pod"),
            ],
            "the image's first: a later entry wins, so the pod's"
        );
        assert_eq!(spec.working_dir.as_deref(), Some(std::path::Path::new("/srv")));
        assert_eq!(spec.security.image_user.as_deref(), Some("1000:1000"));
        assert_eq!(spec.rootfs.unwrap().image_digest, image.config_digest);
        c.working_dir = Some("/data".into());
        let spec = container_spec(&pod_with(&c), &c, Some(&image), None);
        assert_eq!(spec.working_dir.as_deref(), Some(std::path::Path::new("/data")));
    }

    #[test]
    fn cpu_request_defaults_to_the_limit() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "main",
            "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
        }))
        .unwrap();
        let spec = container_spec(&pod_with(&c), &c, None, None);
        assert_eq!(
            (spec.cpu_request_millis, spec.cpu_limit_millis, spec.memory_limit_bytes),
            (Some(500), Some(500), Some(64 << 20))
        );
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "main",
            "resources": {"requests": {"cpu": "250m"}},
        }))
        .unwrap();
        let spec = container_spec(&pod_with(&c), &c, None, None);
        assert_eq!((spec.cpu_request_millis, spec.cpu_limit_millis), (Some(250), None));
    }

    #[test]
    fn the_container_s_security_context_wins_over_the_pod_s_field_by_field() {
        let c = Container {
            name: "main".into(),
            security_context: Some(SecurityContext {
                run_as_user: Some(1001),
                capabilities: Some(Capabilities {
                    add: strings(&["NET_ADMIN"]),
                    drop: strings(&["ALL"]),
                }),
                read_only_root_filesystem: Some(true),
                allow_privilege_escalation: Some(false),
                seccomp_profile: Some(SeccompProfile {
                    type_: "Unconfined".into(),
                    localhost_profile: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut pod = pod_with(&c);
        pod.spec.security_context = Some(PodSecurityContext {
            run_as_user: Some(1000),
            run_as_group: Some(3000),
            run_as_non_root: Some(true),
            supplemental_groups: Some(vec![4000, 5000]),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..Default::default()
        });
        assert_eq!(
            security_spec(&pod, &c),
            SecuritySpec {
                run_as_user: Some(1001),
                run_as_group: Some(3000),
                image_user: None,
                supplemental_groups: vec![4000, 5000],
                run_as_non_root: true,
                capabilities_add: vec!["NET_ADMIN".into()],
                capabilities_drop: vec!["ALL".into()],
                privileged: false,
                read_only_root_filesystem: true,
                no_new_privileges: true,
                seccomp_runtime_default: false,
            }
        );
        // The pod's level alone.
        let plain = Container {
            name: "main".into(),
            ..Default::default()
        };
        let spec = security_spec(&pod, &plain);
        assert_eq!((spec.run_as_user, spec.seccomp_runtime_default), (Some(1000), true));
        assert!(!spec.no_new_privileges, "allowPrivilegeEscalation unset allows it");
    }

    #[test]
    fn service_variables_go_over_the_images_and_under_the_containers_own() {
        let mut image = pulled("app:1");
        image.config.env = vec!["WEB_SERVICE_PORT=1".into(), "PATH=/bin".into()];
        let c = Container {
            name: "main".into(),
            env: Some(vec![EnvVar {
                name: "WEB_SERVICE_HOST".into(),
                value: Some("mine".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let mut pod = pod_with(&c);
        let links = ServiceLinks::of(&pod, &c);
        assert_eq!((links.namespace.as_str(), links.enabled), ("prod", true));
        pod.spec.enable_service_links = Some(false);
        assert!(!ServiceLinks::of(&pod, &c).enabled);

        let spec = container_spec(&pod, &c, Some(&image), None);
        let variables = vec![
            ("WEB_SERVICE_HOST".to_string(), "10.96.0.20".to_string()),
            ("WEB_SERVICE_PORT".to_string(), "80".to_string()),
        ];
        let spec = with_service_env(spec, variables, &links.declared);
        let env: Vec<(&str, &str)> = spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            env,
            [
                ("PATH", "/bin"),
                ("HOSTNAME", "web"),
                ("BERTH_POD_NAME", "web"),
                ("BERTH_POD_NAMESPACE", "prod"),
                ("WEB_SERVICE_PORT", "80"),
                ("WEB_SERVICE_HOST", "mine"),
            ]
        );
    }

    #[test]
    fn the_hostname_is_the_pods_own_when_it_sets_one() {
        let c = Container::default();
        let mut pod = pod_with(&c);
        assert_eq!(pod_hostname(&pod), "web");
        pod.spec.hostname = Some("db-0".into());
        assert_eq!(pod_hostname(&pod), "db-0");
    }
}
