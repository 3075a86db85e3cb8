//! Hollow nodes at the size: one `berth agent --hollow N` process (N from
//! BERTH_HOLLOW_NODES, 500 by default) against three replicas, Deployments of
//! BERTH_HOLLOW_PODS pods in all (5000 by default: a debug build places them in
//! about 70 s on two cores, alone): every Node Ready, every pod
//! Running and Ready at an address of its node's range, and each hollow node's watch
//! delivered its own pods only (its counters on the agent's /metrics). Scaling down
//! then shows the hollow nodes finishing the pods whose deletion began.
//!
//! Smaller runs by hand: `BERTH_HOLLOW_NODES=100 BERTH_HOLLOW_PODS=400`.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use berth_testkit::{Process, QUIET_RAFT_LOG, free_port};
use common::*;
use serde_json::{Value, json};

const DEPLOYMENTS: usize = 4;

/// Polls `check` until it answers; a generous bound, for a cluster that hangs.
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check() {
            eprintln!("{what}: after {:.1} s", started.elapsed().as_secs_f64());
            return value;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "hung waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The hollow agent's /metrics, as `series{node="..."}` → value.
fn metrics(port: u16) -> BTreeMap<(String, String), u64> {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return BTreeMap::new();
    };
    stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_default();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, node) = series.split_once("{node=\"")?;
            Some((
                (name.to_string(), node.trim_end_matches("\"}").to_string()),
                value.parse().ok()?,
            ))
        })
        .collect()
}

fn per_node(metrics: &BTreeMap<(String, String), u64>, name: &str) -> BTreeMap<String, u64> {
    (metrics.iter())
        .filter(|((series, _), _)| series == name)
        .map(|((_, node), value)| (node.clone(), *value))
        .collect()
}

fn deployment(name: &str, replicas: usize) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "hollow.example/app:1",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
            },
        },
    })
}

fn condition(object: &Value, type_: &str) -> bool {
    (object["status"]["conditions"].as_array().into_iter().flatten())
        .any(|c| c["type"] == type_ && c["status"] == "True")
}

#[test]
fn hollow_nodes_run_hundreds_of_pods_and_each_watches_only_its_own() {
    let nodes = env_count("BERTH_HOLLOW_NODES", 500);
    let pods = env_count("BERTH_HOLLOW_PODS", 5000);
    let mut cluster = TestCluster::new("40s");
    cluster.agents.clear();
    cluster.servers.start_all().unwrap();
    let api = cluster.api();
    let port = cluster.running_api_ports()[0];
    let dir = cluster.servers.dir().to_path_buf();
    let kubeconfig = dir.join("hollow.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: berth\n  cluster:\n    server: {api}\n\
             users:\n- name: hollow\n  user: {{}}\ncontexts:\n- name: hollow\n  context:\n    cluster: berth\n    user: hollow\n\
             current-context: hollow\n"
        ),
    )
    .unwrap();
    let metrics_port = free_port();
    let mut hollow = Process::new("hollow", BERTH, dir.join("hollow.log"))
        .with_args([
            "agent".to_string(),
            format!("--hollow={nodes}"),
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--listen=127.0.0.1:{metrics_port}"),
            "--hollow-cpu=8".into(),
            "--hollow-memory=32Gi".into(),
            "--labels=tier=hollow".into(),
            "--lease-ttl=20s".into(),
        ])
        .with_env("RUST_LOG", QUIET_RAFT_LOG);
    hollow.start().unwrap();
    cluster.agents.push(hollow);

    wait_for("every hollow Node Ready", || {
        let (status, list) = http_get(port, "/api/v1/nodes?labelSelector=tier%3Dhollow");
        let items = list["items"].as_array().cloned().unwrap_or_default();
        (status == 200 && items.len() == nodes && items.iter().all(|n| condition(n, "Ready"))).then_some(())
    });
    let (_, node) = http_get(port, "/api/v1/nodes/hollow-0");
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/hostname"], "hollow-0");
    assert_eq!(node["status"]["capacity"]["pods"], "110");
    assert_eq!(node["status"]["capacity"]["cpu"], "8");
    let (status, lease) = http_get(
        port,
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/hollow-0",
    );
    assert_eq!(status, 200, "{lease}");
    assert_eq!(lease["spec"]["holderIdentity"], "hollow-0");
    // Marked not Ready while its Lease is renewed (as the node lifecycle controller
    // marks a node whose renewals it saw late), a hollow node writes it Ready again.
    let (_, mut marked) = http_get(port, "/api/v1/nodes/hollow-1");
    marked["status"]["conditions"] = json!([
        {"type": "Ready", "status": "False", "reason": "NodeStatusUnknown", "message": "marked by the test"}
    ]);
    let (status, body) = http(port, "PUT", "/api/v1/nodes/hollow-1/status", Some(&marked));
    assert_eq!(status, 200, "{body}");
    wait_for("hollow-1 Ready again", || {
        let (_, node) = http_get(port, "/api/v1/nodes/hollow-1");
        condition(&node, "Ready").then_some(())
    });

    let per_deployment = pods / DEPLOYMENTS;
    for d in 0..DEPLOYMENTS {
        let name = format!("web-{d}");
        let (status, body) = http(
            port,
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            Some(&deployment(&name, per_deployment)),
        );
        assert_eq!(status, 201, "{body}");
    }
    let total = per_deployment * DEPLOYMENTS;
    let listed = wait_for("every pod Running and Ready on a hollow node", || {
        let (status, list) = http_get(port, "/api/v1/namespaces/default/pods");
        let items = list["items"].as_array().cloned().unwrap_or_default();
        let running = items
            .iter()
            .filter(|p| p["status"]["phase"] == "Running" && condition(p, "Ready"))
            .count();
        (status == 200 && items.len() == total && running == total).then_some(items)
    });
    let mut on_node: BTreeMap<String, u64> = BTreeMap::new();
    for pod in &listed {
        let node = pod["spec"]["nodeName"].as_str().unwrap().to_string();
        let index: u32 = node.strip_prefix("hollow-").unwrap().parse().unwrap();
        // Node i's addresses: 100.64.0.0/10 in blocks of 128 (110 pods and one).
        let ip: std::net::Ipv4Addr = pod["status"]["podIP"].as_str().unwrap().parse().unwrap();
        let block = (u32::from(ip) - u32::from(std::net::Ipv4Addr::new(100, 64, 0, 0))) / 128;
        assert_eq!(block, index, "{} at {ip} on {node}", pod["metadata"]["name"]);
        let app = &pod["status"]["containerStatuses"][0];
        assert!(app["state"]["running"]["startedAt"].is_string(), "{app}");
        *on_node.entry(node).or_default() += 1;
    }
    let addresses: std::collections::BTreeSet<&str> =
        listed.iter().map(|p| p["status"]["podIP"].as_str().unwrap()).collect();
    assert_eq!(addresses.len(), total, "every pod its own address");

    // Each node's watch: its own pods, and only those.
    let seen = wait_for("the hollow nodes' counters", || {
        let seen = metrics(metrics_port);
        let bound = per_node(&seen, "berth_hollow_pods");
        (bound.len() == nodes && bound.iter().all(|(n, c)| on_node.get(n).copied().unwrap_or(0) == *c)).then_some(seen)
    });
    let foreign = per_node(&seen, "berth_hollow_foreign_pod_events_total");
    assert!(foreign.values().all(|c| *c == 0), "events of others' pods: {foreign:?}");
    let events = per_node(&seen, "berth_hollow_pod_events_total");
    for (node, count) in &on_node {
        assert!(
            events[node] >= *count,
            "{node}: {} events for {count} pods",
            events[node]
        );
    }
    let busy = on_node.len();
    assert!(
        busy * 2 > nodes,
        "the pods spread over the nodes: {busy} of {nodes} have some"
    );

    // Scaling one Deployment to zero: its pods' deletion begins, the hollow nodes
    // finish them.
    let out = cluster.berth(&["scale", "deployment/web-0", "--replicas", "0"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for("web-0's pods finished", || {
        let (status, list) = http_get(port, "/api/v1/namespaces/default/pods");
        let items = list["items"].as_array().cloned().unwrap_or_default();
        (status == 200 && items.len() == total - per_deployment).then_some(())
    });
    let finished: u64 = per_node(&metrics(metrics_port), "berth_hollow_pods_finished_total")
        .values()
        .sum();
    assert_eq!(finished, per_deployment as u64, "finished by the hollow nodes");
}
