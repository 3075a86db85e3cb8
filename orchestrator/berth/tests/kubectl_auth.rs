//! The real kubectl against one `berth server`: RBAC's kinds as kubectl creates
//! (protobuf), applies, lists and describes them, a labelled ClusterRole aggregated
//! into `view`, `edit` and `admin` by the leader, and the reviews `kubectl auth can-i` and
//! `kubectl auth whoami` ask. Until requests carry credentials, kubectl is
//! `system:anonymous`: under the default `AlwaysAllow` it may do anything, and
//! under `--authorization-mode RBAC` it is refused what the default roles do not
//! give everyone. (The two-tenant checks, which need users, are the API server's
//! tests, `tests/rbac.rs` there.)
//!
//! Skipped, with a message, where kubectl is not installed.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use berth_testkit::{Cluster, ClusterSpec, QUIET_RAFT_LOG, System, eventually_blocking, free_port};
use common::{BERTH, has_kubectl, http_get, succeeded};

struct Server {
    server: Cluster,
    api_port: u16,
    kubeconfig: PathBuf,
}

impl Server {
    fn start(mode: &str) -> Server {
        let spec = ClusterSpec::new(System::BerthServer, BERTH, 1).env("RUST_LOG", QUIET_RAFT_LOG);
        let mut server = Cluster::new(spec).unwrap();
        let api_port = free_port();
        server.replicas[0].args = vec![
            format!("--api-listen=127.0.0.1:{api_port}"),
            format!("--authorization-mode={mode}"),
        ];
        let kubeconfig = server.dir().join("kubeconfig");
        std::fs::write(&kubeconfig, "").unwrap();
        server.start_all().unwrap();
        let server = Server {
            server,
            api_port,
            kubeconfig,
        };
        eventually_blocking("the API server answers /healthz", || {
            (http_get(server.api_port, "/healthz").0 == 200).then_some(())
        });
        server
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
}

#[test]
fn kubectl_creates_roles_and_bindings_and_asks_can_i() {
    if !has_kubectl() {
        eprintln!("SKIPPED kubectl_creates_roles_and_bindings_and_asks_can_i: kubectl is not installed");
        return;
    }
    let server = Server::start("AlwaysAllow");
    // The default roles appear at start.
    eventually_blocking("the default ClusterRoles", || {
        let out = server.kubectl(&["get", "clusterroles"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (out.status.success() && text.contains("cluster-admin") && text.contains("system:basic-user")).then_some(text)
    });
    succeeded(&server.kubectl(&["create", "namespace", "team-a"]));
    let role = server.kubectl(&[
        "create",
        "role",
        "pod-reader",
        "-n",
        "team-a",
        "--verb=get,list",
        "--resource=pods,pods/log",
    ]);
    assert_eq!(
        succeeded(&role).trim(),
        "role.rbac.authorization.k8s.io/pod-reader created"
    );
    let binding = server.kubectl(&[
        "create",
        "rolebinding",
        "alice-edit",
        "-n",
        "team-a",
        "--clusterrole=edit",
        "--user=alice",
        "--group=devs",
    ]);
    assert_eq!(
        succeeded(&binding).trim(),
        "rolebinding.rbac.authorization.k8s.io/alice-edit created"
    );
    let (status, stored) = http_get(
        server.api_port,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings/alice-edit",
    );
    assert_eq!(status, 200, "{stored}");
    assert_eq!(stored["roleRef"]["name"], "edit");
    assert_eq!(stored["subjects"][0]["name"], "alice");
    let wide = succeeded(&server.kubectl(&["get", "rolebindings", "-n", "team-a", "-o", "wide"]));
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"],
        "{wide}"
    );
    let row: Vec<&str> = wide.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        (row[0], row[1], row[3], row[4]),
        ("alice-edit", "ClusterRole/edit", "alice", "devs"),
        "{wide}"
    );
    let roles = succeeded(&server.kubectl(&["get", "roles", "-n", "team-a"]));
    assert!(
        roles.starts_with("NAME") && roles.contains("CREATED AT") && roles.contains("pod-reader"),
        "{roles}"
    );
    let described = succeeded(&server.kubectl(&["describe", "role", "pod-reader", "-n", "team-a"]));
    assert!(
        described.contains("pods/log") && described.contains("[get list]"),
        "{described}"
    );
    let refused = server.kubectl(&[
        "create",
        "clusterrolebinding",
        "bad",
        "--clusterrole=view",
        "--serviceaccount=builder",
    ]);
    assert!(!refused.status.success());

    // apply, client-side (a strategic merge patch of the second version) and server-side.
    let manifest = |verbs: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: widget-reader\n  labels:\n    \
             rbac.authorization.k8s.io/aggregate-to-view: \"true\"\nrules:\n- apiGroups: [\"example.com\"]\n  \
             resources: [\"widgets\"]\n  verbs: [{verbs}]\n"
        )
    };
    let file = server.server.dir().join("widget-reader.yaml");
    for (verbs, args) in [
        ("get", &["apply", "-f"][..]),
        ("get, list", &["apply", "-f"][..]),
        ("get, list, watch", &["apply", "--server-side", "-f"][..]),
    ] {
        std::fs::write(&file, manifest(verbs)).unwrap();
        let mut args = args.to_vec();
        args.push(file.to_str().unwrap());
        succeeded(&server.kubectl(&args));
    }
    let (_, applied) = http_get(
        server.api_port,
        "/apis/rbac.authorization.k8s.io/v1/clusterroles/widget-reader",
    );
    assert_eq!(
        applied["rules"][0]["verbs"],
        serde_json::json!(["get", "list", "watch"]),
        "{applied}"
    );
    // Its label makes the leader's aggregation controller add it to view (and to
    // edit and admin, which aggregate view).
    for role in ["view", "edit", "admin"] {
        eventually_blocking(&format!("{role} aggregates widget-reader"), || {
            let path = format!("/apis/rbac.authorization.k8s.io/v1/clusterroles/{role}");
            let (_, role) = http_get(server.api_port, &path);
            let rules = role["rules"].as_array().cloned().unwrap_or_default();
            rules
                .iter()
                .any(|r| r["resources"] == serde_json::json!(["widgets"]))
                .then_some(())
        });
    }
    let edit = succeeded(&server.kubectl(&["describe", "clusterrole", "edit"]));
    assert!(edit.contains("widgets.example.com"), "{edit}");

    // The reviews: anything goes for everyone under AlwaysAllow.
    assert_eq!(
        succeeded(&server.kubectl(&["auth", "can-i", "create", "pods", "-n", "team-a"])).trim(),
        "yes"
    );
    let list = succeeded(&server.kubectl(&["auth", "can-i", "--list", "-n", "team-a"]));
    assert!(list.contains("*.*") && list.contains("[*]"), "{list}");
    let whoami = succeeded(&server.kubectl(&["auth", "whoami"]));
    assert!(
        whoami.contains("system:anonymous") && whoami.contains("system:unauthenticated"),
        "{whoami}"
    );
    // kubectl --as: the request acts as the user and groups asked for (anyone may
    // impersonate under AlwaysAllow).
    let whoami = succeeded(&server.kubectl(&["auth", "whoami", "--as=alice", "--as-group=team-a", "-o", "json"]));
    let review: serde_json::Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(review["status"]["userInfo"]["username"], "alice", "{whoami}");
    assert_eq!(
        review["status"]["userInfo"]["groups"],
        serde_json::json!(["team-a", "system:authenticated"]),
        "{whoami}"
    );
}

#[test]
fn under_rbac_kubectl_without_credentials_is_anonymous_and_refused() {
    if !has_kubectl() {
        eprintln!("SKIPPED under_rbac_kubectl_without_credentials_is_anonymous_and_refused: kubectl is not installed");
        return;
    }
    let server = Server::start("RBAC");
    let out = eventually_blocking("the authorizer's cache and the default roles", || {
        let out = server.kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods"]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        stderr.contains("Forbidden").then_some(stderr)
    });
    assert!(
        out.contains(
            "pods is forbidden: User \"system:anonymous\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{out}"
    );
    assert_eq!(succeeded(&server.kubectl(&["get", "--raw", "/healthz"])).trim(), "ok");
    // Nor may it act as someone else.
    let out = server.kubectl(&[
        "get",
        "--raw",
        "/api/v1/namespaces/default/pods",
        "--as=system:admin",
        "--as-group=system:masters",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "users \"system:admin\" is forbidden: User \"system:anonymous\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        ),
        "{stderr}"
    );
}
