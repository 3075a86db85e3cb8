//! ServiceAccounts with the real kubectl against one `berth server` under RBAC: the
//! controllers give a new namespace its `default` account and `kube-root-ca.crt`;
//! `kubectl create token` signs a token that can do exactly what its Role allows
//! (list pods in its namespace, not secrets, not another namespace); a TokenReview
//! says who it is; the account deleted, the token is refused (401); a pod naming an
//! account that does not exist is refused with Kubernetes' words.
//!
//! Skipped, with a message, where kubectl is not installed.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use berth_testkit::{Cluster, ClusterSpec, QUIET_RAFT_LOG, System, eventually_blocking, free_port};
use common::{BERTH, has_kubectl, succeeded};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "admin-token";

struct Server {
    server: Cluster,
    api_port: u16,
    kubeconfig: PathBuf,
    ca_pem: String,
}

impl Server {
    fn start() -> Server {
        let spec = ClusterSpec::new(System::BerthServer, BERTH, 1).env("RUST_LOG", QUIET_RAFT_LOG);
        let mut server = Cluster::new(spec).unwrap();
        let api_port = free_port();
        let pki = berth_pki::layout::Layout::new(server.dir().join("pki"));
        pki.init(&[]).unwrap();
        let tokens = server.dir().join("tokens.csv");
        std::fs::write(&tokens, format!("{ADMIN_TOKEN},admin,0,system:masters\n")).unwrap();
        server.replicas[0].args = vec![
            format!("--api-listen=127.0.0.1:{api_port}"),
            "--authorization-mode=RBAC".into(),
            format!("--token-auth-file={}", tokens.display()),
            format!("--root-ca-file={}", pki.ca_cert().display()),
            format!("--tls-cert-file={}", pki.pair("apiserver").0.display()),
            format!("--tls-private-key-file={}", pki.pair("apiserver").1.display()),
            format!(
                "--service-account-signing-key-file={}",
                pki.service_account_key().0.display()
            ),
        ];
        let kubeconfig = server.dir().join("kubeconfig");
        std::fs::write(&kubeconfig, "").unwrap();
        server.start_all().unwrap();
        let ca_pem = std::fs::read_to_string(pki.ca_cert()).unwrap();
        let server = Server {
            server,
            api_port,
            kubeconfig,
            ca_pem,
        };
        eventually_blocking("the API server answers /healthz", || {
            let out = server.kubectl_as(ADMIN_TOKEN, &["get", "--raw", "/healthz"], None);
            out.status.success().then_some(())
        });
        server
    }

    fn kubectl_as(&self, token: &str, args: &[&str], input: Option<&str>) -> Output {
        let cache = self.server.dir().join("kube-cache");
        let mut child = Command::new("kubectl")
            .arg(format!("--server=https://127.0.0.1:{}", self.api_port))
            .arg(format!(
                "--certificate-authority={}",
                self.server.dir().join("pki/ca.crt").display()
            ))
            .arg(format!("--cache-dir={}", cache.display()))
            .arg(format!("--token={token}"))
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.unwrap_or_default().as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    fn admin(&self, args: &[&str]) -> String {
        succeeded(&self.kubectl_as(ADMIN_TOKEN, args, None))
    }
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "kubectl succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn a_service_account_token_can_do_exactly_what_its_role_allows() {
    if !has_kubectl() {
        eprintln!("SKIPPED a_service_account_token_can_do_exactly_what_its_role_allows: kubectl is not installed");
        return;
    }
    let server = Server::start();
    server.admin(&["create", "namespace", "team"]);
    // The controllers give the namespace its default account and the cluster's CA.
    eventually_blocking("team's default ServiceAccount and kube-root-ca.crt", || {
        let account = server.kubectl_as(ADMIN_TOKEN, &["get", "sa", "default", "-n", "team"], None);
        let ca = server.kubectl_as(
            ADMIN_TOKEN,
            &["get", "cm", "kube-root-ca.crt", "-n", "team", "-o", "json"],
            None,
        );
        (account.status.success() && ca.status.success()).then_some(ca)
    });
    let ca: Value =
        serde_json::from_str(&server.admin(&["get", "cm", "kube-root-ca.crt", "-n", "team", "-o", "json"])).unwrap();
    assert_eq!(ca["data"]["ca.crt"], server.ca_pem.as_str());

    server.admin(&["create", "serviceaccount", "builder", "-n", "team"]);
    server.admin(&[
        "create",
        "role",
        "pod-reader",
        "--verb=list",
        "--resource=pods",
        "-n",
        "team",
    ]);
    server.admin(&[
        "create",
        "rolebinding",
        "builder-reads-pods",
        "--role=pod-reader",
        "--serviceaccount=team:builder",
        "-n",
        "team",
    ]);
    let token = server
        .admin(&["create", "token", "builder", "-n", "team"])
        .trim()
        .to_string();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    eventually_blocking("the token lists team's pods", || {
        server
            .kubectl_as(&token, &["get", "pods", "-n", "team"], None)
            .status
            .success()
            .then_some(())
    });
    let secrets = failed(&server.kubectl_as(&token, &["get", "secrets", "-n", "team"], None));
    assert!(
        secrets.contains(
            "User \"system:serviceaccount:team:builder\" cannot list resource \"secrets\" in API group \"\" in the namespace \"team\""
        ),
        "{secrets}"
    );
    let elsewhere = failed(&server.kubectl_as(&token, &["get", "pods", "-n", "default"], None));
    assert!(
        elsewhere.contains("Forbidden") || elsewhere.contains("forbidden"),
        "{elsewhere}"
    );

    // A TokenReview, as an authenticating proxy would ask it (the reviews have no
    // OpenAPI document for kubectl to validate against).
    let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    let answer = succeeded(&server.kubectl_as(
        ADMIN_TOKEN,
        &["create", "--validate=false", "-f", "-", "-o", "json"],
        Some(&review.to_string()),
    ));
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["status"]["authenticated"], true, "{answer}");
    assert_eq!(
        answer["status"]["user"]["username"],
        "system:serviceaccount:team:builder"
    );
    assert_eq!(
        answer["status"]["user"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:team",
            "system:authenticated"
        ])
    );

    // A pod naming an account that does not exist.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ghostly", "namespace": "team"},
        "spec": {"serviceAccountName": "ghost", "containers": [{"name": "c", "image": "busybox"}]}});
    let refused = failed(&server.kubectl_as(ADMIN_TOKEN, &["create", "-f", "-"], Some(&pod.to_string())));
    assert!(
        refused.contains(
            "pods \"ghostly\" is forbidden: error looking up service account team/ghost: serviceaccount \"ghost\" not found"
        ),
        "{refused}"
    );

    // The account gone, its token is refused.
    server.admin(&["delete", "serviceaccount", "builder", "-n", "team"]);
    let gone = failed(&server.kubectl_as(&token, &["get", "pods", "-n", "team"], None));
    assert!(gone.contains("Unauthorized"), "{gone}");
}
