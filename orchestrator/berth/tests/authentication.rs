//! The API server over HTTPS with authentication, end to end with the real kubectl:
//! certificates from `berth pki`, a client certificate's kubeconfig, a static token,
//! and the refusals — a certificate of another CA, a wrong token, a client that does
//! not trust the cluster's CA, plain HTTP to the HTTPS port.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use berth_testkit::{eventually_blocking, free_port};
use common::pki::{self, berth, issue, kubectl, start_server, text};
use common::{BERTH, have_kubectl};

#[test]
fn kubectl_gets_in_with_a_certificate_or_a_token_and_strangers_do_not() {
    if !have_kubectl() {
        return;
    }
    let (work, pki) = pki::work_dir_with_ca();
    let pki_arg = pki.to_str().unwrap();
    issue(pki_arg, "users/alice", "alice", "team-a", &[]);
    // A CA of someone else's, and a user it signed.
    let stranger = work.path().join("stranger");
    let stranger_arg = stranger.to_str().unwrap();
    berth(&["pki", "init", "--dir", stranger_arg]);
    let tokens = work.path().join("tokens.csv");
    std::fs::write(&tokens, "s3cr3t-token,robot,r1,\"bots\"\n").unwrap();

    let (_servers, api_port) = start_server(vec![
        format!("--tls-cert-file={}", pki.join("apiserver.crt").display()),
        format!("--tls-private-key-file={}", pki.join("apiserver.key").display()),
        format!("--client-ca-file={}", pki.join("ca.crt").display()),
        format!("--token-auth-file={}", tokens.display()),
    ]);
    let url = format!("https://127.0.0.1:{api_port}");

    let kubeconfig = |file: &str, name: &str, ca_dir: &Path| {
        let path = work.path().join(file);
        berth(&[
            "pki",
            "kubeconfig",
            "--dir",
            ca_dir.to_str().unwrap(),
            "--name",
            name,
            "--server",
            &url,
            "--out",
            path.to_str().unwrap(),
        ]);
        path
    };
    let admin = kubeconfig("admin.kubeconfig", "admin", &pki);
    let alice = kubeconfig("alice.kubeconfig", "users/alice", &pki);
    let mallory = kubeconfig("mallory.kubeconfig", "admin", &stranger);

    let home = work.path();
    let as_admin = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", admin.to_str().unwrap()];
        all.extend_from_slice(args);
        kubectl(home, &all)
    };
    eventually_blocking("the admin lists namespaces over HTTPS", || {
        let out = as_admin(&["get", "namespaces", "-o", "name"]);
        (out.status.success() && text(&out).contains("namespace/default")).then_some(())
    });
    let out = as_admin(&["create", "configmap", "made-by-admin", "--from-literal=a=b"]);
    assert!(out.status.success(), "{}", text(&out));
    // Alice is who her certificate says, and may do nothing until a role is bound
    // to her (the server's default with users to tell apart is Node,RBAC).
    let as_alice = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", alice.to_str().unwrap()];
        all.extend_from_slice(args);
        kubectl(home, &all)
    };
    let out = as_alice(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ]);
    assert_eq!(text(&out), r#"alice ["team-a","system:authenticated"]"#);
    let out = as_alice(&["get", "configmap", "made-by-admin"]);
    assert!(
        text(&out).contains(r#"configmaps "made-by-admin" is forbidden: User "alice" cannot get resource "configmaps" in API group "" in the namespace "default""#),
        "{}",
        text(&out)
    );
    let out = as_admin(&[
        "create",
        "rolebinding",
        "team-a-view",
        "--clusterrole=view",
        "--group=team-a",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    eventually_blocking("alice reads with her group's binding", || {
        as_alice(&["get", "configmap", "made-by-admin"])
            .status
            .success()
            .then_some(())
    });
    let out = as_alice(&["delete", "configmap", "made-by-admin"]);
    assert!(text(&out).contains("forbidden"), "view does not delete: {}", text(&out));

    // berth's own CLI reads the same kubeconfig, from the flag or $KUBECONFIG.
    let out = Command::new(BERTH)
        .args([
            "get",
            "configmap",
            "made-by-admin",
            "--kubeconfig",
            admin.to_str().unwrap(),
        ])
        .env_remove("BERTH_SERVER")
        .output()
        .unwrap();
    assert!(
        out.status.success() && text(&out).contains("made-by-admin"),
        "berth get: {}",
        text(&out)
    );
    let out = Command::new(BERTH)
        .args(["get", "configmaps"])
        .env_remove("BERTH_SERVER")
        .env("KUBECONFIG", &mallory)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "berth get trusted a server of another CA: {}",
        text(&out)
    );

    // A bearer token from the token file, over a connection that trusts the CA.
    let ca = pki.join("ca.crt");
    let with_token = |token: &str| {
        kubectl(
            home,
            &[
                "--server",
                &url,
                "--certificate-authority",
                ca.to_str().unwrap(),
                "--token",
                token,
                "get",
                "configmap",
                "made-by-admin",
            ],
        )
    };
    let out = with_token("s3cr3t-token");
    assert!(
        text(&out).contains(r#"User "robot" cannot get resource "configmaps""#),
        "{}",
        text(&out)
    );
    let out = as_admin(&[
        "create",
        "rolebinding",
        "bots-view",
        "--clusterrole=view",
        "--group=bots",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    eventually_blocking("the robot reads with its group's binding", || {
        with_token("s3cr3t-token").status.success().then_some(())
    });
    // No credentials at all: the anonymous user, allowed nothing but health and version.
    // (kubectl without any user asks for a password, so curl asks here.)
    let anonymous = |path: &str| {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-w",
                " %{http_code}",
                "--cacert",
                ca.to_str().unwrap(),
            ])
            .arg(format!("{url}{path}"))
            .output()
            .expect("curl runs");
        text(&out)
    };
    let answer = anonymous("/api/v1/namespaces/default/configmaps");
    assert!(
        answer.contains(r#"User \"system:anonymous\" cannot list resource \"configmaps\""#) && answer.ends_with(" 403"),
        "{answer}"
    );
    let answer = anonymous("/version");
    assert!(answer.contains("gitVersion") && answer.ends_with(" 200"), "{answer}");
    let out = with_token("wrong-token");
    assert!(!out.status.success());
    assert!(text(&out).contains("Unauthorized"), "a wrong token: {}", text(&out));

    // A certificate the cluster's CA did not sign is refused in the handshake.
    let out = kubectl(
        home,
        &[
            "--kubeconfig",
            mallory.to_str().unwrap(),
            "--certificate-authority",
            ca.to_str().unwrap(),
            "get",
            "configmaps",
        ],
    );
    assert!(!out.status.success(), "a stranger's certificate got in: {}", text(&out));
    assert!(!text(&out).contains("made-by-admin"));

    // A client that trusts another CA refuses the server.
    let out = kubectl(home, &["--kubeconfig", mallory.to_str().unwrap(), "get", "configmaps"]);
    assert!(
        text(&out).contains("certificate signed by unknown authority"),
        "{}",
        text(&out)
    );

    // Plain HTTP to the HTTPS port gets nothing.
    let out = kubectl(
        home,
        &["--server", &format!("http://127.0.0.1:{api_port}"), "get", "configmaps"],
    );
    assert!(!out.status.success());
    assert!(!text(&out).contains("made-by-admin"));
}

/// A server that reaches agents over HTTPS and an agent whose API takes only the
/// server's client certificate: `kubectl logs` goes through; anyone else calling the
/// agent is refused; an agent whose certificate does not hold the address the
/// server dials is not talked to.
#[test]
fn the_agents_api_takes_only_the_api_server_and_the_server_only_the_agents_own_address() {
    if !have_kubectl() {
        return;
    }
    let (work, pki) = pki::work_dir_with_ca();
    let pki_arg = pki.to_str().unwrap();
    // n1's certificate holds 127.0.0.1, where it listens; n2's only another address.
    issue(
        pki_arg,
        "nodes/n1",
        "system:node:n1",
        "system:nodes",
        &["--usage", "both", "--host", "127.0.0.1"],
    );
    issue(
        pki_arg,
        "nodes/n2",
        "system:node:n2",
        "system:nodes",
        &["--usage", "both", "--host", "10.255.0.2"],
    );
    let file = |name: &str| pki.join(name).display().to_string();

    let (servers, api_port) = start_server(vec![
        format!("--tls-cert-file={}", file("apiserver.crt")),
        format!("--tls-private-key-file={}", file("apiserver.key")),
        format!("--client-ca-file={}", file("ca.crt")),
        format!("--kubelet-client-certificate={}", file("apiserver-kubelet-client.crt")),
        format!("--kubelet-client-key={}", file("apiserver-kubelet-client.key")),
        format!("--kubelet-certificate-authority={}", file("ca.crt")),
    ]);
    let store = servers.endpoints().join(",");
    let marker = format!("agent-tls-{}", free_port());
    let agent_ports: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let mut agents: Vec<berth_testkit::Process> = ["n1", "n2"]
        .iter()
        .zip(&agent_ports)
        .map(|(name, port)| {
            berth_testkit::Process::new(*name, BERTH, work.path().join(format!("{name}.log"))).with_args([
                "agent".to_string(),
                format!("--name={name}"),
                format!("--store={store}"),
                format!("--data-dir={}", work.path().join(name).display()),
                format!("--listen=127.0.0.1:{port}"),
                "--runtime=process".into(),
                "--proxy-mode=none".into(),
                "--stop-pods-on-exit".into(),
                format!("--tls-cert-file={}", file(&format!("nodes/{name}.crt"))),
                format!("--tls-private-key-file={}", file(&format!("nodes/{name}.key"))),
                format!("--client-ca-file={}", file("ca.crt")),
            ])
        })
        .collect();
    for agent in &mut agents {
        agent.start().unwrap();
    }
    let admin = work.path().join("admin.kubeconfig");
    berth(&[
        "pki",
        "kubeconfig",
        "--dir",
        pki_arg,
        "--server",
        &format!("https://127.0.0.1:{api_port}"),
        "--out",
        admin.to_str().unwrap(),
    ]);
    let kubectl_admin = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", admin.to_str().unwrap()];
        all.extend_from_slice(args);
        kubectl(work.path(), &all)
    };
    for node in ["n1", "n2"] {
        let manifest = work.path().join(format!("{node}.yaml"));
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: on-{node}\nspec:\n  nodeName: {node}\n  runtimeClassName: process\n  \
                 containers:\n  - name: c\n    image: none\n    command: [\"sh\", \"-c\", \"echo hello from {node}; exec sleep 600 {marker}\"]\n"
            ),
        )
        .unwrap();
        eventually_blocking("the pod created", || {
            kubectl_admin(&["apply", "-f", manifest.to_str().unwrap()])
                .status
                .success()
                .then_some(())
        });
    }
    let logs = eventually_blocking("n1's pod logs through the agent's HTTPS", || {
        let out = kubectl_admin(&["logs", "on-n1"]);
        (out.status.success() && text(&out).contains("hello from n1")).then(|| text(&out))
    });
    assert!(logs.contains("hello from n1"));

    // n2 runs its pod, but the server will not talk to an agent whose certificate
    // is not for the address it dials.
    eventually_blocking("n2's pod running", || {
        let out = kubectl_admin(&["get", "pod", "on-n2", "-o", "jsonpath={.status.phase}"]);
        (text(&out) == "Running").then_some(())
    });
    let out = kubectl_admin(&["logs", "on-n2"]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("cannot reach the agent of node \"n2\""),
        "{}",
        text(&out)
    );

    // Nobody but the API server gets into the agent: not without a certificate, not
    // with the admin's.
    let agent = format!("https://127.0.0.1:{}/containerLogs/default/on-n1/c", agent_ports[0]);
    let curl = |extra: &[&str]| {
        let mut command = Command::new("curl");
        command
            .args(["-sS", "--max-time", "10", "--cacert", &file("ca.crt")])
            .args(extra)
            .arg(&agent);
        command.output().map(|out| text(&out))
    };
    if let Ok(answer) = curl(&[]) {
        assert!(!answer.contains("hello from n1"), "no certificate: {answer}");
        let answer = curl(&["--cert", &file("admin.crt"), "--key", &file("admin.key")]).unwrap();
        assert!(!answer.contains("hello from n1"), "the admin's certificate: {answer}");
        let answer = curl(&[
            "--cert",
            &file("apiserver-kubelet-client.crt"),
            "--key",
            &file("apiserver-kubelet-client.key"),
        ])
        .unwrap();
        assert!(
            answer.contains("hello from n1"),
            "the API server's certificate: {answer}"
        );
    }
    kubectl_admin(&["delete", "pod", "on-n1", "on-n2", "--wait=false"]);
    for agent in &mut agents {
        agent.kill();
    }
    for pid in common::workload_pids(&marker) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

/// Two tenants, each with `edit` in its own namespace through its certificate's
/// group: each manages its namespace and sees nothing of the other's, through lists,
/// `-A`, watches, logs or exec; `kubectl auth can-i --list` says so.
#[test]
fn two_tenants_each_manage_their_own_namespace_and_see_nothing_of_the_other() {
    if !have_kubectl() {
        return;
    }
    let (work, pki) = pki::work_dir_with_ca();
    let pki_arg = pki.to_str().unwrap();
    issue(pki_arg, "users/alice", "alice", "team-a", &[]);
    issue(pki_arg, "users/bob", "bob", "team-b", &[]);
    // Everything audited, with bodies where the policy may have them.
    let policy = work.path().join("audit-policy.yaml");
    std::fs::write(
        &policy,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Request\n",
    )
    .unwrap();
    let audit_log = work.path().join("audit.log");
    let (_servers, api_port) = start_server(vec![
        format!("--tls-cert-file={}", pki.join("apiserver.crt").display()),
        format!("--tls-private-key-file={}", pki.join("apiserver.key").display()),
        format!("--client-ca-file={}", pki.join("ca.crt").display()),
        format!("--audit-log-path={}", audit_log.display()),
        format!("--audit-policy-file={}", policy.display()),
    ]);
    let url = format!("https://127.0.0.1:{api_port}");
    let home = work.path();
    let as_user = |name: &str| {
        let path = pki::kubeconfig(pki_arg, name, &url, work.path());
        move |args: &[&str]| {
            let mut all = vec!["--kubeconfig".to_string(), path.display().to_string()];
            all.extend(args.iter().map(|a| a.to_string()));
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            kubectl(home, &all)
        }
    };
    let admin = as_user("admin");
    let alice = as_user("users/alice");
    let bob = as_user("users/bob");
    eventually_blocking("the admin gets in", || {
        admin(&["get", "namespaces"]).status.success().then_some(())
    });
    for (namespace, group) in [("team-a", "team-a"), ("team-b", "team-b")] {
        let out = admin(&["create", "namespace", namespace]);
        assert!(out.status.success(), "{}", text(&out));
        let out = admin(&[
            "create",
            "rolebinding",
            "edit",
            "--clusterrole=edit",
            &format!("--group={group}"),
            "-n",
            namespace,
        ]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = admin(&[
        "create",
        "configmap",
        "b-secret-plan",
        "--from-literal=plan=launch-codes-42",
        "-n",
        "team-b",
    ]);
    assert!(out.status.success(), "{}", text(&out));

    // Each manages its own namespace (once the binding reaches the server's cache).
    eventually_blocking("alice creates in team-a", || {
        alice(&["create", "configmap", "a-plan", "--from-literal=plan=y", "-n", "team-a"])
            .status
            .success()
            .then_some(())
    });
    let out = alice(&["get", "configmaps", "-n", "team-a", "-o", "name"]);
    assert!(text(&out).contains("configmap/a-plan"), "{}", text(&out));
    eventually_blocking("bob lists team-b", || {
        let out = bob(&["get", "configmaps", "-n", "team-b", "-o", "name"]);
        text(&out).contains("configmap/b-secret-plan").then_some(())
    });

    let out = bob(&[
        "get",
        "configmap",
        "b-secret-plan",
        "-n",
        "team-b",
        "-o",
        "jsonpath={.data.plan}",
    ]);
    assert_eq!(text(&out), "launch-codes-42", "bob reads his own");

    // And nothing of the other's.
    let forbidden = |out: Output, what: &str| {
        assert!(!out.status.success(), "{what} succeeded: {}", text(&out));
        assert!(text(&out).contains("forbidden"), "{what}: {}", text(&out));
        assert!(!text(&out).contains("launch-codes-42"), "{what} leaked: {}", text(&out));
    };
    forbidden(alice(&["get", "configmap", "b-secret-plan", "-n", "team-b"]), "get");
    forbidden(alice(&["get", "configmaps", "-n", "team-b"]), "list");
    forbidden(alice(&["get", "configmaps", "-A"]), "list -A");
    forbidden(
        alice(&["get", "configmaps", "-n", "team-b", "--watch", "--request-timeout=10s"]),
        "watch",
    );
    forbidden(
        alice(&["get", "configmaps", "-A", "--watch", "--request-timeout=10s"]),
        "watch -A",
    );
    forbidden(
        alice(&["delete", "configmap", "b-secret-plan", "-n", "team-b"]),
        "delete",
    );
    forbidden(alice(&["logs", "some-pod", "-n", "team-b"]), "logs");
    forbidden(alice(&["exec", "some-pod", "-n", "team-b", "--", "true"]), "exec");
    forbidden(bob(&["get", "configmap", "a-plan", "-n", "team-a"]), "bob's get");

    let out = alice(&["auth", "can-i", "--list", "-n", "team-a"]);
    let own = text(&out);
    assert!(
        own.lines()
            .any(|l| l.starts_with("configmaps ") && l.contains("create") && l.contains("delete")),
        "alice in team-a: {own}"
    );
    let out = alice(&["auth", "can-i", "--list", "-n", "team-b"]);
    let other = text(&out);
    assert!(
        !other.lines().any(|l| l.starts_with("configmaps ")),
        "alice in team-b: {other}"
    );
    let out = alice(&["auth", "can-i", "create", "deployments", "-n", "team-b"]);
    assert_eq!(text(&out).trim(), "no");

    // The audit log says who did what to which object and how it ended, and never
    // holds a Secret's value, though the policy asks for bodies.
    let out = admin(&[
        "create",
        "secret",
        "generic",
        "vault",
        "--from-literal=key=hunter2-audited",
        "-n",
        "team-b",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let events: Vec<serde_json::Value> = eventually_blocking("the secret's create audited", || {
        let text = std::fs::read_to_string(&audit_log).ok()?;
        let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        events
            .iter()
            .any(|e| e["objectRef"]["resource"] == "secrets" && e["verb"] == "create")
            .then_some(events)
    });
    let all = std::fs::read_to_string(&audit_log).unwrap();
    assert!(!all.contains("hunter2-audited"), "a Secret's value in the audit log");
    // A token that authenticates nobody gets 401, and is audited with no user.
    let refused = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(pki.join("ca.crt"))
        .args(["-H", "Authorization: Bearer not-a-token"])
        .arg(format!("{url}/api/v1/namespaces/team-b/secrets?audit-probe=1"))
        .output()
        .expect("curl (the test script installs it)");
    assert_eq!(String::from_utf8_lossy(&refused.stdout), "401");
    let unauthenticated = eventually_blocking("the 401 audited", || {
        let text = std::fs::read_to_string(&audit_log).ok()?;
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| e["requestURI"].as_str().is_some_and(|uri| uri.contains("audit-probe")))
    });
    assert_eq!(unauthenticated["responseStatus"]["code"], 401, "{unauthenticated}");
    assert_eq!(unauthenticated["user"], serde_json::json!({}), "{unauthenticated}");
    let refused = events
        .iter()
        .find(|e| {
            e["user"]["username"] == "alice"
                && e["verb"] == "get"
                && e["objectRef"]["name"] == "b-secret-plan"
                && e["objectRef"]["namespace"] == "team-b"
        })
        .expect("alice's refused get is audited");
    assert_eq!(refused["responseStatus"]["code"], 403, "{refused}");
    assert_eq!(
        refused["user"]["groups"],
        serde_json::json!(["team-a", "system:authenticated"])
    );
    assert_eq!(refused["sourceIPs"], serde_json::json!(["127.0.0.1"]));
    let created = events
        .iter()
        .find(|e| e["user"]["username"] == "alice" && e["verb"] == "create" && e["responseStatus"]["code"] == 201)
        .expect("alice's create is audited");
    assert_eq!(created["requestObject"]["data"]["plan"], "y", "{created}");

    // Pod Security's `audit` label: a pod that breaks it is admitted, and its
    // create's audit event says what it would break.
    let out = admin(&[
        "label",
        "namespace",
        "team-b",
        "pod-security.kubernetes.io/audit=restricted",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = admin(&["run", "rooted", "--image=busybox", "-n", "team-b", "--", "sleep", "1"]);
    assert!(out.status.success(), "{}", text(&out));
    let created = eventually_blocking("the pod's create audited", || {
        let text = std::fs::read_to_string(&audit_log).ok()?;
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| {
                e["objectRef"]["resource"] == "pods"
                    && e["verb"] == "create"
                    && e["requestObject"]["metadata"]["name"] == "rooted"
            })
    });
    let annotations = &created["annotations"];
    assert_eq!(
        annotations["pod-security.kubernetes.io/enforce-policy"], "baseline:latest",
        "{created}"
    );
    let violations = annotations["pod-security.kubernetes.io/audit-violations"]
        .as_str()
        .unwrap_or_default();
    assert!(
        violations.starts_with("would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{created}"
    );
}
