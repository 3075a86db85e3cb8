//! A StatefulSet whose pods keep their data in claims, end to end on runc
//! containers on a test host: each pod gets its claim from the set's template, bound
//! to a local volume the node's agent provisions; what `web-0` wrote survives the
//! pod's deletion (the new `web-0` mounts the same claim), and scaling down and up
//! brings back the same names on the same claims with their data. Needs root, runc,
//! the CNI plugins and docker-registry (skipped without them on a developer's
//! machine, failing under CI).

mod common;

use berth_testkit::eventually_blocking;
use common::containers::ContainerCluster;
use serde_json::Value;

const REPO: &str = "e2e/busybox";

fn stateful_set(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector: {{app: web}}
  ports:
  - {{port: 80}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 2
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {image}
        command: ["sh", "-c", "hostname >> /data/starts && exec sleep 3600"]
        volumeMounts:
        - {{name: www, mountPath: /data}}
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Mi
"#
    )
}

fn cat(cluster: &ContainerCluster, pod: &str, path: &str) -> Option<String> {
    let out = cluster.kubectl(&["exec", pod, "--", "cat", path]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn claim(cluster: &ContainerCluster, name: &str) -> Value {
    serde_json::from_str(&cluster.kubectl_ok(&["get", "pvc", name, "-o", "json"])).unwrap()
}

/// Waits until the claim is Bound and returns its uid and volume's name.
fn bound_claim(cluster: &ContainerCluster, name: &str) -> (String, String) {
    eventually_blocking(&format!("claim {name} bound"), || {
        let claim = claim(cluster, name);
        (claim["status"]["phase"] == "Bound").then(|| {
            (
                claim["metadata"]["uid"].as_str().unwrap().to_string(),
                claim["spec"]["volumeName"].as_str().unwrap().to_string(),
            )
        })
    })
}

fn uid(pod: &Value) -> String {
    pod["metadata"]["uid"].as_str().unwrap().to_string()
}

fn pod_names(cluster: &ContainerCluster) -> Vec<String> {
    let list: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "pods", "-l", "app=web", "-o", "json"])).unwrap();
    let mut names: Vec<String> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_stateful_sets_pods_keep_their_names_claims_and_data() {
    let Some(mut cluster) = ContainerCluster::start(1) else {
        return;
    };
    let (image, _) = cluster.push_busybox(REPO, "1.0", |image| image);
    cluster.apply("web", &stateful_set(&image));
    let first = cluster.wait_running("web-0");
    cluster.wait_running("web-1");
    let (claim_0, volume_0) = bound_claim(&cluster, "www-web-0");
    let (claim_1, _) = bound_claim(&cluster, "www-web-1");
    let volume: Value = serde_json::from_str(&cluster.kubectl_ok(&["get", "pv", &volume_0, "-o", "json"])).unwrap();
    assert_eq!(volume["spec"]["storageClassName"], "local", "{volume}");
    let path = volume["spec"]["local"]["path"].as_str().unwrap().to_string();
    eventually_blocking("web-0's first start written", || {
        (cat(&cluster, "web-0", "/data/starts").as_deref() == Some("web-0\n")).then_some(())
    });

    // web-0's data outlives the pod: the new web-0 mounts the same claim.
    cluster.kubectl_ok(&["exec", "web-0", "--", "sh", "-c", "echo precious > /data/file"]);
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(&path).join("file")).unwrap(),
        "precious\n",
        "the claim's data is in its local volume on the node"
    );
    cluster.kubectl_ok(&["delete", "pod", "web-0", "--wait=false"]);
    let second = cluster.wait_pod("web-0", "web-0 created again and running", |pod| {
        // Between the delete and the new pod, there is no web-0 to read.
        let new = pod["metadata"]["uid"].as_str().is_some_and(|u| u != uid(&first));
        (new && pod["status"]["phase"] == "Running").then(|| pod.clone())
    });
    assert_eq!(
        second["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "www-web-0"
    );
    assert_eq!(cat(&cluster, "web-0", "/data/file").as_deref(), Some("precious\n"));
    eventually_blocking("web-0's second start written beside the first", || {
        (cat(&cluster, "web-0", "/data/starts").as_deref() == Some("web-0\nweb-0\n")).then_some(())
    });
    assert_eq!(bound_claim(&cluster, "www-web-0"), (claim_0.clone(), volume_0.clone()));

    // Scaling down keeps web-1's claim; scaling up brings web-1 back on it.
    cluster.kubectl_ok(&["scale", "statefulset", "web", "--replicas=1"]);
    eventually_blocking("web-1 gone", || (pod_names(&cluster) == ["web-0"]).then_some(()));
    assert_eq!(claim(&cluster, "www-web-1")["metadata"]["uid"], claim_1.as_str());
    cluster.kubectl_ok(&["scale", "statefulset", "web", "--replicas=2"]);
    cluster.wait_running("web-1");
    assert_eq!(pod_names(&cluster), ["web-0", "web-1"]);
    assert_eq!(bound_claim(&cluster, "www-web-1").0, claim_1);
    eventually_blocking("web-1's second start beside its first", || {
        (cat(&cluster, "web-1", "/data/starts").as_deref() == Some("web-1\nweb-1\n")).then_some(())
    });

    // The set goes with its pods; the claims stay (whenDeleted: Retain).
    cluster.kubectl_ok(&["delete", "statefulset", "web"]);
    eventually_blocking("the set's pods gone", || pod_names(&cluster).is_empty().then_some(()));
    assert_eq!(bound_claim(&cluster, "www-web-0").0, claim_0);
}
