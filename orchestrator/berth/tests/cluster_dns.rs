//! Cluster DNS end to end, on one agent on its own test host with runc pods: a pod
//! is told the node's DNS server and the cluster's search domains, gets a Service's
//! variables, resolves a ClusterIP Service and a headless one's pod by name, fetches
//! a page from the address the headless Service's name gives (the image's static
//! busybox resolves with nslookup; its wget takes only numeric addresses), and
//! resolves an outside name through the host's resolver, which the test provides (a
//! responder on the test network's gateway, named by the agent's `--resolv-conf`).
//! Needs root, runc, the CNI plugins and docker-registry (skipped without them on a
//! developer's machine, failing under CI).
//!
//! The Services and EndpointSlices are written to the store under the API server's
//! keys, as the EndpointSlice controller would write them: the test is about names,
//! not about how the objects are made.

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_dns::wire::{self, NXDOMAIN, Record, RecordData, Reply, TYPE_A};
use common::containers::ContainerCluster;
use serde_json::json;

const OUTSIDE_NAME: &str = "outside.example";
const OUTSIDE_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
const PAGE: &str = "hello through the cluster's names";

/// The "host's resolver": answers `outside.example` A with 192.0.2.7 and everything
/// else with NXDOMAIN, on UDP port 53 of `address`, until dropped.
struct OutsideResolver {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OutsideResolver {
    fn start(address: Ipv4Addr) -> OutsideResolver {
        let socket = UdpSocket::bind(SocketAddr::from((address, 53))).expect("port 53 on the test network's gateway");
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buffer = [0; 4096];
            while !stopping.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buffer) else {
                    continue;
                };
                let Ok(query) = wire::parse_query(&buffer[..n]) else {
                    continue;
                };
                let known = query.name.eq_ignore_ascii_case(OUTSIDE_NAME);
                let reply = Reply {
                    rcode: if known { 0 } else { NXDOMAIN },
                    answers: (known && query.qtype == TYPE_A)
                        .then(|| Record {
                            name: query.name.clone(),
                            ttl: 30,
                            data: RecordData::A(OUTSIDE_ADDRESS),
                        })
                        .into_iter()
                        .collect(),
                    ..Reply::default()
                };
                let _ = socket.send_to(&wire::write_reply(&query, &reply, 512), from);
            }
        });
        OutsideResolver {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for OutsideResolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes `object` at `key` in the cluster's store.
fn put(cluster: &ContainerCluster, key: &str, object: serde_json::Value) {
    let url = format!("http://127.0.0.1:{}", cluster.server.replicas[0].client_port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(async {
            let kv = berth_client::kv::Kv::connect(&[url])?;
            kv.put(key, serde_json::to_vec(&object).unwrap(), 0).await
        })
        .unwrap_or_else(|e| panic!("writing {key}: {e}"));
}

#[test]
fn a_pod_resolves_services_by_name_and_outside_names_through_the_hosts_resolver() {
    let mut resolver_address = None;
    let Some(mut cluster) = ContainerCluster::start_with(1, |gateway, dir| {
        resolver_address = Some(gateway);
        let path = dir.join("host-resolv.conf");
        std::fs::write(&path, format!("nameserver {gateway}\nsearch corp.example\n")).unwrap();
        vec![format!("--resolv-conf={}", path.display())]
    }) else {
        return;
    };
    let _outside = OutsideResolver::start(resolver_address.expect("the cluster's gateway"));
    let (image, _) = cluster.push_busybox("e2e/names", "1.0", |image| {
        image
            .dir("/www", 0o755)
            .contents("/www/index.html", format!("{PAGE}\n"), 0o644)
    });
    cluster.apply(
        "web",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  terminationGracePeriodSeconds: 1
  hostname: web-0
  subdomain: web
  containers:
  - name: httpd
    image: {image}
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
"#
        ),
    );
    let web = cluster.wait_running("web");
    let web_ip = web["status"]["podIP"].as_str().expect("the pod has an IP").to_string();
    put(
        &cluster,
        "/registry/services/default/web",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"clusterIP": "None", "clusterIPs": ["None"], "selector": {"app": "web"},
                        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}}),
    );
    put(
        &cluster,
        "/registry/endpointslices/default/web-abcde",
        json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
               "metadata": {"name": "web-abcde", "namespace": "default",
                            "labels": {"kubernetes.io/service-name": "web"}},
               "addressType": "IPv4",
               "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
               "endpoints": [{"addresses": [web_ip], "hostname": "web-0",
                              "conditions": {"ready": true}}]}),
    );
    put(
        &cluster,
        "/registry/services/default/api",
        json!({"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": "api", "namespace": "default"},
               "spec": {"clusterIP": "10.96.0.50", "clusterIPs": ["10.96.0.50"],
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}),
    );
    // The client pod starts once the Services exist, so it also has their variables.
    cluster.apply(
        "client",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: ask
    image: {image}
    command: ["sh", "-c", "cat /etc/resolv.conf; echo API_HOST=$API_SERVICE_HOST:$API_SERVICE_PORT_HTTPS; while true; do nslookup api.default.svc.cluster.local; nslookup web-0.web.default.svc.cluster.local; nslookup {OUTSIDE_NAME}; ip=$(nslookup -type=a web.default.svc.cluster.local | awk '/^Address: /{{print $2}}'); wget -q -O - http://$ip:8080/; sleep 1; done"]
"#
        ),
    );
    cluster.wait_running("client");
    let log = cluster.wait_log("client", "ask", PAGE);
    let node_cidr = cluster
        .kubectl_ok(&["get", "node", "host-0", "-o", "jsonpath={.spec.podCIDR}"])
        .trim()
        .to_string();
    let (network, _) = node_cidr.split_once('/').expect("a CIDR");
    let server: Ipv4Addr = network.parse().expect("an IPv4 CIDR");
    let server = Ipv4Addr::from(u32::from(server) + 1);
    assert!(log.contains(&format!("nameserver {server}\n")), "{log}");
    assert!(
        log.contains("search default.svc.cluster.local svc.cluster.local cluster.local corp.example\n"),
        "{log}"
    );
    assert!(log.contains("options ndots:5\n"), "{log}");
    assert!(log.contains("API_HOST=10.96.0.50:443\n"), "{log}");
    assert!(log.contains("Address: 10.96.0.50"), "{log}");
    assert!(log.contains(&format!("Address: {web_ip}")), "{log}");
    assert!(log.contains(&format!("Address: {OUTSIDE_ADDRESS}")), "{log}");
    cluster.kubectl_ok(&["delete", "pod", "client", "web"]);
}
