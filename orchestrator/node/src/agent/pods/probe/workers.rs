//! The probes' timers: one task per probe of a running container, started and
//! stopped by each pass (`sync`) as the containers' health says which probes should
//! run, so that no probe waits for the pass or for another probe. A task sleeps until
//! its first run (`initialDelaySeconds` after the container started), then probes
//! every `periodSeconds`; each result goes to the pass through a channel, and a
//! result that may change something (a failure, or a success after a failure) wakes
//! the pass at once, so a readiness change is reported without waiting for its tick.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::health::first_run;
use super::{Outcome, ProbeKind, Target, attempt};
use crate::agent::pods::memory::{Memory, Now};
use crate::agent::pods::plan::has_own_address;
use crate::agent::workloads::Runtimes;
use berth_api::probes::Probe;
use berth_api::probes::Timing;
use berth_client::kv::AbortOnDrop;

/// One attempt's result, for the pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProbeResult {
    pub(crate) pod_uid: String,
    pub(crate) container: String,
    /// The run probed (a result of an earlier run is stale).
    pub(crate) id: String,
    pub(crate) kind: ProbeKind,
    pub(crate) outcome: Outcome,
}

/// A probe of one run of one container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    pod_uid: String,
    container: String,
    id: String,
    kind: ProbeKind,
}

pub(crate) struct ProbeWorkers {
    workers: BTreeMap<Key, AbortOnDrop>,
    tx: mpsc::UnboundedSender<ProbeResult>,
    rx: mpsc::UnboundedReceiver<ProbeResult>,
    wake: Arc<Notify>,
}

impl Default for ProbeWorkers {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        ProbeWorkers {
            workers: BTreeMap::new(),
            tx,
            rx,
            wake: Arc::new(Notify::new()),
        }
    }
}

impl ProbeWorkers {
    /// Notified when a result came that may change a pod's status.
    pub(crate) fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// The results that came since the last call.
    pub(crate) fn results(&mut self) -> Vec<ProbeResult> {
        let mut results = Vec::new();
        while let Ok(result) = self.rx.try_recv() {
            results.push(result);
        }
        results
    }

    /// Stops every probe (the containers were all stopped).
    pub(crate) fn stop_all(&mut self) {
        self.workers.clear();
    }

    /// How many probes run now.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.workers.len()
    }

    /// Starts the probes the memory's running containers want and stops the rest (a
    /// run that ended, a startup probe that succeeded, a container being killed). A
    /// probe of a pod whose address is not known yet waits for a later pass.
    pub(crate) fn sync(&mut self, memory: &Memory, runtimes: &Runtimes, host_ip: &str, now: Now) {
        let node_ip: Option<IpAddr> = host_ip.parse().ok();
        let mut wanted = BTreeSet::new();
        for (uid, pod) in &memory.pods {
            let pod_ip = if has_own_address(pod) {
                pod.sandbox.ready().and_then(|s| s.pod_ip)
            } else {
                node_ip
            };
            let (Some(pod_ip), Some(runtime)) = (pod_ip, runtimes.get(&pod.handler)) else {
                continue;
            };
            for container in crate::agent::pods::plan::all_containers(&pod.pod) {
                let Some(c) = pod.containers.get(&container.name) else {
                    continue;
                };
                let Some(id) = &c.id else { continue };
                for kind in c.health.wanted(container, id) {
                    let key = Key {
                        pod_uid: uid.clone(),
                        container: container.name.clone(),
                        id: id.clone(),
                        kind,
                    };
                    wanted.insert(key.clone());
                    if self.workers.contains_key(&key) {
                        continue;
                    }
                    let Some(probe) = kind.of(container).cloned() else {
                        continue;
                    };
                    let timing = Timing::of(&probe);
                    let started_at = c.started_at.unwrap_or(now.wall);
                    let first = first_run(
                        now,
                        started_at,
                        Duration::from_secs(u64::from(timing.initial_delay_seconds)),
                    );
                    let target = Target {
                        runtime: runtime.clone(),
                        id: id.clone(),
                        pod_ip,
                        container: container.clone(),
                    };
                    let task = tokio::spawn(work(
                        probe,
                        key.clone(),
                        target,
                        first,
                        self.tx.clone(),
                        self.wake.clone(),
                    ));
                    self.workers.insert(key, AbortOnDrop(task));
                }
            }
        }
        self.workers.retain(|key, _| wanted.contains(key));
    }
}

/// One probe's timer: the first run at `first`, then one every period, until the
/// pass stops it (or the agent's memory is gone).
async fn work(
    probe: Probe,
    key: Key,
    target: Target,
    first: Instant,
    results: mpsc::UnboundedSender<ProbeResult>,
    wake: Arc<Notify>,
) {
    let period = Duration::from_secs(u64::from(Timing::of(&probe).period_seconds));
    let mut next = first;
    let mut last_success = None;
    loop {
        tokio::time::sleep_until(next).await;
        let outcome = attempt(&probe, &target).await;
        let may_change = !outcome.success || last_success != Some(true);
        last_success = Some(outcome.success);
        let result = ProbeResult {
            pod_uid: key.pod_uid.clone(),
            container: key.container.clone(),
            id: key.id.clone(),
            kind: key.kind,
            outcome,
        };
        if results.send(result).is_err() {
            return;
        }
        if may_change {
            wake.notify_one();
        }
        // The next run a period after this one was due; one that ran late does not
        // make up for it with a burst.
        next = (next + period).max(Instant::now());
    }
}
