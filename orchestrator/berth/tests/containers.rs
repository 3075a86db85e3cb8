//! Real containers end to end: an image built here and pushed to a registry, pulled
//! by an agent on a test host, run by runc in its own namespaces and cgroups, as the
//! user and with the capabilities the pod asked for; limits that hold; pull failures
//! that say why; an agent killed with -9 that adopts its containers; a deleted pod
//! that leaves nothing behind. Needs root, runc, the CNI plugins and docker-registry
//! (skipped without them on a developer's machine, failing under CI).
//!
//! The pods' grace period is 1 s: their PID 1 (`sleep`, `httpd`) has no SIGTERM
//! handler, so it ignores the signal, and the default 30 s would only slow the tests.

mod common;

use std::path::Path;

use berth_testkit::eventually_blocking;
use common::containers::{ContainerCluster, cgroup_roots, mounts_under, pod_cgroups};
use serde_json::Value;

const REPO: &str = "e2e/busybox";

/// What a container prints about itself: its namespaces, pid, uid, hostname and
/// capabilities. `$$$$` is the shell's `$$` once Kubernetes' `$(VAR)` expansion has
/// turned `$$` into `$`; `$(id -u)` names no variable and reaches the shell as is.
const SELF_REPORT: &str = "for ns in pid mnt uts ipc net; do echo \"ns $ns $(readlink /proc/self/ns/$ns)\"; done; \
     echo \"pid $$$$\"; echo \"uid $(id -u)\"; echo \"hostname $(hostname)\"; grep CapEff /proc/self/status; echo reported; exec sleep 3600";

fn isolated_pod(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: isolated
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: user
    image: {image}
    command: ["sh", "-c", {SELF_REPORT:?}]
    securityContext:
      runAsUser: 1000
      runAsGroup: 1000
  - name: caps
    image: {image}
    command: ["sh", "-c", {SELF_REPORT:?}]
    securityContext:
      capabilities:
        drop: ["ALL"]
        add: ["NET_BIND_SERVICE"]
"#
    )
}

/// `ns <kind> <link>` lines of a self-report, by kind.
fn namespaces(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|l| l.strip_prefix("ns "))
        .filter_map(|l| l.split_once(' '))
        .map(|(kind, link)| (kind.to_string(), link.to_string()))
        .collect()
}

fn line_value<'a>(log: &'a str, key: &str) -> &'a str {
    log.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key:?} in {log}"))
}

/// The manifest of an image in the registry's storage, rewritten with one more byte:
/// still a valid manifest, no longer the one its digest names.
fn tamper_with_blob(storage: &Path, digest: &str) {
    let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
    let data = storage.join(format!("docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]));
    let mut bytes = std::fs::read(&data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    bytes.push(b'\n');
    std::fs::write(&data, bytes).unwrap();
}

#[test]
fn a_pulled_image_runs_isolated_as_told_and_its_limits_hold() {
    let Some(mut cluster) = ContainerCluster::start(1) else {
        return;
    };
    let (image, digest) = cluster.push_busybox(REPO, "1.0", |image| image);

    // Namespaces, user, capabilities, imageID.
    cluster.apply("isolated", &isolated_pod(&image));
    let pod = cluster.wait_running("isolated");
    let agent_pid = cluster.agents[ContainerCluster::host_of(&pod)]
        .pid()
        .expect("the agent runs");
    let user = cluster.wait_log("isolated", "user", "reported");
    let caps = cluster.wait_log("isolated", "caps", "reported");
    for (kind, link) in namespaces(&user) {
        let agents = std::fs::read_link(format!("/proc/{agent_pid}/ns/{kind}")).unwrap();
        assert_ne!(
            link,
            agents.display().to_string(),
            "the container shares the host's {kind} namespace"
        );
    }
    assert_eq!(namespaces(&user).len(), 5, "{user}");
    // Kubernetes shares the network, IPC and UTS namespaces across a pod (PID only
    // with shareProcessNamespace), so the mount and PID ones differ.
    for (kind, shared) in [
        ("net", true),
        ("ipc", true),
        ("uts", true),
        ("mnt", false),
        ("pid", false),
    ] {
        let link = |log: &str| namespaces(log).into_iter().find(|(k, _)| k == kind).map(|(_, l)| l);
        assert_eq!(
            link(&user) == link(&caps),
            shared,
            "the pod's containers share its {kind} namespace: {shared}\n{user}\n{caps}"
        );
    }
    assert_eq!(line_value(&user, "hostname "), "isolated", "the pod's name");
    assert_eq!(line_value(&caps, "hostname "), "isolated");
    assert_eq!(
        line_value(&user, "pid "),
        "1",
        "the container's process is PID 1 of its own"
    );
    assert_eq!(line_value(&user, "uid "), "1000", "runAsUser");
    assert_eq!(line_value(&caps, "uid "), "0");
    assert_eq!(
        line_value(&user, "CapEff:"),
        "0000000000000000",
        "a non-root user has no capability"
    );
    assert_eq!(
        line_value(&caps, "CapEff:"),
        "0000000000000400",
        "drop ALL, add NET_BIND_SERVICE: only bit 10"
    );
    for container in ["user", "caps"] {
        let status = ContainerCluster::container_status(&pod, container);
        assert_eq!(
            status["imageID"],
            format!("{}/{REPO}@{digest}", cluster.registry.host()),
            "{status}"
        );
        assert_eq!(status["image"], image.as_str(), "{status}");
    }
    cluster.delete_pod("isolated");

    // A memory limit: the kernel's OOM killer ends the container, and says so.
    cluster.apply(
        "hog",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: hog
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: hog
    image: {image}
    command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
    resources:
      limits:
        memory: 32Mi
"#
        ),
    );
    let terminated = cluster.wait_pod("hog", "its container ended", |pod| {
        let status = ContainerCluster::container_status(pod, "hog");
        status["state"]["terminated"]
            .is_object()
            .then(|| status["state"]["terminated"].clone())
    });
    assert_eq!(terminated["reason"], "OOMKilled", "{terminated}");
    assert_eq!(terminated["exitCode"], 137, "{terminated}");
    cluster.delete_pod("hog");

    // A CPU limit: the container's cgroup throttles a busy loop.
    cluster.apply(
        "spinner",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata:
  name: spinner
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: spin
    image: {image}
    command: ["sh", "-c", "yes > /dev/null"]
    resources:
      limits:
        cpu: 100m
"#
        ),
    );
    let pod = cluster.wait_running("spinner");
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    eventually_blocking("the spinner's cgroup counts throttled periods", || {
        let cpu = cgroup_roots().into_iter().find(|root| {
            let hierarchy = root.parent().unwrap();
            hierarchy.join("cpu.cfs_quota_us").exists() || hierarchy.join("cpu.max").exists()
        })?;
        let containers = std::fs::read_dir(cpu.join(&uid)).ok()?;
        let throttled: u64 = containers
            .flatten()
            .filter_map(|c| std::fs::read_to_string(c.path().join("cpu.stat")).ok())
            .filter_map(|stat| {
                stat.lines()
                    .find_map(|l| l.strip_prefix("nr_throttled "))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .sum();
        (throttled > 0).then_some(())
    });
    cluster.delete_pod("spinner");
}

#[test]
fn pull_failures_name_the_registrys_error_and_a_wrong_digest_is_refused() {
    let Some(mut cluster) = ContainerCluster::start(1) else {
        return;
    };
    let (image, digest) = cluster.push_busybox(REPO, "1.0", |image| image);
    let missing = image.replace(":1.0", ":missing");
    let by_digest = cluster.registry.reference_by_digest(REPO, &digest);
    for (name, reference) in [("missing", &missing), ("tampered", &by_digest)] {
        cluster.apply(
            name,
            &format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {reference}\n    command: [\"sleep\", \"3600\"]\n"
            ),
        );
        if name == "missing" {
            // The tampering comes after the first pod, whose pull must not see it.
            tamper_with_blob(&cluster.registry.storage_dir(), &digest);
        }
    }
    let waiting = |pod: &Value| -> Option<Value> {
        let status = ContainerCluster::container_status(pod, "c");
        let waiting = &status["state"]["waiting"];
        (waiting["reason"] == "ImagePullBackOff").then(|| waiting.clone())
    };
    // As the kubelet: the status says ImagePullBackOff naming the image, and the
    // pod's Failed event carries the registry's (or the puller's) error.
    let missing_tag = cluster.wait_pod("missing", "ImagePullBackOff", waiting);
    let message = missing_tag["message"].as_str().unwrap_or_default();
    assert!(message.contains(&missing), "the image is named: {missing_tag}");
    let failure = cluster.wait_event("missing", "manifest unknown");
    assert!(failure.contains(&missing), "{failure}");

    let tampered = cluster.wait_pod("tampered", "ImagePullBackOff", waiting);
    assert!(
        tampered["message"].as_str().unwrap_or_default().contains(&digest),
        "{tampered}"
    );
    let failure = cluster.wait_event("tampered", "digest");
    assert!(failure.contains(&digest), "the digest asked for is named: {failure}");
    assert_ne!(cluster.pod("tampered")["status"]["phase"], "Running");
    assert!(
        cluster.runc_ids(0).is_empty(),
        "no container ran from a failed pull: {:?}",
        cluster.runc_ids(0)
    );
}

#[test]
fn a_restarted_agent_adopts_its_containers_and_a_deleted_pod_leaves_nothing_behind() {
    let Some(mut cluster) = ContainerCluster::start(1) else {
        return;
    };
    let (image, _) = cluster.push_busybox(REPO, "1.0", |image| image);
    let pod = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: {image}\n    command: [\"sleep\", \"3600\"]\n    ports:\n    - containerPort: 8080\n      hostPort: 18080\n"
        )
    };
    // Host ports are beyond the baseline Pod Security level berth enforces by default.
    cluster.kubectl_ok(&[
        "label",
        "namespace",
        "default",
        "pod-security.kubernetes.io/enforce=privileged",
    ]);
    cluster.apply("survivor", &pod("survivor"));
    let before = cluster.wait_running("survivor");
    let status_before = ContainerCluster::container_status(&before, "c");
    let ids_before = cluster.runc_ids(0);
    assert_eq!(ids_before.len(), 1, "{ids_before:?}");
    let pid_before = cluster.runc_state(0, &ids_before[0]).expect("runc knows it")["pid"].clone();

    cluster.agents[0].kill();
    cluster.agents[0].start().unwrap();
    // Once the restarted agent runs a new pod it has been through its start-up pass.
    cluster.apply(
        "newcomer",
        &pod("newcomer").replace("hostPort: 18080", "hostPort: 18081"),
    );
    cluster.wait_running("newcomer");
    let after = cluster.wait_running("survivor");
    let status_after = ContainerCluster::container_status(&after, "c");
    assert_eq!(
        status_after["containerID"], status_before["containerID"],
        "{status_after}"
    );
    assert_eq!(
        status_after["restartCount"], status_before["restartCount"],
        "{status_after}"
    );
    assert_eq!(
        status_after["state"]["running"]["startedAt"],
        status_before["state"]["running"]["startedAt"]
    );
    assert!(
        cluster.runc_ids(0).contains(&ids_before[0]),
        "{:?}",
        cluster.runc_ids(0)
    );
    let state = cluster.runc_state(0, &ids_before[0]).expect("runc still knows it");
    assert_eq!(state["pid"], pid_before, "the same process: {state}");
    assert_eq!(state["status"], "running", "{state}");

    // Deletion: nothing of either pod stays.
    let uids: Vec<String> = ["survivor", "newcomer"]
        .iter()
        .map(|name| cluster.pod(name)["metadata"]["uid"].as_str().unwrap().to_string())
        .collect();
    let ips: Vec<String> = ["survivor", "newcomer"]
        .iter()
        .map(|name| {
            cluster.pod(name)["status"]["podIP"]
                .as_str()
                .unwrap_or("none")
                .to_string()
        })
        .collect();
    let before = traces(&cluster, &uids, &ips);
    let unseen: Vec<_> = before.iter().filter(|(_, found)| found.is_empty()).collect();
    assert!(
        unseen.is_empty(),
        "running pods leave traces these probes see: {before:?}"
    );
    cluster.delete_pod("survivor");
    cluster.delete_pod("newcomer");
    // What is left is printed as it changes, so a test that hangs says what stayed.
    let mut last_left = Vec::new();
    eventually_blocking("the pods leave nothing behind", || {
        let left: Vec<_> = traces(&cluster, &uids, &ips)
            .into_iter()
            .filter(|(_, found)| !found.is_empty())
            .collect();
        if left != last_left {
            eprintln!("still there: {left:?}");
            last_left = left.clone();
        }
        left.is_empty().then_some(())
    });
}

/// What pods (by uid and IP) of agent 0 leave on its host, by kind: mounts under its
/// data dir (the pods' network, IPC and UTS namespaces among them), cgroups, network
/// namespace files, sandbox directories, veths, iptables rules, bundles, runc
/// containers.
fn traces(cluster: &ContainerCluster, uids: &[String], ips: &[String]) -> Vec<(&'static str, Vec<String>)> {
    let data_dir = &cluster.agent_dirs[0];
    let host = cluster.network.host(0);
    let entries = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().display().to_string())
            .collect()
    };
    let mounts = mounts_under(data_dir).iter().map(|p| p.display().to_string()).collect();
    let cgroups = cgroup_roots()
        .iter()
        .flat_map(|root| pod_cgroups(root, uids))
        .map(|p| p.display().to_string())
        .collect();
    // The host's own link to the test network is a veth too.
    let veths = host
        .ip(&["-o", "link", "show", "type", "veth"])
        .unwrap()
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().to_string()))
        .filter(|name| !name.starts_with("eth0"))
        .collect();
    let saved = host.command("iptables-save").output().unwrap();
    let rules = String::from_utf8_lossy(&saved.stdout)
        .lines()
        .filter(|l| {
            let mentions_pod = uids.iter().chain(ips).any(|word| {
                l.contains(&format!("{word}/")) || l.contains(&format!("{word}:")) || l.contains(&format!("\"{word}"))
            });
            mentions_pod || l.contains("--dport 1808")
        })
        .map(String::from)
        .collect();
    vec![
        ("mounts", mounts),
        ("cgroups", cgroups),
        ("netns files", entries(&data_dir.join("network/netns"))),
        ("pod sandbox directories", entries(&data_dir.join("pods"))),
        ("veths", veths),
        ("iptables rules", rules),
        ("bundles", entries(&data_dir.join("oci/bundles"))),
        ("runc containers", cluster.runc_ids(0)),
    ]
}
