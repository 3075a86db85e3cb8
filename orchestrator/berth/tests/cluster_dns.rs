//! Cluster DNS end to end, on one agent on its own test host with runc pods: a pod
//! is told the node's DNS server and the cluster's search domains, gets a Service's
//! variables and the `kubernetes` Service's, resolves a ClusterIP Service and a
//! headless one's pod by name (the pod's hostname, which the EndpointSlice
//! controller lists because the pod's subdomain is the Service), looks up the
//! headless Service's SRV records, fetches a page from the address the headless
//! Service's name gives (the image's static busybox resolves with nslookup; its wget
//! takes only numeric addresses), reaches the API through the `kubernetes` Service,
//! and resolves an outside name through the host's resolver, which the test provides
//! (a responder on the test network's gateway, named by the agent's `--resolv-conf`).
//! Needs root, runc, the CNI plugins and docker-registry (skipped without them on a
//! developer's machine, failing under CI).

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_dns::wire::{self, NXDOMAIN, Record, RecordData, Reply, TYPE_A};
use common::containers::ContainerCluster;

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

#[test]
fn a_pod_resolves_services_by_name_and_outside_names_through_the_hosts_resolver() {
    let mut resolver_address = None;
    let Some(mut cluster) = ContainerCluster::start_with_api_for_pods(1, |gateway, dir| {
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
  labels: {{app: web}}
spec:
  terminationGracePeriodSeconds: 1
  hostname: web-0
  subdomain: web
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
  clusterIP: None
  selector: {{app: web}}
  ports:
  - {{name: http, port: 8080, protocol: TCP}}
---
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  clusterIP: 10.96.0.50
  ports:
  - {{name: https, port: 443, protocol: TCP}}
"#
        ),
    );
    let web = cluster.wait_running("web");
    let web_ip = web["status"]["podIP"].as_str().expect("the pod has an IP").to_string();
    // The client pod starts once the Services exist, so it also has their variables.
    let names = "nslookup api.default.svc.cluster.local; nslookup web-0.web.default.svc.cluster.local; \
                 nslookup kubernetes.default.svc.cluster.local; \
                 nslookup -type=SRV _http._tcp.web.default.svc.cluster.local";
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
    command: ["sh", "-c", "cat /etc/resolv.conf; echo API_HOST=$API_SERVICE_HOST:$API_SERVICE_PORT_HTTPS; echo KUBERNETES=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; while true; do {names}; nslookup {OUTSIDE_NAME}; wget -q -O - http://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/version; ip=$(nslookup -type=a web.default.svc.cluster.local | awk '/^Address: /{{print $2}}'); wget -q -O - http://$ip:8080/; sleep 1; done"]
"#
        ),
    );
    cluster.wait_running("client");
    cluster.wait_log("client", "ask", PAGE);
    // The API's /version, through the kubernetes Service's address.
    let log = cluster.wait_log("client", "ask", "gitVersion");
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
    assert!(log.contains("KUBERNETES=10.96.0.1:80\n"), "{log}");
    assert!(log.contains("Address: 10.96.0.1\n"), "{log}");
    assert!(
        log.contains("service = 0 100 8080 web-0.web.default.svc.cluster.local"),
        "the SRV record names the pod by its hostname: {log}"
    );
    cluster.kubectl_ok(&["delete", "pod", "client", "web"]);
}
