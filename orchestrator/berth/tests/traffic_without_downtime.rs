//! The traffic layer's proof: a client on a host sends ~200 requests a second (half
//! on new connections, half kept alive) to a Service's cluster IP, backed by a
//! 4-replica Deployment of an HTTP server on 3 agents, while one after another:
//!
//! 1. the Deployment rolls out a new image (maxUnavailable 0, maxSurge 1) and back;
//! 2. the control-plane replica holding the leadership is killed with SIGKILL;
//! 3. one pod's readiness probe starts failing;
//! 4. one node is drained (`kubectl drain`, under a PodDisruptionBudget);
//! 5. one agent host dies: its cable is pulled, its agent and containers killed.
//!
//! Steps 1–4 must fail no request. Step 5 may fail only requests that went to the
//! dead host's pods, and none sent later than the node grace period plus 1 s after
//! the death. The test prints the timeline and each step's counts (run with
//! `--no-capture` to see them); its only clock assertion is step 5's deadline, which
//! the issue sets.
//!
//! The pods run `berth-echo` (a binary of the jepsen-style-tests package, built with
//! the workspace): `GET /` answers `<version> <pod name>`, `/healthz` is 503 while
//! `/tmp/unready` exists. Their preStop hook sleeps, as a server that drains behind a
//! load balancer does, so a pod leaves every node's rules before it stops.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use berth_testkit::eventually_blocking;
use berth_testkit::hosts::system_tool;
use berth_testkit::traffic::{Connection, History, Outcome, Traffic};
use common::BERTH;
use common::containers::ContainerCluster;
use serde_json::Value;

/// The control plane's `--node-monitor-grace-period` in [`ContainerCluster`].
const NODE_GRACE: Duration = Duration::from_secs(5);
const RATE: u32 = 200;
/// How long a request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// `berth-echo`, built next to `berth` (the workspace's binaries share a target dir).
fn echo_binary() -> PathBuf {
    let echo = std::path::Path::new(BERTH).with_file_name("berth-echo");
    assert!(
        echo.is_file(),
        "{} is missing: build it with `cargo build -p berth-jepsen` (the test script builds the workspace)",
        echo.display()
    );
    echo
}

fn manifest(image: &str, version: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: echo
spec:
  replicas: 4
  selector:
    matchLabels: {{app: echo}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata:
      labels: {{app: echo}}
    spec:
      terminationGracePeriodSeconds: 10
      containers:
      - name: echo
        image: {image}
        command: ["sh", "-c", "trap 'exit 0' TERM; berth-echo --port 8080 --version {version} & wait"]
        readinessProbe:
          httpGet: {{path: /healthz, port: 8080}}
          periodSeconds: 1
          failureThreshold: 1
        lifecycle:
          preStop:
            exec:
              command: ["sleep", "3"]
---
apiVersion: v1
kind: Service
metadata:
  name: echo
spec:
  selector: {{app: echo}}
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: echo
spec:
  minAvailable: 3
  selector:
    matchLabels: {{app: echo}}
"#
    )
}

/// One endpoint of the Service's slices.
#[derive(Debug, Clone)]
struct Endpoint {
    pod: String,
    node: String,
    is_ready: bool,
}

fn endpoints(cluster: &ContainerCluster) -> Vec<Endpoint> {
    let (_, slices) = common::http_get(
        cluster.api_port,
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Decho",
    );
    let mut all = Vec::new();
    for slice in slices["items"].as_array().into_iter().flatten() {
        for endpoint in slice["endpoints"].as_array().into_iter().flatten() {
            all.push(Endpoint {
                pod: endpoint["targetRef"]["name"].as_str().unwrap_or_default().to_string(),
                node: endpoint["nodeName"].as_str().unwrap_or_default().to_string(),
                is_ready: endpoint["conditions"]["ready"] == true,
            });
        }
    }
    all
}

fn echo_pods(cluster: &ContainerCluster) -> Vec<Value> {
    let (_, pods) = common::http_get(
        cluster.api_port,
        "/api/v1/namespaces/default/pods?labelSelector=app%3Decho",
    );
    pods["items"].as_array().cloned().unwrap_or_default()
}

/// Waits until the Deployment runs 4 pods of `version`, all ready endpoints, and no
/// other pod is left (none terminating).
fn wait_settled(cluster: &mut ContainerCluster, version: &str) {
    cluster.kubectl_ok(&["rollout", "status", "deployment/echo", "--timeout=120s"]);
    eventually_blocking(&format!("4 ready endpoints of {version} and nothing else"), || {
        cluster.check_running();
        let pods = echo_pods(cluster);
        let all_of_version = pods.len() == 4
            && pods.iter().all(|p| {
                p["metadata"]["deletionTimestamp"].is_null()
                    && p["spec"]["containers"][0]["command"][2]
                        .as_str()
                        .is_some_and(|c| c.contains(&format!("--version {version}")))
            });
        let endpoints = endpoints(cluster);
        let ready = endpoints.iter().filter(|e| e.is_ready).count();
        (all_of_version && ready == 4 && endpoints.len() == 4).then_some(())
    });
}

/// A moment of the run, from the start of the traffic.
struct Timeline {
    started: std::time::Instant,
    marks: Vec<(Duration, String)>,
}

impl Timeline {
    fn mark(&mut self, what: impl Into<String>) -> Duration {
        let at = self.started.elapsed();
        let what = what.into();
        eprintln!("{:>8.3} s  {what}", at.as_secs_f64());
        self.marks.push((at, what));
        at
    }
}

/// A step's span of the history, and what it must show.
struct Step {
    name: &'static str,
    from: Duration,
    to: Duration,
}

fn report(history: &History, step: &Step) -> String {
    let part = history.between(step.from, step.to);
    let kept = part
        .outcomes
        .iter()
        .filter(|o| o.connection == Connection::KeptAlive)
        .count();
    let versions = part.answers().into_iter().fold(
        std::collections::BTreeMap::<String, usize>::new(),
        |mut by, (answer, n)| {
            let version = answer.split(' ').next().unwrap_or_default().to_string();
            *by.entry(version).or_default() += n;
            by
        },
    );
    format!(
        "{:<34} {:>7.3}–{:>7.3} s  {:>6} requests ({kept} kept alive), {:>3} failed, p99 {:>7.1} ms, answers {versions:?}",
        step.name,
        step.from.as_secs_f64(),
        step.to.as_secs_f64(),
        part.outcomes.len(),
        part.failures().len(),
        part.latency(0.99).map_or(0.0, |l| l.as_secs_f64() * 1000.0),
    )
}

/// The pods (by name) that answered requests sent on new connections in `[from, to)`.
fn answered_new(history: &History, from: Duration, to: Duration) -> Vec<String> {
    history
        .between(from, to)
        .outcomes
        .iter()
        .filter(|o| o.connection == Connection::New)
        .filter_map(|o| o.result.as_ref().ok())
        .filter_map(|answer| answer.split(' ').nth(1).map(String::from))
        .collect()
}

/// Whether a failure of step 5 was a request to the dead host's pods: on a kept-alive
/// connection one of them had answered on, or one that got no answer at all (a
/// connection not made, an answer that never came, no route): a live pod or host
/// answers, refuses or resets at once.
fn is_the_dead_hosts(outcome: &Outcome, dead_pods: &[String]) -> bool {
    let reason = outcome.result.as_ref().err().map_or("", String::as_str);
    let answered_by_dead = outcome
        .previous
        .as_ref()
        .and_then(|answer| answer.split(' ').nth(1))
        .is_some_and(|pod| dead_pods.iter().any(|dead| dead == pod));
    let unanswered = [
        "timed out",
        "temporarily unavailable",
        "No route to host",
        "unreachable",
    ]
    .iter()
    .any(|silence| reason.contains(silence));
    answered_by_dead || unanswered
}

#[test]
fn a_client_of_a_service_sees_no_failure_through_rollouts_failover_readiness_and_drain_and_only_the_dead_hosts_after_a_death()
 {
    let Some(mut cluster) = ContainerCluster::start_replicated(3, 3, |_, _| Vec::new()) else {
        return;
    };
    let echo = echo_binary();
    let mut images = Vec::new();
    for version in ["v1", "v2"] {
        let (image, _) = cluster.push_busybox("e2e/echo", version, |image| {
            image
                .host_binary("/bin/berth-echo", &echo)
                .expect("berth-echo's libraries")
        });
        images.push(image);
    }
    cluster.apply("echo", &manifest(&images[0], "v1"));
    wait_settled(&mut cluster, "v1");
    let (_, service) = common::http_get(cluster.api_port, "/api/v1/namespaces/default/services/echo");
    let cluster_ip: std::net::Ipv4Addr = service["spec"]["clusterIP"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .expect("the Service has a cluster IP");
    let target = SocketAddr::from((cluster_ip, 80));

    // The client runs on host-0; its sockets are the host's, its rules host-0's proxy's.
    let client_host = cluster.network.host(0).clone();
    let traffic = client_host
        .spawn_inside(move || Traffic::start(target, "/", RATE, REQUEST_TIMEOUT))
        .join()
        .expect("the client's thread")
        .expect("entering host-0");
    let mut timeline = Timeline {
        started: std::time::Instant::now(),
        marks: Vec::new(),
    };
    let mut steps = Vec::new();
    std::thread::sleep(Duration::from_secs(2));

    // 1. A rolling update to a new image, and back.
    let from = timeline.mark("1. rolling update to v2");
    cluster.apply("echo", &manifest(&images[1], "v2"));
    wait_settled(&mut cluster, "v2");
    timeline.mark("   v2 rolled out");
    cluster.kubectl_ok(&["rollout", "undo", "deployment/echo"]);
    wait_settled(&mut cluster, "v1");
    let to = timeline.mark("   rolled back to v1");
    steps.push(Step {
        name: "1. rolling update and rollback",
        from,
        to,
    });

    // 2. SIGKILL of the control-plane replica that leads.
    std::thread::sleep(Duration::from_secs(1));
    let leader = common::leader_record_holder(&cluster.server, 0).expect("a leadership record");
    let from = timeline.mark(format!(
        "2. kill -9 of the leading replica {}",
        cluster.server.replicas[leader].name
    ));
    cluster.server.kill(leader);
    let survivor = (0..3).find(|i| *i != leader).unwrap();
    cluster.use_api_of(survivor);
    let successor = eventually_blocking("a new leader", || {
        common::leader_record_holder(&cluster.server, survivor).filter(|holder| *holder != leader)
    });
    timeline.mark(format!("   {} leads", cluster.server.replicas[successor].name));
    // The new leader's controllers act: a scale-up and back, through it.
    cluster.kubectl_ok(&["scale", "deployment/echo", "--replicas=5"]);
    eventually_blocking("5 ready endpoints", || {
        (endpoints(&cluster).iter().filter(|e| e.is_ready).count() == 5).then_some(())
    });
    cluster.kubectl_ok(&["scale", "deployment/echo", "--replicas=4"]);
    wait_settled(&mut cluster, "v1");
    let to = timeline.mark("   scaled to 5 and back under the new leader");
    steps.push(Step {
        name: "2. leader killed",
        from,
        to,
    });

    // 3. One pod's readiness probe fails: it leaves the endpoints (new connections
    // no longer reach it), and comes back when it passes again.
    std::thread::sleep(Duration::from_secs(1));
    let unready = endpoints(&cluster)[0].pod.clone();
    let from = timeline.mark(format!("3. readiness of {unready} starts failing"));
    cluster.kubectl_ok(&["exec", &unready, "--", "touch", "/tmp/unready"]);
    eventually_blocking(&format!("{unready} to leave the ready endpoints"), || {
        endpoints(&cluster)
            .iter()
            .any(|e| e.pod == unready && !e.is_ready)
            .then_some(())
    });
    let left = timeline.mark(format!("   {unready} not ready in the EndpointSlice"));
    std::thread::sleep(Duration::from_secs(3));
    cluster.kubectl_ok(&["exec", &unready, "--", "rm", "/tmp/unready"]);
    eventually_blocking(&format!("{unready} to be ready again"), || {
        endpoints(&cluster)
            .iter()
            .any(|e| e.pod == unready && e.is_ready)
            .then_some(())
    });
    let to = timeline.mark(format!("   {unready} ready again"));
    steps.push(Step {
        name: "3. readiness failing on one pod",
        from,
        to,
    });
    let unready_window = (left + Duration::from_secs(1), left + Duration::from_secs(3));

    // 4. Drain the node with the most replicas (not the client's host).
    std::thread::sleep(Duration::from_secs(1));
    let drained = busiest_node(&cluster, &["host-0"]);
    let from = timeline.mark(format!("4. kubectl drain {drained}"));
    cluster.kubectl_ok(&[
        "drain",
        &drained,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
    ]);
    wait_settled(&mut cluster, "v1");
    let on_drained = echo_pods(&cluster)
        .iter()
        .filter(|p| p["spec"]["nodeName"] == drained.as_str())
        .count();
    assert_eq!(on_drained, 0, "pods left on the drained {drained}");
    cluster.kubectl_ok(&["uncordon", &drained]);
    let to = timeline.mark(format!("   {drained} drained, its pods elsewhere; uncordoned"));
    steps.push(Step {
        name: "4. drain of a node",
        from,
        to,
    });

    // 5. An agent host dies: cable, agent, containers.
    std::thread::sleep(Duration::from_secs(1));
    let victim_node = busiest_node(&cluster, &["host-0"]);
    let victim: usize = victim_node.strip_prefix("host-").unwrap().parse().unwrap();
    let dead_pods: Vec<String> = echo_pods(&cluster)
        .iter()
        .filter(|p| p["spec"]["nodeName"] == victim_node.as_str())
        .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
        .collect();
    assert!(!dead_pods.is_empty(), "{victim_node} runs none of the pods");
    let died = timeline.mark(format!("5. {victim_node} dies, with its pods {dead_pods:?}"));
    cluster.network.pull_cable(victim).expect("pulling the cable");
    cluster.agents[victim].kill();
    for id in cluster.runc_ids(victim) {
        let _ = Command::new(system_tool("runc"))
            .arg("--root")
            .arg(cluster.runc_root(victim))
            .args(["kill", &id, "KILL"])
            .output();
    }
    eventually_blocking(&format!("{victim_node}'s endpoints to leave the ready set"), || {
        endpoints(&cluster)
            .iter()
            .filter(|e| e.node == victim_node)
            .all(|e| !e.is_ready)
            .then_some(())
    });
    let dropped = timeline.mark(format!("   {victim_node}'s endpoints not ready"));
    std::thread::sleep(Duration::from_secs(4));
    let history = traffic.stop();
    let to = timeline.mark("   traffic stopped");
    steps.push(Step {
        name: "5. death of an agent host",
        from: died,
        to,
    });

    eprintln!("\n{}", history.summary(40));
    for step in &steps {
        eprintln!("{}", report(&history, step));
    }
    eprintln!(
        "the dead host's endpoints left {:.3} s after its death (grace {} s)",
        (dropped - died).as_secs_f64(),
        NODE_GRACE.as_secs()
    );

    // Up to the death (steps 1–4 and the pauses around them): not one failed request
    // (of those answered, or given up on, before it; the others are step 5's).
    let before_death = History {
        outcomes: history
            .outcomes
            .iter()
            .filter(|o| o.at + o.took < died)
            .cloned()
            .collect(),
    };
    if !before_death.failures().is_empty() {
        let step_of = |at: Duration| {
            steps
                .iter()
                .find(|s| s.from <= at && at < s.to)
                .map_or("between steps", |s| s.name)
        };
        let failures: Vec<String> = before_death
            .failures()
            .iter()
            .map(|f| format!("{} at {:.3} s: {f:?}", step_of(f.at), f.at.as_secs_f64()))
            .collect();
        panic!("failed requests before the death:\n{}", failures.join("\n"));
    }
    // Step 1 did serve the new version, and the rollback the old one again.
    let versions = history.between(steps[0].from, steps[0].to).answers();
    assert!(
        versions.keys().any(|a| a.starts_with("v2 ")),
        "no request reached v2: {versions:?}"
    );
    // Step 3: no new connection reached the unready pod a second after it left.
    let reached = answered_new(&history, unready_window.0, unready_window.1);
    assert!(
        !reached.contains(&unready),
        "new connections reached {unready} while it was not ready"
    );
    // Step 5: failures only of the dead host's pods, none sent after grace + 1 s.
    let deadline = died + NODE_GRACE + Duration::from_secs(1);
    let part = History {
        outcomes: history
            .outcomes
            .iter()
            .filter(|o| o.at + o.took >= died)
            .cloned()
            .collect(),
    };
    if let Some(last) = part.failures().last() {
        eprintln!(
            "step 5: {} failed requests, the last sent {:.3} s after the death",
            part.failures().len(),
            last.at.saturating_sub(died).as_secs_f64()
        );
    }
    for failure in part.failures() {
        assert!(
            is_the_dead_hosts(failure, &dead_pods),
            "a failure not of the dead host's pods: {failure:?}\n{}",
            part.summary(30)
        );
        assert!(
            failure.at <= deadline,
            "a failure {:.3} s after the death (grace {} s + 1 s): {failure:?}",
            (failure.at - died).as_secs_f64(),
            NODE_GRACE.as_secs()
        );
    }
}

/// The node other than `except` that runs the most echo pods.
fn busiest_node(cluster: &ContainerCluster, except: &[&str]) -> String {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for pod in echo_pods(cluster) {
        if let Some(node) = pod["spec"]["nodeName"].as_str()
            && !except.contains(&node)
        {
            *counts.entry(node.to_string()).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(node, n)| (*n, std::cmp::Reverse(node.clone())))
        .map(|(node, _)| node)
        .expect("a node other than the client's runs echo pods")
}
