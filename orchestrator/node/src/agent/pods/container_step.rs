//! One container's step in a pod's pass, free of I/O: its exit (and the restart its
//! policy decides), then, when the start order lets it and its back-off has passed,
//! its image pull and its start; and when an init container is through, so that the
//! next one may start. The order itself (init containers, sidecars, app containers,
//! postStart hooks) is `plan_pod`'s.

use std::time::Duration;

use super::container_spec::{ServiceLinks, container_spec};
use super::hooks::post_start_of;
use super::memory::{ContainerMemory, Exit, Now, RestartPolicy, container_id};
use super::plan::{Action, Observed};
use super::sandbox::Sandbox;
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
    pub(crate) observed: &'a Observed,
    pub(crate) backoff_base: Duration,
    pub(crate) runs_images: bool,
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
        let spec = if self.runs_images {
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
            let (Some(image), Some(sandbox)) = (c.image.pulled(), self.sandbox) else {
                return false;
            };
            container_spec(pod, container, Some(image), Some(&sandbox.spec))
        } else {
            container_spec(pod, container, None, None)
        };
        actions.push(Action::Start {
            pod_uid: pod.metadata.uid().to_string(),
            handler: self.handler.to_string(),
            spec: Box::new(spec),
            links: ServiceLinks::of(pod, container),
            post_start: post_start_of(container),
            address: self.sandbox.and_then(|s| s.pod_ip),
        });
        true
    }
}
