//! Services with kubectl against a real cluster (three `berth server`s, two agents,
//! pods that are real processes): a Deployment applied, `kubectl expose`, and the
//! EndpointSlice that lists the ready pods' IPs; `kubectl get svc,endpointslices`
//! and `kubectl describe svc` show them; deleting the Service takes its slices.
//! Skipped, saying so, when kubectl is not installed.

mod common;

use std::collections::BTreeSet;

use berth_testkit::eventually_blocking;
use common::{TestCluster, have_kubectl, wait_for_nodes};
use serde_json::Value;

fn manifest(marker: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  strategy:
    type: Recreate
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: img:1
        command: [\"sleep\", \"{marker}\"]
        ports:
        - name: http
          containerPort: 8080
"
    )
}

/// The slices of Service `web`, as kubectl lists them.
fn slices(cluster: &TestCluster) -> Vec<Value> {
    let out = cluster.kubectl_ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_str(&out).unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

/// The ready addresses of the slices, as (address, node) pairs.
fn ready_endpoints(slices: &[Value]) -> BTreeSet<(String, String)> {
    slices
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] == true)
        .map(|e| {
            (
                e["addresses"][0].as_str().unwrap_or_default().to_string(),
                e["nodeName"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn kubectl_expose_gives_a_service_whose_slice_lists_the_ready_pods() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let path = cluster.servers.dir().join("web.yaml");
    std::fs::write(&path, manifest(&cluster.marker)).unwrap();
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    cluster.kubectl_ok(&["rollout", "status", "deployment/web", "--timeout=120s"]);

    let exposed = cluster.kubectl_ok(&["expose", "deployment/web", "--port", "80", "--target-port", "http"]);
    assert!(exposed.contains("service/web exposed"), "{exposed}");
    let service: Value = serde_json::from_str(&cluster.kubectl_ok(&["get", "svc", "web", "-o", "json"])).unwrap();
    let cluster_ip = service["spec"]["clusterIP"].as_str().unwrap().to_string();
    assert!(cluster_ip.starts_with("10."), "{service}");
    assert_eq!(service["spec"]["selector"]["app"], "web");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");

    // The ready pods' IPs, each on its node, as the slice must list them.
    let pods_of = |cluster: &TestCluster| -> BTreeSet<(String, String)> {
        let out = cluster.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "json"]);
        let pods: Value = serde_json::from_str(&out).unwrap();
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .map(|p| {
                (
                    p["status"]["podIP"].as_str().unwrap_or_default().to_string(),
                    p["spec"]["nodeName"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let pods = pods_of(&cluster);
    assert!(
        !pods.is_empty() && pods.iter().all(|(ip, _)| !ip.is_empty()),
        "{pods:?}"
    );
    let listed = eventually_blocking("the slice lists the ready pods", || {
        let slices = slices(&cluster);
        (ready_endpoints(&slices) == pods).then_some(slices)
    });
    assert_eq!(listed.len(), 1, "{listed:?}");
    let slice = &listed[0];
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["ports"][0]["port"], 8080,
        "the named target port, resolved: {slice}"
    );
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(slice["endpoints"][0]["targetRef"]["kind"], "Pod");

    let table = cluster.kubectl_ok(&["get", "svc,endpointslices"]);
    let header = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>();
    assert_eq!(
        header,
        ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("service/web") && l.contains(&cluster_ip) && l.contains("80/TCP")),
        "{table}"
    );
    assert!(
        table.contains("ADDRESSTYPE") && table.contains("endpointslice.discovery.k8s.io/web-"),
        "{table}"
    );
    let described = cluster.kubectl_ok(&["describe", "svc", "web"]);
    assert!(described.contains(&cluster_ip), "{described}");
    assert!(described.contains("http/TCP"), "{described}");
    let (first_ip, _) = pods.iter().next().unwrap();
    assert!(described.contains(first_ip.as_str()), "the endpoints: {described}");

    // A pod and a ReplicaSet expose as a Deployment does: the Service selects by
    // their labels (the pod's own; the ReplicaSet's selector).
    let pod = cluster.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let replica_set = cluster.kubectl_ok(&["get", "rs", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}"]);
    for (object, name) in [
        (format!("pod/{pod}"), "one-pod"),
        (format!("rs/{replica_set}"), "one-rs"),
    ] {
        let exposed = cluster.kubectl_ok(&[
            "expose",
            &object,
            "--name",
            name,
            "--port",
            "81",
            "--target-port",
            "8080",
        ]);
        assert!(exposed.contains(&format!("service/{name} exposed")), "{exposed}");
        let service: Value = serde_json::from_str(&cluster.kubectl_ok(&["get", "svc", name, "-o", "json"])).unwrap();
        assert_eq!(service["spec"]["selector"]["app"], "web", "{object}: {service}");
        assert_eq!(service["spec"]["ports"][0]["port"], 81, "{object}: {service}");
        cluster.kubectl_ok(&["delete", "svc", name]);
    }

    // Scaled down to one: the slice follows.
    cluster.kubectl_ok(&["scale", "deployment/web", "--replicas=1"]);
    eventually_blocking("the slice follows the scale-down", || {
        let pods = pods_of(&cluster);
        (pods.len() == 1 && ready_endpoints(&slices(&cluster)) == pods).then_some(())
    });

    cluster.kubectl_ok(&["delete", "svc", "web"]);
    eventually_blocking("the slices go with the Service", || {
        slices(&cluster).is_empty().then_some(())
    });
    cluster.kubectl_ok(&["delete", "deployment", "web"]);
}
