//! How long a pod's readiness change takes to reach every node's service proxy.
//!
//! ```text
//!  toggle: /tmp/unready created in the pod's container (its overlay, from the machine)
//!     │ readiness probe (period 1 s) fails ─► the agent writes Ready=False
//!     ▼
//!  t_api    the bench's watch of the pods shows the pod's Ready condition False
//!  t_slice  the bench's watch of the EndpointSlices shows its endpoint not ready
//!  t_gone   on every host, `iptables-save -t nat` (in a tight loop, one thread per
//!           host namespace) no longer has `--to-destination <pod IP>:8080`
//!
//!  leave = max over the hosts of t_gone − t_api        (the figure of record)
//!  slice = t_slice − t_api                              (of it: the EndpointSlice)
//!  and back: the file removed, Ready=True, until every host has the DNAT again
//! ```
//!
//! The probe's period does not count: the clock starts when the API has the pod's new
//! condition. A host's time is the end of the first `iptables-save` that showed the
//! change, so each figure is late by at most one poll of that host (their mean length
//! is reported).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use berth_testkit::hosts::{Host, system_tool};
use hyper::Method;
use serde_json::Value;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::cluster::{Api, EchoPod, POD_PORT, TrafficCluster, is_true, pods_path, slice_endpoints, slices_path};
use crate::api::http::next_data;
use crate::latency::LatencySummary;

/// What the watches and the pollers saw, and when.
#[derive(Debug)]
enum Seen {
    /// A pod's Ready condition, when it changed.
    PodReady {
        pod: String,
        ready: bool,
        at: Instant,
    },
    /// An endpoint's `ready`, when it changed.
    SliceReady {
        pod: String,
        ready: bool,
        at: Instant,
    },
    /// A host's DNAT destinations, when they changed.
    Rules {
        host: usize,
        destinations: BTreeSet<String>,
        at: Instant,
    },
    Failed(String),
}

/// The measured changes, one direction.
#[derive(Debug, Default)]
pub struct Direction {
    /// From the API's condition to the last host's rules.
    pub to_every_proxy: Vec<Duration>,
    /// From the API's condition to the EndpointSlice.
    pub to_slice: Vec<Duration>,
}

#[derive(Debug, Default)]
pub struct Readiness {
    pub leave: Direction,
    pub back: Direction,
    /// The mean length of one `iptables-save -t nat` poll, per host.
    pub poll_ms: Vec<f64>,
}

impl Readiness {
    pub fn summary(samples: &[Duration]) -> LatencySummary {
        LatencySummary::from_samples(samples.to_vec())
    }
}

/// How long one change may take before the run fails.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn measure(cluster: &mut TrafficCluster, pods: &[EchoPod], changes: usize) -> anyhow::Result<Readiness> {
    let (sender, mut seen) = unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let mut pollers = Vec::new();
    for (index, host) in cluster.network.hosts().iter().enumerate() {
        pollers.push(poll_rules(host, index, sender.clone(), stop.clone()));
    }
    let pod_watch = tokio::spawn(watch(
        cluster.api_authority.clone(),
        pods_path(),
        sender.clone(),
        pod_readiness,
        false,
    ));
    let slice_watch = tokio::spawn(watch(
        cluster.api_authority.clone(),
        slices_path(),
        sender.clone(),
        endpoint_readiness,
        true,
    ));
    drop(sender);
    let measured = toggle(cluster, pods, changes, &mut seen).await;
    stop.store(true, Ordering::Relaxed);
    pod_watch.abort();
    slice_watch.abort();
    let mut result = measured?;
    for poller in pollers {
        let (polls, busy) = poller
            .join()
            .map_err(|_| anyhow::anyhow!("a poller panicked"))?
            .context("entering a host")??;
        result.poll_ms.push(busy.as_secs_f64() * 1000.0 / polls.max(1) as f64);
    }
    Ok(result)
}

/// What the bench knows of the world, from the events so far.
#[derive(Default)]
struct World {
    pod_ready: HashMap<String, (bool, Instant)>,
    slice_ready: HashMap<String, (bool, Instant)>,
    /// Per host: its destinations and when they last changed.
    rules: HashMap<usize, (BTreeSet<String>, Instant)>,
}

impl World {
    fn apply(&mut self, seen: Seen) -> anyhow::Result<()> {
        match seen {
            Seen::PodReady { pod, ready, at } => {
                self.pod_ready.insert(pod, (ready, at));
            }
            Seen::SliceReady { pod, ready, at } => {
                self.slice_ready.insert(pod, (ready, at));
            }
            Seen::Rules { host, destinations, at } => {
                self.rules.insert(host, (destinations, at));
            }
            Seen::Failed(why) => bail!("{why}"),
        }
        Ok(())
    }
}

async fn toggle(
    cluster: &mut TrafficCluster,
    pods: &[EchoPod],
    changes: usize,
    seen: &mut UnboundedReceiver<Seen>,
) -> anyhow::Result<Readiness> {
    let hosts = cluster.network.hosts().len();
    let mut world = World::default();
    let mut result = Readiness::default();
    // Every pod ready, in the slices and in every host's rules, before the first change.
    let settled = |world: &World| {
        pods.iter().all(|pod| {
            let destination = format!("{}:{POD_PORT}", pod.ip);
            world.pod_ready.get(&pod.name).is_some_and(|(ready, _)| *ready)
                && world.slice_ready.get(&pod.name).is_some_and(|(ready, _)| *ready)
                && (0..hosts).all(|h| world.rules.get(&h).is_some_and(|(d, _)| d.contains(&destination)))
        })
    };
    wait(seen, &mut world, "every pod ready everywhere", |w| {
        settled(w).then_some(())
    })
    .await?;
    for change in 0..changes {
        let pod = &pods[change % pods.len()];
        let file = cluster.unready_file(pod);
        let destination = format!("{}:{POD_PORT}", pod.ip);
        for ready in [false, true] {
            if ready {
                std::fs::remove_file(&file).with_context(|| format!("removing {}", file.display()))?;
            } else {
                std::fs::write(&file, b"").with_context(|| format!("creating {}", file.display()))?;
            }
            let what = format!("change {change}: {} ready={ready}", pod.name);
            let t_api = wait(seen, &mut world, &what, |w| {
                w.pod_ready
                    .get(&pod.name)
                    .filter(|(r, _)| *r == ready)
                    .map(|(_, at)| *at)
            })
            .await?;
            let t_slice = wait(seen, &mut world, &what, |w| {
                w.slice_ready
                    .get(&pod.name)
                    .filter(|(r, _)| *r == ready)
                    .map(|(_, at)| *at)
            })
            .await?;
            let t_every = wait(seen, &mut world, &what, |w| {
                let mut last = t_api;
                for host in 0..hosts {
                    let (destinations, at) = w.rules.get(&host)?;
                    if destinations.contains(&destination) != ready {
                        return None;
                    }
                    last = last.max(*at);
                }
                Some(last)
            })
            .await?;
            let direction = if ready { &mut result.back } else { &mut result.leave };
            direction.to_every_proxy.push(t_every.saturating_duration_since(t_api));
            direction.to_slice.push(t_slice.saturating_duration_since(t_api));
        }
        cluster.check_running()?;
        if (change + 1) % 10 == 0 {
            eprintln!("   {} of {changes} changes", change + 1);
        }
    }
    Ok(result)
}

/// Applies events until `found` answers; fails after [`CHANGE_TIMEOUT`].
async fn wait<T>(
    seen: &mut UnboundedReceiver<Seen>,
    world: &mut World,
    what: &str,
    found: impl Fn(&World) -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + CHANGE_TIMEOUT;
    loop {
        if let Some(answer) = found(world) {
            return Ok(answer);
        }
        match tokio::time::timeout_at(deadline, seen.recv()).await {
            Ok(Some(event)) => world.apply(event)?,
            Ok(None) => bail!("{what}: the watches and pollers ended"),
            Err(_) => bail!("{what}: not seen within {CHANGE_TIMEOUT:?}"),
        }
    }
}

/// Lists, then watches from the list's revision, sending what `readiness` reads of
/// each object whenever it differs from what was sent before.
async fn watch(
    authority: String,
    list_path: String,
    sender: UnboundedSender<Seen>,
    readiness: fn(&Value) -> Vec<(String, bool)>,
    is_slice: bool,
) {
    let failed = |why: String| Seen::Failed(format!("the watch of {list_path}: {why}"));
    let result: anyhow::Result<()> = async {
        let mut api = Api::open(&authority).await?;
        let list = api.get_json(&list_path).await?;
        let mut known: HashMap<String, bool> = HashMap::new();
        let at = Instant::now();
        let send = |known: &mut HashMap<String, bool>, object: &Value, at: Instant| {
            for (pod, ready) in readiness(object) {
                if known.insert(pod.clone(), ready) != Some(ready) {
                    let event = if is_slice {
                        Seen::SliceReady { pod, ready, at }
                    } else {
                        Seen::PodReady { pod, ready, at }
                    };
                    let _ = sender.send(event);
                }
            }
        };
        for item in list["items"].as_array().into_iter().flatten() {
            send(&mut known, item, at);
        }
        let revision = list["metadata"]["resourceVersion"]
            .as_str()
            .context("a list without a resourceVersion")?;
        let path = format!("{list_path}&watch=true&resourceVersion={revision}");
        let response = api.connection().send(Method::GET, &path, None).await?;
        if response.status() != 200 {
            bail!("answered {}", response.status());
        }
        let mut body = response.into_body();
        let mut pending = Vec::new();
        while let Some(data) = next_data(&mut body).await? {
            let at = Instant::now();
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line).context("a watch event that is not JSON")?;
                if matches!(event["type"].as_str(), Some("ADDED" | "MODIFIED")) {
                    send(&mut known, &event["object"], at);
                }
            }
        }
        bail!("the server ended the watch")
    }
    .await;
    if let Err(error) = result {
        let _ = sender.send(failed(format!("{error:#}")));
    }
}

fn pod_readiness(pod: &Value) -> Vec<(String, bool)> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default().to_owned();
    vec![(name, is_true(&pod["status"]["conditions"], "Ready"))]
}

fn endpoint_readiness(slice: &Value) -> Vec<(String, bool)> {
    slice_endpoints(slice)
}

/// A thread in the host's network namespace that runs `iptables-save -t nat` over and
/// over, sending the DNAT destinations whenever they change; returns how many polls it
/// made and the time they took.
#[allow(clippy::type_complexity)]
fn poll_rules(
    host: &Host,
    index: usize,
    sender: UnboundedSender<Seen>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<anyhow::Result<anyhow::Result<(u64, Duration)>>> {
    host.spawn_inside(move || {
        let mut last: Option<BTreeSet<String>> = None;
        let (mut polls, mut busy) = (0u64, Duration::ZERO);
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let out = std::process::Command::new(system_tool("iptables-save"))
                .args(["-t", "nat"])
                .output()
                .context("running iptables-save")?;
            let at = Instant::now();
            polls += 1;
            busy += at - started;
            if !out.status.success() {
                bail!("iptables-save: {}", String::from_utf8_lossy(&out.stderr));
            }
            let destinations = dnat_destinations(&String::from_utf8_lossy(&out.stdout));
            if last.as_ref() != Some(&destinations) {
                let _ = sender.send(Seen::Rules {
                    host: index,
                    destinations: destinations.clone(),
                    at,
                });
                last = Some(destinations);
            }
        }
        Ok((polls, busy))
    })
}

/// Every `--to-destination` of the ruleset.
fn dnat_destinations(ruleset: &str) -> BTreeSet<String> {
    ruleset
        .lines()
        .filter_map(|line| line.split("--to-destination ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dnat_destinations_are_read_from_a_ruleset() {
        let ruleset = "*nat\n-A BERTH-SEP-abcd -m comment --comment \"default/echo\" -p tcp -m tcp -j DNAT --to-destination 10.112.1.5:8080\n-A BERTH-SVCS-cbr0 -d 10.96.0.10/32 -p tcp -j BERTH-SVC-x\nCOMMIT\n";
        assert_eq!(
            dnat_destinations(ruleset),
            BTreeSet::from(["10.112.1.5:8080".to_owned()])
        );
    }
}
