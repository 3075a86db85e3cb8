//! NetworkPolicies and isolated namespaces end to end, on two agents each on its
//! own test host, with real runc pods: the server runs with `--isolate-namespaces`
//! as `berth up` runs it. Needs root, runc, the CNI plugins, iptables and
//! docker-registry (skipped without them on a developer's machine, failing under CI).
//!
//! - In a namespace that opted out of isolation, a web pod on host-1 is open to a
//!   client and a stranger on host-0; a `deny-all` ingress policy shuts both out;
//!   a policy allowing the client's label on the named port `http` lets the client
//!   back in, directly and through the Service's cluster IP, and not the stranger;
//!   it comes while the web pod's agent is down, and the restarted agent applies it.
//! - Two isolated namespaces: a pod of one cannot reach a pod of the other, a pod
//!   of its own namespace can, and its readiness probe (from the node) passes;
//!   once the target's namespace opts out (`none`), the other namespace gets in.
//! - The filter's per-pod chains go with the pods, and every chain with the agents.

mod common;

use std::time::Duration;

use berth_testkit::eventually_blocking;
use common::containers::ContainerCluster;

const PAGE: &str = "hello past the policy";
const CLUSTER_IP: &str = "10.96.0.81";

/// A pod serving PAGE on 8080 (named `http`) on `node`, with a readiness probe.
fn web(namespace: &str, name: &str, node: &str, image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{app: web}}
spec:
  terminationGracePeriodSeconds: 1
  nodeName: {node}
  containers:
  - name: httpd
    image: {image}
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports:
    - {{name: http, containerPort: 8080}}
    readinessProbe:
      httpGet: {{path: /, port: http}}
      periodSeconds: 1
"#
    )
}

/// A pod that idles on `node`, to run wget in.
fn idler(namespace: &str, name: &str, node: &str, role: &str, image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {namespace}
  labels: {{role: {role}}}
spec:
  terminationGracePeriodSeconds: 1
  nodeName: {node}
  containers:
  - name: shell
    image: {image}
    command: ["sleep", "3600"]
"#
    )
}

fn namespace(name: &str, isolation: Option<&str>) -> String {
    let labels = isolation.map_or(String::new(), |v| format!("\n  labels: {{berth.io/isolation: {v}}}"));
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}{labels}\n")
}

fn policy(name: &str, namespace: &str, ingress: &str) -> String {
    format!(
        r#"apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {name}
  namespace: {namespace}
spec:
  podSelector: {{matchLabels: {{app: web}}}}
  policyTypes: [Ingress]
{ingress}"#
    )
}

/// The pod's IP once it is Running and Ready.
fn wait_ready(cluster: &ContainerCluster, namespace: &str, name: &str) -> String {
    eventually_blocking(&format!("pod {namespace}/{name} Running and Ready"), || {
        let out = cluster.kubectl(&[
            "get",
            "pod",
            "-n",
            namespace,
            name,
            "-o",
            "jsonpath={.status.podIP} {.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (ip, ready) = text.trim().split_once(' ')?;
        (!ip.is_empty() && ready == "True").then(|| ip.to_string())
    })
}

/// Whether `pod` gets the page from `address` (one try, 3 s at most).
fn reaches(cluster: &ContainerCluster, namespace: &str, pod: &str, address: &str) -> bool {
    let url = format!("http://{address}/");
    let out = cluster.kubectl(&[
        "exec", "-n", namespace, pod, "--", "timeout", "3", "wget", "-q", "-O", "-", &url,
    ]);
    String::from_utf8_lossy(&out.stdout).contains(PAGE)
}

fn eventually_reaches(cluster: &ContainerCluster, namespace: &str, pod: &str, address: &str, yes: bool) {
    let what = if yes { "reaches" } else { "is kept from" };
    eventually_blocking(&format!("{namespace}/{pod} {what} {address}"), || {
        (reaches(cluster, namespace, pod, address) == yes).then_some(())
    });
}

/// The filter's lines in `iptables-save` of host `i`.
fn filter_lines(cluster: &ContainerCluster, i: usize) -> Vec<String> {
    let saved = cluster
        .network
        .host(i)
        .command("iptables-save")
        .output()
        .expect("iptables-save");
    String::from_utf8_lossy(&saved.stdout)
        .lines()
        .filter(|l| {
            ["BERTH-NETPOL-", "BERTH-NPI-", "BERTH-NPE-", "BERTH-NPB-"]
                .iter()
                .any(|c| l.contains(c))
        })
        .map(String::from)
        .collect()
}

#[test]
fn policies_and_isolated_namespaces_decide_who_reaches_a_pod() {
    let Some(mut cluster) = ContainerCluster::start_with_server_args(2, &["--isolate-namespaces"]) else {
        return;
    };
    let (image, _) = cluster.push_busybox("e2e/netpol", "1.0", |image| {
        image
            .dir("/www", 0o755)
            .contents("/www/index.html", format!("{PAGE}\n"), 0o644)
    });

    // A namespace that opted out: open until a policy selects the web pod.
    cluster.apply("shop", &namespace("shop", Some("none")));
    cluster.apply("shop-web", &web("shop", "web", "host-1", &image));
    cluster.apply("shop-client", &idler("shop", "client", "host-0", "client", &image));
    cluster.apply(
        "shop-stranger",
        &idler("shop", "stranger", "host-0", "stranger", &image),
    );
    cluster.apply(
        "shop-svc",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  clusterIP: {CLUSTER_IP}\n  \
             selector: {{app: web}}\n  ports:\n  - {{port: 80, targetPort: http}}\n"
        ),
    );
    let web_ip = wait_ready(&cluster, "shop", "web");
    let web_at = format!("{web_ip}:8080");
    wait_ready(&cluster, "shop", "client");
    wait_ready(&cluster, "shop", "stranger");
    eventually_reaches(&cluster, "shop", "client", &web_at, true);
    eventually_reaches(&cluster, "shop", "stranger", &web_at, true);

    cluster.apply("deny", &policy("deny-all", "shop", "  ingress: []\n"));
    eventually_reaches(&cluster, "shop", "client", &web_at, false);
    eventually_reaches(&cluster, "shop", "stranger", &web_at, false);
    // The probe comes from the node: the pod stays Ready behind deny-all.
    wait_ready(&cluster, "shop", "web");

    // The policy that lets the client in comes while host-1's agent is down: the
    // filter it left stands, and the restarted agent rebuilds it from the store.
    cluster.agents[1].kill();
    cluster.apply(
        "allow",
        &policy(
            "allow-client",
            "shop",
            "  ingress:\n  - from: [{podSelector: {matchLabels: {role: client}}}]\n    ports: [{port: http}]\n",
        ),
    );
    assert!(
        !reaches(&cluster, "shop", "client", &web_at),
        "the killed agent's filter went"
    );
    cluster.agents[1].start().unwrap();
    eventually_reaches(&cluster, "shop", "client", &web_at, true);
    eventually_reaches(&cluster, "shop", "client", CLUSTER_IP, true);
    let jumps = filter_lines(&cluster, 1)
        .into_iter()
        .filter(|l| l.starts_with("-A FORWARD "))
        .count();
    assert_eq!(jumps, 1, "one jump into the filter after the restart");
    assert!(
        !reaches(&cluster, "shop", "stranger", &web_at),
        "the stranger got past the policies"
    );
    assert!(
        !reaches(&cluster, "shop", "stranger", CLUSTER_IP),
        "the stranger got past the policies through the Service"
    );
    let listed = cluster.kubectl_ok(&["get", "netpol", "-n", "shop"]);
    assert!(
        listed.contains("allow-client") && listed.contains("app=web"),
        "{listed}"
    );
    let described = cluster.kubectl_ok(&["describe", "netpol", "-n", "shop", "allow-client"]);
    assert!(described.contains("role=client"), "{described}");

    // Two isolated namespaces (labelled by the server) on both hosts.
    cluster.apply("team-a", &namespace("team-a", None));
    cluster.apply("team-b", &namespace("team-b", None));
    let label = cluster.kubectl_ok(&[
        "get",
        "namespace",
        "team-a",
        "-o",
        "jsonpath={.metadata.labels.berth\\.io/isolation}",
    ]);
    assert_eq!(label.trim(), "namespace");
    cluster.apply("a-web", &web("team-a", "web", "host-1", &image));
    cluster.apply("a-client", &idler("team-a", "client", "host-0", "client", &image));
    cluster.apply("b-client", &idler("team-b", "client", "host-0", "client", &image));
    let a_web = format!("{}:8080", wait_ready(&cluster, "team-a", "web"));
    wait_ready(&cluster, "team-a", "client");
    wait_ready(&cluster, "team-b", "client");
    eventually_reaches(&cluster, "team-a", "client", &a_web, true);
    eventually_reaches(&cluster, "team-b", "client", &a_web, false);
    assert!(
        !reaches(&cluster, "team-b", "client", &a_web),
        "another namespace got into an isolated one"
    );
    cluster.kubectl_ok(&["label", "namespace", "team-a", "berth.io/isolation=none", "--overwrite"]);
    eventually_reaches(&cluster, "team-b", "client", &a_web, true);

    // The per-pod chains go with the pods; the rest with the agents.
    for namespace in ["shop", "team-a", "team-b"] {
        cluster.kubectl_ok(&["delete", "namespace", namespace, "--wait=false"]);
    }
    for i in 0..2 {
        eventually_blocking(&format!("host-{i} drops the pods' chains"), || {
            let lines = filter_lines(&cluster, i);
            lines.iter().all(|l| l.contains("BERTH-NETPOL-")).then_some(())
        });
    }
    for i in 0..cluster.agents.len() {
        cluster.agents[i].stop(Duration::from_secs(20));
        let left = filter_lines(&cluster, i);
        assert!(left.is_empty(), "host-{i} keeps the filter's rules: {left:#?}");
    }
}
