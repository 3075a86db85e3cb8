//! Volumes end to end on runc containers on a test host: a ConfigMap, a Secret and
//! the downward API as files, an emptyDir two containers share; updates to the
//! ConfigMap, the Secret and the pod's labels reach the files of the running pod
//! without a restart; a missing ConfigMap holds a pod with the kubelet's reason until
//! it is created; the Secret's volume is a tmpfs that goes with the pod. Needs root,
//! runc, the CNI plugins and docker-registry (skipped without them on a developer's
//! machine, failing under CI).

mod common;

use berth_testkit::eventually_blocking;
use common::containers::{ContainerCluster, mounts_under};

const REPO: &str = "e2e/busybox";

fn files_pod(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: files
  labels:
    tier: front
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: reader
    image: {image}
    command: ["sleep", "3600"]
    volumeMounts:
    - {{name: cfg, mountPath: /etc/cfg}}
    - {{name: creds, mountPath: /etc/creds}}
    - {{name: info, mountPath: /etc/info}}
    - {{name: shared, mountPath: /shared}}
    - {{name: cfg, mountPath: /etc/mode.conf, subPath: mode}}
  - name: writer
    image: {image}
    command: ["sh", "-c", "echo hello from writer > /data/note && exec sleep 3600"]
    volumeMounts:
    - {{name: shared, mountPath: /data}}
  volumes:
  - name: cfg
    configMap:
      name: settings
  - name: creds
    secret:
      secretName: db
      defaultMode: 0400
  - name: info
    downwardAPI:
      items:
      - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
      - {{path: name, fieldRef: {{fieldPath: metadata.name}}}}
  - name: shared
    emptyDir: {{}}
"#
    )
}

fn late_pod(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: late
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {image}
    command: ["sleep", "3600"]
    volumeMounts:
    - {{name: cfg, mountPath: /etc/cfg}}
  volumes:
  - name: cfg
    configMap:
      name: late
"#
    )
}

/// `cat` of a file in a container of a pod (None when it fails).
fn cat(cluster: &ContainerCluster, pod: &str, container: &str, path: &str) -> Option<String> {
    let out = cluster.kubectl(&["exec", pod, "-c", container, "--", "cat", path]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn restart_counts(pod: &serde_json::Value) -> Vec<i64> {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["restartCount"].as_i64().unwrap_or(-1))
        .collect()
}

#[test]
fn config_maps_secrets_and_the_downward_api_are_files_updated_in_running_pods() {
    let Some(mut cluster) = ContainerCluster::start(1) else {
        return;
    };
    let (image, _) = cluster.push_busybox(REPO, "1.0", |image| image);
    cluster.kubectl_ok(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
        "--from-literal=color=blue",
    ]);
    cluster.kubectl_ok(&["create", "secret", "generic", "db", "--from-literal=password=hunter2"]);
    cluster.apply("files", &files_pod(&image));
    let pod = cluster.wait_running("files");
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();

    assert_eq!(
        cat(&cluster, "files", "reader", "/etc/cfg/mode").as_deref(),
        Some("fast")
    );
    assert_eq!(
        cat(&cluster, "files", "reader", "/etc/cfg/color").as_deref(),
        Some("blue")
    );
    assert_eq!(
        cat(&cluster, "files", "reader", "/etc/creds/password").as_deref(),
        Some("hunter2")
    );
    assert_eq!(
        cat(&cluster, "files", "reader", "/etc/mode.conf").as_deref(),
        Some("fast")
    );
    assert_eq!(
        cat(&cluster, "files", "reader", "/etc/info/name").as_deref(),
        Some("files")
    );
    assert_eq!(
        cat(&cluster, "files", "reader", "/etc/info/labels").as_deref(),
        Some("tier=\"front\"")
    );
    let mode = cluster.kubectl_ok(&[
        "exec",
        "files",
        "-c",
        "reader",
        "--",
        "stat",
        "-L",
        "-c",
        "%a",
        "/etc/creds/password",
    ]);
    assert_eq!(mode.trim(), "400");
    let shared = eventually_blocking("the writer's note in the reader", || {
        cat(&cluster, "files", "reader", "/shared/note")
    });
    assert_eq!(shared, "hello from writer\n");
    // The API's data is read-only in the container.
    let write = cluster.kubectl(&[
        "exec",
        "files",
        "-c",
        "reader",
        "--",
        "sh",
        "-c",
        "echo x > /etc/cfg/new",
    ]);
    assert!(!write.status.success(), "the ConfigMap volume is read-only");

    // On the node: the Secret's files are on a tmpfs of their own, the ConfigMap's not.
    let volumes = cluster.agent_dirs[0].join("pods").join(&uid).join("volumes");
    let mounted = mounts_under(&volumes);
    assert!(
        mounted.contains(&volumes.join("kubernetes.io~secret/creds")),
        "the Secret's volume is a mount: {mounted:?}"
    );
    assert!(
        !mounted.contains(&volumes.join("kubernetes.io~configmap/cfg")),
        "{mounted:?}"
    );

    // Updates reach the running pod's files, a removed key goes, nothing restarts.
    let patched = std::time::Instant::now();
    cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"mode":"slow","color":null}}"#,
    ]);
    cluster.kubectl_ok(&[
        "patch",
        "secret",
        "db",
        "--type=merge",
        "-p",
        r#"{"data":{"password":"c3dvcmRmaXNo"}}"#,
    ]);
    cluster.kubectl_ok(&["label", "pod", "files", "tier=back", "--overwrite"]);
    eventually_blocking("the ConfigMap's update in the pod", || {
        (cat(&cluster, "files", "reader", "/etc/cfg/mode").as_deref() == Some("slow")).then_some(())
    });
    // A figure, not a check: the watch makes this well under the kubelet's minute.
    eprintln!(
        "a ConfigMap's update reached the pod's files within {:?}",
        patched.elapsed()
    );
    eventually_blocking("the ConfigMap's removed key gone from the pod", || {
        cat(&cluster, "files", "reader", "/etc/cfg/color")
            .is_none()
            .then_some(())
    });
    eventually_blocking("the Secret's update in the pod", || {
        (cat(&cluster, "files", "reader", "/etc/creds/password").as_deref() == Some("swordfish")).then_some(())
    });
    eventually_blocking("the labels' update in the pod", || {
        (cat(&cluster, "files", "reader", "/etc/info/labels").as_deref() == Some("tier=\"back\"")).then_some(())
    });
    // A subPath mount is not updated, as in Kubernetes.
    assert_eq!(
        cat(&cluster, "files", "reader", "/etc/mode.conf").as_deref(),
        Some("fast")
    );
    assert_eq!(restart_counts(&cluster.pod("files")), [0, 0], "nothing restarted");

    // A restarted agent adopts the pod's volumes: the same mounts, still updated.
    cluster.agents[0].kill();
    cluster.agents[0].start().unwrap();
    cluster.kubectl_ok(&[
        "patch",
        "configmap",
        "settings",
        "--type=merge",
        "-p",
        r#"{"data":{"mode":"steady"}}"#,
    ]);
    eventually_blocking("the update after the agent's restart", || {
        (cat(&cluster, "files", "reader", "/etc/cfg/mode").as_deref() == Some("steady")).then_some(())
    });
    let secret_mounts = mounts_under(&volumes)
        .iter()
        .filter(|m| m.ends_with("kubernetes.io~secret/creds"))
        .count();
    assert_eq!(secret_mounts, 1, "the Secret's tmpfs is kept, not mounted twice");
    assert_eq!(restart_counts(&cluster.pod("files")), [0, 0], "nothing restarted");

    // A hostPath that fails its type check and a claim that does not exist hold
    // their pods, naming the path and the claim.
    let missing = cluster.agent_dirs[0].join("no-such-dir");
    // hostPath volumes are beyond the baseline Pod Security level berth enforces by default.
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        "default",
        "pod-security.kubernetes.io/enforce=privileged",
    ]);
    let held = late_pod(&image).replacen("name: late\n", "name: hosted\n", 1).replace(
        "configMap:\n      name: late",
        &format!("hostPath:\n      path: {}\n      type: Directory", missing.display()),
    );
    cluster.apply("hosted", &held);
    cluster.wait_event(
        "hosted",
        &format!("hostPath type check failed: {} is not a directory", missing.display()),
    );
    let claimed = late_pod(&image).replacen("name: late\n", "name: claimed\n", 1).replace(
        "configMap:\n      name: late",
        "persistentVolumeClaim:\n      claimName: data",
    );
    cluster.apply("claimed", &claimed);
    cluster.wait_event("claimed", "persistentvolumeclaim \"data\" not found");
    cluster.delete_pod("hosted");
    cluster.delete_pod("claimed");

    // A ConfigMap that is not there holds the pod, saying why, until it is created.
    cluster.apply("late", &late_pod(&image));
    let message = cluster.wait_event("late", "configmap \"late\" not found");
    assert_eq!(
        message,
        "MountVolume.SetUp failed for volume \"cfg\" : configmap \"late\" not found"
    );
    // The agent writes the event and the pod's status apart: the status may follow.
    let waiting = cluster.wait_pod("late", "its container waiting", |pod| {
        let waiting = &ContainerCluster::container_status(pod, "main")["state"]["waiting"];
        waiting.is_object().then(|| waiting.clone())
    });
    assert_eq!(waiting["reason"], "ContainerCreating", "{waiting}");
    cluster.kubectl_ok(&["create", "configmap", "late", "--from-literal=ready=yes"]);
    cluster.wait_running("late");
    assert_eq!(cat(&cluster, "late", "main", "/etc/cfg/ready").as_deref(), Some("yes"));

    // Secret values are in no Event.
    let events = cluster.kubectl_ok(&["get", "events", "-o", "json"]);
    assert!(!events.contains("hunter2") && !events.contains("swordfish"), "{events}");

    // The pods go, and their volumes with them.
    cluster.delete_pod("files");
    cluster.delete_pod("late");
    let pods = cluster.agent_dirs[0].join("pods");
    eventually_blocking("the pods' volumes unmounted and removed", || {
        (mounts_under(&pods).is_empty() && !pods.join(&uid).exists()).then_some(())
    });
}
