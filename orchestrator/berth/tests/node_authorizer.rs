//! An agent's credentials cannot modify another node's pods: against `berth server`
//! with a client CA (so `--authorization-mode` is `Node,RBAC` by default), kubectl
//! with the certificates of nodes n1 and n2 shows what the Node mode allows each:
//! n1 its own pod's status and the Secret its pod names; n2 neither, refused 403
//! with Kubernetes' words and the Node mode's reason.

mod common;

use common::have_kubectl;
use common::pki::{self, berth, issue, kubectl, start_server, text};

#[test]
fn a_nodes_credentials_reach_only_its_own_pods_and_what_they_name() {
    if !have_kubectl() {
        return;
    }
    let (work, pki) = pki::work_dir_with_ca();
    let pki_arg = pki.to_str().unwrap();
    for node in ["n1", "n2"] {
        issue(
            pki_arg,
            &format!("nodes/{node}"),
            &format!("system:node:{node}"),
            "system:nodes",
            &[],
        );
    }
    let file = |name: &str| pki.join(name).display().to_string();
    let (_servers, api_port) = start_server(vec![
        format!("--tls-cert-file={}", file("apiserver.crt")),
        format!("--tls-private-key-file={}", file("apiserver.key")),
        format!("--client-ca-file={}", file("ca.crt")),
    ]);
    let url = format!("https://127.0.0.1:{api_port}");
    let as_user = |name: &str| {
        let path = work.path().join(format!("{}.kubeconfig", name.replace('/', "-")));
        berth(&[
            "pki",
            "kubeconfig",
            "--dir",
            pki_arg,
            "--name",
            name,
            "--server",
            &url,
            "--out",
            path.to_str().unwrap(),
        ]);
        let home = work.path().to_path_buf();
        move |args: &[&str]| {
            let mut all = vec!["--kubeconfig", path.to_str().unwrap()];
            all.extend_from_slice(args);
            kubectl(&home, &all)
        }
    };
    let admin = as_user("admin");
    let n1 = as_user("nodes/n1");
    let n2 = as_user("nodes/n2");

    // A pod bound to n1 (no agent runs it: the store's spec.nodeName is what
    // counts) whose environment names the Secret `db`; `other` is named by no pod.
    berth_testkit::eventually_blocking("the admin gets in", || {
        admin(&["create", "secret", "generic", "db", "--from-literal=password=p"])
            .status
            .success()
            .then_some(())
    });
    let out = admin(&["create", "secret", "generic", "other", "--from-literal=k=v"]);
    assert!(out.status.success(), "{}", text(&out));
    let manifest = work.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  nodeName: n1\n  containers:\n  \
         - name: c\n    image: none\n    env:\n    - name: P\n      valueFrom:\n        \
         secretKeyRef: {name: db, key: password}\n",
    )
    .unwrap();
    let out = admin(&["create", "-f", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    // n1: its pod's Secret, and its pod's status (once the authorizer has seen the
    // pod: its watch event may come a moment after the create).
    let secret = berth_testkit::eventually_blocking("n1 reads its pod's Secret", || {
        let out = n1(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]);
        out.status.success().then(|| text(&out))
    });
    assert_eq!(secret, "cA==", "base64 of p");
    // (A replace: kubectl's patch reads pods/status first, which a node may not.)
    let pod = admin(&["get", "pod", "web", "-o", "json"]);
    assert!(pod.status.success(), "{}", text(&pod));
    let mut pod: serde_json::Value = serde_json::from_slice(&pod.stdout).unwrap();
    pod["status"]["message"] = "from n1".into();
    // A status write does not change the spec, whatever the body says.
    pod["spec"]["activeDeadlineSeconds"] = 5.into();
    let pod_file = work.path().join("web.json");
    std::fs::write(&pod_file, pod.to_string()).unwrap();
    let out = n1(&["replace", "--subresource=status", "-f", pod_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = admin(&[
        "get",
        "pod",
        "web",
        "-o",
        "jsonpath={.status.message} {.spec.activeDeadlineSeconds}",
    ]);
    assert_eq!(text(&out), "from n1 ");

    // n1: not a Secret its pods do not name, nor all of them.
    let out = n1(&["get", "secret", "other"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(
            "secrets \"other\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" \
             in API group \"\" in the namespace \"default\": no relationship found between node \"n1\" and this object"
        ),
        "{}",
        text(&out)
    );
    let out = n1(&["get", "secrets"]);
    assert!(
        text(&out).contains("User \"system:node:n1\" cannot list resource \"secrets\""),
        "{}",
        text(&out)
    );

    // n2: not n1's pod's status, nor its Secret, nor the pod itself.
    let out = n2(&["replace", "--subresource=status", "-f", pod_file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(
            "pods \"web\" is forbidden: User \"system:node:n2\" cannot update resource \"pods/status\" \
             in API group \"\" in the namespace \"default\": node \"n2\" can only update pod status \
             for pods with spec.nodeName set to itself"
        ),
        "{}",
        text(&out)
    );
    let out = n2(&["get", "secret", "db"]);
    assert!(
        text(&out).contains("no relationship found between node \"n2\" and this object"),
        "{}",
        text(&out)
    );
    let out = n2(&["delete", "pod", "web", "--wait=false"]);
    assert!(
        text(&out).contains("node \"n2\" can only delete pods with spec.nodeName set to itself"),
        "{}",
        text(&out)
    );
    let out = n2(&["get", "pod", "web"]);
    assert!(
        text(&out).contains("no relationship found between node \"n2\" and this object"),
        "{}",
        text(&out)
    );
    // (Lists and watches of every pod, namespace and NetworkPolicy are every node's
    // through RBAC: its packet filter resolves the policies' selectors cluster-wide.)
    let out = n2(&["get", "pods", "--field-selector=spec.nodeName=n2", "-o", "name"]);
    assert!(out.status.success(), "its own pods (none): {}", text(&out));

    // n2: not n1's Node, but its own.
    let node = |name: &str| format!("{{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{{\"name\":\"{name}\"}}}}");
    let node_file = work.path().join("n1-node.json");
    std::fs::write(&node_file, node("n1")).unwrap();
    let out = n2(&["create", "-f", node_file.to_str().unwrap()]);
    assert!(
        text(&out).contains("nodes \"n1\" is forbidden: node \"n2\" is not allowed to modify node \"n1\""),
        "{}",
        text(&out)
    );
    std::fs::write(&node_file, node("n2")).unwrap();
    let out = n2(&["create", "-f", node_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let out = n2(&["label", "node", "n2", "zone=a"]);
    assert!(out.status.success(), "{}", text(&out));

    // With the Node mode, the system:node binding has no subjects.
    let out = admin(&["get", "clusterrolebinding", "system:node", "-o", "jsonpath={.subjects}"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out), "", "no subjects");
    // The pod is still there, its spec n1's.
    let out = admin(&["get", "pod", "web", "-o", "jsonpath={.spec.nodeName}"]);
    assert_eq!(text(&out), "n1");
}
