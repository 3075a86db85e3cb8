use super::*;
use crate::auth::authz::attributes::ResourceAttributes;

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/version"]
- level: None
  users: ["system:kube-proxy"]
- level: Request
  resources:
  - group: ""
    resources: ["secrets", "configmaps", "pods/log"]
- level: Metadata
"#;

fn user(name: &str) -> UserInfo {
    UserInfo::authenticated(name, ["team-a".to_string()])
}

fn on(verb: &str, resource: &str, subresource: &str, namespace: &str, name: &str) -> Attributes {
    Attributes::resource(
        verb,
        ResourceAttributes {
            group: String::new(),
            version: "v1".into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
        },
    )
}

#[test]
fn the_first_matching_rule_decides_and_secrets_never_get_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(&dir.path().join("audit.log"), parse_policy(POLICY).unwrap()).unwrap();
    let alice = user("alice");
    assert_eq!(
        log.level(&alice, Some(&Attributes::path("get", "/healthz/ready"))),
        Level::None
    );
    assert_eq!(
        log.level(&alice, Some(&Attributes::path("get", "/apis"))),
        Level::Metadata
    );
    assert_eq!(
        log.level(&user("system:kube-proxy"), Some(&on("list", "pods", "", "", ""))),
        Level::None
    );
    assert_eq!(
        log.level(&alice, Some(&on("create", "configmaps", "", "a", "c"))),
        Level::Request
    );
    assert_eq!(
        log.level(&alice, Some(&on("get", "pods", "log", "a", "p"))),
        Level::Request
    );
    assert_eq!(
        log.level(&alice, Some(&on("get", "pods", "", "a", "p"))),
        Level::Metadata,
        "pods/log is not pods"
    );
    assert_eq!(
        log.level(&alice, Some(&on("create", "secrets", "", "a", "s"))),
        Level::Metadata,
        "a Secret's body is never logged, whatever the policy says"
    );
}

#[test]
fn an_event_says_who_did_what_to_which_object_and_how_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let log = AuditLog::open(&path, parse_policy(POLICY).unwrap()).unwrap();
    let record = Record {
        level: Level::Request,
        id: audit_id(),
        received: std::time::SystemTime::now(),
        attributes: Some(on("create", "configmaps", "", "team-b", "plan")),
        user: user("alice"),
        impersonated_user: Some(user("bob")),
        annotations: [(
            "pod-security.kubernetes.io/enforce-policy".to_string(),
            "baseline:latest".to_string(),
        )]
        .into(),
        uri: "/api/v1/namespaces/team-b/configmaps".into(),
        source: Some("10.0.0.9".parse().unwrap()),
        user_agent: "kubectl/v1.32.4".into(),
        request_object: Some(json!({"kind": "ConfigMap", "data": {"a": "b"}})),
    };
    let status = json!({"status": "Failure", "reason": "Forbidden", "message": "configmaps is forbidden: ..."});
    log.write(record, 403, Some(&status), "ResponseComplete");
    let text = std::fs::read_to_string(&path).unwrap();
    let event: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(event["apiVersion"], "audit.k8s.io/v1");
    assert_eq!(event["level"], "Request");
    assert_eq!(event["verb"], "create");
    assert_eq!(event["user"]["username"], "alice");
    assert_eq!(event["user"]["groups"], json!(["team-a", "system:authenticated"]));
    assert_eq!(event["impersonatedUser"]["username"], "bob", "kubectl --as bob");
    assert_eq!(
        event["annotations"]["pod-security.kubernetes.io/enforce-policy"],
        "baseline:latest"
    );
    assert_eq!(event["sourceIPs"], json!(["10.0.0.9"]));
    assert_eq!(
        event["objectRef"],
        json!({"resource": "configmaps", "namespace": "team-b", "name": "plan", "apiVersion": "v1"})
    );
    assert_eq!(event["responseStatus"]["code"], 403);
    assert_eq!(event["responseStatus"]["reason"], "Forbidden");
    assert_eq!(event["requestObject"]["data"]["a"], "b");
    assert_eq!(event["auditID"].as_str().unwrap().len(), 36);
    assert!(event["stageTimestamp"].as_str().unwrap().contains('.'), "microseconds");
}

#[test]
fn policies_that_cannot_be_followed_are_refused_naming_the_field() {
    let error = parse_policy("kind: Policy\nrules:\n- level: RequestResponse\n").unwrap_err();
    assert!(error.contains("RequestResponse"), "{error}");
    let error = parse_policy("kind: Policy\nrules:\n- level: Metadata\n  verbz: [get]\n").unwrap_err();
    assert!(error.contains("verbz"), "{error}");
    let error = parse_policy("kind: Policy\nrules: []\n").unwrap_err();
    assert!(error.contains("rules"), "{error}");
    let error = parse_policy("kind: Policy\nrules:\n- level: Metadata\n  namespaces: [a]\n  nonResourceURLs: [/x]\n")
        .unwrap_err();
    assert!(error.contains("nonResourceURLs"), "{error}");
    assert!(parse_policy("kind: Other\nrules:\n- level: None\n").is_err());
}
