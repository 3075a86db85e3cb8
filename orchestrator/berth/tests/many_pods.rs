//! Twenty thousand pods: listed through kubectl (in pages), by an agent that
//! restarts and by a new leader's caches, without an error and without anything
//! stalling. The pods are bound to a node that has no agent (and the grace period
//! is long), so nothing runs them and nothing evicts them.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use berth_testkit::eventually_blocking;
use common::*;
use serde_json::{Value, json};

const PODS: usize = 20_000;
const WRITERS: usize = 8;

/// One keep-alive HTTP/1.1 connection that POSTs JSON and reads the status.
struct Poster {
    stream: BufReader<TcpStream>,
}

impl Poster {
    fn new(port: u16) -> Poster {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Poster {
            stream: BufReader::new(stream),
        }
    }

    fn post(&mut self, path: &str, body: &str) -> u16 {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).unwrap();
        let mut status_line = String::new();
        self.stream.read_line(&mut status_line).unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).unwrap();
        status
    }
}

fn pod(i: usize) -> String {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p-{i:05}"), "namespace": "many", "labels": {"batch": (i % 10).to_string()}},
        "spec": {"nodeName": "ghost", "containers": [{"name": "c", "command": ["sleep", "1"]}]}
    })
    .to_string()
}

fn kubectl(cluster: &TestCluster, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .arg(format!("--server=http://127.0.0.1:{}", cluster.running_api_ports()[0]))
        .args(args)
        .env("KUBECONFIG", "/dev/null")
        .env("HOME", cluster.servers.dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn twenty_thousand_pods_are_listed_by_kubectl_a_restarted_agent_and_a_new_leader() {
    let mut cluster = TestCluster::start_with_grace("1h");
    wait_for_nodes(&mut cluster);
    let port = cluster.running_api_ports()[0];
    let mut setup = Poster::new(port);
    assert_eq!(setup.post("/api/v1/namespaces", r#"{"metadata":{"name":"many"}}"#), 201);

    let started = std::time::Instant::now();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            std::thread::spawn(move || {
                let mut poster = Poster::new(port);
                for i in (w..PODS).step_by(WRITERS) {
                    let status = poster.post("/api/v1/namespaces/many/pods", &pod(i));
                    assert_eq!(status, 201, "pod {i}");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    eprintln!("{PODS} pods created in {:?}", started.elapsed());

    // Pages through the API: every pod once, all at one resourceVersion.
    let mut names = Vec::new();
    let mut token = String::new();
    let mut version = None;
    loop {
        let (status, page) = cluster.get(&format!("/api/v1/namespaces/many/pods?limit=500&continue={token}"));
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 500);
        names.extend(
            items
                .iter()
                .map(|p| p["metadata"]["name"].as_str().unwrap().to_string()),
        );
        let page_version = page["metadata"]["resourceVersion"].clone();
        assert_eq!(*version.get_or_insert(page_version.clone()), page_version);
        match page["metadata"]["continue"].as_str() {
            Some(next) if !next.is_empty() => token = next.to_string(),
            _ => break,
        }
    }
    let expected: Vec<String> = (0..PODS).map(|i| format!("p-{i:05}")).collect();
    assert_eq!(names, expected);
    eprintln!("listed in pages after {:?}", started.elapsed());

    // kubectl lists in pages of 500 by default.
    if Command::new("kubectl").arg("version").arg("--client").output().is_ok() {
        let table = kubectl(&cluster, &["get", "pods", "-n", "many", "--no-headers"]);
        assert_eq!(table.lines().count(), PODS);
        let batch = kubectl(&cluster, &["get", "pods", "-n", "many", "-l", "batch=3", "-o", "name"]);
        assert_eq!(batch.lines().count(), PODS / 10);
    } else {
        eprintln!("kubectl is not installed: the kubectl part of this test is skipped");
    }

    eprintln!("kubectl done after {:?}", started.elapsed());
    // The agent restarts: it lists every pod (its own are none of these) and comes
    // back Ready.
    cluster.agents[0].kill();
    cluster.agents[0].start().unwrap();
    wait_for_nodes(&mut cluster);

    // The leader goes: the new one's caches list the twenty thousand, and its
    // loops work, placing a new deployment's pod on a live node.
    eprintln!("agent back after {:?}", started.elapsed());
    let leader = cluster.leader();
    cluster.servers.kill(leader);
    let marker = cluster.marker.clone();
    let manifest = cluster.write_manifest(
        "after.yaml",
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: after}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: after}}}}
  template:
    metadata: {{labels: {{app: after}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - {{name: main, command: [sleep, \"{marker}\"]}}
"
        ),
    );
    eventually_blocking("the deployment applied after the failover", || {
        cluster
            .berth(&["apply", "-f", manifest.to_str().unwrap()])
            .status
            .success()
            .then_some(())
    });
    eventually_blocking("the new leader runs the deployment's pod", || {
        let (status, pods) = cluster.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dafter");
        let running = pods["items"]
            .as_array()?
            .iter()
            .any(|p| p["status"]["phase"] == "Running");
        (status == 200 && running).then_some(())
    });
    eprintln!("new leader working after {:?}", started.elapsed());
    let (_, nodes) = cluster.get("/api/v1/nodes");
    let ready: Vec<&Value> = nodes["items"].as_array().unwrap().iter().collect();
    assert_eq!(ready.len(), 2);
    for (i, server) in cluster.servers.replicas.iter().enumerate() {
        if i == leader {
            continue;
        }
        let log = server.log_text();
        for line in log.lines() {
            assert!(
                !(line.contains("WARN") && (line.contains("list") || line.contains("watch"))),
                "{}: {line}",
                server.name
            );
        }
    }
}
