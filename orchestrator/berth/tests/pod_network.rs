//! The pod network end to end, on two agents each on its own test host (a network
//! namespace on a bridge): a pod on one host reaches a pod on the other by its pod IP,
//! a hostPort reaches a pod from outside its host, and two containers of one pod
//! share localhost and /dev/shm. Needs root, runc, the CNI plugins and
//! docker-registry (skipped without them on a developer's machine, failing under CI).
//!
//! The pods' grace period is 1 s: their PID 1 (`sleep`, `httpd`) has no SIGTERM
//! handler, so it ignores the signal, and the default 30 s would only slow the tests.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use berth_testkit::eventually_blocking;
use common::containers::ContainerCluster;

const PAGE: &str = "hello from the web pod";

/// One GET of `/` at `address`, the body if the answer came.
fn http_get_text(address: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

#[test]
fn pods_reach_each_other_across_hosts_by_pod_ip_through_host_ports_and_over_localhost() {
    let Some(mut cluster) = ContainerCluster::start(2) else {
        return;
    };
    let (image, _) = cluster.push_busybox("e2e/web", "1.0", |image| {
        image
            .dir("/www", 0o755)
            .contents("/www/index.html", format!("{PAGE}\n"), 0o644)
    });
    // Host ports are beyond the baseline Pod Security level berth enforces by default.
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        "default",
        "pod-security.kubernetes.io/enforce=privileged",
    ]);
    // On host-1: a web server, and beside it a container that reads it over localhost.
    cluster.apply(
        "web",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  nodeName: host-1
  containers:
  - name: httpd
    image: {image}
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports:
    - containerPort: 8080
      hostPort: 18090
  - name: sidecar
    image: {image}
    command: ["sh", "-c", "while true; do timeout 3 wget -q -O - http://127.0.0.1:8080/; sleep 1; done"]
"#
        ),
    );
    let web = cluster.wait_running("web");
    let web_ip = web["status"]["podIP"].as_str().expect("the pod has an IP").to_string();
    let block = cluster
        .kubectl_ok(&["get", "node", "host-1", "-o", "jsonpath={.spec.podCIDR}"])
        .trim()
        .to_string();
    assert!(
        web_ip.starts_with(block.rsplit_once('.').map(|(net, _)| net).unwrap_or("?")),
        "{web_ip} from host-1's block {block}"
    );
    cluster.wait_log("web", "sidecar", PAGE);
    // ... and the pod's one /dev/shm.
    cluster.kubectl_ok(&[
        "exec",
        "web",
        "-c",
        "httpd",
        "--",
        "sh",
        "-c",
        "echo from-httpd > /dev/shm/shared",
    ]);
    let shared = cluster.kubectl_ok(&["exec", "web", "-c", "sidecar", "--", "cat", "/dev/shm/shared"]);
    assert_eq!(shared, "from-httpd\n");

    // From host-0, by the pod's IP, routed between the hosts.
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
    command: ["sh", "-c", "while true; do timeout 3 wget -q -O - http://{web_ip}:8080/; sleep 1; done"]
"#
        ),
    );
    let client = cluster.wait_running("client");
    assert_ne!(client["status"]["podIP"], web["status"]["podIP"]);
    cluster.wait_log("client", "wget", PAGE);

    // From outside host-1 (this test, in the machine's own namespace), by its hostPort.
    let host_port: SocketAddr = (cluster.network.host(1).ip, 18090).into();
    eventually_blocking("the hostPort answers", || {
        http_get_text(host_port).filter(|answer| answer.contains(PAGE))
    });
    cluster.delete_pod("client");
    cluster.delete_pod("web");
    eventually_blocking("the hostPort goes with its pod", || {
        http_get_text(host_port)
            .is_none_or(|answer| !answer.contains(PAGE))
            .then_some(())
    });
}
