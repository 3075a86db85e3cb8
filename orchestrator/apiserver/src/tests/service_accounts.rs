//! ServiceAccount tokens end to end through the API server, under RBAC: a
//! TokenRequest signs one, the token authenticates as the account with exactly its
//! Role's permissions, a TokenReview says who it is, and a token whose account or
//! bound pod is gone is refused.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use super::*;
use crate::auth::Authenticator;
use crate::auth::authz::Mode;
use crate::auth::jwt::{DEFAULT_ISSUER, Verifier};
use crate::auth::keys::SigningKey;
use crate::auth::service_accounts::ServiceAccountTokens;

async fn start_with_tokens() -> Server {
    let random = ring::rand::SystemRandom::new();
    let der = ring::signature::EcdsaKeyPair::generate_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &random)
        .unwrap();
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    );
    let key = SigningKey::from_pem(&pem).unwrap();
    let tokens = ServiceAccountTokens {
        verifier: Verifier {
            keys: vec![key.verifying_key()],
            issuer: DEFAULT_ISSUER.into(),
            audiences: vec![DEFAULT_ISSUER.into()],
        },
        signing_key: Some(std::sync::Arc::new(key)),
    };
    let authenticator = Authenticator::new(Default::default(), true).with_service_accounts(Some(tokens));
    let settings = Settings {
        authorization_modes: vec![Mode::Rbac],
        ..Settings::default()
    };
    let store = store().await;
    let api = ApiServer::with_settings(store.kv.clone(), settings).with_security(None, authenticator);
    start_on(store, api).await
}

const ADMIN: [(&str, &str); 2] = [(TEST_USER, "admin"), (TEST_GROUPS, "system:masters")];

impl Server {
    async fn admin_json(&self, method: &str, path: &str, body: &Value) -> Reply {
        let mut headers = ADMIN.to_vec();
        headers.push(("content-type", "application/json"));
        self.call(method, path, &headers, body.to_string().into_bytes()).await
    }

    async fn with_token(&self, method: &str, path: &str, token: &str) -> Reply {
        let bearer = format!("Bearer {token}");
        self.call(method, path, &[("authorization", &bearer)], Vec::new()).await
    }

    async fn token_for(&self, account: &str, spec: Value) -> Reply {
        let path = format!("/api/v1/namespaces/default/serviceaccounts/{account}/token");
        self.admin_json(
            "POST",
            &path,
            &json!({"apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest", "spec": spec}),
        )
        .await
    }

    async fn review(&self, token: &str) -> Value {
        let review = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token}});
        let reply = self
            .admin_json("POST", "/apis/authentication.k8s.io/v1/tokenreviews", &review)
            .await;
        assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
        reply.json()
    }
}

/// Asks until the answer is `status` (a new binding reaches the authorizer
/// through its watch).
async fn eventually_status(server: &Server, path: &str, token: &str, status: u16) -> Reply {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let reply = server.with_token("GET", path, token).await;
        if reply.status == status || tokio::time::Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requested_token_does_what_its_role_allows_until_its_account_is_gone() {
    let server = start_with_tokens().await;
    let made = server
        .admin_json(
            "POST",
            "/api/v1/namespaces/default/serviceaccounts",
            &json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "builder"}}),
        )
        .await;
    assert_eq!(made.status, 201);
    let account_uid = made.json()["metadata"]["uid"].as_str().unwrap().to_string();
    let rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/default";
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "pod-reader"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]});
    assert_eq!(
        server.admin_json("POST", &format!("{rbac}/roles"), &role).await.status,
        201
    );
    let binding = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "builder-reads-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "builder", "namespace": "default"}]});
    assert_eq!(
        server
            .admin_json("POST", &format!("{rbac}/rolebindings"), &binding)
            .await
            .status,
        201
    );

    // Too short a life is refused by name; the defaults are Kubernetes'.
    let short = server.token_for("builder", json!({"expirationSeconds": 599})).await;
    assert_eq!(short.status, 422);
    assert!(
        short.json()["message"]
            .as_str()
            .unwrap()
            .contains("spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"),
        "{}",
        short.json()
    );
    let missing = server.token_for("nobody", json!({})).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["message"], "serviceaccounts \"nobody\" not found");
    let requested = server.token_for("builder", json!({})).await;
    assert_eq!(requested.status, 201, "{}", String::from_utf8_lossy(&requested.body));
    let requested = requested.json();
    assert_eq!(requested["kind"], "TokenRequest");
    assert_eq!(requested["spec"]["expirationSeconds"], 3600);
    assert_eq!(requested["spec"]["audiences"], json!([DEFAULT_ISSUER]));
    assert!(requested["status"]["expirationTimestamp"].is_string());
    let token = requested["status"]["token"].as_str().unwrap().to_string();

    // What the Role allows, in its namespace only.
    assert_eq!(eventually_status(&server, PODS, &token, 200).await.status, 200);
    let secrets = server
        .with_token("GET", "/api/v1/namespaces/default/secrets", &token)
        .await;
    assert_eq!(secrets.status, 403);
    assert_eq!(
        secrets.json()["message"],
        "secrets is forbidden: User \"system:serviceaccount:default:builder\" cannot list resource \"secrets\" \
         in API group \"\" in the namespace \"default\""
    );
    let elsewhere = server
        .with_token("GET", "/api/v1/namespaces/kube-system/pods", &token)
        .await;
    assert_eq!(elsewhere.status, 403);

    let review = server.review(&token).await;
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(
        review["status"]["user"]["username"],
        "system:serviceaccount:default:builder"
    );
    assert_eq!(review["status"]["user"]["uid"], account_uid.as_str());
    assert_eq!(
        review["status"]["user"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );
    assert_eq!(review["status"]["audiences"], json!([DEFAULT_ISSUER]));
    let tampered = format!("{}x", &token[..token.len() - 1]);
    let review = server.review(&tampered).await;
    assert_eq!(review["status"]["authenticated"], Value::Null, "{review}");
    assert!(review["status"]["error"].is_string());
    let vault = server
        .token_for("builder", json!({"audiences": ["vault"]}))
        .await
        .json();
    let vault = vault["status"]["token"].as_str().unwrap();
    assert_eq!(
        server.with_token("GET", PODS, vault).await.status,
        401,
        "not for this API"
    );
    let review = server.review(vault).await;
    assert_eq!(
        review["status"]["error"],
        format!("token audiences [\"vault\"] is invalid for the target audiences [\"{DEFAULT_ISSUER}\"]")
    );

    // The account deleted: its tokens are refused.
    let gone = server
        .call(
            "DELETE",
            "/api/v1/namespaces/default/serviceaccounts/builder",
            &ADMIN,
            Vec::new(),
        )
        .await;
    assert_eq!(gone.status, 200);
    let refused = server.with_token("GET", PODS, &token).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json()["reason"], "Unauthorized");
    assert_eq!(
        server.review(&token).await["status"]["error"],
        "service account token has been invalidated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_bound_to_a_pod_ends_with_the_pod() {
    let server = start_with_tokens().await;
    for name in ["runner", "default"] {
        let account = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}});
        let made = server
            .admin_json("POST", "/api/v1/namespaces/default/serviceaccounts", &account)
            .await;
        assert_eq!(made.status, 201);
    }
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"serviceAccountName": "runner", "automountServiceAccountToken": false,
                 "containers": [{"name": "c", "image": "busybox"}]}});
    let pod = server.admin_json("POST", PODS, &pod).await;
    assert_eq!(pod.status, 201, "{}", String::from_utf8_lossy(&pod.body));
    let pod_uid = pod.json()["metadata"]["uid"].as_str().unwrap().to_string();

    let other = server
        .token_for(
            "default",
            json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}}),
        )
        .await;
    assert_eq!(other.status, 400);
    assert_eq!(
        other.json()["message"],
        "cannot bind token for serviceaccount \"default\" to pod running with different serviceaccount name."
    );
    let node = server
        .token_for(
            "runner",
            json!({"boundObjectRef": {"kind": "Node", "apiVersion": "v1", "name": "n"}}),
        )
        .await;
    assert_eq!(node.status, 400);
    let bound = server
        .token_for(
            "runner",
            json!({"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}}),
        )
        .await;
    assert_eq!(bound.status, 201, "{}", String::from_utf8_lossy(&bound.body));
    let bound = bound.json();
    assert_eq!(bound["spec"]["boundObjectRef"]["uid"], pod_uid.as_str());
    let token = bound["status"]["token"].as_str().unwrap().to_string();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["kubernetes.io"]["pod"], json!({"name": "p", "uid": pod_uid}));
    let review = server.review(&token).await;
    assert_eq!(
        review["status"]["user"]["extra"]["authentication.kubernetes.io/pod-name"],
        json!(["p"])
    );

    // Unscheduled, the pod goes at once; so does its token.
    let deleted = server
        .call("DELETE", "/api/v1/namespaces/default/pods/p", &ADMIN, Vec::new())
        .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        server.review(&token).await["status"]["error"],
        "service account token has been invalidated"
    );
    assert_eq!(server.with_token("GET", PODS, &token).await.status, 401);
}
