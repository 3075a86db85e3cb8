//! The service proxy end to end, on two agents each on its own test host: a
//! Deployment's pod on host-1 behind a NodePort Service; a pod on host-0 reaches it
//! through the cluster IP, host-0 itself does, both hosts' NodePorts do from
//! outside, the pod reaches itself through its Service, the rules follow the
//! EndpointSlice, and once the agents stop their hosts hold none of the proxy's
//! rules. Needs root, runc, the CNI plugins, iptables and docker-registry (skipped
//! without them on a developer's machine, failing under CI).
//!
//! The Service has no selector, so its EndpointSlice is the test's to write (as a
//! user's for a Service without a selector; the EndpointSlice controller keeps
//! only those of Services with one): it lists the Deployment's pod, then none,
//! then the pod again. The Service asks for its cluster IP and node port.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use berth_testkit::eventually_blocking;
use common::containers::ContainerCluster;

const PAGE: &str = "hello through the service";
const CLUSTER_IP: &str = "10.96.0.80";
const NODE_PORT: u16 = 30080;

/// One GET of `/` at `address`, the answer if it came.
fn http_get_text(address: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// The Service's EndpointSlice, listing `pod_ips` on host-1 as ready.
fn slice(pod_ips: &[&str]) -> String {
    let endpoints: String = pod_ips
        .iter()
        .map(|ip| format!("- addresses: [\"{ip}\"]\n  nodeName: host-1\n  conditions: {{ready: true}}\n"))
        .collect();
    let endpoints = if endpoints.is_empty() {
        "[]\n".to_string()
    } else {
        format!("\n{endpoints}")
    };
    format!(
        r#"apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
- port: 8080
  protocol: TCP
endpoints: {endpoints}"#
    )
}

/// `kubectl exec pod -- wget` of the cluster IP: its output and error output.
fn wget_in(cluster: &ContainerCluster, pod: &str) -> String {
    let url = format!("http://{CLUSTER_IP}/");
    let out = cluster.kubectl(&["exec", pod, "--", "timeout", "5", "wget", "-q", "-O", "-", &url]);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_service_reaches_a_deployments_pod_across_hosts_and_its_rules_go_with_the_agents() {
    let Some(mut cluster) = ContainerCluster::start(2) else {
        return;
    };
    let (image, _) = cluster.push_busybox("e2e/web", "1.0", |image| {
        image
            .dir("/www", 0o755)
            .contents("/www/index.html", format!("{PAGE}\n"), 0o644)
    });
    cluster.apply(
        "web",
        &format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      nodeSelector: {{kubernetes.io/hostname: host-1}}
      containers:
      - name: httpd
        image: {image}
        command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  clusterIP: {CLUSTER_IP}
  ports:
  - port: 80
    targetPort: 8080
    nodePort: {NODE_PORT}
"#
        ),
    );
    let web = eventually_blocking("the Deployment's pod", || {
        let name = cluster.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ]);
        (!name.trim().is_empty()).then(|| name.trim().to_string())
    });
    let pod = cluster.wait_running(&web);
    let web_ip = pod["status"]["podIP"].as_str().expect("the pod has an IP").to_string();
    cluster.apply("web-slice", &slice(&[&web_ip]));

    // A pod on host-0, through the cluster IP, to host-1.
    cluster.apply(
        "client",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  nodeName: host-0
  containers:
  - name: wget
    image: {image}
    command: ["sh", "-c", "while true; do timeout 3 wget -q -O - http://{CLUSTER_IP}/; sleep 1; done"]
"#
        ),
    );
    cluster.wait_running("client");
    cluster.wait_log("client", "wget", PAGE);

    // Host-0 itself, through the cluster IP.
    let host_0 = cluster.network.host(0).clone();
    eventually_blocking("host-0 reaches the cluster IP", || {
        let out = host_0
            .command("timeout")
            .args([
                "5",
                "busybox",
                "wget",
                "-q",
                "-O",
                "-",
                &format!("http://{CLUSTER_IP}/"),
            ])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).contains(PAGE).then_some(())
    });
    // Both hosts' NodePorts, from outside (this test, in the machine's namespace).
    for host in 0..2 {
        let node_port: SocketAddr = (cluster.network.host(host).ip, NODE_PORT).into();
        eventually_blocking(&format!("host-{host}'s NodePort answers"), || {
            http_get_text(node_port).filter(|answer| answer.contains(PAGE))
        });
    }
    // The pod through its own Service (hairpin).
    eventually_blocking("the pod reaches itself through its Service", || {
        wget_in(&cluster, &web).contains(PAGE).then_some(())
    });

    // Without endpoints, refused at once; with them again, answered.
    cluster.apply("web-slice", &slice(&[]));
    eventually_blocking("a Service without endpoints refuses", || {
        wget_in(&cluster, "client").contains("refused").then_some(())
    });
    cluster.apply("web-slice", &slice(&[&web_ip]));
    eventually_blocking("the endpoint is back", || {
        wget_in(&cluster, "client").contains(PAGE).then_some(())
    });

    // Stopped agents leave none of the proxy's rules on their hosts.
    for (i, agent) in cluster.agents.iter_mut().enumerate() {
        agent.stop(Duration::from_secs(20));
        let host = cluster.network.host(i);
        let saved = host.command("iptables-save").output().expect("iptables-save");
        let saved = String::from_utf8_lossy(&saved.stdout);
        let left: Vec<&str> = saved
            .lines()
            .filter(|l| l.contains("BERTH-") && !l.contains("BERTH-PEERS-"))
            .collect();
        assert!(left.is_empty(), "host-{i} keeps the proxy's rules: {left:#?}");
        let route = host.ip(&["route", "show", "10.96.0.0/12"]).expect("ip route");
        assert_eq!(route.trim(), "", "host-{i} keeps the service CIDR's route");
    }
}
