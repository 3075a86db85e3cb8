//! End to end on real processes: three `berth server` replicas and two `berth agent`s
//! on loopback, driven through the `berth` CLI and the REST API, with workloads that
//! are real child processes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

use berth_store::testing::free_port;

struct Proc {
    name: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(BERTH)
            .args(&self.args)
            .env("RUST_LOG", "info,openraft=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Panics with the process's log if it has exited (say, it could not bind a port).
    fn assert_running(&mut self) {
        if let Some(child) = &mut self.child
            && let Ok(Some(status)) = child.try_wait()
        {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            panic!("{} exited ({status}):\n{log}", self.name);
        }
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Server {
    proc: Proc,
    client_port: u16,
    api_port: u16,
}

struct TestCluster {
    dir: tempfile::TempDir,
    servers: Vec<Server>,
    agents: Vec<Proc>,
    /// Each workload of this cluster sleeps for this marker, so that its processes
    /// can be told from any other on the machine.
    marker: String,
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for agent in &mut self.agents {
            agent.kill9();
        }
        for server in &mut self.servers {
            server.proc.kill9();
        }
        // Whatever workloads are left (the agents were killed) go too.
        for pid in workload_pids(&self.marker) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        if std::thread::panicking() {
            eprintln!("logs kept in {}", self.dir.path().display());
            std::mem::forget(std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()));
        }
    }
}

impl TestCluster {
    fn start() -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16, u16)> = (0..3).map(|_| (free_port(), free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer, _))| format!("s{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers: Vec<Server> = ports
            .iter()
            .enumerate()
            .map(|(i, &(client, peer, api))| {
                let name = format!("s{i}");
                let args = vec![
                    "server".to_string(),
                    format!("--name={name}"),
                    format!("--data-dir={}", dir.path().join(&name).display()),
                    format!("--listen-client-urls=http://127.0.0.1:{client}"),
                    format!("--advertise-client-urls=http://127.0.0.1:{client}"),
                    format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
                    format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
                    format!("--initial-cluster={initial_cluster}"),
                    format!("--api-listen=127.0.0.1:{api}"),
                    "--node-monitor-grace-period=3s".to_string(),
                ];
                Server {
                    proc: Proc {
                        log: dir.path().join(format!("{name}.log")),
                        name,
                        args,
                        child: None,
                    },
                    client_port: client,
                    api_port: api,
                }
            })
            .collect();
        let stores = servers
            .iter()
            .map(|s| format!("http://127.0.0.1:{}", s.client_port))
            .collect::<Vec<_>>()
            .join(",");
        let agents = (0..2)
            .map(|j| {
                let name = format!("node-{j}");
                Proc {
                    args: vec![
                        "agent".into(),
                        format!("--name={name}"),
                        format!("--store={stores}"),
                        format!("--data-dir={}", dir.path().join(&name).display()),
                        format!("--listen=127.0.0.1:{}", free_port()),
                        "--cpu=2".into(),
                        "--memory=2Gi".into(),
                        "--lease-ttl=3s".into(),
                        "--restart-backoff=500ms".into(),
                    ],
                    log: dir.path().join(format!("{name}.log")),
                    name,
                    child: None,
                }
            })
            .collect();
        let mut cluster = TestCluster {
            marker: format!("{}.{}", 100_000 + std::process::id(), free_port()),
            dir,
            servers,
            agents,
        };
        for server in &mut cluster.servers {
            server.proc.start();
        }
        for agent in &mut cluster.agents {
            agent.start();
        }
        cluster
    }

    fn api(&self) -> String {
        self.servers
            .iter()
            .filter(|s| s.proc.child.is_some())
            .map(|s| format!("http://127.0.0.1:{}", s.api_port))
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
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// GET on the API of the first running server, as JSON.
    fn get(&self, path: &str) -> (u16, Value) {
        let server = self.servers.iter().find(|s| s.proc.child.is_some()).unwrap();
        http_get(server.api_port, path)
    }

    fn pods(&self) -> Vec<Value> {
        let (status, list) = self.get("/api/v1/namespaces/default/pods");
        assert_eq!(status, 200, "{list}");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// The name of the server that holds the leadership record.
    fn leader(&self) -> usize {
        let server = self.servers.iter().find(|s| s.proc.child.is_some()).unwrap();
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
            .iter()
            .position(|s| s.proc.name == name)
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

fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
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
    eventually(60, "two Ready nodes", || {
        for proc in cluster
            .servers
            .iter_mut()
            .map(|s| &mut s.proc)
            .chain(cluster.agents.iter_mut())
        {
            proc.assert_running();
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
    eventually(60, "4 running pods on 2 nodes", || {
        let by_node = running_by_node(&cluster);
        (by_node.values().sum::<usize>() == 4 && by_node.len() == 2).then_some(())
    });
    assert_eq!(
        running_by_node(&cluster).values().copied().collect::<Vec<_>>(),
        vec![2, 2]
    );
    eventually(20, "4 workload processes", || {
        (workload_pids(&marker).len() == 4).then_some(())
    });
    let table = stdout(&cluster.berth(&["get", "pods", "-o", "wide"]));
    assert!(table.starts_with("NAME"), "{table}");
    assert_eq!(table.matches("Running").count(), 4, "{table}");

    // kill -9 an agent: after the grace period its pods are replaced on the other node.
    cluster.agents[0].kill9();
    eventually(60, "4 running pods, all on node-1", || {
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
    cluster.agents[0].start();
    eventually(60, "the returning node to stop its evicted workloads", || {
        (workload_pids(&marker).len() == 4).then_some(())
    });
    wait_for_nodes(&mut cluster);
    assert_eq!(running_by_node(&cluster).get("node-1"), Some(&4));

    // kill -9 the leading server: a new leader takes over, the API answers through
    // the other replicas throughout, and there are still exactly 4 pods.
    let leader = cluster.leader();
    cluster.servers[leader].proc.kill9();
    let others: Vec<u16> = cluster
        .servers
        .iter()
        .filter(|s| s.proc.child.is_some())
        .map(|s| s.api_port)
        .collect();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        for port in &others {
            let (status, list) = http_get(*port, "/api/v1/namespaces/default/pods");
            assert_eq!(status, 200, "the API through the other replicas: {list}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let new_leader = eventually(30, "a new leader record", || {
        let l = cluster.leader();
        (l != leader).then_some(l)
    });
    assert_ne!(new_leader, leader);
    // Controllers resume on the new leader: scaling works, and converges exactly.
    assert!(stdout(&cluster.berth(&["scale", "deployment/sleeper", "--replicas", "6"])).contains("scaled"));
    eventually(60, "6 running pods", || {
        (running_by_node(&cluster).values().sum::<usize>() == 6 && sleeper_pods(&cluster) == 6).then_some(())
    });
    eventually(20, "6 workload processes", || {
        (workload_pids(&marker).len() == 6).then_some(())
    });
    stdout(&cluster.berth(&["scale", "deployment", "sleeper", "--replicas=2"]));
    eventually(60, "2 pods and 2 processes", || {
        (sleeper_pods(&cluster) == 2 && workload_pids(&marker).len() == 2).then_some(())
    });

    // Deleting the deployment removes its ReplicaSets, pods and processes.
    let deleted = stdout(&cluster.berth(&["delete", "deployment", "sleeper"]));
    assert!(deleted.contains("deleted"), "{deleted}");
    eventually(60, "every workload process to be gone", || {
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
    let crasher = eventually(60, "the crasher to restart 3 times", || {
        let (_, pod) = cluster.get("/api/v1/namespaces/default/pods/crasher");
        (pod["status"]["containerStatuses"][0]["restartCount"].as_i64()? >= 3).then_some(pod)
    });
    let status = &crasher["status"]["containerStatuses"][0];
    assert_eq!(status["lastState"]["terminated"]["exitCode"], 3, "{status}");
    let logs = stdout(&cluster.berth(&["logs", "crasher"]));
    assert!(logs.contains("crashing"), "{logs}");

    let huge = eventually(30, "the huge pod to be explained", || {
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
    cluster.servers[1].proc.kill9();
    cluster.servers[2].proc.kill9();
    let (status, body) = http_get(cluster.servers[0].api_port, "/api/v1/namespaces/default/pods");
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
