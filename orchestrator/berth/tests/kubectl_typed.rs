//! The real kubectl against a one-replica cluster (a `berth server` and a `berth
//! agent` on loopback). kubectl's typed commands send protobuf bodies and never fall
//! back to JSON, so this is what they see: `create namespace`, `create deployment`
//! (whose pods run as real processes), `drain` (cordon, then evictions), and
//! `create secret generic|docker-registry|tls` and `create configmap` (with the
//! tables of secrets, ConfigMaps and RuntimeClasses).
//!
//! Skipped, with a message, where kubectl is not installed.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use berth_testkit::{Cluster, ClusterSpec, Process, QUIET_RAFT_LOG, System, eventually_blocking, free_port};
use common::{BERTH, has_kubectl, http_get, succeeded, workload_pids};
use serde_json::Value;

struct OneNodeCluster {
    server: Cluster,
    api_port: u16,
    agent: Process,
    /// The workloads sleep for this many seconds, so their processes can be told
    /// from any other on the machine.
    marker: String,
    kubeconfig: PathBuf,
}

impl Drop for OneNodeCluster {
    fn drop(&mut self) {
        self.agent.kill();
        for pid in workload_pids(&self.marker) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

impl OneNodeCluster {
    fn start() -> OneNodeCluster {
        let spec = ClusterSpec::new(System::BerthServer, BERTH, 1).env("RUST_LOG", QUIET_RAFT_LOG);
        let mut server = Cluster::new(spec).unwrap();
        let api_port = free_port();
        server.replicas[0].args = vec![format!("--api-listen=127.0.0.1:{api_port}")];
        let dir = server.dir().to_path_buf();
        let agent = Process::new("node-0", BERTH, dir.join("node-0.log"))
            .with_args([
                "agent".into(),
                "--name=node-0".into(),
                format!("--store={}", server.endpoints().join(",")),
                format!("--data-dir={}", dir.join("node-0").display()),
                format!("--listen=127.0.0.1:{}", free_port()),
                "--cpu=2".into(),
                "--memory=2Gi".into(),
                // The deployment's pods run commands on the host (`nginx` is a name
                // only, never pulled).
                "--runtime=process".into(),
                // Many such clusters run at once in the machine's own network
                // namespace: none of them programs its Services into the host's iptables.
                "--proxy-mode=none".into(),
            ])
            .with_env("RUST_LOG", QUIET_RAFT_LOG);
        // An empty kubeconfig: only the flags given here count.
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, "").unwrap();
        let mut cluster = OneNodeCluster {
            marker: format!("{}.{}", 100_000 + std::process::id(), free_port()),
            server,
            api_port,
            agent,
            kubeconfig,
        };
        cluster.server.start_all().unwrap();
        cluster.agent.start().unwrap();
        cluster
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        let cache = self.server.dir().join("kube-cache");
        Command::new("kubectl")
            .arg(format!("--server=http://127.0.0.1:{}", self.api_port))
            .arg(format!("--cache-dir={}", cache.display()))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .unwrap()
    }

    fn get(&self, path: &str) -> (u16, Value) {
        http_get(self.api_port, path)
    }

    fn wait_for_ready_node(&mut self) {
        eventually_blocking("node-0 Ready and the default namespace", || {
            if let Err(exited) = self.server.check_running() {
                panic!("{exited:#}");
            }
            self.agent.assert_running();
            let (_, node) = self.get("/api/v1/nodes/node-0");
            let is_ready = node["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
            let (status, _) = self.get("/api/v1/namespaces/default");
            (is_ready && status == 200).then_some(())
        });
    }

    /// The pods of the `web` deployment.
    fn web_pods(&self) -> Vec<Value> {
        let (status, list) = self.get("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb");
        assert_eq!(status, 200, "{list}");
        list["items"].as_array().cloned().unwrap_or_default()
    }
}

#[test]
fn kubectl_creates_in_protobuf_and_drains_with_evictions() {
    if !has_kubectl() {
        eprintln!("SKIPPED kubectl_creates_in_protobuf_and_drains_with_evictions: kubectl is not installed");
        return;
    }
    let mut cluster = OneNodeCluster::start();
    cluster.wait_for_ready_node();

    let created = succeeded(&cluster.kubectl(&["create", "namespace", "team-a"]));
    assert_eq!(created.trim(), "namespace/team-a created");
    let (status, namespace) = cluster.get("/api/v1/namespaces/team-a");
    assert_eq!(
        (status, &namespace["status"]["phase"]),
        (200, &"Active".into()),
        "{namespace}"
    );

    let marker = cluster.marker.clone();
    let created = succeeded(&cluster.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=2",
        "--",
        "sleep",
        &marker,
    ]));
    assert_eq!(created.trim(), "deployment.apps/web created");
    let (status, deployment) = cluster.get("/apis/apps/v1/namespaces/default/deployments/web");
    assert_eq!(status, 200, "{deployment}");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["spec"]["selector"]["matchLabels"]["app"], "web");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"], serde_json::json!(["sleep", marker]));
    eventually_blocking("2 running web pods and their processes", || {
        let running = cluster
            .web_pods()
            .iter()
            .filter(|p| p["status"]["phase"] == "Running")
            .count();
        (running == 2 && workload_pids(&marker).len() == 2).then_some(())
    });
    let evicted_names: Vec<String> = cluster
        .web_pods()
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();

    let drained = succeeded(&cluster.kubectl(&["drain", "node-0", "--ignore-daemonsets", "--force", "--timeout=60s"]));
    assert!(drained.contains("node/node-0 cordoned"), "{drained}");
    for name in &evicted_names {
        assert!(drained.contains(&format!("pod/{name} evicted")), "{drained}");
        let (status, _) = cluster.get(&format!("/api/v1/namespaces/default/pods/{name}"));
        assert_eq!(status, 404, "{name} is gone");
    }
    assert!(drained.contains("node/node-0 drained"), "{drained}");
    let (_, node) = cluster.get("/api/v1/nodes/node-0");
    assert_eq!(node["spec"]["unschedulable"], true, "{node}");
    // The replacements wait: the only node is cordoned. The evicted pods' processes stop.
    eventually_blocking("2 pending replacements and no web process", || {
        let pods = cluster.web_pods();
        let is_waiting = |p: &Value| p["spec"]["nodeName"].as_str().unwrap_or_default().is_empty();
        (pods.len() == 2 && pods.iter().all(is_waiting) && workload_pids(&marker).is_empty()).then_some(())
    });

    // ServiceAccounts are served: kubectl's typed create makes one.
    let made = cluster.kubectl(&["create", "serviceaccount", "settings"]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (status, account) = cluster.get("/api/v1/namespaces/default/serviceaccounts/settings");
    assert_eq!(status, 200, "{account}");
}

#[test]
fn kubectl_creates_secrets_and_config_maps_and_lists_runtime_classes() {
    if !has_kubectl() {
        eprintln!("SKIPPED kubectl_creates_secrets_and_lists_runtime_classes: kubectl is not installed");
        return;
    }
    let mut cluster = OneNodeCluster::start();
    cluster.wait_for_ready_node();

    let created = succeeded(&cluster.kubectl(&[
        "create",
        "secret",
        "docker-registry",
        "pull",
        "--docker-server=registry.example:5000",
        "--docker-username=puller",
        "--docker-password=s3cret",
    ]));
    assert_eq!(created.trim(), "secret/pull created");
    let (status, secret) = cluster.get("/api/v1/namespaces/default/secrets/pull");
    assert_eq!(status, 200, "{secret}");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    // What the agent makes of it when a pod names it in imagePullSecrets.
    let credentials = berth_node::image::pull_secrets::credentials_from_secret(&secret).unwrap();
    assert_eq!(credentials.len(), 1, "{credentials:?}");
    assert_eq!(
        (
            credentials[0].registry.as_str(),
            credentials[0].username.as_str(),
            credentials[0].password.as_str()
        ),
        ("registry.example:5000", "puller", "s3cret")
    );

    let created = succeeded(&cluster.kubectl(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=user=admin",
        "--from-literal=password=pw",
    ]));
    assert_eq!(created.trim(), "secret/creds created");
    let yaml = succeeded(&cluster.kubectl(&["get", "secret", "creds", "-o", "yaml"]));
    assert!(yaml.contains("  user: YWRtaW4="), "{yaml}");
    assert!(yaml.contains("  password: cHc="), "{yaml}");
    assert!(yaml.contains("type: Opaque"), "{yaml}");
    let refused = cluster.kubectl(&["create", "secret", "generic", "bad", "--from-literal=a b=c"]);
    assert!(!refused.status.success(), "a key with a space is refused");

    let table = succeeded(&cluster.kubectl(&["get", "secrets"]));
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "TYPE", "DATA", "AGE"], "{table}");
    assert_eq!(rows[1][..3], ["creds", "Opaque", "2"], "{table}");
    assert_eq!(rows[2][..3], ["pull", "kubernetes.io/dockerconfigjson", "1"], "{table}");

    // kubectl checks that the certificate and the key are a pair before it sends them.
    let files = tempfile::tempdir().unwrap();
    let cert = files.path().join("tls.crt");
    let key = files.path().join("tls.key");
    std::fs::write(&cert, TEST_CERT).unwrap();
    std::fs::write(&key, TEST_KEY).unwrap();
    let created = succeeded(&cluster.kubectl(&[
        "create",
        "secret",
        "tls",
        "web-tls",
        &format!("--cert={}", cert.display()),
        &format!("--key={}", key.display()),
    ]));
    assert_eq!(created.trim(), "secret/web-tls created");
    let (status, tls) = cluster.get("/api/v1/namespaces/default/secrets/web-tls");
    assert_eq!(status, 200, "{tls}");
    assert_eq!(tls["type"], "kubernetes.io/tls");
    let typed: berth_api::kinds::secret::Secret = serde_json::from_value(tls.clone()).unwrap();
    let decoded = |key: &str| String::from_utf8(typed.data.as_ref().unwrap()[key].0.clone()).unwrap();
    assert_eq!(
        (decoded("tls.crt"), decoded("tls.key")),
        (TEST_CERT.into(), TEST_KEY.into())
    );

    let settings = files.path().join("app.properties");
    std::fs::write(&settings, "color=blue\n").unwrap();
    let created = succeeded(&cluster.kubectl(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
        &format!("--from-file={}", settings.display()),
    ]));
    assert_eq!(created.trim(), "configmap/settings created");
    let (status, config) = cluster.get("/api/v1/namespaces/default/configmaps/settings");
    assert_eq!(status, 200, "{config}");
    assert_eq!(
        config["data"],
        serde_json::json!({"mode": "fast", "app.properties": "color=blue\n"})
    );
    let refused = cluster.kubectl(&["create", "configmap", "bad", "--from-literal=a b=c"]);
    assert!(!refused.status.success(), "a key with a space is refused");
    let table = succeeded(&cluster.kubectl(&["get", "cm"]));
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "DATA", "AGE"], "{table}");
    assert_eq!(rows[1][..2], ["settings", "2"], "{table}");

    let table = succeeded(&cluster.kubectl(&["get", "runtimeclasses"]));
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows[0], ["NAME", "HANDLER", "AGE"], "{table}");
    let classes: Vec<&[&str]> = rows[1..].iter().map(|r| &r[..2]).collect();
    assert_eq!(classes, [["process", "process"], ["runc", "runc"]], "{table}");
}

/// A self-signed certificate for web.example and its key, for `create secret tls`.
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBgjCCASmgAwIBAgIUD3D8p9lRQZofnPww6Oc+mSQS3KAwCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLd2ViLmV4YW1wbGUwIBcNMjYxMjA2MDUyMzQ1WhgPMjEyNjEx
MTIwNTIzNDVaMBYxFDASBgNVBAMMC3dlYi5leGFtcGxlMFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAEu+qOeBQgmRaw1PMTQ3Oi4/FnSjqjAYGTW7v+hNdhFQsh5qfr
H8Jp7qr/kTz+g9a9t2V/kGZHF1q7ZdZaGJdTeaNTMFEwHQYDVR0OBBYEFEQynXRD
oGeLBQ6PvG6yHBx0KRccMB8GA1UdIwQYMBaAFEQynXRDoGeLBQ6PvG6yHBx0KRcc
MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgLMV4bwEHDx7Ry5h9
ucC+6jRKGAZuHgdSofwi8whNcXMCIFHacqrnjJ8smy4+RxpoQY2J2uxu8lX8OvkA
TLJdvYWK
-----END CERTIFICATE-----
";
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPsX93NRw+chqveep
nCZZtGliOJyRC3OLoTJcuAqgNZKhRANCAAS76o54FCCZFrDU8xNDc6Lj8WdKOqMB
gZNbu/6E12EVCyHmp+sfwmnuqv+RPP6D1r23ZX+QZkcXWrtl1loYl1N5
-----END PRIVATE KEY-----
";
