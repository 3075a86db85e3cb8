//! A private image, end to end: a registry on loopback behind htpasswd, a
//! `kubernetes.io/dockerconfigjson` Secret created through the API, and a pod on a
//! runc agent that names it in `imagePullSecrets` runs; a pod that names no secret
//! waits in `ErrImagePull`/`ImagePullBackOff` with the registry's "unauthorized".
//! The pod that runs names a user's RuntimeClass whose handler is runc. Secrets
//! are encrypted at rest, the agent given the server's keys.
//!
//! Needs root, runc, the CNI plugins, Debian's docker-registry and a static busybox:
//! skipped without them on a developer's machine, failing under CI.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use berth_client::envelope::config::generated;
use berth_node::network::{CniNetwork, CniSettings};
use berth_node::runtime::OciRuntime;
use berth_testkit::oci::busybox_image;
use berth_testkit::registry::Registry;
use berth_testkit::{Cluster, ClusterSpec, Process, QUIET_RAFT_LOG, System, eventually_blocking, free_port};
use common::{BERTH, http, http_get};
use serde_json::{Value, json};

const USER: &str = "puller";
const PASSWORD: &str = "s3cret";
const PODS: &str = "/api/v1/namespaces/default/pods";

/// One server and one agent running pods on runc, with a bridge and a pod CIDR of
/// their own so as not to meet another test's pods.
struct RuncCluster {
    server: Cluster,
    api_port: u16,
    agent: Process,
    bridge: String,
}

impl Drop for RuncCluster {
    /// Deletes the pods and waits for the agent to tear them down (containers,
    /// mounts, cgroups, netns), then stops it and removes its bridge.
    fn drop(&mut self) {
        let (_, pods) = http_get(self.api_port, PODS);
        let names: Vec<String> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        for name in &names {
            http(self.api_port, "DELETE", &format!("{PODS}/{name}"), None);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let (_, pods) = http_get(self.api_port, PODS);
            if pods["items"].as_array().is_none_or(|items| items.is_empty()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.agent.stop(Duration::from_secs(15));
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
    }
}

impl RuncCluster {
    fn start() -> RuncCluster {
        let id = std::process::id();
        // A /16 of 10.0.0.0/8 that no other test's cluster is likely to hold (the
        // default is 10.244.0.0/16).
        let cluster_cidr = format!("10.{}.0.0/16", 100 + id % 100);
        let spec = ClusterSpec::new(System::BerthServer, BERTH, 1)
            .args([format!("--cluster-cidr={cluster_cidr}")])
            .env("RUST_LOG", QUIET_RAFT_LOG);
        let mut server = Cluster::new(spec).unwrap();
        let api_port = free_port();
        let dir = server.dir().to_path_buf();
        // Secrets encrypted at rest, as `berth up` runs: the agent reads the pull
        // secret through the same keys.
        let encryption = dir.join("encryption.yaml");
        std::fs::write(&encryption, generated("k1").unwrap()).unwrap();
        let encryption = format!("--encryption-provider-config={}", encryption.display());
        server.replicas[0].args = vec![format!("--api-listen=127.0.0.1:{api_port}"), encryption.clone()];
        let bridge = format!("bps{}", id % 1_000_000);
        let agent = Process::new("node-0", BERTH, dir.join("node-0.log"))
            .with_args([
                "agent".into(),
                "--name=node-0".into(),
                format!("--store={}", server.endpoints().join(",")),
                format!("--data-dir={}", dir.join("node-0").display()),
                format!("--listen=127.0.0.1:{}", free_port()),
                "--cpu=2".into(),
                "--memory=2Gi".into(),
                "--restart-backoff=500ms".into(),
                "--runtime=runc".into(),
                format!("--pod-bridge={bridge}"),
                "--stop-pods-on-exit".into(),
                encryption,
            ])
            .with_env("RUST_LOG", QUIET_RAFT_LOG);
        let mut cluster = RuncCluster {
            server,
            api_port,
            agent,
            bridge,
        };
        cluster.server.start_all().unwrap();
        cluster.agent.start().unwrap();
        eventually_blocking("node-0 Ready", || {
            if let Err(exited) = cluster.server.check_running() {
                panic!("{exited:#}");
            }
            cluster.agent.assert_running();
            let (_, node) = http_get(api_port, "/api/v1/nodes/node-0");
            let is_ready = node["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            let (status, _) = http_get(api_port, "/api/v1/namespaces/default");
            (is_ready && status == 200).then_some(())
        });
        cluster
    }

    fn create(&self, path: &str, object: &Value) {
        let (status, answer) = http(self.api_port, "POST", path, Some(object));
        assert_eq!(status, 201, "POST {path}: {answer}");
    }

    fn pod(&self, name: &str) -> Value {
        http_get(self.api_port, &format!("{PODS}/{name}")).1
    }
}

/// Whether this host can run the test; says why not (a skip, or a failure in CI).
fn host_can_run_it() -> bool {
    // The plugins the agent looks for, where it looks (the state dir is not read).
    let cni = CniSettings::new(std::env::temp_dir());
    match OciRuntime::available().and_then(|()| CniNetwork::available(&cni)) {
        Ok(()) => true,
        Err(why) => {
            berth_testkit::skip(&why);
            false
        }
    }
}

fn pod_manifest(name: &str, image: &str, pull_secret: Option<&str>) -> Value {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": image, "command": ["sleep", "3600"]}]}});
    if let Some(secret) = pull_secret {
        pod["spec"]["imagePullSecrets"] = json!([{"name": secret}]);
    }
    pod
}

#[test]
fn a_pull_secret_from_the_api_opens_a_private_registry() {
    if !host_can_run_it() {
        return;
    }
    let Some(registry) = Registry::start_with_htpasswd_or_skip(USER, PASSWORD) else {
        return;
    };
    let Some(image) = busybox_image() else {
        return;
    };
    registry.push(&image.build().unwrap(), "private/busybox", "1").unwrap();
    let reference = registry.reference("private/busybox", "1");
    let cluster = RuncCluster::start();

    // Without a secret first: once the image is on the node, a pod that may use the
    // node's copy (IfNotPresent) would run without one, as on Kubernetes.
    let mut without = pod_manifest("without-secret", &reference, None);
    without["spec"]["containers"][0]["imagePullPolicy"] = "Always".into();
    cluster.create(PODS, &without);
    let refused = || {
        let pod = cluster.pod("without-secret");
        let waiting = &pod["status"]["containerStatuses"][0]["state"]["waiting"];
        let reason = waiting["reason"].as_str().unwrap_or_default().to_string();
        let message = waiting["message"].as_str().unwrap_or_default().to_string();
        ["ErrImagePull", "ImagePullBackOff"]
            .contains(&reason.as_str())
            .then_some((reason, message))
    };
    eventually_blocking("the pod without a secret in ErrImagePull or ImagePullBackOff", refused);
    // The registry's words reach the user: in the waiting message or, as the
    // kubelet reports a failed pull, in the pod's Failed event.
    let events = "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dwithout-secret";
    eventually_blocking("the registry's \"unauthorized\" shown for the pod", || {
        let (_, events) = http_get(cluster.api_port, events);
        let in_events = events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["reason"] == "Failed" && e["message"].as_str().is_some_and(|m| m.contains("unauthorized")));
        let in_status = refused().is_some_and(|(_, message)| message.contains("unauthorized"));
        (in_events || in_status).then_some(())
    });

    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull"},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": registry.docker_config_json(USER, PASSWORD)}});
    cluster.create("/api/v1/namespaces/default/secrets", &secret);
    // On a class of the user's, which the scheduler and the agent must read to
    // know it means runc (no node offers a handler named `fast`).
    let fast = json!({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
        "metadata": {"name": "fast"}, "handler": "runc"});
    cluster.create("/apis/node.k8s.io/v1/runtimeclasses", &fast);
    let mut with = pod_manifest("with-secret", &reference, Some("pull"));
    with["spec"]["runtimeClassName"] = "fast".into();
    cluster.create(PODS, &with);
    eventually_blocking("the pod with the pull secret Running", || {
        let pod = cluster.pod("with-secret");
        (pod["status"]["phase"] == "Running").then_some(())
    });
    let pod = cluster.pod("with-secret");
    let image_id = pod["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap_or_default();
    assert!(image_id.contains("sha256:"), "the image's digest: {pod}");
    let container_id = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or_default();
    assert!(container_id.starts_with("berth-runc://"), "run by runc: {pod}");

    // The image is on the node now, but a pull that must ask the registry still
    // has no credentials.
    let pod = cluster.pod("without-secret");
    assert_eq!(pod["status"]["phase"], "Pending", "{pod}");
    assert!(refused().is_some(), "{pod}");
}
