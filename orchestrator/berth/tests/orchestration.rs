//! End to end on real processes: three `berth server` replicas and two `berth agent`s
//! on loopback, driven through the `berth` CLI and the REST API, with workloads that
//! are real child processes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth_testkit::{Cluster, ClusterSpec, Process, QUIET_RAFT_LOG, System, eventually_blocking, free_port};
use serde_json::Value;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

struct TestCluster {
    /// `berth server` replicas; their temporary dir holds the agents' dirs and logs too.
    servers: Cluster,
    /// The REST API port of each server.
    api_ports: Vec<u16>,
    agents: Vec<Process>,
    /// Each workload of this cluster sleeps for this marker, so that its processes
    /// can be told from any other on the machine.
    marker: String,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            agent.kill();
        }
        // Whatever workloads are left (the agents were killed) go too.
        for pid in workload_pids(&self.marker) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        // The servers go with `servers`, which keeps the logs if a test panicked.
    }
}

impl TestCluster {
    fn start() -> TestCluster {
        let spec = ClusterSpec::new(System::BerthServer, BERTH, 3)
            .args(["--node-monitor-grace-period=3s"])
            .env("RUST_LOG", QUIET_RAFT_LOG);
        let mut servers = Cluster::new(spec).unwrap();
        let api_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        for (server, api_port) in servers.replicas.iter_mut().zip(&api_ports) {
            server.args = vec![format!("--api-listen=127.0.0.1:{api_port}")];
        }
        let stores = servers.endpoints().join(",");
        let dir = servers.dir().to_path_buf();
        let agents = (0..2)
            .map(|j| {
                let name = format!("node-{j}");
                Process::new(&name, BERTH, dir.join(format!("{name}.log")))
                    .with_args([
                        "agent".into(),
                        format!("--name={name}"),
                        format!("--store={stores}"),
                        format!("--data-dir={}", dir.join(&name).display()),
                        format!("--listen=127.0.0.1:{}", free_port()),
                        "--cpu=2".into(),
                        "--memory=2Gi".into(),
                        "--lease-ttl=3s".into(),
                        "--restart-backoff=500ms".into(),
                    ])
                    .with_env("RUST_LOG", QUIET_RAFT_LOG)
            })
            .collect();
        let mut cluster = TestCluster {
            marker: format!("{}.{}", 100_000 + std::process::id(), free_port()),
            servers,
            api_ports,
            agents,
        };
        cluster.servers.start_all().unwrap();
        for agent in &mut cluster.agents {
            agent.start().unwrap();
        }
        cluster
    }

    /// The API ports of the running servers.
    fn running_api_ports(&self) -> Vec<u16> {
        self.servers
            .replicas
            .iter()
            .zip(&self.api_ports)
            .filter(|(server, _)| server.is_running())
            .map(|(_, port)| *port)
            .collect()
    }

    fn api(&self) -> String {
        self.running_api_ports()
            .iter()
            .map(|port| format!("http://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn berth(&self, args: &[&str]) -> Output {
        Command::new(BERTH)
            .args(args)
            .env("BERTH_SERVER", self.api())
            .output()
            .unwrap()
    }

    fn write_manifest(&self, name: &str, text: &str) -> PathBuf {
        let path = self.servers.dir().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// GET on the API of the first running server, as JSON.
    fn get(&self, path: &str) -> (u16, Value) {
        http_get(self.running_api_ports()[0], path)
    }

    fn pods(&self) -> Vec<Value> {
        let (status, list) = self.get("/api/v1/namespaces/default/pods");
        assert_eq!(status, 200, "{list}");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// The name of the server that holds the leadership record.
    fn leader(&self) -> usize {
        let server = self.servers.replicas.iter().find(|s| s.is_running()).unwrap();
        let out = Command::new("etcdctl")
            .args([
                "--endpoints",
                &format!("127.0.0.1:{}", server.client_port),
                "get",
                "/berth/leader",
                "--print-value-only",
            ])
            .env("ETCDCTL_API", "3")
            .output()
            .expect("etcdctl (the test script installs it)");
        let value = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let name = value.split_whitespace().nth(1).unwrap_or_default().to_string();
        self.servers
            .replicas
            .iter()
            .position(|s| s.name == name)
            .unwrap_or_else(|| panic!("no leader record: {value:?}"))
    }
}

fn http_get(port: u16, path: &str) -> (u16, Value) {
    let attempt = || -> std::io::Result<(u16, Value)> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(15)))?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_string()
        };
        Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    };
    attempt().unwrap_or((0, Value::Null))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// PIDs of this cluster's workloads: `sleep <marker>` processes.
fn workload_pids(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.len() >= 2 && args[0].ends_with(b"sleep") && args[1] == marker.as_bytes() {
            let zombie = std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|s| s.contains(") Z "));
            if !zombie {
                pids.push(pid);
            }
        }
    }
    pids
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "berth failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn deployment(marker: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: sleeper
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: sleeper
  template:
    metadata:
      labels:
        app: sleeper
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        command: [\"sleep\", \"{marker}\"]
        resources:
          requests:
            cpu: 200m
            memory: 64Mi
"
    )
}

/// Running pods of the deployment, by node.
fn running_by_node(cluster: &TestCluster) -> std::collections::BTreeMap<String, usize> {
    let mut by_node = std::collections::BTreeMap::new();
    for pod in cluster.pods() {
        if pod["metadata"]["labels"]["app"] == "sleeper" && pod["status"]["phase"] == "Running" {
            *by_node
                .entry(pod["spec"]["nodeName"].as_str().unwrap_or_default().to_string())
                .or_insert(0) += 1;
        }
    }
    by_node
}

fn sleeper_pods(cluster: &TestCluster) -> usize {
    cluster
        .pods()
        .iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "sleeper")
        .count()
}

fn wait_for_nodes(cluster: &mut TestCluster) {
    eventually_blocking("two Ready nodes", || {
        if let Err(exited) = cluster.servers.check_running() {
            panic!("{exited:#}");
        }
        for agent in &mut cluster.agents {
            agent.assert_running();
        }
        let (status, nodes) = cluster.get("/api/v1/nodes");
        let ready = nodes["items"]
            .as_array()?
            .iter()
            .filter(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
            })
            .count();
        (status == 200 && ready == 2).then_some(())
    });
}

#[test]
fn deploy_spread_survive_node_and_leader_failures_scale_and_delete() {
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();
    let manifest = cluster.write_manifest("sleeper.yaml", &deployment(&marker, 4));
    let applied = stdout(&cluster.berth(&["apply", "-f", manifest.to_str().unwrap()]));
    assert!(applied.contains("deployment.apps/sleeper created"), "{applied}");

    // Four processes run, spread over both nodes, and the pods say Running.
    eventually_blocking("4 running pods on 2 nodes", || {
        let by_node = running_by_node(&cluster);
        (by_node.values().sum::<usize>() == 4 && by_node.len() == 2).then_some(())
    });
    assert_eq!(
        running_by_node(&cluster).values().copied().collect::<Vec<_>>(),
        vec![2, 2]
    );
    eventually_blocking("4 workload processes", || {
        (workload_pids(&marker).len() == 4).then_some(())
    });
    let table = stdout(&cluster.berth(&["get", "pods", "-o", "wide"]));
    assert!(table.starts_with("NAME"), "{table}");
    assert_eq!(table.matches("Running").count(), 4, "{table}");

    // kill -9 an agent: after the grace period its pods are replaced on the other node.
    cluster.agents[0].kill();
    eventually_blocking("4 running pods, all on node-1", || {
        (running_by_node(&cluster).get("node-1") == Some(&4) && sleeper_pods(&cluster) == 4).then_some(())
    });
    let (_, node) = cluster.get("/api/v1/nodes/node-0");
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
        .unwrap();
    assert_eq!(ready["status"], "False", "{node}");
    // The dead agent's processes are still there (nothing could stop them); when it
    // comes back it stops them and does not bring the evicted pods back.
    assert_eq!(workload_pids(&marker).len(), 6);
    cluster.agents[0].start().unwrap();
    eventually_blocking("the returning node to stop its evicted workloads", || {
        (workload_pids(&marker).len() == 4).then_some(())
    });
    wait_for_nodes(&mut cluster);
    assert_eq!(running_by_node(&cluster).get("node-1"), Some(&4));

    // kill -9 the leading server: a new leader takes over, the API answers through
    // the other replicas throughout, and there are still exactly 4 pods.
    let leader = cluster.leader();
    cluster.servers.kill(leader);
    let others = cluster.running_api_ports();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        for port in &others {
            let (status, list) = http_get(*port, "/api/v1/namespaces/default/pods");
            assert_eq!(status, 200, "the API through the other replicas: {list}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let new_leader = eventually_blocking("a new leader record", || {
        let l = cluster.leader();
        (l != leader).then_some(l)
    });
    assert_ne!(new_leader, leader);
    // Controllers resume on the new leader: scaling works, and converges exactly.
    assert!(stdout(&cluster.berth(&["scale", "deployment/sleeper", "--replicas", "6"])).contains("scaled"));
    eventually_blocking("6 running pods", || {
        (running_by_node(&cluster).values().sum::<usize>() == 6 && sleeper_pods(&cluster) == 6).then_some(())
    });
    eventually_blocking("6 workload processes", || {
        (workload_pids(&marker).len() == 6).then_some(())
    });
    stdout(&cluster.berth(&["scale", "deployment", "sleeper", "--replicas=2"]));
    eventually_blocking("2 pods and 2 processes", || {
        (sleeper_pods(&cluster) == 2 && workload_pids(&marker).len() == 2).then_some(())
    });

    // Deleting the deployment removes its ReplicaSets, pods and processes.
    let deleted = stdout(&cluster.berth(&["delete", "deployment", "sleeper"]));
    assert!(deleted.contains("deleted"), "{deleted}");
    eventually_blocking("every workload process to be gone", || {
        (workload_pids(&marker).is_empty() && sleeper_pods(&cluster) == 0).then_some(())
    });
    let (_, sets) = cluster.get("/apis/apps/v1/namespaces/default/replicasets");
    assert_eq!(sets["items"].as_array().map(Vec::len), Some(0), "{sets}");
}

#[test]
fn crashing_containers_back_off_and_oversized_pods_stay_pending_with_a_reason() {
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let manifest = cluster.write_manifest(
        "pods.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: crasher
spec:
  containers:
  - name: main
    command: [\"sh\", \"-c\", \"echo crashing; exit 3\"]
---
apiVersion: v1
kind: Pod
metadata:
  name: huge
spec:
  containers:
  - name: main
    command: [\"sleep\", \"1000\"]
    resources:
      requests:
        memory: 100Gi
",
    );
    stdout(&cluster.berth(&["apply", "-f", manifest.to_str().unwrap()]));
    let crasher = eventually_blocking("the crasher to restart 3 times", || {
        let (_, pod) = cluster.get("/api/v1/namespaces/default/pods/crasher");
        (pod["status"]["containerStatuses"][0]["restartCount"].as_i64()? >= 3).then_some(pod)
    });
    let status = &crasher["status"]["containerStatuses"][0];
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 3, "{status}");
    let logs = stdout(&cluster.berth(&["logs", "crasher"]));
    assert!(logs.contains("crashing"), "{logs}");

    let huge = eventually_blocking("the huge pod to be explained", || {
        let (_, pod) = cluster.get("/api/v1/namespaces/default/pods/huge");
        let condition = pod["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled")?
            .clone();
        (condition["status"] == "False").then_some((pod, condition))
    });
    assert_eq!(huge.0["status"]["phase"], "Pending");
    assert_eq!(huge.0["spec"]["nodeName"], Value::Null);
    let message = huge.1["message"].as_str().unwrap();
    assert!(message.starts_with("0/2 nodes available"), "{message}");
    assert!(message.contains("2 insufficient memory"), "{message}");
    let described = stdout(&cluster.berth(&["describe", "pod", "huge"]));
    assert!(described.contains("insufficient memory"), "{described}");
}

#[test]
fn bad_input_is_refused_by_name_and_a_replica_without_quorum_says_unavailable() {
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let bad = cluster.write_manifest(
        "bad.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: Bad_Name
spec:
  replicas: 1
  selector:
    matchLabels: {app: a}
  template:
    metadata:
      labels: {app: b}
    spec:
      containers:
      - name: main
        command: [\"true\"]
        resources:
          requests:
            memory: 12Mb
",
    );
    let out = cluster.berth(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for field in ["metadata.name", "spec.selector", "resources.requests.memory"] {
        assert!(err.contains(field), "the error names {field}: {err}");
    }
    let (status, list) = cluster.get("/apis/apps/v1/namespaces/default/deployments");
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    let out = cluster.berth(&["get", "deployment", "nope"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("NotFound"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A replica that cannot reach a quorum says so instead of answering stale data.
    let mut cluster = cluster;
    cluster.servers.kill(1);
    cluster.servers.kill(2);
    let (status, body) = http_get(cluster.api_ports[0], "/api/v1/namespaces/default/pods");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reason"], "ServiceUnavailable", "{body}");
    assert!(
        body["message"].as_str().unwrap_or_default().contains("unavailable"),
        "{body}"
    );
    let out = cluster.berth(&["get", "pods"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ServiceUnavailable"), "{err}");
}
