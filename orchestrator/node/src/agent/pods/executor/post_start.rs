//! postStart hooks: run in the background once their container started (the run is
//! not Running until then), and their outcome taken in by a later pass: a hook that
//! failed kills its container (FailedPostStartHook), which restarts as its policy
//! says.

use super::*;

impl Executor {
    /// In the background: runs the postStart hook of the run `id`, which is not
    /// Running until the hook's outcome comes back (`Completion::PostStarted`).
    pub(super) fn post_start(
        &mut self,
        pod_uid: &str,
        handler: &str,
        container: &str,
        id: String,
        hook: Result<Hook, String>,
        address: Option<std::net::IpAddr>,
    ) {
        let Some(runtime) = self.runtimes.get(handler).cloned() else {
            return;
        };
        if let Some(c) = self
            .memory
            .pods
            .get_mut(pod_uid)
            .and_then(|p| p.containers.get_mut(container))
        {
            c.post_start_pending = Some(id.clone());
        }
        let address = address.or(self.host_ip.parse().ok());
        let tx = self.completions_tx.clone();
        let (pod_uid, container) = (pod_uid.to_string(), container.to_string());
        tokio::spawn(async move {
            let result = match hook {
                Ok(hook) => hooks::run(&hook, runtime, &id, address, hooks::POST_START_LIMIT).await,
                Err(e) => Err(e),
            };
            let _ = tx.send(Completion::PostStarted {
                pod_uid,
                container,
                id,
                result,
            });
        });
    }

    /// A postStart hook finished: the run is Running now, or, when the hook failed,
    /// it is killed (FailedPostStartHook) and restarts as its policy says once a
    /// later pass sees it exited. An outcome of a run that already ended is dropped.
    pub(super) fn post_started(&mut self, pod_uid: &str, container: &str, id: &str, result: Result<(), String>) {
        let Some(pod) = self.memory.pods.get_mut(pod_uid) else {
            return;
        };
        let (handler, name) = (pod.handler.clone(), crate::agent::pods::plan::pod_name(&pod.pod));
        let grace = pod
            .pod
            .spec
            .termination_grace_period_seconds
            .map_or(crate::agent::pods::plan::DEFAULT_GRACE, |s| {
                Duration::from_secs(s.max(0) as u64)
            });
        let Some(c) = pod.containers.get_mut(container) else {
            return;
        };
        if c.post_start_pending.as_deref() != Some(id) {
            return;
        }
        let Err(error) = result else {
            c.post_start_pending = None;
            return;
        };
        // The run stays held out of Running until its exit is seen.
        tracing::warn!(pod = %name, %container, %id, %error, "a postStart hook failed");
        let at = Some(container);
        let message = format!("PostStartHook failed: {error}");
        self.emit(&name, pod_uid, at, EventType::Warning, "FailedPostStartHook", message);
        let message = format!("Container {container} failed its postStart hook, will be killed");
        self.emit(&name, pod_uid, at, EventType::Normal, "Killing", message);
        let Some(runtime) = self.runtimes.get(&handler).cloned() else {
            return;
        };
        let id = id.to_string();
        tokio::spawn(async move {
            if let Err(e) = runtime.stop(&id, grace).await {
                tracing::warn!(pod = %name, %id, error = %e, "cannot kill a container whose postStart hook failed");
            }
        });
    }
}
