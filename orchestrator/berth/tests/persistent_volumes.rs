//! Persistent storage's control side end to end, through the real `kubectl` against
//! a cluster of real processes (three servers, two agents on the process runtime):
//! a claim of the default class `local` waits for its first pod, gets a volume
//! provisioned on that pod's node, a directory the node's agent makes, and both
//! sides bound; a claim deleted while its pod runs stays Terminating
//! (pvc-protection) and goes with the pod, and then the directory and the volume
//! go too; a Retain class keeps both, Released. Pods whose claims are missing or
//! unbound Immediate stay Pending and say why. (Mounting the volume into the pod's
//! containers is the agent's pod volumes' part, not checked here.)

mod common;

use std::path::PathBuf;

use berth_testkit::eventually_blocking;
use common::*;
use serde_json::Value;

fn claim(name: &str, class: Option<&str>) -> String {
    let class = class.map_or(String::new(), |c| format!("  storageClassName: \"{c}\"\n"));
    format!(
        "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {name}
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 100Mi
{class}"
    )
}

fn pod_using(name: &str, claim: &str, marker: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  terminationGracePeriodSeconds: 1
  volumes:
  - name: data
    persistentVolumeClaim:
      claimName: {claim}
  containers:
  - name: main
    image: busybox:1
    command: [sleep, '{marker}']
"
    )
}

fn get(cluster: &TestCluster, what: &[&str]) -> Option<Value> {
    let mut args = vec!["get"];
    args.extend_from_slice(what);
    args.extend(["-o", "json"]);
    let out = cluster.kubectl_output(&args);
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn apply(cluster: &TestCluster, name: &str, manifest: &str) {
    let path = cluster.write_manifest(name, manifest);
    cluster.kubectl_ok(&["apply", "-f", path.to_str().unwrap()]);
}

/// The claim once Bound, and its volume.
fn bound(cluster: &TestCluster, claim: &str) -> (Value, Value) {
    eventually_blocking(&format!("claim {claim} bound"), || {
        let claim = get(cluster, &["pvc", claim])?;
        (claim["status"]["phase"] == "Bound").then_some(())?;
        let volume = get(cluster, &["pv", claim["spec"]["volumeName"].as_str()?])?;
        (volume["status"]["phase"] == "Bound").then_some((claim, volume))
    })
}

/// The node a pod was scheduled to.
fn node_of(cluster: &TestCluster, pod: &str) -> String {
    eventually_blocking(&format!("pod {pod} scheduled"), || {
        let pod = get(cluster, &["pod", pod])?;
        pod["spec"]["nodeName"].as_str().map(str::to_string)
    })
}

fn pending_reason(cluster: &TestCluster, pod: &str, expected: &str) {
    eventually_blocking(&format!("pod {pod} pending: {expected}"), || {
        let pod = get(cluster, &["pod", pod])?;
        let scheduled = pod["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "PodScheduled")?
            .clone();
        let is_pending = pod["spec"]["nodeName"].is_null() && scheduled["status"] == "False";
        (is_pending && scheduled["message"].as_str()?.contains(expected)).then_some(())
    });
}

#[test]
fn claims_get_local_volumes_on_their_pods_nodes() {
    if !have_kubectl() {
        return;
    }
    let mut cluster = TestCluster::start();
    wait_for_nodes(&mut cluster);
    let marker = cluster.marker.clone();

    // The default class, as kubectl lists it.
    let classes = eventually_blocking("the default class", || {
        let out = cluster.kubectl_output(&["get", "sc"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("local (default)").then_some(text)
    });
    assert!(
        classes.contains("berth.io/local") && classes.contains("WaitForFirstConsumer"),
        "{classes}"
    );

    // A claim without a class gets the default one and waits for its first pod.
    apply(&cluster, "data.yaml", &claim("data", None));
    let data = get(&cluster, &["pvc", "data"]).unwrap();
    assert_eq!(data["spec"]["storageClassName"], "local");
    assert_eq!(data["status"]["phase"], "Pending");
    let uid = data["metadata"]["uid"].as_str().unwrap().to_string();

    apply(&cluster, "user.yaml", &pod_using("user", "data", &marker));
    let node = node_of(&cluster, "user");
    let (data, volume) = bound(&cluster, "data");
    let name = format!("pvc-{uid}");
    assert_eq!(data["spec"]["volumeName"], name.as_str());
    assert_eq!(
        data["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        node.as_str()
    );
    assert_eq!(
        data["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"],
        "yes"
    );
    assert_eq!(data["status"]["capacity"]["storage"], "100Mi");
    let dir: PathBuf = cluster.servers.dir().join(&node).join("volumes").join(&name);
    assert_eq!(volume["spec"]["local"]["path"], dir.to_str().unwrap());
    assert_eq!(volume["spec"]["persistentVolumeReclaimPolicy"], "Delete");
    assert_eq!(volume["spec"]["claimRef"]["uid"], uid.as_str());
    assert_eq!(
        volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"][0],
        node.as_str()
    );
    eventually_blocking("the volume's directory on its node", || dir.is_dir().then_some(()));
    std::fs::write(dir.join("kept.txt"), "data").unwrap();
    let table = cluster.kubectl_ok(&["get", "pv,pvc"]);
    assert!(
        table.contains(&name) && table.contains("Bound") && table.contains("default/data"),
        "{table}"
    );

    // A claim grows only if its class allows it.
    let refused = cluster.kubectl_fails(&[
        "patch",
        "pvc",
        "data",
        "-p",
        r#"{"spec":{"resources":{"requests":{"storage":"200Mi"}}}}"#,
    ]);
    assert!(
        refused.contains("only dynamically provisioned pvc can be resized"),
        "{refused}"
    );

    // A claim in use stays (pvc-protection) until its pod is gone; then the volume
    // and its directory go with it.
    cluster.kubectl_ok(&["delete", "pvc", "data", "--wait=false"]);
    let terminating = eventually_blocking("the claim Terminating", || {
        let text = cluster.kubectl_ok(&["get", "pvc", "data"]);
        text.contains("Terminating").then_some(text)
    });
    assert!(terminating.contains(&name), "{terminating}");
    let data = get(&cluster, &["pvc", "data"]).unwrap();
    assert_eq!(data["metadata"]["finalizers"][0], "kubernetes.io/pvc-protection");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(get(&cluster, &["pvc", "data"]).is_some(), "kept while its pod runs");
    assert!(dir.join("kept.txt").is_file());
    cluster.kubectl_ok(&["delete", "pod", "user", "--wait=true"]);
    eventually_blocking("the volume deleted, with its directory", || {
        (get(&cluster, &["pv", &name]).is_none() && !dir.exists()).then_some(())
    });

    // A Retain class keeps the volume, Released, and its data.
    apply(
        &cluster,
        "kept-class.yaml",
        "apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: kept
provisioner: berth.io/local
reclaimPolicy: Retain
volumeBindingMode: WaitForFirstConsumer
allowVolumeExpansion: true
",
    );
    apply(&cluster, "kept.yaml", &claim("kept", Some("kept")));
    apply(&cluster, "keeper.yaml", &pod_using("keeper", "kept", &marker));
    let node = node_of(&cluster, "keeper");
    let (_, volume) = bound(&cluster, "kept");
    let kept_name = volume["metadata"]["name"].as_str().unwrap().to_string();
    let kept_dir = cluster.servers.dir().join(&node).join("volumes").join(&kept_name);
    eventually_blocking("the kept volume's directory", || kept_dir.is_dir().then_some(()));
    std::fs::write(kept_dir.join("kept.txt"), "data").unwrap();
    // Its class allows expansion: the claim grows, and its volume with it.
    cluster.kubectl_ok(&[
        "patch",
        "pvc",
        "kept",
        "-p",
        r#"{"spec":{"resources":{"requests":{"storage":"200Mi"}}}}"#,
    ]);
    eventually_blocking("the kept claim grown", || {
        let claim = get(&cluster, &["pvc", "kept"])?;
        let volume = get(&cluster, &["pv", &kept_name])?;
        (claim["status"]["capacity"]["storage"] == "200Mi" && volume["spec"]["capacity"]["storage"] == "200Mi")
            .then_some(())
    });
    cluster.kubectl_ok(&["delete", "pod", "keeper", "--wait=true"]);
    cluster.kubectl_ok(&["delete", "pvc", "kept"]);
    eventually_blocking("the kept volume Released", || {
        (get(&cluster, &["pv", &kept_name])?["status"]["phase"] == "Released").then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(std::fs::read_to_string(kept_dir.join("kept.txt")).unwrap(), "data");
    assert!(get(&cluster, &["pv", &kept_name]).is_some());
    // Released, it is no longer protected: deleting it leaves the data to its owner.
    assert_eq!(
        get(&cluster, &["pv", &kept_name]).unwrap()["metadata"]["finalizers"][0],
        "kubernetes.io/pv-protection"
    );
    cluster.kubectl_ok(&["delete", "pv", &kept_name]);
    assert!(get(&cluster, &["pv", &kept_name]).is_none());
    assert!(kept_dir.join("kept.txt").is_file());

    // Pods whose claims cannot be had yet say why they wait.
    apply(&cluster, "lonely.yaml", &pod_using("lonely", "nope", &marker));
    pending_reason(&cluster, "lonely", "persistentvolumeclaim \"nope\" not found");
    apply(&cluster, "static.yaml", &claim("static", Some("")));
    apply(&cluster, "waiting.yaml", &pod_using("waiting", "static", &marker));
    pending_reason(&cluster, "waiting", "pod has unbound immediate PersistentVolumeClaims");
}
