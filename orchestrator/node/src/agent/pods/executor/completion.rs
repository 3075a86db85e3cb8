//! The executor's intake of background outcomes (pulls, sandbox set-ups, stops),
//! apart from the passes that start them.

use super::*;

impl Executor {
    /// Hands a background outcome to the memory. A sandbox set up for a pod that is
    /// gone meanwhile is torn down at once.
    pub(super) fn complete(&mut self, completion: Completion, now: Now) {
        match completion {
            Completion::Stopped { pod_uid } => {
                self.memory.terminating.remove(&pod_uid);
            }
            Completion::PostStarted {
                pod_uid,
                container,
                id,
                result,
            } => self.post_started(&pod_uid, &container, &id, result),
            Completion::Pulled {
                pod_uid,
                container,
                image,
                result,
                took,
                missing_secrets,
            } => {
                let Some(pod) = self.memory.pods.get(&pod_uid) else {
                    return;
                };
                let pod_name = crate::agent::pods::plan::pod_name(&pod.pod);
                if !missing_secrets.is_empty() {
                    self.emit(
                        &pod_name,
                        &pod_uid,
                        None,
                        EventType::Warning,
                        "FailedToRetrieveImagePullSecret",
                        format!(
                            "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                            missing_secrets.join(", ")
                        ),
                    );
                }
                let at = Some(container.as_str());
                match &result {
                    Ok(_) => self.emit(
                        &pod_name,
                        &pod_uid,
                        at,
                        EventType::Normal,
                        "Pulled",
                        format!("Successfully pulled image {image:?} in {took:?}"),
                    ),
                    Err(error) => {
                        tracing::warn!(pod = %pod_name, %container, %error, "cannot pull an image");
                        let (reason, message) = match error {
                            PullError::NeverPull { .. } => ("ErrImageNeverPull", error.to_string()),
                            PullError::InvalidName { .. } => ("InspectFailed", error.to_string()),
                            PullError::Pull { .. } => ("Failed", format!("Failed to pull image {image:?}: {error}")),
                        };
                        self.emit(&pod_name, &pod_uid, at, EventType::Warning, reason, message);
                        let error_event = format!("Error: {}", error.reason());
                        self.emit(&pod_name, &pod_uid, at, EventType::Warning, "Failed", error_event);
                    }
                }
                if let Some(c) = self
                    .memory
                    .pods
                    .get_mut(&pod_uid)
                    .and_then(|p| p.containers.get_mut(&container))
                {
                    c.image.pull_finished(result, now);
                }
            }
            Completion::SandboxSetUp { pod_uid, result } => {
                let Some(pod) = self.memory.pods.get_mut(&pod_uid) else {
                    if result.is_ok() {
                        let (network, dir) = (self.network.clone(), self.sandbox_dir.clone());
                        tokio::task::spawn_blocking(move || tear_down_sandbox(network.as_deref(), &dir, &pod_uid));
                    }
                    return;
                };
                let pod_name = crate::agent::pods::plan::pod_name(&pod.pod);
                match &result {
                    Ok(sandbox) => tracing::info!(pod = %pod_name, ip = ?sandbox.pod_ip, "pod sandbox set up"),
                    Err(e) => {
                        tracing::warn!(pod = %pod_name, error = %e, "cannot set up a pod sandbox");
                    }
                }
                pod.sandbox
                    .setup_finished(result.clone(), self.memory.backoff_base, now);
                if let Err(e) = result {
                    self.emit(
                        &pod_name,
                        &pod_uid,
                        None,
                        EventType::Warning,
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {e}"),
                    );
                }
            }
        }
    }
}
