//! The agent's resource metrics: every [`SAMPLE_INTERVAL`] the counters of the node
//! and of each running container (`runtime::usage`), a short window of samples kept
//! per container, and `GET /metrics/usage` on the agent's port, which answers a
//! [`UsageSummary`] (JSON) for the API server's `metrics.k8s.io` and the autoscaler.
//!
//! ```text
//! sampler ─► Window: per container id (and the node) the samples of the last
//!            WINDOW_SAMPLES intervals ─► usage = (newest - oldest CPU) / elapsed,
//!            working set = newest; a container is reported once it has two samples
//! ```
//!
//! The window is a few seconds long, as the kubelet's is (metrics-server's `window`
//! field says how long): short enough that an autoscaler sees a change of load
//! within two samples.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use berth_api::metrics::{ContainerUsage, PodUsage, Usage, UsageSummary};

use super::workloads::Runtimes;
use crate::runtime::usage::{self, UsageCounters};

/// How often the counters are read.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(3);
/// How many samples a window holds: the usage spans at most this many less one
/// intervals.
const WINDOW_SAMPLES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    at: SystemTime,
    counters: UsageCounters,
}

/// Who a container belongs to, as the runtime lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    namespace: String,
    pod: String,
    pod_uid: String,
    container: String,
}

/// The samples of the node and of every running container, by container id.
#[derive(Debug, Default)]
pub struct Window {
    node: VecDeque<Sample>,
    containers: BTreeMap<String, (Owner, VecDeque<Sample>)>,
}

fn push(samples: &mut VecDeque<Sample>, sample: Sample) {
    samples.push_back(sample);
    while samples.len() > WINDOW_SAMPLES {
        samples.pop_front();
    }
}

/// The usage over the samples; None until there are two with a CPU counter and a
/// working set.
fn usage_of(samples: &VecDeque<Sample>) -> Option<Usage> {
    let (oldest, newest) = (samples.front()?, samples.back()?);
    let elapsed = newest.at.duration_since(oldest.at).ok()?;
    if elapsed.is_zero() {
        return None;
    }
    let cpu_ns = newest
        .counters
        .cpu_usage_ns?
        .saturating_sub(oldest.counters.cpu_usage_ns?);
    Some(Usage {
        timestamp: berth_api::time::format_rfc3339(newest.at),
        window_seconds: elapsed.as_secs_f64(),
        cpu_nano_cores: (cpu_ns as f64 / elapsed.as_secs_f64()).round() as u64,
        memory_working_set_bytes: newest.counters.working_set_bytes?,
    })
}

impl Window {
    /// Takes in one round of samples: the node's and the running containers'; the
    /// containers not in it (stopped, removed) are forgotten.
    fn record(&mut self, at: SystemTime, node: UsageCounters, running: Vec<(String, Owner, UsageCounters)>) {
        push(&mut self.node, Sample { at, counters: node });
        let mut kept = BTreeMap::new();
        for (id, owner, counters) in running {
            let (_, mut samples) = self.containers.remove(&id).unwrap_or((owner.clone(), VecDeque::new()));
            push(&mut samples, Sample { at, counters });
            kept.insert(id, (owner, samples));
        }
        self.containers = kept;
    }

    /// What the endpoint answers: the node and the pods whose containers have a usage.
    pub fn summary(&self, node: &str) -> UsageSummary {
        let mut pods: BTreeMap<(String, String), PodUsage> = BTreeMap::new();
        for (owner, samples) in self.containers.values() {
            let Some(usage) = usage_of(samples) else {
                continue;
            };
            let pod = pods
                .entry((owner.namespace.clone(), owner.pod.clone()))
                .or_insert_with(|| PodUsage {
                    namespace: owner.namespace.clone(),
                    name: owner.pod.clone(),
                    uid: owner.pod_uid.clone(),
                    containers: Vec::new(),
                });
            pod.containers.push(ContainerUsage {
                name: owner.container.clone(),
                usage,
            });
        }
        UsageSummary {
            node: node.to_owned(),
            node_usage: usage_of(&self.node),
            pods: pods.into_values().collect(),
        }
    }
}

/// The shared window the sampler writes and the endpoint reads.
pub type SharedWindow = Arc<Mutex<Window>>;

/// Samples every [`SAMPLE_INTERVAL`] until dropped (aborted).
pub async fn sample(runtimes: Runtimes, window: SharedWindow) {
    let mut interval = tokio::time::interval(SAMPLE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let runtimes = runtimes.clone();
        let round = tokio::task::spawn_blocking(move || {
            let node = usage::read_this_node();
            let running: Vec<(String, Owner, UsageCounters)> = runtimes
                .all()
                .flat_map(|(_, runtime)| runtime.list())
                .filter(|info| info.state.is_running() && !info.cgroup_dirs.is_empty())
                .map(|info| {
                    let (namespace, pod) = info.pod.split_once('/').unwrap_or(("", &info.pod));
                    let owner = Owner {
                        namespace: namespace.to_owned(),
                        pod: pod.to_owned(),
                        pod_uid: info.pod_uid.clone(),
                        container: info.name.clone(),
                    };
                    (info.id.clone(), owner, usage::read_cgroup(&info.cgroup_dirs))
                })
                .collect();
            (node, running)
        })
        .await;
        if let Ok((node, running)) = round {
            window
                .lock()
                .expect("metrics window lock")
                .record(SystemTime::now(), node, running);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(cpu_ns: u64, memory: u64) -> UsageCounters {
        UsageCounters {
            cpu_usage_ns: Some(cpu_ns),
            working_set_bytes: Some(memory),
        }
    }

    fn owner(pod: &str, container: &str) -> Owner {
        Owner {
            namespace: "default".into(),
            pod: pod.into(),
            pod_uid: format!("uid-{pod}"),
            container: container.into(),
        }
    }

    #[test]
    fn usage_is_the_cpu_rate_over_the_window_and_the_newest_working_set() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut window = Window::default();
        window.record(
            at(0),
            counters(0, 0),
            vec![("c1".into(), owner("web", "app"), counters(0, 100))],
        );
        let first = window.summary("n1");
        assert_eq!((first.node_usage, first.pods.len()), (None, 0), "one sample is no rate");
        // Half a core for 3 s, then a second container appears.
        window.record(
            at(3),
            counters(6_000_000_000, 4096),
            vec![
                ("c1".into(), owner("web", "app"), counters(1_500_000_000, 200)),
                ("c2".into(), owner("web", "side"), counters(10, 1)),
            ],
        );
        let summary = window.summary("n1");
        assert_eq!(summary.node_usage.as_ref().unwrap().cpu_nano_cores, 2_000_000_000);
        assert_eq!(summary.pods.len(), 1);
        let pod = &summary.pods[0];
        assert_eq!((pod.name.as_str(), pod.uid.as_str()), ("web", "uid-web"));
        assert_eq!(pod.containers.len(), 1, "the new container has one sample");
        assert_eq!(pod.containers[0].usage.cpu_nano_cores, 500_000_000);
        assert_eq!(pod.containers[0].usage.memory_working_set_bytes, 200);
        assert_eq!(pod.containers[0].usage.window_seconds, 3.0);
        // The window keeps WINDOW_SAMPLES samples: the oldest goes.
        for s in [6, 9, 12] {
            window.record(
                at(s),
                counters(0, 0),
                vec![(
                    "c1".into(),
                    owner("web", "app"),
                    counters(1_500_000_000 + (s - 3) * 1_000_000_000, 300),
                )],
            );
        }
        let summary = window.summary("n1");
        let usage = &summary.pods[0].containers[0].usage;
        assert_eq!(usage.window_seconds, 9.0);
        assert_eq!(usage.cpu_nano_cores, 1_000_000_000);
        assert_eq!(usage.timestamp, berth_api::time::format_rfc3339(at(12)));
        // A container no longer running is forgotten.
        window.record(at(15), counters(0, 0), Vec::new());
        assert!(window.summary("n1").pods.is_empty());
    }

    #[test]
    fn a_container_without_a_memory_counter_is_not_reported() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut window = Window::default();
        let unknown = UsageCounters {
            cpu_usage_ns: Some(5),
            working_set_bytes: None,
        };
        for s in [0, 3] {
            window.record(
                t0 + Duration::from_secs(s),
                counters(0, 0),
                vec![("c1".into(), owner("web", "app"), unknown)],
            );
        }
        assert!(window.summary("n1").pods.is_empty());
    }
}
