//! An agent that reaches the cluster through the API server only, as a kubelet
//! does: `berth agent --kubeconfig` with a certificate for `system:node:<name>` in
//! `system:nodes` from `berth pki`, against a server over HTTPS that authorizes
//! with `Node,RBAC` (its default with a client CA), and a store URL nothing listens
//! on. The audit log shows who did what.

mod common;

use std::process::Command;

use berth_testkit::{eventually_blocking, free_port};
use common::pki::{self, issue, kubectl, start_server, text};
use common::{BERTH, have_kubectl};
use serde_json::Value;

/// The audit events of `user` (`verb` on `resource[/subresource]`), as JSON: each
/// request's last stage so far (a watch's response has only started).
fn audited(log: &std::path::Path, user: &str, verb: &str, resource: &str) -> Vec<Value> {
    let (resource, subresource) = resource.split_once('/').unwrap_or((resource, ""));
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| {
            e["user"]["username"] == user
                && e["verb"] == verb
                && e["objectRef"]["resource"] == resource
                && e["objectRef"]["subresource"].as_str().unwrap_or("") == subresource
                && (e["stage"] == "ResponseComplete" || e["stage"] == "ResponseStarted")
        })
        .collect()
}

#[test]
fn an_agent_with_a_node_certificate_registers_and_runs_its_pod_through_the_api_server() {
    if !have_kubectl() {
        return;
    }
    let (work, pki) = pki::work_dir_with_ca();
    let pki_arg = pki.to_str().unwrap();
    issue(pki_arg, "nodes/n1", "system:node:n1", "system:nodes", &[]);
    let file = |name: &str| pki.join(name).display().to_string();
    let policy = work.path().join("audit-policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n",
    )
    .unwrap();
    let audit_log = work.path().join("audit.log");
    let (_servers, api_port) = start_server(vec![
        format!("--tls-cert-file={}", file("apiserver.crt")),
        format!("--tls-private-key-file={}", file("apiserver.key")),
        format!("--client-ca-file={}", file("ca.crt")),
        format!("--audit-log-path={}", audit_log.display()),
        format!("--audit-policy-file={}", policy.display()),
    ]);
    let url = format!("https://127.0.0.1:{api_port}");
    let kubeconfig = |name: &str| pki::kubeconfig(pki_arg, name, &url, work.path());
    let admin_config = kubeconfig("admin");
    let node_config = kubeconfig("nodes/n1");
    let admin = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", admin_config.to_str().unwrap()];
        all.extend_from_slice(args);
        kubectl(work.path(), &all)
    };

    // The pod's environment names a ConfigMap: the agent reads it to start the
    // container.
    eventually_blocking("the admin gets in", || {
        admin(&["create", "configmap", "greeting", "--from-literal=word=hello"])
            .status
            .success()
            .then_some(())
    });
    let marker = format!("through-api-{}", free_port());
    let mut agent = berth_testkit::Process::new("n1", BERTH, work.path().join("n1.log")).with_args([
        "agent".to_string(),
        "--name=n1".into(),
        format!("--kubeconfig={}", node_config.display()),
        // Nothing listens there: the agent needs only the API server.
        format!("--store=http://127.0.0.1:{}", free_port()),
        "--lease-ttl=4s".into(),
        format!("--data-dir={}", work.path().join("n1").display()),
        format!("--listen=127.0.0.1:{}", free_port()),
        "--runtime=process".into(),
        "--proxy-mode=none".into(),
        "--stop-pods-on-exit".into(),
    ]);
    agent.start().unwrap();

    let ready = eventually_blocking("n1 registered and Ready", || {
        let out = admin(&[
            "get",
            "node",
            "n1",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.metadata.labels.kubernetes\\.io/hostname}",
        ]);
        (text(&out) == "True n1").then(|| text(&out))
    });
    assert_eq!(ready, "True n1");
    // Its heartbeat: the node's Lease, held by it, owned by its Node, renewed.
    let lease = || {
        let out = admin(&[
            "get",
            "lease",
            "n1",
            "-n",
            "kube-node-lease",
            "-o",
            "jsonpath={.spec.holderIdentity} {.spec.leaseDurationSeconds} \
             {.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.spec.renewTime}",
        ]);
        text(&out)
    };
    let first = eventually_blocking("n1's Lease", || {
        let now = lease();
        now.starts_with("n1 4 Node/n1 ").then_some(now)
    });
    eventually_blocking("n1's Lease renewed", || (lease() != first).then_some(()));

    let manifest = work.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: through-api\nspec:\n  runtimeClassName: process\n  \
             containers:\n  - name: c\n    image: none\n    command: [\"sh\", \"-c\", \"exec sleep 600 {marker}\"]\n    \
             env:\n    - name: WORD\n      valueFrom:\n        configMapKeyRef: {{name: greeting, key: word}}\n"
        ),
    )
    .unwrap();
    let out = admin(&["apply", "-f", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    eventually_blocking("the pod Running on n1", || {
        let out = admin(&[
            "get",
            "pod",
            "through-api",
            "-o",
            "jsonpath={.status.phase} {.spec.nodeName}",
        ]);
        (text(&out) == "Running n1").then_some(())
    });

    // Its events, posted by the agent.
    eventually_blocking("the pod's Started event", || {
        let out = admin(&[
            "get",
            "events",
            "--field-selector=involvedObject.name=through-api",
            "-o",
            "jsonpath={.items[*].reason}",
        ]);
        text(&out).split(' ').any(|r| r == "Started").then_some(())
    });

    // All of it as system:node:n1, through the API server.
    let node_user = "system:node:n1";
    assert!(
        audited(&audit_log, node_user, "create", "events")
            .iter()
            .any(|e| e["responseStatus"]["code"] == 201),
        "the events created by the agent"
    );
    assert!(
        audited(&audit_log, node_user, "update", "leases")
            .iter()
            .any(|e| e["objectRef"]["namespace"] == "kube-node-lease" && e["responseStatus"]["code"] == 200),
        "the Lease renewed by the agent"
    );
    // The local volumes' provisioner's view, allowed by its role.
    assert!(
        audited(&audit_log, node_user, "list", "persistentvolumes")
            .iter()
            .any(|e| e["responseStatus"]["code"] == 200),
        "the PersistentVolumes listed by the agent"
    );
    let watches = audited(&audit_log, node_user, "watch", "pods");
    assert!(
        watches.iter().any(|e| e["requestURI"]
            .as_str()
            .unwrap_or("")
            .contains("fieldSelector=spec.nodeName%3Dn1")),
        "the agent watches only its own pods: {watches:?}"
    );
    // The Services and their EndpointSlices, for the node's DNS server. (A watch is
    // audited once its response starts, which may be a moment after its list.)
    for resource in ["services", "endpointslices"] {
        eventually_blocking(&format!("the agent watches the {resource}"), || {
            (!audited(&audit_log, node_user, "watch", resource).is_empty()).then_some(())
        });
    }
    assert!(
        !audited(&audit_log, node_user, "create", "nodes").is_empty(),
        "the Node created by the agent"
    );
    assert!(
        !audited(&audit_log, node_user, "get", "configmaps").is_empty(),
        "the ConfigMap read by the agent"
    );
    // Watched alone, as the Node mode lets a node read only what its pods name.
    eventually_blocking("the agent watches the ConfigMap its pod names", || {
        audited(&audit_log, node_user, "watch", "configmaps")
            .iter()
            .any(|e| {
                let uri = e["requestURI"].as_str().unwrap_or("");
                uri.starts_with("/api/v1/namespaces/default/configmaps?")
                    && uri.contains("metadata.name%3Dgreeting")
                    && e["responseStatus"]["code"] == 200
            })
            .then_some(())
    });
    assert!(
        audited(&audit_log, node_user, "list", "configmaps")
            .iter()
            .chain(&audited(&audit_log, node_user, "list", "secrets"))
            .all(|e| e["responseStatus"]["code"] == 200),
        "nothing of the agent's refused"
    );
    let status_writes = audited(&audit_log, node_user, "update", "pods/status");
    assert!(
        status_writes
            .iter()
            .any(|e| e["objectRef"]["name"] == "through-api" && e["responseStatus"]["code"] == 200),
        "the pod's status written by the agent: {status_writes:?}"
    );

    let out = admin(&["delete", "pod", "through-api", "--wait=false"]);
    assert!(out.status.success(), "{}", text(&out));
    // The agent stops the container and removes the pod for good.
    eventually_blocking("the pod gone", || {
        let out = admin(&["get", "pod", "through-api", "-o", "name"]);
        (!out.status.success() && text(&out).contains("NotFound")).then_some(())
    });
    assert!(
        audited(&audit_log, node_user, "delete", "pods")
            .iter()
            .any(|e| e["objectRef"]["name"] == "through-api"),
        "the pod removed by the agent"
    );
    // Marked not Ready while its heartbeat is held (as the node lifecycle controller
    // marks a node whose Lease renewals it saw late), the agent writes it Ready again,
    // as a kubelet posts a status that differs from its own.
    let ready = || {
        let jsonpath = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
        text(&admin(&["get", "node", "n1", "-o", jsonpath]))
    };
    assert_eq!(ready(), "True");
    let mark = r#"[{"op":"replace","path":"/status/conditions/0/status","value":"False"}]"#;
    let out = admin(&["patch", "node", "n1", "--subresource=status", "--type=json", "-p", mark]);
    assert!(out.status.success(), "{}", text(&out));
    eventually_blocking("n1 Ready again", || (ready() == "True").then_some(()));
    // Killed, the agent renews its Lease no more: the node goes NotReady.
    agent.kill();
    eventually_blocking("n1 NotReady", || {
        let out = admin(&[
            "get",
            "node",
            "n1",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} \
             {.status.conditions[?(@.type==\"Ready\")].reason}",
        ]);
        (text(&out) == "False NodeStatusUnknown").then_some(())
    });
    // Tainted as Kubernetes' node controller taints it: NoSchedule with the mark,
    // NoExecute once it is lost (a grace period later).
    let taints = || {
        let jsonpath = "jsonpath={range .spec.taints[*]}{.key}:{.effect} {end}";
        text(&admin(&["get", "node", "n1", "-o", jsonpath])).trim().to_string()
    };
    assert!(
        taints().starts_with("node.kubernetes.io/unreachable:NoSchedule"),
        "{}",
        taints()
    );
    eventually_blocking("n1 tainted unreachable:NoExecute", || {
        let both = "node.kubernetes.io/unreachable:NoSchedule node.kubernetes.io/unreachable:NoExecute";
        (taints() == both).then_some(())
    });
    // Back, the agent says Ready again and the taints go.
    agent.start().unwrap();
    eventually_blocking("n1 Ready and untainted", || {
        let jsonpath = "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}";
        let ready = text(&admin(&["get", "node", "n1", "-o", jsonpath]));
        (ready == "True" && taints().is_empty()).then_some(())
    });
    agent.kill();
    for pid in common::workload_pids(&marker) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}
