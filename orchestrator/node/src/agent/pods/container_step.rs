//! One container's step in a pod's pass, free of I/O: its exit (and the restart its
//! policy decides), then, when the start order lets it and its back-off has passed,
//! its image pull and its start; and when an init container is through, so that the
//! next one may start. The order itself (init containers, sidecars, app containers,
//! postStart hooks) is `plan_pod`'s.

use std::time::Duration;

use super::config_env::{CREATE_CONTAINER_CONFIG_ERROR, EnvError, resolve};
use super::container_spec::{ServiceLinks, container_spec_with_env, expansion_of};
use super::hooks::post_start_of;
use super::memory::{ContainerMemory, Exit, Now, RestartPolicy, container_id};
use super::plan::{Action, EnvInputs, Observed};
use super::sandbox::Sandbox;
use super::volumes::{ReadyVolumes, mounts};
use crate::image::PullPolicy;
use crate::runtime::ContainerState;
use berth_api::kinds::pod::is_sidecar;
use berth_api::meta::MetaExt;
use berth_api::objects::{Container, Pod};

/// Whether an init container is through, so the next may start: completed (exited
/// 0, not to run again), or for a sidecar, running, its postStart hook done and its
/// startup probe passed.
pub(crate) fn is_through(container: &Container, c: &ContainerMemory) -> bool {
    if is_sidecar(container) {
        c.id.as_ref()
            .is_some_and(|id| c.post_start_pending.is_none() && c.health.is_started(container, id))
    } else {
        c.done && c.terminated.as_ref().is_some_and(|t| t.exit_code == 0)
    }
}

/// What one pod's pass shares across its containers.
pub(crate) struct Step<'a> {
    pub(crate) pod: &'a Pod,
    pub(crate) name: &'a str,
    pub(crate) handler: &'a str,
    pub(crate) sandbox: Option<&'a Sandbox>,
    /// The pod's volumes, once set up.
    pub(crate) volumes: Option<&'a ReadyVolumes>,
    pub(crate) observed: &'a Observed,
    pub(crate) backoff_base: Duration,
    pub(crate) runs_images: bool,
    /// What containers' environments are resolved from.
    pub(crate) env: &'a EnvInputs<'a>,
    /// What `status.podIP` says in an environment: as the pod's status has it.
    pub(crate) pod_ip: Option<std::net::IpAddr>,
    pub(crate) now: Now,
}

impl Step<'_> {
    /// One container's pass: its exit (restarted by `policy` after the back-off), and
    /// when `may_start` and it is due, its pull and start. Whether it was started.
    pub(crate) fn container(
        &self,
        container: &Container,
        c: &mut ContainerMemory,
        policy: RestartPolicy,
        may_start: bool,
        actions: &mut Vec<Action>,
    ) -> bool {
        let (pod, now) = (self.pod, self.now);
        if c.backoff.is_zero() {
            c.backoff = self.backoff_base;
        }
        if let Some(id) = c.id.clone() {
            match self.observed.state(&id) {
                Ok(ContainerState::Running { .. }) => return false,
                Ok(ContainerState::Exited {
                    exit_code,
                    signal,
                    started_at,
                    finished_at,
                    oom_killed,
                }) => {
                    let exit = Exit {
                        container_id: container_id(self.handler, &id),
                        exit_code,
                        signal,
                        started_at,
                        finished_at,
                        oom_killed,
                    };
                    c.exited(exit, policy, self.backoff_base, now);
                    actions.push(Action::Remove {
                        pod: self.name.to_string(),
                        pod_uid: pod.metadata.uid().to_string(),
                        handler: self.handler.to_string(),
                        container: container.name.clone(),
                        id,
                        exit_code,
                        backing_off: !c.done && !c.is_due(now),
                    });
                    return false;
                }
                Err(error) => {
                    actions.push(Action::Lost {
                        pod: self.name.to_string(),
                        container: container.name.clone(),
                        id,
                        error,
                    });
                    c.id = None;
                }
            }
        }
        if !may_start || !c.is_due(now) {
            return false;
        }
        let ready = if self.runs_images {
            let image = container.image.clone().unwrap_or_default();
            let (pull, backing_off) = c.image.step(now);
            if pull {
                actions.push(Action::Pull {
                    pod: self.name.to_string(),
                    pod_uid: pod.metadata.uid().to_string(),
                    container: container.name.clone(),
                    policy: PullPolicy::parse(container.image_pull_policy.as_deref(), &image)
                        .unwrap_or(PullPolicy::IfNotPresent),
                    image: image.clone(),
                    secrets: pod
                        .spec
                        .image_pull_secrets
                        .iter()
                        .flatten()
                        .map(|s| s.name.clone())
                        .filter(|s| !s.is_empty())
                        .collect(),
                });
            } else if backing_off {
                actions.push(Action::PullBackOff {
                    pod: self.name.to_string(),
                    pod_uid: pod.metadata.uid().to_string(),
                    container: container.name.clone(),
                    image,
                });
            }
            let has_volumes = pod.spec.volumes.as_ref().is_some_and(|v| !v.is_empty());
            let (Some(image), Some(sandbox), true) =
                (c.image.pulled(), self.sandbox, self.volumes.is_some() || !has_volumes)
            else {
                return false;
            };
            Some((image.clone(), sandbox.spec.clone()))
        } else {
            None
        };
        // Honest about the process runtime: its containers run on the host's own
        // filesystem, where a volume cannot be bound for one process alone.
        // The ServiceAccount token's own volume is left aside there: the process
        // reaches the API as the host does.
        let bound =
            |m: &&k8s_openapi::api::core::v1::VolumeMount| self.runs_images || !super::volumes::is_api_access(m);
        let own_env = if container
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| !self.runs_images && bound(&m))
        {
            Err(EnvError::Missing(
                "the process runtime runs commands on the host's own filesystem and cannot mount volumes \
                 (volumeMounts): give the pod a RuntimeClass whose handler runs images (runc)"
                    .into(),
            ))
        } else {
            resolve(pod, container, self.env.objects, self.env.node, self.pod_ip)
        };
        // The kubelet builds the environment once the image is there; what it names
        // and is missing holds the container (no back-off: the next pass looks again).
        let own_env = match own_env {
            Ok(own_env) => own_env,
            Err(EnvError::NotReadYet) => return false,
            Err(EnvError::Missing(message)) => {
                let error = (CREATE_CONTAINER_CONFIG_ERROR.to_string(), message.clone());
                if c.error.as_ref() != Some(&error) {
                    actions.push(Action::ConfigError {
                        pod: self.name.to_string(),
                        pod_uid: pod.metadata.uid().to_string(),
                        container: container.name.clone(),
                        message,
                    });
                }
                c.error = Some(error);
                return false;
            }
        };
        if c.error
            .as_ref()
            .is_some_and(|(reason, _)| reason == CREATE_CONTAINER_CONFIG_ERROR)
        {
            c.error = None;
        }
        let mut links = ServiceLinks::of(pod, container);
        links.declared = own_env.iter().map(|(name, _)| name.clone()).collect();
        let mut spec = container_spec_with_env(
            pod,
            container,
            ready.as_ref().map(|(image, _)| image),
            ready.as_ref().map(|(_, sandbox)| sandbox),
            own_env,
        );
        spec.mounts = self.volumes.map(|v| mounts(container, v, bound)).unwrap_or_default();
        links.expansion = expansion_of(container, &spec, &links.declared);
        actions.push(Action::Start {
            pod_uid: pod.metadata.uid().to_string(),
            handler: self.handler.to_string(),
            spec: Box::new(spec),
            links,
            post_start: post_start_of(container),
            address: self.sandbox.and_then(|s| s.pod_ip),
        });
        true
    }
}
