//! StatefulSets with kubectl against a real cluster (three `berth server`s, two
//! `berth agent`s, workloads that are real processes): a set of 3 with a headless
//! Service and a claim template comes up in order; `kubectl scale` down removes the
//! highest ordinals first and keeps the claims, and back up brings the same names
//! and claims; a deleted pod comes back with its name; a rolling update with a
//! partition of 1 replaces web-2 and web-1 only, and web-0 deleted then comes back
//! at its own revision; `kubectl rollout status` returns each time and `rollout
//! history` lists the set's ControllerRevisions and `rollout undo` goes back to the
//! first template; the headless Service's endpoints carry the pods' hostnames. The claims are read from the store with etcdctl (the claims' kind is
//! not served by this test's API). Skipped, saying so, without kubectl.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use berth_testkit::eventually_blocking;
use common::{TestCluster, have_kubectl, wait_for_nodes};
use serde_json::Value;

fn manifest(marker: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: None
  selector:
    app: web
  ports:
  - port: 80
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 3
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
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"
    )
}

/// The set's pods by name, from one list (one revision of the store).
fn pods(cluster: &TestCluster) -> BTreeMap<String, Value> {
    cluster
        .pods()
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == "web")
        .map(|p| (p["metadata"]["name"].as_str().unwrap_or_default().to_string(), p))
        .collect()
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["phase"] == "Running"
        && pod["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn is_terminating(pod: &Value) -> bool {
    !pod["metadata"]["deletionTimestamp"].is_null()
}

/// The claims in the store, by name.
fn claims(cluster: &TestCluster) -> BTreeMap<String, Value> {
    let out = Command::new("etcdctl")
        .args([
            "--endpoints",
            &cluster.servers.endpoints()[0],
            "--command-timeout=5s",
            "get",
            "--prefix",
            "/registry/persistentvolumeclaims/default/",
            "--print-value-only",
        ])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl (the test script installs it)");
    assert!(
        out.status.success(),
        "etcdctl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let claim: Value = serde_json::from_str(l).expect("claims are JSON");
            (claim["metadata"]["name"].as_str().unwrap().to_string(), claim)
        })
        .collect()
}

/// The claims' uids by name: the same claims, whatever else is written to them.
fn claim_uids(cluster: &TestCluster) -> BTreeMap<String, Value> {
    claims(cluster)
        .into_iter()
        .map(|(name, claim)| (name, claim["metadata"]["uid"].clone()))
        .collect()
}

fn names(pods: &BTreeMap<String, Value>) -> Vec<&str> {
    pods.keys().map(String::as_str).collect()
}

/// Waits until the set's pods are exactly `want`, all ready and none terminating,
/// checking on every list that no pod exists before the one below it is ready.
fn wait_in_order(cluster: &TestCluster, want: &[&str]) -> BTreeMap<String, Value> {
    eventually_blocking(&format!("pods {want:?} ready, created in order"), || {
        let pods = pods(cluster);
        for ordinal in 1..3 {
            if pods.contains_key(&format!("web-{ordinal}")) {
                let below = pods.get(&format!("web-{}", ordinal - 1));
                assert!(
                    below.is_some_and(is_ready),
                    "web-{ordinal} exists while web-{} is not ready: {:?}",
                    ordinal - 1,
                    names(&pods)
                );
            }
        }
        let done = names(&pods) == want && pods.values().all(|p| is_ready(p) && !is_terminating(p));
        done.then_some(pods)
    })
}

fn rollout_status(cluster: &TestCluster) {
    let status = cluster.kubectl_ok(&["rollout", "status", "statefulset/web", "--timeout=120s"]);
    assert!(
        status.contains("roll out complete") || status.contains("rolling update complete"),
        "{status}"
    );
}

fn image(pod: &Value) -> &str {
    pod["spec"]["containers"][0]["image"].as_str().unwrap_or_default()
}

#[test]
fn kubectl_runs_a_stateful_set_in_order_with_stable_names_and_claims() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let path = cluster.write_manifest("web.yaml", &manifest(&cluster.marker));
    let applied = cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
    assert!(applied.contains("statefulset.apps/web created"), "{applied}");

    // Up in order: web-1 only once web-0 is ready, web-2 once web-1 is.
    let first = wait_in_order(&cluster, &["web-0", "web-1", "web-2"]);
    rollout_status(&cluster);
    let created: Vec<&str> = first
        .values()
        .map(|p| p["metadata"]["creationTimestamp"].as_str().unwrap())
        .collect();
    assert!(created.is_sorted(), "creation times follow the ordinals: {created:?}");
    for (name, pod) in &first {
        assert_eq!(pod["spec"]["hostname"], name.as_str());
        assert_eq!(pod["spec"]["subdomain"], "web");
        assert_eq!(
            pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"],
            name.as_str()
        );
        assert_eq!(
            pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            format!("www-{name}")
        );
    }
    // The headless Service names each pod by its hostname.
    let hostnames = eventually_blocking("the Service's endpoints named by hostname", || {
        let listed = cluster.kubectl_ok(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[*].endpoints[*].hostname}",
        ]);
        let mut names: Vec<String> = listed.split_whitespace().map(str::to_string).collect();
        names.sort();
        (names.len() == 3).then_some(names)
    });
    assert_eq!(hostnames, ["web-0", "web-1", "web-2"]);
    let table = cluster.kubectl_ok(&["get", "sts", "web"]);
    assert!(
        table.starts_with("NAME") && table.contains("READY") && table.contains("3/3"),
        "{table}"
    );

    // A claim per pod, labelled with the selector, kept by default (no owner).
    let claims_before = claim_uids(&cluster);
    assert_eq!(names(&claims_before), ["www-web-0", "www-web-1", "www-web-2"]);
    for claim in claims(&cluster).values() {
        assert_eq!(claim["kind"], "PersistentVolumeClaim");
        assert_eq!(claim["metadata"]["labels"]["app"], "web");
        assert!(claim["metadata"]["ownerReferences"].is_null(), "{claim}");
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
    }

    // Scale down: web-2 goes before web-1 does; the claims stay.
    let scaled = cluster.kubectl_ok(&["scale", "statefulset/web", "--replicas=1"]);
    assert!(scaled.contains("statefulset.apps/web scaled"), "{scaled}");
    eventually_blocking("only web-0 left, web-2 gone before web-1", || {
        let pods = pods(&cluster);
        let leaving = |name: &str| pods.get(name).is_none_or(is_terminating);
        assert!(
            !leaving("web-1") || !pods.contains_key("web-2"),
            "web-1 is going while web-2 is still there: {:?}",
            names(&pods)
        );
        (names(&pods) == ["web-0"]).then_some(())
    });
    assert_eq!(claim_uids(&cluster), claims_before, "the claims are retained");

    // Back up: the same names, the same claims.
    cluster.kubectl_ok(&["scale", "statefulset/web", "--replicas=3"]);
    let again = wait_in_order(&cluster, &["web-0", "web-1", "web-2"]);
    rollout_status(&cluster);
    assert_eq!(claim_uids(&cluster), claims_before, "the same claims, not new ones");
    assert_eq!(
        again["web-2"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "www-web-2"
    );

    // A deleted pod comes back with its name.
    let old_uid = again["web-0"]["metadata"]["uid"].clone();
    cluster.kubectl_ok(&["delete", "pod", "web-0", "--wait=false"]);
    eventually_blocking("web-0 created again", || {
        let pods = pods(&cluster);
        let web0 = pods.get("web-0")?;
        (web0["metadata"]["uid"] != old_uid && is_ready(web0)).then_some(())
    });
    rollout_status(&cluster);

    // A rolling update with partition 1: web-2 then web-1 take the new image.
    cluster.kubectl_ok(&[
        "patch",
        "statefulset/web",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":1}}}}"#,
    ]);
    let set = cluster.kubectl_ok(&["set", "image", "statefulset/web", "main=img:2"]);
    assert!(set.contains("statefulset.apps/web image updated"), "{set}");
    let status = cluster.kubectl_ok(&["rollout", "status", "statefulset/web", "--timeout=120s"]);
    assert!(
        status.contains("partitioned roll out complete: 2 new pods have been updated"),
        "{status}"
    );
    let updated = eventually_blocking("web-1 and web-2 updated, web-0 not", || {
        let pods = pods(&cluster);
        let images: Vec<&str> = pods.values().map(image).collect();
        (images == ["img:1", "img:2", "img:2"] && pods.values().all(is_ready)).then_some(pods)
    });
    let revision = |name: &str| updated[name]["metadata"]["labels"]["controller-revision-hash"].clone();
    assert_eq!(revision("web-1"), revision("web-2"));
    assert_ne!(revision("web-0"), revision("web-1"));
    let sts: Value = serde_json::from_str(&cluster.kubectl_ok(&["get", "statefulset/web", "-o", "json"])).unwrap();
    let status = &sts["status"];
    assert_eq!(status["updateRevision"], revision("web-1"));
    assert_eq!(status["currentRevision"], revision("web-0"));
    assert_eq!(
        (status["updatedReplicas"].as_i64(), status["readyReplicas"].as_i64()),
        (Some(2), Some(3))
    );
    assert_eq!(claim_uids(&cluster), claims_before);

    // Each template is a ControllerRevision: rollout history lists both.
    let history = cluster.kubectl_ok(&["rollout", "history", "statefulset/web"]);
    let numbers: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(numbers, ["1", "2"], "{history}");
    let revisions = cluster.kubectl_ok(&["get", "controllerrevisions"]);
    assert!(revisions.contains("statefulset.apps/web"), "{revisions}");

    // web-0, below the partition, comes back at its own revision, though no pod has
    // that revision any more.
    let old_uid = updated["web-0"]["metadata"]["uid"].clone();
    cluster.kubectl_ok(&["delete", "pod", "web-0", "--wait=false"]);
    let web0 = eventually_blocking("web-0 created again at the current revision", || {
        let pods = pods(&cluster);
        let web0 = pods.get("web-0")?;
        (web0["metadata"]["uid"] != old_uid && is_ready(web0)).then(|| web0.clone())
    });
    assert_eq!(image(&web0), "img:1");
    assert_eq!(
        web0["metadata"]["labels"]["controller-revision-hash"],
        revision("web-0")
    );

    // Undo: the first template comes back as the newest revision, and the partition
    // still holds for it.
    let undone = cluster.kubectl_ok(&["rollout", "undo", "statefulset/web"]);
    assert!(undone.contains("statefulset.apps/web rolled back"), "{undone}");
    rollout_status(&cluster);
    eventually_blocking("every pod back on the first template", || {
        let pods = pods(&cluster);
        let images: Vec<&str> = pods.values().map(image).collect();
        (images == ["img:1", "img:1", "img:1"] && pods.values().all(|p| is_ready(p) && !is_terminating(p)))
            .then_some(())
    });
    let history = cluster.kubectl_ok(&["rollout", "history", "statefulset/web"]);
    assert!(history.contains("\n2 ") && history.contains("\n3 "), "{history}");

    // Deleting the set removes its pods and, by default, keeps the claims.
    cluster.kubectl_ok(&["delete", "statefulset/web"]);
    eventually_blocking("the set's pods gone", || pods(&cluster).is_empty().then_some(()));
    assert_eq!(names(&claims(&cluster)), ["www-web-0", "www-web-1", "www-web-2"]);
    eventually_blocking("the set's revisions gone", || {
        let left = cluster.kubectl_ok(&["get", "controllerrevisions", "-o", "name"]);
        left.trim().is_empty().then_some(())
    });
}
