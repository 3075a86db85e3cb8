//! Secrets encrypted at rest, end to end: three `berth server` replicas given one
//! EncryptionConfiguration. What `etcdctl` reads under `/registry/secrets/` is
//! Kubernetes' `k8s:enc:aesgcm:v1:<key>:` envelope with no plaintext in it, while
//! every API server serves the Secret as written; a Secret stored in plain text
//! before stays readable. A key rotation (the new key added, made first, every
//! Secret rewritten by `berth secrets rotate-key`, the old key dropped) keeps every
//! Secret readable. A wrong key is refused by name, by the API server and by the
//! rewrite, and the stored values are left as they were.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use berth_client::envelope::config::new_key;
use berth_testkit::eventually_blocking;
use common::{BERTH, TestCluster, http};
use serde_json::{Value, json};

const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const FLAG: &str = "--encryption-provider-config";

/// An EncryptionConfiguration of Secrets: aesgcm with `keys` (the first encrypts),
/// then identity.
fn write_config(path: &Path, keys: &[(&str, &str)]) {
    let keys: String = keys
        .iter()
        .map(|(name, secret)| format!("            - name: {name}\n              secret: {secret}\n"))
        .collect();
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources:\n      \
         - secrets\n    providers:\n      - aesgcm:\n          keys:\n{keys}      - identity: {{}}\n"
    );
    std::fs::write(path, text).unwrap();
}

/// The stored bytes of a key, as etcdctl reads them through a replica's etcd port.
fn etcdctl_value(cluster: &TestCluster, key: &str) -> Vec<u8> {
    let out = Command::new("etcdctl")
        .args([
            "--endpoints",
            &cluster.servers.endpoints()[0],
            "--command-timeout=5s",
            "get",
            key,
            "--print-value-only",
        ])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl (the test script installs it)");
    assert!(
        out.status.success(),
        "etcdctl get {key}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut value = out.stdout;
    if value.last() == Some(&b'\n') {
        value.pop();
    }
    value
}

fn etcdctl_put(cluster: &TestCluster, key: &str, value: &str) {
    let out = Command::new("etcdctl")
        .args(["--endpoints", &cluster.servers.endpoints()[0], "put", key, value])
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl");
    assert!(
        out.status.success(),
        "etcdctl put: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Restarts every replica with `config`, one at a time, each serving its API again
/// before the next goes.
fn restart_servers_with(cluster: &mut TestCluster, config: &Path) {
    for i in 0..cluster.servers.replicas.len() {
        let args = &mut cluster.servers.replicas[i].args;
        args.retain(|a| !a.starts_with(FLAG));
        args.push(format!("{FLAG}={}", config.display()));
        cluster.servers.restart(i).unwrap();
        let port = cluster.api_ports[i];
        eventually_blocking("the restarted API server", || {
            (http(port, "GET", SECRETS, None).0 == 200).then_some(())
        });
    }
}

/// The Secret `name`'s `data` as every API server serves it (they must agree).
fn served_data(cluster: &TestCluster, name: &str) -> Value {
    let mut seen = Vec::new();
    for port in &cluster.api_ports {
        let (status, secret) = http(*port, "GET", &format!("{SECRETS}/{name}"), None);
        assert_eq!(status, 200, "GET secret {name} on :{port}: {secret}");
        seen.push(secret["data"].clone());
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    seen.remove(0)
}

fn rotate(cluster: &TestCluster, config: &Path) -> Output {
    Command::new(BERTH)
        .args(["secrets", "rotate-key", FLAG])
        .arg(config)
        .args(["--endpoints", &cluster.servers.endpoints().join(",")])
        .output()
        .unwrap()
}

#[test]
fn secrets_are_ciphertext_in_the_store_and_survive_a_key_rotation() {
    let (k1, k2) = (new_key().unwrap(), new_key().unwrap());
    let mut cluster = TestCluster::new("3s");
    let dir = cluster.servers.dir().to_path_buf();
    let first = dir.join("encryption-1.yaml");
    write_config(&first, &[("k1", &k1)]);
    for replica in &mut cluster.servers.replicas {
        replica.args.push(format!("{FLAG}={}", first.display()));
    }
    for agent in &mut cluster.agents {
        let mut args = agent.args().to_vec();
        args.push(format!("{FLAG}={}", first.display()));
        agent.set_args(args);
    }
    cluster.start_all();
    let port = cluster.api_ports[0];
    eventually_blocking("the API server", || {
        (http(port, "GET", SECRETS, None).0 == 200).then_some(())
    });

    // Written through the API: ciphertext in the store, the data back from every server.
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db"},
        "data": {"password": "aHVudGVyMg=="},
        "stringData": {"user": "admin-user"},
    });
    let (status, created) = http(port, "POST", SECRETS, Some(&secret));
    assert_eq!(status, 201, "{created}");
    let stored = etcdctl_value(&cluster, "/registry/secrets/default/db");
    assert!(
        stored.starts_with(b"k8s:enc:aesgcm:v1:k1:"),
        "{}",
        String::from_utf8_lossy(&stored)
    );
    for plain in [
        "hunter2",
        "aHVudGVyMg==",
        "password",
        "admin-user",
        "YWRtaW4tdXNlcg==",
        "Opaque",
    ] {
        assert!(!contains(&stored, plain), "{plain:?} is readable in the store");
    }
    let db = json!({"password": "aHVudGVyMg==", "user": "YWRtaW4tdXNlcg=="});
    assert_eq!(served_data(&cluster, "db"), db);
    // Other kinds are not encrypted: a namespace is stored as JSON.
    assert!(etcdctl_value(&cluster, "/registry/namespaces/default").starts_with(b"{"));

    // A Secret stored in plain text (before encryption was turned on) stays readable.
    let legacy = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "legacy", "namespace": "default", "uid": "5b1c7e2a-0d7e-4f51-9b9e-5f1f0c7a0d11",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "data": {"token": "cGxhaW4="},
    });
    etcdctl_put(&cluster, "/registry/secrets/default/legacy", &legacy.to_string());
    assert_eq!(served_data(&cluster, "legacy"), json!({"token": "cGxhaW4="}));

    // A wrong key under the right name: the rewrite refuses before writing anything.
    let wrong = dir.join("encryption-wrong.yaml");
    write_config(&wrong, &[("k1", &k2)]);
    let out = rotate(&cluster, &wrong);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a rewrite with the wrong key succeeded");
    assert!(
        stderr.contains("/registry/secrets/default/db") && stderr.contains("\"k1\""),
        "{stderr}"
    );
    assert_eq!(
        etcdctl_value(&cluster, "/registry/secrets/default/db"),
        stored,
        "untouched"
    );
    assert!(
        etcdctl_value(&cluster, "/registry/secrets/default/legacy").starts_with(b"{"),
        "untouched"
    );

    // An API server with the wrong key refuses the Secret by name and changes nothing.
    {
        let args = &mut cluster.servers.replicas[2].args;
        args.retain(|a| !a.starts_with(FLAG));
        args.push(format!("{FLAG}={}", wrong.display()));
    }
    cluster.servers.restart(2).unwrap();
    let wrong_port = cluster.api_ports[2];
    eventually_blocking("the API server with the wrong key", || {
        (http(wrong_port, "GET", &format!("{SECRETS}/legacy"), None).0 == 200).then_some(())
    });
    let (status, refused) = http(wrong_port, "GET", &format!("{SECRETS}/db"), None);
    assert!(status >= 400, "{status} {refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("/registry/secrets/default/db") && message.contains("\"k1\"") && !message.contains("hunter2"),
        "{refused}"
    );
    assert_eq!(
        etcdctl_value(&cluster, "/registry/secrets/default/db"),
        stored,
        "untouched"
    );

    // Rotation: k2 added, decrypt-only, then made first; a new Secret takes it.
    let adding = dir.join("encryption-2.yaml");
    write_config(&adding, &[("k1", &k1), ("k2", &k2)]);
    restart_servers_with(&mut cluster, &adding);
    let rotated = dir.join("encryption-3.yaml");
    write_config(&rotated, &[("k2", &k2), ("k1", &k1)]);
    restart_servers_with(&mut cluster, &rotated);
    let (status, created) = http(
        port,
        "POST",
        SECRETS,
        Some(&json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "after"}, "data": {"a": "YQ=="},
        })),
    );
    assert_eq!(status, 201, "{created}");
    assert!(etcdctl_value(&cluster, "/registry/secrets/default/after").starts_with(b"k8s:enc:aesgcm:v1:k2:"));
    assert!(etcdctl_value(&cluster, "/registry/secrets/default/db").starts_with(b"k8s:enc:aesgcm:v1:k1:"));

    // Every Secret rewritten with k2, the old key still configured.
    let out = rotate(&cluster, &rotated);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("rewrote 3 secret(s) with key \"k2\""), "{stdout}");
    assert!(stdout.contains("3 stored with aesgcm key \"k2\""), "{stdout}");
    for name in ["db", "legacy", "after"] {
        let stored = etcdctl_value(&cluster, &format!("/registry/secrets/default/{name}"));
        assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:k2:"), "{name}");
    }

    // The old key dropped: every Secret still reads as written.
    let only_new = dir.join("encryption-4.yaml");
    write_config(&only_new, &[("k2", &k2)]);
    restart_servers_with(&mut cluster, &only_new);
    assert_eq!(served_data(&cluster, "db"), db);
    assert_eq!(served_data(&cluster, "legacy"), json!({"token": "cGxhaW4="}));
    assert_eq!(served_data(&cluster, "after"), json!({"a": "YQ=="}));
    let (status, list) = http(port, "GET", "/api/v1/secrets", None);
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(3), "{list}");

    // kubectl's own ways in: created by `kubectl create secret`, read by `get -o yaml`.
    if common::have_kubectl() {
        cluster.kubectl_ok(&["create", "secret", "generic", "kc", "--from-literal=token=s3cr3t-value"]);
        let stored = etcdctl_value(&cluster, "/registry/secrets/default/kc");
        assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:k2:"));
        assert!(!contains(&stored, "s3cr3t-value") && !contains(&stored, "czNjcjN0LXZhbHVl"));
        let yaml = cluster.kubectl_ok(&["get", "secret", "kc", "-o", "yaml"]);
        assert!(yaml.contains("token: czNjcjN0LXZhbHVl"), "{yaml}");
        let yaml = cluster.kubectl_ok(&["get", "secret", "db", "-o", "yaml"]);
        assert!(yaml.contains("password: aHVudGVyMg=="), "{yaml}");
    }
}

#[test]
fn a_server_refuses_an_encryption_configuration_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("encryption.yaml");
    std::fs::write(
        &file,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    \
         providers:\n      - aescbc:\n          keys:\n            - name: k\n              secret: c2VjcmV0\n",
    )
    .unwrap();
    let out = Command::new(BERTH)
        .args(["server", FLAG])
        .arg(&file)
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--encryption-provider-config") && stderr.contains("the aescbc provider is not supported"),
        "{stderr}"
    );
    let missing = Command::new(BERTH)
        .args(["secrets", "rotate-key", FLAG, "/nonexistent/encryption.yaml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/encryption.yaml"));
}
