//! A ServiceAccount token inside a real runc pod, on a cluster secure as `berth up`
//! runs it (HTTPS, Node and RBAC, an agent that reaches the cluster only through the
//! API): the agent fills the pod's `kube-api-access-*` volume (a token bound to the
//! pod, the cluster's CA, the namespace) at Kubernetes' path; from inside the pod,
//! through the `kubernetes` Service (https 443), the token can do exactly what its
//! Role allows — list pods in its namespace — and nothing else (Secrets, another
//! namespace: 403); TokenReview says whose it is and which pod it is bound to; once
//! the pod is deleted the token is refused (401).
//!
//! Needs root, runc, the CNI plugins, iptables and docker-registry (skipped without
//! them on a developer's machine, failing under CI).

mod common;

use berth_testkit::eventually_blocking;
use berth_testkit::oci::ImageBuilder;
use common::containers::ContainerCluster;
use serde_json::Value;

const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

const RBAC: &str = r#"apiVersion: v1
kind: ServiceAccount
metadata: {name: reader, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: default}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-reads-pods, namespace: default}
subjects:
- {kind: ServiceAccount, name: reader, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
"#;

fn client_pod(image: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: default}}
spec:
  serviceAccountName: reader
  terminationGracePeriodSeconds: 1
  containers:
  - name: shell
    image: {image}
    command: ["sleep", "3600"]
"#
    )
}

/// The image: busybox with the host's `openssl` and the libraries it links, at
/// their paths (busybox's own TLS cannot take the API's ECDSA certificate).
fn with_openssl(mut image: ImageBuilder) -> ImageBuilder {
    let openssl = "/usr/bin/openssl";
    let ldd = std::process::Command::new("ldd")
        .arg(openssl)
        .output()
        .expect("ldd runs");
    assert!(
        ldd.status.success(),
        "ldd {openssl}: {}",
        String::from_utf8_lossy(&ldd.stderr)
    );
    image = image.file(openssl, openssl, 0o755);
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        // `libssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x…)`, or the loader's
        // own `/lib64/ld-linux-x86-64.so.2 (0x…)`.
        let path = line.split("=>").last().unwrap_or_default().split_whitespace().next();
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            image = image.file(path, path, 0o755);
        }
    }
    image
}

/// What `path` of the API answers the pod's token, from inside the pod through the
/// `kubernetes` Service, the server's certificate checked against the pod's
/// `ca.crt` for the Service's address: the response's status code and body.
fn ask_from_pod(cluster: &ContainerCluster, path: &str) -> (String, String) {
    let script = format!(
        "printf 'GET {path} HTTP/1.1\\r\\nHost: kubernetes.default.svc\\r\\n\
         Authorization: Bearer %s\\r\\nConnection: close\\r\\n\\r\\n' \"$(cat {MOUNT}/token)\" \
         | timeout 10 openssl s_client -quiet -verify_return_error -CAfile {MOUNT}/ca.crt \
           -verify_ip $KUBERNETES_SERVICE_HOST -connect $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"
    );
    let out = cluster.kubectl(&["exec", "client", "--", "sh", "-c", &script]);
    let response = String::from_utf8_lossy(&out.stdout).into_owned();
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        return (String::new(), String::from_utf8_lossy(&out.stderr).into_owned());
    };
    let status = head.split_whitespace().nth(1).unwrap_or_default().to_string();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        common::dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

#[test]
fn a_service_account_token_inside_a_pod_can_do_exactly_what_its_role_allows() {
    let Some(mut cluster) = ContainerCluster::start_secure(1, &[]) else {
        return;
    };
    let (image, _) = cluster.push_busybox("busybox", "sa", with_openssl);
    cluster.kubectl_ok(&["create", "namespace", "other"]);
    cluster.apply("rbac", RBAC);
    cluster.apply("client", &client_pod(&image));
    let pod = cluster.wait_running("client");

    // The volume ServiceAccount admission added, filled by the agent.
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["name"].as_str().unwrap().starts_with("kube-api-access-")),
        "{volumes:?}"
    );
    let read = |file: &str| cluster.kubectl_ok(&["exec", "client", "--", "cat", &format!("{MOUNT}/{file}")]);
    assert_eq!(read("namespace"), "default");
    let ca = std::fs::read_to_string(cluster.server.dir().join("pki/ca.crt")).unwrap();
    assert_eq!(read("ca.crt"), ca);
    let token = read("token");
    assert_eq!(token.split('.').count(), 3, "a JWT");
    let env = cluster.kubectl_ok(&["exec", "client", "--", "env"]);
    assert!(env.contains("KUBERNETES_SERVICE_PORT=443\n"), "{env}");

    // What the Role allows: pods in its namespace.
    let (status, list) = eventually_blocking("the pod lists pods with its token", || {
        let (status, body) = ask_from_pod(&cluster, "/api/v1/namespaces/default/pods");
        (!status.is_empty()).then_some((status, body))
    });
    assert_eq!(status, "200", "{list}");
    let list: Value = serde_json::from_str(&list).unwrap_or_else(|e| panic!("{e}: {list}"));
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["client"]);
    let (status, one) = ask_from_pod(&cluster, "/api/v1/namespaces/default/pods/client");
    assert_eq!(status, "200", "{one}");
    assert!(one.contains("\"serviceAccountName\":\"reader\""), "{one}");

    // Nothing else: Secrets, another namespace, every namespace, the nodes.
    for path in [
        "/api/v1/namespaces/default/secrets",
        "/api/v1/namespaces/other/pods",
        "/api/v1/pods",
        "/api/v1/nodes",
    ] {
        let (status, body) = ask_from_pod(&cluster, path);
        assert_eq!(status, "403", "{path}: {body}");
        let refusal: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        let message = refusal["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("User \"system:serviceaccount:default:reader\" cannot list"),
            "{path}: {body}"
        );
    }

    // Whose it is, and bound to the pod.
    let review = format!(
        r#"{{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {{"token": "{token}"}}}}"#
    );
    let review_file = cluster.server.dir().join("review.json");
    std::fs::write(&review_file, review).unwrap();
    // (The reviews have no OpenAPI document for kubectl to validate against.)
    let reviewed = cluster.kubectl_ok(&[
        "create",
        "--validate=false",
        "-f",
        review_file.to_str().unwrap(),
        "-o",
        "json",
    ]);
    let reviewed: Value = serde_json::from_str(&reviewed).unwrap();
    let status = &reviewed["status"];
    assert_eq!(status["authenticated"], true, "{reviewed}");
    assert_eq!(status["user"]["username"], "system:serviceaccount:default:reader");
    assert_eq!(
        status["user"]["extra"]["authentication.kubernetes.io/pod-name"][0],
        "client"
    );
    assert_eq!(
        status["user"]["extra"]["authentication.kubernetes.io/pod-uid"][0],
        pod["metadata"]["uid"]
    );

    // The pod gone, its token goes with it (asked from the host, with nothing else).
    cluster.delete_pod("client");
    let url = format!("https://127.0.0.1:{}/api/v1/namespaces/default/pods", cluster.api_port);
    let header = format!("Authorization: Bearer {token}");
    eventually_blocking("the deleted pod's token refused", || {
        let out = std::process::Command::new("curl")
            .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H", &header, &url])
            .output()
            .unwrap();
        (String::from_utf8_lossy(&out.stdout) == "401").then_some(())
    });
}
