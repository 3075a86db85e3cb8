//! How containers stop besides the plan's own steps: a preStop hook within the grace (for
//! deletions and probe kills alike), and every container at once when the agent
//! fences itself or shuts down.

use super::*;

impl Executor {
    /// Stops every container now (self-fencing or shutdown), the runtimes' and the
    /// memory's alike, tears down every sandbox, and forgets the pods: the next pass
    /// adopts afresh.
    pub(crate) async fn stop_all(&mut self, grace: Duration) {
        let mut stops = Vec::new();
        for (handler, runtime) in self.runtimes.all() {
            let mut ids: Vec<String> = runtime.list().into_iter().map(|c| c.id).collect();
            for pod in self.memory.pods.values().filter(|p| p.handler == handler) {
                ids.extend(pod.containers.values().filter_map(|c| c.id.clone()));
            }
            ids.sort();
            ids.dedup();
            stops.extend(ids.into_iter().map(|id| stop_and_remove(runtime.clone(), id, grace)));
        }
        futures::future::join_all(stops).await;
        let mut sandboxes: Vec<String> = self.network.as_ref().map(|n| n.list()).unwrap_or_default();
        sandboxes.extend(sandbox_dirs(&self.sandbox_dir));
        sandboxes.extend(
            self.memory
                .pods
                .iter()
                .filter(|(_, p)| p.runs_images)
                .map(|(uid, _)| uid.clone()),
        );
        sandboxes.sort();
        sandboxes.dedup();
        let (network, dir) = (self.network.clone(), self.sandbox_dir.clone());
        let teardown = tokio::task::spawn_blocking(move || {
            for uid in sandboxes {
                tear_down_sandbox(network.as_deref(), &dir, &uid);
            }
        });
        let _ = teardown.await;
        self.probes.stop_all();
        self.memory.forget_all();
    }
}

/// Runs a container's preStop hook within `grace`; returns the grace left for its
/// stop (at least [`MIN_GRACE_AFTER_HOOK`], as the kubelet gives). A hook that fails
/// is reported (FailedPreStopHook) and the stop goes on.
#[allow(clippy::too_many_arguments)]
pub(super) async fn pre_stop(
    runtime: &Arc<dyn crate::runtime::Runtime>,
    id: &str,
    hook: Result<Hook, String>,
    address: Option<std::net::IpAddr>,
    grace: Duration,
    pod: &str,
    pod_uid: &str,
    events: Option<Recorder>,
) -> Duration {
    let started = tokio::time::Instant::now();
    let result = match hook {
        Ok(hook) => hooks::run(&hook, runtime.clone(), id, address, grace).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::warn!(%pod, %id, error = %e, "a preStop hook failed");
        if let Some(events) = events {
            events.emit(
                reference(pod, pod_uid, None),
                EventType::Warning,
                "FailedPreStopHook",
                format!("PreStopHook failed: {e}"),
            );
        }
    }
    grace.saturating_sub(started.elapsed()).max(MIN_GRACE_AFTER_HOOK)
}
