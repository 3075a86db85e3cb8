//! Authorization under `--authorization-mode RBAC`: two tenants with `edit` in their
//! own namespaces, what each may do there and not in the other's, the default
//! roles, escalation prevention and the access reviews.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::auth::authz::Mode;

const RBAC: &str = "/apis/rbac.authorization.k8s.io/v1";

async fn start_rbac() -> Server {
    start_with(Settings {
        authorization_modes: vec![Mode::Rbac],
        ..Settings::default()
    })
    .await
}

/// Requests made as one user.
struct As<'a> {
    server: &'a Server,
    headers: Vec<(&'static str, String)>,
}

impl Server {
    fn as_user(&self, name: &str, groups: &[&str]) -> As<'_> {
        As {
            server: self,
            headers: vec![(TEST_USER, name.to_string()), (TEST_GROUPS, groups.join(","))],
        }
    }

    fn admin(&self) -> As<'_> {
        self.as_user("admin", &["system:masters"])
    }
}

impl As<'_> {
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let mut headers: Vec<(&str, &str)> = self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.server.call(method, path, &headers, body).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None).await
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, Some(body)).await
    }

    /// Asks until the answer is `status` (a role change reaches the authorizer
    /// through its watch), and returns that answer.
    async fn eventually(&self, method: &str, path: &str, body: Option<&Value>, status: u16) -> Reply {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let reply = self.call(method, path, body).await;
            if reply.status == status || tokio::time::Instant::now() > deadline {
                assert_eq!(
                    reply.status,
                    status,
                    "{method} {path}: {}",
                    String::from_utf8_lossy(&reply.body)
                );
                return reply;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn binding(name: &str, namespace: &str, role_kind: &str, role: &str, user: &str) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
           "metadata": {"name": name, "namespace": namespace},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
           "subjects": [{"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}]})
}

fn role(name: &str, namespace: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
           "metadata": {"name": name, "namespace": namespace}, "rules": rules})
}

fn message(reply: &Reply) -> String {
    reply.json()["message"].as_str().unwrap_or_default().to_string()
}

/// Two tenants, each with `edit` in its own namespace.
async fn two_tenants() -> Server {
    let server = start_rbac().await;
    let admin = server.admin();
    for (team, user) in [("team-a", "alice"), ("team-b", "bob")] {
        assert_eq!(admin.post("/api/v1/namespaces", &namespace(team)).await.status, 201);
        let edit = binding(&format!("{user}-edit"), team, "ClusterRole", "edit", user);
        let path = format!("{RBAC}/namespaces/{team}/rolebindings");
        assert_eq!(admin.post(&path, &edit).await.status, 201);
    }
    for (team, user) in [("team-a", "alice"), ("team-b", "bob")] {
        let pods = format!("/api/v1/namespaces/{team}/pods");
        server.as_user(user, &[]).eventually("GET", &pods, None, 200).await;
    }
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenant_manages_its_namespace_and_cannot_touch_the_others() {
    let server = two_tenants().await;
    let alice = server.as_user("alice", &[]);
    let bob = server.as_user("bob", &[]);
    let a_pods = "/api/v1/namespaces/team-a/pods";
    let b_pods = "/api/v1/namespaces/team-b/pods";
    assert_eq!(alice.post(a_pods, &pod("web", json!({}))).await.status, 201);
    assert_eq!(bob.post(b_pods, &pod("db", json!({}))).await.status, 201);
    assert_eq!(alice.get(&format!("{a_pods}/web")).await.status, 200);
    assert_eq!(alice.get(a_pods).await.json()["items"].as_array().unwrap().len(), 1);
    let deployments = "/apis/apps/v1/namespaces/team-a/deployments";
    assert_eq!(alice.post(deployments, &deployment("app", 1)).await.status, 201);
    assert_eq!(alice.call("DELETE", &format!("{a_pods}/web"), None).await.status, 200);

    // The other tenant's namespace: every verb refused, in Kubernetes' words.
    let list = alice.get(b_pods).await;
    assert_eq!((list.status, list.json()["reason"].clone()), (403, json!("Forbidden")));
    assert_eq!(
        message(&list),
        "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" in the namespace \"team-b\""
    );
    assert_eq!(
        message(&alice.get(&format!("{b_pods}/db")).await),
        "pods \"db\" is forbidden: User \"alice\" cannot get resource \"pods\" in API group \"\" in the namespace \"team-b\""
    );
    assert_eq!(alice.get(&format!("{b_pods}?watch=true")).await.status, 403);
    assert_eq!(alice.post(b_pods, &pod("intruder", json!({}))).await.status, 403);
    assert_eq!(alice.call("DELETE", &format!("{b_pods}/db"), None).await.status, 403);
    assert_eq!(
        message(&alice.get(&format!("{b_pods}/db/log")).await),
        "pods \"db\" is forbidden: User \"alice\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"team-b\""
    );
    assert_eq!(
        message(&alice.call("POST", &format!("{b_pods}/db/exec?command=sh"), None).await),
        "pods \"db\" is forbidden: User \"alice\" cannot create resource \"pods/exec\" in API group \"\" in the namespace \"team-b\""
    );
    assert_eq!(
        alice.get(&format!("{b_pods}/db/portforward?ports=80")).await.status,
        403
    );
    assert_eq!(bob.get("/api/v1/namespaces/team-a/pods").await.status, 403);
    assert_eq!(
        bob.get("/apis/apps/v1/namespaces/team-a/deployments/app").await.status,
        403
    );

    // In their own namespace, logs and exec are authorized (and then fail for
    // what they are: the pod is not scheduled, the request is not a stream).
    assert_eq!(bob.get(&format!("{b_pods}/db/log")).await.status, 400);
    assert_ne!(
        bob.call("POST", &format!("{b_pods}/db/exec?command=sh"), None)
            .await
            .status,
        403
    );

    // Across namespaces (-A): cluster-wide permission is needed, for lists and watches.
    assert_eq!(
        message(&alice.get("/api/v1/pods").await),
        "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" at the cluster scope"
    );
    assert_eq!(
        message(&alice.get("/api/v1/pods?watch=true").await),
        "pods is forbidden: User \"alice\" cannot watch resource \"pods\" in API group \"\" at the cluster scope"
    );
    assert_eq!(alice.get("/apis/apps/v1/deployments").await.status, 403);
    // Nor may a tenant list namespaces or read nodes.
    assert_eq!(alice.get("/api/v1/namespaces").await.status, 403);
    assert_eq!(
        alice.get("/api/v1/namespaces/team-a").await.status,
        200,
        "view reads its own namespace"
    );
    assert_eq!(alice.get("/api/v1/nodes").await.status, 403);

    // A binding deleted takes its permissions with it once the authorizer sees it.
    let binding = format!("{RBAC}/namespaces/team-a/rolebindings/alice-edit");
    assert_eq!(server.admin().call("DELETE", &binding, None).await.status, 200);
    alice.eventually("GET", a_pods, None, 403).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_watching_its_namespace_sees_only_its_own() {
    let server = two_tenants().await;
    let alice = server.as_user("alice", &[]);
    let headers = [(TEST_USER, "alice")];
    let response = server
        .open("GET", "/api/v1/namespaces/team-a/pods?watch=true", &headers, Vec::new())
        .await;
    assert_eq!(response.status(), 200);
    let mut events = Events {
        body: response.into_body(),
        buffer: Vec::new(),
    };
    let admin = server.admin();
    assert_eq!(
        admin
            .post("/api/v1/namespaces/team-b/pods", &pod("b1", json!({})))
            .await
            .status,
        201
    );
    assert_eq!(
        alice
            .post("/api/v1/namespaces/team-a/pods", &pod("a1", json!({})))
            .await
            .status,
        201
    );
    assert_eq!(events.next_named().await, ("ADDED".to_string(), "a1".to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_roles_let_everyone_check_health_and_the_authenticated_discover() {
    let server = start_rbac().await;
    // No user header: the request is anonymous.
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while server.get("/healthz").await.status != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "system:public-info-viewer lets anyone check health"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.get("/version").await.status, 200);
    let apis = server.get("/apis").await;
    assert_eq!(apis.status, 403);
    assert_eq!(
        message(&apis),
        "forbidden: User \"system:anonymous\" cannot get path \"/apis\""
    );
    let alice = server.as_user("alice", &[]);
    alice.eventually("GET", "/apis", None, 200).await;
    assert_eq!(alice.get("/api/v1").await.status, 200);
    assert_eq!(alice.get("/openapi/v2").await.status, 200);
    assert_eq!(
        alice.get("/api/v1/namespaces/default/pods").await.status,
        403,
        "default deny"
    );
    let roles = server.admin().get(&format!("{RBAC}/clusterroles")).await.json();
    let names: Vec<&str> = roles["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    for name in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
        "system:discovery",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let view = server.admin().get(&format!("{RBAC}/clusterroles/view")).await.json();
    assert_eq!(
        view["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
        "true"
    );
    assert!(!view["rules"].as_array().unwrap().is_empty(), "aggregated at start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_cannot_grant_what_they_do_not_hold() {
    let server = start_rbac().await;
    let admin = server.admin();
    assert_eq!(admin.post("/api/v1/namespaces", &namespace("team-a")).await.status, 201);
    let roles = format!("{RBAC}/namespaces/team-a/roles");
    let bindings = format!("{RBAC}/namespaces/team-a/rolebindings");
    assert_eq!(
        admin
            .post(
                &bindings,
                &binding("carol-admin", "team-a", "ClusterRole", "admin", "carol")
            )
            .await
            .status,
        201
    );
    let carol = server.as_user("carol", &[]);
    let readers = role(
        "pod-reader",
        "team-a",
        json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]),
    );
    carol.eventually("POST", &roles, Some(&readers), 201).await;
    let nodes = role(
        "node-lister",
        "team-a",
        json!([{"verbs": ["list"], "apiGroups": [""], "resources": ["nodes"]},
                                                   {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]),
    );
    let refused = carol.post(&roles, &nodes).await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        message(&refused),
        "roles.rbac.authorization.k8s.io \"node-lister\" is forbidden: user \"carol\" (groups=[\"system:authenticated\"]) \
         is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"list\"]}"
    );
    // Binding a role needs its permissions where the binding applies ...
    assert_eq!(
        carol
            .post(
                &bindings,
                &binding("dave-edit", "team-a", "ClusterRole", "edit", "dave")
            )
            .await
            .status,
        201
    );
    let escalating = carol
        .post(
            &bindings,
            &binding("dave-root", "team-a", "ClusterRole", "cluster-admin", "dave"),
        )
        .await;
    assert_eq!(escalating.status, 403);
    assert!(
        message(&escalating).starts_with(
            "rolebindings.rbac.authorization.k8s.io \"dave-root\" is forbidden: user \"carol\" (groups=[\"system:authenticated\"]) \
             is attempting to grant RBAC permissions not currently held:\n"
        ),
        "{}",
        message(&escalating)
    );
    // ... unless the user may `bind` that role, or `escalate` roles.
    let binder = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "root-binder"},
        "rules": [{"verbs": ["bind"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                   "resourceNames": ["cluster-admin"]},
                  {"verbs": ["escalate"], "apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"]}]});
    assert_eq!(admin.post(&format!("{RBAC}/clusterroles"), &binder).await.status, 201);
    let carol_binds = binding("carol-binder", "team-a", "ClusterRole", "root-binder", "carol");
    assert_eq!(admin.post(&bindings, &carol_binds).await.status, 201);
    let dave_root = binding("dave-root", "team-a", "ClusterRole", "cluster-admin", "dave");
    carol.eventually("POST", &bindings, Some(&dave_root), 201).await;
    assert_eq!(carol.post(&roles, &nodes).await.status, 201, "escalate");
    // The role a binding names never changes.
    let mut changed = binding("dave-edit", "team-a", "ClusterRole", "view", "dave");
    changed["metadata"]["resourceVersion"] =
        admin.get(&format!("{bindings}/dave-edit")).await.json()["metadata"]["resourceVersion"].clone();
    let immutable = admin
        .call("PUT", &format!("{bindings}/dave-edit"), Some(&changed))
        .await;
    assert_eq!(immutable.status, 422);
    assert!(
        message(&immutable).contains("cannot change roleRef"),
        "{}",
        message(&immutable)
    );
}

fn access_review(kind: &str, spec: Value) -> Value {
    json!({"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec})
}

fn pods_in(namespace: &str, verb: &str) -> Value {
    json!({"namespace": namespace, "verb": verb, "resource": "pods"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reviews_answer_what_the_authorizer_would_decide() {
    let server = two_tenants().await;
    let alice = server.as_user("alice", &[]);
    let self_review = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let mine = access_review(
        "SelfSubjectAccessReview",
        json!({"resourceAttributes": pods_in("team-a", "create")}),
    );
    // (The default bindings may reach the authorizer after the tenants' own.)
    let answer = alice.eventually("POST", self_review, Some(&mine), 201).await.json();
    assert_eq!(answer["status"]["allowed"], true);
    assert_eq!(
        answer["status"]["reason"],
        "RBAC: allowed by RoleBinding \"alice-edit/team-a\" of ClusterRole \"edit\" to User \"alice\""
    );
    let theirs = access_review(
        "SelfSubjectAccessReview",
        json!({"resourceAttributes": pods_in("team-b", "list")}),
    );
    assert_eq!(
        alice.post(self_review, &theirs).await.json()["status"]["allowed"],
        false
    );
    let logs = json!({"namespace": "team-b", "verb": "get", "resource": "pods", "subresource": "log"});
    let logs = access_review("SelfSubjectAccessReview", json!({"resourceAttributes": logs}));
    assert_eq!(alice.post(self_review, &logs).await.json()["status"]["allowed"], false);
    let everywhere = access_review(
        "SelfSubjectAccessReview",
        json!({"resourceAttributes": pods_in("", "watch")}),
    );
    assert_eq!(
        alice.post(self_review, &everywhere).await.json()["status"]["allowed"],
        false
    );
    let health = access_review(
        "SelfSubjectAccessReview",
        json!({"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}),
    );
    assert_eq!(alice.post(self_review, &health).await.json()["status"]["allowed"], true);
    // Anonymous users may not ask (system:basic-user is for the authenticated).
    assert_eq!(
        message(&server.send_json("POST", self_review, &mine).await),
        "selfsubjectaccessreviews.authorization.k8s.io is forbidden: User \"system:anonymous\" cannot create resource \
         \"selfsubjectaccessreviews\" in API group \"authorization.k8s.io\" at the cluster scope"
    );

    // Asking about someone else needs the right to; an admin has it.
    let about_bob = access_review(
        "SubjectAccessReview",
        json!({"user": "bob", "resourceAttributes": pods_in("team-b", "delete")}),
    );
    let subject_review = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    assert_eq!(alice.post(subject_review, &about_bob).await.status, 403);
    assert_eq!(
        server.admin().post(subject_review, &about_bob).await.json()["status"]["allowed"],
        true
    );
    let by_group = access_review(
        "SubjectAccessReview",
        json!({"groups": ["system:masters"], "resourceAttributes": pods_in("team-b", "delete")}),
    );
    assert_eq!(
        server.admin().post(subject_review, &by_group).await.json()["status"]["allowed"],
        true
    );
    let local = access_review(
        "LocalSubjectAccessReview",
        json!({"user": "bob", "resourceAttributes": pods_in("team-a", "get")}),
    );
    let local_path = "/apis/authorization.k8s.io/v1/namespaces/team-a/localsubjectaccessreviews";
    let answer = server.admin().post(local_path, &local).await.json();
    assert_eq!(
        (
            answer["status"]["allowed"].clone(),
            answer["metadata"]["namespace"].clone()
        ),
        (json!(false), json!("team-a"))
    );
    let elsewhere = access_review(
        "LocalSubjectAccessReview",
        json!({"user": "bob", "resourceAttributes": pods_in("team-b", "get")}),
    );
    assert_eq!(server.admin().post(local_path, &elsewhere).await.status, 422);

    // What alice may do, namespace by namespace (`kubectl auth can-i --list`).
    let rules_review = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews";
    let may = |answer: &Value, verb: &str, resource: &str| {
        answer["status"]["resourceRules"].as_array().unwrap().iter().any(|r| {
            r["verbs"].as_array().unwrap().iter().any(|v| v == verb || v == "*")
                && r["resources"].as_array().unwrap().iter().any(|v| v == resource)
        })
    };
    let team_a = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                        "spec": {"namespace": "team-a"}});
    let own = alice.post(rules_review, &team_a).await;
    assert_eq!(own.status, 201);
    let own = own.json();
    assert!(may(&own, "create", "pods") && may(&own, "get", "pods/log") && may(&own, "create", "pods/exec"));
    assert_eq!(own["status"]["incomplete"], false);
    assert!(
        own["status"]["nonResourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["nonResourceURLs"].as_array().unwrap().contains(&json!("/healthz")))
    );
    let mut team_b = team_a.clone();
    team_b["spec"]["namespace"] = "team-b".into();
    let other = alice.post(rules_review, &team_b).await.json();
    assert!(!may(&other, "get", "pods") && !may(&other, "get", "pods/log"));
    assert!(
        may(&other, "create", "selfsubjectaccessreviews"),
        "system:basic-user's rules hold everywhere"
    );

    // Who am I (`kubectl auth whoami`).
    let whoami = alice
        .post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
        )
        .await;
    assert_eq!(whoami.status, 201);
    assert_eq!(
        whoami.json()["status"]["userInfo"],
        json!({"username": "alice", "groups": ["system:authenticated"]})
    );
    assert_eq!(alice.get(self_review).await.status, 405, "created, never read");
}
