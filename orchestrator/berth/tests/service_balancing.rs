//! What the service proxy does to real traffic, on one cluster of two agents each on
//! its own test host: a Deployment of two busybox httpd pods, each answering with its
//! own name (on 8080) and `alt <name>` (on 8081), behind two Services.
//!
//! - `web`, three ports: port 80 to targetPort 8080, port 81 to targetPort 8081 by
//!   number and port 82 to the named targetPort `alt` (8081). Many new connections
//!   from host-0 to port 80 reach both pods; ports 81 and 82 reach the second server.
//! - `sticky`, `sessionAffinity: ClientIP`: every new connection from host-0 reaches
//!   the same pod.
//!
//! The client is this test's own code in host-0's network namespace, so every
//! connection is a new one from the same address. Needs root, runc, the CNI plugins,
//! iptables and docker-registry (skipped without them on a developer's machine,
//! failing under CI).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use berth_testkit::eventually_blocking;
use berth_testkit::hosts::Host;
use common::containers::ContainerCluster;

/// New connections per measured batch.
const CONNECTIONS: usize = 100;

/// One GET of `/` on a new connection to `address`: the answer's body, or why none came.
fn get_body(address: SocketAddr) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(stream, "GET / HTTP/1.0\r\nHost: {address}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).map_err(|e| e.to_string())?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP answer: {answer:?}"))?;
    if !head.starts_with("HTTP/1.") || !head.contains(" 200 ") {
        return Err(format!("not 200: {head:?}"));
    }
    Ok(body.trim().to_string())
}

/// `connections` GETs of `address` from `host`, each on a new connection, one after
/// another: how many times each body came back, and the failures.
fn from_host(host: &Host, address: SocketAddr, connections: usize) -> (BTreeMap<String, usize>, Vec<String>) {
    host.spawn_inside(move || {
        let mut bodies = BTreeMap::<String, usize>::new();
        let mut failures = Vec::new();
        for _ in 0..connections {
            match get_body(address) {
                Ok(body) => *bodies.entry(body).or_default() += 1,
                Err(e) => failures.push(e),
            }
        }
        (bodies, failures)
    })
    .join()
    .expect("the client's thread")
    .expect("entering the host's namespace")
}

fn manifest(image: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: {image}
        command:
        - sh
        - -c
        - |
          mkdir -p /www /alt
          hostname > /www/index.html
          echo "alt $(hostname)" > /alt/index.html
          httpd -p 8081 -h /alt
          exec httpd -f -p 8080 -h /www
        ports:
        - {{name: web, containerPort: 8080}}
        - {{name: alt, containerPort: 8081}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports:
  - {{name: http, port: 80, targetPort: 8080}}
  - {{name: alt-number, port: 81, targetPort: 8081}}
  - {{name: alt-name, port: 82, targetPort: alt}}
---
apiVersion: v1
kind: Service
metadata:
  name: sticky
spec:
  selector: {{app: web}}
  sessionAffinity: ClientIP
  ports:
  - {{port: 80, targetPort: web}}
"#
    )
}

/// The Service's cluster IP, as the API allocated it.
fn cluster_ip(cluster: &ContainerCluster, service: &str) -> Ipv4Addr {
    let ip = cluster.kubectl_ok(&["get", "service", service, "-o", "jsonpath={.spec.clusterIP}"]);
    ip.trim()
        .parse()
        .unwrap_or_else(|e| panic!("service {service}'s cluster IP {ip:?}: {e}"))
}

/// The names of the Deployment's pods once both run.
fn running_pods(cluster: &mut ContainerCluster) -> Vec<String> {
    let names = eventually_blocking("the Deployment's two pods", || {
        let names = cluster.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        let names: Vec<String> = names.split_whitespace().map(String::from).collect();
        (names.len() == 2).then_some(names)
    });
    for name in &names {
        cluster.wait_running(name);
    }
    names
}

#[test]
fn new_connections_are_balanced_stick_to_one_pod_with_client_ip_affinity_and_reach_every_port() {
    let Some(mut cluster) = ContainerCluster::start(2) else {
        return;
    };
    let (image, _) = cluster.push_busybox("e2e/pages", "1.0", |image| image);
    cluster.apply("web", &manifest(&image));
    let pods = running_pods(&mut cluster);
    let web = cluster_ip(&cluster, "web");
    let sticky = cluster_ip(&cluster, "sticky");
    let host_0 = cluster.network.host(0).clone();

    // Balancing: once host-0's rules hold both endpoints, a batch of new connections
    // reaches each pod (a fair coin gives one of them fewer than 10 of 100 about
    // once in 10^15 runs).
    let port_80 = SocketAddr::from((web, 80));
    eventually_blocking("both pods answer through web's cluster IP", || {
        let (bodies, _) = from_host(&host_0, port_80, 20);
        pods.iter().all(|pod| bodies.contains_key(pod)).then_some(())
    });
    let (bodies, failures) = from_host(&host_0, port_80, CONNECTIONS);
    eprintln!("web:80, {CONNECTIONS} new connections: {bodies:?}, failed {failures:?}");
    assert!(failures.is_empty(), "failed connections to web:80: {failures:?}");
    assert_eq!(
        bodies.keys().collect::<Vec<_>>(),
        pods.iter().collect::<Vec<_>>(),
        "answers from the Deployment's pods only"
    );
    for pod in &pods {
        assert!(
            bodies[pod] >= 10,
            "{pod} got {} of {CONNECTIONS} connections: {bodies:?}",
            bodies[pod]
        );
    }

    // The other ports of the same Service reach the second server, by number and by
    // name, on both pods.
    for port in [81, 82] {
        let address = SocketAddr::from((web, port));
        let alt: Vec<String> = pods.iter().map(|pod| format!("alt {pod}")).collect();
        eventually_blocking(&format!("web:{port} reaches port 8081 of both pods"), || {
            let (bodies, _) = from_host(&host_0, address, 20);
            alt.iter().all(|page| bodies.contains_key(page)).then_some(())
        });
        let (bodies, failures) = from_host(&host_0, address, 20);
        assert!(failures.is_empty(), "failed connections to web:{port}: {failures:?}");
        assert!(
            bodies.keys().all(|body| alt.contains(body)),
            "web:{port} answered other than port 8081: {bodies:?}"
        );
    }

    // ClientIP affinity: the first answer picks the pod, and every later new
    // connection from this host goes back to it.
    let port_80 = SocketAddr::from((sticky, 80));
    let first = eventually_blocking("sticky's cluster IP answers", || {
        get_body_from(&host_0, port_80).filter(|body| pods.contains(body))
    });
    let (bodies, failures) = from_host(&host_0, port_80, CONNECTIONS);
    eprintln!("sticky:80, {CONNECTIONS} new connections after {first}: {bodies:?}, failed {failures:?}");
    assert!(failures.is_empty(), "failed connections to sticky:80: {failures:?}");
    assert_eq!(
        bodies,
        BTreeMap::from([(first.clone(), CONNECTIONS)]),
        "every new connection from one client reaches {first}"
    );
}

/// One GET from `host` on a new connection; the body if it came.
fn get_body_from(host: &Host, address: SocketAddr) -> Option<String> {
    let (bodies, _) = from_host(host, address, 1);
    bodies.into_keys().next()
}
